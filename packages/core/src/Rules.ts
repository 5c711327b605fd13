/**
 * Declarative rules: a rules document (JSON, or YAML through
 * `@gavel/adapters/RulesFile`) decoded with Schema and compiled into the same
 * `Policy` values as code, so rules and code policies compose.
 *
 * A document names a policy set (`id`, `version`), how its rules combine
 * (`first-applicable` or `deny-wins`), an optional `default` effect, and the
 * rules: each a `match` (kind, name glob, roles, tenant, resource), optional
 * conditions (`when`: a small typed language over the action's fields — no
 * `eval`, no regular expressions), an effect and a reason. A document with
 * any problem is refused as a whole ({@link InvalidRules}), every problem
 * named by rule and path. See docs/rules.md for the reference.
 *
 * @example
 * ```ts
 * import { Action, PolicySet, Rules } from "@gavel/core"
 * import * as Effect from "effect/Effect"
 *
 * const rules = Effect.runSync(Rules.decode({
 *   id: "tools",
 *   version: "1",
 *   combine: "first-applicable",
 *   default: "deny",
 *   rules: [
 *     { id: "no-shell", match: { name: "shell.*" }, effect: "deny",
 *       reason: { code: "tool.blocked", message: "Shell access is not allowed" } },
 *     { id: "operators", match: { roles: ["operator"] }, effect: "allow" }
 *   ]
 * }))
 *
 * const record = PolicySet.evaluateSync(Rules.policySet(rules), Action.make({
 *   actor: { id: "agent-1", kind: "agent", roles: ["operator"] },
 *   kind: "tool",
 *   name: "search"
 * }))
 * record.decision._tag // "Allow"
 * ```
 *
 * @since 0.1.0
 */
// This module is the public API of declarative rules and only that: the
// document's schemas, the errors, decoding, the compiled value and its policy
// set, each export with its documentation (about 360 of its 820 lines are
// JSDoc). It stays one module so that `Rules.*` is one namespace; the
// machinery (globs, reading an action, conditions, bounds, the cross checks,
// the compile step) is in internal/rules/.
import type * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import type * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Action from "./Action.js"
import * as Decision from "./Decision.js"
import * as DecisionRecord from "./DecisionRecord.js"
import { canonicalJson, sha256Hex } from "./internal/canonical.js"
import * as json from "./internal/json.js"
import * as internal from "./internal/rules.js"
import * as Policy from "./Policy.js"
import * as PolicySet from "./PolicySet.js"

// -----------------------------------------------------------------------------
// the document
// -----------------------------------------------------------------------------

const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const nonEmpty = (what: string) =>
  Schema.String.pipe(Schema.filter((s) => s.trim() !== "" || `${what} must not be empty`))

const Id = Schema.String.pipe(
  Schema.filter((s) =>
    internal.idPattern.test(s) ||
    `${JSON.stringify(s)} is not a valid id: letters, digits, ".", "_", ":" and "-", starting with a letter or digit`
  )
)

const nonEmptyList = <S extends Schema.Schema.Any>(item: S, what: string) =>
  Schema.Array(item).pipe(Schema.filter((items) => items.length > 0 || `${what} must list at least one`))

const literals = <const L extends ReadonlyArray<string>>(values: L, what: string) =>
  Schema.Literal(...values).annotations({
    message: (issue) => ({
      message: `unknown ${what} ${internal.show(issue.actual)}; expected one of ${values.join(", ")}`,
      override: true
    })
  })

const ruleEffects = [
  "allow",
  "deny",
  "warn",
  "pending",
  "require-approval",
  "require-acknowledgment",
  "escalate",
  "defer"
] as const

/**
 * What a rule decides: `allow`, `deny`, `warn`, `pending` (or its synonym
 * `require-approval`), `require-acknowledgment`, `escalate` or `defer`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RuleEffect = literals(ruleEffects, "effect")

/**
 * @since 0.1.0
 * @category models
 */
export type RuleEffect = typeof RuleEffect.Type

const defaultEffects = ["allow", "warn", "deny", "defer"] as const

/**
 * What a document decides when no rule applies: `allow`, `warn`, `deny` or
 * `defer` (an approval needs settings: write it as a catch-all rule).
 *
 * @since 0.1.0
 * @category schemas
 */
