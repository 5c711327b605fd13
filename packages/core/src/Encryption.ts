/**
 * Encryption at rest: the port that seals data a store keeps (a durable
 * continuation's action and input) and opens it again.
 *
 * {@link layer} seals with AES-256-GCM through WebCrypto
 * (`globalThis.crypto.subtle`): a fresh 96-bit random IV per value, a
 * 128-bit tag, and associated data the caller binds the value to (the
 * approval id and the action hash), so a sealed value copied to another row
 * does not open. A sealed value names the key that sealed it:
 *
 * ```text
 * gavel.v1.<key id>.<iv, base64url>.<ciphertext and tag, base64url>
 * ```
 *
 * The layer holds a key ring: new values are sealed with the active key,
 * and a value opens with whichever key of the ring its key id names, so a
 * key is rotated by adding a new one, making it active, and removing the
 * old one once nothing sealed with it is left ({@link keyIdOf} tells which
 * key a stored value needs). With random IVs, one key should seal fewer
 * than 2^32 values (NIST SP 800-38D): rotate long before.
 *
 * Without a key there is no default: {@link layerConfig} refuses to build.
 * {@link layerPlaintext} is the explicit, development-only opt-out.
 *
 * @since 0.2.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why sealing, opening or building the port was refused.
 *
 * Opening and sealing:
 *
 * - `malformed`: not a sealed value of a known version (or not canonical
 *   base64url, a wrong IV length, a ciphertext shorter than its tag).
 * - `unknown_key`: sealed with a key id the ring does not hold.
 * - `tampered`: the ciphertext, IV or tag was changed, or the associated
 *   data is not the one it was sealed with.
 * - `no_key`: a ciphertext given to the plaintext port ({@link layerPlaintext}).
 * - `plaintext_refused`: a plaintext value ({@link layerPlaintext}'s) given
 *   to a port with keys: it would open without any proof of origin.
 * - `invalid_input`: a plaintext or associated data that is not well-formed
 *   Unicode (a lone surrogate would not survive the round trip).
 * - `unavailable`: WebCrypto is missing or failed.
 *
 * Building ({@link make}, {@link layer}):
 *
 * - `no_keys`: an empty key ring.
 * - `invalid_key_id`: an id that is not 1 to 32 of `A-Z a-z 0-9 _ -`, or
 *   is `plaintext` (the plaintext port's id).
 * - `duplicate_key_id`: two keys with one id.
 * - `invalid_key`: a key that is not 32 bytes in unpadded base64url.
 * - `unknown_active_key`: the active key id is not in the ring.
 *
 * The message never contains a key, a plaintext or the sealed value; it
 * names the key id where there is one (key ids are public: every sealed
 * value carries one).
 *
 * @since 0.2.0
 * @category errors
 */
export class EncryptionError extends Schema.TaggedError<EncryptionError>()("EncryptionError", {
  reason: Schema.Literal(
    "malformed",
    "unknown_key",
    "tampered",
    "no_key",
    "plaintext_refused",
    "invalid_input",
    "unavailable",
    "no_keys",
    "invalid_key_id",
    "duplicate_key_id",
    "invalid_key",
    "unknown_active_key"
  ),
  keyId: Schema.optional(Schema.String),
  detail: Schema.String
}) {
  /** @since 0.2.0 */
  override get message(): string {
    switch (this.reason) {
      case "malformed":
      case "unknown_key":
      case "tampered":
      case "no_key":
      case "plaintext_refused":
        return `Cannot open the sealed value: ${this.detail}`
      case "invalid_input":
        return `Cannot seal or open: ${this.detail}`
      case "unavailable":
        return `Encryption is unavailable: ${this.detail}`
      default:
        return `Invalid encryption key ring: ${this.detail}`
    }
  }
}

const refuse = (reason: EncryptionError["reason"], detail: string, keyId?: string) =>
  new EncryptionError(keyId === undefined ? { reason, detail } : { reason, detail, keyId })

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The port.
 *
 * - `seal(plaintext, associatedData)`: the sealed value (a string to store),
 *   sealed with the active key and bound to `associatedData`.
 * - `open(sealed, associatedData)`: the plaintext, given the same
 *   associated data it was sealed with; a typed refusal otherwise.
 * - `activeKeyId`: the key id new values are sealed with (`"plaintext"` for
 *   {@link layerPlaintext}); a stored value whose {@link keyIdOf} differs is
 *   due to be re-sealed.
 *
 * @since 0.2.0
 * @category models
 */
