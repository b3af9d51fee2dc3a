/* store_suite_poison.h - rows a node did not write (by hand, by other tools, by older
   versions) whose values no statement can process: each is refused by the schema where it
   can be, and otherwise quarantined (status failed, last_error naming the value, logged
   once) while every other row goes on (tests/test_store.c, PostgreSQL only: the memory store
   takes rows through its API alone). */
#ifndef STORE_SUITE_POISON_H
#define STORE_SUITE_POISON_H

/* What a store reported through its log. */
typedef struct poison_log {
    int count;
    char last[1024];
} poison_log;

static void poison_log_cb(void *user, int level, const char *message)
{
    poison_log *g = (poison_log *)user;
    (void)level;
    g->count++;
    snprintf(g->last, sizeof g->last, "%s", message);
}

/* A handle on the fixture's tables that logs into `g`. */
static pgsched_store *poison_store(fixture *fx, poison_log *g)
{
    pgsched_pg_config cfg;
    pgsched_store *s = NULL;
    memset(g, 0, sizeof *g);
    memset(&cfg, 0, sizeof cfg);
    cfg.conninfo = g_dsn;
    cfg.schema = fx->schema;
    cfg.prefix = fx->prefix;
    cfg.log = poison_log_cb;
    cfg.log_user = g;
    OK(pgsched_pg_store_create(&cfg, &s, E));
    fx_keep_store(fx, s);
    OK(pgsched_store_setup(s, E));
    return s;
}

/* Writes a value into row (name, key) as an operator would, with SQL. */
#define POISON(fx, name, key, set)                                                             \
    admin_exec("UPDATE \"%s\".\"%sjobs\" SET " set " WHERE name = '" name "' AND key = '" key  \
               "'",                                                                            \
               (fx)->schema, (fx)->prefix)

/* The same write must be refused by the schema (a check violation); then, as if the
   constraint had been dropped by hand, it is made all the same, so that the node's handling
   of such a row is tested too. */
#define POISON_REFUSED(fx, name, key, set, constraint)                                          \
    do {                                                                                       \
        char pr_sql_[512];                                                                     \
        PGresult *pr_r_;                                                                       \
        const char *pr_code_;                                                                  \
        snprintf(pr_sql_, sizeof pr_sql_,                                                      \
                 "UPDATE \"%s\".\"%sjobs\" SET " set " WHERE name = '" name "' AND key = '"   \
                 key "'", (fx)->schema, (fx)->prefix);                                         \
        pr_r_ = PQexec(g_admin, pr_sql_);                                                      \
        pr_code_ = PQresultErrorField(pr_r_, PG_DIAG_SQLSTATE);                                \
        if (!pr_code_ || strcmp(pr_code_, "23514") != 0) {                                      \
            PQclear(pr_r_);                                                                    \
            fail_msg("the schema did not refuse: %s", pr_sql_);                                \
        }                                                                                      \
        PQclear(pr_r_);                                                                        \
        admin_exec("ALTER TABLE \"%s\".\"%sjobs\" DROP CONSTRAINT \"%s" constraint "\"",       \
                   (fx)->schema, (fx)->prefix, (fx)->prefix);                                  \
        admin_exec("%s", pr_sql_);                                                             \
    } while (0)

/* Row (name, key) is failed with a last_error that contains `what`, and the store logged
   exactly one line, naming the row. */
static void assert_quarantined(fixture *fx, const poison_log *g, const char *name,
                               const char *key, const char *what)
{
    const pgsched_job *j = get_job(fx, name, key);
    assert_int_equal(j->status, PGSCHED_FAILED);
    assert_null(j->owner);
    assert_int_equal(j->lease, 0);
    if (!j->last_error || !strstr(j->last_error, what))
        fail_msg("last_error \"%s\" does not name \"%s\"", j->last_error ? j->last_error : "",
                 what);
    if (g->count != 1) fail_msg("%d log lines, expected one (last: %s)", g->count, g->last);
    if (!strstr(g->last, key) || !strstr(g->last, what))
        fail_msg("the log line \"%s\" does not name %s and \"%s\"", g->last, key, what);
}

/* Claims "p"/"bad" and "p"/"good" in one claim, makes "bad" poison with `set`, then
   finishes both in one batch: the good outcome is written, the bad row quarantined. */
