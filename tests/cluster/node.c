/* tests/cluster/node.c - the node program of the cluster suite (tests/cluster/run.sh).

   One process = one scheduler node on the PostgreSQL database of the suite, with job types
   whose every run is written down, through a connection of its own (application_name
   pgsched-recorder, not the scheduler's), with the database clock at its start and end: the
   driver checks the scheduler's guarantees against those records, not against what the
   scheduler says about itself.

     node run      dsn=... schema=S label=L [workers=8] [stall_ms=3000] [shutdown_ms=1000]
                   [drain_ms=0] [poll_ms=500]
         runs until SIGTERM or SIGINT, then pgsched_shutdown + pgsched_destroy, and exits 0.
     node schedule dsn=... schema=S type=T prefix=P count=N [delay_ms=0] [spread_ms=0]
                   [ms=0] [fail=0] [retries=5] [cron=EXPR]
         schedules keys P0..P(N-1) of type T, in transactions of 200: one-time jobs due at the
         database's now (at the start of the transaction) + delay_ms + a spread over spread_ms
         (times in the database's clock, whatever this machine's clock says), or cron jobs
         when cron= is given.
     node cancel   dsn=... schema=S type=T key=K [key=K ...]
         pgsched_cancel from this process, each request written to t_cancels.

   Job types (params {"ms": N, "fail": N}):
     ok        waits ms (pgsched_run_sleep: a cancel cuts it short) and succeeds
     ok_LABEL  as ok, registered only by the node labelled LABEL
     flaky     fails while attempt <= fail, then as ok
     sleep     as ok; a cancelled run records "cancelled" and fails
     stubborn  waits ms with nanosleep, ignoring any cancel, then succeeds
     tick      a cron type: records the run and succeeds

   Each run records its outcome as the handler saw it (success, failure, cancelled,
   success-ignoring-cancel) and, when it was asked to stop, why (pgsched_run_cancel_reason).
   The tables t_runs, t_nodes and t_cancels are created by the driver in schema S. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <libpq-fe.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *opt_dsn, *opt_schema = "public", *opt_label = "node";
static char node_id[PGSCHED_NODE_ID_MAX + 1];
static pthread_key_t conn_key;
static pthread_mutex_t seq_mu = PTHREAD_MUTEX_INITIALIZER;
static long run_seq;

static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "node %s: ", opt_label);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the recorder: one connection per thread, reconnecting through outages ------------------ */

static PGconn *connect_recorder(void)
{
    const char *keys[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *vals[] = {"pgsched-recorder", "5", opt_dsn, NULL};
    double deadline = mono_s() + 120;
    for (;;) {
        PGconn *c = PQconnectdbParams(keys, vals, 1);
        if (c && PQstatus(c) == CONNECTION_OK) {
            char sql[200];
            PGresult *r;
            snprintf(sql, sizeof sql, "SET search_path = \"%s\"", opt_schema);
            r = PQexec(c, sql);
            if (PQresultStatus(r) == PGRES_COMMAND_OK) {
                PQclear(r);
                return c;
            }
            PQclear(r);
        }
        if (mono_s() > deadline) die("recorder: cannot connect: %s", c ? PQerrorMessage(c) : "");
        PQfinish(c);
        sleep_ms(100);
    }
}

static void drop_conn(void *c) { PQfinish((PGconn *)c); }

/* Runs an idempotent statement until it succeeds (the database may be restarting). With
   `event` (a CLOCK_MONOTONIC time) the statement's last parameter is set, at each try, to the
   microseconds since then: the statement writes clock_timestamp() minus that, the database's
   clock at the moment of the event even when the database was unreachable at that moment. */
static void record_at(const char *sql, int n, const char **vals, double event)
{
    double deadline = mono_s() + 120;
    char ago[32];
    for (;;) {
        PGconn *c = (PGconn *)pthread_getspecific(conn_key);
        PGresult *r;
        if (!c) {
            c = connect_recorder();
            pthread_setspecific(conn_key, c);
        }
        if (event > 0) {
            snprintf(ago, sizeof ago, "%lld", (long long)((mono_s() - event) * 1e6));
            vals[n - 1] = ago;
        }
        r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
            PQclear(r);
            return;
        }
        /* an error on a live connection is a bug of the suite, not an outage */
        if (PQstatus(c) == CONNECTION_OK)
            die("recorder: %s failed: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        if (PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            pthread_setspecific(conn_key, NULL);
        }
        if (mono_s() > deadline) die("recorder: no database for 120 s");
        sleep_ms(50);
    }
}

