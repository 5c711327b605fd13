/**
 * The conformance suite of the {@link ApprovalStore} port. Every store
 * adapter (memory, SQLite, Postgres…) runs these same tests unchanged, so
 * that the runtime can rely on one behaviour whatever the store: the
 * approval state machine, the expiry boundaries, at-most-once consumption,
 * atomic transitions under concurrency, and a model-based test that checks
 * random command sequences against an independent reference model.
 *
 * The layer must build an empty store each time it is provided: every test
 * provides it anew.
 *
 * One module for one suite: its length is its many small tests, each on one
 * rule of the port, kept together so that a store adapter runs all of them
 * with one call.
 *
 * @example
 * ```ts
 * import { ApprovalStore } from "@gavel/core"
 * import * as ApprovalStoreSuite from "@gavel/testing/ApprovalStoreSuite"
 *
 * ApprovalStoreSuite.run("ApprovalStore.layerMemory", ApprovalStore.layerMemory)
 * ```
 *
 * @since 0.1.0
 */
import { Action, Approval, ApprovalStore, Decision, IdGenerator, type Override, Policy, PolicySet } from "@gavel/core"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { epochMillis, request, type RequestOptions } from "./Fixtures.js"

// -----------------------------------------------------------------------------
// fixtures
// -----------------------------------------------------------------------------

export {
  /**
   * @since 0.1.0
   * @category fixtures
   */
  epochMillis,
  /**
   * @since 0.1.0
   * @category fixtures
   */
  request,
  /**
   * @since 0.1.0
   * @category fixtures
   */
  type RequestOptions
} from "./Fixtures.js"

const HOUR = 3_600_000

/** A `Date` at `millis` after {@link epochMillis}; stores only ever see `Date`s. */
const at = (millis: number): Date => new Date(epochMillis + millis)

/** A vote cast `millis` after the epoch (one minute by default). */
const ballot = (
  approver: string,
  verdict: Approval.Verdict = "approve",
  millis = 60_000,
  note: string | null = null
): Approval.VoteInput => ({ approver, verdict, note, at: at(millis) })

/**
 * The error of an operation expected to fail. An unexpected success fails
 * the test with a short message (printing the whole approval as the error
 * makes vitest's stack parsing crawl on its ISO timestamps).
 */
const failure = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<E> =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result)
      ? Effect.succeed(result.left)
      : Effect.sync(() => expect.fail(`expected a failure, got a success: ${summarize(result.right)}`)))

/**
 * Creates one approval in each state that is no longer pending, with ids
 * equal to their status: "approved", "rejected", "cancelled", "consumed".
 */
const resolvedApprovals = (store: ApprovalStore.Service) =>
  Effect.gen(function*() {
    yield* store.create(request({ id: "approved" }))
    yield* store.vote("approved", ballot("bob"))
    yield* store.create(request({ id: "rejected" }))
    yield* store.vote("rejected", ballot("bob", "reject"))
    yield* store.create(request({ id: "cancelled" }))
    yield* store.cancel("cancelled", at(1_000))
    yield* store.create(request({ id: "consumed" }))
    yield* store.vote("consumed", ballot("bob"))
    yield* store.consume("consumed", "hash_consumed", at(120_000))
  })

const summarize = (value: unknown): string =>
  typeof value === "object" && value !== null && "id" in value && "status" in value
    ? `approval "${String(value.id)}" (${String(value.status)})`
    : String(value)

// -----------------------------------------------------------------------------
// suite
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Runs of the model-based property (default 100). */
  readonly numRuns?: number | undefined
  /** The fast-check seed of the model-based property, fixed so runs repeat (default 20260101). */
  readonly seed?: number | undefined
  /** Timeout of each test in milliseconds (default: vitest's). */
  readonly timeout?: number | undefined
}

/**
 * Registers the conformance suite as `describe(name, …)`. Each test provides
 * `layer` to itself, so each gets a fresh, empty store.
 *
 * @since 0.1.0
 * @category suites
 */
