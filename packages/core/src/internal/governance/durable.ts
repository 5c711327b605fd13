/**
 * Durable approvals (see `Durable.ts`): submitting work to a named handler
 * with its continuation persisted beside the approval, and the worker that
 * claims approved continuations, revalidates, runs and completes them under
 * the claim's fence.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Action from "../../Action.js"
import * as Approval from "../../Approval.js"
import * as ContinuationStore from "../../ContinuationStore.js"
import * as Decision from "../../Decision.js"
import type * as DecisionRecord from "../../DecisionRecord.js"
import * as Durable from "../../Durable.js"
import type * as Encryption from "../../Encryption.js"
import * as entries from "../auditEntries.js"
import type { TooManyTransforms } from "../../Governance.js"
import type { GovernanceContext } from "./context.js"

/**
 * What the durable part needs of one runtime: its context, and the steps
 * `Governance.make` builds.
 *
 * @internal
 */
export interface Runtime {
  readonly ctx: GovernanceContext
  readonly decide: (action: Action.Action) => Effect.Effect<
    { readonly action: Action.Action; readonly record: DecisionRecord.DecisionRecord },
    Action.InvalidAction | TooManyTransforms | Approval.StoreError
  >
  readonly overrideFor: (
    action: Action.Action,
    decision: Decision.Decision
  ) => Effect.Effect<Option.Option<{ readonly id: string }>, Approval.StoreError>
  readonly isBlocked: (decision: Decision.Decision) => boolean
  readonly keepIfBlocked: (record: DecisionRecord.DecisionRecord) => Effect.Effect<unknown, Approval.StoreError>
  readonly open: <E>(
    action: Action.Action,
    record: DecisionRecord.DecisionRecord,
    attach: (request: Approval.ApprovalRequest) => Effect.Effect<void, E>
  ) => Effect.Effect<Approval.ApprovalRequest, E | Approval.TooManyPending | Approval.StoreError | Action.InvalidAction>
  readonly stillSatisfied: (request: Approval.ApprovalRequest, decision: Decision.Decision) => boolean
  readonly onResolved: (listener: (request: Approval.ApprovalRequest) => void) => () => void
}

/**
 * The worker's settings.
 *
 * @internal
 */
export interface Settings {
  readonly handlers: ReadonlyArray<Durable.AnyHandler>
  readonly owner: string
  readonly pollInterval: Duration.Duration
  readonly batch: number
  readonly concurrency: number
  /** `manual`: no background worker; only `runOnce` claims (`Durable.Options.worker`). */
  readonly worker: "background" | "manual"
}

const keyOf = (name: string, version: number) => `${name}@${version}`

/** What a continuation seals: the action and the encoded input. */
const Payload = Schema.parseJson(Schema.Struct({ action: Action.Action, input: Schema.Unknown }))
const encodePayload = Schema.encode(Payload)
const decodePayload = Schema.decode(Payload)

/** The associated data a continuation is sealed with: it opens only for its approval and action. */
const associatedData = (approvalId: string, actionHash: string) => `gavel.continuation:${approvalId}:${actionHash}`

/** The failure's tag, else how it failed (`failure`, `defect`, `interrupted`); never its message. */
const failureTag = (cause: Cause.Cause<unknown>): string => {
  const { failure, tag } = entries.failureOf(cause)
  return tag ?? failure
}

/**
 * The outcome of a continuation, its approval's status standing in for a
 * `waiting` one whose approval ended.
 *
 * @internal
 */
export const outcomeOf = (
  continuation: ContinuationStore.Continuation,
  approval: Pick<Approval.ApprovalRequest, "status"> | undefined
): Durable.Outcome => {
  const approvalId = continuation.approvalId
  const status = approval?.status
  // A waiting continuation whose approval ended ends with it (its step may not have closed it yet).
  const state = continuation.state === "waiting" && (status === "rejected" || status === "expired" || status === "cancelled")
    ? status
    : continuation.state
  switch (state) {
    case "waiting":
      return { _tag: "Waiting", approvalId }
    case "started":
      return { _tag: "Running", approvalId, attempts: continuation.attempts }
    case "succeeded":
      return { _tag: "Succeeded", approvalId, result: continuation.result }
    case "failed":
      return { _tag: "Failed", approvalId, error: continuation.error ?? "failure" }
    case "in_doubt":
      return { _tag: "InDoubt", approvalId, reason: continuation.error ?? "lease_expired" }
    case "rejected":
      return { _tag: "Rejected", approvalId }
    case "expired":
      return { _tag: "Expired", approvalId }
    case "cancelled":
      return { _tag: "Cancelled", approvalId }
  }
}

