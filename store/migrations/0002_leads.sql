-- The lead domain: leads, messages, consent events, the DNC list and the outbox.
-- Written once for both dialects: each $${name} is a column type that store/dialect.py
-- spells per backend (times are TEXT on SQLite, fixed width, so text order is time order).

CREATE TABLE leads (
    id ${id},
    phone TEXT NOT NULL UNIQUE,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    state TEXT,
    status TEXT NOT NULL DEFAULT 'new',
    source TEXT,
    attributes ${json} NOT NULL DEFAULT ${json_object},
    human_takeover ${bool} NOT NULL DEFAULT ${false},
    caller_id ${bigint} REFERENCES callers (id) ON DELETE SET NULL,
    created_at ${ts} NOT NULL,
    updated_at ${ts} NOT NULL,
    last_inbound_at ${ts},
    last_outbound_at ${ts}
);
-- list_leads(status=…) pages by id within a status; since= filters on updated_at.
CREATE INDEX leads_status_id ON leads (status, id);
CREATE INDEX leads_updated_at ON leads (updated_at);

-- Not tied to leads by a foreign key: a stranger's text is stored too, and erasing a
-- lead erases its messages explicitly (delete_lead).
CREATE TABLE messages (
    id ${id},
    phone TEXT NOT NULL,
    direction TEXT NOT NULL,
    channel TEXT NOT NULL,
    purpose TEXT NOT NULL,
    body TEXT NOT NULL,
    from_addr TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    provider_sid TEXT,
    status TEXT NOT NULL,
    status_history ${json} NOT NULL DEFAULT ${json_array},
    error_code INTEGER,
    segments INTEGER NOT NULL DEFAULT 1,
    intent TEXT,
    confidence ${real},
    idempotency_key TEXT,
    created_at ${ts} NOT NULL,
    updated_at ${ts} NOT NULL
);
-- A thread, and frequency caps (outbound to a phone since t).
CREATE INDEX messages_phone_created ON messages (phone, created_at);
-- Twilio retries webhooks and callbacks: one row per MessageSid, one per decision.
CREATE UNIQUE INDEX messages_provider_sid ON messages (provider_sid)
    WHERE provider_sid IS NOT NULL;
CREATE UNIQUE INDEX messages_idempotency_key ON messages (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Append-only: the legal trail of what was said, when, on which channel.
CREATE TABLE consent_events (
    id ${id},
    phone TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    text TEXT NOT NULL,
    at ${ts} NOT NULL,
    source TEXT
);
CREATE INDEX consent_events_phone_at ON consent_events (phone, at, id);

CREATE TABLE dnc (
    phone TEXT NOT NULL PRIMARY KEY,
    reason TEXT,
    added_at ${ts} NOT NULL
);

CREATE TABLE outbox (
    id ${id},
    message_id ${bigint} NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    from_addr TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at ${ts} NOT NULL,
    lease_until ${ts},
    last_error TEXT,
    provider_sid TEXT,
    created_at ${ts} NOT NULL,
    updated_at ${ts} NOT NULL
);
-- claim_outbox: due rows by status and time.
CREATE INDEX outbox_status_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_message_id ON outbox (message_id);
