-- The built-in calendar ([booking] provider = "builtin"): one row per calendar, used only
-- as the lock a booking takes (SELECT ... FOR UPDATE on PostgreSQL; SQLite's single writer
-- already serialises), and the bookings themselves. A booking is checked against its
-- neighbours (buffer included) inside that lock, so two calls racing for overlapping
-- slots cannot both win; the partial unique index is the backstop for identical starts.

CREATE TABLE booking_calendars (
    name TEXT PRIMARY KEY,
    created_at ${ts} NOT NULL
);

CREATE TABLE bookings (
    id ${id},
    calendar TEXT NOT NULL REFERENCES booking_calendars (name),
    start_at ${ts} NOT NULL,
    end_at ${ts} NOT NULL,
    summary TEXT NOT NULL,
    description TEXT,
    attendee_email TEXT,
    call_sid TEXT,
    -- A retried booking (same key) answers the first one instead of booking twice.
    idem_key TEXT UNIQUE,
    status TEXT NOT NULL,
    created_at ${ts} NOT NULL
);

CREATE UNIQUE INDEX bookings_one_start ON bookings (calendar, start_at)
    WHERE status = 'confirmed';
CREATE INDEX bookings_by_time ON bookings (calendar, start_at, end_at);
