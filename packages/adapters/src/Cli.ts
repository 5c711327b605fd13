/**
 * The `gavel` command line for approvers and auditors, on `@effect/cli`:
 *
 * ```text
 * gavel approvals list    --db FILE [--status S] [--kind K] [--tenant T] [--requester R] [--limit N] [--json]
 * gavel approvals show    --db FILE [--json] ID
 * gavel approvals approve --db FILE --as PRINCIPAL [--principals FILE] [--note TEXT] [--json] ID
 * gavel approvals reject  --db FILE --as PRINCIPAL [--principals FILE] [--note TEXT] [--json] ID
 * gavel audit verify      --db FILE [--anchor SEQ:HASH] [--json]
 * gavel rules check       [--json] FILE
 * gavel rules explain     --action ACTION.json [--json] FILE
 * ```
 *
 * - The database must be an existing gavel SQLite database: the CLI never
 *   creates one, refuses a file of another application, and leaves a path
 *   it refuses exactly as it was (`Sqlite.layer` with `create: false`).
 * - Votes go through `Governance.approve` / `reject` (`acknowledge` for an
 *   acknowledgment), so they are checked (eligibility, separation of duties,
 *   expiry) and audited exactly like votes cast through the HTTP API.
 * - The CLI authenticates nobody: `--as` names the voter, and the voter's
 *   roles, status and tenant come from the principals directory the operator
 *   configures (`--principals FILE` or `GAVEL_PRINCIPALS`). Without one, the
 *   CLI refuses to vote.
 * - `rules check` decodes a rules document (`.json`, `.yaml`, `.yml`) and
 *   lists every problem, one per line; `rules explain` evaluates an action
 *   (a JSON file) against it and prints which rules matched, which decided,
 *   and the decision record. Neither needs a database. See docs/rules.md.
 * - Output is human-readable by default and the JSON encoding of the values
 *   with `--json`; an error is one line on stderr, and the exit code says
 *   what happened ({@link ExitCode}).
 *
 * Needs the optional peer dependencies `@effect/cli`, `@effect/sql` and
 * `@effect/sql-sqlite-node`; `bin/gavel.ts` runs it on Node.
 *
 * @example
 * ```ts
 * import * as Cli from "@gavel/adapters/Cli"
 * import * as NodeContext from "@effect/platform-node/NodeContext"
 * import * as Effect from "effect/Effect"
 *
 * const code = await Effect.runPromise(
 *   Cli.run(["approvals", "list", "--db", "/var/lib/gavel/gavel.db", "--json"]).pipe(
 *     Effect.provide(NodeContext.layer)
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Action from "@gavel/core/Action"
import * as Approval from "@gavel/core/Approval"
import * as ApprovalStore from "@gavel/core/ApprovalStore"
import * as Audit from "@gavel/core/Audit"
import * as AuditSink from "@gavel/core/AuditSink"
import * as Decision from "@gavel/core/Decision"
import * as Governance from "@gavel/core/Governance"
import * as Identity from "@gavel/core/Identity"
import * as Policy from "@gavel/core/Policy"
import * as PolicySet from "@gavel/core/PolicySet"
import * as Rules from "@gavel/core/Rules"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as RulesFile from "./RulesFile.js"
import * as Sqlite from "./Sqlite.js"

// -----------------------------------------------------------------------------
// exit codes
// -----------------------------------------------------------------------------

/**
 * What the `gavel` process exit code means:
 *
 * - `0` success (for `audit verify`: the trail is intact).
 * - `1` the audit trail is broken (`audit verify`).
 * - `2` usage: unknown command, missing or invalid flag or argument.
 * - `3` no approval with this id.
 * - `4` refused: the approval is already resolved or expired, the principal
 *   may not vote on it (unknown, inactive, outside its authority, another
 *   tenant), voted already, or requested it (separation of duties).
 * - `5` database or configuration: the database file is missing or
 *   empty, unreadable, not SQLite, truncated, not a gavel database or too new; the principals directory
 *   is missing or invalid; a database error; a rules file that is missing,
 *   unreadable or not `.json`/`.yaml`/`.yml`; an action file that is
 *   missing or not a valid action (`rules explain`).
 * - `6` the rules document is invalid (`rules check`, `rules explain`):
 *   every problem is printed, one per line.
 * - `70` internal error (a bug in gavel).
 * - `130` interrupted (Ctrl-C).
 *
 * @since 0.1.0
 * @category exit codes
 */
