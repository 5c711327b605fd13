/**
 * Async external checks: a policy set that asks three external systems
 * concurrently, with an explicit meaning for every way they can fail.
 *
 * 1. The host's external systems become gavel ports by implementing them as
 *    Layers: an in-memory `Identity` directory and a `Ticketing` port over a
 *    (simulated) slow ticketing API whose errors become `ExternalCheckFailed`.
 * 2. A real compliance HTTP service (a `node:http` server started here, on a
 *    free port) asked with `HttpCheck.make` over `FetchHttpClient`.
 * 3. The policy set: `Policy.allConcurrent` over the three checks, with
 *    `Policy.timeout`, `Policy.onFailure`, `Policy.failClosed` and an overall
 *    `Policy.budget` — `PolicySet.unsafeMake` accepts no unhandled failure.
 * 4. Evaluations with `PolicySet.evaluate`, run at the host's edge with
 *    `Effect.runPromise`: allowed; denied by a compliance violation; a ticket in
 *    the wrong status; the compliance service hangs (fail closed after 300 ms);
 *    the ticketing system is too slow (defer); the caller cancels (no record,
 *    the HTTP request is aborted); the ticketing system is down (deny).
 *
 * The program checks what it prints: a wrong outcome is reported on stderr and
 * the process exits with code 1. It takes about a second of real time.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/async-external-checks.ts
 */
import * as HttpCheck from "@gavel/adapters/HttpCheck"
import {
  Action,
  Compliance,
  Decision,
  type DecisionRecord,
  IdGenerator,
  Identity,
  Policy,
  PolicyError,
  PolicySet,
  Ticketing
} from "@gavel/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as http from "node:http"
import { check, list, report, sameList } from "./support/checks.js"

// =============================================================================
// 1. External systems as ports (Layers)
// =============================================================================
//
// gavel's built-in checks (`Identity.requireRole`, `Ticketing.requireStatus`,
// …) only know the ports: Context tags with a small service interface. The
// host connects its real systems by providing a Layer for each tag. Tests
// swap these layers for `@gavel/testing`'s `Fakes.layer` (scripted answers,
// failures and hangs) and drive latency in virtual time with `TestClock`, so
// a 2-second timeout takes no real time.

/** The identity system: an in-memory directory here (LDAP, an IdP in production). */
const IdentityLive: Layer.Layer<Identity.Identity> = Identity.layerDirectory([
  { id: "deploy-bot", roles: ["deployer"], status: "active" },
  { id: "alice", roles: ["deployer", "release-manager"], status: "active" }
], { canApprove: (principal) => principal.roles.includes("release-manager") })

/** How the simulated ticketing API behaves; the cases below flip these. */
let ticketingLatency: Duration.DurationInput = "40 millis"
let ticketingDown = false

const tickets: ReadonlyMap<string, Ticketing.Ticket> = new Map([
  ["CHG-101", { id: "CHG-101", status: "approved", assignee: "alice" }],
  ["CHG-102", { id: "CHG-102", status: "in-review", assignee: "alice" }]
])

/** The ticketing vendor's client, with an error type of its own. */
class TicketingApiError extends Data.TaggedError("TicketingApiError")<{ readonly status: number }> {}

const ticketingApi = {
  getTicket: (id: string): Effect.Effect<Ticketing.Ticket | undefined, TicketingApiError> =>
    Effect.gen(function*() {
      yield* Effect.sleep(ticketingLatency)
      if (ticketingDown) return yield* new TicketingApiError({ status: 503 })
      return tickets.get(id)
    })
}

// The port's contract: `None` for a ticket that does not exist, and every
// failure of the external system as `ExternalCheckFailed` — the error the
// policy combinators know how to give a meaning to.
const TicketingLive: Layer.Layer<Ticketing.Ticketing> = Layer.succeed(
  Ticketing.Ticketing,
  Ticketing.Ticketing.of({
    lookup: (ticketId) =>
      ticketingApi.getTicket(ticketId).pipe(
        Effect.map(Option.fromNullable),
        Effect.mapError((error) =>
          new PolicyError.ExternalCheckFailed({
            system: "ticketing",
            operation: "lookup",
            detail: `HTTP ${error.status}`,
            cause: error
          })
        )
      )
  })
)

// =============================================================================
// 2. A real compliance HTTP service
// =============================================================================
//
// POST /verify answers {"compliant": boolean, "violations": [{code, message}]}:
// unsigned artifacts are not compliant. In "hang" mode it never answers, and
// records when the client gives up on the request.

