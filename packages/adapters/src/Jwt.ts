/**
 * Bearer JWT verification (via `jose`): turns an `Authorization: Bearer …`
 * header into the `Principal` gavel governs and approvals are cast by.
 *
 * Tokens are verified with an HS256 secret or the keys of a JWKS URL; the
 * issuer, audience, expiry and not-before are checked against the `Clock`
 * (so `TestClock` drives expiry) with a small leeway. Unsigned (`alg: none`)
 * tokens and algorithms outside the allowed list are refused.
 *
 * @since 0.1.0
 */
import type { Action } from "@gavel/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as jose from "jose"

/**
 * Where the verification keys come from.
 *
 * @since 0.1.0
 * @category models
 */
export type Key =
  | { readonly _tag: "Secret"; readonly secret: Redacted.Redacted<string> }
  | { readonly _tag: "Jwks"; readonly url: string }

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly key: Key
  /** The required `iss`. */
  readonly issuer: string
  /** The required `aud` (one of them, when several are accepted). */
  readonly audience: string | ReadonlyArray<string>
  /**
   * Accepted algorithms. Default `["HS256"]` for a secret, and
   * `["RS256", "PS256", "ES256", "EdDSA"]` for a JWKS.
   */
  readonly algorithms?: ReadonlyArray<string> | undefined
  /** Leeway for `exp` and `nbf`. Default 30 seconds. */
  readonly clockTolerance?: Duration.DurationInput | undefined
  /** Claim names. Defaults: `sub`, `roles`, `tenant`, and `kind` (absent: `"human"`). */
  readonly claims?: {
    readonly subject?: string | undefined
    readonly roles?: string | undefined
    readonly tenant?: string | undefined
    readonly kind?: string | undefined
  } | undefined
}

/**
 * Why a request carries no usable identity. `reason` is stable, for logs and
 * metrics; the message never contains the token.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", {
  reason: Schema.Literal(
    "missing",
    "malformed",
    "unsupported_algorithm",
    "bad_signature",
    "expired",
    "invalid_claims",
    "keys_unavailable"
  ),
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid bearer token (${this.reason}): ${this.detail}`
  }
}

/**
 * A verifier configuration that cannot be used safely: no secret, an empty
 * one or one shorter than its algorithms require (RFC 7518 §3.2: at least
 * the hash's size, 32 bytes for HS256), no accepted algorithm, a JWKS URL
 * that is not a URL, an empty issuer or audience, a clock tolerance that is
 * not a duration. `option` names the offending option; the message never
 * contains the secret.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>()("InvalidOptions", {
  option: Schema.String,
  problem: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid JWT verifier configuration: ${this.option} ${this.problem}`
  }
}

/**
 * The shortest secret, in bytes, each HMAC algorithm accepts (RFC 7518
 * §3.2: a key at least as long as the hash output).
 *
 * @since 0.1.0
 * @category models
 */
export const minimumSecretBytes: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 }

/**
 * A configured verifier.
 *
 * @since 0.1.0
 * @category models
 */
export interface Verifier {
  /** Verifies a compact JWT and maps its claims to a principal. */
  readonly verify: (token: string) => Effect.Effect<Action.Principal, InvalidToken>
  /** Takes the token from an `Authorization` header value (`Bearer <token>`). */
  readonly fromHeader: (authorization: string | null | undefined) => Effect.Effect<Action.Principal, InvalidToken>
}

const invalid = (reason: InvalidToken["reason"], detail: string) => new InvalidToken({ reason, detail })

