import {
  Action,
  ApprovalStore,
  AuditSink,
  Decision,
  Governance,
  IdGenerator,
  Policy,
  PolicySet,
  Quota
} from "@gavel/core"
import { Approvals, Fakes } from "@gavel/testing"
import { assert, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"

// -----------------------------------------------------------------------------
// fixtures
// -----------------------------------------------------------------------------

const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })
const alice = human("alice")
const bob = human("bob")
const carol = human("carol")
const mallory = human("mallory")
const cfo = human("cfo")

interface Payment {
  readonly amount: number
  readonly currency: string
  readonly to: string
}

const payment = (
  payload: Payment,
  overrides: { readonly actor?: string; readonly tenant?: string; readonly name?: string; readonly account?: string } = {}
) =>
  Action.make({
    actor: { id: overrides.actor ?? "agent-7", kind: "agent", tenant: overrides.tenant ?? "acme" },
    kind: "tool",
    name: overrides.name ?? "payments.transfer",
    resource: { type: "account", id: overrides.account ?? "acc-1" },
    payload,
    requestId: "req-1"
  })

const valid3 = { actor: { id: "agent-7", kind: "agent" as const, tenant: "acme" }, kind: "tool", name: "payments.transfer" }

const amountOf = (action: Action.Action) => (action.payload as Payment | undefined)?.amount ?? 0

/** Payments over 1,000 need `quorum` finance approvers; the shell tool is denied. */
const paymentsPolicy = (quorum = 2) =>
  Policy.make("payments", (action) => {
    if (action.name === "shell.exec") return Decision.deny({ code: "tool.blocked", message: "no shell" })
    if (!action.name.startsWith("payments.")) return Decision.notApplicable
    return amountOf(action) > 1000
      ? Decision.requireApproval(
        { code: "payment.large", message: "Payments over 1,000 need finance approval" },
        { quorum, roles: ["finance"], timeout: "1 hour" }
      )
      : Decision.allow()
  })

const principals: Record<string, { roles: Array<string> }> = {
  alice: { roles: ["finance"] },
  bob: { roles: ["finance"] },
  carol: { roles: ["finance"] },
  "agent-7": { roles: ["finance"] },
  mallory: { roles: ["engineering"] },
  cfo: { roles: ["cfo"] }
}

const testLayer = <R>(
  policy: Policy.Policy<never, R>,
  options: Omit<Governance.Options<R>, "policySet"> & { readonly identity?: Fakes.IdentityOptions } = {}
) =>
  Governance.layer({
    ...options,
    sweepInterval: options.sweepInterval ?? "1 minute",
    policySet: PolicySet.unsafeMake({
      id: "payments",
      version: "1",
      policy,
      overridePolicy: { authority: { roles: ["cfo"], principals: [] } }
    })
  }).pipe(
    Layer.provideMerge(ApprovalStore.layerMemory),
    Layer.provideMerge(AuditSink.layerMemory),
    Layer.provideMerge(IdGenerator.layerSequential),
    Layer.provideMerge(
      Fakes.layer({ identity: options.identity ?? { principals }, quota: { limits: { payments: 10_000 } } })
    )
  )

/** A work function that counts its runs and returns the action it ran with. */
const counter = Effect.map(Ref.make<ReadonlyArray<Action.Action>>([]), (runs) => ({
  runs,
  work: (action: Action.Action) => Effect.as(Ref.update(runs, (all) => [...all, action]), action)
}))

const big = { amount: 5000, currency: "EUR", to: "DE89" }

/** Submits `action`, which must answer `Pending`, and has each of `approvers` approve it. */
const submitApproved = (action: Action.Action, approvers: ReadonlyArray<Action.Principal>) =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const submitted = yield* governance.submit(action)
    assertPending(submitted)
    for (const approver of approvers) yield* governance.approve(submitted.approvalId, approver)
    return submitted
  })

const parked = (action: Action.Action) =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const { runs, work } = yield* counter
    const fiber = yield* Effect.fork(governance.enforce(action, work))
    const request = yield* Approvals.awaitPending()
    return { governance, runs, fiber, request }
  })

// -----------------------------------------------------------------------------
// decisions without approval
// -----------------------------------------------------------------------------