static void record(const char *sql, int n, const char **vals) { record_at(sql, n, vals, 0); }

/* ---- job types ----------------------------------------------------------------------------- */

enum kind { K_OK, K_FLAKY, K_SLEEP, K_STUBBORN, K_TICK };

static long param(const char *params, const char *name)
{
    char pat[40];
    const char *p;
    snprintf(pat, sizeof pat, "\"%s\":", name);
    p = params ? strstr(params, pat) : NULL;
    return p ? strtol(p + strlen(pat), NULL, 10) : 0;
}

static int handler(pgsched_run *run)
{
    enum kind k = (enum kind)(intptr_t)run->user;
    long ms = param(run->params, "ms"), fail = param(run->params, "fail");
    char id[96], attempt[16], sched[32], pid[16];
    const char *outcome = "success", *reason = "none";
    int rc = PGSCHED_RUN_SUCCESS;
    long seq;
    double t0 = mono_s();
    pthread_mutex_lock(&seq_mu);
    seq = ++run_seq;
    pthread_mutex_unlock(&seq_mu);
    snprintf(id, sizeof id, "%s.%ld.%ld", opt_label, (long)getpid(), seq);
    snprintf(attempt, sizeof attempt, "%d", run->attempt);
    snprintf(sched, sizeof sched, "%lld", (long long)run->scheduled_for);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    {
        const char *v[] = {id, run->name, run->key, node_id, opt_label, pid, attempt, sched, ""};
        record_at("INSERT INTO t_runs (id, name, key, node, label, pid, attempt, scheduled_for, "
                  "started_at) VALUES ($1, $2, $3, $4, $5, $6::int, $7::int, "
                  "'epoch'::timestamptz + $8::bigint * interval '1 microsecond', "
                  "clock_timestamp() - $9::bigint * interval '1 microsecond') "
                  "ON CONFLICT (id) DO NOTHING",
                  9, v, t0);
    }
    switch (k) {
    case K_FLAKY:
        if (run->attempt <= fail) {
            pgsched_run_set_error(run, "planned failure %d of %ld", run->attempt, fail);
            outcome = "failure";
            rc = PGSCHED_RUN_FAILURE;
            break;
        }
        /* fall through */
    case K_OK:
    case K_SLEEP:
        if (ms > 0 && pgsched_run_sleep(run, ms * PGSCHED_MILLISECOND)) {
            outcome = "cancelled";
            rc = PGSCHED_RUN_FAILURE;
        }
        break;
    case K_STUBBORN:
        sleep_ms(ms);
        if (pgsched_run_cancelled(run)) outcome = "success-ignoring-cancel";
        break;
    case K_TICK:
        break;
    }
    switch (pgsched_run_cancel_reason(run)) {
    case PGSCHED_CANCEL_REASON_NONE: break;
    case PGSCHED_CANCEL_REASON_REQUEST: reason = "request"; break;
    case PGSCHED_CANCEL_REASON_TIMEOUT: reason = "timeout"; break;
    case PGSCHED_CANCEL_REASON_LEASE_LOST: reason = "lease lost"; break;
    case PGSCHED_CANCEL_REASON_SHUTDOWN: reason = "shutdown"; break;
    }
    {
        const char *v[] = {id, outcome, reason, ""};
        record_at("UPDATE t_runs SET finished_at = clock_timestamp() - $4::bigint * interval "
                  "'1 microsecond', outcome = $2, cancel_reason = $3 "
                  "WHERE id = $1 AND finished_at IS NULL",
                  4, v, mono_s());
    }
    return rc;
}

