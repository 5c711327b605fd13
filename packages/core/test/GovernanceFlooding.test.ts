/**
 * Flooding: the caps on pending approvals per requester and per tenant, as
 * `submit` and `enforce` apply them (the stores' own atomicity is proved by
 * the conformance suite, `ApprovalStoreSuite`).
 */
import {
  Action,
  Approval,
  ApprovalStore,
  Audit,
  AuditSink,
  Decision,
  Governance,
  IdGenerator,
  Metrics,
  Policy,
  PolicySet
} from "@gavel/core"
import { Approvals, Fakes } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"

// -----------------------------------------------------------------------------
// fixtures
// -----------------------------------------------------------------------------

const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })
const alice = human("alice")

/** Every transfer needs one finance approver within 10 minutes; a transfer of 0 is allowed. */
const policy = Policy.make("payments", (action) =>
  (action.payload as { readonly amount: number }).amount === 0
    ? Decision.allow()
    : Decision.requireApproval(
      { code: "payment.large", message: "Transfers need a finance approver" },
      { quorum: 1, roles: ["finance"], timeout: "10 minutes" }
    ))

const transfer = (i: number, actor = "agent-7", tenant = "acme", amount = 5_000 + i) =>
  Action.make({
    actor: { id: actor, kind: "agent", tenant },
    kind: "tool",
    name: "payments.transfer",
    resource: { type: "account", id: "acc-1" },
    payload: { amount, to: `DE${i}` },
    requestId: `req-${i}`
  })

const layerWith = (
  options: Pick<Governance.Options<never>, "maxPendingPerRequester" | "maxPendingPerTenant"> = {},
  config: ReadonlyArray<readonly [string, string]> = []
) =>
  Governance.layer({
    ...options,
    sweepInterval: "1 minute",
    policySet: PolicySet.unsafeMake({ id: "payments", version: "1", policy })
  }).pipe(
    Layer.provideMerge(ApprovalStore.layerMemory),
    Layer.provideMerge(AuditSink.layerMemory),
    Layer.provideMerge(IdGenerator.layerSequential),
    Layer.provideMerge(Fakes.layer({ identity: { principals: { alice: { roles: ["finance"] } } } })),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(config))))
  )

const submitted = (action: Action.Action) =>
  Effect.flatMap(Governance.Governance, (governance) => Effect.either(governance.submit(action)))

const pendingCount = Effect.map(Metric.value(Metrics.approvalsPending), (state) => state.value)

// -----------------------------------------------------------------------------
// tests
// -----------------------------------------------------------------------------

