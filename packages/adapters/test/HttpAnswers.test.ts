/**
 * The answers docs/http.md documents, against a real server: which carry
 * `Gavel-Decision-Id` (every one after a decision, the 500 and 503 too),
 * the approvals API's JSON 404s (an id longer than the router's parameter
 * limit, an unknown route under `/approvals`), and what the server answers
 * for a body the route cannot decode (400) or for oversized headers (431).
 */
import * as Http from "@gavel/adapters/Http"
import { Approval, ApprovalStore, type Audit, AuditSink, Decision, Governance, Policy, PolicySet } from "@gavel/core"
import * as Fakes from "@gavel/testing/Fakes"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as jose from "jose"
import { createServer } from "node:http"

// -----------------------------------------------------------------------------
// fixtures: a governed route, the approvals API and a route of the host's own
// -----------------------------------------------------------------------------

const secret = "http-answers-secret-of-at-least-32-bytes"
const issuer = "https://id.test"
const audience = "tools"

const token = (sub: string) =>
  Effect.promise(() =>
    new jose.SignJWT({ tenant: "acme" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(sub)
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime("10 minutes")
      .sign(new TextEncoder().encode(secret))
  )

const policy = Policy.make("tools", (action) => {
  switch (action.name) {
    case "payments.send":
      return Decision.requireApproval({ code: "payment.large", message: "internal" }, { roles: ["finance"] })
    case "reports.export":
      return Decision.escalate({ code: "report.sensitive", message: "internal" }, { reviewPath: "security" })
    case "ledger.close":
      return Decision.defer({ code: "ledger.busy", message: "internal" })
    case "tool.forbidden":
      return Decision.deny({ code: "tool.forbidden", message: "internal" })
    case "cache.flush":
      return Decision.warn({ code: "cache.cold", message: "internal" })
    case "loop":
      // Always another replacement: past `maxTransforms`, a 500.
      return Decision.transform({ code: "loop", message: "internal" }, {
        action: { ...action, payload: { round: ((action.payload as { round?: number }).round ?? 0) + 1 } }
      })
    default:
      return Decision.allow()
  }
})

/** The memory sink, failing to append the event types in `failing`. */
const failingSink = (failing: Set<string>) =>
  Layer.effect(
    AuditSink.AuditSink,
    Effect.map(AuditSink.makeMemory, (memory) =>
      AuditSink.AuditSink.of({
        ...memory,
        append: (entry: Audit.Entry) =>
          failing.has(entry.type)
            ? Effect.fail(new Approval.StoreError({ operation: "append", detail: "disk full", component: "audit trail" }))
            : memory.append(entry)
      }))
  )

const Tool = Schema.Struct({ tool: Schema.String }, Schema.Record({ key: Schema.String, value: Schema.Unknown }))

const routes = (runs: Array<string>) =>
  HttpLayerRouter.use(Effect.fnUntraced(function*(router) {
    const governed = yield* Http.enforcement({
      // As docs/http.md wires it: the platform's schema decoding of the body.
      action: () =>
        Effect.map(HttpServerRequest.schemaBodyJson(Tool), ({ tool, ...payload }) => ({
          kind: "tool",
          name: tool,
          payload
        }))
    })
    yield* router.add(
      "POST",
      "/tools",
      governed(Effect.gen(function*() {
        const { action } = yield* Http.Governed
        runs.push(action.name)
        return HttpServerResponse.unsafeJson({ ran: action.name })
      }))
    )
    // The host's own routes: their 404s stay the host's.
    yield* router.add("GET", "/host/:name", HttpServerResponse.text("host"))
  }))

const startWith = Effect.fnUntraced(function*(failing: Set<string>) {
  const runs: Array<string> = []
  const context = yield* Layer.build(
    HttpLayerRouter.serve(Layer.mergeAll(Http.layerApprovals(), routes(runs)), {
      disableLogger: true,
      disableListenLog: true
    }).pipe(
      Layer.provide(Http.layerJwt({ key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer, audience })),
      Layer.provideMerge(
        Governance.layer({
          policySet: PolicySet.unsafeMake({ id: "tools", version: "1", policy }),
          sweepInterval: "1 hour",
          maxTransforms: 2,
          maxPendingPerRequester: 1
        })
      ),
      Layer.provideMerge(Layer.mergeAll(ApprovalStore.layerMemory, failingSink(failing))),
      Layer.provideMerge(Fakes.layer({ identity: { principals: { alice: { roles: ["finance"], tenant: "acme" } } } })),
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    )
  )
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  const base = `http://127.0.0.1:${address.port}`
  const alice = yield* token("alice")
  const call = (
    method: string,
    path: string,
    options: { readonly as?: string; readonly raw?: string; readonly headers?: Record<string, string> } = {}
  ) =>
    Effect.gen(function*() {
      const response = yield* Effect.promise(() =>
        fetch(base + path, {
          method,
          headers: {
            ...(options.as === undefined ? {} : { authorization: `Bearer ${options.as}` }),
            ...(options.raw === undefined ? {} : { "content-type": "application/json" }),
            ...options.headers
          },
          ...(options.raw === undefined ? {} : { body: options.raw })
        })
      )
      const text = yield* Effect.promise(() => response.text())
      return {
        status: response.status,
        headers: response.headers,
        text,
        body: response.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) as any : null
      }
    })
  const events = Context.get(context, AuditSink.AuditSink).read()
  return { alice, call, events, runs }
})

const json = (value: unknown) => JSON.stringify(value)

// -----------------------------------------------------------------------------
// Gavel-Decision-Id
// -----------------------------------------------------------------------------

describe("Gavel-Decision-Id on every answer after a decision", () => {
  it.scopedLive("every answer after a decision names it, each a decision of the trail; none before", () =>
    Effect.gen(function*() {
      const { alice, call, events } = yield* startWith(new Set())
      const named = []
      for (
        const [tool, status] of [
          ["search", 200],
          ["cache.flush", 200],
          ["tool.forbidden", 403],
          ["payments.send", 202],
          ["payments.send", 429],
          ["reports.export", 409],
          ["ledger.close", 425],
          ["loop", 500]
        ] as const
      ) {
        const reply = yield* call("POST", "/tools", { as: alice, raw: json({ tool }) })
        expect([tool, reply.status]).toEqual([tool, status])
        named.push(reply.headers.get("gavel-decision-id"))
      }
      const decided = new Set((yield* events).map((e) => e.decisionId))
      for (const id of named) expect(decided.has(id)).toBe(true)
      const before = (yield* events).length
      const unnamed = [
        yield* call("POST", "/tools", { raw: json({ tool: "search" }) }), // 401
        yield* call("POST", "/tools", { as: alice, raw: "{" }), // 400, undecodable
        yield* call("POST", "/tools", { as: alice, raw: `{"tool":"search","d":${"[".repeat(100)}${"]".repeat(100)}}` }), // 400
        yield* call("POST", "/tools", { as: alice, raw: json({ tool: "search", d: new Array(100_001).fill(0) }) }), // 413
        yield* call("POST", "/tools", { as: alice, raw: "{}", headers: { "x-padding": "x".repeat(20_000) } }) // 431
      ]
      expect(unnamed.map((reply) => [reply.status, reply.headers.get("gavel-decision-id")])).toEqual([
        [401, null],
        [400, null],
        [400, null],
        [413, null],
        [431, null]
      ])
      expect((yield* events).length).toBe(before)
    }))

  it.scopedLive("500 when the policies keep transforming: the decision id in the header and the body", () =>
    Effect.gen(function*() {
      const { alice, call, events, runs } = yield* startWith(new Set())
      const reply = yield* call("POST", "/tools", { as: alice, raw: json({ tool: "loop" }) })
      expect(reply.status).toBe(500)
      const decisionId = reply.headers.get("gavel-decision-id")
      expect(decisionId).toMatch(/.+/)
      expect(reply.body).toEqual({ _tag: "GovernanceError", decisionId })
      // It leads to the trail: the last evaluation the loop wrote.
      const evaluated = (yield* events).filter((e) => e.type === "decision.evaluated").map((e) => e.decisionId)
      expect(evaluated).toHaveLength(3)
      expect(evaluated.at(-1)).toBe(decisionId)
      expect(runs).toEqual([])
    }))

  it.scopedLive("202 when the approval is opened but its event cannot be written yet: the step happened", () =>
    Effect.gen(function*() {
      const { alice, call, events, runs } = yield* startWith(new Set(["approval.requested"]))
      const reply = yield* call("POST", "/tools", { as: alice, raw: json({ tool: "payments.send", amount: 5 }) })
      // The answer says what happened: the approval is open (its event waits
      // in the audit outbox for the sink), and an approver can find it.
      expect(reply.status).toBe(202)
      expect(reply.body).toMatchObject({ _tag: "Pending", approvalId: expect.any(String) })
      const trail = yield* events
      const evaluated = trail.filter((e) => e.type === "decision.evaluated")
      expect(evaluated).toHaveLength(1)
      expect(reply.headers.get("gavel-decision-id")).toBe(evaluated[0]!.decisionId)
      expect(trail.filter((e) => e.type === "approval.requested")).toEqual([])
      const shown = yield* call("GET", `/approvals/${(reply.body as { approvalId: string }).approvalId}`, { as: alice })
      expect(shown.status).toBe(200)
      expect(runs).toEqual([])
    }))

  it.scopedLive("503 when the execution cannot be audited: the decision is named, the handler does not run", () =>
    Effect.gen(function*() {
      const { alice, call, events, runs } = yield* startWith(new Set(["execution.started"]))
      const reply = yield* call("POST", "/tools", { as: alice, raw: json({ tool: "search" }) })
      expect([reply.status, reply.body]).toEqual([503, { _tag: "Unavailable" }])
      const evaluated = (yield* events).filter((e) => e.type === "decision.evaluated")
      expect(reply.headers.get("gavel-decision-id")).toBe(evaluated[0]!.decisionId)
      expect(runs).toEqual([])
    }))

  it.scopedLive("503 when the decision itself cannot be recorded: no decision, no id", () =>
    Effect.gen(function*() {
      const { alice, call, events } = yield* startWith(new Set(["decision.evaluated"]))
      const reply = yield* call("POST", "/tools", { as: alice, raw: json({ tool: "search" }) })
      expect([reply.status, reply.body]).toEqual([503, { _tag: "Unavailable" }])
      expect(reply.headers.get("gavel-decision-id")).toBeNull()
      expect(yield* events).toEqual([])
    }))
})

// -----------------------------------------------------------------------------
// the governed route's 400 and 431
// -----------------------------------------------------------------------------

describe("what the governed route answers before any decision", () => {
  it.scopedLive("400 with an empty body for a body the route cannot decode; nothing evaluated", () =>
    Effect.gen(function*() {
      const { alice, call, events, runs } = yield* startWith(new Set())
      for (const raw of ["{\"tool\":", json({ tool: 7 }), json({ amount: 5 })]) {
        const reply = yield* call("POST", "/tools", { as: alice, raw })
        expect([reply.status, reply.text, reply.headers.get("gavel-decision-id")]).toEqual([400, "", null])
      }
      const empty = yield* call("POST", "/tools", { as: alice })
      expect([empty.status, empty.text]).toEqual([400, ""])
      expect(yield* events).toEqual([])
      expect(runs).toEqual([])
    }))

  it.scopedLive("431 with an empty body for headers or a URL over Node's limit; nothing evaluated", () =>
    Effect.gen(function*() {
      const { alice, call, events, runs } = yield* startWith(new Set())
      const big = { "x-padding": "x".repeat(20_000) }
      const governed = yield* call("POST", "/tools", { as: alice, raw: json({ tool: "search" }), headers: big })
      expect([governed.status, governed.text, governed.headers.get("gavel-decision-id")]).toEqual([431, "", null])
      const api = yield* call("GET", "/approvals", { as: alice, headers: big })
      expect([api.status, api.text]).toEqual([431, ""])
      const url = yield* call("GET", `/approvals/${"a".repeat(20_000)}`, { as: alice })
      expect([url.status, url.text]).toEqual([431, ""])
      expect(yield* events).toEqual([])
      expect(runs).toEqual([])
    }))
})

// -----------------------------------------------------------------------------
// the approvals API's 404s
// -----------------------------------------------------------------------------

describe("the approvals API's 404s are JSON", () => {
  const long = "a".repeat(101)

  it.scopedLive("an id over the router's parameter limit is an unknown approval, like a short one", () =>
    Effect.gen(function*() {
      const { alice, call } = yield* startWith(new Set())
      const short = yield* call("GET", "/approvals/unknown", { as: alice })
      expect([short.status, short.body]).toEqual([404, { _tag: "ApprovalNotFound", approvalId: "unknown" }])
      const shown = yield* call("GET", `/approvals/${long}`, { as: alice })
      expect([shown.status, shown.body]).toEqual([404, { _tag: "ApprovalNotFound", approvalId: long }])
      expect(shown.headers.get("content-type")).toBe(short.headers.get("content-type"))
      // Percent-encoded, as a client sends it: decoded like the router decodes it.
      const encoded = yield* call("GET", `/approvals/${encodeURIComponent("é".repeat(60))}`, { as: alice })
      expect([encoded.status, encoded.body]).toEqual([404, { _tag: "ApprovalNotFound", approvalId: "é".repeat(60) }])
      for (const vote of ["approve", "reject", "acknowledge"]) {
        const voted = yield* call("POST", `/approvals/${long}/${vote}`, { as: alice, raw: "{}" })
        expect([voted.status, voted.body]).toEqual([404, { _tag: "ApprovalNotFound", approvalId: long }])
      }
      const override = yield* call("POST", `/decisions/${long}/override`, {
        as: alice,
        raw: json({ reason: "r", durationSeconds: 60 })
      })
      expect([override.status, override.body]).toEqual([404, { _tag: "DecisionNotFound", decisionId: long }])
    }))

  it.scopedLive("authenticated first, like every route of the API: 401 without a token", () =>
    Effect.gen(function*() {
      const { call } = yield* startWith(new Set())
      const short = yield* call("GET", "/approvals/unknown")
      const shown = yield* call("GET", `/approvals/${long}`)
      expect([shown.status, shown.body]).toEqual([401, { _tag: "Unauthorized", reason: "missing" }])
      expect([shown.status, shown.body]).toEqual([short.status, short.body])
      const voted = yield* call("POST", `/approvals/${long}/approve`, { as: "forged", raw: "{}" })
      expect([voted.status, voted.body._tag]).toEqual([401, "Unauthorized"])
    }))

  it.scopedLive("an unknown route under /approvals answers RouteNotFound; the host's 404s stay its own", () =>
    Effect.gen(function*() {
      const { alice, call } = yield* startWith(new Set())
      for (
        const [method, path] of [
          ["DELETE", "/approvals/abc"],
          ["GET", "/approvals/abc/history"],
          ["GET", `/approvals/${long}/approve`],
          ["GET", "/decisions/abc/override"]
        ] as const
      ) {
        const reply = yield* call(method, path, { as: alice })
        expect([method, path, reply.status, reply.body]).toEqual([method, path, 404, { _tag: "RouteNotFound" }])
      }
      expect((yield* call("GET", "/host/someone")).text).toBe("host")
      for (const path of ["/elsewhere", `/host/${long}`, "/decisions/abc", "/approvalsx"]) {
        const reply = yield* call("GET", path, { as: alice })
        expect([path, reply.status, reply.text]).toEqual([path, 404, ""])
      }
    }))
})
