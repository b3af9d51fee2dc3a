/* store_suite_pg.h - what only the PostgreSQL store has: identifiers pasted into SQL (SPEC §7,
   §12), hostile values, schema versions and privileges, concurrent migrations, lost
   connections. The hostile-value test runs on both stores. */
#ifndef STORE_SUITE_PG_H
#define STORE_SUITE_PG_H

/* A table the hostile strings below try to drop; it must survive. */
static void make_sentinel(fixture *fx)
{
    if (!fx->pg) return;
    admin_exec("CREATE TABLE \"%s\".sentinel (v int)", fx->schema);
    admin_exec("INSERT INTO \"%s\".sentinel VALUES (42)", fx->schema);
}

static void assert_sentinel_intact(fixture *fx)
{
    if (!fx->pg) return;
    assert_int_equal(admin_int("SELECT sum(v) FROM \"%s\".sentinel", fx->schema), 42);
}

STORE_TEST(hostile_names_keys_and_params_are_stored_verbatim_and_run_no_sql)
{
    char drop[200], del[200];
    const char *names[4], *keys[6], *params[3];
    const pgsched_job *j;
    pgsched_change_outcome co;
    size_t i, k;
    long long relations = 0;

    make_sentinel(fx);
    snprintf(drop, sizeof drop, "x'); DROP TABLE \"%s\".sentinel; --", fx->schema);
    snprintf(del, sizeof del, "\"; DELETE FROM \"%s\".\"%sjobs\"; --", fx->schema, fx->prefix);
    names[0] = drop;
    names[1] = "Robert'); DROP TABLE students;--";
    names[2] = "$1::text";
    names[3] = "%s%n%x\\";
    keys[0] = del;
    keys[1] = "' OR '1'='1";
    keys[2] = "\\'; SELECT pg_sleep(10); --";
    keys[3] = "E'\\x00'";
    keys[4] = "{\"a\":1}";
    keys[5] = "k";
    params[0] = "{\"q\":\"'); DROP TABLE sentinel; --\",\"b\":\"\\\\\"}";
    params[1] = "[\"$1\",\"%s\",\"\\u0027\"]";
    params[2] = "\"'; TRUNCATE sentinel; --\"";
    if (fx->pg) relations = admin_relation_count(fx->schema);

    for (i = 0; i < 4; i++)
        for (k = 0; k < 6; k++) {
            /* distinct due times: keys[0] is each type's most overdue row */
            pgsched_schedule_request req =
                once_req(names[i], keys[k], fx_now(fx) - fx->unit - (pgsched_time)(6 - k) * PGSCHED_SECOND);
            req.params = params[(i + k) % 3];
            schedule_ok(fx, &req);
        }
    assert_int_equal(all_rows(fx)->count, 24);
    for (i = 0; i < 4; i++) {
        for (k = 0; k < 6; k++) {
            j = get_job(fx, names[i], keys[k]);
            assert_string_equal(j->params, params[(i + k) % 3]);
        }
        /* the whole life of a row, with hostile text in every parameter */
        j = claim_one(fx, "node-1", names[i], keys[0]);
        OK(pgsched_store_cancel(fx->store, names[i], keys[0], "admin", &co, E));
        assert_int_equal(heartbeat_one(fx, "node-1", names[i], keys[0], j->lease, 1)
                             .cancel_requested, 1);
        finish_ok(fx, j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
        assert_string_equal(history_of(fx, names[i], keys[0], 0)->items[0].key, keys[0]);
        OK(pgsched_store_trigger(fx->store, names[i], keys[1], "admin", &co, E));
        OK(pgsched_store_remove(fx->store, names[i], keys[2], "admin", &co, E));
        assert_int_equal(row_exists(fx, names[i], keys[2]), 0);
    }
    assert_int_equal(all_rows(fx)->count, 20);
    assert_sentinel_intact(fx);
    if (fx->pg) assert_int_equal(admin_relation_count(fx->schema), relations);
}

STORE_TEST(pg_schema_and_prefix_that_are_not_plain_names_are_refused)
{
    char injection[160], long_schema[80], long_prefix[80];
    static const char *const bad[] = {"a\"b", "a;b", "a b", "1abc", "caf\xc3\xa9", "a-b", "A.b",
                                      "a'b", "", "a\\b", "a$b", "\"quoted\""};
    pgsched_store *s;
    pgsched_error e;
    /* (other test programs may create and drop plain schemas meanwhile; none makes these) */
    const char *odd_schemas = "SELECT count(*) FROM pg_namespace WHERE nspname ~ '[^A-Za-z0-9_]' "
                              "OR nspname ~ '^[0-9]' OR length(nspname) >= 63";
    long long schemas = admin_int("%s", odd_schemas);
    long long relations;
    size_t i;

    make_sentinel(fx);
    relations = admin_relation_count(fx->schema);
    snprintf(injection, sizeof injection, "a\"; DROP TABLE \"%s\".sentinel; --", fx->schema);
    memset(long_schema, 's', 64);
    long_schema[64] = '\0';
    memset(long_prefix, 'p', 63);
    long_prefix[63] = '\0';

    for (i = 0; i <= sizeof bad / sizeof bad[0] + 1; i++) {
        const char *v = i < sizeof bad / sizeof bad[0] ? bad[i]
                        : i == sizeof bad / sizeof bad[0] ? injection
                                                          : NULL;
        /* as the schema */
        memset(&e, 0, sizeof e);
        if (fx_pg_store(fx, NULL, v ? v : long_schema, fx->prefix, 0, &s, &e) !=
            PGSCHED_ERR_IDENTIFIER)
            fail_msg("schema \"%s\" was accepted", v ? v : long_schema);
        assert_null(s);
        assert_int_equal(e.code, PGSCHED_ERR_IDENTIFIER);
        if (!strstr(e.message, "schema")) fail_msg("the message names no field: %s", e.message);
        /* as the prefix */
        memset(&e, 0, sizeof e);
        if (fx_pg_store(fx, NULL, fx->schema, v ? v : long_prefix, 0, &s, &e) !=
            PGSCHED_ERR_IDENTIFIER)
            fail_msg("prefix \"%s\" was accepted", v ? v : long_prefix);
        assert_null(s);
        if (!strstr(e.message, "prefix")) fail_msg("the message names no field: %s", e.message);
    }
    assert_sentinel_intact(fx);
    assert_int_equal(admin_relation_count(fx->schema), relations);
    assert_int_equal(admin_int("%s", odd_schemas), schemas);
}

STORE_TEST(pg_mixed_case_schema_and_prefix_are_quoted_exactly)
{
    char schema[64];
    pgsched_store *s;
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    snprintf(schema, sizeof schema, "Mixed_%s", fx_new_schema_name(fx));
    snprintf(fx->schemas[fx->nschemas - 1], sizeof fx->schemas[0], "%s", schema);
    OK(fx_pg_store(fx, NULL, schema, "Pre_Fix_", 0, &s, E));
    OK(pgsched_store_setup(s, E));
    req = once_req("n", "k", 0);
    OK(pgsched_store_schedule(s, &req, &so, E));
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"Pre_Fix_jobs\"", schema), 1);
    /* nothing landed in the case-folded names */
    assert_int_equal(admin_int("SELECT count(*) FROM pg_namespace WHERE nspname = lower('%s')",
                               schema),
                     0);
    assert_int_equal(admin_int("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                               "n.oid = c.relnamespace WHERE n.nspname = '%s' AND "
                               "c.relname NOT LIKE 'Pre\\_Fix\\_%%'",
                               schema),
                     0);
}

/* The relations of `schema` named after `prefix`, with the prefix cut off, sorted and joined
   by spaces (implicit primary-key index names, which PostgreSQL shortens itself, left out). */
static void relation_suffixes(const char *schema, const char *prefix, char *out, size_t size)
{
    PGresult *r = admin_query("SELECT substr(c.relname, %d) FROM pg_class c JOIN pg_namespace n "
                              "ON n.oid = c.relnamespace WHERE n.nspname = '%s' AND c.relname "
                              "NOT LIKE '%%\\_pkey' ORDER BY 1",
                              (int)strlen(prefix) + 1, schema);
    int i;
    size_t n = 0;
    out[0] = '\0';
    for (i = 0; i < PQntuples(r); i++)
        n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s ", PQgetvalue(r, i, 0));
    PQclear(r);
}

