/* store_suite_lifecycle.h - schedule, claim, heartbeat, finish, take back, cancel, trigger,
   remove: the row's life as SPEC §4/§5 and the store vtable comments describe it. */
#ifndef STORE_SUITE_LIFECYCLE_H
#define STORE_SUITE_LIFECYCLE_H

/* ---- schedule ------------------------------------------------------------------------- */

STORE_TEST(scheduling_a_new_instance_creates_a_pending_row)
{
    pgsched_time before = fx_now(fx), after;
    pgsched_time due = before + PGSCHED_HOUR + 123457; /* microsecond precision survives */
    pgsched_schedule_request req = once_req("report", "r-1", due);
    pgsched_schedule_outcome o;
    const pgsched_job *j;

    req.params = "{\"to\": \"ops\"}";
    req.max_retries = 5;
    o = schedule_ok(fx, &req);
    after = fx_now(fx);
    assert_int_equal(o.created, 1);
    assert_int_equal(o.deferred, 0);
    assert_int_equal(o.old_status, PGSCHED_STATUS_NONE);
    assert_int_equal(o.next_run, due);
    assert_true(o.version > 0);

    j = get_job(fx, "report", "r-1");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->kind, PGSCHED_ONCE);
    assert_null(j->cron);
    assert_int_equal(j->every, 0);
    assert_string_equal(j->params, "{\"to\": \"ops\"}");
    assert_int_equal(j->max_retries, 5);
    assert_int_equal(j->attempt, 0);
    assert_int_equal(j->next_run, due);
    assert_null(j->owner);
    assert_int_equal(j->lease, 0);
    assert_int_equal(j->started_at, 0);
    assert_int_equal(j->finished_at, 0);
    assert_int_equal(j->cancel_requested, 0);
    assert_int_equal(j->remove_requested, 0);
    assert_int_equal(j->change_pending, 0);
    assert_null(j->last_error);
    assert_int_equal(j->runs, 0);
    assert_int_equal(j->failures, 0);
    assert_int_equal(j->version, o.version);
    assert_time_between(j->created_at, before, after);
    assert_time_between(j->updated_at, before, after);
}

STORE_TEST(a_zero_due_time_means_the_store_clock_now)
{
    pgsched_time before = fx_now(fx), after;
    pgsched_schedule_outcome o = schedule_once(fx, "now", "k", 0);
    pgsched_claim_outcome info;
    after = fx_now(fx);
    assert_time_between(o.next_run, before, after);
    assert_int_equal(get_job(fx, "now", "k")->next_run, o.next_run);
    /* and it is due at once */
    assert_int_equal(claim(fx, "node-1", "now", 10, &info)->count, 1);
}

STORE_TEST(due_times_keep_microsecond_precision_far_into_the_future)
{
    pgsched_time far = PGSCHED_TIME_MAX;         /* 9999-12-31T23:59:59.999999Z */
    pgsched_time odd = fx_now(fx) + 987654321;   /* not a whole millisecond */
    schedule_once(fx, "prec", "far", far);
    schedule_once(fx, "prec", "odd", odd);
    assert_int_equal(get_job(fx, "prec", "far")->next_run, far);
    assert_int_equal(get_job(fx, "prec", "odd")->next_run, odd);
}

STORE_TEST(each_schedule_kind_stores_its_own_fields)
{
    pgsched_time due = fx_now(fx) + PGSCHED_HOUR;
    pgsched_schedule_request req;
    const pgsched_job *j;

    req = once_req("kinds", "cron", due);
    req.kind = PGSCHED_CRON;
    req.cron = "CRON_TZ=America/New_York 30 2 * * *";
    schedule_ok(fx, &req);
    req = once_req("kinds", "interval", due);
    req.kind = PGSCHED_INTERVAL;
    req.every = 90 * PGSCHED_SECOND + 1;
    schedule_ok(fx, &req);
    req = once_req("kinds", "custom", due);
    req.kind = PGSCHED_CUSTOM;
    schedule_ok(fx, &req);
    schedule_once(fx, "kinds", "once", due);

    j = get_job(fx, "kinds", "cron");
    assert_int_equal(j->kind, PGSCHED_CRON);
    assert_string_equal(j->cron, "CRON_TZ=America/New_York 30 2 * * *");
    assert_int_equal(j->every, 0);
    j = get_job(fx, "kinds", "interval");
    assert_int_equal(j->kind, PGSCHED_INTERVAL);
    assert_null(j->cron);
    assert_int_equal(j->every, 90 * PGSCHED_SECOND + 1);
    j = get_job(fx, "kinds", "custom");
    assert_int_equal(j->kind, PGSCHED_CUSTOM);
    assert_null(j->cron);
    assert_int_equal(j->every, 0);
    j = get_job(fx, "kinds", "once");
    assert_int_equal(j->kind, PGSCHED_ONCE);
    assert_null(j->cron);
    assert_int_equal(j->every, 0);
}

STORE_TEST(rescheduling_a_pending_row_replaces_it_but_keeps_the_earlier_due_time)
{
    pgsched_time now = fx_now(fx);
    pgsched_schedule_request req = once_req("resched", "k", now + 2 * PGSCHED_HOUR);
    pgsched_schedule_outcome o1, o2, o3;
    const pgsched_job *j;

    req.kind = PGSCHED_CRON;
    req.cron = "0 * * * *";
    req.params = "{\"v\":1}";
    req.max_retries = 1;
    o1 = schedule_ok(fx, &req);

    /* a later due time does not postpone the stored one */
    req.kind = PGSCHED_INTERVAL;
    req.cron = NULL;
    req.every = 30 * PGSCHED_SECOND;
    req.params = "{\"v\":2}";
    req.max_retries = 7;
    req.next_run = now + 3 * PGSCHED_HOUR;
    o2 = schedule_ok(fx, &req);
    assert_int_equal(o2.created, 0);
    assert_int_equal(o2.deferred, 0);
    assert_int_equal(o2.old_status, PGSCHED_PENDING);
    assert_int_equal(o2.next_run, now + 2 * PGSCHED_HOUR);
    assert_true(o2.version > o1.version);
    j = get_job(fx, "resched", "k");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->kind, PGSCHED_INTERVAL);
    assert_null(j->cron);
    assert_int_equal(j->every, 30 * PGSCHED_SECOND);
    assert_string_equal(j->params, "{\"v\":2}");
    assert_int_equal(j->max_retries, 7);
    assert_int_equal(j->next_run, now + 2 * PGSCHED_HOUR);
    assert_int_equal(j->version, o2.version);

    /* an earlier one wins */
    req = once_req("resched", "k", now + PGSCHED_HOUR);
    o3 = schedule_ok(fx, &req);
    assert_int_equal(o3.next_run, now + PGSCHED_HOUR);
    j = get_job(fx, "resched", "k");
    assert_int_equal(j->kind, PGSCHED_ONCE);
    assert_int_equal(j->every, 0);
    assert_string_equal(j->params, "{}");
    assert_int_equal(j->max_retries, 3);
    assert_int_equal(j->next_run, now + PGSCHED_HOUR);
    assert_true(o3.version > o2.version);
}

STORE_TEST(rescheduling_resets_the_attempt_count)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "budget", "k");
    pgsched_outcome oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING,
                                    fx_now(fx) + PGSCHED_HOUR);
    oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    oc.error = "boom";
    assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
    assert_int_equal(get_job(fx, "budget", "k")->attempt, 1);
    schedule_once(fx, "budget", "k", fx_now(fx) + PGSCHED_HOUR);
    j = get_job(fx, "budget", "k");
    assert_int_equal(j->attempt, 0);
    assert_int_equal(j->status, PGSCHED_PENDING);
}

/* Leaves (name, key) finished with `status` and its old due time well in the past. */
static void make_finished_row(fixture *fx, const char *name, const char *key, pgsched_status status)
{
    if (status == PGSCHED_CANCELLED) {
        pgsched_change_outcome co;
        schedule_once(fx, name, key, fx_now(fx) - fx->unit);
        OK(pgsched_store_cancel(fx->store, name, key, "admin", &co, E));
        assert_int_equal(co.effect, PGSCHED_CANCEL_DONE);
    } else {
        const pgsched_job *j = schedule_and_claim(fx, "node-1", name, key);
        finish_ok(fx, j,
                  status == PGSCHED_COMPLETED ? PGSCHED_OUTCOME_SUCCESS : PGSCHED_OUTCOME_FAILURE,
                  status, 0);
    }
    assert_int_equal(get_job(fx, name, key)->status, status);
}

STORE_TEST(rescheduling_a_finished_row_takes_the_new_due_time)
{
    static const pgsched_status finished[] = {PGSCHED_COMPLETED, PGSCHED_FAILED,
                                              PGSCHED_CANCELLED};
    size_t i;
    for (i = 0; i < 3; i++) {
        char key[32];
        pgsched_time later;
        pgsched_schedule_outcome o;
        const pgsched_job *j;
        snprintf(key, sizeof key, "f%u", (unsigned)i);
        make_finished_row(fx, "again", key, finished[i]);
        later = fx_now(fx) + PGSCHED_HOUR;
        o = schedule_once(fx, "again", key, later);
        assert_int_equal(o.created, 0);
        assert_int_equal(o.old_status, finished[i]);
        assert_int_equal(o.next_run, later);
        j = get_job(fx, "again", key);
        assert_int_equal(j->status, PGSCHED_PENDING);
        assert_int_equal(j->next_run, later);
        assert_int_equal(j->attempt, 0);
        assert_null(j->owner);
        assert_int_equal(j->lease, 0);
    }
}

STORE_TEST(rescheduling_a_running_row_is_refused_and_changes_nothing)
{
    const pgsched_job *running = schedule_and_claim(fx, "node-1", "busy", "k");
    pgsched_schedule_request req = once_req("busy", "k", fx_now(fx) + PGSCHED_HOUR);
    pgsched_schedule_outcome o;
    snapshot before = take_snapshot(fx);
    req.params = "{\"new\":true}";
    FAILS(PGSCHED_ERR_RUNNING, pgsched_store_schedule(fx->store, &req, &o, E));
    assert_unchanged(fx, before);
    /* the run still holds its lease */
    assert_int_equal(heartbeat_one(fx, "node-1", "busy", "k", running->lease, 0).lost, 0);
}

/* A running recurring row with a re-schedule deferred to the end of its run. */
static const pgsched_job *running_with_deferred_change(fixture *fx, const char *key,
                                                       pgsched_time requested)
{
    pgsched_schedule_request req = once_req("defer", key, fx_now(fx) - fx->unit);
    pgsched_schedule_outcome o;
    const pgsched_job *j, *now;
    req.kind = PGSCHED_CRON;
    req.cron = "0 * * * *";
    req.params = "{\"v\":1}";
    req.max_retries = 2;
    schedule_ok(fx, &req);
    j = claim_one(fx, "node-1", "defer", key);

    req.kind = PGSCHED_INTERVAL;
    req.cron = NULL;
    req.every = PGSCHED_MINUTE;
    req.params = "{\"v\":2}";
    req.max_retries = 9;
    req.next_run = requested;
    req.apply_after_run = 1;
    o = schedule_ok(fx, &req);
    assert_int_equal(o.created, 0);
    assert_int_equal(o.deferred, 1);
    assert_int_equal(o.old_status, PGSCHED_RUNNING);

    /* the run goes on untouched */
    now = get_job(fx, "defer", key);
    assert_int_equal(now->status, PGSCHED_RUNNING);
    assert_int_equal(now->kind, PGSCHED_CRON);
    assert_string_equal(now->cron, "0 * * * *");
    assert_string_equal(now->params, "{\"v\":1}");
    assert_int_equal(now->max_retries, 2);
    assert_int_equal(now->attempt, 1);
    assert_int_equal(now->lease, j->lease);
    assert_string_equal(now->owner, j->owner);
    assert_int_equal(now->change_pending, 1);
    assert_int_equal(heartbeat_one(fx, "node-1", "defer", key, j->lease, 1).lost, 0);
    return j;
}

