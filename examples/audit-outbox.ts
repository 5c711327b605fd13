/**
 * The audit trail in a file beside a SQLite approval store, and what happens
 * when the file cannot be written (docs/audit.md: "What is atomic with
 * what").
 *
 * 1. Wiring: `Sqlite.layer` for the approvals, `AuditFile.layer` for the
 *    trail — two places, so a step's events go through the store's audit
 *    outbox. A test double stands in for the disk: while `diskFull` is set,
 *    the file refuses every append.
 * 2. A payment needs approval. The disk fills up just before the approver
 *    votes: the vote is still counted (the answer says `approved`), the
 *    approved payment runs when resumed, and the events of both wait in the
 *    outbox — `gavel audit verify` names them and exits 7.
 * 3. The disk has room again: the next step hands the waiting events to the
 *    file first, in order, each once; the trail verifies, nothing waits.
 *
 * The program checks what it prints: a wrong outcome is reported on stderr and
 * the process exits with code 1.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/audit-outbox.ts
 */
import * as AuditFile from "@gavel/adapters/AuditFile"
import * as Cli from "@gavel/adapters/Cli"
import * as Sqlite from "@gavel/adapters/Sqlite"
import {
  Action,
  Approval,
  Audit,
  AuditOutbox,
  AuditSink,
  Decision,
  Governance,
  Identity,
  Policy,
  PolicySet
} from "@gavel/core"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { check, fail, list, report, sameList } from "./support/checks.js"

// -----------------------------------------------------------------------------
// 1. wiring
// -----------------------------------------------------------------------------

const payments = PolicySet.unsafeMake({
  id: "payments",
  version: "1",
  policy: Policy.make("payments.approval", () =>
    Decision.requireApproval({ code: "payment.large", message: "Payments need finance approval" }, {
      roles: ["finance"]
    }))
})

const IdentityLive = Identity.layerDirectory([
  { id: "agent-7", roles: [], status: "active" },
  { id: "bob", roles: ["finance"], status: "active" }
])

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-audit-outbox-"))
const db = path.join(dir, "gavel.db")
const trail = path.join(dir, "audit.jsonl")

/** A stand-in for the disk: while set, the trail file refuses every append. */
let diskFull = false

const TrailFile = Layer.effect(
  AuditSink.AuditSink,
  Effect.map(AuditFile.make({ path: trail }), (file) => ({
    ...file,
    append: (entry: Audit.Entry) =>
      diskFull
        ? Effect.fail(new Approval.StoreError({
          operation: "append",
          detail: "ENOSPC: no space left on device",
          component: "audit trail"
        }))
        : file.append(entry)
  }))
).pipe(Layer.provide(NodeContext.layer))

// The approvals in SQLite, the trail in a file: the file's layer replaces the
// database's own sink, and the runtime puts a step's events in the
// database's audit outbox with the step.
const GovernanceLive = Governance.layer({ policySet: payments }).pipe(
  Layer.provideMerge(Layer.merge(Sqlite.layer({ filename: db }), TrailFile)),
  Layer.provide(IdentityLive)
)

const payment = (amount: number) =>
  Action.make({ actor: { id: "agent-7", kind: "agent" }, kind: "tool", name: "payments.send", payload: { amount } })

const bob: Action.Principal = { id: "bob", kind: "human", roles: ["finance"], attributes: {} }

/** `gavel audit verify` on the database and the file, as an operator would run it. */
const verify = Effect.flatMap(
  Effect.sync(() => console.log(`\n$ gavel audit verify --db gavel.db --trail audit.jsonl`)),
  () =>
    Cli.run(["audit", "verify", "--db", db, "--trail", trail]).pipe(
      Effect.provide(NodeContext.layer),
      Effect.tap((code) => Effect.sync(() => console.log(`(exit code ${code})`)))
    )
)

const main = Effect.gen(function*() {
  const governance = yield* Governance.Governance
  const outbox = yield* AuditOutbox.AuditOutbox
  const readTrail = AuditFile.readFile(trail).pipe(Effect.provide(NodeContext.layer))

  const submitted = yield* governance.submit(payment(25_000))
  if (submitted._tag !== "Pending") return fail(`expected Pending, got ${submitted._tag}`)
  const id = submitted.approvalId
  console.log(`agent-7 payments.send 25000 → waits for approval ${id}`)

  // ---------------------------------------------------------------------------
  // 2. the vote while the disk is full
  // ---------------------------------------------------------------------------

  diskFull = true
  console.log("\nthe disk is full")
  const voted = yield* governance.approve(id, bob)
  console.log(`bob approves → ${voted.status} (the vote counts: the store is the truth)`)
  check("the vote counts", voted.status === "approved", voted.status)

  let ran = 0
  yield* governance.resume(id, submitted.action, () => Effect.sync(() => void ran++))
  console.log(`agent-7 resumes the payment → it runs (${ran} time)`)
  check("the approved work runs once", ran === 1, String(ran))

  const waiting = (yield* outbox.list(20)).map((item) => item.entry.type)
  console.log(`waiting in the audit outbox: ${list(waiting)}`)
  check(
    "the step's events wait, in order",
    sameList(waiting, [
      "approval.voted",
      "approval.resolved",
      "decision.evaluated",
      "approval.consumed",
      "execution.started",
      "execution.succeeded"
    ]),
    list(waiting)
  )
  const full = yield* verify
  check("verify names them and exits 7", full === Cli.ExitCode.AuditUndelivered, String(full))

  // ---------------------------------------------------------------------------
  // 3. room again
  // ---------------------------------------------------------------------------

  diskFull = false
  console.log("\nthe disk has room again")
  const next = yield* governance.submit(payment(10))
  console.log(`agent-7 payments.send 10 → ${next._tag} (its step delivers what waited first)`)
  const left = yield* outbox.backlog
  check("nothing waits", left.count === 0, String(left.count))

  const events = yield* readTrail
  const types = events.map((e) => e.type)
  console.log(`\n${path.basename(trail)}: ${list(types)}`)
  check(
    "every event once, in the order it was delivered",
    sameList(types, [
      "decision.evaluated",
      "approval.requested",
      // The new request's decision is written at once; the events that
      // waited follow it, then the new request's own step.
      "decision.evaluated",
      ...waiting,
      "approval.requested"
    ]),
    list(types)
  )
  check("the trail verifies", Audit.verify(events)._tag === "Intact", Audit.verify(events)._tag)
  const healed = yield* verify
  check("verify exits 0", healed === Cli.ExitCode.Success, String(healed))
})

Effect.runPromise(Effect.scoped(Effect.provide(main, GovernanceLive)).pipe(
  // The refused appends are logged as warnings; this story prints its own lines.
  Effect.provide(Logger.remove(Logger.defaultLogger))
)).then(report, (error) => {
  fail(String(error))
  report()
}).finally(() => fs.rmSync(dir, { recursive: true, force: true }))
