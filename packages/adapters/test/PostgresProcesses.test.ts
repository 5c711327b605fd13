/**
 * The Postgres stores across real processes sharing one database: three
 * runtimes approving each other's parked work, two racing to resolve the
 * same approvals, one killed with SIGKILL while it holds parked work, and
 * the database restarted under load. The workers are
 * `fixtures/postgres-worker.ts`, run with `node --import tsx` (loading one
 * takes seconds: they are spawned once, together, and reused).
 *
 * Needs GAVEL_TEST_DATABASE_URL (see fixtures/postgres.ts); the restart test
 * also needs GAVEL_TEST_POSTGRES_SCRIPT (scripts/postgres.sh), with which it
 * starts a cluster of its own on another port, so that restarting it never
 * disturbs the other test files.
 */
import * as Postgres from "@gavel/adapters/Postgres"
import { Approval, ApprovalStore, Audit, AuditSink } from "@gavel/core"
import { request } from "@gavel/testing/Fixtures"
import type * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { execFile } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import {
  approvers,
  databaseUrl,
  dropSchemaNow,
  freshSchema,
  script,
  spawnWorker,
  type Worker
} from "./fixtures/postgres.js"
import { seeded, shuffle } from "./fixtures/sqlite.js"

const url = databaseUrl ?? ""
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

type Services = ApprovalStore.ApprovalStore | AuditSink.AuditSink | SqlClient.SqlClient

/** Runs `effect` in this process against `schema`. */
const run = <A, E>(schema: string, effect: Effect.Effect<A, E, Services>, dbUrl = url): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, Postgres.layer({ url: dbUrl, schema, poolSize: 4, listen: false })))

let nextCommand = 0

/** Sends `command` to `worker` and resolves with its reply (rejects on `ok: false`). */
const ask = async (worker: Worker, command: Record<string, unknown>, timeoutMs = 60_000) => {
  const id = nextCommand++
  worker.send({ ...command, id })
  const line = await worker.waitForLine((l) => l.startsWith(`{"reply":${id},`), timeoutMs)
  const reply = JSON.parse(line) as { readonly ok: boolean; readonly error?: string } & Record<string, unknown>
  if (!reply.ok) throw new Error(`worker ${command.cmd as string} failed: ${reply.error}`)
  return reply
}

/** The `event` lines a worker printed so far. */
const events = (worker: Worker, event: string) =>
  worker.lines.filter((l) => l.startsWith(`{"event":"${event}"`)).map((l) =>
    JSON.parse(l) as { readonly key: string; readonly pid: number; readonly outcome?: string }
  )

