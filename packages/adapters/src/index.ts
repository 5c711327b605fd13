/**
 * Real implementations of gavel's ports. The SQLite and Postgres stores
 * (`/Sqlite`, `/Postgres`), HTTP
 * enforcement (`/http`), A2A executor wrapper (`/a2a`), JWT identity (`/jwt`)
 * and the `gavel` CLI arrive as subpath exports, so a user pays only for what
 * they import; this root entry point stays free of heavy dependencies.
 *
 * @since 0.1.0
 */
export {}
