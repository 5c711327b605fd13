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
    // 4 MB of indentation: over the default maxDocumentBytes.
    const problems = refused(RulesFile.parseYaml(text, { limits: { maxDocumentBytes: 8 * 1024 * 1024 } }))
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
      path: "extra.k7",
      message: "duplicate key \"k7\" (first at line 13, column 3)",
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


describe("RulesFile: a text is read one way", () => {
  const header = `id: payments\nversion: "1"\ncombine: first-applicable\n`
  const refused = (result: Effect.Effect<Rules.Rules, Rules.InvalidRules>) => Effect.runSync(Effect.flip(result)).problems
  const problemsOf = (file: string) =>
    Effect.map(Effect.flip(load(file)), (error) => {
      expect(error._tag).toBe("InvalidRules")
      return (error as Rules.InvalidRules).problems
    })

  it.effect("refuses a JSON key that appears twice, where the last one would win, at its path, line and column", () =>
    Effect.gen(function*() {
    const text = `{"id":"p","version":"1","combine":"first-applicable","rules":[\n` +
      `{"id":"ok","match":{"name":"files.read"},"effect":"deny","reason":{"code":"c","message":"m"},"effect":"allow"}]}`
    const expected = [{
      rule: "ok",
      path: "rules[0].effect",
      message: "duplicate key \"effect\" (first at line 2, column 42)",
      line: 2,
      column: 94
    }]
    expect(yield* problemsOf(write("dup.json", text))).toEqual(expected)
    expect(refused(RulesFile.parseJson(text))).toEqual(expected)
  }))

  it("refuses YAML keys that toJS would merge: 1 and '1', ~ and '', forms equal in NFC, and keys that are lists", () => {
    expect(refused(RulesFile.parseYaml(`${header}rules: []\nx:\n  1: a\n  '1': b\n  ~: c\n  '': d\n  café: e\n  cafe\u0301: f\n  ? [a, b]\n  : g\n`)))
      .toEqual([
        { rule: null, path: "x.1", message: "duplicate key \"1\" (first at line 6, column 3, written 1)", line: 7, column: 3 },
        { rule: null, path: "x.", message: "duplicate key \"\" (first at line 8, column 3, written ~)", line: 9, column: 3 },
        {
          rule: null,
          path: "x.cafe\u0301",
          message: "duplicate key \"cafe\u0301\" (first at line 10, column 3, as \"café\", the same in Unicode NFC)",
          line: 11,
          column: 3
        },
        {
          rule: null,
          path: "x",
          message: "a key is a string, a number, true, false or null, not a list or an object",
          line: 12,
          column: 5
        }
      ])
  })

  it("refuses tags outside the YAML 1.2 core schema at their path, line and column, and reads core tags", () => {
    const tagged = (value: string) => `${header}rules:\n  - id: r\n    effect: deny\n    reason: { code: c, message: ${value} }\n`
    for (const [value, tag] of [["!!js/function 'x'", "!!js/function"], ["!allow m", "!allow"], ["!regex m", "!regex"], ["!!binary aGk=", "!!binary"], ["!<tag:example.com,2026:x> m", "!<tag:example.com,2026:x>"], ["! m", "!"]]) {
      expect(refused(RulesFile.parseYaml(tagged(value!)))).toEqual([{
        rule: "r",
        path: "rules[0].reason.message",
        message: `the tag ${tag} is not allowed: a rules document is plain YAML 1.2, whose only tags are !!str, !!int, !!float, !!bool, !!null, !!map and !!seq`,
        line: 7,
        column: expect.any(Number)
      }])
    }
    // A rule whose id is not a valid one is named #index, as Rules names it.
    const unnamed = `${header}rules:\n  - id: has space\n    effect: deny\n    reason: { code: c, message: !allow m }\n`
    expect(refused(RulesFile.parseYaml(unnamed)).map((p) => p.rule)).toEqual(["#0"])
    const core = `id: payments\nversion: !!str 2026\ncombine: !!str first-applicable\nrules: !!seq\n  - !!map { id: r, effect: deny, reason: { code: c, message: !!str 1 } }\n`
    const rules = Effect.runSync(RulesFile.parseYaml(core))
    expect(rules.version).toBe("2026")
    expect(rules.document.rules[0]!.reason?.message).toBe("1")
  })

  it("refuses a %YAML 1.1 directive, which would read yes as true and 0777 as octal, and what yaml warns about", () => {
    expect(refused(RulesFile.parseYaml(`%YAML 1.1\n---\n${header}rules: []\n`))).toEqual([{
      rule: null,
      path: "",
      message: "%YAML 1.1: a rules document is YAML 1.2, where yes and no are strings and 0777 is a decimal",
      line: 1,
      column: 1
    }])
    expect(Effect.runSync(RulesFile.parseYaml(`%YAML 1.2\n---\n${header}rules: []\n`)).id).toBe("payments")
    // What the yaml package only warns about is refused too.
    expect(refused(RulesFile.parseYaml(`%FOO bar\n---\n${header}rules: []\n`))).toEqual([{
      rule: null,
      path: "",
      message: "YAML refused: Unknown directive %FOO",
      line: 1,
      column: 1
    }])
  })

  it("gives the problems of an empty or comment-only YAML document line 1, column 1", () => {
    for (const text of ["", "# nothing here\n", "\n\n"]) {
      expect(refused(RulesFile.parseYaml(text))).toEqual([{
        rule: null,
        path: "",
        message: "a rules document is an object with id, version, combine and rules, not null",
        line: 1,
        column: 1
      }])
    }
  })

  it("refuses characters YAML 1.2 forbids: NUL and other controls, DEL, C1 controls, lone surrogates", () => {
    for (const [c, name] of [["\u0000", "U+0000"], ["\u0007", "U+0007"], ["\u007f", "U+007F"], ["\u009b", "U+009B"], ["\ud800", "U+D800"], ["\uffff", "U+FFFF"]]) {
      expect(refused(RulesFile.parseYaml(`${header}rules: []\ndescription: "a${c}b"\n`))).toEqual([{
        rule: null,
        path: "",
        message: `the character ${name} is not allowed in YAML text (YAML 1.2 allows printable characters only; write it as an escape in a double-quoted string)`,
        line: 5,
        column: 16
      }])
    }
    // Escaped, a control character is data like any other; NEL, NBSP and emoji are printable.
    const escaped = Effect.runSync(RulesFile.parseYaml(`${header}rules: []\ndescription: "a\\0b\u0085\u00a0😀"\n`))
    expect(escaped.document.description).toBe("a\u0000b\u0085\u00a0😀")
    // JSON: a raw control character is a syntax error (as for JSON.parse); DEL and C1 in a string are JSON.
    expect(refused(RulesFile.parseJson(`{"id":"a\u0000"}`))[0]!.message).toMatch(/^JSON syntax error: control character U\+0000/)
    expect(Effect.runSync(RulesFile.parseJson(
      `{"id":"p","version":"1","combine":"first-applicable","rules":[],"description":"a\u007f\u009bb"}`
    )).document.description).toBe("a\u007f\u009bb")
  })

  it.effect("reads files as UTF-8: a Latin-1 file is refused at its byte offset; a BOM is accepted", () =>
    Effect.gen(function*() {
      const latin1 = path.join(root, "latin1.yaml")
      fs.writeFileSync(latin1, Buffer.from(`${header}rules:\n  - id: r\n    match: { name: caf\xe9.order }\n    effect: allow\n`, "latin1"))
      expect(yield* problemsOf(latin1)).toEqual([{
        rule: null,
        path: "",
        message: "not UTF-8: the bytes at offset 91 (0xE9 0x2E 0x6F 0x72) are not a UTF-8 character; a rules file is UTF-8 text (Latin-1 and other encodings are refused)",
        line: 6,
        column: 23
      }])
      for (const [bytes, offset] of [[[0xc0, 0xaf], 2], [[0xed, 0xa0, 0x80], 2], [[0xf4, 0x90, 0x80, 0x80], 2], [[0xe2, 0x82], 2]] as const) {
        const file = path.join(root, "bad.json")
        fs.writeFileSync(file, Buffer.concat([Buffer.from(`"x`), Buffer.from(bytes), Buffer.from(`"`)]))
        expect((yield* problemsOf(file))[0]!.message).toContain(`at offset ${offset} `)
      }
      const withBom = (name: string, text: string) => {
        const file = path.join(root, name)
        fs.writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]))
        return file
      }
      const fromYaml = yield* load(withBom("bom.yaml", yaml))
      const fromJson = yield* load(withBom("bom.json", json))
      expect(fromYaml.policyHash).toBe(fromJson.policyHash)
    }))

  it.effect("refuses a 10 MB document in either format up front, by maxDocumentBytes, and takes a higher limit", () =>
    Effect.gen(function*() {
    const rules = Array.from({ length: 111_000 }, (_, i) => ({ id: `r${i % 110_999}`, match: { name: `a.b${i}` }, effect: "allow" }))
    const big = {
      json: JSON.stringify({ id: "p", version: "1", combine: "first-applicable", rules }),
      yaml: `${header}rules:\n${rules.map((r) => `  - id: ${r.id}\n    match: { name: "${r.match.name}" }\n    effect: allow\n`).join("")}`
    }
    const tooBig = (bytes: number) => [{
      rule: null,
      path: "",
      message: `a rules document is at most 1048576 bytes long (limits.maxDocumentBytes); this one has ${bytes}`,
      line: 1,
      column: 1
    }]
    expect(big.yaml.length).toBeGreaterThan(7_000_000)
    expect(yield* problemsOf(write("big.json", big.json))).toEqual(tooBig(big.json.length))
    expect(yield* problemsOf(write("big.yaml", big.yaml))).toEqual(tooBig(big.yaml.length))
    expect(refused(RulesFile.parseYaml(big.yaml))).toEqual(tooBig(big.yaml.length))
    // Past the size, a JSON document of that size is parsed once and refused for its duplicate rule id.
    const limits = { maxDocumentBytes: 16 * 1024 * 1024, maxRules: 200_000, maxValues: 2_000_000 }
    expect(refused(RulesFile.parseJson(big.json, { limits }))).toMatchObject([{
      rule: "r0",
      path: "rules[110999].id",
      message: "duplicate rule id \"r0\" (first used by rules[0])",
      line: 1
    }])
  }))
})
