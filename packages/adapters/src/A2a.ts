/**
 * Governance for A2A agents (`@a2a-js/sdk`): a wrapper around an
 * `AgentExecutor` that turns every incoming message into an `Action`, has
 * gavel decide on it, and only then lets the wrapped executor run.
 *
 * - Allowed (`Allow`, `Warn`, or an active override): the wrapped executor
 *   runs as if it were not wrapped.
 * - Denied, escalated, deferred, an approval refused because the caller
 *   or its tenant has too many pending (`approval.too_many_pending`), or
 *   anything that fails (no or invalid identity, an evaluation that fails
 *   or times out): the task is published
 *   in `TASK_STATE_REJECTED`, its status message naming the reason codes and
 *   the decision id, never the internals. The wrapped executor never runs.
 * - Approval required: the task is published in `TASK_STATE_INPUT_REQUIRED`
 *   with `approval_id` and `approval_expires_at` in its metadata. The same
 *   task continues by itself when the approval is granted (the wrapped
 *   executor runs, exactly once, on the same task id) and ends in
 *   `TASK_STATE_REJECTED` when the approval is rejected or expires.
 *
 * `guard` wraps the SDK's request handler so that a task is read, listed,
 * resubscribed to and cancelled only by its owner, the caller whose message
 * created it.
 *
 * See docs/a2a.md for the state mapping and the streaming behaviour.
 *
 * @since 0.1.0
 */
import { type ListTasksRequest, type ListTasksResponse, type SendMessageRequest, type Task, Role, TaskState } from "@a2a-js/sdk"
import {
  A2AError,
  JsonRpcRequestMalformedError,
  RequestMalformedError,
  RestRequestMalformedError,
  TaskNotFoundError,
  toJsonRpcError,
  toRestErrorBody
} from "@a2a-js/sdk/errors"
import {
  type A2ARequestHandler,
  type AgentExecutor,
  type ExecutionEventBus,
  type ServerCallContext,
  type TaskStore,
  RequestContext,
  STATE_HEADERS_KEY
} from "@a2a-js/sdk/server"
import { Action, Decision, type DecisionRecord, Governance, Identity } from "@gavel/core"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as http from "node:http"
import { ContinuationBus } from "./internal/a2a/continuation.js"
import {
  byRecord,
  cancelledEvent,
  decisionFacts,
  type Facts,
  invalidAction,
  type Rejection,
  rejection,
  rejectionFacts,
  resumeCode,
  statusEvent,
  taskEvent
} from "./internal/a2a/events.js"
import { OwnedBus, type Owner, ownerOf, owns, stamp } from "./internal/a2a/owner.js"
import type * as Jwt from "./Jwt.js"

// -----------------------------------------------------------------------------
// identity
// -----------------------------------------------------------------------------

/**
 * The caller of an A2A request could not be authenticated. `reason` becomes
 * the reason code of the rejected task (`identity.missing`,
 * `identity.invalid`, `identity.unavailable`); the message never contains
 * the credential.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()("Unauthenticated", {
  reason: Schema.Literal("missing", "invalid", "unavailable")
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `The caller could not be authenticated (${this.reason})`
  }
}

/**
 * How the wrapper learns who is calling: from the request context (the
 * SDK's `ServerCallContext`: its user, tenant and request headers). For a
 * task request ({@link guard}: get, list, cancel, resubscribe) the context
 * carries a message without parts; authenticate from `context.context`.
 *
 * @since 0.1.0
 * @category models
 */
export type Authenticate = (context: RequestContext) => Effect.Effect<Action.Principal, Unauthenticated>

/**
 * A request header, when it has exactly one value. Read from the headers
 * the SDK's default context builder keeps in the call context
 * (`ServerCallContext.state`, under `"headers"`); a custom context builder
 * that drops them leaves every header absent.
 *
 * @since 0.1.0
 * @category identity
 */
export const headerOf = (context: RequestContext, name: string): Option.Option<string> => {
  const headers = context.context.state.get(STATE_HEADERS_KEY)
  if (typeof headers !== "object" || headers === null) return Option.none()
  const value = (headers as Record<string, unknown>)[name.toLowerCase()]
  return typeof value === "string" ? Option.some(value) : Option.none()
}

/**
 * Authenticates the caller with the bearer token of the request's
 * `Authorization` header, verified by a `@gavel/adapters/Jwt` verifier. No
 * header is `missing`; anything else that does not verify (another scheme,
 * a forged, expired or malformed token) is `invalid`; a key set that cannot
 * be fetched is `unavailable`.
 *
 * @example
 * ```ts
 * import * as A2a from "@gavel/adapters/A2a"
 * import * as Jwt from "@gavel/adapters/Jwt"
 * import * as Effect from "effect/Effect"
 * import * as Redacted from "effect/Redacted"
 *
 * const authenticate = Effect.map(
 *   Jwt.make({
 *     key: { _tag: "Secret", secret: Redacted.make(process.env.JWT_SECRET!) },
 *     issuer: "https://id.example.com",
 *     audience: "payments-agent"
 *   }),
 *   A2a.bearer
 * )
 * ```
 *
 * @since 0.1.0
 * @category identity
 */
