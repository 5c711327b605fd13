/**
 * Deterministic fakes of gavel's external-system ports (Identity, Ticketing,
 * Quota, Compliance) as Layers: scripted answers per input, latency in
 * virtual time (drive it with `TestClock`), injected failures and hangs, and
 * every call recorded in the {@link CallLog}.
 *
 * @example
 * ```ts
 * import { Fakes } from "@gavel/testing"
 *
 * const fakes = Fakes.layer({
 *   identity: { principals: { "agent-1": { roles: ["operator"] } }, latency: "20 millis" },
 *   ticketing: { lookup: () => Fakes.hang() },
 *   compliance: { verify: () => Fakes.sequence(Fakes.fail("503"), Fakes.answer({ _tag: "Compliant" })) }
 * })
 * ```
 *
 * @since 0.1.0
 */
import { type Action, type Approval, Compliance, Identity, PolicyError, Quota, Ticketing } from "@gavel/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as CallLog from "./CallLog.js"

/**
 * What a fake does for one call.
 *
 * @since 0.1.0
 * @category models
 */
export type Behavior<A> =
  | { readonly _tag: "Answer"; readonly value: A; readonly latency: Duration.Duration }
  | { readonly _tag: "Fail"; readonly detail: string; readonly latency: Duration.Duration }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Sequence"; readonly steps: ReadonlyArray<Behavior<A>> }

/**
 * Answers `value` after `latency` (virtual time; default: at once).
 *
 * @since 0.1.0
 * @category behaviors
 */
export const answer = <A>(value: A, options?: { readonly latency?: Duration.DurationInput }): Behavior<A> => ({
  _tag: "Answer",
  value,
  latency: Duration.decode(options?.latency ?? 0)
})

/**
 * Fails with `ExternalCheckFailed` after `latency`.
 *
 * @since 0.1.0
 * @category behaviors
 */
export const fail = <A = never>(detail: string, options?: { readonly latency?: Duration.DurationInput }): Behavior<A> => ({
  _tag: "Fail",
  detail,
  latency: Duration.decode(options?.latency ?? 0)
})

/**
 * Never answers (until interrupted).
 *
 * @since 0.1.0
 * @category behaviors
 */
export const hang = <A = never>(): Behavior<A> => ({ _tag: "Hang" })

/**
 * One step per call for the same input, the last repeating: `sequence(fail("x"),
 * fail("x"), answer(v))` fails twice, then answers.
 *
 * @since 0.1.0
 * @category behaviors
 */
export const sequence = <A>(...steps: ReadonlyArray<Behavior<A>>): Behavior<A> => ({ _tag: "Sequence", steps })

/**
 * How a fake answers an operation: a behavior per input.
 *
 * @since 0.1.0
 * @category models
 */
export type Script<I, A> = (input: I) => Behavior<A>

const perform = <A>(
  log: CallLog.Service,
  counters: Map<string, number>,
  system: string,
  operation: string,
  input: string,
  behavior: Behavior<A>
): Effect.Effect<A, PolicyError.ExternalCheckFailed> => {
  let step = behavior
  if (step._tag === "Sequence") {
    const key = `${operation}\u0000${input}`
    const n = counters.get(key) ?? 0
    counters.set(key, n + 1)
    step = step.steps[Math.min(n, step.steps.length - 1)] ?? fail("empty sequence")
  }
  // No latency means no sleep: an immediate fake answers synchronously.
  const after = <B, E>(latency: Duration.Duration, effect: Effect.Effect<B, E>) =>
    Duration.isZero(latency) ? effect : Effect.zipRight(Effect.sleep(latency), effect)
  const run: Effect.Effect<A, PolicyError.ExternalCheckFailed> = step._tag === "Answer"
    ? after(step.latency, Effect.succeed(step.value))
    : step._tag === "Fail"
    ? after(step.latency, Effect.fail(new PolicyError.ExternalCheckFailed({ system, operation, detail: step.detail })))
    : step._tag === "Hang"
    ? Effect.never
    : perform(log, counters, system, operation, input, step)
  return step._tag === "Sequence" ? run : log.track(system, operation, input, run)
}

/** Runs scripted calls of one fake, sharing its sequence counters. */
const scripted = (log: CallLog.Service, system: string) => {
  const counters = new Map<string, number>()
  return <A>(operation: string, input: string, behavior: Behavior<A>) =>
    perform(log, counters, system, operation, input, behavior)
}

const withLatency = <A>(value: A, latency: Duration.DurationInput | undefined): Behavior<A> =>
  answer(value, { latency: latency ?? 0 })

// -----------------------------------------------------------------------------
// Identity
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface IdentityOptions {
  /** Known principals; unknown ids resolve to `None`. Status defaults to active. */
  readonly principals?: Readonly<Record<string, {
    readonly roles?: ReadonlyArray<string>
    readonly tenant?: string
    readonly status?: Identity.Status
  }>>
  /**
   * The principals `canApprove` accepts (for any approval). When absent,
   * `canApprove` accepts every principal, leaving the decision to the
   * approval's authority (roles and principals).
   */
  readonly approvers?: ReadonlyArray<string>
  /** Latency of the default answers. */
  readonly latency?: Duration.DurationInput
  readonly resolve?: Script<string, Option.Option<Identity.ResolvedPrincipal>>
  readonly canApprove?: Script<{ readonly principalId: string; readonly request: Approval.ApprovalRequest }, boolean>
}

/**
 * @since 0.1.0
 * @category layers
 */
