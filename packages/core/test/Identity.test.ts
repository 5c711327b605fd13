/**
 * `Identity.fromDirectory` / `layerDirectory`: an identity system held in
 * memory. It resolves the principals it lists, exactly as listed, and answers
 * `canApprove` with the host's predicate; the runtime's eligibility rules
 * (status, tenant, roles) and `requireRole` read what it resolves.
 */
import { Action, ApprovalStore, AuditSink, Decision, Governance, Identity, Policy, PolicySet } from "@gavel/core"
import { Fixtures } from "@gavel/testing"
import { assert, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fc from "effect/FastCheck"
import * as Option from "effect/Option"

const alice: Identity.ResolvedPrincipal = { id: "alice", roles: ["finance"], tenant: "acme", status: "active" }
const bob: Identity.ResolvedPrincipal = { id: "bob", roles: ["finance", "audit"], status: "active" }
const carol: Identity.ResolvedPrincipal = { id: "carol", roles: ["finance"], status: "suspended" }
const dave: Identity.ResolvedPrincipal = { id: "dave", roles: ["finance"], tenant: "globex", status: "active" }
const erin: Identity.ResolvedPrincipal = { id: "erin", roles: ["sales"], tenant: "acme", status: "active" }
const frank: Identity.ResolvedPrincipal = { id: "frank", roles: ["finance"], status: "disabled" }

const directory = [alice, bob, carol, dave, erin, frank]

describe("Identity.fromDirectory", () => {
  it.effect("resolves a listed principal as listed, and an unknown id to None", () =>
    Effect.gen(function*() {
      const identity = Identity.fromDirectory(directory)
      expect(yield* identity.resolve("alice")).toEqual(Option.some(alice))
      expect(yield* identity.resolve("bob")).toEqual(Option.some(bob))
      // an inactive principal is still known: the runtime says why it may not vote
      expect(yield* identity.resolve("carol")).toEqual(Option.some(carol))
      expect(yield* identity.resolve("frank")).toEqual(Option.some(frank))
      expect(yield* identity.resolve("mallory")).toEqual(Option.none())
    }))

  it.effect("finds principals by their exact id: no case folding, no trimming", () =>
    Effect.gen(function*() {
      const identity = Identity.fromDirectory(directory)
      expect(yield* identity.resolve("Alice")).toEqual(Option.none())
      expect(yield* identity.resolve(" alice")).toEqual(Option.none())
      expect(yield* identity.resolve("")).toEqual(Option.none())
    }))

  it.effect("reads the directory once, a later entry replacing an earlier one with the same id", () =>
    Effect.gen(function*() {
      const entries = [carol, { ...carol, status: "active" as const }]
      const identity = Identity.fromDirectory(entries)
      entries.push(alice)
      entries[1] = frank
      expect(yield* identity.resolve("carol")).toEqual(Option.some({ ...carol, status: "active" }))
      expect(yield* identity.resolve("alice")).toEqual(Option.none())
      expect(yield* identity.resolve("frank")).toEqual(Option.none())
    }))

  it.effect("accepts any iterable: a Map's values", () =>
    Effect.gen(function*() {
      const identity = Identity.fromDirectory(new Map([["alice", alice]]).values())
      expect(yield* identity.resolve("alice")).toEqual(Option.some(alice))
    }))

  it.effect("lets every principal approve without a predicate, the approval's authority deciding", () =>
    Effect.gen(function*() {
      const identity = Identity.fromDirectory(directory)
      const request = Fixtures.request()
      expect(yield* identity.canApprove("alice", request)).toBe(true)
      expect(yield* identity.canApprove("carol", request)).toBe(true)
      expect(yield* identity.canApprove("mallory", request)).toBe(true)
    }))

  it.effect("asks the predicate with the listed principal and the approval; an unknown id may not approve", () =>
    Effect.gen(function*() {
      const asked: Array<[string, string]> = []
      const identity = Identity.fromDirectory(directory, {
        canApprove: (principal, request) => {
          asked.push([principal.id, request.id])
          return principal.tenant === (request.summary.actor.tenant ?? undefined)
        }
      })
      const acme = Fixtures.request({ id: "apr_acme", tenant: "acme" })
      const none = Fixtures.request({ id: "apr_none", tenant: null })
      expect(yield* identity.canApprove("alice", acme)).toBe(true)
      expect(yield* identity.canApprove("dave", acme)).toBe(false)
      expect(yield* identity.canApprove("bob", none)).toBe(true)
      expect(yield* identity.canApprove("alice", none)).toBe(false)
      expect(yield* identity.canApprove("mallory", none)).toBe(false)
      expect(asked).toEqual([["alice", "apr_acme"], ["dave", "apr_acme"], ["bob", "apr_none"], ["alice", "apr_none"]])
    }))
})

describe("Identity.layerDirectory", () => {
  const roleCheck = PolicySet.unsafeMake({
    id: "roles",
    version: "1",
    policy: Identity.requireRole("finance").pipe(Policy.failClosed)
  })

  const act = (actor: string) =>
    Action.make({ actor: { id: actor, kind: "human" }, kind: "tool", name: "payments.transfer" })

  it.effect("gives requireRole the directory's roles and status", () =>
    Effect.gen(function*() {
      const codes = (actor: string) =>
        Effect.map(PolicySet.evaluate(roleCheck, act(actor)), (record) => [
          record.decision._tag,
          ...record.reasons.map((reason) => reason.code)
        ])
      expect(yield* codes("alice")).toEqual(["Allow"])
      expect(yield* codes("carol")).toEqual(["Deny", "identity.inactive"])
      expect(yield* codes("erin")).toEqual(["Deny", "identity.role_missing"])
      expect(yield* codes("mallory")).toEqual(["Deny", "identity.unknown_principal"])
    }).pipe(Effect.provide(Identity.layerDirectory(directory))))

  const payments = PolicySet.unsafeMake({
    id: "payments",
    version: "1",
    policy: Policy.make("payments", () =>
      Decision.requireApproval(
        { code: "payment.large", message: "a finance approver" },
        { quorum: 1, roles: ["finance"], timeout: "1 hour" }
      ))
  })

  const runtime = (options?: Identity.DirectoryOptions) =>
    Governance.layer({ policySet: payments, sweepInterval: "1 hour" }).pipe(
      Layer.provideMerge(ApprovalStore.layerMemory),
      Layer.provide(AuditSink.layerMemory),
      Layer.provide(Identity.layerDirectory(directory, options))
    )

  const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })

  const pending = Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const submitted = yield* governance.submit(
      Action.make({ actor: { id: "agent-7", kind: "agent", tenant: "acme" }, kind: "tool", name: "payments.transfer" })
    )
    assert(submitted._tag === "Pending")
    return { governance, approvalId: submitted.approvalId }
  })

  const refusal = (voter: string, options?: Identity.DirectoryOptions) =>
    Effect.gen(function*() {
      const { approvalId, governance } = yield* pending
      const error = yield* Effect.flip(governance.approve(approvalId, human(voter)))
      return error._tag === "NotAnApprover" ? error.reason : error._tag
    }).pipe(Effect.provide(runtime(options)))

  it.effect("lets the runtime refuse votes by what the directory says: unknown, inactive, tenant, roles", () =>
    Effect.gen(function*() {
      expect(yield* refusal("mallory")).toBe("unknown_principal")
      expect(yield* refusal("carol")).toBe("inactive")
      expect(yield* refusal("frank")).toBe("inactive")
      expect(yield* refusal("dave")).toBe("other_tenant")
      expect(yield* refusal("erin")).toBe("outside_authority")
      expect(yield* refusal("bob", { canApprove: (principal) => principal.roles.includes("treasury") })).toBe(
        "refused"
      )
    }))

  it.effect("counts the votes of listed, active approvers of the tenant (or of none)", () =>
    Effect.gen(function*() {
      for (const voter of ["alice", "bob"]) {
        const { approvalId, governance } = yield* pending
        const approved = yield* governance.approve(approvalId, human(voter))
        expect(approved.status).toBe("approved")
        expect(approved.votes.map((v) => [v.approver, v.counted])).toEqual([[voter, true]])
      }
    }).pipe(Effect.provide(runtime())))
})

