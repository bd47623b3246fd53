package wharf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/logging"
)

// DefaultPortName is the port a Provider installs its driver under.
const DefaultPortName = "wharf"

// ProviderOptions configure NewProvider. EnvVar is required unless URL is
// set.
type ProviderOptions struct {
	// URL is the database URL (see Open). Empty means the value of EnvVar.
	URL string
	// EnvVar names the environment variable that holds the URL when URL is
	// empty, e.g. "DATABASE_URL" (the providers' own NewProvider set theirs:
	// SQLITE_DB_URL, POSTGRES_DB_URL, MYSQL_DB_URL).
	EnvVar string
	// PortName is the port the *Driver is installed under. Default
	// DefaultPortName.
	PortName string
	// Dialect, when set ("sqlite", "postgres", "mysql"), refuses a URL of
	// any other dialect with that dialect's own message (the providers'
	// NewProvider set it). Empty means the URL's scheme picks the dialect.
	Dialect string
	// Options configure the driver.
	Options Options
}

// Provider is a core.Provider that opens a driver on Start, installs it as
// a port (look it up with core.Port[*wharf.Driver](app, name)) and closes
// it on Stop.
type Provider struct {
	opts ProviderOptions
	log  *slog.Logger
	drv  *Driver
}

// NewProvider returns a provider for opts. A missing URL, a malformed one or
// an unreachable database fail Start with an error that names where the URL
// came from (the variable or ProviderOptions.URL) and never its password.
func NewProvider(opts ProviderOptions) *Provider {
	if opts.PortName == "" {
		opts.PortName = DefaultPortName
	}
	return &Provider{opts: opts, log: logging.OrDefault(opts.Options.Logger)}
}

// Name implements core.Provider: "wharf:" and the port name, so that an
// App can hold providers of several databases.
func (p *Provider) Name() string { return "wharf:" + p.opts.PortName }

// Driver returns the driver (nil before Start and after Stop).
func (p *Provider) Driver() *Driver { return p.drv }

// Start implements core.Provider.
func (p *Provider) Start(ctx context.Context, app *core.App) error {
	url, source := p.opts.URL, "ProviderOptions.URL"
	if url == "" {
		if p.opts.EnvVar == "" {
			return check.Invalidf("wharf provider: neither ProviderOptions.URL nor ProviderOptions.EnvVar is set")
		}
		url, source = os.Getenv(p.opts.EnvVar), p.opts.EnvVar
		if url == "" {
			return check.Invalidf("%s is not set: set it to the database URL, e.g. %s", p.opts.EnvVar, dialect.Example(p.opts.Dialect))
		}
	}
	e, err := p.entry(url)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	drv, err := open(ctx, e, url, p.opts.Options)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if err := app.SetPort(p.opts.PortName, drv); err != nil {
		return errors.Join(err, drv.Close())
	}
	p.drv = drv
	p.log.LogAttrs(ctx, slog.LevelInfo, "database opened", slog.String("dialect", drv.Dialect()), slog.String("port", p.opts.PortName))
	return nil
}

// entry returns the provider of url: the one named by Dialect, or the
// scheme's.
func (p *Provider) entry(url string) (*dialect.Entry, error) {
	if p.opts.Dialect == "" {
		return dialect.ByURL(url)
	}
	return dialect.ByName(p.opts.Dialect)
}

// Stop implements core.Provider.
func (p *Provider) Stop(ctx context.Context, app *core.App) error {
	if p.drv == nil {
		return nil
	}
	app.RemovePort(p.opts.PortName)
	err := p.drv.Close()
	p.drv = nil
	if err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}
