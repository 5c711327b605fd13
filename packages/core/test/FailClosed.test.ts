/**
 * Policies that are bugs fail closed: a policy that throws, dies, returns a
 * value that cannot be read (a revoked Proxy, a throwing getter) or is not a
 * decision, or fails with an error its type does not declare, denies — on the
 * sync path and the effectful one, through `Governance` too — and the host
 * learns why from the log, never from the record or the audit trail. Every
 * decision that does not proceed says why.
 */
import {
  Action,
  ApprovalStore,
  AuditSink,
  Compliance,
  Decision,
  Governance,
  IdGenerator,
  Policy,
  PolicySet
} from "@gavel/core"
import { Arbitraries, Fakes } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as TestClock from "effect/TestClock"

const action = Action.make({ actor: { id: "agent-1", kind: "agent", roles: ["operator"] }, kind: "tool", name: "search" })

const SECRET = "CANARY-d3f3c7"

// -----------------------------------------------------------------------------
// exotic values
// -----------------------------------------------------------------------------

const revoked = (): unknown => {
  const { proxy, revoke } = Proxy.revocable({ _tag: "Allow", reasons: [] }, {})
  revoke()
  return proxy
}

/** A Proxy on which every operation throws, `instanceof` included. */
const hostile = (): unknown => {
  const fail = () => {
    throw new Error(`trap ${SECRET}`)
  }
  return new Proxy({}, { get: fail, has: fail, getPrototypeOf: fail, ownKeys: fail, getOwnPropertyDescriptor: fail })
}

const throwingGetter = (field: string) => (): unknown => {
  const value: Record<string, unknown> = { _tag: "Deny", reasons: [] }
  Object.defineProperty(value, field, {
    get() {
      throw new TypeError(`${field} ${SECRET}`)
    }
  })
  return value
}

/** Values a policy may return that are not decisions a record can hold. */
const exoticValues: ReadonlyArray<readonly [string, () => unknown]> = [
  ["a revoked Proxy (a stale immer draft)", revoked],
  ["a Proxy whose every trap throws", hostile],
  ["a throwing _tag getter", throwingGetter("_tag")],
  ["a throwing reasons getter", throwingGetter("reasons")],
  ["a reason whose code getter throws", () => ({ _tag: "Allow", reasons: [throwingGetter("code")()] })],
  ["a revoked Proxy as a reason", () => ({ _tag: "Deny", reasons: [revoked()] })],
  ["a revoked Proxy as the approval requirement", () => ({ _tag: "RequireApproval", reasons: [], requirement: revoked() })],
  ["a reason with an empty code", () => ({ _tag: "Deny", reasons: [{ code: "", message: "m", outcome: "Deny" }] })],
  ["a reason with an unknown outcome", () => ({ _tag: "Allow", reasons: [{ code: "c", message: "m", outcome: "Maybe" }] })],
  ["evidence that is not strings", () => ({
    _tag: "Warn",
    reasons: [{ code: "c", message: "m", outcome: "Warn", evidenceRefs: [1] }]
  })],
  ["an approval timeout that is not a Duration", () => ({
    _tag: "RequireApproval",
    reasons: [],
    requirement: { quorum: 1, authority: { roles: [], principals: [] }, separationOfDuties: true, timeout: "1 hour" }
  })],
  ["undefined", () => undefined],
  ["a string", () => "Allow"]
]

/** Things a policy may throw, die or fail with. */
const thrownValues: ReadonlyArray<readonly [string, () => unknown]> = [
  ["an Error", () => new TypeError(`boom ${SECRET}`)],
  ["a revoked Proxy", revoked],
  ["a hostile Proxy", hostile],
  ["a string", () => `boom ${SECRET}`],
  ["undefined", () => undefined]
]

interface Exotic {
  readonly name: string
  readonly sync: (id: string) => Policy.Sync
  /** An effectful leaf that misbehaves the same way, or by dying / failing. */
  readonly effect: (id: string) => Policy.Policy<never, never>
}

