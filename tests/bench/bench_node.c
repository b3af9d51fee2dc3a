/* bench_node.c - the engine's figures for `make bench` (tests/bench/run.sh drives it).

   Every mode prints its results as lines "BENCH <figure> <value>" (run.sh gathers them into
   the summary table) and its details as lines starting with "#". The database comes from
   $PGSCHED_TEST_DSN (or $PGSCHED_DSN); each mode works in a schema of its own, dropped first.

     bench_node throughput SCHEMA NODES WORKERS JOBS [started]
         JOBS no-op one-time jobs, all due, written in one INSERT; then NODES node processes
         (this program in `node` mode) with WORKERS workers between them run them; jobs/s is
         JOBS over the time from starting the processes until no row is pending or running
         (polled every 10 ms). Also each node's peak RSS.
         Also the CPU it took per 1,000 jobs: the node processes' (getrusage) and the
         server's (/proc, when the server runs on this machine). BENCH_PSS=1: the statements
         of the run per 1,000 jobs with their mean times (pg_stat_statements, when loaded).
         BENCH_CLAIM_AHEAD=N: each node's claim_ahead (default: the library's).
         `started`: the jobs are due 3 s after they are written; the nodes start meanwhile,
         and the time runs from the due time (every node registered by then) until no row is
         pending or running: the rate of nodes already up, without their start
         (figure throughput_started.*; no RSS or CPU figure).
     bench_node node SCHEMA WORKERS           one node until SIGTERM, then prints its report
     bench_node schedule SCHEMA COUNT BULK [ROWS]
                                              COUNT single pgsched_schedule_job calls, then (where
                                              the header has them) three turns of BULK
                                              jobs in one pgsched_schedule_jobs call and BULK
                                              in one pgsched_schedule_jobs_tx call (BEGIN to
                                              COMMIT), new rows each (run.sh: the median);
                                              then three turns of pgsched_schedule_jobs from a
                                              node with pg.pool_size 3 (two batches at once).
                                              ROWS: first 100 single calls (their statement is
                                              prepared and past its custom plans on a near-empty
                                              table), then ROWS future rows of another type
                                              written by SQL, then the single calls (figures
                                              schedule.*.rows_ROWS.*; no bulk calls)
     bench_node latency SCHEMA COUNT INTERVAL_MS on|off
         an idle node (notifications on or off); another process (`produce` mode) schedules
         COUNT jobs INTERVAL_MS apart; latency = the run's start minus the job's creation,
         both read from the database clock (history started_at - row created_at).
     bench_node produce SCHEMA COUNT INTERVAL_MS
     bench_node precision SCHEMA FIRINGS      an every-second cron job: handler start - due time
     bench_node idle SECONDS                  an idle node with notifications on, alone in a
                                              database of its own (bench_idle): its statements
                                              (pg_stat_statements), transactions and CPU
                                              seconds, per minute
     bench_node memory SCHEMA JOBS            one node runs JOBS jobs: RSS after 10,000 and
                                              after JOBS runs
     bench_node fsync on|off                  sets fsync, synchronous_commit and
                                              full_page_writes server-wide (ALTER SYSTEM, then a
                                              reload), for a throwaway cluster only
     bench_node version                       the server's version */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES 16

static const char *dsn;
static PGconn *admin;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_node: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(double ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000.0);
    ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000.0) * 1e6);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A field of /proc/self/status in kB ("VmRSS", "VmHWM"); 0 when unreadable. */
static long status_kb(const char *field)
{
    char line[256];
    long kb = 0;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = atol(line + n + 1);
            break;
        }
    fclose(f);
    return kb;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static PGresult *q(const char *sql, int nparams, const char *const *params)
{
    PGresult *r = PQexecParams(admin, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_node: %s  in: %.300s\n", PQerrorMessage(admin), sql);
        exit(1);
    }
    return r;
}

static void exec_sql(const char *sql)
{
    PQclear(q(sql, 0, NULL));
}

static double q_double(const char *sql, int nparams, const char *const *params)
{
    PGresult *r = q(sql, nparams, params);
    double v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? atof(PQgetvalue(r, 0, 0)) : 0.0;
    PQclear(r);
    return v;
}

/* Reads the DSN and, unless `node_only`, opens the admin connection. A node process of a
   throughput run opens none: a node's backends are all its own, as in an application (an
   extra backend per node process would add its start to every node's start). */
static void connect_admin(int node_only)
{
    dsn = getenv("PGSCHED_TEST_DSN");
    if (!dsn) dsn = getenv("PGSCHED_DSN");
    if (!dsn) die("no database", "set PGSCHED_TEST_DSN (make bench starts a cluster)");
    if (node_only) return;
    admin = PQconnectdb(dsn);
    if (PQstatus(admin) != CONNECTION_OK) die("connect", PQerrorMessage(admin));
    PQsetNoticeProcessor(admin, pgsched__pg_quiet, NULL);
}

/* "on" or "off": the server's fsync setting, for the figures' names. */
static const char *fsync_label(void)
{
    PGresult *r = q("SHOW fsync", 0, NULL);
    const char *v = strcmp(PQgetvalue(r, 0, 0), "on") == 0 ? "on" : "off";
    PQclear(r);
    return v;
}

/* Drops SCHEMA and creates the tables afresh through the store. */
static void fresh_schema(const char *schema)
{
    char sql[256];
    pgsched_pg_config pc;
    pgsched_store *store;
    pgsched_error e;
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
    exec_sql(sql);
    memset(&pc, 0, sizeof pc);
    pc.conninfo = dsn;
    pc.schema = schema;
    if (pgsched_pg_store_create(&pc, &store, &e) != PGSCHED_OK ||
        pgsched_store_setup(store, &e) != PGSCHED_OK)
        die("setup", e.message);
    pgsched_store_destroy(store);
}

