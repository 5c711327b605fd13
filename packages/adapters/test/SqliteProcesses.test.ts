/**
 * The SQLite store and sink across real processes: a writer killed with
 * SIGKILL at random moments, and two processes racing to resolve the same
 * approvals. The workers are `fixtures/sqlite-worker.ts`, run with
 * `node --import tsx`; each is spawned ahead of its turn, because loading it
 * takes seconds, and started when its turn comes.
 */
import * as Sqlite from "@gavel/adapters/Sqlite"
import { Approval, ApprovalStore, Audit, AuditSink } from "@gavel/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { request } from "@gavel/testing/Fixtures"
import { seeded, spawnWorker, type Worker } from "./fixtures/sqlite.js"

/** Kill rounds of the durability test. */
const ROUNDS = 15
/** Workers loading ahead of their turn. */
const AHEAD = 2
const SEED = 20260101

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const run = <A, E>(
  filename: string,
  effect: Effect.Effect<A, E, ApprovalStore.ApprovalStore | AuditSink.AuditSink | SqlClient.SqlClient>
): Promise<A> => Effect.runPromise(Effect.provide(effect, Sqlite.layer({ filename })))

interface Counts {
  readonly approvals: number
  readonly consumed: number
  readonly events: number
  readonly head: Audit.Anchor | null
}

const countBy = <A>(items: ReadonlyArray<A>, key: (a: A) => string | null): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const item of items) {
    const k = key(item)
    if (k !== null) counts.set(k, (counts.get(k) ?? 0) + 1)
  }
  return counts
}

/**
 * Everything that must hold of the file whenever a writer dies: the file is
 * sound, the rows agree with their JSON, nothing was approved or consumed
 * without its quorum, consumed without being approved, or consumed twice,
 * the trail verifies (against the head seen after the previous kill: what
 * was committed stays committed), and the trail never records a transition
 * the store does not show.
 */
const checkInvariants = (anchor: Audit.Anchor | null) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    expect(yield* sql`PRAGMA integrity_check`).toEqual([{ integrity_check: "ok" }])
    const rows = yield* sql<{
      readonly id: string
      readonly status: string
      readonly consumed_at: number | null
      readonly request: string
    }>`SELECT id, status, consumed_at, request FROM gavel_approvals`
    const approvals = new Map<string, Approval.ApprovalRequest>()
    for (const row of rows) {
      const approval = yield* Approval.decodeUnknown(JSON.parse(row.request))
      approvals.set(row.id, approval)
      expect(row.status, row.id).toBe(approval.status)
      expect(row.consumed_at, row.id).toBe(approval.consumedAt?.getTime() ?? null)
      if (approval.status === "approved" || approval.status === "consumed") {
        expect(Approval.countedApprovers(approval).length, row.id).toBeGreaterThanOrEqual(approval.requirement.quorum)
        expect(approval.resolvedAt, row.id).not.toBeNull()
      }
      expect(approval.consumedAt === null, row.id).toBe(approval.status !== "consumed")
    }

    const events = yield* (yield* AuditSink.AuditSink).read()
    const verification = Audit.verify(events, anchor === null ? undefined : { anchor })
    expect(verification, JSON.stringify(verification)).toMatchObject({ _tag: "Intact" })
    // An event is appended after its transition committed: a kill in between
    // loses the event, never the transition, and no transition is recorded twice.
    const stored = (id: string | null) => (id === null ? undefined : approvals.get(id))
    for (const [type, allowed] of [
      ["approval.requested", ["pending", "approved", "consumed"]],
      ["approval.voted", ["pending", "approved", "consumed"]],
      ["approval.resolved", ["approved", "consumed"]],
      ["approval.consumed", ["consumed"]]
    ] as const) {
      const ofType = events.filter((e) => e.type === type)
      for (const [id, n] of countBy(ofType, (e) => e.approvalId)) expect(n, `${type} of ${id}`).toBe(1)
      for (const e of ofType) expect(allowed, `${type} of ${e.approvalId}`).toContain(stored(e.approvalId)?.status)
    }
    const head = Option.getOrNull(yield* (yield* AuditSink.AuditSink).head)
    return {
      approvals: approvals.size,
      consumed: [...approvals.values()].filter((a) => a.status === "consumed").length,
      events: events.length,
      head
    } satisfies Counts
  })

