import * as Sqlite from "@gavel/adapters/Sqlite"
import { Approval, ApprovalStore, Audit, AuditSink, ContinuationStore } from "@gavel/core"
import * as ApprovalStoreSuite from "@gavel/testing/ApprovalStoreSuite"
import * as AuditSinkSuite from "@gavel/testing/AuditSinkSuite"
import * as ContinuationStoreSuite from "@gavel/testing/ContinuationStoreSuite"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as path from "node:path"
import { epochMillis, request } from "@gavel/testing/Fixtures"
import { listing, tempDir } from "./fixtures/sqlite.js"

/** A store and sink on a new database file in a new temporary directory, per build. */
const fresh = Layer.unwrapScoped(Effect.map(tempDir, (dir) => Sqlite.layer({ filename: path.join(dir, "gavel.db") })))

// Every test of the suites opens a new file: the model-based property opens 100.
ApprovalStoreSuite.run("Sqlite ApprovalStore", fresh, { timeout: 60_000 })
AuditSinkSuite.run("Sqlite AuditSink", fresh, { timeout: 60_000 })
ContinuationStoreSuite.run("Sqlite ContinuationStore", fresh, { timeout: 60_000 })

// -----------------------------------------------------------------------------
// helpers
// -----------------------------------------------------------------------------

/** Runs `effect` with the database at `filename` open, closing it afterwards. */
const withDatabase = <A, E>(
  filename: string,
  effect: Effect.Effect<A, E, ApprovalStore.ApprovalStore | AuditSink.AuditSink | SqlClient.SqlClient>,
  options: Omit<Sqlite.Options, "filename"> = {}
) => Effect.provide(effect, Sqlite.layer({ filename, ...options }))

/** Runs `f` on a raw better-sqlite3 connection to `filename`: what someone tampering with the file does. */
const raw = <A>(filename: string, f: (db: Database.Database) => A): Effect.Effect<A> =>
  Effect.sync(() => {
    const db = new Database(filename)
    try {
      return f(db)
    } finally {
      db.close()
    }
  })

/** The error the layer fails with when opening `filename`. */
const openError = (filename: string, options: Omit<Sqlite.Options, "filename"> = {}) =>
  Effect.flip(withDatabase(filename, Effect.void, options))

const entry = (n: number): Audit.Entry => AuditSinkSuite.entry(n)

/** A trail of `n` events, and what `read` returns after `tamper` ran on the raw file. */
const tampered = (n: number, tamper: (db: Database.Database) => void) =>
  Effect.gen(function*() {
    const filename = path.join(yield* tempDir, "gavel.db")
    const head = yield* withDatabase(
      filename,
      Effect.gen(function*() {
        const sink = yield* AuditSink.AuditSink
        for (let i = 1; i <= n; i++) yield* sink.append(entry(i))
        expect(Audit.verify(yield* sink.read())._tag).toBe("Intact")
        return Option.getOrThrow(yield* sink.head)
      })
    )
    yield* raw(filename, tamper)
    const events = yield* withDatabase(filename, Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read()))
    return { events, head }
  })

const broken = (verification: Audit.Verification) => {
  if (verification._tag !== "Broken") return expect.fail("the trail verified as intact")
  return { sequence: verification.sequence, problem: verification.problem }
}

// -----------------------------------------------------------------------------
// opening
// -----------------------------------------------------------------------------

