#!/usr/bin/env bash
# tests/pgcluster.sh - throwaway PostgreSQL clusters for tests, demos and benchmarks.
#
#   eval "$(tests/pgcluster.sh start)"   initdb a cluster in a fresh temp dir, start it on
#                                        127.0.0.1:<free port>, create database pgsched_test,
#                                        print export lines for PGSCHED_TEST_DSN, PGSCHED_DSN,
#                                        PGSCHED_CLUSTER_DIR and PGSCHED_PG_BINDIR
#   tests/pgcluster.sh stop [DIR]        stop it at once (-m immediate) and remove DIR
#                                        (default $PGSCHED_CLUSTER_DIR)
#   tests/pgcluster.sh restart [DIR] [--immediate]
#                                        stop and start again: same data, same port
#   tests/pgcluster.sh down [DIR] [--immediate] / up [DIR]
#                                        the two halves of restart, for tests that need the
#                                        database gone for a while
#
# When PGSCHED_TEST_DSN is already set, start creates nothing: it checks that the server
# answers and prints only `unset PGSCHED_CLUSTER_DIR` (plus PGSCHED_DSN if that is unset), so
# a later stop in the same shell leaves the external cluster alone.
#
# As root the cluster belongs to the postgres user and every server command runs through
# `runuser -u postgres --` (initdb refuses root); as anyone else it runs as that user.
#
# Environment: PGSCHED_PG_BINDIR (server binaries; default: pg_config --bindir, else the newest
# /usr/lib/postgresql/*/bin), PGSCHED_CLUSTER_TMP (parent of the cluster dir; default $TMPDIR or
# /tmp), PGSCHED_PG_PORT (first port to try), PGSCHED_PG_CONF (extra postgresql.conf lines),
# PGSCHED_PG_TIMEOUT (seconds to wait for start-up, default 60).
set -euo pipefail

# Only the export lines go to stdout, so `eval "$(... start)"` never sees anything else.
exec 3>&1 1>&2

prog=${0##*/}
marker=.pgsched-cluster
timeout_s=${PGSCHED_PG_TIMEOUT:-60}

die() {
    echo "$prog: $*" >&2
    exit 1
}

is_root() { [ "$(id -u)" = 0 ]; }

# Run a server-side command as the cluster's owner, from a directory that owner can read.
# fd 3 (our real stdout) is closed for it: a postmaster that inherited it would keep the pipe
# of `$(pgcluster.sh start)` open, and the caller would wait for as long as the server runs.
as_owner() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@") 3>&-
    else
        "$@" 3>&-
    fi
}

find_bindir() {
    local d
    if [ -n "${PGSCHED_PG_BINDIR:-}" ]; then
        [ -x "$PGSCHED_PG_BINDIR/initdb" ] || die "PGSCHED_PG_BINDIR=$PGSCHED_PG_BINDIR has no initdb"
        echo "$PGSCHED_PG_BINDIR"
        return
    fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$d" ] && [ -x "$d/initdb" ]; then
            echo "$d"
            return
        fi
    fi
    # pg_config (libpq-dev) can belong to another major version than the server.
    d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sort -V | tail -n 1)
    if [ -n "$d" ]; then
        dirname "$d"
        return
    fi
    d=$(command -v initdb 2>/dev/null || true)
    [ -n "$d" ] || die "no PostgreSQL server binaries (initdb) found; run: bash tests/deps.sh test"
    dirname "$d"
}

# Is anything bound to this TCP port (any state, v4 or v6)? Read from /proc: no ss/netstat.
port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v h="$hex" 'NR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A port below the kernel's ephemeral range (outgoing connections cannot take it meanwhile)
# that nothing uses now. The bind can still lose a race with another process: start retries.
pick_port() {
    local lo=10000 hi=32768 eph p i
    if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
        read -r eph _ </proc/sys/net/ipv4/ip_local_port_range
        [ "$eph" -gt $((lo + 1000)) ] && hi=$eph
    fi
    for i in $(seq 1 200); do
        p=$((lo + (RANDOM * 32768 + RANDOM + i) % (hi - lo)))
        port_in_use "$p" || {
            echo "$p"
            return
        }
    done
    die "no free port found in $lo-$hi"
}