export const bearer = (verifier: Jwt.Verifier): Authenticate => (context) =>
  Option.match(headerOf(context, "authorization"), {
    onNone: () => Effect.fail(new Unauthenticated({ reason: "missing" })),
    onSome: (authorization) =>
      Effect.mapError(verifier.fromHeader(authorization), (error) =>
        new Unauthenticated({
          reason: error.reason === "missing"
            ? "missing"
            : error.reason === "keys_unavailable"
            ? "unavailable"
            : "invalid"
        }))
  })

// -----------------------------------------------------------------------------
// actions
// -----------------------------------------------------------------------------

/**
 * What an action is built from: the wrapped agent's id, the authenticated
 * caller and the SDK's request context.
 *
 * @since 0.1.0
 * @category models
 */
export interface ActionInput {
  readonly agentId: string
  readonly principal: Action.Principal
  readonly context: RequestContext
}

/**
 * The payload of a default action: the message's text parts (joined with
 * newlines), its data parts, and its file parts (by reference: media type,
 * file name, and the URL or the size of inline bytes).
 *
 * @since 0.1.0
 * @category models
 */
export interface Payload {
  readonly text: string
  readonly data: ReadonlyArray<unknown>
  readonly files: ReadonlyArray<{
    readonly mediaType: string
    readonly filename: string
    readonly url?: string
    readonly bytes?: number
  }>
}

const byteLength = (value: unknown): number =>
  typeof value === "object" && value !== null && typeof (value as { byteLength?: unknown }).byteLength === "number"
    ? (value as { byteLength: number }).byteLength
    : 0

/**
 * The default mapping from an incoming message to an action:
 *
 * - `actor`: the authenticated principal, as it is (its tenant is the
 *   tenant; a request naming another tenant was already rejected);
 * - `kind`: `"a2a.message"`; `name`: the agent id — what is governed is
 *   "this caller gives this agent this message";
 * - `payload`: the message's content ({@link Payload});
 * - `metadata`: `a2a.agent_id`, `a2a.task_id`, `a2a.context_id`, and when
 *   present `a2a.tenant` (the tenant the request named) and `a2a.skill` (a
 *   string `skill` in the message metadata — claimed by the caller, so a
 *   policy should treat it as a hint, not as a boundary);
 * - `requestId`: the message id; `correlationId`: the context id.
 *
 * The action is not checked here: `Governance.submit` checks it (under the
 * runtime's `actionLimits`), and a message that is not an action — data
 * nested too deep, too large — rejects the task with `a2a.action_invalid`.
 *
 * @since 0.1.0
 * @category actions
 */
export const defaultAction = (input: ActionInput): Action.Action => {
  const { context } = input
  const message = context.userMessage
  const text: Array<string> = []
  const data: Array<unknown> = []
  const files: Array<Payload["files"][number]> = []
  for (const part of message.parts) {
    const content = part.content
    if (content === undefined) continue
    switch (content.$case) {
      case "text":
        text.push(content.value)
        break
      case "data":
        data.push(content.value)
        break
      case "url":
        files.push({ mediaType: part.mediaType, filename: part.filename, url: content.value })
        break
      case "raw":
        files.push({ mediaType: part.mediaType, filename: part.filename, bytes: byteLength(content.value) })
        break
    }
  }
  const metadata: Record<string, string> = {
    "a2a.agent_id": input.agentId,
    "a2a.task_id": context.taskId,
    "a2a.context_id": context.contextId
  }
  const tenant = context.context.tenant
  if (tenant !== undefined && tenant !== "") metadata["a2a.tenant"] = tenant
  const skill: unknown = message.metadata?.["skill"]
  if (typeof skill === "string" && skill !== "") metadata["a2a.skill"] = skill
  const payload: Payload = { text: text.join("\n"), data, files }
  return Action.makeUnvalidated({
    actor: input.principal,
    kind: "a2a.message",
    name: input.agentId,
    payload,
    metadata,
    requestId: message.messageId,
    correlationId: context.contextId
  })
}

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The id of the wrapped agent: the name of the actions, unless `toAction` says otherwise. */
  readonly agentId: string
  /**
   * The task store given to the SDK's `DefaultRequestHandler`. The handler
   * stops recording a task's events once it is input-required, so the
   * wrapper records the continuation of a parked task itself.
   */
  readonly taskStore: TaskStore
  /** Who is calling. There is no default: without an identity, every task is rejected. */
  readonly authenticate: Authenticate
  /** Builds the action to evaluate. Default: {@link defaultAction}. A mapping that throws rejects the task. */
  readonly toAction?: ((input: ActionInput) => Action.Action) | undefined
  /** How long an evaluation may take before the task is rejected (`gavel.evaluation_timeout`). Default 10 seconds. */
  readonly evaluationTimeout?: Duration.DurationInput | undefined
}

// -----------------------------------------------------------------------------
// the wrapper
// -----------------------------------------------------------------------------