/* JOBS due one-time rows of type `name`, written in one statement (the figure is the running,
   not the scheduling, which has figures of its own). */
static void insert_due(const char *schema, const char *name, long jobs)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\".pgsched_jobs (name, key, status, kind, params, max_retries, "
             "next_run, version) SELECT '%s', 'k' || g, 'pending', 'once', '{}', 0, "
             "now() - interval '1 hour' + g * interval '1 microsecond', "
             "nextval('\"%s\".pgsched_seq') FROM generate_series(1, %ld) g",
             schema, name, schema, jobs);
    exec_sql(sql);
    snprintf(sql, sizeof sql, "VACUUM ANALYZE \"%s\".pgsched_jobs", schema);
    exec_sql(sql);
}

static int noop_handler(pgsched_run *run)
{
    (void)run;
    return PGSCHED_RUN_SUCCESS;
}

static long warnings;
static void count_log(void *user, pgsched_log_level level, const char *message)
{
    (void)user;
    if (level >= PGSCHED_LOG_WARN && __atomic_add_fetch(&warnings, 1, __ATOMIC_RELAXED) <= 3)
        fprintf(stderr, "# node %ld: %s\n", (long)getpid(), message);
}

/* The pg.pool_size of the nodes make_node makes (0: the default). */
static int g_pool_size;

/* A node on SCHEMA that runs `type` (handler may be NULL: schedule only). Not started. */
static pgsched_node *make_node(const char *conninfo, const char *schema, int workers,
                               int notifications, const pgsched_job_type *type)
{
    pgsched_config cfg;
    pgsched_node *n;
    pgsched_error e;
    memset(&cfg, 0, sizeof cfg);
    cfg.pg.conninfo = conninfo;
    cfg.pg.schema = schema;
    cfg.max_concurrent = workers;
    cfg.pg.pool_size = g_pool_size;
    cfg.no_notifications = !notifications;
    if (getenv("BENCH_CLAIM_AHEAD")) cfg.claim_ahead = atoi(getenv("BENCH_CLAIM_AHEAD"));
    cfg.log = count_log;
    if (pgsched_create(&cfg, &n, &e) != PGSCHED_OK) die("create", e.message);
    if (pgsched_register(n, type, &e) != PGSCHED_OK) die("register", e.message);
    if (pgsched_init(n, &e) != PGSCHED_OK) die("init", e.message);
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, int n, double p)
{
    int i = (int)(p * n + 0.999999) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return n ? v[i] : 0.0;
}

/* ---- node: one process of a throughput run ---------------------------------------------- */

static int mode_node(const char *schema, int workers)
{
    pgsched_job_type t;
    pgsched_node *n;
    pgsched_error e;
    pgsched_counters c = {0};
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the node's threads inherit the mask */
    memset(&t, 0, sizeof t);
    t.name = "noop";
    t.handler = noop_handler;
    n = make_node(dsn, schema, workers, 1, &t);
    if (pgsched_start(n, &e) != PGSCHED_OK) die("start", e.message);
    sigwait(&set, &sig);
    pgsched_get_counters(n, &c);
    printf("NODE succeeded=%lld polls=%lld hwm_kb=%ld rss_kb=%ld warnings=%ld cpu_s=%.3f\n",
           (long long)c.succeeded, (long long)c.polls, status_kb("VmHWM"), status_kb("VmRSS"),
           warnings, cpu_s());
    fflush(stdout);
    pgsched_destroy(n);
    return 0;
}

/* ---- throughput ---------------------------------------------------------------------------- */

/* utime + stime of /proc/PID/stat in seconds (with cutime + cstime, the children it waited for,
   when `children`); -1 when unreadable. */
static double proc_cpu_s(long pid, int children, long *ppid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    long cut = 0, cst = 0, pp = 0;
    size_t len;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (!f) return -1;
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    p = strrchr(buf, ')'); /* the command may hold spaces */
    if (!p || sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &pp, &ut,
                     &st, &cut, &cst) != 5)
        return -1;
    if (ppid) *ppid = pp;
    return (double)(ut + st + (children ? (unsigned long)(cut + cst) : 0)) /
           (double)sysconf(_SC_CLK_TCK);
}

/* The CPU seconds the whole server used so far: the postmaster with the backends it reaped,
   plus every process it still runs. Needs the server on this machine; -1 otherwise. */
static double server_cpu_s(void)
{
    static long postmaster;
    double total;
    char path[64];
    FILE *d;
    long pid;
    if (!postmaster) {
        long self = (long)q_double("SELECT pg_backend_pid()", 0, NULL), pp = 0;
        if (proc_cpu_s(self, 0, &pp) < 0) return -1;
        postmaster = pp;
    }
    total = proc_cpu_s(postmaster, 1, NULL);
    if (total < 0) return -1;
    /* its live children: every /proc entry whose parent is the postmaster */
    d = popen("ls /proc", "r");
    if (!d) return -1;
    while (fgets(path, sizeof path, d)) {
        long pp = 0;
        double c;
        pid = atol(path);
        if (pid <= 0) continue;
        c = proc_cpu_s(pid, 0, &pp);
        if (c >= 0 && pp == postmaster) total += c;
    }
    pclose(d);
    return total;
}

/* server_cpu_s() less what the backend `pid` used (this program's, polling for the end). */
static double server_cpu_less(long pid)
{
    double all = server_cpu_s(), own = proc_cpu_s(pid, 0, NULL);
    return all < 0 || own < 0 ? -1 : all - own;
}