export const ExitCode = {
  Success: 0,
  AuditBroken: 1,
  Usage: 2,
  NotFound: 3,
  Refused: 4,
  Unavailable: 5,
  InvalidRules: 6,
  Internal: 70,
  Interrupted: 130
} as const

/**
 * @since 0.1.0
 * @category exit codes
 */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode]

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * A failure of the CLI's own (outside the governance runtime): a database
 * file that is missing or not gavel's, a missing or invalid principals
 * directory, a broken audit trail. `reason` decides the exit code.
 *
 * @since 0.1.0
 * @category errors
 */
export class CliError extends Schema.TaggedError<CliError>()("CliError", {
  reason: Schema.Literal("Unavailable", "Config", "AuditBroken"),
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return this.detail
  }
}

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The principals directory: who may vote through the CLI, as the identity
 * system knows them. A JSON array of `Identity.ResolvedPrincipal`
 * (`{ "id", "roles", "tenant"?, "status" }`), ids unique.
 *
 * @since 0.1.0
 * @category models
 */
export const Principals = Schema.Array(Identity.ResolvedPrincipal).pipe(
  Schema.filter((principals) => {
    const seen = new Set<string>()
    for (let i = 0; i < principals.length; i++) {
      const id = principals[i]!.id
      if (seen.has(id)) {
        return { path: [i, "id"], message: `principal "${id}" is listed more than once` }
      }
      seen.add(id)
    }
    return true
  })
).annotations({ identifier: "Principals" })

/**
 * The name of the environment variable holding the path of the principals
 * directory, when `--principals` is not given.
 *
 * @since 0.1.0
 * @category constants
 */
export const principalsEnv = "GAVEL_PRINCIPALS"

/**
 * What `gavel audit verify --json` prints: `Audit.verify`'s result.
 *
 * @since 0.1.0
 * @category models
 */
export const Verification = Schema.Union(
  Schema.TaggedStruct("Intact", { count: Schema.Int, head: Schema.NullOr(Audit.Anchor) }),
  Schema.TaggedStruct("Broken", {
    sequence: Schema.Int,
    problem: Schema.Literal("edited", "missing", "reordered", "truncated"),
    message: Schema.String
  })
).annotations({ identifier: "AuditVerification" })

// -----------------------------------------------------------------------------
// opening the database
// -----------------------------------------------------------------------------

const unavailable = (detail: string) => new CliError({ reason: "Unavailable", detail })

/**
 * The store and sink over the existing gavel database `filename`: the CLI
 * never creates one, and must not turn an empty or mistyped file into one.
 * `Sqlite.layer` examines the path before anything can write to it or
 * create a file beside it, and leaves a refused path as it was.
 */
const database = (
  filename: string
): Effect.Effect<Context.Context<ApprovalStore.ApprovalStore | AuditSink.AuditSink>, CliError, Scope.Scope> =>
  Layer.build(Sqlite.layer({ filename, create: false })).pipe(Effect.mapError((error) => unavailable(error.message)))

// -----------------------------------------------------------------------------
// the principals directory
// -----------------------------------------------------------------------------

const configError = (detail: string) => new CliError({ reason: "Config", detail })

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.length === 0
    ? ""
    : path.map((key) => typeof key === "number" ? `[${key}]` : `.${String(key)}`).join("").replace(/^\./, "") + ": "

const decodePrincipals = Schema.decodeUnknownEither(Schema.parseJson(Principals))

const expected = /^Expected (.*), actual (.*)$/s

/**
 * The first problem of a parse error, on one line, with its path. The
 * members of a union of literals fail one by one ("Expected "active", actual
 * "boss"", "Expected "suspended", …): they are told as one.
 */
