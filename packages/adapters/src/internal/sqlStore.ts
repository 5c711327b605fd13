/**
 * The SQL store skeleton: what the SQLite and the Postgres stores share,
 * parameterised by a {@link Dialect} (the tables, the few words in which the
 * two differ, the deadline a dialect puts on an operation). Here: the
 * description of a failure, the codecs, the statements that read and write
 * an approval, `list` and its filter, the decisions and overrides, and the
 * audit trail's reads. Each dialect's module keeps only what truly differs:
 * opening and migrating, how a create under caps and a transition are made
 * atomic (SQLite's write lock, Postgres' compare-and-set and advisory
 * locks), the audit append, LISTEN/NOTIFY.
 *
 * @internal
 */
// Module by module rather than the barrel: a host that only persists
// approvals does not load the policy engine.
import * as Approval from "@gavel/core/Approval"
import * as ApprovalStore from "@gavel/core/ApprovalStore"
import type * as Audit from "@gavel/core/Audit"
import type * as AuditOutbox from "@gavel/core/AuditOutbox"
import * as AuditSink from "@gavel/core/AuditSink"
import * as DecisionRecord from "@gavel/core/DecisionRecord"
import * as Override from "@gavel/core/Override"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { type AuditRow, decodeOutboxEntry, encodeOutboxEntry, normalize, readEvent } from "./rows.js"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * The driver's error code behind a failed statement (`SQLITE_BUSY`, a
 * Postgres SQLSTATE such as `23505`…), if any.
 *
 * @internal
 */
export const driverCode = (error: unknown): string | undefined => {
  const cause = Predicate.hasProperty(error, "cause") ? error.cause : error
  return Predicate.hasProperty(cause, "code") && typeof cause.code === "string" ? cause.code : undefined
}

/**
 * A one-line description of a failure, with the driver's code (when its
 * message does not already say it) and message. Never a connection URL:
 * neither @effect/sql-pg nor pg put it in their messages.
 *
 * @internal
 */
export const describe = (error: unknown): string => {
  const cause = Predicate.hasProperty(error, "cause") ? error.cause : undefined
  const outer = error instanceof Error ? error.message : String(error)
  if (cause instanceof Error) {
    const code = driverCode(error)
    const inner = cause.message === "" && Predicate.hasProperty(cause, "code") ? String(cause.code) : cause.message
    return `${outer}: ${code === undefined || inner.includes(code) ? "" : `${code}: `}${inner}`
  }
  return outer
}

/** @internal */
export const storeError = (operation: string) => (error: SqlError): Approval.StoreError =>
  new Approval.StoreError({ operation, detail: describe(error), cause: error })

/** @internal */
export const unreadable = (operation: string, what: string) => (error: ParseResult.ParseError): Approval.StoreError =>
  new Approval.StoreError({ operation, detail: `${what} is unreadable: ${error.message}`, cause: error })

/** @internal */
export const unstorable = (operation: string, what: string) => (error: ParseResult.ParseError): Approval.StoreError =>
  new Approval.StoreError({ operation, detail: `${what} cannot be stored: ${error.message}`, cause: error })

// -----------------------------------------------------------------------------
// schema
// -----------------------------------------------------------------------------

/**
 * The newest migration recorded in the migrations table `table` (as a
 * statement names it), or `null` when `objects`, what the database or the
 * schema holds, do not include `migrationsTable`.
 *
 * @internal
 */
export const recordedMigration = (
  sql: SqlClient.SqlClient,
  objects: ReadonlyArray<string>,
  migrationsTable: string,
  table: string
): Effect.Effect<number | null, SqlError> =>
  objects.includes(migrationsTable)
    ? Effect.map(
      sql<{ readonly id: number | null }>`SELECT max(migration_id) AS id FROM ${sql(table)}`,
      ([latest]) => latest?.id ?? null
    )
    : Effect.succeed(null)

/**
 * The first few of the tables found where gavel's should be, for a refusal.
 *
 * @internal
 */
export const someTables = (objects: ReadonlyArray<string>): string =>
  `${objects.slice(0, 5).join(", ")}${objects.length > 5 ? ", …" : ""}`

/**
 * Why a schema migrated by a newer gavel is refused.
 *
 * @internal
 */
