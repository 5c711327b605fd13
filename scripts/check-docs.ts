/**
 * Type-checks every TypeScript code block in README.md and docs/*.md, so the
 * docs cannot drift from the API. Run with `npx tsx scripts/check-docs.ts`
 * (part of `npm run check`, hence of `npm test`).
 *
 * Each ```ts (or ```typescript) block becomes its own module under
 * build/doc-blocks/ (git-ignored; `npx tsc -p build/doc-blocks` re-checks
 * them after a run), and all of them are type-checked in one program with the
 * compiler options of tsconfig.base.json (strict, exactOptionalPropertyTypes,
 * noUnusedLocals, …) plus Node's types, as the examples are. Workspace
 * packages (`@gavel/core`, `@gavel/adapters/*`, `@gavel/testing`) and
 * `effect`, `@effect/*` resolve through node_modules. Every error is printed
 * as `file.md:line:column - error TSxxxx: message`, with the line of the
 * markdown file; any error exits with 1.
 *
 * Conventions for blocks:
 *
 * - A block is a complete module: it imports what it uses. Names a block uses
 *   without defining or importing — context the surrounding prose gives, such
 *   as `policySet`, `IdentityLive`, `governance`, `action`, `alice` — are
 *   declared, with their types, in docs/doc-globals.ts. Keep that file small
 *   and honest.
 * - Top-level names a block declares count as used (the checker exports them),
 *   since a docs snippet shows definitions for the reader to use. Unused
 *   imports, parameters and locals inside functions are still errors.
 * - A block whose first line is the comment `// inside Effect.gen` is a
 *   fragment of a generator body (top-level `yield*`): the checker wraps
 *   everything after its leading imports in `Effect.gen(function*() { … })`.
 * - To show a type error on purpose, put `// @ts-expect-error: why` above
 *   the line: the block stays checked, and fails if the error goes away.
 * - A block can opt out only with a visible reason in its info string:
 *   ```ts no-check: <why>. Use it sparingly; the reason is printed.
 * - Other languages (```sh, ```text, ```json, bare ```) are not checked.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const outDir = path.join(root, "build", "doc-blocks")
const globalsFile = path.join(root, "docs", "doc-globals.ts")
const fragmentMarker = "// inside Effect.gen"
const effectAlias = "__docEffect"

interface Block {
  /** The markdown file, relative to the repository root. */
  readonly file: string
  /** The markdown line (1-based) of the block's first content line. */
  readonly line: number
  /** The indentation stripped from every line (a block inside a list item). */
  readonly indent: number
  readonly lines: ReadonlyArray<string>
  readonly skip: string | undefined
}

/** A generated line and the markdown line it came from (undefined: synthetic). */
interface Line {
  readonly text: string
  readonly source: number | undefined
}

interface Module {
  readonly block: Block
  readonly fileName: string
  readonly lines: ReadonlyArray<Line>
}

const markdownFiles = (): ReadonlyArray<string> => {
  const docs = fs
    .readdirSync(path.join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`)
  return ["README.md", ...docs]
}

/** The packages' sources, whose JSDoc `@example` blocks are checked like the docs' blocks. */
const sourceFiles = (): ReadonlyArray<string> =>
  ["core", "testing", "adapters"].flatMap((pkg) => {
    const dir = path.join(root, "packages", pkg, "src")
    return (fs.readdirSync(dir, { recursive: true }) as Array<string>)
      .filter((name) => name.endsWith(".ts"))
      .sort()
      .map((name) => `packages/${pkg}/src/${name.split(path.sep).join("/")}`)
  })

/**
 * A source file as the text of its JSDoc comments, line for line: a line
 * inside a comment without its leading `*`, every other line empty, so that
 * the markdown fence reader finds the comments' blocks at their own lines.
 */
const commentLines = (text: string): ReadonlyArray<string> => {
  let inComment = false
  return text.split(/\r?\n/).map((line) => {
    if (!inComment) {
      if (!/^\s*\/\*\*/.test(line)) return ""
      inComment = !line.includes("*/")
      return ""
    }
    if (line.includes("*/")) {
      inComment = false
      return ""
    }
    return line.replace(/^\s*\* ?/, "")
  })
}

const fence = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)\s*(.*)$/

/** Problems found while reading the markdown (a `no-check` without a reason). */
const problems: Array<string> = []

const extractBlocks = (file: string): ReadonlyArray<Block> => {
  const text = fs.readFileSync(path.join(root, file), "utf8")
  const lines = file.endsWith(".ts") ? commentLines(text) : text.split(/\r?\n/)
  const blocks: Array<Block> = []
  let i = 0
  while (i < lines.length) {
    const open = fence.exec(lines[i]!)
    if (open === null) {
      i++
      continue
    }
    const [, indent = "", marker = "", language = "", info = ""] = open
    const close = new RegExp(`^\\s*${marker[0] === "`" ? "`" : "~"}{${marker.length},}\\s*$`)
    const body: Array<string> = []
    let j = i + 1
    while (j < lines.length && !close.test(lines[j]!)) {
      const line = lines[j]!
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart())
      j++
    }
    const lang = language.toLowerCase()
    if (lang === "ts" || lang === "typescript") {
      const noCheck = /^no-check:\s*(\S.*)$/.exec(info.trim())
      if (info.trim().startsWith("no-check") && noCheck === null) {
        problems.push(`${file}:${i + 1} - error: "no-check" needs a visible reason: \`\`\`ts no-check: <why>`)
      }
      blocks.push({ file, line: i + 2, indent: indent.length, lines: body, skip: noCheck?.[1] })
    }
    i = j + 1
  }
  return blocks
}

