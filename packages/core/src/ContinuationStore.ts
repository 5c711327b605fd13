/**
 * The continuation store port: the work an approval releases, kept beside
 * the approval so that it survives a restart and runs on any instance.
 *
 * A continuation names a registered work handler and holds its sealed
 * (encrypted) action and input — never a closure. It is created with its
 * approval in one unit, claimed by a worker with a compare-and-set that
 * raises its `fence`, started in one unit with the approval's consume, and
 * ended under the fence of the claim that started it, so that a worker whose
 * claim was taken over cannot complete it. Time is always passed in.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Approval from "./Approval.js"
import type * as ApprovalStore from "./ApprovalStore.js"
import { ApprovalStore as ApprovalStoreTag } from "./ApprovalStore.js"

/**
 * Where a continuation stands:
 *
 * - `waiting`: its approval is pending, or approved and not yet started
 *   (a claim may hold it: `owner`, `leaseUntil`);
 * - `started`: its approval was consumed and the work began (attempt
 *   `attempts`);
 * - `succeeded`, `failed`: the work ended (`result` / `error`);
 * - `in_doubt`: an at-most-once work's claim lapsed after it started: it may
 *   have run; never run again, an operator resolves it;
 * - `rejected`, `expired`, `cancelled`: its approval ended so; it never runs.
 *
 * @since 0.2.0
 * @category models
 */
export const State = Schema.Literal(
  "waiting",
  "started",
  "succeeded",
  "failed",
  "in_doubt",
  "rejected",
  "expired",
  "cancelled"
)

/**
 * @since 0.2.0
 * @category models
 */
export type State = typeof State.Type

/**
 * The states a continuation does not leave (but `in_doubt`, which an
 * operator resolves to `succeeded` or `failed`).
 *
 * @since 0.2.0
 * @category models
 */
export const isFinal = (state: State): boolean => state !== "waiting" && state !== "started"

/**
 * How a handler's work is delivered: `atMostOnce` (a claim that lapses after
 * the work started leaves it `in_doubt`) or `atLeastOnce` (it is claimed and
 * run again, up to `maxAttempts`).
 *
 * @since 0.2.0
 * @category models
 */
export const Delivery = Schema.Literal("atMostOnce", "atLeastOnce")

/**
 * @since 0.2.0
 * @category models
 */
export type Delivery = typeof Delivery.Type

/**
 * A continuation.
 *
 * - `sealed`: the action and the encoded input, encrypted (`Encryption`)
 *   with the approval id and action hash as associated data; `null` once
 *   final.
 * - `leaseMillis`: how long a claim lasts (the handler's lease, kept so that
 *   every instance claims alike).
 * - `fence`: raised by every claim; `start` and `complete` need the fence of
 *   the claim they act under.
 * - `result`: the encoded success (JSON), when `succeeded`; `error`: the
 *   failure's tag or reason code (never its message), when `failed` or
 *   `in_doubt`.
 *
 * @since 0.2.0
 * @category models
 */