export const newerSchema = (migration: number, latest: number): string =>
  `its schema version is ${migration}, this gavel knows up to ${latest}`

// -----------------------------------------------------------------------------
// codecs
// -----------------------------------------------------------------------------

// Either, not Effect: the codecs are synchronous, and run inside SQLite's
// transactions (an Either is also an Effect where one is wanted).
const ApprovalJson = Schema.parseJson(Approval.ApprovalRequest)
const encodeApproval = Schema.encodeEither(ApprovalJson)
const decodeApproval = Schema.decodeEither(ApprovalJson)
const DecisionJson = Schema.parseJson(DecisionRecord.DecisionRecord)
const encodeDecision = Schema.encodeEither(DecisionJson)
const decodeDecision = Schema.decodeEither(DecisionJson)
const OverrideJson = Schema.parseJson(Override.Override)
const encodeOverride = Schema.encodeEither(OverrideJson)
const decodeOverride = Schema.decodeEither(OverrideJson)

const millis = (date: Date | null): number | null => (date === null ? null : date.getTime())

/**
 * A stored approval's JSON read back, or why it cannot be.
 *
 * @internal
 */
export const decodeRow = (
  operation: string,
  approvalId: string,
  text: string
): Either.Either<Approval.ApprovalRequest, Approval.StoreError> =>
  Either.mapLeft(decodeApproval(text), unreadable(operation, `stored approval "${approvalId}"`))

/**
 * An approval's JSON, to be written by `operation`.
 *
 * @internal
 */
export const encodeRow = (
  operation: string,
  request: Approval.ApprovalRequest
): Either.Either<string, Approval.StoreError> =>
  Either.mapLeft(encodeApproval(request), unstorable(operation, `approval "${request.id}"`))

// -----------------------------------------------------------------------------
// dialect
// -----------------------------------------------------------------------------

/**
 * gavel's tables as they stand in a statement: bare in SQLite,
 * schema-qualified in Postgres.
 *
 * @internal
 */
export interface Tables {
  readonly approvals: string
  readonly decisions: string
  readonly overrides: string
  readonly auditEvents: string
  readonly auditOutbox: string
}

/**
 * gavel's tables behind `qualifier` (`""`, or `"<schema>".` with a schema
 * name the caller checked).
 *
 * @internal
 */
export const tables = (qualifier: string): Tables => ({
  approvals: `${qualifier}gavel_approvals`,
  decisions: `${qualifier}gavel_decisions`,
  overrides: `${qualifier}gavel_overrides`,
  auditEvents: `${qualifier}gavel_audit_events`,
  auditOutbox: `${qualifier}gavel_audit_outbox`
})

/**
 * What a SQL store's dialect tells the skeleton.
 *
 * @internal
 */
export interface Dialect {
  /** The client, without transforms of names or rows. */
  readonly sql: SqlClient.SqlClient
  readonly tables: Tables
  /** The column ordering approvals created in the same millisecond by insertion (`rowid`, `seq`). */
  readonly insertionOrder: string
  /** The placeholder of the `n`-th parameter (from 1) in a statement's text (`?`, `$1`). */
  readonly placeholder: (n: number) => string
  /** Whether a failed insert hit an existing primary key. */
  readonly isDuplicateKey: (error: SqlError) => boolean
  /** What a claim of the audit outbox adds to its select: Postgres' `FOR UPDATE SKIP LOCKED`. */
  readonly claimLock: string
  /** What bounds every operation of the stores (Postgres' deadline); the identity where nothing does. */
  readonly guard: (
    operation: string
  ) => <A, E, R = never>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Approval.StoreError, R>
}

// -----------------------------------------------------------------------------
// approvals' statements
// -----------------------------------------------------------------------------

/**
 * The texts of the statements that read and write one approval: fixed
 * texts, with their parameters in order ({@link insertValues},
 * {@link updateValues}), so that a driver prepares each once and finds it
 * in its statement cache afterwards.
 *
 * @internal
 */
export interface ApprovalStatements {
  /** Inserts a new approval at version 1. */
  readonly insert: string
  /** The version and the JSON of one approval, by id. */
  readonly select: string
  /** The compare-and-set on the version read before: changes one row, or none when another writer came first. */
  readonly update: string
}

/**
 * The {@link ApprovalStatements} of a dialect.
 *
 * @internal
 */
