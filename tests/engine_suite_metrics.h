/* engine_suite_metrics.h - the node's counters per job type, its histograms, its connection
   state and their Prometheus text exposition (pgsched_metrics_prometheus). */
#ifndef ENGINE_SUITE_METRICS_H
#define ENGINE_SUITE_METRICS_H

/* The counters of type `name` on node n (fails the test when there is no such type). */
static pgsched_type_counters type_counters_of(pgsched_node *n, const char *name)
{
    pgsched_type_counters tc[16];
    size_t count = pgsched_get_type_counters(n, tc, 16), i;
    for (i = 0; i < count && i < 16; i++)
        if (strcmp(tc[i].name, name) == 0) return tc[i];
    fail_msg("no counters for job type %s", name);
    memset(&tc[0], 0, sizeof tc[0]);
    return tc[0];
}

static int64_t hist_total(const pgsched_histogram *h)
{
    int64_t t = 0;
    size_t i;
    for (i = 0; i < PGSCHED_HISTOGRAM_BUCKETS; i++) t += h->buckets[i];
    return t;
}

/* The whole exposition text (heap; the test frees it). */
static char *metrics_text(pgsched_node *n)
{
    size_t len = pgsched_metrics_prometheus(n, NULL, 0);
    char *buf = (char *)malloc(len + 1);
    assert_non_null(buf);
    assert_int_equal(pgsched_metrics_prometheus(n, buf, len + 1), len);
    assert_int_equal(strlen(buf), len);
    return buf;
}

/* The value of the sample line that starts with `series` followed by a space. */
static long long sample_of(const char *text, const char *series)
{
    const char *p = text;
    size_t n = strlen(series);
    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') return atoll(p + n + 1);
        p += n;
    }
    fail_msg("no sample %s in:\n%s", series, text);
    return -1;
}

ENGINE_TEST(histogram_bounds_are_the_documented_ones)
{
    static const pgsched_duration want[] = {1 * MS,   2500,     5 * MS,   10 * MS,
                                            25 * MS,  50 * MS,  100 * MS, 250 * MS,
                                            500 * MS, 1 * SEC,  2500 * MS, 5 * SEC,
                                            10 * SEC, 30 * SEC, 60 * SEC};
    size_t i;
    (void)fx;
    assert_int_equal(sizeof want / sizeof want[0], PGSCHED_HISTOGRAM_BUCKETS - 1);
    for (i = 0; i + 1 < PGSCHED_HISTOGRAM_BUCKETS; i++)
        assert_int_equal(pgsched_histogram_bound(i), want[i]);
    assert_int_equal(pgsched_histogram_bound(PGSCHED_HISTOGRAM_BUCKETS - 1), PGSCHED_NEVER);
    assert_int_equal(pgsched_histogram_bound(1000), PGSCHED_NEVER);
}

/* Runs of three types end in success, failure after a retry, and cancel: each type's
   counters say so, they add up to the node's, and every claim and run is in a histogram. */
