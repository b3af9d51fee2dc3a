/* ---- [pgsched: store vtable] implementation: the validating wrappers ------------------------
   Every check lives here, once, so that every store gives the same code and sentence for the
   same bad input and a store method never sees a NULL it did not expect. */

#define PGSCHED__CRON_TEXT_MAX 1024
#define PGSCHED__MAX_RETRIES 1000000
#define PGSCHED__CLAIM_MAX 10000
/* The longest duration anything accepts: a century keeps every sum with a time in range. */
#define PGSCHED__DURATION_MAX ((pgsched_duration)100 * 366 * PGSCHED_DAY)

static pgsched_result pgsched__check_store(pgsched_store *s, pgsched_error *err)
{
    if (!s || !s->methods)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "the store is missing (NULL)");
    if (s->methods->version < 1)
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                             "the store's method table has version %d; this library needs 1",
                             s->methods->version);
    return PGSCHED_OK;
}

static pgsched_result pgsched__null(pgsched_error *err, const char *what)
{
    return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "%s is missing (NULL)", what);
}

static pgsched_result pgsched__check_name_key(const char *name, const char *key,
                                              pgsched_error *err)
{
    pgsched_result r = pgsched_validate_name(name, err);
    if (r == PGSCHED_OK) r = pgsched_validate_key(key, err);
    return r;
}

static pgsched_result pgsched__check_opt_node(const char *node_id, pgsched_error *err)
{
    return node_id ? pgsched__validate_node_id(node_id, err) : PGSCHED_OK;
}

static pgsched_result pgsched__check_time(const char *what, pgsched_time t, pgsched_error *err)
{
    if (t != 0 && (t < PGSCHED_TIME_MIN || t > PGSCHED_TIME_MAX))
        return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                             "%s is outside years 1900..9999", what);
    return PGSCHED_OK;
}

static pgsched_result pgsched__check_duration(const char *what, pgsched_duration d,
                                              pgsched_error *err)
{
    if (d < 0)
        return pgsched__fail(err, PGSCHED_ERR_DURATION, "%s is negative", what);
    return PGSCHED_OK;
}

static pgsched_result pgsched__check_names(const char *const *names, size_t count,
                                           pgsched_error *err)
{
    size_t i;
    if (count && !names) return pgsched__null(err, "the list of job type names");
    for (i = 0; i < count; i++) {
        pgsched_result r = pgsched_validate_name(names[i], err);
        if (r != PGSCHED_OK) return r;
    }
    return PGSCHED_OK;
}

static pgsched_result pgsched__check_schedule_request(const pgsched_schedule_request *req,
                                                      pgsched_error *err)
{
    pgsched_result r;
    if (!req) return pgsched__null(err, "the schedule request");
    if ((r = pgsched__check_name_key(req->name, req->key, err)) != PGSCHED_OK) return r;
    if (req->params && (r = pgsched_validate_json(req->params, err)) != PGSCHED_OK) return r;
    switch (req->kind) {
    case PGSCHED_CRON: {
        size_t n;
        if (!req->cron || !req->cron[0])
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "a cron schedule needs its expression");
        n = strlen(req->cron);
        if (n > PGSCHED__CRON_TEXT_MAX)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "the cron expression is %lu bytes long; the limit is %d",
                                 (unsigned long)n, PGSCHED__CRON_TEXT_MAX);
        if (pgsched__utf8_check(req->cron, n) != (size_t)-1)
            return pgsched__fail(err, PGSCHED_ERR_UTF8, "the cron expression is not valid UTF-8");
        break;
    }
    case PGSCHED_INTERVAL:
        if (req->every <= 0)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "an interval schedule needs a positive interval");
        break;
    case PGSCHED_ONCE:
    case PGSCHED_CUSTOM: break;
    default:
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "the schedule kind %d is unknown",
                             (int)req->kind);
    }
    if (req->max_retries < 0 || req->max_retries > PGSCHED__MAX_RETRIES)
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                             "max_retries %d is outside 0..%d", req->max_retries,
                             PGSCHED__MAX_RETRIES);
    if (req->next_run < 0)
        return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE, "the first run time is negative");
    if ((r = pgsched__check_time("the first run time", req->next_run, err)) != PGSCHED_OK)
        return r;
    return pgsched__check_opt_node(req->node_id, err);
}

PGSCHED_DEF pgsched_result pgsched_store_setup(pgsched_store *s, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    return s->methods->setup(s, err);
}

PGSCHED_DEF void pgsched_store_destroy(pgsched_store *s)
{
    if (s && s->methods && s->methods->destroy) s->methods->destroy(s);
}

