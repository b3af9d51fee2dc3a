/* test_pg_plans.c - the hot statements touch only the rows they need (SPEC §7, §11).

   Fills a table with many future rows of another type and of the claimed type, then checks
   with EXPLAIN that claim, next-due, heartbeat, outcome and take-back statements use their
   indexes and never scan the jobs table, both as custom plans and as the generic plans
   PostgreSQL switches prepared statements to after a few executions. With 100,000 running
   rows owned by other nodes beside them, heartbeat, outcome and take-back statements read
   buffers in proportion to their own batch (EXPLAIN ANALYZE, BUFFERS), never to those rows. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

static PGconn *admin;
static pgsched_store *store;

static void sql(const char *q)
{
    PGresult *r = PQexec(admin, q);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (!ok) fail_msg("%s in %.200s", PQerrorMessage(admin), q);
}

static int setup(void **state)
{
    const char *dsn = getenv("PGSCHED_TEST_DSN");
    pgsched_pg_config pc;
    pgsched_error e;
    (void)state;
    if (!dsn) {
        fprintf(stderr, "test_pg_plans: PGSCHED_TEST_DSN is not set (run through make test)\n");
        return -1;
    }
    admin = PQconnectdb(dsn);
    if (PQstatus(admin) != CONNECTION_OK) return -1;
    PQsetNoticeProcessor(admin, pgsched__pg_quiet, NULL);
    sql("DROP SCHEMA IF EXISTS plans CASCADE");
    memset(&pc, 0, sizeof pc);
    pc.conninfo = dsn;
    pc.schema = "plans";
    if (pgsched_pg_store_create(&pc, &store, &e) != PGSCHED_OK) return -1;
    if (pgsched_store_setup(store, &e) != PGSCHED_OK) return -1;
    /* 30,000 future rows of a type nobody claims here, 30,000 future and 50 due rows of
       ours, 20 running rows */
    sql("INSERT INTO plans.pgsched_jobs (name, key, status, kind, params, max_retries, next_run, "
        "version) SELECT 'other', 'k' || g, 'pending', 'once', '{}', 0, "
        "now() + g * interval '1 second', nextval('plans.pgsched_seq') "
        "FROM generate_series(1, 30000) g");
    sql("INSERT INTO plans.pgsched_jobs (name, key, status, kind, params, max_retries, next_run, "
        "version) SELECT 'mine', 'f' || g, 'pending', 'once', '{}', 0, "
        "now() + interval '1 hour' + g * interval '1 second', nextval('plans.pgsched_seq') "
        "FROM generate_series(1, 30000) g");
    sql("INSERT INTO plans.pgsched_jobs (name, key, status, kind, params, max_retries, next_run, "
        "version) SELECT 'mine', 'd' || g, 'pending', 'once', '{}', 0, "
        "now() - g * interval '1 second', nextval('plans.pgsched_seq') "
        "FROM generate_series(1, 50) g");
    sql("INSERT INTO plans.pgsched_jobs (name, key, status, kind, params, max_retries, next_run, "
        "version, owner, lease, heartbeat_at) SELECT 'mine', 'r' || g, 'running', 'once', '{}', "
        "0, now(), nextval('plans.pgsched_seq'), 'n1', g, now() FROM generate_series(1, 20) g");
    /* 100,000 running rows of other nodes, their leases fresh, arrived after the statistics
       were taken (as under load, between two auto-analyzes): the planner believes running
       rows are rare */
    sql("VACUUM ANALYZE plans.pgsched_jobs");
    sql("INSERT INTO plans.pgsched_jobs (name, key, status, kind, params, max_retries, next_run, "
        "version, owner, lease, heartbeat_at) SELECT 'mine', 'o' || g, 'running', 'once', '{}', "
        "0, now(), nextval('plans.pgsched_seq'), 'other' || (g % 4), 1000 + g, now() "
        "FROM generate_series(1, 100000) g");
    sql("VACUUM plans.pgsched_jobs");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (admin) {
        sql("DROP SCHEMA IF EXISTS plans CASCADE");
        PQfinish(admin);
    }
    if (store) pgsched_store_destroy(store);
    return 0;
}

