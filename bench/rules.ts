/**
 * The "rules" rows: how long a rules document of 1,000, 10,000 and 100,000
 * rules takes to decode and compile (`Rules.decode`, the limits raised to
 * fit), so that compilation stays O(n log n) or better. The document mixes
 * what made it quadratic once: literal action names (indexed by name) and
 * globs (evaluated for every name), three to one, half of the rules with a
 * condition. One decision is taken with each, to check the result is usable.
 *
 * A figure is the median of a few decodes (one in quick mode).
 */
import { Action, PolicySet, Rules } from "@gavel/core"
import * as Effect from "effect/Effect"
import { type Part, progress, quick, type Row } from "./report.js"

const SIZES = [1_000, 10_000, 100_000] as const
const GOAL_100K_MS = 2_000

const document = (n: number) => ({
  id: "large",
  version: "1",
  combine: "deny-wins",
  default: "deny",
  rules: Array.from({ length: n }, (_, i) => ({
    id: `r${i}`,
    match: { name: i % 4 === 3 ? `svc${i}.*` : `tool${i}` },
    ...(i % 2 === 0 ? { when: { field: "payload.amount", gt: 1000 + i } } : {}),
    effect: i % 2 === 0 ? "deny" : "allow",
    ...(i % 2 === 0 ? { reason: { code: "amount.exceeded", message: `Amount over ${1000 + i}` } } : {})
  }))
})

const action = Action.make({
  actor: { id: "agent-1", kind: "agent", roles: ["operator"] },
  kind: "tool",
  name: "tool1",
  payload: { amount: 5 }
})

export const measureRules = async (): Promise<Part> => {
  const rows: Array<Row> = []
  const errors: Array<string> = []
  const runs = quick ? 1 : 5
  for (const n of SIZES) {
    const input = document(n)
    const limits = { maxRules: n, maxValues: 20 * n }
    const samples: Array<number> = []
    for (let run = 0; run < runs; run++) {
      const start = performance.now()
      const rules = Effect.runSync(Effect.either(Rules.decode(input, { limits })))
      samples.push(performance.now() - start)
      if (rules._tag === "Left") {
        errors.push(`rules: the document of ${n} rules was refused: ${rules.left.message.slice(0, 200)}`)
        break
      }
      if (run === 0 && PolicySet.evaluateSync(Rules.policySet(rules.right), action).decision._tag !== "Allow") {
        errors.push(`rules: the document of ${n} rules does not allow tool1`)
      }
    }
    samples.sort((a, b) => a - b)
    const median = samples[Math.floor(samples.length / 2)]!
    progress(`rules: ${n} rules decoded and compiled in ${median.toFixed(0)} ms`)
    rows.push({
      section: "rules",
      name: `decode + compile, ${n.toLocaleString("en-US")} rules`,
      unit: "ms",
      median,
      goal: n === 100_000 ? { text: `< ${GOAL_100K_MS} ms`, met: median < GOAL_100K_MS } : undefined,
      note: n === SIZES[0] ? "literal names and globs 3:1, half with a condition" : undefined
    })
  }
  return { rows, errors }
}
