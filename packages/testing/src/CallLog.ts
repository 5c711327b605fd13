/**
 * A log of the calls the fakes received: which started, which finished, which
 * failed, and which were interrupted, with virtual (Clock) times, so tests can
 * assert that a short-circuit or a timeout really stopped a check.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"

/**
 * @since 0.1.0
 * @category models
 */
export type Status = "started" | "succeeded" | "failed" | "interrupted"

/**
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly system: string
  readonly operation: string
  /** A readable rendering of the input (a principal id, a ticket id, an action name). */
  readonly input: string
  readonly status: Status
  /** Clock millis when the call started and ended. */
  readonly startedAt: number
  readonly endedAt: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly entries: Effect.Effect<ReadonlyArray<Entry>>
  /** Runs `call`, logging its start and how it ended (interruption included). */
  readonly track: <A, E, R>(
    system: string,
    operation: string,
    input: string,
    call: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class CallLog extends Context.Tag("@gavel/testing/CallLog")<CallLog, Service>() {}

/**
 * A fresh, empty log.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Service> = Effect.map(Ref.make<ReadonlyArray<Entry>>([]), (ref) => ({
  entries: Ref.get(ref),
  track: (system, operation, input, call) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const index = yield* Ref.modify(ref, (entries) => [
          entries.length,
          [...entries, { system, operation, input, status: "started" as Status, startedAt, endedAt: undefined }]
        ])
        return yield* restore(call).pipe(
          Effect.onExit((exit) =>
            Effect.flatMap(Clock.currentTimeMillis, (endedAt) => {
              const status: Status = Exit.isSuccess(exit)
                ? "succeeded"
                : Exit.isInterrupted(exit)
                ? "interrupted"
                : "failed"
              return Ref.update(ref, (entries) => entries.map((e, i) => (i === index ? { ...e, status, endedAt } : e)))
            })
          )
        )
      })
    )
}))

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<CallLog> = Layer.effect(CallLog, make)

/**
 * The entries logged so far.
 *
 * @since 0.1.0
 * @category accessors
 */
export const entries: Effect.Effect<ReadonlyArray<Entry>, never, CallLog> = Effect.flatMap(CallLog, (log) => log.entries)
