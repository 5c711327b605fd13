import { Action, Decision } from "@gavel/core"
import { Arbitraries } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import * as Schema from "effect/Schema"

describe("Arbitraries", () => {
  it.prop("generate actions the Action schema accepts", [Arbitraries.action], ([action]) => {
    expect(Schema.is(Action.Action)(action)).toBe(true)
  })

  it.prop("generate results the PolicyResult schema accepts", [Arbitraries.result], ([result]) => {
    expect(Schema.is(Decision.Result)(result)).toBe(true)
  })

  it("cover every decision tag", () => {
    const tags = new Set(fc.sample(Arbitraries.decision, { numRuns: 400, seed: 42 }).map((d) => d._tag))
    expect(tags.size).toBe(8)
  })
})
