import { Decision } from "@gavel/core"
import { Arbitraries } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"

const { decision, result } = Arbitraries

const key = (r: Decision.Reason) => JSON.stringify([r.outcome, r.code, r.message, r.policyId, r.ruleId, r.evidenceRefs])
/** The result with its reasons in a canonical order: equality "up to reason order". */
const upToReasonOrder = (r: Decision.Result) =>
  r._tag === "NotApplicable" ? r : { ...r, reasons: [...r.reasons].sort((a, b) => key(a).localeCompare(key(b))) }

describe("Decision.combine", () => {
  it.prop("is associative", [result, result, result], ([a, b, c]) => {
    expect(Decision.combine(Decision.combine(a, b), c)).toEqual(Decision.combine(a, Decision.combine(b, c)))
  })

  it.prop("is commutative up to reason order", [result, result], ([a, b]) => {
    expect(upToReasonOrder(Decision.combine(a, b))).toEqual(upToReasonOrder(Decision.combine(b, a)))
  })

  it.prop("is idempotent", [result], ([a]) => {
    expect(Decision.combine(a, a)).toEqual(a)
  })

  it.prop("has NotApplicable as its identity", [result], ([a]) => {
    expect(Decision.combine(Decision.notApplicable, a)).toBe(a)
    expect(Decision.combine(a, Decision.notApplicable)).toBe(a)
  })

  it.prop("lets Deny absorb everything", [result, Arbitraries.reasonInput], ([a, r]) => {
    const deny = Decision.deny(r)
    expect(Decision.combine(deny, a)._tag).toBe("Deny")
    expect(Decision.combine(a, deny)._tag).toBe("Deny")
  })

  it.prop("returns the more restrictive tag and never loosens either side", [result, result], ([a, b]) => {
    const c = Decision.combine(a, b)
    expect(Decision.rank(c)).toBe(Math.max(Decision.rank(a), Decision.rank(b)))
    expect(Decision.isAtLeastAsRestrictive(c, a) && Decision.isAtLeastAsRestrictive(c, b)).toBe(true)
  })

  it.prop("keeps every reason of both sides, most restrictive outcome first", [decision, decision], ([a, b]) => {
    const c = Decision.combine(a, b) as Decision.Decision
    const keys = new Set(c.reasons.map(key))
    for (const r of [...a.reasons, ...b.reasons]) expect(keys.has(key(r))).toBe(true)
    expect(keys.size).toBe(c.reasons.length)
    const ranks = c.reasons.map((r) => Decision.rank({ _tag: r.outcome, reasons: [] } as unknown as Decision.Result))
    expect(ranks).toEqual([...ranks].sort((x, y) => y - x))
  })

  it("keeps warnings visible inside a denial, blocking reasons first", () => {
    const warn = Decision.warn({ code: "cost.high", message: "expensive" })
    const deny = Decision.deny({ code: "tool.blocked", message: "blocked" })
    const combined = Decision.combine(warn, deny)
    expect(combined._tag).toBe("Deny")
    expect(Decision.reasonCodes(combined)).toEqual(["tool.blocked", "cost.high"])
  })

  it("merges two approval requirements: union of approvers, larger quorum, earliest expiry", () => {
    const a = Decision.requireApproval({ code: "a", message: "a" }, {
      quorum: 1,
      roles: ["finance"],
      principals: ["carol"],
      separationOfDuties: false,
      timeout: "2 hours"
    })
    const b = Decision.requireApproval({ code: "b", message: "b" }, {
      quorum: 2,
      roles: ["security", "finance"],
      timeout: "30 minutes"
    })
    const merged = Decision.combine(a, b)
    expect(merged._tag).toBe("RequireApproval")
    if (merged._tag !== "RequireApproval") return
    expect(merged.requirement.quorum).toBe(2)
    expect(merged.requirement.authority).toEqual({ roles: ["finance", "security"], principals: ["carol"] })
    expect(merged.requirement.separationOfDuties).toBe(true)
    expect(Duration.toMillis(merged.requirement.timeout!)).toBe(30 * 60_000)
    expect(Decision.reasonCodes(merged)).toEqual(["a", "b"])
  })

  it("an approval with no timeout takes the other's", () => {
    const a = Decision.requireApproval({ code: "a", message: "a" })
    const b = Decision.requireApproval({ code: "b", message: "b" }, { timeout: "5 minutes" })
    const merged = Decision.combine(a, b)
    expect(merged._tag === "RequireApproval" && Duration.toMillis(merged.requirement.timeout!)).toBe(300_000)
  })
})

describe("Decision constructors", () => {
  it("clamps a quorum below one so that no approval passes with zero votes", () => {
    for (const quorum of [0, -3, Number.NaN, 0.5]) {
      const d = Decision.requireApproval({ code: "x", message: "x" }, { quorum })
      expect(d.requirement.quorum).toBeGreaterThanOrEqual(1)
    }
  })

  it("stamps the outcome on reasons and dedupes them", () => {
    const d = Decision.warn([{ code: "a", message: "m" }, { code: "a", message: "m" }])
    expect(d.reasons).toEqual([{ code: "a", message: "m", outcome: "Warn" }])
  })

  it("only Allow and Warn can proceed", () => {
    const proceeding = ["Allow", "Warn"]
    const all: ReadonlyArray<Decision.Result> = [
      Decision.allow(),
      Decision.warn({ code: "w", message: "" }),
      Decision.transform({ code: "t", message: "" }, {
        action: { actor: { id: "a", kind: "agent", roles: [], attributes: {} }, kind: "tool", name: "n", metadata: {} }
      }),
      Decision.requireAcknowledgment({ code: "k", message: "" }),
      Decision.requireApproval({ code: "p", message: "" }),
      Decision.defer({ code: "d", message: "" }),
      Decision.escalate({ code: "e", message: "" }),
      Decision.deny({ code: "x", message: "" }),
      Decision.notApplicable
    ]
    for (const d of all) expect(Decision.canProceed(d)).toBe(proceeding.includes(d._tag))
    expect(all.map(Decision.rank)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, -1])
  })
})
