-- The outbox table. id, topic, ordering_key and claim_token are VARBINARY,
-- compared byte for byte (the order of Go's strings.Compare and of SQLite),
-- where the utf8mb4_bin collation would ignore trailing spaces ("k" = "k ").
-- 1020 bytes hold 255 characters of 4-byte UTF-8. The indexes are declared
-- inside CREATE TABLE (MySQL has no CREATE INDEX IF NOT EXISTS); their
-- names are local to the table. IF NOT EXISTS adopts a table created before
-- versioned migrations, and makes the statement safe to run again.
CREATE TABLE IF NOT EXISTS {{.Table}} (
	id VARBINARY(1020) NOT NULL,
	kind VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	topic VARBINARY(1020) NOT NULL,
	ordering_key VARBINARY(1020) NULL,
	payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	headers LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	attempts INT NOT NULL DEFAULT 0,
	max_attempts INT NOT NULL,
	available_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	locked_until VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NULL,
	claim_token VARBINARY(1100) NULL,
	last_error LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	created_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	updated_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (id),
	INDEX claim_idx (status, available_at, id, locked_until),
	INDEX key_idx (ordering_key, status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
