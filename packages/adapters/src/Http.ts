/**
 * Enforcement at the HTTP edge, for `@effect/platform` servers:
 *
 * - {@link enforcement}: a middleware for route handlers. It authenticates
 *   the caller, builds the action, asks gavel, and answers 401, 403, 202,
 *   409 or 425 — or runs the handler.
 * - {@link ApprovalsApi}: an `HttpApi` for approvers (list, show, approve,
 *   reject, acknowledge, override), served with its OpenAPI document by
 *   {@link layerApprovals}. The approver is always the authenticated
 *   principal, never a field of the body.
 *
 * Identity comes from an {@link Authenticator} (bearer tokens; see
 * {@link layerJwt}).
 *
 * @since 0.1.0
 */
import { Action, Approval, ApprovalStore, type DecisionRecord, Governance, Override } from "@gavel/core"
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
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Jwt from "./Jwt.js"

// -----------------------------------------------------------------------------
// identity
// -----------------------------------------------------------------------------

/**
 * The request carries no usable identity (401). `reason` is the stable
 * reason of the refusal (`missing`, `expired`, `bad_signature`, …).
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { reason: Schema.String },
  HttpApiSchema.annotations({ status: 401, description: "No bearer token, or one that does not verify" })
) {}

/**
 * Turns a bearer token into the principal gavel governs and approvals are
 * cast by.
 *
 * @since 0.1.0
 * @category tags
 */
export class Authenticator extends Context.Tag("@gavel/adapters/Http/Authenticator")<Authenticator, {
  readonly authenticate: (token: Redacted.Redacted<string>) => Effect.Effect<Action.Principal, Unauthorized>
}>() {}

/**
 * An {@link Authenticator} verifying JWTs with {@link Jwt.make}. Refuses to
 * start (`Jwt.InvalidOptions`, naming the option) on a configuration that
 * cannot be used safely: a missing, empty or too short secret, a JWKS URL
 * that is not one, no accepted algorithm.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerJwt = (options: Jwt.Options): Layer.Layer<Authenticator, Jwt.InvalidOptions> =>
  Layer.effect(
    Authenticator,
    Effect.map(Jwt.make(options), (verifier) =>
      Authenticator.of({
        authenticate: (token) => {
          const value = Redacted.value(token).trim()
          return value === ""
            ? Effect.fail(new Unauthorized({ reason: "missing" }))
            : Effect.mapError(verifier.verify(value), (error) => new Unauthorized({ reason: error.reason }))
        }
      }))
  )

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

const bearerOf = (request: HttpServerRequest.HttpServerRequest): Redacted.Redacted<string> => {
  const header = request.headers.authorization ?? ""
  return Redacted.make(/^Bearer\s/i.test(header) ? header.slice(7) : "")
}

// -----------------------------------------------------------------------------
// enforcement middleware
// -----------------------------------------------------------------------------

/**
 * What the governed handler runs with: the action gavel let through (the
 * replacement, when a policy transformed it), its record, and the override
 * that let it through, if any.
 *
 * @since 0.1.0
 * @category tags
 */
export class Governed extends Context.Tag("@gavel/adapters/Http/Governed")<Governed, {
  readonly action: Action.Action
  readonly record: DecisionRecord.DecisionRecord
  readonly override: Override.Override | null
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface EnforcementOptions<E, R> {
  /**
   * Describes the action from the request (kind, name, resource, payload,
   * metadata). Its actor is always the authenticated principal, which is
   * passed in for reference. A failure is the host's: it is answered like
   * any error of the handler.
   */
  readonly action: (
    request: HttpServerRequest.HttpServerRequest,
    principal: Action.Principal
  ) => Effect.Effect<Omit<Action.Input, "actor">, E, R>
  /** Where a client follows a pending approval. Default `/approvals/{id}`, the approvals API's show. */
  readonly statusUrl?: ((approvalId: string) => string) | undefined
  /**
   * The `Retry-After` of a 429 (the caller, or its tenant, has too many
   * approvals pending), rounded up to whole seconds. Default 60 seconds: a
   * slot frees only when an approver decides one of them or one expires,
   * which takes minutes rather than seconds, and each refused attempt still
   * writes its decision and its refusal to the audit trail.
   */
  readonly tooManyPendingRetryAfter?: Duration.DurationInput | undefined
}

/**
 * Wraps a route handler: the handler runs only when gavel lets the action
 * through.
 *
 * @since 0.1.0
 * @category models
 */
export interface Enforcement<E, R> {
  <E2, R2>(
    handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E2, R2>
  ): Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    E | E2,
    R | Exclude<R2, Governed> | HttpServerRequest.HttpServerRequest
  >
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers: { "cache-control": "no-store", ...headers } })

