import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as EffectContext from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as Metric from "effect/Metric"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Tracer from "effect/Tracer"
import { pipeArguments } from "effect/Pipeable"
import * as Action from "../Action.js"
import * as Decision from "../Decision.js"
import type * as Explain from "../Explain.js"
import * as Metrics from "../Metrics.js"
import type { DecisionPolicy, Defect as PolicyDefect } from "../Policy.js"
import { ExternalCheckFailed, PolicyCancelled, PolicyTimeout } from "../PolicyError.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("@gavel/core/Policy") as never

/** @internal */
export interface Context {
  readonly action: Action.Action
  /** Where entries go; `undefined` when the caller only wants the result. */
  readonly trail: Array<Explain.Entry> | undefined
  /** Set when synchronous leaves are to be timed. */
  readonly clock: Clock.Clock | undefined
  /** Absolute deadline (Clock millis) of the evaluation budget, if any. */
  readonly deadline: number | undefined
  /** Set when a tracer is installed: every policy then gets a span. */
  readonly trace: Trace | undefined
  /**
   * Under a `Policy.timeout`: the checks in flight, measured by the timeout
   * if it cuts them (a cut check is interrupted and cannot measure itself).
   */
  readonly running: Running | undefined
  /**
   * Where the policies that failed closed on a defect are reported, with
   * what they threw (for the host's log, never for the record);
   * `undefined` when nobody listens.
   */
  readonly defects: Array<Defect> | undefined
  /**
   * Where effectful leaves note the failures they pass on, so that one that
   * nothing handled (its type was cast away) can be traced to its policy;
   * `undefined` when nobody asks.
   */
  readonly failures: Array<Defect> | undefined
}

/**
 * A policy that failed closed on a defect: what went wrong, and what it
 * threw, died with or failed with (`undefined` for a malformed result).
 *
 * @internal
 */
export interface Defect {
  readonly policyId: string
  readonly kind: DefectKind
  readonly error: unknown
}

/** @internal */
export type DefectKind = PolicyDefect["kind"]

/**
 * What a timeout calls, with the time of the cut, for each check in flight
 * under it (a nested timeout registers its own cut).
 *
 * @internal
 */
export type Running = Set<(endNanos: bigint) => void>

/**
 * The context an evaluation starts with: no budget yet (`Policy.budget` sets
 * one), sync leaves timed only when `clock` is given, spans only when `trace`
 * is.
 *
 * @internal
 */
export const makeContext = (
  action: Action.Action,
  trail: Array<Explain.Entry> | undefined,
  clock: Clock.Clock | undefined,
  trace?: Trace | undefined,
  defects?: Array<Defect> | undefined,
  failures?: Array<Defect> | undefined
): Context => ({ action, trail, clock, deadline: undefined, trace, running: undefined, defects, failures })

// -----------------------------------------------------------------------------
// tracing
// -----------------------------------------------------------------------------

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
 */
const tracePolicy = (
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
  if (defects !== undefined) {
    for (let i = mark; i < defects.length; i++) traceDefect(trace, span, defects[i]!, endNanos)
  }
  span.end(spanTime(trace, endNanos), Exit.void)
}

/**
 * A defect as an OpenTelemetry `exception` event on the policy's span: that
 * the policy failed closed on a bug, how, and what it threw (type and
 * message; the stack goes to the log). The one place a span carries text
 * that is not gavel's own: the host needs it to fix the policy, and it is a
 * bug report, not a decision (the reason only says `policy.defect`).
 */
const traceDefect = (trace: Trace, span: Tracer.Span, defect: Defect, nanos: bigint): void => {
  const error = describeDefect(defect)
  span.event("exception", spanTime(trace, nanos), {
    "gavel.policy.id": defect.policyId,
    "gavel.policy.defect": defect.kind,
    "exception.type": error.name,
    "exception.message": error.message
  })
}

const attempt = <A>(f: () => A, fallback: A): A => {
  try {
    return f()
  } catch {
    return fallback
  }
}

const unreadable = "<unreadable>"

/**
 * The name, message and stack of what a defective policy threw, read without
 * letting the value throw again (it may be a revoked `Proxy`, its getters
 * may throw).
 *
 * @internal
 */
