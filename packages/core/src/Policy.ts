/**
 * Policies: values describing an evaluation, and the combinators that compose
 * them with an explicit order.
 *
 * Two kinds of leaves: {@link make} (a pure function, evaluated as a plain
 * call) and {@link effect} (an Effect, for checks against external systems).
 * A tree whose leaves are all synchronous is a {@link Sync} policy and
 * evaluates with no fiber and no generator; one effectful leaf makes the whole
 * tree effectful, and its synchronous parts still run as plain calls inside.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import type * as Schedule from "effect/Schedule"
import type { Pipeable } from "effect/Pipeable"
import type * as Types from "effect/Types"
import type * as Action from "./Action.js"
import type * as Decision from "./Decision.js"
import type * as Explain from "./Explain.js"
import * as internal from "./internal/policy.js"
import type { ExternalCheckFailed, PolicyCancelled, PolicyTimeout } from "./PolicyError.js"

/**
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: typeof internal.TypeId = internal.TypeId

/**
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * A policy that may fail with `E` and needs the services `R` (the external
 * systems its checks talk to).
 *
 * @since 0.1.0
 * @category models
 */
export interface Policy<out E = never, out R = never> extends Pipeable {
  readonly [TypeId]: {
    readonly _E: Types.Covariant<E>
    readonly _R: Types.Covariant<R>
  }
  /** The policy's id, as it appears in reasons and in the explain trail. */
  readonly id: string
  /** True when every leaf is synchronous. */
  readonly isSync: boolean
}

/**
 * A policy made only of synchronous leaves: it evaluates as plain function
 * calls, and `PolicySet.evaluateSync` accepts it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sync extends Policy<never, never> {
  readonly isSync: true
}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace Policy {
  /**
   * @since 0.1.0
   */
  export type Any = Policy<any, any>
  /**
   * @since 0.1.0
   */
  export type Error<P> = P extends Policy<infer E, infer _R> ? E : never
  /**
   * @since 0.1.0
   */
  export type Context<P> = P extends Policy<infer _E, infer R> ? R : never
  /**
   * The type of a combination of `P`s: {@link Sync} when every one is.
   *
   * @since 0.1.0
   */
  export type Combined<P> = [P] extends [Sync] ? Sync : Policy<Error<P>, Context<P>>
}

/**
 * What a decision policy sees: the action, the applicable decision composed
 * so far, and the explain entries of the policies that produced it.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecisionPolicyInput {
  readonly action: Action.Action
  readonly decision: Decision.Decision
  readonly results: ReadonlyArray<Explain.Entry>
}

/**
 * A post-composition decision policy (seed 003's `IAsiBackboneDecisionPolicy`):
 * it may preserve, tighten, defer, require acknowledgment or escalate. Its
 * answer is joined with the composed decision, so it can never loosen it.
 *
 * @since 0.1.0
 * @category models
 */
export type DecisionPolicy = (input: DecisionPolicyInput) => Decision.Result

/**
 * A policy that failed closed on a bug of its own, and what it threw.
 *
 * - `threw`: the function threw (a `Policy.make` leaf, a `Policy.when`
 *   predicate, a decision policy, a failure handler);
 * - `died`: the effect of a `Policy.effect` leaf died;
 * - `unreadable`: reading the value it returned threw (a revoked `Proxy`,
 *   such as a stale immer draft; a throwing getter);
 * - `malformed`: it returned something that is not a well-formed decision;
 * - `failed`: it failed with an error its type does not declare (the type was
 *   cast away), and nothing handled it.
 *
 * The evaluation denies: `policy.failed` for `failed`, `policy.defect` for
 * the others, with `policyId` on the reason. The record and the audit trail
 * carry only that reason; what was thrown goes to the host: logged by
 * `PolicySet.evaluate` (and so by `Governance`) and `Policy.evaluate`, as an
 * `exception` event on the policy's span, and to the `onDefect` option of
 * `PolicySet.evaluateSync`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Defect {
  readonly policyId: string
  readonly kind: "threw" | "died" | "unreadable" | "malformed" | "failed"
  /**
   * What was thrown, died or failed with; `undefined` for `malformed`. It may
   * be anything, even a revoked `Proxy`: `name` and `message` are safe to read.
   */
  readonly error: unknown
  /** The error's name (`TypeError`), its `_tag`, or `typeof` for a non-object. */
  readonly name: string
  readonly message: string
  readonly stack: string | undefined
}

