#!/usr/bin/env bash
# tests/test_cli.sh - checks the pgsched-cron command line: output format and exit statuses.
#
#   tests/test_cli.sh [path/to/pgsched-cron]     (default: build/pgsched-cron, or $PGSCHED_SCHEDULE_CRON)
#
# Prints one line per failed check and "N passed, N failed" at the end; exits 1 on a failure.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-${PGSCHED_SCHEDULE_CRON:-$here/build/pgsched-cron}}
if [ ! -x "$bin" ]; then
    echo "test_cli.sh: $bin is not built" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# run NAME WANT_STATUS ARGS... : runs the binary, then checks its status.
run() {
    local name=$1 want=$2
    shift 2
    "$bin" "$@" >"$out" 2>"$err" </dev/null
    local got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL $name: exit status $got, expected $want (stderr: $(head -c 300 "$err"))"
        failed=$((failed + 1))
        return 1
    fi
    return 0
}

pass() { passed=$((passed + 1)); }
fail() {
    echo "FAIL $1"
    failed=$((failed + 1))
}

expect_stdout() { # NAME EXPECTED-TEXT
    if [ "$(cat "$out")" == "$2" ]; then pass; else fail "$1: stdout was [$(cat "$out")], expected [$2]"; fi
}

expect_stderr_has() { # NAME TEXT
    if grep -qF -- "$2" "$err"; then pass; else fail "$1: stderr [$(cat "$err")] lacks [$2]"; fi
}

expect_stdout_empty() {
    if [ ! -s "$out" ]; then pass; else fail "$1: stdout should be empty, was [$(cat "$out")]"; fi
}

# ---- output format ----
run default_count_is_five 0 --from 2026-03-08T00:00:00Z 'CRON_TZ=America/New_York 0 3 * * *' &&
    expect_stdout default_count_is_five "2026-03-08T07:00:00Z
2026-03-09T07:00:00Z
2026-03-10T07:00:00Z
2026-03-11T07:00:00Z
2026-03-12T07:00:00Z"

run n_limits_the_count 0 -n 2 --from 2026-03-08T00:00:00Z '*/15 * * * *' &&
    expect_stdout n_limits_the_count "2026-03-08T00:15:00Z
2026-03-08T00:30:00Z"

run n_attached_and_from_with_equals 0 -n3 --from=2026-03-08T00:00:00Z '@daily' &&
    expect_stdout n_attached_and_from_with_equals "2026-03-09T00:00:00Z
2026-03-10T00:00:00Z
2026-03-11T00:00:00Z"

run local_prints_the_zone_offset 0 --local -n 3 --from 2026-03-07T00:00:00Z \
    'CRON_TZ=America/New_York 30 2 * * *' &&
    expect_stdout local_prints_the_zone_offset "2026-03-07T02:30:00-05:00
2026-03-08T03:00:00-04:00
2026-03-09T02:30:00-04:00"

run local_utc_prints_plus_zero 0 --local -n 1 --from 2026-03-08T00:00:00Z '0 12 * * *' &&
    expect_stdout local_utc_prints_plus_zero "2026-03-08T12:00:00+00:00"

run local_past_year_9999_falls_back_to_utc 0 --local -n 2 --from 9999-12-30T00:00:00Z \
    'CRON_TZ=Asia/Tokyo 0 0 * * *' &&
    expect_stdout local_past_year_9999_falls_back_to_utc "9999-12-31T00:00:00+09:00
9999-12-31T15:00:00Z"

run from_is_exclusive 0 -n 1 --from 2026-03-08T12:00:00Z '0 12 * * *' &&
    expect_stdout from_is_exclusive "2026-03-09T12:00:00Z"

run from_accepts_an_offset 0 -n 1 --from 2026-03-08T07:00:00+05:00 '0 * * * *' &&
    expect_stdout from_accepts_an_offset "2026-03-08T03:00:00Z"

run every_keeps_fractions 0 -n 2 --from 2026-03-08T00:00:00.25Z '@every 1.5s' &&
    expect_stdout every_keeps_fractions "2026-03-08T00:00:01.750000Z
2026-03-08T00:00:03.250000Z"

run seconds_field 0 -n 2 --from 2026-03-08T00:00:00Z '*/20 * * * * *' &&
    expect_stdout seconds_field "2026-03-08T00:00:20Z
2026-03-08T00:00:40Z"

run tzdir_option 0 -n 1 --tzdir "$here/tests/data/zoneinfo" --from 2027-03-01T00:00:00Z \
    'CRON_TZ=Test/Julian 30 2 * * *' &&
    expect_stdout tzdir_option "2027-03-01T01:00:00Z"

run default_from_is_now 0 -n 1 '* * * * *'
if [ "$(wc -l <"$out")" -eq 1 ] && grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:00Z$' "$out"; then
    pass
else
    fail "default_from_is_now: [$(cat "$out")]"
fi

run schedule_ending_prints_what_there_is 0 -n 5 --from 9999-12-29T00:00:00Z '@daily' &&
    expect_stdout schedule_ending_prints_what_there_is "9999-12-30T00:00:00Z
9999-12-31T00:00:00Z" && expect_stderr_has schedule_ending_note "no further run before year 10000 (2 of 5 printed)"

if run help_exits_zero 0 --help; then
    if grep -q '^usage: pgsched-cron' "$out"; then pass; else fail "help_exits_zero: no usage line"; fi
fi

# ---- exit status 2 ----
run invalid_expression_exits_2 2 --from 2026-03-08T00:00:00Z '0 24 * * *' &&
    expect_stderr_has invalid_expression_message "hour: 24 is out of range 0-23 (column 3)" &&
    expect_stdout_empty invalid_expression_prints_nothing

run never_matching_exits_2 2 '0 0 30 2 *' && expect_stderr_has never_message "can never match"
run unknown_zone_exits_2 2 'CRON_TZ=Mars/Base 0 0 * * *' &&
    expect_stderr_has unknown_zone_message 'unknown time zone "Mars/Base"'
run bad_from_exits_2 2 --from yesterday '* * * * *' &&
    expect_stderr_has bad_from_message '--from: "yesterday" is not an RFC 3339 time'
run bad_n_exits_2 2 -n 0 '* * * * *' && expect_stderr_has bad_n_message '-n needs a whole number'
run bad_n_text_exits_2 2 -n five '* * * * *' && expect_stderr_has bad_n_text_message '"five"'
run missing_n_value_exits_2 2 '* * * * *' -n && expect_stderr_has missing_n_message '-n needs a number'
run missing_expression_exits_2 2 -n 3 && expect_stderr_has missing_expression_message 'missing the cron expression'
run unquoted_expression_exits_2 2 0 9 '*' '*' '*' && expect_stderr_has unquoted_message 'got 5 arguments'
run unknown_option_exits_2 2 --frob '* * * * *' && expect_stderr_has unknown_option_message 'unknown option --frob'
run missing_from_value_exits_2 2 '* * * * *' --from && expect_stderr_has missing_from_message '--from needs a time'
run from_before_1900_exits_2 2 --from 1899-12-31T23:59:59Z '* * * * *' &&
    expect_stderr_has from_before_1900_message 'is outside the supported range 1900-01-01T00:00:00Z'
run from_after_9999_exits_2 2 --from 10000-01-01T00:00:00Z '* * * * *' &&
    expect_stderr_has from_after_9999_message '"10000-01-01T00:00:00Z" is not an RFC 3339 time'
run leap_second_zone_exits_2 2 'CRON_TZ=right/UTC 0 0 * * *' &&
    expect_stderr_has leap_second_zone_message 'counts leap seconds'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
