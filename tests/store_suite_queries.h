/* store_suite_queries.h - get, list, history, versions, next due time, nodes and clean-up. */
#ifndef STORE_SUITE_QUERIES_H
#define STORE_SUITE_QUERIES_H

STORE_TEST(the_store_clock_is_the_injected_clock_or_the_database_clock)
{
    pgsched_time t = fx_now(fx);
    if (fx->pg) {
        /* the database's clock_timestamp(), read through the suite's own connection */
        long long db = admin_int("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint");
        assert_true(t > db - 5 * PGSCHED_SECOND && t < db + 5 * PGSCHED_SECOND);
    } else {
        assert_int_equal(t, T0);
        fx_clock_add(fx, 1234567);
        assert_int_equal(fx_now(fx), T0 + 1234567);
    }
}

STORE_TEST(setup_twice_is_harmless)
{
    schedule_once(fx, "keep", "k", fx_now(fx) + PGSCHED_HOUR);
    OK(pgsched_store_setup(fx->store, E));
    assert_int_equal(row_exists(fx, "keep", "k"), 1);
}

STORE_TEST(get_of_a_missing_row_is_not_found_and_appends_nothing)
{
    pgsched_job_list *l = fx_jlist(fx);
    schedule_once(fx, "there", "k", fx_now(fx) + PGSCHED_HOUR);
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_store_get(fx->store, "there", "K", l, E));
    FAILS(PGSCHED_ERR_NOT_FOUND, pgsched_store_get(fx->store, "There", "k", l, E));
    assert_int_equal(l->count, 0);
}

static int cmp_name_key(const void *a, const void *b)
{
    const char *const *x = (const char *const *)a, *const *y = (const char *const *)b;
    int c = strcmp(x[0], y[0]);
    return c ? c : strcmp(x[1], y[1]);
}

STORE_TEST(list_is_in_name_then_key_byte_order)
{
    /* byte order, whatever the database's collation: both stores must agree */
    static const char *const names[] = {"b", "a", "B", "_", "\xc3\xa9", "a b"};
    static const char *const keys[] = {"10", "9", "a", "A", "\xc3\xa9", "z", "a-", "a_"};
    const char *expected[6 * 8][2];
    pgsched_job_list *l;
    size_t i, k, n = 0;
    for (i = 0; i < 6; i++)
        for (k = 0; k < 8; k++) {
            /* insert in a scrambled order */
            size_t ki = (k * 5 + i) % 8;
            schedule_once(fx, names[i], keys[ki], fx_now(fx) + PGSCHED_HOUR);
            expected[n][0] = names[i];
            expected[n][1] = keys[ki];
            n++;
        }
    qsort(expected, n, sizeof expected[0], cmp_name_key);
    l = all_rows(fx);
    assert_int_equal(l->count, n);
    for (i = 0; i < n; i++) {
        if (strcmp(l->items[i].name, expected[i][0]) || strcmp(l->items[i].key, expected[i][1]))
            fail_msg("row %u is (%s, %s), expected (%s, %s)", (unsigned)i, l->items[i].name,
                     l->items[i].key, expected[i][0], expected[i][1]);
    }
}

