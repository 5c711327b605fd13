/**
 * The principals directory the `gavel` CLI votes with: its file format, the
 * `--principals` flag (or `GAVEL_PRINCIPALS`), and the identity system it
 * becomes (`Identity.fromDirectory`). `Cli.ts` re-exports `Principals` and
 * `principalsEnv` and documents them.
 */
import * as Options from "@effect/cli/Options"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Identity from "@gavel/core/Identity"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type CliError, configError } from "./errors.js"
import { readFile } from "./inputs.js"

/** See `Cli.Principals`. @internal */
export const Principals = Schema.Array(Identity.ResolvedPrincipal).pipe(
  Schema.filter((principals) => {
    const seen = new Set<string>()
    for (let i = 0; i < principals.length; i++) {
      const id = principals[i]!.id
      if (seen.has(id)) {
        return { path: [i, "id"], message: `principal "${id}" is listed more than once` }
      }
      seen.add(id)
    }
    return true
  })
).annotations({ identifier: "Principals" })

/** See `Cli.principalsEnv`. @internal */
export const principalsEnv = "GAVEL_PRINCIPALS"

/** `--principals FILE`. @internal */
export const principals = Options.text("principals").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription(
    `The principals directory (JSON array of {id, roles, tenant?, status}); default: $${principalsEnv}`
  ),
  Options.optional
)

const decodePrincipals = Schema.decodeUnknownEither(Schema.parseJson(Principals))

/**
 * The identity system the CLI votes with: the directory at `--principals`,
 * else at `GAVEL_PRINCIPALS`; refuses to go on without one. (The runtime
 * itself refuses a principal of another tenant than the action's.)
 *
 * @internal
 */
export const load = (
  flag: Option.Option<string>
): Effect.Effect<Identity.Service, CliError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fromEnv = yield* Config.string(principalsEnv).pipe(Config.withDefault(""), Effect.orElseSucceed(() => ""))
    const path = Option.getOrElse(flag, () => fromEnv)
    if (path.trim() === "") {
      return yield* configError(
        `no principals directory: pass --principals FILE or set ${principalsEnv}`
      )
    }
    return Identity.fromDirectory(yield* readFile("principals", path, decodePrincipals))
  })