STORE_TEST(pg_the_longest_prefix_that_fits_works_and_one_byte_more_is_refused)
{
    const char *schema = fx_new_schema_name(fx);
    char prefix[80], short_suffixes[1024], long_suffixes[1024];
    pgsched_store *s = NULL;
    pgsched_error e;
    const pgsched_job *j;
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    pgsched_outcome oc;
    pgsched_finish_result fr;
    pgsched_run_list *h;
    int len;

    /* the reference: the same store with a short prefix, in the fixture's schema */
    relation_suffixes(fx->schema, fx->prefix, short_suffixes, sizeof short_suffixes);
    for (len = 63; len > 0; len--) {
        memset(prefix, 'p', (size_t)len);
        prefix[len - 1] = '_';
        prefix[len] = '\0';
        memset(&e, 0, sizeof e);
        if (fx_pg_store(fx, NULL, schema, prefix, 0, &s, &e) == PGSCHED_OK) break;
        assert_int_equal(e.code, PGSCHED_ERR_IDENTIFIER);
        if (!strstr(e.message, "prefix")) fail_msg("the message names no field: %s", e.message);
    }
    assert_true(len >= 20); /* room for real prefixes */
    OK(pgsched_store_setup(s, E));
    OK(pgsched_store_setup(s, E));
    req = once_req("n", "k", 0);
    OK(pgsched_store_schedule(s, &req, &so, E));
    j = &claim_of(fx, s, "node-1", "n", 1, NULL)->items[0];
    oc = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    OK(pgsched_store_finish(s, &oc, 1, &fr, E));
    assert_int_equal(fr.code, PGSCHED_OK);
    h = fx_rlist(fx);
    OK(pgsched_store_history(s, "n", "k", 0, h, E));
    assert_int_equal(h->count, 1);
    /* no name was cut short: the same objects exist as under a short prefix */
    relation_suffixes(schema, prefix, long_suffixes, sizeof long_suffixes);
    assert_string_equal(long_suffixes, short_suffixes);
}

STORE_TEST(pg_setup_creates_a_missing_schema)
{
    const char *schema = fx_new_schema_name(fx);
    pgsched_store *s;
    pgsched_schedule_request req = once_req("n", "k", 0);
    pgsched_schedule_outcome so;
    assert_int_equal(admin_int("SELECT count(*) FROM pg_namespace WHERE nspname = '%s'", schema),
                     0);
    OK(fx_pg_store(fx, NULL, schema, "x_", 0, &s, E));
    OK(pgsched_store_setup(s, E));
    OK(pgsched_store_schedule(s, &req, &so, E));
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".x_jobs", schema), 1);
}

STORE_TEST(pg_setup_without_tables_fails_with_schema_version)
{
    pgsched_store *s;
    OK(fx_pg_store(fx, NULL, fx->schema, "absent_", 1, &s, E));
    FAILS(PGSCHED_ERR_SCHEMA_VERSION, pgsched_store_setup(s, E));
    /* and creating nothing */
    assert_int_equal(admin_int("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE n.nspname = '%s' AND c.relname LIKE "
                               "'absent\\_%%'",
                               fx->schema),
                     0);
}

STORE_TEST(pg_setup_refuses_a_schema_written_by_a_newer_version)
{
    pgsched_store *s1, *s2;
    long long newer = admin_int("SELECT max(version) + 1 FROM \"%s\".\"%sschema_version\"",
                                fx->schema, fx->prefix);
    admin_exec("INSERT INTO \"%s\".\"%sschema_version\" (version) VALUES (%lld)", fx->schema,
               fx->prefix, newer);
    OK(fx_pg_store(fx, NULL, fx->schema, fx->prefix, 1, &s1, E));
    FAILS(PGSCHED_ERR_SCHEMA_VERSION, pgsched_store_setup(s1, E));
    OK(fx_pg_store(fx, NULL, fx->schema, fx->prefix, 0, &s2, E));
    FAILS(PGSCHED_ERR_SCHEMA_VERSION, pgsched_store_setup(s2, E));
    /* no downgrade happened */
    assert_int_equal(admin_int("SELECT max(version) FROM \"%s\".\"%sschema_version\"",
                               fx->schema, fx->prefix),
                     newer);
}

/* Tables written by version 1 of the library, with rows in them, are upgraded in place: the
   rows stay, and a stalled run in them is taken back through the index version 2 added. */
STORE_TEST(pg_a_version_1_schema_with_rows_upgrades_to_version_2)
{
    pgsched_store *s;
    pgsched_job_list got;
    char *v1;
    OK(fx_pg_store(fx, NULL, fx->schema, "up_", 0, &s, E));
    v1 = pgsched__pg_expand((pgsched__pg *)s, pgsched__pg_migration(1));
    assert_non_null(v1);
    admin_exec("%s", v1);
    free(v1);
    admin_exec("CREATE TABLE \"%s\".up_schema_version (version integer PRIMARY KEY, "
               "applied_at timestamptz NOT NULL DEFAULT now())", fx->schema);
    admin_exec("INSERT INTO \"%s\".up_schema_version VALUES (1)", fx->schema);
    admin_exec("INSERT INTO \"%s\".up_jobs (name, key, status, kind, params, max_retries, "
               "next_run, version, owner, lease, heartbeat_at, attempt) VALUES "
               "('t', 'waiting', 'pending', 'once', '{}', 0, now() + interval '1 hour', 1, NULL, "
               "NULL, NULL, 0), ('t', 'stalled', 'running', 'once', '{}', 0, now(), 2, 'gone', 2, "
               "now() - interval '1 hour', 1)",
               fx->schema);
    OK(pgsched_store_setup(s, E));
    assert_int_equal(admin_int("SELECT max(version) FROM \"%s\".up_schema_version", fx->schema),
                     2);
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".up_jobs", fx->schema), 2);
    assert_int_equal(admin_int("SELECT count(*) FROM pg_indexes WHERE schemaname = '%s' AND "
                               "indexname IN ('up_jobs_stall', 'up_jobs_running')",
                               fx->schema),
                     1);
    pgsched_job_list_init(&got, NULL);
    OK(pgsched_store_take_back(s, "n2", 60 * PGSCHED_SECOND, 10, &got, E));
    assert_int_equal((int)got.count, 1);
    assert_string_equal(got.items[0].key, "stalled");
    pgsched_job_list_free(&got);
}

STORE_TEST(pg_a_check_only_setup_refuses_a_schema_older_than_this_library)
{
    /* A node that may not migrate (schema creation off) must not run on tables an older
       library wrote: it says so, and what to do, and changes nothing. */
    pgsched_store *s;
    admin_exec("DELETE FROM \"%s\".\"%sschema_version\"", fx->schema, fx->prefix);
    OK(fx_pg_store(fx, NULL, fx->schema, fx->prefix, 1, &s, E));
    FAILS(PGSCHED_ERR_SCHEMA_VERSION, pgsched_store_setup(s, E));
    assert_non_null(strstr(fx->err.message, "the schema is at version 0"));
    assert_non_null(strstr(fx->err.message, "start a node with schema creation on"));
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"%sschema_version\"", fx->schema,
                               fx->prefix),
                     0);
}

/* Grants `role` exactly what the README's security section lists for a node in check-only
   mode, but `omit` (a "PRIVILEGE ON object" line of that list, e.g. "INSERT ON runs"). */
static void grant_node_privileges(fixture *fx, const char *role, const char *omit)
{
    static const char *const grants[][2] = {
        {"USAGE ON SCHEMA", ""},     {"SELECT ON TABLE", "jobs"}, {"INSERT ON TABLE", "jobs"},
        {"UPDATE ON TABLE", "jobs"}, {"DELETE ON TABLE", "jobs"}, {"SELECT ON TABLE", "runs"},
        {"INSERT ON TABLE", "runs"}, {"DELETE ON TABLE", "runs"}, {"SELECT ON TABLE", "nodes"},
        {"INSERT ON TABLE", "nodes"}, {"UPDATE ON TABLE", "nodes"}, {"DELETE ON TABLE", "nodes"},
        {"SELECT ON TABLE", "schema_version"}, {"USAGE ON SEQUENCE", "seq"},
    };
    size_t i;
    for (i = 0; i < sizeof grants / sizeof grants[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "%s %s", grants[i][0], grants[i][1]);
        if (omit && strcmp(line, omit) == 0) continue;
        if (!grants[i][1][0])
            admin_exec("GRANT %s \"%s\" TO \"%s\"", grants[i][0], fx->schema, role);
        else
            admin_exec("GRANT %s \"%s\".\"%s%s\" TO \"%s\"", grants[i][0], fx->schema,
                       fx->prefix, grants[i][1], role);
    }
}

/* A role with the node's grants but `omit`, and a check-only store through it. */
static pgsched_store *store_of_role_without(fixture *fx, const char *omit, int no_create)
{
    char role[64], *conninfo;
    pgsched_store *s;
    snprintf(role, sizeof role, "r_%ld_%d", (long)getpid(), ++g_schema_counter);
    snprintf(fx->roles[fx->nroles++], sizeof fx->roles[0], "%s", role);
    admin_exec("CREATE ROLE \"%s\" LOGIN", role);
    grant_node_privileges(fx, role, omit);
    conninfo = conninfo_with(g_dsn, role, NULL);
    if (fx_pg_store(fx, conninfo, fx->schema, fx->prefix, no_create, &s, E) != PGSCHED_OK) {
        free(conninfo);
        fail_msg("create: %s", fx->err.message);
    }
    free(conninfo);
    return s;
}

