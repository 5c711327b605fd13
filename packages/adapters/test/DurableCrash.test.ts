/**
 * Durable approvals when processes die: real processes
 * (`fixtures/durable-worker.ts`, run with `node --import tsx`) on a real
 * SQLite file — and on the real Postgres when GAVEL_TEST_DATABASE_URL is
 * set — each killed with SIGKILL at a point of the work's life, then another
 * process takes over once the dead one's lease (1 second) lapsed. The
 * handler's run writes a ledger row in the same database, outside gavel's
 * transactions; what happened is read back from the database.
 *
 * Each scenario has a database of its own; one process serves all the
 * scenarios of its crash point (it dies once each of them reached it), so
 * that the file spawns six processes per database kind, not three per
 * scenario (loading one under tsx costs over a second of CPU):
 *
 * - `parked`: the submitting process dies once it submitted; approved
 *   afterwards, the work runs once, in the last process.
 * - `after-claim`: the worker dies holding a claim it did not start; the
 *   last process claims it once the lease lapsed and runs it once.
 * - `mid-work` / `after-work`: the worker dies in the handler, before / after
 *   its ledger row. At most once: `in_doubt` with an `execution.in_doubt`
 *   event, never run again (before the row too: gavel cannot tell).
 *   At least once: run again as attempt 2 under a new fence, with the same
 *   idempotency key, and `succeeded`.
 * - at least once with `maxAttempts: 2`, killed mid-work and then after the
 *   work: the last process does not run it a third time; the last attempt
 *   may have run, so it is `in_doubt` (`attempts_exhausted`), with its event.
 * - at most once, killed mid-work and then by the process that found the
 *   lapsed claim, just as it wrote it `in_doubt`: that write and its
 *   `execution.in_doubt` event are one unit, so neither is kept, and the
 *   last process writes both (before, the state was committed alone and the
 *   event written after it: a crash in between lost the event for good).
 *
 * The scenarios that do not crash at `parked` are submitted and approved by
 * this test process (through the same runtime layers), not by a process of
 * their own; every approval is cast from here. Afterwards each scenario's
 * audit trail verifies.
 */
import { Approval, ApprovalStore, Audit, AuditSink, ContinuationStore, Governance } from "@gavel/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  createLedger,
  type CrashPoint,
  governed,
  type Job,
  ledgerTable,
  runtime,
  stores,
  submit,
  type Target
} from "./fixtures/durable.js"
import { databaseUrl, dropSchemaNow, freshSchema } from "./fixtures/postgres.js"
import { principal } from "./fixtures/steps.js"
import { type LineWorker, spawnLineWorker } from "./fixtures/workers.js"

/** How long a process may take to load, start and do its part (a loaded 2-core machine). */
const PROCESS_TIMEOUT = 40_000

interface Scenario {
  readonly name: string
  readonly delivery: ContinuationStore.Delivery
  readonly maxAttempts?: number
  /** The processes that die in it, in order. */
  readonly kills: ReadonlyArray<Exclude<CrashPoint, "none">>
}

const scenarios: ReadonlyArray<Scenario> = [
  { name: "parked-amo", delivery: "atMostOnce", kills: ["parked"] },
  { name: "parked-alo", delivery: "atLeastOnce", kills: ["parked"] },
  { name: "claim-amo", delivery: "atMostOnce", kills: ["after-claim"] },
  { name: "claim-alo", delivery: "atLeastOnce", kills: ["after-claim"] },
  { name: "mid-amo", delivery: "atMostOnce", kills: ["mid-work"] },
  { name: "mid-alo", delivery: "atLeastOnce", kills: ["mid-work"] },
  { name: "after-amo", delivery: "atMostOnce", kills: ["after-work"] },
  { name: "after-alo", delivery: "atLeastOnce", kills: ["after-work"] },
  { name: "exhausted-alo", delivery: "atLeastOnce", maxAttempts: 2, kills: ["mid-work", "after-work"] },
  { name: "doubt-amo", delivery: "atMostOnce", kills: ["mid-work", "at-doubt"] }
]

// -----------------------------------------------------------------------------
// the database, read from this process
// -----------------------------------------------------------------------------

type Stores = Layer.Layer.Success<ReturnType<typeof stores>>

const on = <A, E>(target: Target, effect: Effect.Effect<A, E, Stores>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, stores(target)))

