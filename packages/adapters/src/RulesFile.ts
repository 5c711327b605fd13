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
  // Only on a text that passed `checkText`: the composer is recursive.
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
// bounds of the text
// -----------------------------------------------------------------------------

interface TextFrame {
  readonly token: YAML.CST.Token
  readonly key: string | number | undefined
  readonly parent: TextFrame | undefined
  readonly depth: number
}

const isCollection = (
  token: YAML.CST.Token
): token is YAML.CST.BlockMap | YAML.CST.BlockSequence | YAML.CST.FlowCollection =>
  token.type === "block-map" || token.type === "block-seq" || token.type === "flow-collection"

const isMapping = (token: YAML.CST.BlockMap | YAML.CST.BlockSequence | YAML.CST.FlowCollection): boolean =>
  token.type === "block-map" || (token.type === "flow-collection" && token.start.source === "{")

const scalarOf = (token: YAML.CST.Token | null | undefined): string | undefined => {
  if (token === null || token === undefined) return undefined
  const scalar = YAML.CST.isScalar(token) ? YAML.CST.resolveAsScalar(token) : null
  return scalar === null ? undefined : scalar.value
}

const textPathOf = (frame: TextFrame): Array<string | number> => {
  const path: Array<string | number> = []
  for (let f: TextFrame | undefined = frame; f !== undefined && f.key !== undefined; f = f.parent) path.push(f.key)
  return path.reverse()
}

/** The id of the rule a frame is in, as written (`#index` when it has none), or `null` outside the rules. */
const textRuleOf = (frame: TextFrame): string | null => {
  let f: TextFrame | undefined = frame
  while (f?.parent?.parent !== undefined && f.parent.parent.key !== undefined) f = f.parent
  if (f?.parent?.key !== "rules" || typeof f.key !== "number") return null
  const rule = f.token
  if (isCollection(rule) && isMapping(rule)) {
    for (const item of rule.items) {
      const id = scalarOf(item.key) === "id" ? scalarOf(item.value) : undefined
      if (id !== undefined && id !== "") return id
    }
  }
  return `#${f.key}`
}

/**
 * Checks the nesting and the number of values of a text before it is
 * composed into a document: the `yaml` composer (and `JSON.stringify`,
 * `toJS`…) recurse, and overflow the stack on a deep enough text, while its
 * lexer and parser (the CST, walked here with an explicit stack) do not. The
 * same limits as `Rules.decode`'s, so a text that passes composes safely.
 */
const checkText = (text: string, maxValues: number): Array<Rules.Problem> => {
  const lineCounter = new YAML.LineCounter()
  const stack: Array<TextFrame> = []
  for (const token of new YAML.Parser(lineCounter.addNewLine).parse(text)) {
    if (token.type === "document" && token.value !== undefined) {
      stack.push({ token: token.value, key: undefined, parent: undefined, depth: 0 })
    }
  }
  let values = stack.length
  const problem = (frame: TextFrame, message: string): Array<Rules.Problem> => {
    const { col, line } = lineCounter.linePos(frame.token.offset)
    const path = textPathOf(frame)
    return [{ rule: textRuleOf(frame), path: Rules.formatPath(path), message, line, column: col }]
  }
  while (stack.length > 0) {
    const frame = stack.pop()!
    const token = frame.token
    if (!isCollection(token)) continue
    const depth = frame.depth + 1
    if (depth > Rules.maxNesting) {
      return problem(
        frame,
        `nested too deeply: objects and lists nest at most ${Rules.maxNesting} levels in a rules document`
      )
    }
    values += token.items.length
    if (values > maxValues) {
      return problem(
        frame,
        `a rules document holds at most ${maxValues} values (objects, lists and scalars, counted where they occur); this one holds more`
      )
    }
    const mapping = isMapping(token)
    token.items.forEach((item, index) => {
      const key = mapping ? scalarOf(item.key) ?? index : index
      // A key may be a collection itself (`? [a, b]: c`): its nesting counts too.
      if (item.key !== null && item.key !== undefined) stack.push({ token: item.key, key, parent: frame, depth })
      if (item.value !== undefined) stack.push({ token: item.value, key, parent: frame, depth })
    })
  }
  return []
}