export interface Service {
  readonly activeKeyId: string
  readonly seal: (plaintext: string, associatedData: string) => Effect.Effect<string, EncryptionError>
  readonly open: (sealed: string, associatedData: string) => Effect.Effect<string, EncryptionError>
}

/**
 * The encryption service.
 *
 * @since 0.2.0
 * @category tags
 */
export class Encryption extends Context.Tag("@gavel/core/Encryption")<Encryption, Service>() {}

/**
 * A key ring: each key is 32 random bytes in unpadded base64url (43
 * characters), under an id of 1 to 32 of `A-Z a-z 0-9 _ -` (too short to be
 * a key pasted in the wrong place, so an id can be named in errors);
 * `active` is the id new values are sealed with. Whitespace around a key
 * is ignored; any other spelling (padding, standard base64, hex) is refused.
 *
 * A key is made with
 * `node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly keys: ReadonlyArray<{ readonly id: string; readonly key: Redacted.Redacted<string> }>
  readonly active: string
}

// -----------------------------------------------------------------------------
// encoding
// -----------------------------------------------------------------------------

const VERSION = "v1"
const PLAIN = "plain"
const PLAINTEXT_ID = "plaintext"
const IV_BYTES = 12
const TAG_BYTES = 16
const KEY_BYTES = 32
const keyIdPattern = /^[A-Za-z0-9_-]{1,32}$/
const base64UrlPattern = /^[A-Za-z0-9_-]*$/
// In a `u` regex a well-formed pair is one astral code point: only a lone
// surrogate matches.
const loneSurrogate = /\p{Cs}/u

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

const encode = (bytes: Uint8Array): string => Encoding.encodeBase64Url(bytes)

/** Unpadded canonical base64url only: one spelling per byte string. */
const decode = (text: string): Option.Option<Uint8Array<ArrayBuffer>> => {
  if (!base64UrlPattern.test(text) || text.length % 4 === 1) return Option.none()
  const decoded = Encoding.decodeBase64Url(text)
  if (Either.isLeft(decoded)) return Option.none()
  // A copy typed for WebCrypto; the decoder's own buffer is wiped (it may hold a key).
  const bytes = new Uint8Array(decoded.right)
  const canonical = encode(bytes) === text
  decoded.right.fill(0)
  return canonical ? Option.some(bytes) : Option.none()
}

const decodeUtf8 = (bytes: Uint8Array): Option.Option<string> => {
  try {
    return Option.some(strictUtf8.decode(bytes))
  } catch {
    return Option.none()
  }
}

const checkInput = (plaintext: string, associatedData: string): Effect.Effect<void, EncryptionError> =>
  loneSurrogate.test(plaintext) || loneSurrogate.test(associatedData)
    ? Effect.fail(refuse("invalid_input", "the text or its associated data has a lone surrogate (not well-formed Unicode)"))
    : Effect.void

const subtleCrypto = (): Effect.Effect<SubtleCrypto, EncryptionError> => {
  const subtle = globalThis.crypto?.subtle as SubtleCrypto | undefined
  return subtle === undefined
    ? Effect.fail(refuse("unavailable", "globalThis.crypto.subtle (WebCrypto, Node 20 or later) is missing"))
    : Effect.succeed(subtle)
}

/**
 * The key id a sealed value names: its key's id for a ciphertext, `"plaintext"`
 * for a value of {@link layerPlaintext}, none for anything else. It does not
 * check the value: {@link Service.open} does.
 *
 * @example
 * ```ts
 * import { Encryption } from "@gavel/core"
 *
 * Encryption.keyIdOf("gavel.v1.k2024.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA") // Option.some("k2024")
 * ```
 *
 * @since 0.2.0
 * @category utils
 */
