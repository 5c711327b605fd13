/**
 * The approval store port: where pending approvals, the decisions they came
 * from, and overrides live. Every transition is atomic — it applies the pure
 * transition from {@link Approval} to the current state and writes the result
 * only if the state did not change in between — so of two concurrent
 * resolvers exactly one wins and the other gets `AlreadyResolved`. Time is
 * always passed in (from `Clock`); a store never reads a clock.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import type * as Action from "./Action.js"
import * as Approval from "./Approval.js"
import type { Service as AuditSinkService } from "./AuditSink.js"
import * as Identity from "./Identity.js"
import type * as Decision from "./Decision.js"
import type * as DecisionRecord from "./DecisionRecord.js"
import * as Override from "./Override.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ListFilter {
  readonly kind?: Approval.Kind | undefined
  readonly requester?: string | undefined
  readonly tenant?: string | undefined
  /**
   * Only the approvals a principal of this tenant may see: those of its
   * tenant and those of no tenant (`summary.actor.tenant` is `null`). A
   * principal without a tenant sees only the latter. Applied with the other
   * filters, before `limit`.
   */
  readonly visibleTo?: { readonly tenant?: string | undefined } | undefined
  /** At most this many, oldest first. */
  readonly limit?: number | undefined
}

/**
 * Caps on pending approvals that {@link Service.create} enforces atomically
 * with the insert: a new approval is refused with
 * {@link Approval.TooManyPending} when its requester already has
 * `perRequester` approvals pending, or its tenant (`summary.actor.tenant`;
 * approvals without a tenant count as one tenant of their own) `perTenant`.
 * Only `pending` approvals count: approved, rejected, expired, cancelled and
 * consumed ones do not. The requester cap is checked first. An absent cap
 * is no cap.
 *
 * @since 0.1.0
 * @category models
 */
export interface PendingLimits {
  readonly perRequester?: number | undefined
  readonly perTenant?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /**
   * True when other processes write to the same store: the runtime then
   * polls it for resolutions it did not write itself.
   */
  readonly shared: boolean
  /**
   * Optional, for a shared store that can announce changes (Postgres'
   * LISTEN/NOTIFY): every approval that leaves `pending` — resolved,
   * expired or cancelled, by any process — as the store learns of it, so
   * that a call parked in this process wakes at once instead of at the next
   * poll. `Resync` says announcements may have been missed (the store
   * (re)connected): the runtime re-checks every approval it waits for.
   * Announcements are hints: the runtime reads the approval with `get`
   * before it acts, and keeps polling (`pollInterval`) as the fallback. The
   * stream never fails; it runs until interrupted.
   */
  readonly resolutions?: Stream.Stream<Resolution> | undefined
  /**
   * Stores a new pending request, unless `limits` refuse it
   * ({@link PendingLimits}). The count and the insert are one atomic step,
   * also across processes sharing the store: concurrent creates never leave
   * more than the cap pending.
   */
  readonly create: (
    request: Approval.ApprovalRequest,
    limits?: PendingLimits | undefined
  ) => Effect.Effect<void, Approval.TooManyPending | Approval.StoreError>
  readonly get: (
    approvalId: string
  ) => Effect.Effect<Approval.ApprovalRequest, Approval.ApprovalNotFound | Approval.StoreError>
  /** Applies {@link Approval.vote} atomically. */
  readonly vote: (
    approvalId: string,
    vote: Approval.VoteInput,
    options?: { readonly revoked?: ReadonlyArray<string> | undefined }
  ) => Effect.Effect<Approval.ApprovalRequest, Approval.ApprovalNotFound | Approval.VoteError | Approval.StoreError>
  /** Applies {@link Approval.consume} atomically: an approval is consumed at most once. */
  readonly consume: (
    approvalId: string,
    actionHash: string,
    now: Date
  ) => Effect.Effect<Approval.ApprovalRequest, Approval.ApprovalNotFound | Approval.ConsumeError | Approval.StoreError>
  /** Applies {@link Approval.cancel} atomically. */
  readonly cancel: (
    approvalId: string,
    now: Date
  ) => Effect.Effect<
    Approval.ApprovalRequest,
    Approval.ApprovalNotFound | Approval.AlreadyResolved | Approval.ApprovalExpired | Approval.StoreError
  >
  /** Expires every pending request whose expiry is at or before `now`; returns them. */
  readonly expireDue: (now: Date) => Effect.Effect<ReadonlyArray<Approval.ApprovalRequest>, Approval.StoreError>
  /** Requests of any status (or only those of `status`), oldest first. */
  readonly list: (
    filter?: ListFilter & { readonly status?: Approval.Status | undefined }
  ) => Effect.Effect<ReadonlyArray<Approval.ApprovalRequest>, Approval.StoreError>
  /** Pending requests, oldest first: `list` with status `pending`, for the sweeper and waiters. */
  readonly listPending: (
    filter?: ListFilter
  ) => Effect.Effect<ReadonlyArray<Approval.ApprovalRequest>, Approval.StoreError>
  /** Keeps a blocked decision so that it can be overridden later. */
  readonly saveDecision: (record: DecisionRecord.DecisionRecord) => Effect.Effect<void, Approval.StoreError>
  readonly getDecision: (
    decisionId: string
  ) => Effect.Effect<Option.Option<DecisionRecord.DecisionRecord>, Approval.StoreError>
  readonly saveOverride: (override: Override.Override) => Effect.Effect<void, Approval.StoreError>
  /** The most recent override that lets `action`, decided `decision`, through at `now` ({@link Override.covers}), if any. */
  readonly findOverride: (
    action: Action.Action,
    decision: Decision.Decision,
    now: Date
  ) => Effect.Effect<Option.Option<Override.Override>, Approval.StoreError>
}

