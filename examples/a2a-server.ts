/**
 * A governed A2A agent: a payments agent served with the `@a2a-js/sdk`
 * JSON-RPC transport, whose executor is wrapped by `@gavel/adapters/A2a`,
 * driven by the SDK's own client.
 *
 * 1. Wiring: the policies (small payments run, deleting anything is denied,
 *    payments over 10,000 EUR need a finance approver), the identity
 *    directory, `Governance.layer`, a JWT verifier for the callers' bearer
 *    tokens, the agent's executor wrapped with `A2a.wrap`, its request
 *    handler guarded with `A2a.guard` (tasks for their owner only), and an
 *    express server on 127.0.0.1 (a free port) serving the agent card and
 *    JSON-RPC, each body bounded by `A2a.limitBody`.
 * 2. Allowed: agent-7 asks to pay 120 EUR; the task completes with the
 *    agent's answer.
 * 3. Denied: agent-7 asks to delete the payment log; the task is rejected
 *    with the decision id and the reason codes, and the agent never runs. A
 *    call without a token is rejected too (`identity.missing`).
 * 4. Pending, then approved: agent-7 asks to pay 25,000 EUR. The task comes
 *    back input-required, with `approval_id` and `approval_expires_at` in
 *    its metadata. Another caller (agent-9) cannot read or cancel the task
 *    (task not found), nor can a call without a token (unauthenticated);
 *    the approval stays pending. The client resubscribes to the task's
 *    stream, alice approves (through the approvals API in production;
 *    directly on the Governance service here), and the same task goes on to
 *    completed; the agent ran exactly once.
 *
 * The program checks what it prints: a wrong outcome is reported on stderr
 * and the process exits with code 1. Then it closes the server and exits.
 *
 * Run it from the repository root:
 *
 *   npx tsx examples/a2a-server.ts
 */
import {
  type AgentCard,
  type Message,
  type Part,
  type SendMessageRequest,
  type StreamResponse,
  type Task,
  Role,
  TaskState
} from "@a2a-js/sdk"
import { type Client, ClientFactory } from "@a2a-js/sdk/client"
import {
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
  AgentEvent,
  DefaultRequestHandler,
  InMemoryTaskStore
} from "@a2a-js/sdk/server"
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express"
import * as A2a from "@gavel/adapters/A2a"
import * as Jwt from "@gavel/adapters/Jwt"
import {
  type Action,
  ApprovalStore,
  AuditSink,
  Decision,
  Governance,
  IdGenerator,
  Identity,
  Policy,
  PolicySet
} from "@gavel/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import express from "express"
import * as jose from "jose"
import type * as http from "node:http"
import type { AddressInfo } from "node:net"
import { check, fail, report } from "./support/checks.js"

// =============================================================================
// 1. Wiring
// =============================================================================

/** What the agent is asked, as the policies see it: the message text (see `A2a.defaultAction`). */
const textOf = (action: Action.Action): string => (action.payload as A2a.Payload | undefined)?.text ?? ""
const amountOf = (text: string): number => Number(/pay ([\d,]+)/.exec(text)?.[1]?.replaceAll(",", "") ?? 0)

const payments = Policy.make("payments.a2a", (action) => {
  const text = textOf(action)
  if (/\bdelete\b/.test(text)) {
    return Decision.deny({ code: "data.destructive", message: "Nothing is deleted on request of another agent" })
  }
  if (amountOf(text) > 10_000) {
    return Decision.requireApproval(
      { code: "payment.large", message: "Payments over 10,000 EUR need a finance approver" },
      { roles: ["finance"], timeout: "30 minutes" }
    )
  }
  return Decision.allow()
})

const policySet = PolicySet.unsafeMake({ id: "payments-agent", version: "2025.06", policy: payments })

/** The identity system: an in-memory directory here (an IdP or HR system in production). */
const IdentityLive = Identity.layerDirectory([
  { id: "agent-7", roles: ["caller"], tenant: "acme", status: "active" },
  { id: "alice", roles: ["finance"], tenant: "acme", status: "active" }
])

