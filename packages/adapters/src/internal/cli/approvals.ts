/**
 * `gavel approvals list|show|approve|reject`: reading approvals from the
 * store, and voting through `Governance` with the principals directory as
 * the identity system.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type * as Action from "@gavel/core/Action"
import * as Approval from "@gavel/core/Approval"
import * as ApprovalStore from "@gavel/core/ApprovalStore"
import * as ContinuationStore from "@gavel/core/ContinuationStore"
import * as Decision from "@gavel/core/Decision"
import * as Governance from "@gavel/core/Governance"
import * as Identity from "@gavel/core/Identity"
import * as Policy from "@gavel/core/Policy"
import * as PolicySet from "@gavel/core/PolicySet"
import * as Arr from "effect/Array"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { asJson, database, db } from "./inputs.js"
import * as Principals from "./principals.js"
import { block, json, listing, statusOf } from "./render.js"
import { encodeWork, type Work, workFor } from "./work.js"

const approvalId = Args.text({ name: "ID" }).pipe(Args.withDescription("The approval id (apr_…)"))

/**
 * An approval's JSON: its encoding, with `work` (`Cli.Work`) when it
 * releases durable work.
 */
const withWork = (request: Approval.ApprovalRequest, work: Work | undefined) =>
  Effect.gen(function*() {
    const encoded = yield* Approval.encode(request)
    return work === undefined ? encoded : { ...encoded, work: yield* encodeWork(work) }
  })

const nowMillis = Clock.currentTimeMillis

const list = Command.make(
  "list",
  {
    db,
    json: asJson,
    status: Options.choice("status", [...Approval.Status.literals, "all"]).pipe(
      Options.withDescription("Only approvals in this status, or all of them (default: pending)"),
      Options.withDefault("pending")
    ),
    kind: Options.choice("kind", Approval.Kind.literals).pipe(
      Options.withDescription("Only approvals or only acknowledgments"),
      Options.optional
    ),
    tenant: Options.text("tenant").pipe(Options.withDescription("Only this tenant's"), Options.optional),
    requester: Options.text("requester").pipe(Options.withDescription("Only this requester's"), Options.optional),
    limit: Options.integer("limit").pipe(
      Options.withSchema(Schema.Int.pipe(Schema.positive())),
      Options.withDescription("At most this many (oldest first)"),
      Options.optional
    )
  },
  (options) =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* database(options.db)
      const store = Context.get(context, ApprovalStore.ApprovalStore)
      const requests = yield* store.list({
        status: options.status === "all" ? undefined : options.status,
        kind: Option.getOrUndefined(options.kind),
        tenant: Option.getOrUndefined(options.tenant),
        requester: Option.getOrUndefined(options.requester),
        limit: Option.getOrUndefined(options.limit)
      })
      const continuations = Context.get(context, ContinuationStore.ContinuationStore)
      const works = new Map<string, Work>()
      for (const request of requests) {
        const work = yield* workFor(continuations, request.id)
        if (Option.isSome(work)) works.set(request.id, work.value)
      }
      yield* Console.log(
        options.json
          ? json(yield* Effect.forEach(requests, (request) => withWork(request, works.get(request.id))))
          : listing(requests, options.status, yield* nowMillis, (id) => works.get(id))
      )
    }))
).pipe(Command.withDescription("List approvals, oldest first: the pending ones, or those of --status"))

const show = Command.make(
  "show",
  { db, json: asJson, id: approvalId },
  (options) =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* database(options.db)
      const request = yield* Context.get(context, ApprovalStore.ApprovalStore).get(options.id)
      const work = Option.getOrUndefined(
        yield* workFor(Context.get(context, ContinuationStore.ContinuationStore), request.id)
      )
      yield* Console.log(
        options.json ? json(yield* withWork(request, work)) : block(request, yield* nowMillis, work)
      )
    }))
).pipe(Command.withDescription("Show one approval, whatever its status, and the durable work it releases"))

// Votes never evaluate policies: the runtime the CLI builds has none.
const noPolicies = PolicySet.unsafeMake({
  id: "gavel-cli",
  version: "1",
  policy: Policy.constant("gavel-cli.none", Decision.notApplicable)
})

const voteOptions = {
  db,
  json: asJson,
  as: Options.text("as").pipe(
    Options.withSchema(Schema.NonEmptyTrimmedString),
    Options.withPseudoName("PRINCIPAL"),
    Options.withDescription("Who votes: an id of the principals directory")
  ),
  principals: Principals.principals,
  note: Options.text("note").pipe(Options.withDescription("A note kept with the vote"), Options.optional),
  id: approvalId
}

type VoteOptions = Command.Command.ParseConfig<typeof voteOptions>

const vote = (verdict: Approval.Verdict) => (options: VoteOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const identity = yield* Principals.load(options.principals)
    const context = yield* database(options.db)
    const governance = yield* Governance.make({
      policySet: noPolicies,
      approvalTimeout: "1 hour",
      sweepInterval: "1 hour",
      pollInterval: "1 second"
    }).pipe(
      Effect.provide(context),
      Effect.provideService(Identity.Identity, identity),
      Effect.orDie
    )
    const known = Option.getOrUndefined(yield* identity.resolve(options.as))
    const voter: Action.Principal = {
      id: options.as,
      kind: "human",
      roles: known?.roles ?? [],
      ...(known?.tenant === undefined ? {} : { tenant: known.tenant }),
      attributes: {}
    }
    const note = Option.getOrUndefined(options.note)
    const current = yield* Context.get(context, ApprovalStore.ApprovalStore).get(options.id)
    const next = yield* verdict === "reject"
      ? governance.reject(options.id, voter, note)
      : current.kind === "acknowledgment"
      ? governance.acknowledge(options.id, voter, note)
      : governance.approve(options.id, voter, note)
    yield* Console.log(
      options.json ? json(yield* Approval.encode(next)) : statusOf(next, yield* nowMillis)
    )
    // Earlier votes this vote stopped counting: never silently (on stderr with --json, which stays JSON).
    const notices = yield* uncounted(current, next, identity)
    if (notices.length > 0) yield* (options.json ? Console.error : Console.log)(notices.join("\n"))
  }))

/**
 * The earlier votes that counted before this vote and no longer do, each
 * with why, as the directory the CLI votes with sees it.
 */
const uncounted = (
  before: Approval.ApprovalRequest,
  after: Approval.ApprovalRequest,
  identity: Identity.Service
) =>
  Effect.map(
    Effect.forEach(after.votes, (vote) => {
      const earlier = before.votes.find((v) => v.approver === vote.approver && v.at.getTime() === vote.at.getTime())
      if (earlier === undefined || !earlier.counted || vote.counted) return Effect.succeed([])
      return Effect.map(identity.resolve(vote.approver), (known) => {
        const why = Option.isNone(known)
          ? "not in the principals directory"
          : known.value.status !== "active"
          ? `${known.value.status} in the principals directory`
          : "no longer eligible (roles, tenant or another vote by the same person)"
        return [`${vote.approver}'s vote no longer counts: ${why}`]
      })
    }),
    Arr.flatten
  )

const approve = Command.make("approve", voteOptions, vote("approve")).pipe(
  Command.withDescription("Vote for an approval (or acknowledge an acknowledgment) and print its status")
)

const reject = Command.make("reject", voteOptions, vote("reject")).pipe(
  Command.withDescription("Vote against an approval; one counted rejection resolves it as rejected")
)

/** `gavel approvals list|show|approve|reject`. @internal */
export const approvals = Command.make("approvals").pipe(
  Command.withDescription("Pending approvals and votes"),
  Command.withSubcommands([list, show, approve, reject])
)