let complianceMode: "answer" | "hang" = "answer"

/**
 * One entry per request received in "hang" mode: resolves with the time (ms
 * after arrival) at which the client closed the connection.
 *
 * Watched on the response: since Node 16, `req.on("close")` fires as soon as
 * the request body has been read, not when the client goes away.
 */
const hungRequests: Array<Promise<number>> = []

const server = http.createServer((req, res) => {
  const arrived = performance.now()
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    if (req.method !== "POST" || req.url !== "/verify") {
      res.writeHead(404).end()
      return
    }
    if (complianceMode === "hang") {
      hungRequests.push(
        new Promise((resolve) =>
          res.on("close", () => {
            if (!res.writableFinished) resolve(performance.now() - arrived)
          })
        )
      )
      return
    }
    const input = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { readonly artifact?: string }
    const violations = input.artifact?.endsWith("-unsigned") === true
      ? [{ code: "supply-chain.unsigned_artifact", message: `Artifact "${input.artifact}" is not signed` }]
      : []
    res.writeHead(200, { "content-type": "application/json" })
    res.end(JSON.stringify({ compliant: violations.length === 0, violations }))
  })
})

const listen = (): Promise<string> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      if (address === null || typeof address === "string") reject(new Error("no TCP address"))
      else resolve(`http://127.0.0.1:${address.port}/verify`)
    })
  })

const stopServer = (): Promise<void> =>
  new Promise((resolve) => {
    // Keep-alive connections (and a hung request) would keep `close` waiting.
    server.closeAllConnections()
    server.close(() => resolve())
  })

const complianceUrl = await listen()

// The HTTP check: the action is POSTed as JSON, the answer decoded with a
// schema. Every way the service fails to answer is a typed error:
// `ExternalCheckFailed` (unreachable, non-2xx, undecodable), `PolicyTimeout`
// (no answer within 300 ms; the request is aborted) or `PolicyCancelled`.
const ComplianceAnswer = Schema.Struct({
  compliant: Schema.Boolean,
  violations: Schema.Array(Compliance.Violation)
})

const complianceCheck = HttpCheck.make({
  id: "compliance.verify",
  system: "compliance-service",
  operation: "verify",
  url: complianceUrl,
  // Only what the service needs: the payload stays in the process.
  body: (action) => ({
    actor: action.actor.id,
    action: action.name,
    environment: action.metadata.environment,
    artifact: action.metadata.artifact
  }),
  response: ComplianceAnswer,
  // Compliance limits, it never grants: a compliant answer abstains.
  decide: ({ compliant, violations }) =>
    compliant
      ? Decision.notApplicable
      : Decision.deny(
        violations.length > 0 ? violations : { code: "compliance.non_compliant", message: "Not compliant" }
      ),
  timeout: "300 millis"
})

// =============================================================================
// 3. The policy set: every failure has a meaning
// =============================================================================
//
// Each check's error type lists how it can fail (`ExternalCheckFailed`,
// `PolicyCancelled`, and `PolicyTimeout` once a timeout applies).
// `PolicySet.unsafeMake` only accepts a policy whose error type is `never`, so
// the host must say what each failure means before the set can exist. This
// line does not compile — `requireRole` may fail with `ExternalCheckFailed |
// PolicyCancelled`, which is not assignable to `never`:
//
//   PolicySet.unsafeMake({ id: "deployments", version: "1", policy: Identity.requireRole("deployer") })

// The identity system is authoritative: if it cannot answer, deny.
const isDeployer = Identity.requireRole("deployer").pipe(Policy.failClosed)

// A slow ticketing system is not a reason to refuse: defer (ask again later).
// An outage, or a lookup aborted by something else, denies.
const hasApprovedTicket = Ticketing.requireStatus("approved").pipe(
  Policy.timeout("500 millis"),
  Policy.onFailure({ timeout: "Defer", unavailable: "Deny", cancelled: "Deny" })
)

// No compliance answer, no deployment: every failure denies.
const isCompliant = complianceCheck.pipe(Policy.failClosed)

