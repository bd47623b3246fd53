package mysql_test

// Benchmarks of wharf's MySQL outbox beside a raw baseline: the same SQL
// statements sent through database/sql and go-sql-driver/mysql alone (no
// bun, no wharf), with interpolateParams=true so that, like bun, each
// statement is one round trip. Run against a real server:
//
//	bash scripts/testdb.sh run --mysql -- go test -bench . -run '^$' -benchtime 3s -count 3 ./providers/mysql/

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/mysql"
)

const benchTimeFormat = "2006-01-02T15:04:05.000000Z"

type benchEnv struct {
	drv *wharf.Driver
	ob  wharf.Outbox
	raw *sql.DB
	sql rawSQL
}

// rawSQL are the statement texts wharf sends, rendered once.
type rawSQL struct {
	insertPrefix string // INSERT INTO t (cols) VALUES
	eligible     string // the claim's locking SELECT; args now, now, limit
	claimSet     string // UPDATE t FORCE INDEX (PRIMARY) SET ... WHERE id IN (
	readBack     string // SELECT cols FROM t FORCE INDEX (PRIMARY) WHERE id IN (
	present      string // SELECT id ... WHERE id IN (%s) AND claim_token IN (%s) FOR UPDATE
	complete     string // DELETE t FROM t FORCE INDEX (PRIMARY) WHERE id IN (%s) AND claim_token IN (%s)
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	ctx := context.Background()
	dbURL, _ := newDatabase(b)
	drv := openDriver(b, dbURL, wharf.Options{})
	if err := drv.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	dsn, err := mysql.DSN(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	cfg.InterpolateParams = true
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	raw := sql.OpenDB(connector)
	raw.SetMaxOpenConns(testPoolSize)
	raw.SetMaxIdleConns(testPoolSize)
	b.Cleanup(func() { _ = raw.Close() })

	t := "`outbox_messages`"
	eligible, _ := mysql.ClaimSQL(drv, outboxsql.ClaimParams{Limit: 1}, "c.id", "")
	set, _ := mysql.OutboxQueries(drv).ClaimSet(outboxsql.ClaimParams{}, "CONCAT(?, id)")
	return &benchEnv{drv: drv, ob: drv.Outbox(), raw: raw, sql: rawSQL{
		insertPrefix: "INSERT INTO " + t + " (" + outboxsql.Columns + ") VALUES ",
		eligible:     eligible,
		claimSet:     "UPDATE " + t + " FORCE INDEX (PRIMARY) SET " + set + " WHERE id IN (",
		readBack:     "SELECT " + outboxsql.Columns + " FROM " + t + " FORCE INDEX (PRIMARY) WHERE id IN (",
		present:      "SELECT id FROM " + t + " FORCE INDEX (PRIMARY) WHERE id IN (%s) AND claim_token IN (%s) FOR UPDATE",
		complete:     "DELETE " + t + " FROM " + t + " FORCE INDEX (PRIMARY) WHERE id IN (%s) AND claim_token IN (%s)",
	}}
}

func (e *benchEnv) truncate(b *testing.B) {
	b.Helper()
	if _, err := e.raw.Exec("TRUNCATE TABLE outbox_messages"); err != nil {
		b.Fatal(err)
	}
}

func benchID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	binaryNow := uint64(time.Now().UnixMilli())
	for i := 0; i < 6; i++ {
		u[i] = byte(binaryNow >> (40 - 8*i))
	}
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// rawEnqueue inserts n messages in one transaction, as Enqueue does.
func (e *benchEnv) rawEnqueue(ctx context.Context, n int) error {
	now := time.Now().UTC().Format(benchTimeFormat)
	var q strings.Builder
	q.WriteString(e.sql.insertPrefix)
	args := make([]any, 0, n*15)
	for i := 0; i < n; i++ {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, benchID(), "event", "bench", nil, `{"n":1}`, nil, "pending", 0, 10, now, nil, nil, nil, now, now)
	}
	tx, err := e.raw.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

type rawMsg struct {
	id, kind, topic, payload, status, token string
	key, headers, lockedUntil, lastError    sql.NullString
	attempts, maxAttempts                   int
	availableAt, createdAt, updatedAt       time.Time
}

// rawClaim runs the claim's statements: a READ COMMITTED transaction with
// the locking SELECT, the UPDATE and the read-back.
func (e *benchEnv) rawClaim(ctx context.Context, limit int) ([]rawMsg, error) {
	now := time.Now().UTC()
	nowS := now.Format(benchTimeFormat)
	until := now.Add(time.Minute).Format(benchTimeFormat)
	tx, err := e.raw.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, e.sql.eligible, nowS, nowS, limit)
	if err != nil {
		return nil, err
	}
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, tx.Commit()
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	prefix := hex.EncodeToString(tok[:]) + ":"
	in := placeholders(len(ids)) + ")"
	args := append([]any{prefix, until, outboxsql.LeaseExpiredError, nowS}, ids...)
	if _, err := tx.ExecContext(ctx, e.sql.claimSet+in, args...); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, e.sql.readBack+in, ids...)
	if err != nil {
		return nil, err
	}
	msgs := make([]rawMsg, 0, len(ids))
	for rows.Next() {
		var m rawMsg
		var avail, created, updated string
		var token sql.NullString
		if err := rows.Scan(&m.id, &m.kind, &m.topic, &m.key, &m.payload, &m.headers, &m.status, &m.attempts, &m.maxAttempts,
			&avail, &m.lockedUntil, &token, &m.lastError, &created, &updated); err != nil {
			return nil, err
		}
		m.token = token.String
		if m.availableAt, err = time.Parse(benchTimeFormat, avail); err != nil {
			return nil, err
		}
		if m.createdAt, err = time.Parse(benchTimeFormat, created); err != nil {
			return nil, err
		}
		if m.updatedAt, err = time.Parse(benchTimeFormat, updated); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return msgs, tx.Commit()
}

