/**
 * The governance runtime: evaluates actions against a policy set, enforces
 * the decision around the protected work, parks work that needs a human,
 * and resumes it exactly once.
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import type * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as Action from "./Action.js"
import * as Approval from "./Approval.js"
import { ApprovalStore, type PendingLimits } from "./ApprovalStore.js"
import type * as Audit from "./Audit.js"
import { AuditSink } from "./AuditSink.js"
import * as Decision from "./Decision.js"
import * as DecisionRecord from "./DecisionRecord.js"
import { IdGenerator } from "./IdGenerator.js"
import { Identity, type ResolvedPrincipal } from "./Identity.js"
import type * as Override from "./Override.js"
import { isLimit } from "./internal/actionValue.js"
import * as entries from "./internal/auditEntries.js"
import { numberSetting } from "./internal/config.js"
import * as Metrics from "./Metrics.js"
import * as PolicySet from "./PolicySet.js"
import type { ExternalCheckFailed } from "./PolicyError.js"
import * as Redaction from "./Redaction.js"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

const recordError = <Self>() =>
<Tag extends string>(tag: Tag) => Schema.TaggedError<Self>()(tag, { record: DecisionRecord.DecisionRecord })

/**
 * The policies denied the action. The record says why.
 *
 * @since 0.1.0
 * @category errors
 */
export class Denied extends recordError<Denied>()("Denied") {
  /** @since 0.1.0 */
  override get message(): string {
    return `Denied (${this.record.reasonCodes.join(", ")}), decision ${this.record.decisionId}`
  }
}

/**
 * The action must go to a higher review path (`record.reviewPath`).
 *
 * @since 0.1.0
 * @category errors
 */
export class Escalated extends recordError<Escalated>()("Escalated") {
  /** @since 0.1.0 */
  override get message(): string {
    return `Escalated to ${this.record.reviewPath.join(", ")}, decision ${this.record.decisionId}`
  }
}

/**
 * The action cannot be decided now (more information or another system is
 * needed first).
 *
 * @since 0.1.0
 * @category errors
 */
export class Deferred extends recordError<Deferred>()("Deferred") {
  /** @since 0.1.0 */
  override get message(): string {
    return `Deferred (${this.record.reasonCodes.join(", ")}), decision ${this.record.decisionId}`
  }
}

/**
 * The approval was granted, but re-evaluating the policies against the
 * current state of the world no longer lets the action through (a quota
 * ran out, a ticket closed, a stricter approval is now needed). The approval
 * stays approved and unused: a later `resume` may still use it before its
 * expiry, if the state of the world allows it again.
 *
 * @since 0.1.0
 * @category errors
 */
export class RevalidationFailed extends Schema.TaggedError<RevalidationFailed>()("RevalidationFailed", {
  approvalId: Schema.String,
  record: DecisionRecord.DecisionRecord
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Approval "${this.approvalId}" no longer suffices: ${this.record.decision._tag} (${
      this.record.reasonCodes.join(", ")
    })`
  }
}

/**
 * Policies kept transforming the action past the configured depth.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyTransforms extends Schema.TaggedError<TooManyTransforms>()("TooManyTransforms", {
  limit: Schema.Int,
  record: DecisionRecord.DecisionRecord
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `The action was still being transformed after ${this.limit} transformations`
  }
}

/**
 * No overridable decision with this id is known (denials, escalations and
 * deferrals are kept for overriding; the in-memory store keeps the most
 * recent ones).
 *
 * @since 0.1.0
 * @category errors
 */
export class DecisionNotFound extends Schema.TaggedError<DecisionNotFound>()("DecisionNotFound", {
  decisionId: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `No overridable decision "${this.decisionId}"`
  }
}

/**
 * The principal may not override this decision: the policy set has no
 * override policy, the principal is unknown, inactive, of another tenant or outside its
 * authority, or they are the actor of the decision; or the override has no
 * reason or no positive duration.
 *
 * @since 0.1.0
 * @category errors
 */
export class OverrideNotAllowed extends Schema.TaggedError<OverrideNotAllowed>()("OverrideNotAllowed", {
  decisionId: Schema.String,
  principalId: Schema.String,
  reason: Schema.Literal(
    "no_override_policy",
    "unknown_principal",
    "inactive",
    "other_tenant",
    "outside_authority",
    "own_decision",
    "missing_reason",
    "invalid_duration"
  )
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `"${this.principalId}" may not override decision "${this.decisionId}" (${this.reason})`
  }
}

/**
 * An option given in code that cannot be used: a duration that is not one,
 * or is not positive and finite; a count or a limit that is not a positive
 * integer (`maxTransforms`: a non-negative one). The runtime (or the HTTP
 * enforcement) refuses to start rather than fall back to a default.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOption extends Schema.TaggedError<InvalidOption>()("InvalidOption", {
  option: Schema.String,
  problem: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Governance option ${this.option} ${this.problem}`
  }
}

/**
 * Why `resume` did not run the work.
 *
 * @since 0.1.0
 * @category errors
 */
export type ResumeError =
  | Action.InvalidAction
  | RevalidationFailed
  | Approval.ApprovalNotFound
  | Approval.ApprovalRejected
  | Approval.ApprovalExpired
  | Approval.AlreadyResolved
  | Approval.AlreadyConsumed
  | Approval.ActionMismatch
  | Approval.ApprovalPending
  | Approval.StoreError

/**
 * Why `enforce` did not run the work (besides the work's own failures): the
 * decision itself, an approval that could not be opened (its requester or
 * tenant has too many pending), or anything that stops a parked call from
 * resuming.
 *
 * @since 0.1.0
 * @category errors
 */
export type EnforceError =
  | Denied
  | Escalated
  | Deferred
  | TooManyTransforms
  | Approval.TooManyPending
  | ResumeError

/**
 * Why a vote was not recorded.
 *
 * @since 0.1.0
 * @category errors
 */
