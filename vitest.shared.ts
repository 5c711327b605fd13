/**
 * Settings every package's vitest project shares: the workspace's packages
 * resolve to their TypeScript sources through the `@gavel/source` export
 * condition (see the packages' `exports`), so tests need no build.
 */
import { defaultServerConditions } from "vite"

const conditions = ["@gavel/source", ...defaultServerConditions]

export const resolve = { conditions }
export const ssr = { resolve: { conditions, externalConditions: ["@gavel/source"] } }
