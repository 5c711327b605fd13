import { Action, Decision, Policy, PolicySet, Rules } from "@gavel/core"
import { Arbitraries } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as json from "../src/internal/json.js"
import { decode, reason, refuse } from "./fixtures/rules.js"

// -----------------------------------------------------------------------------
// helpers
// -----------------------------------------------------------------------------

const doc = (rules: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) => ({
  id: "payments",
  version: "2026-11",
  combine: "first-applicable",
  rules,
  ...extra
})

const action = (input: Partial<Action.Input> = {}): Action.Action =>
  Action.make({
    actor: { id: "agent-1", kind: "agent", roles: ["agent"], tenant: "acme" },
    kind: "tool",
    name: "payments.transfer",
    resource: { type: "account", id: "acct-9" },
    payload: { amount: 5000, currency: "EUR", tags: ["x"], nested: { flag: true, nothing: null } },
    metadata: { channel: "web", region: "EU" },
    ...input
  })

const evaluate = (rules: Rules.Rules, a: Action.Action = action()): Decision.Result =>
  Policy.evaluateSync(rules.policy, a)

/** The result of a one-rule document whose rule has `when` and decides deny. */
const when = (condition: unknown, a: Action.Action = action()): Decision.Result["_tag"] =>
  evaluate(decode(doc([{ id: "r", when: condition, effect: "deny", reason: reason("r") }])), a)._tag

// -----------------------------------------------------------------------------
// effects
// -----------------------------------------------------------------------------

describe("Rules effects", () => {
  const one = (rule: Record<string, unknown>) => evaluate(decode(doc([{ id: "r", ...rule }])))

  it("compiles every effect to its decision, with policyId and ruleId on the reason", () => {
    expect(one({ effect: "allow" })).toEqual(Decision.allow())
    const stamp = { policyId: "payments/r", ruleId: "r" }
    expect(one({ effect: "allow", reason: reason("ok") })).toEqual(Decision.allow({ ...reason("ok"), ...stamp }))
    expect(one({ effect: "deny", reason: reason("no") })).toEqual(Decision.deny({ ...reason("no"), ...stamp }))
    expect(one({ effect: "warn", reason: reason("w") })).toEqual(Decision.warn({ ...reason("w"), ...stamp }))
    expect(one({ effect: "defer", reason: reason("d") })).toEqual(Decision.defer({ ...reason("d"), ...stamp }))
    expect(one({ effect: "escalate", reviewPath: "security", reason: reason("e") })).toEqual(
      Decision.escalate({ ...reason("e"), ...stamp }, { reviewPath: "security" })
    )
    expect(one({ effect: "require-acknowledgment", reason: reason("a"), approval: { roles: ["ops"] } })).toEqual(
      Decision.requireAcknowledgment({ ...reason("a"), ...stamp }, { roles: ["ops"] })
    )
    const approval = { quorum: 2, roles: ["finance"], principals: ["carol"], separationOfDuties: false, timeoutSeconds: 1800 }
    const expected = Decision.requireApproval({ ...reason("p"), ...stamp }, {
      quorum: 2,
      roles: ["finance"],
      principals: ["carol"],
      separationOfDuties: false,
      timeout: Duration.minutes(30)
    })
    expect(one({ effect: "pending", reason: reason("p"), approval })).toEqual(expected)
    expect(one({ effect: "require-approval", reason: reason("p"), approval })).toEqual(expected)
  })

  it("applies the default when no rule applies, and abstains without one", () => {
    const rules = [{ id: "r", match: { name: "other" }, effect: "allow" }]
    expect(evaluate(decode(doc(rules)))).toEqual(Decision.notApplicable)
    const denying = decode(doc(rules, { default: "deny" }))
    const result = evaluate(denying)
    expect(result._tag).toBe("Deny")
    expect(Decision.reasonCodes(result)).toEqual(["rules.default"])
    const record = PolicySet.evaluateSync(Rules.policySet(denying), action())
    expect(record.defaulted).toBe(true)
    expect(record.reasonCodes).toEqual(["rules.default"])
    const allowing = decode(doc(rules, { default: "allow", defaultReason: reason("open") }))
    expect(Decision.reasonCodes(evaluate(allowing))).toEqual(["open"])
    // Without a default, the policy set's own default denies.
    expect(PolicySet.evaluateSync(Rules.policySet(decode(doc(rules))), action()).reasonCodes).toEqual([
      "policy.no_applicable"
    ])
  })
})

// -----------------------------------------------------------------------------
// match
// -----------------------------------------------------------------------------

describe("Rules match", () => {
  const matches = (match: unknown, a: Action.Action = action()) =>
    evaluate(decode(doc([{ id: "r", match, effect: "allow" }])), a)._tag === "Allow"

  it("matches on kind, name glob, roles, tenant and resource, all given fields together", () => {
    expect(matches({})).toBe(true)
    expect(matches({ kind: "tool" })).toBe(true)
    expect(matches({ kind: "http" })).toBe(false)
    expect(matches({ name: "payments.*" })).toBe(true)
    expect(matches({ name: "payments.transfer" })).toBe(true)
    expect(matches({ name: "payments" })).toBe(false)
    expect(matches({ name: "*.transfe?" })).toBe(true)
    expect(matches({ roles: ["finance", "agent"] })).toBe(true)
    expect(matches({ roles: ["finance"] })).toBe(false)
    expect(matches({ tenant: "acme" })).toBe(true)
    expect(matches({ tenant: "globex" })).toBe(false)
    expect(matches({ tenant: "acme" }, action({ actor: { id: "a", kind: "agent" } }))).toBe(false)
    expect(matches({ resource: { type: "account", id: "acct-*" } })).toBe(true)
    expect(matches({ resource: { type: "file" } })).toBe(false)
    expect(matches({ resource: { id: "acct-1*" } })).toBe(false)
    expect(matches({ resource: {} }, Action.make({ actor: { id: "a", kind: "agent" }, kind: "tool", name: "x" }))).toBe(
      false
    )
    expect(matches({ kind: "tool", name: "payments.*", roles: ["agent"], tenant: "acme" })).toBe(true)
    expect(matches({ kind: "tool", name: "payments.*", roles: ["agent"], tenant: "globex" })).toBe(false)
  })
})

// -----------------------------------------------------------------------------
// conditions
// -----------------------------------------------------------------------------

