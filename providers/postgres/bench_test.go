package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// The benchmarks measure each wharf operation against a raw baseline: the
// same statements issued directly through database/sql on pgx's driver (no
// bun, no wharf), with $n parameters and pgx's default statement cache. The
// two run paired, alternating within every iteration on two tables of their
// own, so that both see the same server load; each benchmark reports
// wharf-msgs/s and raw-msgs/s, from the median time of an operation, and
// their ratio (ns/op is the mean time of a pair). Run them
// against a server with fsync on:
//
//	bash scripts/testdb.sh run --postgres -- go test -bench . -run '^$' -benchtime 3s -count 3 ./providers/postgres/
//
// The baseline prepares its statements once (pgx's statement cache), so the
// server plans them once; wharf's go through bun, which renders arguments
// into the SQL text, so every one is parsed and planned. With
// WHARF_BENCH_RAW_PROTOCOL=simple the baseline uses the simple protocol too,
// which measures what is left: the framework's own cost.

// Tables of the benchmarks.
const (
	benchTable = "outbox_messages" // wharf's
	rawTable   = "raw_outbox"      // the baseline's, same DDL
)

// benchEnv is one benchmark's database, with a wharf handle and a raw one.
type benchEnv struct {
	ctx context.Context
	drv *wharf.Driver // wharf: postgres.Open
	raw *sql.DB       // baseline: pgx stdlib with pgx's defaults
	ob  wharf.Outbox
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	u := newDatabase(b, direct).url
	drv := openDriver(b, u, wharf.Options{Outbox: wharf.OutboxOptions{TableName: benchTable}})
	require.NoError(b, drv.Migrate(context.Background()))
	// The baseline's table: the same DDL, created by a driver of its own.
	require.NoError(b, newDriver(b, drv.DB(), wharf.Options{Outbox: wharf.OutboxOptions{TableName: rawTable}}).Migrate(context.Background()))
	cfg, err := pgx.ParseConfig(u)
	require.NoError(b, err)
	if os.Getenv("WHARF_BENCH_RAW_PROTOCOL") == "simple" {
		// Diagnostic: the baseline on wharf's protocol, every statement
		// parsed and planned by the server, as bun's rendered SQL is.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	raw := stdlib.OpenDB(*cfg)
	b.Cleanup(func() { _ = raw.Close() })
	// Open both pools' connection before timing.
	require.NoError(b, drv.DB().PingContext(context.Background()))
	require.NoError(b, raw.PingContext(context.Background()))
	return &benchEnv{ctx: context.Background(), drv: drv, raw: raw, ob: drv.Outbox()}
}

// pair times the two sides of a paired benchmark, operation by operation.
type pair struct {
	wharf, raw []time.Duration
}

// run times one operation of each side, wharf first on even iterations and
// raw first on odd ones.
func (p *pair) run(b *testing.B, i int, wharf, raw func() error) {
	first, second, d1, d2 := wharf, raw, &p.wharf, &p.raw
	if i%2 == 1 {
		first, second, d1, d2 = raw, wharf, &p.raw, &p.wharf
	}
	t0 := time.Now()
	if err := first(); err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	if err := second(); err != nil {
		b.Fatal(err)
	}
	*d1 = append(*d1, t1.Sub(t0))
	*d2 = append(*d2, time.Since(t1))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// report publishes each side's throughput, computed from its median
// operation time (robust to the latency spikes of a shared machine), and
// their ratio.
func (p *pair) report(b *testing.B, perOp int) {
	b.StopTimer()
	w := float64(perOp) / median(p.wharf).Seconds()
	r := float64(perOp) / median(p.raw).Seconds()
	b.ReportMetric(w, "wharf-msgs/s")
	b.ReportMetric(r, "raw-msgs/s")
	b.ReportMetric(w/r, "wharf/raw")
}

// BenchmarkEnqueue enqueues batch messages per transaction.
func BenchmarkEnqueue(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("Batch%d", batch), func(b *testing.B) {
			e := newBenchEnv(b)
			msgs := make([]ports.OutboxMessage, batch)
			for i := range msgs {
				msgs[i] = ports.OutboxMessage{Topic: "bench", Payload: json.RawMessage(`{"n":1}`)}
			}
			insert := rawInsert(rawTable, batch)
			channel := postgres.NotifyChannel(rawTable)
			cols := newRawColumns(batch)
			var p pair
			b.ResetTimer()
			for i := range b.N {
				p.run(b, i, func() error {
					tx, err := e.drv.DB().BeginTx(e.ctx, nil)
					if err != nil {
						return err
					}
					if _, err := e.drv.Bind(tx).Outbox.Enqueue(e.ctx, msgs...); err != nil {
						return err
					}
					return tx.Commit()
				}, func() error {
					// Enqueue's statements with the same row values: one
					// row by VALUES, several by unnest of one array per
					// column.
					now := core.FormatTime(time.Now())
					tx, err := e.raw.BeginTx(e.ctx, nil)
					if err != nil {
						return err
					}
					if batch == 1 {
						_, err = tx.ExecContext(e.ctx, insert, core.NewID(), "event", "bench", nil, `{"n":1}`, nil, "pending",
							0, 10, now, nil, nil, nil, now, now)
					} else {
						for i := range batch {
							cols.ids[i], cols.nows[i] = core.NewID(), now
						}
						_, err = tx.ExecContext(e.ctx, insert, cols.ids, cols.kinds, cols.topics, cols.nulls, cols.payloads, cols.nulls,
							cols.statuses, cols.zeros, cols.tens, cols.nows, cols.nulls, cols.nulls, cols.nulls, cols.nows, cols.nows)
					}
					if err != nil {
						return err
					}
					if _, err := tx.ExecContext(e.ctx, "SELECT pg_notify($1, $2)", channel, "bench"); err != nil {
						return err
					}
					return tx.Commit()
				})
			}
			p.report(b, batch)
		})
	}
}