export type VoteError =
  | Approval.ApprovalNotFound
  | Approval.WrongKind
  | Approval.NotAnApprover
  | Approval.VoteError
  | Approval.StoreError
  | ExternalCheckFailed

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * What {@link Service.submit} answers: the decision, the approval to wait
 * for, or the override that lets a blocked action through. `action` is the
 * action the decision is about — the replacement when a policy transformed
 * it — and the one to pass to `resume` and to run.
 *
 * @since 0.1.0
 * @category models
 */
export type Submission =
  | { readonly _tag: "Decided"; readonly record: DecisionRecord.DecisionRecord; readonly action: Action.Action }
  | {
    readonly _tag: "Pending"
    readonly approvalId: string
    readonly expiresAt: Date
    readonly record: DecisionRecord.DecisionRecord
    readonly action: Action.Action
  }
  | {
    readonly _tag: "Overridden"
    readonly override: Override.Override
    readonly record: DecisionRecord.DecisionRecord
    readonly action: Action.Action
  }

/**
 * @since 0.1.0
 * @category models
 */
export interface OverrideOptions {
  /** The principal exercising override authority, as the host authenticated it. */
  readonly authority: Action.Principal
  readonly reason: string
  /** How long the override lasts. */
  readonly duration: Duration.DurationInput
  /** Only the actor of the overridden decision (the default), or anyone acting in its scope. */
  readonly scope?: Override.Coverage | undefined
  readonly compensatingControls?: ReadonlyArray<string> | undefined
  /**
   * Also let through actions in its scope that require an approval or an
   * acknowledgment. Off by default: an override answers the denials,
   * escalations and deferrals it was granted for, and an approval
   * requirement is answered by approving.
   */
  readonly waiveApproval?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /**
   * Evaluates the action, and keeps the record of a denial, escalation or
   * deferral (so it can be overridden).
   *
   * Every entry point that takes an action (`evaluate`, `enforce`,
   * `submit`, `resume`, `run`) first checks it with `Action.validate` under
   * the runtime's `actionLimits` (and so does each replacement a
   * `Transform` proposes): an action outside the value domain or over the
   * limits fails with `Action.InvalidAction`, before any policy sees it and
   * with nothing written.
   */
  readonly evaluate: (
    action: Action.Action
  ) => Effect.Effect<DecisionRecord.DecisionRecord, Action.InvalidAction | Approval.StoreError>
  /**
   * Runs `work` only when the policies let the action through:
   *
   * - `Allow`, `Warn`: runs it.
   * - `Transform`: evaluates the replacement (up to `maxTransforms` times)
   *   and goes on with it; `work` receives the action it may run.
   * - `RequireApproval`, `RequireAcknowledgment`: opens an approval and
   *   parks (interruptibly) until it is resolved — or fails with
   *   `TooManyPending` when the requester or the tenant already has the
   *   most pending approvals allowed. When approved, checks the
   *   action still hashes to the approved one, re-evaluates the policies
   *   against the current state of external systems, consumes the approval
   *   (exactly once) and runs. Interrupting the parked call cancels the
   *   approval: the work never runs.
   * - `Deny`, `Escalate`, `Defer`: fails with {@link Denied},
   *   {@link Escalated}, {@link Deferred} carrying the record — unless an
   *   active override covers the action.
   */
  readonly enforce: <A, E, R>(
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | EnforceError, R>
  /**
   * Decides without waiting: the decision, or `Pending` with a freshly
   * opened approval to `resume` later (what servers answer with 202). Fails
   * with `TooManyPending` when the approval would exceed
   * `maxPendingPerRequester` or `maxPendingPerTenant` (the decision is
   * recorded, the refusal audited as `approval.refused`).
   */
  readonly submit: (
    action: Action.Action
  ) => Effect.Effect<
    Submission,
    Action.InvalidAction | TooManyTransforms | Approval.TooManyPending | Approval.StoreError
  >
  /**
   * Continues a `submit` that was `Pending`: waits (interruptibly) for the
   * approval to resolve, then makes the same checks as `enforce` and runs
   * `work` at most once per approval. Interrupting `resume` does not cancel
   * the approval.
   */
  readonly resume: <A, E, R>(
    approvalId: string,
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | ResumeError, R>
  /**
   * Continues a `submit`: what `enforce` would have done with the same
   * decision. Runs `work` for a decision that lets the action through or an
   * override (between `execution.started` and its end, like `enforce`),
   * fails with {@link Denied}, {@link Escalated} or {@link Deferred} for a
   * blocked one, and `resume`s a pending one.
   */
  readonly run: <A, E, R>(
    submission: Submission,
    work: (action: Action.Action) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | EnforceError, R>
  /**
   * Withdraws a pending approval (the caller gave up: a cancelled task, a
   * closed request): it resolves as `cancelled`, parked calls fail with
   * `AlreadyResolved`, and the audit trail names `by` as the actor.
   */
  readonly cancel: (
    approvalId: string,
    by?: Action.Principal | undefined
  ) => Effect.Effect<
    Approval.ApprovalRequest,
    Approval.ApprovalNotFound | Approval.AlreadyResolved | Approval.ApprovalExpired | Approval.StoreError
  >
  /**
   * Votes for an approval. `approver` is the principal the host
   * authenticated; eligibility (status, roles, `canApprove`) comes from the
   * `Identity` system, never from the principal's own claims.
   */
  readonly approve: (
    approvalId: string,
    approver: Action.Principal,
    note?: string
  ) => Effect.Effect<Approval.ApprovalRequest, VoteError>
  /** Votes against an approval or acknowledgment; one counted rejection resolves it as rejected. */
  readonly reject: (
    approvalId: string,
    approver: Action.Principal,
    note?: string
  ) => Effect.Effect<Approval.ApprovalRequest, VoteError>
  /** Acknowledges a `RequireAcknowledgment` decision, as a qualified actor. */
  readonly acknowledge: (
    approvalId: string,
    actor: Action.Principal,
    note?: string
  ) => Effect.Effect<Approval.ApprovalRequest, VoteError>
  /**
   * Overrides a denial, escalation or deferral: a new, linked record, granted only to a
   * principal within the policy set's override authority (and never to the
   * decision's own actor). The original record is not touched.
   */
  readonly override: (
    decisionId: string,
    options: OverrideOptions
  ) => Effect.Effect<
    Override.Override,
    DecisionNotFound | OverrideNotAllowed | Approval.StoreError | ExternalCheckFailed
  >
  /** Expires every approval that is due now and wakes its waiters (what the sweeper runs). */
  readonly expireDue: Effect.Effect<ReadonlyArray<Approval.ApprovalRequest>, Approval.StoreError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Governance extends Context.Tag("@gavel/core/Governance")<Governance, Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<R> {
  readonly policySet: PolicySet.PolicySet<R>
  /**
   * Expiry of approvals whose requirement has no timeout. Default: the
   * `governance.approval_timeout_seconds` config, else one hour. Every
   * config key is read under both spellings: nested (with Effect's default
   * provider, the environment variable `governance_approval_timeout_seconds`)
   * and upper case (`GOVERNANCE_APPROVAL_TIMEOUT_SECONDS`); given under both,
   * they must agree. Durations must be positive and at most 100 years.
   */
  readonly approvalTimeout?: Duration.DurationInput | undefined
  /**
   * How often the sweeper expires due approvals. Default: the
   * `runtime.approval_sweep_interval_seconds` config, else 5 seconds.
   */
  readonly sweepInterval?: Duration.DurationInput | undefined
  /**
   * How often parked calls poll a shared store for resolutions written by
   * other processes. Default: the `runtime.approval_poll_interval_seconds`
   * config, else 1 second. Unused with a store that is not shared.
   */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** How many times a `Transform` may be followed. Default 3. */
  readonly maxTransforms?: number | undefined
  /**
   * The most approvals one requester may have pending at once; one more is
   * refused with `TooManyPending`. A positive integer. Default: the
   * `governance.max_pending_per_requester` config, else 100.
   */
  readonly maxPendingPerRequester?: number | undefined
  /**
   * The most approvals one tenant (all its requesters together; approvals
   * without a tenant count as one tenant) may have pending at once. A
   * positive integer. Default: the `governance.max_pending_per_tenant`
   * config, else 10,000.
   */
  readonly maxPendingPerTenant?: number | undefined
  /**
   * What is masked before records, approvals and audit events are written
   * (`Redacted` values and credential-like keys always are). Records returned
   * by the runtime are the written ones.
   */
  readonly redaction?: Redaction.Options | undefined
  /**
   * How large an action may be (`Action.Limits`; each a positive integer,
   * missing ones default to `Action.defaultLimits`: depth 64, 100,000
   * values, 10,000,000 characters). Larger actions fail with
   * `Action.InvalidAction`; an invalid limit refuses to build the runtime
   * (`InvalidOption`).
   */
  readonly actionLimits?: Partial<Action.Limits> | undefined
}

// -----------------------------------------------------------------------------
// implementation
// -----------------------------------------------------------------------------

/** The longest duration the runtime accepts: instants it computes stay representable. */
const maxDurationMillis = 100 * 365.25 * 24 * 3600 * 1000

const seconds = (key: string, section: string, fallback: number) =>
  numberSetting(section, key, {
    message: "must be a positive number of seconds, at most 100 years",
    validation: (n) => n > 0 && n * 1000 <= maxDurationMillis
  }, fallback).pipe(Config.map(Duration.seconds))

const count = (key: string, section: string, fallback: number) =>
  numberSetting(section, key, {
    message: "must be a positive integer",
    validation: isLimit
  }, fallback)

/** A count given in code, else the config: a bad one refuses to start, naming the option. */
const countOf = (
  option: string,
  given: number | undefined,
  config: Config.Config<number>
): Effect.Effect<number, ConfigError.ConfigError | InvalidOption> =>
  given === undefined
    ? config
    : isLimit(given)
    ? Effect.succeed(given)
    : Effect.fail(new InvalidOption({ option, problem: `must be a positive integer, not ${String(given)}` }))

const durationOf = (
  option: string,
  given: Duration.DurationInput | undefined,
  config: Config.Config<Duration.Duration>
): Effect.Effect<Duration.Duration, ConfigError.ConfigError | InvalidOption> => {
  if (given === undefined) return config
  const duration = Duration.decodeUnknown(given)
  if (Option.isNone(duration)) {
    return Effect.fail(new InvalidOption({ option, problem: `is not a duration: ${String(given)}` }))
  }
  const millis = Duration.toMillis(duration.value)
  return millis > 0 && millis <= maxDurationMillis
    ? Effect.succeed(duration.value)
    : Effect.fail(
      new InvalidOption({ option, problem: `must be positive and at most 100 years, not ${Duration.format(duration.value)}` })
    )
}

const isBlocked = (decision: Decision.Decision): boolean =>
  decision._tag === "Deny" || decision._tag === "Escalate" || decision._tag === "Defer"

const subset = (small: ReadonlyArray<string>, large: ReadonlyArray<string>): boolean =>
  small.every((x) => large.includes(x))

/** Every approver the grant admitted is still admitted by `required`. */
const authorityCovered = (granted: Decision.Authority, required: Decision.Authority): boolean =>
  subset(granted.roles, required.roles) && subset(granted.principals, required.principals)

/**
 * Whether a re-evaluation after approval still lets the approved action
 * through: it proceeds outright, or it asks for no more than was granted —
 * no larger quorum, no approver the grant's authority did not already
 * require, no separation of duties the grant did not have.
 */
const stillSatisfied = (request: Approval.ApprovalRequest, decision: Decision.Decision): boolean => {
  const granted = request.requirement
  switch (decision._tag) {
    case "Allow":
    case "Warn":
      return true
    case "RequireAcknowledgment":
      return authorityCovered(granted.authority, decision.authority)
    case "RequireApproval": {
      const required = decision.requirement
      return request.kind === "approval" &&
        required.quorum <= granted.quorum &&
        authorityCovered(granted.authority, required.authority) &&
        (!required.separationOfDuties || granted.separationOfDuties)
    }
    default:
      return false
  }
}

/** A principal as the identity system knows it: its canonical id, and what it resolved to. */
interface Canonical {
  readonly id: string
  readonly resolved: Option.Option<ResolvedPrincipal>
}

/** The votes of a new approval (shared: votes are never added in place). */
const noVotes: ReadonlyArray<Approval.Vote> = Object.freeze([])

/**
 * A parked caller: the resolution that arrived before it parked, or how to
 * wake it. One small object per parked call.
 */
class Waiter {
  resolved: Approval.ApprovalRequest | undefined = undefined
  private wake: ((effect: Effect.Effect<Approval.ApprovalRequest>) => void) | undefined = undefined

  constructor(
    readonly approvalId: string,
    readonly onInterrupt: ((approvalId: string) => Effect.Effect<void>) | undefined
  ) {}

  notify(request: Approval.ApprovalRequest): void {
    if (this.wake === undefined) this.resolved = request
    else this.wake(Effect.succeed(request))
  }

  /** Suspends the fiber until {@link notify}. */
  parked(): Effect.Effect<Approval.ApprovalRequest> {
    return Effect.async<Approval.ApprovalRequest>((resume) => {
      this.wake = resume
    })
  }
}

/** The `actionLimits` option: each given limit must be a positive integer. */
const actionLimitsOf = (
  given: Partial<Action.Limits> | undefined
): Effect.Effect<Action.Limits, InvalidOption> => {
  if (given === undefined) return Effect.succeed(Action.defaultLimits)
  for (const key of ["maxDepth", "maxNodes", "maxStringLength"] as const) {
    const value = given[key]
    if (value !== undefined && !isLimit(value)) {
      return Effect.fail(
        new InvalidOption({ option: `actionLimits.${key}`, problem: `must be a positive integer, not ${String(value)}` })
      )
    }
  }
  return Effect.succeed({ ...Action.defaultLimits, ...given } as Action.Limits)
}

/**
 * Builds the service. Prefer {@link layer}, which also runs the sweeper.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*<R>(options: Options<R>) {
  const store = yield* ApprovalStore
  const sink = yield* AuditSink
  const identity = yield* Identity
  const redaction = options.redaction === undefined ? Redaction.defaults : yield* Redaction.make(options.redaction)
  const context = yield* Effect.context<R>()
  const ids = Context.get(context, IdGenerator)
  const approvalTimeout = yield* durationOf(
    "approvalTimeout",
    options.approvalTimeout,
    seconds("approval_timeout_seconds", "governance", 3600)
  )
  const pollInterval = yield* durationOf(
    "pollInterval",
    options.pollInterval,
    seconds("approval_poll_interval_seconds", "runtime", 1)
  )
  const maxTransforms = options.maxTransforms ?? 3
  if (!Number.isSafeInteger(maxTransforms) || maxTransforms < 0) {
    return yield* new InvalidOption({
      option: "maxTransforms",
      problem: `must be a non-negative integer, not ${String(maxTransforms)}`
    })
  }
  const limits: PendingLimits = {
    perRequester: yield* countOf(
      "maxPendingPerRequester",
      options.maxPendingPerRequester,
      count("max_pending_per_requester", "governance", 100)
    ),
    perTenant: yield* countOf(
      "maxPendingPerTenant",
      options.maxPendingPerTenant,
      count("max_pending_per_tenant", "governance", 10_000)
    )
  }
  const set = options.policySet
  const actionLimits = yield* actionLimitsOf(options.actionLimits)

  /** The action, when it is one the runtime can govern (see `Action.validate`). */
  const checked = (action: Action.Action): Either.Either<Action.Action, Action.InvalidAction> =>
    Action.validate(action, actionLimits)

  /** What an approval binds to, never computed lossily. */
  const hashOf = (action: Action.Action): Effect.Effect<string, Action.InvalidAction> =>
    Effect.try({
      try: () => Action.hash(action, actionLimits),
      catch: (error) =>
        error instanceof Action.InvalidAction ? error : new Action.InvalidAction({ path: "", reason: "unreadable" })
    })

  // Parked callers by approval id: one waiter, or several when `enforce`
  // and `resume` wait on the same approval. Small objects, not Deferreds,
  // keep a parked call small (100k parked calls must fit in a few hundred MB).
  const waiters = new Map<string, Waiter | Array<Waiter>>()

  const addWaiter = (approvalId: string, waiter: Waiter): void => {
    const current = waiters.get(approvalId)
    if (current === undefined) waiters.set(approvalId, waiter)
    else if (current instanceof Waiter) waiters.set(approvalId, [current, waiter])
    else current.push(waiter)
  }

  const removeWaiter = (approvalId: string, waiter: Waiter): void => {
    const current = waiters.get(approvalId)
    if (current === waiter) {
      waiters.delete(approvalId)
    } else if (Array.isArray(current)) {
      const i = current.indexOf(waiter)
      if (i >= 0) current.splice(i, 1)
      if (current.length === 0) waiters.delete(approvalId)
    }
  }

  const notify = (request: Approval.ApprovalRequest): void => {
    if (request.status === "pending") return
    const current = waiters.get(request.id)
    if (current === undefined) return
    waiters.delete(request.id)
    if (current instanceof Waiter) current.notify(request)
    else for (const waiter of current) waiter.notify(request)
  }

  const now = Effect.map(Effect.clockWith((clock) => clock.currentTimeMillis), (ms) => new Date(ms))

  const write = (entry: Audit.Entry): Effect.Effect<void, Approval.StoreError> => Effect.asVoid(sink.append(entry))

  /** For steps that already happened (the work ran): a failed write is reported, not thrown at the caller. */
  const writeAfter = (entry: Effect.Effect<Audit.Entry>): Effect.Effect<void> =>
    Effect.flatMap(entry, write).pipe(
      Effect.catchAll((error) => Effect.logError("gavel: writing an audit event failed", error))
    )

  /**
   * Evaluates and writes `decision.evaluated`: the written (redacted) record,
   * and the raw decision (a transform's replacement action unmasked). A caller
   * that gives up during the evaluation leaves `evaluation.cancelled`.
   */
  const evaluateWritten = (action: Action.Action) =>
    Effect.provide(PolicySet.evaluate(set, action), context).pipe(
      Effect.onInterrupt(() => writeAfter(Effect.map(now, (at) => entries.cancelled(action, at)))),
      Effect.flatMap((raw) => {
        const written = Redaction.record(redaction, raw, action)
        return Effect.as(write(entries.evaluated(written.record, written.payload)), {
          decision: raw.decision,
          record: written.record
        })
      })
    )

  // Denials, escalations and deferrals are kept so that they can be
  // overridden; an approval requirement is answered by approving instead.
  const keepIfBlocked = (record: DecisionRecord.DecisionRecord) =>
    isBlocked(record.decision) ? Effect.as(store.saveDecision(record), record) : Effect.succeed(record)

  const evaluate = (action: Action.Action) =>
    Effect.flatMap(
      checked(action),
      (valid) => Effect.flatMap(evaluateWritten(valid), ({ record }) => keepIfBlocked(record))
    )

  /**
   * Runs the work between `execution.started` and `execution.succeeded` /
   * `failed`. Call it uninterruptibly, with `restore` for the work alone: the
   * start is written if and only if the work begins.
   */
  const runWork = <A, E, R2>(
    of: entries.Execution,
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>,
    restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>
  ): Effect.Effect<A, E | Approval.StoreError, R2> =>
    Effect.zipRight(
      Effect.flatMap(now, (at) => write(entries.started(of, at))),
      Effect.onExit(
        restore(work(action)),
        (exit) => writeAfter(Effect.map(now, (at) => entries.ended(of, at, exit)))
      )
    )

  const execute = <A, E, R2>(
    of: entries.Execution,
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>
  ) => Effect.uninterruptibleMask((restore) => runWork(of, action, work, restore))

  /** Evaluates, following transforms; returns the final action and its record. */
  const decide = (
    action: Action.Action
  ): Effect.Effect<
    { readonly action: Action.Action; readonly record: DecisionRecord.DecisionRecord },
    Action.InvalidAction | TooManyTransforms | Approval.StoreError
  > => {
    const loop = (
      current: Action.Action,
      depth: number
    ): Effect.Effect<
      { readonly action: Action.Action; readonly record: DecisionRecord.DecisionRecord },
      Action.InvalidAction | TooManyTransforms | Approval.StoreError
    > =>
      // A replacement is checked like the action itself.
      Effect.flatMap(checked(current), () =>
        Effect.flatMap(evaluateWritten(current), ({ decision, record }) => {
          if (decision._tag !== "Transform") return Effect.as(keepIfBlocked(record), { action: current, record })
          if (depth >= maxTransforms) return Effect.fail(new TooManyTransforms({ limit: maxTransforms, record }))
          return loop(decision.action, depth + 1)
        }))
    return loop(action, 0)
  }

  const open = (action: Action.Action, record: DecisionRecord.DecisionRecord) =>
    Effect.flatMap(hashOf(action), (actionHash) => {
      const decision = record.decision
      const createdAt = record.evaluatedAt
      const kind: Approval.Kind = decision._tag === "RequireApproval" ? "approval" : "acknowledgment"
      const requirement = decision._tag === "RequireApproval" ? decision.requirement : undefined
      const timeout = requirement?.timeout ?? approvalTimeout
      const expiresAt = createdAt.getTime() + Duration.toMillis(timeout)
      const request: Approval.ApprovalRequest = {
        id: ids.next("apr"),
        kind,
        decisionId: record.decisionId,
        requestId: record.requestId,
        correlationId: record.correlationId,
        policyId: record.policyId,
        actionHash,
        summary: record.inputs,
        requester: action.actor.id,
        reasons: record.reasons,
        requirement: {
          quorum: requirement?.quorum ?? 1,
          authority: record.approvalAuthority ?? { roles: [], principals: [] },
          separationOfDuties: requirement?.separationOfDuties ?? false,
          // The record's own expiry is usually this instant: one Date less per parked call.
          expiresAt: record.expiresAt !== null && record.expiresAt.getTime() === expiresAt
            ? record.expiresAt
            : new Date(expiresAt)
        },
        votes: noVotes,
        status: "pending",
        createdAt,
        resolvedAt: null,
        consumedAt: null,
        trace: record.trace
      }
      return Effect.as(
        Effect.uninterruptible(
          store.create(request, limits).pipe(
            // Refused: nothing was opened, the refusal is audited after the decision.
            Effect.tapErrorTag("TooManyPending", (error) => write(entries.refused(record, error, createdAt))),
            Effect.zipRight(write(entries.approval("approval.requested", request, createdAt, request.requester))),
            Effect.zipRight(Metrics.adjustApprovalsPending(1))
          )
        ),
        request
      )
    })

  /**
   * What an interrupted wait does (the only way out of it but a resolution).
   * An anonymous function, like every function a parked call keeps: tsx
   * (`keepNames`) gives each named closure its own property table.
   */
  const interrupted = (waiter: Waiter) => (cause: Cause.Cause<never>): Effect.Effect<never> => {
    removeWaiter(waiter.approvalId, waiter)
    return waiter.onInterrupt === undefined
      ? Effect.failCause(cause)
      : Effect.zipRight(waiter.onInterrupt(waiter.approvalId), Effect.failCause(cause))
  }

  /**
   * Waits until the approval leaves `pending`, then goes on with `then`.
   * Call it in an uninterruptible region: only the wait itself is
   * interruptible, and interrupting it runs `onInterrupt` (built only then).
   * Registers before reading, so a resolution written in between is not
   * missed.
   *
   * While parked, the fiber's stack holds this wait's two handlers (and the
   * region around it): nothing they capture may be large. The decision
   * record and the request are not among it.
   */
  const awaitResolution = <A, E, R2>(
    approvalId: string,
    onInterrupt: ((approvalId: string) => Effect.Effect<void>) | undefined,
    then: (request: Approval.ApprovalRequest) => Effect.Effect<A, E, R2>
  ): Effect.Effect<A, E | Approval.ApprovalNotFound | Approval.StoreError, R2> =>
    Effect.suspend(() => {
      const waiter = new Waiter(approvalId, onInterrupt)
      addWaiter(approvalId, waiter)
      return Effect.matchEffect(store.get(approvalId), {
        onFailure: (error) => {
          removeWaiter(approvalId, waiter)
          return Effect.fail(error)
        },
        onSuccess: (current) => {
          if (current.status !== "pending") {
            removeWaiter(approvalId, waiter)
            return then(current)
          }
          if (waiter.resolved !== undefined) return then(waiter.resolved)
          return Effect.matchCauseEffect(Effect.interruptible(waiter.parked()), {
            onFailure: interrupted(waiter),
            onSuccess: then
          })
        }
      })
    })

  const cancel = (approvalId: string, by?: Action.Principal) =>
    Effect.uninterruptible(Effect.flatMap(now, (at) =>
      store.cancel(approvalId, at).pipe(
        Effect.tap(notify),
        Effect.tap(() => Metrics.adjustApprovalsPending(-1)),
        Effect.tap((cancelled) => write(entries.approval("approval.cancelled", cancelled, at, by?.id ?? null)))
      )))

  const cancelQuietly = (approvalId: string): Effect.Effect<void> => Effect.ignore(cancel(approvalId))

  /**
   * Opens an approval for the action and parks until it is resolved, then
   * completes. Opening and parking cannot be split by an interruption: a
   * caller that gives up always cancels the approval it opened.
   *
   * The region stays on the parked fiber's stack until the approval
   * resolves, so it reaches the record only through `toOpen`, emptied once
   * the approval is open: a parked call does not keep its record. (Each
   * `enforce` builds this effect anew, so it runs once.)
   */
  const openAndPark = <A, E, R2>(
    action: Action.Action,
    record: DecisionRecord.DecisionRecord,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>
  ): Effect.Effect<A, E | Approval.TooManyPending | ResumeError, R2> => {
    let toOpen: DecisionRecord.DecisionRecord | undefined = record
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        Effect.suspend(() => {
          const opening = open(action, toOpen!)
          toOpen = undefined
          return opening
        }),
        (request) =>
          awaitResolution(request.id, cancelQuietly, (resolved) => restore(complete(resolved, action, work)))
      )
    )
  }

  /** After resolution: still allowed, consumed once (for this very action), then the work. */
  const complete = <A, E, R2>(
    request: Approval.ApprovalRequest,
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>
  ) =>
    Effect.gen(function*() {
      const failure = Approval.failure(request)
      if (Option.isSome(failure)) return yield* failure.value
      const { decision, record } = yield* evaluateWritten(action)
      if (!stillSatisfied(request, decision)) {
        return yield* new RevalidationFailed({ approvalId: request.id, record })
      }
      const of: entries.Execution = { record, approvalId: request.id, overrideId: null }
      // Once consumed, the work starts: an interruption cannot fall between the two.
      return yield* Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(now, (at) =>
          // The store refuses another action (ActionMismatch) atomically with the consume.
          Effect.flatMap(hashOf(action), (actionHash) => store.consume(request.id, actionHash, at)).pipe(
            Effect.flatMap((consumed) => write(entries.approval("approval.consumed", consumed, at, null))),
            Effect.zipRight(runWork(of, action, work, restore))
          ))
      ).pipe(
        // The span records the outcome, never the work's error (its message may quote inputs).
        Effect.exit,
        Effect.tap((exit) =>
          Effect.annotateCurrentSpan("gavel.execution.outcome", exit._tag === "Success" ? "succeeded" : "failed")
        ),
        // The resumed work runs in its own span, linked to the request that asked for it.
        Effect.withSpan("gavel.execute", {
          captureStackTrace: false,
          attributes: { "gavel.approval_id": request.id, "gavel.decision_id": record.decisionId },
          links: request.trace === null ? [] : [{
            _tag: "SpanLink",
            span: Tracer.externalSpan(request.trace),
            attributes: { "gavel.link": "approval.requested" }
          }]
        }),
        Effect.flatten
      )
    })

