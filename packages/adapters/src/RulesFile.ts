/**
 * Loads a rules document from a file: `.json`, or `.yaml` / `.yml` (YAML 1.2
 * through the `yaml` package), read with `@effect/platform`'s `FileSystem`
 * and decoded by `Rules.decode`. A syntax error is an `InvalidRules` like any
 * other problem, and every problem carries the line and column it is at.
 *
 * Needs the optional peer dependency `yaml`.
 *
 * @example
 * ```ts
 * import * as RulesFile from "@gavel/adapters/RulesFile"
 * import { Rules } from "@gavel/core"
 * import * as NodeContext from "@effect/platform-node/NodeContext"
 * import * as Effect from "effect/Effect"
 *
 * const policySet = await Effect.runPromise(
 *   RulesFile.load("policies/payments.yaml").pipe(
 *     Effect.map((rules) => Rules.policySet(rules)),
 *     Effect.provide(NodeContext.layer)
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Rules from "@gavel/core/Rules"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as YAML from "yaml"

/**
 * The file could not be read as a rules document at all: it does not exist,
 * cannot be read, or its extension names no format gavel reads.
 *
 * @since 0.1.0
 * @category errors
 */
export class RulesFileError extends Schema.TaggedError<RulesFileError>()("RulesFileError", {
  path: Schema.String,
  reason: Schema.Literal("NotFound", "Unreadable", "UnsupportedFormat"),
  detail: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return this.detail
  }
}

/**
 * The formats gavel reads, by file extension.
 *
 * @since 0.1.0
 * @category models
 */
export type Format = "json" | "yaml"

/**
 * The format of `path`, from its extension (`.json`, `.yaml`, `.yml`, any
 * case), or `undefined`.
 *
 * @since 0.1.0
 * @category models
 */
export const formatOf = (path: string): Format | undefined => {
  const lower = path.toLowerCase()
  return lower.endsWith(".json") ? "json" : lower.endsWith(".yaml") || lower.endsWith(".yml") ? "yaml" : undefined
}

// -----------------------------------------------------------------------------
// positions
// -----------------------------------------------------------------------------

const segment = /([^.[\]]+)|\[(\d+)\]/g

const segmentsOf = (path: string): Array<string | number> =>
  Array.from(path.matchAll(segment), (m) => (m[2] !== undefined ? Number(m[2]) : m[1]!))

/**
 * Sets `line` and `column` on each problem: the position of the deepest node
 * of its path that exists in the text (the value at fault, or the object
 * that lacks a field). JSON is read as YAML for this, which it is.
 */
const locate = (problems: ReadonlyArray<Rules.Problem>, text: string): Array<Rules.Problem> => {
  const lineCounter = new YAML.LineCounter()
  const doc = YAML.parseDocument(text, { lineCounter, uniqueKeys: false })
  return problems.map((problem) => {
    if (problem.line !== undefined) return problem
    const path = segmentsOf(problem.path)
    for (let k = path.length; k >= 0; k--) {
      const node = k === 0 ? doc.contents : doc.getIn(path.slice(0, k), true)
      const range = YAML.isNode(node) ? node.range : undefined
      if (range !== undefined && range !== null) {
        const { line, col } = lineCounter.linePos(range[0])
        return { ...problem, line, column: col }
      }
    }
    return problem
  })
}

const withPositions = (
  result: Effect.Effect<Rules.Rules, Rules.InvalidRules>,
  text: string,
  source: string | undefined
): Effect.Effect<Rules.Rules, Rules.InvalidRules> =>
  Effect.mapError(result, (error) => invalid(locate(error.problems, text), source))

const invalid = (problems: ReadonlyArray<Rules.Problem>, source: string | undefined) =>
  new Rules.InvalidRules(source === undefined ? { problems } : { source, problems })

/** The first line of a `yaml` error, without the position (the problem carries it). */
const yamlMessage = (error: YAML.YAMLError): string =>
  (error.message.split("\n")[0] ?? error.code).replace(/ at line \d+, column \d+:?$/, "")

// -----------------------------------------------------------------------------
// parsing
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface ParseOptions {
  /** Where the text came from, for error messages. */
  readonly source?: string | undefined
}

/**
 * Decodes a rules document from YAML text. A syntax error, a duplicate key
 * or several documents in one stream are problems with their line and column.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseYaml = (text: string, options?: ParseOptions): Effect.Effect<Rules.Rules, Rules.InvalidRules> => {
  const source = options?.source
  const lineCounter = new YAML.LineCounter()
  const doc = YAML.parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true })
  if (doc.errors.length > 0) {
    return Either.left(invalid(
      doc.errors.map((error) => {
        const position = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0])
        return {
          rule: null,
          path: "",
          message: `YAML syntax error: ${yamlMessage(error)}`,
          line: position.line,
          column: position.col
        }
      }),
      source
    ))
  }
  let input: unknown
  try {
    // Aliases are expanded at most 100 times, which defuses alias bombs.
    input = doc.toJS({ maxAliasCount: 100 })
  } catch (error) {
    return Either.left(invalid([{
      rule: null,
      path: "",
      message: `YAML error: ${error instanceof Error ? error.message : String(error)}`
    }], source))
  }
  return withPositions(Rules.decode(input, { source }), text, source)
}

const jsonLineColumn = /line (\d+) column (\d+)/
const jsonOffset = /at position (\d+)/

/** Where a JSON syntax error is, from the parser's message (its wording varies across Node versions). */
const jsonPosition = (message: string, text: string): { readonly line: number; readonly column: number } | undefined => {
  const found = jsonLineColumn.exec(message)
  if (found !== null) return { line: Number(found[1]), column: Number(found[2]) }
  const offset = jsonOffset.exec(message)
  if (offset === null) return undefined
  const before = text.slice(0, Number(offset[1])).split("\n")
  return { line: before.length, column: (before[before.length - 1]?.length ?? 0) + 1 }
}

/**
 * Decodes a rules document from JSON text, with line and column on every
 * problem (on a syntax error, where the parser reports one).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseJson = (text: string, options?: ParseOptions): Effect.Effect<Rules.Rules, Rules.InvalidRules> => {
  const source = options?.source
  return Effect.mapError(Rules.parseJson(text, { source }), (error) => {
    const first = error.problems[0]
    if (error.problems.length === 1 && first !== undefined && first.message.startsWith("JSON syntax error")) {
      const position = jsonPosition(first.message, text)
      return position === undefined ? error : invalid([{ ...first, ...position }], source)
    }
    return invalid(locate(error.problems, text), source)
  })
}

/**
 * Reads and decodes the rules document at `path`, in the format its
 * extension names. Nothing of an invalid document is loaded.
 *
 * @since 0.1.0
 * @category loading
 */
export const load = (
  path: string
): Effect.Effect<Rules.Rules, Rules.InvalidRules | RulesFileError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const format = formatOf(path)
    if (format === undefined) {
      return yield* new RulesFileError({
        path,
        reason: "UnsupportedFormat",
        detail: `rules file "${path}" is neither .json nor .yaml/.yml`
      })
    }
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) =>
        error._tag === "SystemError" && error.reason === "NotFound"
          ? new RulesFileError({ path, reason: "NotFound", detail: `rules file "${path}" does not exist` })
          : new RulesFileError({
            path,
            reason: "Unreadable",
            detail: `cannot read rules file "${path}": ${error._tag === "SystemError" ? error.reason : error.message}`
          })
      )
    )
    return yield* (format === "json" ? parseJson(text, { source: path }) : parseYaml(text, { source: path }))
  })
