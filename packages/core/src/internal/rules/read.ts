/**
 * How rules read an action: the one reader of a field path (own properties
 * only, keys compared in NFC), text compared in NFC, the actor's roles, and
 * the fields a condition may name.
 */
import type * as Action from "../../Action.js"
import { isAscii, nfc } from "../canonical.js"

// -----------------------------------------------------------------------------
// reading an action
// -----------------------------------------------------------------------------

const hasOwn = Object.prototype.hasOwnProperty

/** A list index as a path segment writes it: `0`, `12`, never `01` or `-1`. */
const arrayIndex = /^(0|[1-9]\d*)$/

/**
 * One step of a field path: the own property `key` of an object (never a
 * prototype's: with `Object.prototype.tenant` set by other code, an actor
 * without a tenant still has none), or on a list the element at index `key`
 * (a list has no other fields: `items.length` is missing). A key is compared
 * in NFC: when the object has no key written exactly so, its key whose NFC
 * form is `key` is read (a valid action has at most one, see
 * `Action.validate`).
 */
const step = (value: unknown, key: string): unknown => {
  if (typeof value !== "object" || value === null) return undefined
  if (hasOwn.call(value, key)) {
    return Array.isArray(value) && !arrayIndex.test(key) ? undefined : (value as Record<string, unknown>)[key]
  }
  return Array.isArray(value) ? undefined : byCanonicalKey(value as Record<string, unknown>, key)
}

/** Out of line (so that {@link step} stays small): the own key of `record` written otherwise than `key` but equal to it in NFC. */
const byCanonicalKey = (record: Record<string, unknown>, key: string): unknown => {
  for (const other of Object.keys(record)) {
    if (!isAscii(other) && other.normalize("NFC") === key) return record[other]
  }
  return undefined
}

/**
 * The reader of the field at `path` (from the action's root: `["actor",
 * "tenant"]`, `["metadata", "a.b"]`, `["payload", "items", "0"]`): the one
 * way every rule reads an action — `match` and `when`, every field. Own
 * properties only, keys compared in NFC; `undefined` when the action has no
 * such value (an own property holding `undefined` included: JSON has no
 * `undefined`, and the action's hash leaves such a property out). The value
 * is as written: compare it in NFC with {@link isText}, or read it in NFC
 * with {@link canonical}.
 *
 * @internal
 */
export const reader = (path: ReadonlyArray<string>): (action: Action.Action) => unknown => {
  switch (path.length) {
    case 1: {
      const [a] = path as [string]
      return (action) => step(action, a)
    }
    case 2: {
      const [a, b] = path as [string, string]
      return (action) => step(step(action, a), b)
    }
    default:
      return (action) => {
        let value: unknown = action
        for (let i = 0; i < path.length && value !== undefined; i++) value = step(value, path[i]!)
        return value
      }
  }
}

/**
 * A value read from an action in canonical form: a string in NFC.
 *
 * @internal
 */
export const canonical = (value: unknown): unknown => typeof value === "string" ? nfc(value) : value

/**
 * Whether `value`, read from an action as written, is the text `text` of a
 * document (in NFC since decoding): `nfc(value) === text`, without
 * normalizing on the way to a match (a value equal to an NFC text is in NFC
 * itself) nor for ASCII (its own NFC form).
 *
 * @internal
 */
export const isText = (value: unknown, text: string): boolean =>
  value === text || (typeof value === "string" && !isAscii(value) && value.normalize("NFC") === text)

/**
 * The actor's roles as written: its own list, or none. Only the list's own
 * elements count (a hole is no role), and only strings are roles.
 */
const readRoles = (): (action: Action.Action) => ReadonlyArray<unknown> => {
  const list = reader(["actor", "roles"])
  return (action) => {
    const roles = list(action)
    return Array.isArray(roles) ? roles : noRoles
  }
}

const noRoles: ReadonlyArray<string> = []

/**
 * Whether the actor holds a role at all: an own element that is a string.
 *
 * @internal
 */