describe("Sqlite.layer", () => {
  it.scoped("creates a WAL database with gavel's application id, synchronous FULL and a 5 s busy timeout", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const pragmas = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const one = (name: string) => Effect.map(sql.unsafe<Record<string, unknown>>(`PRAGMA ${name}`), (r) => r[0])
          return {
            journal: yield* one("journal_mode"),
            synchronous: yield* one("synchronous"),
            timeout: yield* one("busy_timeout"),
            application: yield* one("application_id"),
            migrations: yield* sql`SELECT migration_id, name FROM gavel_migrations`,
            shared: (yield* ApprovalStore.ApprovalStore).shared
          }
        })
      )
      expect(pragmas).toEqual({
        journal: { journal_mode: "wal" },
        synchronous: { synchronous: 2 },
        timeout: { timeout: 5_000 },
        application: { application_id: Sqlite.applicationId },
        migrations: [
          { migration_id: 1, name: "gavel_tables" },
          { migration_id: 2, name: "gavel_pending_caps" },
          { migration_id: 3, name: "gavel_approvals_created" },
          { migration_id: 4, name: "gavel_audit_outbox" },
          { migration_id: 5, name: "gavel_continuations" }
        ],
        shared: true
      })
      expect(Sqlite.schemaVersion).toBe(5)
    }))

  it.scoped("takes synchronous NORMAL and another busy timeout", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const found = yield* withDatabase(
        filename,
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.all([sql`PRAGMA synchronous`, sql`PRAGMA busy_timeout`])),
        { synchronous: "NORMAL", busyTimeout: "250 millis" }
      )
      expect(found).toEqual([[{ synchronous: 1 }], [{ timeout: 250 }]])
    }))

  it.scoped("reads sqlite.filename and sqlite.synchronous from Config", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const provider = ConfigProvider.fromMap(new Map([["sqlite.filename", filename], ["sqlite.synchronous", "NORMAL"]]))
      const found = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`PRAGMA synchronous`).pipe(
        Effect.provide(Sqlite.layerConfig),
        Effect.withConfigProvider(provider)
      )
      expect(found).toEqual([{ synchronous: 1 }])
      expect(fs.existsSync(filename)).toBe(true)
    }))

  it.scoped("keeps approvals, decisions' absence, and the trail across reopenings", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const now = new Date(Date.UTC(2026, 0, 1, 9))
      const created = request({ id: "apr_1", quorum: 2, createdAt: now })
      const [voted, event] = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const store = yield* ApprovalStore.ApprovalStore
          yield* store.create(created)
          const voted = yield* store.vote("apr_1", { approver: "bob", verdict: "approve", note: "ok", at: now })
          const event = yield* (yield* AuditSink.AuditSink).append(entry(1))
          return [voted, event] as const
        })
      )
      const [stored, events] = yield* withDatabase(
        filename,
        Effect.all([
          Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.get("apr_1")),
          Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read())
        ])
      )
      expect(stored).toEqual(voted)
      expect(events).toEqual([event])
    }))

  it.scoped("opens an existing empty file as a new database", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      fs.writeFileSync(filename, "")
      const pending = yield* withDatabase(
        filename,
        Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.listPending())
      )
      expect(pending).toEqual([])
    }))

  it.scoped("migrates a database of schema version 1: the pending caps' indexes are added, the caps hold", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      yield* withDatabase(filename, Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.create(request())))
      // What gavel with only migration 1 left behind.
      yield* raw(filename, (db) => {
        db.exec(`DROP INDEX gavel_approvals_pending_requester; DROP INDEX gavel_approvals_pending_tenant;
          DROP INDEX gavel_approvals_created; DROP TABLE gavel_audit_outbox; DROP TABLE gavel_continuations;
          ALTER TABLE gavel_audit_events DROP COLUMN event_id; DELETE FROM gavel_migrations WHERE migration_id >= 2`)
      })
      const [indexes, error] = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const store = yield* ApprovalStore.ApprovalStore
          return [
            (yield* sql<{ readonly name: string }>`SELECT name FROM sqlite_master
              WHERE type = 'index' AND (name LIKE 'gavel_approvals_pending_%' OR name = 'gavel_approvals_created')
              ORDER BY name`).map((r) => r.name),
            yield* Effect.flip(store.create(request({ id: "apr_2" }), { perRequester: 1 }))
          ] as const
        })
      )
      expect(indexes).toEqual([
        "gavel_approvals_created",
        "gavel_approvals_pending_requester",
        "gavel_approvals_pending_tenant"
      ])
      expect(error).toMatchObject({ _tag: "TooManyPending", scope: "requester", key: "alice", limit: 1 })
    }))

  it.scoped("opens while another connection writes; a write waits for the busy timeout, then fails with StoreError", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const now = new Date(Date.UTC(2026, 0, 1, 9))
      yield* withDatabase(filename, Effect.flatMap(ApprovalStore.ApprovalStore, (s) => s.create(request({ id: "a", quorum: 1, createdAt: now }))))
      const other = new Database(filename)
      yield* Effect.addFinalizer(() => Effect.sync(() => other.close()))
      other.exec("BEGIN IMMEDIATE")
      // Opening a database that is already migrated takes no lock; writing does.
      const [error, waited, stored] = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const store = yield* ApprovalStore.ApprovalStore
          const start = performance.now()
          const error = yield* Effect.flip(store.vote("a", { approver: "bob", verdict: "approve", note: null, at: now }))
          const waited = performance.now() - start
          other.exec("ROLLBACK")
          return [error, waited, yield* store.get("a")] as const
        }),
        { busyTimeout: "200 millis" }
      )
      expect(error).toMatchObject({ _tag: "StoreError", operation: "vote" })
      expect(error.message).toContain("SQLITE_BUSY")
      expect(waited).toBeGreaterThanOrEqual(150)
      expect(stored.status).toBe("pending")
    }))

  it.scoped("fails with StoreError naming the approval when its stored JSON is unreadable", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const now = new Date(Date.UTC(2026, 0, 1, 9))
      yield* withDatabase(filename, Effect.flatMap(ApprovalStore.ApprovalStore, (s) => s.create(request({ id: "a", quorum: 1, createdAt: now }))))
      yield* raw(filename, (db) => db.prepare("UPDATE gavel_approvals SET request = '{\"id\":' WHERE id = 'a'").run())
      const error = yield* withDatabase(
        filename,
        Effect.flip(Effect.flatMap(ApprovalStore.ApprovalStore, (s) => s.get("a")))
      )
      expect(error).toMatchObject({ _tag: "StoreError", operation: "get" })
      expect(error.message).toContain(`stored approval "a" is unreadable`)
    }))
})