  /** The active override that lets `action`, decided `decision`, through now, if any. */
  const overrideFor = (action: Action.Action, decision: Decision.Decision) =>
    Effect.flatMap(now, (at) => store.findOverride(action, decision, at))

  const blocked = (record: DecisionRecord.DecisionRecord): Denied | Escalated | Deferred => {
    switch (record.decision._tag) {
      case "Escalate":
        return new Escalated({ record })
      case "Defer":
        return new Deferred({ record })
      default:
        return new Denied({ record })
    }
  }

  const run = <A, E, R2>(
    submission: Submission,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>
  ): Effect.Effect<A, E | EnforceError, R2> => {
    const { action, record } = submission
    switch (submission._tag) {
      case "Pending":
        return resume(submission.approvalId, action, work)
      case "Overridden":
        return Effect.flatMap(
          checked(action),
          (valid) => execute({ record, approvalId: null, overrideId: submission.override.id }, valid, work)
        )
      case "Decided":
        return Decision.canProceed(record.decision)
          ? Effect.flatMap(checked(action), (valid) => execute({ record, approvalId: null, overrideId: null }, valid, work))
          : Effect.fail(blocked(record))
    }
  }

  const enforce = <A, E, R2>(
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>
  ): Effect.Effect<A, E | EnforceError, R2> =>
    Effect.flatMap(decide(action), ({ action: final, record }): Effect.Effect<A, E | EnforceError, R2> => {
      if (Decision.canProceed(record.decision)) {
        return execute({ record, approvalId: null, overrideId: null }, final, work)
      }
      return Effect.flatMap(overrideFor(final, record.decision), (override): Effect.Effect<A, E | EnforceError, R2> => {
        if (Option.isSome(override)) {
          return execute({ record, approvalId: null, overrideId: override.value.id }, final, work)
        }
        if (isBlocked(record.decision)) return Effect.fail(blocked(record))
        return openAndPark(final, record, work)
      })
    })

