/**
 * The continuation of a parked A2A task: once its approval is granted, the
 * wrapped executor runs on a bus that records each event itself, since the
 * SDK's request handler stopped listening when the task became
 * input-required.
 */
import { TaskState } from "@a2a-js/sdk"
import {
  type AgentExecutionEvent,
  type ExecutionEventBus,
  type RequestContext,
  type TaskStore,
  AgentEvent,
  ResultManager
} from "@a2a-js/sdk/server"
import * as Effect from "effect/Effect"
import { ForwardingBus } from "./bus.js"
import { iso } from "./events.js"

/**
 * A bus for the continuation of a parked task: each event is written to the
 * task store (the SDK's request handler no longer listens), then published
 * on the task's real bus for resubscribed clients. A `message` reply
 * becomes the task's completed status, since the task already exists.
 * `finished()` is left to the SDK, which settles the bus when `execute`
 * returns.
 *
 * @internal
 */
export class ContinuationBus extends ForwardingBus {
  private chain: Promise<void> = Promise.resolve()
  private failures = 0
  private readonly results: ResultManager

  constructor(
    target: ExecutionEventBus,
    private readonly context: RequestContext,
    taskStore: TaskStore,
    private readonly now: () => number
  ) {
    super(target)
    this.results = new ResultManager(taskStore, context.context)
  }

  publish(event: AgentExecutionEvent): void {
    const mapped = event.kind === "message"
      ? AgentEvent.statusUpdate({
        taskId: this.context.taskId,
        contextId: this.context.contextId,
        status: {
          state: TaskState.TASK_STATE_COMPLETED,
          message: { ...event.data, taskId: this.context.taskId, contextId: this.context.contextId },
          timestamp: iso(this.now())
        },
        metadata: undefined
      })
      : event
    this.chain = this.chain
      .then(() => this.results.processEvent(mapped))
      .catch(() => {
        this.failures++
      })
      .then(() => this.target.publish(mapped))
  }

  /** Waits until every event published so far is written and forwarded. */
  readonly drain: Effect.Effect<void> = Effect.suspend(() =>
    Effect.flatMap(
      Effect.promise(() => this.chain),
      () =>
        this.failures === 0
          ? Effect.void
          : Effect.logWarning(`gavel: ${this.failures} event(s) of task ${this.context.taskId} were not stored`)
    )
  )

  // Listeners are the task's real bus's (ForwardingBus): whoever listens to the task hears the continuation.
  override finished(): void {}
}
