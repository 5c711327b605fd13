/**
 * One person is one voter: separation of duties, one vote per approver and
 * "not your own decision" compare the ids the identity system resolves to,
 * never the ids a caller presented. Directories fold case, width or
 * whitespace, or know aliases; an alias must not count as someone else.
 */
import { Action, ApprovalStore, AuditSink, Decision, Governance, Identity, Policy, PolicySet } from "@gavel/core"
import { assert, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

// -----------------------------------------------------------------------------
// canonicalising directories
// -----------------------------------------------------------------------------

/** How a directory maps a presented id to its canonical form. */
interface Directory {
  readonly name: string
  readonly canonical: (presented: string) => string
  /** Other spellings of `id` (canonical) that the directory resolves to it. */
  readonly alias: fc.Arbitrary<(id: string) => string>
}

const caseFold: Directory = {
  name: "case fold",
  canonical: (id) => id.toLowerCase(),
  alias: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }).map((flips) => (id: string) =>
    Array.from(id, (c, i) => (flips[i % flips.length] ? c.toUpperCase() : c)).join("")
  )
}

/** Fullwidth forms (U+FF01–U+FF5E) fold to ASCII under NFKC. */
const nfkc: Directory = {
  name: "NFKC",
  canonical: (id) => id.normalize("NFKC"),
  alias: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }).map((flips) => (id: string) =>
    Array.from(id, (c, i) =>
      flips[i % flips.length] && c >= "!" && c <= "~" ? String.fromCharCode(c.charCodeAt(0) + 0xfee0) : c).join("")
  )
}

const trim: Directory = {
  name: "trim",
  canonical: (id) => id.trim(),
  alias: fc.tuple(fc.constantFrom("", " ", "  ", "\t"), fc.constantFrom("", " ", "\u00a0", "\n")).map(
    ([before, after]) => (id: string) => before + id + after
  )
}

const aliasTable: Directory = (() => {
  const table: Record<string, string> = {
    "agent-7@acme.example": "agent-7",
    "svc-agent-7": "agent-7",
    "alice@acme.example": "alice",
    "a.smith": "alice",
    "bob@acme.example": "bob"
  }
  const aliases = (id: string) => [id, ...Object.keys(table).filter((a) => table[a] === id)]
  return {
    name: "alias table",
    canonical: (id) => table[id] ?? id,
    alias: fc.nat().map((n) => (id: string) => {
      const all = aliases(id)
      return all[n % all.length]!
    })
  }
})()

const directories = [caseFold, nfkc, trim, aliasTable] as const

const roles: Record<string, ReadonlyArray<string>> = {
  "agent-7": ["finance"],
  alice: ["finance"],
  bob: ["finance"],
  cfo: ["cfo"]
}

/** An identity system that resolves every alias of a principal to its canonical record. */
const identityOf = (directory: Directory) =>
  Layer.succeed(
    Identity.Identity,
    Identity.Identity.of({
      resolve: (presented) => {
        const id = directory.canonical(presented)
        const known = roles[id]
        return Effect.succeed(
          known === undefined ? Option.none() : Option.some({ id, roles: known, status: "active" as const })
        )
      },
      canApprove: () => Effect.succeed(true)
    })
  )

// -----------------------------------------------------------------------------
// runtime
// -----------------------------------------------------------------------------

const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })

const transfer = (actor: string) =>
  Action.make({
    actor: { id: actor, kind: "agent", tenant: "acme" },
    kind: "tool",
    name: "payments.transfer",
    payload: { amount: 5000 }
  })

const transfers = Policy.make("payments", (action) =>
  action.name === "shell.exec"
    ? Decision.deny({ code: "tool.blocked", message: "no shell" })
    : Decision.requireApproval(
      { code: "payment.large", message: "two finance approvers" },
      { quorum: 2, roles: ["finance"], timeout: "1 hour", separationOfDuties: true }
    ))

const runtime = (directory: Directory) =>
  Governance.layer({
    sweepInterval: "1 hour",
    policySet: PolicySet.unsafeMake({
      id: "payments",
      version: "1",
      policy: transfers,
      overridePolicy: { authority: { roles: ["cfo", "finance"], principals: [] } }
    })
  }).pipe(
    Layer.provideMerge(ApprovalStore.layerMemory),
    Layer.provideMerge(AuditSink.layerMemory),
    Layer.provideMerge(identityOf(directory))
  )

const pending = (actor: string) =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const submitted = yield* governance.submit(transfer(actor))
    assert(submitted._tag === "Pending")
    return { governance, approvalId: submitted.approvalId }
  })

