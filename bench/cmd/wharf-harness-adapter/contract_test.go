package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// The test binary doubles as the adapter: with underTestEnv set it runs
// mainWith instead of the tests, so the contract tests drive the real
// process (signals, exit status, stdout/stderr) built with the test's
// flags (-race included).
const underTestEnv = "WHARF_ADAPTER_UNDER_TEST"

func TestMain(m *testing.M) {
	if os.Getenv(underTestEnv) == "1" {
		os.Exit(mainWith(os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// requiredMetrics are emitted on every tick; optionalMetrics may be.
var (
	requiredMetrics = []string{"claim_p50_ms", "claim_p95_ms", "claim_p99_ms", "enqueue_rate", "completion_rate", "queue_depth"}
	optionalMetrics = []string{"producer_target_rate"}
)

// manifest is adapter.json.
type manifest struct {
	System       string   `json:"system"`
	DisplayName  string   `json:"display_name"`
	DBName       string   `json:"db_name"`
	EventTables  []string `json:"event_tables"`
	EventIndexes []string `json:"event_indexes"`
	Extensions   []string `json:"extensions"`
}

func readManifest(t *testing.T) manifest {
	t.Helper()
	b, err := os.ReadFile("adapter.json")
	require.NoError(t, err)
	var m manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&m), "adapter.json holds only the documented fields")
	return m
}

func TestManifestMatchesTheAdapter(t *testing.T) {
	t.Parallel()
	m := readManifest(t)
	require.Equal(t, system, m.System)
	require.NotEmpty(t, m.DBName)
	require.Equal(t, eventTables, m.EventTables)
	require.Equal(t, eventIndexes, m.EventIndexes)
	require.NotNil(t, m.Extensions, "extensions is a list, even when empty")
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://u:p@localhost:5432/wharf_bench"}
	cases := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{name: "DefaultsFollowTheContract", env: map[string]string{}, check: func(t *testing.T, c config) {
			require.Equal(t, "long_horizon", c.Scenario)
			require.Equal(t, "fixed", c.Mode)
			require.Equal(t, defaultRate, c.Rate)
			require.Equal(t, defaultPayload, c.PayloadBytes)
			require.Equal(t, time.Millisecond, c.Work)
			require.Equal(t, 5*time.Second, c.SampleEvery)
			require.Equal(t, "wharf_bench", c.DBName)
			require.Equal(t, "query", c.DepthSource)
		}},
		{name: "SettingsAreRead", env: map[string]string{"PRODUCER_RATE": "1200", "WORKER_COUNT": "64", "JOB_PAYLOAD_BYTES": "512", "JOB_WORK_MS": "0", "SAMPLE_EVERY_S": "10", "BENCH_INSTANCE_ID": "2", "PRODUCER_MODE": "depth-target", "TARGET_DEPTH": "50"},
			check: func(t *testing.T, c config) {
				require.Equal(t, 1200, c.Rate)
				require.Equal(t, 64, c.Workers)
				require.Equal(t, 512, c.PayloadBytes)
				require.Zero(t, c.Work)
				require.Equal(t, 10*time.Second, c.SampleEvery)
				require.Equal(t, 2, c.InstanceID)
				require.Equal(t, "depth-target", c.Mode)
				require.Equal(t, 50, c.TargetDepth)
			}},
		{name: "MissingURLIsRejected", env: map[string]string{"DATABASE_URL": ""}, wantErr: "DATABASE_URL is not set"},
		{name: "ForeignURLIsRejected", env: map[string]string{"DATABASE_URL": "mysql://u:p@localhost/x"}, wantErr: "postgres:// URL"},
		{name: "UnknownScenarioIsRejected", env: map[string]string{"SCENARIO": "burst"}, wantErr: "SCENARIO=\"burst\""},
		{name: "UnknownModeIsRejected", env: map[string]string{"PRODUCER_MODE": "bursty"}, wantErr: "PRODUCER_MODE=\"bursty\""},
		{name: "NonNumericRateIsRejected", env: map[string]string{"PRODUCER_RATE": "fast"}, wantErr: "PRODUCER_RATE=\"fast\" is not an integer"},
		{name: "ZeroWorkersAreRejected", env: map[string]string{"WORKER_COUNT": "0"}, wantErr: "WORKER_COUNT=0 is below 1"},
		{name: "ZeroSamplePeriodIsRejected", env: map[string]string{"SAMPLE_EVERY_S": "0"}, wantErr: "SAMPLE_EVERY_S=0 is below 1"},
		{name: "UnknownDepthSourceIsRejected", env: map[string]string{"QUEUE_DEPTH_SOURCE": "guess"}, wantErr: "QUEUE_DEPTH_SOURCE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := loadConfig(func(k string) string { return env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

// adapterRun is one adapter process started by the test.
type adapterRun struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line; closed at EOF
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startAdapter(t *testing.T, env map[string]string) *adapterRun {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), underTestEnv+"=1")
	for _, k := range []string{"DATABASE_URL", "SCENARIO", "PRODUCER_MODE", "PRODUCER_RATE", "TARGET_DEPTH", "WORKER_COUNT", "JOB_PAYLOAD_BYTES", "JOB_WORK_MS", "SAMPLE_EVERY_S", "BENCH_INSTANCE_ID", "QUEUE_DEPTH_SOURCE"} {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	r := &adapterRun{cmd: cmd, lines: make(chan string, 1024), stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = r.stderr
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return r
}

// testDatabase creates a database of its own on the test server (the
// adapter migrates wharf's default outbox table, which other packages'
// tests use in the shared database) and drops it afterwards.
func testDatabase(t *testing.T) (string, string) {
	t.Helper()
	base := os.Getenv("WHARF_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("WHARF_TEST_POSTGRES_URL is not set and CI=true: run through `make test` (scripts/testdb.sh starts PostgreSQL)")
		}
		t.Skip("*** SKIPPING the harness adapter contract test: WHARF_TEST_POSTGRES_URL is not set (run `make test` or source the output of scripts/testdb.sh start) ***")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	defer admin.Close(ctx)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "wharf_adapter_" + hex.EncodeToString(rnd[:])
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String(), name
}

func TestAdapterRejectsBadSettingsWithExitStatus2(t *testing.T) {
	t.Parallel()
	r := startAdapter(t, map[string]string{"DATABASE_URL": "postgres://u:p@127.0.0.1:1/x", "PRODUCER_RATE": "lots"})
	for range r.lines {
		t.Fatal("nothing may be printed on stdout for bad settings")
	}
	err := <-r.done
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "exit status: %v", err)
	require.Equal(t, 2, exit.ExitCode())
	require.Contains(t, r.stderr.String(), `PRODUCER_RATE="lots" is not an integer`)
}

func TestAdapterMigrateOnlyCreatesTheDeclaredTablesAndExits(t *testing.T) {
	t.Parallel()
	dbURL, _ := testDatabase(t)
	r := startAdapter(t, map[string]string{"DATABASE_URL": dbURL, "SCENARIO": "migrate_only"})
	for line := range r.lines {
		t.Fatalf("migrate_only prints nothing on stdout, got %q", line)
	}
	require.NoError(t, <-r.done, "stderr: %s", r.stderr.String())
	requireDeclaredRelations(t, dbURL, readManifest(t))
}

// requireDeclaredRelations checks that the manifest's tables and indexes
// exist (the harness polls them by name).
func requireDeclaredRelations(t *testing.T, dbURL string, m manifest) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer c.Close(ctx)
	for _, rel := range append(append([]string{}, m.EventTables...), m.EventIndexes...) {
		var found *string
		require.NoError(t, c.QueryRow(ctx, "SELECT to_regclass($1)::text", rel).Scan(&found))
		require.NotNil(t, found, "%s declared in adapter.json does not exist after migration", rel)
	}
}

// TestAdapterContract runs the adapter for a few one-second ticks against
// a real PostgreSQL and checks every stdout line against the harness's
// documented contract (CONTRIBUTING_ADAPTERS.md, "Runtime contract"), then
// that SIGTERM ends it with status 0 within 5 seconds.
func TestAdapterContract(t *testing.T) {
	t.Parallel()
	dbURL, dbName := testDatabase(t)
	m := readManifest(t)
	const (
		rate    = 200
		every   = 1
		ticks   = 4
		timeout = 90 * time.Second
	)
	r := startAdapter(t, map[string]string{
		"DATABASE_URL": dbURL, "SCENARIO": "long_horizon", "PRODUCER_MODE": "fixed", "PRODUCER_RATE": "200",
		"WORKER_COUNT": "8", "JOB_PAYLOAD_BYTES": "256", "JOB_WORK_MS": "1", "SAMPLE_EVERY_S": "1",
	})

	var lines []string
	byTick := map[string]map[string]float64{}
	completeTicks := map[string]bool{}
	deadline := time.After(timeout)
	for len(completeTicks) < ticks {
		select {
		case line, ok := <-r.lines:
			require.True(t, ok, "adapter exited early; stderr:\n%s", r.stderr.String())
			lines = append(lines, line)
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec), "stdout line is not JSON: %q", line)
			if rec["kind"] != "adapter" {
				continue
			}
			ts, _ := rec["t"].(string)
			metric, _ := rec["metric"].(string)
			value, _ := rec["value"].(float64)
			if byTick[ts] == nil {
				byTick[ts] = map[string]float64{}
			}
			byTick[ts][metric] = value
			if hasAll(byTick[ts]) {
				completeTicks[ts] = true
			}
		case <-deadline:
			t.Fatalf("fewer than %d complete ticks within %v; stderr:\n%s", ticks, timeout, r.stderr.String())
		}
	}
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	sent := time.Now()
	for line := range r.lines { // samples emitted until the exit count too
		lines = append(lines, line)
	}
	err := <-r.done
	exitedIn := time.Since(sent)
	require.NoError(t, err, "exit status after SIGTERM; stderr:\n%s", r.stderr.String())
	require.Less(t, exitedIn, 5*time.Second, "the contract allows 5s from SIGTERM to exit")
	require.Contains(t, r.stderr.String(), "shutdown signal received", "logs go to stderr")

	// The descriptor comes first.
	require.NotEmpty(t, lines)
	var desc map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &desc))
	requireDescriptor(t, desc, m, dbName)

	// Then only sample records, checked one by one.
	ticksSeen := map[string]map[string]float64{}
	for i, line := range lines[1:] {
		var rec map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&rec), "line %d is not JSON: %q", i+2, line)
		ts, metric, value := requireSample(t, rec, every)
		if ticksSeen[ts] == nil {
			ticksSeen[ts] = map[string]float64{}
		}
		_, dup := ticksSeen[ts][metric]
		require.False(t, dup, "metric %s emitted twice at %s", metric, ts)
		ticksSeen[ts][metric] = value
	}

	// Every tick carries every required metric; ticks are whole multiples
	// of SAMPLE_EVERY_S apart, in order.
	var stamps []time.Time
	for ts, ms := range ticksSeen {
		require.True(t, hasAll(ms), "tick %s lacks a required metric: %v", ts, ms)
		tt, _ := time.Parse(time.RFC3339Nano, ts)
		stamps = append(stamps, tt)
		require.LessOrEqual(t, ms["claim_p50_ms"], ms["claim_p95_ms"], "tick %s", ts)
		require.LessOrEqual(t, ms["claim_p95_ms"], ms["claim_p99_ms"], "tick %s", ts)
		require.LessOrEqual(t, ms["enqueue_rate"], float64(2*rate+producerBatchMax), "tick %s: a fixed-rate producer may catch up at most one second", ts)
		require.Equal(t, math.Trunc(ms["queue_depth"]), ms["queue_depth"], "queue_depth counts jobs")
	}
	require.GreaterOrEqual(t, len(stamps), ticks)
	sort.Slice(stamps, func(i, j int) bool { return stamps[i].Before(stamps[j]) })
	for i := 1; i < len(stamps); i++ {
		gap := stamps[i].Sub(stamps[i-1])
		require.True(t, gap > 0 && gap%(every*time.Second) == 0, "ticks %v and %v", stamps[i-1], stamps[i])
	}
	// The system did work in the window: jobs went in and came out, with a
	// pickup latency recorded.
	var enq, done, p99 float64
	for _, ms := range ticksSeen {
		enq, done, p99 = max(enq, ms["enqueue_rate"]), max(done, ms["completion_rate"]), max(p99, ms["claim_p99_ms"])
	}
	require.Positive(t, enq, "some tick reports jobs enqueued")
	require.Positive(t, done, "some tick reports jobs completed")
	require.Positive(t, p99, "some tick reports a pickup latency")

	requireDeclaredRelations(t, dbURL, m)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer c.Close(ctx)
	var leased int64
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM outbox_messages WHERE locked_until IS NOT NULL").Scan(&leased))
	require.Zero(t, leased, "a graceful shutdown completes or releases every claimed job")
}

