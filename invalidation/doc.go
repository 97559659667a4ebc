// Package invalidation decides what a write invalidates and when: it turns
// raw SQL into a querycache.Change, and buffers the changes of a transaction
// so that they are applied once, after commit, and dropped on rollback
// (DESIGN.md, "Transactions"). The listeners for writes made outside the
// application are here too: the PostgreSQL trigger listener and the SQLite
// data_version poller. Broadcasting between processes is the stores' job
// (querycache's two-level stores).
package invalidation
