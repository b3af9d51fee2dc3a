/* engine_suite_hardening.h - the engine under an outsider and under rows it did not write
   (tests/test_engine.c): notifications from a role with no grants are hints, never
   instructions; one bad row never stalls a node. */
#ifndef ENGINE_SUITE_HARDENING_H
#define ENGINE_SUITE_HARDENING_H

/* ---- an outsider on the notification channel ---------------------------------------------- */

/* A connection as a new role without any grant: all it can do is connect, LISTEN and NOTIFY
   (which need no privilege). Dropped at teardown. */
static PGconn *fx_outsider(efx *fx)
{
    const char *keys[3] = {"dbname", "user", NULL};
    const char *vals[3];
    int i = fx->nroles;
    PGconn *c;
    assert_true(i < 2);
    snprintf(fx->roles[i], sizeof fx->roles[i], "o_%ld_%d", (long)getpid(), ++g_schema_counter);
    admin_exec("CREATE ROLE \"%s\" LOGIN", fx->roles[i]);
    fx->nroles++;
    vals[0] = g_dsn;
    vals[1] = fx->roles[i];
    vals[2] = NULL;
    c = PQconnectdbParams(keys, vals, 1);
    fx->role_conns[i] = c;
    if (PQstatus(c) != CONNECTION_OK) fail_msg("outsider: %s", PQerrorMessage(c));
    return c;
}

/* The channel the test's nodes listen on. */
static const char *fx_channel(efx *fx) { return ((pgsched__pg *)(void *)fx->store)->channel; }

/* Sends `count` notifications in one transaction, the payload `text` with every "%d" replaced
   by the notification's index (so that NOTIFY does not fold them into one). */
static void outsider_notify(efx *fx, PGconn *c, int count, const char *text)
{
    PGresult *r;
    const char *vals[3];
    char last[16];
    snprintf(last, sizeof last, "%d", count - 1);
    vals[0] = fx_channel(fx);
    vals[1] = text;
    vals[2] = last;
    r = PQexecParams(c,
                     "SELECT count(pg_notify($1::text, replace($2::text, '%d', i::text))) "
                     "FROM generate_series(0, $3::int4) i",
                     3, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("outsider NOTIFY failed: %s", msg);
    }
    PQclear(r);
}

/* A NOTIFY that claims a cancel was requested does not stop the run: only the cancel request
   in the table does, and a real one still arrives at once. */
