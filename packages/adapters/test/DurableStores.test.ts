/**
 * Durable approvals on the SQL stores: the work an approval releases
 * survives a restart and runs on any instance. On SQLite, three runtimes
 * over one file one after the other — the first submits and stops, the
 * second (with no worker) approves and stops, the third starts its worker
 * and runs the work once. On Postgres, two instances on one schema: one
 * submits, the other approves; the work runs once, on whichever claims it.
 * Postgres needs GAVEL_TEST_DATABASE_URL (see fixtures/postgres.ts);
 * skipped without it.
 */
import * as Postgres from "@gavel/adapters/Postgres"
import * as Sqlite from "@gavel/adapters/Sqlite"
import { type ApprovalStore, type AuditSink, type ContinuationStore, Durable, Encryption, Governance } from "@gavel/core"
import { Fixtures } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as path from "node:path"
import { databaseUrl, dropSchemaNow, freshSchema } from "./fixtures/postgres.js"
import { tempDir } from "./fixtures/sqlite.js"
import { IdentityLive, policySet, principal, transfer } from "./fixtures/steps.js"

/** Every run of the handler, by idempotency key and process ("instance"). */
const ledger: Array<string> = []

const Input = Schema.Struct({ to: Schema.String, amount: Schema.Number })

const pay = (instance: string) =>
  Durable.handler({
    name: "payments.transfer",
    input: Input,
    success: Schema.Struct({ receipt: Schema.String, by: Schema.String }),
    run: (_action, input, attempt) =>
      Effect.sync(() => {
        ledger.push(`${attempt.idempotencyKey}@${instance}`)
        return { receipt: `r-${input.to}-${input.amount}`, by: instance }
      })
  })

const governed = <E, R>(stores: Layer.Layer<ApprovalStore.ApprovalStore | AuditSink.AuditSink | ContinuationStore.ContinuationStore, E, R>) =>
  Governance.layer({ policySet, sweepInterval: "1 hour", pollInterval: "50 millis" }).pipe(
    Layer.provideMerge(stores),
    Layer.provide(IdentityLive)
  )

const withWorker = <E, R>(
  instance: string,
  stores: Layer.Layer<ApprovalStore.ApprovalStore | AuditSink.AuditSink | ContinuationStore.ContinuationStore, E, R>
) =>
  Durable.layer({ handlers: [pay(instance)], owner: instance, pollInterval: "50 millis" }).pipe(
    Layer.provideMerge(governed(stores)),
    Layer.provide(Encryption.layer(Fixtures.encryption))
  )

/** The outcome once the worker finished with it (real time: the stores and WebCrypto do real I/O). */
const poll = (approvalId: string) =>
  Effect.flatMap(Durable.Durable, (durable) =>
    Effect.gen(function*() {
      for (let i = 0; i < 400; i++) {
        const outcome = yield* durable.outcome(approvalId)
        if (outcome._tag !== "Waiting" && outcome._tag !== "Running") return outcome
        yield* Effect.sleep("25 millis")
      }
      return yield* durable.outcome(approvalId)
    }))

const payment = transfer("invoice-7", { quorum: 1 })
const input = { to: "acme-supplies", amount: 25_000 }

describe("durable approvals on SQLite", () => {
  it.scopedLive("submitted by one process, approved by another, run by a third after restarts — once", () =>
    Effect.gen(function*() {
      ledger.length = 0
      const filename = path.join(yield* tempDir, "gavel.db")
      const stores = Sqlite.layer({ filename })

      const approvalId = yield* Effect.scoped(Effect.gen(function*() {
        const durable = yield* Durable.Durable
        const submission = yield* durable.submit(payment, pay("first"), input, { idempotencyKey: "invoice-7" })
        if (submission._tag !== "Pending") return yield* Effect.dieMessage(`expected Pending, got ${submission._tag}`)
        return submission.approvalId
      }).pipe(Effect.provide(withWorker("first", stores))))

      // Another process, with no worker: it votes, and stops.
      yield* Effect.scoped(Effect.gen(function*() {
        const governance = yield* Governance.Governance
        expect((yield* governance.approve(approvalId, principal("approver-1"))).status).toBe("approved")
      }).pipe(Effect.provide(governed(stores))))
      expect(ledger).toEqual([])

      // A third starts its worker: the approved work runs, once.
      const outcome = yield* Effect.scoped(
        poll(approvalId).pipe(Effect.provide(withWorker("third", stores)))
      )
      expect(outcome).toEqual({
        _tag: "Succeeded",
        approvalId,
        result: { receipt: "r-acme-supplies-25000", by: "third" }
      })
      expect(ledger).toEqual(["invoice-7@third"])

      // A retried submission after all that finds the work done.
      const again = yield* Effect.scoped(Effect.gen(function*() {
        const durable = yield* Durable.Durable
        return yield* durable.submit(payment, pay("fourth"), input, { idempotencyKey: "invoice-7" })
      }).pipe(Effect.provide(withWorker("fourth", stores))))
      expect(again).toMatchObject({ _tag: "Existing", approvalId, outcome: { _tag: "Succeeded" } })
      expect(ledger).toEqual(["invoice-7@third"])
    }), 60_000)
})

describe.skipIf(databaseUrl === undefined)("durable approvals on Postgres", () => {
  it.scopedLive("two instances on one schema: submitted on one, approved on the other, run once", () =>
    Effect.gen(function*() {
      ledger.length = 0
      const schema = yield* Effect.acquireRelease(
        Effect.sync(() => freshSchema("durable")),
        (schema) => Effect.promise(() => dropSchemaNow(schema))
      )
      const stores = () => Postgres.layer({ url: databaseUrl ?? "", schema, poolSize: 2 })
      const a = yield* Layer.build(withWorker("a", stores()))
      const b = yield* Layer.build(withWorker("b", stores()))
      const submission = yield* Effect.flatMap(
        Durable.Durable,
        (durable) => durable.submit(payment, pay("a"), input, { idempotencyKey: "invoice-7" })
      ).pipe(Effect.provide(a))
      if (submission._tag !== "Pending") return expect.fail(`expected Pending, got ${submission._tag}`)
      yield* Effect.flatMap(
        Governance.Governance,
        (governance) => governance.approve(submission.approvalId, principal("approver-1"))
      ).pipe(Effect.provide(b))
      const outcome = yield* poll(submission.approvalId).pipe(Effect.provide(a))
      expect(outcome._tag).toBe("Succeeded")
      // Both workers kept polling meanwhile: the work ran once.
      yield* Effect.sleep("300 millis")
      expect(ledger).toHaveLength(1)
      expect(ledger[0]).toMatch(/^invoice-7@(a|b)$/)
    }), 60_000)
})
