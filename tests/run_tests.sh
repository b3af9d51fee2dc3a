#!/usr/bin/env bash
# tests/run_tests.sh [--no-scripts] [BUILD_DIR [NAME...]] - run the test suite, count results.
#
# Runs every BUILD_DIR/test_* binary (cmocka; default BUILD_DIR: build), then every
# tests/test_*.sh script (each must end its output with "N passed, N failed"), against one
# PostgreSQL cluster from tests/pgcluster.sh, or the server at PGSCHED_TEST_DSN when that is
# set. Binaries run with the repository root as working directory. NAMEs restrict the run to
# those binaries/scripts (test_cron, test_pgcluster.sh); a NAME that is not there counts as a
# failure (make passes the names of the sources: a test that failed to build is missed, and a
# stale binary of a deleted test is not run). Last line: "TOTAL: N passed, N failed"; exit
# status 1 on any failure. A binary that crashes, hangs, exits nonzero without a FAILED line,
# or runs no test at all counts as a failure, and so does a run with nothing to run (no binary
# and no script), or with no NAMEs and no test binary in BUILD_DIR (nothing was built).
#
# The tests run PGSCHED_TEST_JOBS at a time (most of their time is spent waiting, not
# computing), the longest first; each one's output is printed whole when it ends, followed by
# its "-- NAME: N passed, N failed (Ns)" line, so the log reads the same as one at a time.
# When more than one runs at once and PostgreSQL is used, each gets a database of its own on
# the server (PGSCHED_TEST_DSN with dbname=pgsched_t<pid>_<name>), created before it starts
# and dropped after it: a few tests assume that they alone use their database (they count or
# terminate the connections named `pgsched` in it).
#
#   --no-scripts            binaries only (the sanitizer runs use this)
#   PGSCHED_TEST_JOBS       tests at once: default 2 with a cluster of our own or
#                           PGSCHED_TEST_SKIP_PG=1, 1 on a server at PGSCHED_TEST_DSN (more
#                           than 1 there needs the right to create databases)
#   PGSCHED_TEST_TIMEOUT    seconds per binary or script before it is killed (default 600);
#                           15 s before, a test still running has the server's busy sessions
#                           and (with gdb) its threads' stacks written to its log
#   PGSCHED_TEST_ENV        extra NAME=VALUE words put into every test's environment
#   PGSCHED_TEST_SKIP_PG=1  start no cluster; the binaries run their in-memory groups only
#   PGSCHED_TEST_FILTER     a glob: each binary runs only the tests it matches (a binary
#                           with no match then counts as nothing, not as a failure)
#   ASAN_OPTIONS, UBSAN_OPTIONS, TSAN_OPTIONS   defaults below unless already set
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

scripts=1
if [ "${1:-}" = --no-scripts ]; then
    scripts=0
    shift
