/**
 * The audit entries the runtime writes, one builder per kind of step.
 */
import * as Cause from "effect/Cause"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as SchemaAST from "effect/SchemaAST"
import type * as Action from "../Action.js"
import * as Approval from "../Approval.js"
import type * as Audit from "../Audit.js"
import * as DecisionRecord from "../DecisionRecord.js"
import * as Override from "../Override.js"

// -----------------------------------------------------------------------------
// encoding
// -----------------------------------------------------------------------------

/** What a compiled encoder answers when the value is not one it can encode itself. */
const unfit: unique symbol = Symbol.for("@gavel/core/internal/auditEntries/unfit")

type Encoder = (value: unknown) => unknown

const parseOptions: SchemaAST.ParseOptions = {}

/** The right value of a synchronous parse result, or `unfit`. */
const rightOf = (result: unknown): unknown =>
  Either.isEither(result) && Either.isRight(result) ? result.right : unfit

/**
 * Compiles the encoding side of a schema AST into a plain function, for the
 * shapes the audited types are made of: structs, records of strings,
 * arrays, unions, literals, keywords, refinements (their filters run),
 * declarations and synchronous final transformations (`Schema.Date`,
 * `Schema.DurationFromMillis`). It produces what `Schema.encodeSync` does
 * for the same value — same members, same order, same validation — and
 * answers `unfit` for any value it would not encode; an AST it does not
 * know makes it throw at compile time. Run on every step of every approval,
 * `Schema.encodeSync` was a fifth of the CPU of an approval cycle.
 */
const compile = (ast: SchemaAST.AST): Encoder => {
  // `Schema.Date`, the most common transformation by far, without the
  // generic machinery: a valid Date, as its ISO string.
  if (ast === Schema.Date.ast) {
    return (u) => u instanceof Date && !Number.isNaN(u.getTime()) ? u.toISOString() : unfit
  }
  switch (ast._tag) {
    case "StringKeyword":
      return (u) => typeof u === "string" ? u : unfit
    case "NumberKeyword":
      return (u) => typeof u === "number" ? u : unfit
    case "BooleanKeyword":
      return (u) => typeof u === "boolean" ? u : unfit
    case "UndefinedKeyword":
      return (u) => u === undefined ? u : unfit
    case "UnknownKeyword":
    case "AnyKeyword":
      return (u) => u
    case "Literal": {
      const literal = ast.literal
      return (u) => u === literal ? u : unfit
    }
    case "Refinement": {
      const from = compile(ast.from)
      // The filter applies to the type side, once `from` has checked its shape.
      return (u) => {
        const v = from(u)
        return v === unfit || Option.isSome(ast.filter(u, parseOptions, ast)) ? unfit : v
      }
    }
    case "Declaration": {
      const parse = ast.encodeUnknown(...ast.typeParameters)
      return (u) => rightOf(parse(u, parseOptions, ast))
    }
    case "Transformation": {
      const transformation = ast.transformation
      if (transformation._tag !== "FinalTransformation") break
      const to = compile(ast.to)
      const from = compile(ast.from)
      return (u) => {
        const a = to(u)
        if (a === unfit) return unfit
        const i = rightOf(transformation.encode(a, parseOptions, ast, u))
        return i === unfit ? unfit : from(i)
      }
    }
    case "TupleType": {
      if (ast.elements.length !== 0 || ast.rest.length !== 1) break
      const item = compile(ast.rest[0]!.type)
      return (u) => {
        if (!Array.isArray(u)) return unfit
        const out = new Array<unknown>(u.length)
        for (let i = 0; i < u.length; i++) {
          const v = item(u[i])
          if (v === unfit) return unfit
          out[i] = v
        }
        return out
      }
    }
    case "TypeLiteral": {
      if (ast.propertySignatures.length === 0 && ast.indexSignatures.length === 0) break
      if (ast.indexSignatures.some((s) => s.parameter._tag !== "StringKeyword")) break
      if (ast.propertySignatures.some((ps) => typeof ps.name !== "string")) break
      const names = ast.propertySignatures.map((ps) => ps.name as string)
      const optional = ast.propertySignatures.map((ps) => ps.isOptional)
      const types = ast.propertySignatures.map((ps) => compile(ps.type))
      const indexes = ast.indexSignatures.map((s) => compile(s.type))
      const hasOwn = Object.prototype.hasOwnProperty
      return (u) => {
        if (typeof u !== "object" || u === null || Array.isArray(u)) return unfit
        const input = u as Record<string, unknown>
        const out: Record<string, unknown> = {}
        for (let i = 0; i < names.length; i++) {
          const name = names[i]!
          if (optional[i] && !hasOwn.call(input, name)) continue
          const v = types[i]!(input[name])
          if (v === unfit) return unfit
          out[name] = v
        }
        for (const index of indexes) {
          for (const key of Object.keys(input)) {
            const v = index(input[key])
            if (v === unfit) return unfit
            if (!names.includes(key)) out[key] = v
          }
        }
        return out
      }
    }
    case "Union": {
      // Only unions whose members no value satisfies twice with different
      // encodings, so that the first fitting member is the one Schema picks:
      // primitives (encoded as themselves) and at most one other member, or
      // structs told apart by distinct `_tag` literals.
      const types = membersOf(ast)
      const members = types.map(compile)
      const tags = types.map(tagOf)
      const others = types.filter((t) => !isPrimitive(t))
      const tagged = others.every((t) => tagOf(t) !== undefined) &&
        new Set(others.map(tagOf)).size === others.length
      if (others.length > 1 && !tagged) break
      return (u) => {
        const tag = typeof u === "object" && u !== null ? (u as { readonly _tag?: unknown })._tag : undefined
        for (let i = 0; i < members.length; i++) {
          if (tags[i] !== undefined && tags[i] !== tag) continue
          const v = members[i]!(u)
          if (v !== unfit) return v
        }
        return unfit
      }
    }
  }
  throw new Error(`auditEntries: no fast encoder for ${ast._tag}`)
}

