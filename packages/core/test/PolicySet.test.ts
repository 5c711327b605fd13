import { Action, Decision, DecisionRecord, IdGenerator, Policy, PolicySet } from "@gavel/core"
import { Arbitraries } from "@gavel/testing"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as TestClock from "effect/TestClock"

const action = Action.make({
  actor: { id: "agent-1", kind: "agent", roles: ["operator"], tenant: "acme", attributes: { team: "payments" } },
  kind: "tool",
  name: "payments.transfer",
  resource: { type: "account", id: "acct-9" },
  payload: { amount: 12_000, card: { number: "4111111111111111" } },
  metadata: { region: "US-TX" },
  requestId: "req-1",
  correlationId: "corr-1",
  trace: { traceId: "t".repeat(32), spanId: "s".repeat(16) }
})

const set = (policy: Policy.Sync, extra?: Partial<PolicySet.Options<Policy.Sync>>) =>
  PolicySet.unsafeMake({ id: "payments", version: "1.0.0", policy, ...extra })

describe("PolicySet defaults", () => {
  it.prop(
    "an empty or all-abstaining set yields the default, Deny unless the host says otherwise",
    [fc.integer({ min: 0, max: 5 })],
    ([n]) => {
      const abstaining = Array.from({ length: n }, (_, i) => Policy.constant(`na${i}`, Decision.notApplicable))
      const record = PolicySet.evaluateSync(set(Policy.all(abstaining)), action)
      expect(record.decision._tag).toBe("Deny")
      expect(record.reasonCodes).toEqual(["policy.no_applicable"])
      expect(record.defaulted).toBe(true)
      const lenient = set(Policy.all(abstaining), { default: Decision.allow() })
      expect(PolicySet.evaluateSync(lenient, action).decision._tag).toBe("Allow")
    }
  )

  it.prop(
    "adding a policy to a set where some policy applies never loosens the decision",
    [fc.array(Arbitraries.result, { minLength: 1, maxLength: 5 }), Arbitraries.result],
    ([rs, extra]) => {
      fc.pre(rs.some(Decision.isDecision))
      const policies = rs.map((r, i) => Policy.constant(`p${i}`, r))
      const before = PolicySet.evaluateSync(set(Policy.all(policies)), action)
      const after = PolicySet.evaluateSync(set(Policy.all([...policies, Policy.constant("extra", extra)])), action)
      expect(Decision.isAtLeastAsRestrictive(after.decision, before.decision)).toBe(true)
    }
  )

  it("applies the set's decision policy after the default, and it cannot loosen", () => {
    const decisionPolicy = { id: "overlay", decide: () => Decision.allow({ code: "overlay.ok", message: "fine" }) }
    const record = PolicySet.evaluateSync(set(Policy.all([]), { decisionPolicy }), action)
    expect(record.decision._tag).toBe("Deny")
    expect(record.reasonCodes).toEqual(["policy.no_applicable", "overlay.ok"])
    expect(record.explain.map((e) => e.policyId)).toEqual(["overlay"])
  })

  it("gives the set's decision policy a snapshot of the results, not the live trail", () => {
    let seen: ReadonlyArray<unknown> = []
    const decide = (input: Policy.DecisionPolicyInput) => {
      seen = input.results
      return Decision.notApplicable
    }
    const record = PolicySet.evaluateSync(
      set(Policy.constant("w", Decision.warn({ code: "w", message: "w" })), { decisionPolicy: { id: "dp", decide } }),
      action
    )
    expect(seen.length).toBe(1)
    expect(record.explain.length).toBe(2)
  })
})

