/**
 * Human approval: an AI agent's large payment waits for two finance approvers,
 * then runs exactly once.
 *
 * 1. Production-style wiring: an `Identity` layer over the host's directory
 *    (roles, status, tenant; `canApprove` keeps approvers inside their own
 *    tenant), the in-memory `ApprovalStore`, and `Governance.layer`, which
 *    also runs the sweeper that expires approvals nobody resolved in time.
 * 2. `enforce`: agent-7 calls `payments.transfer` for 25,000 EUR. The policy
 *    requires two `finance` approvers with separation of duties, so the call
 *    parks in its fiber. The approvers' inbox (`ApprovalStore.listPending`)
 *    shows the approval; alice approves (1 of 2); agent-7, which holds the
 *    finance role itself, tries to approve its own transfer and is refused
 *    with `SelfApprovalForbidden`; dave from engineering is refused with
 *    `NotAnApprover`; bob approves, the parked call resumes and the transfer
 *    runs exactly once.
 * 3. `submit` / `resume`, what a server does instead of holding a fiber: the
 *    submission is `Pending` (answer 202 with the approval id), alice and bob
 *    approve, a resume with a changed amount fails with `ActionMismatch`,
 *    the approved action (retried under a new request id) runs, and a second
 *    resume of the same approval fails with `AlreadyConsumed`.
 * 4. Expiry: an instant transfer whose approval window is 300 ms (minutes in
 *    real life; short here so the example finishes quickly). Only alice
 *    approves, the sweeper (every 50 ms) expires the approval, the parked call
 *    fails with `ApprovalExpired`, its work never runs, and a late vote is
 *    refused.
 *
 * The program checks what it prints: a wrong outcome is reported on stderr and
 * the process exits with code 1. It takes about half a second of real time.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/human-approval.ts
 */
import {
  Action,
  Approval,
  ApprovalStore,
  AuditSink,
  Decision,
  Governance,
  IdGenerator,
  Identity,
  Policy,
  PolicySet
} from "@gavel/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { check, fail, report } from "./support/checks.js"

// =============================================================================
// 1. Wiring
// =============================================================================

/** The identity system: an in-memory directory here (an IdP or HR system in production). */
const directory: ReadonlyArray<Identity.ResolvedPrincipal> = [
  // The agent works for the finance team and holds the role too: only
  // separation of duties stops it from approving its own transfers.
  { id: "agent-7", roles: ["finance"], tenant: "acme", status: "active" },
  { id: "alice", roles: ["finance"], tenant: "acme", status: "active" },
  { id: "bob", roles: ["finance"], tenant: "acme", status: "active" },
  { id: "dave", roles: ["engineering"], tenant: "acme", status: "active" }
]

// Eligibility comes from here, never from the roles a caller claims: the
// runtime asks `resolve` (active? within the approval's roles?) and then
// `canApprove` for the host's own rules — here, no approving across tenants.
const IdentityLive: Layer.Layer<Identity.Identity> = Identity.layerDirectory(directory, {
  canApprove: (principal, request) => principal.tenant === (request.summary.actor.tenant ?? undefined)
})

interface Transfer {
  readonly amount: number
  readonly currency: string
  readonly to: string
}

const amountOf = (action: Action.Action): number => (action.payload as Transfer | undefined)?.amount ?? 0

const largeTransfers = Policy.make("payments.large-transfers", (action) => {
  if (action.name !== "payments.transfer") return Decision.notApplicable
  if (amountOf(action) <= 10_000) return Decision.allow()
  return Decision.requireApproval(
    { code: "payment.large", message: "Transfers over 10,000 EUR need two finance approvers" },
    {
      quorum: 2,
      roles: ["finance"],
      separationOfDuties: true,
      // Instant transfers settle now or never, so their window is short.
      timeout: action.metadata.rail === "instant" ? "300 millis" : "30 minutes"
    }
  )
})

const payments = PolicySet.unsafeMake({ id: "payments", version: "2025.06", policy: largeTransfers })

