/**
 * Delivery of the audit outbox to a sink outside the approval store: at
 * once after a step committed, else by a deliverer that takes what waits,
 * oldest first, every `retryInterval` — at least once, an event found
 * already in the sink (by its `eventId`) not written again.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Audit from "../../Audit.js"
import type * as Approval from "../../Approval.js"
import type * as AuditOutbox from "../../AuditOutbox.js"
import type * as AuditSink from "../../AuditSink.js"
import * as Metrics from "../../Metrics.js"
import type * as entries from "../auditEntries.js"

/** An entry the outbox can hold: one with an `eventId`. */
export type Identified = entries.Identified

/** @internal */
export const isIdentified = (entry: Audit.Entry): entry is Identified => entry.eventId !== undefined

/**
 * The deliverer's settings.
 *
 * @internal
 */
export interface Settings {
  /** How often what waits is taken again. */
  readonly retryInterval: Duration.Duration
  /** How long a claim keeps other deliverers off the events it took. */
  readonly lease: Duration.Duration
  /** How many events one claim takes. */
  readonly batch: number
}

const message = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "object" && error !== null && "message" in error
    ? String(error.message)
    : String(error)

/**
 * The delivery of `outbox` to `sink`, its deliverer running for as long as
 * the scope lasts (the first pass at once: what a crash left behind). The
 * runtime uses `step`, a step of an approval's life with its events put in
 * the outbox, and `write`, an event put there after a step.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(
  sink: AuditSink.Service,
  outbox: AuditOutbox.Service,
  settings: Settings
) {
  // A sequence number at or below the trail's head: the sink's head when
  // this started (0 when unknown), raised by every append made here. An
  // event put now cannot be in the trail at or below it.
  const known = yield* Effect.exit(sink.head)
  let head = known._tag === "Success" && Option.isSome(known.value) ? known.value.value.sequence : 0
  // Whether events may wait from an earlier failure (or a crash): then new
  // ones wait their turn behind them, for the deliverer to take in order.
  let waiting = true
  const lock = yield* Effect.makeSemaphore(1)
  const lease = Duration.toMillis(settings.lease)

  const append = (entry: Identified) =>
    Effect.map(sink.append(entry), (event) => {
      if (event.sequence > head) head = event.sequence
    })

  /** Records a refused delivery: counted, the events released for a later attempt, the backlog logged. */
  const refused = (eventIds: ReadonlyArray<string>, error: unknown) =>
    Effect.gen(function*() {
      waiting = true
      const detail = message(error)
      yield* Metrics.auditDeliveryFailures(1)
      yield* Effect.ignore(outbox.release(eventIds, detail))
      const backlog = yield* Effect.option(outbox.backlog)
      if (Option.isSome(backlog)) yield* Metrics.setAuditUndelivered(backlog.value.count)
      yield* Effect.logWarning("gavel: the audit sink refused events; they wait in the audit outbox").pipe(
        Effect.annotateLogs({
          error: detail,
          waiting: Option.match(backlog, { onNone: () => "unknown", onSome: (b) => String(b.count) }),
          oldest: Option.match(backlog, {
            onNone: () => "unknown",
            onSome: (b) => b.oldest === null ? "none" : b.oldest.toISOString()
          })
        })
      )
    })

  /**
   * Appends `entries` in order; stops at the first the sink refuses (the
   * rest released). The delivered ones are removed from the outbox: a
   * failed removal leaves them to be found in the trail.
   */
  const appendInOrder = (entries: ReadonlyArray<Identified>, skip: ReadonlySet<string>) =>
    Effect.gen(function*() {
      const done: Array<string> = []
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!
        if (!skip.has(entry.eventId)) {
          const appended = yield* Effect.either(append(entry))
          if (appended._tag === "Left") {
            yield* refused(entries.slice(i).map((e) => e.eventId), appended.left)
            break
          }
        }
        done.push(entry.eventId)
      }
      if (done.length > 0) {
        yield* outbox.delivered(done).pipe(
          Effect.catchAll((error) => Effect.logWarning("gavel: removing delivered audit events failed", error))
        )
      }
      return done.length === entries.length
    })

  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  /**
   * Puts a step's events in the outbox (call it inside the step's unit):
   * claimed by this writer for one lease, to hand to the sink itself at
   * once, unless older events wait (then the deliverer takes them in turn).
   * Answers whether they are claimed.
   */
  const stage = (entries: ReadonlyArray<Identified>): Effect.Effect<boolean, Approval.StoreError> =>
    Effect.flatMap(now, (at) => {
      const claimed = !waiting
      return Effect.as(
        outbox.put(entries, { anchor: head, at: new Date(at), claimedUntil: new Date(claimed ? at + lease : at) }),
        claimed
      )
    })

  /**
   * Takes one batch of what waits, oldest first: answers `"more"` when a
   * full batch was delivered (more may wait), `"refused"` when the sink
   * refused one, `"empty"` when nothing waits any more.
   */
  const takeBatch = Effect.gen(function*() {
    const at = yield* now
    const items = yield* outbox.claim({ limit: settings.batch, now: new Date(at), until: new Date(at + lease) })
    if (items.length > 0) {
      // An earlier attempt may have written some (then crashed, or failed to
      // remove them): those found in the trail after the oldest anchor are
      // not written again.
      const from = Math.min(...items.map((item) => item.anchor)) + 1
      const trail = yield* sink.read({ fromSequence: from })
      const found = new Set<string>()
      for (const event of trail) if (event.eventId !== undefined) found.add(event.eventId)
      const all = yield* appendInOrder(items.map((item) => item.entry), found)
      if (!all) return "refused" as const
      if (items.length === settings.batch) return "more" as const
    }
    waiting = false
    yield* Metrics.setAuditUndelivered(0)
    return "empty" as const
  })

  /** Takes what waits, batch by batch, until nothing does or the sink refuses. */
  const drain: Effect.Effect<void, Approval.StoreError> = lock.withPermits(1)(Effect.gen(function*() {
    while ((yield* takeBatch) === "more") {
      // the next batch
    }
  }))

  /**
   * Hands events staged by a committed step to the sink. Unclaimed, they
   * wait behind older ones: a batch is taken, in order. Claimed, they go at
   * once — after the older ones, if any wait and the sink now takes them;
   * else released to wait their turn.
   */
  const deliver = (entries: ReadonlyArray<Identified>, claimed: boolean): Effect.Effect<void> => {
    if (!claimed) return lock.withPermits(1)(Effect.ignore(takeBatch))
    if (!waiting) return appendClaimed(entries)
    return lock.withPermits(1)(Effect.suspend(() =>
      Effect.ignore(Effect.flatMap(takeBatch, (result) =>
        result === "empty"
          ? appendClaimed(entries)
          : outbox.release(entries.map((entry) => entry.eventId), null)))
    ))
  }

  /**
   * Appends a step's own claimed events (nothing else takes them while the
   * claim lasts); when the sink refuses one, all are released: one already
   * written is then found in the trail, not written again.
   */
  const appendClaimed = (entries: ReadonlyArray<Identified>): Effect.Effect<void> =>
    Effect.matchEffect(Effect.forEach(entries, append, { discard: true }), {
      onFailure: (error) => refused(entries.map((entry) => entry.eventId), error),
      onSuccess: () =>
        outbox.delivered(entries.map((entry) => entry.eventId)).pipe(
          Effect.catchAll((error) => Effect.logWarning("gavel: removing delivered audit events failed", error))
        )
    })

  // What an earlier run left, before the first step.
  yield* Effect.catchAll(drain, (error) => Effect.logWarning("gavel: delivering the audit outbox failed", error))
  yield* Effect.forkScoped(
    drain.pipe(
      Effect.catchAll((error) =>
        Effect.zipRight(
          Effect.sync(() => {
            waiting = true
          }),
          Effect.logWarning("gavel: delivering the audit outbox failed", error)
        )
      ),
      Effect.repeat(Schedule.spaced(settings.retryInterval)),
      Effect.delay(settings.retryInterval)
    )
  )

  /**
   * A step of an approval's life: `transition` and its events put in the
   * outbox as one unit, then `after`, then the events handed to the sink.
   */
  const step = <A, E>(
    transition: Effect.Effect<A, E>,
    audit: (a: A) => ReadonlyArray<Identified>,
    after: (a: A) => Effect.Effect<void>
  ): Effect.Effect<A, E | Approval.StoreError> => {
    let staged: ReadonlyArray<Identified> = []
    let claimed = false
    return outbox.atomically(Effect.tap(transition, (a) => {
      staged = audit(a)
      return Effect.map(stage(staged), (c) => {
        claimed = c
      })
    })).pipe(
      Effect.tap(after),
      Effect.tap(() => deliver(staged, claimed))
    )
  }

  /** An event written after a step (the work ran): put in the outbox, then handed to the sink. */
  const write = (entry: Identified): Effect.Effect<void, Approval.StoreError> =>
    Effect.flatMap(outbox.atomically(stage([entry])), (claimed) => deliver([entry], claimed))

  return { step, write }
})
