/**
 * The steps of an approval's life: open, vote, cancel and expire — each
 * written to the store and the audit trail (one unit where they share a
 * transaction: `ctx.step`), waking the calls parked on the approval once it
 * is resolved — and complete (re-evaluate, consume once, run the work).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as Action from "../../Action.js"
import * as Approval from "../../Approval.js"
import type * as Decision from "../../Decision.js"
import type * as DecisionRecord from "../../DecisionRecord.js"
import { RevalidationFailed, type VoteError } from "../../Governance.js"
import * as Metrics from "../../Metrics.js"
import * as entries from "../auditEntries.js"
import type { GovernanceContext } from "./context.js"
import type { Eligibility } from "./eligibility.js"
import type { Waiters } from "./waiters.js"

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
export const stillSatisfied = (request: Approval.ApprovalRequest, decision: Decision.Decision): boolean => {
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

/** The votes of a new approval (shared: votes are never added in place). */
const noVotes: ReadonlyArray<Approval.Vote> = Object.freeze([])

/**
 * The transitions of one runtime's approvals.
 *
 * @internal
 */
export type Transitions = ReturnType<typeof make>

/**
 * The transitions, writing through `ctx`, waking `waiters`, voters judged by
 * `eligible`.
 *
 * @internal
 */
export const make = (ctx: GovernanceContext, waiters: Waiters, eligible: Eligibility) => {
  const { continuations, evaluateWritten, hashOf, now, runStarted, step, store, write } = ctx

  /** A transition that ended approvals, and the continuations waiting on them with it. */
  const closing = <A, E>(
    transition: Effect.Effect<A, E>,
    ended: (a: A) => ReadonlyArray<Approval.ApprovalRequest>,
    at: Date
  ): Effect.Effect<A, E | Approval.StoreError> =>
    continuations === undefined ? transition : Effect.tap(transition, (a) =>
      Effect.forEach(ended(a), (request) =>
        request.status === "rejected" || request.status === "expired" || request.status === "cancelled"
          ? continuations.close(request.id, request.status, at)
          : Effect.void, { discard: true }))
  const { notify } = waiters
  const { eligibility, resolveCanonical } = eligible

  /**
   * Opens an approval for the action its record requires one for (refused
   * with `TooManyPending` over the pending limits, the refusal audited).
   */
  const open = <E = never>(
    action: Action.Action,
    record: DecisionRecord.DecisionRecord,
    attach?: (request: Approval.ApprovalRequest) => Effect.Effect<void, E>
  ) =>
    Effect.flatMap(hashOf(action), (actionHash) => {
      const decision = record.decision
      const createdAt = record.evaluatedAt
      const kind: Approval.Kind = decision._tag === "RequireApproval" ? "approval" : "acknowledgment"
      const requirement = decision._tag === "RequireApproval" ? decision.requirement : undefined
      const timeout = requirement?.timeout ?? ctx.approvalTimeout
      const expiresAt = createdAt.getTime() + Duration.toMillis(timeout)
      const request: Approval.ApprovalRequest = {
        id: ctx.ids.next("apr"),
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
          // Opened and audited as one unit: an approval nothing could run is never left pending.
          step(
            attach === undefined || continuations === undefined
              ? store.create(request, ctx.limits)
              // The continuation first: the memory store's unit undoes it when the approval is refused.
              : continuations.atomically(Effect.zipRight(attach(request), store.create(request, ctx.limits))),
            () => [entries.approval("approval.requested", request, createdAt, request.requester)],
            () => Metrics.adjustApprovalsPending(1)
          ).pipe(
            // Refused: nothing was opened, the refusal is audited after the decision.
            Effect.tapError((error) =>
              error instanceof Approval.TooManyPending ? write(entries.refused(record, error, createdAt)) : Effect.void
            )
          )
        ),
        request
      )
    })

  /** Withdraws a pending approval, `by` named as the actor. */
  const cancel = (approvalId: string, by?: Action.Principal) =>
    Effect.uninterruptible(Effect.flatMap(now, (at) =>
      step(
        closing(store.cancel(approvalId, at), (cancelled) => [cancelled], at),
        (cancelled) => [entries.approval("approval.cancelled", cancelled, at, by?.id ?? null)],
        (cancelled) => {
          notify(cancelled)
          return Metrics.adjustApprovalsPending(-1)
        }
      )))

  /** {@link cancel}, whatever comes of it: what an interrupted parked `enforce` does. */
  const cancelQuietly = (approvalId: string): Effect.Effect<void> => Effect.ignore(cancel(approvalId))

  /** After resolution: still allowed, consumed once (for this very action), then the work. */
  const complete = <A, E, R2>(
    request: Approval.ApprovalRequest,
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>
  ) =>
    Effect.gen(function*() {
      const failure = Approval.failure(request)
      if (Option.isSome(failure)) return yield* failure.value
      const { decision, record } = yield* evaluateWritten(action, { resuming: true })
      if (!stillSatisfied(request, decision)) {
        return yield* new RevalidationFailed({ approvalId: request.id, record })
      }
      const of: entries.Execution = { record, approvalId: request.id, overrideId: null, runId: null }
      // Once consumed, the work starts: an interruption cannot fall between
      // the two, and the consume and the start are written as one step.
      return yield* Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(now, (at) =>
          // The store refuses another action (ActionMismatch) atomically with the consume.
          Effect.flatMap(hashOf(action), (actionHash) =>
            step(
              store.consume(request.id, actionHash, at),
              (consumed) => [entries.approval("approval.consumed", consumed, at, null), entries.started(of, at)],
              () => Effect.void
            )).pipe(Effect.zipRight(runStarted(of, action, work, restore))))
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

  /** Records a vote (on the `expected` kind of approval, when given) by an eligible principal. */
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
      const revoked = request.votes.length === 0 ? [] : yield* eligible.revoked(request, earlier, requester)
      const at = yield* now
      return yield* Effect.uninterruptible(
        // The vote and its events (the resolution's too) as one unit.
        step(
          closing(
            store.vote(approvalId, { approver: voter.id, verdict, note: note ?? null, at }, { revoked }),
            (next) => [next],
            at
          ),
          (next) => {
            // Both events carry the approval as it stands after the vote: encoded once.
            const data = entries.approvalData(next)
            const voted = entries.approval("approval.voted", next, at, voter.id, data)
            return next.status === "pending"
              ? [voted]
              : [voted, entries.approval("approval.resolved", next, at, voter.id, data)]
          },
          (next) => {
            notify(next)
            return next.status === "pending" ? Effect.void : Metrics.adjustApprovalsPending(-1)
          }
        )
      )
    })

  /** Expires every approval that is due now and wakes its waiters. */
  const expireDue = Effect.flatMap(now, (at) =>
    Effect.uninterruptible(step(
      closing(store.expireDue(at), (expired) => expired, at),
      (expired) => expired.map((request) => entries.approval("approval.expired", request, at, null)),
      (expired) => {
        for (const request of expired) notify(request)
        return Metrics.adjustApprovalsPending(-expired.length)
      }
    )))

  return { open, cancel, cancelQuietly, complete, castVote, expireDue }
}