/* EXPLAIN of statement q with the given parameters, one line per plan node. */
static char *plan(int q, int nparams, const char *args, int generic)
{
    static char out[16384];
    char buf[16384], types[128] = "", *cmd;
    size_t o = 0, size = strlen(args) + 64; /* the arguments of a large batch are long */
    PGresult *r;
    int i;
    for (i = 0; i < nparams; i++) strcat(types, i ? ", text" : "text"); /* as the store does */
    snprintf(buf, sizeof buf, "PREPARE plan_q(%s) AS %s", types, ((pgsched__pg *)store)->sql[q]);
    sql("DEALLOCATE ALL");
    sql(generic ? "SET plan_cache_mode = force_generic_plan" : "SET plan_cache_mode = auto");
    sql(buf);
    cmd = (char *)malloc(size);
    assert_non_null(cmd);
    snprintf(cmd, size, "EXPLAIN (COSTS OFF) EXECUTE plan_q(%s)", args);
    r = PQexec(admin, cmd);
    free(cmd);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        fail_msg("%s", PQerrorMessage(admin));
    }
    out[0] = '\0';
    for (i = 0; i < PQntuples(r); i++)
        o += (size_t)snprintf(out + o, sizeof out - o, "%s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    sql("DEALLOCATE plan_q");
    return out;
}

/* No sequential scan of the jobs table anywhere in the plan, and one of the expected indexes
   used (`index` lists them separated by '|'). */
static void assert_indexed(const char *p, const char *index, const char *what)
{
    char names[128], *tok, *save = NULL;
    int found = 0;
    if (strstr(p, "Seq Scan on pgsched_jobs") || strstr(p, "Bitmap Heap Scan on pgsched_jobs"))
        fail_msg("%s scans the jobs table:\n%s", what, p);
    snprintf(names, sizeof names, "%s", index);
    for (tok = strtok_r(names, "|", &save); tok; tok = strtok_r(NULL, "|", &save))
        if (strstr(p, tok)) found = 1;
    if (!found) fail_msg("%s does not use %s:\n%s", what, index, p);
}

/* The most buffers any node of prepared statement `name`'s plan touched, executed with
   `args` (the top nodes count their children's). */
static long executed_buffers(const char *name, const char *args)
{
    char buf[1024];
    PGresult *r;
    long most = 0;
    int i;
    snprintf(buf, sizeof buf, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE %s(%s)",
             name, args);
    r = PQexec(admin, buf);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        fail_msg("%s", PQerrorMessage(admin));
    }
    for (i = 0; i < PQntuples(r); i++) {
        const char *line = PQgetvalue(r, i, 0), *at;
        if (strstr(line, "Planning")) break; /* the planner's catalog reads are not the plan's */
        at = strstr(line, "Buffers: shared");
        while (at && (at = strpbrk(at, "0123456789"))) {
            char *end;
            long v = strtol(at, &end, 10);
            if (v > most) most = v;
            at = end;
        }
    }
    PQclear(r);
    return most;
}

/* The most buffers any node of statement q's executed plan touched, run in a transaction
   that is rolled back. */
static long buffers(int q, int nparams, const char *args, int generic)
{
    char buf[16384], types[128] = "";
    long most;
    int i;
    for (i = 0; i < nparams; i++) strcat(types, i ? ", text" : "text");
    sql("DEALLOCATE ALL");
    sql(generic ? "SET plan_cache_mode = force_generic_plan" : "SET plan_cache_mode = auto");
    snprintf(buf, sizeof buf, "PREPARE plan_q(%s) AS %s", types, ((pgsched__pg *)store)->sql[q]);
    sql(buf);
    sql("BEGIN");
    most = executed_buffers("plan_q", args);
    sql("ROLLBACK");
    sql("DEALLOCATE plan_q");
    return most;
}

/* A plan reading the 100,000 running rows of other nodes touches thousands of buffers; a
   batch of two leases looked up by key, a few dozen. */
#define BATCH_BUFFERS_MAX 200

static void assert_batch_cost(int q, int nparams, const char *args, const char *what)
{
    int g;
    for (g = 0; g < 2; g++) {
        long b = buffers(q, nparams, args, g);
        if (b > BATCH_BUFFERS_MAX)
            fail_msg("%s%s touched %ld buffers for a batch of two beside 100,000 running rows of "
                     "other nodes",
                     what, g ? " (generic plan)" : "", b);
    }
}

static void heartbeat_cost_follows_its_batch_not_other_nodes_running_rows(void **state)
{
    (void)state;
    assert_batch_cost(PGSCHED__Q_HEARTBEAT, 5, "'n1', '{mine,mine}', '{r1,r2}', '{1,2}', 'true'",
                      "heartbeat");
}

static void finish_cost_follows_its_batch_not_other_nodes_running_rows(void **state)
{
    (void)state;
    assert_batch_cost(PGSCHED__Q_FINISH, 14,
                      "'{mine,mine}', '{r1,r2}', '{1,2}', '{success,success}', "
                      "'{completed,completed}', '{NULL,NULL}', '{0,0}', '{0,0}', '{NULL,NULL}', "
                      "'{n1,n1}', '{NULL,NULL}', '{NULL,NULL}', 'plans.pgsched_events', '{f,f}'",
                      "finish");
}

