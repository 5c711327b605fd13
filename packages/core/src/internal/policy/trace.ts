/**
 * Tracing an evaluation: a `gavel.evaluate` span, and a `gavel.policy` span
 * for each policy under it, created only when a tracer is installed. Span
 * attributes are only ever ids, result tags, failure kinds and reason codes.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as EffectContext from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import * as Decision from "../../Decision.js"
import { describeDefect, failureKind } from "./defect.js"
import type { Defect } from "./node.js"

/**
 * The span of a policy evaluation; children are named {@link policySpanName}.
 *
 * @internal
 */
export const evaluateSpanName = "gavel.evaluate"

/** @internal */
export const policySpanName = "gavel.policy"

/**
 * The tracing state of one evaluation. Span attributes are only ever ids,
 * result tags, failure kinds and reason codes: never a payload, metadata or
 * actor attribute value, never a reason message (which may quote them).
 *
 * @internal
 */
export interface Trace {
  readonly tracer: Tracer.Tracer
  readonly clock: Clock.Clock
  /** False under `Effect.withTracerTiming(false)`: spans then carry no times, as Effect's own do. */
  readonly timing: boolean
  /** The `gavel.evaluate` span, parent of every policy span. */
  readonly span: Tracer.Span
  /**
   * Spans of checks that failed or were interrupted, left open until the
   * failure is given a meaning (`Policy.failClosed`, `Policy.onFailure`), so
   * that the span carries the result recorded in the explain trail. Whatever
   * is left when the evaluation ends is ended as it stands.
   */
  readonly unsettled: Array<Unsettled>
}

interface Unsettled {
  readonly policyId: string
  readonly span: Tracer.Span
  readonly endTime: bigint
  readonly exit: Exit.Exit<unknown, unknown>
}

/** @internal */
export const makeTrace = (tracer: Tracer.Tracer, clock: Clock.Clock, timing: boolean, span: Tracer.Span): Trace => ({
  tracer,
  clock,
  timing,
  span,
  unsettled: []
})

const noLinks: ReadonlyArray<Tracer.SpanLink> = []
const zeroNanos = BigInt(0)

const spanTime = (trace: Trace, nanos: bigint): bigint => (trace.timing ? nanos : zeroNanos)

const startPolicySpan = (trace: Trace, policyId: string, startNanos: bigint): Tracer.Span => {
  const span = trace.tracer.span(
    policySpanName,
    Option.some(trace.span),
    EffectContext.empty(),
    noLinks,
    spanTime(trace, startNanos),
    "internal"
  )
  span.attribute("gavel.policy.id", policyId)
  return span
}

const annotateResult = (span: Tracer.Span, result: Decision.Result): void => {
  span.attribute("gavel.policy.result", result._tag)
  span.attribute("gavel.policy.reason_codes", Decision.reasonCodes(result))
}

/**
 * A span for a synchronous call, measured by the caller with the trace's
 * clock, with an event for each defect the call reported (`defects` from
 * `mark` on).
 *
 * @internal
 */
export const tracePolicy = (
  trace: Trace,
  policyId: string,
  result: Decision.Result,
  startNanos: bigint,
  endNanos: bigint,
  defects?: ReadonlyArray<Defect> | undefined,
  mark = 0
): void => {
  const span = startPolicySpan(trace, policyId, startNanos)
  annotateResult(span, result)
  traceDefects(trace, span, defects, mark, endNanos)
  span.end(spanTime(trace, endNanos), Exit.void)
}

/** The defects recorded since `mark`, each as an event on `span` ({@link traceDefect}). */
const traceDefects = (
  trace: Trace,
  span: Tracer.Span,
  defects: ReadonlyArray<Defect> | undefined,
  mark: number,
  nanos: bigint
): void => {
  if (defects === undefined) return
  for (let i = mark; i < defects.length; i++) traceDefect(trace, span, defects[i]!, nanos)
}

/**
 * A defect as an OpenTelemetry `exception` event on the policy's span: that
 * the policy failed closed on a bug, how, and what it threw (type and
 * message; the stack goes to the log). The one place a span carries text
 * that is not gavel's own: the host needs it to fix the policy, and it is a
 * bug report, not a decision (the reason only says `policy.defect`).
 *
 * @internal
 */
