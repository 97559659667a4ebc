package invalidation

import (
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// FromSQL returns what executing sql (one or several statements, as passed
// to Exec) invalidates: the tables it writes, with their rows unknown.
// A statement that writes but whose target cannot be read from the text,
// or that cannot be classified at all, invalidates everything (the global
// epoch). Reads, transaction control and session settings invalidate
// nothing.
func FromSQL(sql string) querycache.Change {
	return FromInspected(sqlinspect.Inspect(sql))
}

// FromInspected is FromSQL for a statement already inspected.
func FromInspected(st sqlinspect.Statement) querycache.Change {
	switch st.Kind {
	case sqlinspect.KindSelect, sqlinspect.KindTx, sqlinspect.KindOther:
		return querycache.Change{}
	case sqlinspect.KindWrite, sqlinspect.KindDDL:
		if st.Undetermined || len(st.Writes) == 0 {
			return querycache.Change{All: true}
		}
		return querycache.Change{Tables: append([]string(nil), st.Writes...)}
	}
	return querycache.Change{All: true}
}
