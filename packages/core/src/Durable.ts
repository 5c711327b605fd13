/**
 * Durable approvals: work an approval releases that survives a restart and
 * runs on any instance — once, or flagged in doubt, never twice.
 *
 * Work is done by named **handlers**, registered at start-up like Temporal
 * activities: a name, a version, Schemas for the input, the success and the
 * failure, a delivery mode, a lease, and `run`. `submit` evaluates an action
 * like `Governance.submit`; when it needs approval, it persists a
 * *continuation* — the handler's name and the sealed (encrypted) action and
 * input, never a closure — in one unit with the approval, idempotent on a
 * key. The **worker** of {@link layer} claims approved continuations (a
 * compare-and-set raising a fence), revalidates them as `resume` does, runs
 * the handler and completes under the fence; any instance with the handler
 * registered can, after a restart too. `outcome` tells where the work stands.
 *
 * Delivery, per handler:
 * - `atMostOnce` (default — one approval authorises one execution): a claim
 *   that lapses after the work started leaves it `InDoubt`, with an
 *   `execution.in_doubt` audit event written in one unit with that state
 *   (a crash leaves both or neither); it is never run again silently, an
 *   operator resolves it (`resolveInDoubt`). A claim that lapses before the
 *   start is taken over safely.
 * - `atLeastOnce`: claimed and run again, with a new fence, up to
 *   `maxAttempts` (then in doubt: the last attempt may have run); the
 *   handler gets `{ idempotencyKey, attempt, fence }` to make its side
 *   effects idempotent downstream.
 *
 * A claim lasts the handler's `lease`: work that may outlast it must be given
 * a longer lease (a lapsed claim is taken over).
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Action from "./Action.js"
import type * as Approval from "./Approval.js"
import type * as Audit from "./Audit.js"
import * as ContinuationStore from "./ContinuationStore.js"
import type * as DecisionRecord from "./DecisionRecord.js"
import * as Encryption from "./Encryption.js"
import { Governance, InvalidOption, type TooManyTransforms } from "./Governance.js"
import * as entries from "./internal/auditEntries.js"
import * as durable from "./internal/governance/durable.js"
import * as internals from "./internal/governance/internals.js"
import { IdGenerator } from "./IdGenerator.js"

/**
 * What a handler's run is told: the submission's idempotency key, which
 * attempt this is (from 1), the fence of the claim it runs under, and the
 * approval that released it (`null` when the action was allowed at once).
 *
 * @since 0.2.0
 * @category models
 */
export interface Attempt {
  readonly idempotencyKey: string
  readonly attempt: number
  readonly fence: number
  readonly approvalId: string | null
}

/**
 * A named work handler.
 *
 * @since 0.2.0
 * @category models
 */
export interface Handler<I, A, E, R = never> {
  readonly name: string
  readonly version: number
  /** The input, as persisted (encoded, then sealed). */
  readonly input: Schema.Schema<I, unknown>
  /** The result, as `outcome` shows it (encoded). */
  readonly success: Schema.Schema<A, unknown>
  readonly delivery: ContinuationStore.Delivery
  readonly maxAttempts: number
  readonly lease: Duration.Duration
  readonly run: (action: Action.Action, input: I, attempt: Attempt) => Effect.Effect<A, E, R>
}

/**
 * Any handler, as a registry holds them.
 *
 * @since 0.2.0
 * @category models
 */
 
export type AnyHandler = Handler<any, any, any, any>

/**
 * Defines a handler. `delivery` defaults to `atMostOnce`, `maxAttempts` to 1
 * (3 for `atLeastOnce`), `lease` to 5 minutes, `version` to 1.
 *
 * @example
 * ```ts
 * import { Durable } from "@gavel/core"
 * import { Effect, Schema } from "effect"
 *
 * const sendPayment = Durable.handler({
 *   name: "payments.send",
 *   input: Schema.Struct({ to: Schema.String, amount: Schema.Number }),
 *   success: Schema.Struct({ receipt: Schema.String }),
 *   run: (_action, input, attempt) => Effect.succeed({ receipt: `r-${input.to}-${attempt.idempotencyKey}` })
 * })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const handler = <I, IE, A, AE, R, E = never, EE = never>(options: {
  readonly name: string
  readonly version?: number | undefined
  readonly input: Schema.Schema<I, IE>
  readonly success: Schema.Schema<A, AE>
  /** The typed failure (for the types only: a failure is kept by its `_tag`, never its message). */
  readonly failure?: Schema.Schema<E, EE> | undefined
  readonly delivery?: ContinuationStore.Delivery | undefined
  readonly maxAttempts?: number | undefined
  readonly lease?: Duration.DurationInput | undefined
  readonly run: (action: Action.Action, input: I, attempt: Attempt) => Effect.Effect<A, E, R>
}): Handler<I, A, E, R> => {
  const delivery = options.delivery ?? "atMostOnce"
  return {
    name: options.name,
    version: options.version ?? 1,
    input: options.input as Schema.Schema<I, unknown>,
    success: options.success as Schema.Schema<A, unknown>,
    delivery,
    maxAttempts: options.maxAttempts ?? (delivery === "atLeastOnce" ? 3 : 1),
    lease: Duration.decode(options.lease ?? "5 minutes"),
    run: options.run
  }
}

