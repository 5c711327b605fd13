/**
 * @since 0.1.0
 */
export * as Arbitraries from "./Arbitraries.js"

/**
 * @since 0.1.0
 */
export * as CallLog from "./CallLog.js"

/**
 * @since 0.1.0
 */
export * as Fakes from "./Fakes.js"