// The runtime and its sweeper live as long as the layer's scope. The store is
// merged into the output because the approvers' inbox below reads it too.
// Sequential ids keep the output readable.
const GovernanceLive = Governance.layer({ policySet: payments, sweepInterval: "50 millis" }).pipe(
  Layer.provideMerge(ApprovalStore.layerMemory),
  Layer.provideMerge(AuditSink.layerMemory),
  Layer.provide(IdentityLive),
  Layer.provide(IdGenerator.layer(IdGenerator.sequential()))
)

// -----------------------------------------------------------------------------
// the actors, the work, printing and checking
// -----------------------------------------------------------------------------

/** A principal as the host authenticated it; its roles here are not trusted. */
const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })
const alice = human("alice")
const bob = human("bob")
const dave = human("dave")

const transfer = (payload: Transfer, requestId: string, rail: "sepa" | "instant" = "sepa"): Action.Action =>
  Action.make({
    actor: { id: "agent-7", kind: "agent", tenant: "acme" },
    kind: "tool",
    name: "payments.transfer",
    resource: { type: "account", id: "acme-ops-eur" },
    payload,
    metadata: { rail },
    requestId
  })

/** How many times each transfer's work actually ran. */
const runs = new Map<string, number>()
const runsOf = (label: string): number => runs.get(label) ?? 0

/** The protected work: the bank call. It only ever runs with the action gavel let through. */
const sendMoney = (label: string) => (action: Action.Action) =>
  Effect.sync(() => {
    runs.set(label, runsOf(label) + 1)
    const { amount, currency, to } = action.payload as Transfer
    return `${label}: sent ${amount.toLocaleString("en-US")} ${currency} to ${to}`
  })

/** The tag of what an effect ended with: `"success"` or the error's tag. */
const tagOf = <A, E extends { readonly _tag: string }>(result: Either.Either<A, E>): string =>
  Either.isRight(result) ? "success" : result.left._tag

const say = (line: string): void => console.log(line)

/** The approvers' inbox: polls the store until agent-7's parked call has opened its approval. */
const inbox = Effect.flatMap(ApprovalStore.ApprovalStore, (store) =>
  store.listPending({ requester: "agent-7", limit: 1 }).pipe(
    Effect.flatMap((found) => Option.fromNullable(found[0])),
    Effect.retry(Schedule.spaced("5 millis")),
    Effect.timeout("1 second")
  ))

const show = (request: Approval.ApprovalRequest): void => {
  const window = request.requirement.expiresAt.getTime() - request.createdAt.getTime()
  say(`    ${request.id} (${request.kind}) for ${request.summary.name} by ${request.requester}: ${request.status}`)
  say(
    `    quorum ${request.requirement.quorum} of roles [${request.requirement.authority.roles.join(", ")}]` +
      `, separation of duties: ${request.requirement.separationOfDuties}`
  )
  say(`    expires ${request.requirement.expiresAt.toISOString()} (${window / 1000} s after it opened)`)
  say(`    reasons: ${request.reasons.map((reason) => `${reason.code} "${reason.message}"`).join("; ")}`)
}

const votesOf = (request: Approval.ApprovalRequest): string =>
  `${request.status}, ${Approval.countedApprovers(request).length} of ${request.requirement.quorum} approvals`

// =============================================================================
// The story
// =============================================================================

