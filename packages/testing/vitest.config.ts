import { defineProject } from "vitest/config"
import { resolve, ssr } from "../../vitest.shared.js"

export default defineProject({
  resolve,
  ssr,
  test: {
    name: "testing",
    include: ["test/**/*.test.ts"],
    // Time in the tests is virtual (TestClock); the limit only catches hangs,
    // and property tests take seconds of real time on a loaded CI machine.
    testTimeout: 30_000,
    sequence: { concurrent: false }
  }
})
