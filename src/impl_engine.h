/* ---- [pgsched: engine] implementation -------------------------------------------------------
   Threads of a node:
   - the dispatcher: claims, records outcomes, heartbeats, cancel checks, timeouts, stall
     take-back and clean-up; it alone calls those store methods, so they never overlap;
   - workers, one per run slot (max_concurrent): each waits for its slot to be filled, runs the
     handler, computes the outcome and queues it for the dispatcher;
   - a listener (notifications on): turns store events into wake-ups, cancels and callbacks;
   - a callback thread: calls on_status in order, one event at a time.
   One mutex (node->mu) guards the node's state; no store call is made while holding it. */

/* Values read without the node mutex (a run's cancel flag, the store clock offset). */
#if defined(__GNUC__) || defined(__clang__)
#define PGSCHED__LOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define PGSCHED__STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#else
#define PGSCHED__LOAD(p) (*(p))
#define PGSCHED__STORE(p, v) (*(p) = (v))
#endif

enum { PGSCHED__CREATED, PGSCHED__INITIALIZED, PGSCHED__STARTED, PGSCHED__STOPPING,
       PGSCHED__STOPPED };

/* Why a run was asked to stop. */
enum { PGSCHED__CANCEL_NONE, PGSCHED__CANCEL_REQUESTED, PGSCHED__CANCEL_TIMEOUT,
       PGSCHED__CANCEL_LEASE_LOST, PGSCHED__CANCEL_SHUTDOWN };

enum { PGSCHED__SLOT_FREE, PGSCHED__SLOT_READY, PGSCHED__SLOT_RUNNING };

#define PGSCHED__CRON_CACHE_MAX 1024
#define PGSCHED__EVENT_BATCH 64
#define PGSCHED__TAKE_BACK_BATCH 100

typedef struct pgsched__type {
    pgsched_job_type t; /* t.name points to `name` */
    char *name;
} pgsched__type;

/* One run slot; the public run context comes first so a pgsched_run * is a slot pointer. */
typedef struct pgsched__slot {
    pgsched_run run;
    struct pgsched_node *node;
    int index;
    int state;
    int cancel;          /* PGSCHED__CANCEL_*; read by handlers without the lock */
    int released;        /* given back at shutdown: the handler's result is dropped */
    pgsched_job_list job;
    const pgsched__type *type;
    pgsched_time deadline;      /* monotonic; PGSCHED_NEVER without a timeout */
    pgsched_time started_mono;
    char *error;                /* set by pgsched_run_set_error */
    pthread_cond_t cv;
    pthread_t thread;
    int thread_started;
} pgsched__slot;

/* An outcome waiting to be written (its lease still held in the store). */
typedef struct pgsched__pending {
    pgsched_outcome o;
    char *name, *key, *error;
    int counter;      /* which counter to bump when written */
} pgsched__pending;

enum { PGSCHED__COUNT_NONE, PGSCHED__COUNT_SUCCESS, PGSCHED__COUNT_FAILURE,
       PGSCHED__COUNT_RETRY, PGSCHED__COUNT_CANCELLED, PGSCHED__COUNT_STALLED };

typedef struct pgsched__cbev {
    pgsched_status_event ev;
    char name[PGSCHED_NAME_MAX + 1];
    char key[PGSCHED_KEY_MAX + 1];
    char node[PGSCHED_NODE_ID_MAX + 1];
} pgsched__cbev;

/* A change of this node waiting for (or already matched with) its notification. */
typedef struct pgsched__own {
    int64_t version; /* 0: empty slot */
    int delivered;
    pgsched_time expires; /* monotonic */
    pgsched__cbev ev;
} pgsched__own;

typedef struct pgsched__otimer {
    int64_t version;
    pgsched_time at;
} pgsched__otimer;

typedef struct pgsched__cron_entry {
    char *text;
    pgsched_cron *cron;
} pgsched__cron_entry;

struct pgsched_node {
    pgsched_allocator alloc;
    pgsched_config cfg; /* defaults applied; strings below are copies */
    char *conninfo, *schema, *prefix, *default_zone;
    char id[PGSCHED_NODE_ID_MAX + 1];
    char host[256];
    pgsched_store *store;
    int owns_store;
    int state;
    int notifications;

    pgsched__type *types;
    size_t ntypes, types_cap;
    const char **run_names; /* types with a handler: what this node claims */
    size_t nrun;
    const char **all_names;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the dispatcher */
    pthread_cond_t done_cv; /* shutdown_done became 1 */
    int shutdown_done;
    pthread_t dispatcher, listener, callbacker;
    int dispatcher_started, listener_started, callbacker_started;
    pgsched_listener *listen;

    pgsched__slot *slots;
    int nslots, free_slots;
    pgsched__pending *pending;
    size_t npending, pending_cap;

    /* dispatcher timing; monotonic microseconds */
    pgsched_time next_poll, next_heartbeat, next_cancel_check, next_stall, next_cleanup;
    pgsched_time outcome_retry_at, claim_retry_at, shutdown_deadline;
    pgsched_time known_due;  /* store clock; 0 = unknown */
    int claim_now, resync, wake_cancel_check;
    pgsched_duration offset; /* store clock minus monotonic clock */
    pgsched_time last_error_log;

    uint64_t rng;
    pgsched_counters counters;

    pthread_mutex_t cron_mu;
    pgsched__cron_entry *crons;
    size_t ncrons, crons_cap;

    /* callbacks */
    pthread_mutex_t cb_mu;
    pthread_cond_t cb_cv;
    pgsched__cbev *cbq;
    size_t cb_head, cb_count, cb_cap;
    int cb_stop;
    int cb_ordered; /* deliveries follow the listener (notifications on) */
    pgsched__own *own;
    size_t own_cap, own_count;
    pgsched__otimer *ot;
    size_t ot_head, ot_count, ot_cap;
};

/* ---- small helpers ---- */

static void pgsched__log(pgsched_node *n, pgsched_log_level level, const char *fmt, ...)
    PGSCHED__PRINTF(3, 4);
static void pgsched__log(pgsched_node *n, pgsched_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (level < n->cfg.log_level) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n->cfg.log) {
        n->cfg.log(n->cfg.log_user, level, msg);
    } else {
        static const char *const names[] = {"", "debug", "info", "warning", "error", ""};
        fprintf(stderr, "pgsched %.8s %s: %s\n", n->id, names[level], msg);
    }
}

static uint64_t pgsched__rand(pgsched_node *n)
{
    /* splitmix64: callers hold n->mu */
    uint64_t z = (n->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* d scaled by a random factor in [lo%, hi%]: spreads periodic work so nodes don't stampede. */
static pgsched_duration pgsched__jitter(pgsched_node *n, pgsched_duration d, int lo, int hi)
{
    uint64_t r = pgsched__rand(n) % (uint64_t)(hi - lo + 1);
    return d / 100 * (lo + (pgsched_duration)r);
}

static pgsched_time pgsched__db_now(pgsched_node *n)
{
    return pgsched__monotonic() + PGSCHED__LOAD(&n->offset);
}

/* The store clock maps to the monotonic clock at the midpoint of the call that read it. */
static void pgsched__clock_sample(pgsched_node *n, pgsched_time before, pgsched_time store_now)
{
    pgsched_time mid = before + (pgsched__monotonic() - before) / 2;
    if (store_now <= 0) return;
    PGSCHED__STORE(&n->offset, store_now - mid);
}

static const pgsched__type *pgsched__find_type(const pgsched_node *n, const char *name)
{
    size_t i;
    for (i = 0; i < n->ntypes; i++)
        if (strcmp(n->types[i].name, name) == 0) return &n->types[i];
    return NULL;
}

/* Whether the caller is one of the node's own threads. Caller holds n->mu (the *_started
   flags change under it). */
static int pgsched__is_node_thread(pgsched_node *n)
{
    pthread_t self = pthread_self();
    int i;
    if (n->dispatcher_started && pthread_equal(self, n->dispatcher)) return 1;
    if (n->listener_started && pthread_equal(self, n->listener)) return 1;
    if (n->callbacker_started && pthread_equal(self, n->callbacker)) return 1;
    for (i = 0; i < n->nslots; i++)
        if (n->slots[i].thread_started && pthread_equal(self, n->slots[i].thread)) return 1;
    return 0;
}

/* Copies an error text into storage form: valid UTF-8 (bad bytes become '?'), at most
   PGSCHED_ERROR_TEXT_MAX bytes, cut on a character boundary. */
static char *pgsched__clean_error(const pgsched_allocator *a, const char *s)
{
    size_t n, i = 0, o = 0;
    char *r;
    if (!s) return NULL;
    n = strlen(s);
    if (n > PGSCHED_ERROR_TEXT_MAX) n = PGSCHED_ERROR_TEXT_MAX;
    r = (char *)pgsched__malloc(a, n + 1);
    if (!r) return NULL;
    while (i < n) {
        size_t k = pgsched__utf8_seq((const unsigned char *)s + i, n - i);
        if (!k) {
            r[o++] = '?';
            i++;
        } else {
            memcpy(r + o, s + i, k);
            o += k;
            i += k;
        }
    }
    r[o] = '\0';
    return r;
}

/* ---- cron cache: a parsed expression is immutable, so entries are shared freely ---- */

static pgsched_result pgsched__cron_get(pgsched_node *n, const char *text, pgsched_cron **out,
                                        int *owned, pgsched_error *err)
{
    pgsched_cron_options opts;
    pgsched_cron *c;
    pgsched_result r;
    size_t i;
    *owned = 0;
    pthread_mutex_lock(&n->cron_mu);
    for (i = 0; i < n->ncrons; i++)
        if (strcmp(n->crons[i].text, text) == 0) {
            *out = n->crons[i].cron;
            pthread_mutex_unlock(&n->cron_mu);
            return PGSCHED_OK;
        }
    pthread_mutex_unlock(&n->cron_mu);
    memset(&opts, 0, sizeof opts);
    opts.default_zone = n->default_zone;
    opts.allocator = &n->alloc;
    r = pgsched_cron_parse(text, &opts, &c, err);
    if (r != PGSCHED_OK) return r;
    pthread_mutex_lock(&n->cron_mu);
    if (n->ncrons < PGSCHED__CRON_CACHE_MAX) {
        if (n->ncrons == n->crons_cap) {
            size_t ncap = n->crons_cap ? n->crons_cap * 2 : 16;
            pgsched__cron_entry *ne = (pgsched__cron_entry *)pgsched__realloc(
                &n->alloc, n->crons, ncap * sizeof *ne);
            if (ne) {
                n->crons = ne;
                n->crons_cap = ncap;
            }
        }
        if (n->ncrons < n->crons_cap) {
            char *t = pgsched__strdup(&n->alloc, text);
            if (t) {
                n->crons[n->ncrons].text = t;
                n->crons[n->ncrons].cron = c;
                n->ncrons++;
                pthread_mutex_unlock(&n->cron_mu);
                *out = c;
                return PGSCHED_OK;
            }
        }
    }
    pthread_mutex_unlock(&n->cron_mu);
    *out = c;
    *owned = 1; /* not cached: the caller frees it */
    return PGSCHED_OK;
}

/* The next run of a recurring row strictly after `after` (store clock). */
static pgsched_result pgsched__next_occurrence(pgsched_node *n, const pgsched_job *job,
                                               pgsched_time after, pgsched_time *next,
                                               pgsched_error *err)
{
    switch (job->kind) {
    case PGSCHED_CRON: {
        pgsched_cron *c;
        int owned;
        pgsched_result r;
        if (!job->cron) return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "the row has no cron text");
        r = pgsched__cron_get(n, job->cron, &c, &owned, err);
        if (r != PGSCHED_OK) return r;
        r = pgsched_cron_next(c, after, next);
        if (owned) pgsched_cron_free(c);
        if (r == PGSCHED_ERR_TIME_RANGE)
            return pgsched__fail(err, PGSCHED_ERR_NO_NEXT, "the cron schedule has no run left");
        return r;
    }
    case PGSCHED_INTERVAL:
        if (job->every <= 0) return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "the row's interval is not positive");
        return pgsched_interval_next(job->every, after, next);
    case PGSCHED_CUSTOM: {
        const pgsched__type *t = pgsched__find_type(n, job->name);
        pgsched_result r;
        if (!t || !t->t.next_run)
            return pgsched__fail(err, PGSCHED_ERR_NOT_REGISTERED,
                                 "job type %s has no next-run callback on this node", job->name);
        r = t->t.next_run(t->t.next_run_user, job->name, job->key, job->params, after, next);
        if (r == PGSCHED_OK && *next <= after)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "the next-run callback of %s returned a time not after its input",
                                 job->name);
        if (r != PGSCHED_OK && r != PGSCHED_ERR_NO_NEXT)
            return pgsched__fail(err, r, "the next-run callback of %s failed: %s", job->name,
                                 pgsched_result_string(r));
        return r;
    }
    case PGSCHED_ONCE: break;
    }
    return pgsched__fail(err, PGSCHED_ERR_NO_NEXT, "a one-time job has no next run");
}

