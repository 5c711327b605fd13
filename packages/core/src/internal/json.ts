/**
 * A JSON parser that reads a text as `JSON.parse` does (RFC 8259: the same
 * grammar, the same values, `__proto__` an own key like any other) and in
 * addition:
 *
 * - refuses duplicate keys in any object — keys equal once in NFC, the form
 *   the rest of gavel compares text in — where `JSON.parse` keeps the last
 *   one, so that a text has one reading only;
 * - keeps the offset of every value, so that a problem found later in the
 *   parsed value is located in the text without parsing it again;
 * - works with an explicit stack, never recursion, and stops at a nesting
 *   bound, so that any text is safe to parse.
 *
 * Offsets, lines and columns count UTF-16 code units, as the `yaml`
 * package's do.
 */
import { nfc } from "./canonical.js"

/** @internal */
export type Segment = string | number

/** @internal */
export interface JsonProblem {
  /** Where in the value: the key at fault, the value nested too deeply, or `[]` for a syntax error. */
  readonly path: ReadonlyArray<Segment>
  readonly message: string
  readonly line: number
  readonly column: number
}

/** @internal */
export interface Position {
  readonly line: number
  readonly column: number
}

/** @internal */
export type Parsed =
  | {
    readonly _tag: "Parsed"
    readonly value: unknown
    /** The position of the value at `path`, or of the deepest value on the way to it that exists. */
    readonly positionOf: (path: ReadonlyArray<Segment>) => Position
  }
  | {
    readonly _tag: "Refused"
    readonly problems: ReadonlyArray<JsonProblem>
    /** The value as far as it was read (every container is attached to its parent when it opens). */
    readonly partial: unknown
  }

/** @internal */
export interface ParseOptions {
  /** Objects and arrays nest at most this deep; a text nested deeper is refused at the first value beyond. */
  readonly maxDepth: number
  /** The message of that refusal. */
  readonly tooDeep: string
}

/**
 * Line and column (1-based) of an offset of `text`; the index of line starts
 * is built on the first call. Lines end at `\n` (a `\r\n` is one break).
 *
 * @internal
 */
export const positions = (text: string): (offset: number) => Position => {
  let starts: Array<number> | undefined
  return (offset) => {
    if (starts === undefined) {
      starts = [0]
      for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1)
    }
    let lo = 0
    let hi = starts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (starts[mid]! <= offset) lo = mid
      else hi = mid - 1
    }
    return { line: lo + 1, column: offset - starts[lo]! + 1 }
  }
}

const number = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y

const hex4 = /^[0-9a-fA-F]{4}$/

const escapes: Record<number, string> = {
  0x22: "\"",
  0x5c: "\\",
  0x2f: "/",
  0x62: "\b",
  0x66: "\f",
  0x6e: "\n",
  0x72: "\r",
  0x74: "\t"
}

interface Frame {
  readonly container: Record<string, unknown> | Array<unknown>
  readonly isArray: boolean
  /** Its index among the values, in the order they are written. */
  readonly index: number
  /** For an object: the keys that are not in NFC, by their NFC form. */
  forms: Map<string, string> | undefined
  /** For an object with a duplicate key: where each key was first written (built at the first duplicate). */
  firstAt: Map<string, number> | undefined
  /** For an object: the key whose value comes next. */
  key: string
}

const define = (object: Record<string, unknown>, key: string, value: unknown): void => {
  // As JSON.parse does (CreateDataProperty): `__proto__` is an own key, and
  // no setter on Object.prototype runs. An assignment is much faster, and the
  // same for a key Object.prototype does not have.
  if (key in Object.prototype) {
    Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
  } else {
    object[key] = value
  }
}

/**
 * Parses `text` as JSON: the value and the positions of its parts, or the
 * problems that refuse it (every duplicate key, or the first syntax error or
 * the value nested too deeply, after the duplicate keys found before it).
 *
 * @internal
 */
