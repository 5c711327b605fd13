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

/**
 * @since 0.1.0
 */
export * as Approvals from "./Approvals.js"

// `ApprovalStoreSuite` registers vitest tests, so it is not re-exported here
// (importing the barrel outside vitest must work): import it from
// "@gavel/testing/ApprovalStoreSuite".
