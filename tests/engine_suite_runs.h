/* engine_suite_runs.h - one node: schedule, claim, run, outcomes, retries, cancel, unschedule,
   trigger, re-schedule, schedules of every kind, run history (SPEC §4, §6, §9, §12). */
#ifndef ENGINE_SUITE_RUNS_H
#define ENGINE_SUITE_RUNS_H

/* Records of a probe for one key, in run order (copied); returns how many. */
static int probe_recs_for(probe *p, const char *key, run_rec *out, int cap)
{
    int i, n = 0;
    pthread_mutex_lock(&p->mu);
    for (i = 0; i < p->nrecs; i++)
        if (strcmp(p->recs[i].key, key) == 0 && n < cap) out[n++] = p->recs[i];
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int probe_count_key(probe *p, const char *key)
{
    run_rec tmp[32];
    return probe_recs_for(p, key, tmp, 32);
}

static int probe_done_key(probe *p, const char *key)
{
    run_rec tmp[32];
    int n = probe_recs_for(p, key, tmp, 32), i, d = 0;
    for (i = 0; i < n; i++) d += tmp[i].done;
    return d;
}

/* Starts a node on the test's config `c` with one type `name` run by `p` (h_probe). */
static pgsched_node *start_node_with(efx *fx, const pgsched_config *c, const char *name,
                                     pgsched_handler h, probe *p)
{
    pgsched_node *n = fx_node(fx, c);
    fx_register(fx, n, name, h, p);
    OK(pgsched_start(n, E));
    /* its first claim is done: what happens next is not seen by that claim */
    WAIT_UNTIL(counters_of(n).polls >= 1, 5000);
    return n;
}

/* A recurring row goes on: pending or running (read once), never finished. */
static void assert_recurring_alive(efx *fx, const char *name, const char *key)
{
    pgsched_status st = job_status(fx, name, key);
    if (st != PGSCHED_PENDING && st != PGSCHED_RUNNING)
        fail_msg("%s/%s is %s; a recurring job must stay pending or running", name, key,
                 st_name(st));
}

ENGINE_TEST(once_job_runs_and_completes)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_time before, after;
    const pgsched_job *j;
    pgsched_run_list *h;
    pgsched_counters k;
    run_rec r;
    s.params = "{\"x\":1}";
    before = fx_now(fx);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    after = fx_now(fx);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->kind, PGSCHED_ONCE);
    assert_int_equal(j->runs, 1);
    assert_int_equal(j->failures, 0);
    assert_null(j->last_error);
    assert_null(j->owner);
    assert_int_equal(j->lease, 0);
    assert_int_equal(j->cancel_requested, 0);
    assert_string_equal(j->params, "{\"x\":1}");
    assert_between(j->started_at, before, after);
    assert_between(j->finished_at, j->started_at, after);

    assert_int_equal(probe_nrecs(p), 1);
    r = probe_rec(p, 0);
    assert_int_equal(r.attempt, 1);
    assert_int_equal(r.max_retries, 3);
    assert_string_equal(r.params, "{\"x\":1}");
    assert_string_equal(r.node, pgsched_node_id(n));
    assert_string_equal(r.name, "t");
    assert_int_equal(r.cancelled_at_start, 0);
    assert_between(r.scheduled_for, before, r.start_db);

    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(h->items[0].attempt, 1);
    assert_string_equal(h->items[0].node, pgsched_node_id(n));
    assert_null(h->items[0].error);
    assert_between(h->items[0].finished_at, h->items[0].started_at, after);

    WAIT_UNTIL(counters_of(n).succeeded == 1, 2000);
    k = counters_of(n);
    assert_int_equal(k.claimed, 1);
    assert_int_equal(k.failed, 0);
    assert_int_equal(k.retried, 0);
    assert_int_equal(k.cancelled, 0);
    assert_int_equal(k.running, 0);
    assert_true(k.polls >= 1);
    assert_true(k.claim_latency_max >= k.claim_latency_last);
    assert_true(k.claim_latency_total >= k.claim_latency_max);
    assert_true(k.start_delay_max >= 0);
    assert_none_running(fx);
}

/* §12 (wake-up at the next due time): a job scheduled here for later starts on time even with
   a poll interval of a minute. */
ENGINE_TEST(once_job_at_future_time_runs_on_time)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s;
    pgsched_time at;
    run_rec r;
    c.poll_interval = 60 * SEC;
    n = start_node_with(fx, &c, "t", h_probe, p);
    at = fx_now(fx) + 400 * MS;
    s = spec_once("t", "k", at);
    OK(pgsched_schedule_job(n, &s, E));
    assert_int_equal(job_get(fx, "t", "k")->next_run, at);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    r = probe_rec(p, 0);
    assert_int_equal(r.scheduled_for, at);
    assert_between(r.start_db, at, at + 100 * MS);
}

/* §12: parameters are per instance, and registration (on any node) never overwrites them. */
ENGINE_TEST(params_per_instance_kept_across_runs)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx), *p2 = fx_probe(fx);
    pgsched_node *a = start_node_with(fx, &c, "p", h_probe, p), *b;
    pgsched_job_spec s1 = spec_interval("p", "k1", 150 * MS), s2 = spec_interval("p", "k2", 150 * MS);
    run_rec recs[32];
    int i, n;
    s1.params = "{\"n\":1}";
    s2.params = "{\"n\": 2, \"s\": \"two\"}";
    OK(pgsched_schedule_job(a, &s1, E));
    OK(pgsched_schedule_job(a, &s2, E));
    WAIT_UNTIL(probe_done_key(p, "k1") >= 2 && probe_done_key(p, "k2") >= 2, 5000);
    /* another node registers the same type (with other defaults) and runs it too */
    b = fx_node(fx, &c);
    {
        pgsched_job_type t = type_of("p", h_probe, p2);
        t.max_retries = 9;
        OK(pgsched_register(b, &t, E));
    }
    OK(pgsched_start(b, E));
    OK(pgsched_shutdown(a, E)); /* from now on b runs them */
    WAIT_UNTIL(probe_done_key(p2, "k1") >= 1 && probe_done_key(p2, "k2") >= 1, 5000);
    n = probe_recs_for(p, "k1", recs, 32);
    for (i = 0; i < n; i++) assert_string_equal(recs[i].params, "{\"n\":1}");
    n = probe_recs_for(p, "k2", recs, 32);
    for (i = 0; i < n; i++) assert_string_equal(recs[i].params, "{\"n\": 2, \"s\": \"two\"}");
    n = probe_recs_for(p2, "k1", recs, 32);
    for (i = 0; i < n; i++) assert_string_equal(recs[i].params, "{\"n\":1}");
    n = probe_recs_for(p2, "k2", recs, 32);
    for (i = 0; i < n; i++) {
        assert_string_equal(recs[i].params, "{\"n\": 2, \"s\": \"two\"}");
        assert_int_equal(recs[i].max_retries, 3); /* the row's budget, not b's type default */
    }
    assert_string_equal(job_get(fx, "p", "k1")->params, "{\"n\":1}");
    assert_string_equal(job_get(fx, "p", "k2")->params, "{\"n\": 2, \"s\": \"two\"}");
}

/* §4 failure + §12 (backoff not fixed): retries wait retry_base*2^(attempt-1) with equal jitter
   (in [d/2, d]), then a one-time job fails for good. Poll interval 60 s: retries are timed by
   the backoff, not by polling. */
ENGINE_TEST(failure_retries_with_exponential_backoff_then_fails)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_type t = type_of("t", h_probe, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    const pgsched_job *j;
    pgsched_run_list *h;
    run_rec r0, r1, r2;
    pgsched_duration gap1, gap2;
    pgsched_counters k;
    size_t i;
    c.poll_interval = 60 * SEC;
    n = fx_node(fx, &c);
    t.retry_base = 100 * MS;
    t.retry_cap = SEC;
    OK(pgsched_register(n, &t, E));
    OK(pgsched_start(n, E));
    p->rc = PGSCHED_RUN_FAILURE;
    p->error_attempt = 1;
    s.max_retries = 2;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_FAILED, 5000);
    assert_int_equal(probe_nrecs(p), 3);
    r0 = probe_rec(p, 0);
    r1 = probe_rec(p, 1);
    r2 = probe_rec(p, 2);
    assert_int_equal(r0.attempt, 1);
    assert_int_equal(r1.attempt, 2);
    assert_int_equal(r2.attempt, 3);
    gap1 = r1.start_mono - r0.end_mono;
    gap2 = r2.start_mono - r1.end_mono;
    if (g_verbose) fprintf(stderr, "    retry gaps: %lld ms, %lld ms\n", (long long)gap1 / 1000,
                           (long long)gap2 / 1000);
    assert_between(gap1, 50 * MS - 3 * MS, 100 * MS + 150 * MS);
    assert_between(gap2, 100 * MS - 3 * MS, 200 * MS + 150 * MS);

    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 3);
    /* the exact backoff: a retry is due its delay after the end of the failed attempt (the
       store wrote both in one statement), within [d/2, d] of the doubling delay d */
    assert_between(r1.scheduled_for - h->items[2].finished_at, 50 * MS, 100 * MS);
    assert_between(r2.scheduled_for - h->items[1].finished_at, 100 * MS, 200 * MS);

    j = job_get(fx, "t", "k");
    assert_int_equal(j->attempt, 3);
    assert_int_equal(j->runs, 3);
    assert_int_equal(j->failures, 3);
    assert_string_equal(j->last_error, "attempt 3 failed");
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 3);
    for (i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "attempt %d failed", 3 - (int)i);
        assert_int_equal(h->items[i].outcome, PGSCHED_OUTCOME_FAILURE);
        assert_int_equal(h->items[i].attempt, 3 - (int)i);
        assert_string_equal(h->items[i].error, want);
    }
    WAIT_UNTIL(counters_of(n).failed == 3, 2000);
    k = counters_of(n);
    assert_int_equal(k.retried, 2);
    assert_int_equal(k.succeeded, 0);
    assert_none_running(fx);
}