const GovernanceLive = Governance.layer({ policySet }).pipe(
  Layer.provideMerge(ApprovalStore.layerMemory),
  Layer.provide(AuditSink.layerMemory),
  Layer.provide(IdentityLive),
  Layer.provide(IdGenerator.layer(IdGenerator.sequential()))
)

// Callers present bearer tokens from the identity provider; here the example
// mints them itself with the shared secret.
const secret = "an-example-secret-of-at-least-32-bytes"
const issuer = "https://id.example.com"
const audience = "payments-agent"

const mint = (subject: string) =>
  new jose.SignJWT({ kind: "agent", tenant: "acme" })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(subject)
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime("10 minutes")
    .sign(new TextEncoder().encode(secret))

const textPart = (text: string): Part => ({
  content: { $case: "text", value: text },
  metadata: undefined,
  filename: "",
  mediaType: "text/plain"
})

const textIn = (message: Message | undefined): string =>
  (message?.parts ?? []).map((part) => part.content?.$case === "text" ? part.content.value : "").join("")

/** The agent itself, unaware of governance: it "pays" and says so. */
class PaymentsAgent implements AgentExecutor {
  readonly paid: Array<string> = []

  async execute(context: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const ids = { taskId: context.taskId, contextId: context.contextId }
    const request = textIn(context.userMessage)
    const receipt = `done: ${request.replace(/^pay/, "paid")} (ref ${this.paid.length + 1})`
    this.paid.push(request)
    if (context.task === undefined) {
      bus.publish(AgentEvent.task({
        id: context.taskId,
        contextId: context.contextId,
        status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: new Date().toISOString() },
        history: [context.userMessage],
        artifacts: [],
        metadata: {}
      }))
    }
    bus.publish(AgentEvent.statusUpdate({
      ...ids,
      status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: new Date().toISOString() },
      metadata: undefined
    }))
    bus.publish(AgentEvent.statusUpdate({
      ...ids,
      status: {
        state: TaskState.TASK_STATE_COMPLETED,
        message: {
          ...ids,
          messageId: crypto.randomUUID(),
          role: Role.ROLE_AGENT,
          parts: [textPart(receipt)],
          metadata: undefined,
          extensions: [],
          referenceTaskIds: []
        },
        timestamp: new Date().toISOString()
      },
      metadata: undefined
    }))
    bus.finished()
  }

  async cancelTask(): Promise<void> {}
}

/** Starts the governed agent on 127.0.0.1 (a free port); the server closes with the scope. */
const serve = (agent: PaymentsAgent) =>
  Effect.gen(function*() {
    const verifier = yield* Jwt.make({ key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer, audience })
    const taskStore = new InMemoryTaskStore()
    const options = { agentId: "payments-agent", taskStore, authenticate: A2a.bearer(verifier) }
    const executor = yield* A2a.wrap(agent, options)

    const app = express()
    const server = yield* Effect.acquireRelease(
      Effect.async<http.Server>((resume) => {
        const listening = app.listen(0, "127.0.0.1", () => resume(Effect.succeed(listening)))
      }),
      (listening) =>
        Effect.async<void>((resume) => {
          listening.closeAllConnections()
          listening.close(() => resume(Effect.void))
        })
    )
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const card: AgentCard = {
      name: "Payments agent",
      description: "Pays invoices for other agents, under governance",
      supportedInterfaces: [{ url: `${url}/a2a/jsonrpc`, protocolBinding: "JSONRPC", tenant: "", protocolVersion: "1.0" }],
      provider: undefined,
      version: "1.0.0",
      capabilities: { streaming: true, pushNotifications: false, extensions: [] },
      securitySchemes: {},
      securityRequirements: [],
      defaultInputModes: ["text/plain"],
      defaultOutputModes: ["text/plain"],
      skills: [],
      signatures: []
    }
    // The guard authenticates every task read and cancel with the same
    // `authenticate` and lets only the task's owner through, whatever user
    // the transport built: no caller sees or cancels another's task.
    const requestHandler = A2a.guard(new DefaultRequestHandler(card, taskStore, executor), options)
    app.use("/.well-known/agent-card.json", agentCardHandler({ agentCardProvider: requestHandler }))
    // `limitBody` reads each body before the SDK does, and refuses one too
    // large or nested too deep (which the SDK's converters would walk into a
    // stack overflow) with a JSON-RPC error.
    app.use(
      "/a2a/jsonrpc",
      A2a.limitBody({ transport: "jsonrpc" }),
      jsonRpcHandler({ requestHandler, userBuilder: UserBuilder.noAuthentication })
    )
    return url
  })