/** A union's members, those of nested unions in their place. */
const membersOf = (ast: SchemaAST.Union): ReadonlyArray<SchemaAST.AST> =>
  ast.types.flatMap((t) => t._tag === "Union" ? membersOf(t) : [t])

const isPrimitive = (ast: SchemaAST.AST): boolean =>
  ast._tag === "Literal" || ast._tag === "StringKeyword" || ast._tag === "NumberKeyword" ||
  ast._tag === "BooleanKeyword" || ast._tag === "UndefinedKeyword"

/** The `_tag` literal of a struct (under refinements), if it has one. */
const tagOf = (ast: SchemaAST.AST): SchemaAST.LiteralValue | undefined => {
  while (ast._tag === "Refinement") ast = ast.from
  if (ast._tag !== "TypeLiteral") return undefined
  const tag = ast.propertySignatures.find((ps) => ps.name === "_tag")
  return tag !== undefined && !tag.isOptional && tag.type._tag === "Literal" ? tag.type.literal : undefined
}

/**
 * `Schema.encodeSync(schema)`, through a compiled encoder when the schema
 * compiles and the value fits it; anything else (an invalid value, a shape
 * the compiler does not know) goes through `Schema.encodeSync` itself, which
 * encodes it or throws exactly as before.
 */
const encoder = <A, I>(schema: Schema.Schema<A, I>): (value: A) => I => {
  const slow = Schema.encodeSync(schema)
  let fast: Encoder
  try {
    fast = compile(schema.ast)
  } catch {
    return slow
  }
  return (value) => {
    const out = fast(value)
    return out === unfit ? slow(value) : out as I
  }
}

/** @internal exported for the tests that hold the compiled encoders to `Schema.encodeSync` */
export const encodeRecord = encoder(DecisionRecord.DecisionRecord)
/** @internal */
export const encodeApproval = encoder(Approval.ApprovalRequest)
const encodeOverride = encoder(Override.Override)

/** An entry with its `eventId`: one a step writes, which the audit outbox can hold. */
export type Identified = Audit.Entry & { readonly eventId: string }

/** What an event about a decision (and no approval) says of it: its ids, actor and trace. */
const aboutDecision = (record: DecisionRecord.DecisionRecord) => ({
  decisionId: record.decisionId,
  approvalId: null,
  requestId: record.requestId,
  correlationId: record.correlationId,
  actor: record.inputs.actor.id,
  trace: record.trace
})

/** A decision was made: the (already redacted) record, and the masked payload when included. */
export const evaluated = (
  record: DecisionRecord.DecisionRecord,
  payload: unknown
): Identified => ({
  type: "decision.evaluated",
  at: record.evaluatedAt,
  ...aboutDecision(record),
  eventId: `decision.evaluated:${record.decisionId}`,
  data: payload === undefined ? { record: encodeRecord(record) } : { record: encodeRecord(record), payload }
})

/** The caller gave up while the policies ran: what was being decided, never its inputs. */
export const cancelled = (action: Action.Action, at: Date): Audit.Entry => ({
  type: "evaluation.cancelled",
  at,
  decisionId: null,
  approvalId: null,
  requestId: action.requestId ?? null,
  correlationId: action.correlationId ?? null,
  actor: action.actor.id,
  trace: action.trace ?? null,
  data: { kind: action.kind, name: action.name }
})

/** A step of an approval's lifecycle, with the approval as it stands after it. */
export const approval = (
  type:
    | "approval.requested"
    | "approval.voted"
    | "approval.resolved"
    | "approval.expired"
    | "approval.consumed"
    | "approval.cancelled",
  request: Approval.ApprovalRequest,
  at: Date,
  actor: string | null,
  data: Audit.Entry["data"] = approvalData(request)
): Identified => ({
  type,
  at,
  decisionId: request.decisionId,
  approvalId: request.id,
  requestId: request.requestId,
  correlationId: request.correlationId,
  actor,
  trace: request.trace,
  data,
  // An approval has each of these steps once; votes, one per voter, by their count.
  eventId: type === "approval.voted" ? `${type}:${request.id}:${request.votes.length}` : `${type}:${request.id}`
})

