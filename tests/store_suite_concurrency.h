/* store_suite_concurrency.h - racing nodes: a row is handed out once, and at most one lease
   on a row is ever honoured. Threads record what they saw; the test checks after joining. */
#ifndef STORE_SUITE_CONCURRENCY_H
#define STORE_SUITE_CONCURRENCY_H

enum { CLAIM_THREADS = 8 };

typedef struct claimed_row {
    int row;
    int64_t token;
} claimed_row;

typedef struct claim_ctx {
    fixture *fx;
    pgsched_store *s;
    int id;
    int rows;            /* the rows this thread schedules first: [first, first + rows) */
    int first;
    pgsched_time base;
    pthread_barrier_t *start;
    claimed_row *got;
    size_t n, cap;
    int failed;
    char message[PGSCHED_ERROR_MAX + 64];
} claim_ctx;

static void *claim_worker(void *arg)
{
    claim_ctx *c = (claim_ctx *)arg;
    const char *names[1] = {"herd"};
    char node[32], key[16];
    pgsched_job_list list;
    pgsched_claim_request req;
    pgsched_time deadline;
    int i, idle = 0;
    snprintf(node, sizeof node, "claimer-%d", c->id);
    pgsched_job_list_init(&list, NULL);

    for (i = 0; i < c->rows && !c->failed; i++) {
        pgsched_schedule_request sr;
        pgsched_schedule_outcome so;
        pgsched_error e;
        int row = c->first + i;
        snprintf(key, sizeof key, "r%06d", row);
        /* due times spread over the past so that due order matters */
        sr = once_req("herd", key, c->base - (pgsched_time)(row % 977) * PGSCHED_MILLISECOND);
        if (pgsched_store_schedule(c->s, &sr, &so, &e) != PGSCHED_OK) {
            c->failed = 1;
            snprintf(c->message, sizeof c->message, "schedule: %s", e.message);
        }
    }
    pthread_barrier_wait(c->start);

    memset(&req, 0, sizeof req);
    req.node_id = node;
    req.names = names;
    req.name_count = 1;
    req.max = 1 + c->id * 3; /* 1..22 rows per claim */
    deadline = mono_us() + 300 * PGSCHED_SECOND;
    while (!c->failed) {
        pgsched_claim_outcome info;
        pgsched_error e;
        size_t k;
        pgsched_job_list_clear(&list);
        if (pgsched_store_claim(c->s, &req, &list, &info, &e) != PGSCHED_OK) {
            c->failed = 1;
            snprintf(c->message, sizeof c->message, "claim: %s", e.message);
            break;
        }
        for (k = 0; k < list.count; k++) {
            if (c->n == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 1024;
                c->got = (claimed_row *)realloc(c->got, c->cap * sizeof *c->got);
                if (!c->got) abort();
            }
            c->got[c->n].row = atoi(list.items[k].key + 1);
            c->got[c->n].token = list.items[k].lease;
            c->n++;
            if (strcmp(list.items[k].owner, node) != 0) {
                c->failed = 1;
                snprintf(c->message, sizeof c->message, "claimed row owned by %s",
                         list.items[k].owner);
            }
        }
        if (list.count == 0) {
            /* nothing pending left: done; rows still pending but locked by a racing claim:
               try again */
            if (info.next_due == 0) break;
            if (++idle > 10000 || mono_us() > deadline) {
                c->failed = 1;
                snprintf(c->message, sizeof c->message,
                         "claims keep returning nothing while rows are pending");
                break;
            }
            sleep_us(200);
        }
    }
    pgsched_job_list_free(&list);
    return NULL;
}

