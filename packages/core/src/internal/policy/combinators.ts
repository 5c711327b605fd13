/**
 * The combinators of a policy tree: `all` (in sequence or concurrently),
 * `firstDenial`, `firstApplicable`, the index by action name, decision
 * policies (`narrow`), `when` and `forAction`. Synchronous children are
 * plain calls; a combinator of synchronous children is synchronous itself.
 */
import * as Effect from "effect/Effect"
import type * as Action from "../../Action.js"
import * as Decision from "../../Decision.js"
import type * as Explain from "../../Explain.js"
import type { DecisionPolicy } from "../../Policy.js"
import { defect } from "./defect.js"
import type { Context, Description, Node } from "./node.js"
import { appendTrail, makeNode, notSync, record, subContext } from "./node.js"
import { checkResult } from "./result.js"
import { tracePolicy } from "./trace.js"

const allNamed = (children: ReadonlyArray<Node>) => () => children.flatMap((c) => c.named())

/**
 * The node of a combinator over `children`: synchronous when they all are,
 * `evalSync` then serving the effectful evaluation too (`evalEffect` is only
 * called when some child is effectful).
 */
const combinator = (
  children: ReadonlyArray<Node>,
  id: string,
  describe: () => Description,
  evalSync: (ctx: Context) => Decision.Result,
  evalEffect: (ctx: Context) => Effect.Effect<Decision.Result, unknown, unknown>
): Node => {
  const isSync = children.every((c) => c.isSync)
  return makeNode({
    id,
    isSync,
    evalSync: isSync ? evalSync : notSync,
    evalEffect: isSync ? (ctx) => Effect.sync(() => evalSync(ctx)) : evalEffect,
    describe,
    named: allNamed(children)
  })
}

/**
 * Declaration order, every child runs, results joined. Effectful children are
 * awaited one after the other; synchronous ones are plain calls between them.
 *
 * @internal
 */
export const all = (children: ReadonlyArray<Node>, id: string | undefined): Node => {
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
  return combinator(
    children,
    id ?? "all",
    () => ({ op: "All", id, children: children.map((c) => c.describe()) }),
    evalSync,
    evalEffect
  )
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
  return combinator(
    children,
    id ?? "firstDenial",
    () => ({ op: "FirstDenial", id, concurrency, children: children.map((c) => c.describe()) }),
    runSync,
    evalEffect
  )
}

/**
 * Ordered rules: the first child that does not abstain decides; later
 * children do not run.
 *
 * @internal
 */
export const firstApplicable = (children: ReadonlyArray<Node>, id: string | undefined): Node => {
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
  return combinator(
    children,
    id ?? "firstApplicable",
    () => ({ op: "FirstApplicable", id, children: children.map((c) => c.describe()) }),
    evalSync,
    (ctx) => Effect.suspend(() => loop(ctx, 0))
  )
}

/**
 * `combine(children)`, evaluating for each action only the children that can
 * apply to its name: `names[i]` are the action names child `i` can apply to
 * (or `undefined` when it may apply to any). The others are provably
 * abstaining, so the outcome is `combine`'s; they are left out of the trail.
 * `name.nameOf` reads the name an action is indexed by (by default
 * `action.name`), and `name.canonical` gives the form `names` are written
 * in (rules documents: NFC, see `internal/rules/document.ts`); a name found as read
 * is not canonicalized.
 *
 * A name's combined node (its own children merged, in declaration order,
 * with the unscoped ones) is built the first time an action of that name is
 * evaluated, and kept while the kept nodes hold at most about twice as many
 * children as there are: building every name's node up front would cost
 * names × unscoped children (quadratic in a document mixing literal names
 * and globs); past the budget a node is built per evaluation, which costs no
 * more than evaluating its children.
 *
 * @internal
 */
