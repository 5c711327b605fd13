/**
 * Approvals: the pending state of a `RequireApproval` or
 * `RequireAcknowledgment` decision, its votes, its lifecycle, and the pure
 * transitions every {@link ApprovalStore} applies atomically.
 *
 * ```text
 *            vote (quorum met)              consume (same action, before expiry)
 * pending ───────────────────► approved ─────────────────────────────────────► consumed
 *    │ vote (a counted reject)
 *    ├───────────────────────► rejected
 *    │ expireDue (now ≥ expiresAt)
 *    ├───────────────────────► expired
 *    │ cancel (the caller gave up)
 *    └───────────────────────► cancelled
 * ```
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Action from "./Action.js"
import * as Decision from "./Decision.js"
import * as DecisionRecord from "./DecisionRecord.js"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * An approval (a quorum of approvers) or an acknowledgment (one qualified
 * actor confirms).
 *
 * @since 0.1.0
 * @category models
 */
export const Kind = Schema.Literal("approval", "acknowledgment")

/**
 * @since 0.1.0
 * @category models
 */
export type Kind = typeof Kind.Type

/**
 * Where an approval is in its lifecycle. `pending` is the only state that
 * accepts votes; `approved` the only one that can be consumed.
 *
 * @since 0.1.0
 * @category models
 */
export const Status = Schema.Literal("pending", "approved", "rejected", "expired", "cancelled", "consumed")

/**
 * @since 0.1.0
 * @category models
 */
export type Status = typeof Status.Type

/**
 * @since 0.1.0
 * @category models
 */
export const Verdict = Schema.Literal("approve", "reject")

/**
 * @since 0.1.0
 * @category models
 */
export type Verdict = typeof Verdict.Type

/**
 * One approver's vote. `counted` turns false when the approver lost
 * eligibility before the approval was resolved: the vote stays on record
 * but does not count toward the quorum.
 *
 * @since 0.1.0
 * @category models
 */
