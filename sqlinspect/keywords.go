package sqlinspect

import "strings"

// keyword identifies a word that matters to the analysis. kwNone is an
// ordinary identifier. The non-deterministic names come last (see
// nondeterministic.go), from kwNondetFirst on.
type keyword uint8

const (
	kwNone keyword = iota

	// Query structure.
	kwAll
	kwAnd
	kwAs
	kwBy
	kwCase
	kwCross
	kwDistinct
	kwDo
	kwElse
	kwEnd
	kwExcept
	kwExists
	kwFetch
	kwFor
	kwFrom
	kwFull
	kwGroup
	kwHaving
	kwIn
	kwInner
	kwIntersect
	kwInto
	kwIs
	kwJoin
	kwKey
	kwLateral
	kwLeft
	kwLimit
	kwNatural
	kwNo
	kwNot
	kwOf
	kwOffset
	kwOn
	kwOnly
	kwOr
	kwOrder
	kwOuter
	kwReturning
	kwRight
	kwSelect
	kwSet
	kwShare
	kwTable
	kwThen
	kwUnion
	kwUsing
	kwValues
	kwWhen
	kwWhere
	kwWindow
	kwWith

	// Data modification.
	kwDelete
	kwInsert
	kwMerge
	kwReplace
	kwUpdate
	kwUpsert

	// Statement heads and the words their parsers look for.
	kwAbort
	kwAlter
	kwAnalyse
	kwAnalyze
	kwAttach
	kwBegin
	kwCascade
	kwCheckpoint
	kwClose
	kwCluster
	kwColumn
	kwComment
	kwCommit
	kwConcurrently
	kwConstraint
	kwCopy
	kwCreate
	kwDeallocate
	kwDeclare
	kwDetach
	kwDiscard
	kwDrop
	kwExecute
	kwExplain
	kwForeign
	kwFunction
	kwGlobal
	kwGrant
	kwIf
	kwIndex
	kwInherit
	kwListen
	kwLocal
	kwLock
	kwMaterialized
	kwMove
	kwNotify
	kwPartition
	kwPlan
	kwPosition
	kwPragma
	kwPrepare
	kwProcedure
	kwQuery
	kwRecursive
	kwRefresh
	kwReindex
	kwRelease
	kwRename
	kwReset
	kwRevoke
	kwRollback
	kwSavepoint
	kwShow
	kwStart
	kwTemp
	kwTemporary
	kwTo
	kwTransaction
	kwTrigger
	kwTruncate
	kwUnique
	kwUnlisten
	kwUnlogged
	kwUescape
	kwVacuum
	kwVerbose
	kwView
	kwVirtual

	// Words that matter where they precede '(': keyword constructs that
	// look like calls, and operators spelled as words.
	kwAny
	kwArray
	kwBetween
	kwCast
	kwCoalesce
	kwConflict
	kwEscape
	kwExtract
	kwFilter
	kwFirst
	kwGlob
	kwGreatest
	kwGrouping
	kwIlike
	kwLeast
	kwLike
	kwMatch
	kwNext
	kwNullif
	kwOperator
	kwOver
	kwOverlaps
	kwOverlay
	kwRegexp
	kwRow
	kwSimilar
	kwSome
	kwSubstring
	kwTrim
	kwVarying
	kwZone

	// Non-deterministic functions and keywords: keep them last and contiguous.
	kwNow
	kwCurrentTimestamp
	kwCurrentDate
	kwCurrentTime
	kwLocaltime
	kwLocaltimestamp
	kwClockTimestamp
	kwStatementTimestamp
	kwTransactionTimestamp
	kwTimeofday
	kwRandom
	kwRand
	kwRandomblob
	kwGenRandomUUID
	kwUUIDGenerateV1
	kwUUIDGenerateV4
	kwNextval
	kwCurrval
	kwLastval
	kwSetval
	kwChanges
	kwTotalChanges
	kwLastInsertRowid
	kwTxidCurrent
	kwPgBackendPid
	kwInetClientAddr
	kwCurrentUser
	kwSessionUser
	kwTablesample
	kwUUIDv4
	kwUUIDv7
	kwRandomNormal
	kwPgCurrentXactID
	kwCurrentRole
	kwGenRandomBytes
	kwCurrentSchema
	kwCurrentCatalog
	kwSystemUser
	kwUser // PostgreSQL's current_user, only under DialectPostgres; see noteNondet
	// Only non-deterministic when called without a time value, which
	// defaults to the current time; see noteNondet.
	kwDate
	kwTime
	kwDatetime
	kwJulianday
	kwUnixepoch
	kwStrftime
	kwAge // age(timestamp) counts from the current date

	kwCount
)

