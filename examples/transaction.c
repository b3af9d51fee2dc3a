/* transaction.c - scheduling inside the application's own transaction: the job exists if and
   only if the transaction commits, so an order and the e-mail about it are never out of step.

   Run:   PGSCHED_DSN='dbname=app' build/transaction
   Build: cc -std=c99 -pthread examples/transaction.c $(pkg-config --cflags --libs libpq) -I.

   The node here only schedules (no handler, no start): the jobs run on whichever node of the
   cluster registers "receipt" with a handler. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int exec_ok(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "transaction: %s", PQerrorMessage(conn));
    PQclear(r);
    return ok;
}

/* One order and its receipt job, in one transaction that commits or rolls back. */
static int place_order(pgsched_node *node, PGconn *conn, const char *order, int commit)
{
    const char *values[1] = {order};
    pgsched_job_spec job = {0};
    pgsched_error err;
    PGresult *r;
    int ok;
    if (!exec_ok(conn, "BEGIN")) return 0;
    r = PQexecParams(conn, "INSERT INTO example_orders (id) VALUES ($1)", 1, NULL, values, NULL,
                     NULL, 0);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    job.name = "receipt";
    job.key = order;
    job.schedule.kind = PGSCHED_SCHEDULE_ONCE;
    if (ok && pgsched_schedule_job_tx(node, conn, &job, &err) != PGSCHED_OK) {
        fprintf(stderr, "transaction: %s\n", err.message);
        ok = 0;
    }
    return exec_ok(conn, ok && commit ? "COMMIT" : "ROLLBACK") && ok;
}

static const char *exists(pgsched_node *node, const char *key)
{
    pgsched_job *job;
    pgsched_result r = pgsched_get(node, "receipt", key, &job, NULL);
    pgsched_job_free(job);
    return r == PGSCHED_OK ? "exists" : r == PGSCHED_ERR_NOT_FOUND ? "does not exist"
                                                                   : "could not be read";
}

int main(void)
{
    const char *dsn = getenv("PGSCHED_DSN");
    pgsched_config cfg = {0};
    pgsched_job_type type = {0};
    pgsched_node *node;
    pgsched_error err;
    PGconn *conn;
    char kept[64], dropped[64];
    int ok;

    if (!dsn) return fprintf(stderr, "transaction: set PGSCHED_DSN to a PostgreSQL database\n"), 2;
    cfg.pg.conninfo = dsn;
    if (pgsched_create(&cfg, &node, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    type.name = "receipt"; /* scheduled here, run elsewhere */
    if (pgsched_register(node, &type, &err) || pgsched_init(node, &err)) {
        fprintf(stderr, "transaction: %s\n", err.message);
        pgsched_destroy(node);
        return 1;
    }
    conn = PQconnectdb(dsn); /* the application's own connection */
    if (PQstatus(conn) != CONNECTION_OK || !exec_ok(conn, "SET client_min_messages = warning") ||
        !exec_ok(conn, "CREATE TABLE IF NOT EXISTS example_orders (id text PRIMARY KEY)")) {
        fprintf(stderr, "transaction: %s", PQerrorMessage(conn));
        PQfinish(conn);
        pgsched_destroy(node);
        return 1;
    }
    snprintf(kept, sizeof kept, "order-%ld-a", (long)getpid());
    snprintf(dropped, sizeof dropped, "order-%ld-b", (long)getpid());
    ok = place_order(node, conn, kept, 1) && place_order(node, conn, dropped, 0);
    printf("committed order: its receipt job %s\n", exists(node, kept));
    printf("rolled-back order: its receipt job %s\n", exists(node, dropped));
    ok = ok && exists(node, kept)[0] == 'e' && exists(node, dropped)[0] == 'd';
    pgsched_remove(node, "receipt", kept, NULL, NULL);
    PQfinish(conn);
    pgsched_destroy(node);
    return ok ? 0 : 1;
}
