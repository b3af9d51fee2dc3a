/* engine_suite_cluster.h - leases, stalls, shutdown, wake-ups and notifications, status
   callbacks, several nodes on one store, maintenance, clocks (SPEC §4-§7, §12). */
#ifndef ENGINE_SUITE_CLUSTER_H
#define ENGINE_SUITE_CLUSTER_H

/* Claims (through the test's store handle) for a node that does not exist: a node that will
   "die" holding the row. Returns the claimed rows. */
static pgsched_job_list *fake_claim(efx *fx, const char *node_id, const char *name, int max)
{
    pgsched_claim_request q;
    pgsched_claim_outcome info;
    const char *names[1];
    pgsched_job_list *l = fx_jlist(fx);
    names[0] = name;
    memset(&q, 0, sizeof q);
    q.node_id = node_id;
    q.names = names;
    q.name_count = 1;
    q.max = max;
    OK(pgsched_store_claim(fx->store, &q, l, &info, E));
    return l;
}

/* Takes every stalled-looking row (stall timeout 1 us: any lease not renewed this very
   microsecond) for `node_id`, retrying until one row came back. */
static const pgsched_job *take_back_one(efx *fx, const char *node_id)
{
    pgsched_time deadline = mono_us() + 3 * SEC;
    for (;;) {
        pgsched_job_list *l = fx_jlist(fx);
        OK(pgsched_store_take_back(fx->store, node_id, 1, 10, l, E));
        if (l->count == 1) return &l->items[0];
        if (l->count > 1) fail_msg("take_back returned %lu rows", (unsigned long)l->count);
        if (mono_us() > deadline) fail_msg("take_back never got the row");
        sleep_us(200);
    }
}

/* Finishes, as `j`'s owner, the run `j` holds. */
static void finish_as_owner(efx *fx, const pgsched_job *j)
{
    pgsched_outcome o;
    pgsched_finish_result res;
    memset(&o, 0, sizeof o);
    o.name = j->name;
    o.key = j->key;
    o.token = j->lease;
    o.outcome = PGSCHED_OUTCOME_SUCCESS;
    o.status = PGSCHED_COMPLETED;
    o.attempt_rule = PGSCHED_ATTEMPT_RESET;
    o.node_id = j->owner;
    memset(&res, 0, sizeof res);
    OK(pgsched_store_finish(fx->store, &o, 1, &res, E));
    assert_int_equal(res.code, PGSCHED_OK);
}

/* ---- stalls and leases ------------------------------------------------------------------ */

/* §4 stall + §12 (a stall take-back consumed no retry): a row whose node died is taken back
   by a live node after stall_timeout, counts as a failed attempt ("stalled"), and is retried. */
ENGINE_TEST(stall_take_back_counts_an_attempt)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_job_list *got;
    pgsched_run_list *h;
    const pgsched_job *j;
    c.stall_timeout = 400 * MS;
    c.stall_check_period = 50 * MS;
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_init(a, E));
    s.max_retries = 1;
    OK(pgsched_schedule_job(a, &s, E));
    got = fake_claim(fx, "dead-node", "t", 1);
    assert_int_equal(got->count, 1);
    assert_int_equal(got->items[0].attempt, 1);
    OK(pgsched_start(a, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(probe_rec(p, 0).attempt, 2);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(h->items[0].attempt, 2);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_STALLED);
    assert_int_equal(h->items[1].attempt, 1);
    assert_non_null(h->items[1].error);
    assert_non_null(strstr(h->items[1].error, "stalled"));
    j = job_get(fx, "t", "k");
    assert_int_equal(j->failures, 1);
    assert_int_equal(j->runs, 2);
    WAIT_UNTIL(counters_of(a).stalled_taken_back == 1, 2000);
}

/* A run `work` long on a node with these lease settings, beside a second node that checks
   for stalls too, succeeds once: never fenced by its own node nor taken back by either. */
static void check_long_run_survives(efx *fx, pgsched_duration stall, pgsched_duration hb,
                                    pgsched_duration work)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a, *b;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_run_list *h;
    const pgsched_job *j;
    pgsched_counters k;
    c.stall_timeout = stall;
    c.heartbeat_interval = hb;
    c.stall_check_period = stall / 6;
    p->work = work;
    a = start_node_with(fx, &c, "t", h_probe, p);
    b = fx_node(fx, &c);
    fx_register(fx, b, "u", h_probe, fx_probe(fx));
    OK(pgsched_start(b, E));
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 10000);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(probe_rec(p, 0).saw_cancel, 0);
    assert_int_equal(probe_rec(p, 0).rc, PGSCHED_RUN_SUCCESS);
    assert_true(probe_rec(p, 0).end_mono - probe_rec(p, 0).start_mono >= work);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->runs, 1);
    assert_int_equal(j->failures, 0);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    WAIT_UNTIL(counters_of(a).succeeded == 1, 2000);
    k = counters_of(a);
    assert_int_equal(k.lease_lost, 0);
    assert_int_equal(k.failed, 0);
    assert_int_equal(k.stalled_taken_back + counters_of(b).stalled_taken_back, 0);
}

/* §2/§6: heartbeats keep a run's lease alive: a run three times longer than stall_timeout on
   a live node is never taken back (by itself or another node). */
ENGINE_TEST(heartbeats_keep_long_run_alive)
{
    check_long_run_survives(fx, 300 * MS, 50 * MS, 900 * MS);
}

/* The largest heartbeat interval allowed (half the stall timeout) keeps a run longer than
   the stall timeout alive: the lease is renewed well before self-fencing (at 3/4 of the stall
   timeout) would stop the run, and before another node could take the row back. */
ENGINE_TEST(heartbeat_at_half_the_stall_timeout_keeps_long_run_alive)
{
    check_long_run_survives(fx, 1200 * MS, 600 * MS, 2500 * MS);
}

/* An allocator whose fresh blocks are full of garbage (as ASan's malloc makes them, or any
   malloc reusing freed memory): nothing the engine reads may depend on fresh memory being
   zero. */
static void *dirty_malloc(size_t size, void *user)
{
    void *p = malloc(size);
    (void)user;
    if (p) memset(p, 0xA5, size);
    return p;
}
static void *dirty_realloc(void *ptr, size_t size, void *user)
{
    (void)user;
    return realloc(ptr, size);
}
static void dirty_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

/* Heartbeats renew leases whatever the node's allocator returns: a run three times longer
   than the stall timeout completes on a node whose fresh memory is never zero. (A lease
   state the store leaves unwritten - "busy" on a store without row locks - must not be read
   as garbage, which would keep every lease from being renewed until self-fencing stops the
   run.) */
ENGINE_TEST(heartbeats_renew_leases_with_an_allocator_that_returns_dirty_memory)
{
    static const pgsched_allocator dirty = {dirty_malloc, dirty_realloc, dirty_free, NULL};
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_run_list *h;
    c.allocator = &dirty;
    c.stall_timeout = 400 * MS;
    c.heartbeat_interval = 100 * MS;
    c.stall_check_period = 100 * MS;
    p->work = 1200 * MS;
    a = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_finished(p) >= 1, 5000);
    WAIT_UNTIL(job_status(fx, "t", "k") != PGSCHED_RUNNING, 5000);
    if (probe_rec(p, 0).saw_cancel || counters_of(a).lease_lost)
        fail_msg("the run was stopped (lease_lost %lld): its leases were never renewed",
                 (long long)counters_of(a).lease_lost);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_int_equal(probe_nrecs(p), 1);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(counters_of(a).lease_lost, 0);
}

/* A cancel requested for a run whose node died is not lost: when the stall timeout passes,
   the live node that takes the row back records the cancel instead of a stall (and a
   retry), so the one-time job ends cancelled without ever running again. */
ENGINE_TEST(cancel_of_run_whose_node_died_applies_at_take_back)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_job_list *got;
    pgsched_cancel_effect eff = PGSCHED_CANCEL_NONE;
    pgsched_run_list *h;
    const pgsched_job *j;
    int64_t polls;
    c.stall_timeout = 400 * MS;
    c.stall_check_period = 50 * MS;
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_init(a, E));
    OK(pgsched_schedule_job(a, &s, E));
    got = fake_claim(fx, "dead-node", "t", 1);
    assert_int_equal(got->count, 1);
    OK(pgsched_cancel(a, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    assert_int_equal(job_get(fx, "t", "k")->cancel_requested, 1);
    OK(pgsched_start(a, E));
    WAIT_STATUS("t", "k", PGSCHED_CANCELLED, 5000);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_CANCELLED);
    assert_int_equal(h->items[0].attempt, 1);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->cancel_requested, 0);
    assert_int_equal(j->failures, 0);
    WAIT_UNTIL(counters_of(a).cancelled == 1, 2000);
    assert_int_equal(counters_of(a).stalled_taken_back, 0);
    /* never run, and not later either */
    polls = counters_of(a).polls;
    WAIT_UNTIL(counters_of(a).polls >= polls + 3, 5000);
    assert_int_equal(probe_nrecs(p), 0);
    assert_int_equal(counters_of(a).claimed, 0);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_CANCELLED);
}

/* A job that keeps killing its node cannot loop forever: each stall uses up a retry, then a
   one-time job fails. (The live node has no handler for the type: it only takes back.) */
ENGINE_TEST(stall_exhausts_retries_of_crashing_job)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_job_list *got;
    pgsched_run_list *h;
    const pgsched_job *j;
    pgsched_time deadline;
    c.stall_timeout = 300 * MS;
    c.stall_check_period = 50 * MS;
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", NULL, NULL);
    OK(pgsched_start(a, E));
    s.max_retries = 1;
    OK(pgsched_schedule_job(a, &s, E));
    got = fake_claim(fx, "dead-1", "t", 1);
    assert_int_equal(got->count, 1);
    WAIT_STATUS("t", "k", PGSCHED_PENDING, 5000);
    assert_int_equal(job_get(fx, "t", "k")->attempt, 1);
    /* due again after the backoff: the next crash */
    deadline = mono_us() + 3 * SEC;
    do {
        got = fake_claim(fx, "dead-2", "t", 1);
        if (!got->count) sleep_us(5 * MS);
    } while (!got->count && mono_us() < deadline);
    assert_int_equal(got->count, 1);
    assert_int_equal(got->items[0].attempt, 2);
    WAIT_STATUS("t", "k", PGSCHED_FAILED, 5000);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->failures, 2);
    assert_non_null(j->last_error);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_STALLED);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_STALLED);
    WAIT_UNTIL(counters_of(a).stalled_taken_back == 2, 2000);
}

/* §5: a node whose row was taken back learns it at its next heartbeat, cancels its run and
   writes nothing. */
ENGINE_TEST(lost_lease_cancels_local_run_and_writes_nothing)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    const pgsched_job *mine, *theirs, *now;
    pgsched_time t0;
    int64_t polls;
    pgsched_counters k;
    run_rec r;
    c.stall_timeout = 10 * SEC;
    c.heartbeat_interval = 50 * MS;
    c.cancel_check_period = 60 * SEC;
    a = start_node_with(fx, &c, "t", h_wait_cancel, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    mine = job_get(fx, "t", "k");
    assert_string_equal(mine->owner, pgsched_node_id(a));
    theirs = take_back_one(fx, "other-node");
    t0 = mono_us();
    assert_string_equal(theirs->owner, "other-node");
    assert_true(theirs->lease != mine->lease);
    WAIT_UNTIL(counters_of(a).lease_lost == 1 && counters_of(a).running == 0, 3000);
    r = probe_rec(p, 0);
    assert_int_equal(r.saw_cancel, 1);
    assert_between(r.cancel_seen_mono - t0, 0, 50 * MS + 200 * MS);
    polls = counters_of(a).polls;
    WAIT_UNTIL(counters_of(a).polls >= polls + 3, 5000); /* outcomes are flushed first */
    now = job_get(fx, "t", "k");
    assert_int_equal(now->status, PGSCHED_RUNNING);
    assert_string_equal(now->owner, "other-node");
    assert_int_equal(now->lease, theirs->lease);
    assert_int_equal(now->version, theirs->version);
    assert_int_equal(now->runs, 0);
    assert_int_equal(history_of(fx, "t", "k", 10)->count, 0);
    k = counters_of(a);
    assert_int_equal(k.lease_lost, 1);
    assert_int_equal(k.failed, 0);
    assert_int_equal(k.cancelled, 0);
    assert_int_equal(k.succeeded, 0);
    finish_as_owner(fx, theirs); /* the new lease holder is intact */
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_COMPLETED);
}

/* §12: the original's outcome writes were not conditional on the owner, so a stalled node
   overwrote the newer run. Here a stale outcome (the handler returns success after its row
   was taken back) is not written. */
ENGINE_TEST(stale_node_cannot_overwrite_newer_run)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    const pgsched_job *theirs, *now;
    int64_t polls;
    c.stall_timeout = 10 * SEC;
    c.heartbeat_interval = 50 * MS;
    c.cancel_check_period = 60 * SEC;
    p->gated = 1;
    p->gate_ignores_cancel = 1;
    p->rc = p->rc_on_cancel = PGSCHED_RUN_SUCCESS;
    a = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    theirs = take_back_one(fx, "other-node");
    probe_open_gate(p);
    WAIT_UNTIL(counters_of(a).lease_lost == 1 && counters_of(a).running == 0, 3000);
    polls = counters_of(a).polls;
    WAIT_UNTIL(counters_of(a).polls >= polls + 3, 5000);
    now = job_get(fx, "t", "k");
    assert_int_equal(now->status, PGSCHED_RUNNING);
    assert_string_equal(now->owner, "other-node");
    assert_int_equal(now->lease, theirs->lease);
    assert_int_equal(now->version, theirs->version);
    assert_int_equal(history_of(fx, "t", "k", 10)->count, 0);
    assert_int_equal(counters_of(a).succeeded, 0);
    assert_int_equal(counters_of(a).lease_lost, 1);
    finish_as_owner(fx, theirs);
}

/* A node holding a stale run of a row (its lease was taken back, which the node has not yet
   heard: its heartbeats are in flight) claims the row again when it comes due. The next
   heartbeat stops the stale run, whichever slot either run is in, and leaves the fresh one
   alone; the stale run writes nothing. The rows are arranged so that the fresh run lands in
   the first slot and the stale one in the second. */