const undeclared = <A>(effect: Effect.Effect<A, unknown>) => effect as Effect.Effect<A>

const exotics: ReadonlyArray<Exotic> = [
  ...exoticValues.map(([name, make]): Exotic => ({
    name: `returns ${name}`,
    sync: (id) => Policy.make(id, () => make() as Decision.Result),
    effect: (id) => Policy.effect(id, () => Effect.sync(() => make() as Decision.Result)) as Policy.Policy<never, never>
  })),
  ...thrownValues.map(([name, make]): Exotic => ({
    name: `throws ${name}`,
    sync: (id) =>
      Policy.make(id, () => {
        throw make()
      }),
    effect: (id) =>
      Policy.effect(id, () => {
        throw make()
      }) as Policy.Policy<never, never>
  })),
  ...thrownValues.map(([name, make]): Exotic => ({
    name: `dies with ${name} (effect) / throws it (sync)`,
    sync: (id) =>
      Policy.make(id, () => {
        throw make()
      }),
    effect: (id) => Policy.effect(id, () => Effect.die(make())) as Policy.Policy<never, never>
  })),
  ...thrownValues.map(([name, make]): Exotic => ({
    name: `fails with an undeclared ${name} (effect) / throws it (sync)`,
    sync: (id) =>
      Policy.make(id, () => {
        throw make()
      }),
    // The host cast the error type away: the set's `E = never` is a lie.
    effect: (id) =>
      Policy.effect(id, () => undeclared(Effect.fail(make()))) as unknown as Policy.Policy<never, never>
  }))
]

// -----------------------------------------------------------------------------
// policy trees with one exotic leaf
// -----------------------------------------------------------------------------

type Op = "all" | "allConcurrent" | "firstDenial" | "firstApplicable"

type Tree =
  | { readonly _tag: "Leaf"; readonly result: Decision.Result; readonly effectful: boolean }
  | { readonly _tag: "Node"; readonly op: Op; readonly children: ReadonlyArray<Tree> }

const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({ _tag: fc.constant("Leaf" as const), result: Arbitraries.result, effectful: fc.boolean() }),
    fc.record({
      _tag: fc.constant("Node" as const),
      op: fc.constantFrom<Op>("all", "allConcurrent", "firstDenial", "firstApplicable"),
      children: fc.array(tie("tree"), { minLength: 1, maxLength: 4 })
    })
  )
}))

const leaves = (t: Tree): number => t._tag === "Leaf" ? 1 : t.children.reduce((n, c) => n + leaves(c), 0)

const combinators: Record<Op, (ps: ReadonlyArray<Policy.Policy<any, any>>) => Policy.Policy<any, any>> = {
  all: (ps) => Policy.all(ps),
  allConcurrent: (ps) => Policy.allConcurrent(ps, { concurrency: 2 }),
  firstDenial: (ps) => Policy.firstDenial(ps),
  firstApplicable: (ps) => Policy.firstApplicable(ps)
}

/**
 * The policy of `t`, leaves named `l0`, `l1`… in order, leaf `target`
 * replaced by `replacement(id)`; other leaves effectful when `effects` and
 * the tree says so.
 */
const build = (
  t: Tree,
  target: number,
  replacement: (id: string) => Policy.Policy<any, any>,
  effects: boolean
): Policy.Policy<never, never> => {
  let next = 0
  const go = (t: Tree): Policy.Policy<any, any> => {
    if (t._tag === "Node") return combinators[t.op](t.children.map(go))
    const i = next++
    const id = `l${i}`
    if (i === target) return replacement(id)
    return effects && t.effectful ? Policy.effect(id, () => Effect.succeed(t.result)) : Policy.constant(id, t.result)
  }
  return go(t) as Policy.Policy<never, never>
}

const setOf = (policy: Policy.Policy<never, never>) => PolicySet.unsafeMake({ id: "s", version: "1", policy })
/** For trees built of synchronous leaves only. */
const syncSet = (policy: Policy.Policy<never, never>) => setOf(policy) as PolicySet.Sync

