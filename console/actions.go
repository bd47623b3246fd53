package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

// Actions take a form: the CSRF token, the dead letters (id, one or
// more; or only, the one of a row's button), or all=1 with the filter
// (topic, key) whose matches to act on, confirm=1 once confirmed, until
// (the confirmation's time: what changed after it is left alone) and back
// (the console page to return to). Requeuing named dead letters needs no
// confirmation; every purge and every requeue of all matches does.

const (
	maxFormBytes = 1 << 20
	maxIDs       = 10 * MaxPageSize
	// countCap bounds the dead letters a confirmation counts one by one
	// (a filtered selection); beyond it the page says "more than".
	countCap = 10000
	// listBatch is the page size of the actions' listings.
	listBatch = MaxPageSize
)

var errReadOnly = errors.New("this console is read-only: actions are disabled")

// action wraps a state-changing handler: read-only mode, form size, CSRF.
func (c *Console) action(h func(http.ResponseWriter, *http.Request, form)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.opts.ReadOnly {
			c.fail(w, r, http.StatusForbidden, errReadOnly)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, http.StatusBadRequest, check.Invalidf("unreadable form: %v", err))
			return
		}
		if err := c.checkCSRF(r); err != nil {
			c.fail(w, r, http.StatusForbidden, err)
			return
		}
		f, err := c.readForm(r)
		if err != nil {
			c.fail(w, r, http.StatusBadRequest, err)
			return
		}
		h(w, r, f)
	}
}

// form is an action's request.
type form struct {
	IDs        []string
	All        bool
	Topic, Key string
	Confirmed  bool
	Until      time.Time
	Back       string
}

func (c *Console) readForm(r *http.Request) (form, error) {
	f := form{IDs: r.PostForm["id"], All: r.PostFormValue("all") == "1", Topic: r.PostFormValue("topic"), Key: r.PostFormValue("key"),
		Confirmed: r.PostFormValue("confirm") == "1", Back: r.PostFormValue("back")}
	if only := r.PostFormValue("only"); only != "" {
		f.IDs = []string{only}
	}
	if f.All {
		f.IDs = nil
	}
	if len(f.IDs) > maxIDs {
		return f, check.Invalidf("%d dead letters named; act on at most %d at once, or on all matches of a filter", len(f.IDs), maxIDs)
	}
	for _, id := range f.IDs {
		if id == "" {
			return f, check.Invalidf("an empty message ID was named")
		}
	}
	if v := r.PostFormValue("until"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, check.Invalidf("until %q is not an RFC 3339 time", v)
		}
		f.Until = t
	}
	if !safeBack(f.Back) {
		f.Back = ""
	}
	return f, nil
}

// safeBack accepts a path of the console only: no scheme, no host.
func safeBack(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, "/\\") &&
		!strings.ContainsAny(s, "\r\n\t\\")
}

// done redirects to the page the action came from, with its result.
func (c *Console) done(w http.ResponseWriter, r *http.Request, f form, def, what string, n, of int64) {
	back := f.Back
	if back == "" {
		back = def
	}
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	u := c.base(r) + back + sep + "done=" + what + "&n=" + strconv.FormatInt(n, 10)
	if of > 0 {
		u += "&of=" + strconv.FormatInt(of, 10)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// confirmData is a confirmation page.
type confirmData struct {
	Path, Verb, Noun string
	Form             form
	Count            int64
	More             bool // Count is a lower bound
	Until            string
	Danger           bool
	Shown            []string // the first IDs named
}

func (c *Console) confirm(w http.ResponseWriter, r *http.Request, d confirmData) {
	d.Until = c.opts.Now().UTC().Format(time.RFC3339Nano)
	if len(d.Form.IDs) > 0 {
		d.Count = int64(len(d.Form.IDs))
		d.Shown = d.Form.IDs[:min(len(d.Form.IDs), 20)]
	}
	nav := "dead"
	if strings.HasPrefix(d.Path, "/idempotency") {
		nav = "idempotency"
	}
	c.render(w, r, http.StatusOK, "confirm", c.page(w, r, nav, "Confirm", d))
}

func (c *Console) requeue(w http.ResponseWriter, r *http.Request, f form) {
	ctx := r.Context()
	if !f.All {
		if len(f.IDs) == 0 {
			c.fail(w, r, http.StatusBadRequest, check.Invalidf("no dead letter selected: tick some, or requeue all matches"))
			return
		}
		n, err := c.opts.Outbox.Requeue(ctx, f.IDs...)
		c.after(n)
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		c.done(w, r, f, "/dead", "requeued", n, int64(len(f.IDs)))
		return
	}
	if !f.Confirmed {
		d := confirmData{Path: "/dead/requeue", Verb: "Requeue", Noun: "requeue", Form: f}
		var err error
		if d.Count, d.More, err = c.countDead(ctx, f); err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		c.confirm(w, r, d)
		return
	}
	// By ID, a batch at a time, with or without a filter: Requeue() of
	// every dead letter would also take those that died after the
	// confirmation page (f.Until).
	if f.Until.IsZero() {
		f.Until = c.opts.Now()
	}
	var n int64
	err := c.eachDead(ctx, f, func(ids []string) error {
		k, err := c.opts.Outbox.Requeue(ctx, ids...)
		n += k
		return err
	})
	c.after(n)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, fmt.Errorf("requeued %d, then: %w", n, err))
		return
	}
	c.done(w, r, f, "/dead", "requeued", n, 0)
}

