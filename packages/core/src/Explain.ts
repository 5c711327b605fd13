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
 * for every effectful policy, and for synchronous ones only when the policy
 * set asks for timed explanations (timing a pure function costs more than
 * calling it); otherwise it is `null`.
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