STORE_TEST(claims_from_8_threads_never_hand_out_a_row_twice)
{
    /* The acceptance figure, 8 threads x 5,000 rows = 40,000 due rows, on both stores (about
       15 s on PostgreSQL on a 2-core machine, most of it the 40,000 schedules).
       PGSCHED_TEST_CLAIM_ROWS sets the rows per thread instead (e.g. 1000 for a quick run). */
    const char *rows_env = getenv("PGSCHED_TEST_CLAIM_ROWS");
    int per_thread = rows_env && atoi(rows_env) > 0 ? atoi(rows_env) : 5000;
    int total = per_thread * CLAIM_THREADS;
    claim_ctx ctx[CLAIM_THREADS];
    pthread_t th[CLAIM_THREADS];
    pthread_barrier_t start;
    unsigned char *seen = (unsigned char *)calloc((size_t)total, 1);
    int *owner = (int *)calloc((size_t)total, sizeof(int));
    int64_t *tokens = (int64_t *)malloc((size_t)total * sizeof(int64_t));
    pgsched_time base = fx_now(fx) - fx->unit;
    pgsched_list_filter f;
    size_t n = 0, i, listed = 0;
    int t;

    assert_non_null(seen);
    assert_non_null(owner);
    assert_non_null(tokens);
    pthread_barrier_init(&start, NULL, CLAIM_THREADS);
    for (t = 0; t < CLAIM_THREADS; t++) {
        memset(&ctx[t], 0, sizeof ctx[t]);
        ctx[t].fx = fx;
        ctx[t].s = fx_other_handle(fx);
        ctx[t].id = t;
        ctx[t].first = t * per_thread;
        ctx[t].rows = per_thread;
        ctx[t].base = base;
        ctx[t].start = &start;
    }
    for (t = 0; t < CLAIM_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, claim_worker, &ctx[t]), 0);
    for (t = 0; t < CLAIM_THREADS; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);

    for (t = 0; t < CLAIM_THREADS; t++)
        if (ctx[t].failed) fail_msg("claimer-%d: %s", t, ctx[t].message);
    for (t = 0; t < CLAIM_THREADS; t++) {
        for (i = 0; i < ctx[t].n; i++) {
            int row = ctx[t].got[i].row;
            assert_true(row >= 0 && row < total);
            if (seen[row])
                fail_msg("row r%06d was handed to claimer-%d and claimer-%d", row, owner[row],
                         t);
            seen[row] = 1;
            owner[row] = t;
            tokens[n++] = ctx[t].got[i].token;
        }
    }
    if ((int)n != total) fail_msg("%u of %d rows were handed out", (unsigned)n, total);
    qsort(tokens, n, sizeof tokens[0], cmp_i64);
    for (i = 1; i < n; i++)
        if (tokens[i] == tokens[i - 1]) fail_msg("token %lld was issued twice", (long long)tokens[i]);

    /* the store agrees on every owner */
    memset(&f, 0, sizeof f);
    f.name = "herd";
    f.limit = 1000;
    for (;;) {
        pgsched_job_list *page = fx_jlist(fx);
        OK(pgsched_store_list(fx->store, &f, page, E));
        if (page->count == 0) break;
        for (i = 0; i < page->count; i++) {
            int row = atoi(page->items[i].key + 1);
            char node[32];
            snprintf(node, sizeof node, "claimer-%d", owner[row]);
            assert_int_equal(page->items[i].status, PGSCHED_RUNNING);
            assert_string_equal(page->items[i].owner, node);
        }
        listed += page->count;
        f.after_name = page->items[page->count - 1].name;
        f.after_key = page->items[page->count - 1].key;
    }
    assert_int_equal(listed, (size_t)total);
    for (t = 0; t < CLAIM_THREADS; t++) free(ctx[t].got);
    free(seen);
    free(owner);
    free(tokens);
}

/* ---- finish / heartbeat / take back racing -------------------------------------------- */

enum { RACE_WORKERS = 4, RACE_REAPER_ROUNDS = 300 };

typedef enum race_op { OP_ISSUED = 1, OP_FINISH = 2, OP_HEARTBEAT = 3 } race_op;

typedef struct race_rec {
    int row;
    int64_t token;
    race_op op;
    pgsched_outcome_kind kind; /* OP_FINISH */
    int result;                /* OP_FINISH: result code; OP_HEARTBEAT: lost */
} race_rec;

typedef struct race_shared {
    pthread_mutex_t mu;
    int reaper_done;
} race_shared;

typedef struct race_ctx {
    fixture *fx;
    pgsched_store *s;
    race_shared *shared;
    int id; /* -1: the reaper */
    race_rec *recs;
    size_t n, cap;
    int failed;
    char message[PGSCHED_ERROR_MAX + 64];
} race_ctx;

