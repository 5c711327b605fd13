/**
 * What the `gavel` CLI's command groups read: the `--db` and `--json`
 * flags, the database `--db` names, and the files the operator gives by
 * path (the principals directory, an action).
 */
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as AuditOutbox from "@gavel/core/AuditOutbox"
import * as Action from "@gavel/core/Action"
import type * as ApprovalStore from "@gavel/core/ApprovalStore"
import type * as AuditSink from "@gavel/core/AuditSink"
import type * as ContinuationStore from "@gavel/core/ContinuationStore"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import type * as Scope from "effect/Scope"
import * as Sqlite from "../../Sqlite.js"
import * as Files from "../files.js"
import { type CliError, configError, unavailable } from "./errors.js"
import { firstProblem } from "./render.js"

/** `--db FILE`. @internal */
export const db = Options.text("db").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription("The gavel SQLite database (it must exist; the CLI never creates one)")
)

/** `--json`. @internal */
export const asJson = Options.boolean("json").pipe(
  Options.withDescription("Print the JSON encoding instead of text, for scripts")
)

/**
 * The stores and sink over the existing gavel database `filename`: the CLI
 * never creates one, and must not turn an empty or mistyped file into one.
 * `Sqlite.layer` examines the path before anything can write to it or
 * create a file beside it, and leaves a refused path as it was.
 *
 * @internal
 */
export const database = (
  filename: string
): Effect.Effect<
  Context.Context<
    ApprovalStore.ApprovalStore | AuditOutbox.AuditOutbox | AuditSink.AuditSink | ContinuationStore.ContinuationStore
  >,
  CliError,
  Scope.Scope
> =>
  Layer.build(Sqlite.layer({ filename, create: false })).pipe(Effect.mapError((error) => unavailable(error.message)))

/** The file's JSON, or `null` when it is none (the decode says why). */
const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return null
  }
}

/**
 * Reads the `what` file at `path` (the principals directory, an action) and
 * decodes it, once its JSON is within `Action.defaultLimits`
 * (`Action.validateJson`). A file that is missing, unreadable, over the
 * limits or that `decode` refuses
 * fails with a `Config` error naming the file (and the first problem).
 *
 * @internal
 */
export const readFile = <A>(
  what: string,
  path: string,
  decode: (text: string) => Either.Either<A, ParseResult.ParseError>
): Effect.Effect<A, CliError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) => configError(Files.unreadable(what, path, error).detail))
    )
    // Within `Action.defaultLimits` before the decode walks it (recursively,
    // and again to format its error): malformed JSON is left to the decode.
    const measured = Action.validateJson(parsed(text))
    if (Either.isLeft(measured)) return yield* configError(`${what} file "${path}": ${measured.left.message}`)
    const decoded = decode(text)
    if (Either.isLeft(decoded)) return yield* configError(`${what} file "${path}": ${firstProblem(decoded.left)}`)
    return decoded.right
  })
