/**
 * Loads a rules document from a file: `.json`, or `.yaml` / `.yml` (YAML 1.2
 * through the `yaml` package), read with `@effect/platform`'s `FileSystem`
 * as UTF-8 and decoded by `Rules.decode`. A syntax error, a duplicate key or
 * a YAML tag outside the core schema is an `InvalidRules` like any other
 * problem, and every problem carries the line and column it is at.
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
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Rules from "@gavel/core/Rules"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as YAML from "yaml"
import * as Files from "./internal/files.js"

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
 * of its path that exists in the document (the value at fault, or the object
 * that lacks a field), or 1:1 when there is none (an empty document).
 */
const locate = (
  problems: ReadonlyArray<Rules.Problem>,
  doc: YAML.Document,
  lineCounter: YAML.LineCounter
): Array<Rules.Problem> =>
  problems.map((problem) => {
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
    return { ...problem, line: 1, column: 1 }
  })

const invalid = (problems: ReadonlyArray<Rules.Problem>, source: string | undefined) =>
  new Rules.InvalidRules(source === undefined ? { problems } : { source, problems })

/** The first line of a `yaml` error, without the position (the problem carries it). */
const yamlMessage = (error: YAML.YAMLError): string =>
  (error.message.split("\n")[0] ?? error.code).replace(/ at line \d+, column \d+:?$/, "")

/** Line and column (1-based, in UTF-16 code units) of `offset` in `text`, found once. */
const positionIn = (text: string, offset: number): { readonly line: number; readonly column: number } => {
  let line = 1
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) line++
  return { line, column: offset - text.lastIndexOf("\n", offset - 1) }
}

const codePoint = (c: number): string => `U+${c.toString(16).toUpperCase().padStart(4, "0")}`

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
 * Checks the nesting and the number of values of a text's parse tree before
 * it is composed into a document: the `yaml` composer (and `toJS`…)
 * recurse, and overflow the stack on a deep enough text, while its lexer and
 * parser (the CST, walked here with an explicit stack) do not. The same
 * limits as `Rules.decode`'s, so a text that passes composes safely.
 */
