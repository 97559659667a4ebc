package main

// The bench's results: per request kind statistics, the side-by-side text
// table, the "SLOWER with the cache" lines, and the self-contained HTML
// report with its latency plots (inline SVG, no script).

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// kindStats summarises one request kind (or an aggregate row) in one phase.
type kindStats struct {
	Name      string
	Aggregate bool // "reads", "writes", "all"
	Write     bool
	N         int
	Errors    int
	P50, P90  time.Duration
	P99       time.Duration
	PerSec    float64
	// StmtsPerReq is the mean number of statements a request sent to the
	// database.
	StmtsPerReq  float64
	Hits, Misses int64
	lats         []time.Duration // sorted
}

// HitRatio is hits / (hits + misses) of the request's cacheable
// statements; ok is false when none was looked up.
func (k kindStats) HitRatio() (ratio float64, ok bool) {
	if k.Hits+k.Misses == 0 {
		return 0, false
	}
	return float64(k.Hits) / float64(k.Hits+k.Misses), true
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// summarize computes each kind's row, then the aggregates: reads, writes
// (when any ran) and all.
func summarize(pr *phaseResult, kinds []requestKind) []kindStats {
	rows := make([]kindStats, len(kinds)+3)
	for i, k := range kinds {
		rows[i] = kindStats{Name: k.Name, Write: k.Write}
	}
	reads, writes, all := len(kinds), len(kinds)+1, len(kinds)+2
	rows[reads] = kindStats{Name: "reads", Aggregate: true}
	rows[writes] = kindStats{Name: "writes", Aggregate: true, Write: true}
	rows[all] = kindStats{Name: "all", Aggregate: true}
	stmts := make([]int64, len(rows))
	for _, s := range pr.samples {
		agg := reads
		if kinds[s.kind].Write {
			agg = writes
		}
		for _, i := range []int{int(s.kind), agg, all} {
			r := &rows[i]
			r.N++
			if s.failed {
				r.Errors++
			}
			r.lats = append(r.lats, s.lat)
			stmts[i] += int64(s.statements)
			r.Hits += int64(s.hits)
			r.Misses += int64(s.misses)
		}
	}
	secs := pr.elapsed.Seconds()
	for i := range rows {
		r := &rows[i]
		slices.Sort(r.lats)
		r.P50, r.P90, r.P99 = percentile(r.lats, .50), percentile(r.lats, .90), percentile(r.lats, .99)
		if secs > 0 {
			r.PerSec = float64(r.N) / secs
		}
		if r.N > 0 {
			r.StmtsPerReq = float64(stmts[i]) / float64(r.N)
		}
	}
	if rows[writes].N == 0 {
		rows = slices.Delete(rows, writes, writes+1)
	}
	return rows
}

// slowerLines says, for every request kind (and all requests together)
// whose cached p50 or p99 is above the uncached one, that caching made it
// slower. Kinds that ran in only one phase are not compared.
func slowerLines(uncached, cached []kindStats) []string {
	var out []string
	for _, c := range cached {
		if c.Aggregate && c.Name != "all" {
			continue
		}
		i := slices.IndexFunc(uncached, func(u kindStats) bool { return u.Name == c.Name })
		if i < 0 {
			continue
		}
		u := uncached[i]
		if u.N == 0 || c.N == 0 {
			continue
		}
		var what []string
		if c.P50 > u.P50 {
			what = append(what, fmt.Sprintf("p50 %s -> %s (%s)", fmtDur(u.P50), fmtDur(c.P50), fmtChange(u.P50, c.P50)))
		}
		if c.P99 > u.P99 {
			what = append(what, fmt.Sprintf("p99 %s -> %s (%s)", fmtDur(u.P99), fmtDur(c.P99), fmtChange(u.P99, c.P99)))
		}
		if len(what) > 0 {
			name := c.Name
			if c.Name == "all" {
				name = "all requests"
			} else if c.Write {
				name += " (write)"
			}
			out = append(out, fmt.Sprintf("SLOWER with the cache: %s: %s", name, strings.Join(what, ", ")))
		}
	}
	return out
}

// fmtChange is b relative to a: "+12%" or "-85%" or "8.1x faster".
func fmtChange(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	if b < a && float64(a)/float64(b) >= 2 {
		return fmt.Sprintf("%.1fx faster", float64(a)/float64(b))
	}
	return fmt.Sprintf("%+.0f%%", (float64(b)/float64(a)-1)*100)
}

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}

