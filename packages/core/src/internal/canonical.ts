import * as Redacted from "effect/Redacted"

/**
 * Canonical JSON and SHA-256, with no dependency beyond the language (and
 * `effect`, to recognize `Redacted` values).
 *
 * `@gavel/core` runs wherever `effect` runs, so it cannot import
 * `node:crypto`, and WebCrypto's digest is asynchronous while `Action.hash`
 * must stay usable from the synchronous evaluation path. On Node, Node's
 * digest is picked up at run time (`process.getBuiltinModule`); elsewhere a
 * portable implementation runs.
 */

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** ASCII text is already in NFC: only other text needs normalizing. */
export const ascii = /^[^\u0080-\uffff]*$/

/** Printable ASCII but `"` and `\\`: quoted as it is. */
const plain = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

/**
 * The one canonical form of text: Unicode NFC. What `policyHash` hashes and
 * what a rules document compares (its strings at decode, an action's when
 * read) both go through here, so that two texts equal in NFC are the same
 * text everywhere. ASCII text is its own NFC form and is returned as it is.
 */
export const nfc = (text: string): string => isAscii(text) ? text : text.normalize("NFC")

/** Whether `text` is ASCII: a plain loop, cheaper than a regular expression on the short texts of an action. */
export const isAscii = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false
  return true
}

export const quote = (text: string): string => plain.test(text) ? `"${text}"` : JSON.stringify(nfc(text))

/**
 * Quoted object keys, by key: the keys of audited data are few (field
 * names) and met on every event. Only short ASCII keys are kept (they need no
 * normalizing, so that ASCII keys alone sort by code unit), up to a bound
 * so that data with ever-new keys cannot grow it without limit.
 */
const quotedKeys = new Map<string, string>()
const quotedKeysLimit = 4096
/** Longer keys are not kept: an action's payload could otherwise fill the cache with large ones. */
const quotedKeyLength = 128

/** The quoted form of an ASCII key, or `undefined` for a key with other characters. */
export const quoteKey = (key: string): string | undefined => {
  const cached = quotedKeys.get(key)
  if (cached !== undefined) return cached
  if (!ascii.test(key)) return undefined
  const quoted = quote(key)
  if (quotedKeys.size < quotedKeysLimit && key.length <= quotedKeyLength) quotedKeys.set(key, quoted)
  return quoted
}

const ARRAY = 0
const OBJECT = 1
const REDACTED = 2

/** A container being encoded: its children, and their texts so far. */
interface Frame {
  readonly kind: 0 | 1 | 2
  readonly children: ReadonlyArray<unknown>
  /** An object's keys, sorted by code unit. */
  readonly keys: ReadonlyArray<string> | undefined
  /** Whether every key is ASCII (then the keys' order is the members' order). */
  readonly ascii: boolean
  readonly texts: Array<string | undefined>
  readonly parent: Frame | undefined
  /** Where this container's text goes in its parent's `texts`. */
  readonly slot: number
}

/** A scalar's text (`undefined` for what JSON omits), or the frame of a container to encode. */
const visit = (input: unknown, parent: Frame | undefined, slot: number): string | undefined | Frame => {
  let value = input
  for (;;) {
    switch (typeof value) {
      case "string":
        return quote(value)
      case "number":
        // Non-finite numbers follow JSON.stringify (null); -0 is 0. For finite
        // numbers, String gives JSON's text.
        return Number.isFinite(value) ? String(value) : "null"
      case "boolean":
        return value ? "true" : "false"
      case "bigint":
        return value.toString()
      case "object":
        break
      default:
        return undefined
    }
    if (value === null) return "null"
    if (Redacted.isRedacted(value)) {
      return { kind: REDACTED, children: [Redacted.value(value)], keys: undefined, ascii: true, texts: [], parent, slot }
    }
    const withJson = value as { toJSON?: () => unknown }
    if (typeof withJson.toJSON !== "function") break
    value = withJson.toJSON()
  }
  if (Array.isArray(value)) return { kind: ARRAY, children: value, keys: undefined, ascii: true, texts: [], parent, slot }
  const record = value as Record<string, unknown>
  const keys = Object.keys(record)
  // ASCII keys are their own NFC form, so no two are equal: sorting the keys
  // by code unit (the default sort) is the whole ordering.
  keys.sort()
  let ascii = true
  const children = new Array<unknown>(keys.length)
  for (let i = 0; i < keys.length; i++) {
    if (ascii && quoteKey(keys[i]!) === undefined) ascii = false
    children[i] = record[keys[i]!]
  }
  return { kind: OBJECT, children, keys, ascii, texts: [], parent, slot }
}

/** A container's text, once the texts of its children are known. */
const close = (f: Frame): string => {
  if (f.kind === ARRAY) {
    let out = "["
    for (let i = 0; i < f.texts.length; i++) out += (i === 0 ? "" : ",") + (f.texts[i] ?? "null")
    return out + "]"
  }
  if (f.kind === REDACTED) {
    // Bound to the secret (a changed secret is a changed action) without
    // writing it: its own digest stands in for it.
    return `{"<redacted>":"${sha256Hex(f.texts[0] ?? "null")}"}`
  }
  const keys = f.keys!
  if (f.ascii) {
    let out = "{"
    for (let i = 0; i < keys.length; i++) {
      const v = f.texts[i]
      if (v !== undefined) out += (out.length === 1 ? "" : ",") + quoteKey(keys[i]!)! + ":" + v
    }
    return out + "}"
  }
  // A key that is not ASCII: keys sorted by their NFC form; two distinct
  // keys that are equal after NFC are both kept, ordered by their values, so
  // insertion order never matters.
  const members: Array<readonly [string, string]> = []
  for (let i = 0; i < keys.length; i++) {
    const v = f.texts[i]
    if (v !== undefined) members.push([quote(keys[i]!), v])
  }
  members.sort(([ka, va], [kb, vb]) => compare(ka, kb) || compare(va, vb))
  return `{${members.map(([k, v]) => `${k}:${v}`).join(",")}}`
}

