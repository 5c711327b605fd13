/**
 * A SQLite file as gavel finds it, before the store opens it: gavel's
 * application id, the migrations of its schema, what a database holds
 * ({@link inspect}), and what refuses a file ({@link judge},
 * {@link examine}) while leaving it exactly as it was.
 *
 * @internal
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, driverCode, newerSchema, recordedMigration, someTables } from "./sqlStore.js"

// -----------------------------------------------------------------------------
// constants
// -----------------------------------------------------------------------------

/**
 * `PRAGMA application_id` of a gavel database: "GAVL" in ASCII.
 *
 * @internal
 */
export const applicationId = 0x4741564c

/**
 * The table @effect/sql's Migrator records gavel's migrations in.
 *
 * @internal
 */
export const migrationsTable = "gavel_migrations"

// -----------------------------------------------------------------------------
// migrations
// -----------------------------------------------------------------------------

const statements = (...ddl: ReadonlyArray<string>): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.forEach(ddl, (s) => sql.unsafe(s), { discard: true }))

/**
 * gavel's schema, one migration per key (`<id>_<name>`), run by
 * @effect/sql's Migrator. Never edit a released migration: add one.
 *
 * @internal
 */
export const migrations: Record<string, Effect.Effect<void, SqlError, SqlClient.SqlClient>> = {
  "1_gavel_tables": statements(
    `CREATE TABLE gavel_approvals (
  id TEXT PRIMARY KEY NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  requester TEXT NOT NULL,
  tenant TEXT,
  decision_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  action_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  resolved_at INTEGER,
  consumed_at INTEGER,
  version INTEGER NOT NULL,
  request TEXT NOT NULL
) STRICT`,
    `CREATE INDEX gavel_approvals_pending ON gavel_approvals (created_at) WHERE status = 'pending'`,
    `CREATE INDEX gavel_approvals_due ON gavel_approvals (expires_at) WHERE status = 'pending'`,
    `CREATE INDEX gavel_approvals_decision ON gavel_approvals (decision_id)`,
    `CREATE TABLE gavel_decisions (
  decision_id TEXT PRIMARY KEY NOT NULL,
  request_id TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  policy_id TEXT NOT NULL,
  outcome TEXT NOT NULL,
  evaluated_at INTEGER NOT NULL,
  record TEXT NOT NULL
) STRICT`,
    `CREATE TABLE gavel_overrides (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  overrides TEXT NOT NULL,
  policy_id TEXT NOT NULL,
  granted_by TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  tenant TEXT,
  coverage TEXT NOT NULL,
  actor TEXT NOT NULL,
  granted_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  override TEXT NOT NULL
) STRICT`,
    `CREATE INDEX gavel_overrides_scope ON gavel_overrides (kind, name, expires_at)`,
    `CREATE TABLE gavel_audit_events (
  sequence INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  at TEXT NOT NULL,
  decision_id TEXT,
  approval_id TEXT,
  request_id TEXT,
  correlation_id TEXT,
  actor TEXT,
  trace TEXT,
  data TEXT NOT NULL,
  previous_hash TEXT NOT NULL,
  hash TEXT NOT NULL
) STRICT`,
    `CREATE INDEX gavel_audit_events_approval ON gavel_audit_events (approval_id) WHERE approval_id IS NOT NULL`,
    `CREATE INDEX gavel_audit_events_decision ON gavel_audit_events (decision_id) WHERE decision_id IS NOT NULL`
  ),
  // The caps on pending approvals count a requester's and a tenant's pending rows.
  "2_gavel_pending_caps": statements(
    `CREATE INDEX gavel_approvals_pending_requester ON gavel_approvals (requester) WHERE status = 'pending'`,
    `CREATE INDEX gavel_approvals_pending_tenant ON gavel_approvals (tenant) WHERE status = 'pending'`
  ),
  // `list` of every status, or of one that is not 'pending' (the approvals
  // API's history), walks the approvals oldest first and stops at its limit
  // instead of sorting the whole table. The rowid, in every index, orders
  // approvals of the same millisecond as Postgres' (created_at, seq) does.
  "3_gavel_approvals_created": statements(
    `CREATE INDEX gavel_approvals_created ON gavel_approvals (created_at)`
  ),
  // Events carry an id (found again after a redelivery), and the events of
  // steps wait in the outbox for a sink outside this database, oldest first.
  "4_gavel_audit_outbox": statements(
    `ALTER TABLE gavel_audit_events ADD COLUMN event_id TEXT`,
    `CREATE TABLE gavel_audit_outbox (
  position INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  entry TEXT NOT NULL,
  anchor INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  claimed_until INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  last_error TEXT
) STRICT`,
    `CREATE INDEX gavel_audit_outbox_claim ON gavel_audit_outbox (claimed_until, position)`
  ),
  // The work approvals release (issue 18), one row per approval: a claim
  // takes those waiting or started whose lease is free (joining their
  // approvals by primary key), oldest first. No foreign key: SQLite enforces
  // none without a pragma, and a unit writes the continuation before its
  // approval; the claim's join ignores a continuation without one.
  "5_gavel_continuations": statements(
    `CREATE TABLE gavel_continuations (
  approval_id TEXT PRIMARY KEY NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  handler TEXT NOT NULL,
  handler_version INTEGER NOT NULL,
  delivery TEXT NOT NULL,
  max_attempts INTEGER NOT NULL,
  lease_millis INTEGER NOT NULL,
  sealed TEXT,
  state TEXT NOT NULL,
  owner TEXT,
  lease_until INTEGER,
  fence INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  result TEXT,
  error TEXT
) STRICT`,
    // The claim walks the open continuations oldest first: finished ones
    // never slow it down, however many there are.
    `CREATE INDEX gavel_continuations_open ON gavel_continuations (created_at) WHERE state IN ('waiting', 'started')`,
    `CREATE INDEX gavel_continuations_created ON gavel_continuations (created_at)`
  )
}