static void race_note(race_ctx *c, int row, int64_t token, race_op op, pgsched_outcome_kind kind,
                      int result)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->recs = (race_rec *)realloc(c->recs, c->cap * sizeof *c->recs);
        if (!c->recs) abort();
    }
    c->recs[c->n].row = row;
    c->recs[c->n].token = token;
    c->recs[c->n].op = op;
    c->recs[c->n].kind = kind;
    c->recs[c->n].result = result;
    c->n++;
}

static void race_fail(race_ctx *c, const char *what, const pgsched_error *e)
{
    c->failed = 1;
    snprintf(c->message, sizeof c->message, "%s: %s", what, e->message);
}

/* Writes an outcome as the engine does: a row another transaction has locked (the
   PostgreSQL store skips it and says BUSY) is written again shortly. */
static pgsched_result race_finish(pgsched_store *s, const pgsched_outcome *oc,
                                  pgsched_finish_result *r, pgsched_error *e)
{
    int tries;
    for (tries = 0; tries < 10000; tries++) {
        pgsched_result rc;
        memset(r, 0, sizeof *r);
        rc = pgsched_store_finish(s, oc, 1, r, e);
        if (rc != PGSCHED_OK || r->code != PGSCHED_ERR_BUSY) return rc;
        sleep_us(100);
    }
    return PGSCHED_OK; /* still BUSY: the caller fails on that code */
}

static void *race_worker(void *arg)
{
    race_ctx *c = (race_ctx *)arg;
    const char *names[1] = {"race"};
    char node[32];
    pgsched_job_list list;
    pgsched_claim_request req;
    pgsched_time deadline = mono_us() + 300 * PGSCHED_SECOND;
    pgsched_job_list_init(&list, NULL);
    snprintf(node, sizeof node, "worker-%d", c->id);
    memset(&req, 0, sizeof req);
    req.node_id = node;
    req.names = names;
    req.name_count = 1;
    req.max = 4;
    while (!c->failed && mono_us() < deadline) {
        pgsched_claim_outcome info;
        pgsched_error e;
        size_t k;
        int reaper_done;
        pthread_mutex_lock(&c->shared->mu);
        reaper_done = c->shared->reaper_done;
        pthread_mutex_unlock(&c->shared->mu);
        pgsched_job_list_clear(&list);
        if (pgsched_store_claim(c->s, &req, &list, &info, &e) != PGSCHED_OK) {
            race_fail(c, "claim", &e);
            break;
        }
        for (k = 0; k < list.count; k++) {
            const pgsched_job *j = &list.items[k];
            int row = atoi(j->key + 1);
            pgsched_lease lease = lease_of(j);
            pgsched_lease_state st;
            pgsched_time now;
            pgsched_outcome oc;
            pgsched_finish_result r;
            race_note(c, row, j->lease, OP_ISSUED, (pgsched_outcome_kind)0, 0);
            if (pgsched_store_heartbeat(c->s, node, &lease, 1, 1, &st, &now, &e) != PGSCHED_OK) {
                race_fail(c, "heartbeat", &e);
                break;
            }
            race_note(c, row, j->lease, OP_HEARTBEAT, (pgsched_outcome_kind)0, st.lost);
            sleep_us(20); /* a window for the reaper */
            oc = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
            if (race_finish(c->s, &oc, &r, &e) != PGSCHED_OK) {
                race_fail(c, "finish", &e);
                break;
            }
            race_note(c, row, j->lease, OP_FINISH, PGSCHED_OUTCOME_SUCCESS, r.code);
        }
        if (list.count == 0) {
            if (reaper_done && info.next_due == 0) break;
            sleep_us(100);
        }
    }
    if (!c->failed && mono_us() >= deadline) {
        c->failed = 1;
        snprintf(c->message, sizeof c->message, "worker did not finish in time");
    }
    pgsched_job_list_free(&list);
    return NULL;
}

