import {
  Action,
  Approval,
  ApprovalStore,
  Audit,
  AuditSink,
  Decision,
  DecisionRecord,
  Governance,
  IdGenerator,
  Metrics,
  Policy,
  PolicySet
} from "@gavel/core"
import { Approvals, Fakes } from "@gavel/testing"
import { assert, describe, expect, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import { encodeApproval, encodeRecord } from "../src/internal/auditEntries.js"

// -----------------------------------------------------------------------------
// verify
// -----------------------------------------------------------------------------

const entryArb: FastCheck.Arbitrary<Audit.Entry> = FastCheck.record({
  type: FastCheck.constantFrom(...Audit.EventType.literals),
  at: FastCheck.integer({ min: 0, max: 2_000_000_000_000 }).map((ms) => new Date(ms)),
  decisionId: FastCheck.option(FastCheck.string(), { nil: null }),
  approvalId: FastCheck.option(FastCheck.string(), { nil: null }),
  requestId: FastCheck.option(FastCheck.string(), { nil: null }),
  correlationId: FastCheck.option(FastCheck.string(), { nil: null }),
  actor: FastCheck.option(FastCheck.string(), { nil: null }),
  trace: FastCheck.option(FastCheck.record({ traceId: FastCheck.string(), spanId: FastCheck.string() }), {
    nil: null
  }),
  data: FastCheck.dictionary(FastCheck.string(), FastCheck.jsonValue())
})

const trailArb = FastCheck.array(entryArb, { minLength: 2, maxLength: 25 }).map((entries) => {
  const events: Array<Audit.AuditEvent> = []
  for (const entry of entries) {
    const last = events[events.length - 1]
    events.push(Audit.seal(entry, last === undefined ? null : { sequence: last.sequence, hash: last.hash }))
  }
  return events
})

/** A trail and a position in it. */
const trailAndIndex = trailArb.chain((events) =>
  FastCheck.integer({ min: 0, max: events.length - 1 }).map((i) => ({ events, i }))
)

const headOf = (events: ReadonlyArray<Audit.AuditEvent>): Audit.Anchor => {
  const last = events[events.length - 1]!
  return { sequence: last.sequence, hash: last.hash }
}

describe("Audit.verify", () => {
  it("an untouched trail is intact, through JSON and back", () =>
    FastCheck.assert(FastCheck.property(trailArb, (events) => {
      const decoded = events.map((e) =>
        Schema.decodeUnknownSync(Audit.AuditEvent)(JSON.parse(JSON.stringify(Audit.encode(e))))
      )
      const result = Audit.verify(decoded, { anchor: headOf(events) })
      expect(result).toEqual({ _tag: "Intact", count: events.length, head: headOf(events) })
    })))

  it("a member named __proto__ survives the round trip (the hash still matches)", () => {
    const data = JSON.parse("{\"__proto__\":{\"admin\":true},\"n\":1}") as Record<string, unknown>
    const event = Audit.seal({ ...FastCheck.sample(entryArb, { numRuns: 1, seed: 1 })[0]!, data }, null)
    const decoded = Schema.decodeUnknownSync(Audit.AuditEvent)(JSON.parse(JSON.stringify(Audit.encode(event))))
    expect(Audit.verify([decoded])._tag).toBe("Intact")
  })

  it("an edited event is named, whether or not its hash was recomputed", () =>
    FastCheck.assert(FastCheck.property(trailAndIndex, FastCheck.boolean(), ({ events, i }, rehash) => {
      const target = events[i]!
      const edited = { ...target, actor: `${target.actor ?? ""}!` }
      const tampered = events.slice()
      tampered[i] = rehash ? { ...edited, hash: Audit.hashOf(edited) } : edited
      const result = Audit.verify(tampered, { anchor: headOf(events) })
      expect(result).toMatchObject({ _tag: "Broken", sequence: target.sequence, problem: "edited" })
    })))

  it("a deleted event is missing; a deleted tail is truncated against the anchor", () =>
    FastCheck.assert(FastCheck.property(trailAndIndex, ({ events, i }) => {
      const tampered = events.filter((_, j) => j !== i)
      const result = Audit.verify(tampered, { anchor: headOf(events) })
      if (i === events.length - 1) {
        expect(result).toMatchObject({ _tag: "Broken", sequence: events.length, problem: "truncated" })
        // Without an anchor, a trail cut at the end is indistinguishable from a shorter one.
        expect(Audit.verify(tampered)._tag).toBe("Intact")
      } else {
        expect(result).toMatchObject({ _tag: "Broken", sequence: i + 1, problem: "missing" })
      }
    })))

  it("swapped or repeated events are reordered", () =>
    FastCheck.assert(FastCheck.property(trailAndIndex, ({ events, i }) => {
      if (i === events.length - 1) return
      const swapped = events.slice()
      swapped[i] = events[i + 1]!
      swapped[i + 1] = events[i]!
      expect(Audit.verify(swapped)).toMatchObject({ _tag: "Broken", sequence: i + 1, problem: "reordered" })
      const repeated = [...events.slice(0, i + 1), events[i]!, ...events.slice(i + 1)]
      expect(Audit.verify(repeated)).toMatchObject({ _tag: "Broken", sequence: i + 1, problem: "reordered" })
    })))

  it("a trail rewritten from some event on (every later hash recomputed) breaks at the anchor", () => {
    const events = FastCheck.sample(trailArb, { numRuns: 1, seed: 42 })[0]!
    const rewritten: Array<Audit.AuditEvent> = [events[0]!]
    for (const event of events.slice(1)) {
      const previous = rewritten[rewritten.length - 1]!
      rewritten.push(Audit.seal({ ...event, actor: "forged" }, { sequence: previous.sequence, hash: previous.hash }))
    }
    expect(Audit.verify(rewritten)._tag).toBe("Intact")
    expect(Audit.verify(rewritten, { anchor: headOf(events) })).toMatchObject({
      _tag: "Broken",
      sequence: events.length,
      problem: "edited"
    })
  })
})

// -----------------------------------------------------------------------------
// the runtime writes every step
// -----------------------------------------------------------------------------

const finance = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })
const alice = finance("alice")
const bob = finance("bob")
const cfo = finance("cfo")

