/**
 * An audit sink that appends events to a JSON-lines file (one encoded
 * `AuditEvent` per line), through `@effect/platform`'s `FileSystem`.
 *
 * One process writes a file: the sink keeps the chain's head in memory and
 * serializes its appends. Use the SQLite or Postgres sinks when several
 * processes share a trail.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Approval, Audit, AuditSink } from "@gavel/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The file; created when missing. */
  readonly path: string
  /**
   * Whether each append waits for the data to reach the disk (`fsync`) before
   * it is acknowledged. Default `true`: an acknowledged event survives a
   * power loss.
   */
  readonly sync?: boolean | undefined
}

const decodeLine = Schema.decodeUnknown(Schema.parseJson(Audit.AuditEvent))

const storeError = (operation: string) => (cause: unknown) =>
  new Approval.StoreError({
    operation,
    detail: cause instanceof Error ? cause.message : String(cause),
    cause,
    component: "audit trail"
  })

const lineError = (path: string, line: number) =>
  new Approval.StoreError({
    operation: "read audit file",
    detail: `${path}: line ${line} is not an audit event`,
    component: "audit trail"
  })

const encoder = new TextEncoder()

const readEvents = (fs: FileSystem.FileSystem, path: string) =>
  Effect.gen(function*() {
    const exists = yield* fs.exists(path).pipe(Effect.mapError(storeError("read audit file")))
    if (!exists) return { events: [], completeBytes: 0 }
    const text = yield* fs.readFileString(path).pipe(Effect.mapError(storeError("read audit file")))
    const end = text.lastIndexOf("\n") + 1
    const lines = text.slice(0, end).split("\n")
    lines.pop()
    const events = yield* Effect.forEach(
      lines,
      (line, i) => Effect.mapError(decodeLine(line), () => lineError(path, i + 1))
    )
    return { events, completeBytes: encoder.encode(text.slice(0, end)).length }
  })

/**
 * Reads every event of a file, in file order. A line that is not an event
 * fails with a `StoreError` naming it; a last line without its newline (an
 * append cut short by a crash, never acknowledged) is ignored.
 *
 * @since 0.1.0
 * @category reading
 */
export const readFile = (
  path: string
): Effect.Effect<ReadonlyArray<Audit.AuditEvent>, Approval.StoreError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.map(readEvents(fs, path), ({ events }) => events))

/**
 * The sink, for a scope: opens (or creates) the file, reads the chain's head
 * from it, and cuts off a partial last line left by a crash. Refuses to start
 * on a file whose lines are not audit events.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<AuditSink.Service, Approval.StoreError, FileSystem.FileSystem | Scope.Scope> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const { path } = options
    const sync = options.sync ?? true
    const { completeBytes, events: existing } = yield* readEvents(fs, path)
    const file = yield* fs.open(path, { flag: "a+" }).pipe(Effect.mapError(storeError("open audit file")))
    // Bytes past the last complete line belong to an append that never finished.
    const size = (yield* file.stat.pipe(Effect.mapError(storeError("open audit file")))).size
    if (Number(size) > completeBytes) {
      yield* file.truncate(completeBytes).pipe(Effect.mapError(storeError("open audit file")))
    }
    const last = existing[existing.length - 1]
    let head: Audit.Anchor | null = last === undefined ? null : { sequence: last.sequence, hash: last.hash }
    const lock = yield* Effect.makeSemaphore(1)

    const append = (entry: Audit.Entry) =>
      lock.withPermits(1)(Effect.suspend(() => {
        const event = Audit.seal(entry, head)
        const bytes = encoder.encode(JSON.stringify(Audit.encode(event)) + "\n")
        return file.writeAll(bytes).pipe(
          Effect.zipRight(sync ? file.sync : Effect.void),
          Effect.mapError(storeError("append audit event")),
          Effect.map(() => {
            head = { sequence: event.sequence, hash: event.hash }
            return event
          }),
          Effect.uninterruptible
        )
      }))

    return AuditSink.AuditSink.of({
      append,
      read: (readOptions) =>
        Effect.map(
          readEvents(fs, path),
          ({ events }) => events.filter((event) => event.sequence >= (readOptions?.fromSequence ?? 1))
        ),
      head: Effect.sync(() => Option.fromNullable(head))
    })
  })

/**
 * The sink as a layer (the file is closed when the layer is released).
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import * as AuditFile from "@gavel/adapters/AuditFile"
 * import * as Layer from "effect/Layer"
 *
 * const AuditLive = AuditFile.layer({ path: "audit.jsonl" }).pipe(Layer.provide(NodeFileSystem.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<AuditSink.AuditSink, Approval.StoreError, FileSystem.FileSystem> =>
  Layer.scoped(AuditSink.AuditSink, make(options))