/* Fails the first attempt of every instance, succeeds afterwards; records each run. */
static int h_fail_first_attempt(pgsched_run *run)
{
    probe *p = (probe *)run->user;
    pthread_mutex_lock(&p->mu);
    if (p->nrecs < EFX_MAX_RECS) {
        run_rec *r = &p->recs[p->nrecs++];
        memset(r, 0, sizeof *r);
        snprintf(r->key, sizeof r->key, "%s", run->key);
        r->attempt = run->attempt;
        r->scheduled_for = run->scheduled_for;
        r->start_mono = r->end_mono = mono_us();
        r->rc = run->attempt == 1 ? PGSCHED_RUN_FAILURE : PGSCHED_RUN_SUCCESS;
        r->done = 1;
    }
    p->finished++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return run->attempt == 1 ? PGSCHED_RUN_FAILURE : PGSCHED_RUN_SUCCESS;
}

/* §12 (backoff not fixed): the retry delay has jitter. Several jobs that fail once with the
   same retry_base are each due again after a delay in [base/2, base], measured exactly (the
   retry's due time minus the end of the failed attempt, both written by the store in one
   statement), and the delays are not all the same. An unjittered backoff (every delay equal
   to the base) passes the looser checks of failure_retries_with_exponential_backoff_then_fails
   but not this one. */
ENGINE_TEST(retry_backoff_is_jittered_between_half_and_full_delay)
{
    enum { NJOBS = 6 };
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_type t = type_of("t", h_fail_first_attempt, p);
    pgsched_duration delay[NJOBS], lo = 0, hi = 0;
    char keys[NJOBS][16];
    int i;
    c.max_concurrent = NJOBS;
    n = fx_node(fx, &c);
    t.retry_base = 400 * MS;
    t.retry_cap = 10 * SEC;
    OK(pgsched_register(n, &t, E));
    OK(pgsched_start(n, E));
    for (i = 0; i < NJOBS; i++) {
        pgsched_job_spec s;
        snprintf(keys[i], sizeof keys[i], "j%d", i);
        s = spec_once("t", keys[i], 0);
        s.max_retries = 1;
        OK(pgsched_schedule_job(n, &s, E));
    }
    for (i = 0; i < NJOBS; i++) WAIT_STATUS("t", keys[i], PGSCHED_COMPLETED, 10000);
    for (i = 0; i < NJOBS; i++) {
        run_rec runs[4];
        pgsched_run_list *h = history_of(fx, "t", keys[i], 10);
        int nr = probe_recs_for(p, keys[i], runs, 4);
        assert_int_equal(nr, 2);
        assert_int_equal(runs[0].attempt, 1);
        assert_int_equal(runs[1].attempt, 2);
        assert_int_equal(h->count, 2);
        assert_int_equal(h->items[1].attempt, 1);
        assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_FAILURE);
        delay[i] = runs[1].scheduled_for - h->items[1].finished_at;
        if (g_verbose) fprintf(stderr, "    %s: retry delay %lld us\n", keys[i], (long long)delay[i]);
        assert_between(delay[i], 200 * MS, 400 * MS);
        if (i == 0 || delay[i] < lo) lo = delay[i];
        if (i == 0 || delay[i] > hi) hi = delay[i];
    }
    if (hi - lo <= 1 * MS)
        fail_msg("the %d retry delays all lie within %lld us of each other (%lld..%lld us): "
                 "the backoff has no jitter",
                 NJOBS, (long long)(hi - lo), (long long)lo, (long long)hi);
}

/* A recurring job that exhausts its retries goes on at its next occurrence with a fresh
   budget (attempt numbers 1, 2, then 1 again). */
ENGINE_TEST(recurring_exhausted_resets_budget)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_interval("t", "k", 300 * MS);
    run_rec r0, r1, r2;
    p->rc = PGSCHED_RUN_FAILURE;
    s.max_retries = 1;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_nrecs(p) >= 3, 5000);
    r0 = probe_rec(p, 0);
    r1 = probe_rec(p, 1);
    r2 = probe_rec(p, 2);
    assert_int_equal(r0.attempt, 1);
    assert_int_equal(r1.attempt, 2);
    assert_int_equal(r2.attempt, 1);
    /* the retry came after the backoff (20 ms base), the fresh run at the next occurrence */
    assert_true(r1.start_db - r0.end_db < 250 * MS);
    assert_true(r2.start_db - r1.end_db >= 300 * MS - 10 * MS);
    assert_recurring_alive(fx, "t", "k");
}

/* §12: the error text of a failed run is kept (row and history), cut to 4 KiB. */
ENGINE_TEST(error_text_stored_with_row_and_history)
{
    static char longtext[6000];
    static const char text[] = "disk \"full\" \xe2\x80\x93 \xc3\xbc" "n\xc3\xaf" "code \xe2\x9c\x93";
    pgsched_config c = fx_config(fx);
    probe *p1 = fx_probe(fx), *p2 = fx_probe(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_spec s;
    const pgsched_job *j;
    pgsched_run_list *h;
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    p1->rc = p2->rc = PGSCHED_RUN_FAILURE;
    p1->error = text;
    p2->error = longtext;
    fx_register(fx, n, "e1", h_probe, p1);
    fx_register(fx, n, "e2", h_probe, p2);
    OK(pgsched_start(n, E));
    s = spec_once("e1", "k", 0);
    s.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_schedule_job(n, &s, E));
    s.name = "e2";
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("e1", "k", PGSCHED_FAILED, 5000);
    WAIT_STATUS("e2", "k", PGSCHED_FAILED, 5000);
    j = job_get(fx, "e1", "k");
    assert_string_equal(j->last_error, text);
    h = history_of(fx, "e1", "k", 10);
    assert_int_equal(h->count, 1);
    assert_string_equal(h->items[0].error, text);
    j = job_get(fx, "e2", "k");
    assert_non_null(j->last_error);
    assert_int_equal(strlen(j->last_error), PGSCHED_ERROR_TEXT_MAX);
    assert_int_equal(strspn(j->last_error, "x"), PGSCHED_ERROR_TEXT_MAX);
    h = history_of(fx, "e2", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(strlen(h->items[0].error), PGSCHED_ERROR_TEXT_MAX);
}

/* A handler that returns neither 0 nor 1 has failed, and the error text says so. */
ENGINE_TEST(handler_garbage_return_is_failure)
{
    pgsched_config c = fx_config(fx);
    probe *p1 = fx_probe(fx), *p2 = fx_probe(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_spec s;
    const pgsched_job *j;
    pgsched_run_list *h;
    p1->rc = 42;
    p2->rc = -1;
    fx_register(fx, n, "g1", h_probe, p1);
    fx_register(fx, n, "g2", h_probe, p2);
    OK(pgsched_start(n, E));
    s = spec_once("g1", "k", 0);
    s.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_schedule_job(n, &s, E));
    s.name = "g2";
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("g1", "k", PGSCHED_FAILED, 5000);
    WAIT_STATUS("g2", "k", PGSCHED_FAILED, 5000);
    j = job_get(fx, "g1", "k");
    assert_non_null(j->last_error);
    if (!strstr(j->last_error, "returned 42") || !strstr(j->last_error, "neither"))
        fail_msg("unexpected error text: %s", j->last_error);
    h = history_of(fx, "g1", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_FAILURE);
    j = job_get(fx, "g2", "k");
    if (!j->last_error || !strstr(j->last_error, "returned -1"))
        fail_msg("unexpected error text: %s", j->last_error ? j->last_error : "(null)");
    WAIT_UNTIL(counters_of(n).failed == 2, 2000);
    assert_int_equal(counters_of(n).succeeded, 0);
    assert_none_running(fx);
}

/* A per-type timeout cancels the run (sleep wakes early) and counts it as a failure with the
   error "timed out after N ms", unless the handler gave its own. */
ENGINE_TEST(timeout_cancels_run_and_fails)
{
    pgsched_config c = fx_config(fx);
    probe *p1 = fx_probe(fx), *p2 = fx_probe(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_type t;
    pgsched_job_spec s;
    pgsched_run_list *h;
    run_rec r;
    p1->work = p2->work = 10 * SEC;
    p1->rc_on_cancel = p2->rc_on_cancel = PGSCHED_RUN_FAILURE;
    p2->error = "my own error";
    t = type_of("slow", h_probe, p1);
    t.timeout = 150 * MS;
    OK(pgsched_register(n, &t, E));
    t = type_of("slow2", h_probe, p2);
    t.timeout = 150 * MS;
    OK(pgsched_register(n, &t, E));
    OK(pgsched_start(n, E));
    s = spec_once("slow", "k", 0);
    s.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_schedule_job(n, &s, E));
    s.name = "slow2";
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("slow", "k", PGSCHED_FAILED, 5000);
    WAIT_STATUS("slow2", "k", PGSCHED_FAILED, 5000);
    r = probe_rec(p1, 0);
    assert_int_equal(r.saw_cancel, 1);
    /* the timeout counts from when the run was handed to its worker, a little before the
       handler's first line on a busy machine: the floor only proves it did not fire at once */
    assert_between(r.end_mono - r.start_mono, 75 * MS, 2 * SEC);
    assert_string_equal(job_get(fx, "slow", "k")->last_error, "timed out after 150 ms");
    h = history_of(fx, "slow", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_FAILURE);
    assert_string_equal(h->items[0].error, "timed out after 150 ms");
    assert_string_equal(job_get(fx, "slow2", "k")->last_error, "my own error");
}

/* SPEC §4: "Failure (handler returns failure, or its timeout expires)". A handler that
   ignores the timeout's cancel and returns success after the timeout has still timed out. */
ENGINE_TEST(timeout_expired_is_failure_even_if_handler_succeeds_late)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_type t = type_of("late", h_probe, p);
    pgsched_job_spec s = spec_once("late", "k", 0);
    run_rec r;
    p->gated = 1;
    p->gate_ignores_cancel = 1;
    p->rc = p->rc_on_cancel = PGSCHED_RUN_SUCCESS;
    t.timeout = 100 * MS;
    OK(pgsched_register(n, &t, E));
    OK(pgsched_start(n, E));
    s.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    {
        pgsched_time t0 = mono_us();
        WAIT_UNTIL(mono_us() - t0 >= 300 * MS, 1000); /* well past the timeout */
    }
    probe_open_gate(p);
    WAIT_UNTIL(job_status(fx, "late", "k") != PGSCHED_RUNNING, 5000);
    r = probe_rec(p, 0);
    assert_int_equal(r.saw_cancel, 1); /* it was told */
    assert_int_equal(job_status(fx, "late", "k"), PGSCHED_FAILED);
    assert_string_equal(job_get(fx, "late", "k")->last_error, "timed out after 100 ms");
}

