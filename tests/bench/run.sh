#!/usr/bin/env bash
# tests/bench/run.sh [BUILD_DIR] - the whole `make bench`: every figure of SPEC §11 on one
# PostgreSQL server, fsync off and then on, ending with one summary table (Markdown, ready to
# paste into README.md): figure, value, baseline, ratio (value / baseline), goal.
#
# The server: a throwaway cluster from tests/pgcluster.sh (with pg_stat_statements preloaded,
# for the idle figure), switched between fsync off and on with ALTER SYSTEM + reload. With
# PGSCHED_TEST_DSN set, that server is used as it is (its fsync setting is left alone, so only
# its current setting is measured, and the idle figure counts transactions only unless the
# server preloads pg_stat_statements).
#
# Environment (defaults in brackets; BENCH_QUICK=1 gives the second ones, for a ~3 min run):
#   BENCH_ROUNDS         throughput rounds; the table shows the median        [3 | 1]
#   BENCH_JOBS           no-op jobs per throughput run                         [20000 | 5000]
#   BENCH_WORKERS        workers in total, split over the nodes                [10]
#   BENCH_NODES          node counts                                           ["1 2 4"]
#   BENCH_BASE_SECONDS   seconds per baseline run                              [5 | 3]
#   BENCH_SCHEDULES      single schedule calls                                 [2000 | 500]
#   BENCH_SCALE_ROWS     rows of the large table in the scale figures          [1000000 | 100000]
#   BENCH_MEMORY_JOBS    runs of the memory figure                             [100000 | 20000]
#   BENCH_FIRINGS        firings of the precision figure (= idle seconds)      [60 | 15]
#   BENCH_LATENCY_JOBS   jobs of the latency figures, 5 ms apart               [500 | 200]
#   BENCH_HUGE_PAGES=N   (as root, Linux) reserve N huge pages (vm.nr_hugepages) for the
#                        throwaway server and start it with huge_pages = on; the reservation
#                        is put back as it was at the end. 160 covers the default 128 MB of
#                        shared_buffers. A new backend then maps the server's shared memory in
#                        2 MB pages instead of faulting it in 4 kB at a time [unset: off]
#   BENCH_SUMMARY_ONLY=1 measure nothing: print the table again from the last run's raw figures
#                        (BUILD_DIR/bench/results.txt), e.g. with another BENCH_PEER
#   BENCH_PEER           a file with the output of the peer scripts (Graphile Worker's
#                        graphile.sh and pgbench-baseline.sh), run in the same sitting: their
#                        figures become the baselines of the comparable lines. Without it those
#                        lines compare with the figures the project's issue 8 recorded.
# Every raw figure goes to BUILD_DIR/bench/results.txt ("BENCH <figure> <value>", one line per
# round), the full output to BUILD_DIR/bench/bench.log, the table to BUILD_DIR/bench/summary.md.
set -uo pipefail

BUILD=${1:-build}
B=$BUILD/bench
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ "${BENCH_QUICK:-0}" = 1 ]; then q=1; else q=0; fi
pick() { if [ $q = 1 ]; then echo "$2"; else echo "$1"; fi; }
ROUNDS=${BENCH_ROUNDS:-$(pick 3 1)}
JOBS=${BENCH_JOBS:-$(pick 20000 5000)}
WORKERS=${BENCH_WORKERS:-10}
NODES=${BENCH_NODES:-"1 2 4"}
BASE_S=${BENCH_BASE_SECONDS:-$(pick 5 3)}
SCHEDULES=${BENCH_SCHEDULES:-$(pick 2000 500)}
BIG=${BENCH_SCALE_ROWS:-$(pick 1000000 100000)}
MEM_JOBS=${BENCH_MEMORY_JOBS:-$(pick 100000 20000)}
FIRINGS=${BENCH_FIRINGS:-$(pick 60 15)}
LAT_N=${BENCH_LATENCY_JOBS:-$(pick 500 200)}
PEER=${BENCH_PEER:-}

for b in bench_node bench_baseline bench_claim bench_cron; do
    [ -x "$B/$b" ] || { echo "run.sh: $B/$b is missing (make bench-build)" >&2; exit 1; }
done
[ -z "$PEER" ] || [ -r "$PEER" ] || { echo "run.sh: BENCH_PEER=$PEER is not readable" >&2; exit 1; }

