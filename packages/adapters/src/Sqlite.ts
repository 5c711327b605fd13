/**
 * SQLite persistence for gavel: the {@link ApprovalStore} (approvals, the
 * blocked decisions kept for overriding, overrides) and the {@link AuditSink}
 * (the hash-chained audit trail) in one database file, on
 * `@effect/sql-sqlite-node` (better-sqlite3).
 *
 * - Every transition (vote, consume, cancel, expiry) and every audit append
 *   is one `BEGIN IMMEDIATE` transaction: the current row is read, the pure
 *   transition from `Approval` applied, and the result written, under
 *   SQLite's write lock. Several processes can share the file: of two
 *   concurrent resolvers exactly one wins, and two appenders never share a
 *   sequence number.
 * - The journal is WAL, `synchronous=FULL` by default: a committed
 *   transition survives a crash of the process or of the machine.
 * - The store is `shared`: a runtime polls it for resolutions written by
 *   other processes.
 * - Opening checks the file first and refuses, leaving the path exactly as
 *   it was (no byte written, no file created beside it), a file that is not
 *   SQLite or is truncated, a SQLite database of another application, and a
 *   gavel database written by a newer gavel ({@link SqliteOpenError}).
 *
 * Needs the optional peer dependencies `@effect/sql` and
 * `@effect/sql-sqlite-node`.
 *
 * @example
 * ```ts
 * import * as Sqlite from "@gavel/adapters/Sqlite"
 * import { Governance } from "@gavel/core"
 * import * as Layer from "effect/Layer"
 *
 * const GavelLive = Governance.layer({ policySet }).pipe(
 *   Layer.provide(Sqlite.layer({ filename: "/var/lib/gavel/gavel.db" }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as ApprovalStore from "@gavel/core/ApprovalStore"
import * as AuditOutbox from "@gavel/core/AuditOutbox"
import * as AuditSink from "@gavel/core/AuditSink"
import * as ContinuationStore from "@gavel/core/ContinuationStore"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/sqlite.js"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * How to open the database.
 *
 * - `filename`: the database file; created (with its directory's
 *   permissions) when it does not exist. Its directory must exist.
 * - `create`: `true` (default) creates the database when the file does not
 *   exist or is empty; `false` opens only an existing gavel database and
 *   refuses anything else as `Missing` (what a tool that inspects a
 *   service's database wants: a mistyped path is not a new database).
 * - `synchronous`: `"FULL"` (default) syncs the WAL to disk at every commit,
 *   so a committed transition survives a power loss; `"NORMAL"` syncs only
 *   at checkpoints: a crash of the process loses nothing, a power loss may
 *   lose the last commits, and writes are many times faster.
 * - `busyTimeout`: how long a transaction waits for another connection's
 *   write lock (another process on the same file) before failing with
 *   `StoreError`. Default 5 seconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly filename: string
  readonly create?: boolean | undefined
  readonly synchronous?: Synchronous | undefined
  readonly busyTimeout?: Duration.DurationInput | undefined
}

/**
 * SQLite's `synchronous` setting: see {@link Options}.
 *
 * @since 0.1.0
 * @category models
 */
export const Synchronous = Schema.Literal("FULL", "NORMAL")

/**
 * @since 0.1.0
 * @category models
 */
export type Synchronous = typeof Synchronous.Type

/**
 * The `PRAGMA application_id` of a gavel database ("GAVL" in ASCII). A
 * database with another non-zero application id belongs to another
 * application and is refused.
 *
 * @since 0.1.0
 * @category constants
 */
export const applicationId: number = internal.applicationId

/**
 * The newest schema version (migration id) this code knows. A database
 * whose migrations table records a newer one was written by a newer gavel
 * and is refused.
 *
 * @since 0.1.0
 * @category constants
 */
