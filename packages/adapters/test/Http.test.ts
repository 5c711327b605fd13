import * as Http from "@gavel/adapters/Http"
import * as HttpApprovals from "@gavel/adapters/HttpApprovals"
import { type Action, ApprovalStore, AuditSink, Decision, Governance, Policy, PolicySet } from "@gavel/core"
import * as Fakes from "@gavel/testing/Fakes"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as jose from "jose"
import { createServer } from "node:http"

// -----------------------------------------------------------------------------
// fixtures: a governed tool service with the approvals API, on 127.0.0.1
// -----------------------------------------------------------------------------

const secret = "http-test-secret-of-at-least-32-bytes!!"
const issuer = "https://id.test"
const audience = "tools"

const token = (sub: string, claims: Record<string, unknown> = {}) =>
  Effect.promise(() =>
    new jose.SignJWT({ tenant: "acme", ...claims })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(sub)
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime("10 minutes")
      .sign(new TextEncoder().encode(secret))
  )

const amountOf = (action: Action.Action): number => {
  const payload = action.payload as { readonly amount?: unknown } | undefined
  return typeof payload?.amount === "number" ? payload.amount : 0
}

const reason = (code: string) => ({ code, message: `internal detail of ${code}` })

const policy = Policy.make("tools", (action) => {
  switch (action.name) {
    case "payments.send": {
      const amount = amountOf(action)
      if (amount > 100_000) return Decision.deny(reason("payment.too_large"))
      if (amount > 1000) return Decision.requireApproval(reason("payment.large"), { roles: ["finance"], timeout: "1 hour" })
      return Decision.allow()
    }
    case "payments.quick":
      return Decision.requireApproval(reason("payment.quick"), { roles: ["finance"], timeout: "300 millis" })
    case "reports.export":
      return Decision.escalate(reason("report.sensitive"), { reviewPath: "security-review" })
    case "ledger.close":
      return Decision.defer(reason("ledger.busy"))
    case "data.export":
      return Decision.requireAcknowledgment(reason("data.export"), { roles: ["compliance"] })
    case "cache.flush":
      return Decision.warn(reason("cache.cold"))
    default:
      return Decision.deny(reason("tool.unknown"))
  }
})

const principals = {
  "agent-7": { roles: ["agent"], tenant: "acme" },
  alice: { roles: ["finance"], tenant: "acme" },
  carol: { roles: ["finance"], tenant: "acme" },
  bob: { roles: ["finance"], tenant: "globex" },
  dana: { roles: ["compliance"], tenant: "acme" },
  cfo: { roles: ["cfo"], tenant: "acme" },
  mallory: { roles: ["engineering"], tenant: "acme" }
}

/** Every run of the governed handler, with the action it ran. */
type Runs = Array<Action.Action>

/** What a test may change in the service: the caps on pending approvals and their 429's `Retry-After`. */
interface ServiceOptions {
  readonly maxPendingPerRequester?: number
  readonly tooManyPendingRetryAfter?: Http.EnforcementOptions<never, never>["tooManyPendingRetryAfter"]
  readonly redaction?: Governance.Options<never>["redaction"]
  readonly actionLimits?: Governance.Options<never>["actionLimits"]
  readonly approvalsBodySize?: number
}

const toolRoutes = (runs: Runs, options: ServiceOptions = {}) =>
  HttpLayerRouter.use(Effect.fnUntraced(function*(router) {
    const governed = yield* Http.enforcement({
      tooManyPendingRetryAfter: options.tooManyPendingRetryAfter,
      action: (request) =>
        Effect.map(Effect.orDie(request.json), (body) => {
          const { tool, ...payload } = body as { readonly tool: string }
          return { kind: "tool", name: tool, payload }
        })
    })
    yield* router.add(
      "POST",
      "/tools",
      governed(Effect.gen(function*() {
        const { action } = yield* Http.Governed
        runs.push(action)
        return HttpServerResponse.unsafeJson({ ran: action.name })
      }))
    )
  }))

