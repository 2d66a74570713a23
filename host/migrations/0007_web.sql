-- The web view (issue 12): sign-in sessions, and the indexes its pages
-- page through (runs by runbook and/or status, pending approvals) so a
-- page reads a few rows at any size of the database.

-- One row per signed-in browser. The cookie's value is never stored,
-- only its SHA-256; the scopes come from the token (tend.toml) at each
-- request, so removing a token ends its sessions.
CREATE TABLE web_sessions (
    id_sha256       TEXT PRIMARY KEY,           -- hex SHA-256 of the session cookie's value
    token_sha256    TEXT NOT NULL,              -- hex SHA-256 of the API token signed in with
    token_name      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);

CREATE INDEX runs_by_runbook_id ON runs (runbook, id);
CREATE INDEX runs_by_runbook_status_id ON runs (runbook, status, id);
-- Replaces runs_by_status: the same lookups, and newest first by status.
DROP INDEX runs_by_status;
CREATE INDEX runs_by_status_id ON runs (status, id);
CREATE INDEX approvals_by_status ON approvals (status, id);
