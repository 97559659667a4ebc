package gormcache

import (
	"fmt"
	"math"
	"strings"
)

// A cache does not always pay: a hit costs a store lookup, decoding and
// scanning, and a query that is cheap on the database (a primary key read
// of a small table, on a fast local database, with a remote store) can
// cost less than its hit. The plugin measures both per query shape
// (shapes.go) and, with DeclineUnprofitable, stops caching the shapes for
// which caching does not pay.

// DeclineOptions tune DeclineUnprofitable. Zero fields take the defaults.
type DeclineOptions struct {
	// MinSamples is how many measured hits and measured misses a shape
	// needs before it is judged, and how many new measurements it needs
	// before its judgement changes again; also how many probes in a row
	// that miss (measuring no hit) end a decline. Default 20.
	MinSamples int
	// DeclineAt: a shape is declined when the moving average of its hit
	// cost reaches DeclineAt × the moving average of its database time.
	// Default 0.8 (a hit that saves less than a fifth of the query).
	DeclineAt float64
	// ResumeAt: a declined shape is cached again when its hit cost falls
	// to ResumeAt × its database time (its table grew, say). Default 0.5,
	// or 5/8 of DeclineAt when DeclineAt is below the default 0.8 (a
	// DeclineAt of 0.4 alone was refused for the ResumeAt the user never
	// set); it must be below DeclineAt, so that a shape near one
	// threshold does not flap.
	ResumeAt float64
	// ProbeEvery: one statement in ProbeEvery of a declined shape still
	// goes through the cache, to keep measuring both costs. Default 16.
	ProbeEvery int
}

func (o DeclineOptions) withDefaults() DeclineOptions {
	if o.MinSamples <= 0 {
		o.MinSamples = 20
	}
	if o.DeclineAt <= 0 {
		o.DeclineAt = 0.8
	}
	if o.ResumeAt <= 0 {
		o.ResumeAt = min(0.5, o.DeclineAt*5/8)
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = 16
	}
	return o
}

// DeclineUnprofitable stops caching the query shapes whose hits are not
// clearly cheaper than their database time (see DeclineOptions): their
// statements go to the database, each counted as a refusal with reason
// "does_not_pay", except one in ProbeEvery that still uses the cache and
// keeps both costs measured, so that a shape whose query grows costly
// comes back. Off by default; ShapeReport lists such shapes either way.
func DeclineUnprofitable(opts DeclineOptions) Option {
	return func(p *Plugin) {
		// An Option may configure several plugins, at once: each gets its
		// own copy, and what the Option captured is never written.
		// Zero means the default; a negative or not-a-number value is a
		// mistake, not a request for the default (NaN compared false with
		// every cost, which switched the rule off without a word:
		// TestHostile47DeclineNegativeOptions).
		var bad []string
		if opts.MinSamples < 0 {
			bad = append(bad, fmt.Sprintf("MinSamples %d", opts.MinSamples))
		}
		if opts.ProbeEvery < 0 {
			bad = append(bad, fmt.Sprintf("ProbeEvery %d", opts.ProbeEvery))
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"DeclineAt", opts.DeclineAt}, {"ResumeAt", opts.ResumeAt}} {
			if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				bad = append(bad, fmt.Sprintf("%s %g", f.name, f.v))
			}
		}
		if len(bad) > 0 {
			p.optionError(fmt.Errorf("gormcache.DeclineUnprofitable: %s: give positive finite values, or 0 for the defaults (MinSamples 20, DeclineAt 0.8, ResumeAt 0.5, ProbeEvery 16)", strings.Join(bad, ", ")))
			return
		}
		o := opts.withDefaults()
		if o.ResumeAt >= o.DeclineAt {
			p.optionError(fmt.Errorf("gormcache.DeclineUnprofitable: ResumeAt (%g) must be below DeclineAt (%g)", o.ResumeAt, o.DeclineAt))
			return
		}
		p.shapes.decline.Store(&o)
	}
}

// options are the decline thresholds in force, the defaults when the rule
// is off.
func (r *shapeRegistry) options() DeclineOptions {
	if o := r.decline.Load(); o != nil {
		return *o
	}
	return DeclineOptions{}.withDefaults()
}

// declines reports whether planFor refuses this statement of the shape:
// one atomic load unless the shape is declined, when every ProbeEvery-th
// statement is let through.
func (s *shape) declines() bool {
	if s == nil || !s.declined.Load() {
		return false
	}
	o := s.reg.decline.Load()
	return o != nil && s.probes.Add(1)%uint64(o.ProbeEvery) != 0
}

// judge decides, after a new measurement, whether the shape is declined:
// with two thresholds, and only after MinSamples measurements since the
// last change.
func (s *shape) judge() {
	o := s.reg.decline.Load()
	if o == nil || s.id == "" { // off, or the "(other)" bucket (many shapes)
		return
	}
	hn, mn := s.hitN.Load(), s.missN.Load()
	min := uint64(o.MinSamples)
	if hn < min || mn < min || hn+mn < s.flipAt.Load()+min { // no unsigned wrap: blindProbe resets hitN
		return
	}
	h, m := float64(s.hitNs.Load()), float64(s.missNs.Load())
	if s.declined.Load() {
		if h <= o.ResumeAt*m && s.declined.CompareAndSwap(true, false) {
			s.flipAt.Store(hn + mn)
		}
	} else if h >= o.DeclineAt*m && s.declined.CompareAndSwap(false, true) {
		s.flipAt.Store(hn + mn)
		s.blind.Store(0) // blindProbe counts this decline's probes
	}
}

// blindProbe notes a miss of the shape. A declined shape's probes measure
// its hit cost only when they hit; with a write between any two probes
// every probe misses, and a decline decided on a wrong hit cost (one slow
// sample) would stand for good. So a decline expires: after MinSamples
// probes in a row that missed, the shape's hit statistics are reset and
// it is cached again (counted in ShapeStats.DeclinesExpired). It is judged
// again only once MinSamples new hits are measured, so a shape that truly
// does not pay is declined again then, after one round of caching
// (TestHostile50ObsDeclineForeverAfterOneSlowFirstHit).
func (s *shape) blindProbe() {
	if !s.declined.Load() {
		return
	}
	o := s.reg.decline.Load()
	if o == nil || s.blind.Add(1) < uint64(o.MinSamples) {
		return
	}
	if !s.declined.CompareAndSwap(true, false) {
		return // resumed or expired meanwhile
	}
	s.blind.Store(0)
	s.hitNs.Store(0)
	s.hitN.Store(0)
	s.flipAt.Store(s.missN.Load())
	s.expired.Add(1)
}