export const describeDefect = (
  defect: Defect
): { readonly name: string; readonly message: string; readonly stack: string | undefined } => {
  if (defect.kind === "malformed") {
    return { name: "MalformedResult", message: "the policy returned a value that is not a well-formed decision", stack: undefined }
  }
  const error = defect.error
  if (attempt(() => error instanceof Error, false)) {
    const e = error as Error
    const name = attempt(() => e.name, unreadable)
    const message = attempt(() => e.message, unreadable)
    const stack = attempt(() => e.stack, undefined)
    return {
      name: typeof name === "string" ? name : unreadable,
      message: typeof message === "string" ? message : unreadable,
      stack: typeof stack === "string" ? stack : undefined
    }
  }
  if (typeof error === "object" && error !== null) {
    const tag = attempt(() => (error as { readonly _tag?: unknown })._tag, undefined)
    const message = attempt(() => (error as { readonly message?: unknown }).message, undefined)
    return {
      name: typeof tag === "string" ? tag : "object",
      message: typeof message === "string" ? message : attempt(() => String(error), unreadable),
      stack: undefined
    }
  }
  return { name: typeof error, message: attempt(() => String(error), unreadable), stack: undefined }
}

/**
 * Logs each defect at error level: the policy, what went wrong and what was
 * thrown (name, message and stack, as annotations too). The record and the
 * audit trail only say `policy.defect` / `policy.failed`.
 *
 * @internal
 */
export const logDefects = (defects: ReadonlyArray<Defect>): Effect.Effect<void> =>
  Effect.forEach(defects, (defect) => {
    const error = describeDefect(defect)
    const code = defect.kind === "failed" ? "policy.failed" : "policy.defect"
    const annotations: Record<string, unknown> = {
      "gavel.policy.id": defect.policyId,
      "gavel.policy.defect": defect.kind,
      "gavel.reason_code": code,
      "gavel.error.name": error.name,
      "gavel.error.message": error.message
    }
    if (error.stack !== undefined) annotations["gavel.error.stack"] = error.stack
    return Effect.annotateLogs(
      Effect.logError(
        `gavel: policy "${defect.policyId}" ${defectMessages[defect.kind]}${
          defect.kind === "malformed" ? "" : ` (${error.name}: ${error.message})`
        }; it denies with ${code}`
      ),
      annotations
    )
  }, { discard: true })

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
 */
const traceCheck = <A extends Decision.Result, E, R>(
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
 */
const settle = (
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
  if (defects !== undefined) {
    for (let i = mark; i < defects.length; i++) traceDefect(trace, span, defects[i]!, endNanos)
  }
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

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

/** @internal */
export const fiberClock = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): Clock.Clock =>
  EffectContext.get(fiber.currentDefaultServices, Clock.Clock)

/** The labels of `Effect.tagMetrics`, added to a metric's own tags as `Metric.update` does. */
const fiberLabels = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): ReadonlyArray<MetricLabel.MetricLabel> =>
  fiber.getFiberRef(FiberRef.currentMetricLabels)

/** @internal */
export type Description =
  | { readonly op: "Leaf"; readonly id: string; readonly sync: boolean }
  | {
    readonly op: "All" | "AllConcurrent" | "FirstDenial" | "FirstApplicable"
    readonly id: string | undefined
    readonly concurrency?: number | "unbounded"
    readonly children: ReadonlyArray<Description>
  }
  | { readonly op: "Narrow"; readonly id: string; readonly child: Description }
  | { readonly op: "When"; readonly child: Description }
  | { readonly op: "ForAction"; readonly names: ReadonlyArray<string>; readonly child: Description }
  | { readonly op: "Timeout" | "Budget"; readonly millis: number; readonly child: Description }
  | { readonly op: "Retry" | "FailClosed" | "OnFailure"; readonly child: Description }

/** @internal */
export interface Node {
  readonly [TypeId]: { readonly _E: (_: never) => unknown; readonly _R: (_: never) => unknown }
  readonly id: string
  readonly isSync: boolean
  /** Only called when `isSync`. */
  readonly evalSync: (ctx: Context) => Decision.Result
  readonly evalEffect: (ctx: Context) => Effect.Effect<Decision.Result, unknown, unknown>
  readonly describe: () => Description
  /** Leaves and decision policies, for id validation. */
  readonly named: () => ReadonlyArray<Node>
  /**
   * Set by `forAction`: the node abstains, leaving no trail entry, for
   * actions of any other name (so combinators may skip it for them).
   */
  readonly actionNames?: ReadonlyArray<string> | undefined
}

const variance = { _E: (_: never) => _, _R: (_: never) => _ }

