/**
 * A versioned policy set: the policy tree, an optional decision policy and
 * the default decision, evaluated into a `DecisionRecord`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import type * as Metric from "effect/Metric"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"
import type * as Action from "./Action.js"
import * as Decision from "./Decision.js"
import type * as DecisionRecord from "./DecisionRecord.js"
import type * as Explain from "./Explain.js"
import * as IdGenerator from "./IdGenerator.js"
import { canonicalJson, sha256Hex } from "./internal/canonical.js"
import * as internal from "./internal/policy.js"
import * as Metrics from "./Metrics.js"
import type * as Policy from "./Policy.js"

/**
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: unique symbol = Symbol.for("@gavel/core/PolicySet")

/**
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * How much the explain trail measures: `"untimed"` (the default) times
 * effectful policies only; `"timed"` also times every synchronous policy,
 * which costs a clock read per policy.
 *
 * @since 0.1.0
 * @category models
 */
export type ExplainMode = "untimed" | "timed"

/**
 * @since 0.1.0
 * @category models
 */
export interface PolicySet<out R = never> extends Pipeable {
  readonly [TypeId]: TypeId
  readonly id: string
  readonly version: string
  /** SHA-256 of the canonical description of the set (or the hash the host supplied). */
  readonly policyHash: string
  readonly policy: Policy.Policy<never, R>
  readonly decisionPolicy: { readonly id: string; readonly decide: Policy.DecisionPolicy } | undefined
  /** Used when no policy applies. `Deny` (`policy.no_applicable`) unless the host says otherwise. */
  readonly default: Decision.Decision
  readonly overridePolicy: DecisionRecord.OverridePolicy | undefined
  /** Validity of a decision that has no approval timeout of its own. */
  readonly ttl: Duration.Duration | undefined
  readonly explain: ExplainMode
  readonly isSync: boolean
}

/**
 * A policy set whose tree is all synchronous: `evaluateSync` accepts it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sync extends PolicySet<never> {
  readonly policy: Policy.Sync
  readonly isSync: true
}

/**
 * Why a policy set was refused. A set that fails these checks never
 * evaluates anything.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidPolicySet extends Schema.TaggedError<InvalidPolicySet>()("InvalidPolicySet", {
  policySetId: Schema.String,
  reason: Schema.Literal("InvalidId", "InvalidVersion", "DuplicatePolicyId", "InvalidDefault", "InvalidTtl"),
  detail: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid policy set "${this.policySetId}" (${this.reason}): ${this.detail}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<P extends Policy.Policy<never, any>> {
  readonly id: string
  readonly version: string
  /**
   * The policy tree. Its error type must be `never`: the host states what a
   * timeout or an outage means (`Policy.failClosed`, `Policy.onFailure`)
   * before the set can be built, so an unhandled failure is a compile error.
   */
  readonly policy: P
  /** A decision policy applied after the tree (and after the default), joined so it never loosens. */
  readonly decisionPolicy?: { readonly id: string; readonly decide: Policy.DecisionPolicy } | undefined
  readonly default?: Decision.Decision | undefined
  readonly overridePolicy?: DecisionRecord.OverridePolicy | undefined
  readonly ttl?: Duration.DurationInput | undefined
  readonly explain?: ExplainMode | undefined
  /**
   * The policy hash, when the host has a better one (the hash of a rules
   * document). By default it is the SHA-256 of the canonical description of
   * the set: ids, versions, combinators and their options.
   */
  readonly policyHash?: string | undefined
}

