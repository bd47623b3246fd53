package conformance

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// outboxPortTests are the Outbox tests of the port itself: enqueue and
// storage here, claims and their life cycle in outbox_claim.go.
func outboxPortTests() []testCase {
	return append([]testCase{
		{"MigrateIsIdempotent", testOutboxMigrateIdempotent},
		{"EnqueueReturnsIDsInInputOrder", testOutboxEnqueueIDs},
		{"EnqueueStoresFieldsAndAppliesDefaults", testOutboxEnqueueDefaults},
		{"EnqueueBatchOf250Messages", testOutboxEnqueueBatch},
		{"EnqueueBatchKeepsAwkwardTextByteForByte", testOutboxEnqueueAwkward},
		{"EnqueueRejectsInvalidInputAndWritesNothing", testOutboxEnqueueInvalid},
		{"EnqueueAcceptsTopicAndKeyOf255Characters", testOutboxEnqueueLongest},
		{"EnqueueRejectsDuplicateIDAndWritesNothingEvenAcrossStatements", testOutboxEnqueueDuplicate},
		{"EnqueueInRolledBackTransactionLeavesNothing", testOutboxEnqueueRollback},
		{"EnqueueInCommittedTransactionKeepsMessages", testOutboxEnqueueCommit},
		{"TypedEventsRoundTripThroughOutbox", testOutboxTypedEvents},
		{"RejectsInvalidTableNames", testInvalidTableNames},
		{"CustomTableNamesRoundTrip", testCustomTableNames},
		{"LongestTableNamesGetEveryIndex", testLongestTableNames},
		{"InvalidIdempotencyTableNameCreatesNothing", testInvalidIdemTableCreatesNothing},
		{"StoresFixedWidthSortableTimestamps", testOutboxTimestamps},
		{"StoresDocumentedColumns", testOutboxColumns},
	}, append(outboxClaimTests(), outboxCursorTests()...)...)
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func testOutboxMigrateIdempotent(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.before"))
	drv := f.driver(config{})
	require.NoError(t, drv.Migrate(f.ctx), "a second Migrate succeeds")
	require.NoError(t, drv.Migrate(f.ctx), "a third Migrate succeeds")
	require.NoError(t, drv.CheckSchema(f.ctx), "the schema is complete")
	require.Equal(t, ids, recordIDs(f.listAll(ob)), "migrating again keeps the stored messages")
	f.enqueue(ob, job("conf.after"))
	require.Len(t, f.listAll(ob), 2)
}

func testOutboxEnqueueIDs(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	msgs := []ports.OutboxMessage{job("t0"), job("t1"), job("t2"), job("t3"), job("t4")}
	msgs[1].ID = "conf-explicit-b"
	msgs[3].ID = "conf-explicit-a"
	ids := f.enqueue(ob, msgs...)

	require.Equal(t, "conf-explicit-b", ids[1], "an explicit ID is kept")
	require.Equal(t, "conf-explicit-a", ids[3], "an explicit ID is kept")
	for _, i := range []int{0, 2, 4} {
		require.Regexp(t, uuidV7, ids[i], "an empty ID becomes a UUIDv7")
	}
	require.Len(t, uniq(ids), len(ids), "IDs are unique")

	topicByID := map[string]string{}
	for _, r := range f.listAll(ob) {
		topicByID[r.ID] = r.Topic
	}
	require.Len(t, topicByID, len(msgs))
	for i, id := range ids {
		require.Equal(t, fmt.Sprintf("t%d", i), topicByID[id], "ID %d belongs to message %d (input order)", i, i)
	}
}

func testOutboxEnqueueDefaults(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outboxWith(f.db, config{defaultMaxAttempts: 7})
	now := f.clock.Now()
	later := now.Add(90*time.Second + 654321*time.Microsecond)

	ids := f.enqueue(ob,
		ports.OutboxMessage{Topic: "conf.defaults", Payload: raw(`{"a":[1,2,3],"b":"x"}`)},
		ports.OutboxMessage{
			Kind: ports.KindJob, Topic: "conf.explicit", Key: "k-1",
			Payload:     raw(`"just a string"`),
			Headers:     map[string]string{"trace": "abc", "tenant": "t1"},
			AvailableAt: later, MaxAttempts: 3,
		})

	d := f.record(ob, ids[0])
	require.Equal(t, ports.KindEvent, d.Kind, "Kind defaults to event")
	require.Equal(t, "conf.defaults", d.Topic)
	require.Empty(t, d.Key)
	require.JSONEq(t, `{"a":[1,2,3],"b":"x"}`, string(d.Payload))
	require.Empty(t, d.Headers)
	require.Equal(t, ports.StatusPending, d.Status)
	require.Zero(t, d.Attempts)
	require.Equal(t, 7, d.MaxAttempts, "MaxAttempts defaults to the outbox's DefaultMaxAttempts")
	requireTime(t, now, d.AvailableAt, "AvailableAt defaults to now")
	require.True(t, d.LockedUntil.IsZero(), "LockedUntil is zero when not leased")
	require.Empty(t, d.LastError)
	requireTime(t, now, d.CreatedAt, "CreatedAt is the outbox clock's now")
	requireTime(t, now, d.UpdatedAt, "UpdatedAt is the outbox clock's now")

	e := f.record(ob, ids[1])
	require.Equal(t, ports.KindJob, e.Kind)
	require.Equal(t, "conf.explicit", e.Topic)
	require.Equal(t, "k-1", e.Key)
	require.JSONEq(t, `"just a string"`, string(e.Payload))
	require.Equal(t, map[string]string{"trace": "abc", "tenant": "t1"}, e.Headers)
	require.Equal(t, 3, e.MaxAttempts)
	requireTime(t, later, e.AvailableAt)

	// The claimed messages carry the same fields.
	f.clock.Advance(2 * time.Minute)
	claimed := f.claim(ob, 10)
	require.Equal(t, ids, claimedIDs(claimed))
	c := claimed[1]
	require.Equal(t, ports.KindJob, c.Kind)
	require.Equal(t, "conf.explicit", c.Topic)
	require.Equal(t, "k-1", c.Key)
	require.JSONEq(t, `"just a string"`, string(c.Payload))
	require.Equal(t, map[string]string{"trace": "abc", "tenant": "t1"}, c.Headers)
	require.Equal(t, 3, c.MaxAttempts)
	requireTime(t, later, c.AvailableAt)
	requireTime(t, now, c.CreatedAt)
	require.Equal(t, 7, claimed[0].MaxAttempts)
	require.Equal(t, ports.KindEvent, claimed[0].Kind)
}

func testOutboxEnqueueBatch(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	msgs := make([]ports.OutboxMessage, 250)
	for i := range msgs {
		msgs[i] = ports.OutboxMessage{Topic: "conf.batch", Payload: raw(fmt.Sprintf(`{"i":%d}`, i)),
			Headers: map[string]string{"i": fmt.Sprint(i)}}
	}
	ids := f.enqueue(ob, msgs...)
	require.Len(t, uniq(ids), 250, "every message gets its own ID")

	recs := f.listAll(ob)
	require.Len(t, recs, 250)
	sorted := slices.Clone(ids)
	sort.Strings(sorted)
	require.Equal(t, sorted, recordIDs(recs), "List returns the messages in ID order")
	byID := map[string]ports.OutboxRecord{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	for i, id := range ids {
		require.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i), string(byID[id].Payload), "message %d", i)
		require.Equal(t, fmt.Sprint(i), byID[id].Headers["i"], "message %d", i)
	}
	require.EqualValues(t, 250, f.stats(ob).Ready)
}

