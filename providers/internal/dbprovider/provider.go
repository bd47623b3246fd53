// Package dbprovider is the database boot provider shared by every dialect:
// read the URL from an environment variable (or an explicit option), open and
// ping the pool, install it as a port, close it on stop.
package dbprovider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
)

// Config describes one dialect's provider.
type Config struct {
	// Dialect names the provider ("sqlite", "postgres", "mysql").
	Dialect string
	// EnvVar is read when URL is empty, e.g. "SQLITE_DB_URL".
	EnvVar string
	// URL overrides EnvVar.
	URL string
	// PortName is where the *bun.DB is installed; default "db".
	PortName string
	// Example is a sample URL shown in the error for a missing variable.
	Example string
	// Open opens and pings the database.
	Open func(ctx context.Context, url string) (*bun.DB, error)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Provider is the shared core.Provider.
type Provider struct {
	cfg Config
	db  *bun.DB
}

// New returns a provider for cfg.
func New(cfg Config) *Provider {
	if cfg.PortName == "" {
		cfg.PortName = "db"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Provider{cfg: cfg}
}

// Name implements core.Provider.
func (p *Provider) Name() string { return p.cfg.Dialect + "-db" }

// DB returns the opened database (nil before Start).
func (p *Provider) DB() *bun.DB { return p.db }

// Start implements core.Provider.
func (p *Provider) Start(ctx context.Context, app *core.App) error {
	url, source := p.cfg.URL, "Options.URL"
	if url == "" {
		url, source = os.Getenv(p.cfg.EnvVar), p.cfg.EnvVar
	}
	if url == "" {
		return fmt.Errorf("%s is not set: set it to the database URL, e.g. %s: %w", p.cfg.EnvVar, p.cfg.Example, core.Invalidf("missing database URL"))
	}
	db, err := p.cfg.Open(ctx, url)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if err := app.SetPort(p.cfg.PortName, db); err != nil {
		return errors.Join(err, db.Close())
	}
	p.db = db
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "database opened", slog.String("dialect", p.cfg.Dialect), slog.String("port", p.cfg.PortName))
	return nil
}

// Stop implements core.Provider.
func (p *Provider) Stop(ctx context.Context, app *core.App) error {
	if p.db == nil {
		return nil
	}
	app.RemovePort(p.cfg.PortName)
	err := p.db.Close()
	p.db = nil
	if err != nil {
		return fmt.Errorf("close %s database: %w", p.cfg.Dialect, err)
	}
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "database closed", slog.String("dialect", p.cfg.Dialect))
	return nil
}