export const run = <E>(
  name: string,
  layer: Layer.Layer<ApprovalStore.ApprovalStore, E>,
  options?: Options
): void => {
  const timeout = options?.timeout
  const test = <A, E2>(title: string, body: (store: ApprovalStore.Service) => Effect.Effect<A, E2>) =>
    it.effect(title, () => Effect.flatMap(ApprovalStore.ApprovalStore, body).pipe(Effect.provide(layer)), timeout)

  describe(name, () => {
    describe("create and get", () => {
      test("returns what was created, Dates included", (store) =>
        Effect.gen(function*() {
          const req = request({ quorum: 2 })
          yield* store.create(req)
          const stored = yield* store.get(req.id)
          expect(stored).toEqual(req)
          expect(stored.createdAt).toBeInstanceOf(Date)
          expect(stored.requirement.expiresAt.getTime()).toBe(epochMillis + HOUR)
          const other = { ...request({ id: "apr_2", kind: "acknowledgment", tenant: null }), trace: null }
          yield* store.create(other)
          expect(yield* store.get("apr_2")).toEqual(other)
          expect(yield* store.get(req.id)).toEqual(req)
        }))

      test("fails with ApprovalNotFound for an unknown id", (store) =>
        Effect.gen(function*() {
          const error = yield* failure(store.get("nope"))
          expect(error._tag).toBe("ApprovalNotFound")
          expect(error).toMatchObject({ approvalId: "nope" })
        }))

      test("refuses a duplicate id with StoreError and keeps the original", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          const error = yield* failure(store.create(request({ requester: "mallory", quorum: 3 })))
          expect(error._tag).toBe("StoreError")
          expect(yield* store.get(req.id)).toEqual(req)
        }))

      test("fails with ApprovalNotFound when voting on, consuming or cancelling an unknown id", (store) =>
        Effect.gen(function*() {
          expect((yield* failure(store.vote("nope", ballot("bob"))))._tag).toBe("ApprovalNotFound")
          expect((yield* failure(store.consume("nope", "h", at(1))))._tag).toBe("ApprovalNotFound")
          expect((yield* failure(store.cancel("nope", at(1))))._tag).toBe("ApprovalNotFound")
        }))
    })

    describe("vote", () => {
      test("approves on the first approval when the quorum is 1, resolved at the vote's time", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          const approved = yield* store.vote(req.id, ballot("bob", "approve", 1_000, "looks fine"))
          const expected: Approval.ApprovalRequest = {
            ...req,
            status: "approved",
            resolvedAt: at(1_000),
            votes: [{ approver: "bob", verdict: "approve", note: "looks fine", at: at(1_000), counted: true }]
          }
          expect(approved).toEqual(expected)
          expect(yield* store.get(req.id)).toEqual(expected)
        }))

      test("stays pending until a second distinct approver reaches a quorum of 2", (store) =>
        Effect.gen(function*() {
          const req = request({ quorum: 2 })
          yield* store.create(req)
          const first = yield* store.vote(req.id, ballot("bob", "approve", 1_000))
          expect(first.status).toBe("pending")
          expect(first.resolvedAt).toBeNull()
          expect(first.votes).toEqual([{ approver: "bob", verdict: "approve", note: null, at: at(1_000), counted: true }])
          expect(yield* store.get(req.id)).toEqual(first)
          const second = yield* store.vote(req.id, ballot("carol", "approve", 2_000))
          expect(second.status).toBe("approved")
          expect(second.resolvedAt).toEqual(at(2_000))
          expect(Approval.countedApprovers(second)).toEqual(["bob", "carol"])
          expect(yield* store.get(req.id)).toEqual(second)
        }))

      test("rejects on a counted rejection, even after an approval", (store) =>
        Effect.gen(function*() {
          const req = request({ quorum: 2 })
          yield* store.create(req)
          yield* store.vote(req.id, ballot("bob", "approve", 1_000))
          const rejected = yield* store.vote(req.id, ballot("carol", "reject", 2_000, "too risky"))
          expect(rejected.status).toBe("rejected")
          expect(rejected.resolvedAt).toEqual(at(2_000))
          expect(rejected.votes[1]).toEqual({
            approver: "carol",
            verdict: "reject",
            note: "too risky",
            at: at(2_000),
            counted: true
          })
          expect(yield* store.get(req.id)).toEqual(rejected)
        }))

      test("refuses a second vote by the same approver with DuplicateVote and changes nothing", (store) =>
        Effect.gen(function*() {
          const req = request({ quorum: 2 })
          yield* store.create(req)
          const first = yield* store.vote(req.id, ballot("bob", "approve", 1_000))
          const error = yield* failure(store.vote(req.id, ballot("bob", "approve", 2_000)))
          expect(error._tag).toBe("DuplicateVote")
          expect(error).toMatchObject({ approvalId: req.id, principalId: "bob" })
          const stored = yield* store.get(req.id)
          expect(stored).toEqual(first)
          expect(stored.status).toBe("pending")
          expect(stored.votes.length).toBe(1)
        }))

      test("refuses the requester under separation of duties with SelfApprovalForbidden", (store) =>
        Effect.gen(function*() {
          const req = request({ requester: "alice" })
          yield* store.create(req)
          const error = yield* failure(store.vote(req.id, ballot("alice")))
          expect(error._tag).toBe("SelfApprovalForbidden")
          expect(error).toMatchObject({ approvalId: req.id, principalId: "alice" })
          expect(yield* store.get(req.id)).toEqual(req)
        }))

      test("lets the requester vote when separation of duties is off", (store) =>
        Effect.gen(function*() {
          const req = request({ requester: "alice", separationOfDuties: false })
          yield* store.create(req)
          const approved = yield* store.vote(req.id, ballot("alice"))
          expect(approved.status).toBe("approved")
          expect(approved.votes.map((v) => v.approver)).toEqual(["alice"])
          expect((yield* store.get(req.id)).status).toBe("approved")
        }))

      test("stops counting the votes of revoked approvers, keeping them on record", (store) =>
        Effect.gen(function*() {
          const req = request({ quorum: 2 })
          yield* store.create(req)
          yield* store.vote(req.id, ballot("a", "approve", 1_000))
          const afterB = yield* store.vote(req.id, ballot("b", "approve", 2_000), { revoked: ["a"] })
          expect(afterB.status).toBe("pending")
          expect(afterB.resolvedAt).toBeNull()
          expect(afterB.votes.map((v) => [v.approver, v.counted])).toEqual([["a", false], ["b", true]])
          expect(yield* store.get(req.id)).toEqual(afterB)
          // A revoked vote is still a vote: the same approver cannot vote again.
          expect((yield* failure(store.vote(req.id, ballot("a", "approve", 2_500))))._tag).toBe("DuplicateVote")
          const afterC = yield* store.vote(req.id, ballot("c", "approve", 3_000))
          expect(afterC.status).toBe("approved")
          expect(afterC.resolvedAt).toEqual(at(3_000))
          expect(afterC.votes.map((v) => [v.approver, v.counted])).toEqual([["a", false], ["b", true], ["c", true]])
          expect(yield* store.get(req.id)).toEqual(afterC)
        }))

      test("refuses a vote on a resolved approval with AlreadyResolved and its status", (store) =>
        Effect.gen(function*() {
          yield* resolvedApprovals(store)
          for (const status of ["approved", "rejected", "cancelled", "consumed"] as const) {
            const before = yield* store.get(status)
            const error = yield* failure(store.vote(status, ballot("carol", "approve", 180_000)))
            expect(error._tag).toBe("AlreadyResolved")
            expect(error).toMatchObject({ approvalId: status, status })
            expect(yield* store.get(status)).toEqual(before)
          }
        }))

      test("refuses a vote on an expired approval with ApprovalExpired", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          yield* store.expireDue(at(HOUR))
          const error = yield* failure(store.vote(req.id, ballot("bob", "approve", 2 * HOUR)))
          expect(error._tag).toBe("ApprovalExpired")
          expect(error).toMatchObject({ approvalId: req.id, expiresAt: at(HOUR) })
          expect((yield* store.get(req.id)).status).toBe("expired")
        }))
    })

    describe("expiry", () => {
      test("accepts a vote 1 ms before expiresAt", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          const approved = yield* store.vote(req.id, ballot("bob", "approve", HOUR - 1))
          expect(approved.status).toBe("approved")
          expect((yield* store.get(req.id)).resolvedAt).toEqual(at(HOUR - 1))
        }))

      test("refuses a vote at exactly expiresAt, and the approval stays pending until expireDue", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          const error = yield* failure(store.vote(req.id, ballot("bob", "approve", HOUR)))
          expect(error._tag).toBe("ApprovalExpired")
          expect(error).toMatchObject({ approvalId: req.id, expiresAt: at(HOUR) })
          expect(yield* store.get(req.id)).toEqual(req)
        }))

      test("expireDue expires nothing before expiresAt and the approval at expiresAt, once", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          expect(yield* store.expireDue(at(HOUR - 1))).toEqual([])
          expect(yield* store.get(req.id)).toEqual(req)
          const expired = yield* store.expireDue(at(HOUR))
          const expected: Approval.ApprovalRequest = { ...req, status: "expired", resolvedAt: at(HOUR) }
          expect(expired).toEqual([expected])
          expect(yield* store.get(req.id)).toEqual(expected)
          expect(yield* store.expireDue(at(2 * HOUR))).toEqual([])
          expect(yield* store.get(req.id)).toEqual(expected)
        }))

      test("expireDue leaves approved, rejected, cancelled and consumed approvals alone", (store) =>
        Effect.gen(function*() {
          yield* resolvedApprovals(store)
          yield* store.create(request({ id: "pending" }))
          const ids = ["approved", "rejected", "cancelled", "consumed"]
          const before = yield* Effect.forEach(ids, (id) => store.get(id))
          const expired = yield* store.expireDue(at(2 * HOUR))
          expect(expired.map((r) => r.id)).toEqual(["pending"])
          expect(yield* Effect.forEach(ids, (id) => store.get(id))).toEqual(before)
          expect((yield* store.get("pending")).status).toBe("expired")
        }))

      test("expireDue expires exactly the due approvals among several", (store) =>
        Effect.gen(function*() {
          yield* store.create(request({ id: "early", expiresAt: at(10_000) }))
          yield* store.create(request({ id: "exact", expiresAt: at(20_000) }))
          yield* store.create(request({ id: "late", expiresAt: at(20_001) }))
          const expired = yield* store.expireDue(at(20_000))
          expect(expired.map((r) => r.id).sort()).toEqual(["early", "exact"])
          for (const r of expired) expect(r.resolvedAt).toEqual(at(20_000))
          expect((yield* store.get("late")).status).toBe("pending")
          expect((yield* store.listPending()).map((r) => r.id)).toEqual(["late"])
        }))
    })

    describe("consume", () => {
      const approved = (store: ApprovalStore.Service, options: RequestOptions = {}) =>
        Effect.gen(function*() {
          const req = request(options)
          yield* store.create(req)
          return yield* store.vote(req.id, ballot("bob", "approve", 1_000))
        })

      test("consumes an approved approval for the matching action, once", (store) =>
        Effect.gen(function*() {
          const before = yield* approved(store)
          const consumed = yield* store.consume(before.id, before.actionHash, at(2_000))
          const expected: Approval.ApprovalRequest = { ...before, status: "consumed", consumedAt: at(2_000) }
          expect(consumed).toEqual(expected)
          expect(yield* store.get(before.id)).toEqual(expected)
          const error = yield* failure(store.consume(before.id, before.actionHash, at(3_000)))
          expect(error._tag).toBe("AlreadyConsumed")
          expect(error).toMatchObject({ approvalId: before.id, consumedAt: at(2_000) })
          expect(yield* store.get(before.id)).toEqual(expected)
        }))

      test("refuses another action with ActionMismatch and stays consumable by the right one", (store) =>
        Effect.gen(function*() {
          const before = yield* approved(store)
          const error = yield* failure(store.consume(before.id, "another-hash", at(2_000)))
          expect(error._tag).toBe("ActionMismatch")
          expect(error).toMatchObject({ approvalId: before.id, expected: before.actionHash, actual: "another-hash" })
          expect(yield* store.get(before.id)).toEqual(before)
          const consumed = yield* store.consume(before.id, before.actionHash, at(3_000))
          expect(consumed.status).toBe("consumed")
          expect(consumed.consumedAt).toEqual(at(3_000))
        }))

      test("refuses a pending approval with ApprovalPending", (store) =>
        Effect.gen(function*() {
          const req = request({ quorum: 2 })
          yield* store.create(req)
          yield* store.vote(req.id, ballot("bob"))
          const before = yield* store.get(req.id)
          const error = yield* failure(store.consume(req.id, req.actionHash, at(120_000)))
          expect(error._tag).toBe("ApprovalPending")
          expect(error).toMatchObject({ approvalId: req.id })
          expect(yield* store.get(req.id)).toEqual(before)
        }))

      test("refuses a rejected approval with ApprovalRejected naming the rejecter", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          const rejected = yield* store.vote(req.id, ballot("bob", "reject", 1_000, "no"))
          const error = yield* failure(store.consume(req.id, req.actionHash, at(2_000)))
          expect(error._tag).toBe("ApprovalRejected")
          expect(error).toMatchObject({ approvalId: req.id, rejectedBy: "bob", note: "no" })
          expect(yield* store.get(req.id)).toEqual(rejected)
        }))

      test("refuses an expired approval with ApprovalExpired", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          yield* store.expireDue(at(HOUR))
          const error = yield* failure(store.consume(req.id, req.actionHash, at(HOUR + 1)))
          expect(error._tag).toBe("ApprovalExpired")
          expect(error).toMatchObject({ approvalId: req.id, expiresAt: at(HOUR) })
        }))

      test("refuses a cancelled approval with AlreadyResolved", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          yield* store.cancel(req.id, at(1_000))
          const error = yield* failure(store.consume(req.id, req.actionHash, at(2_000)))
          expect(error._tag).toBe("AlreadyResolved")
          expect(error).toMatchObject({ approvalId: req.id, status: "cancelled" })
        }))

      test("refuses an approved approval at or after its expiry with ApprovalExpired", (store) =>
        Effect.gen(function*() {
          const before = yield* approved(store)
          const error = yield* failure(store.consume(before.id, before.actionHash, at(HOUR)))
          expect(error._tag).toBe("ApprovalExpired")
          expect(error).toMatchObject({ approvalId: before.id, expiresAt: at(HOUR) })
          // An expired approval is expired whatever action is presented.
          const mismatched = yield* failure(store.consume(before.id, "another-hash", at(HOUR + 1)))
          expect(mismatched._tag).toBe("ApprovalExpired")
          expect(yield* store.get(before.id)).toEqual(before)
          const consumed = yield* store.consume(before.id, before.actionHash, at(HOUR - 1))
          expect(consumed.status).toBe("consumed")
        }))
    })

    describe("cancel", () => {
      test("cancels a pending approval once", (store) =>
        Effect.gen(function*() {
          const req = request({ quorum: 2 })
          yield* store.create(req)
          const voted = yield* store.vote(req.id, ballot("bob"))
          const cancelled = yield* store.cancel(req.id, at(5_000))
          const expected: Approval.ApprovalRequest = { ...voted, status: "cancelled", resolvedAt: at(5_000) }
          expect(cancelled).toEqual(expected)
          expect(yield* store.get(req.id)).toEqual(expected)
          const error = yield* failure(store.cancel(req.id, at(6_000)))
          expect(error._tag).toBe("AlreadyResolved")
          expect(error).toMatchObject({ approvalId: req.id, status: "cancelled" })
          expect(yield* store.get(req.id)).toEqual(expected)
          expect(yield* store.listPending()).toEqual([])
        }))

      test("refuses to cancel an approved approval with AlreadyResolved", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          const approved = yield* store.vote(req.id, ballot("bob"))
          const error = yield* failure(store.cancel(req.id, at(5_000)))
          expect(error._tag).toBe("AlreadyResolved")
          expect(error).toMatchObject({ approvalId: req.id, status: "approved" })
          expect(yield* store.get(req.id)).toEqual(approved)
        }))

      test("refuses to cancel an expired approval with ApprovalExpired", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          const [expired] = yield* store.expireDue(at(HOUR))
          expect(expired?.status).toBe("expired")
          const error = yield* failure(store.cancel(req.id, at(HOUR + 1)))
          expect(error._tag).toBe("ApprovalExpired")
          expect(yield* store.get(req.id)).toEqual(expired)
        }))
    })

    describe("listPending", () => {
      const seed = (store: ApprovalStore.Service) =>
        Effect.gen(function*() {
          const make = (id: string, minute: number, options: RequestOptions) =>
            store.create(request({ id, createdAt: at(minute * 60_000), ...options }))
          yield* make("r1", 1, { requester: "alice", kind: "approval", tenant: "acme" })
          yield* make("r2", 2, { requester: "bob", kind: "acknowledgment", tenant: "globex" })
          yield* make("r3", 3, { requester: "alice", kind: "approval", tenant: "globex" })
          yield* make("r4", 4, { requester: "alice", kind: "approval", tenant: "acme" })
          yield* make("r5", 5, { requester: "carol", kind: "acknowledgment", tenant: "acme" })
          yield* make("r6", 6, { requester: "carol", kind: "approval", tenant: null })
          yield* store.vote("r4", ballot("bob", "approve", 10 * 60_000))
          yield* store.cancel("r5", at(10 * 60_000))
        })
      const ids = (rs: ReadonlyArray<Approval.ApprovalRequest>) => rs.map((r) => r.id)

      test("lists only pending approvals, oldest first, as stored", (store) =>
        Effect.gen(function*() {
          yield* seed(store)
          const pending = yield* store.listPending()
          expect(ids(pending)).toEqual(["r1", "r2", "r3", "r6"])
          for (const r of pending) expect(r).toEqual(yield* store.get(r.id))
          expect(ids(yield* store.listPending({}))).toEqual(["r1", "r2", "r3", "r6"])
        }))

      test("list: every status or one, oldest first, with the same filters", (store) =>
        Effect.gen(function*() {
          yield* seed(store)
          expect(ids(yield* store.list())).toEqual(["r1", "r2", "r3", "r4", "r5", "r6"])
          expect(ids(yield* store.list({ status: "pending" }))).toEqual(ids(yield* store.listPending()))
          expect(ids(yield* store.list({ status: "approved" }))).toEqual(["r4"])
          expect(ids(yield* store.list({ status: "cancelled", tenant: "acme" }))).toEqual(["r5"])
          expect(ids(yield* store.list({ status: "cancelled", tenant: "globex" }))).toEqual([])
          expect(ids(yield* store.list({ requester: "alice", limit: 2 }))).toEqual(["r1", "r3"])
          expect(ids(yield* store.list({ status: "expired" }))).toEqual([])
          for (const r of yield* store.list()) expect(r).toEqual(yield* store.get(r.id))
        }))

      test("filters by kind, requester and tenant, and limits after filtering", (store) =>
        Effect.gen(function*() {
          yield* seed(store)
          expect(ids(yield* store.listPending({ kind: "acknowledgment" }))).toEqual(["r2"])
          expect(ids(yield* store.listPending({ kind: "approval" }))).toEqual(["r1", "r3", "r6"])
          expect(ids(yield* store.listPending({ requester: "alice" }))).toEqual(["r1", "r3"])
          expect(ids(yield* store.listPending({ requester: "dave" }))).toEqual([])
          expect(ids(yield* store.listPending({ tenant: "globex" }))).toEqual(["r2", "r3"])
          expect(ids(yield* store.listPending({ tenant: "acme" }))).toEqual(["r1"])
          expect(ids(yield* store.listPending({ kind: "approval", tenant: "globex" }))).toEqual(["r3"])
          expect(ids(yield* store.listPending({ limit: 2 }))).toEqual(["r1", "r2"])
          expect(ids(yield* store.listPending({ limit: 10 }))).toEqual(["r1", "r2", "r3", "r6"])
          expect(ids(yield* store.listPending({ tenant: "globex", limit: 1 }))).toEqual(["r2"])
          expect(ids(yield* store.listPending({ kind: "approval", requester: "carol", limit: 1 }))).toEqual(["r6"])
          expect(ids(yield* store.listPending({ kind: "approval", requester: "alice", tenant: "globex" }))).toEqual([
            "r3"
          ])
        }))

      test("visibleTo: a tenant's approvals and those of no tenant, filtered before the limit", (store) =>
        Effect.gen(function*() {
          yield* seed(store)
          expect(ids(yield* store.list({ visibleTo: { tenant: "acme" } }))).toEqual(["r1", "r4", "r5", "r6"])
          expect(ids(yield* store.list({ visibleTo: { tenant: "globex" } }))).toEqual(["r2", "r3", "r6"])
          expect(ids(yield* store.list({ visibleTo: { tenant: "initech" } }))).toEqual(["r6"])
          // A principal without a tenant sees only the approvals of no tenant.
          expect(ids(yield* store.list({ visibleTo: {} }))).toEqual(["r6"])
          expect(ids(yield* store.list({ visibleTo: { tenant: undefined } }))).toEqual(["r6"])
          // The principal itself fits: what an API passes for the caller.
          const principal: Action.Principal = {
            id: "dave",
            kind: "human",
            roles: ["approver"],
            tenant: "globex",
            attributes: {}
          }
          expect(ids(yield* store.list({ visibleTo: principal }))).toEqual(["r2", "r3", "r6"])
          // With the other filters, and the limit counting visible approvals only.
          expect(ids(yield* store.list({ visibleTo: { tenant: "globex" }, limit: 2 }))).toEqual(["r2", "r3"])
          expect(ids(yield* store.list({ visibleTo: { tenant: "acme" }, limit: 3 }))).toEqual(["r1", "r4", "r5"])
          expect(ids(yield* store.list({ status: "pending", visibleTo: { tenant: "acme" } }))).toEqual(["r1", "r6"])
          expect(ids(yield* store.list({ status: "cancelled", visibleTo: { tenant: "acme" } }))).toEqual(["r5"])
          expect(ids(yield* store.list({ status: "cancelled", visibleTo: { tenant: "globex" } }))).toEqual([])
          expect(ids(yield* store.list({ kind: "approval", visibleTo: { tenant: "acme" }, limit: 2 }))).toEqual([
            "r1",
            "r4"
          ])
          expect(ids(yield* store.list({ status: "pending", kind: "approval", visibleTo: {}, limit: 5 }))).toEqual([
            "r6"
          ])
          expect(ids(yield* store.listPending({ visibleTo: { tenant: "globex" }, limit: 2 }))).toEqual(["r2", "r3"])
          expect(ids(yield* store.listPending({ requester: "carol", visibleTo: { tenant: "acme" } }))).toEqual(["r6"])
          // With `tenant` both apply.
          expect(ids(yield* store.list({ tenant: "acme", visibleTo: { tenant: "globex" } }))).toEqual([])
          expect(ids(yield* store.list({ tenant: "acme", visibleTo: { tenant: "acme" }, limit: 1 }))).toEqual(["r1"])
          expect(ids(yield* store.list({ visibleTo: { tenant: "acme" }, limit: 0 }))).toEqual([])
        }))
    })

    describe("decisions and overrides", () => {
      const action = Action.make({
        actor: { id: "agent-1", kind: "agent", roles: ["operator"], tenant: "acme" },
        kind: "tool",
        name: "payments.transfer",
        resource: { type: "account", id: "acct-9" },
        payload: { amount: 12_000 },
        metadata: { region: "eu-west" },
        trace: { traceId: "t".repeat(32), spanId: "s".repeat(16) }
      })
      const policySet = PolicySet.unsafeMake({
        id: "payments",
        version: "1.0.0",
        policy: Policy.all([
          Policy.make("large-payments", () =>
            Decision.requireApproval(
              { code: "payment.large", message: "Payments over 10k need two approvers", evidenceRefs: ["ticket:1"] },
              { quorum: 2, roles: ["finance-approver"], timeout: "1 hour" }
            )),
          Policy.make("cost", () => Decision.warn({ code: "cost.high", message: "expensive" }))
        ]),
        overridePolicy: { authority: { roles: ["ciso"], principals: [] } }
      })

      test("saves a decision record and reads it back; an unknown id is None", (store) =>
        Effect.gen(function*() {
          yield* TestClock.setTime(epochMillis)
          const record = yield* PolicySet.evaluate(policySet, action)
          const other = yield* PolicySet.evaluate(policySet, Action.make({ ...action, payload: { amount: 1 } }))
          expect(record.decisionId).not.toBe(other.decisionId)
          yield* store.saveDecision(record)
          yield* store.saveDecision(other)
          expect(Option.getOrUndefined(yield* store.getDecision(record.decisionId))).toEqual(record)
          expect(Option.getOrUndefined(yield* store.getDecision(other.decisionId))).toEqual(other)
          expect(Option.isNone(yield* store.getDecision("dec_unknown"))).toBe(true)
        }).pipe(Effect.provide(IdGenerator.layerSequential)))

      const override = (fields: Partial<Override.Override> = {}): Override.Override => ({
        id: "ovr_1",
        overrides: "dec_1",
        policyId: "payments",
        grantedBy: "ciso-1",
        reason: "Quarter-end payroll run",
        scope: {
          kind: "tool",
          name: "payments.transfer",
          resource: { type: "account", id: "acct-9" },
          tenant: "acme"
        },
        coverage: "actor",
        actor: "agent-1",
        compensatingControls: ["monitoring"],
        grantedAt: at(0),
        expiresAt: at(HOUR),
        ...fields
      })
      const as = (actor: string) => Action.make({ ...action, actor: { ...action.actor, id: actor } })
      const denied = Decision.deny({ code: "payment.limit", message: "over the limit" })
      const needsApproval = Decision.requireApproval(
        { code: "payment.large", message: "needs approval" },
        { roles: ["finance"] }
      )
      const found = (
        store: ApprovalStore.Service,
        a: Action.Action,
        millis: number,
        decision: Decision.Decision = denied
      ) => Effect.map(store.findOverride(a, decision, at(millis)), Option.getOrUndefined)

      test("finds nothing when no override was saved", (store) =>
        Effect.gen(function*() {
          expect(yield* found(store, action, 1_000)).toBeUndefined()
        }))

      test("an actor override covers only its actor, within its scope", (store) =>
        Effect.gen(function*() {
          const o = override({ coverage: "actor" })
          yield* store.saveOverride(o)
          expect(yield* found(store, action, 1_000)).toEqual(o)
          expect(yield* found(store, as("agent-2"), 1_000)).toBeUndefined()
          const elsewhere = Action.make({ ...action, resource: { type: "account", id: "acct-10" } })
          expect(yield* found(store, elsewhere, 1_000)).toBeUndefined()
          expect(yield* found(store, Action.make({ ...action, name: "payments.refund" }), 1_000)).toBeUndefined()
          const otherTenant = Action.make({ ...action, actor: { ...action.actor, tenant: "globex" } })
          expect(yield* found(store, otherTenant, 1_000)).toBeUndefined()
        }))

      test("a scope override covers every actor within its scope", (store) =>
        Effect.gen(function*() {
          const o = override({ coverage: "scope" })
          yield* store.saveOverride(o)
          expect(yield* found(store, action, 1_000)).toEqual(o)
          expect(yield* found(store, as("agent-2"), 1_000)).toEqual(o)
          const elsewhere = Action.make({ ...action, resource: { type: "account", id: "acct-10" } })
          expect(yield* found(store, elsewhere, 1_000)).toBeUndefined()
        }))

      test("an override lapses at its expiresAt", (store) =>
        Effect.gen(function*() {
          const o = override()
          yield* store.saveOverride(o)
          expect(yield* found(store, action, HOUR - 1)).toEqual(o)
          expect(yield* found(store, action, HOUR)).toBeUndefined()
          expect(yield* found(store, action, HOUR + 1)).toBeUndefined()
        }))

      test("the most recent covering override wins, and an expired one does not shadow an older one", (store) =>
        Effect.gen(function*() {
          const older = override({ id: "ovr_1", grantedAt: at(0), expiresAt: at(2 * HOUR) })
          const newer = override({ id: "ovr_2", grantedAt: at(60_000), expiresAt: at(HOUR), coverage: "scope" })
          yield* store.saveOverride(older)
          yield* store.saveOverride(newer)
          expect(yield* found(store, action, 120_000)).toEqual(newer)
          expect(yield* found(store, action, HOUR)).toEqual(older)
          expect(yield* found(store, as("agent-2"), 120_000)).toEqual(newer)
          expect(yield* found(store, as("agent-2"), HOUR)).toBeUndefined()
        }))

      test("only an override granted with waivesApproval answers an approval requirement; it round-trips", (store) =>
        Effect.gen(function*() {
          const plain = override({ id: "ovr_1" })
          yield* store.saveOverride(plain)
          expect(yield* found(store, action, 1_000, needsApproval)).toBeUndefined()
          expect(yield* found(store, action, 1_000, denied)).toEqual(plain)
          const waiver = override({ id: "ovr_2", grantedAt: at(500), waivesApproval: true })
          const newerPlain = override({ id: "ovr_3", grantedAt: at(600) })
          yield* store.saveOverride(waiver)
          yield* store.saveOverride(newerPlain)
          // The newer plain override does not shadow the waiver for an approval requirement.
          expect(yield* found(store, action, 1_000, needsApproval)).toEqual(waiver)
          expect(yield* found(store, action, 1_000, denied)).toEqual(newerPlain)
          expect(yield* found(store, action, 1_000, Decision.allow())).toBeUndefined()
        }))
    })

    describe("concurrency", () => {
      test("of N concurrent distinct approvers, exactly the quorum's worth succeed", (store) =>
        Effect.gen(function*() {
          const cases: ReadonlyArray<readonly [n: number, quorum: number]> = [[1, 1], [8, 1], [8, 3], [5, 5], [2, 3]]
          for (const [n, quorum] of cases) {
            const req = request({ id: `apr_${n}_${quorum}`, quorum })
            yield* store.create(req)
            const approvers = Array.from({ length: n }, (_, i) => `approver-${i}`)
            const results = yield* Effect.all(
              approvers.map((a, i) => Effect.either(store.vote(req.id, ballot(a, "approve", 1_000 + i)))),
              { concurrency: "unbounded" }
            )
            const wins = results.filter(Either.isRight).map((r) => r.right)
            const losses = results.filter(Either.isLeft).map((r) => r.left)
            expect(wins.length).toBe(Math.min(n, quorum))
            for (const error of losses) {
              expect(error._tag).toBe("AlreadyResolved")
              expect(error).toMatchObject({ approvalId: req.id, status: "approved" })
            }
            const stored = yield* store.get(req.id)
            expect(stored.status).toBe(n >= quorum ? "approved" : "pending")
            expect(stored.votes.length).toBe(Math.min(n, quorum))
            expect(stored.votes.every((v) => v.counted)).toBe(true)
            expect([...Approval.countedApprovers(stored)].sort()).toEqual(
              wins.map((w) => w.votes[w.votes.length - 1]!.approver).sort()
            )
            // Exactly one winner saw the approval resolve, and it is what was stored.
            const resolving = wins.filter((w) => w.status === "approved")
            expect(resolving.length).toBe(n >= quorum ? 1 : 0)
            if (n >= quorum) expect(resolving[0]).toEqual(stored)
          }
        }))

      test("of two concurrent consumes, exactly one succeeds; the other gets AlreadyConsumed", (store) =>
        Effect.gen(function*() {
          const req = request()
          yield* store.create(req)
          yield* store.vote(req.id, ballot("bob"))
          const results = yield* Effect.all(
            [2_000, 3_000].map((millis) => Effect.either(store.consume(req.id, req.actionHash, at(millis)))),
            { concurrency: "unbounded" }
          )
          const wins = results.filter(Either.isRight).map((r) => r.right)
          const losses = results.filter(Either.isLeft).map((r) => r.left)
          expect(wins.length).toBe(1)
          expect(losses.length).toBe(1)
          expect(losses[0]?._tag).toBe("AlreadyConsumed")
          expect(losses[0]).toMatchObject({ consumedAt: wins[0]!.consumedAt })
          expect(yield* store.get(req.id)).toEqual(wins[0])
        }))

      test("of a concurrent cancel and approval on a quorum of 1, exactly one wins", (store) =>
        Effect.gen(function*() {
          for (const cancelFirst of [true, false]) {
            const req = request({ id: `apr_${cancelFirst}` })
            yield* store.create(req)
            const cancel = Effect.either(store.cancel(req.id, at(1_000)))
            const approve = Effect.either(store.vote(req.id, ballot("bob", "approve", 1_000)))
            const [cancelled, approved] = cancelFirst
              ? yield* Effect.all([cancel, approve], { concurrency: "unbounded" })
              : yield* Effect.all([approve, cancel], { concurrency: "unbounded" }).pipe(
                Effect.map(([a, c]) => [c, a] as const)
              )
            expect(Either.isRight(cancelled) !== Either.isRight(approved)).toBe(true)
            const stored = yield* store.get(req.id)
            if (Either.isRight(cancelled)) {
              expect(stored).toEqual(cancelled.right)
              expect(stored.status).toBe("cancelled")
              expect(Either.isLeft(approved) && approved.left).toMatchObject({
                _tag: "AlreadyResolved",
                status: "cancelled"
              })
            } else {
              expect(stored).toEqual(Either.getOrThrow(approved))
              expect(stored.status).toBe("approved")
              expect(cancelled.left).toMatchObject({ _tag: "AlreadyResolved", status: "approved" })
            }
          }
        }))
    })

    describe("pending limits", () => {
      const ids = (rs: ReadonlyArray<Approval.ApprovalRequest>) => rs.map((r) => r.id)

      test("refuses a create past the requester's cap, stores nothing, and leaves other requesters alone", (store) =>
        Effect.gen(function*() {
          const limits = { perRequester: 3 }
          for (const i of [1, 2, 3]) yield* store.create(request({ id: `a${i}`, requester: "alice" }), limits)
          const error = yield* failure(store.create(request({ id: "a4", requester: "alice" }), limits))
          expect(error).toBeInstanceOf(Approval.TooManyPending)
          expect(error).toMatchObject({ scope: "requester", key: "alice", limit: 3, decisionId: "dec_a4" })
          expect((yield* failure(store.get("a4")))._tag).toBe("ApprovalNotFound")
          // Another requester of the same tenant still opens, up to its own cap.
          yield* store.create(request({ id: "b1", requester: "bob" }), limits)
          expect(ids(yield* store.listPending())).toEqual(["a1", "a2", "a3", "b1"])
          // Without limits, nothing is counted.
          yield* store.create(request({ id: "a5", requester: "alice" }))
          expect(ids(yield* store.listPending({ requester: "alice" }))).toEqual(["a1", "a2", "a3", "a5"])
        }))

      test("the tenant cap counts every requester of the tenant; approvals without a tenant are one tenant", (store) =>
        Effect.gen(function*() {
          const limits = { perRequester: 10, perTenant: 3 }
          yield* store.create(request({ id: "t1", requester: "alice", tenant: "acme" }), limits)
          yield* store.create(request({ id: "t2", requester: "bob", tenant: "acme" }), limits)
          yield* store.create(request({ id: "t3", requester: "carol", tenant: "acme" }), limits)
          const error = yield* failure(store.create(request({ id: "t4", requester: "dave", tenant: "acme" }), limits))
          expect(error).toMatchObject({ _tag: "TooManyPending", scope: "tenant", key: "acme", limit: 3 })
          yield* store.create(request({ id: "g1", requester: "dave", tenant: "globex" }), limits)
          for (const i of [1, 2, 3]) yield* store.create(request({ id: `n${i}`, tenant: null }), limits)
          const none = yield* failure(store.create(request({ id: "n4", requester: "erin", tenant: null }), limits))
          expect(none).toMatchObject({ _tag: "TooManyPending", scope: "tenant", key: null, limit: 3 })
          expect(ids(yield* store.listPending({ tenant: "acme" }))).toEqual(["t1", "t2", "t3"])
        }))

      test("the requester's cap is checked first, and each cap applies alone when the other is absent", (store) =>
        Effect.gen(function*() {
          yield* store.create(request({ id: "a1" }), { perRequester: 1, perTenant: 1 })
          const both = yield* failure(store.create(request({ id: "a2" }), { perRequester: 1, perTenant: 1 }))
          expect(both).toMatchObject({ scope: "requester", limit: 1 })
          const tenantOnly = yield* failure(store.create(request({ id: "a3", requester: "bob" }), { perTenant: 1 }))
          expect(tenantOnly).toMatchObject({ scope: "tenant", key: "acme", limit: 1 })
          yield* store.create(request({ id: "a4" }), { perRequester: 2 })
        }))

      test("only pending approvals count: approved, rejected, cancelled, consumed and expired ones do not", (store) =>
        Effect.gen(function*() {
          yield* resolvedApprovals(store)
          yield* store.create(request({ id: "expired", expiresAt: at(10_000) }))
          expect(ids(yield* store.expireDue(at(10_000)))).toEqual(["expired"])
          const limits = { perRequester: 1, perTenant: 1 }
          yield* store.create(request({ id: "fresh", createdAt: at(20_000) }), limits)
          const error = yield* failure(store.create(request({ id: "more", createdAt: at(20_000) }), limits))
          expect(error).toMatchObject({ _tag: "TooManyPending", scope: "requester", key: "alice" })
        }))

      test("a slot frees as soon as a pending approval is resolved, cancelled or expires", (store) =>
        Effect.gen(function*() {
          const limits = { perRequester: 2 }
          const open = (id: string, expiresAt = at(HOUR)) => store.create(request({ id, expiresAt }), limits)
          yield* open("p1")
          yield* open("p2", at(30_000))
          expect((yield* failure(open("p3")))._tag).toBe("TooManyPending")
          yield* store.vote("p1", ballot("bob"))
          yield* open("p3")
          expect((yield* failure(open("p4")))._tag).toBe("TooManyPending")
          yield* store.cancel("p3", at(2_000))
          yield* open("p4")
          expect((yield* failure(open("p5")))._tag).toBe("TooManyPending")
          yield* store.vote("p4", ballot("bob", "reject"))
          yield* open("p5")
          expect((yield* failure(open("p6")))._tag).toBe("TooManyPending")
          yield* store.expireDue(at(30_000))
          yield* open("p6")
          expect(ids(yield* store.listPending())).toEqual(["p5", "p6"])
        }))

      test("of N concurrent creates for one requester (one tenant), exactly the cap's worth succeed", (store) =>
        Effect.gen(function*() {
          const cases: ReadonlyArray<{
            readonly prefix: string
            readonly cap: number
            readonly limits: ApprovalStore.PendingLimits
            readonly requester: (i: number) => string
            readonly tenant: string
          }> = [
            { prefix: "r", cap: 5, limits: { perRequester: 5 }, requester: () => "alice", tenant: "acme" },
            { prefix: "t", cap: 7, limits: { perTenant: 7 }, requester: (i) => `agent-${i}`, tenant: "globex" }
          ]
          for (const { cap, limits, prefix, requester, tenant } of cases) {
            const results = yield* Effect.all(
              Array.from({ length: 24 }, (_, i) =>
                Effect.either(store.create(request({ id: `${prefix}${i}`, requester: requester(i), tenant }), limits))),
              { concurrency: "unbounded" }
            )
            expect(results.filter(Either.isRight).length).toBe(cap)
            for (const result of results.filter(Either.isLeft)) expect(result.left._tag).toBe("TooManyPending")
            expect((yield* store.listPending({ tenant })).length).toBe(cap)
          }
        }))
    })

    describe("model", () => {
      it.effect.prop(
        "agrees with a reference model on random command sequences",
        [commands],
        ([cmds]) =>
          Effect.flatMap(ApprovalStore.ApprovalStore, (store) => interpret(store, cmds)).pipe(Effect.provide(layer)),
        {
          ...(timeout === undefined ? {} : { timeout }),
          fastCheck: { numRuns: options?.numRuns ?? 100, seed: options?.seed ?? 20260101 }
        }
      )
    })
  })
}

