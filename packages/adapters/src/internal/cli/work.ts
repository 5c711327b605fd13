/**
 * `gavel work list|resolve`: the durable work approvals release (their
 * continuations), and an operator's resolution of work left in doubt. The
 * CLI has no handlers and no encryption key: it reads what the continuation
 * store says of the work — never its sealed data — and resolves in-doubt
 * work through the store, audited in the same transaction.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as Approval from "@gavel/core/Approval"
import * as ApprovalStore from "@gavel/core/ApprovalStore"
import * as AuditSink from "@gavel/core/AuditSink"
import * as ContinuationStore from "@gavel/core/ContinuationStore"
import * as Durable from "@gavel/core/Durable"
import * as Identity from "@gavel/core/Identity"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { refused } from "./errors.js"
import { asJson, database, db } from "./inputs.js"
import * as Principals from "./principals.js"
import { json, workListing, workResolved } from "./render.js"

/**
 * What the CLI shows of durable work (see `Cli.Work`): a continuation
 * without its sealed data, claim fence and idempotency key.
 *
 * @internal
 */
export const Work = Schema.Struct({
  approvalId: Schema.String,
  handler: Schema.String,
  handlerVersion: Schema.Int,
  delivery: ContinuationStore.Delivery,
  state: ContinuationStore.State,
  attempts: Schema.Int,
  maxAttempts: Schema.Int,
  owner: Schema.NullOr(Schema.String),
  leaseUntil: Schema.NullOr(Schema.Date),
  createdAt: Schema.Date,
  updatedAt: Schema.Date,
  result: Schema.NullOr(Schema.Unknown),
  error: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Work" })

/** @internal */
export type Work = typeof Work.Type

/** The work a continuation stands for, its sealed data left out. @internal */
export const workOf = (c: ContinuationStore.Continuation): Work => ({
  approvalId: c.approvalId,
  handler: c.handler,
  handlerVersion: c.handlerVersion,
  delivery: c.delivery,
  state: c.state,
  attempts: c.attempts,
  maxAttempts: c.maxAttempts,
  owner: c.owner,
  leaseUntil: c.leaseUntil,
  createdAt: c.createdAt,
  updatedAt: c.updatedAt,
  result: c.result,
  error: c.error
})

/** @internal */
export const encodeWork = Schema.encode(Work)

const encodeWorks = Schema.encode(Schema.Array(Work))

/** The work `approvalId` released, if it has any. @internal */
export const workFor = (
  continuations: ContinuationStore.Service,
  approvalId: string
): Effect.Effect<Option.Option<Work>, Approval.StoreError> =>
  continuations.get(approvalId).pipe(
    Effect.map((c) => Option.some(workOf(c))),
    Effect.catchTag("ContinuationNotFound", () => Effect.succeedNone)
  )

const defaultLimit = 100

const list = Command.make(
  "list",
  {
    db,
    json: asJson,
    state: Options.choice("state", ContinuationStore.State.literals).pipe(
      Options.withDescription("Only work in this state (in_doubt: what waits for an operator)"),
      Options.optional
    ),
    limit: Options.integer("limit").pipe(
      Options.withSchema(Schema.Int.pipe(Schema.positive())),
      Options.withDescription(`At most this many, oldest first (default ${defaultLimit})`),
      Options.withDefault(defaultLimit)
    )
  },
  (options) =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* database(options.db)
      const found = yield* Context.get(context, ContinuationStore.ContinuationStore).list({
        state: Option.getOrUndefined(options.state),
        limit: options.limit
      })
      const works = found.map(workOf)
      yield* Console.log(
        options.json ? json(yield* encodeWorks(works)) : workListing(works, Option.getOrUndefined(options.state))
      )
    }))
).pipe(Command.withDescription("List durable work, oldest first: every state, or those of --state"))

/** `--succeeded` / `--failed`: exactly one. */
const outcome = Options.all({
  succeeded: Options.boolean("succeeded").pipe(Options.withDescription("The work did happen")),
  failed: Options.boolean("failed").pipe(Options.withDescription("The work did not happen"))
}).pipe(
  Options.mapEffect(({ failed, succeeded }) =>
    succeeded === failed
      ? Effect.fail(ValidationError.invalidValue(HelpDoc.p("give exactly one of --succeeded and --failed")))
      : Effect.succeed(succeeded ? "succeeded" as const : "failed" as const)
  )
)

