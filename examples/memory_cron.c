/* memory_cron.c - a cron runner with no database: the in-memory store, jobs in several time
   zones, a fixed interval and a schedule computed by your own function. Everything a
   PostgreSQL cluster does within one process (retries, cancels, callbacks), without libpq.

   Run:   build/memory_cron [SECONDS]                  (default 4, then it stops)
   Build: cc -std=c99 -pthread -DPGSCHED_NO_LIBPQ -I. examples/memory_cron.c */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int work(pgsched_run *run)
{
    char due[PGSCHED_TIME_STRING_MAX];
    pgsched_time_format(run->scheduled_for, 0, 1, due, sizeof due);
    printf("%-10s due %s\n", run->key, due);
    fflush(stdout);
    return PGSCHED_RUN_SUCCESS;
}

/* A PGSCHED_SCHEDULE_CUSTOM schedule: the next run is whatever this returns, here 1.5 s after the
   previous one, so long as the instance's params do not say "paused". */
static pgsched_result every_1500ms(void *user, const char *name, const char *key,
                                   const char *params, pgsched_time after, pgsched_time *next)
{
    (void)user, (void)name, (void)key;
    if (params && strstr(params, "\"paused\"")) return PGSCHED_ERR_NO_NEXT; /* the schedule ends */
    *next = after + 1500 * PGSCHED_MILLISECOND;
    return PGSCHED_OK;
}

static void add(pgsched_node *node, const char *key, pgsched_schedule_kind kind,
                const char *cron, pgsched_duration every)
{
    pgsched_job_spec job = {0};
    pgsched_error err;
    job.name = "work";
    job.key = key;
    job.schedule.kind = kind;
    job.schedule.cron = cron;
    job.schedule.every = every;
    if (pgsched_schedule_job(node, &job, &err)) fprintf(stderr, "%s: %s\n", key, err.message);
}

int main(int argc, char **argv)
{
    unsigned seconds = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
    pgsched_config cfg = {0};
    pgsched_job_type type = {0};
    pgsched_counters counters;
    pgsched_store *store;
    pgsched_node *node;
    pgsched_error err;

    if (pgsched_memory_store_create(NULL, &store, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    cfg.store = store;
    cfg.default_zone = "Europe/Berlin"; /* for expressions without CRON_TZ= */
    if (pgsched_create(&cfg, &node, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    type.name = "work";
    type.handler = work;
    type.next_run = every_1500ms;
    if (pgsched_register(node, &type, &err) || pgsched_start(node, &err)) {
        fprintf(stderr, "memory_cron: %s\n", err.message);
        pgsched_destroy(node);
        pgsched_store_destroy(store);
        return 1;
    }
    add(node, "berlin", PGSCHED_SCHEDULE_CRON, "* * * * * *", 0);                   /* default zone */
    add(node, "tokyo", PGSCHED_SCHEDULE_CRON, "CRON_TZ=Asia/Tokyo */2 * * * * *", 0);
    add(node, "interval", PGSCHED_SCHEDULE_INTERVAL, NULL, 700 * PGSCHED_MILLISECOND);
    add(node, "custom", PGSCHED_SCHEDULE_CUSTOM, NULL, 0);

    sleep(seconds);
    pgsched_get_counters(node, &counters);
    printf("%lld runs in %u s\n", (long long)counters.succeeded, seconds);
    pgsched_destroy(node);
    pgsched_store_destroy(store);
    return counters.succeeded > 0 ? 0 : 1;
}
