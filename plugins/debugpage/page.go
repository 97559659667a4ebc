package debugpage

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"querycache.dev/querycache"
)

type page struct {
	Snapshot
	Refresh int    // seconds; 0: no reload
	Nonce   string // the page's script's, in its Content-Security-Policy
}

// Kept is how many invalidations the cache remembers.
func (page) Kept() int { return querycache.RecentInvalidationsKept }

var funcs = template.FuncMap{
	"pct": func(r float64) string { return fmt.Sprintf("%.1f%%", 100*r) },
	"dur": fmtDuration,
	"bytes": func(n int) string {
		switch {
		case n <= 0:
			return "–"
		case n < 1<<10:
			return fmt.Sprintf("%d B", n)
		case n < 1<<20:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	},
	"join":  func(s []string) string { return strings.Join(s, ", ") },
	"clock": func(t time.Time) string { return t.Format("15:04:05.000") },
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"ago": func(now, t time.Time) string {
		d := now.Sub(t)
		if d < time.Second {
			return "just now"
		}
		return fmtDuration(d.Truncate(time.Second)) + " ago"
	},
	"sub": func(a, b int) int { return a - b },
	"rows": func(n int) string { // a sampler's row count; negative: not known
		if n < 0 {
			return "?"
		}
		return fmt.Sprint(n)
	},
}

func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Microsecond:
		s = fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		s = fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		s = fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		s = d.Round(time.Millisecond).String()
	}
	if neg {
		return "−" + s
	}
	return s
}