export const approvalStatements = (dialect: Pick<Dialect, "tables" | "placeholder">): ApprovalStatements => {
  const table = dialect.tables.approvals
  const p = Array.from({ length: 14 }, (_, i) => dialect.placeholder(i + 1))
  return {
    insert: `INSERT INTO ${table} (id, kind, status, requester, tenant, decision_id, request_id,
  correlation_id, action_hash, created_at, expires_at, resolved_at, consumed_at, version, request)
  VALUES (${p.slice(0, 13).join(", ")}, 1, ${p[13]})`,
    select: `SELECT version, request FROM ${table} WHERE id = ${p[0]}`,
    update: `UPDATE ${table} SET status = ${p[0]}, resolved_at = ${p[1]}, consumed_at = ${p[2]}, version = ${p[3]},
  request = ${p[4]} WHERE id = ${p[5]} AND version = ${p[6]}`
  }
}

/**
 * The parameters of {@link ApprovalStatements.insert}.
 *
 * @internal
 */
export const insertValues = (request: Approval.ApprovalRequest, text: string): ReadonlyArray<string | number | null> => [
  request.id,
  request.kind,
  request.status,
  request.requester,
  request.summary.actor.tenant ?? null,
  request.decisionId,
  request.requestId,
  request.correlationId,
  request.actionHash,
  request.createdAt.getTime(),
  request.requirement.expiresAt.getTime(),
  millis(request.resolvedAt),
  millis(request.consumedAt),
  text
]

/**
 * The parameters of {@link ApprovalStatements.update}: `next` written over `version`.
 *
 * @internal
 */
export const updateValues = (
  version: number,
  next: Approval.ApprovalRequest,
  text: string
): ReadonlyArray<string | number | null> => [
  next.status,
  millis(next.resolvedAt),
  millis(next.consumedAt),
  version + 1,
  text,
  next.id,
  version
]

/**
 * A new approval's JSON, or why it cannot be created: it is not pending, or
 * it cannot be encoded.
 *
 * @internal
 */
export const newApproval = (request: Approval.ApprovalRequest): Either.Either<string, Approval.StoreError> =>
  request.status !== "pending"
    ? Either.left(new Approval.StoreError({ operation: "create", detail: "a new approval must be pending" }))
    : encodeRow("create", request)

/**
 * A failed insert of `request` as `create` reports it.
 *
 * @internal
 */
export const createFailed = (dialect: Pick<Dialect, "isDuplicateKey">, request: Approval.ApprovalRequest) =>
(error: SqlError): Approval.StoreError =>
  dialect.isDuplicateKey(error)
    ? new Approval.StoreError({ operation: "create", detail: `approval "${request.id}" already exists`, cause: error })
    : storeError("create")(error)

/**
 * The version a transition read and the approval it read.
 *
 * @internal
 */
export interface ApprovalRow {
  readonly version: number
  readonly request: string
}

// -----------------------------------------------------------------------------
// approval store
// -----------------------------------------------------------------------------

/**
 * What a dialect implements itself: how one approval is created, read and
 * changed atomically, how the due ones expire, and the announcements of
 * resolutions if it has them. Each operation is bounded by the dialect's
 * guard already.
 *
 * @internal
 */
export interface Approvals {
  readonly create: ApprovalStore.Service["create"]
  readonly get: ApprovalStore.Service["get"]
  /** Reads the approval, applies `f` and writes the result, as one atomic step. */
  readonly transition: <E>(
    operation: string,
    approvalId: string,
    f: (request: Approval.ApprovalRequest) => Either.Either<Approval.ApprovalRequest, E>
  ) => Effect.Effect<Approval.ApprovalRequest, E | Approval.ApprovalNotFound | Approval.StoreError>
  readonly expireDue: ApprovalStore.Service["expireDue"]
  readonly resolutions?: ApprovalStore.Service["resolutions"]
}

type ListOptions = ApprovalStore.ListFilter & { readonly status?: Approval.Status | undefined }

/**
 * The approval store of a dialect: its own {@link Approvals}, and the
 * skeleton's `list`, decisions and overrides. The tables must exist.
 *
 * @internal
 */
