package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/examples/todo/internal/app"
	"github.com/wharf-go/wharf/examples/todo/internal/domain"
	"github.com/wharf-go/wharf/examples/todo/internal/httpapi"
	"github.com/wharf-go/wharf/examples/todo/internal/infra"
	"github.com/wharf-go/wharf/ports"
)

// server is the wired application: the core.App with its providers, the
// use cases, the HTTP handler and the relay that delivers outbox events to
// the activity projection. Tests build it exactly as main does.
type server struct {
	app     *core.App
	db      *bun.DB
	outbox  ports.Outbox
	svc     *app.Service
	handler http.Handler
	relay   *core.Relay
	logger  *slog.Logger

	relayCancel context.CancelFunc
	relayDone   chan error
	closeOnce   sync.Once
	closeErr    error
}

// newServer boots the app: the database provider (chosen by cfg), then the
// app-database provider (migrations, unit of work, outbox, idempotency
// store, repositories); then it builds the use cases, the HTTP API and the
// relay, and starts the relay. Close undoes it all.
func newServer(ctx context.Context, cfg config) (*server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dbProvider, err := infra.NewDBProvider(cfg.Dialect, cfg.URL, logger)
	if err != nil {
		return nil, err
	}
	a := core.NewApp(core.AppOptions{Logger: logger})
	if err := a.Register(dbProvider, infra.NewAppProvider(infra.AppProviderOptions{Dialect: cfg.Dialect, Logger: logger})); err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	s, err := wire(a, cfg, logger)
	if err != nil {
		return nil, errors.Join(err, a.Stop(context.WithoutCancel(ctx)))
	}
	s.startRelay()
	return s, nil
}

// wire looks up the ports the providers installed and builds the rest.
func wire(a *core.App, cfg config, logger *slog.Logger) (*server, error) {
	db, err := core.Port[*bun.DB](a, "db")
	if err != nil {
		return nil, err
	}
	uow, err := core.Port[ports.UnitOfWork[app.TxPorts]](a, infra.PortUnitOfWork)
	if err != nil {
		return nil, err
	}
	outbox, err := core.Port[ports.Outbox](a, infra.PortOutbox)
	if err != nil {
		return nil, err
	}
	idem, err := core.Port[ports.Idempotency](a, infra.PortIdempotency)
	if err != nil {
		return nil, err
	}
	todos, err := core.Port[domain.TodoRepository](a, infra.PortTodos)
	if err != nil {
		return nil, err
	}
	activity, err := core.Port[app.ActivityRepository](a, infra.PortActivity)
	if err != nil {
		return nil, err
	}
	svc, err := app.NewService(app.Options{UnitOfWork: uow, Todos: todos, Activity: activity, Logger: logger})
	if err != nil {
		return nil, err
	}
	handler, err := httpapi.New(httpapi.Options{Service: svc, Idempotency: idem, Logger: logger})
	if err != nil {
		return nil, err
	}
	hs := core.NewHandlers()
	if err := svc.RegisterHandlers(hs); err != nil {
		return nil, err
	}
	relay, err := core.NewRelay(outbox, hs, core.RelayOptions{
		// Claim only the todo topics: the outbox table may be shared with
		// other services (another app on the same database), whose messages
		// this relay must neither take nor dead-letter.
		UnknownTopic:    core.LeaveUnknownPending,
		Logger:          logger,
		PollInterval:    cfg.RelayPollInterval,
		MaxPollInterval: cfg.RelayMaxPollInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return &server{app: a, db: db, outbox: outbox, svc: svc, handler: handler, relay: relay, logger: logger}, nil
}

// startRelay runs the relay in the background until Close.
func (s *server) startRelay() {
	ctx, cancel := context.WithCancel(context.Background())
	s.relayCancel = cancel
	s.relayDone = make(chan error, 1)
	go func() { s.relayDone <- s.relay.Run(ctx) }()
	s.logger.Info("relay started")
}

// Close stops the relay (it finishes or releases in-flight messages) and
// then the providers, in reverse order: the app-database provider, then the
// database (closing the pool). Stop the HTTP server first, so no request is
// still writing. ctx bounds the wait for the relay. Close is idempotent.
func (s *server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.relayCancel != nil {
			s.relayCancel()
			select {
			case err := <-s.relayDone:
				if err != nil && !errors.Is(err, context.Canceled) {
					errs = append(errs, fmt.Errorf("relay: %w", err))
				}
				s.logger.Info("relay stopped")
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("relay did not stop in time: %w", ctx.Err()))
			}
		}
		if err := s.app.Stop(context.WithoutCancel(ctx)); err != nil {
			errs = append(errs, err)
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