/* ---- status callbacks ----
   Events reach on_status in commit order. With notifications on, every change, this node's
   own included, comes back through the listener in the order the store committed it, so the
   listener is the one source of order: a change of this node waits (as an "own" entry, keyed
   by its store-wide unique version) until its notification arrives, and is delivered from
   there. Should the notification never come (the listener was disconnected, the payload was
   too large), the waiting copy is delivered after PGSCHED__OWN_WAIT. Entries delivered either
   way stay a while as "delivered", so that the other copy, arriving late, is dropped and no
   change is delivered twice. Without notifications, changes are delivered as they are made. */

#define PGSCHED__OWN_WAIT (2 * PGSCHED_SECOND)
#define PGSCHED__OWN_KEEP (10 * PGSCHED_SECOND)

/* Appends to the delivery queue. Caller holds cb_mu. */
static void pgsched__cbq_put(pgsched_node *n, const pgsched__cbev *ev)
{
    if (n->cb_count == n->cb_cap) {
        size_t ncap = n->cb_cap ? n->cb_cap * 2 : 64, i;
        pgsched__cbev *nq = (pgsched__cbev *)pgsched__malloc(&n->alloc, ncap * sizeof *nq);
        if (!nq) {
            pgsched__log(n, PGSCHED_LOG_ERROR, "out of memory: a status callback was dropped");
            return;
        }
        for (i = 0; i < n->cb_count; i++) nq[i] = n->cbq[(n->cb_head + i) % n->cb_cap];
        pgsched__free(&n->alloc, n->cbq);
        n->cbq = nq;
        n->cb_cap = ncap;
        n->cb_head = 0;
    }
    n->cbq[(n->cb_head + n->cb_count) % n->cb_cap] = *ev;
    n->cb_count++;
    pthread_cond_signal(&n->cb_cv);
}

/* The own entry of `version`, or the empty slot where it would go. Caller holds cb_mu and
   has made room (own_count < own_cap / 2). */
static pgsched__own *pgsched__own_slot(pgsched_node *n, int64_t version)
{
    size_t i = (size_t)((uint64_t)version * 0x9E3779B97F4A7C15ULL >> 20) & (n->own_cap - 1);
    while (n->own[i].version && n->own[i].version != version) i = (i + 1) & (n->own_cap - 1);
    return &n->own[i];
}

/* Removes an entry, shifting the probe chain back so that look-ups keep working. */
static void pgsched__own_remove(pgsched_node *n, pgsched__own *o)
{
    size_t i = (size_t)(o - n->own), j = i;
    n->own[i].version = 0;
    n->own_count--;
    for (;;) {
        size_t home;
        j = (j + 1) & (n->own_cap - 1);
        if (!n->own[j].version) return;
        home = (size_t)((uint64_t)n->own[j].version * 0x9E3779B97F4A7C15ULL >> 20) &
               (n->own_cap - 1);
        /* move j back to i when i lies cyclically in [home, j) */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            n->own[i] = n->own[j];
            n->own[j].version = 0;
            i = j;
        }
    }
}

static int pgsched__own_reserve(pgsched_node *n)
{
    size_t i, ncap;
    pgsched__own *old = n->own, *no;
    size_t old_cap = n->own_cap;
    if ((n->own_count + 1) * 2 <= n->own_cap) return 1;
    ncap = n->own_cap ? n->own_cap * 2 : 64;
    no = (pgsched__own *)pgsched__calloc(&n->alloc, ncap * sizeof *no);
    if (!no) return 0;
    n->own = no;
    n->own_cap = ncap;
    n->own_count = 0;
    for (i = 0; i < old_cap; i++)
        if (old[i].version) {
            *pgsched__own_slot(n, old[i].version) = old[i];
            n->own_count++;
        }
    pgsched__free(&n->alloc, old);
    return 1;
}

/* Remembers when to look at an own entry again (expiries only grow, so a FIFO suffices). */
static void pgsched__own_timer(pgsched_node *n, int64_t version, pgsched_time at)
{
    if (n->ot_count == n->ot_cap) {
        size_t ncap = n->ot_cap ? n->ot_cap * 2 : 64, i;
        pgsched__otimer *nt = (pgsched__otimer *)pgsched__malloc(&n->alloc, ncap * sizeof *nt);
        if (!nt) return; /* the entry then waits for its notification only */
        for (i = 0; i < n->ot_count; i++) nt[i] = n->ot[(n->ot_head + i) % n->ot_cap];
        pgsched__free(&n->alloc, n->ot);
        n->ot = nt;
        n->ot_cap = ncap;
        n->ot_head = 0;
    }
    n->ot[(n->ot_head + n->ot_count) % n->ot_cap].version = version;
    n->ot[(n->ot_head + n->ot_count) % n->ot_cap].at = at;
    n->ot_count++;
}

static void pgsched__cbev_fill(pgsched__cbev *e, const char *name, const char *key,
                               pgsched_status old_status, pgsched_status new_status,
                               pgsched_time next_run, int64_t version, const char *node,
                               int remote)
{
    memset(&e->ev, 0, sizeof e->ev);
    pgsched__copy_text(e->name, sizeof e->name, name);
    pgsched__copy_text(e->key, sizeof e->key, key);
    pgsched__copy_text(e->node, sizeof e->node, node);
    e->ev.old_status = old_status;
    e->ev.new_status = new_status;
    e->ev.next_run = new_status == PGSCHED_PENDING ? next_run : 0;
    e->ev.version = version;
    e->ev.remote = remote;
}

/* A change made by this node. */
static void pgsched__cb_push(pgsched_node *n, const char *name, const char *key,
                             pgsched_status old_status, pgsched_status new_status,
                             pgsched_time next_run, int64_t version, const char *node, int remote)
{
    pgsched__cbev e;
    if (!n->cfg.on_status || old_status == new_status) return;
    pgsched__cbev_fill(&e, name, key, old_status, new_status, next_run, version, node, remote);
    pthread_mutex_lock(&n->cb_mu);
    if (n->cb_ordered && version > 0 && pgsched__own_reserve(n)) {
        pgsched__own *o = pgsched__own_slot(n, version);
        if (o->version) {
            pgsched__own_remove(n, o); /* its notification came first and was delivered */
        } else {
            o->version = version;
            o->delivered = 0;
            o->expires = pgsched__monotonic() + PGSCHED__OWN_WAIT;
            o->ev = e;
            n->own_count++;
            pgsched__own_timer(n, version, o->expires);
            pthread_cond_signal(&n->cb_cv);
        }
    } else {
        pgsched__cbq_put(n, &e);
    }
    pthread_mutex_unlock(&n->cb_mu);
}

/* A change seen by the listener (any node's, in commit order). */
static void pgsched__cb_notified(pgsched_node *n, const pgsched_event *v)
{
    pgsched__cbev e;
    int own = strcmp(v->node, n->id) == 0;
    if (!n->cfg.on_status || v->old_status == v->new_status) return;
    pgsched__cbev_fill(&e, v->name, v->key, v->old_status, v->new_status, v->next_run,
                       v->version, v->node, !own);
    pthread_mutex_lock(&n->cb_mu);
    if (own && pgsched__own_reserve(n)) {
        pgsched__own *o = pgsched__own_slot(n, v->version);
        if (!o->version) {
            /* before the local copy: deliver now, drop that copy when it comes */
            o->version = v->version;
            o->delivered = 1;
            o->expires = pgsched__monotonic() + PGSCHED__OWN_KEEP;
            n->own_count++;
            pgsched__own_timer(n, v->version, o->expires);
            pgsched__cbq_put(n, &e);
        } else if (!o->delivered) {
            pgsched__cbq_put(n, &e);
            pgsched__own_remove(n, o);
        } else {
            pgsched__own_remove(n, o); /* delivered already by the fallback */
        }
    } else {
        pgsched__cbq_put(n, &e);
    }
    pthread_mutex_unlock(&n->cb_mu);
}

/* Delivers own entries whose notification is overdue; forgets old delivered ones. Caller
   holds cb_mu. Returns the next time to look (PGSCHED_NEVER: nothing waits). `all` delivers
   every waiting entry (at shutdown, once the listener has stopped). */
static pgsched_time pgsched__own_expire(pgsched_node *n, int all)
{
    pgsched_time now = pgsched__monotonic();
    while (n->ot_count) {
        pgsched__otimer t = n->ot[n->ot_head];
        pgsched__own *o;
        if (t.at > now && !all) return t.at;
        n->ot_head = (n->ot_head + 1) % n->ot_cap;
        n->ot_count--;
        o = pgsched__own_slot(n, t.version);
        if (!o->version || o->expires != t.at) continue; /* resolved meanwhile */
        if (o->delivered) {
            pgsched__own_remove(n, o);
        } else {
            pgsched__cbq_put(n, &o->ev);
            o->delivered = 1;
            o->expires = now + PGSCHED__OWN_KEEP;
            if (!all) pgsched__own_timer(n, t.version, o->expires);
        }
    }
    return PGSCHED_NEVER;
}

static void *pgsched__callback_main(void *arg)
{
    pgsched_node *n = (pgsched_node *)arg;
    pthread_mutex_lock(&n->cb_mu);
    for (;;) {
        pgsched__cbev e;
        pgsched_time next = pgsched__own_expire(n, n->cb_stop);
        if (!n->cb_count) {
            if (n->cb_stop) break;
            pgsched__cond_wait_until(&n->cb_cv, &n->cb_mu, next);
            continue;
        }
        e = n->cbq[n->cb_head];
        n->cb_head = (n->cb_head + 1) % n->cb_cap;
        n->cb_count--;
        pthread_mutex_unlock(&n->cb_mu);
        e.ev.name = e.name;
        e.ev.key = e.key;
        e.ev.node = e.node;
        n->cfg.on_status(n->cfg.on_status_user, &e.ev);
        pthread_mutex_lock(&n->cb_mu);
    }
    pthread_mutex_unlock(&n->cb_mu);
    return NULL;
}

/* ---- outcomes ---- */