static void assert_deferred_change_applied(fixture *fx, const char *key, pgsched_time next_run)
{
    const pgsched_job *j = get_job(fx, "defer", key);
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->kind, PGSCHED_INTERVAL);
    assert_null(j->cron);
    assert_int_equal(j->every, PGSCHED_MINUTE);
    assert_string_equal(j->params, "{\"v\":2}");
    assert_int_equal(j->max_retries, 9);
    assert_int_equal(j->attempt, 0);
    assert_int_equal(j->change_pending, 0);
    assert_null(j->owner);
    assert_int_equal(j->lease, 0);
    assert_int_equal(j->next_run, next_run);
}

STORE_TEST(a_deferred_reschedule_applies_when_the_run_ends_keeping_the_earlier_due_time)
{
    pgsched_time now = fx_now(fx);
    const pgsched_job *j = running_with_deferred_change(fx, "earlier", now + 2 * PGSCHED_HOUR);
    pgsched_finish_result r = finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_PENDING,
                                        now + PGSCHED_HOUR);
    assert_int_equal(r.new_status, PGSCHED_PENDING);
    assert_int_equal(r.next_run, now + PGSCHED_HOUR);
    assert_deferred_change_applied(fx, "earlier", now + PGSCHED_HOUR);
    assert_int_equal(get_job(fx, "defer", "earlier")->runs, 1);
    assert_int_equal(history_of(fx, "defer", "earlier", 0)->count, 1);

    j = running_with_deferred_change(fx, "requested", now + 2 * PGSCHED_HOUR);
    r = finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_PENDING, now + 3 * PGSCHED_HOUR);
    assert_int_equal(r.next_run, now + 2 * PGSCHED_HOUR);
    assert_deferred_change_applied(fx, "requested", now + 2 * PGSCHED_HOUR);
}

STORE_TEST(a_deferred_reschedule_revives_a_run_that_finished_the_row)
{
    pgsched_time now = fx_now(fx);
    const pgsched_job *j = running_with_deferred_change(fx, "done", now + PGSCHED_HOUR);
    pgsched_finish_result r = finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    assert_int_equal(r.new_status, PGSCHED_PENDING);
    assert_int_equal(r.next_run, now + PGSCHED_HOUR);
    assert_deferred_change_applied(fx, "done", now + PGSCHED_HOUR);

    j = running_with_deferred_change(fx, "failed", now + PGSCHED_HOUR);
    r = finish_ok(fx, j, PGSCHED_OUTCOME_FAILURE, PGSCHED_FAILED, 0);
    assert_int_equal(r.new_status, PGSCHED_PENDING);
    assert_deferred_change_applied(fx, "failed", now + PGSCHED_HOUR);
}

STORE_TEST(a_deferred_reschedule_gives_a_failed_run_a_fresh_budget)
{
    pgsched_time now = fx_now(fx);
    const pgsched_job *j = running_with_deferred_change(fx, "retry", now + PGSCHED_HOUR);
    pgsched_outcome oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING,
                                    now + 2 * PGSCHED_HOUR);
    pgsched_finish_result r;
    oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    oc.error = "disk full";
    r = finish_with(fx, &oc);
    assert_int_equal(r.code, PGSCHED_OK);
    assert_int_equal(r.next_run, now + PGSCHED_HOUR);
    assert_deferred_change_applied(fx, "retry", now + PGSCHED_HOUR);
    j = get_job(fx, "defer", "retry");
    assert_int_equal(j->failures, 1);
    assert_string_equal(j->last_error, "disk full");
}

STORE_TEST(a_deferred_reschedule_applies_after_a_stall_take_back)
{
    pgsched_duration stall = 2 * fx->unit;
    const pgsched_job *j, *t;
    pgsched_job_list *back;
    pgsched_outcome oc;
    pgsched_time requested = fx_now(fx) + PGSCHED_HOUR;
    j = running_with_deferred_change(fx, "stalled", requested);
    fx_wait_until(fx, get_job(fx, "defer", "stalled")->heartbeat_at + stall + 1);
    back = take_back(fx, "reaper", stall, 10);
    assert_int_equal(back->count, 1);
    t = &back->items[0];
    assert_int_equal(t->change_pending, 1);
    assert_true(t->lease != j->lease);
    oc = outcome_of(t, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, 0);
    oc.retry_delay = 2 * PGSCHED_HOUR;
    oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    oc.error = "node-1 stopped renewing its lease";
    assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
    assert_deferred_change_applied(fx, "stalled", requested);
}

STORE_TEST(a_later_deferred_reschedule_replaces_an_earlier_one)
{
    pgsched_time now = fx_now(fx);
    const pgsched_job *j = running_with_deferred_change(fx, "twice", now + PGSCHED_HOUR);
    pgsched_schedule_request req = once_req("defer", "twice", now + 5 * PGSCHED_HOUR);
    pgsched_schedule_outcome o;
    const pgsched_job *row;
    req.params = "{\"v\":3}";
    req.max_retries = 4;
    req.apply_after_run = 1;
    o = schedule_ok(fx, &req);
    assert_int_equal(o.deferred, 1);
    finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    row = get_job(fx, "defer", "twice");
    assert_int_equal(row->status, PGSCHED_PENDING);
    assert_int_equal(row->kind, PGSCHED_ONCE);
    assert_string_equal(row->params, "{\"v\":3}");
    assert_int_equal(row->max_retries, 4);
    assert_int_equal(row->next_run, now + 5 * PGSCHED_HOUR);
}

STORE_TEST(a_deferred_reschedule_wins_over_an_earlier_remove_of_the_running_row)
{
    /* An unschedule while the row runs, then a re-schedule before the run ends: the later
       request wins, whether the run saw the remove's cancel request or not. */
    static const pgsched_outcome_kind ends[] = {PGSCHED_OUTCOME_SUCCESS, PGSCHED_OUTCOME_CANCELLED};
    pgsched_time requested = fx_now(fx) + PGSCHED_HOUR;
    size_t i;
    for (i = 0; i < 2; i++) {
        char key[32];
        pgsched_schedule_request req;
        pgsched_schedule_outcome o;
        pgsched_change_outcome co;
        pgsched_finish_result r;
        const pgsched_job *j, *row;
        snprintf(key, sizeof key, "removed-%s", pgsched_outcome_string(ends[i]));
        req = once_req("defer", key, fx_now(fx) - fx->unit);
        req.kind = PGSCHED_CRON;
        req.cron = "0 * * * *";
        req.params = "{\"v\":1}";
        req.max_retries = 2;
        schedule_ok(fx, &req);
        j = claim_one(fx, "node-1", "defer", key);
        OK(pgsched_store_remove(fx->store, "defer", key, "admin", &co, E));
        assert_int_equal(co.effect, PGSCHED_REMOVE_DEFERRED);

        req.kind = PGSCHED_INTERVAL;
        req.cron = NULL;
        req.every = PGSCHED_MINUTE;
        req.params = "{\"v\":2}";
        req.max_retries = 9;
        req.next_run = requested;
        req.apply_after_run = 1;
        o = schedule_ok(fx, &req);
        assert_int_equal(o.deferred, 1);
        row = get_job(fx, "defer", key);
        assert_int_equal(row->status, PGSCHED_RUNNING);
        assert_int_equal(row->remove_requested, 0);
        assert_int_equal(row->change_pending, 1);
        assert_int_equal(row->lease, j->lease);

        r = finish_ok(fx, j, ends[i],
                      ends[i] == PGSCHED_OUTCOME_SUCCESS ? PGSCHED_COMPLETED : PGSCHED_CANCELLED, 0);
        assert_int_equal(r.new_status, PGSCHED_PENDING);
        assert_int_equal(r.next_run, requested);
        assert_int_equal(row_exists(fx, "defer", key), 1);
        assert_deferred_change_applied(fx, key, requested);
    }
}

/* ---- claim ---------------------------------------------------------------------------- */

STORE_TEST(claim_takes_due_rows_in_due_order_up_to_max)
{
    /* inserted out of order; k1 is the most overdue */
    static const struct { const char *key; int ago; } rows[] = {
        {"k3", 3}, {"k1", 5}, {"k5", 1}, {"k2", 4}, {"k4", 2}};
    pgsched_time now = fx_now(fx), before, after;
    pgsched_claim_outcome info;
    pgsched_job_list *l;
    size_t i;
    for (i = 0; i < 5; i++)
        schedule_once(fx, "order", rows[i].key, now - rows[i].ago * fx->unit);
    schedule_once(fx, "order", "future", now + PGSCHED_HOUR);
    schedule_once(fx, "other", "due", now - 10 * fx->unit);

    before = fx_now(fx);
    l = claim(fx, "node-1", "order", 3, &info);
    after = fx_now(fx);
    assert_int_equal(l->count, 3);
    assert_string_equal(l->items[0].key, "k1");
    assert_string_equal(l->items[1].key, "k2");
    assert_string_equal(l->items[2].key, "k3");
    assert_time_between(info.now, before, after);
    /* the earliest pending row left is k4, already due */
    assert_int_equal(info.next_due, now - 2 * fx->unit);

    l = claim(fx, "node-1", "order", 10, &info);
    assert_int_equal(l->count, 2);
    assert_string_equal(l->items[0].key, "k4");
    assert_string_equal(l->items[1].key, "k5");
    assert_int_equal(info.next_due, now + PGSCHED_HOUR);

    l = claim(fx, "node-1", "order", 10, &info);
    assert_int_equal(l->count, 0);
    assert_int_equal(info.next_due, now + PGSCHED_HOUR);
    assert_int_equal(get_job(fx, "order", "future")->status, PGSCHED_PENDING);
    assert_int_equal(get_job(fx, "other", "due")->status, PGSCHED_PENDING);
}

STORE_TEST(claim_makes_the_row_running_for_the_node_with_a_fresh_lease)
{
    pgsched_time due = fx_now(fx) - fx->unit, before, after;
    pgsched_schedule_outcome so = schedule_once(fx, "claimed", "k", due);
    const pgsched_job *c, *j;
    before = fx_now(fx);
    c = claim_one(fx, "node-7", "claimed", "k");
    after = fx_now(fx);
    j = get_job(fx, "claimed", "k");
    assert_job_equal(c, j);
    assert_int_equal(j->status, PGSCHED_RUNNING);
    assert_string_equal(j->owner, "node-7");
    assert_true(j->lease != 0);
    assert_int_equal(j->attempt, 1);
    assert_int_equal(j->next_run, due);
    assert_int_equal(j->cancel_requested, 0);
    assert_time_between(j->started_at, before, after);
    assert_int_equal(j->heartbeat_at, j->started_at);
    assert_true(j->version > so.version);
}

