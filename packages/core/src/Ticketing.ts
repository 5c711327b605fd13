/**
 * The ticketing port: look up a ticket (change request, incident) that
 * authorizes an action.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Action from "./Action.js"
import * as Decision from "./Decision.js"
import * as Policy from "./Policy.js"
import type { ExternalCheckFailed, PolicyCancelled } from "./PolicyError.js"

/**
 * @since 0.1.0
 * @category models
 */
export const Ticket = Schema.Struct({
  id: Schema.String,
  status: Schema.String,
  assignee: Schema.optional(Schema.String),
  linkedChange: Schema.optional(Schema.String)
}).annotations({ identifier: "Ticket" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Ticket extends Schema.Schema.Type<typeof Ticket> {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The ticket, or `None` when it does not exist. */
  readonly lookup: (ticketId: string) => Effect.Effect<Option.Option<Ticket>, ExternalCheckFailed>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Ticketing extends Context.Tag("@gavel/core/Ticketing")<Ticketing, Service>() {}

/**
 * Allows the action when the ticket it references exists and is in one of
 * `statuses` (the ticket becomes an evidence reference of the decision);
 * denies when the action names no ticket (`ticket.missing`), the ticket does
 * not exist (`ticket.not_found`) or is in another status (`ticket.status`).
 * By default the ticket id is `action.metadata.ticket`.
 *
 * @since 0.1.0
 * @category checks
 */
export const requireStatus = (
  statuses: string | ReadonlyArray<string>,
  options?: {
    readonly id?: string | undefined
    readonly ticketOf?: ((action: Action.Action) => string | undefined) | undefined
  }
): Policy.Policy<ExternalCheckFailed | PolicyCancelled, Ticketing> => {
  const wanted = typeof statuses === "string" ? [statuses] : statuses
  const ticketOf = options?.ticketOf ?? ((action: Action.Action) => action.metadata.ticket)
  return Policy.effect(options?.id ?? `ticketing.status(${wanted.join("|")})`, (action) => {
    const ticketId = ticketOf(action)
    if (ticketId === undefined || ticketId === "") {
      return Effect.succeed(Decision.deny({ code: "ticket.missing", message: "The action references no ticket" }))
    }
    return Effect.flatMap(Ticketing, (ticketing) =>
      Effect.map(ticketing.lookup(ticketId), (found): Decision.Result => {
        if (Option.isNone(found)) {
          return Decision.deny({ code: "ticket.not_found", message: `Ticket "${ticketId}" does not exist` })
        }
        const ticket = found.value
        return wanted.includes(ticket.status)
          ? Decision.allow({
            code: "ticket.verified",
            message: `Ticket "${ticket.id}" is ${ticket.status}`,
            evidenceRefs: [`ticket:${ticket.id}`]
          })
          : Decision.deny({
            code: "ticket.status",
            message: `Ticket "${ticket.id}" is ${ticket.status}; required: ${wanted.join(", ")}`,
            evidenceRefs: [`ticket:${ticket.id}`]
          })
      }))
  })
}
