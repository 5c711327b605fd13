/**
 * Bearer JWTs to principals (docs/jwt.md): a plain Node HTTP server that
 * turns each request's `Authorization` header into a gavel `Principal` with
 * `Jwt.make` and `verifier.fromHeader`, or answers 401 with the reason.
 *
 * 1. A verifier configuration that cannot be used safely — a secret shorter
 *    than HS256 needs — refuses to start with `InvalidOptions`.
 * 2. The verifier (HS256 secret, issuer, audience, the roles and tenant read
 *    from the IdP's own claim names) behind `node:http` on a free port of
 *    127.0.0.1.
 * 3. Requests played with `fetch`: alice's token gives her principal; no
 *    header, an expired token, a token signed with another secret and an
 *    unsigned (`alg: none`) token are refused, each with its reason.
 *
 * The tokens are minted here with `jose`; in production they come from your
 * identity provider. The program checks what it prints: a wrong outcome is
 * reported on stderr and the process exits with code 1.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/jwt.ts
 */
import * as Jwt from "@gavel/adapters/Jwt"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as jose from "jose"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { check, fail, report } from "./support/checks.js"

const secret = "example-secret-change-me-32-bytes-long" // openssl rand -base64 48, in real life
const options = {
  key: { _tag: "Secret", secret: Redacted.make(secret) },
  issuer: "https://id.example.com",
  audience: "payments-agent",
  claims: { roles: "https://example.com/roles", tenant: "org" } // defaults: sub, roles, tenant, kind
} as const

const mint = (signingSecret: string, expiresAt: number) =>
  new jose.SignJWT({ "https://example.com/roles": ["finance"], org: "acme" })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("alice")
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setExpirationTime(expiresAt)
    .sign(new TextEncoder().encode(signingSecret))

const main = Effect.gen(function*() {
  // 1. a weak secret refuses to start
  const weak = yield* Effect.exit(Jwt.make({ ...options, key: { _tag: "Secret", secret: Redacted.make("hunter2") } }))
  const refusal = Exit.isFailure(weak) && weak.cause._tag === "Fail" ? weak.cause.error : undefined
  console.log(`a 7-byte secret → ${refusal === undefined ? "accepted?!" : `${refusal._tag}: ${refusal.message}`}`)
  check("weak secret refused", refusal?.option === "key.secret", String(refusal?.option))

  // 2. the verifier behind a Node HTTP server
  const verifier = yield* Jwt.make(options)
  const server = createServer((request, response) => {
    Effect.runPromise(Effect.either(verifier.fromHeader(request.headers.authorization))).then((result) => {
      response.writeHead(result._tag === "Right" ? 200 : 401, { "content-type": "application/json" })
      response.end(JSON.stringify(result._tag === "Right" ? result.right : { reason: result.left.reason }))
    })
  })
  yield* Effect.acquireRelease(
    Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
    () => Effect.sync(() => server.close())
  )
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  console.log(`\nlistening on ${url}`)

  // 3. requests
  const now = Math.floor(Date.now() / 1000)
  const unsigned = new jose.UnsecuredJWT({ "https://example.com/roles": ["finance"] })
    .setSubject("alice").setIssuer(options.issuer).setAudience(options.audience).setExpirationTime(now + 3600)
    .encode()
  const cases: ReadonlyArray<readonly [string, string | undefined, string]> = [
    ["alice's token", `Bearer ${yield* Effect.promise(() => mint(secret, now + 3600))}`, "200"],
    ["no header", undefined, "401 missing"],
    ["an expired token", `Bearer ${yield* Effect.promise(() => mint(secret, now - 3600))}`, "401 expired"],
    [
      "another secret",
      `Bearer ${yield* Effect.promise(() => mint("another-secret-also-32-bytes-long!!", now + 3600))}`,
      "401 bad_signature"
    ],
    ["alg: none", `Bearer ${unsigned}`, "401 unsupported_algorithm"]
  ]
  for (const [label, authorization, expected] of cases) {
    const response = yield* Effect.promise(() =>
      fetch(url, authorization === undefined ? {} : { headers: { authorization } })
    )
    const body = (yield* Effect.promise(() => response.json())) as { readonly reason?: string }
    const got = response.status === 200 ? "200" : `${response.status} ${body.reason}`
    console.log(`${label} → ${response.status} ${JSON.stringify(body)}`)
    check(label, got === expected, got)
  }
}).pipe(Effect.scoped)

Effect.runPromise(main).then(report, (error) => {
  fail(String(error))
  report()
})
