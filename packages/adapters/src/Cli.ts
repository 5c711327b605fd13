/**
 * The `gavel` command line for approvers and auditors, on `@effect/cli`:
 *
 * ```text
 * gavel approvals list    --db FILE [--status S] [--kind K] [--tenant T] [--requester R] [--limit N] [--json]
 * gavel approvals show    --db FILE [--json] ID
 * gavel approvals approve --db FILE --as PRINCIPAL [--principals FILE] [--note TEXT] [--json] ID
 * gavel approvals reject  --db FILE --as PRINCIPAL [--principals FILE] [--note TEXT] [--json] ID
 * gavel work list         --db FILE [--state S] [--limit N] [--json]
 * gavel work resolve      --db FILE --as PRINCIPAL [--principals FILE] --succeeded|--failed [--note TEXT] [--json] ID
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
 * - Durable work (`Durable`): `approvals show` prints the work an approval
 *   releases (handler, delivery, state, attempts, the encoded result or the
 *   error — never its sealed data, the CLI holds no key); `work list` lists
 *   it (`--state in_doubt`: what waits for an operator); `work resolve`
 *   records whether in-doubt work happened, through the `ContinuationStore`
 *   with its `execution.resolved` audit event in the same transaction
 *   (`Durable.resolutionEntry`). Who may resolve: whoever may approve that
 *   approval (in the directory, active, its tenant, within its authority,
 *   not its requester under separation of duties).
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
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Effect from "effect/Effect"
import { approvals } from "./internal/cli/approvals.js"
import { audit, Verification as auditVerification } from "./internal/cli/audit.js"
import * as errors from "./internal/cli/errors.js"
import * as principals from "./internal/cli/principals.js"
import { rules } from "./internal/cli/rules.js"
import { work, Work as workModel } from "./internal/cli/work.js"

// The commands live in internal/cli/: one module per command group
// (approvals, work, audit, rules), the principals directory, what they read
// (inputs), what they print (render) and how they fail (errors). This module
// keeps the public API and assembles the command tree.

// -----------------------------------------------------------------------------
// exit codes
// -----------------------------------------------------------------------------

/**
 * What the `gavel` process exit code means:
 *
 * - `0` success (for `audit verify`: the trail is intact).
 * - `1` the audit trail is broken (`audit verify`).
 * - `2` usage: unknown command, missing or invalid flag or argument.
 * - `3` no approval with this id (`work resolve`: no durable work for it).
 * - `4` refused: the approval is already resolved or expired, the principal
 *   may not vote on it (unknown, inactive, outside its authority, another
 *   tenant), voted already, or requested it (separation of duties);
 *   `work resolve`: the work is not in doubt, or the principal may not
 *   approve its approval.
 * - `5` database or configuration: the database file is missing or
 *   empty, unreadable, not SQLite, truncated, not a gavel database or too new; the principals directory
 *   is missing or invalid; a database error; a rules file that is missing,
 *   unreadable or not `.json`/`.yaml`/`.yml`; an action file that is
 *   missing or not a valid action (`rules explain`).
 * - `6` the rules document is invalid (`rules check`, `rules explain`):
 *   every problem is printed, one per line.
 * - `7` `audit verify`: the trail is intact, but events of steps wait in
 *   the database's audit outbox for a trail outside it (each is printed).
 * - `70` internal error (a bug in gavel).
 * - `130` interrupted (Ctrl-C).
 *
 * @since 0.1.0
 * @category exit codes
 */
export const ExitCode: typeof errors.ExitCode = errors.ExitCode

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
 * directory, a broken audit trail, in-doubt work it refuses to resolve
 * (`Refused`, since 0.2.0). `reason` decides the exit code.
 *
 * @since 0.1.0
 * @category errors
 */
export const CliError: typeof errors.CliError = errors.CliError

/**
 * @since 0.1.0
 * @category errors
 */
export type CliError = errors.CliError

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The principals directory: who may vote through the CLI, as the identity
 * system knows them. A JSON array of `Identity.ResolvedPrincipal`
 * (`{ "id", "roles", "tenant"?, "status" }`), ids unique. The CLI votes
 * with `Identity.fromDirectory` over it.
 *
 * @since 0.1.0
 * @category models
 */
export const Principals: typeof principals.Principals = principals.Principals

/**
 * The name of the environment variable holding the path of the principals
 * directory, when `--principals` is not given.
 *
 * @since 0.1.0
 * @category constants
 */
export const principalsEnv: typeof principals.principalsEnv = principals.principalsEnv

/**
 * What `gavel audit verify --json` prints: `Audit.verify`'s result.
 *
 * @since 0.1.0
 * @category models
 */
export const Verification: typeof auditVerification = auditVerification

/**
 * What the CLI prints of durable work (`work list --json`, and the `work`
 * member of an approval's JSON in `approvals show --json` / `list --json`
 * when it releases some): a continuation without its sealed data, claim
 * fence and idempotency key. `result` is the encoded success when
 * `succeeded`; `error` the failure's tag or reason code when `failed` or
 * `in_doubt`.
 *
 * @since 0.2.0
 * @category models
 */
export const Work: typeof workModel = workModel

// -----------------------------------------------------------------------------
// commands
// -----------------------------------------------------------------------------

/**
 * The command tree: `gavel approvals list|show|approve|reject`,
 * `gavel work list|resolve`, `gavel audit verify`, `gavel rules check|explain`.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("gavel").pipe(
  Command.withDescription(
    "Approve, reject and inspect gavel approvals; inspect and resolve durable work; verify the audit trail; check and explain rules"
  ),
  Command.withSubcommands([approvals, work, audit, rules])
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
    [Span.text("3"), HelpDoc.p("no approval with this id (work resolve: no durable work for it)")],
    [
      Span.text("4"),
      HelpDoc.p(
        "refused: already resolved or expired, not an approver, already voted, or the requester (separation of duties); work not in doubt"
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

/**
 * The version `gavel --version` prints: the version of `@gavel/adapters`
 * (a test keeps the two equal).
 *
 * @since 0.2.0
 * @category running
 */
export const version = "0.2.0"

const cli = Command.run(command, {
  name: "gavel",
  version,
  summary: Span.text("governance approvals and audit"),
  footer: exitCodesHelp
})

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
    Effect.catchAllCause(errors.report)
  )