describe("Rules conditions", () => {
  it("compares strings, numbers, booleans and null with eq, ne and in", () => {
    expect(when({ field: "name", eq: "payments.transfer" })).toBe("Deny")
    expect(when({ field: "name", ne: "payments.transfer" })).toBe("NotApplicable")
    expect(when({ field: "actor.kind", in: ["human", "agent"] })).toBe("Deny")
    expect(when({ field: "actor.id", eq: "agent-2" })).toBe("NotApplicable")
    expect(when({ field: "metadata.channel", eq: "web" })).toBe("Deny")
    expect(when({ field: "actor.tenant", in: ["globex"] })).toBe("NotApplicable")
    expect(when({ field: "resource.type", eq: "account" })).toBe("Deny")
    expect(when({ field: "payload.amount", eq: 5000 })).toBe("Deny")
    expect(when({ field: "payload.amount", in: [1, 5000] })).toBe("Deny")
    expect(when({ field: "payload.currency", in: ["USD", 3] })).toBe("NotApplicable")
    expect(when({ field: "payload.nested.flag", eq: true })).toBe("Deny")
    expect(when({ field: "payload.nested.nothing", eq: null })).toBe("Deny")
    expect(when({ field: "payload.tags.0", eq: "x" })).toBe("Deny")
    expect(when({ field: "actor.roles", in: ["finance", "agent"] })).toBe("Deny")
    expect(when({ field: "actor.roles", in: ["finance"] })).toBe("NotApplicable")
  })

  it("orders numbers with gt, ge, lt and le", () => {
    expect(when({ field: "payload.amount", gt: 1000 })).toBe("Deny")
    expect(when({ field: "payload.amount", gt: 5000 })).toBe("NotApplicable")
    expect(when({ field: "payload.amount", ge: 5000 })).toBe("Deny")
    expect(when({ field: "payload.amount", lt: 5000 })).toBe("NotApplicable")
    expect(when({ field: "payload.amount", le: 5000 })).toBe("Deny")
  })

  it("tests presence with exists, which is never indeterminate", () => {
    expect(when({ field: "payload.amount", exists: true })).toBe("Deny")
    expect(when({ field: "payload.missing", exists: true })).toBe("NotApplicable")
    expect(when({ field: "payload.missing", exists: false })).toBe("Deny")
    expect(when({ field: "payload.nested.nothing", exists: true })).toBe("Deny")
    expect(when({ field: "metadata.ticket", exists: false })).toBe("Deny")
    expect(when({ field: "actor.attributes.team", exists: true })).toBe("NotApplicable")
    expect(when({ field: "actor.roles", exists: true }, action({ actor: { id: "a", kind: "agent" } }))).toBe(
      "NotApplicable"
    )
    // A prototype key is not a metadata key.
    expect(when({ field: "metadata.constructor", exists: true })).toBe("NotApplicable")
  })

  it("combines with all, any and not", () => {
    const big = { field: "payload.amount", gt: 1000 }
    const batch = { field: "metadata.channel", eq: "batch" }
    expect(when({ all: [big, { not: batch }] })).toBe("Deny")
    expect(when({ all: [big, batch] })).toBe("NotApplicable")
    expect(when({ any: [batch, big] })).toBe("Deny")
    expect(when({ any: [batch, { not: big }] })).toBe("NotApplicable")
    expect(when({ not: { not: big } })).toBe("Deny")
  })

  it("matches globs with * (dots included) and ? only, everything else literal", () => {
    const glob = (pattern: string, name: string) =>
      when({ field: "name", glob: pattern }, action({ name })) === "Deny"
    expect(glob("*", "anything.at.all")).toBe(true)
    expect(glob("a*", "a")).toBe(true)
    expect(glob("a?", "a")).toBe(false)
    expect(glob("a?c", "abc")).toBe(true)
    expect(glob("*.exec", "shell.exec")).toBe(true)
    expect(glob("shell.*", "shellXexec")).toBe(false)
    expect(glob("a*b*c", "aXbYbZc")).toBe(true)
    expect(glob("a*b*c", "aXbYcZ")).toBe(false)
    expect(glob("[ab]+", "[ab]+")).toBe(true)
    expect(glob("[ab]+", "a")).toBe(false)
    expect(glob("**", "x")).toBe(true)
  })

  it("matches a pathological glob on a long text (no backtracking blow-up)", () => {
    const long = "a".repeat(50_000)
    expect(when({ field: "name", glob: "*a*a*a*a*a*b" }, action({ name: long }))).toBe("NotApplicable")
    expect(when({ field: "name", glob: "*a*a*a*a*a*a" }, action({ name: long }))).toBe("Deny")
    expect(when({ field: "name", glob: "*a*a*a*a*a*b" }, action({ name: `${long}b` }))).toBe("Deny")
  })

  it.prop(
    "agrees with a regular-expression reference on small patterns",
    [fc.stringMatching(/^[ab*?.]{0,6}$/), fc.stringMatching(/^[ab.]{1,8}$/)],
    ([pattern, name]) => {
      const reference = new RegExp(
        `^${pattern.replace(/\./g, "\\.").replace(/\*/g, ".*").replace(/\?/g, ".")}$`,
        "s"
      ).test(name)
      expect(when({ field: "name", glob: pattern }, action({ name })) === "Deny").toBe(reference)
    }
  )
})

// -----------------------------------------------------------------------------
// indeterminate
// -----------------------------------------------------------------------------

describe("Rules indeterminate conditions", () => {
  const rules = decode(doc([{
    id: "large-payment",
    when: { field: "payload.amount", gt: 1000 },
    effect: "warn",
    reason: reason("payment.large")
  }], { default: "allow" }))

  it("denies with rules.indeterminate, naming the rule and the field, when a field is missing or mistyped", () => {
    for (const payload of [{ amount: "lots" }, {}, undefined, { amount: [1] }]) {
      const result = evaluate(rules, action({ payload }))
      expect(result._tag).toBe("Deny")
      expect(Decision.reasonCodes(result)).toEqual(["rules.indeterminate"])
      const message = result._tag === "Deny" ? result.reasons[0]!.message : ""
      expect(message).toContain("large-payment")
      expect(message).toContain("payload.amount")
      expect(result._tag === "Deny" && result.reasons[0]!.ruleId).toBe("large-payment")
    }
    expect(evaluate(rules, action({ payload: { amount: 10 } }))._tag).toBe("Allow")
  })

  it("propagates through all, any and not with three-valued logic", () => {
    const missing = { field: "payload.missing", eq: 1 }
    const yes = { field: "kind", eq: "tool" }
    const no = { field: "kind", eq: "http" }
    expect(when({ all: [missing, no] })).toBe("NotApplicable")
    expect(when({ all: [missing, yes] })).toBe("Deny")
    expect(when({ any: [missing, yes] })).toBe("Deny")
    expect(when({ any: [missing, no] })).toBe("Deny")
    expect(when({ not: missing })).toBe("Deny")
    // Missing optional string fields are indeterminate too; exists guards them.
    const ticket = { field: "metadata.ticket", eq: "T-1" }
    const rule = (condition: unknown) =>
      Decision.reasonCodes(evaluate(decode(doc([{ id: "r", when: condition, effect: "warn", reason: reason("w") }]))))
    expect(rule(ticket)).toEqual(["rules.indeterminate"])
    expect(rule({ all: [{ field: "metadata.ticket", exists: true }, ticket] })).toEqual([])
    expect(when({ field: "payload.currency", eq: 3 })).toBe("Deny")
  })
})

