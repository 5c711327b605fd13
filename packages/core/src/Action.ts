/**
 * The thing being governed: who wants to do what, to which resource, with
 * which payload.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { canonicalJson, sha256Hex } from "./internal/canonical.js"

/**
 * The kind of actor behind an action.
 *
 * @since 0.1.0
 * @category models
 */
export const PrincipalKind = Schema.Literal("human", "agent", "service")

/**
 * @since 0.1.0
 * @category models
 */
export type PrincipalKind = typeof PrincipalKind.Type

/**
 * An authenticated actor: its id, kind, roles, tenant and safe string
 * attributes.
 *
 * @since 0.1.0
 * @category models
 */
export const Principal = Schema.Struct({
  id: Schema.NonEmptyTrimmedString,
  kind: PrincipalKind,
  roles: Schema.Array(Schema.String),
  tenant: Schema.optional(Schema.String),
  attributes: Schema.Record({ key: Schema.String, value: Schema.String })
}).annotations({ identifier: "Principal" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Principal extends Schema.Schema.Type<typeof Principal> {}

/**
 * The resource an action touches.
 *
 * @since 0.1.0
 * @category models
 */
export const Resource = Schema.Struct({
  type: Schema.String,
  id: Schema.String
}).annotations({ identifier: "Resource" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Resource extends Schema.Schema.Type<typeof Resource> {}

/**
 * W3C trace context ids carried with an action so that decisions and
 * approvals link back to the request that caused them.
 *
 * @since 0.1.0
 * @category models
 */
export const TraceContext = Schema.Struct({
  traceId: Schema.String,
  spanId: Schema.String
}).annotations({ identifier: "TraceContext" })

/**
 * @since 0.1.0
 * @category models
 */
export interface TraceContext extends Schema.Schema.Type<typeof TraceContext> {}

/**
 * An action to govern.
 *
 * - `kind`: `"tool"`, `"agent"`, `"http"`, `"data"` or a kind of the host's own.
 * - `metadata`: safe string facts for policies (`region`, `risk`), never secrets.
 * - `payload`: the proposed input; it is hashed into {@link hash} but never
 *   copied into a decision record.
 *
 * @since 0.1.0
 * @category models
 */
export const Action = Schema.Struct({
  actor: Principal,
  kind: Schema.NonEmptyTrimmedString,
  name: Schema.NonEmptyTrimmedString,
  resource: Schema.optional(Resource),
  payload: Schema.optional(Schema.Unknown),
  metadata: Schema.Record({ key: Schema.String, value: Schema.String }),
  requestId: Schema.optional(Schema.String),
  correlationId: Schema.optional(Schema.String),
  trace: Schema.optional(TraceContext)
}).annotations({ identifier: "Action" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Action extends Schema.Schema.Type<typeof Action> {}

/**
 * What {@link make} accepts: the {@link Action} with `roles`, `attributes` and
 * `metadata` optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Input {
  readonly actor: {
    readonly id: string
    readonly kind: PrincipalKind
    readonly roles?: ReadonlyArray<string> | undefined
    readonly tenant?: string | undefined
    readonly attributes?: Readonly<Record<string, string>> | undefined
  }
  readonly kind: string
  readonly name: string
  readonly resource?: Resource | undefined
  readonly payload?: unknown
  readonly metadata?: Readonly<Record<string, string>> | undefined
  readonly requestId?: string | undefined
  readonly correlationId?: string | undefined
  readonly trace?: TraceContext | undefined
}

const emptyRecord: Readonly<Record<string, string>> = Object.freeze({})
const emptyArray: ReadonlyArray<string> = Object.freeze([])

/**
 * Builds an {@link Action} from trusted, typed input, filling empty roles,
 * attributes and metadata. Untrusted input (JSON from a request) goes through
 * `Schema.decodeUnknown(Action.Action)` instead, which validates it.
 *
 * @example
 * ```ts
 * import { Action } from "@gavel/core"
 *
 * const action = Action.make({
 *   actor: { id: "agent-7", kind: "agent", roles: ["operator"] },
 *   kind: "tool",
 *   name: "payments.transfer",
 *   payload: { amount: 250, currency: "EUR" }
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (input: Input): Action => {
  const actor: { -readonly [K in keyof Principal]: Principal[K] } = {
    id: input.actor.id,
    kind: input.actor.kind,
    roles: input.actor.roles ?? emptyArray,
    attributes: input.actor.attributes ?? emptyRecord
  }
  if (input.actor.tenant !== undefined) actor.tenant = input.actor.tenant
  const action: { -readonly [K in keyof Action]: Action[K] } = {
    actor,
    kind: input.kind,
    name: input.name,
    metadata: input.metadata ?? emptyRecord
  }
  if (input.resource !== undefined) action.resource = input.resource
  if (input.payload !== undefined) action.payload = input.payload
  if (input.requestId !== undefined) action.requestId = input.requestId
  if (input.correlationId !== undefined) action.correlationId = input.correlationId
  if (input.trace !== undefined) action.trace = input.trace
  return action
}

/**
 * The canonical JSON of an action: object keys sorted, strings in Unicode NFC,
 * `undefined` members omitted. Two actions with the same canonical JSON are the
 * same action.
 *
 * @since 0.1.0
 * @category hashing
 */
export const canonical = (action: Action): string => canonicalJson(action)

/**
 * SHA-256 (lowercase hex) of the canonical JSON of what the action *does*:
 * every field except the request's own identifiers (`requestId`,
 * `correlationId`, `trace`), which change with each retry or hop of the same
 * action. This is what an approval binds to: key order and Unicode
 * normalization do not change it; any changed actor, kind, name, resource,
 * payload or metadata does.
 *
 * @since 0.1.0
 * @category hashing
 */
export const hash = (action: Action): string => {
  if (action.requestId === undefined && action.correlationId === undefined && action.trace === undefined) {
    return sha256Hex(canonicalJson(action))
  }
  const { correlationId: _c, requestId: _r, trace: _t, ...bound } = action
  return sha256Hex(canonicalJson(bound))
}