describe("the tenant rules", () => {
  const tenant = fc.option(fc.constantFrom("acme", "globex"), { nil: undefined })

  it.prop("otherTenant: apart only when both name a tenant and they differ; symmetric", [tenant, tenant], ([a, b]) => {
    expect(Identity.otherTenant(a, b)).toBe(a !== undefined && b !== undefined && a !== b)
    expect(Identity.otherTenant(a, b)).toBe(Identity.otherTenant(b, a))
    expect(Identity.otherTenant(a, b === undefined ? null : b)).toBe(Identity.otherTenant(a, b))
  })

  it.prop("seesTenant: what belongs to no tenant or to the caller's; stricter than otherTenant", [tenant, tenant], ([mine, its]) => {
    expect(Identity.seesTenant(mine, its)).toBe(its === undefined || mine === its)
    expect(Identity.seesTenant(mine, its === undefined ? null : its)).toBe(Identity.seesTenant(mine, its))
    if (Identity.seesTenant(mine, its)) expect(Identity.otherTenant(mine, its)).toBe(false)
  })

  it("a caller without a tenant sees only what has none, and is apart from no tenant", () => {
    expect(Identity.seesTenant(undefined, "acme")).toBe(false)
    expect(Identity.seesTenant(undefined, null)).toBe(true)
    expect(Identity.otherTenant(undefined, "acme")).toBe(false)
  })
})
