/**
 * The async path's overhead: three external checks (identity, ticketing,
 * compliance) against immediate fakes, evaluated into a full DecisionRecord
 * through `PolicySet.evaluate`, next to the same three decisions written as
 * sync leaves. What is measured is gavel's and Effect's overhead per
 * decision, not any system's latency.
 */
import { Action, Compliance, Decision, Identity, Policy, PolicySet, Ticketing } from "@gavel/core"
import { Fakes } from "@gavel/testing"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"

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

export interface AsyncRow {
  readonly name: string
  readonly microsPerDecision: number
}

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

export const measureAsync = async (n: number): Promise<ReadonlyArray<AsyncRow>> => {
  const allowed = (record: { readonly decision: Decision.Decision }) => record.decision._tag === "Allow"
  const sequential = PolicySet.evaluate(sequentialSet, action)
  const concurrent = PolicySet.evaluate(concurrentSet, action)
  const rows = [
    {
      name: "sync path, the 3 checks as sync leaves",
      microsPerDecision: timeSync(Math.max(n, 50_000), () => allowed(PolicySet.evaluateSync(syncSet, action)))
    },
    {
      name: "baseline: Effect.all of 3 succeeds",
      microsPerDecision: await timeAsync(n, () => Effect.runPromise(baselineSequential))
    },
    {
      name: "baseline: Effect.all, unbounded concurrency",
      microsPerDecision: await timeAsync(n, () => Effect.runPromise(baselineConcurrent))
    },
    {
      name: "async, all + failClosed (runPromise)",
      microsPerDecision: await timeAsync(n, () => runtime.runPromise(sequential).then(allowed))
    },
    {
      name: "async, allConcurrent + timeout + failClosed",
      microsPerDecision: await timeAsync(n, () => runtime.runPromise(concurrent).then(allowed))
    }
  ]
  await runtime.dispose()
  return rows
}

