import { Action, ApprovalStore, AuditSink, Decision, Governance, Metrics, Policy, PolicyError, PolicySet } from "@gavel/core"
import { Approvals, Fakes } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"

const action = Action.make({
  actor: { id: "agent-1", kind: "agent", roles: ["operator"] },
  kind: "tool",
  name: "deploy",
  metadata: { ticket: "CHG-1" }
})

/**
 * Runs `f` with the real OpenTelemetry SDK installed through
 * `@effect/opentelemetry`, exporting to an in-memory exporter of its own
 * (a provider shut down at the end of a test stops its exporter).
 */
const withOtel = <A, E, R>(f: (exporter: InMemorySpanExporter) => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const exporter = new InMemorySpanExporter()
    return f(exporter).pipe(
      Effect.provide(NodeSdk.layer(() => ({
        resource: { serviceName: "gavel-test" },
        spanProcessor: new SimpleSpanProcessor(exporter)
      })))
    )
  })

/** Forks `effect`, advances virtual time, and joins it. */
const runFor = <A, E, R>(effect: Effect.Effect<A, E, R>, total: Duration.DurationInput = "1 hour") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(total)
    return yield* Fiber.join(fiber)
  })

const slow = (id: string, ms: number, result: Decision.Result = Decision.allow()) =>
  Policy.effect(id, () => Effect.as(Effect.sleep(ms), result))

const byName = (exporter: InMemorySpanExporter, name: string) =>
  exporter.getFinishedSpans().filter((s) => s.name === name)

const policySpan = (exporter: InMemorySpanExporter, id: string): ReadableSpan => {
  const spans = byName(exporter, "gavel.policy").filter((s) => s.attributes["gavel.policy.id"] === id)
  expect(spans, `one gavel.policy span for "${id}"`).toHaveLength(1)
  return spans[0]!
}

/** Milliseconds of an OpenTelemetry time ([seconds, nanoseconds]). */
const millis = ([seconds, nanos]: readonly [number, number]) => seconds * 1000 + nanos / 1e6

/**
 * `@effect/opentelemetry` writes an attribute that is not a string, number
 * or boolean as its JSON text; the reason codes are a string array.
 */
const codes = (span: ReadableSpan, key: string): unknown => {
  const value = span.attributes[key]
  return typeof value === "string" ? JSON.parse(value) : value
}

