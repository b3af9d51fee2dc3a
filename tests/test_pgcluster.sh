#!/usr/bin/env bash
# tests/test_pgcluster.sh - tests of tests/pgcluster.sh. Last line: "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pgcluster=$here/pgcluster.sh
pgc() { bash "$pgcluster" "$@"; }
# This suite makes its own clusters: forget any the caller has (run_tests.sh exports one).
unset PGSCHED_TEST_DSN PGSCHED_DSN PGSCHED_CLUSTER_DIR PGSCHED_PG_PORT PGSCHED_PG_CONF

# Clusters go under a private parent, so leftovers are easy to see and to clean up. As root
# the postgres user must be able to reach it.
scratch=$(mktemp -d)
chmod 755 "$scratch"
export PGSCHED_CLUSTER_TMP=$scratch

cleanup() {
    local d
    for d in "$scratch"/pgsched-pg.*; do
        [ -d "$d" ] && pgc stop "$d" >/dev/null 2>&1
    done
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

passed=0 failed=0
check() { # DESCRIPTION COMMAND...
    local desc=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok - $desc"
    else
        failed=$((failed + 1))
        echo "FAIL - $desc"
    fi
}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
clusters() { find "$scratch" -mindepth 1 -maxdepth 1 -name 'pgsched-pg.*' | wc -l; }
# Is anything listening on this TCP port?
listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v h="$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
# pgcluster.sh in a shell that has no cluster yet (this one exports the first cluster's).
fresh() { env -u PGSCHED_TEST_DSN -u PGSCHED_DSN -u PGSCHED_CLUSTER_DIR bash "$pgcluster" "$@"; }
dsn_port() { sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$1"; }
q() { "$psql" -X -q -At -d "$1" -c "$2" 2>&1; }

# --- start --------------------------------------------------------------------------------
t0=$(date +%s%N)
out=$(cd / && pgc start 2>"$scratch/start.err")
rc=$?
start_ms=$(ms_since "$t0")
check "start exits 0 (from cwd /)" test $rc = 0
[ $rc = 0 ] || cat "$scratch/start.err"
check "start prints only export lines" \
    test "$(grep -cv '^export PGSCHED_[A-Z_]*=' <<<"$out")" = 0
eval "$out"
check "start sets the four variables" test -n "${PGSCHED_TEST_DSN:-}" -a -n "${PGSCHED_DSN:-}" \
    -a -n "${PGSCHED_CLUSTER_DIR:-}" -a -n "${PGSCHED_PG_BINDIR:-}"
if [ -z "${PGSCHED_TEST_DSN:-}" ]; then
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
fi
psql=$PGSCHED_PG_BINDIR/psql
port=$(dsn_port "$PGSCHED_TEST_DSN")
check "PGSCHED_DSN equals PGSCHED_TEST_DSN" test "$PGSCHED_DSN" = "$PGSCHED_TEST_DSN"
check "DSN has the documented form" test "$PGSCHED_TEST_DSN" = \
    "host=127.0.0.1 port=$port user=postgres dbname=pgsched_test"
check "cluster dir exists under the chosen parent" test -d "$PGSCHED_CLUSTER_DIR" -a \
    "${PGSCHED_CLUSTER_DIR%/*}" = "$scratch"
check "initdb and pg_ctl live in PGSCHED_PG_BINDIR" \
    test -x "$PGSCHED_PG_BINDIR/initdb" -a -x "$PGSCHED_PG_BINDIR/pg_ctl"

# --- connect ------------------------------------------------------------------------------
check "psql SELECT 1 through the DSN" test "$(q "$PGSCHED_TEST_DSN" 'SELECT 1')" = 1
check "the DSN reaches database pgsched_test as postgres" \
    test "$(q "$PGSCHED_TEST_DSN" 'SELECT current_database() || current_user')" = "pgsched_testpostgres"
check "the unix socket is in the cluster dir" test -S "$PGSCHED_CLUSTER_DIR/.s.PGSQL.$port"
check "the socket in the cluster dir accepts connections" \
    test "$(q "host=$PGSCHED_CLUSTER_DIR port=$port user=postgres dbname=pgsched_test" 'SELECT 1')" = 1
settings=$(q "$PGSCHED_TEST_DSN" "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name)
    FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes',
    'max_connections', 'listen_addresses', 'server_encoding')")
check "fast-test settings are on ($settings)" test "$settings" = \
    "fsync=off full_page_writes=off listen_addresses=127.0.0.1 max_connections=300 server_encoding=UTF8 synchronous_commit=off"
check "shared_buffers is 128MB" test "$(q "$PGSCHED_TEST_DSN" 'SHOW shared_buffers')" = 128MB
check "the server listens on 127.0.0.1:$port" listening "$port"

# --- LISTEN/NOTIFY between two sessions ---------------------------------------------------
# Session 1 listens, runs session 2 (a second psql that notifies) from inside itself, then
# sends one more query: psql prints the notification that arrived meanwhile.
notify_out=$("$psql" -X -d "$PGSCHED_TEST_DSN" 2>&1 <<EOF
LISTEN pgsched_test_channel;
\\! "$psql" -X -q -d "$PGSCHED_TEST_DSN" -c "NOTIFY pgsched_test_channel, 'hello'"
SELECT 1;
EOF
)
check "LISTEN/NOTIFY reaches another session" \
    grep -q 'notification "pgsched_test_channel" with payload "hello"' <<<"$notify_out"

# --- restart keeps data and port ----------------------------------------------------------
q "$PGSCHED_TEST_DSN" 'CREATE TABLE keep(x int); INSERT INTO keep VALUES (42)' >/dev/null
started=$(q "$PGSCHED_TEST_DSN" 'SELECT pg_postmaster_start_time()')
t0=$(date +%s%N)
pgc restart >/dev/null 2>&1
rc=$?
restart_ms=$(ms_since "$t0")
check "restart exits 0" test $rc = 0
check "restart keeps the data and the port" test "$(q "$PGSCHED_TEST_DSN" 'SELECT x FROM keep')" = 42
t0=$(date +%s%N)
pgc restart "$PGSCHED_CLUSTER_DIR" --immediate >/dev/null 2>&1
rc=$?
crash_ms=$(ms_since "$t0")
check "restart --immediate (crash recovery) keeps the data" \
    test $rc = 0 -a "$(q "$PGSCHED_TEST_DSN" 'SELECT x FROM keep')" = 42
check "restart really restarted the server" \
    test "$(q "$PGSCHED_TEST_DSN" 'SELECT pg_postmaster_start_time()')" != "$started"
pgc down >/dev/null 2>&1
check "down stops the server but keeps the dir" \
    test -d "$PGSCHED_CLUSTER_DIR/data" -a "$(q "$PGSCHED_TEST_DSN" 'SELECT 1' >/dev/null && echo up)" != up
pgc up >/dev/null 2>&1
check "up brings it back with the data" test "$(q "$PGSCHED_TEST_DSN" 'SELECT x FROM keep')" = 42

# --- a taken port, a broken config, a directory that is not ours ---------------------------
second=$(PGSCHED_PG_PORT=$port fresh start 2>"$scratch/second.err")
rc=$?
check "a start on a taken port moves to a free one" \
    test $rc = 0 -a -n "$second" -a "$(dsn_port "$second")" != "$port"
if [ $rc = 0 ]; then
    dir2=$(eval "$second" && echo "$PGSCHED_CLUSTER_DIR")
    check "both clusters answer" test "$(q "$(eval "$second" && echo "$PGSCHED_TEST_DSN")" 'SELECT 1')$(q "$PGSCHED_TEST_DSN" 'SELECT 1')" = 11
    [ -n "$dir2" ] && pgc stop "$dir2" >/dev/null 2>&1
    check "stop DIR stops that cluster only" \
        test ! -e "$dir2" -a "$(q "$PGSCHED_TEST_DSN" 'SELECT 1')" = 1
fi

before=$(clusters)
PGSCHED_PG_CONF="shared_buffers = 'nonsense'" fresh start >"$scratch/bad.out" 2>"$scratch/bad.err"
rc=$?
check "a server that cannot start fails the start" test $rc != 0
check "...prints nothing to eval" test ! -s "$scratch/bad.out"
check "...shows the server log" grep -q 'shared_buffers' "$scratch/bad.err"
check "...and leaves no directory behind" test "$(clusters)" = "$before"

mkdir "$scratch/not-a-cluster"
pgc stop "$scratch/not-a-cluster" >/dev/null 2>&1
rc=$?
check "stop refuses a directory it did not make" test $rc != 0 -a -d "$scratch/not-a-cluster"

# --- reuse mode -----------------------------------------------------------------------------
before=$(clusters)
reuse=$(pgc start 2>/dev/null)
rc=$?
check "reuse: start with PGSCHED_TEST_DSN set exits 0" test $rc = 0
check "reuse: start creates no cluster" test "$(clusters)" = "$before"
check "reuse: start exports no cluster dir" test "$(grep -c 'PGSCHED_CLUSTER_DIR=' <<<"$reuse")" = 0
reuse_stop=$(eval "$reuse" && pgc stop 2>&1)
check "reuse: stop after a reusing start leaves the server alone ($reuse_stop)" \
    test -d "$PGSCHED_CLUSTER_DIR" -a "$(q "$PGSCHED_TEST_DSN" 'SELECT 1')" = 1
reuse2=$(unset PGSCHED_DSN && pgc start 2>/dev/null)
check "reuse: PGSCHED_DSN is exported when it was unset" \
    test "$(unset PGSCHED_DSN && eval "$reuse2" && echo "${PGSCHED_DSN:-}")" = "$PGSCHED_TEST_DSN"
PGSCHED_TEST_DSN="host=127.0.0.1 port=1 user=postgres dbname=x connect_timeout=2" pgc start \
    >/dev/null 2>&1
check "reuse: a DSN that does not answer fails the start" test $? != 0

# --- stop -----------------------------------------------------------------------------------
dir=$PGSCHED_CLUSTER_DIR
t0=$(date +%s%N)
pgc stop >/dev/null 2>&1
rc=$?
stop_ms=$(ms_since "$t0")
check "stop exits 0" test $rc = 0
check "stop removes the cluster dir" test ! -e "$dir"
check "stop closes the port" test "$(listening "$port" && echo open)" != open
"$PGSCHED_PG_BINDIR/pg_isready" -q -d "$PGSCHED_TEST_DSN" -t 2
check "pg_isready finds nothing there" test $? = 2
pgc stop "$dir" >/dev/null 2>&1
check "stop of a cluster already gone is a no-op" test $? = 0

# --- two starts at once -----------------------------------------------------------------------
(fresh start >"$scratch/p1" 2>&1) &
p1=$!
(fresh start >"$scratch/p2" 2>&1) &
p2=$!
wait $p1
rc1=$?
wait $p2
rc2=$?
a=$(dsn_port "$(grep TEST_DSN "$scratch/p1")")
b=$(dsn_port "$(grep TEST_DSN "$scratch/p2")")
check "two starts at once both succeed on different ports" \
    test $rc1 = 0 -a $rc2 = 0 -a -n "$a" -a -n "$b" -a "$a" != "$b"
for f in "$scratch/p1" "$scratch/p2"; do
    d=$(sed -n "s/^export PGSCHED_CLUSTER_DIR='\(.*\)'$/\1/p" "$f")
    [ -n "$d" ] && pgc stop "$d" >/dev/null 2>&1
done
check "no cluster dir is left behind" test "$(clusters)" = 0

echo "timings: start ${start_ms} ms, restart ${restart_ms} ms, restart --immediate ${crash_ms} ms, stop ${stop_ms} ms"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
