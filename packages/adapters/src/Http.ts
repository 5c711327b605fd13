/**
 * Enforcement at the HTTP edge, for `@effect/platform` servers:
 *
 * - {@link enforcement}: a middleware for route handlers. It authenticates
 *   the caller, builds the action, asks gavel, and answers 401, 403, 202,
 *   409 or 425 — or runs the handler.
 * - {@link ApprovalsApi}: an `HttpApi` for approvers (list, show, approve,
 *   reject, acknowledge, override), served with its OpenAPI document by
 *   {@link layerApprovals}. The approver is always the authenticated
 *   principal, never a field of the body. Its home is
 *   `@gavel/adapters/HttpApprovals`; this module re-exports it.
 *
 * Identity comes from an {@link Authenticator} (bearer tokens; see
 * {@link layerJwt}).
 *
 * @since 0.1.0
 */
import { Action, type DecisionRecord, Governance, type Override } from "@gavel/core"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Authenticator, bearerOf, Unauthorized } from "./internal/http/authentication.js"
import { json, outcomeOf, refusalWith } from "./internal/http/response.js"
import * as Jwt from "./Jwt.js"

// -----------------------------------------------------------------------------
// identity
// -----------------------------------------------------------------------------

// Documented where they are defined, internal/http/authentication.ts: the
// enforcement middleware and the approvals API share them.
export { Authenticator, Unauthorized } from "./internal/http/authentication.js"

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
 * | the policies kept transforming the action | 500 `{ _tag: "GovernanceError", decisionId }` |
 *
 * Every answer given after a decision carries `Gavel-Decision-Id` (a 503
 * too, when the decision was recorded before the failure); the 401, the
 * 400 and 413 of an invalid action, and a failure of `options.action`
 * (answered like the handler's errors) come before any. Bodies never carry reason
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
        // The decision exists: every refusal from here on names it (a 503 too).
        if (outcome._tag === "Left") return HttpServerResponse.setHeaders(refusal(outcome.left), headers)
        const response = yield* outcome.right
        return HttpServerResponse.setHeaders(response, {
          ...headers,
          ...(override === null ? {} : { "gavel-override-id": override.id }),
          ...(record.decision._tag === "Warn" ? { "gavel-warning": record.reasonCodes.join(", ") } : {})
        })
      })
  })

// -----------------------------------------------------------------------------
// approvals API
// -----------------------------------------------------------------------------

// Documented in its home, HttpApprovals.ts.
export {
  ApprovalsApi,
  ApprovalsGroup,
  type ApprovalsOptions,
  Authentication,
  BodyGuard,
  CurrentPrincipal,
  layerApprovals,
  layerApprovalsHandlers,
  OverrideBody,
  PayloadTooLarge,
  Unavailable,
  UnsupportedMediaType,
  VoteBody
} from "./HttpApprovals.js"