/* A per-type timeout is kept by the dispatcher's own clock: with every other reason to wake
   it far away (no notifications, poll, cancel checks and stall checks a minute apart, a
   heartbeat every 10 s) the run is cancelled at its timeout, not at the next heartbeat. */
ENGINE_TEST(timeout_fires_on_time_when_nothing_else_wakes_the_dispatcher)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_type t = type_of("slow", h_wait_cancel, p);
    pgsched_job_spec s = spec_once("slow", "k", 0);
    const pgsched_job *j;
    pgsched_run_list *h;
    run_rec r;
    c.no_notifications = 1;
    c.poll_interval = 60 * SEC;
    c.cancel_check_period = 60 * SEC;
    c.stall_check_period = 60 * SEC;
    c.heartbeat_interval = 10 * SEC;
    c.stall_timeout = 60 * SEC;
    p->rc_on_cancel = PGSCHED_RUN_FAILURE;
    n = fx_node(fx, &c);
    t.timeout = 200 * MS;
    OK(pgsched_register(n, &t, E));
    OK(pgsched_start(n, E));
    WAIT_UNTIL(counters_of(n).polls >= 1, 5000);
    s.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_schedule_job(n, &s, E)); /* its own schedule call wakes the node to claim */
    WAIT_UNTIL(probe_finished(p) == 1, 5000); /* h_wait_cancel gives up after 20 s */
    r = probe_rec(p, 0);
    if (g_verbose)
        fprintf(stderr, "    timeout seen after %lld ms\n",
                (long long)(r.cancel_seen_mono - r.start_mono) / 1000);
    assert_int_equal(r.saw_cancel, 1);
    assert_between(r.cancel_seen_mono - r.start_mono, 190 * MS, 2 * SEC);
    WAIT_STATUS("slow", "k", PGSCHED_FAILED, 5000);
    j = job_get(fx, "slow", "k");
    assert_non_null(j->last_error);
    if (strncmp(j->last_error, "timed out", 9) != 0)
        fail_msg("the error \"%s\" does not start with \"timed out\"", j->last_error);
    h = history_of(fx, "slow", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_FAILURE);
}

/* Cancel of a running one-time job: the handler sees it at once (same node), and a handler
   that then fails makes the job "cancelled". */
