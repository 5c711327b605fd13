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
 * hundreds of times slower than the rest: they run in every `stride`-th round
 * only (their ratios still against the floor of the same round), so that they
 * do not take most of the run.
 *
 * GAVEL_BENCH_ROUNDS sets the number of rounds (default 300).
 */
import { Decision, Policy, PolicySet } from "@gavel/core"
import * as Effect from "effect/Effect"
import { makeCasbin, makeCedar, type PeerSystem } from "./peers.js"
import { type Part, progress, quantile, type Row } from "./report.js"
import { actions, expected, makeRulesSet, makeScopedSet, makeSet, plainLoop, policy } from "./tools20.js"

const ROUNDS = Number(process.env.GAVEL_BENCH_ROUNDS ?? 300)
const WARMUP = Math.max(20, Math.floor(ROUNDS / 5))
/** Peers run in one round of this many. */
const PEER_STRIDE = 10

const GOAL_FULL_RECORD_NS = 1_000
const GOAL_VS_CASBIN = 50
const GOAL_VS_CEDAR = 200

interface System {
  readonly name: string
  readonly decide: (i: number) => boolean
  readonly equivalent: true | string
  readonly peer: boolean
  /** The goal of a gavel row: at most this many ns per decision. */
  readonly goalNs?: number
  /** The goal of a peer row: gavel's headline row at least this many times faster. */
  readonly goalFaster?: number
}

const gavel = (name: string, decide: (i: number) => boolean, goalNs?: number): System =>
  goalNs === undefined
    ? { name, decide, equivalent: true, peer: false }
    : { name, decide, equivalent: true, peer: false, goalNs }

const peer = (system: PeerSystem, goalFaster: number): System => ({ ...system, peer: true, goalFaster })

/** The gavel row the peers' goals are stated against: the full record, each rule scoped to its tool. */
const HEADLINE = "gavel sync, full record, forAction"

export const measureDecisions = async (): Promise<Part> => {
  const untimed = makeSet("untimed")
  const scoped = makeScopedSet("untimed")
  const timed = makeSet("timed")
  const fromRules = makeRulesSet("untimed")
  progress("tools-20: building casbin and Cedar")
  const systems: ReadonlyArray<System> = [
    gavel("plain JS loop (floor)", (i) => plainLoop(actions[i]!)),
    gavel("gavel sync, bare decision", (i) => Decision.canProceed(Policy.evaluateSync(policy, actions[i]!))),
    gavel(
      "gavel sync, full record, 20 name checks",
      (i) => Decision.canProceed(PolicySet.evaluateSync(untimed, actions[i]!).decision),
      GOAL_FULL_RECORD_NS
    ),
    gavel(
      HEADLINE,
      (i) => Decision.canProceed(PolicySet.evaluateSync(scoped, actions[i]!).decision),
      GOAL_FULL_RECORD_NS
    ),
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
    ),
    peer(await makeCasbin(), GOAL_VS_CASBIN),
    peer(makeCedar(), GOAL_VS_CEDAR)
  ]

  const errors: Array<string> = []
  for (const system of systems) {
    let disagreements = 0
    let first = -1
    for (let i = 0; i < expected.length; i++) {
      let decided: boolean | string
      try {
        decided = system.decide(i)
      } catch (error) {
        decided = `failed: ${String(error)}`
      }
      if (decided !== expected[i]) {
        if (disagreements++ === 0) first = i
      }
    }
    // A system that cannot express the workload says so (its note); one that can must agree everywhere.
    if (disagreements > 0 && system.equivalent === true) {
      errors.push(`${system.name}: disagrees with the reference on ${disagreements} requests (first: request ${first})`)
    }
  }
  if (errors.length > 0) return { rows: [], errors }

  progress(`tools-20: ${ROUNDS} rounds after ${WARMUP} warm-up rounds (peers: one round in ${PEER_STRIDE})`)
  let sink = 0
  const n = expected.length
  const headline = systems.findIndex((s) => s.name === HEADLINE)
  const samples = systems.map(() => [] as Array<number>)
  const ratios = systems.map(() => [] as Array<number>)
  const times = new Array<number>(systems.length)
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    const withPeers = round % PEER_STRIDE === 0
    for (let k = 0; k < systems.length; k++) {
      const s = (round + k) % systems.length
      const system = systems[s]!
      if (system.peer && !withPeers) continue
      const decide = system.decide
      const start = performance.now()
      for (let i = 0; i < n; i++) if (decide(i)) sink++
      times[s] = ((performance.now() - start) * 1e6) / n
    }
    if (round < WARMUP) continue
    for (let s = 0; s < systems.length; s++) {
      if (systems[s]!.peer && !withPeers) continue
      samples[s]!.push(times[s]!)
      ratios[s]!.push(times[s]! / times[0]!)
    }
    if ((round - WARMUP + 1) % 100 === 0) progress(`tools-20: round ${round - WARMUP + 1} of ${ROUNDS}`)
  }
  if (sink < 0) progress(String(sink))

  const rows = systems.map((system, s): Row => {
    const median = quantile(samples[s]!, 0.5)
    // Peers have few rounds: the ratio of the medians is steadier than the median of per-round ratios.
    const faster = median / quantile(samples[headline]!, 0.5)
    const goal = system.goalNs !== undefined
      ? { text: `≤ ${system.goalNs} ns`, met: median <= system.goalNs }
      : system.goalFaster !== undefined
      ? { text: `gavel ≥ ${system.goalFaster}x faster (is ${faster.toFixed(0)}x)`, met: faster >= system.goalFaster }
      : undefined
    const note = system.equivalent !== true
      ? `not equivalent: ${system.equivalent}`
      : s === 0
      ? "the floor"
      : system.peer
      ? `${samples[s]!.length} rounds`
      : undefined
    return {
      section: "tools-20",
      name: system.name,
      unit: "ns/decision",
      median,
      p99: quantile(samples[s]!, 0.99),
      ratio: quantile(ratios[s]!, 0.5),
      goal,
      note
    }
  })
  return { rows, errors }
}
