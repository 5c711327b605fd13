import { Action, Approval, Audit, DecisionRecord, Override } from "@gavel/core"
import { Arbitraries } from "@gavel/testing"
import { assert, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createHash } from "node:crypto"
import { canonicalJson, sha256Hex, sha256HexPortable } from "../src/internal/canonical.js"

/** Rebuilds a JSON value with every object's keys in reverse insertion order. */
const reverseKeys = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(reverseKeys)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reverseKeys(v)]))
  }
  return value
}

/** Rebuilds a value with every string (keys included) in NFD. */
const toNfd = (value: unknown): unknown => {
  if (typeof value === "string") return value.normalize("NFD")
  if (Array.isArray(value)) return value.map(toNfd)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.normalize("NFD"), toNfd(v)]))
  }
  return value
}

describe("Action.hash", () => {
  it.prop("does not depend on key order", [Arbitraries.action], ([action]) => {
    expect(Action.hash(reverseKeys(action) as Action.Action)).toBe(Action.hash(action))
  })

  it.prop("does not depend on Unicode normalization", [Arbitraries.action], ([action]) => {
    const nfd = toNfd(action) as Action.Action
    // Rewriting keys to NFD merges two keys that differ only in normalization
    // (changing the data), so such actions are not rewritten here.
    fc.pre(Object.keys(nfd.actor.attributes).length === Object.keys(action.actor.attributes).length)
    fc.pre(Object.keys(nfd.metadata).length === Object.keys(action.metadata).length)
    expect(Action.hash(nfd)).toBe(Action.hash(action))
  })

  it("keeps both of two keys that are equal after NFC, whatever their order (canonical JSON of audit data)", () => {
    const a = { "\u00e9": "x", "e\u0301": "y" }
    const b = { "e\u0301": "y", "\u00e9": "x" }
    expect(canonicalJson(a)).toBe(canonicalJson(b))
    expect(canonicalJson(a)).not.toBe(canonicalJson({ "\u00e9": "x" }))
  })

  it("treats composed and decomposed spellings as the same action", () => {
    const base = { actor: { id: "zoë", kind: "human" as const }, kind: "tool", name: "café.order" }
    const composed = Action.make({ ...base, payload: { "naïve": "é" } })
    const decomposed = Action.make({
      actor: { id: "zoe\u0308", kind: "human" },
      kind: "tool",
      name: "cafe\u0301.order",
      payload: { "nai\u0308ve": "e\u0301" }
    })
    expect(Action.hash(decomposed)).toBe(Action.hash(composed))
  })

  it.prop("changes when any field changes", [Arbitraries.action, fc.string({ minLength: 1 })], ([action, s]) => {
    const variants: ReadonlyArray<Action.Action> = [
      { ...action, name: action.name + "x" },
      { ...action, kind: action.kind + "x" },
      { ...action, payload: { wrapped: action.payload ?? null } },
      { ...action, actor: { ...action.actor, id: action.actor.id + "x" } },
      { ...action, actor: { ...action.actor, roles: [...action.actor.roles, "r" + s] } },
      { ...action, metadata: { ...action.metadata, ["k" + s]: s } },
      { ...action, resource: { type: "other", id: s } }
    ]
    const hash = Action.hash(action)
    for (const variant of variants) expect(Action.hash(variant)).not.toBe(hash)
  })

  it.prop("ignores the request's own identifiers", [Arbitraries.action, fc.string()], ([action, s]) => {
    const retried: Action.Action = {
      ...action,
      requestId: s,
      correlationId: s + "c",
      trace: { traceId: "t" + s, spanId: "s" + s }
    }
    expect(Action.hash(retried)).toBe(Action.hash(action))
  })

  it("is a SHA-256 hex digest of the canonical JSON", () => {
    const action = Action.make({ actor: { id: "a", kind: "agent" }, kind: "tool", name: "t", payload: { b: 1, a: 2 } })
    const canonical = Action.canonical(action)
    expect(canonical).toBe(
      `{"actor":{"attributes":{},"id":"a","kind":"agent","roles":[]},"kind":"tool","metadata":{},"name":"t","payload":{"a":2,"b":1}}`
    )
    expect(Action.hash(action)).toBe(createHash("sha256").update(canonical, "utf8").digest("hex"))
  })
})

