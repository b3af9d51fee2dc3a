/* test_custom_store.c - examples/custom_store.c (a store that wraps another one) through the
   store conformance harness (tests/store/harness.inc), as the author of a third store would
   run theirs: a factory of fresh stores, a way to set the clock where the inner store has
   one, and the caller's transaction where the inner store can join one.

   Two runs:
   - "custom store on postgresql": the tracing store over a PostgreSQL store in a fresh schema
     per test (PGSCHED_TEST_DSN), a second handle as another process would open it, and
     scheduling in the caller's transaction on its own PGconn (the tracing store forwards
     schedule_many_tx). The database's clock is real.
   - "custom store on memory": the tracing store over an in-memory store whose clock the
     harness sets; no transactions (the tracing store must refuse them as unsupported).

   Build:  make build/test_custom_store
   Run:    PGSCHED_TEST_DSN='host=/tmp dbname=postgres' build/test_custom_store ['glob']
           PGSCHED_TEST_SKIP_PG=1 build/test_custom_store     (the memory run only)
   Without PGSCHED_TEST_DSN (and without PGSCHED_TEST_SKIP_PG=1) the PostgreSQL run fails. */
#define CUSTOM_STORE_NO_MAIN
#include "../examples/custom_store.c"

#include "store/harness.inc"

/* What one test's store is made of: the inner stores (the tracing store leaves them to whoever
   created them) and, on PostgreSQL, the schema. */
typedef struct custom_instance {
    char schema[64];
    pgsched_store *inner[FX_MAX_STORES + 1];
    int ninner;
    pthread_mutex_t mu; /* the memory run's clock */
    pgsched_time now;
} custom_instance;

static const char *g_custom_dsn;
static PGconn *g_custom_admin; /* drops the schemas */

static pgsched_time custom_clock(void *user)
{
    custom_instance *c = (custom_instance *)user;
    pgsched_time t;
    pthread_mutex_lock(&c->mu);
    t = c->now;
    pthread_mutex_unlock(&c->mu);
    return t;
}

/* A tracing store over a new inner store: PostgreSQL on c->schema, or memory on c's clock. */
static pgsched_result custom_wrap(custom_instance *c, int pg, pgsched_store **out,
                                  pgsched_error *err)
{
    pgsched_store *inner = NULL;
    pgsched_result rc;
    *out = NULL;
    if (c->ninner == (int)(sizeof c->inner / sizeof c->inner[0])) {
        snprintf(err->message, sizeof err->message, "too many handles on one test's store");
        return err->code = PGSCHED_ERR_INVALID_ARGUMENT;
    }
    if (pg) {
        pgsched_pg_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.conninfo = g_custom_dsn;
        cfg.schema = c->schema; /* its setup creates the schema */
        rc = pgsched_pg_store_create(&cfg, &inner, err);
    } else {
        pgsched_memory_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.clock = custom_clock;
        cfg.clock_user = c;
        rc = pgsched_memory_store_create(&cfg, &inner, err);
    }
    if (rc != PGSCHED_OK) return rc;
    c->inner[c->ninner++] = inner;
    *out = tracing_store_create(inner);
    if (!*out) return PGSCHED_ERR_NOMEM;
    /* the tracing store forwards setup: the harness's setup reaches the inner store */
    return PGSCHED_OK;
}

static pgsched_result custom_create(void *user, const char *unique, void **instance,
                                    pgsched_store **out, pgsched_error *err)
{
    custom_instance *c = (custom_instance *)calloc(1, sizeof *c);
    if (!c) return PGSCHED_ERR_NOMEM;
    pthread_mutex_init(&c->mu, NULL);
    snprintf(c->schema, sizeof c->schema, "%s", unique);
    *instance = c;
    return custom_wrap(c, user != NULL, out, err);
}

/* Another handle on the same rows: a second PostgreSQL store on the schema, or a second
   tracing store over the one memory store (two wrappers of one store are two handles). */
