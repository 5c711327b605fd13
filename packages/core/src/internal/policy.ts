/**
 * The machinery of `Policy` and `PolicySet`, one module per concern under
 * `internal/policy/`, re-exported here so that the public modules import one
 * namespace. Imports go one way: each module imports only those listed
 * before it.
 *
 * - `node`: the node and its evaluation context (the `Trace` type aside);
 * - `defect`: failing closed on a bug, and the kinds of gavel's failures;
 * - `result`: reading what a policy returned as a decision;
 * - `trace`: the spans of an evaluation;
 * - `failure`: timeouts, budgets, retries, failure handlers, and the last
 *   line of defence;
 * - `leaves` and `combinators`: the nodes policies are built of.
 */
export * from "./policy/combinators.js"
export * from "./policy/defect.js"
export * from "./policy/failure.js"
export * from "./policy/leaves.js"
export * from "./policy/node.js"
export * from "./policy/result.js"
export * from "./policy/trace.js"