const waitUntil = async (what: string, predicate: () => boolean | Promise<boolean>, timeoutMs: number) => {
  const deadline = performance.now() + timeoutMs
  while (!(await predicate())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

const pendingIds = (schema: string) =>
  run(schema, Effect.flatMap(ApprovalStore.ApprovalStore, (s) => s.listPending()))

describe.skipIf(databaseUrl === undefined)("Postgres across processes", () => {
  const workers: Array<Worker> = []
  const schemas: Array<string> = []

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) workers.push(spawnWorker([`w${i}`]))
    await Promise.all(workers.map((w) => w.waitForLine((l) => l.startsWith(`{"event":"loaded"`), 90_000)))
  }, 120_000)

  afterAll(async () => {
    for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill("SIGKILL")
    await Promise.all(workers.map((w) => w.exited))
    await Promise.all(schemas.map(dropSchemaNow))
  })

  const open = (schema: string, options: Record<string, unknown> = {}) =>
    Promise.all(workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).map((w) =>
      ask(w, {
        cmd: "open",
        url,
        schema,
        pollInterval: "2 seconds",
        sweepInterval: "200 millis",
        // Generous: these tests are about exactly-once, not deadlines, and CI machines are loaded.
        timeout: "30 seconds",
        ...options
      })
    ))
  const close = () =>
    Promise.all(workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).map((w) =>
      ask(w, { cmd: "close" })
    ))

  it("three processes: 300 approvals approved through the others, each work runs once, where it was parked", async () => {
    const schema = freshSchema("procs")
    schemas.push(schema)
    await open(schema)
    const keysOf = workers.map((_, w) => Array.from({ length: 100 }, (_, i) => `w${w}-${i}`))
    await Promise.all(workers.map((w, i) => ask(w, { cmd: "park", keys: keysOf[i] })))
    await waitUntil("300 pending approvals", async () => (await pendingIds(schema)).length === 300, 60_000).catch(
      (error: Error) => {
        const outcomes = workers.flatMap((w) => events(w, "done"))
        throw new Error(`${error.message}; finished early: ${JSON.stringify(outcomes)}; ${workers.map((w) => w.stderr()).join("\n")}`)
      }
    )

    // Each approval goes to a random process other than the one that parked it, in a random order.
    const random = seeded(20260101)
    const pending = shuffle(await pendingIds(schema), random)
    const batches: Array<Array<string>> = [[], [], []]
    for (const approval of pending) {
      const owner = Number(approval.requestId.slice(1, approval.requestId.indexOf("-")))
      const other = (owner + 1 + Math.floor(random() * 2)) % 3
      batches[other]!.push(approval.id)
    }
    const replies = await Promise.all(workers.map((w, i) =>
      ask(w, { cmd: "approve", ids: batches[i], approver: approvers[i] })
    ))
    for (const reply of replies) {
      expect(Object.values(reply.results as Record<string, string>).every((r) => r === "ok")).toBe(true)
    }

    await waitUntil(
      "every parked call to finish",
      () => workers.reduce((n, w) => n + events(w, "done").length, 0) === 300,
      60_000
    )
    workers.forEach((w, i) => {
      const ran = events(w, "ran")
      // Exactly its own 100, each once, in this process.
      expect(ran.map((e) => e.key).sort()).toEqual([...keysOf[i]!].sort())
      expect(new Set(ran.map((e) => e.pid))).toEqual(new Set([w.child.pid]))
      expect(events(w, "done").every((e) => e.outcome === "ok")).toBe(true)
    })

    const [approvals, trail] = await run(schema, Effect.gen(function*() {
      return [
        yield* (yield* ApprovalStore.ApprovalStore).list(),
        yield* (yield* AuditSink.AuditSink).read()
      ] as const
    }))
    expect(approvals.length).toBe(300)
    expect(approvals.every((a) => a.status === "consumed")).toBe(true)
    expect(Audit.verify(trail)._tag).toBe("Intact")
    expect(trail.map((e) => e.sequence)).toEqual(trail.map((_, i) => i + 1))
    for (const type of ["approval.requested", "approval.resolved", "approval.consumed", "execution.succeeded"]) {
      expect(trail.filter((e) => e.type === type).length, type).toBe(300)
    }
    await close()
  }, 120_000)

  it("two processes racing to resolve the same 1,000 approvals: each resolved once, the losers get AlreadyResolved", async () => {
    const schema = freshSchema("race")
    schemas.push(schema)
    const ids = Array.from({ length: 1_000 }, (_, i) => `race-${i}`)
    await run(schema, Effect.flatMap(ApprovalStore.ApprovalStore, (store) =>
      Effect.forEach(ids, (id) => store.create(request({ id, createdAt: new Date(), expiresAt: new Date(Date.now() + 3_600_000) })), {
        concurrency: 8,
        discard: true
      })))
    await open(schema)
    const [a, b] = await Promise.all([
      ask(workers[0]!, { cmd: "race", ids, approver: "bob", seed: 1 }, 90_000),
      ask(workers[1]!, { cmd: "race", ids, approver: "carol", seed: 2 }, 90_000)
    ])
    const winsA = a.wins as ReadonlyArray<string>
    const winsB = b.wins as ReadonlyArray<string>
    expect([...winsA, ...winsB].sort()).toEqual([...ids].sort())
    expect(a.errors).toEqual(winsA.length === 1_000 ? {} : { AlreadyResolved: 1_000 - winsA.length })
    expect(b.errors).toEqual(winsB.length === 1_000 ? {} : { AlreadyResolved: 1_000 - winsB.length })
    const [approvals, trail] = await run(schema, Effect.gen(function*() {
      return [
        yield* (yield* ApprovalStore.ApprovalStore).list(),
        yield* (yield* AuditSink.AuditSink).read()
      ] as const
    }))
    const winnerOf = new Map([...winsA.map((id) => [id, "bob"] as const), ...winsB.map((id) => [id, "carol"] as const)])
    for (const approval of approvals) {
      expect(approval.status).toBe("approved")
      expect(Approval.countedApprovers(approval)).toEqual([winnerOf.get(approval.id)])
    }
    expect(Audit.verify(trail)._tag).toBe("Intact")
    expect(trail.length).toBe(1_000)
    expect(new Set(trail.map((e) => e.approvalId)).size).toBe(1_000)
    await close()
  }, 150_000)

  it("three processes flooding one requester: exactly the cap is pending, every other call refused and audited", async () => {
    const schema = freshSchema("flood")
    schemas.push(schema)
    const cap = 25
    await open(schema, { maxPendingPerRequester: cap })
    const keysOf = workers.map((_, w) => Array.from({ length: 40 }, (_, i) => `f${w}-${i}`))
    // All at once: 120 enforce calls racing across three processes and their pools.
    await Promise.all(workers.map((w, i) => ask(w, { cmd: "park", keys: keysOf[i] })))
    const flooded = (worker: Worker, event: string) => events(worker, event).filter((e) => e.key.startsWith("f"))
    const refusals = () => workers.flatMap((w) => flooded(w, "done")).filter((e) => e.outcome === "TooManyPending")
    await waitUntil("95 refusals", () => refusals().length === 95, 60_000)
    const [pending, trail] = await run(schema, Effect.gen(function*() {
      return [
        yield* (yield* ApprovalStore.ApprovalStore).listPending(),
        yield* (yield* AuditSink.AuditSink).read()
      ] as const
    }))
    expect(pending.length).toBe(cap)
    // The other 25 are parked, waiting for an approver.
    expect(workers.flatMap((w) => flooded(w, "done")).length).toBe(95)
    expect(workers.flatMap((w) => flooded(w, "ran"))).toEqual([])
    expect(Audit.verify(trail)._tag).toBe("Intact")
    expect(trail.filter((e) => e.type === "approval.requested").length).toBe(cap)
    expect(trail.filter((e) => e.type === "approval.refused").length).toBe(95)
    expect(trail.filter((e) => e.type === "decision.evaluated").length).toBe(120)
    await close()
  }, 90_000)

  it("SIGKILL while holding parked work: its approvals stay pending or expire through another's sweeper, none resolved twice", async () => {
    const schema = freshSchema("kill")
    schemas.push(schema)
    await open(schema)
    const victim = workers[2]!
    const keys = Array.from({ length: 20 }, (_, i) => `doomed-${i}`)
    await ask(victim, { cmd: "park", keys, ttlMs: 4_000 })
    await waitUntil("20 pending approvals", async () => (await pendingIds(schema)).length === 20, 30_000)
    victim.child.kill("SIGKILL")
    expect((await victim.exited).signal).toBe("SIGKILL")

    // Five are approved through a survivor; nobody holds their work any more.
    const pending = await pendingIds(schema)
    const approved = pending.slice(0, 5).map((a) => a.id)
    const reply = await ask(workers[0]!, { cmd: "approve", ids: approved, approver: "approver-0" })
    expect(Object.values(reply.results as Record<string, string>)).toEqual(["ok", "ok", "ok", "ok", "ok"])
    // The other fifteen expire through the survivors' sweepers (200 ms).
    await waitUntil("the rest to expire", async () => (await pendingIds(schema)).length === 0, 30_000)
    // A sweeper appends `approval.expired` after its expiry commits (a separate
    // write: issue 28): wait for every resolution to be on the trail before
    // reading it, or a loaded machine reads it in between.
    const isResolution = (e: Audit.AuditEvent) => e.type === "approval.resolved" || e.type === "approval.expired"
    await waitUntil(
      "every resolution audited",
      async () => (await run(schema, Effect.flatMap(AuditSink.AuditSink, (s) => s.read()))).filter(isResolution).length >= 20,
      30_000
    )

    const [approvals, trail] = await run(schema, Effect.gen(function*() {
      return [
        yield* (yield* ApprovalStore.ApprovalStore).list(),
        yield* (yield* AuditSink.AuditSink).read()
      ] as const
    }))
    const byStatus = (status: Approval.Status) => approvals.filter((a) => a.status === status).map((a) => a.id).sort()
    expect(byStatus("approved")).toEqual([...approved].sort())
    expect(byStatus("expired").length).toBe(15)
    expect(byStatus("consumed")).toEqual([])
    expect(events(victim, "ran").filter((e) => e.key.startsWith("doomed-"))).toEqual([])
    expect(Audit.verify(trail)._tag).toBe("Intact")
    // One resolution each, by whichever process got there: never two.
    const resolutions = trail.filter(isResolution)
    expect(resolutions.map((e) => e.approvalId).sort()).toEqual(approvals.map((a) => a.id).sort())
    expect(trail.filter((e) => e.type === "approval.consumed" || e.type.startsWith("execution."))).toEqual([])
    await close()
  }, 90_000)
})

