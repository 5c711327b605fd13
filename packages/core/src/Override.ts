/**
 * Overrides: a decision by a principal with override authority that lets an
 * otherwise blocked action proceed, for a bounded scope and duration. An
 * override never mutates the record it overrides; it is a new record linked
 * to it by `overrides`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Action from "./Action.js"
import type * as Decision from "./Decision.js"
import * as DecisionRecord from "./DecisionRecord.js"

/**
 * Whom the override covers: only the actor of the overridden decision, or
 * every actor acting within its scope.
 *
 * @since 0.1.0
 * @category models
 */
export const Coverage = Schema.Literal("actor", "scope")

/**
 * @since 0.1.0
 * @category models
 */
export type Coverage = typeof Coverage.Type

/**
 * An override record.
 *
 * - `id`: its own decision id; `overrides`: the decision it overrides.
 * - `grantedBy`, `reason`, `compensatingControls`: who, why, and what
 *   mitigates the risk (monitoring, a follow-up review…).
 * - `scope` (kind, name, resource, tenant of the overridden decision),
 *   `coverage` and `actor`: which actions it lets through, until `expiresAt`.
 * - `waivesApproval`: whether it also lets through actions that require an
 *   approval or an acknowledgment. Absent (or `false`), it answers only
 *   denials, escalations and deferrals: an approval requirement is answered
 *   by approving.
 *
 * @since 0.1.0
 * @category models
 */
export const Override = Action.boundedMessages(Schema.Struct({
  id: Schema.String,
  overrides: Schema.String,
  policyId: Schema.String,
  grantedBy: Schema.String,
  reason: Schema.NonEmptyTrimmedString,
  scope: DecisionRecord.Scope,
  coverage: Coverage,
  actor: Schema.String,
  compensatingControls: Schema.Array(Schema.String),
  waivesApproval: Schema.optional(Schema.Boolean),
  grantedAt: Schema.Date,
  expiresAt: Schema.Date
}).annotations({ identifier: "Override", title: "gavel override" }))

/**
 * @since 0.1.0
 * @category models
 */
export interface Override extends Schema.Schema.Type<typeof Override> {}

/**
 * True when the override answers `decision`: a denial, escalation or
 * deferral always; an approval or acknowledgment requirement only when the
 * grant waived it explicitly (`waivesApproval`).
 *
 * @since 0.1.0
 * @category predicates
 */
export const answers = (self: Override, decision: Decision.Decision): boolean => {
  switch (decision._tag) {
    case "Deny":
    case "Escalate":
    case "Defer":
      return true
    case "RequireApproval":
    case "RequireAcknowledgment":
      return self.waivesApproval === true
    default:
      return false
  }
}

/**
 * True when the override lets `action`, decided `decision`, through at `now`
 * (strictly before its expiry): the action is within its scope and coverage,
 * and the override {@link answers} the decision.
 *
 * @since 0.1.0
 * @category predicates
 */
export const covers = (self: Override, action: Action.Action, decision: Decision.Decision, now: number): boolean => {
  if (now >= self.expiresAt.getTime() || !answers(self, decision)) return false
  if (self.coverage === "actor" && action.actor.id !== self.actor) return false
  const scope = self.scope
  const resource = action.resource
  return scope.kind === action.kind &&
    scope.name === action.name &&
    scope.tenant === (action.actor.tenant ?? null) &&
    (scope.resource === null
      ? resource === undefined
      : resource !== undefined && resource.type === scope.resource.type && resource.id === scope.resource.id)
}
