#!/usr/bin/env bash
# tests/test_pgschedctl.sh - pgschedctl against a real PostgreSQL and a running node.
#
#   tests/test_pgschedctl.sh [path/to/pgschedctl]   (default: $PGSCHED_BUILD_DIR/pgschedctl,
#                                                     else build/pgschedctl)
#
# Needs PGSCHED_TEST_DSN (tests/run_tests.sh sets it); works in a schema of its own, dropped at
# the end. Builds tests/ctl_node.c, a node that runs the jobs pgschedctl schedules. Checks every
# command, the exit statuses, that --json output parses (python3), and `top` under a
# pseudo-terminal (script(1) from util-linux). Prints one line per failed check and
# "N passed, N failed" at the end; exits 1 on a failure.
set -u

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-${PGSCHED_BUILD_DIR:-$repo/build}/pgschedctl}
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() {
    echo "FAIL $1"
    failed=$((failed + 1))
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
}

if [ ! -x "$bin" ]; then
    echo "test_pgschedctl.sh: $bin is not built (make examples)" >&2
    fail "pgschedctl is built"
    finish
fi
if [ -z "${PGSCHED_TEST_DSN:-}" ]; then
    echo "test_pgschedctl.sh: PGSCHED_TEST_DSN is not set (tests/run_tests.sh sets it)" >&2
    fail "PGSCHED_TEST_DSN is set"
    finish
fi
psql_bin=psql
[ -n "${PGSCHED_PG_BINDIR:-}" ] && [ -x "$PGSCHED_PG_BINDIR/psql" ] && psql_bin=$PGSCHED_PG_BINDIR/psql

