/**
 * The Postgres dialect of the SQL store skeleton (`sqlStore.ts`): the
 * migrations and the migration lock, the statement deadline, the
 * compare-and-set transitions, the capped create (a function of migration
 * 2 under advisory locks), the audit append under the schema's advisory
 * lock, and the resolutions announced with LISTEN/NOTIFY.
 *
 * @internal
 */
// Module by module rather than the barrel: a host that only persists
// approvals does not load the policy engine.
import * as Approval from "@gavel/core/Approval"
import type * as ApprovalStore from "@gavel/core/ApprovalStore"
import * as Audit from "@gavel/core/Audit"
import type * as AuditSink from "@gavel/core/AuditSink"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SqlStore from "./sqlStore.js"

// -----------------------------------------------------------------------------
// constants
// -----------------------------------------------------------------------------

/**
 * First key of gavel's advisory locks ("GAVL" in ASCII); the second is derived from the schema.
 *
 * @internal
 */
export const lockClass = 0x4741564c

/**
 * First keys of the advisory locks that serialize capped creates: one
 * requester's (`pendingLockClass.requester`, hash of schema and requester)
 * and one tenant's. A create takes at most one lock of each class, the
 * requester's first, so that two creates can never wait for each other in
 * a cycle, whatever their hashes.
 *
 * @internal
 */
export const pendingLockClass = { requester: lockClass + 1, tenant: lockClass + 2 } as const

/**
 * The table @effect/sql's Migrator records gavel's migrations in (in gavel's schema).
 *
 * @internal
 */
export const migrationsTable = "gavel_migrations"

/**
 * Schema names gavel accepts: a plain lower-case identifier, short enough for the channel name.
 *
 * @internal
 */
export const schemaPattern = /^[a-z_][a-z0-9_]{0,39}$/

/**
 * The LISTEN/NOTIFY channel of a schema's resolutions.
 *
 * @internal
 */
export const channelOf = (schema: string): string => `gavel_${schema}`

/** The real clock: I/O deadlines and heartbeats are wall-clock time, even under a `TestClock`. */
const wallClock = Clock.make()

/** The largest count a capped create reads (a `LIMIT` Postgres takes as an `integer`). */
const maxCount = 2 ** 31 - 1

/** How many times a transition re-reads an approval that changed under it before giving up. */
const MAX_ATTEMPTS = 50

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * A one-line description of a failure, with the SQLSTATE and the driver's
 * message. Never the connection URL: neither @effect/sql-pg nor pg put it
 * in their messages.
 *
 * @internal
 */
export const describe: (error: unknown) => string = SqlStore.describe

/**
 * Bounds `effect` by `timeout` of wall-clock time: past it, the caller gets
 * `StoreError` at once, while the statement is cancelled in the background
 * (`pg_cancel_backend`; the server's `statement_timeout` is the backstop).
 * A database that is down or unreachable therefore never hangs a caller.
 *
 * @internal
 */
export const bounded = (operation: string, timeout: Duration.Duration) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Approval.StoreError, R> =>
  effect.pipe(
    Effect.disconnect,
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        new Approval.StoreError({
          operation,
          detail: `no answer from the database within ${Duration.format(timeout)}`
        })
    }),
    Effect.withClock(wallClock)
  )

// -----------------------------------------------------------------------------
// migrations
// -----------------------------------------------------------------------------

/**
 * gavel's schema, one migration per key (`<id>_<name>`), run by
 * @effect/sql's Migrator inside `schema`. Never edit a released migration:
 * add one. Times are milliseconds since the epoch (`bigint`), always the
 * time the runtime passed in: the database's clock is never read.
 *
 * @internal
 */
