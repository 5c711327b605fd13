/**
 * Custom decision policies with gavel: the four examples of seed 003
 * ("Custom Decision Policy Examples", written there in C# against
 * `IAsiBackboneDecisionPolicy<TContext>`), rewritten with `@gavel/core`.
 *
 * 1. Strict deny-wins that keeps warnings: nothing custom is needed, because
 *    `Decision.combine` (used by `Policy.all`) already keeps every reason,
 *    blocking reasons first.
 * 2. A regional overlay that narrows an allowed decision (unsupported region:
 *    deny; high risk: require acknowledgment), registered as the policy set's
 *    `decisionPolicy`, and a misbehaving decision policy showing that a
 *    decision policy can never loosen what the constraints decided.
 * 3. Gateway readiness: escalate when the host has not validated the
 *    capability grant or prepared the audit receipt (`Policy.narrow`).
 * 4. Latency-sensitive orchestration: `Policy.firstDenial` against
 *    `Policy.all` on the same constraints; same outcome, shorter audit trail.
 *
 * Like the seed's policies, none of these execute the protected action: they
 * return a decision record, and the host enforces it.
 *
 * The program checks what it prints: a wrong outcome is reported on stderr and
 * the process exits with code 1.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/decision-policies.ts
 */
import { Action, Decision, DecisionRecord, IdGenerator, Policy, PolicySet } from "@gavel/core"
import * as Schema from "effect/Schema"
import { check, list, report, sameList } from "./support/checks.js"

// -----------------------------------------------------------------------------
// printing and checking
// -----------------------------------------------------------------------------

/** Deterministic decision ids (`dec_1`, `dec_2`, …) for readable output. */
const idGenerator = IdGenerator.sequential()

const evaluate = (set: PolicySet.Sync, action: Action.Action): DecisionRecord.DecisionRecord =>
  PolicySet.evaluateSync(set, action, { idGenerator })

/**
 * Prints one line per record (decision id, tag, whether the host may proceed,
 * reason codes) and checks the tag and the reason codes, in order.
 */
const expectRecord = (
  label: string,
  record: DecisionRecord.DecisionRecord,
  expected: { readonly tag: Decision.Outcome; readonly codes: ReadonlyArray<string> }
): void => {
  const proceed = DecisionRecord.canProceed(record) ? "proceed" : "stop"
  console.log(
    `  ${label.padEnd(46)} ${record.decisionId.padEnd(7)} ${record.decision._tag.padEnd(21)} ${
      proceed.padEnd(7)
    } ${list(record.reasonCodes)}`
  )
  check(label, record.decision._tag === expected.tag, `expected ${expected.tag}, got ${record.decision._tag}`)
  check(
    label,
    sameList(record.reasonCodes, expected.codes),
    `expected reason codes ${list(expected.codes)}, got ${list(record.reasonCodes)}`
  )
}

const encodeRecord = Schema.encodeSync(DecisionRecord.DecisionRecord)

/**
 * JSON, compactly: objects and arrays that fit on one line (or hold only
 * scalars, like a reason) stay on one line; larger ones open up, one member
 * per line.
 */
const compactJson = (value: unknown, indent: string): string => {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null"
  const entries: ReadonlyArray<readonly [string | undefined, unknown]> = Array.isArray(value)
    ? value.map((item: unknown) => [undefined, item] as const)
    : Object.entries(value as Readonly<Record<string, unknown>>)
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"]
  if (entries.length === 0) return `${open}${close}`
  const member = (key: string | undefined, text: string) => key === undefined ? text : `${JSON.stringify(key)}: ${text}`
  const inline = entries.map(([key, item]) => member(key, compactJson(item, "")))
  const oneLine = open === "[" ? `[${inline.join(", ")}]` : `{ ${inline.join(", ")} }`
  const scalars = entries.every(([, item]) =>
    item === null || typeof item !== "object" ||
    (Array.isArray(item) && item.every((x: unknown) => x === null || typeof x !== "object"))
  )
  if (scalars || indent.length + oneLine.length <= 100) return oneLine
  const inner = `${indent}  `
  const lines = entries.map(([key, item]) => inner + member(key, compactJson(item, inner)))
  return `${open}\n${lines.join(",\n")}\n${indent}${close}`
}