export const DefaultEffect = literals(defaultEffects, "default effect")

/**
 * @since 0.1.0
 * @category models
 */
export type DefaultEffect = typeof DefaultEffect.Type

/**
 * How rules combine: `first-applicable` (the first rule that applies
 * decides; order matters) or `deny-wins` (every rule that applies
 * contributes; the most restrictive decision wins, `Policy.all`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Combine = literals(["first-applicable", "deny-wins"], "combine")

/**
 * @since 0.1.0
 * @category models
 */
export type Combine = typeof Combine.Type

/**
 * A reason as a rule writes it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RuleReason = Schema.Struct({
  code: nonEmpty("a reason code"),
  message: Schema.String
}).annotations({ identifier: "RuleReason" })

/**
 * @since 0.1.0
 * @category models
 */
export interface RuleReason extends Schema.Schema.Type<typeof RuleReason> {}

/**
 * The largest `approval.timeoutSeconds`: 366 days (31,622,400 seconds). An
 * approval is a person's answer; a longer wait is a mistake, and a far
 * larger one (`8640000000000`) would put its expiry past what a date can
 * hold.
 *
 * @since 0.1.0
 * @category models
 */
export const maxTimeoutSeconds: number = 366 * 24 * 60 * 60

/**
 * The largest `approval.quorum`: 1,000 distinct approvers.
 *
 * @since 0.1.0
 * @category models
 */
export const maxQuorum: number = 1_000

const atMost = <S extends Schema.Schema<number, number>>(schema: S, what: string, max: number, unit = "") =>
  schema.pipe(Schema.filter((n) => n <= max || `${what} is at most ${max}${unit}, not ${n}`))

/**
 * Who may approve (or acknowledge) and how: `quorum` distinct approvers
 * holding one of `roles` or listed in `principals`, the requester excluded
 * unless `separationOfDuties` is `false`, within `timeoutSeconds`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ApprovalSettings = Schema.Struct({
  quorum: optional(atMost(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), "quorum", maxQuorum)),
  roles: optional(Schema.Array(nonEmpty("a role"))),
  principals: optional(Schema.Array(nonEmpty("a principal"))),
  separationOfDuties: optional(Schema.Boolean),
  timeoutSeconds: optional(
    atMost(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), "timeoutSeconds", maxTimeoutSeconds, " (366 days)")
  )
}).annotations({ identifier: "ApprovalSettings" })

/**
 * @since 0.1.0
 * @category models
 */
export interface ApprovalSettings extends Schema.Schema.Type<typeof ApprovalSettings> {}

/**
 * Which actions a rule is about; every field is optional and all given ones
 * must hold. `name` and `resource.id` are globs (`*`, `?`); `roles` holds
 * when the actor has at least one of them; `tenant` is the actor's tenant.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Match = Schema.Struct({
  kind: optional(nonEmpty("kind")),
  name: optional(nonEmpty("a name pattern")),
  roles: optional(nonEmptyList(Schema.String, "roles")),
  tenant: optional(Schema.String),
  resource: optional(Schema.Struct({ type: optional(Schema.String), id: optional(Schema.String) }))
}).annotations({ identifier: "RuleMatch" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Match extends Schema.Schema.Type<typeof Match> {}

/**
 * A scalar a comparison compares with.
 *
 * @since 0.1.0
 * @category models
 */
export type Scalar = string | number | boolean | null

/**
 * A comparison: `field` and exactly one operator.
 *
 * @since 0.1.0
 * @category models
 */
export interface Comparison {
  readonly field: string
  readonly eq?: Scalar
  readonly ne?: Scalar
  readonly in?: ReadonlyArray<Scalar>
  readonly gt?: number
  readonly ge?: number
  readonly lt?: number
  readonly le?: number
  readonly glob?: string
  readonly exists?: boolean
}

/**
 * A condition: a {@link Comparison}, or a group (`all`, `any`, `not`).
 *
 * @since 0.1.0
 * @category models
 */
export type Condition =
  | Comparison
  | { readonly all: ReadonlyArray<Condition> }
  | { readonly any: ReadonlyArray<Condition> }
  | { readonly not: Condition }

