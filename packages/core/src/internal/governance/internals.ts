/**
 * The runtime behind a `Governance` service, for the parts built on it
 * (`Durable.layer`): kept on the service under a symbol, out of its public
 * shape.
 */
import type { Runtime } from "./durable.js"

const key: unique symbol = Symbol.for("@gavel/core/Governance/runtime")

/**
 * `service`, carrying `runtime`.
 *
 * @internal
 */
export const attach = <S extends object>(service: S, runtime: Runtime): S =>
  Object.defineProperty(service, key, { value: runtime, enumerable: false })

/**
 * The runtime `service` carries, if it was built by `Governance.make`.
 *
 * @internal
 */
export const runtimeOf = (service: object): Runtime | undefined => (service as { readonly [key]?: Runtime })[key]
