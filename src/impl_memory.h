/* ---- [pgsched: stores] implementation: threads helpers -------------------------------------- */

/* Condition variables wait on the monotonic clock so that a wall-clock step (NTP, an operator)
   neither wakes every sleeper nor makes one sleep for an hour. */
static int pgsched__cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc;
    if (pthread_condattr_init(&attr) != 0) return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

/* Waits until signalled or the monotonic deadline (microseconds) passes. */
static void pgsched__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, pgsched_time deadline)
{
    struct timespec ts;
    if (deadline == PGSCHED_NEVER) {
        pthread_cond_wait(cv, mu);
        return;
    }
    ts.tv_sec = (time_t)(deadline / 1000000);
    ts.tv_nsec = (long)(deadline % 1000000) * 1000;
    pthread_cond_timedwait(cv, mu, &ts);
}

/* deadline = monotonic now + d, saturating at PGSCHED_NEVER. */
static pgsched_time pgsched__deadline(pgsched_duration d)
{
    pgsched_time now = pgsched__monotonic();
    if (d >= PGSCHED_NEVER - now) return PGSCHED_NEVER;
    return now + d;
}

static uint64_t pgsched__hash(const char *a, const char *b)
{
    /* FNV-1a over a, a NUL, b: (name, key) pairs that differ anywhere hash apart. */
    uint64_t h = 14695981039346656037ULL;
    const unsigned char *p;
    for (p = (const unsigned char *)a; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0) * 1099511628211ULL;
    if (b)
        for (p = (const unsigned char *)b; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    return h;
}

/* ---- [pgsched: stores] implementation: the in-memory store -------------------------------- */

typedef struct pgsched__mrow pgsched__mrow;

/* Per job type: a min-heap of its pending rows by (next_run, version), so a claim or a
   next-due look-up touches only the rows of the types asked for. */
typedef struct pgsched__mtype {
    char *name;
    pgsched__mrow **heap;
    size_t heap_n, heap_cap; /* heap_cap >= rows, reserved when a row is created */
    size_t rows;
    int live; /* scratch for orphan clean-up */
    struct pgsched__mtype *next;
} pgsched__mtype;

struct pgsched__mrow {
    char *name, *key;
    pgsched__mtype *type;
    pgsched_status status;
    pgsched_schedule_kind kind;
    char *cron;
    pgsched_duration every;
    char *params;
    int max_retries, attempt;
    pgsched_time next_run;
    char owner[PGSCHED_NODE_ID_MAX + 1];
    int64_t lease;
    pgsched_time heartbeat_at, started_at, finished_at;
    int cancel_requested, remove_requested;
    /* a re-schedule waiting for the current run to end */
    int has_change;
    pgsched_schedule_kind ch_kind;
    char *ch_cron;
    pgsched_duration ch_every;
    char *ch_params;
    int ch_max_retries;
    pgsched_time ch_next_run;
    char *last_error;
    int64_t runs, failures, version;
    pgsched_time created_at, updated_at;
    size_t heap_pos; /* index in type->heap, or (size_t)-1 when not pending */
    pgsched__mrow *hnext;
    pgsched__mrow *rprev, *rnext; /* the list of running rows */
};

typedef struct pgsched__mhist {
    pgsched_run_record rec; /* strings point into `block` */
    char *block;
} pgsched__mhist;

typedef struct pgsched__mnode {
    char id[PGSCHED_NODE_ID_MAX + 1];
    char *host;
    int64_t pid;
    char **names;
    size_t name_count;
    pgsched_time started_at, last_seen;
} pgsched__mnode;

typedef struct pgsched__mlistener {
    pgsched_event *q;
    size_t head, count, cap;
    int overflow, woken;
    pthread_cond_t cv;
    struct pgsched__mlistener *next;
} pgsched__mlistener;

#define PGSCHED__MTYPE_BUCKETS 64
#define PGSCHED__MLISTEN_QUEUE 4096

typedef struct pgsched__mem {
    pgsched_store base;
    pgsched_allocator alloc;
    pgsched_time (*clock)(void *);
    void *clock_user;
    pthread_mutex_t mu;
    pgsched__mrow **buckets;
    size_t nbuckets, nrows;
    pgsched__mtype *types[PGSCHED__MTYPE_BUCKETS];
    pgsched__mrow *running;
    int64_t seq;
    pgsched__mhist *hist;
    size_t hist_n, hist_cap;
    int64_t hist_id;
    pgsched__mnode *nodes;
    size_t node_n, node_cap;
    pgsched__mlistener *listeners;
} pgsched__mem;

static pgsched_time pgsched__mem_now(pgsched__mem *m)
{
    return m->clock ? m->clock(m->clock_user) : pgsched_now();
}

/* ---- rows ---- */

static pgsched__mrow *pgsched__mem_find(pgsched__mem *m, const char *name, const char *key)
{
    pgsched__mrow *r = m->buckets[pgsched__hash(name, key) & (m->nbuckets - 1)];
    for (; r; r = r->hnext)
        if (strcmp(r->name, name) == 0 && strcmp(r->key, key) == 0) return r;
    return NULL;
}

static pgsched__mtype *pgsched__mem_type(pgsched__mem *m, const char *name, int create)
{
    size_t b = (size_t)(pgsched__hash(name, NULL) % PGSCHED__MTYPE_BUCKETS);
    pgsched__mtype *t;
    for (t = m->types[b]; t; t = t->next)
        if (strcmp(t->name, name) == 0) return t;
    if (!create) return NULL;
    t = (pgsched__mtype *)pgsched__calloc(&m->alloc, sizeof *t);
    if (!t) return NULL;
    t->name = pgsched__strdup(&m->alloc, name);
    if (!t->name) {
        pgsched__free(&m->alloc, t);
        return NULL;
    }
    t->next = m->types[b];
    m->types[b] = t;
    return t;
}

static int pgsched__heap_less(const pgsched__mrow *a, const pgsched__mrow *b)
{
    if (a->next_run != b->next_run) return a->next_run < b->next_run;
    return a->version < b->version;
}

static void pgsched__heap_set(pgsched__mtype *t, size_t i, pgsched__mrow *r)
{
    t->heap[i] = r;
    r->heap_pos = i;
}

static void pgsched__heap_up(pgsched__mtype *t, size_t i)
{
    pgsched__mrow *r = t->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pgsched__heap_less(r, t->heap[p])) break;
        pgsched__heap_set(t, i, t->heap[p]);
        i = p;
    }
    pgsched__heap_set(t, i, r);
}

