-- Cron triggers: the next time each fires, so a restart neither loses nor
-- repeats a fire. `key` is runbook, expression and zone: a changed
-- expression is a new schedule.
CREATE TABLE schedules (
    key             TEXT PRIMARY KEY,
    runbook         TEXT NOT NULL,
    next_fire_at    INTEGER NOT NULL,           -- ms since the epoch, jitter included
    last_fire_at    INTEGER
);
