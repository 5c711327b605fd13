/**
 * The async path.
 *
 * - Virtual latency: the same three external checks (identity, ticketing,
 *   compliance), each answering after 20 ms of virtual time (TestClock), run
 *   with `Policy.all` (one after the other) and `Policy.allConcurrent`: the
 *   concurrent evaluation must be decided at the slowest check's latency
 *   (20 ms), the sequential one at the sum (60 ms).
 * - Overhead: the three checks against immediate fakes, evaluated into a full
 *   DecisionRecord through `PolicySet.evaluate`, next to the same three
 *   decisions written as sync leaves and next to Effect itself running three
 *   succeeding effects. What is measured is gavel's and Effect's overhead per
 *   decision, not any system's latency.
 */
import { Action, Compliance, Decision, Identity, Policy, PolicySet, Ticketing } from "@gavel/core"
import { Fakes } from "@gavel/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import { type Part, progress, type Row } from "./report.js"

export const action = Action.make({
  actor: { id: "agent-1", kind: "agent", roles: ["operator"] },
  kind: "tool",
  name: "deploy",
  metadata: { ticket: "CHG-1" }
})

const checks = [Identity.requireRole("operator"), Ticketing.requireStatus("approved"), Compliance.requireCompliant()]

const sequentialSet = PolicySet.unsafeMake({
  id: "async-3-all",
  version: "1",
  policy: Policy.all(checks).pipe(Policy.failClosed)
})

const concurrentSet = PolicySet.unsafeMake({
  id: "async-3-concurrent",
  version: "1",
  policy: Policy.allConcurrent(checks).pipe(Policy.timeout("2 seconds"), Policy.failClosed)
})

const syncSet = PolicySet.unsafeMake({
  id: "sync-3",
  version: "1",
  policy: Policy.all([
    Policy.make("role", (a) => (a.actor.roles.includes("operator") ? Decision.allow() : Decision.notApplicable)),
    Policy.make("ticket", (a) =>
      a.metadata.ticket === "CHG-1"
        ? Decision.allow({ code: "ticket.verified", message: "ok", evidenceRefs: ["ticket:CHG-1"] })
        : Decision.deny({ code: "ticket.missing", message: "no" })),
    Policy.make("compliance", () => Decision.notApplicable)
  ])
})

const runtime = ManagedRuntime.make(Fakes.layer({
  identity: { principals: { "agent-1": { roles: ["operator"] } } },
  ticketing: { tickets: { "CHG-1": { status: "approved" } } }
}))

// What Effect itself costs for the same shapes, with no gavel at all.
const three = [Effect.succeed(true), Effect.succeed(true), Effect.succeed(true)]
const baselineSequential = Effect.map(Effect.all(three), (xs) => xs.every(Boolean))
const baselineConcurrent = Effect.map(Effect.all(three, { concurrency: "unbounded" }), (xs) => xs.every(Boolean))

/** Mean µs per call over `n` calls, after as many warm-up calls. */
const timeSync = (n: number, run: () => boolean): number => {
  for (let i = 0; i < n; i++) if (!run()) throw new Error("unexpected decision")
  const start = performance.now()
  for (let i = 0; i < n; i++) if (!run()) throw new Error("unexpected decision")
  return ((performance.now() - start) * 1000) / n
}

/** The same, for calls answered by a promise, one at a time. */
const timeAsync = async (n: number, run: () => Promise<boolean>): Promise<number> => {
  for (let i = 0; i < n; i++) if (!(await run())) throw new Error("unexpected decision")
  const start = performance.now()
  for (let i = 0; i < n; i++) if (!(await run())) throw new Error("unexpected decision")
  return ((performance.now() - start) * 1000) / n
}

const LATENCY = "20 millis"

const fakesWithLatency = Fakes.layer({
  identity: { principals: { "agent-1": { roles: ["operator"] } }, latency: LATENCY },
  ticketing: { tickets: { "CHG-1": { status: "approved" } }, latency: LATENCY },
  compliance: { latency: LATENCY }
})

/** Virtual ms from the start of the evaluation to its record, under TestClock. */
const virtualMillis = (set: PolicySet.PolicySet<Identity.Identity | Ticketing.Ticketing | Compliance.Compliance>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.timed(PolicySet.evaluate(set, action)))
    yield* TestClock.adjust("1 second")
    const [elapsed, record] = yield* Fiber.join(fiber)
    if (record.decision._tag !== "Allow") return yield* Effect.dieMessage(`decided ${record.decision._tag}`)
    return Duration.toMillis(elapsed)
  }).pipe(Effect.provide(fakesWithLatency), Effect.provide(TestContext.TestContext), Effect.runPromise)

export const measureAsync = async (n: number): Promise<Part> => {
  const errors: Array<string> = []
  progress("async: three 20 ms checks on virtual time")
  const rows: Array<Row> = []
  const sequentialMs = await virtualMillis(sequentialSet)
  const concurrentMs = await virtualMillis(concurrentSet)
  rows.push({
    section: "async",
    name: "3 checks x 20 ms, all (sequential)",
    unit: "virtual ms",
    median: sequentialMs,
    note: "the sum of the latencies"
  })
  rows.push({
    section: "async",
    name: "3 checks x 20 ms, allConcurrent",
    unit: "virtual ms",
    median: concurrentMs,
    ratio: concurrentMs / sequentialMs,
    goal: { text: "= the slowest check (20 ms)", met: concurrentMs === 20 }
  })
  if (sequentialMs !== 60) errors.push(`async: the sequential evaluation took ${sequentialMs} virtual ms, not 60`)

  progress(`async: overhead per decision, ${n} calls per row`)
  const allowed = (record: { readonly decision: Decision.Decision }) => record.decision._tag === "Allow"
  const sequential = PolicySet.evaluate(sequentialSet, action)
  const concurrent = PolicySet.evaluate(concurrentSet, action)
  const overhead: ReadonlyArray<readonly [string, number]> = [
    [
      "sync path, the 3 checks as sync leaves",
      timeSync(n, () => allowed(PolicySet.evaluateSync(syncSet, action)))
    ],
    ["baseline: Effect.all of 3 succeeds", await timeAsync(n, () => Effect.runPromise(baselineSequential))],
    [
      "baseline: Effect.all, unbounded concurrency",
      await timeAsync(n, () => Effect.runPromise(baselineConcurrent))
    ],
    ["async, all + failClosed (runPromise)", await timeAsync(n, () => runtime.runPromise(sequential).then(allowed))],
    [
      "async, allConcurrent + timeout + failClosed",
      await timeAsync(n, () => runtime.runPromise(concurrent).then(allowed))
    ]
  ]
  await runtime.dispose()
  const floor = overhead[1]![1]
  for (const [name, micros] of overhead) {
    rows.push({
      section: "async",
      name,
      unit: "µs/decision",
      median: micros,
      ratio: micros / floor,
      note: `mean of ${n} calls${name === "baseline: Effect.all of 3 succeeds" ? "; the floor of this part" : ""}`
    })
  }
  return { rows, errors }
}
