/* engine_suite_config.h - configuration, the node's states, and bad input (SPEC §6, §10). */
#ifndef ENGINE_SUITE_CONFIG_H
#define ENGINE_SUITE_CONFIG_H

/* Expects pgsched_create(cfg) to fail with `code` and a message naming `field`. */
static void create_fails(efx *fx, const pgsched_config *cfg, pgsched_result code,
                         const char *field)
{
    pgsched_node *n = (pgsched_node *)(uintptr_t)1;
    FAILS(code, pgsched_create(cfg, &n, E));
    if (n != NULL) fail_msg("a failed pgsched_create left *out set");
    MSG_HAS(field);
}

/* §12: negative durations crashed the original; here each is refused, naming its field. */
ENGINE_TEST(config_negative_durations_rejected)
{
    static const char *const fields[] = {
        "poll_interval", "heartbeat_interval", "stall_timeout", "cancel_check_period",
        "retry_base", "retry_cap", "shutdown_timeout", "finished_retention",
        "history_retention", "orphan_timeout", "stall_check_period", "cleanup_period"};
    size_t i;
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        pgsched_config c = fx_config(fx);
        pgsched_duration *f = NULL;
        if (i == 0) f = &c.poll_interval;
        if (i == 1) f = &c.heartbeat_interval;
        if (i == 2) f = &c.stall_timeout;
        if (i == 3) f = &c.cancel_check_period;
        if (i == 4) f = &c.retry_base;
        if (i == 5) f = &c.retry_cap;
        if (i == 6) f = &c.shutdown_timeout;
        if (i == 7) f = &c.finished_retention;
        if (i == 8) f = &c.history_retention;
        if (i == 9) f = &c.orphan_timeout;
        if (i == 10) f = &c.stall_check_period;
        if (i == 11) f = &c.cleanup_period;
        *f = -1;
        create_fails(fx, &c, PGSCHED_ERR_CONFIG, fields[i]);
        *f = INT64_MIN;
        create_fails(fx, &c, PGSCHED_ERR_CONFIG, fields[i]);
    }
    /* and in a job type */
    {
        pgsched_config c = fx_config(fx);
        pgsched_node *n = fx_node(fx, &c);
        pgsched_job_type t = type_of("neg", h_probe, NULL);
        t.timeout = -5;
        FAILS(PGSCHED_ERR_CONFIG, pgsched_register(n, &t, E));
        MSG_HAS("timeout");
        t.timeout = 0;
        t.retry_base = -1;
        FAILS(PGSCHED_ERR_CONFIG, pgsched_register(n, &t, E));
        MSG_HAS("retry_base");
        t.retry_base = 0;
        t.retry_cap = -1;
        FAILS(PGSCHED_ERR_CONFIG, pgsched_register(n, &t, E));
        MSG_HAS("retry_cap");
    }
}

/* Runs are stopped when their lease went unrenewed for 3/4 of the stall timeout: a heartbeat
   interval above half of it leaves no room for one failed heartbeat, and is refused (naming
   the field); exactly half is the largest accepted. */
ENGINE_TEST(config_heartbeat_above_half_stall_rejected)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n;
    c.stall_timeout = 4 * SEC;
    c.heartbeat_interval = 3 * SEC; /* below the stall timeout, above half of it */
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "heartbeat_interval");
    c.heartbeat_interval = 2 * SEC + 1; /* one microsecond above half */
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "heartbeat_interval");
    c.heartbeat_interval = 4 * SEC; /* equal to the stall timeout */
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "heartbeat_interval");
    c.heartbeat_interval = 8 * SEC;
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "heartbeat_interval");
    /* exactly half is accepted */
    c.heartbeat_interval = 2 * SEC;
    n = fx_node(fx, &c);
    assert_non_null(n);
    /* a default heartbeat follows a short stall timeout */
    c.heartbeat_interval = 0;
    c.stall_timeout = 300 * MS;
    n = fx_node(fx, &c);
    assert_non_null(n);
}

