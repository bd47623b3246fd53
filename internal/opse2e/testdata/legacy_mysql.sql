-- The DDL of wharf's Migrate before versioned migrations (default table
-- names), statement by statement.
CREATE TABLE IF NOT EXISTS `outbox_messages` (
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
CREATE TABLE IF NOT EXISTS `idempotency_records` (
	storage_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	namespace VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	idem_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	scope VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	fingerprint VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	token VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	locked_until VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NULL,
	expires_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	updated_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (storage_key),
	INDEX expires_idx (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