const serverLayer = (runs: Runs, options: ServiceOptions = {}) =>
  HttpLayerRouter.serve(Layer.mergeAll(Http.layerApprovals({ maxBodySize: options.approvalsBodySize ?? 1024 }), toolRoutes(runs, options)), {
    disableLogger: true,
    disableListenLog: true
  }).pipe(
    Layer.provide(Http.layerJwt({ key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer, audience })),
    Layer.provideMerge(
      Governance.layer({
        policySet: PolicySet.unsafeMake({
          id: "tools",
          version: "1",
          policy,
          overridePolicy: { authority: { roles: ["cfo"], principals: [] } }
        }),
        sweepInterval: "1 hour",
        maxPendingPerRequester: options.maxPendingPerRequester,
        redaction: options.redaction,
        actionLimits: options.actionLimits
      })
    ),
    Layer.provideMerge(Layer.mergeAll(ApprovalStore.layerMemory, AuditSink.layerMemory)),
    Layer.provideMerge(Fakes.layer({ identity: { principals } })),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
  )

interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly body: any
}

/** Starts the service for one test; `call` is a real `fetch` against it. */
const startWith = (options: ServiceOptions) => Effect.gen(function*() {
  const runs: Runs = []
  const context = yield* Layer.build(serverLayer(runs, options))
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  const base = `http://127.0.0.1:${address.port}`
  const call = (
    method: string,
    path: string,
    options: { readonly as?: string; readonly json?: unknown; readonly raw?: string } = {}
  ) =>
    Effect.gen(function*() {
      const authorization = options.as === undefined ? undefined : `Bearer ${options.as}`
      const body = options.raw ?? (options.json === undefined ? undefined : JSON.stringify(options.json))
      const response = yield* Effect.promise(() =>
        fetch(base + path, {
          method,
          headers: {
            ...(authorization === undefined ? {} : { authorization }),
            ...(body === undefined ? {} : { "content-type": "application/json" })
          },
          ...(body === undefined ? {} : { body })
        })
      )
      const text = yield* Effect.promise(() => response.text())
      const reply: Reply = {
        status: response.status,
        headers: response.headers,
        body: text === "" ? null : (() => {
          try {
            return JSON.parse(text)
          } catch {
            return text
          }
        })()
      }
      return reply
    })
  const tokens = {
    agent: yield* token("agent-7", { kind: "agent" }),
    alice: yield* token("alice"),
    carol: yield* token("carol"),
    bob: yield* token("bob", { tenant: "globex" }),
    dana: yield* token("dana"),
    cfo: yield* token("cfo"),
    mallory: yield* token("mallory")
  }
  const store = Context.get(context, ApprovalStore.ApprovalStore)
  const sink = Context.get(context, AuditSink.AuditSink)
  const auditCount = Effect.map(sink.read(), (events) => events.length)
  const auditTypes = Effect.map(sink.read(), (events) => events.map((e) => e.type))
  return { auditCount, auditTypes, base, call, runs, store, tokens }
})

const start = startWith({})

/** Waits (in real time, bounded) until `condition` holds. */
const eventually = (condition: () => boolean) =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail("not yet" as const)).pipe(
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("10 seconds"))),
    Effect.orDie
  )

const internalDetail = /internal detail/

// -----------------------------------------------------------------------------
// tests
// -----------------------------------------------------------------------------

