/**
 * What a policy returned, read as a decision: checked, copied field by field
 * and stamped with the policy's id, or the flaw that makes it unusable (a
 * defect: the policy fails closed). Also the check of a policy set's
 * default.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Action from "../../Action.js"
import * as Decision from "../../Decision.js"
import { defect } from "./defect.js"
import type { Context } from "./node.js"

/**
 * Why a value a policy returned cannot be used: reading it threw (a revoked
 * `Proxy`, a throwing getter), or it is not a well-formed decision.
 *
 * @internal
 */
export class Flaw {
  constructor(readonly kind: "unreadable" | "malformed", readonly error: unknown) {}
}

const malformed = new Flaw("malformed", undefined)

const outcomes: ReadonlySet<unknown> = new Set<unknown>(Decision.Outcome.literals)
const noStrings: ReadonlyArray<string> = Object.freeze([])

type Fields<K extends string> = { readonly [P in K]?: unknown }

/** A copy of an array of strings, each element read once; `undefined` when it is not one. */
const readStrings = (u: unknown): ReadonlyArray<string> | undefined => {
  if (!Array.isArray(u)) return undefined
  const n = u.length
  if (n === 0) return noStrings
  const out = new Array<string>(n)
  for (let i = 0; i < n; i++) {
    const s: unknown = u[i]
    if (typeof s !== "string") return undefined
    out[i] = s
  }
  return out
}

const readAuthority = (u: unknown): Decision.Authority | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const a = u as Fields<"roles" | "principals">
  const roles = readStrings(a.roles)
  const principals = roles === undefined ? undefined : readStrings(a.principals)
  return principals === undefined ? undefined : { roles: roles!, principals }
}

const readRequirement = (u: unknown): Decision.ApprovalRequirement | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const r = u as Fields<"quorum" | "authority" | "separationOfDuties" | "timeout">
  const quorum = r.quorum
  const separationOfDuties = r.separationOfDuties
  const timeout = r.timeout
  if (typeof quorum !== "number" || !Number.isInteger(quorum) || quorum < 1) return undefined
  if (typeof separationOfDuties !== "boolean") return undefined
  const authority = readAuthority(r.authority)
  if (authority === undefined) return undefined
  const out: { -readonly [K in keyof Decision.ApprovalRequirement]: Decision.ApprovalRequirement[K] } = {
    quorum,
    authority,
    separationOfDuties
  }
  if (timeout !== undefined) {
    if (!Duration.isDuration(timeout)) return undefined
    out.timeout = timeout
  }
  return out
}

/** A reason, each field read once, with `policyId` stamped when it has none. */
const readReason = (u: unknown, policyId: string): Decision.Reason | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const r = u as Fields<keyof Decision.Reason>
  const code = r.code
  const message = r.message
  const outcome = r.outcome
  const own = r.policyId
  const ruleId = r.ruleId
  const evidenceRefs = r.evidenceRefs
  // The record's schema wants a non-empty, trimmed code.
  if (typeof code !== "string" || code.length === 0 || code.trim() !== code) return undefined
  if (typeof message !== "string" || !outcomes.has(outcome)) return undefined
  if (own !== undefined && typeof own !== "string") return undefined
  const out: { -readonly [K in keyof Decision.Reason]: Decision.Reason[K] } = {
    code,
    message,
    outcome: outcome as Decision.Outcome,
    policyId: own ?? policyId
  }
  if (ruleId !== undefined) {
    if (typeof ruleId !== "string") return undefined
    out.ruleId = ruleId
  }
  if (evidenceRefs !== undefined) {
    const refs = readStrings(evidenceRefs)
    if (refs === undefined) return undefined
    out.evidenceRefs = refs
  }
  return out
}

/**
 * The reason a blocking decision without one gets: every decision that does
 * not proceed says why, in a code the host can key on.
 */
const noReason = (policyId: string, outcome: Decision.Outcome): Decision.Reason => ({
  code: "policy.no_reason",
  message: `Policy "${policyId}" returned ${outcome} without a reason`,
  outcome,
  policyId
})

