/**
 * An audit trail in a JSON-lines file, and the anchor that catches a trail
 * cut short (docs/audit.md: "Wiring a sink" and "Verifying").
 *
 * 1. Wiring: `Governance.layer` over the in-memory `ApprovalStore` and
 *    `AuditFile.layer`, which appends each event to a file in a temp
 *    directory as one line of JSON, fsync'd before the append returns.
 * 2. Three tool calls: `files.read` runs, `shell.exec` is denied, a second
 *    `files.read` runs. The file is read back with `AuditFile.readFile`, one
 *    event per line, and `Audit.verify` says it is intact; its head (the
 *    last sequence number and hash) is kept, as a host would keep it
 *    somewhere the writer cannot change.
 * 3. Someone deletes the last three lines, hiding the last call. Without an
 *    anchor the shorter trail still verifies (a chain cannot tell a cut tail
 *    from a trail that was never longer); with the head kept in step 2 as its
 *    anchor, `verify` says it is truncated.
 *
 * The program checks what it prints: a wrong outcome is reported on stderr and
 * the process exits with code 1.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/audit-file.ts
 */
import * as AuditFile from "@gavel/adapters/AuditFile"
import { Action, ApprovalStore, Audit, Decision, Governance, Identity, Policy, PolicySet } from "@gavel/core"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { check, fail, list, report, sameList } from "./support/checks.js"

// -----------------------------------------------------------------------------
// 1. wiring
// -----------------------------------------------------------------------------

const tools = PolicySet.unsafeMake({
  id: "tools",
  version: "1",
  policy: Policy.make("tools.no-shell", (action) =>
    action.name === "shell.exec"
      ? Decision.deny({ code: "tool.blocked", message: "Agents may not run shell commands" })
      : Decision.allow())
})

const IdentityLive = Identity.layerDirectory([{ id: "agent-7", roles: ["operator"], status: "active" }], {
  canApprove: () => false
})

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-audit-file-"))
const file = path.join(dir, "audit.jsonl")

// As in docs/audit.md: the approvals in memory, the trail in a file.
const GovernanceLive = Governance.layer({ policySet: tools }).pipe(
  Layer.provide(ApprovalStore.layerMemory),
  Layer.provide(AuditFile.layer({ path: file }).pipe(Layer.provide(NodeFileSystem.layer))),
  Layer.provide(IdentityLive)
)

// -----------------------------------------------------------------------------
// 2. three tool calls, and the file they leave
// -----------------------------------------------------------------------------

const call = (name: string) =>
  Action.make({ actor: { id: "agent-7", kind: "agent", roles: ["operator"] }, kind: "tool", name })

const calls = Effect.gen(function*() {
  const governance = yield* Governance.Governance
  for (const name of ["files.read", "shell.exec", "files.read"]) {
    const outcome = yield* governance.enforce(call(name), () => Effect.void).pipe(
      Effect.as("ran"),
      Effect.catchTag("Denied", (denied) => Effect.succeed(`denied (${denied.record.reasonCodes.join(", ")})`))
    )
    console.log(`agent-7 ${name} → ${outcome}`)
  }
}).pipe(Effect.provide(GovernanceLive))

const readTrail = AuditFile.readFile(file).pipe(Effect.provide(NodeFileSystem.layer))

const main = Effect.gen(function*() {
  yield* calls

  const events = yield* readTrail
  const lines = fs.readFileSync(file, "utf8").split("\n").filter((line) => line !== "")
  console.log(`\n${path.basename(file)}: ${lines.length} lines, one event each`)
  for (const event of events) console.log(`  #${event.sequence} ${event.type}`)
  check("one line per event", lines.length === events.length, `${lines.length} lines, ${events.length} events`)
  check(
    "the trail of the three calls",
    sameList(events.map((e) => e.type), [
      "decision.evaluated", "execution.started", "execution.succeeded", // files.read
      "decision.evaluated", // shell.exec, denied: nothing runs
      "decision.evaluated", "execution.started", "execution.succeeded" // files.read
    ]),
    list(events.map((e) => e.type))
  )

  const intact = Audit.verify(events)
  const head = intact._tag === "Intact" ? intact.head : null
  console.log(`verify → ${intact._tag}${head === null ? "" : `, head ${head.sequence}:${head.hash.slice(0, 16)}…`}`)
  check("the file verifies", intact._tag === "Intact" && head !== null, intact._tag)
  if (head === null) return

  // ---------------------------------------------------------------------------
  // 3. the tail cut off
  // ---------------------------------------------------------------------------

  fs.writeFileSync(file, lines.slice(0, -3).map((line) => line + "\n").join(""))
  const cut = yield* readTrail
  console.log(`\nthe last 3 lines deleted: ${cut.length} events left`)

  const alone = Audit.verify(cut)
  console.log(`verify → ${alone._tag} (nothing says a tail is missing)`)
  check("without an anchor the cut trail verifies", alone._tag === "Intact", alone._tag)

  const anchored = Audit.verify(cut, { anchor: head })
  console.log(`verify with the anchor → ${anchored._tag}${anchored._tag === "Broken" ? `: ${anchored.message}` : ""}`)
  check("with the anchor it is truncated", anchored._tag === "Broken" && anchored.problem === "truncated", anchored._tag)
})

Effect.runPromise(main).then(report, (error) => {
  fail(String(error))
  report()
}).finally(() => fs.rmSync(dir, { recursive: true, force: true }))
