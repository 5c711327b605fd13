/**
 * The node every policy compiles to, and the context an evaluation runs in:
 * the action, the explain trail, the clock, the budget's deadline, the trace
 * and where defects and failures are reported. The other modules of
 * `internal/policy/` build on this one; it imports none of them (the
 * `Trace` type excepted).
 */
import * as Clock from "effect/Clock"
import * as EffectContext from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as MetricLabel from "effect/MetricLabel"
import { pipeArguments } from "effect/Pipeable"
import type * as Action from "../../Action.js"
import type * as Decision from "../../Decision.js"
import type * as Explain from "../../Explain.js"
import type { Defect as PolicyDefect } from "../../Policy.js"
import type { Trace } from "./trace.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("@gavel/core/Policy") as never

/** @internal */
export interface Context {
  readonly action: Action.Action
  /** Where entries go; `undefined` when the caller only wants the result. */
  readonly trail: Array<Explain.Entry> | undefined
  /** Set when synchronous leaves are to be timed. */
  readonly clock: Clock.Clock | undefined
  /** Absolute deadline (Clock millis) of the evaluation budget, if any. */
  readonly deadline: number | undefined
  /** Set when a tracer is installed: every policy then gets a span. */
  readonly trace: Trace | undefined
  /**
   * Under a `Policy.timeout`: the checks in flight, measured by the timeout
   * if it cuts them (a cut check is interrupted and cannot measure itself).
   */
  readonly running: Running | undefined
  /**
   * Where the policies that failed closed on a defect are reported, with
   * what they threw (for the host's log, never for the record);
   * `undefined` when nobody listens.
   */
  readonly defects: Array<Defect> | undefined
  /**
   * Where effectful leaves note the failures they pass on, so that one that
   * nothing handled (its type was cast away) can be traced to its policy;
   * `undefined` when nobody asks.
   */
  readonly failures: Array<Defect> | undefined
}

/**
 * A policy that failed closed on a defect: what went wrong, and what it
 * threw, died with or failed with (`undefined` for a malformed result).
 *
 * @internal
 */
export interface Defect {
  readonly policyId: string
  readonly kind: DefectKind
  readonly error: unknown
}

/** @internal */
export type DefectKind = PolicyDefect["kind"]

/**
 * What a timeout calls, with the time of the cut, for each check in flight
 * under it (a nested timeout registers its own cut).
 *
 * @internal
 */
export type Running = Set<(endNanos: bigint) => void>

/**
 * The context an evaluation starts with: no budget yet (`Policy.budget` sets
 * one), sync leaves timed only when `clock` is given, spans only when `trace`
 * is.
 *
 * @internal
 */
export const makeContext = (
  action: Action.Action,
  trail: Array<Explain.Entry> | undefined,
  clock: Clock.Clock | undefined,
  trace?: Trace | undefined,
  defects?: Array<Defect> | undefined,
  failures?: Array<Defect> | undefined
): Context => ({ action, trail, clock, deadline: undefined, trace, running: undefined, defects, failures })

/** @internal */
export type Description =
  | { readonly op: "Leaf"; readonly id: string; readonly sync: boolean }
  | {
    readonly op: "All" | "AllConcurrent" | "FirstDenial" | "FirstApplicable"
    readonly id: string | undefined
    readonly concurrency?: number | "unbounded"
    readonly children: ReadonlyArray<Description>
  }
  | { readonly op: "Narrow"; readonly id: string; readonly child: Description }
  | { readonly op: "When"; readonly child: Description }
  | { readonly op: "ForAction"; readonly names: ReadonlyArray<string>; readonly child: Description }
  | { readonly op: "Timeout" | "Budget"; readonly millis: number; readonly child: Description }
  | { readonly op: "Retry" | "FailClosed" | "OnFailure"; readonly child: Description }

/** @internal */
export interface Node {
  readonly [TypeId]: { readonly _E: (_: never) => unknown; readonly _R: (_: never) => unknown }
  readonly id: string
  readonly isSync: boolean
  /** Only called when `isSync`. */
  readonly evalSync: (ctx: Context) => Decision.Result
  readonly evalEffect: (ctx: Context) => Effect.Effect<Decision.Result, unknown, unknown>
  readonly describe: () => Description
  /** Leaves and decision policies, for id validation. */
  readonly named: () => ReadonlyArray<Node>
  /**
   * Set by `forAction`: the node abstains, leaving no trail entry, for
   * actions of any other name (so combinators may skip it for them).
   */
  readonly actionNames?: ReadonlyArray<string> | undefined
}

const variance = { _E: (_: never) => _, _R: (_: never) => _ }

const Proto = {
  [TypeId]: variance,
  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

/** @internal */
export const makeNode = (fields: Omit<Node, typeof TypeId>): Node => Object.assign(Object.create(Proto), fields)

/** @internal */
export const isNode = (u: unknown): u is Node => typeof u === "object" && u !== null && TypeId in u

/**
 * The `evalSync` of a node that is not synchronous: never called, or a bug.
 *
 * @internal
 */
export const notSync = (): never => {
  throw new Error("gavel: evalSync called on an effectful policy (a bug in @gavel/core)")
}

// -----------------------------------------------------------------------------
// the trail
// -----------------------------------------------------------------------------

/**
 * Adds the entry of `policyId` to the trail, when there is one.
 *
 * @internal
 */
export const record = (ctx: Context, policyId: string, result: Decision.Result, durationMillis: number | null): void => {
  if (ctx.trail !== undefined) ctx.trail.push({ policyId, result, durationMillis })
}

/**
 * A context writing to a trail of its own (when there is a trail at all),
 * for a child whose entries are appended later, in declaration order, or
 * not at all (a failed retry attempt).
 *
 * @internal
 */
export const subContext = (ctx: Context): Context =>
  ctx.trail === undefined
    ? ctx
    : {
      action: ctx.action,
      trail: [],
      clock: ctx.clock,
      deadline: ctx.deadline,
      trace: ctx.trace,
      running: ctx.running,
      defects: ctx.defects,
      failures: ctx.failures
    }

/**
 * Appends the entries of `sub`'s trail (see {@link subContext}) to `ctx`'s.
 *
 * @internal
 */
export const appendTrail = (ctx: Context, sub: Context | undefined): void => {
  if (sub !== undefined && ctx.trail !== undefined && sub.trail !== ctx.trail) {
    for (const entry of sub.trail!) ctx.trail.push(entry)
  }
}

// -----------------------------------------------------------------------------
// the fiber
// -----------------------------------------------------------------------------

/** @internal */
export const fiberClock = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): Clock.Clock =>
  EffectContext.get(fiber.currentDefaultServices, Clock.Clock)

/**
 * The labels of `Effect.tagMetrics`, added to a metric's own tags as `Metric.update` does.
 *
 * @internal
 */
export const fiberLabels = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): ReadonlyArray<MetricLabel.MetricLabel> =>
  fiber.getFiberRef(FiberRef.currentMetricLabels)
