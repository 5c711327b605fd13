/**
 * Fixtures for tests of approval stores and of code around them: valid
 * values with every field filled, overridable where tests need it. Free of
 * any test runner, so child processes and benchmarks can use them too.
 *
 * @since 0.1.0
 */
import type { Approval, Encryption } from "@gavel/core"
import * as Redacted from "effect/Redacted"

/**
 * The instant fixtures are created at (2026-01-01T09:00:00Z), in
 * milliseconds. {@link request} expires one hour later by default.
 *
 * @since 0.1.0
 * @category fixtures
 */
export const epochMillis: number = Date.UTC(2026, 0, 1, 9, 0, 0)

const HOUR = 3_600_000

/**
 * What {@link request} lets a test choose; everything else gets a valid
 * default.
 *
 * @since 0.1.0
 * @category fixtures
 */
export interface RequestOptions {
  readonly id?: string | undefined
  readonly kind?: Approval.Kind | undefined
  /** The requesting actor's id (also `summary.actor.id`). Default `"alice"`. */
  readonly requester?: string | undefined
  /** The requesting actor's tenant (`summary.actor.tenant`). Default `"acme"`. */
  readonly tenant?: string | null | undefined
  readonly actionHash?: string | undefined
  /** Default 1. */
  readonly quorum?: number | undefined
  /** Default true. */
  readonly separationOfDuties?: boolean | undefined
  /** Default {@link epochMillis}. */
  readonly createdAt?: Date | undefined
  /** Default one hour after `createdAt`. */
  readonly expiresAt?: Date | undefined
}

/**
 * A valid pending {@link Approval.ApprovalRequest} with no votes, for store
 * tests. Spread the result to set fields {@link RequestOptions} does not
 * cover.
 *
 * @example
 * ```ts
 * import { Fixtures } from "@gavel/testing"
 *
 * const pending = Fixtures.request({ id: "apr_1", quorum: 2 })
 * ```
 *
 * @since 0.1.0
 * @category fixtures
 */
export const request = (options: RequestOptions = {}): Approval.ApprovalRequest => {
  const id = options.id ?? "apr_1"
  const requester = options.requester ?? "alice"
  const createdAt = options.createdAt ?? new Date(epochMillis)
  return {
    id,
    kind: options.kind ?? "approval",
    decisionId: `dec_${id}`,
    requestId: `req_${id}`,
    correlationId: `corr_${id}`,
    policyId: "payments",
    actionHash: options.actionHash ?? `hash_${id}`,
    summary: {
      actor: {
        id: requester,
        kind: "agent",
        roles: ["operator"],
        tenant: options.tenant === undefined ? "acme" : options.tenant
      },
      kind: "tool",
      name: "payments.transfer",
      resource: { type: "account", id: "acct-9" },
      metadata: { region: "eu-west" }
    },
    requester,
    reasons: [{
      code: "payment.large",
      message: "Payments over 10k need approval",
      outcome: "RequireApproval",
      policyId: "large-payments",
      ruleId: "r1",
      evidenceRefs: ["ticket:CHG-1"]
    }],
    requirement: {
      quorum: options.quorum ?? 1,
      authority: { roles: ["finance-approver"], principals: ["bob"] },
      separationOfDuties: options.separationOfDuties ?? true,
      expiresAt: options.expiresAt ?? new Date(createdAt.getTime() + HOUR)
    },
    votes: [],
    status: "pending",
    createdAt,
    resolvedAt: null,
    consumedAt: null,
    trace: { traceId: "t".repeat(32), spanId: "s".repeat(16) }
  }
}

/**
 * A fixed AES-256 key (32 bytes, unpadded base64url) for tests of code that
 * seals data. Public: never use it outside tests.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const encryptionKey: Redacted.Redacted<string> = Redacted.make("fdUhUi-8QLffNXcixfkIoLJM5EzTCBruoskMHz_BFwU")

/**
 * A one-key ring over {@link encryptionKey} under the id `test`:
 * `Encryption.layer(Fixtures.encryption)` for tests.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const encryption: Encryption.Options = { keys: [{ id: "test", key: encryptionKey }], active: "test" }