describe("SQLite across processes", () => {
  it("keeps every invariant when its writer is killed with SIGKILL at random moments", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-sqlite-kill-"))
    const filename = path.join(dir, "gavel.db")
    const random = seeded(SEED)
    const spawned: Array<Worker> = []
    // Loading a worker under tsx takes seconds of CPU: a few load ahead of their turn.
    const spawnUpTo = (round: number) => {
      while (spawned.length < Math.min(ROUNDS, round + AHEAD)) {
        spawned.push(spawnWorker(["churn", filename, `r${spawned.length}`]))
      }
    }
    try {
      let before: Counts = { approvals: 0, consumed: 0, events: 0, head: null }
      for (let round = 0; round < ROUNDS; round++) {
        spawnUpTo(round + 1)
        const worker = spawned[round]!
        await worker.start()
        await worker.waitForLine((line) => line === "running", 30_000)
        await sleep(50 + Math.floor(random() * 350))
        worker.child.kill("SIGKILL")
        const exit = await worker.exited
        expect(exit.signal, `round ${round} exited by itself: ${worker.stderr()}`).toBe("SIGKILL")
        const after = await run(filename, checkInvariants(before.head))
        // Each worker completed at least its first cycle (4 events: requested,
        // voted, resolved, consumed), and everything committed before stays.
        // How much more it did before the kill depends on the machine's load.
        expect(after.approvals).toBeGreaterThan(before.approvals)
        expect(after.consumed).toBeGreaterThan(before.consumed)
        expect(after.events).toBeGreaterThanOrEqual(before.events + 4)
        before = after
      }
    } finally {
      for (const worker of spawned) if (worker.child.exitCode === null) worker.child.kill("SIGKILL")
      await Promise.all(spawned.map((w) => w.exited))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)

  it("two processes resolving the same 200 approvals: each is resolved once and consumed once", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-sqlite-race-"))
    const filename = path.join(dir, "gavel.db")
    const ids = Array.from({ length: 200 }, (_, i) => `race-${i}`)
    const workers: Array<Worker> = []
    try {
      const now = new Date()
      await run(
        filename,
        Effect.gen(function*() {
          const store = yield* ApprovalStore.ApprovalStore
          const sink = yield* AuditSink.AuditSink
          for (const id of ids) {
            const created = request({ id, quorum: 1, createdAt: now })
            yield* store.create(created)
            yield* sink.append({
              type: "approval.requested",
              at: now,
              decisionId: created.decisionId,
              approvalId: id,
              requestId: created.requestId,
              correlationId: created.correlationId,
              actor: created.requester,
              trace: null,
              data: {}
            })
          }
        })
      )
      workers.push(spawnWorker(["race", filename, "bob", "1", String(ids.length)]),
        spawnWorker(["race", filename, "carol", "2", String(ids.length)]))
      await Promise.all(workers.map((w) => w.waitForLine((line) => line === "loaded", 60_000)))
      await Promise.all(workers.map((w) => w.start()))
      interface Summary {
        readonly voteWins: ReadonlyArray<string>
        readonly consumeWins: ReadonlyArray<string>
        readonly voteErrors: Record<string, number>
        readonly consumeErrors: Record<string, number>
      }
      const [bob, carol] = await Promise.all(
        workers.map(async (w) => JSON.parse(await w.waitForLine((line) => line.startsWith("{"), 60_000)) as Summary)
      )
      for (const w of workers) expect((await w.exited).code, w.stderr()).toBe(0)

      for (const wins of ["voteWins", "consumeWins"] as const) {
        expect([...bob![wins], ...carol![wins]].sort()).toEqual([...ids].sort())
      }
      // The losers were told, with the error the contract names.
      expect(bob!.voteErrors).toEqual(bob!.voteWins.length === 200 ? {} : { AlreadyResolved: 200 - bob!.voteWins.length })
      expect(carol!.voteErrors).toEqual(
        carol!.voteWins.length === 200 ? {} : { AlreadyResolved: 200 - carol!.voteWins.length }
      )
      expect(bob!.consumeErrors).toEqual(
        bob!.consumeWins.length === 200 ? {} : { AlreadyConsumed: 200 - bob!.consumeWins.length }
      )
      expect(carol!.consumeErrors).toEqual(
        carol!.consumeWins.length === 200 ? {} : { AlreadyConsumed: 200 - carol!.consumeWins.length }
      )
      // How the 200 split between them is up to the scheduler: SQLite's lock is
      // not fair, and on a loaded machine one worker may win them all.

      const { approvals, events } = await run(
        filename,
        Effect.gen(function*() {
          const store = yield* ApprovalStore.ApprovalStore
          return {
            approvals: yield* Effect.forEach(ids, (id) => store.get(id)),
            events: yield* (yield* AuditSink.AuditSink).read()
          }
        })
      )
      const voter = new Map<string, string>()
      for (const id of bob!.voteWins) voter.set(id, "bob")
      for (const id of carol!.voteWins) voter.set(id, "carol")
      for (const approval of approvals) {
        expect(approval.status).toBe("consumed")
        expect(approval.votes.map((v) => v.approver)).toEqual([voter.get(approval.id)])
      }
      expect(Audit.verify(events)).toMatchObject({ _tag: "Intact", count: 600 })
      for (const type of ["approval.requested", "approval.resolved", "approval.consumed"] as const) {
        const counts = countBy(events.filter((e) => e.type === type), (e) => e.approvalId)
        expect(counts.size, type).toBe(200)
        expect([...counts.values()].every((n) => n === 1), type).toBe(true)
      }
      for (const e of events.filter((e) => e.type === "approval.resolved")) {
        expect(e.actor).toBe(voter.get(e.approvalId!))
      }
    } finally {
      for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill("SIGKILL")
      await Promise.all(workers.map((w) => w.exited))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
