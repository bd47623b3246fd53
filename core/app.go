package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/wharf-go/wharf/ports"
)

// Provider is a unit of application wiring: it starts resources (a database
// pool, an outbox, repositories), installs them as named ports on the App,
// and releases them on Stop.
type Provider interface {
	// Name identifies the provider in errors and logs.
	Name() string
	// Start installs the provider's ports. It may look up ports installed by
	// providers registered before it.
	Start(ctx context.Context, app *App) error
	// Stop releases what Start acquired. It is called once, in reverse
	// registration order, and only if Start succeeded.
	Stop(ctx context.Context, app *App) error
}

// ProviderFuncs builds a Provider from functions; a nil function does
// nothing.
type ProviderFuncs struct {
	ProviderName string
	StartFunc    func(ctx context.Context, app *App) error
	StopFunc     func(ctx context.Context, app *App) error
}

// Name returns ProviderName.
func (p ProviderFuncs) Name() string { return p.ProviderName }

// Start calls StartFunc.
func (p ProviderFuncs) Start(ctx context.Context, app *App) error {
	if p.StartFunc == nil {
		return nil
	}
	return p.StartFunc(ctx, app)
}

// Stop calls StopFunc.
func (p ProviderFuncs) Stop(ctx context.Context, app *App) error {
	if p.StopFunc == nil {
		return nil
	}
	return p.StopFunc(ctx, app)
}

// AppOptions configures an App. The zero value is valid.
type AppOptions struct {
	// Logger receives lifecycle logs (debug and info only); nil discards
	// them.
	Logger *slog.Logger
}

// App is a registry of providers and the ports they install. It is safe for
// concurrent use.
type App struct {
	logger *slog.Logger

	mu        sync.Mutex
	providers []Provider
	started   []Provider
	ports     map[string]any
	running   bool
}

// NewApp returns an empty App.
func NewApp(opts AppOptions) *App {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &App{logger: logger, ports: make(map[string]any)}
}

// Logger returns the app's logger (never nil).
func (a *App) Logger() *slog.Logger { return a.logger }

// Register appends providers; Start runs them in registration order. It
// fails if the app is already started or a provider is nil or has an empty
// or duplicate name.
func (a *App) Register(providers ...Provider) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running {
		return errors.New("core: register: app already started; register providers before Start")
	}
	for _, p := range providers {
		if p == nil {
			return fmt.Errorf("core: register: nil provider: %w", ports.ErrInvalidArgument)
		}
		if p.Name() == "" {
			return fmt.Errorf("core: register: provider %T has an empty name: %w", p, ports.ErrInvalidArgument)
		}
		for _, q := range a.providers {
			if q.Name() == p.Name() {
				return fmt.Errorf("core: register: provider %q registered twice: %w", p.Name(), ports.ErrInvalidArgument)
			}
		}
		a.providers = append(a.providers, p)
	}
	return nil
}

// Start starts the providers in registration order. If one fails, the ones
// already started are stopped in reverse order and the error names the
// failing provider (and any stop failures).
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("core: start: app already started")
	}
	a.running = true
	providers := append([]Provider(nil), a.providers...)
	a.mu.Unlock()

	for _, p := range providers {
		a.logger.DebugContext(ctx, "starting provider", slog.String("provider", p.Name()))
		if err := p.Start(ctx, a); err != nil {
			startErr := fmt.Errorf("core: start provider %q: %w", p.Name(), err)
			stopErr := a.stopStarted(ctx)
			a.mu.Lock()
			a.running = false
			a.mu.Unlock()
			return errors.Join(startErr, stopErr)
		}
		a.mu.Lock()
		a.started = append(a.started, p)
		a.mu.Unlock()
	}
	a.logger.InfoContext(ctx, "app started", slog.Int("providers", len(providers)))
	return nil
}

// Stop stops the started providers in reverse order. Every provider is
// stopped even if an earlier one fails; the errors are joined. Stop on an app
// that is not started does nothing.
func (a *App) Stop(ctx context.Context) error {
	err := a.stopStarted(ctx)
	a.mu.Lock()
	a.running = false
	a.mu.Unlock()
	return err
}

func (a *App) stopStarted(ctx context.Context) error {
	a.mu.Lock()
	started := a.started
	a.started = nil
	a.mu.Unlock()
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		p := started[i]
		if err := p.Stop(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("core: stop provider %q: %w", p.Name(), err))
			continue
		}
		a.logger.DebugContext(ctx, "stopped provider", slog.String("provider", p.Name()))
	}
	return errors.Join(errs...)
}

// SetPort installs value under name. Installing a nil value or a name that
// is already taken is an error.
func (a *App) SetPort(name string, value any) error {
	if name == "" {
		return fmt.Errorf("core: set port: empty name: %w", ports.ErrInvalidArgument)
	}
	if value == nil {
		return fmt.Errorf("core: set port %q: nil value: %w", name, ports.ErrInvalidArgument)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.ports[name]; ok {
		return fmt.Errorf("core: set port %q: already installed (a %T): %w", name, old, ports.ErrInvalidArgument)
	}
	a.ports[name] = value
	return nil
}

// RemovePort uninstalls name (providers call it on Stop).
func (a *App) RemovePort(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.ports, name)
}

// ErrPortNotFound is returned (wrapped) by Port when no port has the name.
var ErrPortNotFound = errors.New("port not installed")

// ErrPortType is returned (wrapped) by Port when the port has another type.
var ErrPortType = errors.New("port has another type")

// Port returns the port installed under name as a T. A missing port or one of
// another type is an error that names the port and both types.
func Port[T any](app *App, name string) (T, error) {
	var zero T
	app.mu.Lock()
	v, ok := app.ports[name]
	app.mu.Unlock()
	want := reflect.TypeFor[T]()
	if !ok {
		return zero, fmt.Errorf("core: port %q (want %v): %w; is its provider registered before this one?", name, want, ErrPortNotFound)
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("core: port %q is a %T, not a %v: %w", name, v, want, ErrPortType)
	}
	return t, nil
}
