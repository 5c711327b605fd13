/**
 * Overrides: a decision by a principal with override authority that lets an
 * otherwise blocked action proceed, for a bounded scope and duration. An
 * override never mutates the record it overrides; it is a new record linked
 * to it by `overrides`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import type * as Action from "./Action.js"
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
 *
 * @since 0.1.0
 * @category models
 */
export const Override = Schema.Struct({
  id: Schema.String,
  overrides: Schema.String,
  policyId: Schema.String,
  grantedBy: Schema.String,
  reason: Schema.NonEmptyTrimmedString,
  scope: DecisionRecord.Scope,
  coverage: Coverage,
  actor: Schema.String,
  compensatingControls: Schema.Array(Schema.String),
  grantedAt: Schema.Date,
  expiresAt: Schema.Date
}).annotations({ identifier: "Override", title: "gavel override" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Override extends Schema.Schema.Type<typeof Override> {}

/**
 * True when the override covers `action` at `now` (strictly before its
 * expiry).
 *
 * @since 0.1.0
 * @category predicates
 */
export const covers = (self: Override, action: Action.Action, now: number): boolean => {
  if (now >= self.expiresAt.getTime()) return false
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