STORE_TEST(list_filters_by_name_and_status)
{
    pgsched_list_filter f;
    pgsched_job_list *l;
    size_t i;
    make_finished_row(fx, "lf", "done", PGSCHED_COMPLETED);
    schedule_and_claim(fx, "node-1", "lf", "run");
    schedule_once(fx, "lf", "p1", fx_now(fx) + PGSCHED_HOUR);
    schedule_once(fx, "lf", "p2", fx_now(fx) + PGSCHED_HOUR);
    schedule_once(fx, "lg", "p1", fx_now(fx) + PGSCHED_HOUR);
    schedule_and_claim(fx, "node-1", "lg", "run");

    memset(&f, 0, sizeof f);
    f.name = "lf";
    l = fx_jlist(fx);
    OK(pgsched_store_list(fx->store, &f, l, E));
    assert_int_equal(l->count, 4);
    for (i = 0; i < l->count; i++) assert_string_equal(l->items[i].name, "lf");

    f.status = PGSCHED_PENDING;
    l = fx_jlist(fx);
    OK(pgsched_store_list(fx->store, &f, l, E));
    assert_int_equal(l->count, 2);
    assert_string_equal(l->items[0].key, "p1");
    assert_string_equal(l->items[1].key, "p2");

    f.name = NULL;
    f.status = PGSCHED_RUNNING;
    l = fx_jlist(fx);
    OK(pgsched_store_list(fx->store, &f, l, E));
    assert_int_equal(l->count, 2);
    assert_string_equal(l->items[0].name, "lf");
    assert_string_equal(l->items[1].name, "lg");

    f.status = PGSCHED_COMPLETED;
    l = fx_jlist(fx);
    OK(pgsched_store_list(fx->store, &f, l, E));
    assert_int_equal(l->count, 1);
    assert_string_equal(l->items[0].key, "done");

    f.status = PGSCHED_CANCELLED;
    l = fx_jlist(fx);
    OK(pgsched_store_list(fx->store, &f, l, E));
    assert_int_equal(l->count, 0);
}

STORE_TEST(list_pages_through_every_row_once_with_after_name_and_after_key)
{
    static const char *const names[] = {"pa", "pb", "pc"};
    pgsched_job_list *all, *page;
    pgsched_list_filter f;
    size_t i, k, seen = 0, pages = 0;
    char key[32];
    for (i = 0; i < 3; i++)
        for (k = 0; k < 7; k++) {
            snprintf(key, sizeof key, "k%u", (unsigned)(6 - k));
            schedule_once(fx, names[i], key, fx_now(fx) + PGSCHED_HOUR);
        }
    all = all_rows(fx);
    assert_int_equal(all->count, 21);
    memset(&f, 0, sizeof f);
    f.limit = 4;
    for (;;) {
        page = fx_jlist(fx);
        OK(pgsched_store_list(fx->store, &f, page, E));
        assert_true(page->count <= 4);
        if (page->count == 0) break;
        for (i = 0; i < page->count; i++, seen++) {
            assert_true(seen < all->count);
            assert_string_equal(page->items[i].name, all->items[seen].name);
            assert_string_equal(page->items[i].key, all->items[seen].key);
        }
        f.after_name = page->items[page->count - 1].name;
        f.after_key = page->items[page->count - 1].key;
        assert_true(++pages < 10);
    }
    assert_int_equal(seen, 21);

    /* paging within one type */
    memset(&f, 0, sizeof f);
    f.name = "pb";
    f.limit = 3;
    f.after_name = "pb";
    f.after_key = "k2";
    page = fx_jlist(fx);
    OK(pgsched_store_list(fx->store, &f, page, E));
    assert_int_equal(page->count, 3);
    assert_string_equal(page->items[0].key, "k3");
    assert_string_equal(page->items[2].key, "k5");
}

STORE_TEST(list_without_a_limit_returns_at_most_1000_rows)
{
    pgsched_list_filter f;
    pgsched_job_list *l;
    char key[32];
    int i;
    for (i = 0; i < 1001; i++) {
        snprintf(key, sizeof key, "k%04d", i);
        schedule_once(fx, "many", key, fx_now(fx) + PGSCHED_HOUR);
    }
    l = all_rows(fx);
    assert_int_equal(l->count, 1000);
    assert_string_equal(l->items[999].key, "k0999");
    memset(&f, 0, sizeof f);
    f.limit = 5;
    l = fx_jlist(fx);
    OK(pgsched_store_list(fx->store, &f, l, E));
    assert_int_equal(l->count, 5);
    f.limit = 2000;
    l = fx_jlist(fx);
    OK(pgsched_store_list(fx->store, &f, l, E));
    assert_int_equal(l->count, 1001);
}

