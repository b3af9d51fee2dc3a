#!/usr/bin/env bash
# tests/test_sql_functions.sh - the SQL functions of migrations 2 and 3 ({prefix}schedule,
# trigger, cancel, remove) against a real PostgreSQL and a running node.
#
# Needs PGSCHED_TEST_DSN (tests/run_tests.sh sets it), psql, build/pgschedctl (to create the
# tables, as any node would) and build/pgsched-cron (the C engine's first runs, compared with
# the SQL ones). Builds tests/ctl_node.c, a node that runs the jobs. Works in a schema of its
# own, dropped at the end. Prints one line per failed check and "N passed, N failed".
set -u

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PGSCHED_BUILD_DIR:-$repo/build}
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
for b in pgschedctl pgsched-cron; do
    [ -x "$build/$b" ] || {
        fail "$build/$b is built (make examples)"
        finish
    }
done
[ -n "${PGSCHED_TEST_DSN:-}" ] || {
    fail "PGSCHED_TEST_DSN is set (tests/run_tests.sh sets it)"
    finish
}
psql_bin=psql
[ -n "${PGSCHED_PG_BINDIR:-}" ] && [ -x "$PGSCHED_PG_BINDIR/psql" ] && psql_bin=$PGSCHED_PG_BINDIR/psql