dsn_for() { echo "host=127.0.0.1 port=$1 user=postgres dbname=pgsched_test"; }

# Poll until the server accepts connections, the postmaster dies, or the deadline passes.
wait_ready() { # DIR PORT
    local dir=$1 port=$2 deadline
    deadline=$((SECONDS + timeout_s))
    while :; do
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2; then
            return 0
        fi
        [ -f "$dir/data/postmaster.pid" ] || return 1
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.05
    done
}

log_tail() { # FILE...
    local f
    for f in "$@"; do
        if [ -s "$f" ]; then
            echo "---- last lines of $f ----" >&2
            tail -n 30 "$f" >&2
        fi
    done
}

write_conf() { # DIR PORT
    local dir=$1 port=$2
    cat >"$dir/data/pgsched.conf" <<EOF
# written by tests/pgcluster.sh: settings for fast, throwaway test clusters
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
logging_collector = off
${PGSCHED_PG_CONF:-}
EOF
    is_root && chown postgres: "$dir/data/pgsched.conf"
    return 0
}

# pg_ctl start; returns 0 when up, 2 when the port was taken (caller may retry), 1 otherwise.
server_start() { # DIR PORT
    local dir=$1 port=$2
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$timeout_s" \
        start >>"$dir/pg_ctl.log" 2>&1 && wait_ready "$dir" "$port"; then
        return 0
    fi
    if grep -qs -e 'could not bind' -e 'Address already in use' -e 'could not create any TCP/IP' \
        "$dir/server.log"; then
        # Do not let the next attempt's diagnostics mix with this one's.
        mv -f "$dir/server.log" "$dir/server.log.port-$port" 2>/dev/null || true
        return 2
    fi
    return 1
}

server_stop() { # DIR MODE
    local dir=$1 mode=$2 pid
    [ -f "$dir/data/postmaster.pid" ] || return 0
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w -t "$timeout_s" stop \
        >>"$dir/pg_ctl.log" 2>&1; then
        return 0
    fi
    # pg_ctl failed (stale pid file, hung server): kill the postmaster ourselves.
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    fi
    rm -f "$dir/data/postmaster.pid"
}

cluster_dir_arg() { # [DIR]
    local dir=${1:-${PGSCHED_CLUSTER_DIR:-}}
    [ -n "$dir" ] || return 0
    # A directory that is gone is fine (stop is idempotent); one without our marker is not
    # ours to delete.
    [ ! -e "$dir" ] || [ -f "$dir/$marker" ] || die "$dir is not a cluster made by $prog"
    echo "$dir"
}

