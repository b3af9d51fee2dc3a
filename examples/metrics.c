/* metrics.c - a node's counters served to Prometheus on http://127.0.0.1:PORT/metrics.

     metrics [SECONDS [PORT]]

   Runs a node with a job type that succeeds and one that fails now and then, and serves
   pgsched_metrics_prometheus() with a few lines of plain sockets. PORT 0 (the default) lets
   the system choose a free port; the address is printed. Stops after SECONDS (default 0:
   until Ctrl-C), then prints the last scrape. Uses the PostgreSQL database in $PGSCHED_DSN,
   or the in-memory store without it.

   Build: cc -std=c99 -I. -I$(pg_config --includedir) examples/metrics.c -lpq -lpthread
   Try:   build/metrics 60 9464 & curl -s http://127.0.0.1:9464/metrics */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int tick(pgsched_run *run)
{
    (void)run;
    return PGSCHED_RUN_SUCCESS;
}

/* Fails every third attempt, so that the failure and retry counters move. */
static int flaky(pgsched_run *run)
{
    static int calls;
    if (__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED) % 3 == 0) {
        pgsched_run_set_error(run, "failed on purpose");
        return PGSCHED_RUN_FAILURE;
    }
    return PGSCHED_RUN_SUCCESS;
}

/* The whole exposition text in a buffer sized by a first call. Free it. */
static char *scrape(pgsched_node *node, size_t *len)
{
    char *buf = NULL;
    size_t need = pgsched_metrics_prometheus(node, NULL, 0);
    /* the text can grow between the calls (a counter gains a digit): size again if so */
    for (;;) {
        char *p = (char *)realloc(buf, need + 1);
        if (!p) {
            free(buf);
            return NULL;
        }
        buf = p;
        *len = pgsched_metrics_prometheus(node, buf, need + 1);
        if (*len <= need) return buf;
        need = *len;
    }
}

/* Answers one HTTP request on `fd`: GET /metrics, else 404. */
static void serve(int fd, pgsched_node *node)
{
    char req[2048], head[256];
    size_t got = 0, len = 0;
    char *body = NULL;
    const char *status = "404 Not Found", *type = "text/plain", *text = "not found: try /metrics\n";
    struct pollfd pfd;
    pfd.fd = fd;
    pfd.events = POLLIN;
    /* read the request head (a client that sends nothing gets 1 s) */
    while (got < sizeof req - 1 && poll(&pfd, 1, 1000) == 1) {
        ssize_t k = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
    }
    req[got] = '\0';
    if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
        body = scrape(node, &len);
        if (body) {
            status = "200 OK";
            type = "text/plain; version=0.0.4; charset=utf-8";
            text = body;
        }
    }
    if (!body) len = strlen(text);
    snprintf(head, sizeof head,
             "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             status, type, len);
    if (send(fd, head, strlen(head), MSG_NOSIGNAL) > 0) {
        size_t off = 0;
        while (off < len) {
            ssize_t k = send(fd, text + off, len - off, MSG_NOSIGNAL);
            if (k <= 0) break;
            off += (size_t)k;
        }
    }
    free(body);
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 0, port = argc > 2 ? atoi(argv[2]) : 0, lfd, one = 1;
    const char *dsn = getenv("PGSCHED_DSN");
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;
    pgsched_store *memory = NULL;
    pgsched_config cfg;
    pgsched_job_type type;
    pgsched_job_spec spec;
    pgsched_node *node;
    pgsched_error err;
    struct sigaction sa;
    pgsched_time until;
    char key[32], *last;
    size_t len;
    int i;

    if (argc > 3 || seconds < 0 || port < 0 || port > 65535) {
        fprintf(stderr, "usage: metrics [SECONDS [PORT]]\n");
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* the node */
    memset(&cfg, 0, sizeof cfg);
    if (dsn && *dsn) {
        cfg.pg.conninfo = dsn;
        cfg.pg.prefix = "metrics_example_"; /* tables of its own, beside an application's */
    } else {
        printf("PGSCHED_DSN is not set: using the in-memory store\n");
        if (pgsched_memory_store_create(NULL, &memory, &err) != PGSCHED_OK) goto fail_early;
        cfg.store = memory;
    }
    cfg.poll_interval = 100 * PGSCHED_MILLISECOND;
    cfg.retry_base = 100 * PGSCHED_MILLISECOND;
    if (pgsched_create(&cfg, &node, &err) != PGSCHED_OK) goto fail_early;
    memset(&type, 0, sizeof type);
    type.name = "tick";
    type.handler = tick;
    if (pgsched_register(node, &type, &err) != PGSCHED_OK) goto fail;
    type.name = "flaky";
    type.handler = flaky;
    if (pgsched_register(node, &type, &err) != PGSCHED_OK) goto fail;
    if (pgsched_start(node, &err) != PGSCHED_OK) goto fail;
    memset(&spec, 0, sizeof spec);
    spec.name = "tick";
    spec.key = "every-200ms";
    spec.schedule.kind = PGSCHED_SCHEDULE_INTERVAL;
    spec.schedule.every = 200 * PGSCHED_MILLISECOND;
    if (pgsched_schedule_job(node, &spec, &err) != PGSCHED_OK) goto fail;
    spec.name = "flaky";
    spec.schedule.kind = PGSCHED_SCHEDULE_ONCE;
    for (i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "job-%d", i);
        spec.key = key;
        if (pgsched_schedule_job(node, &spec, &err) != PGSCHED_OK) goto fail;
    }

    /* the endpoint: loopback only */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)port);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("metrics: 127.0.0.1");
        pgsched_destroy(node);
        pgsched_store_destroy(memory);
        return 1;
    }
    if (seconds)
        printf("serving http://127.0.0.1:%d/metrics for %d s (Ctrl-C stops it sooner)\n",
               ntohs(addr.sin_port), seconds);
    else
        printf("serving http://127.0.0.1:%d/metrics until Ctrl-C\n", ntohs(addr.sin_port));
    fflush(stdout);

    until = pgsched_now() + (pgsched_duration)seconds * PGSCHED_SECOND;
    while (!stop && (seconds == 0 || pgsched_now() < until)) {
        struct pollfd pfd;
        pfd.fd = lfd;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, 100) == 1) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                serve(fd, node);
                close(fd);
            }
        }
    }
    close(lfd);

    last = scrape(node, &len);
    printf("-- the last scrape --\n%s", last ? last : "(out of memory)\n");
    free(last);
    pgsched_destroy(node);
    pgsched_store_destroy(memory);
    return 0;

fail:
    pgsched_destroy(node);
fail_early:
    fprintf(stderr, "metrics: %s\n", err.message);
    pgsched_store_destroy(memory);
    return 1;
}