static pgsched_duration pgsched__backoff(pgsched_node *n, const pgsched__type *t, int attempt)
{
    pgsched_duration base = t && t->t.retry_base ? t->t.retry_base : n->cfg.retry_base;
    pgsched_duration cap = t && t->t.retry_cap ? t->t.retry_cap : n->cfg.retry_cap;
    pgsched_duration d = base;
    int i;
    for (i = 1; i < attempt && d < cap; i++) d = d > cap / 2 ? cap : d * 2;
    if (d > cap) d = cap;
    /* "equal jitter": half fixed, half random, so retries of many jobs spread out while each
       still waits at least half its backoff */
    pthread_mutex_lock(&n->mu);
    d = d / 2 + (pgsched_duration)(pgsched__rand(n) % (uint64_t)(d / 2 + 1));
    pthread_mutex_unlock(&n->mu);
    return d;
}

/* Fills `o` for a job whose attempt ended with `kind`. `end` is the store-clock time of the
   end of the run. Returns the counter to bump once written. */
static int pgsched__decide(pgsched_node *n, const pgsched_job *job, const pgsched__type *t,
                           pgsched_outcome_kind kind, pgsched_time end, pgsched_outcome *o)
{
    pgsched_error e;
    pgsched_time next = 0;
    pgsched_result r = PGSCHED_OK;
    int recurring = pgsched__is_recurring(job->kind);
    /* Never before the due time of the run that just ended, whatever the clock estimate says:
       the same occurrence must not run twice. */
    pgsched_time after = end > job->next_run ? end : job->next_run;

    o->outcome = kind;
    o->next_run = 0;
    o->retry_delay = 0;
    o->attempt_rule = PGSCHED_ATTEMPT_RESET;
    if (kind == PGSCHED_OUTCOME_RELEASED) {
        o->status = PGSCHED_PENDING;
        o->attempt_rule = PGSCHED_ATTEMPT_UNCOUNT;
        return PGSCHED__COUNT_NONE;
    }
    if ((kind == PGSCHED_OUTCOME_FAILURE || kind == PGSCHED_OUTCOME_STALLED) &&
        job->attempt <= job->max_retries) {
        o->status = PGSCHED_PENDING;
        o->retry_delay = pgsched__backoff(n, t, job->attempt);
        o->attempt_rule = PGSCHED_ATTEMPT_KEEP;
        return kind == PGSCHED_OUTCOME_STALLED ? PGSCHED__COUNT_STALLED : PGSCHED__COUNT_RETRY;
    }
    if (!recurring) {
        o->status = kind == PGSCHED_OUTCOME_SUCCESS     ? PGSCHED_COMPLETED
                    : kind == PGSCHED_OUTCOME_CANCELLED ? PGSCHED_CANCELLED
                                                        : PGSCHED_FAILED;
        if (o->status == PGSCHED_FAILED) o->attempt_rule = PGSCHED_ATTEMPT_KEEP;
    } else {
        r = pgsched__next_occurrence(n, job, after, &next, &e);
        if (r == PGSCHED_OK) {
            o->status = PGSCHED_PENDING;
            o->next_run = next;
        } else if (r == PGSCHED_ERR_NO_NEXT) {
            o->status = PGSCHED_COMPLETED; /* the schedule is over */
        } else if (r == PGSCHED_ERR_NOT_REGISTERED) {
            /* A custom schedule this node cannot compute (taken back from another node's
               type): make it due now; a node that registers the type runs it and computes
               the next run itself. */
            o->status = PGSCHED_PENDING;
            pgsched__log(n, PGSCHED_LOG_WARN, "%s/%s: %s; made due now", job->name, job->key,
                         e.message);
        } else {
            o->status = PGSCHED_FAILED;
            pgsched__log(n, PGSCHED_LOG_ERROR, "%s/%s: cannot compute the next run: %s",
                         job->name, job->key, e.message);
        }
    }
    switch (kind) {
    case PGSCHED_OUTCOME_SUCCESS: return PGSCHED__COUNT_SUCCESS;
    case PGSCHED_OUTCOME_CANCELLED: return PGSCHED__COUNT_CANCELLED;
    case PGSCHED_OUTCOME_STALLED: return PGSCHED__COUNT_STALLED;
    default: return PGSCHED__COUNT_FAILURE;
    }
}

/* Queues an outcome for the dispatcher; takes ownership of `error`. Caller holds n->mu. */
static void pgsched__queue_outcome(pgsched_node *n, const pgsched_job *job,
                                   const pgsched_outcome *o, char *error, int counter)
{
    pgsched__pending *p;
    if (n->npending == n->pending_cap) {
        size_t ncap = n->pending_cap ? n->pending_cap * 2 : 16;
        pgsched__pending *np =
            (pgsched__pending *)pgsched__realloc(&n->alloc, n->pending, ncap * sizeof *np);
        if (!np) {
            /* The lease expires and the row is taken back: the run counts as stalled. */
            pgsched__log(n, PGSCHED_LOG_ERROR, "out of memory: the outcome of %s/%s is lost",
                         job->name, job->key);
            pgsched__free(&n->alloc, error);
            return;
        }
        n->pending = np;
        n->pending_cap = ncap;
    }
    p = &n->pending[n->npending];
    p->o = *o;
    p->name = pgsched__strdup(&n->alloc, job->name);
    p->key = pgsched__strdup(&n->alloc, job->key);
    p->error = error;
    p->counter = counter;
    if (!p->name || !p->key) {
        pgsched__free(&n->alloc, p->name);
        pgsched__free(&n->alloc, p->key);
        pgsched__free(&n->alloc, error);
        pgsched__log(n, PGSCHED_LOG_ERROR, "out of memory: the outcome of %s/%s is lost",
                     job->name, job->key);
        return;
    }
    p->o.name = p->name;
    p->o.key = p->key;
    p->o.error = p->error;
    p->o.token = job->lease;
    p->o.node_id = n->id;
    n->npending++;
    pthread_cond_signal(&n->cv);
}

static void pgsched__pending_free(pgsched_node *n, pgsched__pending *p)
{
    pgsched__free(&n->alloc, p->name);
    pgsched__free(&n->alloc, p->key);
    pgsched__free(&n->alloc, p->error);
}

/* ---- workers ---- */

