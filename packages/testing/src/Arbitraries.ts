/**
 * fast-check arbitraries for gavel's model, for property tests of policies and
 * of gavel itself. Every decision is built through the `Decision`
 * constructors, so generated values are the ones real policies produce.
 *
 * @since 0.1.0
 */
import { Action, Decision } from "@gavel/core"
import * as fc from "effect/FastCheck"

const word = fc.constantFrom("a", "b", "c", "ops", "finance", "é", "e\u0301", "z")

/**
 * A reason as a policy writes it, from a small vocabulary so that duplicates
 * (and therefore dedupe) actually happen.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const reasonInput: fc.Arbitrary<Decision.ReasonInput> = fc.record(
  {
    code: fc.constantFrom("tool.blocked", "quota.exceeded", "policy.timeout", "risk.high", "region.unsupported"),
    message: fc.constantFrom("m1", "m2", "m3"),
    policyId: fc.constantFrom("p1", "p2", "p3"),
    ruleId: fc.constantFrom("r1", "r2"),
    evidenceRefs: fc.array(fc.constantFrom("ticket:1", "ticket:2", "doc:a"), { maxLength: 2 })
  },
  { requiredKeys: ["code", "message"] }
)

const reasons = fc.array(reasonInput, { minLength: 0, maxLength: 3 })

/**
 * @since 0.1.0
 * @category arbitraries
 */
export const principal: fc.Arbitrary<Action.Principal> = fc.record({
  id: fc.constantFrom("alice", "bob", "agent-1", "agent-2", "svc"),
  kind: fc.constantFrom("human" as const, "agent" as const, "service" as const),
  roles: fc.uniqueArray(fc.constantFrom("operator", "admin", "approver", "auditor"), { maxLength: 3 }),
  tenant: fc.constantFrom("acme", "globex"),
  // Keys distinct after NFC: "é" and "e\u0301" as two keys is not an action.
  attributes: fc.uniqueArray(fc.tuple(word, word), { maxLength: 2, selector: ([key]) => key.normalize("NFC") })
    .map((entries) => Object.fromEntries(entries))
}, { requiredKeys: ["id", "kind", "roles", "attributes"] })

const jsonPayload: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 }).map((v) =>
  // Round-trip so the payload is exactly what JSON can carry (no -0).
  JSON.parse(JSON.stringify(v))
)

/**
 * An action with a JSON payload and metadata.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const action: fc.Arbitrary<Action.Action> = fc.record({
  actor: principal,
  kind: fc.constantFrom("tool", "agent", "http", "data"),
  name: fc.constantFrom("search", "payments.transfer", "shell.exec", "tool0", "tool1"),
  resource: fc.record({ type: fc.constantFrom("account", "file"), id: fc.constantFrom("1", "2") }),
  payload: jsonPayload,
  metadata: fc.dictionary(fc.constantFrom("region", "risk", "capability.validated"), word, { maxKeys: 3 }),
  requestId: fc.constantFrom("req-1", "req-2"),
  correlationId: fc.constantFrom("corr-1", "corr-2")
}, { requiredKeys: ["actor", "kind", "name", "metadata"] }).map((input) => Action.make(input))

const authority = {
  roles: fc.uniqueArray(fc.constantFrom("approver", "finance", "security"), { maxLength: 2 }),
  principals: fc.uniqueArray(fc.constantFrom("alice", "bob", "carol"), { maxLength: 2 })
}

/**
 * Any decision, every tag equally likely.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const decision: fc.Arbitrary<Decision.Decision> = fc.oneof(
  reasons.map((r) => Decision.allow(r)),
  reasons.map((r) => Decision.warn(r)),
  fc.tuple(reasons, action).map(([r, a]) => Decision.transform(r, { action: a })),
  fc.tuple(reasons, fc.record(authority)).map(([r, a]) => Decision.requireAcknowledgment(r, a)),
  fc.tuple(
    reasons,
    fc.record({
      ...authority,
      quorum: fc.integer({ min: 1, max: 3 }),
      separationOfDuties: fc.boolean(),
      timeout: fc.constantFrom(1_000, 60_000, 3_600_000)
    }, { requiredKeys: ["roles", "principals", "quorum", "separationOfDuties"] })
  ).map(([r, o]) => Decision.requireApproval(r, o)),
  reasons.map((r) => Decision.defer(r)),
  fc.tuple(reasons, fc.constantFrom("security-review", "legal", "ciso")).map(([r, p]) =>
    Decision.escalate(r, { reviewPath: p })
  ),
  reasons.map((r) => Decision.deny(r))
)

/**
 * A decision or `NotApplicable`.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const result: fc.Arbitrary<Decision.Result> = fc.oneof(
  { arbitrary: decision, weight: 4 },
  { arbitrary: fc.constant(Decision.notApplicable), weight: 1 }
)