const fromJose = (remote: boolean) => (error: unknown): InvalidToken => {
  // With a remote key set, what jose cannot classify is the fetch failing
  // (connection refused, a non-200 answer): the keys are unavailable.
  if (!(error instanceof jose.errors.JOSEError)) {
    return remote
      ? invalid("keys_unavailable", "the key set could not be fetched")
      : invalid("malformed", "the token could not be read")
  }
  if (remote && error.code === "ERR_JOSE_GENERIC") {
    return invalid("keys_unavailable", "the key set could not be fetched")
  }
  switch (error.code) {
    case "ERR_JWT_EXPIRED":
      return invalid("expired", "the token has expired")
    case "ERR_JWT_CLAIM_VALIDATION_FAILED": {
      const claim = (error as jose.errors.JWTClaimValidationFailed).claim
      return invalid("invalid_claims", `claim "${claim}" failed validation`)
    }
    case "ERR_JOSE_ALG_NOT_ALLOWED":
    case "ERR_JOSE_NOT_SUPPORTED":
      return invalid("unsupported_algorithm", "the token's algorithm is not accepted")
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return invalid("bad_signature", "the signature does not verify with the configured keys")
    case "ERR_JWKS_TIMEOUT":
    case "ERR_JWKS_INVALID":
      return invalid("keys_unavailable", "the key set could not be fetched")
    default:
      return invalid("malformed", "the token is not a valid signed JWT")
  }
}

const strings = (value: unknown): ReadonlyArray<string> | undefined =>
  Array.isArray(value) && value.every((v) => typeof v === "string") ? value : undefined

/** Checks what can be checked before the first token: every unusable option refuses to start. */
const checkOptions = (options: Options): Effect.Effect<{
  readonly key: Uint8Array | ReturnType<typeof jose.createRemoteJWKSet>
  readonly algorithms: Array<string>
  readonly tolerance: number
}, InvalidOptions> =>
  Effect.gen(function*() {
    const refuse = (option: string, problem: string) => new InvalidOptions({ option, problem })
    if (typeof options.issuer !== "string" || options.issuer.trim() === "") {
      return yield* refuse("issuer", "must be a non-empty string")
    }
    const audiences = typeof options.audience === "string" ? [options.audience] : options.audience
    if (!Array.isArray(audiences) || audiences.length === 0 || audiences.some((a) => typeof a !== "string" || a.trim() === "")) {
      return yield* refuse("audience", "must be a non-empty string or a non-empty list of them")
    }
    const tolerance = Duration.decodeUnknown(options.clockTolerance ?? "30 seconds")
    if (Option.isNone(tolerance) || !Duration.isFinite(tolerance.value)) {
      return yield* refuse("clockTolerance", "must be a finite duration")
    }
    // An unsigned token is never accepted, whatever the configuration says.
    const accepted = (given: ReadonlyArray<string> | undefined, fallback: ReadonlyArray<string>) =>
      [...(given ?? fallback)].filter((alg) => typeof alg === "string" && alg.toLowerCase() !== "none")
    if (options.key?._tag === "Secret") {
      const secret = Redacted.isRedacted(options.key.secret) ? Redacted.value(options.key.secret) : undefined
      if (typeof secret !== "string") return yield* refuse("key.secret", "is missing (a Redacted string is required)")
      if (secret.length === 0) return yield* refuse("key.secret", "is empty")
      const algorithms = accepted(options.algorithms, ["HS256"])
      if (algorithms.length === 0) return yield* refuse("algorithms", "accepts no algorithm")
      const other = algorithms.find((alg) => minimumSecretBytes[alg] === undefined)
      if (other !== undefined) {
        return yield* refuse("algorithms", `lists ${other}, which a shared secret cannot verify (use a JWKS)`)
      }
      const key = new TextEncoder().encode(secret)
      const needed = Math.max(...algorithms.map((alg) => minimumSecretBytes[alg]!))
      if (key.length < needed) {
        return yield* refuse(
          "key.secret",
          `is ${key.length} bytes; ${algorithms.join(", ")} needs at least ${needed} (RFC 7518 §3.2)`
        )
      }
      return { key, algorithms, tolerance: Math.floor(Duration.toSeconds(tolerance.value)) }
    }
    if (options.key?._tag === "Jwks") {
      const jwks = options.key.url
      const url = yield* Effect.try({
        try: () => new URL(jwks),
        catch: () => refuse("key.url", "is not a URL")
      })
      const algorithms = accepted(options.algorithms, ["RS256", "PS256", "ES256", "EdDSA"])
      if (algorithms.length === 0) return yield* refuse("algorithms", "accepts no algorithm")
      const symmetric = algorithms.find((alg) => minimumSecretBytes[alg] !== undefined)
      if (symmetric !== undefined) {
        return yield* refuse("algorithms", `lists ${symmetric}, a shared-secret algorithm, for a JWKS`)
      }
      return {
        key: jose.createRemoteJWKSet(url),
        algorithms,
        tolerance: Math.floor(Duration.toSeconds(tolerance.value))
      }
    }
    return yield* refuse("key", "must be { _tag: \"Secret\", secret } or { _tag: \"Jwks\", url }")
  })

