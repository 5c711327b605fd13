/**
 * `npm run bench`: the tools-20 workload of ../shared/BENCHMARKS.md, every
 * row measured in the same process run, each checked against the plain-JS
 * reference decisions before its time counts.
 *
 * Each row runs ROUNDS rounds of the 1,000 requests; a round's time divided
 * by 1,000 is one sample, and the table prints the median and p99 of the
 * samples and the ratio of the median to the plain-JS floor.
 */
import { Decision, Policy, PolicySet } from "@gavel/core"
import * as Effect from "effect/Effect"
import { actions, expected, makeSet, plainLoop, policy, requests } from "./tools20.js"

const ROUNDS = Number(process.env.GAVEL_BENCH_ROUNDS ?? 200)
const WARMUP = Math.max(20, Math.floor(ROUNDS / 5))

interface Row {
  readonly name: string
  readonly median: number
  readonly p99: number
}

let sink = 0

const measure = (name: string, decide: (i: number) => boolean): Row => {
  const disagreements: Array<number> = []
  for (let i = 0; i < expected.length; i++) {
    if (decide(i) !== expected[i]) disagreements.push(i)
  }
  if (disagreements.length > 0) {
    console.error(`${name}: disagrees with the reference on ${disagreements.length} requests (first: ${disagreements[0]})`)
    process.exitCode = 1
  }
  const samples: Array<number> = []
  const n = expected.length
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    const start = performance.now()
    for (let i = 0; i < n; i++) if (decide(i)) sink++
    const ns = ((performance.now() - start) * 1e6) / n
    if (round >= WARMUP) samples.push(ns)
  }
  samples.sort((a, b) => a - b)
  return {
    name,
    median: samples[Math.floor(samples.length / 2)]!,
    p99: samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))]!
  }
}

const untimed = makeSet("untimed")
const timed = makeSet("timed")

const rows: Array<Row> = [
  measure("plain JS loop (floor)", (i) => plainLoop(actions[i]!)),
  measure("gavel sync, bare decision", (i) => Decision.canProceed(Policy.evaluateSync(policy, actions[i]!))),
  measure("gavel sync, full DecisionRecord", (i) => Decision.canProceed(PolicySet.evaluateSync(untimed, actions[i]!).decision)),
  measure(
    "gavel sync, record + timed explain",
    (i) => Decision.canProceed(PolicySet.evaluateSync(timed, actions[i]!).decision)
  ),
  measure(
    "gavel evaluate (Effect.runSync)",
    (i) => Decision.canProceed(Effect.runSync(PolicySet.evaluate(untimed, actions[i]!)).decision)
  )
]

const floor = rows[0]!.median
const pad = (s: string, n: number) => s.padEnd(n)
const num = (x: number) => x.toFixed(0).padStart(10)
console.log(`tools-20: ${requests.length} requests x ${ROUNDS} rounds (ns per decision; Node ${process.version})`)
console.log(`${pad("system", 40)}${"median".padStart(10)}${"p99".padStart(10)}${"x floor".padStart(10)}`)
for (const row of rows) {
  console.log(`${pad(row.name, 40)}${num(row.median)}${num(row.p99)}${(row.median / floor).toFixed(1).padStart(10)}`)
}
if (sink < 0) console.log(sink)