describe("Sqlite ApprovalStore and the caller's transactions", () => {
  const now = new Date(Date.UTC(2026, 0, 1, 9))
  const approve: Approval.VoteInput = { approver: "bob", verdict: "approve", note: null, at: now }

  /** The status of each approval in `ids`, as a fresh connection to the file sees it. */
  const statuses = (filename: string, ids: ReadonlyArray<string>) =>
    raw(filename, (db) =>
      ids.map((id) =>
        (db.prepare("SELECT status FROM gavel_approvals WHERE id = ?").get(id) as { status: string } | undefined)
          ?.status ?? "absent"
      ))

  it.scoped("inside a transaction the caller opened, transitions commit and roll back with it", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const store = yield* ApprovalStore.ApprovalStore
          const sql = yield* SqlClient.SqlClient
          yield* store.create(request({ id: "kept", createdAt: now }))
          yield* store.create(request({ id: "undone", createdAt: now }))
          yield* sql.withTransaction(Effect.gen(function*() {
            yield* store.create(request({ id: "new", createdAt: now }))
            yield* store.vote("kept", approve)
          }))
          const failed = yield* Effect.flip(sql.withTransaction(Effect.gen(function*() {
            yield* store.create(request({ id: "never", createdAt: now }))
            yield* store.vote("undone", approve)
            // The caller's own failure after the store's writes.
            return yield* Effect.fail("caller failed" as const)
          })))
          expect(failed).toBe("caller failed")
        })
      )
      expect(yield* statuses(filename, ["kept", "new", "undone", "never"])).toEqual([
        "approved",
        "pending",
        "pending",
        "absent"
      ])
    }))

  it.scoped("a transition from another fiber waits for the caller's transaction, and is not rolled back with it", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const order = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const store = yield* ApprovalStore.ApprovalStore
          const sql = yield* SqlClient.SqlClient
          yield* store.create(request({ id: "a", createdAt: now }))
          const order: Array<string> = []
          const inside = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const caller = yield* Effect.fork(Effect.flip(sql.withTransaction(Effect.gen(function*() {
            yield* sql`INSERT INTO gavel_decisions (decision_id, request_id, correlation_id, policy_id, outcome,
              evaluated_at, record) VALUES ('d', 'r', 'c', 'p', 'Deny', 0, '{}')`
            yield* Deferred.succeed(inside, undefined)
            // Holds the connection across an asynchronous wait, as a host's transaction may.
            yield* Deferred.await(release)
            order.push("caller rolls back")
            return yield* Effect.fail("caller failed" as const)
          }))))
          yield* Deferred.await(inside)
          const voter = yield* Effect.fork(Effect.tap(store.vote("a", approve), () => Effect.sync(() => order.push("vote"))))
          yield* Effect.yieldNow()
          yield* Deferred.succeed(release, undefined)
          expect(yield* Fiber.join(caller)).toBe("caller failed")
          expect((yield* Fiber.join(voter)).status).toBe("approved")
          return order
        })
      )
      expect(order).toEqual(["caller rolls back", "vote"])
      expect(yield* statuses(filename, ["a"])).toEqual(["approved"])
      expect(yield* raw(filename, (db) => db.prepare("SELECT count(*) AS n FROM gavel_decisions").get())).toEqual({ n: 0 })
    }))

  it.scoped("a transition waiting for the connection can be interrupted, and leaves it free", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const status = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const store = yield* ApprovalStore.ApprovalStore
          const sql = yield* SqlClient.SqlClient
          yield* store.create(request({ id: "a", createdAt: now }))
          const inside = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const caller = yield* Effect.fork(sql.withTransaction(
            Effect.zipRight(Deferred.succeed(inside, undefined), Deferred.await(release))
          ))
          yield* Deferred.await(inside)
          const voter = yield* Effect.fork(store.vote("a", approve))
          yield* Effect.yieldNow()
          yield* Fiber.interrupt(voter)
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(caller)
          const voted = yield* store.vote("a", { ...approve, approver: "carol" })
          return voted.status
        })
      )
      expect(status).toBe("approved")
      expect(yield* statuses(filename, ["a"])).toEqual(["approved"])
    }))
})

