/**
 * A decision chosen by the name of its kind: what a failure handler names
 * (`"Deny"`, see `Policy.onFailure`) and what a rules document's effect
 * stands for (`deny`, `require-approval`, see `Rules`). One function builds
 * both, with the `Decision` constructors.
 */
import * as Decision from "../Decision.js"

/**
 * The kinds of decision a name may choose: every one but `Transform`, which
 * needs the action to put in place of the original.
 *
 * @internal
 */
export type Kind = Exclude<Decision.Decision["_tag"], "Transform">

/**
 * The settings of the kinds that take some, as their constructors take them:
 * `reviewPath` for `Escalate`; `roles` and `principals` for
 * `RequireAcknowledgment` and `RequireApproval`; `quorum`,
 * `separationOfDuties` and `timeout` for `RequireApproval`. Other kinds
 * ignore them.
 *
 * @internal
 */
export type Settings =
  & NonNullable<Parameters<typeof Decision.escalate>[1]>
  & NonNullable<Parameters<typeof Decision.requireApproval>[1]>

/**
 * The decision of kind `kind`, with `reasons` (`undefined`: none) and the
 * `settings` its kind takes.
 *
 * @internal
 */
export const ofKind = (kind: Kind, reasons: Decision.Reasons | undefined, settings?: Settings): Decision.Decision => {
  switch (kind) {
    case "Allow":
      return Decision.allow(reasons)
    case "Warn":
      return Decision.warn(reasons ?? [])
    case "Defer":
      return Decision.defer(reasons ?? [])
    case "Escalate":
      return Decision.escalate(reasons ?? [], settings)
    case "RequireAcknowledgment":
      return Decision.requireAcknowledgment(reasons ?? [], settings)
    case "RequireApproval":
      return Decision.requireApproval(reasons ?? [], settings)
    case "Deny":
      return Decision.deny(reasons ?? [])
  }
}