/* With BENCH_PSS set and pg_stat_statements loaded: resets its figures (before) or prints the
   statements of the run per 1,000 jobs with their mean times (after). */
static void pss_report(long jobs, int after)
{
    PGresult *r;
    int i;
    if (!getenv("BENCH_PSS")) return;
    if (q_double("SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries' "
                 "AND setting LIKE '%pg_stat_statements%'", 0, NULL) == 0)
        return;
    exec_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    if (!after) {
        exec_sql("SELECT pg_stat_statements_reset()");
        return;
    }
    r = q("SELECT calls, total_exec_time / calls, rows::float8 / calls, "
          "regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_statements "
          "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
          "AND query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 14",
          0, NULL);
    for (i = 0; i < PQntuples(r); i++)
        printf("#   pss %8.1f calls/1k jobs  %7.3f ms mean  %7.1f rows/call  %s\n",
               atof(PQgetvalue(r, i, 0)) * 1000.0 / (double)jobs, atof(PQgetvalue(r, i, 1)),
               atof(PQgetvalue(r, i, 2)), PQgetvalue(r, i, 3));
    PQclear(r);
}

static char self_path[4096];

/* The jobs of a started run: due `lead_s` seconds from the database's now (see mode_throughput). */
static void insert_due_later(const char *schema, const char *name, long jobs, double lead_s)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\".pgsched_jobs (name, key, status, kind, params, max_retries, "
             "next_run, version) SELECT '%s', 'k' || g, 'pending', 'once', '{}', 0, "
             "now() + %f * interval '1 second' + g * interval '1 microsecond', "
             "nextval('\"%s\".pgsched_seq') FROM generate_series(1, %ld) g",
             schema, name, lead_s, schema, jobs);
    exec_sql(sql);
    snprintf(sql, sizeof sql, "VACUUM ANALYZE \"%s\".pgsched_jobs", schema);
    exec_sql(sql);
}

static int mode_throughput(const char *schema, int nodes, int workers, long jobs, int started)
{
    pid_t pid[MAX_NODES];
    int out[MAX_NODES];
    const char *fs = fsync_label();
    double t0, secs, done;
    long hwm = 0, warn = 0, succeeded = 0;
    double srv0, srv1, node_cpu = 0;
    long admin_pid = (long)q_double("SELECT pg_backend_pid()", 0, NULL);
    int i, timed_out = 0;
    char sql[512];
    const char *label = started ? "throughput_started" : "throughput";
    if (nodes < 1 || nodes > MAX_NODES || workers < nodes) die("throughput", "bad NODES/WORKERS");
    fresh_schema(schema);
    if (started) insert_due_later(schema, "noop", jobs, 3.0);
    else insert_due(schema, "noop", jobs);
    snprintf(sql, sizeof sql,
             "SELECT EXISTS (SELECT 1 FROM \"%s\".pgsched_jobs WHERE status = 'pending') OR "
             "EXISTS (SELECT 1 FROM \"%s\".pgsched_jobs WHERE status = 'running')",
             schema, schema);
    pss_report(jobs, 0);
    fflush(stdout);
    srv0 = server_cpu_less(admin_pid);
    t0 = mono_s();
    for (i = 0; i < nodes; i++) {
        int fd[2];
        char w[16];
        /* the workers split as evenly as they go: 10 over 4 nodes is 3, 3, 2, 2 */
        snprintf(w, sizeof w, "%d", workers / nodes + (i < workers % nodes));
        if (pipe(fd) != 0) die("pipe", strerror(errno));
        pid[i] = fork();
        if (pid[i] < 0) die("fork", strerror(errno));
        if (pid[i] == 0) {
            char *argv[5];
            dup2(fd[1], 1);
            close(fd[0]);
            close(fd[1]);
            argv[0] = self_path;
            argv[1] = (char *)"node";
            argv[2] = (char *)schema;
            argv[3] = w;
            argv[4] = NULL;
            execv(self_path, argv);
            _exit(127);
        }
        close(fd[1]);
        out[i] = fd[0];
    }
    if (started) {
        /* every node registered (its start done: connections, set-up, listener), then the
           clock starts at the jobs' due time */
        double until;
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM \"%s\".pgsched_nodes WHERE stopped_at IS NULL", schema);
        while (q_double(sql, 0, NULL) < nodes) {
            if (mono_s() - t0 > 60) die("throughput", "the nodes did not start in 60 s");
            sleep_ms(5);
        }
        snprintf(sql, sizeof sql,
                 "SELECT extract(epoch from min(next_run) - now()) FROM \"%s\".pgsched_jobs",
                 schema);
        until = q_double(sql, 0, NULL);
        printf("# %d node(s) up %.3f s after their start, %.3f s before the jobs are due\n",
               nodes, mono_s() - t0, until);
        if (until <= 0.05) die("throughput", "the nodes took longer to start than the lead");
        t0 = mono_s() + until;
        srv0 = -1; /* (the CPU figure covers a run from the start only) */
        snprintf(sql, sizeof sql,
                 "SELECT EXISTS (SELECT 1 FROM \"%s\".pgsched_jobs WHERE status = 'pending') OR "
                 "EXISTS (SELECT 1 FROM \"%s\".pgsched_jobs WHERE status = 'running')",
                 schema, schema);
    }
    for (;;) {
        PGresult *r = q(sql, 0, NULL);
        int busy = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!busy) break;
        if (mono_s() - t0 > 300) {
            timed_out = 1;
            break;
        }
        sleep_ms(10);
    }
    secs = mono_s() - t0;
    srv1 = server_cpu_less(admin_pid);
    for (i = 0; i < nodes; i++) kill(pid[i], SIGTERM);
    for (i = 0; i < nodes; i++) {
        char buf[512];
        FILE *f = fdopen(out[i], "r");
        int st;
        while (f && fgets(buf, sizeof buf, f)) {
            const char *h = strstr(buf, "hwm_kb="), *w = strstr(buf, "warnings="),
                       *s = strstr(buf, "succeeded=");
            if (h && atol(h + 7) > hwm) hwm = atol(h + 7);
            if (w) warn += atol(w + 9);
            if (s) succeeded += atol(s + 10);
            if (strstr(buf, "cpu_s=")) node_cpu += atof(strstr(buf, "cpu_s=") + 6);
            printf("#   node %d: %s", i + 1, buf);
        }
        if (f) fclose(f);
        waitpid(pid[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("throughput", "a node process failed");
    }
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM \"%s\".pgsched_jobs WHERE status = 'completed'", schema);
    done = q_double(sql, 0, NULL);
    printf("# throughput fsync=%s nodes=%d workers=%d jobs=%ld: %.3f s, completed %.0f, "
           "outcomes counted by nodes %ld, warnings %ld\n",
           fs, nodes, workers, jobs, secs, done, succeeded, warn);
    if (timed_out || (long)done != jobs) die("throughput", "not every job completed in 300 s");
    printf("BENCH %s.fsync_%s.nodes_%d %.0f\n", label, fs, nodes, (double)jobs / secs);
    if (!started) printf("BENCH memory.peak_rss_kb.fsync_%s.nodes_%d %ld\n", fs, nodes, hwm);
    if (srv0 >= 0 && srv1 >= 0) {
        /* CPU per job: robust to the machine's other load, unlike the wall time */
        printf("# cpu per 1,000 jobs: nodes %.3f s, server %.3f s, total %.3f s\n",
               node_cpu * 1000.0 / (double)jobs, (srv1 - srv0) * 1000.0 / (double)jobs,
               (node_cpu + srv1 - srv0) * 1000.0 / (double)jobs);
        printf("BENCH cpu_ms_per_job.fsync_%s.nodes_%d %.4f\n", fs, nodes,
               (node_cpu + srv1 - srv0) / (double)jobs * 1000.0);
    }
    pss_report(jobs, 1);
    snprintf(sql, sizeof sql, "DROP SCHEMA \"%s\" CASCADE", schema);
    exec_sql(sql);
    return 0;
}