describe("DecisionRecord", () => {
  const approval = Policy.make("large-payments", (a) =>
    (a.payload as { amount: number }).amount > 10_000
      ? Decision.requireApproval(
        { code: "payment.large", message: "Payments over 10k need two approvers", evidenceRefs: ["ticket:CHG-1"] },
        { quorum: 2, roles: ["finance-approver"], timeout: "1 hour" }
      )
      : Decision.notApplicable)
  const warn = Policy.constant("cost", Decision.warn({ code: "cost.high", message: "expensive" }))
  const paymentSet = set(Policy.all([approval, warn]), {
    overridePolicy: { authority: { roles: ["ciso"], principals: [] } }
  })

  it.effect("carries every field of the contract, with time from Clock and ids from IdGenerator", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2026, 0, 2, 3, 4, 5))
      const record = yield* PolicySet.evaluate(paymentSet, action)
      expect(record).toMatchObject({
        decisionId: "dec_1",
        requestId: "req-1",
        correlationId: "corr-1",
        policyId: "payments",
        policyVersion: "1.0.0",
        scope: { kind: "tool", name: "payments.transfer", resource: { type: "account", id: "acct-9" }, tenant: "acme" },
        inputs: {
          actor: { id: "agent-1", kind: "agent", roles: ["operator"], tenant: "acme" },
          kind: "tool",
          name: "payments.transfer",
          resource: { type: "account", id: "acct-9" },
          metadata: { region: "US-TX" }
        },
        reasonCodes: ["payment.large", "cost.high"],
        requiredApprovals: 2,
        approvalAuthority: { roles: ["finance-approver"], principals: [] },
        overridePolicy: { authority: { roles: ["ciso"], principals: [] } },
        evidenceRefs: ["ticket:CHG-1"],
        redaction: { omitted: ["actor.attributes", "payload"] },
        reviewPath: [],
        trace: { traceId: "t".repeat(32), spanId: "s".repeat(16) },
        defaulted: false
      })
      expect(record.decision._tag).toBe("RequireApproval")
      expect(record.policyHash).toMatch(/^[0-9a-f]{64}$/)
      expect(record.evaluatedAt.toISOString()).toBe("2026-01-02T03:04:05.000Z")
      expect(record.expiresAt?.toISOString()).toBe("2026-01-02T04:04:05.000Z")
      expect(record.explain.map((e) => [e.policyId, e.result._tag])).toEqual([
        ["large-payments", "RequireApproval"],
        ["cost", "Warn"]
      ])
      expect(JSON.stringify(yield* DecisionRecord.encode(record))).not.toContain("4111111111111111")
    }).pipe(Effect.provide(IdGenerator.layerSequential)))

  it("defaults requestId to the decision id and correlationId to the request id", () => {
    const bare = Action.make({ actor: { id: "a", kind: "agent" }, kind: "tool", name: "t" })
    const record = PolicySet.evaluateSync(set(Policy.all([])), bare, { idGenerator: IdGenerator.sequential() })
    expect([record.decisionId, record.requestId, record.correlationId]).toEqual(["dec_1", "dec_1", "dec_1"])
    expect(record.redaction.omitted).toEqual([])
    expect(record.trace).toBeNull()
  })

  it("times every synchronous policy only when asked to", () => {
    const p = Policy.all([Policy.constant("a", Decision.allow()), Policy.constant("b", Decision.notApplicable)])
    expect(PolicySet.evaluateSync(set(p), action).explain.map((e) => e.durationMillis)).toEqual([null, null])
    const timed = PolicySet.evaluateSync(set(p, { explain: "timed" }), action).explain
    for (const entry of timed) expect(entry.durationMillis).toBeTypeOf("number")
  })

  it.effect.prop(
    "round-trips through JSON",
    [fc.array(Arbitraries.result, { maxLength: 4 }), Arbitraries.action],
    ([rs, a]) =>
      Effect.gen(function*() {
        const s = set(Policy.all(rs.map((r, i) => Policy.constant(`p${i}`, r))), { ttl: "5 minutes" })
        const record = PolicySet.evaluateSync(s, a)
        const json = JSON.parse(JSON.stringify(yield* DecisionRecord.encode(record)))
        expect(yield* DecisionRecord.decodeUnknown(json)).toEqual(record)
      })
  )

  it("exports a JSON Schema that accepts real records and rejects incomplete ones", async () => {
    const { Ajv } = await import("ajv")
    const ajv = new Ajv({ strict: false, allErrors: true })
    const validate = ajv.compile(DecisionRecord.jsonSchema)
    const record = PolicySet.evaluateSync(paymentSet, action)
    const json = JSON.parse(JSON.stringify(await Effect.runPromise(DecisionRecord.encode(record))))
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true)

    const { decisionId: _, ...missing } = json
    expect(validate(missing)).toBe(false)
    expect(JSON.stringify(validate.errors)).toContain("decisionId")
    expect(validate({ ...json, decision: { ...json.decision, _tag: "MaybeAllow" } })).toBe(false)
  })
})

