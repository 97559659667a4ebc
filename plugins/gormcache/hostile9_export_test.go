package gormcache

import "time"

// SetCatalogTimerAgeForTest sets the age at which a catalog state's timer
// marks it old (the production path, catalogMaxAge by default; a test's
// SetCatalogMaxAgeForTest bypasses the timer and reads the clock) and
// starts a new state under it.
func SetCatalogTimerAgeForTest(p *Plugin, d time.Duration) {
	p.cat.timerAge = d
	p.cat.forget()
}

// CatalogAgedForTest reports whether the current catalog state's timer
// has fired (without replacing it).
func CatalogAgedForTest(p *Plugin) bool {
	s := p.cat.state.Load()
	return s != nil && s.aged.Load()
}
