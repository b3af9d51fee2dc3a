/* retries.c - a one-time job with JSON parameters that fails twice, is retried with backoff,
   and succeeds on its third attempt; then its run history, one row per attempt.

   Run:   PGSCHED_DSN='dbname=app' build/retries
   Build: cc -std=c99 -pthread examples/retries.c $(pkg-config --cflags --libs libpq) -I. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int finished;

/* The handler gets the instance's own parameters as JSON text: parse them with the JSON
   library of your choice (here a plain strstr, to stay dependency-free). */
static int charge(pgsched_run *run)
{
    const char *amount = strstr(run->params, "\"amount\":");
    printf("charge %s attempt %d of %d, params %s\n", run->key, run->attempt,
           run->max_retries + 1, run->params);
    if (!amount) {
        pgsched_run_set_error(run, "params lack \"amount\"");
        return PGSCHED_RUN_FAILURE;
    }
    if (run->attempt < 3) { /* the payment service is down, twice */
        pgsched_run_set_error(run, "payment service unavailable (attempt %d)", run->attempt);
        return PGSCHED_RUN_FAILURE;
    }
    return PGSCHED_RUN_SUCCESS;
}

/* Status callbacks tell the program when the job is done, without polling. */
static void on_status(void *user, const pgsched_status_event *e)
{
    (void)user;
    printf("  %s/%s: %s -> %s\n", e->name, e->key, pgsched_status_string(e->old_status),
           pgsched_status_string(e->new_status));
    if (e->new_status == PGSCHED_STATUS_COMPLETED || e->new_status == PGSCHED_STATUS_FAILED) {
        pthread_mutex_lock(&mu);
        finished = 1;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
}

int main(void)
{
    const char *dsn = getenv("PGSCHED_DSN");
    pgsched_config cfg = {0};
    pgsched_job_type type = {0};
    pgsched_job_spec job = {0};
    pgsched_run_list history;
    pgsched_node *node;
    pgsched_error err;
    char key[64];
    size_t i;
    int ok = 0;

    if (!dsn) return fprintf(stderr, "retries: set PGSCHED_DSN to a PostgreSQL database\n"), 2;
    cfg.pg.conninfo = dsn;
    cfg.on_status = on_status;
    cfg.retry_base = 200 * PGSCHED_MILLISECOND; /* first retry after ~200 ms, then doubling */
    if (pgsched_create(&cfg, &node, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    type.name = "charge";
    type.handler = charge;
    type.max_retries = 3; /* the default budget of this type's instances */
    if (pgsched_register(node, &type, &err) || pgsched_start(node, &err)) {
        fprintf(stderr, "retries: %s\n", err.message);
        pgsched_destroy(node);
        return 1;
    }

    snprintf(key, sizeof key, "order-%ld", (long)getpid()); /* a fresh instance every run */
    job.name = "charge";
    job.key = key;
    job.params = "{\"amount\": 1999, \"currency\": \"EUR\"}";
    job.schedule.kind = PGSCHED_SCHEDULE_ONCE; /* due now */
    if (pgsched_schedule_job(node, &job, &err)) {
        fprintf(stderr, "retries: %s\n", err.message);
    } else {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 30;
        pthread_mutex_lock(&mu);
        while (!finished && pthread_cond_timedwait(&cv, &mu, &deadline) == 0) {}
        pthread_mutex_unlock(&mu);
    }

    pgsched_run_list_init(&history, NULL);
    if (pgsched_history(node, "charge", key, 10, &history, &err) == PGSCHED_OK) {
        printf("history, newest first:\n");
        for (i = 0; i < history.count; i++)
            printf("  attempt %d: %s%s%s\n", history.items[i].attempt,
                   pgsched_outcome_string(history.items[i].outcome),
                   history.items[i].error ? ", " : "",
                   history.items[i].error ? history.items[i].error : "");
        ok = history.count == 3 && history.items[0].outcome == PGSCHED_OUTCOME_SUCCESS;
    }
    pgsched_run_list_free(&history);
    pgsched_remove(node, "charge", key, NULL, NULL);
    pgsched_destroy(node);
    return ok ? 0 : 1;
}
