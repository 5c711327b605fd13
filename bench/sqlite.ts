/**
 * The SQLite approval store: create → approve → consume cycles per second
 * through `@gavel/adapters/Sqlite`, with `synchronous` FULL and NORMAL, next
 * to raw better-sqlite3 running the same SQL statements on the same tables
 * in the same transactions (an autocommit INSERT, then for the vote and the
 * consume `BEGIN IMMEDIATE`, SELECT, UPDATE … WHERE version, COMMIT), with
 * plain `JSON.parse`/`JSON.stringify` where gavel decodes and encodes with
 * its schemas. The ratio is gavel's time over raw's: what Effect, @effect/sql
 * and the schemas add around the same disk work.
 *
 * Each mode runs in its own temporary database (in `os.tmpdir()`, removed
 * afterwards); gavel and raw batches alternate, the median of the batches
 * after a warm-up counts, and every approval must end up consumed.
 *
 * GAVEL_BENCH_SQLITE_CYCLES sets the cycles per batch for NORMAL (FULL runs
 * a tenth of them: each commit waits for the disk). With GAVEL_BENCH_ROUNDS
 * below 50 (the CI quick mode) the batches are small and fewer.
 */
import * as Sqlite from "@gavel/adapters/Sqlite"
import { Approval, ApprovalStore } from "@gavel/core"
import * as Fixtures from "@gavel/testing/Fixtures"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const QUICK = Number(process.env.GAVEL_BENCH_ROUNDS ?? 300) < 50
const NORMAL_CYCLES = Number(process.env.GAVEL_BENCH_SQLITE_CYCLES ?? (QUICK ? 200 : 3_000))
const BATCHES = QUICK ? 3 : 5

/** One row of the table: a system, a `synchronous` mode, its cycles per second. */
interface Row {
  readonly name: string
  readonly synchronous: Sqlite.Synchronous
  readonly cyclesPerSecond: number
  /** gavel's time per cycle over raw's, in the same mode (1 for raw itself). */
  readonly ratio: number
}

// -----------------------------------------------------------------------------
// fixtures
// -----------------------------------------------------------------------------

const createdAt = new Date(Fixtures.epochMillis)
const expiresAt = new Date(createdAt.getTime() + 3_600_000)
const votedAt = new Date(createdAt.getTime() + 60_000)
const consumedAt = new Date(createdAt.getTime() + 120_000)

const requestFor = (id: string): Approval.ApprovalRequest => Fixtures.request({ id, createdAt, expiresAt })

const vote: Approval.VoteInput = { approver: "approver-1", verdict: "approve", note: null, at: votedAt }

// -----------------------------------------------------------------------------
// the two systems
// -----------------------------------------------------------------------------

interface System {
  /** Runs `count` cycles with ids from `prefix`. */
  readonly cycles: (prefix: string, count: number) => Promise<void>
  readonly consumed: () => Promise<number>
  readonly close: () => Promise<void>
}

const gavel = async (filename: string, synchronous: Sqlite.Synchronous): Promise<System> => {
  const runtime = ManagedRuntime.make(Sqlite.layer({ filename, synchronous }))
  const store = await runtime.runPromise(ApprovalStore.ApprovalStore)
  return {
    cycles: (prefix, count) =>
      runtime.runPromise(Effect.gen(function*() {
        for (let i = 0; i < count; i++) {
          const request = requestFor(`${prefix}-${i}`)
          yield* store.create(request)
          yield* store.vote(request.id, vote)
          yield* store.consume(request.id, request.actionHash, consumedAt)
        }
      })),
    consumed: async () => countConsumed(filename),
    close: () => runtime.dispose()
  }
}

const countConsumed = (filename: string): number => {
  const db = new Database(filename, { readonly: true })
  try {
    const row = db.prepare("SELECT count(*) AS n FROM gavel_approvals WHERE status = 'consumed'").get() as { n: number }
    return row.n
  } finally {
    db.close()
  }
}

const encode = Schema.encodeSync(Approval.ApprovalRequest)

