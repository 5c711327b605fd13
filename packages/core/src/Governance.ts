/**
 * The governance runtime: evaluates actions against a policy set, enforces
 * the decision around the protected work, parks work that needs a human,
 * and resumes it exactly once.
 *
 * This module is the runtime's documented API — its errors, `Service` and
 * `Options`, most of its length and most of that JSDoc — and the wiring of
 * evaluate, enforce, submit, resume and run. The machinery is in
 * `internal/governance/`: `context` (settings and the steps every path
 * shares), `waiters` (parked calls and the wait), `eligibility` (who may
 * vote or override), `transitions` (open, vote, cancel, expire, complete),
 * `overrides`, and `wakeup` (polling a shared store, its announced
 * resolutions, the sweeper).
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Action from "./Action.js"
import * as Approval from "./Approval.js"
import type { ApprovalStore } from "./ApprovalStore.js"
import type { AuditSink } from "./AuditSink.js"
import * as Decision from "./Decision.js"
import * as DecisionRecord from "./DecisionRecord.js"
import type { Identity } from "./Identity.js"
import * as context from "./internal/governance/context.js"
import * as eligibility from "./internal/governance/eligibility.js"
import * as internals from "./internal/governance/internals.js"
import * as overrides from "./internal/governance/overrides.js"
import { withFields } from "./internal/storeError.js"
import * as transitions from "./internal/governance/transitions.js"
import * as waiters from "./internal/governance/waiters.js"
import * as wakeup from "./internal/governance/wakeup.js"
import type * as Override from "./Override.js"
import type * as PolicySet from "./PolicySet.js"
import type { ExternalCheckFailed } from "./PolicyError.js"
import type * as Redaction from "./Redaction.js"

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
 * needed first). Its tag is `"Deferred"` (`Effect.catchTag(…, "Deferred", …)`,
 * the HTTP body's `_tag`); the class is named so that it is never mistaken
 * for Effect's `Deferred`.
 *
 * @since 0.2.0
 * @category errors
 */
export class DecisionDeferred extends recordError<DecisionDeferred>()("Deferred") {
  /** @since 0.1.0 */
  override get message(): string {
    return `Deferred (${this.record.reasonCodes.join(", ")}), decision ${this.record.decisionId}`
  }
}

/**
 * The former name of {@link DecisionDeferred}.
 *
 * @deprecated Use {@link DecisionDeferred}: this name shadows Effect's `Deferred`.
 * @since 0.1.0
 * @category errors
 */
export const Deferred: typeof DecisionDeferred = DecisionDeferred

/**
 * @deprecated Use {@link DecisionDeferred}.
 * @since 0.1.0
 * @category errors
 */
export type Deferred = DecisionDeferred

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
  | DecisionDeferred
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
   *   {@link Escalated}, {@link DecisionDeferred} carrying the record — unless an
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
   * fails with {@link Denied}, {@link Escalated} or {@link DecisionDeferred} for a
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
  /**
   * How often events waiting in the audit outbox (for a sink outside the
   * store, see `AuditOutbox`) are delivered again. Default: the
   * `runtime.audit_retry_interval_seconds` config, else 5 seconds. Unused
   * when the store and the sink share a transaction.
   */
  readonly auditRetryInterval?: Duration.DurationInput | undefined
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
   * values, 10,000,000 characters; `maxDepth` at most 1,000, since values
   * nested deeper cannot be written). Larger actions fail with
   * `Action.InvalidAction` before anything walks them (redaction, hashing,
   * the audit trail); an invalid limit refuses to build the runtime
   * (`InvalidOption`).
   */
  readonly actionLimits?: Partial<Action.Limits> | undefined
}

// -----------------------------------------------------------------------------
// implementation
// -----------------------------------------------------------------------------

const isBlocked = (decision: Decision.Decision): boolean =>
  decision._tag === "Deny" || decision._tag === "Escalate" || decision._tag === "Defer"

/**
 * A store failure of a step that followed a recorded decision, naming that
 * decision (`StoreError.decisionId`), so that its answer can lead to the
 * record; other errors pass unchanged.
 */
const namingDecision = (record: DecisionRecord.DecisionRecord) => <E>(error: E): E =>
  error instanceof Approval.StoreError && error.decisionId === undefined
    ? withFields(error, { decisionId: record.decisionId }) as E
    : error

/**
 * Builds the service. Prefer {@link layer}, which also runs the sweeper.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*<R>(options: Options<R>) {
  const ctx = yield* context.make(options)
  const { checked, evaluateWritten, execute, hashOf, maxTransforms, store } = ctx
  const parked = waiters.make(store)
  const { awaitResolution } = parked
  const eligible = eligibility.make(ctx.identity)
  const { cancel, cancelQuietly, castVote, complete, expireDue, open } = transitions.make(ctx, parked, eligible)
  const { override, overrideFor } = overrides.make(ctx, eligible)

  // Denials, escalations and deferrals are kept so that they can be
  // overridden; an approval requirement is answered by approving instead.
  const keepIfBlocked = (record: DecisionRecord.DecisionRecord) =>
    isBlocked(record.decision)
      ? Effect.as(Effect.mapError(store.saveDecision(record), namingDecision(record)), record)
      : Effect.succeed(record)

  const evaluate = (action: Action.Action) =>
    Effect.flatMap(
      checked(action),
      (valid) => Effect.flatMap(evaluateWritten(valid), ({ record }) => keepIfBlocked(record))
    )

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

  const blocked = (record: DecisionRecord.DecisionRecord): Denied | Escalated | DecisionDeferred => {
    switch (record.decision._tag) {
      case "Escalate":
        return new Escalated({ record })
      case "Defer":
        return new DecisionDeferred({ record })
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
      // The decision is recorded: a store failure from here on names it.
      return Effect.mapError(
        Effect.flatMap(overrideFor(final, record.decision), (override): Submitted => {
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
        }),
        namingDecision(record)
      )
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

  yield* wakeup.watch(ctx, parked)

  return internals.attach(
    Governance.of({
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
    }),
    {
      ctx,
      decide,
      overrideFor,
      isBlocked,
      keepIfBlocked,
      open,
      stillSatisfied: transitions.stillSatisfied,
      onResolved: parked.onResolved
    }
  )
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
      const interval = yield* context.durationOf(
        "sweepInterval",
        options.sweepInterval,
        context.seconds("approval_sweep_interval_seconds", "runtime", 5)
      )
      yield* wakeup.sweep(service.expireDue, interval)
      return service
    })
  )