/**
 * The default decision: deny, because nothing applied.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultDeny: Decision.Deny = Decision.deny({
  code: "policy.no_applicable",
  message: "No policy applied to this action; the default decision denies it"
})

const Proto = {
  [TypeId]: TypeId,
  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

const invalid = (policySetId: string, reason: InvalidPolicySet["reason"], detail: string) =>
  Either.left(new InvalidPolicySet({ policySetId, reason, detail }))

const validate = <P extends Policy.Policy<never, any>>(
  options: Options<P>
): Either.Either<PolicySet<Policy.Policy.Context<P>>, InvalidPolicySet> => {
  const setId = String(options.id)
  if (typeof options.id !== "string" || options.id.trim() === "") {
    return invalid(setId, "InvalidId", "the policy set id must be a non-empty string")
  }
  if (typeof options.version !== "string" || options.version.trim() === "") {
    return invalid(setId, "InvalidVersion", "the policy set version must be a non-empty string")
  }
  const defaultDecision = options.default ?? defaultDeny
  const defaultProblem = internal.checkDefault(defaultDecision)
  if (defaultProblem !== undefined) return invalid(setId, "InvalidDefault", defaultProblem)
  const root = options.policy as unknown as internal.Node
  // Every named part of the set (leaves, narrowing decision policies, the
  // set's own decision policy) with the value that owns the id: the same value
  // used twice is fine, two different values sharing an id are not.
  const named: Array<{ readonly id: string; readonly owner: unknown }> = root.named().map((node) => ({
    id: node.id,
    owner: node
  }))
  if (options.decisionPolicy !== undefined) {
    named.push({ id: options.decisionPolicy.id, owner: options.decisionPolicy })
  }
  const seen = new Map<string, unknown>()
  for (const { id, owner } of named) {
    if (typeof id !== "string" || id.trim() === "") {
      return invalid(setId, "InvalidId", "every policy needs a non-empty id")
    }
    const other = seen.get(id)
    if (other !== undefined && other !== owner) {
      return invalid(
        setId,
        "DuplicatePolicyId",
        `two different policies share the id "${id}"; ids must be unique so reasons and explanations are unambiguous`
      )
    }
    seen.set(id, owner)
  }
  let ttl: Duration.Duration | undefined
  if (options.ttl !== undefined) {
    const decoded = Duration.decodeUnknown(options.ttl)
    if (decoded._tag === "None" || !Duration.isFinite(decoded.value) || Duration.toMillis(decoded.value) <= 0) {
      return invalid(setId, "InvalidTtl", "the ttl must be a positive, finite duration")
    }
    ttl = decoded.value
  }
  const explain = options.explain ?? "untimed"
  const policyHash = options.policyHash ?? sha256Hex(canonicalJson({
    id: options.id,
    version: options.version,
    policy: root.describe(),
    decisionPolicy: options.decisionPolicy?.id,
    default: defaultDecision,
    overridePolicy: options.overridePolicy,
    ttlMillis: ttl === undefined ? undefined : Duration.toMillis(ttl)
  }))
  const self = Object.assign(Object.create(Proto), {
    id: options.id,
    version: options.version,
    policyHash,
    policy: options.policy,
    decisionPolicy: options.decisionPolicy,
    default: defaultDecision,
    overridePolicy: options.overridePolicy,
    ttl,
    explain,
    isSync: root.isSync
  })
  return Either.right(self)
}

/**
 * Builds a policy set, refusing an invalid one: empty id or version, two
 * different policies with the same id, a default that is not a decision, a
 * non-positive TTL. A sync tree gives a {@link Sync} set.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <P extends Policy.Sync>(options: Options<P>): Effect.Effect<Sync, InvalidPolicySet>
  <P extends Policy.Policy<never, any>>(
    options: Options<P>
  ): Effect.Effect<PolicySet<Policy.Policy.Context<P>>, InvalidPolicySet>
} = <P extends Policy.Policy<never, any>>(options: Options<P>) => validate(options) as never

/**
 * Like {@link make}, for module-level constants: throws `InvalidPolicySet`
 * (at start-up, before anything is evaluated) instead of failing an Effect.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake: {
  <P extends Policy.Sync>(options: Options<P>): Sync
  <P extends Policy.Policy<never, any>>(options: Options<P>): PolicySet<Policy.Policy.Context<P>>
} = <P extends Policy.Policy<never, any>>(options: Options<P>) => {
  const result = validate(options)
  if (Either.isLeft(result)) throw result.left
  return result.right as never
}

// -----------------------------------------------------------------------------
// evaluation
// -----------------------------------------------------------------------------

const noStrings: ReadonlyArray<string> = Object.freeze([])
const omitPayload: ReadonlyArray<string> = Object.freeze(["payload"])
const omitAttributes: ReadonlyArray<string> = Object.freeze(["actor.attributes"])
const omitBoth: ReadonlyArray<string> = Object.freeze(["actor.attributes", "payload"])

const omitted = (action: Action.Action): ReadonlyArray<string> => {
  let hasAttributes = false
  for (const _ in action.actor.attributes) {
    hasAttributes = true
    break
  }
  const hasPayload = action.payload !== undefined
  return hasPayload ? (hasAttributes ? omitBoth : omitPayload) : hasAttributes ? omitAttributes : noStrings
}

const evidenceOf = (reasons: ReadonlyArray<Decision.Reason>): ReadonlyArray<string> => {
  let refs: Set<string> | undefined
  for (let i = 0; i < reasons.length; i++) {
    const r = reasons[i]!.evidenceRefs
    if (r !== undefined && r.length > 0) {
      refs ??= new Set()
      for (const ref of r) refs.add(ref)
    }
  }
  return refs === undefined ? noStrings : Array.from(refs).sort()
}

const finish = (
  set: PolicySet<unknown>,
  ctx: internal.Context,
  result: Decision.Result,
  trail: ReadonlyArray<Explain.Entry>,
  now: number,
  ids: IdGenerator.Service,
  trace: Action.TraceContext | null
): DecisionRecord.DecisionRecord => {
  const action = ctx.action
  const defaulted = result._tag === "NotApplicable"
  let decision: Decision.Decision = defaulted ? set.default : (result as Decision.Decision)
  if (set.decisionPolicy !== undefined) {
    decision = internal.applyDecisionPolicy(
      ctx,
      set.decisionPolicy.id,
      set.decisionPolicy.decide,
      decision,
      // A copy: the decision policy's own entry is appended to the trail next.
      trail.slice()
    ) as Decision.Decision
  }
  const decisionId = ids.next("dec")
  const requestId = action.requestId ?? decisionId
  const evaluatedAt = new Date(now)
  let requiredApprovals = 0
  let approvalAuthority: Decision.Authority | null = null
  let expiresAt: Date | null = null
  if (decision._tag === "RequireApproval") {
    requiredApprovals = decision.requirement.quorum
    approvalAuthority = decision.requirement.authority
    if (decision.requirement.timeout !== undefined) {
      expiresAt = new Date(now + Duration.toMillis(decision.requirement.timeout))
    }
  } else if (decision._tag === "RequireAcknowledgment") {
    approvalAuthority = decision.authority
  }
  if (expiresAt === null && set.ttl !== undefined) {
    expiresAt = new Date(now + Duration.toMillis(set.ttl))
  }
  const reasons = decision.reasons
  const reasonCodes = new Array<string>(reasons.length)
  for (let i = 0; i < reasons.length; i++) reasonCodes[i] = reasons[i]!.code
  const actor = action.actor
  const resource = action.resource ?? null
  const tenant = actor.tenant ?? null
  return {
    decisionId,
    requestId,
    correlationId: action.correlationId ?? requestId,
    policyId: set.id,
    policyVersion: set.version,
    policyHash: set.policyHash,
    evaluatedAt,
    scope: { kind: action.kind, name: action.name, resource, tenant },
    inputs: {
      actor: { id: actor.id, kind: actor.kind, roles: actor.roles, tenant },
      kind: action.kind,
      name: action.name,
      resource,
      metadata: action.metadata
    },
    decision,
    reasonCodes,
    reasons,
    requiredApprovals,
    approvalAuthority,
    expiresAt,
    overridePolicy: set.overridePolicy ?? null,
    evidenceRefs: evidenceOf(reasons),
    redaction: { omitted: omitted(action) },
    reviewPath: decision._tag === "Escalate" ? decision.reviewPaths : noStrings,
    trace,
    defaulted,
    explain: trail
  }
}

const defaultClock = Clock.make()
const defaultIds = IdGenerator.random()

/**
 * @since 0.1.0
 * @category models
 */
