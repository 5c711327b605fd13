/**
 * Approvals, in real time, with the in-memory store and an identity system
 * that answers at once (a Map): what gavel and Effect cost around a human
 * approval, not how long the human takes.
 *
 * - cycles: create → approve → resume → consume (`submit`, `approve`,
 *   `resume`) run one after the other in one Effect; cycles per second,
 *   median of a few batches after a warm-up batch.
 * - parked: P calls parked in `enforce` at once, each on its own action;
 *   heap per parked call (after a full GC, with the actions and work
 *   functions allocated beforehand, so that only what gavel and Effect keep
 *   per parked call counts), then the time from `approve` to the protected
 *   work starting, for every call, approved in a seeded random order.
 *
 * Every step is audited through a sink that seals each event (canonical JSON
 * and SHA-256, the CPU a persistent sink spends) and keeps only the chain's
 * head: `AuditSink.layerMemory` keeps every event, so its retained trail
 * would be measured as the runtime's heap and GC time.
 *
 * - sweep: D pending approvals, all due, each with a call parked in
 *   `resume`; one `expireDue` through Governance (the store's sweep, the
 *   `approval.expired` events, waking every parked call), timed in seconds.
 *   Every approval must end `expired` and every parked call fail with
 *   `ApprovalExpired`. (The approvals are written to the store directly,
 *   copies of one opened through `submit`: opening 100k through the policies
 *   would take longer than the sweep it sets up.)
 *
 * GAVEL_BENCH_APPROVAL_CYCLES sets the number of timed cycles (default
 * 20,000), GAVEL_BENCH_PARKED the numbers of parked calls (default
 * "10000,100000"), GAVEL_BENCH_DUE the numbers of due approvals (default
 * "100000"). In the CI quick mode (`quick`) the defaults are 2,000 cycles,
 * "10000" and "10000". GAVEL_BENCH_HEAP_SNAPSHOTS=dir writes heap snapshots
 * before parking, when all are parked and when all are consumed into dir
 * (slow; for profiling).
 */
import {
  Action,
  ApprovalStore,
  Audit,
  AuditSink,
  Decision,
  Governance,
  Identity,
  Metrics,
  Policy,
  PolicySet
} from "@gavel/core"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as v8 from "node:v8"
import { type Part, progress, quantile, quick, type Row, settledHeap } from "./report.js"

const counts = (text: string): ReadonlyArray<number> =>
  text.split(",").map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0)

const CYCLES = Number(process.env.GAVEL_BENCH_APPROVAL_CYCLES ?? (quick ? 2_000 : 20_000))
const PARKED = counts(process.env.GAVEL_BENCH_PARKED ?? (quick ? "10000" : "10000,100000"))
const DUE = counts(process.env.GAVEL_BENCH_DUE ?? (quick ? "10000" : "100000"))
const BATCHES = 5

/** How many approvals, in the shuffled order, are approved one at a time (the unloaded latency). */
const SOLO = 1_000
/** The rest arrive in bursts of this many concurrent approve calls (a loaded server). */
const BURST = 100

const GOAL_HEAP_MB_100K = 300
const GOAL_P99_MS = 10
const GOAL_BYTES_PER_PARKED = Math.floor((GOAL_HEAP_MB_100K * 1024 * 1024) / 100_000)

// -----------------------------------------------------------------------------
// fixtures
// -----------------------------------------------------------------------------

const approver: Action.Principal = { id: "approver-1", kind: "human", roles: [], attributes: {} }

const principals = new Map<string, Identity.ResolvedPrincipal>([
  ["approver-1", { id: "approver-1", roles: ["finance"], status: "active" }]
])

const IdentityLive = Layer.succeed(
  Identity.Identity,
  Identity.Identity.of({
    resolve: (principalId) => Effect.succeed(Option.fromNullable(principals.get(principalId))),
    canApprove: () => Effect.succeed(true)
  })
)

const policySet = PolicySet.unsafeMake({
  id: "approvals-bench",
  version: "1",
  policy: Policy.make("payments", (action) =>
    action.name === "payments.transfer"
      ? Decision.requireApproval(
        { code: "payment.large", message: "Payments need finance approval" },
        { quorum: 1, roles: ["finance"], timeout: "1 hour" }
      )
      : Decision.notApplicable)
})