const decodeAction = Schema.decodeUnknownEither(Action.Action)

/**
 * What a policy returned, as a fresh, plain decision: each field read once
 * (so a getter cannot answer one thing to the check and another to the
 * record), reasons stamped with `policyId`, and `policy.no_reason` added to a
 * decision that does not proceed and gives no reason. Hand-written rather
 * than a Schema decoding because it runs on every applicable result of the
 * sync fast path. `undefined` when it is not well-formed: such a result would
 * crash the record builder or produce a record that does not encode.
 */
const readDecision = (policyId: string, u: unknown, giveReason = true): Decision.Result | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const d = u as Fields<"_tag" | "reasons" | "action" | "authority" | "requirement" | "reviewPaths">
  const tag = d._tag
  if (tag === "NotApplicable") return Decision.notApplicable
  const raw = d.reasons
  if (!Array.isArray(raw)) return undefined
  const n = raw.length
  const reasons = new Array<Decision.Reason>(n)
  for (let i = 0; i < n; i++) {
    const reason = readReason(raw[i], policyId)
    if (reason === undefined) return undefined
    reasons[i] = reason
  }
  let result: Decision.Decision
  switch (tag) {
    case "Allow":
    case "Warn":
      return { _tag: tag, reasons }
    case "Defer":
    case "Deny":
      result = { _tag: tag, reasons }
      break
    case "Transform": {
      // The replacement is decoded (a fresh copy, each field read once) and
      // checked like any action (JSON data within the default limits): the
      // record it goes into must encode, and the runtime will govern it.
      const action = decodeAction(d.action)
      if (Either.isLeft(action)) return undefined
      result = { _tag: tag, reasons, action: action.right }
      break
    }
    case "RequireAcknowledgment": {
      const authority = readAuthority(d.authority)
      if (authority === undefined) return undefined
      result = { _tag: tag, reasons, authority }
      break
    }
    case "RequireApproval": {
      const requirement = readRequirement(d.requirement)
      if (requirement === undefined) return undefined
      result = { _tag: tag, reasons, requirement }
      break
    }
    case "Escalate": {
      const reviewPaths = readStrings(d.reviewPaths)
      if (reviewPaths === undefined) return undefined
      result = { _tag: tag, reasons, reviewPaths }
      break
    }
    default:
      return undefined
  }
  if (n === 0 && giveReason) reasons.push(noReason(policyId, tag))
  return result
}

/**
 * What a policy returned, checked and copied (see {@link readDecision}), or
 * the flaw that makes it unusable. Never throws.
 *
 * @internal
 */
export const readResult = (policyId: string, value: unknown): Decision.Result | Flaw => {
  if (value === Decision.notApplicable) return Decision.notApplicable
  try {
    return readDecision(policyId, value) ?? malformed
  } catch (error) {
    return new Flaw("unreadable", error)
  }
}

/**
 * {@link readResult}, a flaw failing closed with `policy.defect`.
 *
 * @internal
 */
export const checkResult = (ctx: Context | undefined, policyId: string, value: unknown): Decision.Result => {
  const result = readResult(policyId, value)
  return result instanceof Flaw ? defect(ctx, policyId, result.kind, result.error) : result
}

/**
 * What is wrong with a policy set's default, if anything: it must be a
 * well-formed decision, and one that does not proceed must say why.
 *
 * @internal
 */
export const checkDefault = (value: unknown): string | undefined => {
  let read: Decision.Result | undefined
  try {
    read = readDecision("default", value, false)
  } catch {
    read = undefined
  }
  if (read === undefined || read._tag === "NotApplicable") {
    return "the default must be a well-formed decision (build it with the Decision constructors), not NotApplicable"
  }
  if (read.reasons.length === 0 && !Decision.canProceed(read)) {
    return `a default that does not proceed (${read._tag}) must give a reason`
  }
  return undefined
}
