/* custom_store.c - how to write a store of your own (SPEC §8).

   A store is a struct whose first member is a `pgsched_store`, i.e. a pointer to a table of
   methods. This example writes a "tracing" store: it implements every method by timing the
   call and forwarding it to another store (the PostgreSQL store on $PGSCHED_DSN, else the
   in-memory one). A node then runs a few jobs through it, and at the end the example prints
   how often the engine called each method and how long the calls took. It passes the store
   conformance harness, on both inner stores (tests/test_custom_store.c; README "Writing a
   store"); the contract it keeps is in pgsched.h under [pgsched: store author API].

   Points to copy into a real store:
   - `version` is PGSCHED_STORE_VERSION, the table version the store was written for;
   - methods receive arguments already checked by the pgsched_store_* wrappers (names, keys,
     JSON, pointers), so they only do the storage work;
   - every time comparison uses the store's own clock (`now`), never the caller's;
   - rows handed back go into the caller's pgsched_job_list with pgsched_job_list_push, which
     copies them, so the store keeps ownership of its own memory.

   Build: cc -std=c99 -I. -I$(pg_config --includedir) examples/custom_store.c -lpq -lpthread */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

enum { M_SETUP, M_NOW, M_SCHEDULE, M_CLAIM, M_HEARTBEAT, M_FINISH, M_TAKE_BACK, M_CANCEL,
       M_TRIGGER, M_REMOVE, M_GET, M_LIST, M_HISTORY, M_NEXT_DUE, M_NODE_REGISTER,
       M_NODE_UNREGISTER, M_CLEANUP, M_LISTEN_OPEN, M_LISTEN_WAIT, M_SCHEDULE_MANY,
       M_SCHEDULE_MANY_TX, M_COUNT };

static const char *const method_names[M_COUNT] = {
    "setup", "now", "schedule", "claim", "heartbeat", "finish", "take_back", "cancel",
    "trigger", "remove", "get", "list", "history", "next_due", "node_register",
    "node_unregister", "cleanup", "listen_open", "listen_wait", "schedule_many",
    "schedule_many_tx"};

typedef struct tracing_store {
    pgsched_store base; /* first: a tracing_store * is a pgsched_store * */
    pgsched_store *inner;
    pthread_mutex_t mu;
    long calls[M_COUNT];
    double ms[M_COUNT];
} tracing_store;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void record(tracing_store *t, int m, double start)
{
    double d = now_ms() - start;
    pthread_mutex_lock(&t->mu);
    t->calls[m]++;
    t->ms[m] += d;
    pthread_mutex_unlock(&t->mu);
}

/* Each method: start the clock, forward to the inner store's method, record. */
#define T(s) ((tracing_store *)(s))
#define IN(s) (T(s)->inner)
#define FORWARD(m, call)                                                                          \
    do {                                                                                          \
        double t0_ = now_ms();                                                                    \
        pgsched_result r_ = IN(s)->methods->call;                                                 \
        record(T(s), m, t0_);                                                                     \
        return r_;                                                                                \
    } while (0)