// -----------------------------------------------------------------------------
// combination and composition
// -----------------------------------------------------------------------------

describe("Rules combination", () => {
  const rules = [
    { id: "warn-payments", match: { name: "payments.*" }, effect: "warn", reason: reason("payment.watch") },
    { id: "deny-large", when: { field: "payload.amount", gt: 1000 }, effect: "deny", reason: reason("payment.large") }
  ]

  it("first-applicable: the first rule that applies decides", () => {
    expect(Decision.reasonCodes(evaluate(decode(doc(rules))))).toEqual(["payment.watch"])
  })

  it("deny-wins: every rule that applies contributes, the most restrictive wins", () => {
    const result = evaluate(decode(doc(rules, { combine: "deny-wins" })))
    expect(result._tag).toBe("Deny")
    expect(Decision.reasonCodes(result)).toEqual(["payment.large", "payment.watch"])
  })

  it("composes with code policies inside Policy.all", () => {
    const rulesPolicy = decode(doc(rules)).policy
    const code = Policy.make("code.no-weekend", () => Decision.deny({ code: "weekend", message: "closed" }))
    const result = Policy.evaluateSync(Policy.all([rulesPolicy, code]), action())
    expect(result._tag).toBe("Deny")
    expect(Decision.reasonCodes(result)).toEqual(["weekend", "payment.watch"])
    const set = PolicySet.unsafeMake({ id: "mixed", version: "1", policy: Policy.all([rulesPolicy, code]) })
    expect(PolicySet.evaluateSync(set, action()).explain.map((e) => e.policyId)).toEqual([
      "payments/warn-payments",
      "code.no-weekend"
    ])
  })

  it("explains which rules matched and which decided", () => {
    const firstApplicable = Rules.explain(decode(doc(rules)), action())
    expect(firstApplicable.matched.map((m) => m.ruleId)).toEqual(["warn-payments", "deny-large"])
    expect(firstApplicable.decidedBy).toEqual(["warn-payments"])
    expect(firstApplicable.record.decision._tag).toBe("Warn")
    const denyWins = Rules.explain(decode(doc(rules, { combine: "deny-wins" })), action())
    expect(denyWins.decidedBy).toEqual(["deny-large"])
    const none = Rules.explain(decode(doc(rules, { default: "deny" })), action({ name: "search", payload: { amount: 1 } }))
    expect(none.matched).toEqual([])
    expect(none.decidedBy).toEqual([])
    expect(none.record.defaulted).toBe(true)
    expect(Schema.encodeSync(Rules.Explanation)(firstApplicable)).toMatchObject({ decidedBy: ["warn-payments"] })
  })
})

// -----------------------------------------------------------------------------
// refusals
// -----------------------------------------------------------------------------