STORE_TEST(pg_setup_names_each_privilege_a_check_only_role_lacks)
{
    static const struct {
        const char *omit, *named;
    } cases[] = {
        {"USAGE ON SEQUENCE seq", "USAGE on sequence"},
        {"INSERT ON TABLE runs", "INSERT on table"},
        {"DELETE ON TABLE nodes", "DELETE on table"},
        {"UPDATE ON TABLE jobs", "UPDATE on table"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pgsched_store *s = store_of_role_without(fx, cases[i].omit, 1);
        FAILS(PGSCHED_ERR_DATABASE, pgsched_store_setup(s, E));
        if (!strstr(fx->err.message, cases[i].named) || !strstr(fx->err.message, "lacks"))
            fail_msg("without %s: %s", cases[i].omit, fx->err.message);
    }
    assert_true(fx->nroles <= 4);
}

STORE_TEST(pg_setup_refuses_a_select_only_role_naming_what_it_lacks)
{
    char role[64], *conninfo;
    pgsched_store *s;
    snprintf(role, sizeof role, "r_%ld_%d", (long)getpid(), ++g_schema_counter);
    snprintf(fx->roles[fx->nroles++], sizeof fx->roles[0], "%s", role);
    admin_exec("CREATE ROLE \"%s\" LOGIN", role);
    admin_exec("GRANT USAGE ON SCHEMA \"%s\" TO \"%s\"", fx->schema, role);
    admin_exec("GRANT SELECT ON ALL TABLES IN SCHEMA \"%s\" TO \"%s\"", fx->schema, role);
    admin_exec("GRANT SELECT ON ALL SEQUENCES IN SCHEMA \"%s\" TO \"%s\"", fx->schema, role);
    conninfo = conninfo_with(g_dsn, role, NULL);
    if (fx_pg_store(fx, conninfo, fx->schema, fx->prefix, 1, &s, E) != PGSCHED_OK) {
        free(conninfo);
        fail_msg("create: %s", fx->err.message);
    }
    free(conninfo);
    FAILS(PGSCHED_ERR_DATABASE, pgsched_store_setup(s, E));
    if (!strstr(fx->err.message, "INSERT on table") || !strstr(fx->err.message, "USAGE on sequence"))
        fail_msg("%s", fx->err.message);
}

STORE_TEST(pg_default_mode_run_by_a_row_privilege_role_hints_at_no_create_schema)
{
    pgsched_store *s = store_of_role_without(fx, NULL, 0);
    FAILS(PGSCHED_ERR_DATABASE, pgsched_store_setup(s, E));
    if (!strstr(fx->err.message, "permission denied") ||
        !strstr(fx->err.message, "no_create_schema"))
        fail_msg("%s", fx->err.message);
}

STORE_TEST(pg_a_role_with_only_row_privileges_can_run_a_node)
{
    char role[64], *conninfo;
    pgsched_store *s;
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    pgsched_listener *l;
    const pgsched_job *j;
    pgsched_outcome oc;
    pgsched_finish_result fr;
    pgsched_change_outcome co;
    pgsched_cleanup_request cr;
    pgsched_cleanup_outcome clo;
    pgsched_node_record node;
    const char *names[1] = {"priv"};
    pgsched_time now;
    evlog *g = fx_evlog(fx);

    snprintf(role, sizeof role, "r_%ld_%d", (long)getpid(), ++g_schema_counter);
    snprintf(fx->roles[fx->nroles++], sizeof fx->roles[0], "%s", role);
    admin_exec("CREATE ROLE \"%s\" LOGIN", role);
    grant_node_privileges(fx, role, NULL);
    conninfo = conninfo_with(g_dsn, role, NULL);
    if (fx_pg_store(fx, conninfo, fx->schema, fx->prefix, 1, &s, E) != PGSCHED_OK) {
        free(conninfo);
        fail_msg("create: %s", fx->err.message);
    }
    free(conninfo);
    OK(pgsched_store_setup(s, E));
    l = fx_listen(fx, s);

    memset(&node, 0, sizeof node);
    node.id = "node-1";
    node.host = "h";
    node.names = names;
    node.name_count = 1;
    OK(pgsched_store_node_register(s, &node, E));
    req = once_req("priv", "k", 0);
    OK(pgsched_store_schedule(s, &req, &so, E));
    j = &claim_of(fx, s, "node-1", "priv", 1, NULL)->items[0];
    OK(pgsched_store_heartbeat(s, "node-1", NULL, 0, 1, NULL, &now, E));
    OK(pgsched_store_cancel(s, "priv", "k", "node-1", &co, E));
    oc = outcome_of(j, PGSCHED_OUTCOME_CANCELLED, PGSCHED_COMPLETED, 0);
    OK(pgsched_store_finish(s, &oc, 1, &fr, E));
    assert_int_equal(fr.code, PGSCHED_OK);
    assert_int_equal(get_job_of(fx, s, "priv", "k")->status, PGSCHED_COMPLETED);
    assert_non_null(evlog_await(fx, s, l, g, PGSCHED_EVENT_CHANGE, "priv", "k", fr.version));
    {
        pgsched_job_list *back = fx_jlist(fx);
        OK(pgsched_store_take_back(s, "node-1", PGSCHED_SECOND, 10, back, E));
    }
    memset(&cr, 0, sizeof cr);
    cr.node_id = "node-1";
    cr.finished_retention = cr.history_retention = cr.orphan_timeout = PGSCHED_MICROSECOND;
    OK(pgsched_store_cleanup(s, &cr, &clo, E));
    OK(pgsched_store_node_unregister(s, "node-1", E));
}

typedef struct setup_ctx {
    pgsched_store *s;
    pthread_barrier_t *start;
    pgsched_result rc;
    char message[PGSCHED_ERROR_MAX];
} setup_ctx;

static void *setup_worker(void *arg)
{
    setup_ctx *c = (setup_ctx *)arg;
    pgsched_error e;
    memset(&e, 0, sizeof e);
    pthread_barrier_wait(c->start);
    c->rc = pgsched_store_setup(c->s, &e);
    snprintf(c->message, sizeof c->message, "%s", e.message);
    return NULL;
}

STORE_TEST(pg_eight_nodes_setting_up_a_fresh_schema_at_once_migrate_it_once)
{
    enum { N = 8 };
    const char *schema = fx_new_schema_name(fx);
    setup_ctx ctx[N];
    pthread_t th[N];
    pthread_barrier_t start;
    pgsched_schedule_request req = once_req("n", "k", 0);
    pgsched_schedule_outcome so;
    int i;
    pthread_barrier_init(&start, NULL, N);
    for (i = 0; i < N; i++) {
        memset(&ctx[i], 0, sizeof ctx[i]);
        ctx[i].start = &start;
        OK(fx_pg_store(fx, NULL, schema, "m_", 0, &ctx[i].s, E));
    }
    for (i = 0; i < N; i++) assert_int_equal(pthread_create(&th[i], NULL, setup_worker, &ctx[i]), 0);
    for (i = 0; i < N; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (i = 0; i < N; i++)
        if (ctx[i].rc != PGSCHED_OK) fail_msg("setup %d failed: %s", i, ctx[i].message);
    assert_int_equal(admin_int("SELECT count(*) - count(DISTINCT version) FROM \"%s\".m_schema_version",
                               schema),
                     0);
    assert_true(admin_int("SELECT count(*) FROM \"%s\".m_schema_version", schema) >= 1);
    OK(pgsched_store_schedule(ctx[3].s, &req, &so, E));
    assert_int_equal(get_job_of(fx, ctx[5].s, "n", "k")->version, so.version);
}

/* Terminates every backend whose application_name is `app` and waits until they are gone. */
static void terminate_backends(const char *app)
{
    pgsched_time deadline = mono_us() + 10 * PGSCHED_SECOND;
    long long n = admin_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = '%s' AND pid <> pg_backend_pid()",
                            app);
    assert_true(n > 0);
    while (admin_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app) >
           0) {
        if (mono_us() > deadline) fail_msg("backends of %s did not go away", app);
        sleep_us(10 * PGSCHED_MILLISECOND);
    }
}

/* Terminates the pool connections of store `s` (whose connections carry application_name
   `app`) and waits until each one's goodbye has reached this side: a backend leaves
   pg_stat_activity a moment before its socket is closed, and a call made in between meets a
   connection that still looks fine and is not a case a client can tell apart. */
static void terminate_pool(pgsched_store *s, const char *app)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched_time deadline = mono_us() + 10 * PGSCHED_SECOND;
    int i;
    terminate_backends(app);
    for (i = 0; i < p->nconns; i++) {
        struct pollfd f;
        if (!p->conns[i].conn || PQstatus(p->conns[i].conn) != CONNECTION_OK) continue;
        f.fd = PQsocket(p->conns[i].conn);
        f.events = POLLIN;
        f.revents = 0;
        while (poll(&f, 1, 10) <= 0)
            if (mono_us() > deadline) fail_msg("a terminated connection of %s is still quiet", app);
    }
}

/* A store on the fixture's schema whose connections carry application_name `app` (a fresh
   name, written there), set up. */
