"""Durable and shared state: live sessions (Redis | memory) and SQL records (SQLite | PostgreSQL).

Modules, bottom up: `phones` (E.164), `models` (the records), `errors`,
`database` (the one repository API and `open_database`), `dialect` (what
SQLite and PostgreSQL spell differently), `repository` (every query, written
once), `sqlite` / `postgres` (the two drivers), `migrations`, `journal` + `turn_writer`
(write-behind that survives SIGKILL), `session_memory` + `sessions` (live
call state). Nothing here imports the rest of leadline.
"""
