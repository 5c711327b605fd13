/**
 * PostgreSQL persistence for gavel, for several processes (instances of a
 * service, hosts) sharing approvals and one audit trail: the
 * {@link ApprovalStore} (approvals, the blocked decisions kept for
 * overriding, overrides) and the {@link AuditSink} (the hash-chained audit
 * trail) in a schema of their own, on `@effect/sql-pg`.
 *
 * - Every transition (vote, consume, cancel, expiry) is one conditional
 *   `UPDATE … WHERE id = … AND version = …` (a compare-and-set) under Read
 *   Committed: of two concurrent resolvers, in any processes, exactly one
 *   wins and the other gets `AlreadyResolved`. Times are the ones the
 *   runtime passed in (from `Clock`), never the database's `now()`.
 * - Audit appends are serialized by a transaction-scoped advisory lock:
 *   sequence numbers and previous hashes stay gap-free and verifiable with
 *   any number of appending processes.
 * - An approval leaving `pending` is announced with `NOTIFY` (a trigger):
 *   the store's `resolutions` wakes a call parked in another process at
 *   once; polling stays as the fallback while the listening connection is
 *   lost, and a reconnect re-checks every parked call.
 * - Every operation is bounded by `timeout`: a database that is down fails
 *   calls with `StoreError` instead of hanging them.
 *
 * Needs the optional peer dependencies `@effect/sql` and `@effect/sql-pg`.
 *
 * @example
 * ```ts
 * import * as Postgres from "@gavel/adapters/Postgres"
 * import { Governance } from "@gavel/core"
 * import * as Layer from "effect/Layer"
 *
 * // GAVEL_DATABASE_URL=postgresql://gavel:…@db.internal:5432/gavel
 * const GavelLive = Governance.layer({ policySet }).pipe(Layer.provide(Postgres.layerConfig))
 * ```
 *
 * @since 0.1.0
 */
import * as ApprovalStore from "@gavel/core/ApprovalStore"
import * as AuditOutbox from "@gavel/core/AuditOutbox"
import * as AuditSink from "@gavel/core/AuditSink"
import * as ContinuationStore from "@gavel/core/ContinuationStore"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as internal from "./internal/postgres.js"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * How to reach the database.
 *
 * - `url`: a `postgres://` or `postgresql://` URL (user, password, host,
 *   port, database, and any of pg's query parameters such as `sslmode`),
 *   kept `Redacted`: it is never logged nor put in an error.
 * - `schema`: the schema gavel's tables live in, created when missing
 *   (default `"gavel"`). Lower-case letters, digits and `_`, at most 40.
 *   Processes sharing approvals must name the same schema.
 * - `poolSize`: connections in the pool (default 10), plus one per runtime
 *   listening for resolutions.
 * - `connectTimeout`: how long opening a connection may take (default 5 s).
 * - `timeout`: how long one operation may take, waiting for a connection
 *   included, before it fails with `StoreError` (default 10 s). Also the
 *   server's `statement_timeout` for gavel's connections.
 * - `listen`: announce resolutions with LISTEN/NOTIFY (default `true`);
 *   `false` leaves the runtime polling only.
 * - `heartbeat`: how often the listening connection proves it still hears
 *   (default 5 s); a connection that misses a heartbeat is replaced.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly url: Redacted.Redacted | string
  readonly schema?: string | undefined
  readonly poolSize?: number | undefined
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly timeout?: Duration.DurationInput | undefined
  readonly listen?: boolean | undefined
  readonly heartbeat?: Duration.DurationInput | undefined
  readonly applicationName?: string | undefined
}

/**
 * The newest schema version (migration id) this code knows. A schema whose
 * migrations table records a newer one was written by a newer gavel and is
 * refused.
 *
 * @since 0.1.0
 * @category constants
 */
export const schemaVersion: number = internal.latestMigration

/**
 * The LISTEN/NOTIFY channel on which the approvals of `schema` leaving
 * `pending` are announced (payload `r:<approval id>`).
 *
 * @since 0.1.0
 * @category constants
 */
