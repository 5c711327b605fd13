import * as RulesFile from "@gavel/adapters/RulesFile"
import { Action, PolicySet, Rules } from "@gavel/core"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "gavel-rules-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const write = (name: string, text: string): string => {
  const file = path.join(root, name)
  fs.writeFileSync(file, text)
  return file
}

const yaml = `# Payments policy
id: payments
version: "2026-11"
combine: first-applicable
default: deny
rules:
  - id: shell-blocked
    match: { kind: tool, name: "shell.*" }
    effect: deny
    reason: { code: tool.blocked, message: Shell access is not allowed }
  - id: large-payment
    match:
      name: payments.*
      roles: [agent]
    when:
      all:
        - { field: payload.amount, gt: 1000 }
        - not: { field: metadata.channel, eq: batch }
    effect: pending
    reason: { code: payment.large, message: Large payments need finance approval }
    approval: { quorum: 2, roles: [finance], timeoutSeconds: 1800 }
  - id: payments
    match: { name: payments.* }
    effect: allow
`

// The same document as JSON, keys in another order.
const json = JSON.stringify({
  rules: [
    {
      reason: { message: "Shell access is not allowed", code: "tool.blocked" },
      effect: "deny",
      match: { name: "shell.*", kind: "tool" },
      id: "shell-blocked"
    },
    {
      id: "large-payment",
      match: { roles: ["agent"], name: "payments.*" },
      when: {
        all: [{ field: "payload.amount", gt: 1000 }, { not: { field: "metadata.channel", eq: "batch" } }]
      },
      effect: "pending",
      reason: { code: "payment.large", message: "Large payments need finance approval" },
      approval: { timeoutSeconds: 1800, roles: ["finance"], quorum: 2 }
    },
    { id: "payments", match: { name: "payments.*" }, effect: "allow" }
  ],
  default: "deny",
  combine: "first-applicable",
  version: "2026-11",
  id: "payments"
}, null, 2)

const load = (file: string) => RulesFile.load(file).pipe(Effect.provide(NodeContext.layer))

describe("RulesFile.load", () => {
  it.effect("loads JSON and YAML of the same document to the same policyHash and decisions", () =>
    Effect.gen(function*() {
      const fromYaml = yield* load(write("payments.yaml", yaml))
      const fromJson = yield* load(write("payments.json", json))
      const fromYml = yield* load(write("payments.YML", yaml))
      expect(fromYaml.policyHash).toBe(fromJson.policyHash)
      expect(fromYml.policyHash).toBe(fromJson.policyHash)
      expect(fromYaml.document).toEqual(fromJson.document)
      const action = Action.make({
        actor: { id: "agent-1", kind: "agent", roles: ["agent"] },
        kind: "tool",
        name: "payments.transfer",
        payload: { amount: 5000 },
        metadata: { channel: "web" }
      })
      const record = PolicySet.evaluateSync(Rules.policySet(fromYaml), action)
      expect(record.decision._tag).toBe("RequireApproval")
      expect(record.requiredApprovals).toBe(2)
      expect(record.policyHash).toBe(fromJson.policyHash)
    }))

  it.effect("refuses a YAML syntax error with its line and column", () =>
    Effect.gen(function*() {
      const file = write("broken.yaml", "id: payments\nrules:\n  - id: a\n    effect: [deny\n")
      const error = yield* Effect.flip(load(file))
      expect(error._tag).toBe("InvalidRules")
      const problems = (error as Rules.InvalidRules).problems
      expect(problems.length).toBeGreaterThan(0)
      expect(problems[0]!.message).toMatch(/^YAML syntax error: /)
      expect(problems[0]!.line).toBeGreaterThanOrEqual(4)
      expect(problems[0]!.column).toBeTypeOf("number")
      expect((error as Rules.InvalidRules).source).toBe(file)
      // Duplicate keys are an error too, not a silent last-one-wins.
      const duplicate = yield* Effect.flip(load(write("dup.yaml", "id: a\nid: b\n")))
      expect((duplicate as Rules.InvalidRules).problems[0]).toMatchObject({ line: 2, column: 1 })
    }))

  it.effect("puts the line of the offending value on decoding problems, in YAML and JSON", () =>
    Effect.gen(function*() {
      const bad = yaml.replace("effect: pending", "effect: maybe")
      const error = (yield* Effect.flip(load(write("bad.yaml", bad)))) as Rules.InvalidRules
      expect(error.problems.map((p) => [p.rule, p.path, p.line])).toEqual([
        ["large-payment", "rules[1].effect", 19]
      ])
      expect(Rules.formatProblem(error.problems[0]!)).toBe(
        `rule "large-payment" at rules[1].effect (line 19, column 13): unknown effect "maybe"; expected one of allow, deny, warn, pending, require-approval, require-acknowledgment, escalate, defer`
      )
      const badJson = json.replace(`"gt": 1000`, `"gt": "1000"`)
      const line = badJson.split("\n").findIndex((l) => l.includes(`"gt": "1000"`)) + 1
      const jsonError = (yield* Effect.flip(load(write("bad.json", badJson)))) as Rules.InvalidRules
      expect(jsonError.problems).toMatchObject([{ rule: "large-payment", path: "rules[1].when.all[0].gt", line }])
      const syntax = (yield* Effect.flip(load(write("syntax.json", "{\n  \"id\": \"x\",\n}")))) as Rules.InvalidRules
      expect(syntax.problems[0]!.message).toMatch(/^JSON syntax error/)
    }))

  it.effect("fails with a clear RulesFileError for a missing file or an unknown extension", () =>
    Effect.gen(function*() {
      const missing = path.join(root, "nope.yaml")
      const error = yield* Effect.flip(load(missing))
      expect(error).toBeInstanceOf(RulesFile.RulesFileError)
      expect(error).toMatchObject({ reason: "NotFound", message: `rules file "${missing}" does not exist` })
      const other = yield* Effect.flip(load(write("rules.toml", "id = 1")))
      expect(other).toMatchObject({ _tag: "RulesFileError", reason: "UnsupportedFormat" })
    }))
})