  type Submitted = Effect.Effect<Submission, Action.InvalidAction | Approval.TooManyPending | Approval.StoreError>

  const submit = (
    action: Action.Action
  ): Effect.Effect<Submission, Action.InvalidAction | TooManyTransforms | Approval.TooManyPending | Approval.StoreError> =>
    Effect.flatMap(decide(action), ({ action: final, record }): Submitted => {
      if (Decision.canProceed(record.decision)) return Effect.succeed({ _tag: "Decided", record, action: final })
      return Effect.flatMap(overrideFor(final, record.decision), (override): Submitted => {
        if (Option.isSome(override)) {
          return Effect.succeed({ _tag: "Overridden", override: override.value, record, action: final })
        }
        if (isBlocked(record.decision)) return Effect.succeed({ _tag: "Decided", record, action: final })
        return Effect.map(open(final, record), (request) => ({
          _tag: "Pending",
          approvalId: request.id,
          expiresAt: request.requirement.expiresAt,
          record,
          action: final
        }))
      })
    })

  const resume = <A, E, R2>(
    approvalId: string,
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>
  ): Effect.Effect<A, E | ResumeError, R2> =>
    Effect.flatMap(Effect.zip(Effect.flatMap(checked(action), hashOf), store.get(approvalId)), ([actionHash, request]) => {
      // Refuse another action before waiting on an approval that cannot apply to it.
      if (actionHash !== request.actionHash) {
        return Effect.fail(
          new Approval.ActionMismatch({ approvalId, expected: request.actionHash, actual: actionHash })
        )
      }
      return Effect.uninterruptibleMask((restore) =>
        awaitResolution(approvalId, undefined, (resolved) => restore(complete(resolved, action, work)))
      )
    })

