/* store_suite_validation.h - bad input: every store gives the same error and writes nothing.

   The wrappers check arguments before a store sees them, so each bad call is made twice: on
   the store under test and on a reference memory store. Both must return the expected code
   with the same message (SPEC §10: "the same from both stores"). */
#ifndef STORE_SUITE_VALIDATION_H
#define STORE_SUITE_VALIDATION_H

/* Runs `call`, an expression over `S` (a store) and `ER` (an error buffer), on the store under
   test and on `ref`; both must fail with `code`, fill the error and say the same thing. */
#define SAME_ERROR(ref, want_, call)                                                            \
    do {                                                                                       \
        pgsched_error se_e1_, se_e2_;                                                          \
        pgsched_result se_r1_, se_r2_;                                                         \
        pgsched_store *S;                                                                      \
        pgsched_error *ER;                                                                     \
        memset(&se_e1_, 0, sizeof se_e1_);                                                     \
        memset(&se_e2_, 0, sizeof se_e2_);                                                     \
        S = fx->store;                                                                         \
        ER = &se_e1_;                                                                          \
        se_r1_ = (call);                                                                       \
        S = (ref);                                                                             \
        ER = &se_e2_;                                                                          \
        se_r2_ = (call);                                                                       \
        if (se_r1_ != (want_))                                                                  \
            fail_msg("%s: %s store returned %d (%s), expected %d (%s): %s", #call,             \
                     fx->pg ? "PostgreSQL" : "memory", (int)se_r1_,                            \
                     pgsched_result_string(se_r1_), (int)(want_), pgsched_result_string(want_),  \
                     se_e1_.message);                                                          \
        if (se_r2_ != (want_))                                                                  \
            fail_msg("%s: reference memory store returned %d (%s), expected %d: %s", #call,    \
                     (int)se_r2_, pgsched_result_string(se_r2_), (int)(want_), se_e2_.message); \
        if (se_e1_.code != (want_) || se_e1_.message[0] == '\0')                               \
            fail_msg("%s: the error was not filled in", #call);                                \
        if (strcmp(se_e1_.message, se_e2_.message) != 0)                                       \
            fail_msg("%s: the stores disagree on the message:\n  \"%s\"\n  \"%s\"", #call,     \
                     se_e1_.message, se_e2_.message);                                          \
    } while (0)

typedef struct bad_text {
    const char *text;
    int utf8; /* 1: invalid UTF-8 (PGSCHED_ERR_UTF8), 0: the field's own error */
} bad_text;

/* Texts bad as a name and as a key (too long ones are added by each test). */
static const bad_text g_bad_texts[] = {
    {"", 0},
    {"tab\there", 0},
    {"line\nbreak", 0},
    {"cr\rx", 0},
    {"\x01", 0},
    {"unit\x1fsep", 0},
    {"del\x7f", 0},
    {"\xff", 1},
    {"\xc3\x28", 1},             /* a lead byte without its continuation */
    {"\xc0\x80", 1},             /* an overlong NUL */
    {"\xe0\x80\xaf", 1},         /* an overlong '/' */
    {"\xed\xa0\x80", 1},         /* a UTF-16 surrogate */
    {"\xf4\x90\x80\x80", 1},     /* above U+10FFFF */
    {"abc\xe2\x82", 1},          /* truncated at the end */
    {"\x80x", 1},                /* a lone continuation byte */
    {"\xf8\x88\x80\x80\x80", 1}, /* a 5-byte form */
};

/* Every wrapper that takes a job name refuses a bad one with the same error. */
static void expect_bad_name_everywhere(fixture *fx, pgsched_store *ref, const char *bad,
                                       pgsched_result code)
{
    pgsched_schedule_request req = once_req(bad, "k", 0);
    pgsched_schedule_outcome so;
    pgsched_change_outcome co;
    pgsched_job_list *jl = fx_jlist(fx);
    pgsched_run_list *rl = fx_rlist(fx);
    pgsched_claim_request cr;
    pgsched_claim_outcome ci;
    pgsched_list_filter lf;
    const char *names[2];
    pgsched_time next, now;
    pgsched_node_record node;

    names[0] = "fine";
    names[1] = bad;
    memset(&cr, 0, sizeof cr);
    cr.node_id = "node-1";
    cr.names = names;
    cr.name_count = 2;
    cr.max = 10;
    memset(&lf, 0, sizeof lf);
    lf.name = bad;
    memset(&node, 0, sizeof node);
    node.id = "node-1";
    node.host = "host";
    node.pid = 1;
    node.names = names;
    node.name_count = 2;

    SAME_ERROR(ref, code, pgsched_store_schedule(S, &req, &so, ER));
    SAME_ERROR(ref, code, pgsched_store_get(S, bad, "k", jl, ER));
    SAME_ERROR(ref, code, pgsched_store_cancel(S, bad, "k", "node-1", &co, ER));
    SAME_ERROR(ref, code, pgsched_store_trigger(S, bad, "k", "node-1", &co, ER));
    SAME_ERROR(ref, code, pgsched_store_remove(S, bad, "k", "node-1", &co, ER));
    SAME_ERROR(ref, code, pgsched_store_history(S, bad, NULL, 10, rl, ER));
    SAME_ERROR(ref, code, pgsched_store_claim(S, &cr, jl, &ci, ER));
    SAME_ERROR(ref, code, pgsched_store_next_due(S, names, 2, &next, &now, ER));
    SAME_ERROR(ref, code, pgsched_store_list(S, &lf, jl, ER));
    SAME_ERROR(ref, code, pgsched_store_node_register(S, &node, ER));
    assert_int_equal(jl->count, 0);
    assert_int_equal(rl->count, 0);
}

/* Every wrapper that takes a job key refuses a bad one with the same error. */
static void expect_bad_key_everywhere(fixture *fx, pgsched_store *ref, const char *bad,
                                      pgsched_result code)
{
    pgsched_schedule_request req = once_req("fine", bad, 0);
    pgsched_schedule_outcome so;
    pgsched_change_outcome co;
    pgsched_job_list *jl = fx_jlist(fx);
    pgsched_run_list *rl = fx_rlist(fx);
    pgsched_lease lease;
    pgsched_lease_state st;
    pgsched_outcome oc;
    pgsched_finish_result fr;
    pgsched_time now;

    lease.name = "fine";
    lease.key = bad;
    lease.token = 1;
    memset(&oc, 0, sizeof oc);
    oc.name = "fine";
    oc.key = bad;
    oc.token = 1;
    oc.outcome = PGSCHED_OUTCOME_SUCCESS;
    oc.status = PGSCHED_COMPLETED;
    oc.node_id = "node-1";

    SAME_ERROR(ref, code, pgsched_store_schedule(S, &req, &so, ER));
    SAME_ERROR(ref, code, pgsched_store_get(S, "fine", bad, jl, ER));
    SAME_ERROR(ref, code, pgsched_store_cancel(S, "fine", bad, "node-1", &co, ER));
    SAME_ERROR(ref, code, pgsched_store_trigger(S, "fine", bad, "node-1", &co, ER));
    SAME_ERROR(ref, code, pgsched_store_remove(S, "fine", bad, "node-1", &co, ER));
    SAME_ERROR(ref, code, pgsched_store_history(S, "fine", bad, 10, rl, ER));
    SAME_ERROR(ref, code, pgsched_store_heartbeat(S, "node-1", &lease, 1, 1, &st, &now, ER));
    SAME_ERROR(ref, code, pgsched_store_finish(S, &oc, 1, &fr, ER));
    assert_int_equal(jl->count, 0);
    assert_int_equal(rl->count, 0);
}

/* A row that bad calls must leave alone: scheduled, claimed and finished once, so that it has
   history, and pending again. */
static void make_bystander_row(fixture *fx)
{
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "fine", "k");
    finish_ok(fx, j, PGSCHED_OUTCOME_FAILURE, PGSCHED_PENDING, fx_now(fx) + PGSCHED_HOUR);
}