static pgsched_store *fx_named_store(fixture *fx, char *app, size_t app_size)
{
    char *conninfo;
    pgsched_store *s;
    pgsched_result rc;
    snprintf(app, app_size, "pgsched_test_%ld_%d", (long)getpid(), ++g_schema_counter);
    conninfo = conninfo_with(g_dsn, NULL, app);
    rc = fx_pg_store(fx, conninfo, fx->schema, fx->prefix, 0, &s, E);
    free(conninfo);
    if (rc != PGSCHED_OK) fail_msg("create: %s", fx->err.message);
    OK(pgsched_store_setup(s, E));
    return s;
}

STORE_TEST(pg_calls_recover_after_the_store_connections_are_terminated)
{
    /* Each call right after its connections were killed (and are gone) succeeds at once:
       the dead connection is found and replaced before a statement is sent on it, so no
       call depends on being repeated, and one that must not be repeated (schedule, claim)
       does not fail. */
    char app[64];
    pgsched_store *s = fx_named_store(fx, app, sizeof app);
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    pgsched_claim_request cr;
    pgsched_claim_outcome info;
    pgsched_job_list *l = fx_jlist(fx);
    pgsched_outcome oc;
    pgsched_finish_result fr;
    pgsched_time now;
    const char *names[1] = {"conn"};

    req = once_req("conn", "a", 0);
    OK(pgsched_store_schedule(s, &req, &so, E));
    assert_true(admin_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
                          app) > 0);

    terminate_pool(s, app);
    OK(pgsched_store_now(s, &now, E));

    terminate_pool(s, app);
    req = once_req("conn", "b", 0);
    OK(pgsched_store_schedule(s, &req, &so, E));
    assert_int_equal(so.created, 1);

    terminate_pool(s, app);
    memset(&cr, 0, sizeof cr);
    cr.node_id = "node-1";
    cr.names = names;
    cr.name_count = 1;
    cr.max = 1;
    OK(pgsched_store_claim(s, &cr, l, &info, E));
    assert_int_equal(l->count, 1);
    /* exactly one row is running: the one the claim returned */
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"%sjobs\" WHERE name = 'conn' AND "
                               "status = 'running'",
                               fx->schema, fx->prefix),
                     1);
    assert_int_equal(get_job(fx, "conn", l->items[0].key)->status, PGSCHED_RUNNING);

    terminate_pool(s, app);
    oc = outcome_of(&l->items[0], PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    OK(pgsched_store_finish(s, &oc, 1, &fr, E));
    assert_int_equal(fr.code, PGSCHED_OK);
    assert_int_equal(fr.replayed, 0);
    assert_int_equal(get_job(fx, "conn", l->items[0].key)->status, PGSCHED_COMPLETED);
    assert_int_equal(history_of(fx, "conn", l->items[0].key, 0)->count, 1);
}

STORE_TEST(pg_a_listener_gets_a_resync_after_its_connection_is_restored)
{
    char app[64], *conninfo;
    pgsched_store *s;
    pgsched_listener *l;
    pgsched_schedule_outcome so;
    pgsched_time deadline;
    evlog *g = fx_evlog(fx);

    snprintf(app, sizeof app, "pgsched_test_%ld_%d", (long)getpid(), ++g_schema_counter);
    conninfo = conninfo_with(g_dsn, NULL, app);
    if (fx_pg_store(fx, conninfo, fx->schema, fx->prefix, 0, &s, E) != PGSCHED_OK) {
        free(conninfo);
        fail_msg("create: %s", fx->err.message);
    }
    free(conninfo);
    OK(pgsched_store_setup(s, E));
    l = fx_listen(fx, s);
    so = schedule_once(fx, "resync", "before", 0);
    assert_non_null(evlog_await(fx, s, l, g, PGSCHED_EVENT_CHANGE, "resync", "before",
                                so.version));

    terminate_backends(app);
    deadline = mono_us() + 15 * PGSCHED_SECOND;
    while (!evlog_has_resync(g) && mono_us() < deadline)
        evlog_wait(fx, s, l, g, 100 * PGSCHED_MILLISECOND);
    if (!evlog_has_resync(g)) fail_msg("no RESYNC event after the listener's connection died");
    /* and it hears changes again */
    so = schedule_once(fx, "resync", "after", 0);
    if (!evlog_await(fx, s, l, g, PGSCHED_EVENT_CHANGE, "resync", "after", so.version))
        fail_msg("the listener heard nothing after reconnecting");
}

STORE_TEST(pg_an_unreachable_database_is_a_connection_error_that_hides_the_password)
{
    pgsched_store *s;
    pgsched_error e;
    pgsched_result rc;
    pgsched_time now;
    memset(&e, 0, sizeof e);
    rc = fx_pg_store(fx, "host=/nonexistent-socket-dir port=1 user=nobody password=hunter2secret "
                         "connect_timeout=2",
                     fx->schema, fx->prefix, 0, &s, &e);
    if (rc == PGSCHED_OK) rc = pgsched_store_setup(s, &e);
    assert_int_equal(rc, PGSCHED_ERR_CONNECTION);
    if (strstr(e.message, "hunter2secret")) fail_msg("the password leaked: %s", e.message);
    if (s) {
        memset(&e, 0, sizeof e);
        assert_int_equal(pgsched_store_now(s, &now, &e), PGSCHED_ERR_CONNECTION);
        assert_true(e.message[0] != '\0');
        if (strstr(e.message, "hunter2secret")) fail_msg("the password leaked: %s", e.message);
    }
}

STORE_TEST(pg_listeners_hear_nothing_from_another_schema_with_the_same_prefix)
{
    const char *other = fx_new_schema_name(fx);
    pgsched_store *s2;
    pgsched_listener *l = fx_listen(fx, fx->store);
    pgsched_schedule_request req = once_req("same", "k", 0);
    pgsched_schedule_outcome so, mine;
    evlog *g = fx_evlog(fx);
    size_t i;
    OK(fx_pg_store(fx, NULL, other, fx->prefix, 0, &s2, E));
    OK(pgsched_store_setup(s2, E));
    OK(pgsched_store_schedule(s2, &req, &so, E));
    /* a change of our own, after theirs, marks how far to read */
    mine = schedule_once(fx, "mine", "k", 0);
    assert_non_null(evlog_await(fx, fx->store, l, g, PGSCHED_EVENT_CHANGE, "mine", "k",
                                mine.version));
    for (i = 0; i < g->n; i++)
        if (strcmp(g->ev[i].name, "same") == 0)
            fail_msg("an event of schema %s reached a listener of schema %s", other, fx->schema);
}

STORE_TEST(pg_an_oversized_notification_becomes_a_resync_and_the_claim_still_commits)
{
    /* Keys are at most 256 bytes through the API; a row written by hand can be larger, and its
       notification (8000 bytes at most) must not fail the claim's transaction. */
    pgsched_listener *l = fx_listen(fx, fx->store);
    pgsched_job_list *got;
    pgsched_time deadline;
    evlog *g = fx_evlog(fx);
    admin_exec("INSERT INTO \"%s\".\"%sjobs\" (name, key, status, kind, params, max_retries, "
               "attempt, next_run, version) VALUES ('huge', repeat('k', 9000), 'pending', 'once', "
               "'{}', 0, 0, now() - interval '1 hour', nextval('\"%s\".\"%sseq\"'))",
               fx->schema, fx->prefix, fx->schema, fx->prefix);
    /* the claim commits; the row, whose key no call could name, is quarantined rather than
       handed out (see the poison row tests) */
    got = claim(fx, "node-1", "huge", 1, NULL);
    assert_int_equal(got->count, 0);
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"%sjobs\" WHERE name = 'huge' AND "
                               "status = 'failed'",
                               fx->schema, fx->prefix),
                     1);
    deadline = mono_us() + 10 * PGSCHED_SECOND;
    while (!evlog_has_resync(g) && mono_us() < deadline)
        evlog_wait(fx, fx->store, l, g, 100 * PGSCHED_MILLISECOND);
    if (!evlog_has_resync(g)) fail_msg("the oversized change was neither delivered nor a RESYNC");
}

/* ---- row locks held by other transactions --------------------------------------------- */