const firstProblem = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  if (first === undefined) return "invalid"
  const here = formatPath(first.path)
  const alternatives = issues.filter((issue) => formatPath(issue.path) === here).map((issue) =>
    expected.exec(issue.message)
  )
  const merged = alternatives.length > 1 &&
      alternatives.every((match) => match !== null && match[2] === alternatives[0]![2])
    ? `Expected ${alternatives.map((match) => match![1]).join(" | ")}, actual ${alternatives[0]![2]}`
    : first.message
  const line = oneLine(`${here}${merged}`)
  return line.length > 200 ? `${line.slice(0, 199)}…` : line
}

/** Reads the directory at `--principals`, else at `GAVEL_PRINCIPALS`; refuses to go on without one. */
const loadPrincipals = (
  flag: Option.Option<string>
): Effect.Effect<ReadonlyMap<string, Identity.ResolvedPrincipal>, CliError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fromEnv = yield* Config.string(principalsEnv).pipe(Config.withDefault(""), Effect.orElseSucceed(() => ""))
    const path = Option.getOrElse(flag, () => fromEnv)
    if (path.trim() === "") {
      return yield* configError(
        `no principals directory: pass --principals FILE or set ${principalsEnv}`
      )
    }
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) =>
        configError(
          error._tag === "SystemError" && error.reason === "NotFound"
            ? `principals file "${path}" does not exist`
            : `cannot read principals file "${path}": ${error._tag === "SystemError" ? error.reason : error.message}`
        )
      )
    )
    const decoded = decodePrincipals(text)
    if (decoded._tag === "Left") {
      return yield* configError(`principals file "${path}": ${firstProblem(decoded.left)}`)
    }
    return new Map(decoded.right.map((principal) => [principal.id, principal]))
  })

/**
 * The identity system the CLI votes with: the directory. (The runtime itself
 * refuses a principal of another tenant than the action's.)
 */
const directoryIdentity = (directory: ReadonlyMap<string, Identity.ResolvedPrincipal>): Identity.Service =>
  Identity.Identity.of({
    resolve: (principalId) => Effect.succeed(Option.fromNullable(directory.get(principalId))),
    canApprove: () => Effect.succeed(true)
  })

// Votes never evaluate policies: the runtime the CLI builds has none.
const noPolicies = PolicySet.unsafeMake({
  id: "gavel-cli",
  version: "1",
  policy: Policy.constant("gavel-cli.none", Decision.notApplicable)
})

// -----------------------------------------------------------------------------
// rendering
// -----------------------------------------------------------------------------

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ").trim()

/** An instant in UTC, to the second. */
const instant = (date: Date): string => date.toISOString().replace(/\.\d{3}Z$/, "Z")

const json = (value: unknown): string => JSON.stringify(value, null, 2)

const votesOf = (request: Approval.ApprovalRequest): string =>
  `${Approval.countedApprovers(request).length}/${request.requirement.quorum}`

/** The status as an approver should read it: a pending approval past its expiry is not votable. */
const statusOf = (request: Approval.ApprovalRequest, now: number): string => {
  switch (request.status) {
    case "pending":
      return Approval.isDue(request, now)
        ? "expired (due, not yet swept)"
        : request.kind === "approval"
        ? `pending (${votesOf(request)} approvals)`
        : "pending (not acknowledged)"
    case "approved":
      return request.kind === "approval" ? `approved (${votesOf(request)})` : "acknowledged"
    case "rejected": {
      const by = request.votes.find((v) => v.counted && v.verdict === "reject")
      return by === undefined ? "rejected" : `rejected (by ${by.approver})`
    }
    case "consumed":
      return `consumed (approved ${votesOf(request)})`
    default:
      return request.status
  }
}

const shortStatus = (request: Approval.ApprovalRequest, now: number): string =>
  request.status === "pending" && Approval.isDue(request, now) ? "expired (due)" : request.status

const actionOf = (request: Approval.ApprovalRequest): string => {
  const { kind, name, resource } = request.summary
  return `${kind} ${name}${resource === null ? "" : ` on ${resource.type}/${resource.id}`}`
}

const requesterOf = (request: Approval.ApprovalRequest): string => {
  const actor = request.summary.actor
  const details = [actor.kind, ...(actor.tenant === null ? [] : [`tenant ${actor.tenant}`])]
  return `${request.requester} (${details.join(", ")})`
}