describe("enforce", () => {
  it.effect("runs the work on Allow", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const action = payment({ amount: 10, currency: "EUR", to: "DE89" })
      expect(yield* governance.enforce(action, work)).toBe(action)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(testLayer(paymentsPolicy()))))

  it.effect("fails Deny, Escalate and Defer with their typed errors carrying the record, and never runs the work", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const denied = yield* Effect.flip(governance.enforce(payment(big, { name: "shell.exec" }), work))
      expect(denied._tag).toBe("Denied")
      expect(denied._tag === "Denied" && denied.record.reasonCodes).toEqual(["tool.blocked"])
      const escalated = yield* Effect.flip(governance.enforce(payment(big, { name: "payments.escalate" }), work))
      expect(escalated._tag).toBe("Escalated")
      expect(escalated._tag === "Escalated" && escalated.record.reviewPath).toEqual(["treasury"])
      const deferred = yield* Effect.flip(governance.enforce(payment(big, { name: "payments.defer" }), work))
      expect(deferred._tag).toBe("Deferred")
      expect(yield* Ref.get(runs)).toEqual([])
    }).pipe(Effect.provide(testLayer(Policy.firstApplicable([
      Policy.make("escalate", (a) =>
        a.name === "payments.escalate"
          ? Decision.escalate({ code: "treasury.review", message: "to treasury" }, { reviewPath: "treasury" })
          : a.name === "payments.defer"
          ? Decision.defer({ code: "kyc.pending", message: "KYC not done" })
          : Decision.notApplicable),
      paymentsPolicy()
    ])))))

  it.effect("re-evaluates a transformed action and runs the work on the replacement", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const ran = yield* governance.enforce(payment({ amount: 900, currency: "EUR", to: "DE89" }, { name: "payments.raw" }), work)
      expect(ran.name).toBe("payments.transfer")
      expect(yield* Ref.get(runs)).toEqual([ran])
      // A replacement that itself needs approval is not run without one.
      const exit = yield* governance.enforce(payment(big, { name: "payments.raw" }), work).pipe(
        Effect.timeout("1 millis"),
        Effect.fork,
        Effect.tap(() => TestClock.adjust("1 millis")),
        Effect.flatMap(Fiber.await)
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(testLayer(Policy.firstApplicable([
      Policy.make("rename", (a) =>
        a.name === "payments.raw"
          ? Decision.transform({ code: "tool.renamed", message: "use the governed tool" }, {
            action: { ...a, name: "payments.transfer" }
          })
          : Decision.notApplicable),
      paymentsPolicy()
    ])))))

  it.effect("refuses a hand-built action outside the value domain with InvalidAction: no decision, no approval", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const store = yield* ApprovalStore.ApprovalStore
      const sink = yield* AuditSink.AuditSink
      const { runs, work } = yield* counter
      const valid = payment(big)
      // Bypassing Action.make: a Map (hashes like any other Map), a cycle, 100,000 levels.
      const cyclic: Record<string, unknown> = { amount: 5000 }
      cyclic["self"] = cyclic
      let deep: unknown = 5000
      for (let i = 0; i < 100_000; i++) deep = { amount: deep }
      const bad: ReadonlyArray<readonly [Action.Action, string, Action.InvalidActionReason]> = [
        [{ ...valid, payload: { ...big, to: new Map([["iban", "DE89"]]) } }, "payload.to", "unsupported_type"],
        [{ ...valid, payload: cyclic }, "payload.self", "cycle"],
        [{ ...valid, payload: deep }, "payload" + ".amount".repeat(64), "too_deep"],
        // Typed fields hold values from code too: checked by the same walk.
        [{ ...valid, name: deep as string }, "name" + ".amount".repeat(64), "too_deep"],
        [{ ...valid, actor: { ...valid.actor, id: deep as string } }, "actor.id" + ".amount".repeat(63), "too_deep"]
      ]
      for (const [action, path, reason] of bad) {
        for (
          const attempt of [
            governance.submit(action) as Effect.Effect<unknown, unknown>,
            governance.evaluate(action),
            governance.enforce(action, work),
            governance.resume("apr-1", action, work),
            governance.run({ _tag: "Decided", record: { decision: Decision.allow() } as never, action }, work)
          ]
        ) {
          const error = yield* Effect.flip(attempt)
          assert(error instanceof Action.InvalidAction)
          expect([error.path, error.reason]).toEqual([path, reason])
        }
      }
      expect(yield* store.list({})).toEqual([])
      expect(yield* sink.read()).toEqual([])
      expect(yield* Ref.get(runs)).toEqual([])
    }).pipe(Effect.provide(testLayer(paymentsPolicy()))))

  it.effect("a transform's replacement is checked too; actionLimits raises or lowers the limits", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      // A replacement that is no action at all (NaN) is the policy's defect: a Deny, never a crash.
      const nan = yield* governance.submit(payment({ amount: 10, currency: "EUR", to: "DE89" }, { name: "payments.raw" }))
      assert(nan._tag === "Decided")
      expect([nan.record.decision._tag, nan.record.reasonCodes]).toEqual(["Deny", ["policy.defect"]])
      // A replacement within the default limits but over the runtime's: InvalidAction.
      const deep = payment({ amount: 10, currency: "EUR", to: "DE89" }, { name: "payments.deep" })
      const error = yield* Effect.flip(governance.submit(deep))
      assert(error instanceof Action.InvalidAction)
      expect([error.path, error.reason]).toEqual(["payload.a.b.c", "too_deep"])
      // Depth 3 is the limit: { a: { b: {} } } passes, one more level does not.
      const ok = yield* governance.evaluate(Action.makeUnvalidated({ ...valid3, payload: { a: { b: {} } } }))
      expect(ok.decision._tag).toBe("Allow")
      const deeper = yield* Effect.flip(governance.evaluate(Action.makeUnvalidated({ ...valid3, payload: { a: { b: { c: {} } } } })))
      expect(deeper._tag === "InvalidAction" && [deeper.path, deeper.reason, deeper.limit]).toEqual([
        "payload.a.b.c",
        "too_deep",
        3
      ])
      const invalidLimits = yield* Effect.flip(Effect.scoped(Layer.build(testLayer(paymentsPolicy(), { actionLimits: { maxNodes: 0 } }))))
      expect(String(invalidLimits)).toContain("actionLimits.maxNodes")
    }).pipe(Effect.provide(testLayer(
      Policy.firstApplicable([
        Policy.make("rename", (a) =>
          a.name === "payments.raw"
            ? Decision.transform({ code: "tool.renamed", message: "use the governed tool" }, {
              action: { ...a, name: "payments.transfer", payload: { amount: Number.NaN } }
            })
            : a.name === "payments.deep"
            ? Decision.transform({ code: "tool.renamed", message: "use the governed tool" }, {
              action: { ...a, name: "payments.transfer", payload: { a: { b: { c: {} } } } }
            })
            : Decision.notApplicable),
        paymentsPolicy()
      ]),
      { actionLimits: { maxDepth: 3 } }
    ))))

  it.effect("actionLimits.maxDepth is at most 1,000: at the ceiling, a payload is governed and written whole", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const sink = yield* AuditSink.AuditSink
      const deep = JSON.parse(`{"amount":10,"currency":"EUR","to":"DE89","n":${"[".repeat(999)}${"]".repeat(999)}}`)
      const deepPayment = (payload: unknown) => Action.makeUnvalidated({ ...valid3, payload })
      const record = yield* governance.evaluate(deepPayment(deep))
      expect(record.decision._tag).toBe("Allow")
      const written = (yield* sink.read()).at(-1)!.data["payload"]
      expect(JSON.stringify(written).length).toBe(`{"amount":10,"currency":"EUR","to":"DE89","n":}`.length + 2 * 999)
      const tooDeep = yield* Effect.flip(governance.evaluate(deepPayment({ ...deep, n: [deep["n"]] })))
      expect(tooDeep._tag === "InvalidAction" && [tooDeep.reason, tooDeep.limit]).toEqual(["too_deep", 1_000])
      // Deeper values could not be written (JSON.stringify and Schema's messages recurse): refused at start.
      const overCeiling = yield* Effect.flip(
        Effect.scoped(Layer.build(testLayer(paymentsPolicy(), { actionLimits: { maxDepth: 1_001 } })))
      )
      expect(overCeiling._tag === "InvalidOption" && overCeiling.option).toBe("actionLimits.maxDepth")
    }).pipe(Effect.provide(testLayer(paymentsPolicy(), {
      actionLimits: { maxDepth: 1_000 },
      redaction: { payload: "include" }
    }))))

  it.effect("stops following transforms after maxTransforms", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const error = yield* Effect.flip(governance.enforce(payment(big), work))
      expect(error._tag).toBe("TooManyTransforms")
      expect(yield* Ref.get(runs)).toEqual([])
    }).pipe(Effect.provide(testLayer(
      Policy.make("loop", (a) =>
        Decision.transform({ code: "again", message: "again" }, {
          action: { ...a, metadata: { n: String(Number(a.metadata["n"] ?? 0) + 1) } }
        })),
      { maxTransforms: 2 }
    ))))
})