ENGINE_TEST(config_max_concurrent_out_of_range_rejected)
{
    pgsched_config c = fx_config(fx);
    c.max_concurrent = -1;
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "max_concurrent");
    c.max_concurrent = 1025;
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "max_concurrent");
    c.max_concurrent = 1024;
    fx_node(fx, &c); /* the limit itself is fine (no threads until start) */
}

ENGINE_TEST(config_retry_base_above_cap_rejected)
{
    pgsched_config c = fx_config(fx);
    c.retry_base = 2 * SEC;
    c.retry_cap = SEC;
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "retry_base");
    /* the default cap (10 min) is below a base of an hour */
    c.retry_base = PGSCHED_HOUR;
    c.retry_cap = 0;
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "retry_base");
}

/* §12: identifiers were pasted into SQL; here schema and prefix must be plain SQL names. */
ENGINE_TEST(config_bad_identifiers_rejected)
{
    static const char *const bad[] = {"bad-name", "1abc", "a\"b", "x; DROP TABLE y", "",
                                      "sp ace", "caf\xc3\xa9", "a.b"};
    char longname[80];
    size_t i;
    pgsched_config c;
    memset(longname, 'a', 64);
    longname[64] = '\0';
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = fx_config(fx);
        c.store = NULL;
        c.conninfo = "host=/nonexistent dbname=nothing";
        c.schema = bad[i];
        create_fails(fx, &c, PGSCHED_ERR_IDENTIFIER, "schema");
        c.schema = NULL;
        c.prefix = bad[i];
        create_fails(fx, &c, PGSCHED_ERR_IDENTIFIER, "prefix");
    }
    c = fx_config(fx);
    c.store = NULL;
    c.conninfo = "host=/nonexistent dbname=nothing";
    c.schema = longname;
    create_fails(fx, &c, PGSCHED_ERR_IDENTIFIER, "schema");
    c.schema = NULL;
    c.prefix = longname + 4; /* 60 bytes: too long once a table suffix ("jobs") is added */
    create_fails(fx, &c, PGSCHED_ERR_IDENTIFIER, "prefix");
    /* plain names are accepted (and nothing is connected yet) */
    c.schema = "Good_Schema1";
    c.prefix = "p_";
    fx_node(fx, &c);
}

ENGINE_TEST(config_unknown_default_zone_rejected)
{
    pgsched_config c = fx_config(fx);
    c.default_zone = "Mars/Olympus_Mons";
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "default_zone");
    c.default_zone = "Europe/Berlin";
    fx_node(fx, &c);
}

ENGINE_TEST(config_needs_store_or_conninfo)
{
    pgsched_config c;
    pgsched_node *n = NULL;
    memset(&c, 0, sizeof c);
    create_fails(fx, &c, PGSCHED_ERR_CONFIG, "store");
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_create(NULL, &n, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_create(&c, NULL, E));
}

/* pgsched_create does no I/O: an unreachable database is only noticed by pgsched_init. */
ENGINE_TEST(create_does_no_io_init_reports_connection)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    c.store = NULL;
    c.conninfo = "host=127.0.0.1 port=1 dbname=nothing connect_timeout=2";
    n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_probe, fx_probe(fx));
    FAILS(PGSCHED_ERR_CONNECTION, pgsched_init(n, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_schedule_job(n, &s, E));
    FAILS(PGSCHED_ERR_CONNECTION, pgsched_start(n, E));
    OK(pgsched_shutdown(n, E));
}

/* A configuration with nothing but the store works: zero fields are defaults. */
ENGINE_TEST(config_zero_fields_take_defaults)
{
    pgsched_config c;
    pgsched_node *n;
    probe *p = fx_probe(fx);
    pgsched_job_spec s = spec_once("t", "k", 0);
    memset(&c, 0, sizeof c);
    if (fx->pg) {
        c.conninfo = g_dsn;
        c.schema = fx->schema;
        c.prefix = EFX_PREFIX;
    } else {
        c.store = fx->store;
    }
    c.log = fx_log;
    c.log_user = fx;
    n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_probe, p);
    OK(pgsched_start(n, E));
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_int_equal(job_get(fx, "t", "k")->max_retries, 3);
}

