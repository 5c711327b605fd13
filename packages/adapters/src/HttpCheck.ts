/**
 * A generic external check over HTTP: the action is POSTed as JSON to a
 * service, the JSON answer is decoded with a schema and turned into a
 * decision. Built on `@effect/platform`'s `HttpClient`, so the transport is a
 * layer (`FetchHttpClient.layer`, a Node client, a test client).
 *
 * Every way the service can fail to answer becomes a typed policy error, for
 * a combinator (`Policy.failClosed`, `Policy.onFailure`) to give a meaning:
 *
 * - unreachable, non-2xx, a body that is not JSON or does not decode:
 *   `ExternalCheckFailed` (its detail never quotes the response body);
 * - no answer within `timeout`: `PolicyTimeout` with `budget: false`, and the
 *   request is aborted;
 * - the request aborted by something other than this check: `PolicyCancelled`.
 *
 * @since 0.1.0
 */
import { Action, type Decision, Policy, PolicyError } from "@gavel/core"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import type * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/**
 * The failures a {@link Options.retry} schedule sees and may retry.
 *
 * @since 0.1.0
 * @category models
 */
export type Retryable = PolicyError.ExternalCheckFailed | PolicyError.PolicyTimeout

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<A, I> {
  /** The policy id. */
  readonly id: string
  /** The external system, for `ExternalCheckFailed.system` (e.g. `"compliance-service"`). */
  readonly system: string
  /** The operation, for `ExternalCheckFailed.operation` (e.g. `"verify"`). */
  readonly operation: string
  /** Where to POST: a fixed URL, or one computed from the action. */
  readonly url: string | ((action: Action.Action) => string)
  /**
   * The JSON request body. Send only what the service needs: the action's
   * payload may hold data that should not leave the process.
   */
  readonly body: (action: Action.Action) => unknown
  /** Extra request headers (authentication, tenant). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Decodes the JSON response body. */
  readonly response: Schema.Schema<A, I>
  /** Turns the decoded answer into a decision, or `NotApplicable`. */
  readonly decide: (response: A, action: Action.Action) => Decision.Result
  /** How long one attempt (request and response body) may take. */
  readonly timeout: Duration.DurationInput
  /**
   * Retries failed attempts (`ExternalCheckFailed`, `PolicyTimeout`); each
   * attempt has its own `timeout`. `PolicyCancelled` is never retried.
   */
  readonly retry?: Schedule.Schedule<unknown, Retryable> | undefined
}

