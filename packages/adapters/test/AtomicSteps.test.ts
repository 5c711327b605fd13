/**
 * A step of an approval's life happens wholly or not at all when the store
 * and the audit trail live in one database (the SQLite and Postgres layers):
 * the audit append of each step — request, vote, resolution, consume,
 * expiry, cancel, override — fails inside the step (a trigger on the audit
 * table refuses that event's insert, as a full disk would), and after the
 * error answer the store is as it was, the trail verifies, and the step
 * retried afterwards counts once; a call parked on an approval is woken by
 * the retried vote, not the failed one, and runs its work once. Postgres needs GAVEL_TEST_DATABASE_URL
 * (see fixtures/postgres.ts); skipped without it.
 */
import * as Postgres from "@gavel/adapters/Postgres"
import * as Sqlite from "@gavel/adapters/Sqlite"
import {
  ApprovalStore,
  Audit,
  AuditSink,
  Governance
} from "@gavel/core"
import { Approvals } from "@gavel/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as path from "node:path"
import { databaseUrl, dropSchemaNow, freshSchema } from "./fixtures/postgres.js"
import { tempDir } from "./fixtures/sqlite.js"
import { IdentityLive, policySet, principal, shell, transfer } from "./fixtures/steps.js"


/** How a test makes the audit append of one type of event fail inside the step, and stop failing. */
interface Faults {
  readonly fail: (type: Audit.EventType) => Effect.Effect<void, unknown, SqlClient.SqlClient>
  readonly heal: Effect.Effect<void, unknown, SqlClient.SqlClient>
}

const runtime = <E>(stores: Layer.Layer<ApprovalStore.ApprovalStore | AuditSink.AuditSink | SqlClient.SqlClient, E>) =>
  Governance.layer({ policySet, sweepInterval: "1 hour", pollInterval: "1 hour" }).pipe(
    Layer.provideMerge(stores),
    Layer.provide(IdentityLive)
  )

const scenario = ({ fail, heal }: Faults) =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const store = yield* ApprovalStore.ApprovalStore
    const sink = yield* AuditSink.AuditSink
    /** The trail, verified intact. */
    const trail = Effect.map(sink.read(), (events) => {
      expect(Audit.verify(events)._tag).toBe("Intact")
      return events
    })
    const count = (events: ReadonlyArray<Audit.AuditEvent>, type: Audit.EventType) =>
      events.filter((e) => e.type === type).length
    /** The step, its audit append failing: answered with `StoreError`. */
    const failing = <A, E, R>(type: Audit.EventType, step: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        yield* fail(type)
        const error = yield* Effect.flip(step)
        yield* heal
        expect((error as { readonly _tag: string })._tag).toBe("StoreError")
      })

    // request: no approval is opened that nothing would run
    yield* failing("approval.requested", governance.submit(transfer("t1", { quorum: 2 })))
    expect(yield* store.list()).toEqual([])
    expect(count(yield* trail, "approval.requested")).toBe(0)
    const submitted = yield* governance.submit(transfer("t1", { quorum: 2 }))
    if (submitted._tag !== "Pending") return expect.fail(`expected Pending, got ${submitted._tag}`)
    const id = submitted.approvalId
    expect(count(yield* trail, "approval.requested")).toBe(1)

    // vote: not recorded; retried, it counts once
    yield* failing("approval.voted", governance.approve(id, principal("approver-1")))
    expect((yield* store.get(id)).votes).toEqual([])
    expect((yield* governance.approve(id, principal("approver-1"))).votes.length).toBe(1)

    // resolution: the deciding vote is not recorded, the approval stays pending
    yield* failing("approval.resolved", governance.approve(id, principal("approver-2")))
    const unresolved = yield* store.get(id)
    expect(unresolved.status).toBe("pending")
    expect(unresolved.votes.map((v) => v.approver)).toEqual(["approver-1"])
    const approved = yield* governance.approve(id, principal("approver-2"))
    expect(approved.status).toBe("approved")
    expect(approved.votes.length).toBe(2)

    // consume: not consumed, the work not run; resumed again, it runs once
    let runs = 0
    const work = () => Effect.sync(() => void runs++)
    yield* failing("approval.consumed", governance.resume(id, transfer("t1", { quorum: 2 }), work))
    expect(runs).toBe(0)
    expect((yield* store.get(id)).consumedAt).toBeNull()
    yield* governance.resume(id, transfer("t1", { quorum: 2 }), work)
    expect(runs).toBe(1)
    expect((yield* store.get(id)).consumedAt).not.toBeNull()

    // cancel: still pending
    const toCancel = yield* governance.submit(transfer("t2"))
    if (toCancel._tag !== "Pending") return expect.fail(`expected Pending, got ${toCancel._tag}`)
    yield* failing("approval.cancelled", governance.cancel(toCancel.approvalId, principal("agent-1")))
    expect((yield* store.get(toCancel.approvalId)).status).toBe("pending")
    expect((yield* governance.cancel(toCancel.approvalId, principal("agent-1"))).status).toBe("cancelled")

    // expiry: still pending until a sweep is audited
    const toExpire = yield* governance.submit(transfer("t3", { ttlMs: 1_000 }))
    if (toExpire._tag !== "Pending") return expect.fail(`expected Pending, got ${toExpire._tag}`)
    yield* TestClock.adjust("2 seconds")
    yield* failing("approval.expired", governance.expireDue)
    expect((yield* store.get(toExpire.approvalId)).status).toBe("pending")
    expect((yield* governance.expireDue).map((r) => r.id)).toEqual([toExpire.approvalId])
    expect((yield* store.get(toExpire.approvalId)).status).toBe("expired")

    // override: not granted
    const denied = yield* Effect.flip(governance.enforce(shell, () => Effect.void))
    if (denied._tag !== "Denied") return expect.fail(`expected Denied, got ${denied._tag}`)
    const options = { authority: principal("cfo-1"), reason: "incident", duration: "1 hour" } as const
    const now = new Date(yield* Clock.currentTimeMillis)
    yield* failing("override.granted", governance.override(denied.record.decisionId, options))
    expect(Option.isNone(yield* store.findOverride(shell, denied.record.decision, now))).toBe(true)
    yield* governance.override(denied.record.decisionId, options)
    expect(Option.isSome(yield* store.findOverride(shell, denied.record.decision, now))).toBe(true)

    // a parked call: the vote that failed does not wake it; the retried one runs its work, once
    let parkedRuns = 0
    const parked = yield* Effect.fork(governance.enforce(transfer("t4"), () => Effect.sync(() => void parkedRuns++)))
    const pending = yield* Approvals.awaitPending({ maxYields: 100_000 })
    yield* failing("approval.resolved", governance.approve(pending.id, principal("approver-1")))
    yield* Approvals.settle()
    expect(Option.isNone(yield* Fiber.poll(parked))).toBe(true)
    expect((yield* store.get(pending.id)).status).toBe("pending")
    yield* governance.approve(pending.id, principal("approver-1"))
    yield* Fiber.join(parked)
    expect(parkedRuns).toBe(1)

    // Store and trail agree: each step once, nothing left pending.
    const events = yield* trail
    expect(yield* store.listPending()).toEqual([])
    expect({
      requested: count(events, "approval.requested"),
      voted: count(events, "approval.voted"),
      resolved: count(events, "approval.resolved"),
      consumed: count(events, "approval.consumed"),
      cancelled: count(events, "approval.cancelled"),
      expired: count(events, "approval.expired"),
      granted: count(events, "override.granted")
    }).toEqual({ requested: 4, voted: 3, resolved: 2, consumed: 2, cancelled: 1, expired: 1, granted: 1 })
  })

