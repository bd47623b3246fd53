package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wharf-go/wharf/core"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // from now on a second signal kills the process the default way
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	stop()
	if err != nil {
		if errors.Is(err, errHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "todo:", err)
		os.Exit(1)
	}
}

var errHelp = errors.New("help requested")

// run starts the app and serves HTTP until ctx is done (main cancels it on
// SIGINT or SIGTERM), then shuts down gracefully: the HTTP server drains
// in-flight requests, the relay finishes or releases its messages, and the
// database is closed. ready, when set, is called with the base URL once the
// server listens.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(baseURL string)) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	logger := cfg.Logger

	logger.Info("starting", slog.String("database", cfg.Database), slog.String("url_from", cfg.URLSource))
	srv, err := newServer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return errors.Join(fmt.Errorf("listen: %w", err), srv.Close(context.Background()))
	}
	httpSrv := &http.Server{
		Handler:           srv.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	base := "http://" + ln.Addr().String()
	logger.Info("listening", slog.String("url", base))
	if ready != nil {
		ready(base)
	}
	// A fresh key per start: on a database that already has data, the
	// line still creates a todo the first time and replays it after.
	fmt.Fprintf(stderr, "\nTry (run the first line twice: the second answer is a replay):\n"+
		"  curl -si -X POST %s/todos -H 'Content-Type: application/json' -H 'Idempotency-Key: %s' -d '{\"title\":\"buy milk\"}'\n"+
		"  curl -s %s/todos\n  curl -s %s/activity\n\n", base, core.NewID(), base, base)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("serve: %w", err)
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("http shutdown: %w", err))
	} else {
		logger.Info("http server stopped")
	}
	if err := srv.Close(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("stop: %w", err))
	}
	if runErr == nil {
		logger.Info("stopped cleanly")
	}
	return runErr
}