const toNode = (p: Policy.Any): internal.Node => p as unknown as internal.Node
const fromNode = <P>(node: internal.Node): P => node as unknown as P

/**
 * @since 0.1.0
 * @category guards
 */
export const isPolicy = (u: unknown): u is Policy<unknown, unknown> => internal.isNode(u)

// -----------------------------------------------------------------------------
// leaves
// -----------------------------------------------------------------------------

/**
 * A synchronous leaf: a pure function from the action to a decision or
 * `NotApplicable`. Reasons it returns are stamped with `id`. A function that
 * throws, or returns something that is not a result, yields `Deny` with
 * `policy.defect` (fail closed).
 *
 * @example
 * ```ts
 * import { Decision, Policy } from "@gavel/core"
 *
 * const noShell = Policy.make("tools.no-shell", (action) =>
 *   action.kind === "tool" && action.name === "shell.exec"
 *     ? Decision.deny({ code: "tool.blocked", message: "shell.exec is never allowed" })
 *     : Decision.notApplicable
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (id: string, evaluate: (action: Action.Action) => Decision.Result): Sync =>
  fromNode(internal.leaf(id, evaluate))

/**
 * An effectful leaf: a check against external systems. `E` is what it may fail
 * with and `R` the services it needs. A defect (a thrown exception, `die`)
 * yields `Deny` with `policy.defect`; typed failures stay typed until a
 * combinator ({@link failClosed}, {@link onFailure}) states what they mean.
 *
 * A check that is interrupted by something other than the caller (it
 * interrupts itself, or its call is aborted from elsewhere) fails with
 * `PolicyCancelled`, which is why that error is always in the type. Caller
 * cancellation is interruption: no decision is produced.
 *
 * Each run's duration is recorded in `gavel_external_check_duration_ms`
 * under `id`, and, with a tracer installed, each run is a `gavel.policy`
 * span (see `Metrics` and docs/observability.md).
 *
 * @example
 * ```ts
 * import { Decision, Policy } from "@gavel/core"
 * import * as Effect from "effect/Effect"
 *
 * const fraudScore = Policy.effect("fraud.score", (action) =>
 *   Effect.succeed(action.metadata.risk === "high"
 *     ? Decision.deny({ code: "fraud.suspected", message: "Fraud score too high" })
 *     : Decision.notApplicable)
 * ).pipe(Policy.timeout("2 seconds"), Policy.failClosed)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const effect = <E = never, R = never>(
  id: string,
  evaluate: (action: Action.Action) => Effect.Effect<Decision.Result, E, R>
): Policy<E | PolicyCancelled, R> => fromNode(internal.effectLeaf(id, evaluate))

/**
 * A leaf that always returns `result`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const constant = (id: string, result: Decision.Result): Sync => make(id, () => result)

// -----------------------------------------------------------------------------
// combinators
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface CombinatorOptions {
  /** An id for the combination, used in the policy hash. */
  readonly id?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ConcurrencyOptions extends CombinatorOptions {
  /** How many effectful children may run at once (default: unbounded). */
  readonly concurrency?: number | "unbounded" | undefined
}

/**
 * Every policy runs, in declaration order; results are joined with
 * `Decision.combine` and every reason is kept.
 *
 * @since 0.1.0
 * @category combinators
 */
export const all = <const Ps extends ReadonlyArray<Policy.Any>>(
  policies: Ps,
  options?: CombinatorOptions
): Policy.Combined<Ps[number]> => fromNode(internal.indexed(policies.map(toNode), internal.all, options?.id))