/**
 * Duplicate keys, found in linear time (the `yaml` package's own
 * `uniqueKeys` compares every pair of keys of a map: quadratic).
 */
const duplicateKeys = (doc: YAML.Document, lineCounter: YAML.LineCounter): Array<Rules.Problem> => {
  const problems: Array<Rules.Problem> = []
  YAML.visit(doc, {
    Map: (_, map) => {
      const seen = new Set<unknown>()
      for (const pair of map.items) {
        if (!YAML.isScalar(pair.key)) continue
        const value = pair.key.value
        if (!seen.has(value)) {
          seen.add(value)
          continue
        }
        const position = pair.key.range === undefined || pair.key.range === null
          ? undefined
          : lineCounter.linePos(pair.key.range[0])
        problems.push({
          rule: null,
          path: "",
          message: "YAML syntax error: Map keys must be unique",
          ...(position === undefined ? {} : { line: position.line, column: position.col })
        })
      }
    }
  })
  return problems
}

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
  /** Limits to use instead of `Rules.defaultLimits` (see `Rules.Limits`). */
  readonly limits?: Partial<Rules.Limits> | undefined
}

/** The text's bounds, checked with the limits `Rules.decode` will use (an invalid limit is its to report). */
const textBounds = (text: string, options: ParseOptions | undefined): Array<Rules.Problem> => {
  const maxValues = options?.limits?.maxValues ?? Rules.defaultLimits.maxValues
  return checkText(text, Number.isSafeInteger(maxValues) && maxValues > 0 ? maxValues : Rules.defaultLimits.maxValues)
}

/**
 * Decodes a rules document from YAML text. A syntax error, a duplicate key
 * or several documents in one stream are problems with their line and column;
 * so is a text nested too deeply or holding too many values (`Rules.Limits`),
 * refused before it is composed.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseYaml = (text: string, options?: ParseOptions): Effect.Effect<Rules.Rules, Rules.InvalidRules> => {
  const source = options?.source
  const bounds = textBounds(text, options)
  if (bounds.length > 0) return Either.left(invalid(bounds, source))
  const lineCounter = new YAML.LineCounter()
  const doc = YAML.parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: true })
  if (doc.errors.length === 0) {
    const duplicates = duplicateKeys(doc, lineCounter)
    if (duplicates.length > 0) return Either.left(invalid(duplicates, source))
  }
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
  return withPositions(Rules.decode(input, { source, limits: options?.limits }), text, source)
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
  // JSON is YAML: the same bounds, checked on the text, so that the positions
  // (found with the `yaml` composer) are safe to look up.
  const bounds = textBounds(text, options)
  if (bounds.length > 0) return Either.left(invalid(bounds, source))
  return Effect.mapError(Rules.parseJson(text, { source, limits: options?.limits }), (error) => {
    const first = error.problems[0]
    if (error.problems.length === 1 && first !== undefined && first.message.startsWith("JSON syntax error")) {
      const position = jsonPosition(first.message, text)
      return position === undefined ? error : invalid([{ ...first, ...position }], source)
    }
    return invalid(locate(error.problems, text), source)
  })
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LoadOptions {
  /** Limits to use instead of `Rules.defaultLimits` (see `Rules.Limits`). */
  readonly limits?: Partial<Rules.Limits> | undefined
}

/**
 * Reads and decodes the rules document at `path`, in the format its
 * extension names. Nothing of an invalid document is loaded.
 *
 * @since 0.1.0
 * @category loading
 */
export const load = (
  path: string,
  options?: LoadOptions
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
    const parseOptions = { source: path, limits: options?.limits }
    return yield* (format === "json" ? parseJson(text, parseOptions) : parseYaml(text, parseOptions))
  })