STORE_TEST(invalid_names_are_refused_with_the_same_error_by_every_store)
{
    pgsched_store *ref = fx_memory_store(fx);
    char *too_long = repeat_char('n', PGSCHED_NAME_MAX + 1);
    snapshot before;
    size_t i;

    make_bystander_row(fx);
    before = take_snapshot(fx);
    for (i = 0; i < sizeof g_bad_texts / sizeof g_bad_texts[0]; i++)
        expect_bad_name_everywhere(fx, ref, g_bad_texts[i].text,
                                   g_bad_texts[i].utf8 ? PGSCHED_ERR_UTF8 : PGSCHED_ERR_NAME);
    expect_bad_name_everywhere(fx, ref, too_long, PGSCHED_ERR_NAME);
    free(too_long);
    assert_unchanged(fx, before);
}

STORE_TEST(invalid_keys_are_refused_with_the_same_error_by_every_store)
{
    pgsched_store *ref = fx_memory_store(fx);
    char *too_long = repeat_char('k', PGSCHED_KEY_MAX + 1);
    snapshot before;
    size_t i;

    make_bystander_row(fx);
    before = take_snapshot(fx);
    for (i = 0; i < sizeof g_bad_texts / sizeof g_bad_texts[0]; i++)
        expect_bad_key_everywhere(fx, ref, g_bad_texts[i].text,
                                  g_bad_texts[i].utf8 ? PGSCHED_ERR_UTF8 : PGSCHED_ERR_KEY);
    expect_bad_key_everywhere(fx, ref, too_long, PGSCHED_ERR_KEY);
    free(too_long);
    assert_unchanged(fx, before);
}

