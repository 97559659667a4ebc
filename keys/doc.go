// Package keys derives the names querycache stores things under: entry keys
// (a fingerprint of the full statement and its bound values, scoped by a
// prefix and a database identity) and version names (the random tokens an
// entry depends on: per table, per object, per table bulk, and a global
// epoch).
//
// Entry keys isolate (consistency rule C5): two statements that differ in SQL,
// bound values, dialect, database or tenant never share one. Version names
// deliberately do not carry the database identity: sharing a version between
// two databases only over-invalidates, which is always safe.
package keys