const Proto = {
  [TypeId]: variance,
  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

/** @internal */
export const makeNode = (fields: Omit<Node, typeof TypeId>): Node => Object.assign(Object.create(Proto), fields)

/** @internal */
export const isNode = (u: unknown): u is Node => typeof u === "object" && u !== null && TypeId in u

const notSync = (): never => {
  throw new Error("gavel: evalSync called on an effectful policy (a bug in @gavel/core)")
}

// -----------------------------------------------------------------------------
// leaves
// -----------------------------------------------------------------------------

/**
 * A policy that throws, dies or returns something that is not a result is a
 * bug in the host's policy. Governance fails closed on it: the evaluation
 * denies with `policy.defect` instead of letting an exception or a garbage
 * value decide. The reason says what happened, never what was thrown (its
 * message may quote what the policy saw, and reasons go to the record and
 * the audit trail): that is reported to `ctx.defects`, for the host's log
 * and the policy's span.
 *
 * @internal
 */
export const defect = (
  ctx: Context | undefined,
  policyId: string,
  kind: DefectKind,
  error: unknown,
  what: string = defectMessages[kind]
): Decision.Deny => {
  ctx?.defects?.push({ policyId, kind, error })
  return Decision.deny({
    code: kind === "failed" ? "policy.failed" : "policy.defect",
    message: `Policy "${policyId}" ${what}; failing closed`,
    policyId
  })
}

const defectMessages: Record<DefectKind, string> = {
  threw: "threw",
  died: "died",
  unreadable: "returned a value that could not be read",
  malformed: "returned a value that is not a well-formed decision (build decisions with the Decision constructors)",
  failed: "failed with an error its type does not declare"
}

/**
 * Why a value a policy returned cannot be used: reading it threw (a revoked
 * `Proxy`, a throwing getter), or it is not a well-formed decision.
 *
 * @internal
 */
export class Flaw {
  constructor(readonly kind: "unreadable" | "malformed", readonly error: unknown) {}
}

const malformed = new Flaw("malformed", undefined)

const outcomes: ReadonlySet<unknown> = new Set<unknown>(Decision.Outcome.literals)
const noStrings: ReadonlyArray<string> = Object.freeze([])

type Fields<K extends string> = { readonly [P in K]?: unknown }

/** A copy of an array of strings, each element read once; `undefined` when it is not one. */
const readStrings = (u: unknown): ReadonlyArray<string> | undefined => {
  if (!Array.isArray(u)) return undefined
  const n = u.length
  if (n === 0) return noStrings
  const out = new Array<string>(n)
  for (let i = 0; i < n; i++) {
    const s: unknown = u[i]
    if (typeof s !== "string") return undefined
    out[i] = s
  }
  return out
}

const readAuthority = (u: unknown): Decision.Authority | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const a = u as Fields<"roles" | "principals">
  const roles = readStrings(a.roles)
  const principals = roles === undefined ? undefined : readStrings(a.principals)
  return principals === undefined ? undefined : { roles: roles!, principals }
}

const readRequirement = (u: unknown): Decision.ApprovalRequirement | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const r = u as Fields<"quorum" | "authority" | "separationOfDuties" | "timeout">
  const quorum = r.quorum
  const separationOfDuties = r.separationOfDuties
  const timeout = r.timeout
  if (typeof quorum !== "number" || !Number.isInteger(quorum) || quorum < 1) return undefined
  if (typeof separationOfDuties !== "boolean") return undefined
  const authority = readAuthority(r.authority)
  if (authority === undefined) return undefined
  const out: { -readonly [K in keyof Decision.ApprovalRequirement]: Decision.ApprovalRequirement[K] } = {
    quorum,
    authority,
    separationOfDuties
  }
  if (timeout !== undefined) {
    if (!Duration.isDuration(timeout)) return undefined
    out.timeout = timeout
  }
  return out
}

/** A reason, each field read once, with `policyId` stamped when it has none. */
const readReason = (u: unknown, policyId: string): Decision.Reason | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const r = u as Fields<keyof Decision.Reason>
  const code = r.code
  const message = r.message
  const outcome = r.outcome
  const own = r.policyId
  const ruleId = r.ruleId
  const evidenceRefs = r.evidenceRefs
  // The record's schema wants a non-empty, trimmed code.
  if (typeof code !== "string" || code.length === 0 || code.trim() !== code) return undefined
  if (typeof message !== "string" || !outcomes.has(outcome)) return undefined
  if (own !== undefined && typeof own !== "string") return undefined
  const out: { -readonly [K in keyof Decision.Reason]: Decision.Reason[K] } = {
    code,
    message,
    outcome: outcome as Decision.Outcome,
    policyId: own ?? policyId
  }
  if (ruleId !== undefined) {
    if (typeof ruleId !== "string") return undefined
    out.ruleId = ruleId
  }
  if (evidenceRefs !== undefined) {
    const refs = readStrings(evidenceRefs)
    if (refs === undefined) return undefined
    out.evidenceRefs = refs
  }
  return out
}

