// Package testdb gives tests the URL of a real database server.
//
// scripts/testdb.sh starts throwaway PostgreSQL and MariaDB servers, and
// PgBouncer in transaction pooling mode in front of the PostgreSQL server,
// and exports WHARF_TEST_POSTGRES_URL, WHARF_TEST_MYSQL_URL and
// WHARF_TEST_PGBOUNCER_URL; a developer with their own servers sets the
// variables instead. When a variable is missing the
// test is skipped with a loud notice, except under CI=true, where a missing
// database fails the test: CI must exercise every dialect.
package testdb

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
)

// Environment variables read by URL.
const (
	PostgresEnv = "WHARF_TEST_POSTGRES_URL"
	MySQLEnv    = "WHARF_TEST_MYSQL_URL"
	// PgBouncerEnv is the URL of a transaction-pooling proxy in front of
	// the server of PostgresEnv. It forwards any database name to that
	// server, so a test reaches a database it created on the server by
	// replacing the URL's path.
	PgBouncerEnv = "WHARF_TEST_PGBOUNCER_URL"
)

var noticeOnce sync.Map

// URL returns the value of env, or skips the test (locally) or fails it
// (CI=true) when env is unset.
func URL(t testing.TB, env string) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: no real server for this test. Run `make test` (it starts throwaway servers with scripts/testdb.sh) or set %s to your own server.", env, env)
	if InCI() {
		t.Fatalf("CI=true and %s", msg)
	}
	if _, loaded := noticeOnce.LoadOrStore(env, true); !loaded {
		fmt.Fprintf(os.Stderr, "\n*** SKIPPING tests that need a database: %s ***\n\n", msg)
	}
	t.Skip(msg)
	return ""
}

// InCI reports whether CI is set to a true value.
func InCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// ClosedAddr returns a loopback host:port that refuses connections: a port
// the kernel handed out and that nothing listens on any more.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testdb: reserve a port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("testdb: close the reserved port: %v", err)
	}
	return addr
}