// awkward are strings that quoting, array literals or IN lists could
// mangle.
var awkward = []string{
	`it's`, `q"uo\te`, `back\\slash`, "{,}", "NULL", "null", " lead and trail ", "ünï ✓ 𝄞",
	`\x00`, "comma, separated", "(paren)", "$1 ? :name", "new\nline\ttab",
}

// testOutboxEnqueueAwkward enqueues one batch whose IDs, topics, keys,
// payloads and headers hold awkward text, mixed with absent keys and
// headers, and reads every field back byte for byte.
func testOutboxEnqueueAwkward(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	msgs := make([]ports.OutboxMessage, 0, 2*len(awkward))
	for i, s := range awkward {
		payload, err := json.Marshal(map[string]string{"s": s})
		require.NoError(t, err)
		msgs = append(msgs,
			ports.OutboxMessage{ID: fmt.Sprintf("conf-%02d-%s", i, s), Topic: "conf." + s, Key: s, Payload: payload,
				Headers: map[string]string{s: s, "n": fmt.Sprint(i)}, MaxAttempts: i + 1},
			ports.OutboxMessage{Topic: "conf.plain", Payload: raw(fmt.Sprintf(`[%d, "%d"]`, i, i))})
	}
	ids := f.enqueue(ob, msgs...)
	byID := map[string]ports.OutboxRecord{}
	for _, r := range f.listAll(ob) {
		byID[r.ID] = r
	}
	require.Len(t, byID, len(msgs))
	for i, m := range msgs {
		r, ok := byID[ids[i]]
		require.True(t, ok, "message %d (%q) is stored under its ID", i, ids[i])
		require.Equal(t, m.Topic, r.Topic, "message %d", i)
		require.Equal(t, m.Key, r.Key, "message %d", i)
		require.Equal(t, string(m.Payload), string(r.Payload), "message %d: the payload is stored as given", i)
		if len(m.Headers) == 0 {
			require.Empty(t, r.Headers, "message %d", i)
		} else {
			require.Equal(t, m.Headers, r.Headers, "message %d", i)
		}
		if m.MaxAttempts > 0 {
			require.Equal(t, m.MaxAttempts, r.MaxAttempts, "message %d", i)
		}
		require.Equal(t, ports.StatusPending, r.Status)
	}
}

