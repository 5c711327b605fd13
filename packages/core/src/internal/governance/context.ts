/**
 * What every part of the governance runtime shares, read once when the
 * runtime is built: its services, its settings (from `Governance.Options`,
 * else the config), and the steps every path takes — checking and hashing
 * an action, evaluating it with the decision written, running the work
 * between its audit events.
 *
 * The errors are Governance's own, declared in `Governance.ts`; the modules
 * of `internal/governance/` import them from there and use them only inside
 * functions, so that import cycle is harmless at load time.
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Action from "../../Action.js"
import type * as Approval from "../../Approval.js"
import { ApprovalStore, Atomic, type PendingLimits } from "../../ApprovalStore.js"
import type * as Audit from "../../Audit.js"
import * as AuditOutbox from "../../AuditOutbox.js"
import * as ContinuationStore from "../../ContinuationStore.js"
import { AuditSink } from "../../AuditSink.js"
import { InvalidOption, type Options } from "../../Governance.js"
import { IdGenerator } from "../../IdGenerator.js"
import { Identity } from "../../Identity.js"
import * as PolicySet from "../../PolicySet.js"
import * as Redaction from "../../Redaction.js"
import { isLimit, maxDepthCeiling } from "../actionValue.js"
import * as entries from "../auditEntries.js"
import { numberSetting } from "../config.js"
import * as delivery from "./delivery.js"

// -----------------------------------------------------------------------------
// settings
// -----------------------------------------------------------------------------

/** The longest duration the runtime accepts: instants it computes stay representable. */
const maxDurationMillis = 100 * 365.25 * 24 * 3600 * 1000

/**
 * A duration config key in seconds (see `numberSetting` for its spellings).
 *
 * @internal
 */
export const seconds = (key: string, section: string, fallback: number) =>
  numberSetting(section, key, {
    message: "must be a positive number of seconds, at most 100 years",
    validation: (n) => n > 0 && n * 1000 <= maxDurationMillis
  }, fallback).pipe(Config.map(Duration.seconds))

const count = (key: string, section: string, fallback: number) =>
  numberSetting(section, key, {
    message: "must be a positive integer",
    validation: isLimit
  }, fallback)

/** A count given in code, else the config: a bad one refuses to start, naming the option. */
const countOf = (
  option: string,
  given: number | undefined,
  config: Config.Config<number>
): Effect.Effect<number, ConfigError.ConfigError | InvalidOption> =>
  given === undefined
    ? config
    : isLimit(given)
    ? Effect.succeed(given)
    : Effect.fail(new InvalidOption({ option, problem: `must be a positive integer, not ${String(given)}` }))

/**
 * A duration given in code, else the config: a bad one refuses to start,
 * naming the option.
 *
 * @internal
 */
export const durationOf = (
  option: string,
  given: Duration.DurationInput | undefined,
  config: Config.Config<Duration.Duration>
): Effect.Effect<Duration.Duration, ConfigError.ConfigError | InvalidOption> => {
  if (given === undefined) return config
  const duration = Duration.decodeUnknown(given)
  if (Option.isNone(duration)) {
    return Effect.fail(new InvalidOption({ option, problem: `is not a duration: ${String(given)}` }))
  }
  const millis = Duration.toMillis(duration.value)
  return millis > 0 && millis <= maxDurationMillis
    ? Effect.succeed(duration.value)
    : Effect.fail(
      new InvalidOption({ option, problem: `must be positive and at most 100 years, not ${Duration.format(duration.value)}` })
    )
}

/** The `actionLimits` option: each given limit must be a positive integer. */
const actionLimitsOf = (
  given: Partial<Action.Limits> | undefined
): Effect.Effect<Action.Limits, InvalidOption> => {
  if (given === undefined) return Effect.succeed(Action.defaultLimits)
  for (const key of ["maxDepth", "maxNodes", "maxStringLength"] as const) {
    const value = given[key]
    if (value !== undefined && !isLimit(value)) {
      return Effect.fail(
        new InvalidOption({ option: `actionLimits.${key}`, problem: `must be a positive integer, not ${String(value)}` })
      )
    }
  }
  if (given.maxDepth !== undefined && given.maxDepth > maxDepthCeiling) {
    return Effect.fail(
      new InvalidOption({
        option: "actionLimits.maxDepth",
        problem: `must be at most ${maxDepthCeiling} (values nested deeper cannot be written), not ${given.maxDepth}`
      })
    )
  }
  return Effect.succeed({ ...Action.defaultLimits, ...given } as Action.Limits)
}