STORE_TEST(claim_takes_only_pending_due_rows_of_the_given_names)
{
    pgsched_time now = fx_now(fx);
    const char *names[2] = {"alpha", "beta"};
    pgsched_claim_request req;
    pgsched_claim_outcome info;
    pgsched_job_list *l = fx_jlist(fx);
    size_t i;
    int seen_a = 0, seen_b = 0;

    /* rows in other states first: each is made by claiming the only due row of its type */
    make_finished_row(fx, "alpha", "completed", PGSCHED_COMPLETED);
    make_finished_row(fx, "alpha", "failed", PGSCHED_FAILED);
    make_finished_row(fx, "beta", "cancelled", PGSCHED_CANCELLED);
    schedule_and_claim(fx, "node-1", "beta", "running");
    now = fx_now(fx);
    schedule_once(fx, "alpha", "due", now - fx->unit);
    schedule_once(fx, "beta", "due", now - fx->unit);
    schedule_once(fx, "gamma", "due", now - fx->unit);
    schedule_once(fx, "alpha", "later", now + PGSCHED_HOUR);

    memset(&req, 0, sizeof req);
    req.node_id = "node-2";
    req.names = names;
    req.name_count = 2;
    req.max = 100;
    OK(pgsched_store_claim(fx->store, &req, l, &info, E));
    assert_int_equal(l->count, 2);
    for (i = 0; i < l->count; i++) {
        assert_string_equal(l->items[i].key, "due");
        assert_string_equal(l->items[i].owner, "node-2");
        if (strcmp(l->items[i].name, "alpha") == 0) seen_a++;
        if (strcmp(l->items[i].name, "beta") == 0) seen_b++;
    }
    assert_int_equal(seen_a, 1);
    assert_int_equal(seen_b, 1);
    assert_int_equal(info.next_due, now + PGSCHED_HOUR);
    /* the running row still belongs to node-1 */
    assert_string_equal(get_job(fx, "beta", "running")->owner, "node-1");
    assert_int_equal(get_job(fx, "gamma", "due")->status, PGSCHED_PENDING);
}

STORE_TEST(claim_reports_no_next_due_time_when_nothing_is_pending)
{
    pgsched_claim_outcome info;
    info.next_due = -1;
    assert_int_equal(claim(fx, "node-1", "empty", 10, &info)->count, 0);
    assert_int_equal(info.next_due, 0);
    schedule_once(fx, "empty", "k", fx_now(fx) - fx->unit);
    info.next_due = -1;
    assert_int_equal(claim(fx, "node-1", "empty", 10, &info)->count, 1);
    assert_int_equal(info.next_due, 0);
}

STORE_TEST(claim_appends_to_the_list_it_is_given)
{
    pgsched_job_list *l = fx_jlist(fx);
    pgsched_claim_request req;
    pgsched_claim_outcome info;
    const char *names[1] = {"append"};
    schedule_once(fx, "append", "first", fx_now(fx) + PGSCHED_HOUR);
    schedule_once(fx, "append", "second", fx_now(fx) - fx->unit);
    OK(pgsched_store_get(fx->store, "append", "first", l, E));
    memset(&req, 0, sizeof req);
    req.node_id = "node-1";
    req.names = names;
    req.name_count = 1;
    req.max = 5;
    OK(pgsched_store_claim(fx->store, &req, l, &info, E));
    assert_int_equal(l->count, 2);
    assert_string_equal(l->items[0].key, "first");
    assert_int_equal(l->items[0].status, PGSCHED_PENDING);
    assert_string_equal(l->items[1].key, "second");
    assert_int_equal(l->items[1].status, PGSCHED_RUNNING);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

STORE_TEST(lease_tokens_differ_on_every_claim_and_are_never_zero)
{
    enum { CYCLES = 20, ROWS = 20 };
    int64_t tokens[CYCLES + ROWS];
    pgsched_job_list *l;
    size_t n = 0, i;
    char key[32];
    schedule_once(fx, "tokens", "same", fx_now(fx) - fx->unit);
    for (i = 0; i < CYCLES; i++) {
        const pgsched_job *j = claim_one(fx, "node-1", "tokens", "same");
        tokens[n++] = j->lease;
        finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_PENDING, fx_now(fx) - fx->unit);
    }
    for (i = 0; i < ROWS; i++) {
        snprintf(key, sizeof key, "r%02u", (unsigned)i);
        schedule_once(fx, "tokens2", key, fx_now(fx) - fx->unit);
    }
    l = claim(fx, "node-2", "tokens2", ROWS, NULL);
    assert_int_equal(l->count, ROWS);
    for (i = 0; i < ROWS; i++) tokens[n++] = l->items[i].lease;
    qsort(tokens, n, sizeof tokens[0], cmp_i64);
    for (i = 0; i < n; i++) {
        assert_true(tokens[i] != 0);
        if (i > 0 && tokens[i] == tokens[i - 1]) fail_msg("lease token %lld handed out twice",
                                                          (long long)tokens[i]);
    }
}

STORE_TEST(a_cancel_request_does_not_leak_into_the_next_run)
{
    /* §12: cancel_requested left set after a run made the next run cancel itself. */
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "leak", "k");
    pgsched_change_outcome co;
    pgsched_outcome oc;
    OK(pgsched_store_cancel(fx->store, "leak", "k", "admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_CANCEL_REQUESTED);
    oc = outcome_of(j, PGSCHED_OUTCOME_CANCELLED, PGSCHED_PENDING, fx_now(fx) - fx->unit);
    assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
    assert_int_equal(get_job(fx, "leak", "k")->cancel_requested, 0);
    j = claim_one(fx, "node-2", "leak", "k");
    assert_int_equal(j->cancel_requested, 0);
    assert_int_equal(heartbeat_one(fx, "node-2", "leak", "k", j->lease, 1).cancel_requested, 0);
}

/* ---- heartbeat ------------------------------------------------------------------------ */

STORE_TEST(heartbeat_renews_held_leases_so_they_do_not_stall)
{
    pgsched_duration stall = 4 * fx->unit;
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "alive", "k");
    pgsched_lease lease = lease_of(j);
    pgsched_lease_state st;
    pgsched_time before, after, now = 0, renewed;

    fx_advance(fx, 3 * fx->unit);
    before = fx_now(fx);
    OK(pgsched_store_heartbeat(fx->store, "node-1", &lease, 1, 1, &st, &now, E));
    after = fx_now(fx);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.cancel_requested, 0);
    assert_time_between(now, before, after);
    renewed = get_job(fx, "alive", "k")->heartbeat_at;
    assert_time_between(renewed, before, after);

    /* stalled by the claim time, not by the renewal */
    fx_wait_until(fx, j->heartbeat_at + stall + fx->unit);
    assert_true(fx_now(fx) < renewed + stall); /* the test's own timing held */
    assert_int_equal(take_back(fx, "reaper", stall, 10)->count, 0);
    fx_wait_until(fx, renewed + stall + 1);
    assert_int_equal(take_back(fx, "reaper", stall, 10)->count, 1);
}

STORE_TEST(heartbeat_without_renew_only_reads)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "read", "k");
    pgsched_lease_state st;
    const pgsched_job *after;
    fx_advance(fx, fx->unit);
    st = heartbeat_one(fx, "node-1", "read", "k", j->lease, 0);
    assert_int_equal(st.lost, 0);
    after = get_job(fx, "read", "k");
    assert_int_equal(after->heartbeat_at, j->heartbeat_at);
    assert_int_equal(after->version, j->version);
}

STORE_TEST(heartbeat_reports_each_lost_lease)
{
    const pgsched_job *held, *other, *done, *gone, *old, *newer;
    pgsched_change_outcome co;
    pgsched_lease leases[6];
    pgsched_lease_state st[6];
    pgsched_time now;
    pgsched_time other_hb;
    size_t i;

    held = schedule_and_claim(fx, "node-1", "hb", "held");
    other = schedule_and_claim(fx, "node-1", "hb", "wrong-token");
    done = schedule_and_claim(fx, "node-1", "hb", "finished");
    finish_ok(fx, done, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    gone = schedule_and_claim(fx, "node-1", "hb", "removed");
    finish_ok(fx, gone, PGSCHED_OUTCOME_SUCCESS, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
    OK(pgsched_store_remove(fx->store, "hb", "removed", "admin", &co, E));
    old = schedule_and_claim(fx, "node-1", "hb", "reclaimed");
    finish_ok(fx, old, PGSCHED_OUTCOME_SUCCESS, PGSCHED_PENDING, fx_now(fx) - fx->unit);
    newer = claim_one(fx, "node-2", "hb", "reclaimed");
    other_hb = get_job(fx, "hb", "wrong-token")->heartbeat_at;

    leases[0] = lease_of(held);
    leases[1] = lease_of(other);
    leases[1].token = other->lease + 1;
    leases[2] = lease_of(done);
    leases[3] = lease_of(gone);
    leases[4] = lease_of(old);
    leases[5].name = "hb";
    leases[5].key = "never-existed";
    leases[5].token = 42;
    for (i = 0; i < 6; i++) st[i].lost = st[i].cancel_requested = -1;
    fx_advance(fx, fx->unit);
    OK(pgsched_store_heartbeat(fx->store, "node-1", leases, 6, 1, st, &now, E));
    assert_int_equal(st[0].lost, 0);
    for (i = 1; i < 6; i++)
        if (st[i].lost != 1) fail_msg("lease %u (%s) not reported lost", (unsigned)i, leases[i].key);
    /* a stale heartbeat renews nothing */
    assert_int_equal(get_job(fx, "hb", "wrong-token")->heartbeat_at, other_hb);
    assert_int_equal(get_job(fx, "hb", "reclaimed")->heartbeat_at, newer->heartbeat_at);
    assert_int_equal(heartbeat_one(fx, "node-2", "hb", "reclaimed", newer->lease, 0).lost, 0);
}

/* A node can hold a stale lease and a fresh one on the same row: its run was taken back, the
   row came due again and the node claimed it anew while the stale run still goes. The
   heartbeat tells them apart by token, whichever order they come in. */
STORE_TEST(heartbeat_tells_a_stale_and_a_fresh_lease_of_one_row_apart)
{
    pgsched_duration stall = fx->unit;
    const pgsched_job *stale = schedule_and_claim(fx, "node-1", "twice", "k"), *taker, *fresh;
    pgsched_job_list *back;
    pgsched_outcome oc;
    pgsched_change_outcome co;
    pgsched_lease leases[2];
    pgsched_lease_state st[2];
    pgsched_time now, renewed_before;
    int order;

    fx_wait_until(fx, stale->heartbeat_at + stall + 1);
    back = take_back(fx, "node-2", stall, 10);
    assert_int_equal(back->count, 1);
    taker = &back->items[0];
    oc = outcome_of(taker, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, fx_now(fx) - 1);
    oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
    fresh = claim_one(fx, "node-1", "twice", "k");
    assert_true(fresh->lease != stale->lease);

    for (order = 0; order < 2; order++) {
        int s_i = order, f_i = 1 - order;
        leases[s_i] = lease_of(stale);
        leases[f_i] = lease_of(fresh);
        st[0].lost = st[1].lost = st[0].cancel_requested = st[1].cancel_requested = -1;
        renewed_before = get_job(fx, "twice", "k")->heartbeat_at;
        fx_advance(fx, fx->unit / 10);
        OK(pgsched_store_heartbeat(fx->store, "node-1", leases, 2, 1, st, &now, E));
        if (st[s_i].lost != 1 || st[f_i].lost != 0)
            fail_msg("stale lease listed %s: stale lost = %d (want 1), fresh lost = %d (want 0)",
                     order ? "second" : "first", st[s_i].lost, st[f_i].lost);
        assert_int_equal(st[f_i].cancel_requested, 0);
        /* the fresh lease was renewed */
        assert_true(get_job(fx, "twice", "k")->heartbeat_at > renewed_before);
    }

    /* a cancel request reaches the fresh lease; the stale one stays lost */
    OK(pgsched_store_cancel(fx->store, "twice", "k", "admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_CANCEL_REQUESTED);
    leases[0] = lease_of(stale);
    leases[1] = lease_of(fresh);
    OK(pgsched_store_heartbeat(fx->store, "node-1", leases, 2, 0, st, &now, E));
    assert_int_equal(st[0].lost, 1);
    assert_int_equal(st[1].lost, 0);
    assert_int_equal(st[1].cancel_requested, 1);
}

STORE_TEST(heartbeat_reports_cancel_requests_of_held_leases)
{
    const pgsched_job *a = schedule_and_claim(fx, "node-1", "hbc", "a");
    const pgsched_job *b = schedule_and_claim(fx, "node-1", "hbc", "b");
    pgsched_change_outcome co;
    pgsched_lease leases[2];
    pgsched_lease_state st[2];
    pgsched_time now;
    OK(pgsched_store_cancel(fx->store, "hbc", "b", "admin", &co, E));
    leases[0] = lease_of(a);
    leases[1] = lease_of(b);
    OK(pgsched_store_heartbeat(fx->store, "node-1", leases, 2, 0, st, &now, E));
    assert_int_equal(st[0].lost, 0);
    assert_int_equal(st[0].cancel_requested, 0);
    assert_int_equal(st[1].lost, 0);
    assert_int_equal(st[1].cancel_requested, 1);
    OK(pgsched_store_heartbeat(fx->store, "node-1", leases, 2, 1, st, &now, E));
    assert_int_equal(st[1].cancel_requested, 1);
}

STORE_TEST(heartbeat_of_a_lease_with_its_token_but_another_node_id_is_lost_and_renews_nothing)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "hbnode", "k"), *after;
    pgsched_lease_state st;
    fx_advance(fx, fx->unit);
    st = heartbeat_one(fx, "node-2", "hbnode", "k", j->lease, 1);
    assert_int_equal(st.lost, 1);
    after = get_job(fx, "hbnode", "k");
    assert_int_equal(after->heartbeat_at, j->heartbeat_at);
    assert_int_equal(after->version, j->version);
    assert_string_equal(after->owner, "node-1");
    /* the holder still holds it */
    assert_int_equal(heartbeat_one(fx, "node-1", "hbnode", "k", j->lease, 0).lost, 0);
}

STORE_TEST(heartbeat_reports_no_lease_busy_when_no_other_transaction_locks_its_row)
{
    /* `busy` is an output like `lost`: whatever the caller's array held before (the engine
       passes uninitialised memory), a lease whose row nobody else has locked is not busy,
       held or lost, renewed or only read. */
    const pgsched_job *held = schedule_and_claim(fx, "node-1", "hbbusy", "held");
    pgsched_lease leases[2];
    pgsched_lease_state st[2];
    pgsched_time now;
    int renew, i;
    leases[0] = lease_of(held);
    leases[1] = lease_of(held);
    leases[1].token = held->lease + 1;
    for (renew = 0; renew < 2; renew++) {
        for (i = 0; i < 2; i++) st[i].lost = st[i].cancel_requested = st[i].busy = 7;
        OK(pgsched_store_heartbeat(fx->store, "node-1", leases, 2, renew, st, &now, E));
        assert_int_equal(st[0].lost, 0);
        assert_int_equal(st[1].lost, 1);
        for (i = 0; i < 2; i++)
            if (st[i].busy != 0)
                fail_msg("renew=%d: the %s lease reports busy = %d with no row locked", renew,
                         i == 0 ? "held" : "lost", st[i].busy);
    }
}

/* A node record that registers `names`. */
static void register_node(fixture *fx, const char *id, const char *const *names, size_t n)
{
    pgsched_node_record rec;
    memset(&rec, 0, sizeof rec);
    rec.id = id;
    rec.host = "test-host";
    rec.pid = (int64_t)getpid();
    rec.names = names;
    rec.name_count = n;
    OK(pgsched_store_node_register(fx->store, &rec, E));
}

static pgsched_cleanup_outcome cleanup(fixture *fx, pgsched_duration finished,
                                       pgsched_duration history, pgsched_duration orphan)
{
    pgsched_cleanup_request req;
    pgsched_cleanup_outcome out;
    memset(&req, 0, sizeof req);
    memset(&out, 0xff, sizeof out);
    req.node_id = "cleaner";
    req.finished_retention = finished;
    req.history_retention = history;
    req.orphan_timeout = orphan;
    OK(pgsched_store_cleanup(fx->store, &req, &out, E));
    return out;
}

STORE_TEST(heartbeat_without_leases_marks_the_node_seen)
{
    pgsched_duration orphan = 2 * fx->unit;
    const char *names[1] = {"kept"};
    pgsched_time now = 0, before, after;
    register_node(fx, "node-1", names, 1);
    schedule_once(fx, "kept", "k", fx_now(fx) + PGSCHED_HOUR);
    fx_advance(fx, 3 * fx->unit);
    before = fx_now(fx);
    OK(pgsched_store_heartbeat(fx->store, "node-1", NULL, 0, 1, NULL, &now, E));
    after = fx_now(fx);
    assert_time_between(now, before, after);
    /* node-1 is live again, so its type's idle row is no orphan */
    assert_int_equal(cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan).orphans_deleted, 0);
    assert_int_equal(row_exists(fx, "kept", "k"), 1);
    /* without a heartbeat it would have been */
    fx_advance(fx, 3 * fx->unit);
    assert_int_equal(cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan).orphans_deleted, 1);
    assert_int_equal(row_exists(fx, "kept", "k"), 0);
}

