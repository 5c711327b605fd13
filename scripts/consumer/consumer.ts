/**
 * The consumer smoke test's TypeScript file (scripts/consumer-test.sh): a
 * project that installed the packed packages type-checks it with `tsc
 * --noEmit` under each scripts/consumer/tsconfig.*.json, most of them with
 * `skipLibCheck: false`, so that the published `.d.ts` files themselves
 * compile under the consumer's settings. It imports every public module of
 * the three packages (the vitest suites of @gavel/testing aside) and uses
 * the common ones the way the docs do. It is never run.
 */
import * as A2a from "@gavel/adapters/A2a"
import * as AuditFile from "@gavel/adapters/AuditFile"
import * as Cli from "@gavel/adapters/Cli"
import * as Http from "@gavel/adapters/Http"
import * as HttpCheck from "@gavel/adapters/HttpCheck"
import * as Jwt from "@gavel/adapters/Jwt"
import * as Postgres from "@gavel/adapters/Postgres"
import * as RulesFile from "@gavel/adapters/RulesFile"
import * as Sqlite from "@gavel/adapters/Sqlite"
import {
  Action,
  type Approval,
  type ApprovalStore,
  type AuditSink,
  Decision,
  type DecisionRecord,
  Governance,
  type Identity,
  Policy,
  PolicySet,
  type Redaction,
  Rules
} from "@gavel/core"
import * as Core from "@gavel/core"
import * as CoreRules from "@gavel/core/Rules"
import { Approvals, Arbitraries, CallLog, Fakes, Fixtures } from "@gavel/testing"
import * as Testing from "@gavel/testing"
import * as NodeContext from "@effect/platform-node/NodeContext"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"

// A policy in code, a set, and the runtime on SQLite with the fakes of @gavel/testing.
const largeTransfers: Policy.Sync = Policy.make("payments.large-transfers", (action) => {
  if (action.name !== "payments.transfer") return Decision.notApplicable
  const amount = (action.payload as { readonly amount?: number } | undefined)?.amount ?? 0
  return amount <= 10_000
    ? Decision.allow()
    : Decision.requireApproval(
      { code: "payment.large", message: "Transfers over 10,000 EUR need a finance approver" },
      { quorum: 1, roles: ["finance"], separationOfDuties: true, timeout: "30 minutes" }
    )
})
const payments = PolicySet.unsafeMake({ id: "payments", version: "1", policy: largeTransfers })

export const GovernanceLive: Layer.Layer<
  Governance.Governance | ApprovalStore.ApprovalStore | AuditSink.AuditSink,
  Sqlite.SqliteOpenError | Governance.InvalidOption | Redaction.InvalidRedaction | ConfigError.ConfigError
> = Governance.layer({ policySet: payments, sweepInterval: "1 second" }).pipe(
  Layer.provideMerge(Sqlite.layer({ filename: "consumer.db", synchronous: "NORMAL" })),
  Layer.provide(Fakes.identity({ principals: { alice: { roles: ["finance"], tenant: "acme" } } })),
  Layer.provide(CallLog.layer)
)

const transfer: Action.Action = Action.make({
  actor: { id: "agent-7", kind: "agent", tenant: "acme" },
  kind: "tool",
  name: "payments.transfer",
  payload: { amount: 25_000, currency: "EUR" }
})

export const story: Effect.Effect<string, unknown, Governance.Governance | ApprovalStore.ApprovalStore> = Effect.gen(
  function*() {
    const governance = yield* Governance.Governance
    const record: DecisionRecord.DecisionRecord = yield* governance.evaluate(transfer)
    const parked = yield* Effect.fork(governance.enforce(transfer, (action) => Effect.succeed(action.name)))
    const pending: Approval.ApprovalRequest = yield* Approvals.awaitPending()
    const alice: Action.Principal = { id: "alice", kind: "human", roles: [], attributes: {} }
    const approved = yield* governance.approve(pending.id, alice, "ok")
    const name = yield* Fiber.join(parked)
    return `${record.decision._tag} ${approved.status} ${name}`
  }
)

// Rules: a document as a value, as JSON text and as a file.
export const fromValue = Rules.decode({
  id: "consumer",
  version: "1",
  combine: "first-applicable",
  rules: [{ id: "shell-blocked", match: { name: "shell.*" }, effect: "deny" }]
})
export const fromJson: Effect.Effect<Rules.Rules, Rules.InvalidRules> = CoreRules.parseJson("{}", { source: "inline" })
export const fromFile: Effect.Effect<
  PolicySet.Sync,
  Rules.InvalidRules | RulesFile.RulesFileError
> = RulesFile.load("rules.yaml").pipe(Effect.map((rules) => Rules.policySet(rules)), Effect.provide(NodeContext.layer))
export const problemLine = (problem: Rules.Problem): string => Rules.formatProblem(problem)

// The CLI, HTTP, JWT, A2A, Postgres, audit file and HTTP check adapters: their entry points' types.
export const cli: Effect.Effect<Cli.ExitCode> = Cli.run(["audit", "verify", "--db", "consumer.db"]).pipe(
  Effect.provide(NodeContext.layer)
)
export const exitCodes: typeof Cli.ExitCode = Cli.ExitCode
export const jwt: (options: Jwt.Options) => Effect.Effect<Jwt.Verifier, Jwt.InvalidOptions> = Jwt.make
export const http: typeof Http.enforcement = Http.enforcement
export const httpLayerJwt: typeof Http.layerJwt = Http.layerJwt
export const a2a: typeof A2a.wrap = A2a.wrap
export const a2aGuard: typeof A2a.guard = A2a.guard
export const a2aAction: (input: A2a.ActionInput) => Action.Action = A2a.defaultAction
export const postgres: typeof Postgres.layer = Postgres.layer
export const auditFile: typeof AuditFile.layer = AuditFile.layer
export const httpCheck: typeof HttpCheck.make = HttpCheck.make
export const sqliteVersion: number = Sqlite.schemaVersion

// @gavel/testing: fixtures and arbitraries.
export const request: Approval.ApprovalRequest = Fixtures.request({ id: "apr_1", quorum: 2 })
export const actions: ReadonlyArray<Action.Action> = FastCheck.sample(Arbitraries.action, 3)
export const fakes: Layer.Layer<Identity.Identity | CallLog.CallLog> = Fakes.layer({})
export const namespaces = [Core, Testing] as const
