/**
 * The audit trail: one event per step of the runtime, chained by hashes so
 * that an edited, deleted, reordered or missing event is detected by
 * {@link verify}.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Action from "./Action.js"
import { canonicalJson, sha256Hex } from "./internal/canonical.js"

/**
 * What happened:
 *
 * - `decision.evaluated`: a policy set decided (`data.record`, redacted).
 * - `evaluation.cancelled`: the caller gave up while the policies ran; no decision.
 * - `approval.requested` / `voted` / `resolved` / `expired` / `consumed` /
 *   `cancelled`: the approval's lifecycle (`data.approval`, and the vote for `voted`).
 * - `approval.refused`: an approval the decision asked for was not opened
 *   (`data.reason`: `too_many_pending`, with `scope`, `key` and `limit`);
 *   `approvalId` is null, the decision's record is the event before.
 * - `override.granted`: an override was granted (`data.override`).
 * - `execution.started` / `succeeded` / `failed`: the protected work ran
 *   (`data.failure` says how it failed: `failure`, `defect` or `interrupted`,
 *   and the error's tag, never its message).
 *
 * @since 0.1.0
 * @category models
 */
export const EventType = Schema.Literal(
  "decision.evaluated",
  "evaluation.cancelled",
  "approval.requested",
  "approval.voted",
  "approval.resolved",
  "approval.expired",
  "approval.consumed",
  "approval.cancelled",
  "approval.refused",
  "override.granted",
  "execution.started",
  "execution.succeeded",
  "execution.failed",
  "execution.in_doubt",
  "execution.resolved"
)

/**
 * @since 0.1.0
 * @category models
 */
export type EventType = typeof EventType.Type

/**
 * A JSON object: what an event carries in `data`. Decoding keeps the object
 * as it was parsed — every member, including one named `__proto__` — so the
 * hash of a decoded event is the hash that was written.
 *
 * @since 0.1.0
 * @category models
 */
export const Data: Schema.Schema<Readonly<Record<string, unknown>>> = Schema.declare(
  (u: unknown): u is Readonly<Record<string, unknown>> => typeof u === "object" && u !== null && !Array.isArray(u),
  { identifier: "AuditData", description: "a JSON object" }
)

/**
 * One audit event.
 *
 * - `sequence`: 1 for the first event of a trail, then consecutive.
 * - `previousHash`: the `hash` of the event before (64 zeros for the first).
 * - `hash`: SHA-256 (hex) of the canonical JSON of every other field, in its
 *   JSON form.
 * - `actor`: who caused the step (the requester, the voter, the principal
 *   granting an override), when one did.
 * - `data`: the step's details as JSON, already redacted.
 * - `eventId`: names the event in every trail it reaches, so that an event
 *   delivered twice (from the audit outbox, after a crash) is recognised.
 *   The runtime gives one to every event but `evaluation.cancelled`; events
 *   written before 0.2.0 have none. Part of the hash when present.
 *
 * @since 0.1.0
 * @category models
 */
export const AuditEvent = Action.boundedMessages(Schema.Struct({
  sequence: Schema.Int.pipe(Schema.positive()),
  type: EventType,
  at: Schema.Date,
  decisionId: Schema.NullOr(Schema.String),
  approvalId: Schema.NullOr(Schema.String),
  requestId: Schema.NullOr(Schema.String),
  correlationId: Schema.NullOr(Schema.String),
  actor: Schema.NullOr(Schema.String),
  trace: Schema.NullOr(Action.TraceContext),
  data: Data,
  eventId: Schema.optionalWith(Schema.String, { exact: true }),
  previousHash: Schema.String,
  hash: Schema.String
}).annotations({ identifier: "AuditEvent", title: "gavel audit event" }))

/**
 * @since 0.1.0
 * @category models
 */
export interface AuditEvent extends Schema.Schema.Type<typeof AuditEvent> {}

/**
 * An event as JSON (what `encode` produces, what a JSON-lines file holds).
 *
 * @since 0.1.0
 * @category models
 */
export type Encoded = Schema.Schema.Encoded<typeof AuditEvent>

/**
 * An event before a sink places it in its chain.
 *
 * @since 0.1.0
 * @category models
 */
export type Entry = Omit<AuditEvent, "sequence" | "previousHash" | "hash">

/**
 * The last event of a trail: keep it somewhere the trail's writer cannot
 * change, and `verify` also detects a trail that was cut short or rewritten.
 *
 * @since 0.1.0
 * @category models
 */