/* One run of (name, key): claims the one due row of `name` and finishes it pending at `next`
   (0: due again at once). */
static void run_once(fixture *fx, const char *name, const char *key, pgsched_outcome_kind kind,
                     pgsched_time next)
{
    const pgsched_job *j = claim_one(fx, "node-1", name, key);
    pgsched_outcome oc = outcome_of(j, kind, PGSCHED_PENDING, next ? next : fx_now(fx) - fx->unit);
    if (kind == PGSCHED_OUTCOME_FAILURE) oc.error = "failed";
    assert_int_equal(finish_with(fx, &oc).code, PGSCHED_OK);
}

STORE_TEST(history_is_newest_first_and_filters_by_name_and_key)
{
    pgsched_run_list *h;
    size_t i;
    pgsched_time later = fx_now(fx) + PGSCHED_HOUR;
    schedule_once(fx, "ha", "1", fx_now(fx) - fx->unit);
    run_once(fx, "ha", "1", PGSCHED_OUTCOME_SUCCESS, 0);
    schedule_once(fx, "hb", "1", fx_now(fx) - fx->unit);
    run_once(fx, "hb", "1", PGSCHED_OUTCOME_FAILURE, later);
    run_once(fx, "ha", "1", PGSCHED_OUTCOME_FAILURE, later);
    schedule_once(fx, "ha", "2", fx_now(fx) - fx->unit);
    run_once(fx, "ha", "2", PGSCHED_OUTCOME_CANCELLED, later);

    h = history_of(fx, NULL, NULL, 0);
    assert_int_equal(h->count, 4);
    for (i = 1; i < h->count; i++) assert_true(h->items[i - 1].id > h->items[i].id);
    assert_string_equal(h->items[0].name, "ha");
    assert_string_equal(h->items[0].key, "2");
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_CANCELLED);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_FAILURE);
    assert_string_equal(h->items[1].key, "1");
    assert_string_equal(h->items[1].error, "failed");
    assert_string_equal(h->items[2].name, "hb");
    assert_int_equal(h->items[3].outcome, PGSCHED_OUTCOME_SUCCESS);

    h = history_of(fx, "ha", NULL, 0);
    assert_int_equal(h->count, 3);
    for (i = 0; i < h->count; i++) assert_string_equal(h->items[i].name, "ha");
    h = history_of(fx, "ha", "1", 0);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_FAILURE);
    assert_int_equal(h->items[1].outcome, PGSCHED_OUTCOME_SUCCESS);
    h = history_of(fx, NULL, NULL, 2);
    assert_int_equal(h->count, 2);
    assert_string_equal(h->items[0].key, "2");
    h = history_of(fx, "nobody", NULL, 0);
    assert_int_equal(h->count, 0);
}

STORE_TEST(history_without_a_limit_returns_at_most_100_records)
{
    pgsched_run_list *h;
    int i;
    schedule_once(fx, "hist", "k", fx_now(fx) - fx->unit);
    for (i = 0; i < 101; i++) run_once(fx, "hist", "k", PGSCHED_OUTCOME_SUCCESS, 0);
    h = history_of(fx, "hist", "k", 0);
    assert_int_equal(h->count, 100);
    h = history_of(fx, "hist", "k", 500);
    assert_int_equal(h->count, 101);
}

