/**
 * The compile step of `Rules`: a decoded document into policies. A rule is
 * one synchronous policy (its match, its conditions, its decision); the
 * rules are combined as the document says, indexed by literal action name;
 * the document's default is the decision of a rule named `default`.
 */
import * as Duration from "effect/Duration"
import type * as Action from "../../Action.js"
import * as Decision from "../../Decision.js"
import * as Policy from "../../Policy.js"
import type { Match, Rule, RuleEffect, RuleReason, RulesDocument } from "../../Rules.js"
import { nfc } from "../canonical.js"
import * as decisionInternal from "../decision.js"
import * as policyInternal from "../policy.js"
import { compileCondition } from "./condition.js"
import { globMatch, hasWildcard } from "./glob.js"
import { canonical, holdsAny, isText, read } from "./read.js"

/**
 * A rule, compiled.
 *
 * @internal
 */
export interface CompiledRule {
  readonly id: string
  /**
   * The literal name of its `match`, when it has one: the rule is then only
   * reached through the index by name, which tests it, so `policy` does not
   * test it again (an explanation tests it before evaluating `policy`).
   */
  readonly name: string | undefined
  readonly policy: Policy.Sync
}

/**
 * A document, compiled.
 *
 * @internal
 */
export interface CompiledDocument {
  /** Each rule's policy, in document order. */
  readonly rules: ReadonlyArray<CompiledRule>
  /** The rules combined, without the default. */
  readonly combined: Policy.Sync
  readonly default: Decision.Decision | undefined
  /** The whole document as one policy, the default included. */
  readonly policy: Policy.Sync
}

const makeReason = (documentId: string, ruleId: string, reason: RuleReason): Decision.ReasonInput => ({
  code: reason.code,
  message: reason.message,
  policyId: `${documentId}/${ruleId}`,
  ruleId
})

/** The kind of decision each effect stands for. */
const effectKinds: Record<RuleEffect, decisionInternal.Kind> = {
  allow: "Allow",
  deny: "Deny",
  warn: "Warn",
  pending: "RequireApproval",
  "require-approval": "RequireApproval",
  "require-acknowledgment": "RequireAcknowledgment",
  escalate: "Escalate",
  defer: "Defer"
}

const decisionOf = (
  documentId: string,
  rule: Pick<Rule, "id" | "effect" | "reason" | "approval" | "reviewPath">
): Decision.Decision => {
  // The cross checks guarantee a reason for every effect but allow, and
  // settings only for the effects that take them.
  const approval = rule.approval
  return decisionInternal.ofKind(
    effectKinds[rule.effect],
    rule.reason === undefined ? undefined : makeReason(documentId, rule.id, rule.reason),
    {
      reviewPath: rule.reviewPath,
      roles: approval?.roles,
      principals: approval?.principals,
      quorum: approval?.quorum,
      separationOfDuties: approval?.separationOfDuties,
      timeout: approval?.timeoutSeconds === undefined ? undefined : Duration.seconds(approval.timeoutSeconds)
    }
  )
}

/** A string test: equality for a literal, the glob matcher otherwise, nothing when absent. */
const stringTest = (pattern: string | undefined) => ({
  literal: pattern !== undefined && !hasWildcard(pattern) ? pattern : undefined,
  glob: pattern !== undefined && hasWildcard(pattern) ? pattern : undefined
})

/** The literal name a rule is indexed by, if its `match.name` is one. */
const literalName = (rule: Rule): string | undefined => stringTest(rule.match?.name).literal

const globTest = (glob: string, value: unknown): boolean =>
  typeof value === "string" && globMatch(glob, canonical(value) as string)

/**
 * One function of the same shape for every rule (so the call site stays
 * monomorphic in a document of many rules), testing the most selective field,
 * the name, first. It reads the action as conditions do (`read`, see read.ts):
 * own properties only, strings compared in NFC. A literal name is not tested
 * here: the index by name does (see {@link CompiledRule}).
 */
