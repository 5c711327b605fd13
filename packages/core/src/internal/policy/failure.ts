/**
 * Failure handling: bounding effectful checks in time (`Policy.timeout`,
 * `Policy.budget`), retrying them, turning gavel's failures into decisions
 * (`Policy.onFailure`, `Policy.failClosed`), and the last line of defence
 * for whatever escaped a tree (a throw out of a synchronous tree, a failure
 * whose type was cast away).
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import type * as MetricLabel from "effect/MetricLabel"
import type * as Schedule from "effect/Schedule"
import type * as Decision from "../../Decision.js"
import * as Metrics from "../../Metrics.js"
import { ofKind } from "../decision.js"
import { type ExternalCheckFailed, type PolicyCancelled, PolicyTimeout } from "../../PolicyError.js"
import { defect, failingPolicy, type FailureKind, failureKind } from "./defect.js"
import type { Context, Description, Node, Running } from "./node.js"
import { appendTrail, fiberClock, fiberLabels, makeNode, notSync, record, subContext } from "./node.js"
import { checkResult } from "./result.js"
import { settle } from "./trace.js"

// -----------------------------------------------------------------------------
// time and retries
// -----------------------------------------------------------------------------

/**
 * Bounds `effect` by the smaller of `own` and what remains of the evaluation
 * budget, failing with `PolicyTimeout` (and interrupting `effect`) when the
 * bound is reached. A cut counts in `gavel_policy_timeouts_total`, and
 * `onCut` is told.
 *
 * @internal
 */
export const limit = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  policyId: string,
  own: Duration.Duration | undefined,
  ctx: Context,
  clock: Clock.Clock,
  timeouts: Metric.Metric.Counter<number>,
  labels: ReadonlyArray<MetricLabel.MetricLabel>,
  onCut?: () => void
): Effect.Effect<A, E | PolicyTimeout, R> => {
  const remaining = ctx.deadline === undefined ? Infinity : ctx.deadline - clock.unsafeCurrentTimeMillis()
  const ownMillis = own === undefined ? Infinity : Duration.toMillis(own)
  const bound = Math.max(0, Math.min(remaining, ownMillis))
  if (bound === Infinity) return effect
  // Built only when needed: a tagged error captures a stack trace.
  const timeout = () => {
    timeouts.unsafeUpdate(1, labels)
    onCut?.()
    return new PolicyTimeout({ policyId, limit: Duration.millis(bound), budget: remaining < ownMillis })
  }
  if (bound === 0) return Effect.fail(timeout())
  return Effect.timeoutFail(effect, { duration: Duration.millis(bound), onTimeout: timeout })
}

/** A node that only wraps the effectful evaluation of `self`. */
const wrap = (
  self: Node,
  describe: () => Description,
  evalEffect: (ctx: Context) => Effect.Effect<Decision.Result, unknown, unknown>
): Node =>
  self.isSync ? self : makeNode({
    id: self.id,
    isSync: false,
    evalSync: notSync,
    evalEffect,
    describe,
    named: () => self.named()
  })

/** @internal */
export const timeout = (self: Node, duration: Duration.Duration): Node => {
  const timeouts = Metrics.policyTimeoutsOf(self.id)
  return wrap(
    self,
    () => ({ op: "Timeout", millis: Duration.toMillis(duration), child: self.describe() }),
    (ctx) =>
      Effect.withFiberRuntime((fiber) => {
        const clock = fiberClock(fiber)
        // The checks in flight under this timeout, to measure if it cuts
        // them; an enclosing timeout's cut reaches them through this one.
        const running: Running = new Set()
        const cut = (end: bigint) => {
          for (const measure of running) measure(end)
          running.clear()
        }
        ctx.running?.add(cut)
        return limit(
          self.evalEffect({ ...ctx, running }),
          self.id,
          duration,
          ctx,
          clock,
          timeouts,
          fiberLabels(fiber),
          () => cut(clock.unsafeCurrentTimeNanos())
        )
      })
  )
}

/** @internal */
export const budget = (self: Node, duration: Duration.Duration): Node =>
  wrap(
    self,
    () => ({ op: "Budget", millis: Duration.toMillis(duration), child: self.describe() }),
    (ctx) =>
      Effect.clockWith((clock) => {
        const end = clock.unsafeCurrentTimeMillis() + Duration.toMillis(duration)
        const deadline = ctx.deadline === undefined ? end : Math.min(ctx.deadline, end)
        return self.evalEffect({ ...ctx, deadline })
      })
  )

/**
 * Each attempt writes to its own trail, appended only when the attempt
 * succeeds, so a failed attempt leaves no half-written explanation.
 *
 * @internal
 */
export const retry = (self: Node, schedule: Schedule.Schedule<unknown, any, any>): Node =>
  wrap(
    self,
    () => ({ op: "Retry", child: self.describe() }),
    (ctx) =>
      Effect.retry(
        Effect.suspend(() => {
          const sub = subContext(ctx)
          return Effect.map(self.evalEffect(sub), (result) => {
            appendTrail(ctx, sub)
            return result
          })
        }),
        schedule
      )
  )