/**
 * The reason a blocking decision without one gets: every decision that does
 * not proceed says why, in a code the host can key on.
 */
const noReason = (policyId: string, outcome: Decision.Outcome): Decision.Reason => ({
  code: "policy.no_reason",
  message: `Policy "${policyId}" returned ${outcome} without a reason`,
  outcome,
  policyId
})

const decodeAction = Schema.decodeUnknownEither(Action.Action)

/**
 * What a policy returned, as a fresh, plain decision: each field read once
 * (so a getter cannot answer one thing to the check and another to the
 * record), reasons stamped with `policyId`, and `policy.no_reason` added to a
 * decision that does not proceed and gives no reason. Hand-written rather
 * than a Schema decoding because it runs on every applicable result of the
 * sync fast path. `undefined` when it is not well-formed: such a result would
 * crash the record builder or produce a record that does not encode.
 */
const readDecision = (policyId: string, u: unknown, giveReason = true): Decision.Result | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const d = u as Fields<"_tag" | "reasons" | "action" | "authority" | "requirement" | "reviewPaths">
  const tag = d._tag
  if (tag === "NotApplicable") return Decision.notApplicable
  const raw = d.reasons
  if (!Array.isArray(raw)) return undefined
  const n = raw.length
  const reasons = new Array<Decision.Reason>(n)
  for (let i = 0; i < n; i++) {
    const reason = readReason(raw[i], policyId)
    if (reason === undefined) return undefined
    reasons[i] = reason
  }
  let result: Decision.Decision
  switch (tag) {
    case "Allow":
    case "Warn":
      return { _tag: tag, reasons }
    case "Defer":
    case "Deny":
      result = { _tag: tag, reasons }
      break
    case "Transform": {
      // The replacement is decoded (a fresh copy, each field read once) and
      // checked like any action (JSON data within the default limits): the
      // record it goes into must encode, and the runtime will govern it.
      const action = decodeAction(d.action)
      if (Either.isLeft(action)) return undefined
      result = { _tag: tag, reasons, action: action.right }
      break
    }
    case "RequireAcknowledgment": {
      const authority = readAuthority(d.authority)
      if (authority === undefined) return undefined
      result = { _tag: tag, reasons, authority }
      break
    }
    case "RequireApproval": {
      const requirement = readRequirement(d.requirement)
      if (requirement === undefined) return undefined
      result = { _tag: tag, reasons, requirement }
      break
    }
    case "Escalate": {
      const reviewPaths = readStrings(d.reviewPaths)
      if (reviewPaths === undefined) return undefined
      result = { _tag: tag, reasons, reviewPaths }
      break
    }
    default:
      return undefined
  }
  if (n === 0 && giveReason) reasons.push(noReason(policyId, tag))
  return result
}

/**
 * What a policy returned, checked and copied (see {@link readDecision}), or
 * the flaw that makes it unusable. Never throws.
 *
 * @internal
 */
export const readResult = (policyId: string, value: unknown): Decision.Result | Flaw => {
  if (value === Decision.notApplicable) return Decision.notApplicable
  try {
    return readDecision(policyId, value) ?? malformed
  } catch (error) {
    return new Flaw("unreadable", error)
  }
}

/**
 * {@link readResult}, a flaw failing closed with `policy.defect`.
 *
 * @internal
 */
export const checkResult = (ctx: Context | undefined, policyId: string, value: unknown): Decision.Result => {
  const result = readResult(policyId, value)
  return result instanceof Flaw ? defect(ctx, policyId, result.kind, result.error) : result
}

const record = (ctx: Context, policyId: string, result: Decision.Result, durationMillis: number | null): void => {
  if (ctx.trail !== undefined) ctx.trail.push({ policyId, result, durationMillis })
}

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

// -----------------------------------------------------------------------------
// combinators
// -----------------------------------------------------------------------------

const allNamed = (children: ReadonlyArray<Node>) => () => children.flatMap((c) => c.named())

const subContext = (ctx: Context): Context =>
  ctx.trail === undefined
    ? ctx
    : {
      action: ctx.action,
      trail: [],
      clock: ctx.clock,
      deadline: ctx.deadline,
      trace: ctx.trace,
      running: ctx.running,
      defects: ctx.defects,
      failures: ctx.failures
    }

const appendTrail = (ctx: Context, sub: Context | undefined): void => {
  if (sub !== undefined && ctx.trail !== undefined && sub.trail !== ctx.trail) {
    for (const entry of sub.trail!) ctx.trail.push(entry)
  }
}