export const makeApprovalStore = (dialect: Dialect, approvals: Approvals): ApprovalStore.Service => {
  const { guard, sql } = dialect
  const table = sql.literal(dialect.tables.approvals)
  const decisions = sql.literal(dialect.tables.decisions)
  const overrides = sql.literal(dialect.tables.overrides)
  const insertionOrder = sql.literal(dialect.insertionOrder)

  const list = (filter: ListOptions | undefined) =>
    Effect.gen(function*() {
      const limit = filter?.limit
      // As the memory store: a limit of 0 or less lists nothing, a fractional one rounds up.
      if (limit !== undefined && limit <= 0) return []
      const conditions: Array<Statement.Fragment> = []
      if (filter?.status !== undefined) conditions.push(sql`status = ${filter.status}`)
      if (filter?.kind !== undefined) conditions.push(sql`kind = ${filter.kind}`)
      if (filter?.requester !== undefined) conditions.push(sql`requester = ${filter.requester}`)
      if (filter?.tenant !== undefined) conditions.push(sql`tenant = ${filter.tenant}`)
      if (filter?.visibleTo !== undefined) {
        const tenant = filter.visibleTo.tenant
        conditions.push(tenant === undefined ? sql`tenant IS NULL` : sql`(tenant IS NULL OR tenant = ${tenant})`)
      }
      const bounded = limit !== undefined && Number.isFinite(limit)
      const rows = yield* Effect.mapError(
        sql<ApprovalRow & { readonly id: string }>`SELECT id, version, request FROM ${table}
          WHERE ${sql.and(conditions)} ORDER BY created_at, ${insertionOrder} ${
          bounded ? sql`LIMIT ${Math.ceil(limit)}` : sql``
        }`,
        storeError("list")
      )
      return yield* Effect.forEach(rows, (row) => decodeRow("list", row.id, row.request))
    })

  const service = ApprovalStore.ApprovalStore.of({
    shared: true,
    create: approvals.create,
    get: approvals.get,
    vote: (approvalId, vote, options) =>
      approvals.transition("vote", approvalId, (r) => Approval.vote(r, vote, options)),
    consume: (approvalId, actionHash, now) =>
      approvals.transition("consume", approvalId, (r) => Approval.consume(r, actionHash, now)),
    cancel: (approvalId, now) => approvals.transition("cancel", approvalId, (r) => Approval.cancel(r, now)),
    expireDue: approvals.expireDue,
    list: (filter) => guard("list")(list(filter)),
    listPending: (filter) => guard("listPending")(list({ ...filter, status: "pending" })),
    saveDecision: (record) =>
      guard("saveDecision")(Effect.gen(function*() {
        const text = yield* Either.mapLeft(
          encodeDecision(record),
          unstorable("saveDecision", `decision "${record.decisionId}"`)
        )
        yield* Effect.mapError(
          sql`INSERT INTO ${decisions} (decision_id, request_id, correlation_id, policy_id, outcome, evaluated_at,
            record) VALUES (${record.decisionId}, ${record.requestId}, ${record.correlationId}, ${record.policyId},
            ${record.decision._tag}, ${record.evaluatedAt.getTime()}, ${text})
            ON CONFLICT (decision_id) DO UPDATE SET request_id = excluded.request_id,
            correlation_id = excluded.correlation_id, policy_id = excluded.policy_id, outcome = excluded.outcome,
            evaluated_at = excluded.evaluated_at, record = excluded.record`,
          storeError("saveDecision")
        )
      })),
    getDecision: (decisionId) =>
      guard("getDecision")(Effect.gen(function*() {
        const [row] = yield* Effect.mapError(
          sql<{ readonly record: string }>`SELECT record FROM ${decisions} WHERE decision_id = ${decisionId}`,
          storeError("getDecision")
        )
        if (row === undefined) return Option.none()
        return Option.some(
          yield* Either.mapLeft(decodeDecision(row.record), unreadable("getDecision", `decision "${decisionId}"`))
        )
      })),
    saveOverride: (override) =>
      guard("saveOverride")(Effect.gen(function*() {
        const text = yield* Either.mapLeft(
          encodeOverride(override),
          unstorable("saveOverride", `override "${override.id}"`)
        )
        yield* Effect.mapError(
          sql`INSERT INTO ${overrides} (id, overrides, policy_id, granted_by, kind, name, tenant, coverage, actor,
            granted_at, expires_at, override) VALUES (${override.id}, ${override.overrides}, ${override.policyId},
            ${override.grantedBy}, ${override.scope.kind}, ${override.scope.name}, ${override.scope.tenant},
            ${override.coverage}, ${override.actor}, ${override.grantedAt.getTime()},
            ${override.expiresAt.getTime()}, ${text})`,
          storeError("saveOverride")
        )
      })),
    findOverride: (action, decision, now) =>
      guard("findOverride")(Effect.gen(function*() {
        const at = now.getTime()
        // The columns narrow the candidates; `Override.covers` decides, newest first.
        const rows = yield* Effect.mapError(
          sql<{ readonly seq: number | string; readonly override: string }>`SELECT seq, override FROM ${overrides}
            WHERE kind = ${action.kind} AND name = ${action.name}
            AND tenant IS NOT DISTINCT FROM ${action.actor.tenant ?? null}
            AND expires_at > ${at} ORDER BY seq DESC`,
          storeError("findOverride")
        )
        for (const row of rows) {
          const override = yield* Either.mapLeft(
            decodeOverride(row.override),
            unreadable("findOverride", `override #${row.seq}`)
          )
          if (Override.covers(override, action, decision, at)) return Option.some(override)
        }
        return Option.none()
      }))
  })
  return approvals.resolutions === undefined ? service : { ...service, resolutions: approvals.resolutions }
}