const directory = fc.constantFrom(...directories)

describe("one person is one voter", () => {
  it.effect.prop(
    "no alias of the requester passes separation of duties",
    [directory.chain((d) => fc.tuple(fc.constant(d), d.alias, d.alias))],
    ([[d, asActor, asVoter]]) =>
      Effect.gen(function*() {
        const { approvalId, governance } = yield* pending(asActor("agent-7"))
        const error = yield* Effect.flip(governance.approve(approvalId, human(asVoter("agent-7"))))
        expect(error._tag, d.name).toBe("SelfApprovalForbidden")
        const store = yield* ApprovalStore.ApprovalStore
        expect((yield* store.get(approvalId)).votes).toEqual([])
      }).pipe(Effect.provide(runtime(d))),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect.prop(
    "no alias of a voter counts twice, and the vote records the canonical id",
    [directory.chain((d) => fc.tuple(fc.constant(d), d.alias, d.alias, fc.constantFrom("alice", "bob")))],
    ([[d, first, second, voter]]) =>
      Effect.gen(function*() {
        const { approvalId, governance } = yield* pending("agent-7")
        yield* governance.approve(approvalId, human(first(voter)))
        const error = yield* Effect.flip(governance.approve(approvalId, human(second(voter))))
        expect(error._tag, d.name).toBe("DuplicateVote")
        const store = yield* ApprovalStore.ApprovalStore
        const current = yield* store.get(approvalId)
        expect(current.status).toBe("pending")
        expect(current.votes.map((v) => v.approver)).toEqual([voter])
      }).pipe(Effect.provide(runtime(d))),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect.prop(
    "no alias of the actor overrides the actor's own decision",
    [directory.chain((d) => fc.tuple(fc.constant(d), d.alias, d.alias))],
    ([[d, asActor, asAuthority]]) =>
      Effect.gen(function*() {
        const governance = yield* Governance.Governance
        // agent-7 holds the finance role, which may override: only "own decision" stops it.
        const record = yield* governance.evaluate({ ...transfer(asActor("agent-7")), name: "shell.exec" })
        const error = yield* Effect.flip(governance.override(record.decisionId, {
          authority: human(asAuthority("agent-7")),
          reason: "incident",
          duration: "1 hour"
        }))
        expect(error._tag === "OverrideNotAllowed" && error.reason, d.name).toBe("own_decision")
      }).pipe(Effect.provide(runtime(d))),
    { fastCheck: { numRuns: 30 } }
  )

  it.effect("two distinct approvers, each presented under an alias, resolve the approval", () =>
    Effect.gen(function*() {
      const { approvalId, governance } = yield* pending("agent-7@acme.example")
      yield* governance.approve(approvalId, human("a.smith"))
      const approved = yield* governance.approve(approvalId, human("bob@acme.example"))
      expect(approved.status).toBe("approved")
      expect(approved.votes.map((v) => v.approver)).toEqual(["alice", "bob"])
    }).pipe(Effect.provide(runtime(aliasTable))))

  it.effect("a resolved approval answers AlreadyResolved to its voters, under any spelling, as before", () =>
    Effect.gen(function*() {
      const { approvalId, governance } = yield* pending("agent-7")
      yield* governance.approve(approvalId, human("alice"))
      yield* governance.approve(approvalId, human("bob"))
      for (const again of ["alice", "ALICE"]) {
        const error = yield* Effect.flip(governance.approve(approvalId, human(again)))
        expect(error._tag, again).toBe("AlreadyResolved")
      }
    }).pipe(Effect.provide(runtime(caseFold))))

  it.effect("a vote an older runtime recorded under a presented spelling still counts for that person only", () =>
    Effect.gen(function*() {
      const { approvalId, governance } = yield* pending("agent-7")
      const store = yield* ApprovalStore.ApprovalStore
      // As a runtime that compared presented ids would have recorded it.
      yield* store.vote(approvalId, { approver: "Alice", verdict: "approve", note: null, at: new Date(0) })
      const again = yield* Effect.flip(governance.approve(approvalId, human("alice")))
      expect(again._tag).toBe("DuplicateVote")
      const approved = yield* governance.approve(approvalId, human("BOB"))
      expect(approved.status).toBe("approved")
      expect(approved.votes.map((v) => [v.approver, v.counted])).toEqual([["Alice", true], ["bob", true]])
    }).pipe(Effect.provide(runtime(caseFold))))
})