STORE_TEST(versions_increase_with_every_change_across_the_store)
{
    pgsched_duration stall = 2 * fx->unit;
    pgsched_change_outcome co;
    pgsched_schedule_outcome so;
    pgsched_finish_result fr;
    const pgsched_job *j;
    int64_t v = 0;

#define NEXT_VERSION(x)                                                                        \
    do {                                                                                       \
        int64_t nv_ = (x);                                                                     \
        if (nv_ <= v) fail_msg("%s: version %lld does not follow %lld", #x, (long long)nv_,    \
                               (long long)v);                                                  \
        v = nv_;                                                                               \
    } while (0)

    so = schedule_once(fx, "ver", "a", fx_now(fx) - fx->unit);
    NEXT_VERSION(so.version);
    so = schedule_once(fx, "other", "b", fx_now(fx) + PGSCHED_HOUR);
    NEXT_VERSION(so.version);
    j = claim_one(fx, "node-1", "ver", "a");
    NEXT_VERSION(j->version);
    OK(pgsched_store_cancel(fx->store, "ver", "a", "admin", &co, E));
    NEXT_VERSION(co.version);
    fr = finish_ok(fx, j, PGSCHED_OUTCOME_CANCELLED, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
    NEXT_VERSION(fr.version);
    assert_int_equal(get_job(fx, "ver", "a")->version, fr.version);
    OK(pgsched_store_trigger(fx->store, "ver", "a", "admin", &co, E));
    NEXT_VERSION(co.version);
    so = schedule_once(fx, "other", "b", fx_now(fx) + PGSCHED_HOUR);
    NEXT_VERSION(so.version);
    j = claim_one(fx, "node-1", "ver", "a");
    NEXT_VERSION(j->version);
    fx_wait_until(fx, j->heartbeat_at + stall + 1);
    j = &take_back(fx, "node-2", stall, 1)->items[0];
    NEXT_VERSION(j->version);
    fr = finish_ok(fx, j, PGSCHED_OUTCOME_STALLED, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
    NEXT_VERSION(fr.version);
    OK(pgsched_store_remove(fx->store, "ver", "a", "admin", &co, E));
    NEXT_VERSION(co.version);
    so = schedule_once(fx, "ver", "a", fx_now(fx) + PGSCHED_HOUR);
    assert_int_equal(so.created, 1);
    NEXT_VERSION(so.version);
    assert_int_equal(get_job(fx, "ver", "a")->version, so.version);
    OK(pgsched_store_cancel(fx->store, "ver", "a", "admin", &co, E));
    NEXT_VERSION(co.version);
#undef NEXT_VERSION
}

STORE_TEST(next_due_is_the_earliest_pending_due_time_of_the_given_types)
{
    const char *x[1] = {"nx"}, *xy[2] = {"nx", "ny"}, *z[1] = {"nz"};
    pgsched_time now = fx_now(fx), next = -1, at = 0, before, after;
    pgsched_change_outcome co;
    make_finished_row(fx, "nx", "completed", PGSCHED_COMPLETED);
    schedule_and_claim(fx, "node-1", "nx", "running");
    schedule_once(fx, "nx", "late", now + 2 * PGSCHED_HOUR);
    schedule_once(fx, "nx", "early", now + PGSCHED_HOUR);
    schedule_once(fx, "ny", "soon", now + 10 * PGSCHED_MINUTE);
    schedule_once(fx, "nz", "x", now + PGSCHED_MINUTE);
    OK(pgsched_store_remove(fx->store, "nz", "x", "admin", &co, E));

    before = fx_now(fx);
    OK(pgsched_store_next_due(fx->store, x, 1, &next, &at, E));
    after = fx_now(fx);
    assert_int_equal(next, now + PGSCHED_HOUR);
    assert_time_between(at, before, after);
    OK(pgsched_store_next_due(fx->store, xy, 2, &next, &at, E));
    assert_int_equal(next, now + 10 * PGSCHED_MINUTE);
    OK(pgsched_store_next_due(fx->store, z, 1, &next, &at, E));
    assert_int_equal(next, 0);
}

/* ---- nodes and clean-up --------------------------------------------------------------- */

STORE_TEST(finished_one_time_rows_are_deleted_after_their_retention)
{
    pgsched_duration keep = 4 * fx->unit;
    pgsched_schedule_request req;
    pgsched_cleanup_outcome out;
    const pgsched_job *j;

    make_finished_row(fx, "ret", "completed", PGSCHED_COMPLETED);
    make_finished_row(fx, "ret", "failed", PGSCHED_FAILED);
    make_finished_row(fx, "ret", "cancelled", PGSCHED_CANCELLED);
    /* recurring rows are never deleted by retention, even when a run finished them */
    req = once_req("ret", "custom-over", fx_now(fx) - fx->unit);
    req.kind = PGSCHED_CUSTOM;
    schedule_ok(fx, &req);
    j = claim_one(fx, "node-1", "ret", "custom-over");
    finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    req = once_req("ret", "cron", fx_now(fx) + PGSCHED_HOUR);
    req.kind = PGSCHED_CRON;
    req.cron = "0 0 * * *";
    schedule_ok(fx, &req);
    schedule_once(fx, "ret", "pending", fx_now(fx) + PGSCHED_HOUR);
    schedule_and_claim(fx, "node-1", "ret", "running");

    fx_advance(fx, 2 * fx->unit);
    out = cleanup(fx, keep, PGSCHED_NEVER, PGSCHED_NEVER);
    assert_int_equal(out.finished_deleted, 0);
    assert_int_equal(all_rows(fx)->count, 7);

    fx_wait_until(fx, get_job(fx, "ret", "custom-over")->finished_at + keep + 1);
    out = cleanup(fx, keep, PGSCHED_NEVER, PGSCHED_NEVER);
    assert_int_equal(out.finished_deleted, 3);
    assert_int_equal(out.history_deleted, 0);
    assert_int_equal(out.orphans_deleted, 0);
    assert_int_equal(row_exists(fx, "ret", "completed"), 0);
    assert_int_equal(row_exists(fx, "ret", "failed"), 0);
    assert_int_equal(row_exists(fx, "ret", "cancelled"), 0);
    assert_int_equal(row_exists(fx, "ret", "custom-over"), 1);
    assert_int_equal(row_exists(fx, "ret", "cron"), 1);
    assert_int_equal(row_exists(fx, "ret", "pending"), 1);
    assert_int_equal(row_exists(fx, "ret", "running"), 1);
    /* their run history is a separate retention */
    assert_int_equal(history_of(fx, "ret", "completed", 0)->count, 1);
}

STORE_TEST(run_history_is_deleted_after_its_retention)
{
    pgsched_duration keep = 4 * fx->unit;
    pgsched_cleanup_outcome out;
    pgsched_run_list *h;
    schedule_once(fx, "hret", "k", fx_now(fx) - fx->unit);
    run_once(fx, "hret", "k", PGSCHED_OUTCOME_SUCCESS, 0);
    run_once(fx, "hret", "k", PGSCHED_OUTCOME_FAILURE, 0);
    fx_advance(fx, 3 * fx->unit);
    run_once(fx, "hret", "k", PGSCHED_OUTCOME_SUCCESS, 0);
    h = history_of(fx, "hret", "k", 0);
    assert_int_equal(h->count, 3);
    fx_wait_until(fx, h->items[1].finished_at + keep + 1);
    assert_true(fx_now(fx) < h->items[0].finished_at + keep); /* the test's own timing held */
    out = cleanup(fx, PGSCHED_NEVER, keep, PGSCHED_NEVER);
    assert_int_equal(out.history_deleted, 2);
    assert_int_equal(out.finished_deleted, 0);
    h = history_of(fx, "hret", "k", 0);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].outcome, PGSCHED_OUTCOME_SUCCESS);
    assert_int_equal(get_job(fx, "hret", "k")->runs, 3);
}

