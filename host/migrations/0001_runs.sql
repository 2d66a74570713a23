-- Runs, step attempts, metrics, escalations, approvals and plugin state.
-- Applied migrations are never edited: add a new numbered file instead.
-- Times are milliseconds since the Unix epoch (UTC); JSON is stored as text.

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,           -- ULID, sortable by creation time
    runbook         TEXT NOT NULL,
    runbook_hash    TEXT NOT NULL,              -- blake3 of the runbook file as run
    trigger_kind    TEXT NOT NULL,              -- cli | http | cron | alert | recovery
    trigger_source  TEXT,                       -- who or what: user@host, schedule, alert fingerprint
    params          TEXT NOT NULL,              -- JSON object, after defaults
    status          TEXT NOT NULL,              -- see engine::RunStatus
    error           TEXT,                       -- why a run did not succeed
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    owner           TEXT,                       -- "pid@hostname" of the process running it
    heartbeat_at    INTEGER,                    -- last sign of life of the owner
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_runbook ON runs (runbook, created_at);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE step_attempts (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         TEXT NOT NULL,
    iteration       INTEGER NOT NULL,           -- 0 outside loops, 1.. inside
    attempt         INTEGER NOT NULL,           -- 1.., 0 for a skipped step
    plugin          TEXT NOT NULL,
    plugin_digest   TEXT,
    config          TEXT,                       -- JSON after templating, secrets redacted
    input           TEXT,                       -- JSON, secrets redacted
    status          TEXT NOT NULL,              -- running | succeeded | failed | skipped | cancelled | interrupted
    outcome         TEXT,                       -- runtime outcome name: ok, retryable, timeout, panic, ...
    error           TEXT,
    output          TEXT,                       -- JSON data of a successful attempt
    findings        TEXT,                       -- JSON list
    logs            TEXT,                       -- JSON list of {level, message}
    duration_ms     REAL,
    peak_memory_bytes INTEGER,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX step_attempts_by_run ON step_attempts (run_id, id);

CREATE TABLE metrics (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    runbook         TEXT NOT NULL,
    step_id         TEXT NOT NULL,
    iteration       INTEGER NOT NULL,
    name            TEXT NOT NULL,
    value           REAL NOT NULL,
    labels          TEXT NOT NULL,              -- JSON object, keys sorted
    recorded_at     INTEGER NOT NULL
);
CREATE INDEX metrics_by_series ON metrics (runbook, name, recorded_at);
CREATE INDEX metrics_by_run ON metrics (run_id);

CREATE TABLE escalations (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    runbook         TEXT NOT NULL,
    step_id         TEXT,
    iteration       INTEGER NOT NULL DEFAULT 0,
    severity        TEXT NOT NULL,              -- critical | high | medium | low
    message         TEXT NOT NULL,
    dedup_key       TEXT NOT NULL,
    status          TEXT NOT NULL,              -- open | acknowledged | resolved
    occurrences     INTEGER NOT NULL DEFAULT 1, -- times raised while grouped
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at INTEGER,
    resolved_by     TEXT,
    resolved_at     INTEGER
);
CREATE INDEX escalations_by_key ON escalations (dedup_key, last_seen_at);
CREATE INDEX escalations_by_status ON escalations (status, id);
CREATE INDEX escalations_by_run ON escalations (run_id);

CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
    escalation_id   INTEGER NOT NULL REFERENCES escalations (id) ON DELETE CASCADE,
    sink            TEXT NOT NULL,              -- webhook:<host> | log
    sent_at         INTEGER NOT NULL,
    ok              INTEGER NOT NULL,
    error           TEXT
);
CREATE INDEX notifications_by_escalation ON notifications (escalation_id);

CREATE TABLE approvals (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         TEXT NOT NULL,
    iteration       INTEGER NOT NULL,
    message         TEXT NOT NULL,
    status          TEXT NOT NULL,              -- pending | approved | rejected | timed_out
    requested_at    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    decided_by      TEXT,
    decided_at      INTEGER,
    reason          TEXT
);
CREATE INDEX approvals_by_run ON approvals (run_id, status);

CREATE TABLE plugin_state (
    runbook         TEXT NOT NULL,
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (runbook, key)
);
