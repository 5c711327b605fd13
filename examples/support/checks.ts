/**
 * The examples check what they print: each expectation goes through
 * `check`, a wrong outcome is reported on stderr and sets a non-zero exit
 * code, and `report` prints the tally at the end. Not part of any story.
 */

let checks = 0
let failures = 0

/** Records one expectation; on a mismatch prints `detail` and fails the process. */
export const check = (label: string, ok: boolean, detail: string): void => {
  checks++
  if (!ok) fail(`${label}: ${detail}`)
}

/** Records a failure that is not one expectation (the story stopped early). */
export const fail = (detail: string): void => {
  failures++
  process.exitCode = 1
  console.error(`  FAILED ${detail}`)
}

/** Prints how many checks passed or failed. */
export const report = (): void => {
  console.log("")
  if (failures === 0) {
    console.log(`All ${checks} checks passed.`)
  } else {
    console.error(`${failures} of ${checks} checks failed.`)
  }
}

export const list = (values: ReadonlyArray<string>): string => `[${values.join(", ")}]`

export const sameList = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean =>
  a.length === b.length && a.every((value, i) => value === b[i])
