/**
 * Bearer authentication, shared by the enforcement middleware (`Http`) and
 * the approvals API (`HttpApprovals`): the port that turns a token into a
 * principal, its refusal, and how a request's token is read.
 *
 * {@link Unauthorized} and {@link Authenticator} are public (`Http` and
 * `HttpApprovals` re-export them); they are defined here, below both, so
 * that neither public module imports the other's machinery, and so that the
 * approvals API does not load `jose` (`Http.layerJwt` does).
 */
import type * as Action from "@gavel/core/Action"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

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
 * The bearer token of a request's `Authorization` header; empty when there
 * is none or the scheme is another.
 *
 * @internal
 */
export const bearerOf = (request: HttpServerRequest.HttpServerRequest): Redacted.Redacted<string> => {
  const header = request.headers.authorization ?? ""
  return Redacted.make(/^Bearer\s/i.test(header) ? header.slice(7) : "")
}