describe("pending caps", () => {
  it.effect("10,000 submissions by one principal: the default cap (100) pending, the rest TooManyPending, audited", () =>
    Effect.gen(function*() {
      const store = yield* ApprovalStore.ApprovalStore
      const sink = yield* AuditSink.AuditSink
      const gaugeBefore = yield* pendingCount
      let pending = 0
      const refusals: Array<Approval.TooManyPending> = []
      for (let i = 0; i < 10_000; i++) {
        const result = yield* submitted(transfer(i))
        if (Either.isRight(result)) {
          expect(result.right._tag).toBe("Pending")
          pending++
        } else {
          expect(result.left._tag).toBe("TooManyPending")
          refusals.push(result.left as Approval.TooManyPending)
        }
      }
      expect(pending).toBe(100)
      expect(refusals.length).toBe(9_900)
      expect(refusals[0]).toBeInstanceOf(Approval.TooManyPending)
      expect(refusals.every((e) => e.scope === "requester" && e.key === "agent-7" && e.limit === 100)).toBe(true)
      expect((yield* store.listPending()).length).toBe(100)
      // Refused approvals never count as pending.
      expect((yield* pendingCount) - gaugeBefore).toBe(100)

      const trail = yield* sink.read()
      expect(Audit.verify(trail)._tag).toBe("Intact")
      const ofType = (type: Audit.EventType) => trail.filter((e) => e.type === type)
      expect(ofType("decision.evaluated").length).toBe(10_000)
      expect(ofType("approval.requested").length).toBe(100)
      const refused = ofType("approval.refused")
      expect(refused.length).toBe(9_900)
      // Each refusal follows its decision, names it, and says why.
      expect(refused.map((e) => e.decisionId)).toEqual(refusals.map((e) => e.decisionId))
      const first = refused[0]!
      const before = trail[first.sequence - 2]!
      expect(before).toMatchObject({ type: "decision.evaluated", decisionId: first.decisionId })
      expect(first).toMatchObject({
        approvalId: null,
        actor: "agent-7",
        data: { reason: "too_many_pending", scope: "requester", key: "agent-7", limit: 100 }
      })
    }).pipe(Effect.provide(layerWith())), 30_000)

  it.effect("a capped requester does not stop another; the tenant cap counts all of a tenant's requesters", () =>
    Effect.gen(function*() {
      const open = (i: number, actor: string, tenant = "acme") => submitted(transfer(i, actor, tenant))
      for (let i = 0; i < 3; i++) expect(Either.isRight(yield* open(i, "agent-7"))).toBe(true)
      expect(yield* Effect.flip(Effect.flatten(open(3, "agent-7")))).toMatchObject({
        _tag: "TooManyPending",
        scope: "requester",
        key: "agent-7",
        limit: 3
      })
      for (let i = 4; i < 6; i++) expect(Either.isRight(yield* open(i, "agent-8"))).toBe(true)
      // acme has 5 pending: the next one of any acme requester is refused for the tenant.
      expect(yield* Effect.flip(Effect.flatten(open(6, "agent-9")))).toMatchObject({
        _tag: "TooManyPending",
        scope: "tenant",
        key: "acme",
        limit: 5
      })
      // Another tenant is not affected; decisions that need no approval are not either.
      expect(Either.isRight(yield* open(7, "agent-9", "globex"))).toBe(true)
      const allowed = yield* Effect.flatten(submitted(transfer(8, "agent-7", "acme", 0)))
      expect(allowed._tag).toBe("Decided")
    }).pipe(Effect.provide(layerWith({ maxPendingPerRequester: 3, maxPendingPerTenant: 5 }))))

  it.effect("enforce fails with TooManyPending without parking; slots free as approvals resolve or expire", () =>
    Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const store = yield* ApprovalStore.ApprovalStore
      const ran: Array<number> = []
      const work = (i: number) => () => Effect.sync(() => void ran.push(i))
      const fibers = yield* Effect.forEach([0, 1], (i) => Effect.fork(governance.enforce(transfer(i), work(i))))
      yield* Approvals.settle()
      expect((yield* store.listPending()).length).toBe(2)
      const refused = yield* Effect.flip(governance.enforce(transfer(2), work(2)))
      expect(refused).toMatchObject({ _tag: "TooManyPending", scope: "requester", limit: 2 })

      // Approving one frees its slot (approved is no longer pending).
      const [first] = yield* store.listPending()
      yield* governance.approve(first!.id, alice)
      const next = yield* Effect.flatten(submitted(transfer(3)))
      expect(next._tag).toBe("Pending")
      expect((yield* Effect.flip(Effect.flatten(submitted(transfer(4)))))._tag).toBe("TooManyPending")

      // Past the expiry, the sweeper expires the rest: the requester may open again.
      yield* TestClock.adjust("11 minutes")
      yield* Approvals.settle()
      expect(yield* store.listPending()).toEqual([])
      for (const i of [5, 6]) expect((yield* Effect.flatten(submitted(transfer(i))))._tag).toBe("Pending")
      const exits = yield* Effect.forEach(fibers, Fiber.await)
      expect(exits.filter(Exit.isSuccess).length).toBe(1)
      expect(ran.length).toBe(1)
    }).pipe(Effect.provide(layerWith({ maxPendingPerRequester: 2 }))))
})

describe("pending caps: configuration", () => {
  const build = (
    options: Pick<Governance.Options<never>, "maxPendingPerRequester" | "maxPendingPerTenant">,
    config: ReadonlyArray<readonly [string, string]>
  ) => Effect.exit(Effect.provide(Governance.Governance, layerWith(options, config)))

  it.effect("governance.max_pending_per_requester and governance.max_pending_per_tenant set the caps", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 2; i++) expect(Either.isRight(yield* submitted(transfer(i)))).toBe(true)
      expect(yield* Effect.flip(Effect.flatten(submitted(transfer(2))))).toMatchObject({ scope: "requester", limit: 2 })
      expect(Either.isRight(yield* submitted(transfer(3, "agent-8")))).toBe(true)
      expect(yield* Effect.flip(Effect.flatten(submitted(transfer(4, "agent-9"))))).toMatchObject({
        scope: "tenant",
        limit: 3
      })
    }).pipe(Effect.provide(layerWith({}, [
      ["governance.max_pending_per_requester", "2"],
      ["governance.max_pending_per_tenant", "3"]
    ]))))

  it.effect("options given in code win over the config", () =>
    Effect.gen(function*() {
      expect(Either.isRight(yield* submitted(transfer(0)))).toBe(true)
      expect(yield* Effect.flip(Effect.flatten(submitted(transfer(1))))).toMatchObject({ limit: 1 })
    }).pipe(Effect.provide(layerWith({ maxPendingPerRequester: 1 }, [["governance.max_pending_per_requester", "50"]]))))

  it.effect("a bad value refuses to start, naming the key or the option", () =>
    Effect.gen(function*() {
      for (const bad of ["0", "-3", "1.5", "many"]) {
        for (const key of ["max_pending_per_requester", "max_pending_per_tenant"]) {
          const exit = yield* build({}, [[`governance.${key}`, bad]])
          expect(Exit.isFailure(exit)).toBe(true)
          if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain(`governance.${key}`)
        }
      }
      for (const bad of [0, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        for (const option of ["maxPendingPerRequester", "maxPendingPerTenant"] as const) {
          const exit = yield* build({ [option]: bad }, [])
          expect(Exit.isFailure(exit)).toBe(true)
          if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain(option)
        }
      }
    }))
})