const outcomeOf = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.isInterruptedOnly(cause) ? "interrupted" : "defect",
    onSome: (error) =>
      typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
        ? error._tag
        : "failure"
  })

/**
 * Builds the enforcement middleware. Each request:
 *
 * | gavel says | answer |
 * | --- | --- |
 * | no or invalid bearer token | 401 `{ _tag: "Unauthorized", reason }` |
 * | `Allow`, `Warn`, or an active override | the handler's response (`Gavel-Warning` lists a warning's codes) |
 * | `Deny` | 403 `{ _tag: "Denied", decisionId, reasonCodes }` |
 * | `RequireApproval`, `RequireAcknowledgment` | 202 `{ _tag: "Pending", approvalId, expiresAt, statusUrl, decisionId, reasonCodes }`, `Location: statusUrl`; the handler runs once approved |
 * | `Escalate` | 409 `{ _tag: "Escalated", decisionId, reasonCodes, reviewPaths }` |
 * | `Defer` | 425 `{ _tag: "Deferred", decisionId, reasonCodes }` |
 * | an approval is needed, but the caller (or its tenant) already has the most pending allowed | 429 `{ _tag: "TooManyPending", decisionId, scope, limit }`, `Retry-After` |
 * | the action is not JSON data, or too deep (`Action.InvalidAction`) | 400 `{ _tag: "InvalidAction", path, reason, limit? }` |
 * | the action has too many values or too much text | 413 `{ _tag: "InvalidAction", path, reason, limit }` |
 * | the approval store or the audit trail cannot be written | 503 `{ _tag: "Unavailable" }` |
 * | the policies kept transforming the action | 500 `{ _tag: "GovernanceError" }` |
 *
 * Every answer carries `Gavel-Decision-Id`. Bodies never carry reason
 * messages, payloads or errors of failed checks: the decision id leads to the
 * audit trail.
 *
 * A pending request's handler runs later, in the background, when the
 * approval is granted (at most once; never when it is rejected or expires):
 * its response is discarded, the audit trail records its outcome. It sees
 * the request it was parked with; the body was read before the 202, so
 * `request.text` and `request.json` still answer. Parked handlers live in
 * the scope the middleware was built in.
 *
 * @example
 * ```ts
 * import * as Http from "@gavel/adapters/Http"
 * import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * const Payments = HttpLayerRouter.use(Effect.fnUntraced(function*(router) {
 *   const governed = yield* Http.enforcement({
 *     action: (request) =>
 *       Effect.map(request.json, (body) => ({ kind: "payment", name: "payments.send", payload: body }))
 *   })
 *   yield* router.add("POST", "/payments", governed(HttpServerResponse.text("sent")))
 * }))
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const enforcement = <E, R>(
  options: EnforcementOptions<E, R>
): Effect.Effect<
  Enforcement<E, R>,
  Governance.InvalidOption,
  Governance.Governance | Authenticator | Scope.Scope
> =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const authenticator = yield* Authenticator
    const parked = yield* FiberSet.make()
    const statusUrl = options.statusUrl ?? ((id: string) => `/approvals/${encodeURIComponent(id)}`)
    const wait = Duration.decodeUnknown(options.tooManyPendingRetryAfter ?? "60 seconds")
    if (Option.isNone(wait) || !Duration.isFinite(wait.value) || Duration.toMillis(wait.value) <= 0) {
      return yield* new Governance.InvalidOption({
        option: "tooManyPendingRetryAfter",
        problem: `must be a positive, finite duration, not ${String(options.tooManyPendingRetryAfter)}`
      })
    }
    const retryAfter = String(Math.max(1, Math.ceil(Duration.toSeconds(wait.value))))
    const refusal = refusalWith(retryAfter)

    return <E2, R2>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E2, R2>) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const principal = yield* Effect.either(authenticator.authenticate(bearerOf(request)))
        if (principal._tag === "Left") {
          return json(401, { _tag: "Unauthorized", reason: principal.left.reason }, {
            "www-authenticate": `Bearer error="invalid_token"`
          })
        }
        // Checked by `submit`, under the runtime's own `actionLimits`.
        const action = Action.makeUnvalidated({ ...(yield* options.action(request, principal.right)), actor: principal.right })
        const submitted = yield* Effect.either(governance.submit(action))
        if (submitted._tag === "Left") return refusal(submitted.left)
        const submission = submitted.right
        const record = submission.record
        const headers = { "gavel-decision-id": record.decisionId }
        const override = submission._tag === "Overridden" ? submission.override : null
        // The handler's own failure travels as a value, so that what gavel
        // refused (the run's failures) is told apart from what the handler did.
        const work = (allowed: Action.Action) =>
          Effect.either(Effect.provideService(
            handler as Effect.Effect<HttpServerResponse.HttpServerResponse, E2, Exclude<R2, Governed>>,
            Governed,
            { action: allowed, record, override }
          ))

        if (submission._tag === "Pending") {
          // The body is read now: the client's connection ends with the 202.
          yield* Effect.ignore(request.text)
          const context = yield* Effect.context<Exclude<R2, Governed>>()
          const { approvalId } = submission
          yield* FiberSet.run(
            parked,
            governance.run(submission, work).pipe(
              Effect.flatten,
              Effect.provide(context),
              Effect.catchAllCause((cause) => {
                // The outcome is in the audit trail; the log names the error's tag, never its message.
                const outcome = outcomeOf(cause)
                const log = outcome === "ApprovalRejected" || outcome === "ApprovalExpired"
                  ? Effect.logInfo("gavel: a parked request was not approved")
                  : Effect.logWarning("gavel: a parked request did not complete")
                return Effect.annotateLogs(log, { approvalId, outcome })
              })
            )
          )
          const url = statusUrl(approvalId)
          return json(202, {
            _tag: "Pending",
            approvalId,
            expiresAt: submission.expiresAt.toISOString(),
            statusUrl: url,
            decisionId: record.decisionId,
            reasonCodes: record.reasonCodes
          }, { ...headers, location: url })
        }

        const outcome = yield* Effect.either(governance.run(submission, work))
        if (outcome._tag === "Left") return refusal(outcome.left)
        const response = yield* outcome.right
        return HttpServerResponse.setHeaders(response, {
          ...headers,
          ...(override === null ? {} : { "gavel-override-id": override.id }),
          ...(record.decision._tag === "Warn" ? { "gavel-warning": record.reasonCodes.join(", ") } : {})
        })
      })
  })

/** What a governed route answers when gavel does not let the request through. */
const refusalWith = (retryAfter: string) => (error: Governance.EnforceError): HttpServerResponse.HttpServerResponse => {
  switch (error._tag) {
    case "Denied":
    case "Escalated":
    case "Deferred": {
      const { record } = error
      const body = { _tag: error._tag, decisionId: record.decisionId, reasonCodes: record.reasonCodes }
      const headers = { "gavel-decision-id": record.decisionId }
      if (error._tag === "Denied") return json(403, body, headers)
      if (error._tag === "Deferred") return json(425, body, headers)
      const reviewPaths = record.decision._tag === "Escalate" ? record.decision.reviewPaths : []
      return json(409, { ...body, reviewPaths }, headers)
    }
    case "TooManyPending":
      // The scope and the cap, never the key: the caller knows who it is.
      return json(429, {
        _tag: "TooManyPending",
        decisionId: error.decisionId,
        scope: error.scope,
        limit: error.limit
      }, { "gavel-decision-id": error.decisionId, "retry-after": retryAfter })
    case "StoreError":
      return json(503, { _tag: "Unavailable" }, { "retry-after": "5" })
    case "InvalidAction": {
      // The path names the client's own value; a size limit is a 413.
      const tooLarge = error.reason === "too_many_nodes" || error.reason === "too_long"
      return json(tooLarge ? 413 : 400, {
        _tag: "InvalidAction",
        path: error.path,
        reason: error.reason,
        ...(error.limit === undefined ? {} : { limit: error.limit })
      })
    }
    default:
      // A policy set that keeps transforming, or a resume that cannot happen here: refused.
      return json(500, { _tag: "GovernanceError" })
  }
}

