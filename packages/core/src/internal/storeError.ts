/**
 * A `StoreError` with some of its fields replaced: one place that knows all
 * of them, so that naming the component or the decision keeps the rest.
 */
import { StoreError } from "../Approval.js"

/** @internal */
export const withFields = (
  error: StoreError,
  fields: { readonly component?: "approval store" | "audit trail"; readonly decisionId?: string }
): StoreError =>
  new StoreError({
    operation: error.operation,
    detail: error.detail,
    cause: error.cause,
    component: error.component,
    decisionId: error.decisionId,
    ...fields
  })
