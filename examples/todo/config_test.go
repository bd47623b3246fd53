package main

import (
	"bytes"
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func getenvFrom(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestChooseDatabase(t *testing.T) {
	t.Parallel()
	const pg, my, lite = "postgres://u:p@localhost:5432/todo", "mysql://u:p@localhost:3306/todo", "file:/tmp/x.db"
	tests := []struct {
		name         string
		env          map[string]string
		wantDatabase string
		wantURL      string
		wantSource   string
		wantErr      string
	}{
		{name: "NothingSetIsSQLiteInTheWorkingDirectory", wantDatabase: "sqlite", wantURL: "file:todo.db", wantSource: "default"},
		{name: "SQLiteURL", env: map[string]string{"SQLITE_DB_URL": lite}, wantDatabase: "sqlite", wantURL: lite, wantSource: "SQLITE_DB_URL"},
		{name: "PostgresURL", env: map[string]string{"POSTGRES_DB_URL": pg}, wantDatabase: "postgres", wantURL: pg, wantSource: "POSTGRES_DB_URL"},
		{name: "MySQLURL", env: map[string]string{"MYSQL_DB_URL": my}, wantDatabase: "mysql", wantURL: my, wantSource: "MYSQL_DB_URL"},
		{name: "SeveralURLsNeedTodoDB", env: map[string]string{"POSTGRES_DB_URL": pg, "MYSQL_DB_URL": my},
			wantErr: "several database URLs are set (MYSQL_DB_URL, POSTGRES_DB_URL); choose one with TODO_DB=mysql|postgres"},
		{name: "TodoDBPicksAmongSeveral", env: map[string]string{"TODO_DB": "postgres", "POSTGRES_DB_URL": pg, "MYSQL_DB_URL": my},
			wantDatabase: "postgres", wantURL: pg, wantSource: "POSTGRES_DB_URL"},
		{name: "TodoDBSQLiteDefaultsItsURL", env: map[string]string{"TODO_DB": "sqlite", "POSTGRES_DB_URL": pg},
			wantDatabase: "sqlite", wantURL: "file:todo.db", wantSource: "default"},
		{name: "TodoDBIsCaseInsensitiveAndKnowsMariaDB", env: map[string]string{"TODO_DB": "MariaDB", "MYSQL_DB_URL": my},
			wantDatabase: "mysql", wantURL: my, wantSource: "MYSQL_DB_URL"},
		{name: "TodoDBWithoutItsURL", env: map[string]string{"TODO_DB": "postgres", "MYSQL_DB_URL": my},
			wantErr: "TODO_DB=postgres but POSTGRES_DB_URL is not set"},
		{name: "UnknownTodoDB", env: map[string]string{"TODO_DB": "oracle"},
			wantErr: `TODO_DB: unknown database "oracle"; use one of mysql, postgres, sqlite`},
		{name: "MalformedSQLiteURL", env: map[string]string{"SQLITE_DB_URL": "todo.db"},
			wantErr: `SQLITE_DB_URL: sqlite: malformed URL "todo.db": it must start with "file:"`},
		{name: "URLOfAnotherDialect", env: map[string]string{"POSTGRES_DB_URL": my},
			wantErr: "POSTGRES_DB_URL: postgres: malformed URL"},
		{name: "TodoDBChecksTheURLOfItsVariable", env: map[string]string{"TODO_DB": "mysql", "MYSQL_DB_URL": pg},
			wantErr: "MYSQL_DB_URL: mysql: malformed URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name, url, source, err := chooseDatabase(getenvFrom(tt.env))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantDatabase, name)
			require.Equal(t, tt.wantURL, url)
			require.Equal(t, tt.wantSource, source)
		})
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantErr  string
		wantHelp bool
	}{
		{name: "Defaults", wantAddr: "127.0.0.1:8080"},
		{name: "AddrFromEnvironment", env: map[string]string{"TODO_ADDR": ":9000"}, wantAddr: ":9000"},
		{name: "FlagWinsOverEnvironment", args: []string{"-addr", "127.0.0.1:0"}, env: map[string]string{"TODO_ADDR": ":9000"}, wantAddr: "127.0.0.1:0"},
		{name: "LogLevelFromEnvironment", env: map[string]string{"TODO_LOG_LEVEL": "debug"}, wantAddr: "127.0.0.1:8080"},
		{name: "BadLogLevel", args: []string{"-log-level", "loud"}, wantErr: `log level "loud"`},
		{name: "UnknownFlag", args: []string{"-port", "1"}, wantErr: "flag provided but not defined: -port"},
		{name: "StrayArgument", args: []string{"serve"}, wantErr: `unexpected arguments ["serve"]`},
		{name: "BadDatabaseChoice", env: map[string]string{"TODO_DB": "oracle"}, wantErr: "unknown database"},
		{name: "Help", args: []string{"-h"}, wantHelp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			cfg, err := loadConfig(tt.args, getenvFrom(tt.env), &out)
			switch {
			case tt.wantHelp:
				require.ErrorIs(t, err, flag.ErrHelp)
				require.Contains(t, out.String(), "TODO_DB=sqlite|postgres|mysql if set")
			case tt.wantErr != "":
				require.ErrorContains(t, err, tt.wantErr)
			default:
				require.NoError(t, err)
				require.Equal(t, tt.wantAddr, cfg.Addr)
				require.NotNil(t, cfg.Logger)
				require.Positive(t, cfg.ShutdownTimeout)
			}
		})
	}
}

func TestDescribeSource(t *testing.T) {
	t.Parallel()
	require.Equal(t, "POSTGRES_DB_URL", config{URLSource: "POSTGRES_DB_URL"}.describeSource())
	require.Equal(t, "the default database file:todo.db (set SQLITE_DB_URL or TODO_DB to choose another)", config{URLSource: "default"}.describeSource())
}