// rawComplete runs Complete's statements: the locking read of the claims
// still held and the DELETE, in one transaction.
func (e *benchEnv) rawComplete(ctx context.Context, msgs []rawMsg) error {
	args := make([]any, 0, 2*len(msgs))
	for _, m := range msgs {
		args = append(args, m.id)
	}
	for _, m := range msgs {
		args = append(args, m.token)
	}
	ph := placeholders(len(msgs))
	tx, err := e.raw.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, fmt.Sprintf(e.sql.present, ph, ph), args...)
	if err != nil {
		return err
	}
	held := 0
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		held++
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if held != len(msgs) {
		return fmt.Errorf("raw complete: %d of %d claims held", held, len(msgs))
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(e.sql.complete, ph, ph), args...); err != nil {
		return err
	}
	return tx.Commit()
}

// enqueueInTx enqueues msgs in one transaction, as an application does.
func enqueueInTx(ctx context.Context, drv *wharf.Driver, msgs []ports.OutboxMessage) error {
	return drv.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := drv.Bind(tx).Outbox.Enqueue(ctx, msgs...)
		return err
	})
}

func reportMsgs(b *testing.B, perOp int) {
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkEnqueue(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	for _, perTx := range []int{1, 100} {
		msgs := make([]ports.OutboxMessage, perTx)
		for i := range msgs {
			msgs[i] = ports.OutboxMessage{Topic: "bench", Payload: json.RawMessage(`{"n":1}`)}
		}
		b.Run(fmt.Sprintf("PerTx=%d/Wharf", perTx), func(b *testing.B) {
			e.truncate(b)
			b.ResetTimer()
			for range b.N {
				if err := enqueueInTx(ctx, e.drv, msgs); err != nil {
					b.Fatal(err)
				}
			}
			reportMsgs(b, perTx)
		})
		b.Run(fmt.Sprintf("PerTx=%d/Raw", perTx), func(b *testing.B) {
			e.truncate(b)
			b.ResetTimer()
			for range b.N {
				if err := e.rawEnqueue(ctx, perTx); err != nil {
					b.Fatal(err)
				}
			}
			reportMsgs(b, perTx)
		})
	}
}

func BenchmarkClaimComplete(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	fillN := func(b *testing.B, n int) {
		b.Helper()
		e.truncate(b)
		for n > 0 {
			chunk := min(n, 500)
			if err := e.rawEnqueue(ctx, chunk); err != nil {
				b.Fatal(err)
			}
			n -= chunk
		}
		if _, err := e.raw.Exec("ANALYZE TABLE outbox_messages"); err != nil {
			b.Fatal(err)
		}
	}
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("Batch=%d/Wharf", batch), func(b *testing.B) {
			fillN(b, b.N*batch)
			b.ResetTimer()
			for range b.N {
				msgs, err := e.ob.Claim(ctx, ports.ClaimOptions{Limit: batch, Lease: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				if len(msgs) != batch {
					b.Fatalf("claimed %d, want %d", len(msgs), batch)
				}
				if err := e.ob.Complete(ctx, claims(msgs)...); err != nil {
					b.Fatal(err)
				}
			}
			reportMsgs(b, batch)
		})
		b.Run(fmt.Sprintf("Batch=%d/Raw", batch), func(b *testing.B) {
			fillN(b, b.N*batch)
			b.ResetTimer()
			for range b.N {
				msgs, err := e.rawClaim(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				if len(msgs) != batch {
					b.Fatalf("claimed %d, want %d", len(msgs), batch)
				}
				if err := e.rawComplete(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
			reportMsgs(b, batch)
		})
	}
}

// BenchmarkInterleaved alternates one wharf operation and one raw operation
// in every iteration and times each, so both see the same machine: on a
// shared or noisy host (commit latency is dominated by fsync) this gives a
// steadier wharf/raw ratio than comparing separate runs. It reports
// wharf-msgs/s, raw-msgs/s and wharf/raw.
func BenchmarkInterleaved(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	report := func(b *testing.B, perOp int, wharf, raw time.Duration) {
		w := float64(b.N*perOp) / wharf.Seconds()
		r := float64(b.N*perOp) / raw.Seconds()
		b.ReportMetric(w, "wharf-msgs/s")
		b.ReportMetric(r, "raw-msgs/s")
		b.ReportMetric(w/r, "wharf/raw")
	}
	for _, perTx := range []int{1, 100} {
		msgs := make([]ports.OutboxMessage, perTx)
		for i := range msgs {
			msgs[i] = ports.OutboxMessage{Topic: "bench", Payload: json.RawMessage(`{"n":1}`)}
		}
		b.Run(fmt.Sprintf("Enqueue/PerTx=%d", perTx), func(b *testing.B) {
			e.truncate(b)
			var wharf, raw time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := enqueueInTx(ctx, e.drv, msgs); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := e.rawEnqueue(ctx, perTx); err != nil {
					b.Fatal(err)
				}
				wharf += mid.Sub(start)
				raw += time.Since(mid)
			}
			report(b, perTx, wharf, raw)
		})
	}
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("ClaimComplete/Batch=%d", batch), func(b *testing.B) {
			e.truncate(b)
			for n := 2 * b.N * batch; n > 0; n -= min(n, 500) {
				if err := e.rawEnqueue(ctx, min(n, 500)); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := e.raw.Exec("ANALYZE TABLE outbox_messages"); err != nil {
				b.Fatal(err)
			}
			var wharf, raw time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				msgs, err := e.ob.Claim(ctx, ports.ClaimOptions{Limit: batch, Lease: time.Minute})
				if err != nil || len(msgs) != batch {
					b.Fatalf("claim: %d messages, %v", len(msgs), err)
				}
				if err := e.ob.Complete(ctx, claims(msgs)...); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				rmsgs, err := e.rawClaim(ctx, batch)
				if err != nil || len(rmsgs) != batch {
					b.Fatalf("raw claim: %d messages, %v", len(rmsgs), err)
				}
				if err := e.rawComplete(ctx, rmsgs); err != nil {
					b.Fatal(err)
				}
				wharf += mid.Sub(start)
				raw += time.Since(mid)
			}
			report(b, batch, wharf, raw)
		})
	}
}
