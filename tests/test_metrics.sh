#!/usr/bin/env bash
# tests/test_metrics.sh - examples/metrics.c serves the Prometheus text on /metrics over HTTP,
# answers 404 elsewhere, and stops on SIGINT with exit status 0.
#
#   tests/test_metrics.sh [path/to/metrics]   (default: $PGSCHED_BUILD_DIR/metrics, else
#                                               build/metrics)
#
# Runs it on the in-memory store (no database needed). HTTP requests go through bash's
# /dev/tcp. Prints one line per failed check and "N passed, N failed" at the end.
set -u

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-${PGSCHED_BUILD_DIR:-$repo/build}/metrics}
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
[ -x "$bin" ] || {
    fail "$bin is built (make examples)"
    finish
}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

env -u PGSCHED_DSN "$bin" 60 >"$tmp/out" 2>"$tmp/err" &
pid=$!
port=
deadline=$((SECONDS + 10))
while [ -z "$port" ] && [ $SECONDS -lt $deadline ]; do
    port=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/out")
    [ -z "$port" ] && sleep 0.05
done
[ -n "$port" ] && pass || {
    fail "metrics printed its address within 10 s ($(cat "$tmp/out" "$tmp/err"))"
    finish
}

get() { # PATH: the whole HTTP response into $tmp/resp
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3
    timeout 5 cat <&3 >"$tmp/resp"
    exec 3<&-
}
has() { # NAME TEXT: the response has TEXT
    if grep -qF -- "$2" "$tmp/resp"; then pass; else fail "$1: [$(head -c 400 "$tmp/resp")] lacks [$2]"; fi
}

# the interval job runs every 200 ms: its claims show in a later scrape
deadline=$((SECONDS + 10))
until get /metrics && grep -q '^pgsched_runs_total{job_type="tick",outcome="success"} [1-9]' \
    "$tmp/resp"; do
    [ $SECONDS -ge $deadline ] && break
    sleep 0.1
done
has status "HTTP/1.0 200 OK"
has content_type "Content-Type: text/plain; version=0.0.4"
has help_line "# HELP pgsched_runs_total "
has type_line "# TYPE pgsched_claim_duration_seconds histogram"
has tick_runs 'pgsched_runs_total{job_type="tick",outcome="success"} '
grep -q '^pgsched_runs_total{job_type="tick",outcome="success"} [1-9]' "$tmp/resp" && pass ||
    fail "tick ran within 10 s: $(grep tick "$tmp/resp" | head -3)"
# Content-Length is the body's length
body_len=$(($(wc -c <"$tmp/resp") - $(sed '/^\r$/q' "$tmp/resp" | wc -c)))
clen=$(sed -n 's/^Content-Length: \([0-9]*\)\r$/\1/p' "$tmp/resp")
[ "$clen" = "$body_len" ] && pass || fail "Content-Length $clen, body $body_len bytes"
get /other && has not_found "HTTP/1.0 404 Not Found"

kill -INT "$pid"
deadline=$((SECONDS + 10))
while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
if kill -0 "$pid" 2>/dev/null; then
    fail "metrics still runs 10 s after SIGINT"
else
    wait "$pid"
    rc=$?
    pid=
    [ $rc = 0 ] && pass || fail "exit status $rc after SIGINT"
    grep -q '^pgsched_claimed_total{job_type="tick"} [1-9]' "$tmp/out" && pass ||
        fail "the last scrape is printed at exit"
fi
finish