static void take_back_cost_follows_its_batch_not_other_nodes_running_rows(void **state)
{
    (void)state;
    assert_batch_cost(PGSCHED__Q_TAKE_BACK, 4, "'n2', '30000000', '2', 'plans.pgsched_events'",
                      "take-back");
}

static void claim_reads_only_due_rows_of_its_types_through_the_type_due_index(void **state)
{
    int g;
    (void)state;
    for (g = 0; g < 2; g++)
        assert_indexed(plan(PGSCHED__Q_CLAIM, 5,
                            "'n1', '{mine}', '10', 'plans.pgsched_events', '2000'", g),
                       "pgsched_jobs_type_due", g ? "the claim (generic plan)" : "the claim");
}

/* The claim's next due time skips the rows the claim has just taken (still pending in its
   snapshot, and the first ones its index scan meets) by a hash look-up each, not by reading
   the claimed rows for each of them: that was 266 x 133 comparisons for a claim of 266 rows,
   a fifth of the server's CPU per job on one node. */
static void claim_skips_its_own_rows_by_hash_when_it_reads_the_next_due_time(void **state)
{
    int g;
    (void)state;
    for (g = 0; g < 2; g++) {
        const char *p =
            plan(PGSCHED__Q_CLAIM, 5, "'n1', '{mine}', '266', 'plans.pgsched_events', '0'", g);
        if (!strstr(p, "hashed SubPlan") || strstr(p, "Anti Join"))
            fail_msg("the claim%s reads its claimed rows for each pending row it skips:\n%s",
                     g ? " (generic plan)" : "", p);
    }
}

static void next_due_looks_up_one_index_entry_per_type(void **state)
{
    int g;
    (void)state;
    for (g = 0; g < 2; g++)
        assert_indexed(plan(PGSCHED__Q_NEXT_DUE, 1, "'{mine,other}'", g),
                       "pgsched_jobs_type_due", g ? "next-due (generic plan)" : "next-due");
}

static void heartbeat_touches_only_this_nodes_leases(void **state)
{
    int g;
    (void)state;
    for (g = 0; g < 2; g++)
        assert_indexed(plan(PGSCHED__Q_HEARTBEAT, 5, "'n1', '{mine,mine}', '{r1,r2}', '{1,2}', 'true'", g),
                       "pgsched_jobs_pkey",
                       g ? "heartbeat (generic plan)" : "heartbeat");
}

static void outcomes_are_written_by_primary_key(void **state)
{
    int g;
    (void)state;
    for (g = 0; g < 2; g++)
        assert_indexed(plan(PGSCHED__Q_FINISH, 14,
                            "'{mine}', '{r1}', '{1}', '{success}', '{completed}', '{NULL}', '{0}', "
                            "'{0}', '{NULL}', '{n1}', '{NULL}', '{NULL}', 'plans.pgsched_events', "
                            "'{f}'",
                            g),
                       "pgsched_jobs_pkey", g ? "finish (generic plan)" : "finish");
}

/* One value of the admin connection's query, as text (malloc'd). */
static char *sql_text(const char *q)
{
    PGresult *r = PQexec(admin, q);
    char *v;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        PQclear(r);
        fail_msg("%s in %.200s", PQerrorMessage(admin), q);
    }
    v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* A finish of 2,000 outcomes (the leases of running rows o1..o2000): each row is looked up
   once, by primary key and tuple id, in the custom plan (which sees the batch) and the
   generic one alike. A plan that searched an array of the batch's tuple ids for each row
   costs the square of the batch (measured: 0.07 ms per row of a 1,300-row batch, more than
   the rest of the statement), and one that reads the jobs table costs the table. */
static void finish_of_a_large_batch_looks_each_row_up_once(void **state)
{
    char *keys = sql_text("SELECT array_agg('o' || g ORDER BY g)::text "
                          "FROM generate_series(1, 2000) g");
    char *tokens = sql_text("SELECT array_agg(1000 + g ORDER BY g)::text "
                            "FROM generate_series(1, 2000) g");
    size_t size = strlen(keys) + strlen(tokens) + 4096;
    char *args = malloc(size);
    const char *p;
    int g;
    (void)state;
    assert_non_null(args);
    snprintf(args, size,
             "array_fill('mine'::text, ARRAY[2000]), '%s', '%s', "
             "array_fill('success'::text, ARRAY[2000]), array_fill('completed'::text, ARRAY[2000]), "
             "array_fill(NULL::text, ARRAY[2000]), array_fill(0, ARRAY[2000]), "
             "array_fill(0, ARRAY[2000]), array_fill(NULL::text, ARRAY[2000]), "
             "array_fill('other1'::text, ARRAY[2000]), array_fill(NULL::text, ARRAY[2000]), "
             "array_fill(NULL::text, ARRAY[2000]), 'plans.pgsched_events', "
             "array_fill(false, ARRAY[2000])",
             keys, tokens);
    for (g = 0; g < 2; g++) {
        const char *out = plan(PGSCHED__Q_FINISH, 14, args, g);
        assert_indexed(out, "pgsched_jobs_pkey", g ? "finish of 2,000 (generic plan)"
                                                   : "finish of 2,000");
        for (p = strstr(out, "Filter:"); p; p = strstr(p + 1, "Filter:")) {
            const char *eol = strchr(p, '\n'), *any = strstr(p, "ctid = ANY");
            if (any && (!eol || any < eol))
                fail_msg("finish of 2,000%s searches the batch's tuple ids for each row:\n%s",
                         g ? " (generic plan)" : "", out);
        }
    }
    free(keys);
    free(tokens);
    free(args);
}