// -----------------------------------------------------------------------------
// refusals
// -----------------------------------------------------------------------------

describe("Sqlite ContinuationStore", () => {
  const at = (millis: number) => new Date(epochMillis + millis)

  /** A continuation for `apr_1`, approved and claimed, in a new file: the store and the claim's fence. */
  const claimedOne = Effect.gen(function*() {
    const filename = path.join(yield* tempDir, "gavel.db")
    const context = yield* Layer.build(Sqlite.layer({ filename }))
    const store = Context.get(context, ContinuationStore.ContinuationStore)
    // Beside the very approval store the layer provides: their writes share its units.
    expect(store.store).toBe(Context.get(context, ApprovalStore.ApprovalStore))
    yield* store.atomically(
      Effect.zipRight(store.create(ContinuationStoreSuite.continuation("apr_1")), store.store.create(request({ id: "apr_1" })))
    )
    yield* store.store.vote("apr_1", { approver: "bob", verdict: "approve", note: null, at: at(1_000) })
    const [claimed] = yield* store.claim({ owner: "worker-1", now: at(2_000), limit: 1 })
    return { filename, store, fence: claimed!.fence }
  })

  it.scoped("refuses a result that is not JSON as it stands with StoreError, writing nothing", () =>
    Effect.gen(function*() {
      const { fence, store } = yield* claimedOne
      // eslint-disable-next-line no-sparse-arrays -- a hole, which JSON turns into `null`
      const holed = [1, , 3]
      for (const result of [{ at: new Date(0) }, { n: 1n }, { missing: undefined }, holed, Number.NaN, new Map()]) {
        const error = yield* Effect.flip(store.complete("apr_1", fence, { state: "succeeded", result }, at(3_000)))
        expect(error).toMatchObject({ _tag: "StoreError", operation: "complete continuation" })
        expect(error.message).toContain("is not JSON")
      }
      const after = yield* store.get("apr_1")
      expect([after.state, after.fence, after.sealed === null]).toEqual(["waiting", fence, false])
      // `undefined` (a `Schema.Void` success, encoded) is no result.
      const ended = yield* store.complete("apr_1", fence, { state: "succeeded", result: undefined }, at(3_000))
      expect([ended.state, (yield* store.get("apr_1")).result]).toEqual(["succeeded", null])
    }))

  it.scoped("a row edited behind gavel's back is a StoreError naming it, not a continuation", () =>
    Effect.gen(function*() {
      const { filename, store } = yield* claimedOne
      yield* raw(filename, (db) => db.exec(`UPDATE gavel_continuations SET delivery = 'sometimes'`))
      const error = yield* Effect.flip(store.get("apr_1"))
      expect(error).toMatchObject({ _tag: "StoreError", operation: "get continuation" })
      expect(error.message).toContain(`stored continuation "apr_1" is unreadable`)
      expect(yield* Effect.flip(store.claim({ owner: "w", now: at(10 * 60_000), limit: 5 }))).toMatchObject({
        _tag: "StoreError"
      })
    }))
})

