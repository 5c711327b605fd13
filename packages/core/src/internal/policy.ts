import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { pipeArguments } from "effect/Pipeable"
import type * as Action from "../Action.js"
import * as Decision from "../Decision.js"
import type * as Explain from "../Explain.js"
import type { DecisionPolicy } from "../Policy.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("@gavel/core/Policy") as never

/** @internal */
export interface Context {
  readonly action: Action.Action
  /** Where entries go; `undefined` when the caller only wants the result. */
  readonly trail: Array<Explain.Entry> | undefined
  /** Set when synchronous leaves are to be timed. */
  readonly clock: Clock.Clock | undefined
}

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

const notSync = (): never => {
  throw new Error("gavel: evalSync called on an effectful policy (a bug in @gavel/core)")
}

// -----------------------------------------------------------------------------
// leaves
// -----------------------------------------------------------------------------

/**
 * A policy that throws, dies or returns something that is not a result is a
 * bug in the host's policy. Governance fails closed on it: the evaluation
 * denies with `policy.defect` instead of letting an exception or a garbage
 * value decide.
 *
 * @internal
 */
export const defect = (policyId: string, what: string): Decision.Deny =>
  Decision.deny({
    code: "policy.defect",
    message: `Policy "${policyId}" ${what}; failing closed`,
    policyId
  })

const describeThrown = (error: unknown): string =>
  `threw ${error instanceof Error ? error.name : typeof error}`

const isStringArray = (u: unknown): boolean => Array.isArray(u) && u.every((s) => typeof s === "string")

const isAuthority = (u: unknown): boolean =>
  typeof u === "object" && u !== null &&
  isStringArray((u as Decision.Authority).roles) && isStringArray((u as Decision.Authority).principals)

const isReason = (u: unknown): boolean =>
  typeof u === "object" && u !== null &&
  typeof (u as Decision.Reason).code === "string" && typeof (u as Decision.Reason).message === "string" &&
  typeof (u as Decision.Reason).outcome === "string"

/**
 * A structural check of what a policy returned: hand-written rather than a
 * Schema validation because it runs on every applicable result of the sync
 * fast path. A result that fails it would otherwise crash the record builder
 * or produce a record that does not encode.
 */
const isWellFormed = (u: unknown): u is Decision.Decision => {
  if (typeof u !== "object" || u === null) return false
  const d = u as Decision.Decision
  if (!Array.isArray(d.reasons) || !d.reasons.every(isReason)) return false
  switch (d._tag) {
    case "Allow":
    case "Warn":
    case "Defer":
    case "Deny":
      return true
    case "Transform":
      return typeof d.action === "object" && d.action !== null && typeof d.action.name === "string"
    case "RequireAcknowledgment":
      return isAuthority(d.authority)
    case "RequireApproval": {
      const r = d.requirement as Decision.ApprovalRequirement | undefined
      return typeof r === "object" && r !== null && Number.isInteger(r.quorum) && r.quorum >= 1 &&
        isAuthority(r.authority) && typeof r.separationOfDuties === "boolean"
    }
    case "Escalate":
      return isStringArray(d.reviewPaths)
    default:
      return false
  }
}

/** @internal */
export const checkResult = (policyId: string, value: unknown): Decision.Result =>
  value === Decision.notApplicable || (value as Decision.Result | undefined)?._tag === "NotApplicable"
    ? Decision.notApplicable
    : isWellFormed(value)
    ? Decision.withPolicyId(value, policyId)
    : defect(policyId, "returned a value that is not a well-formed decision (build decisions with the Decision constructors)")

const elapsedMillis = (clock: Clock.Clock, start: bigint): number =>
  Number(clock.unsafeCurrentTimeNanos() - start) / 1_000_000

const record = (ctx: Context, policyId: string, result: Decision.Result, durationMillis: number | null): void => {
  if (ctx.trail !== undefined) ctx.trail.push({ policyId, result, durationMillis })
}