/** Whether a submitted action came back as it was (one too large to hash here counts as rewritten). */
const sameAction = (a: Action.Action, b: Action.Action): boolean => {
  if (a === b) return true
  try {
    return Action.hash(a) === Action.hash(b)
  } catch {
    return false
  }
}

/** The wrapped executor rejected: its own error goes back to the SDK untouched. */
class ExecutorFailed extends Data.TaggedError("ExecutorFailed")<{ readonly error: unknown }> {}

type Verdict =
  | { readonly _tag: "Run"; readonly submission: Governance.Submission }
  | { readonly _tag: "Reject"; readonly rejection: Rejection }
  | {
    readonly _tag: "Park"
    readonly action: Action.Action
    readonly approvalId: string
    readonly expiresAt: Date
    readonly record: DecisionRecord.DecisionRecord
  }

interface Parked {
  readonly contextId: string
  readonly facts: Facts
  readonly cancel: Deferred.Deferred<void>
  phase: "waiting" | "running" | "cancelled"
}

/**
 * One `execute` call: whether anything reached the bus (an interrupted call
 * that published nothing must say so), and who called, once authenticated
 * (the owner stamped into the task).
 */
interface Call {
  published: boolean
  owner?: Owner | undefined
}

/**
 * Wraps an `AgentExecutor` so that gavel decides on every incoming message
 * before it runs (see the module documentation for what each decision
 * does). The wrapper lives as long as the current scope: closing the scope
 * stops waiting for the approvals of parked tasks (the approvals themselves
 * stay open) and waits for executions that already started.
 *
 * @example
 * ```ts
 * import * as A2a from "@gavel/adapters/A2a"
 * import * as Jwt from "@gavel/adapters/Jwt"
 * import { DefaultRequestHandler, InMemoryTaskStore } from "@a2a-js/sdk/server"
 * import * as Effect from "effect/Effect"
 * import * as Redacted from "effect/Redacted"
 *
 * const program = Effect.gen(function*() {
 *   const verifier = yield* Jwt.make({
 *     key: { _tag: "Secret", secret: Redacted.make(process.env.JWT_SECRET!) },
 *     issuer: "https://id.example.com",
 *     audience: "payments-agent"
 *   })
 *   const taskStore = new InMemoryTaskStore()
 *   const executor = yield* A2a.wrap(new PaymentsAgent(), {
 *     agentId: "payments-agent",
 *     taskStore,
 *     authenticate: A2a.bearer(verifier)
 *   })
 *   // serve it guarded, so that each task is its owner's: see `A2a.guard`
 *   return new DefaultRequestHandler(agentCard, taskStore, executor)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const wrap = (
  executor: AgentExecutor,
  options: Options
): Effect.Effect<AgentExecutor, never, Governance.Governance | Scope.Scope> =>
  Effect.gen(function*() {
    const governance = yield* Governance.Governance
    const clock = yield* Effect.clock
    const now = (): number => clock.unsafeCurrentTimeMillis()
    const runFork = yield* FiberSet.makeRuntime<never, void, ExecutorFailed>()
    const evaluationTimeout = Duration.decode(options.evaluationTimeout ?? "10 seconds")
    const toAction = options.toAction ?? defaultAction
    const parked = new Map<string, Parked>()

    /** Answers a call that does not run the agent (yet): the task, then its status, stamped with one instant. */
    const answer = (
      context: RequestContext,
      bus: ExecutionEventBus,
      call: Call,
      state: TaskState,
      text: string,
      facts: Facts
    ) =>
      Effect.sync(() => {
        const at = now()
        const events = [stamp(taskEvent(context, at), call.owner), statusEvent(context, state, text, facts, at)]
        call.published = true
        for (const event of events) bus.publish(event)
      })

    const reject = (context: RequestContext, bus: ExecutionEventBus, call: Call, r: Rejection) =>
      answer(context, bus, call, TaskState.TASK_STATE_REJECTED, r.text, rejectionFacts(r))

    /** The wrapped executor, uninterruptibly: once started, it finishes even when the scope closes. */
    const runExecutor = (context: RequestContext, bus: ExecutionEventBus) =>
      Effect.uninterruptible(Effect.tryPromise({
        try: () => executor.execute(context, bus),
        catch: (error) => new ExecutorFailed({ error })
      }))

    /** Who, what, and what gavel says about it. Never fails: whatever goes wrong rejects. */
    const decide = (context: RequestContext, call: Call): Effect.Effect<Verdict> =>
      Effect.gen(function*() {
        const reject = (r: Rejection): Verdict => ({ _tag: "Reject", rejection: r })
        const principal = yield* Effect.either(options.authenticate(context))
        if (Either.isLeft(principal)) {
          return reject(rejection(`identity.${principal.left.reason}`, "The caller could not be authenticated"))
        }
        const tenant = context.context.tenant
        const own = principal.right.tenant
        if (tenant !== "" && Identity.otherTenant(own, tenant)) {
          return reject(rejection("identity.tenant_mismatch", "The request names a tenant the caller does not belong to"))
        }
        call.owner = ownerOf(principal.right)
        const action = yield* Effect.either(
          Effect.try(() => toAction({ agentId: options.agentId, principal: principal.right, context }))
        )
        if (Either.isLeft(action)) {
          return reject(invalidAction(action.left.error))
        }
        const submitted = yield* Effect.either(governance.submit(action.right).pipe(
          Effect.timeoutFail({ duration: evaluationTimeout, onTimeout: () => "timeout" as const })
        ))
        if (Either.isLeft(submitted)) {
          const error = submitted.left
          if (error === "timeout") {
            return reject(rejection("gavel.evaluation_timeout", "The governance decision took too long"))
          }
          if (error._tag === "TooManyPending") {
            // The caller (or its tenant) has the most approvals pending allowed: no approval was opened.
            const code = "approval.too_many_pending"
            return reject({
              codes: [code],
              text: `Too many approvals pending for this ${error.scope} (${code}), decision ${error.decisionId}`,
              decisionId: error.decisionId
            })
          }
          if (error._tag === "InvalidAction") return reject(invalidAction(error))
          return reject(rejection("gavel.evaluation_failed", "The governance decision could not be made"))
        }
        const submission = submitted.right
        // A policy may replace the action with a safer one; a message cannot be
        // rewritten from an action, so running the original would ignore it.
        if (!sameAction(submission.action, action.right)) {
          return reject({
            ...rejection("a2a.transform_unsupported", "A policy rewrote the request, which A2A cannot carry out"),
            record: submission.record
          })
        }
        const run: Verdict = { _tag: "Run", submission }
        switch (submission._tag) {
          case "Overridden":
            return run
          case "Pending":
            return {
              _tag: "Park" as const,
              action: submission.action,
              approvalId: submission.approvalId,
              expiresAt: submission.expiresAt,
              record: submission.record
            }
          case "Decided":
            return Decision.canProceed(submission.record.decision) ? run : reject(byRecord(submission.record))
        }
      }).pipe(
        Effect.withSpan("gavel.a2a.decide", {
          captureStackTrace: false,
          attributes: { "gavel.a2a.agent_id": options.agentId, "gavel.a2a.task_id": context.taskId }
        }),
        Effect.catchAllDefect(() =>
          Effect.succeed<Verdict>({
            _tag: "Reject",
            rejection: rejection("gavel.internal_error", "The request could not be governed")
          })
        )
      )

    /**
     * Publishes the input-required task, then keeps this call (and so the
     * task's event bus) alive until the approval is resolved: approved, the
     * wrapped executor runs on the same task; rejected or expired, the task
     * is rejected.
     */
    const park = (
      context: RequestContext,
      bus: ExecutionEventBus,
      call: Call,
      verdict: Extract<Verdict, { readonly _tag: "Park" }>
    ) =>
      Effect.gen(function*() {
        const { approvalId, record } = verdict
        const facts: Facts = {
          ...decisionFacts(record),
          approval_id: approvalId,
          approval_expires_at: verdict.expiresAt.toISOString(),
          approval_kind: record.decision._tag === "RequireAcknowledgment" ? "acknowledgment" : "approval"
        }
        const entry: Parked = { contextId: context.contextId, facts, cancel: yield* Deferred.make<void>(), phase: "waiting" }
        const text = `Approval required (${record.reasonCodes.join(", ")}): approval ${approvalId}, ` +
          `decision ${record.decisionId}, expires ${verdict.expiresAt.toISOString()}. ` +
          `The task continues by itself once approved.`
        parked.set(context.taskId, entry)
        yield* answer(context, bus, call, TaskState.TASK_STATE_INPUT_REQUIRED, text, facts)

        const continuation = new ContinuationBus(bus, context, options.taskStore, now)
        const work = () =>
          Effect.suspend(() => {
            entry.phase = "running"
            return Effect.ensuring(runExecutor(context, new OwnedBus(continuation, call.owner)), continuation.drain)
          })
        const outcome = yield* Effect.race(
          Effect.map(Effect.either(governance.resume(approvalId, verdict.action, work)), Option.some),
          Effect.as(Deferred.await(entry.cancel), Option.none())
        )
        // Cancelled by `cancelTask`, which published the cancellation itself.
        if (Option.isNone(outcome) || Either.isRight(outcome.value)) return

        const error = outcome.value.left
        const end = now()
        if (error._tag === "ExecutorFailed") {
          continuation.publish(
            statusEvent(context, TaskState.TASK_STATE_FAILED, "The agent failed", { reason_codes: ["a2a.agent_failed"] }, end)
          )
        } else {
          const code = resumeCode(error._tag)
          const revalidated = error._tag === "RevalidationFailed" ? decisionFacts(error.record) : {}
          continuation.publish(statusEvent(
            context,
            TaskState.TASK_STATE_REJECTED,
            `Not run: approval ${approvalId} ended without a usable grant (${code})`,
            { ...revalidated, approval_id: approvalId, reason_codes: [code] },
            end
          ))
        }
        yield* continuation.drain
      }).pipe(Effect.ensuring(Effect.sync(() => parked.delete(context.taskId))))

    /** A follow-up message on a task that waits for its approval: the task still waits. */
    const stillWaiting = (context: RequestContext, bus: ExecutionEventBus, call: Call, entry: Parked) =>
      answer(
        context,
        bus,
        call,
        TaskState.TASK_STATE_INPUT_REQUIRED,
        `Still awaiting approval ${String(entry.facts["approval_id"])}; the task continues by itself once approved.`,
        entry.facts
      )

    const handle = (context: RequestContext, bus: ExecutionEventBus, call: Call): Effect.Effect<void, ExecutorFailed> =>
      Effect.suspend(() => {
        const entry = parked.get(context.taskId)
        if (entry !== undefined && entry.phase === "waiting") return stillWaiting(context, bus, call, entry)
        return Effect.flatMap(decide(context, call), (verdict): Effect.Effect<void, ExecutorFailed> => {
          switch (verdict._tag) {
            case "Run":
              // Through the runtime, so that the trail records the execution and its outcome.
              return governance.run(verdict.submission, () =>
                Effect.zipRight(
                  Effect.sync(() => (call.published = true)),
                  runExecutor(context, new OwnedBus(bus, call.owner))
                )).pipe(
                  Effect.catchIf(
                    (error): error is Governance.EnforceError => error._tag !== "ExecutorFailed",
                    () =>
                      reject(
                        context,
                        bus,
                        call,
                        rejection("gavel.unavailable", "The governance trail could not be written")
                      )
                  )
                )
            case "Reject":
              return reject(context, bus, call, verdict.rejection)
            case "Park":
              return park(context, bus, call, verdict)
          }
        })
      })

    const execute = (context: RequestContext, bus: ExecutionEventBus): Promise<void> =>
      new Promise((resolve, reject) => {
        const call: Call = { published: false }
        runFork(handle(context, bus, call)).addObserver((exit) => {
          if (Exit.isSuccess(exit)) return resolve()
          const failure = Cause.failureOption(exit.cause)
          if (Option.isSome(failure)) return reject(failure.value.error)
          // Interrupted (the wrapper's scope closed): a parked task stays
          // input-required; a call that published nothing reports the shutdown.
          if (Cause.isInterruptedOnly(exit.cause) && call.published) return resolve()
          reject(new Error("gavel: the governed agent is shutting down"))
        })
      })

    const cancelTask = (taskId: string, bus: ExecutionEventBus): Promise<void> => {
      const entry = parked.get(taskId)
      if (entry === undefined || entry.phase !== "waiting") return executor.cancelTask(taskId, bus)
      entry.phase = "cancelled"
      parked.delete(taskId)
      const approvalId = String(entry.facts["approval_id"])
      bus.publish(cancelledEvent({ taskId, contextId: entry.contextId }, approvalId, now()))
      Deferred.unsafeDone(entry.cancel, Exit.void)
      // Withdraw the approval too: nobody should be asked to approve what no longer waits.
      return new Promise((resolve) => {
        runFork(Effect.ignore(governance.cancel(approvalId))).addObserver(() => resolve())
      })
    }

    return { execute, cancelTask }
  })