export const channel: (schema: string) => string = internal.channelOf

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why the stores did not start. Every refusal happens before anything is
 * written to the database; `detail` never contains the URL or a password.
 *
 * - `InvalidOptions`: a URL that is not a Postgres URL, a bad schema name,
 *   a pool size or timeout out of range.
 * - `Unavailable`: the database could not be reached, authenticated
 *   against, or migrated.
 * - `NotAGavelSchema`: the schema holds another application's tables.
 * - `NewerSchema`: the schema was migrated by a newer gavel.
 *
 * @since 0.1.0
 * @category errors
 */
export class PostgresOpenError extends Schema.TaggedError<PostgresOpenError>()("PostgresOpenError", {
  reason: Schema.Literal("InvalidOptions", "Unavailable", "NotAGavelSchema", "NewerSchema"),
  schema: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    switch (this.reason) {
      case "InvalidOptions":
        return `Invalid Postgres options: ${this.detail}`
      case "Unavailable":
        return `Cannot open gavel's Postgres schema "${this.schema}": ${this.detail}`
      case "NotAGavelSchema":
        return `Postgres schema "${this.schema}" belongs to another application: ${this.detail}`
      case "NewerSchema":
        return `Postgres schema "${this.schema}" was migrated by a newer gavel: ${this.detail}`
    }
  }
}

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

interface Resolved extends internal.StoreOptions {
  readonly url: Redacted.Redacted
  readonly poolSize: number
  readonly connectTimeout: Duration.Duration
  readonly applicationName: string
}

const MAX_TIMEOUT_MILLIS = 2_147_483_647

/** Checks the URL without ever echoing it; returns it with gavel's session settings added. */
const prepareUrl = (url: string, timeout: Duration.Duration): Either.Either<string, string> => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return Either.left("the URL does not parse (expected postgresql://user:password@host:port/database)")
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    return Either.left(`the URL's scheme is "${parsed.protocol}", expected "postgresql:" or "postgres:"`)
  }
  const ms = String(Math.round(Duration.toMillis(timeout)))
  // The server cancels a statement running past the timeout (a backstop to
  // the client's own deadline), and ends a session idle in a transaction.
  if (!parsed.searchParams.has("statement_timeout")) parsed.searchParams.set("statement_timeout", ms)
  if (!parsed.searchParams.has("idle_in_transaction_session_timeout")) {
    parsed.searchParams.set("idle_in_transaction_session_timeout", ms)
  }
  return Either.right(parsed.toString())
}

type StoreOptions = Pick<Options, "schema" | "timeout" | "listen" | "heartbeat">

/** The options every constructor takes, checked. */
const resolveStore = (options: StoreOptions & Pick<Options, "connectTimeout">): Either.Either<
  internal.StoreOptions & { readonly connectTimeout: Duration.Duration },
  PostgresOpenError
> => {
  const schema = options.schema ?? "gavel"
  const invalid = (detail: string) => Either.left(new PostgresOpenError({ reason: "InvalidOptions", schema, detail }))
  if (!internal.schemaPattern.test(schema)) {
    return invalid(`schema "${schema}" is not a lower-case identifier of at most 40 characters (letters, digits, _)`)
  }
  const durations: Record<string, Duration.Duration> = {}
  for (
    const [name, input, fallback] of [
      ["connectTimeout", options.connectTimeout, "5 seconds"],
      ["timeout", options.timeout, "10 seconds"],
      ["heartbeat", options.heartbeat, "5 seconds"]
    ] as const
  ) {
    const decoded = Duration.decodeUnknown(input ?? fallback)
    if (decoded._tag === "None") return invalid(`${name} is not a duration`)
    const ms = Duration.toMillis(decoded.value)
    if (!(ms >= 1 && ms <= MAX_TIMEOUT_MILLIS)) return invalid(`${name} must be from 1 ms to about 24 days`)
    durations[name] = decoded.value
  }
  return Either.right({
    schema,
    timeout: durations.timeout!,
    connectTimeout: durations.connectTimeout!,
    heartbeat: durations.heartbeat!,
    listen: options.listen ?? true
  })
}