static void *race_reaper(void *arg)
{
    race_ctx *c = (race_ctx *)arg;
    pgsched_job_list list;
    int round;
    pgsched_job_list_init(&list, NULL);
    for (round = 0; round < RACE_REAPER_ROUNDS && !c->failed; round++) {
        pgsched_error e;
        size_t k;
        /* every lease is stalled one microsecond after its last renewal */
        if (!c->fx->pg) fx_clock_add(c->fx, 2);
        pgsched_job_list_clear(&list);
        if (pgsched_store_take_back(c->s, "reaper", 1, 8, &list, &e) != PGSCHED_OK) {
            race_fail(c, "take_back", &e);
            break;
        }
        for (k = 0; k < list.count; k++) {
            const pgsched_job *j = &list.items[k];
            int row = atoi(j->key + 1);
            pgsched_outcome oc = outcome_of(j, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, 0);
            pgsched_finish_result r;
            race_note(c, row, j->lease, OP_ISSUED, (pgsched_outcome_kind)0, 0);
            oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
            oc.retry_delay = 0;
            oc.error = "taken back";
            if (race_finish(c->s, &oc, &r, &e) != PGSCHED_OK) {
                race_fail(c, "finish stalled", &e);
                break;
            }
            race_note(c, row, j->lease, OP_FINISH, PGSCHED_OUTCOME_STALLED, r.code);
        }
        if (list.count == 0) sleep_us(200);
    }
    pthread_mutex_lock(&c->shared->mu);
    c->shared->reaper_done = 1;
    pthread_mutex_unlock(&c->shared->mu);
    pgsched_job_list_free(&list);
    return NULL;
}

