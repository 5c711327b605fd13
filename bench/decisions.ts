/**
 * The tools-20 rows (../shared/BENCHMARKS.md): every system decides the same
 * 1,000 requests, is checked against the reference decisions on all of them
 * before its time counts, and is timed in the same process run.
 *
 * Rows are interleaved: each round runs every system once over the 1,000
 * requests, in an order that rotates from round to round, so that the drift
 * of a shared, noisy machine hits every row alike. A row's figures are the
 * median and p99 of its per-round ns/decision, and the median of its
 * per-round ratio to the floor measured in the same round. The peers are
 * hundreds of times slower than the rest, and each runs in a child process
 * of its own, interleaved there with the floor and the headline gavel row
 * over a tenth of the rounds: their ratios are against the floor of the same
 * round in the same process. (Node 20's V8 sometimes aborts with "Fatal
 * error: unreachable code" in its deoptimizer when casbin and Cedar are
 * timed in one process with the rest; a child that dies that way is run
 * once more, and the rest of the bench is unaffected.)
 *
 * GAVEL_BENCH_ROUNDS sets the number of rounds (default 300).
 */
import { Decision, Policy, PolicySet } from "@gavel/core"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { makeCasbin, makeCedar, type PeerSystem } from "./peers.js"
import { type Part, progress, quantile, type Row } from "./report.js"
import { actions, expected, makeRulesSet, makeScopedSet, makeSet, plainLoop, policy } from "./tools20.js"

const ROUNDS = Number(process.env.GAVEL_BENCH_ROUNDS ?? 300)
const WARMUP = Math.max(20, Math.floor(ROUNDS / 5))
/** Peers run a tenth of the rounds (at least 3), after a few warm-up rounds. */
const PEER_ROUNDS = Math.max(3, Math.floor(ROUNDS / 10))
const PEER_WARMUP = 3

const GOAL_FULL_RECORD_NS = 1_000
const GOAL_VS_CASBIN = 50
const GOAL_VS_CEDAR = 200

interface System {
  readonly name: string
  readonly decide: (i: number) => boolean
  readonly equivalent: true | string
  /** The goal of a gavel row: at most this many ns per decision. */
  readonly goalNs?: number
}

const gavel = (name: string, decide: (i: number) => boolean, goalNs?: number): System =>
  goalNs === undefined ? { name, decide, equivalent: true } : { name, decide, equivalent: true, goalNs }

const floor: System = gavel("plain JS loop (floor)", (i) => plainLoop(actions[i]!))

/** The gavel row the peers' goals are stated against: the full record, each rule scoped to its tool. */
const HEADLINE = "gavel sync, full record, forAction"
const headline = (): System =>
  gavel(HEADLINE, (i) => Decision.canProceed(PolicySet.evaluateSync(scoped, actions[i]!).decision), GOAL_FULL_RECORD_NS)
const scoped = makeScopedSet("untimed")

const peers = {
  casbin: { make: makeCasbin, goalFaster: GOAL_VS_CASBIN },
  cedar: { make: async () => makeCedar(), goalFaster: GOAL_VS_CEDAR }
} satisfies Record<string, { readonly make: () => Promise<PeerSystem>; readonly goalFaster: number }>

type PeerName = keyof typeof peers

/** How many of the 1,000 requests `system` decides otherwise than the reference (a throw counts), and the first. */
const disagreements = (system: System): { readonly count: number; readonly first: number } => {
  let count = 0
  let first = -1
  for (let i = 0; i < expected.length; i++) {
    let decided: boolean | undefined
    try {
      decided = system.decide(i)
    } catch {
      decided = undefined
    }
    if (decided !== expected[i] && count++ === 0) first = i
  }
  return { count, first }
}

/**
 * Runs `rounds` rounds after `warmup` ones, every system once per round over
 * the 1,000 requests, in an order that rotates from round to round; returns
 * each system's ns/decision per counted round.
 */
const timeRounds = (
  systems: ReadonlyArray<System>,
  warmup: number,
  rounds: number,
  onRound?: (counted: number) => void
): Array<Array<number>> => {
  let sink = 0
  const n = expected.length
  const samples = systems.map(() => [] as Array<number>)
  for (let round = 0; round < warmup + rounds; round++) {
    for (let k = 0; k < systems.length; k++) {
      const s = (round + k) % systems.length
      const decide = systems[s]!.decide
      const start = performance.now()
      for (let i = 0; i < n; i++) if (decide(i)) sink++
      const ns = ((performance.now() - start) * 1e6) / n
      if (round >= warmup) samples[s]!.push(ns)
    }
    if (round >= warmup) onRound?.(round - warmup + 1)
  }
  if (sink < 0) progress(String(sink))
  return samples
}

const perRound = (xs: ReadonlyArray<number>, ys: ReadonlyArray<number>) => xs.map((x, i) => x / ys[i]!)

/** What a peer's child process reports on stdout. */
interface PeerReport {
  readonly name: string
  readonly equivalent: true | string
  readonly disagreements: { readonly count: number; readonly first: number }
  /** floor, headline, peer: ns/decision per round. */
  readonly samples: ReadonlyArray<ReadonlyArray<number>>
}