describe("spans", () => {
  it.effect("an evaluation is a gavel.evaluate span with one gavel.policy child per explain entry", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const set = PolicySet.unsafeMake({
          id: "tracing.set",
          version: "7",
          policy: Policy.all([
            Policy.constant("t.allow", Decision.allow({ code: "role.ok", message: "operator" })),
            Policy.constant("t.abstain", Decision.notApplicable),
            slow("t.check", 20, Decision.warn({ code: "ticket.late", message: "late" }))
          ]).pipe(
            Policy.narrow("t.narrow", () => Decision.notApplicable),
            Policy.failClosed
          ),
          decisionPolicy: {
            id: "t.backbone",
            decide: () => Decision.requireAcknowledgment({ code: "backbone.ack", message: "ack" })
          }
        })
        const record = yield* runFor(PolicySet.evaluate(set, action))
        expect(record.decision._tag).toBe("RequireAcknowledgment")

        const [evaluate, ...more] = byName(exporter, "gavel.evaluate")
        expect(more).toHaveLength(0)
        expect(evaluate!.attributes).toMatchObject({
          "gavel.policy_set.id": "tracing.set",
          "gavel.policy_set.version": "7",
          "gavel.decision": "RequireAcknowledgment",
          "gavel.decision_id": record.decisionId
        })
        expect(codes(evaluate!, "gavel.reason_codes")).toEqual(record.reasonCodes)

        const children = byName(exporter, "gavel.policy")
        expect(children.map((s) => s.attributes["gavel.policy.id"]).sort()).toEqual(
          record.explain.map((e) => e.policyId).sort()
        )
        for (const entry of record.explain) {
          const span = policySpan(exporter, entry.policyId)
          expect(span.parentSpanContext?.spanId).toBe(evaluate!.spanContext().spanId)
          expect(span.spanContext().traceId).toBe(evaluate!.spanContext().traceId)
          expect(span.attributes["gavel.policy.result"]).toBe(entry.result._tag)
          expect(codes(span, "gavel.policy.reason_codes")).toEqual(Decision.reasonCodes(entry.result))
        }
        // The effectful check's span covers its 20 virtual milliseconds.
        const check = policySpan(exporter, "t.check")
        expect(millis(check.endTime) - millis(check.startTime)).toBe(20)
        expect(millis(evaluate!.endTime)).toBe(20)
      })
    ))

  it.effect("spans a check makes are children of its gavel.policy span", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const set = PolicySet.unsafeMake({
          id: "s",
          version: "1",
          policy: Policy.effect("t.http", () =>
            Effect.as(Effect.withSpan(Effect.void, "http.get"), Decision.allow())).pipe(Policy.failClosed)
        })
        yield* PolicySet.evaluate(set, action)
        const [http] = byName(exporter, "http.get")
        expect(http!.parentSpanContext?.spanId).toBe(policySpan(exporter, "t.http").spanContext().spanId)
      })
    ))

  it.effect("concurrent checks have overlapping spans; sequential ones do not", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const checks = [slow("c.a", 20), slow("c.b", 30)] as const
        yield* runFor(PolicySet.evaluate(
          PolicySet.unsafeMake({ id: "s", version: "1", policy: Policy.allConcurrent(checks).pipe(Policy.failClosed) }),
          action
        ))
        const a = policySpan(exporter, "c.a")
        const b = policySpan(exporter, "c.b")
        expect([millis(a.startTime), millis(a.endTime)]).toEqual([0, 20])
        expect([millis(b.startTime), millis(b.endTime)]).toEqual([0, 30])

        exporter.reset()
        const start = yield* Clock.currentTimeMillis
        yield* runFor(PolicySet.evaluate(
          PolicySet.unsafeMake({ id: "s", version: "1", policy: Policy.all(checks).pipe(Policy.failClosed) }),
          action
        ))
        const a2 = policySpan(exporter, "c.a")
        const b2 = policySpan(exporter, "c.b")
        expect([millis(a2.startTime), millis(a2.endTime)].map((t) => t - start)).toEqual([0, 20])
        expect([millis(b2.startTime), millis(b2.endTime)].map((t) => t - start)).toEqual([20, 50])
      })
    ))

  it.effect("a timed-out check's span ends at the timeout, failed, with the result it was given", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const set = PolicySet.unsafeMake({
          id: "s",
          version: "1",
          policy: Policy.all([
            slow("to.own", 5_000).pipe(Policy.timeout("100 millis"), Policy.failClosed),
            Policy.all([slow("to.budget", 5_000)]).pipe(Policy.budget("300 millis"), Policy.failClosed)
          ])
        })
        const record = yield* runFor(PolicySet.evaluate(set, action))
        expect(record.reasonCodes).toEqual(["policy.timeout", "policy.timeout"])
        for (const [id, end] of [["to.own", 100], ["to.budget", 400]] as const) {
          const span = policySpan(exporter, id)
          expect(millis(span.endTime)).toBe(end)
          expect(span.status.code).toBe(2) // SpanStatusCode.ERROR
          expect(span.attributes).toMatchObject({
            "gavel.policy.result": "Deny",
            "gavel.policy.failure": "timeout"
          })
          expect(codes(span, "gavel.policy.reason_codes")).toEqual(["policy.timeout"])
        }
      })
    ))

  it.effect("a check interrupted by firstDenial ends its span as interrupted", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const set = PolicySet.unsafeMake({
          id: "s",
          version: "1",
          policy: Policy.firstDenial([
            slow("fd.deny", 10, Decision.deny({ code: "nope", message: "no" })),
            slow("fd.slow", 5_000)
          ]).pipe(Policy.failClosed)
        })
        yield* runFor(PolicySet.evaluate(set, action))
        const span = policySpan(exporter, "fd.slow")
        expect(millis(span.endTime)).toBe(10)
        expect(span.attributes["status.interrupted"]).toBe(true)
        expect(span.attributes["gavel.policy.failure"]).toBe("interrupted")
      })
    ))

  it.effect("caller cancellation still ends the spans of the checks in flight", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const set = PolicySet.unsafeMake({
          id: "s",
          version: "1",
          policy: Policy.allConcurrent([slow("cc.a", 5_000), slow("cc.b", 5_000)]).pipe(Policy.failClosed)
        })
        const fiber = yield* Effect.fork(PolicySet.evaluate(set, action))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(fiber)
        expect(byName(exporter, "gavel.evaluate")).toHaveLength(1)
        for (const id of ["cc.a", "cc.b"]) {
          const span = policySpan(exporter, id)
          expect(millis(span.endTime)).toBe(1000)
          expect(span.attributes["status.interrupted"]).toBe(true)
        }
      })
    ))

  it.effect("retried attempts are spans of their own; only the last one carries the result", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        let calls = 0
        const flaky = Policy.effect("r.flaky", () =>
          ++calls < 3
            ? Effect.fail(new PolicyError.ExternalCheckFailed({ system: "x", operation: "y", detail: "503" }))
            : Effect.succeed(Decision.allow()))
        const set = PolicySet.unsafeMake({
          id: "s",
          version: "1",
          policy: flaky.pipe(Policy.retry(Schedule.recurs(2)), Policy.failClosed)
        })
        const record = yield* PolicySet.evaluate(set, action)
        expect(record.decision._tag).toBe("Allow")
        const spans = byName(exporter, "gavel.policy")
        expect(spans.map((s) => [s.attributes["gavel.policy.failure"] ?? "none", s.status.code]).sort()).toEqual([
          ["none", 1],
          ["unavailable", 2],
          ["unavailable", 2]
        ])
        expect(spans.filter((s) => s.attributes["gavel.policy.result"] !== undefined)).toHaveLength(1)
      })
    ))

  it.effect("no span is made when tracing is disabled", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const set = PolicySet.unsafeMake({ id: "s", version: "1", policy: Policy.constant("a", Decision.allow()) })
        yield* PolicySet.evaluate(set, action).pipe(Effect.withTracerEnabled(false))
        expect(exporter.getFinishedSpans()).toHaveLength(0)
      })
    ))
})