static void take_back_reads_running_rows_by_heartbeat_age(void **state)
{
    int g;
    (void)state;
    for (g = 0; g < 2; g++)
        assert_indexed(plan(PGSCHED__Q_TAKE_BACK, 4, "'n2', '30000000', '100', 'plans.pgsched_events'", g),
                       "pgsched_jobs_stall", g ? "take-back (generic plan)" : "take-back");
}

/* ---- the schedule statement, prepared while the table was empty ----------------------------
   PostgreSQL plans a prepared statement for its parameters 5 times, then may keep one generic
   plan, made with the statistics of that moment, for good. Made on an empty, freshly analysed
   table, a plan that looks a row up by (name, key) could keep a sequential scan forever. */

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median time of `n` single schedules through the store (new keys `tag`0.. ). */
static double median_schedule_ms(pgsched_store *s, const char *tag, int n)
{
    double t[101];
    char key[32];
    int i;
    pgsched_schedule_request q;
    pgsched_schedule_info o;
    pgsched_error e;
    memset(&q, 0, sizeof q);
    q.name = "sched";
    q.key = key;
    q.kind = PGSCHED_SCHEDULE_ONCE;
    q.next_run = pgsched_now() + PGSCHED_DAY;
    for (i = 0; i < n && i < 101; i++) {
        double t0;
        snprintf(key, sizeof key, "%s%d", tag, i);
        t0 = mono_ms();
        if (pgsched_store_schedule(s, &q, &o, &e) != PGSCHED_OK) fail_msg("schedule: %s", e.message);
        t[i] = mono_ms() - t0;
    }
    qsort(t, (size_t)i, sizeof t[0], cmp_double);
    return t[i / 2];
}

/* PREPAREs `name` (parameter `types`) as `text`, then EXECUTEs it 8 times (past the 5 custom
   plans) with `args`, in which %s is a new key each time. */
static void prepare_past_custom_plans(const char *name, const char *types, const char *text,
                                      const char *args)
{
    char buf[16384], a[512], key[32];
    int i;
    snprintf(buf, sizeof buf, "PREPARE %s(%s) AS %s", name, types, text);
    sql(buf);
    for (i = 0; i < 8; i++) {
        snprintf(key, sizeof key, "prep-%s-%d", name, i);
        snprintf(a, sizeof a, args, key);
        snprintf(buf, sizeof buf, "EXECUTE %s(%s)", name, a);
        sql(buf);
    }
}

