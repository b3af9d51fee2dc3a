/* bench_claim.c - does the cost of a claim or a schedule depend on the size of the table?
   (SPEC §11)

   Measures the claim statement (100 rows per claim, 2,000 due rows) and a single schedule
   call (one new row, one statement) with 1,000 and then with 1,000,000 future rows in the
   table, prints the median latency of each and their ratio, and the EXPLAIN ANALYZE of one
   claim with the large table (run in a transaction that is rolled back). The store's
   statements are first prepared while the table is small, as in a service that starts on an
   empty table and grows. `bench_claim ROWS` uses ROWS instead of 1,000,000. Prints the
   figures also as "BENCH scale.<figure> <ms>" lines for tests/bench/run.sh.
   Needs PostgreSQL: $PGSCHED_TEST_DSN (or $PGSCHED_DSN). */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUE_ROWS 2000
#define CLAIM_BATCH 100
#define SCHEDULES 200

static PGconn *admin;

static void sql(const char *q)
{
    PGresult *r = PQexec(admin, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_claim: %s\n  in: %.200s\n", PQerrorMessage(admin), q);
        exit(1);
    }
    PQclear(r);
}

static int cmp(const void *a, const void *b)
{
    pgsched_duration x = *(const pgsched_duration *)a, y = *(const pgsched_duration *)b;
    return x < y ? -1 : x > y;
}

/* Inserts `n` rows of type `name`, keys `tag-1`..., due `offset` from now. */
static void add_rows(const char *name, const char *tag, long n, const char *offset)
{
    char q[1024];
    snprintf(q, sizeof q,
             "INSERT INTO bench_claim.pgsched_jobs (name, key, status, kind, params, max_retries, "
             "next_run, version) SELECT '%s', '%s-' || g, 'pending', 'once', '{}', 0, "
             "now() + interval '%s' + g * interval '1 millisecond', "
             "nextval('bench_claim.pgsched_seq') FROM generate_series(1, %ld) g",
             name, tag, offset, n);
    sql(q);
    sql("ANALYZE bench_claim.pgsched_jobs");
}

/* Claims all due rows in batches and returns the median claim latency. */
static pgsched_duration measure(pgsched_store *store)
{
    static pgsched_duration lat[DUE_ROWS];
    const char *names[] = {"due"};
    pgsched_claim_request q;
    pgsched_job_list got;
    pgsched_error e;
    int n = 0;
    memset(&q, 0, sizeof q);
    q.node_id = "bench";
    q.names = names;
    q.name_count = 1;
    q.max = CLAIM_BATCH;
    pgsched_job_list_init(&got, NULL);
    for (;;) {
        pgsched_time t0 = pgsched__monotonic();
        pgsched_job_list_clear(&got);
        if (pgsched_store_claim(store, &q, &got, NULL, &e) != PGSCHED_OK) {
            fprintf(stderr, "bench_claim: claim: %s\n", e.message);
            exit(1);
        }
        if (got.count == 0) break;
        lat[n++] = pgsched__monotonic() - t0;
    }
    pgsched_job_list_free(&got);
    qsort(lat, (size_t)n, sizeof lat[0], cmp);
    return n ? lat[n / 2] : 0;
}

/* SCHEDULES single schedule calls of new rows; returns the median latency. */
static pgsched_duration measure_schedule(pgsched_store *store, const char *tag)
{
    static pgsched_duration lat[SCHEDULES];
    pgsched_schedule_request q;
    pgsched_schedule_info out;
    pgsched_error e;
    char key[64];
    int i;
    memset(&q, 0, sizeof q);
    q.name = "scheduled";
    q.key = key;
    q.kind = PGSCHED_SCHEDULE_ONCE;
    q.node_id = "bench";
    for (i = 0; i < SCHEDULES; i++) {
        pgsched_time t0 = pgsched__monotonic();
        snprintf(key, sizeof key, "%s-%d", tag, i);
        q.next_run = pgsched_now() + PGSCHED_DAY;
        if (pgsched_store_schedule(store, &q, &out, &e) != PGSCHED_OK) {
            fprintf(stderr, "bench_claim: schedule: %s\n", e.message);
            exit(1);
        }
        lat[i] = pgsched__monotonic() - t0;
    }
    qsort(lat, SCHEDULES, sizeof lat[0], cmp);
    return lat[SCHEDULES / 2];
}