describe("Http.enforcement", () => {
  it.scopedLive("401 without a usable bearer token; the handler never runs", () =>
    Effect.gen(function*() {
      const { call, runs, tokens } = yield* start
      const payment = { tool: "payments.send", amount: 10 }
      const none = yield* call("POST", "/tools", { json: payment })
      expect([none.status, none.body]).toEqual([401, { _tag: "Unauthorized", reason: "missing" }])
      expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/)
      const forged = yield* call("POST", "/tools", { as: tokens.alice.slice(0, -4) + "AAAA", json: payment })
      expect([forged.status, forged.body.reason]).toEqual([401, "bad_signature"])
      const unsigned = `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${
        Buffer.from(JSON.stringify({ sub: "alice", iss: issuer, aud: audience, exp: 9999999999 })).toString("base64url")
      }.`
      const none2 = yield* call("POST", "/tools", { as: unsigned, json: payment })
      expect(none2.status).toBe(401)
      expect(runs).toEqual([])
    }))

  it.scopedLive("runs the handler when allowed, with the decision id; a warning lists its codes", () =>
    Effect.gen(function*() {
      const { auditTypes, call, runs, tokens } = yield* start
      const allowed = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 10 } })
      expect([allowed.status, allowed.body]).toEqual([200, { ran: "payments.send" }])
      expect(allowed.headers.get("gavel-decision-id")).toMatch(/.+/)
      expect(yield* auditTypes).toEqual(["decision.evaluated", "execution.started", "execution.succeeded"])
      const warned = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "cache.flush" } })
      expect([warned.status, warned.headers.get("gavel-warning")]).toEqual([200, "cache.cold"])
      expect(runs.map((a) => [a.name, a.actor.id, a.actor.tenant])).toEqual([
        ["payments.send", "agent-7", "acme"],
        ["cache.flush", "agent-7", "acme"]
      ])
    }))

  it.scopedLive("403 on a denial, 409 on escalation, 425 on deferral: ids and codes, never messages", () =>
    Effect.gen(function*() {
      const { call, runs, tokens } = yield* start
      const denied = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 500_000 } })
      expect(denied.status).toBe(403)
      expect(denied.body).toEqual({
        _tag: "Denied",
        decisionId: denied.headers.get("gavel-decision-id"),
        reasonCodes: ["payment.too_large"]
      })
      const escalated = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "reports.export" } })
      expect([escalated.status, escalated.body._tag, escalated.body.reasonCodes, escalated.body.reviewPaths]).toEqual([
        409,
        "Escalated",
        ["report.sensitive"],
        ["security-review"]
      ])
      const deferred = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "ledger.close" } })
      expect([deferred.status, deferred.body._tag, deferred.body.reasonCodes]).toEqual([425, "Deferred", ["ledger.busy"]])
      for (const reply of [denied, escalated, deferred]) {
        expect(JSON.stringify(reply.body)).not.toMatch(internalDetail)
      }
      expect(runs).toEqual([])
    }))

  it.scopedLive("400 or 413 with the path for a body that is no action: deep, too large, colliding keys", () =>
    Effect.gen(function*() {
      const { auditCount, call, runs, tokens } = yield* start
      const before = yield* auditCount
      // 100,000 levels, as JSON.parse builds them: refused, not a stack overflow (500).
      const depth = 100_000
      const deep = yield* call("POST", "/tools", {
        as: tokens.agent,
        raw: `{"tool":"search","data":${"[".repeat(depth)}${"]".repeat(depth)}}`
      })
      expect(deep.status).toBe(400)
      expect(deep.body).toEqual({
        _tag: "InvalidAction",
        path: "payload.data" + "[0]".repeat(63),
        reason: "too_deep",
        limit: 64
      })
      const wide = yield* call("POST", "/tools", {
        as: tokens.agent,
        raw: `{"tool":"search","data":[${new Array(100_001).fill("0").join(",")}]}`
      })
      expect([wide.status, wide.body._tag, wide.body.reason, wide.body.limit]).toEqual([
        413,
        "InvalidAction",
        "too_many_nodes",
        100_000
      ])
      const colliding = yield* call("POST", "/tools", {
        as: tokens.agent,
        json: { tool: "search", to: { "Caf\u00e9": "alice", "Cafe\u0301": "mallory" } }
      })
      expect([colliding.status, colliding.body.path, colliding.body.reason]).toEqual([
        400,
        "payload.to[\"Caf\u00e9\"]",
        "duplicate_key"
      ])
      // Refused before evaluation: no decision, nothing in the trail, the handler never ran.
      expect(yield* auditCount).toBe(before)
      expect(runs).toEqual([])
    }))

  it.scopedLive("with payloads in the trail (the README's redaction): a body at actionLimits is governed, deeper a 400, deeper limits refused", () =>
    Effect.gen(function*() {
      const { auditTypes, call, tokens } = yield* startWith({
        redaction: { paths: ["payload.card.number"], payload: "include" },
        actionLimits: { maxDepth: 1_000 }
      })
      const body = (depth: number) =>
        `{"tool":"payments.send","amount":5000,"card":{"number":"4111"},"data":${"[".repeat(depth)}${"]".repeat(depth)}}`
      // The payload is level 1, so `data` may nest 999 arrays.
      const atLimit = yield* call("POST", "/tools", { as: tokens.agent, raw: body(999) })
      expect(atLimit.status).toBe(202)
      expect(yield* auditTypes).toEqual(["decision.evaluated", "approval.requested"])
      for (const depth of [1_000, 2_000, 10_000]) {
        const deeper = yield* call("POST", "/tools", { as: tokens.agent, raw: body(depth) })
        expect([depth, deeper.status, deeper.body]).toEqual([depth, 400, {
          _tag: "InvalidAction",
          path: "payload.data" + "[0]".repeat(999),
          reason: "too_deep",
          limit: 1_000
        }])
      }
      expect(yield* auditTypes).toEqual(["decision.evaluated", "approval.requested"])
      // Deeper limits (with which a 2,000-deep body overflowed the redaction walk: 500) refuse to start.
      const deeper = yield* Effect.flip(Layer.build(serverLayer([], { actionLimits: { maxDepth: 5_000 } })))
      expect(deeper._tag === "InvalidOption" && deeper.option).toBe("actionLimits.maxDepth")
    }))

  it.scopedLive("202 while pending; the handler runs once the approval is granted through the API", () =>
    Effect.gen(function*() {
      const { call, runs, tokens } = yield* start
      const pending = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 5000 } })
      expect(pending.status).toBe(202)
      expect(pending.body).toEqual({
        _tag: "Pending",
        approvalId: expect.any(String),
        expiresAt: expect.any(String),
        statusUrl: `/approvals/${pending.body.approvalId}`,
        decisionId: pending.headers.get("gavel-decision-id"),
        reasonCodes: ["payment.large"]
      })
      expect(pending.headers.get("location")).toBe(pending.body.statusUrl)
      expect(new Date(pending.body.expiresAt).getTime()).toBeGreaterThan(Date.now() + 59 * 60_000)

      const status = yield* call("GET", pending.body.statusUrl, { as: tokens.alice })
      expect([status.status, status.body.status, status.body.summary.name]).toEqual([200, "pending", "payments.send"])
      expect(runs).toEqual([])

      const approved = yield* call("POST", `${pending.body.statusUrl}/approve`, {
        as: tokens.alice,
        json: { note: "invoice 4411" }
      })
      expect([approved.status, approved.body.status]).toEqual([200, "approved"])
      yield* eventually(() => runs.length === 1)
      expect(runs[0]!.payload).toEqual({ amount: 5000 })
      // The approval is consumed before the handler runs, once.
      const after = yield* call("GET", pending.body.statusUrl, { as: tokens.alice })
      expect(after.body.status).toBe("consumed")
      const twice = yield* call("POST", `${pending.body.statusUrl}/approve`, { as: tokens.carol, json: {} })
      expect(twice.status).toBe(409)
      yield* Effect.sleep("100 millis")
      expect(runs).toHaveLength(1)
    }))

  it.scopedLive("a rejected approval never runs the handler", () =>
    Effect.gen(function*() {
      const { call, runs, tokens } = yield* start
      const pending = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 5000 } })
      const rejected = yield* call("POST", `/approvals/${pending.body.approvalId}/reject`, {
        as: tokens.alice,
        json: { note: "unknown beneficiary" }
      })
      expect([rejected.status, rejected.body.status]).toEqual([200, "rejected"])
      yield* Effect.sleep("100 millis")
      expect(runs).toEqual([])
    }))

  it.scopedLive("100 concurrent requests needing approval: all 202, each resumes exactly once when approved", () =>
    Effect.gen(function*() {
      const { call, runs, tokens } = yield* start
      const replies = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => 2000 + i),
        (amount) => call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount } }),
        { concurrency: "unbounded" }
      )
      expect(replies.map((r) => r.status)).toEqual(Array(100).fill(202))
      const ids = replies.map((r) => r.body.approvalId as string)
      expect(new Set(ids).size).toBe(100)
      const listed = yield* call("GET", "/approvals?status=pending", { as: tokens.alice })
      expect(listed.body.map((r: { id: string }) => r.id).sort()).toEqual([...ids].sort())
      const votes = yield* Effect.forEach(
        ids,
        (id, i) => call("POST", `/approvals/${id}/approve`, { as: i % 2 === 0 ? tokens.alice : tokens.carol, json: {} }),
        { concurrency: 20 }
      )
      expect(votes.map((v) => v.status)).toEqual(Array(100).fill(200))
      yield* eventually(() => runs.length >= 100)
      yield* Effect.sleep("100 millis")
      expect(runs.map((a) => amountOf(a)).sort()).toEqual(Array.from({ length: 100 }, (_, i) => 2000 + i))
      const consumed = yield* call("GET", "/approvals?status=consumed", { as: tokens.alice })
      expect(consumed.body).toHaveLength(100)
    }))

  it.scopedLive("429 with Retry-After once the caller has too many approvals pending; the handler never runs", () =>
    Effect.gen(function*() {
      const { auditTypes, call, runs, store, tokens } = yield* startWith({
        maxPendingPerRequester: 3,
        tooManyPendingRetryAfter: "90 seconds"
      })
      const send = (amount: number) =>
        call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount } })
      const replies = yield* Effect.forEach([2001, 2002, 2003, 2004, 2005], send)
      expect(replies.map((r) => r.status)).toEqual([202, 202, 202, 429, 429])
      const refused = replies[3]!
      expect(refused.body).toEqual({
        _tag: "TooManyPending",
        decisionId: refused.headers.get("gavel-decision-id"),
        scope: "requester",
        limit: 3
      })
      expect(refused.headers.get("retry-after")).toBe("90")
      expect(refused.body.decisionId).toMatch(/^dec_/)
      expect((yield* store.listPending()).length).toBe(3)
      expect((yield* auditTypes).filter((t) => t === "approval.refused").length).toBe(2)
      // Another requester is not held back; once an approval is granted, the caller may open one again.
      const mine = yield* call("POST", "/tools", { as: tokens.cfo, json: { tool: "payments.send", amount: 3000 } })
      expect(mine.status).toBe(202)
      const approved = yield* call("POST", `/approvals/${replies[0]!.body.approvalId}/approve`, {
        as: tokens.alice,
        json: {}
      })
      expect(approved.status).toBe(200)
      expect((yield* send(2006)).status).toBe(202)
      yield* eventually(() => runs.length === 1)
      expect(runs.map(amountOf)).toEqual([2001])
    }))

  it.scopedLive("an override through the API lets a denied request through, linked to its decision", () =>
    Effect.gen(function*() {
      const { call, runs, tokens } = yield* start
      const payment = { tool: "payments.send", amount: 500_000 }
      const denied = yield* call("POST", "/tools", { as: tokens.agent, json: payment })
      const own = yield* call("POST", `/decisions/${denied.body.decisionId}/override`, {
        as: tokens.mallory,
        json: { reason: "incident 77", durationSeconds: 600 }
      })
      expect([own.status, own.body._tag, own.body.reason]).toEqual([403, "OverrideNotAllowed", "outside_authority"])
      const granted = yield* call("POST", `/decisions/${denied.body.decisionId}/override`, {
        as: tokens.cfo,
        json: { reason: "incident 77", durationSeconds: 600, grantedBy: "mallory" }
      })
      expect([granted.status, granted.body.overrides, granted.body.grantedBy]).toEqual([
        201,
        denied.body.decisionId,
        "cfo"
      ])
      const retried = yield* call("POST", "/tools", { as: tokens.agent, json: payment })
      expect([retried.status, retried.headers.get("gavel-override-id")]).toEqual([200, granted.body.id])
      expect(runs).toHaveLength(1)
      const unknown = yield* call("POST", "/decisions/dec_nope/override", {
        as: tokens.cfo,
        json: { reason: "x", durationSeconds: 60 }
      })
      expect([unknown.status, unknown.body._tag]).toEqual([404, "DecisionNotFound"])
    }))
})