/** @internal */
export const leaf = (id: string, f: (action: Action.Action) => Decision.Result): Node => {
  const call = (action: Action.Action): Decision.Result => {
    let value: Decision.Result
    try {
      value = f(action)
    } catch (error) {
      return defect(id, describeThrown(error))
    }
    return value === Decision.notApplicable ? value : checkResult(id, value)
  }
  // Untimed entries are immutable; when the policy returns the same result
  // object as last time (NotApplicable, a constant decision) its entry is
  // reused, so abstaining costs no allocation on the hot path.
  let lastResult: Decision.Result | undefined
  let lastEntry: Explain.Entry | undefined
  const evalTimed = (ctx: Context, clock: Clock.Clock): Decision.Result => {
    const start = clock.unsafeCurrentTimeNanos()
    const result = call(ctx.action)
    record(ctx, id, result, elapsedMillis(clock, start))
    return result
  }
  // The per-policy cost of the sync fast path: kept small, with the timed
  // path out of line, so that V8 inlines it into the combinator loop.
  const evalSync = (ctx: Context): Decision.Result => {
    if (ctx.clock !== undefined) return evalTimed(ctx, ctx.clock)
    const result = call(ctx.action)
    if (ctx.trail !== undefined) {
      if (result !== lastResult) {
        lastResult = result
        lastEntry = { policyId: id, result, durationMillis: null }
      }
      ctx.trail.push(lastEntry!)
    }
    return result
  }
  const self: Node = makeNode({
    id,
    isSync: true,
    evalSync,
    evalEffect: (ctx) => Effect.sync(() => evalSync(ctx)),
    describe: () => ({ op: "Leaf", id, sync: true }),
    named: () => [self]
  })
  return self
}

/** @internal */
export const effectLeaf = (
  id: string,
  f: (action: Action.Action) => Effect.Effect<Decision.Result, unknown, unknown>
): Node => {
  const self: Node = makeNode({
    id,
    isSync: false,
    evalSync: notSync,
    evalEffect: (ctx) =>
      Effect.clockWith((clock) => {
        const start = clock.unsafeCurrentTimeNanos()
        return Effect.suspend(() => f(ctx.action)).pipe(
          Effect.map((value) => checkResult(id, value)),
          Effect.catchAllDefect((error) => Effect.succeed(defect(id, `died (${describeThrown(error)})`))),
          Effect.tap((result) => record(ctx, id, result, elapsedMillis(clock, start)))
        )
      }),
    describe: () => ({ op: "Leaf", id, sync: false }),
    named: () => [self]
  })
  return self
}

// -----------------------------------------------------------------------------
// combinators
// -----------------------------------------------------------------------------

const allNamed = (children: ReadonlyArray<Node>) => () => children.flatMap((c) => c.named())

const subContext = (ctx: Context): Context =>
  ctx.trail === undefined ? ctx : { action: ctx.action, trail: [], clock: ctx.clock }

const appendTrail = (ctx: Context, sub: Context | undefined): void => {
  if (sub !== undefined && ctx.trail !== undefined && sub.trail !== ctx.trail) {
    for (const entry of sub.trail!) ctx.trail.push(entry)
  }
}

/**
 * Declaration order, every child runs, results joined. Effectful children are
 * awaited one after the other; synchronous ones are plain calls between them.
 *
 * @internal
 */
export const all = (children: ReadonlyArray<Node>, id: string | undefined): Node => {
  const isSync = children.every((c) => c.isSync)
  const evalSync = (ctx: Context): Decision.Result => {
    let acc: Decision.Result = Decision.notApplicable
    for (let i = 0; i < children.length; i++) {
      const result = children[i]!.evalSync(ctx)
      if (result !== Decision.notApplicable) acc = Decision.combine(acc, result)
    }
    return acc
  }
  const evalEffect = (ctx: Context) =>
    Effect.suspend(() => {
      let acc: Decision.Result = Decision.notApplicable
      const loop = (i: number): Effect.Effect<Decision.Result, unknown, unknown> => {
        while (i < children.length && children[i]!.isSync) {
          acc = Decision.combine(acc, children[i]!.evalSync(ctx))
          i++
        }
        if (i === children.length) return Effect.succeed(acc)
        return Effect.flatMap(children[i]!.evalEffect(ctx), (result) => {
          acc = Decision.combine(acc, result)
          return loop(i + 1)
        })
      }
      return loop(0)
    })
  return makeNode({
    id: id ?? "all",
    isSync,
    evalSync: isSync ? evalSync : notSync,
    evalEffect: isSync ? (ctx) => Effect.sync(() => evalSync(ctx)) : evalEffect,
    describe: () => ({ op: "All", id, children: children.map((c) => c.describe()) }),
    named: allNamed(children)
  })
}

/**
 * Same outcome and trail as {@link all}; effectful children run concurrently
 * (bounded), synchronous ones first as plain calls. Results and trail entries
 * are joined in declaration order after all complete, so the record never
 * depends on completion order.
 *
 * @internal
 */
