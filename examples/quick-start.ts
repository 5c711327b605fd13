/**
 * Quick start: the README's first program.
 *
 * Two sync policies in a versioned set, evaluated as plain function calls into
 * a full decision record. Run with:
 *
 *   npx tsx examples/quick-start.ts
 */
import { Action, Decision, Policy, PolicySet } from "@gavel/core"

// Policies are values. A sync leaf is a pure function of the action.
const noShell = Policy.make("tools.no-shell", (action) =>
  action.name === "shell.exec"
    ? Decision.deny({ code: "tool.blocked", message: "shell.exec is never allowed" })
    : Decision.notApplicable
)
const operators = Policy.make("tools.operators", (action) =>
  action.actor.roles.includes("operator") ? Decision.allow() : Decision.notApplicable
)

// A versioned set: the policy tree and the default (Deny unless you say otherwise).
const tools = PolicySet.unsafeMake({ id: "tools", version: "1", policy: Policy.all([noShell, operators]) })

const record = PolicySet.evaluateSync(tools, Action.make({
  actor: { id: "agent-7", kind: "agent", roles: ["operator"] },
  kind: "tool",
  name: "shell.exec"
}))
console.log(record.decision._tag, record.reasonCodes) // Deny [ 'tool.blocked' ]: the more restrictive result wins

const search = PolicySet.evaluateSync(tools, Action.make({
  actor: { id: "agent-7", kind: "agent", roles: ["operator"] },
  kind: "tool",
  name: "search"
}))
console.log(search.decision._tag, search.reasonCodes) // Allow []

const stranger = PolicySet.evaluateSync(tools, Action.make({
  actor: { id: "visitor", kind: "human" },
  kind: "tool",
  name: "search"
}))
console.log(stranger.decision._tag, stranger.reasonCodes) // Deny [ 'policy.no_applicable' ]

if (record.decision._tag !== "Deny" || search.decision._tag !== "Allow" || !stranger.defaulted) {
  console.error("quick start: unexpected decisions")
  process.exitCode = 1
}
