/* test_store.c - the store conformance suite: every test runs against the in-memory store and
   the PostgreSQL store, through the pgsched_store_* wrappers (SPEC §2, §4, §5, §7, §8, §10).
   Both go through the harness (tests/store/harness.inc) that runs any store's conformance
   (tests/test_custom_store.c runs examples/custom_store.c): this file gives it the two
   built-in stores' factories, and each store's own tests run after the contract.

   Build:  cc -std=c99 -Wall -Wextra -Wpedantic -Werror -g -I. -I$(pg_config --includedir) \
              tests/test_store.c -o build/test_store -lcmocka -lpq -lpthread
   Run:    PGSCHED_TEST_DSN='host=/tmp port=5432 dbname=postgres' build/test_store [pattern]
           PGSCHED_TEST_SKIP_PG=1 build/test_store      (memory store only)
           PGSCHED_TEST_CLAIM_ROWS=1000 ...  (rows per thread of the 8-thread claim race;
                                              default 5000, the acceptance figure)
   The PostgreSQL group fails when PGSCHED_TEST_DSN is unset, unless PGSCHED_TEST_SKIP_PG=1.
   An optional argument (or PGSCHED_TEST_FILTER) runs only the tests whose name matches
   (cmocka's '*' and '?'; tests/test_filter.h, the same in every test binary).
   Each PostgreSQL test works in its own schema t_<pid>_<n>, dropped afterwards; a few also
   create roles r_<pid>_<n> or databases t_<pid>_<n>_db (dropped too), so the DSN's user must
   be allowed to create roles and databases. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include "store/harness.inc"

/* ---- the in-memory store: a clock the harness sets, no transactions -------------------- */

typedef struct memory_instance {
    pthread_mutex_t mu;
    pgsched_time now;
} memory_instance;

static pgsched_time memory_instance_clock(void *user)
{
    memory_instance *m = (memory_instance *)user;
    pgsched_time t;
    pthread_mutex_lock(&m->mu);
    t = m->now;
    pthread_mutex_unlock(&m->mu);
    return t;
}

static pgsched_result memory_create(void *user, const char *unique, void **instance,
                                    pgsched_store **out, pgsched_error *err)
{
    memory_instance *m = (memory_instance *)calloc(1, sizeof *m);
    pgsched_memory_config cfg;
    pgsched_result rc;
    (void)user;
    (void)unique;
    if (!m) return PGSCHED_ERR_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    memset(&cfg, 0, sizeof cfg);
    cfg.clock = memory_instance_clock;
    cfg.clock_user = m;
    *instance = m;
    rc = pgsched_memory_store_create(&cfg, out, err);
    return rc;
}

static void memory_set_clock(void *user, void *instance, pgsched_time now)
{
    memory_instance *m = (memory_instance *)instance;
    (void)user;
    pthread_mutex_lock(&m->mu);
    m->now = now;
    pthread_mutex_unlock(&m->mu);
}