// rawInsert is Enqueue's INSERT of n rows into table with $n parameters:
// VALUES for one row, unnest of one array per column for more.
func rawInsert(table string, n int) string {
	if n == 1 {
		return "INSERT INTO " + table + " (" + outboxsql.Columns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
	}
	return "INSERT INTO " + table + " (" + outboxsql.Columns + ") SELECT * FROM unnest($1::text[], $2::text[], $3::text[]," +
		" $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::int[], $10::text[], $11::text[], $12::text[]," +
		" $13::text[], $14::text[], $15::text[])"
}

// rawColumns are the baseline's column arrays for a batch of n rows.
type rawColumns struct {
	ids, kinds, topics, payloads, statuses, nows []string
	nulls                                        []*string
	zeros, tens                                  []int32
}

func newRawColumns(n int) *rawColumns {
	fill := func(s string) []string { return slices.Repeat([]string{s}, n) }
	return &rawColumns{
		ids: make([]string, n), kinds: fill("event"), topics: fill("bench"), payloads: fill(`{"n":1}`),
		statuses: fill("pending"), nows: make([]string, n), nulls: make([]*string, n),
		zeros: make([]int32, n), tens: slices.Repeat([]int32{10}, n),
	}
}

// seedBench inserts n claimable messages into each table server-side and
// refreshes the statistics, outside the timer.
func seedBench(b *testing.B, e *benchEnv, n int) {
	b.Helper()
	past := core.FormatTime(time.Now().Add(-time.Hour))
	for _, table := range []string{benchTable, rawTable} {
		_, err := e.raw.ExecContext(e.ctx, "INSERT INTO "+table+" ("+outboxsql.Columns+")"+
			" SELECT 'b-' || lpad(i::text, 10, '0'), 'job', 'bench', NULL, '{\"n\":1}', NULL, 'pending', 0, 10, $1, NULL, NULL, NULL, $1, $1"+
			" FROM generate_series(1, $2::int) AS i", past, n)
		require.NoError(b, err)
		_, err = e.raw.ExecContext(e.ctx, "VACUUM ANALYZE "+table)
		require.NoError(b, err)
	}
	// Flush the seed now rather than in a checkpoint during the timed loop
	// (needs superuser or pg_checkpoint; skipped without).
	_, _ = e.raw.ExecContext(e.ctx, "CHECKPOINT")
}