// -----------------------------------------------------------------------------
// the guard: tasks for their owner only
// -----------------------------------------------------------------------------

/**
 * The JSON-RPC error code of a task request whose caller could not be
 * authenticated (an implementation-defined server error: A2A defines no
 * code for it). The error's message names the reason (`missing`,
 * `invalid`, `unavailable`), never the credential.
 *
 * @since 0.2.0
 * @category guard
 */
export const UNAUTHENTICATED_CODE = -32099

/**
 * The transport a guarded handler is served on, which decides the shape of
 * its refusals: `"jsonrpc"` (the SDK's `jsonRpcHandler`) or `"rest"` (its
 * HTTP+JSON `restHandler`).
 *
 * @since 0.2.0
 * @category guard
 */
export type Transport = "jsonrpc" | "rest"

/**
 * The refusal of an anonymous task request, as the SDK's transports answer
 * it: JSON-RPC reads `envelopeCode`, REST reads `statusCode` (each only from
 * an error of its own `transport`).
 */
class CallerUnauthenticated extends A2AError {
  override readonly reason = "UNAUTHENTICATED"
  readonly envelopeCode = UNAUTHENTICATED_CODE
  readonly statusCode = 401
  constructor(reason: Unauthenticated["reason"], readonly transport: Transport) {
    super({ message: `The caller could not be authenticated (${reason})` })
    this.name = "Unauthenticated"
  }
}

