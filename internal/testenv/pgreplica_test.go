package testenv

import "testing"

// TestPostgresReplica starts a pair, and checks that a write on the primary
// reaches the standby, and does not while replay is paused.
func TestPostgresReplica(t *testing.T) {
	r := StartPostgresReplica(t)
	pdsn, sdsn := r.Schema(t)
	p, s := openPG(t, pdsn), openPG(t, sdsn)
	if _, err := p.Exec("CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'old')"); err != nil {
		t.Fatal(err)
	}
	r.WaitReplayed(t)
	read := func() string {
		var v string
		if err := s.QueryRow("SELECT v FROM t WHERE id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := read(); v != "old" {
		t.Fatalf("standby reads %q", v)
	}
	r.PauseReplay(t)
	if _, err := p.Exec("UPDATE t SET v = 'new' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if v := read(); v != "old" {
		t.Fatalf("paused standby reads %q, want the old row", v)
	}
	r.ResumeReplay(t)
	r.WaitReplayed(t)
	if v := read(); v != "new" {
		t.Fatalf("resumed standby reads %q", v)
	}
}
