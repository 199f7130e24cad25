-- Callers, calls, turns and audit events.
-- Times are TEXT 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (UTC, fixed width, so text order is time order).
-- Later issues add tables beside these, keyed the same way: a leads/contacts table with
-- phone TEXT referencing callers(phone) (or caller_id), campaigns, messages (phone, direction,
-- body, sid) and consent_records (phone, channel, granted/revoked, source, at).

CREATE TABLE callers (
    id INTEGER PRIMARY KEY,
    phone TEXT NOT NULL UNIQUE,
    name TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    call_count INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    call_sid TEXT NOT NULL UNIQUE,
    direction TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    answered_at TEXT,
    ended_at TEXT,
    outcome TEXT,
    recording_path TEXT,
    brain TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_from_number ON calls (from_number);
CREATE INDEX calls_to_number ON calls (to_number);

CREATE TABLE turns (
    id INTEGER PRIMARY KEY,
    call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    UNIQUE (call_sid, seq)
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    call_sid TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_call_sid ON audit_events (call_sid);
