package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/metric"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/examples/todo/internal/app"
	"github.com/wharf-go/wharf/examples/todo/internal/httpapi"
	"github.com/wharf-go/wharf/examples/todo/internal/infra"
	"github.com/wharf-go/wharf/otelwharf"

	// The providers register their URL schemes with wharf.Open: file: and
	// sqlite:, postgres://, mysql://.
	_ "github.com/wharf-go/wharf/providers/mysql"
	_ "github.com/wharf-go/wharf/providers/postgres"
	_ "github.com/wharf-go/wharf/providers/sqlite"
)

// server is the wired application: the wharf driver, the HTTP handler and
// the relay that delivers outbox events to the activity projection. Tests
// build it exactly as main does.
type server struct {
	drv     *wharf.Driver
	handler http.Handler
	relay   *relay.Relay
	logger  *slog.Logger
	tel     *telemetry
	gauges  metric.Registration

	relayCancel context.CancelFunc
	relayDone   chan error
	closeOnce   sync.Once
	closeErr    error
}

// newServer is the composition root. It opens the database of cfg.URL (the
// scheme picks the dialect), creates wharf's tables and the app's, builds
// the unit of work, the use cases, the HTTP API and the relay, and starts
// the relay. Close undoes it all.
func newServer(ctx context.Context, cfg config) (_ *server, err error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Traces and metrics (telemetry.go): otelwharf's hooks go to the
	// driver and the relay, so one trace runs from the request through its
	// transaction and the enqueue to the event's delivery.
	tel, err := newTelemetry(ctx, cfg.Telemetry)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tel.Shutdown(context.Background()))
		}
	}()
	// Events of one todo share an ordering key (EventKey), so the relay
	// delivers them in order.
	drv, err := wharf.Open(ctx, cfg.URL, wharf.Options{
		EventKey: app.OrderingKey, Logger: logger,
		Hooks: tel.inst.Hooks(),
		QueryLog: wharf.QueryLogOptions{
			Enabled: cfg.QueryLog == queryLogOn || cfg.QueryLog == queryLogParams, Level: slog.LevelInfo,
			SlowThreshold: slowQuery, ShowParameters: cfg.QueryLog == queryLogParams,
		},
	})
	if err != nil {
		// Name where the URL came from (never the URL: it may hold a
		// password), so the reader knows which variable to fix.
		return nil, fmt.Errorf("%s: %w", cfg.describeSource(), err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, drv.Close())
		}
	}()
	logger.Info("database opened", slog.String("dialect", drv.Dialect()))

	// wharf's outbox and idempotency tables, then the app's own: their DDL
	// is the only dialect-specific part of the app.
	if err := drv.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := infra.Migrate(ctx, drv.DB(), drv.Dialect()); err != nil {
		return nil, err
	}
	logger.Info("tables migrated", slog.String("dialect", drv.Dialect()))

	// Every transaction gets fresh TxPorts: the repositories on the
	// transaction, and wharf's outbox-backed event recorder and idempotency
	// store bound to it, so that row, event and key commit together.
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (app.TxPorts, error) {
		return app.TxPorts{
			Todos:       infra.NewTodoRepository(tx.DB),
			Activity:    infra.NewActivityRepository(tx.DB),
			Events:      tx.Events,
			Idempotency: tx.Idempotency,
		}, nil
	}, wharf.UnitOfWorkOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	svc, err := app.NewService(app.Options{
		UnitOfWork: uow,
		// Reads run on the pool, outside transactions.
		Todos:    infra.NewTodoRepository(drv.DB()),
		Activity: infra.NewActivityRepository(drv.DB()),
		Logger:   logger,
	})
	if err != nil {
		return nil, err
	}
	// The Idempotency-Key middleware reserves keys on the pool (its own
	// short commit); the handlers complete them in the use case's
	// transaction through TxPorts.Idempotency. A ping tells a database
	// outage (503) from a failure (500).
	handler, err := httpapi.New(httpapi.Options{
		Service: svc, Idempotency: drv.Idempotency(), Ping: drv.DB().PingContext, Logger: logger,
		OnRoute: nameSpan,
	})
	if err != nil {
		return nil, err
	}
	hs := relay.NewHandlers()
	if err := svc.RegisterHandlers(hs); err != nil {
		return nil, err
	}
	rl, err := relay.New(drv.Outbox(), hs, relay.Options{
		// Claim only the todo topics: the outbox table may be shared with
		// other services (another app on the same database), whose messages
		// this relay must neither take nor dead-letter.
		UnknownTopic:    relay.LeaveUnknownPending,
		Logger:          logger,
		PollInterval:    cfg.RelayPollInterval,
		MaxPollInterval: cfg.RelayMaxPollInterval,
		Hooks:           tel.inst.Hooks(),
		OnFailure:       tel.inst.OnRelayFailure,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	// Queue depth and the age of the oldest ready message, sampled at most
	// every 15s however often /metrics is scraped.
	gauges, err := tel.inst.ObserveOutbox(drv.Outbox(), otelwharf.OutboxGaugeOptions{})
	if err != nil {
		return nil, err
	}
	s := &server{drv: drv, handler: tel.handler(handler), relay: rl, logger: logger, tel: tel, gauges: gauges}
	s.startRelay()
	return s, nil
}

// startRelay runs the relay in the background until Close.
func (s *server) startRelay() {
	ctx, cancel := context.WithCancel(context.Background())
	s.relayCancel = cancel
	s.relayDone = make(chan error, 1)
	go func() { s.relayDone <- s.relay.Run(ctx) }()
	s.logger.Info("relay started")
}

// Close stops the relay (it finishes or releases in-flight messages), then
// closes the driver and its pool. Stop the HTTP server first, so no request
// is still writing. ctx bounds the wait for the relay. Close is idempotent.
func (s *server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
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
		if err := s.gauges.Unregister(); err != nil {
			errs = append(errs, fmt.Errorf("outbox gauges: %w", err))
		}
		if err := s.drv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		} else {
			s.logger.Info("database closed", slog.String("dialect", s.drv.Dialect()))
		}
		// Last: the spans of the relay's final deliveries are flushed.
		if err := s.tel.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
