/* engine_suite_fixture.h - the fixture of the engine suite (tests/test_engine.c).

   Every test is written once, as `ENGINE_TEST(name) { ... }` with an `efx *fx`, and runs on
   the memory store, on PostgreSQL, or both (see the tables in test_engine.c):
   - memory: one pgsched_memory_store per test, shared by every node of the test
     (cfg.store = fx->store); its clock is the wall clock plus fx->skew (0 unless a test
     skews it);
   - postgresql: a fresh schema per test (dropped afterwards); every node gets its own store
     from cfg.conninfo (as separate processes would), and fx->store is the test's own handle
     on the same tables, used to inspect rows and to play a "fake node" through the store API.

   The engine runs on real time, so tests wait for conditions with a deadline (WAIT_UNTIL),
   never with a bare sleep. Handlers and callbacks never call cmocka assertions: they record
   what they saw in fixture-owned probes/recorders and the test checks that. Everything a
   handler touches lives in the fixture (heap), so a failing test (longjmp) is safe: teardown
   destroys the nodes first (which joins their threads), then frees the probes. */
#ifndef ENGINE_SUITE_FIXTURE_H
#define ENGINE_SUITE_FIXTURE_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>
#include <libpq-fe.h>

#define EFX_MAX_NODES 16
#define EFX_MAX_PROBES 16
#define EFX_MAX_RECORDERS 8
#define EFX_MAX_RECS 512
#define EFX_MAX_EVENTS 1024
#define EFX_PREFIX "eng_"

#define MS PGSCHED_MILLISECOND
#define SEC PGSCHED_SECOND

/* ---- time and waiting ------------------------------------------------------------------ */