ENGINE_TEST(stale_run_is_stopped_when_its_node_claims_the_row_again)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *pf = fx_probe(fx), *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s;
    const pgsched_job *stale, *theirs, *fresh;
    pgsched_outcome o;
    pgsched_finish_result res;
    pgsched_run_list *h;
    pgsched_time t0;
    run_rec r0;
    int hb;
    c.max_concurrent = 2;
    c.stall_timeout = 10 * SEC;
    c.heartbeat_interval = 50 * MS;
    c.cancel_check_period = 60 * SEC;
    p->gated = 1; /* runs of "t" wait for the gate or for their cancel */
    n = fx_node(fx, &c);
    fx_register(fx, n, "f", h_probe, pf);
    fx_register(fx, n, "t", h_probe, p);
    OK(pgsched_init(n, E));
    /* one claim takes both, in due order: "f" into the first slot, "t" into the second */
    s = spec_once("f", "k0", fx_now(fx) - 2 * SEC);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "k1", fx_now(fx) - 1 * SEC);
    OK(pgsched_schedule_job(n, &s, E));
    OK(pgsched_start(n, E));
    WAIT_UNTIL(probe_finished(pf) == 1 && probe_inflight(p) == 1, 5000);
    WAIT_UNTIL(counters_of(n).running == 1, 3000); /* the first slot is free again */
    stale = job_get(fx, "t", "k1");
    assert_string_equal(stale->owner, pgsched_node_id(n));

    /* from the next heartbeat on, the node hears "held" for every lease */
    FAULT_SET(w->heartbeat_mode, FAULT_HB_FAKE);
    hb = FAULT_GET(w->heartbeats);
    WAIT_UNTIL(FAULT_GET(w->heartbeats) > hb, 3000);
    theirs = take_back_one(fx, "intruder");
    memset(&o, 0, sizeof o);
    o.name = "t";
    o.key = "k1";
    o.token = theirs->lease;
    o.outcome = PGSCHED_OUTCOME_STALLED;
    o.status = PGSCHED_PENDING;
    o.next_run = fx_now(fx); /* due again at once */
    o.attempt_rule = PGSCHED_ATTEMPT_KEEP;
    o.node_id = "intruder";
    OK(pgsched_store_finish(fx->store, &o, 1, &res, E));
    assert_int_equal(res.code, PGSCHED_OK);
    WAIT_UNTIL(probe_nrecs(p) == 2, 3000); /* claimed again, run in the first slot */
    fresh = job_get(fx, "t", "k1");
    assert_string_equal(fresh->owner, pgsched_node_id(n));
    assert_true(fresh->lease != stale->lease);
    assert_int_equal(probe_rec(p, 0).done, 0); /* the stale run still goes */

    t0 = mono_us();
    FAULT_SET(w->heartbeat_mode, FAULT_HB_PASS);
    WAIT_UNTIL(probe_rec(p, 0).done, 2000);
    r0 = probe_rec(p, 0);
    assert_int_equal(r0.saw_cancel, 1);
    assert_between(r0.cancel_seen_mono - t0, 0, 50 * MS + 250 * MS);
    assert_int_equal(probe_rec(p, 1).done, 0); /* the fresh run is not stopped */
    assert_int_equal(counters_of(n).lease_lost, 1);
    probe_open_gate(p);
    WAIT_STATUS("t", "k1", PGSCHED_COMPLETED, 3000);
    assert_int_equal(probe_rec(p, 1).saw_cancel, 0);
    h = history_of(fx, "t", "k1", 10);
    assert_int_equal(h->count, 2); /* the intruder's take-back and the fresh run, nothing else */
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_string_equal(h->items[0].node, pgsched_node_id(n));
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_STALLED);
}

/* A node that cannot renew its leases (the database is unreachable from it alone) stops its
   runs once 3/4 of stall_timeout passed since the last renewal, before any other node may
   take the rows back, and writes nothing for those that then fail: the row stays running under its lease
   until another node takes it back. */
ENGINE_TEST(node_that_cannot_renew_its_leases_stops_its_runs_and_writes_nothing)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    const pgsched_job *mine, *now, *theirs;
    pgsched_time t0;
    pgsched_duration el;
    int64_t polls;
    run_rec r;
    c.stall_timeout = 1200 * MS; /* stops its runs 900 ms after the last renewal */
    c.heartbeat_interval = 50 * MS;
    c.cancel_check_period = 60 * SEC;
    c.stall_check_period = 60 * SEC; /* the node does not take its own row back */
    n = start_node_with(fx, &c, "t", h_wait_cancel, p);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 3000);
    mine = job_get(fx, "t", "k");
    t0 = mono_us();
    FAULT_SET(w->heartbeat_mode, FAULT_HB_FAIL);
    WAIT_UNTIL(probe_finished(p) == 1, 3000);
    r = probe_rec(p, 0);
    assert_int_equal(r.saw_cancel, 1);
    el = r.cancel_seen_mono - t0;
    if (g_verbose) fprintf(stderr, "    self-fenced %lld ms after renewals failed\n",
                           (long long)(el / 1000));
    /* the last renewal was at most one heartbeat interval before t0 */
    assert_between(el, 900 * MS - 50 * MS - 100 * MS, 1200 * MS);
    WAIT_UNTIL(counters_of(n).running == 0, 2000);
    polls = counters_of(n).polls;
    WAIT_UNTIL(counters_of(n).polls >= polls + 2, 3000); /* outcomes are flushed first */
    assert_int_equal(FAULT_GET(w->finish_calls), 0);
    now = job_get(fx, "t", "k");
    assert_int_equal(now->status, PGSCHED_RUNNING);
    assert_string_equal(now->owner, pgsched_node_id(n));
    assert_int_equal(now->lease, mine->lease);
    assert_int_equal(now->version, mine->version);
    assert_int_equal(now->runs, 0);
    assert_int_equal(history_of(fx, "t", "k", 10)->count, 0);
    assert_int_equal(counters_of(n).lease_lost, 1);
    theirs = take_back_one(fx, "other-node");
    finish_as_owner(fx, theirs);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_COMPLETED);
    FAULT_SET(w->heartbeat_mode, FAULT_HB_PASS);
}

/* The restart scenario's duplicate: a run that succeeds after its node gave the lease up for
   lost (the database away for more than 3/4 of stall_timeout, so the node fenced itself) is
   recorded as the success it was once the database is back, no other node having taken the
   row meanwhile. It was written nothing, so a lost claim reply meanwhile (the node then gives
   back the rows it owns but does not hold) gave it back as "released" and it ran again. */
ENGINE_TEST(success_after_self_fencing_is_recorded_once_the_database_is_back)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx), *q = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s;
    pgsched_run_list *h;
    int finishes;
    c.stall_timeout = 1200 * MS; /* fences its runs 900 ms after the last renewal */
    c.heartbeat_interval = 50 * MS;
    c.cancel_check_period = 60 * SEC;
    c.stall_check_period = 60 * SEC; /* the node does not take its own row back */
    p->rc_on_cancel = PGSCHED_RUN_SUCCESS; /* its work was done when the cancel came */
    n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_wait_cancel, p);
    fx_register(fx, n, "u", h_probe, q);
    OK(pgsched_start(n, E));
    s = spec_once("t", "k", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 3000);
    /* the database goes away from this node */
    FAULT_SET(w->heartbeat_mode, FAULT_HB_FAIL);
    FAULT_SET(w->finish_down, 1);
    WAIT_UNTIL(probe_finished(p) == 1, 3000);
    assert_int_equal(probe_rec(p, 0).cancel_reason, PGSCHED_CANCEL_REASON_LEASE_LOST);
    /* meanwhile a claim's reply is lost: the node looks for rows it owns but does not hold */
    FAULT_SET(w->lose_claims, 1);
    s = spec_once("u", "k2", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(FAULT_GET(w->lost_claim_rows) == 1 && FAULT_GET(w->list_calls) >= 1, 3000);
    /* the dispatcher writes outcomes again only once that look-up is over */
    finishes = FAULT_GET(w->finish_calls);
    WAIT_UNTIL(FAULT_GET(w->finish_calls) > finishes, 3000);
    /* the database is back */
    FAULT_SET(w->finish_down, 0);
    FAULT_SET(w->heartbeat_mode, FAULT_HB_PASS);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 3000);
    WAIT_STATUS("u", "k2", PGSCHED_COMPLETED, 3000); /* the lost claim's row, given back */
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_string_equal(h->items[0].node, pgsched_node_id(n));
    assert_int_equal(job_get(fx, "t", "k")->runs, 1);
    assert_int_equal(probe_nrecs(p), 1); /* it did not run again */
    h = history_of(fx, "u", "k2", 10);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_RELEASED);
    assert_int_equal(counters_of(n).lease_lost, 1);
}

/* The same success, when another node took the row back meanwhile, is refused by the lease
   token: nothing of it is recorded (no success, no "released"), the new holder's run is
   intact, and the lost lease is counted once. */
ENGINE_TEST(success_after_self_fencing_is_lost_when_another_node_took_the_row)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    const pgsched_job *theirs, *now;
    int64_t polls;
    c.stall_timeout = 1200 * MS;
    c.heartbeat_interval = 50 * MS;
    c.cancel_check_period = 60 * SEC;
    c.stall_check_period = 60 * SEC;
    p->rc_on_cancel = PGSCHED_RUN_SUCCESS;
    n = start_node_with(fx, &c, "t", h_wait_cancel, p);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 3000);
    FAULT_SET(w->heartbeat_mode, FAULT_HB_FAIL);
    FAULT_SET(w->finish_down, 1);
    WAIT_UNTIL(probe_finished(p) == 1, 3000);
    theirs = take_back_one(fx, "other-node");
    FAULT_SET(w->finish_down, 0);
    FAULT_SET(w->heartbeat_mode, FAULT_HB_PASS);
    polls = counters_of(n).polls;
    WAIT_UNTIL(counters_of(n).polls >= polls + 2, 3000); /* outcomes are flushed first */
    now = job_get(fx, "t", "k");
    assert_int_equal(now->status, PGSCHED_RUNNING);
    assert_string_equal(now->owner, "other-node");
    assert_int_equal(now->lease, theirs->lease);
    assert_int_equal(history_of(fx, "t", "k", 10)->count, 0);
    assert_int_equal(counters_of(n).lease_lost, 1);
    assert_int_equal(counters_of(n).succeeded, 0);
    finish_as_owner(fx, theirs);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_COMPLETED);
}

/* ---- shutdown ------------------------------------------------------------------------------ */

/* §12 (shutdown could not record outcomes): outcomes that arrive within shutdown_timeout are
   recorded; a handler that fails because of the shutdown is "released" (pending, attempt not
   counted), one that succeeds is a success. */
ENGINE_TEST(shutdown_records_outcomes_that_arrive_in_time)
{
    pgsched_config c = fx_config(fx);
    probe *ps = fx_probe(fx), *pf = fx_probe(fx);
    pgsched_node *a = fx_node(fx, &c);
    pgsched_job_spec s;
    pgsched_time t0;
    const pgsched_job *j;
    pgsched_run_list *h;
    pgsched_counters k;
    ps->rc_on_cancel = PGSCHED_RUN_SUCCESS;
    pf->rc_on_cancel = PGSCHED_RUN_FAILURE;
    fx_register(fx, a, "s", h_wait_cancel, ps);
    fx_register(fx, a, "f", h_wait_cancel, pf);
    OK(pgsched_start(a, E));
    s = spec_once("s", "k", 0);
    OK(pgsched_schedule_job(a, &s, E));
    s = spec_once("f", "k", 0);
    s.max_retries = 2;
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(ps) == 1 && probe_inflight(pf) == 1, 5000);
    t0 = mono_us();
    OK(pgsched_shutdown(a, E));
    assert_true(mono_us() - t0 < 2 * SEC);
    assert_int_equal(probe_rec(ps, 0).saw_cancel, 1);
    assert_int_equal(probe_rec(pf, 0).saw_cancel, 1);
    assert_int_equal(job_status(fx, "s", "k"), PGSCHED_COMPLETED);
    h = history_of(fx, "s", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    j = job_get(fx, "f", "k");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->attempt, 0);
    assert_null(j->owner);
    assert_true(j->next_run <= fx_now(fx));
    h = history_of(fx, "f", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_RELEASED);
    k = counters_of(a);
    assert_int_equal(k.succeeded, 1);
    assert_int_equal(k.failed, 0);
    assert_int_equal(k.running, 0);
    assert_none_running(fx);
}

/* Issue 10: a handler that ignores the cancel past the shutdown timeout keeps its lease,
   renewed, while it runs: pgsched_shutdown returns at its timeout saying which run is still
   going, and another node does not start the job (not even after twice the stall timeout);
   once the handler returns (failure, after the shutdown's cancel) the row is given back
   uncounted and the other node runs it at once. Destroy waits for nothing more. */
ENGINE_TEST(shutdown_keeps_lease_of_run_that_ignores_cancel_until_it_returns)
{
    pgsched_config c = fx_config(fx);
    probe *pa = fx_probe(fx), *pb = fx_probe(fx);
    pgsched_node *a, *b;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_time t0, el, hb0;
    const pgsched_job *j;
    pgsched_run_list *h;
    pgsched_result rc;
    c.stall_timeout = 1 * SEC;
    c.heartbeat_interval = 100 * MS;
    c.stall_check_period = 100 * MS;
    c.shutdown_timeout = 200 * MS;
    pa->gated = 1;
    pa->gate_ignores_cancel = 1; /* stuck: ignores the cancel */
    a = start_node_with(fx, &c, "t", h_probe, pa);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(pa) == 1, 5000);
    t0 = mono_us();
    rc = pgsched_shutdown(a, E);
    el = mono_us() - t0;
    assert_int_equal(rc, PGSCHED_ERR_TIMEOUT);
    assert_int_equal(fx->err.code, PGSCHED_ERR_TIMEOUT);
    assert_non_null(strstr(fx->err.message, "1 run (t/k) still going"));
    assert_between(el, 190 * MS, 2500 * MS);
    assert_int_equal(counters_of(a).running, 1);
    /* asked again: the same answer */
    assert_int_equal(pgsched_shutdown(a, E), PGSCHED_ERR_TIMEOUT);
    assert_int_equal(probe_inflight(pa), 1); /* still stuck */
    j = job_get(fx, "t", "k");
    assert_int_equal(j->status, PGSCHED_RUNNING);
    assert_string_equal(j->owner, pgsched_node_id(a));
    hb0 = j->heartbeat_at;
    /* another node with the same stall timeout leaves it alone for 2.5 stall timeouts */
    b = start_node_with(fx, &c, "t", h_probe, pb);
    t0 = mono_us();
    while (mono_us() - t0 < 2500 * MS) {
        j = job_get(fx, "t", "k");
        assert_int_equal(j->status, PGSCHED_RUNNING);
        assert_string_equal(j->owner, pgsched_node_id(a));
        assert_int_equal(probe_nrecs(pb), 0);
        sleep_us(50 * MS);
    }
    assert_true(job_get(fx, "t", "k")->heartbeat_at > hb0); /* renewed all along */
    assert_int_equal(history_of(fx, "t", "k", 10)->count, 0);
    /* it returns (failure, having been asked to stop for the shutdown): given back, not
       counted, and b runs it at once */
    probe_open_gate(pa);
    WAIT_UNTIL(probe_finished(pa) == 1, 3000);
    assert_int_equal(probe_rec(pa, 0).cancel_reason, PGSCHED_CANCEL_REASON_SHUTDOWN);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 3000);
    assert_int_equal(probe_rec(pb, 0).attempt, 1);
    assert_true(probe_rec(pb, 0).start_mono >= probe_rec(pa, 0).end_mono);
    OK(pgsched_shutdown(a, E)); /* nothing is going any more */
    WAIT_UNTIL(counters_of(a).running == 0, 3000);
    fx_destroy_node(fx, a);
    OK(pgsched_shutdown(b, E));
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_RELEASED);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_string_equal(h->items[0].node, pgsched_node_id(b));
    assert_int_equal(job_get(fx, "t", "k")->runs, 1);
    assert_int_equal(probe_nrecs(pb), 1);
}

