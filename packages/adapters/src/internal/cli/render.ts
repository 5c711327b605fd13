/**
 * What the `gavel` CLI prints as text (without `--json`): approvals as a
 * table or a block, a rules document's summary, problems and explanation,
 * the audit trail's verification, and parse errors on one line.
 */
import type * as Action from "@gavel/core/Action"
import * as Approval from "@gavel/core/Approval"
import * as Decision from "@gavel/core/Decision"
import * as Rules from "@gavel/core/Rules"
import * as ParseResult from "effect/ParseResult"
import type { Verification } from "./audit.js"
import type { Work } from "./work.js"

// -----------------------------------------------------------------------------
// values
// -----------------------------------------------------------------------------

/** Text on one line: line breaks and the blanks around them become one space. @internal */
export const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ").trim()

/** An instant in UTC, to the second. @internal */
export const instant = (date: Date): string => date.toISOString().replace(/\.\d{3}Z$/, "Z")

/** What `--json` prints: the encoded value, indented. @internal */
export const json = (value: unknown): string => JSON.stringify(value, null, 2)

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.length === 0
    ? ""
    : path.map((key) => typeof key === "number" ? `[${key}]` : `.${String(key)}`).join("").replace(/^\./, "") + ": "

const expected = /^Expected (.*), actual (.*)$/s

/**
 * The first problem of a parse error, on one line, with its path. The
 * members of a union of literals fail one by one ("Expected "active", actual
 * "boss"", "Expected "suspended", …): they are told as one.
 *
 * @internal
 */
export const firstProblem = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  if (first === undefined) return "invalid"
  const here = formatPath(first.path)
  const alternatives = issues.filter((issue) => formatPath(issue.path) === here).map((issue) =>
    expected.exec(issue.message)
  )
  const merged = alternatives.length > 1 &&
      alternatives.every((match) => match !== null && match[2] === alternatives[0]![2])
    ? `Expected ${alternatives.map((match) => match![1]).join(" | ")}, actual ${alternatives[0]![2]}`
    : first.message
  const line = oneLine(`${here}${merged}`)
  return line.length > 200 ? `${line.slice(0, 199)}…` : line
}

// -----------------------------------------------------------------------------
// approvals
// -----------------------------------------------------------------------------

const votesOf = (request: Approval.ApprovalRequest): string =>
  `${Approval.countedApprovers(request).length}/${request.requirement.quorum}`

/**
 * The status as an approver should read it: a pending approval past its
 * expiry is not votable.
 *
 * @internal
 */
export const statusOf = (request: Approval.ApprovalRequest, now: number): string => {
  switch (request.status) {
    case "pending":
      return Approval.isDue(request, now)
        ? "expired (due, not yet swept)"
        : request.kind === "approval"
        ? `pending (${votesOf(request)} approvals)`
        : "pending (not acknowledged)"
    case "approved":
      return request.kind === "approval" ? `approved (${votesOf(request)})` : "acknowledged"
    case "rejected": {
      const by = request.votes.find((v) => v.counted && v.verdict === "reject")
      return by === undefined ? "rejected" : `rejected (by ${by.approver})`
    }
    case "consumed":
      return `consumed (approved ${votesOf(request)})`
    default:
      return request.status
  }
}

const shortStatus = (request: Approval.ApprovalRequest, now: number): string =>
  request.status === "pending" && Approval.isDue(request, now) ? "expired (due)" : request.status

const actionOf = (request: Approval.ApprovalRequest): string => {
  const { kind, name, resource } = request.summary
  return `${kind} ${name}${resource === null ? "" : ` on ${resource.type}/${resource.id}`}`
}

const requesterOf = (request: Approval.ApprovalRequest): string => {
  const actor = request.summary.actor
  const details = [actor.kind, ...(actor.tenant === null ? [] : [`tenant ${actor.tenant}`])]
  return `${request.requester} (${details.join(", ")})`
}

const authorityOf = (authority: Decision.Authority): string => {
  const parts = [
    ...(authority.roles.length === 0 ? [] : [`roles ${authority.roles.join(", ")}`]),
    ...(authority.principals.length === 0 ? [] : [`principals ${authority.principals.join(", ")}`])
  ]
  return parts.length === 0 ? "nobody" : parts.join("; ")
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]?.length ?? 0)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)).join("  ")
  return [line(header), ...rows.map(line)].join("\n")
}

/**
 * `approvals list`: one row per approval; `WORK` is the state of the
 * durable work it releases (`-` for none).
 *
 * @internal
 */
