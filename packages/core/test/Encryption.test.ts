import { Encryption } from "@gavel/core"
import { Fixtures } from "@gavel/testing"
import { assert, describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"

// Keys made fresh per run: a test that passes does not depend on their bytes.
const rawKey = () => randomBytes(32).toString("base64url")
const K1 = rawKey()
const K2 = rawKey()
const K3 = rawKey()
const CANARY = "CANARY-plaintext-7f3a"
const AAD = "apr_1:sha256:aaaa"

const ring = (keys: ReadonlyArray<readonly [string, string]>, active: string): Encryption.Options => ({
  keys: keys.map(([id, key]) => ({ id, key: Redacted.make(key) })),
  active
})

const make = (keys: ReadonlyArray<readonly [string, string]>, active: string) =>
  Encryption.make(ring(keys, active)).pipe(Effect.orDie)

/** The refusal's reason (and the error, for its message), or a test failure. */
const refusal = <A>(effect: Effect.Effect<A, Encryption.EncryptionError>) =>
  Effect.flip(effect).pipe(Effect.map((error) => {
    assert.strictEqual(error._tag, "EncryptionError")
    return error
  }))

const reasonOf = <A>(effect: Effect.Effect<A, Encryption.EncryptionError>) =>
  Effect.map(refusal(effect), (error) => error.reason)

/** Changes one byte of a base64url part. */
const flip = (part: string, index: (length: number) => number): string => {
  const bytes = Either.getOrThrow(Encoding.decodeBase64Url(part))
  const i = index(bytes.length)
  bytes[i] = bytes[i]! ^ 0x01
  return Encoding.encodeBase64Url(bytes)
}

const withPart = (sealed: string, at: number, change: (part: string) => string) =>
  sealed.split(".").map((part, i) => (i === at ? change(part) : part)).join(".")

describe("Encryption.make", () => {
  it.effect("round-trips a value, with a fresh IV each time", () =>
    Effect.gen(function*() {
      const enc = yield* make([["k1", K1]], "k1")
      expect(enc.activeKeyId).toBe("k1")
      const a = yield* enc.seal(CANARY, AAD)
      const b = yield* enc.seal(CANARY, AAD)
      expect(a).toMatch(/^gavel\.v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/)
      expect(a).not.toBe(b)
      expect(a).not.toContain(CANARY)
      expect(yield* enc.open(a, AAD)).toBe(CANARY)
      expect(yield* enc.open(b, AAD)).toBe(CANARY)
      // Empty and non-ASCII values too.
      expect(yield* enc.open(yield* enc.seal("", ""), "")).toBe("")
      const unicode = "Zahlung 💶 für Müller — 支付"
      expect(yield* enc.open(yield* enc.seal(unicode, "ü"), "ü")).toBe(unicode)
    }))

  it.effect("each key of a ring opens its own values", () =>
    Effect.gen(function*() {
      const keys = [["k1", K1], ["k2", K2], ["k3", K3]] as const
      const reader = yield* make(keys, "k1")
      for (const [id] of keys) {
        const writer = yield* make(keys, id)
        const sealed = yield* writer.seal(`value of ${id}`, AAD)
        expect(Encryption.keyIdOf(sealed)).toEqual(Option.some(id))
        expect(yield* reader.open(sealed, AAD)).toBe(`value of ${id}`)
      }
    }))

  it.effect("rotation: old values open with the old key, new ones use the new key, a removed key is unknown", () =>
    Effect.gen(function*() {
      const before = yield* make([["k1", K1]], "k1")
      const old = yield* before.seal("old", AAD)

      const rotating = yield* make([["k1", K1], ["k2", K2]], "k2")
      expect(rotating.activeKeyId).toBe("k2")
      expect(yield* rotating.open(old, AAD)).toBe("old")
      const resealed = yield* rotating.seal(yield* rotating.open(old, AAD), AAD)
      expect(Encryption.keyIdOf(resealed)).toEqual(Option.some("k2"))

      const after = yield* make([["k2", K2]], "k2")
      expect(yield* after.open(resealed, AAD)).toBe("old")
      const error = yield* refusal(after.open(old, AAD))
      expect(error.reason).toBe("unknown_key")
      expect(error.keyId).toBe("k1")
      expect(error.message).toContain("\"k1\"")
    }))

  it.effect("a different associated data does not open (a value moved to another approval)", () =>
    Effect.gen(function*() {
      const enc = yield* make([["k1", K1]], "k1")
      const sealed = yield* enc.seal(CANARY, "apr_1:hash")
      expect(yield* reasonOf(enc.open(sealed, "apr_2:hash"))).toBe("tampered")
      expect(yield* reasonOf(enc.open(sealed, ""))).toBe("tampered")
      expect(yield* reasonOf(enc.open(sealed, "apr_1:hash "))).toBe("tampered")
    }))

  it.effect("a changed byte of the IV, the ciphertext or the tag, or another key id of the ring: tampered", () =>
    Effect.gen(function*() {
      const enc = yield* make([["k1", K1], ["k2", K1]], "k1")
      const sealed = yield* enc.seal(CANARY, AAD)
      const changed = [
        withPart(sealed, 3, (iv) => flip(iv, () => 0)),
        withPart(sealed, 3, (iv) => flip(iv, (n) => n - 1)),
        withPart(sealed, 4, (body) => flip(body, () => 0)), // ciphertext
        withPart(sealed, 4, (body) => flip(body, (n) => n - 17)), // last ciphertext byte
        withPart(sealed, 4, (body) => flip(body, (n) => n - 16)), // first tag byte
        withPart(sealed, 4, (body) => flip(body, (n) => n - 1)), // last tag byte
        // The same key bytes under another id: the key id is authenticated too.
        withPart(sealed, 2, () => "k2")
      ]
      for (const value of changed) {
        expect(value).not.toBe(sealed)
        const error = yield* refusal(enc.open(value, AAD))
        expect(error.reason).toBe("tampered")
        expect(error.message).not.toContain(CANARY)
      }
      expect(yield* enc.open(sealed, AAD)).toBe(CANARY)
    }))

  it.effect("malformed values are refused as such", () =>
    Effect.gen(function*() {
      const enc = yield* make([["k1", K1]], "k1")
      const sealed = yield* enc.seal(CANARY, AAD)
      const [, , , iv, body] = sealed.split(".") as [string, string, string, string, string]
      const malformed = [
        "",
        CANARY,
        "gavel",
        "gavel.v1",
        `gavel.v2.k1.${iv}.${body}`,
        `gavel.v1.k1.${iv}.${body}.x`,
        `gavel.v1.k1.${iv}`,
        `gavel.v1.bad id.${iv}.${body}`,
        `gavel.v1.k1.${iv}=.${body}`, // padding
        `gavel.v1.k1.${iv.slice(1)}.${body}`, // an IV of 11 bytes and a bit
        `gavel.v1.k1.${iv}AAAA.${body}`, // an IV of 15 bytes
        `gavel.v1.k1.${iv}.${body.slice(0, 20)}`, // shorter than a tag
        `gavel.v1.k1.${iv}.${body.replace(/./, "+")}`, // base64, not base64url
        `GAVEL.v1.k1.${iv}.${body}`
      ]
      for (const value of malformed) {
        const error = yield* refusal(enc.open(value, AAD))
        expect(error.reason, value).toBe("malformed")
        expect(error.message).not.toContain(CANARY)
      }
      // A non-canonical last character (low bits set) decodes to the same bytes: refused, not opened.
      const last = body.at(-1)!
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
      const bits = body.length % 4 === 2 ? 0b001111 : 0b000011
      const sibling = alphabet[alphabet.indexOf(last) | bits]!
      if (sibling !== last) {
        expect(yield* reasonOf(enc.open(`gavel.v1.k1.${iv}.${body.slice(0, -1)}${sibling}`, AAD))).toBe("malformed")
      }
    }))

  it.effect.prop(
    "any string given to open is a typed refusal, never a defect",
    [
      fc.oneof(
        fc.string({ unit: "binary" }),
        fc.string().map((s) => `gavel.v1.k1.${s}`),
        fc.tuple(fc.base64String(), fc.base64String(), fc.constantFrom("k1", "k2", "", "x.y"))
          .map(([iv, body, id]) => `gavel.v1.${id}.${iv.replace(/=/g, "")}.${body.replace(/=/g, "")}`),
        fc.tuple(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 64 }))
          .map(([iv, body]) => `gavel.v1.k1.${Encoding.encodeBase64Url(iv)}.${Encoding.encodeBase64Url(body)}`),
        fc.string().map((s) => `gavel.plain.${s}`)
      ),
      fc.string({ unit: "binary", maxLength: 20 })
    ],
    ([sealed, aad]) =>
      Effect.gen(function*() {
        const enc = yield* make([["k1", K1]], "k1")
        // A defect or a success fails the test: only a typed refusal passes.
        const error = yield* refusal(enc.open(sealed, aad))
        expect(["malformed", "unknown_key", "tampered", "plaintext_refused", "invalid_input"]).toContain(error.reason)
        expect(error.message).not.toContain(K1)
      }),
    { fastCheck: { numRuns: 200 } }
  )

  it.effect("a lone surrogate is refused instead of being changed on the way", () =>
    Effect.gen(function*() {
      const enc = yield* make([["k1", K1]], "k1")
      expect(yield* reasonOf(enc.seal("a\uD800b", AAD))).toBe("invalid_input")
      expect(yield* reasonOf(enc.seal("x", "\uDC00"))).toBe("invalid_input")
      const sealed = yield* enc.seal("x", AAD)
      expect(yield* reasonOf(enc.open(sealed, `${AAD}\uD800`))).toBe("invalid_input")
    }))
})