/**
 * The id of the newest migration this code knows.
 *
 * @internal
 */
export const latestMigration: number = Math.max(...Object.keys(migrations).map((key) => Number.parseInt(key, 10)))

/**
 * Runs the migrations not yet recorded in {@link migrationsTable}.
 *
 * @internal
 */
export const migrate = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: migrationsTable })

/**
 * What a database holds before gavel touches it.
 *
 * @internal
 */
export interface Inspection {
  readonly applicationId: number
  /** Tables, indexes, views and triggers, SQLite's own excluded. */
  readonly objects: ReadonlyArray<string>
  /** The newest migration recorded, if the migrations table exists. */
  readonly migration: number | null
}

/**
 * Reads the application id, the schema objects and the newest migration; writes nothing.
 *
 * @internal
 */
export const inspect = (sql: SqlClient.SqlClient): Effect.Effect<Inspection, SqlError> =>
  Effect.gen(function*() {
    const [id] = yield* sql<{ readonly application_id: number }>`PRAGMA application_id`
    const objects = yield* sql<{ readonly name: string }>`SELECT name FROM sqlite_master
      WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name`
    const names = objects.map((o) => o.name)
    const migration = yield* recordedMigration(sql, names, migrationsTable, migrationsTable)
    return { applicationId: id?.application_id ?? 0, objects: names, migration }
  })

// -----------------------------------------------------------------------------
// examining a file before opening it
// -----------------------------------------------------------------------------

/**
 * Why a file is not opened; `Sqlite.ts` turns it into a `SqliteOpenError`.
 *
 * @internal
 */
export interface Refusal {
  readonly reason: "NotADatabase" | "NotAGavelDatabase" | "NewerSchema" | "Unavailable"
  readonly detail: string
  readonly cause?: unknown
}

const refusal = (reason: Refusal["reason"], detail: string, cause?: unknown): Refusal =>
  cause === undefined ? { reason, detail } : { reason, detail, cause }

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`

const otherApplication = (id: number): Refusal =>
  refusal("NotAGavelDatabase", `its application id is ${hex(id)}, gavel's is ${hex(applicationId)}`)

const noGavelId = (objects: ReadonlyArray<string> | undefined): Refusal =>
  refusal(
    "NotAGavelDatabase",
    objects === undefined
      ? "it has tables and no gavel application id"
      : `it has tables (${someTables(objects)}) and no gavel application id`
  )

/**
 * What refuses a database, from what {@link inspect} found: another
 * application's id, another application's tables, a newer gavel's schema.
 * An empty database and a gavel database this code knows pass.
 *
 * @internal
 */
export const judge = (found: Inspection): Refusal | undefined => {
  if (found.applicationId !== applicationId && found.applicationId !== 0) return otherApplication(found.applicationId)
  if (found.applicationId === 0 && found.objects.length > 0) return noGavelId(found.objects)
  if (found.migration !== null && found.migration > latestMigration) {
    return refusal("NewerSchema", newerSchema(found.migration, latestMigration))
  }
  return undefined
}