STORE_TEST(cleanup_parts_set_to_never_are_skipped)
{
    pgsched_cleanup_outcome out;
    snapshot before;
    make_finished_row(fx, "never", "done", PGSCHED_COMPLETED);
    schedule_once(fx, "orphan", "k", fx_now(fx) + PGSCHED_HOUR);
    fx_advance(fx, 3 * fx->unit);
    before = take_snapshot(fx);
    out = cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, PGSCHED_NEVER);
    assert_int_equal(out.finished_deleted, 0);
    assert_int_equal(out.history_deleted, 0);
    assert_int_equal(out.orphans_deleted, 0);
    assert_unchanged(fx, before);
    /* the same clean-up with every part on deletes both rows and the history */
    out = cleanup(fx, fx->unit, fx->unit, fx->unit);
    assert_int_equal(out.finished_deleted + out.orphans_deleted, 2);
    assert_int_equal(out.history_deleted, 1);
    assert_int_equal(all_rows(fx)->count, 0);
}

STORE_TEST(orphans_are_idle_rows_of_types_no_node_registered_within_the_orphan_timeout)
{
    /* §12: the original deleted the rows of types that other live nodes still ran. */
    pgsched_duration orphan = 2 * fx->unit;
    const char *a_names[1] = {"alpha"}, *b_names[2] = {"beta", "shared"},
               *c_names[1] = {"shared"};
    pgsched_cleanup_outcome out;
    const pgsched_job *run;
    pgsched_lease_state st;
    pgsched_lease lease;
    pgsched_time now;

    register_node(fx, "node-a", a_names, 1);
    register_node(fx, "node-b", b_names, 2);
    register_node(fx, "node-c", c_names, 1);
    schedule_once(fx, "alpha", "1", fx_now(fx) + PGSCHED_HOUR);
    schedule_once(fx, "beta", "1", fx_now(fx) + PGSCHED_HOUR);
    schedule_once(fx, "shared", "1", fx_now(fx) + PGSCHED_HOUR);
    schedule_once(fx, "gamma", "1", fx_now(fx) + PGSCHED_HOUR);
    run = schedule_and_claim(fx, "node-x", "gamma", "running");
    lease = lease_of(run);

    fx_advance(fx, 3 * fx->unit);
    OK(pgsched_store_heartbeat(fx->store, "node-a", NULL, 0, 1, NULL, &now, E));
    OK(pgsched_store_heartbeat(fx->store, "node-b", NULL, 0, 1, NULL, &now, E));
    OK(pgsched_store_heartbeat(fx->store, "node-c", NULL, 0, 1, NULL, &now, E));
    OK(pgsched_store_heartbeat(fx->store, "node-x", &lease, 1, 1, &st, &now, E));
    out = cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan);
    assert_int_equal(out.orphans_deleted, 1);
    assert_int_equal(row_exists(fx, "gamma", "1"), 0);
    assert_int_equal(row_exists(fx, "gamma", "running"), 1); /* running rows are never orphans */
    assert_int_equal(row_exists(fx, "alpha", "1"), 1);
    assert_int_equal(row_exists(fx, "beta", "1"), 1);
    assert_int_equal(row_exists(fx, "shared", "1"), 1);

    /* node-b goes silent: beta has no live node left, shared still has node-c */
    fx_advance(fx, 2 * fx->unit);
    OK(pgsched_store_heartbeat(fx->store, "node-a", NULL, 0, 1, NULL, &now, E));
    OK(pgsched_store_heartbeat(fx->store, "node-c", NULL, 0, 1, NULL, &now, E));
    fx_advance(fx, 2 * fx->unit);
    OK(pgsched_store_heartbeat(fx->store, "node-a", NULL, 0, 1, NULL, &now, E));
    OK(pgsched_store_heartbeat(fx->store, "node-c", NULL, 0, 1, NULL, &now, E));
    schedule_once(fx, "delta", "fresh", fx_now(fx) + PGSCHED_HOUR); /* idle, but not for long */
    out = cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan);
    assert_int_equal(out.orphans_deleted, 1);
    assert_int_equal(row_exists(fx, "beta", "1"), 0);
    assert_int_equal(row_exists(fx, "shared", "1"), 1);
    assert_int_equal(row_exists(fx, "alpha", "1"), 1);
    assert_int_equal(row_exists(fx, "delta", "fresh"), 1);
    assert_int_equal(row_exists(fx, "gamma", "running"), 1);
}

