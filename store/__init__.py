"""Durable and shared state: live sessions (Redis | memory) and SQL records (SQLite | PostgreSQL).

Modules, bottom up: `phones` (E.164), `models` (the records), `errors`,
`database` (the one repository API and `open_database`), `sqlite` /
`postgres` (its two backends), `migrations`, `journal` + `turn_writer`
(write-behind that survives SIGKILL), `session_memory` + `sessions` (live
call state). Nothing here imports the rest of leadline.
"""
