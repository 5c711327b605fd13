/**
 * What the A2A wrapper publishes about a task: the task itself, its status
 * updates, and the reason codes and decision facts a client may act on —
 * never internals (no messages of failed checks, no payloads).
 */
import { type Task, Role, TaskState } from "@a2a-js/sdk"
import { type AgentExecutionEvent, type RequestContext, AgentEvent } from "@a2a-js/sdk/server"
import { Action, type DecisionRecord } from "@gavel/core"

/**
 * Reason-code metadata of a status update: what a client may act on, never internals.
 *
 * @internal
 */
export type Facts = Record<string, string | ReadonlyArray<string>>

/** @internal */
export const iso = (millis: number): string => new Date(millis).toISOString()

/**
 * The ids of the task an event is about.
 *
 * @internal
 */
export interface TaskIds {
  readonly taskId: string
  readonly contextId: string
}

const agentMessage = (ids: TaskIds, text: string, metadata: Facts) => ({
  messageId: crypto.randomUUID(),
  contextId: ids.contextId,
  taskId: ids.taskId,
  role: Role.ROLE_AGENT,
  parts: [{ content: { $case: "text" as const, value: text }, metadata: undefined, filename: "", mediaType: "text/plain" }],
  metadata: { ...metadata },
  extensions: [],
  referenceTaskIds: []
})

/**
 * The task as the first event of a call: the one the SDK loaded for a follow-up turn, or a new one.
 *
 * @internal
 */
export const taskEvent = (context: RequestContext, now: number): AgentExecutionEvent => {
  const task: Task = context.task ?? {
    id: context.taskId,
    contextId: context.contextId,
    status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: iso(now) },
    artifacts: [],
    history: [context.userMessage],
    metadata: {}
  }
  return AgentEvent.task(task)
}

/**
 * A status update of the task, its message and its metadata naming the facts.
 *
 * @internal
 */
export const statusEvent = (
  ids: TaskIds,
  state: TaskState,
  text: string,
  metadata: Facts,
  now: number
): AgentExecutionEvent =>
  AgentEvent.statusUpdate({
    taskId: ids.taskId,
    contextId: ids.contextId,
    status: { state, message: agentMessage(ids, text, metadata), timestamp: iso(now) },
    metadata: { ...metadata }
  })

/**
 * Why a task is rejected: reason codes, and the decision (its record, or only its id) when there was one.
 *
 * @internal
 */
export interface Rejection {
  readonly codes: ReadonlyArray<string>
  readonly text: string
  readonly record?: DecisionRecord.DecisionRecord | undefined
  readonly decisionId?: string | undefined
}

/** @internal */
export const rejection = (code: string, text: string): Rejection => ({ codes: [code], text: `${text} (${code})` })

/**
 * A message that is not an action gavel can govern: the path and reason of `InvalidAction` tell the caller why.
 *
 * @internal
 */
export const invalidAction = (error: unknown): Rejection =>
  rejection(
    "a2a.action_invalid",
    error instanceof Action.InvalidAction
      ? `The message could not be turned into an action: ${error.message}`
      : "The message could not be turned into an action"
  )

/** @internal */
export const decisionFacts = (record: DecisionRecord.DecisionRecord): Facts => ({
  decision: record.decision._tag,
  decision_id: record.decisionId,
  reason_codes: record.reasonCodes
})

/** @internal */
export const rejectionFacts = (r: Rejection): Facts =>
  r.record !== undefined
    ? { ...decisionFacts(r.record), reason_codes: r.codes }
    : r.decisionId !== undefined
    ? { decision_id: r.decisionId, reason_codes: r.codes }
    : { reason_codes: r.codes }

/**
 * The rejection of an action gavel did not let through: denied, escalated or deferred.
 *
 * @internal
 */
export const byRecord = (record: DecisionRecord.DecisionRecord): Rejection => {
  const codes = record.reasonCodes.join(", ")
  const text = record.decision._tag === "Escalate"
    ? `Escalated for review (${codes}), decision ${record.decisionId}`
    : record.decision._tag === "Defer"
    ? `Deferred (${codes}), decision ${record.decisionId}`
    : `Denied by policy (${codes}), decision ${record.decisionId}`
  return { codes: record.reasonCodes, text, record }
}

/**
 * The reason code of a parked task whose approval ended without a usable grant.
 *
 * @internal
 */
export const resumeCode = (tag: string): string => {
  switch (tag) {
    case "ApprovalRejected":
      return "approval.rejected"
    case "ApprovalExpired":
      return "approval.expired"
    case "RevalidationFailed":
      return "approval.revalidation_failed"
    case "AlreadyConsumed":
      return "approval.already_consumed"
    case "ApprovalNotFound":
      return "approval.not_found"
    default:
      return "approval.unusable"
  }
}

/**
 * A parked task cancelled by its client before its approval was resolved.
 *
 * @internal
 */
export const cancelledEvent = (ids: TaskIds, approvalId: string, now: number): AgentExecutionEvent =>
  statusEvent(
    ids,
    TaskState.TASK_STATE_CANCELED,
    `Cancelled while awaiting approval ${approvalId}; the agent did not run`,
    { approval_id: approvalId },
    now
  )