// -----------------------------------------------------------------------------
// reference model
// -----------------------------------------------------------------------------

// The model re-states the rules of `Approval`'s JSDoc on its own terms
// (numbers for time, immutable records) instead of calling `Approval.vote`
// and friends, so that it is an independent oracle for every store.

interface ModelVote {
  readonly approver: string
  readonly verdict: Approval.Verdict
  readonly note: string | null
  readonly at: number
  readonly counted: boolean
}

interface ModelApproval {
  readonly id: string
  readonly requester: string
  readonly tenant: string | null
  readonly quorum: number
  readonly separationOfDuties: boolean
  readonly expiresAt: number
  readonly createdAt: number
  readonly actionHash: string
  readonly status: Approval.Status
  readonly votes: ReadonlyArray<ModelVote>
  readonly resolvedAt: number | null
  readonly consumedAt: number | null
}

/** `"Success"` or the `_tag` of the expected error, and the approval afterwards. */
interface Outcome {
  readonly tag: string
  readonly next: ModelApproval | undefined
}

const refuse = (tag: string, self: ModelApproval | undefined): Outcome => ({ tag, next: self })

/** A resolved approval refuses transitions; an expired one says so. */
const notPendingTag = (self: ModelApproval): string =>
  self.status === "expired" ? "ApprovalExpired" : "AlreadyResolved"

