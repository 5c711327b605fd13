/**
 * What goes wrong in an evaluation. Defects: a policy that throws, dies,
 * returns garbage or fails with an error its type does not declare is a bug
 * in the host's policy, and fails closed (`policy.defect`, `policy.failed`);
 * what it threw goes to the log and the span, never to the record. And the
 * kinds of gavel's own failures (`PolicyTimeout`, `ExternalCheckFailed`,
 * `PolicyCancelled`), which the trace and the failure handlers read.
 */
import * as Effect from "effect/Effect"
import * as Decision from "../../Decision.js"
import type { Defect as PolicyDefect } from "../../Policy.js"
import { ExternalCheckFailed, PolicyCancelled, PolicyTimeout } from "../../PolicyError.js"
import type { Context, Defect, DefectKind } from "./node.js"

/**
 * A policy that throws, dies or returns something that is not a result is a
 * bug in the host's policy. Governance fails closed on it: the evaluation
 * denies with `policy.defect` instead of letting an exception or a garbage
 * value decide. The reason says what happened, never what was thrown (its
 * message may quote what the policy saw, and reasons go to the record and
 * the audit trail): that is reported to `ctx.defects`, for the host's log
 * and the policy's span.
 *
 * @internal
 */
export const defect = (
  ctx: Context | undefined,
  policyId: string,
  kind: DefectKind,
  error: unknown,
  what: string = defectMessages[kind]
): Decision.Deny => {
  ctx?.defects?.push({ policyId, kind, error })
  return Decision.deny({
    code: kind === "failed" ? "policy.failed" : "policy.defect",
    message: `Policy "${policyId}" ${what}; failing closed`,
    policyId
  })
}

const defectMessages: Record<DefectKind, string> = {
  threw: "threw",
  died: "died",
  unreadable: "returned a value that could not be read",
  malformed: "returned a value that is not a well-formed decision (build decisions with the Decision constructors)",
  failed: "failed with an error its type does not declare"
}

const attempt = <A>(f: () => A, fallback: A): A => {
  try {
    return f()
  } catch {
    return fallback
  }
}

const unreadable = "<unreadable>"

/**
 * The name, message and stack of what a defective policy threw, read without
 * letting the value throw again (it may be a revoked `Proxy`, its getters
 * may throw).
 *
 * @internal
 */
export const describeDefect = (
  defect: Defect
): { readonly name: string; readonly message: string; readonly stack: string | undefined } => {
  if (defect.kind === "malformed") {
    return { name: "MalformedResult", message: "the policy returned a value that is not a well-formed decision", stack: undefined }
  }
  const error = defect.error
  if (attempt(() => error instanceof Error, false)) {
    const e = error as Error
    const name = attempt(() => e.name, unreadable)
    const message = attempt(() => e.message, unreadable)
    const stack = attempt(() => e.stack, undefined)
    return {
      name: typeof name === "string" ? name : unreadable,
      message: typeof message === "string" ? message : unreadable,
      stack: typeof stack === "string" ? stack : undefined
    }
  }
  if (typeof error === "object" && error !== null) {
    const tag = attempt(() => (error as { readonly _tag?: unknown })._tag, undefined)
    const message = attempt(() => (error as { readonly message?: unknown }).message, undefined)
    return {
      name: typeof tag === "string" ? tag : "object",
      message: typeof message === "string" ? message : attempt(() => String(error), unreadable),
      stack: undefined
    }
  }
  return { name: typeof error, message: attempt(() => String(error), unreadable), stack: undefined }
}

/**
 * Logs each defect at error level: the policy, what went wrong and what was
 * thrown (name, message and stack, as annotations too). The record and the
 * audit trail only say `policy.defect` / `policy.failed`.
 *
 * @internal
 */
export const logDefects = (defects: ReadonlyArray<Defect>): Effect.Effect<void> =>
  Effect.forEach(defects, (defect) => {
    const error = describeDefect(defect)
    const code = defect.kind === "failed" ? "policy.failed" : "policy.defect"
    const annotations: Record<string, unknown> = {
      "gavel.policy.id": defect.policyId,
      "gavel.policy.defect": defect.kind,
      "gavel.reason_code": code,
      "gavel.error.name": error.name,
      "gavel.error.message": error.message
    }
    if (error.stack !== undefined) annotations["gavel.error.stack"] = error.stack
    return Effect.annotateLogs(
      Effect.logError(
        `gavel: policy "${defect.policyId}" ${defectMessages[defect.kind]}${
          defect.kind === "malformed" ? "" : ` (${error.name}: ${error.message})`
        }; it denies with ${code}`
      ),
      annotations
    )
  }, { discard: true })

/**
 * A defect as the host sees it, with what was thrown described safely.
 *
 * @internal
 */
export const publicDefect = (defect: Defect): PolicyDefect => {
  const { message, name, stack } = describeDefect(defect)
  return { policyId: defect.policyId, kind: defect.kind, error: defect.error, name, message, stack }
}

// -----------------------------------------------------------------------------
// gavel's failures
// -----------------------------------------------------------------------------

/** @internal */
export type FailureKind = "timeout" | "unavailable" | "cancelled"

/** @internal */
export const failureKind = (error: unknown): FailureKind | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  // `instanceof` throws on a revoked Proxy: an error of the host's own kind.
  try {
    return error instanceof PolicyTimeout
      ? "timeout"
      : error instanceof ExternalCheckFailed
      ? "unavailable"
      : error instanceof PolicyCancelled
      ? "cancelled"
      : undefined
  } catch {
    return undefined
  }
}

/** @internal */
export const failingPolicy = (error: unknown, fallback: string): string => {
  const kind = failureKind(error)
  return kind === "timeout" || kind === "cancelled" ? (error as PolicyTimeout | PolicyCancelled).policyId : fallback
}