ENGINE_TEST(type_counters_count_runs_by_outcome)
{
    pgsched_config c = fx_config(fx);
    probe *ok = fx_probe(fx), *bad = fx_probe(fx), *waits = fx_probe(fx);
    pgsched_node *n = fx_node(fx, &c);
    pgsched_job_type t;
    pgsched_job_spec s;
    pgsched_type_counters tc[8], a, b, w;
    pgsched_counters k;
    pgsched_cancel_effect eff;
    size_t count;
    bad->fail_first = 100;
    waits->wait_cancel = 1;
    fx_register(fx, n, "ok", h_probe, ok);
    t = type_of("bad", h_probe, bad);
    t.max_retries = 1;
    t.retry_base = 10 * MS;
    t.retry_cap = 10 * MS;
    OK(pgsched_register(n, &t, E));
    fx_register(fx, n, "waits", h_probe, waits);
    fx_register(fx, n, "idle", NULL, NULL); /* schedules only: counted, always 0 */
    OK(pgsched_start(n, E));

    s = spec_once("ok", "k1", 0);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("ok", "k2", 0);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("bad", "k", 0);
    OK(pgsched_schedule_job(n, &s, E));
    s = spec_once("waits", "k", 0);
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(probe_inflight(waits) == 1, 5000);
    WAIT_UNTIL(type_counters_of(n, "ok").succeeded == 2, 5000);
    WAIT_UNTIL(type_counters_of(n, "bad").failed == 2, 5000);
    w = type_counters_of(n, "waits");
    assert_int_equal(w.running, 1);
    assert_int_equal(w.claimed, 1);
    OK(pgsched_cancel(n, "waits", "k", &eff, E));
    WAIT_UNTIL(type_counters_of(n, "waits").cancelled == 1, 5000);
    WAIT_UNTIL(counters_of(n).running == 0, 2000);

    /* registration order; a short array gets the first ones and the full count */
    count = pgsched_get_type_counters(n, tc, 8);
    assert_int_equal(count, 4);
    assert_string_equal(tc[0].name, "ok");
    assert_string_equal(tc[1].name, "bad");
    assert_string_equal(tc[2].name, "waits");
    assert_string_equal(tc[3].name, "idle");
    assert_int_equal(tc[3].claimed + tc[3].succeeded + tc[3].failed + tc[3].running, 0);
    memset(tc, 0, sizeof tc);
    assert_int_equal(pgsched_get_type_counters(n, tc, 1), 4);
    assert_string_equal(tc[0].name, "ok");
    assert_null(tc[1].name);
    assert_int_equal(pgsched_get_type_counters(n, NULL, 0), 4);

    a = type_counters_of(n, "ok");
    b = type_counters_of(n, "bad");
    w = type_counters_of(n, "waits");
    assert_int_equal(a.claimed, 2);
    assert_int_equal(a.succeeded, 2);
    assert_int_equal(a.failed + a.retried + a.cancelled + a.running, 0);
    assert_int_equal(b.claimed, 2);
    assert_int_equal(b.failed, 2);
    assert_int_equal(b.retried, 1);
    assert_int_equal(b.succeeded + b.running, 0);
    assert_int_equal(w.cancelled, 1);
    assert_int_equal(w.running, 0);

    k = counters_of(n);
    assert_int_equal(k.claimed, a.claimed + b.claimed + w.claimed);
    assert_int_equal(k.succeeded, a.succeeded + b.succeeded + w.succeeded);
    assert_int_equal(k.failed, a.failed + b.failed + w.failed);
    assert_int_equal(k.retried, a.retried + b.retried + w.retried);
    assert_int_equal(k.cancelled, a.cancelled + b.cancelled + w.cancelled);
    assert_int_equal(k.connected, 1);
    assert_int_equal(k.connection_errors, 0);
    /* every claim statement and every run start is one observation */
    assert_int_equal(k.claim_latency.count, k.polls);
    assert_int_equal(hist_total(&k.claim_latency), k.claim_latency.count);
    assert_int_equal(k.claim_latency.sum, k.claim_latency_total);
    assert_int_equal(k.start_delay.count, k.claimed);
    assert_int_equal(hist_total(&k.start_delay), k.start_delay.count);
    assert_int_equal(k.start_delay.sum, k.start_delay_total);
}

/* Every family has its HELP and TYPE lines before its samples, job type names are escaped as
   label values, the histograms are cumulative and end in +Inf = _count. */
ENGINE_TEST(prometheus_text_has_every_family_and_escapes_labels)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "we\"ird\\name", h_probe, p);
    pgsched_job_spec s = spec_once("we\"ird\\name", "k", 0);
    static const char *const families[] = {
        "pgsched_node_info gauge",
        "pgsched_store_connected gauge",
        "pgsched_connection_errors_total counter",
        "pgsched_claim_statements_total counter",
        "pgsched_stalled_taken_back_total counter",
        "pgsched_status_events_dropped_total counter",
        "pgsched_claimed_total counter",
        "pgsched_runs_total counter",
        "pgsched_retries_total counter",
        "pgsched_lease_lost_total counter",
        "pgsched_running gauge",
        "pgsched_claim_duration_seconds histogram",
        "pgsched_start_delay_seconds histogram",
    };
    char *text, line[256], *l;
    size_t i;
    long long prev, v, polls;
    OK(pgsched_schedule_job(n, &s, E));
    WAIT_UNTIL(counters_of(n).succeeded == 1, 5000);
    text = metrics_text(n);

    for (i = 0; i < sizeof families / sizeof families[0]; i++) {
        char name[64], help[80], type[96];
        const char *h, *ty, *sample;
        sscanf(families[i], "%63s", name);
        snprintf(help, sizeof help, "# HELP %s ", name);
        snprintf(type, sizeof type, "# TYPE %s", families[i]);
        h = strstr(text, help);
        ty = strstr(text, type);
        if (!h || !ty) fail_msg("no HELP/TYPE for %s in:\n%s", families[i], text);
        assert_true(h < ty);
        /* the first sample of the family comes after its TYPE line */
        snprintf(line, sizeof line, "\n%s", name);
        sample = strstr(text, line);
        while (sample && (sample[1 + strlen(name)] != ' ' && sample[1 + strlen(name)] != '{' &&
                          sample[1 + strlen(name)] != '_'))
            sample = strstr(sample + 1, line);
        assert_non_null(sample);
        assert_true(sample > ty);
    }
    /* every line is a comment or `series value` */
    for (l = text; *l; l = strchr(l, '\n') + 1) {
        const char *sp;
        size_t len = (size_t)(strchr(l, '\n') - l);
        assert_true(len < sizeof line);
        memcpy(line, l, len);
        line[len] = '\0';
        if (line[0] == '#') continue;
        sp = strrchr(line, ' ');
        assert_non_null(sp);
        assert_true(strncmp(line, "pgsched_", 8) == 0);
        assert_true(sp[1] == '-' || (sp[1] >= '0' && sp[1] <= '9'));
    }
    assert_int_equal(text[strlen(text) - 1], '\n');

    snprintf(line, sizeof line, "pgsched_node_info{node=\"%s\"}", pgsched_node_id(n));
    assert_int_equal(sample_of(text, line), 1);
    assert_int_equal(sample_of(text, "pgsched_store_connected"), 1);
    assert_int_equal(
        sample_of(text, "pgsched_runs_total{job_type=\"we\\\"ird\\\\name\",outcome=\"success\"}"),
        1);
    assert_int_equal(
        sample_of(text, "pgsched_runs_total{job_type=\"we\\\"ird\\\\name\",outcome=\"failure\"}"),
        0);
    assert_int_equal(sample_of(text, "pgsched_claimed_total{job_type=\"we\\\"ird\\\\name\"}"), 1);
    assert_int_equal(sample_of(text, "pgsched_running{job_type=\"we\\\"ird\\\\name\"}"), 0);

    /* cumulative buckets; the start delay of the one run is in them */
    prev = 0;
    for (i = 0; i < PGSCHED_HISTOGRAM_BUCKETS; i++) {
        char series[128], le[32];
        pgsched_duration b = pgsched_histogram_bound(i);
        if (b == PGSCHED_NEVER) snprintf(le, sizeof le, "+Inf");
        else if (b % SEC == 0) snprintf(le, sizeof le, "%lld", (long long)(b / SEC));
        else snprintf(le, sizeof le, "%g", (double)b / 1e6);
        snprintf(series, sizeof series, "pgsched_start_delay_seconds_bucket{le=\"%s\"}", le);
        v = sample_of(text, series);
        assert_true(v >= prev);
        prev = v;
    }
    assert_int_equal(prev, 1);
    assert_int_equal(sample_of(text, "pgsched_start_delay_seconds_count"), 1);
    polls = sample_of(text, "pgsched_claim_statements_total");
    assert_true(polls >= 1);
    assert_int_equal(sample_of(text, "pgsched_claim_duration_seconds_count"), polls);
    assert_int_equal(sample_of(text, "pgsched_claim_duration_seconds_bucket{le=\"+Inf\"}"), polls);
    free(text);
}