const action = (amount: number, extra: Partial<Action.Input> = {}) =>
  Action.make({
    actor: { id: "agent-7", kind: "agent", tenant: "acme" },
    kind: "tool",
    name: "payments.transfer",
    payload: { amount },
    requestId: "req-1",
    ...extra
  })

const policy = Policy.make("payments", (a) => {
  if (a.name === "shell.exec") return Decision.deny({ code: "tool.blocked", message: "no shell" })
  const amount = (a.payload as { amount: number }).amount
  return amount > 1000
    ? Decision.requireApproval({ code: "payment.large", message: "two approvers" }, {
      quorum: 2,
      roles: ["finance"],
      timeout: "1 hour"
    })
    : Decision.allow()
})

const layerWith = <R>(
  p: Policy.Policy<never, R>,
  options: Omit<Governance.Options<R>, "policySet"> = {},
  sink: Layer.Layer<AuditSink.AuditSink> = AuditSink.layerMemory
) =>
  Governance.layer({
    sweepInterval: "1 minute",
    ...options,
    policySet: PolicySet.unsafeMake({
      id: "payments",
      version: "1",
      policy: p,
      overridePolicy: { authority: { roles: ["cfo"], principals: [] } }
    })
  }).pipe(
    Layer.provideMerge(ApprovalStore.layerMemory),
    Layer.provideMerge(sink),
    Layer.provideMerge(IdGenerator.layerSequential),
    Layer.provideMerge(Fakes.layer({
      identity: { principals: { alice: { roles: ["finance"] }, bob: { roles: ["finance"] }, cfo: { roles: ["cfo"] } } }
    }))
  )

const TestLive = layerWith(policy)

/** The trail so far: its event types, and the check that it verifies. */
const trail = Effect.gen(function*() {
  const events = yield* Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read())
  expect(Audit.verify(events)._tag).toBe("Intact")
  return events
})

const types = Effect.map(trail, (events) => events.map((e) => e.type))

class Boom extends Schema.TaggedError<Boom>()("Boom", { secret: Schema.String }) {}

