import {
  Action,
  ApprovalStore,
  type Audit,
  AuditSink,
  ContinuationStore,
  Decision,
  Durable,
  Encryption,
  Governance,
  Identity,
  Policy,
  PolicySet
} from "@gavel/core"
import { Approvals, Fixtures } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"

/** Payments over 1,000 need one finance approval; payees in `blocked` are denied. */
const limit = 1_000
const blocked = new Set(["blocked"])
const policySet = PolicySet.unsafeMake({
  id: "payments",
  version: "1",
  policy: Policy.make("payments", (action) => {
    const payload = action.payload as { readonly to?: string; readonly amount?: number }
    if (blocked.has(payload.to ?? "")) return Decision.deny({ code: "payee.blocked", message: "blocked payee" })
    return (payload.amount ?? 0) > limit
      ? Decision.requireApproval({ code: "payment.large", message: "large" }, { roles: ["finance"], timeout: "1 hour" })
      : Decision.allow()
  })
})

const agent: Action.Principal = { id: "agent-7", kind: "agent", roles: [], tenant: "acme", attributes: {} }
const bob: Action.Principal = { id: "bob", kind: "human", roles: ["finance"], tenant: "acme", attributes: {} }

const IdentityLive = Identity.layerDirectory([
  { id: "agent-7", roles: [], tenant: "acme", status: "active" },
  { id: "bob", roles: ["finance"], tenant: "acme", status: "active" }
])

const Input = Schema.Struct({ to: Schema.String, amount: Schema.Number, memo: Schema.String })

class Declined extends Schema.TaggedError<Declined>()("Declined", { reason: Schema.String }) {}

/** What the handlers did, in order. */
const ran: Array<string> = []

const send = Durable.handler({
  name: "payments.send",
  input: Input,
  success: Schema.Struct({ receipt: Schema.String }),
  failure: Declined,
  run: (_action, input, attempt) =>
    input.to === "declines"
      ? Effect.fail(new Declined({ reason: "insufficient funds" }))
      : Effect.sync(() => {
        ran.push(`${input.to}#${attempt.attempt}`)
        return { receipt: `r-${input.to}-${attempt.attempt}` }
      })
})

/** Released by a test: work that hangs until then (its first attempt, for `stuckAgain`). */
let gate: Deferred.Deferred<void> | undefined

const stuck = Durable.handler({
  name: "payments.stuck",
  input: Input,
  success: Schema.Struct({ receipt: Schema.String }),
  lease: "1 minute",
  run: (_action, input, attempt) =>
    Effect.zipRight(
      gate === undefined ? Effect.void : Deferred.await(gate),
      Effect.sync(() => {
        ran.push(`${input.to}#${attempt.attempt}`)
        return { receipt: `r-${input.to}` }
      })
    )
})

const stuckAgain = Durable.handler({
  name: "payments.stuck-again",
  input: Input,
  success: Schema.Struct({ receipt: Schema.String }),
  delivery: "atLeastOnce",
  maxAttempts: 2,
  lease: "1 minute",
  run: (_action, input, attempt) =>
    Effect.zipRight(
      attempt.attempt === 1 && gate !== undefined ? Deferred.await(gate) : Effect.void,
      Effect.sync(() => {
        ran.push(`${input.to}#${attempt.attempt}/${attempt.fence}`)
        return { receipt: `r-${input.to}-${attempt.idempotencyKey}` }
      })
    )
})

const unregistered = Durable.handler({
  name: "payments.unknown",
  input: Input,
  success: Schema.Unknown,
  run: () => Effect.void
})

const Stores = Layer.mergeAll(ContinuationStore.layerMemory, AuditSink.layerMemory).pipe(
  Layer.provideMerge(ApprovalStore.layerMemory)
)

const DurableLive = Durable.layer({ handlers: [send, stuck, stuckAgain], pollInterval: "30 seconds" }).pipe(
  Layer.provideMerge(Governance.layer({ policySet, sweepInterval: "1 hour", auditRetryInterval: "10 minutes" })),
  Layer.provideMerge(Stores),
  Layer.provide(IdentityLive),
  Layer.provide(Encryption.layer(Fixtures.encryption))
)