describe("Encryption.layer refuses a bad key ring", () => {
  const cases: ReadonlyArray<readonly [string, Encryption.Options, Encryption.EncryptionError["reason"]]> = [
    ["no keys", { keys: [], active: "k1" }, "no_keys"],
    ["an id with a space", ring([["k 1", K1]], "k1"), "invalid_key_id"],
    ["an empty id", ring([["", K1]], "k1"), "invalid_key_id"],
    ["an id of 33 characters", ring([["a".repeat(33), K1]], "k1"), "invalid_key_id"],
    ["the id plaintext", ring([["plaintext", K1]], "plaintext"), "invalid_key_id"],
    ["a duplicate id", ring([["k1", K1], ["k1", K2]], "k1"), "duplicate_key_id"],
    ["a key of 31 bytes", ring([["k1", randomBytes(31).toString("base64url")]], "k1"), "invalid_key"],
    ["a key of 33 bytes", ring([["k1", randomBytes(33).toString("base64url")]], "k1"), "invalid_key"],
    ["a padded base64 key", ring([["k1", randomBytes(32).toString("base64")]], "k1"), "invalid_key"],
    ["a hex key", ring([["k1", randomBytes(32).toString("hex")]], "k1"), "invalid_key"],
    ["an empty key", ring([["k1", ""]], "k1"), "invalid_key"],
    ["an active id not in the ring", ring([["k1", K1]], "k2"), "unknown_active_key"],
    ["an invalid active id", ring([["k1", K1]], "not an id"), "unknown_active_key"]
  ]
  for (const [name, options, reason] of cases) {
    it.effect(name, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.provide(Encryption.Encryption, Encryption.layer(options)))
        expect(error.reason).toBe(reason)
        for (const { key } of options.keys) {
          if (Redacted.value(key) !== "") expect(error.message).not.toContain(Redacted.value(key))
        }
      }))
  }

  it.effect("names the key id of a bad key, but not an invalid id (it may be a key in the wrong place)", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(Encryption.make(ring([["k1", K1], ["k2", "short"]], "k1")))
      expect(bad.keyId).toBe("k2")
      expect(bad.message).toContain("\"k2\"")
      expect(bad.message).not.toContain("short")
      const misplaced = yield* Effect.flip(Encryption.make(ring([[K2, K1]], "k1")))
      expect(misplaced.reason).toBe("invalid_key_id")
      expect(misplaced.message).toContain("key 1")
      expect(misplaced.message).not.toContain(K2)
      expect(misplaced.message).not.toContain(K1)
    }))
})

