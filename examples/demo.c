/* demo.c - two pgsched nodes sharing real work.

   Runs two scheduler nodes in one process against the PostgreSQL database in $PGSCHED_DSN
   (`make demo` starts a throwaway one), schedules recurring and one-time jobs, and prints
   which node runs what. Stops by itself after $DEMO_SECONDS (default 12) or on Ctrl-C.
   Without $PGSCHED_DSN it says so and uses the in-memory store instead.

   Build: cc -std=c99 -I. -I$(pg_config --includedir) examples/demo.c -lpq -lpthread */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_requested;
static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;
static pgsched_time demo_start;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* One line per event, with the time since the demo started. */
static void say(const char *node, const char *fmt, ...) PGSCHED__PRINTF(2, 3);
static void say(const char *node, const char *fmt, ...)
{
    va_list ap;
    pgsched_duration t = pgsched_now() - demo_start;
    pthread_mutex_lock(&print_mu);
    printf("%6.2fs  [node %s]  ", (double)t / 1e6, node);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&print_mu);
}

/* The job type's user pointer is the node's display name. */
static int report(pgsched_run *run)
{
    say((const char *)run->user, "report %-14s attempt %d", run->key, run->attempt);
    return PGSCHED_RUN_SUCCESS;
}

static int send_email(pgsched_run *run)
{
    say((const char *)run->user, "email  %-14s params %s", run->key, run->params);
    /* pretend to talk to a mail server; a cancel or shutdown cuts the wait short */
    if (pgsched_run_sleep(run, 300 * PGSCHED_MILLISECOND)) return PGSCHED_RUN_FAILURE;
    return PGSCHED_RUN_SUCCESS;
}

static int flaky(pgsched_run *run)
{
    if (run->attempt < 3) {
        pgsched_run_set_error(run, "upstream timed out (attempt %d)", run->attempt);
        say((const char *)run->user, "flaky  %-14s attempt %d fails, will be retried", run->key,
            run->attempt);
        return PGSCHED_RUN_FAILURE;
    }
    say((const char *)run->user, "flaky  %-14s attempt %d succeeds", run->key, run->attempt);
    return PGSCHED_RUN_SUCCESS;
}

static int cleanup(pgsched_run *run)
{
    say((const char *)run->user, "tidy   %-14s (every 3 s)", run->key);
    return PGSCHED_RUN_SUCCESS;
}

static void on_status(void *user, const pgsched_status_event *e)
{
    if (e->new_status == PGSCHED_STATUS_FAILED || e->new_status == PGSCHED_STATUS_CANCELLED ||
        (e->new_status == PGSCHED_STATUS_COMPLETED && strcmp(e->name, "email") != 0))
        say((const char *)user, "status %s/%s: %s -> %s%s", e->name, e->key,
            pgsched_status_string(e->old_status), pgsched_status_string(e->new_status),
            e->remote ? " (seen through a notification)" : "");
}

static void die(const char *what, const pgsched_error *e)
{
    fprintf(stderr, "demo: %s: %s\n", what, e->message);
    exit(1);
}

static pgsched_node *make_node(const char *label, const char *dsn, pgsched_store *shared)
{
    pgsched_config cfg;
    pgsched_node *node;
    pgsched_error e;
    pgsched_job_type t;
    memset(&cfg, 0, sizeof cfg);
    cfg.pg.conninfo = dsn;
    cfg.store = shared;
    cfg.pg.schema = "pgsched_demo";
    cfg.max_concurrent = 3;
    cfg.poll_interval = 5 * PGSCHED_SECOND; /* notifications and due-time wake-ups do the rest */
    cfg.retry_base = 500 * PGSCHED_MILLISECOND;
    cfg.retry_cap = 2 * PGSCHED_SECOND;
    cfg.shutdown_timeout = 2 * PGSCHED_SECOND;
    cfg.on_status = on_status;
    cfg.on_status_user = (void *)label;
    if (pgsched_create(&cfg, &node, &e) != PGSCHED_OK) die("create", &e);

    memset(&t, 0, sizeof t);
    t.user = (void *)label;
    t.name = "report";
    t.handler = report;
    if (pgsched_register(node, &t, &e) != PGSCHED_OK) die("register", &e);
    t.name = "email";
    t.handler = send_email;
    if (pgsched_register(node, &t, &e) != PGSCHED_OK) die("register", &e);
    t.name = "flaky";
    t.handler = flaky;
    t.max_retries = 4;
    if (pgsched_register(node, &t, &e) != PGSCHED_OK) die("register", &e);
    t.name = "tidy";
    t.handler = cleanup;
    t.max_retries = 0;
    if (pgsched_register(node, &t, &e) != PGSCHED_OK) die("register", &e);
    if (pgsched_start(node, &e) != PGSCHED_OK) die("start", &e);
    return node;
}