// -----------------------------------------------------------------------------
// approvals: the behaviour users rely on
// -----------------------------------------------------------------------------

describe("approvals", () => {
  const layer2 = testLayer(paymentsPolicy(2))
  const layer1 = testLayer(paymentsPolicy(1))

  it.effect("parks until the quorum approves, then runs the work once with the approved action", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      expect(request.requirement.quorum).toBe(2)
      expect(request.requirement.expiresAt.getTime()).toBe(3_600_000)
      expect(request.summary).not.toHaveProperty("payload")
      const afterOne = yield* governance.approve(request.id, alice, "ok")
      expect(afterOne.status).toBe("pending")
      yield* Approvals.settle()
      expect(fiber.unsafePoll()).toBeNull()
      const afterTwo = yield* governance.approve(request.id, bob)
      expect(afterTwo.status).toBe("approved")
      const ran = yield* Fiber.join(fiber)
      expect(Action.hash(ran)).toBe(request.actionHash)
      expect(yield* Ref.get(runs)).toHaveLength(1)
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(request.id)).status).toBe("consumed")
    }).pipe(Effect.provide(layer2)))

  it.effect("1. two approvers resolving a single-quorum approval concurrently: one resolution, the other AlreadyResolved", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      const results = yield* Effect.all(
        [governance.approve(request.id, alice), governance.approve(request.id, bob)].map(Effect.either),
        { concurrency: "unbounded" }
      )
      expect(results.filter(Either.isRight)).toHaveLength(1)
      const lost = results.find(Either.isLeft)
      expect(lost?._tag === "Left" && lost.left._tag).toBe("AlreadyResolved")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(layer1)))

  it.effect("2. approve and expiry at the expiry instant: the approval expires, nothing resumes", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      yield* TestClock.setTime(request.requirement.expiresAt.getTime())
      const [vote, expired] = yield* Effect.all(
        [Effect.either(governance.approve(request.id, alice)), governance.expireDue],
        { concurrency: "unbounded" }
      )
      expect(Either.isLeft(vote) && vote.left._tag).toBe("ApprovalExpired")
      expect(expired.map((r) => r.id)).toEqual([request.id])
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("ApprovalExpired")
      expect(yield* Ref.get(runs)).toEqual([])
      const store = yield* ApprovalStore.ApprovalStore
      const final = yield* store.get(request.id)
      expect(final.status).toBe("expired")
      expect(final.votes).toEqual([])
      // The sweeper would have found it too; here the explicit sweep is the only one (10-day interval).
    }).pipe(Effect.provide(testLayer(paymentsPolicy(1), { sweepInterval: "10 days" }))))

  it.effect("2b. one millisecond before the expiry instant the approval wins and the sweep finds nothing", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      yield* TestClock.setTime(request.requirement.expiresAt.getTime() - 1)
      const [vote, expired] = yield* Effect.all([governance.approve(request.id, alice), governance.expireDue])
      expect(vote.status).toBe("approved")
      expect(expired).toEqual([])
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(layer1)))

  it.effect("3. the requester approving their own action: SelfApprovalForbidden, quorum unchanged", () =>
    Effect.gen(function*() {
      const { fiber, governance, request } = yield* parked(payment(big))
      // agent-7 holds the finance role, so only separation of duties stops it.
      const error = yield* Effect.flip(governance.approve(request.id, human("agent-7")))
      expect(error._tag).toBe("SelfApprovalForbidden")
      const store = yield* ApprovalStore.ApprovalStore
      const current = yield* store.get(request.id)
      expect(current.votes).toEqual([])
      expect(current.status).toBe("pending")
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer1)))

  it.effect("4. the same approver voting twice toward a quorum of 2: counted once, quorum not met", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      yield* governance.approve(request.id, alice)
      const error = yield* Effect.flip(governance.approve(request.id, alice))
      expect(error._tag).toBe("DuplicateVote")
      const store = yield* ApprovalStore.ApprovalStore
      const current = yield* store.get(request.id)
      expect(current.status).toBe("pending")
      expect(current.votes.map((v) => v.approver)).toEqual(["alice"])
      yield* Approvals.settle()
      expect(fiber.unsafePoll()).toBeNull()
      expect(yield* Ref.get(runs)).toEqual([])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer2)))

  it.effect("5. payload changed after approval: ActionMismatch, no run, a fresh approval needed; reordered keys still match", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const submitted = yield* submitApproved(payment(big), [alice])
      const changed = payment({ ...big, amount: 50_000 })
      const mismatch = yield* Effect.flip(governance.resume(submitted.approvalId, changed, work))
      expect(mismatch._tag).toBe("ActionMismatch")
      expect(yield* Ref.get(runs)).toEqual([])
      // The changed action gets its own approval.
      const fresh = yield* governance.submit(changed)
      assertPending(fresh)
      expect(fresh.approvalId).not.toBe(submitted.approvalId)
      // Same action, keys in another order, a new request id: still the approved action.
      const reordered = Action.make({
        requestId: "req-2",
        payload: { to: "DE89", currency: "EUR", amount: 5000 },
        resource: { id: "acc-1", type: "account" },
        name: "payments.transfer",
        kind: "tool",
        actor: { tenant: "acme", kind: "agent", id: "agent-7" }
      })
      yield* governance.resume(submitted.approvalId, reordered, work)
      expect(yield* Ref.get(runs)).toEqual([reordered])
    }).pipe(Effect.provide(layer1)))

  it.effect("6. a consumed approval used again: AlreadyConsumed, the work ran exactly once", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const action = payment(big)
      const submitted = yield* submitApproved(action, [alice])
      const both = yield* Effect.all(
        [governance.resume(submitted.approvalId, action, work), governance.resume(submitted.approvalId, action, work)]
          .map(Effect.either),
        { concurrency: "unbounded" }
      )
      expect(both.filter(Either.isRight)).toHaveLength(1)
      const again = yield* Effect.flip(governance.resume(submitted.approvalId, action, work))
      expect(again._tag).toBe("AlreadyConsumed")
      expect(both.find(Either.isLeft)?.pipe((e) => Either.isLeft(e) && e.left._tag)).toBe("AlreadyConsumed")
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(layer1)))

  it.effect("7. an approval presented for another tenant, tool or resource is refused", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const submitted = yield* submitApproved(payment(big), [alice])
      for (
        const other of [
          payment(big, { tenant: "globex" }),
          payment(big, { name: "payments.refund" }),
          payment(big, { account: "acc-2" }),
          payment(big, { actor: "agent-8" })
        ]
      ) {
        const error = yield* Effect.flip(governance.resume(submitted.approvalId, other, work))
        expect(error._tag).toBe("ActionMismatch")
      }
      expect(yield* Ref.get(runs)).toEqual([])
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(submitted.approvalId)).status).toBe("approved")
    }).pipe(Effect.provide(layer1)))

  it.effect("8. external state changed between approval and resume (quota exhausted): revalidation blocks the work", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      // Someone else uses the payments quota while the approval is pending.
      const quota = yield* Quota.Quota
      yield* quota.consume({ key: "payments", units: 8000, idempotencyKey: "other-payment" })
      yield* governance.approve(request.id, alice)
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("RevalidationFailed")
      expect(error._tag === "RevalidationFailed" && error.record.decision._tag).toBe("Deny")
      expect(error._tag === "RevalidationFailed" && error.record.reasonCodes).toContain("quota.exceeded")
      expect(yield* Ref.get(runs)).toEqual([])
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(request.id)).status).toBe("approved")
    }).pipe(Effect.provide(testLayer(Policy.all([
      paymentsPolicy(1),
      Quota.withinQuota({ key: () => "payments", units: amountOf }).pipe(Policy.failClosed)
    ])))))

  it.effect("8b. a stricter approval requirement at resume (other approvers, larger quorum, separation of duties) blocks the work", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const stricter: ReadonlyArray<Parameters<typeof Decision.requireApproval>[1]> = [
        { quorum: 1, roles: ["cfo"] },
        { quorum: 2, roles: ["finance"] },
        { quorum: 1, roles: ["finance"], principals: ["alice"] }
      ]
      for (const requirement of stricter) {
        current.requirement = { quorum: 1, roles: ["finance", "cfo"], separationOfDuties: false }
        const submitted = yield* submitApproved(payment(big), [alice])
        current.requirement = requirement
        const error = yield* Effect.flip(governance.resume(submitted.approvalId, submitted.action, work))
        expect(error._tag).toBe("RevalidationFailed")
        current.requirement = { quorum: 1, roles: ["finance", "cfo"], separationOfDuties: true }
        expect((yield* Effect.flip(governance.resume(submitted.approvalId, submitted.action, work)))._tag)
          .toBe("RevalidationFailed")
      }
      expect(yield* Ref.get(runs)).toEqual([])
      // The same or a looser requirement still passes.
      current.requirement = { quorum: 2, roles: ["finance", "cfo"], separationOfDuties: false }
      const submitted = yield* submitApproved(payment(big), [alice, bob])
      current.requirement = { quorum: 1, roles: ["finance", "cfo", "treasury"], separationOfDuties: false }
      yield* governance.resume(submitted.approvalId, submitted.action, work)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(testLayer(Policy.make("changing", () =>
      Decision.requireApproval({ code: "needs.approval", message: "needs approval" }, current.requirement))))))

  it.effect("9. an approver who lost eligibility before quorum: their vote does not count at resolution", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      yield* governance.approve(request.id, alice)
      // alice leaves finance before the second vote.
      directory.alice = { roles: ["marketing"] }
      const afterBob = yield* governance.approve(request.id, bob)
      expect(afterBob.status).toBe("pending")
      expect(afterBob.votes.map((v) => [v.approver, v.counted])).toEqual([["alice", false], ["bob", true]])
      yield* Approvals.settle()
      expect(fiber.unsafePoll()).toBeNull()
      const afterCarol = yield* governance.approve(request.id, carol)
      expect(afterCarol.status).toBe("approved")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(
      Effect.provide(testLayer(paymentsPolicy(2), { identity: { principals: directory } })),
      Effect.ensuring(Effect.sync(() => (directory.alice = { roles: ["finance"] })))
    ))

  it.effect("10. interrupting a parked enforce cancels the approval; the work never runs", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      yield* Fiber.interrupt(fiber)
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(request.id)).status).toBe("cancelled")
      const late = yield* Effect.flip(governance.approve(request.id, alice))
      expect(late._tag).toBe("AlreadyResolved")
      yield* Approvals.settle()
      expect(yield* Ref.get(runs)).toEqual([])
    }).pipe(Effect.provide(layer1)))

  it.effect("11. 1,000 parked enforce calls approved in random order: each work runs exactly once with its own action", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const store = yield* ApprovalStore.ApprovalStore
      const ran = new Map<number, number>()
      const actions = Array.from({ length: 1000 }, (_, i) => payment({ amount: 2000 + i, currency: "EUR", to: `DE${i}` }))
      const fibers = yield* Effect.forEach(actions, (action, i) =>
        Effect.fork(governance.enforce(action, (a) =>
          Effect.sync(() => {
            expect(a).toBe(action)
            ran.set(i, (ran.get(i) ?? 0) + 1)
          }))))
      yield* Approvals.settle()
      const pending = yield* store.listPending()
      expect(pending).toHaveLength(1000)
      for (const request of shuffle(pending, 42)) {
        yield* governance.approve(request.id, [alice, bob, carol][request.id.length % 3]!)
      }
      yield* Fiber.joinAll(fibers)
      expect(ran.size).toBe(1000)
      expect([...ran.values()].every((n) => n === 1)).toBe(true)
      expect(yield* store.listPending()).toEqual([])
      // One requester parks 1,000: above the default cap of pending approvals (100).
    }).pipe(Effect.provide(testLayer(paymentsPolicy(1), { maxPendingPerRequester: 1_000 }))))
})

