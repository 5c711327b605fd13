/**
 * The machinery of declarative rules (`Rules`), one module per concern
 * under `internal/rules/`, re-exported here so that `Rules.ts` imports one
 * namespace. Each module imports only those listed before it (and types
 * from `Rules.ts`):
 *
 * - `glob`: the glob matcher;
 * - `read`: how rules read an action, and the fields a condition may name;
 * - `problems`: the checks across rules, and how problems are told;
 * - `condition`: the static check and the compilation of conditions;
 * - `document`: the bounds of a document as written, and its canonical form;
 * - `compile`: a decoded document compiled into policies.
 */
export * from "./rules/compile.js"
export * from "./rules/condition.js"
export * from "./rules/document.js"
export * from "./rules/glob.js"
export * from "./rules/problems.js"
export * from "./rules/read.js"