static void pgsched__heap_down(pgsched__mtype *t, size_t i)
{
    pgsched__mrow *r = t->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->heap_n) break;
        if (c + 1 < t->heap_n && pgsched__heap_less(t->heap[c + 1], t->heap[c])) c++;
        if (!pgsched__heap_less(t->heap[c], r)) break;
        pgsched__heap_set(t, i, t->heap[c]);
        i = c;
    }
    pgsched__heap_set(t, i, r);
}

static void pgsched__heap_remove(pgsched__mrow *r)
{
    pgsched__mtype *t = r->type;
    size_t i = r->heap_pos;
    pgsched__mrow *last;
    if (i == (size_t)-1) return;
    r->heap_pos = (size_t)-1;
    last = t->heap[--t->heap_n];
    if (i == t->heap_n) return;
    pgsched__heap_set(t, i, last);
    pgsched__heap_up(t, i);
    pgsched__heap_down(t, last->heap_pos);
}

/* Reserves a heap slot for one more row of the type, so that moving a row to pending later
   can never fail half-way through a change. */
static int pgsched__heap_reserve(pgsched__mem *m, pgsched__mtype *t)
{
    if (t->rows + 1 > t->heap_cap) {
        size_t ncap = t->heap_cap ? t->heap_cap * 2 : 16;
        pgsched__mrow **nh =
            (pgsched__mrow **)pgsched__realloc(&m->alloc, t->heap, ncap * sizeof *nh);
        if (!nh) return 0;
        t->heap = nh;
        t->heap_cap = ncap;
    }
    t->rows++;
    return 1;
}

/* Puts a pending row in (or back into) its heap after next_run or version changed. */
static void pgsched__heap_update(pgsched__mrow *r)
{
    pgsched__mtype *t = r->type;
    if (r->heap_pos == (size_t)-1) {
        PGSCHED_ASSERT(t->heap_n < t->heap_cap);
        pgsched__heap_set(t, t->heap_n++, r);
    }
    pgsched__heap_up(t, r->heap_pos);
    pgsched__heap_down(t, r->heap_pos);
}

static void pgsched__running_unlink(pgsched__mem *m, pgsched__mrow *r)
{
    if (r->rprev) r->rprev->rnext = r->rnext;
    else if (m->running == r) m->running = r->rnext;
    if (r->rnext) r->rnext->rprev = r->rprev;
    r->rprev = r->rnext = NULL;
}

static void pgsched__running_link(pgsched__mem *m, pgsched__mrow *r)
{
    r->rprev = NULL;
    r->rnext = m->running;
    if (m->running) m->running->rprev = r;
    m->running = r;
}

/* Moves a row to `st`, keeping the heap and the running list in step. */
static void pgsched__mem_set_status(pgsched__mem *m, pgsched__mrow *r, pgsched_status st)
{
    if (st == PGSCHED_PENDING) pgsched__heap_update(r);
    else pgsched__heap_remove(r);
    if (r->status == PGSCHED_RUNNING && st != PGSCHED_RUNNING) pgsched__running_unlink(m, r);
    if (r->status != PGSCHED_RUNNING && st == PGSCHED_RUNNING) pgsched__running_link(m, r);
    r->status = st;
}

static void pgsched__mem_row_free(pgsched__mem *m, pgsched__mrow *r)
{
    pgsched__free(&m->alloc, r->name);
    pgsched__free(&m->alloc, r->key);
    pgsched__free(&m->alloc, r->cron);
    pgsched__free(&m->alloc, r->params);
    pgsched__free(&m->alloc, r->ch_cron);
    pgsched__free(&m->alloc, r->ch_params);
    pgsched__free(&m->alloc, r->last_error);
    pgsched__free(&m->alloc, r);
}

static void pgsched__mem_delete(pgsched__mem *m, pgsched__mrow *r)
{
    pgsched__mrow **pp = &m->buckets[pgsched__hash(r->name, r->key) & (m->nbuckets - 1)];
    while (*pp && *pp != r) pp = &(*pp)->hnext;
    if (*pp) *pp = r->hnext;
    pgsched__heap_remove(r);
    if (r->status == PGSCHED_RUNNING) pgsched__running_unlink(m, r);
    r->type->rows--;
    m->nrows--;
    pgsched__mem_row_free(m, r);
}