/* EXPLAIN of prepared statement `name` EXECUTEd with `args`, into buf. */
static void explain_prepared(const char *name, const char *args, char *buf, size_t size)
{
    char q[1024];
    PGresult *r;
    int i;
    snprintf(q, sizeof q, "EXPLAIN (COSTS OFF) EXECUTE %s(%s)", name, args);
    r = PQexec(admin, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s", PQerrorMessage(admin));
    buf[0] = '\0';
    for (i = 0; i < PQntuples(r); i++) {
        strncat(buf, PQgetvalue(r, i, 0), size - strlen(buf) - 2);
        strcat(buf, "\n");
    }
    PQclear(r);
}

/* Fails unless prepared statement `name` has reached its generic plan; then deallocates it. */
static void assert_generic_and_deallocate(const char *name)
{
    char q[256];
    PGresult *r;
    snprintf(q, sizeof q, "SELECT generic_plans FROM pg_prepared_statements WHERE name = '%s'",
             name);
    r = PQexec(admin, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || atoi(PQgetvalue(r, 0, 0)) < 1)
        fail_msg("the test never reached the generic plan of %s", name);
    PQclear(r);
    snprintf(q, sizeof q, "DEALLOCATE %s", name);
    sql(q);
}

/* The plan of prepared statement `name` (a schedule statement) for the key big5: no read of
   the jobs table other than the upsert's conflict check through the primary key (`upsert`),
   or none at all but the insert's own unique check (a plain insert), and it is the generic
   plan. (Its first step, the lock of the requests' existing rows, runs in the function
   {P}lock_keys, planned there without sequential scans; the single-call timings below at
   100,000 rows would show a scan.) Deallocates it. */
static void assert_schedule_plan(const char *name, int upsert, const char *args)
{
    char buf[16384], a[512];
    const char *p;
    snprintf(a, sizeof a, args, "big5");
    explain_prepared(name, a, buf, sizeof buf);
    if (strstr(buf, "Seq Scan on pgsched_jobs") || strstr(buf, "Index Scan") ||
        strstr(buf, "Bitmap Heap Scan on pgsched_jobs"))
        fail_msg("%s reads the jobs table other than through its upsert:\n%s", name, buf);
    p = strstr(buf, "Conflict Arbiter Indexes: pgsched_jobs_pkey");
    if (upsert && !p) fail_msg("%s's upsert is not checked by primary key:\n%s", name, buf);
    if (!upsert && (strstr(buf, "Conflict") || !strstr(buf, "Insert on pgsched_jobs")))
        fail_msg("%s is not a plain insert:\n%s", name, buf);
    assert_generic_and_deallocate(name);
}

static void schedule_prepared_on_an_empty_table_looks_rows_up_by_key_at_100k_rows(void **state)
{
    pgsched_pg_config pc;
    pgsched_store *s;
    pgsched_error e;
    double small, big;
    (void)state;
    sql("DROP SCHEMA IF EXISTS plans_sched CASCADE");
    memset(&pc, 0, sizeof pc);
    pc.conninfo = getenv("PGSCHED_TEST_DSN");
    pc.schema = "plans_sched";
    if (pgsched_pg_store_create(&pc, &s, &e) != PGSCHED_OK ||
        pgsched_store_setup(s, &e) != PGSCHED_OK)
        fail_msg("store: %s", e.message);
    sql("VACUUM ANALYZE plans_sched.pgsched_jobs"); /* statistics: an empty table */
    /* the store's own statement, and the same text prepared here, both past their custom
       plans while the table holds a handful of rows */
    small = median_schedule_ms(s, "small", 101);
    sql("DEALLOCATE ALL");
    sql("SET plan_cache_mode = auto");
    /* both statements: the batch one and the one-row one of single calls, with the parameter
       types the store prepares them with (pgsched__pg_schedule_types, _schedule_one_types) */
    prepare_past_custom_plans("sched_q", "text[], text[], text[], text[], int8[], text[], int4[], "
                              "timestamptz[], bool[], text, text, int8[]",
                              ((pgsched__pg *)s)->sql[PGSCHED__Q_SCHEDULE],
                              "'{sched}', '{%s}', '{once}', '{NULL}', '{NULL}', '{\"{}\"}', "
                              "'{3}', '{NULL}', '{f}', 'n1', 'c', '{0}'");
    prepare_past_custom_plans("sched_new_q", "text[], text[], text[], text[], int8[], text[], "
                              "int4[], timestamptz[], bool[], text, text, int8[]",
                              ((pgsched__pg *)s)->sql[PGSCHED__Q_SCHEDULE_NEW],
                              "'{sched}', '{%s}', '{once}', '{NULL}', '{NULL}', '{\"{}\"}', "
                              "'{3}', '{NULL}', '{f}', 'n1', 'c', '{0}'");
    /* and their forms for the caller's connection (PGSCHED__PG_EXT_SCHEDULE, _NEW) */
    prepare_past_custom_plans("sched_tx_q", "text[], text[], text[], text[], int8[], text[], "
                              "int4[], timestamptz[], bool[], text, text, int8[], bool",
                              ((pgsched__pg *)s)->sql[PGSCHED__Q_SCHEDULE_TX],
                              "'{sched}', '{%s}', '{once}', '{NULL}', '{NULL}', '{\"{}\"}', "
                              "'{3}', '{NULL}', '{f}', 'n1', 'c', '{0}', true");
    prepare_past_custom_plans("sched_new_tx_q", "text[], text[], text[], text[], int8[], "
                              "text[], int4[], timestamptz[], bool[], text, text, int8[], bool",
                              ((pgsched__pg *)s)->sql[PGSCHED__Q_SCHEDULE_NEW_TX],
                              "'{sched}', '{%s}', '{once}', '{NULL}', '{NULL}', '{\"{}\"}', "
                              "'{3}', '{NULL}', '{f}', 'n1', 'c', '{0}', false");
    prepare_past_custom_plans("sched_one_q", "text, text, text, text, int8, text, int4, "
                              "timestamptz, bool, text, text, int8",
                              ((pgsched__pg *)s)->sql[PGSCHED__Q_SCHEDULE_ONE],
                              "'sched', '%s', 'once', NULL, NULL, '{}', 3, NULL, false, 'n1', "
                              "'c', 0");
    sql("INSERT INTO plans_sched.pgsched_jobs (name, key, status, kind, params, max_retries, "
        "next_run, version) SELECT 'sched', 'big' || g, 'pending', 'once', '{}', 0, "
        "now() + interval '1 day', nextval('plans_sched.pgsched_seq') "
        "FROM generate_series(1, 100000) g");
    assert_schedule_plan("sched_q", 1,
                         "'{sched}', '{%s}', '{once}', '{NULL}', '{NULL}', '{\"{}\"}', '{3}', "
                         "'{NULL}', '{f}', 'n1', 'c', '{0}'");
    assert_schedule_plan("sched_new_q", 0,
                         "'{sched}', '{%s}', '{once}', '{NULL}', '{NULL}', '{\"{}\"}', '{3}', "
                         "'{NULL}', '{f}', 'n1', 'c', '{0}'");
    assert_schedule_plan("sched_tx_q", 1,
                         "'{sched}', '{%s}', '{once}', '{NULL}', '{NULL}', '{\"{}\"}', '{3}', "
                         "'{NULL}', '{f}', 'n1', 'c', '{0}', true");
    assert_schedule_plan("sched_new_tx_q", 0,
                         "'{sched}', '{%s}', '{once}', '{NULL}', '{NULL}', '{\"{}\"}', '{3}', "
                         "'{NULL}', '{f}', 'n1', 'c', '{0}', false");
    assert_schedule_plan("sched_one_q", 1,
                         "'sched', '%s', 'once', NULL, NULL, '{}', 3, NULL, false, 'n1', 'c', 0");
    /* and a single schedule costs what it cost on the empty table: a scan of 100,000 rows
       would take several milliseconds more per call */
    big = median_schedule_ms(s, "more", 101);
    fprintf(stderr, "    median single schedule: %.3f ms at ~100 rows, %.3f ms at 100,000 rows\n",
            small, big);
    if (big > 3 * small + 2.0)
        fail_msg("a single schedule took %.3f ms at 100,000 rows against %.3f ms on the empty "
                 "table",
                 big, small);
    pgsched_store_destroy(s);
    sql("DROP SCHEMA plans_sched CASCADE");
}

/* The plan of prepared statement `name` for `args`: no sequential or bitmap scan of the jobs
   table, and it is the generic plan. Deallocates it. */
static void assert_keyed_plan(const char *name, const char *args)
{
    char buf[16384];
    explain_prepared(name, args, buf, sizeof buf);
    if (strstr(buf, "Seq Scan on pgsched_jobs") || strstr(buf, "Bitmap Heap Scan on pgsched_jobs"))
        fail_msg("%s scans the jobs table:\n%s", name, buf);
    assert_generic_and_deallocate(name);
}


/* A PostgreSQL store in a new schema `schema`, its tables empty and analysed, its pool
   connected: what follows runs on that pool connection (admin, which the caller restores),
   with the session settings the store gives it. */
static pgsched_store *pool_store(const char *schema)
{
    pgsched_pg_config pc;
    pgsched_store *s;
    pgsched_error e;
    pgsched_job_list l;
    static const char *const table[2] = {"pgsched_jobs", "pgsched_runs"};
    char q[256];
    int i;
    snprintf(q, sizeof q, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    sql(q);
    memset(&pc, 0, sizeof pc);
    pc.conninfo = getenv("PGSCHED_TEST_DSN");
    pc.schema = schema;
    if (pgsched_pg_store_create(&pc, &s, &e) != PGSCHED_OK ||
        pgsched_store_setup(s, &e) != PGSCHED_OK)
        fail_msg("store: %s", e.message);
    /* statistics: empty, and kept so until a test analyzes: an autovacuum run at its own
       time would re-plan the statements in the middle of a test (one did: a VACUUM gave the
       planner 100,000 rows without column statistics) */
    for (i = 0; i < 2; i++) {
        snprintf(q, sizeof q, "ALTER TABLE %s.%s SET (autovacuum_enabled = off)", schema,
                 table[i]);
        sql(q);
        snprintf(q, sizeof q, "VACUUM ANALYZE %s.%s", schema, table[i]);
        sql(q);
    }
    memset(&l, 0, sizeof l);
    pgsched_store_get(s, "sched", "none", &l, &e); /* (connects the pool: NOT_FOUND) */
    pgsched_job_list_free(&l);
    if (!((pgsched__pg *)s)->conns[0].conn) fail_msg("the store's pool has no connection");
    admin = ((pgsched__pg *)s)->conns[0].conn;
    return s;
}

/* Cancel, trigger, remove and get of one job, prepared on a connection of the store (its
   session settings) while the table was nearly empty, their generic plans made then, still
   find the row by its key once the table holds 100,000 rows, before any ANALYZE: a scan per
   call otherwise. */
static void changes_prepared_on_an_empty_table_look_rows_up_by_key_at_100k_rows(void **state)
{
    static const struct {
        int q;
        const char *name, *types, *args;
    } st[] = {
        {PGSCHED__Q_CANCEL, "cancel_q", "text, text, text, text", "'sched', '%s', 'n1', 'c'"},
        {PGSCHED__Q_TRIGGER, "trigger_q", "text, text, text, text", "'sched', '%s', 'n1', 'c'"},
        {PGSCHED__Q_REMOVE, "remove_q", "text, text, text, text", "'sched', '%s', 'n1', 'c'"},
        {PGSCHED__Q_GET, "get_q", "text, text", "'sched', '%s'"},
    };
    PGconn *saved = admin;
    pgsched_store *s = pool_store("plans_keyed");
    char a[256];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof st / sizeof st[0]; i++)
        prepare_past_custom_plans(st[i].name, st[i].types, ((pgsched__pg *)s)->sql[st[i].q],
                                  st[i].args);
    sql("INSERT INTO plans_keyed.pgsched_jobs (name, key, status, kind, params, max_retries, "
        "next_run, version) SELECT 'sched', 'big' || g, 'pending', 'once', '{}', 0, "
        "now() + interval '1 day', nextval('plans_keyed.pgsched_seq') "
        "FROM generate_series(1, 100000) g");
    for (i = 0; i < sizeof st / sizeof st[0]; i++) {
        snprintf(a, sizeof a, st[i].args, "big5");
        assert_keyed_plan(st[i].name, a);
    }
    admin = saved;
    pgsched_store_destroy(s);
    sql("DROP SCHEMA plans_keyed CASCADE");
}

/* ---- list and history: one statement per filter shape ------------------------------------
   The store's sessions use generic plans only (pgsched__pg_connect), made here while both
   tables were empty: with 100,000 jobs and 100,000 runs each statement still reads the index
   its filter names, never a whole table. */
static void list_and_history_made_on_empty_tables_read_their_indexes_at_100k_rows(void **state)
{
    static const struct {
        int q;
        const char *name, *types, *args, *index, *cond;
    } st[] = {
        {PGSCHED__Q_LIST, "list_q", "text, text, text, text, text", "'sched', NULL, '', '', '10'",
         "pgsched_jobs_pkey", "(name = $1)"},
        {PGSCHED__Q_LIST_ALL, "list_all_q", "text, text, text, text, text",
         "NULL, NULL, 'sched', 'big5', '10'", "pgsched_jobs_pkey",
         "Index Cond: (ROW(name, key) > "},
        {PGSCHED__Q_HISTORY, "hist_q", "text, text, text", "'sched', 'big5', '10'",
         "pgsched_runs_job", "Index Cond: ((name = $1) AND (key = $2))"},
        {PGSCHED__Q_HISTORY_NAME, "hist_name_q", "text, text, text", "'sched', NULL, '10'",
         "pgsched_runs", NULL},
        {PGSCHED__Q_HISTORY_ALL, "hist_all_q", "text, text, text", "NULL, NULL, '10'",
         "pgsched_runs_pkey", NULL},
    };
    static const char *const when[2] = {"planned on empty tables", "re-planned once analyzed"};
    PGconn *saved = admin;
    pgsched_store *s = pool_store("plans_list");
    char buf[16384], q[1024];
    size_t i;
    int pass;
    (void)state;
    for (i = 0; i < sizeof st / sizeof st[0]; i++) {
        snprintf(q, sizeof q, "PREPARE %s(%s) AS %s", st[i].name, st[i].types,
                 ((pgsched__pg *)s)->sql[st[i].q]);
        sql(q);
        explain_prepared(st[i].name, st[i].args, buf, sizeof buf); /* planned now, empty */
    }
    sql("INSERT INTO plans_list.pgsched_jobs (name, key, status, kind, params, max_retries, "
        "next_run, version) SELECT 'sched', 'big' || g, 'pending', 'once', '{}', 0, "
        "now() + interval '1 day', nextval('plans_list.pgsched_seq') "
        "FROM generate_series(1, 100000) g");
    sql("INSERT INTO plans_list.pgsched_runs (id, name, key, node, attempt, finished_at, "
        "outcome) SELECT g, CASE WHEN g % 2 = 0 THEN 'sched' ELSE 'other' END, "
        "'big' || (g % 1000), 'n1', 1, now(), 'success' FROM generate_series(1, 100000) g");
    /* the plans made on the empty tables, then (re-planned) with the tables analyzed */
    for (pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            sql("ANALYZE plans_list.pgsched_jobs");
            sql("ANALYZE plans_list.pgsched_runs");
        }
        for (i = 0; i < sizeof st / sizeof st[0]; i++) {
            explain_prepared(st[i].name, st[i].args, buf, sizeof buf);
            /* The generic plan made on the empty tables is kept until something invalidates
               it, and that may happen at any time (a reset of the session's caches, after
               other sessions' catalogue changes overflowed its queue of invalidations: one CI
               run in several, with another test's database busy beside it). Re-planned before
               the first ANALYZE, with rows but no column statistics, the list statement may
               read the name's index entries past the cursor in a bitmap scan and sort them:
               still through the index, never the whole table. Once analyzed it is an ordered
               index scan that stops at the page's end. */
            if (strstr(buf, "Seq Scan") || (pass == 1 && strstr(buf, "Bitmap Heap Scan")))
                fail_msg("%s reads a whole table (%s):\n%s", st[i].name, when[pass], buf);
            if (!strstr(buf, st[i].index))
                fail_msg("%s does not use %s (%s):\n%s", st[i].name, st[i].index, when[pass],
                         buf);
            if (st[i].cond && !strstr(buf, st[i].cond))
                fail_msg("%s does not look its rows up by %s (%s):\n%s", st[i].name, st[i].cond,
                         when[pass], buf);
        }
    }
    {
        /* A page deep into a large type starts at its cursor (its index pages and its rows'
           heap pages: a few dozen buffers), and every form of the cursor means what it says */
        static const struct {
            const char *args, *first;
            int rows;
        } page[] = {
            {"'sched', NULL, 'sched', 'big77777', '10'", "big77778", 10},
            {"'sched', NULL, '', '', '10'", "big1", 10},
            {"'sched', NULL, 'other', 'zzz', '10'", "big1", 10},
            {"'sched', NULL, 'sched', NULL, '10'", NULL, 0},
            {"'sched', NULL, 'scheduled', '', '10'", NULL, 0},
            {"'sched', NULL, 'sched', 'big99999', '10'", NULL, 0},
        };
        long b = executed_buffers("list_q", page[0].args);
        if (b > 60)
            fail_msg("a page of 10 after 'big77777' touched %ld buffers: the scan did not start "
                     "at the cursor",
                     b);
        for (i = 0; i < sizeof page / sizeof page[0]; i++) {
            PGresult *r;
            snprintf(q, sizeof q, "EXECUTE list_q(%s)", page[i].args);
            r = PQexec(admin, q);
            if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s", PQerrorMessage(admin));
            if (PQntuples(r) != page[i].rows ||
                (page[i].first && strcmp(PQgetvalue(r, 0, 1), page[i].first) != 0))
                fail_msg("list_q(%s): %d rows, first %s; expected %d, first %s", page[i].args,
                         PQntuples(r), PQntuples(r) ? PQgetvalue(r, 0, 1) : "-", page[i].rows,
                         page[i].first ? page[i].first : "-");
            PQclear(r);
        }
    }
    for (i = 0; i < sizeof st / sizeof st[0]; i++) assert_generic_and_deallocate(st[i].name);
    admin = saved;
    pgsched_store_destroy(s);
    sql("DROP SCHEMA plans_list CASCADE");
}