const compileMatch = (match: Match | undefined): ((action: Action.Action) => boolean) => {
  const nameGlob = stringTest(match?.name).glob
  const kind = match?.kind
  const roles = match?.roles
  const tenant = match?.tenant
  const resource = match?.resource
  const resourceId = stringTest(resource?.id)
  return (a) =>
    (nameGlob === undefined || globTest(nameGlob, read.name(a))) &&
    (kind === undefined || isText(read.kind(a), kind)) &&
    (roles === undefined || holdsAny(read.roles(a), roles)) &&
    (tenant === undefined || isText(read.tenant(a), tenant)) &&
    (resource === undefined || (
      typeof read.resource(a) === "object" && read.resource(a) !== null &&
      (resource.type === undefined || isText(read.resourceType(a), resource.type)) &&
      (resourceId.literal === undefined || isText(read.resourceId(a), resourceId.literal)) &&
      (resourceId.glob === undefined || globTest(resourceId.glob, read.resourceId(a)))
    ))
}

const compileRule = (documentId: string, rule: Rule): Policy.Sync => {
  const policyId = `${documentId}/${rule.id}`
  const matches = compileMatch(rule.match)
  const condition = rule.when === undefined ? undefined : compileCondition(rule.when)
  const decision = decisionOf(documentId, rule)
  return Policy.make(policyId, (action) => {
    if (!matches(action)) return Decision.notApplicable
    if (condition === undefined) return decision
    const outcome = condition(action)
    if (outcome === true) return decision
    if (outcome === false) return Decision.notApplicable
    return Decision.deny({
      code: "rules.indeterminate",
      message: `Rule "${rule.id}" cannot be evaluated: ${outcome.field} ${outcome.why}; failing closed`,
      policyId,
      ruleId: rule.id
    })
  })
}

/** The document's default, as the decision of a rule named `default`, with `rules.default` unless `defaultReason` says otherwise (an allow included). */
const defaultOf = (document: RulesDocument): Decision.Decision | undefined => {
  if (document.default === undefined) return undefined
  const reason = document.defaultReason ?? {
    code: "rules.default",
    message: `No rule of "${document.id}" applied; the document's default is ${document.default}`
  }
  return decisionOf(document.id, { id: "default", effect: document.default, reason })
}

/** The name an action is indexed by, read as `match.name` reads it (as written; the index compares it in NFC). */
const indexName = (action: Action.Action): string | undefined => {
  const name = read.name(action)
  return typeof name === "string" ? name : undefined
}

/**
 * Compiles a decoded document: each rule into a synchronous policy, the
 * rules indexed by literal action name and combined, and the default.
 *
 * @internal
 */
export const compile = (document: RulesDocument): CompiledDocument => {
  const rules: ReadonlyArray<CompiledRule> = document.rules.map((rule) => ({
    id: rule.id,
    name: literalName(rule),
    policy: compileRule(document.id, rule)
  }))
  const policies = rules.map((r) => r.policy)
  // A rule whose match names one literal action name is only evaluated (and
  // only listed in the trail) for actions of that name: for the others it
  // abstains whatever they hold.
  const combined = policyInternal.indexedByName(
    policies as unknown as ReadonlyArray<policyInternal.Node>,
    rules.map((rule) => rule.name === undefined ? undefined : [rule.name]),
    document.combine === "first-applicable" ? policyInternal.firstApplicable : policyInternal.all,
    document.id,
    { nameOf: indexName, canonical: nfc }
  ) as unknown as Policy.Sync
  const defaultDecision = defaultOf(document)
  const policy = defaultDecision === undefined
    ? combined
    : Policy.firstApplicable([combined, Policy.constant(`${document.id}/default`, defaultDecision)], {
      id: `${document.id}+default`
    })
  return { rules, combined, default: defaultDecision, policy }
}
