/**
 * The `gavel` CLI, run as the real binary (`node --import tsx bin/gavel.ts`)
 * against SQLite files the tests seed through `Sqlite.layer` and
 * `Governance`. Loading the binary under tsx costs one to a few seconds of
 * CPU (tsx's loader sees each of its ~700 modules), so each test spawns a
 * few, concurrently where they are independent, and runs its remaining cases
 * through `Cli.run` in this process (same commands, output captured). The
 * tests that spawn have a longer limit than the default 30 s: on a loaded
 * machine the limit must still only catch hangs.
 */
import * as AuditFile from "@gavel/adapters/AuditFile"
import * as Cli from "@gavel/adapters/Cli"
import * as Sqlite from "@gavel/adapters/Sqlite"
import {
  Action,
  Approval,
  ApprovalStore,
  Audit,
  AuditSink,
  ContinuationStore,
  Decision,
  Durable,
  Encryption,
  Governance,
  Identity,
  Policy,
  PolicySet,
  Rules
} from "@gavel/core"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as ConfigProvider from "effect/ConfigProvider"
import type * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { encryption, request } from "@gavel/testing/Fixtures"
import { listing } from "./fixtures/sqlite.js"

// -----------------------------------------------------------------------------
// running the binary
// -----------------------------------------------------------------------------

/** The limit of a test that spawns the binary several times. */
const TIMEOUT = 60_000

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, "../../..")
const bin = path.join(repoRoot, "packages/adapters/bin/gavel.ts")

interface Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** The inherited environment without a principals directory: each test says whether it has one. */
const baseEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  delete env.GAVEL_PRINCIPALS
  return env
}

const gavel = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = baseEnv()): Promise<Result> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", bin, ...args],
      { cwd: repoRoot, env, timeout: TIMEOUT },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
        resolve({ code, stdout, stderr })
      }
    )
  })

/**
 * The same command tree run in this process by `Cli.run`, with its output
 * captured and `env` as the only configuration: the cases that need no
 * process of their own (the binary's wiring — exit code, stdout, stderr — is
 * exercised by the spawned runs).
 */
const inProcess = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Result> => {
  let stdout = ""
  let stderr = ""
  const text = (items: ReadonlyArray<unknown>) => items.map(String).join(" ") + "\n"
  return Effect.runPromise(
    Effect.gen(function*() {
      const current = yield* Effect.console
      const captured: Console.Console = Object.assign(Object.create(current), {
        log: (...items: ReadonlyArray<unknown>) => Effect.sync(() => void (stdout += text(items))),
        error: (...items: ReadonlyArray<unknown>) => Effect.sync(() => void (stderr += text(items)))
      })
      const code = yield* Cli.run(args).pipe(
        Effect.withConsole(captured),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
        Effect.provide(NodeContext.layer)
      )
      return { code, stdout, stderr }
    })
  )
}

/** Asserts the error is exactly one line on stderr, starting with `gavel: `, and returns it. */
const errorLine = (result: Result): string => {
  const lines = result.stderr.split("\n").filter((line) => line !== "")
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(/^gavel: /)
  expect(result.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/)
  return lines[0]!
}

// -----------------------------------------------------------------------------
// databases
// -----------------------------------------------------------------------------

const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-cli-"))
  dirs.push(dir)
  return dir
}

/** Who may vote: the test's identity system, and the CLI's principals file. */
const bob: Action.Principal = { id: "bob", kind: "human", roles: ["finance"], attributes: {} }

const principals: ReadonlyArray<Identity.ResolvedPrincipal> = [
  { id: "alice", roles: ["finance"], status: "active" },
  { id: "bob", roles: ["finance"], status: "active" },
  { id: "carol", roles: ["finance"], tenant: "acme", status: "active" },
  { id: "dave", roles: ["ops"], status: "active" },
  { id: "eve", roles: ["finance"], status: "suspended" },
  { id: "mallory", roles: ["finance"], tenant: "globex", status: "active" }
]

const IdentityLive = Layer.succeed(
  Identity.Identity,
  Identity.Identity.of({
    resolve: (id) => Effect.succeed(Option.fromNullable(principals.find((p) => p.id === id))),
    canApprove: () => Effect.succeed(true)
  })
)

/** Payments need `metadata.quorum` approvals from finance. */
const policySet = PolicySet.unsafeMake({
  id: "payments",
  version: "1",
  policy: Policy.make("large-payments", (action) =>
    Decision.requireApproval(
      { code: "payment.large", message: "Large payments need finance approval" },
      { quorum: Number(action.metadata.quorum ?? "1"), roles: ["finance"], timeout: "1 hour" }
    ))
})

const payment = (options: { readonly actor?: string; readonly quorum?: number; readonly tenant?: string } = {}) =>
  Action.make({
    actor: {
      id: options.actor ?? "agent-7",
      kind: options.actor === undefined ? "agent" : "human",
      tenant: options.tenant ?? "acme"
    },
    kind: "tool",
    name: "payments.transfer",
    resource: { type: "account", id: "acct-9" },
    payload: { amount: 25_000 },
    metadata: { quorum: String(options.quorum ?? 1) }
  })

type Services = ApprovalStore.ApprovalStore | AuditSink.AuditSink | Governance.Governance

/** Runs `effect` with the runtime on the database at `filename` (created if needed), closing it afterwards. */
const withGovernance = <A, E>(filename: string, effect: Effect.Effect<A, E, Services>): Promise<A> =>
  Effect.runPromise(
    Effect.provide(
      effect,
      Governance.layer({ policySet, sweepInterval: "1 hour", pollInterval: "50 millis" }).pipe(
        Layer.provideMerge(Sqlite.layer({ filename })),
        Layer.provide(IdentityLive)
      )
    )
  )

/** Opens an approval for each action; returns their ids. */
const submit = (filename: string, actions: ReadonlyArray<Action.Action>): Promise<ReadonlyArray<string>> =>
  withGovernance(
    filename,
    Effect.forEach(actions, (action) =>
      Effect.flatMap(Governance.Governance, (governance) => governance.submit(action)).pipe(
        Effect.flatMap((submission) =>
          submission._tag === "Pending"
            ? Effect.succeed(submission.approvalId)
            : Effect.dieMessage(`expected Pending, got ${submission._tag}`)
        )
      ))
  )

const readApproval = (filename: string, id: string): Promise<Approval.ApprovalRequest> =>
  withGovernance(filename, Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.get(id)))

const readTrail = (filename: string): Promise<ReadonlyArray<Audit.AuditEvent>> =>
  withGovernance(filename, Effect.flatMap(AuditSink.AuditSink, (sink) => sink.read()))