describe("canonical JSON and SHA-256", () => {
  it.prop("SHA-256 agrees with node:crypto", [fc.string({ unit: "binary", maxLength: 300 })], ([s]) => {
    expect(sha256Hex(s)).toBe(createHash("sha256").update(s, "utf8").digest("hex"))
    expect(sha256HexPortable(s)).toBe(createHash("sha256").update(s, "utf8").digest("hex"))
  })

  it("agrees with node:crypto around block boundaries (the portable implementation too)", () => {
    for (let n = 50; n < 140; n++) {
      const s = "x".repeat(n)
      expect(sha256HexPortable(s)).toBe(createHash("sha256").update(s).digest("hex"))
    }
    const long = "é".repeat(70_000)
    expect(sha256HexPortable(long)).toBe(createHash("sha256").update(long).digest("hex"))
  })

  it.prop("round-trips through JSON.parse for JSON values", [fc.jsonValue()], ([value]) => {
    expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)))
  })

  it("sorts keys, omits undefined members and normalizes -0", () => {
    expect(canonicalJson({ b: [1, undefined], a: undefined, c: -0 })).toBe(`{"b":[1,null],"c":0}`)
  })

  it("encodes without recursion: 100,000 levels (an audited payload) never overflow the stack", () => {
    const depth = 100_000
    const deep: unknown = JSON.parse(`{"z":1,"a":${"[{\"y\":".repeat(depth)}0${"}]".repeat(depth)}}`)
    const text = canonicalJson(deep)
    expect(text.length).toBe(`{"a":,"z":1}`.length + depth * `[{"y":}]`.length + 1)
    expect(text.startsWith(`{"a":[{"y":[{"y":`)).toBe(true)
    expect(text.endsWith(`}]}]}],"z":1}`)).toBe(true)
    expect(text.indexOf(`{"y":0}]`)).toBe(`{"a":`.length + (depth - 1) * `[{"y":`.length + 1)
    // A secret deep inside is still bound by its digest.
    const secret = (s: string) => ({ k: Redacted.make(JSON.parse(`${"[".repeat(depth)}"${s}"${"]".repeat(depth)}`)) })
    expect(canonicalJson(secret("a"))).not.toBe(canonicalJson(secret("b")))
  })
})

describe("Action.validateJson", () => {
  it("checks parsed JSON against the limits alone, without recursion, naming the path", () => {
    const deep: unknown = JSON.parse(`{"note":${"[".repeat(100_000)}${"]".repeat(100_000)}}`)
    const tooDeep = Action.validateJson(deep)
    assert(Either.isLeft(tooDeep))
    expect([tooDeep.left._tag, tooDeep.left.path, tooDeep.left.reason, tooDeep.left.limit]).toEqual([
      "InvalidAction",
      "note" + "[0]".repeat(63),
      "too_deep",
      64
    ])
    const wide = Action.validateJson({ items: new Array(100_000).fill(0) })
    assert(Either.isLeft(wide))
    expect([wide.left.reason, wide.left.limit]).toEqual(["too_many_nodes", 100_000])
    const long = Action.validateJson({ "a b": ["x".repeat(600)] }, { limits: { maxStringLength: 500 }, path: "body" })
    assert(Either.isLeft(long))
    expect([long.left.path, long.left.reason]).toEqual([`body["a b"][0]`, "too_long"])
    // Only the limits: keys an action may not carry are left to the decode that follows.
    const fine = { "<redacted>": 1, "Caf\u00e9": 1, "Cafe\u0301": 2, nested: [[[{}]]] }
    expect(Action.validateJson(fine)).toEqual(Either.right(fine))
    let nested: unknown = 0
    for (let i = 0; i < 64; i++) nested = [nested]
    expect(Either.isRight(Action.validateJson(nested))).toBe(true)
    expect(Either.isLeft(Action.validateJson([nested]))).toBe(true)
  })
})

// -----------------------------------------------------------------------------
// the value domain
// -----------------------------------------------------------------------------

