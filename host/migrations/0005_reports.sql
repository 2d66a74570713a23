-- Before/after comparisons of action steps (`compare`), post-mortem
-- reports, and which alert instances started which runs.

CREATE TABLE optimization_results (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         TEXT NOT NULL,              -- the action step
    iteration       INTEGER NOT NULL,           -- its iteration
    metric          TEXT NOT NULL,
    before          REAL NOT NULL,              -- latest value measured in the run before the step ran
    after           REAL,                       -- first value measured after it succeeded; null until then
    measured_by_step TEXT,                      -- the step that measured `after`
    measured_by_iteration INTEGER,
    recorded_at     INTEGER NOT NULL,
    measured_at     INTEGER
);
CREATE INDEX optimization_results_by_run ON optimization_results (run_id, id);

CREATE TABLE run_reports (
    run_id          TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,              -- postmortem
    markdown        TEXT NOT NULL,
    rendered_at     INTEGER NOT NULL
);

-- The alert instances (alerts.fingerprint, alerts.starts_at) that started a run.
CREATE TABLE run_alerts (
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    fingerprint     TEXT NOT NULL,
    starts_at       TEXT NOT NULL,
    PRIMARY KEY (run_id, fingerprint, starts_at)
);
CREATE INDEX run_alerts_by_alert ON run_alerts (fingerprint, starts_at);

-- When tend first received the alert's resolution (ms since the epoch).
ALTER TABLE alerts ADD COLUMN resolved_at INTEGER;