ENGINE_TEST(cancel_running_once_job)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_cancel_effect eff = PGSCHED_CANCEL_NONE;
    pgsched_time t0;
    pgsched_run_list *h;
    run_rec r;
    c.no_notifications = 1; /* the local path only: no event, no cancel check, no heartbeat */
    c.cancel_check_period = 60 * SEC;
    c.heartbeat_interval = 2 * SEC;
    n = start_node_with(fx, &c, "t", h_wait_cancel, p);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    t0 = mono_us();
    OK(pgsched_cancel(n, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    WAIT_STATUS("t", "k", PGSCHED_CANCELLED, 5000);
    r = probe_rec(p, 0);
    assert_int_equal(r.saw_cancel, 1);
    assert_between(r.cancel_seen_mono - t0, 0, 100 * MS);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_CANCELLED);
    assert_int_equal(job_get(fx, "t", "k")->cancel_requested, 0);
    WAIT_UNTIL(counters_of(n).cancelled == 1, 2000);
    assert_int_equal(counters_of(n).failed, 0);
    OK(pgsched_cancel(n, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_NONE);
}

/* §12: cancel permanently killed a recurring job in the original. Here the cancelled run ends
   and the job is pending at its next occurrence; the next run is not cancelled. */
ENGINE_TEST(cancel_running_recurring_keeps_schedule)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_interval("t", "k", 300 * MS);
    pgsched_cancel_effect eff;
    const pgsched_job *j;
    run_rec r0, r1;
    p->gated = 1; /* the first run waits for the cancel */
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    OK(pgsched_cancel(n, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    probe_open_gate(p);
    WAIT_UNTIL(probe_finished(p) >= 1, 5000);
    WAIT_UNTIL(history_of(fx, "t", "k", 10)->count >= 1, 2000);
    assert_int_equal(history_of(fx, "t", "k", 10)->items[0].outcome, PGSCHED_OUTCOME_CANCELLED);
    r0 = probe_rec(p, 0);
    assert_int_equal(r0.saw_cancel, 1);
    j = job_get(fx, "t", "k");
    if (j->status == PGSCHED_PENDING) {
        assert_int_equal(j->attempt, 0);
        assert_int_equal(j->cancel_requested, 0);
        assert_true(j->next_run >= r0.end_db + 300 * MS - 10 * MS);
    } else {
        assert_int_equal(j->status, PGSCHED_RUNNING);
    }
    WAIT_UNTIL(probe_finished(p) >= 2, 5000);
    r1 = probe_rec(p, 1);
    assert_int_equal(r1.cancelled_at_start, 0);
    assert_int_equal(r1.saw_cancel, 0);
    assert_int_equal(r1.attempt, 1);
    assert_int_equal(r1.rc, PGSCHED_RUN_SUCCESS);
    assert_recurring_alive(fx, "t", "k");
}

/* §12: cancel_requested stayed set after a failed run in the original, so the next run was
   cancelled at once. Here it is cleared when the run ends, whatever the outcome. */
ENGINE_TEST(cancel_flag_cleared_when_run_ends)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_cancel_effect eff;
    run_rec r1;
    p->gated = 1;
    s.max_retries = 2;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    OK(pgsched_cancel(n, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    WAIT_STATUS("t", "k", PGSCHED_CANCELLED, 5000); /* the handler failed on the cancel */
    assert_int_equal(job_get(fx, "t", "k")->cancel_requested, 0);
    assert_int_equal(probe_nrecs(p), 1); /* a cancelled run is not retried */
    /* scheduled again, it runs uncancelled */
    probe_open_gate(p);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    r1 = probe_rec(p, 1);
    assert_int_equal(r1.cancelled_at_start, 0);
    assert_int_equal(r1.saw_cancel, 0);
    assert_int_equal(r1.attempt, 1);
}

/* A cancel the running node has not seen yet wins over the failure that follows. Node `a`
   runs the job and cannot learn of the cancel (no notifications, a cancel check a minute
   away, a heartbeat every 20 s); node `b` requests it; a's handler then fails. The store
   applies the cancel a's outcome carries as its alternative: the run ends cancelled, not
   retried. Returns a's node; the handler's record is probe_rec(p, 0). */
static pgsched_node *fail_after_unseen_cancel(efx *fx, probe *p, const pgsched_job_spec *s)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a, *b;
    pgsched_cancel_effect eff = PGSCHED_CANCEL_NONE;
    c.no_notifications = 1;
    c.cancel_check_period = 60 * SEC;
    c.heartbeat_interval = 20 * SEC;
    c.stall_timeout = 60 * SEC;
    p->gated = 1;
    p->rc = PGSCHED_RUN_FAILURE;
    a = start_node_with(fx, &c, s->name, h_probe, p);
    b = fx_node(fx, &c);
    fx_register(fx, b, s->name, NULL, NULL); /* b never runs it */
    OK(pgsched_start(b, E));
    OK(pgsched_schedule_job(a, s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    OK(pgsched_cancel(b, s->name, s->key, &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    assert_int_equal(job_get(fx, s->name, s->key)->cancel_requested, 1);
    probe_open_gate(p);
    WAIT_UNTIL(probe_finished(p) == 1, 5000);
    /* a never saw the cancel: the failure is what it reported */
    assert_int_equal(probe_rec(p, 0).saw_cancel, 0);
    assert_int_equal(probe_rec(p, 0).rc, PGSCHED_RUN_FAILURE);
    return a;
}

ENGINE_TEST(unseen_cancel_wins_over_failure_of_once_job)
{
    probe *p = fx_probe(fx);
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_node *a = fail_after_unseen_cancel(fx, p, &s);
    const pgsched_job *j;
    pgsched_run_list *h;
    pgsched_counters k;
    int64_t polls;
    WAIT_STATUS("t", "k", PGSCHED_CANCELLED, 5000);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->cancel_requested, 0);
    assert_int_equal(j->runs, 1);
    assert_int_equal(j->failures, 0);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_CANCELLED);
    WAIT_UNTIL(counters_of(a).cancelled == 1, 2000);
    k = counters_of(a);
    assert_int_equal(k.failed, 0);
    assert_int_equal(k.retried, 0);
    /* and it is not retried */
    polls = counters_of(a).polls;
    WAIT_UNTIL(counters_of(a).polls >= polls + 3, 5000);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_CANCELLED);
}

ENGINE_TEST(unseen_cancel_wins_over_failure_of_recurring_job)
{
    probe *p = fx_probe(fx);
    pgsched_job_spec s = spec_interval("t", "r", PGSCHED_HOUR);
    pgsched_node *a;
    const pgsched_job *j;
    pgsched_run_list *h;
    pgsched_counters k;
    s.schedule.at = fx_now(fx); /* the first run now, the next an hour after it */
    a = fail_after_unseen_cancel(fx, p, &s);
    WAIT_UNTIL(history_of(fx, "t", "r", 10)->count == 1, 5000);
    h = history_of(fx, "t", "r", 10);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_CANCELLED);
    /* pending at its next occurrence with a fresh budget: not a retry after a backoff */
    j = job_get(fx, "t", "r");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->attempt, 0);
    assert_int_equal(j->cancel_requested, 0);
    assert_int_equal(j->failures, 0);
    if (j->next_run < h->items[0].finished_at + PGSCHED_HOUR - SEC)
        fail_msg("next run %lld us after the cancelled run, not at the next occurrence (1 h)",
                 (long long)(j->next_run - h->items[0].finished_at));
    WAIT_UNTIL(counters_of(a).cancelled == 1, 2000);
    k = counters_of(a);
    assert_int_equal(k.failed, 0);
    assert_int_equal(k.retried, 0);
    assert_int_equal(probe_nrecs(p), 1);
}

/* A cancelled handler that returns success anyway has succeeded. */
ENGINE_TEST(cancel_then_handler_success_is_success)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_wait_cancel, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_cancel_effect eff;
    pgsched_run_list *h;
    p->rc_on_cancel = PGSCHED_RUN_SUCCESS;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    OK(pgsched_cancel(n, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    WAIT_UNTIL(counters_of(n).succeeded == 1, 2000);
    assert_int_equal(counters_of(n).cancelled, 0);
}

ENGINE_TEST(cancel_pending_once_job_cancels_without_running)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_once("t", "k", fx_now(fx) + PGSCHED_HOUR);
    pgsched_cancel_effect eff = PGSCHED_CANCEL_NONE;
    int64_t polls;
    OK(pgsched_schedule_job(n, &s, E));
    OK(pgsched_cancel(n, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_DONE);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_CANCELLED);
    FAILS(PGSCHED_ERR_NOT_PENDING, pgsched_trigger(n, "t", "k", E));
    polls = counters_of(n).polls;
    WAIT_UNTIL(counters_of(n).polls >= polls + 2, 5000);
    assert_int_equal(probe_nrecs(p), 0);
    assert_int_equal(counters_of(n).claimed, 0);
    assert_int_equal(history_of(fx, "t", "k", 10)->count, 0);
}

ENGINE_TEST(cancel_pending_recurring_or_finished_does_nothing)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_interval("t", "r", PGSCHED_HOUR);
    pgsched_cancel_effect eff = PGSCHED_CANCEL_DONE;
    pgsched_time next;
    OK(pgsched_schedule_job(n, &s, E));
    next = job_get(fx, "t", "r")->next_run;
    OK(pgsched_cancel(n, "t", "r", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_NONE);
    assert_int_equal(job_get(fx, "t", "r")->status, PGSCHED_PENDING);
    assert_int_equal(job_get(fx, "t", "r")->next_run, next);
    s = spec_once("t", "done", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "done", PGSCHED_COMPLETED, 5000);
    eff = PGSCHED_CANCEL_DONE;
    OK(pgsched_cancel(n, "t", "done", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_NONE);
    assert_int_equal(job_status(fx, "t", "done"), PGSCHED_COMPLETED);
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_cancel(n, "t", "missing", &eff, E));
}

/* §12: the original had no way to unschedule. */
ENGINE_TEST(unschedule_not_running_deletes_row)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_once("t", "later", fx_now(fx) + PGSCHED_HOUR);
    pgsched_remove_effect eff = PGSCHED_REMOVE_DEFERRED;
    OK(pgsched_schedule_job(n, &s, E));
    OK(pgsched_unschedule(n, "t", "later", &eff, E));
    assert_int_equal(eff, PGSCHED_REMOVE_DONE);
    assert_int_equal(job_status(fx, "t", "later"), PGSCHED_STATUS_NONE);
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_unschedule(n, "t", "later", &eff, E));
    s = spec_interval("t", "rec", PGSCHED_HOUR);
    OK(pgsched_schedule_job(n, &s, E));
    eff = PGSCHED_REMOVE_DEFERRED;
    OK(pgsched_unschedule(n, "t", "rec", &eff, E));
    assert_int_equal(eff, PGSCHED_REMOVE_DONE);
    assert_int_equal(job_status(fx, "t", "rec"), PGSCHED_STATUS_NONE);
    s = spec_once("t", "done", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "done", PGSCHED_COMPLETED, 5000);
    eff = PGSCHED_REMOVE_DEFERRED;
    OK(pgsched_unschedule(n, "t", "done", &eff, E));
    assert_int_equal(eff, PGSCHED_REMOVE_DONE);
    assert_int_equal(job_status(fx, "t", "done"), PGSCHED_STATUS_NONE);
    assert_int_equal(probe_count_key(p, "later"), 0);
    assert_int_equal(probe_count_key(p, "rec"), 0);
}

ENGINE_TEST(unschedule_running_removes_after_run)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_wait_cancel, p);
    pgsched_job_spec s = spec_interval("t", "k", 200 * MS);
    pgsched_remove_effect eff = PGSCHED_REMOVE_DONE;
    int64_t polls;
    s.schedule.at = fx_now(fx);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    OK(pgsched_unschedule(n, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_REMOVE_DEFERRED);
    WAIT_STATUS("t", "k", PGSCHED_STATUS_NONE, 5000);
    assert_int_equal(probe_rec(p, 0).saw_cancel, 1);
    polls = counters_of(n).polls;
    WAIT_UNTIL(counters_of(n).polls >= polls + 3, 5000);
    assert_int_equal(probe_nrecs(p), 1);
}

/* Trigger: a pending instance becomes due now (and runs at once, poll interval 60 s); running,
   finished and missing instances give distinct errors. */
