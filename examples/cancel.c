/* cancel.c - cancelling a running job: the handler sees the request through its run context
   and stops early. A cancelled one-time job ends `cancelled` and is not retried.

   Run:   PGSCHED_DSN='dbname=app' build/cancel
   Build: cc -std=c99 -pthread examples/cancel.c $(pkg-config --cflags --libs libpq) -I.

   The cancel may come from any process of the cluster (pgsched_cancel on another node, or
   pgschedctl); it reaches the running node at once with notifications, else within
   cancel_check_period. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int export_data(pgsched_run *run)
{
    int chunk;
    for (chunk = 1; chunk <= 300; chunk++) { /* 30 s of work in 100 ms chunks */
        /* pgsched_run_sleep stands in for real work; it returns early on a cancel. A handler
           busy on the CPU checks pgsched_run_cancelled(run) between pieces instead. */
        if (pgsched_run_sleep(run, 100 * PGSCHED_MILLISECOND)) {
            printf("export %s: asked to stop after chunk %d, cleaning up\n", run->key, chunk);
            pgsched_run_set_error(run, "stopped at chunk %d", chunk);
            return PGSCHED_RUN_FAILURE;
        }
    }
    return PGSCHED_RUN_SUCCESS;
}

/* The instance's status now, or PGSCHED_STATUS_NONE when it does not exist. */
static pgsched_status status_of(pgsched_node *node, const char *key)
{
    pgsched_job *job;
    pgsched_status st = PGSCHED_STATUS_NONE;
    if (pgsched_get(node, "export", key, &job, NULL) == PGSCHED_OK) st = job->status;
    pgsched_job_free(job); /* NULL when the call failed */
    return st;
}

/* Polls until the instance has status `want`, for at most 10 s. */
static int wait_status(pgsched_node *node, const char *key, pgsched_status want)
{
    struct timespec pause = {0, 50000000};
    int i;
    for (i = 0; i < 200; i++) {
        if (status_of(node, key) == want) return 1;
        nanosleep(&pause, NULL);
    }
    return 0;
}

int main(void)
{
    const char *dsn = getenv("PGSCHED_DSN");
    pgsched_config cfg = {0};
    pgsched_job_type type = {0};
    pgsched_job_spec job = {0};
    pgsched_change_effect effect;
    pgsched_node *node;
    pgsched_error err;
    char key[64];
    int ok = 0;

    if (!dsn) return fprintf(stderr, "cancel: set PGSCHED_DSN to a PostgreSQL database\n"), 2;
    cfg.pg.conninfo = dsn;
    if (pgsched_create(&cfg, &node, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    type.name = "export";
    type.handler = export_data;
    if (pgsched_register(node, &type, &err) || pgsched_start(node, &err)) {
        fprintf(stderr, "cancel: %s\n", err.message);
        pgsched_destroy(node);
        return 1;
    }

    snprintf(key, sizeof key, "report-%ld", (long)getpid());
    job.name = "export";
    job.key = key;
    job.schedule.kind = PGSCHED_SCHEDULE_ONCE;
    if (pgsched_schedule_job(node, &job, &err) == PGSCHED_OK &&
        wait_status(node, key, PGSCHED_STATUS_RUNNING)) {
        printf("export %s is running; cancelling it\n", key);
        if (pgsched_cancel(node, "export", key, &effect, &err) == PGSCHED_OK)
            printf("cancel: %s\n", effect == PGSCHED_CHANGE_CANCEL_REQUESTED ? "requested from its node"
                                   : effect == PGSCHED_CHANGE_CANCELLED  ? "done (it was pending)"
                                                                    : "nothing to cancel");
        ok = wait_status(node, key, PGSCHED_STATUS_CANCELLED);
        printf("export %s is now %s\n", key, pgsched_status_string(status_of(node, key)));
    } else {
        fprintf(stderr, "cancel: the job did not start\n");
    }
    pgsched_remove(node, "export", key, NULL, NULL);
    pgsched_destroy(node);
    return ok ? 0 : 1;
}