describe("Rules refusals", () => {
  const deny = { effect: "deny", reason: reason("no") }

  const only = (input: unknown): Rules.Problem => {
    const problems = refuse(input)
    expect(problems, JSON.stringify(problems)).toHaveLength(1)
    return problems[0]!
  }

  it("refuses an unknown effect", () => {
    expect(only(doc([{ id: "r", effect: "permit" }]))).toMatchObject({
      rule: "r",
      path: "rules[0].effect",
      message: expect.stringContaining(`unknown effect "permit"`)
    })
  })

  it("refuses an unknown field, at any depth", () => {
    expect(only(doc([], { owner: "me" }))).toMatchObject({ rule: null, path: "owner" })
    expect(only(doc([{ id: "r", ...deny, match: { names: "x" } }]))).toMatchObject({
      rule: "r",
      path: "rules[0].match.names",
      message: expect.stringContaining(`unknown field "names"`)
    })
    expect(only(doc([{ id: "r", ...deny, when: { field: "kind", eq: "x", because: "y" } }]))).toMatchObject({
      path: "rules[0].when.because"
    })
  })

  it("refuses a duplicate rule id", () => {
    expect(only(doc([{ id: "r", match: { kind: "a" }, ...deny }, { id: "r", match: { kind: "b" }, ...deny }]))).toMatchObject({
      rule: "r",
      path: "rules[1].id",
      message: expect.stringContaining("duplicate rule id")
    })
  })

  it("refuses a rule unreachable after a catch-all under first-applicable, not under deny-wins", () => {
    const rules = [{ id: "everything", ...deny }, { id: "later", match: { kind: "tool" }, effect: "allow" }]
    expect(only(doc(rules))).toMatchObject({
      rule: "later",
      path: "rules[1]",
      message: expect.stringContaining(`unreachable: rule "everything"`)
    })
    expect(decode(doc(rules, { combine: "deny-wins" })).document.rules).toHaveLength(2)
  })

  it("refuses a condition unfit for its field's type", () => {
    const cases: ReadonlyArray<readonly [unknown, string, string]> = [
      [{ field: "name", gt: 5 }, "rules[0].when.gt", "name is a string"],
      [{ field: "metadata.region", gt: 3 }, "rules[0].when.gt", "metadata.region is a string"],
      [{ field: "actor.kind", eq: "robot" }, "rules[0].when.eq", "never matches"],
      [{ field: "actor.roles", eq: "admin" }, "rules[0].when.eq", "list of roles"],
      [{ field: "payload.amount", gt: "1000" }, "rules[0].when.gt", "compares with a number"],
      [{ field: "payload.x", glob: 3 }, "rules[0].when.glob", "pattern string"],
      [{ field: "payload.x", in: [] }, "rules[0].when.in", "non-empty list"],
      [{ field: "payload.x", exists: "yes" }, "rules[0].when.exists", "true or false"],
      [{ field: "secrets.key", eq: "x" }, "rules[0].when.field", `unknown field "secrets.key"`],
      [{ field: "kind" }, "rules[0].when", "needs one operator"],
      [{ field: "kind", eq: "a", ne: "b" }, "rules[0].when.ne", "exactly one operator"],
      [{ all: [], any: [] }, "rules[0].when.any", "exactly one of all, any, not"],
      [{ all: [] }, "rules[0].when.all", "at least one condition"],
      ["kind == tool", "rules[0].when", "a condition is an object"]
    ]
    for (const [condition, path, message] of cases) {
      expect(only(doc([{ id: "r", when: condition, ...deny }])), JSON.stringify(condition)).toMatchObject({
        rule: "r",
        path,
        message: expect.stringContaining(message)
      })
    }
  })

  it("refuses a quorum larger than the eligible principals when no role is eligible", () => {
    const rule = (approval: unknown) => doc([{ id: "big", effect: "pending", reason: reason("p"), approval }])
    expect(only(rule({ quorum: 3, principals: ["alice", "bob"] }))).toMatchObject({
      rule: "big",
      path: "rules[0].approval.quorum",
      message: expect.stringContaining("quorum 3 can never be reached")
    })
    expect(decode(rule({ quorum: 3, principals: ["alice"], roles: ["finance"] })).id).toBe("payments")
    expect(only(rule({ quorum: 1 }))).toMatchObject({ path: "rules[0].approval", message: expect.stringContaining("no one may approve") })
  })

  it("refuses approval settings, reviewPath or a missing reason where they do not belong", () => {
    expect(only(doc([{ id: "r", ...deny, approval: { roles: ["x"] } }]))).toMatchObject({ path: "rules[0].approval" })
    expect(only(doc([{ id: "r", ...deny, reviewPath: "security" }]))).toMatchObject({ path: "rules[0].reviewPath" })
    expect(only(doc([{ id: "r", effect: "deny" }]))).toMatchObject({
      path: "rules[0].reason",
      message: expect.stringContaining(`missing required field "reason"`)
    })
    expect(only(doc([{ id: "r", effect: "pending", reason: reason("p") }]))).toMatchObject({ path: "rules[0].approval" })
    expect(
      only(doc([{ id: "r", effect: "require-acknowledgment", reason: reason("a"), approval: { roles: ["x"], quorum: 2 } }]))
    ).toMatchObject({ path: "rules[0].approval.quorum" })
  })

  it("refuses malformed documents and names rules without an id by index", () => {
    expect(only(null)).toMatchObject({ rule: null, path: "" })
    expect(only(doc([5]))).toMatchObject({ rule: "#0", path: "rules[0]", message: "expected an object, not 5" })
    expect(only(doc([{ effect: "allow" }]))).toMatchObject({ rule: "#0", path: "rules[0].id" })
    expect(only(doc([{ id: "has space", effect: "allow" }]))).toMatchObject({ path: "rules[0].id" })
    expect(only(doc([{ id: "default", effect: "allow" }]))).toMatchObject({ path: "rules[0].id" })
    expect(only({ ...doc([]), combine: "majority" })).toMatchObject({ path: "combine" })
    expect(only({ ...doc([]), default: "pending" })).toMatchObject({ path: "default" })
    const { version: _version, ...noVersion } = doc([])
    expect(only(noVersion)).toMatchObject({ path: "version", message: `missing required field "version"` })
  })

  // Rule-level checks (the missing reason of rule "c") run once the rule's own fields decode.
  it("reports every problem of a document at once, in document order, and loads nothing", () => {
    const problems = refuse({
      ...doc([
        { id: "a", match: { name: "shell.*", foo: 1 }, ...deny },
        { id: "a", effect: "permit" },
        { id: "c", when: { all: [{ field: "name", gt: 5 }, { field: "payload.x", exists: 1 }] }, effect: "warn" },
        { id: "catch", effect: "allow" },
        { id: "after", match: { kind: "x" }, ...deny }
      ]),
      extra: true
    })
    expect(problems.map((p) => [p.rule, p.path])).toEqual([
      [null, "extra"],
      ["a", "rules[0].match.foo"],
      ["a", "rules[1].effect"],
      ["a", "rules[1].id"],
      ["c", "rules[2].when.all[0].gt"],
      ["c", "rules[2].when.all[1].exists"],
      ["after", "rules[4]"]
    ])
    const error = Effect.runSync(Effect.flip(Rules.decode({ ...doc([{ id: "a", effect: "permit" }]) }, { source: "rules.yaml" })))
    expect(error.message.split("\n")).toEqual([
      `Invalid rules document "rules.yaml" (1 problem)`,
      `  rule "a" at rules[0].effect: unknown effect "permit"; expected one of allow, deny, warn, pending, require-approval, require-acknowledgment, escalate, defer`
    ])
  })

  it("refuses JSON syntax errors with the same error", () => {
    const error = Effect.runSync(Effect.flip(Rules.parseJson(`{"id": "x",`)))
    expect(error.problems[0]!.message).toMatch(/^JSON syntax error/)
  })

  it("agrees with the RulesDocument schema on what it refuses", () => {
    const bad = doc([{ id: "a", ...deny }, { id: "a", match: { kind: "x" }, ...deny }])
    const decoded = Schema.decodeUnknownEither(Rules.RulesDocument)(bad, { onExcessProperty: "error" })
    expect(Either.isLeft(decoded)).toBe(true)
    const good = doc([{ id: "a", match: { kind: "x" }, ...deny }])
    expect(Schema.decodeUnknownSync(Rules.RulesDocument)(good, { onExcessProperty: "error" })).toEqual(good)
  })
})

// -----------------------------------------------------------------------------
// hashing
// -----------------------------------------------------------------------------

describe("Rules policyHash", () => {
  const document = doc([
    { id: "a", match: { kind: "tool", name: "x.*" }, effect: "deny", reason: reason("a") },
    { id: "b", when: { field: "payload.amount", gt: 10 }, effect: "warn", reason: reason("b") }
  ], { default: "allow" })

  it("is stable under key reordering and changes with the content", () => {
    const shuffle = (value: unknown): unknown =>
      Array.isArray(value)
        ? value.map(shuffle)
        : typeof value === "object" && value !== null
        ? Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, shuffle(v)]))
        : value
    const hash = decode(document).policyHash
    expect(hash).toMatch(/^[0-9a-f]{64}$/)
    expect(decode(shuffle(document)).policyHash).toBe(hash)
    expect(decode({ ...document, version: "2026-12" }).policyHash).not.toBe(hash)
    expect(decode({ ...document, rules: [...document.rules].reverse() }).policyHash).not.toBe(hash)
    const set = Rules.policySet(decode(document))
    expect(set.policyHash).toBe(hash)
    expect(PolicySet.evaluateSync(set, action()).policyHash).toBe(hash)
  })
})

// -----------------------------------------------------------------------------
// equivalence with code
// -----------------------------------------------------------------------------

