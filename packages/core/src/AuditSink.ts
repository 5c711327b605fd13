/**
 * Where audit events go. A sink appends each event to its hash chain
 * atomically: it assigns the sequence number and the previous hash (with
 * `Audit.seal`) and writes, so two writers never share a sequence number.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Audit from "./Audit.js"
import type { StoreError } from "./Approval.js"
import { withFields } from "./internal/storeError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Seals the entry after the current head and writes it; returns the sealed event. */
  readonly append: (entry: Audit.Entry) => Effect.Effect<Audit.AuditEvent, StoreError>
  /** The events in sequence order, from `fromSequence` (default 1). */
  readonly read: (options?: {
    readonly fromSequence?: number | undefined
  }) => Effect.Effect<ReadonlyArray<Audit.AuditEvent>, StoreError>
  /** The last event's sequence number and hash, if any. */
  readonly head: Effect.Effect<Option.Option<Audit.Anchor>, StoreError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class AuditSink extends Context.Tag("@gavel/core/AuditSink")<AuditSink, Service>() {}

/**
 * The error as the audit trail's: `component: "audit trail"`, so that its
 * message says "Audit trail … failed", never "Approval store … failed".
 *
 * @since 0.2.0
 * @category errors
 */
export const trailError = (error: StoreError): StoreError =>
  error.component === "audit trail" ? error : withFields(error, { component: "audit trail" })

/**
 * The sink with every failure named as the audit trail's ({@link trailError}).
 * The sinks gavel ships are built with it; a sink of your own over a store
 * that also holds approvals should be too.
 *
 * @since 0.2.0
 * @category constructors
 */
export const withTrailErrors = (sink: Service): Service => ({
  append: (entry) => Effect.mapError(sink.append(entry), trailError),
  read: (options) => Effect.mapError(sink.read(options), trailError),
  head: Effect.mapError(sink.head, trailError)
})

/**
 * A sink that keeps events in memory, for tests and single-process hosts
 * that export the trail themselves.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const events: Array<Audit.AuditEvent> = []
  const last = (): Audit.Anchor | null => {
    const event = events[events.length - 1]
    return event === undefined ? null : { sequence: event.sequence, hash: event.hash }
  }
  return AuditSink.of({
    append: (entry) =>
      Effect.sync(() => {
        const event = Audit.seal(entry, last())
        events.push(event)
        return event
      }),
    read: (options) => Effect.sync(() => events.slice(Math.max(0, (options?.fromSequence ?? 1) - 1))),
    head: Effect.sync(() => Option.fromNullable(last()))
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<AuditSink> = Layer.effect(AuditSink, makeMemory)