/**
 * How deep the JSON of a request may nest before the SDK's converters walk
 * it (they recurse, and overflow the stack a few thousand levels down): the
 * most `actionLimits.maxDepth` allows, so that this bound keeps the stack
 * safe and the runtime's own limits still decide what is an action.
 */
const MAX_DEPTH = 1_000

/**
 * Refuses parsed input nested deeper than {@link MAX_DEPTH} (or over other
 * `limits`), before anything recursive walks it, with the path and the
 * reason: JSON-RPC `-32602`, REST 400.
 */
const checkLimits = (value: unknown, path: string, limits: Partial<Action.Limits> = { maxDepth: MAX_DEPTH }): void => {
  const checked = Action.validateJson(value, { path, limits })
  if (Either.isLeft(checked)) throw new RequestMalformedError(checked.left.message)
}

/** The same answer as for a task that does not exist: ids cannot be probed. */
const notFound = (taskId: string): A2AError => new TaskNotFoundError(`Task not found: ${taskId}`)

/**
 * @since 0.2.0
 * @category guard
 */
export interface GuardOptions {
  /** Who is calling: the same function given to {@link wrap} (the guard accepts `wrap`'s options as they are). */
  readonly authenticate: Authenticate
  /**
   * The transport the guarded handler is served on (`jsonRpcHandler` or
   * `restHandler`): an unauthenticated caller is refused with JSON-RPC code
   * {@link UNAUTHENTICATED_CODE}, or with HTTP 401 on REST. Default
   * `"jsonrpc"`; a host serving both guards one handler for each.
   *
   * @since 0.2.0
   */
  readonly transport?: Transport | undefined
}