func hasAll(ms map[string]float64) bool {
	for _, m := range requiredMetrics {
		if _, ok := ms[m]; !ok {
			return false
		}
	}
	return true
}

func requireDescriptor(t *testing.T, d map[string]any, m manifest, dbName string) {
	t.Helper()
	require.Equal(t, "descriptor", d["kind"], "the first line is the descriptor")
	require.Equal(t, m.System, d["system"])
	require.Subset(t, toStrings(t, d["event_tables"]), m.EventTables, "runtime event_tables must be a superset of the manifest's")
	require.Subset(t, toStrings(t, d["extensions"]), m.Extensions, "runtime extensions must be a superset of the manifest's")
	for _, k := range []string{"version", "schema_version"} {
		s, _ := d[k].(string)
		require.NotEmpty(t, s, "descriptor %s", k)
	}
	require.Equal(t, dbName, d["db_name"])
	s, _ := d["started_at"].(string)
	_, err := time.Parse("2006-01-02T15:04:05.000Z", s)
	require.NoError(t, err, "started_at %q is an ISO-8601 UTC time with milliseconds", s)
}

func toStrings(t *testing.T, v any) []string {
	t.Helper()
	list, ok := v.([]any)
	require.True(t, ok, "%v is a JSON list", v)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		require.True(t, ok, "%v is a string", x)
		out = append(out, s)
	}
	return out
}

