package invalidation

// SwitchOffSQLitePollInvalidation makes p invalidate nothing (it still
// suspends and resumes): tests show that they fail without the
// invalidation. Call it before Start.
func SwitchOffSQLitePollInvalidation(p *SQLitePoller) { p.noInvalidate = true }

// SetSQLitePollAfterRecover calls f between a recovery's invalidation and
// its resume, on the poller's goroutine. Call it before Start.
func SetSQLitePollAfterRecover(p *SQLitePoller, f func()) { p.afterRecover = f }
