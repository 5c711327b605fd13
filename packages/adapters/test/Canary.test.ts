/**
 * Canary secrets planted everywhere an action can carry them must never
 * reach any output: the audit file, the approval store, the records handed
 * back, the logs, the spans.
 */
import * as AuditFile from "@gavel/adapters/AuditFile"
import {
  Action,
  ApprovalStore,
  AuditSink,
  Decision,
  Governance,
  IdGenerator,
  Policy,
  PolicySet,
  type Redaction
} from "@gavel/core"
import { Approvals, Fakes } from "@gavel/testing"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import type { ExportResult } from "@opentelemetry/core"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const CANARY = "CANARY"

const human = (id: string): Action.Principal => ({ id, kind: "human", roles: [], attributes: {} })

/** Every place an action can carry a secret, each with its own canary. */
const planted = (name: string, amount: number) =>
  Action.make({
    actor: { id: "agent-7", kind: "agent", tenant: "acme", attributes: { ssn: `${CANARY}-attr` } },
    kind: "tool",
    name,
    resource: { type: "account", id: "acc-1" },
    metadata: { region: "eu", authorization: `Bearer ${CANARY}-hdr`, "x-api-key": `${CANARY}-key` },
    payload: {
      amount,
      note: "visible",
      headers: { Authorization: `Basic ${CANARY}-h2`, Cookie: `sid=${CANARY}-cookie` },
      card: { number: `${CANARY}-card`, cvc: Redacted.make(`${CANARY}-cvc`) },
      items: [{ sku: "a", token: `${CANARY}-tok` }, [{ deep: Redacted.make(`${CANARY}-deep`) }]]
    },
    requestId: `req-${name}-${amount}`
  })

/** Renames the raw tool (a transform that carries the whole payload), denies shell, asks approval for big payments. */
const policy = Policy.firstApplicable([
  Policy.make("rename", (a) =>
    a.name === "payments.raw"
      ? Decision.transform({ code: "renamed", message: "use the governed tool" }, {
        action: { ...a, name: "payments.transfer" }
      })
      : Decision.notApplicable),
  Policy.make("shell", (a) =>
    a.name === "shell.exec" ? Decision.deny({ code: "tool.blocked", message: "no shell" }) : Decision.notApplicable),
  Policy.make("payments", (a) =>
    (a.payload as { amount: number }).amount > 1000
      ? Decision.requireApproval({ code: "payment.large", message: "finance approval" }, {
        quorum: 1,
        roles: ["finance"],
        timeout: "1 hour"
      })
      : Decision.allow())
])

/** The SDK's in-memory exporter forgets its spans when the layer shuts it down: an exporter that keeps them. */
const keptSpans = () => {
  const finished: Array<ReadableSpan> = []
  const exporter = new (class extends InMemorySpanExporter {
    override export(spans: Array<ReadableSpan>, done: (result: ExportResult) => void): void {
      finished.push(...spans)
      super.export(spans, done)
    }
  })()
  return { exporter, finished }
}

const run = (redaction: Redaction.Options) =>
  Effect.gen(function*() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-canary-"))
    const file = path.join(dir, "audit.jsonl")
    const logs: Array<string> = []
    const { exporter, finished } = keptSpans()
    const returned: Array<unknown> = []

    const program = Effect.gen(function*() {
      const governance = yield* Governance.Governance
      const store = yield* ApprovalStore.ApprovalStore
      yield* Effect.logInfo("starting", { action: "payments" })
      // allowed after a transform
      returned.push(yield* governance.evaluate(planted("payments.raw", 10)))
      yield* governance.enforce(planted("payments.raw", 10), () => Effect.void)
      // denied, then overridden
      const denied = yield* Effect.flip(governance.enforce(planted("shell.exec", 10), () => Effect.void))
      returned.push(denied)
      if (denied._tag === "Denied") {
        yield* governance.override(denied.record.decisionId, {
          authority: human("cfo"),
          reason: "incident",
          duration: "1 hour"
        })
      }
      // approved and resumed; the work fails
      const fiber = yield* Effect.fork(Effect.exit(
        governance.enforce(planted("payments.raw", 5000), () => Effect.fail(new Error(`${CANARY}-work`)))
      ))
      const pending = yield* Approvals.awaitPending({ maxYields: 100_000 })
      returned.push(pending, yield* store.listPending())
      returned.push(yield* governance.approve(pending.id, human("alice"), "ok"))
      yield* Fiber.join(fiber)
      // expired
      const expiring = yield* Effect.fork(Effect.exit(governance.enforce(planted("payments.transfer", 9000), () =>
        Effect.void)))
      const second = yield* Approvals.awaitPending({ maxYields: 100_000 })
      yield* Approvals.advanceToExpiry(second.id)
      yield* Fiber.join(expiring)
      return yield* Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read())
    })

    const events = yield* program.pipe(
      Effect.withSpan("request"),
      Effect.provide(
        Governance.layer({
          policySet: PolicySet.unsafeMake({
            id: "payments",
            version: "1",
            policy,
            overridePolicy: { authority: { roles: ["cfo"], principals: [] } }
          }),
          sweepInterval: "1 minute",
          redaction
        }).pipe(
          Layer.provideMerge(ApprovalStore.layerMemory),
          Layer.provideMerge(AuditFile.layer({ path: file, sync: false }).pipe(Layer.provide(NodeFileSystem.layer))),
          Layer.provideMerge(IdGenerator.layerSequential),
          Layer.provideMerge(Fakes.layer({
            identity: { principals: { alice: { roles: ["finance"] }, cfo: { roles: ["cfo"] } } }
          }))
        )
      ),
      Effect.provide(NodeSdk.layer(() => ({
        resource: { serviceName: "canary" },
        spanProcessor: new SimpleSpanProcessor(exporter)
      }))),
      Effect.provide(Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, cause, message }) => {
          logs.push(JSON.stringify({ message, annotations: [...annotations], cause: String(cause) }))
        })
      )),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
    const spans = finished.map((span) => ({
      name: span.name,
      attributes: span.attributes,
      events: span.events,
      links: span.links,
      status: span.status
    }))
    const written = fs.readFileSync(file, "utf8")
    fs.rmSync(dir, { recursive: true, force: true })
    return {
      events,
      file: written,
      logs: logs.join("\n"),
      spans: JSON.stringify(spans),
      spanCount: spans.length,
      returned: JSON.stringify(returned)
    }
  })