describe("Rules and code", () => {
  const document = {
    id: "tools",
    version: "1",
    combine: "first-applicable",
    default: "allow",
    rules: [
      { id: "no-shell", match: { name: "shell.*" }, effect: "deny", reason: reason("tool.blocked") },
      {
        id: "large",
        match: { name: "payments.*", roles: ["operator", "admin"], tenant: "acme" },
        when: { all: [{ field: "payload.amount", gt: 1000 }, { not: { field: "metadata.risk", eq: "low" } }] },
        effect: "pending",
        reason: reason("payment.large"),
        approval: { quorum: 2, roles: ["finance"], timeoutSeconds: 60 }
      },
      {
        id: "risky",
        match: { resource: { type: "account", id: "1" } },
        when: { any: [{ field: "metadata.region", in: ["a", "b"] }, { field: "actor.kind", eq: "service" }] },
        effect: "warn",
        reason: reason("risk.high")
      }
    ]
  }

  const stamp = (id: string) => ({ policyId: `tools/${id}`, ruleId: id })
  const indeterminate = (id: string, field: string, why: string) =>
    Decision.deny({
      code: "rules.indeterminate",
      message: `Rule "${id}" cannot be evaluated: ${field} ${why}; failing closed`,
      ...stamp(id)
    })
  const typeOf = (u: unknown) => u === null ? "null" : Array.isArray(u) ? "an array" : typeof u === "object" ? "an object" : `a ${typeof u}`

  const code = Policy.firstApplicable([
    Policy.make("tools/no-shell", (a) =>
      a.name.startsWith("shell.")
        ? Decision.deny({ ...reason("tool.blocked"), ...stamp("no-shell") })
        : Decision.notApplicable),
    Policy.make("tools/large", (a) => {
      if (!a.name.startsWith("payments.") || !a.actor.roles.some((r) => r === "operator" || r === "admin")) {
        return Decision.notApplicable
      }
      if (a.actor.tenant !== "acme") return Decision.notApplicable
      const payload = a.payload as Record<string, unknown> | undefined
      const amount = typeof payload === "object" && payload !== null && !Array.isArray(payload) && Object.hasOwn(payload, "amount")
        ? payload.amount
        : undefined
      const risk = Object.hasOwn(a.metadata, "risk") ? a.metadata.risk : undefined
      const big: boolean | string = amount === undefined
        ? "is missing"
        : typeof amount !== "number"
        ? `is ${typeOf(amount)}, not a number`
        : amount > 1000
      const notLow: boolean | string = risk === undefined ? "is missing" : risk !== "low"
      if (big === false || notLow === false) return Decision.notApplicable
      if (typeof big === "string") return indeterminate("large", "payload.amount", big)
      if (typeof notLow === "string") return indeterminate("large", "metadata.risk", notLow)
      return Decision.requireApproval({ ...reason("payment.large"), ...stamp("large") }, {
        quorum: 2,
        roles: ["finance"],
        timeout: "60 seconds"
      })
    }),
    Policy.make("tools/risky", (a) => {
      if (a.resource?.type !== "account" || a.resource.id !== "1") return Decision.notApplicable
      const region = Object.hasOwn(a.metadata, "region") ? a.metadata.region : undefined
      if ((region !== undefined && (region === "a" || region === "b")) || a.actor.kind === "service") {
        return Decision.warn({ ...reason("risk.high"), ...stamp("risky") })
      }
      if (region === undefined) return indeterminate("risky", "metadata.region", "is missing")
      return Decision.notApplicable
    })
  ])

  const actions = fc.tuple(
    Arbitraries.action,
    fc.option(fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constant("lots"), fc.constant(null)), { nil: undefined }),
    fc.option(fc.constantFrom("low", "high", "a", "b"), { nil: undefined })
  ).map(([a, amount, risk]) =>
    Action.make({
      ...a,
      name: a.name === "tool0" ? "payments.refund" : a.name,
      payload: amount === undefined ? a.payload : { amount },
      metadata: { ...a.metadata, ...(risk === undefined ? {} : { risk, region: risk }) }
    })
  )

  it.prop("a rules document and the equivalent code policy decide the same", [actions], ([a]) => {
    const rules = decode(document)
    expect(Policy.evaluateSync(rules.policy, a)).toEqual(
      Policy.evaluateSync(
        Policy.firstApplicable([
          code,
          Policy.constant(
            "tools/default",
            Decision.allow({
              code: "rules.default",
              message: `No rule of "tools" applied; the document's default is allow`,
              ...stamp("default")
            })
          )
        ]),
        a
      )
    )
  }, { fastCheck: { numRuns: 500 } })
})

describe("Rules evaluation index", () => {
  const document = {
    id: "idx",
    version: "1",
    combine: "first-applicable",
    default: "deny",
    rules: [
      { id: "read-ok", match: { name: "files.read" }, effect: "allow" },
      { id: "shell-any", match: { name: "shell.*" }, effect: "deny", reason: { code: "shell", message: "no shell" } },
      { id: "write-warn", match: { name: "files.write" }, effect: "warn", reason: { code: "w", message: "w" } },
      { id: "late-read", match: { name: "files.read" }, effect: "deny", reason: { code: "r", message: "r" } }
    ]
  }
  const act = (name: string) => Action.make({ actor: { id: "a", kind: "agent" }, kind: "tool", name })

  it("evaluates and lists only the rules that can apply to the action's name, in document order", () => {
    const set = Rules.policySet(decode(document))
    const trail = (name: string) => PolicySet.evaluateSync(set, act(name)).explain.map((e) => e.policyId)
    expect(trail("files.read")).toEqual(["idx/read-ok"])
    expect(trail("files.write")).toEqual(["idx/shell-any", "idx/write-warn"])
    expect(trail("shell.exec")).toEqual(["idx/shell-any"])
    expect(PolicySet.evaluateSync(set, act("shell.exec")).decision._tag).toBe("Deny")
    expect(PolicySet.evaluateSync(set, act("files.write")).decision._tag).toBe("Warn")
    expect(PolicySet.evaluateSync(set, act("other")).defaulted).toBe(true)
  })

  it("a copy of a decoded value works like the original", () => {
    const rules = decode(document)
    const copy = { ...rules }
    expect(PolicySet.evaluateSync(Rules.policySet(copy), act("shell.exec")).reasonCodes).toEqual(["shell"])
    expect(Rules.explain(copy, act("files.read")).matched.map((m) => m.ruleId)).toEqual(["read-ok", "late-read"])
  })
})

// -----------------------------------------------------------------------------
// limits
// -----------------------------------------------------------------------------