STORE_TEST(names_and_keys_at_their_limits_are_stored_exactly)
{
    char name[PGSCHED_NAME_MAX + 1], key[PGSCHED_KEY_MAX + 1];
    const char *odd_names[] = {"a", "with space", "quote'\"`", "\xc2\x85next-line-is-not-a-C0",
                               "emoji \xf0\x9f\x98\x80", "\xe2\x80\xaertl"};
    const pgsched_job *j;
    size_t i;

    /* 42 three-byte characters and two bytes: exactly 128 bytes, ending in ASCII */
    name[0] = '\0';
    for (i = 0; i < 42; i++) strcat(name, "\xe2\x82\xac");
    strcat(name, "ab");
    assert_int_equal(strlen(name), PGSCHED_NAME_MAX);
    /* 64 four-byte characters: exactly 256 bytes */
    key[0] = '\0';
    for (i = 0; i < 64; i++) strcat(key, "\xf0\x9f\x98\x80");
    assert_int_equal(strlen(key), PGSCHED_KEY_MAX);

    schedule_once(fx, name, key, fx_now(fx) + PGSCHED_HOUR);
    j = get_job(fx, name, key);
    assert_string_equal(j->name, name);
    assert_string_equal(j->key, key);
    for (i = 0; i < sizeof odd_names / sizeof odd_names[0]; i++) {
        schedule_once(fx, odd_names[i], odd_names[i], fx_now(fx) + PGSCHED_HOUR);
        j = get_job(fx, odd_names[i], odd_names[i]);
        assert_string_equal(j->name, odd_names[i]);
        assert_string_equal(j->key, odd_names[i]);
    }
    assert_int_equal(all_rows(fx)->count, 1 + sizeof odd_names / sizeof odd_names[0]);
}

/* RFC 8259: none of these is exactly one JSON text. */
static const char *const g_bad_json[] = {
    "", " ", "{", "}", "{\"a\":1,}", "[1,]", "[1 2]", "01", "1.", ".5", "+1", "1e", "-",
    "{\"a\" 1}", "{a:1}", "'x'", "{} {}", "{}x", "NaN", "Infinity", "tru", "nul", "\"abc",
    "\"a\001b\"", "\"tab\tinside\"", "\"\\q\"", "\"\\u12\"", "\"\\uZZZZ\"", "[1]]",
    "/*c*/{}", "\f{}", "\v[]", "\xc2\xa0{}", "[\"a\",]", "{\"a\":}", "{,}", "[,1]", "--1",
    "1e+", "0x10", "\"\\\"", "{\"a\":1 \"b\":2}", "[[]", "{\"a\":[}]", "tRue", "True",
};