export const listing = (
  requests: ReadonlyArray<Approval.ApprovalRequest>,
  status: Approval.Status | "all",
  now: number,
  work: (approvalId: string) => Work | undefined = () => undefined
): string =>
  requests.length === 0 ? `No ${status === "all" ? "" : `${status} `}approvals.` : table(
    ["ID", "KIND", "STATUS", "VOTES", "REQUESTER", "TENANT", "EXPIRES", "WORK", "ACTION"],
    requests.map((r) => [
      r.id,
      r.kind,
      shortStatus(r, now),
      votesOf(r),
      r.requester,
      r.summary.actor.tenant ?? "-",
      instant(r.requirement.expiresAt),
      work(r.id)?.state ?? "-",
      actionOf(r)
    ])
  )

/**
 * `approvals show`: every field of one approval, its reasons and votes, and
 * the durable work it releases, if any.
 *
 * @internal
 */
export const block = (request: Approval.ApprovalRequest, now: number, work?: Work): string => {
  const r = request.requirement
  const fields: Array<readonly [string, string]> = [
    ["id", request.id],
    ["kind", request.kind],
    ["status", statusOf(request, now)],
    ["requester", requesterOf(request)],
    ["action", actionOf(request)],
    ["quorum", `${votesOf(request)}${r.separationOfDuties ? " (separation of duties)" : ""}`],
    ["authority", authorityOf(r.authority)],
    ["created", instant(request.createdAt)],
    ["expires", instant(r.expiresAt)]
  ]
  if (request.resolvedAt !== null) fields.push(["resolved", instant(request.resolvedAt)])
  if (request.consumedAt !== null) fields.push(["consumed", instant(request.consumedAt)])
  fields.push(["policy", request.policyId], ["decision", request.decisionId])
  const width = Math.max(...fields.map(([name]) => name.length))
  const lines = fields.map(([name, value]) => `${name.padEnd(width)}  ${value}`)
  const list = (title: string, items: ReadonlyArray<string>) => {
    lines.push(`${title}:`)
    if (items.length === 0) lines.push("  (none)")
    else for (const item of items) lines.push(`  - ${item}`)
  }
  list("reasons", request.reasons.map((reason) => `${reason.code}: ${reason.message}`))
  list(
    "votes",
    request.votes.map((v) => {
      const verdict = v.verdict === "approve" ? "approved" : "rejected"
      const counted = v.counted ? "" : " (not counted)"
      const note = v.note === null ? "" : `: ${JSON.stringify(v.note)}`
      return `${v.approver} ${verdict} at ${instant(v.at)}${counted}${note}`
    })
  )
  if (work !== undefined) lines.push("work:", ...workFields(work).map((line) => `  ${line}`))
  return lines.join("\n")
}

// -----------------------------------------------------------------------------
// durable work
// -----------------------------------------------------------------------------

const handlerOf = (work: Work): string => `${work.handler}@${work.handlerVersion}`

/** A result, encoded, on one line and at most 200 characters. */
const resultText = (result: unknown): string => {
  const text = oneLine(JSON.stringify(result) ?? "null")
  return text.length > 200 ? `${text.slice(0, 199)}…` : text
}

/** What the text output says of durable work: never its sealed data (the CLI does not hold it). */
const workFields = (work: Work): ReadonlyArray<string> => {
  const fields: Array<readonly [string, string]> = [
    ["handler", `${handlerOf(work)} (${work.delivery})`],
    ["state", work.state],
    ["attempts", `${work.attempts} of at most ${work.maxAttempts}`]
  ]
  if (work.owner !== null) {
    fields.push(["claim", `${work.owner}${work.leaseUntil === null ? "" : ` until ${instant(work.leaseUntil)}`}`])
  }
  if (work.state === "succeeded") fields.push(["result", resultText(work.result)])
  if (work.error !== null) fields.push([work.state === "in_doubt" ? "reason" : "error", oneLine(work.error)])
  fields.push(["created", instant(work.createdAt)], ["updated", instant(work.updatedAt)])
  const width = Math.max(...fields.map(([name]) => name.length))
  return fields.map(([name, value]) => `${name.padEnd(width)}  ${value}`)
}

/** `work list`: one row per continuation. @internal */
export const workListing = (works: ReadonlyArray<Work>, state: Work["state"] | undefined): string =>
  works.length === 0 ? `No ${state === undefined ? "durable" : state} work.` : table(
    ["APPROVAL", "HANDLER", "STATE", "ATTEMPTS", "UPDATED"],
    works.map((w) => [w.approvalId, handlerOf(w), w.state, `${w.attempts}/${w.maxAttempts}`, instant(w.updatedAt)])
  )

/** `work resolve`: what the work is now, and who said so. @internal */
export const workResolved = (work: Work, by: string): string =>
  `${work.approvalId}: ${handlerOf(work)} resolved as ${work.state} by ${by}`

// -----------------------------------------------------------------------------
// audit
// -----------------------------------------------------------------------------