/* ---- finish --------------------------------------------------------------------------- */

STORE_TEST(stale_lease_token_cannot_finish_or_renew)
{
    pgsched_duration stall = 2 * fx->unit;
    const pgsched_job *first = schedule_and_claim(fx, "node-1", "stale", "k"), *second;
    pgsched_outcome oc;
    pgsched_finish_result r;
    pgsched_job_list *back;
    snapshot before;

    fx_wait_until(fx, first->heartbeat_at + stall + 1);
    back = take_back(fx, "node-2", stall, 10);
    assert_int_equal(back->count, 1);
    second = &back->items[0];
    before = take_snapshot(fx);

    /* node-1 wakes up and reports success with its old token */
    oc = outcome_of(first, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    memset(&r, 0, sizeof r);
    OK(pgsched_store_finish(fx->store, &oc, 1, &r, E));
    assert_int_equal(r.code, PGSCHED_ERR_LEASE_LOST);
    assert_unchanged(fx, before);
    assert_int_equal(heartbeat_one(fx, "node-1", "stale", "k", first->lease, 1).lost, 1);
    assert_unchanged(fx, before);
    /* the new holder is unaffected */
    assert_int_equal(heartbeat_one(fx, "node-2", "stale", "k", second->lease, 0).lost, 0);
    finish_ok(fx, second, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
}

STORE_TEST(a_successful_one_time_run_completes_and_is_recorded)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "done", "k");
    pgsched_time before, after;
    pgsched_finish_result r;
    pgsched_run_list *h;
    const pgsched_job *row;

    fx_advance(fx, fx->unit);
    before = fx_now(fx);
    r = finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    after = fx_now(fx);
    assert_int_equal(r.new_status, PGSCHED_COMPLETED);
    assert_true(r.version > j->version);

    row = get_job(fx, "done", "k");
    assert_int_equal(row->status, PGSCHED_COMPLETED);
    assert_null(row->owner);
    assert_int_equal(row->lease, 0);
    assert_int_equal(row->cancel_requested, 0);
    assert_int_equal(row->runs, 1);
    assert_int_equal(row->failures, 0);
    assert_int_equal(row->attempt, 0); /* RESET */
    assert_null(row->last_error);
    assert_int_equal(row->started_at, j->started_at);
    assert_time_between(row->finished_at, before, after);
    assert_int_equal(row->version, r.version);

    h = history_of(fx, "done", "k", 0);
    assert_int_equal(h->count, 1);
    assert_string_equal(h->items[0].name, "done");
    assert_string_equal(h->items[0].key, "k");
    assert_string_equal(h->items[0].node, "node-1");
    assert_int_equal(h->items[0].attempt, 1);
    assert_int_equal(h->items[0].started_at, j->started_at);
    assert_int_equal(h->items[0].finished_at, row->finished_at);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_null(h->items[0].error);
    assert_true(h->items[0].id > 0);
    /* completed rows are not claimed again */
    assert_int_equal(claim(fx, "node-1", "done", 10, NULL)->count, 0);
}

STORE_TEST(a_pending_outcome_without_a_time_is_due_after_the_retry_delay)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "delay", "k");
    pgsched_outcome oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, 0);
    pgsched_time before, after;
    pgsched_finish_result r;
    oc.retry_delay = 5 * fx->unit;
    oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    before = fx_now(fx);
    r = finish_with(fx, &oc);
    after = fx_now(fx);
    assert_int_equal(r.code, PGSCHED_OK);
    assert_int_equal(r.new_status, PGSCHED_PENDING);
    assert_time_between(r.next_run, before + 5 * fx->unit, after + 5 * fx->unit);
    assert_int_equal(get_job(fx, "delay", "k")->next_run, r.next_run);
    /* not due before then */
    assert_int_equal(claim(fx, "node-1", "delay", 10, NULL)->count, 0);
    fx_wait_until(fx, r.next_run);
    assert_int_equal(claim(fx, "node-1", "delay", 10, NULL)->count, 1);
}

STORE_TEST(attempt_rules_reset_keep_and_uncount_the_attempt)
{
    static const struct { pgsched_attempt_rule rule; int after; } steps[] = {
        {PGSCHED_ATTEMPT_KEEP, 1},    /* claim: 1, keep: 1 */
        {PGSCHED_ATTEMPT_KEEP, 2},    /* claim: 2, keep: 2 */
        {PGSCHED_ATTEMPT_UNCOUNT, 2}, /* claim: 3, uncount: 2 */
        {PGSCHED_ATTEMPT_RESET, 0},   /* claim: 3, reset: 0 */
        {PGSCHED_ATTEMPT_UNCOUNT, 0}, /* claim: 1, uncount: 0 */
    };
    size_t i;
    int expected_claim = 1;
    schedule_once(fx, "rules", "k", fx_now(fx) - fx->unit);
    for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const pgsched_job *j = claim_one(fx, "node-1", "rules", "k");
        pgsched_outcome oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING,
                                        fx_now(fx) - fx->unit);
        assert_int_equal(j->attempt, expected_claim);
        oc.attempt_rule = steps[i].rule;
        assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
        assert_int_equal(get_job(fx, "rules", "k")->attempt, steps[i].after);
        assert_int_equal(history_of(fx, "rules", "k", 1)->items[0].attempt, expected_claim);
        expected_claim = steps[i].after + 1;
    }
}

STORE_TEST(runs_and_failures_count_each_outcome_kind)
{
    static const struct { pgsched_outcome_kind kind; int runs, failures; } steps[] = {
        {PGSCHED_OUTCOME_SUCCESS, 1, 0},  {PGSCHED_OUTCOME_FAILURE, 2, 1},
        {PGSCHED_OUTCOME_CANCELLED, 3, 1}, {PGSCHED_OUTCOME_RELEASED, 3, 1},
        {PGSCHED_OUTCOME_STALLED, 4, 2},  {PGSCHED_OUTCOME_FAILURE, 5, 3},
    };
    size_t i;
    schedule_once(fx, "count", "k", fx_now(fx) - fx->unit);
    for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const pgsched_job *j = claim_one(fx, "node-1", "count", "k"), *row;
        pgsched_outcome oc = outcome_of(j, steps[i].kind, PGSCHED_PENDING, fx_now(fx) - fx->unit);
        pgsched_run_list *h;
        oc.error = steps[i].kind == PGSCHED_OUTCOME_FAILURE || steps[i].kind == PGSCHED_OUTCOME_STALLED
                       ? "it broke"
                       : NULL;
        assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
        row = get_job(fx, "count", "k");
        assert_int_equal(row->runs, steps[i].runs);
        assert_int_equal(row->failures, steps[i].failures);
        h = history_of(fx, "count", "k", 0);
        assert_int_equal(h->count, i + 1);
        assert_int_equal(h->items[0].outcome, steps[i].kind);
    }
}