static void *pgsched__worker_main(void *arg)
{
    pgsched__slot *s = (pgsched__slot *)arg;
    pgsched_node *n = s->node;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        const pgsched_job *job;
        int rc, cancel;
        char *error;
        pgsched_outcome_kind kind;
        pgsched_outcome o;
        int counter;
        pgsched_time start_db;
        while (s->state != PGSCHED__SLOT_READY && n->state != PGSCHED__STOPPED)
            pthread_cond_wait(&s->cv, &n->mu);
        if (s->state != PGSCHED__SLOT_READY) break;
        s->state = PGSCHED__SLOT_RUNNING;
        job = &s->job.items[0];
        start_db = pgsched__db_now(n);
        if (start_db - job->next_run > 0) {
            pgsched_duration d = start_db - job->next_run;
            n->counters.start_delay_last = d;
            if (d > n->counters.start_delay_max) n->counters.start_delay_max = d;
            n->counters.start_delay_total += d;
        } else {
            n->counters.start_delay_last = 0;
        }
        pthread_mutex_unlock(&n->mu);

        rc = s->type->t.handler(&s->run);

        pthread_mutex_lock(&n->mu);
        cancel = s->cancel;
        error = s->error;
        s->error = NULL;
        if (cancel == PGSCHED__CANCEL_TIMEOUT) {
            /* the run overran its timeout: a failure, whatever the handler said after */
            kind = PGSCHED_OUTCOME_FAILURE;
            if (!error) {
                char buf[120];
                snprintf(buf, sizeof buf, "timed out after %lld ms",
                         (long long)(s->type->t.timeout / 1000));
                error = pgsched__strdup(&n->alloc, buf);
            }
        } else if (rc == PGSCHED_RUN_SUCCESS) {
            kind = PGSCHED_OUTCOME_SUCCESS;
        } else if (cancel == PGSCHED__CANCEL_REQUESTED) {
            kind = PGSCHED_OUTCOME_CANCELLED;
        } else if (cancel == PGSCHED__CANCEL_SHUTDOWN) {
            kind = PGSCHED_OUTCOME_RELEASED; /* stopped by our shutdown: not its failure */
        } else {
            kind = PGSCHED_OUTCOME_FAILURE;
            if (rc != PGSCHED_RUN_FAILURE) {
                char buf[160];
                snprintf(buf, sizeof buf,
                         "the handler returned %d, which is neither PGSCHED_RUN_SUCCESS (0) nor "
                         "PGSCHED_RUN_FAILURE (1)",
                         rc);
                pgsched__free(&n->alloc, error);
                error = pgsched__strdup(&n->alloc, buf);
            }
        }
        if (cancel == PGSCHED__CANCEL_LEASE_LOST || s->released) {
            /* Another run owns the row now (or shutdown gave it back): write nothing. */
            pgsched__free(&n->alloc, error);
        } else {
            pgsched_time end = pgsched__db_now(n);
            memset(&o, 0, sizeof o);
            pthread_mutex_unlock(&n->mu);
            counter = pgsched__decide(n, job, s->type, kind, end, &o);
            pthread_mutex_lock(&n->mu);
            pgsched__queue_outcome(n, job, &o, error, counter);
        }
        pgsched_job_list_clear(&s->job);
        s->state = PGSCHED__SLOT_FREE;
        s->cancel = PGSCHED__CANCEL_NONE;
        s->released = 0;
        n->free_slots++;
        n->counters.running--;
        pthread_cond_signal(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* Sets a slot's cancel reason (first reason wins) and wakes a sleeping handler. */
static void pgsched__cancel_slot(pgsched__slot *s, int reason)
{
    if (s->state == PGSCHED__SLOT_FREE) return;
    if (s->cancel == PGSCHED__CANCEL_NONE || reason == PGSCHED__CANCEL_LEASE_LOST)
        PGSCHED__STORE(&s->cancel, reason);
    pthread_cond_broadcast(&s->cv);
}

static pgsched__slot *pgsched__find_slot(pgsched_node *n, const char *name, const char *key)
{
    int i;
    for (i = 0; i < n->nslots; i++) {
        pgsched__slot *s = &n->slots[i];
        if (s->state != PGSCHED__SLOT_FREE && s->job.count &&
            strcmp(s->job.items[0].name, name) == 0 && strcmp(s->job.items[0].key, key) == 0)
            return s;
    }
    return NULL;
}

/* ---- dispatcher steps (each called without n->mu held) ---- */

static void pgsched__store_trouble(pgsched_node *n, const char *what, const pgsched_error *e)
{
    pgsched_time now = pgsched__monotonic();
    /* one line per five seconds at most while the database is away */
    if (e->code != PGSCHED_ERR_CONNECTION || now - n->last_error_log > 5 * PGSCHED_SECOND) {
        n->last_error_log = now;
        pgsched__log(n, e->code == PGSCHED_ERR_CONNECTION ? PGSCHED_LOG_WARN : PGSCHED_LOG_ERROR,
                     "%s: %s", what, e->message);
    }
}

static void pgsched__flush_outcomes(pgsched_node *n)
{
    pgsched__pending *batch;
    pgsched_outcome *os;
    pgsched_finish_result *rs;
    pgsched_error e;
    size_t count, i;
    pgsched_result r;

    pthread_mutex_lock(&n->mu);
    count = n->npending;
    if (!count || pgsched__monotonic() < n->outcome_retry_at) {
        pthread_mutex_unlock(&n->mu);
        return;
    }
    /* Take the queue; new outcomes start a fresh one while this batch is written. */
    batch = n->pending;
    n->pending = NULL;
    n->npending = n->pending_cap = 0;
    pthread_mutex_unlock(&n->mu);

    os = (pgsched_outcome *)pgsched__malloc(&n->alloc, count * sizeof *os);
    rs = (pgsched_finish_result *)pgsched__calloc(&n->alloc, count * sizeof *rs);
    if (!os || !rs) {
        r = pgsched__fail(&e, PGSCHED_ERR_NOMEM, "out of memory writing outcomes");
    } else {
        for (i = 0; i < count; i++) os[i] = batch[i].o;
        r = pgsched_store_finish(n->store, os, count, rs, &e);
    }
    pthread_mutex_lock(&n->mu);
    if (r != PGSCHED_OK) {
        /* Keep them (in front of newer ones) and try again shortly. */
        size_t total = count + n->npending;
        pgsched__pending *merged =
            (pgsched__pending *)pgsched__realloc(&n->alloc, batch, total * sizeof *merged);
        if (merged) {
            for (i = 0; i < n->npending; i++) merged[count + i] = n->pending[i];
            pgsched__free(&n->alloc, n->pending);
            n->pending = merged;
            n->npending = n->pending_cap = total;
            batch = NULL;
        } else {
            for (i = 0; i < count; i++) pgsched__pending_free(n, &batch[i]);
        }
        n->outcome_retry_at = pgsched__monotonic() + (r == PGSCHED_ERR_CONNECTION
                                                          ? 200 * PGSCHED_MILLISECOND
                                                          : n->cfg.poll_interval);
        pthread_mutex_unlock(&n->mu);
        pgsched__store_trouble(n, "recording outcomes", &e);
    } else {
        for (i = 0; i < count; i++) {
            pgsched__pending *p = &batch[i];
            if (rs[i].code == PGSCHED_OK) {
                switch (p->counter) {
                case PGSCHED__COUNT_SUCCESS: n->counters.succeeded++; break;
                case PGSCHED__COUNT_FAILURE: n->counters.failed++; break;
                case PGSCHED__COUNT_RETRY:
                    n->counters.failed++;
                    n->counters.retried++;
                    break;
                case PGSCHED__COUNT_CANCELLED: n->counters.cancelled++; break;
                case PGSCHED__COUNT_STALLED: n->counters.stalled_taken_back++; break;
                default: break;
                }
                if (rs[i].new_status == PGSCHED_PENDING && rs[i].next_run &&
                    (!n->known_due || rs[i].next_run < n->known_due) &&
                    pgsched__find_type(n, p->name) && pgsched__find_type(n, p->name)->t.handler)
                    n->known_due = rs[i].next_run;
            } else {
                n->counters.lease_lost++;
                pgsched__log(n, PGSCHED_LOG_WARN,
                             "%s/%s: the lease was lost before the outcome was recorded "
                             "(another node took the row back)",
                             p->name, p->key);
            }
        }
        pthread_mutex_unlock(&n->mu);
        for (i = 0; i < count; i++)
            if (rs[i].code == PGSCHED_OK)
                pgsched__cb_push(n, batch[i].name, batch[i].key, PGSCHED_RUNNING,
                                 rs[i].new_status, rs[i].next_run, rs[i].version, n->id, 0);
        for (i = 0; i < count; i++) pgsched__pending_free(n, &batch[i]);
    }
    pgsched__free(&n->alloc, batch);
    pgsched__free(&n->alloc, os);
    pgsched__free(&n->alloc, rs);
}

/* The leases this node holds: running slots and outcomes not yet written. Caller holds mu. */
static size_t pgsched__collect_leases(pgsched_node *n, pgsched_lease *ls, size_t cap)
{
    size_t k = 0, i;
    int s;
    for (s = 0; s < n->nslots && k < cap; s++) {
        pgsched__slot *sl = &n->slots[s];
        if (sl->state == PGSCHED__SLOT_FREE || !sl->job.count || sl->released) continue;
        ls[k].name = sl->job.items[0].name;
        ls[k].key = sl->job.items[0].key;
        ls[k].token = sl->job.items[0].lease;
        k++;
    }
    for (i = 0; i < n->npending && k < cap; i++) {
        ls[k].name = n->pending[i].name;
        ls[k].key = n->pending[i].key;
        ls[k].token = n->pending[i].o.token;
        k++;
    }
    return k;
}

static void pgsched__heartbeat(pgsched_node *n, int renew)
{
    pgsched_lease *ls;
    pgsched_lease_state *st;
    char **names, **keys;
    size_t cap, k, i;
    pgsched_time now = 0, before;
    pgsched_error e;
    pgsched_result r;

    pthread_mutex_lock(&n->mu);
    cap = (size_t)n->nslots + n->npending;
    ls = (pgsched_lease *)pgsched__malloc(&n->alloc, (cap + 1) * sizeof *ls);
    st = (pgsched_lease_state *)pgsched__malloc(&n->alloc, (cap + 1) * sizeof *st);
    names = (char **)pgsched__calloc(&n->alloc, (cap + 1) * sizeof *names);
    keys = (char **)pgsched__calloc(&n->alloc, (cap + 1) * sizeof *keys);
    k = 0;
    if (ls && st && names && keys) {
        k = pgsched__collect_leases(n, ls, cap);
        /* copies: the rows may be freed by a worker while the statement runs */
        for (i = 0; i < k; i++) {
            names[i] = pgsched__strdup(&n->alloc, ls[i].name);
            keys[i] = pgsched__strdup(&n->alloc, ls[i].key);
            if (!names[i] || !keys[i]) {
                k = i;
                break;
            }
            ls[i].name = names[i];
            ls[i].key = keys[i];
        }
    }
    pthread_mutex_unlock(&n->mu);
    if (!ls || !st || !names || !keys) {
        pgsched__log(n, PGSCHED_LOG_ERROR, "out of memory in a heartbeat");
        goto done;
    }
    if (!renew && k == 0) goto done;
    before = pgsched__monotonic();
    r = pgsched_store_heartbeat(n->store, n->id, ls, k, renew, st, &now, &e);
    if (r != PGSCHED_OK) {
        pgsched__store_trouble(n, renew ? "heartbeat" : "checking for cancel requests", &e);
        goto done;
    }
    pgsched__clock_sample(n, before, now);
    pthread_mutex_lock(&n->mu);
    for (i = 0; i < k; i++) {
        pgsched__slot *s = pgsched__find_slot(n, ls[i].name, ls[i].key);
        if (s && s->job.items[0].lease != ls[i].token) s = NULL;
        if (st[i].lost) {
            if (s) {
                pgsched__log(n, PGSCHED_LOG_WARN,
                             "%s/%s: lease lost (the row was taken back); stopping the run",
                             ls[i].name, ls[i].key);
                n->counters.lease_lost++;
                pgsched__cancel_slot(s, PGSCHED__CANCEL_LEASE_LOST);
            } else {
                size_t j;
                for (j = 0; j < n->npending; j++)
                    if (n->pending[j].o.token == ls[i].token) n->pending[j].o.token = -1;
                /* written with token -1 it fails as lease lost, and is counted as such */
            }
        } else if (st[i].cancel_requested && s) {
            pgsched__cancel_slot(s, PGSCHED__CANCEL_REQUESTED);
        }
    }
    pthread_mutex_unlock(&n->mu);
done:
    if (names)
        for (i = 0; i < k; i++) pgsched__free(&n->alloc, names[i]);
    if (keys)
        for (i = 0; i < k; i++) pgsched__free(&n->alloc, keys[i]);
    pgsched__free(&n->alloc, names);
    pgsched__free(&n->alloc, keys);
    pgsched__free(&n->alloc, ls);
    pgsched__free(&n->alloc, st);
}

/* Hands claimed rows to free slots. Caller holds mu. */
static void pgsched__assign(pgsched_node *n, const pgsched_job *job)
{
    int i;
    for (i = 0; i < n->nslots; i++) {
        pgsched__slot *s = &n->slots[i];
        if (s->state != PGSCHED__SLOT_FREE) continue;
        pgsched_job_list_clear(&s->job);
        if (pgsched_job_list_push(&s->job, job) != PGSCHED_OK) break;
        s->type = pgsched__find_type(n, job->name);
        s->run.name = s->job.items[0].name;
        s->run.key = s->job.items[0].key;
        s->run.params = s->job.items[0].params ? s->job.items[0].params : "{}";
        s->run.attempt = s->job.items[0].attempt;
        s->run.max_retries = s->job.items[0].max_retries;
        s->run.scheduled_for = s->job.items[0].next_run;
        s->run.user = s->type ? s->type->t.user : NULL;
        s->cancel = s->job.items[0].cancel_requested ? PGSCHED__CANCEL_REQUESTED
                                                     : PGSCHED__CANCEL_NONE;
        s->released = 0;
        s->started_mono = pgsched__monotonic();
        s->deadline = s->type && s->type->t.timeout > 0 && s->type->t.timeout != PGSCHED_NEVER
                          ? s->started_mono + s->type->t.timeout
                          : PGSCHED_NEVER;
        s->state = PGSCHED__SLOT_READY;
        n->free_slots--;
        n->counters.running++;
        n->counters.claimed++;
        pthread_cond_signal(&s->cv);
        return;
    }
    /* No slot (cannot happen: we never claim more than the free slots). */
    PGSCHED_ASSERT(0);
}

static void pgsched__claim(pgsched_node *n)
{
    pgsched_claim_request q;
    pgsched_claim_outcome info;
    pgsched_job_list got;
    pgsched_error e;
    pgsched_result r;
    pgsched_time before;
    size_t i;
    int want;

    pthread_mutex_lock(&n->mu);
    want = n->free_slots;
    n->claim_now = 0;
    pthread_mutex_unlock(&n->mu);
    if (want <= 0 || !n->nrun) return;
    pgsched_job_list_init(&got, &n->alloc);
    memset(&q, 0, sizeof q);
    q.node_id = n->id;
    q.names = n->run_names;
    q.name_count = n->nrun;
    q.max = want;
    before = pgsched__monotonic();
    r = pgsched_store_claim(n->store, &q, &got, &info, &e);
    pthread_mutex_lock(&n->mu);
    n->counters.polls++;
    n->counters.claim_latency_last = pgsched__monotonic() - before;
    if (n->counters.claim_latency_last > n->counters.claim_latency_max)
        n->counters.claim_latency_max = n->counters.claim_latency_last;
    n->counters.claim_latency_total += n->counters.claim_latency_last;
    if (r != PGSCHED_OK) {
        n->claim_retry_at = pgsched__monotonic() + (r == PGSCHED_ERR_CONNECTION
                                                        ? 200 * PGSCHED_MILLISECOND
                                                        : n->cfg.poll_interval);
        pthread_mutex_unlock(&n->mu);
        pgsched__store_trouble(n, "claiming", &e);
        pgsched_job_list_free(&got);
        return;
    }
    PGSCHED__STORE(&n->offset, info.now - (before + (pgsched__monotonic() - before) / 2));
    for (i = 0; i < got.count; i++) pgsched__assign(n, &got.items[i]);
    /* A full batch may have left due rows behind: claim again as soon as a slot frees.
       A partial batch with due rows left means other nodes' claims hold those rows: look
       again shortly rather than at once. */
    if ((int)got.count == want) n->known_due = info.now;
    else if (info.next_due && info.next_due <= info.now)
        n->known_due = info.now + 20 * PGSCHED_MILLISECOND;
    else n->known_due = info.next_due;
    pthread_mutex_unlock(&n->mu);
    for (i = 0; i < got.count; i++)
        pgsched__cb_push(n, got.items[i].name, got.items[i].key, PGSCHED_PENDING,
                         PGSCHED_RUNNING, 0, got.items[i].version, n->id, 0);
    pgsched_job_list_free(&got);
}

static void pgsched__take_back(pgsched_node *n)
{
    pgsched_job_list got;
    pgsched_error e;
    pgsched_result r;
    size_t i;
    pgsched_job_list_init(&got, &n->alloc);
    r = pgsched_store_take_back(n->store, n->id, n->cfg.stall_timeout, PGSCHED__TAKE_BACK_BATCH,
                                &got, &e);
    if (r != PGSCHED_OK) {
        pgsched__store_trouble(n, "taking back stalled runs", &e);
    }
    for (i = 0; i < got.count; i++) {
        const pgsched_job *job = &got.items[i];
        pgsched_outcome o;
        char msg[200];
        int counter;
        const pgsched__type *t = pgsched__find_type(n, job->name);
        memset(&o, 0, sizeof o);
        counter = pgsched__decide(n, job, t, PGSCHED_OUTCOME_STALLED, pgsched__db_now(n), &o);
        snprintf(msg, sizeof msg,
                 "stalled: the node running attempt %d stopped renewing its lease for more "
                 "than %lld ms",
                 job->attempt, (long long)(n->cfg.stall_timeout / 1000));
        pgsched__log(n, PGSCHED_LOG_WARN, "%s/%s: %s; taken back", job->name, job->key, msg);
        pthread_mutex_lock(&n->mu);
        pgsched__queue_outcome(n, job, &o, pgsched__strdup(&n->alloc, msg), counter);
        pthread_mutex_unlock(&n->mu);
    }
    pgsched_job_list_free(&got);
}

static void pgsched__register_node(pgsched_node *n)
{
    pgsched_node_record rec;
    pgsched_error e;
    memset(&rec, 0, sizeof rec);
    rec.id = n->id;
    rec.host = n->host;
    rec.pid = (int64_t)getpid();
    rec.names = n->all_names;
    rec.name_count = n->ntypes;
    if (pgsched_store_node_register(n->store, &rec, &e) != PGSCHED_OK)
        pgsched__store_trouble(n, "registering the node", &e);
}

static void pgsched__cleanup(pgsched_node *n)
{
    pgsched_cleanup_request q;
    pgsched_cleanup_outcome out;
    pgsched_error e;
    /* Re-registering keeps the node's row (and so its types) alive even if it was deleted
       while this node was cut off from the database. */
    pgsched__register_node(n);
    memset(&q, 0, sizeof q);
    q.node_id = n->id;
    q.finished_retention = n->cfg.finished_retention;
    q.history_retention = n->cfg.history_retention;
    q.orphan_timeout = n->cfg.orphan_timeout;
    q.stall_timeout = n->cfg.stall_timeout;
    if (pgsched_store_cleanup(n->store, &q, &out, &e) != PGSCHED_OK) {
        pgsched__store_trouble(n, "cleaning up", &e);
        return;
    }
    if (out.finished_deleted || out.history_deleted || out.orphans_deleted || out.nodes_deleted)
        pgsched__log(n, PGSCHED_LOG_INFO,
                     "clean-up deleted %lu finished rows, %lu history rows, %lu orphans, %lu "
                     "dead nodes",
                     (unsigned long)out.finished_deleted, (unsigned long)out.history_deleted,
                     (unsigned long)out.orphans_deleted, (unsigned long)out.nodes_deleted);
}

/* Gives back the leases of runs still going when the shutdown timeout ran out. */
static void pgsched__release_all(pgsched_node *n)
{
    int i;
    pthread_mutex_lock(&n->mu);
    for (i = 0; i < n->nslots; i++) {
        pgsched__slot *s = &n->slots[i];
        pgsched_outcome o;
        if (s->state == PGSCHED__SLOT_FREE || s->released || !s->job.count) continue;
        if (s->cancel == PGSCHED__CANCEL_LEASE_LOST) continue;
        s->released = 1;
        memset(&o, 0, sizeof o);
        o.outcome = PGSCHED_OUTCOME_RELEASED;
        o.status = PGSCHED_PENDING;
        o.attempt_rule = PGSCHED_ATTEMPT_UNCOUNT;
        pgsched__queue_outcome(n, &s->job.items[0], &o, NULL, PGSCHED__COUNT_NONE);
        pgsched__log(n, PGSCHED_LOG_WARN,
                     "%s/%s: still running at the end of the shutdown timeout; lease given back",
                     s->job.items[0].name, s->job.items[0].key);
    }
    pthread_mutex_unlock(&n->mu);
}

static pgsched_time pgsched__min_time(pgsched_time a, pgsched_time b) { return a < b ? a : b; }

static void *pgsched__dispatcher_main(void *arg)
{
    pgsched_node *n = (pgsched_node *)arg;
    int released = 0;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        pgsched_time now = pgsched__monotonic(), wake;
        pgsched_time db_now = now + PGSCHED__LOAD(&n->offset);
        int stopping = n->state >= PGSCHED__STOPPING;
        int running = n->nslots - n->free_slots, i;
        int do_flush, do_hb, do_cc, do_claim, do_stall, do_clean;

        if (stopping && running == 0 && n->npending == 0) break;
        if (stopping && !released && now >= n->shutdown_deadline) {
            pthread_mutex_unlock(&n->mu);
            pgsched__release_all(n);
            released = 1;
            pthread_mutex_lock(&n->mu);
            continue;
        }
        if (released && n->npending == 0) break;
        if (released && now >= n->shutdown_deadline + 2 * PGSCHED_SECOND) {
            /* The database stayed away: the leases expire and other nodes take the rows. */
            break;
        }
        /* per-run timeouts */
        for (i = 0; i < n->nslots; i++) {
            pgsched__slot *s = &n->slots[i];
            if (s->state == PGSCHED__SLOT_RUNNING && now >= s->deadline &&
                s->cancel == PGSCHED__CANCEL_NONE)
                pgsched__cancel_slot(s, PGSCHED__CANCEL_TIMEOUT);
        }
        do_flush = n->npending > 0 && now >= n->outcome_retry_at;
        do_hb = now >= n->next_heartbeat;
        do_cc = !do_hb && running > 0 && (now >= n->next_cancel_check || n->wake_cancel_check);
        do_claim = !stopping && n->free_slots > 0 && n->nrun > 0 && now >= n->claim_retry_at &&
                   (n->claim_now || n->resync || now >= n->next_poll ||
                    (n->known_due && n->known_due <= db_now));
        do_stall = !stopping && now >= n->next_stall;
        do_clean = !stopping && now >= n->next_cleanup;
        if (do_flush || do_hb || do_cc || do_claim || do_stall || do_clean) {
            if (do_hb) n->next_heartbeat = now + n->cfg.heartbeat_interval;
            if (do_hb || do_cc) {
                n->next_cancel_check = now + n->cfg.cancel_check_period;
                n->wake_cancel_check = 0;
            }
            if (do_claim) {
                n->next_poll = now + pgsched__jitter(n, n->cfg.poll_interval, 90, 110);
                n->resync = 0;
            }
            if (do_stall) n->next_stall = now + pgsched__jitter(n, n->cfg.stall_check_period, 80, 120);
            if (do_clean) n->next_cleanup = now + pgsched__jitter(n, n->cfg.cleanup_period, 80, 120);
            pthread_mutex_unlock(&n->mu);
            /* Outcomes first: they free capacity the claim then fills in the same pass. */
            if (do_flush) pgsched__flush_outcomes(n);
            if (do_hb || do_cc) pgsched__heartbeat(n, do_hb);
            if (do_claim) pgsched__claim(n);
            if (do_stall) pgsched__take_back(n);
            if (do_clean) pgsched__cleanup(n);
            pthread_mutex_lock(&n->mu);
            continue;
        }
        wake = n->next_heartbeat;
        if (n->npending) wake = pgsched__min_time(wake, n->outcome_retry_at);
        if (running) wake = pgsched__min_time(wake, n->next_cancel_check);
        if (stopping) {
            wake = pgsched__min_time(wake, released ? n->shutdown_deadline + 2 * PGSCHED_SECOND
                                                    : n->shutdown_deadline);
        } else {
            wake = pgsched__min_time(wake, n->next_stall);
            wake = pgsched__min_time(wake, n->next_cleanup);
            if (n->free_slots > 0 && n->nrun > 0) {
                pgsched_time due = n->next_poll;
                if (n->known_due)
                    due = pgsched__min_time(due, n->known_due - PGSCHED__LOAD(&n->offset));
                wake = pgsched__min_time(wake, due > n->claim_retry_at ? due : n->claim_retry_at);
            }
        }
        for (i = 0; i < n->nslots; i++)
            if (n->slots[i].state == PGSCHED__SLOT_RUNNING && n->slots[i].cancel == PGSCHED__CANCEL_NONE)
                wake = pgsched__min_time(wake, n->slots[i].deadline);
        if (wake > now) pgsched__cond_wait_until(&n->cv, &n->mu, wake);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- listener ---- */

static void *pgsched__listener_main(void *arg)
{
    pgsched_node *n = (pgsched_node *)arg;
    pgsched_event ev[PGSCHED__EVENT_BATCH];
    for (;;) {
        size_t count = 0, i;
        pgsched_error e;
        pgsched_result r;
        pthread_mutex_lock(&n->mu);
        if (n->state >= PGSCHED__STOPPED) {
            pthread_mutex_unlock(&n->mu);
            break;
        }
        pthread_mutex_unlock(&n->mu);
        r = pgsched_store_listen_wait(n->store, n->listen, 5 * PGSCHED_SECOND, ev,
                                      PGSCHED__EVENT_BATCH, &count, &e);
        if (r != PGSCHED_OK) {
            pgsched__store_trouble(n, "listening", &e);
            continue;
        }
        pthread_mutex_lock(&n->mu);
        for (i = 0; i < count; i++) {
            const pgsched_event *v = &ev[i];
            if (v->kind == PGSCHED_EVENT_RESYNC) {
                /* Something may have been missed: poll for due work and cancels at once. */
                n->resync = 1;
                n->wake_cancel_check = 1;
                pthread_cond_signal(&n->cv);
            } else if (v->kind == PGSCHED_EVENT_CANCEL) {
                if (strcmp(v->owner, n->id) == 0) {
                    pgsched__slot *s = pgsched__find_slot(n, v->name, v->key);
                    if (s) pgsched__cancel_slot(s, PGSCHED__CANCEL_REQUESTED);
                }
            } else if (v->kind == PGSCHED_EVENT_CHANGE && strcmp(v->node, n->id) != 0) {
                const pgsched__type *t = pgsched__find_type(n, v->name);
                if (v->new_status == PGSCHED_PENDING && v->next_run && t && t->t.handler &&
                    (!n->known_due || v->next_run < n->known_due)) {
                    n->known_due = v->next_run;
                    pthread_cond_signal(&n->cv);
                }
            }
        }
        pthread_mutex_unlock(&n->mu);
        for (i = 0; i < count; i++)
            if (ev[i].kind == PGSCHED_EVENT_CHANGE) pgsched__cb_notified(n, &ev[i]);
    }
    return NULL;
}

/* ---- public API ---- */

/* A node id: 32 hex digits from the system's random source, fresh at every start. */
static void pgsched__make_id(pgsched_node *n)
{
    unsigned char b[16];
    int i, ok = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        ok = fread(b, 1, sizeof b, f) == sizeof b;
        fclose(f);
    }
    if (!ok) {
        /* no random source: time, pid and an address, mixed */
        uint64_t x = (uint64_t)pgsched_now() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)n;
        for (i = 0; i < 16; i++) {
            x = (x ^ (x >> 31)) * 0xBF58476D1CE4E5B9ULL + (uint64_t)i;
            b[i] = (unsigned char)(x >> 24);
        }
    }
    for (i = 0; i < 16; i++) snprintf(n->id + 2 * i, 3, "%02x", b[i]);
    n->rng = 0;
    for (i = 0; i < 16; i++) n->rng = (n->rng << 8 | (n->rng >> 56)) ^ b[i];
}

static pgsched_result pgsched__check_duration_field(const char *field, pgsched_duration v,
                                                    int allow_never, pgsched_error *err)
{
    if (v < 0)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "%s: a duration cannot be negative", field);
    if (v == PGSCHED_NEVER && !allow_never)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "%s: PGSCHED_NEVER is not allowed here",
                             field);
    if (v != PGSCHED_NEVER && v > PGSCHED__DURATION_MAX)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "%s: more than 100 years", field);
    return PGSCHED_OK;
}