/* ---- scheduling ---------------------------------------------------------------------------- */

static int mode_schedule(const char *schema, long count, long bulk, long rows)
{
    pgsched_job_type t;
    pgsched_job_spec s;
    pgsched_node *n;
    pgsched_error e;
    const char *fs = fsync_label();
    char key[32];
    double t0, secs;
    long i;
    fresh_schema(schema);
    memset(&t, 0, sizeof t);
    t.name = "noop"; /* no handler: this node only schedules */
    n = make_node(dsn, schema, 1, 1, &t);
    memset(&s, 0, sizeof s);
    s.name = "noop";
    s.key = key;
    s.schedule.kind = PGSCHED_SCHEDULE_ONCE;
    s.schedule.at = pgsched_now() + PGSCHED_DAY; /* never runs: no node runs noop here */
    if (rows > 0) {
        /* the table grows after the statement was prepared (see the mode's description) */
        char sql[512];
        for (i = 0; i < 100; i++) {
            snprintf(key, sizeof key, "warm-%ld", i);
            if (pgsched_schedule_job(n, &s, &e) != PGSCHED_OK) die("schedule", e.message);
        }
        snprintf(sql, sizeof sql, "INSERT INTO \"%s\".pgsched_jobs (name, key, status, kind, "
                 "params, max_retries, next_run, version) SELECT 'other', 'k' || g, 'pending', "
                 "'once', '{}', 0, now() + interval '1 day', nextval('\"%s\".pgsched_seq') "
                 "FROM generate_series(1, %ld) g", schema, schema, rows);
        exec_sql(sql); /* (not analysed here: the plan made on the small table may stay) */
        printf("# schedule: %ld rows in the table, written after the statement was prepared\n",
               rows + 100);
    }
    {
        /* What one commit costs here: one client inserting one row per transaction with a
           prepared statement (pgbench's simplest write), in turns with the single calls so
           that both see the same machine. One thread each: a single call cannot be faster
           than that (one commit, one disk flush with fsync on). */
        PGconn *c = PQconnectdb(dsn);
        PGresult *r;
        char sql[256];
        const char *p[1];
        double t_lib = 0, t_ins = 0, t_row = 0;
        long done = 0, ins = 0, chunk = count / 4 > 0 ? count / 4 : 1;
        if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
        snprintf(sql, sizeof sql, "CREATE TABLE \"%s\".commit_ceiling (id bigserial PRIMARY KEY, "
                 "k text NOT NULL)", schema);
        exec_sql(sql);
        snprintf(sql, sizeof sql, "INSERT INTO \"%s\".commit_ceiling (k) VALUES ($1)", schema);
        r = PQprepare(c, "ins", sql, 1, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) die("prepare", PQerrorMessage(c));
        PQclear(r);
        /* and what writing the row itself costs: a bare INSERT of the same one-time job into
           a copy of the jobs table (its columns, constraints and indexes), no upsert, no
           event, as a third turn */
        snprintf(sql, sizeof sql, "CREATE TABLE \"%s\".jobs_copy (LIKE \"%s\".pgsched_jobs "
                 "INCLUDING ALL)", schema, schema);
        exec_sql(sql);
        snprintf(sql, sizeof sql, "INSERT INTO \"%s\".jobs_copy (name, key, status, kind, params, "
                 "max_retries, next_run, version) VALUES ('noop', $1, 'pending', 'once', '{}', 0, "
                 "now() + interval '1 day', nextval('\"%s\".pgsched_seq'))", schema, schema);
        r = PQprepare(c, "row", sql, 1, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) die("prepare", PQerrorMessage(c));
        PQclear(r);
        p[0] = key;
        while (done < count) {
            long end = done + chunk < count ? done + chunk : count, m;
            t0 = mono_s();
            for (i = done; i < end; i++) {
                snprintf(key, sizeof key, "single-%ld", i);
                if (pgsched_schedule_job(n, &s, &e) != PGSCHED_OK) die("schedule", e.message);
            }
            t_lib += mono_s() - t0;
            t0 = mono_s();
            for (m = done; m < end; m++) {
                snprintf(key, sizeof key, "row-%ld", m);
                r = PQexecPrepared(c, "ins", 1, p, NULL, NULL, 0);
                if (PQresultStatus(r) != PGRES_COMMAND_OK) die("insert", PQerrorMessage(c));
                PQclear(r);
                ins++;
            }
            t_ins += mono_s() - t0;
            t0 = mono_s();
            for (m = done; m < end && rows == 0; m++) { /* (its copy stays small: not with ROWS) */
                snprintf(key, sizeof key, "row-%ld", m);
                r = PQexecPrepared(c, "row", 1, p, NULL, NULL, 0);
                if (PQresultStatus(r) != PGRES_COMMAND_OK) die("insert", PQerrorMessage(c));
                PQclear(r);
            }
            t_row += mono_s() - t0;
            done = end;
        }
        PQfinish(c);
        secs = t_lib;
        printf("# schedule fsync=%s: %ld single calls in %.3f s (%.3f ms each); %ld one-row INSERT "
               "commits in %.3f s (%.3f ms each), in turns on one thread each\n",
               fs, count, t_lib, t_lib * 1e3 / (double)count, ins, t_ins,
               t_ins * 1e3 / (double)ins);
        if (rows == 0)
            printf("# schedule fsync=%s: %ld bare one-row INSERTs of the same job into a copy of "
                   "the jobs table in %.3f s (%.3f ms each)\n",
                   fs, ins, t_row, t_row * 1e3 / (double)ins);
        if (rows > 0) { /* figures of their own; no bulk calls */
            printf("BENCH schedule.single.rows_%ld.fsync_%s %.0f\n", rows, fs, (double)count / secs);
            printf("BENCH schedule.commit_ceiling.rows_%ld.fsync_%s %.0f\n", rows, fs,
                   (double)ins / t_ins);
            return 0;
        }
        printf("BENCH schedule.single.fsync_%s %.0f\n", fs, (double)count / secs);
        printf("BENCH schedule.commit_ceiling.fsync_%s %.0f\n", fs, (double)ins / t_ins);
        printf("BENCH schedule.row_ceiling.fsync_%s %.0f\n", fs, (double)ins / t_row);
    }
#ifdef PGSCHED_SCHEDULE_BATCH_MAX /* the bulk calls exist */
    {
        pgsched_job_spec *specs = calloc((size_t)bulk, sizeof *specs);
        pgsched_result *res = calloc((size_t)bulk, sizeof *res);
        char *keys = malloc((size_t)bulk * 32);
        PGconn *conn = PQconnectdb(dsn);
        int tx, turn;
        if (!specs || !res || !keys) die("schedule", "out of memory");
        if (PQstatus(conn) != CONNECTION_OK) die("connect", PQerrorMessage(conn));
        for (turn = 0; turn < 6; turn++) { /* bulk and _tx in turns, three each */
            tx = turn % 2;
            for (i = 0; i < bulk; i++) {
                specs[i] = s;
                specs[i].key = keys + i * 32;
                snprintf(keys + i * 32, 32, "%s-%d-%ld", tx ? "bulk-tx" : "bulk", turn / 2, i);
            }
            t0 = mono_s();
            if (tx) {
                PGresult *r = PQexec(conn, "BEGIN");
                PQclear(r);
                if (pgsched_schedule_jobs_tx(n, conn, specs, (size_t)bulk, res, &e) != PGSCHED_OK)
                    die("schedule_jobs_tx", e.message);
                r = PQexec(conn, "COMMIT");
                if (PQresultStatus(r) != PGRES_COMMAND_OK) die("commit", PQerrorMessage(conn));
                PQclear(r);
            } else if (pgsched_schedule_jobs(n, specs, (size_t)bulk, res, &e) != PGSCHED_OK) {
                die("schedule_jobs", e.message);
            }
            secs = mono_s() - t0;
            printf("# schedule fsync=%s: %ld jobs in one %s call in %.3f s\n", fs, bulk,
                   tx ? "pgsched_schedule_jobs_tx (with BEGIN and COMMIT)" : "pgsched_schedule_jobs",
                   secs);
            printf("BENCH schedule.%s.fsync_%s %.0f\n", tx ? "bulk_tx" : "bulk", fs,
                   (double)bulk / secs);
        }
        /* and the same bulk calls from a node with a pool of 3: two batches at once */
        {
            pgsched_node *n3;
            pgsched_error e3;
            g_pool_size = 3;
            n3 = make_node(dsn, schema, 1, 1, &t);
            g_pool_size = 0;
            for (turn = 0; turn < 3; turn++) {
                for (i = 0; i < bulk; i++) {
                    specs[i] = s;
                    specs[i].key = keys + i * 32;
                    snprintf(keys + i * 32, 32, "bulk3-%d-%ld", turn, i);
                }
                t0 = mono_s();
                if (pgsched_schedule_jobs(n3, specs, (size_t)bulk, res, &e3) != PGSCHED_OK)
                    die("schedule_jobs (pool of 3)", e3.message);
                secs = mono_s() - t0;
                printf("# schedule fsync=%s: %ld jobs in one pgsched_schedule_jobs call, pool of 3, "
                       "in %.3f s\n", fs, bulk, secs);
                printf("BENCH schedule.bulk_pool3.fsync_%s %.0f\n", fs, (double)bulk / secs);
            }
            pgsched_destroy(n3);
        }
        PQfinish(conn);
        free(specs);
        free(res);
        free(keys);
    }
#else
    (void)bulk;
#endif
    pgsched_destroy(n);
    return 0;
}