STORE_TEST(last_error_is_set_by_failures_and_kept_by_other_outcomes)
{
    static const struct { pgsched_outcome_kind kind; const char *error, *last; } steps[] = {
        {PGSCHED_OUTCOME_SUCCESS, NULL, NULL},
        {PGSCHED_OUTCOME_FAILURE, "connection refused", "connection refused"},
        {PGSCHED_OUTCOME_SUCCESS, NULL, "connection refused"},
        {PGSCHED_OUTCOME_CANCELLED, NULL, "connection refused"},
        {PGSCHED_OUTCOME_RELEASED, NULL, "connection refused"},
        {PGSCHED_OUTCOME_STALLED, "node vanished", "node vanished"},
        {PGSCHED_OUTCOME_FAILURE, "quote ' and \\ and \xe2\x82\xac", "quote ' and \\ and \xe2\x82\xac"},
    };
    size_t i;
    schedule_once(fx, "lasterr", "k", fx_now(fx) - fx->unit);
    for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const pgsched_job *j = claim_one(fx, "node-1", "lasterr", "k");
        pgsched_outcome oc = outcome_of(j, steps[i].kind, PGSCHED_PENDING, fx_now(fx) - fx->unit);
        pgsched_run_list *h;
        oc.error = steps[i].error;
        assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
        assert_str_or_null_equal(get_job(fx, "lasterr", "k")->last_error, steps[i].last);
        h = history_of(fx, "lasterr", "k", 1);
        assert_str_or_null_equal(h->items[0].error, steps[i].error);
    }
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int n;
        uint32_t cp;
        if (c < 0x80) { p++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
        else return 0;
        p++;
        while (n--) {
            if ((*p & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (*p++ & 0x3F);
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
        if ((c == 0xE0 && cp < 0x800) || (c == 0xF0 && cp < 0x10000)) return 0;
    }
    return 1;
}

STORE_TEST(error_text_of_4_KiB_is_kept_byte_for_byte_and_longer_text_alike_by_every_store)
{
    /* PGSCHED_ERROR_TEXT_MAX bytes, multibyte characters and all, survive exactly. Longer text
       (the engine cuts it before it reaches a store) must at least get the same treatment from
       both stores: kept whole by both, or cut by both on the same character boundary. */
    size_t n = PGSCHED_ERROR_TEXT_MAX, i;
    char *text = (char *)malloc(n + 1000 + 1);
    pgsched_store *stores[2];
    const pgsched_job *rows[2];
    int s;
    assert_non_null(text);
    for (i = 0; i + 3 <= n; i += 3) memcpy(text + i, "\xe2\x82\xac", 3);
    memset(text + i, 'e', n - i);
    text[n] = '\0';
    stores[0] = fx->store;
    stores[1] = fx_memory_store(fx);
    for (s = 0; s < 2; s++) {
        pgsched_schedule_request req = once_req("longerr", "k", fx_now_of(fx, stores[s]) - fx->unit);
        pgsched_schedule_outcome so;
        const pgsched_job *j;
        pgsched_outcome oc;
        pgsched_finish_result r;
        pgsched_run_list *h = fx_rlist(fx);
        OK(pgsched_store_schedule(stores[s], &req, &so, E));
        j = &claim_of(fx, stores[s], "node-1", "longerr", 1, NULL)->items[0];
        oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, fx_now_of(fx, stores[s]) - fx->unit);
        oc.error = text;
        OK(pgsched_store_finish(stores[s], &oc, 1, &r, E));
        assert_int_equal(r.code, PGSCHED_OK);
        assert_string_equal(get_job_of(fx, stores[s], "longerr", "k")->last_error, text);
        OK(pgsched_store_history(stores[s], "longerr", "k", 1, h, E));
        assert_string_equal(h->items[0].error, text);
    }
    /* one byte over, with a character straddling the limit */
    memset(text, 'e', n - 2);
    memcpy(text + n - 2, "\xe2\x82\xac", 3);
    memset(text + n + 1, 't', 999);
    text[n + 1000] = '\0';
    for (s = 0; s < 2; s++) {
        const pgsched_job *j = &claim_of(fx, stores[s], "node-1", "longerr", 1, NULL)->items[0];
        pgsched_outcome oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING,
                                        fx_now_of(fx, stores[s]) + PGSCHED_HOUR);
        pgsched_finish_result r;
        oc.error = text;
        OK(pgsched_store_finish(stores[s], &oc, 1, &r, E));
        rows[s] = get_job_of(fx, stores[s], "longerr", "k");
        assert_non_null(rows[s]->last_error);
        assert_true(strncmp(rows[s]->last_error, text, strlen(rows[s]->last_error)) == 0);
        assert_true(utf8_valid(rows[s]->last_error));
    }
    assert_string_equal(rows[0]->last_error, rows[1]->last_error);
    free(text);
}

STORE_TEST(error_text_with_invalid_utf8_gets_the_same_answer_from_every_store)
{
    /* Handlers pass along whatever bytes a library gave them. Either both stores refuse the
       outcome with the same error, or both keep a valid UTF-8 text, the same one. */
    static const char bad[] = "read failed: \xff\xfe caf\xc3 done";
    pgsched_store *stores[2];
    pgsched_result codes[2];
    pgsched_error errs[2];
    const pgsched_job *rows[2];
    int i;
    stores[0] = fx->store;
    stores[1] = fx_memory_store(fx);
    for (i = 0; i < 2; i++) {
        pgsched_schedule_request req = once_req("bytes", "k", fx_now_of(fx, stores[i]) - fx->unit);
        pgsched_schedule_outcome so;
        const pgsched_job *j;
        pgsched_outcome oc;
        pgsched_finish_result r;
        OK(pgsched_store_schedule(stores[i], &req, &so, E));
        j = &claim_of(fx, stores[i], "node-1", "bytes", 1, NULL)->items[0];
        oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, PGSCHED_TIME_MAX);
        oc.error = bad;
        memset(&errs[i], 0, sizeof errs[i]);
        codes[i] = pgsched_store_finish(stores[i], &oc, 1, &r, &errs[i]);
        rows[i] = get_job_of(fx, stores[i], "bytes", "k");
        if (codes[i] == PGSCHED_OK) {
            assert_int_equal(r.code, PGSCHED_OK);
            assert_non_null(rows[i]->last_error);
            if (!utf8_valid(rows[i]->last_error))
                fail_msg("the %s store kept invalid UTF-8 as last_error",
                         i == 0 && fx->pg ? "PostgreSQL" : "memory");
        } else {
            assert_int_equal(rows[i]->status, PGSCHED_RUNNING);
        }
    }
    if (codes[0] != codes[1])
        fail_msg("stores disagree: %d (%s) vs memory %d (%s)", (int)codes[0], errs[0].message,
                 (int)codes[1], errs[1].message);
    if (codes[0] == PGSCHED_OK)
        assert_string_equal(rows[0]->last_error, rows[1]->last_error);
    else
        assert_string_equal(errs[0].message, errs[1].message);
}

STORE_TEST(a_retry_delay_past_year_9999_gets_the_same_answer_from_every_store)
{
    /* The wrapper only requires a retry delay to be non-negative. One that ends past
       PGSCHED_TIME_MAX must be refused alike by both stores, or give a due time within the
       supported range in both: never a database error in one and a wrapped clock in the
       other. */
    static const pgsched_duration delays[] = {10000LL * 365 * PGSCHED_DAY, PGSCHED_NEVER - 1};
    pgsched_store *stores[2];
    size_t d;
    int s;
    stores[0] = fx->store;
    stores[1] = fx_memory_store(fx);
    for (d = 0; d < 2; d++) {
        pgsched_result codes[2];
        pgsched_error errs[2];
        char key[32];
        snprintf(key, sizeof key, "d%u", (unsigned)d);
        for (s = 0; s < 2; s++) {
            pgsched_schedule_request req = once_req("far", key, fx_now_of(fx, stores[s]) - fx->unit);
            pgsched_schedule_outcome so;
            const pgsched_job *j;
            pgsched_outcome oc;
            pgsched_finish_result fr;
            OK(pgsched_store_schedule(stores[s], &req, &so, E));
            j = &claim_of(fx, stores[s], "node-1", "far", 1, NULL)->items[0];
            oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, 0);
            oc.retry_delay = delays[d];
            memset(&errs[s], 0, sizeof errs[s]);
            codes[s] = pgsched_store_finish(stores[s], &oc, 1, &fr, &errs[s]);
            if (codes[s] == PGSCHED_OK && fr.code == PGSCHED_OK) {
                const pgsched_job *row = get_job_of(fx, stores[s], "far", key);
                if (row->next_run < PGSCHED_TIME_MIN || row->next_run > PGSCHED_TIME_MAX)
                    fail_msg("the %s store made the due time %lld, outside the supported range",
                             s == 0 && fx->pg ? "PostgreSQL" : "memory", (long long)row->next_run);
            }
        }
        if (codes[0] != codes[1])
            fail_msg("retry delay %lld: the stores disagree: %d (%s) vs memory %d (%s)",
                     (long long)delays[d], (int)codes[0], errs[0].message, (int)codes[1],
                     errs[1].message);
        if (codes[0] != PGSCHED_OK) assert_string_equal(errs[0].message, errs[1].message);
    }
}