ENGINE_TEST(forged_cancel_notifications_do_not_cancel_and_real_cancels_still_arrive)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx), *pw = fx_probe(fx);
    pgsched_node *runner, *other;
    pgsched_job_spec s;
    pgsched_cancel_effect eff;
    pgsched_time t0;
    PGconn *evil = fx_outsider(fx);
    char fmt[256];
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
    s = spec_once("w", "k", 0);
    OK(pgsched_schedule_job(other, &s, E));
    WAIT_UNTIL(probe_inflight(pw) == 1, 3000);

    /* the payload of a real cancel, as anyone listening sees it */
    snprintf(fmt, sizeof fmt, "X\tw\tk\t%d\t%s\t%s", 1, pgsched_node_id(other),
             pgsched_node_id(runner));
    outsider_notify(fx, evil, 1, fmt);
    /* a later notification: once its job ran, the runner has read the forged one */
    s = spec_once("t", "k", 0);
    OK(pgsched_schedule_job(other, &s, E));
    WAIT_UNTIL(probe_finished(p) == 1, 3000);
    WAIT_UNTIL(counters_of(runner).polls >= 1, 3000);
    assert_int_equal(probe_inflight(pw), 1);
    assert_int_equal(probe_finished(pw), 0);
    assert_int_equal(job_status(fx, "w", "k"), PGSCHED_RUNNING);

    t0 = mono_us();
    OK(pgsched_cancel(other, "w", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    WAIT_UNTIL(probe_finished(pw) == 1, 3000);
    r = probe_rec(pw, 0);
    assert_int_equal(r.saw_cancel, 1);
    assert_between(r.cancel_seen_mono - t0, 0, 150 * MS);
    WAIT_STATUS("w", "k", PGSCHED_CANCELLED, 3000);
}

/* A C-payload as the store writes it: name, key, old and new status, version, node, due. */
static void forged_change(char *buf, size_t size, const char *key, const char *old_status,
                          const char *new_status, long long version, const char *node)
{
    snprintf(buf, size, "C\tt\t%s\t%s\t%s\t%lld\t%s\t", key, old_status, new_status, version,
             node);
}

/* Status changes reach on_status only when the table confirms them: a forged change with a
   version the row never had, a status the row did not have at its version, or for a row that
   does not exist, is dropped, whichever node it claims to come from; real ones still come. */
ENGINE_TEST(forged_status_events_are_not_delivered_and_real_ones_still_are)
{
    pgsched_config c = fx_config(fx), co = fx_config(fx);
    recorder *g = fx_recorder(fx, &co);
    pgsched_node *obs, *other;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_cancel_effect eff;
    PGconn *evil = fx_outsider(fx);
    static const pgsched_status seq[] = {PGSCHED_STATUS_NONE, PGSCHED_PENDING, PGSCHED_PENDING,
                                         PGSCHED_CANCELLED};
    long long v;
    char payload[512];
    c.poll_interval = co.poll_interval = 60 * SEC;
    obs = fx_node(fx, &co);
    g->node = obs;
    fx_register(fx, obs, "t", NULL, NULL);
    OK(pgsched_start(obs, E));
    other = fx_node(fx, &c);
    fx_register(fx, other, "t", NULL, NULL);
    OK(pgsched_start(other, E));
    s.schedule.at = fx_now(fx) + PGSCHED_HOUR;
    OK(pgsched_schedule_job(obs, &s, E));
    recorder_wait(g, "t", "k", 1, 3000);
    v = (long long)job_get(fx, "t", "k")->version;

    forged_change(payload, sizeof payload, "k", "pending", "completed", v + 1000000, "evil");
    outsider_notify(fx, evil, 1, payload);
    forged_change(payload, sizeof payload, "k", "pending", "failed", v, "evil");
    outsider_notify(fx, evil, 1, payload);
    forged_change(payload, sizeof payload, "k", "pending", "running", v, pgsched_node_id(obs));
    outsider_notify(fx, evil, 1, payload);
    forged_change(payload, sizeof payload, "ghost", "none", "pending", 1, "evil");
    outsider_notify(fx, evil, 1, payload);

    /* a real change after them: once it is delivered, the forged ones were read (and
       checked against the row as it was then) */
    s = spec_once("t", "mark", 0);
    s.schedule.at = fx_now(fx) + PGSCHED_HOUR;
    OK(pgsched_schedule_job(other, &s, E));
    WAIT_UNTIL(recorder_count(g, "t", "mark") == 1, 3000);
    OK(pgsched_cancel(other, "t", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_DONE);
    recorder_wait(g, "t", "k", 2, 3000);
    WAIT_UNTIL(recorder_count(g, "t", "k") >= 2, 3000);
    assert_event_sequence(g, "t", "k", seq, 2);
    assert_int_equal(recorder_count(g, "t", "ghost"), 0);
}

/* A recorder hook that holds on_status until the gate opens (or 30 s pass), and notes the
   change of key "after" (the recorder itself keeps only the first events). */
static int g_status_gate, g_after_seen;
static void rec_hook_gate(recorder *g, const pgsched_status_event *ev)
{
    pgsched_time deadline = mono_us() + 30 * SEC;
    if (ev->key && strcmp(ev->key, "after") == 0)
        __atomic_store_n(&g_after_seen, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&g_status_gate, __ATOMIC_ACQUIRE) && !fx_closing(g->fx) &&
           mono_us() < deadline)
        sleep_us(2 * MS);
}

static size_t node_callback_queue_cap(pgsched_node *n)
{
    size_t cap;
    pthread_mutex_lock(&n->cb_mu);
    cap = n->cb_cap;
    pthread_mutex_unlock(&n->cb_mu);
    return cap;
}

static size_t node_callback_queue_len(pgsched_node *n)
{
    size_t len;
    pthread_mutex_lock(&n->cb_mu);
    len = n->cb_count;
    pthread_mutex_unlock(&n->cb_mu);
    return len;
}

/* 200,000 notifications from an outsider, every one of them passing the version check (they
   name versions the row has long passed), while on_status is stuck: the node's queue of
   status events stays bounded, the node says so, and a real cancel and a real change still
   arrive. */
ENGINE_TEST(a_flood_of_forged_notifications_keeps_the_callback_queue_bounded)
{
    pgsched_config c = fx_config(fx), co = fx_config(fx);
    recorder *g = fx_recorder(fx, &co);
    probe *pw = fx_probe(fx);
    pgsched_node *obs, *other;
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_cancel_effect eff;
    PGconn *evil = fx_outsider(fx);
    pgsched_time t0;
    int warns;
    run_rec r;
    c.poll_interval = co.poll_interval = 60 * SEC;
    c.cancel_check_period = co.cancel_check_period = 60 * SEC;
    c.heartbeat_interval = co.heartbeat_interval = 10 * SEC;
    c.stall_timeout = co.stall_timeout = 60 * SEC;
    __atomic_store_n(&g_status_gate, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&g_after_seen, 0, __ATOMIC_RELEASE);
    g->hook = rec_hook_gate;
    admin_exec("SELECT setval('\"%s\".\"" EFX_PREFIX "seq\"', 10000000)", fx->schema);
    obs = fx_node(fx, &co);
    g->node = obs;
    fx_register(fx, obs, "t", NULL, NULL);
    fx_register(fx, obs, "w", h_wait_cancel, pw);
    OK(pgsched_start(obs, E));
    other = fx_node(fx, &c);
    fx_register(fx, other, "t", NULL, NULL);
    fx_register(fx, other, "w", NULL, NULL);
    OK(pgsched_start(other, E));
    s.schedule.at = fx_now(fx) + PGSCHED_HOUR;
    OK(pgsched_schedule_job(other, &s, E));
    s = spec_once("w", "k", 0);
    OK(pgsched_schedule_job(other, &s, E));
    WAIT_UNTIL(probe_inflight(pw) == 1, 3000);
    warns = fx_log_count(fx, PGSCHED_LOG_WARN);

    t0 = mono_us();
    outsider_notify(fx, evil, 200000, "C\tt\tk\tpending\trunning\t%d\tevil\t");
    if (g_verbose)
        fprintf(stderr, "    200k notifications sent in %lld ms\n",
                (long long)(mono_us() - t0) / 1000);
    t0 = mono_us();
    OK(pgsched_cancel(other, "w", "k", &eff, E));
    assert_int_equal(eff, PGSCHED_CANCEL_REQUESTED);
    WAIT_UNTIL(probe_finished(pw) == 1, 60000);
    r = probe_rec(pw, 0);
    assert_int_equal(r.saw_cancel, 1);
    if (g_verbose)
        fprintf(stderr, "    the cancel behind the flood arrived after %lld ms\n",
                (long long)(r.cancel_seen_mono - t0) / 1000);
    /* the node has read the whole flood (all but what the queue holds was dropped), and
       said so */
    WAIT_UNTIL(counters_of(obs).status_events_dropped >= 200000 - PGSCHED__CBQ_MAX, 60000);
    WAIT_UNTIL(fx_log_count(fx, PGSCHED_LOG_WARN) > warns, 10000);
    if (g_verbose)
        fprintf(stderr, "    callback queue capacity %lu (bound %d)\n",
                (unsigned long)node_callback_queue_cap(obs), PGSCHED__CBQ_MAX);
    assert_true(node_callback_queue_cap(obs) <= PGSCHED__CBQ_MAX);

    __atomic_store_n(&g_status_gate, 1, __ATOMIC_RELEASE);
    /* (a change that finds the queue still full is dropped: wait until on_status caught up) */
    WAIT_UNTIL(node_callback_queue_len(obs) == 0, 10000);
    s = spec_once("t", "after", 0);
    s.schedule.at = fx_now(fx) + PGSCHED_HOUR;
    t0 = mono_us();
    OK(pgsched_schedule_job(other, &s, E));
    WAIT_UNTIL(__atomic_load_n(&g_after_seen, __ATOMIC_ACQUIRE), 10000);
    if (g_verbose)
        fprintf(stderr, "    a real change after the flood arrived after %lld ms\n",
                (long long)(mono_us() - t0) / 1000);
}

/* ---- rows the node did not write ------------------------------------------------------------ */

/* Poison rows of the node's own type, due before a good job: one whose attempt would
   overflow (every claim of the type used to fail), one whose key no call accepts (every
   heartbeat of the node used to fail), one whose outcome cannot be written (runs at the
   largest bigint: the outcome batch used to fail forever). The good job still runs on time,
   its outcome is written, and each bad row ends failed, logged once. */
ENGINE_TEST(poison_rows_do_not_stall_a_node_and_a_good_job_runs_on_time)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n;
    pgsched_job_spec s;
    pgsched_time due;
    run_rec r;
    int errors;
    n = start_node_with(fx, &c, "t", h_probe, p);
    errors = fx_log_count(fx, PGSCHED_LOG_ERROR);
    s = spec_once("t", "attempt", fx_now(fx) + PGSCHED_HOUR);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "runs", fx_now(fx) + PGSCHED_HOUR);
    OK(pgsched_schedule_job(n, &s, E));
    admin_exec("UPDATE \"%s\".\"" EFX_PREFIX "jobs\" SET attempt = 2147483647, "
               "next_run = now() - interval '1 minute' WHERE key = 'attempt'",
               fx->schema);
    admin_exec("UPDATE \"%s\".\"" EFX_PREFIX "jobs\" SET runs = 9223372036854775807, "
               "next_run = now() - interval '1 minute' WHERE key = 'runs'",
               fx->schema);
    admin_exec("INSERT INTO \"%s\".\"" EFX_PREFIX "jobs\" (name, key, status, kind, params, "
               "max_retries, attempt, next_run, version) VALUES ('t', repeat('k', 300), "
               "'pending', 'once', '{}', 0, 0, now() - interval '1 minute', "
               "nextval('\"%s\".\"" EFX_PREFIX "seq\"'))",
               fx->schema, fx->schema);
    due = fx_now(fx) + 300 * MS;
    s = spec_once("t", "good", due);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "good", PGSCHED_COMPLETED, 5000);
    r = probe_rec(p, probe_nrecs(p) - 1);
    assert_string_equal(r.key, "good");
    assert_between(r.start_db - due, 0, 150 * MS);
    WAIT_STATUS("t", "attempt", PGSCHED_FAILED, 5000);
    WAIT_STATUS("t", "runs", PGSCHED_FAILED, 5000);
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"" EFX_PREFIX "jobs\" WHERE "
                               "status = 'failed' AND last_error LIKE 'quarantined: %%'",
                               fx->schema),
                     3);
    assert_int_equal(fx_log_count(fx, PGSCHED_LOG_ERROR) - errors, 3);
}

#endif