// requireSample checks one sample record and returns its tick, metric and
// value.
func requireSample(t *testing.T, rec map[string]any, everyS int) (string, string, float64) {
	t.Helper()
	allowed := map[string]bool{"t": true, "system": true, "kind": true, "subject_kind": true, "subject": true, "metric": true, "value": true, "window_s": true, "instance_id": true}
	for k := range rec {
		require.True(t, allowed[k], "unexpected field %q in %v", k, rec)
	}
	require.Equal(t, "adapter", rec["kind"])
	require.Equal(t, system, rec["system"])
	require.Equal(t, "adapter", rec["subject_kind"])
	require.Equal(t, "", rec["subject"])
	require.Equal(t, json.Number("0"), rec["instance_id"])
	metric, _ := rec["metric"].(string)
	known := append(append([]string{}, requiredMetrics...), optionalMetrics...)
	require.Contains(t, known, metric)
	num, ok := rec["value"].(json.Number)
	require.True(t, ok, "value of %s is a number: %v", metric, rec["value"])
	value, err := num.Float64()
	require.NoError(t, err)
	require.False(t, math.IsNaN(value) || math.IsInf(value, 0))
	require.GreaterOrEqual(t, value, 0.0, "%s", metric)
	wnum, ok := rec["window_s"].(json.Number)
	require.True(t, ok, "window_s is a number")
	window, _ := wnum.Float64()
	switch {
	case strings.HasPrefix(metric, "claim_p"):
		require.Equal(t, 30.0, window, "pickup percentiles are rolling 30s")
	case metric == "enqueue_rate" || metric == "completion_rate":
		require.Equal(t, float64(everyS), window, "rates cover SAMPLE_EVERY_S")
	default:
		require.Zero(t, window, "%s is instantaneous", metric)
	}
	ts, _ := rec["t"].(string)
	tt, err := time.Parse("2006-01-02T15:04:05.000Z", ts)
	require.NoError(t, err, "t %q is an ISO-8601 UTC time with milliseconds", ts)
	require.Zero(t, tt.UnixNano()%int64(time.Duration(everyS)*time.Second), "tick %s is aligned to the wall clock", ts)
	return ts, metric, value
}