ENGINE_TEST(register_rules_enforced)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_type t = type_of("t", h_probe, fx_probe(fx));
    char longname[PGSCHED_NAME_MAX + 2];
    OK(pgsched_register(n, &t, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_register(n, &t, E));
    MSG_HAS("t");
    t.name = "";
    FAILS(PGSCHED_ERR_NAME, pgsched_register(n, &t, E));
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    t.name = longname;
    FAILS(PGSCHED_ERR_NAME, pgsched_register(n, &t, E));
    t.name = "u";
    t.max_retries = -2;
    FAILS(PGSCHED_ERR_CONFIG, pgsched_register(n, &t, E));
    MSG_HAS("max_retries");
    t.max_retries = 0;
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_register(n, NULL, E));
    OK(pgsched_start(n, E));
    t.name = "late";
    FAILS(PGSCHED_ERR_STATE, pgsched_register(n, &t, E));
}

ENGINE_TEST(start_twice_refused)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    fx_register(fx, n, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(n, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_start(n, E));
    MSG_HAS("started");
    OK(pgsched_init(n, E)); /* init after start is a no-op */
}

ENGINE_TEST(calls_before_init_refused)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    probe *p = fx_probe(fx);
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_job_list *l = fx_jlist(fx);
    pgsched_run_list *rl = fx_rlist(fx);
    pgsched_cancel_effect ce;
    pgsched_remove_effect re;
    fx_register(fx, n, "t", h_probe, p);
    FAILS(PGSCHED_ERR_STATE, pgsched_schedule_job(n, &s, E));
    MSG_HAS("init");
    FAILS(PGSCHED_ERR_STATE, pgsched_cancel(n, "t", "k", &ce, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_unschedule(n, "t", "k", &re, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_trigger(n, "t", "k", E));
    FAILS(PGSCHED_ERR_STATE, pgsched_get(n, "t", "k", l, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_list(n, NULL, l, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_history(n, "t", "k", 10, rl, E));
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 0);
    /* after init (not started): scheduling works, nothing runs */
    OK(pgsched_init(n, E));
    OK(pgsched_schedule_job(n, &s, E));
    assert_int_equal(job_get(fx, "t", "k")->status, PGSCHED_PENDING);
    assert_int_equal(probe_nrecs(p), 0);
}

ENGINE_TEST(calls_after_shutdown_refused)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_spec s = spec_once("t", "k", 0);
    pgsched_job_list *l = fx_jlist(fx);
    pgsched_run_list *rl = fx_rlist(fx);
    pgsched_cancel_effect ce;
    pgsched_remove_effect re;
    pgsched_job_type t = type_of("u", h_probe, NULL);
    fx_register(fx, n, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(n, E));
    OK(pgsched_shutdown(n, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_schedule_job(n, &s, E));
    MSG_HAS("shut down");
    FAILS(PGSCHED_ERR_STATE, pgsched_cancel(n, "t", "k", &ce, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_unschedule(n, "t", "k", &re, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_trigger(n, "t", "k", E));
    FAILS(PGSCHED_ERR_STATE, pgsched_get(n, "t", "k", l, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_list(n, NULL, l, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_history(n, NULL, NULL, 10, rl, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_init(n, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_start(n, E));
    FAILS(PGSCHED_ERR_STATE, pgsched_register(n, &t, E));
    OK(pgsched_shutdown(n, E));
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 0);
}

/* §12: a second shutdown crashed the original. Shutdown is idempotent and fine in any state. */
ENGINE_TEST(shutdown_idempotent_in_every_state)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a = fx_node(fx, &c), *b = fx_node(fx, &c), *d = fx_node(fx, &c),
                 *e = fx_node(fx, &c);
    fx_register(fx, a, "t", h_probe, fx_probe(fx));
    /* never started */
    OK(pgsched_shutdown(a, E));
    OK(pgsched_shutdown(a, E));
    fx_destroy_node(fx, a);
    /* initialised only */
    OK(pgsched_init(b, E));
    OK(pgsched_shutdown(b, E));
    OK(pgsched_shutdown(b, E));
    fx_destroy_node(fx, b);
    /* started */
    fx_register(fx, d, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(d, E));
    OK(pgsched_shutdown(d, E));
    OK(pgsched_shutdown(d, E));
    OK(pgsched_shutdown(d, E));
    fx_destroy_node(fx, d);
    /* destroyed without shutdown (destroy shuts down) */
    fx_register(fx, e, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(e, E));
    fx_destroy_node(fx, e);
    pgsched_destroy(NULL);
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_shutdown(NULL, E));
}

/* A node on a store the caller created leaves it alone. */
ENGINE_TEST(node_leaves_user_store_alone)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n;
    pgsched_job_spec s = spec_once("t", "k", 0);
    probe *p = fx_probe(fx);
    c.store = fx->store; /* on PostgreSQL too */
    c.conninfo = NULL;
    n = fx_node(fx, &c);
    assert_ptr_equal(pgsched_node_store(n), fx->store);
    fx_register(fx, n, "t", h_probe, p);
    OK(pgsched_start(n, E));
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    fx_destroy_node(fx, n);
    /* the store still works */
    fx_now(fx);
    assert_int_equal(job_get(fx, "t", "k")->status, PGSCHED_COMPLETED);
}

ENGINE_TEST(schedule_unregistered_type_refused)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_spec s = spec_once("nope", "k", 0);
    fx_register(fx, n, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(n, E));
    FAILS(PGSCHED_ERR_NOT_REGISTERED, pgsched_schedule_job(n, &s, E));
    MSG_HAS("nope");
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 0);
}

/* Bad specs: each a specific code and message; no row written, nothing left running. */
ENGINE_TEST(schedule_bad_specs_refused)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_spec s;
    char longkey[PGSCHED_KEY_MAX + 2];
    fx_register(fx, n, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(n, E));
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';

    s = spec_once("t", "", 0);
    FAILS(PGSCHED_ERR_KEY, pgsched_schedule_job(n, &s, E));
    s = spec_once("t", longkey, 0);
    FAILS(PGSCHED_ERR_KEY, pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "bad\xff", 0);
    {
        pgsched_result rc = pgsched_schedule_job(n, &s, E);
        if (rc != PGSCHED_ERR_KEY && rc != PGSCHED_ERR_UTF8)
            fail_msg("invalid UTF-8 key gave %d (%s)", (int)rc, fx->err.message);
    }
    s = spec_once("t", "k", 0);
    s.params = "{bad json";
    FAILS(PGSCHED_ERR_JSON, pgsched_schedule_job(n, &s, E));
    s.params = "{\"a\":1} {\"b\":2}";
    FAILS(PGSCHED_ERR_JSON, pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "k", -5);
    FAILS(PGSCHED_ERR_TIME_RANGE, pgsched_schedule_job(n, &s, E));
    s = spec_interval("t", "k", 0);
    FAILS(PGSCHED_ERR_SCHEDULE, pgsched_schedule_job(n, &s, E));
    MSG_HAS("interval");
    s = spec_interval("t", "k", -SEC);
    FAILS(PGSCHED_ERR_SCHEDULE, pgsched_schedule_job(n, &s, E));
    s = spec_cron("t", "k", "61 * * * *");
    FAILS(PGSCHED_ERR_CRON_SYNTAX, pgsched_schedule_job(n, &s, E));
    MSG_HAS("minute");
    s = spec_cron("t", "k", NULL);
    FAILS(PGSCHED_ERR_CRON_SYNTAX, pgsched_schedule_job(n, &s, E));
    s = spec_cron("t", "k", "CRON_TZ=Nowhere/Atlantis 0 0 * * *");
    FAILS(PGSCHED_ERR_ZONE_UNKNOWN, pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "k", 0);
    s.schedule.kind = (pgsched_schedule_kind)99;
    FAILS(PGSCHED_ERR_SCHEDULE, pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "k", 0);
    s.max_retries = -5;
    FAILS(PGSCHED_ERR_SCHEDULE, pgsched_schedule_job(n, &s, E));
    s = spec_once("t", "k", 0);
    s.schedule.kind = PGSCHED_CUSTOM; /* the type has no next_run callback */
    FAILS(PGSCHED_ERR_SCHEDULE, pgsched_schedule_job(n, &s, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_schedule_job(n, NULL, E));
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 0);
    assert_none_running(fx);
}

/* §12: an unsatisfiable cron made the original run the job at every poll. */
ENGINE_TEST(unsatisfiable_cron_rejected_at_schedule)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_spec s = spec_cron("t", "feb30", "0 0 30 2 *");
    fx_register(fx, n, "t", h_probe, fx_probe(fx));
    OK(pgsched_start(n, E));
    FAILS(PGSCHED_ERR_CRON_NEVER, pgsched_schedule_job(n, &s, E));
    s = spec_cron("t", "apr31", "0 0 31 4 *");
    FAILS(PGSCHED_ERR_CRON_NEVER, pgsched_schedule_job(n, &s, E));
    assert_int_equal(count_rows(fx, NULL, PGSCHED_STATUS_NONE), 0);
}

