// Package consoletest gives the console's tests (handler tests here, the
// browser tests in console/browsertest) fresh databases of every dialect
// and a seeded outbox and idempotency store.
package consoletest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/mysql"    // mysql:// URLs
	_ "github.com/wharf-go/wharf/providers/postgres" // postgres:// URLs
	_ "github.com/wharf-go/wharf/providers/sqlite"   // file: URLs
)

// Dialects are the databases every console test runs on.
var Dialects = []string{"sqlite", "postgres", "mysql"}

// Hostile content: a message whose payload, topic, key, headers and last
// error try to run script in the console. Rendered inert, it shows as text.
const (
	HostileScript = `<script>window.__pwned=1;console.log("pwned");alert("pwned")</script>`
	HostileTopic  = `orders.<img src=x onerror="window.__pwned=2;console.log('pwned')">`
	HostileKey    = `"><svg onload="window.__pwned=3">`
	HostileError  = `</pre><script>window.__pwned=4</script>`
	HostileHeader = `<iframe src="javascript:window.top.__pwned=5"></iframe>`
)

// HostilePayload is the JSON payload of the hostile message.
var HostilePayload = json.RawMessage(`{"html":"` + strings.ReplaceAll(HostileScript, `"`, `\"`) + `","n":1}`)

// Database is a fresh, migrated database.
type Database struct {
	Dialect string
	// URL opens it (a test server's URL carries its password).
	URL    string
	Driver *wharf.Driver
	// Clock is the driver's clock (wharf.Options.Now); give a console the
	// same one (console.Options.Now) when a test moves it.
	Clock *Clock
}

// Clock is the wall clock plus an offset that a test moves, so that
// stored times (expiries, updates) pass without sleeping. It is safe for
// concurrent use; its zero value is the wall clock.
type Clock struct{ offset atomic.Int64 }

// Now returns the wall clock's time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock by d (back when d is negative).
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Open creates a fresh database of dialect, migrates it and opens a driver
// on it, on a Clock of its own; both are removed when the test ends. A
// missing server skips the test locally and fails it under CI=true
// (internal/testdb).
func Open(t testing.TB, dialect string) Database {
	t.Helper()
	var u string
	switch dialect {
	case "sqlite":
		u = "file:" + filepath.Join(t.TempDir(), "console.db")
	case "postgres":
		u = serverDB(t, testdb.URL(t, testdb.PostgresEnv), "CREATE DATABASE %s", "DROP DATABASE IF EXISTS %s WITH (FORCE)")
	case "mysql":
		u = serverDB(t, testdb.URL(t, testdb.MySQLEnv), "CREATE DATABASE %s", "DROP DATABASE IF EXISTS %s")
	default:
		t.Fatalf("unknown dialect %q", dialect)
	}
	ctx := context.Background()
	clock := &Clock{}
	drv, err := wharf.Open(ctx, u, wharf.Options{Now: clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	require.NoError(t, drv.Migrate(ctx))
	return Database{Dialect: dialect, URL: u, Driver: drv, Clock: clock}
}

// serverDB creates a database on the server of base and returns its URL.
func serverDB(t testing.TB, base, create, drop string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := wharf.Open(ctx, base, wharf.Options{Pool: wharf.PoolOptions{MaxOpenConns: 1}})
	require.NoError(t, err)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "wharf_console_" + hex.EncodeToString(b[:])
	_, err = admin.DB().ExecContext(ctx, fmt.Sprintf(create, name))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.DB().ExecContext(context.Background(), fmt.Sprintf(drop, name))
		_ = admin.Close()
		require.NoError(t, err)
	})
	p, err := url.Parse(base)
	require.NoError(t, err)
	p.Path = "/" + name
	return p.String()
}

// Seeded names what Seed wrote.
type Seeded struct {
	Ready, Scheduled, Leased, Dead []string
	// Hostile is the dead letter with the hostile content.
	Hostile string
	// DeadTopic is the topic of the dead letters other than Hostile.
	DeadTopic string
	// Idempotency records: CompletedLive, Expired and InProgress keys of
	// namespace IdemNamespace (expired ones in IdemOtherNamespace).
	IdemLive, IdemExpired, IdemInProgress []string
}

// Seed topics and namespaces.
const (
	ReadyTopic         = "mail.send"
	DeadTopic          = "billing.charge"
	IdemNamespace      = "orders.create"
	IdemOtherNamespace = "payments.capture"
)

