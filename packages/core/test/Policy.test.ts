import { Action, Decision, Policy, type PolicyError, PolicySet } from "@gavel/core"
import { Arbitraries } from "@gavel/testing"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"

const action = Action.make({ actor: { id: "agent-1", kind: "agent", roles: ["operator"] }, kind: "tool", name: "search" })

const constants = (results: ReadonlyArray<Decision.Result>, prefix = "p") =>
  results.map((r, i) => Policy.constant(`${prefix}${i}`, r))

const results = fc.array(Arbitraries.result, { maxLength: 6 })

/**
 * What the constant policies return, as the evaluator reports it: reasons
 * stamped with the policy id, and `policy.no_reason` given to a decision that
 * does not proceed and has no reason.
 */
const stamped = (results: ReadonlyArray<Decision.Result>, prefix = "p") =>
  results.map((r, i): Decision.Result => {
    const policyId = `${prefix}${i}`
    const s = Decision.withPolicyId(r, policyId)
    if (s._tag === "NotApplicable" || Decision.canProceed(s) || s.reasons.length > 0) return s
    const reason = { code: "policy.no_reason", message: `Policy "${policyId}" returned ${s._tag} without a reason`, outcome: s._tag, policyId }
    return { ...s, reasons: [reason] }
  })

describe("Policy leaves", () => {
  it("stamps the policy id on the reasons it returns", () => {
    const p = Policy.make("tools.no-shell", () => Decision.deny({ code: "tool.blocked", message: "no" }))
    const result = Policy.evaluateSync(p, action)
    expect(result._tag === "Deny" && result.reasons[0]!.policyId).toBe("tools.no-shell")
  })

  it("keeps a policy id the policy set itself", () => {
    const p = Policy.make("a", () => Decision.deny({ code: "x", message: "no", policyId: "upstream" }))
    const result = Policy.evaluateSync(p, action)
    expect(result._tag === "Deny" && result.reasons[0]!.policyId).toBe("upstream")
  })

  it("fails closed when a policy throws or returns garbage", () => {
    const throwing = Policy.make("throws", () => {
      throw new TypeError("boom")
    })
    const garbage = Policy.make("garbage", () => undefined as unknown as Decision.Result)
    const malformed = [
      { _tag: "RequireApproval", reasons: [] },
      { _tag: "Escalate", reasons: [] },
      { _tag: "Deny", reasons: [{ code: "x" }] },
      { _tag: "Transform", reasons: [] },
      { _tag: "RequireApproval", reasons: [], requirement: { quorum: 0, authority: { roles: [], principals: [] }, separationOfDuties: true } },
      { _tag: "Maybe", reasons: [] }
    ].map((value, i) => Policy.make(`malformed${i}`, () => value as unknown as Decision.Result))
    for (const p of [throwing, garbage, ...malformed]) {
      const result = Policy.evaluateSync(Policy.all([Policy.constant("ok", Decision.allow()), p]), action)
      expect(result._tag).toBe("Deny")
      expect(Decision.reasonCodes(result)).toEqual(["policy.defect"])
    }
  })

  it.effect("fails closed when an effectful policy dies", () =>
    Effect.gen(function*() {
      const p = Policy.effect("dies", () => Effect.die("boom"))
      const result = yield* Policy.evaluate(p, action)
      expect(result._tag).toBe("Deny")
      expect(Decision.reasonCodes(result)).toEqual(["policy.defect"])
    }))

  it.effect("keeps typed failures typed", () =>
    Effect.gen(function*() {
      const p = Policy.effect("fails", () => Effect.fail("outage" as const))
      const error = yield* Effect.flip(Policy.evaluate(Policy.all([Policy.constant("a", Decision.allow()), p]), action))
      expect(error).toBe("outage")
      expectTypeOf(error).toEqualTypeOf<"outage" | PolicyError.PolicyCancelled>()
    }))
})

