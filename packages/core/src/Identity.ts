/**
 * The identity port: who a principal is according to the identity system
 * (roles, tenant, status), and whether they may approve an action.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Approval from "./Approval.js"
import * as Decision from "./Decision.js"
import * as Policy from "./Policy.js"
import type { ExternalCheckFailed, PolicyCancelled } from "./PolicyError.js"

/**
 * @since 0.1.0
 * @category models
 */
export const Status = Schema.Literal("active", "suspended", "disabled")

/**
 * @since 0.1.0
 * @category models
 */
export type Status = typeof Status.Type

/**
 * A principal as the identity system knows it.
 *
 * @since 0.1.0
 * @category models
 */
export const ResolvedPrincipal = Schema.Struct({
  id: Schema.String,
  roles: Schema.Array(Schema.String),
  tenant: Schema.optional(Schema.String),
  status: Status
}).annotations({ identifier: "ResolvedPrincipal" })

/**
 * @since 0.1.0
 * @category models
 */
export interface ResolvedPrincipal extends Schema.Schema.Type<typeof ResolvedPrincipal> {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The principal, or `None` when the identity system does not know it. */
  readonly resolve: (principalId: string) => Effect.Effect<Option.Option<ResolvedPrincipal>, ExternalCheckFailed>
  /**
   * Whether the identity system lets the principal vote on this approval,
   * beyond the approval's own authority (limits by amount, on-call rotas,
   * tenant boundaries). Asked after the principal was found active and
   * within the approval's authority.
   */
  readonly canApprove: (
    principalId: string,
    request: Approval.ApprovalRequest
  ) => Effect.Effect<boolean, ExternalCheckFailed>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Identity extends Context.Tag("@gavel/core/Identity")<Identity, Service>() {}

/**
 * @since 0.2.0
 * @category models
 */
export interface DirectoryOptions {
  /**
   * Whether a principal of the directory may vote on this approval, beyond
   * the approval's own authority (limits by amount, tenant boundaries): the
   * directory's answer to {@link Service.canApprove}. Without it, every
   * principal may, and the approval's authority decides; with it, a
   * principal the directory does not know may not.
   */
  readonly canApprove?: ((principal: ResolvedPrincipal, request: Approval.ApprovalRequest) => boolean) | undefined
}

/**
 * An identity system held in memory: the principals of `directory`, found
 * by their exact `id` (no case folding, no aliases; a later entry with the
 * same id replaces an earlier one). The directory is read once: later
 * changes to it are not seen. For tests, examples, and hosts whose
 * principals are configuration (the `gavel` CLI's `--principals` file);
 * a host with an IdP implements {@link Service} over it instead.
 *
 * @example
 * ```ts
 * import { Identity } from "@gavel/core"
 *
 * const identity = Identity.fromDirectory([
 *   { id: "alice", roles: ["finance"], tenant: "acme", status: "active" },
 *   { id: "bob", roles: ["finance"], status: "suspended" }
 * ], {
 *   // no approving across tenants
 *   canApprove: (principal, request) => principal.tenant === (request.summary.actor.tenant ?? undefined)
 * })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromDirectory = (directory: Iterable<ResolvedPrincipal>, options?: DirectoryOptions): Service => {
  const principals = new Map<string, ResolvedPrincipal>()
  for (const principal of directory) principals.set(principal.id, principal)
  const canApprove = options?.canApprove
  return Identity.of({
    resolve: (principalId) => Effect.succeed(Option.fromNullable(principals.get(principalId))),
    canApprove: canApprove === undefined
      ? () => Effect.succeed(true)
      : (principalId, request) => {
        const principal = principals.get(principalId)
        return Effect.succeed(principal !== undefined && canApprove(principal, request))
      }
  })
}

/**
 * The {@link Identity} of {@link fromDirectory}, as a layer.
 *
 * @example
 * ```ts
 * import { Identity } from "@gavel/core"
 *
 * const IdentityLive = Identity.layerDirectory([
 *   { id: "alice", roles: ["finance"], status: "active" }
 * ])
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerDirectory = (
  directory: Iterable<ResolvedPrincipal>,
  options?: DirectoryOptions
): Layer.Layer<Identity> => Layer.succeed(Identity, fromDirectory(directory, options))

/**
 * Allows the action when the identity system says the actor is active and
 * holds one of `roles`; denies otherwise (`identity.unknown_principal`,
 * `identity.inactive`, `identity.role_missing`). The roles come from the
 * identity system, not from the action's claims.
 *
 * @since 0.1.0
 * @category checks
 */
export const requireRole = (
  roles: string | ReadonlyArray<string>,
  options?: { readonly id?: string | undefined }
): Policy.Policy<ExternalCheckFailed | PolicyCancelled, Identity> => {
  const wanted = typeof roles === "string" ? [roles] : roles
  return Policy.effect(options?.id ?? `identity.role(${wanted.join("|")})`, (action) =>
    Effect.flatMap(Identity, (identity) =>
      Effect.map(identity.resolve(action.actor.id), (resolved): Decision.Result => {
        if (Option.isNone(resolved)) {
          return Decision.deny({
            code: "identity.unknown_principal",
            message: `The identity system does not know "${action.actor.id}"`
          })
        }
        const principal = resolved.value
        if (principal.status !== "active") {
          return Decision.deny({
            code: "identity.inactive",
            message: `Principal "${principal.id}" is ${principal.status}`
          })
        }
        return principal.roles.some((role) => wanted.includes(role))
          ? Decision.allow()
          : Decision.deny({
            code: "identity.role_missing",
            message: `Principal "${principal.id}" holds none of the roles ${wanted.join(", ")}`
          })
      })))
}

/**
 * The tenant rule of the runtime's checks: a principal and something that
 * belongs to a tenant (an approval, a decision, a request) are in different
 * tenants only when both name one and the names differ. No tenant on either
 * side is no boundary: a principal the directory places in no tenant may act
 * on a tenant's approval when its authority allows it. Used by `Governance`
 * (a voter or overrider the identity system places in another tenant is
 * refused, `other_tenant`) and by `A2a` (a request naming another tenant
 * than the caller's is rejected).
 *
 * @since 0.2.0
 * @category tenants
 */
export const otherTenant = (
  principalTenant: string | null | undefined,
  tenant: string | null | undefined
): boolean => principalTenant != null && tenant != null && principalTenant !== tenant

/**
 * Why a principal is outside an authority, or `"ok"`: see
 * {@link withinAuthority}.
 *
 * @since 0.2.0
 * @category authority
 */
export type AuthorityVerdict = "ok" | "unknown_principal" | "inactive" | "other_tenant" | "outside_authority"

/**
 * The authority rule of the runtime's checks (who may vote on an approval,
 * grant an override, resolve in-doubt work): the principal is known to the
 * identity system (`resolved`, under its canonical `id`), active, of the
 * tenant when both have one ({@link otherTenant}), and named by the
 * authority or holding one of its roles.
 *
 * @since 0.2.0
 * @category authority
 */
export const withinAuthority = (
  principal: { readonly id: string; readonly resolved: Option.Option<ResolvedPrincipal> },
  authority: Decision.Authority,
  tenant: string | null
): AuthorityVerdict => {
  const resolved = principal.resolved
  if (Option.isNone(resolved)) return "unknown_principal"
  if (resolved.value.status !== "active") return "inactive"
  if (otherTenant(resolved.value.tenant, tenant)) return "other_tenant"
  return authority.principals.includes(principal.id) ||
      resolved.value.roles.some((role) => authority.roles.includes(role))
    ? "ok"
    : "outside_authority"
}

/**
 * The tenant rule of what a caller may see at the edge (`HttpApprovals`, and
 * `ApprovalStore`'s `visibleTo` filter): what belongs to no tenant, and what
 * belongs to the caller's own. A caller without a tenant sees only what
 * belongs to none, so that a token missing its tenant claim cannot read every
 * tenant's approvals. Stricter than {@link otherTenant}: seeing is granted by
 * the token, acting is then checked against the identity system.
 *
 * @since 0.2.0
 * @category tenants
 */
export const seesTenant = (
  principalTenant: string | null | undefined,
  tenant: string | null | undefined
): boolean => tenant == null || principalTenant === tenant