/**
 * The reference encoder, written from the definition and nothing else:
 * JSON with every string and key in NFC, keys sorted by code unit,
 * `undefined` members left out, -0 as 0.
 */
const reference = (value: unknown): string => {
  if (value === null) return "null"
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false"
    case "number":
      return Object.is(value, -0) ? "0" : JSON.stringify(value)
    case "string":
      return JSON.stringify(value.normalize("NFC"))
  }
  if (Array.isArray(value)) return `[${value.map(reference).join(",")}]`
  const members = Object.entries(value as object)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k.normalize("NFC"), v] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${members.map(([k, v]) => `${JSON.stringify(k)}:${reference(v)}`).join(",")}}`
}

/** Keys that collide under NFC with each other, or NFC to ASCII, and any short string. */
const key = fc.oneof(
  fc.constantFrom("é", "e\u0301", "Å", "\u212B", "A\u030A", "K", "\u212A", ";", "\u037E", "a", "__proto__", "\ud800", ""),
  fc.string({ unit: "binary", maxLength: 4 })
)

const scalar = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom("é", "e\u0301", "\u212B", "Å"),
  fc.string({ unit: "binary", maxLength: 6 })
)

/** JSON data whose objects have keys distinct after NFC: what an action may carry. */
const { value: data } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalar, tie("array"), tie("object")),
  array: fc.array(tie("value"), { maxLength: 4 }),
  object: fc.uniqueArray(fc.tuple(key, tie("value")), { maxLength: 4, selector: ([k]) => k.normalize("NFC") })
    .map((entries) => Object.fromEntries(entries))
}))

const withPayload = (payload: unknown): Action.Action =>
  Action.make({ actor: { id: "agent-7", kind: "agent" }, kind: "tool", name: "t", payload })

/** The same data, its keys inserted in reverse order and every string in NFD. */
const respelled = (value: unknown): unknown => {
  if (typeof value === "string") return value.normalize("NFD")
  if (Array.isArray(value)) return value.map(respelled)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k.normalize("NFD"), respelled(v)]))
  }
  return value
}

describe("Action.hash is injective over the value domain", () => {
  it.prop("the canonical JSON is the reference encoding", [data], ([payload]) => {
    const action = withPayload(payload)
    expect(Action.canonical(action)).toBe(reference(action))
  })

  it.prop("distinct values hash apart; the same value (after NFC) hashes the same", [data, data], ([a, b]) => {
    const same = reference(a) === reference(b)
    expect(Action.hash(withPayload(a)) === Action.hash(withPayload(b))).toBe(same)
  })

  it.prop("key order and Unicode normalization do not change the hash", [data], ([payload]) => {
    // NFD can merge two keys that are distinct in NFC: such data is not respelled.
    const other = respelled(payload)
    fc.pre(Either.isRight(Action.validate(withPayload(other))))
    expect(Action.hash(withPayload(other))).toBe(Action.hash(withPayload(payload)))
  })

  it.prop("a Redacted value never hashes like the plain data it holds", [data], ([payload]) => {
    const secret = withPayload({ v: Redacted.make(payload) })
    expect(Action.hash(secret)).not.toBe(Action.hash(withPayload({ v: payload })))
    // The secret is not written: the digest of its reference encoding stands in for it.
    expect(Action.canonical(secret)).toContain(`"payload":{"v":{"<redacted>":"${sha256Hex(reference(payload))}"}}`)
  })

  it.prop("for the actions of today, the same text as the audit's canonical JSON", [Arbitraries.action], ([action]) => {
    expect(Action.canonical(action)).toBe(canonicalJson(action))
  })
})

class Point {
  constructor(readonly x: number) {}
}

const cases = (): ReadonlyArray<readonly [string, unknown, string, Action.InvalidActionReason]> => {
  const sparse: Array<number> = [1, 2, 3]
  delete sparse[1]
  const extra = Object.assign([1, 2], { note: "x" })
  const revocable = Proxy.revocable({}, {})
  revocable.revoke()
  const cyclic: Record<string, unknown> = { a: { b: [] } }
  ;((cyclic["a"] as Record<string, unknown>)["b"] as Array<unknown>).push(cyclic)
  const deep = JSON.parse(`${"[".repeat(100_000)}${"]".repeat(100_000)}`)
  let dag: unknown = 0
  for (let i = 0; i < 64; i++) dag = [dag, dag]
  return [
    ["Map", { items: [1, new Map([["a", 1]])] }, "payload.items[1]", "unsupported_type"],
    ["Set", { s: new Set([1]) }, "payload.s", "unsupported_type"],
    ["Date", { at: new Date(0) }, "payload.at", "unsupported_type"],
    ["class instance", { p: new Point(1) }, "payload.p", "unsupported_type"],
    ["bigint", { n: 1n }, "payload.n", "unsupported_type"],
    ["function", { f: () => 1 }, "payload.f", "unsupported_type"],
    ["symbol", { s: Symbol("s") }, "payload.s", "unsupported_type"],
    ["NaN", { x: { y: Number.NaN } }, "payload.x.y", "non_finite_number"],
    ["Infinity", [Infinity], "payload[0]", "non_finite_number"],
    ["-Infinity", { "a b": -Infinity }, `payload["a b"]`, "non_finite_number"],
    ["undefined in an array", [1, undefined], "payload[1]", "sparse_array"],
    ["sparse array", sparse, "payload[1]", "sparse_array"],
    ["array property", extra, "payload.note", "array_property"],
    ["symbol key", { o: { [Symbol("k")]: 1 } }, "payload.o", "symbol_key"],
    ["NFC-colliding keys", { to: { "Caf\u00e9": "alice", "Cafe\u0301": "mallory" } }, `payload.to["Café"]`, "duplicate_key"],
    ["reserved redacted shape", { v: { "<redacted>": "0".repeat(64) } }, `payload.v["<redacted>"]`, "reserved_key"],
    ["throwing getter", {
      get boom(): number {
        throw new Error("no")
      }
    }, "payload.boom", "unreadable"],
    ["revoked Proxy", { p: revocable.proxy }, "payload.p", "unreadable"],
    ["undefined in a Redacted", { s: Redacted.make(undefined) }, "payload.s", "unsupported_type"],
    ["Map in a Redacted (the path stops at the secret)", { s: Redacted.make({ inner: new Map() }) }, "payload.s", "unsupported_type"],
    ["100,000 levels", deep, "payload" + "[0]".repeat(64), "too_deep"],
    ["cycle", cyclic, "payload.a.b[0]", "cycle"],
    ["2^64 shared references", dag, "", "too_many_nodes"]
  ]
}

describe("Action refuses what is not JSON data", () => {
  it("with InvalidAction naming the path, from validate, make, canonical, hash and decode — never a throw of its own", () => {
    for (const [name, payload, path, reason] of cases()) {
      const action = Action.makeUnvalidated({ actor: { id: "a", kind: "agent" }, kind: "tool", name: "t", payload })
      const checked = Action.validate(action)
      assert(Either.isLeft(checked), name)
      expect([name, checked.left._tag, checked.left.reason]).toEqual([name, "InvalidAction", reason])
      if (reason !== "too_many_nodes") expect([name, checked.left.path]).toEqual([name, path])
      for (const call of [() => Action.make(action), () => Action.hash(action), () => Action.canonical(action)]) {
        expect(call).toThrow(Action.InvalidAction)
      }
      const decoded = Schema.decodeUnknownEither(Action.Action)(action)
      assert(Either.isLeft(decoded), name)
      expect(decoded.left.message).toContain(reason)
      if (reason !== "too_many_nodes") expect(decoded.left.message).toContain(`${path}:`)
    }
  })

  it("NFC-colliding keys with their values swapped would hash the same: refused in metadata and attributes too", () => {
    const make = (metadata: Record<string, string>) =>
      Action.makeUnvalidated({ actor: { id: "a", kind: "agent" }, kind: "tool", name: "t", metadata })
    const a = make({ "Caf\u00e9": "x", "Cafe\u0301": "y" })
    const b = make({ "Caf\u00e9": "y", "Cafe\u0301": "x" })
    for (const action of [a, b]) expect(() => Action.hash(action)).toThrow(/metadata\["Café"\]: .*duplicate_key/)
    const attributes = Action.makeUnvalidated({
      actor: { id: "a", kind: "agent", attributes: { "\u212B": "1", "\u00C5": "2" } },
      kind: "tool",
      name: "t"
    })
    expect(Either.getLeft(Action.validate(attributes)).pipe((e) => e._tag === "Some" && e.value.path)).toBe(
      `actor.attributes["Å"]`
    )
  })

  it("limits are configurable; the default refuses one level past 64, one value past 100,000", () => {
    let nested: unknown = 0
    for (let i = 0; i < 64; i++) nested = [nested]
    expect(Either.isRight(Action.validate(withPayloadUnchecked(nested)))).toBe(true)
    const tooDeep = Action.validate(withPayloadUnchecked([nested]))
    expect(Either.isLeft(tooDeep) && [tooDeep.left.reason, tooDeep.left.limit]).toEqual(["too_deep", 64])
    expect(Either.isRight(Action.validate(withPayloadUnchecked([nested]), { maxDepth: 65 }))).toBe(true)
    const wide = withPayloadUnchecked(new Array(200).fill(1))
    const tooMany = Action.validate(wide, { maxNodes: 100 })
    expect(Either.isLeft(tooMany) && [tooMany.left.reason, tooMany.left.limit]).toEqual(["too_many_nodes", 100])
    const tooLong = Action.validate(withPayloadUnchecked({ text: "x".repeat(1000) }), { maxStringLength: 500 })
    expect(Either.isLeft(tooLong) && [tooLong.left.path, tooLong.left.reason]).toEqual(["payload.text", "too_long"])
  })

  it("an undefined member is an absent one", () => {
    expect(Action.hash(withPayload({ a: 1, b: undefined }))).toBe(Action.hash(withPayload({ a: 1 })))
  })

  it.effect("InvalidAction is a typed error that crosses the wire", () =>
    Effect.gen(function*() {
      const error = new Action.InvalidAction({ path: "payload.x", reason: "too_deep", limit: 64 })
      const encoded = yield* Schema.encode(Action.InvalidAction)(error)
      expect(encoded).toEqual({ _tag: "InvalidAction", path: "payload.x", reason: "too_deep", limit: 64 })
      expect(error.message).toBe("payload.x: nested deeper than 64 levels (too_deep)")
    }))
})

const withPayloadUnchecked = (payload: unknown): Action.Action =>
  Action.makeUnvalidated({ actor: { id: "agent-7", kind: "agent" }, kind: "tool", name: "t", payload })

describe("decoding an action", () => {
  it("counts the whole action against the limits, as validate does, not each field alone", () => {
    const decode = Schema.decodeUnknownEither(Action.Action)
    const base = { actor: { id: "a", kind: "agent" as const, roles: [], attributes: {} }, kind: "tool", name: "t" }
    // 99,990 array elements plus the array, the action's own values and 8 metadata values: over 100,000 in all.
    const payload = Array.from({ length: 99_990 }, () => 0)
    const metadata = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, "v"]))
    const alone = decode({ ...base, payload, metadata: {} })
    expect(Either.isRight(alone)).toBe(true)
    const together = decode({ ...base, payload, metadata })
    assert(Either.isLeft(together))
    expect(String(together.left)).toContain("too_many_nodes")
    expect(Either.isLeft(Action.validate({ ...Action.makeUnvalidated(base), payload, metadata }))).toBe(true)
  })
})

describe("a decode error of a value given from code", () => {
  // Built iteratively: 10,000 levels, far past what Effect's formatters can print recursively.
  let deepObject: unknown = {}
  for (let i = 0; i < 10_000; i++) deepObject = { a: deepObject }
  let deepArray: unknown = []
  for (let i = 0; i < 10_000; i++) deepArray = [deepArray]
  const actor = { id: "a", kind: "agent", roles: [], attributes: {} }
  const action = { actor, kind: "tool", name: "t", metadata: {} }
  const objectPath = (root: string) => root + ".a".repeat(64)
  const arrayPath = (root: string) => root + "[0]".repeat(64)

  const cases: ReadonlyArray<readonly [string, Schema.Schema.AnyNoContext, unknown, string]> = [
    ["Action: name", Action.Action, { ...action, name: deepObject }, objectPath("name")],
    ["Action: name (arrays)", Action.Action, { ...action, name: deepArray }, arrayPath("name")],
    ["Action: actor.id", Action.Action, { ...action, actor: { ...actor, id: deepObject } }, objectPath("actor.id")],
    ["Action: resource.type", Action.Action, { ...action, resource: { type: deepObject, id: "r" } }, objectPath("resource.type")],
    ["Action: a metadata value", Action.Action, { ...action, metadata: { region: deepArray } }, arrayPath("metadata.region")],
    ["Action: trace.traceId", Action.Action, { ...action, trace: { traceId: deepObject, spanId: "s" } }, objectPath("trace.traceId")],
    ["Action: the value itself", Action.Action, deepArray, "[0]".repeat(64)],
    ["Principal", Action.Principal, { ...actor, roles: [deepArray] }, arrayPath("roles[0]")],
    ["Resource", Action.Resource, { type: "t", id: deepObject }, objectPath("id")],
    ["TraceContext", Action.TraceContext, { traceId: deepArray, spanId: "s" }, arrayPath("traceId")],
    ["ApprovalRequest", Approval.ApprovalRequest, { id: deepObject }, objectPath("id")],
    ["DecisionRecord", DecisionRecord.DecisionRecord, { decisionId: deepObject }, objectPath("decisionId")],
    ["AuditEvent", Audit.AuditEvent, { sequence: 1, type: deepObject }, objectPath("type")],
    ["Override", Override.Override, { id: deepArray }, arrayPath("id")]
  ]

  it("nested 10,000 deep in a typed field fails typed, its message naming the path and the limit", () => {
    for (const [name, schema, input, path] of cases) {
      const decoded = Schema.decodeUnknownEither(schema)(input)
      assert(Either.isLeft(decoded), name)
      const expected = `${path}: nested deeper than 64 levels (too_deep)`
      expect([name, decoded.left.message]).toEqual([name, expect.stringContaining(expected)])
      const issues = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
      expect([name, issues.map((issue) => issue.message)]).toEqual([name, [expected]])
    }
  })

  it.effect("through the modules' own decoders too", () =>
    Effect.gen(function*() {
      for (
        const decode of [
          Approval.decodeUnknown({ id: deepObject }),
          DecisionRecord.decodeUnknown({ decisionId: deepObject }),
          Audit.decodeUnknown({ sequence: 1, type: deepObject })
        ] as ReadonlyArray<Effect.Effect<unknown, ParseResult.ParseError>>
      ) {
        const error = yield* Effect.flip(decode)
        expect(error.message).toContain("nested deeper than 64 levels (too_deep)")
      }
    }))

  it("within the limits, reads as without Action.boundedMessages", () => {
    const Plain = Schema.Struct({ note: Schema.optional(Schema.String.pipe(Schema.maxLength(3))), n: Schema.Number })
      .annotations({ identifier: "Body" })
    const Bounded = Action.boundedMessages(Plain)
    const inputs: ReadonlyArray<unknown> = [
      5,
      null,
      [1, [2]],
      {},
      { n: "1" },
      { n: 1, note: "long" },
      { n: 1, note: { a: { b: [1, "x"] } } },
      { n: 1, extra: true, note: 7 }
    ]
    for (const input of inputs) {
      for (const options of [{}, { errors: "all", onExcessProperty: "error" }] as const) {
        const plain = Schema.decodeUnknownEither(Plain, options)(input)
        const bounded = Schema.decodeUnknownEither(Bounded, options)(input)
        assert(Either.isLeft(plain) && Either.isLeft(bounded))
        expect(bounded.left.message).toBe(plain.left.message)
        expect(ParseResult.ArrayFormatter.formatErrorSync(bounded.left))
          .toEqual(ParseResult.ArrayFormatter.formatErrorSync(plain.left))
      }
    }
    // A value within the depth but over the values allowed is not printed either.
    const wide = Schema.decodeUnknownEither(Action.boundedMessages(Plain, { maxNodes: 10 }))({ n: 1, note: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] })
    assert(Either.isLeft(wide))
    expect(wide.left.message).toBe("note[0][8]: more than 10 values (too_many_nodes)")
  })
})
