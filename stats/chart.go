package stats

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The charts are inline SVG drawn here and rendered by page.html: no script, nothing fetched, so the
// page's Content-Security-Policy (no script at all) stays as it is. A chart's coordinates are in its
// own units; the page scales it to the column's width.
const (
	chartW, chartH                          = 660, 150
	plotLeft, plotRight, plotTop, plotBelow = 48, 8, 8, 20
)

// chartView is one chart as page.html draws it.
type chartView struct {
	ID, Title      string
	W, H           int
	X0, X1, Y0, Y1 float64 // the plot area
	Lines          []chartLine
	Bands          []chartBand
	YTicks         []chartTick
	XTicks         []chartTick
	Empty          bool // no sample in the window yet
}

// chartLine is one series: a path with a break wherever samples are missing.
type chartLine struct{ Class, Label, D string }

// chartBand is a shaded stretch of time; Title is what hovering it shows.
type chartBand struct {
	Class, Kind string
	X, W        float64
	Title       string
}

// chartTick is a grid line at Pos (x or y) with its label.
type chartTick struct {
	Pos   float64
	Label string
}

// point is one value of a series at a time.
type point struct {
	at time.Time
	v  float64
}

// chartSeries is a series before it is drawn.
type chartSeries struct {
	class, label string
	points       []point
}

// groupCharts draws the group's history: sessions per second per listener, current sessions (and
// clients held), bytes per second, and refusals and errors; for a multiplexed group also its shared
// backend connections and the sessions that left them. Every chart shades the same bands.
func groupCharts(group string, hs *HistorySeries) []chartView {
	every := time.Duration(hs.IntervalSeconds * float64(time.Second))
	perListener := func(col func(ls ListenerSeries, i int) float64) []chartSeries {
		var out []chartSeries
		for _, ls := range hs.Listeners {
			out = append(out, chartSeries{class: "s-" + ls.Role, label: ls.Name, points: column(ls, col)})
		}
		return out
	}
	summed := func(class, label string, col func(ls ListenerSeries, i int) float64) chartSeries {
		return chartSeries{class: class, label: label, points: sumSeries(hs.Listeners, col)}
	}
	current := perListener(func(ls ListenerSeries, i int) float64 { return float64(ls.CurrentSessions[i]) })
	current = append(current, summed("s-held", "held", func(ls ListenerSeries, i int) float64 { return float64(ls.Held[i]) }))
	type spec struct {
		id, title string
		series    []chartSeries
		format    func(float64) string
		ceil      func(float64) float64
	}
	charts := []spec{
		{"sessions", "new sessions /s", perListener(func(ls ListenerSeries, i int) float64 { return ls.SessionsPerSecond[i] }), compact, niceCeil},
		{"current", "current sessions", current, compact, niceCeil},
		{"bytes", "bytes /s (all ports)", []chartSeries{
			summed("s-in", "in (from clients)", func(ls ListenerSeries, i int) float64 { return ls.BytesInPerSecond[i] }),
			summed("s-out", "out (to clients)", func(ls ListenerSeries, i int) float64 { return ls.BytesOutPerSecond[i] }),
		}, compactBytes, niceCeilBytes},
		{"errors", "client errors /s (all ports)", []chartSeries{
			summed("s-refused", "refused", func(ls ListenerSeries, i int) float64 { return ls.RefusedPerSecond[i] }),
			summed("s-connerr", "backend connect errors", func(ls ListenerSeries, i int) float64 { return ls.ConnectErrorsPerSecond[i] }),
			summed("s-tlserr", "TLS handshake errors", func(ls ListenerSeries, i int) float64 { return ls.TLSHandshakeErrorsPerSecond[i] }),
		}, compact, niceCeil},
	}
	if m := hs.Multiplex; m != nil {
		// Two charts, not two lines on one: a count and a rate share no axis, and the pair fills a row.
		charts = append(charts,
			spec{"shared", "shared backend connections", []chartSeries{{class: "s-shared", label: "open to the group's nodes",
				points: pointsOf(m.At, func(i int) float64 { return float64(m.SharedConns[i]) })}}, compact, niceCeil},
			spec{"unshared", "sessions unshared /s", []chartSeries{{class: "s-unshared", label: "moved to a connection of their own",
				points: pointsOf(m.At, func(i int) float64 { return m.SessionsUnsharedPerSecond[i] })}}, compact, niceCeil})
	}
	out := make([]chartView, 0, len(charts))
	for _, c := range charts {
		out = append(out, drawChart("chart-"+group+"-"+c.id, c.title, c.series, hs.Bands, hs.From, hs.To, every, c.format, c.ceil))
	}
	return out
}

func column(ls ListenerSeries, col func(ls ListenerSeries, i int) float64) []point {
	return pointsOf(ls.At, func(i int) float64 { return col(ls, i) })
}

// pointsOf pairs each time with the value of its index in the series' other columns.
func pointsOf(at []time.Time, value func(i int) float64) []point {
	out := make([]point, len(at))
	for i, t := range at {
		out[i] = point{t, value(i)}
	}
	return out
}

// sumSeries adds the listeners' values sample by sample: they are sampled together, at the same time.
func sumSeries(listeners []ListenerSeries, col func(ls ListenerSeries, i int) float64) []point {
	var out []point
	index := map[int64]int{}
	for _, ls := range listeners {
		for i, at := range ls.At {
			j, ok := index[at.UnixNano()]
			if !ok {
				j = len(out)
				index[at.UnixNano()] = j
				out = append(out, point{at: at})
			}
			out[j].v += col(ls, i)
		}
	}
	// A listener added by a reload starts later: keep the points in time order.
	slices.SortFunc(out, func(a, b point) int { return a.at.Compare(b.at) })
	return out
}

