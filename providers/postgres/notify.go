package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/ports"
)

const (
	// listenConnectTimeout bounds one connection attempt (when the URL sets
	// no connect_timeout).
	listenConnectTimeout = 10 * time.Second
	// listenPingTimeout bounds the ping of a silent connection; a server
	// that does not answer within it is given up and reconnected to.
	listenPingTimeout = 10 * time.Second
	// listenProbeTimeout is how long the probe notification may take to
	// come back once sent; a server delivers it at once.
	listenProbeTimeout = 2 * time.Second
)

// errNotificationsUnavailable is matched by Listen's error when a
// notification sent through the pool did not reach the LISTEN connection:
// the relays of other processes can then only poll.
var errNotificationsUnavailable = fmt.Errorf("postgres: notifications cannot arrive: %w", ports.ErrNotificationsUnavailable)

// errNotificationsStillUnavailable is Listen's error after a probe of the
// same driver failed.
var errNotificationsStillUnavailable = fmt.Errorf("postgres: %w: the probe of this driver's first listener did not come back (see the warning logged then)", ports.ErrNotificationsUnavailable)

// Listen LISTENs on NotifyChannel(table) over one dedicated connection per
// driver (settings from Options.Listen.URL, or copied from the pool), shared
// by all the channels it hands out. The first call opens it, checks that a
// notification sent through the pool comes back on it (see probe), and
// returns once listening, so every Enqueue committed after it returns is
// signalled; later calls join it and return at once. When the probe does
// not come back, Listen returns an error matching
// errNotificationsUnavailable that names the likely cause and the fix, and
// every later call of the driver returns a shorter error matching
// ports.ErrNotificationsUnavailable at once: the database cannot tell, so
// relays poll. When the connection is lost it
// reconnects with backoff, logging each failure, and sends one value on
// every channel after reconnecting, since notifications may have been
// missed. A channel is closed when its ctx is done, and the connection
// when the last channel is (or the driver is closed). Logs and errors never
// contain the password.
func (d *pgDialect) Listen(ctx context.Context, q *outboxsql.Queries) (<-chan struct{}, error) {
	h := d.hub
	h.start.Lock()
	defer h.start.Unlock()
	if h.unavailable {
		// The probe failed before: no need to try again, nor to repeat its
		// long explanation.
		return nil, errNotificationsStillUnavailable
	}
	ch := make(chan struct{}, 1)
	if h.join(ctx, ch) {
		return ch, nil
	}
	if err := h.waitStopped(ctx); err != nil {
		return nil, err
	}
	cfg, secrets, err := d.listenConfig(ctx)
	if err != nil {
		return nil, err
	}
	l := &listener{
		cfg:     cfg,
		secrets: secrets,
		channel: NotifyChannel(q.Names().Raw),
		ping:    d.listen.PingInterval,
		logger:  d.log,
	}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	woken, err := d.probe(ctx, l, conn)
	if err != nil {
		closeConn(conn)
		if errors.Is(err, errNotificationsUnavailable) {
			h.unavailable = true
		}
		return nil, err
	}
	if woken {
		outboxsql.Signal(ch) // a producer's notification came first
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
	start       sync.Mutex // serialises Notifications calls, so one connection is opened at a time
	unavailable bool       // under start: a probe did not come back, so later calls fail at once

	mu   sync.Mutex // guards the fields below
	subs map[chan struct{}]struct{}
	stop context.CancelFunc // ends the running listener; nil when none runs
	done chan struct{}      // closed when the last started listener has ended
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

// shutdown stops the running listener, if any, and waits until its
// connection is closed. Channels stay open until their ctx ends.
func (h *listenHub) shutdown() {
	h.mu.Lock()
	stop, done := h.stop, h.done
	h.stop = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// broadcast sends a coalesced wake-up on every channel.
func (h *listenHub) broadcast() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		outboxsql.Signal(ch)
	}
}

// listenConfig returns the configuration of the LISTEN connection: parsed
// from ListenOptions.URL, or copied from a connection of the pool.
func (d *pgDialect) listenConfig(ctx context.Context) (*pgx.ConnConfig, []string, error) {
	var (
		cfg     *pgx.ConnConfig
		secrets []string
	)
	switch {
	case d.listen.URL != "":
		c, err := ParseURL(d.listen.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("Options.Listen.URL: %w", err)
		}
		cfg, secrets = c, secretsOf(d.listen.URL)
	default:
		c, err := poolConfig(ctx, d.db.DB)
		if err != nil {
			return nil, nil, err
		}
		cfg = c
		if cfg.Password != "" {
			secrets = []string{cfg.Password}
		}
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = d.listen.ApplicationName
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
			return check.Invalidf("the pool's driver connection is a %T, not pgx's *stdlib.Conn; open the pool with pgx's stdlib or set Options.Listen.URL", dc)
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

// probePrefix starts the payload of a probe notification.
const probePrefix = "wharf-probe:"

// probe sends a notification on the listener's channel through the pool,
// the path producers take, and waits up to listenProbeTimeout for it on
// conn. A transaction-pooling proxy (PgBouncer in transaction mode) lets
// LISTEN succeed on whatever server connection it lands on, then hands that
// connection to other clients: notifications never reach conn. So does a
// Listen.URL that reaches another database than the pool. woken reports
// that other notifications (a producer's) arrived first. A failed probe is
// an error matching errNotificationsUnavailable that says why and what to
// change; an error of the pool or of conn is returned as it is.
func (d *pgDialect) probe(ctx context.Context, l *listener, conn *pgx.Conn) (woken bool, err error) {
	payload := probePrefix + strconv.FormatUint(rand.Uint64(), 36)
	if _, err := d.db.ExecContext(ctx, "SELECT pg_notify(?, ?)", l.channel, payload); err != nil {
		return false, fmt.Errorf("postgres: send the probe notification through the pool: %w", TranslateError(err))
	}
	wctx, cancel := context.WithTimeout(ctx, listenProbeTimeout)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(wctx)
		switch {
		case err == nil && n.Payload == payload:
			return woken, nil
		case err == nil:
			woken = true
			continue
		case ctx.Err() != nil:
			return false, context.Cause(ctx)
		case wctx.Err() == nil:
			return false, &redactedError{msg: "wait for the probe notification on " + l.where() + ": " + err.Error(), err: err, secrets: l.secrets}
		}
		cause := "the likely cause is a transaction-pooling proxy such as PgBouncer (pool_mode = transaction) between the pool and PostgreSQL, where LISTEN does not keep its server connection: " +
			"set wharf.Options.Listen.URL to a URL of the PostgreSQL server itself (same database, not through the proxy)"
		if d.listen.URL != "" {
			cause = "wharf.Options.Listen.URL must reach the pool's database on the PostgreSQL server itself: " +
				"it goes through a transaction-pooling proxy such as PgBouncer, or to another database"
		}
		return false, fmt.Errorf("%w: a probe notification sent through the pool on channel %q did not reach the LISTEN connection to %s within %v; %s; until then, relays find messages committed by other processes by polling",
			errNotificationsUnavailable, l.channel, l.where(), listenProbeTimeout, cause)
	}
}

// listener owns the LISTEN connection of a listenHub while it runs.
type listener struct {
	cfg     *pgx.ConnConfig
	secrets []string
	channel string
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
		delay := reconnectDelay(attempt)
		// The first failure at warn level, the next ones at debug (a
		// restart or an outage would otherwise log one per attempt); the
		// reconnection says how many attempts it took.
		level := slog.LevelDebug
		if attempt == 1 {
			level = slog.LevelWarn
		}
		l.logger.LogAttrs(ctx, level, "outbox listener cannot reconnect; retrying",
			append(attrs, slog.Int("attempt", attempt), slog.Duration("retry_in", delay), slog.String("error", l.redact(err)))...)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// reconnectDelay is the pause before reconnection attempt+1: 100ms doubling
// to 10s, jittered by ±20% so that many listeners do not reconnect in
// lockstep after a server restart.
func reconnectDelay(attempt int) time.Duration {
	d := 10 * time.Second
	if attempt < 8 {
		d = min(100*time.Millisecond<<(attempt-1), d)
	}
	return d*4/5 + rand.N(d*2/5+1)
}

// notifyPrefix starts every notification channel name.
const notifyPrefix = "wharf_outbox_"

// maxChannelLength is PostgreSQL's identifier limit (NAMEDATALEN - 1), which
// bounds channel names.
const maxChannelLength = 63

// NotifyChannel returns the channel on which Enqueue notifies for table (""
// means the default table): "wharf_outbox_" followed by the table name as
// configured (schema included when given). Names longer than 63 bytes are
// cut and end in a hash of the whole name, so distinct tables keep distinct
// channels. Tables of the same unqualified name in different schemas (found
// through search_path) share a channel; their listeners then see spurious
// wake-ups, which the notifier contract allows.
func NotifyChannel(table string) string {
	if table == "" {
		table = outboxsql.DefaultTableName
	}
	ch := notifyPrefix + table
	if len(ch) <= maxChannelLength {
		return ch
	}
	sum := sha256.Sum256([]byte(table))
	suffix := "_" + hex.EncodeToString(sum[:4])
	return ch[:maxChannelLength-len(suffix)] + suffix
}

// maxPayload keeps notification payloads below PostgreSQL's 8000-byte limit.
const maxPayload = 7999

// notifyPayload is the payload of Enqueue's notification: the distinct
// topics of the call, newline-separated (a single topic as is), or "" when
// they would not fit. Listeners treat it as a hint only.
func notifyPayload(topics []string) string {
	if len(topics) == 1 {
		if len(topics[0]) > maxPayload {
			return ""
		}
		return topics[0]
	}
	p := strings.Join(topics, "\n")
	if len(p) > maxPayload {
		return ""
	}
	return p
}