export interface EvaluateSyncOptions {
  /** Where `evaluatedAt` (and sync timings) come from; the system clock by default. */
  readonly clock?: Clock.Clock | undefined
  /** Where the decision id comes from; a process-unique generator by default. */
  readonly idGenerator?: IdGenerator.Service | undefined
  /**
   * Told, once the record is built, of each policy that failed closed on a
   * bug of its own, with what it threw (the record only says
   * `policy.defect`). With no Effect to log with, this is where a
   * synchronous evaluation reports it; `PolicySet.evaluate` logs it instead.
   * A hook that throws is ignored.
   */
  readonly onDefect?: ((defect: Policy.Defect) => void) | undefined
}

/**
 * Evaluates a synchronous policy set as plain function calls — no fiber, no
 * generator — and returns the full decision record. Only {@link Sync} sets are
 * accepted: passing a set with an effectful policy is a type error.
 *
 * @example
 * ```ts
 * import { Action, Decision, Policy, PolicySet } from "@gavel/core"
 *
 * const set = PolicySet.unsafeMake({
 *   id: "tools",
 *   version: "1",
 *   policy: Policy.make("operators", (action) =>
 *     action.actor.roles.includes("operator") ? Decision.allow() : Decision.notApplicable
 *   )
 * })
 *
 * const record = PolicySet.evaluateSync(set, Action.make({
 *   actor: { id: "agent-1", kind: "agent", roles: ["operator"] },
 *   kind: "tool",
 *   name: "search"
 * }))
 * record.decision._tag // "Allow"
 * ```
 *
 * @since 0.1.0
 * @category evaluation
 */