/**
 * A failed statement or open as a refusal: SQLite's "not a database" and "corrupt" say what the file is.
 *
 * @internal
 */
export const failure = (error: unknown): Refusal => {
  const code = driverCode(error)
  if (code === "SQLITE_NOTADB") {
    return refusal("NotADatabase", "SQLite cannot read it as a database (or it is encrypted or corrupted)", error)
  }
  if (code !== undefined && code.startsWith("SQLITE_CORRUPT")) {
    return refusal("NotADatabase", `it is corrupted: ${describe(error)}`, error)
  }
  return refusal("Unavailable", describe(error), error)
}

/**
 * What {@link examine} found at a path it did not refuse.
 *
 * - `Missing`: nothing there; `directory` says whether its directory exists.
 * - `Found`: a database looked at without writing or creating anything:
 *   empty, or gavel's (any schema version: {@link judge} decides).
 * - `Claimed`: a database that is gavel's by its header, which can only be
 *   read further by opening it as gavel opens its own files (SQLite creates
 *   its `-wal` and `-shm` files to read a WAL database that has none).
 *
 * @internal
 */
export type Examination =
  | { readonly _tag: "Missing"; readonly directory: boolean }
  | { readonly _tag: "Found"; readonly inspection: Inspection }
  | { readonly _tag: "Claimed" }

const emptyDatabase: Inspection = { applicationId: 0, objects: [], migration: null }

const MAGIC = "SQLite format 3\u0000"

/** What the first 108 bytes of a SQLite file say (https://sqlite.org/fileformat.html). */
interface Header {
  readonly pageSize: number
  /** The page count of the header, when it is valid (written by SQLite 3.7.0 or later). */
  readonly pages: number | undefined
  /** Whether SQLite reads it in WAL mode (file format version 2). */
  readonly wal: boolean
  readonly applicationId: number
  /** Page 1's b-tree page type and number of cells: the schema table's root. */
  readonly schemaPage: { readonly type: number; readonly cells: number } | undefined
}

