/* store_suite_bulk.h - many schedule requests in one call (pgsched_store_schedule_many and
   _tx): each request gets what pgsched_store_schedule would have given it. Part of
   tests/test_store.c. */

/* A pending row, a finished row, a running row and a running row to defer: the same four
   situations single schedules are tested in. Returns the running row's job. */
static const pgsched_job *bulk_setup_rows(fixture *fx, pgsched_time t)
{
    const pgsched_job *j;
    schedule_once(fx, "bulk", "pending", t + 10 * fx->unit);
    j = schedule_and_claim(fx, "n1", "bulk", "done");
    finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    schedule_and_claim(fx, "n1", "bulk", "deferred");
    return schedule_and_claim(fx, "n1", "bulk", "running");
}

STORE_TEST(a_batch_gives_each_request_what_one_schedule_would)
{
    pgsched_time t = fx_now(fx);
    pgsched_schedule_request q[7];
    pgsched_schedule_outcome o[7];
    pgsched_result res[7];
    const pgsched_job *running = bulk_setup_rows(fx, t), *j;
    snapshot before;
    int64_t v0 = running->version;

    q[0] = once_req("bulk", "new", t + 5 * fx->unit);
    q[1] = once_req("bulk", "pending", t + 20 * fx->unit); /* later: the stored time stays */
    q[2] = once_req("bulk", "done", t + 3 * fx->unit);
    q[3] = once_req("bulk", "running", t);
    q[4] = once_req("bulk", "bad\nkey", t);
    q[5] = once_req("bulk", "deferred", t + 7 * fx->unit);
    q[5].apply_after_run = 1;
    q[6] = once_req("bulk", "json", t);
    q[6].params = "{\"a\": 1";
    before = take_snapshot(fx);
    memset(o, 0xab, sizeof o);
    FAILS(PGSCHED_ERR_RUNNING, pgsched_store_schedule_many(fx->store, q, 7, o, res, E));
    /* the first failure by index, named, and how many failed */
    assert_non_null(strstr(fx->err.message, "request 3 of 7"));
    assert_non_null(strstr(fx->err.message, "bulk/running is running"));
    assert_non_null(strstr(fx->err.message, "3 failed in all"));
    assert_int_equal(res[0], PGSCHED_OK);
    assert_int_equal(res[1], PGSCHED_OK);
    assert_int_equal(res[2], PGSCHED_OK);
    assert_int_equal(res[3], PGSCHED_ERR_RUNNING);
    assert_int_equal(res[4], PGSCHED_ERR_KEY);
    assert_int_equal(res[5], PGSCHED_OK);
    assert_int_equal(res[6], PGSCHED_ERR_JSON);

    assert_true(o[0].created);
    assert_int_equal(o[0].old_status, PGSCHED_STATUS_NONE);
    assert_int_equal(o[0].next_run, t + 5 * fx->unit);
    assert_false(o[1].created);
    assert_int_equal(o[1].old_status, PGSCHED_PENDING);
    assert_int_equal(o[1].next_run, t + 10 * fx->unit);
    assert_int_equal(o[2].old_status, PGSCHED_COMPLETED);
    assert_int_equal(o[2].next_run, t + 3 * fx->unit);
    assert_true(o[5].deferred);
    assert_int_equal(o[5].old_status, PGSCHED_RUNNING);
    /* failed requests' outcomes are zeroed, not left as they were */
    assert_int_equal(o[3].version, 0);
    assert_int_equal(o[4].version, 0);
    assert_true(o[0].version > v0 && o[1].version > v0 && o[2].version > v0 &&
                o[5].version > v0);
    assert_true(o[0].version != o[1].version && o[1].version != o[2].version);

    j = get_job(fx, "bulk", "new");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->version, o[0].version);
    j = get_job(fx, "bulk", "pending");
    assert_int_equal(j->next_run, t + 10 * fx->unit);
    j = get_job(fx, "bulk", "done");
    assert_int_equal(j->status, PGSCHED_PENDING);
    assert_int_equal(j->attempt, 0);
    j = get_job(fx, "bulk", "running");
    assert_int_equal(j->status, PGSCHED_RUNNING);
    assert_int_equal(j->version, running->version);
    j = get_job(fx, "bulk", "deferred");
    assert_int_equal(j->status, PGSCHED_RUNNING);
    assert_true(j->change_pending);
    assert_int_equal(row_exists(fx, "bulk", "json"), 0);
    assert_int_equal(all_rows(fx)->count, before.rows->count + 1);
}