const deployments = PolicySet.unsafeMake({
  id: "deployments",
  version: "2025.06",
  // The three checks run concurrently; the record lists them in declaration
  // order whatever order they complete in. The budget caps each check at what
  // remains of one second when it starts. `budget` adds `PolicyTimeout` to the
  // error type (a check with no handler of its own would fail with it), so
  // the whole tree is closed once more; here every check already handles its
  // timeouts, and that outer `failClosed` never fires.
  policy: Policy.allConcurrent([isDeployer, hasApprovedTicket, isCompliant], { id: "deploy.checks" }).pipe(
    Policy.budget("1 second"),
    Policy.failClosed
  )
})

// The host's edge: one layer for every port (plus the HTTP client the check
// needs and sequential decision ids for readable output), an audit log, and
// `Effect.runPromise` — the way a host not written with Effect calls gavel.
const HostLive = Layer.mergeAll(
  IdentityLive,
  TicketingLive,
  FetchHttpClient.layer,
  IdGenerator.layer(IdGenerator.sequential())
)

const auditLog: Array<DecisionRecord.DecisionRecord> = []

const decide = (action: Action.Action): Effect.Effect<DecisionRecord.DecisionRecord> =>
  PolicySet.evaluate(deployments, action).pipe(
    Effect.tap((record) => Effect.sync(() => auditLog.push(record))),
    Effect.provide(HostLive)
  )

// -----------------------------------------------------------------------------
// printing and checking
// -----------------------------------------------------------------------------

const ms = (millis: number): string => `${Math.round(millis)} ms`

/** A release of `artifact` to production by `actor`, under change ticket `ticket`. */
const deploy = (ticket: string, artifact: string, actor = "deploy-bot"): Action.Action =>
  Action.make({
    actor: { id: actor, kind: "service", roles: ["deployer"] },
    kind: "deploy",
    name: "release.deploy",
    resource: { type: "service", id: "web" },
    metadata: { ticket, artifact, environment: "prod" }
  })

/**
 * Evaluates one action, prints the decision, its reason codes, the real time
 * it took and the explain trail, and checks the tag and the reason codes.
 */
const run = async (
  label: string,
  action: Action.Action,
  expected: { readonly tag: Decision.Outcome; readonly codes: ReadonlyArray<string> }
): Promise<{ readonly record: DecisionRecord.DecisionRecord; readonly elapsed: number }> => {
  const started = performance.now()
  const record = await Effect.runPromise(decide(action))
  const elapsed = performance.now() - started
  console.log(`\n${label}`)
  console.log(`    ${record.decisionId}  ${record.decision._tag} ${list(record.reasonCodes)} after ${ms(elapsed)}`)
  for (const entry of record.explain) {
    // Sync policies are untimed by default (null); a failure turned into a
    // decision is timed from the start of the check to the failure.
    const duration = entry.durationMillis === null ? "-" : `${entry.durationMillis.toFixed(1)} ms`
    console.log(`      ${entry.policyId.padEnd(28)} ${entry.result._tag.padEnd(14)} ${duration.padStart(8)}`)
  }
  check(label, record.decision._tag === expected.tag, `expected ${expected.tag}, got ${record.decision._tag}`)
  check(
    label,
    sameList(record.reasonCodes, expected.codes),
    `expected reason codes ${list(expected.codes)}, got ${list(record.reasonCodes)}`
  )
  return { record, elapsed }
}

/** The message of the first reason with `code`, for printing. */
const messageOf = (record: DecisionRecord.DecisionRecord, code: string): string =>
  record.reasons.find((reason) => reason.code === code)?.message ?? "(no such reason)"

/**
 * When the server saw the connection of the `index`-th hung request close
 * (ms after it arrived); `None` if it did not within a second.
 */
const connectionClosed = (index: number): Promise<Option.Option<number>> =>
  Effect.runPromise(
    Effect.suspend(() => {
      const closed = hungRequests[index]
      return closed === undefined ? Effect.fail("not received yet") : Effect.promise(() => closed)
    }).pipe(
      Effect.retry(Schedule.spaced("10 millis")),
      Effect.timeoutOption("1 second")
    )
  )

// =============================================================================
// 4. Evaluations
// =============================================================================

