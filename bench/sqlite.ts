/**
 * The SQLite approval store: create → approve → consume cycles per second
 * through `@gavel/adapters/Sqlite`, with `synchronous` FULL and NORMAL, next
 * to the floor: raw better-sqlite3 doing the same work by hand, synchronously
 * — the same SQL statements on the same tables in the same transactions (an
 * autocommit INSERT, then for the vote and the consume `BEGIN IMMEDIATE`,
 * SELECT, UPDATE … WHERE version, COMMIT), the same schema codecs
 * (`Schema.parseJson(Approval.ApprovalRequest)`: every row read is validated,
 * every row written is encoded) and the same pure transitions
 * (`Approval.vote`, `Approval.consume`). What separates gavel from the floor
 * is then what Effect and `@effect/sql` add around the same disk and CPU
 * work. A third row, not equivalent, shows raw better-sqlite3 with plain
 * `JSON.parse`/`JSON.stringify` and hand-written transitions (no validation,
 * no Dates): the cost of the schemas themselves.
 *
 * Each mode runs in its own temporary database per system (in
 * `os.tmpdir()`, removed afterwards); the systems' batches alternate, the
 * median of the batches after a warm-up counts, and every approval must end
 * up consumed.
 *
 * GAVEL_BENCH_SQLITE_CYCLES sets the cycles per batch for NORMAL (FULL runs
 * a tenth of them: each commit waits for the disk). In the CI quick mode
 * (GAVEL_BENCH_ROUNDS below 50) the batches are small and fewer.
 */
import * as Sqlite from "@gavel/adapters/Sqlite"
import { Approval, ApprovalStore } from "@gavel/core"
import * as Fixtures from "@gavel/testing/Fixtures"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Part, progress, quick, type Row } from "./report.js"

const NORMAL_CYCLES = Number(process.env.GAVEL_BENCH_SQLITE_CYCLES ?? (quick ? 200 : 3_000))
const BATCHES = quick ? 3 : 5
/** gavel's rate over the floor's, at least. */
const GOAL = 0.7

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
// the systems
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

/** An open database with gavel's tables, and the statements gavel's store runs, prepared. */
const rawDatabase = async (filename: string, synchronous: Sqlite.Synchronous) => {
  // The gavel layer creates the file, so every system writes the same tables and indexes.
  const creator = ManagedRuntime.make(Sqlite.layer({ filename, synchronous }))
  await creator.runPromise(Effect.void)
  await creator.dispose()
  const db = new Database(filename, { timeout: 5_000 })
  db.pragma("journal_mode = WAL")
  db.pragma(`synchronous = ${synchronous}`)
  return {
    db,
    insert: db.prepare(`INSERT INTO gavel_approvals (id, kind, status, requester, tenant, decision_id, request_id,
      correlation_id, action_hash, created_at, expires_at, resolved_at, consumed_at, version, request)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`),
    begin: db.prepare("BEGIN IMMEDIATE"),
    commit: db.prepare("COMMIT"),
    rollback: db.prepare("ROLLBACK"),
    select: db.prepare("SELECT version, request FROM gavel_approvals WHERE id = ?"),
    update: db.prepare(`UPDATE gavel_approvals SET status = ?, resolved_at = ?, consumed_at = ?, version = ?,
      request = ? WHERE id = ? AND version = ?`)
  }
}

const ApprovalJson = Schema.parseJson(Approval.ApprovalRequest)
const encodeJson = Schema.encodeSync(ApprovalJson)
const decodeJson = Schema.decodeSync(ApprovalJson)
const millis = (date: Date | null) => (date === null ? null : date.getTime())

/**
 * The floor: gavel's store written by hand on better-sqlite3, synchronous,
 * with the same statements, transactions, schema codecs and transitions.
 */
const raw = async (filename: string, synchronous: Sqlite.Synchronous): Promise<System> => {
  const { begin, commit, db, insert, rollback, select, update } = await rawDatabase(filename, synchronous)
  const transition = (
    id: string,
    f: (request: Approval.ApprovalRequest) => Either.Either<Approval.ApprovalRequest, unknown>
  ) => {
    begin.run()
    try {
      const row = select.get(id) as { version: number; request: string } | undefined
      if (row === undefined) throw new Error(`raw: ${id} not found`)
      const next = Either.getOrThrow(f(decodeJson(row.request)))
      const changed = update.run(
        next.status,
        millis(next.resolvedAt),
        millis(next.consumedAt),
        row.version + 1,
        encodeJson(next),
        id,
        row.version
      )
      if (changed.changes !== 1) throw new Error(`raw: ${id} changed under the transaction`)
      commit.run()
    } catch (error) {
      rollback.run()
      throw error
    }
  }
  return {
    cycles: async (prefix, count) => {
      for (let i = 0; i < count; i++) {
        const request = requestFor(`${prefix}-${i}`)
        insert.run(
          request.id,
          request.kind,
          request.status,
          request.requester,
          request.summary.actor.tenant ?? null,
          request.decisionId,
          request.requestId,
          request.correlationId,
          request.actionHash,
          request.createdAt.getTime(),
          request.requirement.expiresAt.getTime(),
          millis(request.resolvedAt),
          millis(request.consumedAt),
          encodeJson(request)
        )
        transition(request.id, (r) => Approval.vote(r, vote))
        transition(request.id, (r) => Approval.consume(r, request.actionHash, consumedAt))
      }
    },
    consumed: async () => countConsumed(filename),
    close: async () => void db.close()
  }
}