var pageTemplate = template.Must(template.New("page").Funcs(funcs).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · cache debug</title>
{{if .Refresh}}<noscript><meta http-equiv="refresh" content="{{.Refresh}}"></noscript>{{end}}
<style>
:root { --fg:#1d2329; --mute:#66707a; --line:#e3e6ea; --bg:#fff; --head:#f5f7f9; --good:#1a7f37; --bad:#b42318; --warn:#9a6700; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 16px; padding: 10px 20px; border-bottom: 1px solid var(--line); background: var(--head); position: sticky; top: 0; }
header h1 { font-size: 16px; margin: 0; }
header .meta { color: var(--mute); }
header a, header button { color: var(--accent); font: inherit; background: none; border: 0; padding: 0; cursor: pointer; text-decoration: underline; }
main { padding: 6px 20px 30px; max-width: 1400px; }
section { margin-top: 18px; }
h2 { font-size: 14px; margin: 0 0 6px; padding-bottom: 3px; border-bottom: 2px solid var(--line); }
h3 { font-size: 13px; margin: 12px 0 4px; color: var(--mute); font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 104px; }
.card .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: var(--mute); font-size: 11px; text-transform: uppercase; letter-spacing: .03em; }
.card.big .v { font-size: 26px; color: var(--good); }
table { border-collapse: collapse; width: 100%; margin-top: 4px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--head); font-weight: 600; font-size: 12px; white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code.sql { font: 12px/1.35 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap; word-break: break-word; }
meter { width: 70px; height: 10px; vertical-align: middle; }
.mute { color: var(--mute); }
.st-pending { color: var(--bad); font-weight: 600; }
.st-retried { color: var(--warn); }
.st-delivered { color: var(--good); }
.na { border: 1px dashed var(--line); padding: 8px 12px; color: var(--mute); border-radius: 6px; }
.alarm { color: var(--bad); font-weight: 600; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 16px; }
.why { display: block; font-size: 11px; }
.tag { display: inline-block; padding: 0 5px; border-radius: 3px; background: #fdecea; color: var(--bad); font-size: 11px; }
</style>
</head>
<body>
<header>
<h1>{{.Title}} cache</h1>
<span class="meta">at <time id="snapshot-time" datetime="{{iso .Time}}">{{clock .Time}}</time></span>
<span class="meta" id="refresh-state">{{if .Refresh}}reloads every {{.Refresh}} s{{else}}not reloading{{end}}</span>
{{if .Refresh}}<button id="pause" type="button">pause</button>{{end}}
<a href="?format=json">JSON</a>
</header>
<main data-refresh="{{.Refresh}}">

<section id="overview">
<h2>Overview</h2>
{{with .Overview}}
{{if .NoCache}}<p class="na">No cache was given to the handler.</p>{{end}}
<div class="cards">
<div class="card big"><div class="v" data-k="hit_ratio">{{pct .HitRatio}}</div><div class="k">hit ratio</div></div>
<div class="card"><div class="v" data-k="hits">{{.Hits}}</div><div class="k">hits</div></div>
<div class="card"><div class="v" data-k="misses">{{.Misses}}</div><div class="k">misses</div></div>
<div class="card"><div class="v" data-k="fills">{{.Fills}}</div><div class="k">fills (db queries)</div></div>
<div class="card"><div class="v" data-k="shared">{{.Shared}}</div><div class="k">shared fills</div></div>
<div class="card"><div class="v" data-k="bypassed">{{.Bypassed}}</div><div class="k">bypasses</div></div>
<div class="card"><div class="v" data-k="refused">{{.Refused}}</div><div class="k">refusals</div></div>
<div class="card"><div class="v" data-k="invalidations">{{.Invalidations}}</div><div class="k">invalidations</div></div>
<div class="card"><div class="v" data-k="errors">{{.Errors}}</div><div class="k">store errors</div></div>
</div>
<div class="cols">
<div>
<h3>Misses by reason</h3>
{{if .MissReasons}}<table id="miss-reasons"><tr><th>reason</th><th class="n">count</th></tr>
{{range .MissReasons}}<tr data-miss-reason="{{.Name}}"><td>{{.Name}}</td><td class="n">{{.Count}}</td></tr>
{{end}}</table>{{else}}<p class="mute">none</p>{{end}}
</div>
<div>
<h3>Bypasses by reason</h3>
{{if .Bypasses}}<table id="bypasses"><tr><th>reason</th><th class="n">count</th></tr>
{{range .Bypasses}}<tr><td>{{.Name}}</td><td class="n">{{.Count}}</td></tr>
{{end}}</table>{{else}}<p class="mute">none</p>{{end}}
</div>
<div>
<h3>Refusals by reason</h3>
{{if .Refusals}}<table id="refusals"><tr><th>reason</th><th class="n">count</th></tr>
{{range .Refusals}}<tr><td>{{.Name}}</td><td class="n">{{.Count}}</td></tr>
{{end}}</table>{{else}}<p class="mute">none</p>{{end}}
</div>
</div>
{{end}}
</section>

<section id="tables">
<h2>Tables</h2>
{{if .Tables}}<table>
<tr><th>table</th><th class="n">hits</th><th class="n">misses</th><th class="n">hit ratio</th><th></th><th class="n">of the misses, stale</th><th class="n">invalidations</th><th class="n">evictions</th><th class="n">store errors</th></tr>
{{range .Tables}}<tr data-table="{{.Name}}"><td>{{.Name}}</td><td class="n">{{.Hits}}</td><td class="n">{{.Misses}}</td><td class="n">{{pct .HitRatio}}</td><td><meter min="0" max="1" low="0.5" high="0.8" optimum="1" value="{{.HitRatio}}"></meter></td><td class="n">{{.Stale}}</td><td class="n">{{.Invalidations}}</td><td class="n">{{.Evictions}}</td><td class="n">{{.Errors}}</td></tr>
{{end}}</table>{{else}}<p class="mute">no table read or written yet</p>{{end}}
</section>

<section id="shapes">
<h2>Query shapes</h2>
{{with .Shapes}}{{if .Available}}
<p class="mute">{{.Count}} shapes (SQL with placeholders; literals written inline are shown as ?).{{if .Declining}} Unprofitable shapes are declined.{{end}}</p>
<h3>Top by time saved</h3>
{{template "shapes" .ByTimeSaved}}
<h3>Top by misses</h3>
{{template "shapes" .ByMisses}}
<h3>Entry sizes (largest first)</h3>
{{if .BySize}}<table id="sizes"><tr><th>query shape</th><th class="n">last</th><th class="n">average</th><th class="n">largest</th></tr>
{{range .BySize}}<tr data-shape="{{.ID}}"><td><code class="sql">{{.SQL}}</code>{{if .Truncated}} <span class="mute">(truncated)</span>{{end}}</td><td class="n">{{bytes .Bytes}}</td><td class="n">{{bytes .AvgBytes}}</td><td class="n">{{bytes .MaxBytes}}</td></tr>
{{end}}</table>{{else}}<p class="mute">none</p>{{end}}
{{if .NotPaying}}<h3>Not paying (hits cost about as much as the database)</h3>
{{template "shapes" .NotPaying}}{{end}}
{{else}}<p class="na" data-na="shapes">Per shape statistics: {{.Note}}</p>{{end}}{{end}}
</section>

<section id="invalidations">
<h2>Recent invalidations</h2>
{{if .Invalidations}}<table>
<tr><th>time</th><th>cause</th><th>tables</th><th class="n">rows</th><th class="n">versions</th><th>status</th></tr>
{{$now := .Time}}{{range $i, $_ := .Invalidations}}{{if lt $i 25}}<tr><td class="n"><time datetime="{{iso .Time}}">{{clock .Time}}</time> <span class="mute ago">{{ago $now .Time}}</span></td><td>{{if .Cause}}{{.Cause}}{{else}}<span class="mute">(not given)</span>{{end}}</td><td>{{if .All}}<span class="tag">everything</span> {{end}}{{join .Tables}}</td><td class="n">{{if .Rows}}{{.Rows}}{{else}}<span class="mute">whole</span>{{end}}</td><td class="n">{{.Versions}}</td><td>{{template "status" .}}</td></tr>
{{end}}{{end}}</table>{{if gt (len .Invalidations) 25}}<p class="mute">and {{sub (len .Invalidations) 25}} older in <a href="?format=json">JSON</a> (the cache keeps the newest {{.Kept}})</p>{{end}}{{else}}<p class="mute">none yet</p>{{end}}
</section>

<section id="pending">
<h2>Pending (not delivered to the store)</h2>
{{with .Pending}}
<div class="cards">
<div class="card"><div class="v{{if .Count}} alarm{{end}}" data-k="pending">{{.Count}}</div><div class="k">versions pending</div></div>
<div class="card"><div class="v" data-k="held">{{.Held}}</div><div class="k">held (watcher blind)</div></div>
</div>
{{if .Versions}}<h3>Versions (lookups depending on them bypass the cache)</h3><table><tr><th>version</th><th class="n">count</th></tr>
{{range .Versions}}<tr><td><code class="sql">{{.Name}}</code></td><td class="n">{{.Count}}</td></tr>
{{end}}</table>{{end}}
{{if .Changes}}<h3>Changes still pending</h3><table><tr><th>time</th><th>cause</th><th>tables</th><th>first error</th></tr>
{{range .Changes}}<tr><td class="n"><time datetime="{{iso .Time}}">{{clock .Time}}</time></td><td>{{.Cause}}</td><td>{{if .All}}<span class="tag">everything</span> {{end}}{{join .Tables}}</td><td>{{.Error}}</td></tr>
{{end}}</table>{{else}}{{if not .Count}}<p class="mute">nothing pending: every invalidation reached the store</p>{{end}}{{end}}
{{end}}
</section>

<section id="freshness">
<h2>Freshness sampler</h2>
{{template "freshness" .Freshness}}
</section>
</main>
<script nonce="{{.Nonce}}">
(function () {
  var main = document.querySelector("main");
  var refresh = +main.getAttribute("data-refresh");
  var snap = Date.parse(document.getElementById("snapshot-time").getAttribute("datetime"));
  var skew = Date.now() - snap;
  function fmt(s) { return s < 1 ? "just now" : s < 90 ? Math.round(s) + "s ago" : s < 5400 ? Math.round(s / 60) + "m ago" : Math.round(s / 3600) + "h ago"; }
  function tick() {
    var now = Date.now() - skew;
    document.querySelectorAll("tr time").forEach(function (t) {
      var a = t.parentNode.querySelector(".ago");
      if (a) a.textContent = fmt((now - Date.parse(t.getAttribute("datetime"))) / 1000);
    });
  }
  tick();
  setInterval(tick, 1000);
  var timer = null, paused = false;
  function arm() { if (refresh > 0 && !paused) timer = setTimeout(function () { location.reload(); }, refresh * 1000); }
  var btn = document.getElementById("pause");
  if (btn) btn.addEventListener("click", function () {
    paused = !paused;
    clearTimeout(timer);
    btn.textContent = paused ? "resume" : "pause";
    document.getElementById("refresh-state").textContent = paused ? "paused" : "reloads every " + refresh + " s";
    arm();
  });
  arm();
  document.documentElement.setAttribute("data-script", "ran");
})();
</script>
</body>
</html>
{{define "shapes"}}{{if .}}<table class="shapes">
<tr><th>query shape</th><th>tables</th><th class="n">hits</th><th class="n">misses</th><th class="n">hit ratio</th><th class="n">db time</th><th class="n">hit cost</th><th class="n">saved</th><th class="n">entry</th><th>other</th></tr>
{{range .}}<tr data-shape="{{.ID}}"><td><code class="sql">{{.SQL}}</code>{{if .Truncated}} <span class="mute">(truncated)</span>{{end}}</td><td>{{join .Tables}}{{if .MoreTables}} <span class="mute">(+{{.MoreTables}} more)</span>{{end}}</td><td class="n">{{.Hits}}</td><td class="n">{{.Misses}}{{if .MissReasons}}<span class="mute why">{{range $i, $r := .MissReasons}}{{if $i}} · {{end}}{{$r.Name}} {{$r.Count}}{{end}}</span>{{end}}</td><td class="n">{{pct .HitRatio}}</td><td class="n">{{dur .MissTime}}</td><td class="n">{{dur .HitCost}}</td><td class="n">{{dur .Saved}}</td><td class="n">{{bytes .AvgBytes}}</td><td>{{if .Declined}}<span class="tag">declined</span> {{else}}{{if .NotPaying}}<span class="tag">not paying</span> {{end}}{{end}}{{range .Reasons}}<span class="mute">{{.Name}}: {{.Count}}</span> {{end}}</td></tr>
{{end}}</table>{{else}}<p class="mute">none</p>{{end}}{{end}}
{{define "status"}}{{if eq .Status "pending"}}<span class="st-pending">pending</span>{{else if eq .Status "delivered after retry"}}<span class="st-retried">delivered after retry</span>{{else}}<span class="st-delivered">delivered</span>{{end}}{{if .Error}} <span class="mute">{{.Error}}</span>{{end}}{{end}}
`