const directory: Record<string, { roles: Array<string> }> = { ...principals }

/** The requirement test 8b's policy answers with; the test changes it between approval and resume. */
const current: { requirement: Parameters<typeof Decision.requireApproval>[1] } = { requirement: {} }

function assertPending(submission: Governance.Submission): asserts submission is Extract<
  Governance.Submission,
  { _tag: "Pending" }
> {
  expect(submission._tag).toBe("Pending")
}

/** A deterministic Fisher–Yates shuffle (LCG seeded). */
const shuffle = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
  const out = items.slice()
  let state = seed
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2147483648
    const j = state % (i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

describe("approval lifecycle", () => {
  const layer1 = testLayer(paymentsPolicy(1))

  it.effect("the sweeper expires a parked approval in virtual time and wakes the caller with ApprovalExpired", () =>
    Effect.gen(function*() {
      const { fiber, request, runs } = yield* parked(payment(big))
      yield* TestClock.adjust("59 minutes")
      expect(fiber.unsafePoll()).toBeNull()
      // Expiry at 60 min; the sweeper (every minute) finds it on its next turn.
      yield* TestClock.adjust("1 minute")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("ApprovalExpired")
      expect(error._tag === "ApprovalExpired" && error.expiresAt.getTime()).toBe(request.requirement.expiresAt.getTime())
      expect(yield* Ref.get(runs)).toEqual([])
    }).pipe(Effect.provide(layer1)))

  it.effect("Approvals.advanceToExpiry wakes the parked call without waiting for the sweeper", () =>
    Effect.gen(function*() {
      const { fiber, request } = yield* parked(payment(big))
      const expired = yield* Approvals.advanceToExpiry(request.id)
      expect(expired.map((r) => r.status)).toEqual(["expired"])
      expect((yield* Effect.flip(Fiber.join(fiber)))._tag).toBe("ApprovalExpired")
    }).pipe(Effect.provide(testLayer(paymentsPolicy(1), { sweepInterval: "10 days" }))))

  it.effect("Approvals.approveWhenPending approves after a virtual delay", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const fiber = yield* Effect.fork(governance.enforce(payment(big), work))
      const approver = yield* Effect.fork(Approvals.approveWhenPending([alice, bob], { after: "10 minutes" }))
      yield* TestClock.adjust("9 minutes")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 minute")
      expect((yield* Fiber.join(approver)).status).toBe("approved")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(testLayer(paymentsPolicy(2)))))

  it.effect("a counted rejection fails the parked call with ApprovalRejected", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big))
      yield* governance.approve(request.id, alice)
      const rejected = yield* governance.reject(request.id, bob, "wrong beneficiary")
      expect(rejected.status).toBe("rejected")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag === "ApprovalRejected" && [error.rejectedBy, error.note]).toEqual(["bob", "wrong beneficiary"])
      expect(yield* Ref.get(runs)).toEqual([])
    }).pipe(Effect.provide(testLayer(paymentsPolicy(2)))))

  it.effect("an approver the identity system places in another tenant may neither vote nor override", () =>
    Effect.gen(function*() {
      const { fiber, governance, request } = yield* parked(payment(big))
      const vote = yield* Effect.flip(governance.approve(request.id, human("gina")))
      expect(vote._tag === "NotAnApprover" && vote.reason).toBe("other_tenant")
      expect((yield* governance.approve(request.id, alice)).votes.map((v) => v.approver)).toEqual(["alice"])
      yield* Fiber.interrupt(fiber)
      const denied = yield* governance.evaluate(payment(big, { name: "shell.exec" }))
      expect(denied.decision._tag).toBe("Deny")
      const refused = yield* Effect.flip(
        governance.override(denied.decisionId, { authority: human("olga"), reason: "vendor", duration: "1 hour" })
      )
      expect(refused._tag === "OverrideNotAllowed" && refused.reason).toBe("other_tenant")
    }).pipe(Effect.provide(testLayer(paymentsPolicy(2), {
      identity: {
        principals: {
          ...principals,
          alice: { roles: ["finance"], tenant: "acme" },
          gina: { roles: ["finance"], tenant: "globex" },
          olga: { roles: ["cfo"], tenant: "globex" }
        }
      }
    }))))

  it.effect("only active principals within the authority may vote, as the identity system says", () =>
    Effect.gen(function*() {
      const { fiber, governance, request } = yield* parked(payment(big))
      const reasons = yield* Effect.forEach(
        [mallory, human("nobody"), human("dave"), human("erin")],
        (who) =>
          Effect.map(Effect.flip(governance.approve(request.id, who)), (e) => e._tag === "NotAnApprover" && e.reason)
      )
      expect(reasons).toEqual(["outside_authority", "unknown_principal", "inactive", "refused"])
      // Roles the host put on the principal do not matter: the identity system's do.
      const claimed = yield* Effect.flip(governance.approve(request.id, { ...mallory, roles: ["finance"] }))
      expect(claimed._tag).toBe("NotAnApprover")
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(request.id)).votes).toEqual([])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(testLayer(paymentsPolicy(1), {
      identity: {
        principals: { ...principals, dave: { roles: ["finance"], status: "suspended" }, erin: { roles: ["finance"] } },
        canApprove: ({ principalId }) => Fakes.answer(principalId !== "erin")
      }
    }))))

  it.effect("an identity outage while voting records nothing (fail closed)", () =>
    Effect.gen(function*() {
      const { fiber, governance, request } = yield* parked(payment(big))
      const error = yield* Effect.flip(governance.approve(request.id, alice))
      expect(error._tag).toBe("ExternalCheckFailed")
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(request.id)).votes).toEqual([])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(testLayer(paymentsPolicy(1), {
      identity: { principals, resolve: () => Fakes.fail("directory unreachable") }
    }))))

  it.effect("RequireAcknowledgment parks until a qualified actor acknowledges; approve on it is WrongKind", () =>
    Effect.gen(function*() {
      const { fiber, governance, request, runs } = yield* parked(payment(big, { name: "data.export" }))
      expect(request.kind).toBe("acknowledgment")
      const wrong = yield* Effect.flip(governance.approve(request.id, alice))
      expect(wrong._tag).toBe("WrongKind")
      const notQualified = yield* Effect.flip(governance.acknowledge(request.id, mallory))
      expect(notQualified._tag).toBe("NotAnApprover")
      const acknowledged = yield* governance.acknowledge(request.id, alice, "customer consented")
      expect(acknowledged.status).toBe("approved")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(testLayer(
      Policy.make("export", () =>
        Decision.requireAcknowledgment({ code: "data.export", message: "exports need acknowledgment" }, {
          roles: ["finance"]
        }))
    ))))

  it.effect("submit answers Pending without waiting; resume waits for the approval, then runs", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      const action = payment(big)
      const submitted = yield* governance.submit(action)
      assertPending(submitted)
      expect(submitted.expiresAt.getTime()).toBe(3_600_000)
      expect(submitted.record.decision._tag).toBe("RequireApproval")
      const resumed = yield* Effect.fork(governance.resume(submitted.approvalId, action, work))
      yield* Approvals.settle()
      expect(resumed.unsafePoll()).toBeNull()
      yield* governance.approve(submitted.approvalId, alice)
      yield* Fiber.join(resumed)
      expect(yield* Ref.get(runs)).toHaveLength(1)
      // Interrupting a waiting resume leaves the approval pending.
      const second = yield* governance.submit(payment({ ...big, amount: 7000 }))
      assertPending(second)
      const waiting = yield* Effect.fork(governance.resume(second.approvalId, second.action, work))
      yield* Approvals.settle()
      yield* Fiber.interrupt(waiting)
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(second.approvalId)).status).toBe("pending")
      const unknown = yield* Effect.flip(governance.resume("apr_nope", action, work))
      expect(unknown._tag).toBe("ApprovalNotFound")
      const small = yield* governance.submit(payment({ ...big, amount: 5 }))
      expect(small._tag === "Decided" && small.record.decision._tag).toBe("Allow")
    }).pipe(Effect.provide(layer1)))
})

