/**
 * The metrics gavel keeps, as Effect `Metric`s: decisions by outcome,
 * pending approvals, external-check latency and timeouts. They live in
 * Effect's global metric registry, so `Metric.value` reads them and
 * `@effect/opentelemetry`'s metrics layer (or any other reader of the
 * registry) exports them.
 *
 * Tags are kept low-cardinality on purpose: a decision outcome or a policy
 * id, never an action name, an actor id or anything taken from a payload.
 * Labels set with `Effect.tagMetrics` around an evaluation are added to the
 * ones below, as for any Effect metric.
 *
 * @example
 * ```ts
 * import { Metrics } from "@gavel/core"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const denied = Effect.map(Metric.value(Metrics.decisions("Deny")), (state) => state.count)
 * ```
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as Decision from "./Decision.js"

/**
 * The tag that carries a decision outcome (a decision `_tag`).
 *
 * @since 0.1.0
 * @category tags
 */
export const OutcomeTag = "outcome"

/**
 * The tag that carries a policy id.
 *
 * @since 0.1.0
 * @category tags
 */
export const PolicyIdTag = "policy_id"

/**
 * `gavel_decisions_total`: decisions made by `PolicySet.evaluate` (the Effect
 * path, so every decision a `Governance` service makes), tagged `outcome`
 * with the decision's tag (`Allow`, `Deny`, `RequireApproval`…). Use
 * {@link decisions} for the counter of one outcome.
 *
 * `PolicySet.evaluateSync`, the plain-function fast path, does not count:
 * it runs outside any fiber and pays for nothing it does not need.
 *
 * @since 0.1.0
 * @category metrics
 */
export const decisionsTotal: Metric.Metric.Counter<number> = Metric.counter("gavel_decisions_total", {
  description: "Decisions made by PolicySet.evaluate, by outcome (the decision tag)",
  incremental: true
})

/**
 * `gavel_approvals_pending`: approval requests waiting for a resolution in
 * this process. Update it with {@link adjustApprovalsPending} when a request
 * is created or resolved, or {@link setApprovalsPending} with a count read
 * from the store.
 *
 * @since 0.1.0
 * @category metrics
 */
export const approvalsPending: Metric.Metric.Gauge<number> = Metric.gauge("gavel_approvals_pending", {
  description: "Approval requests waiting for a resolution"
})

/**
 * The buckets of {@link externalCheckDuration}, in milliseconds: from 1 ms
 * (an in-process cache) to a minute (a check that only a generous timeout
 * lets finish).
 *
 * @since 0.1.0
 * @category metrics
 */
export const externalCheckBoundaries: MetricBoundaries.MetricBoundaries = MetricBoundaries.fromIterable([
  1,
  2,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10000,
  30000,
  60000
])

/**
 * `gavel_external_check_duration_ms`: how long each run of an effectful leaf
 * (`Policy.effect`) took, in milliseconds of the `Clock` service, tagged
 * `policy_id`. A run is recorded when it completes, whatever the outcome
 * (failures included), and when `Policy.timeout` or `Policy.budget` cuts it:
 * a check cut at its 2 s timeout records 2000, so the tail of the histogram
 * shows what callers waited. Runs interrupted for another reason (a
 * `Policy.firstDenial` sibling denied, the caller gave up) are not recorded.
 *
 * @since 0.1.0
 * @category metrics
 */
export const externalCheckDuration: Metric.Metric.Histogram<number> = Metric.histogram(
  "gavel_external_check_duration_ms",
  externalCheckBoundaries,
  "Duration of effectful policy checks (Policy.effect) in milliseconds, by policy id"
)

/**
 * `gavel_policy_timeouts_total`: checks cut by `Policy.timeout` or by the
 * evaluation budget of `Policy.budget`, tagged `policy_id` (the id carried by
 * the `PolicyTimeout`: the timed policy, or the leaf the budget cut).
 *
 * @since 0.1.0
 * @category metrics
 */
export const policyTimeoutsTotal: Metric.Metric.Counter<number> = Metric.counter("gavel_policy_timeouts_total", {
  description: "Policy checks cut by Policy.timeout or Policy.budget, by policy id",
  incremental: true
})

/**
 * {@link decisionsTotal} for one outcome.
 *
 * @since 0.1.0
 * @category metrics
 */
export const decisions = (outcome: Decision.Decision["_tag"]): Metric.Metric.Counter<number> =>
  Metric.tagged(decisionsTotal, OutcomeTag, outcome)

/**
 * {@link externalCheckDuration} for one policy.
 *
 * @since 0.1.0
 * @category metrics
 */
export const externalCheckDurationOf = (policyId: string): Metric.Metric.Histogram<number> =>
  Metric.tagged(externalCheckDuration, PolicyIdTag, policyId)

/**
 * {@link policyTimeoutsTotal} for one policy.
 *
 * @since 0.1.0
 * @category metrics
 */
export const policyTimeoutsOf = (policyId: string): Metric.Metric.Counter<number> =>
  Metric.tagged(policyTimeoutsTotal, PolicyIdTag, policyId)

/**
 * Moves {@link approvalsPending} by `delta`: `1` when a request is created,
 * `-1` when it is approved, rejected, expired or cancelled.
 *
 * @since 0.1.0
 * @category approvals
 */
export const adjustApprovalsPending = (delta: number): Effect.Effect<void> => Metric.modify(approvalsPending, delta)

/**
 * Sets {@link approvalsPending} to a count read from the approval store.
 *
 * @since 0.1.0
 * @category approvals
 */
export const setApprovalsPending = (count: number): Effect.Effect<void> => Metric.set(approvalsPending, count)

/**
 * `gavel_audit_undelivered`: events of approval steps that wait in the audit
 * outbox for a sink outside the store (see `AuditOutbox`), as counted after
 * the last delivery that failed or emptied it. Above zero for long: the
 * sink has been refusing events.
 *
 * @since 0.2.0
 * @category metrics
 */
export const auditUndelivered: Metric.Metric.Gauge<number> = Metric.gauge("gavel_audit_undelivered", {
  description: "Audit events waiting in the audit outbox for the audit sink"
})

/**
 * `gavel_audit_delivery_failures_total`: deliveries from the audit outbox
 * the sink refused.
 *
 * @since 0.2.0
 * @category metrics
 */
export const auditDeliveryFailuresTotal: Metric.Metric.Counter<number> = Metric.counter(
  "gavel_audit_delivery_failures_total",
  { description: "Deliveries from the audit outbox that the audit sink refused", incremental: true }
)

/**
 * Sets {@link auditUndelivered}.
 *
 * @since 0.2.0
 * @category audit
 */
export const setAuditUndelivered = (count: number): Effect.Effect<void> => Metric.set(auditUndelivered, count)

/**
 * Adds `n` to {@link auditDeliveryFailuresTotal}.
 *
 * @since 0.2.0
 * @category audit
 */
export const auditDeliveryFailures = (n: number): Effect.Effect<void> =>
  Metric.incrementBy(auditDeliveryFailuresTotal, n)