export const evaluateSync = (
  self: Sync,
  action: Action.Action,
  options?: EvaluateSyncOptions
): DecisionRecord.DecisionRecord => {
  const clock = options?.clock ?? defaultClock
  const onDefect = options?.onDefect
  const trail: Array<Explain.Entry> = []
  const defects: Array<internal.Defect> | undefined = onDefect === undefined ? undefined : []
  const ctx = internal.makeContext(action, trail, self.explain === "timed" ? clock : undefined, undefined, defects)
  const result = internal.evalSyncSafe(self.policy as unknown as internal.Node, ctx)
  const record = finish(
    self,
    ctx,
    result,
    trail,
    clock.unsafeCurrentTimeMillis(),
    options?.idGenerator ?? defaultIds,
    action.trace ?? null
  )
  if (defects !== undefined) {
    for (const defect of defects) {
      try {
        onDefect!(internal.publicDefect(defect))
      } catch {
        // The record stands: a failing hook must not turn a denial into a throw.
      }
    }
  }
  return record
}

/** Effect's built-in tracer: when it is the one installed, no span would go anywhere. */
const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** The caller's span as Effect would propagate it: skipping spans made under `DisablePropagation`. */
const propagated = (span: Tracer.AnySpan | undefined): Tracer.AnySpan | undefined => {
  while (span !== undefined && Context.get(span.context, Tracer.DisablePropagation)) {
    span = span._tag === "Span" ? Option.getOrUndefined(span.parent) : undefined
  }
  return span
}

/** The counters of `gavel_decisions_total`, one per outcome, built once. */
const decisionCounters: Record<Decision.Decision["_tag"], Metric.Metric.Counter<number>> = {
  Allow: Metrics.decisions("Allow"),
  Warn: Metrics.decisions("Warn"),
  Transform: Metrics.decisions("Transform"),
  RequireAcknowledgment: Metrics.decisions("RequireAcknowledgment"),
  RequireApproval: Metrics.decisions("RequireApproval"),
  Escalate: Metrics.decisions("Escalate"),
  Defer: Metrics.decisions("Defer"),
  Deny: Metrics.decisions("Deny")
}

