import { Action, Compliance, Decision, Identity, Policy, PolicyError, PolicySet, Quota, Ticketing } from "@gavel/core"
import { CallLog, Fakes } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"

const action = Action.make({
  actor: { id: "agent-1", kind: "agent", roles: ["operator"] },
  kind: "tool",
  name: "deploy",
  metadata: { ticket: "CHG-1" },
  requestId: "req-1"
})

/** Forks `effect`, advances virtual time step by step, and returns its result with the virtual time it completed at. */
const runFor = <A, E, R>(effect: Effect.Effect<A, E, R>, total: Duration.DurationInput = "1 hour") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.zip(effect, Clock.currentTimeMillis))
    yield* TestClock.adjust(total)
    return yield* Fiber.join(fiber)
  })

const slowCheck = (id: string, ms: number, result: Decision.Result = Decision.allow()) =>
  Policy.effect(id, () => Effect.as(Effect.sleep(ms), result))

describe("virtual-time latency", () => {
  const checks = [slowCheck("a", 20), slowCheck("b", 20), slowCheck("c", 20)]

  it.effect("three 20 ms checks run concurrently decide at 20 ms", () =>
    Effect.gen(function*() {
      const [result, at] = yield* runFor(Policy.evaluate(Policy.allConcurrent(checks), action))
      expect(result._tag).toBe("Allow")
      expect(at).toBe(20)
    }))

  it.effect("the same checks in sequence decide at 60 ms", () =>
    Effect.gen(function*() {
      const [result, at] = yield* runFor(Policy.evaluate(Policy.all(checks), action))
      expect(result._tag).toBe("Allow")
      expect(at).toBe(60)
    }))

  it.effect("a hung check with a 2 s timeout fails closed with policy.timeout at exactly 2 s", () =>
    Effect.gen(function*() {
      const policy = Policy.all([Identity.requireRole("operator").pipe(Policy.timeout("2 seconds"), Policy.failClosed)])
      const set = PolicySet.unsafeMake({ id: "s", version: "1", policy })
      const [record, at] = yield* runFor(PolicySet.evaluate(set, action))
      expect(at).toBe(2000)
      expect(record.decision._tag).toBe("Deny")
      expect(record.reasonCodes).toEqual(["policy.timeout"])
      expect(record.reasons[0]!.policyId).toBe("identity.role(operator)")
      expect(record.explain.map((e) => [e.policyId, e.result._tag, e.durationMillis])).toEqual([
        ["identity.role(operator)", "Deny", 2000]
      ])
      const [call] = yield* CallLog.entries
      expect(call).toMatchObject({ system: "identity", operation: "resolve", status: "interrupted", endedAt: 2000 })
    }).pipe(Effect.provide(Fakes.layer({ identity: { resolve: () => Fakes.hang() } }))))
})

describe("firstDenial", () => {
  it.effect("interrupts the slow checks once a fast check denies", () =>
    Effect.gen(function*() {
      const policy = Policy.firstDenial([
        Identity.requireRole("admin"),
        Ticketing.requireStatus("approved"),
        Compliance.requireCompliant()
      ]).pipe(Policy.failClosed)
      const [result, at] = yield* runFor(Policy.evaluate(policy, action))
      expect(Decision.reasonCodes(result)).toEqual(["identity.role_missing"])
      expect(at).toBe(5)
      const calls = yield* CallLog.entries
      expect(calls.map((c) => [c.system, c.status])).toEqual([
        ["identity", "succeeded"],
        ["ticketing", "interrupted"],
        ["compliance", "interrupted"]
      ])
    }).pipe(Effect.provide(Fakes.layer({
      identity: { principals: { "agent-1": { roles: ["operator"] } }, latency: "5 millis" },
      ticketing: { tickets: { "CHG-1": { status: "approved" } }, latency: "10 seconds" },
      compliance: { latency: "10 seconds" }
    }))))
})

