/**
 * The gavel demo (`npm run demo`): an AI agent's tool calls governed end to
 * end, on an embedded SQLite file in a temporary directory.
 *
 * 1. Rules: examples/rules/agent-tools.yaml is loaded and checked (a bad
 *    document would be refused, every problem named), and composed with a
 *    code policy: deployments need an approved change ticket, looked up in a
 *    ticketing system within 300 ms.
 * 2. An allowed tool call (`files.read`) runs.
 * 3. A denied one (`shell.exec`) does not, and says why.
 * 4. A deployment whose ticketing system does not answer: the check times
 *    out and fails closed — denied, never allowed by accident.
 * 5. A 25,000 EUR transfer needs two finance approvers: it parks; the agent,
 *    which holds the finance role itself, may not approve its own transfer;
 *    alice and bob approve; the transfer resumes and runs exactly once.
 * 6. An instant payment whose one-second approval window passes: it expires,
 *    the payment never runs.
 * 7. The audit trail in the SQLite file is verified: every step above,
 *    hash-chained.
 *
 * Run it from the repository root after `npm ci`:
 *
 *   npm run demo          (or: npx tsx examples/demo.ts)
 *
 * The database is deleted at the end. Keep it to look at it afterwards with
 * the `gavel` CLI (the approvals, the audit trail); the demo then prints the
 * commands to run on it:
 *
 *   npm run demo -- --keep             (in a temp directory; or GAVEL_DEMO_KEEP=1)
 *   npm run demo -- --keep=PATH        (a new file at PATH)
 */
import * as RulesFile from "@gavel/adapters/RulesFile"
import * as Sqlite from "@gavel/adapters/Sqlite"
import {
  Action,
  ApprovalStore,
  Audit,
  AuditSink,
  Governance,
  Identity,
  Policy,
  PolicySet,
  type Rules,
  Ticketing
} from "@gavel/core"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { check, fail, report } from "./support/checks.js"

const say = (line: string) => console.log(line)
const step = (title: string) => console.log(`\n${title}`)

/** How a governed call ended, in one line. */
const outcome = (exit: Exit.Exit<unknown, { readonly _tag: string }>): string => {
  if (Exit.isSuccess(exit)) return "ran"
  const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (error === undefined) return "defect"
  if ("record" in error) {
    const record = (error as unknown as Governance.Denied).record
    return `${error._tag} (${record.reasonCodes.join(", ")})`
  }
  return error._tag
}

/** What the reader can look up afterwards with the CLI. */
interface Summary {
  readonly transferId: string
  readonly head: Audit.Anchor | null
}

