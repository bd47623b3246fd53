-- The idempotency table, keyed by a hash of namespace, key and scope.
-- IF NOT EXISTS adopts a table created before versioned migrations.
CREATE TABLE IF NOT EXISTS {{.Table}} (
	storage_key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	namespace TEXT NOT NULL,
	idem_key TEXT NOT NULL,
	scope TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	status TEXT NOT NULL,
	token TEXT COLLATE "C" NOT NULL,
	result TEXT,
	locked_until TEXT COLLATE "C",
	expires_at TEXT COLLATE "C" NOT NULL,
	created_at TEXT COLLATE "C" NOT NULL,
	updated_at TEXT COLLATE "C" NOT NULL
);
-- Expiry: the purge of expired records reads it in order.
CREATE INDEX IF NOT EXISTS {{.Index "_expires_idx"}} ON {{.Table}} (expires_at);