STORE_TEST(invalid_params_are_refused_with_the_same_error_and_write_nothing)
{
    pgsched_store *ref = fx_memory_store(fx);
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    snapshot before;
    size_t i;

    make_bystander_row(fx);
    before = take_snapshot(fx);
    for (i = 0; i < sizeof g_bad_json / sizeof g_bad_json[0]; i++) {
        /* as a new row and as a re-schedule of the existing one */
        req = once_req("fine", "new", 0);
        req.params = g_bad_json[i];
        SAME_ERROR(ref, PGSCHED_ERR_JSON, pgsched_store_schedule(S, &req, &so, ER));
        req.key = "k";
        SAME_ERROR(ref, PGSCHED_ERR_JSON, pgsched_store_schedule(S, &req, &so, ER));
    }
    req = once_req("fine", "k", 0);
    req.params = "{\"bad\": \"\xff\"}";
    SAME_ERROR(ref, PGSCHED_ERR_UTF8, pgsched_store_schedule(S, &req, &so, ER));
    req.params = "[\"\xc0\x80\"]";
    SAME_ERROR(ref, PGSCHED_ERR_UTF8, pgsched_store_schedule(S, &req, &so, ER));
    req.params = "\"\xed\xa0\x80\"";
    SAME_ERROR(ref, PGSCHED_ERR_UTF8, pgsched_store_schedule(S, &req, &so, ER));
    assert_unchanged(fx, before);
}

STORE_TEST(valid_json_params_are_stored_byte_for_byte)
{
    static const char *const good[] = {
        "{}", " \t\r\n{ } \n", "[]", "0", "-0", "-0.0e+0", "1E400", "null", "true", "false",
        "\"\"", "\"\\u0000\"", "\"\\\\\\\"\\/\\b\\f\\n\\r\\t\"",
        "{\"a\":1,\"a\":2}", "{\"z\":1, \"a\":{\"y\":[1,2.5e-3,true,null]}}",
        "\"\xc3\xa9\xf0\x9f\x98\x80\"", "[{\"k\":[1,2,{\"x\":null}]}]", "  123  ",
        "{\"q\":\"'); DROP TABLE x; --\"}",
    };
    pgsched_schedule_request req;
    char key[32];
    size_t i;

    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(key, sizeof key, "p%u", (unsigned)i);
        req = once_req("json", key, fx_now(fx) + PGSCHED_HOUR);
        req.params = good[i];
        schedule_ok(fx, &req);
    }
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(key, sizeof key, "p%u", (unsigned)i);
        assert_string_equal(get_job(fx, "json", key)->params, good[i]);
    }
    req = once_req("json", "null-params", fx_now(fx) + PGSCHED_HOUR);
    req.params = NULL;
    schedule_ok(fx, &req);
    assert_string_equal(get_job(fx, "json", "null-params")->params, "{}");
}

STORE_TEST(params_of_exactly_1_MiB_are_accepted_and_one_byte_more_is_too_large)
{
    pgsched_store *ref = fx_memory_store(fx);
    char *big = repeat_char('a', PGSCHED_PARAMS_MAX + 1);
    pgsched_schedule_request req = once_req("big", "k", fx_now(fx) + PGSCHED_HOUR);
    pgsched_schedule_outcome so;
    const pgsched_job *j;
    snapshot before = take_snapshot(fx);

    /* "aaa...a" of PARAMS_MAX + 1 bytes: valid JSON, one byte too large */
    big[0] = '"';
    big[PGSCHED_PARAMS_MAX] = '"';
    req.params = big;
    SAME_ERROR(ref, PGSCHED_ERR_TOO_LARGE, pgsched_store_schedule(S, &req, &so, ER));
    assert_unchanged(fx, before);
    /* exactly PARAMS_MAX bytes */
    big[PGSCHED_PARAMS_MAX - 1] = '"';
    big[PGSCHED_PARAMS_MAX] = '\0';
    schedule_ok(fx, &req);
    j = get_job(fx, "big", "k");
    assert_int_equal(strlen(j->params), PGSCHED_PARAMS_MAX);
    assert_memory_equal(j->params, big, PGSCHED_PARAMS_MAX);
    free(big);
}