// BenchmarkClaimComplete claims batch messages and completes them, per
// iteration.
func BenchmarkClaimComplete(b *testing.B) {
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("Batch%d", batch), func(b *testing.B) {
			e := newBenchEnv(b)
			seedBench(b, e, b.N*batch)
			claims := make([]ports.Claim, 0, batch)
			ids := make([]string, 0, batch)
			tokens := make([]string, 0, batch)
			var p pair
			b.ResetTimer()
			for i := range b.N {
				p.run(b, i, func() error {
					msgs, err := e.ob.Claim(e.ctx, ports.ClaimOptions{Limit: batch, Lease: time.Minute})
					if err != nil {
						return err
					}
					if len(msgs) != batch {
						return fmt.Errorf("claimed %d messages, want %d", len(msgs), batch)
					}
					claims = claims[:0]
					for _, m := range msgs {
						claims = append(claims, m.Claim())
					}
					return e.ob.Complete(e.ctx, claims...)
				}, func() error {
					ids, tokens = ids[:0], tokens[:0]
					return rawClaimComplete(e, batch, &ids, &tokens)
				})
			}
			p.report(b, batch)
		})
	}
}

// rawClaim is the claim statement (postgres.ClaimSQL) with $n parameters: $1
// token prefix, $2 lease end, $3 last error of an expired final attempt, $4
// now, $5 limit.
const rawClaim = "UPDATE " + rawTable + " SET" +
	" status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END," +
	" claim_token = CASE WHEN attempts >= max_attempts THEN NULL ELSE $1 || id END," +
	" locked_until = CASE WHEN attempts >= max_attempts THEN NULL ELSE $2 END," +
	" last_error = CASE WHEN attempts >= max_attempts THEN $3 ELSE last_error END," +
	" updated_at = $4," +
	" attempts = CASE WHEN attempts >= max_attempts THEN attempts ELSE attempts + 1 END" +
	" WHERE id = ANY(ARRAY(SELECT c.id FROM " + rawTable + " AS c CROSS JOIN generate_series(1, (SELECT 1)) AS rows_hint" +
	" WHERE c.status = 'pending' AND c.available_at <= $4 AND (c.locked_until IS NULL OR c.locked_until <= $4)" +
	" AND (c.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM " + rawTable +
	" AS e WHERE e.ordering_key = c.ordering_key AND e.status = 'pending' AND e.id < c.id))" +
	" ORDER BY c.available_at, c.id LIMIT $5 FOR UPDATE OF c SKIP LOCKED))" +
	" RETURNING " + outboxsql.Columns

const rawComplete = "DELETE FROM " + rawTable + " WHERE id = ANY($1) AND claim_token = ANY($2) RETURNING id"

// rawClaimComplete issues the claim and the completion directly, scanning
// the same columns.
func rawClaimComplete(e *benchEnv, batch int, ids, tokens *[]string) error {
	now := time.Now()
	rows, err := e.raw.QueryContext(e.ctx, rawClaim, sqlbase.NewToken()+":", core.FormatTime(now.Add(time.Minute)),
		outboxsql.LeaseExpiredError, core.FormatTime(now), batch)
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			id, kind, topic, payload, status, avail, created, updated string
			key, headers, locked, token, lastErr                      sql.NullString
			attempts, maxAttempts                                     int
		)
		if err := rows.Scan(&id, &kind, &topic, &key, &payload, &headers, &status, &attempts, &maxAttempts,
			&avail, &locked, &token, &lastErr, &created, &updated); err != nil {
			return err
		}
		*ids, *tokens = append(*ids, id), append(*tokens, token.String)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(*ids) != batch {
		return fmt.Errorf("claimed %d messages, want %d", len(*ids), batch)
	}
	rows, err = e.raw.QueryContext(e.ctx, rawComplete, *ids, *tokens)
	if err != nil {
		return err
	}
	done := 0
	for rows.Next() {
		done++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if done != batch {
		return fmt.Errorf("completed %d messages, want %d", done, batch)
	}
	return nil
}
