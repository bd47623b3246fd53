package conformance

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// logRecorder is a slog.Handler that keeps every record, with its
// attributes rendered as strings, so tests can check what the relay logs.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
	sig     *signal
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder { return &logRecorder{sig: newSignal()} }

func newTestLogger(l *logRecorder) *slog.Logger { return slog.New(l) }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, rec)
	l.mu.Unlock()
	if l.sig != nil {
		l.sig.broadcast()
	}
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// find returns the first record with message msg.
func (l *logRecorder) find(msg string) (logRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.msg == msg {
			return r, true
		}
	}
	return logRecord{}, false
}

// await waits for a record with message msg.
func (l *logRecorder) await(t testing.TB, msg string) logRecord {
	t.Helper()
	deadline := time.NewTimer(awaitTimeout)
	defer deadline.Stop()
	for {
		changed := l.sig.wait()
		if r, ok := l.find(msg); ok {
			return r
		}
		select {
		case <-changed:
		case <-deadline.C:
			require.FailNow(t, "timed out waiting for log "+msg)
		}
	}
}

// all returns every record.
func (l *logRecorder) all() []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logRecord(nil), l.records...)
}