func testOutboxEnqueueInvalid(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	long := strings.Repeat("é", 256)
	cases := []struct {
		name string
		msg  ports.OutboxMessage
	}{
		{"EmptyTopic", ports.OutboxMessage{Payload: raw(`{}`)}},
		{"NilPayload", ports.OutboxMessage{Topic: "conf.t"}},
		{"EmptyPayload", ports.OutboxMessage{Topic: "conf.t", Payload: raw(``)}},
		{"InvalidJSONPayload", ports.OutboxMessage{Topic: "conf.t", Payload: raw(`{"a":`)}},
		{"NotJSONPayload", ports.OutboxMessage{Topic: "conf.t", Payload: raw(`hello`)}},
		{"NegativeMaxAttempts", ports.OutboxMessage{Topic: "conf.t", Payload: raw(`{}`), MaxAttempts: -1}},
		{"Topic256Characters", ports.OutboxMessage{Topic: long, Payload: raw(`{}`)}},
		{"Key256Characters", ports.OutboxMessage{Topic: "conf.t", Key: long, Payload: raw(`{}`)}},
		{"TopicWithNUL", ports.OutboxMessage{Topic: "conf.t\x00x", Payload: raw(`{}`)}},
		{"KeyWithNUL", ports.OutboxMessage{Topic: "conf.t", Key: "k\x00", Payload: raw(`{}`)}},
	}
	for _, tc := range cases {
		ids, err := ob.Enqueue(f.ctx, job("conf.valid"), tc.msg, job("conf.valid"))
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "Enqueue with %s", tc.name)
		require.Empty(t, ids, "Enqueue with %s returns no IDs", tc.name)
		require.Empty(t, f.listAll(ob), "Enqueue with %s writes nothing of the batch", tc.name)
	}
	st := f.stats(ob)
	require.Zero(t, st.Ready+st.Scheduled+st.Leased+st.Dead, "nothing was written")
}

func testOutboxEnqueueLongest(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	topic := strings.Repeat("é", 255)
	key := strings.Repeat("ß", 254) + "k"
	ids := f.enqueue(ob, ports.OutboxMessage{Topic: topic, Key: key, Payload: raw(`{"ok":true}`)})
	r := f.record(ob, ids[0])
	require.Equal(t, topic, r.Topic, "a 255-character topic is stored unchanged")
	require.Equal(t, key, r.Key, "a 255-character key is stored unchanged")
	m := f.claimOne(ob, topic)
	require.Equal(t, ids[0], m.ID)
	require.Equal(t, topic, m.Topic)
	require.Equal(t, key, m.Key)
}

