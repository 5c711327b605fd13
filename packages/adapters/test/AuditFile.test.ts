import * as AuditFile from "@gavel/adapters/AuditFile"
import { Audit, AuditSink } from "@gavel/core"
import * as AuditSinkSuite from "@gavel/testing/AuditSinkSuite"
import { NodeFileSystem } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-audit-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

let files = 0
const tempFile = () => path.join(root, `audit-${++files}.jsonl`)

const entry = (n: number): Audit.Entry => ({
  type: "decision.evaluated",
  at: new Date(n * 1000),
  decisionId: `dec-${n}`,
  approvalId: null,
  requestId: `req-${n}`,
  correlationId: null,
  actor: "agent-7",
  trace: n % 2 === 0 ? { traceId: "t".repeat(32), spanId: "s".repeat(16) } : null,
  data: { n, nested: { list: [1, "two", null] } }
})

const sinkAt = (file: string) =>
  AuditFile.layer({ path: file }).pipe(Layer.provide(NodeFileSystem.layer))

AuditSinkSuite.run(
  "AuditFile",
  Layer.unwrapEffect(Effect.sync(() => sinkAt(tempFile())))
)

const appendAll = (entries: ReadonlyArray<Audit.Entry>) =>
  Effect.flatMap(AuditSink.AuditSink, (sink) => Effect.forEach(entries, sink.append))

const readAll = Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read())

describe("AuditFile", () => {
  it.effect("appends one JSON line per event; the chain continues across reopenings and verifies", () =>
    Effect.gen(function*() {
      const file = tempFile()
      yield* Effect.provide(appendAll([entry(1), entry(2)]), sinkAt(file))
      const events = yield* Effect.provide(Effect.zipRight(appendAll([entry(3)]), readAll), sinkAt(file))
      expect(events.map((e) => e.sequence)).toEqual([1, 2, 3])
      expect(events[1]!.trace).toEqual(entry(2).trace)
      expect(events[2]!.data).toEqual(entry(3).data)
      expect(Audit.verify(events)._tag).toBe("Intact")
      expect(fs.readFileSync(file, "utf8").trim().split("\n")).toHaveLength(3)
    }))

  it.effect("50 concurrent appends keep the chain gap-free", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const events = yield* Effect.provide(
        Effect.zipRight(
          Effect.forEach(Array.from({ length: 50 }, (_, i) => entry(i)), (e) =>
            Effect.flatMap(AuditSink.AuditSink, (sink) => sink.append(e)), { concurrency: "unbounded" }),
          readAll
        ),
        sinkAt(file)
      )
      expect(Audit.verify(events)).toMatchObject({ _tag: "Intact", count: 50 })
    }))

  it.effect("an edited line is named by verify", () =>
    Effect.gen(function*() {
      const file = tempFile()
      yield* Effect.provide(appendAll([entry(1), entry(2), entry(3)]), sinkAt(file))
      const lines = fs.readFileSync(file, "utf8").split("\n")
      lines[1] = lines[1]!.replace("agent-7", "agent-8")
      fs.writeFileSync(file, lines.join("\n"))
      const events = yield* Effect.provide(AuditFile.readFile(file), NodeFileSystem.layer)
      expect(Audit.verify(events)).toMatchObject({ _tag: "Broken", sequence: 2, problem: "edited" })
    }))

  it.effect("a partial last line (an append cut short by a crash) is cut off when reopening", () =>
    Effect.gen(function*() {
      const file = tempFile()
      yield* Effect.provide(appendAll([entry(1), entry(2)]), sinkAt(file))
      fs.appendFileSync(file, "{\"sequence\":3,\"type\":\"decision.ev")
      const events = yield* Effect.provide(Effect.zipRight(appendAll([entry(3)]), readAll), sinkAt(file))
      expect(events.map((e) => e.sequence)).toEqual([1, 2, 3])
      expect(Audit.verify(events)._tag).toBe("Intact")
    }))

  it.effect("refuses to start on a file whose lines are not audit events, and leaves it as it was", () =>
    Effect.gen(function*() {
      const file = tempFile()
      fs.writeFileSync(file, "hello\nworld\n")
      const error = yield* Effect.flip(Effect.provide(Effect.flatMap(AuditSink.AuditSink, (s) => s.head), sinkAt(file)))
      expect(error.message).toContain("line 1 is not an audit event")
      expect(fs.readFileSync(file, "utf8")).toBe("hello\nworld\n")
    }))

  it.effect("head is the last event", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const head = yield* Effect.provide(
        Effect.zipRight(appendAll([entry(1), entry(2)]), Effect.flatMap(AuditSink.AuditSink, (s) => s.head)),
        sinkAt(file)
      )
      const events = yield* Effect.provide(AuditFile.readFile(file), NodeFileSystem.layer)
      expect(head).toEqual(Option.some({ sequence: 2, hash: events[1]!.hash }))
    }))
})
