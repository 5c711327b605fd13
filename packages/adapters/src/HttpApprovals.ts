/**
 * The approvals API, for `@effect/platform` servers: an `HttpApi` for
 * approvers (list, show, approve, reject, acknowledge, override), served
 * with its OpenAPI document by {@link layerApprovals}. The approver is
 * always the authenticated principal, never a field of the body.
 *
 * Identity comes from an {@link Authenticator} (bearer tokens; `Http.layerJwt`
 * verifies JWTs). `@gavel/adapters/Http` re-exports everything here, next to
 * the enforcement middleware, as it has since 0.1.0 (hence the `@since 0.1.0`
 * of the exports defined here); this module alone does not load `jose`.
 *
 * @since 0.2.0
 */
import { Action, Approval, ApprovalStore, Governance, Identity, Override } from "@gavel/core"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Context from "effect/Context"
import * as Either from "effect/Either"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Authenticator, bearerOf, Unauthorized } from "./internal/http/authentication.js"

/**
 * Turns a bearer token into the principal approvals are cast by: the tag
 * `Http.Authenticator`, re-exported.
 *
 * @since 0.2.0
 * @category tags
 */
export { Authenticator } from "./internal/http/authentication.js"

/**
 * The request carries no usable identity (401): the error
 * `Http.Unauthorized`, re-exported.
 *
 * @since 0.2.0
 * @category errors
 */
export { Unauthorized } from "./internal/http/authentication.js"

// -----------------------------------------------------------------------------
// authentication
// -----------------------------------------------------------------------------

/**
 * The authenticated principal of the current request.
 *
 * @since 0.1.0
 * @category tags
 */
export class CurrentPrincipal extends Context.Tag("@gavel/adapters/Http/CurrentPrincipal")<
  CurrentPrincipal,
  Action.Principal
>() {}

/**
 * The approvals API's bearer authentication.
 *
 * @since 0.1.0
 * @category middleware
 */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("@gavel/adapters/Http/Authentication", {
  failure: Unauthorized,
  provides: CurrentPrincipal,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

const layerAuthentication = Layer.effect(
  Authentication,
  Effect.map(Authenticator, (authenticator) => Authentication.of({ bearer: authenticator.authenticate }))
)

// -----------------------------------------------------------------------------
// errors and body guard
// -----------------------------------------------------------------------------

/**
 * The request body is larger than the API accepts (413).
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { limit: Schema.Number },
  HttpApiSchema.annotations({ status: 413, description: "The request body exceeds the limit (bytes)" })
) {}

/**
 * The approval store or the identity system could not be reached (503).
 * Nothing was written.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unavailable extends Schema.TaggedError<Unavailable>()(
  "Unavailable",
  {},
  HttpApiSchema.annotations({ status: 503, description: "A system gavel needs could not be reached; retry later" })
) {}

/**
 * The request body is not JSON (415): send `content-type: application/json`
 * (`curl --json`).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { contentType: Schema.String },
  HttpApiSchema.annotations({ status: 415, description: "The body must be application/json" })
) {}

const isSizeLimit = (error: Action.InvalidAction): boolean =>
  error.reason === "too_many_nodes" || error.reason === "too_long"

/** A body nested deeper than `Action.defaultLimits.maxDepth` (400). */
const BodyTooDeep = Action.InvalidAction.pipe(
  Schema.filter((error) => !isSizeLimit(error))
).annotations(HttpApiSchema.annotations({ status: 400, description: "The body is nested too deeply (path, limit)" }))

/** A body with more values or text than `Action.defaultLimits` allows (413). */
const BodyTooBig = Action.InvalidAction.pipe(
  Schema.filter(isSizeLimit)
).annotations(
  HttpApiSchema.annotations({ status: 413, description: "The body has too many values or too much text (path, limit)" })
)

/**
 * Reads and parses the body of a request before the API decodes it, so that
 * an oversized body is a 413, a body of another media type a 415, and
 * malformed JSON a 400 with a decode error (the platform would otherwise
 * answer the first and the last with a 500, and decode the form or text
 * body as a string). The parsed body is then checked against
 * `Action.defaultLimits` (`Action.validateJson`) before the decode walks it:
 * nested too deeply it is a 400, with too many values or too much text a
 * 413, both `{ _tag: "InvalidAction", path, reason, limit }`.
 *
 * @since 0.1.0
 * @category middleware
 */
export class BodyGuard extends HttpApiMiddleware.Tag<BodyGuard>()("@gavel/adapters/Http/BodyGuard", {
  failure: Schema.Union(PayloadTooLarge, UnsupportedMediaType, HttpApiError.HttpApiDecodeError, BodyTooDeep, BodyTooBig)
}) {}

const malformed = (message: string) =>
  new HttpApiError.HttpApiDecodeError({ issues: [{ _tag: "Type", path: [], message }], message })

const layerBodyGuard = (limit: number) =>
  Layer.succeed(
    BodyGuard,
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (request.method === "GET" || request.method === "HEAD") return
      const contentType = request.headers["content-type"]
      if (contentType !== undefined && !/^application\/json\s*(;|$)/i.test(contentType.trim())) {
        return yield* new UnsupportedMediaType({ contentType })
      }
      const declared = Number(request.headers["content-length"] ?? "0")
      if (declared > limit) return yield* new PayloadTooLarge({ limit })
      const text = yield* request.text.pipe(
        HttpIncomingMessage.withMaxBodySize(Option.some(limit)),
        Effect.mapError((error) =>
          error.cause instanceof Error && error.cause.message === "maxBytes exceeded"
            ? new PayloadTooLarge({ limit })
            : malformed("The request body could not be read")
        )
      )
      if (text === "") return yield* malformed("A JSON body is required")
      const body = yield* Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (error) => malformed(`Malformed JSON: ${error instanceof SyntaxError ? error.message : "unreadable"}`)
      })
      // The decode, and the message of a decode error, walk the body recursively.
      const checked = Action.validateJson(body)
      if (Either.isLeft(checked)) return yield* checked.left
    })
  )

