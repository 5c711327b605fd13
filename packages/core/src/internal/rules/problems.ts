/**
 * What is wrong with a rules document, and how a problem is told: the
 * checks that only see across fields or rules (duplicate ids, unreachable
 * rules, missing reasons and approvals, an unreachable quorum), Schema's
 * issues in the documentation's words, problems named by rule and sorted by
 * where they are, paths written and read back, and the size of a text.
 */
import * as ParseResult from "effect/ParseResult"
import type { Combine, Limits, Problem, Rule, RuleEffect } from "../../Rules.js"

// -----------------------------------------------------------------------------
// values and paths
// -----------------------------------------------------------------------------

/**
 * What a rule id looks like: letters, digits, ".", "_", ":" and "-", starting
 * with a letter or digit.
 *
 * @internal
 */
export const idPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/

/**
 * A value as a problem quotes it: JSON, cut at 60 characters.
 *
 * @internal
 */
export const show = (u: unknown): string => {
  const text = JSON.stringify(u)
  return text === undefined ? String(u) : text.length > 60 ? `${text.slice(0, 59)}…` : text
}

/** @internal */
export type Path = ReadonlyArray<PropertyKey>

/**
 * A path as the documentation writes it: `rules[3].when.all[0].gt` (see
 * `Rules.formatPath`).
 *
 * @internal
 */
export const formatPath = (path: Path): string =>
  path.map((key, i) => typeof key === "number" ? `[${key}]` : `${i === 0 ? "" : "."}${String(key)}`).join("")

const pathSegments = /[^.[\]]+|\[(\d+)\]/g

/**
 * The segments of a formatted path (`rules[3].when.gt`), to find where a
 * problem is in the text.
 *
 * @internal
 */
export const segmentsOf = (path: string): Array<string | number> =>
  Array.from(path.matchAll(pathSegments), (m) => (m[1] !== undefined ? Number(m[1]) : m[0]))

/**
 * A very long path (too deep a nesting) by its first segments:
 * `rules[0].when.not.not…(70 more)`.
 *
 * @internal
 */
export const abbreviate = (path: string): string => {
  const segments = path.match(pathSegments) ?? []
  if (segments.length <= 16) return path
  const head = segments.slice(0, 12).map((s, i) => i === 0 || s.startsWith("[") ? s : `.${s}`).join("")
  return `${head}…(${segments.length - 12} more)`
}

// -----------------------------------------------------------------------------
// Schema's issues
// -----------------------------------------------------------------------------

const expectedKeys = /expected: (.*)$/s

/**
 * The issues of a parse error, as problems, with the messages made to read
 * as the documentation does.
 *
 * @internal
 */
export const issuesOf = (error: ParseResult.ParseError, prefix: Path): Array<{ path: Path; message: string }> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => {
    const path = [...prefix, ...issue.path]
    const last = issue.path[issue.path.length - 1]
    switch (issue._tag) {
      case "Unexpected": {
        const expected = expectedKeys.exec(issue.message)?.[1]?.replace(/"/g, "").replace(/ \| /g, ", ")
        return {
          path,
          message: `unknown field ${JSON.stringify(String(last))}${expected === undefined ? "" : `; expected one of ${expected}`}`
        }
      }
      case "Missing":
        return { path, message: `missing required field ${JSON.stringify(String(last))}` }
      default:
        return {
          path,
          message: objectExpected.test(issue.message)
            ? `expected an object, not ${show(actualOf(issue.message))}`
            : issue.message.length > 200
            // Schema's messages quote the whole value at fault ("Expected string, actual [1,1,…]").
            ? `${issue.message.slice(0, 199)}…`
            : issue.message
        }
    }
  })