static void pgsched__mem_rehash(pgsched__mem *m)
{
    size_t nb = m->nbuckets * 2, i;
    pgsched__mrow **b = (pgsched__mrow **)pgsched__calloc(&m->alloc, nb * sizeof *b);
    if (!b) return; /* keep the old table: longer chains, still correct */
    for (i = 0; i < m->nbuckets; i++) {
        pgsched__mrow *r = m->buckets[i];
        while (r) {
            pgsched__mrow *next = r->hnext;
            size_t h = (size_t)(pgsched__hash(r->name, r->key) & (nb - 1));
            r->hnext = b[h];
            b[h] = r;
            r = next;
        }
    }
    pgsched__free(&m->alloc, m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

/* Replaces *slot by a copy of s (NULL allowed). 0 on allocation failure, slot unchanged. */
static int pgsched__mem_setstr(pgsched__mem *m, char **slot, const char *s)
{
    char *c = NULL;
    if (s) {
        c = pgsched__strdup(&m->alloc, s);
        if (!c) return 0;
    }
    pgsched__free(&m->alloc, *slot);
    *slot = c;
    return 1;
}

static void pgsched__mem_to_job(const pgsched__mrow *r, pgsched_job *j)
{
    memset(j, 0, sizeof *j);
    j->name = r->name;
    j->key = r->key;
    j->status = r->status;
    j->kind = r->kind;
    j->cron = r->cron;
    j->every = r->every;
    j->params = r->params;
    j->max_retries = r->max_retries;
    j->attempt = r->attempt;
    j->next_run = r->next_run;
    j->owner = r->status == PGSCHED_RUNNING ? r->owner : NULL;
    j->lease = r->lease;
    j->heartbeat_at = r->heartbeat_at;
    j->started_at = r->started_at;
    j->finished_at = r->finished_at;
    j->cancel_requested = r->cancel_requested;
    j->remove_requested = r->remove_requested;
    j->change_pending = r->has_change;
    j->last_error = r->last_error;
    j->runs = r->runs;
    j->failures = r->failures;
    j->version = r->version;
    j->created_at = r->created_at;
    j->updated_at = r->updated_at;
}

/* ---- events ---- */

static void pgsched__mem_push_event(pgsched__mem *m, const pgsched_event *ev)
{
    pgsched__mlistener *l;
    for (l = m->listeners; l; l = l->next) {
        if (l->count == l->cap) {
            /* A listener that does not keep up loses events; it is told to resync. */
            l->overflow = 1;
            l->head = (l->head + 1) % l->cap;
            l->count--;
        }
        l->q[(l->head + l->count) % l->cap] = *ev;
        l->count++;
        pthread_cond_signal(&l->cv);
    }
}

static void pgsched__mem_emit(pgsched__mem *m, pgsched_event_kind kind, const pgsched__mrow *r,
                              pgsched_status old_status, pgsched_status new_status,
                              const char *node_id)
{
    pgsched_event ev;
    if (!m->listeners) return;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.old_status = old_status;
    ev.new_status = new_status;
    ev.next_run = new_status == PGSCHED_PENDING ? r->next_run : 0;
    ev.version = r->version;
    pgsched__copy_text(ev.name, sizeof ev.name, r->name);
    pgsched__copy_text(ev.key, sizeof ev.key, r->key);
    pgsched__copy_text(ev.node, sizeof ev.node, node_id);
    if (kind == PGSCHED_EVENT_CANCEL) pgsched__copy_text(ev.owner, sizeof ev.owner, r->owner);
    pgsched__mem_push_event(m, &ev);
}

static pgsched_result pgsched__mem_oom(pgsched__mem *m, pgsched_error *err)
{
    pthread_mutex_unlock(&m->mu);
    return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in the in-memory store");
}

/* ---- methods ---- */

static pgsched_result pgsched__mem_setup(pgsched_store *s, pgsched_error *err)
{
    PGSCHED__UNUSED(s);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_now_m(pgsched_store *s, pgsched_time *now, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pthread_mutex_lock(&m->mu);
    *now = pgsched__mem_now(m);
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_schedule(pgsched_store *s, const pgsched_schedule_request *q,
                                            void *external_conn, pgsched_schedule_outcome *out,
                                            pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow *r;
    pgsched_time now, next;
    if (external_conn)
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                             "the in-memory store cannot join a PostgreSQL transaction");
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    next = q->next_run ? q->next_run : now;
    r = pgsched__mem_find(m, q->name, q->key);
    if (r && r->status == PGSCHED_RUNNING) {
        char *cron = NULL, *params = NULL;
        if (!q->apply_after_run) {
            pthread_mutex_unlock(&m->mu);
            return pgsched__err_running(err, q->name, q->key,
                                        "re-scheduling is refused unless it applies after the run");
        }
        if (!pgsched__mem_setstr(m, &cron, q->cron) || !pgsched__mem_setstr(m, &params, q->params)) {
            pgsched__free(&m->alloc, cron);
            return pgsched__mem_oom(m, err);
        }
        pgsched__free(&m->alloc, r->ch_cron);
        pgsched__free(&m->alloc, r->ch_params);
        r->has_change = 1;
        r->ch_kind = q->kind;
        r->ch_cron = cron;
        r->ch_every = q->every;
        r->ch_params = params;
        r->ch_max_retries = q->max_retries;
        r->ch_next_run = next;
        r->version = ++m->seq;
        r->updated_at = now;
        out->deferred = 1;
        out->old_status = PGSCHED_RUNNING;
        out->next_run = r->next_run;
        out->version = r->version;
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_RUNNING, PGSCHED_RUNNING, q->node_id);
        pthread_mutex_unlock(&m->mu);
        return pgsched__ok(err);
    }
    if (!r) {
        pgsched__mtype *t = pgsched__mem_type(m, q->name, 1);
        if (!t) return pgsched__mem_oom(m, err);
        r = (pgsched__mrow *)pgsched__calloc(&m->alloc, sizeof *r);
        if (!r) return pgsched__mem_oom(m, err);
        r->name = pgsched__strdup(&m->alloc, q->name);
        r->key = pgsched__strdup(&m->alloc, q->key);
        r->cron = q->cron ? pgsched__strdup(&m->alloc, q->cron) : NULL;
        r->params = pgsched__strdup(&m->alloc, q->params);
        if (!r->name || !r->key || !r->params || (q->cron && !r->cron)) {
            pgsched__mem_row_free(m, r);
            return pgsched__mem_oom(m, err);
        }
        r->type = t;
        r->heap_pos = (size_t)-1;
        r->status = PGSCHED_STATUS_NONE;
        r->kind = q->kind;
        r->every = q->every;
        r->max_retries = q->max_retries;
        r->next_run = next;
        r->created_at = now;
        r->version = ++m->seq;
        if (!pgsched__heap_reserve(m, t)) {
            pgsched__mem_row_free(m, r);
            return pgsched__mem_oom(m, err);
        }
        pgsched__mem_set_status(m, r, PGSCHED_PENDING);
        r->updated_at = now;
        {
            size_t b = (size_t)(pgsched__hash(r->name, r->key) & (m->nbuckets - 1));
            r->hnext = m->buckets[b];
            m->buckets[b] = r;
        }
        if (++m->nrows > m->nbuckets) pgsched__mem_rehash(m);
        out->created = 1;
        out->old_status = PGSCHED_STATUS_NONE;
    } else {
        char *cron = NULL, *params = NULL;
        pgsched_status old = r->status;
        if (!pgsched__mem_setstr(m, &cron, q->cron) || !pgsched__mem_setstr(m, &params, q->params)) {
            pgsched__free(&m->alloc, cron);
            return pgsched__mem_oom(m, err);
        }
        if (old == PGSCHED_PENDING && r->next_run < next) next = r->next_run;
        pgsched__free(&m->alloc, r->cron);
        pgsched__free(&m->alloc, r->params);
        r->cron = cron;
        r->params = params;
        r->kind = q->kind;
        r->every = q->every;
        r->max_retries = q->max_retries;
        r->attempt = 0;
        r->next_run = next;
        r->cancel_requested = r->remove_requested = 0;
        r->version = ++m->seq;
        pgsched__mem_set_status(m, r, PGSCHED_PENDING);
        r->updated_at = now;
        out->old_status = old;
    }
    out->next_run = r->next_run;
    out->version = r->version;
    pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, out->old_status, PGSCHED_PENDING, q->node_id);
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_claim(pgsched_store *s, const pgsched_claim_request *q,
                                         pgsched_job_list *out, pgsched_claim_outcome *info,
                                         pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mtype *local[16];
    pgsched__mtype **types = local;
    size_t nt = 0, i;
    int claimed = 0;
    pgsched_time now;
    pgsched_result r = PGSCHED_OK;

    if (q->name_count > 16) {
        types = (pgsched__mtype **)pgsched__malloc(&m->alloc, q->name_count * sizeof *types);
        if (!types) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in a claim");
    }
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    for (i = 0; i < q->name_count; i++) {
        pgsched__mtype *t = pgsched__mem_type(m, q->names[i], 0);
        size_t k;
        if (!t) continue;
        for (k = 0; k < nt && types[k] != t; k++) {}
        if (k == nt) types[nt++] = t;
    }
    while (claimed < q->max) {
        pgsched__mtype *best = NULL;
        pgsched__mrow *row;
        pgsched_job job;
        for (i = 0; i < nt; i++)
            if (types[i]->heap_n && types[i]->heap[0]->next_run <= now &&
                (!best || pgsched__heap_less(types[i]->heap[0], best->heap[0])))
                best = types[i];
        if (!best) break;
        row = best->heap[0];
        pgsched__mem_set_status(m, row, PGSCHED_RUNNING);
        pgsched__copy_text(row->owner, sizeof row->owner, q->node_id);
        row->version = ++m->seq;
        row->lease = row->version;
        row->attempt++;
        row->cancel_requested = 0;
        row->started_at = now;
        row->heartbeat_at = now;
        row->updated_at = now;
        pgsched__mem_to_job(row, &job);
        if (pgsched_job_list_push(out, &job) != PGSCHED_OK) {
            /* Give the row back untouched but for its version: the claim did not happen. */
            row->attempt--;
            row->lease = 0;
            row->owner[0] = '\0';
            pgsched__mem_set_status(m, row, PGSCHED_PENDING);
            r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in a claim");
            break;
        }
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, row, PGSCHED_PENDING, PGSCHED_RUNNING,
                          q->node_id);
        claimed++;
    }
    info->now = now;
    info->next_due = 0;
    for (i = 0; i < nt; i++)
        if (types[i]->heap_n &&
            (!info->next_due || types[i]->heap[0]->next_run < info->next_due))
            info->next_due = types[i]->heap[0]->next_run;
    pthread_mutex_unlock(&m->mu);
    if (types != local) pgsched__free(&m->alloc, types);
    return r == PGSCHED_OK ? pgsched__ok(err) : r;
}

static pgsched__mnode *pgsched__mem_node(pgsched__mem *m, const char *id)
{
    size_t i;
    for (i = 0; i < m->node_n; i++)
        if (strcmp(m->nodes[i].id, id) == 0) return &m->nodes[i];
    return NULL;
}

static pgsched_result pgsched__mem_heartbeat(pgsched_store *s, const char *node_id,
                                             const pgsched_lease *leases, size_t count,
                                             int renew, pgsched_lease_state *states,
                                             pgsched_time *now_out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mnode *n;
    pgsched_time now;
    size_t i;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    for (i = 0; i < count; i++) {
        pgsched__mrow *r = pgsched__mem_find(m, leases[i].name, leases[i].key);
        if (!r || r->status != PGSCHED_RUNNING || r->lease != leases[i].token) {
            states[i].lost = 1;
            continue;
        }
        states[i].cancel_requested = r->cancel_requested;
        if (renew) r->heartbeat_at = now;
    }
    n = pgsched__mem_node(m, node_id);
    if (n) n->last_seen = now;
    *now_out = now;
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static void pgsched__mem_history(pgsched__mem *m, const pgsched__mrow *r, const pgsched_outcome *o,
                                 pgsched_time now)
{
    pgsched__mhist *h;
    pgsched_run_record rec;
    size_t total;
    char *cur;
    if (m->hist_n == m->hist_cap) {
        size_t ncap = m->hist_cap ? m->hist_cap * 2 : 64;
        pgsched__mhist *nh =
            (pgsched__mhist *)pgsched__realloc(&m->alloc, m->hist, ncap * sizeof *nh);
        if (!nh) return; /* history is best effort under memory pressure; the row is not */
        m->hist = nh;
        m->hist_cap = ncap;
    }
    memset(&rec, 0, sizeof rec);
    rec.name = r->name;
    rec.key = r->key;
    rec.node = o->node_id;
    rec.attempt = r->attempt;
    rec.started_at = r->started_at;
    rec.finished_at = now;
    rec.outcome = o->outcome;
    rec.error = o->error;
    rec.id = ++m->hist_id;
    total = pgsched__slen(rec.name) + pgsched__slen(rec.key) + pgsched__slen(rec.node) +
            pgsched__slen(rec.error);
    h = &m->hist[m->hist_n];
    h->block = (char *)pgsched__malloc(&m->alloc, total);
    if (!h->block) return;
    cur = h->block;
    h->rec = rec;
    h->rec.name = pgsched__block_put(&cur, rec.name);
    h->rec.key = pgsched__block_put(&cur, rec.key);
    h->rec.node = pgsched__block_put(&cur, rec.node);
    h->rec.error = pgsched__block_put(&cur, rec.error);
    m->hist_n++;
}

static pgsched_result pgsched__mem_finish(pgsched_store *s, const pgsched_outcome *o,
                                          size_t count, pgsched_finish_result *res,
                                          pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_time now;
    size_t i;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    for (i = 0; i < count; i++) {
        pgsched__mrow *r = pgsched__mem_find(m, o[i].name, o[i].key);
        pgsched_status st = o[i].status;
        int failed = o[i].outcome == PGSCHED_OUTCOME_FAILURE ||
                     o[i].outcome == PGSCHED_OUTCOME_STALLED;
        if (!r || r->status != PGSCHED_RUNNING || r->lease != o[i].token) {
            res[i].code = PGSCHED_ERR_LEASE_LOST;
            continue;
        }
        if (failed && o[i].error && !pgsched__mem_setstr(m, &r->last_error, o[i].error)) {
            res[i].code = PGSCHED_ERR_NOMEM;
            continue;
        }
        pgsched__mem_history(m, r, &o[i], now);
        if (o[i].outcome != PGSCHED_OUTCOME_RELEASED) r->runs++;
        if (failed) r->failures++;
        if (o[i].attempt_rule == PGSCHED_ATTEMPT_RESET) r->attempt = 0;
        else if (o[i].attempt_rule == PGSCHED_ATTEMPT_UNCOUNT && r->attempt > 0) r->attempt--;
        r->finished_at = now;
        r->owner[0] = '\0';
        r->lease = 0;
        r->heartbeat_at = 0;
        r->cancel_requested = 0;
        r->version = ++m->seq;
        r->updated_at = now;
        if (r->remove_requested) {
            pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_RUNNING, PGSCHED_STATUS_NONE,
                              o[i].node_id);
            res[i].new_status = PGSCHED_STATUS_NONE;
            res[i].version = r->version;
            pgsched__mem_delete(m, r);
            res[i].code = PGSCHED_OK;
            continue;
        }
        if (st == PGSCHED_PENDING)
            r->next_run = o[i].next_run ? o[i].next_run : now + o[i].retry_delay;
        else
            r->next_run = 0;
        if (r->has_change) {
            /* The re-schedule asked for while running takes effect now. */
            if (st != PGSCHED_PENDING || r->ch_next_run < r->next_run) r->next_run = r->ch_next_run;
            pgsched__free(&m->alloc, r->cron);
            pgsched__free(&m->alloc, r->params);
            r->cron = r->ch_cron;
            r->params = r->ch_params;
            r->ch_cron = r->ch_params = NULL;
            r->kind = r->ch_kind;
            r->every = r->ch_every;
            r->max_retries = r->ch_max_retries;
            r->attempt = 0;
            r->has_change = 0;
            st = PGSCHED_PENDING;
        }
        pgsched__mem_set_status(m, r, st);
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_RUNNING, r->status, o[i].node_id);
        res[i].code = PGSCHED_OK;
        res[i].new_status = r->status;
        res[i].next_run = r->status == PGSCHED_PENDING ? r->next_run : 0;
        res[i].version = r->version;
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_take_back(pgsched_store *s, const char *node_id,
                                             pgsched_duration stall_timeout, int max,
                                             pgsched_job_list *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow *r;
    pgsched_time now;
    int n = 0;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    for (r = m->running; r && n < max; r = r->rnext) {
        pgsched_job job;
        if (r->heartbeat_at >= now - stall_timeout) continue;
        pgsched__copy_text(r->owner, sizeof r->owner, node_id);
        r->version = ++m->seq;
        r->lease = r->version;
        r->heartbeat_at = now;
        r->updated_at = now;
        pgsched__mem_to_job(r, &job);
        if (pgsched_job_list_push(out, &job) != PGSCHED_OK) {
            /* The row now belongs to this node under a token nobody knows: it stalls again
               after stall_timeout and is taken back then. Nothing is lost. */
            pthread_mutex_unlock(&m->mu);
            return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory taking back rows");
        }
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_RUNNING, PGSCHED_RUNNING, node_id);
        n++;
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_cancel(pgsched_store *s, const char *name, const char *key,
                                          const char *node_id, pgsched_change_outcome *out,
                                          pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow *r;
    pgsched_time now;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    r = pgsched__mem_find(m, name, key);
    if (!r) {
        pthread_mutex_unlock(&m->mu);
        return pgsched__err_not_found(err, name, key);
    }
    out->old_status = out->new_status = r->status;
    if (r->status == PGSCHED_RUNNING) {
        r->cancel_requested = 1;
        r->version = ++m->seq;
        r->updated_at = now;
        out->effect = PGSCHED_CANCEL_REQUESTED;
        pgsched__copy_text(out->owner, sizeof out->owner, r->owner);
        pgsched__mem_emit(m, PGSCHED_EVENT_CANCEL, r, PGSCHED_RUNNING, PGSCHED_RUNNING, node_id);
    } else if (r->status == PGSCHED_PENDING && r->kind == PGSCHED_ONCE) {
        r->next_run = 0;
        r->version = ++m->seq;
        r->updated_at = now;
        pgsched__mem_set_status(m, r, PGSCHED_CANCELLED);
        out->effect = PGSCHED_CANCEL_DONE;
        out->new_status = PGSCHED_CANCELLED;
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_PENDING, PGSCHED_CANCELLED, node_id);
    } else {
        out->effect = PGSCHED_CANCEL_NONE;
    }
    out->version = r->version;
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_trigger(pgsched_store *s, const char *name, const char *key,
                                           const char *node_id, pgsched_change_outcome *out,
                                           pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow *r;
    pgsched_time now;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    r = pgsched__mem_find(m, name, key);
    if (!r || r->status != PGSCHED_PENDING) {
        pgsched_status st = r ? r->status : PGSCHED_STATUS_NONE;
        pthread_mutex_unlock(&m->mu);
        if (st == PGSCHED_STATUS_NONE) return pgsched__err_not_found(err, name, key);
        if (st == PGSCHED_RUNNING)
            return pgsched__err_running(err, name, key, "it cannot be triggered");
        return pgsched__err_not_pending(err, name, key, st);
    }
    r->next_run = now;
    r->version = ++m->seq;
    r->updated_at = now;
    pgsched__heap_update(r);
    out->old_status = out->new_status = PGSCHED_PENDING;
    out->next_run = now;
    out->version = r->version;
    pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_PENDING, PGSCHED_PENDING, node_id);
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_remove(pgsched_store *s, const char *name, const char *key,
                                          const char *node_id, pgsched_change_outcome *out,
                                          pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow *r;
    pgsched_time now;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    r = pgsched__mem_find(m, name, key);
    if (!r) {
        pthread_mutex_unlock(&m->mu);
        return pgsched__err_not_found(err, name, key);
    }
    out->old_status = r->status;
    r->version = ++m->seq;
    out->version = r->version;
    if (r->status == PGSCHED_RUNNING) {
        r->cancel_requested = 1;
        r->remove_requested = 1;
        r->updated_at = now;
        out->effect = PGSCHED_REMOVE_DEFERRED;
        out->new_status = PGSCHED_RUNNING;
        pgsched__copy_text(out->owner, sizeof out->owner, r->owner);
        pgsched__mem_emit(m, PGSCHED_EVENT_CANCEL, r, PGSCHED_RUNNING, PGSCHED_RUNNING, node_id);
    } else {
        out->effect = PGSCHED_REMOVE_DONE;
        out->new_status = PGSCHED_STATUS_NONE;
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, r->status, PGSCHED_STATUS_NONE, node_id);
        pgsched__mem_delete(m, r);
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_get(pgsched_store *s, const char *name, const char *key,
                                       pgsched_job_list *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow *r;
    pgsched_job job;
    pgsched_result rc;
    pthread_mutex_lock(&m->mu);
    r = pgsched__mem_find(m, name, key);
    if (!r) {
        pthread_mutex_unlock(&m->mu);
        return pgsched__err_not_found(err, name, key);
    }
    pgsched__mem_to_job(r, &job);
    rc = pgsched_job_list_push(out, &job);
    pthread_mutex_unlock(&m->mu);
    if (rc != PGSCHED_OK) return pgsched__fail(err, rc, "out of memory copying a row");
    return pgsched__ok(err);
}

static int pgsched__mem_row_cmp(const void *a, const void *b)
{
    const pgsched__mrow *x = *(const pgsched__mrow *const *)a;
    const pgsched__mrow *y = *(const pgsched__mrow *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->key, y->key);
}

static pgsched_result pgsched__mem_list(pgsched_store *s, const pgsched_list_filter *f,
                                        pgsched_job_list *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow **rows;
    size_t n = 0, i, taken = 0;
    pgsched_result rc = PGSCHED_OK;
    pthread_mutex_lock(&m->mu);
    rows = (pgsched__mrow **)pgsched__malloc(&m->alloc, (m->nrows ? m->nrows : 1) * sizeof *rows);
    if (!rows) return pgsched__mem_oom(m, err);
    for (i = 0; i < m->nbuckets; i++) {
        pgsched__mrow *r;
        for (r = m->buckets[i]; r; r = r->hnext) {
            if (f->name && strcmp(r->name, f->name) != 0) continue;
            if (f->status && r->status != f->status) continue;
            if (f->after_name) {
                int c = strcmp(r->name, f->after_name);
                if (c < 0 || (c == 0 && strcmp(r->key, f->after_key) <= 0)) continue;
            }
            rows[n++] = r;
        }
    }
    qsort(rows, n, sizeof *rows, pgsched__mem_row_cmp);
    for (i = 0; i < n && taken < f->limit; i++, taken++) {
        pgsched_job job;
        pgsched__mem_to_job(rows[i], &job);
        if ((rc = pgsched_job_list_push(out, &job)) != PGSCHED_OK) break;
    }
    pthread_mutex_unlock(&m->mu);
    pgsched__free(&m->alloc, rows);
    if (rc != PGSCHED_OK) return pgsched__fail(err, rc, "out of memory listing rows");
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_history_list(pgsched_store *s, const char *name,
                                                const char *key, size_t limit,
                                                pgsched_run_list *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    size_t i, taken = 0;
    pgsched_result rc = PGSCHED_OK;
    pthread_mutex_lock(&m->mu);
    for (i = m->hist_n; i > 0 && taken < limit; i--) {
        const pgsched_run_record *rec = &m->hist[i - 1].rec;
        if (name && strcmp(rec->name, name) != 0) continue;
        if (key && strcmp(rec->key, key) != 0) continue;
        if ((rc = pgsched_run_list_push(out, rec)) != PGSCHED_OK) break;
        taken++;
    }
    pthread_mutex_unlock(&m->mu);
    if (rc != PGSCHED_OK) return pgsched__fail(err, rc, "out of memory listing history");
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_next_due(pgsched_store *s, const char *const *names,
                                            size_t count, pgsched_time *next,
                                            pgsched_time *now, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    size_t i;
    pthread_mutex_lock(&m->mu);
    *now = pgsched__mem_now(m);
    *next = 0;
    for (i = 0; i < count; i++) {
        pgsched__mtype *t = pgsched__mem_type(m, names[i], 0);
        if (t && t->heap_n && (!*next || t->heap[0]->next_run < *next))
            *next = t->heap[0]->next_run;
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static void pgsched__mem_node_clear(pgsched__mem *m, pgsched__mnode *n)
{
    size_t i;
    for (i = 0; i < n->name_count; i++) pgsched__free(&m->alloc, n->names[i]);
    pgsched__free(&m->alloc, n->names);
    pgsched__free(&m->alloc, n->host);
    n->names = NULL;
    n->host = NULL;
    n->name_count = 0;
}

static pgsched_result pgsched__mem_node_register(pgsched_store *s, const pgsched_node_record *rec,
                                                 pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mnode fresh, *n;
    size_t i;
    pgsched_time now;
    memset(&fresh, 0, sizeof fresh);
    fresh.host = pgsched__strdup(&m->alloc, rec->host ? rec->host : "");
    fresh.names = (char **)pgsched__calloc(&m->alloc, (rec->name_count + 1) * sizeof(char *));
    if (!fresh.host || !fresh.names) goto oom;
    for (i = 0; i < rec->name_count; i++) {
        fresh.names[i] = pgsched__strdup(&m->alloc, rec->names[i]);
        fresh.name_count++;
        if (!fresh.names[i]) goto oom;
    }
    pgsched__copy_text(fresh.id, sizeof fresh.id, rec->id);
    fresh.pid = rec->pid;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    n = pgsched__mem_node(m, rec->id);
    if (n) {
        fresh.started_at = n->started_at;
        pgsched__mem_node_clear(m, n);
    } else {
        if (m->node_n == m->node_cap) {
            size_t ncap = m->node_cap ? m->node_cap * 2 : 8;
            pgsched__mnode *nn =
                (pgsched__mnode *)pgsched__realloc(&m->alloc, m->nodes, ncap * sizeof *nn);
            if (!nn) {
                pthread_mutex_unlock(&m->mu);
                goto oom;
            }
            m->nodes = nn;
            m->node_cap = ncap;
        }
        n = &m->nodes[m->node_n++];
        fresh.started_at = now;
    }
    fresh.last_seen = now;
    *n = fresh;
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
oom:
    pgsched__mem_node_clear(m, &fresh);
    return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory registering a node");
}

static pgsched_result pgsched__mem_node_unregister(pgsched_store *s, const char *node_id,
                                                   pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mnode *n;
    pthread_mutex_lock(&m->mu);
    n = pgsched__mem_node(m, node_id);
    if (n) {
        pgsched__mem_node_clear(m, n);
        *n = m->nodes[--m->node_n];
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_cleanup(pgsched_store *s, const pgsched_cleanup_request *q,
                                           pgsched_cleanup_outcome *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_time now;
    size_t i, b;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    if (q->history_retention != PGSCHED_NEVER) {
        size_t keep = 0;
        for (i = 0; i < m->hist_n; i++) {
            if (m->hist[i].rec.finished_at < now - q->history_retention &&
                out->history_deleted < q->limit) {
                pgsched__free(&m->alloc, m->hist[i].block);
                out->history_deleted++;
            } else {
                m->hist[keep++] = m->hist[i];
            }
        }
        m->hist_n = keep;
        for (i = 0; i < m->node_n;) {
            if (m->nodes[i].last_seen < now - q->history_retention &&
                strcmp(m->nodes[i].id, q->node_id) != 0) {
                pgsched__mem_node_clear(m, &m->nodes[i]);
                m->nodes[i] = m->nodes[--m->node_n];
                out->nodes_deleted++;
            } else {
                i++;
            }
        }
    }
    if (q->orphan_timeout != PGSCHED_NEVER) {
        /* A type is live when any node seen within stall_timeout registers it. */
        for (b = 0; b < PGSCHED__MTYPE_BUCKETS; b++) {
            pgsched__mtype *t;
            for (t = m->types[b]; t; t = t->next) {
                t->live = 0;
                for (i = 0; i < m->node_n && !t->live; i++) {
                    size_t k;
                    if (m->nodes[i].last_seen < now - q->stall_timeout) continue;
                    for (k = 0; k < m->nodes[i].name_count; k++)
                        if (strcmp(m->nodes[i].names[k], t->name) == 0) t->live = 1;
                }
            }
        }
    }
    for (b = 0; b < m->nbuckets; b++) {
        pgsched__mrow *r = m->buckets[b];
        while (r) {
            pgsched__mrow *next = r->hnext;
            int finished = r->kind == PGSCHED_ONCE &&
                           (r->status == PGSCHED_COMPLETED || r->status == PGSCHED_FAILED ||
                            r->status == PGSCHED_CANCELLED);
            if (finished && q->finished_retention != PGSCHED_NEVER &&
                r->updated_at < now - q->finished_retention && out->finished_deleted < q->limit) {
                pgsched__mem_delete(m, r);
                out->finished_deleted++;
            } else if (q->orphan_timeout != PGSCHED_NEVER && r->status != PGSCHED_RUNNING &&
                       !r->type->live && r->updated_at < now - q->orphan_timeout &&
                       out->orphans_deleted < q->limit) {
                pgsched__mem_delete(m, r);
                out->orphans_deleted++;
            }
            r = next;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_listen_open(pgsched_store *s, pgsched_listener **out,
                                               pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mlistener *l = (pgsched__mlistener *)pgsched__calloc(&m->alloc, sizeof *l);
    if (!l) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory opening a listener");
    l->cap = PGSCHED__MLISTEN_QUEUE;
    l->q = (pgsched_event *)pgsched__malloc(&m->alloc, l->cap * sizeof *l->q);
    if (!l->q || pgsched__cond_init(&l->cv) != 0) {
        pgsched__free(&m->alloc, l->q);
        pgsched__free(&m->alloc, l);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory opening a listener");
    }
    pthread_mutex_lock(&m->mu);
    l->next = m->listeners;
    m->listeners = l;
    pthread_mutex_unlock(&m->mu);
    *out = (pgsched_listener *)(void *)l;
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_listen_wait(pgsched_store *s, pgsched_listener *lh,
                                               pgsched_duration timeout, pgsched_event *events,
                                               size_t cap, size_t *count, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mlistener *l = (pgsched__mlistener *)(void *)lh;
    pgsched_time deadline = pgsched__deadline(timeout);
    size_t n = 0;
    pthread_mutex_lock(&m->mu);
    while (!l->count && !l->overflow && !l->woken && pgsched__monotonic() < deadline)
        pgsched__cond_wait_until(&l->cv, &m->mu, deadline);
    if (l->overflow) {
        memset(&events[0], 0, sizeof events[0]);
        events[0].kind = PGSCHED_EVENT_RESYNC;
        l->overflow = 0;
        n = 1;
    }
    while (n < cap && l->count) {
        events[n++] = l->q[l->head];
        l->head = (l->head + 1) % l->cap;
        l->count--;
    }
    l->woken = 0;
    pthread_mutex_unlock(&m->mu);
    *count = n;
    return pgsched__ok(err);
}

static void pgsched__mem_listen_wake(pgsched_store *s, pgsched_listener *lh)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mlistener *l = (pgsched__mlistener *)(void *)lh;
    pthread_mutex_lock(&m->mu);
    l->woken = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&m->mu);
}

static void pgsched__mem_listener_free(pgsched__mem *m, pgsched__mlistener *l)
{
    pthread_cond_destroy(&l->cv);
    pgsched__free(&m->alloc, l->q);
    pgsched__free(&m->alloc, l);
}

static void pgsched__mem_listen_close(pgsched_store *s, pgsched_listener *lh)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mlistener *l = (pgsched__mlistener *)(void *)lh, **pp;
    pthread_mutex_lock(&m->mu);
    for (pp = &m->listeners; *pp && *pp != l; pp = &(*pp)->next) {}
    if (*pp) *pp = l->next;
    pthread_mutex_unlock(&m->mu);
    pgsched__mem_listener_free(m, l);
}

static void pgsched__mem_destroy(pgsched_store *s)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_allocator a = m->alloc;
    size_t i;
    for (i = 0; i < m->nbuckets; i++) {
        pgsched__mrow *r = m->buckets[i];
        while (r) {
            pgsched__mrow *next = r->hnext;
            pgsched__mem_row_free(m, r);
            r = next;
        }
    }
    for (i = 0; i < PGSCHED__MTYPE_BUCKETS; i++) {
        pgsched__mtype *t = m->types[i];
        while (t) {
            pgsched__mtype *next = t->next;
            pgsched__free(&a, t->heap);
            pgsched__free(&a, t->name);
            pgsched__free(&a, t);
            t = next;
        }
    }
    for (i = 0; i < m->hist_n; i++) pgsched__free(&a, m->hist[i].block);
    for (i = 0; i < m->node_n; i++) pgsched__mem_node_clear(m, &m->nodes[i]);
    while (m->listeners) {
        pgsched__mlistener *l = m->listeners;
        m->listeners = l->next;
        pgsched__mem_listener_free(m, l);
    }
    pgsched__free(&a, m->hist);
    pgsched__free(&a, m->nodes);
    pgsched__free(&a, m->buckets);
    pthread_mutex_destroy(&m->mu);
    pgsched__free(&a, m);
}

static const pgsched_store_methods pgsched__mem_methods = {
    PGSCHED_STORE_VERSION,
    "memory",
    pgsched__mem_setup,
    pgsched__mem_destroy,
    pgsched__mem_now_m,
    pgsched__mem_schedule,
    pgsched__mem_claim,
    pgsched__mem_heartbeat,
    pgsched__mem_finish,
    pgsched__mem_take_back,
    pgsched__mem_cancel,
    pgsched__mem_trigger,
    pgsched__mem_remove,
    pgsched__mem_get,
    pgsched__mem_list,
    pgsched__mem_history_list,
    pgsched__mem_next_due,
    pgsched__mem_node_register,
    pgsched__mem_node_unregister,
    pgsched__mem_cleanup,
    pgsched__mem_listen_open,
    pgsched__mem_listen_wait,
    pgsched__mem_listen_wake,
    pgsched__mem_listen_close,
};

PGSCHED_DEF pgsched_result pgsched_memory_store_create(const pgsched_memory_config *cfg,
                                                       pgsched_store **out, pgsched_error *err)
{
    pgsched_allocator a = pgsched__allocator(cfg ? cfg->allocator : NULL);
    pgsched__mem *m;
    if (!out) return pgsched__null(err, "the output store");
    *out = NULL;
    m = (pgsched__mem *)pgsched__calloc(&a, sizeof *m);
    if (!m) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a store");
    m->alloc = a;
    m->base.methods = &pgsched__mem_methods;
    if (cfg) {
        m->clock = cfg->clock;
        m->clock_user = cfg->clock_user;
    }
    m->nbuckets = 64;
    m->buckets = (pgsched__mrow **)pgsched__calloc(&a, m->nbuckets * sizeof *m->buckets);
    if (!m->buckets || pthread_mutex_init(&m->mu, NULL) != 0) {
        pgsched__free(&a, m->buckets);
        pgsched__free(&a, m);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a store");
    }
    *out = &m->base;
    return pgsched__ok(err);
}