/**
 * The same result and explain trail as {@link all}, with the effectful
 * policies running concurrently (synchronous ones first, as plain calls). The
 * record never depends on completion order: results are joined in declaration
 * order once all have completed. Only latency differs from `all`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const allConcurrent = <const Ps extends ReadonlyArray<Policy.Any>>(
  policies: Ps,
  options?: ConcurrencyOptions
): Policy.Combined<Ps[number]> =>
  fromNode(internal.indexed(
    policies.map(toNode),
    (children, id) => internal.allConcurrent(children, id, options?.concurrency ?? "unbounded"),
    options?.id
  ))

/**
 * Stops at the first `Deny`, for latency-sensitive paths. Synchronous policies
 * run first, in declaration order; effectful ones then run concurrently
 * (bounded by `concurrency`; `1` runs them in declaration order) and the first
 * `Deny` interrupts the ones still in flight.
 *
 * The outcome is always the one {@link all} would give (only `Deny`, which
 * absorbs everything, stops the evaluation). The audit trade-off: policies
 * that did not run leave no reasons and no explain entries.
 *
 * @since 0.1.0
 * @category combinators
 */
export const firstDenial = <const Ps extends ReadonlyArray<Policy.Any>>(
  policies: Ps,
  options?: ConcurrencyOptions
): Policy.Combined<Ps[number]> =>
  fromNode(internal.indexed(
    policies.map(toNode),
    (children, id) => internal.firstDenial(children, id, options?.concurrency ?? "unbounded"),
    options?.id
  ))

/**
 * Ordered rules: the first policy that does not abstain decides, and the
 * ones after it do not run. All abstain: `NotApplicable`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const firstApplicable = <const Ps extends ReadonlyArray<Policy.Any>>(
  policies: Ps,
  options?: CombinatorOptions
): Policy.Combined<Ps[number]> =>
  fromNode(internal.indexed(policies.map(toNode), internal.firstApplicable, options?.id))

/**
 * Applies a decision policy after `self`: it sees the composed decision and
 * the results behind it, and may tighten it (defer, require acknowledgment,
 * escalate, deny). Its answer is joined with the composed decision, so it can
 * never loosen it — returning `Allow` over a `Warn` still yields `Warn`. When
 * `self` abstains, the decision policy is not consulted and the result stays
 * `NotApplicable`.
 *
 * @example
 * ```ts
 * import { Decision, Policy } from "@gavel/core"
 *
 * declare const constraints: Policy.Sync
 *
 * const overlay = constraints.pipe(
 *   Policy.narrow("regional-overlay", ({ action }) =>
 *     action.metadata.risk === "high"
 *       ? Decision.requireAcknowledgment({ code: "regional.ack_required", message: "High risk" })
 *       : Decision.notApplicable
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const narrow: {
  (id: string, decisionPolicy: DecisionPolicy): <P extends Policy.Any>(self: P) => Policy.Combined<P>
  <P extends Policy.Any>(self: P, id: string, decisionPolicy: DecisionPolicy): Policy.Combined<P>
} = dual(
  3,
  (self: Policy.Any, id: string, decisionPolicy: DecisionPolicy) =>
    fromNode(internal.narrow(toNode(self), id, decisionPolicy))
)

/**
 * Evaluates `self` only for actions matching `predicate`; abstains otherwise.
 *
 * @since 0.1.0
 * @category combinators
 */
export const when: {
  (predicate: (action: Action.Action) => boolean): <P extends Policy.Any>(self: P) => Policy.Combined<P>
  <P extends Policy.Any>(self: P, predicate: (action: Action.Action) => boolean): Policy.Combined<P>
} = dual(
  2,
  (self: Policy.Any, predicate: (action: Action.Action) => boolean) => fromNode(internal.when(toNode(self), predicate))
)

/**
 * Scopes `self` to actions with one of the given names: for any other action
 * it abstains without running, and leaves no explain entry (like
 * {@link when}). Unlike a `when` predicate, the scope is declared, so the
 * combinators ({@link all}, {@link allConcurrent}, {@link firstDenial},
 * {@link firstApplicable}) index their scoped children by name and evaluate
 * for each action only the children that can apply to it. The outcome and the
 * trail are the same as without the index; only the time differs, which
 * matters when a set holds one policy per tool or route.
 *
 * @example
 * ```ts
 * import { Decision, Policy } from "@gavel/core"
 *
 * const refunds = Policy.make("refunds.limit", (action) =>
 *   (action.payload as { amount: number }).amount > 500
 *     ? Decision.requireApproval({ code: "refund.large", message: "Refunds over 500 need finance" })
 *     : Decision.allow()
 * ).pipe(Policy.forAction("payments.refund"))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const forAction: {
  (names: string | readonly [string, ...Array<string>]): <P extends Policy.Any>(self: P) => Policy.Combined<P>
  <P extends Policy.Any>(self: P, names: string | readonly [string, ...Array<string>]): Policy.Combined<P>
} = dual(
  2,
  (self: Policy.Any, names: string | ReadonlyArray<string>) =>
    fromNode(internal.forAction(toNode(self), typeof names === "string" ? [names] : Array.from(names)))
)

// -----------------------------------------------------------------------------
// evaluation
// -----------------------------------------------------------------------------

/**
 * Evaluates a synchronous policy as plain function calls and returns the bare
 * result (no record, no explain trail). Use `PolicySet.evaluateSync` for a
 * full `DecisionRecord`.
 *
 * @since 0.1.0
 * @category evaluation
 */
