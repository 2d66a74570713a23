-- tend's schema on PostgreSQL: the end state of the SQLite migrations
-- 0001-0007 (host/migrations/*.sql) in one file, plus `schedule_fires`.
-- Applied migrations are never edited: add a new numbered file instead.
-- Times are BIGINT milliseconds since the Unix epoch (UTC); JSON is stored
-- as text (the Rust side reads and writes it as strings, as on SQLite);
-- statuses are TEXT with the spellings of the Rust enums; flags are BOOLEAN.

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,           -- ULID, sortable by creation time
    runbook         TEXT NOT NULL,
    runbook_hash    TEXT NOT NULL,              -- blake3 of the runbook file as run
    trigger_kind    TEXT NOT NULL,              -- cli | http | cron | alert
    trigger_source  TEXT,                       -- who or what: user@host, schedule, alert fingerprint
    params          TEXT NOT NULL,              -- JSON object, after defaults
    status          TEXT NOT NULL,              -- see store::RunStatus
    error           TEXT,                       -- why a run did not succeed
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    owner           TEXT,                       -- "pid@hostname" of the process running it
    heartbeat_at    BIGINT,                     -- last sign of life of the owner
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX runs_by_runbook ON runs (runbook, created_at);
CREATE INDEX runs_by_runbook_id ON runs (runbook, id);
CREATE INDEX runs_by_runbook_status_id ON runs (runbook, status, id);
CREATE INDEX runs_by_status_id ON runs (status, id);

CREATE TABLE step_attempts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         TEXT NOT NULL,
    iteration       BIGINT NOT NULL,            -- 0 outside loops, 1.. inside
    attempt         BIGINT NOT NULL,            -- 1.., 0 for a skipped step
    plugin          TEXT NOT NULL,
    plugin_digest   TEXT,
    config          TEXT,                       -- JSON after templating, secrets redacted
    input           TEXT,                       -- JSON, secrets redacted
    status          TEXT NOT NULL,              -- see store::AttemptStatus
    outcome         TEXT,                       -- runtime outcome name: ok, retryable, timeout, panic, ...
    error           TEXT,
    output          TEXT,                       -- JSON data of a successful attempt
    findings        TEXT,                       -- JSON list
    logs            TEXT,                       -- JSON list of {level, message}
    duration_ms     DOUBLE PRECISION,
    peak_memory_bytes BIGINT,
    started_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX step_attempts_by_run ON step_attempts (run_id, id);

CREATE TABLE metrics (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    runbook         TEXT NOT NULL,
    step_id         TEXT NOT NULL,
    iteration       BIGINT NOT NULL,
    name            TEXT NOT NULL,
    value           DOUBLE PRECISION NOT NULL,
    labels          TEXT NOT NULL,              -- JSON object, keys sorted
    recorded_at     BIGINT NOT NULL
);
CREATE INDEX metrics_by_series ON metrics (runbook, name, recorded_at);
CREATE INDEX metrics_by_run ON metrics (run_id);

CREATE TABLE escalations (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    runbook         TEXT NOT NULL,
    step_id         TEXT,
    iteration       BIGINT NOT NULL DEFAULT 0,
    severity        TEXT NOT NULL,              -- critical | high | medium | low
    message         TEXT NOT NULL,
    dedup_key       TEXT NOT NULL,
    status          TEXT NOT NULL,              -- open | acknowledged | resolved
    occurrences     BIGINT NOT NULL DEFAULT 1,  -- times raised while grouped
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at BIGINT,
    resolved_by     TEXT,
    resolved_at     BIGINT,
    resolution      TEXT                        -- why it was resolved
);
CREATE INDEX escalations_by_key ON escalations (dedup_key, last_seen_at);
CREATE INDEX escalations_by_status ON escalations (status, id);
CREATE INDEX escalations_by_run ON escalations (run_id);

CREATE TABLE notifications (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    escalation_id   BIGINT NOT NULL REFERENCES escalations (id) ON DELETE CASCADE,
    sink            TEXT NOT NULL,              -- webhook:<host> | log
    sent_at         BIGINT NOT NULL,
    ok              BOOLEAN NOT NULL,
    error           TEXT,
    event           TEXT NOT NULL DEFAULT 'triggered' -- triggered | acknowledged | resolved
);
CREATE INDEX notifications_by_escalation ON notifications (escalation_id);

CREATE TABLE approvals (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         TEXT NOT NULL,
    iteration       BIGINT NOT NULL,
    message         TEXT NOT NULL,
    status          TEXT NOT NULL,              -- pending | approved | rejected | timed_out
    requested_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    decided_by      TEXT,
    decided_at      BIGINT,
    reason          TEXT
);
CREATE INDEX approvals_by_run ON approvals (run_id, status);
CREATE INDEX approvals_by_status ON approvals (status, id);

CREATE TABLE plugin_state (
    runbook         TEXT NOT NULL,
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (runbook, key)
);

-- Idempotency keys of HTTP triggers: a repeated key returns the run it
-- first created instead of starting another.
CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    runbook         TEXT NOT NULL,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL
);

-- Cron triggers: the next time each fires, so a restart neither loses nor
-- repeats a fire. `key` is runbook, expression and zone: a changed
-- expression is a new schedule.
CREATE TABLE schedules (
    key             TEXT PRIMARY KEY,
    runbook         TEXT NOT NULL,
    next_fire_at    BIGINT NOT NULL,            -- ms since the epoch, jitter included
    last_fire_at    BIGINT
);

-- Each fire time of a schedule that fired, recorded once whichever host
-- fired it: the insert that records it is the fire's claim. Pruned with
-- old runs.
CREATE TABLE schedule_fires (
    key             TEXT NOT NULL,              -- schedules.key
    fire_at         BIGINT NOT NULL,            -- the fire time it moved from (schedules.next_fire_at)
    fired_at        BIGINT NOT NULL,
    PRIMARY KEY (key, fire_at)
);
CREATE INDEX schedule_fires_by_time ON schedule_fires (fired_at);

-- Alerts received from Prometheus Alertmanager, one row per alert
-- instance (fingerprint and start time), firing or resolved.
CREATE TABLE alerts (
    fingerprint     TEXT NOT NULL,
    starts_at       TEXT NOT NULL,
    status          TEXT NOT NULL,              -- firing | resolved
    labels          TEXT NOT NULL,              -- JSON object
    annotations     TEXT NOT NULL,              -- JSON object
    ends_at         TEXT,
    group_key       TEXT,
    first_seen_at   BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    resolved_at     BIGINT,                     -- when tend first received the resolution
    PRIMARY KEY (fingerprint, starts_at)
);

-- Before/after comparisons of action steps (`compare`).
CREATE TABLE optimization_results (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         TEXT NOT NULL,              -- the action step
    iteration       BIGINT NOT NULL,            -- its iteration
    metric          TEXT NOT NULL,
    before          DOUBLE PRECISION NOT NULL,  -- latest value measured in the run before the step ran
    after           DOUBLE PRECISION,           -- first value measured after it succeeded; null until then
    measured_by_step TEXT,                      -- the step that measured `after`
    measured_by_iteration BIGINT,
    recorded_at     BIGINT NOT NULL,
    measured_at     BIGINT
);
CREATE INDEX optimization_results_by_run ON optimization_results (run_id, id);

-- Post-mortem reports.
CREATE TABLE run_reports (
    run_id          TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,              -- postmortem
    markdown        TEXT NOT NULL,
    rendered_at     BIGINT NOT NULL
);

-- The alert instances (alerts.fingerprint, alerts.starts_at) that started a run.
CREATE TABLE run_alerts (
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    fingerprint     TEXT NOT NULL,
    starts_at       TEXT NOT NULL,
    PRIMARY KEY (run_id, fingerprint, starts_at)
);
CREATE INDEX run_alerts_by_alert ON run_alerts (fingerprint, starts_at);

-- The web view's sign-in sessions. The cookie's value is never stored,
-- only its SHA-256.
CREATE TABLE web_sessions (
    id_sha256       TEXT PRIMARY KEY,           -- hex SHA-256 of the session cookie's value
    token_sha256    TEXT NOT NULL,              -- hex SHA-256 of the API token signed in with
    token_name      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
