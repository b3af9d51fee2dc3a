#!/usr/bin/env bash
# tests/test_examples.sh - every program under examples/ runs, stops by itself and prints what
# it promises: a smoke test, so that no example rots.
#
#   tests/test_examples.sh [BUILD_DIR]     (default build; make test builds the examples)
#
# The examples that need PostgreSQL get PGSCHED_DSN=$PGSCHED_TEST_DSN (tests/run_tests.sh
# provides a throwaway cluster). Each example has a line in the table below: an example
# without one fails the test, so a new example cannot go unrun. Prints one line per example
# and "N passed, N failed" at the end; exits 1 on a failure.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-${PGSCHED_BUILD_DIR:-$here/build}}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() { echo "ok - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1"; failed=$((failed + 1)); }

# name | needs a database (db/-) | arguments | environment | a line its output must have (ERE)
# "other:" instead of a line: another test runs it.
table='
cron_job      | db | 3 |                 | this node ran [1-9][0-9]* firing
retries       | db |   |                 | attempt 3: success
cancel        | db |   |                 | is now cancelled
memory_cron   | -  | 3 |                 | [1-9][0-9]* runs in 3 s
callbacks     | db |   |                 | ^6 of 6 jobs completed
transaction   | db |   |                 | rolled-back order: its receipt job does not exist
custom_store  | db |   |                 | ^method +calls
demo          | db |   | DEMO_SECONDS=4  | ^node A ran [0-9]+ jobs
pgsched-cron  | -  |   |                 | other: tests/test_cli.sh
pgschedctl    | db |   |                 | other: tests/test_pgschedctl.sh
metrics       | db | 3 |                 | ^pgsched_
'

field() { # LINE N: field N of a table line, trimmed
    echo "$1" | awk -F'|' -v n="$2" '{ gsub(/^[ \t]+|[ \t]+$/, "", $n); print $n }'
}

for src in "$here"/examples/*.c; do
    name=$(basename "$src" .c)
    line=$(echo "$table" | awk -v n="$name" '$1 == n')
    if [ -z "$line" ]; then
        fail "examples/$name.c has no line in the table of tests/test_examples.sh"
        continue
    fi
    want=$(field "$line" 5)
    case $want in other:*)
        pass "$name: run by ${want#other: }"
        continue
        ;;
    esac
    if [ ! -x "$build/$name" ]; then
        fail "$name: $build/$name is not built"
        continue
    fi
    env=()
    [ "$(field "$line" 2)" = db ] && env+=(PGSCHED_DSN="${PGSCHED_TEST_DSN:-}")
    read -r -a extra <<<"$(field "$line" 4)"
    read -r -a args <<<"$(field "$line" 3)"
    if [ "$(field "$line" 2)" = db ] && [ -z "${PGSCHED_TEST_DSN:-}" ]; then
        fail "$name: needs PostgreSQL, and PGSCHED_TEST_DSN is not set"
        continue
    fi
    env ${env[@]+"${env[@]}"} ${extra[@]+"${extra[@]}"} timeout -k 5 60 \
        "$build/$name" ${args[@]+"${args[@]}"} >"$tmp/$name.out" 2>&1 </dev/null
    rc=$?
    if [ $rc != 0 ]; then
        fail "$name: exit status $rc"
        sed 's/^/    /' "$tmp/$name.out" | tail -15
    elif ! grep -Eq -- "$want" "$tmp/$name.out"; then
        fail "$name: its output lacks /$want/"
        sed 's/^/    /' "$tmp/$name.out" | tail -15
    else
        pass "$name: exits 0 and prints /$want/"
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