ENGINE_TEST(trigger_makes_pending_job_due_now)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx), *pg = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_interval("t", "k", PGSCHED_HOUR);
    pgsched_time t0;
    run_rec r;
    c.poll_interval = 60 * SEC;
    n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_probe, p);
    fx_register(fx, n, "g", h_probe, pg);
    pg->gated = 1;
    OK(pgsched_start(n, E));
    WAIT_UNTIL(counters_of(n).polls >= 1, 5000);
    OK(pgsched_schedule_job(n, &s, E));
    t0 = mono_us();
    OK(pgsched_trigger(n, "t", "k", E));
    WAIT_UNTIL(probe_finished(p) == 1, 2000);
    r = probe_rec(p, 0);
    assert_between(r.start_mono - t0, 0, 100 * MS);
    WAIT_STATUS("t", "k", PGSCHED_PENDING, 2000);
    assert_true(job_get(fx, "t", "k")->next_run >= r.end_db + PGSCHED_HOUR - 10 * MS);
    /* running */
    s = spec_once("g", "run", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(pg) == 1, 5000);
    FAILS(PGSCHED_ERR_RUNNING, pgsched_trigger(n, "g", "run", E));
    probe_open_gate(pg);
    WAIT_STATUS("g", "run", PGSCHED_COMPLETED, 5000);
    FAILS(PGSCHED_ERR_NOT_PENDING, pgsched_trigger(n, "g", "run", E));
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_trigger(n, "g", "missing", E));
}

/* Re-scheduling a pending instance replaces schedule, params and budget; its next run is the
   earlier of the stored and the new one. */
ENGINE_TEST(reschedule_pending_replaces_and_keeps_earlier_run)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_spec s;
    const pgsched_job *j;
    pgsched_time t = fx_now(fx);
    fx_register(fx, n, "t", h_probe, p);
    OK(pgsched_init(n, E));
    s = spec_once("t", "k", t + PGSCHED_HOUR);
    s.params = "{\"v\":1}";
    s.max_retries = 2;
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "k", t + 2 * PGSCHED_HOUR);
    s.params = "{\"v\":2}";
    s.max_retries = 5;
    OK(pgsched_schedule_job(n, &s, E));
    j = job_get(fx, "t", "k");
    assert_int_equal(j->next_run, t + PGSCHED_HOUR);
    assert_string_equal(j->params, "{\"v\":2}");
    assert_int_equal(j->max_retries, 5);
    assert_int_equal(j->status, PGSCHED_PENDING);
    s = spec_interval("t", "k", PGSCHED_HOUR);
    s.schedule.at = t + 30 * PGSCHED_MINUTE;
    s.params = "{\"v\":3}";
    OK(pgsched_schedule_job(n, &s, E));
    j = job_get(fx, "t", "k");
    assert_int_equal(j->kind, PGSCHED_INTERVAL);
    assert_int_equal(j->every, PGSCHED_HOUR);
    assert_int_equal(j->next_run, t + 30 * PGSCHED_MINUTE);
    assert_int_equal(j->max_retries, 3);
    s = spec_once("t", "k", 0);
    s.params = "{\"v\":4}";
    OK(pgsched_schedule_job(n, &s, E));
    OK(pgsched_start(n, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_int_equal(probe_nrecs(p), 1);
    assert_string_equal(probe_rec(p, 0).params, "{\"v\":4}");
}

/* Re-scheduling a running instance is refused, unless it asks to apply after the run. */
ENGINE_TEST(reschedule_running_refused_or_applied_after_run)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    const pgsched_job *j;
    p->gated = 1;
    s.params = "{\"v\":1}";
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    s.params = "{\"v\":2}";
    FAILS(PGSCHED_ERR_RUNNING, pgsched_schedule_job(n, &s, E));
    s.apply_after_run = 1;
    OK(pgsched_schedule_job(n, &s, E));
    j = job_get(fx, "t", "k");
    assert_int_equal(j->status, PGSCHED_RUNNING);
    assert_int_equal(j->change_pending, 1);
    assert_string_equal(j->params, "{\"v\":1}");
    probe_open_gate(p);
    WAIT_UNTIL(probe_finished(p) == 2, 5000);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_string_equal(probe_rec(p, 0).params, "{\"v\":1}");
    assert_string_equal(probe_rec(p, 1).params, "{\"v\":2}");
    assert_string_equal(job_get(fx, "t", "k")->params, "{\"v\":2}");
}

/* An interval counts from the end of the previous run. */
ENGINE_TEST(interval_next_run_counts_from_run_end)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_interval("t", "k", 250 * MS);
    run_rec r0, r1;
    p->work = 150 * MS;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_finished(p) >= 2, 5000);
    r0 = probe_rec(p, 0);
    r1 = probe_rec(p, 1);
    assert_between(r1.start_db - r0.end_db, 250 * MS - 10 * MS, 250 * MS + 150 * MS);
    assert_between(r1.scheduled_for - r0.end_db, 250 * MS - 10 * MS, 250 * MS + 50 * MS);
}

/* A cron job runs at each occurrence, once, on time. */
ENGINE_TEST(cron_job_runs_at_each_occurrence_once)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_cron("t", "k", "* * * * * *");
    const pgsched_job *j;
    run_rec r0, r1;
    c.poll_interval = 60 * SEC;
    n = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(n, &s, E));
    j = job_get(fx, "t", "k");
    assert_int_equal(j->kind, PGSCHED_CRON);
    assert_string_equal(j->cron, "* * * * * *");
    assert_int_equal(j->next_run % SEC, 0);
    WAIT_UNTIL(probe_finished(p) >= 2, 5000);
    r0 = probe_rec(p, 0);
    r1 = probe_rec(p, 1);
    assert_int_equal(r0.scheduled_for % SEC, 0);
    assert_int_equal(r1.scheduled_for - r0.scheduled_for, SEC);
    assert_between(r0.start_db - r0.scheduled_for, 0, 100 * MS);
    assert_between(r1.start_db - r1.scheduled_for, 0, 100 * MS);
}

/* Missed occurrences are coalesced: a run that overlaps later occurrences is followed by one
   run at the first occurrence after its end, not by a replay of each missed one. (Memory: the
   store's clock jumps 5.5 s during the run, and the run ends after the node's next heartbeats
   have seen the jump; PostgreSQL: the run lasts 1.2 s.) */
ENGINE_TEST(cron_missed_occurrences_coalesced)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_cron("t", "k", "* * * * * *");
    run_rec r0, r1;
    c.stall_timeout = 60 * SEC;
    c.stall_check_period = PGSCHED_HOUR;
    p->gated = 1;
    n = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 3000);
    if (fx->pg) {
        pgsched_time t = mono_us() + 1200 * MS;
        WAIT_UNTIL(mono_us() >= t, 3000);
    } else {
        pgsched_time jumped;
        fx_skew_add(fx, 5500 * MS);
        /* two heartbeats after the jump: the node's estimate of the store clock is fresh */
        jumped = fx_now(fx);
        WAIT_UNTIL(job_get(fx, "t", "k")->heartbeat_at >= jumped, 3000);
        jumped = fx_now(fx);
        WAIT_UNTIL(job_get(fx, "t", "k")->heartbeat_at >= jumped, 3000);
    }
    probe_open_gate(p);
    WAIT_UNTIL(probe_finished(p) >= 2, 5000);
    r0 = probe_rec(p, 0);
    r1 = probe_rec(p, 1);
    assert_true(r1.scheduled_for > r0.end_db - 20 * MS);
    assert_true(r1.scheduled_for - r0.end_db <= SEC);
    assert_true(r1.scheduled_for - r0.scheduled_for >= 2 * SEC);
    assert_int_equal(r1.scheduled_for % SEC, 0);
}

/* With cfg.default_zone the stored text carries the zone, so every node computes the same. */
ENGINE_TEST(cron_default_zone_stored_with_row)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n;
    pgsched_job_spec s;
    const pgsched_job *j;
    pgsched_cron *cron = NULL;
    pgsched_time t0, t1, want0, want1;
    c.default_zone = "America/New_York";
    n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_probe, fx_probe(fx));
    OK(pgsched_init(n, E));
    s = spec_cron("t", "ny", "30 2 * * *");
    t0 = fx_now(fx);
    OK(pgsched_schedule_job(n, &s, E));
    t1 = fx_now(fx);
    j = job_get(fx, "t", "ny");
    assert_string_equal(j->cron, "CRON_TZ=America/New_York 30 2 * * *");
    OK(pgsched_cron_parse(j->cron, NULL, &cron, E));
    OK(pgsched_cron_next(cron, t0 - 100 * MS, &want0));
    OK(pgsched_cron_next(cron, t1 + 100 * MS, &want1));
    pgsched_cron_free(cron);
    assert_between(j->next_run, want0, want1);
    s = spec_cron("t", "utc", "CRON_TZ=UTC 0 0 * * *");
    OK(pgsched_schedule_job(n, &s, E));
    assert_string_equal(job_get(fx, "t", "utc")->cron, "CRON_TZ=UTC 0 0 * * *");
    s = spec_cron("t", "tokyo", "TZ=Asia/Tokyo 0 9 * * *");
    OK(pgsched_schedule_job(n, &s, E));
    assert_string_equal(job_get(fx, "t", "tokyo")->cron, "TZ=Asia/Tokyo 0 9 * * *");
}

