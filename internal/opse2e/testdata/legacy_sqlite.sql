-- The DDL of wharf's Migrate before versioned migrations (default table
-- names), statement by statement.
CREATE TABLE IF NOT EXISTS "outbox_messages" (
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
CREATE INDEX IF NOT EXISTS "outbox_messages_claim_idx" ON "outbox_messages" (available_at, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS "outbox_messages_key_idx" ON "outbox_messages" (ordering_key, id) WHERE status = 'pending' AND ordering_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS "idempotency_records" (
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
CREATE INDEX IF NOT EXISTS "idempotency_records_expires_idx" ON "idempotency_records" (expires_at);