/* Issue 10: a claim that committed but whose reply was lost leaves rows this node owns in
   the store but does not run. After the connection is back the node gives them back at once
   (attempt not counted) instead of leaving them for the stall timeout (30 s here), and the
   job then runs as its first attempt. */
ENGINE_TEST(claim_whose_reply_was_lost_gives_its_rows_back_at_once)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_run_list *h;
    pgsched_time t0;
    c.stall_timeout = 30 * SEC;
    c.heartbeat_interval = 1 * SEC;
    w->lose_claims = 1;
    a = start_node_with(fx, &c, "t", h_probe, p);
    t0 = mono_us();
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_true(mono_us() - t0 < 5 * SEC);
    assert_int_equal(FAULT_GET(w->lost_claim_rows), 1);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(probe_rec(p, 0).attempt, 1); /* the lost claim did not count */
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_RELEASED);
    assert_string_equal(h->items[1].node, pgsched_node_id(a));
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(counters_of(a).stalled_taken_back, 0);
    assert_int_equal(job_get(fx, "t", "k")->runs, 1);
}

/* The same against PostgreSQL with the connections really gone: the claim commits, then
   every connection of the store is terminated (pg_terminate_backend) and the claim reports
   the lost connection. The node reconnects and gives the row back at once, uncounted. */
ENGINE_TEST(claim_lost_with_terminated_connections_gives_its_rows_back_at_once)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_run_list *h;
    c.stall_timeout = 30 * SEC;
    c.heartbeat_interval = 1 * SEC;
    w->lose_claims = 1;
    w->lose_claims_kill = 1;
    a = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_int_equal(FAULT_GET(w->lost_claim_rows), 1);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(probe_rec(p, 0).attempt, 1);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_RELEASED);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(counters_of(a).stalled_taken_back, 0);
}

/* Rows the node runs, or whose outcome waits to be written, are not given back with the
   strays: a lost claim reply while another run of the node is going leaves that run alone. */
ENGINE_TEST(giving_back_lost_claims_leaves_the_nodes_own_runs_alone)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k1", 0);
    c.stall_timeout = 30 * SEC;
    c.heartbeat_interval = 1 * SEC;
    p->gated = 1;
    a = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    FAULT_SET(w->lose_claims, 1);
    s = spec_once("t", "k2", 0);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 2, 5000);
    assert_int_equal(FAULT_GET(w->lost_claim_rows), 1);
    /* k1 still runs under its first lease, nothing recorded for it */
    assert_int_equal(job_status(fx, "t", "k1"), PGSCHED_RUNNING);
    assert_int_equal(history_of(fx, "t", "k1", 10)->count, 0);
    assert_int_equal(history_of(fx, "t", "k2", 10)->items[0].outcome, PGSCHED_OUTCOME_RELEASED);
    probe_open_gate(p);
    WAIT_STATUS("t", "k1", PGSCHED_COMPLETED, 5000);
    WAIT_STATUS("t", "k2", PGSCHED_COMPLETED, 5000);
    assert_int_equal(history_of(fx, "t", "k1", 10)->count, 1);
    WAIT_UNTIL(counters_of(a).succeeded == 2, 3000); /* counted once the write returned */
}

/* Rows a node holds but has not started (whatever local queue holds them) are its own too:
   after a lost claim reply while the only worker is busy and more rows are due, every job
   still runs exactly once, none is given back and run locally as well. */
ENGINE_TEST(giving_back_lost_claims_runs_every_waiting_job_once)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k1", 0);
    const char *keys[] = {"k1", "k2", "k3"};
    pgsched_time t0;
    int i, k, runs;
    c.max_concurrent = 1;
    c.stall_timeout = 30 * SEC;
    c.heartbeat_interval = 1 * SEC;
    p->gated = 1;
    a = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    s = spec_once("t", "k2", 0);
    OK(pgsched_schedule_job(a, &s, E));
    /* a few poll intervals: time for a node that claims ahead of its workers to hold k2 */
    t0 = mono_us();
    WAIT_UNTIL(mono_us() - t0 >= 400 * MS, 2000);
    FAULT_SET(w->lose_claims, 1);
    s = spec_once("t", "k3", 0);
    OK(pgsched_schedule_job(a, &s, E));
    t0 = mono_us();
    WAIT_UNTIL(mono_us() - t0 >= 400 * MS, 2000);
    probe_open_gate(p);
    for (i = 0; i < 3; i++) WAIT_STATUS("t", keys[i], PGSCHED_COMPLETED, 10000);
    assert_int_equal(FAULT_GET(w->lost_claim_rows) >= 1, 1);
    for (i = 0; i < 3; i++) {
        pgsched_run_list *h = history_of(fx, "t", keys[i], 10);
        size_t j, ok = 0;
        for (j = 0; j < h->count; j++) ok += h->items[j].outcome == PGSCHED_OUTCOME_SUCCESS;
        assert_int_equal(ok, 1);
        runs = 0;
        for (k = 0; k < probe_nrecs(p); k++) runs += strcmp(probe_rec(p, k).key, keys[i]) == 0;
        if (runs != 1) fail_msg("%s ran %d times", keys[i], runs);
    }
    assert_int_equal(probe_nrecs(p), 3);
}

/* A handler that returns success after the shutdown timeout has its success recorded (its
   lease was kept), and destroy, called while it still runs, waits for it. */
static int g_destroy_done; /* atomic */
static void *destroy_thread(void *arg)
{
    pgsched_destroy((pgsched_node *)arg);
    __atomic_store_n(&g_destroy_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

ENGINE_TEST(late_success_after_shutdown_timeout_is_recorded_and_destroy_waits)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_run_list *h;
    pthread_t th;
    int i;
    c.shutdown_timeout = 100 * MS;
    p->gated = 1;
    p->gate_ignores_cancel = 1;
    p->rc_on_cancel = PGSCHED_RUN_SUCCESS;
    a = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    assert_int_equal(pgsched_shutdown(a, E), PGSCHED_ERR_TIMEOUT);
    /* destroy from another thread: it must not return while the handler runs */
    for (i = 0; i < fx->nnodes; i++)
        if (fx->nodes[i] == a) fx->nodes[i] = NULL; /* the thread frees it */
    __atomic_store_n(&g_destroy_done, 0, __ATOMIC_RELEASE);
    assert_int_equal(pthread_create(&th, NULL, destroy_thread, a), 0);
    sleep_us(300 * MS);
    assert_int_equal(__atomic_load_n(&g_destroy_done, __ATOMIC_ACQUIRE), 0);
    assert_int_equal(probe_inflight(p), 1);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_RUNNING);
    probe_open_gate(p);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(probe_finished(p), 1);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_COMPLETED);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
}

/* pgsched_destroy from a thread the application created after pgsched_shutdown: such a
   thread often gets the id of one of the node's joined threads (the dispatcher's, say), and
   must not be taken for one of them (the node was left alive, and leaked). */
#define RECYCLE_THREADS 16
typedef struct recycled_ctx {
    pgsched_node *n;
    pthread_t ids[64];
    int nids;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived, chosen, destroyed; /* chosen: the index of the thread that destroys, or -2 */
    int match[RECYCLE_THREADS];      /* -1, or the index in ids its own id equals */
} recycled_ctx;

typedef struct recycled_arg {
    recycled_ctx *c;
    int index;
} recycled_arg;

static void *destroy_if_chosen(void *arg)
{
    recycled_arg *a = (recycled_arg *)arg;
    recycled_ctx *c = a->c;
    int i, m = -1;
    for (i = 0; i < c->nids; i++)
        if (pthread_equal(pthread_self(), c->ids[i])) m = i;
    pthread_mutex_lock(&c->mu);
    c->match[a->index] = m;
    c->arrived++;
    pthread_cond_broadcast(&c->cv);
    while (c->chosen == -1) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    if (c->chosen == a->index) {
        pgsched_destroy(c->n);
        c->destroyed = 1; /* read after the join */
    }
    return NULL;
}

ENGINE_TEST(destroy_from_a_thread_created_after_shutdown_frees_the_node)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a;
    recycled_ctx ctx;
    recycled_arg args[RECYCLE_THREADS];
    pthread_t th[RECYCLE_THREADS];
    int i, errors;
    a = start_node_with(fx, &c, "t", h_probe, fx_probe(fx));
    memset(&ctx, 0, sizeof ctx);
    ctx.n = a;
    ctx.chosen = -1;
    pthread_mutex_init(&ctx.mu, NULL);
    pthread_cond_init(&ctx.cv, NULL);
    /* the ids its threads had, the dispatcher's first */
    pthread_mutex_lock(&a->mu);
    if (a->dispatcher_started) ctx.ids[ctx.nids++] = a->dispatcher;
    if (a->listener_started) ctx.ids[ctx.nids++] = a->listener;
    if (a->callbacker_started) ctx.ids[ctx.nids++] = a->callbacker;
    pthread_mutex_unlock(&a->mu);
    assert_true(ctx.nids > 0);
    OK(pgsched_shutdown(a, E));
    for (i = 0; i < fx->nnodes; i++)
        if (fx->nodes[i] == a) fx->nodes[i] = NULL; /* a new thread frees it */
    errors = fx_log_count(fx, PGSCHED_LOG_ERROR);
    /* several threads alive at once take several of the ids just freed */
    for (i = 0; i < RECYCLE_THREADS; i++) {
        args[i].c = &ctx;
        args[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, destroy_if_chosen, &args[i]), 0);
    }
    pthread_mutex_lock(&ctx.mu);
    while (ctx.arrived < RECYCLE_THREADS) pthread_cond_wait(&ctx.cv, &ctx.mu);
    ctx.chosen = -2;
    for (i = 0; i < RECYCLE_THREADS; i++) /* the lowest index in ids wins: the dispatcher */
        if (ctx.match[i] >= 0 && (ctx.chosen == -2 || ctx.match[i] < ctx.match[ctx.chosen]))
            ctx.chosen = i;
    pthread_cond_broadcast(&ctx.cv);
    pthread_mutex_unlock(&ctx.mu);
    for (i = 0; i < RECYCLE_THREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_mutex_destroy(&ctx.mu);
    pthread_cond_destroy(&ctx.cv);
    if (ctx.chosen < 0) {
        pgsched_destroy(a); /* this platform does not hand ids out again so soon */
        fail_msg("no new thread got the id of one of the node's threads");
    }
    assert_int_equal(ctx.destroyed, 1);
    /* destroy did its work: it did not log "called from a handler ... ignored" */
    assert_int_equal(fx_log_count(fx, PGSCHED_LOG_ERROR), errors);
}

/* Drain mode: runs finish undisturbed within drain_timeout, and shutdown returns when they
   are done, not at the timeout. */
ENGINE_TEST(drain_lets_runs_finish_before_asking_them_to_stop)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_time t0, el;
    c.drain_timeout = 3 * SEC;
    c.shutdown_timeout = 3 * SEC;
    p->work = 300 * MS; /* pgsched_run_sleep: would end early if cancelled */
    a = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    t0 = mono_us();
    OK(pgsched_shutdown(a, E));
    el = mono_us() - t0;
    assert_true(el < 2 * SEC);
    assert_int_equal(probe_finished(p), 1);
    assert_int_equal(probe_rec(p, 0).saw_cancel, 0);
    assert_int_equal(probe_rec(p, 0).cancel_reason, PGSCHED_CANCEL_REASON_NONE);
    assert_true(probe_rec(p, 0).end_mono - probe_rec(p, 0).start_mono >= 290 * MS);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_COMPLETED);
}

/* Drain mode: a run still going at the end of drain_timeout is asked to stop then (reason:
   shutdown), not before; one that stops gives its row back uncounted. */
ENGINE_TEST(drain_asks_runs_to_stop_when_it_ends)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_time t0;
    const pgsched_job *j;
    run_rec r;
    c.drain_timeout = 300 * MS;
    c.shutdown_timeout = 3 * SEC;
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", h_wait_cancel, p);
    OK(pgsched_start(a, E));
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    t0 = mono_us();
    OK(pgsched_shutdown(a, E));
    assert_true(mono_us() - t0 < 2 * SEC);
    r = probe_rec(p, 0);
    assert_int_equal(r.saw_cancel, 1);
    assert_int_equal(r.cancel_reason, PGSCHED_CANCEL_REASON_SHUTDOWN);
    assert_true(r.cancel_seen_mono - t0 >= 290 * MS);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->attempt, 0);
    assert_null(j->owner);
    assert_int_equal(history_of(fx, "t", "k", 10)->items[0].outcome, PGSCHED_OUTCOME_RELEASED);
}

/* pgsched_run_cancel_reason says why a run was asked to stop: a cancel request, its timeout,
   a lost lease (another node took the row), or nothing. (Shutdown: see the drain tests.) */
ENGINE_TEST(cancel_reason_says_why_a_run_is_asked_to_stop)
{
    pgsched_config c = fx_config(fx);
    probe *preq = fx_probe(fx), *pto = fx_probe(fx), *plost = fx_probe(fx), *pok = fx_probe(fx);
    pgsched_node *a = fx_node(fx, &c);
    pgsched_job_type t;
    pgsched_job_spec s;
    const pgsched_job *theirs;
    fx_register(fx, a, "req", h_wait_cancel, preq);
    t = type_of("to", h_wait_cancel, pto);
    t.timeout = 100 * MS;
    OK(pgsched_register(a, &t, E));
    fx_register(fx, a, "lost", h_wait_cancel, plost);
    fx_register(fx, a, "ok", h_probe, pok);
    OK(pgsched_start(a, E));
    s = spec_once("req", "k", 0);
    OK(pgsched_schedule_job(a, &s, E));
    s = spec_once("to", "k", 0);
    s.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_schedule_job(a, &s, E));
    s = spec_once("ok", "k", 0);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(preq) == 1, 5000);
    OK(pgsched_cancel(a, "req", "k", NULL, E));
    WAIT_UNTIL(probe_finished(preq) == 1 && probe_finished(pto) == 1 &&
                   probe_finished(pok) == 1, 5000);
    assert_int_equal(probe_rec(preq, 0).cancel_reason, PGSCHED_CANCEL_REASON_REQUEST);
    assert_int_equal(probe_rec(pto, 0).cancel_reason, PGSCHED_CANCEL_REASON_TIMEOUT);
    assert_int_equal(probe_rec(pok, 0).cancel_reason, PGSCHED_CANCEL_REASON_NONE);
    WAIT_UNTIL(counters_of(a).running == 0, 3000);
    /* the only running row now: taken by another node, the next heartbeat says lost */
    s = spec_once("lost", "k", 0);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(plost) == 1, 5000);
    theirs = take_back_one(fx, "other-node");
    WAIT_UNTIL(probe_finished(plost) == 1, 5000);
    assert_int_equal(probe_rec(plost, 0).cancel_reason, PGSCHED_CANCEL_REASON_LEASE_LOST);
    finish_as_owner(fx, theirs);
    assert_int_equal(pgsched_run_cancel_reason(NULL), PGSCHED_CANCEL_REASON_NONE);
}

