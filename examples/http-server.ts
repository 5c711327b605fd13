/**
 * A governed HTTP service: a payments endpoint behind `Http.enforcement`, the
 * approvals API beside it, bearer JWTs for identity, and a SQLite file for
 * approvals and the audit trail.
 *
 * `POST /transfers` answers, depending on what gavel decides:
 *
 *   200  allowed: the handler ran (`Gavel-Decision-Id` names the record)
 *   401  no or invalid bearer token
 *   403  denied: `{ _tag: "Denied", decisionId, reasonCodes }`
 *   202  pending: `{ _tag: "Pending", approvalId, expiresAt, statusUrl, … }`;
 *        the handler runs once the approval is granted
 *   409  escalated: `{ _tag: "Escalated", …, reviewPaths }`
 *   425  deferred: `{ _tag: "Deferred", … }`
 *
 * and the approvals API (`GET /openapi.json` describes it) answers 200, 400
 * (malformed JSON, with the decode error's path), 403 (not an approver), 404,
 * 409 (already resolved), 410 (expired) and 413 (body too large).
 *
 * Run the story (it starts the server on a free port, plays every status
 * with `fetch`, checks the answers and exits):
 *
 *   npx tsx examples/http-server.ts
 *
 * Or keep it serving on 127.0.0.1:8080 and try it with curl (the server
 * prints an `AGENT` and an `ALICE` token to export first):
 *
 *   npx tsx examples/http-server.ts --serve
 *   curl -i localhost:8080/transfers --json '{"amount":50,"currency":"EUR","to":"DE89"}'            # 401
 *   curl -i localhost:8080/transfers -H "authorization: Bearer $AGENT" \
 *        --json '{"amount":50,"currency":"EUR","to":"DE89"}'                                             # 200
 *   curl -i localhost:8080/transfers -H "authorization: Bearer $AGENT" \
 *        --json '{"amount":5000000,"currency":"EUR","to":"DE89"}'                                        # 403
 *   curl -i localhost:8080/transfers -H "authorization: Bearer $AGENT" \
 *        --json '{"amount":25000,"currency":"EUR","to":"DE89"}'                                          # 202
 *   curl -i localhost:8080/transfers -H "authorization: Bearer $AGENT" \
 *        --json '{"amount":50,"currency":"EUR","to":"KP01"}'                                             # 409
 *   curl -i localhost:8080/transfers -H "authorization: Bearer $AGENT" \
 *        --json '{"amount":50,"currency":"USD","to":"DE89"}'                                             # 425
 *   curl -s localhost:8080/approvals?status=pending -H "authorization: Bearer $ALICE"                # the inbox
 *   curl -i localhost:8080/approvals/$ID/approve -H "authorization: Bearer $ALICE" \
 *        --json '{"note":"invoice 4411"}'                                                                # 200, then the transfer runs
 *   curl -i localhost:8080/approvals/$ID/approve -H "authorization: Bearer $ALICE" --json '{'        # 400
 *   curl -s localhost:8080/openapi.json
 *
 * The SQLite file is the one `gavel approvals list --db FILE` reads.
 */
