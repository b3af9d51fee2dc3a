/* bench_baseline.c - what PostgreSQL does with single-row claim-then-complete transactions,
   the baseline of the throughput figures in `make bench` (tests/bench/run.sh drives it).

     bench_baseline CLIENTS SECONDS [ROWS]

   Loads a table of ROWS (default 300,000) due rows with a partial index on the due time of
   pending rows, then runs CLIENTS threads, each on its own connection, for SECONDS seconds.
   Each thread repeats two transactions with prepared statements: claim the earliest due row
   (UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id) and then
   mark it completed. Prints "BENCH baseline.fsync_<on|off>.clients_<N> <pairs per second>",
   where one pair is one job claimed and completed. Needs $PGSCHED_TEST_DSN (or $PGSCHED_DSN). */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CLIENTS 64

static const char *dsn;
static double seconds;
static int stop_flag;

typedef struct client {
    pthread_t thread;
    int id;
    long pairs;
    int failed;
} client;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void must(PGconn *c, PGresult *r, const char *what)
{
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_baseline: %s: %s", what, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

static void *run_client(void *arg)
{
    client *me = arg;
    PGconn *c = PQconnectdb(dsn);
    char owner[32];
    const char *p[1];
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_baseline: connect: %s", PQerrorMessage(c));
        me->failed = 1;
        return NULL;
    }
    snprintf(owner, sizeof owner, "client-%d", me->id);
    must(c,
         PQprepare(c, "claim",
                   "UPDATE bench_baseline.jobs SET status = 'running', owner = $1, "
                   "heartbeat_at = now() WHERE id = (SELECT id FROM bench_baseline.jobs "
                   "WHERE status = 'pending' AND due <= now() ORDER BY due LIMIT 1 "
                   "FOR UPDATE SKIP LOCKED) RETURNING id",
                   1, NULL),
         "prepare claim");
    must(c,
         PQprepare(c, "complete",
                   "UPDATE bench_baseline.jobs SET status = 'completed', owner = NULL, "
                   "finished_at = now() WHERE id = $1",
                   1, NULL),
         "prepare complete");
    while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
        PGresult *r;
        p[0] = owner;
        r = PQexecPrepared(c, "claim", 1, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            fprintf(stderr, "bench_baseline: claim: %s%s", PQerrorMessage(c),
                    PQresultStatus(r) == PGRES_TUPLES_OK ? "no due row left: raise ROWS\n" : "");
            PQclear(r);
            me->failed = 1;
            break;
        }
        p[0] = PQgetvalue(r, 0, 0);
        must(c, PQexecPrepared(c, "complete", 1, p, NULL, NULL, 0), "complete");
        PQclear(r);
        me->pairs++;
    }
    PQfinish(c);
    return NULL;
}

int main(int argc, char **argv)
{
    static client clients[MAX_CLIENTS];
    int n = argc > 1 ? atoi(argv[1]) : 0, i, failed = 0;
    long rows = argc > 3 ? atol(argv[3]) : 300000, pairs = 0;
    char sql[512], fs[8];
    double t0, secs;
    PGconn *admin;
    PGresult *r;
    seconds = argc > 2 ? atof(argv[2]) : 0;
    if (n < 1 || n > MAX_CLIENTS || seconds <= 0 || rows < 1) {
        fprintf(stderr, "usage: bench_baseline CLIENTS(1-%d) SECONDS [ROWS]\n", MAX_CLIENTS);
        return 2;
    }
    dsn = getenv("PGSCHED_TEST_DSN");
    if (!dsn) dsn = getenv("PGSCHED_DSN");
    if (!dsn) {
        fprintf(stderr, "bench_baseline: set PGSCHED_TEST_DSN (make bench starts a cluster)\n");
        return 1;
    }
    admin = PQconnectdb(dsn);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "bench_baseline: %s", PQerrorMessage(admin));
        return 1;
    }
    PQsetNoticeProcessor(admin, pgsched__pg_quiet, NULL);
    r = PQexec(admin, "SHOW fsync");
    snprintf(fs, sizeof fs, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?");
    PQclear(r);
    must(admin, PQexec(admin, "DROP SCHEMA IF EXISTS bench_baseline CASCADE"), "drop");
    must(admin,
         PQexec(admin, "CREATE SCHEMA bench_baseline; CREATE TABLE bench_baseline.jobs ("
                       "id bigserial PRIMARY KEY, status text NOT NULL, due timestamptz NOT NULL,"
                       " owner text, heartbeat_at timestamptz, finished_at timestamptz)"),
         "create");
    snprintf(sql, sizeof sql,
             "INSERT INTO bench_baseline.jobs (status, due) SELECT 'pending', "
             "now() - interval '1 hour' + g * interval '1 microsecond' "
             "FROM generate_series(1, %ld) g",
             rows);
    must(admin, PQexec(admin, sql), "load");
    must(admin,
         PQexec(admin, "CREATE INDEX ON bench_baseline.jobs (due) WHERE status = 'pending'"),
         "index");
    must(admin, PQexec(admin, "VACUUM ANALYZE bench_baseline.jobs"), "vacuum");

    t0 = mono_s();
    for (i = 0; i < n; i++) {
        clients[i].id = i + 1;
        if (pthread_create(&clients[i].thread, NULL, run_client, &clients[i]) != 0) {
            fprintf(stderr, "bench_baseline: pthread_create failed\n");
            return 1;
        }
    }
    while (mono_s() - t0 < seconds) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
    for (i = 0; i < n; i++) {
        pthread_join(clients[i].thread, NULL);
        pairs += clients[i].pairs;
        failed |= clients[i].failed;
    }
    secs = mono_s() - t0;
    if (failed) return 1;
    printf("# baseline fsync=%s clients=%d: %ld claim+complete pairs in %.2f s (%ld rows)\n", fs,
           n, pairs, secs, rows);
    printf("BENCH baseline.fsync_%s.clients_%d %.0f\n", fs, n, (double)pairs / secs);
    must(admin, PQexec(admin, "DROP SCHEMA bench_baseline CASCADE"), "drop");
    PQfinish(admin);
    return 0;
}