STORE_TEST(pg_heartbeat_and_finish_skip_a_row_another_transaction_has_locked)
{
    /* A caller's own open transaction that locked a running row (scheduling inside it, say)
       must not hold up a node's heartbeat or its outcomes past the 5 s lock timeout: that
       row is reported busy and the others go through. */
    const pgsched_job *k1 = schedule_and_claim(fx, "node-1", "locked", "k1");
    const pgsched_job *k2 = schedule_and_claim(fx, "node-1", "locked", "k2");
    const pgsched_job *k1_before;
    PGconn *w = fx_connect(fx);
    pgsched_lease leases[2];
    pgsched_lease_state st[2];
    pgsched_outcome oc[2];
    pgsched_finish_result r[2];
    pgsched_time now, t0;
    pgsched_duration took;
    char sql[512];
    PGresult *res;

    fx_advance(fx, fx->unit);
    res = PQexec(w, "BEGIN");
    admin_check(res, "BEGIN");
    PQclear(res);
    snprintf(sql, sizeof sql,
             "SELECT 1 FROM \"%s\".\"%sjobs\" WHERE name = 'locked' AND key = 'k1' FOR UPDATE",
             fx->schema, fx->prefix);
    res = PQexec(w, sql);
    admin_check(res, sql);
    assert_int_equal(PQntuples(res), 1);
    PQclear(res);
    k1_before = get_job(fx, "locked", "k1");

    leases[0] = lease_of(k1);
    leases[1] = lease_of(k2);
    st[0].lost = st[1].lost = st[0].busy = st[1].busy = -1;
    t0 = mono_us();
    OK(pgsched_store_heartbeat(fx->store, "node-1", leases, 2, 1, st, &now, E));
    took = mono_us() - t0;
    if (took >= 2 * PGSCHED_SECOND)
        fail_msg("the heartbeat waited %lld ms for the locked row", (long long)(took / 1000));
    assert_int_equal(st[0].lost, 0);
    assert_int_equal(st[0].busy, 1);
    assert_int_equal(st[1].lost, 0);
    assert_int_equal(st[1].busy, 0);
    assert_int_equal(get_job(fx, "locked", "k1")->heartbeat_at, k1->heartbeat_at);
    assert_true(get_job(fx, "locked", "k2")->heartbeat_at > k2->heartbeat_at);

    oc[0] = outcome_of(k1, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    oc[1] = outcome_of(k2, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    memset(r, 0, sizeof r);
    t0 = mono_us();
    OK(pgsched_store_finish(fx->store, oc, 2, r, E));
    took = mono_us() - t0;
    if (took >= 2 * PGSCHED_SECOND)
        fail_msg("the finish waited %lld ms for the locked row", (long long)(took / 1000));
    if (r[0].code != PGSCHED_ERR_BUSY)
        fail_msg("the locked row's outcome got code %d (%s), expected BUSY", (int)r[0].code,
                 pgsched_result_string(r[0].code));
    assert_int_equal(r[0].replayed, 0);
    assert_int_equal(r[1].code, PGSCHED_OK);
    assert_int_equal(r[1].new_status, PGSCHED_COMPLETED);
    assert_job_equal(get_job(fx, "locked", "k1"), k1_before);
    assert_int_equal(history_of(fx, "locked", "k1", 0)->count, 0);
    assert_int_equal(get_job(fx, "locked", "k2")->status, PGSCHED_COMPLETED);

    /* the other transaction ends: the busy outcome is written by the next try */
    res = PQexec(w, "COMMIT");
    admin_check(res, "COMMIT");
    PQclear(res);
    memset(r, 0, sizeof r);
    OK(pgsched_store_finish(fx->store, oc, 1, r, E));
    assert_int_equal(r[0].code, PGSCHED_OK);
    assert_int_equal(r[0].replayed, 0);
    assert_int_equal(r[0].new_status, PGSCHED_COMPLETED);
    assert_int_equal(get_job(fx, "locked", "k1")->status, PGSCHED_COMPLETED);
    assert_int_equal(history_of(fx, "locked", "k1", 0)->count, 1);
}

/* ---- connections ---------------------------------------------------------------------- */


STORE_TEST(pg_a_pooled_connection_the_server_closed_while_idle_is_replaced_before_use)
{
    /* A restart or an idle_session_timeout closes connections that sit in the pool. The
       next call must notice before it sends anything: a schedule is not repeated after a
       lost reply, so a dead connection found only by sending it would fail the call. */
    char app[64];
    pgsched_store *s = fx_named_store(fx, app, sizeof app);
    pgsched_schedule_request req = once_req("idle", "a", 0);
    pgsched_schedule_outcome so;
    OK(pgsched_store_schedule(s, &req, &so, E));
    terminate_pool(s, app);
    req = once_req("idle", "b", 0);
    memset(&so, 0, sizeof so);
    OK(pgsched_store_schedule(s, &req, &so, E));
    assert_int_equal(so.created, 1);
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"%sjobs\" WHERE name = 'idle'",
                               fx->schema, fx->prefix),
                     2);
}

STORE_TEST(pg_connections_run_read_committed_whatever_the_session_default)
{
    /* Every statement is written for READ COMMITTED; a role or database default of
       SERIALIZABLE (set here through the connection's options) must not apply. */
    char *conninfo = conninfo_set(g_dsn, "options", "-c default_transaction_isolation=serializable");
    pgsched__pg *p;
    pgsched_store *s;
    pgsched_schedule_request req = once_req("iso", "k", 0);
    pgsched_schedule_outcome so;
    claim_ctx ctx[CLAIM_THREADS];
    pthread_t th[CLAIM_THREADS];
    pthread_barrier_t start;
    PGconn *plain;
    PGresult *res;
    int i, checked = 0;
    size_t total = 0;

    /* the option does what this test relies on */
    plain = PQconnectdb(conninfo);
    res = PQexec(plain, "SHOW default_transaction_isolation");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        PQfinish(plain);
        free(conninfo);
        fail_msg("SHOW on a plain connection failed");
    }
    i = strcmp(PQgetvalue(res, 0, 0), "serializable");
    PQclear(res);
    PQfinish(plain);
    if (i != 0) {
        free(conninfo);
        fail_msg("the options keyword did not set the default isolation");
    }

    if (fx_pg_store(fx, conninfo, fx->schema, fx->prefix, 0, &s, E) != PGSCHED_OK) {
        free(conninfo);
        fail_msg("create: %s", fx->err.message);
    }
    OK(pgsched_store_setup(s, E));
    OK(pgsched_store_schedule(s, &req, &so, E));
    p = (pgsched__pg *)s;
    for (i = 0; i < p->nconns; i++) {
        if (!p->conns[i].conn) continue;
        res = PQexec(p->conns[i].conn, "SHOW default_transaction_isolation");
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        if (strcmp(PQgetvalue(res, 0, 0), "read committed") != 0) {
            char got[64];
            snprintf(got, sizeof got, "%s", PQgetvalue(res, 0, 0));
            PQclear(res);
            free(conninfo);
            fail_msg("pool connection %d runs %s", i, got);
        }
        PQclear(res);
        checked++;
    }
    assert_true(checked > 0);

    /* and racing claims, which under SERIALIZABLE fail on rows another claim just took,
       all go through */
    pthread_barrier_init(&start, NULL, CLAIM_THREADS);
    for (i = 0; i < CLAIM_THREADS; i++) {
        memset(&ctx[i], 0, sizeof ctx[i]);
        ctx[i].fx = fx;
        if (fx_pg_store(fx, conninfo, fx->schema, fx->prefix, 0, &ctx[i].s, E) != PGSCHED_OK) {
            free(conninfo);
            fail_msg("create: %s", fx->err.message);
        }
        OK(pgsched_store_setup(ctx[i].s, E));
        ctx[i].id = i;
        ctx[i].first = i * 150;
        ctx[i].rows = 150;
        ctx[i].base = fx_now(fx) - fx->unit;
        ctx[i].start = &start;
    }
    free(conninfo);
    for (i = 0; i < CLAIM_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, claim_worker, &ctx[i]), 0);
    for (i = 0; i < CLAIM_THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (i = 0; i < CLAIM_THREADS; i++) {
        if (ctx[i].failed) fail_msg("claimer-%d: %s", i, ctx[i].message);
        total += ctx[i].n;
    }
    for (i = 0; i < CLAIM_THREADS; i++) free(ctx[i].got);
    assert_int_equal(total, (size_t)CLAIM_THREADS * 150);
}

STORE_TEST(pg_the_pool_prefers_a_live_connection_over_a_slot_waiting_out_its_backoff)
{
    pgsched_pg_config cfg;
    pgsched_store *s = NULL;
    pgsched__pg *p;
    pgsched__pgc *a, *b;
    pgsched_time now;
    pgsched_schedule_request req = once_req("pool", "k", 0);
    pgsched_schedule_outcome so;

    memset(&cfg, 0, sizeof cfg);
    cfg.conninfo = g_dsn;
    cfg.schema = fx->schema;
    cfg.prefix = fx->prefix;
    cfg.pool_size = 2;
    OK(pgsched_pg_store_create(&cfg, &s, E));
    fx_keep_store(fx, s);
    OK(pgsched_store_setup(s, E));
    p = (pgsched__pg *)s;
    assert_int_equal(p->nconns, 2);
    /* both slots connected: two overlapping acquisitions */
    OK(pgsched__pg_acquire(p, &a, E));
    OK(pgsched__pg_acquire(p, &b, E));
    assert_true(a != b);
    pgsched__pg_release(p, a);
    pgsched__pg_release(p, b);
    assert_non_null(p->conns[0].conn);
    assert_non_null(p->conns[1].conn);

    /* slot 0 lost its connection and its reconnect failed a moment ago */
    pthread_mutex_lock(&p->mu);
    PQfinish(p->conns[0].conn);
    p->conns[0].conn = NULL;
    p->conns[0].prepared = 0;
    p->retry_at = pgsched__monotonic() + PGSCHED_HOUR;
    snprintf(p->last_conn_error, sizeof p->last_conn_error, "simulated refusal");
    pthread_mutex_unlock(&p->mu);

    OK(pgsched_store_now(s, &now, E));
    OK(pgsched_store_schedule(s, &req, &so, E));
    assert_null(p->conns[0].conn);      /* no connection attempt during the backoff */
    assert_non_null(p->conns[1].conn);

    /* with no live connection left, the backoff answers at once, with the last error */
    pthread_mutex_lock(&p->mu);
    PQfinish(p->conns[1].conn);
    p->conns[1].conn = NULL;
    p->conns[1].prepared = 0;
    pthread_mutex_unlock(&p->mu);
    FAILS(PGSCHED_ERR_CONNECTION, pgsched_store_now(s, &now, E));
    if (!strstr(fx->err.message, "simulated refusal"))
        fail_msg("the error does not carry the last connect error: %s", fx->err.message);
    /* and once it is over, the pool connects again */
    pthread_mutex_lock(&p->mu);
    p->retry_at = 0;
    pthread_mutex_unlock(&p->mu);
    OK(pgsched_store_now(s, &now, E));
}