export const schemaVersion: number = internal.latestMigration

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a database file was not opened. Every refusal leaves the path as it
 * was: nothing is written to the file or its `-wal`, and no file is created
 * beside it (SQLite's `-wal` and `-shm` included). Two exceptions, both
 * SQLite's own bookkeeping: reading a `-wal` (a WAL database that is
 * gavel's or empty with a `-wal` beside it) updates the `-shm` index, as
 * every reader does; and a gavel database is read as gavel opens it, so
 * SQLite creates its `-wal` and `-shm` while it reads it and removes them
 * when it closes it. See docs/sqlite.md, "Refusals".
 *
 * - `NotADatabase`: the path is not a SQLite database: a directory, a file
 *   without SQLite's header, one shorter than its header says (truncated),
 *   or one SQLite cannot read (encrypted or corrupted).
 * - `NotAGavelDatabase`: a SQLite database of another application: it has
 *   tables and no gavel application id, or another application's id.
 * - `NewerSchema`: a gavel database migrated by a newer gavel; upgrade this
 *   one rather than risk writing a schema it does not know.
 * - `Missing`: with `create: false`, there is no gavel database at the
 *   path: it does not exist (or its directory does not), or it is empty.
 * - `Unavailable`: the file could not be opened, read or migrated (missing
 *   directory, permissions, locked by another process past the busy
 *   timeout, disk full).
 *
 * @since 0.1.0
 * @category errors
 */
export class SqliteOpenError extends Schema.TaggedError<SqliteOpenError>()("SqliteOpenError", {
  filename: Schema.String,
  reason: Schema.Literal("NotADatabase", "NotAGavelDatabase", "NewerSchema", "Missing", "Unavailable"),
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    switch (this.reason) {
      case "NotADatabase":
        return `"${this.filename}" is not a SQLite database: ${this.detail}`
      case "NotAGavelDatabase":
        return `"${this.filename}" is a SQLite database of another application: ${this.detail}`
      case "NewerSchema":
        return `"${this.filename}" was written by a newer gavel: ${this.detail}`
      case "Missing":
        return `No gavel database at "${this.filename}": ${this.detail}`
      case "Unavailable":
        return `Cannot open "${this.filename}": ${this.detail}`
    }
  }
}

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * The approval store over an open gavel database (the client of
 * {@link layer}): every transition is one `BEGIN IMMEDIATE` transaction.
 * Inside a transaction the caller opened on the same client, it runs as
 * part of that transaction.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeApprovalStore: Effect.Effect<ApprovalStore.Service, never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  internal.makeApprovalStore
)

