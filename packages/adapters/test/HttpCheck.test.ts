import * as HttpCheck from "@gavel/adapters/HttpCheck"
import { Action, Decision, Policy, PolicyError } from "@gavel/core"
import { FetchHttpClient, type HttpClient } from "@effect/platform"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

// -----------------------------------------------------------------------------
// a real HTTP server
// -----------------------------------------------------------------------------

interface Received {
  readonly method: string
  readonly path: string
  readonly query: URLSearchParams
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** Every request the server received, in order. */
const received: Array<Received> = []
/** Requests per `?key=`, for the stateful routes. */
const hits = new Map<string, number>()
/** Keys of the requests whose connection closed before the server answered. */
const abandoned = new Set<string>()

const countHit = (key: string): number => {
  const n = (hits.get(key) ?? 0) + 1
  hits.set(key, n)
  return n
}

const sendJson = (res: http.ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
}

/** Never answers; records when the client goes away. */
const hang = (res: http.ServerResponse, key: string): void => {
  res.on("close", () => {
    if (!res.writableFinished) abandoned.add(key)
  })
}

/** `{"allowed": …}`: refuses `shell.exec`, allows anything else. */
const answerOk = (res: http.ServerResponse, body: string): void => {
  const input = JSON.parse(body) as { readonly name?: string }
  sendJson(res, 200, { allowed: input.name !== "shell.exec" })
}

const handle = (req: http.IncomingMessage, res: http.ServerResponse, body: string): void => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1")
  received.push({ method: req.method ?? "", path: url.pathname, query: url.searchParams, headers: req.headers, body })
  const key = url.searchParams.get("key") ?? url.pathname
  switch (url.pathname) {
    case "/ok":
      return answerOk(res, body)
    case "/slow":
      countHit(key)
      return hang(res, key)
    case "/slow-once":
      return countHit(key) === 1 ? hang(res, key) : answerOk(res, body)
    case "/error":
      res.writeHead(500, { "content-type": "text/plain" }).end("internal stack trace: secret-token-123")
      return
    case "/garbage":
      res.writeHead(200, { "content-type": "application/json" }).end("not json")
      return
    case "/wrong-shape":
      return sendJson(res, 200, { unexpected: 1 })
    case "/deep":
      res.writeHead(200, { "content-type": "application/json" }).end(`{"allowed":${"[".repeat(10_000)}${"]".repeat(10_000)}}`)
      return
    case "/flaky": {
      const failures = Number(url.searchParams.get("failures") ?? "0")
      if (countHit(key) <= failures) return sendJson(res, 503, { error: "unavailable" })
      return answerOk(res, body)
    }
    default:
      res.writeHead(404).end()
  }
}

const server = http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")))
})

let base = ""
/** A port on 127.0.0.1 with nothing listening. */
let closedPort = 0

const listen = (s: http.Server): Promise<number> =>
  new Promise((resolve, reject) => {
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port))
  })