describe("Policy.all", () => {
  it.prop("joins every result in declaration order", [results], ([rs]) => {
    expect(Policy.evaluateSync(Policy.all(constants(rs)), action)).toEqual(Decision.combineAll(stamped(rs)))
  })

  it.prop("never loosens when a policy is added", [results, Arbitraries.result], ([rs, extra]) => {
    const before = Policy.evaluateSync(Policy.all(constants(rs)), action)
    const after = Policy.evaluateSync(Policy.all([...constants(rs), Policy.constant("extra", extra)]), action)
    expect(Decision.isAtLeastAsRestrictive(after, before)).toBe(true)
  })

  it("abstains when empty", () => {
    expect(Policy.evaluateSync(Policy.all([]), action)).toBe(Decision.notApplicable)
  })

  it.effect("runs synchronous leaves between effectful ones, in declaration order", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const sync = (id: string) =>
        Policy.make(id, () => {
          order.push(id)
          return Decision.notApplicable
        })
      const eff = (id: string) =>
        Policy.effect(id, () => Effect.sync(() => order.push(id)).pipe(Effect.as(Decision.allow())))
      yield* Policy.evaluate(Policy.all([sync("s1"), eff("e1"), sync("s2"), eff("e2"), sync("s3")]), action)
      expect(order).toEqual(["s1", "e1", "s2", "e2", "s3"])
    }))
})

const delayed = (results: ReadonlyArray<readonly [Decision.Result, number]>) =>
  results.map(([r, ms], i) =>
    ms === 0 ? Policy.constant(`p${i}`, r) : Policy.effect(`p${i}`, () => Effect.as(Effect.sleep(ms), r))
  )

const recordOf = (set: Effect.Effect<PolicySet.PolicySet, PolicySet.InvalidPolicySet>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.flatMap(set, (s) => PolicySet.evaluate(s, action)))
    yield* TestClock.adjust("1 hour")
    return yield* Fiber.join(fiber)
  })

describe("Policy.allConcurrent", () => {
  it.effect.prop(
    "yields the same decision and explain trail as all, whatever the completion order",
    [fc.array(fc.tuple(Arbitraries.result, fc.integer({ min: 0, max: 50 })), { maxLength: 6 })],
    ([rs]) =>
      Effect.gen(function*() {
        const policies = delayed(rs)
        const sequential = yield* recordOf(
          PolicySet.make({ id: "s", version: "1", policy: Policy.failClosed(Policy.all(policies)) })
        )
        const concurrent = yield* recordOf(
          PolicySet.make({
            id: "s",
            version: "1",
            policy: Policy.failClosed(Policy.allConcurrent(policies, { concurrency: 3 }))
          })
        )
        expect(concurrent.decision).toEqual(sequential.decision)
        expect(concurrent.reasons).toEqual(sequential.reasons)
        expect(concurrent.explain).toEqual(sequential.explain)
      }),
    { fastCheck: { numRuns: 40 } }
  )

  it.effect("completes at the slowest check's latency, not the sum", () =>
    Effect.gen(function*() {
      const checks = [20, 20, 20].map((ms, i) =>
        Policy.effect(`check${i}`, () => Effect.as(Effect.sleep(ms), Decision.allow()))
      )
      const fiber = yield* Effect.fork(Policy.evaluate(Policy.allConcurrent(checks), action))
      yield* TestClock.adjust(20)
      const done = yield* Fiber.poll(fiber)
      expect(done._tag).toBe("Some")
      const sequential = yield* Effect.fork(Policy.evaluate(Policy.all(checks), action))
      yield* TestClock.adjust(20)
      expect((yield* Fiber.poll(sequential))._tag).toBe("None")
      yield* TestClock.adjust(40)
      expect((yield* Fiber.join(sequential))._tag).toBe("Allow")
    }))
})

describe("Policy.firstDenial", () => {
  it.prop("has the same outcome as all", [results], ([rs]) => {
    const first = Policy.evaluateSync(Policy.firstDenial(constants(rs)), action)
    const all = Policy.evaluateSync(Policy.all(constants(rs)), action)
    expect(first._tag).toBe(all._tag)
  })

  it("stops at the first denial: later policies do not run", () => {
    let ran = false
    const later = Policy.make("later", () => {
      ran = true
      return Decision.warn({ code: "w", message: "w" })
    })
    const deny = Policy.constant("deny", Decision.deny({ code: "x", message: "x" }))
    const result = Policy.evaluateSync(Policy.firstDenial([deny, later]), action)
    expect(Decision.reasonCodes(result)).toEqual(["x"])
    expect(ran).toBe(false)
  })

  it.effect("interrupts checks still in flight once a denial is known", () =>
    Effect.gen(function*() {
      let interrupted = false
      const slow = Policy.effect("slow", () =>
        Effect.sleep("1 hour").pipe(
          Effect.as(Decision.allow()),
          Effect.onInterrupt(() => Effect.sync(() => { interrupted = true }))
        ))
      const fastDeny = Policy.effect("fast", () =>
        Effect.as(Effect.sleep(10), Decision.deny({ code: "quota.exceeded", message: "over quota" })))
      const set = yield* PolicySet.make({
        id: "fd",
        version: "1",
        policy: Policy.failClosed(Policy.firstDenial([slow, fastDeny]))
      })
      const fiber = yield* Effect.fork(PolicySet.evaluate(set, action))
      yield* TestClock.adjust(10)
      const record = yield* Fiber.join(fiber)
      expect(record.decision._tag).toBe("Deny")
      expect(record.reasonCodes).toEqual(["quota.exceeded"])
      expect(interrupted).toBe(true)
      expect(record.explain.map((e) => e.policyId)).toEqual(["fast"])
    }))
})