describe("trace context in records", () => {
  const set = PolicySet.unsafeMake({ id: "s", version: "1", policy: Policy.constant("a", Decision.allow()) })

  it.effect("is the caller's span when the caller runs inside a span", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const [request, record] = yield* Effect.zip(Effect.currentSpan, PolicySet.evaluate(set, action)).pipe(
          Effect.withSpan("request")
        )
        expect(record.trace).toEqual({ traceId: request.traceId, spanId: request.spanId })
        const [evaluate] = byName(exporter, "gavel.evaluate")
        expect(evaluate!.parentSpanContext?.spanId).toBe(request.spanId)
        expect(evaluate!.spanContext().traceId).toBe(request.traceId)
      })
    ))

  it.effect("is the external parent span (a trace continued from elsewhere)", () =>
    Effect.gen(function*() {
      const parent = Tracer.externalSpan({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" })
      const record = yield* PolicySet.evaluate(set, action).pipe(Effect.withParentSpan(parent))
      expect(record.trace).toEqual({ traceId: parent.traceId, spanId: parent.spanId })
    }))

  it.effect("is the action's own trace when the host set it", () =>
    Effect.gen(function*() {
      const trace = { traceId: "host-trace", spanId: "host-span" }
      const record = yield* PolicySet.evaluate(set, Action.make({ ...action, trace })).pipe(Effect.withSpan("request"))
      expect(record.trace).toEqual(trace)
    }))

  it.effect("is the caller's span with Effect's built-in tracer too, and null without a span", () =>
    Effect.gen(function*() {
      const [request, record] = yield* Effect.zip(Effect.currentSpan, PolicySet.evaluate(set, action)).pipe(
        Effect.withSpan("request")
      )
      expect(record.trace).toEqual({ traceId: request.traceId, spanId: request.spanId })
      expect((yield* PolicySet.evaluate(set, action)).trace).toBeNull()
      expect(PolicySet.evaluateSync(set, action).trace).toBeNull()
    }))

  it.effect("ignores a span made with tracing disabled", () =>
    Effect.gen(function*() {
      const record = yield* PolicySet.evaluate(set, action).pipe(
        Effect.withSpan("request"),
        Effect.withTracerEnabled(false)
      )
      expect(record.trace).toBeNull()
      expect(Option.isNone(yield* Effect.option(Effect.currentSpan))).toBe(true)
    }))
})