STORE_TEST(a_finish_batch_applies_each_outcome_on_its_own)
{
    const pgsched_job *a = schedule_and_claim(fx, "node-1", "batch", "a");
    const pgsched_job *b = schedule_and_claim(fx, "node-1", "batch", "b");
    const pgsched_job *c = schedule_and_claim(fx, "node-1", "batch", "c");
    const pgsched_job *b_before = get_job(fx, "batch", "b");
    pgsched_outcome oc[3];
    pgsched_finish_result r[3];
    oc[0] = outcome_of(a, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    oc[1] = outcome_of(b, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    oc[1].token = b->lease + 1;
    oc[2] = outcome_of(c, PGSCHED_OUTCOME_FAILURE, PGSCHED_FAILED, 0);
    oc[2].error = "no";
    memset(r, 0, sizeof r);
    OK(pgsched_store_finish(fx->store, oc, 3, r, E));
    assert_int_equal(r[0].code, PGSCHED_OK);
    assert_int_equal(r[0].new_status, PGSCHED_COMPLETED);
    assert_int_equal(r[1].code, PGSCHED_ERR_LEASE_LOST);
    assert_int_equal(r[2].code, PGSCHED_OK);
    assert_int_equal(r[2].new_status, PGSCHED_FAILED);
    assert_true(r[2].version > r[0].version);
    assert_job_equal(get_job(fx, "batch", "b"), b_before);
    assert_int_equal(get_job(fx, "batch", "a")->status, PGSCHED_COMPLETED);
    assert_int_equal(get_job(fx, "batch", "c")->status, PGSCHED_FAILED);
    assert_int_equal(history_of(fx, "batch", NULL, 0)->count, 2);
    assert_int_equal(history_of(fx, "batch", "b", 0)->count, 0);
    /* an empty batch is fine */
    OK(pgsched_store_finish(fx->store, oc, 0, r, E));
}

STORE_TEST(finishing_the_same_lease_twice_writes_once)
{
    static const pgsched_outcome_kind kinds[] = {PGSCHED_OUTCOME_SUCCESS, PGSCHED_OUTCOME_FAILURE};
    size_t i;
    for (i = 0; i < 2; i++) {
        char key[32];
        const pgsched_job *j;
        pgsched_outcome oc;
        snapshot before;
        pgsched_finish_result r;
        snprintf(key, sizeof key, "%s", pgsched_outcome_string(kinds[i]));
        j = schedule_and_claim(fx, "node-1", "twice", key);
        oc = outcome_of(j, kinds[i], PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
        oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
        oc.error = kinds[i] == PGSCHED_OUTCOME_FAILURE ? "boom" : NULL;
        r = finish_with(fx, &oc);
        assert_int_equal(r.code, PGSCHED_OK);
        assert_int_equal(r.replayed, 0);
        assert_int_equal(r.outcome, kinds[i]);
        before = take_snapshot(fx);
        /* the second write of one lease (a retry after a lost reply) is recognised as such */
        r = finish_with(fx, &oc);
        assert_int_equal(r.code, PGSCHED_OK);
        assert_int_equal(r.replayed, 1);
        assert_int_equal(r.new_status, PGSCHED_STATUS_NONE);
        assert_int_equal(r.outcome, 0);
        assert_int_equal(r.next_run, 0);
        assert_int_equal(r.version, 0);
        assert_unchanged(fx, before);
        /* and a third, with another outcome, changes nothing either */
        oc.outcome = PGSCHED_OUTCOME_SUCCESS;
        oc.status = PGSCHED_COMPLETED;
        oc.error = NULL;
        r = finish_with(fx, &oc);
        assert_int_equal(r.code, PGSCHED_OK);
        assert_int_equal(r.replayed, 1);
        assert_unchanged(fx, before);
        /* a token that never held the row is lost, not replayed */
        oc.token += 1000;
        r = finish_with(fx, &oc);
        assert_int_equal(r.code, PGSCHED_ERR_LEASE_LOST);
        assert_int_equal(r.replayed, 0);
        assert_unchanged(fx, before);
    }
}

STORE_TEST(a_finished_lease_sent_again_after_another_node_claimed_the_row_is_lost)
{
    /* Replayed means "your outcome is what the row last recorded". Once another run holds
       the row, an old lease is just stale, like any other. */
    const pgsched_job *first = schedule_and_claim(fx, "node-1", "again", "k"), *second;
    pgsched_outcome oc = outcome_of(first, PGSCHED_OUTCOME_SUCCESS, PGSCHED_PENDING,
                                    fx_now(fx) - fx->unit);
    pgsched_finish_result r;
    snapshot before;
    assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
    second = claim_one(fx, "node-2", "again", "k");
    assert_true(second->lease != first->lease);
    before = take_snapshot(fx);
    r = finish_with(fx, &oc);
    if (r.code != PGSCHED_ERR_LEASE_LOST || r.replayed != 0)
        fail_msg("the first lease, sent again while node-2 runs the row, got code %d (%s), "
                 "replayed = %d; expected LEASE_LOST, not replayed",
                 (int)r.code, pgsched_result_string(r.code), r.replayed);
    assert_unchanged(fx, before);
    /* node-2's run is untouched */
    assert_int_equal(heartbeat_one(fx, "node-2", "again", "k", second->lease, 0).lost, 0);
    r = finish_ok(fx, second, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    assert_int_equal(r.replayed, 0);
    assert_int_equal(r.new_status, PGSCHED_COMPLETED);
}

STORE_TEST(outcomes_for_a_removed_running_row_answer_each_for_itself)
{
    /* A batch with the real lease of a row whose removal waits for its run, that lease once
       more, and a token that never held the row: the row goes once, the repeat is a replay,
       and the stranger is lost, whatever the store. */
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "rm", "k");
    pgsched_change_outcome co;
    pgsched_outcome oc[3];
    pgsched_finish_result r[3];
    OK(pgsched_store_remove(fx->store, "rm", "k", "admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_REMOVE_DEFERRED);
    oc[0] = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    oc[1] = oc[0];
    oc[2] = oc[0];
    oc[2].token = j->lease + 1000;
    memset(r, 0, sizeof r);
    OK(pgsched_store_finish(fx->store, oc, 3, r, E));
    assert_int_equal(r[0].code, PGSCHED_OK);
    assert_int_equal(r[0].replayed, 0);
    assert_int_equal(r[0].new_status, PGSCHED_STATUS_NONE);
    assert_int_equal(r[1].code, PGSCHED_OK);
    assert_int_equal(r[1].replayed, 1);
    assert_int_equal(r[2].code, PGSCHED_ERR_LEASE_LOST);
    assert_int_equal(r[2].replayed, 0);
    assert_int_equal(row_exists(fx, "rm", "k"), 0);
    assert_int_equal(history_of(fx, "rm", "k", 0)->count, 1);
}

STORE_TEST(a_token_that_never_held_a_row_is_lost_on_a_row_that_never_ran)
{
    /* token 0 included: a pending row has recorded no lease's outcome yet */
    pgsched_outcome oc;
    pgsched_finish_result r;
    pgsched_job j;
    snapshot before;
    schedule_once(fx, "zero", "k", fx_now(fx) + PGSCHED_HOUR);
    memset(&j, 0, sizeof j);
    j.name = "zero";
    j.key = "k";
    j.owner = "node-1";
    before = take_snapshot(fx);
    oc = outcome_of(&j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    oc.token = 0;
    r = finish_with(fx, &oc);
    assert_int_equal(r.code, PGSCHED_ERR_LEASE_LOST);
    assert_int_equal(r.replayed, 0);
    assert_unchanged(fx, before);
}

STORE_TEST(a_batch_naming_the_same_lease_twice_applies_it_once)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "dup", "k");
    pgsched_outcome oc[2];
    pgsched_finish_result r[2];
    oc[0] = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
    oc[0].error = "first";
    oc[1] = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    memset(r, 0, sizeof r);
    OK(pgsched_store_finish(fx->store, oc, 2, r, E));
    assert_int_equal(r[0].code, PGSCHED_OK);
    assert_int_equal(r[0].new_status, PGSCHED_PENDING);
    assert_int_equal(r[1].code, PGSCHED_OK);
    assert_int_equal(r[1].replayed, 1);
    j = get_job(fx, "dup", "k");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->runs, 1);
    assert_string_equal(j->last_error, "first");
    assert_int_equal(history_of(fx, "dup", "k", 0)->count, 1);
}

STORE_TEST(a_claim_naming_a_type_twice_hands_out_each_row_once)
{
    const char *names[3] = {"twice", "twice", "twice"};
    pgsched_claim_request req;
    pgsched_claim_outcome info;
    pgsched_job_list *l = fx_jlist(fx);
    schedule_once(fx, "twice", "a", fx_now(fx) - 2 * fx->unit);
    schedule_once(fx, "twice", "b", fx_now(fx) - fx->unit);
    memset(&req, 0, sizeof req);
    req.node_id = "node-1";
    req.names = names;
    req.name_count = 3;
    req.max = 10;
    OK(pgsched_store_claim(fx->store, &req, l, &info, E));
    assert_int_equal(l->count, 2);
    assert_string_equal(l->items[0].key, "a");
    assert_string_equal(l->items[1].key, "b");
    assert_true(l->items[0].lease != l->items[1].lease);
}

STORE_TEST(keys_that_differ_in_case_space_or_normalisation_are_different_rows)
{
    static const char *const keys[] = {"a", "A", "a ", " a", "\xc3\xa9", "e\xcc\x81", "a\xc2\xa0"};
    size_t i, n = sizeof keys / sizeof keys[0];
    for (i = 0; i < n; i++) {
        pgsched_schedule_outcome o = schedule_once(fx, "distinct", keys[i], fx_now(fx) + PGSCHED_HOUR);
        assert_int_equal(o.created, 1);
    }
    assert_int_equal(all_rows(fx)->count, n);
    for (i = 0; i < n; i++) assert_string_equal(get_job(fx, "distinct", keys[i])->key, keys[i]);
}

/* ---- take back ------------------------------------------------------------------------ */

STORE_TEST(stalled_run_is_taken_back_by_another_node_with_a_fresh_token)
{
    pgsched_duration stall = 2 * fx->unit;
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "stall", "k"), *t;
    pgsched_job_list *back;
    pgsched_time before, after;
    fx_wait_until(fx, j->heartbeat_at + stall + 1);
    before = fx_now(fx);
    back = take_back(fx, "node-2", stall, 10);
    after = fx_now(fx);
    assert_int_equal(back->count, 1);
    t = &back->items[0];
    assert_string_equal(t->name, "stall");
    assert_string_equal(t->key, "k");
    assert_int_equal(t->status, PGSCHED_RUNNING);
    assert_string_equal(t->owner, "node-2");
    assert_true(t->lease != 0);
    assert_true(t->lease != j->lease);
    assert_int_equal(t->attempt, j->attempt);
    assert_int_equal(t->next_run, j->next_run);
    assert_time_between(t->heartbeat_at, before, after);
    assert_true(t->version > j->version);
    assert_job_equal(get_job(fx, "stall", "k"), t);
    /* the old holder has lost it */
    assert_int_equal(heartbeat_one(fx, "node-1", "stall", "k", j->lease, 1).lost, 1);
    assert_int_equal(heartbeat_one(fx, "node-2", "stall", "k", t->lease, 1).lost, 0);
    /* and a taken-back row is not taken back again while renewed */
    assert_int_equal(take_back(fx, "node-3", stall, 10)->count, 0);
}

/* A stalled attempt's history row names the node that ran it, not the node that took the row
   back and wrote the stall; the next attempt's row names the node that ran that one. */
STORE_TEST(stalled_attempt_history_names_the_node_that_ran_it)
{
    pgsched_duration stall = 2 * fx->unit;
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "stall", "k"), *t, *again;
    pgsched_run_list *h;
    fx_wait_until(fx, j->heartbeat_at + stall + 1);
    t = &take_back(fx, "node-2", stall, 10)->items[0];
    assert_string_equal(t->owner, "node-2"); /* node-2 holds the row and writes the stall */
    finish_ok(fx, t, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, 0);
    h = history_of(fx, "stall", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_STALLED);
    assert_int_equal(h->items[0].attempt, 1);
    assert_string_equal(h->items[0].node, "node-1");
    again = claim_one(fx, "node-3", "stall", "k");
    finish_ok(fx, again, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    h = history_of(fx, "stall", "k", 10);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_string_equal(h->items[0].node, "node-3");
    assert_string_equal(h->items[1].node, "node-1");
}

STORE_TEST(a_run_is_stalled_only_once_the_stall_timeout_has_passed)
{
    pgsched_duration stall = 2 * fx->unit;
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "edge", "k");
    if (fx->pg) {
        /* a long timeout right after the claim */
        assert_int_equal(take_back(fx, "node-2", 40 * fx->unit, 10)->count, 0);
    } else {
        /* exactly at the timeout the lease is not yet older than it */
        fx_wait_until(fx, j->heartbeat_at + stall);
        assert_int_equal(take_back(fx, "node-2", stall, 10)->count, 0);
    }
    fx_wait_until(fx, j->heartbeat_at + stall + 1);
    assert_int_equal(take_back(fx, "node-2", stall, 10)->count, 1);
}

STORE_TEST(take_back_takes_at_most_max_rows)
{
    pgsched_duration stall = 2 * fx->unit;
    const pgsched_job *last = NULL;
    char key[32];
    int i;
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "k%d", i);
        last = schedule_and_claim(fx, "node-1", "many", key);
    }
    fx_wait_until(fx, last->heartbeat_at + stall + 1);
    assert_int_equal(take_back(fx, "node-2", stall, 2)->count, 2);
    assert_int_equal(take_back(fx, "node-2", stall, 2)->count, 1);
    assert_int_equal(take_back(fx, "node-2", stall, 2)->count, 0);
}