describe("Policy.firstApplicable", () => {
  it.prop("returns the first result that does not abstain", [results], ([rs]) => {
    const expected = stamped(rs).find((r) => r._tag !== "NotApplicable") ?? Decision.notApplicable
    expect(Policy.evaluateSync(Policy.firstApplicable(constants(rs)), action)).toEqual(expected)
  })

  it.effect("does not run rules after the deciding one, effectful or not", () =>
    Effect.gen(function*() {
      const ran: Array<string> = []
      const rule = (id: string, r: Decision.Result) =>
        Policy.effect(id, () => Effect.sync(() => ran.push(id)).pipe(Effect.as(r)))
      const p = Policy.firstApplicable([
        rule("a", Decision.notApplicable),
        Policy.constant("b", Decision.notApplicable),
        rule("c", Decision.warn({ code: "c", message: "c" })),
        rule("d", Decision.deny({ code: "d", message: "d" }))
      ])
      const result = yield* Policy.evaluate(p, action)
      expect(Decision.reasonCodes(result)).toEqual(["c"])
      expect(ran).toEqual(["a", "c"])
    }))
})

describe("Policy.narrow", () => {
  it.prop("never loosens the composed decision", [results, Arbitraries.result], ([rs, narrowed]) => {
    const inner = Policy.all(constants(rs))
    const composed = Policy.evaluateSync(inner, action)
    const result = Policy.evaluateSync(Policy.narrow(inner, "dp", () => narrowed), action)
    if (composed._tag === "NotApplicable") {
      expect(result).toBe(Decision.notApplicable)
    } else {
      expect(Decision.isAtLeastAsRestrictive(result, composed)).toBe(true)
      expect(Decision.isAtLeastAsRestrictive(result, narrowed)).toBe(true)
    }
  })

  it("sees the composed decision and the results behind it", () => {
    const inner = Policy.all([
      Policy.constant("w", Decision.warn({ code: "w", message: "w" })),
      Policy.constant("a", Decision.allow())
    ])
    let seen: Policy.DecisionPolicyInput | undefined
    const p = inner.pipe(Policy.narrow("dp", (input) => {
      seen = input
      return Decision.escalate({ code: "e", message: "e" }, { reviewPath: "security" })
    }))
    const result = Policy.evaluateSync(p, action)
    expect(seen?.decision._tag).toBe("Warn")
    expect(seen?.results.map((e) => e.policyId)).toEqual(["w", "a"])
    expect(result._tag).toBe("Escalate")
    expect(Decision.reasonCodes(result)).toEqual(["e", "w"])
  })

  it("cannot turn a denial into an allow", () => {
    const p = Policy.constant("d", Decision.deny({ code: "x", message: "x" })).pipe(
      Policy.narrow("lenient", () => Decision.allow())
    )
    expect(Policy.evaluateSync(p, action)._tag).toBe("Deny")
  })
})

describe("Policy.when", () => {
  const deny = Policy.constant("deny", Decision.deny({ code: "x", message: "x" }))

  it("abstains for actions that do not match, and evaluates the others", () => {
    const onlyShell = deny.pipe(Policy.when((a) => a.name === "shell.exec"))
    expect(Policy.evaluateSync(onlyShell, action)).toBe(Decision.notApplicable)
    expect(Policy.evaluateSync(onlyShell, { ...action, name: "shell.exec" })._tag).toBe("Deny")
  })

  it("fails closed when the predicate throws", () => {
    const p = Policy.when(Policy.constant("ok", Decision.allow()), () => {
      throw new Error("bad predicate")
    })
    expect(Decision.reasonCodes(Policy.evaluateSync(p, action))).toEqual(["policy.defect"])
  })
})

