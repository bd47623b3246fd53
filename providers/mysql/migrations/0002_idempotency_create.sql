-- The idempotency table, keyed by a hash of namespace, key and scope;
-- expires_idx serves the purge of expired records. IF NOT EXISTS adopts a
-- table created before versioned migrations.
CREATE TABLE IF NOT EXISTS {{.Table}} (
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
