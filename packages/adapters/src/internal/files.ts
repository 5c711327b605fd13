/**
 * The files the adapters are given by path (a rules document, the CLI's
 * principals directory and action files): one wording for a file that is
 * missing or cannot be read.
 */
import type { PlatformError } from "@effect/platform/Error"

/**
 * Why the `what` file at `path` could not be read: `NotFound` ("… does not
 * exist") or `Unreadable` ("cannot read …" and the system's reason), with
 * the one line that says so.
 *
 * @internal
 */
export const unreadable = (
  what: string,
  path: string,
  error: PlatformError
): { readonly reason: "NotFound" | "Unreadable"; readonly detail: string } =>
  error._tag === "SystemError" && error.reason === "NotFound"
    ? { reason: "NotFound", detail: `${what} file "${path}" does not exist` }
    : {
      reason: "Unreadable",
      detail: `cannot read ${what} file "${path}": ${error._tag === "SystemError" ? error.reason : error.message}`
    }
