/**
 * A bus over another: listeners are the target's, so whoever listens to the
 * task's real bus hears what is published here; subclasses say what
 * publishing does.
 */
import type {
  AgentExecutionEvent,
  EventListener,
  ExecutionEventBus,
  ExecutionEventName,
  FinishedListener
} from "@a2a-js/sdk/server"

/** @internal */
export abstract class ForwardingBus implements ExecutionEventBus {
  constructor(protected readonly target: ExecutionEventBus) {}

  abstract publish(event: AgentExecutionEvent): void

  readonly on = this.forward("on")
  readonly off = this.forward("off")
  readonly once = this.forward("once")

  private forward(method: "on" | "off" | "once") {
    return (eventName: ExecutionEventName, listener: EventListener | FinishedListener): this => {
      if (eventName === "event") this.target[method](eventName, listener as EventListener)
      else this.target[method](eventName, listener as FinishedListener)
      return this
    }
  }

  removeAllListeners(eventName?: ExecutionEventName): this {
    this.target.removeAllListeners(eventName)
    return this
  }

  finished(): void {
    this.target.finished()
  }
}
