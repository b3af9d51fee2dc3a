/* store_suite_events.h - listeners: every change through any handle of a store reaches every
   open listener, in version order per instance. PostgreSQL delivers after commit, so every
   expectation waits for its event against a deadline. */
#ifndef STORE_SUITE_EVENTS_H
#define STORE_SUITE_EVENTS_H

/* Waits for the CHANGE event of (name, key) at exactly `version` and checks it. */
static void expect_change(fixture *fx, pgsched_store *s, pgsched_listener *l, evlog *g,
                          const char *name, const char *key, int64_t version,
                          pgsched_status old_status, pgsched_status new_status,
                          pgsched_time next_run, const char *node)
{
    const pgsched_event *e = evlog_await(fx, s, l, g, PGSCHED_EVENT_CHANGE, name, key, version);
    if (!e)
        fail_msg("no CHANGE event for %s/%s at version %lld (%u events seen)", name, key,
                 (long long)version, (unsigned)g->n);
    if (e->version != version)
        fail_msg("CHANGE event for %s/%s version %lld missed; next one seen is %lld", name, key,
                 (long long)version, (long long)e->version);
    assert_int_equal(e->old_status, old_status);
    assert_int_equal(e->new_status, new_status);
    if (new_status == PGSCHED_PENDING) assert_int_equal(e->next_run, next_run);
    assert_string_equal(e->node, node);
}

static void expect_cancel(fixture *fx, pgsched_store *s, pgsched_listener *l, evlog *g,
                          const char *name, const char *key, int64_t version, const char *owner,
                          const char *node)
{
    const pgsched_event *e = evlog_await(fx, s, l, g, PGSCHED_EVENT_CANCEL, name, key, 0);
    if (!e)
        fail_msg("no CANCEL event for %s/%s (the request made version %lld)", name, key,
                 (long long)version);
    assert_string_equal(e->owner, owner);
    assert_string_equal(e->node, node);
}

STORE_TEST(a_listener_wait_times_out_when_nothing_happens)
{
    pgsched_listener *l = fx_listen(fx, fx->store);
    pgsched_event ev[4];
    size_t count = 99;
    pgsched_time t0 = mono_us(), elapsed;
    OK(pgsched_store_listen_wait(fx->store, l, 150 * PGSCHED_MILLISECOND, ev, 4, &count, E));
    elapsed = mono_us() - t0;
    assert_int_equal(count, 0);
    assert_true(elapsed >= 100 * PGSCHED_MILLISECOND);
    assert_true(elapsed < 5 * PGSCHED_SECOND);
}

typedef struct wake_ctx {
    pgsched_store *s;
    pgsched_listener *l;
    pthread_mutex_t mu;
    int done;
    pgsched_result rc;
    size_t count;
    pgsched_duration elapsed;
} wake_ctx;