// -----------------------------------------------------------------------------
// handled failures
// -----------------------------------------------------------------------------

/** The standard reason for a failure: the contract hosts key their analytics on. */
const failureReason = (error: unknown, policyId: string): Decision.ReasonInput => {
  switch (failureKind(error)) {
    case "timeout":
      return { code: "policy.timeout", message: (error as PolicyTimeout).message, policyId }
    case "unavailable": {
      const e = error as ExternalCheckFailed
      return {
        code: "external.unavailable",
        message: `External check ${e.system}.${e.operation} is unavailable`,
        policyId
      }
    }
    case "cancelled":
      return { code: "external.cancelled", message: (error as PolicyCancelled).message, policyId }
    default:
      return { code: "policy.failed", message: `Policy "${policyId}" failed`, policyId }
  }
}

/** @internal */
export type FailureHandler =
  | "Allow"
  | "Warn"
  | "Defer"
  | "Escalate"
  | "Deny"
  | ((error: any) => Decision.Result)

const handle = (handler: FailureHandler, error: unknown, policyId: string): Decision.Result =>
  typeof handler === "function" ? handler(error) : ofKind(handler, failureReason(error, policyId))

/**
 * Turns handled failures into decisions, recorded in the trail under the id
 * of the policy that failed.
 *
 * @internal
 */
export const onFailure = (
  self: Node,
  handlers: Partial<Record<FailureKind, FailureHandler>>,
  fallback: FailureHandler | undefined
): Node =>
  wrap(
    self,
    () => ({ op: fallback === undefined ? "OnFailure" : "FailClosed", child: self.describe() }),
    (ctx) =>
      Effect.clockWith((clock) => {
        const start = clock.unsafeCurrentTimeNanos()
        return Effect.catchAll(self.evalEffect(ctx), (error) => {
          const kind = failureKind(error)
          const handler = (kind === undefined ? undefined : handlers[kind]) ?? fallback
          if (handler === undefined) return Effect.fail(error)
          const policyId = failingPolicy(error, self.id)
          const mark = ctx.defects?.length ?? 0
          let result: Decision.Result
          try {
            result = checkResult(ctx, policyId, handle(handler, error, policyId))
          } catch (thrown) {
            result = defect(ctx, policyId, "threw", thrown, "failure handler threw")
          }
          // The time until the failure: for a timeout, the limit that was hit.
          const end = clock.unsafeCurrentTimeNanos()
          record(ctx, policyId, result, Number(end - start) / 1_000_000)
          if (ctx.trace !== undefined) settle(ctx.trace, policyId, kind ?? "failed", result, start, end, ctx.defects, mark)
          return Effect.succeed(result)
        })
      })
  )

// -----------------------------------------------------------------------------
// defence in depth
// -----------------------------------------------------------------------------

/**
 * Evaluates a synchronous tree, a throw that escaped it (a bug: leaves and
 * combinators fail closed themselves) denying with `policy.defect` under the
 * root's id.
 *
 * @internal
 */
export const evalSyncSafe = (node: Node, ctx: Context): Decision.Result => {
  try {
    return node.evalSync(ctx)
  } catch (error) {
    const result = defect(ctx, node.id, "threw", error)
    record(ctx, node.id, result, null)
    return result
  }
}

/**
 * What an evaluation whose failure nothing handled becomes. The set's error
 * type is `never`, so such a failure's type was cast away: it denies with
 * `policy.failed`, under the id of the policy that failed with it (else the
 * root's); a defect denies with `policy.defect`. Recorded in the trail, and
 * on the failed check's span. Interruption is not for this: it is no
 * decision.
 *
 * @internal
 */
export const escaped = (ctx: Context, rootId: string, cause: Cause.Cause<unknown>): Decision.Deny => {
  const mark = ctx.defects?.length ?? 0
  const failure = Cause.failureOption(cause)
  let policyId = rootId
  let result: Decision.Deny
  if (failure._tag === "Some") {
    const error = failure.value
    policyId = failingPolicy(error, rootId)
    const failures = ctx.failures
    if (failures !== undefined) {
      for (let i = failures.length - 1; i >= 0; i--) {
        if (failures[i]!.error === error) {
          policyId = failures[i]!.policyId
          break
        }
      }
    }
    result = defect(ctx, policyId, "failed", error)
  } else {
    const died = Cause.dieOption(cause)
    result = defect(ctx, policyId, "died", died._tag === "Some" ? died.value : undefined)
  }
  record(ctx, policyId, result, null)
  if (ctx.trace !== undefined) {
    const now = ctx.trace.clock.unsafeCurrentTimeNanos()
    settle(ctx.trace, policyId, "failed", result, now, now, ctx.defects, mark)
  }
  return result
}