  /**
   * Who `presented` is according to the identity system: the id it
   * resolves to (its canonical form: a directory may fold case, width or
   * whitespace, or know aliases), or `presented` itself when the identity
   * system does not know it. Every comparison of principals — separation of
   * duties, one vote per approver, an override of one's own decision — is
   * between canonical ids, so an alias is the same person.
   */
  const resolveCanonical = (presented: string) =>
    Effect.map(identity.resolve(presented), (resolved): Canonical => ({
      id: Option.isSome(resolved) ? resolved.value.id : presented,
      resolved
    }))

  /**
   * Whether the identity system says the principal is active, of the
   * decision's tenant (when both have one) and within `authority`.
   */
  const withinAuthority = (
    principal: Canonical,
    authority: Decision.Authority,
    tenant: string | null
  ): "ok" | "unknown_principal" | "inactive" | "other_tenant" | "outside_authority" => {
    const resolved = principal.resolved
    if (Option.isNone(resolved)) return "unknown_principal"
    if (resolved.value.status !== "active") return "inactive"
    if (tenant !== null && resolved.value.tenant !== undefined && resolved.value.tenant !== tenant) {
      return "other_tenant"
    }
    return authority.principals.includes(principal.id) ||
        resolved.value.roles.some((role) => authority.roles.includes(role))
      ? "ok"
      : "outside_authority"
  }

