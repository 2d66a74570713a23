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
    first_seen_at   INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, starts_at)
);
