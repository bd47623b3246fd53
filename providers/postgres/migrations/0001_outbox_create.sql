-- The outbox table. Timestamps are fixed-width ISO-8601 TEXT as in every
-- dialect; COLLATE "C" makes their order (and the order of IDs) byte order
-- whatever the database's locale, and keeps comparisons cheap. Index names
-- take no schema: an index lives in its table's schema. IF NOT EXISTS
-- adopts a table created before versioned migrations.
CREATE TABLE IF NOT EXISTS {{.Table}} (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	kind TEXT NOT NULL,
	topic TEXT NOT NULL,
	ordering_key TEXT COLLATE "C",
	payload TEXT NOT NULL,
	headers TEXT,
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL,
	available_at TEXT COLLATE "C" NOT NULL,
	locked_until TEXT COLLATE "C",
	claim_token TEXT COLLATE "C",
	last_error TEXT,
	created_at TEXT COLLATE "C" NOT NULL,
	updated_at TEXT COLLATE "C" NOT NULL
);
-- The claim: pending messages in claim order.
CREATE INDEX IF NOT EXISTS {{.Index "_claim_idx"}} ON {{.Table}} (available_at, id) WHERE status = 'pending';
-- The per-key check: is an earlier message of this ordering key pending?
CREATE INDEX IF NOT EXISTS {{.Index "_key_idx"}} ON {{.Table}} (ordering_key, id) WHERE status = 'pending' AND ordering_key IS NOT NULL;