export const indexedByName = (
  children: ReadonlyArray<Node>,
  names: ReadonlyArray<ReadonlyArray<string> | undefined>,
  combine: (children: ReadonlyArray<Node>, id: string | undefined) => Node,
  id: string | undefined,
  name?: {
    readonly nameOf: (action: Action.Action) => string | undefined
    readonly canonical: (name: string) => string
  }
): Node => {
  const nameOf = name?.nameOf ?? ((action: Action.Action) => action.name)
  const canonical = name?.canonical
  const full = combine(children, id)
  const unscoped: Array<number> = []
  const own = new Map<string, Array<number>>()
  names.forEach((of, i) => {
    if (of === undefined) return void unscoped.push(i)
    for (const name of new Set(of)) {
      const group = own.get(name)
      if (group === undefined) own.set(name, [i])
      else group.push(i)
    }
  })
  const merged = (mine: ReadonlyArray<number>): Array<Node> => {
    const out: Array<Node> = []
    let a = 0
    let b = 0
    while (a < mine.length || b < unscoped.length) {
      const next = b >= unscoped.length || (a < mine.length && mine[a]! < unscoped[b]!) ? mine[a++]! : unscoped[b++]!
      out.push(children[next]!)
    }
    return out
  }
  const rest = combine(unscoped.map((i) => children[i]!), id)
  const groups = new Map<string, Node>()
  let budget = 2 * children.length + 1024
  const pick = (ctx: Context): Node => {
    const read = nameOf(ctx.action)
    if (read === undefined) return rest
    const kept = groups.get(read)
    if (kept !== undefined) return kept
    const name = canonical === undefined ? read : canonical(read)
    if (name !== read) {
      const found = groups.get(name)
      if (found !== undefined) return found
    }
    const mine = own.get(name)
    if (mine === undefined) return rest
    const group = combine(merged(mine), id)
    const size = mine.length + unscoped.length
    if (size <= budget) {
      budget -= size
      groups.set(name, group)
    }
    return group
  }
  return makeNode({
    id: full.id,
    isSync: full.isSync,
    evalSync: full.isSync ? (ctx) => pick(ctx).evalSync(ctx) : notSync,
    evalEffect: (ctx) => pick(ctx).evalEffect(ctx),
    describe: full.describe,
    named: full.named
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
  const trace = ctx.trace
  const clock = ctx.clock ?? trace?.clock
  const mark = ctx.defects?.length ?? 0
  const start = clock?.unsafeCurrentTimeNanos()
  let value: unknown
  let narrowed: Decision.Result
  try {
    value = f({ action: ctx.action, decision, results })
    narrowed = checkResult(ctx, id, value)
  } catch (error) {
    narrowed = defect(ctx, id, "threw", error)
  }
  if (start === undefined) {
    record(ctx, id, narrowed, null)
  } else {
    const end = clock!.unsafeCurrentTimeNanos()
    record(ctx, id, narrowed, ctx.clock === undefined ? null : Number(end - start) / 1_000_000)
    if (trace !== undefined) tracePolicy(trace, id, narrowed, start, end, ctx.defects, mark)
  }
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
  const test = (ctx: Context): boolean | Decision.Deny => {
    try {
      return predicate(ctx.action) === true
    } catch (error) {
      const result = defect(ctx, self.id, "threw", error, "predicate threw")
      record(ctx, self.id, result, null)
      return result
    }
  }
  const evalSync = (ctx: Context): Decision.Result => {
    const applies = test(ctx)
    return applies === true ? self.evalSync(ctx) : applies === false ? Decision.notApplicable : applies
  }
  return makeNode({
    id: self.id,
    isSync: self.isSync,
    evalSync: self.isSync ? evalSync : notSync,
    evalEffect: (ctx) =>
      Effect.suspend(() => {
        const applies = test(ctx)
        return applies === true
          ? self.evalEffect(ctx)
          : Effect.succeed(applies === false ? Decision.notApplicable : applies)
      }),
    describe: () => ({ op: "When", child: self.describe() }),
    named: () => self.named()
  })
}

/**
 * `when` with the predicate "the action's name is one of `names`", declared
 * on the node so that combinators can index their children by name.
 *
 * @internal
 */
export const forAction = (self: Node, names: ReadonlyArray<string>): Node => {
  const only = names.length === 1 ? names[0] : undefined
  const applies = only !== undefined
    ? (ctx: Context) => ctx.action.name === only
    : (ctx: Context) => names.includes(ctx.action.name)
  return makeNode({
    id: self.id,
    isSync: self.isSync,
    evalSync: self.isSync ? (ctx) => applies(ctx) ? self.evalSync(ctx) : Decision.notApplicable : notSync,
    evalEffect: (ctx) => applies(ctx) ? self.evalEffect(ctx) : Effect.succeed(Decision.notApplicable),
    describe: () => ({ op: "ForAction", names, child: self.describe() }),
    named: () => self.named(),
    actionNames: names
  })
}

/**
 * A combinator over `children`, indexed by action name when at least two of
 * them are scoped with `forAction` (see {@link indexedByName}); otherwise the
 * plain combination.
 *
 * @internal
 */
export const indexed = (
  children: ReadonlyArray<Node>,
  combine: (children: ReadonlyArray<Node>, id: string | undefined) => Node,
  id: string | undefined
): Node => {
  let scoped = 0
  for (const child of children) if (child.actionNames !== undefined) scoped++
  return scoped < 2 ? combine(children, id) : indexedByName(children, children.map((c) => c.actionNames), combine, id)
}
