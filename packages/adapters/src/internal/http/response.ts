/**
 * The answers of the enforcement middleware (`Http.enforcement`) that are
 * not the handler's own: JSON bodies that name the decision, never reason
 * messages, payloads or errors of failed checks.
 */
import type * as Governance from "@gavel/core/Governance"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Option from "effect/Option"

/**
 * A JSON answer that no cache keeps.
 *
 * @internal
 */
export const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers: { "cache-control": "no-store", ...headers } })

/**
 * How a parked handler ended, for its log line: the tag of its error (never
 * its message), `interrupted` or `defect`.
 *
 * @internal
 */
export const outcomeOf = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.isInterruptedOnly(cause) ? "interrupted" : "defect",
    onSome: (error) =>
      typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
        ? error._tag
        : "failure"
  })

/**
 * What a governed route answers when gavel does not let the request through.
 *
 * @internal
 */
export const refusalWith = (retryAfter: string) => (error: Governance.EnforceError): HttpServerResponse.HttpServerResponse => {
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
      // Names the decision when one was recorded before the store failed.
      return json(503, { _tag: "Unavailable" }, {
        "retry-after": "5",
        ...(error.decisionId === undefined ? {} : { "gavel-decision-id": error.decisionId })
      })
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
    default: {
      // A policy set that keeps transforming, or a resume that cannot happen here: refused,
      // naming the decision when the error carries one.
      const decisionId = "record" in error ? error.record.decisionId : undefined
      return json(
        500,
        { _tag: "GovernanceError", ...(decisionId === undefined ? {} : { decisionId }) },
        decisionId === undefined ? {} : { "gavel-decision-id": decisionId }
      )
    }
  }
}