const statusCodes = {
  ApprovalNotFound: 404,
  DecisionNotFound: 404,
  AlreadyResolved: 409,
  DuplicateVote: 409,
  WrongKind: 409,
  ApprovalExpired: 410,
  NotAnApprover: 403,
  SelfApprovalForbidden: 403,
  OverrideNotAllowed: 403
} as const

const Note = Schema.String.pipe(Schema.maxLength(2000))

/**
 * What an approver sends with a vote: an optional note. Anything else in the
 * body — an `approver` field in particular — is ignored: the approver is the
 * authenticated principal.
 *
 * @since 0.1.0
 * @category schemas
 */
export const VoteBody = Action.boundedMessages(
  Schema.Struct({ note: Schema.optional(Note) }).annotations({ identifier: "VoteBody" })
)

/**
 * What an override carries. The overrider is the authenticated principal.
 *
 * @since 0.1.0
 * @category schemas
 */
export const OverrideBody = Action.boundedMessages(Schema.Struct({
  reason: Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(2000)),
  durationSeconds: Schema.Int.pipe(Schema.between(1, 31 * 24 * 3600)),
  scope: Schema.optional(Override.Coverage),
  compensatingControls: Schema.optional(Schema.Array(Schema.String.pipe(Schema.maxLength(500)))),
  /** Also let through actions in its scope that require an approval (off unless given). */
  waiveApproval: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "OverrideBody" }))

const IdPath = Schema.Struct({ id: Schema.String })

const vote = <const Name extends "approve" | "reject" | "acknowledge">(name: Name) =>
  HttpApiEndpoint.post(name, `/approvals/:id/${name}`)
    .setPath(IdPath)
    .setPayload(VoteBody)
    .addSuccess(Approval.ApprovalRequest)
    .addError(Approval.ApprovalNotFound, { status: statusCodes.ApprovalNotFound })
    .addError(Approval.AlreadyResolved, { status: statusCodes.AlreadyResolved })
    .addError(Approval.DuplicateVote, { status: statusCodes.DuplicateVote })
    .addError(Approval.WrongKind, { status: statusCodes.WrongKind })
    .addError(Approval.ApprovalExpired, { status: statusCodes.ApprovalExpired })
    .addError(Approval.NotAnApprover, { status: statusCodes.NotAnApprover })
    .addError(Approval.SelfApprovalForbidden, { status: statusCodes.SelfApprovalForbidden })
    .addError(Unavailable)

/**
 * The approvals endpoints.
 *
 * @since 0.1.0
 * @category api
 */
export class ApprovalsGroup extends HttpApiGroup.make("approvals")
  .add(
    HttpApiEndpoint.get("list", "/approvals")
      .setUrlParams(Schema.Struct({
        status: Schema.optional(Approval.Status),
        kind: Schema.optional(Approval.Kind),
        limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)))
      }))
      .addSuccess(Schema.Array(Approval.ApprovalRequest))
      .addError(Unavailable)
  )
  .add(
    HttpApiEndpoint.get("show", "/approvals/:id")
      .setPath(IdPath)
      .addSuccess(Approval.ApprovalRequest)
      .addError(Approval.ApprovalNotFound, { status: statusCodes.ApprovalNotFound })
      .addError(Unavailable)
  )
  .add(vote("approve"))
  .add(vote("reject"))
  .add(vote("acknowledge"))
  .add(
    HttpApiEndpoint.post("override", "/decisions/:id/override")
      .setPath(IdPath)
      .setPayload(OverrideBody)
      .addSuccess(Override.Override, { status: 201 })
      .addError(Governance.DecisionNotFound, { status: statusCodes.DecisionNotFound })
      .addError(Governance.OverrideNotAllowed, { status: statusCodes.OverrideNotAllowed })
      .addError(Unavailable)
  )
  .middleware(BodyGuard)
  .middleware(Authentication)
{}