/* ---- latency ------------------------------------------------------------------------------- */

static int mode_produce(const char *schema, long count, double interval_ms)
{
    pgsched_job_type t;
    pgsched_job_spec s;
    pgsched_node *n;
    pgsched_error e;
    char key[32];
    double t0, *rt;
    long i;
    memset(&t, 0, sizeof t);
    t.name = "lat";
    n = make_node(dsn, schema, 1, 1, &t);
    memset(&s, 0, sizeof s);
    s.name = "lat";
    s.key = key;
    s.schedule.kind = PGSCHED_SCHEDULE_ONCE; /* at = 0: now, by the database clock */
    rt = malloc(sizeof *rt * (size_t)(count > 0 ? count : 1));
    if (!rt) die("produce", "out of memory");
    t0 = mono_s();
    for (i = 0; i < count; i++) {
        double wait = t0 + (double)i * interval_ms / 1000.0 - mono_s(), t1;
        if (wait > 0) sleep_ms(wait * 1000.0);
        snprintf(key, sizeof key, "lat-%ld", i);
        t1 = mono_s();
        if (pgsched_schedule_job(n, &s, &e) != PGSCHED_OK) die("produce", e.message);
        rt[i] = (mono_s() - t1) * 1e3;
    }
    pgsched_destroy(n);
    if (count > 0) {
        /* A job cannot start before the commit that schedules it is flushed and announced:
           the call's own round trip (that commit) bounds schedule-to-start from below. */
        const char *fs = fsync_label();
        qsort(rt, (size_t)count, sizeof *rt, cmp_double);
        printf("# produce fsync=%s: the schedule call's round trip (its commit): p50 %.2f p90 %.2f "
               "p99 %.2f max %.2f ms\n",
               fs, pct(rt, (int)count, .5), pct(rt, (int)count, .9), pct(rt, (int)count, .99),
               rt[count - 1]);
        printf("BENCH latency.schedule_call_p50_ms.fsync_%s %.3f\n", fs, pct(rt, (int)count, .5));
        printf("BENCH latency.schedule_call_p99_ms.fsync_%s %.3f\n", fs, pct(rt, (int)count, .99));
    }
    free(rt);
    return 0;
}