/**
 * `audit verify`: intact (with the head to anchor a later check), or where
 * the trail breaks; then the events that wait in the audit outbox, if any.
 *
 * @internal
 */
export const verificationText = (result: typeof Verification.Type): string => {
  const chain = result._tag === "Intact"
    ? result.head === null
      ? "intact: the trail is empty"
      : `intact: ${result.count} events, head ${result.head.sequence}:${result.head.hash}`
    : `broken at event ${result.sequence} (${result.problem}): ${result.message}`
  const waiting = result.undelivered
  if (waiting === undefined) return chain
  const lines = waiting.events.map((event) => {
    const approval = event.approvalId === null ? "" : ` (approval ${event.approvalId})`
    const attempts = `${event.attempts} ${event.attempts === 1 ? "attempt" : "attempts"}`
    const error = event.lastError === null ? "" : `: ${oneLine(event.lastError)}`
    return `  ${event.eventId} since ${instant(event.since)}${approval}, ${attempts}${error}`
  })
  const more = waiting.count - waiting.events.length
  return [
    chain,
    `undelivered: ${waiting.count} ${waiting.count === 1 ? "event waits" : "events wait"} in the audit outbox`,
    ...lines,
    ...(more > 0 ? [`  … and ${more} more`] : [])
  ].join("\n")
}

// -----------------------------------------------------------------------------
// rules
// -----------------------------------------------------------------------------

/** A rules document's id, version, rule count, combining algorithm and default, on one line. @internal */
export const summaryOf = (rules: Rules.Rules): string => {
  const n = rules.document.rules.length
  return `${rules.id} ${rules.version}: ${n} ${n === 1 ? "rule" : "rules"}, ${rules.combine}, default ${
    rules.document.default ?? "none (deny: policy.no_applicable)"
  }`
}

/** An invalid rules document: every problem, one per line, and how many. @internal */
export const problemsText = (file: string, list: ReadonlyArray<Rules.Problem>): string =>
  [
    ...list.map((problem) => `${file}: ${oneLine(Rules.formatProblem(problem))}`),
    `invalid: ${list.length} ${list.length === 1 ? "problem" : "problems"}`
  ].join("\n")

const describeResult = (result: Decision.Result): string => {
  const codes = Decision.reasonCodes(result)
  return codes.length === 0 ? result._tag : `${result._tag} (${codes.join(", ")})`
}

/** `rules explain`: the document, the action, the rules that matched and decided, and the record. @internal */
export const explanationText = (rules: Rules.Rules, action: Action.Action, explanation: Rules.Explanation): string => {
  const record = explanation.record
  const actor = action.actor
  const who = [actor.kind, ...(actor.roles.length === 0 ? [] : [`roles ${actor.roles.join(", ")}`]),
    ...(actor.tenant === undefined ? [] : [`tenant ${actor.tenant}`])]
  const target = action.resource === undefined ? "" : ` on ${action.resource.type}/${action.resource.id}`
  const lines = [
    `rules     ${summaryOf(rules)}`,
    `hash      ${rules.policyHash}`,
    `action    ${action.kind} ${action.name}${target} by ${actor.id} (${who.join(", ")})`,
    "matched:"
  ]
  if (explanation.matched.length === 0) lines.push("  (none)")
  for (const m of explanation.matched) lines.push(`  - ${m.ruleId}: ${describeResult(m.result)}`)
  lines.push(
    `decided   ${
      explanation.decidedBy.length > 0
        ? `by ${explanation.decidedBy.join(", ")}`
        : "by the default (no rule applied)"
    }`,
    `decision  ${record.decision._tag}`
  )
  if (record.decision._tag === "RequireApproval") {
    const r = record.decision.requirement
    lines.push(
      `approval  quorum ${r.quorum}, ${authorityOf(r.authority)}${r.separationOfDuties ? ", separation of duties" : ""}${
        record.expiresAt === null ? "" : `, expires ${instant(record.expiresAt)}`
      }`
    )
  } else if (record.decision._tag === "RequireAcknowledgment") {
    lines.push(`ack by    ${authorityOf(record.decision.authority)}`)
  } else if (record.decision._tag === "Escalate" && record.reviewPath.length > 0) {
    lines.push(`review    ${record.reviewPath.join(", ")}`)
  }
  lines.push("reasons:")
  if (record.reasons.length === 0) lines.push("  (none)")
  for (const r of record.reasons) {
    lines.push(`  - ${r.code}: ${r.message}${r.policyId === undefined ? "" : ` [${r.policyId}]`}`)
  }
  lines.push(`record    ${record.decisionId} at ${instant(record.evaluatedAt)}${record.defaulted ? " (defaulted)" : ""}`)
  return lines.join("\n")
}
