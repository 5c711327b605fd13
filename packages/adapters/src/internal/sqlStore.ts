/**
 * The SQL store skeleton: what the SQLite and the Postgres stores share,
 * parameterised by a {@link Dialect} (the tables, the few words in which the
 * two differ, the deadline a dialect puts on an operation). Here: the
 * description of a failure, the codecs, the statements that read and write
 * an approval, `list` and its filter, the decisions and overrides, the
 * audit trail's reads, the audit outbox and the continuation store. Each dialect's module keeps only what truly differs:
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
import * as ContinuationStore from "@gavel/core/ContinuationStore"
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
  readonly continuations: string
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
  auditOutbox: `${qualifier}gavel_audit_outbox`,
  continuations: `${qualifier}gavel_continuations`
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
  /**
   * What a claim of continuations adds to its select, which joins their
   * approvals: Postgres' `FOR UPDATE OF <alias> SKIP LOCKED`, locking the
   * continuations' rows (`alias`) and never the approvals'.
   */
  readonly claimLockOf: (alias: string) => string
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

// -----------------------------------------------------------------------------
// continuations
// -----------------------------------------------------------------------------

interface ContinuationRow {
  readonly approval_id: string
  readonly handler: string
  readonly handler_version: number | string
  readonly delivery: string
  readonly max_attempts: number | string
  readonly lease_millis: number | string
  readonly idempotency_key: string
  readonly sealed: string | null
  readonly state: string
  readonly owner: string | null
  readonly lease_until: number | string | null
  readonly fence: number | string
  readonly attempts: number | string
  readonly created_at: number | string
  readonly updated_at: number | string
  readonly result: string | null
  readonly error: string | null
}

const continuationColumns = "approval_id, handler, handler_version, delivery, max_attempts, lease_millis, " +
  "idempotency_key, sealed, state, owner, lease_until, fence, attempts, created_at, updated_at, result, error"

const validateContinuation = Schema.validateEither(ContinuationStore.Continuation)

/** How many times a step re-reads a continuation that changed under it before giving up. */
const MAX_STEP_ATTEMPTS = 50

/**
 * Whether `value` is JSON as it stands, so that `JSON.parse(JSON.stringify(value))`
 * gives it back equal: `null`, strings, booleans, finite numbers, and arrays
 * (without holes) and plain objects of them — never `undefined` inside, a
 * `Date`, a class instance, a `bigint`, a function, a cycle.
 */
const isJson = (value: unknown, depth = 0): boolean => {
  if (depth > 256) return false
  if (value === null || typeof value === "string" || typeof value === "boolean") return true
  if (typeof value === "number") return Number.isFinite(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!isJson(value[i], depth + 1)) return false
    }
    return true
  }
  if (typeof value !== "object") return false
  const prototype: unknown = Object.getPrototypeOf(value)
  if (prototype !== Object.prototype && prototype !== null) return false
  for (const key of Object.keys(value)) {
    if (!isJson((value as Record<string, unknown>)[key], depth + 1)) return false
  }
  return true
}

/**
 * A continuation's `result` as stored: JSON text, or `NULL` for none (a
 * `null` or `undefined` result — the encoded success of a `Schema.Void`
 * handler). A result that is not JSON as it stands is refused rather than
 * stored lossily.
 */
const encodeResult = (
  operation: string,
  approvalId: string,
  result: unknown
): Either.Either<string | null, Approval.StoreError> =>
  result === null || result === undefined
    ? Either.right(null)
    : isJson(result)
    ? Either.right(JSON.stringify(result))
    : Either.left(
      new Approval.StoreError({
        operation,
        detail: `the result of continuation "${approvalId}" is not JSON (a plain object, array, string, finite ` +
          `number, boolean or null): it cannot be stored as it is`
      })
    )

const dateOf = (value: number | string): Date => new Date(Number(value))