export const identity = (options: IdentityOptions = {}): Layer.Layer<Identity.Identity, never, CallLog.CallLog> =>
  Layer.effect(
    Identity.Identity,
    Effect.map(CallLog.CallLog, (log) => {
      const call = scripted(log, "identity")
      const known = (id: string): Option.Option<Identity.ResolvedPrincipal> => {
        // Own entries only: "constructor" or "__proto__" is not a principal.
        const principals = options.principals
        if (principals === undefined || !Object.hasOwn(principals, id)) return Option.none()
        const p = principals[id]
        if (p === undefined) return Option.none()
        const principal: { -readonly [K in keyof Identity.ResolvedPrincipal]: Identity.ResolvedPrincipal[K] } = {
          id,
          roles: p.roles ?? [],
          status: p.status ?? "active"
        }
        if (p.tenant !== undefined) principal.tenant = p.tenant
        return Option.some(principal)
      }
      return Identity.Identity.of({
        resolve: (id) => call("resolve", id, options.resolve?.(id) ?? withLatency(known(id), options.latency)),
        canApprove: (principalId, request) =>
          call(
            "canApprove",
            principalId,
            options.canApprove?.({ principalId, request }) ??
              withLatency(options.approvers?.includes(principalId) ?? true, options.latency)
          )
      })
    })
  )

// -----------------------------------------------------------------------------
// Ticketing
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface TicketingOptions {
  readonly tickets?: Readonly<Record<string, Omit<Ticketing.Ticket, "id">>>
  readonly latency?: Duration.DurationInput
  readonly lookup?: Script<string, Option.Option<Ticketing.Ticket>>
}

/**
 * @since 0.1.0
 * @category layers
 */
export const ticketing = (options: TicketingOptions = {}): Layer.Layer<Ticketing.Ticketing, never, CallLog.CallLog> =>
  Layer.effect(
    Ticketing.Ticketing,
    Effect.map(CallLog.CallLog, (log) => {
      const call = scripted(log, "ticketing")
      return Ticketing.Ticketing.of({
        lookup: (id) => {
          const t = options.tickets?.[id]
          const found = t === undefined ? Option.none() : Option.some({ ...t, id })
          return call("lookup", id, options.lookup?.(id) ?? withLatency(found, options.latency))
        }
      })
    })
  )

// -----------------------------------------------------------------------------
// Quota
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface QuotaOptions {
  /** Limits per key; a key without a limit has none (Infinity). */
  readonly limits?: Readonly<Record<string, number>>
  readonly latency?: Duration.DurationInput
  readonly check?: Script<{ readonly key: string; readonly units: number }, Quota.Allowance>
  readonly consume?: Script<{ readonly key: string; readonly units: number; readonly idempotencyKey: string }, Quota.Allowance>
}

/**
 * An in-memory quota: usage per key, idempotent consumption.
 *
 * @since 0.1.0
 * @category layers
 */
export const quota = (options: QuotaOptions = {}): Layer.Layer<Quota.Quota, never, CallLog.CallLog> =>
  Layer.effect(
    Quota.Quota,
    Effect.map(CallLog.CallLog, (log) => {
      const call = scripted(log, "quota")
      const used = new Map<string, number>()
      const consumed = new Map<string, Quota.Allowance>()
      const allowance = (key: string, units: number): Quota.Allowance => {
        const limit = options.limits?.[key] ?? Infinity
        const remaining = limit - (used.get(key) ?? 0)
        return { allowed: units <= remaining, remaining, limit }
      }
      return Quota.Quota.of({
        check: (key, units) =>
          Effect.suspend(() =>
            call("check", key, options.check?.({ key, units }) ?? withLatency(allowance(key, units), options.latency))
          ),
        consume: (request) =>
          Effect.suspend(() => {
            const scriptedBehavior = options.consume?.(request)
            if (scriptedBehavior !== undefined) return call("consume", request.key, scriptedBehavior)
            const previous = consumed.get(request.idempotencyKey)
            const answerNow = previous ?? allowance(request.key, request.units)
            return call("consume", request.key, withLatency(answerNow, options.latency)).pipe(
              Effect.tap(() =>
                Effect.sync(() => {
                  if (previous !== undefined) return
                  consumed.set(request.idempotencyKey, answerNow)
                  if (answerNow.allowed) used.set(request.key, (used.get(request.key) ?? 0) + request.units)
                })
              )
            )
          })
      })
    })
  )

// -----------------------------------------------------------------------------
// Compliance
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface ComplianceOptions {
  readonly latency?: Duration.DurationInput
  /** Default: every action is compliant. */
  readonly verify?: Script<Action.Action, Compliance.Verdict>
}

const compliant: Compliance.Verdict = { _tag: "Compliant" }

/**
 * @since 0.1.0
 * @category layers
 */
export const compliance = (options: ComplianceOptions = {}): Layer.Layer<Compliance.Compliance, never, CallLog.CallLog> =>
  Layer.effect(
    Compliance.Compliance,
    Effect.map(CallLog.CallLog, (log) => {
      const call = scripted(log, "compliance")
      return Compliance.Compliance.of({
        verify: (action) =>
          call("verify", action.name, options.verify?.(action) ?? withLatency(compliant, options.latency))
      })
    })
  )

// -----------------------------------------------------------------------------
// all four
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly identity?: IdentityOptions
  readonly ticketing?: TicketingOptions
  readonly quota?: QuotaOptions
  readonly compliance?: ComplianceOptions
}

/**
 * All four fakes and a fresh {@link CallLog}, in one layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Identity.Identity | Ticketing.Ticketing | Quota.Quota | Compliance.Compliance | CallLog.CallLog> =>
  Layer.mergeAll(
    identity(options.identity),
    ticketing(options.ticketing),
    quota(options.quota),
    compliance(options.compliance)
  ).pipe(Layer.provideMerge(CallLog.layer))