const conditionIssue = (ast: Schema.Schema.AnyNoContext["ast"], input: unknown) =>
(issue: internal.ConditionIssue): ParseResult.ParseIssue => {
  const leaf = new ParseResult.Type(ast, input, issue.message)
  const [head, ...tail] = issue.path
  return head === undefined ? leaf : new ParseResult.Pointer([head, ...tail], input, leaf)
}

/**
 * A condition, checked as a whole: shape, known field, and operator and
 * operand suited to the field's type (`name gt 5` is refused). The check is
 * hand-written rather than a union of structs so that each problem is named
 * precisely instead of as the failure of every alternative.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Condition: Schema.Schema<Condition> = Schema.declare([], {
  decode: () => (input, _, ast) => {
    const issues = internal.checkCondition(input)
    if (issues.length === 0) return ParseResult.succeed(input as Condition)
    const all = issues.map(conditionIssue(ast, input))
    return ParseResult.fail(
      all.length === 1 ? all[0]! : new ParseResult.Composite(ast, input, all as [ParseResult.ParseIssue, ...Array<ParseResult.ParseIssue>])
    )
  },
  encode: () => (input) => ParseResult.succeed(input as Condition)
}, {
  identifier: "RuleCondition",
  jsonSchema: { type: "object" }
})

/**
 * One rule.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Rule = Schema.Struct({
  id: Id,
  description: optional(Schema.String),
  match: optional(Match),
  when: optional(Condition),
  effect: RuleEffect,
  reason: optional(RuleReason),
  approval: optional(ApprovalSettings),
  reviewPath: optional(nonEmpty("reviewPath"))
}).annotations({ identifier: "Rule" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Rule extends Schema.Schema.Type<typeof Rule> {}

const headerFields = {
  id: Id,
  version: nonEmpty("version"),
  description: optional(Schema.String),
  combine: Combine,
  default: optional(DefaultEffect),
  defaultReason: optional(RuleReason)
}

const DocumentStructure = Schema.Struct({ ...headerFields, rules: Schema.Array(Rule) }).pipe(
  Schema.filter((document) =>
    internal.crossChecks(document.combine, document.rules.map((rule, index) => ({ index, raw: rule, rule }))).map((p) => ({
      path: p.path,
      message: p.message
    }))
  )
)

/**
 * A rules document, structure and cross-rule checks included: decoding it
 * with `onExcessProperty: "error"` refuses everything {@link decode} refuses
 * (but {@link decode} reports the problems of every rule even when some do
 * not decode, and names them by rule), the {@link defaultLimits} included.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RulesDocument: Schema.Schema<
  Schema.Schema.Type<typeof DocumentStructure>,
  Schema.Schema.Encoded<typeof DocumentStructure>
> = Schema.declare([DocumentStructure], {
  // The bounds (with the default limits) are checked by an iterative walk
  // before the structure's recursive decoding can overflow on the input;
  // the structure decodes the document's canonical form (strings in NFC).
  decode: (structure) => (input, options, ast) => {
    const bounds = internal.checkBounds(input, defaultLimits)
    if (bounds.length === 0) return ParseResult.decodeUnknown(structure)(internal.canonicalDocument(input), options)
    const issues = bounds.map(conditionIssue(ast, input))
    return ParseResult.fail(
      issues.length === 1 ? issues[0]! : new ParseResult.Composite(ast, input, issues as [ParseResult.ParseIssue, ...Array<ParseResult.ParseIssue>])
    )
  },
  encode: (structure) => (input, options) => ParseResult.encodeUnknown(structure)(input, options)
}, { identifier: "RulesDocument" })

/**
 * @since 0.1.0
 * @category models
 */