/**
 * Declaration order, every child runs, results joined. Effectful children are
 * awaited one after the other; synchronous ones are plain calls between them.
 *
 * @internal
 */
export const all = (children: ReadonlyArray<Node>, id: string | undefined): Node => {
  const isSync = children.every((c) => c.isSync)
  const evalSync = (ctx: Context): Decision.Result => {
    let acc: Decision.Result = Decision.notApplicable
    for (let i = 0; i < children.length; i++) {
      const result = children[i]!.evalSync(ctx)
      if (result !== Decision.notApplicable) acc = Decision.combine(acc, result)
    }
    return acc
  }
  const evalEffect = (ctx: Context) =>
    Effect.suspend(() => {
      let acc: Decision.Result = Decision.notApplicable
      const loop = (i: number): Effect.Effect<Decision.Result, unknown, unknown> => {
        while (i < children.length && children[i]!.isSync) {
          acc = Decision.combine(acc, children[i]!.evalSync(ctx))
          i++
        }
        if (i === children.length) return Effect.succeed(acc)
        return Effect.flatMap(children[i]!.evalEffect(ctx), (result) => {
          acc = Decision.combine(acc, result)
          return loop(i + 1)
        })
      }
      return loop(0)
    })
  return makeNode({
    id: id ?? "all",
    isSync,
    evalSync: isSync ? evalSync : notSync,
    evalEffect: isSync ? (ctx) => Effect.sync(() => evalSync(ctx)) : evalEffect,
    describe: () => ({ op: "All", id, children: children.map((c) => c.describe()) }),
    named: allNamed(children)
  })
}

/**
 * Same outcome and trail as {@link all}; effectful children run concurrently
 * (bounded), synchronous ones first as plain calls. Results and trail entries
 * are joined in declaration order after all complete, so the record never
 * depends on completion order.
 *
 * @internal
 */
export const allConcurrent = (
  children: ReadonlyArray<Node>,
  id: string | undefined,
  concurrency: number | "unbounded"
): Node => {
  const base = all(children, id)
  if (base.isSync) {
    return makeNode({
      ...base,
      describe: () => ({ op: "AllConcurrent", id, concurrency, children: children.map((c) => c.describe()) })
    })
  }
  const evalEffect = (ctx: Context) =>
    Effect.suspend(() => {
      const subs = children.map(() => subContext(ctx))
      const results: Array<Decision.Result> = new Array(children.length)
      const effectful: Array<number> = []
      for (let i = 0; i < children.length; i++) {
        if (children[i]!.isSync) results[i] = children[i]!.evalSync(subs[i]!)
        else effectful.push(i)
      }
      return Effect.forEach(
        effectful,
        (i) => Effect.map(children[i]!.evalEffect(subs[i]!), (result) => {
          results[i] = result
        }),
        { concurrency, discard: true }
      ).pipe(Effect.map(() => {
        let acc: Decision.Result = Decision.notApplicable
        for (let i = 0; i < children.length; i++) {
          acc = Decision.combine(acc, results[i]!)
          appendTrail(ctx, subs[i])
        }
        return acc
      }))
    })
  return makeNode({
    ...base,
    evalEffect,
    describe: () => ({ op: "AllConcurrent", id, concurrency, children: children.map((c) => c.describe()) })
  })
}

class FoundDenial {
  constructor(readonly result: Decision.Result) {}
}

/**
 * Stops at the first `Deny`. Synchronous children run first, in declaration
 * order; effectful children then run concurrently (bounded by `concurrency`;
 * 1 means declaration order), and the first `Deny` interrupts the ones still
 * in flight. Because only `Deny` (the absorbing element) stops it, the outcome
 * always equals {@link all}'s; what is lost is the reasons and trail entries of
 * children that did not run.
 *
 * @internal
 */