export const Anchor = Schema.Struct({
  sequence: Schema.Int.pipe(Schema.positive()),
  hash: Schema.String
}).annotations({ identifier: "AuditAnchor" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Anchor extends Schema.Schema.Type<typeof Anchor> {}

/**
 * The `previousHash` of the first event.
 *
 * @since 0.1.0
 * @category constants
 */
export const genesisHash: string = "0".repeat(64)

/**
 * @since 0.1.0
 * @category encoding
 */
export const encode = Schema.encodeSync(AuditEvent)

/**
 * @since 0.1.0
 * @category encoding
 */
export const decodeUnknown = Schema.decodeUnknown(AuditEvent)

/**
 * Everything of an event but its place in the chain (`sequence`,
 * `previousHash`, `hash`): the entry it was sealed from. Only the fields of
 * an {@link Entry} are kept, whatever else the value carries.
 *
 * @since 0.2.0
 * @category getters
 */
export const toEntry = (event: Entry): Entry => {
  const entry: Entry = {
    type: event.type,
  at: event.at,
  decisionId: event.decisionId,
  approvalId: event.approvalId,
  requestId: event.requestId,
  correlationId: event.correlationId,
  actor: event.actor,
    trace: event.trace,
    data: event.data
  }
  return event.eventId === undefined ? entry : { ...entry, eventId: event.eventId }
}

/**
 * The hash an event should carry: SHA-256 over the canonical JSON of all its
 * fields but `hash` (dates as ISO-8601 strings).
 *
 * @since 0.1.0
 * @category hashing
 */
export const hashOf = (event: Omit<AuditEvent, "hash">): string =>
  sha256Hex(canonicalJson({ ...toEntry(event), sequence: event.sequence, previousHash: event.previousHash }))

/**
 * Places an entry after `head` (or first, when the trail is empty): what
 * every sink does atomically with its write.
 *
 * @since 0.1.0
 * @category constructors
 */
export const seal = (entry: Entry, head: Anchor | null): AuditEvent => {
  const unsealed = {
    ...entry,
    sequence: head === null ? 1 : head.sequence + 1,
    previousHash: head === null ? genesisHash : head.hash
  }
  return { ...unsealed, hash: hashOf(unsealed) }
}

/**
 * How a trail is broken:
 *
 * - `edited`: the event's content no longer matches its hash, or the event
 *   after it chained to a different one (edited and re-hashed).
 * - `missing`: no event carries this sequence number (deleted).
 * - `reordered`: the event appears out of place, or twice.
 * - `truncated`: the trail ends before the anchor's event.
 *
 * @since 0.1.0
 * @category models
 */
export type Problem = "edited" | "missing" | "reordered" | "truncated"

/**
 * The outcome of {@link verify}: `Intact` with the number of events and the
 * head to anchor, or `Broken` at the first bad sequence number.
 *
 * @since 0.1.0
 * @category models
 */
export type Verification =
  | { readonly _tag: "Intact"; readonly count: number; readonly head: Anchor | null }
  | { readonly _tag: "Broken"; readonly sequence: number; readonly problem: Problem; readonly message: string }

const broken = (sequence: number, problem: Problem, message: string): Verification => ({
  _tag: "Broken",
  sequence,
  problem,
  message
})

/**
 * Checks a whole trail, in the order it was read, and reports the first
 * problem. With `anchor` (a head recorded earlier, out of the writer's
 * reach), a trail cut short or rewritten from some point on is detected too;
 * without one, a tail deleted from the end cannot be told from a trail that
 * was never longer.
 *
 * @example
 * ```ts
 * import { Audit } from "@gavel/core"
 *
 * const result = Audit.verify(events)
 * if (result._tag === "Broken") console.error(result.message)
 * ```
 *
 * @since 0.1.0
 * @category verification
 */
export const verify = (
  events: ReadonlyArray<AuditEvent>,
  options?: { readonly anchor?: Anchor | undefined }
): Verification => {
  let previous = genesisHash
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    const expected = i + 1
    if (event.sequence !== expected) {
      if (event.sequence < expected) {
        return broken(event.sequence, "reordered", `event ${event.sequence} appears again after event ${expected - 1}`)
      }
      const later = events.slice(i + 1).some((e) => e.sequence === expected)
      return later
        ? broken(expected, "reordered", `event ${expected} appears after event ${event.sequence}`)
        : broken(expected, "missing", `event ${expected} is missing (the trail jumps to ${event.sequence})`)
    }
    if (event.previousHash !== previous) {
      return expected === 1
        ? broken(1, "edited", "event 1 does not start the chain")
        : broken(expected - 1, "edited", `event ${expected - 1} is not the event that event ${expected} chained to`)
    }
    if (hashOf(event) !== event.hash) {
      return broken(expected, "edited", `event ${expected} does not match its hash`)
    }
    previous = event.hash
  }
  const anchor = options?.anchor
  if (anchor !== undefined) {
    if (anchor.sequence > events.length) {
      return broken(
        events.length + 1,
        "truncated",
        `the trail ends at event ${events.length}, before the anchored event ${anchor.sequence}`
      )
    }
    if (events[anchor.sequence - 1]!.hash !== anchor.hash) {
      return broken(anchor.sequence, "edited", `event ${anchor.sequence} is not the anchored event`)
    }
  }
  const last = events[events.length - 1]
  return {
    _tag: "Intact",
    count: events.length,
    head: last === undefined ? null : { sequence: last.sequence, hash: last.hash }
  }
}
