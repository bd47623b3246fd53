package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// Listener defaults.
const (
	// DefaultListenApplicationName is the application_name of the LISTEN
	// connection, as pg_stat_activity shows it.
	DefaultListenApplicationName = "wharf-outbox-listener"
	// DefaultListenPingInterval is how long the LISTEN connection may stay
	// silent before it is pinged to prove it is still alive.
	DefaultListenPingInterval = 30 * time.Second
	// listenConnectTimeout bounds one connection attempt (when the URL sets
	// no connect_timeout).
	listenConnectTimeout = 10 * time.Second
	// listenPingTimeout bounds the ping of a silent connection; a server
	// that does not answer within it is given up and reconnected to.
	listenPingTimeout = 10 * time.Second
)

// defaultListenBackoff paces reconnection attempts: 100ms doubling to 10s,
// with jitter.
var defaultListenBackoff = core.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

// ListenOptions configures the dedicated connection behind
// Outbox.Notifications. The zero value derives everything from the pool the
// outbox was created on.
type ListenOptions struct {
	// URL of the server for the LISTEN connection. Empty means the settings
	// of the pgx pool that NewOutbox was given (a *bun.DB from Open or
	// NewProvider): same host, credentials, TLS and run-time parameters. Set
	// it when the pool goes through a transaction-pooling proxy such as
	// PgBouncer, where LISTEN does not work, to reach the server directly.
	URL string
	// ApplicationName of the LISTEN connection; default
	// DefaultListenApplicationName.
	ApplicationName string
	// Backoff paces reconnection attempts after the connection is lost (the
	// first attempt is immediate); the zero value means 100ms doubling to 10s
	// with 20% jitter.
	Backoff core.Backoff
	// PingInterval is how long the connection may stay silent before it is
	// pinged, so that a dead connection is noticed and replaced (a ping
	// unanswered for 10s counts as a lost connection); zero means
	// DefaultListenPingInterval.
	PingInterval time.Duration
}

// Notifications implements ports.OutboxNotifier with PostgreSQL
// LISTEN/NOTIFY. The channels of an outbox (and of its WithDB copies) share
// one dedicated connection (see ListenOptions) that LISTENs on
// NotifyChannel(table). The first call opens it and returns once listening,
// so every Enqueue committed after it returns is signalled; later calls join
// it and return at once. Each channel (buffer one) receives a value per
// notification, coalesced. When the connection is lost it reconnects with
// backoff, logging each failure, and sends one value on every channel after
// reconnecting, since notifications may have been missed (a call that joins
// while the connection is being re-established gets that value too). A
// channel is closed when its ctx is done, and the connection when the last
// channel is. An error (no usable connection settings, server unreachable)
// means notifications are unavailable; callers fall back to polling. Logs and
// errors never contain the password.
func (o *Outbox) Notifications(ctx context.Context) (<-chan struct{}, error) {
	backoff := o.listen.Backoff
	if backoff == (core.Backoff{}) {
		backoff = defaultListenBackoff
	}
	if err := backoff.Validate(); err != nil {
		return nil, fmt.Errorf("outbox notifications: ListenOptions.Backoff: %w", err)
	}
	ping := o.listen.PingInterval
	if ping <= 0 {
		ping = DefaultListenPingInterval
	}
	h := o.hub
	if h == nil { // not made by NewOutbox: a connection of its own
		h = newListenHub()
	}
	h.start.Lock()
	defer h.start.Unlock()
	ch := make(chan struct{}, 1)
	if h.join(ctx, ch) {
		return ch, nil
	}
	if err := h.waitStopped(ctx); err != nil {
		return nil, fmt.Errorf("outbox notifications: %w", err)
	}
	cfg, secrets, err := o.listenConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox notifications: %w", err)
	}
	l := &listener{
		cfg:     cfg,
		secrets: secrets,
		channel: NotifyChannel(o.Queries().Names().Raw),
		backoff: backoff,
		ping:    ping,
		logger:  o.logger,
	}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox notifications: %w", err)
	}
	// The connection outlives the call that opened it: it ends with its last
	// channel, not with this ctx (whose values it keeps for logging).
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	h.started(ctx, ch, stop, done)
	go func() {
		defer close(done)
		l.run(runCtx, conn, h.broadcast)
	}()
	return ch, nil
}

// listenHub shares the LISTEN connection of an outbox among its
// Notifications channels.
type listenHub struct {
	start sync.Mutex // serialises Notifications calls, so one connection is opened at a time
	mu    sync.Mutex // guards the fields below
	subs  map[chan struct{}]struct{}
	stop  context.CancelFunc // ends the running listener; nil when none runs
	done  chan struct{}      // closed when the last started listener has ended
}

func newListenHub() *listenHub {
	return &listenHub{subs: map[chan struct{}]struct{}{}}
}

// join adds ch to a running listener, reporting whether one runs.
func (h *listenHub) join(ctx context.Context, ch chan struct{}) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop == nil {
		return false
	}
	h.subs[ch] = struct{}{}
	go h.leave(ctx, ch)
	return true
}

// started records a new listener (stopped by stop, ended when done closes)
// and its first channel.
func (h *listenHub) started(ctx context.Context, ch chan struct{}, stop context.CancelFunc, done chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stop, h.done = stop, done
	h.subs[ch] = struct{}{}
	go h.leave(ctx, ch)
}

// leave removes and closes ch when ctx is done, and stops the listener when
// ch was its last channel.
func (h *listenHub) leave(ctx context.Context, ch chan struct{}) {
	<-ctx.Done()
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, ch)
	close(ch)
	if len(h.subs) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

