/**
 * Approved work that survives a restart (docs/approvals.md: "Durable
 * approvals").
 *
 * 1. Process A (a runtime over a SQLite file, with a worker) submits an
 *    agent's 25,000 EUR payment to the `payments.send` handler. It needs a
 *    finance approval: the approval and the work's continuation — the
 *    handler's name and the action and input, sealed with AES-256-GCM — are
 *    written together. Process A stops.
 * 2. The approver approves with the CLI (`gavel approvals approve`), while no
 *    worker runs anywhere.
 * 3. Process B starts its worker: it claims the approved work, revalidates
 *    it, runs it once and records the result; `outcome` shows it. A retried
 *    submission with the same idempotency key finds it done.
 *
 * (Here the processes are runtimes built one after the other in this
 * program; the SIGKILL tests run them as real processes.) The program checks
 * what it prints: a wrong outcome is reported on stderr and the process exits
 * with code 1.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/durable-approval.ts
 */
import * as Cli from "@gavel/adapters/Cli"
import * as Sqlite from "@gavel/adapters/Sqlite"
import {
  Action,
  ContinuationStore,
  Decision,
  Durable,
  Encryption,
  Governance,
  Identity,
  Policy,
  PolicySet
} from "@gavel/core"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { check, fail, report } from "./support/checks.js"

const payments = PolicySet.unsafeMake({
  id: "payments",
  version: "1",
  policy: Policy.make("payments.large", (action) =>
    ((action.payload as { readonly amount?: number }).amount ?? 0) > 10_000
      ? Decision.requireApproval({ code: "payment.large", message: "Payments over 10,000 need finance approval" }, {
        roles: ["finance"]
      })
      : Decision.allow())
})

const principals = [
  { id: "agent-7", roles: [], status: "active" as const },
  { id: "bob", roles: ["finance"], status: "active" as const }
]
const IdentityLive = Identity.layerDirectory(principals)

/** What the payment provider did: one line per payment sent. */
const sent: Array<string> = []

const sendPayment = Durable.handler({
  name: "payments.send",
  input: Schema.Struct({ to: Schema.String, amount: Schema.Number }),
  success: Schema.Struct({ receipt: Schema.String }),
  lease: "2 minutes",
  run: (_action, input, attempt) =>
    Effect.sync(() => {
      sent.push(`${input.amount} EUR to ${input.to} (key ${attempt.idempotencyKey})`)
      return { receipt: `rcpt-${attempt.idempotencyKey}` }
    })
})

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-durable-"))
const db = path.join(dir, "gavel.db")
const principalsFile = path.join(dir, "principals.json")
fs.writeFileSync(principalsFile, JSON.stringify(principals))

// A key from the environment in production (Encryption.layerConfig); a fixed one for the story.
const EncryptionLive = Encryption.layer({
  keys: [{ id: "k1", key: Redacted.make("fdUhUi-8QLffNXcixfkIoLJM5EzTCBruoskMHz_BFwU") }],
  active: "k1"
})

/** One process: the runtime and its worker over the database. */
const process_ = Durable.layer({ handlers: [sendPayment], pollInterval: "100 millis" }).pipe(
  Layer.provideMerge(Governance.layer({ policySet: payments })),
  Layer.provideMerge(Sqlite.layer({ filename: db })),
  Layer.provide(IdentityLive),
  Layer.provide(EncryptionLive)
)

const payment = Action.make({
  actor: { id: "agent-7", kind: "agent" },
  kind: "tool",
  name: "payments.send",
  payload: { to: "acme-supplies", amount: 25_000 }
})
const input = { to: "acme-supplies", amount: 25_000 }

const main = Effect.gen(function*() {
  // 1. process A submits and stops
  const approvalId = yield* Effect.scoped(Effect.gen(function*() {
    const durable = yield* Durable.Durable
    const submission = yield* durable.submit(payment, sendPayment, input, { idempotencyKey: "invoice-2026-117" })
    console.log(`process A: agent-7 sends 25,000 EUR → ${submission._tag}`)
    if (submission._tag !== "Pending") return yield* Effect.dieMessage(`expected Pending, got ${submission._tag}`)
    const stored = yield* (yield* ContinuationStore.ContinuationStore).get(submission.approvalId)
    console.log(`  continuation: ${stored.handler}@${stored.handlerVersion}, ${stored.state}, sealed ${stored.sealed?.slice(0, 22)}…`)
    check("the work is sealed, not stored in the clear", !(stored.sealed ?? "").includes("acme"), stored.sealed ?? "")
    console.log("process A stops")
    return submission.approvalId
  }).pipe(Effect.provide(process_)))

  // 2. the approver uses the CLI; no worker runs
  console.log(`\n$ gavel approvals approve --db gavel.db --principals principals.json --as bob ${approvalId}`)
  const code = yield* Cli.run([
    "approvals",
    "approve",
    "--db",
    db,
    "--principals",
    principalsFile,
    "--as",
    "bob",
    approvalId
  ]).pipe(Effect.provide(NodeContext.layer))
  check("the CLI approves", code === Cli.ExitCode.Success, `exit code ${code}`)
  check("nothing ran yet", sent.length === 0, sent.join("; "))

  // 3. process B starts: its worker runs the approved work, once
  console.log("\nprocess B starts its worker")
  const [outcome, again] = yield* Effect.scoped(Effect.gen(function*() {
    const durable = yield* Durable.Durable
    let outcome = yield* durable.outcome(approvalId)
    for (let i = 0; i < 200 && (outcome._tag === "Waiting" || outcome._tag === "Running"); i++) {
      yield* Effect.sleep("50 millis")
      outcome = yield* durable.outcome(approvalId)
    }
    const again = yield* durable.submit(payment, sendPayment, input, { idempotencyKey: "invoice-2026-117" })
    return [outcome, again] as const
  }).pipe(Effect.provide(process_)))
  for (const line of sent) console.log(`  the provider sent ${line}`)
  console.log(`  outcome → ${JSON.stringify(outcome)}`)
  check(
    "the payment ran once, with its result recorded",
    outcome._tag === "Succeeded" && sent.length === 1,
    `${outcome._tag}, ${sent.length} sent`
  )
  console.log(`a retried submission with the same key → ${again._tag} (${again._tag === "Existing" ? again.outcome._tag : ""})`)
  check("the retry finds it done", again._tag === "Existing" && again.outcome._tag === "Succeeded", again._tag)
  check("and sends nothing more", sent.length === 1, String(sent.length))
})

Effect.runPromise(main).then(report, (error) => {
  fail(String(error))
  report()
}).finally(() => fs.rmSync(dir, { recursive: true, force: true }))
