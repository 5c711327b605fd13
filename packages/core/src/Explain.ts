/**
 * The explain trail: what each policy said during one evaluation, and how
 * long it took.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Decision from "./Decision.js"

/**
 * One policy's contribution to an evaluation. `durationMillis` is measured
 * for every effectful policy (for a failure turned into a decision by
 * `Policy.failClosed` or `Policy.onFailure`: from the start of the wrapped
 * policy to the failure), and for synchronous ones only when the policy set
 * asks for timed explanations (timing a pure function costs more than calling
 * it); otherwise it is `null`. Effectful durations are wall (Clock) time,
 * including time spent waiting for the scheduler.
 *
 * @since 0.1.0
 * @category models
 */
export const Entry = Schema.Struct({
  policyId: Schema.String,
  result: Decision.Result,
  durationMillis: Schema.NullOr(Schema.Number)
}).annotations({ identifier: "ExplainEntry" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Entry extends Schema.Schema.Type<typeof Entry> {}
