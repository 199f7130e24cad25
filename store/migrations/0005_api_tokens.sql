-- Bearer tokens of the /v1 admin API. Only the SHA-256 of a token is stored: a token is
-- 32 random bytes, so a fast hash is enough (nothing to brute-force), and a leaked
-- database hands out no credentials. Revoked tokens stay as rows (audit entries name
-- their id); `revoked_at` set means refused.

CREATE TABLE api_tokens (
    id ${id},
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    label TEXT,
    created_at ${ts} NOT NULL,
    expires_at ${ts},
    revoked_at ${ts},
    last_used_at ${ts}
);