// -----------------------------------------------------------------------------
// the client side, printing and checking
// -----------------------------------------------------------------------------

const say = (line: string): void => console.log(line)

const message = (text: string): SendMessageRequest => ({
  tenant: "",
  message: {
    messageId: crypto.randomUUID(),
    contextId: "",
    taskId: "",
    role: Role.ROLE_USER,
    parts: [textPart(text)],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: []
  },
  configuration: undefined,
  metadata: undefined
})

const as = (token: string | undefined) =>
  token === undefined ? undefined : { serviceParameters: { authorization: `Bearer ${token}` } }

const send = (client: Client, text: string, token: string | undefined) =>
  Effect.flatMap(Effect.promise(() => client.sendMessage(message(text), as(token))), (result) =>
    "status" in result
      ? Effect.succeed(result)
      : Effect.dieMessage(`expected a task, got a message: ${textIn(result)}`))

const stateName = (state: TaskState | undefined): string =>
  state === undefined ? "none" : TaskState[state] ?? String(state)

const show = (task: Task): void => {
  say(`  task ${task.id.slice(0, 8)}…: ${stateName(task.status?.state)}`)
  say(`    "${textIn(task.status?.message)}"`)
}

const states = (events: ReadonlyArray<StreamResponse>): Array<string> =>
  events.flatMap((event) =>
    event.payload?.$case === "statusUpdate" || event.payload?.$case === "task"
      ? [stateName(event.payload.value.status?.state)]
      : []
  )

// =============================================================================
// The story
// =============================================================================

