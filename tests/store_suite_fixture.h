/* store_suite_fixture.h - the fixture of the store conformance suite (tests/test_store.c).

   Every test is written once, as `STORE_TEST(name) { ... }` with a `fixture *fx`, and runs
   against both stores:
   - memory: pgsched_memory_store_create with a clock the fixture owns, so "time passes" means
     moving that clock (no sleeping);
   - postgresql: pgsched_pg_store_create on PGSCHED_TEST_DSN, in a fresh schema per test that
     is dropped afterwards. The database clock cannot be moved, so "time passes" means waiting
     (polling the store's clock against a deadline) until it has; timing tests therefore use
     fx->unit, a short span (250 ms) on PostgreSQL and a long one (1 min) in memory.
   Times the store picks itself (now, started_at, ...) are checked to lie between the store's
   clock read before and after the call: for the memory store both reads are equal, so the
   check is exact.

   Threads in a test never call cmocka assertions: they record what they saw and the test
   checks it after joining them. */
#ifndef STORE_SUITE_FIXTURE_H
#define STORE_SUITE_FIXTURE_H

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

/* The memory store's clock starts here: 2026-09-21T14:13:20Z, an arbitrary fixed instant. */
#define T0 ((pgsched_time)1790000000 * PGSCHED_SECOND)

#define FX_MAX_STORES 64
#define FX_MAX_LISTENERS 16

typedef struct fx_listener {
    pgsched_store *store;
    pgsched_listener *l;
} fx_listener;

/* Events a test collected (see the events section below). */
typedef struct evlog {
    pgsched_event *ev;
    size_t n, cap;
} evlog;

typedef struct fixture {
    int pg; /* 1: PostgreSQL store, 0: memory store */
    pgsched_store *store;
    pgsched_error err;          /* the error of the last call made through E */
    pgsched_duration unit;      /* a short span for timing tests (see above) */

    /* memory store's clock */
    pthread_mutex_t clock_mu;
    pgsched_time clock;

    /* PostgreSQL */
    char schema[64];
    char prefix[64];
    char roles[4][64];
    int nroles;
    char schemas[8][64]; /* further schemas a test made, dropped at teardown */
    int nschemas;
    char databases[2][64]; /* databases a test made, dropped at teardown */
    int ndatabases;

    /* what teardown releases, in reverse order of creation */
    fx_listener listeners[FX_MAX_LISTENERS];
    int nlisteners;
    pgsched_store *stores[FX_MAX_STORES]; /* extra store handles */
    int nstores;
    pgsched_job_list **jlists;
    size_t njlists, capjlists;
    pgsched_run_list **rlists;
    size_t nrlists, caprlists;
    evlog *evlogs[32];
    int nevlogs;
    PGconn *conns[4]; /* the test's own further connections (see fx_connect), closed first */
    int nconns;
} fixture;

/* `E` is the error buffer of the current test. */
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