static void schedule(pgsched_node *node, const char *name, const char *key,
                     pgsched_schedule_kind kind, const char *cron, pgsched_duration every,
                     pgsched_time at, const char *params)
{
    pgsched_job_spec spec;
    pgsched_error e;
    memset(&spec, 0, sizeof spec);
    spec.name = name;
    spec.key = key;
    spec.schedule.kind = kind;
    spec.schedule.cron = cron;
    spec.schedule.every = every;
    spec.schedule.at = at;
    spec.params = params;
    /* A database reused from an earlier demo may still hold a row that is running (that demo
       was killed mid-run): the new schedule then applies when that run ends or is taken back. */
    spec.apply_after_run = 1;
    if (pgsched_schedule_job(node, &spec, &e) != PGSCHED_OK) die("schedule", &e);
}

int main(void)
{
    const char *dsn = getenv("PGSCHED_DSN");
    const char *secs = getenv("DEMO_SECONDS");
    pgsched_store *memory = NULL;
    pgsched_node *a, *b;
    pgsched_error e;
    pgsched_counters ca, cb;
    pgsched_time deadline;
    int i;

    demo_start = pgsched_now();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (!dsn || !*dsn) {
        printf("PGSCHED_DSN is not set (no PostgreSQL server here): using the in-memory store, "
               "shared by both nodes.\n");
        if (pgsched_memory_store_create(NULL, &memory, &e) != PGSCHED_OK) die("memory store", &e);
        dsn = NULL;
    } else {
        char safe[512];
        pgsched_conninfo_redact(dsn, safe, sizeof safe);
        printf("Using PostgreSQL at %s (schema pgsched_demo).\n", safe);
    }
    a = make_node("A", dsn, memory);
    b = make_node("B", dsn, memory);
    printf("Two nodes: A is %.8s, B is %.8s. Scheduling jobs...\n\n", pgsched_node_id(a),
           pgsched_node_id(b));

    /* A recurring cron job with a seconds field, an interval job, a job that fails twice
       before it succeeds, and a burst of one-time emails spread over the next seconds. */
    schedule(a, "report", "every-2-seconds", PGSCHED_SCHEDULE_CRON, "*/2 * * * * *", 0, 0, NULL);
    schedule(a, "tidy", "temp-files", PGSCHED_SCHEDULE_INTERVAL, NULL, 3 * PGSCHED_SECOND, 0, NULL);
    schedule(a, "flaky", "sync-upstream", PGSCHED_SCHEDULE_ONCE, NULL, 0, 0, NULL);
    for (i = 1; i <= 8; i++) {
        char key[32], params[96];
        snprintf(key, sizeof key, "welcome-%d", i);
        snprintf(params, sizeof params, "{\"to\": \"user%d@example.com\", \"template\": \"welcome\"}",
                 i);
        schedule(b, "email", key, PGSCHED_SCHEDULE_ONCE, NULL, 0,
                 pgsched_now() + (pgsched_time)i * 700 * PGSCHED_MILLISECOND, params);
    }

    deadline = pgsched_now() + (secs ? atoi(secs) : 12) * PGSCHED_SECOND;
    while (!stop_requested && pgsched_now() < deadline) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    printf("\n%s: shutting both nodes down.\n", stop_requested ? "Interrupted" : "Time is up");
    if (pgsched_shutdown(a, &e) != PGSCHED_OK) die("shutdown", &e);
    if (pgsched_shutdown(b, &e) != PGSCHED_OK) die("shutdown", &e);
    pgsched_get_counters(a, &ca);
    pgsched_get_counters(b, &cb);
    printf("node A ran %lld jobs (%lld succeeded, %lld failed attempts); node B ran %lld (%lld "
           "succeeded, %lld failed).\n",
           (long long)ca.claimed, (long long)ca.succeeded, (long long)ca.failed,
           (long long)cb.claimed, (long long)cb.succeeded, (long long)cb.failed);
    pgsched_destroy(a);
    pgsched_destroy(b);
    if (memory) pgsched_store_destroy(memory);
    return 0;
}
