/**
 * The context the code blocks of README.md and docs/*.md take for granted.
 *
 * A docs snippet shows one thing; the values it works with — "your policy
 * set", "an action", "the runtime" — come from the prose around it or from
 * another snippet on the page. `scripts/check-docs.ts` type-checks every
 * block with these declarations in scope, so a block may use any name below
 * without defining it. Nothing here exists at runtime: keep every entry
 * something a reader understands from the docs, with its real type.
 *
 * A module rather than a `.d.ts`: `skipLibCheck` skips declaration files, so
 * a mistyped entry there would go unnoticed (and silently become `any`).
 */
import type { AgentCard } from "@a2a-js/sdk"
import type { Client, RequestOptions } from "@a2a-js/sdk/client"
import type { AgentExecutor, ExecutionEventBus, RequestContext } from "@a2a-js/sdk/server"
import type { HttpServerResponse } from "@effect/platform"
import type { Action, Audit, Durable, Governance, Identity, PolicySet, Redaction } from "@gavel/core"
import type * as ConfigError from "effect/ConfigError"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import type { IncomingMessage } from "node:http"

declare global {
  // ---------------------------------------------------------------------------
  // The runtime and what it is built from
  // ---------------------------------------------------------------------------

  /** The host's policy set, as built with `PolicySet.unsafeMake` (README quick start). */
  const policySet: PolicySet.PolicySet

  /** The durable work handler defined in docs/approvals.md "Durable approvals". */
  const sendPayment: Durable.Handler<
    { readonly to: string; readonly amount: number },
    { readonly receipt: string },
    never
  >

  /** The host's `Identity` adapter (its directory: an IdP, HR system, LDAP…); see docs/approvals.md "Wiring". */
  const IdentityLive: Layer.Layer<Identity.Identity>

  /** `Governance.layer({ policySet })` with its store, audit sink and identity provided (docs/approvals.md "Wiring"). */
  const GovernanceLive: Layer.Layer<
    Governance.Governance,
    ConfigError.ConfigError | Governance.InvalidOption | Redaction.InvalidRedaction
  >

  /** The runtime, as `yield* Governance.Governance` gives it. */
  const governance: Governance.Service

  // ---------------------------------------------------------------------------
  // What is governed, and by whom
  // ---------------------------------------------------------------------------

  /** The action being governed, built with `Action.make`. */
  const action: Action.Action

  /** The protected work of the payment examples: sends a transfer, the side effect an approval guards. */
  const bank: {
    readonly send: (payload: unknown) => Effect.Effect<{ readonly reference: string }, { readonly _tag: "BankUnavailable" }>
  }

  /** The id of an approval a parked call opened (`Pending.approvalId`, the 202's `approvalId`). */
  const approvalId: string

  /** Two finance approvers, as the host authenticated them. */
  const alice: Action.Principal
  const bob: Action.Principal

  /** An audit trail, as `AuditSink.read()` returns it. */
  const events: ReadonlyArray<Audit.AuditEvent>

  // ---------------------------------------------------------------------------
  // Edges: HTTP, JWT, A2A
  // ---------------------------------------------------------------------------

  /** The body of `POST /transfers` (docs/http.md). */
  const Transfer: Schema.Struct<{ amount: typeof Schema.Number; to: typeof Schema.String }>

  /** The transfer route's own handler, unaware of governance. */
  const sendTransfer: Effect.Effect<HttpServerResponse.HttpServerResponse>

  /** An incoming Node HTTP request (docs/jwt.md). */
  const request: IncomingMessage

  /** The host's A2A agent, unaware of governance (as in examples/a2a-server.ts). */
  class PaymentsAgent implements AgentExecutor {
    execute(context: RequestContext, bus: ExecutionEventBus): Promise<void>
    cancelTask(taskId: string, bus: ExecutionEventBus): Promise<void>
  }

  /** The agent's A2A agent card. */
  const agentCard: AgentCard

  /** An A2A SDK client (`new ClientFactory().createFromUrl(url)`), the message it sends, its call options (the bearer token), and a task id. */
  const client: Client
  const sendRequest: Parameters<Client["sendMessageStream"]>[0]
  const callOptions: RequestOptions
  const taskId: string
}
