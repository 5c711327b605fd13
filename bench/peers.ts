/**
 * The two peers of the tools-20 row (rows 4 and 5 of ../shared/BENCHMARKS.md):
 * casbin and Cedar, each deciding the same 1,000 requests as the plain-JS
 * floor. Each peer is built once, outside the timed loop, and every request's
 * arguments are precomputed, so that what is timed per decision is the peer's
 * own entry point and nothing else: `enforceSync` for casbin,
 * `statefulIsAuthorized` for Cedar.
 *
 * casbin: one model (request `sub, role, obj, amount`; policy
 * `role, obj, limit, eft`; the deny-override effect) and 40 policy lines, both
 * read from strings. Per tool, an `allow` line carries the tool's role and a
 * `deny` line its limit; the one matcher tells them apart by `p.eft`:
 *
 *     r.obj == p.obj && (p.eft == "allow" && (r.role == p.role || r.role == "admin")
 *       || p.eft == "deny" && r.amount > +p.limit)
 *
 * The amount is passed as a number and the limit, a CSV field and so a string,
 * is converted with unary `+`, so the comparison is numeric and the rules are
 * expressed exactly. `*` marks a field a line does not use. casbin walks all
 * 40 lines for every request (stopping early only on a deny), building a
 * fresh parameter object per line and interpreting the matcher's AST.
 *
 * Cedar: the 40 policies (a `permit` on the role and a `forbid` on the amount
 * per tool) are parsed once into the wasm module's cache with
 * `preparsePolicySet`. The agent is the principal, the tool the resource,
 * `Action::"call"` the action; role and amount travel in the context, with no
 * entities. Each call still crosses the wasm boundary as JSON both ways: the
 * request object (principal, action, resource, context) is serialized in and
 * the answer (decision and diagnostics) deserialized out. A failed call or a
 * policy that errored during evaluation (which Cedar would otherwise count as
 * not applying) throws rather than pass for a deny.
 */
import { newEnforcer, newModelFromString, StringAdapter } from "casbin"
import * as Cedar from "@cedar-policy/cedar-wasm/nodejs"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { requests, TOOLS } from "./tools20.js"

/** A peer system of the tools-20 row, ready to be checked and timed like the others. */
export interface PeerSystem {
  /** The row's name, with the peer's installed version. */
  readonly name: string
  /** Request index (0…999 of `requests`) to allow (`true`) or deny. */
  readonly decide: (i: number) => boolean
  /** `true` when the system expresses the workload exactly; otherwise what differs, in one sentence. */
  readonly equivalent: true | string
}

const require = createRequire(import.meta.url)

/** The version in the package's own package.json, found from its resolved entry point. */
const packageVersion = (pkg: string, entry: string): string => {
  let dir = Path.dirname(require.resolve(entry))
  for (;;) {
    const file = Path.join(dir, "package.json")
    if (Fs.existsSync(file)) {
      const json = JSON.parse(Fs.readFileSync(file, "utf8")) as { name?: string; version?: string }
      if (json.name === pkg && json.version !== undefined) return json.version
    }
    const parent = Path.dirname(dir)
    if (parent === dir) throw new Error(`No package.json for ${pkg} above ${entry}`)
    dir = parent
  }
}

const tools = Array.from({ length: TOOLS }, (_, i) => ({
  name: `tool${i}`,
  limit: 1000 + i,
  role: i % 2 === 0 ? "operator" : "admin"
}))

// casbin ---------------------------------------------------------------------

const casbinModel = `
[request_definition]
r = sub, role, obj, amount

[policy_definition]
p = role, obj, limit, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.obj == p.obj && (p.eft == "allow" && (r.role == p.role || r.role == "admin") || p.eft == "deny" && r.amount > +p.limit)
`

const casbinPolicy = tools
  .flatMap((tool) => [`p, ${tool.role}, ${tool.name}, *, allow`, `p, *, ${tool.name}, ${tool.limit}, deny`])
  .join("\n")

/** casbin's arguments per request: sub, role, obj, amount (a number, compared numerically). */
const casbinCalls: ReadonlyArray<readonly [string, string, string, number]> = requests.map((r) => [
  r.agent,
  r.role,
  `tool${r.tool}`,
  r.amount
])

/**
 * casbin, one enforcer built from in-memory model and policy text, one
 * `enforceSync` per decision.
 */
export const makeCasbin = async (): Promise<PeerSystem> => {
  const enforcer = await newEnforcer(newModelFromString(casbinModel), new StringAdapter(casbinPolicy))
  const count = (await enforcer.getPolicy()).length
  if (count !== 2 * TOOLS) throw new Error(`casbin loaded ${count} policy lines, expected ${2 * TOOLS}`)
  return {
    name: `casbin ${packageVersion("casbin", "casbin")} enforceSync, deny-override`,
    decide: (i) => enforcer.enforceSync(...casbinCalls[i]!),
    equivalent: true
  }
}

// Cedar ----------------------------------------------------------------------

const cedarPolicySetId = "tools-20"

const cedarPolicies = tools
  .map((tool) => {
    const roles = tool.role === "admin" ? `context.role == "admin"` : `context.role == "${tool.role}" || context.role == "admin"`
    const resource = `resource == Tool::"${tool.name}"`
    return [
      `permit (principal, action == Action::"call", ${resource}) when { ${roles} };`,
      `forbid (principal, action == Action::"call", ${resource}) when { context.amount > ${tool.limit} };`
    ].join("\n")
  })
  .join("\n\n")

const cedarCalls: ReadonlyArray<Cedar.StatefulAuthorizationCall> = requests.map((r) => ({
  principal: { type: "Agent", id: r.agent },
  action: { type: "Action", id: "call" },
  resource: { type: "Tool", id: `tool${r.tool}` },
  context: { role: r.role, amount: r.amount },
  entities: [],
  preparsedPolicySetId: cedarPolicySetId
}))

const messages = (errors: ReadonlyArray<Cedar.DetailedError>): string => errors.map((e) => e.message).join("; ")

const cedarDecision = (answer: Cedar.AuthorizationAnswer): boolean => {
  if (answer.type !== "success") throw new Error(`Cedar authorization failed: ${messages(answer.errors)}`)
  const { decision, diagnostics } = answer.response
  if (diagnostics.errors.length > 0) {
    const detail = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`).join("; ")
    throw new Error(`Cedar policies errored: ${detail}`)
  }
  return decision === "allow"
}

/**
 * Cedar through cedar-wasm's Node.js build: 40 policies parsed once, one
 * `statefulIsAuthorized` per decision.
 */
export const makeCedar = (): PeerSystem => {
  const parsed = Cedar.preparsePolicySet(cedarPolicySetId, { staticPolicies: cedarPolicies })
  if (parsed.type !== "success") throw new Error(`Cedar could not parse the tools-20 policies: ${messages(parsed.errors)}`)
  return {
    name: `cedar-wasm ${packageVersion("@cedar-policy/cedar-wasm", "@cedar-policy/cedar-wasm/nodejs")} statefulIsAuthorized`,
    decide: (i) => cedarDecision(Cedar.statefulIsAuthorized(cedarCalls[i]!)),
    equivalent: true
  }
}