const printJson = (value: unknown): void => {
  console.log(`    ${compactJson(value, "    ")}`)
}

const section = (title: string): void => {
  console.log(`\n== ${title}\n`)
}

/** The restrictiveness rank of a reason's outcome (`Allow` 0 … `Deny` 7). */
const outcomeRank = (outcome: Decision.Outcome): number => Decision.Outcome.literals.indexOf(outcome)

// -----------------------------------------------------------------------------
// actions
// -----------------------------------------------------------------------------

/** An agent of tenant `acme` asking to run a tool, with safe metadata facts. */
const toolCall = (
  name: string,
  metadata: Readonly<Record<string, string>>,
  roles: ReadonlyArray<string> = ["operator"]
): Action.Action =>
  Action.make({
    actor: { id: "agent-7", kind: "agent", roles, tenant: "acme" },
    kind: "tool",
    name,
    metadata
  })

// -----------------------------------------------------------------------------
// constraints: narrow rule questions, one Policy.make leaf each
// -----------------------------------------------------------------------------

const allowedTools: ReadonlySet<string> = new Set(["orders.approve", "orders.read", "gateway.submit"])

const toolAllowlist = Policy.make("tools.allowlist", (action) =>
  action.kind !== "tool"
    ? Decision.notApplicable
    : allowedTools.has(action.name)
    ? Decision.allow()
    : Decision.deny({ code: "tool.not_allowlisted", message: `"${action.name}" is not an allowlisted tool` }))

const operatorRole = Policy.make("actor.operator-role", (action) =>
  action.actor.roles.includes("operator")
    ? Decision.allow()
    : Decision.deny({ code: "actor.role_missing", message: "Only operators may run tools" }))

const spendWarning = Policy.make("budget.spend-warning", (action) =>
  action.metadata.spend === "near-limit"
    ? Decision.warn({ code: "budget.near_limit", message: "The tenant is close to its monthly spend limit" })
    : Decision.notApplicable)

const offHours = Policy.make("schedule.off-hours", (action) =>
  action.metadata.window === "off-hours"
    ? Decision.warn({ code: "schedule.off_hours", message: "Requested outside the tenant's business hours" })
    : Decision.notApplicable)

// =============================================================================
// 1. Strict deny-wins, keeping warnings
// =============================================================================
//
// The C# version collects warning and denial reasons from the constraint
// results and rebuilds a Deny from both. In gavel that is what `Policy.all`
// already does: it joins results with `Decision.combine`, which keeps every
// reason (each stamped with its policy id and its own outcome), blocking
// reasons first, then warnings. No decision policy is needed.

section("1. Strict deny-wins, keeping warnings (Policy.all + Decision.combine)")

// The warning constraints are declared first on purpose: the record still
// lists the blocking reasons first.
const strictSet = PolicySet.unsafeMake({
  id: "strict-deny-wins",
  version: "1",
  policy: Policy.all([spendWarning, offHours, toolAllowlist, operatorRole], { id: "constraints" })
})

const strictDeny = evaluate(
  strictSet,
  toolCall("shell.exec", { spend: "near-limit", window: "off-hours" }, ["viewer"])
)
expectRecord("shell.exec by a viewer, near limit, off hours", strictDeny, {
  tag: "Deny",
  codes: ["tool.not_allowlisted", "actor.role_missing", "budget.near_limit", "schedule.off_hours"]
})
expectRecord(
  "orders.read by an operator, near limit",
  evaluate(strictSet, toolCall("orders.read", { spend: "near-limit" })),
  { tag: "Warn", codes: ["budget.near_limit"] }
)
expectRecord(
  "orders.read by an operator",
  evaluate(strictSet, toolCall("orders.read", {})),
  { tag: "Allow", codes: [] }
)

