/**
 * The Postgres dialect of the SQL store skeleton (`sqlStore.ts`): the
 * statement deadline, the compare-and-set transitions, the capped create
 * (a function of migration 2 under advisory locks), the audit append under
 * the schema's advisory lock, and the resolutions announced with
 * LISTEN/NOTIFY. The schema and its migrations are `postgresSchema.ts`'s
 * (re-exported here, so that `Postgres.ts` has one internal module).
 *
 * @internal
 */
// Module by module rather than the barrel: a host that only persists
// approvals does not load the policy engine.
import * as Approval from "@gavel/core/Approval"
import type * as ApprovalStore from "@gavel/core/ApprovalStore"
import * as Audit from "@gavel/core/Audit"
import type * as AuditOutbox from "@gavel/core/AuditOutbox"
import type * as AuditSink from "@gavel/core/AuditSink"
import type * as ContinuationStore from "@gavel/core/ContinuationStore"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
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
import { channelOf, lockClass } from "./postgresSchema.js"
import * as SqlStore from "./sqlStore.js"

export * from "./postgresSchema.js"

// -----------------------------------------------------------------------------
// constants
// -----------------------------------------------------------------------------

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
  claimLock: "FOR UPDATE SKIP LOCKED",
  claimLockOf: (alias) => `FOR UPDATE OF ${alias} SKIP LOCKED`,
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
  // Inside a transaction the caller opened (a step's, `atomicSteps`): the
  // same lock, held until that transaction ends, and the same head.
  const lockAndHeadInside = `SELECT pg_advisory_xact_lock(${lockClass}, hashtext('${options.schema}.audit'));
${SqlStore.selectHead(postgres.tables)}`
  const failed = SqlStore.storeError("append")

  type HeadRows = ReadonlyArray<{ readonly sequence: string; readonly hash: string }>

  /** Seals `entry` after the head read by `lockAndHead` (result `index`) and inserts it on `conn`. */
  const sealAndInsert = (conn: Connection, lockAndHead: string, index: number, entry: Audit.Entry) =>
    Effect.gen(function*() {
      const results = yield* Effect.mapError(conn.executeUnprepared(lockAndHead, [], undefined), failed)
      const rows = (results as unknown as ReadonlyArray<HeadRows>)[index] ?? []
      const event = Audit.seal(entry, SqlStore.anchorOf(rows))
      const [text, params] = SqlStore.insertEvent(postgres, event).compile()
      yield* Effect.mapError(conn.execute(text, params, undefined), failed)
      return event
    })

  /** Three round trips: lock and head, insert, commit. The primary key on `sequence` is the backstop. */
  const appendSealed = (entry: Audit.Entry): Effect.Effect<Audit.AuditEvent, Approval.StoreError> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.scoped(Effect.gen(function*() {
        const conn = yield* Effect.mapError(restore(sql.reserve), failed)
        const exit = yield* Effect.exit(restore(Effect.gen(function*() {
          const event = yield* sealAndInsert(conn, lockAndHead, 2, entry)
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

  return SqlStore.makeAuditSink(postgres, (entry) =>
    Effect.flatMap(
      Effect.serviceOption(SqlClient.TransactionConnection),
      (enclosing) =>
        Option.isSome(enclosing) ? sealAndInsert(enclosing.value[0], lockAndHeadInside, 1, entry) : appendSealed(entry)
    ))
}

/**
 * The {@link ApprovalStore.AtomicSteps} of `store` and `sink`, both over
 * `pg`: each step one transaction, its audit appends under the schema's
 * advisory lock until it commits.
 *
 * @internal
 */
export const atomicSteps = (
  pg: PgClient.PgClient,
  options: Pick<StoreOptions, "schema" | "timeout">,
  store: ApprovalStore.Service,
  sink: AuditSink.Service
): ApprovalStore.AtomicSteps => SqlStore.atomicSteps(dialect(pg.withoutTransforms(), options), "BEGIN", store, sink)

/**
 * The audit outbox of `store`, in its schema: for a sink elsewhere.
 *
 * @internal
 */
export const makeOutbox = (
  pg: PgClient.PgClient,
  options: Pick<StoreOptions, "schema" | "timeout">,
  store: ApprovalStore.Service
): AuditOutbox.Service => SqlStore.makeOutbox(dialect(pg.withoutTransforms(), options), "BEGIN", store)

/**
 * The continuation store beside `store`, in its schema: every statement
 * joins the unit's transaction; claims lock the rows they take
 * (`FOR UPDATE OF c SKIP LOCKED`).
 *
 * @internal
 */
export const makeContinuationStore = (
  pg: PgClient.PgClient,
  options: Pick<StoreOptions, "schema" | "timeout">,
  store: ApprovalStore.Service
): ContinuationStore.Service => SqlStore.makeContinuationStore(dialect(pg.withoutTransforms(), options), "BEGIN", store)