const resolve = (options: Options): Either.Either<Resolved, PostgresOpenError> =>
  Either.flatMap(resolveStore(options), (store) => {
    const invalid = (detail: string) =>
      Either.left(new PostgresOpenError({ reason: "InvalidOptions", schema: store.schema, detail }))
    const poolSize = options.poolSize ?? 10
    if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 1_000) {
      return invalid(`poolSize must be an integer from 1 to 1000, got ${poolSize}`)
    }
    const raw = typeof options.url === "string" ? options.url : Redacted.value(options.url)
    const url = prepareUrl(raw, store.timeout)
    if (Either.isLeft(url)) return invalid(url.left)
    return Either.right({
      ...store,
      url: Redacted.make(url.right),
      poolSize,
      applicationName: options.applicationName ?? "gavel"
    })
  })

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * The approval store over a `PgClient` whose database gavel already
 * migrated (with {@link layer}) in `schema` (default `"gavel"`). Every
 * operation is bounded by `timeout` (default 10 s); `resolutions` listens on
 * a dedicated connection unless `listen` is `false`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeApprovalStore = (
  options: StoreOptions = {}
): Effect.Effect<ApprovalStore.Service, PostgresOpenError, PgClient.PgClient> =>
  Effect.flatMap(resolveStore(options), (r) => Effect.map(PgClient.PgClient, (pg) => internal.makeApprovalStore(pg, r)))

