/**
 * Real implementations of gavel's ports, as subpath exports, so that a user
 * pays only for what they import; this root entry point exports nothing and
 * stays free of heavy dependencies. The subpaths, named like their modules:
 * the SQLite and Postgres stores (`/Sqlite`, `/Postgres`), the JSON-lines
 * audit file (`/AuditFile`), HTTP enforcement (`/Http`, which also
 * re-exports the approvals API of `/HttpApprovals`), the HTTP check policy
 * (`/HttpCheck`), the A2A executor wrapper (`/A2a`), JWT identity (`/Jwt`),
 * rules files (`/RulesFile`) and the `gavel` CLI (`/Cli`).
 *
 * @since 0.1.0
 */
export {}