interface LedgerRow {
  readonly idempotency_key: string
  readonly attempt: number
  readonly fence: number
}

/** What the database says of a scenario's work. */
const stateOf = (job: Job, approvalId: string) =>
  on(
    job.target,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql.unsafe<LedgerRow>(
        `SELECT idempotency_key, attempt, fence FROM ${ledgerTable(job.target)} ORDER BY attempt`
      )
      const continuation = yield* (yield* ContinuationStore.ContinuationStore).get(approvalId)
      const approval = yield* (yield* ApprovalStore.ApprovalStore).get(approvalId)
      const events = yield* (yield* AuditSink.AuditSink).read()
      return {
        continuation,
        approval,
        events,
        ledger: rows.map((r) => ({ key: r.idempotency_key, attempt: Number(r.attempt), fence: Number(r.fence) }))
      }
    })
  )

// -----------------------------------------------------------------------------
// processes
// -----------------------------------------------------------------------------

interface Process extends LineWorker {
  readonly point: CrashPoint
  /** Sends the command once the process has loaded. */
  readonly start: (role: "submit" | "work", jobs: ReadonlyArray<Job>) => Promise<void>
  /** The JSON lines it printed with this `event`. */
  readonly events: (event: string) => ReadonlyArray<Record<string, unknown>>
}

const spawnProcess = (point: CrashPoint): Process => {
  const worker = spawnLineWorker("durable-worker.ts", [], { env: { GAVEL_CRASH_AT: point } })
  const parsed = () => worker.lines.flatMap((line) => line.startsWith("{") ? [JSON.parse(line) as Record<string, unknown>] : [])
  return {
    ...worker,
    point,
    start: async (role, jobs) => {
      await worker.waitForLine((line) => line.startsWith(`{"event":"loaded"`), PROCESS_TIMEOUT)
      worker.child.stdin!.write(`${JSON.stringify({ role, jobs })}\n`)
    },
    events: (event) => parsed().filter((e) => e.event === event)
  }
}