describe("Rules limits", () => {
  const rule = (extra: Record<string, unknown> = {}) => ({ id: "r", effect: "deny", reason: reason("r"), ...extra })
  const nest = (depth: number, wrap: (inner: unknown) => unknown, leaf: unknown): unknown => {
    let value = leaf
    for (let i = 0; i < depth; i++) value = wrap(value)
    return value
  }
  const comparison = { field: "name", eq: "payments.transfer" }
  const notChain = (depth: number) => nest(depth, (c) => ({ not: c }), comparison)
  const allChain = (depth: number) => nest(depth, (c) => ({ all: [c] }), comparison)
  const deepList = (depth: number) => nest(depth, (v) => [v], 1)
  const refuseWith = (input: unknown, options?: Rules.DecodeOptions) => {
    const result = Effect.runSync(Effect.either(Rules.decode(input, options)))
    if (Either.isRight(result)) throw new Error("expected the document to be refused")
    return result.left.problems
  }
  /** What the bounds count, by an independent recursive count (small inputs only): every value, shared ones each time. */
  const values = (u: unknown): number =>
    typeof u !== "object" || u === null ? 1 : 1 + Object.values(u).reduce((n: number, v) => n + values(v), 0)

  it("refuses conditions nested 100,000 deep, naming the rule, an abbreviated path and the limit", () => {
    const nots = refuseWith(doc([rule({ when: notChain(100_000) })]))
    expect(nots).toEqual([{ rule: "r", path: `rules[0].when${".not".repeat(32)}`, message: "conditions nest at most 32 levels deep" }])
    expect(Rules.formatProblem(nots[0]!)).toBe(
      `rule "r" at rules[0].when${".not".repeat(9)}…(23 more): conditions nest at most 32 levels deep`
    )
    const alls = refuseWith(doc([rule({ when: allChain(100_000) })]))
    expect(alls).toMatchObject([{ rule: "r", message: "conditions nest at most 32 levels deep" }])
    expect(alls[0]!.path).toMatch(/^rules\[0\]\.when\.all\[0\]\.all\[0\]/)
  })

  it("refuses a value nested 100,000 deep anywhere in the document, before any recursive decoding", () => {
    const cases: ReadonlyArray<readonly [unknown, string | null, string]> = [
      [{ ...doc([]), combine: deepList(100_000) }, null, "combine[0]"],
      [{ ...doc([]), unknown: deepList(100_000) }, null, "unknown[0]"],
      [doc([deepList(100_000)]), "#0", "rules[0][0]"],
      [doc([rule({ effect: deepList(100_000) })]), "r", "rules[0].effect[0]"],
      [doc([rule({ description: nest(100_000, (v) => ({ a: v }), 1) })]), "r", "rules[0].description.a"],
      [doc([rule({ match: { name: deepList(100_000) } })]), "r", "rules[0].match.name[0]"],
      [doc([rule({ when: { field: "payload.x", gt: deepList(100_000) } })]), "r", "rules[0].when.gt[0]"],
      [doc([rule({ when: { field: "payload.x", in: [deepList(100_000)] } })]), "r", "rules[0].when.in[0][0]"],
      [doc([rule({ effect: "pending", approval: { roles: deepList(100_000) } })]), "r", "rules[0].approval.roles[0]"]
    ]
    for (const [input, ruleName, prefix] of cases) {
      const problems = refuseWith(input)
      expect(problems).toHaveLength(1)
      expect(problems[0]).toMatchObject({
        rule: ruleName,
        message: `nested too deeply: objects and lists nest at most ${Rules.maxNesting} levels in a rules document`
      })
      expect(problems[0]!.path.startsWith(prefix)).toBe(true)
    }
  })

  it("refuses a cycle and a small shared structure that is huge as a tree", () => {
    const cyclic: Record<string, unknown> = { field: "name", eq: "x" }
    cyclic.self = cyclic
    expect(refuseWith(doc([rule({ when: cyclic })]))[0]!.message).toMatch(/^nested too deeply/)
    // 3^30 conditions as a tree, 30 objects in memory.
    const shared = nest(30, (c) => ({ all: [c, c, c] }), comparison)
    expect(refuseWith(doc([rule({ when: shared })]))[0]!.message).toMatch(/^a rules document holds at most 100000 values/)
  })

  it("refuses a condition list of a million entries, a huge in list and too many rules, each at its path", () => {
    const million = Array.from({ length: 1_000_000 }, () => comparison)
    expect(refuseWith(doc([rule({ when: { all: million } })]))).toEqual([{
      rule: "r",
      path: "rules[0].when.all",
      message: "a rules document holds at most 100000 values (objects, lists and scalars, counted where they occur); this one holds more"
    }])
    // Wrong comparisons too: nothing of them is checked one by one.
    const wrong = Array.from({ length: 1_000_000 }, () => ({ field: "name", gt: 1 }))
    expect(refuseWith(doc([rule({ when: { any: wrong } })]))).toHaveLength(1)
    const list = Array.from({ length: 1_000_000 }, (_, i) => i)
    expect(refuseWith(doc([rule({ when: { field: "payload.x", in: list } })]))[0]!.path).toBe("rules[0].when.in")
    expect(refuseWith(doc(new Array(100_000).fill(rule())))).toEqual([{
      rule: null,
      path: "rules",
      message: "a rules document holds at most 1000 rules; this one has 100000"
    }])
  })

  it("refuses a glob longer than the limit wherever globs are, along with the document's other problems", () => {
    const stars = "*".repeat(100_000)
    const problems = refuseWith(doc([
      rule({ match: { name: stars, resource: { id: `${stars}a` } } }),
      rule({ id: "s", when: { field: "payload.x", glob: "*a".repeat(50_000) }, effect: "permit" })
    ]))
    expect(problems.map((p) => [p.rule, p.path, p.message])).toEqual([
      ["r", "rules[0].match.name", "a glob is at most 256 characters long; this one has 100000"],
      ["r", "rules[0].match.resource.id", "a glob is at most 256 characters long; this one has 100001"],
      ["s", "rules[1].when.glob", "a glob is at most 256 characters long; this one has 100000"],
      ["s", "rules[1].effect", expect.stringMatching(/^unknown effect "permit"/)]
    ])
  })

  it("accepts a document right at the limits, and evaluates it", () => {
    const pattern = `${"*a".repeat(127)}**`
    expect(pattern.length).toBe(256)
    const atLimits = decode(doc([
      rule({ id: "nots", when: notChain(Rules.maxConditionDepth - 1), match: { name: pattern } }),
      rule({ id: "alls", when: allChain(Rules.maxConditionDepth - 1) }),
      ...Array.from({ length: 998 }, (_, i) => rule({ id: `r${i}`, match: { name: `n${i}` } }))
    ]))
    expect(atLimits.document.rules).toHaveLength(1000)
    // 31 negations of a true comparison: false; the all chain: true.
    const name = `${"a".repeat(127)}.transfer`
    expect(Rules.explain(atLimits, action({ name: "payments.transfer" })).decidedBy).toEqual(["alls"])
    expect(Rules.explain(atLimits, action({ name })).decidedBy).toEqual(["nots"])
    expect(refuseWith(doc([rule({ when: notChain(Rules.maxConditionDepth) })]))[0]!.message).toBe(
      "conditions nest at most 32 levels deep"
    )
    expect(refuseWith(doc([rule({ match: { name: `${pattern}a` } })]))[0]!.path).toBe("rules[0].match.name")
  })

  it("matches a glob at the limit against a 100,000-character name in bounded time", () => {
    // Exponential for a backtracking matcher; O(pattern × name) here.
    const pattern = `${"*a".repeat(127)}*b`
    const rules = decode(doc([rule({ match: { name: pattern } })]))
    expect(evaluate(rules, action({ name: "a".repeat(100_000) }))._tag).toBe("NotApplicable")
    expect(evaluate(rules, action({ name: `${"a".repeat(100_000)}b` }))._tag).toBe("Deny")
  })

  it.prop(
    "takes its limits from the options: a document is accepted exactly up to them",
    [fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 3 })],
    ([rules, globLength, depth]) => {
      const input = doc(Array.from({ length: rules }, (_, i) =>
        rule({ id: `r${i}`, match: { name: "x".repeat(globLength - 1) + "*" }, when: notChain(depth) })))
      const exact = { maxRules: rules, maxGlobLength: globLength, maxValues: values(input) }
      expect(Effect.runSync(Effect.either(Rules.decode(input, { limits: exact })))._tag).toBe("Right")
      for (const key of ["maxRules", "maxGlobLength", "maxValues"] as const) {
        const problems = refuseWith(input, { limits: { ...exact, [key]: exact[key] - 1 } })
        expect(problems.length).toBeGreaterThan(0)
      }
    }
  )

  it("refuses a limit that is not a positive integer", () => {
    expect(refuseWith(doc([]), { limits: { maxRules: 0, maxValues: Number.NaN } }).map((p) => p.message)).toEqual([
      "limits.maxRules must be a positive integer, not 0",
      "limits.maxValues must be a positive integer, not NaN"
    ])
  })

  it("refuses through parseJson and the RulesDocument schema too, without overflowing the stack", () => {
    const text = JSON.stringify(doc([rule({ when: comparison })])).replace(
      `{"field":"name","eq":"payments.transfer"}`,
      `${"{\"not\":".repeat(100_000)}{"field":"name","eq":"x"}${"}".repeat(100_000)}`
    )
    // The text is measured as it is parsed: its nesting is refused before its conditions are looked at.
    expect(Effect.runSync(Effect.flip(Rules.parseJson(text))).problems[0]!.message).toBe(
      `nested too deeply: objects and lists nest at most ${Rules.maxNesting} levels in a rules document`
    )
    for (const input of [doc([rule({ description: deepList(100_000) })]), doc([rule({ when: notChain(100_000) })])]) {
      const decoded = Schema.decodeUnknownEither(Rules.RulesDocument)(input, { onExcessProperty: "error" })
      expect(Either.isLeft(decoded)).toBe(true)
    }
  })
})