/* max_retries: 0 = the type's default (itself 3 by default), PGSCHED_NO_RETRIES = none. */
ENGINE_TEST(max_retries_defaults_resolved)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_type t;
    pgsched_job_spec s;
    pgsched_time far = fx_now(fx) + PGSCHED_HOUR;
    t = type_of("dflt", h_probe, NULL);
    OK(pgsched_register(n, &t, E));
    t = type_of("five", h_probe, NULL);
    t.max_retries = 5;
    OK(pgsched_register(n, &t, E));
    t = type_of("none", h_probe, NULL);
    t.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_register(n, &t, E));
    OK(pgsched_init(n, E));
    s = spec_once("dflt", "a", far);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("five", "a", far);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("none", "a", far);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("five", "b", far);
    s.max_retries = PGSCHED_NO_RETRIES;
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("none", "b", far);
    s.max_retries = 7;
    OK(pgsched_schedule_job(n, &s, E));
    assert_int_equal(job_get(fx, "dflt", "a")->max_retries, 3);
    assert_int_equal(job_get(fx, "five", "a")->max_retries, 5);
    assert_int_equal(job_get(fx, "none", "a")->max_retries, 0);
    assert_int_equal(job_get(fx, "five", "b")->max_retries, 0);
    assert_int_equal(job_get(fx, "none", "b")->max_retries, 7);
}