describe("Governance audit trail", () => {
  it.effect("an allowed action: evaluated, started, succeeded", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      yield* governance.enforce(action(10), () => Effect.void)
      const events = yield* trail
      expect(events.map((e) => e.type)).toEqual(["decision.evaluated", "execution.started", "execution.succeeded"])
      const record = events[0]!.data["record"] as { decisionId: string; decision: { _tag: string } }
      expect(record.decision._tag).toBe("Allow")
      expect(events.every((e) => e.decisionId === record.decisionId && e.requestId === "req-1")).toBe(true)
    }).pipe(Effect.provide(TestLive)))

  it.effect("a denied action leaves only its decision; the work never starts", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      yield* Effect.flip(governance.enforce(action(10, { name: "shell.exec" }), () => Effect.void))
      expect(yield* types).toEqual(["decision.evaluated"])
    }).pipe(Effect.provide(TestLive)))

  it.effect("a failing work: execution.failed with the error's tag, never its message", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      yield* Effect.flip(governance.enforce(action(10), () => new Boom({ secret: "do-not-log" })))
      const events = yield* trail
      expect(events.map((e) => e.type)).toEqual(["decision.evaluated", "execution.started", "execution.failed"])
      expect(events[2]!.data).toEqual({ failure: "failure", tag: "Boom" })
      expect(JSON.stringify(events)).not.toContain("do-not-log")
    }).pipe(Effect.provide(TestLive)))

  it.effect("an approval: requested, two votes, resolved, re-evaluated, consumed, then the work", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const ran = yield* Ref.make(0)
      const fiber = yield* Effect.fork(governance.enforce(action(5000), () => Ref.update(ran, (n) => n + 1)))
      const pending = yield* Approvals.awaitPending()
      yield* governance.approve(pending.id, alice)
      yield* governance.approve(pending.id, bob)
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(ran)).toBe(1)
      const events = yield* trail
      expect(events.map((e) => e.type)).toEqual([
        "decision.evaluated",
        "approval.requested",
        "approval.voted",
        "approval.voted",
        "approval.resolved",
        "decision.evaluated",
        "approval.consumed",
        "execution.started",
        "execution.succeeded"
      ])
      expect(events.slice(2, 5).map((e) => e.actor)).toEqual(["alice", "bob", "bob"])
      expect(events.slice(1).every((e) => e.approvalId === pending.id || e.type === "decision.evaluated")).toBe(true)
      const resolved = Schema.decodeUnknownSync(Approval.ApprovalRequest)(events[4]!.data["approval"])
      expect(resolved.status).toBe("approved")
      expect(resolved.votes.map((v) => v.approver)).toEqual(["alice", "bob"])
    }).pipe(Effect.provide(TestLive)))

  it.effect("expiry, cancellation and rejection are written, and the pending gauge follows them", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const pending = Effect.map(Metric.value(Metrics.approvalsPending), (state) => state.value)
      const before = yield* pending
      // expiry
      const expiring = yield* Effect.fork(Effect.exit(governance.enforce(action(5000), () => Effect.void)))
      const first = yield* Approvals.awaitPending()
      expect(yield* pending).toBe(before + 1)
      yield* Approvals.advanceToExpiry(first.id)
      expect(yield* pending).toBe(before)
      yield* Fiber.join(expiring)
      // interrupted caller
      const abandoned = yield* Effect.fork(governance.enforce(action(6000), () => Effect.void))
      yield* Approvals.awaitPending()
      yield* Fiber.interrupt(abandoned)
      // rejection
      const rejected = yield* Effect.fork(Effect.exit(governance.enforce(action(7000), () => Effect.void)))
      const third = yield* Approvals.awaitPending()
      expect(yield* pending).toBe(before + 1)
      yield* governance.reject(third.id, alice, "no")
      yield* Fiber.join(rejected)
      expect(yield* pending).toBe(before)
      const kinds = (yield* types).filter((t) => t.startsWith("approval."))
      expect(kinds).toEqual([
        "approval.requested",
        "approval.expired",
        "approval.requested",
        "approval.cancelled",
        "approval.requested",
        "approval.voted",
        "approval.resolved"
      ])
    }).pipe(Effect.provide(TestLive)))

  it.effect("an override is written, and the execution it allows names it", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const denied = yield* Effect.flip(governance.enforce(action(10, { name: "shell.exec" }), () => Effect.void))
      assert(denied._tag === "Denied")
      const granted = yield* governance.override(denied.record.decisionId, {
        authority: cfo,
        reason: "incident 42",
        duration: "1 hour"
      })
      yield* governance.enforce(action(10, { name: "shell.exec" }), () => Effect.void)
      const events = yield* trail
      expect(events.map((e) => e.type)).toEqual([
        "decision.evaluated",
        "override.granted",
        "decision.evaluated",
        "execution.started",
        "execution.succeeded"
      ])
      expect(events[1]!.actor).toBe("cfo")
      expect(events[3]!.data).toEqual({ overrideId: granted.id })
    }).pipe(Effect.provide(TestLive)))

  it.effect("submit then run writes what enforce writes, for every kind of submission", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const ran: Array<number> = []
      const work = (a: Action.Action) => Effect.sync(() => ran.push((a.payload as { amount: number }).amount))
      // allowed
      yield* governance.run(yield* governance.submit(action(10)), work)
      // denied: the work never starts
      const deniedSubmission = yield* governance.submit(action(20, { name: "shell.exec" }))
      const denied = yield* Effect.flip(governance.run(deniedSubmission, work))
      expect(denied._tag).toBe("Denied")
      // overridden
      yield* governance.override(deniedSubmission.record.decisionId, { authority: cfo, reason: "x", duration: "1 hour" })
      const overridden = yield* governance.submit(action(20, { name: "shell.exec" }))
      expect(overridden._tag).toBe("Overridden")
      yield* governance.run(overridden, work)
      // pending: run resumes once approved
      const pending = yield* governance.submit(action(5000))
      assert(pending._tag === "Pending")
      const parked = yield* Effect.fork(governance.run(pending, work))
      yield* governance.approve(pending.approvalId, alice)
      yield* governance.approve(pending.approvalId, bob)
      yield* Fiber.join(parked)
      expect(ran).toEqual([10, 20, 5000])
      const events = yield* trail
      expect(events.filter((e) => e.type.startsWith("execution.")).map((e) => [e.type, e.data])).toEqual([
        ["execution.started", {}],
        ["execution.succeeded", {}],
        ["execution.started", { overrideId: (overridden as { override: { id: string } }).override.id }],
        ["execution.succeeded", {}],
        ["execution.started", {}],
        ["execution.succeeded", {}]
      ])
      expect(events.filter((e) => e.type === "execution.started").map((e) => e.approvalId)).toEqual([
        null,
        null,
        pending.approvalId
      ])
    }).pipe(Effect.provide(TestLive)))

  it.effect("cancel withdraws a pending approval: written with its actor, parked callers fail, once only", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const pending = yield* governance.submit(action(5000))
      assert(pending._tag === "Pending")
      const parked = yield* Effect.fork(Effect.flip(governance.run(pending, () => Effect.void)))
      yield* Effect.yieldNow()
      const cancelled = yield* governance.cancel(pending.approvalId, alice)
      expect(cancelled.status).toBe("cancelled")
      expect((yield* Fiber.join(parked))._tag).toBe("AlreadyResolved")
      const again = yield* Effect.flip(governance.cancel(pending.approvalId))
      expect(again._tag).toBe("AlreadyResolved")
      const missing = yield* Effect.flip(governance.cancel("apr_missing"))
      expect(missing._tag).toBe("ApprovalNotFound")
      const events = yield* trail
      const written = events.filter((e) => e.type === "approval.cancelled")
      expect(written.map((e) => [e.approvalId, e.actor])).toEqual([[pending.approvalId, "alice"]])
    }).pipe(Effect.provide(TestLive)))

  it.effect("a caller giving up during evaluation leaves evaluation.cancelled and no decision", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const fiber = yield* Effect.fork(governance.evaluate(action(10)))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      const events = yield* trail
      expect(events.map((e) => e.type)).toEqual(["evaluation.cancelled"])
      expect(events[0]!.data).toEqual({ kind: "tool", name: "payments.transfer" })
    }).pipe(Effect.provide(layerWith(
      Policy.effect("slow", () => Effect.as(Effect.never, Decision.allow())).pipe(Policy.failClosed)
    ))))

  it.effect("when the trail cannot be written, nothing runs (fail closed)", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const ran = yield* Ref.make(false)
      const error = yield* Effect.flip(governance.enforce(action(10), () => Ref.set(ran, true)))
      expect(error._tag).toBe("StoreError")
      expect(yield* Ref.get(ran)).toBe(false)
    }).pipe(Effect.provide(layerWith(
      policy,
      {},
      Layer.succeed(
        AuditSink.AuditSink,
        AuditSink.AuditSink.of({
          append: () => Effect.fail(new Approval.StoreError({ operation: "append audit event", detail: "disk full" })),
          read: () => Effect.succeed([]),
          head: Effect.die("unused")
        })
      )
    ))))
})