const authorityOf = (authority: Decision.Authority): string => {
  const parts = [
    ...(authority.roles.length === 0 ? [] : [`roles ${authority.roles.join(", ")}`]),
    ...(authority.principals.length === 0 ? [] : [`principals ${authority.principals.join(", ")}`])
  ]
  return parts.length === 0 ? "nobody" : parts.join("; ")
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]?.length ?? 0)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)).join("  ")
  return [line(header), ...rows.map(line)].join("\n")
}

const listing = (
  requests: ReadonlyArray<Approval.ApprovalRequest>,
  status: Approval.Status | "all",
  now: number
): string =>
  requests.length === 0 ? `No ${status === "all" ? "" : `${status} `}approvals.` : table(
    ["ID", "KIND", "STATUS", "VOTES", "REQUESTER", "TENANT", "EXPIRES", "ACTION"],
    requests.map((r) => [
      r.id,
      r.kind,
      shortStatus(r, now),
      votesOf(r),
      r.requester,
      r.summary.actor.tenant ?? "-",
      instant(r.requirement.expiresAt),
      actionOf(r)
    ])
  )

const block = (request: Approval.ApprovalRequest, now: number): string => {
  const r = request.requirement
  const fields: Array<readonly [string, string]> = [
    ["id", request.id],
    ["kind", request.kind],
    ["status", statusOf(request, now)],
    ["requester", requesterOf(request)],
    ["action", actionOf(request)],
    ["quorum", `${votesOf(request)}${r.separationOfDuties ? " (separation of duties)" : ""}`],
    ["authority", authorityOf(r.authority)],
    ["created", instant(request.createdAt)],
    ["expires", instant(r.expiresAt)]
  ]
  if (request.resolvedAt !== null) fields.push(["resolved", instant(request.resolvedAt)])
  if (request.consumedAt !== null) fields.push(["consumed", instant(request.consumedAt)])
  fields.push(["policy", request.policyId], ["decision", request.decisionId])
  const width = Math.max(...fields.map(([name]) => name.length))
  const lines = fields.map(([name, value]) => `${name.padEnd(width)}  ${value}`)
  const list = (title: string, items: ReadonlyArray<string>) => {
    lines.push(`${title}:`)
    if (items.length === 0) lines.push("  (none)")
    else for (const item of items) lines.push(`  - ${item}`)
  }
  list("reasons", request.reasons.map((reason) => `${reason.code}: ${reason.message}`))
  list(
    "votes",
    request.votes.map((v) => {
      const verdict = v.verdict === "approve" ? "approved" : "rejected"
      const counted = v.counted ? "" : " (not counted)"
      const note = v.note === null ? "" : `: ${JSON.stringify(v.note)}`
      return `${v.approver} ${verdict} at ${instant(v.at)}${counted}${note}`
    })
  )
  return lines.join("\n")
}

const encodeRequests = Schema.encode(Schema.Array(Approval.ApprovalRequest))
const encodeVerification = Schema.encode(Verification)

const nowMillis = Clock.currentTimeMillis

// -----------------------------------------------------------------------------
// commands
// -----------------------------------------------------------------------------

const db = Options.text("db").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription("The gavel SQLite database (it must exist; the CLI never creates one)")
)

const asJson = Options.boolean("json").pipe(
  Options.withDescription("Print the JSON encoding instead of text, for scripts")
)

const approvalId = Args.text({ name: "ID" }).pipe(Args.withDescription("The approval id (apr_…)"))

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
      yield* Console.log(
        options.json ? json(yield* encodeRequests(requests)) : listing(requests, options.status, yield* nowMillis)
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
      yield* Console.log(
        options.json ? json(yield* Approval.encode(request)) : block(request, yield* nowMillis)
      )
    }))
).pipe(Command.withDescription("Show one approval, whatever its status"))

const voteOptions = {
  db,
  json: asJson,
  as: Options.text("as").pipe(
    Options.withSchema(Schema.NonEmptyTrimmedString),
    Options.withPseudoName("PRINCIPAL"),
    Options.withDescription("Who votes: an id of the principals directory")
  ),
  principals: Options.text("principals").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription(
      `The principals directory (JSON array of {id, roles, tenant?, status}); default: $${principalsEnv}`
    ),
    Options.optional
  ),
  note: Options.text("note").pipe(Options.withDescription("A note kept with the vote"), Options.optional),
  id: approvalId
}

