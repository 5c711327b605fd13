import { Identity } from "@gavel/core"
import { Fakes } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

describe("Fakes.identity", () => {
  it.effect("resolves the principals it lists, and no name the prototype chain has", () =>
    Effect.gen(function*() {
      const identity = yield* Identity.Identity
      const agent = yield* identity.resolve("agent-1")
      expect(agent).toEqual(Option.some({ id: "agent-1", roles: ["operator"], status: "active" }))
      for (const id of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
        expect(yield* identity.resolve(id), id).toEqual(Option.none())
      }
    }).pipe(Effect.provide(Fakes.layer({ identity: { principals: { "agent-1": { roles: ["operator"] } } } }))))
})