/** A database with approvals to vote on and the principals file of {@link principals}. */
const setup = () => {
  const dir = tempDir()
  const db = path.join(dir, "gavel.db")
  const file = path.join(dir, "principals.json")
  fs.writeFileSync(file, JSON.stringify(principals))
  return { dir, db, principalsFile: file }
}

// -----------------------------------------------------------------------------
// tests
// -----------------------------------------------------------------------------

describe("gavel --version", () => {
  it("prints the version of @gavel/adapters", async () => {
    const manifest = JSON.parse(
      fs.readFileSync(path.join(repoRoot, "packages/adapters/package.json"), "utf8")
    ) as { readonly version: string }
    expect(Cli.version).toBe(manifest.version)
    const result = await inProcess(["--version"])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toBe(manifest.version)
  })
})

describe("gavel approvals list / show", () => {
  it("lists pending approvals as a table and as JSON, filters by status, and shows one", async () => {
    const { db } = setup()
    const [one, two, three] = await submit(db, [payment({ quorum: 2 }), payment({ tenant: "globex" }), payment()])
    await withGovernance(
      db,
      Effect.zipRight(
        // Due but not swept yet: created last January, expired an hour later.
        Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.create(request({ id: "apr_due" }))),
        Effect.flatMap(Governance.Governance, (governance) => governance.approve(three!, bob, "looks right"))
      )
    )

    const [table, asJson, filtered, shown] = await Promise.all([
      gavel(["approvals", "list", "--db", db]),
      gavel(["approvals", "list", "--db", db, "--json"]),
      inProcess(["approvals", "list", "--db", db, "--json", "--status", "approved", "--tenant", "acme", "--limit=1"]),
      gavel(["approvals", "show", "--db", db, three!])
    ])

    expect(table.code, table.stderr).toBe(0)
    const rows = table.stdout.trimEnd().split("\n")
    expect(rows[0]).toMatch(/^ID\s+KIND\s+STATUS\s+VOTES\s+REQUESTER\s+TENANT\s+EXPIRES\s+WORK\s+ACTION$/)
    expect(rows.slice(1).map((row) => row.split(/\s{2,}/).slice(0, 6))).toEqual([
      // Oldest first: the fixture was created in January.
      ["apr_due", "approval", "expired (due)", "0/1", "alice", "acme"],
      [one, "approval", "pending", "0/2", "agent-7", "acme"],
      [two, "approval", "pending", "0/1", "agent-7", "globex"]
    ])
    expect(rows[2]).toContain("tool payments.transfer on account/acct-9")

    expect(asJson.code, asJson.stderr).toBe(0)
    const listed = JSON.parse(asJson.stdout) as ReadonlyArray<Approval.Encoded>
    expect(listed.map((a) => a.id)).toEqual(["apr_due", one, two])
    // The JSON is the encoding of ApprovalRequest: it decodes back.
    const decoded = await Effect.runPromise(Effect.forEach(listed, (a) => Approval.decodeUnknown(a)))
    expect(decoded[1]).toMatchObject({ status: "pending", requirement: { quorum: 2 } })
    expect((JSON.parse(filtered.stdout) as ReadonlyArray<Approval.Encoded>).map((a) => a.id)).toEqual([three])

    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toContain(`id         ${three}`)
    expect(shown.stdout).toMatch(/status\s+approved \(1\/1\)/)
    expect(shown.stdout).toMatch(/requester\s+agent-7 \(agent, tenant acme\)/)
    expect(shown.stdout).toMatch(/action\s+tool payments\.transfer on account\/acct-9/)
    expect(shown.stdout).toMatch(/quorum\s+1\/1 \(separation of duties\)/)
    expect(shown.stdout).toMatch(/authority\s+roles finance/)
    expect(shown.stdout).toMatch(/expires\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/)
    expect(shown.stdout).toMatch(/resolved\s+\d{4}-/)
    expect(shown.stdout).toContain("reasons:\n  - payment.large: Large payments need finance approval")
    expect(shown.stdout).toMatch(/votes:\n {2}- bob approved at \S+: "looks right"/)
  }, TIMEOUT)
})

