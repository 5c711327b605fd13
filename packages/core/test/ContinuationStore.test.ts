import { ApprovalStore, ContinuationStore } from "@gavel/core"
import { Fixtures } from "@gavel/testing"
import * as ContinuationStoreSuite from "@gavel/testing/ContinuationStoreSuite"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const Memory = Layer.effect(
  ContinuationStore.ContinuationStore,
  Effect.flatMap(ApprovalStore.ApprovalStore, ContinuationStore.makeMemory)
).pipe(Layer.provideMerge(ApprovalStore.layerMemory))

ContinuationStoreSuite.run("ContinuationStore.makeMemory", Memory)

describe("ContinuationStore.makeMemory", () => {
  // Found by the model-based test (DurableModel.test.ts): a claim that yielded
  // in the middle of its rows (as a fiber does every 2,048 steps) took again,
  // under the same fence, the rows another claim had taken meanwhile.
  it.effect("two claims at once never take the same continuation", () =>
    Effect.gen(function*() {
      const approvals = yield* ApprovalStore.ApprovalStore
      const continuations = yield* ContinuationStore.ContinuationStore
      const n = 1_500
      for (let i = 0; i < n; i++) {
        const id = `apr_${i}`
        yield* continuations.create(ContinuationStoreSuite.continuation(id))
        yield* approvals.create(Fixtures.request({ id }))
        yield* approvals.vote(id, {
          approver: "bob",
          verdict: "approve",
          note: null,
          at: new Date(Fixtures.epochMillis + 1_000)
        })
      }
      const now = new Date(Fixtures.epochMillis + 2_000)
      const [a, b] = yield* Effect.all([
        continuations.claim({ owner: "worker-a", now, limit: n }),
        continuations.claim({ owner: "worker-b", now, limit: n })
      ], { concurrency: 2 })
      const byA = new Set(a.map((c) => c.approvalId))
      expect(b.filter((c) => byA.has(c.approvalId))).toEqual([])
      expect(a.length + b.length).toBe(n)
      for (const c of [...a, ...b]) expect(c.fence).toBe(1)
    }).pipe(Effect.provide(Memory)))
})
