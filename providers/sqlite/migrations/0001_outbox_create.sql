-- The outbox table. Timestamps are fixed-width ISO-8601 TEXT, whose order
-- is their chronological order. An index of an attached schema is named
-- with the schema and created on the bare table name. IF NOT EXISTS adopts
-- a table created before versioned migrations.
CREATE TABLE IF NOT EXISTS {{.Table}} (
	id TEXT NOT NULL PRIMARY KEY,
	kind TEXT NOT NULL,
	topic TEXT NOT NULL,
	ordering_key TEXT,
	payload TEXT NOT NULL,
	headers TEXT,
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL,
	available_at TEXT NOT NULL,
	locked_until TEXT,
	claim_token TEXT,
	last_error TEXT,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
-- The claim: pending messages in claim order.
CREATE INDEX IF NOT EXISTS {{.Schema}}{{.Index "_claim_idx"}} ON {{.Base}} (available_at, id) WHERE status = 'pending';
-- The per-key check: is an earlier message of this ordering key pending?
CREATE INDEX IF NOT EXISTS {{.Schema}}{{.Index "_key_idx"}} ON {{.Base}} (ordering_key, id) WHERE status = 'pending' AND ordering_key IS NOT NULL;
