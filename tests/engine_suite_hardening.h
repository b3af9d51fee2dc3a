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

#endif
