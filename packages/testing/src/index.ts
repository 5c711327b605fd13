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

/**
 * @since 0.1.0
 */
export * as Fixtures from "./Fixtures.js"

// `ApprovalStoreSuite` and `AuditSinkSuite` register vitest tests, so they
// are not re-exported here (importing the barrel outside vitest must work):
// import them from "@gavel/testing/ApprovalStoreSuite" and
// "@gavel/testing/AuditSinkSuite".