STORE_TEST(deeply_nested_params_get_the_same_answer_from_every_store)
{
    /* RFC 8259 lets a parser limit nesting; either answer is fine, a crash (a recursive parser
       running out of stack) or two stores disagreeing is not. */
    enum { DEPTH = 100000 };
    pgsched_store *ref = fx_memory_store(fx);
    char *deep = (char *)malloc(2 * DEPTH + 1);
    pgsched_schedule_request req = once_req("deep", "k", fx_now(fx) + PGSCHED_HOUR);
    pgsched_schedule_outcome so;
    pgsched_error e1, e2;
    pgsched_result r1, r2;

    assert_non_null(deep);
    memset(deep, '[', DEPTH);
    memset(deep + DEPTH, ']', DEPTH);
    deep[2 * DEPTH] = '\0';
    req.params = deep;
    r1 = pgsched_store_schedule(fx->store, &req, &so, &e1);
    r2 = pgsched_store_schedule(ref, &req, &so, &e2);
    if (r1 != r2)
        fail_msg("stores disagree on %d-deep params: %d (%s) vs memory %d (%s)", DEPTH, (int)r1,
                 r1 ? e1.message : "", (int)r2, r2 ? e2.message : "");
    if (r1 == PGSCHED_OK) {
        assert_string_equal(get_job(fx, "deep", "k")->params, deep);
    } else {
        assert_int_equal(r1, PGSCHED_ERR_JSON);
        assert_string_equal(e1.message, e2.message);
        assert_int_equal(row_exists(fx, "deep", "k"), 0);
    }
    free(deep);
}

STORE_TEST(invalid_schedules_are_refused_with_the_same_error)
{
    pgsched_store *ref = fx_memory_store(fx);
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    snapshot before;

    make_bystander_row(fx);
    before = take_snapshot(fx);

    req = once_req("fine", "k", 0);
    req.max_retries = -1;
    SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
    req = once_req("fine", "k", 0);
    req.kind = PGSCHED_CRON;
    req.cron = NULL;
    SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
    req.cron = "";
    SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
    req = once_req("fine", "k", 0);
    req.kind = PGSCHED_INTERVAL;
    req.every = 0;
    SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
    req.every = -PGSCHED_SECOND;
    SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
    req = once_req("fine", "new", 0);
    req.kind = (pgsched_schedule_kind)0;
    SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
    req.kind = (pgsched_schedule_kind)99;
    SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
    assert_unchanged(fx, before);
}

/* An interval is at most 100 years (of 366 days): a longer one would overflow the next run
   computed from it. Both stores refuse it alike and write nothing; 100 years is fine. */
STORE_TEST(an_interval_over_100_years_is_refused_with_the_same_error)
{
    static const pgsched_duration too_long[] = {100LL * 366 * PGSCHED_DAY + 1,
                                                200LL * 366 * PGSCHED_DAY, PGSCHED_NEVER / 2,
                                                PGSCHED_NEVER};
    pgsched_store *ref = fx_memory_store(fx);
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    snapshot before;
    size_t i;

    make_bystander_row(fx);
    schedule_once(fx, "iv", "existing", fx_now(fx) + PGSCHED_HOUR);
    before = take_snapshot(fx);
    for (i = 0; i < sizeof too_long / sizeof too_long[0]; i++) {
        req = once_req("iv", "new", fx_now(fx) + PGSCHED_HOUR);
        req.kind = PGSCHED_INTERVAL;
        req.every = too_long[i];
        SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
        req.key = "existing"; /* nor does it replace a row */
        SAME_ERROR(ref, PGSCHED_ERR_SCHEDULE, pgsched_store_schedule(S, &req, &so, ER));
    }
    assert_unchanged(fx, before);

    req = once_req("iv", "century", fx_now(fx) + PGSCHED_HOUR);
    req.kind = PGSCHED_INTERVAL;
    req.every = 100LL * 366 * PGSCHED_DAY;
    schedule_ok(fx, &req);
    assert_int_equal(get_job(fx, "iv", "century")->every, 100LL * 366 * PGSCHED_DAY);
}