STORE_TEST(a_stopped_nodes_types_become_orphans_one_orphan_timeout_after_it_stopped)
{
    /* A deploy stops every node of a type for a while: its rows, however long idle (a
       monthly job), must survive that; they go once no node registered the type for the
       whole orphan timeout. */
    pgsched_duration orphan = 2 * fx->unit;
    const char *names[1] = {"solo"};
    pgsched_time now;
    register_node(fx, "node-a", names, 1);
    schedule_once(fx, "solo", "k", fx_now(fx) + PGSCHED_HOUR);
    fx_advance(fx, 3 * fx->unit);
    OK(pgsched_store_heartbeat(fx->store, "node-a", NULL, 0, 1, NULL, &now, E));
    assert_int_equal(cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan).orphans_deleted, 0);
    OK(pgsched_store_node_unregister(fx->store, "node-a", E));
    assert_int_equal(cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan).orphans_deleted, 0);
    fx_advance(fx, fx->unit);
    assert_int_equal(cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan).orphans_deleted, 0);
    assert_int_equal(row_exists(fx, "solo", "k"), 1);
    fx_advance(fx, 2 * fx->unit);
    assert_int_equal(cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan).orphans_deleted, 1);
    assert_int_equal(row_exists(fx, "solo", "k"), 0);
}