static void hook_shutdown_self(pgsched_run *run, probe *p, run_rec *r)
{
    pgsched_error e;
    (void)p;
    if (!r) return;
    r->api_rc[0] = pgsched_shutdown(run->node, &e);
    snprintf(r->api_msg, sizeof r->api_msg, "%s", e.message);
}

static void rec_hook_shutdown(recorder *g, const pgsched_status_event *ev)
{
    pgsched_error e;
    pgsched_result rc;
    (void)ev;
    rc = pgsched_shutdown(g->node, &e);
    pthread_mutex_lock(&g->mu);
    if (g->hook_calls < 8) g->hook_rc[g->hook_calls] = rc;
    g->hook_calls++;
    snprintf(g->hook_msg, sizeof g->hook_msg, "%s", e.message);
    pthread_mutex_unlock(&g->mu);
}

/* Shutdown from inside a handler or a status callback of the same node is refused. */
ENGINE_TEST(shutdown_from_handler_or_callback_refused)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    recorder *g = fx_recorder(fx, &c);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    run_rec r;
    int i, calls;
    pgsched_result rcs[8];
    p->hook = hook_shutdown_self;
    g->hook = rec_hook_shutdown;
    a = fx_node(fx, &c);
    g->node = a;
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_start(a, E));
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    r = probe_rec(p, 0);
    assert_int_equal(r.api_rc[0], PGSCHED_ERR_STATE);
    WAIT_UNTIL(recorder_count(g, "t", "k") == 3, 3000);
    pthread_mutex_lock(&g->mu);
    calls = g->hook_calls;
    memcpy(rcs, g->hook_rc, sizeof rcs);
    pthread_mutex_unlock(&g->mu);
    assert_true(calls >= 3);
    for (i = 0; i < calls && i < 8; i++) assert_int_equal(rcs[i], PGSCHED_ERR_STATE);
    /* the node still works */
    s = spec_once("t", "k2", 0);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "k2", PGSCHED_COMPLETED, 5000);
}

/* A handler that notices the cancel, then takes 300 ms to wind down. */
static int h_linger(pgsched_run *run)
{
    probe *p = (probe *)run->user;
    pgsched_time deadline = mono_us() + 20 * SEC;
    pthread_mutex_lock(&p->mu);
    p->inflight++;
    pthread_mutex_unlock(&p->mu);
    while (!pgsched_run_sleep(run, 10 * MS))
        if (fx_closing(p->fx) || mono_us() > deadline) break;
    pthread_mutex_lock(&p->mu);
    p->nrecs++; /* "noticed the cancel" */
    pthread_mutex_unlock(&p->mu);
    sleep_us(300 * MS);
    pthread_mutex_lock(&p->mu);
    p->inflight--;
    p->finished++;
    pthread_mutex_unlock(&p->mu);
    return PGSCHED_RUN_FAILURE;
}

static void *shutdown_thread(void *arg)
{
    pgsched_shutdown((pgsched_node *)arg, NULL);
    return NULL;
}

/* Shutdown is idempotent: a second call made while the first is still stopping the node
   returns only once the node is stopped (its outcomes recorded), so that a pgsched_destroy
   after it cannot free the node under the first call. */
ENGINE_TEST(concurrent_second_shutdown_waits_for_the_first)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a = start_node_with(fx, &c, "t", h_linger, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    pthread_t th;
    pgsched_result rc;
    pgsched_status st_after_second;
    int handler_done;
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    assert_int_equal(pthread_create(&th, NULL, shutdown_thread, a), 0);
    WAIT_UNTIL(probe_nrecs(p) == 1, 5000); /* the first shutdown is under way */
    rc = pgsched_shutdown(a, E);
    handler_done = probe_finished(p);
    st_after_second = job_status(fx, "t", "k");
    pthread_join(th, NULL);
    assert_int_equal(rc, PGSCHED_OK);
    if (!handler_done || st_after_second != PGSCHED_PENDING)
        fail_msg("the second pgsched_shutdown returned while the first was still stopping the "
                 "node (handler finished: %d, row: %s)",
                 handler_done, st_name(st_after_second));
}

/* pgsched_destroy of a running node shuts it down: handlers are cancelled, leases released. */
ENGINE_TEST(destroy_shuts_down_running_node)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a = start_node_with(fx, &c, "t", h_wait_cancel, p);
    pgsched_job_spec s = spec_once("t", "k", 0);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    fx_destroy_node(fx, a);
    assert_int_equal(probe_finished(p), 1);
    assert_int_equal(probe_rec(p, 0).saw_cancel, 1);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_PENDING);
    assert_int_equal(job_get(fx, "t", "k")->attempt, 0);
}

/* A log callback that calls the node's API (here pgsched_get_counters). Heap-owned (freed
   at teardown through a probe's hook_arg), as the node may log until it is destroyed. */
typedef struct api_logger {
    efx *fx;
    pgsched_node *node; /* atomic; NULL: do not call the API */
    int api_calls;      /* atomic */
    int release;        /* atomic: h_stuck returns */
    int started;        /* atomic: h_stuck is running */
} api_logger;

static void log_calls_api(void *user, pgsched_log_level level, const char *message)
{
    api_logger *g = (api_logger *)user;
    pgsched_node *n = __atomic_load_n(&g->node, __ATOMIC_ACQUIRE);
    if (n) {
        pgsched_counters k;
        pgsched_get_counters(n, &k);
        __atomic_add_fetch(&g->api_calls, 1, __ATOMIC_ACQ_REL);
    }
    fx_log(g->fx, level, message);
}

/* A handler stuck until released (it ignores the cancel); touches only its api_logger. */
static int h_stuck(pgsched_run *run)
{
    api_logger *g = (api_logger *)run->user;
    pgsched_time deadline = mono_us() + 5 * SEC;
    __atomic_store_n(&g->started, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&g->release, __ATOMIC_ACQUIRE) && mono_us() < deadline)
        sleep_us(1 * MS);
    return PGSCHED_RUN_SUCCESS;
}

typedef struct shutdown_call {
    pgsched_node *node;
    int done; /* atomic */
} shutdown_call;

static void *shutdown_call_main(void *arg)
{
    shutdown_call *sc = (shutdown_call *)arg;
    pgsched_shutdown(sc->node, NULL);
    __atomic_store_n(&sc->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The engine logs nothing while it holds a lock of the node, so a log callback may call the
   node's API: a shutdown that logs the stuck run still going at its timeout returns
   within the shutdown timeout plus a margin instead of deadlocking. */
ENGINE_TEST(log_callback_may_call_node_api_during_shutdown)
{
    pgsched_config c = fx_config(fx);
    probe *carrier = fx_probe(fx); /* owns the logger: freed after the nodes */
    api_logger *g = (api_logger *)calloc(1, sizeof *g);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    shutdown_call *sc = (shutdown_call *)calloc(1, sizeof *sc);
    pthread_t th;
    pgsched_time t0, deadline;
    int calls_before, warns_before, i;
    assert_non_null(g);
    assert_non_null(sc);
    g->fx = fx;
    carrier->hook_arg = g;
    carrier->hook_arg_free = free;
    c.log = log_calls_api;
    c.log_user = g;
    c.shutdown_timeout = 200 * MS;
    n = fx_node(fx, &c);
    __atomic_store_n(&g->node, n, __ATOMIC_RELEASE);
    fx_register(fx, n, "t", h_stuck, g);
    OK(pgsched_start(n, E));
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(counters_of(n).running == 1, 3000);
    /* the handler itself runs (a run handed over as the shutdown begins would be given back
       without starting, and without the warning this test needs) */
    WAIT_UNTIL(__atomic_load_n(&g->started, __ATOMIC_ACQUIRE), 3000);
    calls_before = __atomic_load_n(&g->api_calls, __ATOMIC_ACQUIRE);
    warns_before = fx_log_count(fx, PGSCHED_LOG_WARN);
    sc->node = n;
    t0 = mono_us();
    assert_int_equal(pthread_create(&th, NULL, shutdown_call_main, sc), 0);
    deadline = t0 + 200 * MS + 2500 * MS;
    while (!__atomic_load_n(&sc->done, __ATOMIC_ACQUIRE) && mono_us() < deadline) sleep_us(2 * MS);
    if (!__atomic_load_n(&sc->done, __ATOMIC_ACQUIRE)) {
        /* deadlocked: leave the node, its store, the logger and the call to their fate so
           that teardown touches none of them */
        pthread_detach(th);
        __atomic_store_n(&g->release, 1, __ATOMIC_RELEASE);
        carrier->hook_arg_free = NULL;
        for (i = 0; i < fx->nnodes; i++)
            if (fx->nodes[i] == n) fx->nodes[i] = NULL;
        if (!fx->pg) fx->store = NULL;
        fail_msg("pgsched_shutdown did not return within 2.7 s (shutdown timeout 200 ms): the "
                 "log callback calling pgsched_get_counters deadlocked the node");
    }
    pthread_join(th, NULL);
    free(sc);
    if (g_verbose)
        fprintf(stderr, "    shutdown took %lld ms\n", (long long)(mono_us() - t0) / 1000);
    /* the stuck run keeps its lease, and that was logged through the callback */
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_RUNNING);
    assert_true(fx_log_count(fx, PGSCHED_LOG_WARN) > warns_before);
    assert_true(__atomic_load_n(&g->api_calls, __ATOMIC_ACQUIRE) > calls_before);
    __atomic_store_n(&g->node, NULL, __ATOMIC_RELEASE); /* before the node is freed */
    __atomic_store_n(&g->release, 1, __ATOMIC_RELEASE);
}

static void hook_destroy_self(pgsched_run *run, probe *p, run_rec *r)
{
    (void)p;
    pgsched_destroy(run->node);
    if (r) snprintf(r->api_msg, sizeof r->api_msg, "destroy returned");
}

static void rec_hook_destroy(recorder *g, const pgsched_status_event *ev)
{
    (void)ev;
    pgsched_destroy(g->node);
    pthread_mutex_lock(&g->mu);
    g->hook_calls++;
    pthread_mutex_unlock(&g->mu);
}

/* pgsched_destroy from a handler or a status callback of the same node would free the node
   under its own thread: it is refused (returns, logs an error), the node goes on working, and
   a destroy from the application's thread later frees it. */
ENGINE_TEST(destroy_from_handler_or_callback_refused)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    recorder *g = fx_recorder(fx, &c);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    int errors_before, calls;
    p->hook = hook_destroy_self;
    g->hook = rec_hook_destroy;
    a = fx_node(fx, &c);
    g->node = a;
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_start(a, E));
    errors_before = fx_log_count(fx, PGSCHED_LOG_ERROR);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_string_equal(probe_rec(p, 0).api_msg, "destroy returned");
    WAIT_UNTIL(recorder_count(g, "t", "k") == 3, 3000);
    pthread_mutex_lock(&g->mu);
    calls = g->hook_calls;
    pthread_mutex_unlock(&g->mu);
    assert_true(calls >= 3);
    assert_true(fx_log_count(fx, PGSCHED_LOG_ERROR) >= errors_before + 1 + calls);
    /* the node still works */
    pthread_mutex_lock(&p->mu);
    p->hook = NULL;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&g->mu);
    g->hook = NULL;
    pthread_mutex_unlock(&g->mu);
    s = spec_once("t", "k2", 0);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "k2", PGSCHED_COMPLETED, 5000);
    fx_destroy_node(fx, a);
}

/* Returns 1 once the node refuses calls because it is shutting down. */
static int node_is_stopping(pgsched_node *n)
{
    pgsched_job_list l;
    pgsched_error e;
    pgsched_result rc;
    pgsched_job_list_init(&l, NULL);
    rc = pgsched_get(n, "t", "k", &l, &e);
    pgsched_job_list_free(&l);
    return rc == PGSCHED_ERR_STATE;
}

/* A run handed to a slot just as the node begins to shut down (its claim was on its way
   back) does not start: the handler is not called and the lease is given back. */
ENGINE_TEST(run_handed_over_as_shutdown_begins_does_not_start)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    shutdown_call *sc = (shutdown_call *)calloc(1, sizeof *sc);
    pthread_t th;
    pgsched_time deadline;
    const pgsched_job *j;
    pgsched_run_list *h;
    assert_non_null(sc);
    c.no_notifications = 1;
    c.poll_interval = 60 * SEC;
    n = start_node_with(fx, &c, "t", h_probe, p);
    FAULT_SET(w->hold_claims, 1); /* the claim that takes the row waits */
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(FAULT_GET(w->claim_phase) == 1, 3000);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_RUNNING); /* claimed in the store */
    sc->node = n;
    assert_int_equal(pthread_create(&th, NULL, shutdown_call_main, sc), 0);
    deadline = mono_us() + 3 * SEC;
    while (!node_is_stopping(n) && mono_us() < deadline) sleep_us(1 * MS);
    FAULT_SET(w->hold_claims, 0); /* the claim comes back: the row reaches a slot */
    pthread_join(th, NULL);
    free(sc);
    if (!node_is_stopping(n)) fail_msg("the node never began to shut down");
    assert_int_equal(probe_nrecs(p), 0);
    j = job_get(fx, "t", "k");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_null(j->owner);
    assert_int_equal(j->attempt, 0);
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_RELEASED);
    assert_int_equal(counters_of(n).running, 0);
}

/* ---- wake-ups and notifications --------------------------------------------------------- */

/* §6/§12 (no wake-up at the next due time): without notifications and with a 60 s poll
   interval, a job due in 2 s runs within 2 s + 100 ms: the node sleeps until the next due
   time it knows, from its claim's next_due ("a", written by someone else before the node
   started) or from its own schedule call ("b", 500 ms after "a"). */
ENGINE_TEST(wakes_at_next_due_time_without_notifications)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_schedule_request q;
    pgsched_schedule_outcome o;
    pgsched_job_spec s;
    pgsched_time due_a, due_b;
    run_rec ra[4], rb[4];
    c.no_notifications = 1;
    c.poll_interval = 60 * SEC;
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", h_probe, p);
    /* "a" is written straight into the store before the node starts */
    memset(&q, 0, sizeof q);
    q.name = "t";
    q.key = "a";
    q.kind = PGSCHED_ONCE;
    q.max_retries = 3;
    due_a = fx_now(fx) + 2 * SEC;
    q.next_run = due_a;
    q.node_id = "someone-else";
    OK(pgsched_store_schedule(fx->store, &q, &o, E));
    OK(pgsched_start(a, E));
    WAIT_UNTIL(counters_of(a).polls >= 1, 5000); /* the claim that saw "a" as next due */
    /* "b" is scheduled through the node, due later than "a" (which must not wait for it) */
    due_b = due_a + 500 * MS;
    s = spec_once("t", "b", due_b);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_done_key(p, "a") == 1 && probe_done_key(p, "b") == 1, 5000);
    assert_int_equal(probe_recs_for(p, "a", ra, 4), 1);
    assert_int_equal(probe_recs_for(p, "b", rb, 4), 1);
    if (g_verbose)
        fprintf(stderr, "    due-time lateness: a %lld us, b %lld us\n",
                (long long)(ra[0].start_db - due_a), (long long)(rb[0].start_db - due_b));
    assert_between(ra[0].start_db - due_a, 0, 100 * MS);
    assert_between(rb[0].start_db - due_b, 0, 100 * MS);
    assert_true(counters_of(a).polls < 10);
}

