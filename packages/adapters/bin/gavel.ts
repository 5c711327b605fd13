#!/usr/bin/env -S node --import tsx
/**
 * The `gavel` executable: runs the CLI (`@gavel/adapters/Cli`) on Node and
 * exits with its exit code. See docs/cli.md.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Cli from "@gavel/adapters/Cli"

Cli.run(process.argv.slice(2)).pipe(
  // The code is set, not passed to process.exit: the process ends once
  // stdout and stderr are flushed.
  Effect.flatMap((code) => Effect.sync(() => void (process.exitCode = code))),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