describe("no secret reaches any output", () => {
  it.effect("canaries in headers, payloads, nested arrays and Redacted fields appear nowhere", () =>
    Effect.gen(function*() {
      const out = yield* run({ paths: ["payload.card.number", "payload.items.*.token"], payload: "include" })
      // The run did produce every kind of output the test inspects.
      const types = new Set(out.events.map((e) => e.type))
      for (
        const type of [
          "decision.evaluated",
          "override.granted",
          "approval.requested",
          "approval.voted",
          "approval.resolved",
          "approval.consumed",
          "approval.expired",
          "execution.started",
          "execution.succeeded",
          "execution.failed"
        ]
      ) expect(types).toContain(type)
      expect(out.spanCount).toBeGreaterThan(0)
      expect(out.logs).toContain("starting")
      // The payload was written (masked): the absence of canaries is not the absence of payloads.
      expect(out.file).toContain("\"note\":\"visible\"")
      expect(out.file).toContain("payload.card.number")
      for (const [where, text] of Object.entries(out)) {
        if (typeof text === "string") expect(text, where).not.toContain(CANARY)
      }
      expect(JSON.stringify(out.events)).not.toContain(CANARY)
    }))

  it.effect("the detector works: an unlisted payload path does leak when payloads are included", () =>
    Effect.gen(function*() {
      const out = yield* run({ paths: [], payload: "include" })
      expect(out.file).toContain(`${CANARY}-card`)
      // ...while Redacted values and credential-like keys stay masked without any configuration.
      expect(out.file).not.toContain(`${CANARY}-cvc`)
      expect(out.file).not.toContain(`${CANARY}-hdr`)
      expect(out.file).not.toContain(`${CANARY}-tok`)
    }))
})

describe("a policy that throws", () => {
  it.effect("what it threw reaches the log and the policy's span, never the audit file or the records", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-canary-"))
      const file = path.join(dir, "audit.jsonl")
      const logs: Array<string> = []
      const { exporter, finished } = keptSpans()
      const throwing = Policy.make("payments.limits", (a) => {
        throw new TypeError(`limit lookup failed for ${JSON.stringify(a.metadata)} ${CANARY}-thrown`)
      })
      const program = Effect.gen(function*() {
        const governance = yield* Governance.Governance
        const submitted = yield* governance.submit(planted("payments.transfer", 10))
        const denied = yield* Effect.flip(governance.enforce(planted("payments.transfer", 20), () => Effect.void))
        // (A submission also hands back the host's own action.)
        return [submitted.record, denied]
      })
      const returned = yield* program.pipe(
        Effect.withSpan("request"),
        Effect.provide(
          Governance.layer({
            policySet: PolicySet.unsafeMake({ id: "payments", version: "1", policy: throwing }),
            sweepInterval: "1 minute",
            redaction: { paths: [], payload: "omit" }
          }).pipe(
            Layer.provideMerge(ApprovalStore.layerMemory),
            Layer.provideMerge(AuditFile.layer({ path: file, sync: false }).pipe(Layer.provide(NodeFileSystem.layer))),
            Layer.provideMerge(IdGenerator.layerSequential),
            Layer.provideMerge(Fakes.layer({}))
          )
        ),
        Effect.provide(NodeSdk.layer(() => ({
          resource: { serviceName: "canary" },
          spanProcessor: new SimpleSpanProcessor(exporter)
        }))),
        Effect.provide(Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ annotations, message }) => {
            logs.push(JSON.stringify({ message, annotations: [...annotations] }))
          })
        ))
      )
      const written = fs.readFileSync(file, "utf8")
      const spans = JSON.stringify(finished.map((span) => ({ name: span.name, events: span.events })))
      fs.rmSync(dir, { recursive: true, force: true })
      // Both were denied with policy.defect, written to the audit file.
      expect(written.match(/"decision\.evaluated"/g)).toHaveLength(2)
      expect(written).toContain("policy.defect")
      for (const r of returned) expect(JSON.stringify(r)).toContain("policy.defect")
      // What was thrown: never in the audit file or the records...
      expect(written).not.toContain(CANARY)
      expect(JSON.stringify(returned)).not.toContain(CANARY)
      // ...but the host can find out why.
      expect(logs.join("\n")).toContain(`${CANARY}-thrown`)
      expect(logs.join("\n")).toContain("payments.limits")
      expect(spans).toContain(`${CANARY}-thrown`)
    }))
})