tmp=$(mktemp -d)
schema=ctltest_$$
node_pid=
cleanup() {
    [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
    "$psql_bin" -X -q -d "$PGSCHED_TEST_DSN" -c "DROP SCHEMA IF EXISTS $schema CASCADE" \
        >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
out=$tmp/out
err=$tmp/err

# ctl NAME WANT_STATUS ARGS...: runs pgschedctl on the test schema, checks the exit status.
ctl() {
    local name=$1 want=$2 got
    shift 2
    "$bin" --dsn "$PGSCHED_TEST_DSN" --schema "$schema" "$@" >"$out" 2>"$err" </dev/null
    got=$?
    if [ "$got" != "$want" ]; then
        fail "$name: exit status $got, expected $want (stderr: $(head -c 400 "$err"))"
        return 1
    fi
    pass
    return 0
}

has() { # NAME FILE TEXT: FILE contains TEXT
    if grep -qF -- "$3" "$2"; then pass; else fail "$1: [$(head -c 600 "$2")] lacks [$3]"; fi
}

lacks() { # NAME FILE TEXT
    if grep -qF -- "$3" "$2"; then fail "$1: [$(head -c 600 "$2")] has [$3]"; else pass; fi
}

# json NAME PYTHON-EXPRESSION: stdout parses as JSON and the expression (over `d`) is true.
json() {
    if python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 3)' "$out" "$2" 2>"$tmp/py"; then
        pass
    else
        fail "$1: JSON check [$2] failed on [$(head -c 600 "$out")] $(tail -n 1 "$tmp/py")"
    fi
}

# wait_for NAME SECONDS COMMAND...: until COMMAND succeeds, or fail after SECONDS.
wait_for() {
    local name=$1 deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            fail "$name: not within $((deadline - SECONDS + $2))s"
            return 1
        fi
        sleep 0.1
    done
    pass
}

# status_is NAME KEY STATUS: the instance has that status now.
status_is() {
    "$bin" --dsn "$PGSCHED_TEST_DSN" --schema "$schema" show "$1" "$2" --json 2>/dev/null |
        python3 -c 'import json, sys; sys.exit(json.load(sys.stdin)["status"] != sys.argv[1])' "$3"
}
# gone NAME KEY: the instance does not exist.
gone() {
    "$bin" --dsn "$PGSCHED_TEST_DSN" --schema "$schema" show "$1" "$2" >/dev/null 2>&1
    [ $? = 1 ]
}
# ran NAME KEY OUTCOME: the history of the instance has a run with that outcome.
ran() {
    "$bin" --dsn "$PGSCHED_TEST_DSN" --schema "$schema" history "$1" "$2" --json 2>/dev/null |
        python3 -c 'import json, sys
sys.exit(not any(r["outcome"] == sys.argv[1] for r in json.load(sys.stdin)))' "$3"
}

# ---- help and usage ----
ctl help 0 --help && has help "$out" "usage: pgschedctl"
for c in list show history nodes schedule cancel trigger remove migrate stats top; do
    ctl "$c --help" 0 "$c" --help && has "$c --help" "$out" "usage: pgschedctl $c"
done
ctl "help schedule" 0 help schedule && has "help schedule" "$out" "--every DUR"
ctl no_command 2
ctl unknown_command 2 frobnicate && has unknown_command "$err" 'unknown command "frobnicate"'
ctl unknown_option 2 list --colour && has unknown_option "$err" "unknown option --colour"
ctl option_of_another_command 2 list --cron '* * * * *' && has option_of_another_command "$err" \
    "list does not take --cron"
ctl show_needs_name_and_key 2 show only-a-name && has show_needs_name_and_key "$err" \
    "show needs NAME and KEY"
ctl schedule_needs_a_kind 2 schedule a b
ctl schedule_takes_one_kind 2 schedule a b --now --every 1s
ctl option_missing_value 2 list --name

# ---- connection and schema ----
"$bin" --dsn "host=127.0.0.1 port=1 connect_timeout=3" list >"$out" 2>"$err" </dev/null
rc=$?
[ $rc = 2 ] && pass || fail "no server: exit status $rc, expected 2 ($(head -c 300 "$err"))"
ctl tables_missing_is_refused 1 list && has tables_missing_is_refused "$err" "do not exist"
ctl migrate 0 migrate && has migrate "$out" "schema version"
ctl migrate_twice 0 migrate
ctl list_empty 0 list && has list_empty "$out" "NAME"
ctl list_empty_json 0 list --json && json list_empty_json 'd == []'

# ---- invalid input: refused ----
ctl bad_cron 1 schedule a b --cron '61 * * * *'
ctl bad_json 1 schedule a b --now --params '{"a":'
ctl bad_time 1 schedule a b --at tomorrow
ctl bad_every 1 schedule a b --every 5x
ctl bad_retries 1 schedule a b --now --max-retries -2
ctl bad_status 1 list --status lost
ctl bad_schema 1 --schema 'x;drop' list
ctl nothing_written_by_refusals 0 list --json && json nothing_written_by_refusals 'd == []'

# ---- schedule, list, show (no node runs these types) ----
ctl schedule_cron 0 schedule report daily --cron '0 7 * * MON-FRI' --params '{"region":"emea"}' &&
    has schedule_cron "$out" "created report/daily"
ctl schedule_every 0 schedule tick t1 --every 90s
# the first run is one interval after the database's now (it adds the delay itself)
every_in=$("$psql_bin" -X -q -At -d "$PGSCHED_TEST_DSN" -c "SELECT extract(epoch FROM next_run - now())::int \
    FROM $schema.pgsched_jobs WHERE name = 'tick' AND key = 't1'" 2>&1)
if [ -n "$every_in" ] && [ "$every_in" -ge 80 ] 2>/dev/null && [ "$every_in" -le 90 ]; then pass; else
    fail "schedule_every_due_in_one_interval: next_run - now() is [$every_in] s, want 80..90"; fi
ctl schedule_at 0 schedule mail later --at 2099-01-01T00:00:00Z --max-retries 0
ctl reschedule 0 schedule tick t1 --every 1h && has reschedule "$out" "rescheduled tick/t1"
ctl list_table 0 list
has list_table "$out" "0 7 * * MON-FRI"
has list_table "$out" "every 1h"
has list_table "$out" "2099-01-01T00:00:00Z"
ctl list_json 0 list --json &&
    json list_json 'len(d) == 3 and [r["name"] for r in d] == ["mail", "report", "tick"]'
ctl list_by_name 0 list --name tick --json && json list_by_name 'len(d) == 1 and d[0]["key"] == "t1"'
ctl list_limit 0 list --limit 2 --json && json list_limit 'len(d) == 2'
ctl show 0 show report daily && has show "$out" '{"region":"emea"}'
ctl show_json 0 show report daily --json &&
    json show_json 'd["params"] == {"region": "emea"} and d["kind"] == "cron" and d["max_retries"] == 3'
ctl show_missing 1 show report nightly && has show_missing "$err" "does not exist"
ctl schedule_json 0 schedule tick t1 --every 2h --json &&
    json schedule_json 'd["created"] is False and d["old_status"] == "pending"'

# ---- cancel, trigger, remove without a node ----
ctl cancel_recurring_refused 1 cancel tick t1 && has cancel_recurring_refused "$err" "nothing to cancel"
ctl trigger 0 trigger mail later --json && json trigger 'd["effect"] == "triggered"'
ctl trigger_moves_due_time 0 show mail later --json && json trigger_moves_due_time \
    'not d["next_run"].startswith("2099")'
ctl cancel_once 0 schedule mail soon --at 2099-01-01T00:00:00Z
ctl cancel_once 0 cancel mail soon && has cancel_once "$out" "cancelled mail/soon"
wait_for cancelled_status 5 status_is mail soon cancelled
ctl trigger_not_pending 1 trigger mail soon
ctl cancel_missing 1 cancel mail nobody
ctl remove 0 remove tick t1 && has remove "$out" "removed tick/t1"
ctl remove_missing 1 remove tick t1
ctl show_after_remove 1 show tick t1

# ---- with a node ----
cc=${CC:-cc}
if ! $cc -std=c99 -Wall -Wextra -Wpedantic -Werror -I"$repo" -I"$(pg_config --includedir)" \
    "$repo/tests/ctl_node.c" -o "$tmp/ctl_node" -lpq -lpthread 2>"$tmp/cc"; then
    fail "tests/ctl_node.c builds: $(head -c 600 "$tmp/cc")"
    finish
fi
PGSCHED_SCHEMA=$schema "$tmp/ctl_node" 120 >"$tmp/node.out" 2>"$tmp/node.err" &
node_pid=$!
wait_for node_ready 20 grep -q ready "$tmp/node.out"

ctl schedule_ok 0 schedule ctl_ok a --now
wait_for ok_runs 10 ran ctl_ok a success
ctl schedule_fail 0 schedule ctl_fail b --now --max-retries 0
wait_for fail_runs 10 ran ctl_fail b failure
ctl history 0 history ctl_fail && has history "$out" "boom b"
ctl history_json 0 history --json &&
    json history_json 'len(d) >= 2 and {r["outcome"] for r in d} >= {"success", "failure"}'
ctl history_limit 0 history --limit 1 --json && json history_limit 'len(d) == 1'
ctl nodes 0 nodes && has nodes "$out" "up" && has nodes "$out" "ctl_sleep"
ctl nodes_json 0 nodes --json &&
    json nodes_json 'len(d) == 1 and d[0]["state"] == "up" and "ctl_ok" in d[0]["types"]'
ctl stats_json 0 stats --json && json stats_json \
    'd["runs_last_minute"] >= 2 and d["failures_last_minute"] >= 1 and d["nodes_up"] == 1 and d["types"]["ctl_fail"]["failed"] == 1'
ctl stats 0 stats && has stats "$out" "ctl_fail"

ctl schedule_sleep 0 schedule ctl_sleep c --now
wait_for sleep_running 10 status_is ctl_sleep c running
ctl list_running 0 list --status running --json &&
    json list_running 'len(d) == 1 and d[0]["key"] == "c" and d[0]["owner"]'
ctl top_plain 0 top
has top_plain "$out" "RUNNING"
has top_plain "$out" "ctl_sleep"
has top_plain "$out" "boom b"
lacks top_plain_has_no_escapes "$out" $'\033'
ctl reschedule_running_refused 1 schedule ctl_sleep c --now
ctl reschedule_after_run 0 schedule ctl_sleep c --at 2099-01-01T00:00:00Z --after-run --json &&
    json reschedule_after_run 'd["deferred"] is True'
ctl trigger_running_refused 1 trigger ctl_sleep c
ctl cancel_running 0 cancel ctl_sleep c && has cancel_running "$out" "asked node"
wait_for cancel_stops_the_run 10 ran ctl_sleep c cancelled
wait_for deferred_change_applied 10 status_is ctl_sleep c pending

ctl schedule_sleep_d 0 schedule ctl_sleep d --now
wait_for sleep_d_running 10 status_is ctl_sleep d running
ctl remove_running 0 remove ctl_sleep d --json && json remove_running \
    'd["effect"] == "deferred"'
wait_for remove_deletes_after_run 10 gone ctl_sleep d

# ---- top under a pseudo-terminal ----
ctl schedule_sleep_e 0 schedule ctl_sleep e --now
wait_for sleep_e_running 10 status_is ctl_sleep e running
# quote each word for script -c, which runs its command through a shell
topcmd=$(printf '%q ' "$bin" --dsn "$PGSCHED_TEST_DSN" --schema "$schema" top -n 2)
if script -qfc "$topcmd" /dev/null </dev/null >"$out" 2>"$err"; then pass; else
    fail "top under a pty: exit status $? ($(head -c 300 "$err"))"
fi
has top_tty_alternate_screen "$out" $'\033[?1049h'
has top_tty_leaves_it "$out" $'\033[?1049l'
has top_tty_running "$out" "ctl_sleep"
frames=$(grep -o 'pgschedctl top ' "$out" | wc -l)
[ "$frames" = 2 ] && pass || fail "top -n 2 drew $frames frames, expected 2"
# without -n it refreshes until interrupted, and leaves the terminal as it found it
topcmd=$(printf '%q ' timeout -s INT 2.5 "$bin" --dsn "$PGSCHED_TEST_DSN" --schema "$schema" top)
script -qfc "$topcmd" /dev/null </dev/null >"$out" 2>"$err"
frames=$(grep -o 'pgschedctl top ' "$out" | wc -l)
[ "$frames" -ge 2 ] && pass || fail "top drew $frames frames in 2.5s, expected at least 2"
has top_interrupted_leaves_screen "$out" $'\033[?1049l'

# ---- the node stops ----
kill "$node_pid"
wait "$node_pid"
node_pid=
ctl nodes_after_stop 0 nodes --json && json nodes_after_stop 'd[0]["state"] == "stopped"'

finish