const modelVote = (
  self: ModelApproval | undefined,
  input: { readonly approver: string; readonly verdict: Approval.Verdict; readonly note: string | null },
  now: number,
  revoked: ReadonlyArray<string>
): Outcome => {
  if (self === undefined) return refuse("ApprovalNotFound", self)
  if (self.status !== "pending") return refuse(notPendingTag(self), self)
  // The expiry instant itself is too late.
  if (now >= self.expiresAt) return refuse("ApprovalExpired", self)
  if (self.separationOfDuties && input.approver === self.requester) return refuse("SelfApprovalForbidden", self)
  if (self.votes.some((v) => v.approver === input.approver)) return refuse("DuplicateVote", self)
  const votes: Array<ModelVote> = self.votes.map((v) => revoked.includes(v.approver) ? { ...v, counted: false } : v)
  votes.push({ ...input, at: now, counted: true })
  const counted = votes.filter((v) => v.counted)
  const status: Approval.Status = counted.some((v) => v.verdict === "reject")
    ? "rejected"
    : counted.length >= self.quorum
    ? "approved"
    : "pending"
  return { tag: "Success", next: { ...self, votes, status, resolvedAt: status === "pending" ? null : now } }
}

const modelConsume = (self: ModelApproval | undefined, actionHash: string, now: number): Outcome => {
  if (self === undefined) return refuse("ApprovalNotFound", self)
  switch (self.status) {
    case "consumed":
      return refuse("AlreadyConsumed", self)
    case "rejected":
      return refuse("ApprovalRejected", self)
    case "expired":
      return refuse("ApprovalExpired", self)
    case "cancelled":
      return refuse("AlreadyResolved", self)
    case "pending":
      return refuse(now >= self.expiresAt ? "ApprovalExpired" : "ApprovalPending", self)
    case "approved":
      if (now >= self.expiresAt) return refuse("ApprovalExpired", self)
      if (actionHash !== self.actionHash) return refuse("ActionMismatch", self)
      return { tag: "Success", next: { ...self, status: "consumed", consumedAt: now } }
  }
}