describe("overrides", () => {
  const shell = payment(big, { name: "shell.exec" })

  it.effect("a principal with override authority lets a denied action through, for its scope and duration only", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const store = yield* ApprovalStore.ApprovalStore
      const { runs, work } = yield* counter
      const denied = yield* Effect.flip(governance.enforce(shell, work))
      assert(denied._tag === "Denied")
      const decisionId = denied.record.decisionId
      const options = {
        reason: "incident INC-7: hotfix",
        duration: "30 minutes" as const,
        compensatingControls: ["session recorded"]
      }

      const refused = yield* Effect.flip(governance.override(decisionId, { ...options, authority: alice }))
      expect(refused._tag === "OverrideNotAllowed" && refused.reason).toBe("outside_authority")
      const own = yield* Effect.flip(governance.override(decisionId, { ...options, authority: human("agent-7") }))
      expect(own._tag === "OverrideNotAllowed" && own.reason).toBe("own_decision")
      const missing = yield* Effect.flip(governance.override("dec_nope", { ...options, authority: cfo }))
      expect(missing._tag).toBe("DecisionNotFound")
      const noReason = yield* Effect.flip(governance.override(decisionId, { ...options, reason: "  ", authority: cfo }))
      expect(noReason._tag === "OverrideNotAllowed" && noReason.reason).toBe("missing_reason")
      const noDuration = yield* Effect.flip(governance.override(decisionId, { ...options, duration: 0, authority: cfo }))
      expect(noDuration._tag === "OverrideNotAllowed" && noDuration.reason).toBe("invalid_duration")

      const granted = yield* governance.override(decisionId, { ...options, authority: cfo })
      expect(granted).toMatchObject({ overrides: decisionId, grantedBy: "cfo", actor: "agent-7", coverage: "actor" })
      expect(granted.id).not.toBe(decisionId)
      // The original record is untouched.
      expect(Option.getOrThrow(yield* store.getDecision(decisionId))).toEqual(denied.record)

      yield* governance.enforce(shell, work)
      expect(yield* Ref.get(runs)).toHaveLength(1)
      // Another actor, or the same actor on another tool, is not covered.
      expect((yield* Effect.flip(governance.enforce(payment(big, { name: "shell.exec", actor: "agent-8" }), work)))._tag)
        .toBe("Denied")
      const submitted = yield* governance.submit(shell)
      expect(submitted._tag).toBe("Overridden")
      yield* TestClock.adjust("30 minutes")
      expect((yield* Effect.flip(governance.enforce(shell, work)))._tag).toBe("Denied")
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(testLayer(paymentsPolicy(1)))))

  it.effect("an override answers the denial it was granted for, never an approval requirement unless it waives it", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const { runs, work } = yield* counter
      // Over 50,000 is denied; over 1,000 needs two finance approvers.
      const huge = payment({ amount: 60_000, currency: "EUR", to: "DE89" })
      const denied = yield* Effect.flip(governance.enforce(huge, work))
      assert(denied._tag === "Denied")
      const options = { authority: cfo, reason: "quarter-end payroll", duration: "1 hour" } as const
      yield* governance.override(denied.record.decisionId, options)
      yield* governance.enforce(huge, work)
      expect(yield* Ref.get(runs)).toHaveLength(1)

      // A different transfer by the same actor in the same scope needs its approval.
      const smaller = payment({ amount: 5_000, currency: "EUR", to: "DE89" })
      const submitted = yield* governance.submit(smaller)
      expect(submitted._tag).toBe("Pending")
      const fiber = yield* Effect.fork(governance.enforce(smaller, work))
      yield* Approvals.settle()
      expect(fiber.unsafePoll()).toBeNull()
      expect(yield* Ref.get(runs)).toHaveLength(1)
      yield* Fiber.interrupt(fiber)

      // Only a grant that says so explicitly waives it.
      const waiver = yield* governance.override(denied.record.decisionId, { ...options, waiveApproval: true })
      expect(waiver.waivesApproval).toBe(true)
      const overridden = yield* governance.submit(smaller)
      expect(overridden._tag === "Overridden" && overridden.override.id).toBe(waiver.id)
      yield* governance.enforce(smaller, work)
      expect(yield* Ref.get(runs)).toHaveLength(2)
    }).pipe(Effect.provide(testLayer(
      Policy.make("payments", (action) =>
        amountOf(action) > 50_000
          ? Decision.deny({ code: "payment.limit", message: "Over the 50,000 limit" })
          : amountOf(action) > 1000
          ? Decision.requireApproval(
            { code: "payment.large", message: "Payments over 1,000 need finance approval" },
            { quorum: 2, roles: ["finance"], timeout: "1 hour" }
          )
          : Decision.allow())
    ))))

  it.effect("a policy set without an override policy cannot be overridden", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const record = yield* governance.evaluate(shell)
      const error = yield* Effect.flip(
        governance.override(record.decisionId, { authority: cfo, reason: "because", duration: "1 hour" })
      )
      expect(error._tag === "OverrideNotAllowed" && error.reason).toBe("no_override_policy")
    }).pipe(Effect.provide(
      Governance.layer({ policySet: PolicySet.unsafeMake({ id: "p", version: "1", policy: paymentsPolicy(1) }) }).pipe(
        Layer.provideMerge(ApprovalStore.layerMemory),
        Layer.provideMerge(AuditSink.layerMemory),
        Layer.provideMerge(Fakes.layer({ identity: { principals } }))
      )
    )))
})