// -----------------------------------------------------------------------------
// audit sink
// -----------------------------------------------------------------------------

/**
 * The statement that reads the head of the trail: its last sequence number and hash.
 *
 * @internal
 */
export const selectHead = (tables: Tables): string =>
  `SELECT sequence, hash FROM ${tables.auditEvents} ORDER BY sequence DESC LIMIT 1`

/**
 * What {@link selectHead} read: the head, or `null` on an empty trail.
 *
 * @internal
 */
export const anchorOf = (
  rows: ReadonlyArray<{ readonly sequence: number | string; readonly hash: string }>
): Audit.Anchor | null => {
  const row = rows[0]
  return row === undefined ? null : { sequence: Number(row.sequence), hash: row.hash }
}

/**
 * The head of the trail, read with {@link selectHead}.
 *
 * @internal
 */
export const readHead = (dialect: Pick<Dialect, "sql" | "tables">): Effect.Effect<Audit.Anchor | null, SqlError> =>
  Effect.map(
    dialect.sql.unsafe<{ readonly sequence: number | string; readonly hash: string }>(selectHead(dialect.tables)),
    anchorOf
  )

/**
 * The insert of a sealed event.
 *
 * @internal
 */
export const insertEvent = (
  dialect: Pick<Dialect, "sql" | "tables">,
  event: Audit.AuditEvent
): Statement.Statement<never> => {
  const sql = dialect.sql
  const trace = event.trace === null ? null : JSON.stringify(event.trace)
  return sql`INSERT INTO ${sql.literal(dialect.tables.auditEvents)} (sequence, type, at, decision_id, approval_id,
    request_id, correlation_id, actor, trace, data, event_id, previous_hash, hash) VALUES (${event.sequence},
    ${event.type}, ${event.at.toISOString()}, ${event.decisionId}, ${event.approvalId}, ${event.requestId},
    ${event.correlationId}, ${event.actor}, ${trace}, ${JSON.stringify(event.data)}, ${event.eventId ?? null},
    ${event.previousHash}, ${event.hash})`
}

/**
 * The audit sink of a dialect: `appendNormalized` seals and writes an entry
 * already normalized (under the dialect's lock); the reads are the
 * skeleton's. The tables must exist.
 *
 * @internal
 */
