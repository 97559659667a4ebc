package gormcache

// SweepForTest runs one sweep of the watch over transactions the plugin
// did not begin (confirming ends, lifting fences) and reports whether
// anything is left to watch.
func SweepForTest(p *Plugin) bool { return p.w.sweep(p) }

// FencesForTest returns the number of live fences.
func FencesForTest(p *Plugin) int { return int(p.w.fenceCount.Load()) }

// SuspendedForTest returns the number of transactions opened by SQL text
// that the plugin believes open.
func SuspendedForTest(p *Plugin) int { return int(p.w.suspended.Load()) }