func fmtHit(k kindStats) string {
	r, ok := k.HitRatio()
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", r*100)
}

func rowName(k kindStats) string {
	switch {
	case k.Aggregate:
		return "= " + k.Name
	case k.Write:
		return k.Name + " (w)"
	}
	return k.Name
}

// writeTextReport prints the header, the side-by-side table (uncached ->
// cached in each cell), the slower lines and the errors.
func writeTextReport(w io.Writer, res *benchResult) {
	cfg := res.cfg
	fmt.Fprintf(w, "querycache bench: %s\n", res.title)
	fmt.Fprintf(w, "%d users (ramp %v, not measured), %v measured per phase, write ratio %.2f, seed %d; each cell: uncached -> cached\n\n",
		cfg.users, cfg.ramp, cfg.duration, cfg.writeRatio, cfg.seed)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "request\trequests\tp50\tp90\tp99\treq/s\tstatements/req\thit ratio")
	for i, c := range res.cacheK {
		u := res.uncachedK[i]
		fmt.Fprintf(tw, "%s\t%d -> %d\t%s -> %s\t%s -> %s\t%s -> %s\t%.0f -> %.0f\t%.2f -> %.2f\t%s\n",
			rowName(c), u.N, c.N, fmtDur(u.P50), fmtDur(c.P50), fmtDur(u.P90), fmtDur(c.P90),
			fmtDur(u.P99), fmtDur(c.P99), u.PerSec, c.PerSec, u.StmtsPerReq, c.StmtsPerReq, fmtHit(c))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	all := res.cacheK[len(res.cacheK)-1]
	allU := res.uncachedK[len(res.uncachedK)-1]
	fmt.Fprintf(w, "throughput %.0f -> %.0f req/s (%s), statements per request %.2f -> %.2f, hit ratio %s\n",
		allU.PerSec, all.PerSec, fmtRatio(allU.PerSec, all.PerSec), allU.StmtsPerReq, all.StmtsPerReq, fmtHit(all))
	st := res.cached.stats
	fmt.Fprintf(w, "cache: %d hits, %d misses, %d invalidations, %d store errors\n", st.Hits, st.Misses, st.Invalidations, st.Errors)
	lines := slowerLines(res.uncachedK, res.cacheK)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if len(lines) == 0 {
		fmt.Fprintln(w, "no request kind was slower with the cache (p50 and p99)")
	} else if note := closedLoopNote(res, allU, all); note != "" {
		fmt.Fprintln(w, note)
	}
	for _, p := range []*phaseResult{res.uncached, res.cached} {
		if p.firstErr != nil {
			name := "uncached"
			if p.cached {
				name = "cached"
			}
			n := 0
			for _, e := range p.errors {
				n += e
			}
			fmt.Fprintf(w, "%s phase: %d requests failed; the first: %v\n", name, n, p.firstErr)
		}
	}
}

// closedLoopNote says, when the users never pause (-think 0) and the
// cached phase served many more requests, that its requests ran under more
// load: a slower write may be the price of that, not of the cache alone.
func closedLoopNote(res *benchResult, uncached, cached kindStats) string {
	if res.cfg.think > 0 || uncached.PerSec <= 0 || cached.PerSec < 1.2*uncached.PerSec {
		return ""
	}
	return fmt.Sprintf("(note: the users never pause, so the cached phase ran %.1fx the requests per second of the uncached one, under more contention for the database and the CPU; -think compares at a similar rate)",
		cached.PerSec/uncached.PerSec)
}