#define assert_time_between(v, lo, hi)                                                         \
    do {                                                                                       \
        pgsched_time tb_v_ = (v), tb_lo_ = (lo), tb_hi_ = (hi);                                \
        if (tb_v_ < tb_lo_ || tb_v_ > tb_hi_)                                                  \
            fail_msg("%s = %lld is not within [%lld, %lld] (%s .. %s)", #v, (long long)tb_v_,   \
                     (long long)tb_lo_, (long long)tb_hi_, #lo, #hi);                          \
    } while (0)

#define assert_str_or_null_equal(a, b)                                                         \
    do {                                                                                       \
        const char *sn_a_ = (a), *sn_b_ = (b);                                                 \
        if ((sn_a_ == NULL) != (sn_b_ == NULL) || (sn_a_ && strcmp(sn_a_, sn_b_) != 0))         \
            fail_msg("%s = %s%s%s differs from %s = %s%s%s", #a, sn_a_ ? "\"" : "",            \
                     sn_a_ ? sn_a_ : "NULL", sn_a_ ? "\"" : "", #b, sn_b_ ? "\"" : "",          \
                     sn_b_ ? sn_b_ : "NULL", sn_b_ ? "\"" : "");                               \
    } while (0)

/* ---- the test table -------------------------------------------------------------------- */

typedef void (*store_test_fn)(fixture *fx);

/* STORE_TEST(name) defines `static void name(fixture *fx)` plus the cmocka entry point. */
#define STORE_TEST(name)                                                                       \
    static void name(fixture *fx);                                                             \
    static void name##_cm(void **state) { name((fixture *)*state); }                           \
    static void name(fixture *fx)

/* ---- small utilities ------------------------------------------------------------------- */

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

/* A string of `n` copies of `c` (owned by the caller). */
static char *repeat_char(char c, size_t n)
{
    char *s = (char *)malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- the memory store's clock ---------------------------------------------------------- */

static pgsched_time fx_memory_clock(void *user)
{
    fixture *fx = (fixture *)user;
    pgsched_time t;
    pthread_mutex_lock(&fx->clock_mu);
    t = fx->clock;
    pthread_mutex_unlock(&fx->clock_mu);
    return t;
}

/* Moves the memory clock forward by `d` (safe from any thread). */
static void fx_clock_add(fixture *fx, pgsched_duration d)
{
    pthread_mutex_lock(&fx->clock_mu);
    fx->clock += d;
    pthread_mutex_unlock(&fx->clock_mu);
}

/* ---- PostgreSQL administration (the suite's own libpq connection) ----------------------- */

static const char *g_dsn;      /* PGSCHED_TEST_DSN */
static PGconn *g_admin;        /* the suite's own connection, main thread only */
static int g_schema_counter;

static void admin_check(PGresult *r, const char *sql)
{
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("admin SQL failed: %s\n  %s", sql, msg);
    }
}

static PGresult *admin_query(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    PGresult *r;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    assert_non_null(g_admin);
    r = PQexec(g_admin, sql);
    admin_check(r, sql);
    return r;
}

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
    admin_check(r, sql);
    PQclear(r);
}

/* The first column of the first row as an integer (the query must return one row). */
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
    admin_check(r, sql);
    if (PQntuples(r) != 1) {
        PQclear(r);
        fail_msg("admin query returned no single row: %s", sql);
    }
    v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* The number of relations (tables, indexes, sequences) in `schema`. */
static long long admin_relation_count(const char *schema)
{
    return admin_int("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                     "c.relnamespace WHERE n.nspname = '%s'",
                     schema);
}

/* `conninfo` with its `user` replaced (keyword=value form, whatever form the DSN had) and
   optional extra keyword/value pairs. Returned string is malloc'd. */
static char *conninfo_with(const char *dsn, const char *user, const char *app_name)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &errmsg), *o;
    size_t cap = 4096, len = 0;
    char *out;
    if (!opts) fail_msg("PGSCHED_TEST_DSN does not parse: %s", errmsg ? errmsg : "?");
    out = (char *)malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (o = opts; o->keyword; o++) {
        const char *v = o->val;
        const char *p;
        if (user && strcmp(o->keyword, "user") == 0) v = user;
        if (app_name && strcmp(o->keyword, "application_name") == 0) v = NULL;
        if (!v) continue;
        if (len + strlen(o->keyword) + 2 * strlen(v) + 8 >= cap) {
            cap = (len + strlen(o->keyword) + 2 * strlen(v) + 8) * 2;
            out = (char *)realloc(out, cap);
            assert_non_null(out);
        }
        len += (size_t)sprintf(out + len, "%s='", o->keyword);
        for (p = v; *p; p++) {
            if (*p == '\'' || *p == '\\') out[len++] = '\\';
            out[len++] = *p;
        }
        out[len++] = '\'';
        out[len++] = ' ';
        out[len] = '\0';
    }
    if (user && !strstr(out, "user='")) {
        out = (char *)realloc(out, len + strlen(user) + 16);
        assert_non_null(out);
        len += (size_t)sprintf(out + len, "user='%s' ", user);
    }
    if (app_name) {
        out = (char *)realloc(out, len + strlen(app_name) + 32);
        assert_non_null(out);
        len += (size_t)sprintf(out + len, "application_name='%s' ", app_name);
    }
    PQconninfoFree(opts);
    return out;
}