/* Sized like snprintf: the length of the whole text whatever the buffer, a cut text that is a
   NUL-terminated prefix of the whole. */
ENGINE_TEST(prometheus_text_sized_like_snprintf)
{
    pgsched_config c = fx_config(fx);
    probe *p = fx_probe(fx);
    pgsched_node *n = start_node_with(fx, &c, "t", h_probe, p);
    char *whole, small[40];
    size_t len;
    whole = metrics_text(n);
    len = strlen(whole);
    assert_true(len > sizeof small);
    memset(small, 'x', sizeof small);
    /* the counters can move between calls; the node is idle, and its text's length stays */
    assert_int_equal(pgsched_metrics_prometheus(n, small, sizeof small), len);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, whole, sizeof small - 1);
    small[0] = 'x';
    assert_int_equal(pgsched_metrics_prometheus(n, small, 1), len);
    assert_int_equal(small[0], '\0');
    assert_int_equal(pgsched_metrics_prometheus(NULL, small, sizeof small), 0);
    assert_int_equal(small[0], '\0');
    free(whole);
}

/* A store that cannot be reached shows as pgsched_store_connected 0 and counted errors, and
   as 1 again once it answers. The node runs no type (it never claims): its heartbeats are
   its only statements. */
ENGINE_TEST(connection_state_follows_the_store)
{
    fault_store *w = fx_fault_store(fx);
    pgsched_config c = fx_config_on(fx, w);
    pgsched_node *n;
    char *text;
    int64_t errors;
    c.heartbeat_interval = 50 * MS;
    c.stall_timeout = 2 * SEC;
    n = fx_node(fx, &c);
    fx_register(fx, n, "idle", NULL, NULL);
    OK(pgsched_start(n, E));
    WAIT_UNTIL(counters_of(n).connected == 1, 3000);
    assert_int_equal(counters_of(n).connection_errors, 0);
    FAULT_SET(w->heartbeat_mode, FAULT_HB_FAIL);
    WAIT_UNTIL(counters_of(n).connected == 0 && counters_of(n).connection_errors >= 1, 3000);
    text = metrics_text(n);
    assert_int_equal(sample_of(text, "pgsched_store_connected"), 0);
    assert_true(sample_of(text, "pgsched_connection_errors_total") >= 1);
    free(text);
    FAULT_SET(w->heartbeat_mode, FAULT_HB_PASS);
    WAIT_UNTIL(counters_of(n).connected == 1, 3000);
    errors = counters_of(n).connection_errors;
    text = metrics_text(n);
    assert_int_equal(sample_of(text, "pgsched_store_connected"), 1);
    assert_int_equal(sample_of(text, "pgsched_connection_errors_total"), errors);
    free(text);
}

#endif
