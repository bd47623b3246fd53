package outboxsql

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func msgAt(id string, at time.Time, key string) ports.ClaimedMessage {
	return ports.ClaimedMessage{ID: id, AvailableAt: at, CreatedAt: at, Key: key, Attempts: 1, MaxAttempts: 3, LockedUntil: t0.Add(time.Hour)}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	bound := func(at time.Time) string { return core.FormatTime(at.Add(-CursorWindow)) }
	tests := []struct {
		name string
		run  func(t *testing.T, c *cursors)
	}{
		{"FirstClaimScansFromTheStart", func(t *testing.T, c *cursors) {
			from, sweep, _ := c.from("", t0)
			require.False(t, sweep)
			require.Empty(t, from)
		}},
		{"ShortClaimMovesTheCursorToItsNow", func(t *testing.T, c *cursors) {
			c.claimed("", t0, 0, 10, []ports.ClaimedMessage{msgAt("a", t0.Add(-time.Hour), "")})
			from, sweep, _ := c.from("", t0.Add(time.Millisecond))
			require.False(t, sweep, "the first claim scanned from the start: no sweep is due yet")
			require.Equal(t, bound(t0), from)
		}},
		{"FullClaimMovesTheCursorToItsLastMessage", func(t *testing.T, c *cursors) {
			last := t0.Add(-time.Minute)
			c.claimed("", t0, 0, 2, []ports.ClaimedMessage{msgAt("a", t0.Add(-time.Hour), ""), msgAt("b", last, "")})
			from, _, _ := c.from("", t0)
			require.Equal(t, bound(last), from)
		}},
		{"OneSweepIsDueEveryInterval", func(t *testing.T, c *cursors) {
			c.claimed("", t0, 0, 10, nil)
			_, sweep, _ := c.from("", t0.Add(FullScanInterval-time.Microsecond))
			require.False(t, sweep)
			_, sweep, _ = c.from("", t0.Add(FullScanInterval))
			require.True(t, sweep)
			_, sweep, _ = c.from("", t0.Add(2*FullScanInterval))
			require.False(t, sweep, "one sweep at a time")
			c.swept("")
			_, sweep, _ = c.from("", t0.Add(2*FullScanInterval))
			require.True(t, sweep)
			c.swept("")
			_, sweep, _ = c.from("", t0.Add(-time.Second))
			require.True(t, sweep, "a clock that went back sweeps")
		}},
		{"TopicSetsHaveTheirOwnCursor", func(t *testing.T, c *cursors) {
			c.claimed(topicsKey([]string{"b", "a"}), t0, 0, 10, nil)
			from, _, _ := c.from(topicsKey([]string{"a", "b"}), t0)
			require.NotEmpty(t, from, "the order of the topics does not matter")
			from, _, _ = c.from(topicsKey([]string{"c"}), t0)
			require.Empty(t, from, "other topics scan from the start")
		}},
		{"SettlingAKeyedMessageRewindsToIt", func(t *testing.T, c *cursors) {
			k := msgAt("k", t0.Add(-time.Hour), "key")
			u := msgAt("u", t0.Add(-2*time.Hour), "")
			c.claimed("", t0, 0, 10, []ports.ClaimedMessage{u, k})
			c.settled([]string{"u"}, freesKey)
			from, _, _ := c.from("", t0)
			require.Equal(t, bound(t0), from, "an unkeyed completion frees nothing")
			c.settled([]string{"k"}, freesKey)
			from, _, _ = c.from("", t0)
			require.Equal(t, bound(k.AvailableAt), from)
			c.settled([]string{"k"}, freesAll)
			require.Empty(t, c.held, "settled messages are forgotten")
		}},
		{"OnlyAFinalRetryOfAKeyedMessageRewinds", func(t *testing.T, c *cursors) {
			k := msgAt("k", t0.Add(-time.Hour), "key")
			final := msgAt("f", t0.Add(-2*time.Hour), "key")
			final.Attempts = final.MaxAttempts
			c.claimed("", t0, 0, 10, []ports.ClaimedMessage{final, k})
			c.settled([]string{"k"}, freesRetry)
			from, _, _ := c.from("", t0)
			require.Equal(t, bound(t0), from)
			c.settled([]string{"f"}, freesRetry)
			from, _, _ = c.from("", t0)
			require.Equal(t, bound(final.AvailableAt), from)
		}},
		{"RewindUsesTheCreationTimeWhenEarlier", func(t *testing.T, c *cursors) {
			m := msgAt("m", t0.Add(-time.Minute), "key")
			m.CreatedAt = t0.Add(-time.Hour) // retried: available later than created
			c.claimed("", t0, 0, 10, []ports.ClaimedMessage{m})
			c.settled([]string{"m"}, freesKey)
			from, _, _ := c.from("", t0)
			require.Equal(t, bound(m.CreatedAt), from)
		}},
		{"AnOwnLeaseThatExpiredRewindsOnceToItsMessage", func(t *testing.T, c *cursors) {
			m := msgAt("m", t0.Add(-time.Minute), "")
			m.LockedUntil = t0.Add(time.Minute)
			c.claimed("", t0, 0, 10, []ports.ClaimedMessage{m, msgAt("n", t0.Add(-2*time.Minute), "")})
			from, _, _ := c.from("", t0.Add(30*time.Second))
			require.Equal(t, bound(t0), from, "the lease has not expired yet")
			c.extended("m", t0.Add(2*time.Minute))
			from, _, _ = c.from("", t0.Add(90*time.Second))
			require.Equal(t, bound(t0), from, "the extended lease has not expired yet")
			from, _, rewinds := c.from("", t0.Add(3*time.Minute))
			require.Equal(t, bound(m.AvailableAt), from, "the expired lease's message is claimable again")
			c.claimed("", t0.Add(3*time.Minute), rewinds, 10, nil)
			from, _, _ = c.from("", t0.Add(4*time.Minute))
			require.Equal(t, bound(t0.Add(3*time.Minute)), from, "once: the message is forgotten")
			require.Len(t, c.held, 1)
		}},
		{"AClaimDoesNotUndoARewindMadeWhileItRan", func(t *testing.T, c *cursors) {
			c.claimed("", t0, 0, 10, nil)
			_, _, rewinds := c.from("", t0.Add(time.Second))
			c.rewind(t0.Add(-time.Hour)) // a sweep, a release...
			c.claimed("", t0.Add(time.Second), rewinds, 10, nil)
			from, _, _ := c.from("", t0.Add(time.Second))
			require.Equal(t, bound(t0.Add(-time.Hour)), from)
		}},
		{"HeldMessagesAreBounded", func(t *testing.T, c *cursors) {
			old := make([]ports.ClaimedMessage, maxHeld)
			for i := range old {
				old[i] = msgAt(core.NewID(), t0, "")
			}
			c.claimed("", t0, 0, len(old), old)
			later := t0.Add(2 * time.Hour) // every lease above has ended
			c.claimed("", later, 0, 10, []ports.ClaimedMessage{msgAt("new", later, "")})
			require.Len(t, c.held, 1)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newCursors())
		})
	}
}
