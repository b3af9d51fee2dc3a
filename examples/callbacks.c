/* callbacks.c - status callbacks: every status change of every job, as it commits, in order
   per instance, including the changes other nodes make (seen through notifications).

   Run:   PGSCHED_DSN='dbname=app' build/callbacks
   Build: cc -std=c99 -pthread examples/callbacks.c $(pkg-config --cflags --libs libpq) -I.

   Two nodes share the work. Node "a" prints every change it sees, marking those another node
   made as remote; node "b" only runs jobs. The program stops when all jobs completed. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOBS 6

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int completed;
static char tag[32]; /* this run's keys start with it */

static int resize(pgsched_run *run)
{
    pgsched_run_sleep(run, 50 * PGSCHED_MILLISECOND);
    return PGSCHED_RUN_SUCCESS;
}

/* Called on one callback thread of the node; it may call the node's API. The event and its
   strings are valid during the call only. */
static void on_status(void *user, const pgsched_status_event *e)
{
    (void)user;
    if (strncmp(e->key, tag, strlen(tag)) != 0) return; /* another program's jobs */
    printf("%-16s %-9s -> %-9s by %.8s%s\n", e->key, pgsched_status_string(e->old_status),
           pgsched_status_string(e->new_status), e->node, e->remote ? " (remote)" : "");
    fflush(stdout);
    if (e->new_status == PGSCHED_STATUS_COMPLETED) {
        pthread_mutex_lock(&mu);
        completed++;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
}

static pgsched_node *make_node(const char *dsn, int watch)
{
    pgsched_config cfg = {0};
    pgsched_job_type type = {0};
    pgsched_node *node;
    pgsched_error err;
    cfg.pg.conninfo = dsn;
    if (watch) cfg.on_status = on_status;
    if (pgsched_create(&cfg, &node, &err)) {
        fprintf(stderr, "callbacks: %s\n", err.message);
        return NULL;
    }
    type.name = "resize";
    type.handler = resize;
    if (pgsched_register(node, &type, &err) || pgsched_start(node, &err)) {
        fprintf(stderr, "callbacks: %s\n", err.message);
        pgsched_destroy(node);
        return NULL;
    }
    return node;
}

int main(void)
{
    const char *dsn = getenv("PGSCHED_DSN");
    pgsched_node *a, *b;
    struct timespec deadline;
    int i, done;

    if (!dsn) return fprintf(stderr, "callbacks: set PGSCHED_DSN to a PostgreSQL database\n"), 2;
    snprintf(tag, sizeof tag, "img-%ld-", (long)getpid());
    a = make_node(dsn, 1);
    b = a ? make_node(dsn, 0) : NULL;
    if (!a || !b) {
        if (a) pgsched_destroy(a);
        return 1;
    }
    for (i = 0; i < JOBS; i++) {
        pgsched_job_spec job = {0};
        pgsched_error err;
        char key[64];
        snprintf(key, sizeof key, "%s%d", tag, i);
        job.name = "resize";
        job.key = key;
        job.schedule.kind = PGSCHED_SCHEDULE_ONCE;
        if (pgsched_schedule_job(i % 2 ? b : a, &job, &err))
            fprintf(stderr, "callbacks: %s\n", err.message);
    }
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&mu);
    while (completed < JOBS && pthread_cond_timedwait(&cv, &mu, &deadline) == 0) {}
    done = completed;
    pthread_mutex_unlock(&mu);
    printf("%d of %d jobs completed\n", done, JOBS);
    pgsched_destroy(b);
    pgsched_destroy(a);
    return done == JOBS ? 0 : 1;
}
