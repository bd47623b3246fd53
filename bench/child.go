package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	childArg  = "-bench-child"
	specEnv   = "WHARF_BENCH_SPEC"
	resultTag = "BENCH-RESULT "
)

// Spec is one case, handed to a child process.
type Spec struct {
	ID        string `json:"id"`
	Workload  string `json:"workload"`
	Dialect   string `json:"dialect"`
	Impl      string `json:"impl"`
	URL       string `json:"url"`
	Workers   int    `json:"workers,omitempty"`
	Producers int    `json:"producers,omitempty"`
	MsgsPerTx int    `json:"msgs_per_tx,omitempty"`
	Expect    int    `json:"expect,omitempty"` // drain: backlog size
	Rate      int    `json:"rate,omitempty"`   // e2e: total producer rate (0: flat out)
	// Variant selects a case's flavour (scale: "drain" or "enqueue").
	Variant string `json:"variant,omitempty"`
	// Size is the scale workload's backlog or dead-letter count.
	Size int `json:"size,omitempty"`
	// Delay is the handler latency (slow workload).
	Delay time.Duration `json:"delay,omitempty"`
	// ServerPID is the database server's pid (0: not local), for its CPU
	// time (server.go).
	ServerPID int    `json:"server_pid,omitempty"`
	Cfg       Config `json:"cfg"`
}

// result returns the Result that identifies s.
func (s Spec) result() Result {
	return Result{ID: s.ID, Workload: s.Workload, Dialect: s.Dialect, Impl: s.Impl, Workers: s.Workers, Producers: s.Producers,
		MsgsPerTx: s.MsgsPerTx, Rate: s.Rate, Variant: s.Variant, Size: s.Size}
}

type caseFunc func(ctx context.Context, s Spec, r *Result) error

// cases maps "workload/impl" to its implementation; files register theirs.
var cases = map[string]caseFunc{}

func childMain() int {
	var s Spec
	if err := json.Unmarshal([]byte(os.Getenv(specEnv)), &s); err != nil {
		fmt.Fprintf(os.Stderr, "child: bad spec: %v\n", err)
		return 2
	}
	r := s.result()
	serverPid = s.ServerPID
	fn := cases[s.Workload+"/"+s.Impl]
	if fn == nil {
		r.Skipped = "not implemented"
	} else {
		if s.Cfg.CPUProfile != "" {
			f, err := os.Create(s.Cfg.CPUProfile + "." + strings.ReplaceAll(s.ID, "/", "_") + ".pprof")
			if err == nil {
				pprof.StartCPUProfile(f)
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
		if s.Cfg.MemProfile != "" {
			runtime.MemProfileRate = 1
			defer func() {
				f, err := os.Create(s.Cfg.MemProfile + "." + strings.ReplaceAll(s.ID, "/", "_") + ".mprof")
				if err == nil {
					pprof.Lookup("allocs").WriteTo(f, 0)
					f.Close()
				}
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.Cfg.CaseTimeout)
		defer cancel()
		r.StartRSSMiB = procStatusMiB("VmRSS")
		if err := fn(ctx, s, &r); err != nil {
			r.Error = err.Error()
		}
		r.PeakRSSMiB = procStatusMiB("VmHWM")
	}
	if s.Cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	b, _ := json.Marshal(r)
	fmt.Printf("\n%s%s\n", resultTag, b)
	return 0
}

// runChild runs one case in a child process of this binary.
func runChild(ctx context.Context, s Spec) Result {
	exe, err := os.Executable()
	base := s.result()
	if err != nil {
		base.Error = err.Error()
		return base
	}
	spec, _ := json.Marshal(s)
	ctx, cancel := context.WithTimeout(ctx, s.Cfg.CaseTimeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, childArg)
	cmd.Env = append(os.Environ(), specEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if s.Cfg.Verbose {
		cmd.Stderr = os.Stderr
	} else {
		cmd.Stderr = &stderr
	}
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	var r Result
	found := false
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), resultTag); ok {
			found = json.Unmarshal([]byte(line), &r) == nil
		}
	}
	if !found {
		base.Error = fmt.Sprintf("child produced no result (%v); stderr tail: %s", err, tail(stderr.String(), 1500))
		return base
	}
	return r
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// procStatusMiB reads a kB field of /proc/self/status.
func procStatusMiB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// setCPU records the CPU time spent since cpu0 per message, in µs, and
// the allocations since the last allocMark per message.
func (r *Result) setCPU(cpu0 time.Duration, msgs int64) {
	if msgs > 0 {
		r.CPUusPerMsg = float64(cpuTime()-cpu0) / float64(msgs) / 1e3
		if s1, ok := processCPU(serverPid); ok && serverCPU0 > 0 {
			r.ServerCPUusPerMsg = float64(s1-serverCPU0) / float64(msgs) / 1e3
		}
		if m0 := allocMark.Load(); m0 != nil {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			r.AllocsPerMsg = float64(ms.Mallocs-m0.Mallocs) / float64(msgs)
			r.BytesPerMsg = float64(ms.TotalAlloc-m0.TotalAlloc) / float64(msgs)
		}
	}
}

// allocMark holds the allocation counters at the start of the timed
// section (markAllocs), for setCPU.
var allocMark atomic.Pointer[runtime.MemStats]

// cpuStart marks the start of a timed section: it returns the CPU time so
// far and records the allocation counters.
func cpuStart() time.Duration {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocMark.Store(&ms)
	serverCPU0, _ = processCPU(serverPid)
	return cpuTime()
}

var (
	// serverPid is the database server's pid (Spec.ServerPID) and
	// serverCPU0 its CPU time at cpuStart.
	serverPid  int
	serverCPU0 time.Duration
)

// heapSampler records the peak HeapInuse every 50ms.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.sample()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.sample()
			}
		}
	}()
	return h
}

func (h *heapSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > h.peak.Load() {
		h.peak.Store(ms.HeapInuse)
	}
}

// Stop returns the peak in MiB.
func (h *heapSampler) Stop() float64 {
	h.sample()
	close(h.stop)
	h.wg.Wait()
	return float64(h.peak.Load()) / (1 << 20)
}
