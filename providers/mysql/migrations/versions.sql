-- The schema version table: one row per migration applied to a table,
-- keyed by the table's name as configured (at most 127 characters:
-- database.table), so that several wharf table sets can share one database
-- (and one version table).
CREATE TABLE IF NOT EXISTS {{.Table}} (
	table_name VARCHAR(127) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	version INT NOT NULL,
	component VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	name VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	applied_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (table_name, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