export const keyIdOf = (sealed: string): Option.Option<string> => {
  const parts = sealed.split(".", 6)
  if (parts[0] !== "gavel") return Option.none()
  if (parts[1] === PLAIN && parts.length === 4) return Option.some(PLAINTEXT_ID)
  return parts[1] === VERSION && parts.length === 5 && keyIdPattern.test(parts[2]!)
    ? Option.some(parts[2]!)
    : Option.none()
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const checkRing = (options: Options): Effect.Effect<void, EncryptionError> => {
  if (options.keys.length === 0) {
    return Effect.fail(refuse("no_keys", "the key ring is empty: give at least one key"))
  }
  const seen = new Set<string>()
  for (const [index, { id }] of options.keys.entries()) {
    // The id is not echoed: it may be the key, given in the wrong place.
    if (!keyIdPattern.test(id) || id === PLAINTEXT_ID) {
      return Effect.fail(refuse(
        "invalid_key_id",
        `key ${index + 1} of the ring has an invalid id: ids are 1 to 32 of A-Z a-z 0-9 _ - and not "${PLAINTEXT_ID}"`
      ))
    }
    if (seen.has(id)) {
      return Effect.fail(refuse("duplicate_key_id", `two keys have the id "${id}"`, id))
    }
    seen.add(id)
  }
  if (!keyIdPattern.test(options.active)) {
    return Effect.fail(refuse("unknown_active_key", "the active key id is not a valid key id"))
  }
  if (!seen.has(options.active)) {
    return Effect.fail(refuse(
      "unknown_active_key",
      `the active key id "${options.active}" is not in the ring (${[...seen].join(", ")})`,
      options.active
    ))
  }
  return Effect.void
}

const importKey = (subtle: SubtleCrypto, id: string, key: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const bytes = decode(Redacted.value(key).trim())
    if (Option.isNone(bytes) || bytes.value.length !== KEY_BYTES) {
      return yield* Effect.fail(refuse(
        "invalid_key",
        `the key "${id}" is not ${KEY_BYTES} bytes in unpadded base64url (43 characters)`,
        id
      ))
    }
    const raw = bytes.value
    return yield* Effect.tryPromise({
      try: () => subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]),
      catch: () => refuse("unavailable", `WebCrypto could not import the key "${id}" for AES-256-GCM`, id)
    }).pipe(Effect.ensuring(Effect.sync(() => raw.fill(0))))
  })