/**
 * The durable service of `runtime`, its worker running for as long as the
 * scope lasts.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(
  runtime: Runtime,
  continuations: ContinuationStore.Service,
  encryption: Encryption.Service,
  settings: Settings
) {
  const { ctx } = runtime
  const { hashOf, ids, now, store } = ctx
  const registry = new Map<string, Durable.AnyHandler>()
  for (const h of settings.handlers) registry.set(keyOf(h.name, h.version), h)
  // What the handlers need, captured when the layer was built.
  const context = yield* Effect.context<never>()
  const provided = <A, E>(effect: Effect.Effect<A, E, unknown>): Effect.Effect<A, E> =>
    Effect.provide(effect as Effect.Effect<A, E>, context)

  /** The handler registered under `h`'s name and version (the one the worker runs). */
  const registered = (h: Durable.AnyHandler) => {
    const found = registry.get(keyOf(h.name, h.version))
    return found !== undefined
      ? Effect.succeed(found)
      : Effect.fail(
        new Durable.InvalidSubmission({
          handler: h.name,
          reason: "unregistered_handler",
          detail: `version ${h.version} is not registered with this worker (Durable.layer's handlers)`
        })
      )
  }

  /** An outcome of a continuation just found: its absence is a bug. */
  const found = <A, E>(effect: Effect.Effect<A, E | ContinuationStore.ContinuationNotFound>): Effect.Effect<A, Exclude<E, ContinuationStore.ContinuationNotFound>> =>
    Effect.catchIf(
      effect,
      (error): error is ContinuationStore.ContinuationNotFound => error instanceof ContinuationStore.ContinuationNotFound,
      (error) => Effect.die(error)
    ) as Effect.Effect<A, Exclude<E, ContinuationStore.ContinuationNotFound>>

  const outcome = (approvalId: string) =>
    Effect.flatMap(continuations.get(approvalId), (c) =>
      c.state === "waiting"
        ? Effect.map(Effect.option(store.get(approvalId)), (a) => outcomeOf(c, Option.getOrUndefined(a)))
        : Effect.succeed(outcomeOf(c, undefined)))

  /** Runs a handler at once (the action proceeded): through `execute`, audited as any work. */
  const runNow = (
    h: Durable.AnyHandler,
    action: Action.Action,
    input: unknown,
    record: DecisionRecord.DecisionRecord,
    overrideId: string | null,
    idempotencyKey: string
  ): Effect.Effect<Durable.Outcome, Approval.StoreError> =>
    ctx.execute(
      { record, approvalId: null, overrideId },
      action,
      (a) =>
        Effect.flatMap(
          provided(h.run(a, input, { idempotencyKey, attempt: 1, fence: 0, approvalId: null })),
          (result) => Effect.orDie(Schema.encode(h.success)(result))
        )
    ).pipe(
      Effect.exit,
      Effect.flatMap((exit): Effect.Effect<Durable.Outcome, Approval.StoreError> => {
        if (Exit.isSuccess(exit)) return Effect.succeed({ _tag: "Succeeded", approvalId: null, result: exit.value })
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure) && (failure.value as { _tag?: unknown })._tag === "StoreError") {
          return Effect.fail(failure.value as Approval.StoreError)
        }
        return Effect.succeed({ _tag: "Failed", approvalId: null, error: failureTag(exit.cause) })
      })
    )

  const submit = <I, A, E, R>(
    action: Action.Action,
    handler: Durable.Handler<I, A, E, R>,
    input: I,
    options?: { readonly idempotencyKey?: string | undefined }
  ) =>
    Effect.gen(function*() {
      const h = yield* registered(handler)
      const idempotencyKey = options?.idempotencyKey ?? ids.next("key")
      const existing = yield* continuations.findByKey(idempotencyKey)
      if (Option.isSome(existing)) {
        return {
          _tag: "Existing",
          approvalId: existing.value.approvalId,
          outcome: yield* found(outcome(existing.value.approvalId))
        } as const satisfies Durable.Submission
      }
      const encodedInput = yield* Effect.mapError(
        Schema.encode(h.input)(input),
        (error) => new Durable.InvalidSubmission({ handler: h.name, reason: "invalid_input", detail: error.message })
      )
      const { action: final, record } = yield* runtime.decide(action)
      if (Decision.canProceed(record.decision)) {
        return { _tag: "Completed", outcome: yield* runNow(h, final, input, record, null, idempotencyKey), record } as const
      }
      const override = yield* runtime.overrideFor(final, record.decision)
      if (Option.isSome(override)) {
        const outcome = yield* runNow(h, final, input, record, override.value.id, idempotencyKey)
        return { _tag: "Completed", outcome, record } as const
      }
      if (runtime.isBlocked(record.decision)) {
        yield* runtime.keepIfBlocked(record)
        return { _tag: "Blocked", record } as const
      }
      const payload = yield* Effect.orDie(encodePayload({ action: final, input: encodedInput }))
      const request = yield* runtime.open(final, record, (request) =>
        Effect.flatMap(
          Effect.mapError(
            encryption.seal(payload, associatedData(request.id, request.actionHash)),
            (error) => new Approval.StoreError({ operation: "seal continuation", detail: error.message })
          ),
          (sealed) =>
            continuations.create({
              approvalId: request.id,
              handler: h.name,
              handlerVersion: h.version,
              delivery: h.delivery,
              maxAttempts: h.maxAttempts,
              leaseMillis: Math.max(1, Math.round(Duration.toMillis(h.lease))),
              idempotencyKey,
              sealed,
              state: "waiting",
              owner: null,
              leaseUntil: null,
              fence: 0,
              attempts: 0,
              createdAt: request.createdAt,
              updatedAt: request.createdAt,
              result: null,
              error: null
            })
        ))
      return {
        _tag: "Pending",
        approvalId: request.id,
        expiresAt: request.requirement.expiresAt,
        record
      } as const
    }).pipe(
      // A concurrent submission with the same key won: answer with it.
      Effect.catchTag("DuplicateKey", (error) =>
        Effect.map(found(outcome(error.approvalId)), (o) => ({
          _tag: "Existing" as const,
          approvalId: error.approvalId,
          outcome: o
        })))
    )

  // ---------------------------------------------------------------------------
  // the worker
  // ---------------------------------------------------------------------------

  /**
   * Ends a claimed continuation — with `audit`'s events in one unit, when
   * given; a claim taken over meanwhile is logged, not thrown.
   */
  const end = (
    claimed: ContinuationStore.Continuation,
    ending: ContinuationStore.Ending,
    audit?: (at: Date) => ReadonlyArray<entries.Identified>
  ) =>
    Effect.flatMap(now, (at) => {
      const complete = continuations.complete(claimed.approvalId, claimed.fence, ending, at)
      return audit === undefined
        ? complete
        : ctx.step(continuations.atomically(complete), () => audit(at), () => Effect.void)
    }).pipe(
      Effect.asVoid,
      Effect.catchTags({
        FenceLost: (lost) => Effect.logWarning("gavel: a durable work's claim was taken over; its ending is not written", lost),
        ContinuationNotFound: (missing) => Effect.logWarning("gavel: a claimed continuation is gone", missing)
      })
    )

  /** A started continuation whose claim lapsed: in doubt (at most once), or again (at least once). */
  const lapsed = (claimed: ContinuationStore.Continuation, approval: Approval.ApprovalRequest) => {
    if (claimed.delivery === "atLeastOnce" && claimed.attempts < claimed.maxAttempts) return run(claimed, approval, true)
    // The last attempt may have run too: in doubt, whatever the delivery.
    const reason = claimed.delivery === "atMostOnce" ? "lease_expired" : "attempts_exhausted"
    // In doubt and its `execution.in_doubt` event in one unit: a crash
    // between the two would leave it in doubt with nothing in the trail.
    return end(claimed, { state: "in_doubt", error: reason }, (at) => [
      entries.inDoubt(approval, at, { handler: claimed.handler, attempts: claimed.attempts, reason })
    ])
  }

  /**
   * Opens, revalidates (hash, approval, policies), starts in one unit with
   * the consume (unless it was consumed by an earlier attempt), runs and
   * completes a claimed continuation.
   */
  const run = (
    claimed: ContinuationStore.Continuation,
    approval: Approval.ApprovalRequest,
    again: boolean
  ): Effect.Effect<void, Approval.StoreError> =>
    Effect.gen(function*() {
      const h = registry.get(keyOf(claimed.handler, claimed.handlerVersion))
      if (h === undefined) {
        // Another instance may have it (a rolling deploy): its claim lapses and it is taken there.
        return yield* Effect.logWarning(
          `gavel: no handler ${claimed.handler} version ${claimed.handlerVersion} here; the claim will lapse`
        )
      }
      if (claimed.sealed === null) return yield* end(claimed, { state: "failed", error: "no_payload" })
      const opened = yield* Effect.either(
        encryption.open(claimed.sealed, associatedData(approval.id, approval.actionHash))
      )
      if (opened._tag === "Left") return yield* end(claimed, { state: "failed", error: "undecryptable" })
      const payload = yield* Effect.either(decodePayload(opened.right))
      if (payload._tag === "Left") return yield* end(claimed, { state: "failed", error: "undecodable" })
      const input = yield* Effect.either(Schema.decodeUnknown(h.input)(payload.right.input))
      if (input._tag === "Left") return yield* end(claimed, { state: "failed", error: "invalid_input" })
      const action = payload.right.action
      const actionHash = yield* Effect.either(hashOf(action))
      if (actionHash._tag === "Left" || actionHash.right !== approval.actionHash) {
        return yield* end(claimed, { state: "failed", error: "action_mismatch" })
      }
      // Revalidate as `resume` does: the policies as they are now.
      const { decision, record } = yield* ctx.evaluateWritten(action, { resuming: true }).pipe(
        Effect.catchTag("InvalidAction", () => Effect.die("a hashed action is valid"))
      )
      if (!again && !runtime.stillSatisfied(approval, decision)) {
        return yield* end(claimed, { state: "failed", error: "revalidation_failed" })
      }
      const of: entries.Execution = { record, approvalId: approval.id, overrideId: null, runId: null }
      const at = yield* now
      // Started in one unit with the consume (the continuation first: the
      // memory store's unit undoes it when the consume is refused).
      const started = yield* ctx.step(
        continuations.atomically(
          again
            ? Effect.map(continuations.start(claimed.approvalId, claimed.fence, at), (c) => [c, approval] as const)
            : Effect.zip(
              continuations.start(claimed.approvalId, claimed.fence, at),
              store.consume(approval.id, approval.actionHash, at)
            )
        ),
        ([c, consumed]) =>
          again
            ? [{ ...entries.started(of, at), eventId: `execution.started:${approval.id}:${c.attempts}` }]
            : [entries.approval("approval.consumed", consumed, at, null), entries.started(of, at)],
        () => Effect.void
      ).pipe(Effect.either)
      if (started._tag === "Left") {
        const error = started.left
        if (error._tag === "StoreError") return yield* error
        if (error._tag === "FenceLost" || error._tag === "ContinuationNotFound") return
        // The approval cannot be consumed (used by a `resume`, another action): the work never runs.
        return yield* end(claimed, { state: "failed", error: error._tag })
      }
      const [c] = started.right
      const exit = yield* Effect.exit(
        provided(
          h.run(action, input.right, {
            idempotencyKey: c.idempotencyKey,
            attempt: c.attempts,
            fence: c.fence,
            approvalId: c.approvalId
          })
        ).pipe(Effect.flatMap((result) => Schema.encode(h.success)(result)))
      )
      // The ending and its `execution.*` event in one unit: the trail never
      // says a work ended that the store still has running.
      yield* end(
        c,
        Exit.isSuccess(exit) ? { state: "succeeded", result: exit.value } : { state: "failed", error: failureTag(exit.cause) },
        (at) => [entries.ended(of, at, exit)]
      )
    })

  /** Runs a claimed continuation as its state says; a failure is logged and its claim left to lapse. */
  const process = (c: ContinuationStore.Continuation) =>
    Effect.flatMap(store.get(c.approvalId), (approval) =>
      c.state === "started" ? lapsed(c, approval) : run(c, approval, false)).pipe(
        Effect.catchAll((error) => Effect.logWarning("gavel: running durable work failed; its claim will lapse", error))
      )

  const claimNow = (limit: number) =>
    Effect.flatMap(now, (at) => continuations.claim({ owner: settings.owner, now: at, limit }))

  /** Claims what is ready and runs it, awaiting every run; answers how many were claimed. */
  const runOnce = Effect.flatMap(
    claimNow(settings.batch),
    (claimed) => Effect.as(Effect.forEach(claimed, process, { concurrency: settings.concurrency, discard: true }), claimed.length)
  )
  const resolveInDoubt = (approvalId: string, resolution: Durable.Resolution) =>
    Effect.gen(function*() {
      const at = yield* now
      const ending = resolution.state === "succeeded"
        ? { state: "succeeded" as const, result: null }
        : { state: "failed" as const, error: "resolved_failed" }
      const approval = yield* store.get(approvalId).pipe(
        Effect.catchTag("ApprovalNotFound", () => new ContinuationStore.ContinuationNotFound({ approvalId }))
      )
      // The resolution and its `execution.resolved` event in one unit.
      const resolved = yield* ctx.step(
        continuations.atomically(continuations.resolve(approvalId, ending, at)),
        () => [Durable.resolutionEntry(approval, { state: resolution.state, by: resolution.by.id, note: resolution.note }, at)],
        () => Effect.void
      )
      return outcomeOf(resolved, approval)
    })

  // The worker: woken at once by an approval this process resolves (or a
  // run that ended, freeing a slot), else every poll. Each claimed
  // continuation runs in a fiber of its own, at most `concurrency` at once,
  // and no more are claimed than there are free slots: a run that hangs
  // holds one slot, never the worker.
  if (settings.worker === "manual") {
    return Durable.Durable.of({ submit: submit as Durable.Service["submit"], outcome, resolveInDoubt, runOnce })
  }
  const wake = yield* Queue.sliding<void>(1)
  const unsubscribe = runtime.onResolved((request) => {
    if (request.status === "approved") Queue.unsafeOffer(wake, undefined)
  })
  yield* Effect.addFinalizer(() => Effect.sync(unsubscribe))
  // Approvals resolved by other processes, announced by a shared store
  // (Postgres' LISTEN/NOTIFY): a hint to claim now rather than at the poll.
  if (store.resolutions !== undefined) {
    yield* Effect.forkScoped(Stream.runForEach(store.resolutions, () => Queue.offer(wake, undefined)))
  }
  const runs = yield* FiberSet.make()
  let running = 0
  const claimInto = Effect.suspend(() => {
    const free = Math.min(settings.batch, settings.concurrency - running)
    if (free <= 0) return Effect.succeed(false)
    return Effect.flatMap(claimNow(free), (claimed) =>
      Effect.as(
        Effect.forEach(claimed, (c) => {
          running++
          return FiberSet.run(
            runs,
            Effect.ensuring(
              process(c),
              Effect.sync(() => {
                running--
                Queue.unsafeOffer(wake, undefined)
              })
            )
          )
        }, { discard: true }),
        claimed.length === free
      ))
  })
  const pass = claimInto.pipe(
    Effect.repeat({ while: (full) => full }),
    Effect.catchAll((error) => Effect.logWarning("gavel: claiming durable work failed", error))
  )
  yield* Effect.forkScoped(
    Effect.forever(Effect.zipRight(pass, Effect.raceFirst(Queue.take(wake), Effect.sleep(settings.pollInterval))))
  )

  return Durable.Durable.of({
    submit: submit as Durable.Service["submit"],
    outcome,
    resolveInDoubt,
    runOnce
  })
})