/**
 * What {@link Service.resolutions} announces: an approval that left
 * `pending`, or `Resync` when announcements may have been missed.
 *
 * @since 0.1.0
 * @category models
 */
export type Resolution =
  | { readonly _tag: "Resolved"; readonly approvalId: string }
  | { readonly _tag: "Resync" }

/**
 * @since 0.1.0
 * @category tags
 */
export class ApprovalStore extends Context.Tag("@gavel/core/ApprovalStore")<ApprovalStore, Service>() {}

/**
 * Makes each step of an approval's life one unit: the store's transition and
 * the audit events that record it commit together, or neither does. The
 * SQLite and Postgres layers provide it for their store and their sink (one
 * transaction on their one database); the runtime runs every step — open,
 * vote and resolution, consume, expiry, cancel, override — through
 * `atomically` when `store` and `sink` are the ones it was given, so that a
 * failed audit append rolls the transition back and the error answered is
 * true. Without it (the memory layers, a store and a sink of different
 * places) the two are written one after the other.
 *
 * @since 0.2.0
 * @category models
 */
export interface AtomicSteps {
  /** The store whose writes `atomically` makes one unit. */
  readonly store: Service
  /** The audit sink whose appends join that unit (one writing to the same database). */
  readonly sink: AuditSinkService
  /**
   * Runs `effect` — the store's and the sink's writes in it — as one unit:
   * all of it commits, or none of it when `effect` fails (or the commit does).
   */
  readonly atomically: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Approval.StoreError, R>
}

/**
 * The {@link AtomicSteps} of the store and sink in context, when they share
 * a transaction (the SQL layers provide it).
 *
 * @since 0.2.0
 * @category tags
 */
export class Atomic extends Context.Tag("@gavel/core/ApprovalStore/Atomic")<Atomic, AtomicSteps>() {}

/**
 * How many blocked decisions the in-memory store keeps for overriding; the
 * oldest are dropped first.
 *
 * @since 0.1.0
 * @category constants
 */
export const memoryDecisionCapacity = 10_000

/**
 * What {@link Service.create} answers for a request, given how many
 * approvals its requester and its tenant already have pending: the
 * {@link Approval.TooManyPending} refusal, or `undefined` to go ahead. Every
 * store applies this same rule to the counts it read in its transaction.
 *
 * @since 0.1.0
 * @category limits
 */
export const limitExceeded = (
  request: Approval.ApprovalRequest,
  limits: PendingLimits | undefined,
  pendingOfRequester: number,
  pendingOfTenant: number
): Approval.TooManyPending | undefined => {
  const perRequester = limits?.perRequester
  if (perRequester !== undefined && pendingOfRequester >= perRequester) {
    return new Approval.TooManyPending({
      scope: "requester",
      key: request.requester,
      limit: perRequester,
      decisionId: request.decisionId
    })
  }
  const perTenant = limits?.perTenant
  if (perTenant !== undefined && pendingOfTenant >= perTenant) {
    return new Approval.TooManyPending({
      scope: "tenant",
      key: request.summary.actor.tenant,
      limit: perTenant,
      decisionId: request.decisionId
    })
  }
  return undefined
}

