-- The outbound dialer: one row per dial attempt of a queue job, written BEFORE the
-- provider is asked to place the call, so an at-least-once queue never dials twice.
-- `dial_key` is the job's identity plus its attempt number; a redelivered job (stalled,
-- lock lost) finds its row and attaches to the call instead of placing another.
-- Linked to `calls` by call_sid without a foreign key: the status callbacks and the
-- media stream can reach us in any order, and either may come first.

CREATE TABLE dialer_calls (
    id ${id},
    dial_key TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    campaign_id TEXT,
    step INTEGER,
    phone TEXT NOT NULL,
    caller_id TEXT NOT NULL,
    script TEXT,
    call_sid TEXT UNIQUE,
    status TEXT NOT NULL,
    answered_by TEXT,
    outcome TEXT,
    detail ${json} NOT NULL DEFAULT ${json_object},
    error TEXT,
    duration_s INTEGER,
    created_at ${ts} NOT NULL,
    dialed_at ${ts},
    answered_at ${ts},
    media_ended_at ${ts},
    ended_at ${ts},
    updated_at ${ts} NOT NULL
);
-- The compliance gate's 24 h contact count per phone, and campaign reports.
CREATE INDEX dialer_calls_phone_created ON dialer_calls (phone, created_at);
CREATE INDEX dialer_calls_campaign ON dialer_calls (campaign_id, step);
