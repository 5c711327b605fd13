/**
 * The conformance suite of the {@link ContinuationStore} port, run by every
 * store adapter (memory, SQLite, Postgres) unchanged: creation and the
 * idempotency key, claims (only approved work, never one a claim holds,
 * fences raised, lapsed claims taken over), start and completion under the
 * claim's fence (a zombie's late completion refused), the approval's ending,
 * in-doubt resolution, and a unit that fails leaving nothing behind.
 *
 * The layer must build an empty approval store and continuation store (over
 * it) each time it is provided: every test provides it anew.
 *
 * @example
 * ```ts
 * import { ApprovalStore, ContinuationStore } from "@gavel/core"
 * import * as ContinuationStoreSuite from "@gavel/testing/ContinuationStoreSuite"
 * import { Effect, Layer } from "effect"
 *
 * ContinuationStoreSuite.run(
 *   "ContinuationStore.makeMemory",
 *   Layer.effect(
 *     ContinuationStore.ContinuationStore,
 *     Effect.flatMap(ApprovalStore.ApprovalStore, ContinuationStore.makeMemory)
 *   ).pipe(Layer.provideMerge(ApprovalStore.layerMemory))
 * )
 * ```
 *
 * @since 0.2.0
 */
import { ApprovalStore, ContinuationStore } from "@gavel/core"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { epochMillis, request } from "./Fixtures.js"

const at = (millis: number): Date => new Date(epochMillis + millis)

const LEASE = 30_000

/**
 * A `waiting` continuation for approval `approvalId`, created at the epoch.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const continuation = (
  approvalId: string,
  fields: Partial<ContinuationStore.Continuation> = {}
): ContinuationStore.Continuation => ({
  approvalId,
  handler: "payments.send",
  handlerVersion: 1,
  delivery: "atMostOnce",
  maxAttempts: 1,
  leaseMillis: LEASE,
  idempotencyKey: `key_${approvalId}`,
  sealed: `gavel.v1.k1.iv.ciphertext-of-${approvalId}`,
  state: "waiting",
  owner: null,
  leaseUntil: null,
  fence: 0,
  attempts: 0,
  createdAt: at(0),
  updatedAt: at(0),
  result: null,
  error: null,
  ...fields
})

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Timeout of each test in milliseconds (default: vitest's). */
  readonly timeout?: number | undefined
}

type Stores = { readonly approvals: ApprovalStore.Service; readonly continuations: ContinuationStore.Service }

/**
 * Registers the conformance suite as `describe(name, …)`.
 *
 * @since 0.2.0
 * @category suites
 */