type VoteOptions = Command.Command.ParseConfig<typeof voteOptions>

const vote = (verdict: Approval.Verdict) => (options: VoteOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const directory = yield* loadPrincipals(options.principals)
    const context = yield* database(options.db)
    const governance = yield* Governance.make({
      policySet: noPolicies,
      approvalTimeout: "1 hour",
      sweepInterval: "1 hour",
      pollInterval: "1 second"
    }).pipe(
      Effect.provide(context),
      Effect.provideService(Identity.Identity, directoryIdentity(directory)),
      Effect.orDie
    )
    const known = directory.get(options.as)
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
    const notices = uncounted(current, next, directory)
    if (notices.length > 0) yield* (options.json ? Console.error : Console.log)(notices.join("\n"))
  }))

/**
 * The earlier votes that counted before this vote and no longer do, each
 * with why, as the directory the CLI votes with sees it.
 */
const uncounted = (
  before: Approval.ApprovalRequest,
  after: Approval.ApprovalRequest,
  directory: ReadonlyMap<string, Identity.ResolvedPrincipal>
): ReadonlyArray<string> =>
  after.votes.flatMap((vote) => {
    const earlier = before.votes.find((v) => v.approver === vote.approver && v.at.getTime() === vote.at.getTime())
    if (earlier === undefined || !earlier.counted || vote.counted) return []
    const known = directory.get(vote.approver)
    const why = known === undefined
      ? "not in the principals directory"
      : known.status !== "active"
      ? `${known.status} in the principals directory`
      : "no longer eligible (roles, tenant or another vote by the same person)"
    return [`${vote.approver}'s vote no longer counts: ${why}`]
  })

const approve = Command.make("approve", voteOptions, vote("approve")).pipe(
  Command.withDescription("Vote for an approval (or acknowledge an acknowledgment) and print its status")
)

const reject = Command.make("reject", voteOptions, vote("reject")).pipe(
  Command.withDescription("Vote against an approval; one counted rejection resolves it as rejected")
)

const anchor = Options.text("anchor").pipe(
  Options.withPseudoName("SEQ:HASH"),
  Options.withDescription("A head printed by an earlier verify: also detects a trail cut short or rewritten"),
  Options.mapEffect((text) => {
    const match = /^(\d+):([0-9a-f]{64})$/.exec(text.trim())
    const sequence = match === null ? 0 : Number(match[1])
    return match === null || !Number.isSafeInteger(sequence) || sequence < 1
      ? Effect.fail(
        ValidationError.invalidValue(HelpDoc.p(`--anchor must be SEQ:HASH (a sequence number and 64 hex digits)`))
      )
      : Effect.succeed<Audit.Anchor>({ sequence, hash: match[2]! })
  }),
  Options.optional
)

const verify = Command.make(
  "verify",
  { db, json: asJson, anchor },
  (options) =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* database(options.db)
      const events = yield* Context.get(context, AuditSink.AuditSink).read()
      const result = Audit.verify(events, { anchor: Option.getOrUndefined(options.anchor) })
      if (options.json) {
        yield* Console.log(json(yield* encodeVerification(result)))
      } else if (result._tag === "Intact") {
        yield* Console.log(
          result.head === null
            ? "intact: the trail is empty"
            : `intact: ${result.count} events, head ${result.head.sequence}:${result.head.hash}`
        )
      } else {
        yield* Console.log(`broken at event ${result.sequence} (${result.problem}): ${result.message}`)
      }
      if (result._tag === "Broken") {
        return yield* new CliError({
          reason: "AuditBroken",
          detail: `audit trail broken at event ${result.sequence}`
        })
      }
    }))
).pipe(Command.withDescription("Check the audit trail's hash chain; exit code 1 when it is broken"))

// -----------------------------------------------------------------------------
// rules
// -----------------------------------------------------------------------------

const rulesFile = Args.text({ name: "FILE" }).pipe(
  Args.withDescription("The rules document: .json, .yaml or .yml")
)