/* `dsn` (keyword=value or URI form) with `keyword` set to `value`, added or replaced, as
   keyword=value pairs. Returned string is malloc'd. */
static char *conninfo_set(const char *dsn, const char *keyword, const char *value)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &errmsg), *o;
    size_t cap = 64, len = 0;
    char *out;
    if (!opts) fail_msg("PGSCHED_TEST_DSN does not parse: %s", errmsg ? errmsg : "?");
    for (o = opts; o->keyword; o++)
        if (o->val) cap += strlen(o->keyword) + 2 * strlen(o->val) + 8;
    cap += strlen(keyword) + 2 * strlen(value) + 8;
    out = (char *)malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (o = opts;; o++) {
        const char *k = o->keyword ? o->keyword : keyword;
        const char *v = o->keyword ? o->val : value;
        const char *p;
        if (o->keyword && strcmp(o->keyword, keyword) == 0) continue;
        if (v) {
            len += (size_t)sprintf(out + len, "%s='", k);
            for (p = v; *p; p++) {
                if (*p == '\'' || *p == '\\') out[len++] = '\\';
                out[len++] = *p;
            }
            out[len++] = '\'';
            out[len++] = ' ';
            out[len] = '\0';
        }
        if (!o->keyword) break;
    }
    PQconninfoFree(opts);
    return out;
}

/* A fresh database name for this process, recorded for dropping at teardown. */
static const char *fx_new_database_name(fixture *fx)
{
    assert_true(fx->ndatabases < 2);
    snprintf(fx->databases[fx->ndatabases], sizeof fx->databases[0], "t_%ld_%d_db",
             (long)getpid(), ++g_schema_counter);
    return fx->databases[fx->ndatabases++];
}

/* ---- fixture resources ----------------------------------------------------------------- */

static pgsched_job_list *fx_jlist(fixture *fx)
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

static pgsched_run_list *fx_rlist(fixture *fx)
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

/* An empty event log, freed at teardown. */
static evlog *fx_evlog(fixture *fx)
{
    evlog *g = (evlog *)calloc(1, sizeof *g);
    assert_non_null(g);
    assert_true(fx->nevlogs < 32);
    fx->evlogs[fx->nevlogs++] = g;
    return g;
}

static void fx_keep_store(fixture *fx, pgsched_store *s)
{
    assert_true(fx->nstores < FX_MAX_STORES);
    fx->stores[fx->nstores++] = s;
}

/* Creates a PostgreSQL store (not set up) on `schema`/`prefix` and keeps it for teardown.
   `conninfo` NULL = the test DSN. Returns the result of pgsched_pg_store_create. */
static pgsched_result fx_pg_store(fixture *fx, const char *conninfo, const char *schema,
                                  const char *prefix, int no_create, pgsched_store **out,
                                  pgsched_error *err)
{
    pgsched_pg_config cfg;
    pgsched_result rc;
    memset(&cfg, 0, sizeof cfg);
    cfg.conninfo = conninfo ? conninfo : g_dsn;
    cfg.schema = schema;
    cfg.prefix = prefix;
    cfg.no_create_schema = no_create;
    *out = NULL;
    rc = pgsched_pg_store_create(&cfg, out, err);
    if (rc == PGSCHED_OK) {
        assert_non_null(*out);
        fx_keep_store(fx, *out);
    }
    return rc;
}