export const migrations = (schema: string): Record<string, Effect.Effect<void, SqlError, SqlClient.SqlClient>> => {
  const s = `"${schema}"`
  const channel = channelOf(schema)
  return {
    "1_gavel_tables": Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach([
        `CREATE TABLE ${s}.gavel_approvals (
  id text PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY,
  kind text NOT NULL,
  status text NOT NULL,
  requester text NOT NULL,
  tenant text,
  decision_id text NOT NULL,
  request_id text NOT NULL,
  correlation_id text NOT NULL,
  action_hash text NOT NULL,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  resolved_at bigint,
  consumed_at bigint,
  version integer NOT NULL,
  request text NOT NULL
)`,
        `CREATE INDEX gavel_approvals_pending ON ${s}.gavel_approvals (created_at, seq) WHERE status = 'pending'`,
        `CREATE INDEX gavel_approvals_due ON ${s}.gavel_approvals (expires_at) WHERE status = 'pending'`,
        `CREATE INDEX gavel_approvals_created ON ${s}.gavel_approvals (created_at, seq)`,
        `CREATE INDEX gavel_approvals_decision ON ${s}.gavel_approvals (decision_id)`,
        // Every process listening on the schema's channel hears of an approval
        // leaving 'pending', from whichever writer: sent at commit, never for a
        // rolled-back change. Ids too long for a notification are left to polling.
        `CREATE FUNCTION ${s}.gavel_notify_resolution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF octet_length(NEW.id) <= 7000 THEN
    PERFORM pg_notify('${channel}', 'r:' || NEW.id);
  END IF;
  RETURN NULL;
END
$$`,
        `CREATE TRIGGER gavel_approvals_resolved AFTER UPDATE OF status ON ${s}.gavel_approvals
  FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending')
  EXECUTE FUNCTION ${s}.gavel_notify_resolution()`,
        `CREATE TABLE ${s}.gavel_decisions (
  decision_id text PRIMARY KEY,
  request_id text NOT NULL,
  correlation_id text NOT NULL,
  policy_id text NOT NULL,
  outcome text NOT NULL,
  evaluated_at bigint NOT NULL,
  record text NOT NULL
)`,
        `CREATE TABLE ${s}.gavel_overrides (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL,
  overrides text NOT NULL,
  policy_id text NOT NULL,
  granted_by text NOT NULL,
  kind text NOT NULL,
  name text NOT NULL,
  tenant text,
  coverage text NOT NULL,
  actor text NOT NULL,
  granted_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  override text NOT NULL
)`,
        `CREATE INDEX gavel_overrides_scope ON ${s}.gavel_overrides (kind, name, expires_at)`,
        `CREATE TABLE ${s}.gavel_audit_events (
  sequence bigint PRIMARY KEY,
  type text NOT NULL,
  at text NOT NULL,
  decision_id text,
  approval_id text,
  request_id text,
  correlation_id text,
  actor text,
  trace text,
  data text NOT NULL,
  previous_hash text NOT NULL,
  hash text NOT NULL
)`,
        `CREATE INDEX gavel_audit_events_approval ON ${s}.gavel_audit_events (approval_id) WHERE approval_id IS NOT NULL`,
        `CREATE INDEX gavel_audit_events_decision ON ${s}.gavel_audit_events (decision_id) WHERE decision_id IS NOT NULL`
      ], (statement) => sql.unsafe(statement), { discard: true })),
    // The caps on pending approvals count a requester's and a tenant's pending rows.
    // A capped create is one call of this function: one round trip, and the
    // advisory locks (see `pendingLockClass`) are held only while it runs
    // (to the end of the caller's transaction, or of the statement's own).
    // It is VOLATILE, so under Read Committed each count takes a snapshot
    // after its lock was granted and sees every create committed before.
    // Returns the scope that refused, or NULL once inserted.
    "2_gavel_pending_caps": Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach([
        `CREATE INDEX gavel_approvals_pending_requester ON ${s}.gavel_approvals (requester) WHERE status = 'pending'`,
        `CREATE INDEX gavel_approvals_pending_tenant ON ${s}.gavel_approvals (tenant) WHERE status = 'pending'`,
        `CREATE FUNCTION ${s}.gavel_create_capped(
  p_id text, p_kind text, p_requester text, p_tenant text, p_decision_id text, p_request_id text,
  p_correlation_id text, p_action_hash text, p_created_at bigint, p_expires_at bigint, p_request text,
  p_per_requester integer, p_per_tenant integer
) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  n integer;
BEGIN
  IF p_per_requester IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(${pendingLockClass.requester}, hashtext('${schema}:=' || p_requester));
    SELECT count(*) INTO n FROM (SELECT 1 FROM ${s}.gavel_approvals
      WHERE status = 'pending' AND requester = p_requester LIMIT p_per_requester) AS capped;
    IF n >= p_per_requester THEN
      RETURN 'requester';
    END IF;
  END IF;
  IF p_per_tenant IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(${pendingLockClass.tenant}, hashtext('${schema}:' || coalesce('=' || p_tenant, '')));
    IF p_tenant IS NULL THEN
      SELECT count(*) INTO n FROM (SELECT 1 FROM ${s}.gavel_approvals
        WHERE status = 'pending' AND tenant IS NULL LIMIT p_per_tenant) AS capped;
    ELSE
      SELECT count(*) INTO n FROM (SELECT 1 FROM ${s}.gavel_approvals
        WHERE status = 'pending' AND tenant = p_tenant LIMIT p_per_tenant) AS capped;
    END IF;
    IF n >= p_per_tenant THEN
      RETURN 'tenant';
    END IF;
  END IF;
  INSERT INTO ${s}.gavel_approvals (id, kind, status, requester, tenant, decision_id, request_id, correlation_id,
    action_hash, created_at, expires_at, resolved_at, consumed_at, version, request)
    VALUES (p_id, p_kind, 'pending', p_requester, p_tenant, p_decision_id, p_request_id, p_correlation_id,
    p_action_hash, p_created_at, p_expires_at, NULL, NULL, 1, p_request);
  RETURN NULL;
END
$$`
      ], (statement) => sql.unsafe(statement), { discard: true }))
  }
}