const program = (rules: Rules.Rules) => Effect.gen(function*() {
  // ---------------------------------------------------------------------------
  step("1. Rules")
  say(`   loaded ${rules.id} ${rules.version}: ${rules.document.rules.length} rules, ${rules.combine}, default deny`)
  say(`   policyHash ${rules.policyHash.slice(0, 16)}…`)
  say("   composed with code: deploy.* needs an approved change ticket (ticketing, 300 ms, fail closed)")

  const governance = yield* Governance.Governance
  const agent = { id: "agent-7", kind: "agent" as const, roles: ["deployer", "finance"], tenant: "acme" }
  const call = (name: string, payload?: unknown, metadata?: Record<string, string>) =>
    Action.make({ actor: agent, kind: "tool", name, payload, ...(metadata === undefined ? {} : { metadata }) })
  const runs: Array<string> = []
  const work = (action: Action.Action) => Effect.sync(() => void runs.push(action.name))

  // ---------------------------------------------------------------------------
  step("2. An allowed tool call")
  const read = yield* Effect.exit(governance.enforce(call("files.read", { path: "/reports/q3.pdf" }), work))
  say(`   agent-7 files.read → ${outcome(read)}`)
  check("files.read runs", Exit.isSuccess(read) && runs.includes("files.read"), outcome(read))

  // ---------------------------------------------------------------------------
  step("3. A denied tool call")
  const shell = yield* Effect.exit(governance.enforce(call("shell.exec", { cmd: "rm -rf /" }), work))
  say(`   agent-7 shell.exec → ${outcome(shell)}`)
  check("shell.exec denied", outcome(shell) === "Denied (tool.blocked)", outcome(shell))

  // ---------------------------------------------------------------------------
  step("4. An external check that times out fails closed")
  const started = Date.now()
  const deploy = yield* Effect.exit(
    governance.enforce(call("deploy.production", { service: "billing" }, { ticket: "CHG-1042" }), work)
  )
  say(`   agent-7 deploy.production (ticketing does not answer) → ${outcome(deploy)} after ${Date.now() - started} ms`)
  check("deploy denied on timeout", outcome(deploy) === "Denied (policy.timeout)", outcome(deploy))
  check("deploy never ran", !runs.includes("deploy.production"), runs.join(", "))

  // ---------------------------------------------------------------------------
  step("5. A transfer that needs two approvers")
  const transfer = call("payments.transfer", { amount: 25_000, currency: "EUR", to: "DE89 3704 0044" })
  const parked = yield* Effect.fork(governance.enforce(transfer, work))
  const store = yield* ApprovalStore.ApprovalStore
  const [pending] = yield* waitForPending(store)
  if (pending === undefined) return yield* Effect.die("no approval was opened")
  say(`   payments.transfer 25,000 EUR → pending: ${pending.id}, quorum ${pending.requirement.quorum}, roles finance`)
  const self = yield* Effect.either(governance.approve(pending.id, human("agent-7")))
  say(`   agent-7 approves its own transfer → ${self._tag === "Left" ? self.left._tag : "accepted?!"}`)
  check("self-approval refused", self._tag === "Left" && self.left._tag === "SelfApprovalForbidden", String(self._tag))
  const first = yield* governance.approve(pending.id, human("alice"), "invoice 4411 checked")
  say(`   alice approves → ${first.status} (1 of 2)`)
  const second = yield* governance.approve(pending.id, human("bob"))
  say(`   bob approves → ${second.status}`)
  yield* Fiber.join(parked)
  const transfers = runs.filter((name) => name === "payments.transfer").length
  say(`   the parked transfer resumed and ran ${transfers} time(s)`)
  check("transfer ran once", transfers === 1, `${transfers}`)
  const again = yield* Effect.either(governance.resume(pending.id, transfer, work))
  say(`   resuming it again → ${again._tag === "Left" ? again.left._tag : "ran again?!"}`)
  check("no second run", again._tag === "Left" && runs.filter((n) => n === "payments.transfer").length === 1, "")

  // ---------------------------------------------------------------------------
  step("6. An approval nobody gives in time")
  const instant = yield* Effect.exit(governance.enforce(call("payments.instant", { amount: 900, to: "FR76" }), work))
  say(`   payments.instant (1 s window, no approver) → ${outcome(instant)}`)
  check("instant payment expired", outcome(instant) === "ApprovalExpired", outcome(instant))
  check("instant payment never ran", !runs.includes("payments.instant"), runs.join(", "))

  // ---------------------------------------------------------------------------
  step("7. The audit trail")
  const events = yield* Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read())
  const verdict = Audit.verify(events)
  const kinds = new Map<string, number>()
  for (const event of events) kinds.set(event.type, (kinds.get(event.type) ?? 0) + 1)
  say(`   ${events.length} events: ${[...kinds].map(([type, n]) => `${type} ×${n}`).join(", ")}`)
  const head = verdict._tag === "Intact" && verdict.head !== null
    ? `, head #${verdict.head.sequence} ${verdict.head.hash.slice(0, 16)}…`
    : ""
  say(`   verify → ${verdict._tag}${head}`)
  check("trail intact", verdict._tag === "Intact", verdict._tag)
  const summary: Summary = { transferId: pending.id, head: verdict._tag === "Intact" ? verdict.head : null }
  return summary
})

const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })

/** The approvals inbox, once the parked call has opened its approval. */
const waitForPending = (store: ApprovalStore.Service) =>
  store.listPending().pipe(
    Effect.filterOrFail((pending) => pending.length > 0),
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("5 seconds"))),
    Effect.orDie
  )

// -----------------------------------------------------------------------------
// wiring: SQLite in a temp directory, an identity directory, a ticketing
// system that never answers
// -----------------------------------------------------------------------------

const IdentityLive = Identity.layerDirectory([
  { id: "agent-7", roles: ["deployer", "finance"], tenant: "acme", status: "active" },
  { id: "alice", roles: ["finance"], tenant: "acme", status: "active" },
  { id: "bob", roles: ["finance"], tenant: "acme", status: "active" }
])

const TicketingDown = Layer.succeed(Ticketing.Ticketing, { lookup: () => Effect.never })