export const firstDenial = (
  children: ReadonlyArray<Node>,
  id: string | undefined,
  concurrency: number | "unbounded"
): Node => {
  const isSync = children.every((c) => c.isSync)
  const syncChildren = children.filter((c) => c.isSync)
  const effectChildren = children.filter((c) => !c.isSync)
  const runSync = (ctx: Context): Decision.Result => {
    let acc: Decision.Result = Decision.notApplicable
    for (let i = 0; i < syncChildren.length; i++) {
      acc = Decision.combine(acc, syncChildren[i]!.evalSync(ctx))
      if (acc._tag === "Deny") return acc
    }
    return acc
  }
  const evalEffect = (ctx: Context) =>
    Effect.suspend(() => {
      const first: Decision.Result = runSync(ctx)
      if (first._tag === "Deny") return Effect.succeed<Decision.Result>(first)
      const subs = effectChildren.map(() => subContext(ctx))
      const results: Array<Decision.Result | undefined> = new Array(effectChildren.length)
      const finish = (): Decision.Result => {
        let acc: Decision.Result = first
        for (let i = 0; i < effectChildren.length; i++) {
          if (results[i] !== undefined) {
            acc = Decision.combine(acc, results[i]!)
            appendTrail(ctx, subs[i])
          }
        }
        return acc
      }
      return Effect.forEach(
        effectChildren,
        (child, i) =>
          Effect.flatMap(child.evalEffect(subs[i]!), (result) => {
            results[i] = result
            return result._tag === "Deny" ? Effect.fail(new FoundDenial(result)) : Effect.void
          }),
        { concurrency, discard: true }
      ).pipe(
        Effect.catchIf((e): e is FoundDenial => e instanceof FoundDenial, () => Effect.void),
        Effect.map(finish)
      )
    })
  return makeNode({
    id: id ?? "firstDenial",
    isSync,
    evalSync: isSync ? runSync : notSync,
    evalEffect: isSync ? (ctx) => Effect.sync(() => runSync(ctx)) : evalEffect,
    describe: () => ({ op: "FirstDenial", id, concurrency, children: children.map((c) => c.describe()) }),
    named: allNamed(children)
  })
}

/**
 * Ordered rules: the first child that does not abstain decides; later
 * children do not run.
 *
 * @internal
 */
export const firstApplicable = (children: ReadonlyArray<Node>, id: string | undefined): Node => {
  const isSync = children.every((c) => c.isSync)
  const evalSync = (ctx: Context): Decision.Result => {
    for (let i = 0; i < children.length; i++) {
      const result = children[i]!.evalSync(ctx)
      if (result._tag !== "NotApplicable") return result
    }
    return Decision.notApplicable
  }
  const loop = (ctx: Context, i: number): Effect.Effect<Decision.Result, unknown, unknown> => {
    while (i < children.length && children[i]!.isSync) {
      const result = children[i]!.evalSync(ctx)
      if (result._tag !== "NotApplicable") return Effect.succeed(result)
      i++
    }
    if (i === children.length) return Effect.succeed(Decision.notApplicable)
    return Effect.flatMap(
      children[i]!.evalEffect(ctx),
      (result) => result._tag !== "NotApplicable" ? Effect.succeed(result) : loop(ctx, i + 1)
    )
  }
  return makeNode({
    id: id ?? "firstApplicable",
    isSync,
    evalSync: isSync ? evalSync : notSync,
    evalEffect: isSync ? (ctx) => Effect.sync(() => evalSync(ctx)) : (ctx) => Effect.suspend(() => loop(ctx, 0)),
    describe: () => ({ op: "FirstApplicable", id, children: children.map((c) => c.describe()) }),
    named: allNamed(children)
  })
}

/**
 * `combine(children)`, evaluating for each action only the children that can
 * apply to its name: `names[i]` are the action names child `i` can apply to
 * (or `undefined` when it may apply to any). The others are provably
 * abstaining, so the outcome is `combine`'s; they are left out of the trail.
 * `name.nameOf` reads the name an action is indexed by (by default
 * `action.name`), and `name.canonical` gives the form `names` are written
 * in (rules documents: NFC, see `internal/rules.ts`); a name found as read
 * is not canonicalized.
 *
 * A name's combined node (its own children merged, in declaration order,
 * with the unscoped ones) is built the first time an action of that name is
 * evaluated, and kept while the kept nodes hold at most about twice as many
 * children as there are: building every name's node up front would cost
 * names × unscoped children (quadratic in a document mixing literal names
 * and globs); past the budget a node is built per evaluation, which costs no
 * more than evaluating its children.
 *
 * @internal
 */
