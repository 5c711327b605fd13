import { defineConfig } from "vitest/config"

// One vitest project per package (each package's vitest.config.ts).
export default defineConfig({
  test: {
    projects: ["packages/*/vitest.config.ts"]
  }
})
