#!/usr/bin/env node
/**
 * The `gavel` executable: runs the CLI (`@gavel/adapters/Cli`) on Node and
 * exits with its exit code. See docs/cli.md.
 *
 * Published compiled (`dist/bin/gavel.js`, a plain `node` script). The CLI
 * is loaded with a dynamic `import()`, so that an optional peer dependency
 * the user has not installed (`@effect/cli`, `@effect/platform-node`, the
 * SQLite driver…) is reported as one line naming the package and the
 * version range to install, with exit code 5 — never a stack trace.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as Module from "node:module"

// Node 22.1+ caches compiled code between runs (in the OS temp directory):
// about a quarter less start-up time. Absent on Node 20.
;(Module as { readonly enableCompileCache?: () => unknown }).enableCompileCache?.()

/** Exit code 5 (`Cli.ExitCode.Unavailable`): database or configuration. */
const unavailable = 5

/** The package a failed `import()` could not find, when that is what failed. */
const missingPackage = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const { code, message } = error as { code?: unknown; message?: unknown }
  if (code !== "ERR_MODULE_NOT_FOUND" || typeof message !== "string") return undefined
  return /^Cannot find package '([^']+)'/.exec(message)?.[1]
}

/** The range `@gavel/adapters` declares for a peer (its package.json sits two levels up). */
const peerRange = (name: string): string | undefined => {
  try {
    const manifest = JSON.parse(
      fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")
    ) as { peerDependencies?: Record<string, string> }
    return manifest.peerDependencies?.[name]
  } catch {
    return undefined
  }
}

const main = async (): Promise<void> => {
  const [NodeContext, NodeRuntime, Effect, Cli] = await Promise.all([
    import("@effect/platform-node/NodeContext"),
    import("@effect/platform-node/NodeRuntime"),
    import("effect/Effect"),
    import("@gavel/adapters/Cli")
  ])
  Cli.run(process.argv.slice(2)).pipe(
    // The code is set, not passed to process.exit: the process ends once
    // stdout and stderr are flushed.
    Effect.flatMap((code) => Effect.sync(() => void (process.exitCode = code))),
    Effect.provide(NodeContext.layer),
    NodeRuntime.runMain({ disableErrorReporting: true })
  )
}

main().catch((error: unknown) => {
  const name = missingPackage(error)
  if (name === undefined) throw error
  const range = peerRange(name)
  const wanted = range === undefined ? name : `${name}@"${range}"`
  process.stderr.write(`gavel: the gavel CLI needs ${name}, which is not installed: npm install ${wanted}\n`)
  process.exitCode = unavailable
})