export const traceDefect = (trace: Trace, span: Tracer.Span, defect: Defect, nanos: bigint): void => {
  const error = describeDefect(defect)
  span.event("exception", spanTime(trace, nanos), {
    "gavel.policy.id": defect.policyId,
    "gavel.policy.defect": defect.kind,
    "exception.type": error.name,
    "exception.message": error.message
  })
}

/**
 * What a failed check's span ends with. Not the error itself: its message
 * and fields may quote what the check saw (an `ExternalCheckFailed` detail,
 * a host error), and the tracer would export them with the span.
 */
class PolicyCheckFailed extends Error {
  constructor(policyId: string, kind: string) {
    super(`Policy "${policyId}" failed: ${kind}`)
    this.name = "PolicyCheckFailed"
    // No captured stack: it would only show gavel's internals.
    this.stack = `${this.name}: ${this.message}`
  }
}

const failedExit = (policyId: string, kind: string): Exit.Exit<unknown, unknown> =>
  Exit.fail(new PolicyCheckFailed(policyId, kind))

/** The kind of a failure: a gavel failure kind, `failed` for any other error, `interrupted`. */
const causeKind = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") return failureKind(failure.value) ?? "failed"
  return Cause.isInterruptedOnly(cause) ? "interrupted" : "failed"
}

/**
 * Wraps the run of an effectful leaf in its span: created where interruption
 * cannot separate it from its end, the parent of whatever spans the check
 * makes, ended with the result on success; on failure or interruption kept
 * for {@link settle}.
 *
 * @internal
 */
export const traceCheck = <A extends Decision.Result, E, R>(
  trace: Trace,
  policyId: string,
  startNanos: bigint,
  run: (span: Tracer.Span) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) => {
    const span = startPolicySpan(trace, policyId, startNanos)
    return Effect.onExit(restore(Effect.withParentSpan(run(span), span)), (exit) =>
      Effect.sync(() => {
        const endNanos = trace.clock.unsafeCurrentTimeNanos()
        if (exit._tag === "Success") {
          annotateResult(span, exit.value)
          span.end(spanTime(trace, endNanos), Exit.void)
        } else {
          const kind = causeKind(exit.cause)
          span.attribute("gavel.policy.failure", kind)
          trace.unsettled.push({
            policyId,
            span,
            endTime: spanTime(trace, endNanos),
            // An interruption carries fiber ids only; anything else is replaced.
            exit: Cause.isInterruptedOnly(exit.cause) ? exit : failedExit(policyId, kind)
          })
        }
      }))
  })

/**
 * Ends the span of the check whose failure became `result` (the latest
 * unsettled one with that id), or, when no check span has that id (a
 * combinator's timeout), a span of its own from `startNanos`.
 *
 * @internal
 */
export const settle = (
  trace: Trace,
  policyId: string,
  kind: string,
  result: Decision.Result,
  startNanos: bigint,
  endNanos: bigint,
  defects?: ReadonlyArray<Defect> | undefined,
  mark = 0
): void => {
  let span: Tracer.Span | undefined
  let endTime = spanTime(trace, endNanos)
  for (let i = trace.unsettled.length - 1; i >= 0; i--) {
    const unsettled = trace.unsettled[i]!
    if (unsettled.policyId === policyId) {
      span = unsettled.span
      endTime = unsettled.endTime
      trace.unsettled.splice(i, 1)
      break
    }
  }
  span ??= startPolicySpan(trace, policyId, startNanos)
  span.attribute("gavel.policy.failure", kind)
  annotateResult(span, result)
  traceDefects(trace, span, defects, mark, endNanos)
  span.end(endTime, failedExit(policyId, kind))
}

/**
 * Ends the spans no failure handler claimed: retried attempts, checks
 * interrupted by `firstDenial` or by the caller.
 *
 * @internal
 */
export const flushTrace = (trace: Trace): void => {
  for (const { endTime, exit, span } of trace.unsettled) span.end(endTime, exit)
  trace.unsettled.length = 0
}