const modelCancel = (self: ModelApproval | undefined, now: number): Outcome => {
  if (self === undefined) return refuse("ApprovalNotFound", self)
  if (self.status !== "pending") return refuse(notPendingTag(self), self)
  return { tag: "Success", next: { ...self, status: "cancelled", resolvedAt: now } }
}

// -----------------------------------------------------------------------------
// commands
// -----------------------------------------------------------------------------

const approvers = ["alice", "bob", "carol", "dave"] as const

/** An index into the approvals created so far (modulo their count); -1 is an unknown id. */
const target = fc.integer({ min: -1, max: 31 })

type Command =
  | {
    readonly _tag: "Create"
    readonly kind: Approval.Kind
    readonly requester: string
    readonly tenant: string | null
    /** Caps on pending approvals: the store refuses exactly when the model counts that many pending. */
    readonly limits: ApprovalStore.PendingLimits | undefined
    readonly quorum: number
    readonly separationOfDuties: boolean
    readonly ttl: number
    /** Re-use the id of an existing approval: the store must refuse it. */
    readonly duplicateOf: number | null
  }
  | {
    readonly _tag: "Vote"
    readonly target: number
    readonly approver: string
    readonly verdict: Approval.Verdict
    readonly revoked: ReadonlyArray<string> | undefined
  }
  | { readonly _tag: "Consume"; readonly target: number; readonly matching: boolean }
  | { readonly _tag: "Cancel"; readonly target: number }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "AdvanceToExpiry"; readonly target: number; readonly offset: -1 | 0 | 1 }
  | { readonly _tag: "ExpireDue" }
  | {
    readonly _tag: "VoteBatch"
    readonly target: number
    readonly votes: ReadonlyArray<{ readonly approver: string; readonly verdict: Approval.Verdict }>
  }