describe("Sqlite.layer refuses, without writing to the file,", () => {
  it.scoped("a file that is not a SQLite database", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "notes.txt")
      fs.writeFileSync(filename, "These are my notes, not a database.\n".repeat(200))
      const before = listing(dir)
      const error = yield* openError(filename)
      expect(error).toBeInstanceOf(Sqlite.SqliteOpenError)
      expect(error).toMatchObject({ _tag: "SqliteOpenError", filename, reason: "NotADatabase" })
      expect(error.message).toContain(`"${filename}" is not a SQLite database`)
      expect(listing(dir)).toEqual(before)
    }))

  it.scoped("a SQLite database of another application", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "crm.db")
      yield* raw(filename, (db) => {
        db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.prepare("INSERT INTO customers (name) VALUES (?)").run("Ada")
      })
      const before = listing(dir)
      const error = yield* openError(filename)
      expect(error).toMatchObject({ _tag: "SqliteOpenError", filename, reason: "NotAGavelDatabase" })
      expect(error.message).toContain("customers")
      expect(listing(dir)).toEqual(before)
    }))

  it.scoped("a database marked with another application id, even without tables", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "other.db")
      yield* raw(filename, (db) => db.pragma("application_id = 42"))
      const before = listing(dir)
      const error = yield* openError(filename)
      expect(error).toMatchObject({ reason: "NotAGavelDatabase" })
      expect(error.message).toContain("0x2a")
      expect(listing(dir)).toEqual(before)
    }))

  it.scoped("a gavel database migrated by a newer gavel", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "gavel.db")
      yield* withDatabase(filename, Effect.flatMap(AuditSink.AuditSink, (sink) => sink.append(entry(1))))
      yield* raw(filename, (db) => {
        db.prepare("INSERT INTO gavel_migrations (migration_id, name) VALUES (?, ?)").run(
          Sqlite.schemaVersion + 1,
          "from_the_future"
        )
      })
      const before = listing(dir)
      expect(Object.keys(before)).toEqual(["gavel.db"])
      const error = yield* openError(filename)
      expect(error).toMatchObject({ _tag: "SqliteOpenError", filename, reason: "NewerSchema" })
      expect(error.message).toContain(`schema version is ${Sqlite.schemaVersion + 1}`)
      expect(listing(dir)).toEqual(before)
    }))

  it.scoped("a file in a directory that does not exist, as Unavailable", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "missing", "gavel.db")
      const error = yield* openError(filename)
      expect(error).toMatchObject({ _tag: "SqliteOpenError", filename, reason: "Unavailable" })
      expect(error.message).toContain("its directory does not exist")
      expect(fs.readdirSync(dir)).toEqual([])
    }))

  it.scoped("a directory, as NotADatabase", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "gavel.db")
      fs.mkdirSync(filename)
      const before = listing(dir)
      const error = yield* openError(filename)
      expect(error).toMatchObject({ reason: "NotADatabase" })
      expect(error.message).toBe(`"${filename}" is not a SQLite database: it is a directory`)
      expect(listing(dir)).toEqual(before)
      expect(fs.readdirSync(filename)).toEqual([])
    }))

  it.scoped("an empty file with a -wal beside it, as NotADatabase, leaving both as they were", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "gavel.db")
      fs.writeFileSync(filename, "")
      fs.writeFileSync(`${filename}-wal`, Buffer.alloc(4096, 7))
      const before = listing(dir)
      for (const create of [true, false]) {
        const error = yield* openError(filename, { create })
        expect(error).toMatchObject({ reason: "NotADatabase" })
        expect(error.message).toBe(`"${filename}" is not a SQLite database: it is empty, with a -wal file beside it`)
        expect(listing(dir)).toEqual(before)
      }
    }))

  it.scoped("a WAL database of another application, creating no -wal or -shm file beside it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "crm.db")
      yield* raw(filename, (db) => {
        db.pragma("journal_mode = WAL")
        db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
      })
      const before = listing(dir)
      expect(Object.keys(before)).toEqual(["crm.db"])
      for (const create of [true, false]) {
        const error = yield* openError(filename, { create })
        expect(error).toMatchObject({ reason: "NotAGavelDatabase" })
        expect(error.message).toContain("no gavel application id")
        expect(listing(dir)).toEqual(before)
      }
    }))

  it.scoped("another application's database with a -wal left by a crash, without replaying it into the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      /**
       * What a crashed writer leaves: the database, and commits that are
       * only in its -wal (a read-write connection would checkpoint them into
       * the database when it closes). `checkpointed`: whether the table
       * itself made it into the database file before.
       */
      const crashed = (name: string, checkpointed: boolean) => {
        const filename = path.join(dir, name)
        const db = new Database(filename)
        db.pragma("journal_mode = WAL")
        db.pragma("wal_autocheckpoint = 0")
        db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        if (checkpointed) db.pragma("wal_checkpoint(TRUNCATE)")
        db.prepare("INSERT INTO customers (name) VALUES (?)").run("Ada")
        for (const suffix of ["", "-wal", "-shm"]) fs.copyFileSync(filename + suffix, path.join(dir, `copy${suffix}`))
        db.close()
        for (const suffix of ["", "-wal", "-shm"]) fs.renameSync(path.join(dir, `copy${suffix}`), filename + suffix)
        return filename
      }
      const withTable = crashed("crm.db", true)
      const before = listing(dir)
      expect(Object.keys(before)).toEqual(["crm.db", "crm.db-shm", "crm.db-wal"])
      const error = yield* openError(withTable)
      expect(error).toMatchObject({ reason: "NotAGavelDatabase" })
      expect(error.message).toContain("no gavel application id")
      expect(listing(dir)).toEqual(before)

      // Everything in the -wal: only reading it tells, and reading it
      // updates the -shm index as every reader does; the database and the
      // -wal stay as they were.
      const allInWal = crashed("new.db", false)
      const files = () => Object.fromEntries(Object.entries(listing(dir)).filter(([name]) => !name.endsWith("-shm")))
      const kept = files()
      const second = yield* openError(allInWal)
      expect(second).toMatchObject({ reason: "NotAGavelDatabase" })
      expect(second.message).toContain("customers")
      expect(files()).toEqual(kept)

      // The same through a symbolic link elsewhere: SQLite looks for the
      // -wal beside the file the link leads to, and so does the examination.
      const link = path.join(yield* tempDir, "link.db")
      fs.symlinkSync(allInWal, link)
      const third = yield* openError(link)
      expect(third).toMatchObject({ reason: "NotAGavelDatabase" })
      expect(files()).toEqual(kept)
    }))
})