#define PGSCHED__DEF(v, d) ((v) ? (v) : (d))

PGSCHED_DEF pgsched_result pgsched_create(const pgsched_config *cfg, pgsched_node **out,
                                          pgsched_error *err)
{
    pgsched_allocator a;
    pgsched_node *n;
    pgsched_config c;
    pgsched_result r;
    int i;
    if (!out) return pgsched__null(err, "the output node");
    *out = NULL;
    if (!cfg) return pgsched__null(err, "the configuration");
    c = *cfg;
    if (!c.store && !c.conninfo)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "store/conninfo: give a store or a PostgreSQL connection string");
    if (c.max_concurrent < 0 || c.max_concurrent > 1024)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "max_concurrent: %d is outside 1..1024 (0 means the default, 4)",
                             c.max_concurrent);
    if ((r = pgsched__check_duration_field("poll_interval", c.poll_interval, 0, err)) ||
        (r = pgsched__check_duration_field("heartbeat_interval", c.heartbeat_interval, 0, err)) ||
        (r = pgsched__check_duration_field("stall_timeout", c.stall_timeout, 0, err)) ||
        (r = pgsched__check_duration_field("cancel_check_period", c.cancel_check_period, 0, err)) ||
        (r = pgsched__check_duration_field("retry_base", c.retry_base, 0, err)) ||
        (r = pgsched__check_duration_field("retry_cap", c.retry_cap, 0, err)) ||
        (r = pgsched__check_duration_field("shutdown_timeout", c.shutdown_timeout, 0, err)) ||
        (r = pgsched__check_duration_field("finished_retention", c.finished_retention, 1, err)) ||
        (r = pgsched__check_duration_field("history_retention", c.history_retention, 1, err)) ||
        (r = pgsched__check_duration_field("orphan_timeout", c.orphan_timeout, 1, err)) ||
        (r = pgsched__check_duration_field("stall_check_period", c.stall_check_period, 0, err)) ||
        (r = pgsched__check_duration_field("cleanup_period", c.cleanup_period, 0, err)))
        return r;
    c.max_concurrent = PGSCHED__DEF(c.max_concurrent, 4);
    c.poll_interval = PGSCHED__DEF(c.poll_interval, PGSCHED_SECOND);
    c.stall_timeout = PGSCHED__DEF(c.stall_timeout, 30 * PGSCHED_SECOND);
    c.heartbeat_interval = PGSCHED__DEF(c.heartbeat_interval,
                                        c.stall_timeout / 6 < 5 * PGSCHED_SECOND
                                            ? c.stall_timeout / 6
                                            : 5 * PGSCHED_SECOND);
    if (c.heartbeat_interval <= 0) c.heartbeat_interval = 1;
    c.cancel_check_period = PGSCHED__DEF(c.cancel_check_period, PGSCHED_SECOND);
    c.retry_base = PGSCHED__DEF(c.retry_base, PGSCHED_SECOND);
    c.retry_cap = PGSCHED__DEF(c.retry_cap, 10 * PGSCHED_MINUTE);
    c.shutdown_timeout = PGSCHED__DEF(c.shutdown_timeout, 30 * PGSCHED_SECOND);
    c.finished_retention = PGSCHED__DEF(c.finished_retention, 7 * PGSCHED_DAY);
    c.history_retention = PGSCHED__DEF(c.history_retention, 7 * PGSCHED_DAY);
    c.orphan_timeout = PGSCHED__DEF(c.orphan_timeout, 7 * PGSCHED_DAY);
    c.stall_check_period = PGSCHED__DEF(c.stall_check_period, 5 * PGSCHED_SECOND);
    c.cleanup_period = PGSCHED__DEF(c.cleanup_period, PGSCHED_MINUTE);
    c.log_level = c.log_level ? c.log_level : PGSCHED_LOG_WARN;
    if (c.heartbeat_interval >= c.stall_timeout)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "heartbeat_interval (%lld ms) must be below stall_timeout (%lld ms)",
                             (long long)(c.heartbeat_interval / 1000),
                             (long long)(c.stall_timeout / 1000));
    if (c.retry_base > c.retry_cap)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "retry_base (%lld ms) must not exceed retry_cap (%lld ms)",
                             (long long)(c.retry_base / 1000), (long long)(c.retry_cap / 1000));
    if (c.log_level < PGSCHED_LOG_DEBUG || c.log_level > PGSCHED_LOG_OFF)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "log_level: %d is not a level",
                             (int)c.log_level);
    if (!c.store) {
        if ((r = pgsched_validate_identifier("schema", c.schema ? c.schema : "public", 63, err)) ||
            (r = pgsched_validate_identifier("prefix", c.prefix ? c.prefix : "pgsched_",
                                             63 - PGSCHED__PG_SUFFIX_MAX, err)))
            return r;
    }
    if (c.default_zone) {
        /* Checked now so that a typo fails at start-up, not at the first run. */
        pgsched_cron_options o;
        pgsched_cron *probe;
        pgsched_error e;
        memset(&o, 0, sizeof o);
        o.default_zone = c.default_zone;
        o.allocator = c.allocator;
        if (pgsched_cron_parse("0 0 * * *", &o, &probe, &e) != PGSCHED_OK)
            return pgsched__fail(err, PGSCHED_ERR_CONFIG, "default_zone: %s", e.message);
        pgsched_cron_free(probe);
    }

    a = pgsched__allocator(c.allocator);
    n = (pgsched_node *)pgsched__calloc(&a, sizeof *n);
    if (!n) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a node");
    n->alloc = a;
    n->conninfo = pgsched__strdup(&a, c.conninfo);
    n->schema = pgsched__strdup(&a, c.schema);
    n->prefix = pgsched__strdup(&a, c.prefix);
    n->default_zone = pgsched__strdup(&a, c.default_zone);
    c.conninfo = n->conninfo;
    c.schema = n->schema;
    c.prefix = n->prefix;
    c.default_zone = n->default_zone;
    c.allocator = NULL;
    n->cfg = c;
    n->store = c.store;
    n->notifications = !c.no_notifications;
    n->nslots = c.max_concurrent;
    n->slots = (pgsched__slot *)pgsched__calloc(&a, (size_t)n->nslots * sizeof *n->slots);
    if ((c.conninfo && !n->conninfo) || (c.schema && !n->schema) || (c.prefix && !n->prefix) ||
        (c.default_zone && !n->default_zone) || !n->slots) {
        pgsched__free(&a, n->conninfo);
        pgsched__free(&a, n->schema);
        pgsched__free(&a, n->prefix);
        pgsched__free(&a, n->default_zone);
        pgsched__free(&a, n->slots);
        pgsched__free(&a, n);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a node");
    }
    pthread_mutex_init(&n->mu, NULL);
    pgsched__cond_init(&n->cv);
    pthread_cond_init(&n->done_cv, NULL);
    pthread_mutex_init(&n->cron_mu, NULL);
    pthread_mutex_init(&n->cb_mu, NULL);
    pthread_cond_init(&n->cb_cv, NULL);
    for (i = 0; i < n->nslots; i++) {
        n->slots[i].node = n;
        n->slots[i].index = i;
        n->slots[i].run.node = n;
        pgsched__cond_init(&n->slots[i].cv);
        pgsched_job_list_init(&n->slots[i].job, &n->alloc);
    }
    n->free_slots = n->nslots;
    pgsched__make_id(n);
    if (gethostname(n->host, sizeof n->host - 1) != 0) pgsched__copy_text(n->host, sizeof n->host, "unknown");
    n->host[sizeof n->host - 1] = '\0';
    if (pgsched__utf8_check(n->host, strlen(n->host)) != (size_t)-1)
        pgsched__copy_text(n->host, sizeof n->host, "unknown");
    n->state = PGSCHED__CREATED;
    *out = n;
    return pgsched__ok(err);
}