/* A memory store on the fixture's clock, set up, kept for teardown. */
static pgsched_store *fx_memory_store(fixture *fx)
{
    pgsched_memory_config cfg;
    pgsched_store *s = NULL;
    memset(&cfg, 0, sizeof cfg);
    cfg.clock = fx_memory_clock;
    cfg.clock_user = fx;
    OK(pgsched_memory_store_create(&cfg, &s, E));
    assert_non_null(s);
    fx_keep_store(fx, s);
    OK(pgsched_store_setup(s, E));
    return s;
}

/* Another handle on the fixture's store: the same object in memory (nodes of one process
   share it), a second connection set on the same schema and prefix for PostgreSQL. */
static pgsched_store *fx_other_handle(fixture *fx)
{
    pgsched_store *s;
    if (!fx->pg) return fx->store;
    OK(fx_pg_store(fx, NULL, fx->schema, fx->prefix, 0, &s, E));
    OK(pgsched_store_setup(s, E));
    return s;
}

/* A fresh schema name for this process, recorded for dropping at teardown. */
static const char *fx_new_schema_name(fixture *fx)
{
    assert_true(fx->nschemas < 8);
    snprintf(fx->schemas[fx->nschemas], sizeof fx->schemas[0], "t_%ld_%d", (long)getpid(),
             ++g_schema_counter);
    return fx->schemas[fx->nschemas++];
}

static pgsched_listener *fx_listen(fixture *fx, pgsched_store *s)
{
    pgsched_listener *l = NULL;
    assert_true(fx->nlisteners < FX_MAX_LISTENERS);
    OK(pgsched_store_listen_open(s, &l, E));
    assert_non_null(l);
    fx->listeners[fx->nlisteners].store = s;
    fx->listeners[fx->nlisteners].l = l;
    fx->nlisteners++;
    return l;
}

/* A further connection to PGSCHED_TEST_DSN, closed at teardown (before anything else): a
   test that plays another transaction uses it. */
