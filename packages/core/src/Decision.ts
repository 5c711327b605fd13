/**
 * Decisions: what governance answers, ordered from least to most restrictive,
 * and `combine`, the join on that order.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import * as Action from "./Action.js"
import {
  dedupe,
  mergeReasons,
  mergeSameTag,
  noStrings,
  ranks,
  sortedUnique,
  stampReason,
  withReasons
} from "./internal/combine.js"

/**
 * The decision tags, least restrictive first.
 *
 * @since 0.1.0
 * @category models
 */
export const Outcome = Schema.Literal(
  "Allow",
  "Warn",
  "Transform",
  "RequireAcknowledgment",
  "RequireApproval",
  "Defer",
  "Escalate",
  "Deny"
)

/**
 * @since 0.1.0
 * @category models
 */
export type Outcome = typeof Outcome.Type

/**
 * Why a decision is what it is. `code` is the stable, machine-readable part
 * (the contract for analytics and alerting); `message` is for people.
 * `outcome` is the tag of the decision that produced the reason, so a warning
 * stays recognisable inside a combined denial. `policyId` is stamped by the
 * evaluator with the id of the policy that returned the reason.
 *
 * @since 0.1.0
 * @category models
 */
export const Reason = Schema.Struct({
  code: Schema.NonEmptyTrimmedString,
  message: Schema.String,
  outcome: Outcome,
  policyId: Schema.optional(Schema.String),
  ruleId: Schema.optional(Schema.String),
  evidenceRefs: Schema.optional(Schema.Array(Schema.String))
}).annotations({ identifier: "Reason" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Reason extends Schema.Schema.Type<typeof Reason> {}

/**
 * A reason as policies write it; the decision constructor fills `outcome`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReasonInput {
  readonly code: string
  readonly message: string
  readonly policyId?: string | undefined
  readonly ruleId?: string | undefined
  readonly evidenceRefs?: ReadonlyArray<string> | undefined
}

/**
 * One reason or several.
 *
 * @since 0.1.0
 * @category models
 */
export type Reasons = ReasonInput | ReadonlyArray<ReasonInput>

/**
 * Who may approve or acknowledge: principals holding any of `roles`, or listed
 * in `principals`. Both lists are sorted and free of duplicates.
 *
 * @since 0.1.0
 * @category models
 */
export const Authority = Schema.Struct({
  roles: Schema.Array(Schema.String),
  principals: Schema.Array(Schema.String)
}).annotations({ identifier: "Authority" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Authority extends Schema.Schema.Type<typeof Authority> {}

/**
 * What an approval needs: `quorum` distinct eligible approvers, with
 * separation of duties (the requester may not approve) unless explicitly off,
 * within `timeout` (when absent, the runtime's configured default applies).
 *
 * @since 0.1.0
 * @category models
 */
export const ApprovalRequirement = Schema.Struct({
  quorum: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  authority: Authority,
  separationOfDuties: Schema.Boolean,
  timeout: Schema.optional(Schema.DurationFromMillis)
}).annotations({ identifier: "ApprovalRequirement" })

/**
 * @since 0.1.0
 * @category models
 */
export interface ApprovalRequirement extends Schema.Schema.Type<typeof ApprovalRequirement> {}

const reasons = { reasons: Schema.Array(Reason) }

/**
 * Proceed; nothing to add.
 *
 * @since 0.1.0
 * @category models
 */
export const Allow = Schema.TaggedStruct("Allow", reasons).annotations({ identifier: "Allow" })
/**
 * @since 0.1.0
 * @category models
 */
export interface Allow extends Schema.Schema.Type<typeof Allow> {}

/**
 * Proceed; the reasons must stay visible in the record.
 *
 * @since 0.1.0
 * @category models
 */
export const Warn = Schema.TaggedStruct("Warn", reasons).annotations({ identifier: "Warn" })
/**
 * @since 0.1.0
 * @category models
 */
export interface Warn extends Schema.Schema.Type<typeof Warn> {}

/**
 * Replace the action with an explicitly safer one, which is evaluated again
 * before anything runs.
 *
 * @since 0.1.0
 * @category models
 */
export const Transform = Schema.TaggedStruct("Transform", { ...reasons, action: Action.Action }).annotations({
  identifier: "Transform"
})
/**
 * @since 0.1.0
 * @category models
 */
export interface Transform extends Schema.Schema.Type<typeof Transform> {}

/**
 * A qualified actor must acknowledge before the action proceeds.
 *
 * @since 0.1.0
 * @category models
 */
export const RequireAcknowledgment = Schema.TaggedStruct("RequireAcknowledgment", {
  ...reasons,
  authority: Authority
}).annotations({ identifier: "RequireAcknowledgment" })
/**
 * @since 0.1.0
 * @category models
 */
export interface RequireAcknowledgment extends Schema.Schema.Type<typeof RequireAcknowledgment> {}

/**
 * Park the action until named authority approves it.
 *
 * @since 0.1.0
 * @category models
 */
export const RequireApproval = Schema.TaggedStruct("RequireApproval", {
  ...reasons,
  requirement: ApprovalRequirement
}).annotations({ identifier: "RequireApproval" })
/**
 * @since 0.1.0
 * @category models
 */
export interface RequireApproval extends Schema.Schema.Type<typeof RequireApproval> {}

/**
 * Not now: more information, later processing or another system is needed.
 *
 * @since 0.1.0
 * @category models
 */
export const Defer = Schema.TaggedStruct("Defer", reasons).annotations({ identifier: "Defer" })
/**
 * @since 0.1.0
 * @category models
 */
export interface Defer extends Schema.Schema.Type<typeof Defer> {}

/**
 * Route to a higher review path; do not proceed.
 *
 * @since 0.1.0
 * @category models
 */
export const Escalate = Schema.TaggedStruct("Escalate", {
  ...reasons,
  reviewPaths: Schema.Array(Schema.String)
}).annotations({ identifier: "Escalate" })
/**
 * @since 0.1.0
 * @category models
 */
export interface Escalate extends Schema.Schema.Type<typeof Escalate> {}

/**
 * Must not execute.
 *
 * @since 0.1.0
 * @category models
 */
export const Deny = Schema.TaggedStruct("Deny", reasons).annotations({ identifier: "Deny" })
/**
 * @since 0.1.0
 * @category models
 */
export interface Deny extends Schema.Schema.Type<typeof Deny> {}

/**
 * A governance decision.
 *
 * @since 0.1.0
 * @category models
 */
export const Decision = Schema.Union(
  Allow,
  Warn,
  Transform,
  RequireAcknowledgment,
  RequireApproval,
  Defer,
  Escalate,
  Deny
).annotations({ identifier: "Decision" })

/**
 * @since 0.1.0
 * @category models
 */
export type Decision = Allow | Warn | Transform | RequireAcknowledgment | RequireApproval | Defer | Escalate | Deny

/**
 * A policy's abstention: the policy does not apply to this action. It is the
 * identity of {@link combine}.
 *
 * @since 0.1.0
 * @category models
 */
export const NotApplicable = Schema.TaggedStruct("NotApplicable", {}).annotations({ identifier: "NotApplicable" })
/**
 * @since 0.1.0
 * @category models
 */
export interface NotApplicable extends Schema.Schema.Type<typeof NotApplicable> {}

/**
 * What a policy returns: a decision, or an abstention.
 *
 * @since 0.1.0
 * @category models
 */
export const Result = Schema.Union(Decision, NotApplicable).annotations({ identifier: "PolicyResult" })

/**
 * @since 0.1.0
 * @category models
 */
export type Result = Decision | NotApplicable

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const noReasons: ReadonlyArray<Reason> = Object.freeze([])
const makeReason = (input: ReasonInput, outcome: Outcome): Reason => {
  const reason: { -readonly [K in keyof Reason]: Reason[K] } = {
    code: input.code,
    message: input.message,
    outcome
  }
  if (input.policyId !== undefined) reason.policyId = input.policyId
  if (input.ruleId !== undefined) reason.ruleId = input.ruleId
  if (input.evidenceRefs !== undefined) reason.evidenceRefs = sortedUnique(input.evidenceRefs)
  return reason
}

const makeReasons = (input: Reasons | undefined, outcome: Outcome): ReadonlyArray<Reason> => {
  if (input === undefined) return noReasons
  if (isReasonArray(input)) {
    return input.length === 0 ? noReasons : dedupe(input.map((r) => makeReason(r, outcome)))
  }
  return [makeReason(input, outcome)]
}

const isReasonArray = (input: Reasons): input is ReadonlyArray<ReasonInput> => Array.isArray(input)

const makeAuthority = (roles: Iterable<string> | undefined, principals: Iterable<string> | undefined): Authority => ({
  roles: roles === undefined ? noStrings : sortedUnique(roles),
  principals: principals === undefined ? noStrings : sortedUnique(principals)
})

const allowEmpty: Allow = Object.freeze({ _tag: "Allow", reasons: noReasons })

/**
 * @since 0.1.0
 * @category constructors
 */
export const notApplicable: NotApplicable = Object.freeze({ _tag: "NotApplicable" })

/**
 * @since 0.1.0
 * @category constructors
 */
export const allow = (reasons?: Reasons): Allow =>
  reasons === undefined ? allowEmpty : { _tag: "Allow", reasons: makeReasons(reasons, "Allow") }

/**
 * @example
 * ```ts
 * import { Decision } from "@gavel/core"
 *
 * Decision.warn({ code: "cost.high", message: "This call costs more than usual" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const warn = (reasons: Reasons): Warn => ({ _tag: "Warn", reasons: makeReasons(reasons, "Warn") })

/**
 * @since 0.1.0
 * @category constructors
 */
export const transform = (reasons: Reasons, options: { readonly action: Action.Action }): Transform => ({
  _tag: "Transform",
  reasons: makeReasons(reasons, "Transform"),
  action: options.action
})

/**
 * @since 0.1.0
 * @category constructors
 */
export const requireAcknowledgment = (
  reasons: Reasons,
  options?: {
    readonly roles?: Iterable<string> | undefined
    readonly principals?: Iterable<string> | undefined
  }
): RequireAcknowledgment => ({
  _tag: "RequireAcknowledgment",
  reasons: makeReasons(reasons, "RequireAcknowledgment"),
  authority: makeAuthority(options?.roles, options?.principals)
})

/**
 * Require approval by `quorum` (default 1) distinct approvers holding one of
 * `roles` or listed in `principals`, before `timeout`.
 *
 * @example
 * ```ts
 * import { Decision } from "@gavel/core"
 *
 * Decision.requireApproval(
 *   { code: "payment.large", message: "Payments over 10k need two approvers" },
 *   { quorum: 2, roles: ["finance-approver"], timeout: "1 hour" }
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const requireApproval = (
  reasons: Reasons,
  options?: {
    readonly quorum?: number | undefined
    readonly roles?: Iterable<string> | undefined
    readonly principals?: Iterable<string> | undefined
    readonly separationOfDuties?: boolean | undefined
    readonly timeout?: Duration.DurationInput | undefined
  }
): RequireApproval => {
  const quorum = options?.quorum ?? 1
  const requirement: { -readonly [K in keyof ApprovalRequirement]: ApprovalRequirement[K] } = {
    // A quorum below one would approve with no votes; clamp so it cannot.
    quorum: Number.isInteger(quorum) && quorum >= 1 ? quorum : Math.max(1, Math.ceil(quorum) || 1),
    authority: makeAuthority(options?.roles, options?.principals),
    separationOfDuties: options?.separationOfDuties ?? true
  }
  if (options?.timeout !== undefined) requirement.timeout = Duration.decode(options.timeout)
  return { _tag: "RequireApproval", reasons: makeReasons(reasons, "RequireApproval"), requirement }
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const defer = (reasons: Reasons): Defer => ({ _tag: "Defer", reasons: makeReasons(reasons, "Defer") })

/**
 * @since 0.1.0
 * @category constructors
 */
export const escalate = (
  reasons: Reasons,
  options?: { readonly reviewPath?: string | ReadonlyArray<string> | undefined }
): Escalate => ({
  _tag: "Escalate",
  reasons: makeReasons(reasons, "Escalate"),
  reviewPaths: options?.reviewPath === undefined
    ? noStrings
    : sortedUnique(typeof options.reviewPath === "string" ? [options.reviewPath] : options.reviewPath)
})

/**
 * @example
 * ```ts
 * import { Decision } from "@gavel/core"
 *
 * Decision.deny({ code: "tool.blocked", message: "shell.exec is not allowed for agents" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const deny = (reasons: Reasons): Deny => ({ _tag: "Deny", reasons: makeReasons(reasons, "Deny") })

// -----------------------------------------------------------------------------
// guards and order
// -----------------------------------------------------------------------------

/**
 * The position of a result in the restrictiveness order: `NotApplicable` is
 * -1, `Allow` 0, … `Deny` 7.
 *
 * @since 0.1.0
 * @category order
 */
export const rank = (result: Result): number => ranks[result._tag]

/**
 * True when `self` is at least as restrictive as `that`.
 *
 * @since 0.1.0
 * @category order
 */
export const isAtLeastAsRestrictive = (self: Result, that: Result): boolean => ranks[self._tag] >= ranks[that._tag]

/**
 * @since 0.1.0
 * @category guards
 */
export const isNotApplicable = (result: Result): result is NotApplicable => result._tag === "NotApplicable"

/**
 * @since 0.1.0
 * @category guards
 */
export const isDecision = (result: Result): result is Decision => result._tag !== "NotApplicable"

/**
 * True for `Allow` and `Warn`: the only decisions under which the protected
 * work may run as proposed.
 *
 * @since 0.1.0
 * @category guards
 */
export const canProceed = (result: Result): boolean => result._tag === "Allow" || result._tag === "Warn"

/**
 * True for `Deny`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isDeny = (result: Result): result is Deny => result._tag === "Deny"

// -----------------------------------------------------------------------------
// combine
// -----------------------------------------------------------------------------

/**
 * The join of two results on the restrictiveness order.
 *
 * - The more restrictive decision wins; `NotApplicable` is the identity.
 * - Reasons from both sides are kept, most restrictive outcome first (blocking
 *   reasons before warnings), duplicates once.
 * - Two `RequireApproval`s merge: union of eligible roles and principals,
 *   larger quorum, earliest timeout, separation of duties if either asks.
 * - Two `RequireAcknowledgment`s union their authority; two `Escalate`s their
 *   review paths; two different `Transform`s keep the replacement with the
 *   smaller canonical form (it is re-evaluated before it runs).
 *
 * `combine` is associative, commutative up to reason order and idempotent;
 * `Deny` absorbs everything. These laws are property-tested.
 *
 * @since 0.1.0
 * @category combinators
 */
export const combine = (self: Result, that: Result): Result => {
  if (self._tag === "NotApplicable") return that
  if (that._tag === "NotApplicable") return self
  const rs = ranks[self._tag]
  const rt = ranks[that._tag]
  const merged = mergeReasons(self.reasons, that.reasons)
  if (rs > rt) return merged === self.reasons ? self : withReasons(self, merged)
  if (rt > rs) return merged === that.reasons ? that : withReasons(that, merged)
  return mergeSameTag(self, that, merged)
}

/**
 * Combines any number of results; `NotApplicable` when there are none.
 *
 * @since 0.1.0
 * @category combinators
 */
export const combineAll = (results: Iterable<Result>): Result => {
  let acc: Result = notApplicable
  for (const r of results) acc = combine(acc, r)
  return acc
}

/**
 * The reason codes of a result, in reason order.
 *
 * @since 0.1.0
 * @category getters
 */
export const reasonCodes = (result: Result): ReadonlyArray<string> =>
  result._tag === "NotApplicable" ? noStrings : result.reasons.map((r) => r.code)

/**
 * Stamps `policyId` on every reason that has none.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withPolicyId = <A extends Result>(result: A, policyId: string): A => {
  if (result._tag === "NotApplicable") return result
  const rs = (result as Decision).reasons
  let i = 0
  while (i < rs.length && rs[i]!.policyId !== undefined) i++
  if (i === rs.length) return result
  const stamped = new Array<Reason>(rs.length)
  for (let j = 0; j < rs.length; j++) {
    const r = rs[j]!
    stamped[j] = r.policyId !== undefined ? r : stampReason(r, policyId)
  }
  return withReasons(result as Decision, stamped) as A
}
