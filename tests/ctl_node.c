/* tests/ctl_node.c - a pgsched node for tests/test_pgschedctl.sh to steer.

     ctl_node SECONDS    (PGSCHED_TEST_DSN or PGSCHED_DSN names the database)

   Runs job types ctl_ok (succeeds), ctl_fail (fails with the error "boom <key>") and
   ctl_sleep (runs until it is cancelled, at most 60 s) for SECONDS seconds or until SIGTERM or
   SIGINT, then shuts down. Prints "ready" once the node is started. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int run_ok(pgsched_run *run)
{
    (void)run;
    return PGSCHED_RUN_SUCCESS;
}

static int run_fail(pgsched_run *run)
{
    pgsched_run_set_error(run, "boom %s", run->key);
    return PGSCHED_RUN_FAILURE;
}

static int run_sleep(pgsched_run *run)
{
    pgsched_run_sleep(run, 60 * PGSCHED_SECOND);
    return pgsched_run_cancelled(run) ? PGSCHED_RUN_FAILURE : PGSCHED_RUN_SUCCESS;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        pgsched_handler fn;
    } types[] = {{"ctl_ok", run_ok}, {"ctl_fail", run_fail}, {"ctl_sleep", run_sleep}};
    pgsched_config cfg;
    pgsched_job_type t;
    pgsched_node *node;
    pgsched_error err;
    struct sigaction sa;
    pgsched_time until;
    size_t i;
    const char *dsn = getenv("PGSCHED_TEST_DSN");
    if (!dsn) dsn = getenv("PGSCHED_DSN");
    if (argc != 2 || !dsn) {
        fprintf(stderr, "usage: PGSCHED_TEST_DSN=... ctl_node SECONDS\n");
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    memset(&cfg, 0, sizeof cfg);
    cfg.pg.conninfo = dsn;
    cfg.pg.schema = getenv("PGSCHED_SCHEMA"); /* NULL: public */
    cfg.poll_interval = 100 * PGSCHED_MILLISECOND;
    cfg.retry_base = 100 * PGSCHED_MILLISECOND;
    cfg.shutdown_timeout = 5 * PGSCHED_SECOND;
    if (pgsched_create(&cfg, &node, &err) != PGSCHED_OK) {
        fprintf(stderr, "ctl_node: %s\n", err.message);
        return 1;
    }
    for (i = 0; i < sizeof types / sizeof types[0]; i++) {
        memset(&t, 0, sizeof t);
        t.name = types[i].name;
        t.handler = types[i].fn;
        t.max_retries = PGSCHED_NO_RETRIES;
        if (pgsched_register(node, &t, &err) != PGSCHED_OK) {
            fprintf(stderr, "ctl_node: %s\n", err.message);
            return 1;
        }
    }
    if (pgsched_start(node, &err) != PGSCHED_OK) {
        fprintf(stderr, "ctl_node: %s\n", err.message);
        pgsched_destroy(node);
        return 1;
    }
    printf("ready %s\n", pgsched_node_id(node));
    fflush(stdout);
    until = pgsched_now() + atoi(argv[1]) * PGSCHED_SECOND;
    while (!stop && pgsched_now() < until) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    pgsched_destroy(node);
    return 0;
}
