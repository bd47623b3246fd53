package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	_ "github.com/go-sql-driver/mysql" // "mysql" database/sql driver
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" database/sql driver
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/providers/mysql"
	"github.com/wharf-go/wharf/providers/sqlite"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openSQL opens a plain database/sql pool on a wharf URL, with the
// provider's own DSN for MariaDB and SQLite.
func openSQL(dialect, url string) (*sql.DB, error) {
	var (
		driver, dsn string
		err         error
	)
	switch dialect {
	case "postgres":
		driver, dsn = "pgx", url
	case "mysql":
		driver = "mysql"
		dsn, err = mysql.DSN(url)
	case "sqlite":
		driver = "sqlite"
		dsn, _, err = sqlite.DSN(url)
	default:
		return nil, fmt.Errorf("unknown dialect %q", dialect)
	}
	if err != nil {
		return nil, err
	}
	return sql.Open(driver, dsn)
}

// resetWharf drops wharf's tables and creates them again through the
// driver's Migrate, so that every scenario starts from a fresh table (and
// fresh statistics).
func resetWharf(ctx context.Context, dialect, url string) error {
	db, err := openSQL(dialect, url)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, t := range []string{wharfTable, "idempotency_records"} {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			return fmt.Errorf("drop %s: %w", t, err)
		}
	}
	drv, err := wharf.Open(ctx, url, wharf.Options{Logger: quietLogger()})
	if err != nil {
		return err
	}
	if err := drv.Migrate(ctx); err != nil {
		return errors.Join(err, drv.Close())
	}
	if err := drv.Close(); err != nil {
		return err
	}
	switch dialect {
	case "postgres":
		_, err = db.ExecContext(ctx, "VACUUM ANALYZE "+wharfTable)
	case "mysql":
		_, err = db.ExecContext(ctx, "ANALYZE TABLE "+wharfTable)
	}
	return err
}