STORE_TEST(take_back_with_a_limit_takes_the_longest_silent_run_first)
{
    pgsched_duration stall = 2 * fx->unit;
    int round;
    for (round = 0; round < 2; round++) {
        /* a and b are claimed in that order and one of them is renewed later: the other, the
           longer silent, goes first whichever of them was claimed first */
        char type[16];
        const pgsched_job *a, *b, *renewed, *silent;
        pgsched_job_list *first, *second;
        pgsched_time renewed_at;
        snprintf(type, sizeof type, "oldest%d", round);
        a = schedule_and_claim(fx, "node-1", type, "a");
        b = schedule_and_claim(fx, "node-1", type, "b");
        renewed = round == 0 ? a : b;
        silent = round == 0 ? b : a;
        fx_advance(fx, fx->unit);
        assert_int_equal(heartbeat_one(fx, "node-1", type, renewed->key, renewed->lease, 1).lost, 0);
        renewed_at = get_job(fx, type, renewed->key)->heartbeat_at;
        assert_true(renewed_at > silent->heartbeat_at);
        fx_wait_until(fx, renewed_at + stall + 1);

        first = take_back(fx, "node-2", stall, 1);
        assert_int_equal(first->count, 1);
        if (strcmp(first->items[0].key, silent->key) != 0)
            fail_msg("round %d: take-back took %s (renewed) before %s (silent longer)", round,
                     first->items[0].key, silent->key);
        second = take_back(fx, "node-2", stall, 1);
        assert_int_equal(second->count, 1);
        assert_string_equal(second->items[0].key, renewed->key);
        finish_ok(fx, &first->items[0], PGSCHED_OUTCOME_STALLED, PGSCHED_COMPLETED, 0);
        finish_ok(fx, &second->items[0], PGSCHED_OUTCOME_STALLED, PGSCHED_COMPLETED, 0);
    }
}

STORE_TEST(take_back_leaves_pending_and_finished_rows_alone)
{
    pgsched_duration stall = 2 * fx->unit;
    snapshot before;
    make_finished_row(fx, "idle", "completed", PGSCHED_COMPLETED);
    make_finished_row(fx, "idle", "failed", PGSCHED_FAILED);
    make_finished_row(fx, "idle", "cancelled", PGSCHED_CANCELLED);
    schedule_once(fx, "idle", "overdue", fx_now(fx) - 10 * fx->unit);
    fx_advance(fx, stall + fx->unit);
    before = take_snapshot(fx);
    assert_int_equal(take_back(fx, "node-2", stall, 10)->count, 0);
    assert_unchanged(fx, before);
}

STORE_TEST(a_stalled_run_counts_as_a_failed_attempt)
{
    /* §12: a take-back that consumed no retry let a job that kills its node loop forever. */
    pgsched_duration stall = 2 * fx->unit;
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "crash", "k"), *t, *row;
    pgsched_outcome oc;
    pgsched_finish_result r;
    pgsched_run_list *h;
    fx_wait_until(fx, j->heartbeat_at + stall + 1);
    t = &take_back(fx, "node-2", stall, 10)->items[0];
    assert_int_equal(t->attempt, 1);
    oc = outcome_of(t, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, fx_now(fx) - fx->unit);
    oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    oc.error = "node-1 stopped renewing its lease";
    r = finish_with(fx, &oc);
    assert_int_equal(r.code, PGSCHED_OK);
    assert_int_equal(r.new_status, PGSCHED_PENDING);
    row = get_job(fx, "crash", "k");
    assert_int_equal(row->attempt, 1);
    assert_int_equal(row->failures, 1);
    assert_int_equal(row->runs, 1);
    assert_string_equal(row->last_error, "node-1 stopped renewing its lease");
    h = history_of(fx, "crash", "k", 0);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_STALLED);
    assert_string_equal(h->items[0].node, "node-1"); /* the node that ran it */
    assert_int_equal(h->items[0].attempt, 1);
    /* the retry is the second attempt */
    assert_int_equal(claim_one(fx, "node-3", "crash", "k")->attempt, 2);
}

/* ---- cancel --------------------------------------------------------------------------- */

STORE_TEST(cancelling_a_running_row_asks_its_node_to_stop)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "cancel", "k"), *row;
    pgsched_change_outcome co;
    memset(&co, 0, sizeof co);
    OK(pgsched_store_cancel(fx->store, "cancel", "k", "admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_CANCEL_REQUESTED);
    assert_string_equal(co.owner, "node-1");
    assert_int_equal(co.old_status, PGSCHED_RUNNING);
    assert_int_equal(co.new_status, PGSCHED_RUNNING);
    row = get_job(fx, "cancel", "k");
    assert_int_equal(row->status, PGSCHED_RUNNING);
    assert_int_equal(row->cancel_requested, 1);
    assert_int_equal(row->lease, j->lease);
    assert_int_equal(row->version, co.version);
    assert_true(co.version > j->version);
}

STORE_TEST(cancelling_a_pending_one_time_row_cancels_it_without_running)
{
    pgsched_change_outcome co;
    pgsched_claim_outcome info;
    pgsched_time next = -1, now;
    const char *names[1] = {"cancel1"};
    const pgsched_job *row;
    schedule_once(fx, "cancel1", "k", fx_now(fx) - fx->unit);
    OK(pgsched_store_cancel(fx->store, "cancel1", "k", "admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_CANCEL_DONE);
    assert_int_equal(co.old_status, PGSCHED_PENDING);
    assert_int_equal(co.new_status, PGSCHED_CANCELLED);
    row = get_job(fx, "cancel1", "k");
    assert_int_equal(row->status, PGSCHED_CANCELLED);
    assert_int_equal(row->runs, 0);
    assert_int_equal(row->version, co.version);
    assert_int_equal(claim(fx, "node-1", "cancel1", 10, &info)->count, 0);
    OK(pgsched_store_next_due(fx->store, names, 1, &next, &now, E));
    assert_int_equal(next, 0);
}

STORE_TEST(cancelling_a_pending_recurring_row_changes_nothing)
{
    static const pgsched_schedule_kind kinds[] = {PGSCHED_CRON, PGSCHED_INTERVAL, PGSCHED_CUSTOM};
    size_t i;
    for (i = 0; i < 3; i++) {
        pgsched_schedule_request req;
        pgsched_change_outcome co;
        snapshot before;
        char key[32];
        snprintf(key, sizeof key, "r%u", (unsigned)i);
        req = once_req("recurring", key, fx_now(fx) + PGSCHED_HOUR);
        req.kind = kinds[i];
        req.cron = "*/5 * * * *";
        req.every = PGSCHED_MINUTE;
        schedule_ok(fx, &req);
        before = take_snapshot(fx);
        OK(pgsched_store_cancel(fx->store, "recurring", key, "admin", &co, E));
        assert_int_equal(co.effect, PGSCHED_CANCEL_NONE);
        assert_unchanged(fx, before);
    }
}

STORE_TEST(cancelling_a_finished_row_changes_nothing)
{
    static const pgsched_status finished[] = {PGSCHED_COMPLETED, PGSCHED_FAILED,
                                              PGSCHED_CANCELLED};
    size_t i;
    for (i = 0; i < 3; i++) {
        pgsched_change_outcome co;
        snapshot before;
        char key[32];
        snprintf(key, sizeof key, "f%u", (unsigned)i);
        make_finished_row(fx, "finished", key, finished[i]);
        before = take_snapshot(fx);
        OK(pgsched_store_cancel(fx->store, "finished", key, "admin", &co, E));
        assert_int_equal(co.effect, PGSCHED_CANCEL_NONE);
        assert_unchanged(fx, before);
    }
}

/* ---- a requested cancel wins over a failure ------------------------------------------- */

STORE_TEST(a_requested_cancel_wins_over_a_failure_a_stall_or_a_release_of_a_one_time_run)
{
    /* The run's node may not have seen the request before the attempt ended: the engine
       writes its usual outcome with cancelled_status, and the store records the cancel. */
    static const pgsched_outcome_kind kinds[] = {PGSCHED_OUTCOME_FAILURE, PGSCHED_OUTCOME_STALLED,
                                                 PGSCHED_OUTCOME_RELEASED};
    pgsched_duration stall = 2 * fx->unit;
    size_t i;
    for (i = 0; i < 3; i++) {
        const char *key = pgsched_outcome_string(kinds[i]);
        const pgsched_job *j, *row;
        pgsched_change_outcome co;
        pgsched_outcome oc;
        pgsched_finish_result r;
        pgsched_run_list *h;
        int64_t runs;
        /* an earlier failed attempt leaves an error, a failure and a used attempt */
        j = schedule_and_claim(fx, "node-1", "cwins", key);
        oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, fx_now(fx) - fx->unit);
        oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
        oc.error = "first attempt failed";
        assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
        j = claim_one(fx, "node-1", "cwins", key);
        assert_int_equal(j->attempt, 2);
        OK(pgsched_store_cancel(fx->store, "cwins", key, "admin", &co, E));
        assert_int_equal(co.effect, PGSCHED_CANCEL_REQUESTED);
        if (kinds[i] == PGSCHED_OUTCOME_STALLED) {
            /* node-1 dies before it sees the request; node-2 takes the run back */
            pgsched_job_list *back;
            fx_wait_until(fx, j->heartbeat_at + stall + 1);
            back = take_back(fx, "node-2", stall, 10);
            assert_int_equal(back->count, 1);
            j = &back->items[0];
            assert_int_equal(j->cancel_requested, 1);
        }
        runs = get_job(fx, "cwins", key)->runs;

        /* what the engine writes: a retry in an hour, or cancelled if the cancel wins */
        oc = outcome_of(j, kinds[i], PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
        oc.attempt_rule = kinds[i] == PGSCHED_OUTCOME_RELEASED ? PGSCHED_ATTEMPT_UNCOUNT
                                                               : PGSCHED_ATTEMPT_KEEP;
        oc.error = kinds[i] == PGSCHED_OUTCOME_RELEASED ? NULL : "second attempt failed";
        oc.cancelled_status = PGSCHED_CANCELLED;
        r = finish_with(fx, &oc);
        assert_int_equal(r.code, PGSCHED_OK);
        assert_int_equal(r.replayed, 0);
        if (r.outcome != PGSCHED_OUTCOME_CANCELLED || r.new_status != PGSCHED_CANCELLED)
            fail_msg("%s after a cancel request: recorded %s, row %s; expected cancelled, "
                     "cancelled", key, pgsched_outcome_string(r.outcome),
                     pgsched_status_string(r.new_status));
        assert_int_equal(r.next_run, 0);

        row = get_job(fx, "cwins", key);
        assert_int_equal(row->status, PGSCHED_CANCELLED);
        assert_int_equal(row->next_run, 0);
        assert_int_equal(row->attempt, 0);
        assert_int_equal(row->failures, 1);
        assert_int_equal(row->runs, runs + 1);
        assert_string_equal(row->last_error, "first attempt failed");
        assert_int_equal(row->cancel_requested, 0);
        assert_null(row->owner);
        assert_int_equal(row->lease, 0);
        assert_int_equal(row->version, r.version);
        h = history_of(fx, "cwins", key, 0);
        assert_int_equal(h->count, 2);
        assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_CANCELLED);
        assert_int_equal(h->items[0].attempt, 2);
        assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_FAILURE);
        /* a cancelled row does not run again */
        assert_int_equal(claim(fx, "node-3", "cwins", 10, NULL)->count, 0);
    }
}

STORE_TEST(a_requested_cancel_of_a_recurring_run_leaves_it_pending_at_the_cancelled_due_time)
{
    /* cancelled_next_run: the recurring row's next regular run (0 = now), with a fresh
       budget, instead of the failure's retry */
    pgsched_time next = fx_now(fx) + 2 * PGSCHED_HOUR;
    static const char *const keys[] = {"at-next", "at-now"};
    size_t i;
    for (i = 0; i < 2; i++) {
        pgsched_schedule_request req = once_req("cwinr", keys[i], fx_now(fx) - fx->unit);
        pgsched_change_outcome co;
        pgsched_outcome oc;
        pgsched_finish_result r;
        pgsched_time before, after;
        const pgsched_job *j, *row;
        req.kind = PGSCHED_CRON;
        req.cron = "0 */2 * * *";
        schedule_ok(fx, &req);
        j = claim_one(fx, "node-1", "cwinr", keys[i]);
        OK(pgsched_store_cancel(fx->store, "cwinr", keys[i], "admin", &co, E));
        oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, 0);
        oc.retry_delay = 5 * fx->unit;
        oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
        oc.error = "boom";
        oc.cancelled_status = PGSCHED_PENDING;
        oc.cancelled_next_run = i == 0 ? next : 0;
        before = fx_now(fx);
        r = finish_with(fx, &oc);
        after = fx_now(fx);
        assert_int_equal(r.code, PGSCHED_OK);
        assert_int_equal(r.outcome, PGSCHED_OUTCOME_CANCELLED);
        assert_int_equal(r.new_status, PGSCHED_PENDING);
        if (i == 0)
            assert_int_equal(r.next_run, next);
        else
            assert_time_between(r.next_run, before, after);
        row = get_job(fx, "cwinr", keys[i]);
        assert_int_equal(row->status, PGSCHED_PENDING);
        assert_int_equal(row->kind, PGSCHED_CRON);
        assert_int_equal(row->next_run, r.next_run);
        assert_int_equal(row->attempt, 0);
        assert_int_equal(row->failures, 0);
        assert_null(row->last_error);
        assert_int_equal(row->cancel_requested, 0);
        assert_int_equal(history_of(fx, "cwinr", keys[i], 1)->items[0].outcome,
                         PGSCHED_OUTCOME_CANCELLED);
    }
}