const deny = Decision.deny({ code: "policy.defect", message: "reference" })
const denyLeaf = (id: string) => Policy.constant(id, deny)

/** What the laws compare: outcome, reasons (without messages) and the explain trail. */
const summary = (record: DecisionRecord) => ({
  decision: record.decision._tag,
  reasons: record.reasons.map((r) => [r.code, r.outcome, r.policyId]),
  explain: record.explain.map((e) => [e.policyId, e.result._tag])
})

type DecisionRecord = ReturnType<typeof PolicySet.evaluateSync>

const deniedBy = (record: DecisionRecord, policyId: string, codes: ReadonlyArray<string> = ["policy.defect"]) => {
  expect(record.decision._tag).toBe("Deny")
  expect(record.reasons.some((r) => codes.includes(r.code) && r.policyId === policyId)).toBe(true)
}

const scenario = fc.record({ tree, pick: fc.nat(), exotic: fc.constantFrom(...exotics) })

describe("an exotic leaf counts as a Deny leaf", () => {
  // The law: for any tree of all / allConcurrent / firstDenial /
  // firstApplicable and any leaf, replacing that leaf by one that throws or
  // returns an exotic value gives the same outcome, reasons (up to their
  // messages) and explain trail as replacing it by a leaf that returns
  // Deny(policy.defect). So where its result counts — under all,
  // allConcurrent and firstDenial, and under firstApplicable when no earlier
  // sibling applies — the decision is Deny, and names it; where it does not
  // count (an earlier rule applied) the decision is what the others decide.
  // Evaluation never throws.
  it.prop("on the sync path: evaluateSync, Policy.evaluateSync", [scenario], ([{ exotic, pick, tree: t }]) => {
    const target = pick % leaves(t)
    const id = `l${target}`
    const actual = PolicySet.evaluateSync(syncSet(build(t, target, exotic.sync, false)), action)
    const reference = PolicySet.evaluateSync(syncSet(build(t, target, denyLeaf, false)), action)
    expect(summary(actual)).toEqual(summary(reference))
    if (actual.explain.some((e) => e.policyId === id)) deniedBy(actual, id)
    const bare = Policy.evaluateSync(build(t, target, exotic.sync, false) as Policy.Sync, action)
    expect(bare._tag).toBe(Policy.evaluateSync(build(t, target, denyLeaf, false) as Policy.Sync, action)._tag)
  })

  it.effect.prop(
    "on the effectful path: PolicySet.evaluate, with effectful leaves that die or fail undeclared",
    [scenario],
    ([{ exotic, pick, tree: t }]) =>
      Effect.gen(function*() {
        const target = pick % leaves(t)
        const id = `l${target}`
        const exit = yield* Effect.exit(PolicySet.evaluate(setOf(build(t, target, exotic.effect, true)), action))
        // Never a failure or a defect of the evaluation.
        if (!Exit.isSuccess(exit)) expect.fail(`evaluate did not succeed: ${String(exit.cause)}`)
        const actual = exit.value
        const reference = yield* PolicySet.evaluate(
          setOf(build(t, target, (i) => Policy.effect(i, () => Effect.succeed(deny)), true)),
          action
        )
        // An undeclared failure ends the whole evaluation (reasons of the
        // others are lost), so only the outcome is compared: it is the same.
        expect(actual.decision._tag).toBe(reference.decision._tag)
        if (actual.explain.some((e) => e.policyId === id)) deniedBy(actual, id, ["policy.defect", "policy.failed"])
        const sync = PolicySet.evaluateSync(syncSet(build(t, target, exotic.sync, false)), action)
        expect(summary(yield* PolicySet.evaluate(setOf(build(t, target, exotic.sync, false)), action))).toEqual(
          summary(sync)
        )
      }),
    { fastCheck: { numRuns: 50 } }
  )
})