static int mode_latency(const char *schema, long count, const char *interval, int notifications)
{
    pgsched_job_type t;
    pgsched_node *n;
    pgsched_error e;
    const char *fs = fsync_label();
    char sql[512], cnt[32];
    double t0, *v;
    pid_t pid;
    int st, i, rows;
    PGresult *r;
    fresh_schema(schema);
    memset(&t, 0, sizeof t);
    t.name = "lat";
    t.handler = noop_handler;
    n = make_node(dsn, schema, 10, notifications, &t);
    if (pgsched_start(n, &e) != PGSCHED_OK) die("start", e.message);
    sleep_ms(500); /* idle before the first job, as a node usually is */
    snprintf(cnt, sizeof cnt, "%ld", count);
    fflush(stdout);
    pid = fork();
    if (pid < 0) die("fork", strerror(errno));
    if (pid == 0) {
        char *argv[6];
        argv[0] = self_path;
        argv[1] = (char *)"produce";
        argv[2] = (char *)schema;
        argv[3] = cnt;
        argv[4] = (char *)interval;
        argv[5] = NULL;
        execv(self_path, argv);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("latency", "the producer failed");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".pgsched_runs", schema);
    t0 = mono_s();
    while (q_double(sql, 0, NULL) < (double)count && mono_s() - t0 < 30) sleep_ms(20);
    pgsched_destroy(n);
    snprintf(sql, sizeof sql,
             "SELECT extract(epoch FROM r.started_at - j.created_at) * 1000 FROM "
             "\"%s\".pgsched_runs r JOIN \"%s\".pgsched_jobs j USING (name, key) ORDER BY 1",
             schema, schema);
    r = q(sql, 0, NULL);
    rows = PQntuples(r);
    if (rows < count) die("latency", "not every job ran within 30 s");
    v = malloc(sizeof *v * (size_t)rows);
    if (!v) die("latency", "out of memory");
    for (i = 0; i < rows; i++) v[i] = atof(PQgetvalue(r, i, 0));
    PQclear(r);
    qsort(v, (size_t)rows, sizeof *v, cmp_double);
    printf("# latency fsync=%s notifications=%s: %d jobs %s ms apart, created_at -> started_at "
           "(database clock): p50 %.2f p90 %.2f p99 %.2f max %.2f ms\n",
           fs, notifications ? "on" : "off", rows, interval, pct(v, rows, .5),
           pct(v, rows, .9), pct(v, rows, .99), v[rows - 1]);
    printf("BENCH latency.p50_ms.fsync_%s.notify_%s %.3f\n", fs, notifications ? "on" : "off",
           pct(v, rows, .5));
    printf("BENCH latency.p90_ms.fsync_%s.notify_%s %.3f\n", fs, notifications ? "on" : "off",
           pct(v, rows, .9));
    printf("BENCH latency.p99_ms.fsync_%s.notify_%s %.3f\n", fs, notifications ? "on" : "off",
           pct(v, rows, .99));
    free(v);
    snprintf(sql, sizeof sql, "DROP SCHEMA \"%s\" CASCADE", schema);
    exec_sql(sql);
    return 0;
}