  const eligibility = (principal: Canonical, request: Approval.ApprovalRequest) => {
    const verdict = withinAuthority(principal, request.requirement.authority, request.summary.actor.tenant)
    return verdict === "ok"
      ? Effect.map(identity.canApprove(principal.id, request), (ok) => ok ? verdict : "refused" as const)
      : Effect.succeed(verdict)
  }

  const castVote = (
    expected: Approval.Kind | undefined,
    verdict: Approval.Verdict,
    approvalId: string,
    presented: Action.Principal,
    note: string | undefined
  ): Effect.Effect<Approval.ApprovalRequest, VoteError> =>
    Effect.gen(function*() {
      const request = yield* store.get(approvalId)
      if (expected !== undefined && request.kind !== expected) {
        return yield* new Approval.WrongKind({ approvalId, expected, actual: request.kind })
      }
      // The voter, the requester and every earlier voter as the identity
      // system knows them now.
      // (One after the other: forking fibers for two calls costs more than
      // it saves with an identity system that answers from memory.)
      const voter = yield* resolveCanonical(presented.id)
      const requester = yield* resolveCanonical(request.requester)
      const earlier = request.votes.length === 0 ? [] : yield* Effect.forEach(
        request.votes,
        (v) => resolveCanonical(v.approver),
        { concurrency: "unbounded" }
      )
      if (
        request.requirement.separationOfDuties &&
        (voter.id === requester.id || presented.id === request.requester)
      ) {
        return yield* new Approval.SelfApprovalForbidden({ approvalId, principalId: voter.id })
      }
      // A second vote of one person under another spelling; on an approval
      // that can no longer be voted on, the store's answer (AlreadyResolved,
      // ApprovalExpired) comes first, as for any vote.
      const open = request.status === "pending" && !Approval.isDue(request, (yield* now).getTime())
      if (open && earlier.some((e) => e.id === voter.id)) {
        return yield* new Approval.DuplicateVote({ approvalId, principalId: voter.id })
      }
      const verdictOfVoter = yield* eligibility(voter, request)
      if (verdictOfVoter !== "ok") {
        return yield* new Approval.NotAnApprover({ approvalId, principalId: voter.id, reason: verdictOfVoter })
      }
      // Votes already cast count only while their approvers are still
      // eligible, once per person (votes recorded under two aliases of one
      // approver count once), and never the requester's under separation of
      // duties.
      const seen = new Set<string>()
      const twice = request.votes.map((v, i) => {
        const approver = earlier[i]!.id
        const again = seen.has(approver) || (request.requirement.separationOfDuties && approver === requester.id)
        if (v.counted) seen.add(approver)
        return again
      })
      const revoked = request.votes.length === 0 ? [] : Arr.getSomes(
        yield* Effect.forEach(request.votes, (v, i) =>
          !v.counted
            ? Effect.succeedNone
            : twice[i]
            ? Effect.succeedSome(v.approver)
            : Effect.map(eligibility(earlier[i]!, request), (e) => e === "ok" ? Option.none() : Option.some(v.approver)),
          { concurrency: "unbounded" })
      )
      const at = yield* now
      return yield* Effect.uninterruptible(
        Effect.tap(
          store.vote(approvalId, { approver: voter.id, verdict, note: note ?? null, at }, { revoked }),
          (next) => {
            notify(next)
            // Both events carry the approval as it stands after the vote: encoded once.
            const data = entries.approvalData(next)
            const voted = write(entries.approval("approval.voted", next, at, voter.id, data))
            return next.status === "pending" ? voted : voted.pipe(
              Effect.zipRight(Metrics.adjustApprovalsPending(-1)),
              Effect.zipRight(write(entries.approval("approval.resolved", next, at, voter.id, data)))
            )
          }
        )
      )
    })