describe("gavel approvals approve / reject", () => {
  it("says so when an earlier vote stops counting because its voter left the principals directory", async () => {
    const { dir, db, principalsFile } = setup()
    const [id] = await submit(db, [payment({ quorum: 3 })])
    const first = await inProcess(["approvals", "approve", "--db", db, "--as", "bob", id!], {
      GAVEL_PRINCIPALS: principalsFile
    })
    expect(first).toMatchObject({ code: 0, stdout: "pending (1/3 approvals)\n" })
    const withoutBob = path.join(dir, "without-bob.json")
    fs.writeFileSync(withoutBob, JSON.stringify(principals.filter((p) => p.id !== "bob")))
    const second = await inProcess(["approvals", "approve", "--db", db, "--as", "alice", id!], {
      GAVEL_PRINCIPALS: withoutBob
    })
    expect(second).toMatchObject({
      code: 0,
      stdout: "pending (1/3 approvals)\nbob's vote no longer counts: not in the principals directory\n",
      stderr: ""
    })
    // With --json, stdout stays one JSON document and the notice goes to stderr; bob's is not said again.
    const onlyCarol = path.join(dir, "only-carol.json")
    fs.writeFileSync(onlyCarol, JSON.stringify(principals.filter((p) => p.id === "carol")))
    const third = await inProcess(["approvals", "approve", "--db", db, "--as", "carol", "--json", id!], {
      GAVEL_PRINCIPALS: onlyCarol
    })
    expect(third.code).toBe(0)
    expect(JSON.parse(third.stdout)).toMatchObject({ status: "pending" })
    expect(third.stderr).toBe("alice's vote no longer counts: not in the principals directory\n")
    expect((await readApproval(db, id!)).votes.map((v) => [v.approver, v.counted])).toEqual([
      ["bob", false],
      ["alice", false],
      ["carol", true]
    ])
  }, TIMEOUT)

  it("counts two different approvers toward a quorum of 2 and audits each vote", async () => {
    const { db, principalsFile } = setup()
    const [id] = await submit(db, [payment({ quorum: 2 })])
    const vote = (as: string, env?: NodeJS.ProcessEnv) =>
      gavel(["approvals", "approve", "--db", db, "--as", as, "--note", `ok from ${as}`, id!], env)

    // The directory from GAVEL_PRINCIPALS, as well as from --principals.
    const first = await vote("bob", { ...baseEnv(), GAVEL_PRINCIPALS: principalsFile })
    expect(first, first.stderr).toMatchObject({ code: 0, stdout: "pending (1/2 approvals)\n", stderr: "" })
    const again = await inProcess(["approvals", "approve", "--db", db, "--as", "bob", id!], {
      GAVEL_PRINCIPALS: principalsFile
    })
    expect(again.code).toBe(4)
    expect(errorLine(again)).toBe(`gavel: "bob" already voted on approval "${id}"`)
    const second = await gavel([
      "approvals", "approve", "--db", db, "--principals", principalsFile, "--as", "carol", "--json", id!
    ])
    expect(second.code, second.stderr).toBe(0)
    expect(JSON.parse(second.stdout)).toMatchObject({
      id,
      status: "approved",
      votes: [
        { approver: "bob", verdict: "approve", note: "ok from bob", counted: true },
        { approver: "carol", verdict: "approve", note: null, counted: true }
      ]
    })
    const late = await inProcess([
      "approvals", "reject", "--db", db, "--principals", principalsFile, "--as", "alice", id!
    ])
    expect(late.code).toBe(4)
    expect(errorLine(late)).toBe(`gavel: approval "${id}" is already approved`)

    expect((await readApproval(db, id!)).status).toBe("approved")
    const trail = await readTrail(db)
    expect(trail.filter((e) => e.approvalId === id).map((e) => [e.type, e.actor])).toEqual([
      ["approval.requested", "agent-7"],
      ["approval.voted", "bob"],
      ["approval.voted", "carol"],
      ["approval.resolved", "carol"]
    ])
    expect(Audit.verify(trail)._tag).toBe("Intact")
  }, TIMEOUT)

  it("rejects with a note, acknowledges an acknowledgment, and refuses what it must", async () => {
    const { db, principalsFile } = setup()
    const [toReject, selfRequested, outside] = await submit(db, [
      payment(),
      payment({ actor: "alice" }),
      payment({ tenant: "acme" })
    ])
    const now = new Date()
    await withGovernance(
      db,
      Effect.flatMap(ApprovalStore.ApprovalStore, (store) =>
        Effect.all([
          store.create(request({ id: "apr_due" })),
          store.create({
            ...request({ id: "apr_ack", kind: "acknowledgment", createdAt: now }),
            requirement: {
              quorum: 1,
              authority: { roles: ["finance"], principals: [] },
              separationOfDuties: false,
              expiresAt: new Date(now.getTime() + 3_600_000)
            }
          })
        ]))
    )
    const args = (verb: "approve" | "reject", as: string, id: string, ...more: ReadonlyArray<string>) => [
      "approvals", verb, "--db", db, "--principals", principalsFile, "--as", as, ...more, id
    ]

    const [rejected, self, notApprover, missing, acknowledged, unknown, due] = await Promise.all([
      gavel(args("reject", "bob", toReject!, "--note", "too big")),
      gavel(args("approve", "alice", selfRequested!)),
      gavel(args("approve", "dave", outside!)),
      gavel(args("approve", "bob", "apr_nope")),
      inProcess(args("approve", "bob", "apr_ack")),
      inProcess(args("approve", "zed", outside!)),
      inProcess(args("approve", "bob", "apr_due"))
    ])

    expect(rejected, rejected.stderr).toMatchObject({ code: 0, stdout: "rejected (by bob)\n" })
    expect(acknowledged, acknowledged.stderr).toMatchObject({ code: 0, stdout: "acknowledged\n" })
    expect([self.code, notApprover.code, unknown.code, due.code]).toEqual([4, 4, 4, 4])
    expect(errorLine(self)).toBe(`gavel: "alice" requested approval "${selfRequested}" and may not vote on it`)
    expect(errorLine(notApprover)).toBe(
      `gavel: "dave" may not vote on approval "${outside}": outside the approval's authority`
    )
    expect(errorLine(unknown)).toBe(
      `gavel: "zed" may not vote on approval "${outside}": not in the principals directory`
    )
    expect(missing.code).toBe(3)
    expect(errorLine(missing)).toBe(`gavel: approval "apr_nope" not found`)
    expect(errorLine(due)).toMatch(/^gavel: approval "apr_due" expired at 2026-01-01T10:00:00Z$/)

    const stored = await readApproval(db, toReject!)
    expect(stored.status).toBe("rejected")
    expect(stored.votes).toMatchObject([{ approver: "bob", verdict: "reject", note: "too big" }])
    expect((await readApproval(db, outside!)).votes).toEqual([])
    const trail = await readTrail(db)
    expect(trail.filter((e) => e.type === "approval.voted").map((e) => [e.approvalId, e.actor]).sort()).toEqual(
      [["apr_ack", "bob"], [toReject, "bob"]].sort()
    )
  }, TIMEOUT)
})

describe("Cli.Principals", () => {
  it("refuses a directory that lists a principal twice, naming the second entry", () => {
    const result = Schema.decodeUnknownEither(Cli.Principals)([principals[1], principals[0], principals[1]])
    if (Either.isRight(result)) return expect.fail("a duplicate id was accepted")
    expect(ParseResult.ArrayFormatter.formatErrorSync(result.left)).toEqual([
      { _tag: "Type", path: [2, "id"], message: 'principal "bob" is listed more than once' }
    ])
  })
})

describe("gavel: configuration errors", () => {
  it("fails closed on the principals directory, with one line and exit code 5 (2 for usage)", async () => {
    const { dir, db, principalsFile } = setup()
    const [id] = await submit(db, [payment()])
    const badJson = path.join(dir, "bad.json")
    fs.writeFileSync(badJson, "[{\"id\": \"bob\",")
    const badEntry = path.join(dir, "bad-entry.json")
    fs.writeFileSync(badEntry, JSON.stringify([principals[0], { id: "bob", roles: ["finance"], status: "boss" }]))

    const results = await Promise.all([
      gavel(["approvals", "approve", "--db", db, "--as", "bob", id!]),
      gavel(["approvals", "approve", "--db", db, "--as", "bob", "--principals", badJson, id!]),
      inProcess(["approvals", "approve", "--db", db, "--as", "bob", "--principals", badEntry, id!]),
      inProcess(["approvals", "approve", "--principals", principalsFile, id!])
    ])
    const [noPrincipals, syntax, entry, usage] = results

    for (const result of results.slice(0, 3)) expect(result.code, result.stderr).toBe(5)
    expect(errorLine(noPrincipals)).toBe(
      "gavel: no principals directory: pass --principals FILE or set GAVEL_PRINCIPALS"
    )
    expect(errorLine(syntax)).toMatch(new RegExp(`^gavel: principals file "${badJson}": .*JSON`))
    expect(errorLine(entry)).toBe(
      `gavel: principals file "${badEntry}": [1].status: Expected "active" | "suspended" | "disabled", actual "boss"`
    )
    // Nothing was voted.
    expect((await readApproval(db, id!)).votes).toEqual([])

    // Usage errors are @effect/cli's own messages.
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain("--db")
  }, TIMEOUT)
})