static void *wake_waiter(void *arg)
{
    wake_ctx *c = (wake_ctx *)arg;
    pgsched_event ev[4];
    size_t count = 99;
    pgsched_time t0 = mono_us();
    pgsched_result rc = pgsched_store_listen_wait(c->s, c->l, 30 * PGSCHED_SECOND, ev, 4, &count,
                                                  NULL);
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    c->count = count;
    c->elapsed = mono_us() - t0;
    c->done = 1;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

STORE_TEST(listen_wake_ends_a_wait_early)
{
    wake_ctx c;
    pthread_t th;
    pgsched_time deadline = mono_us() + 10 * PGSCHED_SECOND;
    int done = 0;
    memset(&c, 0, sizeof c);
    c.s = fx->store;
    c.l = fx_listen(fx, fx->store);
    pthread_mutex_init(&c.mu, NULL);
    assert_int_equal(pthread_create(&th, NULL, wake_waiter, &c), 0);
    /* a wake before the wait starts may be absorbed, so keep waking until it returns */
    while (!done && mono_us() < deadline) {
        sleep_us(20 * PGSCHED_MILLISECOND);
        pgsched_store_listen_wake(fx->store, c.l);
        pthread_mutex_lock(&c.mu);
        done = c.done;
        pthread_mutex_unlock(&c.mu);
    }
    /* joined before any verdict: the waiter must not outlive the listener */
    pthread_join(th, NULL);
    pthread_mutex_destroy(&c.mu);
    if (!done) fail_msg("listen_wake did not end a 30 s wait within 10 s");
    assert_int_equal(c.rc, PGSCHED_OK);
    assert_int_equal(c.count, 0);
    assert_true(c.elapsed < 10 * PGSCHED_SECOND);
}

STORE_TEST(every_change_reaches_every_listener)
{
    pgsched_duration stall = 2 * fx->unit;
    pgsched_store *s2 = fx_other_handle(fx);
    pgsched_store *hs[2];
    pgsched_listener *ls[2];
    evlog *logs[2];
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    pgsched_change_outcome co;
    pgsched_finish_result fr;
    pgsched_outcome oc;
    const pgsched_job *j, *t;
    int i;

    logs[0] = fx_evlog(fx);
    logs[1] = fx_evlog(fx);
    hs[0] = fx->store;
    hs[1] = s2;
    ls[0] = fx_listen(fx, fx->store);
    ls[1] = fx_listen(fx, s2);

    req = once_req("ev", "a", fx_now(fx) - fx->unit);
    req.kind = PGSCHED_INTERVAL;
    req.every = PGSCHED_HOUR;
    req.node_id = "n-sched";
    OK(pgsched_store_schedule(fx->store, &req, &so, E));
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "a", so.version, PGSCHED_STATUS_NONE,
                      PGSCHED_PENDING, so.next_run, "n-sched");

    j = &claim_of(fx, s2, "n-work", "ev", 1, NULL)->items[0];
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "a", j->version, PGSCHED_PENDING,
                      PGSCHED_RUNNING, 0, "n-work");

    OK(pgsched_store_cancel(fx->store, "ev", "a", "n-admin", &co, E));
    for (i = 0; i < 2; i++)
        expect_cancel(fx, hs[i], ls[i], logs[i], "ev", "a", co.version, "n-work", "n-admin");

    oc = outcome_of(j, PGSCHED_OUTCOME_CANCELLED, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
    memset(&fr, 0, sizeof fr);
    OK(pgsched_store_finish(s2, &oc, 1, &fr, E));
    assert_int_equal(fr.code, PGSCHED_OK);
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "a", fr.version, PGSCHED_RUNNING,
                      PGSCHED_PENDING, fr.next_run, "n-work");

    OK(pgsched_store_trigger(s2, "ev", "a", "n-admin", &co, E));
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "a", co.version, PGSCHED_PENDING,
                      PGSCHED_PENDING, co.next_run, "n-admin");

    j = claim_one(fx, "n-work", "ev", "a");
    fx_wait_until(fx, j->heartbeat_at + stall + 1);
    t = &take_back(fx, "n-reaper", stall, 1)->items[0];
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "a", t->version, PGSCHED_RUNNING,
                      PGSCHED_RUNNING, 0, "n-reaper");
    fr = finish_ok(fx, t, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "a", fr.version, PGSCHED_RUNNING,
                      PGSCHED_PENDING, fr.next_run, "n-reaper");

    so = schedule_once(fx, "ev", "b", fx_now(fx) + PGSCHED_HOUR);
    OK(pgsched_store_cancel(s2, "ev", "b", "n-admin", &co, E));
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "b", co.version, PGSCHED_PENDING,
                      PGSCHED_CANCELLED, 0, "n-admin");

    OK(pgsched_store_remove(fx->store, "ev", "a", "n-admin", &co, E));
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "a", co.version, PGSCHED_PENDING,
                      PGSCHED_STATUS_NONE, 0, "n-admin");

    /* a deferred removal asks the running node to stop, and the row goes when the run ends */
    schedule_once(fx, "ev", "c", fx_now(fx) - fx->unit);
    j = claim_one(fx, "n-work", "ev", "c");
    OK(pgsched_store_remove(s2, "ev", "c", "n-admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_REMOVE_DEFERRED);
    for (i = 0; i < 2; i++)
        expect_cancel(fx, hs[i], ls[i], logs[i], "ev", "c", co.version, "n-work", "n-admin");
    fr = finish_ok(fx, j, PGSCHED_OUTCOME_CANCELLED, PGSCHED_COMPLETED, 0);
    for (i = 0; i < 2; i++)
        expect_change(fx, hs[i], ls[i], logs[i], "ev", "c", fr.version, PGSCHED_RUNNING,
                      PGSCHED_STATUS_NONE, 0, "n-work");

}

static int evlog_has_exact(const evlog *g, const char *name, const char *key, int64_t version)
{
    size_t i;
    for (i = 0; i < g->n; i++)
        if (g->ev[i].kind == PGSCHED_EVENT_CHANGE && g->ev[i].version == version &&
            strcmp(g->ev[i].name, name) == 0 && strcmp(g->ev[i].key, key) == 0)
            return 1;
    return 0;
}

static int evlog_has_resync(const evlog *g)
{
    size_t i;
    for (i = 0; i < g->n; i++)
        if (g->ev[i].kind == PGSCHED_EVENT_RESYNC) return 1;
    return 0;
}

/* Checks per instance that versions only grow in arrival order; returns nonzero when a
   RESYNC was among the events. */
static int assert_version_order(const evlog *g)
{
    size_t i, k;
    int resync = 0;
    for (i = 0; i < g->n; i++) {
        if (g->ev[i].kind == PGSCHED_EVENT_RESYNC) {
            resync = 1;
            continue;
        }
        for (k = i + 1; k < g->n; k++) {
            if (g->ev[k].kind == PGSCHED_EVENT_RESYNC) continue;
            if (strcmp(g->ev[k].name, g->ev[i].name) || strcmp(g->ev[k].key, g->ev[i].key))
                continue;
            if (g->ev[k].version < g->ev[i].version ||
                (g->ev[k].version == g->ev[i].version && g->ev[k].kind == g->ev[i].kind))
                fail_msg("%s/%s: event version %lld arrived after %lld", g->ev[i].name,
                         g->ev[i].key, (long long)g->ev[k].version, (long long)g->ev[i].version);
            break; /* only the next event of the same instance needs comparing */
        }
    }
    return resync;
}

enum { ORDER_THREADS = 2, ORDER_OPS = 100, ORDER_ROWS = 4 };

typedef struct order_ctx {
    fixture *fx;
    pgsched_store *s;
    int id;
    pgsched_time base;
    int64_t versions[ORDER_OPS];
    int rows[ORDER_OPS];
    int failures;
    char message[PGSCHED_ERROR_MAX];
} order_ctx;

static void *order_worker(void *arg)
{
    order_ctx *c = (order_ctx *)arg;
    char key[32], node[16];
    int i;
    snprintf(node, sizeof node, "order-%d", c->id);
    for (i = 0; i < ORDER_OPS; i++) {
        pgsched_schedule_request req;
        pgsched_schedule_outcome so;
        pgsched_error e;
        int row = (i * 3 + c->id) % ORDER_ROWS;
        snprintf(key, sizeof key, "k%d", row);
        req = once_req("ord", key, c->base + (pgsched_time)(ORDER_OPS - i) * PGSCHED_SECOND);
        req.node_id = node;
        if (pgsched_store_schedule(c->s, &req, &so, &e) != PGSCHED_OK) {
            c->failures++;
            snprintf(c->message, sizeof c->message, "%s", e.message);
            c->versions[i] = -1;
        } else {
            c->versions[i] = so.version;
        }
        c->rows[i] = row;
    }
    return NULL;
}

STORE_TEST(events_arrive_in_version_order_per_instance)
{
    order_ctx ctx[ORDER_THREADS];
    pthread_t th[ORDER_THREADS];
    pgsched_listener *l = fx_listen(fx, fx->store);
    evlog *g = fx_evlog(fx);
    int64_t last[ORDER_ROWS];
    pgsched_time deadline;
    int i, k, resync;
    char key[32];

    memset(last, 0, sizeof last);
    for (i = 0; i < ORDER_THREADS; i++) {
        memset(&ctx[i], 0, sizeof ctx[i]);
        ctx[i].fx = fx;
        ctx[i].s = fx_other_handle(fx);
        ctx[i].id = i;
        ctx[i].base = fx_now(fx) + PGSCHED_HOUR;
    }
    for (i = 0; i < ORDER_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, order_worker, &ctx[i]), 0);
    /* read while the changes happen */
    for (k = 0; k < 5; k++) evlog_wait(fx, fx->store, l, g, 10 * PGSCHED_MILLISECOND);
    for (i = 0; i < ORDER_THREADS; i++) pthread_join(th[i], NULL);
    for (i = 0; i < ORDER_THREADS; i++) {
        if (ctx[i].failures) fail_msg("a schedule call failed: %s", ctx[i].message);
        for (k = 0; k < ORDER_OPS; k++)
            if (ctx[i].versions[k] > last[ctx[i].rows[k]])
                last[ctx[i].rows[k]] = ctx[i].versions[k];
    }
    deadline = mono_us() + 10 * PGSCHED_SECOND;
    for (k = 0; k < ORDER_ROWS; k++) {
        snprintf(key, sizeof key, "k%d", k);
        while (!evlog_find(g, PGSCHED_EVENT_CHANGE, "ord", key, last[k]) &&
               !evlog_has_resync(g) && mono_us() < deadline)
            evlog_wait(fx, fx->store, l, g, 100 * PGSCHED_MILLISECOND);
    }
    resync = assert_version_order(g);
    if (!resync) {
        /* nothing was dropped, so every change is there */
        for (i = 0; i < ORDER_THREADS; i++)
            for (k = 0; k < ORDER_OPS; k++) {
                snprintf(key, sizeof key, "k%d", ctx[i].rows[k]);
                if (!evlog_has_exact(g, "ord", key, ctx[i].versions[k]))
                    fail_msg("no event for ord/%s version %lld", key,
                             (long long)ctx[i].versions[k]);
            }
    }
}