/** Seals every event like a persistent sink and keeps only the head (see the header). */
const SealingSink = Layer.sync(AuditSink.AuditSink, () => {
  let head: Audit.Anchor | null = null
  return AuditSink.AuditSink.of({
    append: (entry) =>
      Effect.sync(() => {
        const event = Audit.seal(entry, head)
        head = { sequence: event.sequence, hash: event.hash }
        return event
      }),
    read: () => Effect.succeed([]),
    head: Effect.sync(() => Option.fromNullable(head))
  })
})

/**
 * One fresh runtime (and store) per scenario. The sweeper runs at its
 * default interval, as in production, unless the scenario times a sweep itself.
 */
const makeRuntime = (sweepInterval: Duration.DurationInput = "5 seconds") =>
  ManagedRuntime.make(
    // One requester parks up to 100,000 approvals here: far past the default caps.
    Governance.layer({
      policySet,
      sweepInterval,
      maxPendingPerRequester: 1_000_000,
      maxPendingPerTenant: 1_000_000
    }).pipe(
      Layer.provideMerge(ApprovalStore.layerMemory),
      Layer.provideMerge(SealingSink),
      Layer.provide(IdentityLive)
    )
  )

const payment = (i: number) =>
  Action.make({
    actor: { id: "agent-7", kind: "agent", tenant: "acme" },
    kind: "tool",
    name: "payments.transfer",
    resource: { type: "account", id: "acc-1" },
    payload: { amount: 5_000 + i, currency: "EUR", to: `DE89-${i}` },
    requestId: `req-${i}`
  })

// -----------------------------------------------------------------------------
// helpers
// -----------------------------------------------------------------------------

/** With GAVEL_BENCH_HEAP_SNAPSHOTS=dir, heap snapshots around parking go there (for profiling; slow). */
const snapshot = (name: string): void => {
  const dir = process.env.GAVEL_BENCH_HEAP_SNAPSHOTS
  if (dir !== undefined && dir !== "") console.error(`approvals: wrote ${v8.writeHeapSnapshot(`${dir}/${name}.heapsnapshot`)}`)
}

/** mulberry32: a small seeded generator, so every run approves in the same order. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const shuffled = (n: number, seed: number): Uint32Array => {
  const random = seeded(seed)
  const order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = order[i]!
    order[i] = order[j]!
    order[j] = t
  }
  return order
}

/** The value of a successful exit; otherwise records the failure. */
const successOf = <A, E>(exit: Exit.Exit<A, E>, errors: Array<string>, what: string): A | undefined => {
  if (Exit.isSuccess(exit)) return exit.value
  errors.push(`${what}: failed: ${String(exit.cause)}`)
  return undefined
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// -----------------------------------------------------------------------------
// cycles
// -----------------------------------------------------------------------------

interface CyclesResult {
  readonly perSecond: number
  readonly errors: ReadonlyArray<string>
}

const measureCycles = async (n: number): Promise<CyclesResult> => {
  const runtime = makeRuntime()
  const action = payment(0)
  const errors: Array<string> = []
  let ran = 0
  const work = (a: Action.Action) =>
    Effect.sync(() => {
      ran++
      return a
    })
  const perBatch = Math.max(1, Math.floor(n / BATCHES))
  const cycles = (count: number) =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      for (let i = 0; i < count; i++) {
        const submission = yield* governance.submit(action)
        if (submission._tag !== "Pending") return yield* Effect.dieMessage(`submit answered ${submission._tag}`)
        yield* governance.approve(submission.approvalId, approver)
        const ranWith = yield* governance.resume(submission.approvalId, submission.action, work)
        if (ranWith !== action) return yield* Effect.dieMessage("the work ran with another action")
      }
    })
  const rates = successOf(await runtime.runPromiseExit(Effect.gen(function*() {
    yield* cycles(perBatch) // warm-up
    const rates: Array<number> = []
    for (let b = 0; b < BATCHES; b++) {
      const start = performance.now()
      yield* cycles(perBatch)
      rates.push((perBatch * 1000) / (performance.now() - start))
    }
    return rates
  })), errors, "cycles")
  await runtime.dispose()
  if (rates !== undefined && ran !== perBatch * (BATCHES + 1)) {
    errors.push(`cycles: the work ran ${ran} times for ${perBatch * (BATCHES + 1)} cycles`)
  }
  return { perSecond: rates === undefined ? NaN : quantile(rates, 0.5), errors }
}

