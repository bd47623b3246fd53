package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/mysql"    // mysql:// URLs
	_ "github.com/wharf-go/wharf/providers/postgres" // postgres:// URLs
	_ "github.com/wharf-go/wharf/providers/sqlite"   // file: URLs
)

// A relay process is this binary run with childArg and a childSpec in
// specEnv. It prints "R" once it is relaying, then one line per handler
// start: "D <seq> <pickup latency in µs>", each written on its own (so a
// SIGKILL loses no reported delivery).
const (
	childArg = "-scenario-relay"
	specEnv  = "WHARF_SCENARIO_SPEC"
	topic    = "scenario.msg"
	// Application names by which the killconns stress finds the fleet's
	// PostgreSQL sessions (MariaDB: the relay user).
	appWharf = "scen-wharf-relay"
	appRiver = "scen-river-worker"
	// riverSchema is River's schema on the PostgreSQL server.
	riverSchema = "river_scen"
	wharfTable  = "outbox_messages"
)

type childSpec struct {
	System  string        `json:"system"` // wharf or river
	Dialect string        `json:"dialect"`
	URL     string        `json:"url"`
	Workers int           `json:"workers"`
	Lease   time.Duration `json:"lease"`
	Poll    time.Duration `json:"poll"`
	Work    time.Duration `json:"work"`
}

// reporter writes the delivery lines.
type reporter struct{ mu sync.Mutex }

func (r *reporter) line(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = os.Stdout.WriteString(s)
}

func (r *reporter) delivered(seq int64, enqueued int64) {
	lat := (time.Now().UnixNano() - enqueued) / 1e3
	r.line("D " + strconv.FormatInt(seq, 10) + " " + strconv.FormatInt(lat, 10) + "\n")
}

func childMain() int {
	var s childSpec
	if err := json.Unmarshal([]byte(os.Getenv(specEnv)), &s); err != nil {
		fmt.Fprintf(os.Stderr, "relay process: bad spec: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep := &reporter{}
	var err error
	switch s.System {
	case "wharf":
		err = runWharfRelay(ctx, s, rep, log)
	case "river":
		err = runRiverWorker(ctx, s, rep, log)
	default:
		err = fmt.Errorf("unknown system %q", s.System)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay process: %v\n", err)
		return 1
	}
	return 0
}

// work is the handler's body: report, then spend the work time.
func work(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func runWharfRelay(ctx context.Context, s childSpec, rep *reporter, log *slog.Logger) error {
	drv, err := wharf.Open(ctx, s.URL, wharf.Options{
		Listen: wharf.ListenOptions{ApplicationName: appWharf},
		Logger: log,
	})
	if err != nil {
		return err
	}
	defer drv.Close()
	hs := relay.NewHandlers()
	err = hs.Handle(topic, func(ctx context.Context, msg ports.ClaimedMessage) error {
		seq, t := payloadFields(msg.Payload)
		rep.delivered(seq, t)
		work(ctx, s.Work)
		return nil
	}, relay.TopicOptions{})
	if err != nil {
		return err
	}
	rl, err := relay.New(drv.Outbox(), hs, relay.Options{
		Concurrency:     s.Workers,
		Lease:           s.Lease,
		PollInterval:    s.Poll,
		MaxPollInterval: s.Poll,
		ShutdownTimeout: 5 * time.Second,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	rep.line("R\n")
	return rl.Run(ctx)
}

// riverArgs is the River job of the scenarios: the same fields as wharf's
// payload.
type riverArgs struct {
	Seq int64 `json:"seq"`
	T   int64 `json:"t"`
}

func (riverArgs) Kind() string { return "scenario_msg" }

type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	rep  *reporter
	work time.Duration
}

func (w *riverWorker) Work(ctx context.Context, job *river.Job[riverArgs]) error {
	w.rep.delivered(job.Args.Seq, job.Args.T)
	work(ctx, w.work)
	return nil
}

// riverPool opens a pool whose sessions use River's schema and carry name
// as their application_name.
func riverPool(ctx context.Context, url, name string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.RuntimeParams["search_path"] = riverSchema
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	return pgxpool.NewWithConfig(ctx, cfg)
}

// riverConfig is the configuration of the harness's River adapter:
// FetchCooldown and FetchPollInterval of Poll, and a crashed worker's jobs
// rescued after the lease (River's rescuer runs every 30s).
func riverConfig(s childSpec, workers *river.Workers, log *slog.Logger) *river.Config {
	return &river.Config{
		Schema:               riverSchema,
		Workers:              workers,
		Logger:               log,
		FetchCooldown:        s.Poll,
		FetchPollInterval:    s.Poll,
		JobTimeout:           s.Lease,
		RescueStuckJobsAfter: s.Lease,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: s.Workers}},
	}
}

func runRiverWorker(ctx context.Context, s childSpec, rep *reporter, log *slog.Logger) error {
	pool, err := riverPool(ctx, s.URL, appRiver, 20)
	if err != nil {
		return err
	}
	defer pool.Close()
	workers := river.NewWorkers()
	river.AddWorker(workers, &riverWorker{rep: rep, work: s.Work})
	client, err := river.NewClient(riverpgxv5.New(pool), riverConfig(s, workers, log))
	if err != nil {
		return err
	}
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	rep.line("R\n")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return client.Stop(stopCtx)
}

// riverInsertClient is an insert-only River client for the producer.
func riverInsertClient(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &riverWorker{})
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: riverSchema, Workers: workers,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
}

// payload renders a wharf message body; payloadFields reads it back.
func payload(seq, t int64) string {
	return `{"seq":` + strconv.FormatInt(seq, 10) + `,"t":` + strconv.FormatInt(t, 10) + `}`
}

func payloadFields(p []byte) (seq, t int64) {
	num := func(key string) int64 {
		s := string(p)
		i := strings.Index(s, `"`+key+`":`)
		if i < 0 {
			return -1
		}
		j := i + len(key) + 3
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		n, err := strconv.ParseInt(s[j:k], 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return num("seq"), num("t")
}