describe("no values in spans", () => {
  const canary = "CANARY-7f3a9c"

  it.effect("payload, metadata, actor attributes, secrets and reason messages never reach an exported span", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const leaky = Action.make({
          actor: { id: "agent-1", kind: "agent", roles: ["operator"], attributes: { email: `${canary}@x` } },
          kind: "tool",
          name: "deploy",
          payload: { note: canary, secret: Redacted.make(canary), nested: [{ deep: canary }] },
          metadata: { ticket: canary }
        })
        let retried = 0
        const quote = (a: Action.Action) =>
          `${JSON.stringify(a.payload)} ${String(a.metadata.ticket)} ${JSON.stringify(a.actor.attributes)}`
        const set = PolicySet.unsafeMake({
          id: "canary",
          version: "1",
          policy: Policy.all([
            Policy.make("c.sync", (a) => Decision.warn({ code: "c.sync", message: quote(a) })),
            Policy.effect("c.effect", (a) => Effect.succeed(Decision.warn({ code: "c.effect", message: quote(a) }))),
            Policy.effect("c.unavailable", (a) =>
              Effect.fail(
                new PolicyError.ExternalCheckFailed({
                  system: "crm",
                  operation: "lookup",
                  detail: quote(a),
                  cause: new Error(quote(a))
                })
              )).pipe(Policy.failClosed),
            Policy.effect("c.host-error", (a) => Effect.fail({ _tag: "HostError", message: quote(a) })).pipe(
              Policy.failClosed
            ),
            Policy.effect("c.dies", (a) => Effect.die(new Error(quote(a)))),
            // A failed attempt no handler claims: its span ends as it stood.
            Policy.effect("c.retried", (a) =>
              ++retried === 1
                ? Effect.fail(new PolicyError.ExternalCheckFailed({ system: "crm", operation: "get", detail: quote(a) }))
                : Effect.succeed(Decision.allow())).pipe(Policy.retry(Schedule.recurs(1)), Policy.failClosed),
            Policy.effect("c.timeout", (a) => Effect.never.pipe(Effect.annotateLogs("seen", quote(a)))).pipe(
              Policy.timeout("1 second"),
              Policy.onFailure({ timeout: (e) => Decision.defer({ code: "c.timeout", message: `${e.message} ${canary}` }) })
            )
          ]).pipe(
            Policy.narrow("c.narrow", ({ action: a }) => Decision.warn({ code: "c.narrow", message: quote(a) })),
            Policy.failClosed
          ),
          decisionPolicy: { id: "c.backbone", decide: ({ action: a }) => Decision.warn({ code: "c.b", message: quote(a) }) }
        })
        const record = yield* runFor(PolicySet.evaluate(set, leaky).pipe(Effect.withSpan("request")))
        // The record does quote them (it is the host's), so the test can fail.
        expect(record.reasons.some((r) => r.message.includes(canary))).toBe(true)

        const spans = exporter.getFinishedSpans()
        expect(new Set(byName(exporter, "gavel.policy").map((s) => s.attributes["gavel.policy.id"]))).toEqual(
          new Set(record.explain.map((e) => e.policyId))
        )
        expect(retried).toBe(2)
        // The one exception: a policy that fails closed on a bug (c.dies) is
        // reported with what it threw, for the host to fix it — as an
        // exception event on its span and as a log line (which Effect's
        // tracer also records as an event of the current span).
        const isDefectReport = (event: ReadableSpan["events"][number]) =>
          event.attributes?.["gavel.policy.defect"] !== undefined
        const reports = spans.flatMap((span) => span.events.filter(isDefectReport))
        expect(reports.length).toBeGreaterThan(0)
        for (const report of reports) expect(report.attributes?.["gavel.policy.id"]).toBe("c.dies")
        for (const span of spans) {
          const exported = JSON.stringify({
            name: span.name,
            attributes: span.attributes,
            events: span.events.filter((event) => !isDefectReport(event)),
            status: span.status,
            links: span.links
          })
          expect(exported).not.toContain(canary)
        }
        // The failures did reach the spans, as kinds.
        expect(policySpan(exporter, "c.unavailable").events.map((e) => e.name)).toEqual(["exception"])
        expect(policySpan(exporter, "c.unavailable").status.message).toBe(`Policy "c.unavailable" failed: unavailable`)
      })
    ))

  it.effect("a policy that fails closed on a bug is an exception event on its span: how, and what it threw", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const set = PolicySet.unsafeMake({
          id: "defects",
          version: "1",
          policy: Policy.all([
            Policy.make("d.throws", () => {
              throw new TypeError("amount is undefined")
            }),
            Policy.effect("d.dies", () => Effect.die(new RangeError("too deep"))),
            Policy.make("d.garbage", () => undefined as unknown as Decision.Result),
            Policy.effect("d.undeclared", () => Effect.fail({ _tag: "CrmDown", message: "crm is down" }))
          ]) as unknown as Policy.Policy<never, never>
        })
        const record = yield* PolicySet.evaluate(set, action)
        expect(record.reasonCodes).toEqual(["policy.failed"])
        // (A failed check's span also ends with Effect's own exception event, as before.)
        const events = (id: string) =>
          policySpan(exporter, id).events.filter((e) => e.attributes?.["gavel.policy.defect"] !== undefined).map((e) =>
            e.attributes
          )
        expect(events("d.throws")).toEqual([{
          "gavel.policy.id": "d.throws",
          "gavel.policy.defect": "threw",
          "exception.type": "TypeError",
          "exception.message": "amount is undefined"
        }])
        expect(events("d.dies")).toEqual([{
          "gavel.policy.id": "d.dies",
          "gavel.policy.defect": "died",
          "exception.type": "RangeError",
          "exception.message": "too deep"
        }])
        expect(events("d.garbage")).toMatchObject([{ "gavel.policy.defect": "malformed", "exception.type": "MalformedResult" }])
        // The undeclared failure ends the evaluation; its check's span says so too.
        expect(events("d.undeclared")).toEqual([{
          "gavel.policy.id": "d.undeclared",
          "gavel.policy.defect": "failed",
          "exception.type": "CrmDown",
          "exception.message": "crm is down"
        }])
        expect(policySpan(exporter, "d.undeclared").attributes["gavel.policy.result"]).toBe("Deny")
      })
    ))
})