  const override = (decisionId: string, options: OverrideOptions) =>
    Effect.gen(function*() {
      const found = yield* store.getDecision(decisionId)
      if (Option.isNone(found)) return yield* new DecisionNotFound({ decisionId })
      const record = found.value
      const principalId = options.authority.id
      const refuse = (reason: OverrideNotAllowed["reason"]) =>
        new OverrideNotAllowed({ decisionId, principalId, reason })
      if (options.reason.trim() === "") return yield* refuse("missing_reason")
      const duration = Duration.decodeUnknown(options.duration)
      if (Option.isNone(duration) || !Duration.isFinite(duration.value) || Duration.toMillis(duration.value) <= 0) {
        return yield* refuse("invalid_duration")
      }
      if (record.overridePolicy === null) return yield* refuse("no_override_policy")
      const authority = yield* resolveCanonical(principalId)
      const actor = yield* resolveCanonical(record.inputs.actor.id)
      if (authority.id === actor.id || principalId === record.inputs.actor.id) return yield* refuse("own_decision")
      const verdict = withinAuthority(authority, record.overridePolicy.authority, record.inputs.actor.tenant)
      if (verdict !== "ok") return yield* refuse(verdict)
      const grantedAt = yield* now
      const granted: Override.Override = {
        id: ids.next("ovr"),
        overrides: decisionId,
        policyId: record.policyId,
        grantedBy: authority.id,
        reason: options.reason.trim(),
        scope: record.scope,
        coverage: options.scope ?? "actor",
        actor: record.inputs.actor.id,
        compensatingControls: options.compensatingControls ?? [],
        ...(options.waiveApproval === true ? { waivesApproval: true } : {}),
        grantedAt,
        expiresAt: new Date(grantedAt.getTime() + Duration.toMillis(duration.value))
      }
      yield* Effect.uninterruptible(
        Effect.zipRight(store.saveOverride(granted), write(entries.overrideGranted(granted, record)))
      )
      return granted
    })