static void poison_outcome_batch(fixture *fx, pgsched_store *s, pgsched_outcome_kind kind,
                                 pgsched_status status)
{
    pgsched_job_list *got;
    pgsched_outcome o[2];
    pgsched_finish_result r[2];
    size_t i, bad = 0;
    got = claim_of(fx, s, "node-1", "p", 10, NULL);
    assert_int_equal(got->count, 2);
    for (i = 0; i < 2; i++) {
        o[i] = outcome_of(&got->items[i], kind, status, 0);
        if (strcmp(got->items[i].key, "bad") == 0) bad = i;
    }
    memset(r, 0, sizeof r);
    OK(pgsched_store_finish(s, o, 2, r, E));
    assert_int_equal(r[bad].code, PGSCHED_OK);
    assert_int_equal(r[bad].new_status, PGSCHED_FAILED);
    assert_int_equal(r[1 - bad].code, PGSCHED_OK);
    assert_int_equal(r[1 - bad].new_status, status);
    assert_int_equal(get_job(fx, "p", "good")->status, status);
    assert_int_equal(history_of(fx, "p", "good", 10)->count, 1);
}

/* Two due rows of type "p", "bad" and "good". */
static void poison_pair(fixture *fx)
{
    schedule_once(fx, "p", "bad", fx_now(fx) - 2 * fx->unit);
    schedule_once(fx, "p", "good", fx_now(fx) - fx->unit);
}

STORE_TEST(pg_poison_row_outcome_with_runs_at_the_limit_is_quarantined_and_the_batch_goes_on)
{
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    poison_pair(fx);
    POISON(fx, "p", "bad", "runs = 9223372036854775807");
    poison_outcome_batch(fx, s, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED);
    assert_quarantined(fx, &g, "p", "bad", "runs is 9223372036854775807");
}

STORE_TEST(pg_poison_row_outcome_with_failures_at_the_limit_is_quarantined_and_the_batch_goes_on)
{
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    poison_pair(fx);
    POISON(fx, "p", "bad", "failures = 9223372036854775807");
    poison_outcome_batch(fx, s, PGSCHED_OUTCOME_FAILURE, PGSCHED_FAILED);
    assert_quarantined(fx, &g, "p", "bad", "failures is 9223372036854775807");
}

