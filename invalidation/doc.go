// Package invalidation decides what a write invalidates and when: it turns
// raw SQL into a querycache.Change, and buffers the changes of a transaction
// so that they are applied once, after commit, and dropped on rollback
// (DESIGN.md, "Transactions"). Broadcasting between processes and
// listeners for writes made outside the application belong here too.
package invalidation