describe("metrics", () => {
  const counted = (outcome: Decision.Decision["_tag"]) =>
    Effect.map(Metric.value(Metrics.decisions(outcome)), (state) => state.count)

  it.effect("PolicySet.evaluate counts decisions by outcome; evaluateSync does not", () =>
    Effect.gen(function*() {
      const allowBefore = yield* counted("Allow")
      const denyBefore = yield* counted("Deny")
      const allow = PolicySet.unsafeMake({ id: "m", version: "1", policy: Policy.constant("m.a", Decision.allow()) })
      const deny = PolicySet.unsafeMake({ id: "m", version: "1", policy: Policy.constant("m.a", Decision.notApplicable) })
      yield* PolicySet.evaluate(allow, action)
      yield* PolicySet.evaluate(allow, action)
      yield* PolicySet.evaluate(deny, action)
      PolicySet.evaluateSync(allow, action)
      expect((yield* counted("Allow")) - allowBefore).toBe(2)
      expect((yield* counted("Deny")) - denyBefore).toBe(1)
    }))

  it.effect("labels from Effect.tagMetrics are added to the outcome", () =>
    Effect.gen(function*() {
      const set = PolicySet.unsafeMake({ id: "m", version: "1", policy: Policy.constant("m.a", Decision.warn({ code: "m.warn", message: "warned" })) })
      yield* PolicySet.evaluate(set, action).pipe(Effect.tagMetrics("tenant", "t-metrics"))
      const state = yield* Metric.value(Metric.tagged(Metrics.decisions("Warn"), "tenant", "t-metrics"))
      expect(state.count).toBe(1)
    }))

  it.effect("check latency is a histogram per policy id, timed by the Clock", () =>
    Effect.gen(function*() {
      const set = PolicySet.unsafeMake({
        id: "m",
        version: "1",
        policy: Policy.allConcurrent([slow("m.fast", 20), slow("m.slow", 700)]).pipe(Policy.failClosed)
      })
      yield* runFor(PolicySet.evaluate(set, action))
      yield* runFor(PolicySet.evaluate(set, action))
      const fast = yield* Metric.value(Metrics.externalCheckDurationOf("m.fast"))
      expect([fast.count, fast.sum, fast.min, fast.max]).toEqual([2, 40, 20, 20])
      const slowState = yield* Metric.value(Metrics.externalCheckDurationOf("m.slow"))
      expect([slowState.count, slowState.sum]).toEqual([2, 1400])
      // Cumulative buckets: nothing at or under 500 ms, both under 1 s.
      expect(slowState.buckets.find(([bound]) => bound === 500)?.[1]).toBe(0)
      expect(slowState.buckets.find(([bound]) => bound === 1000)?.[1]).toBe(2)
    }))

  it.effect("timeouts count per policy id, and the cut check's latency is the limit", () =>
    Effect.gen(function*() {
      const set = PolicySet.unsafeMake({
        id: "m",
        version: "1",
        policy: Policy.all([
          slow("m.hung", 60_000).pipe(Policy.timeout("2 seconds"), Policy.failClosed),
          Policy.all([slow("m.budgeted", 60_000)], { id: "m.group" }).pipe(Policy.budget("1 second"), Policy.failClosed)
        ])
      })
      const record = yield* runFor(PolicySet.evaluate(set, action))
      expect(record.reasonCodes).toEqual(["policy.timeout", "policy.timeout"])
      expect((yield* Metric.value(Metrics.policyTimeoutsOf("m.hung"))).count).toBe(1)
      // A budget cut is counted under the check it cut.
      expect((yield* Metric.value(Metrics.policyTimeoutsOf("m.budgeted"))).count).toBe(1)
      expect((yield* Metric.value(Metrics.policyTimeoutsOf("m.group"))).count).toBe(0)
      const hung = yield* Metric.value(Metrics.externalCheckDurationOf("m.hung"))
      expect([hung.count, hung.sum]).toEqual([1, 2000])
    }))

  it.effect("the pending-approvals gauge moves with the helpers", () =>
    Effect.gen(function*() {
      yield* Metrics.setApprovalsPending(0)
      yield* Metrics.adjustApprovalsPending(1)
      yield* Metrics.adjustApprovalsPending(1)
      yield* Metrics.adjustApprovalsPending(-1)
      expect((yield* Metric.value(Metrics.approvalsPending)).value).toBe(1)
      yield* Metrics.setApprovalsPending(5)
      expect((yield* Metric.value(Metrics.approvalsPending)).value).toBe(5)
    }))

  it.effect("metric names are the documented ones", () =>
    Effect.gen(function*() {
      for (
        const metric of [
          Metrics.decisionsTotal,
          Metrics.externalCheckDuration,
          Metrics.policyTimeoutsTotal,
          Metrics.approvalsPending
        ] as const
      ) metric.register()
      const names = new Set((yield* Metric.snapshot).map((pair) => pair.metricKey.name))
      expect([...names].filter((name) => name.startsWith("gavel_")).sort()).toEqual([
        "gavel_approvals_pending",
        "gavel_decisions_total",
        "gavel_external_check_duration_ms",
        "gavel_policy_timeouts_total"
      ])
    }))
})

