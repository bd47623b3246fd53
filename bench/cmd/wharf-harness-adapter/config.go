package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// config is what the harness passes in the environment (see README.md).
type config struct {
	URL          string
	DBName       string
	Scenario     string // long_horizon or migrate_only
	Mode         string // fixed or depth-target
	Rate         int    // PRODUCER_RATE, jobs/s (fixed)
	TargetDepth  int    // TARGET_DEPTH (depth-target)
	Workers      int    // WORKER_COUNT: the relay's Concurrency
	PayloadBytes int    // JOB_PAYLOAD_BYTES
	Work         time.Duration
	SampleEvery  time.Duration
	InstanceID   int
	DepthSource  string // query or counters
}

// Defaults, as the harness documents them.
const (
	defaultRate        = 800
	defaultTargetDepth = 1000
	defaultWorkers     = 32
	defaultPayload     = 256
	defaultWorkMS      = 1
	defaultSampleEvery = 5
)

// loadConfig reads and checks the environment; an error says which
// variable is wrong and what it should hold.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		URL:         getenv("DATABASE_URL"),
		Scenario:    getenv("SCENARIO"),
		Mode:        getenv("PRODUCER_MODE"),
		DepthSource: getenv("QUEUE_DEPTH_SOURCE"),
	}
	if c.URL == "" {
		return c, fmt.Errorf("DATABASE_URL is not set: give the PostgreSQL database to use, e.g. postgres://bench:bench@localhost:5432/wharf_bench")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return c, fmt.Errorf("DATABASE_URL must be a postgres:// URL (the harness measures PostgreSQL), e.g. postgres://bench:bench@localhost:5432/wharf_bench")
	}
	c.DBName = strings.TrimPrefix(u.Path, "/")
	switch c.Scenario {
	case "":
		c.Scenario = "long_horizon"
	case "long_horizon", "migrate_only":
	default:
		return c, fmt.Errorf("SCENARIO=%q is not supported: use long_horizon (or migrate_only to create the tables and exit)", c.Scenario)
	}
	switch c.Mode {
	case "":
		c.Mode = "fixed"
	case "fixed", "depth-target":
	default:
		return c, fmt.Errorf("PRODUCER_MODE=%q is not supported: use fixed (with PRODUCER_RATE) or depth-target (with TARGET_DEPTH)", c.Mode)
	}
	switch c.DepthSource {
	case "":
		c.DepthSource = "query"
	case "query", "counters":
	default:
		return c, fmt.Errorf("QUEUE_DEPTH_SOURCE=%q is not supported: use query (one count per tick) or counters (no query)", c.DepthSource)
	}
	ints := []struct {
		name     string
		def, min int
		dst      *int
	}{
		{"PRODUCER_RATE", defaultRate, 0, &c.Rate},
		{"TARGET_DEPTH", defaultTargetDepth, 0, &c.TargetDepth},
		{"WORKER_COUNT", defaultWorkers, 1, &c.Workers},
		{"JOB_PAYLOAD_BYTES", defaultPayload, 0, &c.PayloadBytes},
		{"BENCH_INSTANCE_ID", 0, 0, &c.InstanceID},
	}
	for _, v := range ints {
		n, err := envInt(getenv, v.name, v.def, v.min)
		if err != nil {
			return c, err
		}
		*v.dst = n
	}
	work, err := envInt(getenv, "JOB_WORK_MS", defaultWorkMS, 0)
	if err != nil {
		return c, err
	}
	c.Work = time.Duration(work) * time.Millisecond
	every, err := envInt(getenv, "SAMPLE_EVERY_S", defaultSampleEvery, 1)
	if err != nil {
		return c, err
	}
	c.SampleEvery = time.Duration(every) * time.Second
	return c, nil
}

func envInt(getenv func(string) string, name string, def, minimum int) (int, error) {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not an integer: give a whole number (default %d)", name, s, def)
	}
	if n < minimum {
		return 0, fmt.Errorf("%s=%d is below %d: give a whole number of at least %d (default %d)", name, n, minimum, minimum, def)
	}
	return n, nil
}