PGSCHED_DEF pgsched_result pgsched_store_now(pgsched_store *s, pgsched_time *now,
                                             pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!now) return pgsched__null(err, "the output time");
    return s->methods->now(s, now, err);
}

static pgsched_result pgsched__store_schedule(pgsched_store *s,
                                              const pgsched_schedule_request *req, void *conn,
                                              pgsched_schedule_outcome *out, pgsched_error *err)
{
    pgsched_schedule_outcome local;
    pgsched_schedule_request copy;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__check_schedule_request(req, err)) != PGSCHED_OK) return r;
    copy = *req;
    if (!copy.params) copy.params = "{}";
    if (copy.kind != PGSCHED_CRON) copy.cron = NULL;
    if (copy.kind != PGSCHED_INTERVAL) copy.every = 0;
    memset(&local, 0, sizeof local);
    r = s->methods->schedule(s, &copy, conn, &local, err);
    if (out) *out = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_schedule(pgsched_store *s,
                                                  const pgsched_schedule_request *req,
                                                  pgsched_schedule_outcome *out,
                                                  pgsched_error *err)
{
    return pgsched__store_schedule(s, req, NULL, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_claim(pgsched_store *s, const pgsched_claim_request *req,
                                               pgsched_job_list *out,
                                               pgsched_claim_outcome *info, pgsched_error *err)
{
    pgsched_claim_outcome local;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!req) return pgsched__null(err, "the claim request");
    if (!out) return pgsched__null(err, "the output list");
    if ((r = pgsched__validate_node_id(req->node_id, err)) != PGSCHED_OK) return r;
    if ((r = pgsched__check_names(req->names, req->name_count, err)) != PGSCHED_OK) return r;
    if (req->max < 1 || req->max > PGSCHED__CLAIM_MAX)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "a claim takes 1 to %d rows, not %d", PGSCHED__CLAIM_MAX, req->max);
    memset(&local, 0, sizeof local);
    if (req->name_count == 0) {
        r = s->methods->now(s, &local.now, err);
    } else {
        r = s->methods->claim(s, req, out, &local, err);
    }
    if (info) *info = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_heartbeat(pgsched_store *s, const char *node_id,
                                                   const pgsched_lease *leases, size_t count,
                                                   int renew, pgsched_lease_state *states,
                                                   pgsched_time *now, pgsched_error *err)
{
    size_t i;
    pgsched_time local = 0;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__validate_node_id(node_id, err)) != PGSCHED_OK) return r;
    if (count && !leases) return pgsched__null(err, "the lease array");
    if (count && !states) return pgsched__null(err, "the lease state array");
    for (i = 0; i < count; i++) {
        if ((r = pgsched__check_name_key(leases[i].name, leases[i].key, err)) != PGSCHED_OK)
            return r;
        states[i].lost = 0;
        states[i].cancel_requested = 0;
    }
    r = s->methods->heartbeat(s, node_id, leases, count, renew, states, &local, err);
    if (now) *now = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_finish(pgsched_store *s, const pgsched_outcome *o,
                                                size_t count, pgsched_finish_result *results,
                                                pgsched_error *err)
{
    size_t i;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (count == 0) return pgsched__ok(err);
    if (!o) return pgsched__null(err, "the outcome array");
    if (!results) return pgsched__null(err, "the result array");
    for (i = 0; i < count; i++) {
        if ((r = pgsched__check_name_key(o[i].name, o[i].key, err)) != PGSCHED_OK) return r;
        if ((r = pgsched__validate_node_id(o[i].node_id, err)) != PGSCHED_OK) return r;
        if (o[i].outcome < PGSCHED_OUTCOME_SUCCESS || o[i].outcome > PGSCHED_OUTCOME_RELEASED)
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "outcome kind %d is unknown", (int)o[i].outcome);
        if (o[i].status < PGSCHED_PENDING || o[i].status > PGSCHED_CANCELLED ||
            o[i].status == PGSCHED_RUNNING)
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "an outcome cannot leave a row %s",
                                 pgsched_status_string(o[i].status));
        if (o[i].attempt_rule < PGSCHED_ATTEMPT_RESET || o[i].attempt_rule > PGSCHED_ATTEMPT_UNCOUNT)
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "attempt rule %d is unknown", (int)o[i].attempt_rule);
        if ((r = pgsched__check_duration("the retry delay", o[i].retry_delay, err)) != PGSCHED_OK)
            return r;
        if (o[i].retry_delay > PGSCHED__DURATION_MAX)
            return pgsched__fail(err, PGSCHED_ERR_DURATION, "the retry delay exceeds 100 years");
        if (o[i].next_run < 0 ||
            (r = pgsched__check_time("the next run time", o[i].next_run, err)) != PGSCHED_OK)
            return r != PGSCHED_OK ? r
                                   : pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                                                   "the next run time is negative");
        if (o[i].error && pgsched__utf8_check(o[i].error, strlen(o[i].error)) != (size_t)-1)
            return pgsched__fail(err, PGSCHED_ERR_UTF8, "an error text is not valid UTF-8");
        memset(&results[i], 0, sizeof results[i]);
    }
    return s->methods->finish(s, o, count, results, err);
}