int main(int argc, char **argv)
{
    const char *dsn = getenv("PGSCHED_TEST_DSN");
    pgsched_pg_config pc;
    pgsched_store *store;
    pgsched_error e;
    pgsched_duration small, large, sched_small, sched_large;
    long big = argc > 1 ? atol(argv[1]) : 1000000;
    char explain[4096];
    PGresult *r;
    int i;

    if (!dsn) dsn = getenv("PGSCHED_DSN");
    if (!dsn) {
        fprintf(stderr, "bench_claim: set PGSCHED_TEST_DSN (make bench starts a cluster)\n");
        return 1;
    }
    admin = PQconnectdb(dsn);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "bench_claim: %s", PQerrorMessage(admin));
        return 1;
    }
    PQsetNoticeProcessor(admin, pgsched__pg_quiet, NULL);
    sql("DROP SCHEMA IF EXISTS bench_claim CASCADE");
    memset(&pc, 0, sizeof pc);
    pc.conninfo = dsn;
    pc.schema = "bench_claim";
    pc.no_notifications = 1;
    if (pgsched_pg_store_create(&pc, &store, &e) != PGSCHED_OK || pgsched_store_setup(store, &e))
        return fprintf(stderr, "bench_claim: %s\n", e.message), 1;

    add_rows("future", "small", 1000, "1 day");
    add_rows("due", "a", DUE_ROWS, "-1 hour");
    small = measure(store);
    sched_small = measure_schedule(store, "small");

    if (big < 2000) big = 2000;
    add_rows("future", "large", big - 1000, "2 days");
    add_rows("due", "b", DUE_ROWS, "-1 hour");
    large = measure(store);
    sched_large = measure_schedule(store, "large");

    printf("claim of %d rows, median of %d claims:\n", CLAIM_BATCH, DUE_ROWS / CLAIM_BATCH);
    printf("  with 1,000 future rows:     %8.3f ms\n", (double)small / 1000.0);
    printf("  with %ld future rows: %8.3f ms  (ratio %.2f)\n", big, (double)large / 1000.0,
           small ? (double)large / (double)small : 0.0);
    printf("schedule of one new row, median of %d single calls:\n", SCHEDULES);
    printf("  with 1,000 rows:     %8.3f ms\n", (double)sched_small / 1000.0);
    printf("  with %ld rows: %8.3f ms  (ratio %.2f)\n", big, (double)sched_large / 1000.0,
           sched_small ? (double)sched_large / (double)sched_small : 0.0);
    printf("BENCH scale.claim_ms.rows_1000 %.3f\n", (double)small / 1000.0);
    printf("BENCH scale.claim_ms.rows_%ld %.3f\n", big, (double)large / 1000.0);
    printf("BENCH scale.schedule_ms.rows_1000 %.3f\n", (double)sched_small / 1000.0);
    printf("BENCH scale.schedule_ms.rows_%ld %.3f\n", big, (double)sched_large / 1000.0);

    /* The plan of a real claim (rolled back), parameters as the store sends them. */
    add_rows("due", "c", DUE_ROWS, "-1 hour");
    sql("BEGIN");
    snprintf(explain, sizeof explain, "PREPARE bench_claim_q(text, text, text, text, text) AS %s",
             ((pgsched__pg *)store)->sql[PGSCHED__Q_CLAIM]);
    sql(explain);
    r = PQexec(admin, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE "
                      "bench_claim_q('bench', '{due}', '100', 'bench_claim.pgsched_events', '0')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_claim: EXPLAIN: %s", PQerrorMessage(admin));
        return 1;
    }
    printf("# EXPLAIN ANALYZE of one claim with %ld future rows present:\n", big);
    for (i = 0; i < PQntuples(r); i++) printf("#   %s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    sql("ROLLBACK");
    sql("DROP SCHEMA bench_claim CASCADE");
    pgsched_store_destroy(store);
    PQfinish(admin);
    return 0;
}