export const allConcurrent = (
  children: ReadonlyArray<Node>,
  id: string | undefined,
  concurrency: number | "unbounded"
): Node => {
  const base = all(children, id)
  if (base.isSync) {
    return makeNode({
      ...base,
      describe: () => ({ op: "AllConcurrent", id, concurrency, children: children.map((c) => c.describe()) })
    })
  }
  const evalEffect = (ctx: Context) =>
    Effect.suspend(() => {
      const subs = children.map(() => subContext(ctx))
      const results: Array<Decision.Result> = new Array(children.length)
      const effectful: Array<number> = []
      for (let i = 0; i < children.length; i++) {
        if (children[i]!.isSync) results[i] = children[i]!.evalSync(subs[i]!)
        else effectful.push(i)
      }
      return Effect.forEach(
        effectful,
        (i) => Effect.map(children[i]!.evalEffect(subs[i]!), (result) => {
          results[i] = result
        }),
        { concurrency, discard: true }
      ).pipe(Effect.map(() => {
        let acc: Decision.Result = Decision.notApplicable
        for (let i = 0; i < children.length; i++) {
          acc = Decision.combine(acc, results[i]!)
          appendTrail(ctx, subs[i])
        }
        return acc
      }))
    })
  return makeNode({
    ...base,
    evalEffect,
    describe: () => ({ op: "AllConcurrent", id, concurrency, children: children.map((c) => c.describe()) })
  })
}

class FoundDenial {
  constructor(readonly result: Decision.Result) {}
}

/**
 * Stops at the first `Deny`. Synchronous children run first, in declaration
 * order; effectful children then run concurrently (bounded by `concurrency`;
 * 1 means declaration order), and the first `Deny` interrupts the ones still
 * in flight. Because only `Deny` (the absorbing element) stops it, the outcome
 * always equals {@link all}'s; what is lost is the reasons and trail entries of
 * children that did not run.
 *
 * @internal
 */
export const firstDenial = (
  children: ReadonlyArray<Node>,
  id: string | undefined,
  concurrency: number | "unbounded"
): Node => {
  const isSync = children.every((c) => c.isSync)
  const syncChildren = children.filter((c) => c.isSync)
  const effectChildren = children.filter((c) => !c.isSync)
  const runSync = (ctx: Context): Decision.Result => {
    let acc: Decision.Result = Decision.notApplicable
    for (let i = 0; i < syncChildren.length; i++) {
      acc = Decision.combine(acc, syncChildren[i]!.evalSync(ctx))
      if (acc._tag === "Deny") return acc
    }
    return acc
  }
  const evalEffect = (ctx: Context) =>
    Effect.suspend(() => {
      const first: Decision.Result = runSync(ctx)
      if (first._tag === "Deny") return Effect.succeed<Decision.Result>(first)
      const subs = effectChildren.map(() => subContext(ctx))
      const results: Array<Decision.Result | undefined> = new Array(effectChildren.length)
      const finish = (): Decision.Result => {
        let acc: Decision.Result = first
        for (let i = 0; i < effectChildren.length; i++) {
          if (results[i] !== undefined) {
            acc = Decision.combine(acc, results[i]!)
            appendTrail(ctx, subs[i])
          }
        }
        return acc
      }
      return Effect.forEach(
        effectChildren,
        (child, i) =>
          Effect.flatMap(child.evalEffect(subs[i]!), (result) => {
            results[i] = result
            return result._tag === "Deny" ? Effect.fail(new FoundDenial(result)) : Effect.void
          }),
        { concurrency, discard: true }
      ).pipe(
        Effect.catchIf((e): e is FoundDenial => e instanceof FoundDenial, () => Effect.void),
        Effect.map(finish)
      )
    })
  return makeNode({
    id: id ?? "firstDenial",
    isSync,
    evalSync: isSync ? runSync : notSync,
    evalEffect: isSync ? (ctx) => Effect.sync(() => runSync(ctx)) : evalEffect,
    describe: () => ({ op: "FirstDenial", id, concurrency, children: children.map((c) => c.describe()) }),
    named: allNamed(children)
  })
}

/**
 * Ordered rules: the first child that does not abstain decides; later
 * children do not run.
 *
 * @internal
 */
