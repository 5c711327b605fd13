/**
 * A rules document, loaded and used (docs/rules.md: "Loading" and
 * "Explaining a decision").
 *
 * 1. `RulesFile.load` reads examples/rules/agent-tools.yaml (the demo's
 *    rules) and checks it as a whole.
 * 2. `Rules.policySet` makes it a policy set, evaluated with
 *    `PolicySet.evaluateSync` like any other: a file read is allowed, a
 *    shell denied, a 25,000 EUR transfer requires two approvers, a 500 EUR
 *    one is allowed, and a tool no rule mentions gets the document's default.
 * 3. Rules compose with code: `Policy.all([rules.policy, sanctions])` adds a
 *    code policy that denies transfers to a blocked account, which the 500
 *    EUR transfer now is.
 * 4. `Rules.explain` says which rules matched the large transfer and which
 *    one decided.
 * 5. A document with two problems is refused as a whole, each problem named
 *    with its rule, path, line and column.
 *
 * The program checks what it prints: a wrong outcome is reported on stderr and
 * the process exits with code 1.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/rules-document.ts
 */
import * as RulesFile from "@gavel/adapters/RulesFile"
import { Action, Decision, Policy, PolicySet, Rules } from "@gavel/core"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import { check, fail, list, report, sameList } from "./support/checks.js"

const agent = { id: "agent-7", kind: "agent" as const, roles: ["deployer", "finance"], tenant: "acme" }
const call = (name: string, payload?: unknown) => Action.make({ actor: agent, kind: "tool", name, payload })

const show = (label: string, record: { readonly decision: Decision.Decision; readonly reasonCodes: ReadonlyArray<string> }) => {
  const codes = record.reasonCodes.length === 0 ? "" : ` (${record.reasonCodes.join(", ")})`
  console.log(`  ${label} → ${record.decision._tag}${codes}`)
  return record.decision._tag
}

const main = Effect.gen(function*() {
  // 1. loading
  const rules = yield* RulesFile.load("examples/rules/agent-tools.yaml")
  console.log(`loaded ${rules.id} ${rules.version}: ${rules.document.rules.length} rules, ${rules.combine}`)

  // 2. the document as a policy set
  const set = Rules.policySet(rules)
  const large = call("payments.transfer", { amount: 25_000, to: "DE89" })
  const small = call("payments.transfer", { amount: 500, to: "XX00-blocked" })
  const expected: ReadonlyArray<readonly [string, Action.Action, string]> = [
    ["files.read", call("files.read", { path: "/reports/q3.pdf" }), "Allow"],
    ["shell.exec", call("shell.exec", { cmd: "ls" }), "Deny"],
    ["payments.transfer 25,000", large, "RequireApproval"],
    ["payments.transfer 500", small, "Allow"],
    ["mail.send (no rule)", call("mail.send"), "Deny"]
  ]
  console.log("\nthe document alone:")
  for (const [label, action, tag] of expected) {
    const got = show(label, PolicySet.evaluateSync(set, action))
    check(label, got === tag, got)
  }

  // 3. composed with a code policy
  const sanctions = Policy.make("payments.sanctions", (action) =>
    action.name === "payments.transfer" && String((action.payload as { to?: string } | undefined)?.to).endsWith("-blocked")
      ? Decision.deny({ code: "payment.sanctioned", message: "The receiving account is blocked" })
      : Decision.notApplicable)
  const mixed = PolicySet.unsafeMake({ id: "agent-tools-with-code", version: rules.version, policy: Policy.all([rules.policy, sanctions]) })
  console.log("\nwith a code policy:")
  const composed = show("payments.transfer 500", PolicySet.evaluateSync(mixed, small))
  check("the code policy denies", composed === "Deny", composed)

  // 4. explain
  const explanation = Rules.explain(rules, large)
  console.log(`\nexplain payments.transfer 25,000:`)
  console.log(`  matched ${list(explanation.matched.map((m) => `${m.ruleId}: ${m.result._tag}`))}`)
  console.log(`  decided by ${list(explanation.decidedBy)}`)
  check("both payment rules match", sameList(explanation.matched.map((m) => m.ruleId), ["large-payment", "small-payment"]), "")
  check("the first one decides", sameList(explanation.decidedBy, ["large-payment"]), list(explanation.decidedBy))

  // 5. a bad document
  const broken = [
    "id: broken",
    'version: "1"',
    "combine: first-applicable",
    "rules:",
    "  - id: a",
    "    effect: permit",
    "  - id: a",
    "    effect: allow"
  ].join("\n")
  const refused = yield* Effect.flip(RulesFile.parseYaml(broken, { source: "broken.yaml" }))
  console.log(`\n${refused.message}`)
  check("two problems", refused.problems.length === 2, `${refused.problems.length}`)
})

Effect.runPromise(main.pipe(Effect.provide(NodeContext.layer))).then(report, (error) => {
  fail(String(error))
  report()
})