/**
 * The audit sink over an open gavel database (the client of {@link layer}):
 * each append reads the head, seals the entry after it and inserts it in one
 * `BEGIN IMMEDIATE` transaction. `read` returns the events as stored, never
 * re-sealed: a row that no longer reads back as an event comes back with
 * its raw columns under `data.$unreadable`, so that `Audit.verify` reports
 * it as `edited`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAuditSink: Effect.Effect<AuditSink.Service, never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  internal.makeAuditSink
)

const MAX_BUSY_TIMEOUT = 2_147_483_647

const open = (options: Options): Effect.Effect<
  Context.Context<SqliteClient.SqliteClient | SqlClient.SqlClient>,
  SqliteOpenError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const filename = options.filename
    const create = options.create ?? true
    const refuse = (reason: SqliteOpenError["reason"], detail: string, cause?: unknown) =>
      new SqliteOpenError(cause === undefined ? { filename, reason, detail } : { filename, reason, detail, cause })
    const refused = (refusal: internal.Refusal) => refuse(refusal.reason, refusal.detail, refusal.cause)
    const unavailable = (error: unknown) => refuse("Unavailable", internal.describe(error), error)
    const sqlFailure = (error: SqlError) => refused(internal.failure(error))

    const check = (found: internal.Inspection): Effect.Effect<void, SqliteOpenError> => {
      const refusal = internal.judge(found)
      if (refusal !== undefined) return refused(refusal)
      // Past the judge, a database without gavel's id is empty.
      if (!create && found.applicationId !== internal.applicationId) return refuse("Missing", "it is empty")
      return Effect.void
    }

    // Before anything can write to the path or create a file beside it.
    if (filename === ":memory:" || filename === "") {
      if (!create) return yield* refuse("Missing", "an in-memory database starts empty")
    } else {
      const examined = yield* Effect.mapError(internal.examine(filename), refused)
      if (examined._tag === "Found") yield* check(examined.inspection)
      if (examined._tag === "Missing") {
        if (!examined.directory) {
          return yield* refuse(create ? "Unavailable" : "Missing", "its directory does not exist")
        }
        if (!create) return yield* refuse("Missing", "the file does not exist")
      }
    }

    // WAL is switched on below, once the file is known to be ours: the
    // client would otherwise write to whatever file it was given.
    const context = yield* Layer.build(SqliteClient.layer({ filename, disableWAL: true })).pipe(
      Effect.catchAllCause((cause) => Effect.fail(unavailable(Cause.squash(cause))))
    )
    const sql = Context.get(context, SqlClient.SqlClient)
    const pragma = (statement: string) => Effect.mapError(sql.unsafe(statement), sqlFailure)

    const busy = Duration.toMillis(Duration.decode(options.busyTimeout ?? "5 seconds"))
    yield* pragma(`PRAGMA busy_timeout = ${Math.min(MAX_BUSY_TIMEOUT, Math.max(0, Math.round(busy)))}`)

    // Only reads until the file is known to be empty or gavel's; read again
    // through this connection, as the file may have changed since it was examined.
    const found = yield* Effect.mapError(internal.inspect(sql), sqlFailure)
    yield* check(found)
    yield* pragma("PRAGMA journal_mode = WAL")
    // Never the caller's text in a statement: only the two values it may be.
    yield* pragma(`PRAGMA synchronous = ${options.synchronous === "NORMAL" ? "NORMAL" : "FULL"}`)
    const current = found.applicationId === internal.applicationId && found.migration === internal.latestMigration
    if (!current) {
      // Claim and migrate under the write lock, checking again: another
      // process may have created or migrated the file since the first look.
      yield* internal.immediate(sql, sqlFailure)(
        Effect.gen(function*() {
          const again = yield* Effect.mapError(internal.inspect(sql), sqlFailure)
          yield* check(again)
          if (again.applicationId === 0) yield* pragma(`PRAGMA application_id = ${internal.applicationId}`)
          yield* internal.migrate.pipe(
            Effect.provideService(SqlClient.SqlClient, sql),
            Effect.mapError(unavailable),
            Effect.catchAllDefect((defect) => Effect.fail(unavailable(defect)))
          )
        })
      )
    }
    return context
  })

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Opens (creating if needed, unless `create: false`) and migrates the gavel
 * database at `options.filename`, and provides the {@link ApprovalStore} and
 * the {@link AuditSink} over it, with the `SqlClient` (and `SqliteClient`,
 * for `backup`) for the host's own queries, and `ApprovalStore.Atomic`: the
 * runtime writes each step's transition and audit events in one transaction. Also the `AuditOutbox` and
 * the `ContinuationStore` (the work approvals release, in the same database:
 * its `store` is this layer's approval store, its `atomically` one
 * `BEGIN IMMEDIATE` transaction). The connection closes with the
 * layer. Refuses, with {@link SqliteOpenError} and leaving the path as it
 * was, a file that is not SQLite or is truncated, another application's
 * database, and a database of a newer gavel.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<ApprovalStore.ApprovalStore | ApprovalStore.Atomic | AuditOutbox.AuditOutbox | AuditSink.AuditSink | ContinuationStore.ContinuationStore | SqlClient.SqlClient | SqliteClient.SqliteClient, SqliteOpenError> =>
  Layer.scopedContext(
    Effect.map(open(options), (context) => {
      const sql = Context.get(context, SqlClient.SqlClient)
      const store = internal.makeApprovalStore(sql)
      const sink = internal.makeAuditSink(sql)
      // A step's transition and its audit events: one transaction.
      return context.pipe(
        Context.add(ApprovalStore.ApprovalStore, store),
        Context.add(AuditSink.AuditSink, sink),
        Context.add(ApprovalStore.Atomic, internal.atomicSteps(sql, store, sink)),
        Context.add(AuditOutbox.AuditOutbox, internal.makeOutbox(sql, store)),
        Context.add(ContinuationStore.ContinuationStore, internal.makeContinuationStore(sql, store))
      )
    })
  )

/**
 * {@link layer} with its options read from Effect's `Config`:
 * `sqlite.filename` (required), `sqlite.synchronous` (`FULL` or `NORMAL`,
 * default `FULL`) and `sqlite.busy_timeout_millis` (default 5000). With
 * Effect's default provider the environment variables are
 * `sqlite.filename`…; behind
 * `ConfigProvider.constantCase(ConfigProvider.fromEnv())` they are
 * `SQLITE_FILENAME`, `SQLITE_SYNCHRONOUS`, `SQLITE_BUSY_TIMEOUT_MILLIS`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<
  ApprovalStore.ApprovalStore | ApprovalStore.Atomic | AuditOutbox.AuditOutbox | AuditSink.AuditSink | ContinuationStore.ContinuationStore | SqlClient.SqlClient | SqliteClient.SqliteClient,
  SqliteOpenError | ConfigError.ConfigError
> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      filename: Config.string("filename"),
      synchronous: Config.literal("FULL", "NORMAL")("synchronous").pipe(Config.withDefault("FULL" as const)),
      busyTimeout: Config.integer("busy_timeout_millis").pipe(
        Config.validate({ message: "must be a non-negative number of milliseconds", validation: (n) => n >= 0 }),
        Config.withDefault(5_000),
        Config.map(Duration.millis)
      )
    }).pipe(Config.nested("sqlite")),
    layer
  )
)