STORE_TEST(registering_a_node_again_replaces_its_types)
{
    pgsched_duration orphan = fx->unit;
    const char *old_names[1] = {"old"}, *new_names[1] = {"new"};
    register_node(fx, "node-a", old_names, 1);
    schedule_once(fx, "old", "k", fx_now(fx) + PGSCHED_HOUR);
    schedule_once(fx, "new", "k", fx_now(fx) + PGSCHED_HOUR);
    fx_advance(fx, 2 * fx->unit);
    register_node(fx, "node-a", new_names, 1); /* also marks it seen */
    assert_int_equal(cleanup(fx, PGSCHED_NEVER, PGSCHED_NEVER, orphan).orphans_deleted, 1);
    assert_int_equal(row_exists(fx, "old", "k"), 0);
    assert_int_equal(row_exists(fx, "new", "k"), 1);
}

STORE_TEST(dead_node_records_are_deleted_after_the_history_retention)
{
    pgsched_duration keep = 4 * fx->unit;
    const char *names[1] = {"t"};
    pgsched_cleanup_outcome out;
    pgsched_time now;
    register_node(fx, "node-dead", names, 1);
    register_node(fx, "node-live", names, 1);
    fx_advance(fx, 2 * fx->unit);
    OK(pgsched_store_heartbeat(fx->store, "node-live", NULL, 0, 1, NULL, &now, E));
    out = cleanup(fx, PGSCHED_NEVER, keep, PGSCHED_NEVER);
    assert_int_equal(out.nodes_deleted, 0);
    fx_advance(fx, 3 * fx->unit);
    OK(pgsched_store_heartbeat(fx->store, "node-live", NULL, 0, 1, NULL, &now, E));
    out = cleanup(fx, PGSCHED_NEVER, keep, PGSCHED_NEVER);
    assert_int_equal(out.nodes_deleted, 1);
    out = cleanup(fx, PGSCHED_NEVER, keep, PGSCHED_NEVER);
    assert_int_equal(out.nodes_deleted, 0);
}

STORE_TEST(a_stopped_nodes_record_outlives_the_history_retention_until_the_orphan_timeout)
{
    /* Node records go after max(history retention, orphan timeout): the record is what
       keeps a stopped node's types from being orphans for the orphan timeout. */
    pgsched_duration keep = 2 * fx->unit, orphan = 6 * fx->unit;
    const char *names[1] = {"stopped"};
    pgsched_cleanup_outcome out;
    pgsched_time stopped, after;
    register_node(fx, "node-a", names, 1);
    schedule_once(fx, "stopped", "k", fx_now(fx) + PGSCHED_HOUR);
    stopped = fx_now(fx);
    OK(pgsched_store_node_unregister(fx->store, "node-a", E));
    after = fx_now(fx);

    fx_wait_until(fx, after + keep + fx->unit);
    out = cleanup(fx, PGSCHED_NEVER, keep, orphan);
    assert_true(fx_now(fx) < stopped + orphan); /* the test's own timing held */
    assert_int_equal(out.nodes_deleted, 0);
    assert_int_equal(out.orphans_deleted, 0);
    assert_int_equal(row_exists(fx, "stopped", "k"), 1);

    fx_wait_until(fx, after + orphan + fx->unit);
    out = cleanup(fx, PGSCHED_NEVER, keep, orphan);
    assert_int_equal(out.nodes_deleted, 1);
    assert_int_equal(out.orphans_deleted, 1);
    assert_int_equal(row_exists(fx, "stopped", "k"), 0);
}

