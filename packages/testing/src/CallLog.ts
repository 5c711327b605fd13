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
export const make: Effect.Effect<Service> = Effect.sync(() => {
  // Appended and updated in place (O(1) per call); readers get a snapshot.
  const log: Array<Entry> = []
  return {
    entries: Effect.sync(() => log.slice()),
    track: (system, operation, input, call) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Clock.currentTimeMillis, (startedAt) => {
          const index = log.push({ system, operation, input, status: "started", startedAt, endedAt: undefined }) - 1
          return restore(call).pipe(
            Effect.onExit((exit) =>
              Effect.map(Clock.currentTimeMillis, (endedAt) => {
                const status: Status = Exit.isSuccess(exit)
                  ? "succeeded"
                  : Exit.isInterrupted(exit)
                  ? "interrupted"
                  : "failed"
                log[index] = { ...log[index]!, status, endedAt }
              })
            )
          )
        })
      )
  }
})

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
