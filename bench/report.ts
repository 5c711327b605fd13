/**
 * The one table `npm run bench` prints (and `--json` writes): every part of
 * the benchmark returns rows of this shape, grouped by section, so that the
 * output stays stable from run to run and can be compared over time.
 */
import * as v8 from "node:v8"
import * as vm from "node:vm"

/** A goal from the issue, checked against the row's figure. */
export interface Goal {
  /** What the goal says, e.g. "≤ 1000 ns" or "≥ 50x faster than casbin". */
  readonly text: string
  readonly met: boolean
}

export interface Row {
  /** "tools-20", "rules", "async", "approvals", "sqlite", "scale". */
  readonly section: string
  readonly name: string
  /** "ns/decision", "µs/decision", "virtual ms", "cycles/s", "ms", "bytes", "MB", "s". */
  readonly unit: string
  readonly median: number
  /** Only where a distribution was measured. */
  readonly p99?: number | undefined
  /** The figure over the section's floor (for rates: the floor's time over the row's, so > 1 is slower). */
  readonly ratio?: number | undefined
  readonly goal?: Goal | undefined
  /** E.g. "not equivalent: …" or what the floor is. */
  readonly note?: string | undefined
}

/** What a part of the benchmark gives back: its rows, and anything that went wrong (non-zero exit). */
export interface Part {
  readonly rows: ReadonlyArray<Row>
  readonly errors: ReadonlyArray<string>
}

/** Progress goes to stderr, so that `--json` output on stdout stays clean. */
export const progress = (message: string): void => {
  process.stderr.write(`bench: ${message}\n`)
}

export const quantile = (xs: ArrayLike<number>, q: number): number => {
  const sorted = Float64Array.from(xs).sort()
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!
}

/** True for the CI quick mode (GAVEL_BENCH_ROUNDS below 50): fewer and smaller batches. */
export const quick = Number(process.env.GAVEL_BENCH_ROUNDS ?? 300) < 50

/**
 * A full GC: `globalThis.gc` under `--expose-gc`, else exposed at run time
 * (tsx does not pass the flag), on first use so that the rows measured
 * before this one run without it.
 */
let collect: (() => void) | undefined
const gc = (): void => {
  if (collect === undefined) {
    const exposed = (globalThis as { gc?: unknown }).gc
    if (typeof exposed === "function") collect = exposed as () => void
    else {
      v8.setFlagsFromString("--expose-gc")
      const fromContext: unknown = vm.runInNewContext("gc")
      if (typeof fromContext !== "function") throw new Error("approvals bench: cannot expose the garbage collector")
      collect = fromContext as () => void
    }
  }
  collect()
}

/** The heap in use after two full collections. */
export const settledHeap = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
