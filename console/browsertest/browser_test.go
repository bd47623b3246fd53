package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/console"
	"github.com/wharf-go/wharf/console/internal/consoletest"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
)

// Environment.
const (
	// ChromiumEnv names the browser binary (scripts/browser.sh sets it).
	ChromiumEnv = "WHARF_TEST_CHROMIUM"
	// ScreenshotsEnv, when set, is the directory where the SQLite run writes
	// a PNG of each page for docs/console.md (make screenshots).
	ScreenshotsEnv = "WHARF_CONSOLE_SCREENSHOTS"
)

// chromium returns the browser's path, or skips the test loudly (fails it
// under CI=true) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv(ChromiumEnv), "/usr/bin/chromium", "chromium", "chromium-browser"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := "no Chromium: run `make test` (scripts/browser.sh installs Debian's chromium) or set " + ChromiumEnv
	if testdb.InCI() {
		t.Fatalf("CI=true and %s", msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING the browser tests: %s ***\n\n", msg)
	t.Skip(msg)
	return ""
}

// seen is what the page did that the test watches for: console output,
// uncaught exceptions, dialogs and the browser's log (CSP violations).
type seen struct {
	mu      sync.Mutex
	entries []string
}

func (s *seen) add(kind, text string) {
	s.mu.Lock()
	s.entries = append(s.entries, kind+": "+text)
	s.mu.Unlock()
}

func (s *seen) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.entries...)
}

// hooks runs in every document before the page's own scripts: it records
// dialogs, console calls and CSP violations where the test can read them.
const hooks = `(() => {
  window.__dialogs = []; window.__logs = []; window.__csp = [];
  for (const name of ["alert", "confirm", "prompt"]) {
    window[name] = (m) => { window.__dialogs.push(name + ":" + String(m)); return null; };
  }
  for (const name of ["log", "info", "warn", "error"]) {
    const orig = console[name].bind(console);
    console[name] = (...a) => { window.__logs.push(a.map(String).join(" ")); orig(...a); };
  }
  document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
})();`

// newBrowser starts a headless Chromium for t with the watch of seen.
func newBrowser(t *testing.T, path string) (context.Context, *seen) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Headless, chromedp.DisableGPU, chromedp.NoSandbox, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true), chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("hide-scrollbars", true), chromedp.Flag("force-color-profile", "srgb"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	s := &seen{}
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			s.add("console."+string(ev.Type), strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			s.add("exception", ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			s.add("log."+string(ev.Entry.Level), ev.Entry.Text)
		case *page.EventJavascriptDialogOpening:
			s.add("dialog", ev.Message)
			go func() { _, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) }()
		}
	}))
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hooks})
	require.NoError(t, err)
	return ctx, s
}

// do runs steps with a deadline.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(tctx, steps...))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// waitFor polls a JavaScript condition until it holds.
func waitFor(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.Run(tctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(25*time.Second)))
	require.NoError(t, err, "waiting for %s", expr)
}

// shot writes a PNG of the whole page for the docs when ScreenshotsEnv is
// set and the test runs on want.
func shot(t *testing.T, ctx context.Context, dialect, name string) {
	t.Helper()
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" || dialect != "sqlite" {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
	t.Logf("wrote %s", filepath.Join(dir, name+".png"))
}

