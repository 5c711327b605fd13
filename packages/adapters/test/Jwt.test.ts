import * as Jwt from "@gavel/adapters/Jwt"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as jose from "jose"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

const secret = "a-test-secret-of-at-least-thirty-two-bytes!"
const issuer = "https://id.example.test"
const audience = "payments-agent"
/** TestClock starts at 0: tokens are issued relative to a fixed instant the tests set. */
const issuedAt = 1_800_000_000

const hs256 = (claims: jose.JWTPayload, options: { readonly exp?: number; readonly key?: string } = {}) =>
  new jose.SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt(issuedAt)
    .setExpirationTime(options.exp ?? issuedAt + 300)
    .sign(new TextEncoder().encode(options.key ?? secret))

const secretVerifier = Jwt.make({ key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer, audience })

/** Runs `f` with the clock at `seconds` (epoch). */
const at = <A, E>(seconds: number, f: Effect.Effect<A, E>) =>
  Effect.zipRight(TestClock.setTime(seconds * 1000), f)

const reasonOf = <A>(effect: Effect.Effect<A, Jwt.InvalidToken>) =>
  Effect.map(Effect.flip(effect), (error) => error.reason)

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

describe("Jwt (HS256)", () => {
  it.effect("maps a valid token's claims to a principal", () =>
    Effect.gen(function*() {
      const verifier = yield* secretVerifier
      const token = yield* Effect.promise(() =>
        hs256({ sub: "alice", roles: ["finance"], tenant: "acme", kind: "human" })
      )
      const principal = yield* at(issuedAt + 10, verifier.fromHeader(`Bearer ${token}`))
      expect(principal).toEqual({ id: "alice", kind: "human", roles: ["finance"], tenant: "acme", attributes: {} })
    }))

  it.effect("reads roles and tenant from configured claims", () =>
    Effect.gen(function*() {
      const verifier = yield* Jwt.make({
        key: { _tag: "Secret", secret: Redacted.make(secret) },
        issuer,
        audience,
        claims: { roles: "https://example.test/roles", tenant: "org" }
      })
      const token = yield* Effect.promise(() =>
        hs256({ sub: "bob", "https://example.test/roles": ["ops"], org: "globex", kind: "agent" })
      )
      const principal = yield* at(issuedAt, verifier.verify(token))
      expect(principal).toMatchObject({ id: "bob", kind: "agent", roles: ["ops"], tenant: "globex" })
    }))

  it.effect("refuses an expired token, within the leeway only", () =>
    Effect.gen(function*() {
      const verifier = yield* secretVerifier
      const token = yield* Effect.promise(() => hs256({ sub: "alice" }, { exp: issuedAt + 60 }))
      // 30 s leeway: accepted 20 s after expiry, refused 40 s after.
      expect((yield* at(issuedAt + 80, verifier.verify(token))).id).toBe("alice")
      expect(yield* at(issuedAt + 100, reasonOf(verifier.verify(token)))).toBe("expired")
    }))

  it.effect("refuses alg: none, a wrong signature, a wrong issuer or audience, and garbage", () =>
    Effect.gen(function*() {
      const verifier = yield* secretVerifier
      const payload = { sub: "mallory", iss: issuer, aud: audience, iat: issuedAt, exp: issuedAt + 300 }
      const unsigned = `${b64({ alg: "none", typ: "JWT" })}.${b64(payload)}.`
      expect(yield* at(issuedAt, reasonOf(verifier.verify(unsigned)))).toBe("unsupported_algorithm")
      const forged = yield* Effect.promise(() => hs256({ sub: "mallory" }, { key: `${secret}-other` }))
      expect(yield* at(issuedAt, reasonOf(verifier.verify(forged)))).toBe("bad_signature")
      const good = yield* Effect.promise(() => hs256({ sub: "alice", roles: ["finance"] }))
      const [header, , signature] = good.split(".")
      const escalated = `${header}.${b64({ ...payload, sub: "alice", roles: ["cfo"] })}.${signature}`
      expect(yield* at(issuedAt, reasonOf(verifier.verify(escalated)))).toBe("bad_signature")
      const otherIssuer = yield* Effect.promise(() =>
        new jose.SignJWT({ sub: "alice" }).setProtectedHeader({ alg: "HS256" }).setIssuer("https://evil.test")
          .setAudience(audience).setExpirationTime(issuedAt + 300).sign(new TextEncoder().encode(secret))
      )
      expect(yield* at(issuedAt, reasonOf(verifier.verify(otherIssuer)))).toBe("invalid_claims")
      const otherAudience = yield* Effect.promise(() =>
        new jose.SignJWT({ sub: "alice" }).setProtectedHeader({ alg: "HS256" }).setIssuer(issuer)
          .setAudience("another-service").setExpirationTime(issuedAt + 300).sign(new TextEncoder().encode(secret))
      )
      expect(yield* at(issuedAt, reasonOf(verifier.verify(otherAudience)))).toBe("invalid_claims")
      expect(yield* at(issuedAt, reasonOf(verifier.verify("not.a.jwt")))).toBe("malformed")
    }))

  it.effect("refuses tokens without exp, without a subject, or with roles that are not strings", () =>
    Effect.gen(function*() {
      const verifier = yield* secretVerifier
      const key = new TextEncoder().encode(secret)
      const noExp = yield* Effect.promise(() =>
        new jose.SignJWT({ sub: "alice" }).setProtectedHeader({ alg: "HS256" }).setIssuer(issuer)
          .setAudience(audience).sign(key)
      )
      expect(yield* at(issuedAt, reasonOf(verifier.verify(noExp)))).toBe("invalid_claims")
      const noSub = yield* Effect.promise(() => hs256({ roles: ["finance"] }))
      expect(yield* at(issuedAt, reasonOf(verifier.verify(noSub)))).toBe("invalid_claims")
      const badRoles = yield* Effect.promise(() => hs256({ sub: "alice", roles: "finance" }))
      expect(yield* at(issuedAt, reasonOf(verifier.verify(badRoles)))).toBe("invalid_claims")
      const badKind = yield* Effect.promise(() => hs256({ sub: "alice", kind: "root" }))
      expect(yield* at(issuedAt, reasonOf(verifier.verify(badKind)))).toBe("invalid_claims")
    }))

  it.effect("takes the token from the Authorization header only as Bearer", () =>
    Effect.gen(function*() {
      const verifier = yield* secretVerifier
      expect(yield* reasonOf(verifier.fromHeader(undefined))).toBe("missing")
      expect(yield* reasonOf(verifier.fromHeader(""))).toBe("missing")
      expect(yield* reasonOf(verifier.fromHeader("Basic YWxpY2U6cHc="))).toBe("malformed")
      const token = yield* Effect.promise(() => hs256({ sub: "alice" }))
      expect((yield* at(issuedAt, verifier.fromHeader(`bearer ${token}`))).id).toBe("alice")
    }))

  it.effect("messages never carry the token", () =>
    Effect.gen(function*() {
      const verifier = yield* secretVerifier
      const token = yield* Effect.promise(() => hs256({ sub: "alice" }, { exp: issuedAt }))
      const expired = yield* at(issuedAt + 3600, Effect.flip(verifier.verify(token)))
      expect(expired.message).not.toContain(token.split(".")[1]!)
    }))

  it.effect("refuses to start on a configuration that cannot be used safely, naming the option", () =>
    Effect.gen(function*() {
      const refused = (options: Partial<Jwt.Options>) =>
        Effect.flip(Jwt.make({ key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer, audience, ...options }))
      const cases: ReadonlyArray<readonly [Partial<Jwt.Options>, string, string]> = [
        // What `Redacted.make(process.env.JWT_SECRET)` gives when the variable is unset.
        [{ key: { _tag: "Secret", secret: Redacted.make(undefined as unknown as string) } }, "key.secret", "missing"],
        [{ key: { _tag: "Secret", secret: undefined as unknown as Redacted.Redacted<string> } }, "key.secret", "missing"],
        [{ key: { _tag: "Secret", secret: Redacted.make("") } }, "key.secret", "empty"],
        [{ key: { _tag: "Secret", secret: Redacted.make("hunter") } }, "key.secret", "needs at least 32"],
        // 31 bytes; and a multi-byte secret counts its UTF-8 bytes.
        [{ key: { _tag: "Secret", secret: Redacted.make("x".repeat(31)) } }, "key.secret", "31 bytes"],
        [{ algorithms: ["HS256", "HS512"] }, "key.secret", "needs at least 64"],
        [{ algorithms: ["RS256"] }, "algorithms", "RS256"],
        [{ algorithms: ["none"] }, "algorithms", "no algorithm"],
        [{ key: { _tag: "Jwks", url: "not a url" } }, "key.url", "not a URL"],
        [{ key: { _tag: "Jwks", url: "https://id.example.com/jwks" }, algorithms: ["HS256"] }, "algorithms", "HS256"],
        [{ issuer: " " }, "issuer", "non-empty"],
        [{ audience: [] }, "audience", "non-empty"],
        [{ clockTolerance: "soon" as Duration.DurationInput }, "clockTolerance", "duration"]
      ]
      for (const [options, option, problem] of cases) {
        const error = yield* refused(options)
        expect(error._tag, option).toBe("InvalidOptions")
        expect(error.option).toBe(option)
        expect(error.message).toContain(problem)
        expect(error.message).not.toContain(secret)
      }
      // Exactly 32 bytes is enough for HS256, counted in UTF-8 bytes.
      yield* Jwt.make({ key: { _tag: "Secret", secret: Redacted.make("x".repeat(32)) }, issuer, audience })
      yield* Jwt.make({ key: { _tag: "Secret", secret: Redacted.make("é".repeat(16)) }, issuer, audience })
    }))
})

