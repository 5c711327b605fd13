/**
 * Helpers to drive approvals in tests: wait for the approval a parked call
 * opened, vote on it after a virtual delay, or jump the `TestClock` to its
 * expiry.
 *
 * @example
 * ```ts
 * // inside Effect.gen
 * import { Approvals } from "@gavel/testing"
 * import * as Effect from "effect/Effect"
 * import * as Fiber from "effect/Fiber"
 * import * as TestClock from "effect/TestClock"
 *
 * // in an it.effect test: park a call, approve it 10 virtual minutes later
 * const fiber = yield* Effect.fork(governance.enforce(action, () => bank.send(action.payload)))
 * yield* Effect.fork(Approvals.approveWhenPending([alice, bob], { after: "10 minutes" }))
 * yield* TestClock.adjust("10 minutes")
 * yield* Fiber.join(fiber)
 * ```
 *
 * @since 0.1.0
 */
import { type Action, type Approval, ApprovalStore, Governance } from "@gavel/core"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"

/**
 * Waits — yielding to other fibers, without moving virtual time — until the
 * store holds a pending approval matching `filter`, and returns the oldest.
 * Fails with `NoSuchElementException` if none appears after `maxYields`
 * scheduler turns (the call under test never parked).
 *
 * @since 0.1.0
 * @category waiting
 */
export const awaitPending = (
  filter?: ApprovalStore.ListFilter & { readonly maxYields?: number | undefined }
): Effect.Effect<Approval.ApprovalRequest, Cause.NoSuchElementException | Approval.StoreError, ApprovalStore.ApprovalStore> =>
  Effect.flatMap(ApprovalStore.ApprovalStore, (store) => {
    const maxYields = filter?.maxYields ?? 1000
    const loop = (turn: number): Effect.Effect<
      Approval.ApprovalRequest,
      Cause.NoSuchElementException | Approval.StoreError
    > =>
      Effect.flatMap(store.listPending({ ...filter, limit: 1 }), (found) => {
        if (found[0] !== undefined) return Effect.succeed(found[0])
        if (turn >= maxYields) {
          return Effect.fail(new Cause.NoSuchElementException(`no pending approval after ${maxYields} turns`))
        }
        return Effect.zipRight(Effect.yieldNow(), loop(turn + 1))
      })
    return loop(0)
  })

/**
 * Waits for a pending approval (see {@link awaitPending}), sleeps `after`
 * (virtual time: advance it with `TestClock`), then has each of `approvers`
 * approve it in order — or acknowledge it, for an acknowledgment. Returns the
 * approval after the last vote. Fork it next to the call under test.
 *
 * @since 0.1.0
 * @category voting
 */
export const approveWhenPending = (
  approvers: ReadonlyArray<Action.Principal>,
  options?: ApprovalStore.ListFilter & { readonly after?: Duration.DurationInput | undefined }
): Effect.Effect<
  Approval.ApprovalRequest,
  Cause.NoSuchElementException | Governance.VoteError,
  ApprovalStore.ApprovalStore | Governance.Governance
> =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    let request = yield* awaitPending(options)
    if (options?.after !== undefined) yield* Effect.sleep(options.after)
    for (const approver of approvers) {
      request = request.kind === "approval"
        ? yield* governance.approve(request.id, approver)
        : yield* governance.acknowledge(request.id, approver)
    }
    return request
  })

/**
 * Sets the `TestClock` to the approval's expiry instant and runs the
 * runtime's expiry sweep once, so parked callers wake with `ApprovalExpired`
 * without waiting for the sweeper's next turn. Returns what expired.
 *
 * @since 0.1.0
 * @category time
 */
export const advanceToExpiry = (
  approvalId: string
): Effect.Effect<
  ReadonlyArray<Approval.ApprovalRequest>,
  Approval.ApprovalNotFound | Approval.StoreError,
  ApprovalStore.ApprovalStore | Governance.Governance
> =>
  Effect.gen(function*() {
    const store = yield* ApprovalStore.ApprovalStore
    const governance = yield* Governance.Governance
    const request = yield* store.get(approvalId)
    yield* TestClock.setTime(request.requirement.expiresAt.getTime())
    return yield* governance.expireDue
  })

/**
 * Lets every runnable fiber make progress (`n` scheduler turns) without
 * moving virtual time.
 *
 * @since 0.1.0
 * @category waiting
 */
export const settle = (n = 50): Effect.Effect<void> => Effect.repeatN(Effect.yieldNow(), n)

