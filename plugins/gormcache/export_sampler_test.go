package gormcache

// WaitSamplerForTest waits until the freshness checks in flight have ended.
func WaitSamplerForTest(p *Plugin) { p.waitSampler() }
