
-- ============================================================================
-- SYNC TRACKING: when each entity was last synced to the query side
-- ============================================================================

-- Shared by every CQRS entity: the first migration that needs it creates it.
CREATE TABLE IF NOT EXISTS sync_history (
    entity_type TEXT NOT NULL,
    entity_id UUID NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (entity_type, entity_id)
);

-- Built with the table above when it is new (empty), a no-op when it exists already.
-- fraiseql-lint: ignore FQL001
CREATE INDEX IF NOT EXISTS idx_sync_history_synced ON sync_history (synced_at DESC);
