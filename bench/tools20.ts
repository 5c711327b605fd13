/**
 * The "tools-20" reference workload of BENCHMARKS.md, shared by every row of
 * the benchmark so that all systems decide the same 1,000 requests.
 */
import { Action, Decision, Policy, PolicySet, Rules } from "@gavel/core"
import * as Effect from "effect/Effect"

export const TOOLS = 20
export const REQUESTS = 1000

export interface Request {
  readonly agent: string
  readonly role: "admin" | "operator"
  readonly tool: number
  readonly amount: number
}

export const requests: ReadonlyArray<Request> = Array.from({ length: REQUESTS }, (_, j) => ({
  agent: `agent${j % 50}`,
  role: j % 3 === 0 ? "admin" : "operator",
  tool: j % TOOLS,
  amount: (j * 37) % 2000
}))

/** The reference decisions, straight from the workload's definition. */
export const reference = (r: Request): boolean => {
  if (r.amount > 1000 + r.tool) return false
  if (r.role === "admin") return true
  return r.tool % 2 === 0 ? r.role === "operator" : false
}

export const expected: ReadonlyArray<boolean> = requests.map(reference)

export const actions: ReadonlyArray<Action.Action> = requests.map((r) =>
  Action.make({
    actor: { id: r.agent, kind: "agent", roles: [r.role] },
    kind: "tool",
    name: `tool${r.tool}`,
    payload: { amount: r.amount },
    metadata: {}
  })
)

interface PlainRule {
  readonly name: string
  readonly limit: number
  readonly role: string
}

const plainRules: ReadonlyArray<PlainRule> = Array.from({ length: TOOLS }, (_, i) => ({
  name: `tool${i}`,
  limit: 1000 + i,
  role: i % 2 === 0 ? "operator" : "admin"
}))

/**
 * The floor: a hand-written loop over the 20 rules, reading the same Action
 * objects gavel reads. Deny wins; no applicable allow is a deny.
 */
export const plainLoop = (action: Action.Action): boolean => {
  let allowed = false
  const amount = amountOf(action)
  const roles = action.actor.roles
  for (let i = 0; i < plainRules.length; i++) {
    const rule = plainRules[i]!
    if (rule.name !== action.name) continue
    if (amount > rule.limit) return false
    if (roles.includes(rule.role) || roles.includes("admin")) allowed = true
  }
  return allowed
}

const amountOf = (action: Action.Action): number => (action.payload as { amount: number }).amount

/**
 * What rule i decides for an action of tool i: it denies an amount over
 * 1000 + i, allows the tool's role or an admin, and abstains otherwise (so
 * the default, Deny, decides).
 */
const decideTool = (i: number): (action: Action.Action) => Decision.Result => {
  const limit = 1000 + i
  const role = i % 2 === 0 ? "operator" : "admin"
  const overLimit = Decision.deny({ code: "amount.exceeded", message: `Amount over ${limit} on tool${i}` })
  return (action) => {
    if (amountOf(action) > limit) return overLimit
    const roles = action.actor.roles
    return roles.includes(role) || roles.includes("admin") ? Decision.allow() : Decision.notApplicable
  }
}

/** Rule i, written as a gavel policy that tests the tool name itself and abstains for any other tool. */
export const rule = (i: number): Policy.Sync => {
  const name = `tool${i}`
  const decide = decideTool(i)
  return Policy.make(`tools20.${name}`, (action) => action.name !== name ? Decision.notApplicable : decide(action))
}

export const policy = Policy.all(Array.from({ length: TOOLS }, (_, i) => rule(i)), { id: "tools20" })

export const makeSet = (explain: PolicySet.ExplainMode): PolicySet.Sync =>
  PolicySet.unsafeMake({ id: "tools-20", version: "1", policy, explain })

/**
 * Rule i again, its tool declared with `Policy.forAction` instead of tested
 * inside: `Policy.all` then evaluates, for each action, only the rule of its
 * tool (the same decision and trail, see `Policy.forAction`).
 */
export const scopedRule = (i: number): Policy.Sync =>
  Policy.make(`tools20.tool${i}`, decideTool(i)).pipe(Policy.forAction(`tool${i}`))

export const scopedPolicy = Policy.all(Array.from({ length: TOOLS }, (_, i) => scopedRule(i)), { id: "tools20" })

export const makeScopedSet = (explain: PolicySet.ExplainMode): PolicySet.Sync =>
  PolicySet.unsafeMake({ id: "tools-20-scoped", version: "1", policy: scopedPolicy, explain })

/**
 * The same 20 rules as a declarative rules document (row 3 of BENCHMARKS.md):
 * per tool, a deny rule on the amount and an allow rule on the roles,
 * combined deny-wins, with a default deny.
 */
export const rulesDocument = {
  id: "tools-20",
  version: "1",
  combine: "deny-wins",
  default: "deny",
  rules: Array.from({ length: TOOLS }, (_, i) => [
    {
      id: `tool${i}-amount`,
      match: { name: `tool${i}` },
      when: { field: "payload.amount", gt: 1000 + i },
      effect: "deny",
      reason: { code: "amount.exceeded", message: `Amount over ${1000 + i} on tool${i}` }
    },
    {
      id: `tool${i}-roles`,
      match: { name: `tool${i}`, roles: i % 2 === 0 ? ["operator", "admin"] : ["admin"] },
      effect: "allow"
    }
  ]).flat()
}

export const rules = Effect.runSync(Rules.decode(rulesDocument))

export const makeRulesSet = (explain: PolicySet.ExplainMode): PolicySet.Sync => Rules.policySet(rules, { explain })
