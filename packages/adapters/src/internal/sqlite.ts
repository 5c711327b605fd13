/**
 * The SQLite dialect of the SQL store skeleton (`sqlStore.ts`): the
 * `BEGIN IMMEDIATE` transactions, and the hot paths of the approval store
 * (create under caps, transitions, expiry) and of the audit append, which
 * run fixed statements on the transaction's connection. What a file is
 * before it is opened, and its schema, are `sqliteFile.ts`'s (re-exported
 * here, so that `Sqlite.ts` has one internal module).
 *
 * @internal
 */
// Module by module rather than the barrel: a host that only persists
// approvals does not load the policy engine.
import * as Approval from "@gavel/core/Approval"
import * as ApprovalStore from "@gavel/core/ApprovalStore"
import * as Audit from "@gavel/core/Audit"
import type * as AuditOutbox from "@gavel/core/AuditOutbox"
import type * as AuditSink from "@gavel/core/AuditSink"
import type * as ContinuationStore from "@gavel/core/ContinuationStore"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Either from "effect/Either"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as SqlStore from "./sqlStore.js"

export * from "./sqliteFile.js"

/**
 * A one-line description of a failure, with the SQLite code and message when there is one.
 *
 * @internal
 */
export const describe: (error: unknown) => string = SqlStore.describe

// -----------------------------------------------------------------------------
// transactions
// -----------------------------------------------------------------------------

