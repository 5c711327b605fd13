/**
 * A step of an approval's life with the audit trail outside the approval
 * store (the memory store with any sink, `AuditFile` beside the SQLite
 * store, a sink of its own beside Postgres): the committed transition is the
 * truth. For each step — request, vote, resolution, consume, cancel,
 * expiry, override — the sink refuses that step's event: the answer is the
 * step's own (never an error for a step that happened), the store holds the
 * transition, parked work is woken from it and runs once, the event waits
 * in the audit outbox (counted, logged), and once the sink takes events
 * again it reaches the trail once — also when the sink wrote it but
 * answered an error (an acknowledgment lost), and across a restart.
 * Postgres needs GAVEL_TEST_DATABASE_URL (see fixtures/postgres.ts);
 * skipped without it.
 */
import * as AuditFile from "@gavel/adapters/AuditFile"
import * as Postgres from "@gavel/adapters/Postgres"
import * as Sqlite from "@gavel/adapters/Sqlite"
import {
  Approval,
  ApprovalStore,
  Audit,
  AuditOutbox,
  AuditSink,
  Governance,
  Metrics
} from "@gavel/core"
import { Approvals } from "@gavel/testing"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as path from "node:path"
import { databaseUrl, dropSchemaNow, freshSchema } from "./fixtures/postgres.js"
import { tempDir } from "./fixtures/sqlite.js"
import { IdentityLive, policySet, principal, shell, transfer } from "./fixtures/steps.js"


/**
 * A sink in front of `inner` that refuses the events of the types in
 * `refused`, before writing them or, for `lost`, after (the write done, its
 * acknowledgment lost).
 */
const faulty = (inner: AuditSink.Service) => {
  const refused = new Set<Audit.EventType>()
  const lost = new Set<Audit.EventType>()
  const sink: AuditSink.Service = {
    append: (entry) =>
      refused.has(entry.type)
        ? Effect.fail(new Approval.StoreError({ operation: "append", detail: "the disk is full" }))
        : lost.has(entry.type)
        ? Effect.zipRight(
          inner.append(entry),
          Effect.fail(new Approval.StoreError({ operation: "append", detail: "the connection dropped" }))
        )
        : inner.append(entry),
    read: inner.read,
    head: inner.head
  }
  return { sink, refused, lost }
}

type Faulty = ReturnType<typeof faulty>

const runtime = <A extends ApprovalStore.ApprovalStore | AuditSink.AuditSink, E, R>(stores: Layer.Layer<A, E, R>) =>
  Governance.layer({ policySet, sweepInterval: "1 hour", pollInterval: "1 hour", auditRetryInterval: "5 seconds" })
    .pipe(
      Layer.provideMerge(stores),
      Layer.provide(IdentityLive)
    )

/** The store, and a faulty sink over `inner`, as the runtime's. */
const withFaultySink = <A extends ApprovalStore.ApprovalStore, E, R, R2>(
  store: Layer.Layer<A, E, R>,
  inner: Effect.Effect<AuditSink.Service, unknown, R2>
) =>
  Effect.gen(function*() {
    const sink = faulty(yield* inner)
    const layer = runtime(Layer.merge(store, Layer.succeed(AuditSink.AuditSink, sink.sink)))
    return { sink, layer }
  })

const count = (events: ReadonlyArray<Audit.AuditEvent>, type: Audit.EventType) =>
  events.filter((e) => e.type === type).length

