/**
 * Who may vote on an approval or override a decision: principals as the
 * identity system knows them (canonical ids), the authority rule, and which
 * of the votes already cast still count.
 */
import * as Arr from "effect/Array"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Approval from "../../Approval.js"
import {
  type AuthorityVerdict,
  type Identity,
  type ResolvedPrincipal,
  withinAuthority as authorityRule
} from "../../Identity.js"
import type { ExternalCheckFailed } from "../../PolicyError.js"

/**
 * A principal as the identity system knows it: its canonical id, and what it resolved to.
 *
 * @internal
 */
export interface Canonical {
  readonly id: string
  readonly resolved: Option.Option<ResolvedPrincipal>
}

/**
 * Why a principal is outside an authority, or `"ok"`.
 *
 * @internal
 */
export type Verdict = AuthorityVerdict

/**
 * Whether the identity system says the principal is active, of the
 * decision's tenant (when both have one) and within `authority`.
 *
 * @internal
 */
export const withinAuthority = authorityRule

/**
 * Eligibility as one identity system answers it.
 *
 * @internal
 */
export type Eligibility = ReturnType<typeof make>

/**
 * Eligibility with `identity`.
 *
 * @internal
 */
export const make = (identity: Context.Tag.Service<Identity>) => {
  /**
   * Who `presented` is according to the identity system: the id it
   * resolves to (its canonical form: a directory may fold case, width or
   * whitespace, or know aliases), or `presented` itself when the identity
   * system does not know it. Every comparison of principals — separation of
   * duties, one vote per approver, an override of one's own decision — is
   * between canonical ids, so an alias is the same person.
   */
  const resolveCanonical = (presented: string) =>
    Effect.map(identity.resolve(presented), (resolved): Canonical => ({
      id: Option.isSome(resolved) ? resolved.value.id : presented,
      resolved
    }))

  /**
   * Whether the principal may vote on the request: within its authority
   * ({@link withinAuthority}), and let by the identity system
   * (`canApprove`, asked only then).
   */
  const eligibility = (principal: Canonical, request: Approval.ApprovalRequest) => {
    const verdict = withinAuthority(principal, request.requirement.authority, request.summary.actor.tenant)
    return verdict === "ok"
      ? Effect.map(identity.canApprove(principal.id, request), (ok) => ok ? verdict : "refused" as const)
      : Effect.succeed(verdict)
  }

  /**
   * The approvers (as recorded) of the votes already cast on `request` that
   * no longer count. `earlier` are their approvers as the identity system
   * knows them now, one per vote.
   */
  const revoked = (
    request: Approval.ApprovalRequest,
    earlier: ReadonlyArray<Canonical>,
    requester: Canonical
  ): Effect.Effect<ReadonlyArray<string>, ExternalCheckFailed> => {
    // Votes already cast count only while their approvers are still
    // eligible, once per person (votes recorded under two aliases of one
    // approver count once), and never the requester's under separation of
    // duties.
    const seen = new Set<string>()
    const twice = request.votes.map((v, i) => {
      const approver = earlier[i]!.id
      const again = seen.has(approver) || (request.requirement.separationOfDuties && approver === requester.id)
      if (v.counted) seen.add(approver)
      return again
    })
    return Effect.map(
      Effect.forEach(request.votes, (v, i) =>
        !v.counted
          ? Effect.succeedNone
          : twice[i]
          ? Effect.succeedSome(v.approver)
          : Effect.map(eligibility(earlier[i]!, request), (e) => e === "ok" ? Option.none() : Option.some(v.approver)),
        { concurrency: "unbounded" }),
      Arr.getSomes
    )
  }

  return { resolveCanonical, eligibility, revoked }
}