// -----------------------------------------------------------------------------
// approvals API
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

/**
 * Reads and parses the body of a request before the API decodes it, so that
 * an oversized body is a 413, a body of another media type a 415, and
 * malformed JSON a 400 with a decode error (the platform would otherwise
 * answer the first and the last with a 500, and decode the form or text
 * body as a string).
 *
 * @since 0.1.0
 * @category middleware
 */
export class BodyGuard extends HttpApiMiddleware.Tag<BodyGuard>()("@gavel/adapters/Http/BodyGuard", {
  failure: Schema.Union(PayloadTooLarge, UnsupportedMediaType, HttpApiError.HttpApiDecodeError)
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
      yield* Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (error) => malformed(`Malformed JSON: ${error instanceof SyntaxError ? error.message : "unreadable"}`)
      })
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
export const VoteBody = Schema.Struct({ note: Schema.optional(Note) }).annotations({ identifier: "VoteBody" })

/**
 * What an override carries. The overrider is the authenticated principal.
 *
 * @since 0.1.0
 * @category schemas
 */
export const OverrideBody = Schema.Struct({
  reason: Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(2000)),
  durationSeconds: Schema.Int.pipe(Schema.between(1, 31 * 24 * 3600)),
  scope: Schema.optional(Override.Coverage),
  compensatingControls: Schema.optional(Schema.Array(Schema.String.pipe(Schema.maxLength(500)))),
  /** Also let through actions in its scope that require an approval (off unless given). */
  waiveApproval: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "OverrideBody" })

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
  tenant === null || principal.tenant === tenant

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
          const all = yield* Effect.mapError(
            store.list({ status: urlParams.status, kind: urlParams.kind }),
            outage
          )
          const mine = all.filter((request) => visible(principal, request.summary.actor.tenant))
          return urlParams.limit === undefined ? mine : mine.slice(0, urlParams.limit)
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

const layerAuthentication = Layer.effect(
  Authentication,
  Effect.map(Authenticator, (authenticator) => Authentication.of({ bearer: authenticator.authenticate }))
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
 * @example
 * ```ts
 * import * as Http from "@gavel/adapters/Http"
 * import { HttpLayerRouter } from "@effect/platform"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { createServer } from "node:http"
 *
 * const ApprovalsRoutes = Http.layerApprovals()
 * const Server = HttpLayerRouter.serve(ApprovalsRoutes).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 8080, host: "127.0.0.1" })),
 *   Layer.provide(Http.layerJwt({ key, issuer, audience })),
 *   Layer.provide(GovernanceLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApprovals = (options: ApprovalsOptions = {}) =>
  HttpLayerRouter.addHttpApi(ApprovalsApi, { openapiPath: options.openapiPath ?? "/openapi.json" }).pipe(
    Layer.provide(layerApprovalsHandlers),
    Layer.provide(layerAuthentication),
    Layer.provide(layerBodyGuard(options.maxBodySize ?? 16 * 1024))
  )