// drawChart places the series and bands on a chart of the window [from, to].
func drawChart(id, title string, series []chartSeries, bands []Band, from, to time.Time, every time.Duration,
	format func(float64) string, ceil func(float64) float64) chartView {
	c := chartView{ID: id, Title: title, W: chartW, H: chartH, X0: plotLeft, X1: chartW - plotRight,
		Y0: plotTop, Y1: chartH - plotBelow, Empty: true}
	span := to.Sub(from)
	if span <= 0 {
		return c
	}
	x := func(t time.Time) float64 {
		f := float64(t.Sub(from)) / float64(span)
		return c.X0 + min(max(f, 0), 1)*(c.X1-c.X0)
	}
	top := 0.0
	for _, s := range series {
		for _, p := range s.points {
			top = max(top, p.v)
		}
	}
	top = ceil(top)
	y := func(v float64) float64 { return c.Y1 - v/top*(c.Y1-c.Y0) }
	for _, v := range []float64{0, top / 2, top} {
		c.YTicks = append(c.YTicks, chartTick{Pos: y(v), Label: format(v)})
	}
	for _, t := range timeTicks(from, to) {
		c.XTicks = append(c.XTicks, chartTick{Pos: x(t), Label: tickLabel(t, span)})
	}
	for _, b := range bands {
		x0, x1 := x(b.From), x(b.To)
		if b.To.Before(from) || b.From.After(to) {
			continue
		}
		// At an hour's scale a pixel is 5 s: a switch of a few milliseconds still gets a visible stripe.
		if x1-x0 < 2 {
			x0, x1 = min(x0, c.X1-2), min(x0, c.X1-2)+2
		}
		c.Bands = append(c.Bands, chartBand{Class: "band band-" + b.Kind, Kind: b.Kind, X: x0, W: x1 - x0, Title: b.describe()})
	}
	for _, s := range series {
		c.Lines = append(c.Lines, chartLine{Class: s.class, Label: s.label, D: path(s.points, every, x, y)})
		c.Empty = c.Empty && len(s.points) == 0
	}
	return c
}

// path is an SVG path through the points, lifted where a sample is missing (more than two intervals
// between two points: the proxy was not sampling, or the listener is new).
func path(points []point, every time.Duration, x func(time.Time) float64, y func(float64) float64) string {
	var b strings.Builder
	for i, p := range points {
		cmd := "L"
		if i == 0 || p.at.Sub(points[i-1].at) > 2*every {
			cmd = "M"
		}
		fmt.Fprintf(&b, "%s%.1f %.1f ", cmd, x(p.at), y(p.v))
		if cmd == "M" && (i == len(points)-1 || points[i+1].at.Sub(p.at) > 2*every) {
			fmt.Fprintf(&b, "h1 ") // a lone sample shows as a dot, not as nothing
		}
	}
	return strings.TrimSpace(b.String())
}

// niceCeil is the smallest 1, 2 or 5 × 10^n at or above v, and 1 for nothing: the y axis's top.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	exp := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*exp >= v*(1-1e-9) {
			return m * exp
		}
	}
	return 10 * exp
}

// niceCeilBytes is niceCeil in units of 1024, up to the next unit past 512 of one: 1 MiB, not
// 1,000,000 bytes (977 KiB).
func niceCeilBytes(v float64) float64 {
	unit := 1.0
	for v > 1024*unit {
		unit *= 1024
	}
	n := niceCeil(v / unit)
	if n > 512 {
		n = 1024
	}
	return n * unit
}

// tickSteps are the x axis's grid spacings, the first that gives at most 8 lines is taken.
var tickSteps = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
	30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
	30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour}

// timeTicks are the round times (UTC) within [from, to] at a spacing that gives at most 8 of them.
func timeTicks(from, to time.Time) []time.Time {
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if to.Sub(from)/s <= 8 {
			step = s
			break
		}
	}
	var out []time.Time
	for t := from.UTC().Truncate(step); !t.After(to); t = t.Add(step) {
		if !t.Before(from) {
			out = append(out, t)
		}
	}
	return out
}

func tickLabel(t time.Time, span time.Duration) string {
	if span < 10*time.Minute {
		return t.UTC().Format("15:04:05")
	}
	return t.UTC().Format("15:04")
}

// compact writes an axis value short: 0.25, 12, 1.5k, 3M.
func compact(v float64) string {
	for _, u := range []struct {
		div  float64
		unit string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div {
			return short(v/u.div) + u.unit
		}
	}
	return short(v)
}

// compactBytes is compact for bytes, with binary units as the page's tables use.
func compactBytes(v float64) string {
	for _, u := range []struct {
		div  float64
		unit string
	}{{1 << 40, "Ti"}, {1 << 30, "Gi"}, {1 << 20, "Mi"}, {1 << 10, "Ki"}} {
		if v >= u.div {
			return short(v/u.div) + " " + u.unit + "B"
		}
	}
	return short(v) + " B"
}

// short writes an axis value without an exponent, to three decimals at most: 0.025, 0.25, 2.5, 25, 1000.
func short(v float64) string {
	decimals := 0
	switch {
	case v < 0.1:
		decimals = 3
	case v < 1:
		decimals = 2
	case v < 10:
		decimals = 1
	}
	return strconv.FormatFloat(math.Round(v*math.Pow(10, float64(decimals)))/math.Pow(10, float64(decimals)), 'f', -1, 64)
}