fi
build=${1:-build}
[ $# -gt 0 ] && shift
only=("$@")
# A relative BUILD_DIR means the one in the current directory if there is one, else the
# repository's (so `tests/run_tests.sh build` works from anywhere).
if [ "${build#/}" = "$build" ] && [ ! -d "$build" ] && [ -d "$repo/$build" ]; then
    build=$repo/$build
fi
[ -d "$build" ] && build=$(cd "$build" && pwd)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
# The summary lines parsed below are cmocka's standard output format.
export CMOCKA_MESSAGE_OUTPUT=stdout
export PGSCHED_BUILD_DIR=$build
timeout_s=${PGSCHED_TEST_TIMEOUT:-600}
read -r -a extra_env <<<"${PGSCHED_TEST_ENV:-}"

tmp=$(mktemp -d)
own_cluster=
# The tests running now: indexes into `items` (see below).
active=()

cleanup() {
    # Stop the tests still running (Ctrl-C, TERM): timeout passes the signal on to them.
    local i pid deadline
    for i in ${active[@]+"${active[@]}"}; do
        pid=$(cat "$tmp/$i.pid" 2>/dev/null)
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    deadline=$((SECONDS + 15))
    for i in ${active[@]+"${active[@]}"}; do
        while kill -0 "${job_pid[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            sleep 0.05
        done
    done
    [ -n "$own_cluster" ] && bash "$here/pgcluster.sh" stop "$own_cluster" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "run_tests.sh: interrupted" >&2; exit 130' INT TERM HUP

wanted() { # NAME: is it in the NAMEs given on the command line (or were none given)?
    [ ${#only[@]} -eq 0 ] && return 0
    local n
    for n in "${only[@]}"; do [ "$n" = "$1" ] || [ "$n.sh" = "$1" ] && return 0; done
    return 1
}

bins=()
if [ -d "$build" ]; then
    for f in "$build"/test_*; do
        [ -f "$f" ] && [ -x "$f" ] && wanted "${f##*/}" && bins+=("$f")
    done
fi
shs=()
if [ $scripts = 1 ]; then
    for f in "$here"/test_*.sh; do
        [ -f "$f" ] && wanted "${f##*/}" && shs+=("$f")
    done
fi
# A NAME asked for by name that is not there (it failed to build) is a failure, not a skip.
missing=()
for n in ${only[@]+"${only[@]}"}; do
    if [ "${n%.sh}" != "$n" ]; then
        [ $scripts = 0 ] || [ -f "$here/$n" ] || missing+=("$n")
    elif [ ! -x "$build/$n" ] && [ ! -f "$here/$n.sh" ]; then
        missing+=("$n")
    fi
done

total_pass=0
total_fail=0
total_skip=0
failures=()

sum_matches() { # REGEX FILE: the sum of the first captured number over matching lines
    sed -nE "s/$1/\\1/p" "$2" | awk '{ s += $1 } END { print s + 0 }'
}

signal_name() {
    local n
    n=$(kill -l "$1" 2>/dev/null) && echo "SIG$n" || echo "signal $1"
}

# Starts item I (a binary or a script) in the background with a timeout, its output kept in
# $tmp/I.log; its exit status goes to $tmp/I.rc, the timeout process's pid (what must be
# signalled to stop the test) to $tmp/I.pid. With a database per test, makes it first and
# drops it afterwards.
start_item() { # I
    local i=$1 db= dsn=${PGSCHED_TEST_DSN:-} dsn_env=()
    local path=${items[$i]#*:} cmd=()
    if [ "${items[$i]%%:*}" = sh ]; then cmd=(bash "$path"); else cmd=("$path"); fi
    if [ $per_db = 1 ]; then
        db=pgsched_t$$_$(echo "${path##*/}" | tr -c 'a-z0-9\n' _)
        case $dsn in
        postgres://* | postgresql://*)
            case $dsn in *\?*) dsn="$dsn&dbname=$db" ;; *) dsn="$dsn?dbname=$db" ;; esac ;;
        *) dsn="$dsn dbname=$db" ;;
        esac
        dsn_env=(PGSCHED_TEST_DSN="$dsn")
        # the examples' own variable, where it names the same server (pgcluster.sh sets both)
        [ "${PGSCHED_DSN:-}" = "${PGSCHED_TEST_DSN:-}" ] && dsn_env+=(PGSCHED_DSN="$dsn")
    fi
    : >"$tmp/$i.log"
    rm -f "$tmp/$i.rc" "$tmp/$i.pid"
    (
        trap - EXIT INT TERM HUP
        cd "$repo" || exit 1
        if [ -n "$db" ] && ! admin_sql "CREATE DATABASE \"$db\"" >>"$tmp/$i.log" 2>&1; then
            echo "run_tests.sh: could not create database $db for ${path##*/}" >>"$tmp/$i.log"
            echo 1 >"$tmp/$i.rc"
            exit 1
        fi
        env ${extra_env[@]+"${extra_env[@]}"} ${dsn_env[@]+"${dsn_env[@]}"} \
            timeout -k 10 "$timeout_s" "${cmd[@]}" </dev/null >>"$tmp/$i.log" 2>&1 &
        local tpid=$! dog=
        echo $tpid >"$tmp/$i.pid"
        # Shortly before the timeout kills a test that hangs, its log gets what it waits for:
        # the server's busy sessions and, where gdb is installed, every thread's stack.
        if [ "$timeout_s" -gt 30 ]; then
            (
                sleep $((timeout_s - 15))
                kill -0 "$tpid" 2>/dev/null || exit 0
                {
                    echo "run_tests.sh: ${path##*/} still runs after $((timeout_s - 15))s; what it waits for:"
                    q=${psql:-$(command -v psql 2>/dev/null)}
                    [ -n "$q" ] && [ -n "$dsn" ] && PGAPPNAME=pgsched_test_admin "$q" -X -d "$dsn" -c \
                        "SELECT pid, application_name, state, wait_event_type, wait_event, now() - query_start AS running_for, left(query, 160) AS query FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid()"
                    child=$(pgrep -P "$tpid" 2>/dev/null | head -n 1)
                    [ -n "$child" ] && command -v gdb >/dev/null 2>&1 &&
                        timeout 60 gdb -p "$child" -batch -ex "thread apply all bt" 2>&1 | head -n 400
                } >>"$tmp/$i.log" 2>&1 || true
            ) </dev/null >/dev/null 2>&1 & # (its sleep, left behind, holds no pipe open)
            dog=$!
        fi
        wait $tpid 2>/dev/null
        echo $? >"$tmp/$i.rc"
        [ -n "$dog" ] && kill "$dog" 2>/dev/null
        # a cluster of our own goes as a whole; on another server, clean up after ourselves
        if [ -n "$db" ] && [ -z "$own_cluster" ]; then
            admin_sql "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1
        fi
    ) &
    job_pid[$i]=$!
    job_t0[$i]=$SECONDS
}

# Turns an exit status into words for the report ("" for 0).
why_exit() { # RC
    local rc=$1
    if [ "$rc" = 0 ]; then
        return
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        # 124: timeout expired and TERM worked; 137: it needed KILL (-k), or was killed.
        echo "killed after ${timeout_s}s timeout (exit $rc)"
    elif [ "$rc" -gt 128 ]; then
        echo "died of $(signal_name $((rc - 128)))"
    else
        echo "exit status $rc"
    fi
}

report() { # NAME PASSED FAILED SKIPPED SECONDS NOTE
    local line="$2 passed, $3 failed"
    [ "$4" != 0 ] && line="$line, $4 skipped"
    echo "-- $1: $line (${5}s)${6:+ - $6}"
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
    total_skip=$((total_skip + $4))
    [ "$3" = 0 ] || failures+=("$1: $3 failed${6:+ - $6}")
}

# Per-test outcomes from cmocka's progress lines: a test whose "[ RUN ]" has no closing line
# (OK, SKIPPED, FAILED, ERROR) is one the binary crashed or hung in. Prints "PASSED FAILED SKIPPED".
count_progress() { # LOG
    awk '
        /^\[ RUN      \] / { if (open) f++; open = 1; next }
        /^\[       OK \] / { if (open) p++; open = 0; next }
        /^\[  SKIPPED \] / { if (open) s++; open = 0; next }
        /^\[  FAILED  \] / { if (open) f++; open = 0; next }
        /^\[  ERROR   \] / && !/^\[  ERROR   \] --- / { if (open) f++; open = 0; next }
        END { if (open) f++; print p + 0, f + 0, s + 0 }' "$1"
}

max() { echo $(($1 > $2 ? $1 : $2)); }

finish_binary() { # NAME LOG SECONDS
    local name=$1 log=$2 secs=$3 p f s pp pf ps grp note=
    read -r pp pf ps < <(count_progress "$log")
    # The group summaries agree with the progress lines when the binary runs to its end; when
    # it does not, the progress lines know more.
    p=$(max "$pp" "$(sum_matches '^\[  PASSED  \] ([0-9]+) test\(s\)\..*' "$log")")
    f=$(max "$pf" "$(sum_matches '^\[  FAILED  \] ([0-9]+) test\(s\), listed below:.*' "$log")")
    # " N FAILED TEST(S)" also counts tests whose setup failed, which are not "listed below".
    f=$(max "$f" "$(sum_matches '^ ([0-9]+) FAILED TEST\(S\).*' "$log")")
    s=$(max "$ps" "$(sum_matches '^\[  SKIPPED \] ([0-9]+) test\(s\), listed below:.*' "$log")")
    # A failed group setup/teardown is in no count (a failed teardown even exits 0).
    grp=$(grep -cE '^\[  FAILED  \] GROUP (SETUP|TEARDOWN)' "$log")
    f=$((f + grp))
    note=$(why_exit "$rc")
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        f=1 # died outside any test, or failed without saying so
    elif [ "$rc" = 0 ] && [ $((p + f + s)) = 0 ]; then
        if [ -n "${PGSCHED_TEST_FILTER:-}" ]; then
            note="no test matches PGSCHED_TEST_FILTER" # asked for: not a failure
        else
            f=1
            note="ran no test"
        fi
    fi
    [ "$grp" = 0 ] || note="${note:+$note, }$grp group setup/teardown failure(s)"
    report "$name" "$p" "$f" "$s" "$secs" "$note"
}

finish_script() { # NAME LOG SECONDS
    local name=$1 log=$2 secs=$3 line p=0 f=0 note=
    line=$(grep -oE '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    note=$(why_exit "$rc")
    if [ -z "$line" ]; then
        f=1
        note="${note:+$note, }no \"N passed, N failed\" line"
    else
        p=${line%% passed*}
        f=${line#*passed, }
        f=${f%% failed*}
        if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
            f=1
        fi
    fi
    report "$name" "$p" "$f" 0 "$secs" "$note"
}

# Item I has ended: prints its output whole and its result line, and counts it.
finish_item() { # I
    local i=$1 path=${items[$1]#*:} secs=$((SECONDS - job_t0[$1]))
    wait "${job_pid[$i]}" 2>/dev/null
    rc=$(cat "$tmp/$i.rc" 2>/dev/null)
    rc=${rc:-1}
    echo "== ${path##*/}"
    cat "$tmp/$i.log"
    if [ "${items[$i]%%:*}" = sh ]; then
        finish_script "${path##*/}" "$tmp/$i.log" "$secs"
    else
        finish_binary "${path##*/}" "$tmp/$i.log" "$secs"
    fi
}

echo "run_tests.sh: ${#bins[@]} test binaries in ${build}, ${#shs[@]} test scripts"
# PGSCHED_TEST_SKIP_PG=1 (make check): the binaries skip their PostgreSQL groups; no cluster.
if [ $((${#bins[@]} + ${#shs[@]})) -gt 0 ] && [ -z "${PGSCHED_TEST_DSN:-}" ] &&
    [ "${PGSCHED_TEST_SKIP_PG:-}" != 1 ]; then
    if ! out=$(bash "$here/pgcluster.sh" start); then
        echo "run_tests.sh: could not start PostgreSQL" >&2
        echo "TOTAL: 0 passed, 1 failed"
        exit 1
    fi
    eval "$out"
    own_cluster=$PGSCHED_CLUSTER_DIR
fi
[ -n "${PGSCHED_TEST_DSN:-}" ] && echo "run_tests.sh: PGSCHED_TEST_DSN='$PGSCHED_TEST_DSN'"

jobs=${PGSCHED_TEST_JOBS:-}
if [ -z "$jobs" ]; then
    jobs=1
    [ -n "$own_cluster" ] || [ "${PGSCHED_TEST_SKIP_PG:-}" = 1 ] && jobs=2
fi
case $jobs in
'' | *[!0-9]* | 0*)
    echo "run_tests.sh: PGSCHED_TEST_JOBS must be a whole number from 1 up, not '$jobs'" >&2
    echo "TOTAL: 0 passed, 1 failed"
    exit 1
    ;;
esac
per_db=0
if [ "$jobs" -gt 1 ] && [ -n "${PGSCHED_TEST_DSN:-}" ] && [ "${PGSCHED_TEST_SKIP_PG:-}" != 1 ]; then
    per_db=1
    psql=$(command -v psql 2>/dev/null)
    [ -z "$psql" ] && [ -n "${PGSCHED_PG_BINDIR:-}" ] && psql=$PGSCHED_PG_BINDIR/psql
    [ -z "$psql" ] && for d in /usr/lib/postgresql/*/bin; do [ -x "$d/psql" ] && psql=$d/psql; done
    if [ ! -x "${psql:-}" ]; then
        echo "run_tests.sh: no psql to make a database per test; running one test at a time"
        jobs=1
        per_db=0
    fi
fi
admin_sql() { # SQL: on the server's database named by PGSCHED_TEST_DSN
    PGAPPNAME=pgsched_test_admin "$psql" -X -q -v ON_ERROR_STOP=1 -d "$PGSCHED_TEST_DSN" -c "$1"
}

# The longest first (measured: test_engine, test_store, test_search_path.sh, which runs the
# store suite again, and test_custom_store take a minute or more each; the rest seconds),
# then the others in the order given, so that the last to end is a short one.
items=()
long_first="test_engine test_store test_search_path.sh test_custom_store test_examples.sh"
for n in $long_first; do
    for b in ${bins[@]+"${bins[@]}"}; do [ "${b##*/}" = "$n" ] && items+=("bin:$b"); done
    for sh in ${shs[@]+"${shs[@]}"}; do [ "${sh##*/}" = "$n" ] && items+=("sh:$sh"); done
done
for b in ${bins[@]+"${bins[@]}"}; do
    case " $long_first " in *" ${b##*/} "*) ;; *) items+=("bin:$b") ;; esac
done
for sh in ${shs[@]+"${shs[@]}"}; do
    case " $long_first " in *" ${sh##*/} "*) ;; *) items+=("sh:$sh") ;; esac
done
if [ "$jobs" != 1 ]; then
    note=
    [ $per_db = 1 ] && note=", each in a database of its own"
    echo "run_tests.sh: $jobs tests at a time$note"
fi

job_pid=()
job_t0=()
next=0
while [ $next -lt ${#items[@]} ] || [ ${#active[@]} -gt 0 ]; do
    while [ ${#active[@]} -lt "$jobs" ] && [ $next -lt ${#items[@]} ]; do
        start_item $next
        active+=("$next")
        next=$((next + 1))
    done
    ended=
    for i in "${!active[@]}"; do
        if ! kill -0 "${job_pid[${active[$i]}]}" 2>/dev/null; then
            ended=$i
            break
        fi
    done
    if [ -z "$ended" ]; then
        sleep 0.05
        continue
    fi
    i=${active[$ended]}
    unset 'active[ended]'
    active=(${active[@]+"${active[@]}"})
    finish_item "$i"
done

for n in ${missing[@]+"${missing[@]}"}; do
    echo "-- $n: not found in ${build} (not built?)"
    total_fail=$((total_fail + 1))
    failures+=("$n: not found (not built?)")
done
# Scripts alone are a complete run when they were what the NAMEs asked for; with no NAMEs the
# binaries are part of "everything", and none at all means nothing was built.
if [ $((${#bins[@]} + ${#shs[@]})) -eq 0 ]; then
    total_fail=$((total_fail + 1))
    failures+=("nothing ran: no test binary (test_*) in ${build} and no test script matched")
elif [ ${#bins[@]} -eq 0 ] && [ ${#only[@]} -eq 0 ]; then
    total_fail=$((total_fail + 1))
    failures+=("no test binary (test_*) in ${build}: nothing was built")
fi

echo
echo "== summary"
for m in ${failures[@]+"${failures[@]}"}; do echo "FAILED: $m"; done
[ "$total_skip" = 0 ] || echo "skipped: $total_skip"
echo "TOTAL: $total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
