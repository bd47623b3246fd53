// Package latency holds bounded-memory latency histograms: a log-linear
// (HDR-style) Histogram with three significant figures, and a rolling
// Window of them. The scenario runner and the harness adapter compute
// their pickup percentiles with these, so that memory does not grow with
// the number of messages.
package latency

import (
	"math"
	"math/bits"
	"time"
)

// Buckets: values below subCount microseconds get a bucket each; above,
// every power-of-two range [2^k, 2^(k+1)) is split into halfCount buckets of
// equal width, so a bucket is never wider than 1/1024 of its values (three
// significant figures, like an HDR histogram with 3 significant digits).
const (
	subBits   = 11
	subCount  = 1 << subBits // 2048
	halfCount = subCount / 2 // 1024
	// maxValue caps recorded values (about 12.7 days in µs); larger ones
	// count as maxValue.
	maxValue = int64(1) << 40
)

// Histogram counts durations at microsecond resolution in log-linear
// buckets. Its memory is bounded by the largest value recorded (about 90 KiB
// for values up to an hour), whatever the number of values. The zero
// value is an empty histogram. It is not safe for concurrent use.
type Histogram struct {
	counts []uint32
	total  uint64
	min    int64
	max    int64
	sum    float64
}

// bucketOf returns the bucket index of v (µs, non-negative).
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits // ≥ 1
	return subCount + (e-1)*halfCount + int(v>>uint(e)) - halfCount
}

// bucketRange returns the lowest value of bucket i and its width (µs).
func bucketRange(i int) (low, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	k := i - subCount
	e := k/halfCount + 1
	m := int64(k%halfCount + halfCount)
	return m << uint(e), int64(1) << uint(e)
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := d.Microseconds()
	if v < 0 {
		v = 0
	}
	if v > maxValue {
		v = maxValue
	}
	i := bucketOf(v)
	if i >= len(h.counts) {
		n := max(2*len(h.counts), i+1, 64)
		grown := make([]uint32, min(n, bucketOf(maxValue)+1))
		copy(grown, h.counts)
		h.counts = grown
	}
	if h.counts[i] == math.MaxUint32 {
		return // saturated bucket: drop rather than wrap
	}
	h.counts[i]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		grown := make([]uint32, len(o.counts))
		copy(grown, h.counts)
		h.counts = grown
	}
	for i, c := range o.counts {
		s := uint64(h.counts[i]) + uint64(c)
		if s > math.MaxUint32 {
			s = math.MaxUint32
		}
		h.counts[i] = uint32(s)
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset empties h, keeping its buckets allocated.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.total, h.min, h.max, h.sum = 0, 0, 0, 0
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest value recorded (exact), 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Min is the smallest value recorded (exact), 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) * time.Microsecond }

// Mean is the mean of the values recorded, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum/float64(h.total)) * time.Microsecond
}

// Quantile returns the value at quantile q (0..1, clamped): the middle of
// the bucket that holds the ceil(q·n)-th smallest value, within the exact
// minimum and maximum. It is 0 when h is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			low, width := bucketRange(i)
			v := low + width/2
			v = min(max(v, h.min), h.max)
			return time.Duration(v) * time.Microsecond
		}
	}
	return h.Max()
}

// Millis returns Quantile(q) in milliseconds.
func (h *Histogram) Millis(q float64) float64 {
	return float64(h.Quantile(q)) / float64(time.Millisecond)
}
