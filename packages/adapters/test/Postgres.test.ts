/**
 * The Postgres stores in one process: the conformance suites (each test on
 * a schema of its own, dropped afterwards), opening and its refusals,
 * configuration, and the LISTEN/NOTIFY announcements. Needs
 * GAVEL_TEST_DATABASE_URL (see fixtures/postgres.ts); skipped without it.
 */
import * as Postgres from "@gavel/adapters/Postgres"
import { ApprovalStore, Audit, AuditSink, ContinuationStore } from "@gavel/core"
import * as ApprovalStoreSuite from "@gavel/testing/ApprovalStoreSuite"
import * as AuditSinkSuite from "@gavel/testing/AuditSinkSuite"
import * as ContinuationStoreSuite from "@gavel/testing/ContinuationStoreSuite"
import { Governance } from "@gavel/core"
import { epochMillis, request } from "@gavel/testing/Fixtures"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import {
  databaseUrl,
  dropSchemaNow,
  emptiedLayer,
  freshSchema,
  principal,
  required,
  runtimeLayer,
  type RuntimeOptions,
  skipMessage,
  transfer
} from "./fixtures/postgres.js"

if (databaseUrl === undefined) {
  if (required) {
    describe("Postgres", () => {
      it("has a database (GAVEL_REQUIRE_POSTGRES=1)", () => {
        expect.fail(`GAVEL_REQUIRE_POSTGRES=1 but GAVEL_TEST_DATABASE_URL is not set`)
      })
    })
  } else {
    console.warn(skipMessage)
    describe.skip("Postgres", () => {
      it("needs GAVEL_TEST_DATABASE_URL", () => {})
    })
  }
} else {
  const suiteSchema = freshSchema("suite")
  afterAll(() => dropSchemaNow(suiteSchema))
  // Every test of the suites gets the same schema, emptied: the model-based property builds 100 stores.
  const emptied = emptiedLayer(suiteSchema, { listen: false })
  ApprovalStoreSuite.run("Postgres ApprovalStore", emptied, { timeout: 60_000 })
  AuditSinkSuite.run("Postgres AuditSink", emptied, { timeout: 60_000 })
  ContinuationStoreSuite.run("Postgres ContinuationStore", emptied, { timeout: 60_000 })
}

// -----------------------------------------------------------------------------
// opening, refusals and configuration
// -----------------------------------------------------------------------------

const url = databaseUrl ?? ""

/** Runs `effect` against the stores of `schema`, opened for it and closed afterwards. */
const withStores = <A, E>(
  schema: string,
  effect: Effect.Effect<A, E, ApprovalStore.ApprovalStore | AuditSink.AuditSink | SqlClient.SqlClient>,
  options: Omit<Postgres.Options, "url" | "schema"> = {}
) => Effect.provide(effect, Postgres.layer({ url, schema, poolSize: 2, listen: false, ...options }))

const openError = (options: Postgres.Options) => Effect.flip(Effect.provide(Effect.void, Postgres.layer(options)))

/** A schema for one test, dropped when the test's scope closes. */
const scopedSchema = Effect.acquireRelease(
  Effect.sync(() => freshSchema()),
  (schema) => Effect.promise(() => dropSchemaNow(schema))
)