// -----------------------------------------------------------------------------
// parked
// -----------------------------------------------------------------------------

interface ParkedResult {
  readonly parked: number
  readonly bytesPerParked: number
  readonly heapMB: number
  readonly solo: { readonly p50: number; readonly p99: number; readonly count: number }
  readonly burst: { readonly p50: number; readonly p99: number; readonly count: number }
  readonly errors: ReadonlyArray<string>
}

const measureParked = async (p: number): Promise<ParkedResult> => {
  const errors: Array<string> = []
  const runtime = makeRuntime()
  const governance = await runtime.runPromise(Governance.Governance)
  const store = await runtime.runPromise(ApprovalStore.ApprovalStore)

  // Everything the caller owns is allocated before the baseline.
  const actions = Array.from({ length: p }, (_, i) => payment(i))
  const approvedAt = new Float64Array(p)
  const ranAt = new Float64Array(p)
  const runs = new Uint32Array(p)
  let wrongAction = 0
  let done = 0
  const works = actions.map((own, i) => (a: Action.Action) =>
    Effect.sync(() => {
      ranAt[i] = performance.now()
      runs[i] = runs[i]! + 1
      done++
      if (a !== own) wrongAction++
      return i
    })
  )
  const fibers = new Array<Fiber.RuntimeFiber<number, unknown>>(p)
  const approvalIds = new Array<string>(p).fill("")

  const before = settledHeap()
  snapshot(`parked-${p}-before`)
  // One root fiber per parked call, as a server runs one per request.
  for (let i = 0; i < p; i++) fibers[i] = runtime.runFork(governance.enforce(actions[i]!, works[i]!))
  let pending = 0
  let lastProgress = performance.now()
  while (pending < p) {
    await sleep(5)
    const now = (await runtime.runPromise(store.listPending())).length
    if (now > pending) lastProgress = performance.now()
    pending = now
    if (performance.now() - lastProgress > 10_000) {
      errors.push(`parked ${p}: only ${pending} approvals pending after 10 s without progress`)
      break
    }
  }
  // Let the last fibers get from `create` to waiting on their approval.
  for (let k = 0; k < 10; k++) await nextTurn()
  const after = settledHeap()
  snapshot(`parked-${p}-after`)

  for (const request of await runtime.runPromise(store.listPending())) {
    const i = Number(request.requestId.slice("req-".length))
    if (!(i >= 0 && i < p) || approvalIds[i] !== "") errors.push(`parked ${p}: unexpected approval ${request.id}`)
    else approvalIds[i] = request.id
  }

  const approveOne = (i: number) => {
    approvedAt[i] = performance.now()
    return runtime.runPromise(governance.approve(approvalIds[i]!, approver)).then(
      (request) => {
        if (request.status !== "approved") errors.push(`parked ${p}: approval of call ${i} left it ${request.status}`)
      },
      (error: unknown) => void errors.push(`parked ${p}: approving call ${i} failed: ${String(error)}`)
    )
  }
  const waitFor = async (target: number) => {
    const start = performance.now()
    while (done < target) {
      await nextTurn()
      if (performance.now() - start > 10_000) {
        errors.push(`parked ${p}: the work ran for ${done} calls, ${target} expected`)
        return false
      }
    }
    return true
  }

  // Approvals arrive in a random order. The first SOLO one at a time, each
  // waiting for its work: the latency of an idle server. The rest in bursts
  // of BURST concurrent approve calls (BURST approvers clicking at once), each
  // burst waiting for its works before the next: the latency under load,
  // which includes queueing behind the other approvals of the burst.
  const order = shuffled(p, 0x9e3779b9)
  const solo = Math.min(SOLO, Math.floor(p / 10))
  let ok = errors.length === 0
  for (let k = 0; ok && k < solo; k++) {
    await approveOne(order[k]!)
    ok = await waitFor(k + 1)
  }
  for (let k = solo; ok && k < p; k += BURST) {
    const end = Math.min(p, k + BURST)
    const calls: Array<Promise<void>> = []
    for (let j = k; j < end; j++) calls.push(approveOne(order[j]!))
    await Promise.all(calls)
    ok = await waitFor(end)
  }

  let failures = 0
  let wrongResult = 0
  ;(await runtime.runPromise(Fiber.awaitAll(fibers))).forEach((exit, i) => {
    if (Exit.isFailure(exit)) {
      if (failures++ === 0) errors.push(`parked ${p}: call ${i} failed: ${String(exit.cause)}`)
    } else if (exit.value !== i) wrongResult++
  })
  // The finished fibers are the caller's to drop; they must not count as what gavel keeps.
  fibers.length = 0
  if (failures > 1) errors.push(`parked ${p}: ${failures} calls failed`)
  if (wrongResult > 0) errors.push(`parked ${p}: ${wrongResult} calls returned another call's result`)
  if (wrongAction > 0) errors.push(`parked ${p}: ${wrongAction} works ran with another call's action`)
  let notOnce = 0
  for (let i = 0; i < p; i++) if (runs[i] !== 1) notOnce++
  if (notOnce > 0) errors.push(`parked ${p}: ${notOnce} works did not run exactly once`)

  const latencies = new Float64Array(p)
  for (let i = 0; i < p; i++) latencies[i] = ranAt[i]! - approvedAt[i]!
  const soloLatencies = Float64Array.from(order.subarray(0, solo), (i) => latencies[i]!)
  const burstLatencies = Float64Array.from(order.subarray(solo), (i) => latencies[i]!)
  snapshot(`parked-${p}-consumed`)
  await runtime.dispose()
  return {
    parked: p,
    bytesPerParked: (after - before) / p,
    heapMB: (after - before) / 1024 / 1024,
    solo: { p50: quantile(soloLatencies, 0.5), p99: quantile(soloLatencies, 0.99), count: solo },
    burst: { p50: quantile(burstLatencies, 0.5), p99: quantile(burstLatencies, 0.99), count: p - solo },
    errors
  }
}