/* "@every 90s" is a fixed interval row. */
ENGINE_TEST(cron_every_macro_stored_as_interval)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_spec s = spec_cron("t", "k", "@every 90s");
    const pgsched_job *j;
    pgsched_time t0, t1;
    fx_register(fx, n, "t", h_probe, fx_probe(fx));
    OK(pgsched_init(n, E));
    t0 = fx_now(fx);
    OK(pgsched_schedule_job(n, &s, E));
    t1 = fx_now(fx);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->kind, PGSCHED_INTERVAL);
    assert_int_equal(j->every, 90 * SEC);
    assert_between(j->next_run, t0 + 90 * SEC - 50 * MS, t1 + 90 * SEC + 50 * MS);
}

static pgsched_result custom_next(void *user, const char *name, const char *key,
                                  const char *params, pgsched_time after, pgsched_time *next)
{
    probe *p = (probe *)user;
    int k;
    (void)name;
    (void)key;
    pthread_mutex_lock(&p->mu);
    k = p->failed_so_far++; /* the calls, counted in a field this probe's handler won't use */
    if (params && strcmp(params, "{\"c\":1}") != 0) p->gate_open = 99; /* wrong params seen */
    pthread_mutex_unlock(&p->mu);
    if (k >= 2) return PGSCHED_ERR_NO_NEXT;
    *next = after + 200 * MS;
    return PGSCHED_OK;
}

/* A custom schedule: the type's callback computes every run; NO_NEXT ends the job. */
ENGINE_TEST(custom_schedule_uses_type_callback)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx), *calls = fx_probe(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_type t = type_of("t", h_probe, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    run_rec r0, r1;
    int ncalls, bad;
    t.next_run = custom_next;
    t.next_run_user = calls;
    OK(pgsched_register(n, &t, E));
    OK(pgsched_start(n, E));
    s.schedule.kind = PGSCHED_CUSTOM;
    s.params = "{\"c\":1}";
    OK(pgsched_schedule_job(n, &s, E));
    assert_int_equal(job_get(fx, "t", "k")->kind, PGSCHED_CUSTOM);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_int_equal(probe_nrecs(p), 2);
    r0 = probe_rec(p, 0);
    r1 = probe_rec(p, 1);
    assert_true(r1.start_db - r0.end_db >= 200 * MS - 10 * MS);
    pthread_mutex_lock(&calls->mu);
    ncalls = calls->failed_so_far;
    bad = calls->gate_open;
    pthread_mutex_unlock(&calls->mu);
    assert_int_equal(ncalls, 3);
    assert_int_equal(bad, 0);
}

/* A custom row (written by another node, or by hand) run by a node whose type has a handler
   but no next_run callback: it ran once and failed, naming the cause, instead of being made
   due again after every run. */
ENGINE_TEST(a_custom_row_run_by_a_type_without_next_run_callback_fails_after_one_run)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_schedule_request q;
    pgsched_schedule_outcome o;
    memset(&q, 0, sizeof q);
    q.name = "t";
    q.key = "k";
    q.kind = PGSCHED_CUSTOM;
    q.max_retries = 3;
    OK(pgsched_store_schedule(fx->store, &q, &o, E));
    WAIT_STATUS("t", "k", PGSCHED_FAILED, 3000);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(job_get(fx, "t", "k")->runs, 1);
    assert_true(fx_log_count(fx, PGSCHED_LOG_ERROR) >= 1);
    (void)n;
}

/* A key written by hand with a line break (and a C1 NEL) cannot forge a second log line: the
   node's log line about the row shows them escaped. PostgreSQL only: the memory store cannot
   be written around the API, which refuses such keys. */
ENGINE_TEST(control_characters_of_a_hand_written_key_are_escaped_in_log_lines)
{
    pgsched_config c;
    probe *p = fx_probe(fx);
    pgsched_schedule_request q;
    pgsched_schedule_outcome o;
    char seen[512];
    int control;
    if (!fx->pg) return;
    memset(&q, 0, sizeof q);
    q.name = "t";
    q.key = "k";
    q.kind = PGSCHED_CUSTOM; /* the type below cannot compute it: an error line names the row */
    q.max_retries = 3;
    q.next_run = fx_now(fx) + PGSCHED_HOUR;
    OK(pgsched_store_schedule(fx->store, &q, &o, E));
    admin_exec("UPDATE \"%s\".\"" EFX_PREFIX "jobs\" SET key = E'k\\nerror: forged\\u0085line', "
               "next_run = now() WHERE name = 't'",
               fx->schema);
    c = fx_config(fx);
    start_node_with(fx, &c, "t", h_probe, p);
    WAIT_UNTIL(fx_log_count(fx, PGSCHED_LOG_ERROR) >= 1, 3000);
    pthread_mutex_lock(&fx->log_mu);
    snprintf(seen, sizeof seen, "%s", fx->log_error);
    control = fx->log_control;
    pthread_mutex_unlock(&fx->log_mu);
    if (!strstr(seen, "t/k\\nerror: forged\\u0085line"))
        fail_msg("the error line does not show the key escaped: %s", seen);
    assert_int_equal(control, 0);
}

/* An interval schedule whose next run would fall after year 9999 is over: the row completes
   after its run, as a cron schedule's does, and nothing is logged as an error (the message
   logged was an uninitialised buffer). Memory store: its clock is moved to year 9994 (the
   database clock cannot be moved). */
ENGINE_TEST(an_interval_with_no_run_before_year_10000_completes_like_a_cron_schedule)
{
    pgsched_config c;
    probe *p = fx_probe(fx);
    pgsched_job_spec s = spec_interval("t", "k", 10 * 365 * PGSCHED_DAY);
    const pgsched_job *j;
    if (fx->pg) return; /* the database clock cannot be moved to year 9994 */
    fx_skew_add(fx, PGSCHED_TIME_MAX - 5 * 365 * PGSCHED_DAY - pgsched_now());
    c = fx_config(fx);
    start_node_with(fx, &c, "t", h_probe, p);
    s.schedule.at = fx_now(fx);
    OK(pgsched_schedule_job(fx->nodes[fx->nnodes - 1], &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 3000);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->runs, 1);
    assert_int_equal(j->failures, 0);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(fx_log_count(fx, PGSCHED_LOG_ERROR), 0);
}

/* cfg.run_immediately: a recurring job scheduled here runs once at once. */
ENGINE_TEST(run_immediately_runs_recurring_job_now)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_interval("t", "k", PGSCHED_HOUR);
    pgsched_time t0;
    run_rec r;
    c.poll_interval = 60 * SEC;
    c.run_immediately = 1;
    n = start_node_with(fx, &c, "t", h_probe, p);
    t0 = mono_us();
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_finished(p) == 1, 2000);
    r = probe_rec(p, 0);
    assert_between(r.start_mono - t0, 0, 150 * MS);
    WAIT_STATUS("t", "k", PGSCHED_PENDING, 2000);
    assert_true(job_get(fx, "t", "k")->next_run >= r.end_db + PGSCHED_HOUR - 10 * MS);
}

/* schedule.at sets the first run of a recurring job. */
ENGINE_TEST(schedule_at_sets_first_recurring_run)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_interval("t", "k", PGSCHED_HOUR);
    run_rec r;
    c.poll_interval = 60 * SEC;
    n = start_node_with(fx, &c, "t", h_probe, p);
    s.schedule.at = fx_now(fx) + 300 * MS;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_finished(p) == 1, 3000);
    r = probe_rec(p, 0);
    assert_int_equal(r.scheduled_for, s.schedule.at);
    assert_between(r.start_db, s.schedule.at, s.schedule.at + 100 * MS);
}

/* §12: run history, one row per finished attempt, newest first. */
ENGINE_TEST(run_history_rows_newest_first)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_run_list *h, *all;
    const pgsched_job *j;
    pgsched_run_list *rl = fx_rlist(fx);
    p->fail_first = 1;
    p->error = "first fails";
    s.max_retries = 1;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(h->items[0].attempt, 2);
    assert_null(h->items[0].error);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_FAILURE);
    assert_int_equal(h->items[1].attempt, 1);
    assert_string_equal(h->items[1].error, "first fails");
    assert_string_equal(h->items[0].node, pgsched_node_id(n));
    assert_string_equal(h->items[1].node, pgsched_node_id(n));
    assert_string_equal(h->items[0].name, "t");
    assert_string_equal(h->items[0].key, "k");
    assert_true(h->items[0].id > h->items[1].id);
    assert_true(h->items[1].started_at <= h->items[1].finished_at);
    assert_true(h->items[1].finished_at <= h->items[0].started_at);
    assert_true(h->items[0].started_at <= h->items[0].finished_at);
    all = history_of(fx, NULL, NULL, 1);
    assert_int_equal(all->count, 1);
    assert_int_equal(all->items[0].id, h->items[0].id);
    /* the same through the node */
    OK(pgsched_history(n, "t", "k", 10, rl, E));
    assert_int_equal(rl->count, 2);
    assert_int_equal(rl->items[0].id, h->items[0].id);
    assert_int_equal(history_of(fx, "t", "other", 10)->count, 0);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->runs, 2);
    assert_int_equal(j->failures, 1);
    assert_string_equal(j->last_error, "first fails"); /* "of the last failed attempt" */
}