describe("deadlines", () => {
  it.effect("a 1 s budget over two 600 ms checks in sequence cuts the second at 400 ms", () =>
    Effect.gen(function*() {
      const policy = Policy.all([
        Identity.requireRole("operator").pipe(Policy.timeout("5 seconds")),
        Ticketing.requireStatus("approved").pipe(Policy.timeout("5 seconds"))
      ]).pipe(Policy.budget("1 second"), Policy.failClosed)
      const set = PolicySet.unsafeMake({ id: "s", version: "1", policy })
      const [record, at] = yield* runFor(PolicySet.evaluate(set, action))
      expect(at).toBe(1000)
      expect(record.decision._tag).toBe("Deny")
      expect(record.reasonCodes).toEqual(["policy.timeout"])
      expect(record.reasons[0]!.message).toContain("remaining evaluation budget")
      const calls = yield* CallLog.entries
      expect(calls.map((c) => [c.system, c.status, c.startedAt, c.endedAt])).toEqual([
        ["identity", "succeeded", 0, 600],
        ["ticketing", "interrupted", 600, 1000]
      ])
    }).pipe(Effect.provide(Fakes.layer({
      identity: { principals: { "agent-1": { roles: ["operator"] } }, latency: "600 millis" },
      ticketing: { tickets: { "CHG-1": { status: "approved" } }, latency: "600 millis" }
    }))))

  it.effect("the budget bounds checks that have no timeout of their own", () =>
    Effect.gen(function*() {
      const policy = Policy.all([slowCheck("first", 600), slowCheck("second", 600)]).pipe(Policy.budget("1 second"))
      const [error, at] = yield* runFor(Effect.flip(Policy.evaluate(policy, action)))
      expect(at).toBe(1000)
      expect(error._tag === "PolicyTimeout" && [error.policyId, Duration.toMillis(error.limit), error.budget]).toEqual([
        "second",
        400,
        true
      ])
    }))

  it.effect("a check's own timeout wins when it is smaller than what remains", () =>
    Effect.gen(function*() {
      const policy = slowCheck("slow", 500).pipe(Policy.timeout("100 millis"), Policy.budget("1 second"))
      const [error, at] = yield* runFor(Effect.flip(Policy.evaluate(policy, action)))
      expect(at).toBe(100)
      expect(error).toBeInstanceOf(PolicyError.PolicyTimeout)
      expect(error._tag === "PolicyTimeout" && [Duration.toMillis(error.limit), error.budget]).toEqual([100, false])
    }))
})

describe("retry", () => {
  const flaky = (failures: number) =>
    Fakes.layer({
      compliance: {
        verify: () =>
          Fakes.sequence<Compliance.Verdict>(
            ...Array.from({ length: failures }, () => Fakes.fail("503 Service Unavailable")),
            Fakes.answer({ _tag: "Compliant" })
          )
      }
    })
  const policy = Policy.all([
    Policy.constant("base", Decision.allow()),
    Compliance.requireCompliant().pipe(Policy.retry(Schedule.recurs(2)), Policy.failClosed)
  ])

  it.effect("a check failing twice then succeeding under recurs(2) allows", () =>
    Effect.gen(function*() {
      const result = yield* Policy.evaluate(policy, action)
      expect(result._tag).toBe("Allow")
      expect((yield* CallLog.entries).map((c) => c.status)).toEqual(["failed", "failed", "succeeded"])
    }).pipe(Effect.provide(flaky(2))))

  it.effect("a check failing three times fails closed with external.unavailable", () =>
    Effect.gen(function*() {
      const result = yield* Policy.evaluate(policy, action)
      expect(result._tag).toBe("Deny")
      expect(Decision.reasonCodes(result)).toEqual(["external.unavailable"])
      expect((yield* CallLog.entries).length).toBe(3)
    }).pipe(Effect.provide(flaky(3))))
})