import * as Http from "@gavel/adapters/Http"
import * as Sqlite from "@gavel/adapters/Sqlite"
import { type Action, Audit, AuditSink, Decision, Governance, Identity, Policy, PolicySet } from "@gavel/core"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as jose from "jose"
import { mkdtempSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { check, fail, report } from "./support/checks.js"

const serve = process.argv.includes("--serve")

// =============================================================================
// Policies, identity, tokens
// =============================================================================

const Transfer = Schema.Struct({
  amount: Schema.Number.pipe(Schema.positive()),
  currency: Schema.String,
  to: Schema.String
})

const amountOf = (action: Action.Action) => (action.payload as typeof Transfer.Type).amount

const transfers = Policy.make("payments.transfers", (action) => {
  const transfer = action.payload as typeof Transfer.Type
  if (transfer.to.startsWith("KP")) {
    return Decision.escalate({ code: "sanctions.review", message: "Beneficiary country under sanctions review" }, {
      reviewPath: "compliance"
    })
  }
  if (transfer.currency !== "EUR") {
    return Decision.defer({ code: "fx.rate_pending", message: "No FX rate fixed yet for this currency" })
  }
  if (transfer.amount > 1_000_000) return Decision.deny({ code: "payment.over_limit", message: "Over the limit" })
  if (transfer.amount > 10_000) {
    return Decision.requireApproval({ code: "payment.large", message: "Large transfers need finance approval" }, {
      roles: ["finance"],
      timeout: "1 hour"
    })
  }
  return Decision.allow()
})

const policySet = PolicySet.unsafeMake({ id: "payments", version: "2026-11", policy: transfers })

/** The identity system (an IdP or HR directory in production). */
const IdentityLive = Identity.layerDirectory([
  { id: "agent-7", roles: ["payments-agent"], tenant: "acme", status: "active" },
  { id: "alice", roles: ["finance"], tenant: "acme", status: "active" },
  { id: "bob", roles: ["finance"], tenant: "globex", status: "active" }
])

// The token issuer is normally your IdP; here the example mints its own.
const secret = process.env.JWT_SECRET ?? "example-secret-change-me-32-bytes-long"
const jwt = { key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer: "https://id.example", audience: "payments" } as const

const mint = (sub: string, tenant: string, kind = "human") =>
  new jose.SignJWT({ tenant, kind })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuer(jwt.issuer)
    .setAudience(jwt.audience)
    .setExpirationTime("1 hour")
    .sign(new TextEncoder().encode(secret))

// =============================================================================
// The service
// =============================================================================

/** What the protected handler did, for the story to check. */
const sent: Array<number> = []

const TransferRoutes = HttpLayerRouter.use(Effect.fnUntraced(function*(router) {
  const governed = yield* Http.enforcement({
    // A body that does not decode is a 400 from the platform (ParseError).
    action: () =>
      Effect.map(HttpServerRequest.schemaBodyJson(Transfer), (transfer) => ({
        kind: "payment",
        name: "payments.transfer",
        payload: transfer,
        resource: { type: "account", id: transfer.to }
      }))
  })
  yield* router.add(
    "POST",
    "/transfers",
    governed(Effect.gen(function*() {
      const { action } = yield* Http.Governed
      sent.push(amountOf(action))
      return HttpServerResponse.unsafeJson({ sent: action.payload })
    }))
  )
}))

const dir = mkdtempSync(join(tmpdir(), "gavel-http-"))
const filename = join(dir, "gavel.db")

const ServerLive = HttpLayerRouter.serve(Layer.mergeAll(Http.layerApprovals(), TransferRoutes), {
  disableLogger: !serve,
  disableListenLog: !serve
}).pipe(
  Layer.provide(Http.layerJwt(jwt)),
  Layer.provideMerge(Governance.layer({ policySet, sweepInterval: "1 second" })),
  Layer.provideMerge(Layer.mergeAll(Sqlite.layer({ filename }), IdentityLive)),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: serve ? 8080 : 0, host: "127.0.0.1" }))
)

// =============================================================================
// The story
// =============================================================================