describe.skipIf(databaseUrl === undefined)("Postgres.layer", () => {
  it.scoped("creates its schema and tables, records the migration, and is shared with resolutions", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema
      const found = yield* withStores(
        schema,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const store = yield* ApprovalStore.ApprovalStore
          return {
            migrations: yield* sql.unsafe(
              `SELECT migration_id, name FROM "${schema}".gavel_migrations ORDER BY migration_id`
            ),
            tables: (yield* sql<{ readonly t: string }>`SELECT tablename AS t FROM pg_tables
              WHERE schemaname = ${schema} ORDER BY tablename`).map((r) => r.t),
            shared: store.shared
          }
        })
      )
      expect(found).toEqual({
        migrations: [
          { migration_id: 1, name: "gavel_tables" },
          { migration_id: 2, name: "gavel_pending_caps" },
          { migration_id: 3, name: "gavel_audit_outbox" },
          { migration_id: 4, name: "gavel_continuations" }
        ],
        tables: [
          "gavel_approvals",
          "gavel_audit_events",
          "gavel_audit_outbox",
          "gavel_continuations",
          "gavel_decisions",
          "gavel_migrations",
          "gavel_overrides"
        ],
        shared: true
      })
      expect(Postgres.schemaVersion).toBe(4)
      expect(Postgres.channel("gavel")).toBe("gavel_gavel")
      const listening = yield* Effect.provide(ApprovalStore.ApprovalStore, Postgres.layer({ url, schema }))
      expect(listening.resolutions).toBeDefined()
    }))

  it.scoped("keeps approvals and the trail across reopenings; three processes opening a new schema migrate once", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema
      yield* Effect.all(
        [1, 2, 3].map(() => withStores(schema, Effect.void)),
        { concurrency: "unbounded" }
      )
      const created = request({ id: "apr_1", quorum: 2 })
      yield* withStores(schema, Effect.gen(function*() {
        yield* (yield* ApprovalStore.ApprovalStore).create(created)
        yield* (yield* AuditSink.AuditSink).append(AuditSinkSuite.entry(1))
      }))
      const [stored, events, migrations] = yield* withStores(schema, Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return [
          yield* (yield* ApprovalStore.ApprovalStore).get("apr_1"),
          yield* (yield* AuditSink.AuditSink).read(),
          yield* sql.unsafe(`SELECT migration_id FROM "${schema}".gavel_migrations ORDER BY migration_id`)
        ] as const
      }))
      expect(stored).toEqual(created)
      expect(Audit.verify(events)._tag).toBe("Intact")
      expect(migrations).toEqual([{ migration_id: 1 }, { migration_id: 2 }, { migration_id: 3 }, { migration_id: 4 }])
    }))

  it.scoped("refuses another application's schema and a newer gavel's, writing nothing", () =>
    Effect.gen(function*() {
      const foreign = yield* scopedSchema
      const newer = yield* scopedSchema
      yield* withStores(newer, Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.zipRight(
          sql.unsafe(`CREATE SCHEMA "${foreign}"`),
          Effect.zipRight(
            sql.unsafe(`CREATE TABLE "${foreign}".invoices (id int)`),
            sql.unsafe(`INSERT INTO "${newer}".gavel_migrations (migration_id, name) VALUES (99, 'future')`)
          )
        )))
      const notOurs = yield* openError({ url, schema: foreign })
      expect(notOurs).toMatchObject({ _tag: "PostgresOpenError", reason: "NotAGavelSchema", schema: foreign })
      expect(notOurs.message).toContain("invoices")
      const fromTheFuture = yield* openError({ url, schema: newer })
      expect(fromTheFuture).toMatchObject({ reason: "NewerSchema" })
      expect(fromTheFuture.message).toContain("99")
    }))

  it.effect("refuses invalid options before connecting, never echoing the URL", () =>
    Effect.gen(function*() {
      const secret = "postgresql://gavel:s3cr3t-pw@127.0.0.1:1/gavel"
      for (
        const [options, detail] of [
          [{ url: secret, schema: "Bad-Name" }, "schema"],
          [{ url: "mysql://gavel:s3cr3t-pw@127.0.0.1/gavel" }, "scheme"],
          [{ url: "s3cr3t-pw at localhost" }, "does not parse"],
          [{ url: secret, poolSize: 0 }, "poolSize"],
          [{ url: secret, timeout: "0 millis" }, "timeout"]
        ] as const
      ) {
        const error = yield* openError(options)
        expect(error).toMatchObject({ _tag: "PostgresOpenError", reason: "InvalidOptions" })
        expect(error.message).toContain(detail)
        expect(JSON.stringify(error) + error.message).not.toContain("s3cr3t")
      }
    }))

  it.live("fails with Unavailable when nothing answers, within the connect timeout, without the password", () =>
    Effect.gen(function*() {
      const started = performance.now()
      const error = yield* openError({
        url: Redacted.make("postgresql://gavel:s3cr3t-pw@127.0.0.1:1/gavel"),
        connectTimeout: "1 second"
      })
      expect(performance.now() - started).toBeLessThan(5_000)
      expect(error).toMatchObject({ _tag: "PostgresOpenError", reason: "Unavailable" })
      expect(error.message).toContain("ECONNREFUSED")
      expect(JSON.stringify(error) + error.message + String(error.cause)).not.toContain("s3cr3t")
    }))

  it.scoped("reads GAVEL_DATABASE_URL and friends from Config; a missing or bad value is a ConfigError", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema
      const provider = (entries: ReadonlyArray<readonly [string, string]>) =>
        ConfigProvider.fromMap(new Map(entries))
      const store = yield* Effect.provide(ApprovalStore.ApprovalStore, Postgres.layerConfig).pipe(
        Effect.withConfigProvider(provider([
          ["GAVEL_DATABASE_URL", url],
          ["GAVEL_DATABASE_SCHEMA", schema],
          ["GAVEL_DATABASE_POOL_SIZE", "2"],
          ["GAVEL_DATABASE_LISTEN", "false"]
        ]))
      )
      expect(store.shared).toBe(true)
      expect(store.resolutions).toBeUndefined()
      const missing = yield* Effect.flip(Effect.provide(Effect.void, Postgres.layerConfig)).pipe(
        Effect.withConfigProvider(provider([]))
      )
      expect(missing._tag).toBe("ConfigError")
      expect(String(missing)).toContain("GAVEL_DATABASE_URL")
      const bad = yield* Effect.flip(Effect.provide(Effect.void, Postgres.layerConfig)).pipe(
        Effect.withConfigProvider(provider([["GAVEL_DATABASE_URL", url], ["GAVEL_DATABASE_POOL_SIZE", "0"]]))
      )
      expect(bad._tag).toBe("ConfigError")
      expect(String(bad)).toContain("GAVEL_DATABASE_POOL_SIZE")
      const config = yield* Postgres.config.pipe(
        Effect.withConfigProvider(provider([["GAVEL_DATABASE_URL", "postgresql://u:s3cr3t-pw@h/db"]]))
      )
      expect(String(config.url)).not.toContain("s3cr3t")
    }))

  it.live("bounds an operation by its timeout: a vote stuck behind a row lock fails with StoreError", () =>
    Effect.scoped(Effect.gen(function*() {
      const schema = yield* scopedSchema
      yield* withStores(schema, Effect.flatMap(ApprovalStore.ApprovalStore, (s) => s.create(request({ id: "locked" }))))
      // Another session holds the row for 3 s.
      const holder = yield* Effect.fork(withStores(schema, Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(Effect.zipRight(
          sql.unsafe(`SELECT id FROM "${schema}".gavel_approvals WHERE id = 'locked' FOR UPDATE`),
          sql.unsafe(`SELECT pg_sleep(3)`)
        )))))
      yield* Effect.sleep("300 millis")
      const started = performance.now()
      const error = yield* withStores(
        schema,
        Effect.flip(Effect.flatMap(ApprovalStore.ApprovalStore, (s) =>
          s.vote("locked", { approver: "bob", verdict: "approve", note: null, at: new Date(epochMillis + 1_000) }))),
        { timeout: "500 millis" }
      )
      const elapsed = performance.now() - started
      expect(error._tag).toBe("StoreError")
      expect(error).toMatchObject({ operation: "vote" })
      expect(elapsed).toBeLessThan(2_500)
      yield* Fiber.join(holder)
      // Nothing was written by the vote that gave up.
      const after = yield* withStores(schema, Effect.flatMap(ApprovalStore.ApprovalStore, (s) => s.get("locked")))
      expect(after.status).toBe("pending")
    })), 20_000)
})

