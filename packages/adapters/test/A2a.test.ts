import {
  type AgentCard,
  type AgentInterface,
  type Message,
  type Part,
  type SendMessageRequest,
  type StreamResponse,
  type Task,
  Role,
  TaskState
} from "@a2a-js/sdk"
import { type Client, ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from "@a2a-js/sdk/client"
import {
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
  AgentEvent,
  type A2ARequestHandler,
  DefaultRequestHandler,
  InMemoryTaskStore,
  ServerCallContext
} from "@a2a-js/sdk/server"
import { agentCardHandler, jsonRpcHandler, restHandler, UserBuilder } from "@a2a-js/sdk/server/express"
import { RequestMalformedError } from "@a2a-js/sdk/errors"
import * as A2a from "@gavel/adapters/A2a"
import * as Http from "@gavel/adapters/Http"
import * as Jwt from "@gavel/adapters/Jwt"
import {
  type Action,
  ApprovalStore,
  AuditSink,
  Decision,
  Governance,
  Policy,
  PolicyError,
  PolicySet
} from "@gavel/core"
import { CallLog, Fakes } from "@gavel/testing"
import { describe, expect, it } from "@effect/vitest"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import express from "express"
import * as jose from "jose"
import { createServer } from "node:http"
import type * as http from "node:http"
import type { AddressInfo } from "node:net"

// -----------------------------------------------------------------------------
// the policies: decided by the words of the message
// -----------------------------------------------------------------------------

const textOf = (action: Action.Action): string => (action.payload as A2a.Payload | undefined)?.text ?? ""

const rules = Policy.make("a2a.rules", (action) => {
  const text = textOf(action)
  if (text.includes("delete")) {
    return Decision.deny({ code: "data.destructive", message: "Deleting records over A2A is not allowed" })
  }
  if (text.includes("escalate")) {
    return Decision.escalate({ code: "risk.high", message: "Needs a security review" }, { reviewPath: "security" })
  }
  if (text.includes("transfer")) {
    return Decision.requireApproval(
      { code: "payment.needs_approval", message: "Transfers need a finance approver" },
      { roles: ["finance"], timeout: text.includes("instant") ? "300 millis" : "10 minutes" }
    )
  }
  return Decision.allow()
})

/** An external check that fails: its detail must never reach the client. */
const ledger = Policy.effect("ledger.lookup", (action) =>
  textOf(action).includes("ledger")
    ? Effect.fail(
      new PolicyError.ExternalCheckFailed({
        system: "ledger",
        operation: "lookup",
        detail: "connection refused by 10.0.0.7:5432"
      })
    )
    : Effect.succeed(Decision.notApplicable)).pipe(Policy.failClosed)

/** A check that never answers. */
const slow = Policy.effect("slow.check", (action) =>
  textOf(action).includes("slow") ? Effect.never : Effect.succeed(Decision.notApplicable)).pipe(Policy.failClosed)

const policySet = PolicySet.unsafeMake({ id: "a2a-test", version: "1", policy: Policy.all([rules, ledger, slow]) })

const governanceLive = (maxPendingPerRequester?: number) =>
  Governance.layer({ policySet, sweepInterval: "50 millis", maxPendingPerRequester }).pipe(
    Layer.provideMerge(ApprovalStore.layerMemory),
    Layer.provideMerge(AuditSink.layerMemory),
    Layer.provide(
      Fakes.identity({
        principals: {
          "agent-7": { roles: ["caller"], tenant: "acme" },
          alice: { roles: ["finance"], tenant: "acme" }
        }
      })
    ),
    Layer.provide(CallLog.layer)
  )

const GovernanceLive = governanceLive()

const secret = "an-a2a-test-secret-of-at-least-32-bytes"
const issuer = "https://id.example.test"
const audience = "payments-agent"

/** The base URL of the HTTP approvals API the approver uses, served beside the agent. */
class ApprovalsEndpoint extends Context.Tag("test/ApprovalsEndpoint")<ApprovalsEndpoint, string>() {}

const testLive = (governance: typeof GovernanceLive) =>
  Layer.effect(
    ApprovalsEndpoint,
    Effect.map(HttpServer.HttpServer, (server) =>
      `http://127.0.0.1:${server.address._tag === "TcpAddress" ? server.address.port : 0}`)
  ).pipe(
    Layer.merge(HttpLayerRouter.serve(Http.layerApprovals(), { disableLogger: true, disableListenLog: true })),
    Layer.provide(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provide(Http.layerJwt({ key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer, audience })),
    Layer.provideMerge(governance)
  )

const TestLive = testLive(GovernanceLive)

/** alice votes through the approvals API with her own token; fails with the error's tag. */
const voteViaApi = (verdict: "approve" | "reject", approvalId: string) =>
  Effect.gen(function*() {
    const base = yield* ApprovalsEndpoint
    const token = yield* mint("alice", { tenant: "acme" })
    const response = yield* Effect.promise(() =>
      fetch(`${base}/approvals/${encodeURIComponent(approvalId)}/${verdict}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(verdict === "reject" ? { note: "not this one" } : {})
      })
    )
    const body = (yield* Effect.promise(() => response.json())) as { readonly _tag?: string; readonly status?: string }
    return response.status === 200 ? body : yield* Effect.fail(body._tag ?? `HTTP ${response.status}`)
  })

const approveViaApi = (approvalId: string) => voteViaApi("approve", approvalId)
const rejectViaApi = (approvalId: string) => voteViaApi("reject", approvalId)

// -----------------------------------------------------------------------------
// the wrapped agent: echoes the message through a full task lifecycle
// -----------------------------------------------------------------------------

const textPart = (text: string): Part => ({
  content: { $case: "text", value: text },
  metadata: undefined,
  filename: "",
  mediaType: "text/plain"
})

const partsText = (message: Message | undefined): string =>
  (message?.parts ?? []).map((part) => part.content?.$case === "text" ? part.content.value : "").join("")

class EchoAgent implements AgentExecutor {
  readonly runs: Array<string> = []

  async execute(context: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const text = partsText(context.userMessage)
    this.runs.push(context.taskId)
    const ids = { taskId: context.taskId, contextId: context.contextId }
    const status = (state: TaskState, reply?: string) =>
      AgentEvent.statusUpdate({
        ...ids,
        status: {
          state,
          message: reply === undefined ? undefined : {
            ...ids,
            messageId: crypto.randomUUID(),
            role: Role.ROLE_AGENT,
            parts: [textPart(reply)],
            metadata: undefined,
            extensions: [],
            referenceTaskIds: []
          },
          timestamp: new Date().toISOString()
        },
        metadata: undefined
      })
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
    bus.publish(status(TaskState.TASK_STATE_WORKING))
    await new Promise((resolve) => setTimeout(resolve, 10))
    bus.publish(AgentEvent.artifactUpdate({
      ...ids,
      artifact: {
        artifactId: "result",
        name: "result",
        description: "",
        parts: [textPart(`echo: ${text}`)],
        metadata: undefined,
        extensions: []
      },
      append: false,
      lastChunk: true,
      metadata: undefined
    }))
    bus.publish(status(TaskState.TASK_STATE_COMPLETED, `echo: ${text}`))
    bus.finished()
  }

  async cancelTask(): Promise<void> {}
}

/** Answers with a bare message, the simplest kind of agent. */
class ReplyAgent implements AgentExecutor {
  readonly runs: Array<string> = []

  async execute(context: RequestContext, bus: ExecutionEventBus): Promise<void> {
    this.runs.push(context.taskId)
    bus.publish(AgentEvent.message({
      messageId: crypto.randomUUID(),
      contextId: context.contextId,
      taskId: "",
      role: Role.ROLE_AGENT,
      parts: [textPart(`reply to: ${partsText(context.userMessage)}`)],
      metadata: undefined,
      extensions: [],
      referenceTaskIds: []
    }))
    bus.finished()
  }

  async cancelTask(): Promise<void> {}
}

/** Claims the task for someone else in its metadata: the wrapper's owner must win. */
class ClaimingAgent implements AgentExecutor {
  async execute(context: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const ids = { taskId: context.taskId, contextId: context.contextId }
    const claim = { owner: { id: "mallory", tenant: "acme" } }
    const status = (state: TaskState) => ({ state, message: undefined, timestamp: new Date().toISOString() })
    bus.publish(AgentEvent.task({
      id: context.taskId,
      contextId: context.contextId,
      status: status(TaskState.TASK_STATE_SUBMITTED),
      history: [context.userMessage],
      artifacts: [],
      metadata: claim
    }))
    bus.publish(AgentEvent.statusUpdate({ ...ids, status: status(TaskState.TASK_STATE_WORKING), metadata: claim }))
    bus.finished()
  }

  async cancelTask(): Promise<void> {}
}

/** Fails with an error whose message must not reach the client through the wrapper. */
class FailingAgent implements AgentExecutor {
  readonly runs: Array<string> = []

  async execute(context: RequestContext): Promise<void> {
    this.runs.push(context.taskId)
    throw new Error("database password rejected for user payments")
  }

  async cancelTask(): Promise<void> {}
}

// -----------------------------------------------------------------------------
// a real server on 127.0.0.1, the SDK's own client
// -----------------------------------------------------------------------------


const mint = (subject: string, options: { readonly tenant?: string; readonly key?: string } = {}) =>
  Effect.promise(() =>
    new jose.SignJWT({ kind: "agent", ...(options.tenant === undefined ? {} : { tenant: options.tenant }) })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(subject)
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime("5 minutes")
      .sign(new TextEncoder().encode(options.key ?? secret))
  )

const bearer = (token: string) => ({ serviceParameters: { authorization: `Bearer ${token}` } })

interface Harness<A> {
  readonly agent: A
  /** The v1.0 JSON-RPC client, created from the served agent card. */
  readonly client: Client
  /** A v0.3 JSON-RPC client (`message/send`, `message/stream`, `tasks/get`). */
  readonly legacy: Client
  /** The JSON-RPC methods the v0.3 client put on the wire. */
  readonly wire: Array<string>
  /** agent-7's token (tenant acme). */
  readonly token: string
  /** The server's base URL. */
  readonly base: string
}

/** Serves `agent`, wrapped, until the end of the test; returns the clients. */
const harness = <A extends AgentExecutor>(agent: A) =>
  Effect.gen(function*() {
    const taskStore = new InMemoryTaskStore()
    const verifier = yield* Jwt.make({ key: { _tag: "Secret", secret: Redacted.make(secret) }, issuer, audience })
    const options: A2a.Options = {
      agentId: "payments-agent",
      taskStore,
      authenticate: A2a.bearer(verifier),
      evaluationTimeout: "300 millis"
    }
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
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const endpoint = (protocolVersion: string): AgentInterface => ({
      url: `${base}/a2a/jsonrpc`,
      protocolBinding: "JSONRPC",
      tenant: "",
      protocolVersion
    })
    const card: AgentCard = {
      name: "Payments agent",
      description: "Moves money, under governance",
      supportedInterfaces: [
        endpoint("1.0"),
        endpoint("0.3"),
        { url: `${base}/a2a/rest`, protocolBinding: "HTTP+JSON", tenant: "", protocolVersion: "1.0" }
      ],
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
    // The documented wiring: every caller is the SDK's same anonymous user; the guard keeps tasks apart,
    // and each body is bounded before the SDK reads it.
    const handler = new DefaultRequestHandler(card, taskStore, executor)
    const requestHandler = A2a.guard(handler, options)
    const userBuilder = UserBuilder.noAuthentication
    app.use("/.well-known/agent-card.json", agentCardHandler({ agentCardProvider: requestHandler }))
    app.use(
      "/a2a/jsonrpc",
      A2a.limitBody({ transport: "jsonrpc" }),
      jsonRpcHandler({ requestHandler, userBuilder, legacyCompat: { enabled: true } })
    )
    app.use(
      "/a2a/rest",
      A2a.limitBody({ transport: "rest" }),
      restHandler({ requestHandler: A2a.guard(handler, { ...options, transport: "rest" }), userBuilder })
    )

    const client = yield* Effect.promise(() => new ClientFactory().createFromUrl(base))
    const wire: Array<string> = []
    const recording: typeof fetch = (input, init) => {
      if (typeof init?.body === "string") wire.push((JSON.parse(init.body) as { method: string }).method)
      return fetch(input, init)
    }
    const legacyFactory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: true }, fetchImpl: recording })]
    }))
    const legacy = yield* Effect.promise(() =>
      legacyFactory.createFromAgentCard({ ...card, supportedInterfaces: [endpoint("0.3")] })
    )
    const token = yield* mint("agent-7", { tenant: "acme" })
    return { agent, client, legacy, wire, token, base } satisfies Harness<A>
  })

const request = (text: string, options: { readonly tenant?: string; readonly taskId?: string } = {}) =>
  ({
    tenant: options.tenant ?? "",
    message: {
      messageId: crypto.randomUUID(),
      contextId: "",
      taskId: options.taskId ?? "",
      role: Role.ROLE_USER,
      parts: [textPart(text)],
      metadata: undefined,
      extensions: [],
      referenceTaskIds: []
    },
    configuration: undefined,
    metadata: undefined
  }) satisfies SendMessageRequest

const asTask = (result: Message | Task): Task => {
  if (!("status" in result)) throw new Error(`expected a task, got a message: ${partsText(result)}`)
  return result
}

const send = (client: Client, text: string, token: string | undefined, options?: { readonly tenant?: string }) =>
  Effect.map(
    Effect.promise(() => client.sendMessage(request(text, options), token === undefined ? undefined : bearer(token))),
    asTask
  )

const getTask = (client: Client, id: string, token: string) =>
  Effect.promise(() => client.getTask({ tenant: "", id, historyLength: undefined }, bearer(token)))

const as = (token: string | undefined) => token === undefined ? undefined : bearer(token)

/** The JSON-RPC error a call was refused with (a call that succeeds fails the test). */
const refusal = (call: () => Promise<unknown>) =>
  Effect.flatMap(
    Effect.tryPromise({ try: call, catch: (error) => error as { readonly envelopeCode?: number; readonly message?: string } }),
    (answer) => Effect.dieMessage(`expected a refusal, got ${JSON.stringify(answer)}`)
  ).pipe(Effect.flip, Effect.map((error) => ({ code: error.envelopeCode, message: String(error.message) })))

/** A v1.0 JSON-RPC call by hand: resolves with the result, rejects with the error (`envelopeCode`, `message`). */
const rpc = async (base: string, method: string, params: unknown, token: string): Promise<unknown> => {
  const response = await fetch(`${base}/a2a/jsonrpc`, {
    method: "POST",
    headers: { "content-type": "application/json", "a2a-version": "1.0", authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params })
  })
  const body = (await response.json()) as {
    readonly result?: unknown
    readonly error?: { readonly code: number; readonly message: string }
  }
  if (body.error !== undefined) throw { envelopeCode: body.error.code, message: body.error.message }
  return body.result
}

/** The first event of a stream, to be refused. */
const firstOf = (stream: AsyncGenerator<StreamResponse, void, undefined>) => () => stream.next()

/** Polls `tasks/get` until the task reaches `state` (a few seconds at most). */
const awaitState = (client: Client, id: string, token: string, state: TaskState) =>
  getTask(client, id, token).pipe(
    Effect.filterOrFail((task) => task.status?.state === state, () => "not yet" as const),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeout("5 seconds")
  )

const collect = (stream: AsyncGenerator<StreamResponse, void, undefined>) =>
  Effect.promise(async () => {
    const events: Array<StreamResponse> = []
    for await (const event of stream) events.push(event)
    return events
  })

/** The states a stream carried, in order (task snapshots and status updates). */
const statesOf = (events: ReadonlyArray<StreamResponse>): Array<TaskState> =>
  events.flatMap((event) =>
    event.payload?.$case === "statusUpdate"
      ? [event.payload.value.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED]
      : event.payload?.$case === "task"
      ? [event.payload.value.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED]
      : []
  )

const lastStatus = (events: ReadonlyArray<StreamResponse>) => {
  const updates = events.flatMap((event) => event.payload?.$case === "statusUpdate" ? [event.payload.value] : [])
  return updates[updates.length - 1]
}

const statusText = (task: Task): string => partsText(task.status?.message)
const stateOf = (task: Task): TaskState | undefined => task.status?.state

const expectRejected = (task: Task, codes: ReadonlyArray<string>) => {
  expect(stateOf(task)).toBe(TaskState.TASK_STATE_REJECTED)
  expect(task.metadata?.["reason_codes"]).toEqual(codes)
  for (const code of codes) expect(statusText(task)).toContain(code)
}

// -----------------------------------------------------------------------------
// the tests
// -----------------------------------------------------------------------------

/** agent-7 parks a transfer; returns the task and its approval id. */
const parked = (client: Client, token: string) =>
  Effect.gen(function*() {
    const task = yield* send(client, "transfer 90000 EUR", token)
    expect(stateOf(task)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
    return { task, approvalId: String(task.metadata?.["approval_id"]) }
  })

describe("A2a.wrap, end to end over JSON-RPC", () => {
  it.scopedLive("allowed: the wrapped agent runs and the task completes with its output", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "hello there", token)
      expect(stateOf(task)).toBe(TaskState.TASK_STATE_COMPLETED)
      expect(statusText(task)).toBe("echo: hello there")
      expect(partsText({ parts: task.artifacts[0]?.parts ?? [] } as Message)).toBe("echo: hello there")
      expect(agent.runs).toEqual([task.id])
      const trail = yield* AuditSink.AuditSink.pipe(Effect.flatMap((sink) => sink.read()))
      expect(trail.map((event) => event.type)).toEqual(["decision.evaluated", "execution.started", "execution.succeeded"])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("denied: rejected with the decision id and reason codes; the agent never runs", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "delete every invoice", token)
      expectRejected(task, ["data.destructive"])
      expect(task.metadata?.["decision"]).toBe("Deny")
      const decisionId = task.metadata?.["decision_id"]
      expect(typeof decisionId).toBe("string")
      expect(statusText(task)).toContain(String(decisionId))
      // The policy's message stays in the audit trail, not in the answer.
      expect(statusText(task)).not.toContain("not allowed")
      expect(stateOf(yield* getTask(client, task.id, token))).toBe(TaskState.TASK_STATE_REJECTED)
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("a failed check is rejected with its reason code, never its error message", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "reconcile the ledger", token)
      expectRejected(task, ["external.unavailable"])
      expect(JSON.stringify(task)).not.toContain("10.0.0.7")
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("a message whose data is no action (nested too deep) is rejected with the path, never a crash", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      let deep: unknown = { leaf: true }
      for (let i = 0; i < 200; i++) deep = { next: deep }
      const message = request("hello")
      const dataPart: Part = { content: { $case: "data", value: deep as never }, metadata: undefined, filename: "", mediaType: "application/json" }
      const task = asTask(yield* Effect.promise(() =>
        client.sendMessage({ ...message, message: { ...message.message, parts: [dataPart] } }, bearer(token))
      ))
      expectRejected(task, ["a2a.action_invalid"])
      expect(statusText(task)).toContain("payload.data[0].next")
      expect(statusText(task)).toContain("too_deep")
      expect(agent.runs).toEqual([])
      const trail = yield* AuditSink.AuditSink.pipe(Effect.flatMap((sink) => sink.read()))
      expect(trail).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("an evaluation that times out is rejected (fail closed)", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "a slow request", token)
      expectRejected(task, ["gavel.evaluation_timeout"])
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("too many approvals pending for the caller: rejected with approval.too_many_pending", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      for (const n of [1, 2]) {
        expect(stateOf(yield* send(client, `transfer ${n} EUR`, token))).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      }
      const task = yield* send(client, "transfer 3 EUR", token)
      expectRejected(task, ["approval.too_many_pending"])
      const decisionId = task.metadata?.["decision_id"]
      expect(typeof decisionId).toBe("string")
      expect(statusText(task)).toContain(String(decisionId))
      expect(task.metadata?.["approval_id"]).toBeUndefined()
      const trail = yield* AuditSink.AuditSink.pipe(Effect.flatMap((sink) => sink.read()))
      expect(trail.filter((e) => e.type === "approval.refused").map((e) => e.decisionId)).toEqual([decisionId])
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(testLive(governanceLive(2)))))

  it.scopedLive("escalated: rejected with the escalation's reason codes", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "escalate this", token)
      expectRejected(task, ["risk.high"])
      expect(task.metadata?.["decision"]).toBe("Escalate")
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("no token, a forged token, or another tenant: rejected before any evaluation", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      expectRejected(yield* send(client, "hello", undefined), ["identity.missing"])
      const forged = yield* mint("agent-7", { tenant: "acme", key: `${secret}-not-ours` })
      expectRejected(yield* send(client, "hello", forged), ["identity.invalid"])
      expectRejected(yield* send(client, "hello", "not-a-jwt"), ["identity.invalid"])
      expectRejected(yield* send(client, "hello", token, { tenant: "globex" }), ["identity.tenant_mismatch"])
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("pending, then approved: input-required with the approval, then the same task completes", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const started = Date.now()
      const task = yield* send(client, "transfer 20000 EUR", token)
      expect(stateOf(task)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      const approvalId = task.metadata?.["approval_id"]
      const expiresAt = task.metadata?.["approval_expires_at"]
      expect(typeof approvalId).toBe("string")
      expect(typeof expiresAt).toBe("string")
      // The approval window of the policy: 10 minutes.
      const window = Date.parse(String(expiresAt)) - started
      expect(window).toBeGreaterThan(9 * 60_000)
      expect(window).toBeLessThanOrEqual(10 * 60_000 + 1_000)
      expect(task.metadata?.["reason_codes"]).toEqual(["payment.needs_approval"])
      expect(task.status?.message?.metadata?.["approval_id"]).toBe(approvalId)
      expect(statusText(task)).toContain(String(approvalId))
      expect(agent.runs).toEqual([])

      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(String(approvalId))).status).toBe("pending")

      yield* approveViaApi(String(approvalId))
      const done = yield* awaitState(client, task.id, token, TaskState.TASK_STATE_COMPLETED)
      expect(statusText(done)).toBe("echo: transfer 20000 EUR")
      expect(partsText({ parts: done.artifacts[0]?.parts ?? [] } as Message)).toBe("echo: transfer 20000 EUR")
      expect(done.metadata?.["approval_id"]).toBe(approvalId)
      expect(agent.runs).toEqual([task.id])
      expect((yield* store.get(String(approvalId))).status).toBe("consumed")
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("pending, then rejected by the approver: the task ends rejected and the agent never runs", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "transfer 30000 EUR", token)
      expect(stateOf(task)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      yield* rejectViaApi(String(task.metadata?.["approval_id"]))
      const ended = yield* awaitState(client, task.id, token, TaskState.TASK_STATE_REJECTED)
      expectRejected(ended, ["approval.rejected"])
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("pending, then expired (300 ms window, 50 ms sweep): the task ends rejected", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "instant transfer 25000 EUR", token)
      expect(stateOf(task)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      const ended = yield* awaitState(client, task.id, token, TaskState.TASK_STATE_REJECTED)
      expectRejected(ended, ["approval.expired"])
      expect(agent.runs).toEqual([])
      // A late approval changes nothing.
      const late = yield* Effect.either(approveViaApi(String(task.metadata?.["approval_id"])))
      expect(late._tag).toBe("Left")
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("cancelled while pending: the task is canceled, its approval withdrawn, and the agent never runs", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "transfer 40000 EUR", token)
      const canceled = yield* Effect.promise(() => client.cancelTask({ tenant: "", id: task.id, metadata: undefined }, bearer(token)))
      expect(stateOf(canceled)).toBe(TaskState.TASK_STATE_CANCELED)
      const approvalId = String(task.metadata?.["approval_id"])
      expect((yield* ApprovalStore.ApprovalStore.pipe(Effect.flatMap((store) => store.get(approvalId)))).status).toBe(
        "cancelled"
      )
      expect(yield* Effect.flip(approveViaApi(approvalId))).toBe("AlreadyResolved")
      yield* Effect.sleep("100 millis")
      expect(stateOf(yield* getTask(client, task.id, token))).toBe(TaskState.TASK_STATE_CANCELED)
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("a follow-up message on a parked task leaves it waiting for the same approval", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const task = yield* send(client, "transfer 50000 EUR", token)
      const again = asTask(yield* Effect.promise(() =>
        client.sendMessage(request("any news?", { taskId: task.id }), bearer(token))
      ))
      expect(again.id).toBe(task.id)
      expect(stateOf(again)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      expect(again.metadata?.["approval_id"]).toBe(task.metadata?.["approval_id"])
      expect(agent.runs).toEqual([])
      yield* approveViaApi(String(task.metadata?.["approval_id"]))
      yield* awaitState(client, task.id, token, TaskState.TASK_STATE_COMPLETED)
      expect(agent.runs).toEqual([task.id])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("a message-only agent: its reply completes the approved task", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new ReplyAgent())
      const direct = yield* Effect.promise(() => client.sendMessage(request("hello"), bearer(token)))
      expect("status" in direct).toBe(false)
      expect(partsText(direct as Message)).toBe("reply to: hello")

      const task = yield* send(client, "transfer 70000 EUR", token)
      expect(stateOf(task)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      yield* approveViaApi(String(task.metadata?.["approval_id"]))
      const done = yield* awaitState(client, task.id, token, TaskState.TASK_STATE_COMPLETED)
      expect(statusText(done)).toBe("reply to: transfer 70000 EUR")
      expect(agent.runs).toHaveLength(2)
      expect(agent.runs[1]).toBe(task.id)
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("an agent that fails after approval: the task fails, without the agent's error message", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new FailingAgent())
      const task = yield* send(client, "transfer 80000 EUR", token)
      const approvalId = String(task.metadata?.["approval_id"])
      yield* approveViaApi(approvalId)
      const failed = yield* awaitState(client, task.id, token, TaskState.TASK_STATE_FAILED)
      expect(failed.metadata?.["reason_codes"]).toEqual(["a2a.agent_failed"])
      expect(JSON.stringify(failed)).not.toContain("password")
      expect(agent.runs).toEqual([task.id])
      // The approval was used: the work started, exactly once.
      expect((yield* Effect.flatMap(ApprovalStore.ApprovalStore, (store) => store.get(approvalId))).status)
        .toBe("consumed")
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("closing the wrapper's scope stops waiting: an approval granted afterwards runs nothing", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { agent, client, token } = yield* Scope.extend(harness(new EchoAgent()), scope)
      const task = yield* send(client, "transfer 60000 EUR", token)
      expect(stateOf(task)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      yield* Scope.close(scope, Exit.void)
      // Interrupting the parked call leaves the approval open (resume never cancels it).
      const store = yield* ApprovalStore.ApprovalStore
      const approvalId = String(task.metadata?.["approval_id"])
      expect((yield* store.get(approvalId)).status).toBe("pending")
      yield* approveViaApi(approvalId)
      yield* Effect.sleep("100 millis")
      expect(agent.runs).toEqual([])
      expect((yield* store.get(approvalId)).status).toBe("approved")
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("streaming: the stream carries input-required; resubscribing carries the completion", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const first = yield* collect(client.sendMessageStream(request("transfer 12000 EUR"), bearer(token)))
      expect(statesOf(first)).toEqual([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_INPUT_REQUIRED])
      const pending = lastStatus(first)
      const approvalId = pending?.metadata?.["approval_id"]
      expect(typeof approvalId).toBe("string")
      expect(typeof pending?.metadata?.["approval_expires_at"]).toBe("string")
      const taskId = pending?.taskId ?? ""

      const updates = client.resubscribeTask({ tenant: "", id: taskId }, bearer(token))
      const snapshot = yield* Effect.promise(() => updates.next())
      expect(snapshot.done).toBe(false)
      yield* approveViaApi(String(approvalId))
      const rest = yield* collect(updates)
      expect(statesOf(rest)).toEqual([
        TaskState.TASK_STATE_SUBMITTED,
        TaskState.TASK_STATE_WORKING,
        TaskState.TASK_STATE_COMPLETED
      ])
      expect(rest.some((event) => event.payload?.$case === "artifactUpdate")).toBe(true)
      expect(partsText(lastStatus(rest)?.status?.message)).toBe("echo: transfer 12000 EUR")
      expect(agent.runs).toEqual([taskId])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("streaming a denial: the stream ends with the rejected status", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const events = yield* collect(client.sendMessageStream(request("delete it all"), bearer(token)))
      expect(statesOf(events)).toEqual([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_REJECTED])
      expect(lastStatus(events)?.metadata?.["reason_codes"]).toEqual(["data.destructive"])
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("v0.3 clients (message/send, message/stream, tasks/get) get the same states", () =>
    Effect.gen(function*() {
      const { agent, legacy, token, wire } = yield* harness(new EchoAgent())
      const allowed = yield* send(legacy, "hello from 0.3", token)
      expect(stateOf(allowed)).toBe(TaskState.TASK_STATE_COMPLETED)

      const pending = yield* send(legacy, "transfer 15000 EUR", token)
      expect(stateOf(pending)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      const approvalId = pending.metadata?.["approval_id"]
      expect(typeof approvalId).toBe("string")
      expect(typeof pending.metadata?.["approval_expires_at"]).toBe("string")
      yield* approveViaApi(String(approvalId))
      const done = yield* awaitState(legacy, pending.id, token, TaskState.TASK_STATE_COMPLETED)
      expect(statusText(done)).toBe("echo: transfer 15000 EUR")

      const denied = yield* collect(legacy.sendMessageStream(request("delete from 0.3"), bearer(token)))
      expect(statesOf(denied).at(-1)).toBe(TaskState.TASK_STATE_REJECTED)
      expect(lastStatus(denied)?.metadata?.["reason_codes"]).toEqual(["data.destructive"])

      expect(agent.runs).toEqual([allowed.id, pending.id])
      expect(wire).toContain("message/send")
      expect(wire).toContain("message/stream")
      expect(wire).toContain("tasks/get")
    }).pipe(Effect.provide(TestLive)))
})

describe("A2a.guard: tasks for their owner only", () => {
  const TASK_NOT_FOUND = -32001

  /** Nothing happened to the parked task: still input-required, its approval still pending, the agent idle. */
  const untouched = (client: Client, token: string, task: Task, approvalId: string, agent: EchoAgent) =>
    Effect.gen(function*() {
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(approvalId)).status).toBe("pending")
      const now = yield* getTask(client, task.id, token)
      expect(stateOf(now)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      expect(now.history.map((message) => partsText(message))).toEqual(task.history.map((message) => partsText(message)))
      expect(agent.runs).toEqual([])
    })

  it.scopedLive("anonymous: get, list, cancel, resubscribe and a follow-up are refused as unauthenticated, with no effect", () =>
    Effect.gen(function*() {
      const { agent, client, legacy, token } = yield* harness(new EchoAgent())
      const { approvalId, task } = yield* parked(client, token)
      const forged = yield* mint("agent-7", { tenant: "acme", key: `${secret}-not-ours` })
      for (const credential of [undefined, forged]) {
        const calls: ReadonlyArray<() => Promise<unknown>> = [
          // v0.3 (`tasks/get`) and v1.0 clients alike
          () => legacy.getTask({ tenant: "", id: task.id, historyLength: undefined }, as(credential)),
          () => client.getTask({ tenant: "", id: task.id, historyLength: undefined }, as(credential)),
          () =>
            client.listTasks({
              tenant: "",
              contextId: "",
              status: TaskState.TASK_STATE_UNSPECIFIED,
              pageToken: "",
              statusTimestampAfter: undefined
            }, as(credential)),
          () => client.cancelTask({ tenant: "", id: task.id, metadata: undefined }, as(credential)),
          firstOf(client.resubscribeTask({ tenant: "", id: task.id }, as(credential))),
          () => client.sendMessage(request("cancel it", { taskId: task.id }), as(credential))
        ]
        for (const call of calls) {
          const refused = yield* refusal(call)
          expect(refused.code).toBe(A2a.UNAUTHENTICATED_CODE)
          expect(refused.message).toContain(credential === undefined ? "(missing)" : "(invalid)")
          expect(refused.message).not.toContain(task.id)
        }
      }
      yield* untouched(client, token, task, approvalId, agent)
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("another caller (or the same id in another tenant): not found, as for an id that does not exist, with no effect", () =>
    Effect.gen(function*() {
      const { agent, base, client, token } = yield* harness(new EchoAgent())
      const { approvalId, task } = yield* parked(client, token)
      // The owner gets past the guard to the handler, which has no push notifications.
      expect((yield* refusal(() => rpc(base, "GetTaskPushNotificationConfig", { taskId: task.id, id: "hook" }, token))).code)
        .toBe(-32003)
      for (const other of [yield* mint("mallory", { tenant: "acme" }), yield* mint("agent-7", { tenant: "globex" })]) {
        const byId: ReadonlyArray<(id: string) => () => Promise<unknown>> = [
          (id) => () => client.getTask({ tenant: "", id, historyLength: undefined }, bearer(other)),
          (id) => () => client.cancelTask({ tenant: "", id, metadata: undefined }, bearer(other)),
          (id) => firstOf(client.resubscribeTask({ tenant: "", id }, bearer(other))),
          (id) => () => client.sendMessage(request("cancel it", { taskId: id }), bearer(other)),
          // The SDK's client does not send push-config calls to an agent without push notifications: raw JSON-RPC.
          (id) => () => rpc(base, "GetTaskPushNotificationConfig", { taskId: id, id: "hook" }, other)
        ]
        for (const call of byId) {
          const foreign = yield* refusal(call(task.id))
          const missing = yield* refusal(call(crypto.randomUUID()))
          expect(foreign.code).toBe(TASK_NOT_FOUND)
          expect(missing.code).toBe(TASK_NOT_FOUND)
          expect(foreign.message.replace(task.id, "ID")).toBe(missing.message.replace(/[0-9a-f-]{36}/, "ID"))
        }
        // A reference to someone else's task does not reach the agent.
        const referencing = request("hello", {})
        const refused = yield* refusal(() =>
          client.sendMessage(
            { ...referencing, message: { ...referencing.message, referenceTaskIds: [task.id] } },
            bearer(other)
          )
        )
        expect(refused.code).toBe(TASK_NOT_FOUND)
        const listed = yield* Effect.promise(() =>
          client.listTasks({
            tenant: "",
            contextId: "",
            status: TaskState.TASK_STATE_UNSPECIFIED,
            pageToken: "",
            statusTimestampAfter: undefined
          }, bearer(other))
        )
        expect(listed.tasks).toEqual([])
        expect(listed.totalSize).toBe(0)
      }
      yield* untouched(client, token, task, approvalId, agent)
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("the owner lists, reads and cancels its task; cancelling withdraws the approval", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const { approvalId, task } = yield* parked(client, token)
      const second = yield* parked(client, token)
      // Someone else's task and an anonymous one are in the same store, and not listed.
      yield* parked(client, yield* mint("mallory", { tenant: "acme" }))
      expectRejected(yield* send(client, "hello", undefined), ["identity.missing"])
      const list = (pageSize: number, pageToken: string) =>
        Effect.promise(() =>
          client.listTasks({
            tenant: "",
            contextId: "",
            status: TaskState.TASK_STATE_UNSPECIFIED,
            pageSize,
            pageToken,
            statusTimestampAfter: undefined
          }, bearer(token))
        )
      const first = yield* list(1, "")
      expect(first.totalSize).toBe(2)
      expect(first.tasks).toHaveLength(1)
      const rest = yield* list(1, first.nextPageToken)
      expect(rest.nextPageToken).toBe("")
      expect([...first.tasks, ...rest.tasks].map((t) => t.id).sort()).toEqual([task.id, second.task.id].sort())
      expect(first.tasks[0]?.metadata?.["owner"]).toEqual({ id: "agent-7", tenant: "acme" })

      expect(stateOf(yield* getTask(client, task.id, token))).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      const canceled = yield* Effect.promise(() =>
        client.cancelTask({ tenant: "", id: task.id, metadata: undefined }, bearer(token))
      )
      expect(stateOf(canceled)).toBe(TaskState.TASK_STATE_CANCELED)
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(approvalId)).status).toBe("cancelled")
      expect((yield* store.get(second.approvalId)).status).toBe("pending")
      expect(agent.runs).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("the owner keeps its task after the agent ran: an allowed task and an approved one stay readable", () =>
    Effect.gen(function*() {
      const { agent, client, token } = yield* harness(new EchoAgent())
      const allowed = yield* send(client, "hello", token)
      expect(stateOf(yield* getTask(client, allowed.id, token))).toBe(TaskState.TASK_STATE_COMPLETED)
      const { approvalId, task } = yield* parked(client, token)
      yield* approveViaApi(approvalId)
      const done = yield* awaitState(client, task.id, token, TaskState.TASK_STATE_COMPLETED)
      expect(done.metadata?.["owner"]).toEqual({ id: "agent-7", tenant: "acme" })
      const other = yield* mint("mallory", { tenant: "acme" })
      expect((yield* refusal(() => client.getTask({ tenant: "", id: task.id, historyLength: undefined }, bearer(other)))).code)
        .toBe(TASK_NOT_FOUND)
      expect(agent.runs).toEqual([allowed.id, task.id])
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("the owner is the wrapper's: an agent's own `owner` metadata changes nothing", () =>
    Effect.gen(function*() {
      const { client, token } = yield* harness(new ClaimingAgent())
      const task = yield* send(client, "hello", token)
      const read = yield* getTask(client, task.id, token)
      expect(stateOf(read)).toBe(TaskState.TASK_STATE_WORKING)
      expect(read.metadata?.["owner"]).toEqual({ id: "agent-7", tenant: "acme" })
      const mallory = yield* mint("mallory", { tenant: "acme" })
      expect((yield* refusal(() => client.getTask({ tenant: "", id: task.id, historyLength: undefined }, bearer(mallory)))).code)
        .toBe(TASK_NOT_FOUND)
    }).pipe(Effect.provide(TestLive)))
})


describe("raw JSON-RPC and REST, past what the SDK's client sends", () => {
  const TASK_NOT_FOUND = -32001
  const INVALID_PARAMS = -32602

  interface Answer {
    readonly status: number
    readonly type: string
    readonly text: string
    readonly json: {
      readonly id?: unknown
      readonly result?: unknown
      readonly error?: { readonly code: number; readonly message: string; readonly status?: string }
    }
  }

  /** A request with a raw body, answered within seconds (a hang fails the test). */
  const raw = (base: string, path: string, init: { readonly method?: string; readonly body?: string; readonly token?: string | undefined; readonly version?: string }) =>
    Effect.promise(async (): Promise<Answer> => {
      const response = await fetch(`${base}${path}`, {
        method: init.method ?? "POST",
        headers: {
          ...(init.body === undefined ? {} : { "content-type": "application/json" }),
          "a2a-version": init.version ?? "1.0",
          ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` })
        },
        ...(init.body === undefined ? {} : { body: init.body }),
        signal: AbortSignal.timeout(10_000)
      })
      const text = await response.text()
      // A v0.3 resubscription always answers a stream: its one event carries the error.
      const data = /^data: (.*)$/m.exec(text)?.[1] ?? text
      return { status: response.status, type: response.headers.get("content-type") ?? "", text, json: JSON.parse(data) }
    })

  const rpcRaw = (base: string, body: string, token?: string, version = "1.0") =>
    raw(base, "/a2a/jsonrpc", { body, token, version })

  /** A JSON-RPC error answer: HTTP 200, JSON, the code, no stack trace. */
  const expectRpcError = (answer: Answer, code: number) => {
    expect(answer.status).toBe(200)
    expect(answer.type).toContain("application/json")
    expect(answer.json.result).toBeUndefined()
    expect(answer.json.error?.code).toBe(code)
    expect(answer.text).not.toMatch(/\bat .*\.(js|ts):\d+/)
    expect(answer.text).not.toContain("Maximum call stack")
  }

  /** A REST error answer: the status, a JSON error body with that code, no stack trace. */
  const expectRestError = (answer: Answer, status: number) => {
    expect(answer.status).toBe(status)
    expect(answer.type).toContain("json")
    expect(answer.json.error?.code).toBe(status)
    expect(answer.text).not.toMatch(/\bat .*\.(js|ts):\d+/)
  }

  /** JSON text nested `depth` arrays deep around `leaf` (2 bytes a level: 20,000 deep is 40 KB). */
  const nested = (depth: number, leaf = "1") => "[".repeat(depth) + leaf + "]".repeat(depth)

  const message = (fields: string) =>
    `{"messageId":"${crypto.randomUUID()}","role":"ROLE_USER",${fields}}`

  const trail = AuditSink.AuditSink.pipe(Effect.flatMap((sink) => sink.read()))

  /** Nothing happened to the parked task, and nothing else ran: its approval pending, one decision in the trail. */
  const untouched = (client: Client, token: string, task: Task, approvalId: string, agent: EchoAgent) =>
    Effect.gen(function*() {
      const store = yield* ApprovalStore.ApprovalStore
      expect((yield* store.get(approvalId)).status).toBe("pending")
      expect(stateOf(yield* getTask(client, task.id, token))).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      expect(agent.runs).toEqual([])
      expect((yield* trail).map((event) => event.type)).toEqual(["decision.evaluated", "approval.requested"])
    })

  it.scopedLive("a message nested 3,000 or 20,000 deep (parts, metadata, v0.3): -32602 with the path, and nothing runs", () =>
    Effect.gen(function*() {
      const { agent, base, client, token } = yield* harness(new EchoAgent())
      const { approvalId, task } = yield* parked(client, token)
      for (const depth of [3_000, 20_000]) {
        const bodies = [
          `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message(`"parts":[{"data":${nested(depth)}}]`)}}}`,
          `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message(`"parts":[{"text":"hello"}],"metadata":{"deep":${nested(depth)}}`)}}}`,
          `{"jsonrpc":"2.0","id":7,"method":"SendStreamingMessage","params":{"message":${message(`"parts":[{"text":"hello"}]`)},"metadata":{"deep":${nested(depth)}}}}`,
          // continuing the parked task
          `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message(`"taskId":"${task.id}","parts":[{"data":${nested(depth)}}]`)}}}`
        ]
        for (const body of bodies) {
          const answer = yield* rpcRaw(base, body, token)
          expectRpcError(answer, INVALID_PARAMS)
          expect(answer.json.id).toBe(7)
          expect(answer.json.error?.message).toContain("(too_deep)")
          expect(answer.json.error?.message).toMatch(/^body\.params\.(message\.(parts\[0\]\.data|metadata\.deep)|metadata\.deep)\[0\]/)
        }
        // v0.3 `message/send`, through the SDK's compat layer
        const legacy = yield* rpcRaw(
          base,
          `{"jsonrpc":"2.0","id":7,"method":"message/send","params":{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"data","data":{"deep":${nested(depth)}}}]}}}`,
          token,
          "0.3"
        )
        expectRpcError(legacy, INVALID_PARAMS)
        expect(legacy.json.error?.message).toContain("(too_deep)")
      }
      yield* untouched(client, token, task, approvalId, agent)
      // Within the bound (1,000 deep), the same shapes still reach the wrapper, and the agent.
      const shallow = yield* rpcRaw(
        base,
        `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message(`"parts":[{"text":"hi"}],"metadata":{"deep":${nested(990)}}`)}}}`,
        token
      )
      expect(shallow.json.error).toBeUndefined()
      expect(agent.runs).toHaveLength(1)
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("a body over the size limit: a JSON-RPC error (REST: 413), never Express's HTML page", () =>
    Effect.gen(function*() {
      const { agent, base, client, token } = yield* harness(new EchoAgent())
      const { approvalId, task } = yield* parked(client, token)
      const big = `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message(`"parts":[{"text":"${"x".repeat(200_000)}"}]`)}}}`
      const answer = yield* rpcRaw(base, big, token)
      expectRpcError(answer, INVALID_PARAMS)
      expect(answer.json.error?.message).toContain("larger than 102400 bytes")
      const rest = yield* raw(base, "/a2a/rest/message:send", { body: `{"message":${message(`"parts":[{"text":"${"x".repeat(200_000)}"}]`)}}`, token })
      expectRestError(rest, 413)
      // Streamed, without a length: cut off once it passes the limit.
      const chunk = new TextEncoder().encode(" ".repeat(16 * 1024))
      let sent = 0
      const streamed = yield* Effect.promise(async () => {
        const response = await fetch(`${base}/a2a/jsonrpc`, {
          method: "POST",
          headers: { "content-type": "application/json", "a2a-version": "1.0", authorization: `Bearer ${token}` },
          body: new ReadableStream<Uint8Array>({
            pull: (controller) => {
              sent += chunk.length
              if (sent > 1024 * 1024) controller.close()
              else controller.enqueue(chunk)
            }
          }),
          duplex: "half",
          signal: AbortSignal.timeout(10_000)
        } as RequestInit)
        return { status: response.status, json: (await response.json()) as Answer["json"] }
      })
      expect(streamed.status).toBe(200)
      expect(streamed.json.error?.code).toBe(INVALID_PARAMS)
      expect(streamed.json.error?.message).toContain("larger than 102400 bytes")
      // Not JSON at all: the parse error, in each transport's shape.
      expectRpcError(yield* rpcRaw(base, "{\"jsonrpc\":", token), -32700)
      expectRestError(yield* raw(base, "/a2a/rest/message:send", { body: "{\"message\":", token }), 400)
      yield* untouched(client, token, task, approvalId, agent)
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("task calls with no, a forged or another caller's credential, with deep or odd params: refused, with no effect", () =>
    Effect.gen(function*() {
      const { agent, base, client, token } = yield* harness(new EchoAgent())
      const { approvalId, task } = yield* parked(client, token)
      const forged = yield* mint("agent-7", { tenant: "acme", key: `${secret}-not-ours` })
      const mallory = yield* mint("mallory", { tenant: "acme" })
      const calls = (id: string, extra: string) => [
        ["GetTask", `{"id":"${id}"${extra}}`],
        ["CancelTask", `{"id":"${id}"${extra}}`],
        ["SubscribeToTask", `{"id":"${id}"${extra}}`],
        ["ListTasks", `{"pageSize":10${extra}}`],
        ["SendMessage", `{"message":${message(`"taskId":"${id}","parts":[{"text":"cancel it"}]`)}${extra}}`]
      ] as const
      const request = (method: string, params: string) => `{"jsonrpc":"2.0","id":3,"method":"${method}","params":${params}}`
      for (const credential of [undefined, forged, mallory, token]) {
        // Over the limits: refused before anyone is asked who is calling, even the owner.
        for (const [method, params] of calls(task.id, `,"metadata":{"deep":${nested(3_000)}}`)) {
          const answer = yield* rpcRaw(base, request(method, params), credential)
          expectRpcError(answer, INVALID_PARAMS)
          expect(answer.json.error?.message).toContain("(too_deep)")
        }
        if (credential === token) continue
        // Duplicate keys (the last one counts, as in JSON.parse) and `__proto__` keys change nothing.
        const odd = `,"id":"${task.id}","__proto__":{"id":"${task.id}","tenant":"acme"},"metadata":{"__proto__":{"owner":"agent-7"}}`
        for (const [method, params] of [...calls(crypto.randomUUID(), odd), ...calls(task.id, "")]) {
          const answer = yield* rpcRaw(base, request(method, params), credential)
          if (method === "ListTasks" && credential === mallory) {
            expect((answer.json.result as { readonly tasks: ReadonlyArray<unknown> }).tasks).toEqual([])
            continue
          }
          expectRpcError(answer, credential === mallory ? TASK_NOT_FOUND : A2a.UNAUTHENTICATED_CODE)
          expect(answer.json.error?.message).not.toContain("Maximum call stack")
        }
        // v0.3: `tasks/get`, `tasks/cancel`, `tasks/resubscribe`
        for (const method of ["tasks/get", "tasks/cancel", "tasks/resubscribe"]) {
          const answer = yield* rpcRaw(base, request(method, `{"id":"${task.id}","metadata":{"deep":${nested(3_000)}}}`), credential, "0.3")
          expect(answer.status).toBe(200)
          expect(answer.json.error?.code).toBe(INVALID_PARAMS)
          const shallow = yield* rpcRaw(base, request(method, `{"id":"${task.id}"}`), credential, "0.3")
          expect(shallow.json.error?.code).toBe(credential === mallory ? TASK_NOT_FOUND : A2a.UNAUTHENTICATED_CODE)
        }
      }
      yield* untouched(client, token, task, approvalId, agent)
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("a message's `__proto__` keys claim no skill and no tenant", () =>
    Effect.gen(function*() {
      const { agent, base, token } = yield* harness(new EchoAgent())
      const answer = yield* rpcRaw(
        base,
        `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"__proto__":{"tenant":"globex"},"message":${
          message(`"parts":[{"text":"hello"}],"metadata":{"__proto__":{"skill":"admin"}}`)
        }}}`,
        token
      )
      expect(answer.json.error).toBeUndefined()
      expect(agent.runs).toHaveLength(1)
      const evaluated = (yield* trail).find((event) => event.type === "decision.evaluated")
      const text = JSON.stringify(evaluated)
      expect(text).toContain("a2a.agent_id")
      expect(text).not.toContain("a2a.skill")
      expect(text).not.toContain("globex")
    }).pipe(Effect.provide(TestLive)))

  it.scopedLive("REST: anonymous callers get 401, other callers 404, each with a JSON error body and no effect", () =>
    Effect.gen(function*() {
      const { agent, base, client, token } = yield* harness(new EchoAgent())
      const { approvalId, task } = yield* parked(client, token)
      const forged = yield* mint("agent-7", { tenant: "acme", key: `${secret}-not-ours` })
      const mallory = yield* mint("mallory", { tenant: "acme" })
      const calls = (id: string) => [
        { method: "GET", path: `/a2a/rest/tasks/${id}` },
        { method: "POST", path: `/a2a/rest/tasks/${id}:cancel` },
        { method: "GET", path: `/a2a/rest/tasks/${id}:subscribe` },
        { method: "GET", path: `/a2a/rest/tasks/${id}/pushNotificationConfigs/hook` },
        { method: "POST", path: "/a2a/rest/message:send", body: `{"message":${message(`"taskId":"${id}","parts":[{"text":"cancel it"}]`)}}` }
      ]
      for (const credential of [undefined, forged]) {
        for (const call of [...calls(task.id), { method: "GET", path: "/a2a/rest/tasks" }]) {
          const answer = yield* raw(base, call.path, { ...call, token: credential })
          expectRestError(answer, 401)
          expect(answer.json.error?.message).toContain(credential === undefined ? "(missing)" : "(invalid)")
          expect(answer.text).toContain("UNAUTHENTICATED")
        }
      }
      for (const id of [task.id, crypto.randomUUID()]) {
        for (const call of calls(id)) {
          const answer = yield* raw(base, call.path, { ...call, token: mallory })
          expectRestError(answer, 404)
          expect(answer.json.error?.status).toBe("NOT_FOUND")
        }
      }
      const listed = yield* raw(base, "/a2a/rest/tasks", { method: "GET", token: mallory })
      expect(listed.status).toBe(200)
      expect(listed.text).not.toContain(task.id)
      // Deep, on REST: 400 with the path.
      const deep = yield* raw(base, "/a2a/rest/message:send", {
        body: `{"message":${message(`"taskId":"${task.id}","parts":[{"data":${nested(3_000)}}]`)}}`,
        token: mallory
      })
      expectRestError(deep, 400)
      expect(deep.json.error?.message).toContain("(too_deep)")
      // The owner reads its task over REST.
      const read = yield* raw(base, `/a2a/rest/tasks/${task.id}`, { method: "GET", token })
      expect(read.status).toBe(200)
      expect((read.json as { readonly id?: string }).id).toBe(task.id)
      yield* untouched(client, token, task, approvalId, agent)
    }).pipe(Effect.provide(TestLive)))

  it.effect("from code: params 20,000 deep are refused by the guard before it authenticates or the handler sees them", () =>
    Effect.promise(async () => {
      let deep: unknown = 1
      for (let i = 0; i < 20_000; i++) deep = { next: deep }
      const reached: Array<string> = []
      const handler = new Proxy({} as A2ARequestHandler, {
        get: (_, method) => (..._args: ReadonlyArray<unknown>) => {
          reached.push(String(method))
          throw new Error("the handler was reached")
        }
      })
      let asked = 0
      const guarded = A2a.guard(handler, {
        authenticate: () => Effect.sync(() => asked++).pipe(Effect.zipRight(Effect.fail(new A2a.Unauthenticated({ reason: "missing" }))))
      })
      const context = new ServerCallContext()
      const metadata = { deep } as never
      const message = { ...request("hello", { taskId: "t-1" }).message, metadata }
      const calls: ReadonlyArray<() => Promise<unknown>> = [
        () => guarded.getTask({ tenant: "", id: "t-1", historyLength: undefined, deep } as never, context),
        () => guarded.cancelTask({ tenant: "", id: "t-1", metadata }, context),
        () => guarded.listTasks({ tenant: "", contextId: "", status: 0, pageToken: "", statusTimestampAfter: undefined, deep } as never, context),
        () => guarded.resubscribe({ tenant: "", id: "t-1", deep } as never, context).next(),
        () => guarded.sendMessage({ ...request("hello"), message }, context),
        () => guarded.sendMessageStream({ ...request("hello"), message }, context).next(),
        () => guarded.getTaskPushNotificationConfig({ tenant: "", taskId: "t-1", id: "hook", deep } as never, context)
      ]
      for (const call of calls) {
        const error = await call().then(() => undefined, (error: unknown) => error)
        expect(error).toBeInstanceOf(RequestMalformedError)
        expect(String((error as Error).message)).toMatch(/^params\.(deep|metadata\.deep|message\.metadata\.deep)\.next\.next.*\(too_deep\)$/)
      }
      expect(asked).toBe(0)
      expect(reached).toEqual([])
    }))
})