describe("gavel: a database path it refuses", () => {
  it("is refused with one line and exit code 5, and left exactly as it was: no byte, no mtime, no file beside it", async () => {
    const { db: source, principalsFile } = setup()
    const [id] = await submit(source, [payment()])
    const gavelBytes = fs.readFileSync(source)
    const pages = gavelBytes.length / 4096

    /** A directory of its own for each case: `make` puts the path there. */
    const place = (make: (file: string) => void, name = "gavel.db") => {
      const dir = tempDir()
      const file = path.join(dir, name)
      make(file)
      return { dir, file }
    }
    const foreign = (wal: boolean) => (file: string) => {
      const raw = new Database(file)
      if (wal) raw.pragma("journal_mode = WAL")
      raw.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
      raw.close()
    }
    const vote = (verdict: "approve" | "reject") => (file: string) =>
      ["approvals", verdict, "--db", file, "--as", "bob", "--principals", principalsFile, id!]

    const cases = [
      {
        name: "a truncated gavel database",
        ...place((file) => fs.writeFileSync(file, gavelBytes.subarray(0, 8192))),
        args: (file: string) => ["approvals", "list", "--db", file],
        spawn: true,
        line: (file: string) =>
          `"${file}" is not a SQLite database: it is truncated: its header counts ${pages} pages of 4096 bytes, the file has 8192 bytes`
      },
      {
        name: "a file of random bytes",
        ...place((file) => fs.writeFileSync(file, randomBytes(4096))),
        args: (file: string) => ["audit", "verify", "--db", file],
        line: (file: string) => `"${file}" is not a SQLite database: it does not begin with the SQLite header`
      },
      {
        name: "a text file",
        ...place((file) => fs.writeFileSync(file, "milk, eggs, bread\n".repeat(300)), "notes.txt"),
        args: (file: string) => ["approvals", "show", "--db", file, "apr_1"],
        line: (file: string) => `"${file}" is not a SQLite database: it does not begin with the SQLite header`
      },
      {
        name: "an empty file",
        ...place((file) => fs.writeFileSync(file, "")),
        args: (file: string) => ["approvals", "show", "--db", file, "apr_1"],
        line: (file: string) => `No gavel database at "${file}": it is empty`
      },
      {
        name: "a directory",
        ...place((file) => fs.mkdirSync(file)),
        args: (file: string) => ["approvals", "list", "--db", file],
        line: (file: string) => `"${file}" is not a SQLite database: it is a directory`
      },
      {
        name: "a path that does not exist",
        ...place(() => {}),
        args: (file: string) => ["approvals", "list", "--db", file],
        line: (file: string) => `No gavel database at "${file}": the file does not exist`
      },
      {
        name: "a path in a directory that does not exist",
        ...place(() => {}, path.join("nowhere", "gavel.db")),
        args: (file: string) => ["audit", "verify", "--db", file],
        line: (file: string) => `No gavel database at "${file}": its directory does not exist`
      },
      {
        name: "another application's database",
        ...place(foreign(false), "crm.db"),
        args: (file: string) => ["approvals", "list", "--db", file],
        spawn: true,
        line: (file: string) =>
          `"${file}" is a SQLite database of another application: it has tables (customers) and no gavel application id`
      },
      {
        name: "another application's WAL database",
        ...place(foreign(true), "crm.db"),
        args: vote("reject"),
        line: (file: string) =>
          `"${file}" is a SQLite database of another application: it has tables and no gavel application id`
      },
      {
        name: "a gavel database of a newer schema",
        ...place((file) => {
          fs.writeFileSync(file, gavelBytes)
          const raw = new Database(file)
          raw.prepare("INSERT INTO gavel_migrations (migration_id, name) VALUES (?, ?)").run(
            Sqlite.schemaVersion + 1,
            "from_the_future"
          )
          raw.close()
        }),
        args: vote("approve"),
        line: (file: string) =>
          `"${file}" was written by a newer gavel: its schema version is ${
            Sqlite.schemaVersion + 1
          }, this gavel knows up to ${Sqlite.schemaVersion}`
      }
    ]
    const before = cases.map((c) => listing(c.dir))
    const results = await Promise.all(
      cases.map((c) => ("spawn" in c && c.spawn ? gavel : inProcess)(c.args(c.file)))
    )
    cases.forEach((c, i) => {
      const result = results[i]!
      expect(result.code, `${c.name}: ${result.stderr}`).toBe(5)
      expect(errorLine(result), c.name).toBe(`gavel: ${c.line(c.file)}`)
      expect(result.stdout, c.name).toBe("")
      expect(listing(c.dir), c.name).toEqual(before[i])
    })
    expect(fs.readdirSync(cases[4]!.file)).toEqual([])
  }, TIMEOUT)
})

describe("gavel audit verify", () => {
  it("exits 0 on an intact trail and 1 on a tampered one, naming the event", async () => {
    const { db } = setup()
    const [id] = await submit(db, [payment()])
    await withGovernance(db, Effect.flatMap(Governance.Governance, (governance) => governance.approve(id!, bob)))
    const trail = await readTrail(db)
    const head = trail[trail.length - 1]!

    const intact = await gavel(["audit", "verify", "--db", db, "--anchor", `${head.sequence}:${head.hash}`])
    expect(intact, intact.stderr).toMatchObject({
      code: 0,
      stdout: `intact: ${trail.length} events, head ${head.sequence}:${head.hash}\n`
    })

    // Blame the vote on someone else: rewrite the voted event with raw SQL.
    const voted = trail.find((e) => e.type === "approval.voted")!
    const raw = new Database(db)
    raw.prepare("UPDATE gavel_audit_events SET actor = 'mallory' WHERE sequence = ?").run(voted.sequence)
    raw.close()

    const [broken, brokenJson] = await Promise.all([
      gavel(["audit", "verify", "--db", db, "--anchor", `${head.sequence}:${head.hash}`]),
      gavel(["audit", "verify", "--db", db, "--json"])
    ])
    expect(broken.code).toBe(1)
    expect(broken.stdout).toBe(
      `broken at event ${voted.sequence} (edited): event ${voted.sequence} does not match its hash\n`
    )
    expect(broken.stderr).toBe("")
    expect(brokenJson.code).toBe(1)
    expect(JSON.parse(brokenJson.stdout)).toEqual({
      _tag: "Broken",
      sequence: voted.sequence,
      problem: "edited",
      message: `event ${voted.sequence} does not match its hash`
    })
  }, TIMEOUT)
})

