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
import * as AuditSink from "@gavel/core/AuditSink"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { CliError } from "./errors.js"
import { asJson, database, db } from "./inputs.js"
import { json, verificationText } from "./render.js"

/** See `Cli.Verification`. @internal */
export const Verification = Schema.Union(
  Schema.TaggedStruct("Intact", { count: Schema.Int, head: Schema.NullOr(Audit.Anchor) }),
  Schema.TaggedStruct("Broken", {
    sequence: Schema.Int,
    problem: Schema.Literal("edited", "missing", "reordered", "truncated"),
    message: Schema.String
  })
).annotations({ identifier: "AuditVerification" })

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

const verify = Command.make(
  "verify",
  { db, json: asJson, anchor },
  (options) =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* database(options.db)
      const events = yield* Context.get(context, AuditSink.AuditSink).read()
      const result = Audit.verify(events, { anchor: Option.getOrUndefined(options.anchor) })
      yield* Console.log(options.json ? json(yield* encodeVerification(result)) : verificationText(result))
      if (result._tag === "Broken") {
        return yield* new CliError({
          reason: "AuditBroken",
          detail: `audit trail broken at event ${result.sequence}`
        })
      }
    }))
).pipe(Command.withDescription("Check the audit trail's hash chain; exit code 1 when it is broken"))

/** `gavel audit verify`. @internal */
export const audit = Command.make("audit").pipe(
  Command.withDescription("The audit trail"),
  Command.withSubcommands([verify])
)
