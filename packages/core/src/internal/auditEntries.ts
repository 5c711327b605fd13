/**
 * The audit entries the runtime writes, one builder per kind of step.
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import type * as Action from "../Action.js"
import * as Approval from "../Approval.js"
import type * as Audit from "../Audit.js"
import * as DecisionRecord from "../DecisionRecord.js"
import * as Override from "../Override.js"

const encodeRecord = Schema.encodeSync(DecisionRecord.DecisionRecord)
const encodeApproval = Schema.encodeSync(Approval.ApprovalRequest)
const encodeOverride = Schema.encodeSync(Override.Override)

/** A decision was made: the (already redacted) record, and the masked payload when included. */
export const evaluated = (
  record: DecisionRecord.DecisionRecord,
  payload: unknown
): Audit.Entry => ({
  type: "decision.evaluated",
  at: record.evaluatedAt,
  decisionId: record.decisionId,
  approvalId: null,
  requestId: record.requestId,
  correlationId: record.correlationId,
  actor: record.inputs.actor.id,
  trace: record.trace,
  data: payload === undefined ? { record: encodeRecord(record) } : { record: encodeRecord(record), payload }
})

/** The caller gave up while the policies ran: what was being decided, never its inputs. */
export const cancelled = (action: Action.Action, at: Date): Audit.Entry => ({
  type: "evaluation.cancelled",
  at,
  decisionId: null,
  approvalId: null,
  requestId: action.requestId ?? null,
  correlationId: action.correlationId ?? null,
  actor: action.actor.id,
  trace: action.trace ?? null,
  data: { kind: action.kind, name: action.name }
})

/** A step of an approval's lifecycle, with the approval as it stands after it. */
export const approval = (
  type:
    | "approval.requested"
    | "approval.voted"
    | "approval.resolved"
    | "approval.expired"
    | "approval.consumed"
    | "approval.cancelled",
  request: Approval.ApprovalRequest,
  at: Date,
  actor: string | null
): Audit.Entry => ({
  type,
  at,
  decisionId: request.decisionId,
  approvalId: request.id,
  requestId: request.requestId,
  correlationId: request.correlationId,
  actor,
  trace: request.trace,
  data: { approval: encodeApproval(request) }
})

/** An override was granted. */
export const overrideGranted = (
  override: Override.Override,
  record: DecisionRecord.DecisionRecord
): Audit.Entry => ({
  type: "override.granted",
  at: override.grantedAt,
  decisionId: override.overrides,
  approvalId: null,
  requestId: record.requestId,
  correlationId: record.correlationId,
  actor: override.grantedBy,
  trace: record.trace,
  data: { override: encodeOverride(override) }
})

/** What an execution step refers to: the decision that let it run, and the approval if one did. */
export interface Execution {
  readonly record: DecisionRecord.DecisionRecord
  readonly approvalId: string | null
  readonly overrideId: string | null
}

const execution = (
  type: "execution.started" | "execution.succeeded" | "execution.failed",
  of: Execution,
  at: Date,
  data: Audit.Entry["data"]
): Audit.Entry => ({
  type,
  at,
  decisionId: of.record.decisionId,
  approvalId: of.approvalId,
  requestId: of.record.requestId,
  correlationId: of.record.correlationId,
  actor: of.record.inputs.actor.id,
  trace: of.record.trace,
  data
})

/** The protected work is about to run. */
export const started = (of: Execution, at: Date): Audit.Entry =>
  execution("execution.started", of, at, of.overrideId === null ? {} : { overrideId: of.overrideId })

/**
 * The work ended. A failure is described by its kind and, for a typed error,
 * its `_tag` — never its message, which may quote inputs.
 */
export const ended = (of: Execution, at: Date, exit: Exit.Exit<unknown, unknown>): Audit.Entry => {
  if (Exit.isSuccess(exit)) return execution("execution.succeeded", of, at, {})
  const cause = exit.cause
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") {
    const error = failure.value
    const tag = typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
      ? error._tag
      : null
    return execution("execution.failed", of, at, { failure: "failure", tag })
  }
  return execution("execution.failed", of, at, {
    failure: Cause.isInterruptedOnly(cause) ? "interrupted" : "defect",
    tag: null
  })
}