STORE_TEST(racing_finish_heartbeat_and_take_back_honour_one_lease_per_row)
{
    int rows = fx->pg ? 100 : 300;
    race_shared shared;
    race_ctx ctx[RACE_WORKERS + 1];
    pthread_t th[RACE_WORKERS + 1];
    int *ok_success = (int *)calloc((size_t)rows, sizeof(int));
    int *ok_finish = (int *)calloc((size_t)rows, sizeof(int));
    int *ok_stalled = (int *)calloc((size_t)rows, sizeof(int));
    int *hist = (int *)calloc((size_t)rows, sizeof(int));
    int64_t *issued = NULL, *finished = NULL;
    size_t nissued = 0, nfinished = 0, cap = 0, i;
    size_t lost_finishes = 0, stolen = 0;
    pgsched_run_list *h;
    pgsched_job_list *all;
    char key[32];
    int t, r;

    assert_non_null(ok_success);
    assert_non_null(ok_finish);
    assert_non_null(ok_stalled);
    assert_non_null(hist);
    for (r = 0; r < rows; r++) {
        snprintf(key, sizeof key, "r%05d", r);
        schedule_once(fx, "race", key, fx_now(fx) - fx->unit);
    }
    pthread_mutex_init(&shared.mu, NULL);
    shared.reaper_done = 0;
    for (t = 0; t <= RACE_WORKERS; t++) {
        memset(&ctx[t], 0, sizeof ctx[t]);
        ctx[t].fx = fx;
        ctx[t].s = fx_other_handle(fx);
        ctx[t].shared = &shared;
        ctx[t].id = t < RACE_WORKERS ? t : -1;
    }
    for (t = 0; t <= RACE_WORKERS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, t < RACE_WORKERS ? race_worker : race_reaper,
                                        &ctx[t]),
                         0);
    for (t = 0; t <= RACE_WORKERS; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&shared.mu);
    for (t = 0; t <= RACE_WORKERS; t++)
        if (ctx[t].failed) fail_msg("%s %d: %s", t < RACE_WORKERS ? "worker" : "reaper", t,
                                    ctx[t].message);

    for (t = 0; t <= RACE_WORKERS; t++) {
        for (i = 0; i < ctx[t].n; i++) {
            const race_rec *x = &ctx[t].recs[i];
            if (nissued == cap || nfinished == cap) {
                cap = cap ? 2 * cap : 4096;
                issued = (int64_t *)realloc(issued, cap * sizeof *issued);
                finished = (int64_t *)realloc(finished, cap * sizeof *finished);
                assert_non_null(issued);
                assert_non_null(finished);
            }
            if (x->op == OP_ISSUED) {
                issued[nissued++] = x->token;
                if (t == RACE_WORKERS) stolen++;
            } else if (x->op == OP_FINISH) {
                if (x->result == PGSCHED_OK) {
                    ok_finish[x->row]++;
                    if (x->kind == PGSCHED_OUTCOME_SUCCESS) ok_success[x->row]++;
                    else ok_stalled[x->row]++;
                    finished[nfinished++] = x->token;
                } else if (x->result == PGSCHED_ERR_LEASE_LOST) {
                    lost_finishes++;
                } else {
                    fail_msg("finish result code %d", x->result);
                }
            }
        }
    }
    /* a fresh token on every claim and take-back, and each lease finished at most once */
    qsort(issued, nissued, sizeof *issued, cmp_i64);
    for (i = 1; i < nissued; i++)
        if (issued[i] == issued[i - 1]) fail_msg("token %lld issued twice", (long long)issued[i]);
    qsort(finished, nfinished, sizeof *finished, cmp_i64);
    for (i = 1; i < nfinished; i++)
        if (finished[i] == finished[i - 1])
            fail_msg("lease %lld finished twice", (long long)finished[i]);

    /* every row completed exactly once; counters and history match the accepted outcomes */
    h = fx_rlist(fx);
    OK(pgsched_store_history(fx->store, "race", NULL, 1000000, h, E));
    for (i = 0; i < h->count; i++) hist[atoi(h->items[i].key + 1)]++;
    all = fx_jlist(fx);
    {
        pgsched_list_filter f;
        memset(&f, 0, sizeof f);
        f.name = "race";
        f.limit = 100000;
        OK(pgsched_store_list(fx->store, &f, all, E));
    }
    assert_int_equal(all->count, (size_t)rows);
    for (i = 0; i < all->count; i++) {
        const pgsched_job *j = &all->items[i];
        int row = atoi(j->key + 1);
        if (j->status != PGSCHED_COMPLETED || ok_success[row] != 1)
            fail_msg("row %s is %s after %d accepted successes", j->key,
                     pgsched_status_string(j->status), ok_success[row]);
        assert_int_equal(j->runs, ok_finish[row]);
        assert_int_equal(j->failures, ok_stalled[row]);
        assert_int_equal(hist[row], ok_finish[row]);
        assert_int_equal(j->lease, 0);
    }
    print_message("    %u take-backs, %u finishes refused for a lost lease\n", (unsigned)stolen,
                  (unsigned)lost_finishes);
    for (t = 0; t <= RACE_WORKERS; t++) free(ctx[t].recs);
    free(issued);
    free(finished);
    free(ok_success);
    free(ok_finish);
    free(ok_stalled);
    free(hist);
}

/* ---- versions under concurrent writes ------------------------------------------------- */

enum { VERSION_THREADS = 4, VERSION_OPS = 150 };

typedef struct version_ctx {
    pgsched_store *s;
    int id;
    pgsched_time base;
    int64_t max_seen;   /* the highest version a schedule call returned to this thread */
    int backwards;      /* reads that showed a version below this thread's own committed one */
    int64_t bad_read, bad_own;
    int failed;
    char message[PGSCHED_ERROR_MAX + 64];
} version_ctx;

static void *version_worker(void *arg)
{
    version_ctx *c = (version_ctx *)arg;
    pgsched_job_list list;
    char node[32];
    int i;
    pgsched_job_list_init(&list, NULL);
    snprintf(node, sizeof node, "writer-%d", c->id);
    for (i = 0; i < VERSION_OPS && !c->failed; i++) {
        pgsched_schedule_request req = once_req("vr", "k", c->base - (pgsched_time)i);
        pgsched_schedule_outcome so;
        pgsched_error e;
        req.node_id = node;
        if (pgsched_store_schedule(c->s, &req, &so, &e) != PGSCHED_OK) {
            c->failed = 1;
            snprintf(c->message, sizeof c->message, "schedule: %s", e.message);
            break;
        }
        if (so.version > c->max_seen) c->max_seen = so.version;
        /* the change above is committed: any later state of the row has a version above it */
        pgsched_job_list_clear(&list);
        if (pgsched_store_get(c->s, "vr", "k", &list, &e) != PGSCHED_OK) {
            c->failed = 1;
            snprintf(c->message, sizeof c->message, "get: %s", e.message);
            break;
        }
        if (list.items[0].version < so.version) {
            if (!c->backwards) {
                c->bad_read = list.items[0].version;
                c->bad_own = so.version;
            }
            c->backwards++;
        }
    }
    pgsched_job_list_free(&list);
    return NULL;
}