/**
 * Where durable work stands, as {@link Service.outcome} tells it.
 *
 * @since 0.2.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Waiting"; readonly approvalId: string }
  | { readonly _tag: "Running"; readonly approvalId: string; readonly attempts: number }
  | { readonly _tag: "Succeeded"; readonly approvalId: string | null; readonly result: unknown }
  | { readonly _tag: "Failed"; readonly approvalId: string | null; readonly error: string }
  | { readonly _tag: "InDoubt"; readonly approvalId: string; readonly reason: string }
  | { readonly _tag: "Rejected" | "Expired" | "Cancelled"; readonly approvalId: string }

/**
 * What {@link Service.submit} did: opened an approval the work waits on
 * (`Pending`), ran it at once (`Completed`: the action proceeded), refused
 * it (`Blocked`: denied, escalated or deferred), or found an earlier
 * submission with the same idempotency key (`Existing`, nothing evaluated).
 *
 * @since 0.2.0
 * @category models
 */
export type Submission =
  | {
    readonly _tag: "Pending"
    readonly approvalId: string
    readonly expiresAt: Date
    readonly record: DecisionRecord.DecisionRecord
  }
  | { readonly _tag: "Completed"; readonly outcome: Outcome; readonly record: DecisionRecord.DecisionRecord }
  | { readonly _tag: "Blocked"; readonly record: DecisionRecord.DecisionRecord }
  | { readonly _tag: "Existing"; readonly approvalId: string; readonly outcome: Outcome }

/**
 * The input does not encode with the handler's `input` Schema, or the
 * handler is not registered with this worker: nothing was evaluated or
 * written.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidSubmission extends Schema.TaggedError<InvalidSubmission>()("InvalidSubmission", {
  handler: Schema.String,
  reason: Schema.Literal("unregistered_handler", "invalid_input"),
  detail: Schema.String
}) {
  /** @since 0.2.0 */
  override get message(): string {
    return `Cannot submit to handler "${this.handler}" (${this.reason}): ${this.detail}`
  }
}

/**
 * An operator's account of in-doubt work: whether it ran (`succeeded`) or
 * not (`failed`), who found out, and a note.
 *
 * @since 0.2.0
 * @category models
 */
export interface Resolution {
  readonly state: "succeeded" | "failed"
  readonly by: Action.Principal
  readonly note?: string | undefined
}

/**
 * The audit entry of an operator's resolution of in-doubt work
 * (`execution.resolved`, event id `execution.resolved:<approvalId>`, the
 * resolver as its actor, `{ state, note }` as its data): the one
 * `resolveInDoubt` writes, for a tool that resolves the work through the
 * `ContinuationStore` itself (`gavel work resolve`) — written in one unit
 * with `ContinuationStore.resolve`.
 *
 * @example
 * ```ts
 * import { type Approval, Durable } from "@gavel/core"
 *
 * declare const approval: Approval.ApprovalRequest
 *
 * const entry = Durable.resolutionEntry(approval, {
 *   state: "failed",
 *   by: "ops-1",
 *   note: "the bank never received it"
 * }, new Date())
 * // entry.type === "execution.resolved", entry.actor === "ops-1"
 * ```
 *
 * @since 0.2.0
 * @category audit
 */
export const resolutionEntry = (
  approval: Approval.ApprovalRequest,
  resolution: {
    readonly state: "succeeded" | "failed"
    readonly by: string
    readonly note?: string | null | undefined
  },
  at: Date
): Audit.Entry & { readonly eventId: string } =>
  entries.resolvedInDoubt(approval, at, resolution.by, { state: resolution.state, note: resolution.note ?? null })

/**
 * @since 0.2.0
 * @category models
 */