/**
 * Not equivalent: the same statements with plain JSON and hand-written
 * transitions on the encoded form, from a request encoded once.
 */
const rawJson = async (filename: string, synchronous: Sqlite.Synchronous): Promise<System> => {
  const { begin, commit, db, insert, select, update } = await rawDatabase(filename, synchronous)
  type Encoded = Approval.Encoded
  const template: Encoded = Schema.encodeSync(Approval.ApprovalRequest)(requestFor("template"))
  const transition = (id: string, f: (request: Encoded) => Encoded) => {
    begin.run()
    const row = select.get(id) as { version: number; request: string }
    const next = f(JSON.parse(row.request) as Encoded)
    const iso = (text: string | null) => (text === null ? null : Date.parse(text))
    const changed = update.run(
      next.status,
      iso(next.resolvedAt),
      iso(next.consumedAt),
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
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!
}

/** Cycles per batch: FULL runs a tenth of NORMAL's, each of its commits waiting for the disk. */
const perBatchFor = (synchronous: Sqlite.Synchronous): number =>
  Math.max(10, synchronous === "FULL" ? Math.floor(NORMAL_CYCLES / 10) : NORMAL_CYCLES)

const systems = [
  { name: "gavel", open: gavel },
  { name: "raw", open: raw },
  { name: "raw JSON", open: rawJson }
] as const

/** The median cycles per second of each of {@link systems}, in its order. */
const measureMode = async (synchronous: Sqlite.Synchronous, errors: Array<string>): Promise<Array<number>> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-bench-sqlite-"))
  const perBatch = perBatchFor(synchronous)
  const rates: Array<Array<number>> = systems.map(() => [])
  const opened: Array<System> = []
  try {
    for (const system of systems) {
      opened.push(await system.open(path.join(dir, `${system.name.replace(" ", "-")}.db`), synchronous))
    }
    for (let batch = 0; batch <= BATCHES; batch++) {
      // Rotate which system goes first, so that drift hits all alike.
      for (let k = 0; k < opened.length; k++) {
        const s = (batch + k) % opened.length
        const start = performance.now()
        await opened[s]!.cycles(`b${batch}`, perBatch)
        // The first batch warms up.
        if (batch > 0) rates[s]!.push((perBatch * 1000) / (performance.now() - start))
      }
    }
    for (const [s, system] of systems.entries()) {
      const consumed = await opened[s]!.consumed()
      if (consumed !== perBatch * (BATCHES + 1)) {
        errors.push(`${system.name} ${synchronous}: ${consumed} approvals consumed of ${perBatch * (BATCHES + 1)}`)
      }
    }
  } catch (error) {
    errors.push(`${synchronous}: ${String(error)}`)
  } finally {
    for (const system of opened) await system.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return rates.map(median)
}

/**
 * Measures both modes: for each, the floor (raw better-sqlite3 doing gavel's
 * work by hand), gavel's store with its goal, and the plain-JSON reference.
 * A failed cycle or an approval not consumed goes to `errors`.
 */
export const measureSqlite = async (): Promise<Part> => {
  const errors: Array<string> = []
  const rows: Array<Row> = []
  for (const synchronous of ["FULL", "NORMAL"] as const) {
    progress(`sqlite ${synchronous}: gavel and raw better-sqlite3, ${BATCHES} batches of ${perBatchFor(synchronous)} cycles`)
    const [g = NaN, r = NaN, j = NaN] = await measureMode(synchronous, errors)
    const row = (name: string, median: number, extra: Partial<Row>): Row => ({
      section: "sqlite",
      name: `${name}, ${synchronous}`,
      unit: "cycles/s",
      median,
      ratio: r / median,
      ...extra
    })
    rows.push(
      row("raw better-sqlite3, same work", r, {
        note: "the floor: the same statements, transactions, schema codecs and transitions, by hand, synchronous"
      }),
      row("gavel Sqlite ApprovalStore", g, {
        goal: { text: `≥ ${GOAL * 100}% of raw`, met: g >= GOAL * r },
        note: `${((g / r) * 100).toFixed(0)}% of raw; create → approve → consume, 3 commits per cycle, WAL`
      }),
      row("raw better-sqlite3, plain JSON", j, {
        note: "not equivalent: JSON.parse/stringify and hand-written transitions, no schema validation"
      })
    )
  }
  return { rows, errors }
}