describe("Sqlite.layer refuses a damaged file, leaving it as it was,", () => {
  /** A gavel database with a few events, as bytes: 17 pages of 4096 (one an index of migration 3). */
  const gavelBytes = Effect.gen(function*() {
    const filename = path.join(yield* tempDir, "gavel.db")
    yield* withDatabase(
      filename,
      Effect.flatMap(AuditSink.AuditSink, (sink) => Effect.forEach([1, 2, 3], (n) => sink.append(entry(n))))
    )
    return new Uint8Array(fs.readFileSync(filename))
  }).pipe(Effect.scoped, Effect.runSync)

  /** Writes `bytes` as the only file of a new directory, opens it, and checks the directory did not change. */
  const refused = (bytes: Uint8Array, options: Omit<Sqlite.Options, "filename"> = {}) =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "gavel.db")
      fs.writeFileSync(filename, bytes)
      const before = listing(dir)
      const error = yield* openError(filename, options)
      expect(listing(dir)).toEqual(before)
      return error
    }))

  it.effect("a gavel database cut short, named as truncated", () =>
    Effect.gen(function*() {
      expect(gavelBytes.length).toBe(27 * 4096)
      const error = yield* refused(gavelBytes.subarray(0, 8192))
      expect(error).toMatchObject({ reason: "NotADatabase" })
      expect(error.detail).toBe("it is truncated: its header counts 27 pages of 4096 bytes, the file has 8192 bytes")
    }))

  it.effect.prop(
    "a gavel database cut anywhere: NotADatabase, nothing written or created",
    [fc.integer({ min: 1, max: 17 * 4096 - 1 }), fc.boolean()],
    ([length, create]) =>
      Effect.gen(function*() {
        const error = yield* refused(gavelBytes.subarray(0, length), { create })
        expect(error).toMatchObject({ reason: "NotADatabase" })
      })
  )

  it.effect.prop(
    "any bytes that are not a gavel database (with or without SQLite's header): refused, nothing written or created",
    [
      fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 3000 }),
        fc.uint8Array({ maxLength: 3000 }).map((rest) => new Uint8Array([...gavelBytes.subarray(0, 16), ...rest])),
        fc.uint8Array({ maxLength: 3000 }).map((rest) => new Uint8Array([...gavelBytes.subarray(0, 108), ...rest]))
      ),
      fc.boolean()
    ],
    ([bytes, create]) =>
      Effect.gen(function*() {
        const error = yield* refused(bytes, { create })
        expect(["NotADatabase", "NotAGavelDatabase"]).toContain(error.reason)
      })
  )
})