static pgsched_result t_setup(pgsched_store *s, pgsched_error *err)
{
    FORWARD(M_SETUP, setup(IN(s), err));
}
static void t_destroy(pgsched_store *s)
{
    pthread_mutex_destroy(&T(s)->mu);
    free(s); /* the inner store belongs to whoever created it */
}
static pgsched_result t_now(pgsched_store *s, pgsched_time *now, pgsched_error *err)
{
    FORWARD(M_NOW, now(IN(s), now, err));
}
static pgsched_result t_schedule(pgsched_store *s, const pgsched_schedule_request *req,
                                 void *conn, pgsched_schedule_info *out, pgsched_error *err)
{
    FORWARD(M_SCHEDULE, schedule(IN(s), req, conn, out, err));
}
static pgsched_result t_claim(pgsched_store *s, const pgsched_claim_request *req,
                              pgsched_job_list *out, pgsched_claim_info *info,
                              pgsched_error *err)
{
    FORWARD(M_CLAIM, claim(IN(s), req, out, info, err));
}
static pgsched_result t_heartbeat(pgsched_store *s, const char *node, const pgsched_lease *l,
                                  size_t n, int renew, pgsched_lease_state *st,
                                  pgsched_time *now, pgsched_error *err)
{
    FORWARD(M_HEARTBEAT, heartbeat(IN(s), node, l, n, renew, st, now, err));
}
static pgsched_result t_finish(pgsched_store *s, const pgsched_finish_request *o, size_t n,
                               pgsched_finish_info *res, pgsched_error *err)
{
    FORWARD(M_FINISH, finish(IN(s), o, n, res, err));
}
static pgsched_result t_take_back(pgsched_store *s, const char *node, pgsched_duration stall,
                                  int max, pgsched_job_list *out, pgsched_take_back_info *info,
                                  pgsched_error *err)
{
    FORWARD(M_TAKE_BACK, take_back(IN(s), node, stall, max, out, info, err));
}
static pgsched_result t_cancel(pgsched_store *s, const char *name, const char *key,
                               const char *node, pgsched_change_info *out, pgsched_error *err)
{
    FORWARD(M_CANCEL, cancel(IN(s), name, key, node, out, err));
}
static pgsched_result t_trigger(pgsched_store *s, const char *name, const char *key,
                                const char *node, pgsched_change_info *out, pgsched_error *err)
{
    FORWARD(M_TRIGGER, trigger(IN(s), name, key, node, out, err));
}
static pgsched_result t_remove(pgsched_store *s, const char *name, const char *key,
                               const char *node, pgsched_change_info *out, pgsched_error *err)
{
    FORWARD(M_REMOVE, remove(IN(s), name, key, node, out, err));
}
static pgsched_result t_get(pgsched_store *s, const char *name, const char *key,
                            pgsched_job_list *out, pgsched_error *err)
{
    FORWARD(M_GET, get(IN(s), name, key, out, err));
}
static pgsched_result t_list(pgsched_store *s, const pgsched_list_filter *f,
                             pgsched_job_list *out, pgsched_error *err)
{
    FORWARD(M_LIST, list(IN(s), f, out, err));
}
static pgsched_result t_history(pgsched_store *s, const char *name, const char *key,
                                size_t limit, pgsched_run_list *out, pgsched_error *err)
{
    FORWARD(M_HISTORY, history(IN(s), name, key, limit, out, err));
}
static pgsched_result t_next_due(pgsched_store *s, const char *const *names, size_t n,
                                 pgsched_time *next, pgsched_time *now, pgsched_error *err)
{
    FORWARD(M_NEXT_DUE, next_due(IN(s), names, n, next, now, err));
}
static pgsched_result t_node_register(pgsched_store *s, const pgsched_node_record *rec,
                                      pgsched_error *err)
{
    FORWARD(M_NODE_REGISTER, node_register(IN(s), rec, err));
}
static pgsched_result t_node_unregister(pgsched_store *s, const char *id, pgsched_error *err)
{
    FORWARD(M_NODE_UNREGISTER, node_unregister(IN(s), id, err));
}
static pgsched_result t_cleanup(pgsched_store *s, const pgsched_cleanup_request *req,
                                pgsched_cleanup_info *out, pgsched_error *err)
{
    FORWARD(M_CLEANUP, cleanup(IN(s), req, out, err));
}
static pgsched_result t_listen_open(pgsched_store *s, pgsched_listener **out, pgsched_error *err)
{
    FORWARD(M_LISTEN_OPEN, listen_open(IN(s), out, err));
}
static pgsched_result t_listen_wait(pgsched_store *s, pgsched_listener *l, pgsched_duration t,
                                    pgsched_event *ev, size_t cap, size_t *count,
                                    pgsched_error *err)
{
    FORWARD(M_LISTEN_WAIT, listen_wait(IN(s), l, t, ev, cap, count, err));
}
static void t_listen_wake(pgsched_store *s, pgsched_listener *l)
{
    IN(s)->methods->listen_wake(IN(s), l);
}
static void t_listen_close(pgsched_store *s, pgsched_listener *l)
{
    IN(s)->methods->listen_close(IN(s), l);
}

/* Version 2 methods are optional: forward them when the inner store has them. Without
   schedule_many the engine would call schedule once per job; without schedule_many_tx it could
   not schedule in the caller's transaction (the PostgreSQL store has both). */
static pgsched_result t_schedule_many(pgsched_store *s, const pgsched_schedule_request *reqs,
                                      size_t count, pgsched_schedule_info *outs,
                                      pgsched_result *results, pgsched_error *err)
{
    size_t i;
    if (IN(s)->methods->version >= 2 && IN(s)->methods->schedule_many)
        FORWARD(M_SCHEDULE_MANY, schedule_many(IN(s), reqs, count, outs, results, err));
    for (i = 0; i < count; i++)
        results[i] = t_schedule(s, &reqs[i], NULL, &outs[i], NULL);
    return PGSCHED_OK;
}
static pgsched_result t_schedule_many_tx(pgsched_store *s, void *conn,
                                         const pgsched_schedule_request *reqs, size_t count,
                                         pgsched_schedule_info *outs, pgsched_result *results,
                                         pgsched_error *err)
{
    if (IN(s)->methods->version >= 2 && IN(s)->methods->schedule_many_tx)
        FORWARD(M_SCHEDULE_MANY_TX,
                schedule_many_tx(IN(s), conn, reqs, count, outs, results, err));
    snprintf(err->message, sizeof err->message, "the %s store cannot join a transaction",
             IN(s)->methods->name);
    return err->code = PGSCHED_ERR_UNSUPPORTED;
}

