// Package logging gives wharf's long-lived components their default logger.
package logging

import (
	"context"
	"log/slog"
)

// OrDefault returns l, or when l is nil a logger that writes warnings and
// errors (never less) through slog.Default's handler: a component whose
// claims or completions fail must not be silent by default.
func OrDefault(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(warnFloor{})
}

// warnFloor passes records at warn level and above to the handler of
// slog.Default at the time of each call, so a default logger installed
// later is honoured. wrap replays WithAttrs and WithGroup in order.
type warnFloor struct {
	wrap []func(slog.Handler) slog.Handler
}

func (w warnFloor) handler() slog.Handler {
	h := slog.Default().Handler()
	for _, f := range w.wrap {
		h = f(h)
	}
	return h
}

func (w warnFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && slog.Default().Handler().Enabled(ctx, l)
}

func (w warnFloor) Handle(ctx context.Context, r slog.Record) error {
	return w.handler().Handle(ctx, r)
}

func (w warnFloor) with(f func(slog.Handler) slog.Handler) warnFloor {
	return warnFloor{wrap: append(append([]func(slog.Handler) slog.Handler(nil), w.wrap...), f)}
}

func (w warnFloor) WithAttrs(attrs []slog.Attr) slog.Handler {
	return w.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

func (w warnFloor) WithGroup(name string) slog.Handler {
	return w.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}