export const hasRole = (held: ReadonlyArray<unknown>): boolean => {
  for (let i = 0; i < held.length; i++) if (typeof held[i] === "string" && hasOwn.call(held, i)) return true
  return false
}

/**
 * Whether the actor holds one of `wanted` (roles in NFC), each held role
 * compared in NFC.
 *
 * @internal
 */
export const holdsAny = (held: ReadonlyArray<unknown>, wanted: ReadonlyArray<string> | ReadonlySet<string>): boolean => {
  for (let i = 0; i < held.length; i++) {
    const role = held[i]
    if (typeof role !== "string") continue
    // Own-ness checked on a match only: a hole is read through the prototype.
    if ((has(wanted, role) || (!isAscii(role) && has(wanted, role.normalize("NFC")))) && hasOwn.call(held, i)) return true
  }
  return false
}

const has = (wanted: ReadonlyArray<string> | ReadonlySet<string>, role: string): boolean =>
  Array.isArray(wanted) ? wanted.includes(role) : (wanted as ReadonlySet<string>).has(role)

// -----------------------------------------------------------------------------
// fields
// -----------------------------------------------------------------------------

/**
 * What a field holds: a string, the actor kind, the actor's roles, or
 * anything (payload).
 *
 * @internal
 */
export type FieldType = "string" | "principalKind" | "roles" | "unknown"

/**
 * A field a condition may read: its name, what it holds, and its reader.
 *
 * @internal
 */
export interface Field {
  readonly name: string
  readonly type: FieldType
  /** As written (compare in NFC); `undefined` when the action has no such value. */
  readonly get: (action: Action.Action) => unknown
}

/**
 * The kinds of principal, the values `actor.kind` may hold.
 *
 * @internal
 */
export const principalKinds: ReadonlyArray<string> = ["human", "agent", "service"]

const field = (name: string, type: FieldType, path: ReadonlyArray<string>): Field => ({ name, type, get: reader(path) })

const fixed: Record<string, Field> = {
  kind: field("kind", "string", ["kind"]),
  name: field("name", "string", ["name"]),
  "actor.id": field("actor.id", "string", ["actor", "id"]),
  "actor.kind": field("actor.kind", "principalKind", ["actor", "kind"]),
  "actor.tenant": field("actor.tenant", "string", ["actor", "tenant"]),
  "actor.roles": { name: "actor.roles", type: "roles", get: readRoles() },
  "resource.type": field("resource.type", "string", ["resource", "type"]),
  "resource.id": field("resource.id", "string", ["resource", "id"]),
  payload: field("payload", "unknown", ["payload"])
}

/**
 * The readers `match` uses: the conditions' fields.
 *
 * @internal
 */
export const read = {
  kind: fixed.kind!.get,
  name: fixed.name!.get,
  tenant: fixed["actor.tenant"]!.get,
  roles: fixed["actor.roles"]!.get as (action: Action.Action) => ReadonlyArray<unknown>,
  resource: reader(["resource"]),
  resourceType: fixed["resource.type"]!.get,
  resourceId: fixed["resource.id"]!.get
}

const fieldList =
  "kind, name, actor.id, actor.kind, actor.tenant, actor.roles, actor.attributes.<key>, resource.type, resource.id, metadata.<key>, payload, payload.<path>"

/**
 * The field named `name`, or why there is none.
 *
 * @internal
 */
export const parseField = (name: string): Field | string => {
  if (Object.prototype.hasOwnProperty.call(fixed, name)) return fixed[name]!
  if (name.startsWith("metadata.") && name.length > "metadata.".length) {
    return field(name, "string", ["metadata", name.slice("metadata.".length)])
  }
  if (name.startsWith("actor.attributes.") && name.length > "actor.attributes.".length) {
    return field(name, "string", ["actor", "attributes", name.slice("actor.attributes.".length)])
  }
  if (name.startsWith("payload.")) {
    const segments = name.slice("payload.".length).split(".")
    if (segments.some((s) => s === "")) return `field "${name}" has an empty path segment`
    return field(name, "unknown", ["payload", ...segments])
  }
  return `unknown field "${name}"; a condition reads one of ${fieldList}`
}