STORE_TEST(concurrent_reschedules_never_move_a_row_version_backwards)
{
    version_ctx ctx[VERSION_THREADS];
    pthread_t th[VERSION_THREADS];
    int64_t max = 0;
    int t;
    pgsched_time base = fx_now(fx) + PGSCHED_HOUR;
    schedule_once(fx, "vr", "k", base);
    for (t = 0; t < VERSION_THREADS; t++) {
        memset(&ctx[t], 0, sizeof ctx[t]);
        ctx[t].s = fx_other_handle(fx);
        ctx[t].id = t;
        ctx[t].base = base;
    }
    for (t = 0; t < VERSION_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, version_worker, &ctx[t]), 0);
    for (t = 0; t < VERSION_THREADS; t++) pthread_join(th[t], NULL);
    for (t = 0; t < VERSION_THREADS; t++) {
        if (ctx[t].failed) fail_msg("writer-%d: %s", t, ctx[t].message);
        if (ctx[t].backwards)
            fail_msg("writer-%d: %d times the row read back an older version than the one its "
                     "own committed re-schedule returned (first: read %lld after writing %lld)",
                     t, ctx[t].backwards, (long long)ctx[t].bad_read, (long long)ctx[t].bad_own);
        if (ctx[t].max_seen > max) max = ctx[t].max_seen;
    }
    /* the last change carries the highest version */
    assert_int_equal(get_job(fx, "vr", "k")->version, max);
}

/* ---- PostgreSQL: a change racing a claim or an outcome -------------------------------------
   Cancel, trigger and remove lock the row and must decide on it as it is once they hold the
   lock, not as their statement's snapshot saw it: a claim or an outcome that commits while
   they wait for the lock changed the row under them. The race is made deterministic: the
   test's own connection writes the row in an open transaction (as a claim or an outcome
   would), the change is started in a thread and seen waiting for that row lock, then the
   transaction commits. */

typedef enum { CHANGE_CANCEL, CHANGE_TRIGGER, CHANGE_REMOVE } change_op;

typedef struct change_call {
    pgsched_store *s;
    change_op op;
    const char *name, *key;
    pgsched_result rc;
    pgsched_change_outcome out;
    pgsched_error err;
} change_call;

static void *change_call_main(void *arg)
{
    change_call *c = (change_call *)arg;
    memset(&c->out, 0, sizeof c->out);
    memset(&c->err, 0, sizeof c->err);
    if (c->op == CHANGE_CANCEL)
        c->rc = pgsched_store_cancel(c->s, c->name, c->key, "admin", &c->out, &c->err);
    else if (c->op == CHANGE_TRIGGER)
        c->rc = pgsched_store_trigger(c->s, c->name, c->key, "admin", &c->out, &c->err);
    else
        c->rc = pgsched_store_remove(c->s, c->name, c->key, "admin", &c->out, &c->err);
    return NULL;
}

