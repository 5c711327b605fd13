/**
 * The consumer smoke test's program (scripts/consumer-test.sh copies it into
 * a project that installed the packed packages): plain `node`, no
 * TypeScript, only the packages' public entry points.
 *
 * 1. The rules document is loaded as YAML and as JSON (`RulesFile.load`):
 *    both must compile to the same policy set (one `policyHash`).
 * 2. `Governance.layer` over it, on a SQLite file (`Sqlite.layer`) and an
 *    `Identity` directory in which alice holds the finance role.
 * 3. `files.read` is allowed and runs; `shell.exec` is denied and does not.
 * 4. A 25,000 EUR `payments.transfer` needs approval: `enforce` parks (forked),
 *    the approval appears in the store, alice approves, the parked call
 *    resumes, the transfer runs exactly once and the approval is consumed.
 *
 *   node smoke.mjs DB_FILE
 *
 * Prints one line; on any mismatch prints what differed to stderr and exits 1.
 * The database file is left for `gavel audit verify --db DB_FILE`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as RulesFile from "@gavel/adapters/RulesFile"
import * as Sqlite from "@gavel/adapters/Sqlite"
import { Action, ApprovalStore, Governance, Identity, Rules } from "@gavel/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import process from "node:process"
import { fileURLToPath, URL } from "node:url"

const dbFile = process.argv[2]
if (dbFile === undefined) {
  process.stderr.write("usage: node smoke.mjs DB_FILE\n")
  process.exit(2)
}
const here = (name) => fileURLToPath(new URL(name, import.meta.url))

const problems = []
const check = (label, ok, detail) => {
  if (!ok) problems.push(`${label}: ${detail}`)
}

const directory = new Map([
  ["alice", { id: "alice", roles: ["finance"], tenant: "acme", status: "active" }]
])
const IdentityLive = Layer.succeed(
  Identity.Identity,
  Identity.Identity.of({
    resolve: (id) => Effect.succeed(Option.fromNullable(directory.get(id))),
    canApprove: (id, request) => Effect.succeed(directory.get(id)?.tenant === request.summary.actor.tenant)
  })
)

const agent = { id: "agent-7", kind: "agent", tenant: "acme" }
const alice = { id: "alice", kind: "human", roles: [], attributes: {} }
const call = (name, payload) => Action.make({ actor: agent, kind: "tool", name, payload })

const runs = new Map()
const runsOf = (label) => runs.get(label) ?? 0
const work = (label) => (action) =>
  Effect.sync(() => {
    runs.set(label, runsOf(label) + 1)
    return `${label}: ${action.name} ran`
  })

const tagOf = (either) => (Either.isRight(either) ? "success" : either.left._tag)

const story = Effect.gen(function*() {
  const governance = yield* Governance.Governance
  const store = yield* ApprovalStore.ApprovalStore

  const read = yield* governance.enforce(call("files.read", { path: "/srv/report.txt" }), work("read"))
  check("files.read", read === "read: files.read ran" && runsOf("read") === 1, `${read}, ${runsOf("read")} run(s)`)

  const shell = yield* Effect.either(governance.enforce(call("shell.exec", { command: "ls" }), work("shell")))
  const shellCodes = Either.isLeft(shell) && "record" in shell.left ? shell.left.record.reasonCodes.join() : ""
  check("shell.exec", tagOf(shell) === "Denied" && shellCodes === "tool.blocked", `${tagOf(shell)} (${shellCodes})`)
  check("shell.exec never ran", runsOf("shell") === 0, `${runsOf("shell")} run(s)`)

  const transfer = call("payments.transfer", { amount: 25_000, currency: "EUR", to: "DE89 3704 0044 0532 0130 00" })
  const record = yield* governance.evaluate(transfer)
  check("transfer decision", record.decision._tag === "RequireApproval", record.decision._tag)
  check("transfer reasons", record.reasonCodes.join() === "payment.large", record.reasonCodes.join())

  const parked = yield* Effect.fork(governance.enforce(transfer, work("transfer")))
  const pending = yield* store.listPending({ requester: "agent-7", limit: 1 }).pipe(
    Effect.flatMap((found) => Option.fromNullable(found[0])),
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeout("10 seconds")
  )
  check("pending quorum", pending.requirement.quorum === 1, `quorum ${pending.requirement.quorum}`)
  check("nothing ran before the approval", runsOf("transfer") === 0, `${runsOf("transfer")} run(s)`)

  const approved = yield* governance.approve(pending.id, alice, "checked by the consumer smoke test")
  check("alice's vote", approved.status === "approved", `status ${approved.status}`)

  const result = yield* Fiber.join(parked).pipe(Effect.timeout("10 seconds"))
  const consumed = yield* store.get(pending.id)
  check("transfer result", result === "transfer: payments.transfer ran", result)
  check("transfer ran once", runsOf("transfer") === 1, `${runsOf("transfer")} run(s)`)
  check("approval consumed", consumed.status === "consumed", `status ${consumed.status}`)
  return `${record.decision._tag} → approved by alice → ran ${runsOf("transfer")}×, ${consumed.status}`
})

const main = Effect.gen(function*() {
  const yaml = yield* RulesFile.load(here("rules.yaml"))
  const json = yield* RulesFile.load(here("rules.json"))
  check("YAML and JSON", yaml.policyHash === json.policyHash, `${yaml.policyHash} ≠ ${json.policyHash}`)
  const policySet = Rules.policySet(yaml)
  const GovernanceLive = Governance.layer({ policySet, sweepInterval: "1 second" }).pipe(
    Layer.provideMerge(Sqlite.layer({ filename: dbFile })),
    Layer.provide(IdentityLive)
  )
  const transfer = yield* story.pipe(Effect.provide(GovernanceLive))
  return `rules ${yaml.id}@${yaml.version} (${yaml.document.rules.length} rules, YAML = JSON); ` +
    `files.read ran, shell.exec Denied; payments.transfer ${transfer}`
})

const exit = await Effect.runPromiseExit(main.pipe(Effect.provide(NodeContext.layer)))
if (Exit.isFailure(exit)) problems.push(`stopped early: ${Cause.pretty(exit.cause)}`)
if (problems.length > 0) {
  process.stderr.write(`smoke.mjs on node ${process.version} failed:\n${problems.map((p) => `  ${p}\n`).join("")}`)
  process.exitCode = 1
} else {
  process.stdout.write(`node ${process.version}: ${exit.value}\n`)
}
