/**
 * `npm run bench`: the tools-20 workload of ../shared/BENCHMARKS.md, every
 * row measured in the same process run, each checked against the reference
 * decisions before its time counts (a disagreement exits non-zero).
 *
 * Rows are interleaved: each round runs every system once over the 1,000
 * requests, in an order that rotates from round to round, so that the drift
 * of a shared, noisy machine hits every row alike. A row's figures are the
 * median and p99 of its per-round ns/decision, and the median of its
 * per-round ratio to the floor measured in the same round.
 *
 * GAVEL_BENCH_ROUNDS sets the number of rounds (default 300).
 */
import { Decision, Policy, PolicySet } from "@gavel/core"
import * as Effect from "effect/Effect"
import { measureApprovals } from "./approvals.js"
import { measureAsync } from "./async.js"
import { measureSqlite } from "./sqlite.js"
import { actions, expected, makeRulesSet, makeSet, plainLoop, policy, requests } from "./tools20.js"

const ROUNDS = Number(process.env.GAVEL_BENCH_ROUNDS ?? 300)
const WARMUP = Math.max(20, Math.floor(ROUNDS / 5))

interface System {
  readonly name: string
  readonly decide: (i: number) => boolean
}

const untimed = makeSet("untimed")
const timed = makeSet("timed")
const fromRules = makeRulesSet("untimed")

const systems: ReadonlyArray<System> = [
  { name: "plain JS loop (floor)", decide: (i) => plainLoop(actions[i]!) },
  { name: "gavel sync, bare decision", decide: (i) => Decision.canProceed(Policy.evaluateSync(policy, actions[i]!)) },
  {
    name: "gavel sync, full DecisionRecord",
    decide: (i) => Decision.canProceed(PolicySet.evaluateSync(untimed, actions[i]!).decision)
  },
  {
    name: "gavel rules document, full record",
    decide: (i) => Decision.canProceed(PolicySet.evaluateSync(fromRules, actions[i]!).decision)
  },
  {
    name: "gavel sync, record + timed explain",
    decide: (i) => Decision.canProceed(PolicySet.evaluateSync(timed, actions[i]!).decision)
  },
  {
    name: "gavel evaluate (Effect.runSync)",
    decide: (i) => Decision.canProceed(Effect.runSync(PolicySet.evaluate(untimed, actions[i]!)).decision)
  }
]

let failed = false
for (const system of systems) {
  let disagreements = 0
  let first = -1
  for (let i = 0; i < expected.length; i++) {
    if (system.decide(i) !== expected[i]) {
      disagreements++
      if (first < 0) first = i
    }
  }
  if (disagreements > 0) {
    console.error(`${system.name}: disagrees with the reference on ${disagreements} requests (first: request ${first})`)
    failed = true
  }
}

let sink = 0
const n = expected.length
const samples = systems.map(() => [] as Array<number>)
const ratios = systems.map(() => [] as Array<number>)
for (let round = 0; round < WARMUP + ROUNDS; round++) {
  const times = new Array<number>(systems.length)
  for (let k = 0; k < systems.length; k++) {
    const s = (round + k) % systems.length
    const decide = systems[s]!.decide
    const start = performance.now()
    for (let i = 0; i < n; i++) if (decide(i)) sink++
    times[s] = ((performance.now() - start) * 1e6) / n
  }
  if (round < WARMUP) continue
  for (let s = 0; s < systems.length; s++) {
    samples[s]!.push(times[s]!)
    ratios[s]!.push(times[s]! / times[0]!)
  }
}

const quantile = (xs: Array<number>, q: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!
}

console.log(`tools-20: ${requests.length} requests x ${ROUNDS} rounds (ns per decision; Node ${process.version})`)
console.log(`${"system".padEnd(40)}${"median".padStart(10)}${"p99".padStart(10)}${"x floor".padStart(10)}`)
systems.forEach((system, s) => {
  const median = quantile(samples[s]!, 0.5).toFixed(0).padStart(10)
  const p99 = quantile(samples[s]!, 0.99).toFixed(0).padStart(10)
  console.log(`${system.name.padEnd(40)}${median}${p99}${quantile(ratios[s]!, 0.5).toFixed(1).padStart(10)}`)
})
if (sink < 0) console.log(sink)

const asyncRows = await measureAsync(Math.max(200, ROUNDS * 20))
console.log("")
console.log("async: identity + ticketing + compliance checks against immediate fakes, one record per decision, one runPromise per decision (µs)")
for (const row of asyncRows) console.log(`${row.name.padEnd(44)}${row.microsPerDecision.toFixed(2).padStart(10)}`)
if (!(await measureApprovals())) failed = true
if (!(await measureSqlite())) failed = true
if (failed) process.exitCode = 1
