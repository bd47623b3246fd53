package console

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

// overviewData is the overview and its live fragment.
type overviewData struct {
	Stats snapshot[ports.OutboxStats]
	Chart chart
	Axis  [3]string
	// Every is the current least time between two counts.
	Every time.Duration
}

func (c *Console) overviewData(ctx context.Context) overviewData {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	now := c.opts.Now()
	d := overviewData{Stats: c.outbox.get(ctx), Axis: axisLabels(now)}
	d.Every = c.outbox.interval()
	if c.opts.Meter != nil {
		d.Chart = meteredChart(c.opts.Meter.LastHour())
	} else {
		d.Chart = sampledChart(c.samples.lastHour(now))
	}
	return d
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	d := c.overviewData(r.Context())
	c.render(w, r, http.StatusOK, "overview", c.page(w, r, "overview", "Overview", d))
}

// live renders the overview's counts and chart alone; the page's script
// swaps it in every few seconds.
func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	p := c.page(w, r, "overview", "Overview", c.overviewData(r.Context()))
	buf := new(bytes.Buffer)
	if err := c.pages["overview"].ExecuteTemplate(buf, "live", p); err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}

// listData is a page of messages (or of dead letters).
type listData struct {
	Dead               bool // the dead letters page, with its actions
	Status, Topic, Key string
	After, Next        string
	Limit              int
	Records            []ports.OutboxRecord
	// CanDelete: the outbox deletes dead letters by ID.
	CanDelete bool
	Stats     snapshot[ports.OutboxStats]
	// Back is this page's URL within the console, for the actions'
	// redirect.
	Back string
}

func (c *Console) limit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return c.opts.PageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, check.Invalidf("limit %q must be a number within 1..%d", v, MaxPageSize)
	}
	return n, nil
}

func (c *Console) messages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id := q.Get("id"); id != "" {
		http.Redirect(w, r, c.base(r)+"/messages/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	c.list(w, r, false)
}

func (c *Console) dead(w http.ResponseWriter, r *http.Request) { c.list(w, r, true) }

func (c *Console) list(w http.ResponseWriter, r *http.Request, dead bool) {
	q := r.URL.Query()
	limit, err := c.limit(q)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	d := listData{Dead: dead, Status: q.Get("status"), Topic: q.Get("topic"), Key: q.Get("key"), After: q.Get("after"), Limit: limit,
		CanDelete: c.deleter != nil}
	if dead {
		d.Status = string(ports.StatusDead)
	}
	switch d.Status {
	case "", string(ports.StatusPending), string(ports.StatusDead):
	default:
		c.fail(w, r, http.StatusBadRequest, check.Invalidf("status %q: use pending or dead (or none for both)", d.Status))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	// One more row than shown says whether there is a next page.
	recs, err := c.opts.Outbox.List(ctx, ports.OutboxFilter{Status: ports.MessageStatus(d.Status), Topic: d.Topic, Key: d.Key,
		AfterID: d.After, Limit: min(limit+1, MaxPageSize)})
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	if len(recs) > limit || (len(recs) == MaxPageSize && limit == MaxPageSize) {
		recs = recs[:limit]
		d.Next = recs[len(recs)-1].ID
	}
	d.Records = recs
	d.Stats = c.outbox.get(ctx)
	path := "/messages"
	nav, heading := "messages", "Messages"
	if dead {
		path, nav, heading = "/dead", "dead", "Dead letters"
	}
	d.Back = path
	if r.URL.RawQuery != "" {
		d.Back += "?" + stripFlash(q).Encode()
	}
	c.render(w, r, http.StatusOK, "messages", c.page(w, r, nav, heading, d))
}

// stripFlash drops the parameters of an action's result from q.
func stripFlash(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		if k != "done" && k != "n" && k != "of" {
			out[k] = v
		}
	}
	return out
}

// messageData is one message.
type messageData struct {
	R         ports.OutboxRecord
	State     string
	CanDelete bool
	Back      string
}

func (c *Console) message(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	recs, err := c.opts.Outbox.List(ctx, ports.OutboxFilter{ID: id, Limit: 1})
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	if len(recs) == 0 {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("message %q is not in the outbox: it was delivered (delivered messages leave the outbox), purged, or never there", id))
		return
	}
	d := messageData{R: recs[0], State: state(recs[0], c.opts.Now()), CanDelete: c.deleter != nil, Back: "/messages/" + url.PathEscape(id)}
	c.render(w, r, http.StatusOK, "message", c.page(w, r, "messages", "Message", d))
}

// idempotencyData is a page of idempotency records.
type idempotencyData struct {
	Namespace, Key, Status, Expiry string
	After, Next                    string
	Limit                          int
	Records                        []ports.IdempotencyRecord
	Stats                          snapshot[ports.IdempotencyStats]
}

func (c *Console) idempotency(w http.ResponseWriter, r *http.Request) {
	if c.opts.Idempotency == nil {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("this console shows no idempotency store (Options.Idempotency is nil)"))
		return
	}
	q := r.URL.Query()
	limit, err := c.limit(q)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	d := idempotencyData{Namespace: q.Get("namespace"), Key: q.Get("key"), Status: q.Get("status"), Expiry: q.Get("expiry"),
		After: q.Get("after"), Limit: limit}
	f := ports.IdempotencyFilter{Namespace: d.Namespace, Key: d.Key, Status: ports.IdempotencyRecordStatus(d.Status), After: d.After,
		Limit: min(limit+1, MaxPageSize)}
	switch d.Expiry {
	case "":
	case "expired":
		f.ExpiredAt = c.opts.Now()
	case "live":
		f.LiveAt = c.opts.Now()
	default:
		c.fail(w, r, http.StatusBadRequest, check.Invalidf("expiry %q: use expired or live (or none for both)", d.Expiry))
		return
	}
	switch f.Status {
	case "", ports.IdempotencyInProgress, ports.IdempotencyCompleted:
	default:
		c.fail(w, r, http.StatusBadRequest, check.Invalidf("status %q: use in_progress or completed (or none for both)", d.Status))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	recs, err := c.opts.Idempotency.List(ctx, f)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	if len(recs) > limit || (len(recs) == MaxPageSize && limit == MaxPageSize) {
		recs = recs[:limit]
		d.Next = recs[len(recs)-1].Cursor
	}
	d.Records = recs
	d.Stats = c.idem.get(ctx)
	c.render(w, r, http.StatusOK, "idempotency", c.page(w, r, "idempotency", "Idempotency records", d))
}