export const run = <E>(
  name: string,
  layer: Layer.Layer<ApprovalStore.ApprovalStore | ContinuationStore.ContinuationStore, E>,
  options?: Options
): void => {
  const test = <A, E2>(title: string, body: (stores: Stores) => Effect.Effect<A, E2>) =>
    it.effect(
      title,
      () =>
        Effect.flatMap(
          Effect.all({ approvals: ApprovalStore.ApprovalStore, continuations: ContinuationStore.ContinuationStore }),
          body
        ).pipe(Effect.provide(layer)),
      options?.timeout
    )

  /** An approval `id` with its continuation, in one unit; approved when `approve`. */
  const submitted = (stores: Stores, id: string, approve: boolean, fields: Partial<ContinuationStore.Continuation> = {}) =>
    Effect.gen(function*() {
      yield* stores.continuations.atomically(
        Effect.zipRight(stores.continuations.create(continuation(id, fields)), stores.approvals.create(request({ id })))
      )
      if (approve) {
        yield* stores.approvals.vote(id, { approver: "bob", verdict: "approve", note: null, at: at(1_000) })
      }
    })

  /** Claims at `millis`, as `owner`. */
  const claim = (stores: Stores, millis: number, owner = "worker-1", limit = 10) =>
    stores.continuations.claim({ owner, now: at(millis), limit })

  describe(name, () => {
    test("creates a waiting continuation, found by approval id and by idempotency key", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", false)
        expect(yield* stores.continuations.get("apr_1")).toEqual(continuation("apr_1"))
        expect(yield* stores.continuations.findByKey("key_apr_1")).toEqual(Option.some(continuation("apr_1")))
        expect(yield* stores.continuations.findByKey("key_none")).toEqual(Option.none())
        const missing = yield* Effect.flip(stores.continuations.get("apr_none"))
        expect(missing).toEqual(new ContinuationStore.ContinuationNotFound({ approvalId: "apr_none" }))
      }))

    test("refuses a second continuation with the same idempotency key, and the unit leaves no approval", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", false)
        const error = yield* Effect.flip(
          stores.continuations.atomically(
            Effect.zipRight(
              stores.continuations.create(continuation("apr_2", { idempotencyKey: "key_apr_1" })),
              stores.approvals.create(request({ id: "apr_2" }))
            )
          )
        )
        expect(error).toEqual(new ContinuationStore.DuplicateKey({ idempotencyKey: "key_apr_1", approvalId: "apr_1" }))
        expect(Either.isLeft(yield* Effect.either(stores.approvals.get("apr_2")))).toBe(true)
        expect(Either.isLeft(yield* Effect.either(stores.continuations.get("apr_2")))).toBe(true)
      }))

    test("a unit whose approval is refused leaves no continuation, and its key is free again", (stores) =>
      Effect.gen(function*() {
        yield* stores.approvals.create(request({ id: "apr_0", requester: "alice" }))
        const error = yield* Effect.flip(
          stores.continuations.atomically(
            Effect.zipRight(
              stores.continuations.create(continuation("apr_1")),
              stores.approvals.create(request({ id: "apr_1", requester: "alice" }), { perRequester: 1 })
            )
          )
        )
        expect(error._tag).toBe("TooManyPending")
        expect(yield* stores.continuations.findByKey("key_apr_1")).toEqual(Option.none())
        yield* submitted(stores, "apr_2", false, { idempotencyKey: "key_apr_1" })
        expect((yield* stores.continuations.get("apr_2")).idempotencyKey).toBe("key_apr_1")
      }))

    test("claims only continuations whose approval is approved and not consumed, oldest first", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", false)
        expect(yield* claim(stores, 2_000)).toEqual([])
        yield* submitted(stores, "apr_2", true)
        yield* submitted(stores, "apr_3", true)
        const claimed = yield* claim(stores, 2_000)
        expect(claimed.map((c) => [c.approvalId, c.owner, c.fence, c.leaseUntil?.getTime()])).toEqual([
          ["apr_2", "worker-1", 1, at(2_000 + LEASE).getTime()],
          ["apr_3", "worker-1", 1, at(2_000 + LEASE).getTime()]
        ])
        expect(yield* stores.continuations.get("apr_2")).toEqual(claimed[0])
      }))

    test("never claims one a claim holds; takes it over once the claim lapsed, raising the fence", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", true)
        expect((yield* claim(stores, 2_000, "worker-1")).map((c) => c.fence)).toEqual([1])
        expect(yield* claim(stores, 2_000 + LEASE - 1, "worker-2")).toEqual([])
        const taken = yield* claim(stores, 2_000 + LEASE, "worker-2")
        expect(taken.map((c) => [c.owner, c.fence])).toEqual([["worker-2", 2]])
      }))

    test("respects the limit, and concurrent claims take each continuation once", (stores) =>
      Effect.gen(function*() {
        for (const n of [1, 2, 3, 4, 5]) yield* submitted(stores, `apr_${n}`, true)
        expect((yield* claim(stores, 2_000, "w0", 2)).map((c) => c.approvalId)).toEqual(["apr_1", "apr_2"])
        const all = yield* Effect.all(
          Array.from({ length: 6 }, (_, i) => claim(stores, 2_000, `w${i + 1}`, 1)),
          { concurrency: "unbounded" }
        )
        const ids = all.flat().map((c) => c.approvalId).sort()
        expect(ids).toEqual(["apr_3", "apr_4", "apr_5"])
      }))

    test("starts under the claim's fence, in one unit with the consume; a stale fence is refused", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", true)
        const [first] = yield* claim(stores, 2_000, "worker-1")
        const [second] = yield* claim(stores, 2_000 + LEASE, "worker-2")
        const stale = yield* Effect.flip(stores.continuations.start("apr_1", first!.fence, at(2_000 + LEASE)))
        expect(stale).toEqual(new ContinuationStore.FenceLost({ approvalId: "apr_1", fence: 1, state: "waiting" }))
        const started = yield* stores.continuations.atomically(
          Effect.zipLeft(
            stores.continuations.start("apr_1", second!.fence, at(3_000 + LEASE)),
            stores.approvals.consume("apr_1", "hash_apr_1", at(3_000 + LEASE))
          )
        )
        expect([started.state, started.attempts, started.fence]).toEqual(["started", 1, 2])
        expect((yield* stores.approvals.get("apr_1")).consumedAt).not.toBeNull()
      }))

    test("a start whose consume is refused is undone: the continuation stays waiting", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", true)
        const [claimed] = yield* claim(stores, 2_000)
        const error = yield* Effect.flip(stores.continuations.atomically(
          Effect.zipLeft(
            stores.continuations.start("apr_1", claimed!.fence, at(2_000)),
            stores.approvals.consume("apr_1", "another_hash", at(2_000))
          )
        ))
        expect(error._tag).toBe("ActionMismatch")
        const after = yield* stores.continuations.get("apr_1")
        expect([after.state, after.attempts]).toEqual(["waiting", 0])
      }))

    test("a started continuation whose claim lapsed is claimed again, for the worker to decide", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", true)
        const [claimed] = yield* claim(stores, 2_000)
        yield* stores.continuations.start("apr_1", claimed!.fence, at(2_000))
        expect(yield* claim(stores, 2_000 + LEASE - 1, "worker-2")).toEqual([])
        const [again] = yield* claim(stores, 2_000 + LEASE, "worker-2")
        expect([again!.state, again!.attempts, again!.fence, again!.owner]).toEqual(["started", 1, 2, "worker-2"])
      }))

    test("completes under the claim's fence, erasing the sealed data; a zombie's late completion is refused", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", true)
        const [first] = yield* claim(stores, 2_000, "worker-1")
        yield* stores.continuations.start("apr_1", first!.fence, at(2_000))
        const [second] = yield* claim(stores, 2_000 + LEASE, "worker-2")
        const ended = yield* stores.continuations.complete(
          "apr_1",
          second!.fence,
          { state: "in_doubt", error: "lease_expired" },
          at(2_000 + LEASE)
        )
        expect([ended.state, ended.error, ended.sealed, ended.owner, ended.leaseUntil]).toEqual([
          "in_doubt",
          "lease_expired",
          null,
          null,
          null
        ])
        const zombie = yield* Effect.flip(
          stores.continuations.complete("apr_1", first!.fence, { state: "succeeded", result: { ok: 1 } }, at(90_000))
        )
        expect(zombie._tag).toBe("FenceLost")
        expect((yield* stores.continuations.get("apr_1")).state).toBe("in_doubt")
        expect(yield* claim(stores, 10 * LEASE)).toEqual([])
      }))

    test("keeps a success's encoded result, and a failure's tag", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", true)
        yield* submitted(stores, "apr_2", true)
        const claimed = yield* claim(stores, 2_000)
        const result = { receipt: "r-1", amount: 25_000.5, lines: [1, "two", null] }
        yield* stores.continuations.complete("apr_1", claimed[0]!.fence, { state: "succeeded", result }, at(3_000))
        yield* stores.continuations.complete("apr_2", claimed[1]!.fence, { state: "failed", error: "Declined" }, at(3_000))
        const [one, two] = [yield* stores.continuations.get("apr_1"), yield* stores.continuations.get("apr_2")]
        expect([one.state, one.result, one.error]).toEqual(["succeeded", result, null])
        expect([two.state, two.result, two.error]).toEqual(["failed", null, "Declined"])
      }))

    test("a released claim is claimable again at once", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", true)
        const [claimed] = yield* claim(stores, 2_000)
        const released = yield* stores.continuations.release("apr_1", claimed!.fence, at(2_000))
        expect([released.owner, released.leaseUntil, released.state]).toEqual([null, null, "waiting"])
        expect((yield* claim(stores, 2_000, "worker-2")).map((c) => c.fence)).toEqual([2])
      }))

    test("closes a waiting continuation as its approval ended, erasing the sealed data; never a started one", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", false)
        yield* submitted(stores, "apr_2", true)
        yield* stores.continuations.close("apr_1", "rejected", at(5_000))
        const closed = yield* stores.continuations.get("apr_1")
        expect([closed.state, closed.sealed]).toEqual(["rejected", null])
        const [claimed] = yield* claim(stores, 2_000)
        yield* stores.continuations.start("apr_2", claimed!.fence, at(2_000))
        yield* stores.continuations.close("apr_2", "expired", at(5_000))
        expect((yield* stores.continuations.get("apr_2")).state).toBe("started")
        yield* stores.continuations.close("apr_none", "cancelled", at(5_000))
      }))

    test("resolves an in-doubt continuation, and only an in-doubt one", (stores) =>
      Effect.gen(function*() {
        yield* submitted(stores, "apr_1", true)
        const [claimed] = yield* claim(stores, 2_000)
        const early = yield* Effect.flip(
          stores.continuations.resolve("apr_1", { state: "succeeded", result: null }, at(2_000))
        )
        expect(early._tag).toBe("FenceLost")
        yield* stores.continuations.complete("apr_1", claimed!.fence, { state: "in_doubt", error: "lease_expired" }, at(3_000))
        const resolved = yield* stores.continuations.resolve("apr_1", { state: "failed", error: "operator" }, at(4_000))
        expect([resolved.state, resolved.error]).toEqual(["failed", "operator"])
      }))

    test("lists by state, oldest first, at most the limit", (stores) =>
      Effect.gen(function*() {
        for (const n of [1, 2, 3]) yield* submitted(stores, `apr_${n}`, n !== 2, { createdAt: at(n) })
        yield* stores.continuations.close("apr_2", "cancelled", at(5_000))
        expect((yield* stores.continuations.list()).map((c) => c.approvalId)).toEqual(["apr_1", "apr_2", "apr_3"])
        expect((yield* stores.continuations.list({ state: "waiting" })).map((c) => c.approvalId)).toEqual([
          "apr_1",
          "apr_3"
        ])
        expect((yield* stores.continuations.list({ limit: 1 })).map((c) => c.approvalId)).toEqual(["apr_1"])
      }))

    test("an approval with no continuation is no one's work", (stores) =>
      Effect.gen(function*() {
        yield* stores.approvals.create(request({ id: "apr_1" }))
        yield* stores.approvals.vote("apr_1", { approver: "bob", verdict: "approve", note: null, at: at(1_000) })
        expect(yield* claim(stores, 2_000)).toEqual([])
      }))
  })
}