// -----------------------------------------------------------------------------
// JSON text
// -----------------------------------------------------------------------------

describe("Rules.parseJson", () => {
  const refusedText = (text: string, options?: Rules.DecodeOptions): ReadonlyArray<Rules.Problem> => {
    const result = Effect.runSync(Effect.either(Rules.parseJson(text, options)))
    if (Either.isRight(result)) throw new Error("expected the text to be refused")
    return result.left.problems
  }

  it("refuses a duplicate key, which JSON.parse would let the last one win (a deny read as an allow)", () => {
    const text = `{"id":"p","version":"1","combine":"first-applicable","rules":[
  {"id":"ok","match":{"name":"files.read"},"effect":"deny","reason":{"code":"c","message":"m"},"effect":"allow"}
]}`
    expect(JSON.parse(text).rules[0].effect).toBe("allow")
    expect(refusedText(text)).toEqual([{
      rule: "ok",
      path: "rules[0].effect",
      message: "duplicate key \"effect\" (first at line 2, column 44)",
      line: 2,
      column: 96
    }])
  })

  it("refuses duplicate keys at any depth, every one, and keys equal in Unicode NFC", () => {
    const text = `{"id":"p","id":"q","version":"1","combine":"first-applicable","rules":[],
"description":[[{"a":{"b":1,"b":2}}]],"caf\u00e9":1,"cafe\u0301":2}`
    expect(refusedText(text)).toEqual([
      { rule: null, path: "id", message: "duplicate key \"id\" (first at line 1, column 2)", line: 1, column: 11 },
      {
        rule: null,
        path: "description[0][0].a.b",
        message: "duplicate key \"b\" (first at line 2, column 23)",
        line: 2,
        column: 29
      },
      {
        rule: null,
        path: "caf\u0065\u0301",
        message: "duplicate key \"cafe\u0301\" (first at line 2, column 39, as \"caf\u00e9\", the same in Unicode NFC)",
        line: 2,
        column: 48
      }
    ])
  })

  it("puts the line and column on every problem, syntax errors included", () => {
    const text = `{\n  "id": "p",\n  "version": "1",\n  "combine": "first-applicable",\n  "rules": [\n    { "id": "a", "effect": "permit" }\n  ]\n}`
    expect(refusedText(text)).toEqual([{
      rule: "a",
      path: "rules[0].effect",
      message: expect.stringContaining("unknown effect \"permit\""),
      line: 6,
      column: 28
    }])
    expect(refusedText(`{\n  "id": "x",\n}`)).toEqual([{
      rule: null,
      path: "",
      message: "JSON syntax error: expected a key in double quotes, found \"}\"",
      line: 3,
      column: 1
    }])
    expect(refusedText(`{"id": "a\u0001"}`)[0]!.message).toMatch(/^JSON syntax error: control character U\+0001 in a string/)
  })

  it("refuses a text longer than maxDocumentBytes before parsing it, counted in UTF-8", () => {
    const text = `{"description":"${"é".repeat(600_000)}"}`
    expect(refusedText(text)).toEqual([{
      rule: null,
      path: "",
      message: "a rules document is at most 1048576 bytes long (limits.maxDocumentBytes); this one has 1200018",
      line: 1,
      column: 1
    }])
    // Past the size, the document is refused for what it is.
    expect(refusedText(text, { limits: { maxDocumentBytes: 2_000_000 } })[0]!.message).toMatch(/^missing required field/)
    expect(Rules.checkSize(text, { limits: { maxDocumentBytes: 1_200_018 } })).toEqual([])
    expect(Rules.checkSize(10, { limits: { maxDocumentBytes: 0 } })).toEqual([
      { rule: null, path: "", message: "limits.maxDocumentBytes must be a positive integer, not 0", line: 1, column: 1 }
    ])
    expect(refusedText("{}", { limits: { maxDocumentBytes: 1.5 } })).toEqual([
      { rule: null, path: "", message: "limits.maxDocumentBytes must be a positive integer, not 1.5", line: 1, column: 1 }
    ])
  })
})