// -----------------------------------------------------------------------------
// the database restarted under load
// -----------------------------------------------------------------------------

const exec = promisify(execFile)

describe.skipIf(databaseUrl === undefined || script === undefined)("Postgres restarted under load", () => {
  // A cluster of its own (another port and directory), so that restarting it
  // leaves the other test files' database alone.
  const env = {
    ...process.env,
    GAVEL_PG_PORT: process.env.GAVEL_TEST_RESTART_PORT ?? "54339",
    GAVEL_PG_DIR: path.join(os.tmpdir(), `gavel-postgres-restart-${process.pid}`)
  }
  const scriptPath = path.resolve(script ?? "")
  let restartUrl = ""

  beforeAll(async () => {
    await exec("bash", [scriptPath, "start"], { env })
    restartUrl = (await exec("bash", [scriptPath, "url"], { env })).stdout.trim()
  }, 120_000)
  afterAll(async () => {
    await exec("bash", [scriptPath, "destroy"], { env })
  }, 60_000)

  it("operations fail with StoreError within their timeout while it is down, and succeed once it is back", async () => {
    const schema = "restart"
    const TIMEOUT = 1_000
    interface Outcome {
      readonly at: number
      readonly ms: number
      readonly result: string
    }
    const outcomes: Array<Outcome> = []
    let stop = false
    const started = performance.now()
    const load = Effect.gen(function*() {
      const store = yield* ApprovalStore.ApprovalStore
      const sink = yield* AuditSink.AuditSink
      const loop = (lane: number) =>
        Effect.gen(function*() {
          for (let i = 0; !stop; i++) {
            const id = `l${lane}-${i}`
            const t0 = performance.now()
            const result = yield* Effect.either(Effect.gen(function*() {
              yield* store.create(request({ id, createdAt: new Date(), expiresAt: new Date(Date.now() + 3_600_000) }))
              yield* store.vote(id, { approver: "bob", verdict: "approve", note: null, at: new Date() })
              yield* sink.append({
                type: "approval.resolved",
                at: new Date(),
                decisionId: null,
                approvalId: id,
                requestId: null,
                correlationId: null,
                actor: "bob",
                trace: null,
                data: {}
              })
            }))
            const t1 = performance.now()
            outcomes.push({ at: t1 - started, ms: t1 - t0, result: Either.isRight(result) ? "ok" : result.left._tag })
            if (Either.isLeft(result)) yield* Effect.sleep("50 millis")
          }
        })
      yield* Effect.all([0, 1, 2, 3].map(loop), { concurrency: "unbounded", discard: true })
    }).pipe(
      Effect.provide(Postgres.layer({
        url: restartUrl,
        schema,
        poolSize: 4,
        timeout: `${TIMEOUT} millis`,
        connectTimeout: "500 millis",
        listen: false
      }))
    )
    const running = Effect.runPromiseExit(load).then((exit) => {
      if (exit._tag === "Failure") throw new Error(Cause.pretty(exit.cause))
    })
    await sleep(1_500)
    const restartAt = performance.now() - started
    await exec("bash", [scriptPath, "restart", "2"], { env })
    const backAt = performance.now() - started
    await sleep(3_000)
    stop = true
    await running

    const failures = outcomes.filter((o) => o.result !== "ok")
    const before = outcomes.filter((o) => o.at < restartAt)
    const after = outcomes.filter((o) => o.at > backAt + 1_500)
    expect(before.length).toBeGreaterThan(0)
    expect(before.every((o) => o.result === "ok")).toBe(true)
    // Down: typed failures, each well within its deadline (three operations, each bounded).
    expect(failures.length).toBeGreaterThan(0)
    expect(new Set(failures.map((o) => o.result))).toEqual(new Set(["StoreError"]))
    for (const o of failures) expect(o.ms).toBeLessThan(3 * TIMEOUT + 500)
    // Back: it works again.
    expect(after.length).toBeGreaterThan(0)
    expect(after.every((o) => o.result === "ok")).toBe(true)

    // What was acknowledged stayed written, and the trail still verifies.
    const trail = await run(schema, Effect.flatMap(AuditSink.AuditSink, (s) => s.read()), restartUrl)
    expect(Audit.verify(trail)._tag).toBe("Intact")
    expect(trail.length).toBeGreaterThanOrEqual(outcomes.filter((o) => o.result === "ok").length)
  }, 90_000)
})