describe("PolicySet.make", () => {
  const allow = Policy.constant("a", Decision.allow())

  it.effect("refuses an invalid set with a reason", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [PolicySet.Options<Policy.Sync>, PolicySet.InvalidPolicySet["reason"]]> = [
        [{ id: " ", version: "1", policy: allow }, "InvalidId"],
        [{ id: "s", version: "", policy: allow }, "InvalidVersion"],
        [{ id: "s", version: "1", policy: Policy.all([allow, Policy.constant("a", Decision.allow())]) }, "DuplicatePolicyId"],
        [{ id: "s", version: "1", policy: allow, decisionPolicy: { id: "a", decide: () => Decision.allow() } }, "DuplicatePolicyId"],
        [{ id: "s", version: "1", policy: allow, default: Decision.notApplicable as unknown as Decision.Decision }, "InvalidDefault"],
        [{ id: "s", version: "1", policy: allow, ttl: "-5 seconds" }, "InvalidTtl"],
        [{ id: "s", version: "1", policy: Policy.make("", () => Decision.allow()) }, "InvalidId"]
      ]
      for (const [options, reason] of cases) {
        const error = yield* Effect.flip(PolicySet.make(options))
        expect(error._tag).toBe("InvalidPolicySet")
        expect(error.reason).toBe(reason)
        expect(() => PolicySet.unsafeMake(options)).toThrow(error.message)
      }
    }))

  it("accepts the same policy value used twice", () => {
    expect(PolicySet.unsafeMake({ id: "s", version: "1", policy: Policy.all([allow, allow]) }).id).toBe("s")
  })

  it("gives a stable policy hash that changes with the version or the tree", () => {
    const a = set(Policy.all([allow]))
    expect(set(Policy.all([allow])).policyHash).toBe(a.policyHash)
    expect(set(Policy.all([allow]), { version: "2" }).policyHash).not.toBe(a.policyHash)
    expect(set(Policy.firstDenial([allow])).policyHash).not.toBe(a.policyHash)
    expect(set(Policy.all([allow]), { policyHash: "doc-hash" }).policyHash).toBe("doc-hash")
  })
})

describe("types", () => {
  it("only a synchronous set can be evaluated synchronously", () => {
    const external = Policy.effect("quota", () => Effect.succeed(Decision.allow())).pipe(Policy.failClosed)
    const mixed = PolicySet.unsafeMake({ id: "m", version: "1", policy: Policy.all([external, Policy.constant("c", Decision.allow())]) })
    const sync = PolicySet.unsafeMake({ id: "s", version: "1", policy: Policy.all([Policy.constant("c", Decision.allow())]) })
    expectTypeOf(sync).toEqualTypeOf<PolicySet.Sync>()
    expectTypeOf(mixed).not.toEqualTypeOf<PolicySet.Sync>()
    expect(PolicySet.evaluateSync(sync, action).decision._tag).toBe("Allow")
    // @ts-expect-error a tree with an effectful leaf has no synchronous evaluation
    expect(() => Policy.evaluateSync(Policy.all([external]), action)).toThrow()
    // Compile-time only: calling it would throw, as the line above shows.
    const typeOnly = () => {
      // @ts-expect-error a set with an effectful leaf has no synchronous evaluation
      PolicySet.evaluateSync(mixed, action)
    }
    expect(typeOnly).toBeTypeOf("function")
  })

  it("refuses, at compile time, a policy whose failures have no stated meaning", () => {
    const check = Policy.effect("quota", () => Effect.succeed(Decision.allow())).pipe(Policy.timeout("2 seconds"))
    const typeOnly = () => {
      // @ts-expect-error PolicyTimeout and PolicyCancelled are unhandled: the set cannot be built
      PolicySet.make({ id: "q", version: "1", policy: check })
      // @ts-expect-error handling only the timeout still leaves PolicyCancelled
      PolicySet.make({ id: "q", version: "1", policy: check.pipe(Policy.onFailure({ timeout: "Deny" })) })
    }
    expect(typeOnly).toBeTypeOf("function")
    const handled = check.pipe(Policy.onFailure({ timeout: "Defer", cancelled: "Deny" }))
    expectTypeOf(handled).toEqualTypeOf<Policy.Policy<never, never>>()
    const s = PolicySet.unsafeMake({ id: "q", version: "1", policy: handled })
    expectTypeOf(PolicySet.evaluate(s, action)).toEqualTypeOf<
      Effect.Effect<DecisionRecord.DecisionRecord, never, never>
    >()
  })
})

describe("IdGenerator", () => {
  it("gives process-unique ids with the requested prefix", () => {
    const ids = IdGenerator.random()
    const other = IdGenerator.random()
    const seen = new Set(Array.from({ length: 1000 }, () => ids.next("dec")))
    expect(seen.size).toBe(1000)
    for (const id of seen) expect(id).toMatch(/^dec_[0-9a-f]{16}_[0-9a-z]+$/)
    expect(ids.next("apr")).toMatch(/^apr_/)
    expect(seen.has(other.next("dec"))).toBe(false)
  })
})