static PGconn *fx_connect(fixture *fx)
{
    PGconn *c;
    assert_true(fx->nconns < 4);
    c = PQconnectdb(g_dsn);
    fx->conns[fx->nconns++] = c;
    if (PQstatus(c) != CONNECTION_OK) fail_msg("cannot connect: %s", PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

static void fx_unlisten(fixture *fx, pgsched_listener *l)
{
    int i;
    for (i = 0; i < fx->nlisteners; i++) {
        if (fx->listeners[i].l == l) {
            pgsched_store_listen_close(fx->listeners[i].store, l);
            fx->listeners[i] = fx->listeners[--fx->nlisteners];
            return;
        }
    }
    fail_msg("fx_unlisten: unknown listener");
}

static fixture *fixture_new(int pg)
{
    fixture *fx = (fixture *)calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->pg = pg;
    pthread_mutex_init(&fx->clock_mu, NULL);
    fx->clock = T0;
    fx->unit = pg ? 250 * PGSCHED_MILLISECOND : PGSCHED_MINUTE;
    return fx;
}

static int memory_fixture_setup(void **state)
{
    fixture *fx = fixture_new(0);
    pgsched_memory_config cfg;
    pgsched_result rc;
    *state = fx;
    memset(&cfg, 0, sizeof cfg);
    cfg.clock = fx_memory_clock;
    cfg.clock_user = fx;
    rc = pgsched_memory_store_create(&cfg, &fx->store, E);
    if (rc != PGSCHED_OK) {
        print_error("pgsched_memory_store_create: %s\n", fx->err.message);
        return -1;
    }
    rc = pgsched_store_setup(fx->store, E);
    if (rc != PGSCHED_OK) {
        print_error("pgsched_store_setup (memory): %s\n", fx->err.message);
        return -1;
    }
    return 0;
}

static int pg_fixture_setup(void **state)
{
    fixture *fx = fixture_new(1);
    pgsched_pg_config cfg;
    pgsched_result rc;
    char sql[256];
    PGresult *r;
    *state = fx;
    if (!g_admin) {
        print_error("no PostgreSQL connection (PGSCHED_TEST_DSN)\n");
        return -1;
    }
    snprintf(fx->schema, sizeof fx->schema, "t_%ld_%d", (long)getpid(), ++g_schema_counter);
    snprintf(fx->prefix, sizeof fx->prefix, "st_");
    snprintf(sql, sizeof sql, "CREATE SCHEMA \"%s\"", fx->schema);
    r = PQexec(g_admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        print_error("%s: %s\n", sql, PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    memset(&cfg, 0, sizeof cfg);
    cfg.conninfo = g_dsn;
    cfg.schema = fx->schema;
    cfg.prefix = fx->prefix;
    rc = pgsched_pg_store_create(&cfg, &fx->store, E);
    if (rc != PGSCHED_OK) {
        print_error("pgsched_pg_store_create: %s\n", fx->err.message);
        return -1;
    }
    rc = pgsched_store_setup(fx->store, E);
    if (rc != PGSCHED_OK) {
        print_error("pgsched_store_setup (PostgreSQL): %s\n", fx->err.message);
        return -1;
    }
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *fx = (fixture *)*state;
    size_t i;
    int k;
    if (!fx) return 0;
    /* first: a connection left in an open transaction would hold row locks that block the
       store calls and the DROP SCHEMA below */
    for (k = 0; k < fx->nconns; k++) PQfinish(fx->conns[k]);
    while (fx->nlisteners > 0) {
        fx_listener *x = &fx->listeners[--fx->nlisteners];
        pgsched_store_listen_close(x->store, x->l);
    }
    for (k = fx->nstores - 1; k >= 0; k--) pgsched_store_destroy(fx->stores[k]);
    if (fx->store) pgsched_store_destroy(fx->store);
    for (i = 0; i < fx->njlists; i++) {
        pgsched_job_list_free(fx->jlists[i]);
        free(fx->jlists[i]);
    }
    free(fx->jlists);
    for (i = 0; i < fx->nrlists; i++) {
        pgsched_run_list_free(fx->rlists[i]);
        free(fx->rlists[i]);
    }
    free(fx->rlists);
    for (k = 0; k < fx->nevlogs; k++) {
        free(fx->evlogs[k]->ev);
        free(fx->evlogs[k]);
    }
    if (fx->pg && g_admin) {
        char sql[256];
        PGresult *r;
        if (fx->schema[0]) {
            snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", fx->schema);
            PQclear(PQexec(g_admin, sql));
        }
        for (k = 0; k < fx->nschemas; k++) {
            snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", fx->schemas[k]);
            PQclear(PQexec(g_admin, sql));
        }
        for (k = 0; k < fx->ndatabases; k++) {
            snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)",
                     fx->databases[k]);
            PQclear(PQexec(g_admin, sql));
        }
        for (k = 0; k < fx->nroles; k++) {
            snprintf(sql, sizeof sql, "DROP OWNED BY \"%s\"", fx->roles[k]);
            r = PQexec(g_admin, sql);
            PQclear(r);
            snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS \"%s\"", fx->roles[k]);
            PQclear(PQexec(g_admin, sql));
        }
    }
    pthread_mutex_destroy(&fx->clock_mu);
    free(fx);
    *state = NULL;
    return 0;
}

/* ---- time ------------------------------------------------------------------------------ */

static pgsched_time fx_now_of(fixture *fx, pgsched_store *s)
{
    pgsched_time t = 0;
    OK(pgsched_store_now(s, &t, E));
    return t;
}

static pgsched_time fx_now(fixture *fx) { return fx_now_of(fx, fx->store); }

/* Returns once the store's clock reads at least `t`: moves the memory clock there, or waits
   for the database clock (polling it, against a deadline). */
static void fx_wait_until(fixture *fx, pgsched_time t)
{
    pgsched_time now, deadline;
    if (!fx->pg) {
        pthread_mutex_lock(&fx->clock_mu);
        if (fx->clock < t) fx->clock = t;
        pthread_mutex_unlock(&fx->clock_mu);
        return;
    }
    now = fx_now(fx);
    deadline = mono_us() + (t - now) + 10 * PGSCHED_SECOND;
    while (now < t) {
        pgsched_duration left = t - now;
        if (mono_us() > deadline) fail_msg("the database clock did not reach the wanted time");
        sleep_us((left < 50 * PGSCHED_MILLISECOND ? left : 50 * PGSCHED_MILLISECOND) + 500);
        now = fx_now(fx);
    }
}

static void fx_advance(fixture *fx, pgsched_duration d) { fx_wait_until(fx, fx_now(fx) + d); }

/* ---- requests and rows ----------------------------------------------------------------- */

static pgsched_schedule_request once_req(const char *name, const char *key, pgsched_time next_run)
{
    pgsched_schedule_request r;
    memset(&r, 0, sizeof r);
    r.name = name;
    r.key = key;
    r.kind = PGSCHED_ONCE;
    r.params = NULL;
    r.max_retries = 3;
    r.next_run = next_run;
    r.node_id = "scheduler";
    return r;
}

static pgsched_schedule_outcome schedule_ok(fixture *fx, const pgsched_schedule_request *req)
{
    pgsched_schedule_outcome o;
    memset(&o, 0, sizeof o);
    OK(pgsched_store_schedule(fx->store, req, &o, E));
    return o;
}

/* Schedules a one-time row due at `next_run`. */
static pgsched_schedule_outcome schedule_once(fixture *fx, const char *name, const char *key,
                                              pgsched_time next_run)
{
    pgsched_schedule_request r = once_req(name, key, next_run);
    return schedule_ok(fx, &r);
}

/* The row (name, key), or a failed test. Valid until teardown. */
static const pgsched_job *get_job_of(fixture *fx, pgsched_store *s, const char *name,
                                     const char *key)
{
    pgsched_job_list *l = fx_jlist(fx);
    OK(pgsched_store_get(s, name, key, l, E));
    assert_int_equal(l->count, 1);
    assert_string_equal(l->items[0].name, name);
    assert_string_equal(l->items[0].key, key);
    return &l->items[0];
}

static const pgsched_job *get_job(fixture *fx, const char *name, const char *key)
{
    return get_job_of(fx, fx->store, name, key);
}

/* 1 when the row exists, 0 when get says NOT_FOUND (anything else fails the test). */
static int row_exists(fixture *fx, const char *name, const char *key)
{
    pgsched_job_list l;
    pgsched_result rc;
    pgsched_job_list_init(&l, NULL);
    rc = pgsched_store_get(fx->store, name, key, &l, E);
    pgsched_job_list_free(&l);
    if (rc == PGSCHED_OK) return 1;
    if (rc == PGSCHED_ERR_NOT_FOUND) return 0;
    fail_msg("get(%s, %s) failed: %d %s", name, key, (int)rc, fx->err.message);
    return -1;
}

/* Claims for `node` the due rows of one type (at most `max`). */
static pgsched_job_list *claim_of(fixture *fx, pgsched_store *s, const char *node,
                                  const char *name, int max, pgsched_claim_outcome *info)
{
    pgsched_claim_request req;
    pgsched_claim_outcome dummy;
    const char *names[1];
    pgsched_job_list *l = fx_jlist(fx);
    names[0] = name;
    memset(&req, 0, sizeof req);
    req.node_id = node;
    req.names = names;
    req.name_count = 1;
    req.max = max;
    OK(pgsched_store_claim(s, &req, l, info ? info : &dummy, E));
    return l;
}

static pgsched_job_list *claim(fixture *fx, const char *node, const char *name, int max,
                               pgsched_claim_outcome *info)
{
    return claim_of(fx, fx->store, node, name, max, info);
}

/* Claims the one due row of type `name` (its key must be `key`). */
static const pgsched_job *claim_one(fixture *fx, const char *node, const char *name,
                                    const char *key)
{
    pgsched_job_list *l = claim(fx, node, name, 1, NULL);
    if (l->count != 1) fail_msg("claim of %s/%s for %s got %d rows", name, key, node, (int)l->count);
    assert_string_equal(l->items[0].key, key);
    assert_int_equal(l->items[0].status, PGSCHED_RUNNING);
    return &l->items[0];
}

/* Schedules (name, key) due one unit ago and claims it for `node`. */
static const pgsched_job *schedule_and_claim(fixture *fx, const char *node, const char *name,
                                             const char *key)
{
    schedule_once(fx, name, key, fx_now(fx) - fx->unit);
    return claim_one(fx, node, name, key);
}

/* The outcome of a run held with `j`'s lease (the node writing it = the lease holder). */
static pgsched_outcome outcome_of(const pgsched_job *j, pgsched_outcome_kind kind,
                                  pgsched_status status, pgsched_time next_run)
{
    pgsched_outcome o;
    memset(&o, 0, sizeof o);
    o.name = j->name;
    o.key = j->key;
    o.token = j->lease;
    o.outcome = kind;
    o.status = status;
    o.next_run = next_run;
    o.retry_delay = 0;
    o.attempt_rule = PGSCHED_ATTEMPT_RESET;
    o.error = NULL;
    o.node_id = j->owner;
    return o;
}

static pgsched_finish_result finish_with(fixture *fx, const pgsched_outcome *o)
{
    pgsched_finish_result res;
    memset(&res, 0, sizeof res);
    res.code = (pgsched_result)12345;
    OK(pgsched_store_finish(fx->store, o, 1, &res, E));
    return res;
}

/* Finishes `j`'s run; the write must take effect. */
static pgsched_finish_result finish_ok(fixture *fx, const pgsched_job *j,
                                       pgsched_outcome_kind kind, pgsched_status status,
                                       pgsched_time next_run)
{
    pgsched_outcome o = outcome_of(j, kind, status, next_run);
    pgsched_finish_result res = finish_with(fx, &o);
    if (res.code != PGSCHED_OK)
        fail_msg("finish of %s/%s returned result code %d", j->name, j->key, (int)res.code);
    return res;
}

static pgsched_lease lease_of(const pgsched_job *j)
{
    pgsched_lease l;
    l.name = j->name;
    l.key = j->key;
    l.token = j->lease;
    return l;
}

/* Heartbeat of one lease; returns its state. */
static pgsched_lease_state heartbeat_one(fixture *fx, const char *node, const char *name,
                                         const char *key, int64_t token, int renew)
{
    pgsched_lease l;
    pgsched_lease_state st;
    pgsched_time now = 0;
    l.name = name;
    l.key = key;
    l.token = token;
    st.lost = -1;
    st.cancel_requested = -1;
    OK(pgsched_store_heartbeat(fx->store, node, &l, 1, renew, &st, &now, E));
    return st;
}

static pgsched_job_list *take_back(fixture *fx, const char *node, pgsched_duration stall, int max)
{
    pgsched_job_list *l = fx_jlist(fx);
    OK(pgsched_store_take_back(fx->store, node, stall, max, l, E));
    return l;
}

/* Every row, in (name, key) order. */
static pgsched_job_list *all_rows(fixture *fx)
{
    pgsched_list_filter f;
    pgsched_job_list *l = fx_jlist(fx);
    memset(&f, 0, sizeof f);
    OK(pgsched_store_list(fx->store, &f, l, E));
    return l;
}

static pgsched_run_list *history_of(fixture *fx, const char *name, const char *key, size_t limit)
{
    pgsched_run_list *l = fx_rlist(fx);
    OK(pgsched_store_history(fx->store, name, key, limit, l, E));
    return l;
}

static void assert_job_equal(const pgsched_job *a, const pgsched_job *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->key, b->key);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->kind, b->kind);
    assert_str_or_null_equal(a->cron, b->cron);
    assert_int_equal(a->every, b->every);
    assert_str_or_null_equal(a->params, b->params);
    assert_int_equal(a->max_retries, b->max_retries);
    assert_int_equal(a->attempt, b->attempt);
    assert_int_equal(a->next_run, b->next_run);
    assert_str_or_null_equal(a->owner, b->owner);
    assert_int_equal(a->lease, b->lease);
    assert_int_equal(a->heartbeat_at, b->heartbeat_at);
    assert_int_equal(a->started_at, b->started_at);
    assert_int_equal(a->finished_at, b->finished_at);
    assert_int_equal(a->cancel_requested, b->cancel_requested);
    assert_int_equal(a->remove_requested, b->remove_requested);
    assert_int_equal(a->change_pending, b->change_pending);
    assert_str_or_null_equal(a->last_error, b->last_error);
    assert_int_equal(a->runs, b->runs);
    assert_int_equal(a->failures, b->failures);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->created_at, b->created_at);
    assert_int_equal(a->updated_at, b->updated_at);
}