/** What `rules explain --action` reads: an action, with roles, attributes and metadata optional. */
const ActionFile = Schema.parseJson(Schema.Struct({
  ...Action.Action.from.fields,
  actor: Schema.Struct({
    ...Action.Principal.fields,
    roles: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
    attributes: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), {
      default: () => ({})
    })
  }),
  metadata: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { default: () => ({}) })
}))

const decodeActionFile = Schema.decodeUnknownEither(ActionFile, { onExcessProperty: "error" })

const loadAction = (path: string): Effect.Effect<Action.Action, CliError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) =>
        configError(
          error._tag === "SystemError" && error.reason === "NotFound"
            ? `action file "${path}" does not exist`
            : `cannot read action file "${path}": ${error._tag === "SystemError" ? error.reason : error.message}`
        )
      )
    )
    const decoded = decodeActionFile(text)
    if (decoded._tag === "Left") return yield* configError(`action file "${path}": ${firstProblem(decoded.left)}`)
    const checked = Action.validate(Action.makeUnvalidated(decoded.right))
    if (checked._tag === "Left") return yield* configError(`action file "${path}": ${checked.left.message}`)
    return checked.right
  })

const encodeProblems = Schema.encode(Schema.Struct({ valid: Schema.Literal(false), problems: Schema.Array(Rules.Problem) }))
const encodeExplanation = Schema.encode(Rules.Explanation)

/**
 * Loads a rules file; an invalid one is printed (every problem, one per line,
 * or as JSON) and fails with the `InvalidRules` that sets exit code 6.
 */
const loadRules = (file: string, asJson: boolean) =>
  RulesFile.load(file).pipe(
    Effect.tapError((error) =>
      error._tag !== "InvalidRules"
        ? Effect.void
        : asJson
        ? Effect.flatMap(encodeProblems({ valid: false, problems: error.problems }), (encoded) =>
          Console.log(json(encoded)))
        : Console.log(
          [
            ...error.problems.map((problem) => `${file}: ${oneLine(Rules.formatProblem(problem))}`),
            `invalid: ${error.problems.length} ${error.problems.length === 1 ? "problem" : "problems"}`
          ].join("\n")
        )
    )
  )

const summaryOf = (rules: Rules.Rules): string => {
  const n = rules.document.rules.length
  return `${rules.id} ${rules.version}: ${n} ${n === 1 ? "rule" : "rules"}, ${rules.combine}, default ${
    rules.document.default ?? "none (deny: policy.no_applicable)"
  }`
}

const check = Command.make(
  "check",
  { json: asJson, file: rulesFile },
  (options) =>
    Effect.gen(function*() {
      const rules = yield* loadRules(options.file, options.json)
      yield* Console.log(
        options.json
          ? json({
            valid: true,
            id: rules.id,
            version: rules.version,
            combine: rules.combine,
            rules: rules.document.rules.map((rule) => rule.id),
            policyHash: rules.policyHash
          })
          : `valid: ${summaryOf(rules)}\npolicyHash ${rules.policyHash}`
      )
    })
).pipe(
  Command.withDescription("Check a rules document; every problem is printed, one per line, and the exit code is 6")
)

const describeResult = (result: Decision.Result): string => {
  const codes = Decision.reasonCodes(result)
  return codes.length === 0 ? result._tag : `${result._tag} (${codes.join(", ")})`
}