export const Vote = Schema.Struct({
  approver: Schema.String,
  verdict: Verdict,
  note: Schema.NullOr(Schema.String),
  at: Schema.Date,
  counted: Schema.Boolean
}).annotations({ identifier: "Vote" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Vote extends Schema.Schema.Type<typeof Vote> {}

/**
 * What resolves the approval: `quorum` distinct eligible approvers from
 * `authority`, the requester excluded when `separationOfDuties` is on, before
 * `expiresAt`.
 *
 * @since 0.1.0
 * @category models
 */
export const Requirement = Schema.Struct({
  quorum: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  authority: Decision.Authority,
  separationOfDuties: Schema.Boolean,
  expiresAt: Schema.Date
}).annotations({ identifier: "ApprovalRequirement" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Requirement extends Schema.Schema.Type<typeof Requirement> {}

/**
 * A pending (or resolved) approval, bound to one action by `actionHash`.
 * `summary` is the decision record's minimized inputs: the payload and the
 * actor's attributes are never stored, only hashed. It is a Schema: stores
 * persist it and servers send it as JSON.
 *
 * @since 0.1.0
 * @category models
 */
export const ApprovalRequest = Action.boundedMessages(Schema.Struct({
  id: Schema.String,
  kind: Kind,
  decisionId: Schema.String,
  requestId: Schema.String,
  correlationId: Schema.String,
  policyId: Schema.String,
  actionHash: Schema.String,
  summary: DecisionRecord.Inputs,
  requester: Schema.String,
  reasons: Schema.Array(Decision.Reason),
  requirement: Requirement,
  votes: Schema.Array(Vote),
  status: Status,
  createdAt: Schema.Date,
  resolvedAt: Schema.NullOr(Schema.Date),
  consumedAt: Schema.NullOr(Schema.Date),
  trace: Schema.NullOr(Action.TraceContext)
}).annotations({
  identifier: "ApprovalRequest",
  title: "gavel approval request",
  description: "A pending human approval or acknowledgment bound to one action"
}))

/**
 * @since 0.1.0
 * @category models
 */
export interface ApprovalRequest extends Schema.Schema.Type<typeof ApprovalRequest> {}

/**
 * The request as JSON.
 *
 * @since 0.1.0
 * @category models
 */
export type Encoded = Schema.Schema.Encoded<typeof ApprovalRequest>

/**
 * @since 0.1.0
 * @category encoding
 */
export const encode = Schema.encode(ApprovalRequest)

/**
 * @since 0.1.0
 * @category encoding
 */
export const decodeUnknown = Schema.decodeUnknown(ApprovalRequest)

/**
 * A vote as the runtime hands it to a store.
 *
 * @since 0.1.0
 * @category models
 */
export interface VoteInput {
  readonly approver: string
  readonly verdict: Verdict
  readonly note: string | null
  readonly at: Date
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * No approval with this id.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApprovalNotFound extends Schema.TaggedError<ApprovalNotFound>()("ApprovalNotFound", {
  approvalId: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `No approval "${this.approvalId}"`
  }
}

/**
 * The approval is no longer pending (someone else resolved it, or it was
 * cancelled), so this transition cannot happen.
 *
 * @since 0.1.0
 * @category errors
 */
export class AlreadyResolved extends Schema.TaggedError<AlreadyResolved>()("AlreadyResolved", {
  approvalId: Schema.String,
  status: Status
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Approval "${this.approvalId}" is already ${this.status}`
  }
}

/**
 * The approval expired before it was resolved or used. A new request needs
 * a new approval.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApprovalExpired extends Schema.TaggedError<ApprovalExpired>()("ApprovalExpired", {
  approvalId: Schema.String,
  expiresAt: Schema.Date
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Approval "${this.approvalId}" expired at ${this.expiresAt.toISOString()}`
  }
}

/**
 * An eligible approver rejected the action.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApprovalRejected extends Schema.TaggedError<ApprovalRejected>()("ApprovalRejected", {
  approvalId: Schema.String,
  rejectedBy: Schema.String,
  note: Schema.NullOr(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Approval "${this.approvalId}" was rejected by "${this.rejectedBy}"` +
      (this.note === null ? "" : `: ${this.note}`)
  }
}

/**
 * The principal may not vote on this approval: unknown to the identity
 * system, not active, of another tenant than the action's (when the identity
 * system gives the principal a tenant), outside the approval's authority, or
 * refused by the identity system's `canApprove`.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotAnApprover extends Schema.TaggedError<NotAnApprover>()("NotAnApprover", {
  approvalId: Schema.String,
  principalId: Schema.String,
  reason: Schema.Literal("unknown_principal", "inactive", "other_tenant", "outside_authority", "refused")
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `"${this.principalId}" may not vote on approval "${this.approvalId}" (${this.reason})`
  }
}

/**
 * Separation of duties: the requester may not vote on their own action.
 *
 * @since 0.1.0
 * @category errors
 */
export class SelfApprovalForbidden extends Schema.TaggedError<SelfApprovalForbidden>()("SelfApprovalForbidden", {
  approvalId: Schema.String,
  principalId: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `"${this.principalId}" requested approval "${this.approvalId}" and may not vote on it`
  }
}

/**
 * The approver already voted; one approver counts once.
 *
 * @since 0.1.0
 * @category errors
 */
export class DuplicateVote extends Schema.TaggedError<DuplicateVote>()("DuplicateVote", {
  approvalId: Schema.String,
  principalId: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `"${this.principalId}" already voted on approval "${this.approvalId}"`
  }
}

/**
 * The action presented is not the action that was approved (a changed
 * payload, another tenant, tool or resource). It needs its own approval.
 *
 * @since 0.1.0
 * @category errors
 */
export class ActionMismatch extends Schema.TaggedError<ActionMismatch>()("ActionMismatch", {
  approvalId: Schema.String,
  expected: Schema.String,
  actual: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `The action presented does not match the action approved by "${this.approvalId}"`
  }
}

/**
 * The approval was already used; an approval authorizes one execution.
 *
 * @since 0.1.0
 * @category errors
 */
export class AlreadyConsumed extends Schema.TaggedError<AlreadyConsumed>()("AlreadyConsumed", {
  approvalId: Schema.String,
  consumedAt: Schema.Date
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Approval "${this.approvalId}" was already used at ${this.consumedAt.toISOString()}`
  }
}

/**
 * The approval is still waiting for votes, so it cannot be used yet.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApprovalPending extends Schema.TaggedError<ApprovalPending>()("ApprovalPending", {
  approvalId: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Approval "${this.approvalId}" is still pending`
  }
}

/**
 * `acknowledge` was called on an approval, or `approve` on an
 * acknowledgment.
 *
 * @since 0.1.0
 * @category errors
 */
export class WrongKind extends Schema.TaggedError<WrongKind>()("WrongKind", {
  approvalId: Schema.String,
  expected: Kind,
  actual: Kind
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `"${this.approvalId}" is an ${this.actual}, not an ${this.expected}`
  }
}

/**
 * A store could not be read or written (a database error). Nothing was
 * changed by the failed operation. `component` names the store: the
 * approval store (absent, or `"approval store"`) or the audit trail
 * (`"audit trail"`, what every `AuditSink` fails with), so that an audit
 * write failure is never reported as an approval-store failure.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  operation: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect),
  component: Schema.optional(Schema.Literal("approval store", "audit trail")),
  /**
   * The decision the failed step followed, when one was already evaluated
   * and recorded (`Governance.submit` sets it): the HTTP edge answers the
   * 503 with its `Gavel-Decision-Id`.
   *
   * @since 0.2.0
   */
  decisionId: Schema.optional(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.component === "audit trail" ? "Audit trail" : "Approval store"} ${this.operation} failed: ${this.detail}`
  }
}

/**
 * The approval was not opened: its requester (`scope: "requester"`, `key`
 * the requester's id) or its tenant (`scope: "tenant"`, `key` the tenant, or
 * `null` for approvals without one) already has `limit` approvals pending.
 * Nothing was stored. A slot frees when one of them is approved, rejected,
 * cancelled or expires; `decisionId` is the decision that asked for the
 * refused approval.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyPending extends Schema.TaggedError<TooManyPending>()("TooManyPending", {
  scope: Schema.Literal("requester", "tenant"),
  key: Schema.NullOr(Schema.String),
  limit: Schema.Int,
  decisionId: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    const whose = this.scope === "requester"
      ? `requester "${this.key}"`
      : this.key === null
      ? "approvals without a tenant"
      : `tenant "${this.key}"`
    return `Too many pending approvals for ${whose} (limit ${this.limit}), decision ${this.decisionId}`
  }
}

/**
 * Why a vote was refused by the state machine.
 *
 * @since 0.1.0
 * @category errors
 */
export type VoteError = AlreadyResolved | ApprovalExpired | SelfApprovalForbidden | DuplicateVote

/**
 * Why an approval could not be consumed.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConsumeError =
  | AlreadyConsumed
  | AlreadyResolved
  | ApprovalExpired
  | ApprovalRejected
  | ApprovalPending
  | ActionMismatch

// -----------------------------------------------------------------------------
// transitions
// -----------------------------------------------------------------------------

/**
 * True when the approval can no longer be resolved because its time is up
 * (the expiry instant itself included).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isDue = (self: ApprovalRequest, now: number): boolean =>
  self.status === "pending" && now >= self.requirement.expiresAt.getTime()

/**
 * The approvers whose votes currently count toward the quorum.
 *
 * @since 0.1.0
 * @category getters
 */
export const countedApprovers = (self: ApprovalRequest): ReadonlyArray<string> =>
  self.votes.filter((v) => v.counted && v.verdict === "approve").map((v) => v.approver)

// The errors below are built from a request that is already valid, once per
// parked call when a sweep wakes 100k of them: their fields are not
// validated again (`true`: no schema check in the constructor).

const notPending = (self: ApprovalRequest): AlreadyResolved | ApprovalExpired =>
  self.status === "expired"
    ? new ApprovalExpired({ approvalId: self.id, expiresAt: self.requirement.expiresAt }, true)
    : new AlreadyResolved({ approvalId: self.id, status: self.status }, true)

const rejection = (self: ApprovalRequest): ApprovalRejected => {
  const by = self.votes.find((v) => v.counted && v.verdict === "reject")
  return new ApprovalRejected(
    { approvalId: self.id, rejectedBy: by?.approver ?? "unknown", note: by?.note ?? null },
    true
  )
}

/**
 * Records a vote. Refused when the approval is not pending, its expiry has
 * passed, the voter is the requester under separation of duties, or the
 * voter already voted. Votes by the approvers listed in `revoked` (who lost
 * eligibility since they voted) stop counting. The approval resolves as
 * `rejected` on the first counted rejection, and as `approved` when the
 * counted approvals reach the quorum.
 *
 * @since 0.1.0
 * @category transitions
 */
export const vote = (
  self: ApprovalRequest,
  input: VoteInput,
  options?: { readonly revoked?: ReadonlyArray<string> | undefined }
): Either.Either<ApprovalRequest, VoteError> => {
  if (self.status !== "pending") return Either.left(notPending(self))
  if (isDue(self, input.at.getTime())) {
    return Either.left(new ApprovalExpired({ approvalId: self.id, expiresAt: self.requirement.expiresAt }))
  }
  if (self.requirement.separationOfDuties && input.approver === self.requester) {
    return Either.left(new SelfApprovalForbidden({ approvalId: self.id, principalId: input.approver }))
  }
  if (self.votes.some((v) => v.approver === input.approver)) {
    return Either.left(new DuplicateVote({ approvalId: self.id, principalId: input.approver }))
  }
  const revoked = options?.revoked ?? []
  const votes: Array<Vote> = self.votes.map((v) =>
    v.counted && revoked.includes(v.approver) ? { ...v, counted: false } : v
  )
  votes.push({ approver: input.approver, verdict: input.verdict, note: input.note, at: input.at, counted: true })
  let approvals = 0
  let rejected = false
  for (const v of votes) {
    if (!v.counted) continue
    if (v.verdict === "reject") rejected = true
    else approvals++
  }
  const status: Status = rejected ? "rejected" : approvals >= self.requirement.quorum ? "approved" : "pending"
  return Either.right({ ...self, votes, status, resolvedAt: status === "pending" ? null : input.at })
}

/**
 * Uses an approved approval for the action with hash `actionHash`, once,
 * before its expiry.
 *
 * @since 0.1.0
 * @category transitions
 */
export const consume = (
  self: ApprovalRequest,
  actionHash: string,
  now: Date
): Either.Either<ApprovalRequest, ConsumeError> => {
  switch (self.status) {
    case "consumed":
    case "rejected":
    case "expired":
    case "cancelled":
      return Either.left(Option.getOrThrow(failure(self)))
    case "pending":
      return Either.left(
        isDue(self, now.getTime())
          ? new ApprovalExpired({ approvalId: self.id, expiresAt: self.requirement.expiresAt })
          : new ApprovalPending({ approvalId: self.id })
      )
    case "approved":
      if (now.getTime() >= self.requirement.expiresAt.getTime()) {
        return Either.left(new ApprovalExpired({ approvalId: self.id, expiresAt: self.requirement.expiresAt }))
      }
      if (actionHash !== self.actionHash) {
        return Either.left(new ActionMismatch({ approvalId: self.id, expected: self.actionHash, actual: actionHash }))
      }
      return Either.right({ ...self, status: "consumed", consumedAt: now })
  }
}

/**
 * Withdraws a pending approval (the requester gave up or was interrupted).
 *
 * @since 0.1.0
 * @category transitions
 */
export const cancel = (
  self: ApprovalRequest,
  now: Date
): Either.Either<ApprovalRequest, AlreadyResolved | ApprovalExpired> =>
  self.status === "pending"
    ? Either.right({ ...self, status: "cancelled", resolvedAt: now })
    : Either.left(notPending(self))

/**
 * Expires a pending approval whose expiry has come; `None` otherwise.
 *
 * @since 0.1.0
 * @category transitions
 */
export const expire = (self: ApprovalRequest, now: Date): Option.Option<ApprovalRequest> =>
  isDue(self, now.getTime()) ? Option.some({ ...self, status: "expired", resolvedAt: now }) : Option.none()

/**
 * The error a waiter gets for an approval that resolved without being
 * approved; `None` while it is pending or approved.
 *
 * @since 0.1.0
 * @category getters
 */
export const failure = (
  self: ApprovalRequest
): Option.Option<ApprovalRejected | ApprovalExpired | AlreadyResolved | AlreadyConsumed> => {
  switch (self.status) {
    case "pending":
    case "approved":
      return Option.none()
    case "rejected":
      return Option.some(rejection(self))
    case "consumed":
      return Option.some(
        new AlreadyConsumed({ approvalId: self.id, consumedAt: self.consumedAt ?? self.createdAt }, true)
      )
    default:
      return Option.some(notPending(self))
  }
}