describe("Encryption.layerConfig", () => {
  const fromMap = (entries: Record<string, string>, options?: Partial<ConfigProvider.ConfigProvider.FromMapConfig>) =>
    Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries)), options))
  const build = (provider: Layer.Layer<never>) =>
    Effect.provide(Encryption.Encryption, Encryption.layerConfig.pipe(Layer.provide(provider)))

  it.effect("reads the key ring and the active key", () =>
    Effect.gen(function*() {
      const enc = yield* build(fromMap({
        "gavel.encryption.keys": `k1:${K1}, k2:${K2}`,
        "gavel.encryption.active_key": "k2"
      }))
      expect(enc.activeKeyId).toBe("k2")
      const other = yield* make([["k1", K1]], "k1")
      expect(yield* enc.open(yield* other.seal("from k1", AAD), AAD)).toBe("from k1")
    }))

  it.effect("one key is the active one without naming it", () =>
    Effect.gen(function*() {
      const enc = yield* build(fromMap({ "gavel.encryption.keys": `k1:${K1}` }))
      expect(enc.activeKeyId).toBe("k1")
    }))

  it.effect("environment variables in either spelling, and behind constantCase", () =>
    Effect.gen(function*() {
      const env = (vars: Record<string, string>) => fromMap(vars, { pathDelim: "_" })
      expect((yield* build(env({ GAVEL_ENCRYPTION_KEYS: `k1:${K1},k2:${K2}`, GAVEL_ENCRYPTION_ACTIVE_KEY: "k2" })))
        .activeKeyId).toBe("k2")
      expect((yield* build(env({ gavel_encryption_keys: `k1:${K1}` }))).activeKeyId).toBe("k1")
      const constant = Layer.setConfigProvider(
        ConfigProvider.fromMap(new Map([["GAVEL_ENCRYPTION_KEYS", `k3:${K3}`]]), { pathDelim: "_" }).pipe(
          ConfigProvider.constantCase
        )
      )
      expect((yield* build(constant)).activeKeyId).toBe("k3")
    }))

  it.effect("a missing key ring fails to build: there is no plaintext default", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(build(fromMap({})))
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(build(fromMap({ "gavel.encryption.active_key": "k1" })))
      assert.strictEqual(error._tag, "ConfigError")
      expect(String(error)).toContain("layerPlaintext")
    }))

  it.effect("refuses several keys without an active one, a bare key, spellings that differ, a bad ring", () =>
    Effect.gen(function*() {
      const errors = [
        yield* Effect.flip(build(fromMap({ "gavel.encryption.keys": `k1:${K1},k2:${K2}` }))),
        yield* Effect.flip(build(fromMap({ "gavel.encryption.keys": K1 }))),
        yield* Effect.flip(build(fromMap({ "gavel.encryption.keys": `k1:${K1},${K2}` }))),
        yield* Effect.flip(build(fromMap({ "gavel.encryption.keys": `k1:${K1}`, "GAVEL.ENCRYPTION.KEYS": `k1:${K2}` }))),
        yield* Effect.flip(build(fromMap({ "gavel.encryption.keys": `k1:${K1}`, "gavel.encryption.active_key": "k9" }))),
        yield* Effect.flip(build(fromMap({ "gavel.encryption.keys": `k1:${K1.slice(1)}` })))
      ]
      expect(errors.map((e) => e._tag)).toEqual([
        "ConfigError",
        "ConfigError",
        "ConfigError",
        "ConfigError",
        "EncryptionError",
        "EncryptionError"
      ])
      for (const error of errors) {
        const text = String(error) + ("message" in error ? error.message : "")
        expect(text).not.toContain(K1.slice(1))
        expect(text).not.toContain(K2)
      }
    }))
})