beforeAll(async () => {
  base = `http://127.0.0.1:${await listen(server)}`
  const probe = http.createServer()
  closedPort = await listen(probe)
  await new Promise<void>((resolve) => probe.close(() => resolve()))
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

// -----------------------------------------------------------------------------
// helpers
// -----------------------------------------------------------------------------

const action = Action.make({
  actor: { id: "agent-1", kind: "agent", roles: ["operator"] },
  kind: "tool",
  name: "search",
  metadata: { tenant: "acme" }
})
const shell = Action.make({ actor: { id: "agent-1", kind: "agent" }, kind: "tool", name: "shell.exec" })

const Verdict = Schema.Struct({ allowed: Schema.Boolean })

const check = (
  path: string | ((action: Action.Action) => string),
  overrides: Partial<HttpCheck.Options<typeof Verdict.Type, typeof Verdict.Encoded>> = {}
) =>
  HttpCheck.make({
    id: "compliance.verify",
    system: "compliance-service",
    operation: "verify",
    url: typeof path === "string" ? `${base}${path}` : (a) => `${base}${path(a)}`,
    body: (a) => ({ actor: a.actor.id, name: a.name }),
    response: Verdict,
    decide: ({ allowed }) =>
      allowed ? Decision.allow() : Decision.deny({ code: "compliance.refused", message: "Refused by compliance" }),
    timeout: "200 millis",
    ...overrides
  })

const evaluate = <E>(policy: Policy.Policy<E, HttpClient.HttpClient>, a = action) =>
  Policy.evaluate(policy, a).pipe(Effect.provide(FetchHttpClient.layer))

const failure = <E>(policy: Policy.Policy<E, HttpClient.HttpClient>, a = action) => Effect.flip(evaluate(policy, a))

const expectExternal = (error: unknown): PolicyError.ExternalCheckFailed => {
  expect(error).toBeInstanceOf(PolicyError.ExternalCheckFailed)
  const e = error as PolicyError.ExternalCheckFailed
  expect(e.system).toBe("compliance-service")
  expect(e.operation).toBe("verify")
  return e
}

/** Polls `predicate` every 10 ms for up to a second. */
const eventually = (predicate: () => boolean) =>
  Effect.suspend(() => (predicate() ? Effect.void : Effect.fail("not yet"))).pipe(
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeout("1 second"),
    Effect.orDie
  )

let keys = 0
const freshKey = (prefix: string) => `${prefix}-${++keys}`

// -----------------------------------------------------------------------------
// tests
// -----------------------------------------------------------------------------

describe("HttpCheck", () => {
  it.live("POSTs the JSON body and decides from a decoded 2xx answer", () =>
    Effect.gen(function*() {
      const policy = check((a) => `/ok?tenant=${a.metadata.tenant}`, { headers: { "x-api-key": "k-1" } })
      expect(policy.isSync).toBe(false)
      expect(policy.id).toBe("compliance.verify")

      expect(yield* evaluate(policy)).toEqual(Decision.allow())
      const request = received.at(-1)!
      expect(request.method).toBe("POST")
      expect(request.query.get("tenant")).toBe("acme")
      expect(request.headers["content-type"]).toBe("application/json")
      expect(request.headers["accept"]).toBe("application/json")
      expect(request.headers["x-api-key"]).toBe("k-1")
      expect(JSON.parse(request.body)).toEqual({ actor: "agent-1", name: "search" })

      const denied = yield* evaluate(policy, shell)
      expect(denied._tag).toBe("Deny")
      expect(Decision.reasonCodes(denied)).toEqual(["compliance.refused"])
      expect(denied._tag === "Deny" && denied.reasons[0]!.policyId).toBe("compliance.verify")
    }))

  it.live("times out with PolicyTimeout and aborts the request", () =>
    Effect.gen(function*() {
      const key = freshKey("slow")
      const start = Date.now()
      const error = yield* failure(check(`/slow?key=${key}`))
      const elapsed = Date.now() - start

      expect(error).toBeInstanceOf(PolicyError.PolicyTimeout)
      const timeout = error as PolicyError.PolicyTimeout
      expect(timeout.policyId).toBe("compliance.verify")
      expect(Duration.toMillis(timeout.limit)).toBe(200)
      expect(timeout.budget).toBe(false)
      expect(elapsed).toBeGreaterThanOrEqual(190)
      expect(elapsed).toBeLessThan(1000)

      // The server sees the connection go away: the fetch was aborted.
      yield* eventually(() => abandoned.has(key))
      expect(hits.get(key)).toBe(1)
    }))

  it.live("fails with ExternalCheckFailed on a non-2xx, without quoting the body", () =>
    Effect.gen(function*() {
      const error = expectExternal(yield* failure(check("/error")))
      expect(error.detail).toBe("HTTP 500")
      expect(error.message).not.toContain("secret-token-123")
      expect(JSON.stringify(error)).not.toContain("secret-token-123")
    }))

  it.live("fails with ExternalCheckFailed on a body that is not JSON", () =>
    Effect.gen(function*() {
      const error = expectExternal(yield* failure(check("/garbage")))
      expect(error.detail).toBe("the response body is not JSON")
    }))

  it.live("fails with ExternalCheckFailed on JSON that does not decode", () =>
    Effect.gen(function*() {
      const error = expectExternal(yield* failure(check("/wrong-shape")))
      expect(error.detail).toBe("the response body does not decode: allowed is missing")
    }))

  it.live("fails with ExternalCheckFailed on JSON nested too deeply to decode, not a stack overflow", () =>
    Effect.gen(function*() {
      const error = expectExternal(yield* failure(check("/deep")))
      expect(error.detail).toBe("the response body exceeds the limits (too_deep)")
    }))

  it.live("fails with ExternalCheckFailed when the service is unreachable", () =>
    Effect.gen(function*() {
      const policy = check("/ok", { url: `http://127.0.0.1:${closedPort}/ok` })
      const error = expectExternal(yield* failure(policy))
      expect(error.detail).toBe("request failed (ECONNREFUSED)")
      expect(error.cause).toBeDefined()
    }))

  it.live("retries ExternalCheckFailed with the retry schedule", () =>
    Effect.gen(function*() {
      const recovers = freshKey("flaky")
      const result = yield* evaluate(check(`/flaky?key=${recovers}&failures=2`, { retry: Schedule.recurs(2) }))
      expect(result).toEqual(Decision.allow())
      expect(hits.get(recovers)).toBe(3)

      const givesUp = freshKey("flaky")
      const error = expectExternal(
        yield* failure(check(`/flaky?key=${givesUp}&failures=3`, { retry: Schedule.recurs(1) }))
      )
      expect(error.detail).toBe("HTTP 503")
      expect(hits.get(givesUp)).toBe(2)
    }))

  it.live("retries PolicyTimeout, each attempt with its own timeout", () =>
    Effect.gen(function*() {
      const key = freshKey("slow-once")
      const policy = check(`/slow-once?key=${key}`, { timeout: "150 millis", retry: Schedule.recurs(1) })
      expect(yield* evaluate(policy)).toEqual(Decision.allow())
      expect(hits.get(key)).toBe(2)
      yield* eventually(() => abandoned.has(key))
    }))

  it.live("fails with PolicyCancelled, not retried, when the request is aborted from elsewhere", () =>
    Effect.gen(function*() {
      const key = freshKey("slow")
      // A fetch whose requests something else aborts after 50 ms.
      const abortingFetch: typeof globalThis.fetch = (input, init) => {
        const elsewhere = new AbortController()
        setTimeout(() => elsewhere.abort(), 50)
        const signal = init?.signal ? AbortSignal.any([init.signal, elsewhere.signal]) : elsewhere.signal
        return globalThis.fetch(input, { ...init, signal })
      }
      const policy = check(`/slow?key=${key}`, { timeout: "1 second", retry: Schedule.recurs(3) })
      const error = yield* failure(policy).pipe(Effect.provideService(FetchHttpClient.Fetch, abortingFetch))
      expect(error).toBeInstanceOf(PolicyError.PolicyCancelled)
      expect((error as PolicyError.PolicyCancelled).policyId).toBe("compliance.verify")
      expect(hits.get(key)).toBe(1)
    }))

  it.live("yields Deny with policy.defect when the request body cannot be serialized", () =>
    Effect.gen(function*() {
      const policy = check("/ok", { body: () => ({ amount: 1n }) })
      const result = yield* evaluate(policy)
      expect(result._tag).toBe("Deny")
      expect(Decision.reasonCodes(result)).toEqual(["policy.defect"])
    }))

  it.live("fails closed under Policy.failClosed: an outage or a timeout denies", () =>
    Effect.gen(function*() {
      const outage = yield* evaluate(Policy.failClosed(check("/error")))
      expect(outage._tag).toBe("Deny")
      expect(Decision.reasonCodes(outage)).toEqual(["external.unavailable"])

      const key = freshKey("slow")
      const slow = yield* evaluate(Policy.failClosed(check(`/slow?key=${key}`, { timeout: "100 millis" })))
      expect(slow._tag).toBe("Deny")
      expect(Decision.reasonCodes(slow)).toEqual(["policy.timeout"])
      yield* eventually(() => abandoned.has(key))

      expect(yield* evaluate(Policy.failClosed(check("/ok")))).toEqual(Decision.allow())
    }))
})