const explanationText = (rules: Rules.Rules, action: Action.Action, explanation: Rules.Explanation): string => {
  const record = explanation.record
  const actor = action.actor
  const who = [actor.kind, ...(actor.roles.length === 0 ? [] : [`roles ${actor.roles.join(", ")}`]),
    ...(actor.tenant === undefined ? [] : [`tenant ${actor.tenant}`])]
  const target = action.resource === undefined ? "" : ` on ${action.resource.type}/${action.resource.id}`
  const lines = [
    `rules     ${summaryOf(rules)}`,
    `hash      ${rules.policyHash}`,
    `action    ${action.kind} ${action.name}${target} by ${actor.id} (${who.join(", ")})`,
    "matched:"
  ]
  if (explanation.matched.length === 0) lines.push("  (none)")
  for (const m of explanation.matched) lines.push(`  - ${m.ruleId}: ${describeResult(m.result)}`)
  lines.push(
    `decided   ${
      explanation.decidedBy.length > 0
        ? `by ${explanation.decidedBy.join(", ")}`
        : "by the default (no rule applied)"
    }`,
    `decision  ${record.decision._tag}`
  )
  if (record.decision._tag === "RequireApproval") {
    const r = record.decision.requirement
    lines.push(
      `approval  quorum ${r.quorum}, ${authorityOf(r.authority)}${r.separationOfDuties ? ", separation of duties" : ""}${
        record.expiresAt === null ? "" : `, expires ${instant(record.expiresAt)}`
      }`
    )
  } else if (record.decision._tag === "RequireAcknowledgment") {
    lines.push(`ack by    ${authorityOf(record.decision.authority)}`)
  } else if (record.decision._tag === "Escalate" && record.reviewPath.length > 0) {
    lines.push(`review    ${record.reviewPath.join(", ")}`)
  }
  lines.push("reasons:")
  if (record.reasons.length === 0) lines.push("  (none)")
  for (const r of record.reasons) {
    lines.push(`  - ${r.code}: ${r.message}${r.policyId === undefined ? "" : ` [${r.policyId}]`}`)
  }
  lines.push(`record    ${record.decisionId} at ${instant(record.evaluatedAt)}${record.defaulted ? " (defaulted)" : ""}`)
  return lines.join("\n")
}

const explain = Command.make(
  "explain",
  {
    json: asJson,
    action: Options.text("action").pipe(
      Options.withPseudoName("ACTION.json"),
      Options.withDescription("The action to evaluate: JSON { actor: { id, kind, roles? }, kind, name, resource?, payload?, metadata? }")
    ),
    file: rulesFile
  },
  (options) =>
    Effect.gen(function*() {
      const rules = yield* loadRules(options.file, options.json)
      const action = yield* loadAction(options.action)
      const clock = yield* Effect.clock
      const explanation = Rules.explain(rules, action, { clock })
      yield* Console.log(
        options.json ? json(yield* encodeExplanation(explanation)) : explanationText(rules, action, explanation)
      )
    })
).pipe(
  Command.withDescription(
    "Evaluate an action against a rules document: which rules matched, which decided, and the decision record"
  )
)