/* ---- commands ------------------------------------------------------------------------------ */

static const char *arg(int argc, char **argv, const char *name, const char *dflt)
{
    size_t n = strlen(name);
    int i;
    for (i = 2; i < argc; i++)
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') return argv[i] + n + 1;
    return dflt;
}

static long num(int argc, char **argv, const char *name, long dflt)
{
    const char *v = arg(argc, argv, name, NULL);
    char *end;
    long x;
    if (!v) return dflt;
    x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0') die("%s=%s is not a number", name, v);
    return x;
}

static void log_cb(void *user, pgsched_log_level level, const char *message)
{
    (void)user;
    fprintf(stderr, "node %s: pgsched %s: %s\n", opt_label,
            level >= PGSCHED_LOG_ERROR ? "error" : level == PGSCHED_LOG_WARN ? "warning" : "info",
            message);
}

static void base_config(pgsched_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->pg.conninfo = opt_dsn;
    cfg->pg.schema = opt_schema;
    cfg->log = log_cb;
    cfg->log_level = PGSCHED_LOG_WARN;
}

/* A type this node runs with `handler`, as `kind`. */
static void register_type(pgsched_node *node, const char *name, enum kind kind)
{
    pgsched_job_type t;
    pgsched_error e;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.handler = handler;
    t.user = (void *)(intptr_t)kind;
    t.max_retries = 5;
    if (pgsched_register(node, &t, &e) != PGSCHED_OK) die("register: %s", e.message);
}

static int cmd_run(int argc, char **argv)
{
    static const struct {
        const char *name;
        enum kind kind;
    } types[] = {{"ok", K_OK}, {"flaky", K_FLAKY}, {"sleep", K_SLEEP},
                 {"stubborn", K_STUBBORN}, {"tick", K_TICK}};
    pgsched_config cfg;
    pgsched_node *node;
    pgsched_error e;
    pgsched_counters c;
    sigset_t set;
    size_t i;
    int sig = 0;
    char pid[16], own[64];
    long stall_ms = num(argc, argv, "stall_ms", 3000);

    /* Signals go to sigwait here, never to a scheduler thread (created after this). */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    base_config(&cfg);
    cfg.max_concurrent = (int)num(argc, argv, "workers", 8);
    cfg.stall_timeout = stall_ms * PGSCHED_MILLISECOND;
    cfg.stall_check_period = (stall_ms / 4) * PGSCHED_MILLISECOND;
    cfg.shutdown_timeout = num(argc, argv, "shutdown_ms", 1000) * PGSCHED_MILLISECOND;
    cfg.drain_timeout = num(argc, argv, "drain_ms", 0) * PGSCHED_MILLISECOND;
    cfg.poll_interval = num(argc, argv, "poll_ms", 500) * PGSCHED_MILLISECOND;
    cfg.retry_base = 100 * PGSCHED_MILLISECOND;
    cfg.retry_cap = 500 * PGSCHED_MILLISECOND;
    if (pgsched_create(&cfg, &node, &e) != PGSCHED_OK) die("create: %s", e.message);
    for (i = 0; i < sizeof types / sizeof types[0]; i++)
        register_type(node, types[i].name, types[i].kind);
    /* ok_LABEL: as ok, but no other node runs it (a scenario gives one node work that a
       faster node cannot take first) */
    snprintf(own, sizeof own, "ok_%s", opt_label);
    register_type(node, own, K_OK);
    if (pgsched_start(node, &e) != PGSCHED_OK) die("start: %s", e.message);
    snprintf(node_id, sizeof node_id, "%s", pgsched_node_id(node));
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    {
        /* this machine's clock beside the database's: the driver sees a skew take effect */
        char local[32];
        const char *v[] = {opt_label, pid, node_id, local};
        snprintf(local, sizeof local, "%lld", (long long)pgsched_now());
        record("INSERT INTO t_nodes (label, pid, node_id, started_at, local_clock) "
               "VALUES ($1, $2::int, $3, clock_timestamp(), "
               "'epoch'::timestamptz + $4::bigint * interval '1 microsecond')",
               4, v);
    }
    fprintf(stderr, "node %s: started as %s, pid %s\n", opt_label, node_id, pid);

    while (sigwait(&set, &sig) != 0) {
    }
    {
        const char *v[] = {node_id};
        record("UPDATE t_nodes SET signalled_at = clock_timestamp() WHERE node_id = $1", 1, v);
    }
    if (pgsched_shutdown(node, &e) != PGSCHED_OK)
        fprintf(stderr, "node %s: shutdown: %s\n", opt_label, e.message);
    {
        const char *v[] = {node_id};
        record("UPDATE t_nodes SET shutdown_at = clock_timestamp() WHERE node_id = $1", 1, v);
    }
    pgsched_get_counters(node, &c);
    pgsched_destroy(node);
    {
        const char *v[] = {node_id};
        record("UPDATE t_nodes SET exited_at = clock_timestamp() WHERE node_id = $1", 1, v);
    }
    fprintf(stderr,
            "node %s: stopped: claimed %lld, succeeded %lld, failed %lld, cancelled %lld, "
            "stalled taken back %lld, lease lost %lld\n",
            opt_label, (long long)c.claimed, (long long)c.succeeded, (long long)c.failed,
            (long long)c.cancelled, (long long)c.stalled_taken_back, (long long)c.lease_lost);
    return 0;
}

