/**
 * Audit trail: every step of a few governed actions lands in a hash-chained
 * trail on a SQLite file; someone edits one row to hide a denial, and
 * `Audit.verify` names the edited event.
 *
 * 1. Wiring: `Sqlite.layer` opens (and migrates) a gavel database in a temp
 *    directory and provides both the `ApprovalStore` and the `AuditSink`;
 *    redaction masks `payload.card.number` and includes the rest of the
 *    payload in the trail.
 * 2. Three actions: a small payment runs; `shell.exec` is denied; a large
 *    payment is submitted, approved by alice and bob, and resumed exactly
 *    once. The trail is printed — decisions, votes, consumption, execution —
 *    and it verifies. The card number never appears in the file.
 * 3. Tampering: with the runtime stopped, a raw SQL `UPDATE` rewrites the
 *    denial into an allow. Reopened, the trail no longer verifies, and
 *    `verify` names the event. Deleting a row is named as `missing`.
 *
 * The program checks what it prints: a wrong outcome is reported on stderr and
 * the process exits with code 1.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/audit-trail.ts
 */
import * as Sqlite from "@gavel/adapters/Sqlite"
import { Action, Audit, AuditSink, Decision, Governance, Identity, Policy, PolicySet } from "@gavel/core"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { check, fail, list, report, sameList } from "./support/checks.js"

// -----------------------------------------------------------------------------
// 1. wiring
// -----------------------------------------------------------------------------

const payments = PolicySet.unsafeMake({
  id: "payments",
  version: "2026-11",
  policy: Policy.firstApplicable([
    Policy.make("no-shell", (action) =>
      action.name === "shell.exec"
        ? Decision.deny({ code: "tool.blocked", message: "Agents may not run shell commands" })
        : Decision.notApplicable),
    Policy.make("large-payments", (action) => {
      const amount = (action.payload as { amount?: number } | undefined)?.amount ?? 0
      return amount > 1000
        ? Decision.requireApproval(
          { code: "payment.large", message: "Payments over 1,000 need two finance approvers" },
          { quorum: 2, roles: ["finance"], timeout: "1 hour" }
        )
        : Decision.allow()
    })
  ])
})

const IdentityLive = Identity.layerDirectory([
  { id: "alice", roles: ["finance"], status: "active" },
  { id: "bob", roles: ["finance"], status: "active" }
])

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-audit-trail-"))
const filename = path.join(dir, "gavel.db")

const StoreLive = Sqlite.layer({ filename })
const GovernanceLive = Governance.layer({
  policySet: payments,
  redaction: { paths: ["payload.card.number"], payload: "include" }
}).pipe(Layer.provideMerge(StoreLive), Layer.provide(IdentityLive))

const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })

const call = (name: string, amount: number) =>
  Action.make({
    actor: { id: "agent-7", kind: "agent", tenant: "acme" },
    kind: "tool",
    name,
    payload: { amount, currency: "EUR", card: { number: "4111 1111 1111 1111" } },
    requestId: `req-${name}-${amount}`
  })

const readTrail = Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read())

const printTrail = (events: ReadonlyArray<Audit.AuditEvent>) => {
  for (const event of events) {
    const who = event.actor === null ? "" : ` by ${event.actor}`
    console.log(`  #${String(event.sequence).padStart(2)} ${event.type.padEnd(20)}${who}  ${event.hash.slice(0, 12)}…`)
  }
}

// -----------------------------------------------------------------------------
// 2. three governed actions
// -----------------------------------------------------------------------------

const govern = Effect.gen(function*() {
  const governance = yield* Governance.Governance
  console.log("1. Three governed actions")
  yield* governance.enforce(call("payments.transfer", 200), () => Effect.sync(() => console.log("  paid 200 EUR")))
  const denied = yield* Effect.flip(governance.enforce(call("shell.exec", 0), () => Effect.void))
  console.log(`  shell.exec: ${denied._tag}`)
  const submitted = yield* governance.submit(call("payments.transfer", 25_000))
  if (submitted._tag !== "Pending") return yield* Effect.dieMessage(`expected Pending, got ${submitted._tag}`)
  yield* governance.approve(submitted.approvalId, human("alice"))
  yield* governance.approve(submitted.approvalId, human("bob"))
  let runs = 0
  yield* governance.resume(submitted.approvalId, submitted.action, () => Effect.sync(() => runs++))
  check("the approved payment", runs === 1, `ran ${runs} times`)

  const events = yield* readTrail
  console.log("\n2. The trail")
  printTrail(events)
  check(
    "event types",
    sameList(events.map((e) => e.type), [
      "decision.evaluated",
      "execution.started",
      "execution.succeeded",
      "decision.evaluated",
      "decision.evaluated",
      "approval.requested",
      "approval.voted",
      "approval.voted",
      "approval.resolved",
      "decision.evaluated",
      "approval.consumed",
      "execution.started",
      "execution.succeeded"
    ]),
    list(events.map((e) => e.type))
  )
  const result = Audit.verify(events)
  console.log(`  verify: ${result._tag}${result._tag === "Intact" ? ` (${result.count} events)` : ""}`)
  check("the untouched trail", result._tag === "Intact", JSON.stringify(result))
  return events
})

const trail = await Effect.runPromise(Effect.provide(govern, GovernanceLive)).catch((error) => {
  fail(String(error))
  return []
})

const raw = fs.readFileSync(filename).toString("latin1") + fs.readFileSync(`${filename}-wal`, { flag: "a+" })
  .toString("latin1")
check("the card number", !raw.includes("4111 1111"), "reached the database file")
console.log("  the card number is written as <redacted>; the amount and currency are kept")

// -----------------------------------------------------------------------------
// 3. tampering
// -----------------------------------------------------------------------------

const denial = trail.find((e) => e.type === "decision.evaluated" && e.data["record"] !== undefined &&
  (e.data["record"] as { decision: { _tag: string } }).decision._tag === "Deny")

const verifyFile = Effect.map(Effect.provide(readTrail, StoreLive), Audit.verify)

if (denial === undefined) {
  fail("no denial in the trail")
} else {
  console.log(`\n3. Someone rewrites event #${denial.sequence} (the shell.exec denial) into an allow`)
  const db = new Database(filename)
  db.prepare(
    "UPDATE gavel_audit_events SET data = json_set(data, '$.record.decision._tag', 'Allow') WHERE sequence = ?"
  ).run(denial.sequence)
  db.close()
  const edited = await Effect.runPromise(verifyFile)
  console.log(`  verify: ${edited._tag === "Broken" ? `${edited.problem} at #${edited.sequence}: ${edited.message}` : edited._tag}`)
  check(
    "the edited row",
    edited._tag === "Broken" && edited.sequence === denial.sequence && edited.problem === "edited",
    JSON.stringify(edited)
  )

  console.log("\n   ...and deletes event #7 (alice's vote)")
  const db2 = new Database(filename)
  db2.prepare("UPDATE gavel_audit_events SET data = ? WHERE sequence = ?").run(
    JSON.stringify(denial.data),
    denial.sequence
  )
  db2.prepare("DELETE FROM gavel_audit_events WHERE sequence = 7").run()
  db2.close()
  const deleted = await Effect.runPromise(verifyFile)
  console.log(`  verify: ${deleted._tag === "Broken" ? `${deleted.problem} at #${deleted.sequence}: ${deleted.message}` : deleted._tag}`)
  check("the deleted row", deleted._tag === "Broken" && deleted.problem === "missing" && deleted.sequence === 7, JSON.stringify(deleted))
}

fs.rmSync(dir, { recursive: true, force: true })
report()
