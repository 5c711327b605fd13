/**
 * Parked calls: who waits on which approval, how a resolution wakes them,
 * and the wait itself (`awaitResolution`).
 *
 * A parked call is what the runtime keeps the longest and in the largest
 * numbers (the approvals bench measures the heap per parked call), so what
 * a parked call keeps is chosen here with care: small objects rather than
 * Deferreds, closures built in {@link make}'s scope (shared by every call)
 * that capture only the call's own values, and anonymous functions.
 */
import type * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Approval from "../../Approval.js"
import type { ApprovalStore } from "../../ApprovalStore.js"

/**
 * A parked caller: the resolution that arrived before it parked, or how to
 * wake it. One small object per parked call.
 */
class Waiter {
  resolved: Approval.ApprovalRequest | undefined = undefined
  private wake: ((effect: Effect.Effect<Approval.ApprovalRequest>) => void) | undefined = undefined

  constructor(
    readonly approvalId: string,
    readonly onInterrupt: ((approvalId: string) => Effect.Effect<void>) | undefined
  ) {}

  notify(request: Approval.ApprovalRequest): void {
    if (this.wake === undefined) this.resolved = request
    else this.wake(Effect.succeed(request))
  }

  /** Suspends the fiber until {@link notify}. */
  parked(): Effect.Effect<Approval.ApprovalRequest> {
    return Effect.async<Approval.ApprovalRequest>((resume) => {
      this.wake = resume
    })
  }
}

/**
 * The parked calls of one runtime.
 *
 * @internal
 */
export type Waiters = ReturnType<typeof make>

/**
 * An empty registry of parked calls, reading approvals from `store`.
 *
 * @internal
 */
export const make = (store: Context.Tag.Service<ApprovalStore>) => {
  // Parked callers by approval id: one waiter, or several when `enforce`
  // and `resume` wait on the same approval. Small objects, not Deferreds,
  // keep a parked call small (100k parked calls must fit in a few hundred MB).
  const waiters = new Map<string, Waiter | Array<Waiter>>()

  const addWaiter = (approvalId: string, waiter: Waiter): void => {
    const current = waiters.get(approvalId)
    if (current === undefined) waiters.set(approvalId, waiter)
    else if (current instanceof Waiter) waiters.set(approvalId, [current, waiter])
    else current.push(waiter)
  }

  const removeWaiter = (approvalId: string, waiter: Waiter): void => {
    const current = waiters.get(approvalId)
    if (current === waiter) {
      waiters.delete(approvalId)
    } else if (Array.isArray(current)) {
      const i = current.indexOf(waiter)
      if (i >= 0) current.splice(i, 1)
      if (current.length === 0) waiters.delete(approvalId)
    }
  }

  /** Wakes the calls parked on `request`, once it is no longer pending. */
  // Told of every approval this process resolves (the durable worker).
  const listeners = new Set<(request: Approval.ApprovalRequest) => void>()

  const notify = (request: Approval.ApprovalRequest): void => {
    if (request.status === "pending") return
    for (const listener of listeners) listener(request)
    const current = waiters.get(request.id)
    if (current === undefined) return
    waiters.delete(request.id)
    if (current instanceof Waiter) current.notify(request)
    else for (const waiter of current) waiter.notify(request)
  }

  /**
   * What an interrupted wait does (the only way out of it but a resolution).
   * An anonymous function, like every function a parked call keeps: tsx
   * (`keepNames`) gives each named closure its own property table.
   */
  const interrupted = (waiter: Waiter) => (cause: Cause.Cause<never>): Effect.Effect<never> => {
    removeWaiter(waiter.approvalId, waiter)
    return waiter.onInterrupt === undefined
      ? Effect.failCause(cause)
      : Effect.zipRight(waiter.onInterrupt(waiter.approvalId), Effect.failCause(cause))
  }

  /**
   * Waits until the approval leaves `pending`, then goes on with `then`.
   * Call it in an uninterruptible region: only the wait itself is
   * interruptible, and interrupting it runs `onInterrupt` (built only then).
   * Registers before reading, so a resolution written in between is not
   * missed.
   *
   * While parked, the fiber's stack holds this wait's two handlers (and the
   * region around it): nothing they capture may be large. The decision
   * record and the request are not among it.
   */
  const awaitResolution = <A, E, R2>(
    approvalId: string,
    onInterrupt: ((approvalId: string) => Effect.Effect<void>) | undefined,
    then: (request: Approval.ApprovalRequest) => Effect.Effect<A, E, R2>
  ): Effect.Effect<A, E | Approval.ApprovalNotFound | Approval.StoreError, R2> =>
    Effect.suspend(() => {
      const waiter = new Waiter(approvalId, onInterrupt)
      addWaiter(approvalId, waiter)
      return Effect.matchEffect(store.get(approvalId), {
        onFailure: (error) => {
          removeWaiter(approvalId, waiter)
          return Effect.fail(error)
        },
        onSuccess: (current) => {
          if (current.status !== "pending") {
            removeWaiter(approvalId, waiter)
            return then(current)
          }
          if (waiter.resolved !== undefined) return then(waiter.resolved)
          return Effect.matchCauseEffect(Effect.interruptible(waiter.parked()), {
            onFailure: interrupted(waiter),
            onSuccess: then
          })
        }
      })
    })

  return {
    awaitResolution,
    notify,
    /** The approvals calls are parked on now. */
    parkedOn: (): ReadonlyArray<string> => Array.from(waiters.keys()),
    /** Whether a call is parked on the approval. */
    isParkedOn: (approvalId: string): boolean => waiters.has(approvalId),
    /** Calls `listener` with every approval this process resolves, until the returned function is called. */
    onResolved: (listener: (request: Approval.ApprovalRequest) => void): () => void => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    }
  }
}
