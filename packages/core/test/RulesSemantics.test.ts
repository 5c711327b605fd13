/**
 * What a decoded rules document means, read one way only: text compared in
 * NFC on both sides (as `policyHash` hashes it), the action read through own
 * properties only, every number of a document representable by what it
 * becomes, and the corners the reference leaves no longer open (issue 27).
 */
import { Action, Decision, Policy, PolicySet, Rules } from "@gavel/core"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Schema from "effect/Schema"
import { decode, reason, refuse } from "./fixtures/rules.js"

// -----------------------------------------------------------------------------
// helpers
// -----------------------------------------------------------------------------

const doc = (rules: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) => ({
  id: "d",
  version: "1",
  combine: "deny-wins",
  rules,
  ...extra
})

const action = (input: Partial<Action.Input> = {}): Action.Action =>
  Action.make({
    actor: { id: "agent-1", kind: "agent", roles: ["agent"], tenant: "acme" },
    kind: "tool",
    name: "payments.transfer",
    resource: { type: "account", id: "acct-9" },
    payload: { amount: 5000 },
    metadata: { channel: "web" },
    ...input
  })

const evaluate = (rules: Rules.Rules, a: Action.Action): Decision.Result => Policy.evaluateSync(rules.policy, a)

/** The outcome of a one-rule document whose rule has `when` and allows (a false condition abstains). */
const allowsWhen = (condition: unknown, a: Action.Action): Decision.Result["_tag"] =>
  evaluate(decode(doc([{ id: "r", when: condition, effect: "allow" }])), a)._tag

/** Every string (and key) of a JSON-like value in another normalization form, picked by `form`. */
const vary = (value: unknown, form: (s: string) => "NFC" | "NFD" | "as is"): unknown => {
  const text = (s: string) => {
    const f = form(s)
    return f === "as is" ? s : s.normalize(f)
  }
  if (typeof value === "string") return text(value)
  if (Array.isArray(value)) return value.map((v) => vary(v, form))
  if (typeof value !== "object" || value === null) return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [text(k), vary(v, form)]))
}

/** A form picker from a list of choices, cycling (so that strings of one document get different forms). */
const picker = (choices: ReadonlyArray<"NFC" | "NFD" | "as is">) => {
  let i = 0
  return () => choices[i++ % choices.length]!
}

const forms = fc.array(fc.constantFrom("NFC" as const, "NFD" as const, "as is" as const), { minLength: 1, maxLength: 8 })

// -----------------------------------------------------------------------------
// 1. one canonical form: NFC
// -----------------------------------------------------------------------------

