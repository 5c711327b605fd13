/**
 * The typed failures of effectful policies. They stay in a policy's error
 * type until a combinator (`Policy.failClosed`, `Policy.onFailure`) states what
 * each one means as a decision; a policy set only accepts policies whose
 * error type is `never`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"

/**
 * A policy did not answer in time: its own timeout, or what was left of the
 * evaluation budget (`budget: true`), whichever was smaller.
 *
 * @since 0.1.0
 * @category errors
 */
export class PolicyTimeout extends Schema.TaggedError<PolicyTimeout>()("PolicyTimeout", {
  policyId: Schema.String,
  limit: Schema.DurationFromMillis,
  budget: Schema.Boolean
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const what = this.budget ? "the remaining evaluation budget" : "its timeout"
    return `Policy "${this.policyId}" did not answer within ${what} (${Duration.format(this.limit)})`
  }
}

/**
 * A check was aborted by something other than the caller (the check
 * interrupted itself, or its connection was aborted from elsewhere). Caller
 * cancellation is not an error: it is interruption, and produces no decision.
 *
 * @since 0.1.0
 * @category errors
 */
export class PolicyCancelled extends Schema.TaggedError<PolicyCancelled>()("PolicyCancelled", {
  policyId: Schema.String,
  detail: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Policy "${this.policyId}" was cancelled: ${this.detail}`
  }
}

/**
 * An external system (identity, ticketing, quota, compliance, an HTTP
 * service) failed to answer: it was unreachable, answered with an error, or
 * answered something that could not be understood.
 *
 * @since 0.1.0
 * @category errors
 */
export class ExternalCheckFailed extends Schema.TaggedError<ExternalCheckFailed>()("ExternalCheckFailed", {
  system: Schema.String,
  operation: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `${this.system}.${this.operation} failed: ${this.detail}`
  }
}

/**
 * Any of the three.
 *
 * @since 0.1.0
 * @category models
 */
export type PolicyError = PolicyTimeout | PolicyCancelled | ExternalCheckFailed

/**
 * @since 0.1.0
 * @category guards
 */
export const isPolicyError = (u: unknown): u is PolicyError =>
  u instanceof PolicyTimeout || u instanceof PolicyCancelled || u instanceof ExternalCheckFailed