/* `sql` on `c`; 1 when it succeeded (no assertion: the caller may hold a thread). */
static int change_exec(PGconn *c, const char *sql, char *why, size_t why_size)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok && why[0] == '\0') snprintf(why, why_size, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

/* How many backends wait for a lock that backend `pid` holds; -1 on error. */
static long long change_waiters(int pid)
{
    char sql[256];
    PGresult *r;
    long long n = -1;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE %d = ANY(pg_blocking_pids(pid))", pid);
    r = PQexec(g_admin, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* Makes `op` on (name, key) race a write of that row: `set` (an UPDATE's SET list, as a claim
   or an outcome would write it) is applied in an open transaction of another connection;
   `op` starts in a thread, is seen waiting for the row lock, and then the write commits.
   Returns what `op` returned (the call itself must succeed). */
static change_call change_racing_write(fixture *fx, change_op op, const char *name,
                                       const char *key, const char *set)
{
    PGconn *w = fx_connect(fx);
    change_call call;
    pthread_t th;
    char sql[2048], why[1024] = "";
    int began, blocked = 0, committed;
    pgsched_time deadline;
    memset(&call, 0, sizeof call);
    call.s = fx->store;
    call.op = op;
    call.name = name;
    call.key = key;
    snprintf(sql, sizeof sql,
             "UPDATE \"%s\".\"%sjobs\" SET %s, version = nextval('\"%s\".\"%sseq\"'), "
             "updated_at = now() WHERE name = '%s' AND key = '%s'",
             fx->schema, fx->prefix, set, fx->schema, fx->prefix, name, key);
    began = change_exec(w, "BEGIN", why, sizeof why) && change_exec(w, sql, why, sizeof why);
    if (!began) fail_msg("the racing write failed: %s", why);
    assert_int_equal(pthread_create(&th, NULL, change_call_main, &call), 0);
    /* no assertion until the thread is joined */
    deadline = mono_us() + 10 * PGSCHED_SECOND;
    while (mono_us() < deadline) {
        long long n = change_waiters(PQbackendPID(w));
        if (n < 0) break;
        if (n > 0) {
            blocked = 1;
            break;
        }
        sleep_us(1000);
    }
    committed = change_exec(w, "COMMIT", why, sizeof why);
    pthread_join(th, NULL);
    if (!blocked)
        fail_msg("the change never waited for the racing write's row lock (finished: rc %d)",
                 (int)call.rc);
    if (!committed) fail_msg("the racing write did not commit: %s", why);
    if (call.rc != PGSCHED_OK)
        fail_msg("the change failed: %d (%s): %s", (int)call.rc, pgsched_result_string(call.rc),
                 call.err.message);
    return call;
}

/* What a claim by node-2 writes (see the CLAIM statement). */
#define RACING_CLAIM_SET                                                                         \
    "status = 'running', owner = 'node-2', lease = nextval('\"%s\".\"%sseq\"'), "               \
    "attempt = attempt + 1, cancel_requested = false, started_at = now(), heartbeat_at = now()"

/* What an outcome that leaves the row pending (a retry, a recurring row's next run) writes. */
#define RACING_OUTCOME_SET                                                               \
    "status = 'pending', owner = NULL, lease = NULL, heartbeat_at = NULL, finished_at = now(), " \
    "runs = runs + 1, next_run = now() + interval '1 hour'"

STORE_TEST(pg_a_remove_racing_a_claim_defers_and_flags_the_row_that_became_running)
{
    char set[512];
    change_call c;
    const pgsched_job *row;
    pgsched_outcome oc;
    pgsched_finish_result r;
    schedule_once(fx, "race", "k", fx_now(fx) - fx->unit);
    snprintf(set, sizeof set, RACING_CLAIM_SET, fx->schema, fx->prefix);
    c = change_racing_write(fx, CHANGE_REMOVE, "race", "k", set);
    assert_int_equal(c.out.effect, PGSCHED_REMOVE_DEFERRED);
    assert_int_equal(c.out.old_status, PGSCHED_RUNNING);
    assert_string_equal(c.out.owner, "node-2");
    row = get_job(fx, "race", "k");
    assert_int_equal(row->status, PGSCHED_RUNNING);
    assert_string_equal(row->owner, "node-2");
    assert_int_equal(row->cancel_requested, 1);
    assert_int_equal(row->remove_requested, 1);
    assert_int_equal(row->version, c.out.version);
    /* node-2's run ends: the row goes */
    oc = outcome_of(row, PGSCHED_OUTCOME_SUCCESS, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
    r = finish_with(fx, &oc);
    assert_int_equal(r.code, PGSCHED_OK);
    assert_int_equal(r.new_status, PGSCHED_STATUS_NONE);
    assert_int_equal(row_exists(fx, "race", "k"), 0);
}

STORE_TEST(pg_a_remove_racing_an_outcome_deletes_the_row_that_became_pending)
{
    change_call c;
    schedule_and_claim(fx, "node-1", "race", "k");
    c = change_racing_write(fx, CHANGE_REMOVE, "race", "k", RACING_OUTCOME_SET);
    assert_int_equal(c.out.effect, PGSCHED_REMOVE_DONE);
    assert_int_equal(c.out.old_status, PGSCHED_PENDING);
    assert_int_equal(c.out.new_status, PGSCHED_STATUS_NONE);
    assert_int_equal(row_exists(fx, "race", "k"), 0);
}

/* Whatever the kind: a pending recurring row has nothing to cancel, but the claim made it
   running, and a running row of any kind is asked to stop. */
STORE_TEST(pg_a_cancel_racing_a_claim_asks_the_new_owner_to_stop)
{
    static const pgsched_schedule_kind kinds[] = {PGSCHED_INTERVAL, PGSCHED_ONCE};
    static const char *const keys[] = {"interval", "once"};
    char set[512];
    size_t i;
    snprintf(set, sizeof set, RACING_CLAIM_SET, fx->schema, fx->prefix);
    for (i = 0; i < 2; i++) {
        pgsched_schedule_request req = once_req("race", keys[i], fx_now(fx) - fx->unit);
        change_call c;
        const pgsched_job *row;
        req.kind = kinds[i];
        req.every = PGSCHED_HOUR;
        schedule_ok(fx, &req);
        c = change_racing_write(fx, CHANGE_CANCEL, "race", keys[i], set);
        if (c.out.effect != PGSCHED_CANCEL_REQUESTED)
            fail_msg("%s row: cancel effect %d, expected %d (requested)", keys[i], c.out.effect,
                     (int)PGSCHED_CANCEL_REQUESTED);
        assert_int_equal(c.out.old_status, PGSCHED_RUNNING);
        assert_int_equal(c.out.new_status, PGSCHED_RUNNING);
        assert_string_equal(c.out.owner, "node-2");
        row = get_job(fx, "race", keys[i]);
        assert_int_equal(row->status, PGSCHED_RUNNING);
        assert_int_equal(row->cancel_requested, 1);
        assert_int_equal(row->version, c.out.version);
        assert_int_equal(
            heartbeat_one(fx, "node-2", "race", keys[i], row->lease, 0).cancel_requested, 1);
    }
}

STORE_TEST(pg_a_cancel_racing_an_outcome_cancels_the_one_time_row_that_became_pending)
{
    change_call c;
    const pgsched_job *row;
    schedule_and_claim(fx, "node-1", "race", "k");
    c = change_racing_write(fx, CHANGE_CANCEL, "race", "k", RACING_OUTCOME_SET);
    assert_int_equal(c.out.effect, PGSCHED_CANCEL_DONE);
    assert_int_equal(c.out.old_status, PGSCHED_PENDING);
    assert_int_equal(c.out.new_status, PGSCHED_CANCELLED);
    row = get_job(fx, "race", "k");
    assert_int_equal(row->status, PGSCHED_CANCELLED);
    assert_int_equal(row->version, c.out.version);
    assert_int_equal(claim(fx, "node-3", "race", 10, NULL)->count, 0);
}

STORE_TEST(pg_a_trigger_racing_an_outcome_makes_the_row_that_became_pending_due_now)
{
    change_call c;
    pgsched_time before;
    schedule_and_claim(fx, "node-1", "race", "k");
    before = fx_now(fx);
    c = change_racing_write(fx, CHANGE_TRIGGER, "race", "k", RACING_OUTCOME_SET);
    assert_int_equal(c.out.old_status, PGSCHED_PENDING);
    assert_int_equal(c.out.new_status, PGSCHED_PENDING);
    assert_time_between(c.out.next_run, before, fx_now(fx));
    assert_int_equal(get_job(fx, "race", "k")->next_run, c.out.next_run);
    assert_int_equal(claim(fx, "node-3", "race", 10, NULL)->count, 1);
}

#endif /* STORE_SUITE_CONCURRENCY_H */