const story = Effect.gen(function*() {
  const agent = new PaymentsAgent()
  const url = yield* serve(agent)
  say(`1. the governed payments agent listens on ${url}\n`)
  const client = yield* Effect.promise(() => new ClientFactory().createFromUrl(url))
  const token = yield* Effect.promise(() => mint("agent-7"))

  // ---------------------------------------------------------------------------
  // 2. allowed
  // ---------------------------------------------------------------------------
  say("2. agent-7: \"pay 120 EUR to ACME Cleaning\" (message/send)")
  const small = yield* send(client, "pay 120 EUR to ACME Cleaning", token)
  show(small)
  check("small payment completed", small.status?.state === TaskState.TASK_STATE_COMPLETED, stateName(small.status?.state))
  check("agent answered", textIn(small.status?.message).startsWith("done: paid 120 EUR"), textIn(small.status?.message))

  // ---------------------------------------------------------------------------
  // 3. denied, and no identity
  // ---------------------------------------------------------------------------
  say("\n3. agent-7: \"delete the payment log\"")
  const denied = yield* send(client, "delete the payment log", token)
  show(denied)
  say(`    metadata: decision ${denied.metadata?.["decision"]}, ${denied.metadata?.["decision_id"]}` +
    `, reason codes [${String(denied.metadata?.["reason_codes"])}]`)
  check("denied is rejected", denied.status?.state === TaskState.TASK_STATE_REJECTED, stateName(denied.status?.state))
  check("deny reason", String(denied.metadata?.["reason_codes"]) === "data.destructive", "reason codes differ")
  check("deny carries the decision id", typeof denied.metadata?.["decision_id"] === "string", "no decision id")

  say("  the same without a token:")
  const anonymous = yield* send(client, "pay 5 EUR to a stranger", undefined)
  show(anonymous)
  check("anonymous is rejected", anonymous.status?.state === TaskState.TASK_STATE_REJECTED, "not rejected")
  check("anonymous reason", String(anonymous.metadata?.["reason_codes"]) === "identity.missing", "reason codes differ")
  check("nothing else was paid", agent.paid.length === 1, `${agent.paid.length} payments`)

  // ---------------------------------------------------------------------------
  // 4. pending, approved, completed on the same task
  // ---------------------------------------------------------------------------
  say("\n4. agent-7: \"pay 25,000 EUR to Globex Steel\"")
  const large = yield* send(client, "pay 25,000 EUR to Globex Steel", token)
  show(large)
  const approvalId = String(large.metadata?.["approval_id"])
  say(`    metadata: approval_id ${approvalId}, approval_expires_at ${large.metadata?.["approval_expires_at"]}`)
  check("large payment waits", large.status?.state === TaskState.TASK_STATE_INPUT_REQUIRED, "not input-required")
  check("approval expiry given", typeof large.metadata?.["approval_expires_at"] === "string", "no expiry")
  check("not paid yet", agent.paid.length === 1, `${agent.paid.length} payments`)

  say("  agent-9 tries to read and to cancel agent-7's task; so does a call without a token")
  const other = yield* Effect.promise(() => mint("agent-9"))
  const refused = (call: () => Promise<unknown>) =>
    Effect.promise(() => call().then(() => "answered", (error: Error) => error.message))
  const read = yield* refused(() => client.getTask({ tenant: "", id: large.id, historyLength: undefined }, as(other)))
  const cancel = yield* refused(() => client.cancelTask({ tenant: "", id: large.id, metadata: undefined }, as(other)))
  const tokenless = yield* refused(() => client.cancelTask({ tenant: "", id: large.id, metadata: undefined }))
  say(`    agent-9 tasks/get: ${read}`)
  say(`    agent-9 tasks/cancel: ${cancel}`)
  say(`    no token, tasks/cancel: ${tokenless}`)
  check("another caller cannot read it", read.startsWith("Task not found"), read)
  check("another caller cannot cancel it", cancel.startsWith("Task not found"), cancel)
  check("no caller cannot cancel it", tokenless.includes("could not be authenticated"), tokenless)
  const stillPending = yield* Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.get(approvalId))
  check("the approval still waits", stillPending.status === "pending", stillPending.status)

  say("  agent-7 resubscribes to the task (tasks/subscribe) and waits")
  const updates = client.resubscribeTask({ tenant: "", id: large.id }, as(token))
  const snapshot = yield* Effect.promise(() => updates.next())
  check("subscribed", !snapshot.done, "the stream ended at once")

  const governance = yield* Governance.Governance
  const approved = yield* governance.approve(approvalId, { id: "alice", kind: "human", roles: [], attributes: {} })
  say(`  alice approves ${approvalId}: ${approved.status}`)

  const events = yield* Effect.promise(async () => {
    const seen: Array<StreamResponse> = []
    for await (const event of updates) seen.push(event)
    return seen
  })
  say(`  the stream carries: ${states(events).join(" → ")}`)
  check("stream ends completed", states(events).at(-1) === "TASK_STATE_COMPLETED", states(events).join(", "))

  const final = yield* Effect.promise(() => client.getTask({ tenant: "", id: large.id, historyLength: undefined }, as(token)))
  say("  tasks/get afterwards:")
  show(final)
  check("same task completed", final.status?.state === TaskState.TASK_STATE_COMPLETED, stateName(final.status?.state))
  check("large payment made once", agent.paid.filter((p) => p.includes("25,000")).length === 1, agent.paid.join("; "))
  // The approval is consumed before the agent runs: exactly once.
  const used = yield* Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.get(approvalId))
  say(`  ${approvalId} is now ${used.status}`)
  check("approval consumed", used.status === "consumed", used.status)
})

const exit = await Effect.runPromiseExit(story.pipe(Effect.scoped, Effect.provide(GovernanceLive)))
if (Exit.isFailure(exit)) {
  fail(`the story stopped early: ${Cause.pretty(exit.cause)}`)
}

report()