/**
 * Builds a verifier. Refuses to start with {@link InvalidOptions} on a
 * configuration that cannot be used safely: a missing or empty secret, one
 * shorter than its algorithms require (32 bytes for HS256), a JWKS URL that
 * is not a URL, no accepted algorithm, an empty issuer or audience.
 *
 * @example
 * ```ts
 * import * as Jwt from "@gavel/adapters/Jwt"
 * import { Redacted } from "effect"
 *
 * const verifier = Jwt.make({
 *   key: { _tag: "Secret", secret: Redacted.make(process.env.JWT_SECRET ?? "") },
 *   issuer: "https://id.example.com",
 *   audience: "payments-agent"
 * })
 * // verifier.fromHeader(request.headers.authorization) → Principal | InvalidToken
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Verifier, InvalidOptions> =>
  Effect.gen(function*() {
    const claims = {
      subject: options.claims?.subject ?? "sub",
      roles: options.claims?.roles ?? "roles",
      tenant: options.claims?.tenant ?? "tenant",
      kind: options.claims?.kind ?? "kind"
    }
    const { algorithms, key, tolerance } = yield* checkOptions(options)

    const toPrincipal = (payload: jose.JWTPayload): Effect.Effect<Action.Principal, InvalidToken> => {
      const id = payload[claims.subject]
      if (typeof id !== "string" || id.trim() === "") {
        return Effect.fail(invalid("invalid_claims", `claim "${claims.subject}" must be a non-empty string`))
      }
      const rawRoles = payload[claims.roles]
      const roles = rawRoles === undefined ? [] : strings(rawRoles)
      if (roles === undefined) {
        return Effect.fail(invalid("invalid_claims", `claim "${claims.roles}" must be an array of strings`))
      }
      const tenant = payload[claims.tenant]
      if (tenant !== undefined && typeof tenant !== "string") {
        return Effect.fail(invalid("invalid_claims", `claim "${claims.tenant}" must be a string`))
      }
      const kind = payload[claims.kind] ?? "human"
      if (kind !== "human" && kind !== "agent" && kind !== "service") {
        return Effect.fail(invalid("invalid_claims", `claim "${claims.kind}" must be human, agent or service`))
      }
      const principal: Action.Principal = tenant === undefined
        ? { id, kind, roles, attributes: {} }
        : { id, kind, roles, tenant, attributes: {} }
      return Effect.succeed(principal)
    }

    const verify = (token: string): Effect.Effect<Action.Principal, InvalidToken> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.tryPromise({
          try: () =>
            jose.jwtVerify(token, key as Uint8Array, {
              issuer: options.issuer,
              audience: typeof options.audience === "string" ? options.audience : [...options.audience],
              algorithms,
              clockTolerance: tolerance,
              currentDate: new Date(now),
              requiredClaims: ["exp"]
            }),
          catch: fromJose(options.key._tag === "Jwks")
        })).pipe(Effect.flatMap(({ payload }) => toPrincipal(payload)))

    const fromHeader = (authorization: string | null | undefined) => {
      if (authorization === null || authorization === undefined || authorization.trim() === "") {
        return Effect.fail(invalid("missing", "no Authorization header"))
      }
      const match = /^Bearer[ ]+([A-Za-z0-9\-_.]+)\s*$/i.exec(authorization)
      if (match === null) return Effect.fail(invalid("malformed", "the Authorization header is not \"Bearer <token>\""))
      return verify(match[1]!)
    }

    return { verify, fromHeader }
  })