PGSCHED_DEF pgsched_result pgsched_init(pgsched_node *n, pgsched_error *err)
{
    pgsched_result r;
    pgsched_time before, now = 0;
    if (!n) return pgsched__null(err, "the node");
    pthread_mutex_lock(&n->mu);
    if (n->state != PGSCHED__CREATED) {
        int st = n->state;
        pthread_mutex_unlock(&n->mu);
        if (st == PGSCHED__INITIALIZED || st == PGSCHED__STARTED) return pgsched__ok(err);
        return pgsched__fail(err, PGSCHED_ERR_STATE, "the node is shut down");
    }
    pthread_mutex_unlock(&n->mu);
    if (!n->store) {
        pgsched_pg_config pc;
        char safe[512];
        memset(&pc, 0, sizeof pc);
        pc.conninfo = n->conninfo;
        pc.schema = n->schema;
        pc.prefix = n->prefix;
        pc.no_create_schema = n->cfg.no_create_schema;
        pc.no_notifications = n->cfg.no_notifications;
        pc.allocator = &n->alloc;
        r = pgsched_pg_store_create(&pc, &n->store, err);
        if (r != PGSCHED_OK) return r;
        n->owns_store = 1;
        pgsched_conninfo_redact(n->conninfo, safe, sizeof safe);
        pgsched__log(n, PGSCHED_LOG_INFO, "connecting to %s", safe);
    }
    r = pgsched_store_setup(n->store, err);
    if (r != PGSCHED_OK) return r;
    before = pgsched__monotonic();
    r = pgsched_store_now(n->store, &now, err);
    if (r != PGSCHED_OK) return r;
    pgsched__clock_sample(n, before, now);
    pthread_mutex_lock(&n->mu);
    if (n->state == PGSCHED__CREATED) n->state = PGSCHED__INITIALIZED;
    pthread_mutex_unlock(&n->mu);
    return pgsched__ok(err);
}