// Blocking first: the outcomes of the reasons never increase in restrictiveness.
const outcomes = strictDeny.reasons.map((reason) => reason.outcome)
check(
  "1: blocking reasons first",
  outcomes.every((outcome, i) => i === 0 || outcomeRank(outcome) <= outcomeRank(outcomes[i - 1]!)),
  `reason outcomes ${list(outcomes)}`
)
// Every reason of every contributing constraint is in the final record.
const contributed = strictDeny.explain.flatMap((entry) => Decision.reasonCodes(entry.result))
check(
  "1: no contributing reason dropped",
  contributed.every((code) => strictDeny.reasonCodes.includes(code)),
  `explain has ${list(contributed)}, record has ${list(strictDeny.reasonCodes)}`
)
check(
  "1: reasons keep their policy ids",
  sameList(strictDeny.reasons.map((reason) => reason.policyId ?? "?"), [
    "tools.allowlist",
    "actor.operator-role",
    "budget.spend-warning",
    "schedule.off-hours"
  ]),
  `policy ids ${list(strictDeny.reasons.map((reason) => reason.policyId ?? "?"))}`
)

console.log("\n  The Deny record, encoded (Schema.encodeSync(DecisionRecord.DecisionRecord)):\n")
printJson(encodeRecord(strictDeny))

// =============================================================================
// 2. Regional overlay with an acknowledgment requirement
// =============================================================================
//
// A decision policy sees the action, the composed decision and the explain
// entries behind it. Its answer is *joined* with the composed decision
// (`Decision.combine`), so it can tighten (deny, defer, require
// acknowledgment, escalate) but never loosen. Returning `NotApplicable` keeps
// the composed decision as it is.

section("2. Regional overlay with acknowledgment (PolicySet decisionPolicy)")

const regionalOverlay = (supportedRegions: ReadonlySet<string>): Policy.DecisionPolicy => ({ action, decision }) => {
  // Nothing to add to a decision that already stops the action. (Returning
  // `Decision.allow()` here would not loosen it either: see below.)
  if (!Decision.canProceed(decision)) return Decision.notApplicable
  const region = action.metadata.region?.trim().toUpperCase()
  if (region === undefined || !supportedRegions.has(region)) {
    return Decision.deny({
      code: "regional.unsupported",
      message: "The requested region is not enabled for this operation"
    })
  }
  if (action.metadata.risk?.toLowerCase() === "high") {
    return Decision.requireAcknowledgment({
      code: "regional.acknowledgment_required",
      message: "The local overlay requires acknowledgment for this high-risk operation"
    }, { roles: ["regional-compliance", "site-lead"] })
  }
  return Decision.notApplicable
}

const supportedRegions: ReadonlySet<string> = new Set(["US-LA", "US-TX"])

const constraints = Policy.all([toolAllowlist, operatorRole, spendWarning], { id: "constraints" })

// The seed registers its overlay once, for the whole evaluator: in gavel that
// is the policy set's `decisionPolicy`.
const regionalSet = PolicySet.unsafeMake({
  id: "orders",
  version: "2024.06",
  policy: constraints,
  decisionPolicy: { id: "regional-overlay", decide: regionalOverlay(supportedRegions) }
})

