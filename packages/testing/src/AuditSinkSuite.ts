/**
 * The conformance suite of the {@link AuditSink} port. Every sink (memory,
 * SQLite, a JSON-lines file…) runs these same tests unchanged: an empty
 * trail, sequence numbers from 1 with each event chained to the one before,
 * reading from a sequence number, concurrent appends that never share a
 * sequence number, and events that read back exactly as appended.
 *
 * The layer must build an empty sink each time it is provided: every test
 * provides it anew.
 *
 * @example
 * ```ts
 * import { AuditSink } from "@gavel/core"
 * import * as AuditSinkSuite from "@gavel/testing/AuditSinkSuite"
 *
 * AuditSinkSuite.run("AuditSink.layerMemory", AuditSink.layerMemory)
 * ```
 *
 * @since 0.1.0
 */
import { Audit, AuditSink } from "@gavel/core"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { epochMillis } from "./Fixtures.js"

// -----------------------------------------------------------------------------
// fixtures
// -----------------------------------------------------------------------------


/**
 * A valid audit entry, `approval.voted` on `apr_<n>` at `n` seconds after
 * {@link epochMillis}, with every field set; `fields` overrides any of them.
 *
 * @since 0.1.0
 * @category fixtures
 */
export const entry = (n: number, fields: Partial<Audit.Entry> = {}): Audit.Entry => ({
  type: "approval.voted",
  at: new Date(epochMillis + n * 1_000),
  decisionId: `dec_${n}`,
  approvalId: `apr_${n}`,
  requestId: `req_${n}`,
  correlationId: `corr_${n}`,
  actor: "bob",
  trace: { traceId: "t".repeat(32), spanId: "s".repeat(16) },
  data: { n, vote: { verdict: "approve", note: null } },
  ...fields
})

// -----------------------------------------------------------------------------
// suite
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Timeout of each test in milliseconds (default: vitest's). */
  readonly timeout?: number | undefined
}

/**
 * Registers the conformance suite as `describe(name, …)`. Each test provides
 * `layer` to itself, so each gets a fresh, empty sink.
 *
 * @since 0.1.0
 * @category suites
 */
export const run = <E>(name: string, layer: Layer.Layer<AuditSink.AuditSink, E>, options?: Options): void => {
  const test = <A, E2>(title: string, body: (sink: AuditSink.Service) => Effect.Effect<A, E2>) =>
    it.effect(title, () => Effect.flatMap(AuditSink.AuditSink, body).pipe(Effect.provide(layer)), options?.timeout)

  describe(name, () => {
    test("an empty trail has no head and no events", (sink) =>
      Effect.gen(function*() {
        expect(Option.isNone(yield* sink.head)).toBe(true)
        expect(yield* sink.read()).toEqual([])
        expect(yield* sink.read({ fromSequence: 1 })).toEqual([])
        expect(Audit.verify(yield* sink.read())).toEqual({ _tag: "Intact", count: 0, head: null })
      }))

    test("numbers events from 1, each chained to the one before, and moves the head", (sink) =>
      Effect.gen(function*() {
        const appended: Array<Audit.AuditEvent> = []
        for (let n = 1; n <= 5; n++) {
          const event = yield* sink.append(entry(n))
          expect(event.sequence).toBe(n)
          expect(event.previousHash).toBe(n === 1 ? Audit.genesisHash : appended[n - 2]!.hash)
          const { hash, ...unsealed } = event
          expect(hash).toBe(Audit.hashOf(unsealed))
          expect(Audit.toEntry(event)).toEqual(entry(n))
          expect(Option.getOrUndefined(yield* sink.head)).toEqual({ sequence: n, hash })
          appended.push(event)
        }
        const events = yield* sink.read()
        expect(events).toEqual(appended)
        expect(Audit.verify(events)).toEqual({
          _tag: "Intact",
          count: 5,
          head: { sequence: 5, hash: appended[4]!.hash }
        })
      }))

    test("reads from a sequence number", (sink) =>
      Effect.gen(function*() {
        const appended = yield* Effect.forEach([1, 2, 3, 4], (n) => sink.append(entry(n)))
        expect(yield* sink.read({ fromSequence: 1 })).toEqual(appended)
        expect(yield* sink.read({ fromSequence: 3 })).toEqual(appended.slice(2))
        expect(yield* sink.read({ fromSequence: 4 })).toEqual(appended.slice(3))
        expect(yield* sink.read({ fromSequence: 5 })).toEqual([])
        expect(yield* sink.read({ fromSequence: 100 })).toEqual([])
        expect(yield* sink.read({ fromSequence: 0 })).toEqual(appended)
        expect(yield* sink.read({})).toEqual(appended)
      }))

    test("50 concurrent appends get distinct sequence numbers and form one intact chain", (sink) =>
      Effect.gen(function*() {
        yield* sink.append(entry(0, { type: "decision.evaluated" }))
        const appended = yield* Effect.all(
          Array.from({ length: 50 }, (_, i) => sink.append(entry(i + 1))),
          { concurrency: "unbounded" }
        )
        expect(appended.map((e) => e.sequence).sort((a, b) => a - b)).toEqual(
          Array.from({ length: 50 }, (_, i) => i + 2)
        )
        const events = yield* sink.read()
        expect(events.map((e) => e.sequence)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1))
        // Each append returned the event that was stored under its number.
        for (const event of appended) expect(events[event.sequence - 1]).toEqual(event)
        const head = Option.getOrThrow(yield* sink.head)
        expect(head).toEqual({ sequence: 51, hash: events[50]!.hash })
        expect(Audit.verify(events, { anchor: head })).toEqual({ _tag: "Intact", count: 51, head })
      }))

    test("reads back every field as appended: dates, nulls, trace, nested data and the event id", (sink) =>
      Effect.gen(function*() {
        const full = entry(1, {
          type: "execution.failed",
          eventId: "execution.failed:apr_1",
          at: new Date(Date.UTC(2026, 1, 28, 23, 59, 59, 999)),
          data: {
            failure: "failure",
            tag: "PaymentDeclined",
            amount: 12_000.5,
            retried: false,
            nested: { list: [1, "two", null, { three: [true] }], empty: {}, none: [] },
            unicode: "Zoë — 支払い ✓"
          }
        })
        const bare = entry(2, {
          type: "evaluation.cancelled",
          decisionId: null,
          approvalId: null,
          requestId: null,
          correlationId: null,
          actor: null,
          trace: null,
          data: {}
        })
        const appended = [yield* sink.append(full), yield* sink.append(bare)]
        expect(appended.map(Audit.toEntry)).toEqual([full, bare])
        const events = yield* sink.read()
        expect(events).toEqual(appended)
        expect(events.map(Audit.toEntry)).toEqual([full, bare])
        expect(events[0]!.at).toBeInstanceOf(Date)
        expect(events[0]!.at.getTime()).toBe(full.at.getTime())
        expect(events[1]!.trace).toBeNull()
        expect(Audit.verify(events)._tag).toBe("Intact")
      }))
  })
}
