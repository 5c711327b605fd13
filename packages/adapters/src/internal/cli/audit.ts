/**
 * `gavel audit verify`: checks the audit trail's hash chain, optionally
 * against an anchor printed by an earlier run. `Cli.ts` re-exports
 * `Verification` and documents it.
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Audit from "@gavel/core/Audit"
import * as AuditOutbox from "@gavel/core/AuditOutbox"
import * as AuditSink from "@gavel/core/AuditSink"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { CliError, unavailable } from "./errors.js"
import * as AuditFile from "../../AuditFile.js"
import { asJson, database, db } from "./inputs.js"
import { json, verificationText } from "./render.js"

/** An event that waits in the audit outbox (see `Cli.Verification`). @internal */
export const Undelivered = Schema.Struct({
  eventId: Schema.String,
  type: Audit.EventType,
  approvalId: Schema.NullOr(Schema.String),
  since: Schema.Date,
  attempts: Schema.Int,
  lastError: Schema.NullOr(Schema.String)
}).annotations({ identifier: "AuditUndelivered" })

/** The outbox's backlog, when events wait in it. */
const undelivered = {
  undelivered: Schema.optional(Schema.Struct({ count: Schema.Int, events: Schema.Array(Undelivered) }))
}

/** See `Cli.Verification`. @internal */
export const Verification = Schema.Union(
  Schema.TaggedStruct("Intact", { count: Schema.Int, head: Schema.NullOr(Audit.Anchor), ...undelivered }),
  Schema.TaggedStruct("Broken", {
    sequence: Schema.Int,
    problem: Schema.Literal("edited", "missing", "reordered", "truncated"),
    message: Schema.String,
    ...undelivered
  })
).annotations({ identifier: "AuditVerification" })

/** How many waiting events `audit verify` names. */
const namedAtMost = 50

const encodeVerification = Schema.encode(Verification)

const anchor = Options.text("anchor").pipe(
  Options.withPseudoName("SEQ:HASH"),
  Options.withDescription("A head printed by an earlier verify: also detects a trail cut short or rewritten"),
  Options.mapEffect((text) => {
    const match = /^(\d+):([0-9a-f]{64})$/.exec(text.trim())
    const sequence = match === null ? 0 : Number(match[1])
    return match === null || !Number.isSafeInteger(sequence) || sequence < 1
      ? Effect.fail(
        ValidationError.invalidValue(HelpDoc.p(`--anchor must be SEQ:HASH (a sequence number and 64 hex digits)`))
      )
      : Effect.succeed<Audit.Anchor>({ sequence, hash: match[2]! })
  }),
  Options.optional
)

const trail = Options.text("trail").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription(
    "A JSON-lines trail written by AuditFile: verify it instead of the database's own (the database still names the events waiting for it)"
  ),
  Options.optional
)

const verify = Command.make(
  "verify",
  { db, json: asJson, anchor, trail },
  (options) =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* database(options.db)
      const events = yield* Option.match(options.trail, {
        onNone: () => Context.get(context, AuditSink.AuditSink).read(),
        onSome: (file) => Effect.mapError(AuditFile.readFile(file), (error) => unavailable(error.message))
      })
      const outbox = Context.get(context, AuditOutbox.AuditOutbox)
      const backlog = yield* outbox.backlog
      const waiting = backlog.count === 0 ? [] : yield* outbox.list(namedAtMost)
      const verification = Audit.verify(events, { anchor: Option.getOrUndefined(options.anchor) })
      const result: typeof Verification.Type = waiting.length === 0 ? verification : {
        ...verification,
        undelivered: {
          count: backlog.count,
          events: waiting.map((item) => ({
            eventId: item.entry.eventId,
            type: item.entry.type,
            approvalId: item.entry.approvalId,
            since: item.createdAt,
            attempts: item.attempts,
            lastError: item.lastError
          }))
        }
      }
      yield* Console.log(options.json ? json(yield* encodeVerification(result)) : verificationText(result))
      if (result._tag === "Broken") {
        return yield* new CliError({
          reason: "AuditBroken",
          detail: `audit trail broken at event ${result.sequence}`
        })
      }
      if (backlog.count > 0) {
        return yield* new CliError({
          reason: "AuditUndelivered",
          detail: `${backlog.count} audit events wait in the audit outbox`
        })
      }
    }))
).pipe(
  Command.withDescription(
    "Check the audit trail's hash chain; exit code 1 when it is broken, 7 when events of steps have not reached it yet"
  )
)

/** `gavel audit verify`. @internal */
export const audit = Command.make("audit").pipe(
  Command.withDescription("The audit trail"),
  Command.withSubcommands([verify])
)