export const evaluateSync: {
  (action: Action.Action): (self: Sync) => Decision.Result
  (self: Sync, action: Action.Action): Decision.Result
} = dual(
  2,
  (self: Sync, action: Action.Action): Decision.Result =>
    toNode(self).evalSync(internal.makeContext(action, undefined, undefined))
)

/**
 * Evaluates any policy as an Effect and returns the bare result. A policy
 * that fails closed on a bug of its own (see {@link Defect}) is logged at
 * error level.
 *
 * @since 0.1.0
 * @category evaluation
 */
export const evaluate: {
  (action: Action.Action): <E, R>(self: Policy<E, R>) => Effect.Effect<Decision.Result, E, R>
  <E, R>(self: Policy<E, R>, action: Action.Action): Effect.Effect<Decision.Result, E, R>
} = dual(
  2,
  <E, R>(self: Policy<E, R>, action: Action.Action) =>
    Effect.suspend(() => {
      const defects: Array<internal.Defect> = []
      return Effect.flatMap(
        toNode(self).evalEffect(internal.makeContext(action, undefined, undefined, undefined, defects)),
        (result) => defects.length === 0 ? Effect.succeed(result) : Effect.as(internal.logDefects(defects), result)
      )
    }) as Effect.Effect<Decision.Result, E, R>
)

// -----------------------------------------------------------------------------
// time and failure
// -----------------------------------------------------------------------------

/**
 * Bounds an effectful policy: it fails with `PolicyTimeout` (and is
 * interrupted) when it has not answered within the smaller of `duration` and
 * what remains of the enclosing {@link budget}. A synchronous policy is a
 * plain call and is returned as it is. Each cut counts in
 * `gavel_policy_timeouts_total` under the policy's id.
 *
 * @since 0.1.0
 * @category time
 */
export const timeout: {
  (duration: Duration.DurationInput): <E, R>(self: Policy<E, R>) => Policy<E | PolicyTimeout, R>
  <E, R>(self: Policy<E, R>, duration: Duration.DurationInput): Policy<E | PolicyTimeout, R>
} = dual(
  2,
  <E, R>(self: Policy<E, R>, duration: Duration.DurationInput): Policy<E | PolicyTimeout, R> =>
    fromNode(internal.timeout(toNode(self), Duration.decode(duration)))
)

/**
 * An overall evaluation budget: every effectful check inside gets the smaller
 * of its own timeout and what remains of the budget when it starts, and fails
 * with `PolicyTimeout` (`budget: true`) when the budget runs out. Nested
 * budgets keep the earliest deadline. Each cut counts in
 * `gavel_policy_timeouts_total` under the id of the check it cut.
 *
 * @example
 * ```ts
 * import { Policy } from "@gavel/core"
 *
 * declare const checks: ReadonlyArray<Policy.Policy<never, never>>
 *
 * // Sequential checks share one second; a check started at 600 ms gets 400 ms.
 * const bounded = Policy.all(checks).pipe(Policy.budget("1 second"), Policy.failClosed)
 * ```
 *
 * @since 0.1.0
 * @category time
 */
export const budget: {
  (duration: Duration.DurationInput): <E, R>(self: Policy<E, R>) => Policy<E | PolicyTimeout, R>
  <E, R>(self: Policy<E, R>, duration: Duration.DurationInput): Policy<E | PolicyTimeout, R>
} = dual(
  2,
  <E, R>(self: Policy<E, R>, duration: Duration.DurationInput): Policy<E | PolicyTimeout, R> =>
    fromNode(internal.budget(toNode(self), Duration.decode(duration)))
)

