import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "adapters",
    include: ["test/**/*.test.ts"],
    // Time in the tests is virtual (TestClock); the limit only catches hangs,
    // and property tests take seconds of real time on a loaded CI machine.
    testTimeout: 30_000,
    sequence: { concurrent: false }
  }
})