// waitStopped waits until the previous listener, if any, has closed its
// connection, so that listeners never overlap.
func (h *listenHub) waitStopped(ctx context.Context) error {
	h.mu.Lock()
	done := h.done
	h.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// broadcast sends a coalesced wake-up on every channel.
func (h *listenHub) broadcast() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		signal(ch)
	}
}

var _ ports.OutboxNotifier = (*Outbox)(nil)

// listenConfig returns the configuration of the LISTEN connection: parsed
// from ListenOptions.URL, or copied from a connection of the pool.
func (o *Outbox) listenConfig(ctx context.Context) (*pgx.ConnConfig, []string, error) {
	var (
		cfg     *pgx.ConnConfig
		secrets []string
	)
	switch {
	case o.listen.URL != "":
		c, err := ParseURL(o.listen.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("ListenOptions.URL: %w", err)
		}
		cfg, secrets = c, secretsOf(o.listen.URL)
	case o.pool != nil:
		c, err := poolConfig(ctx, o.pool)
		if err != nil {
			return nil, nil, err
		}
		cfg = c
		if cfg.Password != "" {
			secrets = []string{cfg.Password}
		}
	default:
		return nil, nil, core.Invalidf("no connection settings: the outbox was created on a transaction; create it on the *bun.DB (bind copies with WithDB) or set OutboxOptions.Listen.URL")
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	name := o.listen.ApplicationName
	if name == "" {
		name = DefaultListenApplicationName
	}
	cfg.RuntimeParams["application_name"] = name
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = listenConnectTimeout
	}
	// A cancelled wait must only set a read deadline (which leaves the
	// connection usable), never send a cancel request that could hit the
	// next statement.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	return cfg, secrets, nil
}

// poolConfig copies the pgx configuration of one of the pool's connections.
func poolConfig(ctx context.Context, pool *sql.DB) (*pgx.ConnConfig, error) {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("get a pool connection to copy its settings: %w", err)
	}
	defer conn.Close()
	var cfg *pgx.ConnConfig
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return core.Invalidf("the pool's driver connection is a %T, not pgx's *stdlib.Conn; open the database with postgres.Open or set OutboxOptions.Listen.URL", dc)
		}
		cfg = sc.Conn().Config() // a copy
		// pgx stores the connection's own notification hook in its config;
		// a connection made from the copy would buffer its notifications
		// into the pool connection's queue.
		cfg.OnNotification = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// listener owns the LISTEN connection of a listenHub while it runs.
type listener struct {
	cfg     *pgx.ConnConfig
	secrets []string
	channel string
	backoff core.Backoff
	ping    time.Duration
	logger  *slog.Logger
}

// where describes the server for errors and logs (never the password).
func (l *listener) where() string {
	return l.cfg.User + "@" + l.cfg.Host + ":" + strconv.Itoa(int(l.cfg.Port)) + "/" + l.cfg.Database
}

func (l *listener) redact(err error) string { return redact(err.Error(), l.secrets) }

// connect opens a connection and LISTENs on the channel.
func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg.Copy())
	if err != nil {
		return nil, &redactedError{msg: "connect to " + l.where() + ": " + err.Error(), err: err, secrets: l.secrets}
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, &redactedError{msg: "LISTEN " + l.channel + " on " + l.where() + ": " + err.Error(), err: err, secrets: l.secrets}
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// signal sends a coalesced wake-up.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run waits for notifications until ctx is done, replacing the connection
// whenever it fails; wake is called for every notification and after every
// reconnection.
func (l *listener) run(ctx context.Context, conn *pgx.Conn, wake func()) {
	attrs := []slog.Attr{slog.String("channel", l.channel), slog.String("server", l.where())}
	l.logger.LogAttrs(ctx, slog.LevelDebug, "outbox listener started", attrs...)
	for {
		if conn == nil {
			if conn = l.reconnect(ctx, attrs); conn == nil {
				return // ctx done
			}
			wake() // notifications may have been missed meanwhile
		}
		err := l.wait(ctx, conn)
		if err == nil {
			wake()
			continue
		}
		closeConn(conn)
		conn = nil
		if ctx.Err() != nil {
			l.logger.LogAttrs(context.WithoutCancel(ctx), slog.LevelDebug, "outbox listener stopped", attrs...)
			return
		}
		l.logger.LogAttrs(ctx, slog.LevelWarn, "outbox listener lost its connection; reconnecting",
			append(attrs, slog.String("error", l.redact(err)))...)
	}
}

// errSilent reports that the connection was silent for a ping interval.
var errSilent = errors.New("silent")

// wait returns nil after a notification, or the error that ended the wait.
// After PingInterval without a notification it pings the server; a failed
// ping (or one unanswered within listenPingTimeout) is returned as the
// connection's error.
func (l *listener) wait(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeoutCause(ctx, l.ping, errSilent)
		_, err := conn.WaitForNotification(wctx)
		silent := err != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), errSilent)
		cancel()
		if !silent {
			return err
		}
		// A read deadline leaves a pgx connection usable; prove it is alive.
		pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping after %v of silence: %w", l.ping, err)
		}
	}
}

// reconnect connects again, immediately and then after backoff delays, until
// it succeeds (returning the connection) or ctx is done (returning nil).
func (l *listener) reconnect(ctx context.Context, attrs []slog.Attr) *pgx.Conn {
	for attempt := 1; ; attempt++ {
		conn, err := l.connect(ctx)
		if err == nil {
			l.logger.LogAttrs(ctx, slog.LevelInfo, "outbox listener reconnected", append(attrs, slog.Int("attempt", attempt))...)
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		delay := l.backoff.Delay(attempt)
		l.logger.LogAttrs(ctx, slog.LevelWarn, "outbox listener cannot reconnect; retrying",
			append(attrs, slog.Int("attempt", attempt), slog.Duration("retry_in", delay), slog.String("error", err.Error()))...)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
