package console_test

import (
	"context"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/console"
	"github.com/wharf-go/wharf/console/internal/consoletest"
	"github.com/wharf-go/wharf/ports"
)

// esc is how the pages spell s in HTML text.
func esc(s string) string { return template.HTMLEscapeString(s) }

// TestPages reads every page of a console mounted under a prefix, on a
// seeded database of each dialect, and checks what it shows against the
// database.
func TestPages(t *testing.T) {
	t.Parallel()
	for _, dialect := range consoletest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := consoletest.Open(t, dialect)
			seed := consoletest.Seed(t, db, 7, 4)
			ob := db.Driver.Outbox()
			s := newServer(t, console.Options{Outbox: ob, Idempotency: db.Driver.Idempotency(), PageSize: 3, Title: "orders (" + dialect + ")"})
			ctx := context.Background()
			all, err := ob.List(ctx, ports.OutboxFilter{Limit: 1000})
			require.NoError(t, err)
			require.Len(t, all, 7+3+2+5)

			t.Run("OverviewShowsTheDatabasesCounts", func(t *testing.T) {
				st, err := ob.Stats(ctx)
				require.NoError(t, err)
				require.Equal(t, ports.OutboxStats{Ready: 7, Scheduled: 3, Leased: 2, Dead: 5}, ports.OutboxStats{
					Ready: st.Ready, Scheduled: st.Scheduled, Leased: st.Leased, Dead: st.Dead})
				res := s.get("/", http.StatusOK)
				require.Equal(t, map[string]int64{"ready": st.Ready, "scheduled": st.Scheduled, "leased": st.Leased, "dead": st.Dead},
					counts(t, res.body))
				require.Contains(t, res.body, "<title>Overview · orders ("+dialect+")</title>")
				require.Contains(t, res.body, `href="`+prefix+`/dead"`, "links carry the mount point")
				require.Contains(t, res.body, "age of the oldest ready message")
				require.NotContains(t, res.body, `data-count="oldest-ready">—`, "there is a ready message, so an age")
				require.Contains(t, res.body, "Dead-lettered per minute and pending backlog", "without a Meter the chart is sampled")
				require.Contains(t, res.header.Get("Content-Security-Policy"), "script-src 'self';")

				live := s.get("/live", http.StatusOK)
				require.NotContains(t, live.body, "<html")
				require.Equal(t, counts(t, res.body), counts(t, live.body), "the live fragment shows the same counts")
			})

			t.Run("StaticFilesAreServedWithTheirVersion", func(t *testing.T) {
				res := s.get("/", http.StatusOK)
				m := regexpFind(t, `href="(`+prefix+`/static/console\.css\?v=[0-9a-f]+)"`, res.body)
				css := s.get(strings.TrimPrefix(m, prefix), http.StatusOK)
				require.Contains(t, css.header.Get("Content-Type"), "text/css")
				require.Contains(t, css.header.Get("Cache-Control"), "immutable")
				require.Contains(t, s.get("/static/console.js", http.StatusOK).body, "live()")
			})

			t.Run("MessagesArePagedByKeysetInIDOrder", func(t *testing.T) {
				var got []string
				path := "/messages"
				for pages := 0; path != ""; pages++ {
					require.Less(t, pages, 10, "paging must end")
					res := s.get(path, http.StatusOK)
					page := rows(res.body)
					require.LessOrEqual(t, len(page), 3)
					got = append(got, page...)
					path = next(t, res.body)
				}
				var want []string
				for _, r := range all {
					want = append(want, r.ID)
				}
				require.Equal(t, want, got, "every message once, in ID order")
			})

			t.Run("MessagesAreFiltered", func(t *testing.T) {
				for _, tc := range []struct {
					name, query string
					want        []string
				}{
					{"ByStatus", "status=dead&limit=100", sorted(append(slices.Clone(seed.Dead), seed.Hostile))},
					{"ByTopic", "topic=" + consoletest.ReadyTopic + "&limit=100", seed.Ready},
					{"ByKey", "key=k1&limit=100", []string{seed.Ready[1], seed.Ready[6]}},
					{"ByStatusAndTopic", "status=pending&topic=" + consoletest.DeadTopic, nil},
				} {
					t.Run(tc.name, func(t *testing.T) {
						res := s.get("/messages?"+tc.query, http.StatusOK)
						require.Equal(t, tc.want, rows(res.body))
						if tc.want == nil {
							require.Contains(t, res.body, "No messages match this filter")
						}
					})
				}
			})

			t.Run("BadFiltersAreExplained", func(t *testing.T) {
				for _, tc := range []struct{ query, says string }{
					{"/messages?status=leased", "status &#34;leased&#34;: use pending or dead"},
					{"/messages?limit=0", "limit &#34;0&#34; must be a number within 1..1000"},
					{"/idempotency?expiry=soon", "expiry &#34;soon&#34;: use expired or live"},
					{"/idempotency?status=done", "status &#34;done&#34;: use in_progress or completed"},
				} {
					require.Contains(t, s.get(tc.query, http.StatusBadRequest).body, tc.says)
				}
				require.Contains(t, s.get("/nowhere", http.StatusNotFound).body, "no page at /nowhere")
			})

			t.Run("OneMessageShowsEverything", func(t *testing.T) {
				res := s.get("/messages/"+seed.Dead[0], http.StatusOK)
				for _, want := range []string{
					`id="message-state">dead`, `id="message-attempts">1 of 3`, esc("payment provider: 502 bad gateway (invoice customer-0)"),
					esc("{\n  \"invoice\": 0,\n  \"amount\": {\n    \"value\": 100,"), "traceparent", consoletest.DeadTopic,
					"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", `id="requeue"`, `id="purge"`,
				} {
					require.Contains(t, res.body, want)
				}
				res = s.get("/messages/"+seed.Leased[0], http.StatusOK)
				require.Contains(t, res.body, `id="message-state">leased`)
				require.NotContains(t, res.body, `id="requeue"`, "only dead letters are requeued")
				require.Contains(t, s.get("/messages/"+seed.Scheduled[0], http.StatusOK).body, `id="message-state">scheduled`)
				require.Contains(t, s.get("/messages/no-such-id", http.StatusNotFound).body, "is not in the outbox")
				// The ID box redirects to the message's page.
				res = s.get("/messages?id="+seed.Ready[2], http.StatusSeeOther)
				require.Equal(t, prefix+"/messages/"+seed.Ready[2], res.location)
			})

			t.Run("DeadLettersListsTheDeadWithTheirActions", func(t *testing.T) {
				res := s.get("/dead?limit=100", http.StatusOK)
				require.Equal(t, sorted(append(slices.Clone(seed.Dead), seed.Hostile)), rows(res.body))
				for _, want := range []string{`id="requeue-selected"`, `id="purge-selected"`, `id="requeue-all"`, `id="purge-all"`, `id="select-all"`} {
					require.Contains(t, res.body, want)
				}
				res = s.get("/dead?topic="+consoletest.DeadTopic+"&key=customer-1", http.StatusOK)
				require.Equal(t, []string{seed.Dead[1]}, rows(res.body))
				require.Contains(t, res.body, "Requeue all matching")
			})

			t.Run("IdempotencyRecordsAreSearched", func(t *testing.T) {
				res := s.get("/idempotency?limit=100", http.StatusOK)
				require.Equal(t, map[string]int64{"in-progress": 1, "abandoned": 0, "completed": 3, "expired": 2}, counts(t, res.body))
				everything := rows(res.body)
				require.Len(t, everything, 6)
				for _, tc := range []struct {
					name, query string
					n           int
					has         []string
				}{
					{"ByNamespace", "namespace=" + consoletest.IdemNamespace, 4, seed.IdemLive},
					{"ByNamespaceAndKey", "namespace=" + consoletest.IdemNamespace + "&key=req-live-1", 1, []string{"req-live-1"}},
					{"ByStatus", "status=in_progress", 1, []string{"req-running"}},
					{"Expired", "expiry=expired", 2, seed.IdemExpired},
					{"Live", "expiry=live&status=completed", 3, seed.IdemLive},
				} {
					t.Run(tc.name, func(t *testing.T) {
						res := s.get("/idempotency?limit=100&"+tc.query, http.StatusOK)
						require.Len(t, rows(res.body), tc.n)
						for _, k := range tc.has {
							require.Contains(t, res.body, ">"+k+"<")
						}
					})
				}
				require.Contains(t, res.body, esc(`"order": "req-live-0"`), "a completed record's result, pretty-printed")
				// Keyset paging, two a page: every record once.
				var got []string
				path := "/idempotency?limit=2"
				for path != "" {
					res := s.get(path, http.StatusOK)
					got = append(got, rows(res.body)...)
					path = next(t, res.body)
				}
				require.Equal(t, everything, got)
			})
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