func (c *Console) purgeDead(w http.ResponseWriter, r *http.Request, f form) {
	ctx := r.Context()
	if !f.All && len(f.IDs) == 0 {
		c.fail(w, r, http.StatusBadRequest, check.Invalidf("no dead letter selected: tick some, or purge all matches"))
		return
	}
	needsIDs := !f.All || f.Topic != "" || f.Key != ""
	if needsIDs && c.deleter == nil {
		c.fail(w, r, http.StatusBadRequest, check.Invalidf("this outbox cannot delete dead letters by ID (no ports.DeadLetterDeleter); purge all of them instead"))
		return
	}
	if !f.Confirmed {
		d := confirmData{Path: "/dead/purge", Verb: "Purge", Noun: "purge", Form: f, Danger: true}
		if f.All {
			var err error
			if d.Count, d.More, err = c.countDead(ctx, f); err != nil {
				c.fail(w, r, http.StatusInternalServerError, err)
				return
			}
		}
		c.confirm(w, r, d)
		return
	}
	var n int64
	var err error
	switch {
	case !f.All:
		n, err = c.deleter.DeleteDeadLetters(ctx, f.IDs...)
	case !needsIDs:
		until := f.Until
		if until.IsZero() {
			until = c.opts.Now()
		}
		n, err = c.opts.Outbox.Purge(ctx, until)
	default:
		err = c.eachDead(ctx, f, func(ids []string) error {
			k, err := c.deleter.DeleteDeadLetters(ctx, ids...)
			n += k
			return err
		})
	}
	c.after(n)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, fmt.Errorf("purged %d, then: %w", n, err))
		return
	}
	var of int64
	if !f.All {
		of = int64(len(f.IDs))
	}
	c.done(w, r, f, "/dead", "purged", n, of)
}

// after records that n dead letters left through the console.
func (c *Console) after(n int64) {
	c.samples.removedDead(n)
	c.outbox.invalidate()
}

// countDead counts the dead letters matching f's filter: Stats without
// one, a listing (up to countCap) with one.
func (c *Console) countDead(ctx context.Context, f form) (int64, bool, error) {
	if f.Topic == "" && f.Key == "" {
		st, err := c.opts.Outbox.Stats(ctx)
		return st.Dead, false, err
	}
	var n int64
	more := false
	errFull := errors.New("full")
	err := c.eachDead(ctx, f, func(ids []string) error {
		n += int64(len(ids))
		if n >= countCap {
			more = true
			return errFull
		}
		return nil
	})
	if errors.Is(err, errFull) {
		err = nil
	}
	return n, more, err
}

// eachDead calls fn with the IDs of the dead letters matching f's filter
// and last updated before f.Until, a batch at a time.
func (c *Console) eachDead(ctx context.Context, f form, fn func([]string) error) error {
	after := ""
	for {
		recs, err := c.opts.Outbox.List(ctx, ports.OutboxFilter{Status: ports.StatusDead, Topic: f.Topic, Key: f.Key, AfterID: after, Limit: listBatch})
		if err != nil || len(recs) == 0 {
			return err
		}
		ids := make([]string, 0, len(recs))
		for _, rec := range recs {
			if f.Until.IsZero() || !rec.UpdatedAt.After(f.Until) {
				ids = append(ids, rec.ID)
			}
		}
		if len(ids) > 0 {
			if err := fn(ids); err != nil {
				return err
			}
		}
		if len(recs) < listBatch {
			return nil
		}
		after = recs[len(recs)-1].ID
	}
}

func (c *Console) purgeIdempotency(w http.ResponseWriter, r *http.Request, f form) {
	if c.opts.Idempotency == nil {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("this console shows no idempotency store"))
		return
	}
	ctx := r.Context()
	if !f.Confirmed {
		st, err := c.opts.Idempotency.Stats(ctx)
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		f.All = true
		c.confirm(w, r, confirmData{Path: "/idempotency/purge", Verb: "Purge", Noun: "purge the expired idempotency records",
			Form: f, Count: st.Expired, Danger: true})
		return
	}
	until := f.Until
	if until.IsZero() {
		until = c.opts.Now()
	}
	n, err := c.opts.Idempotency.Purge(ctx, until)
	c.idem.invalidate()
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, fmt.Errorf("purged %d, then: %w", n, err))
		return
	}
	c.done(w, r, f, "/idempotency", "idempotency-purged", n, 0)
}
