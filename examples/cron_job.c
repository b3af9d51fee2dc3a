/* cron_job.c - a recurring job: a cron expression with a seconds field, run by whichever node
   of the cluster is free, each firing once.

   Run:   PGSCHED_DSN='dbname=app' build/cron_job [SECONDS]      (default 5, then it stops)
   Build: cc -std=c99 -pthread examples/cron_job.c $(pkg-config --cflags --libs libpq) -I.

   Start it twice at once and the firings are shared: each due second runs on one process. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int tick(pgsched_run *run)
{
    char due[PGSCHED_TIME_STRING_MAX];
    pgsched_time_format(run->scheduled_for, 0, 1, due, sizeof due);
    /* scheduled_for is in the database's clock; pgsched_now() is this machine's */
    printf("tick %s: due %s, started %.1f ms later\n", run->key, due,
           (double)(pgsched_now() - run->scheduled_for) / 1000.0);
    fflush(stdout);
    return PGSCHED_RUN_SUCCESS;
}

int main(int argc, char **argv)
{
    const char *dsn = getenv("PGSCHED_DSN");
    unsigned seconds = argc > 1 ? (unsigned)atoi(argv[1]) : 5;
    pgsched_config cfg = {0};
    pgsched_job_type type = {0};
    pgsched_job_spec job = {0};
    pgsched_counters counters;
    pgsched_node *node;
    pgsched_error err;

    if (!dsn) return fprintf(stderr, "cron_job: set PGSCHED_DSN to a PostgreSQL database\n"), 2;
    cfg.pg.conninfo = dsn;
    if (pgsched_create(&cfg, &node, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    type.name = "tick";
    type.handler = tick;
    if (pgsched_register(node, &type, &err) || pgsched_start(node, &err)) {
        fprintf(stderr, "cron_job: %s\n", err.message);
        pgsched_destroy(node);
        return 1;
    }

    job.name = "tick";
    job.key = "every-2s";
    job.schedule.kind = PGSCHED_SCHEDULE_CRON;
    job.schedule.cron = "*/2 * * * * *"; /* sec min hour dom mon dow */
    if (pgsched_schedule_job(node, &job, &err)) fprintf(stderr, "cron_job: %s\n", err.message);

    sleep(seconds);
    pgsched_get_counters(node, &counters);
    printf("this node ran %lld firing(s) in %u s\n", (long long)counters.succeeded, seconds);
    pgsched_remove(node, "tick", "every-2s", NULL, NULL); /* leave no recurring row behind */
    pgsched_destroy(node);
    return counters.succeeded > 0 ? 0 : 1;
}