PGSCHED_DEF pgsched_result pgsched_register(pgsched_node *n, const pgsched_job_type *type,
                                            pgsched_error *err)
{
    pgsched_result r;
    pgsched__type t;
    if (!n) return pgsched__null(err, "the node");
    if (!type) return pgsched__null(err, "the job type");
    if ((r = pgsched_validate_name(type->name, err)) != PGSCHED_OK) return r;
    if (type->max_retries < PGSCHED_NO_RETRIES || type->max_retries > PGSCHED__MAX_RETRIES)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "job type %s: max_retries %d is outside -1..%d", type->name,
                             type->max_retries, PGSCHED__MAX_RETRIES);
    {
        pgsched_error e;
        if (pgsched__check_duration_field("retry_base", type->retry_base, 0, &e) ||
            pgsched__check_duration_field("retry_cap", type->retry_cap, 0, &e) ||
            pgsched__check_duration_field("timeout", type->timeout, 1, &e))
            return pgsched__fail(err, PGSCHED_ERR_CONFIG, "job type %s: %s", type->name,
                                 e.message);
    }
    pthread_mutex_lock(&n->mu);
    if (n->state >= PGSCHED__STARTED) {
        pthread_mutex_unlock(&n->mu);
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "job types are registered before pgsched_start");
    }
    if (pgsched__find_type(n, type->name)) {
        pthread_mutex_unlock(&n->mu);
        return pgsched__fail(err, PGSCHED_ERR_STATE, "job type %s is already registered",
                             type->name);
    }
    if (n->ntypes == n->types_cap) {
        size_t ncap = n->types_cap ? n->types_cap * 2 : 8;
        pgsched__type *nt = (pgsched__type *)pgsched__realloc(&n->alloc, n->types, ncap * sizeof *nt);
        if (!nt) {
            pthread_mutex_unlock(&n->mu);
            return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory registering a type");
        }
        n->types = nt;
        n->types_cap = ncap;
    }
    t.t = *type;
    t.name = pgsched__strdup(&n->alloc, type->name);
    if (!t.name) {
        pthread_mutex_unlock(&n->mu);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory registering a type");
    }
    t.t.name = t.name;
    n->types[n->ntypes++] = t;
    pthread_mutex_unlock(&n->mu);
    return pgsched__ok(err);
}

PGSCHED_DEF pgsched_result pgsched_start(pgsched_node *n, pgsched_error *err)
{
    pgsched_result r;
    size_t i;
    int k;
    pgsched_time now;
    if (!n) return pgsched__null(err, "the node");
    pthread_mutex_lock(&n->mu);
    if (n->state >= PGSCHED__STARTED) {
        pthread_mutex_unlock(&n->mu);
        return pgsched__fail(err, PGSCHED_ERR_STATE, n->state == PGSCHED__STARTED
                                                         ? "the node is already started"
                                                         : "the node is shut down");
    }
    pthread_mutex_unlock(&n->mu);
    if ((r = pgsched_init(n, err)) != PGSCHED_OK) return r;

    pgsched__free(&n->alloc, n->run_names);
    pgsched__free(&n->alloc, n->all_names);
    n->run_names = (const char **)pgsched__calloc(&n->alloc, (n->ntypes + 1) * sizeof(char *));
    n->all_names = (const char **)pgsched__calloc(&n->alloc, (n->ntypes + 1) * sizeof(char *));
    if (!n->run_names || !n->all_names)
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory starting the node");
    n->nrun = 0;
    for (i = 0; i < n->ntypes; i++) {
        n->all_names[i] = n->types[i].name;
        if (n->types[i].t.handler) n->run_names[n->nrun++] = n->types[i].name;
    }
    pgsched__register_node(n);
    if (n->notifications) {
        r = pgsched_store_listen_open(n->store, &n->listen, err);
        if (r != PGSCHED_OK) return r;
    }

    pthread_mutex_lock(&n->mu);
    now = pgsched__monotonic();
    n->next_poll = now;
    n->next_heartbeat = now + n->cfg.heartbeat_interval;
    n->next_cancel_check = now + n->cfg.cancel_check_period;
    /* the first maintenance runs at a random point of its period: nodes started together
       spread out from the start */
    n->next_stall = now + pgsched__jitter(n, n->cfg.stall_check_period, 0, 100);
    n->next_cleanup = now + pgsched__jitter(n, n->cfg.cleanup_period, 0, 100);
    n->state = PGSCHED__STARTED;
    for (k = 0; k < n->nslots; k++) {
        if (pthread_create(&n->slots[k].thread, NULL, pgsched__worker_main, &n->slots[k]) != 0)
            break;
        n->slots[k].thread_started = 1;
    }
    if (k < n->nslots ||
        pthread_create(&n->dispatcher, NULL, pgsched__dispatcher_main, n) != 0) {
        n->state = PGSCHED__STOPPED;
        for (k = 0; k < n->nslots; k++) pthread_cond_broadcast(&n->slots[k].cv);
        pthread_mutex_unlock(&n->mu);
        for (k = 0; k < n->nslots; k++)
            if (n->slots[k].thread_started) {
                pthread_join(n->slots[k].thread, NULL);
                n->slots[k].thread_started = 0;
            }
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "cannot start the node's threads");
    }
    n->dispatcher_started = 1;
    if (n->cfg.on_status && pthread_create(&n->callbacker, NULL, pgsched__callback_main, n) == 0)
        n->callbacker_started = 1;
    if (n->listen && pthread_create(&n->listener, NULL, pgsched__listener_main, n) == 0) {
        n->listener_started = 1;
        pthread_mutex_lock(&n->cb_mu);
        n->cb_ordered = 1;
        pthread_mutex_unlock(&n->cb_mu);
    }
    pthread_mutex_unlock(&n->mu);
    pgsched__log(n, PGSCHED_LOG_INFO, "node started on %s with %d workers and %lu job types",
                 n->host, n->nslots, (unsigned long)n->ntypes);
    return pgsched__ok(err);
}

static pgsched_result pgsched__check_usable(pgsched_node *n, pgsched_error *err)
{
    int st;
    if (!n) return pgsched__null(err, "the node");
    pthread_mutex_lock(&n->mu);
    st = n->state;
    pthread_mutex_unlock(&n->mu);
    if (st == PGSCHED__CREATED)
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "the node is not initialised: call pgsched_init or pgsched_start first");
    if (st >= PGSCHED__STOPPING) return pgsched__fail(err, PGSCHED_ERR_STATE, "the node is shut down");
    return PGSCHED_OK;
}

/* Builds the store request for a spec: checks it against the registered type and computes
   the first run. `cron_text` receives an owned copy when the text needs the default zone. */
static pgsched_result pgsched__prepare(pgsched_node *n, const pgsched_job_spec *spec,
                                       pgsched_schedule_request *q, char **cron_text,
                                       pgsched_error *err)
{
    const pgsched__type *t;
    pgsched_result r;
    pgsched_time db_now = pgsched__db_now(n);
    const pgsched_schedule *s;
    *cron_text = NULL;
    if (!spec) return pgsched__null(err, "the job spec");
    if ((r = pgsched_validate_name(spec->name, err)) != PGSCHED_OK) return r;
    if ((r = pgsched_validate_key(spec->key, err)) != PGSCHED_OK) return r;
    t = pgsched__find_type(n, spec->name);
    if (!t)
        return pgsched__fail(err, PGSCHED_ERR_NOT_REGISTERED,
                             "job type %s is not registered on this node", spec->name);
    s = &spec->schedule;
    memset(q, 0, sizeof *q);
    q->name = spec->name;
    q->key = spec->key;
    q->params = spec->params;
    q->apply_after_run = spec->apply_after_run;
    q->node_id = n->id;
    if (spec->max_retries == 0)
        q->max_retries = t->t.max_retries == 0 ? 3 : t->t.max_retries < 0 ? 0 : t->t.max_retries;
    else if (spec->max_retries == PGSCHED_NO_RETRIES)
        q->max_retries = 0;
    else if (spec->max_retries < 0 || spec->max_retries > PGSCHED__MAX_RETRIES)
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                             "max_retries %d is outside -1..%d", spec->max_retries,
                             PGSCHED__MAX_RETRIES);
    else
        q->max_retries = spec->max_retries;
    if (s->at < 0 || (s->at && (s->at < PGSCHED_TIME_MIN || s->at > PGSCHED_TIME_MAX)))
        return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                             "schedule.at is outside years 1900..9999");
    q->kind = s->kind;
    switch (s->kind) {
    case PGSCHED_ONCE:
        q->next_run = s->at; /* 0: the store's now */
        break;
    case PGSCHED_CRON: {
        pgsched_cron *c;
        int owned;
        pgsched_duration every;
        if (!s->cron) return pgsched__fail(err, PGSCHED_ERR_CRON_SYNTAX, "the cron expression is missing (NULL)");
        r = pgsched__cron_get(n, s->cron, &c, &owned, err);
        if (r != PGSCHED_OK) return r;
        every = pgsched_cron_interval(c);
        if (every > 0) {
            q->kind = PGSCHED_INTERVAL; /* "@every" is a fixed interval */
            q->every = every;
            q->next_run = s->at ? s->at : n->cfg.run_immediately ? 0 : db_now + every;
        } else {
            /* The row carries its zone so that every node computes the same next run. */
            if (n->default_zone && strncmp(s->cron, "CRON_TZ=", 8) != 0 &&
                strncmp(s->cron, "TZ=", 3) != 0) {
                size_t len = strlen(n->default_zone) + strlen(s->cron) + 10;
                *cron_text = (char *)pgsched__malloc(&n->alloc, len);
                if (!*cron_text) {
                    if (owned) pgsched_cron_free(c);
                    return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
                }
                snprintf(*cron_text, len, "CRON_TZ=%s %s", n->default_zone, s->cron);
                q->cron = *cron_text;
            } else {
                q->cron = s->cron;
            }
            if (s->at) q->next_run = s->at;
            else if (n->cfg.run_immediately) q->next_run = 0;
            else r = pgsched_cron_next(c, db_now, &q->next_run);
            if (r != PGSCHED_OK)
                r = pgsched__fail(err, PGSCHED_ERR_NO_NEXT, "the cron schedule has no run after now");
        }
        if (owned) pgsched_cron_free(c);
        return r;
    }
    case PGSCHED_INTERVAL:
        if (s->every <= 0)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "an interval schedule needs a positive interval");
        q->every = s->every;
        q->next_run = s->at ? s->at : n->cfg.run_immediately ? 0 : db_now + s->every;
        break;
    case PGSCHED_CUSTOM:
        if (!t->t.next_run)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "job type %s has no next_run callback for a custom schedule",
                                 spec->name);
        if (s->at) q->next_run = s->at;
        else if (n->cfg.run_immediately) q->next_run = 0;
        else {
            r = t->t.next_run(t->t.next_run_user, spec->name, spec->key,
                              spec->params ? spec->params : "{}", db_now, &q->next_run);
            if (r != PGSCHED_OK)
                return pgsched__fail(err, r == PGSCHED_ERR_NO_NEXT ? r : PGSCHED_ERR_SCHEDULE,
                                     "the next-run callback of %s gave no first run: %s",
                                     spec->name, pgsched_result_string(r));
            if (q->next_run < PGSCHED_TIME_MIN || q->next_run > PGSCHED_TIME_MAX)
                return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                                     "the next-run callback of %s returned a time outside "
                                     "years 1900..9999",
                                     spec->name);
        }
        break;
    default:
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "the schedule kind %d is unknown",
                             (int)s->kind);
    }
    return PGSCHED_OK;
}