STORE_TEST(a_listener_that_falls_behind_gets_every_event_or_a_resync)
{
    enum { FLOOD = 3000 };
    pgsched_listener *l = fx_listen(fx, fx->store);
    static int64_t versions[FLOOD];
    evlog *g = fx_evlog(fx);
    char key[32];
    size_t i, found = 0;
    int resync;
    for (i = 0; i < FLOOD; i++) {
        snprintf(key, sizeof key, "k%05u", (unsigned)i);
        versions[i] = schedule_once(fx, "flood", key, fx_now(fx) + PGSCHED_HOUR).version;
    }
    snprintf(key, sizeof key, "k%05u", (unsigned)(FLOOD - 1));
    {
        pgsched_time deadline = mono_us() + 20 * PGSCHED_SECOND;
        while (!evlog_find(g, PGSCHED_EVENT_CHANGE, "flood", key, versions[FLOOD - 1]) &&
               mono_us() < deadline)
            evlog_wait(fx, fx->store, l, g, 100 * PGSCHED_MILLISECOND);
    }
    resync = assert_version_order(g);
    for (i = 0; i < FLOOD; i++) {
        snprintf(key, sizeof key, "k%05u", (unsigned)i);
        if (evlog_has_exact(g, "flood", key, versions[i])) found++;
    }
    if (found != FLOOD && !resync)
        fail_msg("%u of %u events arrived and no RESYNC said some were dropped",
                 (unsigned)found, (unsigned)FLOOD);
    /* the listener still works afterwards */
    {
        pgsched_schedule_outcome so = schedule_once(fx, "flood", "after", fx_now(fx) + PGSCHED_HOUR);
        evlog *g2 = fx_evlog(fx);
        if (!evlog_await(fx, fx->store, l, g2, PGSCHED_EVENT_CHANGE, "flood", "after",
                         so.version))
            fail_msg("the listener heard nothing after catching up");
    }
}