describe("gavel audit verify --trail", () => {
  it("names the events that wait in the database's audit outbox for a trail file, with exit code 7", async () => {
    const { db, dir } = setup()
    const trailFile = path.join(dir, "audit.jsonl")
    // AuditFile beside the SQLite store, refusing the approval's event: it waits in the outbox.
    const refusing = Layer.effect(
      AuditSink.AuditSink,
      Effect.map(AuditFile.make({ path: trailFile }), (file) => ({
        ...file,
        append: (entry: Audit.Entry) =>
          entry.type === "approval.requested"
            ? Effect.fail(new Approval.StoreError({ operation: "append", detail: "the disk is full" }))
            : file.append(entry)
      }))
    ).pipe(Layer.provide(NodeContext.layer))
    const id = await Effect.runPromise(Effect.scoped(Effect.provide(
      Effect.flatMap(Governance.Governance, (governance) => governance.submit(payment())).pipe(
        Effect.map((submission) => (submission._tag === "Pending" ? submission.approvalId : "none"))
      ),
      Governance.layer({ policySet, sweepInterval: "1 hour", pollInterval: "1 hour" }).pipe(
        Layer.provideMerge(Layer.merge(Sqlite.layer({ filename: db }), refusing)),
        Layer.provide(IdentityLive)
      )
    )))

    const [text, asJson] = await Promise.all([
      inProcess(["audit", "verify", "--db", db, "--trail", trailFile]),
      inProcess(["audit", "verify", "--db", db, "--trail", trailFile, "--json"])
    ])
    expect(text.code, text.stderr).toBe(Cli.ExitCode.AuditUndelivered)
    const lines = text.stdout.split("\n")
    expect(lines[0]).toMatch(/^intact: 1 events, head 1:[0-9a-f]{64}$/)
    expect(lines[1]).toBe("undelivered: 1 event waits in the audit outbox")
    expect(lines[2]).toMatch(
      new RegExp(`^  approval\\.requested:${id} since \\S+Z \\(approval ${id}\\), 1 attempt: .*the disk is full$`)
    )
    expect(text.stderr).toBe("")
    expect(asJson.code).toBe(Cli.ExitCode.AuditUndelivered)
    expect(JSON.parse(asJson.stdout)).toMatchObject({
      _tag: "Intact",
      count: 1,
      undelivered: {
        count: 1,
        events: [{ eventId: `approval.requested:${id}`, type: "approval.requested", approvalId: id, attempts: 1 }]
      }
    })
    // The database's own trail, verified: intact and empty, the event still named.
    const own = await inProcess(["audit", "verify", "--db", db])
    expect(own.code).toBe(Cli.ExitCode.AuditUndelivered)
    expect(own.stdout.split("\n")[0]).toBe("intact: the trail is empty")
  }, TIMEOUT)
})

// -----------------------------------------------------------------------------
// durable work
// -----------------------------------------------------------------------------

const refund = Durable.handler({
  name: "payments.refund",
  version: 2,
  input: Schema.Struct({ invoice: Schema.String }),
  success: Schema.Struct({ receipt: Schema.String }),
  run: () => Effect.dieMessage("the CLI tests never run the work")
})

/**
 * A database with durable work: `inDoubt` and `done` approved by bob, then
 * claimed, started with their approval's consume, and completed (in doubt,
 * succeeded) through the continuation store as a worker would; `waiting`
 * still pending; `plain` an approval without work.
 */
const durableSetup = async () => {
  const { db, principalsFile } = setup()
  const ids = await Effect.runPromise(
    Effect.gen(function*() {
      const durable = yield* Durable.Durable
      const governance = yield* Governance.Governance
      const pending = (key: string) =>
        Effect.flatMap(
          durable.submit(payment(), refund, { invoice: key }, { idempotencyKey: key }),
          (s) => s._tag === "Pending" ? Effect.succeed(s.approvalId) : Effect.dieMessage(`expected Pending, got ${s._tag}`)
        )
      const inDoubt = yield* pending("invoice-1")
      const done = yield* pending("invoice-2")
      const waiting = yield* pending("invoice-3")
      const plain = yield* Effect.flatMap(governance.submit(payment()), (s) =>
        s._tag === "Pending" ? Effect.succeed(s.approvalId) : Effect.dieMessage(`expected Pending, got ${s._tag}`))
      yield* governance.approve(inDoubt, bob)
      yield* governance.approve(done, bob)
      const continuations = yield* ContinuationStore.ContinuationStore
      const store = yield* ApprovalStore.ApprovalStore
      const now = new Date()
      const claimed = yield* continuations.claim({ owner: "wrk-test", now, limit: 10 })
      expect(claimed.map((c) => c.approvalId).sort()).toEqual([inDoubt, done].sort())
      for (const c of claimed) {
        const approval = yield* store.get(c.approvalId)
        yield* continuations.atomically(
          Effect.zipRight(continuations.start(c.approvalId, c.fence, now), store.consume(c.approvalId, approval.actionHash, now))
        )
        yield* continuations.complete(
          c.approvalId,
          c.fence,
          c.approvalId === inDoubt ? { state: "in_doubt", error: "lease_expired" } : { state: "succeeded", result: { receipt: "r-42" } },
          now
        )
      }
      const sealed = (yield* continuations.get(waiting)).sealed
      return { inDoubt, done, waiting, plain, sealed }
    }).pipe(
      Effect.provide(
        // No worker runs the work: the first pass finds nothing approved, the next is an hour away.
        Durable.layer({ handlers: [refund], owner: "wrk-test", pollInterval: "1 hour" }).pipe(
          Layer.provideMerge(
            Governance.layer({ policySet, sweepInterval: "1 hour", pollInterval: "1 hour" }).pipe(
              Layer.provideMerge(Sqlite.layer({ filename: db })),
              Layer.provide(IdentityLive)
            )
          ),
          Layer.provide(Encryption.layer(encryption))
        )
      )
    )
  )
  return { db, principalsFile, ...ids }
}