/* A type registered without a handler can be scheduled here but only runs elsewhere. */
ENGINE_TEST(handlerless_type_scheduled_not_run)
{
    pgsched_config c = fx_config(fx);
    pgsched_node *a = fx_node(fx, &c), *b;
    probe *p = fx_probe(fx);
    pgsched_job_spec s = spec_once("t", "k", 0);
    int64_t polls;
    fx_register(fx, a, "t", NULL, NULL);
    fx_register(fx, a, "u", h_probe, fx_probe(fx)); /* so that a polls */
    OK(pgsched_start(a, E));
    OK(pgsched_schedule_job(a, &s, E));
    polls = counters_of(a).polls;
    WAIT_UNTIL(counters_of(a).polls >= polls + 3, 5000);
    /* a has no handler for t: it never claims it, however often it polls */
    assert_int_equal(job_status(fx, "t", "k"), PGSCHED_PENDING);
    assert_int_equal(counters_of(a).claimed, 0);
    b = fx_node(fx, &c);
    fx_register(fx, b, "t", h_probe, p);
    OK(pgsched_start(b, E));
    WAIT_STATUS("t", "k", PGSCHED_COMPLETED, 5000);
    assert_int_equal(counters_of(a).claimed, 0);
    assert_int_equal(counters_of(b).claimed, 1);
    assert_string_equal(probe_rec(p, 0).node, pgsched_node_id(b));
}

#endif /* ENGINE_SUITE_CONFIG_H */