// -----------------------------------------------------------------------------
// continuations claimed by two pools
// -----------------------------------------------------------------------------

describe.skipIf(databaseUrl === undefined)("Postgres ContinuationStore across pools", () => {
  it.scoped("two pools claiming at once, four workers each, take each of 20 ready continuations exactly once", () =>
    Effect.gen(function*() {
      const schema = yield* scopedSchema
      const open = Effect.map(Layer.build(Postgres.layer({ url, schema, poolSize: 4, listen: false })), (context) => {
        const store = Context.get(context, ContinuationStore.ContinuationStore)
        // Beside the very approval store the layer provides: their writes share its units.
        expect(store.store).toBe(Context.get(context, ApprovalStore.ApprovalStore))
        return store
      })
      const [one, two] = [yield* open, yield* open]
      const at = (millis: number) => new Date(epochMillis + millis)
      const ids = Array.from({ length: 20 }, (_, i) => `apr_${String(i).padStart(2, "0")}`)
      yield* Effect.forEach(ids, (id) =>
        Effect.zipRight(
          one.atomically(
            Effect.zipRight(one.create(ContinuationStoreSuite.continuation(id)), one.store.create(request({ id })))
          ),
          one.store.vote(id, { approver: "bob", verdict: "approve", note: null, at: at(1_000) })
        ))
      /** Claims two at a time until a claim finds nothing (what is left is another claim's). */
      const drain = (store: ContinuationStore.Service, owner: string) =>
        Effect.gen(function*() {
          const taken: Array<ContinuationStore.Continuation> = []
          for (;;) {
            const batch = yield* store.claim({ owner, now: at(2_000), limit: 2 })
            if (batch.length === 0) return taken
            taken.push(...batch)
          }
        })
      const claimed = (yield* Effect.all(
        [one, two].flatMap((store, s) => [0, 1, 2, 3].map((w) => drain(store, `pool${s}-worker${w}`))),
        { concurrency: "unbounded" }
      )).flat()
      expect(claimed.map((c) => c.approvalId).sort()).toEqual(ids)
      expect(claimed.every((c) => c.fence === 1 && c.leaseUntil?.getTime() === at(2_000 + c.leaseMillis).getTime()))
        .toBe(true)
      // As stored: each one once, by the worker its claim returned it to.
      const stored = yield* two.list()
      expect(stored.map((c) => [c.approvalId, c.fence, c.owner])).toEqual(
        [...claimed].sort((a, b) => a.approvalId.localeCompare(b.approvalId)).map((c) => [c.approvalId, 1, c.owner])
      )
      expect(yield* one.claim({ owner: "late", now: at(2_000), limit: 20 })).toEqual([])
    }), 60_000)
})

