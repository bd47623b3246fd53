package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The test binary doubles as a relay process (fleets re-run the running
// executable with childArg).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

func TestTracker(t *testing.T) {
	t.Parallel()
	t.Run("CountsFirstDeliveriesDuplicatesAndUndelivered", func(t *testing.T) {
		t.Parallel()
		var tr tracker
		for i := 0; i < 5; i++ {
			require.EqualValues(t, i, tr.allocate())
		}
		for _, s := range []int64{0, 1, 2, 3} {
			tr.commit(s)
		}
		tr.commit(1) // a retried commit counts once
		tr.deliver(0, 10*time.Millisecond)
		tr.deliver(1, 20*time.Millisecond)
		tr.deliver(1, 5*time.Second) // duplicate: its latency is not a pickup
		tr.deliver(4, time.Millisecond)
		tr.deliver(-1, time.Millisecond)
		ts := tr.tick()
		require.EqualValues(t, 4, ts.enq)
		require.EqualValues(t, 3, ts.first)
		require.EqualValues(t, 1, ts.dups)
		require.EqualValues(t, 1, ts.backlog, "4 committed, 3 first deliveries")
		require.EqualValues(t, 3, ts.n)
		require.InDelta(t, 20, ts.p99, 0.05)
		next := tr.tick()
		require.Zero(t, next.enq+next.first+next.dups, "a tick reports what happened since the last one")
		require.EqualValues(t, 3, tr.endPhase().Count())
		require.Zero(t, tr.endPhase().Count())
		a := tr.account()
		require.Equal(t, accounting{Produced: 4, Delivered: 3, Undelivered: 2, Duplicates: 1, Uncommitted: 1, Unknown: 1}, a,
			"seqs 2 and 3 committed but never delivered; seq 4 delivered without a seen commit")
	})
}

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	seq, ts := payloadFields([]byte(payload(42, 1_700_000_000_123_456_789)))
	require.EqualValues(t, 42, seq)
	require.EqualValues(t, 1_700_000_000_123_456_789, ts)
	seq, ts = payloadFields([]byte(`{"other":1}`))
	require.EqualValues(t, -1, seq)
	require.EqualValues(t, -1, ts)
}

func TestRelayURLFor(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, dialect, in, want string }{
		{"PostgresSessionsCarryTheFleetsName", "postgres", "postgres://u:p@127.0.0.1:5/db?sslmode=disable", "application_name=" + appWharf},
		{"MariaDBSessionsUseTheRelayUser", "mysql", "mysql://u:p@127.0.0.1:5/db", "mysql://" + myRelayUser + ":" + myRelayUser + "@127.0.0.1:5/db"},
		{"SQLiteIsUnchanged", "sqlite", "file:/tmp/x.db", "file:/tmp/x.db"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := relayURLFor(c.dialect, c.in)
			require.NoError(t, err)
			require.Contains(t, got, c.want)
		})
	}
}

// series builds one point per second with the given p99 and backlog.
func series(phase string, from float64, p99 []float64, backlog []int64) []Point {
	var out []Point
	for i := range p99 {
		out = append(out, Point{T: from + float64(i) + 1, Phase: phase, P99: p99[i], Backlog: backlog[i], N: 10, Enqueued: 100, Completed: 100, Target: 100})
	}
	return out
}

func TestRecoveryAndGoals(t *testing.T) {
	t.Parallel()
	newRun := func(recP99 []float64, recBacklog []int64) (*ScenarioRun, *SystemRun) {
		run := &ScenarioRun{Scenario: "pin", Phases: []PhaseSpan{{phaseBaseline, 0, 5}, {phaseStress, 5, 10}, {phaseRecovery, 10, 20}}}
		r := &SystemRun{System: "wharf"}
		r.Series = append(r.Series, series(phaseBaseline, 0, []float64{10, 10, 10, 10, 10}, []int64{2, 3, 2, 2, 2})...)
		r.Series = append(r.Series, series(phaseStress, 5, []float64{50, 80, 90, 100, 100}, []int64{50, 80, 90, 100, 100})...)
		r.Series = append(r.Series, series(phaseRecovery, 10, recP99, recBacklog)...)
		return run, r
	}
	p := Profile{Rate: 100}
	t.Run("RecoveryIsWhenP99AndBacklogStayBackForThreeSeconds", func(t *testing.T) {
		t.Parallel()
		run, r := newRun([]float64{90, 40, 12, 30, 12, 11, 10, 10, 10, 10}, []int64{80, 40, 5, 5, 5, 5, 5, 4, 3, 3})
		r.Phases = []*PhaseStats{{Phase: phaseBaseline, P99: 10, MaxBacklog: 3}}
		// limits: p99 ≤ max(15, 15) = 15ms, backlog ≤ max(6, 10, 10) = 10
		require.Equal(t, 4.0, recovery(run, r, p), "second 15 (ending at T=15) starts three good seconds: 4s after the stress")
	})
	t.Run("NoRecoveryWithinThePhaseIsMinusOne", func(t *testing.T) {
		t.Parallel()
		run, r := newRun([]float64{90, 90, 90, 90, 90, 90, 90, 90, 12, 12}, []int64{80, 80, 80, 80, 80, 80, 80, 80, 5, 5})
		r.Phases = []*PhaseStats{{Phase: phaseBaseline, P99: 10, MaxBacklog: 3}}
		require.Equal(t, -1.0, recovery(run, r, p))
	})
	t.Run("GoalsFailOnLossDuplicatesAndAPinnedP99", func(t *testing.T) {
		t.Parallel()
		run, r := newRun([]float64{10, 10, 10, 10, 10, 10, 10, 10, 10, 10}, []int64{2, 2, 2, 2, 2, 2, 2, 2, 2, 2})
		r.Lost, r.Duplicates = 1, 2
		r.Phases = []*PhaseStats{
			{Phase: phaseBaseline, P99: 10, Offered: 100, Completed: 100},
			{Phase: phaseStress, P99: 100, Offered: 100, Completed: 50},
			{Phase: phaseRecovery, P99: 10, Offered: 100, Completed: 100},
		}
		r.RecoverySeconds = recovery(run, r, p)
		run.Systems = []*SystemRun{r}
		evaluate(run, p)
		status := map[string]string{}
		for _, g := range run.Goals {
			status[g.Goal] = g.Status
		}
		require.Equal(t, "FAIL", status["0 lost"])
		require.Equal(t, "FAIL", status["no duplicates"])
		require.Equal(t, "FAIL", status["keeps up with the offered rate (non-overload phases, ≥ 0.95×)"])
		require.Equal(t, "FAIL", status["pickup p99 under the pin ≤ 2× baseline"])
		require.Equal(t, "PASS", status["back to baseline within 30s of the stress"])
	})
}

