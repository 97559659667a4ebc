package gormcache

// SetReplicaActivationHookForTest makes fn run when the replica fence is
// switched on, after the read that detects its mode and before writes
// start recording fences (a write that runs in fn is one that committed
// while the fence was being switched on).
func SetReplicaActivationHookForTest(p *Plugin, fn func()) { p.rf.afterModeRead = fn }

// SetReplicaWriteReadHookForTest makes fn run in a write's fence after
// the primary's position was read and before it is recorded.
func SetReplicaWriteReadHookForTest(p *Plugin, fn func()) { p.rf.afterWriteRead = fn }