const hasModifier = (node: ts.Node, kind: ts.SyntaxKind): boolean =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === kind)

const bindingNames = (name: ts.BindingName, into: Array<string>): void => {
  if (ts.isIdentifier(name)) into.push(name.text)
  else {
    for (const element of name.elements) {
      if (!ts.isOmittedExpression(element)) bindingNames(element.name, into)
    }
  }
}

/**
 * The names declared by `statements` (not already exported), as export
 * specifiers: types as `type T`, which `verbatimModuleSyntax` requires.
 */
const declaredNames = (
  statements: ReadonlyArray<ts.Statement>,
  options: { readonly types: boolean }
): ReadonlyArray<string> => {
  const names: Array<string> = []
  for (const statement of statements) {
    if (hasModifier(statement, ts.SyntaxKind.ExportKeyword)) continue
    if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) bindingNames(declaration.name, names)
    } else if (ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement)) {
      if (options.types) names.push(`type ${statement.name.text}`)
    } else if (
      (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isEnumDeclaration(statement)) &&
      statement.name !== undefined
    ) {
      names.push(statement.name.text)
    }
  }
  return names
}

const parse = (text: string): ts.SourceFile =>
  ts.createSourceFile("block.ts", text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS)

const moduleFileName = (block: Block): string =>
  path.join(outDir, block.file.replace(/\.(md|ts)$/, ""), `line-${block.line}.ts`)

const generate = (block: Block): Module => {
  const source = (k: number): Line => ({ text: block.lines[k]!, source: block.line + k })
  const fileName = moduleFileName(block)
  const first = block.lines.findIndex((l) => l.trim() !== "")
  if (first >= 0 && block.lines[first]!.trim().startsWith(fragmentMarker)) {
    // Leading imports stay at module level; the rest goes in the generator.
    const sourceFile = parse(block.lines.join("\n"))
    let importsEnd = first + 1
    for (const statement of sourceFile.statements) {
      if (!ts.isImportDeclaration(statement)) break
      importsEnd = sourceFile.getLineAndCharacterOfPosition(statement.getEnd()).line + 1
    }
    const head = block.lines.slice(0, importsEnd).map((_, k) => source(k))
    const body = block.lines.slice(importsEnd).map((_, k) => source(importsEnd + k))
    const lines: Array<Line> = [
      { text: `import * as ${effectAlias} from "effect/Effect"`, source: undefined },
      ...head,
      { text: `export const __fragment = ${effectAlias}.gen(function*() {`, source: undefined },
      ...body
    ]
    const wrapped = parse([...lines.map((l) => l.text), "})"].join("\n"))
    const names = fragmentNames(wrapped)
    if (names.length > 0) lines.push({ text: `void [${names.join(", ")}]`, source: undefined })
    lines.push({ text: "})", source: undefined })
    return { block, fileName, lines }
  }
  const lines = block.lines.map((_, k) => source(k))
  const names = declaredNames(parse(block.lines.join("\n")).statements, { types: true })
  lines.push({ text: names.length > 0 ? `export { ${names.join(", ")} }` : "export {}", source: undefined })
  return { block, fileName, lines }
}

/** The names declared at the top level of the generator body of `__fragment`. */
const fragmentNames = (sourceFile: ts.SourceFile): ReadonlyArray<string> => {
  for (const statement of sourceFile.statements) {
    if (!ts.isVariableStatement(statement)) continue
    const init = statement.declarationList.declarations[0]?.initializer
    if (init === undefined || !ts.isCallExpression(init)) continue
    const generator = init.arguments[0]
    if (generator !== undefined && ts.isFunctionExpression(generator)) {
      // Types are not values: `void [T]` would not compile.
      return declaredNames(generator.body.statements, { types: false })
    }
  }
  return []
}

