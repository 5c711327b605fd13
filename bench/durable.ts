/**
 * Durable approvals on SQLite (`synchronous=NORMAL`): what a process holds
 * per pending durable approval (the goal: nothing — the work lives in the
 * database, so the heap stays flat), how fast a worker claims, revalidates,
 * runs and completes approved work, and how long an approval takes to reach
 * its work in a burst of 100 concurrent approvals in one process.
 *
 * - heap: N durable submissions waiting for approval, the heap after two
 *   full collections before and after (SQLite's page cache is native memory,
 *   outside the heap, and bounded by its `cache_size`).
 * - claim → complete: N approved continuations, approved by a runtime with
 *   no worker; a second runtime starts its worker (batch 16, 8 at once) and
 *   the time until every handler ran is measured: continuations per second,
 *   each one claim, one decryption, one revalidation (a policy evaluation
 *   and its `decision.evaluated`), the consume-and-start transaction, the
 *   handler and the completion.
 * - burst: 100 approvals cast at once; from each `approve` call to its
 *   handler starting.
 *
 * GAVEL_BENCH_DURABLE sets N (default 10,000; quick mode 500). Every
 * approved continuation must end `succeeded`, once.
 */
import * as Sqlite from "@gavel/adapters/Sqlite"
import {
  Action,
  ContinuationStore,
  Decision,
  Durable,
  Encryption,
  Governance,
  Identity,
  Policy,
  PolicySet
} from "@gavel/core"
import * as Fixtures from "@gavel/testing/Fixtures"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Part, progress, quantile, quick, type Row, settledHeap } from "./report.js"

const N = Number(process.env.GAVEL_BENCH_DURABLE ?? (quick ? 500 : 10_000))
const BURST = 100

const policySet = PolicySet.unsafeMake({
  id: "payments",
  version: "1",
  policy: Policy.make("payments.large", () =>
    Decision.requireApproval({ code: "payment.large", message: "finance approval" }, {
      roles: ["finance"],
      timeout: "1 day"
    }))
})

const IdentityLive = Identity.layerDirectory([
  { id: "agent-7", roles: [], status: "active" },
  { id: "bob", roles: ["finance"], status: "active" }
], { canApprove: () => true })

const bob: Action.Principal = { id: "bob", kind: "human", roles: ["finance"], attributes: {} }

/** When each handler started, by approval id; how many ran. */
const startedAt = new Map<string, number>()
let ran = 0

const send = Durable.handler({
  name: "payments.send",
  input: Schema.Struct({ to: Schema.String, amount: Schema.Number }),
  success: Schema.Struct({ receipt: Schema.String }),
  run: (_action, input, attempt) =>
    Effect.sync(() => {
      ran++
      if (attempt.approvalId !== null) startedAt.set(attempt.approvalId, performance.now())
      return { receipt: `r-${input.to}` }
    })
})

const governed = (filename: string) =>
  Governance.layer({
    policySet,
    sweepInterval: "1 hour",
    pollInterval: "1 hour",
    maxPendingPerRequester: 1_000_000,
    maxPendingPerTenant: 1_000_000
  }).pipe(
    Layer.provideMerge(Sqlite.layer({ filename, synchronous: "NORMAL" })),
    Layer.provide(IdentityLive)
  )

/** A process with a worker over the database. */
const withWorker = (filename: string) =>
  ManagedRuntime.make(
    Durable.layer({ handlers: [send], pollInterval: "50 millis" }).pipe(
      Layer.provideMerge(governed(filename)),
      Layer.provide(Encryption.layer(Fixtures.encryption))
    )
  )

const payment = (n: number) =>
  Action.make({
    actor: { id: "agent-7", kind: "agent" },
    kind: "tool",
    name: "payments.send",
    payload: { to: `supplier-${n}`, amount: 25_000 }
  })

const submitAll = (count: number, from: number) =>
  Effect.flatMap(Durable.Durable, (durable) =>
    Effect.forEach(
      Array.from({ length: count }, (_, i) => from + i),
      (n) =>
        Effect.flatMap(
          durable.submit(payment(n), send, { to: `supplier-${n}`, amount: 25_000 }, { idempotencyKey: `k-${n}` }),
          (s) => (s._tag === "Pending" ? Effect.succeed(s.approvalId) : Effect.dieMessage(`expected Pending: ${s._tag}`))
        )
    ))