// kwNondetFirst is the first non-deterministic keyword.
const kwNondetFirst = kwNow

// Keyword flags.
const (
	// kfStructural marks words that cannot be a bare table name: met at a
	// table position they mean the reference could not be read.
	kfStructural uint8 = 1 << iota
	// kfTerminator marks words that end a FROM (or USING) list: after them a
	// comma no longer introduces a table.
	kfTerminator
	// kfQueryStart marks words that start a query inside parentheses, and
	// that keep their meaning right after AS (CREATE TABLE t AS SELECT).
	kfQueryStart
	// kfMainVerb marks words that start the main statement after a WITH list.
	kfMainVerb
	// kfConstruct marks words that, unqualified and followed by '(', are a
	// keyword construct rather than a function call: CAST(x AS t),
	// COALESCE(...), x = ANY(...), ARRAY(...), ROW(...), EXTRACT(... FROM
	// ...), TRIM(...), ...
	kfConstruct
	// kfOperator marks words that, after an operand and before '(', are a
	// binary operator rather than a function call: x LIKE (y), x BETWEEN
	// (a) AND (b), x AT TIME ZONE (z), x SIMILAR TO (p).
	kfOperator
)

// keywordWords spells each keyword in lower case.
var keywordWords = [kwCount]string{
	kwAll: "all", kwAnd: "and", kwAs: "as", kwBy: "by", kwCase: "case",
	kwCross: "cross", kwDistinct: "distinct", kwDo: "do", kwElse: "else",
	kwEnd: "end", kwExcept: "except", kwExists: "exists", kwFetch: "fetch",
	kwFor: "for", kwFrom: "from", kwFull: "full", kwGroup: "group",
	kwHaving: "having", kwIn: "in", kwInner: "inner", kwIntersect: "intersect",
	kwInto: "into", kwIs: "is", kwJoin: "join", kwKey: "key",
	kwLateral: "lateral", kwLeft: "left", kwLimit: "limit",
	kwNatural: "natural", kwNo: "no", kwNot: "not", kwOf: "of",
	kwOffset: "offset", kwOn: "on", kwOnly: "only", kwOr: "or",
	kwOrder: "order", kwOuter: "outer", kwReturning: "returning",
	kwRight: "right", kwSelect: "select", kwSet: "set", kwShare: "share",
	kwTable: "table", kwThen: "then", kwUnion: "union", kwUsing: "using",
	kwValues: "values", kwWhen: "when", kwWhere: "where", kwWindow: "window",
	kwWith: "with",

	kwDelete: "delete", kwInsert: "insert", kwMerge: "merge",
	kwReplace: "replace", kwUpdate: "update", kwUpsert: "upsert",

	kwAbort: "abort", kwAlter: "alter", kwAnalyse: "analyse",
	kwAnalyze: "analyze", kwAttach: "attach", kwBegin: "begin",
	kwCascade: "cascade", kwCheckpoint: "checkpoint", kwClose: "close",
	kwCluster: "cluster", kwColumn: "column", kwComment: "comment",
	kwCommit: "commit", kwConcurrently: "concurrently",
	kwConstraint: "constraint", kwCopy: "copy", kwCreate: "create",
	kwDeallocate: "deallocate", kwDeclare: "declare", kwDetach: "detach",
	kwDiscard: "discard", kwDrop: "drop", kwExecute: "execute", kwExplain: "explain",
	kwForeign: "foreign", kwFunction: "function", kwGlobal: "global",
	kwGrant: "grant", kwIf: "if", kwIndex: "index", kwInherit: "inherit",
	kwListen: "listen", kwLocal: "local", kwLock: "lock",
	kwMaterialized: "materialized", kwMove: "move", kwNotify: "notify",
	kwPartition: "partition", kwPlan: "plan", kwPosition: "position", kwPragma: "pragma",
	kwPrepare: "prepare", kwProcedure: "procedure", kwQuery: "query",
	kwRecursive: "recursive", kwRefresh: "refresh", kwReindex: "reindex",
	kwRelease: "release", kwRename: "rename", kwReset: "reset",
	kwRevoke: "revoke", kwRollback: "rollback", kwSavepoint: "savepoint",
	kwShow: "show", kwStart: "start", kwTemp: "temp",
	kwTemporary: "temporary", kwTo: "to", kwTransaction: "transaction",
	kwTrigger: "trigger", kwTruncate: "truncate", kwUnique: "unique",
	kwUnlisten: "unlisten", kwUnlogged: "unlogged", kwUescape: "uescape", kwVacuum: "vacuum",
	kwVerbose: "verbose", kwView: "view", kwVirtual: "virtual",

	kwAny: "any", kwArray: "array", kwBetween: "between", kwCast: "cast",
	kwCoalesce: "coalesce", kwConflict: "conflict", kwEscape: "escape",
	kwExtract: "extract", kwFilter: "filter", kwFirst: "first", kwGlob: "glob",
	kwGreatest: "greatest", kwGrouping: "grouping", kwIlike: "ilike",
	kwLeast: "least", kwLike: "like", kwMatch: "match", kwNext: "next",
	kwNullif: "nullif", kwOperator: "operator", kwOver: "over",
	kwOverlaps: "overlaps", kwOverlay: "overlay", kwRegexp: "regexp",
	kwRow: "row", kwSimilar: "similar", kwSome: "some",
	kwSubstring: "substring", kwTrim: "trim", kwVarying: "varying",
	kwZone: "zone",

	kwNow: "now", kwCurrentTimestamp: "current_timestamp",
	kwCurrentDate: "current_date", kwCurrentTime: "current_time",
	kwLocaltime: "localtime", kwLocaltimestamp: "localtimestamp",
	kwClockTimestamp:       "clock_timestamp",
	kwStatementTimestamp:   "statement_timestamp",
	kwTransactionTimestamp: "transaction_timestamp",
	kwTimeofday:            "timeofday", kwRandom: "random", kwRand: "rand",
	kwRandomblob: "randomblob", kwGenRandomUUID: "gen_random_uuid",
	kwUUIDGenerateV1: "uuid_generate_v1", kwUUIDGenerateV4: "uuid_generate_v4",
	kwNextval: "nextval", kwCurrval: "currval", kwLastval: "lastval",
	kwSetval: "setval", kwChanges: "changes", kwTotalChanges: "total_changes",
	kwLastInsertRowid: "last_insert_rowid", kwTxidCurrent: "txid_current",
	kwPgBackendPid: "pg_backend_pid", kwInetClientAddr: "inet_client_addr",
	kwCurrentUser: "current_user", kwSessionUser: "session_user",
	kwTablesample: "tablesample", kwUUIDv4: "uuidv4", kwUUIDv7: "uuidv7",
	kwRandomNormal: "random_normal", kwPgCurrentXactID: "pg_current_xact_id",
	kwCurrentRole: "current_role", kwGenRandomBytes: "gen_random_bytes",
	kwCurrentSchema: "current_schema", kwCurrentCatalog: "current_catalog",
	kwSystemUser: "system_user", kwUser: "user",
	kwDate: "date", kwTime: "time", kwDatetime: "datetime",
	kwJulianday: "julianday", kwUnixepoch: "unixepoch", kwStrftime: "strftime",
	kwAge: "age",
}