describe("Encryption.layerPlaintext", () => {
  it.effect("round-trips, bound to the associated data, with no confidentiality; warns when built", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) => logs.push(`${logLevel.label} ${String(message)}`))
      )
      const plain = yield* Effect.provide(Encryption.Encryption, Layer.provide(Encryption.layerPlaintext, capture))
      expect(logs.some((line) => line.startsWith("WARN") && line.includes("NOT encrypted"))).toBe(true)
      expect(plain.activeKeyId).toBe("plaintext")
      const sealed = yield* plain.seal(CANARY, AAD)
      expect(sealed).toMatch(/^gavel\.plain\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]+$/)
      expect(Encryption.keyIdOf(sealed)).toEqual(Option.some("plaintext"))
      expect(yield* plain.open(sealed, AAD)).toBe(CANARY)
      expect(yield* reasonOf(plain.open(sealed, "apr_2:hash"))).toBe("tampered")
      expect(yield* reasonOf(plain.open(`${sealed}.x`, AAD))).toBe("malformed")
      expect(yield* reasonOf(plain.open("gavel.plain.x.y", AAD))).toBe("malformed")
    }))

  it.effect("refuses a ciphertext (no_key), and a port with keys refuses its values (plaintext_refused)", () =>
    Effect.gen(function*() {
      const plain = yield* Encryption.makePlaintext
      const keyed = yield* Encryption.make(Fixtures.encryption).pipe(Effect.orDie)
      expect(keyed.activeKeyId).toBe("test")
      const ciphertext = yield* keyed.seal(CANARY, AAD)
      const error = yield* refusal(plain.open(ciphertext, AAD))
      expect(error.reason).toBe("no_key")
      expect(error.message).not.toContain(CANARY)
      expect(yield* reasonOf(keyed.open(yield* plain.seal(CANARY, AAD), AAD))).toBe("plaintext_refused")
    }))
})

describe("Encryption.keyIdOf", () => {
  it("reads the key id of a sealed value without checking it", () => {
    expect(Encryption.keyIdOf("gavel.v1.k2024.iv.body")).toEqual(Option.some("k2024"))
    expect(Encryption.keyIdOf("gavel.plain.digest.body")).toEqual(Option.some("plaintext"))
    expect(Encryption.keyIdOf("gavel.v1.k 1.iv.body")).toEqual(Option.none())
    expect(Encryption.keyIdOf("gavel.v2.k1.iv.body")).toEqual(Option.none())
    expect(Encryption.keyIdOf("hello")).toEqual(Option.none())
  })
})