// resetRiver migrates River into its schema (once) and empties its jobs.
func resetRiver(ctx context.Context, url string) error {
	pool, err := riverPool(ctx, url, "scen-setup", 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+riverSchema); err != nil {
		return err
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: riverSchema, Logger: discardLogger()})
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	for _, s := range []string{"TRUNCATE " + riverSchema + ".river_job", "VACUUM ANALYZE " + riverSchema + ".river_job"} {
		if _, err := pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// remaining counts what is left in a system's table after the drain:
// undelivered messages and (wharf) dead letters.
func remaining(ctx context.Context, db *sql.DB, system string) (pending, dead int64, err error) {
	if system == "river" {
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM "+riverSchema+".river_job WHERE state <> 'completed'").Scan(&pending)
		return pending, 0, err
	}
	err = db.QueryRowContext(ctx, "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), "+
		"COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0) FROM "+wharfTable).Scan(&pending, &dead)
	return pending, dead, err
}

// riverStates lists River's unfinished jobs by state (a diagnostic).
func riverStates(ctx context.Context, db *sql.DB, system string) string {
	if system != "river" {
		return ""
	}
	rows, err := db.QueryContext(ctx, "SELECT state::text, count(*) FROM "+riverSchema+".river_job WHERE state <> 'completed' GROUP BY state ORDER BY state")
	if err != nil {
		return ""
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var st string
		var n int64
		if rows.Scan(&st, &n) == nil {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// sampler reads a dialect's table statistics once per tick (sample) and
// at the end of every phase (snapshot: the costlier pgstattuple).
type sampler interface {
	sample(ctx context.Context) (map[string]float64, error)
	snapshot(ctx context.Context) (map[string]float64, error)
}

// pgSampler: pg_stat_user_tables and the oldest snapshot's age per tick,
// pgstattuple / pgstatindex at phase ends.
type pgSampler struct {
	db        *sql.DB
	systems   []string
	noTuple   bool // pgstattuple missing
	noStmts   bool // pg_stat_statements missing
	stmtsNote string
}

// pgStmtPatterns pick a system's statements out of pg_stat_statements:
// every statement on its table, and its claim (the statement that locks
// rows with SKIP LOCKED: wharf's claim, River's JobGetAvailable).
var pgStmtPatterns = map[string]struct{ table, claim string }{
	"wharf": {"%" + wharfTable + "%", "%SKIP LOCKED%"},
	"river": {"%river_job%", "%SKIP LOCKED%"},
}

var pgTables = map[string]struct{ table, index string }{
	"wharf": {"public." + wharfTable, "public." + wharfTable + "_claim_idx"},
	"river": {riverSchema + ".river_job", riverSchema + ".river_job_prioritized_fetching_index"},
}

func (p *pgSampler) sample(ctx context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	for _, sys := range p.systems {
		var live, dead, tbytes, ibytes, upd, hot, vac float64
		err := p.db.QueryRowContext(ctx, `SELECT n_live_tup, n_dead_tup, pg_relation_size(relid), pg_indexes_size(relid),
			n_tup_upd, n_tup_hot_upd, autovacuum_count + vacuum_count FROM pg_stat_user_tables WHERE relid = $1::regclass`,
			pgTables[sys].table).Scan(&live, &dead, &tbytes, &ibytes, &upd, &hot, &vac)
		if err != nil {
			return out, err
		}
		out[sys+".live_tuples"], out[sys+".dead_tuples"] = live, dead
		out[sys+".table_mib"], out[sys+".index_mib"] = tbytes/(1<<20), ibytes/(1<<20)
		out[sys+".updates"], out[sys+".hot_updates"], out[sys+".vacuums"] = upd, hot, vac
	}
	if !p.noStmts {
		for _, sys := range p.systems {
			pt := pgStmtPatterns[sys]
			var calls, bufs, ms, sqlMs float64
			err := p.db.QueryRowContext(ctx, `SELECT
				COALESCE(sum(calls) FILTER (WHERE query ILIKE $2), 0),
				COALESCE(sum(shared_blks_hit + shared_blks_read) FILTER (WHERE query ILIKE $2), 0),
				COALESCE(sum(total_exec_time) FILTER (WHERE query ILIKE $2), 0),
				COALESCE(sum(total_exec_time), 0)
				FROM pg_stat_statements WHERE query ILIKE $1 AND query NOT ILIKE '%pg_stat%'`, pt.table, pt.claim).Scan(&calls, &bufs, &ms, &sqlMs)
			if err != nil {
				return out, err
			}
			out[sys+".claim_calls"], out[sys+".claim_buffers"], out[sys+".claim_ms"], out[sys+".sql_ms"] = calls, bufs, ms, sqlMs
		}
	}
	var age, conns float64
	err := p.db.QueryRowContext(ctx, `SELECT COALESCE(max(age(backend_xmin)), 0), count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'`).Scan(&age, &conns)
	out["xmin_age"], out["connections"] = age, conns
	return out, err
}

// setupStatements enables pg_stat_statements for the scenario (it needs
// the library preloaded, which the runner's own server has) and empties
// it.
func (p *pgSampler) setupStatements(ctx context.Context) {
	if _, err := p.db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err == nil {
		if _, err = p.db.ExecContext(ctx, "SELECT pg_stat_statements_reset()"); err == nil {
			return
		}
		p.stmtsNote = err.Error()
	} else {
		p.stmtsNote = err.Error()
	}
	p.noStmts = true
}

func (p *pgSampler) snapshot(ctx context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	if p.noTuple {
		return out, nil
	}
	for _, sys := range p.systems {
		t := pgTables[sys]
		var tlen, tuples, deadN, deadPct, freePct float64
		err := p.db.QueryRowContext(ctx, `SELECT table_len, tuple_count, dead_tuple_count, dead_tuple_percent, free_percent FROM pgstattuple($1::regclass)`, t.table).
			Scan(&tlen, &tuples, &deadN, &deadPct, &freePct)
		if err != nil {
			return out, err
		}
		out[sys+".pgstattuple_table_mib"], out[sys+".pgstattuple_tuples"] = tlen/(1<<20), tuples
		out[sys+".pgstattuple_dead_tuples"], out[sys+".pgstattuple_dead_pct"], out[sys+".pgstattuple_free_pct"] = deadN, deadPct, freePct
		var leaf, density float64
		err = p.db.QueryRowContext(ctx, `SELECT leaf_pages, avg_leaf_density FROM pgstatindex($1)`, t.index).Scan(&leaf, &density)
		if err != nil {
			return out, err
		}
		out[sys+".claim_index_leaf_pages"], out[sys+".claim_index_leaf_density"] = leaf, density
	}
	return out, nil
}

// mySampler: InnoDB's history list length (undo records not yet purged,
// what an open read view holds back), the table's size and the number of
// connections.
type mySampler struct{ db *sql.DB }

func (m *mySampler) sample(ctx context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	var hist float64
	if err := m.db.QueryRowContext(ctx, "SELECT `count` FROM information_schema.INNODB_METRICS WHERE name = 'trx_rseg_history_len'").Scan(&hist); err != nil {
		return out, err
	}
	out["history_len"] = hist
	var data, index, free, rows float64
	err := m.db.QueryRowContext(ctx, "SELECT data_length, index_length, data_free, table_rows FROM information_schema.TABLES WHERE table_schema = DATABASE() AND table_name = ?", wharfTable).
		Scan(&data, &index, &free, &rows)
	if err != nil {
		return out, err
	}
	out["wharf.table_mib"], out["wharf.index_mib"], out["wharf.free_mib"], out["wharf.rows_estimate"] = data/(1<<20), index/(1<<20), free/(1<<20), rows
	var name string
	var conns float64
	err = m.db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &conns)
	out["connections"] = conns
	return out, err
}

func (m *mySampler) snapshot(context.Context) (map[string]float64, error) { return nil, nil }

// sqliteSampler: the database file and its write-ahead log (a reader that
// keeps its snapshot stops checkpoints from emptying the log).
type sqliteSampler struct{ path string }

func (s *sqliteSampler) sample(context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	for suffix, key := range map[string]string{"": "wharf.db_mib", "-wal": "wharf.wal_mib"} {
		if fi, err := os.Stat(s.path + suffix); err == nil {
			out[key] = float64(fi.Size()) / (1 << 20)
		}
	}
	return out, nil
}

func (s *sqliteSampler) snapshot(context.Context) (map[string]float64, error) { return nil, nil }

// serverVersion describes a server for the report.
func serverVersion(ctx context.Context, dialect string, db *sql.DB) string {
	var v string
	switch dialect {
	case "sqlite":
		_ = db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v)
		return "SQLite " + v + " (modernc.org/sqlite, WAL)"
	case "postgres":
		_ = db.QueryRowContext(ctx, "SELECT version()").Scan(&v)
		var fsync string
		_ = db.QueryRowContext(ctx, "SHOW fsync").Scan(&fsync)
		f := strings.Fields(v)
		return strings.Join(f[:min(2, len(f))], " ") + " (fsync=" + fsync + ")"
	default:
		_ = db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v)
		var flush string
		_ = db.QueryRowContext(ctx, "SELECT @@innodb_flush_log_at_trx_commit").Scan(&flush)
		return "MariaDB " + v + " (innodb_flush_log_at_trx_commit=" + flush + ")"
	}
}