/* A node that only schedules or cancels: registered types without handlers, never started. */
static pgsched_node *client_node(const char *type)
{
    pgsched_config cfg;
    pgsched_node *node;
    pgsched_job_type t;
    pgsched_error e;
    base_config(&cfg);
    if (pgsched_create(&cfg, &node, &e) != PGSCHED_OK) die("create: %s", e.message);
    memset(&t, 0, sizeof t);
    t.name = type;
    t.max_retries = 5;
    if (pgsched_register(node, &t, &e) != PGSCHED_OK) die("register: %s", e.message);
    if (pgsched_init(node, &e) != PGSCHED_OK) die("init: %s", e.message);
    return node;
}

static PGresult *must(PGconn *c, PGresult *r, ExecStatusType want, const char *what)
{
    if (PQresultStatus(r) != want) die("%s: %s", what, PQerrorMessage(c));
    return r;
}

static int cmd_schedule(int argc, char **argv)
{
    const char *type = arg(argc, argv, "type", NULL), *prefix = arg(argc, argv, "prefix", "k");
    const char *cron = arg(argc, argv, "cron", NULL);
    long count = num(argc, argv, "count", 1), delay = num(argc, argv, "delay_ms", 0);
    long spread = num(argc, argv, "spread_ms", 0);
    char params[96], key[96];
    pgsched_node *node;
    pgsched_error e;
    PGconn *c;
    PGresult *r;
    pgsched_time now;
    long i;
    if (!type) die("schedule needs type=");
    snprintf(params, sizeof params, "{\"ms\": %ld, \"fail\": %ld}", num(argc, argv, "ms", 0),
             num(argc, argv, "fail", 0));
    node = client_node(type);
    c = PQconnectdb(opt_dsn);
    if (PQstatus(c) != CONNECTION_OK) die("connect: %s", PQerrorMessage(c));
    srand((unsigned)getpid());
    for (i = 0; i < count; i++) {
        pgsched_job_spec s;
        /* Batches of 200, each with the database's clock read at its start: this machine's
           may be skewed (the suite runs nodes an hour off), and a batch takes long enough
           that one clock for thousands of jobs would make the last ones due before they
           exist, and the lateness measured would be the scheduling's. */
        if (i % 200 == 0) {
            if (i > 0) PQclear(must(c, PQexec(c, "COMMIT"), PGRES_COMMAND_OK, "COMMIT"));
            PQclear(must(c, PQexec(c, "BEGIN"), PGRES_COMMAND_OK, "BEGIN"));
            r = must(c,
                     PQexec(c, "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"),
                     PGRES_TUPLES_OK, "now");
            now = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
        }
        memset(&s, 0, sizeof s);
        snprintf(key, sizeof key, "%s%ld", prefix, i);
        s.name = type;
        s.key = key;
        s.params = params;
        s.max_retries = (int)num(argc, argv, "retries", 5);
        if (cron) {
            s.schedule.kind = PGSCHED_SCHEDULE_CRON;
            s.schedule.cron = cron;
        } else {
            s.schedule.kind = PGSCHED_SCHEDULE_ONCE;
            s.schedule.at = now + (delay + (spread > 0 ? rand() % spread : 0)) *
                                      PGSCHED_MILLISECOND;
        }
        if (pgsched_schedule_job_tx(node, c, &s, &e) != PGSCHED_OK)
            die("schedule %s/%s: %s", type, key, e.message);
    }
    PQclear(must(c, PQexec(c, "COMMIT"), PGRES_COMMAND_OK, "COMMIT"));
    PQfinish(c);
    pgsched_destroy(node);
    return 0;
}