func testOutboxEnqueueDuplicate(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	dup := job("conf.dup")
	dup.ID = "conf-dup"
	f.enqueue(ob, dup)

	fresh := job("conf.fresh")
	fresh.ID = "conf-fresh"
	_, err := ob.Enqueue(f.ctx, fresh, dup)
	require.Error(t, err, "an ID that is already stored is refused")
	require.ErrorIs(t, err, ports.ErrUniqueViolation)
	require.Equal(t, []string{"conf-dup"}, recordIDs(f.listAll(ob)), "nothing of the failed batch is stored")

	other := job("conf.other")
	other.ID = "conf-twice"
	_, err = ob.Enqueue(f.ctx, other, other)
	require.Error(t, err, "an ID used twice in one batch is refused")
	require.Equal(t, []string{"conf-dup"}, recordIDs(f.listAll(ob)), "nothing of the failed batch is stored")

	// A batch that takes several INSERT statements (the providers write
	// at most 500 rows per statement), the duplicate in its last one:
	// still all or none on the root handle.
	big := make([]ports.OutboxMessage, 1200)
	for i := range big {
		big[i] = job("conf.big")
	}
	big[len(big)-1] = dup
	_, err = ob.Enqueue(f.ctx, big...)
	require.ErrorIs(t, err, ports.ErrUniqueViolation, "the last statement of a large batch is refused")
	require.Equal(t, []string{"conf-dup"}, recordIDs(f.listAll(ob)), "nothing of the failed large batch is stored")
	big[len(big)-1] = job("conf.big")
	ids, err := ob.Enqueue(f.ctx, big...)
	require.NoError(t, err)
	require.Len(t, ids, len(big))
	require.EqualValues(t, len(big)+1, f.stats(ob).Ready, "the same large batch without the duplicate is stored whole")
}

func testOutboxEnqueueRollback(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, _ := f.unitOfWork(uowConfig{})
	var enqueued []string
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		var err error
		if enqueued, err = tx.Outbox.Enqueue(ctx, job("conf.a"), job("conf.b")); err != nil {
			return err
		}
		if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
			return err
		}
		return errConfRollback
	})
	require.ErrorIs(t, err, errConfRollback)
	require.Len(t, enqueued, 2, "Enqueue inside the transaction succeeded")
	ob := f.outbox(f.db)
	require.Empty(t, f.listAll(ob), "messages enqueued in a rolled-back transaction are gone")
	f.claimNone(ob, "the transaction rolled back")
	require.Empty(t, f.items())
}

func testOutboxEnqueueCommit(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, _ := f.unitOfWork(uowConfig{})
	var enqueued []string
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		var err error
		if enqueued, err = tx.Outbox.Enqueue(ctx, job("conf.a"), job("conf.b")); err != nil {
			return err
		}
		return insertItem(ctx, tx.DB, "a", "alpha")
	})
	require.NoError(t, err)
	require.Len(t, enqueued, 2)
	ob := f.outbox(f.db)
	require.ElementsMatch(t, enqueued, recordIDs(f.listAll(ob)), "the committed messages are stored")
	require.Equal(t, enqueued, claimedIDs(f.claim(ob, 10)), "and claimable in enqueue order")
	require.Equal(t, []string{"a"}, f.items())
}

type confCreated struct {
	ID   string            `json:"id"`
	Name string            `json:"name"`
	Tags []string          `json:"tags"`
	Meta map[string]string `json:"meta"`
}

var confCreatedEvent = core.DefineEvent[confCreated]("conf.created")

func testOutboxTypedEvents(t *testing.T, h Harness) {
	f := setup(t, h)
	uow, _ := f.unitOfWork(uowConfig{})
	want := confCreated{ID: "c-1", Name: "Zoë 🚢", Tags: []string{"a", "b"}, Meta: map[string]string{"k": "v"}}
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		rec, err := core.NewOutboxEventRecorder(tx.Outbox, core.OutboxEventRecorderOptions{
			Now: f.clock.Now,
			Key: func(ev ports.Event) string { return "aggregate-1" },
		})
		if err != nil {
			return err
		}
		return confCreatedEvent.Record(ctx, rec, want)
	})
	require.NoError(t, err)

	ob := f.outbox(f.db)
	m := f.claimOne(ob)
	require.Equal(t, ports.KindEvent, m.Kind)
	require.Equal(t, "conf.created", m.Topic, "the event name is the topic")
	require.Equal(t, "aggregate-1", m.Key)
	ev := core.EventFromMessage(m)
	require.Equal(t, m.ID, ev.ID, "the event's ID is the message ID")
	require.Equal(t, "conf.created", ev.Name)
	requireTime(t, f.clock.Now(), ev.OccurredAt, "OccurredAt travels through the outbox")
	got, err := confCreatedEvent.Decode(ev)
	require.NoError(t, err)
	require.Equal(t, want, got, "the typed payload round-trips")
	require.NoError(t, ob.Complete(f.ctx, m.Claim()))
	require.Empty(t, f.listAll(ob))
}

