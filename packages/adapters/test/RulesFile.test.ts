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

describe("RulesFile bounds", () => {
  const header = `id: payments\nversion: "1"\ncombine: first-applicable\n`
  const refused = (result: Effect.Effect<Rules.Rules, Rules.InvalidRules>) => Effect.runSync(Effect.flip(result)).problems
  const deepNesting = `nested too deeply: objects and lists nest at most ${Rules.maxNesting} levels in a rules document`

  it("refuses a text nested 100,000 deep, in YAML and JSON, with its position, before composing it", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000)
    for (const parse of [RulesFile.parseYaml, RulesFile.parseJson]) {
      expect(refused(parse(deep))).toEqual([{
        rule: null,
        path: "[0]".repeat(Rules.maxNesting),
        message: deepNesting,
        line: 1,
        column: Rules.maxNesting + 1
      }])
    }
    // The JSON parser copes with this depth; the positions of its problems,
    // looked up with the yaml composer, used to crash the process.
    const condition = `${"{\"not\":".repeat(100_000)}{"field":"name","eq":"x"}${"}".repeat(100_000)}`
    const json = `{"id":"payments","version":"1","combine":"first-applicable","rules":[
{"id":"deep","effect":"deny","reason":{"code":"c","message":"m"},"when":${condition}}]}`
    const problems = refused(RulesFile.parseJson(json))
    expect(problems).toMatchObject([{ rule: "deep", message: deepNesting, line: 2 }])
    expect(problems[0]!.path).toMatch(/^rules\[0\]\.when\.not\.not/)
  })

  it("refuses deep block nesting with the rule, the path and the line", () => {
    const levels = 2_000
    const text = `${header}rules:\n  - id: deep\n    effect: deny\n    reason: { code: c, message: m }\n    when:\n` +
      Array.from({ length: levels }, (_, i) => `${" ".repeat(6 + 2 * i)}not:`).join("\n") +
      `\n${" ".repeat(6 + 2 * levels)}{ field: name, eq: x }\n`
    const problems = refused(RulesFile.parseYaml(text))
    expect(problems).toMatchObject([{ rule: "deep", message: deepNesting }])
    expect(problems[0]!.path).toMatch(/^rules\[0\]\.when\.not\.not/)
    expect(problems[0]!.line).toBeGreaterThan(8)
    // Conditions at the nesting limit of conditions are refused by it, at their line.
    const deepish = `${header}rules:\n  - id: deep\n    effect: deny\n    reason: { code: c, message: m }\n    when:\n` +
      Array.from({ length: 40 }, (_, i) => `${" ".repeat(6 + 2 * i)}not:`).join("\n") +
      `\n${" ".repeat(6 + 80)}{ field: name, eq: x }\n`
    expect(refused(RulesFile.parseYaml(deepish))).toMatchObject([{
      rule: "deep",
      message: "conditions nest at most 32 levels deep",
      line: 9 + 32 // the condition at fault, the 33rd "not"
    }])
  })

  it("refuses an alias bomb and a text with too many values", () => {
    const names = "abcdefghij"
    const bomb = `${header}rules: []\ndescription: &a [x, x, x, x, x, x, x, x, x, x]\n` +
      Array.from({ length: 9 }, (_, i) =>
        `${names[i + 1]}: &${names[i + 1]} [${Array(10).fill(`*${names[i]}`).join(", ")}]`).join("\n")
    expect(refused(RulesFile.parseYaml(bomb))[0]!.message).toMatch(/resource exhaustion/)
    const many = `${header}rules: []\ndescription: [${Array(100_001).fill("1").join(",")}]\n`
    expect(refused(RulesFile.parseYaml(many))).toMatchObject([{
      rule: null,
      path: "description",
      message: expect.stringMatching(/^a rules document holds at most 100000 values/),
      line: 5,
      column: 14
    }])
    // With a higher limit it is composed, and refused for what it is (the message does not quote it all).
    const composed = refused(RulesFile.parseYaml(many, { limits: { maxValues: 200_000 } }))
    expect(composed).toMatchObject([{ path: "description", message: expect.stringMatching(/^Expected string, actual \[1,1,/) }])
    expect(composed[0]!.message.length).toBe(200)
  })

  it("finds duplicate keys of a large map in linear time, at their line", () => {
    const keys = 20_000
    const text = `${header}rules: []\nextra:\n${Array.from({ length: keys }, (_, i) => `  k${i}: 1`).join("\n")}\n  k7: 2\n`
    expect(refused(RulesFile.parseYaml(text))).toEqual([{
      rule: null,
      path: "",
      message: "YAML syntax error: Map keys must be unique",
      line: 6 + keys,
      column: 3
    }])
  })

  it.effect("takes limits when loading a file", () =>
    Effect.gen(function*() {
      const file = write("limits.yaml", yaml)
      const error = (yield* Effect.flip(RulesFile.load(file, { limits: { maxRules: 2 } }).pipe(
        Effect.provide(NodeContext.layer)
      ))) as Rules.InvalidRules
      expect(error.problems).toEqual([{
        rule: null,
        path: "rules",
        message: "a rules document holds at most 2 rules; this one has 3",
        line: 7,
        column: 3
      }])
    }))
})