/* What the store holds: every row and the whole run history. */
typedef struct snapshot {
    pgsched_job_list *rows;
    pgsched_run_list *runs;
} snapshot;

static snapshot take_snapshot(fixture *fx)
{
    snapshot s;
    s.rows = all_rows(fx);
    s.runs = history_of(fx, NULL, NULL, 1000);
    return s;
}

/* Nothing was written since `before`. */
static void assert_unchanged(fixture *fx, snapshot before)
{
    snapshot after = take_snapshot(fx);
    size_t i;
    assert_int_equal(after.rows->count, before.rows->count);
    for (i = 0; i < after.rows->count; i++)
        assert_job_equal(&after.rows->items[i], &before.rows->items[i]);
    assert_int_equal(after.runs->count, before.runs->count);
    if (after.runs->count) assert_int_equal(after.runs->items[0].id, before.runs->items[0].id);
}

/* ---- events ---------------------------------------------------------------------------- */

/* One listen_wait; appends what it returned. Returns the count. */
static size_t evlog_wait(fixture *fx, pgsched_store *s, pgsched_listener *l, evlog *g,
                         pgsched_duration timeout)
{
    pgsched_event buf[64];
    size_t count = 9999, i;
    OK(pgsched_store_listen_wait(s, l, timeout, buf, 64, &count, E));
    assert_true(count <= 64);
    for (i = 0; i < count; i++) {
        if (g->n == g->cap) {
            g->cap = g->cap ? 2 * g->cap : 64;
            g->ev = (pgsched_event *)realloc(g->ev, g->cap * sizeof *g->ev);
            assert_non_null(g->ev);
        }
        g->ev[g->n++] = buf[i];
    }
    return count;
}

