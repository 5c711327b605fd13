import js from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  { ignores: ["**/node_modules/**", "**/build/**", "**/dist/**", "**/coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-namespace": "off",
      // Effect idiom: `interface X extends Schema.Schema.Type<typeof X> {}` names a schema type.
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "no-restricted-imports": ["error", { patterns: ["@effect/schema", "@effect/schema/*"] }]
    }
  },
  {
    // Library code reads time only through Clock and never throws for control
    // flow; tests, benchmarks and examples may do as they please.
    files: ["packages/*/src/**/*.ts"],
    rules: {
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']",
          message: "Read time through Effect's Clock, never Date.now()"
        },
        {
          selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']",
          message: "Use Effect's Random or an injected generator, never Math.random()"
        }
      ],
      "no-restricted-imports": [
        "error",
        { patterns: ["@effect/schema", "@effect/schema/*", "@gavel/testing", "@gavel/testing/*"] }
      ]
    }
  }
)