// invalidTableNames are table names that no outbox or idempotency store
// accepts.
var invalidTableNames = []string{
	"bad name", "x;drop table y", "1abc", "a.b.c", "a-b", "tbl'", `t"x`, "a.", ".a",
	"outbox_messages; DROP TABLE outbox_messages", strings.Repeat("x", 64),
}

func testInvalidTableNames(t *testing.T, h Harness) {
	f := setup(t, h)
	for _, name := range invalidTableNames {
		drv, err := f.newDriver(config{outboxTable: name})
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "a driver with outbox table name %q", name)
		require.Nil(t, drv, "no driver with outbox table name %q", name)
		drv, err = f.newDriver(config{idemTable: name})
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "a driver with idempotency table name %q", name)
		require.Nil(t, drv, "no driver with idempotency table name %q", name)
	}
	// The default tables are intact.
	ob := f.outbox(f.db)
	f.enqueue(ob, job("conf.ok"))
	require.Len(t, f.listAll(ob), 1)
}

func testCustomTableNames(t *testing.T, h Harness) {
	f := setup(t, h)
	drv := f.driver(config{outboxTable: "custom_outbox", idemTable: "custom_idem"})
	require.NoError(t, drv.Migrate(f.ctx))
	require.NoError(t, drv.Migrate(f.ctx), "Migrate is idempotent")
	require.NoError(t, drv.CheckSchema(f.ctx), "the custom tables are complete")

	custom := f.outboxWith(f.db, config{outboxTable: "custom_outbox"})
	def := f.outbox(f.db)
	ids := f.enqueue(custom, job("conf.custom"), job("conf.custom"))
	require.Equal(t, 2, f.countRows("custom_outbox"), "the messages are in the custom table")
	require.Empty(t, f.listAll(def), "the default table is untouched")
	require.Equal(t, ids, recordIDs(f.listAll(custom)))
	m := f.claimOne(custom)
	require.Equal(t, ids[0], m.ID)
	require.NoError(t, custom.Complete(f.ctx, m.Claim()))
	require.Equal(t, ids[1:], recordIDs(f.listAll(custom)))
	require.EqualValues(t, 1, f.stats(custom).Ready)

	cstore := f.idempotencyWith(f.db, config{idemTable: "custom_idem"})
	req := reserveReq("conf.custom", "k-1", "fp-1")
	r := f.reserve(cstore, req)
	require.Equal(t, ports.Reserved, r.Status)
	require.NoError(t, cstore.Complete(f.ctx, r, raw(`{"ok":1}`)))
	require.Equal(t, 1, f.countRows("custom_idem"), "the record is in the custom table")
	replay := f.reserve(cstore, req)
	require.Equal(t, ports.Replay, replay.Status)
	require.JSONEq(t, `{"ok":1}`, string(replay.Result))
	require.Equal(t, ports.Reserved, f.reserve(f.idempotency(f.db), req).Status,
		"the default table does not hold the custom table's record")
}

// testLongestTableNames migrates two drivers whose four tables have the
// longest accepted names (63 characters) and share their first 50: every
// index name derived from them must fit the database's identifier limit
// and stay distinct (a truncated index name would collide with the other
// table's, and its CREATE INDEX IF NOT EXISTS would silently do nothing).
// It also checks that CheckSchema names a table that was never migrated.
func testLongestTableNames(t *testing.T, h Harness) {
	f := setup(t, h)
	prefix := strings.Repeat("w", 50)
	longest := func(tail string) string { return prefix + tail + strings.Repeat("x", 63-len(prefix)-len(tail)) }
	cfgs := []config{
		{outboxTable: longest("_outbox_a"), idemTable: longest("_idem_a")},
		{outboxTable: longest("_outbox_b"), idemTable: longest("_idem_b")},
	}
	for _, c := range cfgs {
		require.Len(t, c.outboxTable, 63)
		require.Len(t, c.idemTable, 63)
		drv := f.driver(c)
		require.NoError(t, drv.Migrate(f.ctx), "Migrate with the tables %s and %s", c.outboxTable, c.idemTable)
		require.NoError(t, drv.Migrate(f.ctx), "Migrate is idempotent with the longest names")
	}
	for i, c := range cfgs {
		drv := f.driver(c)
		require.NoError(t, drv.CheckSchema(f.ctx), "every table and index of driver %d exists", i)

		ob := drv.Outbox()
		ids := f.enqueue(ob, keyed("conf.long", "k"), keyed("conf.long", "k"))
		m := f.claimOne(ob)
		require.Equal(t, ids[0], m.ID, "driver %d claims from its own table", i)
		f.claimNone(ob, "the second message waits for its key")
		require.NoError(t, ob.Complete(f.ctx, m.Claim()))
		require.Equal(t, ids[1], f.claimOne(ob).ID)
		require.Equal(t, 1, f.countRows(c.outboxTable), "driver %d's messages are in its own table", i)

		r := f.reserve(drv.Idempotency(), reserveReq("conf.long", "k", "fp"))
		require.Equal(t, ports.Reserved, r.Status, "driver %d reserves in its own table", i)
		require.NoError(t, drv.Idempotency().Complete(f.ctx, r, raw(`{"ok":true}`)))
		require.Equal(t, 1, f.countRows(c.idemTable), "driver %d's record is in its own table", i)
	}

	for _, c := range []config{
		{outboxTable: "conf_never_migrated_outbox"},
		{idemTable: "conf_never_migrated_idem"},
	} {
		missing := c.outboxTable + c.idemTable
		err := f.driver(c).CheckSchema(f.ctx)
		require.Error(t, err, "CheckSchema with the never-migrated table %s", missing)
		require.Contains(t, err.Error(), missing, "the error names the missing table")
	}
}