/* A failed attempt of (name, key) that asks for a retry after 5 units, with cancelled_status
   `cx`; checks that the failure, not a cancel, was recorded. */
static void expect_failure_recorded(fixture *fx, const pgsched_job *j, pgsched_status cx)
{
    pgsched_outcome oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, 0);
    pgsched_finish_result r;
    pgsched_time before, after;
    const pgsched_job *row;
    oc.retry_delay = 5 * fx->unit;
    oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    oc.error = "boom";
    oc.cancelled_status = cx;
    before = fx_now(fx);
    r = finish_with(fx, &oc);
    after = fx_now(fx);
    assert_int_equal(r.code, PGSCHED_OK);
    assert_int_equal(r.outcome, PGSCHED_OUTCOME_FAILURE);
    assert_int_equal(r.new_status, PGSCHED_PENDING);
    assert_time_between(r.next_run, before + 5 * fx->unit, after + 5 * fx->unit);
    row = get_job(fx, j->name, j->key);
    assert_int_equal(row->status, PGSCHED_PENDING);
    assert_int_equal(row->next_run, r.next_run);
    assert_int_equal(row->attempt, 1);
    assert_int_equal(row->failures, 1);
    assert_string_equal(row->last_error, "boom");
    assert_int_equal(row->cancel_requested, 0);
    assert_int_equal(history_of(fx, j->name, j->key, 1)->items[0].outcome, PGSCHED_OUTCOME_FAILURE);
}

STORE_TEST(without_a_cancel_request_a_failure_applies_as_usual_despite_a_cancelled_status)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "nocx", "k");
    expect_failure_recorded(fx, j, PGSCHED_CANCELLED);
}

STORE_TEST(a_failure_without_a_cancelled_status_applies_even_when_a_cancel_was_requested)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "cxnone", "k");
    pgsched_change_outcome co;
    OK(pgsched_store_cancel(fx->store, "cxnone", "k", "admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_CANCEL_REQUESTED);
    expect_failure_recorded(fx, j, PGSCHED_STATUS_NONE);
}

STORE_TEST(a_requested_cancel_does_not_turn_a_success_into_a_cancel)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "cxok", "k");
    pgsched_change_outcome co;
    pgsched_outcome oc = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    pgsched_finish_result r;
    OK(pgsched_store_cancel(fx->store, "cxok", "k", "admin", &co, E));
    oc.cancelled_status = PGSCHED_CANCELLED;
    r = finish_with(fx, &oc);
    assert_int_equal(r.code, PGSCHED_OK);
    assert_int_equal(r.outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(r.new_status, PGSCHED_COMPLETED);
    assert_int_equal(get_job(fx, "cxok", "k")->status, PGSCHED_COMPLETED);
    assert_int_equal(history_of(fx, "cxok", "k", 1)->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
}

STORE_TEST(changing_a_missing_row_is_not_found)
{
    pgsched_change_outcome co;
    snapshot before;
    schedule_once(fx, "present", "k", fx_now(fx) + PGSCHED_HOUR);
    before = take_snapshot(fx);
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_store_cancel(fx->store, "present", "other", "a", &co, E));
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_store_trigger(fx->store, "absent", "k", "a", &co, E));
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_store_remove(fx->store, "absent", "k", "a", &co, E));
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_store_get(fx->store, "absent", "k", fx_jlist(fx), E));
    assert_unchanged(fx, before);
}

/* ---- trigger -------------------------------------------------------------------------- */

STORE_TEST(triggering_a_pending_row_makes_it_due_now)
{
    pgsched_change_outcome co;
    pgsched_time before, after;
    pgsched_schedule_request req = once_req("trig", "cron", fx_now(fx) + PGSCHED_HOUR);
    req.kind = PGSCHED_CRON;
    req.cron = "0 0 1 1 *";
    schedule_ok(fx, &req);
    schedule_once(fx, "trig", "once", fx_now(fx) + PGSCHED_HOUR);
    assert_int_equal(claim(fx, "node-1", "trig", 10, NULL)->count, 0);

    before = fx_now(fx);
    OK(pgsched_store_trigger(fx->store, "trig", "cron", "admin", &co, E));
    after = fx_now(fx);
    assert_time_between(co.next_run, before, after);
    assert_int_equal(co.old_status, PGSCHED_PENDING);
    assert_int_equal(co.new_status, PGSCHED_PENDING);
    assert_int_equal(get_job(fx, "trig", "cron")->next_run, co.next_run);
    assert_int_equal(get_job(fx, "trig", "cron")->version, co.version);
    OK(pgsched_store_trigger(fx->store, "trig", "once", "admin", &co, E));
    assert_int_equal(claim(fx, "node-1", "trig", 10, NULL)->count, 2);
}

STORE_TEST(triggering_a_running_or_finished_row_is_refused)
{
    pgsched_change_outcome co;
    snapshot before;
    schedule_and_claim(fx, "node-1", "trig2", "running");
    make_finished_row(fx, "trig2", "completed", PGSCHED_COMPLETED);
    make_finished_row(fx, "trig2", "failed", PGSCHED_FAILED);
    make_finished_row(fx, "trig2", "cancelled", PGSCHED_CANCELLED);
    before = take_snapshot(fx);
    FAILS(PGSCHED_ERR_RUNNING, pgsched_store_trigger(fx->store, "trig2", "running", "a", &co, E));
    FAILS(PGSCHED_ERR_NOT_PENDING,
          pgsched_store_trigger(fx->store, "trig2", "completed", "a", &co, E));
    FAILS(PGSCHED_ERR_NOT_PENDING,
          pgsched_store_trigger(fx->store, "trig2", "failed", "a", &co, E));
    FAILS(PGSCHED_ERR_NOT_PENDING,
          pgsched_store_trigger(fx->store, "trig2", "cancelled", "a", &co, E));
    assert_unchanged(fx, before);
}

/* ---- remove --------------------------------------------------------------------------- */

STORE_TEST(removing_a_row_that_is_not_running_deletes_it)
{
    static const pgsched_status finished[] = {PGSCHED_COMPLETED, PGSCHED_FAILED,
                                              PGSCHED_CANCELLED};
    pgsched_change_outcome co;
    size_t i;
    for (i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "f%u", (unsigned)i);
        make_finished_row(fx, "rm", key, finished[i]);
    }
    schedule_once(fx, "rm", "pending", fx_now(fx) - fx->unit);
    schedule_once(fx, "rm", "bystander", fx_now(fx) + PGSCHED_HOUR);
    OK(pgsched_store_remove(fx->store, "rm", "pending", "admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_REMOVE_DONE);
    assert_int_equal(co.old_status, PGSCHED_PENDING);
    assert_int_equal(co.new_status, PGSCHED_STATUS_NONE);
    for (i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "f%u", (unsigned)i);
        OK(pgsched_store_remove(fx->store, "rm", key, "admin", &co, E));
        assert_int_equal(co.effect, PGSCHED_REMOVE_DONE);
        assert_int_equal(co.old_status, finished[i]);
        assert_int_equal(row_exists(fx, "rm", key), 0);
    }
    assert_int_equal(row_exists(fx, "rm", "pending"), 0);
    assert_int_equal(claim(fx, "node-1", "rm", 10, NULL)->count, 0);
    assert_int_equal(all_rows(fx)->count, 1);
}

STORE_TEST(removing_a_running_row_is_deferred_until_its_run_ends)
{
    static const pgsched_outcome_kind kinds[] = {PGSCHED_OUTCOME_SUCCESS,
                                                 PGSCHED_OUTCOME_FAILURE,
                                                 PGSCHED_OUTCOME_CANCELLED,
                                                 PGSCHED_OUTCOME_RELEASED};
    size_t i;
    for (i = 0; i < 4; i++) {
        char key[32];
        const pgsched_job *j, *row;
        pgsched_change_outcome co;
        pgsched_lease_state st;
        pgsched_finish_result r;
        snprintf(key, sizeof key, "r%u", (unsigned)i);
        j = schedule_and_claim(fx, "node-1", "rmrun", key);
        OK(pgsched_store_remove(fx->store, "rmrun", key, "admin", &co, E));
        assert_int_equal(co.effect, PGSCHED_REMOVE_DEFERRED);
        assert_string_equal(co.owner, "node-1");
        row = get_job(fx, "rmrun", key);
        assert_int_equal(row->status, PGSCHED_RUNNING);
        assert_int_equal(row->cancel_requested, 1);
        assert_int_equal(row->remove_requested, 1);
        assert_int_equal(row->lease, j->lease);
        st = heartbeat_one(fx, "node-1", "rmrun", key, j->lease, 1);
        assert_int_equal(st.lost, 0);
        assert_int_equal(st.cancel_requested, 1);
        r = finish_ok(fx, j, kinds[i], PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
        assert_int_equal(r.new_status, PGSCHED_STATUS_NONE);
        assert_int_equal(row_exists(fx, "rmrun", key), 0);
    }
}

STORE_TEST(a_removed_running_row_that_stalls_is_deleted_when_taken_back_and_finished)
{
    pgsched_duration stall = 2 * fx->unit;
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "rmstall", "k"), *t;
    pgsched_change_outcome co;
    pgsched_job_list *back;
    pgsched_outcome oc;
    pgsched_finish_result r;
    OK(pgsched_store_remove(fx->store, "rmstall", "k", "admin", &co, E));
    assert_int_equal(co.effect, PGSCHED_REMOVE_DEFERRED);
    fx_wait_until(fx, j->heartbeat_at + stall + 1);
    back = take_back(fx, "node-2", stall, 10);
    assert_int_equal(back->count, 1);
    t = &back->items[0];
    assert_int_equal(t->remove_requested, 1);
    oc = outcome_of(t, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, 0);
    oc.retry_delay = fx->unit;
    oc.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    r = finish_with(fx, &oc);
    assert_int_equal(r.code, PGSCHED_OK);
    assert_int_equal(r.new_status, PGSCHED_STATUS_NONE);
    assert_int_equal(row_exists(fx, "rmstall", "k"), 0);
}

STORE_TEST(a_removed_row_can_be_scheduled_again_with_a_higher_version)
{
    pgsched_schedule_outcome a = schedule_once(fx, "rebirth", "k", fx_now(fx) + PGSCHED_HOUR), b;
    pgsched_change_outcome co;
    OK(pgsched_store_remove(fx->store, "rebirth", "k", "admin", &co, E));
    assert_true(co.version > a.version);
    b = schedule_once(fx, "rebirth", "k", fx_now(fx) + PGSCHED_HOUR);
    assert_int_equal(b.created, 1);
    assert_int_equal(b.old_status, PGSCHED_STATUS_NONE);
    assert_true(b.version > co.version);
    assert_int_equal(get_job(fx, "rebirth", "k")->runs, 0);
}

#endif /* STORE_SUITE_LIFECYCLE_H */