ENGINE_TEST(max_concurrent_bounds_parallel_runs)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    int i, mx;
    c.max_concurrent = 2;
    n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_probe, p);
    p->work = 100 * MS;
    OK(pgsched_init(n, E));
    for (i = 0; i < 6; i++) {
        char key[16];
        pgsched_job_spec s;
        snprintf(key, sizeof key, "k%d", i);
        s = spec_once("t", key, 0);
        OK(pgsched_schedule_job(n, &s, E));
    }
    OK(pgsched_start(n, E));
    WAIT_UNTIL(count_rows(fx, "t", PGSCHED_COMPLETED) == 6, 5000);
    pthread_mutex_lock(&p->mu);
    mx = p->max_inflight;
    pthread_mutex_unlock(&p->mu);
    assert_int_equal(mx, 2);
}

/* A handler that schedules, cancels, removes and triggers jobs of its own node, reads rows,
   history and counters: no deadlock (one worker, so nothing else runs meanwhile). */
static void hook_api_calls(pgsched_run *run, probe *p, run_rec *r)
{
    pgsched_node *n = run->node;
    pgsched_job_spec s = spec_once("t", "child", 0);
    pgsched_cancel_effect ce = PGSCHED_CANCEL_NONE;
    pgsched_remove_effect re = PGSCHED_REMOVE_DEFERRED;
    pgsched_job_list l;
    pgsched_run_list rl;
    pgsched_counters k;
    pgsched_error e;
    (void)p;
    if (!r || strcmp(run->key, "main") != 0) return;
    pgsched_job_list_init(&l, NULL);
    pgsched_run_list_init(&rl, NULL);
    r->api_rc[0] = pgsched_schedule_job(n, &s, &e);
    r->api_rc[1] = pgsched_cancel(n, "t", "victim", &ce, &e);
    if (r->api_rc[1] == PGSCHED_OK && ce != PGSCHED_CANCEL_DONE) r->api_rc[1] = PGSCHED_ERR_STATE;
    r->api_rc[2] = pgsched_unschedule(n, "t", "gone", &re, &e);
    if (r->api_rc[2] == PGSCHED_OK && re != PGSCHED_REMOVE_DONE) r->api_rc[2] = PGSCHED_ERR_STATE;
    r->api_rc[3] = pgsched_trigger(n, "t", "later", &e);
    r->api_rc[4] = pgsched_get(n, "t", "main", &l, &e);
    if (r->api_rc[4] == PGSCHED_OK && (l.count != 1 || l.items[0].status != PGSCHED_RUNNING))
        r->api_rc[4] = PGSCHED_ERR_STATE;
    r->api_rc[5] = pgsched_history(n, NULL, NULL, 10, &rl, &e);
    memset(&k, 0, sizeof k);
    pgsched_get_counters(n, &k);
    r->api_rc[6] = k.running == 1 ? PGSCHED_OK : PGSCHED_ERR_STATE;
    r->api_rc[7] = pgsched_shutdown(n, &e);
    snprintf(r->api_msg, sizeof r->api_msg, "%s", e.message);
    pgsched_job_list_free(&l);
    pgsched_run_list_free(&rl);
}

ENGINE_TEST(handler_uses_node_api_without_deadlock)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s;
    pgsched_time far = fx_now(fx) + PGSCHED_HOUR;
    run_rec r;
    c.max_concurrent = 1;
    n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_probe, p);
    p->hook = hook_api_calls;
    OK(pgsched_init(n, E));
    s = spec_once("t", "victim", far);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "gone", far);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_interval("t", "later", PGSCHED_HOUR);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "main", 0);
    OK(pgsched_schedule_job(n, &s, E));
    OK(pgsched_start(n, E));
    WAIT_STATUS("t", "main", PGSCHED_COMPLETED, 5000);
    WAIT_STATUS("t", "child", PGSCHED_COMPLETED, 5000);
    WAIT_UNTIL(probe_done_key(p, "later") == 1, 5000);
    assert_int_equal(job_status(fx, "t", "victim"), PGSCHED_CANCELLED);
    assert_int_equal(job_status(fx, "t", "gone"), PGSCHED_STATUS_NONE);
    r = probe_rec(p, 0);
    assert_string_equal(r.key, "main");
    assert_int_equal(r.api_rc[0], PGSCHED_OK);
    assert_int_equal(r.api_rc[1], PGSCHED_OK);
    assert_int_equal(r.api_rc[2], PGSCHED_OK);
    assert_int_equal(r.api_rc[3], PGSCHED_OK);
    assert_int_equal(r.api_rc[4], PGSCHED_OK);
    assert_int_equal(r.api_rc[5], PGSCHED_OK);
    assert_int_equal(r.api_rc[6], PGSCHED_OK);
    /* shutdown from a handler of the same node is refused, not a deadlock */
    assert_int_equal(r.api_rc[7], PGSCHED_ERR_STATE);
    assert_true(r.api_msg[0] != '\0');
    assert_int_equal(probe_count_key(p, "victim"), 0);
}

/* ---- schedules that end or cannot be written ------------------------------------------ */

static int g_past_9999_calls[2]; /* calls of next_past_9999 per key (atomic) */

/* A custom schedule whose callback answers "far in the future" (past year 9999, beyond any
   time a store can hold) instead of PGSCHED_ERR_NO_NEXT after the first run. */
static pgsched_result next_past_9999(void *user, const char *name, const char *key,
                                     const char *params, pgsched_time after, pgsched_time *next)
{
    int k = strcmp(key, "max") == 0 ? 0 : 1;
    (void)user;
    (void)name;
    (void)params;
    if (__atomic_fetch_add(&g_past_9999_calls[k], 1, __ATOMIC_ACQ_REL) == 0) {
        *next = after + 50 * MS; /* the first run, computed when it is scheduled */
        return PGSCHED_OK;
    }
    *next = k == 0 ? (pgsched_time)INT64_MAX : PGSCHED_TIME_MAX + 1;
    return PGSCHED_OK;
}

/* A next run past year 9999 means "never again": the schedule ends (the row completes), and
   the outcome that says so holds back no other job's outcome. */
ENGINE_TEST(custom_next_run_past_year_9999_ends_the_schedule)
{
    pgsched_config c = fx_config(fx);
    probe *pc = fx_probe(fx), *pp = fx_probe(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_type t = type_of("custom", h_probe, pc);
    pgsched_job_spec s;
    const char *keys[2] = {"max", "edge"};
    pgsched_counters k;
    int i;
    __atomic_store_n(&g_past_9999_calls[0], 0, __ATOMIC_RELEASE);
    __atomic_store_n(&g_past_9999_calls[1], 0, __ATOMIC_RELEASE);
    t.next_run = next_past_9999;
    OK(pgsched_register(n, &t, E));
    fx_register(fx, n, "plain", h_probe, pp);
    OK(pgsched_start(n, E));
    for (i = 0; i < 2; i++) {
        s = spec_once("custom", keys[i], 0);
        s.schedule.kind = PGSCHED_CUSTOM;
        OK(pgsched_schedule_job(n, &s, E));
    }
    WAIT_UNTIL(probe_finished(pc) == 2, 3000);
    /* a later job of another type is not held back by those outcomes */
    s = spec_once("plain", "p", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("plain", "p", PGSCHED_COMPLETED, 3000);
    for (i = 0; i < 2; i++) {
        const pgsched_job *j;
        WAIT_STATUS("custom", keys[i], PGSCHED_COMPLETED, 3000);
        j = job_get(fx, "custom", keys[i]);
        assert_int_equal(j->runs, 1);
        assert_int_equal(j->failures, 0);
    }
    assert_int_equal(probe_nrecs(pc), 2);
    WAIT_UNTIL(counters_of(n).succeeded == 3, 2000); /* counted once the writes returned */
    k = counters_of(n);
    assert_int_equal(k.failed, 0);
}

/* One outcome the store refuses (the whole batch fails with a non-retryable error) is
   dropped on its own: the other outcomes, of the same batch or later ones, are written. */
ENGINE_TEST(a_refused_outcome_does_not_hold_back_other_outcomes)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "bad", 0);
    const pgsched_job *bad;
    w->refuse_prefix = "bad";
    n = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_finished(p) == 1 && fx_log_count(fx, PGSCHED_LOG_ERROR) >= 1, 3000);
    s = spec_once("t", "good", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "good", PGSCHED_COMPLETED, 3000);
    WAIT_UNTIL(counters_of(n).succeeded == 1, 2000); /* counted once the write returned */
    /* the refused one wrote nothing: its lease will expire and the row be taken back */
    bad = job_get(fx, "t", "bad");
    assert_int_equal(bad->status, PGSCHED_RUNNING);
    assert_string_equal(bad->owner, pgsched_node_id(n));
    assert_int_equal(bad->runs, 0);
    assert_int_equal(history_of(fx, "t", "bad", 10)->count, 0);
}