/* ---- precision ----------------------------------------------------------------------------- */

#define MAX_FIRINGS 1000
static double lateness[MAX_FIRINGS];
static int firings;
static pthread_mutex_t fire_mu = PTHREAD_MUTEX_INITIALIZER;

static int cron_handler(pgsched_run *run)
{
    double late = (double)(pgsched_now() - run->scheduled_for) / 1000.0;
    pthread_mutex_lock(&fire_mu);
    if (firings < MAX_FIRINGS) lateness[firings++] = late;
    pthread_mutex_unlock(&fire_mu);
    return PGSCHED_RUN_SUCCESS;
}

static int mode_precision(const char *schema, int want)
{
    pgsched_job_type t;
    pgsched_job_spec s;
    pgsched_node *n;
    pgsched_error e;
    const char *fs = fsync_label();
    double t0;
    int got, skip = 1; /* the first firing may come from a node still starting */
    if (want < 1 || want + skip > MAX_FIRINGS) die("precision", "bad FIRINGS");
    fresh_schema(schema);
    memset(&t, 0, sizeof t);
    t.name = "tick";
    t.handler = cron_handler;
    n = make_node(dsn, schema, 2, 1, &t);
    if (pgsched_start(n, &e) != PGSCHED_OK) die("start", e.message);
    memset(&s, 0, sizeof s);
    s.name = "tick";
    s.key = "every-second";
    s.schedule.kind = PGSCHED_SCHEDULE_CRON;
    s.schedule.cron = "* * * * * *";
    if (pgsched_schedule_job(n, &s, &e) != PGSCHED_OK) die("schedule", e.message);
    t0 = mono_s();
    for (;;) {
        pthread_mutex_lock(&fire_mu);
        got = firings;
        pthread_mutex_unlock(&fire_mu);
        if (got >= want + skip || mono_s() - t0 > want * 2.0 + 10) break;
        sleep_ms(100);
    }
    pgsched_destroy(n);
    if (got < want + skip) die("precision", "too few firings");
    qsort(lateness + skip, (size_t)want, sizeof lateness[0], cmp_double);
    printf("# precision fsync=%s: %d firings of '* * * * * *', handler start - due time: "
           "p50 %.2f p90 %.2f p99 %.2f max %.2f ms\n",
           fs, want, pct(lateness + skip, want, .5), pct(lateness + skip, want, .9),
           pct(lateness + skip, want, .99), lateness[skip + want - 1]);
    printf("#   the latest firings: %.2f %.2f %.2f ms\n", lateness[skip + want - 1],
           want > 1 ? lateness[skip + want - 2] : 0.0, want > 2 ? lateness[skip + want - 3] : 0.0);
    printf("BENCH precision.p50_ms %.3f\n", pct(lateness + skip, want, .5));
    printf("BENCH precision.p90_ms %.3f\n", pct(lateness + skip, want, .9));
    printf("BENCH precision.p99_ms %.3f\n", pct(lateness + skip, want, .99));
    printf("BENCH precision.max_ms %.3f\n", lateness[skip + want - 1]);
    return 0;
}

/* ---- idle ---------------------------------------------------------------------------------- */

/* $PGSCHED_TEST_DSN with dbname replaced. */
static char *conninfo_for_db(const char *dbname)
{
    PQconninfoOption *o = PQconninfoParse(dsn, NULL), *p;
    static char buf[2048];
    size_t len = 0;
    if (!o) die("idle", "cannot parse the connection string");
    buf[0] = 0;
    for (p = o; p->keyword; p++) {
        const char *v = strcmp(p->keyword, "dbname") == 0 ? dbname : p->val;
        const char *c;
        if (!v || !*v) continue;
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s='", p->keyword);
        for (c = v; *c && len + 4 < sizeof buf; c++) {
            if (*c == '\'' || *c == '\\') buf[len++] = '\\';
            buf[len++] = *c;
        }
        len += (size_t)snprintf(buf + len, sizeof buf - len, "' ");
        if (len >= sizeof buf - 8) die("idle", "connection string too long");
    }
    PQconninfoFree(o);
    return buf;
}