const payment = (to: string, amount: number, memo = "invoice 42") =>
  Action.make({ actor: agent, kind: "tool", name: "payments.send", payload: { to, amount, memo } })

/**
 * The outcome once `done` says so (by default: no longer waiting or
 * running). The worker runs in the background, and its pass opens the
 * sealed data with WebCrypto, which answers from the thread pool: this
 * yields to the event loop until then.
 */
const reached = (
  approvalId: string,
  done: (outcome: Durable.Outcome) => boolean = (o) => o._tag !== "Waiting" && o._tag !== "Running"
) =>
  Effect.gen(function*() {
    const durable = yield* Durable.Durable
    for (let i = 0; i < 5_000; i++) {
      const outcome = yield* durable.outcome(approvalId)
      if (done(outcome)) return outcome
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    return yield* durable.outcome(approvalId)
  })

const settled = (approvalId: string) => reached(approvalId)

const trail = Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read())
const types = (events: ReadonlyArray<Audit.AuditEvent>, approvalId: string) =>
  events.filter((e) => e.approvalId === approvalId).map((e) => e.type)

describe("Durable", () => {
  it.effect("an allowed action runs its handler at once; the result is encoded", () =>
    Effect.gen(function*() {
      ran.length = 0
      const durable = yield* Durable.Durable
      const submission = yield* durable.submit(payment("alice", 10), send, { to: "alice", amount: 10, memo: "m" })
      expect(submission._tag).toBe("Completed")
      if (submission._tag !== "Completed") return
      expect(submission.outcome).toEqual({ _tag: "Succeeded", approvalId: null, result: { receipt: "r-alice-1" } })
      expect(ran).toEqual(["alice#1"])
    }).pipe(Effect.provide(DurableLive)))

  it.effect("a denied action is Blocked and never runs", () =>
    Effect.gen(function*() {
      ran.length = 0
      const durable = yield* Durable.Durable
      const submission = yield* durable.submit(payment("blocked", 10), send, { to: "blocked", amount: 10, memo: "m" })
      expect(submission._tag).toBe("Blocked")
      expect(ran).toEqual([])
    }).pipe(Effect.provide(DurableLive)))

  it.effect("work waiting for approval is persisted, sealed, and runs once approved — once", () =>
    Effect.gen(function*() {
      ran.length = 0
      const durable = yield* Durable.Durable
      const governance = yield* Governance.Governance
      const continuations = yield* ContinuationStore.ContinuationStore
      const submission = yield* durable.submit(
        payment("carol", 5_000, "canary-7f3a"),
        send,
        { to: "carol", amount: 5_000, memo: "canary-7f3a" },
        { idempotencyKey: "invoice-42" }
      )
      if (submission._tag !== "Pending") return expect.fail(`expected Pending, got ${submission._tag}`)
      const id = submission.approvalId
      expect(yield* durable.outcome(id)).toEqual({ _tag: "Waiting", approvalId: id })
      const stored = yield* continuations.get(id)
      expect(stored.sealed).toMatch(/^gavel\.v1\.test\./)
      expect(stored.sealed).not.toContain("canary-7f3a")
      expect(stored.sealed).not.toContain("carol")
      expect(ran).toEqual([])

      yield* governance.approve(id, bob)
      expect(yield* settled(id)).toEqual({ _tag: "Succeeded", approvalId: id, result: { receipt: "r-carol-1" } })
      expect(ran).toEqual(["carol#1"])
      expect((yield* continuations.get(id)).sealed).toBeNull()
      expect(types(yield* trail, id)).toEqual([
        "approval.requested",
        "approval.voted",
        "approval.resolved",
        "approval.consumed",
        "execution.started",
        "execution.succeeded"
      ])
      // Nothing runs twice, whatever claims again.
      yield* TestClock.adjust("10 minutes")
      expect(yield* durable.runOnce).toBe(0)
      expect(ran).toEqual(["carol#1"])
    }).pipe(Effect.provide(DurableLive)))

  it.effect("a retried submission with the same key opens no second approval", () =>
    Effect.gen(function*() {
      const durable = yield* Durable.Durable
      const store = yield* ApprovalStore.ApprovalStore
      const input = { to: "dave", amount: 5_000, memo: "m" }
      const first = yield* durable.submit(payment("dave", 5_000), send, input, { idempotencyKey: "k-1" })
      const again = yield* durable.submit(payment("dave", 5_000), send, input, { idempotencyKey: "k-1" })
      if (first._tag !== "Pending") return expect.fail(`expected Pending, got ${first._tag}`)
      expect(again).toEqual({
        _tag: "Existing",
        approvalId: first.approvalId,
        outcome: { _tag: "Waiting", approvalId: first.approvalId }
      })
      expect((yield* store.listPending()).length).toBe(1)
    }).pipe(Effect.provide(DurableLive)))

  it.effect("rejected or expired work never runs, and its sealed data is erased with the step", () =>
    Effect.gen(function*() {
      ran.length = 0
      const durable = yield* Durable.Durable
      const governance = yield* Governance.Governance
      const continuations = yield* ContinuationStore.ContinuationStore
      const input = { to: "erin", amount: 5_000, memo: "m" }
      const rejected = yield* durable.submit(payment("erin", 5_000), send, input)
      const expiring = yield* durable.submit(payment("erin", 6_000), send, { ...input, amount: 6_000 })
      if (rejected._tag !== "Pending" || expiring._tag !== "Pending") return expect.fail("expected Pending")
      yield* governance.reject(rejected.approvalId, bob)
      yield* TestClock.adjust("2 hours")
      yield* governance.expireDue
      expect(yield* settled(rejected.approvalId)).toEqual({ _tag: "Rejected", approvalId: rejected.approvalId })
      expect(yield* settled(expiring.approvalId)).toEqual({ _tag: "Expired", approvalId: expiring.approvalId })
      expect((yield* continuations.get(rejected.approvalId)).sealed).toBeNull()
      expect((yield* continuations.get(expiring.approvalId)).sealed).toBeNull()
      expect(yield* durable.runOnce).toBe(0)
      expect(ran).toEqual([])
    }).pipe(Effect.provide(DurableLive)))

  it.effect("a typed failure is kept by its tag, never its message", () =>
    Effect.gen(function*() {
      const durable = yield* Durable.Durable
      const governance = yield* Governance.Governance
      const submission = yield* durable.submit(payment("declines", 5_000), send, {
        to: "declines",
        amount: 5_000,
        memo: "m"
      })
      if (submission._tag !== "Pending") return expect.fail(`expected Pending, got ${submission._tag}`)
      yield* governance.approve(submission.approvalId, bob)
      expect(yield* settled(submission.approvalId)).toEqual({
        _tag: "Failed",
        approvalId: submission.approvalId,
        error: "Declined"
      })
    }).pipe(Effect.provide(DurableLive)))

  it.effect("revalidation: work the policies no longer allow is not run, and its approval not consumed", () =>
    Effect.gen(function*() {
      ran.length = 0
      const durable = yield* Durable.Durable
      const governance = yield* Governance.Governance
      const store = yield* ApprovalStore.ApprovalStore
      const input = { to: "mallory", amount: 5_000, memo: "m" }
      const submission = yield* durable.submit(payment("mallory", 5_000), send, input)
      if (submission._tag !== "Pending") return expect.fail(`expected Pending, got ${submission._tag}`)
      // The payee is blocked after the request, before the approval.
      blocked.add("mallory")
      yield* governance.approve(submission.approvalId, bob)
      expect(yield* settled(submission.approvalId)).toEqual({
        _tag: "Failed",
        approvalId: submission.approvalId,
        error: "revalidation_failed"
      })
      expect(ran).toEqual([])
      expect((yield* store.get(submission.approvalId)).consumedAt).toBeNull()
    }).pipe(Effect.provide(DurableLive)))

  it.effect("at most once: a claim that lapses after the start leaves the work in doubt, audited, never run again; the late completion is refused; an operator resolves it", () =>
    Effect.gen(function*() {
      ran.length = 0
      gate = yield* Deferred.make<void>()
      const durable = yield* Durable.Durable
      const governance = yield* Governance.Governance
      const submission = yield* durable.submit(payment("frank", 5_000), stuck, { to: "frank", amount: 5_000, memo: "m" })
      if (submission._tag !== "Pending") return expect.fail(`expected Pending, got ${submission._tag}`)
      const id = submission.approvalId
      yield* governance.approve(id, bob)
      expect(yield* reached(id, (o) => o._tag === "Running")).toEqual({ _tag: "Running", approvalId: id, attempts: 1 })
      // The work outlives its claim (its worker hangs, or died): the next pass finds the claim lapsed.
      yield* TestClock.adjust("90 seconds")
      expect(yield* settled(id)).toEqual({ _tag: "InDoubt", approvalId: id, reason: "lease_expired" })
      expect(types(yield* trail, id).filter((t) => t.startsWith("execution."))).toEqual([
        "execution.started",
        "execution.in_doubt"
      ])
      // The hung run ends at last: its completion is refused (its fence is stale).
      yield* Deferred.succeed(gate, undefined)
      yield* Approvals.settle()
      expect(yield* durable.outcome(id)).toEqual({ _tag: "InDoubt", approvalId: id, reason: "lease_expired" })
      yield* TestClock.adjust("10 minutes")
      expect(ran).toEqual(["frank#1"])
      const resolved = yield* durable.resolveInDoubt(id, { state: "succeeded", by: bob, note: "receipt found" })
      expect(resolved).toEqual({ _tag: "Succeeded", approvalId: id, result: null })
      const resolution = (yield* trail).find((e) => e.type === "execution.resolved")
      expect(resolution).toMatchObject({ approvalId: id, actor: "bob", data: { state: "succeeded", note: "receipt found" } })
    }).pipe(Effect.provide(DurableLive)))

  it.effect("at least once: a claim that lapses after the start is run again under a new fence, with the same key", () =>
    Effect.gen(function*() {
      ran.length = 0
      gate = yield* Deferred.make<void>()
      const durable = yield* Durable.Durable
      const governance = yield* Governance.Governance
      const submission = yield* durable.submit(
        payment("grace", 5_000),
        stuckAgain,
        { to: "grace", amount: 5_000, memo: "m" },
        { idempotencyKey: "pay-grace" }
      )
      if (submission._tag !== "Pending") return expect.fail(`expected Pending, got ${submission._tag}`)
      const id = submission.approvalId
      yield* governance.approve(id, bob)
      yield* reached(id, (o) => o._tag === "Running")
      yield* TestClock.adjust("90 seconds")
      expect(yield* settled(id)).toEqual({ _tag: "Succeeded", approvalId: id, result: { receipt: "r-grace-pay-grace" } })
      expect(ran).toEqual(["grace#2/2"])
      yield* Deferred.succeed(gate, undefined)
      yield* Approvals.settle()
      expect((yield* durable.outcome(id))._tag).toBe("Succeeded")
      expect(ran).toEqual(["grace#2/2", "grace#1/1"])
    }).pipe(Effect.provide(DurableLive)))

  it.effect("submitting to a handler the worker does not run is refused before anything is written", () =>
    Effect.gen(function*() {
      const durable = yield* Durable.Durable
      const store = yield* ApprovalStore.ApprovalStore
      const error = yield* Effect.flip(
        durable.submit(payment("gina", 5_000), unregistered, { to: "gina", amount: 5_000, memo: "m" })
      )
      expect(error).toMatchObject({ _tag: "InvalidSubmission", reason: "unregistered_handler" })
      expect(yield* store.listPending()).toEqual([])
    }).pipe(Effect.provide(DurableLive)))
})