describe("gavel work / durable approvals", () => {
  it("shows the work an approval releases, lists it by state, and never prints its sealed data", async () => {
    const { db, done, inDoubt, plain, sealed, waiting } = await durableSetup()
    expect(sealed).toEqual(expect.any(String))

    const [shownDoubt, shownDone, shownWaiting, shownPlain, asJson, listAll, queue, approvals, none] = await Promise.all([
      inProcess(["approvals", "show", "--db", db, inDoubt]),
      inProcess(["approvals", "show", "--db", db, done]),
      inProcess(["approvals", "show", "--db", db, "--json", waiting]),
      inProcess(["approvals", "show", "--db", db, "--json", plain]),
      inProcess(["work", "list", "--db", db, "--json"]),
      inProcess(["work", "list", "--db", db]),
      inProcess(["work", "list", "--db", db, "--state", "in_doubt", "--json"]),
      inProcess(["approvals", "list", "--db", db, "--status", "all"]),
      inProcess(["work", "list", "--db", db, "--state", "failed"])
    ])

    expect(shownDoubt.code, shownDoubt.stderr).toBe(0)
    const workOf = (text: string) => text.slice(text.indexOf("work:\n"))
    expect(workOf(shownDoubt.stdout)).toMatch(
      /^work:\n {2}handler +payments\.refund@2 \(atMostOnce\)\n {2}state +in_doubt\n {2}attempts +1 of at most 1\n {2}reason +lease_expired\n {2}created +\S+Z\n {2}updated +\S+Z\n$/
    )
    expect(shownDoubt.stdout).toMatch(/status\s+consumed \(approved 1\/1\)/)
    expect(workOf(shownDone.stdout)).toContain("state     succeeded\n  attempts  1 of at most 1\n  result    {\"receipt\":\"r-42\"}\n")

    // --json: the approval's encoding with a `work` member, without the sealed data.
    expect(shownWaiting.code, shownWaiting.stderr).toBe(0)
    const waitingJson = JSON.parse(shownWaiting.stdout) as Approval.Encoded & { readonly work: typeof Cli.Work.Encoded }
    expect(waitingJson).toMatchObject({
      id: waiting,
      status: "pending",
      work: {
        approvalId: waiting,
        handler: "payments.refund",
        handlerVersion: 2,
        delivery: "atMostOnce",
        state: "waiting",
        attempts: 0,
        result: null,
        error: null
      }
    })
    expect(Object.keys(waitingJson.work)).not.toContain("sealed")
    expect(Either.isRight(Schema.decodeUnknownEither(Cli.Work)(waitingJson.work))).toBe(true)
    for (const out of [shownDoubt, shownDone, shownWaiting, asJson, listAll]) {
      expect(out.stdout).not.toContain(sealed!)
      expect(out.stdout).not.toContain("invoice-")
    }
    expect(JSON.parse(shownPlain.stdout)).not.toHaveProperty("work")

    // Oldest first; --state in_doubt is the operator's queue.
    expect((JSON.parse(asJson.stdout) as ReadonlyArray<typeof Cli.Work.Encoded>).map((w) => [w.approvalId, w.state]))
      .toEqual([[inDoubt, "in_doubt"], [done, "succeeded"], [waiting, "waiting"]])
    const rows = listAll.stdout.trimEnd().split("\n")
    expect(rows[0]).toMatch(/^APPROVAL\s+HANDLER\s+STATE\s+ATTEMPTS\s+UPDATED$/)
    expect(rows.slice(1).map((row) => row.split(/\s{2,}/).slice(0, 4))).toEqual([
      [inDoubt, "payments.refund@2", "in_doubt", "1/1"],
      [done, "payments.refund@2", "succeeded", "1/1"],
      [waiting, "payments.refund@2", "waiting", "0/1"]
    ])
    expect((JSON.parse(queue.stdout) as ReadonlyArray<typeof Cli.Work.Encoded>).map((w) => w.approvalId)).toEqual([
      inDoubt
    ])
    expect(none).toMatchObject({ code: 0, stdout: "No failed work.\n" })

    // approvals list: the WORK column.
    const byId = new Map(
      approvals.stdout.trimEnd().split("\n").slice(1).map((row) => {
        const cells = row.split(/\s{2,}/)
        return [cells[0]!, cells[7]!] as const
      })
    )
    expect([byId.get(inDoubt), byId.get(done), byId.get(waiting), byId.get(plain)]).toEqual([
      "in_doubt",
      "succeeded",
      "waiting",
      "-"
    ])
  }, TIMEOUT)

  it("resolves in-doubt work as an eligible principal, audited in the trail, and refuses what it must", async () => {
    const { db, done, inDoubt, principalsFile, waiting } = await durableSetup()
    const resolve = (as: string, id: string, ...more: ReadonlyArray<string>) => [
      "work", "resolve", "--db", db, "--principals", principalsFile, "--as", as, ...more, id
    ]
    const [notInDoubt, stillWaiting, unknown, outside, suspended, stranger, both, neither] = await Promise.all([
      inProcess(resolve("bob", done, "--failed")),
      inProcess(resolve("bob", waiting, "--succeeded")),
      inProcess(resolve("bob", "apr_nope", "--failed")),
      inProcess(resolve("dave", inDoubt, "--failed")),
      inProcess(resolve("eve", inDoubt, "--failed")),
      inProcess(resolve("zed", inDoubt, "--failed")),
      inProcess(resolve("bob", inDoubt, "--failed", "--succeeded")),
      inProcess(resolve("bob", inDoubt))
    ])
    expect(notInDoubt.code).toBe(4)
    expect(errorLine(notInDoubt)).toBe(`gavel: the work of approval "${done}" is succeeded, not in doubt`)
    expect(stillWaiting.code).toBe(4)
    expect(errorLine(stillWaiting)).toBe(`gavel: the work of approval "${waiting}" is waiting, not in doubt`)
    expect(unknown.code).toBe(3)
    expect(errorLine(unknown)).toBe(`gavel: no durable work for approval "apr_nope"`)
    expect([outside.code, suspended.code, stranger.code]).toEqual([4, 4, 4])
    expect(errorLine(outside)).toBe(
      `gavel: "dave" may not resolve the work of approval "${inDoubt}": outside the approval's authority`
    )
    expect(errorLine(suspended)).toBe(
      `gavel: "eve" may not resolve the work of approval "${inDoubt}": suspended in the principals directory`
    )
    expect(errorLine(stranger)).toBe(
      `gavel: "zed" may not resolve the work of approval "${inDoubt}": not in the principals directory`
    )
    expect([both.code, neither.code]).toEqual([2, 2])

    // Nothing was written by the refusals; the binary resolves it.
    const resolved = await gavel(resolve("bob", inDoubt, "--failed", "--note", "the bank never received it"))
    expect(resolved, resolved.stderr).toMatchObject({
      code: 0,
      stdout: `${inDoubt}: payments.refund@2 resolved as failed by bob\n`,
      stderr: ""
    })
    const again = await inProcess(resolve("alice", inDoubt, "--succeeded", "--json"))
    expect(again.code).toBe(4)
    expect(errorLine(again)).toBe(`gavel: the work of approval "${inDoubt}" is failed, not in doubt`)

    const [shown, queue] = await Promise.all([
      inProcess(["approvals", "show", "--db", db, "--json", inDoubt]),
      inProcess(["work", "list", "--db", db, "--state", "in_doubt"])
    ])
    expect(JSON.parse(shown.stdout)).toMatchObject({ work: { state: "failed", error: "resolved_failed" } })
    expect(queue.stdout).toBe("No in_doubt work.\n")

    const trail = await readTrail(db)
    const resolutions = trail.filter((e) => e.type === "execution.resolved")
    expect(resolutions).toHaveLength(1)
    expect(resolutions[0]).toMatchObject({
      approvalId: inDoubt,
      actor: "bob",
      eventId: `execution.resolved:${inDoubt}`,
      data: { state: "failed", note: "the bank never received it" }
    })
    expect(Audit.verify(trail)._tag).toBe("Intact")
  }, TIMEOUT)
})