expectRecord(
  "US-TX, low risk",
  evaluate(regionalSet, toolCall("orders.approve", { region: "US-TX", risk: "low" })),
  { tag: "Allow", codes: [] }
)
const acknowledgment = evaluate(regionalSet, toolCall("orders.approve", { region: "us-la", risk: "High" }))
expectRecord("us-la, High risk (case-insensitive)", acknowledgment, {
  tag: "RequireAcknowledgment",
  codes: ["regional.acknowledgment_required"]
})
check(
  "2: acknowledgment authority",
  sameList(acknowledgment.approvalAuthority?.roles ?? [], ["regional-compliance", "site-lead"]),
  `approvalAuthority ${JSON.stringify(acknowledgment.approvalAuthority)}`
)
expectRecord(
  "US-TX, high risk, near the spend limit",
  evaluate(regionalSet, toolCall("orders.approve", { region: "US-TX", risk: "high", spend: "near-limit" })),
  { tag: "RequireAcknowledgment", codes: ["regional.acknowledgment_required", "budget.near_limit"] }
)
expectRecord(
  "EU-DE",
  evaluate(regionalSet, toolCall("orders.approve", { region: "EU-DE", risk: "low" })),
  { tag: "Deny", codes: ["regional.unsupported"] }
)
expectRecord(
  "no region at all",
  evaluate(regionalSet, toolCall("orders.approve", { risk: "low" })),
  { tag: "Deny", codes: ["regional.unsupported"] }
)
// A block from the constraints is preserved, with its own reasons.
expectRecord(
  "EU-DE, but the tool is not allowlisted",
  evaluate(regionalSet, toolCall("shell.exec", { region: "EU-DE", risk: "high" })),
  { tag: "Deny", codes: ["tool.not_allowlisted"] }
)

console.log("\n  The acknowledgment decision, encoded:\n")
printJson(encodeRecord(acknowledgment).decision)

// A decision policy cannot loosen. This one rubber-stamps everything; it is
// attached with `Policy.narrow`, the other way to apply a decision policy (to
// a subtree rather than to the whole set).
console.log("\n  A misbehaving decision policy that always returns Decision.allow():\n")

const rubberStampSet = PolicySet.unsafeMake({
  id: "orders-rubber-stamp",
  version: "1",
  policy: Policy.narrow(constraints, "rubber-stamp", () => Decision.allow())
})

const stillDenied = evaluate(rubberStampSet, toolCall("shell.exec", { region: "US-TX" }, ["viewer"]))
expectRecord("allow() over a Deny", stillDenied, {
  tag: "Deny",
  codes: ["tool.not_allowlisted", "actor.role_missing"]
})
expectRecord(
  "allow() over a Warn",
  evaluate(rubberStampSet, toolCall("orders.read", { spend: "near-limit" })),
  { tag: "Warn", codes: ["budget.near_limit"] }
)
check(
  "2: the rubber stamp is visible in the explain trail",
  stillDenied.explain.some((entry) => entry.policyId === "rubber-stamp" && entry.result._tag === "Allow"),
  `explain ${list(stillDenied.explain.map((entry) => `${entry.policyId}:${entry.result._tag}`))}`
)

// =============================================================================
// 3. Gateway readiness
// =============================================================================
//
// Before external execution the host must have validated the capability grant
// and prepared the audit receipt. The policy does neither: it only reads the
// facts the host put into the action's metadata, and escalates when one is
// missing. `Policy.narrow` scopes it to the gateway constraints.

section("3. Gateway readiness (Policy.narrow, escalate)")

const isTrue = (value: string | undefined): boolean => value?.trim().toLowerCase() === "true"

const gatewayReadiness: Policy.DecisionPolicy = ({ action, decision }) => {
  if (!Decision.canProceed(decision)) return Decision.notApplicable
  const capabilityValidated = isTrue(action.metadata["capability.validated"])
  const receiptReady = isTrue(action.metadata["audit.receipt_ready"])
  return capabilityValidated && receiptReady
    ? Decision.notApplicable
    : Decision.escalate({
      code: "gateway.readiness_missing",
      message: "External execution requires a validated capability and a ready audit receipt"
    }, { reviewPath: "gateway-review-board" })
}

const gatewaySet = PolicySet.unsafeMake({
  id: "gateway",
  version: "1",
  policy: Policy.all([toolAllowlist, operatorRole], { id: "gateway.constraints" }).pipe(
    Policy.narrow("gateway-readiness", gatewayReadiness)
  )
})