describe("failure semantics", () => {
  const failing = Fakes.layer({
    identity: { resolve: () => Fakes.fail("connection refused") },
    ticketing: { lookup: () => Fakes.hang() },
    compliance: { verify: () => Fakes.fail("HTTP 500") }
  })

  it.effect("every unmapped failure path ends in a decision that cannot proceed", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Policy.Policy<PolicyError.PolicyError, any>, string]> = [
        [Identity.requireRole("operator"), "external.unavailable"],
        [Ticketing.requireStatus("approved").pipe(Policy.timeout("1 second")), "policy.timeout"],
        [Compliance.requireCompliant(), "external.unavailable"],
        [Policy.effect("self-abort", () => Effect.interrupt), "external.cancelled"],
        [Policy.effect("host-error", () => Effect.fail({ _tag: "Mine" } as never)), "policy.failed"]
      ]
      for (const [policy, code] of cases) {
        const [result] = yield* runFor(Policy.evaluate(Policy.failClosed(policy), action))
        expect(Decision.canProceed(result)).toBe(false)
        expect(Decision.reasonCodes(result)).toEqual([code])
      }
    }).pipe(Effect.provide(failing)))

  it.effect("a check that interrupts itself fails with PolicyCancelled, not as caller cancellation", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Policy.evaluate(Policy.effect("self-abort", () => Effect.interrupt), action))
      expect(error).toBeInstanceOf(PolicyError.PolicyCancelled)
    }))

  it.effect("onFailure maps each failure to the decision the host chose, with the standard reason code", () =>
    Effect.gen(function*() {
      const policy = Ticketing.requireStatus("approved").pipe(
        Policy.timeout("1 second"),
        Policy.onFailure({ timeout: "Defer", cancelled: "Deny" })
      )
      const [result] = yield* runFor(Policy.evaluate(policy, action))
      expect(result._tag).toBe("Defer")
      expect(Decision.reasonCodes(result)).toEqual(["policy.timeout"])
      const custom = Identity.requireRole("operator").pipe(
        Policy.onFailure({
          unavailable: (e) => Decision.escalate({ code: "identity.down", message: e.message }, { reviewPath: "oncall" }),
          cancelled: "Deny"
        })
      )
      const escalated = yield* Policy.evaluate(custom, action)
      expect(escalated._tag === "Escalate" && escalated.reviewPaths).toEqual(["oncall"])
    }).pipe(Effect.provide(failing)))

  it.effect("leaves unhandled failures in the error channel", () =>
    Effect.gen(function*() {
      const policy = Compliance.requireCompliant().pipe(Policy.onFailure({ timeout: "Deny" }))
      const error = yield* Effect.flip(Policy.evaluate(policy, action))
      expect(error._tag).toBe("ExternalCheckFailed")
    }).pipe(Effect.provide(failing)))
})

describe("caller cancellation", () => {
  it.effect("interrupts every check in flight and produces no decision", () =>
    Effect.gen(function*() {
      const policy = Policy.allConcurrent([
        Identity.requireRole("operator"),
        Ticketing.requireStatus("approved"),
        Compliance.requireCompliant()
      ]).pipe(Policy.failClosed)
      const set = PolicySet.unsafeMake({ id: "s", version: "1", policy })
      let decided = false
      const fiber = yield* Effect.fork(PolicySet.evaluate(set, action).pipe(Effect.tap(() => { decided = true })))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("1 hour")
      expect(decided).toBe(false)
      const calls = yield* CallLog.entries
      expect(calls.map((c) => c.status)).toEqual(["interrupted", "interrupted", "interrupted"])
    }).pipe(Effect.provide(Fakes.layer({
      identity: { latency: "10 seconds" },
      ticketing: { latency: "10 seconds" },
      compliance: { latency: "10 seconds" }
    }))))
})