STORE_TEST(cron_text_is_stored_as_given_without_being_parsed_by_the_store)
{
    /* The engine parses cron text; the store keeps whatever text the engine wrote. */
    static const char *const texts[] = {"*/5 * * * *", "CRON_TZ=Europe/Berlin 0 9 * * MON-FRI",
                                        "not a cron expression", "@every 90s"};
    pgsched_schedule_request req;
    const pgsched_job *j;
    char key[32];
    size_t i;
    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        snprintf(key, sizeof key, "c%u", (unsigned)i);
        req = once_req("cron", key, fx_now(fx) + PGSCHED_HOUR);
        req.kind = PGSCHED_CRON;
        req.cron = texts[i];
        schedule_ok(fx, &req);
        j = get_job(fx, "cron", key);
        assert_int_equal(j->kind, PGSCHED_CRON);
        assert_string_equal(j->cron, texts[i]);
        assert_int_equal(j->every, 0);
    }
}

static const char *const g_bad_node_ids[] = {
    "", "a b", "a/b", "caf\xc3\xa9", "a;b", "a'b", "a\"b", "a\nb", "a\tb", "a,b", "a@b", "a%b",
};

STORE_TEST(invalid_node_ids_are_refused_with_the_same_error)
{
    pgsched_store *ref = fx_memory_store(fx);
    char *too_long = repeat_char('n', PGSCHED_NODE_ID_MAX + 1);
    const char *names[1] = {"fine"};
    pgsched_claim_request cr;
    pgsched_claim_outcome ci;
    pgsched_job_list *jl = fx_jlist(fx);
    pgsched_lease_state st;
    pgsched_time now;
    pgsched_node_record node;
    pgsched_outcome oc;
    pgsched_finish_result fr;
    pgsched_schedule_request req;
    pgsched_schedule_outcome so;
    pgsched_change_outcome co;
    pgsched_cleanup_request clr;
    pgsched_cleanup_outcome clo;
    snapshot before;
    size_t i, n = sizeof g_bad_node_ids / sizeof g_bad_node_ids[0];

    make_bystander_row(fx);
    before = take_snapshot(fx);
    for (i = 0; i <= n; i++) {
        const char *bad = i < n ? g_bad_node_ids[i] : too_long;
        memset(&cr, 0, sizeof cr);
        cr.node_id = bad;
        cr.names = names;
        cr.name_count = 1;
        cr.max = 1;
        memset(&node, 0, sizeof node);
        node.id = bad;
        node.host = "h";
        node.names = names;
        node.name_count = 1;
        memset(&oc, 0, sizeof oc);
        oc.name = "fine";
        oc.key = "k";
        oc.token = 1;
        oc.outcome = PGSCHED_OUTCOME_SUCCESS;
        oc.status = PGSCHED_COMPLETED;
        oc.node_id = bad;
        req = once_req("fine", "k", 0);
        req.node_id = bad;
        memset(&clr, 0, sizeof clr);
        clr.node_id = bad;
        clr.finished_retention = clr.history_retention = clr.orphan_timeout = PGSCHED_NEVER;
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_claim(S, &cr, jl, &ci, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
                   pgsched_store_heartbeat(S, bad, NULL, 0, 1, &st, &now, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
                   pgsched_store_take_back(S, bad, PGSCHED_SECOND, 10, jl, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_node_register(S, &node, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_node_unregister(S, bad, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, &oc, 1, &fr, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_schedule(S, &req, &so, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
                   pgsched_store_cancel(S, "fine", "k", bad, &co, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
                   pgsched_store_trigger(S, "fine", "k", bad, &co, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
                   pgsched_store_remove(S, "fine", "k", bad, &co, ER));
        SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_cleanup(S, &clr, &clo, ER));
    }
    free(too_long);
    assert_int_equal(jl->count, 0);
    assert_unchanged(fx, before);
}

STORE_TEST(node_ids_of_the_allowed_characters_up_to_64_bytes_are_accepted)
{
    char *longest = repeat_char('Z', PGSCHED_NODE_ID_MAX);
    const char *ids[] = {"n", "node-1.example.com:5432_a", "A-Z.a-z:0-9_", NULL};
    size_t i;
    ids[3] = longest;
    for (i = 0; i < 4; i++) {
        char key[32];
        const pgsched_job *j;
        snprintf(key, sizeof key, "k%u", (unsigned)i);
        j = schedule_and_claim(fx, ids[i], "ids", key);
        assert_string_equal(j->owner, ids[i]);
        finish_ok(fx, j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
        assert_string_equal(history_of(fx, "ids", key, 1)->items[0].node, ids[i]);
    }
    free(longest);
}

STORE_TEST(impossible_outcomes_are_refused_with_the_same_error)
{
    /* An outcome that leaves a row "running" without a lease, or has no kind or rule, would
       wedge the row; the wrappers refuse it before the store sees it. */
    pgsched_store *ref = fx_memory_store(fx);
    const pgsched_job *j = schedule_and_claim(fx, "node-1", "fine", "k");
    pgsched_outcome oc;
    pgsched_finish_result fr;
    snapshot before = take_snapshot(fx);

    oc = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_RUNNING, 0);
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, &oc, 1, &fr, ER));
    oc = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_STATUS_NONE, 0);
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, &oc, 1, &fr, ER));
    oc = outcome_of(j, (pgsched_outcome_kind)0, PGSCHED_COMPLETED, 0);
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, &oc, 1, &fr, ER));
    oc = outcome_of(j, PGSCHED_OUTCOME_SUCCESS, PGSCHED_COMPLETED, 0);
    oc.attempt_rule = (pgsched_attempt_rule)7;
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, &oc, 1, &fr, ER));
    /* nor may what a cancel would make of a failure */
    oc = outcome_of(j, PGSCHED_OUTCOME_FAILURE, PGSCHED_FAILED, 0);
    oc.cancelled_status = PGSCHED_RUNNING;
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, &oc, 1, &fr, ER));
    oc.cancelled_status = (pgsched_status)9;
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, &oc, 1, &fr, ER));
    oc.cancelled_status = PGSCHED_PENDING;
    oc.cancelled_next_run = -5;
    SAME_ERROR(ref, PGSCHED_ERR_TIME_RANGE, pgsched_store_finish(S, &oc, 1, &fr, ER));
    assert_unchanged(fx, before);
}

