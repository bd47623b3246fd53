-- The idempotency table, keyed by a hash of namespace, key and scope.
-- IF NOT EXISTS adopts a table created before versioned migrations.
CREATE TABLE IF NOT EXISTS {{.Table}} (
	storage_key TEXT NOT NULL PRIMARY KEY,
	namespace TEXT NOT NULL,
	idem_key TEXT NOT NULL,
	scope TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	status TEXT NOT NULL,
	token TEXT NOT NULL,
	result TEXT,
	locked_until TEXT,
	expires_at TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
-- Expiry: the purge of expired records reads it in order.
CREATE INDEX IF NOT EXISTS {{.Schema}}{{.Index "_expires_idx"}} ON {{.Base}} (expires_at);