PGSCHED_DEF pgsched_result pgsched_store_take_back(pgsched_store *s, const char *node_id,
                                                   pgsched_duration stall_timeout, int max,
                                                   pgsched_job_list *out, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__validate_node_id(node_id, err)) != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output list");
    if (stall_timeout <= 0)
        return pgsched__fail(err, PGSCHED_ERR_DURATION, "the stall timeout must be positive");
    if (max < 1 || max > PGSCHED__CLAIM_MAX)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "a take-back takes 1 to %d rows, not %d", PGSCHED__CLAIM_MAX, max);
    return s->methods->take_back(s, node_id, stall_timeout, max, out, err);
}

/* cancel, trigger and remove share their checks and their optional output. */
typedef pgsched_result (*pgsched__change_fn)(pgsched_store *, const char *, const char *,
                                             const char *, pgsched_change_outcome *,
                                             pgsched_error *);

static pgsched_result pgsched__store_change(pgsched_store *s, int which, const char *name,
                                            const char *key, const char *node_id,
                                            pgsched_change_outcome *out, pgsched_error *err)
{
    pgsched_change_outcome local;
    pgsched__change_fn fn;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__check_name_key(name, key, err)) != PGSCHED_OK) return r;
    if ((r = pgsched__check_opt_node(node_id, err)) != PGSCHED_OK) return r;
    fn = which == 0 ? s->methods->cancel : which == 1 ? s->methods->trigger : s->methods->remove;
    memset(&local, 0, sizeof local);
    r = fn(s, name, key, node_id, &local, err);
    if (out) *out = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_cancel(pgsched_store *s, const char *name,
                                                const char *key, const char *node_id,
                                                pgsched_change_outcome *out, pgsched_error *err)
{
    return pgsched__store_change(s, 0, name, key, node_id, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_trigger(pgsched_store *s, const char *name,
                                                 const char *key, const char *node_id,
                                                 pgsched_change_outcome *out, pgsched_error *err)
{
    return pgsched__store_change(s, 1, name, key, node_id, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_remove(pgsched_store *s, const char *name,
                                                const char *key, const char *node_id,
                                                pgsched_change_outcome *out, pgsched_error *err)
{
    return pgsched__store_change(s, 2, name, key, node_id, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_get(pgsched_store *s, const char *name, const char *key,
                                             pgsched_job_list *out, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__check_name_key(name, key, err)) != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output list");
    return s->methods->get(s, name, key, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_list(pgsched_store *s, const pgsched_list_filter *filter,
                                              pgsched_job_list *out, pgsched_error *err)
{
    pgsched_list_filter f;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output list");
    memset(&f, 0, sizeof f);
    if (filter) f = *filter;
    if (f.name && (r = pgsched_validate_name(f.name, err)) != PGSCHED_OK) return r;
    if (f.status < PGSCHED_STATUS_NONE || f.status > PGSCHED_CANCELLED)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "status %d is unknown",
                             (int)f.status);
    if ((f.after_name == NULL) != (f.after_key == NULL))
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "paging needs both after_name and after_key, or neither");
    if (f.after_name && (r = pgsched__check_name_key(f.after_name, f.after_key, err)) != PGSCHED_OK)
        return r;
    if (f.limit == 0) f.limit = 1000;
    return s->methods->list(s, &f, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_history(pgsched_store *s, const char *name,
                                                 const char *key, size_t limit,
                                                 pgsched_run_list *out, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output list");
    if (name && (r = pgsched_validate_name(name, err)) != PGSCHED_OK) return r;
    if (key && (r = pgsched_validate_key(key, err)) != PGSCHED_OK) return r;
    if (key && !name)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "a history filter by key needs the name too");
    return s->methods->history(s, name, key, limit ? limit : 100, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_next_due(pgsched_store *s, const char *const *names,
                                                  size_t count, pgsched_time *next,
                                                  pgsched_time *now, pgsched_error *err)
{
    pgsched_time n = 0, t = 0;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!next) return pgsched__null(err, "the output time");
    if ((r = pgsched__check_names(names, count, err)) != PGSCHED_OK) return r;
    if (count == 0) r = s->methods->now(s, &t, err);
    else r = s->methods->next_due(s, names, count, &n, &t, err);
    *next = n;
    if (now) *now = t;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_node_register(pgsched_store *s,
                                                       const pgsched_node_record *node,
                                                       pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!node) return pgsched__null(err, "the node record");
    if ((r = pgsched__validate_node_id(node->id, err)) != PGSCHED_OK) return r;
    if (node->host && pgsched__utf8_check(node->host, strlen(node->host)) != (size_t)-1)
        return pgsched__fail(err, PGSCHED_ERR_UTF8, "the host name is not valid UTF-8");
    if ((r = pgsched__check_names(node->names, node->name_count, err)) != PGSCHED_OK) return r;
    return s->methods->node_register(s, node, err);
}

PGSCHED_DEF pgsched_result pgsched_store_node_unregister(pgsched_store *s, const char *node_id,
                                                         pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__validate_node_id(node_id, err)) != PGSCHED_OK) return r;
    return s->methods->node_unregister(s, node_id, err);
}

PGSCHED_DEF pgsched_result pgsched_store_cleanup(pgsched_store *s,
                                                 const pgsched_cleanup_request *req,
                                                 pgsched_cleanup_outcome *out,
                                                 pgsched_error *err)
{
    pgsched_cleanup_request q;
    pgsched_cleanup_outcome local;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!req) return pgsched__null(err, "the cleanup request");
    if ((r = pgsched__validate_node_id(req->node_id, err)) != PGSCHED_OK) return r;
    if ((r = pgsched__check_duration("finished_retention", req->finished_retention, err)) ||
        (r = pgsched__check_duration("history_retention", req->history_retention, err)) ||
        (r = pgsched__check_duration("orphan_timeout", req->orphan_timeout, err)) ||
        (r = pgsched__check_duration("stall_timeout", req->stall_timeout, err)))
        return r;
    if (req->orphan_timeout != PGSCHED_NEVER && req->stall_timeout <= 0)
        return pgsched__fail(err, PGSCHED_ERR_DURATION,
                             "orphan clean-up needs a positive stall_timeout to tell live nodes");
    q = *req;
    if (q.limit == 0) q.limit = 10000;
    memset(&local, 0, sizeof local);
    r = s->methods->cleanup(s, &q, &local, err);
    if (out) *out = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_listen_open(pgsched_store *s, pgsched_listener **out,
                                                     pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output listener");
    *out = NULL;
    return s->methods->listen_open(s, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_listen_wait(pgsched_store *s, pgsched_listener *l,
                                                     pgsched_duration timeout,
                                                     pgsched_event *events, size_t cap,
                                                     size_t *count, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!l) return pgsched__null(err, "the listener");
    if (!events || !cap) return pgsched__null(err, "the event array");
    if (!count) return pgsched__null(err, "the output count");
    *count = 0;
    if (timeout < 0) timeout = 0;
    return s->methods->listen_wait(s, l, timeout, events, cap, count, err);
}

PGSCHED_DEF void pgsched_store_listen_wake(pgsched_store *s, pgsched_listener *l)
{
    if (s && s->methods && l) s->methods->listen_wake(s, l);
}

PGSCHED_DEF void pgsched_store_listen_close(pgsched_store *s, pgsched_listener *l)
{
    if (s && s->methods && l) s->methods->listen_close(s, l);
}

/* Shared sentences for the errors a store reports, so both stores say the same. */
static pgsched_result pgsched__err_not_found(pgsched_error *err, const char *name,
                                             const char *key)
{
    return pgsched__fail(err, PGSCHED_ERR_NOT_FOUND, "job %s/%s does not exist", name, key);
}

static pgsched_result pgsched__err_running(pgsched_error *err, const char *name, const char *key,
                                           const char *what)
{
    return pgsched__fail(err, PGSCHED_ERR_RUNNING, "job %s/%s is running; %s", name, key, what);
}

static pgsched_result pgsched__err_not_pending(pgsched_error *err, const char *name,
                                               const char *key, pgsched_status st)
{
    return pgsched__fail(err, PGSCHED_ERR_NOT_PENDING,
                         "job %s/%s is %s; only a pending job can be triggered", name, key,
                         pgsched_status_string(st));
}
