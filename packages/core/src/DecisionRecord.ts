/**
 * The decision record: the auditable, serializable result of evaluating a
 * policy set against one action (the contract of seed 004).
 *
 * @since 0.1.0
 */
import * as JSONSchema from "effect/JSONSchema"
import * as Schema from "effect/Schema"
import * as Action from "./Action.js"
import * as Decision from "./Decision.js"
import * as Explain from "./Explain.js"

/**
 * What the decision covers: the action kind and name, the resource and the
 * tenant. A decision authorizes this scope, nothing wider.
 *
 * @since 0.1.0
 * @category models
 */
export const Scope = Schema.Struct({
  kind: Schema.String,
  name: Schema.String,
  resource: Schema.NullOr(Action.Resource),
  tenant: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Scope" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Scope extends Schema.Schema.Type<typeof Scope> {}

/**
 * The minimized inputs the decision was made on: the actor without its
 * attributes, the action without its payload, and the metadata (safe string
 * facts by contract). What was left out is listed in `redaction`.
 *
 * @since 0.1.0
 * @category models
 */
export const Inputs = Schema.Struct({
  actor: Schema.Struct({
    id: Schema.String,
    kind: Action.PrincipalKind,
    roles: Schema.Array(Schema.String),
    tenant: Schema.NullOr(Schema.String)
  }),
  kind: Schema.String,
  name: Schema.String,
  resource: Schema.NullOr(Action.Resource),
  metadata: Schema.Record({ key: Schema.String, value: Schema.String })
}).annotations({ identifier: "Inputs" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Inputs extends Schema.Schema.Type<typeof Inputs> {}

/**
 * Paths of the action that were omitted from the record.
 *
 * @since 0.1.0
 * @category models
 */
export const Redaction = Schema.Struct({
  omitted: Schema.Array(Schema.String)
}).annotations({ identifier: "Redaction" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Redaction extends Schema.Schema.Type<typeof Redaction> {}

/**
 * Who may override a decision of this policy set. Overrides never mutate a
 * record: they are new decisions linked to the one they override.
 *
 * @since 0.1.0
 * @category models
 */
export const OverridePolicy = Schema.Struct({
  authority: Decision.Authority
}).annotations({ identifier: "OverridePolicy" })

/**
 * @since 0.1.0
 * @category models
 */
export interface OverridePolicy extends Schema.Schema.Type<typeof OverridePolicy> {}

/**
 * The decision record. Every field is always present (`null` or empty when it
 * does not apply), so consumers never guess.
 *
 * - `decisionId`: unique per evaluation; `requestId` and `correlationId` come
 *   from the action (defaulting to the decision id and the request id).
 * - `policyId`, `policyVersion`, `policyHash`: which policy set decided.
 * - `decision`, `reasons`, `reasonCodes`: the outcome and why.
 * - `requiredApprovals`, `approvalAuthority`: the approval quorum (0 when no
 *   approval is needed) and who may approve or acknowledge.
 * - `evaluatedAt`, `expiresAt`: `Date`s in memory, ISO-8601 strings in JSON;
 *   `expiresAt` is when the approval (or, with a policy set TTL, the
 *   decision) lapses.
 * - `defaulted`: true when no policy applied and the set's default decided.
 * - `explain`: each policy's result and duration, in evaluation order.
 *
 * @since 0.1.0
 * @category models
 */
export const DecisionRecord = Action.boundedMessages(Schema.Struct({
  decisionId: Schema.String,
  requestId: Schema.String,
  correlationId: Schema.String,
  policyId: Schema.String,
  policyVersion: Schema.String,
  policyHash: Schema.String,
  evaluatedAt: Schema.Date,
  scope: Scope,
  inputs: Inputs,
  decision: Decision.Decision,
  reasonCodes: Schema.Array(Schema.String),
  reasons: Schema.Array(Decision.Reason),
  requiredApprovals: Schema.NonNegativeInt,
  approvalAuthority: Schema.NullOr(Decision.Authority),
  expiresAt: Schema.NullOr(Schema.Date),
  overridePolicy: Schema.NullOr(OverridePolicy),
  evidenceRefs: Schema.Array(Schema.String),
  redaction: Redaction,
  reviewPath: Schema.Array(Schema.String),
  trace: Schema.NullOr(Action.TraceContext),
  defaulted: Schema.Boolean,
  explain: Schema.Array(Explain.Entry)
}).annotations({
  identifier: "DecisionRecord",
  title: "gavel decision record",
  description: "The auditable result of evaluating a gavel policy set against one action"
}))

/**
 * @since 0.1.0
 * @category models
 */
export interface DecisionRecord extends Schema.Schema.Type<typeof DecisionRecord> {}

/**
 * The record as JSON (what `encode` produces and `decode` accepts).
 *
 * @since 0.1.0
 * @category models
 */
export type Encoded = Schema.Schema.Encoded<typeof DecisionRecord>

/**
 * Encodes a record to its JSON form.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = Schema.encode(DecisionRecord)

/**
 * Decodes and validates a record from unknown JSON.
 *
 * @since 0.1.0
 * @category encoding
 */
export const decodeUnknown = Schema.decodeUnknown(DecisionRecord)

/**
 * The JSON Schema (draft-07) of the encoded record, for consumers outside
 * TypeScript.
 *
 * @since 0.1.0
 * @category encoding
 */
export const jsonSchema: JSONSchema.JsonSchema7Root = JSONSchema.make(DecisionRecord)

/**
 * True when the record's decision lets the protected work run as proposed.
 *
 * @since 0.1.0
 * @category guards
 */
export const canProceed = (self: DecisionRecord): boolean => Decision.canProceed(self.decision)
