package otelwharf_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/otelwharf"
	"github.com/wharf-go/wharf/ports"

	// Every URL scheme of wharf.Open.
	_ "github.com/wharf-go/wharf/providers/mysql"
	_ "github.com/wharf-go/wharf/providers/postgres"
	_ "github.com/wharf-go/wharf/providers/sqlite"
)

// dialectCase gives a test a fresh, empty database of one dialect.
type dialectCase struct {
	name    string
	dialect string
	// database returns the URL of a fresh database (a temp file, a new
	// PostgreSQL schema, a new MariaDB database), dropped when tb ends.
	database func(tb testing.TB) string
}

func dialects() []dialectCase {
	return []dialectCase{
		{name: "SQLite", dialect: "sqlite", database: func(tb testing.TB) string {
			return "file:" + filepath.Join(tb.TempDir(), "otel.db")
		}},
		{name: "PostgreSQL", dialect: "postgres", database: func(tb testing.TB) string {
			return freshDatabase(tb, testdb.PostgresEnv, "CREATE SCHEMA %s", "DROP SCHEMA %s CASCADE", func(u *url.URL, name string) {
				q := u.Query()
				q.Set("search_path", name)
				u.RawQuery = q.Encode()
			})
		}},
		{name: "MariaDB", dialect: "mysql", database: func(tb testing.TB) string {
			return freshDatabase(tb, testdb.MySQLEnv, "CREATE DATABASE `%s` CHARACTER SET utf8mb4", "DROP DATABASE IF EXISTS `%s`", func(u *url.URL, name string) {
				u.Path = "/" + name
			})
		}},
	}
}

// freshDatabase creates a schema or database on the server of env's URL
// (skipping the test locally, failing it under CI=true, when env is unset)
// and returns the URL that reaches it.
func freshDatabase(tb testing.TB, env, create, drop string, point func(u *url.URL, name string)) string {
	tb.Helper()
	base := testdb.URL(tb, env)
	name := randomName("otelwharf_")
	admin, err := wharf.Open(context.Background(), base, wharf.Options{})
	require.NoError(tb, err)
	_, err = admin.DB().ExecContext(context.Background(), fmt.Sprintf(create, name))
	require.NoError(tb, err)
	tb.Cleanup(func() {
		defer func() { _ = admin.Close() }()
		_, err := admin.DB().ExecContext(context.Background(), fmt.Sprintf(drop, name))
		require.NoError(tb, err, "drop %s", name)
	})
	u, err := url.Parse(base)
	require.NoError(tb, err)
	point(u, name)
	return u.String()
}

func randomName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// openDriver opens and migrates the driver of url with opts, closed when tb
// ends.
func openDriver(tb testing.TB, url string, opts wharf.Options) *wharf.Driver {
	tb.Helper()
	drv, err := wharf.Open(context.Background(), url, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, drv.Close()) })
	require.NoError(tb, drv.Migrate(context.Background()))
	return drv
}

// telemetry is an SDK pipeline that keeps everything in memory: every span
// (sampled always) and a manual metric reader.
type telemetry struct {
	tp     *sdktrace.TracerProvider
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	inst   *otelwharf.Instrumentation
}

// w3c is the propagator of the tests: trace context and baggage.
var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

func newTelemetry(tb testing.TB, opts otelwharf.Options) *telemetry {
	tb.Helper()
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(tel.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	tb.Cleanup(func() {
		_ = tel.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	opts.TracerProvider, opts.MeterProvider, opts.Propagator = tel.tp, mp, w3c
	inst, err := otelwharf.New(opts)
	require.NoError(tb, err)
	tel.inst = inst
	return tel
}

// ended returns the ended spans named name.
func (tel *telemetry) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tel.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the one ended span named name.
func (tel *telemetry) one(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := tel.ended(name)
	require.Len(t, spans, 1, "spans named %q", name)
	return spans[0]
}

// collect reads every metric.
func (tel *telemetry) collect(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, tel.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// attrs returns a span's attributes by key.
func attrs(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	out := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = kv.Value
	}
	return out
}

// msg returns a valid message on topic.
func msg(topic string) ports.OutboxMessage {
	return ports.OutboxMessage{Topic: topic, Payload: json.RawMessage(`{"n":1}`)}
}

func reserveReq(ns, key, fingerprint string) ports.ReserveRequest {
	return ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: ns, Key: key},
		Fingerprint: fingerprint, Lease: time.Minute, TTL: time.Hour}
}

// txUnitOfWork is a unit of work whose transaction ports are the wharf.Tx.
func txUnitOfWork(tb testing.TB, drv *wharf.Driver) *wharf.UnitOfWork[wharf.Tx] {
	tb.Helper()
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil }, wharf.UnitOfWorkOptions{})
	require.NoError(tb, err)
	return uow
}
