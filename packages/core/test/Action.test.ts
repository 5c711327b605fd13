import { Action } from "@gavel/core"
import { Arbitraries } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
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

  it("keeps both of two keys that are equal after NFC, whatever their order", () => {
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
})