  const expireDue = Effect.flatMap(now, (at) =>
    Effect.uninterruptible(Effect.tap(store.expireDue(at), (expired) => {
      for (const request of expired) notify(request)
      return Effect.zipRight(
        Metrics.adjustApprovalsPending(-expired.length),
        Effect.forEach(expired, (request) => write(entries.approval("approval.expired", request, at, null)), {
          discard: true
        })
      )
    })))

  if (store.shared) {
    // Resolutions written by other processes reach this one by polling, and
    // at once when the store announces them (`resolutions`); an announcement
    // is only a hint to read the approval now.
    const recheck = (id: string) => Effect.match(store.get(id), { onFailure: () => undefined, onSuccess: notify })
    const recheckAll = Effect.suspend(() =>
      Effect.forEach(Array.from(waiters.keys()), recheck, { concurrency: 16, discard: true })
    )
    yield* Effect.forkScoped(recheckAll.pipe(Effect.repeat(Schedule.spaced(pollInterval))))
    if (store.resolutions !== undefined) {
      yield* Effect.forkScoped(
        store.resolutions.pipe(
          Stream.mapEffect(
            (resolution) =>
              resolution._tag === "Resync"
                ? recheckAll
                : waiters.has(resolution.approvalId)
                ? recheck(resolution.approvalId)
                : Effect.void,
            { concurrency: 16, unordered: true }
          ),
          Stream.runDrain
        )
      )
    }
  }

  return Governance.of({
    evaluate,
    enforce,
    submit,
    resume,
    run,
    cancel,
    approve: (approvalId, approver, note) => castVote("approval", "approve", approvalId, approver, note),
    reject: (approvalId, approver, note) => castVote(undefined, "reject", approvalId, approver, note),
    acknowledge: (approvalId, actor, note) => castVote("acknowledgment", "approve", approvalId, actor, note),
    override,
    expireDue
  })
})

/**
 * The runtime as a scoped layer, with its sweeper: every
 * `sweepInterval` it expires due approvals and wakes their parked callers
 * with `ApprovalExpired`. Fails to build (refuses to start) on an invalid
 * configuration value.
 *
 * @example
 * ```ts
 * import { ApprovalStore, Governance } from "@gavel/core"
 * import { Layer } from "effect"
 *
 * const GovernanceLive = Governance.layer({ policySet }).pipe(
 *   Layer.provide(ApprovalStore.layerMemory),
 *   Layer.provide(IdentityLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <R>(
  options: Options<R>
): Layer.Layer<
  Governance,
  ConfigError.ConfigError | InvalidOption | Redaction.InvalidRedaction,
  R | ApprovalStore | AuditSink | Identity
> =>
  Layer.scoped(
    Governance,
    Effect.gen(function*() {
      const service = yield* make(options)
      const interval = yield* durationOf(
        "sweepInterval",
        options.sweepInterval,
        seconds("approval_sweep_interval_seconds", "runtime", 5)
      )
      yield* Effect.forkScoped(
        service.expireDue.pipe(
          Effect.catchAll((error) => Effect.logWarning("gavel: sweeping expired approvals failed", error)),
          Effect.repeat(Schedule.spaced(interval)),
          Effect.delay(interval)
        )
      )
      return service
    })
  )