/** Runs `body` in one `BEGIN IMMEDIATE` transaction (see `SqlStore.inTransaction`). */
const beginImmediate = <A, E, R>(
  sql: SqlClient.SqlClient,
  interruptible: boolean,
  body: (conn: Connection) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> => SqlStore.inTransaction(sql, "BEGIN IMMEDIATE", interruptible, body)

/**
 * `inside` the transaction the caller opened on the same client, given its
 * connection, or else `outside`. A `SqlError` from either goes through `onError`.
 */
const enclosed = <A, E, R, E2>(
  inside: (conn: Connection) => Effect.Effect<A, E, R>,
  outside: Effect.Effect<A, E | SqlError, R>,
  onError: (error: SqlError) => E2
): Effect.Effect<A, Exclude<E, SqlError> | E2, R> =>
  mapSqlError(
    Effect.flatMap(
      Effect.serviceOption(SqlClient.TransactionConnection),
      (enclosing): Effect.Effect<A, E | SqlError, R> => Option.isSome(enclosing) ? inside(enclosing.value[0]) : outside
    ),
    onError
  )

/**
 * Runs `effect` in one `BEGIN IMMEDIATE` transaction: the write lock is
 * taken before the first read, so that a read-modify-write never races a
 * writer in another process (a deferred `BEGIN` would fail with
 * `SQLITE_BUSY` when upgrading its read to a write instead of waiting for
 * the busy timeout). Commits on success, rolls back on failure; a
 * `SqlError` (from `effect`, the `BEGIN` or the `COMMIT`) goes through
 * `onError`.
 *
 * Inside a transaction the caller opened on the same client, `effect` runs
 * as part of it: that transaction already holds the connection (taking it
 * again would wait forever), and commits or rolls back everything at once.
 *
 * @internal
 */
export const immediate = <E2>(sql: SqlClient.SqlClient, onError: (error: SqlError) => E2) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, SqlError> | E2, R> =>
  enclosed(
    () => effect,
    beginImmediate(
      sql,
      true,
      (conn) => Effect.provideService(effect, SqlClient.TransactionConnection, [conn, 0] as const)
    ),
    onError
  )

/**
 * Runs `body` on the client's connection in one `BEGIN IMMEDIATE`
 * transaction, as {@link immediate} does, but hands it the connection
 * itself: the store's hot paths run their fixed statements with
 * `Connection.execute` (a prepared-statement cache hit) instead of building,
 * compiling and tracing a `Statement` per query, and take the connection
 * once per transaction instead of once per statement.
 *
 * `body` runs uninterruptibly: it is a handful of synchronous statements,
 * and an interruption then waits for the commit or the rollback rather than
 * landing between them. Waiting for the connection (another fiber's
 * transaction) stays interruptible. Inside a transaction the caller opened
 * on the same client, `body` runs on that transaction's connection, as part
 * of it. A `SqlError` from any statement, the `BEGIN` or the `COMMIT` goes
 * through `onError`; every other failure is `body`'s own.
 *
 * @internal
 */
export const transact = <E2>(sql: SqlClient.SqlClient, onError: (error: SqlError) => E2) =>
<A, E>(body: (conn: Connection) => Effect.Effect<A, E>): Effect.Effect<A, Exclude<E, SqlError> | E2> =>
  enclosed(body, beginImmediate(sql, false, body), onError)

/**
 * Runs `body` on the client's connection outside a transaction (each
 * statement commits by itself), or on the connection of the transaction the
 * caller opened on this client. Taking the connection waits for another
 * fiber's transaction on it, as every `@effect/sql` statement does. A
 * `SqlError` goes through `onError`.
 *
 * @internal
 */
export const withConnection = <E2>(sql: SqlClient.SqlClient, onError: (error: SqlError) => E2) =>
<A, E>(body: (conn: Connection) => Effect.Effect<A, E>): Effect.Effect<A, Exclude<E, SqlError> | E2> =>
  enclosed(body, Effect.scoped(Effect.flatMap(sql.reserve, body)), onError)

const mapSqlError = <A, E, R, E2>(
  effect: Effect.Effect<A, E, R>,
  onError: (error: SqlError) => E2
): Effect.Effect<A, Exclude<E, SqlError> | E2, R> =>
  Effect.mapError(effect, (error) => (isSqlError(error) ? onError(error) : error as Exclude<E, SqlError>))

const isSqlError = (u: unknown): u is SqlError => Predicate.isTagged(u, "SqlError")

/** The number of rows a write changed, from better-sqlite3's run result. */
const changes = (result: unknown): number =>
  Predicate.hasProperty(result, "changes") && typeof result.changes === "number" ? result.changes : -1

// -----------------------------------------------------------------------------
// approval store
// -----------------------------------------------------------------------------

/** The SQLite dialect over `sql` (without transforms). */
const dialect = (sql: SqlClient.SqlClient): SqlStore.Dialect => ({
  sql,
  tables: SqlStore.tables(""),
  insertionOrder: "rowid",
  placeholder: () => "?",
  claimLock: "",
  claimLockOf: () => "",
  isDuplicateKey: (error) => SqlStore.driverCode(error) === "SQLITE_CONSTRAINT_PRIMARYKEY",
  guard: SqlStore.unguarded
})

// The hot paths' statements, fixed texts: each is prepared once by the
// client's statement cache and found there by its text afterwards.
const approvalSql = SqlStore.approvalStatements({ tables: SqlStore.tables(""), placeholder: () => "?" })
// How many of a requester's (a tenant's) approvals are pending, counting no
// further than the cap: the partial indexes of migration 2 answer them.
const countPendingOfRequester = `SELECT count(*) AS n FROM (SELECT 1 FROM gavel_approvals
  WHERE status = 'pending' AND requester = ? LIMIT ?)`
const countPendingOfTenant = `SELECT count(*) AS n FROM (SELECT 1 FROM gavel_approvals
  WHERE status = 'pending' AND tenant IS ? LIMIT ?)`
const selectDue = `SELECT id, version, request FROM gavel_approvals WHERE status = 'pending' AND expires_at <= ?
  ORDER BY created_at, rowid`

/**
 * The approval store over `sql`; the tables must exist.
 *
 * @internal
 */
export const makeApprovalStore = (client: SqlClient.SqlClient): ApprovalStore.Service => {
  const sql = client.withoutTransforms()
  const sqlite = dialect(sql)
  const transaction = (operation: string) => transact(sql, SqlStore.storeError(operation))
  const connection = (operation: string) => withConnection(sql, SqlStore.storeError(operation))

  const load = (
    conn: Connection,
    operation: string,
    approvalId: string
  ): Effect.Effect<
    readonly [number, Approval.ApprovalRequest],
    Approval.ApprovalNotFound | Approval.StoreError | SqlError
  > =>
    Effect.flatMap(
      conn.execute(approvalSql.select, [approvalId], undefined),
      (rows): Effect.Effect<
        readonly [number, Approval.ApprovalRequest],
        Approval.ApprovalNotFound | Approval.StoreError
      > => {
        const row = rows[0] as SqlStore.ApprovalRow | undefined
        if (row === undefined) return Effect.fail(new Approval.ApprovalNotFound({ approvalId }))
        return Either.map(
          SqlStore.decodeRow(operation, approvalId, row.request),
          (request) => [row.version, request] as const
        )
      }
    )

  const write = (
    conn: Connection,
    operation: string,
    version: number,
    next: Approval.ApprovalRequest
  ): Effect.Effect<Approval.ApprovalRequest, Approval.StoreError | SqlError> => {
    const text = SqlStore.encodeRow(operation, next)
    if (Either.isLeft(text)) return Effect.fail(text.left)
    return Effect.flatMap(
      conn.executeRaw(approvalSql.update, SqlStore.updateValues(version, next, text.right)),
      (result) =>
        changes(result) === 1
          ? Effect.succeed(next)
          : Effect.fail(
            new Approval.StoreError({ operation, detail: `approval "${next.id}" changed while it was being written` })
          )
    )
  }

  /** How many rows `statement` counts for `key`, up to `limit` (none without a limit). */
  const countUpTo = (conn: Connection, statement: string, key: string | null, limit: number | undefined) =>
    limit === undefined
      ? Effect.succeed(0)
      : Effect.map(
        // Clamped to a 32-bit LIMIT: no store holds 2^31 pending approvals of one requester.
        conn.execute(statement, [key, Math.min(limit, 2 ** 31 - 1)], undefined),
        (rows) => Number((rows[0] as { readonly n: number } | undefined)?.n ?? 0)
      )

  const create = (
    request: Approval.ApprovalRequest,
    limits?: ApprovalStore.PendingLimits
  ): Effect.Effect<void, Approval.TooManyPending | Approval.StoreError> => {
    const text = SqlStore.newApproval(request)
    if (Either.isLeft(text)) return Effect.fail(text.left)
    const params = SqlStore.insertValues(request, text.right)
    const failed = SqlStore.createFailed(sqlite, request)
    const insert = (conn: Connection) => Effect.asVoid(conn.executeRaw(approvalSql.insert, params))
    if (limits?.perRequester === undefined && limits?.perTenant === undefined) return withConnection(sql, failed)(insert)
    // Counted and inserted under the write lock (`BEGIN IMMEDIATE`): SQLite
    // runs one writer at a time, across processes too, so no other create
    // can slip in between the count and the insert.
    const tenant = request.summary.actor.tenant
    return transact(sql, failed)((conn) =>
      Effect.gen(function*() {
        const ofRequester = yield* countUpTo(conn, countPendingOfRequester, request.requester, limits.perRequester)
        const ofTenant = yield* countUpTo(conn, countPendingOfTenant, tenant, limits.perTenant)
        const refusal = ApprovalStore.limitExceeded(request, limits, ofRequester, ofTenant)
        if (refusal !== undefined) return yield* refusal
        yield* insert(conn)
      })
    )
  }

  return SqlStore.makeApprovalStore(sqlite, {
    create,
    get: (approvalId) => connection("get")((conn) => Effect.map(load(conn, "get", approvalId), ([, request]) => request)),
    transition: (operation, approvalId, f) =>
      transaction(operation)((conn) =>
        Effect.flatMap(
          load(conn, operation, approvalId),
          ([version, current]) => Effect.flatMap(f(current), (next) => write(conn, operation, version, next))
        )
      ),
    expireDue: (now) =>
      transaction("expireDue")((conn) =>
        Effect.gen(function*() {
          const rows = yield* conn.execute(selectDue, [now.getTime()], undefined)
          const expired: Array<Approval.ApprovalRequest> = []
          for (const row of rows as ReadonlyArray<SqlStore.ApprovalRow & { readonly id: string }>) {
            const request = yield* SqlStore.decodeRow("expireDue", row.id, row.request)
            const next = Approval.expire(request, now)
            if (Option.isSome(next)) expired.push(yield* write(conn, "expireDue", row.version, next.value))
          }
          return expired
        })
      )
  })
}

// -----------------------------------------------------------------------------
// audit sink
// -----------------------------------------------------------------------------

/**
 * The audit sink over `sql`; the tables must exist. An append reads the
 * head, seals the entry after it and inserts it under the write lock.
 *
 * @internal
 */
export const makeAuditSink = (client: SqlClient.SqlClient): AuditSink.Service => {
  const sqlite = dialect(client.withoutTransforms())
  const transaction = immediate(sqlite.sql, SqlStore.storeError("append"))
  return SqlStore.makeAuditSink(sqlite, (entry) =>
    transaction(Effect.gen(function*() {
      const event = Audit.seal(entry, yield* SqlStore.readHead(sqlite))
      yield* SqlStore.insertEvent(sqlite, event)
      return event
    })))
}

/**
 * The {@link ApprovalStore.AtomicSteps} of `store` and `sink`, both over
 * `client`: each step one `BEGIN IMMEDIATE` transaction.
 *
 * @internal
 */
export const atomicSteps = (
  client: SqlClient.SqlClient,
  store: ApprovalStore.Service,
  sink: AuditSink.Service
): ApprovalStore.AtomicSteps => SqlStore.atomicSteps(dialect(client.withoutTransforms()), "BEGIN IMMEDIATE", store, sink)

/**
 * The audit outbox of `store`, in its database: for a sink elsewhere.
 *
 * @internal
 */
export const makeOutbox = (client: SqlClient.SqlClient, store: ApprovalStore.Service): AuditOutbox.Service =>
  SqlStore.makeOutbox(dialect(client.withoutTransforms()), "BEGIN IMMEDIATE", store)

/**
 * The continuation store beside `store`, in its database: every statement
 * joins the unit's `BEGIN IMMEDIATE` transaction.
 *
 * @internal
 */
export const makeContinuationStore = (
  client: SqlClient.SqlClient,
  store: ApprovalStore.Service
): ContinuationStore.Service =>
  SqlStore.makeContinuationStore(dialect(client.withoutTransforms()), "BEGIN IMMEDIATE", store)