// -----------------------------------------------------------------------------
// LISTEN/NOTIFY between two runtimes
// -----------------------------------------------------------------------------

describe.skipIf(databaseUrl === undefined)("Postgres resolutions", () => {
  /** Two runtimes on one schema (two pools, as two processes); A parks, B approves. */
  const scenario = (options: {
    readonly a: Omit<RuntimeOptions, "url" | "schema">
    /** Runs between A parking and B approving. */
    readonly before?: (schema: string) => Effect.Effect<void, unknown, SqlClient.SqlClient>
  }) =>
    Effect.scoped(Effect.gen(function*() {
      const schema = yield* scopedSchema
      const a = yield* Layer.build(runtimeLayer({ url, schema, ...options.a }))
      const b = yield* Layer.build(runtimeLayer({ url, schema, pollInterval: "30 seconds" }))
      const ran = yield* Deferred.make<number>()
      const key = `k-${schema}`
      const parked = yield* Effect.fork(Effect.provide(
        Effect.flatMap(Governance.Governance, (g) =>
          g.enforce(transfer(key), () => Effect.flatMap(Clock.currentTimeMillis, (now) => Deferred.succeed(ran, now)))),
        a
      ))
      // Wait for the approval, as an approver's inbox would show it.
      const approval = yield* Effect.provide(
        Effect.flatMap(ApprovalStore.ApprovalStore, (s) => s.listPending()).pipe(
          Effect.map((pending) => pending.find((p) => p.requestId === key)),
          Effect.flatMap(Effect.fromNullable),
          Effect.retry(Schedule.spaced("20 millis"))
        ),
        b
      )
      // Let A's listener establish itself (its first ping) before anything happens.
      yield* Effect.sleep("500 millis")
      if (options.before !== undefined) yield* Effect.provide(options.before(schema), b)
      yield* Effect.provide(Effect.flatMap(Governance.Governance, (g) => g.approve(approval.id, principal("approver-1"))), b)
      const approvedAt = yield* Clock.currentTimeMillis
      const ranAt = yield* Deferred.await(ran).pipe(Effect.timeout("20 seconds"))
      yield* Fiber.join(parked)
      return ranAt - approvedAt
    }))

  it.live("wakes the call parked in another runtime at once, well under the poll interval", () =>
    Effect.gen(function*() {
      const latency = yield* scenario({ a: { pollInterval: "30 seconds" } })
      expect(latency).toBeLessThan(1_000)
    }), 40_000)

  it.live("without notifications, polling wakes it", () =>
    Effect.gen(function*() {
      const latency = yield* scenario({ a: { listen: false, pollInterval: "300 millis" } })
      expect(latency).toBeLessThan(3_000)
    }), 40_000)

  it.live("a resolution announced while the listening connection was down is caught up on reconnect", () =>
    Effect.gen(function*() {
      const latency = yield* scenario({
        a: { pollInterval: "30 seconds", heartbeat: "300 millis" },
        // Kill A's listening connection: B's announcement goes nowhere.
        before: (schema) =>
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = ${`gavel-listen ${schema}`}`)
      })
      // Detected by the heartbeat, reconnected, every waiter re-checked: far
      // sooner than the 30 s poll.
      expect(latency).toBeLessThan(8_000)
    }), 40_000)
})