// testInvalidIdemTableCreatesNothing: a driver whose idempotency table
// name is invalid is refused before it creates anything, not even its
// valid outbox table.
func testInvalidIdemTableCreatesNothing(t *testing.T, h Harness) {
	f := setup(t, h)
	drv, err := f.newDriver(config{outboxTable: "fresh_outbox", idemTable: "bad name;"})
	require.ErrorIs(t, err, ports.ErrInvalidArgument, "a driver with the idempotency table name %q", "bad name;")
	require.Nil(t, drv)

	err = f.driver(config{outboxTable: "fresh_outbox", idemTable: "fresh_idem"}).CheckSchema(f.ctx)
	require.Error(t, err, "fresh_outbox was not created")
	require.Contains(t, err.Error(), "fresh_outbox", "the error names the table that does not exist")
}

func testOutboxTimestamps(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	base := f.clock.Now().Truncate(time.Second).Add(time.Hour)
	offsets := []time.Duration{ // enqueue order; not time order
		999999 * time.Microsecond,
		0,
		100 * time.Millisecond,
		123456 * time.Microsecond,
		time.Second,
		time.Microsecond,
		120 * time.Millisecond,
		999999500 * time.Nanosecond, // stored truncated to .999999
		10*time.Second + 50*time.Millisecond,
		500 * time.Millisecond,
	}
	msgs := make([]ports.OutboxMessage, len(offsets))
	for i, off := range offsets {
		msgs[i] = job("conf.ts")
		msgs[i].ID = fmt.Sprintf("ts-%02d", i)
		msgs[i].AvailableAt = base.Add(off)
	}
	// A time in another zone is stored in UTC.
	msgs[4].AvailableAt = msgs[4].AvailableAt.In(time.FixedZone("conf", 5*3600+30*60))
	f.enqueue(ob, msgs...)

	type stored struct{ id, availableAt string }
	want := make([]stored, len(msgs))
	for i, m := range msgs {
		want[i] = stored{m.ID, core.FormatTime(m.AvailableAt)}
	}
	sort.SliceStable(want, func(i, j int) bool {
		ti, _ := core.ParseTime(want[i].availableAt)
		tj, _ := core.ParseTime(want[j].availableAt)
		return ti.Before(tj) || ti.Equal(tj) && want[i].id < want[j].id
	})

	// Lease the earliest message so that locked_until is set.
	f.clock.Advance(time.Hour + time.Second)
	m := f.claimOne(ob)
	require.Equal(t, want[0].id, m.ID, "the earliest AvailableAt is claimed first")

	rows, err := f.db.QueryContext(f.ctx,
		"SELECT id, available_at, created_at, updated_at, locked_until FROM outbox_messages ORDER BY available_at, id")
	require.NoError(t, err)
	defer rows.Close()
	var got []stored
	leased := 0
	for rows.Next() {
		var id, avail, created, updated string
		var locked sql.NullString
		require.NoError(t, rows.Scan(&id, &avail, &created, &updated, &locked))
		for col, v := range map[string]string{"available_at": avail, "created_at": created, "updated_at": updated} {
			requireStoredTime(t, id, col, v)
		}
		require.Equal(t, core.FormatTime(clockStart), created, "%s created_at", id)
		if locked.Valid && locked.String != "" {
			requireStoredTime(t, id, "locked_until", locked.String)
			if id == m.ID {
				require.Equal(t, core.FormatTime(m.LockedUntil), locked.String)
				leased++
			}
		}
		got = append(got, stored{id, avail})
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 1, leased, "the leased message stores locked_until")
	require.Equal(t, want, got, "ORDER BY the stored strings is chronological order")

	for _, r := range f.listAll(ob) {
		i := slices.IndexFunc(msgs, func(m ports.OutboxMessage) bool { return m.ID == r.ID })
		requireTime(t, msgs[i].AvailableAt.Truncate(time.Microsecond), r.AvailableAt, "AvailableAt of %s round-trips at microsecond precision", r.ID)
	}
}