describe("exotic results, one by one", () => {
  for (const exotic of exotics) {
    it.effect(`${exotic.name}: Deny with policy.defect or policy.failed, naming the policy, on both paths`, () =>
      Effect.gen(function*() {
        const sync = PolicySet.evaluateSync(syncSet(exotic.sync("p")), action)
        deniedBy(sync, "p")
        expect(sync.reasonCodes).toHaveLength(1)
        const effectful = yield* PolicySet.evaluate(setOf(exotic.effect("p")), action)
        deniedBy(effectful, "p", ["policy.defect", "policy.failed"])
        expect(effectful.reasonCodes).toHaveLength(1)
        // The record holds no trace of what was thrown, and encodes.
        expect(JSON.stringify([sync, effectful])).not.toContain(SECRET)
      }))
  }

  it("reads a result once: a getter cannot answer one thing to the check and another to the record", () => {
    let reads = 0
    const shifty = {
      get _tag() {
        return ++reads === 1 ? "Allow" : "Deny"
      },
      reasons: []
    }
    const record = PolicySet.evaluateSync(syncSet(Policy.make("shifty", () => shifty as unknown as Decision.Result)), action)
    expect(record.decision).toEqual({ _tag: "Allow", reasons: [] })
    expect(record.decision._tag).toBe("Allow")
    expect(reads).toBe(1)
  })

  it.effect("an undeclared failure is policy.failed under the failing policy's id, inside a tree", () =>
    Effect.gen(function*() {
      const failing = Policy.effect("crm.lookup", () => undeclared(Effect.fail(new Error(SECRET))))
      const set = setOf(
        Policy.all([Policy.constant("ok", Decision.allow()), failing]) as unknown as Policy.Policy<never, never>
      )
      const record = yield* PolicySet.evaluate(set, action)
      expect(record.decision._tag).toBe("Deny")
      expect(record.reasons.map((r) => [r.code, r.policyId])).toEqual([["policy.failed", "crm.lookup"]])
      expect(record.explain.map((e) => e.policyId)).toContain("crm.lookup")
    }))

  it.effect("caller cancellation stays interruption: no decision, even with the error type cast away", () =>
    Effect.gen(function*() {
      const slow = Policy.effect("slow", () => Effect.as(Effect.sleep("1 minute"), Decision.allow()))
      let decided = false
      const fiber = yield* Effect.fork(
        PolicySet.evaluate(setOf(slow as unknown as Policy.Policy<never, never>), action).pipe(
          Effect.tap(() => {
            decided = true
          })
        )
      )
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(decided).toBe(false)
    }))
})

// -----------------------------------------------------------------------------
// every blocking decision says why
// -----------------------------------------------------------------------------