func fmtRatio(a, b float64) string {
	if a <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", b/a)
}

// writeHTMLReportFile writes the HTML report to path.
func writeHTMLReportFile(path string, res *benchResult) error {
	var b strings.Builder
	writeHTMLReport(&b, res)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

const (
	colorUncached = "#c0392b"
	colorCached   = "#2471a3"
)

// writeHTMLReport writes a self-contained page: the table with an uncached
// and a cached column per measure, the slower lines, and three plots.
func writeHTMLReport(w io.Writer, res *benchResult) {
	cfg := res.cfg
	e := html.EscapeString
	fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>querycache bench</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
tr.agg td{font-weight:600;background:#fafafa}
.u{color:%s}.c{color:%s}
.slower{color:#b03a2e;font-weight:600}
svg{display:block;margin:1em 0}
</style></head><body>
<h1>querycache bench: before and after</h1>
`, colorUncached, colorCached)
	fmt.Fprintf(w, "<p>%s<br>%d users (ramp %v, not measured), %v measured per phase, write ratio %.2f, seed %d, run at %s.</p>\n",
		e(res.title), cfg.users, cfg.ramp, cfg.duration, cfg.writeRatio, cfg.seed, res.started.UTC().Format(time.RFC3339))

	fmt.Fprint(w, "<table>\n<tr><th rowspan=2>request</th>")
	for _, h := range []string{"requests", "p50", "p90", "p99", "req/s", "statements/req", "hit ratio"} {
		fmt.Fprintf(w, "<th colspan=2>%s</th>", h)
	}
	fmt.Fprint(w, "</tr>\n<tr>")
	for range 7 {
		fmt.Fprint(w, `<th class="u">uncached</th><th class="c">cached</th>`)
	}
	fmt.Fprint(w, "</tr>\n")
	for i, c := range res.cacheK {
		u := res.uncachedK[i]
		cls := ""
		if c.Aggregate {
			cls = ` class="agg"`
		}
		fmt.Fprintf(w, "<tr%s><td>%s</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.0f</td><td>%.0f</td><td>%.2f</td><td>%.2f</td><td>-</td><td>%s</td></tr>\n",
			cls, e(rowName(c)), u.N, c.N, fmtDur(u.P50), fmtDur(c.P50), fmtDur(u.P90), fmtDur(c.P90),
			fmtDur(u.P99), fmtDur(c.P99), u.PerSec, c.PerSec, u.StmtsPerReq, c.StmtsPerReq, fmtHit(c))
	}
	fmt.Fprint(w, "</table>\n")
	lines := slowerLines(res.uncachedK, res.cacheK)
	for _, l := range lines {
		fmt.Fprintf(w, "<p class=\"slower\">%s</p>\n", e(l))
	}
	if len(lines) == 0 {
		fmt.Fprint(w, "<p>No request kind was slower with the cache (p50 and p99).</p>\n")
	} else if note := closedLoopNote(res, res.uncachedK[len(res.uncachedK)-1], res.cacheK[len(res.cacheK)-1]); note != "" {
		fmt.Fprintf(w, "<p>%s</p>\n", e(note))
	}

	all := len(res.cacheK) - 1
	fmt.Fprint(w, "<h2>Latency by percentile, all requests</h2>\n")
	fmt.Fprint(w, percentileSVG([]plotSeries{
		{"uncached", colorUncached, res.uncachedK[all].lats},
		{"cached", colorCached, res.cacheK[all].lats},
	}))
	fmt.Fprint(w, "<h2>p50 and p99 by request kind</h2>\n")
	fmt.Fprint(w, kindBarsSVG(res.uncachedK, res.cacheK))
	fmt.Fprint(w, "<h2>Throughput over the measured time</h2>\n")
	fmt.Fprint(w, timelineSVG(res.uncached, res.cached, cfg.duration))
	fmt.Fprint(w, "<p>Latency is measured per request (a page: all its statements) by each virtual user, from the end of the ramp to the end of the phase. Statements are counted below the cache; the hit ratio counts the cache's answers to the request's cacheable statements. Uncached: the application without the plugin; cached: with it and the memory store, starting empty.</p>\n</body></html>\n")
}

type plotSeries struct {
	name  string
	color string
	lats  []time.Duration // sorted
}

// svg geometry shared by the plots.
const (
	svgW, svgH                 = 860, 340
	padL, padR, padT, padB     = 70, 130, 20, 45
	plotW, plotH           int = svgW - padL - padR, svgH - padT - padB
)

// logScale maps latencies to y on a log axis covering lo..hi.
type logScale struct{ lo, hi float64 }

func newLogScale(ds ...time.Duration) logScale {
	lo, hi := math.Inf(1), 0.0
	for _, d := range ds {
		if d <= 0 {
			continue
		}
		lo, hi = math.Min(lo, float64(d)), math.Max(hi, float64(d))
	}
	if hi == 0 {
		lo, hi = 1e3, 1e6
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	return logScale{lo, hi}
}

func (s logScale) y(d time.Duration) float64 {
	v := math.Max(float64(d), s.lo)
	return float64(padT+plotH) - (math.Log10(v)-math.Log10(s.lo))/(math.Log10(s.hi)-math.Log10(s.lo))*float64(plotH)
}

// yAxis draws the decades of the log scale.
func (s logScale) yAxis(b *strings.Builder) {
	for v := s.lo; v <= s.hi*1.0001; v *= 10 {
		y := s.y(time.Duration(v))
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end" font-size="11">%s</text>`+"\n",
			padL, y, padL+plotW, y, padL-6, y+4, fmtDur(time.Duration(v)))
	}
}

func svgOpen(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" font-family="sans-serif">`+"\n",
		svgW, svgH, svgW, svgH, html.EscapeString(label))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", padL, padT, plotW, plotH)
}