RESULTS=$B/results.txt LOG=$B/bench.log SUMMARY=$B/summary.md RUNINFO=$B/run-info.sh
fails=0
if [ "${BENCH_SUMMARY_ONLY:-0}" = 1 ]; then
    [ -r "$RESULTS" ] && [ -r "$RUNINFO" ] || { echo "run.sh: no earlier run in $B" >&2; exit 1; }
    # shellcheck disable=SC1090
    . "$RUNINFO" # the knobs, times and loads of the run that measured
else # measure
: >"$RESULTS"
: >"$LOG"
t_start=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

own_cluster=0 huge_conf= huge_before=
if [ -n "${BENCH_HUGE_PAGES:-}" ]; then
    [ -z "${PGSCHED_TEST_DSN:-}" ] || { echo "run.sh: BENCH_HUGE_PAGES needs the bench's own server (unset PGSCHED_TEST_DSN)" >&2; exit 1; }
    case $BENCH_HUGE_PAGES in '' | *[!0-9]*) echo "run.sh: BENCH_HUGE_PAGES=$BENCH_HUGE_PAGES is not a number of pages" >&2; exit 1 ;; esac
    huge_before=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null) &&
        echo "$BENCH_HUGE_PAGES" >/proc/sys/vm/nr_hugepages 2>/dev/null ||
        { echo "run.sh: BENCH_HUGE_PAGES: cannot set vm.nr_hugepages (root on Linux only)" >&2; exit 1; }
    echo "run.sh: vm.nr_hugepages $huge_before -> $(cat /proc/sys/vm/nr_hugepages) (put back at the end)"
    huge_conf="huge_pages = on"