STORE_TEST(closing_one_listener_leaves_the_others_listening)
{
    pgsched_listener *a = fx_listen(fx, fx->store);
    pgsched_store *bs = fx_other_handle(fx);
    pgsched_listener *b = fx_listen(fx, bs);
    pgsched_schedule_outcome so;
    evlog *g = fx_evlog(fx);
    fx_unlisten(fx, a);
    so = schedule_once(fx, "close", "k", fx_now(fx) + PGSCHED_HOUR);
    expect_change(fx, bs, b, g, "close", "k", so.version, PGSCHED_STATUS_NONE, PGSCHED_PENDING,
                  so.next_run, "scheduler");
}

/* ---- memory use (the memory store) ---------------------------------------------------- */

/* An allocator that counts the bytes it has handed out and not yet been given back. */
typedef struct counting_allocator {
    pthread_mutex_t mu;
    size_t bytes;
    pgsched_allocator a;
} counting_allocator;

/* The block's size sits in front of it, in a slot aligned for anything. */
typedef union counted_header {
    size_t size;
    long double align_ld_;
    long long align_ll_;
    void *align_p_;
} counted_header;

static void *counted_malloc(size_t size, void *user)
{
    counting_allocator *c = (counting_allocator *)user;
    counted_header *h = (counted_header *)malloc(sizeof *h + size);
    if (!h) return NULL;
    h->size = size;
    pthread_mutex_lock(&c->mu);
    c->bytes += size;
    pthread_mutex_unlock(&c->mu);
    return h + 1;
}