/**
 * Re-evaluates an effectful policy after a typed failure, as `schedule`
 * allows (`Schedule.recurs(2)`: up to two retries). Only the successful
 * attempt's explanation is kept. Once the schedule is exhausted, the last
 * failure remains.
 *
 * @since 0.1.0
 * @category failure
 */
export const retry: {
  <Out, E, R2>(schedule: Schedule.Schedule<Out, NoInfer<E>, R2>): <R>(self: Policy<E, R>) => Policy<E, R | R2>
  <E, R, Out, R2>(self: Policy<E, R>, schedule: Schedule.Schedule<Out, NoInfer<E>, R2>): Policy<E, R | R2>
} = dual(
  2,
  <E, R, Out, R2>(self: Policy<E, R>, schedule: Schedule.Schedule<Out, E, R2>): Policy<E, R | R2> =>
    fromNode(internal.retry(toNode(self), schedule))
)

/**
 * What a handled failure becomes: a decision tag (the decision carries the
 * standard reason code for the failure: `policy.timeout`,
 * `external.unavailable` or `external.cancelled`), or a function building the
 * decision from the error.
 *
 * @since 0.1.0
 * @category failure
 */
export type FailureHandler<E> = "Allow" | "Warn" | "Defer" | "Escalate" | "Deny" | ((error: E) => Decision.Result)

/**
 * @since 0.1.0
 * @category failure
 */
export interface FailureHandlers {
  readonly timeout?: FailureHandler<PolicyTimeout> | undefined
  readonly unavailable?: FailureHandler<ExternalCheckFailed> | undefined
  readonly cancelled?: FailureHandler<PolicyCancelled> | undefined
}

/**
 * The errors a set of handlers leaves unhandled.
 *
 * @since 0.1.0
 * @category failure
 */
export type Unhandled<E, H extends FailureHandlers> = Exclude<
  E,
  | (H["timeout"] extends FailureHandler<PolicyTimeout> ? PolicyTimeout : never)
  | (H["unavailable"] extends FailureHandler<ExternalCheckFailed> ? ExternalCheckFailed : never)
  | (H["cancelled"] extends FailureHandler<PolicyCancelled> ? PolicyCancelled : never)
>

/**
 * States what each typed failure means, as an explicit decision recorded in
 * the explain trail under the failing policy's id. Failures without a handler
 * stay in the error type.
 *
 * @example
 * ```ts
 * import { Policy } from "@gavel/core"
 *
 * declare const ticketCheck: Policy.Policy<never, never>
 *
 * // A slow ticketing system defers; an outage or an aborted call denies.
 * const check = ticketCheck.pipe(
 *   Policy.timeout("2 seconds"),
 *   Policy.onFailure({ timeout: "Defer", unavailable: "Deny", cancelled: "Deny" })
 * )
 * ```
 *
 * @since 0.1.0
 * @category failure
 */
export const onFailure: {
  <const H extends FailureHandlers>(handlers: H): <E, R>(self: Policy<E, R>) => Policy<Unhandled<E, H>, R>
  <E, R, const H extends FailureHandlers>(self: Policy<E, R>, handlers: H): Policy<Unhandled<E, H>, R>
} = dual(
  2,
  <E, R, const H extends FailureHandlers>(self: Policy<E, R>, handlers: H): Policy<Unhandled<E, H>, R> =>
    fromNode(internal.onFailure(toNode(self), handlers as Partial<Record<internal.FailureKind, internal.FailureHandler>>, undefined))
)

/**
 * Fails closed: every typed failure becomes `Deny`, with `policy.timeout`,
 * `external.unavailable`, `external.cancelled`, or `policy.failed` for an
 * error of the host's own. The result's error type is `never`, which is what
 * a policy set requires.
 *
 * @since 0.1.0
 * @category failure
 */
export const failClosed = <E, R>(self: Policy<E, R>): Policy<never, R> =>
  fromNode(internal.onFailure(toNode(self), {}, "Deny"))
