/**
 * The audit outbox: where the events of an approval's steps wait for an
 * audit sink that lives outside the approval store (a custom `AuditSink`,
 * `AuditFile` beside a SQL store, any sink beside the memory store).
 *
 * A step's transition and its events are put in the store in one unit
 * (`atomically`): the committed transition is the truth, and its events
 * reach the sink from here — at once when the sink takes them, else later,
 * by the runtime's deliverer, at least once. Every event carries an
 * `eventId`; the deliverer looks for it in the sink before delivering an
 * event again, so a crash between the sink's write and the outbox's delete
 * does not write it twice. An event stays here until the sink took it: a
 * lasting gap is counted (`gavel_audit_undelivered`), logged, and named by
 * `gavel audit verify`.
 *
 * The SQLite and Postgres layers provide an outbox in their database; with
 * a store that provides none, the runtime keeps one in memory (as durable
 * as the memory store: not across a restart).
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Approval from "./Approval.js"
import type * as ApprovalStore from "./ApprovalStore.js"
import type * as Audit from "./Audit.js"

/**
 * An event waiting for the sink.
 *
 * - `entry`: the event, with its `eventId`.
 * - `anchor`: a sequence number of the sink's trail at or before which the
 *   event cannot have been written (the trail's head before it was put
 *   here): the deliverer reads the trail after it to find an earlier
 *   delivery.
 * - `attempts`: deliveries that failed; `lastError` the last one's message.
 *
 * @since 0.2.0
 * @category models
 */
export interface Item {
  readonly entry: Audit.Entry & { readonly eventId: string }
  readonly anchor: number
  readonly createdAt: Date
  readonly attempts: number
  readonly lastError: string | null
}

/**
 * How many events wait, and since when the oldest.
 *
 * @since 0.2.0
 * @category models
 */
export interface Backlog {
  readonly count: number
  readonly oldest: Date | null
}

/**
 * @since 0.2.0
 * @category models
 */
export interface Service {
  /** The store whose writes `atomically` joins the outbox's. */
  readonly store: ApprovalStore.Service
  /** Runs `effect` — the store's writes and {@link Service.put} in it — as one unit. */
  readonly atomically: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Approval.StoreError, R>
  /**
   * Puts events, claimed by their writer until `claimedUntil` (it delivers
   * them itself at once; no deliverer takes them before).
   */
  readonly put: (
    entries: ReadonlyArray<Item["entry"]>,
    options: { readonly anchor: number; readonly at: Date; readonly claimedUntil: Date }
  ) => Effect.Effect<void, Approval.StoreError>
  /**
   * Claims, until `until`, up to `limit` events whose claim lapsed at `now`,
   * oldest first.
   */
  readonly claim: (
    options: { readonly limit: number; readonly now: Date; readonly until: Date }
  ) => Effect.Effect<ReadonlyArray<Item>, Approval.StoreError>
  /** Removes events the sink took. */
  readonly delivered: (eventIds: ReadonlyArray<string>) => Effect.Effect<void, Approval.StoreError>
  /**
   * Releases claimed events, claimable again: with the `error` of a
   * delivery the sink refused (counted as an attempt), or `null` for events
   * given back untried.
   */
  readonly release: (eventIds: ReadonlyArray<string>, error: string | null) => Effect.Effect<void, Approval.StoreError>
  /** Up to `limit` waiting events, oldest first, claimed or not. */
  readonly list: (limit: number) => Effect.Effect<ReadonlyArray<Item>, Approval.StoreError>
  readonly backlog: Effect.Effect<Backlog, Approval.StoreError>
}

/**
 * The outbox of the store in context, when it provides one (the SQL layers).
 *
 * @since 0.2.0
 * @category tags
 */
export class AuditOutbox extends Context.Tag("@gavel/core/AuditOutbox")<AuditOutbox, Service>() {}

interface Row {
  item: Item
  claimedUntil: number
}

/**
 * An outbox in memory, beside `store` (whose writes are in memory too: a
 * step and its `put` cannot be split by a failure).
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemory = (store: ApprovalStore.Service): Effect.Effect<Service> =>
  Effect.sync(() => {
    // In insertion order, which is the order to deliver in.
    const rows = new Map<string, Row>()
    const items = (select: (row: Row) => boolean, limit: number): Array<Row> => {
      const out: Array<Row> = []
      for (const row of rows.values()) {
        if (out.length >= limit) break
        if (select(row)) out.push(row)
      }
      return out
    }
    return {
      store,
      atomically: (effect) => effect,
      put: (entries, options) =>
        Effect.sync(() => {
          for (const entry of entries) {
            if (rows.has(entry.eventId)) continue
            rows.set(entry.eventId, {
              item: { entry, anchor: options.anchor, createdAt: options.at, attempts: 0, lastError: null },
              claimedUntil: options.claimedUntil.getTime()
            })
          }
        }),
      claim: (options) =>
        Effect.sync(() =>
          items((row) => row.claimedUntil <= options.now.getTime(), options.limit).map((row) => {
            row.claimedUntil = options.until.getTime()
            return row.item
          })
        ),
      delivered: (eventIds) =>
        Effect.sync(() => {
          for (const id of eventIds) rows.delete(id)
        }),
      release: (eventIds, error) =>
        Effect.sync(() => {
          for (const id of eventIds) {
            const row = rows.get(id)
            if (row === undefined) continue
            row.claimedUntil = 0
            if (error !== null) row.item = { ...row.item, attempts: row.item.attempts + 1, lastError: error }
          }
        }),
      list: (limit) => Effect.sync(() => items(() => true, limit).map((row) => row.item)),
      backlog: Effect.sync(() => {
        const first = rows.values().next()
        return { count: rows.size, oldest: first.done === true ? null : first.value.item.createdAt }
      })
    }
  })