/** Over the repository's options: checking only, nothing emitted, no build info or references. */
const checkOnly = {
  composite: false,
  incremental: false,
  declaration: false,
  declarationMap: false,
  sourceMap: false,
  emitDeclarationOnly: false,
  noEmit: true,
  // Like the examples: docs show Node programs (process.env, node:http).
  types: ["node"]
}

const compilerOptions = (): ts.CompilerOptions => {
  const configPath = path.join(root, "tsconfig.base.json")
  const config = ts.readConfigFile(configPath, ts.sys.readFile)
  if (config.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, "\n"))
  const { options, errors } = ts.convertCompilerOptionsFromJson(
    { ...config.config.compilerOptions, ...checkOnly },
    root
  )
  if (errors.length > 0) throw new Error(ts.formatDiagnostics(errors, formatHost))
  return options
}

const formatHost: ts.FormatDiagnosticsHost = {
  getCanonicalFileName: (f) => f,
  getCurrentDirectory: () => root,
  getNewLine: () => "\n"
}

const writeModules = (modules: ReadonlyArray<Module>): void => {
  fs.rmSync(outDir, { recursive: true, force: true })
  for (const module of modules) {
    fs.mkdirSync(path.dirname(module.fileName), { recursive: true })
    fs.writeFileSync(module.fileName, module.lines.map((l) => l.text).join("\n") + "\n")
  }
  // For editors and `npx tsc -p build/doc-blocks`: the same check.
  const relative = (file: string) => path.relative(outDir, file).split(path.sep).join("/")
  fs.writeFileSync(
    path.join(outDir, "tsconfig.json"),
    JSON.stringify(
      {
        extends: relative(path.join(root, "tsconfig.base.json")),
        compilerOptions: checkOnly,
        files: [relative(globalsFile), ...modules.map((m) => relative(m.fileName))]
      },
      null,
      2
    ) + "\n"
  )
}

/** Where a diagnostic is, as `file:line:column` of the markdown (or of a real file). */
const locate = (
  diagnostic: ts.Diagnostic,
  byFile: ReadonlyMap<string, Module>
): string | undefined => {
  if (diagnostic.file === undefined || diagnostic.start === undefined) return undefined
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
  const module = byFile.get(path.resolve(diagnostic.file.fileName))
  if (module === undefined) {
    return `${path.relative(root, diagnostic.file.fileName)}:${line + 1}:${character + 1}`
  }
  // A synthetic line reports at the nearest markdown line above it.
  let k = line
  while (k > 0 && module.lines[k]?.source === undefined) k--
  const source = module.lines[k]?.source ?? module.block.line
  const column = k === line ? character + 1 + module.block.indent : 1
  return `${module.block.file}:${source}:${column}`
}

const main = (): number => {
  const blocks = [...markdownFiles(), ...sourceFiles()].flatMap(extractBlocks)
  const checked = blocks.filter((b) => b.skip === undefined)
  const modules = checked.map(generate)
  writeModules(modules)

  const byFile = new Map(modules.map((m) => [path.resolve(m.fileName), m] as const))
  // The checker checks itself too: it is type-checked nowhere else.
  const self = fileURLToPath(import.meta.url)
  const program = ts.createProgram({
    rootNames: [globalsFile, self, ...modules.map((m) => m.fileName)],
    options: compilerOptions()
  })
  const ownFiles = new Set([globalsFile, self, ...byFile.keys()].map((f) => path.resolve(f)))
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...program.getSourceFiles()
      .filter((sf) => ownFiles.has(path.resolve(sf.fileName)))
      .flatMap((sf) => [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)])
  ]

  let errors = problems.length
  for (const problem of problems) console.log(problem)
  for (const diagnostic of diagnostics) {
    if (diagnostic.category !== ts.DiagnosticCategory.Error) continue
    errors++
    const where = locate(diagnostic, byFile)
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ")
    console.log(`${where === undefined ? "" : `${where} - `}error TS${diagnostic.code}: ${message}`)
  }
  for (const block of blocks) {
    if (block.skip !== undefined) console.log(`${block.file}:${block.line - 1}: not checked (no-check: ${block.skip})`)
  }
  const files = new Set(checked.map((b) => b.file)).size
  const skipped = blocks.length - checked.length
  console.log(
    `${checked.length} code blocks in ${files} files (markdown, and the sources' JSDoc) type-checked` +
      (skipped > 0 ? `, ${skipped} skipped` : "") +
      `: ${errors === 0 ? "no errors" : `${errors} error${errors === 1 ? "" : "s"}`}`
  )
  return errors === 0 ? 0 : 1
}

process.exitCode = main()