describe("audit entries encoding", () => {
  // The audit trail's `data` is built by compiled encoders: they must agree
  // with `Schema.encodeSync` on every value, and refuse what it refuses.
  const agree = <A, I>(schema: Schema.Schema<A, I>, fast: (a: A) => unknown) =>
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(schema), (value) => {
        assert.deepStrictEqual(fast(value), Schema.encodeSync(schema)(value))
      }),
      { numRuns: 300 }
    )

  it("encodes decision records as Schema does", () => agree(DecisionRecord.DecisionRecord, encodeRecord))
  it("encodes approval requests as Schema does", () => agree(Approval.ApprovalRequest, encodeApproval))

  it("drops members the schema does not declare, and refuses what Schema refuses", () => {
    const value = FastCheck.sample(Arbitrary.make(Approval.ApprovalRequest), { numRuns: 1, seed: 7 })[0]!
    const extra = { ...value, secret: "s3cr3t", summary: { ...value.summary, extra: 1 } }
    assert.deepStrictEqual(encodeApproval(extra), Schema.encodeSync(Approval.ApprovalRequest)(extra))
    assert.notProperty(encodeApproval(extra), "secret")
    const invalid = [
      { ...value, createdAt: new Date(NaN) },
      { ...value, requirement: { ...value.requirement, quorum: 0 } },
      { ...value, status: "unknown" },
      { ...value, reasons: [{ code: " ", message: "m", outcome: "Deny" }] }
    ]
    for (const bad of invalid) {
      expect(() => encodeApproval(bad as Approval.ApprovalRequest)).toThrow()
    }
  })
})
