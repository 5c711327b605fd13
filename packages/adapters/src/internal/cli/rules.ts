/**
 * `gavel rules check|explain`: decodes a rules document (`RulesFile.load`)
 * and lists its problems, or evaluates an action read from a JSON file
 * against it. Neither needs a database.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Action from "@gavel/core/Action"
import * as Rules from "@gavel/core/Rules"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as RulesFile from "../../RulesFile.js"
import { type CliError, configError } from "./errors.js"
import { asJson, readFile } from "./inputs.js"
import { explanationText, json, problemsText, summaryOf } from "./render.js"

const rulesFile = Args.text({ name: "FILE" }).pipe(
  Args.withDescription("The rules document: .json, .yaml or .yml")
)

/** What `rules explain --action` reads: an action, with roles, attributes and metadata optional. */
const ActionFile = Schema.parseJson(Schema.Struct({
  ...Action.Action.from.fields,
  actor: Schema.Struct({
    ...Action.Principal.fields,
    roles: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
    attributes: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), {
      default: () => ({})
    })
  }),
  metadata: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { default: () => ({}) })
}))

const decodeActionFile = Schema.decodeUnknownEither(ActionFile, { onExcessProperty: "error" })

const loadAction = (path: string): Effect.Effect<Action.Action, CliError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const decoded = yield* readFile("action", path, decodeActionFile)
    const checked = Action.validate(Action.makeUnvalidated(decoded))
    if (checked._tag === "Left") return yield* configError(`action file "${path}": ${checked.left.message}`)
    return checked.right
  })

const encodeProblems = Schema.encode(Schema.Struct({ valid: Schema.Literal(false), problems: Schema.Array(Rules.Problem) }))
const encodeExplanation = Schema.encode(Rules.Explanation)

/**
 * Loads a rules file; an invalid one is printed (every problem, one per line,
 * or as JSON) and fails with the `InvalidRules` that sets exit code 6.
 */
const loadRules = (file: string, asJson: boolean) =>
  RulesFile.load(file).pipe(
    Effect.tapError((error) =>
      error._tag !== "InvalidRules"
        ? Effect.void
        : asJson
        ? Effect.flatMap(encodeProblems({ valid: false, problems: error.problems }), (encoded) =>
          Console.log(json(encoded)))
        : Console.log(problemsText(file, error.problems))
    )
  )

const check = Command.make(
  "check",
  { json: asJson, file: rulesFile },
  (options) =>
    Effect.gen(function*() {
      const rules = yield* loadRules(options.file, options.json)
      yield* Console.log(
        options.json
          ? json({
            valid: true,
            id: rules.id,
            version: rules.version,
            combine: rules.combine,
            rules: rules.document.rules.map((rule) => rule.id),
            policyHash: rules.policyHash
          })
          : `valid: ${summaryOf(rules)}\npolicyHash ${rules.policyHash}`
      )
    })
).pipe(
  Command.withDescription("Check a rules document; every problem is printed, one per line, and the exit code is 6")
)

const explain = Command.make(
  "explain",
  {
    json: asJson,
    action: Options.text("action").pipe(
      Options.withPseudoName("ACTION.json"),
      Options.withDescription("The action to evaluate: JSON { actor: { id, kind, roles? }, kind, name, resource?, payload?, metadata? }")
    ),
    file: rulesFile
  },
  (options) =>
    Effect.gen(function*() {
      const rules = yield* loadRules(options.file, options.json)
      const action = yield* loadAction(options.action)
      const clock = yield* Effect.clock
      const explanation = Rules.explain(rules, action, { clock })
      yield* Console.log(
        options.json ? json(yield* encodeExplanation(explanation)) : explanationText(rules, action, explanation)
      )
    })
).pipe(
  Command.withDescription(
    "Evaluate an action against a rules document: which rules matched, which decided, and the decision record"
  )
)

/** `gavel rules check|explain`. @internal */
export const rules = Command.make("rules").pipe(
  Command.withDescription("Declarative rules documents"),
  Command.withSubcommands([check, explain])
)