STORE_TEST(cleanup_deletes_at_most_its_limit_per_part)
{
    pgsched_cleanup_request req;
    pgsched_cleanup_outcome out;
    char key[32];
    int i;
    for (i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        make_finished_row(fx, "lim", key, PGSCHED_COMPLETED);
    }
    fx_advance(fx, 2 * fx->unit);
    memset(&req, 0, sizeof req);
    req.node_id = "cleaner";
    req.finished_retention = fx->unit;
    req.history_retention = PGSCHED_NEVER;
    req.orphan_timeout = PGSCHED_NEVER;
    req.limit = 2;
    OK(pgsched_store_cleanup(fx->store, &req, &out, E));
    assert_int_equal(out.finished_deleted, 2);
    OK(pgsched_store_cleanup(fx->store, &req, &out, E));
    assert_int_equal(out.finished_deleted, 2);
    OK(pgsched_store_cleanup(fx->store, &req, &out, E));
    assert_int_equal(out.finished_deleted, 1);
    assert_int_equal(all_rows(fx)->count, 0);
}

STORE_TEST(durations_longer_than_any_age_are_accepted_alike_by_every_store)
{
    /* Durations are only required to be non-negative; one that reaches past year 1 (10,000
       years, or just short of PGSCHED_NEVER) means "nothing is that old", in both stores. */
    static const pgsched_duration longs[] = {10000LL * 365 * PGSCHED_DAY, PGSCHED_NEVER - 1};
    pgsched_store *stores[2];
    size_t i;
    int s;
    stores[0] = fx->store;
    stores[1] = fx_memory_store(fx);
    for (s = 0; s < 2; s++) {
        const pgsched_job *j;
        pgsched_schedule_request req = once_req("long", "done", fx_now_of(fx, stores[s]) - fx->unit);
        pgsched_schedule_outcome so;
        pgsched_outcome oc;
        pgsched_finish_result fr;
        OK(pgsched_store_schedule(stores[s], &req, &so, E));
        j = &claim_of(fx, stores[s], "node-1", "long", 1, NULL)->items[0];
        oc = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
        OK(pgsched_store_finish(stores[s], &oc, 1, &fr, E));
        req = once_req("long", "running", fx_now_of(fx, stores[s]) - fx->unit);
        OK(pgsched_store_schedule(stores[s], &req, &so, E));
        claim_of(fx, stores[s], "node-1", "long", 1, NULL);
    }
    fx_advance(fx, 2 * fx->unit);
    for (i = 0; i < 2; i++) {
        for (s = 0; s < 2; s++) {
            pgsched_cleanup_request cr;
            pgsched_cleanup_outcome out;
            pgsched_job_list *back = fx_jlist(fx);
            memset(&cr, 0, sizeof cr);
            cr.node_id = "cleaner";
            cr.finished_retention = cr.history_retention = cr.orphan_timeout = longs[i];
            OK(pgsched_store_cleanup(stores[s], &cr, &out, E));
            assert_int_equal(out.finished_deleted + out.history_deleted + out.orphans_deleted, 0);
            OK(pgsched_store_take_back(stores[s], "reaper", longs[i], 10, back, E));
            assert_int_equal(back->count, 0);
        }
    }
}

#endif /* STORE_SUITE_QUERIES_H */