const story = Effect.gen(function*() {
  const context = yield* Layer.build(ServerLive)
  const address = Context.get(context, HttpServer.HttpServer).address
  const port = address._tag === "TcpAddress" ? address.port : 0
  const agent = yield* Effect.promise(() => mint("agent-7", "acme", "agent"))
  const alice = yield* Effect.promise(() => mint("alice", "acme"))
  const bob = yield* Effect.promise(() => mint("bob", "globex"))

  if (serve) {
    console.log(`gavel example serving on http://127.0.0.1:${port} (database ${filename})`)
    console.log(`export AGENT=${agent}`)
    console.log(`export ALICE=${alice}`)
    return yield* Effect.never
  }

  const call = (method: string, path: string, token: string | null, body?: string) =>
    Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, {
        method,
        headers: {
          "content-type": "application/json",
          ...(token === null ? {} : { authorization: `Bearer ${token}` })
        },
        ...(body === undefined ? {} : { body })
      })
      const text = await response.text()
      return { status: response.status, body: text === "" ? null : JSON.parse(text) }
    })
  const transfer = (token: string | null, amount: number, to = "DE89", currency = "EUR") =>
    call("POST", "/transfers", token, JSON.stringify({ amount, currency, to }))
  const show = (label: string, reply: { status: number; body: unknown }) =>
    console.log(`${label.padEnd(44)} ${reply.status} ${JSON.stringify(reply.body)}`)

  console.log("POST /transfers")
  const anonymous = yield* transfer(null, 50)
  show("  no token", anonymous)
  check("401", anonymous.status === 401, `got ${anonymous.status}`)
  const small = yield* transfer(agent, 50)
  show("  50 EUR", small)
  check("200", small.status === 200 && sent.includes(50), `got ${small.status}`)
  const huge = yield* transfer(agent, 5_000_000)
  show("  5,000,000 EUR", huge)
  check("403", huge.status === 403 && huge.body.reasonCodes[0] === "payment.over_limit", `got ${huge.status}`)
  const sanctioned = yield* transfer(agent, 50, "KP01")
  show("  to a sanctioned country", sanctioned)
  check("409", sanctioned.status === 409 && sanctioned.body.reviewPaths[0] === "compliance", `got ${sanctioned.status}`)
  const dollars = yield* transfer(agent, 50, "DE89", "USD")
  show("  in USD", dollars)
  check("425", dollars.status === 425, `got ${dollars.status}`)
  const badBody = yield* call("POST", "/transfers", agent, JSON.stringify({ amount: "lots" }))
  show("  a body that is not a transfer", badBody)
  check("400 transfer", badBody.status === 400, `got ${badBody.status}`)
  const large = yield* transfer(agent, 25_000)
  show("  25,000 EUR", large)
  check("202", large.status === 202 && !sent.includes(25_000), `got ${large.status}`)
  const id = large.body.approvalId as string

  console.log("\nApprovals API")
  const inbox = yield* call("GET", "/approvals?status=pending", alice)
  console.log(`  alice's inbox: ${inbox.body.map((r: { id: string }) => r.id).join(", ")}`)
  check("inbox", inbox.body.length === 1 && inbox.body[0].id === id, JSON.stringify(inbox.body))
  const otherTenant = yield* call("POST", `/approvals/${id}/approve`, bob, `{"note":"mine"}`)
  show("  bob (tenant globex) approves", otherTenant)
  check("404 other tenant", otherTenant.status === 404, `got ${otherTenant.status}`)
  const malformed = yield* call("POST", `/approvals/${id}/approve`, alice, "{")
  show("  malformed JSON", malformed)
  check("400", malformed.status === 400, `got ${malformed.status}`)
  const tooLarge = yield* call("POST", `/approvals/${id}/approve`, alice, JSON.stringify({ note: "x".repeat(20_000) }))
  show("  a 20 KB note", tooLarge)
  check("413", tooLarge.status === 413, `got ${tooLarge.status}`)
  const unknown = yield* call("POST", "/approvals/apr_unknown/approve", alice, "{}")
  show("  an unknown approval", unknown)
  check("404", unknown.status === 404, `got ${unknown.status}`)
  const approved = yield* call("POST", `/approvals/${id}/approve`, alice, `{"note":"invoice 4411","approver":"bob"}`)
  console.log(`  alice approves (the body's "approver" is ignored): ${approved.status} ${approved.body.status}, votes by ${
    approved.body.votes.map((v: { approver: string }) => v.approver).join(", ")
  }`)
  check("approved by alice", approved.status === 200 && approved.body.votes[0].approver === "alice", `got ${approved.status}`)
  yield* Effect.suspend(() => sent.includes(25_000) ? Effect.void : Effect.fail("not yet")).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("5 seconds"))),
    Effect.catchAll(() => Effect.sync(() => fail("the approved transfer did not run")))
  )
  console.log(`  the parked transfer ran: sent ${JSON.stringify(sent)}`)
  const again = yield* call("POST", `/approvals/${id}/approve`, alice, "{}")
  show("  approving it again", again)
  check("409", again.status === 409, `got ${again.status}`)
  check("once", sent.filter((a) => a === 25_000).length === 1, JSON.stringify(sent))

  const events = yield* Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read()).pipe(Effect.provide(context))
  const verdict = Audit.verify(events)
  console.log(`\nAudit trail in ${filename}: ${events.length} events, ${verdict._tag}`)
  check("audit", verdict._tag === "Intact", verdict._tag)
})

Effect.runPromise(Effect.scoped(story)).then(report, (error) => {
  fail(String(error))
  report()
})