/** A stored continuation read back, or why it cannot be. */
const continuationOf = (operation: string) =>
(row: ContinuationRow): Either.Either<ContinuationStore.Continuation, Approval.StoreError> => {
  const what = `stored continuation "${row.approval_id}"`
  let result: unknown = null
  if (row.result !== null) {
    try {
      result = JSON.parse(row.result)
    } catch (error) {
      return Either.left(
        new Approval.StoreError({ operation, detail: `${what} is unreadable: its result is not JSON`, cause: error })
      )
    }
  }
  return Either.mapLeft(
    validateContinuation({
      approvalId: row.approval_id,
      handler: row.handler,
      handlerVersion: Number(row.handler_version),
      delivery: row.delivery,
      maxAttempts: Number(row.max_attempts),
      leaseMillis: Number(row.lease_millis),
      idempotencyKey: row.idempotency_key,
      sealed: row.sealed,
      state: row.state,
      owner: row.owner,
      leaseUntil: row.lease_until === null ? null : dateOf(row.lease_until),
      fence: Number(row.fence),
      attempts: Number(row.attempts),
      createdAt: dateOf(row.created_at),
      updatedAt: dateOf(row.updated_at),
      result,
      error: row.error
    }),
    unreadable(operation, what)
  )
}

/**
 * The continuation store of a dialect, beside `store` (the approval store
 * over the same client): a table in the same database, every statement
 * joining the unit's transaction ({@link transactional}), so that a
 * continuation is created with its approval and started with its consume,
 * or neither. The statements are the same for both dialects:
 *
 * - `create`: an insert that does nothing on a taken idempotency key (`ON
 *   CONFLICT … DO NOTHING`, which leaves a Postgres transaction usable),
 *   then the key's holder is read for {@link ContinuationStore.DuplicateKey}.
 * - `claim`: one `UPDATE … WHERE approval_id IN (SELECT … JOIN approvals …
 *   LIMIT n)` raising the fences: SQLite runs a write statement under its
 *   write lock, Postgres locks the selected rows `FOR UPDATE OF c SKIP
 *   LOCKED` (and re-checks a row another claim changed meanwhile), so no
 *   two claims, in any process, take the same continuation.
 * - `start`, `release`, `complete`, `close`, `resolve`: read the row, apply
 *   the pure transition of `ContinuationStore` (the memory store's), and
 *   compare-and-set on the fence, state and owner read; a row that changed
 *   meanwhile is read again and the transition applied anew (so a lost
 *   claim fails with `FenceLost` and the state it lost to).
 *
 * @internal
 */
