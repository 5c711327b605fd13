/**
 * Overrides: granting one on a denial, escalation or deferral, to a
 * principal within the policy set's override authority, and finding the
 * active one that lets an action through.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Action from "../../Action.js"
import type * as Decision from "../../Decision.js"
import { DecisionNotFound, OverrideNotAllowed, type OverrideOptions } from "../../Governance.js"
import type * as Override from "../../Override.js"
import * as entries from "../auditEntries.js"
import type { GovernanceContext } from "./context.js"
import { type Eligibility, withinAuthority } from "./eligibility.js"

/**
 * The overrides of one runtime.
 *
 * @internal
 */
export type Overrides = ReturnType<typeof make>

/**
 * The overrides, kept in `ctx.store`, principals judged by `eligible`.
 *
 * @internal
 */
export const make = (ctx: GovernanceContext, eligible: Eligibility) => {
  const { now, step, store } = ctx
  const { resolveCanonical } = eligible

  /** Grants an override of the decision, or refuses it. */
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
        id: ctx.ids.next("ovr"),
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
        step(store.saveOverride(granted), () => [entries.overrideGranted(granted, record)], () => Effect.void)
      )
      return granted
    })

  /** The active override that lets `action`, decided `decision`, through now, if any. */
  const overrideFor = (action: Action.Action, decision: Decision.Decision) =>
    Effect.flatMap(now, (at) => store.findOverride(action, decision, at))

  return { override, overrideFor }
}