// kwFlags holds each keyword's kf* flags.
var kwFlags = func() (f [kwCount]uint8) {
	for _, k := range []keyword{
		kwAll, kwAnd, kwAs, kwBy, kwCase, kwCross, kwDistinct, kwDo, kwElse,
		kwEnd, kwExcept, kwExists, kwFetch, kwFor, kwFrom, kwFull, kwGroup,
		kwHaving, kwIn, kwInner, kwIntersect, kwInto, kwIs, kwJoin, kwLeft,
		kwLimit, kwNatural, kwNot, kwOffset, kwOn, kwOr, kwOrder, kwOuter,
		kwReturning, kwRight, kwSelect, kwSet, kwTable, kwThen, kwUnion,
		kwUsing, kwValues, kwWhen, kwWhere, kwWindow, kwWith,
		kwDelete, kwInsert, kwMerge, kwUpdate,
	} {
		f[k] |= kfStructural
	}
	for _, k := range []keyword{
		kwWhere, kwGroup, kwHaving, kwWindow, kwOrder, kwLimit, kwOffset,
		kwFetch, kwFor, kwUnion, kwIntersect, kwExcept, kwReturning, kwSet,
		kwSelect, kwValues, kwDo, kwInto,
	} {
		f[k] |= kfTerminator
	}
	for _, k := range []keyword{
		kwSelect, kwWith, kwValues, kwTable, kwInsert, kwUpdate, kwDelete, kwMerge,
	} {
		f[k] |= kfQueryStart
	}
	for _, k := range []keyword{
		kwSelect, kwValues, kwTable, kwInsert, kwUpdate, kwDelete, kwMerge,
		kwReplace, kwUpsert,
	} {
		f[k] |= kfMainVerb
	}
	for _, k := range []keyword{
		kwAny, kwSome, kwAll, kwCast, kwCoalesce, kwNullif, kwGreatest, kwLeast,
		kwArray, kwRow, kwExtract, kwPosition, kwTrim, kwOverlay, kwGrouping,
		kwOperator, kwVarying, kwExists, kwIn, kwValues, kwCase,
	} {
		f[k] |= kfConstruct
	}
	for _, k := range []keyword{
		kwLike, kwIlike, kwGlob, kwRegexp, kwMatch, kwBetween, kwEscape,
		kwOverlaps, kwSimilar, kwTo, kwZone, kwIs, kwAnd, kwOr, kwNot,
	} {
		f[k] |= kfOperator
	}
	return f
}()