export const indexedByName = (
  children: ReadonlyArray<Node>,
  names: ReadonlyArray<ReadonlyArray<string> | undefined>,
  combine: (children: ReadonlyArray<Node>, id: string | undefined) => Node,
  id: string | undefined,
  name?: {
    readonly nameOf: (action: Action.Action) => string | undefined
    readonly canonical: (name: string) => string
  }
): Node => {
  const nameOf = name?.nameOf ?? ((action: Action.Action) => action.name)
  const canonical = name?.canonical
  const full = combine(children, id)
  const unscoped: Array<number> = []
  const own = new Map<string, Array<number>>()
  names.forEach((of, i) => {
    if (of === undefined) return void unscoped.push(i)
    for (const name of new Set(of)) {
      const group = own.get(name)
      if (group === undefined) own.set(name, [i])
      else group.push(i)
    }
  })
  const merged = (mine: ReadonlyArray<number>): Array<Node> => {
    const out: Array<Node> = []
    let a = 0
    let b = 0
    while (a < mine.length || b < unscoped.length) {
      const next = b >= unscoped.length || (a < mine.length && mine[a]! < unscoped[b]!) ? mine[a++]! : unscoped[b++]!
      out.push(children[next]!)
    }
    return out
  }
  const rest = combine(unscoped.map((i) => children[i]!), id)
  const groups = new Map<string, Node>()
  let budget = 2 * children.length + 1024
  const pick = (ctx: Context): Node => {
    const read = nameOf(ctx.action)
    if (read === undefined) return rest
    const kept = groups.get(read)
    if (kept !== undefined) return kept
    const name = canonical === undefined ? read : canonical(read)
    if (name !== read) {
      const found = groups.get(name)
      if (found !== undefined) return found
    }
    const mine = own.get(name)
    if (mine === undefined) return rest
    const group = combine(merged(mine), id)
    const size = mine.length + unscoped.length
    if (size <= budget) {
      budget -= size
      groups.set(name, group)
    }
    return group
  }
  return makeNode({
    id: full.id,
    isSync: full.isSync,
    evalSync: full.isSync ? (ctx) => pick(ctx).evalSync(ctx) : notSync,
    evalEffect: (ctx) => pick(ctx).evalEffect(ctx),
    describe: full.describe,
    named: full.named
  })
}

/**
 * Applies a decision policy to an applicable result and joins the two, so the
 * decision policy can tighten but never loosen. An abstaining inner policy
 * stays abstaining.
 *
 * @internal
 */
export const applyDecisionPolicy = (
  ctx: Context,
  id: string,
  f: DecisionPolicy,
  decision: Decision.Decision,
  results: ReadonlyArray<Explain.Entry>
): Decision.Result => {
  const trace = ctx.trace
  const clock = ctx.clock ?? trace?.clock
  const mark = ctx.defects?.length ?? 0
  const start = clock?.unsafeCurrentTimeNanos()
  let value: unknown
  let narrowed: Decision.Result
  try {
    value = f({ action: ctx.action, decision, results })
    narrowed = checkResult(ctx, id, value)
  } catch (error) {
    narrowed = defect(ctx, id, "threw", error)
  }
  if (start === undefined) {
    record(ctx, id, narrowed, null)
  } else {
    const end = clock!.unsafeCurrentTimeNanos()
    record(ctx, id, narrowed, ctx.clock === undefined ? null : Number(end - start) / 1_000_000)
    if (trace !== undefined) tracePolicy(trace, id, narrowed, start, end, ctx.defects, mark)
  }
  return Decision.combine(decision, narrowed)
}

/** @internal */
export const narrow = (
  self: Node,
  id: string,
  f: DecisionPolicy
): Node => {
  const decide = (ctx: Context, mark: number, inner: Decision.Result): Decision.Result => {
    if (inner._tag === "NotApplicable") return inner
    const results = ctx.trail === undefined ? [] : ctx.trail.slice(mark)
    return applyDecisionPolicy(ctx, id, f, inner, results)
  }
  // Without a trail the decision policy still sees the inner results.
  const withTrail = (ctx: Context): Context => (ctx.trail === undefined ? { ...ctx, trail: [] } : ctx)
  const node: Node = makeNode({
    id,
    isSync: self.isSync,
    evalSync: self.isSync
      ? (ctx) => {
        const c = withTrail(ctx)
        const mark = c.trail!.length
        return decide(c, mark, self.evalSync(c))
      }
      : notSync,
    evalEffect: (ctx) =>
      Effect.suspend(() => {
        const c = withTrail(ctx)
        const mark = c.trail!.length
        return Effect.map(self.evalEffect(c), (inner) => decide(c, mark, inner))
      }),
    describe: () => ({ op: "Narrow", id, child: self.describe() }),
    named: () => [...self.named(), node]
  })
  return node
}