export const Continuation = Schema.Struct({
  approvalId: Schema.String,
  handler: Schema.String,
  handlerVersion: Schema.Int,
  delivery: Delivery,
  maxAttempts: Schema.Int.pipe(Schema.positive()),
  leaseMillis: Schema.Int.pipe(Schema.positive()),
  idempotencyKey: Schema.String,
  sealed: Schema.NullOr(Schema.String),
  state: State,
  owner: Schema.NullOr(Schema.String),
  leaseUntil: Schema.NullOr(Schema.Date),
  fence: Schema.Int.pipe(Schema.nonNegative()),
  attempts: Schema.Int.pipe(Schema.nonNegative()),
  createdAt: Schema.Date,
  updatedAt: Schema.Date,
  result: Schema.NullOr(Schema.Unknown),
  error: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Continuation" })

/**
 * @since 0.2.0
 * @category models
 */
export interface Continuation extends Schema.Schema.Type<typeof Continuation> {}

/**
 * How a started continuation ended.
 *
 * @since 0.2.0
 * @category models
 */
export type Ending =
  | { readonly state: "succeeded"; readonly result: unknown }
  | { readonly state: "failed" | "in_doubt"; readonly error: string }

/**
 * No continuation for this approval.
 *
 * @since 0.2.0
 * @category errors
 */
export class ContinuationNotFound extends Schema.TaggedError<ContinuationNotFound>()("ContinuationNotFound", {
  approvalId: Schema.String
}) {
  /** @since 0.2.0 */
  override get message(): string {
    return `No continuation for approval "${this.approvalId}"`
  }
}

/**
 * A continuation with this idempotency key exists already (for
 * `approvalId`).
 *
 * @since 0.2.0
 * @category errors
 */
export class DuplicateKey extends Schema.TaggedError<DuplicateKey>()("DuplicateKey", {
  idempotencyKey: Schema.String,
  approvalId: Schema.String
}) {
  /** @since 0.2.0 */
  override get message(): string {
    return `A continuation with this idempotency key exists (approval "${this.approvalId}")`
  }
}

/**
 * The claim a worker acts under was taken over (its fence is not the
 * continuation's), or the continuation is not in a state the step applies
 * to: nothing was written.
 *
 * @since 0.2.0
 * @category errors
 */
export class FenceLost extends Schema.TaggedError<FenceLost>()("FenceLost", {
  approvalId: Schema.String,
  fence: Schema.Int,
  state: State
}) {
  /** @since 0.2.0 */
  override get message(): string {
    return `The claim of continuation "${this.approvalId}" (fence ${this.fence}) no longer holds (${this.state})`
  }
}

/**
 * @since 0.2.0
 * @category models
 */
export interface Service {
  /** The approval store whose unit (`atomically`) the continuations' writes join. */
  readonly store: ApprovalStore.Service
  /** Runs `effect` — the approval store's and this store's writes in it — as one unit. */
  readonly atomically: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Approval.StoreError, R>
  /** Stores a new `waiting` continuation; refused when its idempotency key is taken. */
  readonly create: (continuation: Continuation) => Effect.Effect<void, DuplicateKey | Approval.StoreError>
  readonly get: (approvalId: string) => Effect.Effect<Continuation, ContinuationNotFound | Approval.StoreError>
  readonly findByKey: (idempotencyKey: string) => Effect.Effect<Option.Option<Continuation>, Approval.StoreError>
  /**
   * Claims up to `limit` continuations for `owner`, until `now` plus each
   * one's lease, raising each one's fence ({@link isClaimable}): those
   * `waiting` whose approval is approved and not consumed, and those
   * `started` whose claim lapsed — never one another claim holds. Oldest
   * first.
   */
  readonly claim: (options: {
    readonly owner: string
    readonly now: Date
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<Continuation>, Approval.StoreError>
  /**
   * Marks a claimed continuation `started` (one more attempt), under the
   * claim's `fence`. Run it in one unit with the approval's consume (when
   * the approval is not consumed yet).
   */
  readonly start: (
    approvalId: string,
    fence: number,
    now: Date
  ) => Effect.Effect<Continuation, ContinuationNotFound | FenceLost | Approval.StoreError>
  /**
   * Releases a claim without starting (the worker gives the continuation
   * back): claimable again at once.
   */
  readonly release: (
    approvalId: string,
    fence: number,
    now: Date
  ) => Effect.Effect<Continuation, ContinuationNotFound | FenceLost | Approval.StoreError>
  /** Ends a claimed continuation under the claim's `fence`; its sealed data is erased. */
  readonly complete: (
    approvalId: string,
    fence: number,
    ending: Ending,
    now: Date
  ) => Effect.Effect<Continuation, ContinuationNotFound | FenceLost | Approval.StoreError>
  /**
   * Ends a `waiting` continuation whose approval ended (`rejected`,
   * `expired`, `cancelled`), its sealed data erased. Run it in one unit with
   * the approval's step. Nothing to do for a continuation that is not
   * `waiting` or an approval without one.
   */
  readonly close: (
    approvalId: string,
    state: "rejected" | "expired" | "cancelled",
    now: Date
  ) => Effect.Effect<void, Approval.StoreError>
  /** Resolves an `in_doubt` continuation, by an operator who found out what happened. */
  readonly resolve: (
    approvalId: string,
    ending: Ending & { readonly state: "succeeded" | "failed" },
    now: Date
  ) => Effect.Effect<Continuation, ContinuationNotFound | FenceLost | Approval.StoreError>
  /** Continuations (of `state`, when given), oldest first, at most `limit`. */
  readonly list: (filter?: {
    readonly state?: State | undefined
    readonly limit?: number | undefined
  }) => Effect.Effect<ReadonlyArray<Continuation>, Approval.StoreError>
}

/**
 * @since 0.2.0
 * @category tags
 */
export class ContinuationStore extends Context.Tag("@gavel/core/ContinuationStore")<ContinuationStore, Service>() {}

// -----------------------------------------------------------------------------
// transitions (pure: every store applies these)
// -----------------------------------------------------------------------------

/**
 * Whether `continuation` may be claimed at `now`, its approval being
 * `approval`: `waiting` with its approval approved and not consumed, or
 * `started` (its claim lapsed); never while a claim holds.
 *
 * @since 0.2.0
 * @category transitions
 */
export const isClaimable = (
  continuation: Continuation,
  approval: Pick<Approval.ApprovalRequest, "status" | "consumedAt">,
  now: Date
): boolean => {
  if (continuation.leaseUntil !== null && continuation.leaseUntil.getTime() > now.getTime()) return false
  switch (continuation.state) {
    case "waiting":
      return approval.status === "approved" && approval.consumedAt === null
    case "started":
      // Its claim lapsed: the worker that takes it decides (in doubt, or again).
      return true
    default:
      return false
  }
}

/**
 * The continuation claimed by `owner` at `now`: fence raised, leased for its
 * `leaseMillis`.
 *
 * @since 0.2.0
 * @category transitions
 */
export const claimed = (continuation: Continuation, owner: string, now: Date): Continuation => ({
  ...continuation,
  owner,
  leaseUntil: new Date(now.getTime() + continuation.leaseMillis),
  fence: continuation.fence + 1,
  updatedAt: now
})

const holds = (continuation: Continuation, fence: number, states: ReadonlyArray<State>): boolean =>
  continuation.fence === fence && continuation.owner !== null && states.includes(continuation.state)

const lost = (continuation: Continuation, fence: number) =>
  new FenceLost({ approvalId: continuation.approvalId, fence, state: continuation.state })

/**
 * {@link Service.start} on a value: `started`, one more attempt.
 *
 * @since 0.2.0
 * @category transitions
 */
export const started = (continuation: Continuation, fence: number, now: Date): Effect.Effect<Continuation, FenceLost> =>
  holds(continuation, fence, ["waiting", "started"])
    ? Effect.succeed({ ...continuation, state: "started", attempts: continuation.attempts + 1, updatedAt: now })
    : Effect.fail(lost(continuation, fence))

/**
 * {@link Service.release} on a value: unclaimed, still `waiting`.
 *
 * @since 0.2.0
 * @category transitions
 */
export const released = (continuation: Continuation, fence: number, now: Date): Effect.Effect<Continuation, FenceLost> =>
  holds(continuation, fence, ["waiting"])
    ? Effect.succeed({ ...continuation, owner: null, leaseUntil: null, updatedAt: now })
    : Effect.fail(lost(continuation, fence))

const ended = (continuation: Continuation, ending: Ending, now: Date): Continuation => ({
  ...continuation,
  state: ending.state,
  sealed: null,
  owner: null,
  leaseUntil: null,
  result: ending.state === "succeeded" ? ending.result : null,
  error: ending.state === "succeeded" ? null : ending.error,
  updatedAt: now
})

/**
 * {@link Service.complete} on a value: ended, its sealed data erased. A
 * claim may end a continuation it holds whether or not it started (a
 * revalidation that failed, an in-doubt one it found).
 *
 * @since 0.2.0
 * @category transitions
 */
export const completed = (
  continuation: Continuation,
  fence: number,
  ending: Ending,
  now: Date
): Effect.Effect<Continuation, FenceLost> =>
  holds(continuation, fence, ["waiting", "started"])
    ? Effect.succeed(ended(continuation, ending, now))
    : Effect.fail(lost(continuation, fence))

/**
 * {@link Service.close} on a value: the approval's ending, for a `waiting`
 * continuation; none for another.
 *
 * @since 0.2.0
 * @category transitions
 */
export const closed = (
  continuation: Continuation,
  state: "rejected" | "expired" | "cancelled",
  now: Date
): Option.Option<Continuation> =>
  continuation.state === "waiting"
    ? Option.some({ ...continuation, state, sealed: null, owner: null, leaseUntil: null, updatedAt: now })
    : Option.none()

/**
 * {@link Service.resolve} on a value: an `in_doubt` continuation resolved.
 *
 * @since 0.2.0
 * @category transitions
 */
export const resolved = (
  continuation: Continuation,
  ending: Ending & { readonly state: "succeeded" | "failed" },
  now: Date
): Effect.Effect<Continuation, FenceLost> =>
  continuation.state === "in_doubt"
    ? Effect.succeed(ended(continuation, ending, now))
    : Effect.fail(lost(continuation, continuation.fence))

// -----------------------------------------------------------------------------
// memory
// -----------------------------------------------------------------------------

/** The undo log of the memory unit the fiber runs in, if any. */
const undoLog = FiberRef.unsafeMake<Array<() => void> | null>(null)

/**
 * Continuations in memory beside `store` (the memory approval store, or
 * another whose writes need no transaction): for tests and single-process
 * hosts. Not durable: a restart loses them, as it loses the memory store's
 * approvals. A unit (`atomically`) that fails undoes this store's writes,
 * not the approval store's: the runtime writes a continuation before the
 * approval step that goes with it. Its writes are serialized: a claim (which
 * reads the approvals as it goes) and every read-modify-write are each one
 * compare-and-set, whatever other fibers claim or complete meanwhile.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemory = (store: ApprovalStore.Service): Effect.Effect<Service> =>
  Effect.map(Effect.makeSemaphore(1), (lock) => {
    // One write at a time: without it, a fiber that yields in the middle of
    // a claim (after some 2,000 steps, over many rows) claims again rows
    // another claim took meanwhile, under the same fence.
    const serialized = lock.withPermits(1)
    // In creation order: the order claims take them in.
    const rows = new Map<string, Continuation>()
    const byKey = new Map<string, string>()
    const find = (approvalId: string) =>
      Effect.suspend(() => {
        const row = rows.get(approvalId)
        return row === undefined ? Effect.fail(new ContinuationNotFound({ approvalId })) : Effect.succeed(row)
      })
    /** Sets a row; inside a unit, remembers how to undo it. */
    const set = (approvalId: string, next: Continuation) =>
      Effect.flatMap(FiberRef.get(undoLog), (log) =>
        Effect.sync(() => {
          const before = rows.get(approvalId)
          log?.push(() => {
            if (before === undefined) {
              rows.delete(approvalId)
              byKey.delete(next.idempotencyKey)
            } else {
              rows.set(approvalId, before)
            }
          })
          rows.set(approvalId, next)
          byKey.set(next.idempotencyKey, approvalId)
        }))
    const update = <E>(
      approvalId: string,
      f: (c: Continuation) => Effect.Effect<Continuation, E>
    ): Effect.Effect<Continuation, E | ContinuationNotFound> =>
      serialized(Effect.flatMap(find(approvalId), f).pipe(Effect.tap((next) => set(approvalId, next))))
    return ContinuationStore.of({
      store,
      // This store's writes in a unit that fails are undone; the approval
      // store's are its own (write this store's fallible steps first).
      atomically: (effect) =>
        Effect.suspend(() => {
          const log: Array<() => void> = []
          return Effect.locally(effect, undoLog, log).pipe(
            Effect.onError(() =>
              Effect.sync(() => {
                for (const undo of log.reverse()) undo()
              })
            )
          )
        }),
      create: (continuation) =>
        serialized(Effect.suspend((): Effect.Effect<void, DuplicateKey | Approval.StoreError> => {
          const existing = byKey.get(continuation.idempotencyKey)
          if (existing !== undefined) {
            return Effect.fail(new DuplicateKey({ idempotencyKey: continuation.idempotencyKey, approvalId: existing }))
          }
          if (rows.has(continuation.approvalId)) {
            return Effect.fail(
              new Approval.StoreError({
                operation: "create continuation",
                detail: `a continuation for approval "${continuation.approvalId}" exists`
              })
            )
          }
          return set(continuation.approvalId, continuation)
        })),
      get: find,
      findByKey: (key) =>
        Effect.sync(() => {
          const id = byKey.get(key)
          return id === undefined ? Option.none() : Option.fromNullable(rows.get(id))
        }),
      claim: ({ limit, now, owner }) =>
        serialized(Effect.gen(function*() {
          const out: Array<Continuation> = []
          for (const row of Array.from(rows.values())) {
            if (out.length >= limit) break
            if (isFinal(row.state)) continue
            const approval = yield* Effect.either(store.get(row.approvalId))
            if (approval._tag === "Left") {
              if (approval.left._tag === "StoreError") return yield* approval.left
              continue
            }
            if (!isClaimable(row, approval.right, now)) continue
            const next = claimed(row, owner, now)
            rows.set(row.approvalId, next)
            out.push(next)
          }
          return out
        })),
      start: (approvalId, fence, now) => update(approvalId, (c) => started(c, fence, now)),
      release: (approvalId, fence, now) => update(approvalId, (c) => released(c, fence, now)),
      complete: (approvalId, fence, ending, now) => update(approvalId, (c) => completed(c, fence, ending, now)),
      close: (approvalId, state, now) =>
        serialized(Effect.suspend(() => {
          const row = rows.get(approvalId)
          const next = row === undefined ? Option.none() : closed(row, state, now)
          return Option.isSome(next) ? set(approvalId, next.value) : Effect.void
        })),
      resolve: (approvalId, ending, now) => update(approvalId, (c) => resolved(c, ending, now)),
      list: (filter) =>
        Effect.sync(() => {
          const limit = filter?.limit ?? Number.POSITIVE_INFINITY
          const out: Array<Continuation> = []
          for (const row of rows.values()) {
            if (out.length >= limit) break
            if (filter?.state === undefined || row.state === filter.state) out.push(row)
          }
          return out
        })
    })
  })

/**
 * {@link makeMemory} beside the `ApprovalStore` in context (provide
 * `ApprovalStore.layerMemory` to it and merge both).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ContinuationStore, never, ApprovalStore.ApprovalStore> = Layer.effect(
  ContinuationStore,
  Effect.flatMap(ApprovalStoreTag, makeMemory)
)