export const makeContinuationStore = (
  dialect: Dialect,
  begin: string,
  store: ApprovalStore.Service
): ContinuationStore.Service => {
  const { guard, sql } = dialect
  const table = sql.literal(dialect.tables.continuations)
  const approvals = sql.literal(dialect.tables.approvals)
  const columns = sql.literal(continuationColumns)
  const insertionOrder = sql.literal(dialect.insertionOrder)
  const claimedOrder = sql.literal(`c.${dialect.insertionOrder}`)
  const claimLock = sql.literal(dialect.claimLockOf("c"))
  const run = <A>(operation: string, effect: Effect.Effect<A, SqlError>) =>
    Effect.mapError(effect, storeError(operation))

  const decodeAll = (operation: string, rows: ReadonlyArray<ContinuationRow>) =>
    Effect.forEach(rows, continuationOf(operation))

  const find = (operation: string, approvalId: string) =>
    Effect.flatMap(
      run(operation, sql<ContinuationRow>`SELECT ${columns} FROM ${table} WHERE approval_id = ${approvalId}`),
      ([row]) => row === undefined ? Effect.succeedNone : Effect.asSome(continuationOf(operation)(row))
    )

  const load = (operation: string, approvalId: string) =>
    Effect.flatMap(find(operation, approvalId), (found) =>
      Option.isSome(found)
        ? Effect.succeed(found.value)
        : Effect.fail(new ContinuationStore.ContinuationNotFound({ approvalId })))

  /** Writes `next` over `current` if the row is still as read (fence, state, owner): whether it was. */
  const compareAndSet = (
    operation: string,
    current: ContinuationStore.Continuation,
    next: ContinuationStore.Continuation
  ) =>
    Effect.gen(function*() {
      const result = yield* encodeResult(operation, next.approvalId, next.result)
      const rows = yield* run(
        operation,
        sql<{ readonly approval_id: string }>`UPDATE ${table} SET state = ${next.state}, sealed = ${next.sealed},
          owner = ${next.owner}, lease_until = ${next.leaseUntil === null ? null : next.leaseUntil.getTime()},
          fence = ${next.fence}, attempts = ${next.attempts}, updated_at = ${next.updatedAt.getTime()},
          result = ${result}, error = ${next.error}
          WHERE approval_id = ${current.approvalId} AND fence = ${current.fence} AND state = ${current.state}
          AND owner IS NOT DISTINCT FROM ${current.owner} RETURNING approval_id`
      )
      return rows.length === 1
    })

  /**
   * Reads the continuation, applies `f` and compare-and-sets the result;
   * when another writer changed the row in between, reads it again and
   * re-applies `f`. `f` returning `None` leaves the row as it is.
   */
  const step = <E>(
    operation: string,
    approvalId: string,
    f: (
      continuation: ContinuationStore.Continuation
    ) => Effect.Effect<Option.Option<ContinuationStore.Continuation>, E>
  ): Effect.Effect<
    Option.Option<ContinuationStore.Continuation>,
    E | ContinuationStore.ContinuationNotFound | Approval.StoreError
  > =>
    guard(operation)(Effect.gen(function*() {
      for (let attempt = 1;; attempt++) {
        const current = yield* load(operation, approvalId)
        const next = yield* f(current)
        if (Option.isNone(next)) return next
        if (yield* compareAndSet(operation, current, next.value)) return next
        if (attempt >= MAX_STEP_ATTEMPTS) {
          return yield* new Approval.StoreError({
            operation,
            detail: `continuation "${approvalId}" kept changing while it was being written (${attempt} attempts)`
          })
        }
      }
    }))

  const transition = <E>(
    operation: string,
    approvalId: string,
    f: (continuation: ContinuationStore.Continuation) => Effect.Effect<ContinuationStore.Continuation, E>
  ) => Effect.map(step(operation, approvalId, (c) => Effect.map(f(c), Option.some)), Option.getOrThrow)

  return ContinuationStore.ContinuationStore.of({
    store,
    atomically: transactional(dialect, begin),
    create: (continuation) => {
      const operation = "create continuation"
      return guard(operation)(Effect.gen(function*() {
        const c = yield* Either.mapLeft(
          validateContinuation(continuation),
          unstorable(operation, `continuation "${continuation.approvalId}"`)
        )
        const result = yield* encodeResult(operation, c.approvalId, c.result)
        const inserted = yield* Effect.mapError(
          sql<{ readonly approval_id: string }>`INSERT INTO ${table} (${columns}) VALUES (${c.approvalId},
            ${c.handler}, ${c.handlerVersion}, ${c.delivery}, ${c.maxAttempts}, ${c.leaseMillis},
            ${c.idempotencyKey}, ${c.sealed}, ${c.state}, ${c.owner},
            ${c.leaseUntil === null ? null : c.leaseUntil.getTime()}, ${c.fence}, ${c.attempts},
            ${c.createdAt.getTime()}, ${c.updatedAt.getTime()}, ${result}, ${c.error})
            ON CONFLICT (idempotency_key) DO NOTHING RETURNING approval_id`,
          (error) =>
            dialect.isDuplicateKey(error)
              ? new Approval.StoreError({
                operation,
                detail: `a continuation for approval "${c.approvalId}" exists`,
                cause: error
              })
              : storeError(operation)(error)
        )
        if (inserted.length === 1) return
        const [holder] = yield* run(
          operation,
          sql<{ readonly approval_id: string }>`SELECT approval_id FROM ${table}
            WHERE idempotency_key = ${c.idempotencyKey}`
        )
        return yield* holder === undefined
          ? new Approval.StoreError({
            operation,
            detail: `the idempotency key of continuation "${c.approvalId}" is taken, yet no continuation holds it`
          })
          : new ContinuationStore.DuplicateKey({ idempotencyKey: c.idempotencyKey, approvalId: holder.approval_id })
      }))
    },
    get: (approvalId) => guard("get continuation")(load("get continuation", approvalId)),
    findByKey: (idempotencyKey) => {
      const operation = "find continuation"
      return guard(operation)(Effect.flatMap(
        run(operation, sql<ContinuationRow>`SELECT ${columns} FROM ${table} WHERE idempotency_key = ${idempotencyKey}`),
        ([row]) => row === undefined ? Effect.succeedNone : Effect.asSome(continuationOf(operation)(row))
      ))
    },
    claim: ({ limit, now, owner }) => {
      const operation = "claim continuations"
      // As the memory store: a limit of 0 or less claims nothing, a fractional one rounds up.
      if (!(limit > 0)) return Effect.succeed([])
      const at = now.getTime()
      return guard(operation)(Effect.gen(function*() {
        const rows = yield* run(
          operation,
          sql<ContinuationRow & { readonly position: number | string }>`UPDATE ${table} SET owner = ${owner},
            lease_until = ${at} + lease_millis, fence = fence + 1, updated_at = ${at}
            WHERE approval_id IN (SELECT c.approval_id FROM ${table} c JOIN ${approvals} a ON a.id = c.approval_id
            WHERE c.state IN ('waiting', 'started') AND (c.lease_until IS NULL OR c.lease_until <= ${at})
            AND (c.state = 'started' OR (a.status = 'approved' AND a.consumed_at IS NULL))
            ORDER BY c.created_at, ${claimedOrder} LIMIT ${Math.min(Math.ceil(limit), 2 ** 31 - 1)} ${claimLock})
            RETURNING ${columns}, ${insertionOrder} AS position`
        )
        // RETURNING follows no order: oldest first, as the select took them.
        const sorted = [...rows].sort((a, b) =>
          Number(a.created_at) - Number(b.created_at) || Number(a.position) - Number(b.position)
        )
        return yield* decodeAll(operation, sorted)
      }))
    },
    start: (approvalId, fence, now) =>
      transition("start continuation", approvalId, (c) => ContinuationStore.started(c, fence, now)),
    release: (approvalId, fence, now) =>
      transition("release continuation", approvalId, (c) => ContinuationStore.released(c, fence, now)),
    complete: (approvalId, fence, ending, now) =>
      transition("complete continuation", approvalId, (c) => ContinuationStore.completed(c, fence, ending, now)),
    close: (approvalId, state, now) =>
      Effect.asVoid(
        step("close continuation", approvalId, (c) => Effect.succeed(ContinuationStore.closed(c, state, now))).pipe(
          Effect.catchTag("ContinuationNotFound", () => Effect.void)
        )
      ),
    resolve: (approvalId, ending, now) =>
      transition("resolve continuation", approvalId, (c) => ContinuationStore.resolved(c, ending, now)),
    list: (filter) => {
      const operation = "list continuations"
      const limit = filter?.limit
      // As the memory store: a limit of 0 or less lists nothing, a fractional one rounds up.
      if (limit !== undefined && limit <= 0) return Effect.succeed([])
      const bounded = limit !== undefined && Number.isFinite(limit)
      return guard(operation)(Effect.flatMap(
        run(
          operation,
          sql<ContinuationRow>`SELECT ${columns} FROM ${table}
            WHERE ${sql.and(filter?.state === undefined ? [] : [sql`state = ${filter.state}`])}
            ORDER BY created_at, ${insertionOrder} ${bounded ? sql`LIMIT ${Math.ceil(limit)}` : sql``}`
        ),
        (rows) => decodeAll(operation, rows)
      ))
    }
  })
}