/**
 * The AES-256-GCM port over a key ring, its keys imported once
 * (non-extractable). Refuses a ring that is empty, has a bad or duplicate
 * id or a bad key, or does not hold the active id.
 *
 * The associated data AES-GCM authenticates is the UTF-8 of the sealed
 * value's head (`gavel.v1.<key id>.`) followed by the caller's associated
 * data. The IV comes from `crypto.getRandomValues` (not Effect's `Random`:
 * it must be unpredictable and never repeat, also under a test's seed).
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Service, EncryptionError> =>
  Effect.gen(function*() {
    const subtle = yield* subtleCrypto()
    yield* checkRing(options)
    const ring = new Map<string, CryptoKey>()
    for (const { id, key } of options.keys) ring.set(id, yield* importKey(subtle, id, key))
    const active = options.active
    const activeKey = ring.get(active)!

    const seal = (plaintext: string, associatedData: string): Effect.Effect<string, EncryptionError> =>
      Effect.suspend(() => {
        const head = `gavel.${VERSION}.${active}.`
        const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES))
        return checkInput(plaintext, associatedData).pipe(
          Effect.zipRight(Effect.tryPromise({
            try: () =>
              subtle.encrypt(
                { name: "AES-GCM", iv, additionalData: utf8.encode(head + associatedData), tagLength: TAG_BYTES * 8 },
                activeKey,
                utf8.encode(plaintext)
              ),
            catch: () => refuse("unavailable", `WebCrypto could not seal with the key "${active}"`, active)
          })),
          Effect.map((sealed) => `${head}${encode(iv)}.${encode(new Uint8Array(sealed))}`)
        )
      })

    const open = (sealed: string, associatedData: string): Effect.Effect<string, EncryptionError> =>
      Effect.suspend(() => {
        const parts = sealed.split(".", 6)
        if (parts[0] === "gavel" && parts[1] === PLAIN) {
          return Effect.fail(refuse(
            "plaintext_refused",
            "the value was stored in plaintext mode (development only); this port has keys and opens only ciphertexts"
          ))
        }
        if (parts.length !== 5 || parts[0] !== "gavel" || parts[1] !== VERSION || !keyIdPattern.test(parts[2]!)) {
          return Effect.fail(refuse("malformed", `not a sealed value (gavel.${VERSION}.<key id>.<iv>.<ciphertext>)`))
        }
        const keyId = parts[2]!
        const iv = decode(parts[3]!)
        const body = decode(parts[4]!)
        if (Option.isNone(iv) || iv.value.length !== IV_BYTES) {
          return Effect.fail(refuse("malformed", `its IV is not ${IV_BYTES} bytes in base64url`, keyId))
        }
        if (Option.isNone(body) || body.value.length < TAG_BYTES) {
          return Effect.fail(refuse("malformed", "its ciphertext is not base64url of at least a tag", keyId))
        }
        const key = ring.get(keyId)
        if (key === undefined) {
          return Effect.fail(refuse(
            "unknown_key",
            `it was sealed with the key "${keyId}", which is not in the ring`,
            keyId
          ))
        }
        const tampered = refuse(
          "tampered",
          `it does not authenticate under the key "${keyId}": it was changed, or its associated data differs`,
          keyId
        )
        return checkInput("", associatedData).pipe(
          Effect.zipRight(Effect.tryPromise({
            try: () =>
              subtle.decrypt(
                {
                  name: "AES-GCM",
                  iv: iv.value,
                  additionalData: utf8.encode(`gavel.${VERSION}.${keyId}.${associatedData}`),
                  tagLength: TAG_BYTES * 8
                },
                key,
                body.value
              ),
            catch: () => tampered
          })),
          Effect.flatMap((plain) => Option.match(decodeUtf8(new Uint8Array(plain)), {
            onNone: () => Effect.fail(tampered),
            onSome: Effect.succeed
          }))
        )
      })

    return { activeKeyId: active, seal, open }
  })

/**
 * The plaintext port: NO CONFIDENTIALITY. For development only, where no key
 * is at hand; a host opts into it in code, never by a missing setting.
 *
 * `seal` returns `gavel.plain.<digest>.<plaintext in base64url>`, where the
 * digest is the SHA-256 of `gavel.plain.` followed by the associated data:
 * anyone who reads the store reads the plaintext, and anyone who can write
 * it can forge a value, but a value moved to another row (another approval)
 * does not open (`tampered`). `open` refuses a ciphertext (`no_key`), and a
 * port with keys refuses these values (`plaintext_refused`): moving to keys
 * means draining or re-sealing what plaintext mode stored.
 *
 * Building it logs a warning. `activeKeyId` is `"plaintext"`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makePlaintext: Effect.Effect<Service, EncryptionError> = Effect.gen(function*() {
  const subtle = yield* subtleCrypto()
  yield* Effect.logWarning(
    "Encryption: plaintext mode — data at rest is NOT encrypted (development only; give a key ring in production)"
  )
  const head = `gavel.${PLAIN}.`
  const digest = (associatedData: string) =>
    Effect.tryPromise({
      try: () => subtle.digest("SHA-256", utf8.encode(head + associatedData)),
      catch: () => refuse("unavailable", "WebCrypto could not compute SHA-256")
    }).pipe(Effect.map((bytes) => encode(new Uint8Array(bytes))))

  const seal = (plaintext: string, associatedData: string): Effect.Effect<string, EncryptionError> =>
    checkInput(plaintext, associatedData).pipe(
      Effect.zipRight(digest(associatedData)),
      Effect.map((bound) => `${head}${bound}.${encode(utf8.encode(plaintext))}`)
    )

  const open = (sealed: string, associatedData: string): Effect.Effect<string, EncryptionError> =>
    Effect.suspend(() => {
      const parts = sealed.split(".", 5)
      if (parts[0] === "gavel" && parts[1] === VERSION) {
        return Effect.fail(refuse("no_key", "it is a ciphertext, and the plaintext port has no key to open it"))
      }
      const bound = parts.length === 4 && parts[0] === "gavel" && parts[1] === PLAIN ? decode(parts[2]!) : Option.none()
      const text = parts.length === 4 ? Option.flatMap(decode(parts[3]!), decodeUtf8) : Option.none()
      if (Option.isNone(bound) || bound.value.length !== 32 || Option.isNone(text)) {
        return Effect.fail(refuse("malformed", `not a plaintext value (gavel.${PLAIN}.<digest>.<base64url>)`))
      }
      return checkInput("", associatedData).pipe(
        Effect.zipRight(digest(associatedData)),
        Effect.flatMap((expected) =>
          expected === parts[2]
            ? Effect.succeed(text.value)
            : Effect.fail(refuse("tampered", "its associated data differs from the one it was stored with"))
        )
      )
    })

  return { activeKeyId: PLAINTEXT_ID, seal, open }
})

// -----------------------------------------------------------------------------
// config
// -----------------------------------------------------------------------------

/**
 * A key read under both spellings hosts write (as Governance's keys are):
 * nested `gavel.encryption.<key>` (the environment variable
 * `gavel_encryption_<key>` with Effect's default provider) and upper case
 * (`GAVEL_ENCRYPTION_<KEY>`); given under both, they must agree.
 */
