#!/usr/bin/env python3
"""CPU time of each test of a package, its servers' included (docs/TESTING.md).

The suite is CPU-bound on CI's 2 cores, and PostgreSQL's CPU, spent in
other processes, is more than half of the plugin package's. This runs
each test of a compiled test binary alone (-test.run '^Name$') and
writes, per test, a JSON line: its wall time, the CPU of the test
process and its children (self), of PostgreSQL (the postmaster's reaped
backends and its live ones: pg) and of the shared Redis (redis). Other
work on the machine does not enter the CPU columns, except PostgreSQL
work of other clients: run nothing else against the server meanwhile.

    go test -race -c -o /tmp/plugin.test ./plugins/gormcache
    cd plugins/gormcache && QUERYCACHE_REQUIRE_SERVICES=1 \\
        python3 ../../docs/testcpu.py /tmp/plugin.test /tmp/plugin.jsonl . [TestA,TestB]

Each run starts the binary anew (about 1 s each: the plugin package's
829 tests took 33 minutes).
"""
import json, os, resource, subprocess, sys, time

binary, out, cwd = sys.argv[1], sys.argv[2], sys.argv[3]
env = dict(os.environ, QUERYCACHE_TEST_SHARDS='1')
names = [l for l in subprocess.run([binary, '-test.list', '.*'], cwd=cwd, env=env,
                                   capture_output=True, text=True).stdout.split('\n')
         if l.startswith(('Test', 'Example', 'Fuzz'))]
if len(sys.argv) > 4:
    only = set(sys.argv[4].split(','))
    names = [n for n in names if n in only]
tck = os.sysconf('SC_CLK_TCK')
postmaster = int(subprocess.run(['pgrep', '-o', '-x', 'postgres'], capture_output=True, text=True).stdout.split()[0])
redis = int(subprocess.run(['pgrep', '-o', 'redis-server'], capture_output=True, text=True).stdout.split()[0])


def cpu(pid, children=True):
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    utime, stime, cutime, cstime = map(int, f[11:15])
    return (utime + stime + (cutime + cstime if children else 0)) / tck


def postgres():
    total = cpu(postmaster)  # with the backends it has reaped
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            if int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1]) == postmaster:
                total += cpu(int(p))  # live backends
        except (OSError, ValueError, IndexError):
            pass
    return total


def children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


with open(out, 'a') as o:
    for n in ['^$'] + names:  # '^$': the binary's own start
        pg0, rd0, c0, t0 = postgres(), cpu(redis, False), children(), time.time()
        r = subprocess.run([binary, '-test.run', n if n == '^$' else '^' + n + '$', '-test.parallel', '4',
                            '-test.timeout', '10m'], cwd=cwd, env=env, capture_output=True, text=True)
        wall, self_ = time.time() - t0, children() - c0
        time.sleep(0.05)  # the last backends reaped
        pg, rd = postgres() - pg0, cpu(redis, False) - rd0
        o.write(json.dumps({'test': n, 'wall': round(wall, 2), 'cpu': round(self_ + pg + rd, 2),
                            'self': round(self_, 2), 'pg': round(pg, 2), 'redis': round(rd, 2),
                            'rc': r.returncode}) + '\n')
        o.flush()