/**
 * The command tree: `gavel approvals list|show|approve|reject`,
 * `gavel audit verify`, `gavel rules check|explain`.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("gavel").pipe(
  Command.withDescription("Approve, reject and inspect gavel approvals; verify the audit trail; check and explain rules"),
  Command.withSubcommands([
    Command.make("approvals").pipe(
      Command.withDescription("Pending approvals and votes"),
      Command.withSubcommands([list, show, approve, reject])
    ),
    Command.make("audit").pipe(
      Command.withDescription("The audit trail"),
      Command.withSubcommands([verify])
    ),
    Command.make("rules").pipe(
      Command.withDescription("Declarative rules documents"),
      Command.withSubcommands([check, explain])
    )
  ])
)

// -----------------------------------------------------------------------------
// running
// -----------------------------------------------------------------------------

const exitCodesHelp = HelpDoc.sequence(
  HelpDoc.h1("EXIT CODES"),
  HelpDoc.descriptionList([
    [Span.text("0"), HelpDoc.p("success (verify: the trail is intact)")],
    [Span.text("1"), HelpDoc.p("the audit trail is broken")],
    [Span.text("2"), HelpDoc.p("usage: unknown command, missing or invalid flag or argument")],
    [Span.text("3"), HelpDoc.p("no approval with this id")],
    [
      Span.text("4"),
      HelpDoc.p(
        "refused: already resolved or expired, not an approver, already voted, or the requester (separation of duties)"
      )
    ],
    [
      Span.text("5"),
      HelpDoc.p(
        "database or configuration: missing or unreadable file, not a gavel database, bad principals file, missing rules file, bad action file"
      )
    ],
    [Span.text("6"), HelpDoc.p("the rules document is invalid (every problem is printed, one per line)")],
    [Span.text("70"), HelpDoc.p("internal error")]
  ])
)

const cli = Command.run(command, {
  name: "gavel",
  version: "0.2.0",
  summary: Span.text("governance approvals and audit"),
  footer: exitCodesHelp
})

const notAnApproverWhy: Record<Approval.NotAnApprover["reason"], string> = {
  unknown_principal: "not in the principals directory",
  inactive: "not active",
  other_tenant: "in another tenant than the approval's",
  outside_authority: "outside the approval's authority",
  refused: "refused by the identity system"
}

const notAnApprover = (error: Approval.NotAnApprover): string =>
  `"${error.principalId}" may not vote on approval "${error.approvalId}": ${notAnApproverWhy[error.reason]}`

/** The exit code and the error line (none when the output already said it) for a failure. */
const classify = (failure: unknown): { readonly code: ExitCode; readonly line: string | undefined } => {
  if (ValidationError.isValidationError(failure)) return { code: ExitCode.Usage, line: undefined }
  if (failure instanceof CliError) {
    return failure.reason === "AuditBroken"
      ? { code: ExitCode.AuditBroken, line: undefined }
      : { code: ExitCode.Unavailable, line: failure.detail }
  }
  if (failure instanceof Rules.InvalidRules) return { code: ExitCode.InvalidRules, line: undefined }
  if (failure instanceof RulesFile.RulesFileError) return { code: ExitCode.Unavailable, line: failure.message }
  if (failure instanceof Approval.ApprovalNotFound) {
    return { code: ExitCode.NotFound, line: `approval "${failure.approvalId}" not found` }
  }
  if (failure instanceof Approval.NotAnApprover) return { code: ExitCode.Refused, line: notAnApprover(failure) }
  if (failure instanceof Approval.SelfApprovalForbidden) {
    return {
      code: ExitCode.Refused,
      line: `"${failure.principalId}" requested approval "${failure.approvalId}" and may not vote on it`
    }
  }
  if (failure instanceof Approval.AlreadyResolved) {
    return { code: ExitCode.Refused, line: `approval "${failure.approvalId}" is already ${failure.status}` }
  }
  if (failure instanceof Approval.ApprovalExpired) {
    return {
      code: ExitCode.Refused,
      line: `approval "${failure.approvalId}" expired at ${instant(failure.expiresAt)}`
    }
  }
  if (failure instanceof Approval.DuplicateVote || failure instanceof Approval.WrongKind) {
    return { code: ExitCode.Refused, line: failure.message }
  }
  if (failure instanceof Approval.StoreError) {
    return { code: ExitCode.Unavailable, line: `database error: ${failure.operation} failed: ${failure.detail}` }
  }
  if (failure instanceof ParseResult.ParseError) {
    return { code: ExitCode.Internal, line: `internal error: cannot encode the output: ${failure.message}` }
  }
  return { code: ExitCode.Unavailable, line: failure instanceof Error ? failure.message : String(failure) }
}

const report = (cause: Cause.Cause<unknown>): Effect.Effect<ExitCode> => {
  if (Cause.isInterruptedOnly(cause)) return Effect.succeed(ExitCode.Interrupted)
  const failure = Cause.failureOption(cause)
  const { code, line } = Option.isSome(failure) ? classify(failure.value) : {
    code: ExitCode.Internal,
    line: `internal error: ${describeDefect(Cause.squash(cause))}`
  }
  return line === undefined ? Effect.succeed(code) : Effect.as(Console.error(`gavel: ${oneLine(line)}`), code)
}

const describeDefect = (defect: unknown): string => defect instanceof Error ? defect.message : "unexpected failure"

/**
 * Runs the CLI on `args` (the arguments after the program name, as in
 * `process.argv.slice(2)`): prints to the `Console`, and succeeds with the
 * process exit code ({@link ExitCode}) — it never fails. Needs the
 * platform's `FileSystem`, `Path` and `Terminal` (`NodeContext.layer`).
 *
 * @since 0.1.0
 * @category running
 */
export const run = (args: ReadonlyArray<string>): Effect.Effect<ExitCode, never, CliApp.CliApp.Environment> =>
  cli(["node", "gavel", ...args]).pipe(
    Effect.as<ExitCode>(ExitCode.Success),
    Effect.catchAllCause(report)
  )