/**
 * The approvals API: an `HttpApi` with one group, `approvals`. Derive a
 * typed client with `HttpApiClient.make(ApprovalsApi)`.
 *
 * @since 0.1.0
 * @category api
 */
export class ApprovalsApi extends HttpApi.make("gavel").add(ApprovalsGroup).annotateContext(OpenApi.annotations({
  title: "gavel approvals",
  description: "Pending approvals of a gavel-governed service, and the votes and overrides of their approvers"
})) {}

type ApiError<E> = Exclude<E, Approval.StoreError | { readonly _tag: "ExternalCheckFailed" }> | Unavailable

/** Outages are 503s without their details (which may name hosts or queries). */
const outage = <E extends { readonly _tag: string }>(error: E): ApiError<E> =>
  error._tag === "StoreError" || error._tag === "ExternalCheckFailed"
    ? new Unavailable()
    : error as Exclude<E, Approval.StoreError | { readonly _tag: "ExternalCheckFailed" }>

/**
 * A principal sees what belongs to its tenant, and what belongs to no
 * tenant. Anything else is answered as unknown, so that ids of other tenants
 * cannot be probed.
 */
const visible = (principal: Action.Principal, tenant: string | null): boolean =>
  Identity.seesTenant(principal.tenant, tenant)

/**
 * The handlers of {@link ApprovalsGroup}, on the `Governance` service (which
 * checks eligibility, writes the votes and their audit events) and its
 * `ApprovalStore` (for reading).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApprovalsHandlers = HttpApiBuilder.group(ApprovalsApi, "approvals", (handlers) =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const store = yield* ApprovalStore.ApprovalStore

    const find = (approvalId: string, principal: Action.Principal) =>
      store.get(approvalId).pipe(
        Effect.mapError(outage),
        Effect.filterOrFail(
          (request) => visible(principal, request.summary.actor.tenant),
          () => new Approval.ApprovalNotFound({ approvalId })
        )
      )

    const castVote = (
      cast: Governance.Service["approve"],
      approvalId: string,
      note: string | undefined
    ) =>
      Effect.gen(function*() {
        const principal = yield* CurrentPrincipal
        yield* find(approvalId, principal)
        return yield* Effect.mapError(cast(approvalId, principal, note), outage)
      })

    return handlers
      .handle("list", ({ urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          return yield* Effect.mapError(
            store.list({ status: urlParams.status, kind: urlParams.kind, visibleTo: principal, limit: urlParams.limit }),
            outage
          )
        }))
      .handle("show", ({ path }) => Effect.flatMap(CurrentPrincipal, (principal) => find(path.id, principal)))
      .handle("approve", ({ path, payload }) => castVote(governance.approve, path.id, payload.note))
      .handle("reject", ({ path, payload }) => castVote(governance.reject, path.id, payload.note))
      .handle("acknowledge", ({ path, payload }) => castVote(governance.acknowledge, path.id, payload.note))
      .handle("override", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const record = yield* Effect.mapError(store.getDecision(path.id), outage)
          if (Option.isNone(record) || !visible(principal, record.value.inputs.actor.tenant)) {
            return yield* new Governance.DecisionNotFound({ decisionId: path.id })
          }
          return yield* Effect.mapError(
            governance.override(path.id, {
              authority: principal,
              reason: payload.reason,
              duration: Duration.seconds(payload.durationSeconds),
              scope: payload.scope,
              compensatingControls: payload.compensatingControls,
              waiveApproval: payload.waiveApproval
            }),
            outage
          )
        }))
  }))

// -----------------------------------------------------------------------------
// the API's 404s that no route answers
// -----------------------------------------------------------------------------

const decodedSegment = (segment: string): string => {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/**
 * What the approvals API answers for a request under its paths that the
 * router matched to no route, or `undefined` when the path is not the API's
 * (the host's 404 stays the host's). The router refuses path parameters over
 * its `maxParamLength` (100 characters by default) without trying any route:
 * such an id names no approval or decision, and is answered like an unknown
 * one — after authentication, like every route of the API. Any other request
 * under `/approvals` is an unknown route: `{ _tag: "RouteNotFound" }`.
 */