describe("Rules: text is compared in NFC, as policyHash hashes it", () => {
  const composed = "caf\u00e9.order"
  const decomposed = "cafe\u0301.order"
  const denying = (name: string) =>
    doc([{ id: "r", match: { name }, effect: "deny", reason: reason("no") }], { default: "allow" })

  it("two documents with the same hash decide an action alike (match.name composed or decomposed)", () => {
    const a = decode(denying(composed))
    const b = decode(denying(decomposed))
    expect(a.policyHash).toBe(b.policyHash)
    for (const name of [composed, decomposed]) {
      expect(evaluate(a, action({ name }))._tag).toBe("Deny")
      expect(evaluate(b, action({ name }))._tag).toBe("Deny")
    }
    // The decoded document (what explain shows and the hash covers) is in NFC.
    expect(b.document.rules[0]!.match!.name).toBe(composed)
  })

  it("compares tenants, roles, resources, kinds, conditions and globs in NFC", () => {
    const e = "e\u0301"
    const rules = decode(doc([{
      id: "r",
      match: { kind: `k${e}`, tenant: `t${e}`, roles: [`r${e}`], resource: { type: `t${e}`, id: `i${e}*` }, name: `n${e}?` },
      when: {
        all: [
          { field: `metadata.k${e}`, eq: `v${e}` },
          { field: `actor.attributes.k${e}`, in: [`v${e}`] },
          { field: `payload.k${e}.k${e}`, glob: `*${e}` },
          { field: "actor.roles", in: [`r${e}`] }
        ]
      },
      effect: "allow"
    }]))
    const nfc = (s: string) => s.normalize("NFC")
    const written = (f: (s: string) => string) =>
      action({
        actor: { id: "a", kind: "agent", roles: [f(`r${e}`)], tenant: f(`t${e}`), attributes: { [f(`k${e}`)]: f(`v${e}`) } },
        kind: f(`k${e}`),
        name: f(`n${e}x`),
        resource: { type: f(`t${e}`), id: f(`i${e}-1`) },
        payload: { [f(`k${e}`)]: { [f(`k${e}`)]: f(`x${e}`) } },
        metadata: { [f(`k${e}`)]: f(`v${e}`) }
      })
    expect(evaluate(rules, written(nfc))._tag).toBe("Allow")
    expect(evaluate(rules, written((s) => s.normalize("NFD")))._tag).toBe("Allow")
    expect(evaluate(rules, written((s) => s))._tag).toBe("Allow")
  })

  it("indexes literal names in NFC: an action named in NFD reaches the rules of its name", () => {
    const rules = decode(doc([
      { id: "a", match: { name: composed }, effect: "deny", reason: reason("a") },
      { id: "b", match: { name: "other" }, effect: "deny", reason: reason("b") }
    ], { default: "allow" }))
    const record = PolicySet.evaluateSync(Rules.policySet(rules), action({ name: decomposed }))
    expect(record.reasonCodes).toEqual(["a"])
  })

  // Pieces whose forms differ: é composed or not, the Kelvin sign (NFC: K),
  // Å three ways, a dotted long s with a dot below (reordered marks).
  const piece = fc.constantFrom("a", "K", "\u212a", "\u00e9", "e\u0301", "\u00c5", "A\u030a", "\u212b", "\u1e9b\u0323", ".")
  const text = fc.array(piece, { minLength: 1, maxLength: 2 }).map((ps) => ps.join(""))
  const glob = fc.array(fc.oneof(piece, fc.constantFrom("*", "?")), { minLength: 1, maxLength: 3 }).map((ps) => ps.join(""))
  const key = fc.constantFrom("k", "\u00e9", "e\u0301x", "\u212a")

  const condition = fc.oneof(
    fc.record({ field: key.map((k) => `metadata.${k}`), eq: text }),
    fc.record({ field: key.map((k) => `actor.attributes.${k}`), in: fc.array(text, { minLength: 1, maxLength: 3 }) }),
    fc.record({ field: key.map((k) => `payload.${k}`), glob }),
    fc.record({ field: fc.constantFrom("name", "kind", "actor.tenant", "resource.id"), glob }),
    fc.record({ field: fc.constant("actor.roles"), in: fc.array(text, { minLength: 1, maxLength: 2 }) }),
    fc.record({ field: key.map((k) => `payload.${k}`), exists: fc.boolean() })
  )

  const rule = fc.record({
    match: fc.record({
      name: fc.oneof(text, glob),
      kind: text,
      tenant: text,
      roles: fc.array(text, { minLength: 1, maxLength: 2 }),
      resource: fc.record({ type: text, id: fc.oneof(text, glob) }, { requiredKeys: [] })
    }, { requiredKeys: [] }),
    when: condition,
    effect: fc.constantFrom("allow", "deny", "warn")
  }, { requiredKeys: ["effect"] })

  const document = fc.array(rule, { minLength: 1, maxLength: 5 }).map((rules) =>
    doc(
      rules.map((r, i) => ({ id: `r${i}`, ...r, ...(r.effect === "allow" ? {} : { reason: reason(`c${i}`) }) })),
      { default: "deny" }
    )
  )

  const record = (keys: fc.Arbitrary<string>) =>
    fc.uniqueArray(fc.tuple(keys, text), { maxLength: 3, selector: ([k]) => k.normalize("NFC") }).map(Object.fromEntries)

  const actions = fc.record({
    name: text,
    kind: text,
    tenant: fc.option(text, { nil: undefined }),
    roles: fc.array(text, { maxLength: 2 }),
    resource: fc.option(fc.record({ type: text, id: text }), { nil: undefined }),
    metadata: record(key),
    attributes: record(key),
    payload: record(key)
  }).map((r) =>
    Action.make({
      actor: { id: "a", kind: "agent", roles: r.roles, tenant: r.tenant, attributes: r.attributes },
      kind: r.kind,
      name: r.name,
      resource: r.resource,
      metadata: r.metadata,
      payload: r.payload
    })
  )

  it.prop(
    "two documents with equal policyHash decide every action alike",
    [document, forms, forms, actions],
    ([written, a, b, act]) => {
      const one = decode(vary(written, picker(a)))
      const two = decode(vary(written, picker(b)))
      expect(one.policyHash).toBe(two.policyHash)
      expect(evaluate(one, act)).toEqual(evaluate(two, act))
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "an action and its NFC/NFD variants are decided alike",
    [document, actions, forms],
    ([written, act, f]) => {
      const rules = decode(written)
      const variant = vary(act, picker(f)) as Action.Action
      expect(evaluate(rules, variant)).toEqual(evaluate(rules, act))
      expect(Rules.explain(rules, variant).matched).toEqual(Rules.explain(rules, act).matched)
    },
    { fastCheck: { numRuns: 300 } }
  )
})

// -----------------------------------------------------------------------------
// 2. own properties only
// -----------------------------------------------------------------------------

describe("Rules read an action's own properties only", () => {
  /** Sets `key` on `target` (a prototype) for the length of `f`. */
  const polluted = <A>(target: object, key: string, value: unknown, f: () => A): A => {
    Object.defineProperty(target, key, { value, configurable: true, writable: true, enumerable: false })
    try {
      return f()
    } finally {
      delete (target as Record<string, unknown>)[key]
    }
  }

  const plain = (): Record<string, unknown> => ({ ...action() })
  const without = (key: string, from: Record<string, unknown>) => {
    const { [key]: _, ...rest } = from
    return rest
  }
  const actorWithout = (key: string) => ({ ...plain(), actor: without(key, { ...action().actor }) })
  const resourceWithout = (key: string) => ({ ...plain(), resource: without(key, { type: "account", id: "acct-9" }) })

  interface Case {
    readonly root: string
    readonly rule: Record<string, unknown>
    /** The action, lacking what the rule reads. */
    readonly action: Record<string, unknown>
    readonly prototype: object
    readonly key: string
    readonly value: unknown
  }

  const cases: ReadonlyArray<Case> = [
    { root: "match.tenant", rule: { match: { tenant: "acme" } }, action: actorWithout("tenant"), prototype: Object.prototype, key: "tenant", value: "acme" },
    { root: "when actor.tenant", rule: { when: { field: "actor.tenant", eq: "acme" } }, action: actorWithout("tenant"), prototype: Object.prototype, key: "tenant", value: "acme" },
    { root: "match.roles", rule: { match: { roles: ["admin"] } }, action: actorWithout("roles"), prototype: Object.prototype, key: "roles", value: ["admin"] },
    { root: "when actor.roles", rule: { when: { field: "actor.roles", in: ["admin"] } }, action: actorWithout("roles"), prototype: Object.prototype, key: "roles", value: ["admin"] },
    { root: "match.roles (a hole)", rule: { match: { roles: ["admin"] } }, action: { ...plain(), actor: { ...action().actor, roles: new Array(1) } }, prototype: Array.prototype, key: "0", value: "admin" },
    { root: "when actor.id", rule: { when: { field: "actor.id", eq: "root" } }, action: actorWithout("id"), prototype: Object.prototype, key: "id", value: "root" },
    { root: "when actor.kind", rule: { when: { field: "actor.kind", eq: "human" } }, action: actorWithout("kind"), prototype: Object.prototype, key: "kind", value: "human" },
    { root: "actor", rule: { match: { roles: ["admin"] } }, action: without("actor", plain()), prototype: Object.prototype, key: "actor", value: { id: "x", kind: "human", roles: ["admin"] } },
    { root: "when actor.attributes", rule: { when: { field: "actor.attributes.level", eq: "high" } }, action: plain(), prototype: Object.prototype, key: "level", value: "high" },
    { root: "match.resource", rule: { match: { resource: { type: "secret" } } }, action: without("resource", plain()), prototype: Object.prototype, key: "resource", value: { type: "secret", id: "s" } },
    { root: "match.resource.type", rule: { match: { resource: { type: "secret" } } }, action: resourceWithout("type"), prototype: Object.prototype, key: "type", value: "secret" },
    { root: "match.resource.id", rule: { match: { resource: { id: "s-*" } } }, action: resourceWithout("id"), prototype: Object.prototype, key: "id", value: "s-1" },
    { root: "when resource.type", rule: { when: { field: "resource.type", eq: "secret" } }, action: without("resource", plain()), prototype: Object.prototype, key: "resource", value: { type: "secret", id: "s" } },
    { root: "when resource.id", rule: { when: { field: "resource.id", glob: "s-*" } }, action: resourceWithout("id"), prototype: Object.prototype, key: "id", value: "s-1" },
    { root: "match.kind", rule: { match: { kind: "admin" } }, action: without("kind", plain()), prototype: Object.prototype, key: "kind", value: "admin" },
    { root: "when kind", rule: { when: { field: "kind", eq: "admin" } }, action: without("kind", plain()), prototype: Object.prototype, key: "kind", value: "admin" },
    { root: "match.name (indexed)", rule: { match: { name: "sudo" } }, action: without("name", plain()), prototype: Object.prototype, key: "name", value: "sudo" },
    { root: "match.name (glob)", rule: { match: { name: "su*" } }, action: without("name", plain()), prototype: Object.prototype, key: "name", value: "sudo" },
    { root: "when name", rule: { when: { field: "name", glob: "su*" } }, action: without("name", plain()), prototype: Object.prototype, key: "name", value: "sudo" },
    { root: "when metadata", rule: { when: { field: "metadata.approved", eq: "yes" } }, action: plain(), prototype: Object.prototype, key: "approved", value: "yes" },
    { root: "when payload", rule: { when: { field: "payload", exists: true } }, action: without("payload", plain()), prototype: Object.prototype, key: "payload", value: 1 },
    { root: "when payload.<key>", rule: { when: { field: "payload.trusted", eq: true } }, action: plain(), prototype: Object.prototype, key: "trusted", value: true },
    { root: "when payload.<index>", rule: { when: { field: "payload.items.3", eq: "ok" } }, action: { ...plain(), payload: { items: ["a"] } }, prototype: Array.prototype, key: "3", value: "ok" }
  ]

  it.prop("a property of a prototype is never read, for every root a rule reads", [fc.constantFrom(...cases)], ([c]) => {
    // The rule allows when it applies; otherwise the default denies.
    const rules = decode(doc([{ id: "r", ...c.rule, effect: "allow" }], { default: "deny" }))
    const a = c.action as unknown as Action.Action
    const clean = evaluate(rules, a)
    const dirty = polluted(c.prototype, c.key, c.value, () => evaluate(rules, a))
    expect(clean._tag).not.toBe("Allow")
    expect(dirty).toEqual(clean)
  })

  it.prop(
    "an action built by Action.make while a prototype is polluted carries none of it",
    // (Every case but the one without an actor, which `Action.Input` requires.)
    [fc.constantFrom(...cases.filter((c) => c.prototype === Object.prototype && c.root !== "actor"))],
    ([c]) => {
      const rules = decode(doc([{ id: "r", ...c.rule, effect: "allow" }], { default: "deny" }))
      const input = c.action as unknown as Action.Input
      const clean = evaluate(rules, Action.makeUnvalidated(input))
      // Built after the pollution: `make` must read the input's own properties only.
      const dirty = polluted(c.prototype, c.key, c.value, () => evaluate(rules, Action.makeUnvalidated(input)))
      expect(dirty).toEqual(clean)
    }
  )
})

// -----------------------------------------------------------------------------
// 3. numbers representable
// -----------------------------------------------------------------------------

describe("Rules: every number of a document is representable", () => {
  const approval = (settings: Record<string, unknown>) =>
    doc([{ id: "big", effect: "pending", reason: reason("p"), approval: { roles: ["finance"], ...settings } }])

  it("refuses a timeout past 366 days, with its path, and accepts 366 days", () => {
    const problems = refuse(approval({ timeoutSeconds: 8640000000000 }))
    expect(problems).toEqual([{
      rule: "big",
      path: "rules[0].approval.timeoutSeconds",
      message: "timeoutSeconds is at most 31622400 (366 days), not 8640000000000"
    }])
    expect(Rules.maxTimeoutSeconds).toBe(366 * 24 * 60 * 60)
    const rules = decode(approval({ timeoutSeconds: Rules.maxTimeoutSeconds }))
    const explanation = Rules.explain(rules, action())
    expect(explanation.record.decision._tag).toBe("RequireApproval")
    expect(() => Schema.encodeSync(Rules.Explanation)(explanation)).not.toThrow()
  })

  it("refuses a quorum above 1,000", () => {
    expect(refuse(approval({ quorum: 1001 }))).toMatchObject([
      { path: "rules[0].approval.quorum", message: "quorum is at most 1000, not 1001" }
    ])
    expect(decode(approval({ quorum: Rules.maxQuorum })).document.rules[0]!.approval!.quorum).toBe(1000)
  })

  it.prop(
    "a document is refused, or its explanation of any action encodes",
    [
      fc.oneof(fc.integer({ min: 1, max: 2 ** 31 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.double()),
      fc.oneof(fc.integer({ min: 1, max: 2000 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.double()),
      fc.oneof(fc.integer(), fc.double())
    ],
    ([timeoutSeconds, quorum, bound]) => {
      const input = doc([
        { id: "p", when: { field: "payload.amount", gt: bound }, effect: "pending", reason: reason("p"), approval: { roles: ["f"], quorum, timeoutSeconds } }
      ])
      const result = Effect.runSync(Effect.either(Rules.decode(input)))
      if (Either.isLeft(result)) return
      const explanation = Rules.explain(result.right, action())
      expect(() => Schema.encodeSync(Rules.Explanation)(explanation)).not.toThrow()
    }
  )
})

// -----------------------------------------------------------------------------
// 4. the index by name, with names and globs mixed
// -----------------------------------------------------------------------------

describe("Rules index by name", () => {
  it("decides as every rule would, past the index's budget of kept groups too", () => {
    // 300 literal names and 300 globs: each name's group holds 301 rules,
    // so only the first few groups are kept and the rest are built per call.
    const n = 300
    const rules = decode(
      doc(
        Array.from({ length: 2 * n }, (_, i) => ({
          id: `r${i}`,
          match: { name: i % 2 === 0 ? `tool${i}` : `tool${i - 1}*` },
          effect: "deny",
          reason: reason(`c${i}`)
        }))
      ),
      { limits: { maxRules: 2 * n } }
    )
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 2 * n; i += 2) {
        const a = action({ name: `tool${i}` })
        const explanation = Rules.explain(rules, a)
        const expected = explanation.matched.map((m) => m.ruleId.replace("r", "c")).sort()
        expect([...explanation.record.reasonCodes].sort()).toEqual(expected)
        expect(expected).toContain(`c${i}`)
      }
    }
  })
})

// -----------------------------------------------------------------------------
// 5. what the reference no longer leaves open
// -----------------------------------------------------------------------------

describe("Rules: the corners, decided", () => {
  it("names a rule whose id is invalid by its index, as the reference says", () => {
    const [problem] = refuse(doc([{ id: "has space", effect: "allow" }]))
    expect(problem).toMatchObject({ rule: "#0", path: "rules[0].id" })
    expect(problem!.message).toContain(`"has space" is not a valid id`)
  })

  it("gives every default the reason rules.default, allow included", () => {
    for (const effect of ["allow", "warn", "deny", "defer"] as const) {
      const rules = decode(doc([{ id: "r", match: { name: "other" }, effect: "deny", reason: reason("r") }], { default: effect }))
      const result = evaluate(rules, action())
      expect(result._tag).not.toBe("NotApplicable")
      expect(Decision.reasonCodes(result as Decision.Decision)).toEqual(["rules.default"])
    }
  })

  describe("? matches one code point", () => {
    const matches = (glob: string, name: string) =>
      evaluate(decode(doc([{ id: "r", match: { name: glob }, effect: "allow" }])), action({ name }))._tag === "Allow"

    it("e.? matches e.😀, e.?? does not", () => {
      expect(matches("e.?", "e.😀")).toBe(true)
      expect(matches("e.??", "e.😀")).toBe(false)
      expect(matches("*?", "😀")).toBe(true)
      expect(matches("?😀?", "a😀😀")).toBe(true)
      expect(allowsWhen({ field: "payload.s", glob: "?" }, action({ payload: { s: "😀" } }))).toBe("Allow")
    })

    // The reference: the same glob as a regular expression over code points.
    const reference = (glob: string, text: string): boolean =>
      new RegExp(
        `^${
          Array.from(glob).map((c) =>
            c === "*" ? ".*" : c === "?" ? "." : `\\u{${c.codePointAt(0)!.toString(16)}}`
          ).join("")
        }$`,
        "su"
      ).test(text)

    const unit = fc.constantFrom("a", "b", "😀", "\ud83d", "\ude00", "\u00e9")
    it.prop(
      "matching agrees with a code-point regular expression",
      [
        fc.array(fc.oneof(unit, fc.constantFrom("*", "?")), { maxLength: 6 }).map((u) => u.join("")),
        fc.array(unit, { maxLength: 8 }).map((u) => u.join(""))
      ],
      ([glob, text]) => {
        const condition = { field: "payload.s", glob }
        const outcome = allowsWhen(condition, action({ payload: { s: text } }))
        expect(outcome === "Allow").toBe(reference(glob, text))
      },
      { fastCheck: { numRuns: 500 } }
    )
  })

  it("in with a list of mixed types: equal to one of the same type, indeterminate for a type not listed", () => {
    const condition = { field: "payload.v", in: [1, "1", null] }
    const on = (v: unknown) => allowsWhen(condition, action({ payload: { v } }))
    expect(on(1)).toBe("Allow")
    expect(on("1")).toBe("Allow")
    expect(on(null)).toBe("Allow")
    expect(on(2)).toBe("NotApplicable")
    expect(on("2")).toBe("NotApplicable")
    // No conversion: true is neither 1 nor "1", and no boolean is listed.
    expect(on(true)).toBe("Deny")
  })

  it("a numeric segment indexes a list and names a key of an object", () => {
    const zero = { field: "payload.items.0", eq: "x" }
    expect(allowsWhen(zero, action({ payload: { items: ["x"] } }))).toBe("Allow")
    expect(allowsWhen(zero, action({ payload: { items: { "0": "x" } } }))).toBe("Allow")
    // A list has elements only: no `length`, no non-canonical index.
    expect(allowsWhen({ field: "payload.items.length", exists: true }, action({ payload: { items: ["x"] } }))).toBe(
      "NotApplicable"
    )
    expect(allowsWhen({ field: "payload.items.00", exists: true }, action({ payload: { items: ["x"] } }))).toBe(
      "NotApplicable"
    )
    expect(allowsWhen({ field: "payload.items.00", exists: true }, action({ payload: { items: { "00": 1 } } }))).toBe(
      "Allow"
    )
  })

  it("an own property holding undefined is absent, as in the action's hash", () => {
    const a = action({ payload: { x: undefined } })
    expect(Action.canonical(a)).toContain(`"payload":{}`)
    expect(allowsWhen({ field: "payload.x", exists: false }, a)).toBe("Allow")
    expect(allowsWhen({ field: "payload.x", exists: true }, a)).toBe("NotApplicable")
    const result = evaluate(decode(doc([{ id: "r", when: { field: "payload.x", eq: 1 }, effect: "allow" }])), a)
    expect(Decision.reasonCodes(result as Decision.Decision)).toEqual(["rules.indeterminate"])
  })
})