describe("the JSON parser", () => {
  const parse = (text: string) => json.parse(text, { maxDepth: 1_000, tooDeep: "too deep" })

  /** A JSON text as a tree, objects as lists of entries so that a key may repeat. */
  type Tree = { readonly scalar: string } | { readonly list: ReadonlyArray<Tree> } | {
    readonly entries: ReadonlyArray<readonly [string, Tree]>
  }
  const key = fc.oneof(
    fc.constantFrom("a", "b", "caf\u00e9", "cafe\u0301", "__proto__", "constructor", "1", "01", ""),
    fc.string({ maxLength: 3 }),
    fc.string({ maxLength: 3, unit: "binary" })
  )
  const quote = (text: string, escapeAll: boolean) =>
    escapeAll
      ? `"${Array.from(text, (c) => Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`).join("")).join("")}"`
      : JSON.stringify(text)
  const scalar = fc.oneof(
    fc.tuple(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom("\ud800", "a\u0000b", "/\\\"")), fc.boolean())
      .map(([text, escapeAll]) => quote(text, escapeAll)),
    fc.stringMatching(/^-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?$/),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
    fc.constantFrom("true", "false", "null", "-0", "1e400", "-1e-400")
  ).map((text): Tree => ({ scalar: text }))
  const { tree } = fc.letrec<{ tree: Tree; list: Tree; object: Tree }>((tie) => ({
    tree: fc.oneof({ depthSize: "small" }, scalar, tie("list"), tie("object")),
    list: fc.array(tie("tree"), { maxLength: 4 }).map((list) => ({ list })),
    object: fc.array(fc.tuple(key, tie("tree")), { maxLength: 4 }).map((entries) => ({ entries }))
  }))
  /** Equal as JSON values, key order, `-0` and own `__proto__` / `constructor` keys included. */
  const same = (a: unknown, b: unknown): boolean => {
    if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) return Object.is(a, b)
    if (Array.isArray(a) !== Array.isArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false
    const ka = Object.keys(a)
    const kb = Object.keys(b)
    return ka.length === kb.length &&
      ka.every((k, i) => k === kb[i] && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  }
  const space = fc.constantFrom("", " ", "\n", "\r\n\t ")
  const render = (t: Tree, ws: string): string =>
    "scalar" in t
      ? t.scalar
      : "list" in t
      ? `[${ws}${t.list.map((v) => render(v, ws)).join(`${ws},${ws}`)}${ws}]`
      : `{${ws}${t.entries.map(([k, v]) => `${quote(k, false)}${ws}:${ws}${render(v, ws)}`).join(`,${ws}`)}${ws}}`
  const duplicates = (t: Tree): number =>
    "scalar" in t ? 0 : "list" in t ? t.list.reduce((n, v) => n + duplicates(v), 0) : t.entries.reduce(
      (n, [, v], i) =>
        n + duplicates(v) + (t.entries.slice(0, i).some(([k]) => k.normalize("NFC") === t.entries[i]![0].normalize("NFC")) ? 1 : 0),
      0
    )

  it.prop("reads what JSON.parse reads when no object repeats a key, and refuses each repeated key", [tree, space], ([t, ws]) => {
    const text = `${ws}${render(t, ws)}${ws}`
    const result = parse(text)
    const repeated = duplicates(t)
    if (repeated === 0) {
      expect(result._tag).toBe("Parsed")
      const value = result._tag === "Parsed" ? result.value : undefined
      const expected: unknown = JSON.parse(text)
      expect(same(value, expected), text).toBe(true)
    } else {
      expect(result._tag).toBe("Refused")
      const problems = result._tag === "Refused" ? result.problems : []
      expect(problems).toHaveLength(repeated)
      for (const problem of problems) expect(problem.message).toMatch(/^duplicate key /)
    }
  })

  it.prop(
    "accepts and refuses texts as JSON.parse does (edited at random), but for repeated keys",
    [tree, fc.nat(), fc.constantFrom("", "{", "}", "[", "]", ",", ":", "\"", "\\", "0", "-", ".", "e", "t", " ", "\u0000", "\u00a0", "\ufeff")],
    ([t, at, insert]) => {
      const valid = render(t, " ")
      const position = valid.length === 0 ? 0 : at % valid.length
      for (const text of [valid.slice(0, position) + insert + valid.slice(position + 1), valid.slice(0, position) + insert + valid.slice(position)]) {
        let expected: unknown
        let threw = false
        try {
          expected = JSON.parse(text)
        } catch {
          threw = true
        }
        const result = parse(text)
        if (threw) {
          expect(result._tag).toBe("Refused")
          const problems = result._tag === "Refused" ? result.problems : []
          expect(problems.at(-1)!.message).toMatch(/^JSON syntax error: /)
        } else if (result._tag === "Parsed") {
          expect(same(result.value, expected), text).toBe(true)
        } else {
          for (const problem of result.problems) expect(problem.message).toMatch(/^duplicate key /)
        }
      }
    }
  )

  it("parses a text nested 100,000 deep without recursion, and stops at the bound it is given", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000)
    expect(json.parse(deep, { maxDepth: 200_000, tooDeep: "too deep" })._tag).toBe("Parsed")
    const refused = json.parse(deep, { maxDepth: 3, tooDeep: "too deep" })
    expect(refused).toMatchObject({ _tag: "Refused", problems: [{ path: [0, 0, 0], message: "too deep", line: 1, column: 4 }] })
  })

  it("knows where every value is", () => {
    const result = parse(`{\n  "a": [1, {"b": "x"}],\n  "c": null\n}`)
    if (result._tag !== "Parsed") throw new Error("expected a value")
    expect(result.positionOf([])).toEqual({ line: 1, column: 1 })
    expect(result.positionOf(["a", 1, "b"])).toEqual({ line: 2, column: 18 })
    expect(result.positionOf(["c"])).toEqual({ line: 3, column: 8 })
    // The deepest value on the way that exists.
    expect(result.positionOf(["a", 1, "missing", 3])).toEqual({ line: 2, column: 12 })
  })
})
