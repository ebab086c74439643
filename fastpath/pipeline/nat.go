package pipeline

import (
	"github.com/ringnet/ringnet/tables/service"
)

// SetServices publishes the services the fast path load-balances (nil:
// none). The first call with a table makes the connection tracking
// table, as SetPolicy does.
func (d *Dataplane) SetServices(t *service.Table) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t != nil {
		if err := d.conntrackLocked(); err != nil {
			return err
		}
	}
	d.services.Store(t)
	return nil
}

// Services returns the published service table, nil if none: for the
// agent's views.
func (d *Dataplane) Services() *service.Table { return d.services.Load() }