STORE_TEST(null_pointers_are_invalid_arguments)
{
    pgsched_store *ref = fx_memory_store(fx);
    const char *names[1] = {"fine"};
    pgsched_schedule_request req = once_req("fine", "k", 0);
    pgsched_schedule_outcome so;
    pgsched_claim_request cr;
    pgsched_claim_outcome ci;
    pgsched_job_list *jl = fx_jlist(fx);
    pgsched_run_list *rl = fx_rlist(fx);
    pgsched_list_filter lf;
    pgsched_lease lease = {"fine", "k", 1};
    pgsched_lease_state st;
    pgsched_time t, t2;
    pgsched_finish_result fr;
    pgsched_outcome oc;
    pgsched_change_outcome co;
    pgsched_cleanup_request clr;
    pgsched_cleanup_outcome clo;
    pgsched_listener *l;
    pgsched_error e;
    snapshot before;

    memset(&cr, 0, sizeof cr);
    cr.node_id = "node-1";
    cr.names = names;
    cr.name_count = 1;
    cr.max = 1;
    memset(&lf, 0, sizeof lf);
    memset(&oc, 0, sizeof oc);
    oc.name = "fine";
    oc.key = "k";
    oc.outcome = PGSCHED_OUTCOME_SUCCESS;
    oc.status = PGSCHED_COMPLETED;
    oc.node_id = "node-1";
    memset(&clr, 0, sizeof clr);
    clr.node_id = "node-1";
    clr.finished_retention = clr.history_retention = clr.orphan_timeout = PGSCHED_NEVER;
    make_bystander_row(fx);
    before = take_snapshot(fx);

    /* no store */
    assert_int_equal(pgsched_store_setup(NULL, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(e.code, PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(pgsched_store_now(NULL, &t, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(pgsched_store_schedule(NULL, &req, &so, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(pgsched_store_claim(NULL, &cr, jl, &ci, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(pgsched_store_get(NULL, "fine", "k", jl, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(pgsched_store_list(NULL, &lf, jl, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(pgsched_store_history(NULL, NULL, NULL, 0, rl, &e),
                     PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(pgsched_store_listen_open(NULL, &l, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    pgsched_store_destroy(NULL); /* a no-op, like free(NULL) */

    /* no request or no output */
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_now(S, NULL, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_schedule(S, NULL, &so, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_claim(S, NULL, jl, &ci, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_claim(S, &cr, NULL, &ci, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
               pgsched_store_heartbeat(S, "node-1", NULL, 1, 1, &st, &t, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
               pgsched_store_heartbeat(S, "node-1", &lease, 1, 1, NULL, &t, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, NULL, 1, &fr, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_finish(S, &oc, 1, NULL, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
               pgsched_store_take_back(S, "node-1", PGSCHED_SECOND, 1, NULL, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_get(S, "fine", "k", NULL, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_list(S, &lf, NULL, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
               pgsched_store_history(S, NULL, NULL, 0, NULL, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT,
               pgsched_store_next_due(S, names, 1, NULL, &t2, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_node_register(S, NULL, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_cleanup(S, NULL, &clo, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_listen_open(S, NULL, ER));
    SAME_ERROR(ref, PGSCHED_ERR_INVALID_ARGUMENT, pgsched_store_history(S, NULL, "k", 0, rl, ER));
    assert_unchanged(fx, before);

    /* the outcome structs of a change are optional; the lists a call fills are not */
    req = once_req("fine", "opt", fx_now(fx) + PGSCHED_HOUR);
    OK(pgsched_store_schedule(fx->store, &req, NULL, E));
    OK(pgsched_store_trigger(fx->store, "fine", "opt", "node-1", NULL, E));
    OK(pgsched_store_cancel(fx->store, "fine", "opt", "node-1", NULL, E));
    assert_int_equal(get_job(fx, "fine", "opt")->status, PGSCHED_CANCELLED);
    OK(pgsched_store_remove(fx->store, "fine", "opt", "node-1", NULL, E));
    assert_int_equal(row_exists(fx, "fine", "opt"), 0);
    OK(pgsched_store_cleanup(fx->store, &clr, NULL, E));
    (void)co;
}

STORE_TEST(calls_without_an_error_buffer_still_return_their_code)
{
    pgsched_schedule_request req = once_req("", "k", 0);
    pgsched_schedule_outcome so;
    pgsched_job_list *jl = fx_jlist(fx);
    assert_int_equal(pgsched_store_schedule(fx->store, &req, &so, NULL), PGSCHED_ERR_NAME);
    assert_int_equal(pgsched_store_get(fx->store, "none", "k", jl, NULL), PGSCHED_ERR_NOT_FOUND);
    req = once_req("fine", "k", 0);
    assert_int_equal(pgsched_store_schedule(fx->store, &req, &so, NULL), PGSCHED_OK);
    assert_int_equal(pgsched_store_get(fx->store, "fine", "k", jl, NULL), PGSCHED_OK);
    assert_int_equal(jl->count, 1);
}

#endif /* STORE_SUITE_VALIDATION_H */