/** The request context `authenticate` gets for a task request: the call's context, and a message without parts. */
const taskRequestContext = (context: ServerCallContext, taskId: string): RequestContext =>
  new RequestContext(
    {
      tenant: context.tenant ?? "",
      message: {
        messageId: "",
        contextId: "",
        taskId,
        role: Role.ROLE_USER,
        parts: [],
        metadata: undefined,
        extensions: [],
        referenceTaskIds: []
      },
      configuration: undefined,
      metadata: undefined
    },
    taskId,
    "",
    context
  )

const PAGE_SIZE_DEFAULT = 50
const PAGE_SIZE_MAX = 100

const pageTokenOf = (offset: number): string => `gavel.${offset}`
const offsetOf = (token: string): number | undefined => {
  if (token === "") return 0
  const match = /^gavel\.(\d{1,9})$/.exec(token)
  return match === null ? undefined : Number(match[1])
}

/**
 * Puts the owner rule in front of an A2A request handler (the SDK's
 * `DefaultRequestHandler` serving a {@link wrap}ped executor): every request
 * that reads or changes an existing task — `tasks/get`, `tasks/list`,
 * `tasks/cancel`, `tasks/resubscribe`, the push-notification configs, and a
 * message that continues or references a task — is authenticated with
 * `authenticate` and allowed only to the task's owner, the principal whose
 * message created it.
 *
 * - No or an invalid credential: a JSON-RPC error with code
 *   {@link UNAUTHENTICATED_CODE} (REST, with `transport: "rest"`: HTTP
 *   401); nothing is read or changed.
 * - Another caller's task: the SDK's task-not-found error (-32001; REST
 *   404), the same as for an id that does not exist; nothing is read or
 *   changed (a cancel withdraws no approval).
 * - Parameters nested deeper than 1,000 levels: `-32602` (REST 400) with
 *   the path, before anything else. The SDK's converters overflow on
 *   deeper bodies before the guard sees them: mount {@link limitBody} in
 *   front of the transport.
 * - `tasks/list` answers only the caller's tasks (`totalSize` counts
 *   them; its page tokens are the guard's own).
 *
 * The owner is recorded by `wrap` in the task's metadata (`owner`: `{ id,
 * tenant }`), so it lives as long as the task store keeps the task. A task
 * created without an authenticated caller (rejected with
 * `identity.missing`) belongs to nobody; nor does a task stored before
 * owners were recorded.
 *
 * Messages that start a new task pass through: the wrapped executor
 * authenticates them and rejects an anonymous one.
 *
 * @example
 * ```ts
 * import * as A2a from "@gavel/adapters/A2a"
 * import { DefaultRequestHandler, InMemoryTaskStore } from "@a2a-js/sdk/server"
 * import { jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express"
 * import * as Effect from "effect/Effect"
 *
 * const serve = (authenticate: A2a.Authenticate) =>
 *   Effect.gen(function*() {
 *     const taskStore = new InMemoryTaskStore()
 *     const options = { agentId: "payments-agent", taskStore, authenticate }
 *     const executor = yield* A2a.wrap(new PaymentsAgent(), options)
 *     const requestHandler = A2a.guard(new DefaultRequestHandler(agentCard, taskStore, executor), options)
 *     return jsonRpcHandler({ requestHandler, userBuilder: UserBuilder.noAuthentication })
 *   })
 * ```
 *
 * @since 0.2.0
 * @category guard
 */