// clock is the Meter's clock, set back an hour to attribute the relay's
// outcomes to the minutes of the last hour.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// deliverOverAnHour runs a real relay with the Meter as its Observer, one
// batch a minute of the meter's last hour but its first: every sixth minute one
// message fails for good. It returns what the relay reported.
func deliverOverAnHour(t *testing.T, drv *wharf.Driver, meter *console.Meter, clk *clock) relay.DrainResult {
	t.Helper()
	ctx := context.Background()
	hs := relay.NewHandlers()
	require.NoError(t, hs.Handle("shipping.notify", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{}))
	require.NoError(t, hs.Handle("ledger.post", func(context.Context, ports.ClaimedMessage) error {
		return relay.Permanent(errors.New("ledger: account 4711 is closed"))
	}, relay.TopicOptions{}))
	r, err := relay.New(drv.Outbox(), hs, relay.Options{Observer: meter.Observe, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	var total relay.DrainResult
	for minute := 58; minute >= 0; minute-- { // a minute of slack: the window moves on while the test runs
		clk.offset.Store(int64(-time.Duration(minute) * time.Minute))
		var msgs []ports.OutboxMessage
		for i := range 3 + (minute*7)%6 {
			msgs = append(msgs, ports.OutboxMessage{Topic: "shipping.notify", Payload: json.RawMessage(fmt.Sprintf(`{"parcel":%d}`, i))})
		}
		if minute%6 == 0 {
			msgs = append(msgs, ports.OutboxMessage{Topic: "ledger.post", Payload: json.RawMessage(`{"account":4711}`), MaxAttempts: 1})
		}
		_, err := drv.Outbox().Enqueue(ctx, msgs...)
		require.NoError(t, err)
		res, err := r.Drain(ctx)
		require.NoError(t, err)
		total.Delivered += res.Delivered
		total.DeadLettered += res.DeadLettered
		total.Retried += res.Retried
	}
	clk.offset.Store(0)
	return total
}

// TestConsoleInABrowser loads the console in headless Chromium on a
// seeded database of each dialect: the counts shown are the database's,
// the chart shows what a real relay delivered, the overview refreshes by
// itself, paging works, a hostile message renders as inert text, and
// requeuing and purging dead letters by clicking change the database.
func TestConsoleInABrowser(t *testing.T) {
	path := chromium(t)
	for _, dialect := range consoletest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			db := consoletest.Open(t, dialect)
			drv := db.Driver
			ctx := context.Background()
			clk := &clock{}
			meter := console.NewMeter(clk.now)
			delivered := deliverOverAnHour(t, drv, meter, clk)
			require.Equal(t, 10, delivered.DeadLettered)
			seed := consoletest.Seed(t, db, 40, 6)

			c, err := console.New(console.Options{Outbox: drv.Outbox(), Idempotency: drv.Idempotency(), Meter: meter,
				Title: dialect + " · shop · outbox_messages", StatsInterval: time.Second, PageSize: 25})
			require.NoError(t, err)
			mux := http.NewServeMux()
			mux.Handle("/ops/wharf/", http.StripPrefix("/ops/wharf", c))
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			base := srv.URL + "/ops/wharf"
			bctx, events := newBrowser(t, path)

			// The overview: the database's counts and the relay's outcomes.
			do(t, bctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#live .cards")))
			st, err := drv.Outbox().Stats(ctx)
			require.NoError(t, err)
			shown := eval[map[string]int64](t, bctx,
				`Object.fromEntries([...document.querySelectorAll("[data-count][data-value]")].map(e => [e.dataset.count, Number(e.dataset.value)]))`)
			require.Equal(t, map[string]int64{"ready": st.Ready, "scheduled": st.Scheduled, "leased": st.Leased, "dead": st.Dead}, shown)
			require.Equal(t, int64(40), st.Ready)
			totals := eval[map[string]string](t, bctx,
				`Object.fromEntries([...document.querySelectorAll("[data-total]")].map(e => [e.dataset.total, e.textContent.replaceAll(",", "")]))`)
			require.Equal(t, map[string]string{"delivered": fmt.Sprint(delivered.Delivered), "failed": fmt.Sprint(delivered.DeadLettered + delivered.Retried)}, totals)
			require.Equal(t, 60, eval[int](t, bctx, `document.querySelectorAll("svg.chart g").length`), "a bar a minute")
			shot(t, bctx, dialect, "overview")

			// It refreshes by itself: a new message shows up without a reload.
			_, err = drv.Outbox().Enqueue(ctx, ports.OutboxMessage{Topic: consoletest.ReadyTopic, Payload: json.RawMessage(`{}`)})
			require.NoError(t, err)
			waitFor(t, bctx, fmt.Sprintf(`document.querySelector('[data-count="ready"]').dataset.value === "%d"`, st.Ready+1))

			// Messages, 25 a page: the next page continues after the last ID.
			do(t, bctx, chromedp.Navigate(base+"/messages"), chromedp.WaitVisible(chromedp.CSS("#messages")))
			first := eval[[]string](t, bctx, `[...document.querySelectorAll("#messages tbody tr")].map(r => r.dataset.id)`)
			require.Len(t, first, 25)
			shot(t, bctx, dialect, "messages")
			do(t, bctx, chromedp.Click(chromedp.CSS("#next-page")), chromedp.WaitVisible(chromedp.CSS("a[href$='/messages']")))
			waitFor(t, bctx, `location.search.includes("after=")`)
			second := eval[[]string](t, bctx, `[...document.querySelectorAll("#messages tbody tr")].map(r => r.dataset.id)`)
			require.NotEmpty(t, second)
			require.Greater(t, second[0], first[len(first)-1], "keyset paging in ID order")

			// A hostile message renders as text and runs nothing.
			do(t, bctx, chromedp.Navigate(base+"/messages/"+seed.Hostile), chromedp.WaitVisible(chromedp.CSS("#message-payload")))
			require.Equal(t, consoletest.HostileTopic, eval[string](t, bctx, `document.getElementById("message-topic").textContent`))
			require.Contains(t, eval[string](t, bctx, `document.getElementById("message-payload").textContent`), "<script>window.__pwned=1;")
			require.Equal(t, consoletest.HostileError, eval[string](t, bctx, `document.getElementById("message-error").textContent`))
			require.Zero(t, eval[int](t, bctx, `document.querySelectorAll("main img, main svg, main iframe, main script, #message-payload *").length`),
				"no element came from the data")
			do(t, bctx, chromedp.Navigate(base+"/dead"), chromedp.WaitVisible(chromedp.CSS("#messages")))
			require.Contains(t, eval[string](t, bctx, `document.querySelector("#messages").textContent`), consoletest.HostileTopic)
			require.Equal(t, "undefined", eval[string](t, bctx, `typeof window.__pwned`), "the hostile payload did not execute")
			require.Empty(t, eval[[]string](t, bctx, `window.__dialogs`), "no alert")
			require.Empty(t, eval[[]string](t, bctx, `window.__csp`), "nothing even tried to run (no CSP violation)")
			for _, e := range events.all() {
				require.NotContains(t, e, "pwned")
				require.NotContains(t, e, "Content Security Policy")
				require.False(t, strings.HasPrefix(e, "dialog") || strings.HasPrefix(e, "exception"), e)
			}

			// Requeue one dead letter by clicking its row's button.
			do(t, bctx, chromedp.Navigate(base+"/dead?topic="+consoletest.DeadTopic), chromedp.WaitVisible(chromedp.CSS("#messages")))
			shot(t, bctx, dialect, "dead-letters")
			target := seed.Dead[0]
			do(t, bctx, chromedp.Click(chromedp.CSS(`tr[data-id="`+target+`"] button[data-action="requeue"]`)), chromedp.WaitVisible(chromedp.CSS("#flash")))
			require.Equal(t, "Requeued 1 dead letter(s).", strings.TrimSpace(eval[string](t, bctx, `document.getElementById("flash").textContent`)))
			recs, err := drv.Outbox().List(ctx, ports.OutboxFilter{ID: target})
			require.NoError(t, err)
			require.Equal(t, ports.StatusPending, recs[0].Status, "the click requeued it in the database")
			require.Zero(t, recs[0].Attempts)

			// Purge two selected ones: tick them, confirm, and they are gone.
			require.True(t, eval[bool](t, bctx, `document.getElementById("purge-selected").disabled`), "nothing selected yet")
			do(t, bctx,
				chromedp.Click(chromedp.CSS(`tr[data-id="`+seed.Dead[1]+`"] input[name=id]`)),
				chromedp.Click(chromedp.CSS(`tr[data-id="`+seed.Dead[2]+`"] input[name=id]`)))
			require.Equal(t, "Purge 2 selected…", eval[string](t, bctx, `document.getElementById("purge-selected").textContent`))
			do(t, bctx, chromedp.Click(chromedp.CSS("#purge-selected")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
			require.Contains(t, eval[string](t, bctx, `document.getElementById("confirm-question").textContent`), "Purge 2 selected dead letter(s)?")
			shot(t, bctx, dialect, "confirm")
			for _, id := range seed.Dead[1:3] {
				recs, err := drv.Outbox().List(ctx, ports.OutboxFilter{ID: id})
				require.NoError(t, err)
				require.Len(t, recs, 1, "nothing purged before the confirmation")
			}
			do(t, bctx, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#flash")))
			require.Contains(t, eval[string](t, bctx, `document.getElementById("flash").textContent`), "Purged 2 dead letter(s).")
			for _, id := range seed.Dead[1:3] {
				recs, err := drv.Outbox().List(ctx, ports.OutboxFilter{ID: id})
				require.NoError(t, err)
				require.Empty(t, recs, "purged from the database")
			}

			// One message, and the idempotency records.
			do(t, bctx, chromedp.Navigate(base+"/messages/"+seed.Dead[3]), chromedp.WaitVisible(chromedp.CSS("#message-payload")))
			require.Contains(t, eval[string](t, bctx, `document.getElementById("message-payload").textContent`), `"currency": "EUR"`)
			shot(t, bctx, dialect, "message")
			do(t, bctx, chromedp.Navigate(base+"/idempotency"), chromedp.WaitVisible(chromedp.CSS("#records")))
			ist, err := drv.Idempotency().Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, map[string]int64{"in-progress": ist.InProgress, "abandoned": ist.Abandoned, "completed": ist.Completed, "expired": ist.Expired},
				eval[map[string]int64](t, bctx, `Object.fromEntries([...document.querySelectorAll("[data-count][data-value]")].map(e => [e.dataset.count, Number(e.dataset.value)]))`))
			do(t, bctx, chromedp.Evaluate[chromedp.Void](`document.querySelector("#records details").open = true`))
			shot(t, bctx, dialect, "idempotency")
			require.Equal(t, "undefined", eval[string](t, bctx, `typeof window.__pwned`))
		})
	}
}
