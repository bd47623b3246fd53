package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The database server's CPU time over a case's timed section: the server
// runs on the same two cores as the benchmark, so what it spends per
// message is as much a part of the cost as the client's CPU. Found from
// the server's pid file (PostgreSQL: the postmaster, whose children are
// the backends and background workers; MariaDB: one process), read from
// /proc; 0 when the server is not local or not readable.

// serverPID returns the pid of the server behind db, or 0.
func serverPID(ctx context.Context, db *sql.DB, dialect string) int {
	var file string
	switch dialect {
	case "postgres":
		var dir string
		if db.QueryRowContext(ctx, "SELECT current_setting('data_directory')").Scan(&dir) != nil {
			return 0
		}
		file = filepath.Join(dir, "postmaster.pid")
	case "mysql":
		if db.QueryRowContext(ctx, "SELECT @@pid_file").Scan(&file) != nil {
			return 0
		}
	default:
		return 0
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0
	}
	return pid
}

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// processCPU returns the user+system CPU time of pid and of its children
// (not their descendants), from /proc; ok is false when pid is gone.
func processCPU(pid int) (total time.Duration, ok bool) {
	if pid <= 0 {
		return 0, false
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) in parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if n != pid && ppid != pid {
			continue
		}
		if n == pid {
			ok = true
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * clockTick
	}
	return total, ok
}