describe("Sqlite.layer with create: false", () => {
  it.scoped("refuses as Missing a path with no gavel database, creating nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const empty = path.join(dir, "empty.db")
      fs.writeFileSync(empty, "")
      const emptyWal = path.join(dir, "empty-wal.db")
      yield* raw(emptyWal, (db) => db.pragma("journal_mode = WAL"))
      const emptyRollback = path.join(dir, "empty-rollback.db")
      yield* raw(emptyRollback, (db) => db.exec("CREATE TABLE t (x); DROP TABLE t"))
      const before = listing(dir)
      const cases = [
        [path.join(dir, "missing.db"), "the file does not exist"],
        [path.join(dir, "nowhere", "gavel.db"), "its directory does not exist"],
        [empty, "it is empty"],
        [emptyWal, "it is empty"],
        [emptyRollback, "it is empty"],
        [":memory:", "an in-memory database starts empty"]
      ] as const
      for (const [filename, detail] of cases) {
        const error = yield* openError(filename, { create: false })
        expect(error).toMatchObject({ _tag: "SqliteOpenError", filename, reason: "Missing", detail })
        expect(error.message).toBe(`No gavel database at "${filename}": ${detail}`)
      }
      expect(listing(dir)).toEqual(before)
    }))

  it.scoped("opens a gavel database a service has open, whose header is still in the -wal", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const service = yield* Layer.build(Sqlite.layer({ filename }))
      yield* Effect.flatMap(AuditSink.AuditSink, (sink) => sink.append(entry(1))).pipe(Effect.provide(service))
      // The file itself does not say it is gavel's yet: only its -wal does.
      expect(fs.readFileSync(filename).readInt32BE(68)).toBe(0)
      const events = yield* withDatabase(
        filename,
        Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read()),
        { create: false }
      )
      expect(events.map((e) => e.sequence)).toEqual([1])
    }))
})

// -----------------------------------------------------------------------------
// tampering
// -----------------------------------------------------------------------------