const runCases = async (): Promise<void> => {
  console.log(`Compliance service listening at ${complianceUrl}`)
  console.log("Policy set: allConcurrent(identity, ticket, compliance), budget 1 s")

  await run("(a) approved ticket, signed artifact: allowed", deploy("CHG-101", "web-2.4.1"), {
    tag: "Allow",
    codes: ["ticket.verified"]
  })

  await run("(b) the compliance service reports a violation", deploy("CHG-101", "web-2.4.1-unsigned"), {
    tag: "Deny",
    codes: ["supply-chain.unsigned_artifact", "ticket.verified"]
  })

  await run("(c) the ticket is still in review", deploy("CHG-102", "web-2.4.1"), {
    tag: "Deny",
    codes: ["ticket.status"]
  })

  // (d) The compliance service accepts the request and never answers.
  complianceMode = "hang"
  const hungBefore = hungRequests.length
  const d = await run(
    "(d) the compliance service hangs: fail closed after its 300 ms timeout",
    deploy("CHG-101", "web-2.4.1"),
    { tag: "Deny", codes: ["policy.timeout", "ticket.verified"] }
  )
  console.log(`    reason: ${messageOf(d.record, "policy.timeout")}`)
  check("(d) elapsed", d.elapsed >= 280 && d.elapsed < 900, `decided after ${ms(d.elapsed)}, expected about 300 ms`)
  const abortedOnTimeout = await connectionClosed(hungBefore)
  console.log(
    `    server: ${
      Option.match(abortedOnTimeout, {
        onNone: () => "the connection is still open",
        onSome: (after) => `the request's connection closed ${ms(after)} after it arrived (aborted)`
      })
    }`
  )
  check("(d) request aborted", Option.isSome(abortedOnTimeout), "the server never saw the connection close")
  complianceMode = "answer"

  // (e) The ticketing system answers, but only after 2 seconds.
  ticketingLatency = "2 seconds"
  const e = await run(
    "(e) the ticketing system is too slow: defer after its 500 ms timeout",
    deploy("CHG-101", "web-2.4.1"),
    { tag: "Defer", codes: ["policy.timeout"] }
  )
  console.log(`    reason: ${messageOf(e.record, "policy.timeout")}`)
  check("(e) elapsed", e.elapsed >= 480 && e.elapsed < 900, `decided after ${ms(e.elapsed)}, expected about 500 ms`)
  ticketingLatency = "40 millis"

  // (f) The caller gives up after 50 ms, while the compliance request is in
  // flight. Cancellation is interruption, not a failure: the evaluation
  // produces no decision record, and every check in flight is interrupted —
  // the HTTP request is aborted.
  complianceMode = "hang"
  const recordsBefore = auditLog.length
  const hungBeforeCancel = hungRequests.length
  const exit = await Effect.runPromise(
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(decide(deploy("CHG-101", "web-2.4.1")))
      yield* Effect.sleep("50 millis")
      return yield* Fiber.interrupt(fiber)
    })
  )
  const abortedOnCancel = await connectionClosed(hungBeforeCancel)
  complianceMode = "answer"
  console.log("\n(f) the caller cancels after 50 ms (Fiber.interrupt)")
  console.log(
    `    exit: ${Exit.isInterrupted(exit) ? "interrupted" : Exit.isSuccess(exit) ? "a decision" : "a failure"}; ` +
      `audit log: ${auditLog.length - recordsBefore} new record(s)`
  )
  console.log(
    `    server: ${
      Option.match(abortedOnCancel, {
        onNone: () => "the connection is still open",
        onSome: (after) => `the request's connection closed ${ms(after)} after it arrived (aborted)`
      })
    }`
  )
  check("(f) interrupted", Exit.isInterrupted(exit), `exit ${Exit.isSuccess(exit) ? "Success" : "Failure"}`)
  check("(f) no record", auditLog.length === recordsBefore, `${auditLog.length - recordsBefore} record(s) produced`)
  check("(f) request aborted", Option.isSome(abortedOnCancel), "the server never saw the connection close")

  // (g) The ticketing system is down: its error became ExternalCheckFailed,
  // and `unavailable: "Deny"` gives it its meaning.
  ticketingDown = true
  await run("(g) the ticketing system is down: deny", deploy("CHG-101", "web-2.4.1"), {
    tag: "Deny",
    codes: ["external.unavailable"]
  })
  ticketingDown = false

  // Six evaluations completed, six records; the cancelled one took no id.
  const ids = auditLog.map((record) => record.decisionId)
  console.log(`\nAudit log: ${auditLog.length} records ${list(ids)}`)
  check("audit log", sameList(ids, ["dec_1", "dec_2", "dec_3", "dec_4", "dec_5", "dec_6"]), `records ${list(ids)}`)
}

try {
  await runCases()
} finally {
  await stopServer()
}

report()