/**
 * The audit sink over a `PgClient` whose database gavel already migrated
 * (with {@link layer}) in `schema` (default `"gavel"`): each append takes
 * the schema's advisory lock, reads the head, seals the entry after it and
 * inserts it, in one transaction.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAuditSink = (
  options: Pick<Options, "schema" | "timeout"> = {}
): Effect.Effect<AuditSink.Service, PostgresOpenError, PgClient.PgClient> =>
  Effect.flatMap(resolveStore(options), (r) => Effect.map(PgClient.PgClient, (pg) => internal.makeAuditSink(pg, r)))

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Connects to the database, creates gavel's schema and tables when missing
 * (migrating once, under an advisory lock, however many processes start
 * together), and provides the {@link ApprovalStore} and the
 * {@link AuditSink} over it, with the `SqlClient` and `PgClient` for the
 * host's own queries, and `ApprovalStore.Atomic`: the runtime writes each
 * step's transition and audit events in one transaction. Also the `AuditOutbox` and the
 * `ContinuationStore` (the work approvals release, in the same schema: its
 * `store` is this layer's approval store, its `atomically` one transaction;
 * several instances' claims never take the same continuation). The pool closes with the layer. Refuses with
 * {@link PostgresOpenError}: invalid options, an unreachable database, a
 * schema of another application or of a newer gavel.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  ApprovalStore.ApprovalStore | ApprovalStore.Atomic | AuditOutbox.AuditOutbox | AuditSink.AuditSink | ContinuationStore.ContinuationStore | SqlClient.SqlClient | PgClient.PgClient,
  PostgresOpenError
> =>
  Layer.scopedContext(Effect.gen(function*() {
    const r = yield* resolve(options)
    const schema = r.schema
    const refuse = (reason: PostgresOpenError["reason"], detail: string, cause?: unknown) =>
      new PostgresOpenError(cause === undefined ? { reason, schema, detail } : { reason, schema, detail, cause })
    const unavailable = (error: unknown) => refuse("Unavailable", internal.describe(error), error)

    const context = yield* Layer.build(PgClient.layer({
      url: r.url,
      maxConnections: r.poolSize,
      connectTimeout: r.connectTimeout,
      idleTimeout: "60 seconds",
      applicationName: r.applicationName
    })).pipe(Effect.catchAllCause((cause) => Effect.fail(unavailable(Cause.squash(cause)))))
    const pg = Context.get(context, PgClient.PgClient)
    const sql = pg.withoutTransforms()

    const check = (found: internal.Inspection): Effect.Effect<void, PostgresOpenError> => {
      const refusal = internal.judge(found)
      return refusal === undefined ? Effect.void : refuse(refusal.reason, refusal.detail)
    }

    const opening = Effect.gen(function*() {
      const found = yield* Effect.mapError(internal.inspect(sql, schema), unavailable)
      yield* check(found)
      if (found.migration !== internal.latestMigration) {
        yield* internal.migrate(sql, schema, check).pipe(
          Effect.catchAll((error) => error._tag === "PostgresOpenError" ? Effect.fail(error) : Effect.fail(unavailable(error))),
          Effect.catchAllDefect((defect) => Effect.fail(unavailable(defect)))
        )
      }
    })
    yield* internal.bounded("open", Duration.sum(r.timeout, r.connectTimeout))(opening).pipe(
      Effect.catchTag("StoreError", (error) => Effect.fail(unavailable(error)))
    )

    const store = internal.makeApprovalStore(pg, r)
    const sink = internal.makeAuditSink(pg, r)
    // A step's transition and its audit events: one transaction.
    return context.pipe(
      Context.add(ApprovalStore.ApprovalStore, store),
      Context.add(AuditSink.AuditSink, sink),
      Context.add(ApprovalStore.Atomic, internal.atomicSteps(pg, r, store, sink)),
      Context.add(AuditOutbox.AuditOutbox, internal.makeOutbox(pg, r, store)),
      Context.add(ContinuationStore.ContinuationStore, internal.makeContinuationStore(pg, r, store))
    )
  }))

/**
 * The options of {@link layer} read from Effect's `Config`:
 *
 * | Key | Default |
 * | --- | --- |
 * | `GAVEL_DATABASE_URL` | — (required; `Redacted`) |
 * | `GAVEL_DATABASE_SCHEMA` | `gavel` |
 * | `GAVEL_DATABASE_POOL_SIZE` | `10` |
 * | `GAVEL_DATABASE_TIMEOUT_MILLIS` | `10000` |
 * | `GAVEL_DATABASE_CONNECT_TIMEOUT_MILLIS` | `5000` |
 * | `GAVEL_DATABASE_LISTEN` | `true` |
 *
 * With Effect's default provider these are environment variables of the
 * same names. A missing URL fails with `ConfigError`; a bad value with
 * `ConfigError` or {@link PostgresOpenError} (`InvalidOptions`).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  url: Config.redacted("GAVEL_DATABASE_URL"),
  schema: Config.string("GAVEL_DATABASE_SCHEMA").pipe(
    Config.validate({
      message: "must be a lower-case identifier of at most 40 characters (letters, digits, _)",
      validation: (s) => internal.schemaPattern.test(s)
    }),
    Config.withDefault("gavel")
  ),
  poolSize: Config.integer("GAVEL_DATABASE_POOL_SIZE").pipe(
    Config.validate({ message: "must be from 1 to 1000", validation: (n) => n >= 1 && n <= 1_000 }),
    Config.withDefault(10)
  ),
  timeout: Config.integer("GAVEL_DATABASE_TIMEOUT_MILLIS").pipe(
    Config.validate({ message: "must be a positive number of milliseconds", validation: (n) => n >= 1 }),
    Config.withDefault(10_000),
    Config.map(Duration.millis)
  ),
  connectTimeout: Config.integer("GAVEL_DATABASE_CONNECT_TIMEOUT_MILLIS").pipe(
    Config.validate({ message: "must be a positive number of milliseconds", validation: (n) => n >= 1 }),
    Config.withDefault(5_000),
    Config.map(Duration.millis)
  ),
  listen: Config.boolean("GAVEL_DATABASE_LISTEN").pipe(Config.withDefault(true))
})

/**
 * {@link layer} with its options read from {@link config}
 * (`GAVEL_DATABASE_URL`, …).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<
  ApprovalStore.ApprovalStore | ApprovalStore.Atomic | AuditOutbox.AuditOutbox | AuditSink.AuditSink | ContinuationStore.ContinuationStore | SqlClient.SqlClient | PgClient.PgClient,
  PostgresOpenError | ConfigError.ConfigError
> = Layer.unwrapEffect(Effect.map(config, layer))
