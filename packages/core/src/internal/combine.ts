/**
 * The machinery of `Decision`: the restrictiveness order and the join that
 * `Decision.combine` computes (reasons merged, most restrictive outcome
 * first, duplicates once; same-tag decisions merged field by field), and
 * the helpers its constructors share with it. On the evaluation's hot path:
 * every combinator joins its children's results with it.
 */
import * as Duration from "effect/Duration"
import * as Action from "../Action.js"
import type {
  ApprovalRequirement,
  Authority,
  Decision,
  Escalate,
  Reason,
  RequireAcknowledgment,
  RequireApproval,
  Result,
  Transform
} from "../Decision.js"

/** @internal */
export const noStrings: ReadonlyArray<string> = Object.freeze([])

/**
 * Sorted, each once.
 *
 * @internal
 */
export const sortedUnique = (values: Iterable<string>): ReadonlyArray<string> => {
  const out = Array.from(new Set(values)).sort()
  return out.length === 0 ? noStrings : out
}

/**
 * The restrictiveness order: `NotApplicable` -1, `Allow` 0, … `Deny` 7.
 *
 * @internal
 */
export const ranks: Record<Result["_tag"], number> = {
  NotApplicable: -1,
  Allow: 0,
  Warn: 1,
  Transform: 2,
  RequireAcknowledgment: 3,
  RequireApproval: 4,
  Defer: 5,
  Escalate: 6,
  Deny: 7
}

const reasonKey = (r: Reason): string =>
  `${r.outcome}\u0000${r.code}\u0000${r.message}\u0000${r.policyId ?? ""}\u0000${r.ruleId ?? ""}\u0000${
    r.evidenceRefs?.join("\u0001") ?? ""
  }`

/**
 * The reasons, each once (the first of equal ones).
 *
 * @internal
 */
export const dedupe = (reasons: ReadonlyArray<Reason>): ReadonlyArray<Reason> => {
  if (reasons.length < 2) return reasons
  const seen = new Set<string>()
  const out: Array<Reason> = []
  for (const r of reasons) {
    const key = reasonKey(r)
    if (!seen.has(key)) {
      seen.add(key)
      out.push(r)
    }
  }
  return out.length === reasons.length ? reasons : out
}

/**
 * Merges two reason lists: most restrictive outcome first, left before right
 * among equals, duplicates dropped. A stable merge followed by dedupe is
 * associative, which keeps `combine` associative.
 *
 * @internal
 */
export const mergeReasons = (left: ReadonlyArray<Reason>, right: ReadonlyArray<Reason>): ReadonlyArray<Reason> => {
  if (right.length === 0) return left
  if (left.length === 0) return right
  const out: Array<Reason> = []
  let i = 0
  let j = 0
  while (i < left.length && j < right.length) {
    if (ranks[right[j]!.outcome] > ranks[left[i]!.outcome]) out.push(right[j++]!)
    else out.push(left[i++]!)
  }
  while (i < left.length) out.push(left[i++]!)
  while (j < right.length) out.push(right[j++]!)
  return dedupe(out)
}

const unionSorted = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): ReadonlyArray<string> =>
  b.length === 0 ? a : a.length === 0 ? b : sortedUnique([...a, ...b])

const unionAuthority = (a: Authority, b: Authority): Authority => ({
  roles: unionSorted(a.roles, b.roles),
  principals: unionSorted(a.principals, b.principals)
})

const minTimeout = (
  a: Duration.Duration | undefined,
  b: Duration.Duration | undefined
): Duration.Duration | undefined => (a === undefined ? b : b === undefined ? a : Duration.min(a, b))

/**
 * The canonical JSON of a replacement, or `undefined` for one outside the
 * value domain (it loses the tie, and is refused when it is checked).
 */
const canonicalOf = (action: Action.Action): string | undefined => {
  try {
    return Action.canonical(action)
  } catch {
    return undefined
  }
}

/**
 * The join of two decisions of the same tag, with their reasons `merged`.
 *
 * @internal
 */
export const mergeSameTag = (a: Decision, b: Decision, merged: ReadonlyArray<Reason>): Decision => {
  switch (a._tag) {
    case "Transform": {
      const other = b as Transform
      if (a.action === other.action) return withReasons(a, merged)
      // Two different replacements: pick one deterministically (the smaller
      // canonical form) so that combine stays associative and commutative.
      // Both reasons are kept, and the chosen action is re-evaluated before
      // anything runs, so the other policy is consulted again.
      const ca = canonicalOf(a.action)
      const cb = canonicalOf(other.action)
      const first = ca !== undefined && (cb === undefined || ca <= cb)
      return { _tag: "Transform", reasons: merged, action: first ? a.action : other.action }
    }
    case "RequireAcknowledgment":
      return {
        _tag: "RequireAcknowledgment",
        reasons: merged,
        authority: unionAuthority(a.authority, (b as RequireAcknowledgment).authority)
      }
    case "RequireApproval": {
      const ra = a.requirement
      const rb = (b as RequireApproval).requirement
      const requirement: { -readonly [K in keyof ApprovalRequirement]: ApprovalRequirement[K] } = {
        quorum: Math.max(ra.quorum, rb.quorum),
        authority: unionAuthority(ra.authority, rb.authority),
        separationOfDuties: ra.separationOfDuties || rb.separationOfDuties
      }
      const timeout = minTimeout(ra.timeout, rb.timeout)
      if (timeout !== undefined) requirement.timeout = timeout
      return { _tag: "RequireApproval", reasons: merged, requirement }
    }
    case "Escalate":
      return {
        _tag: "Escalate",
        reasons: merged,
        reviewPaths: unionSorted(a.reviewPaths, (b as Escalate).reviewPaths)
      }
    default:
      return merged === a.reasons ? a : withReasons(a, merged)
  }
}

/**
 * A copy of `r` naming `policyId`.
 *
 * @internal
 */
export const stampReason = (r: Reason, policyId: string): Reason => {
  const out: { -readonly [K in keyof Reason]: Reason[K] } = {
    code: r.code,
    message: r.message,
    outcome: r.outcome,
    policyId
  }
  if (r.ruleId !== undefined) out.ruleId = r.ruleId
  if (r.evidenceRefs !== undefined) out.evidenceRefs = r.evidenceRefs
  return out
}

/**
 * The same decision with other reasons. Built field by field rather than by
 * object spread, which is several times slower on the evaluation hot path.
 *
 * @internal
 */
export const withReasons = (d: Decision, reasons: ReadonlyArray<Reason>): Decision => {
  switch (d._tag) {
    case "Transform":
      return { _tag: "Transform", reasons, action: d.action }
    case "RequireAcknowledgment":
      return { _tag: "RequireAcknowledgment", reasons, authority: d.authority }
    case "RequireApproval":
      return { _tag: "RequireApproval", reasons, requirement: d.requirement }
    case "Escalate":
      return { _tag: "Escalate", reasons, reviewPaths: d.reviewPaths }
    default:
      return { _tag: d._tag, reasons }
  }
}