/** Every step with its event refused, then taken once the sink heals. */
const scenario = (faults: Faulty, flush: "clock" | "step") =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const store = yield* ApprovalStore.ApprovalStore
    const sink = yield* AuditSink.AuditSink
    const outbox = yield* Effect.serviceOption(AuditOutbox.AuditOutbox)
    /** The trail, verified intact, each event id once. */
    const trail = Effect.map(sink.read(), (events) => {
      expect(Audit.verify(events)._tag).toBe("Intact")
      const ids = events.flatMap((e) => (e.eventId === undefined ? [] : [e.eventId]))
      expect(new Set(ids).size).toBe(ids.length)
      return events
    })
    const has = (type: Audit.EventType) => Effect.map(trail, (events) => count(events, type))
    /** Runs the step with `type` refused: it succeeds, its event is not in the trail; then heals. */
    const refusing = <A, E, R>(type: Audit.EventType, step: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const before = yield* has(type)
        faults.refused.add(type)
        const answer = yield* step
        faults.refused.delete(type)
        expect(yield* has(type)).toBe(before)
        if (Option.isSome(outbox)) expect((yield* outbox.value.backlog).count).toBeGreaterThan(0)
        expect((yield* Metric.value(Metrics.auditUndelivered)).value).toBeGreaterThan(0)
        return answer
      })

    // request: the approval is open, and its event reaches the trail with the next step
    const submitted = yield* refusing("approval.requested", governance.submit(transfer("t1", { quorum: 2 })))
    if (submitted._tag !== "Pending") return expect.fail(`expected Pending, got ${submitted._tag}`)
    const id = submitted.approvalId
    expect((yield* store.get(id)).status).toBe("pending")

    // vote: counted; the next step (a vote) delivers both, in order
    const voted = yield* refusing("approval.voted", governance.approve(id, principal("approver-1")))
    expect(voted.votes.length).toBe(1)
    expect(yield* has("approval.requested")).toBe(1)

    // resolution, with work parked on it: woken from the store, runs once
    let parkedRuns = 0
    const parked = yield* Effect.fork(
      governance.resume(id, transfer("t1", { quorum: 2 }), () => Effect.sync(() => void parkedRuns++))
    )
    yield* Approvals.settle()
    const approved = yield* refusing(
      "approval.resolved",
      Effect.zipLeft(governance.approve(id, principal("approver-2")), Fiber.join(parked))
    )
    expect(approved.status).toBe("approved")
    expect(parkedRuns).toBe(1)
    expect((yield* store.get(id)).consumedAt).not.toBeNull()
    expect(yield* has("approval.voted")).toBe(2)

    // consume: the work runs (its start is one step with the consume), and
    // its re-evaluation waits in the outbox too: approved work is not
    // stranded by a sink that is down
    const second = yield* governance.submit(transfer("t2"))
    if (second._tag !== "Pending") return expect.fail(`expected Pending, got ${second._tag}`)
    yield* governance.approve(second.approvalId, principal("approver-1"))
    let runs = 0
    faults.refused.add("decision.evaluated")
    yield* refusing(
      "approval.consumed",
      governance.resume(second.approvalId, transfer("t2"), () => Effect.sync(() => void runs++))
    )
    faults.refused.delete("decision.evaluated")
    expect(runs).toBe(1)

    // cancel
    const toCancel = yield* governance.submit(transfer("t3"))
    if (toCancel._tag !== "Pending") return expect.fail(`expected Pending, got ${toCancel._tag}`)
    const cancelled = yield* refusing("approval.cancelled", governance.cancel(toCancel.approvalId, principal("agent-1")))
    expect(cancelled.status).toBe("cancelled")

    // expiry
    const toExpire = yield* governance.submit(transfer("t4", { ttlMs: 1_000 }))
    if (toExpire._tag !== "Pending") return expect.fail(`expected Pending, got ${toExpire._tag}`)
    yield* TestClock.adjust("2 seconds")
    expect((yield* refusing("approval.expired", governance.expireDue)).map((r) => r.id)).toEqual([toExpire.approvalId])
    expect((yield* store.get(toExpire.approvalId)).status).toBe("expired")

    // override
    const denied = yield* Effect.flip(governance.enforce(shell, () => Effect.void))
    if (denied._tag !== "Denied") return expect.fail(`expected Denied, got ${denied._tag}`)
    const options = { authority: principal("cfo-1"), reason: "incident", duration: "1 hour" } as const
    const now = new Date(yield* Clock.currentTimeMillis)
    const granted = yield* refusing("override.granted", governance.override(denied.record.decisionId, options))
    expect(Option.isSome(yield* store.findOverride(shell, denied.record.decision, now))).toBe(true)
    expect(granted.overrides).toBe(denied.record.decisionId)

    // a write whose acknowledgment was lost is found in the trail, not written again
    const fifth = yield* governance.submit(transfer("t5"))
    if (fifth._tag !== "Pending") return expect.fail(`expected Pending, got ${fifth._tag}`)
    faults.lost.add("approval.voted")
    yield* governance.approve(fifth.approvalId, principal("approver-1"))
    faults.lost.delete("approval.voted")

    if (flush === "clock") {
      // The deliverer takes what waits, every retry interval.
      yield* TestClock.adjust("5 seconds")
      yield* Approvals.settle()
    } else {
      // The next step takes what waits before its own events (with real
      // I/O, the deliverer's pass would end at no moment a test can await).
      const sixth = yield* governance.submit(transfer("t6"))
      if (sixth._tag !== "Pending") return expect.fail(`expected Pending, got ${sixth._tag}`)
      yield* governance.cancel(sixth.approvalId, principal("agent-1"))
    }
    const events = yield* trail
    if (Option.isSome(outbox)) expect(yield* outbox.value.backlog).toEqual({ count: 0, oldest: null })
    expect((yield* Metric.value(Metrics.auditUndelivered)).value).toBe(0)
    expect(yield* store.listPending()).toEqual([])
    expect({
      requested: count(events, "approval.requested"),
      voted: count(events, "approval.voted"),
      resolved: count(events, "approval.resolved"),
      consumed: count(events, "approval.consumed"),
      started: count(events, "execution.started"),
      cancelled: count(events, "approval.cancelled"),
      expired: count(events, "approval.expired"),
      granted: count(events, "override.granted")
    }).toEqual({
      requested: flush === "clock" ? 5 : 6,
      voted: 4,
      resolved: 3,
      consumed: 2,
      started: 2,
      cancelled: flush === "clock" ? 1 : 2,
      expired: 1,
      granted: 1
    })
  })