export const guard = (handler: A2ARequestHandler, options: GuardOptions): A2ARequestHandler => {
  const transport = options.transport ?? "jsonrpc"
  /** The caller, or the refusal (thrown, as the SDK's transports expect). */
  const principalOf = async (context: ServerCallContext, taskId: string): Promise<Action.Principal> => {
    const exit = await Effect.runPromiseExit(
      Effect.suspend(() => options.authenticate(taskRequestContext(context, taskId)))
    )
    if (Exit.isSuccess(exit)) return exit.value
    const failure = Cause.failureOption(exit.cause)
    throw new CallerUnauthenticated(Option.isSome(failure) ? failure.value.reason : "invalid", transport)
  }

  /** The task, when `principal` owns it; not found otherwise. */
  const owned = async (principal: Action.Principal, context: ServerCallContext, tenant: string, taskId: string) => {
    const task = await handler.getTask({ tenant, id: taskId, historyLength: undefined }, context).catch(
      (error: unknown) => {
        throw error instanceof TaskNotFoundError ? notFound(taskId) : error
      }
    )
    if (!owns(task, principal)) throw notFound(taskId)
    return task
  }

  const check = async (context: ServerCallContext, tenant: string, taskId: string): Promise<void> => {
    await owned(await principalOf(context, taskId), context, tenant, taskId)
  }

  /** A request about one task's push-notification configs, served once the caller is shown to own the task. */
  const byTask = <P extends { readonly tenant: string; readonly taskId: string }, A>(
    serve: (params: P, context: ServerCallContext) => Promise<A>
  ) =>
  async (params: P, context: ServerCallContext): Promise<A> => {
    checkLimits(params, "params")
    await check(context, params.tenant, params.taskId)
    return serve(params, context)
  }

  /** A message continuing or referencing tasks: the caller must own each of them. */
  const checkMessage = async (params: SendMessageRequest, context: ServerCallContext): Promise<void> => {
    checkLimits(params, "params")
    const message = params.message
    const ids = [message?.taskId ?? "", ...(message?.referenceTaskIds ?? [])].filter((id) => id !== "")
    if (ids.length === 0) return
    const principal = await principalOf(context, ids[0]!)
    for (const id of ids) await owned(principal, context, params.tenant, id)
  }

  const listTasks = async (params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> => {
    checkLimits(params, "params")
    const principal = await principalOf(context, "")
    const pageSize = params.pageSize ?? PAGE_SIZE_DEFAULT
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > PAGE_SIZE_MAX) {
      throw new RequestMalformedError(`pageSize must be between 1 and ${PAGE_SIZE_MAX}`)
    }
    const offset = offsetOf(params.pageToken)
    if (offset === undefined) throw new RequestMalformedError("pageToken is not one this server gave")
    // The store pages over every task it holds for this call; the caller's
    // pages are cut from its own tasks only, so that sizes and tokens say
    // nothing about anyone else's.
    const mine: Array<Task> = []
    const seen = new Set<string>()
    let token = ""
    do {
      seen.add(token)
      const page = await handler.listTasks({ ...params, pageSize: PAGE_SIZE_MAX, pageToken: token }, context)
      for (const task of page.tasks) if (owns(task, principal)) mine.push(task)
      token = page.nextPageToken
    } while (token !== "" && !seen.has(token))
    const tasks = mine.slice(offset, offset + pageSize)
    const next = offset + tasks.length
    return {
      tasks,
      nextPageToken: next < mine.length ? pageTokenOf(next) : "",
      pageSize,
      totalSize: mine.length
    }
  }

  return {
    getAgentCard: () => handler.getAgentCard(),
    getAuthenticatedExtendedAgentCard: (params, context) => handler.getAuthenticatedExtendedAgentCard(params, context),
    sendMessage: async (params, context) => {
      await checkMessage(params, context)
      return handler.sendMessage(params, context)
    },
    sendMessageStream: async function*(params, context) {
      await checkMessage(params, context)
      yield* handler.sendMessageStream(params, context)
    },
    getTask: async (params, context) => {
      checkLimits(params, "params")
      const principal = await principalOf(context, params.id)
      // Read through the handler (its history-length rules), then checked.
      await owned(principal, context, params.tenant, params.id)
      return handler.getTask(params, context)
    },
    listTasks,
    cancelTask: async (params, context) => {
      checkLimits(params, "params")
      await check(context, params.tenant, params.id)
      return handler.cancelTask(params, context)
    },
    resubscribe: async function*(params, context) {
      checkLimits(params, "params")
      await check(context, params.tenant, params.id)
      yield* handler.resubscribe(params, context)
    },
    createTaskPushNotificationConfig: byTask((params, context) =>
      handler.createTaskPushNotificationConfig(params, context)
    ),
    getTaskPushNotificationConfig: byTask((params, context) => handler.getTaskPushNotificationConfig(params, context)),
    listTaskPushNotificationConfigs: byTask((params, context) =>
      handler.listTaskPushNotificationConfigs(params, context)
    ),
    deleteTaskPushNotificationConfig: byTask((params, context) =>
      handler.deleteTaskPushNotificationConfig(params, context)
    )
  }
}

// -----------------------------------------------------------------------------
// the body: bounded before the SDK reads it
// -----------------------------------------------------------------------------

/**
 * @since 0.2.0
 * @category limits
 */
export interface BodyLimitOptions {
  /** The transport mounted behind: refusals take its shape. */
  readonly transport: Transport
  /** The largest body accepted, in bytes. Default 102,400 (100 KiB, the SDK's own `express.json()` limit). */
  readonly maxBytes?: number | undefined
  /**
   * Depth, values and text of the parsed body (`Action.Limits`). Default:
   * depth 1,000 (the most `actionLimits.maxDepth` allows, and within what
   * the SDK walks safely), `Action.defaultLimits` for the others.
   */
  readonly limits?: Partial<Action.Limits> | undefined
}

