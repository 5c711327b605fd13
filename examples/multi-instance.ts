/**
 * Multi-instance: two gavel runtimes — two instances of the same payments
 * service, here in one script — share approvals and one audit trail on
 * Postgres. A transfer parked on instance A is approved through instance B
 * (the approvers' UI talks to whichever instance its load balancer picks);
 * B's database write announces the resolution with NOTIFY, and the call
 * parked on A wakes at once and runs its work exactly once, on A.
 *
 * 1. Wiring: each instance is `Governance.layer` over `Postgres.layer` (its
 *    own connection pool, as a separate process would have), on one schema.
 * 2. A parks a 25,000 EUR transfer; B lists the pending approval and
 *    approves it; A's call resumes (notified, well before its 30 s poll).
 * 3. B tries to approve the same approval again: `AlreadyResolved`.
 * 4. The shared trail verifies; the events of both instances are in one chain.
 *
 * Needs a database: GAVEL_DATABASE_URL (e.g. `scripts/postgres.sh start`,
 * then `export GAVEL_DATABASE_URL=$(scripts/postgres.sh url)`). Without it
 * the example says so and exits with 0. It works in a schema of its own,
 * dropped at the end.
 *
 * Run it from the repository root:
 *
 *   GAVEL_DATABASE_URL=postgresql://… npx tsx examples/multi-instance.ts
 */
import * as Postgres from "@gavel/adapters/Postgres"
import { Action, ApprovalStore, Audit, AuditSink, Decision, Governance, Identity, Policy, PolicySet } from "@gavel/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { check, fail, report } from "./support/checks.js"

const url = process.env.GAVEL_DATABASE_URL
if (url === undefined || url === "") {
  console.log("multi-instance: skipped — set GAVEL_DATABASE_URL to a Postgres database to run it")
  console.log("  (scripts/postgres.sh start && export GAVEL_DATABASE_URL=$(scripts/postgres.sh url))")
  process.exit(0)
}

// -----------------------------------------------------------------------------
// 1. wiring
// -----------------------------------------------------------------------------

const IdentityLive = Identity.layerDirectory([
  { id: "agent-7", roles: [], tenant: "acme", status: "active" },
  { id: "alice", roles: ["finance"], tenant: "acme", status: "active" }
])

const payments = PolicySet.unsafeMake({
  id: "payments",
  version: "1",
  policy: Policy.make("payments.large", (action) =>
    Decision.requireApproval(
      { code: "payment.large", message: `Transfers need a finance approver (${action.name})` },
      { quorum: 1, roles: ["finance"], timeout: "10 minutes" }
    ))
})

// A schema of its own, so the example never touches anything else in the database.
const schema = `example_${process.pid}`

/** One instance of the service: the runtime over its own pool. Polling is the slow fallback here. */
const instance = Governance.layer({ policySet: payments, pollInterval: "30 seconds" }).pipe(
  Layer.provideMerge(Postgres.layer({ url, schema, poolSize: 2 })),
  Layer.provide(IdentityLive)
)

const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], tenant: "acme", attributes: {} })
const transfer = Action.make({
  actor: { id: "agent-7", kind: "agent", roles: [], tenant: "acme", attributes: {} },
  kind: "tool",
  name: "payments.transfer",
  payload: { amount: 25_000, currency: "EUR", to: "DE89 3704 0044 0532 0130 00" }
})

const program = Effect.gen(function*() {
  console.log(`1. Two instances on one Postgres schema ("${schema}")\n`)
  const a = yield* Layer.build(instance)
  const b = yield* Layer.build(instance)
  const onA = <X, E>(effect: Effect.Effect<X, E, Governance.Governance | ApprovalStore.ApprovalStore>) =>
    Effect.provide(effect, a)
  const onB = <X, E>(
    effect: Effect.Effect<X, E, Governance.Governance | ApprovalStore.ApprovalStore | AuditSink.AuditSink>
  ) => Effect.provide(effect, b)

  // ---------------------------------------------------------------------------
  // 2. parked on A, approved through B
  // ---------------------------------------------------------------------------

  console.log("2. Instance A parks a 25,000 EUR transfer; instance B approves it")
  const ranOn = yield* Deferred.make<string>()
  let runs = 0
  const parked = yield* Effect.fork(onA(Effect.flatMap(Governance.Governance, (governance) =>
    governance.enforce(transfer, () =>
      Effect.sync(() => runs++).pipe(
        Effect.zipRight(Deferred.succeed(ranOn, "A")),
        Effect.as({ reference: "TX-1" })
      )))))

  // What an approver's inbox, served by B, shows.
  const pending = yield* onB(Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.listPending())).pipe(
    Effect.flatMap((list) => Option.fromNullable(list[0])),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds")))
  )
  console.log(`   pending on B: ${pending.id} (requested by ${pending.requester})`)
  yield* onB(Effect.flatMap(Governance.Governance, (governance) => governance.approve(pending.id, human("alice"))))
  const approvedAt = yield* Clock.currentTimeMillis
  const where = yield* Deferred.await(ranOn)
  const latency = (yield* Clock.currentTimeMillis) - approvedAt
  const receipt = yield* Fiber.join(parked)
  console.log(`   approved on B; the work ran on ${where} ${latency} ms later: ${receipt.reference}`)
  check("the work ran on the instance that parked it", where === "A", `ran on ${where}`)
  check("the work ran once", runs === 1, `${runs} runs`)
  check("woken by the notification, not the 30 s poll", latency < 5_000, `${latency} ms`)

  // ---------------------------------------------------------------------------
  // 3. a second approval of the same request
  // ---------------------------------------------------------------------------

  console.log("\n3. B approves the same request again")
  const again = yield* onB(
    Effect.flip(Effect.flatMap(Governance.Governance, (governance) => governance.approve(pending.id, human("alice"))))
  )
  console.log(`   ${again._tag}`)
  check("a resolved approval cannot be approved again", again._tag === "AlreadyResolved", again._tag)

  // ---------------------------------------------------------------------------
  // 4. one trail
  // ---------------------------------------------------------------------------

  console.log("\n4. The shared audit trail")
  const trail = yield* onB(Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read()))
  for (const event of trail) console.log(`   #${event.sequence} ${event.type}`)
  const verification = Audit.verify(trail)
  console.log(`   verify: ${verification._tag}`)
  check("the trail verifies", verification._tag === "Intact", JSON.stringify(verification))

  yield* Effect.provide(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`)),
    b
  )
})

Effect.runPromise(Effect.scoped(program)).then(report, (error: unknown) => {
  fail(String(error))
  report()
})
