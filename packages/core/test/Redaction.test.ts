import { Action, Decision, Policy, PolicySet, Redaction } from "@gavel/core"
import { assert, describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"

const config = (options: Redaction.Options = {}) => Either.getOrThrow(Redaction.make(options))

describe("Redaction.apply", () => {
  it("masks Redacted values at any depth, inside arrays too", () => {
    const result = Redaction.apply(config(), "payload", {
      card: { cvc: Redacted.make("123") },
      items: [{ sku: "a" }, [Redacted.make("x")]]
    })
    expect(result.value).toEqual({ card: { cvc: "<redacted>" }, items: [{ sku: "a" }, ["<redacted>"]] })
    expect(result.omitted).toEqual(["payload.card.cvc", "payload.items.1.0"])
  })

  it("masks configured paths, with * for any member or index", () => {
    const result = Redaction.apply(
      config({ paths: ["payload.card.number", "payload.items.*.iban"] }),
      "payload",
      { card: { number: "4111", brand: "visa" }, items: [{ iban: "DE89", amount: 1 }, { amount: 2 }] }
    )
    expect(result.value).toEqual({
      card: { number: "<redacted>", brand: "visa" },
      items: [{ iban: "<redacted>", amount: 1 }, { amount: 2 }]
    })
    expect(result.omitted).toEqual(["payload.card.number", "payload.items.0.iban"])
  })

  it("masks credential-like keys by default, case and separators ignored; keys: [] turns that off", () => {
    const value = { headers: { Authorization: "Bearer x", "X-Api-Key": "k", accept: "json" }, sessionToken: "t" }
    expect(Redaction.apply(config(), "payload", value).value).toEqual({
      headers: { Authorization: "<redacted>", "X-Api-Key": "<redacted>", accept: "json" },
      sessionToken: "<redacted>"
    })
    expect(Redaction.apply(config({ keys: [] }), "payload", value).value).toEqual(value)
  })

  it("leaves out class instances it cannot see into; dates become ISO strings", () => {
    class Secret {
      constructor(readonly value: string) {}
    }
    const result = Redaction.apply(config(), "payload", { s: new Secret("x"), at: new Date(0) })
    expect(result.value).toEqual({ s: "<redacted>", at: "1970-01-01T00:00:00.000Z" })
    expect(result.omitted).toEqual(["payload.s"])
  })

  it("a value over the limits fails with InvalidAction — 100,000 levels never overflow the stack", () => {
    const deep: unknown = JSON.parse(`{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`)
    const refused = (() => {
      try {
        Redaction.apply(config(), "payload", deep)
        return undefined
      } catch (error) {
        return error
      }
    })()
    assert(refused instanceof Action.InvalidAction)
    expect([refused.path, refused.reason, refused.limit]).toEqual(["payload.a" + ".0".repeat(63), "too_deep", 64])
    // Within limits the caller raises, the copy is made without recursion.
    const copied = Redaction.apply(config(), "payload", deep, { maxDepth: 200_000, maxNodes: 200_000 })
    let depth = 0
    for (let v = (copied.value as { a: unknown }).a; Array.isArray(v); v = v[0]) depth++
    expect(depth).toBe(100_000)
    expect(() => Redaction.apply(config(), "payload", new Array(200).fill({ x: 1 }), { maxNodes: 100 })).toThrow(
      expect.objectContaining({ _tag: "InvalidAction", reason: "too_many_nodes", limit: 100 })
    )
  })

  it("copies in order, masking as it goes: the same result as before it was iterative", () => {
    const result = Redaction.apply(config({ paths: ["payload.*.b"] }), "payload", {
      z: { b: 1, c: [Redacted.make(1), { token: "t", d: [null, true, 1n, () => 1] }] },
      a: { b: 2, __proto__x: 3 }
    })
    expect(JSON.stringify(result.value)).toBe(
      `{"z":{"b":"<redacted>","c":["<redacted>",{"token":"<redacted>","d":[null,true,"1",null]}]},"a":{"b":"<redacted>","__proto__x":3}}`
    )
    expect(result.omitted).toEqual(["payload.z.b", "payload.z.c.0", "payload.z.c.1.token", "payload.a.b"])
  })

  it("refuses an empty path or segment", () => {
    expect(Either.isLeft(Redaction.make({ paths: ["payload..x"] }))).toBe(true)
    expect(Either.isLeft(Redaction.make({ paths: [""] }))).toBe(true)
  })
})

describe("Redaction.record", () => {
  const set = PolicySet.unsafeMake({
    id: "s",
    version: "1",
    policy: Policy.make("rename", (a) =>
      Decision.transform({ code: "renamed", message: "renamed" }, { action: { ...a, name: "governed" } }))
  })
  const action = Action.make({
    actor: { id: "agent", kind: "agent", attributes: { ssn: "000" } },
    kind: "tool",
    name: "raw",
    payload: { card: { number: "4111" }, amount: 5 },
    metadata: { region: "eu", authorization: "Bearer x" }
  })
  const raw = PolicySet.evaluateSync(set, action)

  it("masks metadata and the replacement action, and lists every path", () => {
    const { payload, record } = Redaction.record(config(), raw, action)
    expect(payload).toBeUndefined()
    expect(record.inputs.metadata).toEqual({ region: "eu", authorization: "<redacted>" })
    expect(record.redaction.omitted).toEqual([
      "actor.attributes",
      "decision.action.actor.attributes",
      "decision.action.metadata.authorization",
      "decision.action.payload",
      "explain.0.result.action.actor.attributes",
      "explain.0.result.action.metadata.authorization",
      "explain.0.result.action.payload",
      "metadata.authorization",
      "payload"
    ])
    const entry = record.explain[0]!.result
    expect(entry._tag === "Transform" && entry.action.payload).toBeUndefined()
    const replacement = record.decision._tag === "Transform" ? record.decision.action : undefined
    expect(replacement?.payload).toBeUndefined()
    expect(replacement?.actor.attributes).toEqual({})
    // The raw record (what the runtime follows) is untouched.
    expect(raw.decision._tag === "Transform" && raw.decision.action.payload).toEqual(action.payload)
  })

  it("includes the masked payload when asked", () => {
    const { payload, record } = Redaction.record(
      config({ payload: "include", paths: ["payload.card.number"] }),
      raw,
      action
    )
    expect(payload).toEqual({ card: { number: "<redacted>" }, amount: 5 })
    expect(record.redaction.omitted).toContain("payload.card.number")
    // Configured paths apply to a replacement action from its own root.
    expect(record.decision._tag === "Transform" && record.decision.action.payload).toEqual(payload)
    expect(record.redaction.omitted).toContain("decision.action.payload.card.number")
    expect(record.redaction.omitted).not.toContain("payload")
  })
})
