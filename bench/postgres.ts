/**
 * The Postgres approval store (section "postgres"), on the database at
 * GAVEL_DATABASE_URL (skipped, with no rows, without one):
 *
 * - create → approve → consume cycles per second through
 *   `@gavel/adapters/Postgres`, each cycle sequential (three commits), in
 *   one process and in three processes at once on the same schema (their
 *   sum over the wall time of the slowest);
 * - approve-to-work latency across processes: a call parked with `enforce`
 *   in this process, approved through `Governance.approve` in another; the
 *   time from the approval's commit (as the approving process saw it) to
 *   the parked work running here, woken by LISTEN/NOTIFY (the poll interval
 *   is 30 s). Measured from the moment the approving process calls
 *   `approve` (its vote and audit writes included) to the work starting in
 *   the parking process. p50 and p99.
 *
 * The workers are this file run again (`node --import tsx bench/postgres.ts
 * worker …`). Everything happens in a schema of its own, dropped at the end.
 * With GAVEL_BENCH_ROUNDS below 50 (the CI quick mode) the runs are short.
 */
import * as Postgres from "@gavel/adapters/Postgres"
import { Action, ApprovalStore, Decision, Governance, Identity, Policy, PolicySet } from "@gavel/core"
import * as Fixtures from "@gavel/testing/Fixtures"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { spawn } from "node:child_process"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import { type Part, progress, quantile, quick, type Row } from "./report.js"

const CYCLES = quick ? 100 : 1_000
const LATENCY_SAMPLES = quick ? 20 : 200

/** Wall-clock milliseconds comparable across the processes of one machine. */
const wallNow = () => performance.timeOrigin + performance.now()

// -----------------------------------------------------------------------------
// what both sides run
// -----------------------------------------------------------------------------

const directory = new Map<string, Identity.ResolvedPrincipal>([
  ["agent-7", { id: "agent-7", roles: [], tenant: "acme", status: "active" }],
  ["alice", { id: "alice", roles: ["finance"], tenant: "acme", status: "active" }]
])
const IdentityLive = Layer.succeed(
  Identity.Identity,
  Identity.Identity.of({
    resolve: (id) => Effect.succeed(Option.fromNullable(directory.get(id))),
    canApprove: () => Effect.succeed(true)
  })
)
const policySet = PolicySet.unsafeMake({
  id: "bench",
  version: "1",
  policy: Policy.make("bench.approval", () =>
    Decision.requireApproval({ code: "bench.approval", message: "approve" }, { quorum: 1, roles: ["finance"] }))
})
const runtime = (url: string, schema: string) =>
  Governance.layer({ policySet, pollInterval: "30 seconds" }).pipe(
    Layer.provideMerge(Postgres.layer({ url, schema, poolSize: 4 })),
    Layer.provide(IdentityLive)
  )
const alice: Action.Principal = { id: "alice", kind: "human", roles: [], tenant: "acme", attributes: {} }

/** `count` create → approve → consume cycles, one after another; the ids start with `prefix`. */
const cycles = (prefix: string, count: number) =>
  Effect.flatMap(ApprovalStore.ApprovalStore, (store) =>
    Effect.gen(function*() {
      for (let i = 0; i < count; i++) {
        const id = `${prefix}-${i}`
        const now = new Date()
        const request = Fixtures.request({ id, createdAt: now, expiresAt: new Date(now.getTime() + 3_600_000) })
        yield* store.create(request)
        yield* store.vote(id, { approver: "bob", verdict: "approve", note: null, at: now })
        yield* store.consume(id, request.actionHash, now)
      }
    }))

// -----------------------------------------------------------------------------
// the worker side
// -----------------------------------------------------------------------------

const say = (line: unknown) => void process.stdout.write(`${JSON.stringify(line)}\n`)

const worker = async (mode: string, url: string, schema: string, arg: string) => {
  const lines = readline.createInterface({ input: process.stdin })
  const input: Array<string> = []
  const waiting: Array<(line: string) => void> = []
  lines.on("line", (line) => {
    const next = waiting.shift()
    if (next) next(line)
    else input.push(line)
  })
  const nextLine = () =>
    new Promise<string>((resolve) => {
      const line = input.shift()
      if (line !== undefined) resolve(line)
      else waiting.push(resolve)
    })
  if (mode === "cycles") {
    await Effect.runPromise(Effect.provide(
      Effect.gen(function*() {
        yield* Effect.sync(() => say({ ready: true }))
        yield* Effect.promise(nextLine)
        const started = wallNow()
        yield* cycles(`p${process.pid}`, Number(arg))
        yield* Effect.sync(() => say({ started, finished: wallNow() }))
      }),
      Postgres.layer({ url, schema, poolSize: 2, listen: false })
    ))
  } else {
    // approver: approves each id read from stdin, answering with the time it called `approve`.
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const governance = yield* Effect.provide(Governance.Governance, yield* Layer.build(runtime(url, schema)))
      say({ ready: true })
      for (;;) {
        const id = yield* Effect.promise(nextLine)
        if (id === "") break
        const approvedAt = wallNow()
        yield* governance.approve(id, alice)
        say({ approvedAt })
      }
    })))
  }
  process.exit(0)
}

// -----------------------------------------------------------------------------
// the measuring side
// -----------------------------------------------------------------------------