/**
 * The id of the newest migration this code knows.
 *
 * @internal
 */
export const latestMigration: number = Math.max(
  ...Object.keys(migrations("gavel")).map((key) => Number.parseInt(key, 10))
)

/**
 * What a schema holds before gavel touches it.
 *
 * @internal
 */
export interface Inspection {
  readonly exists: boolean
  /** Tables, views and sequences in the schema. */
  readonly objects: ReadonlyArray<string>
  /** The newest migration recorded, if the migrations table exists. */
  readonly migration: number | null
}

/**
 * Reads what `schema` holds; writes nothing.
 *
 * @internal
 */
export const inspect = (sql: SqlClient.SqlClient, schema: string): Effect.Effect<Inspection, SqlError> =>
  Effect.gen(function*() {
    const [found] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pg_namespace
      WHERE nspname = ${schema}`
    if (found === undefined || found.n === 0) return { exists: false, objects: [], migration: null }
    const objects = yield* sql<{ readonly name: string }>`SELECT c.relname AS name FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema} AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY c.relname`
    const names = objects.map((o) => o.name)
    let migration: number | null = null
    if (names.includes(migrationsTable)) {
      const [latest] = yield* sql<{ readonly id: number | null }>`SELECT max(migration_id) AS id FROM ${
        sql(`${schema}.${migrationsTable}`)
      }`
      migration = latest?.id ?? null
    }
    return { exists: true, objects: names, migration }
  })

/**
 * Creates the schema and the migrations table when missing and runs the
 * migrations not yet recorded, in one transaction holding an advisory lock
 * on the schema, so that processes starting together migrate once.
 * `check` runs again under the lock (another process may have migrated in
 * between).
 *
 * @internal
 */
export const migrate = <E>(
  sql: SqlClient.SqlClient,
  schema: string,
  check: (found: Inspection) => Effect.Effect<void, E>
): Effect.Effect<void, E | SqlError | Migrator.MigrationError> =>
  sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${lockClass}, hashtext(${schema}))`
    const found = yield* inspect(sql, schema)
    yield* check(found)
    if (!found.exists) yield* sql.unsafe(`CREATE SCHEMA "${schema}"`)
    // The Migrator creates its table only when `::regclass` fails, which
    // would abort this transaction: it finds it already here.
    yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS "${schema}".${migrationsTable} (
  migration_id integer PRIMARY KEY,
  created_at timestamp with time zone NOT NULL DEFAULT now(),
  name text NOT NULL
)`)
    yield* Migrator.make({})({
      loader: Migrator.fromRecord(migrations(schema)),
      table: `${schema}.${migrationsTable}`
    }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
  }))

// -----------------------------------------------------------------------------
// approval store
// -----------------------------------------------------------------------------

/**
 * What the store needs besides the client: the schema, the deadline of an
 * operation, and how the listener checks its connection.
 *
 * @internal
 */
export interface StoreOptions {
  readonly schema: string
  readonly timeout: Duration.Duration
  /** `false`: no `resolutions` stream (the runtime only polls). */
  readonly listen: boolean
  readonly heartbeat: Duration.Duration
}

/** The Postgres dialect over `sql` (without transforms), in `schema`. */
const dialect = (sql: SqlClient.SqlClient, options: Pick<StoreOptions, "schema" | "timeout">): SqlStore.Dialect => ({
  sql,
  // The schema name is checked against `schemaPattern`: it cannot break out of its quotes.
  tables: SqlStore.tables(`"${options.schema}".`),
  insertionOrder: "seq",
  placeholder: (n) => `$${n}`,
  isDuplicateKey: (error) => SqlStore.driverCode(error) === "23505",
  guard: (operation) => bounded(operation, options.timeout)
})

/**
 * The approval store over `pg`; the tables must exist in `options.schema`.
 *
 * @internal
 */
export const makeApprovalStore = (pg: PgClient.PgClient, options: StoreOptions): ApprovalStore.Service => {
  const sql = pg.withoutTransforms()
  const postgres = dialect(sql, options)
  const statements = SqlStore.approvalStatements(postgres)
  // The compare-and-set tells whether it changed the row by returning it.
  const updateApproval = `${statements.update} RETURNING version`
  const table = sql.literal(postgres.tables.approvals)
  const guard = postgres.guard

  const load = (
    operation: string,
    approvalId: string
  ): Effect.Effect<readonly [number, Approval.ApprovalRequest], Approval.ApprovalNotFound | Approval.StoreError> =>
    Effect.flatMap(
      Effect.mapError(sql.unsafe<SqlStore.ApprovalRow>(statements.select, [approvalId]), SqlStore.storeError(operation)),
      ([row]): Effect.Effect<
        readonly [number, Approval.ApprovalRequest],
        Approval.ApprovalNotFound | Approval.StoreError
      > =>
        row === undefined
          ? Effect.fail(new Approval.ApprovalNotFound({ approvalId }))
          : Either.map(SqlStore.decodeRow(operation, approvalId, row.request), (request) => [row.version, request] as const)
    )

  /**
   * The compare-and-set: one conditional `UPDATE … WHERE id = … AND version = …`.
   * Under Read Committed a concurrent writer of the same row makes this one
   * wait for its commit, then re-check the condition against the new row:
   * of two writers that read the same version exactly one changes the row.
   */
  const compareAndSet = (operation: string, version: number, next: Approval.ApprovalRequest) =>
    Effect.gen(function*() {
      const text = yield* SqlStore.encodeRow(operation, next)
      const rows = yield* Effect.mapError(
        sql.unsafe<{ readonly version: number }>(updateApproval, SqlStore.updateValues(version, next, text)),
        SqlStore.storeError(operation)
      )
      return rows.length === 1
    })

  /**
   * Reads the approval, applies the pure transition from `Approval` (the same
   * the memory store applies) and compare-and-sets the result; when another
   * writer got there first, reads again and re-applies, so the loser of a
   * race sees the winner's state (`AlreadyResolved`, `AlreadyConsumed`…).
   * `f` returning `None` leaves the approval as it is.
   */
  const transitionOption = <E>(
    operation: string,
    approvalId: string,
    f: (request: Approval.ApprovalRequest) => Either.Either<Option.Option<Approval.ApprovalRequest>, E>
  ): Effect.Effect<
    Option.Option<Approval.ApprovalRequest>,
    E | Approval.ApprovalNotFound | Approval.StoreError
  > =>
    Effect.gen(function*() {
      for (let attempt = 1;; attempt++) {
        const [version, current] = yield* load(operation, approvalId)
        const next = yield* f(current)
        if (Option.isNone(next)) return next
        if (yield* compareAndSet(operation, version, next.value)) return next
        if (attempt >= MAX_ATTEMPTS) {
          return yield* new Approval.StoreError({
            operation,
            detail: `approval "${approvalId}" kept changing while it was being written (${attempt} attempts)`
          })
        }
      }
    })

  const createCapped = sql(`${options.schema}.gavel_create_capped`)

  return SqlStore.makeApprovalStore(postgres, {
    create: (request, limits) =>
      guard("create")(Effect.gen(function*() {
        const text = yield* SqlStore.newApproval(request)
        const capped = limits?.perRequester !== undefined || limits?.perTenant !== undefined
        // Capped: counted and inserted by the function of migration 2, under advisory locks (one round trip).
        const cap = (limit: number | undefined) => limit === undefined ? null : Math.min(limit, maxCount)
        const written: Effect.Effect<void, Approval.TooManyPending | SqlError> = capped
          ? Effect.flatMap(
            sql<{ readonly refused: "requester" | "tenant" | null }>`SELECT ${createCapped}(${request.id},
              ${request.kind}, ${request.requester}, ${request.summary.actor.tenant ?? null}, ${request.decisionId},
              ${request.requestId}, ${request.correlationId}, ${request.actionHash}, ${request.createdAt.getTime()},
              ${request.requirement.expiresAt.getTime()}, ${text}, ${cap(limits.perRequester)}::integer,
              ${cap(limits.perTenant)}::integer) AS refused`,
            ([row]) => {
              const scope = row?.refused ?? null
              if (scope === null) return Effect.void
              return Effect.fail(
                new Approval.TooManyPending({
                  scope,
                  key: scope === "requester" ? request.requester : request.summary.actor.tenant,
                  limit: (scope === "requester" ? limits.perRequester : limits.perTenant) ?? 0,
                  decisionId: request.decisionId
                })
              )
            }
          )
          : Effect.asVoid(sql.unsafe(statements.insert, SqlStore.insertValues(request, text)))
        const failed = SqlStore.createFailed(postgres, request)
        yield* Effect.mapError(written, (error) => error._tag === "TooManyPending" ? error : failed(error))
      })),
    get: (approvalId) => guard("get")(Effect.map(load("get", approvalId), ([, request]) => request)),
    transition: (operation, approvalId, f) =>
      guard(operation)(
        Effect.map(
          transitionOption(operation, approvalId, (r) => Either.map(f(r), Option.some)),
          Option.getOrThrow
        )
      ),
    expireDue: (now) =>
      guard("expireDue")(Effect.gen(function*() {
        const due = yield* Effect.mapError(
          sql<{ readonly id: string }>`SELECT id FROM ${table}
            WHERE status = 'pending' AND expires_at <= ${now.getTime()} ORDER BY created_at, seq`,
          SqlStore.storeError("expireDue")
        )
        // Each one its own compare-and-set: of two sweepers (two processes),
        // each approval is expired, and returned, by exactly one.
        const expired: Array<Approval.ApprovalRequest> = []
        for (const { id } of due) {
          const next = yield* transitionOption("expireDue", id, (r) => Either.right(Approval.expire(r, now))).pipe(
            Effect.catchTag("ApprovalNotFound", () => Effect.succeed(Option.none()))
          )
          if (Option.isSome(next)) expired.push(next.value)
        }
        return expired
      })),
    resolutions: options.listen ? resolutions(pg, options) : undefined
  })
}

// -----------------------------------------------------------------------------
// resolutions: LISTEN/NOTIFY with a heartbeat
// -----------------------------------------------------------------------------

const PING = "p:"
const RESOLVED = "r:"

/**
 * The approvals that left `pending`, as the database announces them on the
 * schema's channel (the trigger of migration 1), for every subscriber a
 * stream of its own over a dedicated connection.
 *
 * A session opens a connection of its own (a one-connection `PgClient`),
 * LISTENs, and proves it hears: it NOTIFYs pings of its own through the
 * main pool and waits for them to come back on the listening connection.
 * Once the first ping is back it emits `Resync` — whatever was resolved
 * before the LISTEN took effect is found by re-checking every waiter — and
 * then every `Resolved`. Every `heartbeat` it pings again; a ping not back
 * within a `heartbeat`, a failed ping, or a failed connection ends the
 * session, and a new one starts after a short pause (until the database is
 * back, the runtime's polling is all there is; the next session's `Resync`
 * catches up on what was missed).
 */
const resolutions = (
  pg: PgClient.PgClient,
  options: StoreOptions
): Stream.Stream<ApprovalStore.Resolution> => {
  const channel = channelOf(options.schema)
  const heartbeat = options.heartbeat
  const retryPause = Duration.min(heartbeat, Duration.seconds(1))
  return Stream.asyncScoped<ApprovalStore.Resolution>((emit) => {
    const session = (nonce: string): Effect.Effect<void, unknown, Scope.Scope> =>
      Effect.gen(function*() {
        const listener = yield* Layer.build(PgClient.layer({
          ...pg.config,
          maxConnections: 1,
          minConnections: 0,
          connectTimeout: Duration.min(options.timeout, Duration.seconds(10)),
          // Named after the schema, so an operator (or a test) can find it in pg_stat_activity.
          applicationName: `gavel-listen ${options.schema}`
        })).pipe(Effect.map(Context.get(PgClient.PgClient)))
        let received = -1
        const own = `${PING}${nonce}:`
        // Forked as a daemon and interrupted without waiting: on a dead
        // connection the listen stream's UNLISTEN may never answer, and
        // closing `listener` (below, with the scope) ends that connection.
        const fiber = yield* Effect.forkDaemon(Effect.exit(Stream.runForEach(listener.listen(channel), (payload) => {
          if (payload.startsWith(RESOLVED)) {
            return Effect.sync(() => void emit.single({ _tag: "Resolved", approvalId: payload.slice(RESOLVED.length) }))
          }
          if (payload.startsWith(own)) received = Math.max(received, Number(payload.slice(own.length)))
          return Effect.void
        })))
        yield* Effect.addFinalizer(() => Fiber.interruptFork(fiber))
        // `pg_notify` rather than `PgClient.notify`, whose `NOTIFY …, $1` Postgres refuses.
        const ping = (n: number) =>
          bounded("listen", options.timeout)(pg.withoutTransforms()`SELECT pg_notify(${channel}, ${`${own}${n}`})`)
        const failed = Effect.flatMap(Fiber.poll(fiber), (exit) =>
          Option.isSome(exit) ? Effect.fail("the listening connection ended") : Effect.void)

        // Established once a ping comes back: the LISTEN is in effect.
        let sent = 0
        const establishBy = (yield* Clock.currentTimeMillis) + Duration.toMillis(options.timeout)
        while (received < 0) {
          yield* failed
          yield* ping(sent++)
          yield* Effect.sleep(Duration.millis(50))
          if ((yield* Clock.currentTimeMillis) > establishBy) return yield* Effect.fail("no ping came back")
        }
        emit.single({ _tag: "Resync" })
        for (;;) {
          yield* Effect.sleep(heartbeat)
          yield* failed
          const n = sent++
          yield* ping(n)
          yield* Effect.sleep(heartbeat)
          if (received < n) return yield* Effect.fail("a ping did not come back within the heartbeat")
        }
      })

    return Effect.forkScoped(
      Effect.flatMap(Random.nextIntBetween(0, 2 ** 31), (nonce) => Effect.scoped(session(nonce.toString(36)))).pipe(
        Effect.catchAllCause((cause) =>
          Effect.logDebug("gavel: the Postgres listener lost its connection; polling until it is back", cause)
        ),
        Effect.zipRight(Effect.sleep(retryPause)),
        Effect.forever,
        Effect.withClock(wallClock)
      )
    )
  })
}

// -----------------------------------------------------------------------------
// audit sink
// -----------------------------------------------------------------------------

/**
 * The audit sink over `pg`; the tables must exist in `options.schema`.
 *
 * @internal
 */
export const makeAuditSink = (
  pg: PgClient.PgClient,
  options: Pick<StoreOptions, "schema" | "timeout">
): AuditSink.Service => {
  const postgres = dialect(pg.withoutTransforms(), options)
  const sql = postgres.sql
  // The first round trip of an append, one simple query (no parameters: the
  // lock keys and the table are constants of this sink): begin, take the
  // schema's transaction-scoped advisory lock — one appender at a time across
  // every process — and read the head. Under Read Committed each statement
  // takes its own snapshot, so the head read after the lock was granted sees
  // every append committed before. The lock is released at COMMIT or ROLLBACK.
  const lockAndHead = `BEGIN; SELECT pg_advisory_xact_lock(${lockClass}, hashtext('${options.schema}.audit'));
${SqlStore.selectHead(postgres.tables)}`
  const failed = SqlStore.storeError("append")

  /** Three round trips: lock and head, insert, commit. The primary key on `sequence` is the backstop. */
  const appendSealed = (entry: Audit.Entry): Effect.Effect<Audit.AuditEvent, Approval.StoreError> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.scoped(Effect.gen(function*() {
        const conn = yield* Effect.mapError(restore(sql.reserve), failed)
        const exit = yield* Effect.exit(restore(Effect.gen(function*() {
          const results = yield* Effect.mapError(conn.executeUnprepared(lockAndHead, [], undefined), failed)
          const rows = (results as unknown as ReadonlyArray<ReadonlyArray<{ readonly sequence: string; readonly hash: string }>>)[2] ?? []
          const event = Audit.seal(entry, SqlStore.anchorOf(rows))
          const [text, params] = SqlStore.insertEvent(postgres, event).compile()
          yield* Effect.mapError(conn.execute(text, params, undefined), failed)
          yield* Effect.mapError(conn.executeUnprepared("COMMIT", [], undefined), (error) =>
            new Approval.StoreError({
              operation: "append",
              detail: `COMMIT failed (the event may or may not be written): ${describe(error)}`,
              cause: error
            }))
          return event
        })))
        if (exit._tag === "Failure") {
          // On a broken connection this fails too: the server rolls back what it had.
          yield* Effect.ignore(conn.executeUnprepared("ROLLBACK", [], undefined))
        }
        return yield* exit
      }))
    )

  return SqlStore.makeAuditSink(postgres, appendSealed)
}