describe("gavel across processes", () => {
  it("an approval cast by the CLI resumes work parked in another process, exactly once", async () => {
    const { db, principalsFile } = setup()
    let runs = 0
    const outcome = await withGovernance(
      db,
      Effect.gen(function*() {
        const governance = yield* Governance.Governance
        const store = yield* ApprovalStore.ApprovalStore
        const parked = yield* Effect.fork(
          governance.enforce(payment(), () => Effect.sync(() => ++runs))
        )
        const [pending] = yield* store.listPending().pipe(
          Effect.filterOrFail((list) => list.length > 0),
          Effect.retry(Schedule.spaced("20 millis"))
        )
        const cli = yield* Effect.promise(() =>
          gavel(["approvals", "approve", "--db", db, "--principals", principalsFile, "--as", "bob", pending!.id])
        )
        const result = yield* Fiber.join(parked)
        const events = yield* (yield* AuditSink.AuditSink).read()
        return { cli, result, events, id: pending!.id }
      })
    )
    expect(outcome.cli, outcome.cli.stderr).toMatchObject({ code: 0, stdout: "approved (1/1)\n" })
    expect(outcome.result).toBe(1)
    expect(runs).toBe(1)
    const types = outcome.events.filter((e) => e.approvalId === outcome.id || e.type.startsWith("execution."))
      .map((e) => e.type)
    // One order across the two processes: the CLI's vote commits with its
    // "approval.voted" and "approval.resolved" events (one transaction), so the
    // parked process cannot see the approval approved before they are written.
    expect(types).toEqual([
      "approval.requested",
      "approval.voted",
      "approval.resolved",
      "approval.consumed",
      "execution.started",
      "execution.succeeded"
    ])
    expect(Audit.verify(outcome.events)._tag).toBe("Intact")
    expect((await readApproval(db, outcome.id)).status).toBe("consumed")
  }, TIMEOUT)
})

// -----------------------------------------------------------------------------
// rules
// -----------------------------------------------------------------------------

