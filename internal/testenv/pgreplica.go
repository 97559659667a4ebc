package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PGReplica is a real PostgreSQL streaming replication pair for one test:
// a standby started from pg_basebackup (-X stream -R) on a free loopback
// port, replaying the WAL its primary streams to it.
//
// The primary is the local PostgreSQL (PostgresDSN) when its pg_hba.conf
// accepts replication connections from 127.0.0.1. A stock Debian install
// does not ("host all ..." does not match the replication pseudo-database),
// and the helper never edits system configuration: it then starts a private
// primary instead (initdb into the same temp dir, trust auth, loopback
// only), which costs a second or two and copies nothing of the local
// cluster. Private says which one the test got.
//
// Both servers it starts are stopped by pid (fast shutdown, then SIGKILL)
// and their directory removed when the test ends.
type PGReplica struct {
	// PrimaryDSN and StandbyDSN reach the same database on both servers
	// (keyword/value DSNs, no search_path).
	PrimaryDSN string
	StandbyDSN string
	// Private is true when the primary is a private server started by the
	// helper, false when it is the local PostgreSQL.
	Private bool
	// Setup is how long starting the pair took (initdb, base backup, start).
	Setup time.Duration

	t       testing.TB
	primary *sql.DB
	standby *sql.DB
}

// pgBinDir returns the directory holding pg_basebackup, initdb and
// postgres: the newest /usr/lib/postgresql/*/bin, or the one pg_config on
// PATH names.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	if pc, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(pc, "--bindir").Output(); err == nil {
			dirs = append(dirs, strings.TrimSpace(string(out)))
		}
	}
	for _, d := range dirs {
		ok := true
		for _, b := range []string{"pg_basebackup", "initdb", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, b)); err != nil {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (pg_basebackup, initdb, postgres) under /usr/lib/postgresql/*/bin or pg_config --bindir")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// pgUser is the OS user the servers run as: postgres refuses to run as
// root, so a root test runs them as the "postgres" account.
type pgUser struct {
	cred     *syscall.Credential
	uid, gid int
	home     string
}

func pgRunAs() (pgUser, error) {
	if os.Geteuid() != 0 {
		return pgUser{uid: -1, gid: -1}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return pgUser{}, fmt.Errorf("running as root and there is no postgres OS user to run the servers as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return pgUser{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid, home: u.HomeDir}, nil
}

func (u pgUser) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: u.cred}
	// No SSL on loopback: as another user, libpq would try root's
	// ~/.postgresql client certificate and fail on its permissions.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC", "PGSSLMODE=disable")
	if u.home != "" {
		cmd.Env = append(cmd.Env, "HOME="+u.home)
	}
	return cmd
}

func (u pgUser) mkdir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	if u.cred != nil {
		return os.Chown(path, u.uid, u.gid)
	}
	return nil
}

// StartPostgresReplica starts a primary/standby pair (see PGReplica) and
// returns once the standby accepts connections and is in recovery. It
// skips the test (fails under QUERYCACHE_REQUIRE_SERVICES=1) when the
// server binaries are missing or no server can be started.
func StartPostgresReplica(t testing.TB) *PGReplica {
	t.Helper()
	start := time.Now()
	bin, err := pgBinDir()
	if err != nil {
		Unavailable(t, "PostgreSQL server binaries for a replica", err)
	}
	as, err := pgRunAs()
	if err != nil {
		Unavailable(t, "PostgreSQL replica", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	// A short path under /tmp: the unix socket path has a 107-byte limit,
	// and t.TempDir's parents are 0700 root-owned (postgres cannot enter).
	dir, err := os.MkdirTemp("", "qcpg"+hex.EncodeToString(b[:]))
	if err != nil {
		t.Fatalf("replica dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := as.mkdir(dir); err != nil {
		t.Fatalf("replica dir: %v", err)
	}
	r := &PGReplica{t: t}

	srcHost, srcPort, srcUser, dbname := "127.0.0.1", "5432", "postgres", "test"
	if v := pgField(PostgresDSN(), "host"); v != "" {
		srcHost = v
	}
	if v := pgField(PostgresDSN(), "port"); v != "" {
		srcPort = v
	}
	if v := pgField(PostgresDSN(), "dbname"); v != "" {
		dbname = v
	}
	standbyDir := filepath.Join(dir, "standby")
	if err := as.mkdir(standbyDir); err != nil {
		t.Fatalf("replica dir: %v", err)
	}
	// The local server first: a base backup over a replication connection.
	out, err := as.command(filepath.Join(bin, "pg_basebackup"), "-h", srcHost, "-p", srcPort, "-U", srcUser,
		"-D", standbyDir, "-X", "stream", "-R", "-c", "fast", "--no-sync", "-w").CombinedOutput()
	if err == nil {
		r.PrimaryDSN = fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", srcHost, srcPort, srcUser, dbname)
		t.Logf("pgreplica: base backup of the local server %s:%s in %v", srcHost, srcPort, time.Since(start).Round(time.Millisecond))
	} else {
		reason := strings.TrimSpace(string(out))
		if !strings.Contains(reason, "pg_hba.conf") && !strings.Contains(reason, "replication") {
			t.Logf("pgreplica: base backup of the local server failed (%v: %s); using a private primary", err, reason)
		} else {
			t.Logf("pgreplica: the local server refuses replication connections (%s); using a private primary (system configuration is not changed)", firstLine(reason))
		}
		_ = os.RemoveAll(standbyDir)
		if err := as.mkdir(standbyDir); err != nil {
			t.Fatalf("replica dir: %v", err)
		}
		port := r.startPrivatePrimary(t, as, bin, dir)
		r.Private = true
		r.PrimaryDSN = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)
		out, err := as.command(filepath.Join(bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres",
			"-D", standbyDir, "-X", "stream", "-R", "-c", "fast", "--no-sync", "-w").CombinedOutput()
		if err != nil {
			t.Fatalf("pg_basebackup of the private primary: %v\n%s", err, out)
		}
	}
	r.primary = openPG(t, r.PrimaryDSN)
	port := r.startStandby(t, as, bin, dir, standbyDir)
	r.StandbyDSN = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", port, pgField(r.PrimaryDSN, "dbname"))
	r.standby = openPG(t, r.StandbyDSN)
	var inRecovery bool
	if err := r.standby.QueryRow("SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("standby on port %d is not in recovery (err %v)", port, err)
	}
	r.Setup = time.Since(start)
	t.Logf("pgreplica: standby 127.0.0.1:%d of %s ready in %v", port, pgField(r.PrimaryDSN, "port"), r.Setup.Round(time.Millisecond))
	return r
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// pgField returns a keyword's value in a keyword/value DSN.
func pgField(dsn, key string) string {
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func openPG(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// startPrivatePrimary initdb's and starts a primary in dir/primary and
// returns its port.
func (r *PGReplica) startPrivatePrimary(t testing.TB, as pgUser, bin, dir string) int {
	t.Helper()
	pdir := filepath.Join(dir, "primary")
	if err := as.mkdir(pdir); err != nil {
		t.Fatalf("primary dir: %v", err)
	}
	out, err := as.command(filepath.Join(bin, "initdb"), "-D", pdir, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		Unavailable(t, "a private PostgreSQL primary (initdb)", fmt.Errorf("%v: %s", err, out))
	}
	// initdb's pg_hba.conf with --auth=trust already has "host replication
	// all 127.0.0.1/32 trust"; write it explicitly anyway.
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(pdir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = chownTo(as, filepath.Join(pdir, "pg_hba.conf"))
	return r.startServer(t, as, bin, pdir, dir, "primary", "wal_level = replica\nmax_wal_senders = 4\n")
}

// startStandby configures the base backup in sdir as a hot standby and
// starts it. The backup's own postgresql.conf (if any) names the primary's
// port; the settings a hot standby needs at least as large as its
// primary's are copied from the primary.
func (r *PGReplica) startStandby(t testing.TB, as pgUser, bin, dir, sdir string) int {
	t.Helper()
	var extra strings.Builder
	extra.WriteString("hot_standby = on\nhot_standby_feedback = on\n")
	rows, err := r.primary.Query(`SELECT name, setting FROM pg_settings WHERE name IN
		('max_connections','max_worker_processes','max_wal_senders','max_prepared_transactions','max_locks_per_transaction')`)
	if err != nil {
		t.Fatalf("reading the primary's settings: %v", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&extra, "%s = %s\n", k, v)
	}
	rows.Close()
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\n"
	for name, body := range map[string]string{"pg_hba.conf": hba, "pg_ident.conf": ""} {
		p := filepath.Join(sdir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = chownTo(as, p)
	}
	return r.startServer(t, as, bin, sdir, dir, "standby", extra.String())
}

func chownTo(as pgUser, path string) error {
	if as.cred == nil {
		return nil
	}
	return os.Chown(path, as.uid, as.gid)
}

// startServer writes dataDir/postgresql.conf (replacing any copied one:
// later settings in postgresql.auto.conf, such as -R's primary_conninfo,
// still apply) and runs postgres on a free port until it accepts
// connections. The server is stopped by pid when the test ends.
func (r *PGReplica) startServer(t testing.TB, as pgUser, bin, dataDir, sockDir, name, extra string) int {
	t.Helper()
	var lastErr error
	for range portAttempts {
		port, err := freePort(false)
		if err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
shared_buffers = 16MB
log_min_messages = warning
hba_file = '%s'
ident_file = '%s'
%s`, port, sockDir, filepath.Join(dataDir, "pg_hba.conf"), filepath.Join(dataDir, "pg_ident.conf"), extra)
		if name == "primary" {
			conf += "max_connections = 40\n"
		}
		confPath := filepath.Join(dataDir, "postgresql.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = chownTo(as, confPath)
		if _, err := os.Stat(filepath.Join(dataDir, "pg_ident.conf")); err != nil {
			_ = os.WriteFile(filepath.Join(dataDir, "pg_ident.conf"), nil, 0o600)
			_ = chownTo(as, filepath.Join(dataDir, "pg_ident.conf"))
		}
		logPath := filepath.Join(sockDir, name+".log")
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd := as.command(filepath.Join(bin, "postgres"), "-D", dataDir)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			Unavailable(t, "PostgreSQL "+name, err)
		}
		logf.Close()
		done := make(chan struct{})
		var once sync.Once
		go func() { _ = cmd.Wait(); once.Do(func() { close(done) }) }()
		pid := cmd.Process.Pid
		t.Cleanup(func() { stopPG(pid, done) })
		dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", port)
		err = waitPG(dsn, done)
		if err == nil {
			return port
		}
		stopPG(pid, done)
		lastErr = fmt.Errorf("%v\n%s", err, tailFile(logPath, 2000))
		if !strings.Contains(lastErr.Error(), "already in use") {
			break
		}
	}
	t.Fatalf("starting the %s: %v", name, lastErr)
	return 0
}

// waitPG waits until the server answers a query (a standby answers once it
// has reached a consistent state), or exits, or readyTimeout passes.
func waitPG(dsn string, exited <-chan struct{}) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(3 * readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var one int
		err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("server exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", 3*readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopPG asks the postmaster for a fast shutdown (SIGINT), then kills it.
func stopPG(pid int, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-done:
		return
	case <-time.After(readyTimeout):
	}
	// The postmaster's children die with it; the group is killed too.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-done
}

func tailFile(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// Primary and Standby are connections (database/sql, driver pgx) to the
// two servers, for the test's own checks.
func (r *PGReplica) Primary() *sql.DB { return r.primary }

// Standby is a connection pool to the standby.
func (r *PGReplica) Standby() *sql.DB { return r.standby }

// Schema creates a fresh schema on the primary, waits until the standby
// has replayed it, drops it when the test ends, and returns both DSNs with
// search_path set to it.
func (r *PGReplica) Schema(t testing.TB) (primaryDSN, standbyDSN string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "qcr_" + hex.EncodeToString(b[:])
	if _, err := r.primary.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() { _, _ = r.primary.Exec("DROP SCHEMA " + schema + " CASCADE") })
	r.WaitReplayed(t)
	return r.PrimaryDSN + " search_path=" + schema, r.StandbyDSN + " search_path=" + schema
}

// PauseReplay stops the standby applying WAL (pg_wal_replay_pause): it
// still receives the primary's WAL, but its data stays as it is, so its
// lag is certain. It returns once the pause has taken effect.
func (r *PGReplica) PauseReplay(t testing.TB) {
	t.Helper()
	if _, err := r.standby.Exec("SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatalf("pg_wal_replay_pause: %v", err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		var state string
		if err := r.standby.QueryRow("SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
			t.Fatalf("pg_get_wal_replay_pause_state: %v", err)
		}
		if state == "paused" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay pause state is %q after %v", state, readyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ResumeReplay resumes WAL replay on the standby.
func (r *PGReplica) ResumeReplay(t testing.TB) {
	t.Helper()
	if _, err := r.standby.Exec("SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatalf("pg_wal_replay_resume: %v", err)
	}
}

// WaitReplayed waits until the standby has replayed everything the
// primary had inserted in its WAL when it was called
// (pg_current_wal_insert_lsn, which is at or past every commit returned).
func (r *PGReplica) WaitReplayed(t testing.TB) {
	t.Helper()
	var target string
	if err := r.primary.QueryRow("SELECT pg_current_wal_insert_lsn()::text").Scan(&target); err != nil {
		t.Fatalf("pg_current_wal_insert_lsn: %v", err)
	}
	deadline := time.Now().Add(3 * readyTimeout)
	for {
		var caught bool
		err := r.standby.QueryRow("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target).Scan(&caught)
		if err == nil && caught {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby has not replayed %s after %v (err %v)", target, 3*readyTimeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
