/**
 * The compliance port: verify an action against an external compliance
 * system, which answers compliant or lists violations with codes.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Action from "./Action.js"
import * as Decision from "./Decision.js"
import * as Policy from "./Policy.js"
import type { ExternalCheckFailed, PolicyCancelled } from "./PolicyError.js"

/**
 * @since 0.1.0
 * @category models
 */
export const Violation = Schema.Struct({
  code: Schema.NonEmptyTrimmedString,
  message: Schema.String
}).annotations({ identifier: "ComplianceViolation" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Violation extends Schema.Schema.Type<typeof Violation> {}

/**
 * @since 0.1.0
 * @category models
 */
export const Verdict = Schema.Union(
  Schema.TaggedStruct("Compliant", {}),
  Schema.TaggedStruct("NonCompliant", { violations: Schema.NonEmptyArray(Violation) })
).annotations({ identifier: "ComplianceVerdict" })

/**
 * @since 0.1.0
 * @category models
 */
export type Verdict = typeof Verdict.Type

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly verify: (action: Action.Action) => Effect.Effect<Verdict, ExternalCheckFailed>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Compliance extends Context.Tag("@gavel/core/Compliance")<Compliance, Service>() {}

/**
 * The reason given when the compliance system answers `NonCompliant` without
 * naming a violation: the action is still blocked, and the record says why.
 *
 * @since 0.1.0
 * @category models
 */
export const unspecifiedViolation: Violation = {
  code: "compliance.non_compliant",
  message: "The compliance system found the action non-compliant without naming a violation"
}

/**
 * Denies (or escalates, with `onViolation: "Escalate"`) with one reason per
 * violation, its code being the compliance system's code
 * ({@link unspecifiedViolation} when it names none); abstains when the
 * action is compliant — compliance limits, it never grants.
 *
 * @since 0.1.0
 * @category checks
 */
export const requireCompliant = (options?: {
  readonly id?: string | undefined
  readonly onViolation?: "Deny" | "Escalate" | undefined
}): Policy.Policy<ExternalCheckFailed | PolicyCancelled, Compliance> =>
  Policy.effect(options?.id ?? "compliance", (action) =>
    Effect.flatMap(Compliance, (compliance) =>
      Effect.map(compliance.verify(action), (verdict): Decision.Result => {
        if (verdict._tag === "Compliant") return Decision.notApplicable
        // The verdict's type says at least one violation; an adapter may not.
        const violations = verdict.violations.length > 0 ? verdict.violations : [unspecifiedViolation]
        const reasons = violations.map((v) => ({ code: v.code, message: v.message }))
        return options?.onViolation === "Escalate"
          ? Decision.escalate(reasons, { reviewPath: "compliance" })
          : Decision.deny(reasons)
      })))