static void counted_free(void *p, void *user)
{
    counting_allocator *c = (counting_allocator *)user;
    counted_header *h;
    if (!p) return;
    h = (counted_header *)p - 1;
    pthread_mutex_lock(&c->mu);
    c->bytes -= h->size;
    pthread_mutex_unlock(&c->mu);
    free(h);
}

static void *counted_realloc(void *p, size_t size, void *user)
{
    counting_allocator *c = (counting_allocator *)user;
    counted_header *h, *nh;
    size_t old;
    if (!p) return counted_malloc(size, user);
    h = (counted_header *)p - 1;
    old = h->size;
    nh = (counted_header *)realloc(h, sizeof *nh + size);
    if (!nh) return NULL;
    nh->size = size;
    pthread_mutex_lock(&c->mu);
    c->bytes = c->bytes - old + size;
    pthread_mutex_unlock(&c->mu);
    return nh + 1;
}

static size_t counted_bytes(counting_allocator *c)
{
    size_t n;
    pthread_mutex_lock(&c->mu);
    n = c->bytes;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* A memory store on the fixture's clock whose every allocation `c` counts (`c` must outlive
   the test: the store is destroyed at teardown). */
static pgsched_store *fx_counted_memory_store(fixture *fx, counting_allocator *c)
{
    pgsched_memory_config cfg;
    pgsched_store *s = NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->bytes = 0;
    c->a.malloc_fn = counted_malloc;
    c->a.realloc_fn = counted_realloc;
    c->a.free_fn = counted_free;
    c->a.user = c;
    memset(&cfg, 0, sizeof cfg);
    cfg.clock = fx_memory_clock;
    cfg.clock_user = fx;
    cfg.allocator = &c->a;
    OK(pgsched_memory_store_create(&cfg, &s, E));
    fx_keep_store(fx, s);
    OK(pgsched_store_setup(s, E));
    return s;
}

STORE_TEST(a_listeners_queue_shrinks_back_once_a_burst_is_drained)
{
    /* A listener that did not wait during a burst holds the burst's events (up to its cap);
       once it has read them, that memory goes back. Measured against a twin store that
       holds the same rows without a listener. */
    enum { BURST = 5000 };
    static counting_allocator with, twin;
    pgsched_store *s = fx_counted_memory_store(fx, &with);
    pgsched_store *t = fx_counted_memory_store(fx, &twin);
    pgsched_listener *l;
    long long before_open, opened, peak, drained, twin_before, twin_rows, listener_now;
    size_t i, count;
    pgsched_event buf[64];
    char key[32];
    int reads = 0;

    before_open = (long long)counted_bytes(&with);
    l = fx_listen(fx, s);
    opened = (long long)counted_bytes(&with);
    twin_before = (long long)counted_bytes(&twin);
    for (i = 0; i < BURST; i++) {
        pgsched_schedule_request req;
        pgsched_schedule_outcome so;
        snprintf(key, sizeof key, "k%05u", (unsigned)i);
        req = once_req("burst", key, fx_now(fx) + PGSCHED_HOUR);
        OK(pgsched_store_schedule(s, &req, &so, E));
        OK(pgsched_store_schedule(t, &req, &so, E));
    }
    peak = (long long)counted_bytes(&with);
    twin_rows = (long long)counted_bytes(&twin) - twin_before;
    /* the burst did grow the queue: the test measures something */
    assert_true(peak - opened - twin_rows >= (long long)(BURST / 2 * sizeof(pgsched_event)));

    do {
        OK(pgsched_store_listen_wait(s, l, 0, buf, 64, &count, E));
        assert_true(++reads < BURST);
    } while (count > 0);
    drained = (long long)counted_bytes(&with);
    listener_now = drained - before_open - twin_rows;
    if (listener_now > (opened - before_open) + 1024)
        fail_msg("after the burst was read the listener still holds %lld bytes (%lld when "
                 "opened; %lld at the peak)",
                 listener_now, opened - before_open, peak - before_open - twin_rows);
}

#endif /* STORE_SUITE_EVENTS_H */