/* ---- setting up -------------------------------------------------------------------------- */

STORE_TEST(pg_several_prefixes_set_up_at_once_in_a_new_schema_all_succeed)
{
    enum { N = 8 };
    const char *schema = fx_new_schema_name(fx);
    setup_ctx ctx[N];
    pthread_t th[N];
    pthread_barrier_t start;
    char prefix[N][16];
    int i;
    pthread_barrier_init(&start, NULL, N);
    for (i = 0; i < N; i++) {
        memset(&ctx[i], 0, sizeof ctx[i]);
        ctx[i].start = &start;
        snprintf(prefix[i], sizeof prefix[i], "p%d_", i);
        OK(fx_pg_store(fx, NULL, schema, prefix[i], 0, &ctx[i].s, E));
    }
    for (i = 0; i < N; i++) assert_int_equal(pthread_create(&th[i], NULL, setup_worker, &ctx[i]), 0);
    for (i = 0; i < N; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (i = 0; i < N; i++)
        if (ctx[i].rc != PGSCHED_OK)
            fail_msg("setup of prefix %s failed: %d (%s): %s", prefix[i], (int)ctx[i].rc,
                     pgsched_result_string(ctx[i].rc), ctx[i].message);
    for (i = 0; i < N; i++) {
        pgsched_schedule_request req = once_req("n", prefix[i], 0);
        pgsched_schedule_outcome so;
        OK(pgsched_store_schedule(ctx[i].s, &req, &so, E));
        assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".\"%sjobs\" WHERE key = '%s'",
                                   schema, prefix[i], prefix[i]),
                         1);
    }
}