STORE_TEST(a_batch_of_valid_requests_returns_ok_and_an_empty_batch_does_nothing)
{
    pgsched_schedule_request q[3];
    pgsched_result res[3];
    pgsched_time t = fx_now(fx);
    int i;
    for (i = 0; i < 3; i++) q[i] = once_req("bulk", i == 0 ? "a" : i == 1 ? "b" : "c", t);
    OK(pgsched_store_schedule_many(fx->store, q, 3, NULL, res, E));
    for (i = 0; i < 3; i++) assert_int_equal(res[i], PGSCHED_OK);
    assert_int_equal(all_rows(fx)->count, 3);
    OK(pgsched_store_schedule_many(fx->store, NULL, 0, NULL, NULL, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_schedule_many(fx->store, q, 3, NULL, NULL, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_schedule_many(fx->store, NULL, 3, NULL, res, E));
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_schedule_many(NULL, q, 3, NULL, res, E));
    assert_int_equal(all_rows(fx)->count, 3);
}

STORE_TEST(a_batch_naming_a_row_twice_applies_the_requests_in_order)
{
    pgsched_time t = fx_now(fx);
    pgsched_schedule_request q[4];
    pgsched_schedule_outcome o[4];
    pgsched_result res[4];
    const pgsched_job *j;
    q[0] = once_req("bulk", "twice", t + 4 * fx->unit);
    q[0].params = "{\"n\":1}";
    q[1] = once_req("bulk", "other", t);
    q[2] = once_req("bulk", "twice", t + 9 * fx->unit);
    q[2].params = "{\"n\":2}";
    q[3] = once_req("bulk", "twice", t + 2 * fx->unit);
    q[3].params = "{\"n\":3}";
    OK(pgsched_store_schedule_many(fx->store, q, 4, o, res, E));
    assert_true(o[0].created);
    assert_false(o[2].created);
    assert_int_equal(o[2].old_status, PGSCHED_PENDING);
    assert_int_equal(o[2].next_run, t + 4 * fx->unit); /* the earlier due time wins */
    assert_int_equal(o[3].next_run, t + 2 * fx->unit);
    assert_true(o[0].version < o[2].version && o[2].version < o[3].version);
    j = get_job(fx, "bulk", "twice");
    assert_string_equal(j->params, "{\"n\":3}"); /* the last request's params */
    assert_int_equal(j->next_run, t + 2 * fx->unit);
    assert_int_equal(j->version, o[3].version);
    assert_int_equal(all_rows(fx)->count, 2);
}

STORE_TEST(a_batch_larger_than_one_statement_writes_every_request)
{
    size_t n = 2 * PGSCHED_SCHEDULE_BATCH_MAX + 7, i;
    pgsched_schedule_request *q = (pgsched_schedule_request *)calloc(n, sizeof *q);
    pgsched_schedule_outcome *o = (pgsched_schedule_outcome *)calloc(n, sizeof *o);
    pgsched_result *res = (pgsched_result *)calloc(n, sizeof *res);
    char (*keys)[16] = (char (*)[16])calloc(n, 16);
    pgsched_time t = fx_now(fx);
    pgsched_list_filter f;
    assert_true(q && o && res && keys);
    for (i = 0; i < n; i++) {
        snprintf(keys[i], 16, "k%lu", (unsigned long)i);
        q[i] = once_req("bulk", keys[i], t + (pgsched_duration)i);
    }
    q[n - 1].key = "";  /* the last one fails alone */
    FAILS(PGSCHED_ERR_KEY, pgsched_store_schedule_many(fx->store, q, n, o, res, E));
    for (i = 0; i + 1 < n; i++) {
        if (res[i] != PGSCHED_OK || !o[i].created || o[i].next_run != t + (pgsched_duration)i)
            fail_msg("request %lu: result %d, created %d", (unsigned long)i, (int)res[i],
                     o[i].created);
    }
    memset(&f, 0, sizeof f);
    f.limit = n + 10;
    {
        pgsched_job_list *l = fx_jlist(fx);
        OK(pgsched_store_list(fx->store, &f, l, E));
        assert_int_equal(l->count, n - 1);
    }
    free(q);
    free(o);
    free(res);
    free(keys);
}

STORE_TEST(a_batch_raises_one_change_event_per_row_it_wrote)
{
    pgsched_listener *l = fx_listen(fx, fx->store);
    evlog *g = fx_evlog(fx);
    pgsched_time t = fx_now(fx);
    pgsched_schedule_request q[3];
    pgsched_schedule_outcome o[3];
    pgsched_result res[3];
    const pgsched_job *running = schedule_and_claim(fx, "n1", "bulk", "running");
    size_t i, seen = 0;
    q[0] = once_req("bulk", "a", t + fx->unit);
    q[1] = once_req("bulk", "running", t);
    q[2] = once_req("bulk", "b", t + 2 * fx->unit);
    q[0].node_id = q[1].node_id = q[2].node_id = "n-bulk";
    FAILS(PGSCHED_ERR_RUNNING, pgsched_store_schedule_many(fx->store, q, 3, o, res, E));
    expect_change(fx, fx->store, l, g, "bulk", "a", o[0].version, PGSCHED_STATUS_NONE,
                  PGSCHED_PENDING, t + fx->unit, "n-bulk");
    expect_change(fx, fx->store, l, g, "bulk", "b", o[2].version, PGSCHED_STATUS_NONE,
                  PGSCHED_PENDING, t + 2 * fx->unit, "n-bulk");
    for (i = 0; i < g->n; i++)
        if (g->ev[i].kind == PGSCHED_EVENT_CHANGE && strcmp(g->ev[i].node, "n-bulk") == 0) seen++;
    assert_int_equal(seen, 2);
    assert_null(evlog_find(g, PGSCHED_EVENT_CHANGE, "bulk", "running", running->version + 1));
}

/* ---- PostgreSQL: the caller's transaction ------------------------------------------------ */

static PGconn *bulk_caller(fixture *fx)
{
    PGconn *c = fx_connect(fx);
    return c;
}

static void bulk_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

STORE_TEST(pg_a_batch_in_the_callers_transaction_exists_only_if_it_commits)
{
    PGconn *c = bulk_caller(fx);
    pgsched_time t = fx_now(fx);
    pgsched_schedule_request q[2];
    pgsched_result res[2];
    q[0] = once_req("bulk", "a", t);
    q[1] = once_req("bulk", "b", t);
    bulk_exec(c, "BEGIN");
    OK(pgsched_store_schedule_many_tx(fx->store, c, q, 2, NULL, res, E));
    assert_int_equal(row_exists(fx, "bulk", "a"), 0); /* not committed yet */
    bulk_exec(c, "ROLLBACK");
    assert_int_equal(row_exists(fx, "bulk", "a"), 0);
    bulk_exec(c, "BEGIN");
    OK(pgsched_store_schedule_many_tx(fx->store, c, q, 2, NULL, res, E));
    bulk_exec(c, "COMMIT");
    assert_int_equal(row_exists(fx, "bulk", "a"), 1);
    assert_int_equal(row_exists(fx, "bulk", "b"), 1);
}

STORE_TEST(pg_the_callers_search_path_cannot_redirect_the_schedule_statement)
{
    /* A caller whose search path puts a schema of its own before pg_catalog, with a now(), a
       text = operator and an unnest of its own there: the statement sent on its connection
       must use none of them, and leave the search path as it was. */
    PGconn *c = bulk_caller(fx);
    const char *evil = fx_new_schema_name(fx);
    char sql[1024];
    pgsched_time t0 = fx_now(fx);
    pgsched_schedule_request q[2];
    pgsched_schedule_outcome o[2];
    pgsched_result res[2];
    PGresult *r;
    const pgsched_job *j;
    admin_exec("CREATE SCHEMA \"%s\"", evil);
    admin_exec("CREATE FUNCTION \"%s\".now() RETURNS timestamptz LANGUAGE sql AS "
               "$$SELECT timestamptz '2001-01-01 00:00:00+00'$$", evil);
    admin_exec("CREATE FUNCTION \"%s\".never(text, text) RETURNS bool LANGUAGE sql AS "
               "$$SELECT false$$", evil);
    admin_exec("CREATE OPERATOR \"%s\".= (LEFTARG = text, RIGHTARG = text, FUNCTION = \"%s\".never)",
               evil, evil);
    admin_exec("CREATE FUNCTION \"%s\".unnest(text[]) RETURNS SETOF text LANGUAGE sql AS "
               "$$SELECT 'hijacked'$$", evil);
    snprintf(sql, sizeof sql, "SET search_path = \"%s\", pg_catalog, public", evil);
    bulk_exec(c, sql);
    q[0] = once_req("bulk", "a", 0); /* due "now": the database's now */
    q[1] = once_req("bulk", "b", t0);
    bulk_exec(c, "BEGIN");
    OK(pgsched_store_schedule_many_tx(fx->store, c, q, 2, o, res, E));
    bulk_exec(c, "COMMIT");
    j = get_job(fx, "bulk", "a");
    assert_true(j->next_run >= t0);
    assert_true(o[0].created && o[1].created);
    /* a second batch re-schedules the same rows: the conflict path, CASE and = included */
    bulk_exec(c, "BEGIN");
    OK(pgsched_store_schedule_many_tx(fx->store, c, q, 2, o, res, E));
    bulk_exec(c, "COMMIT");
    assert_false(o[0].created);
    assert_int_equal(o[0].old_status, PGSCHED_PENDING);
    assert_int_equal(all_rows(fx)->count, 2);
    r = PQexec(c, "SHOW search_path");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_non_null(strstr(PQgetvalue(r, 0, 0), evil));
    PQclear(r);
}

STORE_TEST(pg_the_statement_is_prepared_once_on_the_callers_connection)
{
    PGconn *c = bulk_caller(fx);
    pgsched_schedule_request q = once_req("bulk", "a", 0);
    pgsched_result res;
    PGresult *r;
    int i;
    for (i = 0; i < 8; i++) OK(pgsched_store_schedule_many_tx(fx->store, c, &q, 1, NULL, &res, E));
    r = PQexec(c, "SELECT count(*), max(generic_plans + custom_plans) FROM pg_prepared_statements "
                  "WHERE name LIKE 'pgsched\\_%'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    assert_string_equal(PQgetvalue(r, 0, 1), "8"); /* one statement, every call through it */
    PQclear(r);
    /* a caller that drops its prepared statements gets one error (its transaction aborted,
       as any failed statement would) and the next call prepares it again */
    bulk_exec(c, "DEALLOCATE ALL");
    bulk_exec(c, "BEGIN");
    FAILS(PGSCHED_ERR_DATABASE, pgsched_store_schedule_many_tx(fx->store, c, &q, 1, NULL, &res, E));
    bulk_exec(c, "ROLLBACK");
    bulk_exec(c, "BEGIN");
    OK(pgsched_store_schedule_many_tx(fx->store, c, &q, 1, NULL, &res, E));
    bulk_exec(c, "COMMIT");
}

STORE_TEST(pg_a_callers_failed_transaction_is_refused_without_sending_anything)
{
    PGconn *c = bulk_caller(fx);
    pgsched_schedule_request q = once_req("bulk", "a", 0);
    pgsched_result res;
    PGresult *r;
    bulk_exec(c, "BEGIN");
    r = PQexec(c, "SELECT 1/0");
    PQclear(r);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
    FAILS(PGSCHED_ERR_STATE, pgsched_store_schedule_many_tx(fx->store, c, &q, 1, NULL, &res, E));
    assert_int_equal(res, PGSCHED_ERR_STATE);
    assert_non_null(strstr(fx->err.message, "already failed"));
    bulk_exec(c, "ROLLBACK");
    r = PQexec(c, "SELECT count(*) FROM pg_prepared_statements");
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    assert_int_equal(row_exists(fx, "bulk", "a"), 0);
}

STORE_TEST(pg_a_version_1_schema_with_rows_is_upgraded_to_version_2)
{
    /* tables exactly as version 1 of the library made them, with rows, then a setup */
    const char *schema = fx_new_schema_name(fx);
    pgsched_store *s;
    pgsched__pg *p;
    char *v1;
    pgsched_schedule_request q = once_req("old", "k1", 0);
    pgsched_schedule_outcome o;
    const pgsched_job *j;
    OK(fx_pg_store(fx, NULL, schema, "u_", 0, &s, E));
    p = (pgsched__pg *)s;
    admin_exec("CREATE SCHEMA \"%s\"", schema);
    v1 = pgsched__pg_expand(p, pgsched__pg_migration(1));
    assert_non_null(v1);
    admin_exec("%s", v1);
    pgsched__free(&p->alloc, v1);
    admin_exec("CREATE TABLE \"%s\".u_schema_version (version integer PRIMARY KEY, applied_at "
               "timestamptz NOT NULL DEFAULT now()); INSERT INTO \"%s\".u_schema_version "
               "VALUES (1)", schema, schema);
    admin_exec("INSERT INTO \"%s\".u_jobs (name, key, status, kind, params, max_retries, "
               "next_run, version) SELECT 'old', 'k' || g, 'completed', 'once', '{}', 0, "
               "now(), nextval('\"%s\".u_seq') FROM generate_series(1, 50) g", schema, schema);
    OK(pgsched_store_setup(s, E));
    assert_int_equal(admin_int("SELECT max(version) FROM \"%s\".u_schema_version", schema),
                     PGSCHED__PG_SCHEMA_VERSION);
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".u_jobs", schema), 50);
    /* the old rows schedule as any other: re-scheduled, reporting their status before */
    OK(pgsched_store_schedule(s, &q, &o, E));
    assert_false(o.created);
    assert_int_equal(o.old_status, PGSCHED_COMPLETED);
    j = get_job_of(fx, s, "old", "k1");
    assert_int_equal(j->status, PGSCHED_PENDING);
}

/* ---- memory store ----------------------------------------------------------------------- */

STORE_TEST(the_memory_store_cannot_schedule_in_a_callers_transaction)
{
    pgsched_schedule_request q = once_req("bulk", "a", 0);
    pgsched_result res = PGSCHED_OK;
    int dummy = 0;
    FAILS(PGSCHED_ERR_UNSUPPORTED,
          pgsched_store_schedule_many_tx(fx->store, &dummy, &q, 1, NULL, &res, E));
    assert_int_equal(res, PGSCHED_ERR_UNSUPPORTED);
    FAILS(PGSCHED_ERR_INVALID_ARGUMENT,
          pgsched_store_schedule_many_tx(fx->store, NULL, &q, 1, NULL, &res, E));
    assert_int_equal(all_rows(fx)->count, 0);
}