/**
 * An effectful leaf that asks an HTTP service. Each attempt POSTs
 * `body(action)` as JSON to `url` and must answer with a 2xx whose JSON body
 * decodes with `response`; `decide` then maps the answer to a decision. The
 * request body is built once, before the first attempt; a body that cannot be
 * serialized as JSON is a defect (the policy yields `Deny` with
 * `policy.defect`).
 *
 * @example
 * ```ts
 * import { Decision } from "@gavel/core"
 * import * as HttpCheck from "@gavel/adapters/HttpCheck"
 * import * as Schema from "effect/Schema"
 *
 * const compliance = HttpCheck.make({
 *   id: "compliance.verify",
 *   system: "compliance-service",
 *   operation: "verify",
 *   url: "https://compliance.internal/verify",
 *   body: (action) => ({ actor: action.actor.id, name: action.name }),
 *   response: Schema.Struct({ allowed: Schema.Boolean }),
 *   decide: ({ allowed }) =>
 *     allowed ? Decision.allow() : Decision.deny({ code: "compliance.refused", message: "Refused by compliance" }),
 *   timeout: "500 millis"
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, I>(
  options: Options<A, I>
): Policy.Policy<
  PolicyError.ExternalCheckFailed | PolicyError.PolicyTimeout | PolicyError.PolicyCancelled,
  HttpClient.HttpClient
> => {
  const { id, system, operation } = options
  const limit = Duration.decode(options.timeout)
  const decode = Schema.decodeUnknown(options.response)
  const cancelled = new PolicyError.PolicyCancelled({ policyId: id, detail: "the HTTP request was aborted" })
  const failed = (detail: string, cause?: unknown): PolicyError.ExternalCheckFailed =>
    cause === undefined
      ? new PolicyError.ExternalCheckFailed({ system, operation, detail })
      : new PolicyError.ExternalCheckFailed({ system, operation, detail, cause })

  // The answer of one attempt. The client is scoped to it: closing the scope
  // aborts the request's AbortController, so a timed-out or interrupted
  // attempt closes its connection, and an error response's unread body is
  // released at once instead of when the response is garbage-collected.
  const answer = (
    client: HttpClient.HttpClient.With<HttpClientError.HttpClientError, Scope.Scope>,
    request: HttpClientRequest.HttpClientRequest
  ): Effect.Effect<Either.Either<A, PolicyError.PolicyCancelled>, PolicyError.ExternalCheckFailed> =>
    client.execute(request).pipe(
      Effect.matchEffect({
        onFailure: (error) =>
          error._tag === "RequestError" && isAbort(error.cause)
            ? Effect.succeed(Either.left(cancelled))
            : Effect.fail(clientFailed(error)),
        onSuccess: read
      }),
      Effect.scoped
    )

  const read = (
    response: HttpClientResponse.HttpClientResponse
  ): Effect.Effect<Either.Either<A, PolicyError.PolicyCancelled>, PolicyError.ExternalCheckFailed> => {
    if (response.status < 200 || response.status >= 300) {
      // Never read: an error body may echo the request or internal details.
      return Effect.fail(failed(`HTTP ${response.status}`))
    }
    return Effect.matchEffect(response.text, {
      onFailure: (error) =>
        isAbort(error.cause)
          ? Effect.succeed(Either.left(cancelled))
          : Effect.fail(failed("could not read the response body", error.cause)),
      onSuccess: (text) => Effect.map(parse(text), Either.right)
    })
  }

  const parse = (text: string): Effect.Effect<A, PolicyError.ExternalCheckFailed> =>
    Effect.try({
      try: () => JSON.parse(text) as unknown,
      // Not the SyntaxError: its message quotes the body.
      catch: () => failed("the response body is not JSON")
    }).pipe(
      Effect.flatMap((json) => {
        // Within `Action.defaultLimits` before the decode walks it (recursively,
        // and again to format its error); the path would quote the body's keys.
        const measured = Action.validateJson(json)
        if (Either.isLeft(measured)) return Effect.fail(failed(`the response body exceeds the limits (${measured.left.reason})`))
        return Effect.mapError(decode(json), (error) => failed(`the response body does not decode: ${describeIssues(error)}`))
      })
    )

  const clientFailed = (error: HttpClientError.HttpClientError): PolicyError.ExternalCheckFailed => {
    if (error._tag === "ResponseError") return failed(`HTTP ${error.response.status}`)
    switch (error.reason) {
      case "InvalidUrl":
        return failed("invalid URL", error.cause)
      case "Encode":
        return failed("could not encode the request", error.cause)
      case "Transport":
        return failed(`request failed (${describeTransport(error.cause)})`, error.cause)
    }
  }

  return Policy.effect(id, (action) =>
    Effect.gen(function*() {
      const client = (yield* HttpClient.HttpClient).pipe(HttpClient.withScope)
      const url = typeof options.url === "string" ? options.url : options.url(action)
      const request = yield* HttpClientRequest.post(url, { headers: options.headers ?? {}, acceptJson: true }).pipe(
        HttpClientRequest.bodyJson(options.body(action)),
        Effect.orDie
      )
      // Cancellation travels in the success channel, so that the retry
      // schedule only ever sees the failures it is typed for.
      const attempt = answer(client, request).pipe(
        Effect.timeoutFail({
          duration: limit,
          onTimeout: () => new PolicyError.PolicyTimeout({ policyId: id, limit, budget: false })
        })
      )
      const outcome = yield* (options.retry === undefined ? attempt : Effect.retry(attempt, options.retry))
      const decoded = yield* outcome
      return options.decide(decoded, action)
    })
  )
}

/** True for the error `fetch` rejects with when its signal is aborted. */
const isAbort = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "name" in cause && cause.name === "AbortError"

/**
 * The innermost code or message of a transport error: Node's `fetch` rejects
 * with `TypeError("fetch failed")` whose `cause` says what happened
 * (`ECONNREFUSED`, `UND_ERR_SOCKET`).
 */
const describeTransport = (cause: unknown): string => {
  let current = cause
  let description = "transport error"
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    if ("code" in current && typeof current.code === "string") return current.code
    if ("message" in current && typeof current.message === "string" && current.message !== "") {
      description = current.message
    }
    current = "cause" in current ? current.cause : undefined
  }
  return description
}

const issueNames: Record<string, string> = {
  Missing: "is missing",
  Type: "has the wrong type",
  Unexpected: "is unexpected",
  Forbidden: "is forbidden"
}

/**
 * Where decoding failed and how, without the offending values (they come
 * from the response body): `allowed is missing`, `items.0 has the wrong type`.
 */
const describeIssues = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  if (first === undefined) return "invalid"
  const where = first.path.length === 0 ? "the body" : first.path.map(String).join(".")
  const what = issueNames[first._tag] ?? "is invalid"
  return issues.length > 1 ? `${where} ${what} (and ${issues.length - 1} more)` : `${where} ${what}`
}