/* Backends waiting for an advisory lock; -1 on error (no assertion: a thread may run). */
static long long advisory_waiters(void)
{
    PGresult *r = PQexec(g_admin, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND NOT granted");
    long long n = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

STORE_TEST(pg_a_setup_waiting_for_the_migration_lock_waits_past_the_lock_timeout)
{
    /* Another node migrating a large table holds the lock a long while: the 5 s
       lock_timeout of the store's connections must not cut the wait short. */
    const char *schema = fx_new_schema_name(fx);
    PGconn *w = fx_connect(fx);
    setup_ctx ctx;
    pthread_t th;
    pthread_barrier_t start;
    char sql[512], why[1024] = "";
    pgsched_time deadline, seen_at = 0, held_until;
    int waited = 0, gave_up = 0, committed;

    snprintf(sql, sizeof sql,
             "SELECT pg_advisory_xact_lock(hashtextextended('pgsched migrate %s', 0))", schema);
    if (!change_exec(w, "BEGIN", why, sizeof why) || !change_exec(w, sql, why, sizeof why))
        fail_msg("taking the migration lock failed: %s", why);
    memset(&ctx, 0, sizeof ctx);
    OK(fx_pg_store(fx, NULL, schema, "w_", 0, &ctx.s, E));
    pthread_barrier_init(&start, NULL, 1);
    ctx.start = &start;
    assert_int_equal(pthread_create(&th, NULL, setup_worker, &ctx), 0);
    /* no assertion until the thread is joined */
    deadline = mono_us() + 10 * PGSCHED_SECOND;
    while (mono_us() < deadline && advisory_waiters() < 1) sleep_us(10 * PGSCHED_MILLISECOND);
    if (advisory_waiters() >= 1) {
        waited = 1;
        seen_at = mono_us();
        /* hold it past the lock timeout, watching that the setup keeps waiting */
        held_until = seen_at + 5500 * PGSCHED_MILLISECOND;
        while (mono_us() < held_until) {
            if (advisory_waiters() < 1) {
                gave_up = 1;
                break;
            }
            sleep_us(100 * PGSCHED_MILLISECOND);
        }
    }
    committed = change_exec(w, "COMMIT", why, sizeof why);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&start);
    if (!waited) fail_msg("the setup never waited for the migration lock (rc %d)", (int)ctx.rc);
    if (gave_up)
        fail_msg("the setup stopped waiting after %lld ms: %d (%s): %s",
                 (long long)((mono_us() - seen_at) / 1000), (int)ctx.rc,
                 pgsched_result_string(ctx.rc), ctx.message);
    if (!committed) fail_msg("the lock holder did not commit: %s", why);
    if (ctx.rc != PGSCHED_OK)
        fail_msg("setup after the wait failed: %d (%s): %s", (int)ctx.rc,
                 pgsched_result_string(ctx.rc), ctx.message);
    assert_int_equal(admin_int("SELECT count(*) FROM \"%s\".w_schema_version", schema),
                     PGSCHED__PG_SCHEMA_VERSION); /* one row per migration, each applied once */
}

STORE_TEST(pg_a_database_not_in_utf8_is_refused_at_setup_naming_its_encoding)
{
    const char *db = fx_new_database_name(fx);
    char *conninfo;
    pgsched_store *s;
    PGconn *c;
    long long schemas = -1;
    PGresult *res;
    admin_exec("CREATE DATABASE \"%s\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' "
               "LC_CTYPE 'C'",
               db);
    conninfo = conninfo_set(g_dsn, "dbname", db);
    if (fx_pg_store(fx, conninfo, "latin", "l_", 0, &s, E) != PGSCHED_OK) {
        free(conninfo);
        fail_msg("create: %s", fx->err.message);
    }
    FAILS(PGSCHED_ERR_UNSUPPORTED, pgsched_store_setup(s, E));
    if (!strstr(fx->err.message, "LATIN1")) {
        free(conninfo);
        fail_msg("the message does not name the encoding: %s", fx->err.message);
    }
    /* nothing was created there */
    c = PQconnectdb(conninfo);
    free(conninfo);
    res = PQexec(c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'latin'");
    if (PQresultStatus(res) == PGRES_TUPLES_OK) schemas = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    assert_int_equal(schemas, 0);
}

STORE_TEST(pg_a_password_never_appears_in_a_connect_error)
{
    /* libpq quotes a malformed connection string back in its message; an unreachable
       server's message names host and port. Neither may carry the password on. */
    static const char *const conninfos[] = {
        "postgresql://u:s3cr3tpw@[::1/db",
        "host=127.0.0.1 port=1 password=s3cr3tpw connect_timeout=1",
        "host=127.0.0.1 port=1 password='s3cr3tpw' connect_timeout=1 dbname='x y",
        /* an unencoded '/' or '@' in a URI's password: libpq reads a piece of it as the port
           or the host, and quotes that piece */
        "postgresql://u:s3cr3tpw/hunter22@127.0.0.1:1/db?connect_timeout=1",
        "postgresql://u:hunter22@s3cr3tpw@127.0.0.1:1/db?connect_timeout=1",
        NULL, /* a URI whose password straddles where the message is cut (below) */
    };
    char long_uri[400];
    size_t i;
    snprintf(long_uri, sizeof long_uri, "postgresql://%0145d:s3cr3tpw-and-more@[::1/db", 0);
    for (i = 0; i < sizeof conninfos / sizeof conninfos[0]; i++) {
        pgsched_store *s;
        pgsched_time now;
        OK(fx_pg_store(fx, conninfos[i] ? conninfos[i] : long_uri, fx->schema, fx->prefix, 0, &s,
                       E));
        FAILS(PGSCHED_ERR_CONNECTION, pgsched_store_setup(s, E));
        if (strstr(fx->err.message, "s3cr3tpw") || strstr(fx->err.message, "s3cr3") ||
            strstr(fx->err.message, "hunter22"))
            fail_msg("conninfo %u: the password leaked: %s", (unsigned)i, fx->err.message);
        /* and the same from the backoff that follows */
        FAILS(PGSCHED_ERR_CONNECTION, pgsched_store_now(s, &now, E));
        if (strstr(fx->err.message, "s3cr3tpw") || strstr(fx->err.message, "hunter22"))
            fail_msg("conninfo %u: the password leaked: %s", (unsigned)i, fx->err.message);
    }
}

/* ---- search_path: look-alike functions planted by an unprivileged role ---------------------- */

/* What a role with nothing but CREATE on `public` (everyone's right up to PostgreSQL 14) can
   plant there: functions and operators that beat pg_catalog's for the argument types the
   library's statements use (nextval(text) over nextval(regclass), ...), others that tie with
   pg_catalog's and win on a search path that lists public first (now(), =), and domains named
   like the types in casts. Each records its call in public.calls and then does what the
   original does, so that a hijacked statement still works and only the record tells. */
static const char *const look_alikes[] = {
    "CREATE TABLE public.calls (what text, app text, query text)",
    "GRANT INSERT ON public.calls TO PUBLIC",
    "CREATE FUNCTION public.rec(w pg_catalog.text) RETURNS pg_catalog.bool LANGUAGE sql AS "
    "$$ INSERT INTO public.calls VALUES (w, pg_catalog.current_setting('application_name'), "
    "pg_catalog.current_query()) RETURNING true $$",
    "CREATE FUNCTION public.nextval(pg_catalog.text) RETURNS pg_catalog.int8 LANGUAGE sql AS "
    "$$ SELECT public.rec('nextval(text)'); SELECT pg_catalog.nextval($1::pg_catalog.regclass) $$",
    "CREATE FUNCTION public.concat_ws(pg_catalog.text, VARIADIC pg_catalog.text[]) "
    "RETURNS pg_catalog.text LANGUAGE sql AS $$ SELECT public.rec('concat_ws(text, text[])'); "
    "SELECT pg_catalog.array_to_string($2, $1) $$",
    "CREATE FUNCTION public.unnest(pg_catalog.text[]) RETURNS SETOF pg_catalog.text LANGUAGE sql "
    "AS $$ SELECT public.rec('unnest(text[])'); SELECT pg_catalog.unnest($1) $$",
    "CREATE FUNCTION public.hashtextextended(pg_catalog.text, pg_catalog.int4) "
    "RETURNS pg_catalog.int8 LANGUAGE sql AS $$ SELECT public.rec('hashtextextended(text, int)'); "
    "SELECT pg_catalog.hashtextextended($1, $2) $$",
    "CREATE FUNCTION public.now() RETURNS pg_catalog.timestamptz LANGUAGE sql AS "
    "$$ SELECT public.rec('now()'); SELECT pg_catalog.now() $$",
    "CREATE FUNCTION public.octet_length(pg_catalog.text) RETURNS pg_catalog.int4 LANGUAGE sql "
    "AS $$ SELECT public.rec('octet_length(text)'); SELECT pg_catalog.octet_length($1) $$",
    "CREATE FUNCTION public.pg_notify(pg_catalog.text, pg_catalog.text) RETURNS void "
    "LANGUAGE sql AS $$ SELECT public.rec('pg_notify(text, text)'); "
    "SELECT pg_catalog.pg_notify($1, $2) $$",
    "CREATE FUNCTION public.to_regclass(pg_catalog.text) RETURNS pg_catalog.regclass "
    "LANGUAGE sql AS $$ SELECT public.rec('to_regclass(text)'); "
    "SELECT pg_catalog.to_regclass($1) $$",
    "CREATE FUNCTION public.mul_bi(pg_catalog.int8, pg_catalog.interval) "
    "RETURNS pg_catalog.interval LANGUAGE sql AS $$ SELECT public.rec('*(bigint, interval)'); "
    "SELECT $1::pg_catalog.float8 OPERATOR(pg_catalog.*) $2 $$",
    "CREATE OPERATOR public.* (FUNCTION = public.mul_bi, LEFTARG = pg_catalog.int8, "
    "RIGHTARG = pg_catalog.interval)",
    "CREATE FUNCTION public.mul_ni(pg_catalog.numeric, pg_catalog.int4) "
    "RETURNS pg_catalog.numeric LANGUAGE sql AS $$ SELECT public.rec('*(numeric, integer)'); "
    "SELECT $1 OPERATOR(pg_catalog.*) $2 $$",
    "CREATE OPERATOR public.* (FUNCTION = public.mul_ni, LEFTARG = pg_catalog.numeric, "
    "RIGHTARG = pg_catalog.int4)",
    "CREATE FUNCTION public.eq_tt(pg_catalog.text, pg_catalog.text) RETURNS pg_catalog.bool "
    "LANGUAGE sql AS $$ SELECT public.rec('=(text, text)'); "
    "SELECT $1 OPERATOR(pg_catalog.=) $2 $$",
    "CREATE OPERATOR public.= (FUNCTION = public.eq_tt, LEFTARG = pg_catalog.text, "
    "RIGHTARG = pg_catalog.text)",
    "CREATE FUNCTION public.ne_tt(pg_catalog.text, pg_catalog.text) RETURNS pg_catalog.bool "
    "LANGUAGE sql AS $$ SELECT public.rec('<>(text, text)'); "
    "SELECT $1 OPERATOR(pg_catalog.<>) $2 $$",
    "CREATE OPERATOR public.<> (FUNCTION = public.ne_tt, LEFTARG = pg_catalog.text, "
    "RIGHTARG = pg_catalog.text)",
    "CREATE FUNCTION public.lt_ii(pg_catalog.int4, pg_catalog.int4) RETURNS pg_catalog.bool "
    "LANGUAGE sql AS $$ SELECT public.rec('<(integer, integer)'); "
    "SELECT $1 OPERATOR(pg_catalog.<) $2 $$",
    "CREATE OPERATOR public.< (FUNCTION = public.lt_ii, LEFTARG = pg_catalog.int4, "
    "RIGHTARG = pg_catalog.int4)",
    "CREATE FUNCTION public.eq_xi(pg_catalog.xid, pg_catalog.int4) RETURNS pg_catalog.bool "
    "LANGUAGE sql AS $$ SELECT public.rec('=(xid, integer)'); "
    "SELECT $1 OPERATOR(pg_catalog.=) $2 $$",
    "CREATE OPERATOR public.= (FUNCTION = public.eq_xi, LEFTARG = pg_catalog.xid, "
    "RIGHTARG = pg_catalog.int4)",
    /* last: from here on `text` in this session would still mean pg_catalog.text (pg_catalog
       is searched first when the path does not list it), but be safe */
    "CREATE DOMAIN public.text AS pg_catalog.text CHECK (public.rec('domain text'))",
    "CREATE DOMAIN public.int8 AS pg_catalog.int8 CHECK (public.rec('domain int8'))",
    "CREATE DOMAIN public.int4 AS pg_catalog.int4 CHECK (public.rec('domain int4'))",
    "CREATE DOMAIN public.bool AS pg_catalog.bool CHECK (public.rec('domain bool'))",
    "CREATE DOMAIN public.json AS pg_catalog.json CHECK (public.rec('domain json'))",
    "CREATE DOMAIN public.timestamptz AS pg_catalog.timestamptz "
    "CHECK (public.rec('domain timestamptz'))",
};

static void pg_exec_or_fail(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("%s\n  failed: %s", sql, msg);
    }
    PQclear(r);
}

/* A fresh database whose `public` anyone may create in, with the look-alikes planted there by
   a new role that has no other privilege. Returns a superuser connection to it (closed at
   teardown) and its conninfo in *conninfo (malloc'd). */
static PGconn *hostile_database(fixture *fx, char **conninfo)
{
    const char *db = fx_new_database_name(fx);
    char role[64], sql[256];
    PGconn *c;
    size_t i;
    snprintf(role, sizeof role, "r_%ld_%d", (long)getpid(), ++g_schema_counter);
    snprintf(fx->roles[fx->nroles++], sizeof fx->roles[0], "%s", role);
    admin_exec("CREATE ROLE \"%s\" LOGIN", role);
    admin_exec("CREATE DATABASE \"%s\"", db);
    *conninfo = conninfo_set(g_dsn, "dbname", db);
    assert_true(fx->nconns < 4);
    c = PQconnectdb(*conninfo);
    fx->conns[fx->nconns++] = c;
    if (PQstatus(c) != CONNECTION_OK) fail_msg("cannot connect: %s", PQerrorMessage(c));
    pg_exec_or_fail(c, "SET client_min_messages = warning");
    pg_exec_or_fail(c, "GRANT CREATE ON SCHEMA public TO PUBLIC");
    snprintf(sql, sizeof sql, "SET ROLE \"%s\"", role);
    pg_exec_or_fail(c, sql);
    for (i = 0; i < sizeof look_alikes / sizeof look_alikes[0]; i++)
        pg_exec_or_fail(c, look_alikes[i]);
    pg_exec_or_fail(c, "RESET ROLE");
    /* the bait works: an unqualified call on the default search path takes it */
    pg_exec_or_fail(c, "CREATE TEMP SEQUENCE bait");
    pg_exec_or_fail(c, "SELECT nextval('bait')");
    {
        PGresult *r = PQexec(c, "SELECT count(*) FROM public.calls");
        int n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (n != 1) fail_msg("the planted nextval(text) was not called on the default path");
    }
    pg_exec_or_fail(c, "TRUNCATE public.calls");
    return c;
}

/* Fails the test listing every planted function that was called. */
static void assert_no_look_alike_called(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT what, app, pg_catalog.count(*)::pg_catalog.text || ' calls, "
                            "e.g. in ' || pg_catalog.left(pg_catalog.min(query), 100) "
                            "FROM public.calls GROUP BY 1, 2 ORDER BY 1, 2");
    int i, n;
    char msg[2048];
    size_t len = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        fail_msg("reading public.calls failed: %s", PQerrorMessage(c));
    }
    n = PQntuples(r);
    msg[0] = '\0';
    for (i = 0; i < n && len < sizeof msg - 1; i++)
        len += (size_t)snprintf(msg + len, sizeof msg - len, "\n  %s from %s in: %s",
                                PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    PQclear(r);
    if (n) fail_msg("planted look-alikes were called:%s", msg);
}

