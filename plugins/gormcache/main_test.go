package gormcache_test

import (
	"os"
	"testing"

	"querycache.dev/internal/testenv"
)

// TestMain splits the package's tests between two processes
// (testenv.MainSplit): its serial tests, which must run alone in their
// process, mostly wait, and took half of CI's time one after the other.
// The second process has a PostgreSQL database of its own: the tests of
// DDL made by another process failed when the other shard's DDL landed in
// the same database. QUERYCACHE_TEST_SHARDS=1 runs them all in one process.
func TestMain(m *testing.M) {
	os.Exit(testenv.MainSplit(m, testenv.Split{Shards: 2, PostgresPerShard: true, Seconds: serialSeconds}))
}

// serialSeconds is what the longest serial tests took under -race
// (issue 8, forty-third session): MainSplit balances them between the
// processes. Round robin had left 262 s of serial tests to one process and
// 169 s to the other.
var serialSeconds = map[string]float64{
	"TestHostileMPPGRedisRestart":                           16.2,
	"TestMultiProcess":                                      13.1,
	"TestHostile35ThreeProcessesSoftDeleteUpsertStress":     12.9,
	"TestRedisFaultKillRestart":                             12.7,
	"TestHostile8SamplerToggleNoFalseStale":                 12.2,
	"TestHostileMPPGWriterProbesLate":                       11.0,
	"TestClosedHandlesAreCollected":                         9.1,
	"TestRedisFaultMaxmemory":                               9.0,
	"TestHostileMPPGKeysDeleted":                            8.8,
	"TestSnapshotBytesBoundsWhatSnapshotsKeep":              8.2,
	"TestLargeResultsStream":                                7.8,
	"TestHostileCellsSnapshotBudgetManyKeys":                7.5,
	"TestHostileHitMemoKeepsBoundValues":                    6.9,
	"TestHostileMPPGCrashMidFill":                           1.6,
	"TestRedisFaultPartition":                               6.5,
	"TestHostile46WriteRecordedDuringCommitApplyLost":       6.3,
	"TestRedisFaultReplica":                                 5.5,
	"TestHostile23WatchRelearnsOnLaggingStandby":            5.4,
	"TestInspectionsStayWithinTheirBudget":                  5.3,
	"TestOutsideWritesMultiProcess":                         4.8,
	"TestHostileMPPGRedisStore":                             4.6,
	"TestHostileMPPGTieredStrict":                           4.5,
	"TestHostileMPPGMixedStrictReader":                      4.4,
	"TestHostileMPPGMixedDefaultReader":                     4.4,
	"TestHostileMPPGTieredDefault":                          4.4,
	"TestHostile9FrontKeepsHeavyInspections":                4.0,
	"TestHostile22DDLCallSpellings":                         3.9,
	"TestReplicaConcurrent":                                 3.9,
	"TestHostile35PausedRedisWriteServedStaleByIdleProcess": 3.8,
	"TestHostile43RGarbageEntries":                          3.7,
	"TestHostile9WritePlansPinOldCatalogStates":             3.6,
	"TestDDLThroughReadPathsIsSeen":                         3.3,
	"TestHostile50CommitFenceOtherProcessStale":             3.0,
	"TestHostile50CommitFenceRememberStaleAfterLanding":     3.0,
	"TestStampedeAcrossProcesses":                           3.0,
	"TestOutsideWritesPgxAndPsql":                           2.9,
	"TestHostile43RGarbageVersions":                         2.8,
	"TestHostile50ReplicaFenceShapes":                       2.3,
	"TestHostile9CatalogTimerAgesFactsEndToEnd":             2.2,
	"TestHostile44StatementAfterCommitFencesForever":        2.1,
	"TestHostile14WritePathsAgainstDatabase":                2.1,
	"TestHostile50ScsLearnedLateKeepsMemoizedInspection":    2.1,
	"Example":                                           2.0,
	"TestOutsideWritesListenerTerminated":               2.0,
	"TestReplicaOtherWriter":                            2.0,
	"TestHostile20TriggerBodyConditionalWrites":         1.9,
	"TestHostileReplicaWriteDuringActivation":           1.8,
	"TestDerivedRelationsAndArrayTimeWords":             1.7,
	"TestHostileReplicaTransactionOnStandby":            1.7,
	"TestHostileReplicaUnknownFenceResolvedByOlderRead": 1.7,
	"TestHostile12CoverageAssociations":                 1.6,
	"TestHostileOutsideWrites":                          1.6,
	"TestHostile17PgCatalogViewWriter":                  1.6,
	"TestHostile22DefaultChangedLater":                  1.6,
	"TestHostileReplicaDedicatedConnection":             1.5,
	"TestHostile22CommonTriggerWhenKeepsOtherTables":    1.5,
}
