/**
 * What wakes parked calls besides this process's own transitions: polling
 * a shared store and listening to its announced resolutions (for
 * resolutions written by other processes), and the sweeper that expires
 * due approvals.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Approval from "../../Approval.js"
import type { GovernanceContext } from "./context.js"
import type { Waiters } from "./waiters.js"

/**
 * With a shared store, keeps `waiters` told of resolutions written by other
 * processes, for as long as the scope lasts; with another store, nothing.
 *
 * @internal
 */
export const watch = Effect.fnUntraced(function*(ctx: GovernanceContext, waiters: Waiters) {
  const { notify } = waiters
  const { pollInterval, store } = ctx
  if (!store.shared) return
  // Resolutions written by other processes reach this one by polling, and
  // at once when the store announces them (`resolutions`); an announcement
  // is only a hint to read the approval now.
  const recheck = (id: string) => Effect.match(store.get(id), { onFailure: () => undefined, onSuccess: notify })
  const recheckAll = Effect.suspend(() =>
    Effect.forEach(waiters.parkedOn(), recheck, { concurrency: 16, discard: true })
  )
  yield* Effect.forkScoped(recheckAll.pipe(Effect.repeat(Schedule.spaced(pollInterval))))
  if (store.resolutions !== undefined) {
    yield* Effect.forkScoped(
      store.resolutions.pipe(
        Stream.mapEffect(
          (resolution) =>
            resolution._tag === "Resync"
              ? recheckAll
              : waiters.isParkedOn(resolution.approvalId)
              ? recheck(resolution.approvalId)
              : Effect.void,
          { concurrency: 16, unordered: true }
        ),
        Stream.runDrain
      )
    )
  }
})

/**
 * The sweeper, for as long as the scope lasts: every `interval` (the first
 * after one), expires due approvals (`expireDue`), a failure logged.
 *
 * @internal
 */
export const sweep = (
  expireDue: Effect.Effect<ReadonlyArray<Approval.ApprovalRequest>, Approval.StoreError>,
  interval: Duration.Duration
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.asVoid(Effect.forkScoped(
    expireDue.pipe(
      Effect.catchAll((error) => Effect.logWarning("gavel: sweeping expired approvals failed", error)),
      Effect.repeat(Schedule.spaced(interval)),
      Effect.delay(interval)
    )
  ))