#include "test_filter.h"

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claim_reads_only_due_rows_of_its_types_through_the_type_due_index),
        cmocka_unit_test(claim_skips_its_own_rows_by_hash_when_it_reads_the_next_due_time),
        cmocka_unit_test(next_due_looks_up_one_index_entry_per_type),
        cmocka_unit_test(heartbeat_touches_only_this_nodes_leases),
        cmocka_unit_test(outcomes_are_written_by_primary_key),
        cmocka_unit_test(take_back_reads_running_rows_by_heartbeat_age),
        cmocka_unit_test(heartbeat_cost_follows_its_batch_not_other_nodes_running_rows),
        cmocka_unit_test(finish_cost_follows_its_batch_not_other_nodes_running_rows),
        cmocka_unit_test(finish_of_a_large_batch_looks_each_row_up_once),
        cmocka_unit_test(take_back_cost_follows_its_batch_not_other_nodes_running_rows),
        cmocka_unit_test(schedule_prepared_on_an_empty_table_looks_rows_up_by_key_at_100k_rows),
        cmocka_unit_test(changes_prepared_on_an_empty_table_look_rows_up_by_key_at_100k_rows),
        cmocka_unit_test(list_and_history_made_on_empty_tables_read_their_indexes_at_100k_rows),
    };
    test_filter_from(argc, argv);
    return cmocka_run_group_tests_name("pg_plans", tests, setup, teardown);
}