export const makeAuditSink = (
  dialect: Dialect,
  appendNormalized: (entry: Audit.Entry) => Effect.Effect<Audit.AuditEvent, Approval.StoreError>
): AuditSink.Service => {
  const { guard, sql } = dialect
  const table = sql.literal(dialect.tables.auditEvents)
  return AuditSink.withTrailErrors({
    append: (entry) =>
      guard("append")(Effect.suspend(() => {
        const normalized = normalize(entry)
        return Either.isLeft(normalized)
          ? Effect.fail(new Approval.StoreError({ operation: "append", detail: normalized.left }))
          : appendNormalized(normalized.right)
      })),
    read: (options) => {
      // As the memory sink's slice: from the whole sequence number at or below `fromSequence`.
      const from = options?.fromSequence
      const first = from === undefined || Number.isNaN(from) ? 1 : Math.max(1, Math.trunc(from - 1) + 1)
      return guard("read")(Effect.map(
        Effect.mapError(
          sql<AuditRow>`SELECT sequence, type, at, decision_id, approval_id, request_id, correlation_id, actor, trace,
            data, event_id, previous_hash, hash FROM ${table} WHERE sequence >= ${first} ORDER BY sequence`,
          storeError("read")
        ),
        (rows) => rows.map(readEvent)
      ))
    },
    head: guard("head")(Effect.map(Effect.mapError(readHead(dialect), storeError("head")), Option.fromNullable))
  })
}

/**
 * The guard of a dialect that bounds nothing.
 *
 * @internal
 */
export const unguarded = (_operation: string) => <A, E, R = never>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect

// -----------------------------------------------------------------------------
// transactions
// -----------------------------------------------------------------------------

/**
 * Runs `body` on a connection of its own in one transaction opened with
 * `begin` (`BEGIN IMMEDIATE`, `BEGIN`): commits on success, rolls back on
 * failure (a failed commit too). Uninterruptible but for taking the
 * connection and, when `interruptible`, `body`. Taking the connection goes
 * through `bound`, when given (Postgres' deadline).
 *
 * @internal
 */
export const inTransaction = <A, E, R, E2 = never>(
  sql: SqlClient.SqlClient,
  begin: string,
  interruptible: boolean,
  body: (conn: Connection) => Effect.Effect<A, E, R>,
  bound?: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y | E2, Z>
): Effect.Effect<A, E | E2 | SqlError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.scoped(Effect.flatMap(restore(bound === undefined ? sql.reserve : bound(sql.reserve)), (conn) => {
      const rollback = (cause: Cause.Cause<E | E2 | SqlError>) =>
        Effect.zipRight(Effect.ignore(conn.execute("ROLLBACK", [], undefined)), Effect.failCause(cause))
      return Effect.zipRight(
        conn.execute(begin, [], undefined),
        Effect.matchCauseEffect(interruptible ? restore(body(conn)) : body(conn), {
          onFailure: rollback,
          onSuccess: (a) =>
            Effect.matchCauseEffect(conn.execute("COMMIT", [], undefined), {
              onFailure: rollback,
              onSuccess: () => Effect.succeed(a)
            })
        })
      )
    }))
  )

const isSqlError = (u: unknown): u is SqlError => Predicate.isTagged(u, "SqlError")

/**
 * Runs a step in one transaction over `sql`, opened with `begin`, as the
 * transaction of the client (`SqlClient.TransactionConnection`), which every
 * operation of the store, of the sink and of the outbox joins; inside a
 * transaction the caller opened already, the step joins that one. A failed
 * `BEGIN` or `COMMIT` is a `StoreError` (after a failed `COMMIT`, nothing of
 * the step was written: the transaction is rolled back). Taking the
 * connection is bounded by the dialect's guard; the step's operations are,
 * each.
 *
 * @internal
 */
export const transactional = (dialect: Pick<Dialect, "sql" | "guard">, begin: string) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Approval.StoreError, R> =>
  Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    (enclosing): Effect.Effect<A, E | Approval.StoreError, R> =>
      Option.isSome(enclosing) ? effect : Effect.mapError(
        inTransaction<A, E, R, Approval.StoreError>(
          dialect.sql,
          begin,
          true,
          (conn) => Effect.provideService(effect, SqlClient.TransactionConnection, [conn, 0] as const),
          dialect.guard("transaction")
        ),
        (error) => (isSqlError(error) ? storeError("transaction")(error) : error as E)
      )
  )

/**
 * The {@link ApprovalStore.AtomicSteps} of a store and a sink over one
 * client: each step {@link transactional}.
 *
 * @internal
 */
export const atomicSteps = (
  dialect: Pick<Dialect, "sql" | "guard">,
  begin: string,
  store: ApprovalStore.Service,
  sink: AuditSink.Service
): ApprovalStore.AtomicSteps => ({ store, sink, atomically: transactional(dialect, begin) })

// -----------------------------------------------------------------------------
// audit outbox
// -----------------------------------------------------------------------------