const checkText = (
  tokens: ReadonlyArray<YAML.CST.Token>,
  lineCounter: YAML.LineCounter,
  maxValues: number
): Array<Rules.Problem> => {
  const stack: Array<TextFrame> = []
  for (const token of tokens) {
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
 * A character YAML 1.2 does not allow in a stream (outside its printable
 * set, `c-printable`): C0 controls but tab, line feed and carriage return,
 * DEL, C1 controls but NEL, lone surrogates, U+FFFE and U+FFFF.
 */
const unprintable = /[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u

const checkCharacters = (text: string): Array<Rules.Problem> => {
  const found = unprintable.exec(text)
  if (found === null) return []
  return [{
    rule: null,
    path: "",
    message: `the character ${codePoint(found[0].codePointAt(0)!)} is not allowed in YAML text (YAML 1.2 allows printable characters only; write it as an escape in a double-quoted string)`,
    ...positionIn(text, found.index)
  }]
}

// -----------------------------------------------------------------------------
// the composed document
// -----------------------------------------------------------------------------

const yamlTag = "tag:yaml.org,2002:"

/** The tags of YAML 1.2's core schema: the only ones a rules document may carry. */
const coreTags: ReadonlySet<string> = new Set(
  ["str", "int", "float", "bool", "null", "map", "seq"].map((name) => `${yamlTag}${name}`)
)

const showTag = (tag: string): string =>
  tag.startsWith(yamlTag) ? `!!${tag.slice(yamlTag.length)}` : tag.startsWith("!") ? tag : `!<${tag}>`

/** ASCII text is already in NFC. */
const ascii = /^[^\u0080-\uffff]*$/

/** How problems name the rule at `path` in the document (`Rules.ruleName`), or `null`. */
const ruleOf = (doc: YAML.Document, path: ReadonlyArray<string | number>): string | null => {
  if (path[0] !== "rules" || typeof path[1] !== "number") return null
  const rules = doc.get("rules", true)
  const rule = YAML.isSeq(rules) ? rules.items[path[1]] : undefined
  return Rules.ruleName(YAML.isMap(rule) ? rule.get("id") : undefined, path[1])
}

/**
 * What the composed document would otherwise read in a way its text does
 * not show, walked without recursion: a tag outside the core schema (the
 * `yaml` package resolves `!!binary` and drops unknown tags with a warning),
 * a key that is a list or an object (stringified by `toJS`), and a key
 * that appears twice in a map — as `toJS` names keys (`1` and `"1"`, `~` and
 * `""` are the same key) and in Unicode NFC. Linear: the `yaml` package's
 * own `uniqueKeys` compares every pair of keys of a map.
 */
const checkNodes = (doc: YAML.Document, lineCounter: YAML.LineCounter, text: string): Array<Rules.Problem> => {
  const problems: Array<{ readonly offset: number; readonly problem: Rules.Problem }> = []
  const report = (node: YAML.Node, path: ReadonlyArray<string | number>, message: string) => {
    const offset = node.range?.[0] ?? 0
    const { col, line } = lineCounter.linePos(offset)
    problems.push({
      offset,
      problem: { rule: ruleOf(doc, path), path: Rules.formatPath(path), message, line, column: col }
    })
  }
  const stack: Array<{ readonly node: unknown; readonly path: ReadonlyArray<string | number> }> = [
    { node: doc.contents, path: [] }
  ]
  while (stack.length > 0) {
    const { node, path } = stack.pop()!
    if (!YAML.isNode(node)) continue
    if (typeof node.tag === "string" && !coreTags.has(node.tag)) {
      report(
        node,
        path,
        `the tag ${showTag(node.tag)} is not allowed: a rules document is plain YAML 1.2, whose only tags are !!str, !!int, !!float, !!bool, !!null, !!map and !!seq`
      )
    }
    if (YAML.isSeq(node)) {
      node.items.forEach((item, index) => stack.push({ node: item, path: [...path, index] }))
    } else if (YAML.isMap(node)) {
      const seen = new Map<string, { readonly key: string; readonly node: YAML.Node }>()
      for (const pair of node.items) {
        const keyNode = YAML.isNode(pair.key) ? pair.key : undefined
        const resolved = YAML.isAlias(keyNode) ? keyNode.resolve(doc) : keyNode
        const value: unknown = YAML.isScalar(resolved) ? resolved.value : undefined
        if (keyNode === undefined || !YAML.isScalar(resolved) || (typeof value === "object" && value !== null)) {
          if (keyNode !== undefined) {
            report(keyNode, path, "a key is a string, a number, true, false or null, not a list or an object")
          }
          continue
        }
        // As `toJS` makes it a property name.
        const key = value === null ? "" : String(value)
        stack.push({ node: pair.key, path: [...path, key] })
        stack.push({ node: pair.value, path: [...path, key] })
        const normal = ascii.test(key) ? key : key.normalize("NFC")
        const first = seen.get(normal)
        if (first === undefined) {
          seen.set(normal, { key, node: keyNode })
          continue
        }
        const { col, line } = lineCounter.linePos(first.node.range?.[0] ?? 0)
        const written = (n: YAML.Node) => n.range === undefined || n.range === null ? "" : text.slice(n.range[0], n.range[1])
        const how = first.key !== key
          ? `, as ${JSON.stringify(first.key)}, the same in Unicode NFC`
          : written(first.node) !== written(keyNode)
          ? `, written ${written(first.node)}`
          : ""
        report(keyNode, [...path, key], `duplicate key ${JSON.stringify(key)} (first at line ${line}, column ${col}${how})`)
      }
    }
  }
  return problems.sort((a, b) => a.offset - b.offset).map((p) => p.problem)
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

/** The limit of values the text is measured with (an invalid limit is `Rules.checkSize`'s to report). */
const maxValuesOf = (options: ParseOptions | undefined): number => {
  const maxValues = options?.limits?.maxValues ?? Rules.defaultLimits.maxValues
  return Number.isSafeInteger(maxValues) && maxValues > 0 ? maxValues : Rules.defaultLimits.maxValues
}

/**
 * Decodes a rules document from YAML 1.2 text, parsed once. Refused, each
 * with its line and column: a text longer than `limits.maxDocumentBytes`
 * (before it is parsed), a character YAML does not allow, a syntax error,
 * several documents in one stream, a `%YAML` directive of another version,
 * a text nested too deeply or holding too many values (`Rules.Limits`,
 * before it is composed), a tag outside the core schema, a key that is a
 * list or an object, a duplicate key; then every problem of `Rules.decode`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseYaml = (text: string, options?: ParseOptions): Effect.Effect<Rules.Rules, Rules.InvalidRules> => {
  const source = options?.source
  const refuse = (problems: ReadonlyArray<Rules.Problem>) => Either.left(invalid(problems, source))
  const size = Rules.checkSize(text, { limits: options?.limits })
  if (size.length > 0) return refuse(size)
  const characters = checkCharacters(text)
  if (characters.length > 0) return refuse(characters)
  const lineCounter = new YAML.LineCounter()
  const tokens = Array.from(new YAML.Parser(lineCounter.addNewLine).parse(text))
  const bounds = checkText(tokens, lineCounter, maxValuesOf(options))
  if (bounds.length > 0) return refuse(bounds)
  // The tokens are composed as `YAML.parseDocument` would, without lexing the text again.
  let doc: YAML.Document.Parsed | undefined
  for (const composed of new YAML.Composer({ uniqueKeys: false, version: "1.2" }).compose(tokens, true, text.length)) {
    if (doc === undefined) {
      doc = composed
    } else {
      doc.errors.push(
        new YAML.YAMLParseError(
          [composed.range[0], composed.range[1]],
          "MULTIPLE_DOCS",
          "Source contains multiple documents; a rules file holds one"
        )
      )
      break
    }
  }
  const document = doc!
  const errors = document.errors.map((error): Rules.Problem => {
    const { col, line } = lineCounter.linePos(error.pos[0])
    return { rule: null, path: "", message: `YAML syntax error: ${yamlMessage(error)}`, line, column: col }
  })
  if (errors.length > 0) return refuse(errors)
  const directives = document.directives
  if (directives !== undefined && directives.yaml.explicit && directives.yaml.version !== "1.2") {
    const directive = tokens.find((token) => token.type === "directive" && token.source.startsWith("%YAML"))
    const { col, line } = lineCounter.linePos(directive?.offset ?? 0)
    return refuse([{
      rule: null,
      path: "",
      message: `%YAML ${directives.yaml.version}: a rules document is YAML 1.2, where yes and no are strings and 0777 is a decimal`,
      line,
      column: col
    }])
  }
  const nodes = checkNodes(document, lineCounter, text)
  // The warnings for unknown tags are reported by `checkNodes`, with the path.
  const warnings = document.warnings
    .filter((warning) => warning.code !== "TAG_RESOLVE_FAILED")
    .map((warning): Rules.Problem => {
      const { col, line } = lineCounter.linePos(warning.pos[0])
      return { rule: null, path: "", message: `YAML refused: ${yamlMessage(warning)}`, line, column: col }
    })
  if (nodes.length > 0 || warnings.length > 0) return refuse([...warnings, ...nodes])
  let input: unknown
  try {
    // Aliases are expanded at most 100 times, which defuses alias bombs.
    input = document.toJS({ maxAliasCount: 100 })
  } catch (error) {
    return refuse(locate([{
      rule: null,
      path: "",
      message: `YAML error: ${error instanceof Error ? error.message : String(error)}`
    }], document, lineCounter))
  }
  return Effect.mapError(
    Rules.decode(input, { source, limits: options?.limits }),
    (error) => invalid(locate(error.problems, document, lineCounter), source)
  )
}

/**
 * Decodes a rules document from JSON text: `Rules.parseJson`, which refuses
 * a duplicate key at any depth and puts the line and column on every
 * problem.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseJson = (text: string, options?: ParseOptions): Effect.Effect<Rules.Rules, Rules.InvalidRules> =>
  Rules.parseJson(text, { source: options?.source, limits: options?.limits })

// -----------------------------------------------------------------------------
// loading
// -----------------------------------------------------------------------------

/**
 * The offset of the first byte that does not start a well-formed UTF-8
 * sequence (RFC 3629: no overlong form, no surrogate, nothing above
 * U+10FFFF), or -1.
 */
const invalidUtf8At = (bytes: Uint8Array): number => {
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]!
    if (b < 0x80) {
      i++
      continue
    }
    const length = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0
    if (length === 0) return i
    const low = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80
    const high = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf
    const second = bytes[i + 1]
    if (second === undefined || second < low || second > high) return i
    for (let k = 2; k < length; k++) {
      const next = bytes[i + k]
      if (next === undefined || (next & 0xc0) !== 0x80) return i
    }
    i += length
  }
  return -1
}

/** The text of a file's bytes, UTF-8 with an optional BOM, or the problem at the first byte that is not. */
const decodeUtf8 = (bytes: Uint8Array): Either.Either<string, Rules.Problem> => {
  try {
    return Either.right(new TextDecoder("utf-8", { fatal: true }).decode(bytes))
  } catch {
    const offset = invalidUtf8At(bytes)
    const lineStart = bytes.lastIndexOf(0x0a, offset - 1) + 1
    let line = 1
    for (let i = bytes.indexOf(0x0a); i !== -1 && i < lineStart; i = bytes.indexOf(0x0a, i + 1)) line++
    const before = new TextDecoder("utf-8").decode(bytes.subarray(lineStart, offset))
    const shown = Array.from(bytes.subarray(offset, offset + 4), (b) => `0x${b.toString(16).toUpperCase().padStart(2, "0")}`)
    return Either.left({
      rule: null,
      path: "",
      message: `not UTF-8: the bytes at offset ${offset} (${
        shown.join(" ")
      }) are not a UTF-8 character; a rules file is UTF-8 text (Latin-1 and other encodings are refused)`,
      line,
      column: before.length + 1
    })
  }
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
 * extension names. The file is refused before it is read when it is larger
 * than `limits.maxDocumentBytes`, and read as UTF-8 (a byte order mark is
 * skipped; a byte sequence that is not UTF-8 is refused at its offset).
 * Nothing of an invalid document is loaded.
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
    const unreadable = (error: PlatformError) => new RulesFileError({ path, ...Files.unreadable("rules", path, error) })
    const limits = { limits: options?.limits }
    // The size is checked before anything is read, and again on what was read.
    const info = yield* Effect.mapError(fs.stat(path), unreadable)
    const size = info.type === "File" ? Rules.checkSize(Number(info.size), limits) : []
    if (size.length > 0) return yield* invalid(size, path)
    const bytes = yield* Effect.mapError(fs.readFile(path), unreadable)
    const read = Rules.checkSize(bytes.length, limits)
    if (read.length > 0) return yield* invalid(read, path)
    const text = decodeUtf8(bytes)
    if (Either.isLeft(text)) return yield* invalid([text.left], path)
    const parseOptions = { source: path, limits: options?.limits }
    return yield* (format === "json" ? parseJson(text.right, parseOptions) : parseYaml(text.right, parseOptions))
  })
