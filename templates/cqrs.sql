-- Migration ${version}: ${title}
--
-- Created: ${date}
-- CQRS entity `${entity}`: tb_${entity} is the command side (normalized, for writes),
-- tv_${entity} the query side (one denormalized JSONB document per row, for reads).
-- Add your columns to tb_${entity}; your sync code fills tv_${entity}.data after writes
-- (see "Initial Data Sync" in the migrations guide).

-- migrate:up

-- ============================================================================
-- COMMAND SIDE: Normalized table for writes
-- ============================================================================

CREATE TABLE tb_${entity} (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- your columns, e.g.: name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- ============================================================================
-- QUERY SIDE: Denormalized table for reads
-- ============================================================================

CREATE TABLE tv_${entity} (
    id UUID PRIMARY KEY,
    data JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- GIN index for fast JSONB queries
CREATE INDEX idx_tv_${entity}_data ON tv_${entity} USING GIN (data);
${sync_history_up}
-- migrate:down
${sync_history_down}DROP INDEX idx_tv_${entity}_data;
DROP TABLE tv_${entity};
DROP TABLE tb_${entity};