cmd_start() {
    if [ -n "${PGSCHED_TEST_DSN:-}" ]; then
        local psql
        psql=$(command -v psql 2>/dev/null || echo "$(find_bindir)/psql")
        if ! PGCONNECT_TIMEOUT=10 "$psql" -X -q -At -d "$PGSCHED_TEST_DSN" -c 'SELECT 1' >/dev/null; then
            die "PGSCHED_TEST_DSN is set ($PGSCHED_TEST_DSN) but that server does not answer"
        fi
        echo "$prog: reusing the server at PGSCHED_TEST_DSN" >&2
        echo "unset PGSCHED_CLUSTER_DIR" >&3
        [ -n "${PGSCHED_DSN:-}" ] || printf 'export PGSCHED_DSN=%q\n' "$PGSCHED_TEST_DSN" >&3
        return 0
    fi

    bindir=$(find_bindir)
    is_root && ! id postgres >/dev/null 2>&1 &&
        die "running as root but there is no postgres user; run: bash tests/deps.sh test"

    local parent=${PGSCHED_CLUSTER_TMP:-${TMPDIR:-/tmp}}
    # The socket path must fit in sun_path (107 bytes) and, as root, postgres must reach it.
    if [ ${#parent} -gt 60 ] || { is_root && ! runuser -u postgres -- test -x "$parent"; }; then
        parent=/tmp
    fi
    local dir
    dir=$(mktemp -d "$parent/pgsched-pg.XXXXXX")
    touch "$dir/$marker"
    echo "$bindir" >"$dir/bindir"
    # Until start-up succeeds, any exit (error, Ctrl-C) takes the half-made cluster away.
    # shellcheck disable=SC2064
    trap "server_stop '$dir' immediate; rm -rf '$dir'" EXIT
    trap 'exit 130' INT TERM HUP
    chmod 700 "$dir"
    is_root && chown postgres: "$dir"

    if ! as_owner "$bindir/initdb" -D "$dir/data" -E UTF8 --locale=C.UTF-8 --auth=trust \
        -U postgres --no-sync >"$dir/initdb.log" 2>&1; then
        # Older systems may lack C.UTF-8; C works everywhere.
        rm -rf "$dir/data"
        as_owner "$bindir/initdb" -D "$dir/data" -E UTF8 --locale=C --auth=trust \
            -U postgres --no-sync >"$dir/initdb.log" 2>&1 || {
            log_tail "$dir/initdb.log"
            die "initdb failed"
        }
    fi
    echo "include = 'pgsched.conf'" >>"$dir/data/postgresql.conf"

    local port=${PGSCHED_PG_PORT:-} attempt rc
    [ -n "$port" ] || port=$(pick_port)
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        write_conf "$dir" "$port"
        rc=0
        server_start "$dir" "$port" || rc=$?
        [ $rc = 0 ] && break
        if [ $rc = 2 ] && [ $attempt -lt 10 ]; then
            echo "$prog: port $port is taken, trying another" >&2
            server_stop "$dir" immediate
            port=$(pick_port)
            continue
        fi
        log_tail "$dir/server.log"
        die "the server in $dir did not start"
    done
    echo "$port" >"$dir/port"

    "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -c 'CREATE DATABASE pgsched_test' ||
        die "could not create database pgsched_test"

    trap - EXIT INT TERM HUP
    local dsn
    dsn=$(dsn_for "$port")
    {
        printf "export PGSCHED_TEST_DSN='%s'\n" "$dsn"
        printf "export PGSCHED_DSN='%s'\n" "$dsn"
        printf "export PGSCHED_CLUSTER_DIR='%s'\n" "$dir"
        printf "export PGSCHED_PG_BINDIR='%s'\n" "$bindir"
    } >&3
    echo "$prog: PostgreSQL up on 127.0.0.1:$port in $dir" >&2
}

# Take the binaries the cluster was made with, whatever the environment says now.
load_bindir() { bindir=$(cat "$1/bindir" 2>/dev/null || find_bindir); }

cmd_stop() {
    local dir
    dir=$(cluster_dir_arg "${1:-}")
    if [ -z "$dir" ]; then
        echo "$prog: no cluster of ours to stop" >&2
        return 0
    fi
    [ -d "$dir" ] || return 0
    load_bindir "$dir"
    server_stop "$dir" immediate
    rm -rf "$dir"
}

parse_dir_mode() { # [DIR] [--immediate] -> sets dir, mode
    dir='' mode=fast
    local a
    for a in "$@"; do
        case $a in
        --immediate) mode=immediate ;;
        --fast) mode=fast ;;
        -*) die "unknown option $a" ;;
        *) dir=$a ;;
        esac
    done
    dir=$(cluster_dir_arg "$dir")
    [ -n "$dir" ] || die "no cluster of ours (set PGSCHED_CLUSTER_DIR or pass its directory)"
    [ -d "$dir" ] || die "no cluster in $dir"
    load_bindir "$dir"
}

cmd_down() {
    local dir mode
    parse_dir_mode "$@"
    server_stop "$dir" "$mode"
}

cmd_up() {
    local dir mode port
    parse_dir_mode "$@"
    port=$(cat "$dir/port")
    [ -f "$dir/data/postmaster.pid" ] && wait_ready "$dir" "$port" && return 0
    if ! server_start "$dir" "$port"; then
        log_tail "$dir/server.log"
        die "the server in $dir did not start again on port $port"
    fi
}

cmd_restart() {
    cmd_down "$@"
    cmd_up "$@"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
start) cmd_start ;;
stop) cmd_stop "$@" ;;
restart) cmd_restart "$@" ;;
down) cmd_down "$@" ;;
up) cmd_up "$@" ;;
-h | --help | help) sed -n '2,26p' "$0" ;;
*)
    echo "usage: $prog start | stop [DIR] | restart [DIR] [--immediate] | down [DIR] [--immediate] | up [DIR]" >&2
    exit 2
    ;;
esac