/* §6 "no busy loops": once its work is done, a node (dispatcher, workers, listener and the
   callback thread, which still holds timers for the changes it just delivered) sleeps. Over a
   second of idling the whole process uses a small fraction of one core; a thread that spins
   on a deadline it cannot reach uses all of it. */
static pgsched_duration process_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (pgsched_duration)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

ENGINE_TEST(idle_nodes_sleep_without_using_the_cpu)
{
    pgsched_config c = fx_config(fx), cq;
    probe *p = fx_probe(fx);
    recorder *g = fx_recorder(fx, &c);
    pgsched_node *a, *b;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_duration cpu;
    pgsched_time t0;
    c.poll_interval = 60 * SEC;
    a = start_node_with(fx, &c, "t", h_probe, p);
    cq = fx_config(fx);
    cq.no_notifications = 1;
    cq.poll_interval = 60 * SEC;
    cq.on_status = c.on_status;
    cq.on_status_user = c.on_status_user;
    b = start_node_with(fx, &cq, "t", h_probe, p);
    OK(pgsched_schedule_job(b, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    recorder_wait(g, "t", "k", 3, 3000);
    /* a measuring window, not a wait for a condition */
    t0 = mono_us();
    cpu = process_cpu_us();
    sleep_us(1000 * MS);
    cpu = process_cpu_us() - cpu;
    t0 = mono_us() - t0;
    if (g_verbose)
        fprintf(stderr, "    idle: %lld us of CPU in %lld us\n", (long long)cpu, (long long)t0);
    assert_true(cpu < t0 / 4);
    (void)a;
}

/* §6: with notifications, a job scheduled on another node starts within 100 ms although the
   runner polls once a minute. */
ENGINE_TEST(notification_starts_job_on_other_node_at_once)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *runner, *sched;
    pgsched_duration worst = 0, total = 0;
    int i;
    c.poll_interval = 60 * SEC;
    runner = start_node_with(fx, &c, "t", h_probe, p);
    sched = fx_node(fx, &c);
    fx_register(fx, sched, "t", NULL, NULL);
    OK(pgsched_start(sched, E));
    WAIT_UNTIL(counters_of(runner).polls >= 1, 5000);
    for (i = 0; i < 5; i++) {
        char key[16];
        pgsched_job_spec s;
        pgsched_time t0;
        pgsched_duration lat;
        snprintf(key, sizeof key, "n%d", i);
        s = spec_once("t", key, 0);
        t0 = mono_us();
        OK(pgsched_schedule_job(sched, &s, E));
        WAIT_UNTIL(probe_nrecs(p) == i + 1, 2000);
        lat = probe_rec(p, i).start_mono - t0;
        total += lat;
        if (lat > worst) worst = lat;
    }
    if (g_verbose)
        fprintf(stderr, "    notification latency: mean %lld us, worst %lld us\n",
                (long long)(total / 5), (long long)worst);
    assert_between(worst, 0, 100 * MS);
    assert_int_equal(counters_of(sched).claimed, 0);
}

/* §12 (a fixed one-second debounce before notified work): trigger and cancel made on another
   node reach the runner at once. The runner's poll, heartbeat and cancel checks are all
   seconds apart, so only the notification can explain the speed. */
ENGINE_TEST(trigger_and_cancel_reach_other_node_without_debounce)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx), *pw = fx_probe(fx);
    pgsched_node *runner, *other;
    pgsched_job_spec s;
    pgsched_cancel_effect eff;
    pgsched_time t0;
    run_rec r;
    c.poll_interval = 60 * SEC;
    c.stall_timeout = 60 * SEC;
    c.heartbeat_interval = 10 * SEC;
    c.cancel_check_period = 60 * SEC;
    runner = fx_node(fx, &c);
    fx_register(fx, runner, "t", h_probe, p);
    fx_register(fx, runner, "w", h_wait_cancel, pw);
    OK(pgsched_start(runner, E));
    other = fx_node(fx, &c);
    fx_register(fx, other, "t", NULL, NULL);
    fx_register(fx, other, "w", NULL, NULL);
    OK(pgsched_start(other, E));
    WAIT_UNTIL(counters_of(runner).polls >= 1, 5000);
    s = spec_interval("t", "k", PGSCHED_HOUR);
    OK(pgsched_schedule_job(other, &s, E));
    t0 = mono_us();
    OK(pgsched_trigger(other, "t", "k", E));
    WAIT_UNTIL(probe_nrecs(p) == 1, 2000);
    assert_between(probe_rec(p, 0).start_mono - t0, 0, 100 * MS);

    s = spec_once("w", "k", 0);
    OK(pgsched_schedule_job(other, &s, E));
    WAIT_UNTIL(probe_inflight(pw) == 1, 2000);
    t0 = mono_us();
    OK(pgsched_cancel(other, "w", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    WAIT_UNTIL(probe_finished(pw) == 1, 3000);
    r = probe_rec(pw, 0);
    assert_int_equal(r.saw_cancel, 1);
    assert_between(r.cancel_seen_mono - t0, 0, 100 * MS);
    WAIT_STATUS("w", "k", PGSCHED_CANCELLED, 3000);
}

/* Without notifications a cancel from another node arrives within cancel_check_period. */
ENGINE_TEST(remote_cancel_without_notifications_within_check_period)
{
    pgsched_config c = fx_config(fx);
    probe *pw = fx_probe(fx);
    pgsched_node *runner, *other;
    pgsched_job_spec s = spec_once("w", "k", 0);
    pgsched_cancel_effect eff;
    pgsched_time t0;
    run_rec r;
    c.no_notifications = 1;
    c.stall_timeout = 60 * SEC;
    c.heartbeat_interval = 10 * SEC;
    c.cancel_check_period = 200 * MS;
    runner = start_node_with(fx, &c, "w", h_wait_cancel, pw);
    other = fx_node(fx, &c);
    fx_register(fx, other, "w", NULL, NULL);
    OK(pgsched_start(other, E));
    OK(pgsched_schedule_job(other, &s, E));
    WAIT_UNTIL(probe_inflight(pw) == 1, 3000);
    t0 = mono_us();
    OK(pgsched_cancel(other, "w", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    WAIT_UNTIL(probe_finished(pw) == 1, 3000);
    r = probe_rec(pw, 0);
    assert_int_equal(r.saw_cancel, 1);
    assert_between(r.cancel_seen_mono - t0, 0, 200 * MS + 100 * MS);
    WAIT_STATUS("w", "k", PGSCHED_CANCELLED, 3000);
    (void)runner;
}

/* A due time learned while a claim is in flight (here from the node's own schedule call,
   without notifications and with a 60 s poll interval) survives the claim's answer, which
   was computed before it: the job runs at its due time, not a poll interval later. */
ENGINE_TEST(due_time_learned_while_a_claim_is_in_flight_is_kept)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s;
    pgsched_time due;
    run_rec r;
    c.no_notifications = 1;
    c.poll_interval = 60 * SEC;
    w->claim_delay = 300 * MS; /* the first claim's answer takes 300 ms to come back */
    w->slow_claims = 1;
    n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_probe, p);
    OK(pgsched_start(n, E));
    WAIT_UNTIL(FAULT_GET(w->claim_phase) == 1, 3000);
    due = fx_now(fx) + 400 * MS;
    s = spec_once("t", "k", due);
    OK(pgsched_schedule_job(n, &s, E));
    if (FAULT_GET(w->claim_phase) != 1)
        fail_msg("the claim came back before the schedule call did: the test cannot tell");
    WAIT_UNTIL(probe_finished(p) == 1, 3000);
    r = probe_rec(p, 0);
    if (g_verbose)
        fprintf(stderr, "    lateness %lld us\n", (long long)(r.start_db - due));
    assert_between(r.start_db - due, 0, 150 * MS);
    assert_true(counters_of(n).polls < 5); /* woken at the due time, not polling meanwhile */
}

/* ---- status callbacks ---------------------------------------------------------------------- */

static void check_once_success_sequence(efx *fx, int notifications)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    recorder *g = fx_recorder(fx, &c);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    static const pgsched_status seq[] = {PGSCHED_STATUS_NONE, PGSCHED_PENDING,
                                         PGSCHED_PENDING,     PGSCHED_RUNNING,
                                         PGSCHED_RUNNING,     PGSCHED_COMPLETED};
    ev_rec ev[8];
    int i;
    c.no_notifications = !notifications;
    c.poll_interval = 60 * SEC;
    a = fx_node(fx, &c);
    g->node = a;
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_start(a, E));
    WAIT_UNTIL(counters_of(a).polls >= 1, 5000);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    recorder_wait(g, "t", "k", 3, 3000);
    OK(pgsched_shutdown(a, E)); /* delivers what is queued */
    assert_event_sequence(g, "t", "k", seq, 3);
    assert_int_equal(recorder_events(g, "t", "k", ev, 8), 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(ev[i].remote, 0);
        assert_string_equal(ev[i].node, pgsched_node_id(a));
        if (i) assert_true(ev[i].version > ev[i - 1].version);
    }
    assert_true(ev[0].next_run > 0);
}

/* §6: the exact callback sequence of a one-time success seen by the node that ran it. */
ENGINE_TEST(status_callbacks_exact_sequence_of_once_success)
{
    check_once_success_sequence(fx, 1);
}

/* §12: status callbacks were only available with notifications. */
ENGINE_TEST(status_callbacks_work_without_notifications)
{
    check_once_success_sequence(fx, 0);
}

/* With notifications a node also hears other nodes' changes (remote = 1). */
ENGINE_TEST(status_callbacks_report_other_nodes_changes)
{
    pgsched_config c = fx_config(fx), co;
    probe *p = fx_probe(fx);
    recorder *g;
    pgsched_node *runner, *obs;
    pgsched_job_spec s = spec_once("t", "k", 0);
    static const pgsched_status seq[] = {PGSCHED_STATUS_NONE, PGSCHED_PENDING,
                                         PGSCHED_PENDING,     PGSCHED_RUNNING,
                                         PGSCHED_RUNNING,     PGSCHED_COMPLETED};
    ev_rec ev[8];
    runner = start_node_with(fx, &c, "t", h_probe, p);
    co = fx_config(fx);
    g = fx_recorder(fx, &co);
    obs = fx_node(fx, &co);
    g->node = obs;
    fx_register(fx, obs, "t", NULL, NULL);
    OK(pgsched_start(obs, E));
    OK(pgsched_schedule_job(obs, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    recorder_wait(g, "t", "k", 3, 3000);
    OK(pgsched_shutdown(obs, E));
    assert_event_sequence(g, "t", "k", seq, 3);
    recorder_events(g, "t", "k", ev, 8);
    assert_int_equal(ev[0].remote, 0);
    assert_string_equal(ev[0].node, pgsched_node_id(obs));
    assert_int_equal(ev[1].remote, 1);
    assert_string_equal(ev[1].node, pgsched_node_id(runner));
    assert_int_equal(ev[2].remote, 1);
    assert_string_equal(ev[2].node, pgsched_node_id(runner));
}

/* §6 "each change is delivered once per node": the node that schedules a job hears its own
   creation (none -> pending) even when the store's answer comes back after another node has
   already claimed and finished the job (the observer's store answers `schedule` 150 ms late;
   the other node hears the commit's notification at once). */
ENGINE_TEST(status_callbacks_keep_own_change_when_remote_is_faster)
{
    pgsched_config c = fx_config(fx), co;
    probe *p = fx_probe(fx);
    recorder *g;
    pgsched_node *runner, *obs;
    pgsched_job_spec s = spec_once("t", "k", 0);
    static const pgsched_status seq[] = {PGSCHED_STATUS_NONE, PGSCHED_PENDING,
                                         PGSCHED_PENDING,     PGSCHED_RUNNING,
                                         PGSCHED_RUNNING,     PGSCHED_COMPLETED};
    runner = start_node_with(fx, &c, "t", h_probe, p);
    co = fx_config(fx);
    co.store = fx_slow_store(fx, 150 * MS);
    co.conninfo = NULL;
    g = fx_recorder(fx, &co);
    obs = fx_node(fx, &co);
    g->node = obs;
    fx_register(fx, obs, "t", NULL, NULL);
    OK(pgsched_start(obs, E));
    OK(pgsched_schedule_job(obs, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    recorder_wait(g, "t", "k", 3, 2000);
    OK(pgsched_shutdown(obs, E));
    assert_event_sequence(g, "t", "k", seq, 3);
    (void)runner;
}

/* §6 "each change is delivered once per node, in order per instance": an observer schedules
   100 jobs that another node runs at once; it hears every change of each, its own creation
   event included, in order. */
ENGINE_TEST(status_callbacks_deliver_every_change_in_order)
{
    pgsched_config c = fx_config(fx), co;
    probe *p = fx_probe(fx);
    recorder *g;
    pgsched_node *runner, *obs;
    static const pgsched_status seq[] = {PGSCHED_STATUS_NONE, PGSCHED_PENDING,
                                         PGSCHED_PENDING,     PGSCHED_RUNNING,
                                         PGSCHED_RUNNING,     PGSCHED_COMPLETED};
    int i, bad = 0;
    char first_bad[16] = "";
    c.max_concurrent = 8;
    runner = start_node_with(fx, &c, "t", h_probe, p);
    co = fx_config(fx);
    g = fx_recorder(fx, &co);
    obs = fx_node(fx, &co);
    g->node = obs;
    fx_register(fx, obs, "t", NULL, NULL);
    OK(pgsched_start(obs, E));
    for (i = 0; i < 100; i++) {
        char key[16];
        pgsched_job_spec s;
        snprintf(key, sizeof key, "k%d", i);
        s = spec_once("t", key, 0);
        OK(pgsched_schedule_job(obs, &s, E));
    }
    WAIT_UNTIL(count_rows(fx, "t", PGSCHED_COMPLETED) == 100, 15000);
    for (i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        recorder_wait(g, "t", key, 3, 2000);
    }
    OK(pgsched_shutdown(obs, E));
    for (i = 0; i < 100; i++) {
        char key[16];
        ev_rec ev[8];
        int n, k, ok;
        snprintf(key, sizeof key, "k%d", i);
        n = recorder_events(g, "t", key, ev, 8);
        ok = n == 3;
        for (k = 0; ok && k < 3; k++)
            ok = ev[k].old_status == seq[2 * k] && ev[k].new_status == seq[2 * k + 1];
        if (!ok && !bad++) snprintf(first_bad, sizeof first_bad, "%s", key);
    }
    if (bad) {
        if (g_verbose) fprintf(stderr, "    %d of 100 instances had a wrong sequence\n", bad);
        assert_event_sequence(g, "t", first_bad, seq, 3); /* fails, listing what arrived */
    }
    (void)runner;
}

static void rec_hook_chain(recorder *g, const pgsched_status_event *ev)
{
    pgsched_error e;
    pgsched_job_list l;
    pgsched_job_spec s = spec_once("t", "second", 0);
    pgsched_result rc[3];
    int i;
    if (strcmp(ev->key, "first") != 0 || ev->new_status != PGSCHED_COMPLETED) return;
    pgsched_job_list_init(&l, NULL);
    rc[0] = pgsched_schedule_job(g->node, &s, &e);
    rc[1] = pgsched_get(g->node, "t", "first", &l, &e);
    pgsched_job_list_clear(&l);
    rc[2] = pgsched_list(g->node, NULL, &l, &e);
    pgsched_job_list_free(&l);
    pthread_mutex_lock(&g->mu);
    for (i = 0; i < 3; i++) g->hook_rc[i] = rc[i];
    g->hook_calls++;
    pthread_mutex_unlock(&g->mu);
}

static int recorder_hook_calls(recorder *g)
{
    int n;
    pthread_mutex_lock(&g->mu);
    n = g->hook_calls;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* A status callback may call the node's API (here: schedule the next job of a chain). */
ENGINE_TEST(status_callback_may_call_node_api)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    recorder *g = fx_recorder(fx, &c);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "first", 0);
    g->hook = rec_hook_chain;
    a = fx_node(fx, &c);
    g->node = a;
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_start(a, E));
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("t", "second", PGSCHED_COMPLETED, 5000);
    /* the hook's own calls must finish before the node shuts down under them */
    WAIT_UNTIL(recorder_hook_calls(g) == 1, 5000);
    OK(pgsched_shutdown(a, E)); /* the callback thread is done: read without the lock */
    assert_int_equal(g->hook_calls, 1);
    assert_int_equal(g->hook_rc[0], PGSCHED_OK);
    assert_int_equal(g->hook_rc[1], PGSCHED_OK);
    assert_int_equal(g->hook_rc[2], PGSCHED_OK);
}

/* A change of this node whose notification never arrives is delivered by the fallback after
   2 s, even when a delivered change's 10 s keep entry was queued before it ("heard": its
   notification arrived before its schedule call returned). Memory store only: the timers
   are the engine's, whatever the store. */
ENGINE_TEST(status_callback_of_own_change_with_lost_notification_arrives_within_seconds)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c;
    recorder *g;
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "heard", 0);
    pgsched_time t0, el;
    ev_rec ev[4];
    w->schedule_delay = 150 * MS;
    w->drop_prefix = "lost";
    c = fx_config_on(fx, w);
    g = fx_recorder(fx, &c);
    a = fx_node(fx, &c);
    g->node = a;
    fx_register(fx, a, "t", NULL, NULL); /* nothing runs: the rows stay pending */
    OK(pgsched_start(a, E));
    s.schedule.at = fx_now(fx) + PGSCHED_HOUR;
    OK(pgsched_schedule_job(a, &s, E));
    recorder_wait(g, "t", "heard", 1, 2000);
    assert_int_equal(recorder_count(g, "t", "heard"), 1);
    s.key = "lost";
    t0 = mono_us();
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(recorder_count(g, "t", "lost") == 1, 4000);
    el = mono_us() - t0;
    if (g_verbose) fprintf(stderr, "    delivered %lld ms later\n", (long long)(el / 1000));
    assert_between(el, 1 * SEC, 3500 * MS);
    assert_int_equal(recorder_events(g, "t", "lost", ev, 4), 1);
    assert_int_equal(ev[0].old_status, PGSCHED_STATUS_NONE);
    assert_int_equal(ev[0].new_status, PGSCHED_PENDING);
    assert_int_equal(ev[0].remote, 0);
    OK(pgsched_shutdown(a, E));
    assert_int_equal(recorder_count(g, "t", "heard"), 1);
    assert_int_equal(recorder_count(g, "t", "lost"), 1);
}