static pgsched_result custom_open_again(void *user, void *instance, pgsched_store **out,
                                        pgsched_error *err)
{
    custom_instance *c = (custom_instance *)instance;
    if (user) return custom_wrap(c, 1, out, err);
    *out = tracing_store_create(c->inner[0]);
    return *out ? PGSCHED_OK : PGSCHED_ERR_NOMEM;
}

static void custom_destroy(void *user, void *instance)
{
    custom_instance *c = (custom_instance *)instance;
    int i;
    for (i = 0; i < c->ninner; i++) pgsched_store_destroy(c->inner[i]);
    if (user) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", c->schema);
        PQclear(PQexec(g_custom_admin, sql));
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void custom_set_clock(void *user, void *instance, pgsched_time now)
{
    custom_instance *c = (custom_instance *)instance;
    (void)user;
    pthread_mutex_lock(&c->mu);
    c->now = now;
    pthread_mutex_unlock(&c->mu);
}

/* The caller's own connection to the test database, in a transaction. */
static void *custom_tx_begin(void *user, void *instance, char *why, size_t why_size)
{
    (void)user;
    (void)instance;
    return store_harness_pg_tx_begin(g_custom_dsn, why, why_size);
}

static int custom_tx_end(void *user, void *instance, void *conn, int commit)
{
    (void)user;
    (void)instance;
    return store_harness_pg_tx_end(conn, commit);
}

static void postgresql_is_configured_and_reachable(void **state)
{
    (void)state;
    fail_msg("PGSCHED_TEST_DSN %s (tests/pgcluster.sh starts a server; PGSCHED_TEST_SKIP_PG=1 "
             "runs the memory run only)",
             g_custom_dsn ? PQerrorMessage(g_custom_admin) : "is not set");
}

int main(int argc, char **argv)
{
    const char *skip = getenv("PGSCHED_TEST_SKIP_PG");
    store_harness on_memory, on_pg;
    int failures = 0;
    static int pg_marker;

    test_filter_from(argc, argv);
    memset(&on_memory, 0, sizeof on_memory);
    on_memory.name = "custom store on memory";
    on_memory.user = NULL; /* NULL: the inner store is a memory store */
    on_memory.create = custom_create;
    on_memory.open_again = custom_open_again;
    on_memory.destroy = custom_destroy;
    on_memory.set_clock = custom_set_clock;
    failures += store_harness_run(&on_memory);
    if (skip && strcmp(skip, "1") == 0) {
        printf("[  SKIPPED ] custom store on postgresql (PGSCHED_TEST_SKIP_PG=1)\n");
        return failures ? 1 : 0;
    }

    g_custom_dsn = getenv("PGSCHED_TEST_DSN");
    if (g_custom_dsn && !g_custom_dsn[0]) g_custom_dsn = NULL;
    if (g_custom_dsn) g_custom_admin = PQconnectdb(g_custom_dsn);
    if (!g_custom_dsn || PQstatus(g_custom_admin) != CONNECTION_OK) {
        const struct CMUnitTest missing[] = {cmocka_unit_test(postgresql_is_configured_and_reachable)};
        cmocka_set_test_filter(NULL);
        failures += cmocka_run_group_tests_name("store conformance: custom store on postgresql",
                                                missing, NULL, NULL);
        PQfinish(g_custom_admin);
        return failures ? 1 : 0;
    }
    PQclear(PQexec(g_custom_admin, "SET client_min_messages = warning"));
    memset(&on_pg, 0, sizeof on_pg);
    on_pg.name = "custom store on postgresql";
    on_pg.user = &pg_marker; /* non-NULL: the inner store is a PostgreSQL store */
    on_pg.create = custom_create;
    on_pg.open_again = custom_open_again;
    on_pg.destroy = custom_destroy;
    on_pg.tx_begin = custom_tx_begin;
    on_pg.tx_end = custom_tx_end;
    failures += store_harness_run(&on_pg);
    PQfinish(g_custom_admin);
    return failures ? 1 : 0;
}