/** The child's side: build the peer, check it, time it next to the floor and the headline row. */
const runPeer = async (name: PeerName): Promise<PeerReport> => {
  const peer = await peers[name].make()
  const system: System = { name: peer.name, decide: peer.decide, equivalent: peer.equivalent }
  const found = disagreements(system)
  const samples = found.count > 0 && peer.equivalent === true
    ? []
    : timeRounds([floor, headline(), system], PEER_WARMUP, PEER_ROUNDS)
  return { name: peer.name, equivalent: peer.equivalent, disagreements: found, samples }
}

const spawnPeer = (name: PeerName): Promise<PeerReport> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "peer", name], {
      stdio: ["ignore", "pipe", "pipe"],
      env: process.env
    })
    let out = ""
    let err = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code, signal) => {
      if (code === 0) {
        try {
          resolve(JSON.parse(out) as PeerReport)
        } catch (error) {
          reject(new Error(`${name}: unreadable report (${String(error)})`))
        }
      } else {
        const why = err.split("\n").find((line) => /Fatal error|Error/.test(line)) ?? err.trim().slice(0, 300)
        reject(new Error(`${name}: the child process ended with ${signal ?? `code ${code}`}: ${why}`))
      }
    })
  })

const measurePeer = async (name: PeerName): Promise<PeerReport> => {
  try {
    return await spawnPeer(name)
  } catch (error) {
    progress(`tools-20: ${String(error)}; running ${name} once more`)
    return spawnPeer(name)
  }
}

export const measureDecisions = async (): Promise<Part> => {
  const untimed = makeSet("untimed")
  const timed = makeSet("timed")
  const fromRules = makeRulesSet("untimed")
  const systems: ReadonlyArray<System> = [
    floor,
    gavel("gavel sync, bare decision", (i) => Decision.canProceed(Policy.evaluateSync(policy, actions[i]!))),
    gavel(
      "gavel sync, full record, 20 name checks",
      (i) => Decision.canProceed(PolicySet.evaluateSync(untimed, actions[i]!).decision),
      GOAL_FULL_RECORD_NS
    ),
    headline(),
    gavel(
      "gavel rules document, full record",
      (i) => Decision.canProceed(PolicySet.evaluateSync(fromRules, actions[i]!).decision),
      GOAL_FULL_RECORD_NS
    ),
    gavel(
      "gavel sync, record + timed explain",
      (i) => Decision.canProceed(PolicySet.evaluateSync(timed, actions[i]!).decision)
    ),
    gavel(
      "gavel effectful path (Effect.runSync)",
      (i) => Decision.canProceed(Effect.runSync(PolicySet.evaluate(untimed, actions[i]!)).decision)
    )
  ]

  const errors: Array<string> = []
  for (const system of systems) {
    const found = disagreements(system)
    if (found.count > 0) {
      errors.push(`${system.name}: disagrees with the reference on ${found.count} requests (first: request ${found.first})`)
    }
  }
  if (errors.length > 0) return { rows: [], errors }

  progress(`tools-20: ${ROUNDS} rounds after ${WARMUP} warm-up rounds`)
  const samples = timeRounds(systems, WARMUP, ROUNDS, (counted) => {
    if (counted % 100 === 0) progress(`tools-20: round ${counted} of ${ROUNDS}`)
  })
  const rows: Array<Row> = systems.map((system, s): Row => ({
    section: "tools-20",
    name: system.name,
    unit: "ns/decision",
    median: quantile(samples[s]!, 0.5),
    p99: quantile(samples[s]!, 0.99),
    ratio: quantile(perRound(samples[s]!, samples[0]!), 0.5),
    goal: system.goalNs === undefined
      ? undefined
      : { text: `≤ ${system.goalNs} ns`, met: quantile(samples[s]!, 0.5) <= system.goalNs },
    note: s === 0 ? "the floor" : undefined
  }))

  for (const name of Object.keys(peers) as Array<PeerName>) {
    progress(`tools-20: ${name}, in a child process: ${PEER_ROUNDS} rounds next to the floor and "${HEADLINE}"`)
    let report: PeerReport
    try {
      report = await measurePeer(name)
    } catch (error) {
      errors.push(`tools-20: ${String(error)}`)
      continue
    }
    const { count, first } = report.disagreements
    if (count > 0 && report.equivalent === true) {
      errors.push(`${report.name}: disagrees with the reference on ${count} requests (first: request ${first})`)
      continue
    }
    const [floorSamples, headlineSamples, peerSamples] = report.samples as [Array<number>, Array<number>, Array<number>]
    const median = quantile(peerSamples, 0.5)
    // Few rounds: the ratio of the medians is steadier than the median of per-round ratios.
    const faster = median / quantile(headlineSamples, 0.5)
    const goalFaster = peers[name].goalFaster
    rows.push({
      section: "tools-20",
      name: report.name,
      unit: "ns/decision",
      median,
      p99: quantile(peerSamples, 0.99),
      ratio: quantile(perRound(peerSamples, floorSamples), 0.5),
      goal: { text: `gavel ≥ ${goalFaster}x faster (is ${faster.toFixed(0)}x)`, met: faster >= goalFaster },
      note: [
        report.equivalent === true ? undefined : `not equivalent: ${report.equivalent} (${count} requests differ)`,
        `${peerSamples.length} rounds in its own process`
      ].filter((x) => x !== undefined).join("; ")
    })
  }
  return { rows, errors }
}

// The child process of a peer: `tsx bench/decisions.ts peer <name>` prints its report.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "peer") {
  const name = process.argv[3]
  if (name !== "casbin" && name !== "cedar") throw new Error(`unknown peer ${name}`)
  process.stdout.write(JSON.stringify(await runPeer(name)))
}