/* ---- several nodes on one store ------------------------------------------------------------ */

#define OVERLAP_KEYS 256

typedef struct overlap_probe {
    pthread_mutex_t mu;
    int inflight[OVERLAP_KEYS];
    int runs[OVERLAP_KEYS];
    int overlaps;
    int total;
    pgsched_duration work; /* pgsched_run_sleep per run; 0 = a random 0-2 ms */
    unsigned seed;
} overlap_probe;

static int h_overlap(pgsched_run *run)
{
    overlap_probe *o = (overlap_probe *)((probe *)run->user)->hook_arg;
    int k = atoi(run->key + 1) % OVERLAP_KEYS;
    pgsched_duration d;
    pthread_mutex_lock(&o->mu);
    if (o->inflight[k]++ > 0) o->overlaps++;
    o->runs[k]++;
    o->total++;
    o->seed = o->seed * 1103515245u + 12345u;
    d = o->work ? o->work : (pgsched_duration)((o->seed >> 16) % 2000);
    pthread_mutex_unlock(&o->mu);
    pgsched_run_sleep(run, d);
    pthread_mutex_lock(&o->mu);
    o->inflight[k]--;
    pthread_mutex_unlock(&o->mu);
    return PGSCHED_RUN_SUCCESS;
}

static void overlap_free(void *arg)
{
    overlap_probe *o = (overlap_probe *)arg;
    if (!o) return;
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* The overlap probe hangs off a fixture probe, so teardown frees it after the nodes. */
static overlap_probe *fx_overlap(efx *fx, probe **holder)
{
    probe *p = fx_probe(fx);
    overlap_probe *o = (overlap_probe *)calloc(1, sizeof *o);
    assert_non_null(o);
    pthread_mutex_init(&o->mu, NULL);
    p->hook_arg = o;
    p->hook_arg_free = overlap_free;
    *holder = p;
    return o;
}

static int overlap_total(overlap_probe *o)
{
    int n;
    pthread_mutex_lock(&o->mu);
    n = o->total;
    pthread_mutex_unlock(&o->mu);
    return n;
}

/* §5: 3 nodes x 4 workers share a store; 200 one-time jobs all due at the same instant; no
   instance ever runs twice at once, and each runs exactly once. */
ENGINE_TEST(nodes_never_run_one_instance_at_once)
{
    pgsched_config c = fx_config(fx);
    probe *p;
    overlap_probe *o = fx_overlap(fx, &p);
    pgsched_node *nodes[3];
    pgsched_time at;
    int i, overlaps, bad = -1;
    int64_t claimed = 0;
    c.max_concurrent = 4;
    for (i = 0; i < 3; i++) nodes[i] = start_node_with(fx, &c, "t", h_overlap, p);
    at = fx_now(fx) + 300 * MS;
    for (i = 0; i < 200; i++) {
        char key[16];
        pgsched_job_spec s;
        snprintf(key, sizeof key, "k%d", i);
        s = spec_once("t", key, at);
        OK(pgsched_schedule_job(nodes[i % 3], &s, E));
    }
    WAIT_UNTIL(count_rows(fx, "t", PGSCHED_COMPLETED) == 200, 20000);
    for (i = 0; i < 3; i++) OK(pgsched_shutdown(nodes[i], E));
    pthread_mutex_lock(&o->mu);
    overlaps = o->overlaps;
    for (i = 0; i < 200; i++)
        if (o->runs[i] != 1 && bad < 0) bad = i;
    pthread_mutex_unlock(&o->mu);
    for (i = 0; i < 3; i++) claimed += counters_of(nodes[i]).claimed;
    if (g_verbose)
        fprintf(stderr, "    claims per node: %lld %lld %lld\n",
                (long long)counters_of(nodes[0]).claimed, (long long)counters_of(nodes[1]).claimed,
                (long long)counters_of(nodes[2]).claimed);
    assert_int_equal(overlaps, 0);
    if (bad >= 0) fail_msg("key k%d ran %d times", bad, o->runs[bad]);
    assert_int_equal(claimed, 200);
    assert_int_equal(overlap_total(o), 200);
    assert_none_running(fx);
}

static int overlap_six_runs(void *arg) { return overlap_total((overlap_probe *)arg) >= 6; }

/* §5: a recurring job whose handler is slower than its interval, on 3 nodes: never two runs
   at once. */
ENGINE_TEST(nodes_never_overlap_slow_recurring_job)
{
    pgsched_config c = fx_config(fx);
    probe *p;
    overlap_probe *o = fx_overlap(fx, &p);
    pgsched_node *nodes[3];
    pgsched_job_spec s = spec_cron("t", "k0", "@every 100ms");
    int i, overlaps;
    o->work = 150 * MS;
    for (i = 0; i < 3; i++) nodes[i] = start_node_with(fx, &c, "t", h_overlap, p);
    OK(pgsched_schedule_job(nodes[0], &s, E));
    assert_int_equal(job_get(fx, "t", "k0")->kind, PGSCHED_INTERVAL);
    if (!wait_until(overlap_six_runs, o, 10000)) fail_msg("fewer than 6 runs in 10 s");
    for (i = 0; i < 3; i++) OK(pgsched_shutdown(nodes[i], E));
    pthread_mutex_lock(&o->mu);
    overlaps = o->overlaps;
    pthread_mutex_unlock(&o->mu);
    assert_int_equal(overlaps, 0);
    assert_none_running(fx);
}

/* ---- maintenance --------------------------------------------------------------------------- */

/* §12 (failed one-time jobs were never cleaned up): finished one-time rows (failed ones too)
   and run history are deleted after their retention; pending and recurring rows stay. */
ENGINE_TEST(retention_deletes_finished_once_rows_and_history)
{
    pgsched_config c = fx_config(fx);
    probe *pf = fx_probe(fx), *pc = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s;
    c.finished_retention = 300 * MS;
    c.history_retention = 300 * MS;
    c.cleanup_period = 100 * MS;
    pf->rc = PGSCHED_RUN_FAILURE;
    a = fx_node(fx, &c);
    fx_register(fx, a, "f", h_probe, pf);
    fx_register(fx, a, "c", h_probe, pc);
    OK(pgsched_start(a, E));
    s = spec_once("f", "k", 0);
    s.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_schedule_job(a, &s, E));
    s = spec_once("c", "k", 0);
    OK(pgsched_schedule_job(a, &s, E));
    s = spec_once("c", "later", fx_now(fx) + PGSCHED_HOUR);
    OK(pgsched_schedule_job(a, &s, E));
    s = spec_interval("c", "rec", PGSCHED_HOUR);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_finished(pf) == 1 && probe_finished(pc) == 1, 5000);
    WAIT_UNTIL(job_status(fx, "f", "k") != PGSCHED_RUNNING &&
                   job_status(fx, "f", "k") != PGSCHED_PENDING,
               3000);
    WAIT_STATUS("f", "k", PGSCHED_STATUS_NONE, 5000);
    WAIT_STATUS("c", "k", PGSCHED_STATUS_NONE, 5000);
    WAIT_UNTIL(history_of(fx, "f", "k", 10)->count == 0, 5000);
    assert_int_equal(job_status(fx, "c", "later"), PGSCHED_PENDING);
    assert_int_equal(job_status(fx, "c", "rec"), PGSCHED_PENDING);
}

/* §7/§12 (orphan clean-up deleted rows of types other nodes still run): rows of a type no
   live node registers are deleted after orphan_timeout; rows of types registered by another
   live node (even without a handler) stay. A dead node's types do not keep rows alive. */
ENGINE_TEST(orphan_cleanup_keeps_types_of_live_nodes)
{
    pgsched_config ca = fx_config(fx), cb = fx_config(fx);
    pgsched_node *a, *b;
    pgsched_schedule_request q;
    pgsched_schedule_outcome o;
    pgsched_node_record dead;
    const char *dead_names[1] = {"d_type"};
    pgsched_job_spec s;
    pgsched_time far = fx_now(fx) + PGSCHED_HOUR;
    ca.orphan_timeout = 200 * MS;
    ca.cleanup_period = 100 * MS;
    ca.stall_timeout = 600 * MS; /* a node is live when seen within this */
    cb.cleanup_period = PGSCHED_HOUR;
    cb.stall_check_period = PGSCHED_HOUR;
    b = fx_node(fx, &cb);
    fx_register(fx, b, "b_type", NULL, NULL);
    OK(pgsched_start(b, E));
    s = spec_once("b_type", "b1", far);
    OK(pgsched_schedule_job(b, &s, E));
    /* a dead node that registered d_type */
    memset(&dead, 0, sizeof dead);
    dead.id = "dead-node";
    dead.host = "nowhere";
    dead.pid = 1;
    dead.names = dead_names;
    dead.name_count = 1;
    OK(pgsched_store_node_register(fx->store, &dead, E));
    memset(&q, 0, sizeof q);
    q.kind = PGSCHED_ONCE;
    q.max_retries = 3;
    q.next_run = far;
    q.name = "d_type";
    q.key = "d1";
    OK(pgsched_store_schedule(fx->store, &q, &o, E));
    q.name = "ghost";
    q.key = "g1";
    OK(pgsched_store_schedule(fx->store, &q, &o, E));
    a = fx_node(fx, &ca);
    fx_register(fx, a, "a_type", h_probe, fx_probe(fx));
    OK(pgsched_start(a, E));
    s = spec_once("a_type", "a1", far);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_STATUS("ghost", "g1", PGSCHED_STATUS_NONE, 5000);
    assert_int_equal(job_status(fx, "b_type", "b1"), PGSCHED_PENDING);
    WAIT_STATUS("d_type", "d1", PGSCHED_STATUS_NONE, 5000);
    assert_int_equal(job_status(fx, "b_type", "b1"), PGSCHED_PENDING);
    assert_int_equal(job_status(fx, "a_type", "a1"), PGSCHED_PENDING);
}

/* ---- clocks and times ---------------------------------------------------------------------- */

static void check_store_clock_run(efx *fx, const char *past_key, const char *soon_key)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s;
    pgsched_time t0, soon;
    run_rec r[4];
    c.poll_interval = 60 * SEC;
    a = start_node_with(fx, &c, "t", h_probe, p);
    s = spec_once("t", past_key, fx_now(fx) - SEC);
    t0 = mono_us();
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_done_key(p, past_key) == 1, 2000);
    probe_recs_for(p, past_key, r, 4);
    assert_between(r[0].start_mono - t0, 0, 150 * MS);
    soon = fx_now(fx) + 300 * MS;
    s = spec_once("t", soon_key, soon);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_done_key(p, soon_key) == 1, 3000);
    probe_recs_for(p, soon_key, r, 4);
    assert_between(r[0].start_db, soon, soon + 100 * MS);
    fx_destroy_node(fx, a);
}

/* §5/§12 (node clocks instead of the database clock): every comparison uses the store's clock.
   In memory the store's clock is skewed by a day either way from the node's; on PostgreSQL a
   row due in the past by the database clock runs now. */