func TestLinearTicks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		lo, hi float64
		want   []string
	}{
		{0, 50, []string{"0", "10", "20", "30", "40", "50"}},
		{0, 435, []string{"0", "100", "200", "300", "400"}},
		{0, 1.3, []string{"0", "0.2", "0.4", "0.6", "0.8", "1", "1.2"}},
		{0, 230000, []string{"0", "50000", "100000", "150000", "200000"}},
	}
	for _, c := range cases {
		var labels []string
		for _, tk := range (linearTicks{}).Ticks(c.lo, c.hi) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		require.Equal(t, c.want, labels, "%v..%v", c.lo, c.hi)
	}
}

func TestLogTicks(t *testing.T) {
	t.Parallel()
	var labels []string
	for _, tk := range (logTicks{}).Ticks(3, 300) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	require.Equal(t, []string{"5", "10", "20", "50", "100", "200"}, labels)
	labels = labels[:0]
	for _, tk := range (logTicks{}).Ticks(0.1, 200000) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	require.Equal(t, []string{"0.1", "1", "10", "100", "1000", "10000", "100000"}, labels, "six decades: powers of ten only")
}

// TestRunOnSQLite runs one short scenario end to end: relay processes
// (this test binary), the producer, the stress, the report files and the
// Markdown block.
func TestRunOnSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs relay processes for about 15 seconds")
	}
	t.Parallel()
	out := t.TempDir()
	md := filepath.Join(out, "SCENARIOS.md")
	require.NoError(t, os.WriteFile(md, []byte("# Scenarios\n\nintro\n\n"+mdBegin+"\nold\n"+mdEnd+"\n\nafter\n"), 0o644))
	p := profiles["short"]
	p.Rate, p.Workers, p.Relays = 50, 4, 2
	p.Baseline, p.Stress, p.Recovery, p.Drain = 2*time.Second, 3*time.Second, 3*time.Second, 30*time.Second
	o := Options{Profile: p, Dialects: []string{"sqlite"}, Scenarios: []string{"overload", "restart"}, Systems: []string{"wharf", "river"},
		Out: out, Markdown: md, Format: "svg"}
	rep, err := run(context.Background(), o)
	require.NoError(t, err)
	require.Len(t, rep.Runs, 1, "restart does not apply to SQLite")
	require.Contains(t, rep.Skipped, "sqlite/restart: does not apply")
	r := rep.Runs[0]
	require.Empty(t, r.Error)
	require.Len(t, r.Systems, 1, "River runs on PostgreSQL only")
	w := r.Systems[0]
	require.Equal(t, "wharf", w.System)
	require.Positive(t, w.Produced)
	require.Equal(t, w.Produced, w.Delivered, "every message delivered")
	require.Zero(t, w.Lost+w.LeftPending)
	stress := w.phase(phaseStress)
	require.NotNil(t, stress)
	require.InDelta(t, 75, stress.Target, 0.01, "overload offers 1.5× the rate")
	require.Greater(t, stress.Offered, w.phase(phaseBaseline).Offered, "the producer follows the overload")
	require.Positive(t, stress.P99)
	require.NotEmpty(t, r.DB, "the WAL and file sizes are sampled")

	require.NoError(t, writeReport(rep, o))
	for _, f := range []string{"report.json", "index.html", "sqlite-overload.svg"} {
		fi, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err)
		require.Positive(t, fi.Size(), f)
	}
	var back Report
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, w.Produced, back.Runs[0].Systems[0].Produced)
	page, err := os.ReadFile(filepath.Join(out, "index.html"))
	require.NoError(t, err)
	require.Contains(t, string(page), `<img src="sqlite-overload.svg"`)
	text, err := os.ReadFile(md)
	require.NoError(t, err)
	s := string(text)
	require.True(t, strings.HasPrefix(s, "# Scenarios\n\nintro\n\n"+mdBegin), "the text before the block is kept")
	require.True(t, strings.HasSuffix(s, mdEnd+"\n\nafter\n"), "the text after the block is kept")
	require.NotContains(t, s, "\nold\n")
	require.Contains(t, s, "| sqlite | [overload](#sqlite-overload) | wharf |")
	require.Contains(t, s, "](sqlite-overload.svg)")
}