STORE_TEST(pg_poison_row_deferred_change_of_unknown_kind_is_refused_or_quarantined)
{
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    pgsched_job_list *got;
    poison_pair(fx);
    got = claim_of(fx, s, "node-1", "p", 10, NULL);
    assert_int_equal(got->count, 2);
    POISON_REFUSED(fx, "p", "bad",
                   "ch_kind = 'weekly', ch_params = '{}', ch_max_retries = 1, "
                   "ch_next_run = now()",
                   "jobs_deferred");
    {
        pgsched_outcome o[2];
        pgsched_finish_result r[2];
        size_t i;
        for (i = 0; i < 2; i++)
            o[i] = outcome_of(&got->items[i], PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
        OK(pgsched_store_finish(s, o, 2, r, E));
        for (i = 0; i < 2; i++) assert_int_equal(r[i].code, PGSCHED_OK);
    }
    assert_int_equal(get_job(fx, "p", "good")->status, PGSCHED_COMPLETED);
    assert_quarantined(fx, &g, "p", "bad", "unknown kind 'weekly'");
}

STORE_TEST(pg_poison_row_deferred_change_with_null_params_is_refused_or_quarantined)
{
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    pgsched_job_list *got;
    poison_pair(fx);
    got = claim_of(fx, s, "node-1", "p", 10, NULL);
    assert_int_equal(got->count, 2);
    POISON_REFUSED(fx, "p", "bad",
                   "ch_kind = 'once', ch_params = NULL, ch_max_retries = 1, ch_next_run = now()",
                   "jobs_deferred");
    {
        pgsched_outcome o[2];
        pgsched_finish_result r[2];
        size_t i;
        for (i = 0; i < 2; i++)
            o[i] = outcome_of(&got->items[i], PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
        OK(pgsched_store_finish(s, o, 2, r, E));
        for (i = 0; i < 2; i++) assert_int_equal(r[i].code, PGSCHED_OK);
    }
    assert_int_equal(get_job(fx, "p", "good")->status, PGSCHED_COMPLETED);
    assert_quarantined(fx, &g, "p", "bad", "NULL params");
}

STORE_TEST(pg_poison_row_with_attempt_at_the_limit_does_not_block_claims)
{
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    pgsched_job_list *got;
    poison_pair(fx);
    POISON(fx, "p", "bad", "attempt = 2147483647");
    got = claim_of(fx, s, "node-1", "p", 10, NULL);
    assert_int_equal(got->count, 1);
    assert_string_equal(got->items[0].key, "good");
    assert_quarantined(fx, &g, "p", "bad", "attempt is 2147483647");
}

STORE_TEST(pg_poison_row_due_at_minus_infinity_is_refused_or_does_not_block_claims)
{
    /* with notifications on, the claim turns the due time into a number for its payload */
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    pgsched_job_list *got;
    poison_pair(fx);
    POISON_REFUSED(fx, "p", "bad", "next_run = '-infinity'", "jobs_finite");
    got = claim_of(fx, s, "node-1", "p", 10, NULL);
    assert_int_equal(got->count, 1);
    assert_string_equal(got->items[0].key, "good");
    assert_quarantined(fx, &g, "p", "bad", "next_run is -infinity");
}

/* A due row of type "p" with a key that no call accepts, written with SQL. */
static void poison_key_row(fixture *fx, const char *key_sql)
{
    admin_exec("INSERT INTO \"%s\".\"%sjobs\" (name, key, status, kind, params, max_retries, "
               "attempt, next_run, version) VALUES ('p', %s, 'pending', 'once', '{}', 0, 0, "
               "now() - interval '1 hour', nextval('\"%s\".\"%sseq\"'))",
               fx->schema, fx->prefix, key_sql, fx->schema, fx->prefix);
}

/* Claims every due row of "p" and heartbeats every lease the claim gave: the good row's
   lease is renewed, and the bad row was never handed out. */
static void poison_claim_and_heartbeat(fixture *fx, pgsched_store *s)
{
    pgsched_job_list *got = claim_of(fx, s, "node-1", "p", 10, NULL);
    pgsched_lease ls[4];
    pgsched_lease_state st[4];
    pgsched_time now;
    size_t i;
    assert_true(got->count <= 4);
    for (i = 0; i < got->count; i++) ls[i] = lease_of(&got->items[i]);
    OK(pgsched_store_heartbeat(s, "node-1", ls, got->count, 1, st, &now, E));
    assert_int_equal(got->count, 1);
    assert_string_equal(got->items[0].key, "good");
    assert_int_equal(st[0].lost, 0);
}

STORE_TEST(pg_poison_row_with_a_key_over_the_limit_is_not_handed_out_and_leases_renew)
{
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    const pgsched_job *bad;
    pgsched_job_list *l = fx_jlist(fx);
    pgsched_list_filter f;
    schedule_once(fx, "p", "good", fx_now(fx) - fx->unit);
    poison_key_row(fx, "repeat('k', 300)");
    poison_claim_and_heartbeat(fx, s);
    memset(&f, 0, sizeof f);
    f.status = PGSCHED_FAILED;
    OK(pgsched_store_list(fx->store, &f, l, E));
    assert_int_equal(l->count, 1);
    bad = &l->items[0];
    assert_int_equal(strlen(bad->key), 300);
    assert_non_null(bad->last_error);
    assert_non_null(strstr(bad->last_error, "key"));
    assert_int_equal(g.count, 1);
}

STORE_TEST(pg_poison_row_with_a_control_character_in_its_key_is_not_handed_out_and_leases_renew)
{
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    schedule_once(fx, "p", "good", fx_now(fx) - fx->unit);
    poison_key_row(fx, "E'b\\x01ad'");
    poison_claim_and_heartbeat(fx, s);
    /* (no call takes that key: read with SQL) */
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"%sjobs\" WHERE key = E'b\\x01ad' "
                               "AND status = 'failed' AND last_error LIKE '%%control character%%'",
                               fx->schema, fx->prefix),
                     1);
    assert_int_equal(g.count, 1);
}

/* A running row of "dead-node" silent for an hour, inserted with SQL. */
static void poison_running_row(fixture *fx, const char *name_sql, const char *heartbeat_sql)
{
    admin_exec("INSERT INTO \"%s\".\"%sjobs\" (name, key, status, kind, params, max_retries, "
               "attempt, next_run, owner, lease, heartbeat_at, started_at, version) VALUES "
               "(%s, 'k', 'running', 'once', '{}', 3, 1, now() - interval '2 hours', 'dead-node', "
               "nextval('\"%s\".\"%sseq\"'), %s, now() - interval '1 hour', "
               "nextval('\"%s\".\"%sseq\"'))",
               fx->schema, fx->prefix, name_sql, fx->schema, fx->prefix, heartbeat_sql,
               fx->schema, fx->prefix);
}

STORE_TEST(pg_poison_row_stalled_with_an_over_long_name_is_quarantined_not_taken_back_forever)
{
    poison_log g;
    pgsched_store *s = poison_store(fx, &g);
    pgsched_job_list *got;
    poison_running_row(fx, "repeat('n', 200)", "now() - interval '1 hour'");
    poison_running_row(fx, "'good'", "now() - interval '1 hour'");
    got = fx_jlist(fx);
    OK(pgsched_store_take_back(s, "node-1", PGSCHED_SECOND, 10, got, E));
    assert_int_equal(got->count, 1);
    assert_string_equal(got->items[0].name, "good");
    got = fx_jlist(fx);
    OK(pgsched_store_take_back(s, "node-1", PGSCHED_SECOND, 10, got, E));
    assert_int_equal(got->count, 0);
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"%sjobs\" WHERE status = 'failed' "
                               "AND name = repeat('n', 200) AND last_error LIKE '%%name%%'",
                               fx->schema, fx->prefix),
                     1);
    assert_int_equal(g.count, 1);
}