const story = Effect.gen(function*() {
  const governance = yield* Governance.Governance
  const store = yield* ApprovalStore.ApprovalStore

  // ---------------------------------------------------------------------------
  // 2. enforce: the agent's call parks until two finance approvers agree
  // ---------------------------------------------------------------------------
  say("2. agent-7 calls payments.transfer for 25,000 EUR with enforce (forked: it parks)")
  const first = transfer({ amount: 25_000, currency: "EUR", to: "DE89 3704 0044 0532 0130 00" }, "req-1")
  const parked = yield* Effect.fork(governance.enforce(first, sendMoney("transfer 1")))

  const pending = yield* inbox
  say("  the approvers' inbox (ApprovalStore.listPending):")
  show(pending)
  check("pending quorum", pending.requirement.quorum === 2, `quorum ${pending.requirement.quorum}`)
  check(
    "pending window",
    pending.requirement.expiresAt.getTime() - pending.createdAt.getTime() === 30 * 60_000,
    `expires ${pending.requirement.expiresAt.toISOString()}, opened ${pending.createdAt.toISOString()}`
  )
  check("pending reasons", pending.reasons.map((r) => r.code).join() === "payment.large", "reason codes differ")
  check("pending requester", pending.requester === "agent-7", `requester ${pending.requester}`)
  check("nothing ran yet", runsOf("transfer 1") === 0, `${runsOf("transfer 1")} run(s)`)

  const afterAlice = yield* governance.approve(pending.id, alice, "invoice INV-881 matches")
  say(`  alice approves: ${votesOf(afterAlice)}`)
  check("alice's vote", afterAlice.status === "pending", `status ${afterAlice.status}`)
  check("one counted", Approval.countedApprovers(afterAlice).length === 1, votesOf(afterAlice))

  const selfVote = yield* Effect.either(governance.approve(pending.id, first.actor))
  say(
    `  agent-7 approves its own transfer: ${tagOf(selfVote)}` +
      `${Either.isLeft(selfVote) ? ` (${selfVote.left.message})` : ""}`
  )
  check("self approval", tagOf(selfVote) === "SelfApprovalForbidden", `got ${tagOf(selfVote)}`)

  const outsider = yield* Effect.either(governance.approve(pending.id, dave))
  const outsiderReason = Either.isLeft(outsider) && outsider.left._tag === "NotAnApprover"
    ? outsider.left.reason
    : "none"
  say(`  dave (engineering) approves: ${tagOf(outsider)} (${outsiderReason})`)
  check("outsider", outsiderReason === "outside_authority", `got ${tagOf(outsider)} (${outsiderReason})`)

  const stillPending = yield* store.get(pending.id)
  check("refusals did not count", votesOf(stillPending) === votesOf(afterAlice), votesOf(stillPending))
  check("still nothing ran", runsOf("transfer 1") === 0, `${runsOf("transfer 1")} run(s)`)

  const afterBob = yield* governance.approve(pending.id, bob)
  say(`  bob approves: ${votesOf(afterBob)}`)
  check("bob's vote", afterBob.status === "approved", `status ${afterBob.status}`)

  // Approved: the parked call re-checks the action and the policies, consumes
  // the approval and runs the work.
  const firstResult = yield* Effect.either(Fiber.join(parked))
  say(`  the parked call resumes: ${Either.isRight(firstResult) ? firstResult.right : tagOf(firstResult)}`)
  const consumed = yield* store.get(pending.id)
  say(`  ${pending.id} is now ${consumed.status}; the work ran ${runsOf("transfer 1")} time(s)`)
  check("transfer 1 succeeded", Either.isRight(firstResult), `ended with ${tagOf(firstResult)}`)
  check("transfer 1 ran once", runsOf("transfer 1") === 1, `${runsOf("transfer 1")} run(s)`)
  check("approval consumed", consumed.status === "consumed", `status ${consumed.status}`)

  // ---------------------------------------------------------------------------
  // 3. submit / resume: the same, without a parked fiber (what servers do)
  // ---------------------------------------------------------------------------
  say("\n3. a server submits an 18,000 EUR transfer and resumes it later")
  const second = transfer({ amount: 18_000, currency: "EUR", to: "FR76 3000 6000 0112 3456 7890 189" }, "req-2")
  const submission = yield* governance.submit(second)
  if (submission._tag !== "Pending") {
    check("submission", false, `expected Pending, got ${submission._tag}`)
    return
  }
  say(`  submit: Pending ${submission.approvalId}, expires ${submission.expiresAt.toISOString()} (answer 202)`)
  const approvalId = submission.approvalId

  yield* governance.approve(approvalId, alice)
  const approved = yield* governance.approve(approvalId, bob)
  say(`  alice and bob approve through the approvals API: ${votesOf(approved)}`)
  check("second approved", approved.status === "approved", `status ${approved.status}`)

  // The approval binds to what the action does (actor, tool, resource,
  // payload, metadata), not to the request ids of one attempt.
  const inflated = transfer({ amount: 81_000, currency: "EUR", to: "FR76 3000 6000 0112 3456 7890 189" }, "req-2b")
  const mismatch = yield* Effect.either(governance.resume(approvalId, inflated, sendMoney("transfer 2")))
  say(`  resume with the amount changed to 81,000: ${tagOf(mismatch)}`)
  check("changed payload", tagOf(mismatch) === "ActionMismatch", `got ${tagOf(mismatch)}`)

  const retried = transfer({ amount: 18_000, currency: "EUR", to: "FR76 3000 6000 0112 3456 7890 189" }, "req-2b")
  const resumed = yield* Effect.either(governance.resume(approvalId, retried, sendMoney("transfer 2")))
  say(`  resume with the approved action (new request id): ${Either.isRight(resumed) ? resumed.right : tagOf(resumed)}`)
  check("resume runs", Either.isRight(resumed), `ended with ${tagOf(resumed)}`)

  const replay = yield* Effect.either(governance.resume(approvalId, retried, sendMoney("transfer 2")))
  say(`  resume the same approval again: ${tagOf(replay)}; the work ran ${runsOf("transfer 2")} time(s)`)
  check("replay refused", tagOf(replay) === "AlreadyConsumed", `got ${tagOf(replay)}`)
  check("transfer 2 ran once", runsOf("transfer 2") === 1, `${runsOf("transfer 2")} run(s)`)

  // ---------------------------------------------------------------------------
  // 4. expiry: nobody completes the quorum in time
  // ---------------------------------------------------------------------------
  say("\n4. agent-7 calls an instant 25,000 EUR transfer (approval window 300 ms)")
  const startedAt = yield* Clock.currentTimeMillis
  const instant = transfer({ amount: 25_000, currency: "EUR", to: "NL91 ABNA 0417 1643 00" }, "req-3", "instant")
  const late = yield* Effect.fork(governance.enforce(instant, sendMoney("transfer 3")))

  const expiring = yield* inbox
  show(expiring)
  check(
    "short window",
    expiring.requirement.expiresAt.getTime() - expiring.createdAt.getTime() === 300,
    `expires ${expiring.requirement.expiresAt.toISOString()}, opened ${expiring.createdAt.toISOString()}`
  )
  const onlyAlice = yield* governance.approve(expiring.id, alice)
  say(`  alice approves: ${votesOf(onlyAlice)}; nobody else does`)

  const lateResult = yield* Effect.either(Fiber.join(late))
  const waited = (yield* Clock.currentTimeMillis) - startedAt
  const expired = yield* store.get(expiring.id)
  say(
    `  the parked call fails after ${waited} ms: ${tagOf(lateResult)}` +
      `${Either.isLeft(lateResult) ? ` (${lateResult.left.message})` : ""}`
  )
  say(`  ${expiring.id} is ${expired.status}; the work ran ${runsOf("transfer 3")} time(s)`)
  check("expired", tagOf(lateResult) === "ApprovalExpired", `got ${tagOf(lateResult)}`)
  check("status expired", expired.status === "expired", `status ${expired.status}`)
  check("transfer 3 never ran", runsOf("transfer 3") === 0, `${runsOf("transfer 3")} run(s)`)
  // The sweeper runs every 50 ms, so the call wakes within about 50 ms of the expiry.
  check("woken by the sweeper", waited >= 300 && waited < 1000, `after ${waited} ms, expected about 300-350 ms`)

  const lateVote = yield* Effect.either(governance.approve(expiring.id, bob))
  say(`  bob approves too late: ${tagOf(lateVote)}`)
  check("late vote", tagOf(lateVote) === "ApprovalExpired", `got ${tagOf(lateVote)}`)
})

say("1. Governance.layer over the payments policy set, an Identity directory and an in-memory ApprovalStore\n")
const exit = await Effect.runPromiseExit(story.pipe(Effect.provide(GovernanceLive)))
if (Exit.isFailure(exit)) {
  fail(`the story stopped early: ${Cause.pretty(exit.cause)}`)
}

report()