export const parse = (text: string, options: ParseOptions): Parsed => {
  const n = text.length
  const position = positions(text)
  // Every value, in the order written: where it starts, its key in its
  // container (and where the key starts), and how many values its subtree
  // holds, itself included — what a position is looked up in, in flat arrays.
  const starts: Array<number> = []
  const keys: Array<Segment | undefined> = []
  const keyStarts: Array<number> = []
  const sizes: Array<number> = []
  const problems: Array<JsonProblem> = []
  const stack: Array<Frame> = []
  let root: unknown = undefined
  let i = 0

  const pathTo = (last: Segment | undefined): Array<Segment> => {
    const path: Array<Segment> = []
    for (let k = 1; k < stack.length; k++) path.push(keys[stack[k]!.index]!)
    if (last !== undefined) path.push(last)
    return path
  }
  /** The key of the next value of the innermost container (`undefined` at the root). */
  const slot = (): Segment | undefined => {
    const top = stack[stack.length - 1]
    return top === undefined ? undefined : top.isArray ? (top.container as Array<unknown>).length : top.key
  }
  const refused = (): Parsed => ({ _tag: "Refused", problems, partial: root })
  const syntax = (message: string, at: number): Parsed => {
    problems.push({ path: [], message: `JSON syntax error: ${message}`, ...position(at) })
    return refused()
  }
  const found = (at: number): string => {
    if (at >= n) return "the end of the text"
    const c = text.codePointAt(at)!
    return c < 0x20 || c === 0x7f ? `U+${c.toString(16).toUpperCase().padStart(4, "0")}` : JSON.stringify(String.fromCodePoint(c))
  }
  const skip = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i)
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++
      else return
    }
  }
  /** Attaches a value to the innermost container; returns its index. */
  const attach = (value: unknown, offset: number, keyStart: number): number => {
    const top = stack[stack.length - 1]
    const index = starts.length
    starts.push(offset)
    sizes.push(1)
    keyStarts.push(keyStart)
    if (top === undefined) {
      root = value
      keys.push(undefined)
    } else if (top.isArray) {
      const array = top.container as Array<unknown>
      keys.push(array.length)
      array.push(value)
    } else {
      keys.push(top.key)
      define(top.container as Record<string, unknown>, top.key, value)
    }
    return index
  }
  /** Where each key of the object at `index` was first written: every value after it is its. */
  const firstPositions = (index: number): Map<string, number> => {
    const found = new Map<string, number>()
    for (let j = index + 1; j < starts.length; j += sizes[j]!) {
      const key = keys[j]
      if (typeof key === "string" && !found.has(key)) found.set(key, keyStarts[j]!)
    }
    return found
  }

  /** Reads the string at `i` (its opening quote), or fails with a syntax error. */
  let failure: Parsed | undefined
  const readString = (): string | undefined => {
    const open = i++
    let out = ""
    let from = i
    while (i < n) {
      const c = text.charCodeAt(i)
      if (c === 0x22) {
        out += text.slice(from, i++)
        return out
      }
      if (c === 0x5c) {
        out += text.slice(from, i)
        const e = text.charCodeAt(i + 1)
        if (e === 0x75) {
          const digits = text.slice(i + 2, i + 6)
          if (!hex4.test(digits)) {
            failure = syntax("\\u is followed by four hexadecimal digits", i)
            return undefined
          }
          out += String.fromCharCode(parseInt(digits, 16))
          i += 6
        } else {
          const escaped = escapes[e]
          if (escaped === undefined) {
            failure = syntax(`unknown escape \\${i + 1 < n ? text[i + 1] : ""} in a string`, i)
            return undefined
          }
          out += escaped
          i += 2
        }
        from = i
        continue
      }
      if (c < 0x20) {
        failure = syntax(`control character ${found(i)} in a string: write it as an escape (\\n, \\t, \\u0000…)`, i)
        return undefined
      }
      i++
    }
    failure = syntax("unterminated string", open)
    return undefined
  }

  /** Reads `"key":` for the innermost object, and checks the key is new; returns where the key starts. */
  const readKey = (): number | undefined => {
    skip()
    const top = stack[stack.length - 1]!
    if (text.charCodeAt(i) !== 0x22) {
      failure = syntax(`expected a key in double quotes, found ${found(i)}`, i)
      return undefined
    }
    const at = i
    const key = readString()
    if (key === undefined) return undefined
    skip()
    if (text.charCodeAt(i) !== 0x3a) {
      failure = syntax(`expected ":" after the key ${JSON.stringify(key)}, found ${found(i)}`, i)
      return undefined
    }
    i++
    top.key = key
    // The object itself tells whether the key, or its NFC form, was seen;
    // keys not in NFC are remembered by their NFC form.
    const object = top.container as Record<string, unknown>
    const normal = nfc(key)
    const first = Object.hasOwn(object, key)
      ? key
      : normal !== key && Object.hasOwn(object, normal)
      ? normal
      : top.forms?.get(normal)
    if (normal !== key && first === undefined) (top.forms ??= new Map()).set(normal, key)
    if (first === undefined) {
      top.firstAt?.set(key, at)
    } else {
      // One scan of the object's members at its first duplicate, then a
      // lookup for each: never a scan per duplicate.
      if (top.firstAt === undefined) top.firstAt = firstPositions(top.index)
      const where = position(top.firstAt.get(first)!)
      problems.push({
        path: pathTo(key),
        message: `duplicate key ${JSON.stringify(key)} (first at line ${where.line}, column ${where.column}${
          first === key ? "" : `, as ${JSON.stringify(first)}, the same in Unicode NFC`
        })`,
        ...position(at)
      })
    }
    return at
  }

  let keyStart = -1
  value: for (;;) {
    skip()
    const start = i
    const c = text.charCodeAt(i)
    if (c === 0x7b || c === 0x5b) {
      if (stack.length >= options.maxDepth) {
        problems.push({ path: pathTo(slot()), message: options.tooDeep, ...position(start) })
        return refused()
      }
      const isArray = c === 0x5b
      const container: Record<string, unknown> | Array<unknown> = isArray ? [] : {}
      const index = attach(container, start, keyStart)
      i++
      skip()
      if (text.charCodeAt(i) === (isArray ? 0x5d : 0x7d)) {
        i++
      } else {
        stack.push({ container, isArray, index, forms: undefined, firstAt: undefined, key: "" })
        if (!isArray) {
          const at = readKey()
          if (at === undefined) return failure!
          keyStart = at
        } else {
          keyStart = -1
        }
        continue value
      }
    } else if (c === 0x22) {
      const string = readString()
      if (string === undefined) return failure!
      attach(string, start, keyStart)
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      number.lastIndex = i
      const match = number.exec(text)
      if (match === null) return syntax(`expected a digit after "-", found ${found(i + 1)}`, i + 1)
      i += match[0].length
      attach(Number(match[0]), start, keyStart)
    } else if (text.startsWith("true", i)) {
      i += 4
      attach(true, start, keyStart)
    } else if (text.startsWith("false", i)) {
      i += 5
      attach(false, start, keyStart)
    } else if (text.startsWith("null", i)) {
      i += 4
      attach(null, start, keyStart)
    } else {
      return syntax(`expected a value, found ${found(i)}`, i)
    }
    // After a value: a separator, or the end of containers, or of the text.
    for (;;) {
      skip()
      const top = stack[stack.length - 1]
      if (top === undefined) {
        if (i < n) return syntax(`unexpected ${found(i)} after the end of the document`, i)
        if (problems.length > 0) return refused()
        return { _tag: "Parsed", value: root, positionOf: locator(starts, keys, sizes, position) }
      }
      const c = text.charCodeAt(i)
      if (c === 0x2c) {
        i++
        if (top.isArray) {
          keyStart = -1
        } else {
          const at = readKey()
          if (at === undefined) return failure!
          keyStart = at
        }
        continue value
      }
      if (c === (top.isArray ? 0x5d : 0x7d)) {
        i++
        sizes[top.index] = starts.length - top.index
        stack.pop()
        continue
      }
      return syntax(`expected "," or "${top.isArray ? "]" : "}"}", found ${found(i)}`, i)
    }
  }
}

/**
 * Finds a path's position in the flat arrays of a parsed text; the children
 * of a container are indexed by key the first time a path goes through it.
 */
const locator = (
  starts: ReadonlyArray<number>,
  keys: ReadonlyArray<Segment | undefined>,
  sizes: ReadonlyArray<number>,
  position: (offset: number) => Position
) => {
  const indexes = new Map<number, Map<Segment, number>>()
  return (path: ReadonlyArray<Segment>): Position => {
    let index = 0
    for (const segment of path) {
      let children = indexes.get(index)
      if (children === undefined) {
        children = new Map()
        const end = index + sizes[index]!
        for (let j = index + 1; j < end; j += sizes[j]!) children.set(keys[j]!, j)
        indexes.set(index, children)
      }
      const child = children.get(segment)
      if (child === undefined) break
      index = child
    }
    return position(starts[index]!)
  }
}