static pgsched_time mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (pgsched_time)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(pgsched_duration d)
{
    struct timespec ts;
    if (d <= 0) return;
    ts.tv_sec = (time_t)(d / 1000000);
    ts.tv_nsec = (long)(d % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Polls `cond(arg)` every 2 ms until it is true (returns 1) or `deadline_ms` passed (0). */
static int wait_until(int (*cond)(void *), void *arg, long deadline_ms)
{
    pgsched_time deadline = mono_us() + (pgsched_time)deadline_ms * 1000;
    for (;;) {
        if (cond(arg)) return 1;
        if (mono_us() > deadline) return 0;
        sleep_us(2 * MS);
    }
}

/* The same for an expression of the test (evaluated in the test's thread); fails the test
   with the expression's text when the deadline passes. */
#define WAIT_UNTIL(expr, deadline_ms)                                                          \
    do {                                                                                       \
        pgsched_time wu_deadline_ = mono_us() + (pgsched_time)(deadline_ms) * 1000;            \
        while (!(expr)) {                                                                      \
            if (mono_us() > wu_deadline_)                                                      \
                fail_msg("timed out after %ld ms waiting for: %s", (long)(deadline_ms), #expr); \
            sleep_us(2 * MS);                                                                  \
        }                                                                                      \
    } while (0)

/* ---- records of handler runs and status callbacks -------------------------------------- */

typedef struct run_rec {
    char name[PGSCHED_NAME_MAX + 1];
    char key[128];
    char params[512];
    char node[PGSCHED_NODE_ID_MAX + 1];
    int attempt, max_retries;
    pgsched_time scheduled_for;
    pgsched_time start_db, end_db;     /* store clock, read by the handler */
    pgsched_time start_mono, end_mono; /* this machine's monotonic clock */
    pgsched_time cancel_seen_mono;     /* when the handler noticed the cancel (0 = never) */
    int cancelled_at_start, saw_cancel, rc, done;
    pgsched_cancel_reason cancel_reason; /* at the end of the run */
    pgsched_result api_rc[8];          /* codes of API calls a hook made */
    char api_msg[PGSCHED_ERROR_MAX];
} run_rec;

struct efx;
struct probe;
typedef void (*probe_hook)(pgsched_run *run, struct probe *p, run_rec *r);

/* A handler's behaviour and what it saw. Set the behaviour before the node starts (or under
   `mu` while it runs). */
typedef struct probe {
    struct efx *fx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* behaviour */
    int rc;                 /* returned normally (PGSCHED_RUN_SUCCESS) */
    int rc_on_cancel;       /* returned when the run was cancelled (PGSCHED_RUN_FAILURE) */
    int fail_first;         /* the first N runs of this probe return FAILURE */
    int failed_so_far;
    pgsched_duration work;  /* pgsched_run_sleep this long (ends early on cancel) */
    int wait_cancel;        /* then wait until cancelled (bounded by 20 s) */
    int gated;              /* first wait until gate_open (bounded by 20 s) */
    int gate_open;
    int gate_ignores_cancel; /* gated: keep waiting even when cancelled (a stuck handler) */
    int error_attempt;      /* on failure: set_error("attempt N failed") */
    const char *error;      /* on failure: set_error("%s", error) (wins over error_attempt) */
    probe_hook hook;        /* called at the start of each run */
    void *hook_arg;
    void (*hook_arg_free)(void *arg); /* teardown frees hook_arg with this (after the nodes) */
    /* records */
    run_rec recs[EFX_MAX_RECS];
    int nrecs, inflight, max_inflight, finished;
} probe;

typedef struct ev_rec {
    char name[PGSCHED_NAME_MAX + 1];
    char key[128];
    char node[PGSCHED_NODE_ID_MAX + 1];
    pgsched_status old_status, new_status;
    pgsched_time next_run;
    int64_t version;
    int remote;
} ev_rec;

struct recorder;
typedef void (*recorder_hook)(struct recorder *rec, const pgsched_status_event *ev);

/* What an on_status callback saw. */
typedef struct recorder {
    struct efx *fx;
    pthread_mutex_t mu;
    pgsched_node *node;   /* the node the callback belongs to (for hooks) */
    recorder_hook hook;
    void *hook_arg;
    ev_rec ev[EFX_MAX_EVENTS];
    int n;
    int hook_calls;
    pgsched_result hook_rc[8];
    char hook_msg[PGSCHED_ERROR_MAX];
} recorder;

/* ---- the fixture ----------------------------------------------------------------------- */

typedef struct efx {
    int pg;                 /* 1: PostgreSQL, 0: memory */
    pgsched_store *store;   /* the test's own handle */
    pgsched_error err;      /* the error of the last OK/FAILS call */
    char schema[64];
    int64_t skew;           /* memory store clock = wall clock + skew (atomic) */
    int closing;            /* teardown in progress: handlers stop waiting (atomic) */

    pgsched_node *nodes[EFX_MAX_NODES];
    int nnodes;
    probe *probes[EFX_MAX_PROBES];
    int nprobes;
    recorder *recorders[EFX_MAX_RECORDERS];
    int nrecorders;
    pgsched_job_list **jlists;
    size_t njlists, capjlists;
    pgsched_run_list **rlists;
    size_t nrlists, caprlists;
    pgsched_store *extra_stores[4];
    int nextra_stores;
    char roles[2][64];      /* roles the test created, dropped at teardown */
    int nroles;
    PGconn *role_conns[2];  /* their connections, closed at teardown */

    pthread_mutex_t log_mu;
    int log_count[PGSCHED_LOG_OFF + 1];
    int log_control;        /* lines holding a control character (a line break, say) */
    char log_error[512];    /* the last line logged at PGSCHED_LOG_ERROR */
    pgsched_time started_mono; /* for the per-test time printed with ENGINE_TEST_VERBOSE */
} efx;

#define E (&fx->err)

/* A call that must succeed; on failure the message names the call, the code and the detail. */
#define OK(expr)                                                                               \
    do {                                                                                       \
        pgsched_result ok_rc_;                                                                 \
        memset(&fx->err, 0, sizeof fx->err);                                                   \
        ok_rc_ = (expr);                                                                       \
        if (ok_rc_ != PGSCHED_OK)                                                              \
            fail_msg("%s failed: %d (%s): %s", #expr, (int)ok_rc_,                             \
                     pgsched_result_string(ok_rc_), fx->err.message);                          \
    } while (0)

/* A call that must fail with `code` and fill the error with that code and a message. */
#define FAILS(want_, expr)                                                                      \
    do {                                                                                       \
        pgsched_result fl_rc_;                                                                 \
        memset(&fx->err, 0, sizeof fx->err);                                                   \
        fl_rc_ = (expr);                                                                       \
        if (fl_rc_ != (want_))                                                                  \
            fail_msg("%s returned %d (%s), expected %d (%s); message: %s", #expr, (int)fl_rc_,  \
                     pgsched_result_string(fl_rc_), (int)(want_),                               \
                     pgsched_result_string(want_), fx->err.message);                            \
        if (fx->err.code != (want_) || fx->err.message[0] == '\0')                             \
            fail_msg("%s: the error was not filled in (code %d, message \"%s\")", #expr,      \
                     (int)fx->err.code, fx->err.message);                                      \
    } while (0)

/* The message of the last FAILS names `what`. */
#define MSG_HAS(what)                                                                          \
    do {                                                                                       \
        if (!strstr(fx->err.message, (what)))                                                  \
            fail_msg("the error message \"%s\" does not mention \"%s\"", fx->err.message,      \
                     (what));                                                                  \
    } while (0)

#define assert_between(v, lo, hi)                                                              \
    do {                                                                                       \
        long long ab_v_ = (long long)(v), ab_lo_ = (long long)(lo), ab_hi_ = (long long)(hi);  \
        if (ab_v_ < ab_lo_ || ab_v_ > ab_hi_)                                                  \
            fail_msg("%s = %lld is not within [%lld, %lld] (%s .. %s)", #v, ab_v_, ab_lo_,     \
                     ab_hi_, #lo, #hi);                                                        \
    } while (0)

typedef void (*engine_test_fn)(efx *fx);

#define ENGINE_TEST(name)                                                                      \
    static void name(efx *fx);                                                                 \
    static void name##_cm(void **state) { name((efx *)*state); }                               \
    static void name(efx *fx)

/* ---- globals ---------------------------------------------------------------------------- */

static const char *g_dsn;  /* PGSCHED_TEST_DSN */
static PGconn *g_admin;    /* the suite's own connection, main thread only */
static int g_schema_counter;
static int g_verbose;

static int fx_closing(efx *fx) { return __atomic_load_n(&fx->closing, __ATOMIC_ACQUIRE); }

/* ---- the memory store's clock and the log ---------------------------------------------- */

static pgsched_time fx_clock(void *user)
{
    efx *fx = (efx *)user;
    return pgsched_now() + __atomic_load_n(&fx->skew, __ATOMIC_ACQUIRE);
}

static void fx_skew_add(efx *fx, pgsched_duration d)
{
    __atomic_add_fetch(&fx->skew, d, __ATOMIC_ACQ_REL);
}

static void fx_log(void *user, pgsched_log_level level, const char *message)
{
    efx *fx = (efx *)user;
    pthread_mutex_lock(&fx->log_mu);
    if (level >= 0 && level <= PGSCHED_LOG_OFF) fx->log_count[level]++;
    {
        const unsigned char *c;
        for (c = (const unsigned char *)message; *c; c++)
            if (*c < 0x20 || *c == 0x7f) {
                fx->log_control++;
                break;
            }
    }
    if (level == PGSCHED_LOG_ERROR) snprintf(fx->log_error, sizeof fx->log_error, "%s", message);
    pthread_mutex_unlock(&fx->log_mu);
    if (g_verbose) fprintf(stderr, "    [log %d] %s\n", (int)level, message);
}

/* How many lines of `level` the engine logged so far. */
static int fx_log_count(efx *fx, pgsched_log_level level)
{
    int n;
    pthread_mutex_lock(&fx->log_mu);
    n = fx->log_count[level];
    pthread_mutex_unlock(&fx->log_mu);
    return n;
}

/* ---- PostgreSQL administration ---------------------------------------------------------- */

static void admin_exec(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    PGresult *r;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    assert_non_null(g_admin);
    r = PQexec(g_admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("admin SQL failed: %s\n  %s", sql, msg);
    }
    PQclear(r);
}

static long long admin_int(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    PGresult *r;
    long long v;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    assert_non_null(g_admin);
    r = PQexec(g_admin, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("admin query failed or returned no single row: %s\n  %s", sql, msg);
    }
    v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* ---- setup and teardown ------------------------------------------------------------------ */

static efx *efx_new(int pg)
{
    efx *fx = (efx *)calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->pg = pg;
    pthread_mutex_init(&fx->log_mu, NULL);
    fx->started_mono = mono_us();
    return fx;
}

static int memory_setup(void **state)
{
    efx *fx = efx_new(0);
    pgsched_memory_config cfg;
    *state = fx;
    memset(&cfg, 0, sizeof cfg);
    cfg.clock = fx_clock;
    cfg.clock_user = fx;
    if (pgsched_memory_store_create(&cfg, &fx->store, E) != PGSCHED_OK ||
        pgsched_store_setup(fx->store, E) != PGSCHED_OK) {
        print_error("memory store: %s\n", fx->err.message);
        return -1;
    }
    return 0;
}

static int pg_setup(void **state)
{
    efx *fx = efx_new(1);
    pgsched_pg_config cfg;
    *state = fx;
    if (!g_admin) {
        print_error("no PostgreSQL connection: PGSCHED_TEST_DSN is not set or does not answer\n");
        return -1;
    }
    snprintf(fx->schema, sizeof fx->schema, "e_%ld_%d", (long)getpid(), ++g_schema_counter);
    memset(&cfg, 0, sizeof cfg);
    cfg.conninfo = g_dsn;
    cfg.schema = fx->schema;
    cfg.prefix = EFX_PREFIX;
    if (pgsched_pg_store_create(&cfg, &fx->store, E) != PGSCHED_OK ||
        pgsched_store_setup(fx->store, E) != PGSCHED_OK) {
        print_error("PostgreSQL store on schema %s: %s\n", fx->schema, fx->err.message);
        return -1;
    }
    return 0;
}

static int efx_teardown(void **state)
{
    efx *fx = (efx *)*state;
    int i;
    size_t k;
    if (!fx) return 0;
    /* A test that failed while the admin connection held a transaction (row locks, say)
       leaves it open: roll it back first, so that neither the nodes' shutdown nor the next
       test waits on its locks. */
    if (g_admin && PQtransactionStatus(g_admin) != PQTRANS_IDLE)
        PQclear(PQexec(g_admin, "ROLLBACK"));
    __atomic_store_n(&fx->closing, 1, __ATOMIC_RELEASE);
    for (i = 0; i < fx->nprobes; i++) {
        pthread_mutex_lock(&fx->probes[i]->mu);
        fx->probes[i]->gate_open = 1;
        pthread_cond_broadcast(&fx->probes[i]->cv);
        pthread_mutex_unlock(&fx->probes[i]->mu);
    }
    for (i = fx->nnodes - 1; i >= 0; i--)
        if (fx->nodes[i]) pgsched_destroy(fx->nodes[i]);
    for (i = 0; i < fx->nextra_stores; i++) pgsched_store_destroy(fx->extra_stores[i]);
    if (fx->store) pgsched_store_destroy(fx->store);
    for (i = 0; i < fx->nprobes; i++) {
        if (fx->probes[i]->hook_arg_free) fx->probes[i]->hook_arg_free(fx->probes[i]->hook_arg);
        pthread_mutex_destroy(&fx->probes[i]->mu);
        pthread_cond_destroy(&fx->probes[i]->cv);
        free(fx->probes[i]);
    }
    for (i = 0; i < fx->nrecorders; i++) {
        pthread_mutex_destroy(&fx->recorders[i]->mu);
        free(fx->recorders[i]);
    }
    for (k = 0; k < fx->njlists; k++) {
        pgsched_job_list_free(fx->jlists[k]);
        free(fx->jlists[k]);
    }
    free(fx->jlists);
    for (k = 0; k < fx->nrlists; k++) {
        pgsched_run_list_free(fx->rlists[k]);
        free(fx->rlists[k]);
    }
    free(fx->rlists);
    if (fx->pg && g_admin && fx->schema[0]) {
        char sql[256];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", fx->schema);
        PQclear(PQexec(g_admin, sql));
    }
    for (i = 0; i < fx->nroles; i++) {
        char sql[128];
        if (fx->role_conns[i]) PQfinish(fx->role_conns[i]);
        snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS \"%s\"", fx->roles[i]);
        if (g_admin) PQclear(PQexec(g_admin, sql));
    }
    if (g_verbose)
        fprintf(stderr, "    (%lld ms; %d warnings, %d errors logged)\n",
                (long long)(mono_us() - fx->started_mono) / 1000,
                fx->log_count[PGSCHED_LOG_WARN], fx->log_count[PGSCHED_LOG_ERROR]);
    pthread_mutex_destroy(&fx->log_mu);
    free(fx);
    *state = NULL;
    return 0;
}

/* ---- nodes -------------------------------------------------------------------------------- */

/* A configuration with the suite's short timings, on the test's store. */
static pgsched_config fx_config(efx *fx)
{
    pgsched_config c;
    memset(&c, 0, sizeof c);
    if (fx->pg) {
        c.conninfo = g_dsn;
        c.schema = fx->schema;
        c.prefix = EFX_PREFIX;
    } else {
        c.store = fx->store;
    }
    c.max_concurrent = 4;
    c.poll_interval = 100 * MS;
    c.heartbeat_interval = 50 * MS;
    c.stall_timeout = 5 * SEC;
    c.cancel_check_period = 100 * MS;
    c.retry_base = 20 * MS;
    c.retry_cap = 200 * MS;
    c.shutdown_timeout = 5 * SEC;
    c.stall_check_period = 250 * MS;
    c.log = fx_log;
    c.log_user = fx;
    c.log_level = PGSCHED_LOG_INFO;
    return c;
}

static void fx_track_node(efx *fx, pgsched_node *n)
{
    assert_true(fx->nnodes < EFX_MAX_NODES);
    fx->nodes[fx->nnodes++] = n;
}

static pgsched_node *fx_node(efx *fx, const pgsched_config *cfg)
{
    pgsched_node *n = NULL;
    OK(pgsched_create(cfg, &n, E));
    assert_non_null(n);
    fx_track_node(fx, n);
    return n;
}

/* Destroys a node the test made (and forgets it; the last slots free up again, so a test
   may make and destroy more nodes than EFX_MAX_NODES one after the other). */
static void fx_destroy_node(efx *fx, pgsched_node *n)
{
    int i;
    for (i = 0; i < fx->nnodes; i++)
        if (fx->nodes[i] == n) fx->nodes[i] = NULL;
    while (fx->nnodes > 0 && !fx->nodes[fx->nnodes - 1]) fx->nnodes--;
    pgsched_destroy(n);
}

static pgsched_job_type type_of(const char *name, pgsched_handler h, void *user)
{
    pgsched_job_type t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.handler = h;
    t.user = user;
    return t;
}

static void fx_register(efx *fx, pgsched_node *n, const char *name, pgsched_handler h,
                        void *user)
{
    pgsched_job_type t = type_of(name, h, user);
    OK(pgsched_register(n, &t, E));
}

static pgsched_counters counters_of(pgsched_node *n)
{
    pgsched_counters c;
    memset(&c, 0, sizeof c);
    pgsched_get_counters(n, &c);
    return c;
}

/* ---- specs ------------------------------------------------------------------------------- */

static pgsched_job_spec spec_once(const char *name, const char *key, pgsched_time at)
{
    pgsched_job_spec s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.key = key;
    s.schedule.kind = PGSCHED_ONCE;
    s.schedule.at = at;
    return s;
}

static pgsched_job_spec spec_interval(const char *name, const char *key, pgsched_duration every)
{
    pgsched_job_spec s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.key = key;
    s.schedule.kind = PGSCHED_INTERVAL;
    s.schedule.every = every;
    return s;
}

static pgsched_job_spec spec_cron(const char *name, const char *key, const char *cron)
{
    pgsched_job_spec s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.key = key;
    s.schedule.kind = PGSCHED_CRON;
    s.schedule.cron = cron;
    return s;
}

/* ---- store inspection (through the test's own handle) ------------------------------------ */

static pgsched_job_list *fx_jlist(efx *fx)
{
    pgsched_job_list *l = (pgsched_job_list *)calloc(1, sizeof *l);
    assert_non_null(l);
    pgsched_job_list_init(l, NULL);
    if (fx->njlists == fx->capjlists) {
        fx->capjlists = fx->capjlists ? 2 * fx->capjlists : 64;
        fx->jlists = (pgsched_job_list **)realloc(fx->jlists, fx->capjlists * sizeof *fx->jlists);
        assert_non_null(fx->jlists);
    }
    fx->jlists[fx->njlists++] = l;
    return l;
}

static pgsched_run_list *fx_rlist(efx *fx)
{
    pgsched_run_list *l = (pgsched_run_list *)calloc(1, sizeof *l);
    assert_non_null(l);
    pgsched_run_list_init(l, NULL);
    if (fx->nrlists == fx->caprlists) {
        fx->caprlists = fx->caprlists ? 2 * fx->caprlists : 16;
        fx->rlists = (pgsched_run_list **)realloc(fx->rlists, fx->caprlists * sizeof *fx->rlists);
        assert_non_null(fx->rlists);
    }
    fx->rlists[fx->nrlists++] = l;
    return l;
}

static pgsched_time fx_now(efx *fx)
{
    pgsched_time t = 0;
    OK(pgsched_store_now(fx->store, &t, E));
    return t;
}

/* The row (valid until teardown); fails the test when it does not exist. */
static const pgsched_job *job_get(efx *fx, const char *name, const char *key)
{
    pgsched_job_list *l = fx_jlist(fx);
    OK(pgsched_store_get(fx->store, name, key, l, E));
    assert_int_equal(l->count, 1);
    return &l->items[0];
}

/* The row's status; PGSCHED_STATUS_NONE when it does not exist. */
static pgsched_status job_status(efx *fx, const char *name, const char *key)
{
    pgsched_job_list l;
    pgsched_result rc;
    pgsched_status st = PGSCHED_STATUS_NONE;
    pgsched_error e;
    pgsched_job_list_init(&l, NULL);
    rc = pgsched_store_get(fx->store, name, key, &l, &e);
    if (rc == PGSCHED_OK && l.count == 1) st = l.items[0].status;
    pgsched_job_list_free(&l);
    if (rc != PGSCHED_OK && rc != PGSCHED_ERR_NOT_FOUND)
        fail_msg("get(%s, %s) failed: %d %s", name, key, (int)rc, e.message);
    return st;
}

#define WAIT_STATUS(name, key, st, ms) WAIT_UNTIL(job_status(fx, (name), (key)) == (st), (ms))

/* How many rows have `status` (NONE = all); of type `name` when not NULL. */
static size_t count_rows(efx *fx, const char *name, pgsched_status status)
{
    pgsched_list_filter f;
    pgsched_job_list l;
    pgsched_error e;
    size_t n;
    pgsched_result rc;
    memset(&f, 0, sizeof f);
    f.name = name;
    f.status = status;
    f.limit = 10000;
    pgsched_job_list_init(&l, NULL);
    rc = pgsched_store_list(fx->store, &f, &l, &e);
    n = l.count;
    pgsched_job_list_free(&l);
    if (rc != PGSCHED_OK) fail_msg("list failed: %d %s", (int)rc, e.message);
    return n;
}

/* No row is left running. */
static void assert_none_running(efx *fx)
{
    size_t n = count_rows(fx, NULL, PGSCHED_RUNNING);
    if (n) fail_msg("%lu rows are still running", (unsigned long)n);
}

static pgsched_run_list *history_of(efx *fx, const char *name, const char *key, size_t limit)
{
    pgsched_run_list *l = fx_rlist(fx);
    OK(pgsched_store_history(fx->store, name, key, limit, l, E));
    return l;
}

/* ---- probes: the generic handler ---------------------------------------------------------- */

static probe *fx_probe(efx *fx)
{
    probe *p = (probe *)calloc(1, sizeof *p);
    assert_non_null(p);
    assert_true(fx->nprobes < EFX_MAX_PROBES);
    p->fx = fx;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->rc = PGSCHED_RUN_SUCCESS;
    p->rc_on_cancel = PGSCHED_RUN_FAILURE;
    fx->probes[fx->nprobes++] = p;
    return p;
}

static pgsched_time run_store_now(pgsched_run *run)
{
    pgsched_time t = 0;
    if (pgsched_store_now(pgsched_node_store(run->node), &t, NULL) != PGSCHED_OK) return 0;
    return t;
}

static int h_probe(pgsched_run *run)
{
    probe *p = (probe *)run->user;
    efx *fx = p->fx;
    run_rec *r = NULL;
    pgsched_time start_db = run_store_now(run), deadline;
    int gated, ignores, wait_cancel, rc, cancelled, fail, error_attempt;
    pgsched_duration work;
    const char *error;
    probe_hook hook;

    pthread_mutex_lock(&p->mu);
    if (p->nrecs < EFX_MAX_RECS) {
        r = &p->recs[p->nrecs++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", run->name);
        snprintf(r->key, sizeof r->key, "%s", run->key);
        snprintf(r->params, sizeof r->params, "%s", run->params ? run->params : "(null)");
        snprintf(r->node, sizeof r->node, "%s", pgsched_node_id(run->node));
        r->attempt = run->attempt;
        r->max_retries = run->max_retries;
        r->scheduled_for = run->scheduled_for;
        r->start_db = start_db;
        r->start_mono = mono_us();
        r->cancelled_at_start = pgsched_run_cancelled(run);
    }
    p->inflight++;
    if (p->inflight > p->max_inflight) p->max_inflight = p->inflight;
    gated = p->gated;
    ignores = p->gate_ignores_cancel;
    wait_cancel = p->wait_cancel;
    work = p->work;
    error = p->error;
    error_attempt = p->error_attempt;
    hook = p->hook;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);

    if (hook) hook(run, p, r);
    deadline = mono_us() + 20 * SEC;
    if (gated) {
        for (;;) {
            int open;
            pthread_mutex_lock(&p->mu);
            open = p->gate_open;
            pthread_mutex_unlock(&p->mu);
            if (open || fx_closing(fx) || mono_us() > deadline) break;
            if (!ignores && pgsched_run_cancelled(run)) break;
            sleep_us(1 * MS);
        }
    }
    if (work > 0) pgsched_run_sleep(run, work);
    if (wait_cancel) {
        while (!pgsched_run_sleep(run, 5 * MS))
            if (fx_closing(fx) || mono_us() > deadline) break;
    }
    cancelled = pgsched_run_cancelled(run);

    pthread_mutex_lock(&p->mu);
    fail = p->failed_so_far < p->fail_first;
    if (fail) p->failed_so_far++;
    rc = fail ? PGSCHED_RUN_FAILURE : cancelled ? p->rc_on_cancel : p->rc;
    pthread_mutex_unlock(&p->mu);
    if (rc != PGSCHED_RUN_SUCCESS) {
        if (error) pgsched_run_set_error(run, "%s", error);
        else if (error_attempt) pgsched_run_set_error(run, "attempt %d failed", run->attempt);
    }
    {
        pgsched_time end_db = run_store_now(run);
        pthread_mutex_lock(&p->mu);
        if (r) {
            if (cancelled && !r->cancel_seen_mono) r->cancel_seen_mono = mono_us();
            r->saw_cancel = cancelled;
            r->cancel_reason = pgsched_run_cancel_reason(run);
            r->rc = rc;
            r->end_db = end_db;
            r->end_mono = mono_us();
            r->done = 1;
        }
        p->inflight--;
        p->finished++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

/* Notes the moment a waiting handler saw its cancel: wait_cancel records it at wake-up. */
static int h_wait_cancel(pgsched_run *run)
{
    probe *p = (probe *)run->user;
    run_rec *r = NULL;
    pgsched_time deadline = mono_us() + 20 * SEC, seen = 0;
    int rc;
    pthread_mutex_lock(&p->mu);
    if (p->nrecs < EFX_MAX_RECS) {
        r = &p->recs[p->nrecs++];
        memset(r, 0, sizeof *r);
        snprintf(r->key, sizeof r->key, "%s", run->key);
        r->attempt = run->attempt;
        r->start_mono = mono_us();
        r->cancelled_at_start = pgsched_run_cancelled(run);
    }
    p->inflight++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (;;) {
        if (pgsched_run_sleep(run, 10 * SEC)) {
            seen = mono_us();
            break;
        }
        if (fx_closing(p->fx) || mono_us() > deadline) break;
    }
    pthread_mutex_lock(&p->mu);
    rc = seen ? p->rc_on_cancel : p->rc;
    if (r) {
        r->cancel_seen_mono = seen;
        r->saw_cancel = seen != 0;
        r->cancel_reason = pgsched_run_cancel_reason(run);
        r->end_mono = mono_us();
        r->rc = rc;
        r->done = 1;
    }
    p->inflight--;
    p->finished++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int probe_nrecs(probe *p)
{
    int n;
    pthread_mutex_lock(&p->mu);
    n = p->nrecs;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int probe_finished(probe *p)
{
    int n;
    pthread_mutex_lock(&p->mu);
    n = p->finished;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int probe_inflight(probe *p)
{
    int n;
    pthread_mutex_lock(&p->mu);
    n = p->inflight;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void probe_open_gate(probe *p)
{
    pthread_mutex_lock(&p->mu);
    p->gate_open = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* A copy of record i (taken under the lock). */
static run_rec probe_rec(probe *p, int i)
{
    run_rec r;
    pthread_mutex_lock(&p->mu);
    if (i < 0 || i >= p->nrecs) {
        pthread_mutex_unlock(&p->mu);
        fail_msg("probe has %d records, not %d", p->nrecs, i + 1);
    }
    r = p->recs[i];
    pthread_mutex_unlock(&p->mu);
    return r;
}

/* ---- a store that wraps the test's store and misbehaves on demand ------------------------
   Written against the public vtable (SPEC §8): every method forwards to the inner store
   (the test's own handle), except where a knob below says otherwise. The knobs are read and
   written with atomics, so a test may turn them while the node runs.
   - schedule_delay: a schedule returns this long after the inner call committed, as a
     database would whose answer is slow to come back while its notification already
     reached the listeners;
   - slow_claims / claim_delay: that many claims (counting down) return claim_delay after the
     inner call; claim_phase is 1 while such a claim is being delayed;
   - hold_claims: the next claim that took rows waits (claim_phase 1) until hold_claims is
     set back to 0 (10 s at most), as a claim whose answer is on its way;
   - heartbeat_mode: FAULT_HB_PASS forwards; FAULT_HB_FAKE answers that every lease is held
     without asking the inner store (the node's heartbeats are "in flight" while the test
     changes the rows); FAULT_HB_FAIL fails with PGSCHED_ERR_CONNECTION (the database is
     unreachable from this node only);
   - finish_down: every finish fails with PGSCHED_ERR_CONNECTION before reaching the inner
     store (with FAULT_HB_FAIL: the database away from this node, as during a restart);
   - refuse_prefix: a finish batch with an outcome whose key starts with it is refused as a
     whole with PGSCHED_ERR_TIME_RANGE (a store that cannot write one of the outcomes);
   - drop_prefix: listen_wait drops the events whose key starts with it (notifications that
     never arrive);
   - lose_claims: that many claims that took rows (counting down) commit and then fail with
     PGSCHED_ERR_CONNECTION, their rows dropped: a reply lost with the connection;
   - lose_claims_kill (PostgreSQL): such a claim also terminates, with pg_terminate_backend,
     every connection named `pgsched` of the test database (the inner store's), so that the
     node's next statements meet a dead connection and reconnect. */

enum { FAULT_HB_PASS, FAULT_HB_FAKE, FAULT_HB_FAIL };

typedef struct fault_store {
    pgsched_store base;
    pgsched_store *inner;
    int64_t schedule_delay;
    int slow_claims;
    int64_t claim_delay;
    int hold_claims;
    int claim_phase;
    int heartbeat_mode;
    int heartbeats;   /* heartbeat calls seen (any mode) */
    int finish_calls; /* finish calls seen */
    int finish_down;
    int list_calls;   /* list calls seen (a node lists its running rows to give back strays) */
    const char *refuse_prefix; /* set before the node starts */
    const char *drop_prefix;   /* set before the node starts */
    int lose_claims;
    int lose_claims_kill;
    int lost_claim_rows; /* rows dropped by lose_claims */
} fault_store;

#define FAULT(s) ((fault_store *)(s))
#define FAULT_INNER(s) (FAULT(s)->inner)
#define FAULT_GET(field) __atomic_load_n(&(field), __ATOMIC_ACQUIRE)
#define FAULT_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELEASE)

static int fault_has_prefix(const char *s, const char *prefix)
{
    return prefix && s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static pgsched_result fault_fail(pgsched_error *err, pgsched_result code, const char *message)
{
    if (err) {
        err->code = code;
        snprintf(err->message, sizeof err->message, "%s", message);
    }
    return code;
}

static pgsched_result fault_setup(pgsched_store *s, pgsched_error *err)
{
    return FAULT_INNER(s)->methods->setup(FAULT_INNER(s), err);
}
static void fault_destroy(pgsched_store *s) { free(s); }
static pgsched_result fault_now(pgsched_store *s, pgsched_time *now, pgsched_error *err)
{
    return FAULT_INNER(s)->methods->now(FAULT_INNER(s), now, err);
}
static pgsched_result fault_schedule(pgsched_store *s, const pgsched_schedule_request *req,
                                     void *conn, pgsched_schedule_outcome *out,
                                     pgsched_error *err)
{
    pgsched_result r = FAULT_INNER(s)->methods->schedule(FAULT_INNER(s), req, conn, out, err);
    sleep_us(FAULT_GET(FAULT(s)->schedule_delay));
    return r;
}
static pgsched_result fault_claim(pgsched_store *s, const pgsched_claim_request *req,
                                  pgsched_job_list *out, pgsched_claim_outcome *info,
                                  pgsched_error *err)
{
    fault_store *f = FAULT(s);
    size_t before = out->count;
    pgsched_result r = f->inner->methods->claim(f->inner, req, out, info, err);
    int slow = FAULT_GET(f->slow_claims);
    while (slow > 0 && !__atomic_compare_exchange_n(&f->slow_claims, &slow, slow - 1, 0,
                                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    if (slow > 0) {
        FAULT_SET(f->claim_phase, 1);
        sleep_us(FAULT_GET(f->claim_delay));
        FAULT_SET(f->claim_phase, 0);
    }
    if (r == PGSCHED_OK && out->count > before) {
        int lose = FAULT_GET(f->lose_claims);
        while (lose > 0 && !__atomic_compare_exchange_n(&f->lose_claims, &lose, lose - 1, 0,
                                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        }
        if (lose > 0 && FAULT_GET(f->lose_claims_kill)) {
            /* a connection of its own: the admin one belongs to the test's thread */
            PGconn *k = PQconnectdb(g_dsn);
            if (PQstatus(k) == CONNECTION_OK)
                PQclear(PQexec(k, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                                  "application_name = 'pgsched' AND datname = "
                                  "current_database() AND pid <> pg_backend_pid()"));
            PQfinish(k);
        }
        if (lose > 0) {
            /* committed; the answer never arrives */
            __atomic_add_fetch(&f->lost_claim_rows, (int)(out->count - before), __ATOMIC_ACQ_REL);
            if (before == 0) pgsched_job_list_clear(out); /* the node's claims start empty */
            return fault_fail(err, PGSCHED_ERR_CONNECTION,
                              "connection to the database lost (fault injected after the claim "
                              "committed)");
        }
    }
    if (r == PGSCHED_OK && out->count > before && FAULT_GET(f->hold_claims)) {
        pgsched_time deadline = mono_us() + 10 * SEC;
        FAULT_SET(f->claim_phase, 1);
        while (FAULT_GET(f->hold_claims) && mono_us() < deadline) sleep_us(1 * MS);
        FAULT_SET(f->claim_phase, 0);
    }
    return r;
}
static pgsched_result fault_heartbeat(pgsched_store *s, const char *node_id,
                                      const pgsched_lease *leases, size_t count, int renew,
                                      pgsched_lease_state *states, pgsched_time *now,
                                      pgsched_error *err)
{
    fault_store *f = FAULT(s);
    size_t i;
    __atomic_add_fetch(&f->heartbeats, 1, __ATOMIC_ACQ_REL);
    switch (FAULT_GET(f->heartbeat_mode)) {
    case FAULT_HB_FAIL:
        return fault_fail(err, PGSCHED_ERR_CONNECTION,
                          "connection to the database lost (fault injected by the test)");
    case FAULT_HB_FAKE:
        for (i = 0; i < count; i++) {
            states[i].lost = 0;
            states[i].cancel_requested = 0;
        }
        return f->inner->methods->now(f->inner, now, err);
    default:
        return f->inner->methods->heartbeat(f->inner, node_id, leases, count, renew, states,
                                            now, err);
    }
}
static pgsched_result fault_finish(pgsched_store *s, const pgsched_outcome *o, size_t count,
                                   pgsched_finish_result *res, pgsched_error *err)
{
    fault_store *f = FAULT(s);
    size_t i;
    __atomic_add_fetch(&f->finish_calls, 1, __ATOMIC_ACQ_REL);
    if (FAULT_GET(f->finish_down))
        return fault_fail(err, PGSCHED_ERR_CONNECTION,
                          "connection to the database lost (fault injected by the test)");
    for (i = 0; i < count; i++)
        if (fault_has_prefix(o[i].key, f->refuse_prefix))
            return fault_fail(err, PGSCHED_ERR_TIME_RANGE,
                              "an outcome of the batch cannot be written (fault injected)");
    return f->inner->methods->finish(f->inner, o, count, res, err);
}
static pgsched_result fault_take_back(pgsched_store *s, const char *node_id,
                                      pgsched_duration stall, int max, pgsched_job_list *out,
                                      pgsched_error *err)
{
    return FAULT_INNER(s)->methods->take_back(FAULT_INNER(s), node_id, stall, max, out, err);
}
static pgsched_result fault_cancel(pgsched_store *s, const char *name, const char *key,
                                   const char *node_id, pgsched_change_outcome *out,
                                   pgsched_error *err)
{
    return FAULT_INNER(s)->methods->cancel(FAULT_INNER(s), name, key, node_id, out, err);
}
static pgsched_result fault_trigger(pgsched_store *s, const char *name, const char *key,
                                    const char *node_id, pgsched_change_outcome *out,
                                    pgsched_error *err)
{
    return FAULT_INNER(s)->methods->trigger(FAULT_INNER(s), name, key, node_id, out, err);
}
static pgsched_result fault_remove(pgsched_store *s, const char *name, const char *key,
                                   const char *node_id, pgsched_change_outcome *out,
                                   pgsched_error *err)
{
    return FAULT_INNER(s)->methods->remove(FAULT_INNER(s), name, key, node_id, out, err);
}
static pgsched_result fault_get(pgsched_store *s, const char *name, const char *key,
                                pgsched_job_list *out, pgsched_error *err)
{
    return FAULT_INNER(s)->methods->get(FAULT_INNER(s), name, key, out, err);
}
static pgsched_result fault_list(pgsched_store *s, const pgsched_list_filter *f,
                                 pgsched_job_list *out, pgsched_error *err)
{
    __atomic_add_fetch(&FAULT(s)->list_calls, 1, __ATOMIC_ACQ_REL);
    return FAULT_INNER(s)->methods->list(FAULT_INNER(s), f, out, err);
}
static pgsched_result fault_history(pgsched_store *s, const char *name, const char *key,
                                    size_t limit, pgsched_run_list *out, pgsched_error *err)
{
    return FAULT_INNER(s)->methods->history(FAULT_INNER(s), name, key, limit, out, err);
}
static pgsched_result fault_next_due(pgsched_store *s, const char *const *names, size_t count,
                                     pgsched_time *next, pgsched_time *now, pgsched_error *err)
{
    return FAULT_INNER(s)->methods->next_due(FAULT_INNER(s), names, count, next, now, err);
}
static pgsched_result fault_node_register(pgsched_store *s, const pgsched_node_record *rec,
                                          pgsched_error *err)
{
    return FAULT_INNER(s)->methods->node_register(FAULT_INNER(s), rec, err);
}
static pgsched_result fault_node_unregister(pgsched_store *s, const char *id,
                                            pgsched_error *err)
{
    return FAULT_INNER(s)->methods->node_unregister(FAULT_INNER(s), id, err);
}
static pgsched_result fault_cleanup(pgsched_store *s, const pgsched_cleanup_request *q,
                                    pgsched_cleanup_outcome *out, pgsched_error *err)
{
    return FAULT_INNER(s)->methods->cleanup(FAULT_INNER(s), q, out, err);
}
static pgsched_result fault_listen_open(pgsched_store *s, pgsched_listener **out,
                                        pgsched_error *err)
{
    return FAULT_INNER(s)->methods->listen_open(FAULT_INNER(s), out, err);
}
static pgsched_result fault_listen_wait(pgsched_store *s, pgsched_listener *l,
                                        pgsched_duration timeout, pgsched_event *ev, size_t cap,
                                        size_t *count, pgsched_error *err)
{
    fault_store *f = FAULT(s);
    pgsched_result r = f->inner->methods->listen_wait(f->inner, l, timeout, ev, cap, count, err);
    size_t i, k = 0;
    if (r != PGSCHED_OK || !f->drop_prefix) return r;
    for (i = 0; i < *count; i++)
        if (!fault_has_prefix(ev[i].key, f->drop_prefix)) ev[k++] = ev[i];
    *count = k;
    return r;
}
static void fault_listen_wake(pgsched_store *s, pgsched_listener *l)
{
    FAULT_INNER(s)->methods->listen_wake(FAULT_INNER(s), l);
}
static void fault_listen_close(pgsched_store *s, pgsched_listener *l)
{
    FAULT_INNER(s)->methods->listen_close(FAULT_INNER(s), l);
}

/* Written for version 1 of the table (no schedule_many): a node's batches fall back to one
   schedule call per job, so every schedule passes through the knobs above. */
static const pgsched_store_methods fault_methods = {
    1,                     "fault",          fault_setup,         fault_destroy,
    fault_now,             fault_schedule,   fault_claim,         fault_heartbeat,
    fault_finish,          fault_take_back,  fault_cancel,        fault_trigger,
    fault_remove,          fault_get,        fault_list,          fault_history,
    fault_next_due,        fault_node_register, fault_node_unregister, fault_cleanup,
    fault_listen_open,     fault_listen_wait, fault_listen_wake,  fault_listen_close,
    NULL,                  NULL};

/* A wrapper of the test's store that behaves until a knob is turned; freed at teardown
   (after the nodes). A node uses it with cfg.store = &w->base (and cfg.conninfo = NULL). */
static fault_store *fx_fault_store(efx *fx)
{
    fault_store *w = (fault_store *)calloc(1, sizeof *w);
    assert_non_null(w);
    assert_true(fx->nextra_stores < 4);
    w->base.methods = &fault_methods;
    w->inner = fx->store;
    fx->extra_stores[fx->nextra_stores++] = &w->base;
    return w;
}

/* A wrapper whose schedule calls return `delay` late. */
static pgsched_store *fx_slow_store(efx *fx, pgsched_duration delay)
{
    fault_store *w = fx_fault_store(fx);
    w->schedule_delay = delay;
    return &w->base;
}

/* A configuration of the test whose node uses the wrapper `w`. */
static pgsched_config fx_config_on(efx *fx, fault_store *w)
{
    pgsched_config c = fx_config(fx);
    c.store = &w->base;
    c.conninfo = NULL;
    c.schema = NULL;
    c.prefix = NULL;
    return c;
}

/* ---- status recorders ----------------------------------------------------------------------- */

static void rec_cb(void *user, const pgsched_status_event *ev)
{
    recorder *g = (recorder *)user;
    recorder_hook hook;
    pthread_mutex_lock(&g->mu);
    if (g->n < EFX_MAX_EVENTS) {
        ev_rec *e = &g->ev[g->n++];
        snprintf(e->name, sizeof e->name, "%s", ev->name ? ev->name : "(null)");
        snprintf(e->key, sizeof e->key, "%s", ev->key ? ev->key : "(null)");
        snprintf(e->node, sizeof e->node, "%s", ev->node ? ev->node : "(null)");
        e->old_status = ev->old_status;
        e->new_status = ev->new_status;
        e->next_run = ev->next_run;
        e->version = ev->version;
        e->remote = ev->remote;
    }
    hook = g->hook;
    pthread_mutex_unlock(&g->mu);
    if (hook) hook(g, ev);
}

static recorder *fx_recorder(efx *fx, pgsched_config *cfg)
{
    recorder *g = (recorder *)calloc(1, sizeof *g);
    assert_non_null(g);
    assert_true(fx->nrecorders < EFX_MAX_RECORDERS);
    g->fx = fx;
    pthread_mutex_init(&g->mu, NULL);
    fx->recorders[fx->nrecorders++] = g;
    cfg->on_status = rec_cb;
    cfg->on_status_user = g;
    return g;
}

/* The events for (name, key), copied under the lock into `out` (at most `cap`). */
static int recorder_events(recorder *g, const char *name, const char *key, ev_rec *out, int cap)
{
    int i, n = 0;
    pthread_mutex_lock(&g->mu);
    for (i = 0; i < g->n; i++)
        if (strcmp(g->ev[i].name, name) == 0 && strcmp(g->ev[i].key, key) == 0 && n < cap)
            out[n++] = g->ev[i];
    pthread_mutex_unlock(&g->mu);
    return n;
}

static int recorder_count(recorder *g, const char *name, const char *key)
{
    ev_rec tmp[64];
    return recorder_events(g, name, key, tmp, 64);
}

/* Waits (without failing) until `n` events for (name, key) arrived or `ms` passed; the test
   then checks the sequence, whose failure message lists what did arrive. */
static void recorder_wait(recorder *g, const char *name, const char *key, int n, long ms)
{
    pgsched_time deadline = mono_us() + (pgsched_time)ms * 1000;
    while (recorder_count(g, name, key) < n && mono_us() < deadline) sleep_us(2 * MS);
}

static const char *st_name(pgsched_status s) { return pgsched_status_string(s); }

/* The events for (name, key) are exactly the given old->new pairs (pairs: 2*n statuses). */
static void assert_event_sequence(recorder *g, const char *name, const char *key,
                                  const pgsched_status *pairs, int n)
{
    ev_rec ev[64];
    int got = recorder_events(g, name, key, ev, 64), i;
    char buf[1024];
    size_t o = 0;
    buf[0] = '\0';
    for (i = 0; i < got && o < sizeof buf - 64; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s->%s%s", i ? ", " : "",
                              st_name(ev[i].old_status), st_name(ev[i].new_status),
                              ev[i].remote ? "(remote)" : "");
    if (got != n) fail_msg("%s/%s: %d events [%s], expected %d", name, key, got, buf, n);
    for (i = 0; i < n; i++)
        if (ev[i].old_status != pairs[2 * i] || ev[i].new_status != pairs[2 * i + 1])
            fail_msg("%s/%s: events [%s]; event %d should be %s->%s", name, key, buf, i,
                     st_name(pairs[2 * i]), st_name(pairs[2 * i + 1]));
}

#endif /* ENGINE_SUITE_FIXTURE_H */
