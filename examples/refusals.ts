/**
 * What gavel refuses, and how it says so: the inputs that could fool an
 * approval or crash a runtime, each answered with a typed error or a
 * non-proceeding decision that names what was wrong.
 *
 * 1. An action that is not JSON data (a `Map` in the payload, a payload
 *    nested 100,000 deep): `Action.InvalidAction` with the path — never a
 *    lossy hash, never a stack overflow.
 * 2. One person is one voter: a directory that folds case resolves "Alice"
 *    and "alice" to the same approver, so the second vote is a
 *    `DuplicateVote`, and the requester under another spelling is refused by
 *    separation of duties.
 * 3. A flood: past `maxPendingPerRequester`, `submit` fails with
 *    `TooManyPending` instead of opening one more approval.
 * 4. A policy that throws: a Deny with `policy.defect`, naming the policy.
 * 5. A rules document that could be read two ways (a duplicate JSON key):
 *    `InvalidRules` with the path, line and column.
 *
 * The program checks what it prints: a wrong outcome is reported on stderr
 * and the process exits with code 1.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/refusals.ts
 */
import {
  Action,
  ApprovalStore,
  AuditSink,
  Decision,
  Governance,
  Identity,
  Policy,
  PolicySet,
  Rules
} from "@gavel/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { check, report } from "./support/checks.js"

// -----------------------------------------------------------------------------
// a runtime: transfers need two finance approvers; a buggy policy throws
// -----------------------------------------------------------------------------

const transfers = Policy.make("payments.transfers", (action) =>
  action.name === "payments.transfer"
    ? Decision.requireApproval(
      { code: "payment.large", message: "Transfers need two finance approvers" },
      { quorum: 2, roles: ["finance"], timeout: "1 hour" }
    )
    : Decision.notApplicable)

const buggy = Policy.make("exports.limits", (action) => {
  if (action.name !== "data.export") return Decision.notApplicable
  throw new TypeError("limits table not loaded")
})

/** An identity directory that folds case, as LDAP and e-mail style ids often do. */
const directory: Record<string, Identity.ResolvedPrincipal> = {
  alice: { id: "alice", roles: ["finance"], status: "active" },
  bob: { id: "bob", roles: ["finance"], status: "active" },
  "agent-7": { id: "agent-7", roles: ["finance"], status: "active" }
}

const FoldingIdentity = Layer.succeed(
  Identity.Identity,
  Identity.Identity.of({
    resolve: (id) => Effect.succeed(Option.fromNullable(directory[id.toLowerCase()])),
    canApprove: () => Effect.succeed(true)
  })
)

const GovernanceLive = Governance.layer({
  policySet: PolicySet.unsafeMake({ id: "payments", version: "1", policy: Policy.all([transfers, buggy]) }),
  maxPendingPerRequester: 2,
  sweepInterval: "1 hour"
}).pipe(
  Layer.provideMerge(ApprovalStore.layerMemory),
  Layer.provideMerge(AuditSink.layerMemory),
  Layer.provideMerge(FoldingIdentity)
)

const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })

const transfer = (amount: number) =>
  Action.make({ actor: { id: "agent-7", kind: "agent" }, kind: "tool", name: "payments.transfer", payload: { amount } })

// -----------------------------------------------------------------------------
// the story
// -----------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const governance = yield* Governance.Governance

  console.log("1. Actions that are not JSON data")
  const withMap = Action.makeUnvalidated({
    actor: { id: "agent-7", kind: "agent" },
    kind: "tool",
    name: "files.write",
    payload: { rows: new Map([["a", 1]]) }
  })
  const mapped = yield* Effect.flip(governance.submit(withMap))
  console.log(`   a Map in the payload: ${mapped._tag} — ${mapped.message}`)
  check("a Map is refused with its path", mapped._tag === "InvalidAction" && mapped.path === "payload.rows", mapped.message)
  let deep: unknown = {}
  for (let i = 0; i < 100_000; i++) deep = { next: deep }
  const tooDeep = Action.validate(Action.makeUnvalidated({ ...withMap, payload: deep }))
  const deepMessage = Either.isLeft(tooDeep) ? tooDeep.left.message : "accepted"
  console.log(`   a payload 100,000 deep: ${deepMessage.slice(0, 60)}…`)
  check("a 100,000-deep payload is refused", Either.isLeft(tooDeep) && tooDeep.left.reason === "too_deep", deepMessage)

  console.log("\n2. One person is one voter")
  const pending = yield* governance.submit(transfer(5_000))
  if (pending._tag !== "Pending") return yield* Effect.dieMessage(`expected Pending, got ${pending._tag}`)
  yield* governance.approve(pending.approvalId, human("Alice"))
  const twice = yield* Effect.flip(governance.approve(pending.approvalId, human("alice")))
  console.log(`   "Alice", then "alice": ${twice._tag}`)
  check("an alias of a voter does not count twice", twice._tag === "DuplicateVote", twice._tag)
  const self = yield* Effect.flip(governance.approve(pending.approvalId, human("AGENT-7")))
  console.log(`   the requester as "AGENT-7": ${self._tag}`)
  check("an alias of the requester is refused", self._tag === "SelfApprovalForbidden", self._tag)

  console.log("\n3. A flood of approvals")
  yield* governance.submit(transfer(6_000))
  const third = yield* Effect.flip(governance.submit(transfer(7_000)))
  console.log(`   a third pending approval for agent-7: ${third._tag}`)
  check("the cap holds", third._tag === "TooManyPending" && third.scope === "requester", third._tag)

  console.log("\n4. A policy that throws")
  const exported = yield* governance.evaluate(
    Action.make({ actor: { id: "agent-7", kind: "agent" }, kind: "data", name: "data.export" })
  )
  // The error line logged above is for the operator: what the policy threw, and where. The record only
  // says that it failed closed.
  console.log(`   ${exported.decision._tag} ${JSON.stringify(exported.reasonCodes)} (${exported.reasons[0]?.policyId})`)
  check("a throwing policy denies", exported.decision._tag === "Deny", exported.decision._tag)
  check("with policy.defect", exported.reasonCodes.includes("policy.defect"), JSON.stringify(exported.reasonCodes))

  console.log("\n5. A rules document with a duplicate key")
  const text = `{"id": "tools", "version": "1", "rules": [
  {"id": "read", "match": {"name": "files.read"}, "effect": "deny", "reason": {"code": "c", "message": "m"}, "effect": "allow"}
]}`
  const parsed = yield* Effect.either(Rules.parseJson(text))
  const problem = Either.isLeft(parsed) ? parsed.left.problems[0] : undefined
  console.log(`   ${problem === undefined ? "accepted" : Rules.formatProblem(problem)}`)
  check("the duplicate key is refused", problem?.path === "rules[0].effect" && problem.line === 2, JSON.stringify(problem))
})

Effect.runPromise(Effect.provide(program, GovernanceLive)).then(report, (error) => {
  console.error(error)
  process.exitCode = 1
})