describe("Policy.forAction", () => {
  const names = ["a", "b", "c"] as const
  const named = (name: string) => Action.make({ actor: { id: "agent-1", kind: "agent" }, kind: "tool", name })

  /** A policy for each (scope, result): scoped with forAction, or the same scope as a `when` predicate. */
  const scopedPolicies = (
    specs: ReadonlyArray<{ readonly scope: ReadonlyArray<string> | null; readonly result: Decision.Result }>,
    how: "forAction" | "when"
  ) =>
    specs.map(({ result, scope }, i) => {
      const leaf = Policy.constant(`p${i}`, result)
      if (scope === null || scope.length === 0) return leaf
      return how === "forAction"
        ? leaf.pipe(Policy.forAction(scope as [string, ...Array<string>]))
        : leaf.pipe(Policy.when((a) => scope.includes(a.name)))
    })

  const spec = fc.record({
    scope: fc.option(fc.uniqueArray(fc.constantFrom(...names, "d"), { maxLength: 2 })),
    result: Arbitraries.result
  })

  it("decides and explains exactly as the same scope written with `when`, under every combinator", () =>
    fc.assert(
      fc.property(fc.array(spec, { maxLength: 8 }), fc.constantFrom(...names, "zzz"), (specs, name) => {
        const combinators = [
          (ps: ReadonlyArray<Policy.Sync>) => Policy.all(ps),
          (ps: ReadonlyArray<Policy.Sync>) => Policy.allConcurrent(ps),
          (ps: ReadonlyArray<Policy.Sync>) => Policy.firstDenial(ps),
          (ps: ReadonlyArray<Policy.Sync>) => Policy.firstApplicable(ps)
        ]
        for (const combine of combinators) {
          const record = (how: "forAction" | "when") => {
            const set = PolicySet.unsafeMake({ id: "s", version: "1", policy: combine(scopedPolicies(specs, how)) })
            const r = PolicySet.evaluateSync(set, named(name))
            return { decision: r.decision, defaulted: r.defaulted, explain: r.explain }
          }
          expect(record("forAction")).toEqual(record("when"))
        }
      }),
      { numRuns: 300 }
    ))

  it.effect("is indexed on the effectful path too", () =>
    Effect.gen(function*() {
      let calls = 0
      const checks = names.map((name) =>
        Policy.effect(`check.${name}`, () => Effect.sync(() => (calls++, Decision.allow()))).pipe(Policy.forAction(name))
      )
      const result = yield* Policy.evaluate(Policy.all(checks), named("b"))
      expect(result._tag).toBe("Allow")
      expect(calls).toBe(1)
      const none = yield* Policy.evaluate(Policy.all(checks), named("zzz"))
      expect(none._tag).toBe("NotApplicable")
      expect(calls).toBe(1)
    }))

  it("takes several names, and only those", () => {
    const p = Policy.constant("p", Decision.allow()).pipe(Policy.forAction(["a", "c"]))
    expect(names.map((name) => Policy.evaluateSync(p, named(name))._tag)).toEqual(["Allow", "NotApplicable", "Allow"])
  })
})

describe("Policy leaves returning constant decisions", () => {
  it("stamp each of them with the right policy id, however they alternate", () => {
    const allow = Decision.allow({ code: "ok", message: "ok" })
    const warn = Decision.warn({ code: "careful", message: "careful" })
    const deny = Decision.deny({ code: "no", message: "no" })
    const sequence = [allow, warn, allow, deny, deny, warn, allow, Decision.notApplicable, deny, allow]
    let i = 0
    const p = Policy.make("alternating", () => sequence[i++ % sequence.length]!)
    for (let round = 0; round < 3 * sequence.length; round++) {
      const expected = sequence[round % sequence.length]!
      const result = Policy.evaluateSync(p, action)
      expect(result._tag).toBe(expected._tag)
      expect(Decision.reasonCodes(result)).toEqual(Decision.reasonCodes(expected))
      if (result._tag !== "NotApplicable") expect(result.reasons.every((r) => r.policyId === "alternating")).toBe(true)
    }
  })
})