STORE_TEST(pg_poison_row_running_without_a_heartbeat_time_is_taken_back)
{
    pgsched_job_list *got;
    poison_running_row(fx, "'silent'", "NULL");
    poison_running_row(fx, "'good'", "now() - interval '1 hour'");
    got = take_back(fx, "node-1", PGSCHED_SECOND, 10);
    assert_int_equal(got->count, 2);
    /* the longest silent first: no heartbeat time at all */
    assert_string_equal(got->items[0].name, "silent");
    assert_int_equal(get_job(fx, "silent", "k")->owner ? 1 : 0, 1);
    assert_string_equal(get_job(fx, "silent", "k")->owner, "node-1");
}

/* ---- the upgrade to schema version 2 -------------------------------------------------------- */

STORE_TEST(pg_upgrading_a_version_1_schema_quarantines_rows_it_now_refuses_and_keeps_the_rest)
{
    pgsched_store *s;
    pgsched_job_list *got;
    char sql[512];
    /* a version-1 schema: the tables as migration 1 made them, with rows in them */
    admin_exec("ALTER TABLE \"%s\".\"%sjobs\" DROP CONSTRAINT \"%sjobs_deferred\", "
               "DROP CONSTRAINT \"%sjobs_finite\"",
               fx->schema, fx->prefix, fx->prefix, fx->prefix);
    admin_exec("DROP INDEX \"%s\".\"%sjobs_stall\"", fx->schema, fx->prefix);
    admin_exec("CREATE INDEX \"%sjobs_running\" ON \"%s\".\"%sjobs\" (owner) "
               "WHERE status = 'running'",
               fx->prefix, fx->schema, fx->prefix);
    admin_exec("DELETE FROM \"%s\".\"%sschema_version\" WHERE version > 1", fx->schema,
               fx->prefix);
    schedule_once(fx, "p", "good", fx_now(fx) - fx->unit);
    schedule_once(fx, "p", "later", fx_now(fx) + PGSCHED_HOUR);
    schedule_once(fx, "p", "minus-inf", 0);
    schedule_once(fx, "p", "kind", 0);
    schedule_once(fx, "p", "params", 0);
    POISON(fx, "p", "minus-inf", "next_run = '-infinity'");
    POISON(fx, "p", "kind", "ch_kind = 'weekly', ch_params = '{}', ch_max_retries = 1");
    POISON(fx, "p", "params", "ch_kind = 'once', ch_params = NULL, ch_max_retries = 1");

    OK(fx_pg_store(fx, NULL, fx->schema, fx->prefix, 0, &s, E));
    OK(pgsched_store_setup(s, E));
    assert_int_equal(admin_int("SELECT max(version) FROM \"%s\".\"%sschema_version\"",
                               fx->schema, fx->prefix),
                     2);
    assert_int_equal(get_job(fx, "p", "minus-inf")->status, PGSCHED_FAILED);
    assert_non_null(strstr(get_job(fx, "p", "minus-inf")->last_error, "next_run is -infinity"));
    assert_int_equal(get_job(fx, "p", "kind")->status, PGSCHED_FAILED);
    assert_non_null(strstr(get_job(fx, "p", "kind")->last_error, "unknown kind 'weekly'"));
    assert_int_equal(get_job(fx, "p", "params")->status, PGSCHED_FAILED);
    assert_non_null(strstr(get_job(fx, "p", "params")->last_error, "NULL params"));
    assert_int_equal(get_job(fx, "p", "later")->status, PGSCHED_PENDING);
    assert_null(get_job(fx, "p", "later")->last_error);
    got = claim_of(fx, s, "node-1", "p", 10, NULL);
    assert_int_equal(got->count, 1);
    assert_string_equal(got->items[0].key, "good");
    /* take-back's index replaced the owner index */
    assert_int_equal(admin_int("SELECT count(*) FROM pg_indexes WHERE schemaname = '%s' AND "
                               "indexname = '%sjobs_stall'",
                               fx->schema, fx->prefix),
                     1);
    assert_int_equal(admin_int("SELECT count(*) FROM pg_indexes WHERE schemaname = '%s' AND "
                               "indexname = '%sjobs_running'",
                               fx->schema, fx->prefix),
                     0);
    /* and the schema now refuses them */
    snprintf(sql, sizeof sql,
             "UPDATE \"%s\".\"%sjobs\" SET next_run = '-infinity' WHERE key = 'later'",
             fx->schema, fx->prefix);
    {
        PGresult *r = PQexec(g_admin, sql);
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        int refused = code && strcmp(code, "23514") == 0;
        PQclear(r);
        assert_true(refused);
    }
}

#endif
