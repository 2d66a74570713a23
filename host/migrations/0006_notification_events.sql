-- Resolved notifications (issue 9): why an escalation was resolved, and
-- which event of its escalation each notification announced.
ALTER TABLE escalations ADD COLUMN resolution TEXT;
ALTER TABLE notifications ADD COLUMN event TEXT NOT NULL DEFAULT 'triggered'; -- triggered | acknowledged | resolved