const setting = <A>(
  key: string,
  read: (name: string) => Config.Config<A>,
  same: (a: A, b: A) => boolean
): Config.Config<Option.Option<A>> => {
  const spelled = (section: ReadonlyArray<string>, name: string) =>
    Config.option(section.reduceRight((config, s) => Config.nested(config, s), read(name)))
  return Config.all([
    spelled(["gavel", "encryption"], key),
    spelled(["GAVEL", "ENCRYPTION"], key.toUpperCase())
  ]).pipe(Config.mapOrFail(([nested, upper]) =>
    Option.isSome(nested) && Option.isSome(upper) && !same(nested.value, upper.value)
      ? Either.left(ConfigError.InvalidData(
        ["gavel", "encryption", key],
        `gavel.encryption.${key} and GAVEL_ENCRYPTION_${key.toUpperCase()} differ: give one value`
      ))
      : Either.right(Option.orElse(nested, () => upper))
  ))
}

const parseRing = (ring: Redacted.Redacted<string>): Either.Either<Options["keys"], ConfigError.ConfigError> => {
  const keys: Array<Options["keys"][number]> = []
  for (const [index, entry] of Redacted.value(ring).split(",").entries()) {
    const trimmed = entry.trim()
    if (trimmed === "") continue
    const colon = trimmed.indexOf(":")
    if (colon <= 0) {
      // Nothing of the entry is echoed: it may be a bare key.
      return Either.left(ConfigError.InvalidData(
        ["gavel", "encryption", "keys"],
        `entry ${index + 1} is not <key id>:<key>`
      ))
    }
    keys.push({ id: trimmed.slice(0, colon).trim(), key: Redacted.make(trimmed.slice(colon + 1).trim()) })
  }
  return Either.right(keys)
}

/**
 * The options of {@link layer} read from Effect's `Config`:
 *
 * | Key | Value |
 * | --- | --- |
 * | `gavel.encryption.keys` | the key ring, `Redacted`: `<id>:<key>,<id>:<key>…` (required) |
 * | `gavel.encryption.active_key` | the id new values are sealed with (required with more than one key) |
 *
 * Each is also read in upper case (`GAVEL_ENCRYPTION_KEYS`,
 * `GAVEL_ENCRYPTION_ACTIVE_KEY`), so with Effect's default provider either
 * spelling of the environment variable works, and behind
 * `ConfigProvider.constantCase` the upper-case one. A missing key ring is a
 * `ConfigError`: there is no plaintext default.
 *
 * @since 0.2.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all([
  setting("keys", (name) => Config.redacted(name), (a, b) => Redacted.value(a) === Redacted.value(b)),
  setting("active_key", Config.string, (a, b) => a === b)
]).pipe(Config.mapOrFail(([ring, active]): Either.Either<Options, ConfigError.ConfigError> => {
  if (Option.isNone(ring)) {
    return Either.left(ConfigError.MissingData(
      ["gavel", "encryption", "keys"],
      "no encryption key ring (gavel.encryption.keys, GAVEL_ENCRYPTION_KEYS): give <id>:<key>, or opt into Encryption.layerPlaintext in code (development only)"
    ))
  }
  return Either.flatMap(parseRing(ring.value), (keys) => {
    if (Option.isSome(active)) return Either.right({ keys, active: active.value.trim() })
    if (keys.length === 1) return Either.right({ keys, active: keys[0]!.id })
    return Either.left(ConfigError.MissingData(
      ["gavel", "encryption", "active_key"],
      "the key ring has several keys: name the active one (gavel.encryption.active_key, GAVEL_ENCRYPTION_ACTIVE_KEY)"
    ))
  })
}))

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * {@link make} as a layer: it refuses to build on a bad key ring.
 *
 * @example
 * ```ts
 * import { Encryption } from "@gavel/core"
 * import * as Redacted from "effect/Redacted"
 *
 * const EncryptionLive = Encryption.layer({
 *   keys: [{ id: "k2026", key: Redacted.make(process.env["GAVEL_KEY_2026"] ?? "") }],
 *   active: "k2026"
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Encryption, EncryptionError> =>
  Layer.effect(Encryption, make(options))

/**
 * {@link layer} with its key ring read from {@link config}
 * (`gavel.encryption.keys`, `gavel.encryption.active_key`). Without a key
 * ring it fails to build.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig: Layer.Layer<Encryption, EncryptionError | ConfigError.ConfigError> = Layer.effect(
  Encryption,
  Effect.flatMap(config, make)
)

/**
 * {@link makePlaintext} as a layer: NO CONFIDENTIALITY, development only.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerPlaintext: Layer.Layer<Encryption, EncryptionError> = Layer.effect(Encryption, makePlaintext)