tmp=$(mktemp -d)
schema=sqltest_$$
role=sqltest_app_$$
node_pid=
cleanup() {
    [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
    "$psql_bin" -X -q -d "$PGSCHED_TEST_DSN" -c "DROP SCHEMA IF EXISTS $schema CASCADE" \
        -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
out=$tmp/out
err=$tmp/err

# sql NAME WANT(ok|error) SQL...: runs the statements in one psql session, stops at an error.
sql() {
    local name=$1 want=$2 rc
    shift 2
    local args=()
    for s in "$@"; do args+=(-c "$s"); done
    "$psql_bin" -X -q -At -v ON_ERROR_STOP=1 -d "$PGSCHED_TEST_DSN" "${args[@]}" >"$out" 2>"$err" </dev/null
    rc=$?
    if [ "$want" = ok ] && [ $rc != 0 ]; then
        fail "$name: psql failed: $(head -c 400 "$err")"
        return 1
    elif [ "$want" = error ] && [ $rc = 0 ]; then
        fail "$name: succeeded, expected an error (output: $(head -c 300 "$out"))"
        return 1
    fi
    pass
}
has() { # NAME FILE TEXT
    if grep -qF -- "$3" "$2"; then pass; else fail "$1: [$(head -c 500 "$2")] lacks [$3]"; fi
}
same() { # NAME GOT WANT
    if [ "$2" = "$3" ]; then pass; else fail "$1: got [$2], expected [$3]"; fi
}
wait_for() { # NAME SECONDS COMMAND...
    local name=$1 deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            fail "$name: not within $2 s"
            return 1
        fi
        sleep 0.1
    done
    pass
}
status_of() { # NAME KEY: prints the status, or nothing
    "$psql_bin" -X -At -d "$PGSCHED_TEST_DSN" -c \
        "SELECT status FROM $schema.pgsched_jobs WHERE name = '$1' AND key = '$2'" 2>/dev/null
}
status_is() { [ "$(status_of "$1" "$2")" = "$3" ]; }
ran() { # NAME KEY OUTCOME
    [ "$("$psql_bin" -X -At -d "$PGSCHED_TEST_DSN" -c "SELECT count(*) FROM $schema.pgsched_runs \
        WHERE name = '$1' AND key = '$2' AND outcome = '$3'" 2>/dev/null)" -ge 1 ]
}
S=$schema

"$build/pgschedctl" --dsn "$PGSCHED_TEST_DSN" --schema "$schema" migrate >"$out" 2>"$err" ||
    fail "migrate: $(cat "$err")"
"$build/pgschedctl" --dsn "$PGSCHED_TEST_DSN" --schema "$schema" migrate >"$out" 2>"$err" &&
    pass || fail "migrate twice (the functions are replaced): $(cat "$err")"

# ---- the definitions ----
sql definitions ok "SELECT p.proname || ' ' || p.prosecdef || ' ' || array_to_string(p.proconfig, ';') \
    || ' ' || has_function_privilege('public', p.oid, 'EXECUTE') FROM pg_proc p \
    WHERE p.pronamespace = '$S'::regnamespace AND p.proname IN ('pgsched_schedule', \
    'pgsched_trigger', 'pgsched_cancel', 'pgsched_remove') ORDER BY 1"
same definitions_invoker_pinned_no_public "$(cat "$out")" "pgsched_cancel false search_path=pg_catalog, pg_temp false
pgsched_remove false search_path=pg_catalog, pg_temp false
pgsched_schedule false search_path=pg_catalog, pg_temp false
pgsched_trigger false search_path=pg_catalog, pg_temp false"

# ---- the first run of a cron expression: the C engine's ----
from=2026-03-07T10:17:30Z
for e in '*/15 * * * *' '0 7 * * MON-FRI' '0 0 13 * 5' '0 0 */2 * 5' '0 0 1-31 * 1' \
    '30 2 29 2 *' '@monthly' '@Weekly' '5/20 */3 * JAN-3 *' '0 0 * * FRI-SUN' '0 0 * * 7/2' \
    '0 12 1,15 * ?' '59 23 31 12 *' '0 0 * * sun-sun' '0 9-17/4 * * 1-5' '0 0 1 jan,jul *' \
    '007 * * * *' '*/60 * * * *' '0 0 1-31/31 * *' '0 0 * * 0-7' '0 0 * * */7'; do
    sql "cron_next $e" ok "SELECT to_char($S.pgsched_cron_next('$e', '$from') AT TIME ZONE 'UTC', \
        'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')" &&
        same "cron first run of '$e'" "$(cat "$out")" "$("$build/pgsched-cron" -n 1 --from "$from" "$e")"
done

# ---- refused input, nothing written ----
for bad in "cron => '61 * * * *'" "cron => '0 0 30 2 *'" "cron => '5-1 * * * *'" \
    "cron => '*/0 * * * *'" "cron => '0 0 * *'" "cron => 'CRON_TZ=Europe/Paris 0 7 * * *'" \
    "cron => '0 0 7 * * *'" "cron => '0 0 L * *'" "cron => '0 0 * * MON#1'" \
    "cron => '@every 1h'" "every => interval '1 month'" "every => interval '-5 seconds'" \
    "cron => '* * * * *', every => interval '1 hour'" "max_retries => -1" \
    "run_at => 'infinity'" "params => '{\"a\":'"; do
    sql "refused: $bad" error "SELECT $S.pgsched_schedule('x', 'y', $bad)"
done
sql refused_name error "SELECT $S.pgsched_schedule('', 'y')"
sql refused_key_control_character error "SELECT $S.pgsched_schedule('x', E'a\\nb')"
sql refused_long_key error "SELECT $S.pgsched_schedule('x', repeat('k', 257))"
sql refused_unsupported_says_so error "SELECT $S.pgsched_schedule('x', 'y', cron => '0 0 L * *')" &&
    has refused_unsupported_says_so "$err" "not computed by the SQL functions"
sql refusals_wrote_nothing ok "SELECT count(*) FROM $S.pgsched_jobs" &&
    same refusals_wrote_nothing "$(cat "$out")" 0

# ---- rows as the C API writes them ----
sql schedule_cron ok "SELECT $S.pgsched_schedule('report', 'daily', cron => '0 7 * * MON-FRI', \
    params => '{\"region\":\"emea\"}')"
sql cron_row ok "SELECT kind, cron, params::text, max_retries, status, \
    next_run = $S.pgsched_cron_next('0 7 * * MON-FRI', now()) FROM $S.pgsched_jobs \
    WHERE name = 'report'"
same cron_row "$(cat "$out")" 'cron|0 7 * * MON-FRI|{"region":"emea"}|3|pending|t'
sql schedule_every ok "SELECT $S.pgsched_schedule('tick', 't', every => interval '90 seconds', \
    max_retries => 0) - now() BETWEEN interval '89 seconds' AND interval '90 seconds'"
same schedule_every "$(cat "$out")" t
sql every_row ok "SELECT kind, every_us, cron IS NULL FROM $S.pgsched_jobs WHERE name = 'tick'"
same every_row "$(cat "$out")" "interval|90000000|t"
"$build/pgschedctl" --dsn "$PGSCHED_TEST_DSN" --schema "$S" show report daily --json >"$out" 2>"$err" &&
    pass || fail "pgschedctl reads the row: $(cat "$err")"
sql in_a_rolled_back_transaction ok "BEGIN" \
    "SELECT $S.pgsched_schedule('mail', 'rolled-back', run_at => now() + interval '10 min')" \
    "ROLLBACK" "SELECT count(*) FROM $S.pgsched_jobs WHERE key = 'rolled-back'"
same rollback_leaves_no_job "$(tail -n 1 "$out")" 0

# ---- the same notifications as the C statements ----
ch="$S.pgsched_events"
sql notify_schedule ok "LISTEN \"$ch\"" \
    "SELECT $S.pgsched_schedule('mail', 'welcome-42', run_at => '2030-01-01T00:00:00Z')" \
    "SELECT version FROM $S.pgsched_jobs WHERE key = 'welcome-42'"
v=$(tail -n 1 "$out")
has notify_schedule "$out" "$(printf 'payload "C\tmail\twelcome-42\tnone\tpending\t%s\t\t1893456000000000"' "$v")"
sql notify_trigger ok "LISTEN \"$ch\"" "SELECT $S.pgsched_trigger('mail', 'welcome-42') IS NOT NULL" \
    "SELECT version, (extract(epoch FROM next_run) * 1000000)::int8 FROM $S.pgsched_jobs WHERE key = 'welcome-42'"
IFS='|' read -r v us < <(tail -n 1 "$out")
has notify_trigger "$out" "$(printf 'payload "C\tmail\twelcome-42\tpending\tpending\t%s\t\t%s"' "$v" "$us")"
sql notify_cancel ok "LISTEN \"$ch\"" "SELECT $S.pgsched_cancel('mail', 'welcome-42')" \
    "SELECT version FROM $S.pgsched_jobs WHERE key = 'welcome-42'"
v=$(tail -n 1 "$out")
has cancel_effect "$out" "cancelled"
has notify_cancel "$out" "$(printf 'payload "C\tmail\twelcome-42\tpending\tcancelled\t%s\t\t"' "$v")"
sql cancel_recurring_is_none ok "SELECT $S.pgsched_cancel('report', 'daily')"
same cancel_recurring_is_none "$(cat "$out")" none
sql trigger_not_pending error "SELECT $S.pgsched_trigger('mail', 'welcome-42')"
sql trigger_missing error "SELECT $S.pgsched_trigger('mail', 'nobody')"
sql cancel_missing error "SELECT $S.pgsched_cancel('mail', 'nobody')"
sql notify_remove ok "LISTEN \"$ch\"" "SELECT $S.pgsched_remove('tick', 't')"
has remove_effect "$out" removed
has notify_remove "$out" "$(printf 'payload "C\ttick\tt\tpending\tnone\t')"
sql remove_missing error "SELECT $S.pgsched_remove('tick', 't')"

# ---- privileges: EXECUTE and the row grants, nothing more ----
sql role ok "CREATE ROLE $role" "GRANT USAGE ON SCHEMA $S TO $role"
sql execute_is_not_granted_by_default error "SET ROLE $role" "SELECT $S.pgsched_schedule('a', 'b')"
sql execute_alone_is_not_enough ok "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA $S TO $role"
sql no_rows_no_scheduling error "SET ROLE $role" "SELECT $S.pgsched_schedule('a', 'b')" &&
    has no_rows_no_scheduling "$err" "permission denied"
sql row_grants ok "GRANT SELECT, INSERT, UPDATE, DELETE ON $S.pgsched_jobs TO $role" \
    "GRANT USAGE ON SEQUENCE $S.pgsched_seq TO $role"
sql with_row_grants_it_schedules ok "SET ROLE $role" "SELECT $S.pgsched_schedule('a', 'b') IS NOT NULL" \
    "SELECT $S.pgsched_remove('a', 'b')"

# ---- a job scheduled from psql runs on a node ----
cc=${CC:-cc}
if ! $cc -std=c99 -Wall -Wextra -Wpedantic -Werror -I"$repo" -I"$(pg_config --includedir)" \
    "$repo/tests/ctl_node.c" -o "$tmp/ctl_node" -lpq -lpthread 2>"$tmp/cc"; then
    fail "tests/ctl_node.c builds: $(head -c 600 "$tmp/cc")"
    finish
fi
PGSCHED_SCHEMA=$schema "$tmp/ctl_node" 120 >"$tmp/node.out" 2>"$tmp/node.err" &
node_pid=$!
wait_for node_ready 20 grep -q ready "$tmp/node.out"
sql schedule_from_psql ok "SELECT $S.pgsched_schedule('ctl_ok', 'from-psql', params => '{\"n\":1}')"
wait_for job_from_psql_runs_on_a_node 10 ran ctl_ok from-psql success
sql schedule_in_a_committed_transaction ok "BEGIN" \
    "SELECT $S.pgsched_schedule('ctl_ok', 'in-tx', run_at => now())" "COMMIT"
wait_for committed_job_runs 10 ran ctl_ok in-tx success
sql schedule_sleep ok "SELECT $S.pgsched_schedule('ctl_sleep', 's')"
wait_for sleep_running 10 status_is ctl_sleep s running
sql reschedule_running_refused error "SELECT $S.pgsched_schedule('ctl_sleep', 's')" &&
    has reschedule_running_refused "$err" "after_run"
sql reschedule_after_run ok "SELECT $S.pgsched_schedule('ctl_sleep', 's', \
    run_at => '2030-01-01T00:00:00Z', after_run => true)"
sql cancel_running ok "SELECT $S.pgsched_cancel('ctl_sleep', 's')"
same cancel_running "$(cat "$out")" requested
wait_for the_node_stops_the_run 10 ran ctl_sleep s cancelled
wait_for deferred_change_applied 10 status_is ctl_sleep s pending
sql schedule_sleep2 ok "SELECT $S.pgsched_schedule('ctl_sleep', 's2')"
wait_for sleep2_running 10 status_is ctl_sleep s2 running
sql remove_running ok "SELECT $S.pgsched_remove('ctl_sleep', 's2')"
same remove_running "$(cat "$out")" deferred
wait_for removed_when_the_run_ends 10 status_is ctl_sleep s2 ""
sql trigger_far_future ok "SELECT $S.pgsched_schedule('ctl_ok', 'later', run_at => '2030-01-01T00:00:00Z')" \
    "SELECT $S.pgsched_trigger('ctl_ok', 'later') IS NOT NULL"
wait_for triggered_job_runs 10 ran ctl_ok later success

finish