/**
 * The canonical text of a value, or `undefined` for what JSON omits. The
 * walk is iterative: however deep the value (an audited payload, a rules
 * document), no JavaScript stack is used per level.
 */
const encode = (value: unknown): string | undefined => {
  const root = visit(value, undefined, 0)
  if (typeof root !== "object") return root
  let current: Frame | undefined = root
  let text: string | undefined
  for (;;) {
    const f: Frame = current!
    const i = f.texts.length
    if (i < f.children.length) {
      const child = visit(f.children[i], f, i)
      if (typeof child === "object") {
        f.texts.push(undefined)
        current = child
      } else {
        f.texts.push(child)
      }
      continue
    }
    text = close(f)
    if (f.parent === undefined) return text
    f.parent.texts[f.slot] = text
    current = f.parent
  }
}

/**
 * Canonical JSON: object keys sorted by code unit, strings and keys in Unicode
 * NFC, no insignificant whitespace, `undefined` members omitted, `toJSON`
 * honoured, a `Redacted` value as the SHA-256 of its canonical JSON, non-finite numbers as `null` (as `JSON.stringify` does).
 *
 * @internal
 */
export const canonicalJson = (value: unknown): string => encode(value) ?? "null"

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
])

const encoder = new TextEncoder()
const W = new Int32Array(64)

/**
 * SHA-256 (FIPS 180-4) of the UTF-8 encoding of a string, as lowercase hex,
 * in plain JavaScript: what runs where the platform has no synchronous
 * digest of its own.
 *
 * @internal
 */
export const sha256HexPortable = (input: string): string => {
  const bytes = encoder.encode(input)
  const length = bytes.length
  const p = new Uint8Array(((length + 9 + 63) >> 6) << 6)
  p.set(bytes)
  p[length] = 0x80
  const bitLength = length * 8
  const high = Math.floor(bitLength / 0x100000000)
  const end = p.length
  p[end - 8] = high >>> 24
  p[end - 7] = high >>> 16
  p[end - 6] = high >>> 8
  p[end - 5] = high
  p[end - 4] = bitLength >>> 24
  p[end - 3] = bitLength >>> 16
  p[end - 2] = bitLength >>> 8
  p[end - 1] = bitLength

  let h0 = 0x6a09e667 | 0, h1 = 0xbb67ae85 | 0, h2 = 0x3c6ef372 | 0, h3 = 0xa54ff53a | 0
  let h4 = 0x510e527f | 0, h5 = 0x9b05688c | 0, h6 = 0x1f83d9ab | 0, h7 = 0x5be0cd19 | 0
  for (let offset = 0; offset < end; offset += 64) {
    for (let t = 0, i = offset; t < 16; t++, i += 4) {
      W[t] = (p[i]! << 24) | (p[i + 1]! << 16) | (p[i + 2]! << 8) | p[i + 3]!
    }
    for (let t = 16; t < 64; t++) {
      const w15 = W[t - 15]!
      const w2 = W[t - 2]!
      const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3)
      const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10)
      W[t] = (W[t - 16]! + s0 + W[t - 7]! + s1) | 0
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
      const ch = (e & f) ^ (~e & g)
      const t1 = (h + S1 + ch + K[t]! + W[t]!) | 0
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
      const maj = (a & b) ^ (a & c) ^ (b & c)
      const t2 = (S0 + maj) | 0
      h = g
      g = f
      f = e
      e = (d + t1) | 0
      d = c
      c = b
      b = a
      a = (t1 + t2) | 0
    }
    h0 = (h0 + a) | 0
    h1 = (h1 + b) | 0
    h2 = (h2 + c) | 0
    h3 = (h3 + d) | 0
    h4 = (h4 + e) | 0
    h5 = (h5 + f) | 0
    h6 = (h6 + g) | 0
    h7 = (h7 + h) | 0
  }
  return hex(h0) + hex(h1) + hex(h2) + hex(h3) + hex(h4) + hex(h5) + hex(h6) + hex(h7)
}

const hex = (word: number): string => (word >>> 0).toString(16).padStart(8, "0")

interface NodeCrypto {
  readonly createHash: (algorithm: "sha256") => {
    update(data: string, encoding: "utf8"): { digest(encoding: "hex"): string }
  }
}

/** Node's own SHA-256 (about ten times faster), found without importing `node:*`. */
const nodeSha256 = ((): ((input: string) => string) | undefined => {
  try {
    const process = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
    const crypto = process?.getBuiltinModule?.("node:crypto") as NodeCrypto | undefined
    if (crypto === undefined) return undefined
    return (input) => crypto.createHash("sha256").update(input, "utf8").digest("hex")
  } catch {
    return undefined
  }
})()

/**
 * SHA-256 of the UTF-8 encoding of a string, as lowercase hex: Node's
 * digest when running on Node, {@link sha256HexPortable} elsewhere.
 *
 * @internal
 */
export const sha256Hex: (input: string) => string = nodeSha256 ?? sha256HexPortable