/* One request through pgsched_store_schedule_many_tx, as pgsched_schedule_job_tx sends it. */
static pgsched_result schedule_on_caller(pgsched_store *s, PGconn *caller,
                                         const pgsched_schedule_request *req,
                                         pgsched_schedule_outcome *out, pgsched_error *err)
{
    pgsched_result one;
    return pgsched_store_schedule_many_tx(s, caller, req, 1, out, &one, err);
}

STORE_TEST(pg_no_statement_calls_a_look_alike_planted_in_public)
{
    /* Every statement of the store, on its own connections (setup with the migration, pool,
       listener, check-only setup) and on a caller's connection whose search path lists
       public first, in a database where an unprivileged role planted look-alikes. */
    char *conninfo, *callinfo, *appinfo;
    PGconn *admin, *caller;
    pgsched_store *s, *check;
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    pgsched_listener *l;
    pgsched_job_list *claimed, *back = fx_jlist(fx), *got = fx_jlist(fx);
    pgsched_run_list *runs = fx_rlist(fx);
    pgsched_lease lease;
    pgsched_lease_state ls;
    pgsched_outcome oc;
    pgsched_finish_result fr;
    pgsched_change_outcome co;
    pgsched_cleanup_request cr;
    pgsched_cleanup_outcome clo;
    pgsched_node_record node;
    pgsched_list_filter lf;
    pgsched_time now, next;
    const char *names[1] = {"hj"};
    evlog *g = fx_evlog(fx);

    admin = hostile_database(fx, &conninfo);
    appinfo = conninfo_set(conninfo, "application_name", "pgsched_hijack_test");
    free(conninfo);
    if (fx_pg_store(fx, appinfo, fx->schema, fx->prefix, 0, &s, E) != PGSCHED_OK) {
        free(appinfo);
        fail_msg("create: %s", fx->err.message);
    }
    OK(pgsched_store_setup(s, E));
    if (fx_pg_store(fx, appinfo, fx->schema, fx->prefix, 1, &check, E) != PGSCHED_OK) {
        free(appinfo);
        fail_msg("create: %s", fx->err.message);
    }
    OK(pgsched_store_setup(check, E));
    l = fx_listen(fx, s);

    /* the caller's own connection, search path public first, in its own transaction */
    callinfo = conninfo_set(appinfo, "application_name", "caller");
    free(appinfo);
    assert_true(fx->nconns < 4);
    caller = PQconnectdb(callinfo);
    free(callinfo);
    fx->conns[fx->nconns++] = caller;
    if (PQstatus(caller) != CONNECTION_OK) fail_msg("cannot connect: %s", PQerrorMessage(caller));
    pg_exec_or_fail(caller, "SET search_path = public, pg_catalog");
    pg_exec_or_fail(caller, "BEGIN");
    req = once_req("hjtx", "tx", 0);
    OK(schedule_on_caller(s, caller, &req, &so, E));
    assert_int_equal(so.created, 1);
    req.next_run = fx_now(fx) + PGSCHED_HOUR;
    OK(schedule_on_caller(s, caller, &req, &so, E)); /* the ON CONFLICT branch */
    assert_int_equal(so.created, 0);
    pg_exec_or_fail(caller, "COMMIT");

    memset(&node, 0, sizeof node);
    node.id = "node-1";
    node.host = "h";
    node.names = names;
    node.name_count = 1;
    OK(pgsched_store_node_register(s, &node, E));
    OK(pgsched_store_now(s, &now, E));
    req = once_req("hj", "k", 0);
    OK(pgsched_store_schedule(s, &req, &so, E));
    OK(pgsched_store_next_due(s, names, 1, &next, &now, E));
    claimed = claim_of(fx, s, "node-1", "hj", 1, NULL);
    assert_int_equal(claimed->count, 1);
    /* a deferred re-schedule of the running row, on the caller's connection */
    req.apply_after_run = 1;
    pg_exec_or_fail(caller, "BEGIN");
    OK(schedule_on_caller(s, caller, &req, &so, E));
    pg_exec_or_fail(caller, "COMMIT");
    assert_int_equal(so.deferred, 1);
    lease.name = claimed->items[0].name;
    lease.key = claimed->items[0].key;
    lease.token = claimed->items[0].lease;
    OK(pgsched_store_heartbeat(s, "node-1", &lease, 1, 1, &ls, &now, E));
    assert_int_equal(ls.lost, 0);
    OK(pgsched_store_cancel(s, "hj", "k", "node-1", &co, E));
    OK(pgsched_store_take_back(s, "node-2", PGSCHED_MICROSECOND, 10, back, E));
    assert_int_equal(back->count, 1);
    oc = outcome_of(&back->items[0], PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, 0);
    oc.retry_delay = PGSCHED_SECOND;
    oc.cancelled_status = PGSCHED_CANCELLED;
    OK(pgsched_store_finish(s, &oc, 1, &fr, E));
    assert_int_equal(fr.code, PGSCHED_OK);
    assert_non_null(evlog_await(fx, s, l, g, PGSCHED_EVENT_CHANGE, "hj", "k", fr.version));
    OK(pgsched_store_trigger(s, "hj", "k", "node-1", &co, E));
    OK(pgsched_store_get(s, "hj", "k", got, E));
    memset(&lf, 0, sizeof lf);
    lf.name = "hj";
    lf.status = PGSCHED_PENDING;
    lf.after_name = "a";
    lf.after_key = "a";
    OK(pgsched_store_list(s, &lf, got, E));
    OK(pgsched_store_history(s, "hj", "k", 10, runs, E));
    assert_true(runs->count > 0);
    OK(pgsched_store_remove(s, "hj", "k", "node-1", &co, E));
    memset(&cr, 0, sizeof cr);
    cr.node_id = "node-1";
    cr.finished_retention = cr.history_retention = cr.orphan_timeout = PGSCHED_MICROSECOND;
    OK(pgsched_store_cleanup(s, &cr, &clo, E));
    OK(pgsched_store_node_unregister(s, "node-1", E));

    assert_no_look_alike_called(admin);
}

/* SHOW `what` on `c`, into buf. */
static void show_setting(PGconn *c, const char *what, char *buf, size_t size)
{
    char sql[128];
    PGresult *r;
    snprintf(sql, sizeof sql, "SHOW %s", what);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        fail_msg("%s failed: %s", sql, PQerrorMessage(c));
    }
    snprintf(buf, size, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

STORE_TEST(pg_every_connection_pins_its_search_path_keeping_the_users_other_options)
{
    /* The conninfo's own options (a search path among them) still apply, except that the
       search path is the library's, on every connection, again after a reconnect. */
    char app[64], *named, *conninfo, got[256];
    pgsched_store *s;
    pgsched__pg *p;
    pgsched__pgc *c;
    pgsched_listener *l;
    pgsched_time now;
    int round;

    snprintf(app, sizeof app, "pgsched_test_%ld_%d", (long)getpid(), ++g_schema_counter);
    named = conninfo_with(g_dsn, NULL, app);
    conninfo = conninfo_set(named, "options", "-c search_path=public -c work_mem=7777kB");
    free(named);
    if (fx_pg_store(fx, conninfo, fx->schema, fx->prefix, 0, &s, E) != PGSCHED_OK) {
        free(conninfo);
        fail_msg("create: %s", fx->err.message);
    }
    free(conninfo);
    OK(pgsched_store_setup(s, E));
    p = (pgsched__pg *)s;
    for (round = 0; round < 2; round++) {
        if (round == 1) {
            terminate_pool(s, app);
            OK(pgsched_store_now(s, &now, E)); /* reconnects */
        }
        OK(pgsched__pg_acquire(p, &c, E));
        show_setting(c->conn, "search_path", got, sizeof got);
        if (strcmp(got, "pg_catalog, pg_temp") != 0) {
            pgsched__pg_release(p, c);
            fail_msg("round %d: a pool connection's search_path is \"%s\"", round, got);
        }
        show_setting(c->conn, "work_mem", got, sizeof got);
        pgsched__pg_release(p, c);
        assert_string_equal(got, "7777kB");
    }
    l = fx_listen(fx, s);
    show_setting(((pgsched__pglistener *)(void *)l)->conn, "search_path", got, sizeof got);
    assert_string_equal(got, "pg_catalog, pg_temp");
}

#endif /* STORE_SUITE_PG_H */