/* Cron text without CRON_TZ= means UTC on every node: a node whose default zone is New York
   computes the next run of a row written by a node without a default zone at 09:00 UTC,
   not at 09:00 in New York (13:00 or 14:00 UTC). */
ENGINE_TEST(cron_row_without_zone_runs_at_utc_time_on_node_with_default_zone)
{
    pgsched_config ca = fx_config(fx), cb = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a, *b;
    pgsched_job_spec s = spec_cron("t", "k", "0 9 * * *");
    const pgsched_job *j;
    run_rec r;
    a = fx_node(fx, &ca);
    fx_register(fx, a, "t", NULL, NULL); /* schedules only */
    OK(pgsched_start(a, E));
    cb.default_zone = "America/New_York";
    b = start_node_with(fx, &cb, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    j = job_get(fx, "t", "k");
    assert_string_equal(j->cron, "0 9 * * *");
    assert_int_equal(j->next_run % PGSCHED_DAY, 9 * PGSCHED_HOUR);
    OK(pgsched_trigger(a, "t", "k", E));
    WAIT_UNTIL(probe_finished(p) == 1 && counters_of(b).succeeded == 1, 3000);
    r = probe_rec(p, 0);
    assert_string_equal(r.node, pgsched_node_id(b));
    j = job_get(fx, "t", "k");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->runs, 1);
    if (j->next_run % PGSCHED_DAY != 9 * PGSCHED_HOUR)
        fail_msg("the node with default zone America/New_York computed the next run at "
                 "%lld:%02lld UTC, not 09:00 UTC",
                 (long long)(j->next_run % PGSCHED_DAY / PGSCHED_HOUR),
                 (long long)(j->next_run % PGSCHED_HOUR / PGSCHED_MINUTE));
    assert_between(j->next_run, r.end_db - 50 * MS, r.end_db + PGSCHED_DAY);
}

/* ---- claim ahead ---------------------------------------------------------------------------- */

/* A node with one worker, busy with a gated run of "slow", and a due "t"/"k1" it claimed
   ahead into its queue (its row is running in the store, its handler not started). */
static pgsched_node *node_with_a_queued_row(efx *fx, pgsched_config *c, probe *slow, probe *p)
{
    pgsched_node *n;
    pgsched_job_spec s;
    c->max_concurrent = 1;
    c->claim_ahead = 4;
    if (!c->claim_ahead_wait) c->claim_ahead_wait = 60 * SEC; /* it stays queued */
    slow->gated = 1;
    n = fx_node(fx, c);
    fx_register(fx, n, "slow", h_probe, slow);
    fx_register(fx, n, "t", h_probe, p);
    OK(pgsched_start(n, E));
    s = spec_once("slow", "s0", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(slow) == 1, 5000);
    s = spec_once("t", "k1", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k1", PGSCHED_RUNNING, 5000);
    assert_int_equal(probe_nrecs(p), 0); /* claimed, queued, not started */
    return n;
}

/* Cancelling a row that waits in a node's claim-ahead queue ends it as cancelled without
   running it, while the worker is still busy. */
ENGINE_TEST(a_cancelled_queued_row_ends_cancelled_without_running)
{
    pgsched_config c = fx_config(fx);
    probe *slow = fx_probe(fx), *p = fx_probe(fx);
    pgsched_node *n = node_with_a_queued_row(fx, &c, slow, p);
    pgsched_cancel_effect eff;
    OK(pgsched_cancel(n, "t", "k1", &eff, E));
    WAIT_STATUS("t", "k1", PGSCHED_CANCELLED, 5000);
    assert_int_equal(probe_inflight(slow), 1); /* the worker never got to it */
    probe_open_gate(slow);
    WAIT_STATUS("slow", "s0", PGSCHED_COMPLETED, 5000);
    OK(pgsched_shutdown(n, E));
    assert_int_equal(probe_nrecs(p), 0);
    assert_int_equal(history_of(fx, "t", "k1", 10)->items[0].outcome, PGSCHED_OUTCOME_CANCELLED);
}

/* Unscheduling a queued row deletes it without running it. */
ENGINE_TEST(an_unscheduled_queued_row_is_removed_without_running)
{
    pgsched_config c = fx_config(fx);
    probe *slow = fx_probe(fx), *p = fx_probe(fx);
    pgsched_node *n = node_with_a_queued_row(fx, &c, slow, p);
    pgsched_remove_effect re;
    OK(pgsched_unschedule(n, "t", "k1", &re, E));
    WAIT_STATUS("t", "k1", PGSCHED_STATUS_NONE, 5000);
    assert_int_equal(probe_inflight(slow), 1);
    probe_open_gate(slow);
    OK(pgsched_shutdown(n, E));
    assert_int_equal(probe_nrecs(p), 0);
}

/* Shutdown gives a queued row back at once: pending again, no attempt counted, never run. */
ENGINE_TEST(shutdown_gives_queued_rows_back_without_counting_an_attempt)
{
    pgsched_config c = fx_config(fx);
    probe *slow = fx_probe(fx), *p = fx_probe(fx);
    pgsched_node *n = node_with_a_queued_row(fx, &c, slow, p);
    const pgsched_job *j;
    OK(pgsched_shutdown(n, E)); /* the gated run ends on the shutdown's cancel */
    j = job_get(fx, "t", "k1");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->attempt, 0);
    assert_int_equal(probe_nrecs(p), 0);
}

/* A queued row's lease is renewed like a running one's: waiting longer than the stall timeout
   in the queue, it is neither taken back nor lost, and then runs once, as attempt 1. */
ENGINE_TEST(a_queued_row_keeps_its_lease_while_it_waits)
{
    pgsched_config c = fx_config(fx);
    probe *slow = fx_probe(fx), *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_time t0;
    c.stall_timeout = 1500 * MS;
    c.heartbeat_interval = 150 * MS;
    c.stall_check_period = 100 * MS;
    n = node_with_a_queued_row(fx, &c, slow, p);
    t0 = mono_us();
    while (mono_us() - t0 < 2500 * MS) sleep_us(20 * MS); /* longer than the stall timeout */
    assert_int_equal(job_status(fx, "t", "k1"), PGSCHED_RUNNING);
    assert_int_equal(probe_nrecs(p), 0);
    probe_open_gate(slow);
    WAIT_STATUS("t", "k1", PGSCHED_COMPLETED, 5000);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(probe_rec(p, 0).attempt, 1);
    WAIT_UNTIL(counters_of(n).succeeded == 2, 2000);
    assert_int_equal(counters_of(n).stalled_taken_back, 0);
    assert_int_equal(counters_of(n).lease_lost, 0);
}

/* A node whose every worker is busy with a long run does not sit on the rows it claimed
   ahead: after claim_ahead_wait with no queued row reaching a worker, it gives them back (no
   attempt counted) and an idle node runs them, while the long run still goes on. */
ENGINE_TEST(a_queue_stuck_behind_a_long_run_goes_to_an_idle_node)
{
    pgsched_config c = fx_config(fx), cb = fx_config(fx);
    probe *slow = fx_probe(fx), *p = fx_probe(fx), *p2 = fx_probe(fx);
    pgsched_node *a, *b;
    pgsched_run_list *h;
    c.claim_ahead_wait = 200 * MS;
    a = node_with_a_queued_row(fx, &c, slow, p);
    b = start_node_with(fx, &cb, "t", h_probe, p2);
    WAIT_STATUS("t", "k1", PGSCHED_COMPLETED, 5000);
    assert_int_equal(probe_inflight(slow), 1); /* the long run is still going */
    assert_int_equal(probe_nrecs(p), 0);       /* never started on the busy node */
    assert_int_equal(probe_nrecs(p2), 1);
    assert_int_equal(probe_rec(p2, 0).attempt, 1); /* the give-back counted no attempt */
    h = history_of(fx, "t", "k1", 10);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_string_equal(h->items[0].node, pgsched_node_id(b));
    probe_open_gate(slow);
    WAIT_STATUS("slow", "s0", PGSCHED_COMPLETED, 5000);
    OK(pgsched_shutdown(a, E));
}

#endif /* ENGINE_SUITE_RUNS_H */