export const firstApplicable = (children: ReadonlyArray<Node>, id: string | undefined): Node => {
  const isSync = children.every((c) => c.isSync)
  const evalSync = (ctx: Context): Decision.Result => {
    for (let i = 0; i < children.length; i++) {
      const result = children[i]!.evalSync(ctx)
      if (result._tag !== "NotApplicable") return result
    }
    return Decision.notApplicable
  }
  const loop = (ctx: Context, i: number): Effect.Effect<Decision.Result, unknown, unknown> => {
    while (i < children.length && children[i]!.isSync) {
      const result = children[i]!.evalSync(ctx)
      if (result._tag !== "NotApplicable") return Effect.succeed(result)
      i++
    }
    if (i === children.length) return Effect.succeed(Decision.notApplicable)
    return Effect.flatMap(
      children[i]!.evalEffect(ctx),
      (result) => result._tag !== "NotApplicable" ? Effect.succeed(result) : loop(ctx, i + 1)
    )
  }
  return makeNode({
    id: id ?? "firstApplicable",
    isSync,
    evalSync: isSync ? evalSync : notSync,
    evalEffect: isSync ? (ctx) => Effect.sync(() => evalSync(ctx)) : (ctx) => Effect.suspend(() => loop(ctx, 0)),
    describe: () => ({ op: "FirstApplicable", id, children: children.map((c) => c.describe()) }),
    named: allNamed(children)
  })
}

/**
 * Applies a decision policy to an applicable result and joins the two, so the
 * decision policy can tighten but never loosen. An abstaining inner policy
 * stays abstaining.
 *
 * @internal
 */
export const applyDecisionPolicy = (
  ctx: Context,
  id: string,
  f: DecisionPolicy,
  decision: Decision.Decision,
  results: ReadonlyArray<Explain.Entry>
): Decision.Result => {
  const start = ctx.clock?.unsafeCurrentTimeNanos()
  let narrowed: Decision.Result
  try {
    narrowed = checkResult(id, f({ action: ctx.action, decision, results }))
  } catch (error) {
    narrowed = defect(id, describeThrown(error))
  }
  record(ctx, id, narrowed, start === undefined ? null : elapsedMillis(ctx.clock!, start))
  return Decision.combine(decision, narrowed)
}

/** @internal */
export const narrow = (
  self: Node,
  id: string,
  f: DecisionPolicy
): Node => {
  const decide = (ctx: Context, mark: number, inner: Decision.Result): Decision.Result => {
    if (inner._tag === "NotApplicable") return inner
    const results = ctx.trail === undefined ? [] : ctx.trail.slice(mark)
    return applyDecisionPolicy(ctx, id, f, inner, results)
  }
  // Without a trail the decision policy still sees the inner results.
  const withTrail = (ctx: Context): Context => (ctx.trail === undefined ? { ...ctx, trail: [] } : ctx)
  const node: Node = makeNode({
    id,
    isSync: self.isSync,
    evalSync: self.isSync
      ? (ctx) => {
        const c = withTrail(ctx)
        const mark = c.trail!.length
        return decide(c, mark, self.evalSync(c))
      }
      : notSync,
    evalEffect: (ctx) =>
      Effect.suspend(() => {
        const c = withTrail(ctx)
        const mark = c.trail!.length
        return Effect.map(self.evalEffect(c), (inner) => decide(c, mark, inner))
      }),
    describe: () => ({ op: "Narrow", id, child: self.describe() }),
    named: () => [...self.named(), node]
  })
  return node
}

/** @internal */
export const when = (self: Node, predicate: (action: Action.Action) => boolean): Node => {
  // A throwing predicate is a defect in the host's policy: fail closed.
  const test = (action: Action.Action): boolean | Decision.Deny => {
    try {
      return predicate(action) === true
    } catch (error) {
      return defect(self.id, `predicate ${describeThrown(error)}`)
    }
  }
  const evalSync = (ctx: Context): Decision.Result => {
    const applies = test(ctx.action)
    return applies === true ? self.evalSync(ctx) : applies === false ? Decision.notApplicable : applies
  }
  return makeNode({
    id: self.id,
    isSync: self.isSync,
    evalSync: self.isSync ? evalSync : notSync,
    evalEffect: (ctx) =>
      Effect.suspend(() => {
        const applies = test(ctx.action)
        return applies === true
          ? self.evalEffect(ctx)
          : Effect.succeed(applies === false ? Decision.notApplicable : applies)
      }),
    describe: () => ({ op: "When", child: self.describe() }),
    named: () => self.named()
  })
}