interface OutboxRow {
  readonly entry: unknown
  readonly anchor: number | string
  readonly created_at: number | string
  readonly attempts: number | string
  readonly last_error: unknown
  readonly position: number | string
}

const itemOf = (row: OutboxRow): Either.Either<AuditOutbox.Item, string> =>
  Either.map(decodeOutboxEntry(row.entry), (entry) => ({
    entry,
    anchor: Number(row.anchor),
    createdAt: new Date(Number(row.created_at)),
    attempts: Number(row.attempts),
    lastError: typeof row.last_error === "string" ? row.last_error : null
  }))

const itemsOf = (operation: string) => (rows: ReadonlyArray<OutboxRow>) => {
  const sorted = [...rows].sort((a, b) => Number(a.position) - Number(b.position))
  const items: Array<AuditOutbox.Item> = []
  for (const row of sorted) {
    const item = itemOf(row)
    if (Either.isLeft(item)) {
      return Effect.fail(new Approval.StoreError({ operation, detail: `unreadable audit outbox row: ${item.left}` }))
    }
    items.push(item.right)
  }
  return Effect.succeed(items)
}

/**
 * The audit outbox of a store over `dialect`: a table in the same database,
 * its `put` joining the step's transaction ({@link transactional}).
 *
 * @internal
 */
export const makeOutbox = (dialect: Dialect, begin: string, store: ApprovalStore.Service): AuditOutbox.Service => {
  const { guard, sql } = dialect
  const table = sql.literal(dialect.tables.auditOutbox)
  const columns = sql.literal("position, entry, anchor, created_at, attempts, last_error")
  const run = <A>(operation: string, effect: Effect.Effect<A, SqlError>) =>
    guard(operation)(Effect.mapError(effect, storeError(operation)))
  return {
    store,
    atomically: transactional(dialect, begin),
    put: (entries, options) =>
      run(
        "put audit event",
        Effect.forEach(entries, (entry) =>
          sql`INSERT INTO ${table} (event_id, entry, anchor, created_at, claimed_until, attempts, last_error)
            VALUES (${entry.eventId}, ${encodeOutboxEntry(entry)}, ${options.anchor}, ${options.at.getTime()},
            ${options.claimedUntil.getTime()}, 0, NULL) ON CONFLICT (event_id) DO NOTHING`, { discard: true })
      ),
    claim: (options) =>
      Effect.flatMap(
        run(
          "claim audit events",
          sql<OutboxRow>`UPDATE ${table} SET claimed_until = ${options.until.getTime()} WHERE position IN
            (SELECT position FROM ${table} WHERE claimed_until <= ${options.now.getTime()} ORDER BY position
            LIMIT ${options.limit} ${sql.literal(dialect.claimLock)}) RETURNING ${columns}`
        ),
        itemsOf("claim audit events")
      ),
    delivered: (eventIds) =>
      eventIds.length === 0
        ? Effect.void
        : run("remove delivered audit events", Effect.asVoid(sql`DELETE FROM ${table} WHERE ${sql.in("event_id", eventIds)}`)),
    release: (eventIds, error) =>
      eventIds.length === 0 ? Effect.void : run(
        "release audit events",
        Effect.asVoid(
          error === null
            ? sql`UPDATE ${table} SET claimed_until = 0 WHERE ${sql.in("event_id", eventIds)}`
            : sql`UPDATE ${table} SET claimed_until = 0, attempts = attempts + 1, last_error = ${error.slice(0, 1000)}
              WHERE ${sql.in("event_id", eventIds)}`
        )
      ),
    list: (limit) =>
      Effect.flatMap(
        run("list audit outbox", sql<OutboxRow>`SELECT ${columns} FROM ${table} ORDER BY position LIMIT ${limit}`),
        itemsOf("list audit outbox")
      ),
    backlog: Effect.map(
      run(
        "count audit outbox",
        sql<{ readonly n: number | string; readonly oldest: number | string | null }>`SELECT count(*) AS n,
          min(created_at) AS oldest FROM ${table}`
      ),
      (rows) => ({
        count: Number(rows[0]?.n ?? 0),
        oldest: rows[0]?.oldest === null || rows[0]?.oldest === undefined ? null : new Date(Number(rows[0].oldest))
      })
    )
  }
}
