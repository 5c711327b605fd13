/**
 * `npm run bench`: gavel side by side with the floor and its peers
 * (../shared/BENCHMARKS.md, and the project's BENCHMARKS.md), in one process
 * run, as one table.
 *
 * Parts, in order: tools-20 (decisions/ns, with casbin and Cedar), rules
 * (decoding and compiling documents of 1k, 10k and 100k rules), async
 * (virtual latency and overhead), approvals (cycles/s in memory), sqlite
 * (cycles/s next to raw better-sqlite3), postgres (when GAVEL_DATABASE_URL
 * is set), scale (parked approvals, sweeping). Progress goes to stderr.
 *
 *     npm run bench                      the table on stdout
 *     npm run -s bench -- --json         the same rows as JSON on stdout (for tracking over time)
 *     npm run bench -- --markdown FILE   also rewrites the table between FILE's bench markers
 *
 * Exits non-zero when a system disagrees with the reference decisions or a
 * scenario goes wrong (work not run exactly once, approvals not consumed…);
 * a missed goal is reported in the table, not as a failure (the machines are
 * noisy).
 *
 * GAVEL_BENCH_ROUNDS sets the tools-20 rounds (default 300); below 50 every
 * part runs in its quick mode (CI).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import { measureApprovals } from "./approvals.js"
import { measureAsync } from "./async.js"
import { measureDecisions } from "./decisions.js"
import { measureDurable } from "./durable.js"
import { measurePostgres } from "./postgres.js"
import { type Part, progress, quick, type Row } from "./report.js"
import { measureRules } from "./rules.js"
import { measureSqlite } from "./sqlite.js"

const args = process.argv.slice(2)
const json = args.includes("--json")
const markdownAt = args.indexOf("--markdown")
const markdown = markdownAt >= 0 ? args[markdownAt + 1] : undefined
if (markdownAt >= 0 && (markdown === undefined || markdown.startsWith("--"))) {
  process.stderr.write("bench: --markdown needs a file\n")
  process.exit(2)
}
const unknown = args.filter((a, i) => a !== "--json" && a !== "--markdown" && i !== markdownAt + 1)
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown argument ${unknown[0]} (use --json, --markdown FILE)\n`)
  process.exit(2)
}

const machine = {
  node: process.version,
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  cpu: os.cpus()[0]?.model ?? "unknown",
  cores: os.cpus().length,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  loadAverageAtStart: os.loadavg()[0]!.toFixed(2)
}

const started = performance.now()
const parts: Array<Part> = []
for (
  const [name, measure] of [
    ["tools-20", measureDecisions],
    ["rules", measureRules],
    ["async", () => measureAsync(quick ? 200 : 6_000)],
    ["approvals and scale", measureApprovals],
    ["sqlite", measureSqlite],
    ["durable", measureDurable],
    ["postgres", measurePostgres]
  ] as const
) {
  const start = performance.now()
  try {
    parts.push(await measure())
  } catch (error) {
    parts.push({ rows: [], errors: [`${name}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`] })
  }
  progress(`${name} done in ${((performance.now() - start) / 1000).toFixed(1)} s`)
}
const seconds = (performance.now() - started) / 1000

const order = ["tools-20", "rules", "async", "approvals", "sqlite", "durable", "postgres", "scale"]
const rows = parts.flatMap((p) => p.rows).sort((a, b) => order.indexOf(a.section) - order.indexOf(b.section))
const errors = parts.flatMap((p) => p.errors)
const goals = rows.filter((r) => r.goal !== undefined)
const missed = goals.filter((r) => !r.goal!.met)

const figure = (x: number | undefined): string =>
  x === undefined ? "" : !Number.isFinite(x) ? "n/a" : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(Math.abs(x) >= 10 ? 1 : 2)

const ratio = (x: number | undefined): string => (x === undefined ? "" : `${x >= 100 ? x.toFixed(0) : x.toFixed(1)}x`)

const goalText = (row: Row): string =>
  row.goal === undefined ? "" : `${row.goal.text} ${row.goal.met ? "(met)" : "(MISSED)"}`

const header = `gavel bench, ${new Date().toISOString().slice(0, 10)}: Node ${machine.node}, ${machine.cores} x ${machine.cpu}, ` +
  `${machine.memoryGiB} GiB, load ${machine.loadAverageAtStart} at start; ${seconds.toFixed(0)} s${quick ? " (quick mode)" : ""}`

const table = (): string => {
  const lines = [header, ""]
  const head = `${"row".padEnd(46)}${"median".padStart(11)}${"p99".padStart(11)}  ${"unit".padEnd(12)}${"x floor".padStart(8)}  goal / note`
  let section = ""
  for (const row of rows) {
    if (row.section !== section) {
      if (section !== "") lines.push("")
      section = row.section
      lines.push(`[${section}]`, head)
    }
    const tail = [goalText(row), row.note ?? ""].filter((s) => s !== "").join("; ")
    lines.push(
      `${row.name.padEnd(46)}${figure(row.median).padStart(11)}${figure(row.p99).padStart(11)}  ${row.unit.padEnd(12)}${
        ratio(row.ratio).padStart(8)
      }  ${tail}`.trimEnd()
    )
  }
  lines.push("", `goals: ${goals.length - missed.length} met, ${missed.length} missed`)
  return lines.join("\n")
}

const markdownTable = (): string => {
  const lines = [
    `Taken ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (${seconds.toFixed(0)} s): Node ${machine.node}, ` +
    `${machine.platform}, ${machine.cores} x ${machine.cpu}, ${machine.memoryGiB} GiB, load average ${machine.loadAverageAtStart} at start.`,
    "",
    "| section | row | median | p99 | unit | x floor | goal / note |",
    "|---|---|---:|---:|---|---:|---|"
  ]
  for (const row of rows) {
    const tail = [goalText(row), row.note ?? ""].filter((s) => s !== "").join("; ")
    lines.push(
      `| ${row.section} | ${row.name} | ${figure(row.median)} | ${figure(row.p99)} | ${row.unit} | ${ratio(row.ratio)} | ${tail} |`
    )
  }
  return lines.join("\n")
}

if (json) {
  console.log(JSON.stringify({ takenAt: new Date().toISOString(), seconds, quick, machine, rows, errors }, null, 2))
} else {
  console.log(table())
}
if (markdown !== undefined) {
  const begin = "<!-- bench:begin -->"
  const end = "<!-- bench:end -->"
  const text = fs.readFileSync(markdown, "utf8")
  const from = text.indexOf(begin)
  const to = text.indexOf(end)
  if (from < 0 || to < from) {
    errors.push(`--markdown: ${markdown} has no ${begin} … ${end} markers`)
  } else {
    fs.writeFileSync(markdown, `${text.slice(0, from + begin.length)}\n${markdownTable()}\n${text.slice(to)}`)
    progress(`wrote the table into ${markdown}`)
  }
}
for (const error of errors) process.stderr.write(`bench: ERROR ${error}\n`)
if (errors.length > 0) process.exitCode = 1