/** The store's audit outbox when it provides one, else one in memory. */
const outboxOf = (store: ApprovalStore["Type"]): Effect.Effect<AuditOutbox.Service> =>
  Effect.flatMap(
    Effect.serviceOption(AuditOutbox.AuditOutbox),
    (provided) =>
      Option.isSome(provided) && provided.value.store === store
        ? Effect.succeed(provided.value)
        : AuditOutbox.makeMemory(store)
  )

// -----------------------------------------------------------------------------
// context
// -----------------------------------------------------------------------------

/**
 * The runtime's dependencies and shared steps, built once by {@link make}
 * and handed to each part of it.
 *
 * @internal
 */
export type GovernanceContext = Effect.Effect.Success<ReturnType<typeof make>>

/**
 * Reads the services and settings (refusing the first invalid option), and
 * builds the shared steps.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*<R>(options: Options<R>) {
  const store = yield* ApprovalStore
  const sink = yield* AuditSink
  const identity = yield* Identity
  // A step's transition and its audit events are one unit: written in one
  // transaction when the store and the sink in context share one; else the
  // events are put in the store's audit outbox with the transition, and
  // delivered to the sink from there.
  const atomic = yield* Effect.serviceOption(Atomic)
  const shared = Option.isSome(atomic) && atomic.value.store === store && atomic.value.sink === sink
    ? atomic.value
    : undefined
  // Durable work kept beside the approvals, when the store provides it: an
  // approval's steps end its continuation in the same unit.
  const continuations = Option.getOrUndefined(
    Option.filter(yield* Effect.serviceOption(ContinuationStore.ContinuationStore), (c) => c.store === store)
  )
  const redaction = options.redaction === undefined ? Redaction.defaults : yield* Redaction.make(options.redaction)
  const context = yield* Effect.context<R>()
  const ids = Context.get(context, IdGenerator)
  const approvalTimeout = yield* durationOf(
    "approvalTimeout",
    options.approvalTimeout,
    seconds("approval_timeout_seconds", "governance", 3600)
  )
  const pollInterval = yield* durationOf(
    "pollInterval",
    options.pollInterval,
    seconds("approval_poll_interval_seconds", "runtime", 1)
  )
  const auditRetryInterval = yield* durationOf(
    "auditRetryInterval",
    options.auditRetryInterval,
    seconds("audit_retry_interval_seconds", "runtime", 5)
  )
  const unit = shared !== undefined ? { shared } : {
    outboxed: yield* delivery.make(sink, yield* outboxOf(store), {
      retryInterval: auditRetryInterval,
      lease: Duration.minutes(1),
      batch: 100
    })
  }
  const maxTransforms = options.maxTransforms ?? 3
  if (!Number.isSafeInteger(maxTransforms) || maxTransforms < 0) {
    return yield* new InvalidOption({
      option: "maxTransforms",
      problem: `must be a non-negative integer, not ${String(maxTransforms)}`
    })
  }
  const limits: PendingLimits = {
    perRequester: yield* countOf(
      "maxPendingPerRequester",
      options.maxPendingPerRequester,
      count("max_pending_per_requester", "governance", 100)
    ),
    perTenant: yield* countOf(
      "maxPendingPerTenant",
      options.maxPendingPerTenant,
      count("max_pending_per_tenant", "governance", 10_000)
    )
  }
  const set = options.policySet
  const actionLimits = yield* actionLimitsOf(options.actionLimits)

  /** The action, when it is one the runtime can govern (see `Action.validate`). */
  const checked = (action: Action.Action): Either.Either<Action.Action, Action.InvalidAction> =>
    Action.validate(action, actionLimits)

  /** What an approval binds to, never computed lossily. */
  const hashOf = (action: Action.Action): Effect.Effect<string, Action.InvalidAction> =>
    Effect.try({
      try: () => Action.hash(action, actionLimits),
      catch: (error) =>
        error instanceof Action.InvalidAction ? error : new Action.InvalidAction({ path: "", reason: "unreadable" })
    })

  const now = Effect.map(Effect.clockWith((clock) => clock.currentTimeMillis), (ms) => new Date(ms))

  const write = (entry: Audit.Entry): Effect.Effect<void, Approval.StoreError> => Effect.asVoid(sink.append(entry))

  /**
   * Writes an event; one of work an approval released (`resuming`) is put
   * in the outbox when there is one: a sink that is down does not strand an
   * approved call, as it would if its re-evaluation could not be recorded.
   */
  const record = (entry: entries.Identified, resuming: boolean): Effect.Effect<void, Approval.StoreError> =>
    resuming && "outboxed" in unit ? unit.outboxed.write(entry) : write(entry)

  /**
   * For steps that already happened (the work ran): the event is put in the
   * outbox when there is one, and a failed write is reported, not thrown at
   * the caller.
   */
  const writeAfter = (entry: Effect.Effect<Audit.Entry>): Effect.Effect<void> =>
    Effect.flatMap(entry, (e) => "outboxed" in unit && delivery.isIdentified(e) ? unit.outboxed.write(e) : write(e))
      .pipe(Effect.catchAll((error) => Effect.logError("gavel: writing an audit event failed", error)))

  /**
   * A step of an approval's life: `transition` written to the store with
   * `audit`, its events, as one unit; then `after`, what follows from the
   * committed state (waking the waiters, the metrics). With a sink outside
   * the store, the events are put in the outbox with the transition and
   * delivered once it committed: a sink that refuses them delays them, and
   * neither undoes the step nor fails it.
   */
  const step = <A, E>(
    transition: Effect.Effect<A, E>,
    audit: (a: A) => ReadonlyArray<delivery.Identified>,
    after: (a: A) => Effect.Effect<void>
  ): Effect.Effect<A, E | Approval.StoreError> =>
    "outboxed" in unit
      ? unit.outboxed.step(transition, audit, after)
      : Effect.tap(
        unit.shared.atomically(Effect.tap(transition, (a) => Effect.forEach(audit(a), write, { discard: true }))),
        after
      )

  /**
   * Evaluates and writes `decision.evaluated`: the written (redacted) record,
   * and the raw decision (a transform's replacement action unmasked). A caller
   * that gives up during the evaluation leaves `evaluation.cancelled`.
   */
  const evaluateWritten = (action: Action.Action, options?: { readonly resuming?: boolean }) =>
    Effect.provide(PolicySet.evaluate(set, action), context).pipe(
      Effect.onInterrupt(() => writeAfter(Effect.map(now, (at) => entries.cancelled(action, at)))),
      Effect.flatMap((raw) =>
        // Bounded by the same limits as the action: a transform's replacement
        // is masked here before it is checked itself.
        Effect.try({
          try: () => Redaction.record(redaction, raw, action, actionLimits),
          catch: (error) =>
            error instanceof Action.InvalidAction ? error : new Action.InvalidAction({ path: "", reason: "unreadable" })
        })
          .pipe(Effect.flatMap((written) =>
            Effect.as(record(entries.evaluated(written.record, written.payload), options?.resuming === true), {
              decision: raw.decision,
              record: written.record
            })
          ))
      )
    )

  /**
   * Runs the work whose `execution.started` is written, then writes
   * `execution.succeeded` / `failed`. Call it uninterruptibly, with
   * `restore` for the work alone.
   */
  const runStarted = <A, E, R2>(
    of: entries.Execution,
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>,
    restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>
  ): Effect.Effect<A, E, R2> =>
    Effect.onExit(
      restore(work(action)),
      (exit) => writeAfter(Effect.map(now, (at) => entries.ended(of, at, exit)))
    )

  /**
   * Runs the work a decision (or an override) lets through, between
   * `execution.started` and `execution.succeeded` / `failed`,
   * uninterruptibly but for the work: the start is written if and only if
   * the work begins.
   */
  const execute = <A, E, R2>(
    execution: Omit<entries.Execution, "runId">,
    action: Action.Action,
    work: (action: Action.Action) => Effect.Effect<A, E, R2>
  ): Effect.Effect<A, E | Approval.StoreError, R2> => {
    const of: entries.Execution = { ...execution, runId: entries.runId() }
    return Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        Effect.flatMap(now, (at) => write(entries.started(of, at))),
        runStarted(of, action, work, restore)
      )
    )
  }

  return {
    store,
    continuations,
    identity,
    ids,
    approvalTimeout,
    pollInterval,
    maxTransforms,
    limits,
    checked,
    hashOf,
    now,
    write,
    step,
    writeAfter,
    evaluateWritten,
    runStarted,
    execute
  }
})