describe("gavel rules check / explain", () => {
  const rulesYaml = `id: payments
version: "2026-11"
combine: first-applicable
default: deny
rules:
  - id: shell-blocked
    match: { kind: tool, name: "shell.*" }
    effect: deny
    reason: { code: tool.blocked, message: Shell access is not allowed }
  - id: large-payment
    match: { name: "payments.*", roles: [agent] }
    when: { field: payload.amount, gt: 1000 }
    effect: pending
    reason: { code: payment.large, message: Large payments need finance approval }
    approval: { quorum: 2, roles: [finance], timeoutSeconds: 1800 }
  - id: payments
    match: { name: "payments.*" }
    effect: allow
`
  const invalidYaml = `id: payments
version: "2026-11"
combine: first-applicable
rules:
  - id: a
    effect: permit
  - id: b
    when: { field: name, gt: 5 }
    effect: deny
    reason: { code: x, message: y }
  - id: b
    effect: allow
`
  const files = () => {
    const dir = tempDir()
    const write = (name: string, text: string) => {
      const file = path.join(dir, name)
      fs.writeFileSync(file, text)
      return file
    }
    return {
      valid: write("payments.yaml", rulesYaml),
      invalid: write("broken.yaml", invalidYaml),
      payment: write("payment.json", JSON.stringify({
        actor: { id: "agent-1", kind: "agent", roles: ["agent"], tenant: "acme" },
        kind: "tool",
        name: "payments.transfer",
        payload: { amount: 5000 }
      })),
      search: write("search.json", JSON.stringify({ actor: { id: "agent-1", kind: "agent" }, kind: "tool", name: "search" })),
      badAction: write("bad.json", JSON.stringify({ actor: { id: "agent-1", kind: "robot" }, kind: "tool", name: "x" })),
      dir
    }
  }

  it("checks a document: exit 0 and a summary when valid, exit 6 and every problem on its own line when not", async () => {
    const f = files()
    const ok = await inProcess(["rules", "check", f.valid])
    expect(ok.code).toBe(0)
    expect(ok.stderr).toBe("")
    expect(ok.stdout).toMatch(/^valid: payments 2026-11: 3 rules, first-applicable, default deny\npolicyHash [0-9a-f]{64}\n$/)

    const bad = await inProcess(["rules", "check", f.invalid])
    expect(bad.code).toBe(Cli.ExitCode.InvalidRules)
    expect(bad.stderr).toBe("")
    expect(bad.stdout.trimEnd().split("\n")).toEqual([
      `${f.invalid}: rule "a" at rules[0].effect (line 6, column 13): unknown effect "permit"; expected one of allow, deny, warn, pending, require-approval, require-acknowledgment, escalate, defer`,
      `${f.invalid}: rule "b" at rules[1].when.gt (line 8, column 30): name is a string: gt compares numbers, which only payload fields may hold`,
      `${f.invalid}: rule "b" at rules[2].id (line 11, column 9): duplicate rule id "b" (first used by rules[1])`,
      "invalid: 3 problems"
    ])

    const asJson = await inProcess(["rules", "check", "--json", f.invalid])
    expect(asJson.code).toBe(Cli.ExitCode.InvalidRules)
    const parsed = JSON.parse(asJson.stdout)
    expect(parsed.valid).toBe(false)
    expect(parsed.problems.map((p: Rules.Problem) => p.path)).toEqual(["rules[0].effect", "rules[1].when.gt", "rules[2].id"])

    const missing = await inProcess(["rules", "check", path.join(f.dir, "nope.yaml")])
    expect(missing.code).toBe(Cli.ExitCode.Unavailable)
    expect(errorLine(missing)).toBe(`gavel: rules file "${path.join(f.dir, "nope.yaml")}" does not exist`)
  })

  it("refuses a document nested 100,000 deep on one line each, exit 6, no stack trace", async () => {
    const f = files()
    const deep = path.join(f.dir, "deep.json")
    const depth = 100_000
    const head = `{"id":"p","version":"1","combine":"first-applicable","rules":[{"id":"r","effect":"deny",` +
      `"reason":{"code":"c","message":"m"},"when":`
    const not = `{"not":`
    fs.writeFileSync(deep, `${head}${not.repeat(depth)}{"field":"name","eq":"x"}${"}".repeat(depth)}}]}`)
    const result = await inProcess(["rules", "check", deep])
    expect(result.code).toBe(Cli.ExitCode.InvalidRules)
    expect(result.stderr).toBe("")
    // Refused at the condition under the 77th "not", 81 objects deep, at its column.
    expect(result.stdout.trimEnd().split("\n")).toEqual([
      `${deep}: rule "r" at rules[0].when${".not".repeat(9)}…(68 more) (line 1, column ${
        head.length + not.length * 77 + 1
      }): nested too deeply: objects and lists nest at most 80 levels in a rules document`,
      "invalid: 1 problem"
    ])
  })

  it("refuses a JSON document with a duplicate key (the last one would win): exit 6, the key's path and position", async () => {
    const f = files()
    const file = path.join(f.dir, "dup.json")
    fs.writeFileSync(
      file,
      `{"id":"p","version":"1","combine":"first-applicable","rules":[\n` +
        `{"id":"ok","match":{"name":"files.read"},"effect":"deny","reason":{"code":"c","message":"m"},"effect":"allow"}]}`
    )
    const result = await inProcess(["rules", "check", file])
    expect(result.code).toBe(Cli.ExitCode.InvalidRules)
    expect(result.stderr).toBe("")
    expect(result.stdout.trimEnd().split("\n")).toEqual([
      `${file}: rule "ok" at rules[0].effect (line 2, column 94): duplicate key "effect" (first at line 2, column 42)`,
      "invalid: 1 problem"
    ])
  })

  it("explains an action: the rules that matched, the one that decided, the record", async () => {
    const f = files()
    const human = await inProcess(["rules", "explain", "--action", f.payment, f.valid])
    expect(human.code).toBe(0)
    const lines = human.stdout.split("\n")
    expect(lines).toContain("matched:")
    expect(lines).toContain("  - large-payment: RequireApproval (payment.large)")
    expect(lines).toContain("  - payments: Allow")
    expect(lines).toContain("decided   by large-payment")
    expect(lines).toContain("decision  RequireApproval")
    expect(human.stdout).toMatch(/approval {2}quorum 2, roles finance, separation of duties, expires \d{4}-/)
    expect(lines).toContain(
      "  - payment.large: Large payments need finance approval [payments/large-payment]"
    )

    const asJson = await inProcess(["rules", "explain", "--json", "--action", f.payment, f.valid])
    expect(asJson.code).toBe(0)
    const explanation = Schema.decodeUnknownSync(Schema.parseJson(Rules.Explanation))(asJson.stdout)
    expect(explanation.matched.map((m) => m.ruleId)).toEqual(["large-payment", "payments"])
    expect(explanation.decidedBy).toEqual(["large-payment"])
    expect(explanation.record.requiredApprovals).toBe(2)
    expect(explanation.record.policyId).toBe("payments")

    const defaulted = await inProcess(["rules", "explain", "--action", f.search, f.valid])
    expect(defaulted.stdout).toContain("decided   by the default (no rule applied)")
    expect(defaulted.stdout).toContain("rules.default")

    const badAction = await inProcess(["rules", "explain", "--action", f.badAction, f.valid])
    expect(badAction.code).toBe(Cli.ExitCode.Unavailable)
    expect(errorLine(badAction)).toMatch(/^gavel: action file ".*bad\.json": actor\.kind: /)

    // Well typed, but no action gavel can govern (two keys equal after NFC): refused on one line, never exit 70.
    const colliding = path.join(path.dirname(f.badAction), "colliding.json")
    fs.writeFileSync(colliding, JSON.stringify({
      actor: { id: "agent-7", kind: "agent" },
      kind: "tool",
      name: "payments.transfer",
      metadata: { "caf\u00e9": "a", "cafe\u0301": "b" }
    }))
    const collision = await inProcess(["rules", "explain", "--action", colliding, f.valid])
    expect(collision.code).toBe(Cli.ExitCode.Unavailable)
    expect(errorLine(collision)).toMatch(/^gavel: action file ".*colliding\.json": metadata\["café"\]: .*duplicate_key/)

    // Nested 3,000 deep where a string belongs: refused on the limits before the decode (and its message) walks it.
    const deep = path.join(path.dirname(f.badAction), "deep.json")
    fs.writeFileSync(
      deep,
      `{"actor":{"id":"agent-7","kind":"agent"},"kind":"tool","name":${"[".repeat(3_000)}${"]".repeat(3_000)}}`
    )
    const tooDeep = await inProcess(["rules", "explain", "--action", deep, f.valid])
    expect(tooDeep.code).toBe(Cli.ExitCode.Unavailable)
    expect(errorLine(tooDeep)).toBe(
      `gavel: action file "${deep}": name${"[0]".repeat(63)}: nested deeper than 64 levels (too_deep)`
    )

    const invalid = await inProcess(["rules", "explain", "--action", f.payment, f.invalid])
    expect(invalid.code).toBe(Cli.ExitCode.InvalidRules)
    expect(invalid.stdout.trimEnd().split("\n")).toHaveLength(4)
  })

  it("runs as the binary: exit code 6 and the problems on stdout", async () => {
    const f = files()
    const result = await gavel(["rules", "check", f.invalid])
    expect(result.code).toBe(6)
    expect(result.stderr).toBe("")
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe("invalid: 3 problems")
  }, TIMEOUT)
})
