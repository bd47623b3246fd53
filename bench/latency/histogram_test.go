package latency

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistogram(t *testing.T) {
	t.Parallel()
	t.Run("BucketsAreContiguousAndNarrow", func(t *testing.T) {
		t.Parallel()
		prevLow, prevWidth := int64(-1), int64(1)
		for i := 0; i <= bucketOf(maxValue); i++ {
			low, width := bucketRange(i)
			require.Equal(t, prevLow+prevWidth, low, "bucket %d starts where %d ends", i, i-1)
			require.Equal(t, i, bucketOf(low))
			require.Equal(t, i, bucketOf(low+width-1))
			if low >= subCount {
				require.LessOrEqual(t, float64(width)/float64(low), 1.0/halfCount, "bucket %d is too wide", i)
			}
			prevLow, prevWidth = low, width
		}
	})
	t.Run("QuantilesMatchSortedValuesWithinPrecision", func(t *testing.T) {
		t.Parallel()
		r := rand.New(rand.NewPCG(1, 2))
		var h Histogram
		vals := make([]time.Duration, 50_000)
		for i := range vals {
			// log-uniform from 10µs to 100s
			vals[i] = time.Duration(10 * float64(time.Microsecond) * math.Pow(10, r.Float64()*7)).Truncate(time.Microsecond)
			h.Record(vals[i])
		}
		slices.Sort(vals)
		require.EqualValues(t, len(vals), h.Count())
		require.Equal(t, vals[0], h.Min())
		require.Equal(t, vals[len(vals)-1], h.Max())
		for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
			rank := int(math.Ceil(q*float64(len(vals)))) - 1
			want := vals[rank]
			got := h.Quantile(q)
			require.InEpsilon(t, float64(want), float64(got), 0.001, "q=%v", q)
		}
	})
	t.Run("EmptyHistogramIsZero", func(t *testing.T) {
		t.Parallel()
		var h Histogram
		require.Zero(t, h.Quantile(0.99))
		require.Zero(t, h.Mean())
		require.Zero(t, h.Count())
	})
	t.Run("NegativeAndHugeValuesAreClamped", func(t *testing.T) {
		t.Parallel()
		var h Histogram
		h.Record(-time.Second)
		h.Record(1000 * 24 * time.Hour)
		require.Equal(t, time.Duration(0), h.Quantile(0))
		require.Equal(t, time.Duration(maxValue)*time.Microsecond, h.Max())
		require.LessOrEqual(t, len(h.counts), bucketOf(maxValue)+1)
	})
	t.Run("MergeEqualsRecordingEverything", func(t *testing.T) {
		t.Parallel()
		var a, b, all Histogram
		for i := 1; i <= 1000; i++ {
			d := time.Duration(i*i) * time.Microsecond
			all.Record(d)
			if i%2 == 0 {
				a.Record(d)
			} else {
				b.Record(d)
			}
		}
		a.Merge(&b)
		require.Equal(t, all.Count(), a.Count())
		require.Equal(t, all.Min(), a.Min())
		require.Equal(t, all.Max(), a.Max())
		for _, q := range []float64{0.5, 0.95, 0.99} {
			require.Equal(t, all.Quantile(q), a.Quantile(q))
		}
		a.Reset()
		require.Zero(t, a.Count())
		require.Zero(t, a.Quantile(0.5))
	})
}

func TestWindow(t *testing.T) {
	t.Parallel()
	t.Run("RejectsBadSpans", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct{ span, slot time.Duration }{{0, time.Second}, {time.Second, 0}, {1500 * time.Millisecond, time.Second}} {
			_, err := NewWindow(c.span, c.slot)
			require.Error(t, err, "span %v slot %v", c.span, c.slot)
		}
	})
	t.Run("ForgetsValuesOlderThanTheSpan", func(t *testing.T) {
		t.Parallel()
		w, err := NewWindow(30*time.Second, time.Second)
		require.NoError(t, err)
		t0 := time.Unix(1_700_000_000, 0)
		w.Record(t0, 10*time.Second) // an outlier that must age out
		for i := 1; i < 30; i++ {
			w.Record(t0.Add(time.Duration(i)*time.Second), time.Millisecond)
		}
		at := t0.Add(29 * time.Second)
		require.EqualValues(t, 30, w.Snapshot(at).Count(), "t0..t0+29s are in the window")
		require.InEpsilon(t, float64(10*time.Second), float64(w.Snapshot(at).Quantile(1)), 0.001)
		for i := 30; i <= 40; i++ {
			w.Record(t0.Add(time.Duration(i)*time.Second), time.Millisecond)
		}
		later := t0.Add(40 * time.Second)
		snap := w.Snapshot(later)
		require.EqualValues(t, 30, snap.Count(), "only the last 30 one-second slots count")
		require.Equal(t, time.Millisecond, snap.Max())
		require.Zero(t, w.Snapshot(t0.Add(200*time.Second)).Count())
	})
	t.Run("IsSafeForConcurrentUse", func(t *testing.T) {
		t.Parallel()
		w, err := NewWindow(5*time.Second, time.Second)
		require.NoError(t, err)
		now := time.Now()
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 1000; i++ {
					w.Record(now, time.Duration(i)*time.Microsecond)
					_ = w.Snapshot(now)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 8000, w.Snapshot(now).Count())
	})
}