// -----------------------------------------------------------------------------
// where the database goes, and whether it stays
// -----------------------------------------------------------------------------

type Keep =
  | { readonly _tag: "Delete" }
  | { readonly _tag: "TempDir" }
  | { readonly _tag: "Path"; readonly path: string }

const usage = "usage: npm run demo [-- --keep | --keep=PATH]   (or GAVEL_DEMO_KEEP=1 npm run demo)"

/** `--keep`, `--keep=PATH` or `GAVEL_DEMO_KEEP=1`; a problem as a string. */
const parseKeep = (args: ReadonlyArray<string>, env: string | undefined): Keep | string => {
  let keep: Keep = { _tag: "Delete" }
  if (env === "1") keep = { _tag: "TempDir" }
  else if (env !== undefined && env !== "" && env !== "0") {
    return `GAVEL_DEMO_KEEP=${env}: expected 1 (keep the database) or 0`
  }
  for (const arg of args) {
    if (arg === "--keep") keep = { _tag: "TempDir" }
    else if (arg.startsWith("--keep=") && arg.length > "--keep=".length) {
      keep = { _tag: "Path", path: resolve(arg.slice("--keep=".length)) }
    } else return `unknown argument ${JSON.stringify(arg)}`
  }
  if (keep._tag === "Path") {
    // A new file only: the story's checks count on an empty database.
    if (existsSync(keep.path)) return `${keep.path} exists; --keep=PATH takes the path of a new file`
    const parent = dirname(keep.path)
    if (!existsSync(parent) || !statSync(parent).isDirectory()) return `${parent} is not a directory`
  }
  return keep
}

/** A word for a POSIX shell, quoted only when it must be. */
const shellWord = (word: string): string =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`

/** The CLI commands that look at the kept database (docs/cli.md). */
const lookAtIt = (file: string, summary: Summary | undefined): void => {
  const db = `--db ${shellWord(file)}`
  console.log(`\nThe database is kept: ${file}`)
  console.log("Look at it with the gavel CLI (docs/cli.md), from the repository root after `npm run build`:")
  console.log(`  npx gavel approvals list ${db} --status all`)
  if (summary !== undefined) console.log(`  npx gavel approvals show ${db} ${summary.transferId}`)
  console.log(`  npx gavel audit verify ${db}`)
  if (summary !== undefined && summary.head !== null) {
    console.log(`  npx gavel audit verify ${db} --anchor ${summary.head.sequence}:${summary.head.hash}`)
  }
  console.log("(`approvals list` shows pending approvals unless --status says otherwise: the demo resolved them all.")
  console.log("`show` is the transfer alice and bob approved; --anchor checks the trail against the head verified above.)")
}

const keep = parseKeep(process.argv.slice(2), process.env.GAVEL_DEMO_KEEP)
if (typeof keep === "string") {
  console.error(`demo: ${keep}\n${usage}`)
  process.exit(2)
}
const filename = keep._tag === "Path" ? keep.path : join(mkdtempSync(join(tmpdir(), "gavel-demo-")), "gavel.db")
console.log(`gavel demo — database ${filename}`)

const main = Effect.gen(function*() {
  const rules = yield* RulesFile.load("examples/rules/agent-tools.yaml")
  const policySet = yield* PolicySet.make({
    id: rules.id,
    version: rules.version,
    policy: Policy.all([
      rules.policy,
      Ticketing.requireStatus("approved", { id: "change-ticket" }).pipe(
        Policy.timeout("300 millis"),
        Policy.failClosed,
        Policy.when((action) => action.name.startsWith("deploy."))
      )
    ])
  })
  const GovernanceLive = Governance.layer({ policySet, sweepInterval: "200 millis" }).pipe(
    Layer.provideMerge(Sqlite.layer({ filename })),
    Layer.provide(Layer.mergeAll(IdentityLive, TicketingDown))
  )
  return yield* Effect.provide(program(rules), GovernanceLive)
})

Effect.runPromise(main.pipe(Effect.provide(NodeContext.layer))).then(
  (summary): Summary | undefined => {
    report()
    return summary
  },
  (error) => {
    fail(String(error))
    report()
    return undefined
  }
).then((summary) => {
  if (keep._tag !== "Delete") return lookAtIt(filename, summary)
  rmSync(dirname(filename), { recursive: true, force: true }) // the temp directory
  console.log("The database is deleted; `npm run demo -- --keep` keeps it and prints the gavel commands that look at it.")
})