// -----------------------------------------------------------------------------
// sweep
// -----------------------------------------------------------------------------

interface SweepResult {
  readonly due: number
  readonly seconds: number
  readonly errors: ReadonlyArray<string>
}

const measureSweep = async (d: number): Promise<SweepResult> => {
  const errors: Array<string> = []
  // The sweep is timed here: the sweeper must not run it first.
  const runtime = makeRuntime("1 hour")
  const governance = await runtime.runPromise(Governance.Governance)
  const store = await runtime.runPromise(ApprovalStore.ApprovalStore)
  const action = payment(0)

  // One approval opened the ordinary way (it stays pending, not due), and
  // copies of it, all due a second ago.
  const first = await runtime.runPromise(governance.submit(action))
  if (first._tag !== "Pending") {
    await runtime.dispose()
    return { due: d, seconds: NaN, errors: [`sweep ${d}: submit answered ${first._tag}`] }
  }
  const template = await runtime.runPromise(store.get(first.approvalId))
  const past = new Date(Date.now() - 1_000)
  const ids = new Array<string>(d)
  const opened = successOf(
    await runtime.runPromiseExit(Effect.gen(function*() {
      for (let i = 0; i < d; i++) {
        const id = `${template.id}-due-${i}`
        ids[i] = id
        yield* store.create({
          ...template,
          id,
          requestId: `req-due-${i}`,
          requirement: { ...template.requirement, expiresAt: past }
        })
      }
      // The copies did not go through `open`: the pending gauge learns of them here.
      yield* Metrics.adjustApprovalsPending(d)
      return true
    })),
    errors,
    `sweep ${d}: creating`
  )

  // A call parked on every approval, as a server that answered 202 keeps one per request.
  let woken = 0
  let notExpired = 0
  const works = (_: Action.Action) => Effect.sync(() => void notExpired++)
  const parked = ids.map((id) =>
    runtime.runFork(
      governance.resume(id, action, works).pipe(
        Effect.catchAllCause((cause) =>
          Effect.sync(() => {
            woken++
            const failure = Cause.failureOption(cause)
            if (failure._tag === "None" || failure.value._tag !== "ApprovalExpired") notExpired++
          })
        )
      )
    )
  )
  for (let k = 0; k < 10; k++) await nextTurn()

  let seconds = NaN
  if (opened !== undefined) {
    const start = performance.now()
    const expired = successOf(await runtime.runPromiseExit(governance.expireDue), errors, `sweep ${d}`)
    seconds = (performance.now() - start) / 1000
    if (expired !== undefined && expired.length !== d) {
      errors.push(`sweep ${d}: expireDue expired ${expired.length} approvals, ${d} expected`)
    }
    await runtime.runPromise(Fiber.awaitAll(parked))
    const statuses = await runtime.runPromise(Effect.forEach(ids, (id) => Effect.map(store.get(id), (r) => r.status)))
    const other = statuses.filter((status) => status !== "expired").length
    if (other > 0) errors.push(`sweep ${d}: ${other} approvals did not end expired`)
    if (woken !== d) errors.push(`sweep ${d}: ${woken} of ${d} parked calls were woken`)
    if (notExpired > 0) errors.push(`sweep ${d}: ${notExpired} parked calls did not fail with ApprovalExpired`)
  }
  await runtime.dispose()
  return { due: d, seconds, errors }
}

