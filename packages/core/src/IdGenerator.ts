/**
 * Where decision ids come from. The default is unique per process and cheap
 * enough for the synchronous path; tests provide {@link sequential} for
 * deterministic ids.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Returns a fresh id starting with `prefix` (for example `"dec"`). */
  readonly next: (prefix: string) => string
}

const randomHex = (bytes: number): string => {
  const buf = new Uint8Array(bytes)
  globalThis.crypto.getRandomValues(buf)
  let out = ""
  for (const b of buf) out += b.toString(16).padStart(2, "0")
  return out
}

/**
 * Ids of the form `prefix_<16 random hex>_<counter in base 36>`: 64 random
 * bits chosen once per generator (so two processes do not collide) followed
 * by a counter (so one process never repeats itself). Ids are not secrets.
 *
 * @since 0.1.0
 * @category constructors
 */
export const random = (): Service => {
  const instance = randomHex(8)
  const heads = new Map<string, string>()
  let counter = 0
  return {
    next: (prefix) => {
      let head = heads.get(prefix)
      if (head === undefined) {
        head = `${prefix}_${instance}_`
        heads.set(prefix, head)
      }
      return head + (counter++).toString(36)
    }
  }
}

/**
 * Deterministic ids for tests: `prefix_1`, `prefix_2`, … (one counter per
 * generator, shared by all prefixes).
 *
 * @since 0.1.0
 * @category constructors
 */
export const sequential = (): Service => {
  let counter = 0
  return { next: (prefix) => `${prefix}_${++counter}` }
}

/**
 * The id generator service. It has a default ({@link random}), so evaluation
 * works without providing it.
 *
 * @since 0.1.0
 * @category tags
 */
export class IdGenerator extends Context.Reference<IdGenerator>()("@gavel/core/IdGenerator", {
  defaultValue: random
}) {}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (service: Service): Layer.Layer<never> => Layer.succeed(IdGenerator, service)

/**
 * A layer with {@link sequential} ids.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSequential: Layer.Layer<never> = Layer.sync(IdGenerator, sequential)
