/**
 * The thing being governed: who wants to do what, to which resource, with
 * which payload.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import * as internal from "./internal/actionValue.js"
import { sha256Hex } from "./internal/canonical.js"
import { defaultMessage, overLimit } from "./internal/parseIssue.js"

// -----------------------------------------------------------------------------
// value domain
// -----------------------------------------------------------------------------

/**
 * How large an action may be. Every value of the action counts (its payload
 * above all); each limit is a positive integer.
 *
 * - `maxDepth`: how deeply arrays and objects may nest in the payload (`{}`
 *   is 1, `{ "a": [1] }` is 2; a `Redacted` value counts as a level). The
 *   action itself is level 0, so `metadata` is 1 and `actor.roles` 2.
 * - `maxNodes`: how many values the action holds in all (every scalar,
 *   array, object and `Redacted` value, each time it is reached: shared
 *   references count once per reference).
 * - `maxStringLength`: how many UTF-16 code units all strings and object
 *   keys hold together.
 *
 * @since 0.1.0
 * @category limits
 */
export interface Limits {
  readonly maxDepth: number
  readonly maxNodes: number
  readonly maxStringLength: number
}

/**
 * The limits used unless others are given: depth 64, 100,000 values,
 * 10,000,000 code units of text.
 *
 * @since 0.1.0
 * @category limits
 */
export const defaultLimits: Limits = internal.defaultLimits

/**
 * Why an action was refused:
 *
 * - `unsupported_type`: a value that is not JSON data (`found` says what:
 *   `Map`, `Set`, `Date`, `class Foo`, `bigint`, `function`, `symbol`,
 *   `undefined` in a `Redacted` value);
 * - `non_finite_number`: `NaN`, `Infinity` or `-Infinity`;
 * - `sparse_array`: an array with a hole or an `undefined` element;
 * - `array_property`: an array with a property besides its elements;
 * - `symbol_key`: an object or array with a symbol key;
 * - `duplicate_key`: two keys of one object that are equal after Unicode NFC
 *   normalization (the path names the key in NFC);
 * - `reserved_key`: an object with the key `"<redacted>"`, which is how a
 *   `Redacted` value is encoded;
 * - `unreadable`: reading the value threw (a throwing getter, a revoked
 *   `Proxy`);
 * - `cycle`: the value contains itself (the path is where it refers back);
 * - `too_deep`, `too_many_nodes`, `too_long`: a {@link Limits} was exceeded
 *   (`limit` is its value).
 *
 * @since 0.1.0
 * @category errors
 */
export const InvalidActionReason = Schema.Literal(...internal.reasons)

/**
 * @since 0.1.0
 * @category errors
 */
export type InvalidActionReason = typeof InvalidActionReason.Type

const describeReason = (error: {
  readonly reason: InvalidActionReason
  readonly found?: string | undefined
  readonly limit?: number | undefined
}): string => {
  switch (error.reason) {
    case "unsupported_type":
      return `${error.found ?? "the value"} is not JSON data`
    case "non_finite_number":
      return `${error.found ?? "the number"} is not a finite number`
    case "sparse_array":
      return "an array has a hole or an undefined element"
    case "array_property":
      return "an array has a property besides its elements"
    case "symbol_key":
      return "an object has a symbol key"
    case "duplicate_key":
      return "two keys are equal after Unicode NFC normalization"
    case "reserved_key":
      return `the key "${internal.redactedKey}" is reserved for Redacted values`
    case "unreadable":
      return "reading the value threw (a getter or a revoked Proxy)"
    case "cycle":
      return "the value contains itself"
    case "too_deep":
      return `nested deeper than ${error.limit} levels`
    case "too_many_nodes":
      return `more than ${error.limit} values`
    case "too_long":
      return `more than ${error.limit} characters of strings and keys`
  }
}