// -----------------------------------------------------------------------------
// JWKS over a real HTTP server
// -----------------------------------------------------------------------------

let server: http.Server
let jwksUrl = ""
let signingKey: jose.CryptoKey
let jwksUp = true

beforeAll(async () => {
  const { privateKey, publicKey } = await jose.generateKeyPair("RS256")
  signingKey = privateKey
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: "key-1", alg: "RS256", use: "sig" }
  server = http.createServer((_request, res) => {
    if (!jwksUp) {
      res.writeHead(503).end()
      return
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`
})

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

const rs256 = (claims: jose.JWTPayload, kid = "key-1") =>
  new jose.SignJWT(claims).setProtectedHeader({ alg: "RS256", kid }).setIssuer(issuer).setAudience(audience)
    .setIssuedAt(issuedAt).setExpirationTime(issuedAt + 300).sign(signingKey)

describe("Jwt (JWKS)", () => {
  it.effect("verifies RS256 tokens with the keys the JWKS URL serves", () =>
    Effect.gen(function*() {
      const verifier = yield* Jwt.make({ key: { _tag: "Jwks", url: jwksUrl }, issuer, audience })
      const token = yield* Effect.promise(() => rs256({ sub: "carol", roles: ["finance"] }))
      expect((yield* at(issuedAt, verifier.verify(token))).roles).toEqual(["finance"])
      const unknownKey = yield* Effect.promise(() => rs256({ sub: "carol" }, "key-2"))
      expect(yield* at(issuedAt, reasonOf(verifier.verify(unknownKey)))).toBe("bad_signature")
      // An HS256 token signed with some secret is not accepted by a JWKS verifier.
      const hs = yield* Effect.promise(() => hs256({ sub: "carol" }))
      expect(yield* at(issuedAt, reasonOf(verifier.verify(hs)))).toBe("unsupported_algorithm")
    }))

  it.live("an unreachable key set refuses the token (keys_unavailable), never accepts it", () =>
    Effect.gen(function*() {
      jwksUp = false
      const verifier = yield* Jwt.make({ key: { _tag: "Jwks", url: jwksUrl }, issuer, audience })
      const token = yield* Effect.promise(() =>
        new jose.SignJWT({ sub: "carol" }).setProtectedHeader({ alg: "RS256", kid: "key-1" }).setIssuer(issuer)
          .setAudience(audience).setExpirationTime("5 minutes").sign(signingKey)
      )
      const error = yield* Effect.flip(verifier.verify(token))
      jwksUp = true
      expect(error.reason).toBe("keys_unavailable")
    }))
})