// maxKeywordLen is the length of the longest keyword.
const maxKeywordLen = 24

// keywordTable is an open-addressing hash table of the keywords, faster than
// a map for the short, case-insensitive lookups done on every word.
var keywordTable = func() (t [keywordTableSize]keyword) {
	for k := keyword(1); k < kwCount; k++ {
		w := keywordWords[k]
		if w == "" || len(w) > maxKeywordLen || strings.ToLower(w) != w {
			panic("sqlinspect: bad keyword table entry")
		}
		h := keywordHash(w)
		for t[h] != kwNone {
			h = (h + 1) & (keywordTableSize - 1)
		}
		t[h] = k
	}
	return t
}()

// keywordTableSize is a power of two, several times the number of keywords
// so that probes stay short.
const keywordTableSize = 1024

// keywordHash hashes a word of 2 bytes or more, ignoring ASCII case.
func keywordHash(w string) uint32 {
	h := uint32(len(w))
	for i := 0; i < len(w); i++ {
		h = h*31 + uint32(w[i]|0x20)
	}
	return (h ^ h>>10) & (keywordTableSize - 1)
}

// lookupKeyword returns the keyword spelled by w in any letter case, or kwNone.
func lookupKeyword(w string) keyword {
	if len(w) < 2 || len(w) > maxKeywordLen {
		return kwNone
	}
	for h := keywordHash(w); ; h = (h + 1) & (keywordTableSize - 1) {
		k := keywordTable[h]
		if k == kwNone || equalFoldLower(w, keywordWords[k]) {
			return k
		}
	}
}

// equalFoldLower reports whether w equals the lower-case ASCII word lower,
// ignoring the case of w's ASCII letters.
func equalFoldLower(w, lower string) bool {
	if len(w) != len(lower) {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