/* The table, in the order of pgsched_store_methods. */
static const pgsched_store_methods tracing_methods = {
    PGSCHED_STORE_VERSION, "tracing",
    t_setup, t_destroy, t_now, t_schedule, t_claim, t_heartbeat, t_finish, t_take_back,
    t_cancel, t_trigger, t_remove, t_get, t_list, t_history, t_next_due, t_node_register,
    t_node_unregister, t_cleanup, t_listen_open, t_listen_wait, t_listen_wake, t_listen_close,
    t_schedule_many, t_schedule_many_tx,
};

static pgsched_store *tracing_store_create(pgsched_store *inner)
{
    tracing_store *t = (tracing_store *)calloc(1, sizeof *t);
    if (!t) return NULL;
    t->base.methods = &tracing_methods;
    t->inner = inner;
    pthread_mutex_init(&t->mu, NULL);
    return &t->base;
}

/* ---- a node on the tracing store ----
   tests/test_custom_store.c includes this file for the store alone (CUSTOM_STORE_NO_MAIN) and
   runs the store conformance harness on it (tests/store/harness.inc): every rule of the
   contract, scheduling in the caller's transaction included, over the PostgreSQL store and
   over the in-memory one. */
#ifndef CUSTOM_STORE_NO_MAIN

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int done;

static int greet(pgsched_run *run)
{
    printf("ran %s/%s with %s\n", run->name, run->key, run->params);
    pthread_mutex_lock(&done_mu);
    done++;
    pthread_cond_signal(&done_cv);
    pthread_mutex_unlock(&done_mu);
    return PGSCHED_RUN_SUCCESS;
}

int main(void)
{
    pgsched_store *inner, *traced;
    const char *dsn = getenv("PGSCHED_DSN");
    pgsched_node *node;
    pgsched_config cfg;
    pgsched_job_type type;
    pgsched_job_spec spec;
    pgsched_error e;
    tracing_store *t;
    int i;

    if (dsn && dsn[0]) {
        pgsched_pg_config pg;
        memset(&pg, 0, sizeof pg);
        pg.conninfo = dsn;
        if (pgsched_pg_store_create(&pg, &inner, &e) != PGSCHED_OK)
            return fprintf(stderr, "%s\n", e.message), 1;
    } else if (pgsched_memory_store_create(NULL, &inner, &e) != PGSCHED_OK) {
        return fprintf(stderr, "%s\n", e.message), 1;
    }
    traced = tracing_store_create(inner);
    if (!traced) return 1;

    memset(&cfg, 0, sizeof cfg);
    cfg.store = traced;
    if (pgsched_create(&cfg, &node, &e) != PGSCHED_OK) return fprintf(stderr, "%s\n", e.message), 1;
    memset(&type, 0, sizeof type);
    type.name = "greet";
    type.handler = greet;
    if (pgsched_register(node, &type, &e) || pgsched_start(node, &e))
        return fprintf(stderr, "%s\n", e.message), 1;

    for (i = 0; i < 5; i++) {
        char key[16], params[64];
        snprintf(key, sizeof key, "g%d", i);
        snprintf(params, sizeof params, "{\"who\": \"guest %d\"}", i);
        memset(&spec, 0, sizeof spec);
        spec.name = "greet";
        spec.key = key;
        spec.params = params;
        spec.schedule.kind = PGSCHED_SCHEDULE_ONCE;
        if (pgsched_schedule_job(node, &spec, &e) != PGSCHED_OK)
            return fprintf(stderr, "%s\n", e.message), 1;
    }
    pthread_mutex_lock(&done_mu);
    while (done < 5) pthread_cond_wait(&done_cv, &done_mu);
    pthread_mutex_unlock(&done_mu);
    pgsched_destroy(node);

    t = (tracing_store *)traced;
    printf("\n%-16s %6s %10s\n", "method", "calls", "total ms");
    for (i = 0; i < M_COUNT; i++)
        if (t->calls[i]) printf("%-16s %6ld %10.3f\n", method_names[i], t->calls[i], t->ms[i]);
    pgsched_store_destroy(traced);
    pgsched_store_destroy(inner);
    return 0;
}
#endif /* CUSTOM_STORE_NO_MAIN */