const verdict = fc.constantFrom<Approval.Verdict>("approve", "approve", "reject")

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      _tag: fc.constant("Create" as const),
      kind: fc.constantFrom<Approval.Kind>("approval", "acknowledgment"),
      requester: fc.constantFrom("alice", "bob"),
      tenant: fc.constantFrom("acme", "acme", "globex", null),
      limits: fc.option(
        fc.record(
          { perRequester: fc.integer({ min: 1, max: 4 }), perTenant: fc.integer({ min: 1, max: 6 }) },
          { requiredKeys: [] }
        ),
        { nil: undefined, freq: 2 }
      ),
      quorum: fc.integer({ min: 1, max: 3 }),
      separationOfDuties: fc.boolean(),
      ttl: fc.integer({ min: 1, max: 3_000 }),
      duplicateOf: fc.option(fc.nat({ max: 31 }), { nil: null, freq: 8 })
    })
  },
  {
    weight: 6,
    arbitrary: fc.record({
      _tag: fc.constant("Vote" as const),
      target,
      approver: fc.constantFrom(...approvers),
      verdict,
      revoked: fc.option(fc.subarray([...approvers], { minLength: 1 }), { nil: undefined, freq: 3 })
    })
  },
  {
    weight: 2,
    arbitrary: fc.record({ _tag: fc.constant("Consume" as const), target, matching: fc.boolean() })
  },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Cancel" as const), target }) },
  {
    weight: 2,
    arbitrary: fc.record({ _tag: fc.constant("Advance" as const), millis: fc.integer({ min: 1, max: 2_000 }) })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      _tag: fc.constant("AdvanceToExpiry" as const),
      target,
      offset: fc.constantFrom<-1 | 0 | 1>(-1, 0, 1)
    })
  },
  { weight: 1, arbitrary: fc.constant({ _tag: "ExpireDue" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      _tag: fc.constant("VoteBatch" as const),
      target,
      votes: fc.array(fc.record({ approver: fc.constantFrom(...approvers), verdict }), { minLength: 2, maxLength: 4 })
    })
  }
)

