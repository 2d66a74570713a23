-- Idempotency keys of HTTP triggers: a repeated key returns the run it
-- first created instead of starting another.
CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    runbook         TEXT NOT NULL,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL
);