export interface RulesDocument extends Schema.Schema.Type<typeof RulesDocument> {}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * One problem of a rules document: the rule it is in (its id, or `#index`
 * when it has no usable id; `null` for the document's own fields), the path
 * to the offending value (`rules[3].when.all[0].gt`), and what is wrong.
 * `line` and `column` (1-based) are set when the document came from a text
 * ({@link parseJson}, or a file read by `@gavel/adapters`' `RulesFile`).
 *
 * @since 0.1.0
 * @category errors
 */
export const Problem = Schema.Struct({
  rule: Schema.NullOr(Schema.String),
  path: Schema.String,
  message: Schema.String,
  line: Schema.optional(Schema.Int),
  column: Schema.optional(Schema.Int)
}).annotations({ identifier: "RulesProblem" })

/**
 * @since 0.1.0
 * @category errors
 */
export interface Problem extends Schema.Schema.Type<typeof Problem> {}

/**
 * A problem on one line: `rule "large-payment" at rules[1].when.gt (line 9,
 * column 7): gt compares with a number, not "big"`. A path of more than 16
 * segments is shortened to its first 12: `rules[0].when.not.not…(70 more)`.
 *
 * @since 0.1.0
 * @category errors
 */
export const formatProblem = (problem: Problem): string => {
  const where = problem.path === "" ? "document" : internal.abbreviate(problem.path)
  const position = problem.line === undefined
    ? ""
    : ` (line ${problem.line}${problem.column === undefined ? "" : `, column ${problem.column}`})`
  const rule = problem.rule === null ? "" : `rule ${JSON.stringify(problem.rule)} `
  return `${rule}at ${where}${position}: ${problem.message}`.replace(/\s*\n\s*/g, " ")
}

/**
 * A rules document was refused, as a whole: nothing of it is loaded.
 * `problems` lists every problem found; `source` is the file it came from,
 * when there is one.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRules extends Schema.TaggedError<InvalidRules>()("InvalidRules", {
  source: Schema.optional(Schema.String),
  problems: Schema.Array(Problem)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const n = this.problems.length
    const head = `Invalid rules document${this.source === undefined ? "" : ` "${this.source}"`} (${n} ${
      n === 1 ? "problem" : "problems"
    })`
    return [head, ...this.problems.map((p) => `  ${formatProblem(p)}`)].join("\n")
  }
}

// -----------------------------------------------------------------------------
// decoding
// -----------------------------------------------------------------------------

/**
 * A path as the documentation writes it: `rules[3].when.all[0].gt`.
 *
 * @since 0.1.0
 * @category errors
 */
export const formatPath: (path: ReadonlyArray<PropertyKey>) => string = internal.formatPath

const parseOptions = { errors: "all", onExcessProperty: "error" } as const

const decodeHeader = Schema.decodeUnknownEither(
  Schema.Struct({ ...headerFields, rules: Schema.Array(Schema.Unknown) }),
  parseOptions
)
const decodeRule = Schema.decodeUnknownEither(Rule, parseOptions)

/**
 * How a problem names the rule at `index` whose `id` field holds `id`: the
 * id when it is a valid one, `#<index>` otherwise (no id, or an invalid one).
 * For loaders that report problems of their own (a YAML tag, a duplicate
 * key) in the same words as {@link decode}.
 *
 * @since 0.1.0
 * @category problems
 */
export const ruleName: (id: unknown, index: number) => string = internal.ruleName

const decodeDocument = (written: unknown, limits: Limits): Either.Either<RulesDocument, ReadonlyArray<Problem>> => {
  if (typeof written !== "object" || written === null || Array.isArray(written)) {
    return Either.left([{
      rule: null,
      path: "",
      message: `a rules document is an object with id, version, combine and rules, not ${
        written === null ? "null" : Array.isArray(written) ? "a list" : `a ${typeof written}`
      }`
    }])
  }
  // Bounds first, by an iterative walk: nothing recursive (Schema decoding,
  // error formatting, compilation) runs on a document that exceeds them.
  const bounds = internal.checkBounds(written, limits)
  if (bounds.some((issue) => issue.fatal)) return Either.left(internal.toProblems(bounds, (written as { rules?: unknown }).rules))
  // From here on the document is read in its canonical form (strings in NFC).
  const input = internal.canonicalDocument(written) as Record<string, unknown>
  const rawRules = input.rules
  const located: Array<internal.Located> = [...bounds]
  const add = (problems: ReadonlyArray<internal.Located>) => {
    // Not `push(...problems)`: a long list would overflow the arguments.
    for (const problem of problems) located.push(problem)
  }
  const header = decodeHeader(input)
  if (Either.isLeft(header)) add(internal.issuesOf(header.left, []))
  const entries: Array<internal.Entry> = []
  if (Array.isArray(rawRules)) {
    rawRules.forEach((raw: unknown, index) => {
      const decoded = decodeRule(raw)
      if (Either.isLeft(decoded)) add(internal.issuesOf(decoded.left, ["rules", index]))
      entries.push({ index, raw, rule: Either.getOrUndefined(decoded) })
    })
  }
  // The combination decides reachability even when other header fields are wrong.
  const rawCombine = input.combine
  const combine = Schema.is(Combine)(rawCombine) ? rawCombine : undefined
  add(internal.crossChecks(combine, entries))
  if (located.length > 0 || Either.isLeft(header)) return Either.left(internal.toProblems(located, rawRules))
  const { rules: _rules, ...fields } = header.right
  return Either.right({ ...fields, rules: entries.map((e) => e.rule!) })
}

// -----------------------------------------------------------------------------
// compiled rules
// -----------------------------------------------------------------------------

/**
 * A decoded, compiled rules document.
 *
 * - `policy`: the whole document as one synchronous policy, default
 *   included — it never abstains when the document has a `default`. For a
 *   policy that abstains when no rule applies (to compose with code
 *   policies under a default of the host's), leave `default` out.
 * - `document`: the decoded document, every string in Unicode NFC — the
 *   form the rules compare an action's text in (read in NFC too) and the
 *   form `policyHash` hashes, so that equal hashes decide alike.
 * - `policyHash`: SHA-256 of the canonical JSON of the decoded document: key
 *   order, whitespace, Unicode normalization form and the file's format
 *   (JSON or YAML) do not change it; any change of content does.
 *
 * Build it with {@link decode} (or {@link parseJson}): {@link policySet} and
 * {@link explain} use the compiled rules kept for that value.
 *
 * @since 0.1.0
 * @category models
 */
export interface Rules {
  readonly id: string
  readonly version: string
  readonly combine: Combine
  readonly document: RulesDocument
  readonly policyHash: string
  readonly policy: Policy.Sync
}

const compiled = new WeakMap<Rules, internal.CompiledDocument>()

/** The compiled form; a copy of a decoded value (spread, structured clone) is compiled again from its document. */
const compiledOf = (rules: Rules): internal.CompiledDocument => compiled.get(rules) ?? compiled.get(build(rules.document))!

const build = (document: RulesDocument): Rules => {
  const compiledDocument = internal.compile(document)
  const self: Rules = {
    id: document.id,
    version: document.version,
    combine: document.combine,
    document,
    policyHash: sha256Hex(canonicalJson(document)),
    policy: compiledDocument.policy
  }
  compiled.set(self, compiledDocument)
  return self
}

const invalid = (problems: ReadonlyArray<Problem>, source: string | undefined) =>
  new InvalidRules(source === undefined ? { problems } : { source, problems })

/**
 * The size limits of a rules document, each refused with an
 * {@link InvalidRules} naming where it is exceeded, before anything of the
 * document is decoded (see docs/rules.md, "Limits"):
 *
 * - `maxRules`: rules in the document (default 1,000);
 * - `maxValues`: values of every kind — objects, lists, strings, numbers… —
 *   counted where they occur, so a value referenced twice counts twice
 *   (default 100,000);
 * - `maxGlobLength`: characters of a glob (`match.name`, `match.resource.id`,
 *   a condition's `glob`; default 256);
 * - `maxDocumentBytes`: bytes of a document's text, in UTF-8 (default 1 MiB),
 *   refused before the text is parsed — by {@link parseJson} and the file
 *   readers of `@gavel/adapters`; {@link decode} takes a value, not a text,
 *   and only checks that the limit is a positive integer.
 *
 * Two limits are fixed: conditions nest at most 32 levels
 * ({@link maxConditionDepth}) and objects and lists at most 80
 * ({@link maxNesting}).
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  readonly maxRules: number
  readonly maxValues: number
  readonly maxGlobLength: number
  readonly maxDocumentBytes: number
}

/**
 * The default {@link Limits}.
 *
 * @since 0.1.0
 * @category models
 */
export const defaultLimits: Limits = {
  maxRules: 1_000,
  maxValues: 100_000,
  maxGlobLength: 256,
  maxDocumentBytes: 1_048_576
}

/**
 * How deep conditions (`all`, `any`, `not`) nest at most: 32.
 *
 * @since 0.1.0
 * @category models
 */
export const maxConditionDepth: number = internal.maxConditionDepth

/**
 * How deep objects and lists nest at most anywhere in a rules document: 80,
 * room for conditions at {@link maxConditionDepth} and the levels around
 * them.
 *
 * @since 0.1.0
 * @category models
 */
export const maxNesting: number = internal.maxNesting

/**
 * @since 0.1.0
 * @category models
 */
export interface DecodeOptions {
  /** Where the document came from (a file name), for error messages. */
  readonly source?: string | undefined
  /** Limits to use instead of {@link defaultLimits}; each a positive integer. */
  readonly limits?: Partial<Limits> | undefined
}

/** The limits of `options`, or the problems of the ones that are not positive integers. */
const limitsOf = (options: DecodeOptions | undefined): Either.Either<Limits, ReadonlyArray<Problem>> => {
  const limits = { ...defaultLimits }
  const problems: Array<Problem> = []
  for (const key of Object.keys(defaultLimits) as Array<keyof Limits>) {
    const value = options?.limits?.[key]
    if (value === undefined) continue
    if (Number.isSafeInteger(value) && value > 0) limits[key] = value
    else problems.push({ rule: null, path: "", message: `limits.${key} must be a positive integer, not ${typeof value === "number" ? String(value) : internal.show(value)}` })
  }
  return problems.length > 0 ? Either.left(problems) : Either.right(limits)
}

/**
 * Decodes and compiles a rules document (parsed JSON or YAML), or refuses it
 * as a whole with every problem found: unknown field or effect, duplicate
 * rule id, a rule unreachable after a catch-all, a condition unfit for its
 * field's type, an unreachable quorum, a missing reason or approval, and the
 * rest listed in docs/rules.md.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (input: unknown, options?: DecodeOptions): Effect.Effect<Rules, InvalidRules> =>
  Either.match(Either.flatMap(limitsOf(options), (limits) => decodeDocument(input, limits)), {
    onLeft: (problems) => Either.left(invalid(problems, options?.source)),
    onRight: (document) => Either.right(build(document))
  })

/** The limits of `options` for a text: a limit's problem is the whole text's, at its start. */
const textLimitsOf = (options: DecodeOptions | undefined): Either.Either<Limits, ReadonlyArray<Problem>> =>
  Either.mapLeft(limitsOf(options), (problems) => problems.map((p) => ({ ...p, line: 1, column: 1 })))

/**
 * The problems of a document's size before its text is parsed: a text (its
 * length in UTF-8) or a number of bytes over `limits.maxDocumentBytes`, or a
 * limit that is not a positive integer, at line 1, column 1. Empty when the
 * size is within the limit. {@link parseJson} checks it; file readers check
 * it before reading.
 *
 * @since 0.1.0
 * @category decoding
 */
export const checkSize = (text: string | number, options?: DecodeOptions): ReadonlyArray<Problem> =>
  Either.match(textLimitsOf(options), {
    onLeft: (problems) => problems,
    onRight: (limits) => internal.sizeProblems(typeof text === "number" ? text : internal.utf8Length(text), limits)
  })

/**
 * {@link decode} from JSON text, with the line and column of every
 * problem. A syntax error is an {@link InvalidRules} too, and so is a key
 * that appears twice in an object (at any depth; keys equal in Unicode NFC
 * are the same key): `JSON.parse` would keep the last one, and the document
 * would read one way to its reviewer and another to gavel. The text is
 * parsed once, without recursion, and refused up front when it is longer
 * than `limits.maxDocumentBytes` or nested deeper than {@link maxNesting}.
 *
 * @since 0.1.0
 * @category decoding
 */
export const parseJson = (text: string, options?: DecodeOptions): Effect.Effect<Rules, InvalidRules> => {
  const source = options?.source
  const limits = textLimitsOf(options)
  if (Either.isLeft(limits)) return Either.left(invalid(limits.left, source))
  const size = internal.sizeProblems(internal.utf8Length(text), limits.right)
  if (size.length > 0) return Either.left(invalid(size, source))
  const parsed = json.parse(text, { maxDepth: maxNesting, tooDeep: internal.tooDeep })
  if (parsed._tag === "Refused") {
    const raws = typeof parsed.partial === "object" && parsed.partial !== null
      ? (parsed.partial as { rules?: unknown }).rules
      : undefined
    return Either.left(invalid(
      parsed.problems.map(({ path, ...problem }) => ({ rule: internal.nameOf(raws, path), path: formatPath(path), ...problem })),
      source
    ))
  }
  return Either.match(decodeDocument(parsed.value, limits.right), {
    onLeft: (problems) =>
      Either.left(invalid(problems.map((p) => ({ ...p, ...parsed.positionOf(internal.segmentsOf(p.path)) })), source)),
    onRight: (document) => Either.right(build(document))
  })
}

// -----------------------------------------------------------------------------
// policy sets and explanations
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface PolicySetOptions {
  readonly decisionPolicy?: { readonly id: string; readonly decide: Policy.DecisionPolicy } | undefined
  readonly overridePolicy?: DecisionRecord.OverridePolicy | undefined
  readonly ttl?: Duration.DurationInput | undefined
  readonly explain?: PolicySet.ExplainMode | undefined
}

/**
 * The document as a policy set: its id and version, its rules, its
 * `default` as the set's default (so a record decided by it says
 * `defaulted: true`; without one, the set denies with
 * `policy.no_applicable`), and the document's hash as `policyHash`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const policySet = (rules: Rules, options?: PolicySetOptions): PolicySet.Sync => {
  const { combined, default: defaultDecision } = compiledOf(rules)
  // Ids, version and default were validated when the document was decoded,
  // and rule ids are unique: this cannot throw.
  return PolicySet.unsafeMake({
    id: rules.id,
    version: rules.version,
    policy: combined,
    policyHash: rules.policyHash,
    default: defaultDecision,
    decisionPolicy: options?.decisionPolicy,
    overridePolicy: options?.overridePolicy,
    ttl: options?.ttl,
    explain: options?.explain
  })
}

/**
 * Which rules matched an action, which decided, and the decision record.
 *
 * - `matched`: every rule whose match and conditions hold (each evaluated on
 *   its own, so a rule shadowed under first-applicable is listed too), with
 *   what it says; a rule whose conditions are indeterminate is listed with
 *   its `rules.indeterminate` denial.
 * - `decidedBy`: under first-applicable the first of them; under deny-wins
 *   those whose decision is the final one. Empty when the default decided
 *   (`record.defaulted`).
 *
 * @since 0.1.0
 * @category models
 */
export const Explanation = Schema.Struct({
  matched: Schema.Array(Schema.Struct({ ruleId: Schema.String, result: Decision.Decision })),
  decidedBy: Schema.Array(Schema.String),
  record: DecisionRecord.DecisionRecord
}).annotations({ identifier: "RulesExplanation" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Explanation extends Schema.Schema.Type<typeof Explanation> {}

/**
 * Explains how a rules document decides `action` (see {@link Explanation}).
 *
 * @since 0.1.0
 * @category evaluation
 */
export const explain = (
  rules: Rules,
  action: Action.Action,
  options?: PolicySet.EvaluateSyncOptions
): Explanation => {
  const matched: Array<{ readonly ruleId: string; readonly result: Decision.Decision }> = []
  const name = internal.read.name(action)
  for (const rule of compiledOf(rules).rules) {
    if (rule.name !== undefined && !internal.isText(name, rule.name)) continue
    const result = Policy.evaluateSync(rule.policy, action)
    if (Decision.isDecision(result)) matched.push({ ruleId: rule.id, result })
  }
  const record = PolicySet.evaluateSync(policySet(rules), action, options)
  const decidedBy = record.defaulted
    ? []
    : rules.combine === "first-applicable"
    ? matched.slice(0, 1).map((m) => m.ruleId)
    : matched.filter((m) => m.result._tag === record.decision._tag).map((m) => m.ruleId)
  return { matched, decidedBy, record }
}