describe("Http.enforcement options", () => {
  it.scoped("a tooManyPendingRetryAfter that is not a positive, finite duration refuses to start, naming it", () =>
    Effect.gen(function*() {
      for (const bad of ["soon", "0 seconds", "-5 seconds", Duration.infinity] as const) {
        const error = yield* Effect.flip(
          Http.enforcement({
            tooManyPendingRetryAfter: bad as Duration.DurationInput,
            action: () => Effect.succeed({ kind: "tool", name: "x" })
          })
        )
        expect(error._tag).toBe("InvalidOption")
        expect(error.option).toBe("tooManyPendingRetryAfter")
      }
    }).pipe(Effect.provide(
      Layer.mergeAll(
        Http.layerJwt({ key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer, audience }),
        Governance.layer({
          policySet: PolicySet.unsafeMake({ id: "tools", version: "1", policy }),
          sweepInterval: "1 hour"
        }).pipe(
          Layer.provide(Layer.mergeAll(ApprovalStore.layerMemory, AuditSink.layerMemory)),
          Layer.provide(Fakes.layer({ identity: { principals } }))
        )
      )
    )))
})

describe("Http approvals API", () => {
  it.scopedLive("the approver is the token's principal: a forged approver field is ignored", () =>
    Effect.gen(function*() {
      const { call, tokens } = yield* start
      const pending = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 5000 } })
      const voted = yield* call("POST", `/approvals/${pending.body.approvalId}/approve`, {
        as: tokens.alice,
        json: { note: "ok", approver: "carol", principal: { id: "carol" } }
      })
      expect(voted.status).toBe(200)
      expect(voted.body.votes.map((v: { approver: string; note: string }) => [v.approver, v.note])).toEqual([
        ["alice", "ok"]
      ])
      // A principal outside the authority cannot vote by naming an approver either.
      const pending2 = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 6000 } })
      const refused = yield* call("POST", `/approvals/${pending2.body.approvalId}/approve`, {
        as: tokens.mallory,
        json: { approver: "alice" }
      })
      expect([refused.status, refused.body._tag, refused.body.reason]).toEqual([403, "NotAnApprover", "outside_authority"])
    }))

  it.scopedLive("a token of tenant globex can neither see nor approve an acme approval; nothing is written", () =>
    Effect.gen(function*() {
      const { auditCount, call, store, tokens } = yield* start
      const pending = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 5000 } })
      const id = pending.body.approvalId as string
      const before = yield* auditCount
      const vote = yield* call("POST", `/approvals/${id}/approve`, { as: tokens.bob, json: { note: "mine now" } })
      expect([vote.status, vote.body]).toEqual([404, { _tag: "ApprovalNotFound", approvalId: id }])
      const show = yield* call("GET", `/approvals/${id}`, { as: tokens.bob })
      expect(show.status).toBe(404)
      const list = yield* call("GET", "/approvals", { as: tokens.bob })
      expect([list.status, list.body]).toEqual([200, []])
      // Even a token claiming acme for a principal the identity system places in globex is refused.
      const claimed = yield* call("POST", `/approvals/${id}/approve`, {
        as: yield* token("bob", { tenant: "acme" }),
        json: {}
      })
      expect([claimed.status, claimed.body.reason]).toEqual([403, "other_tenant"])
      expect((yield* store.get(id)).votes).toEqual([])
      expect(yield* auditCount).toBe(before)
    }))

  it.scopedLive("bad input: 400 with the decode path, 404, 409, 410, 413 — and nothing partially written", () =>
    Effect.gen(function*() {
      const { auditCount, base, call, store, tokens } = yield* start
      const pending = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 5000 } })
      const id = pending.body.approvalId as string
      const approve = `/approvals/${id}/approve`
      const before = yield* auditCount

      const malformed = yield* call("POST", approve, { as: tokens.alice, raw: "{\"note\": " })
      expect([malformed.status, malformed.body._tag, malformed.body.issues[0].path]).toEqual([
        400,
        "HttpApiDecodeError",
        []
      ])
      const wrongType = yield* call("POST", approve, { as: tokens.alice, json: { note: 42 } })
      expect(wrongType.status).toBe(400)
      expect(wrongType.body.issues.map((i: { path: unknown }) => i.path)).toContainEqual(["note"])
      const empty = yield* call("POST", approve, { as: tokens.alice })
      expect(empty.status).toBe(400)
      const huge = yield* call("POST", approve, { as: tokens.alice, json: { note: "x".repeat(5000) } })
      expect([huge.status, huge.body]).toEqual([413, { _tag: "PayloadTooLarge", limit: 1024 }])
      const form = yield* Effect.promise(() =>
        fetch(`${base}${approve}`, {
          method: "POST",
          headers: { authorization: `Bearer ${tokens.alice}`, "content-type": "application/x-www-form-urlencoded" },
          body: "note=hi"
        }).then((response) => response.json())
      )
      expect(form).toEqual({ _tag: "UnsupportedMediaType", contentType: "application/x-www-form-urlencoded" })
      // Without a content-length (chunked), the limit applies while reading.
      const chunks = new TextEncoder().encode(JSON.stringify({ note: "y".repeat(4000) }))
      const chunked = yield* Effect.promise(() =>
        fetch(`${base}${approve}`, {
          method: "POST",
          headers: { authorization: `Bearer ${tokens.alice}`, "content-type": "application/json" },
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(chunks)
              controller.close()
            }
          }),
          duplex: "half"
        } as RequestInit).then((response) => response.status)
      )
      expect(chunked).toBe(413)
      const badLimit = yield* call("GET", "/approvals?limit=zero", { as: tokens.alice })
      expect([badLimit.status, badLimit.body.issues[0].path]).toEqual([400, ["limit"]])
      const unauthenticated = yield* call("POST", approve, { json: { note: "hi" } })
      expect([unauthenticated.status, unauthenticated.body._tag]).toEqual([401, "Unauthorized"])
      expect((yield* store.get(id)).votes).toEqual([])
      expect(yield* auditCount).toBe(before)

      const unknown = yield* call("POST", "/approvals/apr_nope/approve", { as: tokens.alice, json: {} })
      expect([unknown.status, unknown.body]).toEqual([404, { _tag: "ApprovalNotFound", approvalId: "apr_nope" }])

      expect((yield* call("POST", approve, { as: tokens.alice, json: {} })).status).toBe(200)
      const again = yield* call("POST", approve, { as: tokens.carol, json: {} })
      expect([again.status, again.body._tag]).toEqual([409, "AlreadyResolved"])

      const quick = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.quick" } })
      yield* Effect.sleep("400 millis")
      const late = yield* call("POST", `/approvals/${quick.body.approvalId}/approve`, { as: tokens.alice, json: {} })
      expect([late.status, late.body._tag]).toEqual([410, "ApprovalExpired"])
      expect((yield* store.get(quick.body.approvalId)).votes).toEqual([])
    }))

  it.scopedLive("a body nested 3,000 deep is a 400 with the path before it is decoded; too many values a 413", () =>
    Effect.gen(function*() {
      const { auditCount, call, store, tokens } = yield* startWith({ approvalsBodySize: 1_000_000 })
      const pending = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "payments.send", amount: 5000 } })
      const id = pending.body.approvalId as string
      const decision = pending.body.decisionId as string
      const before = yield* auditCount
      const tooDeep = {
        _tag: "InvalidAction",
        path: "note" + "[0]".repeat(63),
        reason: "too_deep",
        limit: 64
      }
      // 2,000 levels used to be a 400 whose message carried the whole body; 3,000 overflowed formatting it (500).
      for (const depth of [2_000, 3_000, 100_000]) {
        const deep = yield* call("POST", `/approvals/${id}/approve`, {
          as: tokens.alice,
          raw: `{"note":${"[".repeat(depth)}${"]".repeat(depth)}}`
        })
        expect([depth, deep.status, deep.body]).toEqual([depth, 400, tooDeep])
      }
      const deepRoot = yield* call("POST", `/approvals/${id}/reject`, {
        as: tokens.alice,
        raw: `${"[".repeat(3_000)}${"]".repeat(3_000)}`
      })
      expect([deepRoot.status, deepRoot.body.path]).toEqual([400, "[0]".repeat(64)])
      const deepOverride = yield* call("POST", `/decisions/${decision}/override`, {
        as: tokens.cfo,
        raw: `{"reason":"x","durationSeconds":60,"compensatingControls":${"[".repeat(3_000)}${"]".repeat(3_000)}}`
      })
      expect([deepOverride.status, deepOverride.body.path]).toEqual([400, "compensatingControls" + "[0]".repeat(63)])
      const wide = yield* call("POST", `/approvals/${id}/approve`, {
        as: tokens.alice,
        raw: `{"note":[${new Array(100_000).fill("0").join(",")}]}`
      })
      expect([wide.status, wide.body]).toEqual([413, {
        _tag: "InvalidAction",
        path: "note[99998]",
        reason: "too_many_nodes",
        limit: 100_000
      }])
      expect((yield* store.get(id)).votes).toEqual([])
      expect(yield* auditCount).toBe(before)
    }))

  it("its bodies decoded from code, nested 10,000 deep, fail with a decode error naming the path, not a stack overflow", () => {
    let deep: unknown = []
    for (let i = 0; i < 10_000; i++) deep = [deep]
    const cases: ReadonlyArray<readonly [Schema.Schema.AnyNoContext, unknown, string]> = [
      [HttpApprovals.VoteBody, { note: deep }, "note"],
      [HttpApprovals.VoteBody, deep, ""],
      [HttpApprovals.OverrideBody, { reason: "x", durationSeconds: 60, compensatingControls: [deep] }, "compensatingControls[0]"]
    ]
    for (const [schema, input, path] of cases) {
      const decoded = Schema.decodeUnknownEither(schema)(input)
      assert(Either.isLeft(decoded))
      const expected = `${path}${"[0]".repeat(64)}: nested deeper than 64 levels (too_deep)`
      expect(decoded.left.message).toContain(expected)
      expect(ParseResult.ArrayFormatter.formatErrorSync(decoded.left).map((issue) => issue.message)).toEqual([expected])
    }
  })

  it.scopedLive("acknowledgments are acknowledged, not approved", () =>
    Effect.gen(function*() {
      const { call, runs, tokens } = yield* start
      const pending = yield* call("POST", "/tools", { as: tokens.agent, json: { tool: "data.export" } })
      expect(pending.status).toBe(202)
      const wrong = yield* call("POST", `/approvals/${pending.body.approvalId}/approve`, { as: tokens.dana, json: {} })
      expect([wrong.status, wrong.body._tag]).toEqual([409, "WrongKind"])
      const acknowledged = yield* call("POST", `/approvals/${pending.body.approvalId}/acknowledge`, {
        as: tokens.dana,
        json: { note: "read the export terms" }
      })
      expect([acknowledged.status, acknowledged.body.status]).toEqual([200, "approved"])
      yield* eventually(() => runs.length === 1)
    }))

  it.scopedLive("serves its OpenAPI document, with bearer security and every endpoint", () =>
    Effect.gen(function*() {
      const { call } = yield* start
      const spec = yield* call("GET", "/openapi.json")
      expect(spec.status).toBe(200)
      expect(spec.body.info.title).toBe("gavel approvals")
      expect(Object.keys(spec.body.paths).sort()).toEqual([
        "/approvals",
        "/approvals/{id}",
        "/approvals/{id}/acknowledge",
        "/approvals/{id}/approve",
        "/approvals/{id}/reject",
        "/decisions/{id}/override"
      ])
      const approve = spec.body.paths["/approvals/{id}/approve"].post
      expect(Object.keys(approve.responses).sort()).toEqual(["200", "400", "401", "403", "404", "409", "410", "413", "415", "503"])
      const body = approve.requestBody.content["application/json"].schema
      expect(body.$ref).toBe("#/components/schemas/VoteBody")
      expect(Object.keys(spec.body.components.schemas.VoteBody.properties)).toEqual(["note"])
      expect(Object.values(spec.body.components.securitySchemes)).toEqual([{ type: "http", scheme: "bearer" }])
    }))
})
