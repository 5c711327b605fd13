/**
 * The audit trail's rows in the SQL stores (SQLite, Postgres): how an entry
 * is normalized before it is sealed and how a stored event is read back.
 *
 * @internal
 */
import * as Action from "@gavel/core/Action"
import * as Audit from "@gavel/core/Audit"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

/** An audit event's row as a driver returns it: every column unchecked. @internal */
export interface AuditRow {
  /** A number (SQLite) or a string (Postgres `bigint`). */
  readonly sequence: number | string
  readonly type: unknown
  readonly at: unknown
  readonly decision_id: unknown
  readonly approval_id: unknown
  readonly request_id: unknown
  readonly correlation_id: unknown
  readonly actor: unknown
  readonly trace: unknown
  readonly data: unknown
  readonly event_id: unknown
  readonly previous_hash: unknown
  readonly hash: unknown
}

const Entry = Audit.AuditEvent.pipe(Schema.omit("sequence", "previousHash", "hash"))
const validateEntry = Schema.validateEither(Entry)
const encodeTrace = Schema.encodeSync(Action.TraceContext)
const decodeTrace = Schema.decodeUnknownEither(Action.TraceContext)
const isEventType = Schema.is(Audit.EventType)
const isData = Schema.is(Audit.Data)

const parseJson = (text: string): Either.Either<unknown, unknown> => Either.try(() => JSON.parse(text) as unknown)

/**
 * The entry as it will read back: the fields an event has and no others,
 * `trace` by its schema and `data` through JSON, so that the hash sealed now
 * is the hash of what {@link readEvent} returns later.
 *
 * @internal
 */
export const normalize = (entry: Audit.Entry): Either.Either<Audit.Entry, string> =>
  Either.gen(function*() {
    const valid = yield* Either.mapLeft(validateEntry(entry), (error) => `invalid audit entry: ${error.message}`)
    const data = yield* Either.mapLeft(
      Either.try(() => JSON.parse(JSON.stringify(valid.data)) as unknown),
      (error) => `audit data is not JSON: ${error instanceof Error ? error.message : String(error)}`
    )
    if (!isData(data) || Array.isArray(data)) return yield* Either.left("audit data is not a JSON object")
    if (Number.isNaN(valid.at.getTime())) return yield* Either.left("audit entry has an invalid date")
    return {
      type: valid.type,
      at: valid.at,
      decisionId: valid.decisionId,
      approvalId: valid.approvalId,
      requestId: valid.requestId,
      correlationId: valid.correlationId,
      actor: valid.actor,
      trace: valid.trace === null ? null : encodeTrace(valid.trace),
      data,
      ...(valid.eventId === undefined ? {} : { eventId: valid.eventId })
    }
  })

const text = (u: unknown): string | null => (typeof u === "string" ? u : null)

/**
 * An event exactly as stored, never re-sealed. A column that does not read
 * back as its field is replaced by a neutral value and its raw content goes
 * to `data.$unreadable` (column name → stored value), so the event no longer
 * matches its hash and `Audit.verify` reports it as `edited` instead of the
 * whole read failing.
 *
 * @internal
 */
export const readEvent = (row: AuditRow): Audit.AuditEvent => {
  const bad: Record<string, unknown> = {}
  const field = <A>(column: keyof AuditRow, read: (u: unknown) => A | undefined, fallback: A): A => {
    const value = read(row[column])
    if (value !== undefined) return value
    bad[column] = row[column]
    return fallback
  }
  const optionalText = (u: unknown) => (u === null ? null : typeof u === "string" ? u : undefined)
  const type = field("type", (u) => (isEventType(u) ? u : undefined), "decision.evaluated" as Audit.EventType)
  const at = field("at", (u) => {
    if (typeof u !== "string") return undefined
    const date = new Date(u)
    return Number.isNaN(date.getTime()) || date.toISOString() !== u ? undefined : date
  }, new Date(0))
  const trace = field("trace", (u) => {
    if (u === null) return null
    if (typeof u !== "string") return undefined
    const parsed = Either.flatMap(parseJson(u), decodeTrace)
    return Either.isRight(parsed) ? parsed.right : undefined
  }, null)
  const data = field("data", (u) => {
    if (typeof u !== "string") return undefined
    const parsed = parseJson(u)
    return Either.isRight(parsed) && isData(parsed.right) && !Array.isArray(parsed.right) ? parsed.right : undefined
  }, {})
  const eventId = field("event_id", optionalText, null)
  const event: Audit.AuditEvent = {
    sequence: Number(row.sequence),
    type,
    at,
    decisionId: field("decision_id", optionalText, null),
    approvalId: field("approval_id", optionalText, null),
    requestId: field("request_id", optionalText, null),
    correlationId: field("correlation_id", optionalText, null),
    actor: field("actor", optionalText, null),
    trace,
    data,
    ...(eventId === null ? {} : { eventId }),
    previousHash: field("previous_hash", (u) => text(u) ?? undefined, ""),
    hash: field("hash", (u) => text(u) ?? undefined, "")
  }
  return Object.keys(bad).length === 0 ? event : { ...event, data: { $unreadable: bad } }
}

const OutboxEntry = Schema.parseJson(Entry)
const encodeEntryJson = Schema.encodeSync(OutboxEntry)
const decodeEntryJson = Schema.decodeUnknownEither(OutboxEntry)

/**
 * An entry of the audit outbox as the JSON text its row holds.
 *
 * @internal
 */
export const encodeOutboxEntry = (entry: Audit.Entry): string => encodeEntryJson(entry)

/**
 * The entry an audit outbox row holds, or why it cannot be read (it has no
 * `eventId`, or is not an entry).
 *
 * @internal
 */
export const decodeOutboxEntry = (text: unknown): Either.Either<Audit.Entry & { readonly eventId: string }, string> =>
  Either.flatMap(
    Either.mapLeft(decodeEntryJson(text), (error) => error.message),
    (entry) =>
      entry.eventId === undefined
        ? Either.left("the entry has no eventId")
        : Either.right({ ...entry, eventId: entry.eventId })
  )