/** The warnings logged while `effect` runs. */
const warnings = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const logged: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") logged.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    yield* Effect.provide(effect, Logger.replace(Logger.defaultLogger, logger))
    return logged
  })

describe("a step with the audit trail outside the store", () => {
  it.scoped("memory store: every step answers what happened; its event reaches the trail once", () =>
    Effect.gen(function*() {
      const { layer, sink } = yield* withFaultySink(ApprovalStore.layerMemory, AuditSink.makeMemory)
      const logged = yield* warnings(Effect.provide(scenario(sink, "clock"), layer))
      expect(logged.some((line) => line.includes("they wait in the audit outbox"))).toBe(true)
    }))

  it.scoped("SQLite store, AuditFile trail: the same, the outbox in the database", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = AuditFile.make({ path: path.join(dir, "audit.jsonl") }).pipe(Effect.provide(NodeContext.layer))
      const { layer, sink } = yield* withFaultySink(Sqlite.layer({ filename: path.join(dir, "gavel.db") }), file)
      yield* Effect.provide(scenario(sink, "step"), layer)
    }))

  it.scoped("SQLite store: events left in the outbox reach the trail after a restart, once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "gavel.db")
      const trailPath = path.join(dir, "audit.jsonl")
      const file = AuditFile.make({ path: trailPath }).pipe(Effect.provide(NodeContext.layer))
      // First run: the sink refuses every approval event, and the process stops.
      const first = yield* withFaultySink(Sqlite.layer({ filename }), file)
      for (const type of ["approval.requested", "approval.voted", "approval.resolved"] as const) {
        first.sink.refused.add(type)
      }
      const id = yield* Effect.scoped(Effect.provide(
        Effect.gen(function*() {
          const governance = yield* Governance.Governance
          const submitted = yield* governance.submit(transfer("r1"))
          if (submitted._tag !== "Pending") return yield* Effect.die("expected Pending")
          yield* governance.approve(submitted.approvalId, principal("approver-1"))
          const outbox = Option.getOrThrow(yield* Effect.serviceOption(AuditOutbox.AuditOutbox))
          expect((yield* outbox.backlog).count).toBe(3)
          return submitted.approvalId
        }),
        first.layer
      ))
      expect((yield* AuditFile.readFile(trailPath).pipe(Effect.provide(NodeContext.layer))).map((e) => e.type))
        .toEqual(["decision.evaluated"])
      // Second run, the sink healthy: taken at start-up, in order, once.
      const second = yield* withFaultySink(Sqlite.layer({ filename }), file)
      yield* Effect.scoped(Effect.provide(
        Effect.gen(function*() {
          yield* Governance.Governance
          const outbox = Option.getOrThrow(yield* Effect.serviceOption(AuditOutbox.AuditOutbox))
          expect((yield* outbox.backlog).count).toBe(0)
          const store = yield* ApprovalStore.ApprovalStore
          expect((yield* store.get(id)).status).toBe("approved")
        }),
        second.layer
      ))
      const events = yield* AuditFile.readFile(trailPath).pipe(Effect.provide(NodeContext.layer))
      expect(Audit.verify(events)._tag).toBe("Intact")
      expect(events.map((e) => e.type)).toEqual([
        "decision.evaluated",
        "approval.requested",
        "approval.voted",
        "approval.resolved"
      ])
    }))

  describe.skipIf(databaseUrl === undefined)("on Postgres", () => {
    it.scoped("Postgres store, a sink of its own: the same, the outbox in the schema", () =>
      Effect.gen(function*() {
        const schema = yield* Effect.acquireRelease(
          Effect.sync(() => freshSchema("outbox")),
          (schema) => Effect.promise(() => dropSchemaNow(schema))
        )
        const { layer, sink } = yield* withFaultySink(
          Postgres.layer({ url: databaseUrl ?? "", schema, poolSize: 2, listen: false }),
          AuditSink.makeMemory
        )
        yield* Effect.provide(scenario(sink, "step"), layer)
      }), 60_000)
  })
})
