package gormcache

import (
	"errors"

	"gorm.io/gorm"
)

// claim binds the plugin to the first *gorm.DB it is registered on. A
// plugin holds one database's identity, connection pool and transaction
// state; registered on a second database it would serve the first one's
// rows there, so the second registration is an error.
func (p *Plugin) claim(db *gorm.DB) error {
	if p.w.stateInKey && p.tenant == nil {
		return errors.New("gormcache: SessionStateInKey declares that the Tenant function captures connection state, but no Tenant function is set; add gormcache.Tenant(...)")
	}
	if err := p.checkOptions(); err != nil { // misconfig.go
		return err
	}
	if !p.w.registered.CompareAndSwap(false, true) {
		return errors.New("gormcache: this plugin is already registered on another *gorm.DB; create one plugin per database with gormcache.New (the plugins may share one querycache.Cache)")
	}
	p.w.log = db.Logger
	initialized.Add(1) // context marks stop warning that no plugin exists (misconfig.go)
	return nil
}

// unclaim undoes claim, for a registration refused before it changed
// anything.
func (p *Plugin) unclaim() {
	initialized.Add(-1)
	p.w.registered.Store(false)
}
