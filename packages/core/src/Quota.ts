/**
 * The quota port: check, and consume idempotently, units of a budget (calls,
 * tokens, money) keyed by subject.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Action from "./Action.js"
import * as Decision from "./Decision.js"
import * as Policy from "./Policy.js"
import type { ExternalCheckFailed, PolicyCancelled } from "./PolicyError.js"

/**
 * The answer of the quota system: whether the units fit, and what is left.
 *
 * @since 0.1.0
 * @category models
 */
export const Allowance = Schema.Struct({
  allowed: Schema.Boolean,
  remaining: Schema.Number,
  limit: Schema.Number
}).annotations({ identifier: "QuotaAllowance" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Allowance extends Schema.Schema.Type<typeof Allowance> {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Whether `units` more fit under the quota of `key`, without using them. */
  readonly check: (key: string, units: number) => Effect.Effect<Allowance, ExternalCheckFailed>
  /**
   * Uses `units` of `key`'s quota if they fit. Calling it again with the same
   * `idempotencyKey` returns the first answer and uses nothing more.
   */
  readonly consume: (request: {
    readonly key: string
    readonly units: number
    readonly idempotencyKey: string
  }) => Effect.Effect<Allowance, ExternalCheckFailed>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Quota extends Context.Tag("@gavel/core/Quota")<Quota, Service>() {}

/**
 * Denies (`quota.exceeded`) when the action's units do not fit under the
 * quota of its key; abstains otherwise — a quota limits, it never grants.
 * With `consume: true` the units are used, idempotently keyed by the action's
 * `requestId` (or its hash when it has none), so a retried evaluation does
 * not use them twice.
 *
 * @since 0.1.0
 * @category checks
 */
export const withinQuota = (options: {
  readonly key: (action: Action.Action) => string
  readonly units?: ((action: Action.Action) => number) | undefined
  readonly consume?: boolean | undefined
  readonly id?: string | undefined
}): Policy.Policy<ExternalCheckFailed | PolicyCancelled, Quota> =>
  Policy.effect(options.id ?? "quota", (action) =>
    Effect.flatMap(Quota, (quota) => {
      const key = options.key(action)
      const units = options.units?.(action) ?? 1
      const answer = options.consume === true
        ? quota.consume({ key, units, idempotencyKey: action.requestId ?? Action.hash(action) })
        : quota.check(key, units)
      return Effect.map(answer, (allowance): Decision.Result =>
        allowance.allowed
          ? Decision.notApplicable
          : Decision.deny({
            code: "quota.exceeded",
            message: `Quota "${key}" has ${allowance.remaining} of ${allowance.limit} left; ${units} requested`
          }))
    }))