/** A struct's own type failure: its message is "Expected <identifier or type>, actual …". */
const objectExpected = /^Expected (\{|Rule,|RuleMatch,|RuleReason,|ApprovalSettings,)/

const actualOf = (message: string): unknown => {
  const at = message.lastIndexOf(", actual ")
  const text = at === -1 ? "" : message.slice(at + ", actual ".length)
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

// -----------------------------------------------------------------------------
// the cross checks
// -----------------------------------------------------------------------------

/**
 * A rule of the document being decoded, as written and as decoded.
 *
 * @internal
 */
export interface Entry {
  readonly index: number
  /** The rule as written (its `id` names it in problems even when it does not decode). */
  readonly raw: unknown
  /** The decoded rule, when it decodes. */
  readonly rule: Rule | undefined
}

/**
 * A problem at a path, before it is named by rule.
 *
 * @internal
 */
export interface Located {
  readonly path: Path
  readonly message: string
}

const approvalEffects: ReadonlyArray<RuleEffect> = ["pending", "require-approval"]

const isCatchAll = (rule: Rule): boolean =>
  rule.when === undefined &&
  (rule.match === undefined ||
    (rule.match.kind === undefined && rule.match.name === undefined && rule.match.roles === undefined &&
      rule.match.tenant === undefined &&
      (rule.match.resource === undefined ||
        (rule.match.resource.type === undefined && rule.match.resource.id === undefined))))

/** What a rule as written holds in its own `id` field. */
export const ownId = (raw: unknown): unknown =>
  typeof raw === "object" && raw !== null && Object.prototype.hasOwnProperty.call(raw, "id")
    ? (raw as { id?: unknown }).id
    : undefined

const isRuleId = (id: unknown): id is string => typeof id === "string" && idPattern.test(id)

/** The rule's id as written when it is a valid one: a rule with none, or an invalid one, is named `#<index>`. */
const rawId = (raw: unknown): string | undefined => {
  const id = ownId(raw)
  return isRuleId(id) ? id : undefined
}

/**
 * How a problem names the rule at `index` whose `id` field holds `id` (see
 * `Rules.ruleName`).
 *
 * @internal
 */
export const ruleName = (id: unknown, index: number): string => isRuleId(id) ? id : `#${index}`

/**
 * What can only be seen across fields or across rules.
 *
 * @internal
 */
export const crossChecks = (combine: Combine | undefined, entries: ReadonlyArray<Entry>): Array<Located> => {
  const problems: Array<Located> = []
  const seen = new Map<string, number>()
  let catchAll: { readonly index: number; readonly id: string } | undefined
  for (const { index, raw, rule } of entries) {
    const at = (...path: Array<PropertyKey>): Path => ["rules", index, ...path]
    const id = rawId(raw)
    if (id === "default") {
      problems.push({ path: at("id"), message: `the rule id "default" is reserved for the document's default` })
    } else if (id !== undefined) {
      const first = seen.get(id)
      if (first !== undefined) {
        problems.push({ path: at("id"), message: `duplicate rule id ${JSON.stringify(id)} (first used by rules[${first}])` })
      } else {
        seen.set(id, index)
      }
    }
    if (catchAll !== undefined && combine === "first-applicable") {
      problems.push({
        path: at(),
        message: `unreachable: rule ${JSON.stringify(catchAll.id)} (rules[${catchAll.index}]) before it matches every action, and first-applicable stops there`
      })
    }
    if (rule === undefined) continue
    if (catchAll === undefined && isCatchAll(rule)) catchAll = { index, id: rule.id }
    const effect = rule.effect
    if (effect !== "allow" && rule.reason === undefined) {
      problems.push({
        path: at("reason"),
        message: `missing required field "reason": a ${effect} rule says why, with reason { code, message }`
      })
    }
    if (rule.reviewPath !== undefined && effect !== "escalate") {
      problems.push({ path: at("reviewPath"), message: `reviewPath applies only to escalate, not ${effect}` })
    }
    const approval = rule.approval
    const isApproval = approvalEffects.includes(effect)
    if (approval === undefined) {
      if (isApproval || effect === "require-acknowledgment") {
        problems.push({
          path: at("approval"),
          message: `missing required field "approval": a ${effect} rule names who may ${
            isApproval ? "approve" : "acknowledge"
          } (approval.roles or approval.principals)`
        })
      }
      continue
    }
    if (!isApproval && effect !== "require-acknowledgment") {
      problems.push({
        path: at("approval"),
        message: `approval settings apply only to pending, require-approval and require-acknowledgment, not ${effect}`
      })
      continue
    }
    const roles = approval.roles ?? []
    const principals = approval.principals ?? []
    if (roles.length === 0 && principals.length === 0) {
      problems.push({
        path: at("approval"),
        message: `no one may ${isApproval ? "approve" : "acknowledge"}: list approval.roles or approval.principals`
      })
    }
    if (!isApproval) {
      for (const key of ["quorum", "separationOfDuties", "timeoutSeconds"] as const) {
        if (approval[key] !== undefined) {
          problems.push({ path: at("approval", key), message: `${key} applies only to approvals, not require-acknowledgment` })
        }
      }
      continue
    }
    const quorum = approval.quorum ?? 1
    const eligible = new Set(principals).size
    if (roles.length === 0 && eligible > 0 && quorum > eligible) {
      problems.push({
        path: at("approval", "quorum"),
        message: `quorum ${quorum} can never be reached: only ${eligible} ${
          eligible === 1 ? "principal is" : "principals are"
        } eligible (approval.principals) and no role is`
      })
    }
  }
  return problems
}

/**
 * The rule a path is in, named by the rules as written (`raws`: the
 * document's `rules`, whatever it is).
 *
 * @internal
 */
export const nameOf = (raws: unknown, path: Path): string | null => {
  if (path[0] !== "rules" || typeof path[1] !== "number" || !Array.isArray(raws) || path[1] >= raws.length) return null
  return ruleName(ownId(raws[path[1]]), path[1])
}

/**
 * Problems, sorted by where they are in the document (then as found).
 *
 * @internal
 */
export const toProblems = (located: ReadonlyArray<Located>, raws: unknown): Array<Problem> =>
  located
    .map((p, order) => ({ p, order }))
    .sort((a, b) => {
      const ia = a.p.path[0] === "rules" && typeof a.p.path[1] === "number" ? a.p.path[1] : -1
      const ib = b.p.path[0] === "rules" && typeof b.p.path[1] === "number" ? b.p.path[1] : -1
      return ia - ib || a.order - b.order
    })
    .map(({ p }) => ({ rule: nameOf(raws, p.path), path: formatPath(p.path), message: p.message }))

// -----------------------------------------------------------------------------
// size
// -----------------------------------------------------------------------------

/**
 * Bytes of `text` in UTF-8 (a lone surrogate counts as the 3 bytes of U+FFFD).
 *
 * @internal
 */
export const utf8Length = (text: string): number => {
  let bytes = text.length
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) bytes += 1
    else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2 // a surrogate pair: 4 bytes for 2 units
      i++
    } else bytes += 2
  }
  return bytes
}

/**
 * The problem of a text of `bytes` bytes over `limits.maxDocumentBytes`, at
 * its start; none when it is within.
 *
 * @internal
 */
export const sizeProblems = (bytes: number, limits: Limits): Array<Problem> =>
  bytes <= limits.maxDocumentBytes ? [] : [{
    rule: null,
    path: "",
    message: `a rules document is at most ${limits.maxDocumentBytes} bytes long (limits.maxDocumentBytes); this one has ${bytes}`,
    line: 1,
    column: 1
  }]