func requireStoredTime(t *testing.T, id, col, v string) {
	t.Helper()
	require.Len(t, v, len(core.TimeFormat), "%s %s = %q is fixed-width %s", id, col, v, core.TimeFormat)
	require.True(t, strings.HasSuffix(v, "Z"), "%s %s = %q is UTC", id, col, v)
	_, err := core.ParseTime(v)
	require.NoError(t, err, "%s %s = %q parses with core.ParseTime", id, col, v)
}

func testOutboxColumns(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	leased := keyed("conf.columns", "k-1")
	leased.ID = "col-leased"
	leased.Headers = map[string]string{"h": "v"}
	leased.Payload = raw(`{"x":[1,"two"]}`)
	leased.MaxAttempts = 4
	dead := ports.OutboxMessage{ID: "col-dead", Topic: "conf.columns.dead", Payload: raw(`{}`)}
	f.enqueue(ob, leased, dead)
	claim := f.claimOne(ob, "conf.columns")
	f.clock.Advance(time.Second)
	require.NoError(t, ob.DeadLetter(f.ctx, f.claimOne(ob, "conf.columns.dead").Claim(), "conformance: bad"))

	type row struct {
		id, kind, topic                  string
		key                              sql.NullString
		payload, headers                 []byte
		status                           string
		attempts, maxAttempts            int64
		availableAt                      string
		lockedUntil, claimToken, lastErr sql.NullString
		createdAt, updatedAt             string
	}
	read := func(id string) row {
		var r row
		require.NoError(t, f.db.QueryRowContext(f.ctx,
			"SELECT id, kind, topic, ordering_key, payload, headers, status, attempts, max_attempts, "+
				"available_at, locked_until, claim_token, last_error, created_at, updated_at "+
				"FROM outbox_messages WHERE id = ?", id).Scan(
			&r.id, &r.kind, &r.topic, &r.key, &r.payload, &r.headers, &r.status, &r.attempts, &r.maxAttempts,
			&r.availableAt, &r.lockedUntil, &r.claimToken, &r.lastErr, &r.createdAt, &r.updatedAt))
		return r
	}

	l := read("col-leased")
	require.Equal(t, "job", l.kind)
	require.Equal(t, "conf.columns", l.topic)
	require.Equal(t, "k-1", l.key.String)
	require.JSONEq(t, `{"x":[1,"two"]}`, string(l.payload))
	var headers map[string]string
	require.NoError(t, json.Unmarshal(l.headers, &headers), "headers are stored as JSON")
	require.Equal(t, map[string]string{"h": "v"}, headers)
	require.Equal(t, string(ports.StatusPending), l.status)
	require.EqualValues(t, 1, l.attempts)
	require.EqualValues(t, 4, l.maxAttempts)
	require.Equal(t, core.FormatTime(claim.LockedUntil), l.lockedUntil.String)
	require.NotEmpty(t, l.claimToken.String, "a leased message stores its claim token")
	require.Equal(t, core.FormatTime(clockStart), l.availableAt)

	d := read("col-dead")
	require.Equal(t, "event", d.kind)
	require.Equal(t, string(ports.StatusDead), d.status)
	require.Equal(t, "conformance: bad", d.lastErr.String)
	require.Equal(t, core.FormatTime(clockStart.Add(time.Second)), d.updatedAt, "updated_at is the dead-lettering time")
	require.Equal(t, core.FormatTime(clockStart), d.createdAt)
}

func uniq(ids []string) map[string]struct{} {
	m := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}