describe("a tampered SQLite trail", () => {
  it.scoped("reads back as stored: an edited event fails verification at its sequence", () =>
    Effect.gen(function*() {
      const { events } = yield* tampered(6, (db) => {
        db.prepare("UPDATE gavel_audit_events SET data = ? WHERE sequence = 4").run(JSON.stringify({ n: 999 }))
      })
      expect(events.length).toBe(6)
      expect(events[3]!.data).toEqual({ n: 999 })
      expect(broken(Audit.verify(events))).toEqual({ sequence: 4, problem: "edited" })
    }))

  it.scoped("an edited event that was re-hashed is caught by the next event's link", () =>
    Effect.gen(function*() {
      const { events } = yield* tampered(6, (db) => {
        const row = db.prepare("SELECT * FROM gavel_audit_events WHERE sequence = 3").get() as Record<string, unknown>
        const forged = Audit.seal(
          { ...entry(3), data: { n: 3, vote: { verdict: "reject", note: null } } },
          { sequence: 2, hash: String(row["previous_hash"]) }
        )
        db.prepare("UPDATE gavel_audit_events SET data = ?, hash = ? WHERE sequence = 3").run(
          JSON.stringify(forged.data),
          forged.hash
        )
      })
      expect(broken(Audit.verify(events))).toEqual({ sequence: 3, problem: "edited" })
    }))

  it.scoped("a row that no longer reads as an event comes back with its raw columns and fails as edited", () =>
    Effect.gen(function*() {
      const { events } = yield* tampered(6, (db) => {
        db.prepare("UPDATE gavel_audit_events SET data = 'not json {' WHERE sequence = 2").run()
        db.prepare("UPDATE gavel_audit_events SET type = 'approval.bribed', at = 'yesterday' WHERE sequence = 5").run()
      })
      expect(events.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6])
      expect(events[1]!.data).toEqual({ $unreadable: { data: "not json {" } })
      expect(events[4]!.data).toEqual({ $unreadable: { type: "approval.bribed", at: "yesterday" } })
      expect(broken(Audit.verify(events))).toEqual({ sequence: 2, problem: "edited" })
      expect(broken(Audit.verify(events.slice(2).map((e) => ({ ...e, sequence: e.sequence - 2 }))))).toMatchObject({
        problem: "edited"
      })
    }))

  it.scoped("a deleted event is missing", () =>
    Effect.gen(function*() {
      const { events } = yield* tampered(6, (db) => db.prepare("DELETE FROM gavel_audit_events WHERE sequence = 3").run())
      expect(events.map((e) => e.sequence)).toEqual([1, 2, 4, 5, 6])
      expect(broken(Audit.verify(events))).toEqual({ sequence: 3, problem: "missing" })
    }))

  it.scoped("two events that swapped sequence numbers break the chain where they meet", () =>
    Effect.gen(function*() {
      const { events } = yield* tampered(6, (db) => {
        db.exec(`UPDATE gavel_audit_events SET sequence = 1000 WHERE sequence = 3;
          UPDATE gavel_audit_events SET sequence = 3 WHERE sequence = 4;
          UPDATE gavel_audit_events SET sequence = 4 WHERE sequence = 1000;`)
      })
      expect(events.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6])
      const found = broken(Audit.verify(events))
      expect(["edited", "reordered"]).toContain(found.problem)
      expect([2, 3]).toContain(found.sequence)
    }))

  it.scoped("a trail cut short is truncated against an anchor, and intact without one", () =>
    Effect.gen(function*() {
      const { events, head } = yield* tampered(6, (db) => db.prepare("DELETE FROM gavel_audit_events WHERE sequence > 4").run())
      expect(head.sequence).toBe(6)
      expect(Audit.verify(events)._tag).toBe("Intact")
      expect(broken(Audit.verify(events, { anchor: head }))).toEqual({ sequence: 5, problem: "truncated" })
    }))

  it.scoped("appends after a tampered row keep chaining to the stored head", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "gavel.db")
      yield* withDatabase(filename, Effect.flatMap(AuditSink.AuditSink, (sink) => sink.append(entry(1))))
      yield* raw(filename, (db) => db.prepare("UPDATE gavel_audit_events SET actor = 'mallory'").run())
      const events = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const sink = yield* AuditSink.AuditSink
          const second = yield* sink.append(entry(2))
          expect(second.sequence).toBe(2)
          return yield* sink.read()
        })
      )
      expect(events[1]!.previousHash).toBe(events[0]!.hash)
      expect(broken(Audit.verify(events))).toEqual({ sequence: 1, problem: "edited" })
    }))
})

describe("Sqlite AuditSink append", () => {
  it.scoped("refuses an entry that cannot be stored as JSON, and writes nothing", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const [error, events] = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const sink = yield* AuditSink.AuditSink
          const error = yield* Effect.flip(sink.append({ ...entry(1), data: { amount: 10n } }))
          return [error, yield* sink.read()] as const
        })
      )
      expect(error).toBeInstanceOf(Approval.StoreError)
      expect(error).toMatchObject({ operation: "append", component: "audit trail" })
      expect(error.message).toMatch(/^Audit trail append failed: /)
      expect(events).toEqual([])
    }))

  it.scoped("names the audit trail, not the approval store, when the database fails under it", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const [append, read, store] = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const sink = yield* AuditSink.AuditSink
          const approvals = yield* ApprovalStore.ApprovalStore
          yield* raw(filename, (db) => db.exec("DROP TABLE gavel_audit_events; DROP TABLE gavel_approvals"))
          return [
            yield* Effect.flip(sink.append(entry(1))),
            yield* Effect.flip(sink.read()),
            yield* Effect.flip(approvals.list())
          ] as const
        })
      )
      expect(append.message).toMatch(/^Audit trail append failed: /)
      expect(read.message).toMatch(/^Audit trail read failed: /)
      expect(store.message).toMatch(/^Approval store list failed: /)
    }))

  it.scoped("stores data as the JSON it reads back as, so the stored chain verifies", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "gavel.db")
      const at = new Date(Date.UTC(2026, 0, 2))
      const events = yield* withDatabase(
        filename,
        Effect.gen(function*() {
          const sink = yield* AuditSink.AuditSink
          const appended = yield* sink.append({ ...entry(1), data: { when: at, skipped: undefined, list: [1, undefined] } })
          expect(appended.data).toEqual({ when: at.toISOString(), list: [1, null] })
          return yield* sink.read()
        })
      )
      expect(events[0]!.data).toEqual({ when: at.toISOString(), list: [1, null] })
      expect(Audit.verify(events)._tag).toBe("Intact")
    }))
})