/** The same statements in the same transactions, by hand. */
const raw = async (filename: string, synchronous: Sqlite.Synchronous): Promise<System> => {
  // The gavel layer creates the file, so both systems write the same tables and indexes.
  const creator = ManagedRuntime.make(Sqlite.layer({ filename, synchronous }))
  await creator.runPromise(Effect.void)
  await creator.dispose()
  const db = new Database(filename, { timeout: 5_000 })
  db.pragma("journal_mode = WAL")
  db.pragma(`synchronous = ${synchronous}`)
  const template = encode(requestFor("template"))
  const insert = db.prepare(`INSERT INTO gavel_approvals (id, kind, status, requester, tenant, decision_id, request_id,
    correlation_id, action_hash, created_at, expires_at, resolved_at, consumed_at, version, request)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`)
  const begin = db.prepare("BEGIN IMMEDIATE")
  const commit = db.prepare("COMMIT")
  const select = db.prepare("SELECT version, request FROM gavel_approvals WHERE id = ?")
  const update = db.prepare(`UPDATE gavel_approvals SET status = ?, resolved_at = ?, consumed_at = ?, version = ?,
    request = ? WHERE id = ? AND version = ?`)
  type Encoded = Approval.Encoded
  const transition = (id: string, f: (request: Encoded) => Encoded) => {
    begin.run()
    const row = select.get(id) as { version: number; request: string }
    const next = f(JSON.parse(row.request) as Encoded)
    const millis = (iso: string | null) => (iso === null ? null : Date.parse(iso))
    const changed = update.run(
      next.status,
      millis(next.resolvedAt),
      millis(next.consumedAt),
      row.version + 1,
      JSON.stringify(next),
      id,
      row.version
    )
    if (changed.changes !== 1) throw new Error(`raw: ${id} changed under the transaction`)
    commit.run()
  }
  return {
    cycles: async (prefix, count) => {
      for (let i = 0; i < count; i++) {
        const id = `${prefix}-${i}`
        const request: Encoded = {
          ...template,
          id,
          decisionId: `dec_${id}`,
          requestId: `req_${id}`,
          correlationId: `corr_${id}`,
          actionHash: `hash_${id}`
        }
        insert.run(
          id,
          request.kind,
          request.status,
          request.requester,
          request.summary.actor.tenant,
          request.decisionId,
          request.requestId,
          request.correlationId,
          request.actionHash,
          createdAt.getTime(),
          expiresAt.getTime(),
          null,
          null,
          JSON.stringify(request)
        )
        transition(id, (r) => ({
          ...r,
          votes: [...r.votes, { ...vote, at: vote.at.toISOString(), counted: true }],
          status: "approved",
          resolvedAt: vote.at.toISOString()
        }))
        transition(id, (r) => ({ ...r, status: "consumed", consumedAt: consumedAt.toISOString() }))
      }
    },
    consumed: async () => countConsumed(filename),
    close: async () => void db.close()
  }
}

// -----------------------------------------------------------------------------
// measuring
// -----------------------------------------------------------------------------

const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const measureMode = async (
  synchronous: Sqlite.Synchronous,
  errors: Array<string>
): Promise<readonly [gavel: number, raw: number]> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-bench-sqlite-"))
  const perBatch = Math.max(10, synchronous === "FULL" ? Math.floor(NORMAL_CYCLES / 10) : NORMAL_CYCLES)
  const rates: [Array<number>, Array<number>] = [[], []]
  const opened: Array<System> = []
  try {
    const systems = [
      await gavel(path.join(dir, "gavel.db"), synchronous),
      await raw(path.join(dir, "raw.db"), synchronous)
    ] as const
    opened.push(...systems)
    for (let batch = 0; batch <= BATCHES; batch++) {
      // Alternate which system goes first, so that drift hits both alike.
      for (const s of batch % 2 === 0 ? [0, 1] as const : [1, 0] as const) {
        const start = performance.now()
        await systems[s].cycles(`b${batch}`, perBatch)
        // The first batch warms up.
        if (batch > 0) rates[s].push((perBatch * 1000) / (performance.now() - start))
      }
    }
    for (const [s, name] of [[0, "gavel"], [1, "raw"]] as const) {
      const consumed = await systems[s].consumed()
      if (consumed !== perBatch * (BATCHES + 1)) {
        errors.push(`${name} ${synchronous}: ${consumed} approvals consumed of ${perBatch * (BATCHES + 1)}`)
      }
    }
  } catch (error) {
    errors.push(`${synchronous}: ${String(error)}`)
  } finally {
    for (const system of opened) await system.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return [rates[0].length === 0 ? NaN : median(rates[0]), rates[1].length === 0 ? NaN : median(rates[1])]
}

/**
 * Measures both modes and prints their table; returns false (after printing
 * why) if a cycle failed or an approval was not consumed.
 */
export const measureSqlite = async (): Promise<boolean> => {
  const errors: Array<string> = []
  const rows: Array<Row> = []
  for (const synchronous of ["FULL", "NORMAL"] as const) {
    const [g, r] = await measureMode(synchronous, errors)
    rows.push({ name: "raw better-sqlite3, same SQL", synchronous, cyclesPerSecond: r, ratio: 1 })
    rows.push({ name: "gavel Sqlite ApprovalStore", synchronous, cyclesPerSecond: g, ratio: r / g })
  }
  console.log("")
  console.log(
    `sqlite: create → approve → consume (3 commits per cycle), WAL, ${NORMAL_CYCLES} cycles per NORMAL batch ` +
      `(FULL: a tenth), median of ${BATCHES} batches; temp files in ${os.tmpdir()}`
  )
  console.log(`${"system".padEnd(40)}${"sync".padStart(8)}${"cycles/s".padStart(12)}${"x raw".padStart(8)}`)
  for (const row of rows) {
    console.log(
      `${row.name.padEnd(40)}${row.synchronous.padStart(8)}${row.cyclesPerSecond.toFixed(0).padStart(12)}${
        row.ratio.toFixed(2).padStart(8)
      }`
    )
  }
  for (const error of errors) console.error(`sqlite: ${error}`)
  return errors.length === 0
}
