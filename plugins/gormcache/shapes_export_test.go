package gormcache

import "time"

// SetShapeCostForTest makes the shape statistics take the duration of each
// hit and miss from f instead of the clock (call before db.Use).
func SetShapeCostForTest(p *Plugin, f func(ev *Event) time.Duration) { p.shapes.testCost = f }

// WithoutShapesForTest unregisters the shapes observer (after db.Use), for
// benchmarks that measure what it costs.
func WithoutShapesForTest(p *Plugin) { p.shapesOff = true }