describe("configuration", () => {
  const withConfig = (entries: ReadonlyArray<readonly [string, string]>) =>
    Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries)))

  const noTimeout = Policy.make("p", () =>
    Decision.requireApproval({ code: "needs.approval", message: "needs approval" }, { roles: ["finance"] }))

  const layerFor = (entries: ReadonlyArray<readonly [string, string]>) =>
    Governance.layer({ policySet: PolicySet.unsafeMake({ id: "p", version: "1", policy: noTimeout }) }).pipe(
      Layer.provideMerge(ApprovalStore.layerMemory),
      Layer.provideMerge(AuditSink.layerMemory),
      Layer.provideMerge(Fakes.layer({ identity: { principals } })),
      Layer.provide(withConfig(entries))
    )

  it.effect("governance.approval_timeout_seconds is the default expiry", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const submitted = yield* governance.submit(payment(big))
      assertPending(submitted)
      expect(submitted.expiresAt.getTime()).toBe(90_000)
    }).pipe(Effect.provide(layerFor([["governance.approval_timeout_seconds", "90"]]))))

  it.effect("an invalid value refuses to start", () =>
    Effect.gen(function*() {
      for (
        const entries of [
          [["governance.approval_timeout_seconds", "-5"]],
          [["governance.approval_timeout_seconds", "soon"]],
          [["runtime.approval_sweep_interval_seconds", "0"]]
        ] as const
      ) {
        const exit = yield* Effect.exit(Effect.provide(Governance.Governance, layerFor(entries)))
        expect(Exit.isFailure(exit)).toBe(true)
      }
    }))

  it.effect("the upper-case spelling (an environment variable as people write it) is read and validated too", () =>
    Effect.gen(function*() {
      const env = (vars: Record<string, string>) =>
        Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" }))
      const layerEnv = (vars: Record<string, string>) =>
        Governance.layer({ policySet: PolicySet.unsafeMake({ id: "p", version: "1", policy: noTimeout }) }).pipe(
          Layer.provideMerge(ApprovalStore.layerMemory),
          Layer.provideMerge(AuditSink.layerMemory),
          Layer.provideMerge(Fakes.layer({ identity: { principals } })),
          Layer.provide(env(vars))
        )
      const expiry = (vars: Record<string, string>) =>
        Effect.gen(function*() {
          const submitted = yield* (yield* Governance.Governance).submit(payment(big))
          assertPending(submitted)
          return submitted.expiresAt.getTime()
        }).pipe(Effect.provide(layerEnv(vars)))
      expect(yield* expiry({ GOVERNANCE_APPROVAL_TIMEOUT_SECONDS: "90" })).toBe(90_000)
      expect(yield* expiry({ governance_approval_timeout_seconds: "60" })).toBe(60_000)
      expect(yield* expiry({ governance_approval_timeout_seconds: "60", GOVERNANCE_APPROVAL_TIMEOUT_SECONDS: "60" }))
        .toBe(60_000)
      for (
        const [vars, named] of [
          [{ GOVERNANCE_APPROVAL_TIMEOUT_SECONDS: "abc" }, "APPROVAL_TIMEOUT_SECONDS"],
          [{ GOVERNANCE_APPROVAL_TIMEOUT_SECONDS: "0" }, "APPROVAL_TIMEOUT_SECONDS"],
          [{ GOVERNANCE_APPROVAL_TIMEOUT_SECONDS: "Infinity" }, "APPROVAL_TIMEOUT_SECONDS"],
          [{ RUNTIME_APPROVAL_SWEEP_INTERVAL_SECONDS: "-1" }, "APPROVAL_SWEEP_INTERVAL_SECONDS"],
          [
            { governance_approval_timeout_seconds: "60", GOVERNANCE_APPROVAL_TIMEOUT_SECONDS: "90" },
            "GOVERNANCE_APPROVAL_TIMEOUT_SECONDS"
          ]
        ] as const
      ) {
        const exit = yield* Effect.exit(Effect.provide(Governance.Governance, layerEnv(vars)))
        assert(Exit.isFailure(exit))
        expect(String(Cause.squash(exit.cause))).toContain(named)
      }
    }))

  it.effect("an option in code that is not a positive, finite duration refuses to start with InvalidOption naming it", () =>
    Effect.gen(function*() {
      const layerWith = (options: Partial<Governance.Options<never>>) =>
        Governance.layer({ ...options, policySet: PolicySet.unsafeMake({ id: "p", version: "1", policy: noTimeout }) })
          .pipe(
            Layer.provideMerge(ApprovalStore.layerMemory),
            Layer.provideMerge(AuditSink.layerMemory),
            Layer.provideMerge(Fakes.layer({ identity: { principals } }))
          )
      const cases: ReadonlyArray<readonly [Partial<Governance.Options<never>>, string]> = [
        [{ approvalTimeout: "abc" as Duration.DurationInput }, "approvalTimeout"],
        [{ approvalTimeout: "0 seconds" }, "approvalTimeout"],
        [{ approvalTimeout: "-5 seconds" }, "approvalTimeout"],
        [{ approvalTimeout: Duration.infinity }, "approvalTimeout"],
        [{ sweepInterval: "0 millis" }, "sweepInterval"],
        [{ pollInterval: "soon" as Duration.DurationInput }, "pollInterval"],
        [{ maxTransforms: -1 }, "maxTransforms"],
        [{ maxTransforms: 1.5 }, "maxTransforms"]
      ]
      for (const [options, option] of cases) {
        const error = yield* Effect.flip(Effect.provide(Governance.Governance, layerWith(options)))
        expect(error._tag, option).toBe("InvalidOption")
        expect(error._tag === "InvalidOption" && error.option).toBe(option)
      }
    }))
})

describe("shared stores", () => {
  // A store other processes write to: resolutions written behind this runtime's back reach it by polling.
  const SharedStore = Layer.effect(
    ApprovalStore.ApprovalStore,
    Effect.map(ApprovalStore.makeMemory, (store) => ({ ...store, shared: true }))
  )

  it.effect("a resolution written by another process wakes the parked call on the next poll", () =>
    Effect.gen(function*() {
      const { fiber, request, runs } = yield* parked(payment(big))
      const store = yield* ApprovalStore.ApprovalStore
      // "Another process" votes directly in the store.
      yield* store.vote(request.id, { approver: "alice", verdict: "approve", note: null, at: new Date(0) })
      yield* TestClock.adjust("1 second")
      yield* Approvals.settle()
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(runs)).toHaveLength(1)
    }).pipe(Effect.provide(
      Governance.layer({
        policySet: PolicySet.unsafeMake({ id: "p", version: "1", policy: paymentsPolicy(1) }),
        pollInterval: "2 seconds"
      }).pipe(
        Layer.provideMerge(SharedStore),
        Layer.provideMerge(AuditSink.layerMemory),
        Layer.provideMerge(Fakes.layer({ identity: { principals } }))
      )
    )))
})