/**
 * A Node (connect, Express) middleware: `(request, response, next)`. A
 * request it passes on carries its parsed JSON as `request.body`.
 *
 * @since 0.2.0
 * @category limits
 */
export type Middleware = (
  request: http.IncomingMessage & { body?: unknown },
  response: http.ServerResponse,
  next: (error?: unknown) => void
) => void

const JSON_TYPES: ReadonlySet<string> = new Set(["application/json", "application/a2a+json"])
const PAYLOAD_TOO_LARGE = 413
const BAD_REQUEST = 400
const PARSE_ERROR = -32700
const INVALID_PARAMS = -32602

/**
 * Reads and checks a JSON body before the SDK's `jsonRpcHandler` or
 * `restHandler` does: the SDK's converters walk a message recursively, so a
 * body nested a few thousand levels deep overflows the stack in them (a
 * JSON-RPC internal error, before the guard or the wrapper see it), and a
 * body over its size limit answers Express's HTML error page. Mounted in front,
 * the body is refused first, in the transport's own error shape and with no
 * effect:
 *
 * - larger than `maxBytes`: JSON-RPC `-32602` / REST 413;
 * - not JSON: JSON-RPC `-32700` / REST 400;
 * - over `limits` (`Action.validateJson`: too deep, too many values, too
 *   much text): JSON-RPC `-32602` / REST 400, naming the path and the reason.
 *
 * JSON-RPC errors are answered with HTTP 200, as the SDK answers its own.
 * A body that passes becomes `request.body`, which the SDK's parser then
 * leaves as it is. Requests without a JSON content type pass untouched; a
 * body is read as UTF-8, without a content encoding (a compressed body is
 * refused as not JSON).
 *
 * @example
 * ```ts
 * import * as A2a from "@gavel/adapters/A2a"
 * import { type A2ARequestHandler } from "@a2a-js/sdk/server"
 * import { jsonRpcHandler, restHandler, UserBuilder } from "@a2a-js/sdk/server/express"
 * import express from "express"
 *
 * const mount = (app: express.Express, jsonRpc: A2ARequestHandler, rest: A2ARequestHandler) => {
 *   const userBuilder = UserBuilder.noAuthentication
 *   app.use("/a2a/jsonrpc", A2a.limitBody({ transport: "jsonrpc" }), jsonRpcHandler({ requestHandler: jsonRpc, userBuilder }))
 *   app.use("/a2a/rest", A2a.limitBody({ transport: "rest" }), restHandler({ requestHandler: rest, userBuilder }))
 * }
 * ```
 *
 * @since 0.2.0
 * @category limits
 */
export const limitBody = (options: BodyLimitOptions): Middleware => {
  const maxBytes = options.maxBytes ?? 100 * 1024
  const limits = { maxDepth: MAX_DEPTH, ...options.limits }
  return (request, response, next) => {
    const type = (request.headers["content-type"] ?? "").split(";", 1)[0]!.trim().toLowerCase()
    if (!JSON_TYPES.has(type)) return next()
    let settled = false
    const refuse = (status: number, message: string, code = INVALID_PARAMS, id: string | number | null = null) => {
      settled = true
      // What is still coming is read and dropped, so that the answer reaches the client.
      request.resume()
      const rest = options.transport === "rest"
      response.statusCode = rest ? status : 200
      response.setHeader("content-type", rest ? "application/a2a+json" : "application/json")
      response.end(JSON.stringify(
        rest
          ? toRestErrorBody(new RestRequestMalformedError({ message, statusCode: status }), status)
          : { jsonrpc: "2.0", id, error: toJsonRpcError(new JsonRpcRequestMalformedError({ message, envelopeCode: code })) }
      ))
    }
    const tooLarge = () => refuse(PAYLOAD_TOO_LARGE, `The request body is larger than ${maxBytes} bytes`)
    if (Number(request.headers["content-length"] ?? 0) > maxBytes) return tooLarge()
    const chunks: Array<Buffer> = []
    let size = 0
    request.on("data", (chunk: Buffer) => {
      if (settled) return
      size += chunk.length
      if (size > maxBytes) return tooLarge()
      chunks.push(chunk)
    })
    request.on("error", (error) => {
      if (settled) return
      settled = true
      next(error)
    })
    request.on("end", () => {
      if (settled) return
      settled = true
      if (size === 0) return next()
      let body: unknown
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
      } catch {
        return refuse(BAD_REQUEST, "Invalid JSON payload.", PARSE_ERROR)
      }
      const checked = Action.validateJson(body, { path: "body", limits })
      if (Either.isLeft(checked)) return refuse(BAD_REQUEST, checked.left.message, INVALID_PARAMS, rpcId(body))
      request.body = body
      next()
    })
  }
}

/** The id of a JSON-RPC request, when it has a valid one. */
const rpcId = (body: unknown): string | number | null => {
  const id: unknown = typeof body === "object" && body !== null ? (body as { readonly id?: unknown }).id : null
  return typeof id === "string" || Number.isSafeInteger(id) ? id as string | number : null
}