/** Resolves with how `process` ended; rejects if it is still running after `timeoutMs`. */
const ended = (process: Process, timeoutMs = PROCESS_TIMEOUT) =>
  new Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the ${process.point} process did not end in ${timeoutMs} ms; stderr: ${process.stderr()}`)),
      timeoutMs
    )
    void process.exited.then((exit) => {
      clearTimeout(timer)
      resolve(exit)
    })
  })

/** Starts `process` on `jobs` and waits until it killed itself at its point, every job having reached it. */
const killedAt = async (process: Process, role: "submit" | "work", jobs: ReadonlyArray<Job>) => {
  await process.start(role, jobs)
  const exit = await ended(process)
  expect(exit.signal, `the ${process.point} process ended by itself (${exit.code}): ${process.stderr()}`).toBe("SIGKILL")
  expect(process.events("at").map((e) => e.key).sort()).toEqual(jobs.map((j) => j.key).sort())
}

// -----------------------------------------------------------------------------
// the scenarios
// -----------------------------------------------------------------------------

const approve = (target: Target, approvalId: string) =>
  Effect.runPromise(
    Effect.flatMap(Governance.Governance, (g) => g.approve(approvalId, principal("approver-1"))).pipe(
      Effect.provide(governed(target))
    )
  )

const runScenarios = async (targetOf: (scenario: Scenario) => Target) => {
  const jobs = new Map(scenarios.map((s) => [s.name, {
    target: targetOf(s),
    delivery: s.delivery,
    maxAttempts: s.maxAttempts,
    key: `invoice-${s.name}`
  } satisfies Job]))
  const jobOf = (name: string) => jobs.get(name)!
  const named = (point: CrashPoint, index = 0) =>
    scenarios.filter((s) => s.kills[index] === point).map((s) => s.name)

  // Loading takes seconds of CPU under tsx: every process loads while the databases are prepared.
  const processes = {
    parked: spawnProcess("parked"),
    claim: spawnProcess("after-claim"),
    mid: spawnProcess("mid-work"),
    after: spawnProcess("after-work"),
    doubt: spawnProcess("at-doubt"),
    last: spawnProcess("none")
  }
  try {
    // Migrated, with the ledger; every scenario but `parked` submitted (pending) and approved here.
    const approvals = new Map<string, string>()
    await Promise.all(scenarios.map(async (s) => {
      const job = jobOf(s.name)
      await on(job.target, createLedger(job.target))
      if (s.kills[0] === "parked") return
      const approvalId = await Effect.runPromise(Effect.scoped(Effect.provide(submit(job), runtime(job, "tester"))))
      approvals.set(s.name, approvalId)
      expect((await approve(job.target, approvalId)).status).toBe("approved")
    }))

    // parked: the submitting process dies after it submitted; approved afterwards.
    await killedAt(processes.parked, "submit", named("parked").map(jobOf))
    for (const e of processes.parked.events("submitted")) {
      const name = scenarios.find((s) => jobOf(s.name).key === e.key)!.name
      approvals.set(name, e.approvalId as string)
      const parked = await stateOf(jobOf(name), e.approvalId as string)
      expect(parked.continuation, name).toMatchObject({ state: "waiting", owner: null, fence: 0, attempts: 0 })
      expect(parked.approval.status, name).toBe("pending")
      expect((await approve(jobOf(name).target, e.approvalId as string)).status).toBe("approved")
    }
    const withId = (name: string): Job => ({ ...jobOf(name), approvalId: approvals.get(name)! })
    expect(approvals.size).toBe(scenarios.length)

    // The workers dying at a claim and in the work, then after the work (the
    // exhausted scenario dies mid-work first, then after the work).
    await Promise.all([
      killedAt(processes.claim, "work", named("after-claim").map(withId)),
      killedAt(processes.mid, "work", named("mid-work").map(withId))
    ])
    for (const name of named("after-claim")) {
      const s = await stateOf(jobOf(name), approvals.get(name)!)
      expect(s.continuation, name).toMatchObject({ state: "waiting", fence: 1, attempts: 0 })
      expect(s.continuation.owner, name).toBe(`pid-${processes.claim.child.pid}`)
      expect(s.approval.status, name).toBe("approved")
      expect(s.ledger, name).toEqual([])
    }
    for (const name of named("mid-work")) {
      const s = await stateOf(jobOf(name), approvals.get(name)!)
      expect(s.continuation, name).toMatchObject({ state: "started", fence: 1, attempts: 1 })
      expect(s.approval.status, name).toBe("consumed")
      expect(s.ledger, name).toEqual([])
    }
    await Promise.all([
      killedAt(processes.after, "work", [...named("after-work"), ...named("after-work", 1)].map(withId)),
      killedAt(processes.doubt, "work", named("at-doubt", 1).map(withId))
    ])
    for (const name of named("after-work")) {
      const s = await stateOf(jobOf(name), approvals.get(name)!)
      expect(s.continuation, name).toMatchObject({ state: "started", fence: 1, attempts: 1 })
      expect(s.ledger, name).toEqual([{ key: jobOf(name).key, attempt: 1, fence: 1 }])
    }
    for (const name of named("at-doubt", 1)) {
      // Killed once it wrote the lapsed claim in doubt: the event in one unit with it, both or neither.
      const s = await stateOf(jobOf(name), approvals.get(name)!)
      const events = s.events.filter((e) => e.type === "execution.in_doubt")
      expect(events.length, name).toBe(s.continuation.state === "in_doubt" ? 1 : 0)
      expect(s.continuation, name).toMatchObject({ state: "started", fence: 2, attempts: 1 })
    }
    for (const name of named("after-work", 1)) {
      // Taken over once the mid-work process's lease lapsed: attempt 2, under fence 2.
      const s = await stateOf(jobOf(name), approvals.get(name)!)
      expect(s.continuation, name).toMatchObject({ state: "started", fence: 2, attempts: 2 })
      expect(s.ledger, name).toEqual([{ key: jobOf(name).key, attempt: 2, fence: 2 }])
    }

    // The last process takes every scenario over, once the dead ones' leases lapsed, and finishes it.
    await processes.last.start("work", scenarios.map((s) => withId(s.name)))
    const exit = await ended(processes.last)
    expect(exit, processes.last.stderr()).toEqual({ code: 0, signal: null })
    const outcomes = new Map(processes.last.events("outcome").map((e) => [e.key, e.outcome]))

    for (const scenario of scenarios) {
      const { delivery, name } = scenario
      const job = jobOf(name)
      const approvalId = approvals.get(name)!
      const s = await stateOf(job, approvalId)
      const key = job.key
      const inDoubt = s.events.filter((e) => e.type === "execution.in_doubt" && e.approvalId === approvalId)
      // The trail of every scenario verifies, whatever died where.
      expect(Audit.verify(s.events), name).toMatchObject({ _tag: "Intact" })
      expect(s.approval.status, name).toBe("consumed")
      expect(Approval.countedApprovers(s.approval), name).toEqual(["approver-1"])
      // One idempotency key, whatever the attempt; at most once: never two rows.
      for (const row of s.ledger) expect(row.key, name).toBe(key)
      if (delivery === "atMostOnce") expect(s.ledger.length, name).toBeLessThanOrEqual(1)
      expect(s.continuation.attempts, name).toBeLessThanOrEqual(s.continuation.maxAttempts)
      expect(s.continuation.sealed, name).toBeNull()
      const died = scenario.kills.at(-1)!
      if (name === "exhausted-alo") {
        // Died mid-work (attempt 1, no row), then after the work (attempt 2, a row): no third attempt.
        expect(s.continuation, name).toMatchObject({ state: "in_doubt", error: "attempts_exhausted", attempts: 2 })
        expect(s.ledger, name).toEqual([{ key, attempt: 2, fence: 2 }])
        expect(outcomes.get(key), name).toEqual({ _tag: "InDoubt", approvalId, reason: "attempts_exhausted" })
        expect(inDoubt, name).toHaveLength(1)
      } else if (died === "parked" || died === "after-claim") {
        // The work had not started: it runs once, in the last process.
        const fence = died === "parked" ? 1 : 2
        expect(s.continuation, name).toMatchObject({ state: "succeeded", attempts: 1, fence })
        expect(s.ledger, name).toEqual([{ key, attempt: 1, fence }])
        expect(outcomes.get(key), name).toEqual({ _tag: "Succeeded", approvalId, result: { receipt: "r-acme-1" } })
        expect(inDoubt, name).toHaveLength(0)
      } else if (delivery === "atMostOnce") {
        // It may have run (gavel cannot tell mid-work from after-work): in doubt, never run again.
        expect(s.continuation, name).toMatchObject({
          state: "in_doubt",
          error: "lease_expired",
          attempts: 1,
          fence: scenario.kills.length + 1
        })
        expect(s.ledger, name).toEqual(died === "after-work" ? [{ key, attempt: 1, fence: 1 }] : [])
        expect(outcomes.get(key), name).toEqual({ _tag: "InDoubt", approvalId, reason: "lease_expired" })
        expect(inDoubt, name).toHaveLength(1)
        expect(inDoubt[0]!.data, name).toEqual({ handler: "crash.transfer", attempts: 1, reason: "lease_expired" })
      } else {
        // At least once: attempt 2, under the last process's fence, with the same key.
        expect(s.continuation, name).toMatchObject({ state: "succeeded", attempts: 2, fence: 2 })
        expect(s.ledger, name).toEqual([
          ...(died === "after-work" ? [{ key, attempt: 1, fence: 1 }] : []),
          { key, attempt: 2, fence: 2 }
        ])
        expect(outcomes.get(key), name).toEqual({ _tag: "Succeeded", approvalId, result: { receipt: "r-acme-2" } })
        expect(inDoubt, name).toHaveLength(0)
      }
    }
  } finally {
    for (const p of Object.values(processes)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL")
    await Promise.all(Object.values(processes).map((p) => p.exited))
  }
}

describe("durable work when processes die", () => {
  it("on SQLite: parked, after the claim, mid-work, after the work — at most once and at least once", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-durable-crash-"))
    try {
      await runScenarios((s) => ({ sqlite: path.join(dir, `${s.name}.db`) }))
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)

  describe.skipIf(databaseUrl === undefined)("on Postgres", () => {
    const schemas: Array<string> = []
    afterAll(() => Promise.all(schemas.map(dropSchemaNow)))

    it("parked, after the claim, mid-work, after the work — at most once and at least once", async () => {
      await runScenarios(() => {
        const schema = freshSchema("crash")
        schemas.push(schema)
        return { url: databaseUrl ?? "", schema }
      })
    }, 90_000)
  })
})