const run = <R>(
  self: PolicySet<R>,
  action: Action.Action,
  clock: Clock.Clock,
  ids: IdGenerator.Service,
  labels: ReadonlyArray<MetricLabel.MetricLabel>,
  traceContext: Action.TraceContext | null,
  trace: internal.Trace | undefined
): Effect.Effect<DecisionRecord.DecisionRecord, never, R> => {
  const trail: Array<Explain.Entry> = []
  const node = self.policy as unknown as internal.Node
  const defects: Array<internal.Defect> = []
  const ctx = internal.makeContext(
    action,
    trail,
    self.explain === "timed" ? clock : undefined,
    trace,
    defects,
    node.isSync ? undefined : []
  )
  const decide = (result: Decision.Result): Effect.Effect<DecisionRecord.DecisionRecord> => {
    const record = finish(self, ctx, result, trail, clock.unsafeCurrentTimeMillis(), ids, traceContext)
    decisionCounters[record.decision._tag].unsafeUpdate(1, labels)
    if (trace !== undefined) {
      internal.flushTrace(trace)
      trace.span.attribute("gavel.decision", record.decision._tag)
      trace.span.attribute("gavel.reason_codes", record.reasonCodes)
      trace.span.attribute("gavel.decision_id", record.decisionId)
    }
    return defects.length === 0 ? Effect.succeed(record) : Effect.as(internal.logDefects(defects), record)
  }
  // A synchronous tree is plain calls, run as the effect starts.
  if (node.isSync) return decide(internal.evalSyncSafe(node, ctx))
  // The set's error type is `never`; a failure that comes anyway (its type
  // was cast away) or a defect still ends in a decision that does not
  // proceed. Interruption stays interruption: no decision.
  return Effect.flatMap(
    Effect.catchAllCause(
      node.evalEffect(ctx) as Effect.Effect<Decision.Result, unknown, R>,
      (cause) => Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : Effect.succeed(internal.escaped(ctx, node.id, cause))
    ) as Effect.Effect<Decision.Result, never, R>,
    decide
  )
}

/**
 * Evaluates a policy set as an Effect. Time comes from the `Clock` service
 * (so `TestClock` drives it) and the decision id from `IdGenerator`. It cannot
 * fail: every failure was given a meaning when the set was built. Interrupting
 * it (caller cancellation) interrupts every check in flight and produces no
 * record.
 *
 * When a tracer is installed (`@effect/opentelemetry`, `Layer.setTracer`),
 * the evaluation is a `gavel.evaluate` span with one `gavel.policy` child per
 * policy in the explain trail; span attributes are ids, result tags and
 * reason codes only, never values. The record's `trace` is the action's own,
 * or else the ids of the caller's current span. Each decision counts in
 * `gavel_decisions_total` (see `Metrics`).
 *
 * @since 0.1.0
 * @category evaluation
 */
export const evaluate: {
  (action: Action.Action): <R>(self: PolicySet<R>) => Effect.Effect<DecisionRecord.DecisionRecord, never, R>
  <R>(self: PolicySet<R>, action: Action.Action): Effect.Effect<DecisionRecord.DecisionRecord, never, R>
} = dual(
  2,
  <R>(self: PolicySet<R>, action: Action.Action): Effect.Effect<DecisionRecord.DecisionRecord, never, R> =>
    Effect.withFiberRuntime((fiber) => {
      const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
      const ids = Context.get(fiber.currentContext, IdGenerator.IdGenerator)
      const labels = fiber.getFiberRef(FiberRef.currentMetricLabels)
      let traceContext = action.trace ?? null
      if (traceContext === null) {
        const caller = propagated(fiber.currentSpan)
        if (caller !== undefined) traceContext = { traceId: caller.traceId, spanId: caller.spanId }
      }
      const tracer = fiber.currentTracer
      // Without a tracer of the host's, spans would cost without going
      // anywhere: none are made.
      if (tracer === nativeTracer || !fiber.getFiberRef(FiberRef.currentTracerEnabled)) {
        return run(self, action, clock, ids, labels, traceContext, undefined)
      }
      return Effect.useSpan(
        internal.evaluateSpanName,
        {
          kind: "internal",
          captureStackTrace: false,
          attributes: { "gavel.policy_set.id": self.id, "gavel.policy_set.version": self.version }
        },
        (span) => {
          const trace = internal.makeTrace(
            tracer,
            clock,
            fiber.getFiberRef(FiberRef.currentTracerTimingEnabled),
            span
          )
          const evaluation = run(self, action, clock, ids, labels, traceContext, trace)
          // A synchronous tree has already run, and made its spans, by now.
          if (self.isSync) return evaluation
          // Spans the checks make are children of this one; spans of checks
          // interrupted with the evaluation still end.
          return evaluation.pipe(
            Effect.withParentSpan(span),
            Effect.onInterrupt(() => Effect.sync(() => internal.flushTrace(trace)))
          )
        }
      )
    })
)