/**
 * An in-memory store for one process: tests, examples, single-instance
 * services that accept losing pending approvals on restart. Transitions run
 * as single synchronous steps, so they are atomic without locks. It keeps
 * the last {@link memoryDecisionCapacity} blocked decisions.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const requests = new Map<string, Approval.ApprovalRequest>()
  const pending = new Set<string>()
  const decisions = new Map<string, DecisionRecord.DecisionRecord>()
  const overrides: Array<Override.Override> = []
  // Pending approvals per requester and per tenant (`null`: no tenant), kept
  // with `pending` so that a capped create counts in O(1).
  const byRequester = new Map<string, number>()
  const byTenant = new Map<string | null, number>()
  const adjust = <K>(counts: Map<K, number>, key: K, by: number): void => {
    const n = (counts.get(key) ?? 0) + by
    if (n === 0) counts.delete(key)
    else counts.set(key, n)
  }

  const lookup = (approvalId: string) =>
    Effect.suspend(() => {
      const request = requests.get(approvalId)
      return request === undefined ? Effect.fail(new Approval.ApprovalNotFound({ approvalId })) : Effect.succeed(request)
    })

  const write = (next: Approval.ApprovalRequest): Approval.ApprovalRequest => {
    requests.set(next.id, next)
    if (next.status !== "pending" && pending.delete(next.id)) {
      adjust(byRequester, next.requester, -1)
      adjust(byTenant, next.summary.actor.tenant, -1)
    }
    return next
  }

  const select = (
    ids: Iterable<string>,
    filter: (ListFilter & { readonly status?: Approval.Status | undefined }) | undefined
  ) => {
    const out: Array<Approval.ApprovalRequest> = []
    const limit = filter?.limit ?? Infinity
    for (const id of ids) {
      if (out.length >= limit) break
      const r = requests.get(id)!
      if (filter?.status !== undefined && r.status !== filter.status) continue
      if (filter?.kind !== undefined && r.kind !== filter.kind) continue
      if (filter?.requester !== undefined && r.requester !== filter.requester) continue
      if (filter?.tenant !== undefined && r.summary.actor.tenant !== filter.tenant) continue
      if (filter?.visibleTo !== undefined && !Identity.seesTenant(filter.visibleTo.tenant, r.summary.actor.tenant)) {
        continue
      }
      out.push(r)
    }
    return out
  }

  const transition = <E>(
    approvalId: string,
    f: (request: Approval.ApprovalRequest) => Either.Either<Approval.ApprovalRequest, E>
  ) => Effect.flatMap(lookup(approvalId), (request) => Either.map(f(request), write))

  return ApprovalStore.of({
    shared: false,
    create: (request, limits) =>
      Effect.suspend((): Effect.Effect<void, Approval.TooManyPending | Approval.StoreError> => {
        if (requests.has(request.id)) {
          return Effect.fail(
            new Approval.StoreError({ operation: "create", detail: `approval "${request.id}" already exists` })
          )
        }
        if (request.status !== "pending") {
          return Effect.fail(new Approval.StoreError({ operation: "create", detail: "a new approval must be pending" }))
        }
        const tenant = request.summary.actor.tenant
        const ofRequester = byRequester.get(request.requester) ?? 0
        const refusal = limitExceeded(request, limits, ofRequester, byTenant.get(tenant) ?? 0)
        if (refusal !== undefined) return Effect.fail(refusal)
        requests.set(request.id, request)
        pending.add(request.id)
        adjust(byRequester, request.requester, 1)
        adjust(byTenant, tenant, 1)
        return Effect.void
      }),
    get: lookup,
    vote: (approvalId, vote, options) => transition(approvalId, (r) => Approval.vote(r, vote, options)),
    consume: (approvalId, actionHash, now) => transition(approvalId, (r) => Approval.consume(r, actionHash, now)),
    cancel: (approvalId, now) => transition(approvalId, (r) => Approval.cancel(r, now)),
    expireDue: (now) =>
      Effect.sync(() => {
        const expired: Array<Approval.ApprovalRequest> = []
        for (const id of pending) {
          const next = Approval.expire(requests.get(id)!, now)
          if (Option.isSome(next)) expired.push(write(next.value))
        }
        return expired
      }),
    list: (filter) => Effect.sync(() => select(requests.keys(), filter)),
    listPending: (filter) => Effect.sync(() => select(pending, filter)),
    saveDecision: (record) =>
      Effect.sync(() => {
        decisions.set(record.decisionId, record)
        if (decisions.size > memoryDecisionCapacity) decisions.delete(decisions.keys().next().value!)
      }),
    getDecision: (decisionId) => Effect.sync(() => Option.fromNullable(decisions.get(decisionId))),
    saveOverride: (override) => Effect.sync(() => void overrides.push(override)),
    findOverride: (action, decision, now) =>
      Effect.sync(() => {
        const at = now.getTime()
        for (let i = overrides.length - 1; i >= 0; i--) {
          if (Override.covers(overrides[i]!, action, decision, at)) return Option.some(overrides[i]!)
        }
        return Option.none()
      })
  })
})

/**
 * The in-memory store as a layer: one fresh store per layer build.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ApprovalStore> = Layer.effect(ApprovalStore, makeMemory)
