/**
 * The leaves of a policy tree: a synchronous policy (a plain call, on the
 * hot path of every evaluation) and an effectful check (measured, bounded by
 * the budget, traced). Both read what the policy returned with
 * `result.ts` and fail closed on a defect.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Tracer from "effect/Tracer"
import type * as Action from "../../Action.js"
import * as Decision from "../../Decision.js"
import type * as Explain from "../../Explain.js"
import * as Metrics from "../../Metrics.js"
import { PolicyCancelled } from "../../PolicyError.js"
import { defect } from "./defect.js"
import { limit } from "./failure.js"
import type { Context, DefectKind, Description, Node } from "./node.js"
import { fiberClock, fiberLabels, makeNode, notSync, record } from "./node.js"
import { Flaw, readResult } from "./result.js"
import { traceCheck, traceDefect, tracePolicy } from "./trace.js"

const unset: unique symbol = Symbol("unset")

/** @internal */
export const leaf = (id: string, f: (action: Action.Action) => Decision.Result): Node => {
  // Decisions are immutable values: a policy that returns one of the last two
  // decision objects it returned (constants, such as an allow and a deny)
  // gets the same checked and stamped result, without checking and copying
  // it again.
  // (Not `undefined` at first: a policy may return garbage such as undefined.)
  let value1: unknown = unset
  let checked1: Decision.Result | undefined
  let value2: unknown = unset
  let checked2: Decision.Result | undefined
  const call = (ctx: Context): Decision.Result => {
    let value: unknown
    try {
      value = f(ctx.action)
    } catch (error) {
      return defect(ctx, id, "threw", error)
    }
    if (value === Decision.notApplicable) return Decision.notApplicable
    if (value === value1) return checked1!
    if (value !== value2) {
      const read = readResult(id, value)
      // Not cached: each evaluation reports its defect.
      if (read instanceof Flaw) return defect(ctx, id, read.kind, read.error)
      checked2 = read
      value2 = value
    }
    // The most recent first.
    const checked = checked2!
    value2 = value1
    checked2 = checked1
    value1 = value
    checked1 = checked
    return checked
  }
  // Untimed entries are immutable; when the policy returns the same result
  // object as last time (NotApplicable, a constant decision) its entry is
  // reused, so abstaining costs no allocation on the hot path.
  let lastResult: Decision.Result | undefined
  let lastEntry: Explain.Entry | undefined
  // Timed explain entries and spans read the same clock (the `Clock`
  // service) once before and once after the call.
  const evalMeasured = (ctx: Context): Decision.Result => {
    const trace = ctx.trace
    const clock = ctx.clock ?? trace!.clock
    const mark = ctx.defects?.length ?? 0
    const start = clock.unsafeCurrentTimeNanos()
    const result = call(ctx)
    const end = clock.unsafeCurrentTimeNanos()
    record(ctx, id, result, ctx.clock === undefined ? null : Number(end - start) / 1_000_000)
    if (trace !== undefined) tracePolicy(trace, id, result, start, end, ctx.defects, mark)
    return result
  }
  // The per-policy cost of the sync fast path: kept small, with the timed
  // and traced path out of line, so that V8 inlines it into the combinator
  // loop.
  const evalSync = (ctx: Context): Decision.Result => {
    if (ctx.clock !== undefined || ctx.trace !== undefined) return evalMeasured(ctx)
    const result = call(ctx)
    if (ctx.trail !== undefined) {
      if (result !== lastResult) {
        lastResult = result
        lastEntry = { policyId: id, result, durationMillis: null }
      }
      ctx.trail.push(lastEntry!)
    }
    return result
  }
  return makeNode({ id, isSync: true, evalSync, evalEffect: leafEvalEffect, describe: leafDescribe, named: leafNamed })
}

// The cold methods of every synchronous leaf: one function each, shared (a
// document of 100,000 rules builds 100,000 leaves), called on the leaf.
function leafEvalEffect(this: Node, ctx: Context): Effect.Effect<Decision.Result> {
  return Effect.sync(() => this.evalSync(ctx))
}
function leafDescribe(this: Node): Description {
  return { op: "Leaf", id: this.id, sync: true }
}
function leafNamed(this: Node): ReadonlyArray<Node> {
  return [this]
}

const internallyInterrupted = (policyId: string) =>
  new PolicyCancelled({ policyId, detail: "the check was interrupted by something other than the caller" })

/** @internal */
export const effectLeaf = (
  id: string,
  f: (action: Action.Action) => Effect.Effect<Decision.Result, unknown, unknown>
): Node => {
  const durations = Metrics.externalCheckDurationOf(id)
  const timeouts = Metrics.policyTimeoutsOf(id)
  const self: Node = makeNode({
    id,
    isSync: false,
    evalSync: notSync,
    evalEffect: (ctx) =>
      Effect.withFiberRuntime((fiber) => {
        const clock = fiberClock(fiber)
        const labels = fiberLabels(fiber)
        const start = clock.unsafeCurrentTimeNanos()
        // A run is measured when it completes, whatever the outcome, or when
        // a timeout cuts it; not when firstDenial or the caller interrupts it.
        // (An `onExit` would see every end, at a cost the async path feels.)
        let measured = false
        const measure = (end: bigint) => {
          if (measured) return
          measured = true
          durations.unsafeUpdate(Number(end - start) / 1_000_000, labels)
        }
        const running = ctx.running
        running?.add(measure)
        const complete = (): number => {
          running?.delete(measure)
          const end = clock.unsafeCurrentTimeNanos()
          measure(end)
          return Number(end - start) / 1_000_000
        }
        const done = (result: Decision.Result) => {
          record(ctx, id, result, complete())
          return Effect.succeed(result)
        }
        const failClosed = (span: Tracer.Span | undefined, kind: DefectKind, error: unknown) => {
          const result = defect(ctx, id, kind, error)
          if (span !== undefined) traceDefect(ctx.trace!, span, { policyId: id, kind, error }, clock.unsafeCurrentTimeNanos())
          return done(result)
        }
        const run = (span?: Tracer.Span) => {
          // Called here rather than in an `Effect.suspend`: Effect's runtime
          // itself breaks on some thrown values (a revoked Proxy).
          let check: Effect.Effect<Decision.Result, unknown, unknown>
          try {
            check = f(ctx.action)
          } catch (error) {
            return failClosed(span, "threw", error)
          }
          return limit(check, id, undefined, ctx, clock, timeouts, labels).pipe(
            Effect.matchCauseEffect({
              onSuccess: (value) => {
                const result = readResult(id, value)
                return result instanceof Flaw ? failClosed(span, result.kind, result.error) : done(result)
              },
              onFailure: (cause) => {
                const died = Cause.dieOption(cause)
                if (died._tag === "Some") return failClosed(span, "died", died.value)
                complete()
                // An interruption that reaches here as a failure did not come
                // from the caller (whose interruption cannot be caught): the
                // check aborted itself.
                if (Cause.isInterruptedOnly(cause)) return Effect.fail(internallyInterrupted(id))
                if (ctx.failures !== undefined) {
                  const failure = Cause.failureOption(cause)
                  if (failure._tag === "Some") ctx.failures.push({ policyId: id, kind: "failed", error: failure.value })
                }
                return Effect.failCause(cause)
              }
            })
          )
        }
        return ctx.trace === undefined ? run() : traceCheck(ctx.trace, id, start, run)
      }),
    describe: () => ({ op: "Leaf", id, sync: false }),
    named: () => [self]
  })
  return self
}
