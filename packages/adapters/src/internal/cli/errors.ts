/**
 * How the `gavel` CLI fails: its exit codes, its own error, and the exit
 * code and one-line message for every failure a command can end with.
 * `Cli.ts` re-exports `ExitCode` and `CliError` and documents them.
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as Approval from "@gavel/core/Approval"
import * as ContinuationStore from "@gavel/core/ContinuationStore"
import * as Rules from "@gavel/core/Rules"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as RulesFile from "../../RulesFile.js"
import { instant, oneLine } from "./render.js"

/** See `Cli.ExitCode`. @internal */
export const ExitCode = {
  Success: 0,
  AuditBroken: 1,
  Usage: 2,
  NotFound: 3,
  Refused: 4,
  Unavailable: 5,
  InvalidRules: 6,
  AuditUndelivered: 7,
  Internal: 70,
  Interrupted: 130
} as const

/** @internal */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode]

/** See `Cli.CliError`. @internal */
export class CliError extends Schema.TaggedError<CliError>()("CliError", {
  reason: Schema.Literal("Unavailable", "Config", "AuditBroken", "AuditUndelivered", "Refused"),
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return this.detail
  }
}

/** The database cannot be used (exit code 5). @internal */
export const unavailable = (detail: string) => new CliError({ reason: "Unavailable", detail })

/** A file the CLI was given (principals directory, action) is missing or invalid (exit code 5). @internal */
export const configError = (detail: string) => new CliError({ reason: "Config", detail })

/** A step the CLI refuses itself (exit code 4): in-doubt work it may not resolve. @internal */
export const refused = (detail: string) => new CliError({ reason: "Refused", detail })

const notAnApproverWhy: Record<Approval.NotAnApprover["reason"], string> = {
  unknown_principal: "not in the principals directory",
  inactive: "not active",
  other_tenant: "in another tenant than the approval's",
  outside_authority: "outside the approval's authority",
  refused: "refused by the identity system"
}

const notAnApprover = (error: Approval.NotAnApprover): string =>
  `"${error.principalId}" may not vote on approval "${error.approvalId}": ${notAnApproverWhy[error.reason]}`

/** The exit code and the error line (none when the output already said it) for a failure. */
const classify = (failure: unknown): { readonly code: ExitCode; readonly line: string | undefined } => {
  if (ValidationError.isValidationError(failure)) return { code: ExitCode.Usage, line: undefined }
  if (failure instanceof CliError) {
    return failure.reason === "AuditBroken"
      ? { code: ExitCode.AuditBroken, line: undefined }
      : failure.reason === "AuditUndelivered"
      ? { code: ExitCode.AuditUndelivered, line: undefined }
      : failure.reason === "Refused"
      ? { code: ExitCode.Refused, line: failure.detail }
      : { code: ExitCode.Unavailable, line: failure.detail }
  }
  if (failure instanceof Rules.InvalidRules) return { code: ExitCode.InvalidRules, line: undefined }
  if (failure instanceof RulesFile.RulesFileError) return { code: ExitCode.Unavailable, line: failure.message }
  if (failure instanceof Approval.ApprovalNotFound) {
    return { code: ExitCode.NotFound, line: `approval "${failure.approvalId}" not found` }
  }
  if (failure instanceof ContinuationStore.ContinuationNotFound) {
    return { code: ExitCode.NotFound, line: `no durable work for approval "${failure.approvalId}"` }
  }
  if (failure instanceof ContinuationStore.FenceLost) {
    return {
      code: ExitCode.Refused,
      line: `the work of approval "${failure.approvalId}" is ${failure.state}, not in doubt`
    }
  }
  if (failure instanceof Approval.NotAnApprover) return { code: ExitCode.Refused, line: notAnApprover(failure) }
  if (failure instanceof Approval.SelfApprovalForbidden) {
    return {
      code: ExitCode.Refused,
      line: `"${failure.principalId}" requested approval "${failure.approvalId}" and may not vote on it`
    }
  }
  if (failure instanceof Approval.AlreadyResolved) {
    return { code: ExitCode.Refused, line: `approval "${failure.approvalId}" is already ${failure.status}` }
  }
  if (failure instanceof Approval.ApprovalExpired) {
    return {
      code: ExitCode.Refused,
      line: `approval "${failure.approvalId}" expired at ${instant(failure.expiresAt)}`
    }
  }
  if (failure instanceof Approval.DuplicateVote || failure instanceof Approval.WrongKind) {
    return { code: ExitCode.Refused, line: failure.message }
  }
  if (failure instanceof Approval.StoreError) {
    return { code: ExitCode.Unavailable, line: `database error: ${failure.operation} failed: ${failure.detail}` }
  }
  if (failure instanceof ParseResult.ParseError) {
    return { code: ExitCode.Internal, line: `internal error: cannot encode the output: ${failure.message}` }
  }
  return { code: ExitCode.Unavailable, line: failure instanceof Error ? failure.message : String(failure) }
}

/**
 * The exit code for how a command ended, after printing its error line
 * (`gavel: …`) on stderr.
 *
 * @internal
 */
export const report = (cause: Cause.Cause<unknown>): Effect.Effect<ExitCode> => {
  if (Cause.isInterruptedOnly(cause)) return Effect.succeed(ExitCode.Interrupted)
  const failure = Cause.failureOption(cause)
  const { code, line } = Option.isSome(failure) ? classify(failure.value) : {
    code: ExitCode.Internal,
    line: `internal error: ${describeDefect(Cause.squash(cause))}`
  }
  return line === undefined ? Effect.succeed(code) : Effect.as(Console.error(`gavel: ${oneLine(line)}`), code)
}

const describeDefect = (defect: unknown): string => defect instanceof Error ? defect.message : "unexpected failure"
