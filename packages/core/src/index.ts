/**
 * @since 0.1.0
 */
export * as Action from "./Action.js"

/**
 * @since 0.1.0
 */
export * as Decision from "./Decision.js"

/**
 * @since 0.1.0
 */
export * as DecisionRecord from "./DecisionRecord.js"

/**
 * @since 0.1.0
 */
export * as Explain from "./Explain.js"

/**
 * @since 0.1.0
 */
export * as IdGenerator from "./IdGenerator.js"

/**
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"

/**
 * @since 0.1.0
 */
export * as Policy from "./Policy.js"

/**
 * @since 0.1.0
 */
export * as PolicySet from "./PolicySet.js"

/**
 * @since 0.1.0
 */
export * as PolicyError from "./PolicyError.js"

/**
 * @since 0.1.0
 */
export * as Compliance from "./Compliance.js"

/**
 * @since 0.1.0
 */
export * as Identity from "./Identity.js"

/**
 * @since 0.1.0
 */
export * as Quota from "./Quota.js"

/**
 * @since 0.1.0
 */
export * as Ticketing from "./Ticketing.js"
/**
 * @since 0.1.0
 */
export * as Approval from "./Approval.js"

/**
 * @since 0.1.0
 */
export * as ApprovalStore from "./ApprovalStore.js"

/**
 * @since 0.1.0
 */
export * as Audit from "./Audit.js"

/**
 * @since 0.2.0
 */
export * as AuditOutbox from "./AuditOutbox.js"

/**
 * @since 0.1.0
 */
export * as AuditSink from "./AuditSink.js"

/**
 * @since 0.2.0
 */
export * as ContinuationStore from "./ContinuationStore.js"

/**
 * @since 0.2.0
 */
export * as Durable from "./Durable.js"

/**
 * @since 0.2.0
 */
export * as Encryption from "./Encryption.js"

/**
 * @since 0.1.0
 */
export * as Override from "./Override.js"

/**
 * @since 0.1.0
 */
export * as Governance from "./Governance.js"

/**
 * @since 0.1.0
 */
export * as Redaction from "./Redaction.js"

/**
 * @since 0.1.0
 */
export * as Rules from "./Rules.js"