static int cmd_cancel(int argc, char **argv)
{
    const char *type = arg(argc, argv, "type", NULL);
    pgsched_node *node;
    int i, n = 0;
    if (!type) die("cancel needs type=");
    node = client_node(type);
    for (i = 2; i < argc; i++) {
        pgsched_change_effect eff = PGSCHED_CHANGE_NONE;
        pgsched_error e;
        const char *key, *v[3] = {NULL, NULL, NULL};
        if (strncmp(argv[i], "key=", 4) != 0) continue;
        key = argv[i] + 4;
        v[0] = type;
        v[1] = key;
        record("INSERT INTO t_cancels (name, key, requested_at) VALUES ($1, $2, clock_timestamp()) "
               "ON CONFLICT DO NOTHING",
               2, v);
        if (pgsched_cancel(node, type, key, &eff, &e) != PGSCHED_OK)
            die("cancel %s/%s: %s", type, key, e.message);
        v[2] = eff == PGSCHED_CHANGE_CANCEL_REQUESTED ? "requested"
               : eff == PGSCHED_CHANGE_CANCELLED    ? "done"
                                               : "none";
        record("UPDATE t_cancels SET effect = $3 WHERE name = $1 AND key = $2", 3, v);
        n++;
    }
    pgsched_destroy(node);
    {
        PGconn *rc = (PGconn *)pthread_getspecific(conn_key);
        pthread_setspecific(conn_key, NULL);
        PQfinish(rc);
    }
    printf("%d cancels\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    int rc;
    setvbuf(stderr, NULL, _IOLBF, 0);
    opt_dsn = arg(argc, argv, "dsn", getenv("PGSCHED_DSN"));
    opt_schema = arg(argc, argv, "schema", opt_schema);
    opt_label = arg(argc, argv, "label", opt_label);
    if (!opt_dsn) die("no dsn= and no PGSCHED_DSN");
    pthread_key_create(&conn_key, drop_conn);
    if (strcmp(cmd, "run") == 0)
        rc = cmd_run(argc, argv);
    else if (strcmp(cmd, "schedule") == 0)
        rc = cmd_schedule(argc, argv);
    else if (strcmp(cmd, "cancel") == 0)
        rc = cmd_cancel(argc, argv);
    else {
        fprintf(stderr, "usage: node run|schedule|cancel name=value...\n");
        return 2;
    }
    {
        PGconn *c = (PGconn *)pthread_getspecific(conn_key);
        pthread_setspecific(conn_key, NULL);
        PQfinish(c);
    }
    pthread_key_delete(conn_key);
    return rc;
}