const parseHeader = (bytes: Uint8Array): Header | Refusal => {
  if (bytes.length < 100 || String.fromCharCode(...bytes.subarray(0, 16)) !== MAGIC) {
    return refusal("NotADatabase", "it does not begin with the SQLite header")
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const raw = view.getUint16(16)
  const pageSize = raw === 1 ? 65_536 : raw
  if (pageSize < 512 || pageSize > 65_536 || (pageSize & (pageSize - 1)) !== 0) {
    return refusal("NotADatabase", `its header is damaged: a page size of ${raw}`)
  }
  const counted = view.getUint32(28)
  const valid = counted > 0 && view.getUint32(92) === view.getUint32(24)
  return {
    pageSize,
    pages: valid ? counted : undefined,
    wal: bytes[18] === 2 || bytes[19] === 2,
    applicationId: view.getInt32(68),
    schemaPage: bytes.length >= 108 ? { type: bytes[100]!, cells: view.getUint16(103) } : undefined
  }
}

const isRefusal = (u: object): u is Refusal => "reason" in u

/** What a path is, by `stat`: nothing touched. */
const statOf = (filename: string): fs.Stats | undefined | Refusal => {
  try {
    return fs.statSync(filename)
  } catch (error) {
    return Predicate.hasProperty(error, "code") && error.code === "ENOENT"
      ? undefined
      : refusal("Unavailable", error instanceof Error ? error.message : String(error), error)
  }
}

const exists = (filename: string): boolean => fs.existsSync(filename)

const realPath = (filename: string): string => {
  try {
    return fs.realpathSync(filename)
  } catch {
    return filename
  }
}

const readHeader = (filename: string, size: number): Uint8Array | Refusal => {
  try {
    const fd = fs.openSync(filename, "r")
    try {
      const bytes = new Uint8Array(Math.min(size, 108))
      const read = fs.readSync(fd, bytes, 0, bytes.length, 0)
      return bytes.subarray(0, read)
    } finally {
      fs.closeSync(fd)
    }
  } catch (error) {
    return refusal("Unavailable", error instanceof Error ? error.message : String(error), error)
  }
}

/** Reads the database through a read-only connection: it writes nothing and creates no journal. */
const lookReadOnly = (filename: string): Effect.Effect<Inspection, Refusal> =>
  Effect.scoped(
    Effect.gen(function*() {
      const context = yield* Layer.build(SqliteClient.layer({ filename, readonly: true, disableWAL: true }))
      return yield* inspect(Context.get(context, SqlClient.SqlClient))
    })
  ).pipe(Effect.catchAllCause((cause) => Effect.fail(failure(Cause.squash(cause)))))

/**
 * Looks at `filename` before anything opens it for writing, and refuses
 * what gavel must not open, leaving the path exactly as it was: no byte
 * written, no file created beside it.
 *
 * - With `stat` and a read of its first 108 bytes: a path that is not a
 *   regular file, a file that does not begin with the SQLite header or
 *   whose page size is impossible, and — when no `-wal` or `-journal` file
 *   lies beside it, so that the file is the whole database — one shorter
 *   than its header says (truncated), or not a whole number of pages.
 *   Another application's id in the header refuses the file too.
 * - A WAL database is decided by its header and page 1 as far as they
 *   tell: SQLite creates `-wal` and `-shm` files to read one that has none,
 *   even through a read-only connection, and updates the `-shm` when it
 *   reads a `-wal`. Tables under no application id are refused; an empty
 *   one without a `-wal` is `Found` empty; gavel's without a `-wal` is
 *   `Claimed`.
 * - What is left — a rollback-journal database, and a WAL database whose
 *   file is gavel's or empty with a `-wal` beside it (a service has it
 *   open, or left it so) — is read through a read-only connection. It
 *   writes nothing to the database or its `-wal` or `-journal`: it neither
 *   replays a `-wal` into the database nor rolls back a `-journal`, as a
 *   read-write connection does when it closes or opens. Reading a `-wal`,
 *   it updates the `-shm` index, as every reader does (and creates it if
 *   it is missing).
 *
 * @internal
 */
export const examine = (filename: string): Effect.Effect<Examination, Refusal> =>
  Effect.suspend((): Effect.Effect<Examination, Refusal> => {
    const stat = statOf(filename)
    if (stat === undefined) {
      return Effect.succeed({ _tag: "Missing", directory: exists(path.dirname(path.resolve(filename))) })
    }
    if (isRefusal(stat)) return Effect.fail(stat)
    if (stat.isDirectory()) return Effect.fail(refusal("NotADatabase", "it is a directory"))
    if (!stat.isFile()) return Effect.fail(refusal("NotADatabase", "it is not a regular file"))
    if (stat.size === 0) {
      // A new database — unless a -wal lies beside it (a crash, or another
      // program's): opening it read-write could replay that into the file.
      return exists(`${realPath(filename)}-wal`)
        ? Effect.fail(refusal("NotADatabase", "it is empty, with a -wal file beside it"))
        : Effect.succeed({ _tag: "Found", inspection: emptyDatabase })
    }
    const bytes = readHeader(filename, stat.size)
    if (isRefusal(bytes)) return Effect.fail(bytes)
    const header = parseHeader(bytes)
    if (isRefusal(header)) return Effect.fail(header)
    // SQLite names them after the file a symbolic link leads to.
    const real = realPath(filename)
    const wal = exists(`${real}-wal`)
    if (!wal && !exists(`${real}-journal`)) {
      const expected = header.pages === undefined ? undefined : header.pages * header.pageSize
      if (expected !== undefined && stat.size < expected) {
        return Effect.fail(refusal(
          "NotADatabase",
          `it is truncated: its header counts ${header.pages} pages of ${header.pageSize} bytes, the file has ${stat.size} bytes`
        ))
      }
      if (expected === undefined && stat.size % header.pageSize !== 0) {
        return Effect.fail(refusal(
          "NotADatabase",
          `it is truncated: ${stat.size} bytes is not a whole number of ${header.pageSize}-byte pages`
        ))
      }
    }
    if (header.applicationId !== applicationId && header.applicationId !== 0) {
      return Effect.fail(otherApplication(header.applicationId))
    }
    if (header.wal && header.applicationId === 0) {
      // Gavel sets its id in the transaction that creates its tables, and a
      // checkpoint copies page 1 (the id and the schema's root) whole: tables
      // in the file under no id are never gavel's, whatever a -wal holds.
      const schema = header.schemaPage
      if (schema === undefined || (schema.type !== 0x0d && schema.type !== 0x05)) {
        return Effect.fail(refusal("NotADatabase", "its first page is damaged"))
      }
      if (schema.type === 0x05 || schema.cells > 0) return Effect.fail(noGavelId(undefined))
      if (!wal) return Effect.succeed({ _tag: "Found", inspection: emptyDatabase })
    }
    if (header.wal && !wal) return Effect.succeed({ _tag: "Claimed" })
    return Effect.map(lookReadOnly(filename), (inspection): Examination => ({ _tag: "Found", inspection }))
  })