const commands = fc.array(command, { minLength: 1, maxLength: 40 })

const permutations = <A>(items: ReadonlyArray<A>): Array<Array<A>> =>
  items.length <= 1
    ? [[...items]]
    : items.flatMap((item, i) =>
      permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest])
    )

/** What the model tracks of a stored approval, with time as numbers. */
const project = (r: Approval.ApprovalRequest) => ({
  status: r.status,
  votes: r.votes.map((v) => ({
    approver: v.approver,
    verdict: v.verdict,
    note: v.note,
    at: v.at.getTime(),
    counted: v.counted
  })),
  resolvedAt: r.resolvedAt?.getTime() ?? null,
  consumedAt: r.consumedAt?.getTime() ?? null
})

const projectModel = (m: ModelApproval) => ({
  status: m.status,
  votes: m.votes,
  resolvedAt: m.resolvedAt,
  consumedAt: m.consumedAt
})

const tagOf = <A, E extends { readonly _tag: string }>(result: Either.Either<A, E>): string =>
  Either.isRight(result) ? "Success" : result.left._tag

const noteFor = (v: Approval.Verdict): string | null => v === "reject" ? "no" : null

/** Runs `cmds` against the store and the model, comparing them after every command. */
const interpret = (store: ApprovalStore.Service, cmds: ReadonlyArray<Command>) =>
  Effect.gen(function*() {
    let now = epochMillis
    const model = new Map<string, ModelApproval>()
    let created = 0

    const resolve = (index: number): string => {
      const ids = [...model.keys()]
      return index < 0 || ids.length === 0 ? "missing" : ids[index % ids.length]!
    }
    const describeStep = (i: number) => `after command ${i} ${JSON.stringify(cmds[i])}`

    /** Compares a store's answer with the model's for one approval. */
    const check = <E extends { readonly _tag: string }>(
      step: string,
      result: Either.Either<Approval.ApprovalRequest, E>,
      expected: Outcome
    ) => {
      expect(tagOf(result), step).toBe(expected.tag)
      if (Either.isRight(result) && expected.next !== undefined) {
        expect(project(result.right), step).toEqual(projectModel(expected.next))
      }
    }

    for (let i = 0; i < cmds.length; i++) {
      const cmd = cmds[i]!
      const step = describeStep(i)
      switch (cmd._tag) {
        case "Create": {
          if (cmd.duplicateOf !== null && model.size > 0) {
            const id = resolve(cmd.duplicateOf)
            const result = yield* Effect.either(store.create(request({ id, requester: "mallory", quorum: 3 })))
            expect(tagOf(result), step).toBe("StoreError")
            break
          }
          const id = `m${++created}`
          const expiresAt = now + cmd.ttl
          const result = yield* Effect.either(store.create(
            request({
              id,
              kind: cmd.kind,
              requester: cmd.requester,
              tenant: cmd.tenant,
              quorum: cmd.quorum,
              separationOfDuties: cmd.separationOfDuties,
              createdAt: new Date(now),
              expiresAt: new Date(expiresAt)
            }),
            cmd.limits
          ))
          const pending = (matches: (m: ModelApproval) => boolean) =>
            Array.from(model.values()).filter((m) => m.status === "pending" && matches(m)).length
          const perRequester = cmd.limits?.perRequester
          const perTenant = cmd.limits?.perTenant
          const refusal = perRequester !== undefined && pending((m) => m.requester === cmd.requester) >= perRequester
            ? { scope: "requester", key: cmd.requester, limit: perRequester }
            : perTenant !== undefined && pending((m) => m.tenant === cmd.tenant) >= perTenant
            ? { scope: "tenant", key: cmd.tenant, limit: perTenant }
            : undefined
          if (refusal !== undefined) {
            expect(Either.isLeft(result) ? result.left : "created", step).toMatchObject({
              _tag: "TooManyPending",
              ...refusal
            })
            break
          }
          expect(tagOf(result), step).toBe("Success")
          model.set(id, {
            id,
            requester: cmd.requester,
            tenant: cmd.tenant,
            quorum: cmd.quorum,
            separationOfDuties: cmd.separationOfDuties,
            expiresAt,
            createdAt: now,
            actionHash: `hash_${id}`,
            status: "pending",
            votes: [],
            resolvedAt: null,
            consumedAt: null
          })
          break
        }
        case "Vote": {
          const id = resolve(cmd.target)
          const input = { approver: cmd.approver, verdict: cmd.verdict, note: noteFor(cmd.verdict) }
          const result = yield* Effect.either(
            store.vote(id, { ...input, at: new Date(now) }, cmd.revoked === undefined ? undefined : { revoked: cmd.revoked })
          )
          const expected = modelVote(model.get(id), input, now, cmd.revoked ?? [])
          check(step, result, expected)
          if (expected.next !== undefined) model.set(id, expected.next)
          break
        }
        case "Consume": {
          const id = resolve(cmd.target)
          const hash = cmd.matching ? `hash_${id}` : "hash_other"
          const result = yield* Effect.either(store.consume(id, hash, new Date(now)))
          const expected = modelConsume(model.get(id), hash, now)
          check(step, result, expected)
          if (expected.next !== undefined) model.set(id, expected.next)
          break
        }
        case "Cancel": {
          const id = resolve(cmd.target)
          const result = yield* Effect.either(store.cancel(id, new Date(now)))
          const expected = modelCancel(model.get(id), now)
          check(step, result, expected)
          if (expected.next !== undefined) model.set(id, expected.next)
          break
        }
        case "Advance": {
          now += cmd.millis
          break
        }
        case "AdvanceToExpiry": {
          const approval = model.get(resolve(cmd.target))
          if (approval !== undefined) now = Math.max(now, approval.expiresAt + cmd.offset)
          break
        }
        case "ExpireDue": {
          const expired = yield* store.expireDue(new Date(now))
          const expected: Array<string> = []
          for (const [id, approval] of model) {
            if (approval.status === "pending" && now >= approval.expiresAt) {
              expected.push(id)
              model.set(id, { ...approval, status: "expired", resolvedAt: now })
            }
          }
          expect(expired.map((r) => r.id).sort(), step).toEqual(expected.sort())
          for (const r of expired) expect(project(r), step).toEqual(projectModel(model.get(r.id)!))
          break
        }
        case "VoteBatch": {
          const id = resolve(cmd.target)
          const inputs = cmd.votes.map((v) => ({ approver: v.approver, verdict: v.verdict, note: noteFor(v.verdict) }))
          const results = yield* Effect.all(
            inputs.map((input) => Effect.either(store.vote(id, { ...input, at: new Date(now) }))),
            { concurrency: "unbounded" }
          )
          const tags = results.map(tagOf)
          const stored = yield* Effect.either(store.get(id))
          const storedState = Either.isRight(stored) ? project(stored.right) : undefined
          // Concurrent votes may land in any order: the store must agree with
          // the model applied in some order, both in each vote's answer and in
          // the final state.
          let matched: ModelApproval | undefined | null = null
          for (const order of permutations(inputs.map((_, j) => j))) {
            let state = model.get(id)
            const expectedTags: Array<string> = new Array(inputs.length)
            for (const j of order) {
              const outcome = modelVote(state, inputs[j]!, now, [])
              expectedTags[j] = outcome.tag
              state = outcome.next
            }
            const sameTags = expectedTags.every((t, j) => t === tags[j])
            const sameState = state === undefined
              ? storedState === undefined
              : storedState !== undefined && isDeepEqual(storedState, projectModel(state))
            if (sameTags && sameState) {
              matched = state
              break
            }
          }
          expect(
            matched !== null,
            `${step}: no order of the concurrent votes explains answers ${JSON.stringify(tags)} and state ${
              JSON.stringify(storedState)
            }`
          ).toBe(true)
          if (matched != null) model.set(id, matched)
          break
        }
      }

      // After every command, every approval is stored as the model says, and
      // the pending list holds exactly the model's pending approvals, oldest first.
      for (const [id, approval] of model) {
        expect(project(yield* store.get(id)), `${step}, approval ${id}`).toEqual(projectModel(approval))
      }
      const pending = yield* store.listPending()
      const expectedPending = [...model.values()].filter((a) => a.status === "pending").map((a) => a.id)
      expect(pending.map((r) => r.id).sort(), step).toEqual([...expectedPending].sort())
      const createdAts = pending.map((r) => r.createdAt.getTime())
      expect(createdAts, step).toEqual([...createdAts].sort((a, b) => a - b))
    }
  })

const isDeepEqual = (a: unknown, b: unknown): boolean => {
  if (Object.is(a, b)) return true
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length &&
    ka.every((k) => isDeepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}