const unmatched = (request: HttpServerRequest.HttpServerRequest, authenticator: Authenticator["Type"]) => {
  // As the router reads a path: duplicate and trailing slashes ignored, case-insensitive.
  const path = request.url.split("?")[0]!.replace(/\/{2,}/g, "/").replace(/(.)\/$/, "$1")
  const method = request.method === "HEAD" ? "GET" : request.method
  const approval = /^\/approvals\/([^/]+)(?:\/(approve|reject|acknowledge))?$/i.exec(path)
  const decision = /^\/decisions\/([^/]+)\/override$/i.exec(path)
  // The bodies the API's own 401 and 404 carry.
  const unknown = (
    body: { readonly _tag: "ApprovalNotFound"; readonly approvalId: string } | {
      readonly _tag: "DecisionNotFound"
      readonly decisionId: string
    }
  ) =>
    Effect.match(authenticator.authenticate(bearerOf(request)), {
      onFailure: (refused) => HttpServerResponse.unsafeJson({ _tag: "Unauthorized", reason: refused.reason }, { status: 401 }),
      onSuccess: () => HttpServerResponse.unsafeJson(body, { status: 404 })
    })
  if (approval !== null && method === (approval[2] === undefined ? "GET" : "POST")) {
    return unknown({ _tag: "ApprovalNotFound", approvalId: decodedSegment(approval[1]!) })
  }
  if (decision !== null && method === "POST") {
    return unknown({ _tag: "DecisionNotFound", decisionId: decodedSegment(decision[1]!) })
  }
  if (decision !== null || /^\/approvals(?:\/|$)/i.test(path)) {
    return Effect.succeed(HttpServerResponse.unsafeJson({ _tag: "RouteNotFound" }, { status: 404 }))
  }
  return undefined
}

/**
 * Answers the API's requests that no route matched (see `unmatched`) with a
 * JSON 404 instead of the router's empty one. A global middleware of the
 * router: it sees only `RouteNotFound`, so the host's own routes, and their
 * answers, are untouched.
 */
const layerNotFound = HttpLayerRouter.middleware(
  Effect.map(Authenticator, (authenticator) => (effect: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown>) =>
    Effect.catchIf(
      effect,
      (error) => HttpServerError.isServerError(error) && error._tag === "RouteNotFound",
      (error) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          unmatched(request, authenticator) ?? Effect.fail(error))
    )),
  { global: true }
)

/**
 * @since 0.1.0
 * @category models
 */
export interface ApprovalsOptions {
  /** The largest request body accepted, in bytes. Default 16 KiB. */
  readonly maxBodySize?: number | undefined
  /** Where the OpenAPI document is served. Default `/openapi.json`. */
  readonly openapiPath?: `/${string}` | undefined
}

/**
 * Serves the approvals API and its OpenAPI document on an
 * `HttpLayerRouter`. Needs `Governance`, its `ApprovalStore`, and an
 * {@link Authenticator}. Hoist the layer into a constant where it is used.
 *
 * Every 404 of the API is JSON: an id longer than the router's
 * `maxParamLength`, which the router matches to no route, is answered (after
 * authentication) as an unknown approval or decision, and an unknown method
 * or path under `/approvals` as `{ _tag: "RouteNotFound" }`. Other paths
 * keep the host's 404s.
 *
 * @example
 * ```ts
 * import * as Http from "@gavel/adapters/Http"
 * import * as HttpApprovals from "@gavel/adapters/HttpApprovals"
 * import { HttpLayerRouter } from "@effect/platform"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer, Redacted } from "effect"
 * import { createServer } from "node:http"
 *
 * const ApprovalsRoutes = HttpApprovals.layerApprovals()
 * const Server = HttpLayerRouter.serve(ApprovalsRoutes).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 8080, host: "127.0.0.1" })),
 *   Layer.provide(Http.layerJwt({
 *     key: { _tag: "Secret", secret: Redacted.make(process.env.JWT_SECRET!) },
 *     issuer: "https://id.example.com",
 *     audience: "approvals"
 *   })),
 *   Layer.provide(GovernanceLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApprovals = (options: ApprovalsOptions = {}) =>
  Layer.merge(
    HttpLayerRouter.addHttpApi(ApprovalsApi, { openapiPath: options.openapiPath ?? "/openapi.json" }),
    layerNotFound
  ).pipe(
    Layer.provide(layerApprovalsHandlers),
    Layer.provide(layerAuthentication),
    Layer.provide(layerBodyGuard(options.maxBodySize ?? 16 * 1024))
  )
