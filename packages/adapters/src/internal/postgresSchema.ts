/**
 * gavel's Postgres schema: the advisory-lock keys and the notification
 * channel it is built with, its migrations, what a schema holds
 * ({@link inspect}), and migrating it once however many processes start
 * together ({@link migrate}).
 *
 * @internal
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import { newerSchema, recordedMigration, someTables } from "./sqlStore.js"

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
      ], (statement) => sql.unsafe(statement), { discard: true })),
    // Events carry an id (found again after a redelivery), and the events of
    // steps wait in the outbox for a sink outside this database, oldest first.
    "3_gavel_audit_outbox": Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach([
        `ALTER TABLE ${s}.gavel_audit_events ADD COLUMN event_id text`,
        `CREATE TABLE ${s}.gavel_audit_outbox (
  position bigserial PRIMARY KEY,
  event_id text NOT NULL UNIQUE,
  entry text NOT NULL,
  anchor bigint NOT NULL,
  created_at bigint NOT NULL,
  claimed_until bigint NOT NULL,
  attempts integer NOT NULL,
  last_error text
)`,
        `CREATE INDEX gavel_audit_outbox_claim ON ${s}.gavel_audit_outbox (claimed_until, position)`
      ], (statement) => sql.unsafe(statement), { discard: true })),
    // The work approvals release (issue 18), one row per approval: a claim
    // takes those waiting or started whose lease is free (joining their
    // approvals by primary key), oldest first (`seq` orders those of one
    // millisecond). No foreign key: a unit writes the continuation before
    // its approval; the claim's join ignores a continuation without one.
    "4_gavel_continuations": Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach([
        `CREATE TABLE ${s}.gavel_continuations (
  approval_id text PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY,
  idempotency_key text NOT NULL UNIQUE,
  handler text NOT NULL,
  handler_version integer NOT NULL,
  delivery text NOT NULL,
  max_attempts integer NOT NULL,
  lease_millis bigint NOT NULL,
  sealed text,
  state text NOT NULL,
  owner text,
  lease_until bigint,
  fence bigint NOT NULL,
  attempts integer NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  result text,
  error text
)`,
        // The claim walks the open continuations oldest first: finished ones
        // never slow it down, however many there are.
        `CREATE INDEX gavel_continuations_open ON ${s}.gavel_continuations (created_at, seq)
          WHERE state IN ('waiting', 'started')`,
        `CREATE INDEX gavel_continuations_created ON ${s}.gavel_continuations (created_at, seq)`
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
    const migration = yield* recordedMigration(sql, names, migrationsTable, `${schema}.${migrationsTable}`)
    return { exists: true, objects: names, migration }
  })

/**
 * Why a schema is not opened; `Postgres.ts` turns it into a `PostgresOpenError`.
 *
 * @internal
 */
export interface Refusal {
  readonly reason: "NotAGavelSchema" | "NewerSchema"
  readonly detail: string
}

/**
 * What refuses a schema, from what {@link inspect} found: another
 * application's tables, a newer gavel's migrations. A missing or empty
 * schema and a gavel schema this code knows pass.
 *
 * @internal
 */
export const judge = (found: Inspection): Refusal | undefined => {
  if (found.exists && found.migration === null && found.objects.length > 0) {
    return { reason: "NotAGavelSchema", detail: `it has tables (${someTables(found.objects)}) and no ${migrationsTable}` }
  }
  if (found.migration !== null && found.migration > latestMigration) {
    return { reason: "NewerSchema", detail: newerSchema(found.migration, latestMigration) }
  }
  return undefined
}

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