static void memory_destroy(void *user, void *instance)
{
    memory_instance *m = (memory_instance *)instance;
    (void)user;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- the PostgreSQL store: a fresh schema per test, the caller's PGconn ----------------- */

static pgsched_result pg_open(const char *schema, pgsched_store **out, pgsched_error *err)
{
    pgsched_pg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.conninfo = g_dsn;
    cfg.schema = schema;
    cfg.prefix = FX_PG_PREFIX;
    cfg.pool_size = 3; /* so that a bulk schedule writes two batches at once (the suite's
                          batches of 10,000 rows go through both lanes) */
    return pgsched_pg_store_create(&cfg, out, err);
}

static pgsched_result pg_create(void *user, const char *unique, void **instance,
                                pgsched_store **out, pgsched_error *err)
{
    char sql[256];
    PGresult *r;
    int ok;
    (void)user;
    *instance = NULL;
    snprintf(sql, sizeof sql, "CREATE SCHEMA \"%s\"", unique);
    r = PQexec(g_admin, sql);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) snprintf(err->message, sizeof err->message, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    if (!ok) return err->code = PGSCHED_ERR_DATABASE;
    *instance = strdup(unique);
    if (!*instance) return PGSCHED_ERR_NOMEM;
    return pg_open(unique, out, err);
}

static pgsched_result pg_open_again(void *user, void *instance, pgsched_store **out,
                                    pgsched_error *err)
{
    (void)user;
    return pg_open((const char *)instance, out, err);
}

static void pg_destroy(void *user, void *instance)
{
    char sql[256];
    (void)user;
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", (const char *)instance);
    PQclear(PQexec(g_admin, sql));
    free(instance);
}

/* The caller's own connection to the test database, in a transaction. */
static void *pg_tx_begin(void *user, void *instance, char *why, size_t why_size)
{
    (void)user;
    (void)instance;
    return store_harness_pg_tx_begin(g_dsn, why, why_size);
}

static int pg_tx_end(void *user, void *instance, void *conn, int commit)
{
    (void)user;
    (void)instance;
    return store_harness_pg_tx_end(conn, commit);
}

static void postgresql_dsn_is_configured(void **state)
{
    (void)state;
    fail_msg("PGSCHED_TEST_DSN is not set: set it to a libpq connection string of a database "
             "where this user may create schemas and roles (tests/pgcluster.sh starts one), or "
             "set PGSCHED_TEST_SKIP_PG=1 to run the memory store only");
}

static void postgresql_is_reachable(void **state)
{
    (void)state;
    fail_msg("cannot connect to PGSCHED_TEST_DSN: %s", g_admin ? PQerrorMessage(g_admin) : "?");
}

int main(int argc, char **argv)
{
    const char *skip = getenv("PGSCHED_TEST_SKIP_PG");
    int failures = 0;
    store_harness memory, pg;
    test_filter_from(argc, argv);
    memset(&memory, 0, sizeof memory);
    memory.name = "memory";
    memory.create = memory_create;
    memory.destroy = memory_destroy;
    memory.set_clock = memory_set_clock;
    memory.own_tests = STORE_HARNESS_OWN_MEMORY;
    memset(&pg, 0, sizeof pg);
    pg.name = "postgresql";
    pg.create = pg_create;
    pg.open_again = pg_open_again;
    pg.destroy = pg_destroy;
    pg.tx_begin = pg_tx_begin;
    pg.tx_end = pg_tx_end;
    pg.own_tests = STORE_HARNESS_OWN_POSTGRESQL;
    failures += store_harness_run(&memory);
    if (skip && strcmp(skip, "1") == 0) {
        printf("[  SKIPPED ] store conformance: postgresql (PGSCHED_TEST_SKIP_PG=1)\n");
        return failures ? 1 : 0;
    }
    g_dsn = getenv("PGSCHED_TEST_DSN");
    if (!g_dsn || !g_dsn[0]) {
        const struct CMUnitTest missing[] = {cmocka_unit_test(postgresql_dsn_is_configured)};
        cmocka_set_test_filter(NULL);
        failures += cmocka_run_group_tests_name("store conformance: postgresql", missing, NULL,
                                                NULL);
        return failures ? 1 : 0;
    }
    g_admin = PQconnectdb(g_dsn);
    if (PQstatus(g_admin) != CONNECTION_OK) {
        const struct CMUnitTest down[] = {cmocka_unit_test(postgresql_is_reachable)};
        cmocka_set_test_filter(NULL);
        failures += cmocka_run_group_tests_name("store conformance: postgresql", down, NULL, NULL);
        PQfinish(g_admin);
        return failures ? 1 : 0;
    }
    PQclear(PQexec(g_admin, "SET client_min_messages = warning"));
    failures += store_harness_run(&pg);
    PQfinish(g_admin);
    return failures ? 1 : 0;
}