/** The `data` of an approval's events: the approval, encoded. */
export const approvalData = (request: Approval.ApprovalRequest): Audit.Entry["data"] => ({
  approval: encodeApproval(request)
})

/**
 * The approval a decision asked for was not opened: its requester or tenant
 * had too many pending. No approval exists, so `approvalId` is null.
 */
export const refused = (
  record: DecisionRecord.DecisionRecord,
  error: Approval.TooManyPending,
  at: Date
): Audit.Entry => ({
  type: "approval.refused",
  at,
  ...aboutDecision(record),
  eventId: `approval.refused:${record.decisionId}`,
  data: { reason: "too_many_pending", scope: error.scope, key: error.key, limit: error.limit }
})

/** An override was granted. */
export const overrideGranted = (
  override: Override.Override,
  record: DecisionRecord.DecisionRecord
): Identified => ({
  type: "override.granted",
  at: override.grantedAt,
  decisionId: override.overrides,
  approvalId: null,
  requestId: record.requestId,
  correlationId: record.correlationId,
  actor: override.grantedBy,
  trace: record.trace,
  data: { override: encodeOverride(override) },
  eventId: `override.granted:${override.id}`
})

/**
 * What an execution step refers to: the decision that let it run, the
 * approval if one did, and for a run without one, a random id (a decision
 * that proceeds may run more than once; an approval, once).
 */
export interface Execution {
  readonly record: DecisionRecord.DecisionRecord
  readonly approvalId: string | null
  readonly overrideId: string | null
  readonly runId: string | null
}

/** A fresh random id for a run without an approval. */
export const runId = (): string => {
  const bytes = new Uint8Array(8)
  globalThis.crypto.getRandomValues(bytes)
  let out = ""
  for (const b of bytes) out += b.toString(16).padStart(2, "0")
  return out
}

const execution = (
  type: "execution.started" | "execution.succeeded" | "execution.failed",
  of: Execution,
  at: Date,
  data: Audit.Entry["data"]
): Identified => ({
  type,
  at,
  decisionId: of.record.decisionId,
  approvalId: of.approvalId,
  requestId: of.record.requestId,
  correlationId: of.record.correlationId,
  actor: of.record.inputs.actor.id,
  trace: of.record.trace,
  data,
  eventId: of.approvalId !== null ? `${type}:${of.approvalId}` : `${type}:${of.record.decisionId}:${of.runId}`
})

/** The protected work is about to run. */
export const started = (of: Execution, at: Date): Identified =>
  execution("execution.started", of, at, of.overrideId === null ? {} : { overrideId: of.overrideId })

/**
 * The work ended. A failure is described by its kind and, for a typed error,
 * its `_tag` — never its message, which may quote inputs.
 */
export const ended = (of: Execution, at: Date, exit: Exit.Exit<unknown, unknown>): Identified =>
  Exit.isSuccess(exit)
    ? execution("execution.succeeded", of, at, {})
    : execution("execution.failed", of, at, failureOf(exit.cause))

/**
 * How work failed: a typed `failure` (with the error's `_tag`, if it has
 * one), a `defect` or an interruption — never the error's message, which
 * may quote inputs.
 */
export const failureOf = (
  cause: Cause.Cause<unknown>
): { readonly failure: "failure" | "defect" | "interrupted"; readonly tag: string | null } => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "None") {
    return { failure: Cause.isInterruptedOnly(cause) ? "interrupted" : "defect", tag: null }
  }
  const error = failure.value
  return {
    failure: "failure",
    tag: typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
      ? error._tag
      : null
  }
}

/** What an event about durable work says of it: its approval's ids and trace. */
const aboutApproval = (request: Approval.ApprovalRequest) => ({
  decisionId: request.decisionId,
  approvalId: request.id,
  requestId: request.requestId,
  correlationId: request.correlationId,
  trace: request.trace
})

/** Durable work may have run and gavel cannot tell: it is never run again. */
export const inDoubt = (
  request: Approval.ApprovalRequest,
  at: Date,
  data: { readonly handler: string; readonly attempts: number; readonly reason: string }
): Identified => ({
  type: "execution.in_doubt",
  at,
  ...aboutApproval(request),
  actor: null,
  data,
  eventId: `execution.in_doubt:${request.id}`
})

/** An operator resolved in-doubt work. */
export const resolvedInDoubt = (
  request: Approval.ApprovalRequest,
  at: Date,
  by: string,
  data: { readonly state: "succeeded" | "failed"; readonly note: string | null }
): Identified => ({
  type: "execution.resolved",
  at,
  ...aboutApproval(request),
  actor: by,
  data,
  eventId: `execution.resolved:${request.id}`
})
