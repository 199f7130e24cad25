-- Drip campaigns, their enrollments and touches, the email outbox, and process-wide secrets.
-- Dialect-neutral: each $${name} is a column type that store/dialect.py spells per backend.

-- One row per campaign: the validated definition is kept whole (touches, variants, stop
-- rules), so every process renders the same campaign the operator loaded.
CREATE TABLE campaigns (
    id ${id},
    name TEXT NOT NULL UNIQUE,
    business TEXT NOT NULL DEFAULT 'default',
    definition ${json} NOT NULL,
    paused ${bool} NOT NULL DEFAULT ${false},
    created_at ${ts} NOT NULL,
    updated_at ${ts} NOT NULL
);

-- A lead in a campaign. `next_touch` is 1-based; `due_at` is when it is due (NULL once the
-- enrollment is no longer active). `lease_until` marks a claim in progress: a scheduler
-- that dies mid-pass leaves a lease that lapses, and the row is claimed again.
-- `checked_at`: when the stop rules last saw the lead's row (a pass re-checks enrollments
-- whose lead changed since, so a reply or a booking stops the campaign at once).
CREATE TABLE enrollments (
    id ${id},
    campaign_id ${bigint} NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    stop_reason TEXT,
    next_touch INTEGER NOT NULL DEFAULT 1,
    next_channel TEXT NOT NULL DEFAULT 'sms',
    due_at ${ts},
    lease_until ${ts},
    enrolled_at ${ts} NOT NULL,
    last_touch_at ${ts},
    stopped_at ${ts},
    checked_at ${ts},
    updated_at ${ts} NOT NULL,
    UNIQUE (campaign_id, phone)
);
-- The claim: active rows by due time.
CREATE INDEX enrollments_state_due ON enrollments (state, due_at);
CREATE INDEX enrollments_phone ON enrollments (phone);

-- One row per touch that left the scheduler (queued to an outbox) or was skipped for good;
-- the message it became is `message_id` (NULL when skipped).
CREATE TABLE campaign_touches (
    id ${id},
    enrollment_id ${bigint} NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    campaign_id ${bigint} NOT NULL,
    phone TEXT NOT NULL,
    touch INTEGER NOT NULL,
    channel TEXT NOT NULL,
    variant INTEGER NOT NULL DEFAULT 0,
    message_id ${bigint},
    outcome TEXT NOT NULL,
    at ${ts} NOT NULL,
    UNIQUE (enrollment_id, touch)
);
CREATE INDEX campaign_touches_campaign ON campaign_touches (campaign_id, touch);
CREATE INDEX campaign_touches_message ON campaign_touches (message_id);

-- Email sends committed before the SMTP call. Its own table rather than the SMS outbox:
-- the SMS sender claims every due row of `outbox` and would hand an email to Twilio.
CREATE TABLE email_outbox (
    id ${id},
    message_id ${bigint} NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL UNIQUE,
    phone TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at ${ts} NOT NULL,
    lease_until ${ts},
    last_error TEXT,
    provider_id TEXT,
    sent_at ${ts},
    created_at ${ts} NOT NULL,
    updated_at ${ts} NOT NULL
);
CREATE INDEX email_outbox_status_due ON email_outbox (status, next_attempt_at);

-- Addresses that bounced for good: no more mail to them (a new address is a new row).
CREATE TABLE email_bounces (
    address TEXT NOT NULL PRIMARY KEY,
    phone TEXT,
    code INTEGER,
    reason TEXT NOT NULL,
    at ${ts} NOT NULL
);

-- Secrets every process must share (the unsubscribe HMAC key when config sets none):
-- written once, first writer wins.
CREATE TABLE app_secrets (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL,
    created_at ${ts} NOT NULL
);

-- Inbound email is matched to its lead by address.
CREATE INDEX leads_lower_email ON leads (lower(email));
