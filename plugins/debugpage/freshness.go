package debugpage

import (
	"html/template"
	"time"

	"querycache.dev/plugins/gormcache"
)

// FreshnessSection is the freshness sampler's report
// (gormcache.FreshnessReport, summed over the plugins): a sample of cache
// hits re-run on the database and compared.
type FreshnessSection struct {
	// Available is false when no plugin was given to the handler.
	Available bool   `json:"available"`
	Note      string `json:"note,omitempty"`
	// Enabled is true when a plugin samples (gormcache.SampleFreshness).
	Enabled     bool      `json:"enabled"`
	Rate        int       `json:"rate"`
	Sampled     uint64    `json:"sampled"`
	Matched     uint64    `json:"matched"`
	Stale       uint64    `json:"stale"`
	Explained   uint64    `json:"explained"`
	Unconfirmed uint64    `json:"unconfirmed"`
	Skipped     uint64    `json:"skipped"`
	Dropped     uint64    `json:"dropped"`
	Errors      uint64    `json:"errors"`
	InFlight    int       `json:"in_flight"`
	Recent      []Finding `json:"recent"`
}

// Finding is one confirmed stale hit (gormcache.StaleFinding), newest
// first.
type Finding struct {
	Time         time.Time `json:"time"`
	SQL          string    `json:"sql"`
	Tables       []string  `json:"tables"`
	MoreTables   int       `json:"more_tables,omitempty"` // tables left out (gormcache.MaxShapeTables)
	CachedRows   int       `json:"cached_rows"`
	DatabaseRows int       `json:"database_rows"`
	// DatabaseRowsAtLeast: DatabaseRows is a lower bound (the check
	// stopped counting at gormcache.MaxCountedRows).
	DatabaseRowsAtLeast bool `json:"database_rows_at_least,omitempty"`
}

func (h *handler) freshness() FreshnessSection {
	if len(h.plugins) == 0 {
		return FreshnessSection{Note: "no gormcache plugin was given to the handler: debugpage.Handler(cache, plugin)", Recent: []Finding{}}
	}
	f := FreshnessSection{Available: true, Recent: []Finding{}}
	var sum gormcache.FreshnessReport
	for _, p := range h.plugins {
		r := p.Freshness()
		if !r.Enabled {
			continue
		}
		sum.Add(r)
		for i := len(r.Recent) - 1; i >= 0; i-- {
			s := r.Recent[i]
			// The plugin masked the finding's literals already, in its
			// own dialect (it never keeps them).
			f.Recent = append(f.Recent, Finding{Time: s.Time, SQL: s.SQL, Tables: s.Tables, MoreTables: s.MoreTables, CachedRows: s.CachedRows, DatabaseRows: s.DatabaseRows, DatabaseRowsAtLeast: s.DatabaseRowsAtLeast})
		}
	}
	f.Enabled, f.Rate, f.InFlight = sum.Enabled, sum.Rate, sum.InFlight
	f.Sampled, f.Matched, f.Stale, f.Explained = sum.Sampled, sum.Matched, sum.Stale, sum.Explained
	f.Unconfirmed, f.Skipped, f.Dropped, f.Errors = sum.Unconfirmed, sum.Skipped, sum.Dropped, sum.Errors
	if !f.Enabled {
		f.Note = "off: enable it with gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 100}) to re-run 1 hit in 100 on the database and compare"
	}
	return f
}

var _ = template.Must(pageTemplate.New("freshness").Parse(`{{if not .Available}}<p class="na" data-na="freshness">Freshness sampler: {{.Note}}</p>
{{else if not .Enabled}}<p class="na" data-na="freshness">Freshness sampler {{.Note}}</p>
{{else}}<p class="mute">1 hit in {{.Rate}} is re-run on the database and compared with the entry served.</p>
<div class="cards">
<div class="card"><div class="v" data-k="fresh_sampled">{{.Sampled}}</div><div class="k">sampled</div></div>
<div class="card"><div class="v" data-k="fresh_matched">{{.Matched}}</div><div class="k">matched</div></div>
<div class="card"><div class="v{{if .Stale}} alarm{{end}}" data-k="fresh_stale">{{.Stale}}</div><div class="k">stale (confirmed)</div></div>
<div class="card"><div class="v" data-k="fresh_explained">{{.Explained}}</div><div class="k">explained (invalidated within grace)</div></div>
<div class="card"><div class="v" data-k="fresh_unconfirmed">{{.Unconfirmed}}</div><div class="k">unconfirmed</div></div>
<div class="card"><div class="v" data-k="fresh_skipped">{{.Skipped}}</div><div class="k">skipped</div></div>
<div class="card"><div class="v" data-k="fresh_dropped">{{.Dropped}}</div><div class="k">dropped</div></div>
<div class="card"><div class="v" data-k="fresh_errors">{{.Errors}}</div><div class="k">errors</div></div>
<div class="card"><div class="v" data-k="fresh_in_flight">{{.InFlight}}</div><div class="k">in flight</div></div>
</div>
{{if .Recent}}<h3>Stale hits found (newest first)</h3><table><tr><th>time</th><th>query shape</th><th>tables</th><th class="n">cached rows</th><th class="n">database rows</th></tr>
{{range .Recent}}<tr><td class="n"><time datetime="{{iso .Time}}">{{clock .Time}}</time></td><td><code class="sql">{{.SQL}}</code></td><td>{{join .Tables}}{{if .MoreTables}} <span class="mute">(+{{.MoreTables}} more)</span>{{end}}</td><td class="n">{{rows .CachedRows}}</td><td class="n">{{if .DatabaseRowsAtLeast}}≥ {{end}}{{rows .DatabaseRows}}</td></tr>
{{end}}</table>{{else}}<p class="mute">no stale hit found</p>{{end}}
{{end}}`))