/**
 * An action that cannot be governed: a value outside the domain, or one
 * over the {@link Limits}. `path` names the value (`payload.items[3].name`,
 * `metadata["a2a.task_id"]`; empty for the action itself; inside a
 * `Redacted` value, the `Redacted` value).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidAction extends Schema.TaggedError<InvalidAction>()("InvalidAction", {
  path: Schema.String,
  reason: InvalidActionReason,
  /** What was found, for `unsupported_type` and `non_finite_number`. */
  found: Schema.optional(Schema.String),
  /** The limit that was exceeded, for `too_deep`, `too_many_nodes` and `too_long`. */
  limit: Schema.optional(Schema.Number)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.path === "" ? "the action" : this.path}: ${describeReason(this)} (${this.reason})`
  }
}

const toError = (problem: internal.Problem): InvalidAction =>
  new InvalidAction({
    path: problem.path,
    reason: problem.reason,
    ...(problem.found === undefined ? {} : { found: problem.found }),
    ...(problem.limit === undefined ? {} : { limit: problem.limit })
  })

/**
 * Annotates a schema so that the message of its decode error never prints a
 * refused value beyond the {@link Limits} (missing ones default to
 * {@link defaultLimits}). Effect's formatters (a `ParseError`'s `message`,
 * `TreeFormatter`, `ArrayFormatter`) print the value a type check refused,
 * recursively: given from code, an object nested ten thousand levels deep
 * where a string belongs overflows the stack while its error is formatted.
 * With the annotation, such an error's message is that of an
 * {@link InvalidAction} — the path of the value, the limit — and every
 * other error reads as it would without it. A refused value is counted
 * from itself, as {@link validateJson} counts a body: its containers start
 * at depth 1.
 *
 * For a schema without a `message` annotation of its own (a struct, a
 * record, an array, a union). gavel's schemas that take values from outside
 * carry it: {@link Action}, {@link Principal}, {@link Resource},
 * {@link TraceContext}, the approval, decision record, audit event and
 * override, the approvals API's bodies.
 *
 * @example
 * ```ts
 * import { Action } from "@gavel/core"
 * import { Either, Schema } from "effect"
 *
 * const Body = Action.boundedMessages(Schema.Struct({ note: Schema.String }))
 * let note: unknown = {}
 * for (let i = 0; i < 10_000; i++) note = { a: note }
 * const decoded = Schema.decodeUnknownEither(Body)({ note })
 * if (Either.isLeft(decoded)) decoded.left.message // "note.a.a.a…: nested deeper than 64 levels (too_deep)"
 * ```
 *
 * @since 0.2.0
 * @category validation
 */
export const boundedMessages = <S extends Schema.Annotable.All>(
  self: S,
  limits?: Partial<Limits>
): Schema.Annotable.Self<S> => {
  const resolved = internal.resolveLimits(limits)
  // Annotating drops the identifier (what JSON Schema and OpenAPI name the schema by): kept.
  const identifier = AST.getIdentifierAnnotation(self.ast)
  return self.annotations({
    ...(Option.isSome(identifier) ? { identifier: identifier.value } : {}),
    message: (issue) => {
      const problem = overLimit(issue, resolved)
      return problem === undefined ? defaultMessage(issue) : { message: toError(problem).message, override: true }
    }
  })
}

/**
 * A schema filter that refuses what {@link validate} refuses, for one part of
 * an action, with the path in its message.
 */
const domain = <S extends Schema.Schema.Any>(self: S, root: string, depth = 1): Schema.filter<S> =>
  self.pipe(Schema.filter((value) => {
    if (value === undefined) return true
    const problem = internal.check(value, internal.defaultLimits, root, depth)
    return problem === undefined || `${toError(problem).message}`
  }))

/**
 * A payload: JSON data and `Redacted` values of JSON data, within the
 * default {@link Limits} (see {@link validate}).
 *
 * @since 0.1.0
 * @category models
 */
export const Payload: Schema.filter<typeof Schema.Unknown> = domain(Schema.Unknown, "payload").annotations({
  identifier: "Payload"
})

/** A record of strings whose keys stay distinct after NFC normalization. */
const StringRecord = (root: string) => domain(Schema.Record({ key: Schema.String, value: Schema.String }), root)

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
export const Principal = boundedMessages(Schema.Struct({
  id: Schema.NonEmptyTrimmedString,
  kind: PrincipalKind,
  roles: Schema.Array(Schema.String),
  tenant: Schema.optional(Schema.String),
  attributes: StringRecord("actor.attributes")
}).annotations({ identifier: "Principal" }))

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
export const Resource = boundedMessages(Schema.Struct({
  type: Schema.String,
  id: Schema.String
}).annotations({ identifier: "Resource" }))

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
export const TraceContext = boundedMessages(Schema.Struct({
  traceId: Schema.String,
  spanId: Schema.String
}).annotations({ identifier: "TraceContext" }))

/**
 * @since 0.1.0
 * @category models
 */
export interface TraceContext extends Schema.Schema.Type<typeof TraceContext> {}

const ActionFields = boundedMessages(Schema.Struct({
  actor: Principal,
  kind: Schema.NonEmptyTrimmedString,
  name: Schema.NonEmptyTrimmedString,
  resource: Schema.optional(Resource),
  // Exact: not a union with `undefined`, whose failure would print the
  // refused payload (deep enough, and printing it overflows the stack).
  payload: Schema.optionalWith(Schema.Unknown, { exact: true }),
  metadata: Schema.Record({ key: Schema.String, value: Schema.String }),
  requestId: Schema.optional(Schema.String),
  correlationId: Schema.optional(Schema.String),
  trace: Schema.optional(TraceContext)
}))

/**
 * An action to govern.
 *
 * - `kind`: `"tool"`, `"agent"`, `"http"`, `"data"` or a kind of the host's own.
 * - `metadata`: safe string facts for policies (`region`, `risk`), never secrets.
 * - `payload`: the proposed input; it is hashed into {@link hash} but never
 *   copied into a decision record. JSON data (and `Redacted` values of JSON
 *   data) within the {@link Limits}: see {@link validate}.
 *
 * Decoding (`Schema.decodeUnknown(Action.Action)`) checks the types of the
 * fields, then refuses what {@link validate} refuses under the default
 * limits — the whole action counted, as `validate` counts it — with the
 * path in the message. Its fields are `Action.Action.from.fields`.
 *
 * @since 0.1.0
 * @category models
 */
export const Action: Schema.filter<typeof ActionFields> = domain(ActionFields, "", 0).annotations({
  identifier: "Action"
})

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
 * Builds an {@link Action} from typed input, filling empty roles,
 * attributes and metadata, and checks it with {@link validate} under the
 * default limits. Untrusted input (JSON from a request) goes through
 * `Schema.decodeUnknown(Action.Action)` instead, which checks its types too.
 *
 * @throws {@link InvalidAction} when the action carries a value that is not
 * JSON data or exceeds the default {@link Limits}.
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
  const action = makeUnvalidated(input)
  const problem = internal.check(action, internal.defaultLimits, "", 0)
  if (problem !== undefined) throw toError(problem)
  return action
}

/**
 * Builds an {@link Action} like {@link make}, without checking it: for an
 * action handed straight to `Governance`, which checks it under its own
 * `actionLimits` and fails with {@link InvalidAction}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeUnvalidated = (input: Input): Action => {
  // Own properties only: a property some other code put on `Object.prototype`
  // (a `tenant`, a `resource`) must not become a field of the action.
  const given = own(input, "actor") as Input["actor"]
  const actor: { -readonly [K in keyof Principal]: Principal[K] } = {
    id: own(given, "id") as string,
    kind: own(given, "kind") as PrincipalKind,
    roles: own(given, "roles") ?? emptyArray,
    attributes: own(given, "attributes") ?? emptyRecord
  }
  const tenant = own(given, "tenant")
  if (tenant !== undefined) actor.tenant = tenant
  const action: { -readonly [K in keyof Action]: Action[K] } = {
    actor,
    kind: own(input, "kind") as string,
    name: own(input, "name") as string,
    metadata: own(input, "metadata") ?? emptyRecord
  }
  const resource = own(input, "resource")
  if (resource !== undefined) action.resource = resource
  const payload = own(input, "payload")
  if (payload !== undefined) action.payload = payload
  const requestId = own(input, "requestId")
  if (requestId !== undefined) action.requestId = requestId
  const correlationId = own(input, "correlationId")
  if (correlationId !== undefined) action.correlationId = correlationId
  const trace = own(input, "trace")
  if (trace !== undefined) action.trace = trace
  return action
}

const hasOwn = Object.prototype.hasOwnProperty

/** The object's own property `key`, never one inherited from its prototype. */
const own = <O extends object, K extends keyof O>(o: O, key: K): O[K] | undefined =>
  hasOwn.call(o, key) ? o[key] : undefined

/**
 * Checks that an action can be governed, without throwing: every value it
 * carries (the payload above all, but also a hand-built action's other
 * fields) is JSON data or a `Redacted` value of JSON data, within `limits`
 * (missing ones default to {@link defaultLimits}).
 *
 * JSON data is `null`, booleans, finite numbers (`-0` is `0`), strings,
 * arrays without holes or other properties, and plain objects (prototype
 * `Object.prototype` or `null`) without symbol keys, without two keys equal
 * after NFC normalization and without the key `"<redacted>"`. An object
 * member whose value is `undefined` is absent, as in JSON. Everything else —
 * `Map`, `Set`, `Date`, class instances, `bigint`, functions, symbols,
 * `NaN`, `Infinity`, `undefined` in an array, values whose reading throws,
 * cycles — is refused with the path of the value. The walk is iterative and
 * bounded by the limits: no input makes it overflow the stack.
 *
 * It checks values, not field types: untrusted input is decoded with
 * `Schema.decodeUnknown(Action.Action)`.
 *
 * @example
 * ```ts
 * import { Action } from "@gavel/core"
 * import { Either } from "effect"
 *
 * const action = Action.makeUnvalidated({
 *   actor: { id: "agent-7", kind: "agent" },
 *   kind: "tool",
 *   name: "export",
 *   payload: { rows: new Map() }
 * })
 * const checked = Action.validate(action)
 * if (Either.isLeft(checked)) checked.left.path // "payload.rows"
 * ```
 *
 * @since 0.1.0
 * @category validation
 */
export const validate = (action: Action, limits?: Partial<Limits>): Either.Either<Action, InvalidAction> => {
  const problem = internal.check(action, internal.resolveLimits(limits), "", 0)
  return problem === undefined ? Either.right(action) : Either.left(toError(problem))
}

/**
 * Checks parsed JSON that is about to be decoded — a request body, a file,
 * a message — against the {@link Limits} alone (depth, values, text), before
 * anything recursive walks it: a Schema decode and the message of its error,
 * a redaction, a canonical encoding. The walk is iterative: no input makes
 * it overflow the stack. Arrays and plain objects are containers; anything
 * else counts as one value. `path` names the value in the error (default
 * `""`); its containers start at depth 1, as a payload's do.
 *
 * Unlike {@link validate}, it does not check the value domain: a decode
 * that follows does.
 *
 * @example
 * ```ts
 * import { Action } from "@gavel/core"
 * import { Either } from "effect"
 *
 * const body: unknown = JSON.parse("[".repeat(3000) + "]".repeat(3000))
 * const checked = Action.validateJson(body)
 * if (Either.isLeft(checked)) checked.left.reason // "too_deep"
 * ```
 *
 * @since 0.2.0
 * @category validation
 */
export const validateJson = (
  value: unknown,
  options?: { readonly limits?: Partial<Limits> | undefined; readonly path?: string | undefined }
): Either.Either<unknown, InvalidAction> => {
  const problem = internal.measure(value, internal.resolveLimits(options?.limits), options?.path ?? "", 1)
  return problem === undefined ? Either.right(value) : Either.left(toError(problem))
}

const encode = (action: Action, limits: Partial<Limits> | undefined, bound: boolean): string => {
  const encoded = internal.encodeAction(action, internal.resolveLimits(limits), bound)
  if (typeof encoded !== "string") throw toError(encoded)
  return encoded
}

/**
 * The canonical JSON of an action: object keys sorted, strings and keys in
 * Unicode NFC, `undefined` members omitted, a `Redacted` value as
 * `{"<redacted>":"<SHA-256 of its canonical JSON>"}`. Two actions with the
 * same canonical JSON are the same action; over the values {@link validate}
 * accepts, two different actions never have the same canonical JSON.
 *
 * @throws {@link InvalidAction} for an action {@link validate} refuses
 * under `limits` (it never encodes one lossily).
 *
 * @since 0.1.0
 * @category hashing
 */
export const canonical = (action: Action, limits?: Partial<Limits>): string => encode(action, limits, false)

/**
 * SHA-256 (lowercase hex) of the canonical JSON of what the action *does*:
 * every field except the request's own identifiers (`requestId`,
 * `correlationId`, `trace`), which change with each retry or hop of the same
 * action. This is what an approval binds to: key order and Unicode
 * normalization do not change it; any changed actor, kind, name, resource,
 * payload or metadata does.
 *
 * @throws {@link InvalidAction} for an action {@link validate} refuses
 * under `limits` (it never hashes one lossily).
 *
 * @since 0.1.0
 * @category hashing
 */
export const hash = (action: Action, limits?: Partial<Limits>): string => sha256Hex(encode(action, limits, true))