describe("built-in checks", () => {
  const fakes = Fakes.layer({
    identity: {
      principals: {
        "agent-1": { roles: ["operator"] },
        "agent-2": { roles: ["operator"], status: "suspended" }
      }
    },
    ticketing: { tickets: { "CHG-1": { status: "approved" }, "CHG-2": { status: "open" } } },
    quota: { limits: { "agent-1": 2 } },
    compliance: {
      verify: (a) =>
        Fakes.answer<Compliance.Verdict>(
          a.name === "export"
            ? { _tag: "NonCompliant", violations: [{ code: "gdpr.transfer", message: "Cross-border transfer" }] }
            : { _tag: "Compliant" }
        )
    }
  })
  const run = (policy: Policy.Policy<PolicyError.PolicyError, any>, a: Action.Action = action) =>
    Effect.map(Policy.evaluate(Policy.failClosed(policy), a), (r) => [r._tag, ...Decision.reasonCodes(r)])

  it.effect("requireRole asks the identity system, not the action's claims", () =>
    Effect.gen(function*() {
      expect(yield* run(Identity.requireRole("operator"))).toEqual(["Allow"])
      expect(yield* run(Identity.requireRole("admin"))).toEqual(["Deny", "identity.role_missing"])
      const claimsAdmin = { ...action, actor: { ...action.actor, id: "agent-2", roles: ["admin"] } }
      expect(yield* run(Identity.requireRole("admin"), claimsAdmin)).toEqual(["Deny", "identity.inactive"])
      const stranger = { ...action, actor: { ...action.actor, id: "nobody" } }
      expect(yield* run(Identity.requireRole("operator"), stranger)).toEqual(["Deny", "identity.unknown_principal"])
    }).pipe(Effect.provide(fakes)))

  it.effect("requireStatus checks the referenced ticket and cites it as evidence", () =>
    Effect.gen(function*() {
      const check = Ticketing.requireStatus(["approved", "scheduled"])
      expect(yield* run(check)).toEqual(["Allow", "ticket.verified"])
      expect(yield* run(check, { ...action, metadata: { ticket: "CHG-2" } })).toEqual(["Deny", "ticket.status"])
      expect(yield* run(check, { ...action, metadata: { ticket: "CHG-9" } })).toEqual(["Deny", "ticket.not_found"])
      expect(yield* run(check, { ...action, metadata: {} })).toEqual(["Deny", "ticket.missing"])
      const result = yield* Policy.evaluate(Policy.failClosed(check), action)
      expect(result._tag === "Allow" && result.reasons[0]!.evidenceRefs).toEqual(["ticket:CHG-1"])
    }).pipe(Effect.provide(fakes)))

  it.effect("withinQuota consumes idempotently and denies once the quota is used up", () =>
    Effect.gen(function*() {
      const check = Quota.withinQuota({ key: (a) => a.actor.id, consume: true })
      const second = { ...action, requestId: "req-2" }
      const third = { ...action, requestId: "req-3" }
      expect(yield* run(check)).toEqual(["NotApplicable"])
      expect(yield* run(check)).toEqual(["NotApplicable"])
      expect(yield* run(check, second)).toEqual(["NotApplicable"])
      expect(yield* run(check, third)).toEqual(["Deny", "quota.exceeded"])
      const quota = yield* Quota.Quota
      expect((yield* quota.check("agent-1", 1)).remaining).toBe(0)
    }).pipe(Effect.provide(fakes)))

  it.effect("requireCompliant denies with the compliance system's codes, or escalates", () =>
    Effect.gen(function*() {
      expect(yield* run(Compliance.requireCompliant())).toEqual(["NotApplicable"])
      const exportAction = { ...action, name: "export" }
      expect(yield* run(Compliance.requireCompliant(), exportAction)).toEqual(["Deny", "gdpr.transfer"])
      expect(yield* run(Compliance.requireCompliant({ onViolation: "Escalate" }), exportAction)).toEqual([
        "Escalate",
        "gdpr.transfer"
      ])
    }).pipe(Effect.provide(fakes)))

  it.effect("unknown identities resolve to None in the fake", () =>
    Effect.gen(function*() {
      const identity = yield* Identity.Identity
      expect(Option.isNone(yield* identity.resolve("nobody"))).toBe(true)
    }).pipe(Effect.provide(fakes)))
})