export interface Service {
  /**
   * Evaluates `action` like `Governance.submit` and, as the decision says,
   * runs `handler` at once, refuses, or opens an approval with the work's
   * continuation in one unit. With an `idempotencyKey` a submission already
   * made with it is answered `Existing` (one approval per key, whatever
   * the retries).
   */
  readonly submit: <I, A, E, R>(
    action: Action.Action,
    handler: Handler<I, A, E, R>,
    input: I,
    options?: { readonly idempotencyKey?: string | undefined }
  ) => Effect.Effect<
    Submission,
    InvalidSubmission | Action.InvalidAction | TooManyTransforms | Approval.TooManyPending | Approval.StoreError
  >
  /** Where the work released by `approvalId` stands. */
  readonly outcome: (
    approvalId: string
  ) => Effect.Effect<Outcome, ContinuationStore.ContinuationNotFound | Approval.StoreError>
  /** Resolves in-doubt work, written to the audit trail (`execution.resolved`). */
  readonly resolveInDoubt: (
    approvalId: string,
    resolution: Resolution
  ) => Effect.Effect<
    Outcome,
    ContinuationStore.ContinuationNotFound | ContinuationStore.FenceLost | Approval.StoreError
  >
  /** Claims what is ready and runs it, once (the worker does this on its own; for tests and tools). */
  readonly runOnce: Effect.Effect<number, Approval.StoreError>
}

/**
 * @since 0.2.0
 * @category tags
 */
export class Durable extends Context.Tag("@gavel/core/Durable")<Durable, Service>() {}

/**
 * The worker's options: the handlers it runs (every instance registers the
 * same; a continuation whose handler an instance lacks is left to another),
 * its owner name in claims (default: a random id), how often it looks for
 * approved work besides being woken by approvals this process resolves
 * (default 1 second), how many continuations one claim takes (default 16)
 * and how many run at once (default 8).
 *
 * `worker`: `"background"` (default) runs the worker for as long as the
 * layer lasts; `"manual"` runs none — nothing is claimed but by
 * {@link Service.runOnce} (tests that step the worker themselves, tools, a
 * host that schedules the passes itself).
 *
 * @since 0.2.0
 * @category models
 */
export interface Options<R> {
  readonly handlers: ReadonlyArray<Handler<any, any, any, R>>  
  readonly owner?: string | undefined
  readonly pollInterval?: Duration.DurationInput | undefined
  readonly batch?: number | undefined
  readonly concurrency?: number | undefined
  readonly worker?: "background" | "manual" | undefined
}

/**
 * The durable service and its worker, for as long as the layer lasts. Needs
 * the `Governance` runtime built over the same store as the
 * `ContinuationStore` (so that an approval's steps end its continuation),
 * and `Encryption` (see its `layerConfig`; `layerPlaintext` for development
 * only). Refuses to build (`InvalidOption`) when the continuation store is
 * not the runtime's.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <R>(
  options: Options<R>
): Layer.Layer<
  Durable,
  InvalidOption,
  Governance | ContinuationStore.ContinuationStore | Encryption.Encryption | R
> =>
  Layer.scoped(
    Durable,
    Effect.gen(function*() {
      const governance = yield* Governance
      const continuations = yield* ContinuationStore.ContinuationStore
      const runtime = internals.runtimeOf(governance)
      if (runtime === undefined || runtime.ctx.continuations !== continuations) {
        return yield* new InvalidOption({
          option: "ContinuationStore",
          problem: "must be the one beside the runtime's ApprovalStore, provided to Governance.layer too"
        })
      }
      const pollInterval = Duration.decode(options.pollInterval ?? "1 second")
      const count = (name: string, value: number | undefined, fallback: number) =>
        value === undefined
          ? Effect.succeed(fallback)
          : Number.isSafeInteger(value) && value > 0
          ? Effect.succeed(value)
          : Effect.fail(new InvalidOption({ option: name, problem: `must be a positive integer, not ${value}` }))
      const names = new Set<string>()
      for (const h of options.handlers) {
        const key = `${h.name}@${h.version}`
        if (names.has(key)) {
          return yield* new InvalidOption({ option: "handlers", problem: `${key} is registered twice` })
        }
        names.add(key)
      }
      return yield* durable.make(runtime, continuations, yield* Encryption.Encryption, {
        handlers: options.handlers,
        owner: options.owner ?? (yield* IdGenerator).next("wrk"),
        pollInterval,
        batch: yield* count("batch", options.batch, 16),
        concurrency: yield* count("concurrency", options.concurrency, 8),
        worker: options.worker ?? "background"
      })
    })
  )