interface Child {
  readonly send: (line: string) => void
  readonly next: () => Promise<Record<string, number>>
  readonly kill: () => void
}

const spawnWorker = (args: ReadonlyArray<string>): Child => {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "worker", ...args], {
    stdio: ["pipe", "pipe", "inherit"]
  })
  const queue: Array<string> = []
  const waiting: Array<(line: string) => void> = []
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    const next = waiting.shift()
    if (next) next(line)
    else queue.push(line)
  })
  return {
    send: (line) => void child.stdin.write(`${line}\n`),
    next: () =>
      new Promise((resolve) => {
        const line = queue.shift()
        if (line !== undefined) resolve(JSON.parse(line))
        else waiting.push((l) => resolve(JSON.parse(l)))
      }),
    kill: () => void child.kill()
  }
}

const measure = async (url: string, schema: string): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []

  // One process: this one.
  progress(`postgres: ${CYCLES} create → approve → consume cycles, 1 process`)
  const one = await Effect.runPromise(Effect.provide(
    Effect.gen(function*() {
      yield* cycles("warm", 20)
      const started = wallNow()
      yield* cycles("one", CYCLES)
      return CYCLES / ((wallNow() - started) / 1_000)
    }),
    Postgres.layer({ url, schema, poolSize: 2, listen: false })
  ))
  rows.push({ section: "postgres", name: "cycles, 1 process", unit: "cycles/s", median: one })

  progress(`postgres: ${CYCLES} cycles in each of 3 processes`)
  const workers = [0, 1, 2].map(() => spawnWorker(["cycles", url, schema, String(CYCLES)]))
  try {
    await Promise.all(workers.map((w) => w.next()))
    for (const w of workers) w.send("go")
    const done = await Promise.all(workers.map((w) => w.next()))
    const wall = Math.max(...done.map((d) => d.finished!)) - Math.min(...done.map((d) => d.started!))
    rows.push({
      section: "postgres",
      name: "cycles, 3 processes (sum)",
      unit: "cycles/s",
      median: (3 * CYCLES) / (wall / 1_000),
      ratio: one / ((3 * CYCLES) / (wall / 1_000)),
      note: "one schema; ratio: the 1-process rate over this one"
    })
  } finally {
    for (const w of workers) w.kill()
  }

  progress(`postgres: approve-to-work latency across processes, ${LATENCY_SAMPLES} samples`)
  const approver = spawnWorker(["approver", url, schema, ""])
  try {
    await approver.next()
    const latencies = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(runtime(url, schema))
      const governance = Context.get(context, Governance.Governance)
      const store = Context.get(context, ApprovalStore.ApprovalStore)
      const samples: Array<number> = []
      for (let i = 0; i < LATENCY_SAMPLES; i++) {
        const ran = yield* Deferred.make<number>()
        const action = Action.make({
          actor: { id: "agent-7", kind: "agent", roles: [], tenant: "acme", attributes: {} },
          kind: "tool",
          name: "bench.transfer",
          requestId: `latency-${i}`
        })
        const parked = yield* Effect.fork(governance.enforce(action, () => Deferred.succeed(ran, wallNow())))
        const pending = yield* store.listPending({ requester: "agent-7" }).pipe(
          Effect.flatMap((list) => Option.fromNullable(list.find((a) => a.requestId === `latency-${i}`))),
          Effect.retry(Schedule.spaced("5 millis"))
        )
        approver.send(pending.id)
        const { approvedAt } = yield* Effect.promise(approver.next)
        const ranAt = yield* Deferred.await(ran)
        yield* Effect.asVoid(parked.await)
        samples.push(ranAt - approvedAt!)
      }
      return samples
    })))
    rows.push({
      section: "postgres",
      name: "approve → work, across processes (NOTIFY)",
      unit: "ms",
      median: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      note: "approve called in one process → parked work starts in another; poll interval 30 s"
    })
  } finally {
    approver.send("")
    approver.kill()
  }
  return rows
}

/** The "postgres" section: no rows (and a note on stderr) without GAVEL_DATABASE_URL. */
export const measurePostgres = async (): Promise<Part> => {
  const url = process.env.GAVEL_DATABASE_URL
  if (url === undefined || url === "") {
    progress("postgres: skipped (set GAVEL_DATABASE_URL to measure the Postgres store)")
    return { rows: [], errors: [] }
  }
  const schema = `bench_${process.pid}`
  try {
    return { rows: await measure(url, schema), errors: [] }
  } catch (error) {
    return { rows: [], errors: [`postgres: ${error instanceof Error ? error.message : String(error)}`] }
  } finally {
    await Effect.runPromise(Effect.provide(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)),
      Postgres.layer({ url, schema, poolSize: 1, listen: false })
    )).catch(() => undefined)
  }
}

if (process.argv[2] === "worker" && process.argv[1] === fileURLToPath(import.meta.url)) {
  void worker(process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6] ?? "")
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Run alone: `GAVEL_DATABASE_URL=… npx tsx bench/postgres.ts`.
  void measurePostgres().then((part) => {
    for (const row of part.rows) console.log(JSON.stringify(row))
    for (const error of part.errors) console.error(error)
    process.exit(part.errors.length === 0 ? 0 : 1)
  })
}