expectRecord(
  "capability validated, receipt ready",
  evaluate(gatewaySet, toolCall("gateway.submit", { "capability.validated": "true", "audit.receipt_ready": "TRUE" })),
  { tag: "Allow", codes: [] }
)
const escalated = evaluate(gatewaySet, toolCall("gateway.submit", { "capability.validated": "true" }))
expectRecord("receipt not ready", escalated, { tag: "Escalate", codes: ["gateway.readiness_missing"] })
check(
  "3: review path",
  sameList(escalated.reviewPath, ["gateway-review-board"]),
  `reviewPath ${list(escalated.reviewPath)}`
)
expectRecord(
  "capability not validated",
  evaluate(gatewaySet, toolCall("gateway.submit", { "capability.validated": "false", "audit.receipt_ready": "true" })),
  { tag: "Escalate", codes: ["gateway.readiness_missing"] }
)
expectRecord(
  "nothing ready, and the actor is a viewer",
  evaluate(gatewaySet, toolCall("gateway.submit", {}, ["viewer"])),
  { tag: "Deny", codes: ["actor.role_missing"] }
)

// =============================================================================
// 4. Latency-sensitive orchestration: firstDenial vs all
// =============================================================================
//
// `Policy.firstDenial` stops at the first Deny. Only Deny (which absorbs
// everything) stops it, so the outcome is always the one `Policy.all` gives;
// the audit trade-off is that the constraints after the first Deny do not run,
// so their reasons and explain entries are missing from the record. As in the
// seed, both sets keep the regional overlay as their decision policy.

section("4. Latency-sensitive short-circuit (Policy.firstDenial vs Policy.all)")

const latencyConstraints = [toolAllowlist, operatorRole, spendWarning, offHours] as const
const overlay = { id: "regional-overlay", decide: regionalOverlay(supportedRegions) }

const fullSet = PolicySet.unsafeMake({
  id: "orders-full",
  version: "1",
  policy: Policy.all(latencyConstraints, { id: "constraints" }),
  decisionPolicy: overlay
})
const fastSet = PolicySet.unsafeMake({
  id: "orders-fast",
  version: "1",
  policy: Policy.firstDenial(latencyConstraints, { id: "constraints" }),
  decisionPolicy: overlay
})

const compare = (label: string, action: Action.Action, skipsConstraints: boolean): void => {
  const full = evaluate(fullSet, action)
  const fast = evaluate(fastSet, action)
  const summary = (record: DecisionRecord.DecisionRecord): string =>
    `${record.decision._tag}, ${record.reasons.length} reason(s), ${record.explain.length} explain entries`
  console.log(`  ${label}`)
  console.log(`    all:         ${summary(full)}  ${list(full.reasonCodes)}`)
  console.log(`    firstDenial: ${summary(fast)}  ${list(fast.reasonCodes)}`)
  check(label, full.decision._tag === fast.decision._tag, `all ${full.decision._tag} vs ${fast.decision._tag}`)
  check(
    label,
    fast.reasonCodes.every((code) => full.reasonCodes.includes(code)),
    "firstDenial has a reason that all has not"
  )
  if (skipsConstraints) {
    check(
      label,
      fast.reasons.length < full.reasons.length && fast.explain.length < full.explain.length,
      "firstDenial should have fewer reasons and explain entries"
    )
  } else {
    check(
      label,
      sameList(fast.reasonCodes, full.reasonCodes) && fast.explain.length === full.explain.length,
      "without a Deny, firstDenial should run every constraint"
    )
  }
}

compare(
  "shell.exec by a viewer, near limit, off hours (denied early):",
  toolCall("shell.exec", { region: "US-TX", spend: "near-limit", window: "off-hours" }, ["viewer"]),
  true
)
compare(
  "orders.approve, US-TX, near limit (no Deny, nothing skipped):",
  toolCall("orders.approve", { region: "US-TX", risk: "low", spend: "near-limit" }),
  false
)

// -----------------------------------------------------------------------------

report()