/** @internal */
export const when = (self: Node, predicate: (action: Action.Action) => boolean): Node => {
  // A throwing predicate is a defect in the host's policy: fail closed.
  const test = (ctx: Context): boolean | Decision.Deny => {
    try {
      return predicate(ctx.action) === true
    } catch (error) {
      const result = defect(ctx, self.id, "threw", error, "predicate threw")
      record(ctx, self.id, result, null)
      return result
    }
  }
  const evalSync = (ctx: Context): Decision.Result => {
    const applies = test(ctx)
    return applies === true ? self.evalSync(ctx) : applies === false ? Decision.notApplicable : applies
  }
  return makeNode({
    id: self.id,
    isSync: self.isSync,
    evalSync: self.isSync ? evalSync : notSync,
    evalEffect: (ctx) =>
      Effect.suspend(() => {
        const applies = test(ctx)
        return applies === true
          ? self.evalEffect(ctx)
          : Effect.succeed(applies === false ? Decision.notApplicable : applies)
      }),
    describe: () => ({ op: "When", child: self.describe() }),
    named: () => self.named()
  })
}

/**
 * `when` with the predicate "the action's name is one of `names`", declared
 * on the node so that combinators can index their children by name.
 *
 * @internal
 */
export const forAction = (self: Node, names: ReadonlyArray<string>): Node => {
  const only = names.length === 1 ? names[0] : undefined
  const applies = only !== undefined
    ? (ctx: Context) => ctx.action.name === only
    : (ctx: Context) => names.includes(ctx.action.name)
  return makeNode({
    id: self.id,
    isSync: self.isSync,
    evalSync: self.isSync ? (ctx) => applies(ctx) ? self.evalSync(ctx) : Decision.notApplicable : notSync,
    evalEffect: (ctx) => applies(ctx) ? self.evalEffect(ctx) : Effect.succeed(Decision.notApplicable),
    describe: () => ({ op: "ForAction", names, child: self.describe() }),
    named: () => self.named(),
    actionNames: names
  })
}

/**
 * A combinator over `children`, indexed by action name when at least two of
 * them are scoped with `forAction` (see {@link indexedByName}); otherwise the
 * plain combination.
 *
 * @internal
 */
export const indexed = (
  children: ReadonlyArray<Node>,
  combine: (children: ReadonlyArray<Node>, id: string | undefined) => Node,
  id: string | undefined
): Node => {
  let scoped = 0
  for (const child of children) if (child.actionNames !== undefined) scoped++
  return scoped < 2 ? combine(children, id) : indexedByName(children, children.map((c) => c.actionNames), combine, id)
}

// -----------------------------------------------------------------------------
// failure semantics
// -----------------------------------------------------------------------------

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

/** @internal */
export type FailureKind = "timeout" | "unavailable" | "cancelled"

/** @internal */
export const failureKind = (error: unknown): FailureKind | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  // `instanceof` throws on a revoked Proxy: an error of the host's own kind.
  try {
    return error instanceof PolicyTimeout
      ? "timeout"
      : error instanceof ExternalCheckFailed
      ? "unavailable"
      : error instanceof PolicyCancelled
      ? "cancelled"
      : undefined
  } catch {
    return undefined
  }
}

/** @internal */
export const failingPolicy = (error: unknown, fallback: string): string => {
  const kind = failureKind(error)
  return kind === "timeout" || kind === "cancelled" ? (error as PolicyTimeout | PolicyCancelled).policyId : fallback
}

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

const handle = (handler: FailureHandler, error: unknown, policyId: string): Decision.Result => {
  if (typeof handler === "function") return handler(error)
  const reason = failureReason(error, policyId)
  switch (handler) {
    case "Allow":
      return Decision.allow(reason)
    case "Warn":
      return Decision.warn(reason)
    case "Defer":
      return Decision.defer(reason)
    case "Escalate":
      return Decision.escalate(reason)
    case "Deny":
      return Decision.deny(reason)
  }
}

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

/**
 * A defect as the host sees it, with what was thrown described safely.
 *
 * @internal
 */
export const publicDefect = (defect: Defect): PolicyDefect => {
  const { message, name, stack } = describeDefect(defect)
  return { policyId: defect.policyId, kind: defect.kind, error: defect.error, name, message, stack }
}

/**
 * What is wrong with a policy set's default, if anything: it must be a
 * well-formed decision, and one that does not proceed must say why.
 *
 * @internal
 */
export const checkDefault = (value: unknown): string | undefined => {
  let read: Decision.Result | undefined
  try {
    read = readDecision("default", value, false)
  } catch {
    read = undefined
  }
  if (read === undefined || read._tag === "NotApplicable") {
    return "the default must be a well-formed decision (build it with the Decision constructors), not NotApplicable"
  }
  if (read.reasons.length === 0 && !Decision.canProceed(read)) {
    return `a default that does not proceed (${read._tag}) must give a reason`
  }
  return undefined
}