/* After a change made through this node: wake the dispatcher if it makes work due sooner. */
static void pgsched__note_due(pgsched_node *n, const char *name, pgsched_time next_run)
{
    const pgsched__type *t = pgsched__find_type(n, name);
    if (!t || !t->t.handler) return;
    pthread_mutex_lock(&n->mu);
    if (!n->known_due || next_run < n->known_due) {
        n->known_due = next_run ? next_run : pgsched__db_now(n);
        pthread_cond_signal(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
}

static pgsched_result pgsched__schedule_common(pgsched_node *n, void *conn,
                                               const pgsched_job_spec *spec, pgsched_error *err)
{
    pgsched_schedule_request q;
    pgsched_schedule_outcome o;
    char *cron_text;
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    r = pgsched__prepare(n, spec, &q, &cron_text, err);
    if (r == PGSCHED_OK) {
        memset(&o, 0, sizeof o);
#ifndef PGSCHED_NO_LIBPQ
        if (conn) {
            /* Announced by the store's notification when the caller's transaction commits;
               without a node id, every node (this one too) sees it as news. */
            q.node_id = NULL;
            r = pgsched__pg_schedule_external(n->store, &q, (PGconn *)conn, &o, err);
        } else
#endif
            r = pgsched_store_schedule(n->store, &q, &o, err);
        if (r == PGSCHED_OK && !conn) {
            pgsched__cb_push(n, spec->name, spec->key, o.old_status,
                             o.deferred ? PGSCHED_RUNNING : PGSCHED_PENDING, o.next_run,
                             o.version, n->id, 0);
            if (!o.deferred) pgsched__note_due(n, spec->name, o.next_run);
        }
    }
    pgsched__free(&n->alloc, cron_text);
    return r;
}

PGSCHED_DEF pgsched_result pgsched_schedule_job(pgsched_node *n, const pgsched_job_spec *spec,
                                                pgsched_error *err)
{
    return pgsched__schedule_common(n, NULL, spec, err);
}

PGSCHED_DEF pgsched_result pgsched_schedule_job_tx(pgsched_node *n, struct pg_conn *conn,
                                                   const pgsched_job_spec *spec,
                                                   pgsched_error *err)
{
#ifdef PGSCHED_NO_LIBPQ
    PGSCHED__UNUSED(n);
    PGSCHED__UNUSED(conn);
    PGSCHED__UNUSED(spec);
    return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                         "this build has no PostgreSQL store (PGSCHED_NO_LIBPQ)");
#else
    if (!conn) return pgsched__null(err, "the caller's connection");
    return pgsched__schedule_common(n, conn, spec, err);
#endif
}

/* A cancel that reaches a run of this very node needs no notification round trip. */
static void pgsched__local_cancel(pgsched_node *n, const char *name, const char *key,
                                  const char *owner)
{
    pgsched__slot *s;
    if (strcmp(owner, n->id) != 0) return;
    pthread_mutex_lock(&n->mu);
    s = pgsched__find_slot(n, name, key);
    if (s) pgsched__cancel_slot(s, PGSCHED__CANCEL_REQUESTED);
    pthread_mutex_unlock(&n->mu);
}

PGSCHED_DEF pgsched_result pgsched_cancel(pgsched_node *n, const char *name, const char *key,
                                          pgsched_cancel_effect *effect, pgsched_error *err)
{
    pgsched_change_outcome o;
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    r = pgsched_store_cancel(n->store, name, key, n->id, &o, err);
    if (r != PGSCHED_OK) return r;
    if (effect) *effect = (pgsched_cancel_effect)o.effect;
    if (o.effect == PGSCHED_CANCEL_REQUESTED) pgsched__local_cancel(n, name, key, o.owner);
    pgsched__cb_push(n, name, key, o.old_status, o.new_status, 0, o.version, n->id, 0);
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_unschedule(pgsched_node *n, const char *name, const char *key,
                                              pgsched_remove_effect *effect, pgsched_error *err)
{
    pgsched_change_outcome o;
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    r = pgsched_store_remove(n->store, name, key, n->id, &o, err);
    if (r != PGSCHED_OK) return r;
    if (effect) *effect = (pgsched_remove_effect)o.effect;
    if (o.effect == PGSCHED_REMOVE_DEFERRED) pgsched__local_cancel(n, name, key, o.owner);
    pgsched__cb_push(n, name, key, o.old_status, o.new_status, 0, o.version, n->id, 0);
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_trigger(pgsched_node *n, const char *name, const char *key,
                                           pgsched_error *err)
{
    pgsched_change_outcome o;
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    r = pgsched_store_trigger(n->store, name, key, n->id, &o, err);
    if (r != PGSCHED_OK) return r;
    pgsched__note_due(n, name, o.next_run);
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_get(pgsched_node *n, const char *name, const char *key,
                                       pgsched_job_list *out, pgsched_error *err)
{
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    return pgsched_store_get(n->store, name, key, out, err);
}

PGSCHED_DEF pgsched_result pgsched_list(pgsched_node *n, const pgsched_list_filter *filter,
                                        pgsched_job_list *out, pgsched_error *err)
{
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    return pgsched_store_list(n->store, filter, out, err);
}

PGSCHED_DEF pgsched_result pgsched_history(pgsched_node *n, const char *name, const char *key,
                                           size_t limit, pgsched_run_list *out,
                                           pgsched_error *err)
{
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    return pgsched_store_history(n->store, name, key, limit, out, err);
}

PGSCHED_DEF void pgsched_get_counters(pgsched_node *n, pgsched_counters *out)
{
    if (!n || !out) return;
    pthread_mutex_lock(&n->mu);
    *out = n->counters;
    pthread_mutex_unlock(&n->mu);
}

PGSCHED_DEF const char *pgsched_node_id(const pgsched_node *n) { return n ? n->id : NULL; }

PGSCHED_DEF pgsched_store *pgsched_node_store(const pgsched_node *n) { return n ? n->store : NULL; }

PGSCHED_DEF pgsched_result pgsched_shutdown(pgsched_node *n, pgsched_error *err)
{
    int i, was;
    if (!n) return pgsched__null(err, "the node");
    pthread_mutex_lock(&n->mu);
    if (pgsched__is_node_thread(n)) {
        pthread_mutex_unlock(&n->mu);
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "pgsched_shutdown cannot be called from a handler or callback of the "
                             "same node");
    }
    was = n->state;
    if (was >= PGSCHED__STOPPING) {
        /* idempotent; a call that overlaps another returns when that one is done, so that
           a destroy after it never frees a node still shutting down */
        while (!n->shutdown_done) pthread_cond_wait(&n->done_cv, &n->mu);
        pthread_mutex_unlock(&n->mu);
        return pgsched__ok(err);
    }
    n->state = PGSCHED__STOPPING;
    n->shutdown_deadline = pgsched__monotonic() + n->cfg.shutdown_timeout;
    for (i = 0; i < n->nslots; i++) pgsched__cancel_slot(&n->slots[i], PGSCHED__CANCEL_SHUTDOWN);
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);

    /* The *_started flags stay set until destroy: a handler still running may call
       pgsched_shutdown and must be recognised as a node thread. */
    if (n->dispatcher_started) pthread_join(n->dispatcher, NULL);
    pthread_mutex_lock(&n->mu);
    n->state = PGSCHED__STOPPED;
    for (i = 0; i < n->nslots; i++) pthread_cond_broadcast(&n->slots[i].cv);
    pthread_mutex_unlock(&n->mu);
    if (n->listener_started) {
        pgsched_store_listen_wake(n->store, n->listen);
        pthread_join(n->listener, NULL);
    }
    if (n->listen) {
        pgsched_store_listen_close(n->store, n->listen);
        n->listen = NULL;
    }
    if (n->callbacker_started) {
        pthread_mutex_lock(&n->cb_mu);
        n->cb_stop = 1;
        pthread_cond_signal(&n->cb_cv);
        pthread_mutex_unlock(&n->cb_mu);
        pthread_join(n->callbacker, NULL);
    }
    if (was == PGSCHED__STARTED) {
        pgsched_error e;
        if (pgsched_store_node_unregister(n->store, n->id, &e) != PGSCHED_OK)
            pgsched__store_trouble(n, "unregistering the node", &e);
        pgsched__log(n, PGSCHED_LOG_INFO, "node stopped");
    }
    pthread_mutex_lock(&n->mu);
    n->shutdown_done = 1;
    pthread_cond_broadcast(&n->done_cv);
    pthread_mutex_unlock(&n->mu);
    return pgsched__ok(err);
}

PGSCHED_DEF void pgsched_destroy(pgsched_node *n)
{
    size_t i;
    int k;
    if (!n) return;
    pgsched_shutdown(n, NULL);
    /* Handlers that ignored the cancel are waited for here: their memory lives in the node. */
    for (k = 0; k < n->nslots; k++) {
        if (n->slots[k].thread_started) pthread_join(n->slots[k].thread, NULL);
        pgsched_job_list_free(&n->slots[k].job);
        pgsched__free(&n->alloc, n->slots[k].error);
        pthread_cond_destroy(&n->slots[k].cv);
    }
    for (i = 0; i < n->npending; i++) pgsched__pending_free(n, &n->pending[i]);
    pgsched__free(&n->alloc, n->pending);
    if (n->owns_store) pgsched_store_destroy(n->store);
    for (i = 0; i < n->ntypes; i++) pgsched__free(&n->alloc, n->types[i].name);
    for (i = 0; i < n->ncrons; i++) {
        pgsched__free(&n->alloc, n->crons[i].text);
        pgsched_cron_free(n->crons[i].cron);
    }
    pgsched__free(&n->alloc, n->own);
    pgsched__free(&n->alloc, n->ot);
    pgsched__free(&n->alloc, n->crons);
    pgsched__free(&n->alloc, n->cbq);
    pgsched__free(&n->alloc, n->types);
    pgsched__free(&n->alloc, n->run_names);
    pgsched__free(&n->alloc, n->all_names);
    pgsched__free(&n->alloc, n->slots);
    pgsched__free(&n->alloc, n->conninfo);
    pgsched__free(&n->alloc, n->schema);
    pgsched__free(&n->alloc, n->prefix);
    pgsched__free(&n->alloc, n->default_zone);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    pthread_cond_destroy(&n->done_cv);
    pthread_mutex_destroy(&n->cron_mu);
    pthread_mutex_destroy(&n->cb_mu);
    pthread_cond_destroy(&n->cb_cv);
    {
        pgsched_allocator a = n->alloc;
        pgsched__free(&a, n);
    }
}

/* ---- the run context ---- */

PGSCHED_DEF int pgsched_run_cancelled(const pgsched_run *run)
{
    const pgsched__slot *s = (const pgsched__slot *)(const void *)run;
    if (!run) return 0;
    return PGSCHED__LOAD(&s->cancel) != PGSCHED__CANCEL_NONE;
}

PGSCHED_DEF int pgsched_run_sleep(pgsched_run *run, pgsched_duration d)
{
    pgsched__slot *s = (pgsched__slot *)(void *)run;
    pgsched_node *n;
    pgsched_time deadline;
    int cancelled;
    if (!run) return 0;
    n = s->node;
    deadline = pgsched__deadline(d < 0 ? 0 : d);
    pthread_mutex_lock(&n->mu);
    while (s->cancel == PGSCHED__CANCEL_NONE && pgsched__monotonic() < deadline)
        pgsched__cond_wait_until(&s->cv, &n->mu, deadline);
    cancelled = s->cancel != PGSCHED__CANCEL_NONE;
    pthread_mutex_unlock(&n->mu);
    return cancelled;
}

PGSCHED_DEF void pgsched_run_set_error(pgsched_run *run, const char *fmt, ...)
{
    pgsched__slot *s = (pgsched__slot *)(void *)run;
    pgsched_node *n;
    char *buf, *clean;
    va_list ap;
    if (!run || !fmt) return;
    n = s->node;
    buf = (char *)pgsched__malloc(&n->alloc, PGSCHED_ERROR_TEXT_MAX + 1);
    if (!buf) return;
    va_start(ap, fmt);
    vsnprintf(buf, PGSCHED_ERROR_TEXT_MAX + 1, fmt, ap);
    va_end(ap);
    clean = pgsched__clean_error(&n->alloc, buf);
    pgsched__free(&n->alloc, buf);
    pthread_mutex_lock(&n->mu);
    pgsched__free(&n->alloc, s->error);
    s->error = clean;
    pthread_mutex_unlock(&n->mu);
}