describe("every decision that does not proceed carries a reason code", () => {
  it.prop(
    "for any tree of policies, including ones that return reasonless decisions",
    [tree],
    ([t]) => {
      const record = PolicySet.evaluateSync(syncSet(build(t, -1, denyLeaf, false)), action)
      if (!Decision.canProceed(record.decision)) expect(record.reasonCodes.length).toBeGreaterThan(0)
    }
  )

  it("a reasonless blocking decision gets policy.no_reason, naming the policy; Allow and Warn need none", () => {
    const blocking = [
      Decision.deny([]),
      Decision.defer([]),
      Decision.escalate([]),
      Decision.requireApproval([]),
      Decision.requireAcknowledgment([]),
      Decision.transform([], { action })
    ]
    for (const decision of blocking) {
      const result = Policy.evaluateSync(Policy.constant("quiet", decision), action)
      expect(result._tag).toBe(decision._tag)
      expect(result._tag !== "NotApplicable" && result.reasons).toEqual([{
        code: "policy.no_reason",
        message: `Policy "quiet" returned ${decision._tag} without a reason`,
        outcome: decision._tag,
        policyId: "quiet"
      }])
    }
    expect(Policy.evaluateSync(Policy.constant("a", Decision.allow()), action)).toEqual(Decision.allow())
    expect(Policy.evaluateSync(Policy.constant("w", Decision.warn([])), action)).toEqual(Decision.warn([]))
  })

  it.effect("so do decision policies and failure handlers", () =>
    Effect.gen(function*() {
      const narrowed = Policy.constant("a", Decision.allow()).pipe(Policy.narrow("overlay", () => Decision.escalate([])))
      expect(Decision.reasonCodes(Policy.evaluateSync(narrowed, action))).toEqual(["policy.no_reason"])
      const handled = Policy.effect("f", () => Effect.fail("outage" as const)).pipe(
        Policy.onFailure({}),
        Policy.failClosed
      )
      expect(Decision.reasonCodes(yield* Policy.evaluate(handled, action))).toEqual(["policy.failed"])
      const quiet = Policy.effect("t", () => Effect.never).pipe(
        Policy.timeout("1 second"),
        Policy.onFailure({ timeout: () => Decision.defer([]) })
      )
      const fiber = yield* Effect.fork(Policy.evaluate(quiet, action))
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      expect(result._tag).toBe("Defer")
      expect(result._tag !== "NotApplicable" && result.reasons.map((r) => [r.code, r.policyId])).toEqual([[
        "policy.no_reason",
        "t"
      ]])
    }))

  it("a policy set refuses a default that blocks without a reason, or is not a decision", () => {
    for (const value of [Decision.deny([]), Decision.escalate([]), { _tag: "Deny" }, revoked()]) {
      const result = Effect.runSync(Effect.either(
        PolicySet.make({ id: "s", version: "1", policy: denyLeaf("p"), default: value as Decision.Decision })
      ))
      expect(result._tag === "Left" && result.left.reason).toBe("InvalidDefault")
    }
    expect(PolicySet.unsafeMake({ id: "s", version: "1", policy: denyLeaf("p"), default: Decision.allow() }).default)
      .toEqual(Decision.allow())
  })

  it.effect("Compliance: a NonCompliant verdict without violations still denies, with compliance.non_compliant", () =>
    Effect.gen(function*() {
      for (const onViolation of ["Deny", "Escalate"] as const) {
        const policy = Compliance.requireCompliant({ onViolation }).pipe(Policy.failClosed)
        const result = yield* Policy.evaluate(policy, action)
        expect(result._tag).toBe(onViolation)
        expect(Decision.reasonCodes(result)).toEqual(["compliance.non_compliant"])
      }
    }).pipe(Effect.provide(Fakes.layer({
      compliance: { verify: () => Fakes.answer({ _tag: "NonCompliant", violations: [] } as unknown as Compliance.Verdict) }
    }))))
})

// -----------------------------------------------------------------------------
// what the host sees
// -----------------------------------------------------------------------------

interface Logged {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** Runs `effect` with a logger that keeps what it is given. */
const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const logs: Array<Logged> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      logs.push({
        level: logLevel.label,
        message: (Array.isArray(message) ? message : [message]).map(String).join(" "),
        annotations: Object.fromEntries(annotations)
      })
    })
    const value = yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return { logs, value }
  })

const throwing = Policy.make("tools.check", () => {
  throw new TypeError(`Cannot read properties of undefined (reading '${SECRET}')`)
})