ENGINE_TEST(store_clock_used_not_node_clock)
{
    if (!fx->pg) fx_skew_add(fx, PGSCHED_DAY);
    check_store_clock_run(fx, "past1", "soon1");
    if (!fx->pg) {
        fx_skew_add(fx, -2 * PGSCHED_DAY);
        check_store_clock_run(fx, "past2", "soon2");
    }
}

/* §12 (a 32-bit execution-time column): a run longer than 2^31 us (36 min) is represented.
   Memory: the store's clock jumps an hour during the run. PostgreSQL: the running row's start
   is moved an hour back by SQL (and every *_at column is timestamptz). */
ENGINE_TEST(long_run_times_are_64_bit)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    const pgsched_job *j;
    pgsched_run_list *h;
    const int64_t two31 = (int64_t)1 << 31;
    assert_int_equal(sizeof(((pgsched_job *)0)->started_at), 8);
    assert_int_equal(sizeof(((pgsched_run_record *)0)->finished_at), 8);
    c.stall_timeout = 2 * PGSCHED_HOUR;
    c.stall_check_period = PGSCHED_HOUR;
    p->gated = 1;
    a = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    if (fx->pg) {
        admin_exec("UPDATE \"%s\".\"" EFX_PREFIX "jobs\" SET started_at = started_at - "
                   "interval '1 hour' WHERE name = 't' AND key = 'k'",
                   fx->schema);
        assert_int_equal(admin_int("SELECT count(*) FROM information_schema.columns WHERE "
                                   "table_schema = '%s' AND column_name LIKE '%%\\_at' AND "
                                   "data_type <> 'timestamp with time zone'",
                                   fx->schema),
                         0);
    } else {
        fx_skew_add(fx, PGSCHED_HOUR);
    }
    probe_open_gate(p);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    j = job_get(fx, "t", "k");
    if (j->finished_at - j->started_at <= two31)
        fail_msg("row run time %lld us is not above 2^31", (long long)(j->finished_at - j->started_at));
    h = history_of(fx, "t", "k", 10);
    assert_int_equal(h->count, 1);
    if (h->items[0].finished_at - h->items[0].started_at <= two31)
        fail_msg("history run time %lld us is not above 2^31",
                 (long long)(h->items[0].finished_at - h->items[0].started_at));
    (void)a;
}

/* ---- PostgreSQL only ----------------------------------------------------------------------- */

/* §7: scheduling in the caller's transaction: the job exists iff the transaction commits. */
ENGINE_TEST(schedule_in_caller_transaction)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s;
    int64_t polls;
    a = start_node_with(fx, &c, "t", h_probe, p);
    admin_exec("BEGIN");
    s = spec_once("t", "rolled-back", 0);
    OK(pgsched_schedule_job_tx(a, (struct pg_conn *)g_admin, &s, E));
    admin_exec("ROLLBACK");
    admin_exec("BEGIN");
    s = spec_once("t", "committed", 0);
    OK(pgsched_schedule_job_tx(a, (struct pg_conn *)g_admin, &s, E));
    assert_int_equal(job_status(fx, "t", "committed"), PGSCHED_STATUS_NONE);
    admin_exec("COMMIT");
    WAIT_STATUS("t", "committed", PGSCHED_COMPLETED, 3000);
    polls = counters_of(a).polls;
    WAIT_UNTIL(counters_of(a).polls >= polls + 2, 3000);
    assert_int_equal(job_status(fx, "t", "rolled-back"), PGSCHED_STATUS_NONE);
    assert_int_equal(probe_nrecs(p), 1);
}

/* A node made from cfg.conninfo owns its store: a small, fixed number of connections
   (whatever its worker count), all closed by pgsched_shutdown already (not only by
   pgsched_destroy). */
ENGINE_TEST(conninfo_node_owns_few_connections_and_closes_them)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a;
    char app[64], *conninfo;
    long long conns;
    size_t len;
    snprintf(app, sizeof app, "eng_own_%ld", (long)getpid());
    len = strlen(g_dsn) + strlen(app) + 32;
    conninfo = (char *)malloc(len);
    assert_non_null(conninfo);
    snprintf(conninfo, len, "%s application_name=%s", g_dsn, app);
    c.conninfo = conninfo;
    c.max_concurrent = 32;
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(a, E));
    WAIT_UNTIL(counters_of(a).polls >= 1, 5000);
    conns = admin_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app);
    if (g_verbose) fprintf(stderr, "    connections of a 32-worker node: %lld\n", conns);
    assert_between(conns, 1, 4);
    free(conninfo);
    /* shutdown already closes them (a node shut down but not yet destroyed holds none) */
    OK(pgsched_shutdown(a, E));
    WAIT_UNTIL(admin_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
                         app) == 0,
               3000);
    fx_destroy_node(fx, a);
    assert_int_equal(admin_int("SELECT count(*) FROM pg_stat_activity WHERE "
                               "application_name = '%s'",
                               app),
                     0);
}

/* README: every connection of the PostgreSQL store is named `pgsched` in pg_stat_activity
   unless the connection string names it (the test above names it). */
ENGINE_TEST(connections_are_named_pgsched_unless_conninfo_names_them)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a;
    const char *q = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgsched' "
                    "AND datname = current_database()";
    long long before = admin_int("%s", q);
    assert_null(strstr(g_dsn, "application_name"));
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(a, E));
    WAIT_UNTIL(counters_of(a).polls >= 1, 5000);
    assert_true(admin_int("%s", q) >= before + 1);
    OK(pgsched_shutdown(a, E));
    WAIT_UNTIL(admin_int("%s", q) == before, 3000);
}

/* §10: a lost database connection is survived: every connection of a node is killed while a
   run is going; the node reconnects, records that run's outcome, and goes on running jobs
   (notifications included). */
ENGINE_TEST(connection_loss_survived_and_outcome_recorded)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k1", 0);
    char app[64], *conninfo;
    size_t len;
    pgsched_run_list *h;
    pgsched_time t0;
    long long listener_pid;
    snprintf(app, sizeof app, "eng_cut_%ld", (long)getpid());
    len = strlen(g_dsn) + strlen(app) + 32;
    conninfo = (char *)malloc(len);
    assert_non_null(conninfo);
    snprintf(conninfo, len, "%s application_name=%s", g_dsn, app);
    c.conninfo = conninfo;
    c.poll_interval = 60 * SEC; /* the second job must come through the (new) listener */
    p->gated = 1;
    p->gate_ignores_cancel = 1;
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_start(a, E));
    free(conninfo); /* the node keeps its own copy */
    WAIT_UNTIL(counters_of(a).polls >= 1, 5000);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 1, 5000);
    listener_pid = admin_int("SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE "
                             "application_name = '%s' AND query LIKE 'LISTEN%%'",
                             app);
    assert_true(listener_pid > 0);
    assert_true(admin_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE application_name = '%s'",
                          app) >= 2);
    probe_open_gate(p);
    WAIT_STATUS("t", "k1", PGSCHED_COMPLETED, 10000);
    h = history_of(fx, "t", "k1", 10);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    /* and it carries on: a job scheduled elsewhere reaches it through its listener */
    WAIT_UNTIL(admin_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
                         "AND query LIKE 'LISTEN%%' AND pid <> %lld",
                         app, listener_pid) >= 1,
               10000);
    {
        pgsched_schedule_request q;
        pgsched_schedule_outcome o;
        memset(&q, 0, sizeof q);
        q.name = "t";
        q.key = "k2";
        q.kind = PGSCHED_ONCE;
        q.max_retries = 3;
        q.node_id = "elsewhere";
        t0 = mono_us();
        OK(pgsched_store_schedule(fx->store, &q, &o, E));
    }
    WAIT_STATUS("t", "k2", PGSCHED_COMPLETED, 10000);
    if (g_verbose)
        fprintf(stderr, "    after reconnecting: notified job ran after %lld ms\n",
                (long long)(mono_us() - t0) / 1000);
    assert_int_equal(counters_of(a).lease_lost, 0);
    assert_none_running(fx);
}

/* The row's heartbeat_at (0 when it cannot be read): safe inside the admin's transaction,
   where a failing assertion would leave it open. */
static pgsched_time job_heartbeat_at(efx *fx, const char *name, const char *key)
{
    pgsched_job_list l;
    pgsched_error e;
    pgsched_time t = 0;
    pgsched_job_list_init(&l, NULL);
    if (pgsched_store_get(fx->store, name, key, &l, &e) == PGSCHED_OK && l.count == 1)
        t = l.items[0].heartbeat_at;
    pgsched_job_list_free(&l);
    return t;
}

/* Locks (name, key)'s row in the admin connection's open transaction; returns the rows locked. */
static long long admin_lock_row(efx *fx, const char *name, const char *key)
{
    return admin_int("SELECT count(*) FROM (SELECT 1 FROM \"%s\".\"" EFX_PREFIX "jobs\" "
                     "WHERE name = '%s' AND key = '%s' FOR UPDATE) x",
                     fx->schema, name, key);
}

/* One row locked by another transaction (a caller scheduling in its own transaction, say)
   does not stop the node's other runs: the heartbeat skips that row (its lease is reported
   held, not renewed) and renews the others; once the lock is gone the locked row is renewed
   again, before self-fencing would stop its run. */
ENGINE_TEST(row_locked_elsewhere_does_not_hold_back_other_leases)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s;
    pgsched_time t0, k1_before, k1_after, k2_before, k2_after;
    long long locked;
    pgsched_counters k;
    c.stall_timeout = 2 * SEC;
    c.heartbeat_interval = 200 * MS;
    p->work = 2500 * MS;
    a = start_node_with(fx, &c, "t", h_probe, p);
    s = spec_once("t", "k1", 0);
    OK(pgsched_schedule_job(a, &s, E));
    s = spec_once("t", "k2", 0);
    OK(pgsched_schedule_job(a, &s, E));
    WAIT_UNTIL(probe_inflight(p) == 2, 5000);
    /* no assertion while the transaction is open (teardown rolls it back all the same) */
    admin_exec("BEGIN");
    locked = admin_lock_row(fx, "t", "k1");
    k1_before = job_heartbeat_at(fx, "t", "k1");
    k2_before = job_heartbeat_at(fx, "t", "k2");
    t0 = mono_us();
    while (mono_us() - t0 < 1000 * MS) sleep_us(10 * MS); /* the lock is held this long */
    k1_after = job_heartbeat_at(fx, "t", "k1");
    k2_after = job_heartbeat_at(fx, "t", "k2");
    admin_exec("COMMIT");
    if (g_verbose)
        fprintf(stderr, "    while k1 was locked: k1 renewed by %lld ms, k2 by %lld ms\n",
                (long long)(k1_after - k1_before) / 1000, (long long)(k2_after - k2_before) / 1000);
    assert_int_equal(locked, 1);
    assert_true(k1_before > 0 && k2_before > 0);
    assert_true(k1_after == k1_before); /* the lock held: k1 was not renewed meanwhile */
    assert_true(k2_after - k2_before >= 400 * MS); /* k2 was, several times */
    WAIT_STATUS("t", "k1", PGSCHED_COMPLETED, 10000);
    WAIT_STATUS("t", "k2", PGSCHED_COMPLETED, 10000);
    assert_int_equal(probe_nrecs(p), 2);
    assert_int_equal(probe_rec(p, 0).saw_cancel, 0);
    assert_int_equal(probe_rec(p, 1).saw_cancel, 0);
    assert_int_equal(history_of(fx, "t", "k1", 10)->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(history_of(fx, "t", "k2", 10)->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    WAIT_UNTIL(counters_of(a).succeeded == 2, 2000);
    k = counters_of(a);
    assert_int_equal(k.lease_lost, 0);
    assert_int_equal(k.failed, 0);
}

/* A due row that another transaction holds locked is skipped by the claim but still reported
   due: the node looks again soon, then less and less often while the lock lasts, instead of
   claiming in a tight loop; once the lock is gone the job runs. */
ENGINE_TEST(locked_due_row_does_not_make_the_node_poll_in_a_tight_loop)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_time t0, t_commit;
    long long locked;
    int64_t polls;
    int ran_while_locked;
    c.poll_interval = 60 * SEC;
    a = fx_node(fx, &c);
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_init(a, E));
    OK(pgsched_schedule_job(a, &s, E));
    admin_exec("BEGIN");
    locked = admin_lock_row(fx, "t", "k");
    if (pgsched_start(a, E) != PGSCHED_OK) {
        admin_exec("ROLLBACK");
        fail_msg("pgsched_start failed: %s", fx->err.message);
    }
    t0 = mono_us();
    while (mono_us() - t0 < 3000 * MS) sleep_us(10 * MS); /* the lock is held this long */
    polls = counters_of(a).polls;
    ran_while_locked = probe_nrecs(p);
    admin_exec("COMMIT");
    t_commit = mono_us();
    if (g_verbose) fprintf(stderr, "    %lld claims in 3 s with the due row locked\n", (long long)polls);
    assert_int_equal(locked, 1);
    assert_int_equal(ran_while_locked, 0);
    assert_true(polls >= 1);
    assert_true(polls < 20);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 10000);
    if (g_verbose)
        fprintf(stderr, "    ran %lld ms after the commit\n",
                (long long)(probe_rec(p, 0).start_mono - t_commit) / 1000);
    assert_int_equal(probe_nrecs(p), 1);
}

/* After its listener reconnects, a node polls at once: notifications sent while it was away
   are lost, so only a claim finds what they announced. The job here is scheduled through a
   store that sends no notifications at all, so nothing but that claim can start it before
   the minute-long poll interval is up. */
ENGINE_TEST(listener_reconnect_makes_the_node_poll_at_once)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a;
    pgsched_store *quiet = NULL;
    pgsched_pg_config pc;
    pgsched_schedule_request q;
    pgsched_schedule_outcome o;
    char app[64], *conninfo;
    size_t len;
    pgsched_time t0;
    snprintf(app, sizeof app, "eng_relisten_%ld", (long)getpid());
    len = strlen(g_dsn) + strlen(app) + 32;
    conninfo = (char *)malloc(len);
    assert_non_null(conninfo);
    snprintf(conninfo, len, "%s application_name=%s", g_dsn, app);
    c.conninfo = conninfo;
    c.poll_interval = 60 * SEC;
    a = fx_node(fx, &c);
    free(conninfo); /* the node keeps its own copy */
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_start(a, E));
    WAIT_UNTIL(counters_of(a).polls >= 1, 5000);
    WAIT_UNTIL(admin_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
                         "AND query LIKE 'LISTEN%%'",
                         app) == 1,
               5000);
    memset(&pc, 0, sizeof pc);
    pc.conninfo = g_dsn;
    pc.schema = fx->schema;
    pc.prefix = EFX_PREFIX;
    pc.no_notifications = 1;
    assert_true(fx->nextra_stores < 4);
    OK(pgsched_pg_store_create(&pc, &quiet, E));
    fx->extra_stores[fx->nextra_stores++] = quiet;
    OK(pgsched_store_setup(quiet, E));
    memset(&q, 0, sizeof q);
    q.name = "t";
    q.key = "k";
    q.kind = PGSCHED_ONCE;
    q.max_retries = 3;
    q.node_id = "elsewhere";
    OK(pgsched_store_schedule(quiet, &q, &o, E));
    /* the node does not know of the row (a measuring window: nothing should happen) */
    t0 = mono_us();
    while (mono_us() - t0 < 300 * MS) sleep_us(10 * MS);
    assert_int_equal(probe_nrecs(p), 0);
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_PENDING);
    t0 = mono_us();
    assert_int_equal(admin_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE application_name = '%s' AND query LIKE 'LISTEN%%'",
                               app),
                     1);
    WAIT_UNTIL(probe_nrecs(p) >= 1, 5000);
    if (g_verbose)
        fprintf(stderr, "    the job started %lld ms after the listener was cut\n",
                (long long)(probe_rec(p, 0).start_mono - t0) / 1000);
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
}

