-- The schema version table: one row per migration applied to a table,
-- keyed by the table's name as configured, so that several wharf table
-- sets can share one database (and one version table).
CREATE TABLE IF NOT EXISTS {{.Table}} (
	table_name TEXT NOT NULL,
	version INTEGER NOT NULL,
	component TEXT NOT NULL,
	name TEXT NOT NULL,
	applied_at TEXT NOT NULL,
	PRIMARY KEY (table_name, version)
);