describe("the host finds out why", () => {
  it.effect("PolicySet.evaluate logs the policy, the error's name, message and stack at error level", () =>
    Effect.gen(function*() {
      const { logs, value: record } = yield* withLogs(PolicySet.evaluate(setOf(throwing), action))
      expect(record.reasonCodes).toEqual(["policy.defect"])
      expect(JSON.stringify(record)).not.toContain(SECRET)
      expect(logs).toHaveLength(1)
      const [log] = logs
      expect(log!.level).toBe("ERROR")
      expect(log!.message).toContain(`policy "tools.check" threw (TypeError: Cannot read properties`)
      expect(log!.message).toContain(SECRET)
      expect(log!.annotations).toMatchObject({
        "gavel.policy.id": "tools.check",
        "gavel.policy.defect": "threw",
        "gavel.reason_code": "policy.defect",
        "gavel.error.name": "TypeError",
        "gavel.error.message": `Cannot read properties of undefined (reading '${SECRET}')`
      })
      expect(String(log!.annotations["gavel.error.stack"])).toContain("FailClosed.test.ts")
    }))

  it.effect("so do Policy.evaluate, and an undeclared failure (policy.failed); a clean evaluation logs nothing", () =>
    Effect.gen(function*() {
      const bare = yield* withLogs(Policy.evaluate(throwing, action))
      expect(bare.logs.map((l) => l.annotations["gavel.policy.id"])).toEqual(["tools.check"])
      const failing = Policy.effect("crm", () => undeclared(Effect.fail({ _tag: "CrmDown", message: SECRET })))
      const failed = yield* withLogs(PolicySet.evaluate(setOf(failing as unknown as Policy.Policy<never, never>), action))
      expect(failed.value.reasonCodes).toEqual(["policy.failed"])
      expect(failed.logs.map((l) => l.annotations)).toMatchObject([{
        "gavel.policy.id": "crm",
        "gavel.policy.defect": "failed",
        "gavel.reason_code": "policy.failed",
        "gavel.error.name": "CrmDown",
        "gavel.error.message": SECRET
      }])
      const clean = yield* withLogs(PolicySet.evaluate(setOf(denyLeaf("p")), action))
      expect(clean.logs).toEqual([])
    }))

  it("evaluateSync reports to the host's onDefect hook, after the record is built; a throwing hook is ignored", () => {
    const seen: Array<Policy.Defect> = []
    const record = PolicySet.evaluateSync(syncSet(Policy.all([throwing, Policy.make("garbage", () => revoked() as never)])), action, {
      onDefect: (defect) => seen.push(defect)
    })
    expect(record.reasonCodes).toEqual(["policy.defect", "policy.defect"])
    expect(seen.map(({ kind, message, name, policyId }) => ({ policyId, kind, name, message }))).toEqual([
      {
        policyId: "tools.check",
        kind: "threw",
        name: "TypeError",
        message: `Cannot read properties of undefined (reading '${SECRET}')`
      },
      { policyId: "garbage", kind: "unreadable", name: "TypeError", message: expect.stringContaining("revoked") }
    ])
    expect(seen[0]!.error).toBeInstanceOf(TypeError)
    const again = PolicySet.evaluateSync(syncSet(throwing), action, {
      onDefect: () => {
        throw new Error("hook")
      }
    })
    expect(again.reasonCodes).toEqual(["policy.defect"])
  })

  it.effect("Governance.submit of a defective policy: a Deny record with policy.defect, audited, and a log line", () =>
    Effect.gen(function*() {
      const { logs, value } = yield* withLogs(Effect.gen(function*() {
        const governance = yield* Governance.Governance
        const submission = yield* governance.submit(action)
        const events = yield* Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read())
        return { submission, events }
      }))
      const { events, submission } = value
      expect(submission._tag).toBe("Decided")
      expect(submission.record.decision._tag).toBe("Deny")
      expect(submission.record.reasons.map((r) => [r.code, r.policyId])).toEqual([["policy.defect", "tools.check"]])
      const evaluated = events.filter((e) => e.type === "decision.evaluated")
      expect(evaluated).toHaveLength(1)
      expect(evaluated[0]!.decisionId).toBe(submission.record.decisionId)
      expect(JSON.stringify(evaluated[0]!.data)).toContain("policy.defect")
      expect(JSON.stringify([events, submission])).not.toContain(SECRET)
      expect(logs.filter((l) => l.level === "ERROR").map((l) => l.annotations["gavel.error.message"])).toEqual([
        `Cannot read properties of undefined (reading '${SECRET}')`
      ])
    }).pipe(Effect.provide(
      Governance.layer({ policySet: setOf(throwing), sweepInterval: "1 minute" }).pipe(
        Layer.provideMerge(ApprovalStore.layerMemory),
        Layer.provideMerge(AuditSink.layerMemory),
        Layer.provideMerge(IdGenerator.layerSequential),
        Layer.provideMerge(Fakes.layer({}))
      )
    )))
})
