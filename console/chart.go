package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartWidth  = 600
	chartHeight = 120
	barSlot     = chartWidth / chartMinutes
)

// chart is the overview's chart of the last hour, drawn by the template
// as SVG (no script draws it).
type chart struct {
	// Metered: counted by a Meter from the relays; otherwise sampled from
	// the counts.
	Metered bool
	Bars    []bar
	// Totals of the hour.
	Delivered, Retried, Dead, Failed int64
	// Peak is the tallest bar's value, the top of the scale.
	Peak int64
	// Backlog is an SVG polyline of the pending backlog (sampled only).
	Backlog     string
	BacklogPeak int64
	// Known counts the minutes with data.
	Known int
}

// bar is one minute: delivered at the bottom, failed stacked above.
type bar struct {
	X, W              float64
	DeliveredY, DelH  float64
	FailedY, FailedH  float64
	Title             string
	Known             bool
	Delivered, Failed int64
}

func scale(v, peak int64) float64 {
	if peak <= 0 {
		return 0
	}
	return float64(v) * (chartHeight - 4) / float64(peak)
}

func meteredChart(m []MinuteCounts) chart {
	c := chart{Metered: true}
	for _, x := range m {
		c.Delivered += x.Delivered
		c.Retried += x.Retried
		c.Dead += x.Dead
		c.Peak = max(c.Peak, x.Delivered+x.Failed())
	}
	c.Failed = c.Retried + c.Dead
	for i, x := range m {
		b := bar{X: float64(i*barSlot) + 1, W: barSlot - 2, Known: true, Delivered: x.Delivered, Failed: x.Failed()}
		b.DelH = scale(x.Delivered, c.Peak)
		b.FailedH = scale(x.Failed(), c.Peak)
		b.DeliveredY = chartHeight - b.DelH
		b.FailedY = b.DeliveredY - b.FailedH
		b.Title = fmt.Sprintf("%s UTC: %d delivered, %d failed (%d retried, %d dead-lettered)",
			x.Start.Format("15:04"), x.Delivered, x.Failed(), x.Retried, x.Dead)
		c.Known++
		c.Bars = append(c.Bars, b)
	}
	return c
}

func sampledChart(m []sampledMinute) chart {
	c := chart{}
	for _, x := range m {
		c.Dead += x.Dead
		c.Peak = max(c.Peak, x.Dead)
		c.BacklogPeak = max(c.BacklogPeak, x.Pending)
	}
	c.Failed = c.Dead
	var pts []string
	for i, x := range m {
		b := bar{X: float64(i*barSlot) + 1, W: barSlot - 2, Known: x.Known, Failed: x.Dead}
		if !x.Known {
			b.Title = x.Start.Format("15:04") + " UTC: not sampled (the console was not open)"
			c.Bars = append(c.Bars, b)
			continue
		}
		c.Known++
		b.FailedH = scale(x.Dead, c.Peak)
		b.FailedY = chartHeight - b.FailedH
		b.Title = fmt.Sprintf("%s UTC: %d dead-lettered, %d pending", x.Start.Format("15:04"), x.Dead, x.Pending)
		c.Bars = append(c.Bars, b)
		y := chartHeight - 2 - scale(x.Pending, c.BacklogPeak)
		if c.BacklogPeak == 0 {
			y = chartHeight - 2
		}
		pts = append(pts, strconv.FormatFloat(b.X+b.W/2, 'f', 1, 64)+","+strconv.FormatFloat(y, 'f', 1, 64))
	}
	c.Backlog = strings.Join(pts, " ")
	return c
}

// axisLabels are the times under the chart: an hour ago, half an hour
// ago, now.
func axisLabels(now time.Time) [3]string {
	return [3]string{
		now.Add(-59 * time.Minute).UTC().Format("15:04"),
		now.Add(-30 * time.Minute).UTC().Format("15:04"),
		now.UTC().Format("15:04"),
	}
}
