/* engine_suite_bulk.h - pgsched_schedule_jobs and pgsched_schedule_jobs_tx: many jobs in one
   call, each spec with its own result, and the same runs and status callbacks as one
   pgsched_schedule_job per spec. Part of tests/test_engine.c. */

ENGINE_TEST(schedule_jobs_writes_each_valid_spec_and_reports_each_failure)
{
    pgsched_config c = fx_config(fx);
    recorder *g = fx_recorder(fx, &c);
    probe *p = fx_probe(fx);
    pgsched_node *a = fx_node(fx, &c);
    pgsched_job_spec s[5];
    pgsched_result res[5];
    static const pgsched_status seq[] = {PGSCHED_STATUS_NONE, PGSCHED_PENDING,
                                         PGSCHED_PENDING,     PGSCHED_RUNNING,
                                         PGSCHED_RUNNING,     PGSCHED_COMPLETED};
    g->node = a;
    fx_register(fx, a, "t", h_probe, p);
    OK(pgsched_start(a, E));
    s[0] = spec_once("t", "a", 0);
    s[1] = spec_once("nope", "x", 0);
    s[2] = spec_once("t", "b", 0);
    s[3] = spec_once("t", "c", 0);
    s[3].schedule.kind = PGSCHED_CRON;
    s[3].schedule.cron = "61 * * * *";
    s[4] = spec_once("t", "d", fx_now(fx) + PGSCHED_HOUR);
    FAILS(PGSCHED_ERR_NOT_REGISTERED, pgsched_schedule_jobs(a, s, 5, res, E));
    MSG_HAS("spec 1 of 5");
    MSG_HAS("nope");
    MSG_HAS("2 failed in all");
    assert_int_equal(res[0], PGSCHED_OK);
    assert_int_equal(res[1], PGSCHED_ERR_NOT_REGISTERED);
    assert_int_equal(res[2], PGSCHED_OK);
    assert_int_equal(res[3], PGSCHED_ERR_CRON_SYNTAX);
    assert_int_equal(res[4], PGSCHED_OK);
    WAIT_STATUS("t", "a", PGSCHED_COMPLETED, 5000);
    WAIT_STATUS("t", "b", PGSCHED_COMPLETED, 5000);
    assert_int_equal(job_status(fx, "t", "d"), PGSCHED_PENDING);
    assert_int_equal(job_status(fx, "t", "c"), PGSCHED_STATUS_NONE);
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 3);
    recorder_wait(g, "t", "a", 3, 3000);
    recorder_wait(g, "t", "d", 1, 3000);
    OK(pgsched_shutdown(a, E)); /* delivers what is queued */
    assert_event_sequence(g, "t", "a", seq, 3);
    assert_event_sequence(g, "t", "b", seq, 3);
    assert_event_sequence(g, "t", "d", seq, 1);
    assert_int_equal(probe_nrecs(p), 2);
}

ENGINE_TEST(schedule_jobs_refuses_missing_arrays_and_accepts_an_empty_call)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a = fx_node(fx, &c);
    pgsched_job_spec s = spec_once("t", "a", 0);
    pgsched_result res = PGSCHED_OK;
    fx_register(fx, a, "t", NULL, NULL);
    FAILS(PGSCHED_ERR_STATE, pgsched_schedule_jobs(a, &s, 1, &res, E));
    OK(pgsched_start(a, E));
    OK(pgsched_schedule_jobs(a, NULL, 0, NULL, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_schedule_jobs(a, &s, 1, NULL, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_schedule_jobs(a, NULL, 1, &res, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_schedule_jobs(NULL, &s, 1, &res, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_schedule_jobs_tx(a, NULL, &s, 1, &res, E));
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 0);
    OK(pgsched_schedule_jobs(a, &s, 1, &res, E));
    assert_int_equal(res, PGSCHED_OK);
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 1);
}

/* PostgreSQL only: the jobs exist if and only if the caller's transaction commits, and
   then run. */
ENGINE_TEST(schedule_jobs_in_caller_transaction)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *a = start_node_with(fx, &c, "t", h_probe, p);
    pgsched_job_spec s[3];
    pgsched_result res[3];
    s[0] = spec_once("t", "a", 0);
    s[1] = spec_once("t", "b", 0);
    s[2] = spec_once("t", "", 0);
    admin_exec("BEGIN");
    FAILS(PGSCHED_ERR_KEY, pgsched_schedule_jobs_tx(a, (struct pg_conn *)g_admin, s, 3, res, E));
    MSG_HAS("spec 2 of 3");
    admin_exec("ROLLBACK");
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 0);
    s[0].key = "c";
    admin_exec("BEGIN");
    OK(pgsched_schedule_jobs_tx(a, (struct pg_conn *)g_admin, s, 2, res, E));
    assert_int_equal(job_status(fx, "t", "c"), PGSCHED_STATUS_NONE);
    admin_exec("COMMIT");
    WAIT_STATUS("t", "c", PGSCHED_COMPLETED, 3000);
    WAIT_STATUS("t", "b", PGSCHED_COMPLETED, 3000);
    assert_int_equal(probe_nrecs(p), 2);
    assert_int_equal(job_status(fx, "t", "a"), PGSCHED_STATUS_NONE);
}