fi
put_back_huge() { [ -z "$huge_before" ] || echo "$huge_before" >/proc/sys/vm/nr_hugepages; }
trap put_back_huge EXIT # (until the cluster is up: then its stop comes first)
trap 'exit 130' INT TERM
if [ -z "${PGSCHED_TEST_DSN:-}" ]; then
    out=$(PGSCHED_PG_CONF="shared_preload_libraries = 'pg_stat_statements'
$huge_conf
${PGSCHED_PG_CONF:-}" bash "$repo/tests/pgcluster.sh" start) || { put_back_huge; exit 1; }
    eval "$out"
    own_cluster=1
    trap 'bash "$repo/tests/pgcluster.sh" stop "$PGSCHED_CLUSTER_DIR"; put_back_huge' EXIT
    trap 'exit 130' INT TERM
fi

# absorb TITLE RC FILE: shows FILE, keeps it in the log and its BENCH lines in RESULTS.
absorb() {
    grep -v '^BENCH ' "$3"
    cat "$3" >>"$LOG"
    grep '^BENCH ' "$3" >>"$RESULTS"
    if [ "$2" != 0 ]; then
        echo "-- $1: FAILED (exit $2)" | tee -a "$LOG"
        fails=$((fails + 1))
    fi
    return 0
}
# step TITLE COMMAND...: runs the command and absorbs its output.
step() {
    local title=$1 rc=0
    shift
    echo "== $title ($((SECONDS - t_start)) s)" | tee -a "$LOG"
    "$@" >"$B/step.out" 2>&1 || rc=$?
    absorb "$title" "$rc" "$B/step.out"
}

step "cron next()" "$B/bench_cron"
step "scale: claim and schedule with 1,000 and $BIG rows" "$B/bench_claim" "$BIG"

if [ $own_cluster = 1 ]; then modes="off on"; else modes=current; fi
for fs in $modes; do
    [ "$fs" = current ] || step "fsync $fs" "$B/bench_node" fsync "$fs"
    for r in $(seq 1 "$ROUNDS"); do
        step "baseline: C claim+complete, $WORKERS clients, fsync $fs, round $r/$ROUNDS" \
            "$B/bench_baseline" "$WORKERS" "$BASE_S" 200000
        for n in $NODES; do
            step "throughput: $JOBS jobs, $n node(s), $WORKERS workers, fsync $fs, round $r/$ROUNDS" \
                "$B/bench_node" throughput bench_tput "$n" "$WORKERS" "$JOBS"
            step "throughput once started: $JOBS jobs due after $n node(s) are up, fsync $fs, round $r/$ROUNDS" \
                "$B/bench_node" throughput bench_tput "$n" "$WORKERS" "$JOBS" started
        done
    done
    step "scheduling: $SCHEDULES single calls; $JOBS in one bulk call, fsync $fs" \
        "$B/bench_node" schedule bench_sched "$SCHEDULES" "$JOBS"
    step "scheduling: $SCHEDULES single calls once the table grew to $BIG rows, fsync $fs" \
        "$B/bench_node" schedule bench_sched "$SCHEDULES" 1 "$BIG"
    if [ "$fs" != on ]; then
        step "memory: $MEM_JOBS runs on one node" "$B/bench_node" memory bench_mem "$MEM_JOBS"
    fi
    if [ "$fs" != off ]; then
        step "latency: $LAT_N jobs 5 ms apart, notifications on" \
            "$B/bench_node" latency bench_lat "$LAT_N" 5 on
        step "latency: $LAT_N jobs 5 ms apart, notifications off" \
            "$B/bench_node" latency bench_lat "$LAT_N" 5 off
        # Both are nearly idle, so they share the minute: an idle node in a database of its
        # own (its statements are counted by database) and an every-second cron job.
        "$B/bench_node" idle "$FIRINGS" >"$B/idle.out" 2>&1 &
        idle_pid=$!
        step "precision: $FIRINGS firings of an every-second cron job (beside the idle node)" \
            "$B/bench_node" precision bench_prec "$FIRINGS"
        rc=0
        wait "$idle_pid" || rc=$?
        echo "== idle: a node with notifications on, $FIRINGS s ($((SECONDS - t_start)) s)" | tee -a "$LOG"
        absorb idle "$rc" "$B/idle.out"
    fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
elapsed=$((SECONDS - t_start))
server=$("$B/bench_node" version 2>/dev/null || echo '?')
when=$(date -u '+%Y-%m-%d %H:%M UTC')
huge=${BENCH_HUGE_PAGES:-}
for v in ROUNDS JOBS WORKERS NODES BASE_S SCHEDULES BIG MEM_JOBS FIRINGS LAT_N load_before \
    load_after elapsed server when huge; do
    printf '%s=%q\n' "$v" "${!v}"
done >"$RUNINFO"
fi # measure

# ---- the summary table --------------------------------------------------------------------
# Medians of our figures (several rounds) and of the peer's (several runs of its scripts).
declare -A V
while read -r k v; do V[$k]=$v; done < <(
    awk '$1 == "BENCH" { n[$2]++; x[$2, n[$2]] = $3 }
         END { for (k in n) { m = n[k]; for (i = 1; i <= m; i++) a[i] = x[k, i];
               for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
               print k, (m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2) } }' "$RESULTS")
declare -A P
if [ -n "$PEER" ]; then
    while read -r k v; do P[$k]=$v; done < <(
        awk 'function kv(s, key,   i, f) { f = split(s, a, " "); for (i = 1; i <= f; i++)
                 if (index(a[i], key "=") == 1) return substr(a[i], length(key) + 2); return "" }
             function add(k, v) { n[k]++; x[k, n[k]] = v + 0 }
             /^graphile-worker latency / { fs = kv($0, "fsync"); lq = kv($0, "localQueue");
                 add("gw.p50." lq "." fs, kv($0, "p50_ms")); add("gw.p90." lq "." fs, kv($0, "p90_ms"));
                 add("gw.p99." lq "." fs, kv($0, "p99_ms")); next }
             /^graphile-worker conc=/ { fs = kv($0, "fsync"); lq = kv($0, "localQueue");
                 jobs = kv($0, "jobs"); add("gw.tput." lq "." fs, kv($0, "jobs_per_s")); next }
             /enqueue_s=/ && jobs != "" { e = kv($0, "enqueue_s"); if (e > 0) add("gw.add_jobs." fs, jobs / e); jobs = ""; next }
             /^pgbench-baseline / { fs = kv($0, "fsync"); t = kv($0, "tps");
                 if (t != "NA" && t + 0 > best[fs]) best[fs] = t + 0; next }
             /^# cpu_busy_before_run=/ { }
             END { for (fs in best) add("pgbench.best." fs, best[fs]);
                   for (k in n) { m = n[k]; for (i = 1; i <= m; i++) a[i] = x[k, i];
                   for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
                   print k, (m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2) } }' "$PEER")
fi

fmt() { # NUMBER DECIMALS -> with thousands separators
    LC_ALL=C awk -v x="$1" -v d="$2" 'BEGIN { s = sprintf("%." d "f", x); i = index(s, "."); if (!i) i = length(s) + 1;
        ip = substr(s, 1, i - 1); fp = substr(s, i); neg = ""; if (substr(ip, 1, 1) == "-") { neg = "-"; ip = substr(ip, 2) }
        while (length(ip) > 3) { fp = "," substr(ip, length(ip) - 2) fp; ip = substr(ip, 1, length(ip) - 3) } print neg ip fp }'
}
# row FIGURE VALUE UNIT DECIMALS BASELINE BASELINE_LABEL GOAL
# VALUE or BASELINE empty: shown as n/a or -, and the ratio as -.
row() {
    local fig=$1 v=$2 unit=$3 d=$4 b=$5 blabel=$6 goal=$7 vs bs ratio
    if [ -n "$v" ]; then vs="$(fmt "$v" "$d")$unit"; else vs="n/a"; fi
    if [ -n "$b" ]; then bs="$(fmt "$b" "$d")$unit $blabel"; else bs="$blabel"; fi
    [ -n "$bs" ] || bs="-"
    ratio=-
    if [ -n "$v" ] && [ -n "$b" ]; then
        ratio=$(LC_ALL=C awk -v v="$v" -v b="$b" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2fx", v / b }')
    fi
    printf '| %s | %s | %s | %s | %s |\n' "$fig" "$vs" "$bs" "$ratio" "$goal"
}
peer_or() { # PEERKEY FALLBACK FALLBACK_LABEL -> "value|label"
    if [ -n "${P[$1]:-}" ]; then echo "${P[$1]}|(same sitting)"; else echo "$2|$3"; fi
}

{
    echo "pgsched \`make bench\`, $when, $(nproc) cores, load average $load_before before / $load_after after, $elapsed s;"
    echo "PostgreSQL $server${huge:+, its shared memory on huge pages (BENCH_HUGE_PAGES=$huge)};" \
        "throughput: median of $ROUNDS round(s) of $(fmt "$JOBS" 0) no-op jobs, $WORKERS workers in total split over the nodes."
    [ -n "$PEER" ] && echo "Peer figures (Graphile Worker, pgbench) from $(basename "$PEER"), run in the same sitting." ||
        echo "No BENCH_PEER file: Graphile Worker baselines are the figures recorded in issue 8 (an earlier sitting)."
    echo
    echo "| figure | value | baseline | ratio | goal |"
    echo "|---|---|---|---|---|"
    for fs in on off; do
        [ -n "${V[throughput.fsync_$fs.nodes_1]:-}${V[baseline.fsync_$fs.clients_$WORKERS]:-}" ] || continue
        base=${V[baseline.fsync_$fs.clients_$WORKERS]:-}
        for n in $NODES; do
            w="$((WORKERS / n))"; [ $((WORKERS % n)) = 0 ] || w="$w-$((WORKERS / n + 1))"
            nn="$n nodes"; [ "$n" = 1 ] && nn="1 node"
            row "throughput, $nn x $w workers, fsync $fs" "${V[throughput.fsync_$fs.nodes_$n]:-}" " jobs/s" 0 \
                "$base" "(C claim+complete, $WORKERS clients)" "> 1x"
        done
        for n in $NODES; do
            [ "$n" = 1 ] && continue
            row "throughput, $n nodes vs 1 node, fsync $fs" "${V[throughput.fsync_$fs.nodes_$n]:-}" " jobs/s" 0 \
                "${V[throughput.fsync_$fs.nodes_1]:-}" "(1 node)" ">= 1.0x"
        done
        for n in $NODES; do
            nn="$n nodes"; [ "$n" = 1 ] && nn="1 node"
            row "throughput once started (jobs due after every node is up), $nn, fsync $fs" \
                "${V[throughput_started.fsync_$fs.nodes_$n]:-}" " jobs/s" 0 "" "" "-"
        done
        for n in $NODES; do
            [ "$n" = 1 ] && continue
            row "throughput once started, $n nodes vs 1 node, fsync $fs" \
                "${V[throughput_started.fsync_$fs.nodes_$n]:-}" " jobs/s" 0 \
                "${V[throughput_started.fsync_$fs.nodes_1]:-}" "(1 node, once started)" ">= 1.0x"
        done
        if [ "$fs" = on ]; then fb=8857; else fb=12550; fi
        IFS='|' read -r gb gl <<<"$(peer_or "gw.tput.500.$fs" "$fb" "(issue 8)")"
        row "throughput, 1 node vs Graphile Worker (conc. 10, localQueue 500), fsync $fs" \
            "${V[throughput.fsync_$fs.nodes_1]:-}" " jobs/s" 0 "$gb" "$gl" ">= 2x"
        if [ -n "${P[pgbench.best.$fs]:-}" ]; then
            row "C claim+complete baseline ($WORKERS clients) vs pgbench (best of its clients), fsync $fs" \
                "$base" " tps" 0 "${P[pgbench.best.$fs]}" "(same sitting)" "about 1x"
        fi
        row "scheduling: single calls, one commit each, fsync $fs" "${V[schedule.single.fsync_$fs]:-}" " jobs/s" 0 \
            3000 "(issue 8 target, fsync on)" ">= 1x"
        if [ -n "${V[schedule.commit_ceiling.fsync_$fs]:-}" ]; then
            row "scheduling: single calls vs one-row INSERT commits (1 client each, in turns), fsync $fs" \
                "${V[schedule.single.fsync_$fs]:-}" " jobs/s" 0 "${V[schedule.commit_ceiling.fsync_$fs]}" \
                "tps (the ceiling of one thread)" "about 1x"
        fi
        if [ -n "${V[schedule.row_ceiling.fsync_$fs]:-}" ]; then
            row "scheduling: single calls vs bare one-row INSERTs of the same job into a copy of the jobs table (in turns), fsync $fs" \
                "${V[schedule.single.fsync_$fs]:-}" " jobs/s" 0 "${V[schedule.row_ceiling.fsync_$fs]}" \
                "tps (the row's own cost)" "about 1x"
        fi
        if [ -n "${V[schedule.single.rows_$BIG.fsync_$fs]:-}" ]; then
            row "scheduling: single calls once the table grew to $(fmt "$BIG" 0) rows, fsync $fs" \
                "${V[schedule.single.rows_$BIG.fsync_$fs]}" " jobs/s" 0 3000 "(issue 8 target, fsync on)" ">= 1x"
            row "scheduling: the same vs one-row INSERT commits (in turns), fsync $fs" \
                "${V[schedule.single.rows_$BIG.fsync_$fs]}" " jobs/s" 0 \
                "${V[schedule.commit_ceiling.rows_$BIG.fsync_$fs]:-}" "tps (the ceiling of one thread)" "about 1x"
        fi
        for kind in bulk bulk_tx bulk_pool3; do
            [ -n "${V[schedule.$kind.fsync_$fs]:-}" ] || continue
            if [ "$fs" = on ]; then fb=142000; else fb=158000; fi
            IFS='|' read -r gb gl <<<"$(peer_or "gw.add_jobs.$fs" "$fb" "(issue 8)")"
            label="pgsched_schedule_jobs"; [ $kind = bulk_tx ] && label="pgsched_schedule_jobs_tx, in the caller's transaction"
            [ $kind = bulk_pool3 ] && label="pgsched_schedule_jobs with pg.pool_size 3 (two batches at once)"
            row "scheduling: $label, fsync $fs, vs Graphile Worker add_jobs()" "${V[schedule.$kind.fsync_$fs]}" " jobs/s" 0 \
                "$gb" "$gl" ">= 1x"
        done
    done
    for lfs in on off; do # fsync on with our own cluster; whatever a given server has
        for n in on off; do
            for p in p50 p90 p99; do
                v=${V[latency.${p}_ms.fsync_$lfs.notify_$n]:-}
                [ -n "$v" ] || continue
                if [ $n = on ]; then
                    case $p in p50) fb=1.6;; p90) fb=;; p99) fb=3.0;; esac
                    [ "$lfs" = on ] || fb= # the targets are for fsync on
                    IFS='|' read -r gb gl <<<"$(peer_or "gw.$p.500.$lfs" "$fb" "(issue 8 target)")"
                    [ -n "${P[gw.$p.500.$lfs]:-}" ] && gl="(Graphile Worker, localQueue 500, same sitting)"
                    [ -z "$gb" ] && gl=""
                    row "latency schedule-to-start $p, notifications on, fsync $lfs" "$v" " ms" 2 "$gb" "$gl" "<= 1x"
                    fl=${V[latency.schedule_call_${p}_ms.fsync_$lfs]:-}
                    [ -n "$fl" ] && row "latency schedule-to-start $p vs the schedule call's own round trip $p (its commit: the floor), fsync $lfs" \
                        "$v" " ms" 2 "$fl" "(the producer's calls, same run)" "about 1x"
                else
                    row "latency schedule-to-start $p, notifications off (polling), fsync $lfs" "$v" " ms" 1 1000 "(the poll interval)" "<= 1x"
                fi
            done
        done
    done
    row "precision: lateness p50, every-second cron, $FIRINGS firings" "${V[precision.p50_ms]:-}" " ms" 2 "" "" "-"
    row "precision: lateness p99, every-second cron, $FIRINGS firings" "${V[precision.p99_ms]:-}" " ms" 2 5 "(issue 8 target)" "<= 1x"
    row "precision: lateness max, every-second cron, $FIRINGS firings" "${V[precision.max_ms]:-}" " ms" 2 "" "" "-"
    row "scale: claim of 100 rows with $(fmt "$BIG" 0) rows in the table" "${V[scale.claim_ms.rows_$BIG]:-}" " ms" 3 \
        "${V[scale.claim_ms.rows_1000]:-}" "(with 1,000 rows)" "about 1x"
    row "scale: one schedule call with $(fmt "$BIG" 0) rows in the table" "${V[scale.schedule_ms.rows_$BIG]:-}" " ms" 3 \
        "${V[scale.schedule_ms.rows_1000]:-}" "(with 1,000 rows)" "about 1x"
    row "cron next(), median of 12 expressions" "${V[cron.next_ns.median]:-}" " ns" 1 500 "(SPEC: a few hundred ns)" "<= 1x"
    row "cron next(), slowest of 12 expressions" "${V[cron.next_ns.max]:-}" " ns" 1 500 "(SPEC: a few hundred ns)" "<= 1x"
    row "idle node, notifications on: statements per minute" "${V[idle.statements_per_min]:-}" "" 1 10 "(issue 8 target)" "<= 1x"
    row "idle node, notifications on: transactions per minute" "${V[idle.xacts_per_min]:-}" "" 1 "" "" "-"
    row "idle node, notifications on: CPU seconds per minute" "${V[idle.cpu_s_per_min]:-}" " s" 4 "" "" "-"
    for fs in on off; do
        peak=
        for n in $NODES; do
            v=${V[memory.peak_rss_kb.fsync_$fs.nodes_$n]:-}
            [ -n "$v" ] && { [ -z "$peak" ] || [ "$v" -gt "$peak" ]; } && peak=$v
        done
        [ -n "$peak" ] && row "memory: peak RSS of a node under load (largest), fsync $fs" \
            "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')" " MB" 1 10 "(issue 8 target)" "<= 1x"
    done
    first=$((MEM_JOBS < 10000 ? MEM_JOBS : 10000))
    a=${V[memory.rss_kb.runs_$first]:-} z=${V[memory.rss_kb.runs_$MEM_JOBS]:-}
    row "memory: RSS after $(fmt "$MEM_JOBS" 0) runs" "${z:+$(awk -v k="$z" 'BEGIN { print k / 1024 }')}" " MB" 1 \
        "${a:+$(awk -v k="$a" 'BEGIN { print k / 1024 }')}" "(after $(fmt "$first" 0) runs)" "about 1x"
    if [ -n "$PEER" ]; then
        pv() { # KEY DECIMALS
            if [ -n "${P[$1]:-}" ]; then fmt "${P[$1]}" "$2"; else echo "n/a"; fi
        }
        echo
        echo "The peer in the same sitting (medians of the runs in $(basename "$PEER")):"
        echo
        echo "| peer figure | fsync on | fsync off |"
        echo "|---|---|---|"
        for lq in 0 500; do
            label="Graphile Worker 0.18, concurrency 10"; [ $lq = 0 ] || label="$label + localQueue $lq"
            echo "| $label: jobs/s | $(pv gw.tput.$lq.on 0) | $(pv gw.tput.$lq.off 0) |"
            echo "| $label: latency p50 / p90 / p99 ms | $(pv gw.p50.$lq.on 2) / $(pv gw.p90.$lq.on 2) / $(pv gw.p99.$lq.on 2) | $(pv gw.p50.$lq.off 2) / $(pv gw.p90.$lq.off 2) / $(pv gw.p99.$lq.off 2) |"
        done
        echo "| Graphile Worker add_jobs(), one call: jobs/s | $(pv gw.add_jobs.on 0) | $(pv gw.add_jobs.off 0) |"
        echo "| pgbench claim+complete, best of its client counts: tps | $(pv pgbench.best.on 0) | $(pv pgbench.best.off 0) |"
    fi
} >"$SUMMARY"

echo
echo "======== make bench: summary ($B/summary.md; raw figures in $RESULTS)"
cat "$SUMMARY"
if [ $fails != 0 ]; then
    echo "$fails step(s) failed: see $LOG"
    exit 1
fi