// -----------------------------------------------------------------------------
// report
// -----------------------------------------------------------------------------

const kilo = (n: number) => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n))

/**
 * Runs every scenario and returns its rows: the cycle rate ("approvals"),
 * and heap, approve → work latency and the sweep of due approvals
 * ("scale"). A work that did not run exactly once with its own action, an
 * approval that did not expire, any failure, is an error.
 */
export const measureApprovals = async (): Promise<Part> => {
  const rows: Array<Row> = []
  const errors: Array<string> = []

  progress(`approvals: create → approve → resume → consume, ${CYCLES} cycles`)
  const cycles = await measureCycles(CYCLES)
  errors.push(...cycles.errors)
  rows.push({
    section: "approvals",
    name: "create → approve → resume → consume",
    unit: "cycles/s",
    median: cycles.perSecond,
    note: `in-memory store, immediate Identity, 1 sync policy (quorum 1); ${CYCLES} cycles, median of ${BATCHES} batches`
  })

  for (const p of PARKED) {
    progress(`approvals: ${kilo(p)} parked calls`)
    const r = await measureParked(p)
    errors.push(...r.errors)
    const name = `${kilo(p)} parked`
    const p99Goal = (p99: number) => ({ text: `p99 < ${GOAL_P99_MS} ms`, met: p99 < GOAL_P99_MS })
    rows.push(
      {
        section: "scale",
        name: `${name}: heap per parked call`,
        unit: "bytes",
        median: r.bytesPerParked,
        goal: {
          text: `< ${GOAL_BYTES_PER_PARKED} B (${GOAL_HEAP_MB_100K} MB / 100k)`,
          met: r.bytesPerParked < GOAL_BYTES_PER_PARKED
        }
      },
      {
        section: "scale",
        name: `${name}: heap, all parked`,
        unit: "MB",
        median: r.heapMB,
        goal: p === 100_000 ? { text: `< ${GOAL_HEAP_MB_100K} MB`, met: r.heapMB < GOAL_HEAP_MB_100K } : undefined
      },
      {
        section: "scale",
        name: `${name}: approve → work, one at a time`,
        unit: "ms",
        median: r.solo.p50,
        p99: r.solo.p99,
        goal: p99Goal(r.solo.p99),
        note: `${r.solo.count} approvals, each after the previous work ran`
      },
      {
        section: "scale",
        name: `${name}: approve → work, bursts of ${BURST}`,
        unit: "ms",
        median: r.burst.p50,
        p99: r.burst.p99,
        goal: p99Goal(r.burst.p99),
        note: `${r.burst.count} approvals, ${BURST} concurrent approve calls at a time`
      }
    )
  }

  for (const d of DUE) {
    progress(`approvals: sweeping ${kilo(d)} due approvals`)
    const r = await measureSweep(d)
    errors.push(...r.errors)
    rows.push({
      section: "scale",
      name: `${kilo(d)} due approvals: one expireDue sweep`,
      unit: "s",
      median: r.seconds,
      note: "store sweep, approval.expired events (sealed), waking a parked resume per approval"
    })
  }

  return { rows, errors: errors.map((error) => `approvals: ${error}`) }
}