describe("resumed execution", () => {
  it.effect("the approved work runs in a gavel.execute span linked to the span of the request that parked it", () =>
    withOtel((exporter) =>
      Effect.gen(function*() {
        const governance = yield* Governance.Governance
        const needsApproval = Action.make({ ...action, payload: { amount: 5000 } })
        // The request parks inside its own span; the approval arrives from elsewhere.
        const request = yield* Effect.fork(
          Effect.zip(Effect.currentSpan, governance.enforce(needsApproval, () => Effect.succeed("done"))).pipe(
            Effect.withSpan("request")
          )
        )
        const pending = yield* Approvals.awaitPending()
        yield* governance.approve(pending.id, { id: "alice", kind: "human", roles: [], attributes: {} })
        const [requestSpan, result] = yield* Fiber.join(request)
        expect(result).toBe("done")
        expect(pending.trace).toEqual({ traceId: requestSpan.traceId, spanId: requestSpan.spanId })
        const [execute] = byName(exporter, "gavel.execute")
        expect(execute!.attributes["gavel.approval_id"]).toBe(pending.id)
        expect(execute!.attributes["gavel.execution.outcome"]).toBe("succeeded")
        expect(execute!.links.map((link) => link.context.spanId)).toEqual([requestSpan.spanId])
        expect(execute!.links[0]!.context.traceId).toBe(requestSpan.traceId)
      }).pipe(Effect.provide(
        Governance.layer({
          policySet: PolicySet.unsafeMake({
            id: "deploys",
            version: "1",
            policy: Policy.make("approval", () =>
              Decision.requireApproval({ code: "deploy.review", message: "review" }, { quorum: 1, roles: ["ops"] }))
          }),
          sweepInterval: "1 minute"
        }).pipe(
          Layer.provideMerge(ApprovalStore.layerMemory),
          Layer.provideMerge(AuditSink.layerMemory),
          Layer.provideMerge(Fakes.layer({ identity: { principals: { alice: { roles: ["ops"] } } } }))
        )
      ))
    ))
})