// Seed writes, through the library: ready ready messages (topic
// ReadyTopic, keys k0..k4), 3 scheduled ones, 2 leased ones, dead dead
// letters of DeadTopic (with an error each) and the hostile dead letter;
// idempotency records: 3 completed live, 2 expired, 1 in progress. The
// expired records are written with db.Clock set back an hour, so they
// expired when it returns to the present.
func Seed(t testing.TB, db Database, ready, dead int) Seeded {
	t.Helper()
	ctx := context.Background()
	drv := db.Driver
	ob := drv.Outbox()
	s := Seeded{DeadTopic: DeadTopic}
	var msgs []ports.OutboxMessage
	for i := range ready {
		msgs = append(msgs, ports.OutboxMessage{Topic: ReadyTopic, Key: fmt.Sprintf("k%d", i%5),
			Payload: json.RawMessage(fmt.Sprintf(`{"to":"user%d@example.com","n":%d}`, i, i)), Headers: map[string]string{"trace": fmt.Sprint(i)}})
	}
	for range 3 {
		msgs = append(msgs, ports.OutboxMessage{Topic: "reports.daily", Payload: json.RawMessage(`{}`), AvailableAt: db.Clock.Now().Add(time.Hour)})
	}
	ids, err := ob.Enqueue(ctx, msgs...)
	require.NoError(t, err)
	s.Ready, s.Scheduled = ids[:ready], ids[ready:]

	// Leased: enqueued and claimed (a topic of their own).
	leased, err := ob.Enqueue(ctx, ports.OutboxMessage{Topic: "leased.work", Payload: json.RawMessage(`{"a":1}`)},
		ports.OutboxMessage{Topic: "leased.work", Payload: json.RawMessage(`{"a":2}`)})
	require.NoError(t, err)
	claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 2, Lease: time.Hour, Topics: []string{"leased.work"}})
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	s.Leased = leased

	// Dead letters.
	msgs = msgs[:0]
	for i := range dead {
		msgs = append(msgs, ports.OutboxMessage{Topic: DeadTopic, Key: fmt.Sprintf("customer-%d", i%3),
			Payload: json.RawMessage(fmt.Sprintf(`{"invoice":%d,"amount":{"value":%d,"currency":"EUR"}}`, i, 100+i)), MaxAttempts: 3,
			Headers: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	}
	msgs = append(msgs, ports.OutboxMessage{Topic: HostileTopic, Key: HostileKey, Payload: HostilePayload,
		Headers: map[string]string{"x-evil": HostileHeader, HostileHeader: "name"}})
	deadIDs, err := ob.Enqueue(ctx, msgs...)
	require.NoError(t, err)
	// Claimed, then dead-lettered with an error; one claim hands out one
	// message per ordering key, so claim until every one is dead.
	for left := len(deadIDs); left > 0; {
		claimed, err = ob.Claim(ctx, ports.ClaimOptions{Limit: left, Lease: time.Minute, Topics: []string{DeadTopic, HostileTopic}})
		require.NoError(t, err)
		require.NotEmpty(t, claimed)
		for _, m := range claimed {
			reason := "payment provider: 502 bad gateway (invoice " + m.Key + ")"
			if m.Topic == HostileTopic {
				reason = HostileError
			}
			require.NoError(t, ob.DeadLetter(ctx, m.Claim(), reason))
		}
		left -= len(claimed)
	}
	s.Dead, s.Hostile = deadIDs[:dead], deadIDs[dead]

	store := drv.Idempotency()
	reserve := func(ns, key string, ttl time.Duration, complete bool) {
		r, err := store.Reserve(ctx, ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: ns, Key: key},
			Fingerprint: "sha256:" + key, TTL: ttl, Lease: time.Hour})
		require.NoError(t, err)
		if complete {
			require.NoError(t, store.Complete(ctx, r, json.RawMessage(`{"order":"`+key+`","status":201}`)))
		}
	}
	for i := range 3 {
		k := fmt.Sprintf("req-live-%d", i)
		reserve(IdemNamespace, k, time.Hour, true)
		s.IdemLive = append(s.IdemLive, k)
	}
	db.Clock.Advance(-time.Hour)
	for i := range 2 {
		k := fmt.Sprintf("req-expired-%d", i)
		reserve(IdemOtherNamespace, k, time.Minute, true)
		s.IdemExpired = append(s.IdemExpired, k)
	}
	db.Clock.Advance(time.Hour) // back to the present: the minute-long TTLs passed
	reserve(IdemNamespace, "req-running", time.Hour, false)
	s.IdemInProgress = []string{"req-running"}
	return s
}