/* The first event of `kind` for (name, key) with version >= min_version, or NULL. */
static const pgsched_event *evlog_find(const evlog *g, pgsched_event_kind kind, const char *name,
                                       const char *key, int64_t min_version)
{
    size_t i;
    for (i = 0; i < g->n; i++) {
        const pgsched_event *e = &g->ev[i];
        if (e->kind == kind && strcmp(e->name, name) == 0 && strcmp(e->key, key) == 0 &&
            e->version >= min_version)
            return e;
    }
    return NULL;
}

/* Collects events until one of `kind` for (name, key) with version >= min_version arrived,
   or 10 s passed (PostgreSQL delivers after commit, asynchronously). */
static const pgsched_event *evlog_await(fixture *fx, pgsched_store *s, pgsched_listener *l,
                                        evlog *g, pgsched_event_kind kind, const char *name,
                                        const char *key, int64_t min_version)
{
    pgsched_time deadline = mono_us() + 10 * PGSCHED_SECOND;
    const pgsched_event *e;
    while ((e = evlog_find(g, kind, name, key, min_version)) == NULL && mono_us() < deadline)
        evlog_wait(fx, s, l, g, 200 * PGSCHED_MILLISECOND);
    return e;
}

#endif /* STORE_SUITE_FIXTURE_H */