func legend(b *strings.Builder, i int, name, color string) {
	x, y := padL+plotW+15, padT+15+i*20
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d" font-size="12">%s</text>`+"\n", x, y-4, color, x+20, y, html.EscapeString(name))
}

// percentileSVG plots latency (log) against percentile on a "nines" axis
// (0, 50, 90, 99, 99.9), where the tail takes as much room as the body.
func percentileSVG(series []plotSeries) string {
	var b strings.Builder
	svgOpen(&b, "latency by percentile")
	var ends []time.Duration
	for _, s := range series {
		if len(s.lats) > 0 {
			ends = append(ends, s.lats[0], s.lats[len(s.lats)-1])
		}
	}
	ys := newLogScale(ends...)
	ys.yAxis(&b)
	const maxNines = 3.0 // up to p99.9
	x := func(p float64) float64 {
		n := -math.Log10(1 - p)
		return float64(padL) + math.Min(n, maxNines)/maxNines*float64(plotW)
	}
	for _, t := range []struct {
		p     float64
		label string
	}{{0, "p0"}, {.5, "p50"}, {.9, "p90"}, {.99, "p99"}, {.999, "p99.9"}} {
		xx := x(t.p)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle" font-size="11">%s</text>`+"\n",
			xx, padT, xx, padT+plotH, xx, padT+plotH+16, t.label)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="12">percentile</text>`+"\n", padL+plotW/2, svgH-8)
	for i, s := range series {
		legend(&b, i, s.name, s.color)
		if len(s.lats) == 0 {
			continue
		}
		var pts []string
		for j := 0; j <= 300; j++ {
			p := 1 - math.Pow(10, -maxNines*float64(j)/300)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p), ys.y(percentile(s.lats, p))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`+"\n", s.color, strings.Join(pts, " "), html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// kindBarsSVG draws, per request kind, the uncached and cached p50 (solid)
// and p99 (whisker) on a log axis.
func kindBarsSVG(uncached, cached []kindStats) string {
	var b strings.Builder
	svgOpen(&b, "p50 and p99 by request kind")
	var ds []time.Duration
	var kinds []int
	for i, c := range cached {
		if c.N == 0 || uncached[i].N == 0 {
			continue
		}
		kinds = append(kinds, i)
		ds = append(ds, c.P50, c.P99, uncached[i].P50, uncached[i].P99)
	}
	ys := newLogScale(ds...)
	ys.yAxis(&b)
	if len(kinds) > 0 {
		slot := float64(plotW) / float64(len(kinds))
		bw := math.Min(slot/3, 40)
		for j, i := range kinds {
			x0 := float64(padL) + slot*float64(j) + slot/2
			for side, k := range []kindStats{uncached[i], cached[i]} {
				color := colorUncached
				if side == 1 {
					color = colorCached
				}
				x := x0 - bw + float64(side)*bw
				y50, y99 := ys.y(k.P50), ys.y(k.P99)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.85"><title>%s p50 %s</title></rect>`+"\n",
					x+1, y50, bw-2, float64(padT+plotH)-y50, color, html.EscapeString(k.Name), fmtDur(k.P50))
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"><title>%s p99 %s</title></line>`+"\n",
					x+bw/2, y50, x+bw/2, y99, color, html.EscapeString(k.Name), fmtDur(k.P99))
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", x+3, y99, x+bw-3, y99, color)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="11">%s</text>`+"\n", x0, padT+plotH+16, html.EscapeString(rowName(cached[i])))
		}
	}
	legend(&b, 0, "uncached", colorUncached)
	legend(&b, 1, "cached", colorCached)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">bar: p50</text><text x="%d" y="%d" font-size="11">whisker: p99</text>`+"\n",
		padL+plotW+15, padT+70, padL+plotW+15, padT+86)
	b.WriteString("</svg>\n")
	return b.String()
}

