/**
 * Who owns an A2A task: the principal that sent the message that created
 * it. The wrapper stamps the owner into the task's metadata (so it lives
 * exactly as long as the task does, in whatever task store keeps it); the
 * guard compares it with the authenticated caller of every task read or
 * change.
 */
import type { Task } from "@a2a-js/sdk"
import {
  type AgentExecutionEvent,
  type ExecutionEventBus,
  AgentEvent
} from "@a2a-js/sdk/server"
import type { Action } from "@gavel/core"
import { ForwardingBus } from "./bus.js"

/**
 * The task metadata key of the owner: `{ id, tenant }` (`tenant` is `""`
 * for a principal without one).
 *
 * @internal
 */
export const OWNER_KEY = "owner"

/** @internal */
export interface Owner {
  readonly id: string
  readonly tenant: string
}

/** @internal */
export const ownerOf = (principal: Action.Principal): Owner => ({ id: principal.id, tenant: principal.tenant ?? "" })

/**
 * Whether `principal` owns `task`. A task without an owner (one created
 * by an anonymous caller, or before owners were recorded) belongs to
 * nobody.
 *
 * @internal
 */
export const owns = (task: Task, principal: Action.Principal): boolean => {
  const owner: unknown = task.metadata?.[OWNER_KEY]
  if (typeof owner !== "object" || owner === null) return false
  const { id, tenant } = owner as { readonly id?: unknown; readonly tenant?: unknown }
  return id === principal.id && tenant === (principal.tenant ?? "")
}

/**
 * The event with the owner in its task's metadata (task events only; the
 * SDK merges later updates into the stored task's metadata, so the owner
 * stays).
 *
 * @internal
 */
export const stamp = (event: AgentExecutionEvent, owner: Owner | undefined): AgentExecutionEvent =>
  owner === undefined || event.kind !== "task"
    ? event
    : AgentEvent.task({ ...event.data, metadata: { ...event.data.metadata, [OWNER_KEY]: { ...owner } } })

const withoutOwner = (metadata: Record<string, unknown>): Record<string, unknown> => {
  const { [OWNER_KEY]: _, ...rest } = metadata
  return rest
}

/**
 * An event of the wrapped executor: a task carries the owner, whatever
 * metadata the executor gives it; an update cannot change the owner (the
 * SDK would merge its metadata into the task's).
 *
 * @internal
 */
export const owned = (event: AgentExecutionEvent, owner: Owner | undefined): AgentExecutionEvent => {
  switch (event.kind) {
    case "task":
      return owner === undefined
        ? AgentEvent.task({ ...event.data, metadata: withoutOwner(event.data.metadata ?? {}) })
        : stamp(event, owner)
    case "statusUpdate":
      return event.data.metadata !== undefined && OWNER_KEY in event.data.metadata
        ? AgentEvent.statusUpdate({ ...event.data, metadata: withoutOwner(event.data.metadata) })
        : event
    case "artifactUpdate":
      return event.data.metadata !== undefined && OWNER_KEY in event.data.metadata
        ? AgentEvent.artifactUpdate({ ...event.data, metadata: withoutOwner(event.data.metadata) })
        : event
    default:
      return event
  }
}

/**
 * The bus the wrapped executor publishes on: the owner is the wrapper's
 * alone ({@link owned}).
 *
 * @internal
 */
export class OwnedBus extends ForwardingBus {
  constructor(target: ExecutionEventBus, private readonly owner: Owner | undefined) {
    super(target)
  }

  publish(event: AgentExecutionEvent): void {
    this.target.publish(owned(event, this.owner))
  }
}