/**
 * Why `principal` may not resolve the work `request` released, or none:
 * the eligibility of an approver of that approval — the runtime's authority
 * rule (`Identity.withinAuthority`), let by the identity system, and not its
 * requester (under any spelling) under separation of duties.
 */
const refusal = (
  identity: Identity.Service,
  principal: string,
  request: Approval.ApprovalRequest
) =>
  Effect.gen(function*() {
    const known = yield* identity.resolve(principal)
    const id = Option.isSome(known) ? known.value.id : principal
    const verdict = Identity.withinAuthority(
      { id, resolved: known },
      request.requirement.authority,
      request.summary.actor.tenant
    )
    switch (verdict) {
      case "unknown_principal":
        return Option.some("not in the principals directory")
      case "inactive":
        return Option.some(`${Option.getOrThrow(known).status} in the principals directory`)
      case "other_tenant":
        return Option.some("in another tenant than the approval's")
      case "outside_authority":
        return Option.some("outside the approval's authority")
    }
    // The requester under any spelling the directory knows (as a vote is checked).
    if (request.requirement.separationOfDuties) {
      const requester = yield* identity.resolve(request.requester)
      if (id === request.requester || Option.exists(requester, (r) => r.id === id)) {
        return Option.some("requested the approval (separation of duties)")
      }
    }
    if (!(yield* identity.canApprove(id, request))) return Option.some("refused by the identity system")
    return Option.none<string>()
  })

const resolve = Command.make(
  "resolve",
  {
    db,
    json: asJson,
    as: Options.text("as").pipe(
      Options.withSchema(Schema.NonEmptyTrimmedString),
      Options.withPseudoName("PRINCIPAL"),
      Options.withDescription("Who resolves: an id of the principals directory, eligible to approve the approval")
    ),
    principals: Principals.principals,
    outcome,
    note: Options.text("note").pipe(Options.withDescription("What was found out, kept in the audit trail"), Options.optional),
    id: Args.text({ name: "ID" }).pipe(Args.withDescription("The approval id (apr_…) of the work"))
  },
  (options) =>
    Effect.scoped(Effect.gen(function*() {
      const identity = yield* Principals.load(options.principals)
      const context = yield* database(options.db)
      const continuations = Context.get(context, ContinuationStore.ContinuationStore)
      const sink = Context.get(context, AuditSink.AuditSink)
      const current = yield* continuations.get(options.id)
      if (current.state !== "in_doubt") {
        return yield* refused(`the work of approval "${options.id}" is ${current.state}, not in doubt`)
      }
      const request = yield* Context.get(context, ApprovalStore.ApprovalStore).get(options.id)
      const why = yield* refusal(identity, options.as, request)
      if (Option.isSome(why)) {
        return yield* refused(`"${options.as}" may not resolve the work of approval "${options.id}": ${why.value}`)
      }
      const by = Option.match(yield* identity.resolve(options.as), { onNone: () => options.as, onSome: (p) => p.id })
      const note = Option.getOrUndefined(options.note)
      const at = new Date(yield* Clock.currentTimeMillis)
      const ending = options.outcome === "succeeded"
        ? { state: "succeeded" as const, result: null }
        : { state: "failed" as const, error: "resolved_failed" }
      // The resolution and its audit event: one transaction, as a step of
      // the runtime is (the database's sink joins the store's unit).
      const resolved = yield* continuations.atomically(
        Effect.tap(
          continuations.resolve(options.id, ending, at),
          () => sink.append(Durable.resolutionEntry(request, { state: options.outcome, by, note }, at))
        )
      )
      const work = workOf(resolved)
      yield* Console.log(options.json ? json(yield* encodeWork(work)) : workResolved(work, by))
    }))
).pipe(
  Command.withDescription(
    "Resolve in-doubt work: record whether it happened (--succeeded) or not (--failed), audited (execution.resolved)"
  )
)

/** `gavel work list|resolve`. @internal */
export const work = Command.make("work").pipe(
  Command.withDescription("Durable work released by approvals; resolving work left in doubt"),
  Command.withSubcommands([list, resolve])
)
