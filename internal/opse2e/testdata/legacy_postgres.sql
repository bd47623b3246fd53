-- The DDL of wharf's Migrate before versioned migrations (commit 8bda02a,
-- default table names), statement by statement: what a database created
-- by an older wharf holds. The fillfactor clause was added by commit
-- 1cb025e; the test creates the table both with and without it.
CREATE TABLE IF NOT EXISTS "outbox_messages" (
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
){{.Fillfactor}};
CREATE INDEX IF NOT EXISTS "outbox_messages_claim_idx" ON "outbox_messages" (available_at, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS "outbox_messages_key_idx" ON "outbox_messages" (ordering_key, id) WHERE status = 'pending' AND ordering_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS "idempotency_records" (
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
CREATE INDEX IF NOT EXISTS "idempotency_records_expires_idx" ON "idempotency_records" (expires_at);