// timelineSVG plots requests per second over the measured time, in
// buckets of a tenth of it (at least 100 ms).
func timelineSVG(uncached, cached *phaseResult, d time.Duration) string {
	var b strings.Builder
	svgOpen(&b, "throughput over time")
	bucket := max(d/20, 100*time.Millisecond)
	nb := int((d + bucket - 1) / bucket)
	counts := func(p *phaseResult) []float64 {
		c := make([]float64, nb)
		for _, s := range p.samples {
			if i := int(s.at / bucket); i >= 0 && i < nb {
				c[i]++
			}
		}
		for i := range c {
			c[i] /= bucket.Seconds()
		}
		return c
	}
	cu, cc := counts(uncached), counts(cached)
	top := 1.0
	for i := range cu {
		top = math.Max(top, math.Max(cu[i], cc[i]))
	}
	top = niceCeil(top)
	y := func(v float64) float64 { return float64(padT+plotH) - v/top*float64(plotH) }
	x := func(i int) float64 { return float64(padL) + (float64(i)+0.5)/float64(nb)*float64(plotW) }
	for k := 0; k <= 4; k++ {
		v := top * float64(k) / 4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end" font-size="11">%.0f/s</text>`+"\n",
			padL, y(v), padL+plotW, y(v), padL-6, y(v)+4, v)
	}
	for k := 0; k <= 4; k++ {
		xx := float64(padL) + float64(k)/4*float64(plotW)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="11">%.3gs</text>`+"\n", xx, padT+plotH+16, d.Seconds()*float64(k)/4)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="12">time since the end of the ramp</text>`+"\n", padL+plotW/2, svgH-8)
	for i, s := range []struct {
		name, color string
		v           []float64
	}{{"uncached", colorUncached, cu}, {"cached", colorCached, cc}} {
		legend(&b, i, s.name, s.color)
		var pts []string
		for j, v := range s.v {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(j), y(v)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