/* Memory only: the caller's-transaction path needs the PostgreSQL store. */
ENGINE_TEST(schedule_tx_needs_postgresql_store)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a = start_node_with(fx, &c, "t", h_probe, fx_probe(fx));
    pgsched_job_spec s = spec_once("t", "k", 0);
    int dummy = 0;
    FAILS(PGSCHED_ERR_UNSUPPORTED,
          pgsched_schedule_job_tx(a, (struct pg_conn *)(void *)&dummy, &s, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_schedule_job_tx(a, NULL, &s, E));
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 0);
}


/* ---- memory store only ---------------------------------------------------------------------- */

typedef struct start_racer {
    pgsched_node *node;
    pthread_barrier_t *barrier;
    pgsched_result rc;
    pgsched_error err;
} start_racer;

static void *start_racer_main(void *arg)
{
    start_racer *r = (start_racer *)arg;
    pthread_barrier_wait(r->barrier);
    r->rc = pgsched_start(r->node, &r->err);
    return NULL;
}

/* pgsched_start called from two threads at once starts the node once: one call succeeds, the
   other is refused with PGSCHED_ERR_STATE, and the node then works and shuts down cleanly
   (no second set of threads, nothing leaked: ASan and TSan watch). Repeated with fresh nodes
   to let the two calls meet at different points. */
ENGINE_TEST(concurrent_start_starts_the_node_once)
{
    probe *p = fx_probe(fx);
    int round;
    for (round = 0; round < 20; round++) {
        pgsched_config c = fx_config(fx);
        pgsched_node *n;
        pthread_barrier_t barrier;
        start_racer r[2];
        pthread_t th[2];
        char key[16];
        pgsched_job_spec s;
        int i, oks = 0, refused = 0;
        n = fx_node(fx, &c);
        fx_register(fx, n, "t", h_probe, p);
        assert_int_equal(pthread_barrier_init(&barrier, NULL, 2), 0);
        for (i = 0; i < 2; i++) {
            memset(&r[i], 0, sizeof r[i]);
            r[i].node = n;
            r[i].barrier = &barrier;
            r[i].rc = (pgsched_result)-999;
        }
        for (i = 0; i < 2; i++)
            if (pthread_create(&th[i], NULL, start_racer_main, &r[i]) != 0) {
                if (i == 1) {
                    /* the first thread waits at the barrier: let it through */
                    pthread_barrier_wait(&barrier);
                    pthread_join(th[0], NULL);
                }
                pthread_barrier_destroy(&barrier);
                fail_msg("cannot create a thread");
            }
        for (i = 0; i < 2; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
        for (i = 0; i < 2; i++) {
            if (r[i].rc == PGSCHED_OK) oks++;
            if (r[i].rc == PGSCHED_ERR_STATE && r[i].err.code == PGSCHED_ERR_STATE &&
                r[i].err.message[0])
                refused++;
        }
        if (oks != 1 || refused != 1)
            fail_msg("round %d: the two starts returned %d (%s) and %d (%s)", round,
                     (int)r[0].rc, r[0].err.message, (int)r[1].rc, r[1].err.message);
        snprintf(key, sizeof key, "k%d", round);
        s = spec_once("t", key, 0);
        OK(pgsched_schedule_job(n, &s, E));
        WAIT_STATUS("t", key, PGSCHED_COMPLETED, 5000);
        OK(pgsched_shutdown(n, E));
        fx_destroy_node(fx, n);
    }
    assert_int_equal(probe_nrecs(p), 20);
}

/* The memory store's method table without its four listen_* members (a store that has no
   notifications), and one whose listen_wait always fails. Filled in by the tests (before any
   node starts) from the test store's own table. */
static pgsched_store_methods g_mem_no_listen_methods;
static pgsched_store_methods g_mem_failing_listen_methods;
static int g_failing_listen_calls; /* atomic */

static pgsched_result failing_listen_wait(pgsched_store *s, pgsched_listener *l,
                                          pgsched_duration timeout, pgsched_event *ev,
                                          size_t cap, size_t *count, pgsched_error *err)
{
    (void)s;
    (void)l;
    (void)timeout;
    (void)ev;
    (void)cap;
    __atomic_add_fetch(&g_failing_listen_calls, 1, __ATOMIC_ACQ_REL);
    *count = 0;
    return fault_fail(err, PGSCHED_ERR_CONNECTION, "listening failed (fault injected by the test)");
}

/* Runs a job scheduled by the node and one scheduled through the store by "another node". */
static void run_two_jobs(efx *fx, pgsched_node *n)
{
    pgsched_job_spec s = spec_once("t", "mine", 0);
    pgsched_schedule_request q;
    pgsched_schedule_outcome o;
    OK(pgsched_schedule_job(n, &s, E));
    memset(&q, 0, sizeof q);
    q.name = "t";
    q.key = "theirs";
    q.kind = PGSCHED_ONCE;
    q.max_retries = 3;
    q.node_id = "elsewhere";
    OK(pgsched_store_schedule(fx->store, &q, &o, E));
    WAIT_STATUS("t", "mine", PGSCHED_COMPLETED, 5000);
    WAIT_STATUS("t", "theirs", PGSCHED_COMPLETED, 5000);
}

/* A store without notifications (no listen_* methods) is fine for a node that has them on
   (the default): it starts, says so at INFO at most, and polls. */
ENGINE_TEST(store_without_notifications_is_polled_quietly)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    g_mem_no_listen_methods = *fx->store->methods;
    g_mem_no_listen_methods.listen_open = NULL;
    g_mem_no_listen_methods.listen_wait = NULL;
    g_mem_no_listen_methods.listen_wake = NULL;
    g_mem_no_listen_methods.listen_close = NULL;
    ((pgsched_store *)fx->store)->methods = &g_mem_no_listen_methods;
    assert_int_equal(c.no_notifications, 0);
    n = start_node_with(fx, &c, "t", h_probe, p);
    run_two_jobs(fx, n);
    assert_int_equal(probe_nrecs(p), 2);
    OK(pgsched_shutdown(n, E));
    assert_int_equal(fx_log_count(fx, PGSCHED_LOG_WARN), 0);
    assert_int_equal(fx_log_count(fx, PGSCHED_LOG_ERROR), 0);
}

/* A store whose listening always fails does not stop a node: it polls and runs jobs, and its
   listener asks again after a growing pause instead of at once, so an idle node sleeps. */
ENGINE_TEST(failing_listen_neither_stops_jobs_nor_spins)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_duration cpu;
    pgsched_time t0;
    int calls0, calls;
    g_mem_failing_listen_methods = *fx->store->methods;
    g_mem_failing_listen_methods.listen_wait = failing_listen_wait;
    __atomic_store_n(&g_failing_listen_calls, 0, __ATOMIC_RELEASE);
    ((pgsched_store *)fx->store)->methods = &g_mem_failing_listen_methods;
    c.poll_interval = 200 * MS;
    n = start_node_with(fx, &c, "t", h_probe, p);
    run_two_jobs(fx, n);
    assert_int_equal(probe_nrecs(p), 2);
    WAIT_UNTIL(__atomic_load_n(&g_failing_listen_calls, __ATOMIC_ACQUIRE) >= 1, 5000);
    /* a measuring window, not a wait for a condition */
    calls0 = __atomic_load_n(&g_failing_listen_calls, __ATOMIC_ACQUIRE);
    t0 = mono_us();
    cpu = process_cpu_us();
    sleep_us(1000 * MS);
    cpu = process_cpu_us() - cpu;
    t0 = mono_us() - t0;
    calls = __atomic_load_n(&g_failing_listen_calls, __ATOMIC_ACQUIRE) - calls0;
    if (g_verbose)
        fprintf(stderr, "    failing listener: %d calls, %lld us of CPU in %lld us\n", calls,
                (long long)cpu, (long long)t0);
    assert_true(calls <= 10);
    assert_true(cpu < t0 / 4);
    /* and it still runs jobs */
    {
        pgsched_job_spec s = spec_once("t", "later", 0);
        OK(pgsched_schedule_job(n, &s, E));
        WAIT_STATUS("t", "later", PGSCHED_COMPLETED, 5000);
    }
}

/* A store that reports the leases of the first renewing heartbeat busy (their rows locked by
   another transaction, as the PostgreSQL store would), and notes when renewals came. */
static pgsched_store_methods g_mem_busy_once_methods;
static const pgsched_store_methods *g_busy_base; /* the memory store's own table */
static pthread_mutex_t g_busy_mu = PTHREAD_MUTEX_INITIALIZER;
static pgsched_time g_busy_at, g_after_busy_at; /* monotonic; 0 = not yet */

static pgsched_result busy_once_heartbeat(pgsched_store *s, const char *node_id,
                                          const pgsched_lease *leases, size_t count, int renew,
                                          pgsched_lease_state *states, pgsched_time *now,
                                          pgsched_error *err)
{
    size_t i;
    pgsched_result r = g_busy_base->heartbeat(s, node_id, leases, count, renew, states, now, err);
    if (r != PGSCHED_OK || !renew || !count) return r;
    pthread_mutex_lock(&g_busy_mu);
    if (!g_busy_at) {
        g_busy_at = mono_us();
        for (i = 0; i < count; i++) states[i].busy = 1;
    } else if (!g_after_busy_at) {
        g_after_busy_at = mono_us();
    }
    pthread_mutex_unlock(&g_busy_mu);
    return r;
}

/* A lease reported busy was not renewed: the next try comes soon, as after a failed
   heartbeat, so even at the largest heartbeat interval (half the stall timeout) one busy
   moment does not let the lease age past the self-fencing limit (3/4 of it). */
ENGINE_TEST(a_busy_lease_is_renewed_again_soon_and_its_run_goes_on)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_time busy_at, after;
    g_busy_base = fx->store->methods;
    g_mem_busy_once_methods = *g_busy_base;
    g_mem_busy_once_methods.heartbeat = busy_once_heartbeat;
    pthread_mutex_lock(&g_busy_mu);
    g_busy_at = g_after_busy_at = 0;
    pthread_mutex_unlock(&g_busy_mu);
    ((pgsched_store *)fx->store)->methods = &g_mem_busy_once_methods;
    c.stall_timeout = 2 * SEC;
    c.heartbeat_interval = SEC;
    c.stall_check_period = 200 * MS;
    p->work = 2600 * MS;
    n = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 10000);
    pthread_mutex_lock(&g_busy_mu);
    busy_at = g_busy_at;
    after = g_after_busy_at;
    pthread_mutex_unlock(&g_busy_mu);
    assert_true(busy_at != 0 && after != 0);
    if (g_verbose)
        fprintf(stderr, "    renewed again %lld ms after the busy heartbeat\n",
                (long long)((after - busy_at) / 1000));
    assert_true(after - busy_at < 600 * MS);
    assert_int_equal(probe_nrecs(p), 1);
    assert_int_equal(probe_rec(p, 0).saw_cancel, 0);
    assert_int_equal(probe_rec(p, 0).rc, PGSCHED_RUN_SUCCESS);
    assert_int_equal(counters_of(n).lease_lost, 0);
}

/* A store whose first outcome write finds every row locked by another transaction (as the
   PostgreSQL store reports a row another node's claim still holds locked), and notes when
   outcomes were written after that. */
static pgsched_store_methods g_busy_finish_methods;
static pgsched_time g_finish_busy_at, g_finish_after_at; /* monotonic; 0 = not yet */

static pgsched_result busy_once_finish(pgsched_store *s, const pgsched_outcome *o, size_t count,
                                       pgsched_finish_result *res, pgsched_error *err)
{
    size_t i;
    pgsched_result r;
    pthread_mutex_lock(&g_busy_mu);
    if (!g_finish_busy_at) {
        g_finish_busy_at = mono_us();
        pthread_mutex_unlock(&g_busy_mu);
        for (i = 0; i < count; i++) {
            memset(&res[i], 0, sizeof res[i]);
            res[i].code = PGSCHED_ERR_BUSY;
        }
        if (err) err->code = PGSCHED_OK;
        return PGSCHED_OK;
    }
    pthread_mutex_unlock(&g_busy_mu);
    r = g_busy_base->finish(s, o, count, res, err);
    pthread_mutex_lock(&g_busy_mu);
    if (!g_finish_after_at && r == PGSCHED_OK) g_finish_after_at = mono_us();
    pthread_mutex_unlock(&g_busy_mu);
    return r;
}

static pgsched_time finish_written_at(void)
{
    pgsched_time t;
    pthread_mutex_lock(&g_busy_mu);
    t = g_finish_after_at;
    pthread_mutex_unlock(&g_busy_mu);
    return t;
}

/* An outcome whose row was locked a moment ago (another node's claim holds a lock on a row
   it found claimed already, until its commit) is written again within milliseconds, not a
   poll interval later; its status callback still comes once, after the write. */
ENGINE_TEST(an_outcome_whose_row_was_locked_is_written_again_within_milliseconds)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_time busy_at, after;
    g_busy_base = fx->store->methods;
    g_busy_finish_methods = *g_busy_base;
    g_busy_finish_methods.finish = busy_once_finish;
    pthread_mutex_lock(&g_busy_mu);
    g_finish_busy_at = g_finish_after_at = 0;
    pthread_mutex_unlock(&g_busy_mu);
    ((pgsched_store *)fx->store)->methods = &g_busy_finish_methods;
    c.poll_interval = 10 * SEC;
    n = start_node_with(fx, &c, "t", h_probe, p);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 10000);
    WAIT_UNTIL(finish_written_at() != 0, 2000); /* the store committed before it returned */
    pthread_mutex_lock(&g_busy_mu);
    busy_at = g_finish_busy_at;
    after = g_finish_after_at;
    pthread_mutex_unlock(&g_busy_mu);
    assert_true(busy_at != 0 && after != 0);
    if (g_verbose)
        fprintf(stderr, "    written %lld ms after the row was found locked\n",
                (long long)((after - busy_at) / 1000));
    assert_true(after - busy_at < 300 * MS);
    assert_int_equal(probe_nrecs(p), 1);
    WAIT_UNTIL(counters_of(n).succeeded == 1, 2000);
    assert_int_equal(counters_of(n).lease_lost, 0);
}

#endif /* ENGINE_SUITE_CLUSTER_H */