describe("a step on the SQLite stores happens wholly or not at all", () => {
  const faults: Faults = {
    fail: (type) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe(`CREATE TRIGGER gavel_test_fault BEFORE INSERT ON gavel_audit_events
          WHEN NEW.type = '${type}' BEGIN SELECT RAISE(ABORT, 'the disk is full'); END`)),
    heal: Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP TRIGGER IF EXISTS gavel_test_fault`))
  }

  it.scoped("request, vote, resolution, consume, cancel, expiry, override: an audit failure rolls the step back", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* Effect.provide(scenario(faults), runtime(Sqlite.layer({ filename: path.join(dir, "gavel.db") })))
    }))
})

describe.skipIf(databaseUrl === undefined)("a step on the Postgres stores happens wholly or not at all", () => {
  it.scoped(
    "request, vote, resolution, consume, cancel, expiry, override: an audit failure rolls the step back",
    () =>
      Effect.gen(function*() {
        const schema = yield* Effect.acquireRelease(
          Effect.sync(() => freshSchema("atomic")),
          (schema) => Effect.promise(() => dropSchemaNow(schema))
        )
        const faults: Faults = {
          fail: (type) =>
            Effect.flatMap(SqlClient.SqlClient, (sql) =>
              Effect.zipRight(
                sql.unsafe(`CREATE FUNCTION "${schema}".gavel_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN IF NEW.type = '${type}' THEN RAISE EXCEPTION 'the disk is full'; END IF; RETURN NEW; END $$`),
                sql.unsafe(`CREATE TRIGGER gavel_test_fault BEFORE INSERT ON "${schema}".gavel_audit_events
                  FOR EACH ROW EXECUTE FUNCTION "${schema}".gavel_test_fault()`)
              )),
          heal: Effect.flatMap(SqlClient.SqlClient, (sql) =>
            Effect.zipRight(
              sql.unsafe(`DROP TRIGGER IF EXISTS gavel_test_fault ON "${schema}".gavel_audit_events`),
              sql.unsafe(`DROP FUNCTION IF EXISTS "${schema}".gavel_test_fault()`)
            ))
        }
        yield* Effect.provide(
          scenario(faults),
          runtime(Postgres.layer({ url: databaseUrl ?? "", schema, poolSize: 2, listen: false }))
        )
      }),
    60_000
  )
})