const waitUntil = (done: () => boolean) =>
  Effect.gen(function*() {
    while (!done()) yield* Effect.sleep("5 millis")
  })

/**
 * @since 0.2.0
 */
export const measureDurable = async (): Promise<Part> => {
  const rows: Array<Row> = []
  const errors: Array<string> = []
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-bench-durable-"))
  try {
    const filename = path.join(dir, "gavel.db")

    // heap per pending durable approval
    progress(`durable: ${N} submissions waiting for approval`)
    const first = withWorker(filename)
    const warmUp = await first.runPromise(submitAll(100, 0))
    const before = settledHeap()
    const ids = await first.runPromise(submitAll(N, 100))
    const after = settledHeap()
    await first.dispose()
    rows.push({
      section: "durable",
      name: `${N} pending durable: heap per approval`,
      unit: "bytes",
      median: (after - before) / N,
      goal: { text: "flat (< 500 B; < 50 MB at 100k)", met: (after - before) / N < 500 },
      note: "SQLite, the work in the database; the process keeps nothing per approval"
    })

    // claim → complete throughput
    progress(`durable: approving ${N}, then a worker runs them`)
    const approver = ManagedRuntime.make(governed(filename))
    await approver.runPromise(
      Effect.flatMap(
        Governance.Governance,
        (g) => Effect.forEach([...warmUp, ...ids], (id) => g.approve(id, bob), { discard: true })
      )
    )
    await approver.dispose()
    ran = 0
    const worker = withWorker(filename)
    const start = performance.now()
    // Done when nothing waits or runs any more (every run completed).
    const open = Effect.flatMap(ContinuationStore.ContinuationStore, (c) =>
      Effect.map(
        Effect.all([c.list({ state: "waiting", limit: 1 }), c.list({ state: "started", limit: 1 })]),
        ([w, s]) => w.length + s.length
      ))
    await worker.runPromise(Effect.gen(function*() {
      while ((yield* open) > 0) yield* Effect.sleep("10 millis")
    }))
    const seconds = (performance.now() - start) / 1000
    const unfinished = await worker.runPromise(open)
    rows.push({
      section: "durable",
      name: "claim → run → complete, one worker",
      unit: "per s",
      median: (N + warmUp.length) / seconds,
      note: `${N + warmUp.length} approved continuations (SQLite NORMAL; batch 16, 8 at once)`
    })

    // burst of 100 approvals in one process
    progress("durable: a burst of 100 approvals")
    const burst = await worker.runPromise(submitAll(BURST, 100 + N + 100))
    startedAt.clear()
    const cast = new Map<string, number>()
    await worker.runPromise(
      Effect.flatMap(Governance.Governance, (g) =>
        Effect.forEach(burst, (id) =>
          Effect.suspend(() => {
            cast.set(id, performance.now())
            return g.approve(id, bob)
          }), { concurrency: "unbounded", discard: true }))
    )
    await worker.runPromise(waitUntil(() => startedAt.size >= BURST))
    const latencies = burst.map((id) => startedAt.get(id)! - cast.get(id)!)
    await worker.runPromise(Effect.gen(function*() {
      while ((yield* open) > 0) yield* Effect.sleep("10 millis")
    }))
    const ended = await worker.runPromise(
      Effect.flatMap(ContinuationStore.ContinuationStore, (c) => c.list({ state: "succeeded" }))
    )
    await worker.dispose()
    rows.push({
      section: "durable",
      name: "approve → work, burst of 100",
      unit: "ms",
      median: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      goal: { text: "p99 < 10 ms", met: quantile(latencies, 0.99) < 10 },
      note: "100 concurrent approve calls, one process, SQLite NORMAL"
    })
    if (unfinished !== 0) errors.push("durable: approved continuations did not end")
    const all = warmUp.length + N + BURST
    if (ran !== all) errors.push(`durable: ${ran} handler runs for ${all} approvals`)
    if (ended.length !== all) errors.push(`durable: ${ended.length} succeeded of ${all}`)
  } catch (error) {
    errors.push(`durable: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return { rows, errors }
}