static int mode_idle(double seconds)
{
    const char *dbname = "bench_idle";
    pgsched_job_type t;
    pgsched_node *n;
    pgsched_error e;
    const char *p[1];
    double s0 = 0, s1 = 0, x0, x1, c0, c1, t0, t1;
    int have_pss;
    char sql[256];
    p[0] = dbname;
    exec_sql("DROP DATABASE IF EXISTS bench_idle");
    exec_sql("CREATE DATABASE bench_idle");
    /* pg_stat_statements counts only when the server preloads it (run.sh asks for that) */
    have_pss = q_double("SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries' "
                        "AND setting LIKE '%pg_stat_statements%'", 0, NULL) > 0;
    if (have_pss) exec_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    memset(&t, 0, sizeof t);
    t.name = "idle";
    t.handler = noop_handler;
    snprintf(sql, sizeof sql, "bench_idle");
    n = make_node(conninfo_for_db(dbname), sql, 4, 1, &t);
    if (pgsched_start(n, &e) != PGSCHED_OK) die("start", e.message);
    sleep_ms(3000); /* past start-up */
#define PSS_CALLS                                                                               \
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d "              \
    "ON d.oid = s.dbid WHERE d.datname = $1"
#define XACTS                                                                                   \
    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1"
    if (have_pss) s0 = q_double(PSS_CALLS, 1, p);
    x0 = q_double(XACTS, 1, p);
    c0 = cpu_s();
    t0 = mono_s();
    sleep_ms(seconds * 1000.0);
    t1 = mono_s();
    c1 = cpu_s();
    if (have_pss) s1 = q_double(PSS_CALLS, 1, p);
    x1 = q_double(XACTS, 1, p);
    pgsched_destroy(n);
    exec_sql("DROP DATABASE bench_idle");
    if (have_pss)
        printf("# idle node, notifications on, %.0f s: %.0f statements\n", t1 - t0, s1 - s0);
    else
        printf("# idle node: the server does not preload pg_stat_statements: no statement count\n");
    printf("# idle node, notifications on, %.0f s: %.0f transactions (the statistics may lag a "
           "second or more), CPU %.3f s\n",
           t1 - t0, x1 - x0, c1 - c0);
    if (have_pss) printf("BENCH idle.statements_per_min %.1f\n", (s1 - s0) * 60.0 / (t1 - t0));
    printf("BENCH idle.xacts_per_min %.1f\n", (x1 - x0) * 60.0 / (t1 - t0));
    printf("BENCH idle.cpu_s_per_min %.4f\n", (c1 - c0) * 60.0 / (t1 - t0));
    return 0;
}

/* ---- memory -------------------------------------------------------------------------------- */

static int mode_memory(const char *schema, long jobs)
{
    pgsched_job_type t;
    pgsched_node *n;
    pgsched_error e;
    pgsched_counters c = {0};
    long rss_10k = 0, rss_end, first = jobs < 10000 ? jobs : 10000;
    double t0;
    fresh_schema(schema);
    insert_due(schema, "noop", jobs);
    memset(&t, 0, sizeof t);
    t.name = "noop";
    t.handler = noop_handler;
    n = make_node(dsn, schema, 10, 1, &t);
    if (pgsched_start(n, &e) != PGSCHED_OK) die("start", e.message);
    t0 = mono_s();
    for (;;) {
        pgsched_get_counters(n, &c);
        if (!rss_10k && c.succeeded >= first) rss_10k = status_kb("VmRSS");
        if (c.succeeded >= jobs) break;
        if (mono_s() - t0 > 300) die("memory", "the runs did not finish in 300 s");
        sleep_ms(5);
    }
    rss_end = status_kb("VmRSS");
    printf("# memory: one node, 10 workers, %ld runs in %.1f s: RSS %ld kB after %ld runs, "
           "%ld kB after %ld, peak %ld kB\n",
           jobs, mono_s() - t0, rss_10k, first, rss_end, jobs, status_kb("VmHWM"));
    printf("BENCH memory.rss_kb.runs_%ld %ld\n", first, rss_10k);
    printf("BENCH memory.rss_kb.runs_%ld %ld\n", jobs, rss_end);
    pgsched_destroy(n);
    return 0;
}

/* ---- fsync -------------------------------------------------------------------------------- */

static int mode_fsync(const char *v)
{
    char sql[128];
    const char *names[] = {"fsync", "synchronous_commit", "full_page_writes"};
    double t0 = mono_s();
    size_t i;
    if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) die("fsync", "give on or off");
    for (i = 0; i < 3; i++) {
        snprintf(sql, sizeof sql, "ALTER SYSTEM SET %s = %s", names[i], v);
        exec_sql(sql);
    }
    exec_sql("SELECT pg_reload_conf()");
    /* the reload reaches this backend between statements */
    while (strcmp(fsync_label(), v) != 0) {
        if (mono_s() - t0 > 10) die("fsync", "the server did not take the new setting in 10 s");
        sleep_ms(20);
    }
    printf("# fsync, synchronous_commit and full_page_writes are %s\n", v);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    ssize_t len = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (len <= 0) die("readlink /proc/self/exe", strerror(errno));
    self_path[len] = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    connect_admin(strcmp(mode, "node") == 0);
    if (strcmp(mode, "node") == 0 && argc == 4) return mode_node(argv[2], atoi(argv[3]));
    if (strcmp(mode, "throughput") == 0 && (argc == 6 || argc == 7))
        return mode_throughput(argv[2], atoi(argv[3]), atoi(argv[4]), atol(argv[5]),
                               argc == 7 && strcmp(argv[6], "started") == 0);
    if (strcmp(mode, "schedule") == 0 && (argc == 5 || argc == 6))
        return mode_schedule(argv[2], atol(argv[3]), atol(argv[4]), argc == 6 ? atol(argv[5]) : 0);
    if (strcmp(mode, "produce") == 0 && argc == 5)
        return mode_produce(argv[2], atol(argv[3]), atof(argv[4]));
    if (strcmp(mode, "latency") == 0 && argc == 6)
        return mode_latency(argv[2], atol(argv[3]), argv[4], strcmp(argv[5], "on") == 0);
    if (strcmp(mode, "precision") == 0 && argc == 4) return mode_precision(argv[2], atoi(argv[3]));
    if (strcmp(mode, "idle") == 0 && argc == 3) return mode_idle(atof(argv[2]));
    if (strcmp(mode, "memory") == 0 && argc == 4) return mode_memory(argv[2], atol(argv[3]));
    if (strcmp(mode, "fsync") == 0 && argc == 3) return mode_fsync(argv[2]);
    if (strcmp(mode, "version") == 0) {
        PGresult *r = q("SHOW server_version", 0, NULL);
        printf("%s\n", PQgetvalue(r, 0, 0));
        PQclear(r);
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of tests/bench/bench_node.c\n");
    return 2;
}
