import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as AST from "effect/SchemaAST"
import { joinPath, type Limits, measure, type Problem } from "./actionValue.js"

/**
 * Decode errors whose formatting stays bounded.
 *
 * Effect's formatters (a `ParseError`'s `message`, `TreeFormatter`,
 * `ArrayFormatter`) print the value a type check refused, recursively: a
 * value given from code with an object nested ten thousand levels deep
 * where a string belongs overflows the stack while its error is formatted.
 * Only the refused values are printed (the `actual` of a `Type` issue: a
 * refinement or a transformation that fails without a message of its own
 * ends in one), so only they are measured.
 */

type Segment = string | number

interface Located {
  readonly issue: ParseResult.ParseIssue
  /** The segments from the root, innermost first. */
  readonly path: ReadonlyArray<Segment>
}

/**
 * The first refused value of `issue` that exceeds `limits` — its path, the
 * limit and where inside it — or `undefined` when every one can be printed.
 * Iterative: the issues of a deep value are as deep as the schema, not the
 * value, but nothing here relies on it.
 *
 * @internal
 */
export const overLimit = (issue: ParseResult.ParseIssue, limits: Limits): Problem | undefined => {
  const stack: Array<Located> = [{ issue, path: [] }]
  while (stack.length > 0) {
    const { issue, path } = stack.pop()!
    switch (issue._tag) {
      case "Type": {
        const problem = measure(issue.actual, limits, joinPath("", path), 1)
        if (problem !== undefined) return problem
        break
      }
      case "Pointer": {
        const inner = [...path]
        const keys = Array.isArray(issue.path) ? issue.path : [issue.path]
        for (const key of keys) inner.unshift(typeof key === "number" ? key : String(key))
        stack.push({ issue: issue.issue, path: inner })
        break
      }
      case "Refinement":
      case "Transformation":
        stack.push({ issue: issue.issue, path })
        break
      case "Composite": {
        const issues = Array.isArray(issue.issues) ? issue.issues : [issue.issues]
        for (let i = issues.length - 1; i >= 0; i--) stack.push({ issue: issues[i]!, path })
        break
      }
      default:
        // Missing, Unexpected and Forbidden print no value.
        break
    }
  }
  return undefined
}

const expected = (ast: AST.AST): string =>
  AST.isRefinement(ast)
    ? AST.getDescriptionAnnotation(ast).pipe(
      Option.orElse(() => AST.getTitleAnnotation(ast)),
      Option.orElse(() => AST.getIdentifierAnnotation(ast)),
      Option.getOrElse(() => String(ast))
    )
    : String(ast)

const neverPrefix = "Expected never, actual "

/** A value as Effect's messages print it (its printer is not exported). */
const printed = (actual: unknown): string =>
  ParseResult.TreeFormatter.formatIssueSync(new ParseResult.Type(AST.neverKeyword, actual)).slice(neverPrefix.length)

/** In Effect's order: a title annotation, the issue's own message, "Expected …, actual …". */
const typeMessage = (issue: ParseResult.Type): string =>
  AST.getParseIssueTitleAnnotation(issue.ast).pipe(
    Option.flatMapNullable((title) => title(issue)),
    Option.getOrElse(() => issue.message ?? `Expected ${expected(issue.ast)}, actual ${printed(issue.actual)}`)
  )

/**
 * The message Effect gives `issue` when no annotation does, as a `message`
 * annotation's answer: an issue that contains others (a struct's fields, a
 * union's members) leaves them to the formatter; one that stands for a
 * refused value gets Effect's own words. For an issue within the limits only.
 *
 * @internal
 */
export const defaultMessage = (
  issue: ParseResult.ParseIssue
): string | { readonly message: string; readonly override: boolean } => {
  switch (issue._tag) {
    case "Type":
      return typeMessage(issue)
    case "Refinement":
      if (issue.kind === "From") break
      return issue.issue._tag === "Type" ? typeMessage(issue.issue) : String(issue.ast)
    case "Transformation":
      if (issue.kind !== "Transformation") break
      return issue.issue._tag === "Type" ? typeMessage(issue.issue) : String(issue.ast)
    default:
      break
  }
  // Not overriding: the formatter goes on to the inner issues, as without an annotation.
  return { message: "", override: false }
}
