/* test_basics.c - result sentences, input validation, owned lists, password redaction. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static void every_result_code_has_its_own_sentence(void **state)
{
    int c, d;
    (void)state;
    for (c = 0; c >= PGSCHED_ERR_BUSY; c--) {
        const char *s = pgsched_result_string((pgsched_result)c);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown result code");
        for (d = c + 1; d <= 0; d++) assert_string_not_equal(s, pgsched_result_string((pgsched_result)d));
    }
    assert_string_equal(pgsched_result_string((pgsched_result)-999), "unknown result code");
}

static void json_validator_accepts_rfc8259_texts(void **state)
{
    static const char *const good[] = {
        "{}", "[]", "null", "true", "false", "0", "-0", "12.5e-3", "\"x\"", " { \"a\" : [1, 2, {\"b\": null}] } ",
        "{\"s\": \"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\"}", "[[[[[]]]]]", "\"\xc3\xa9\"", "1E+2",
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        pgsched_error e;
        if (pgsched_validate_json(good[i], &e) != PGSCHED_OK) fail_msg("%s: %s", good[i], e.message);
    }
}

static void json_validator_rejects_each_malformed_form_with_a_reason(void **state)
{
    static const struct { const char *text, *why; } bad[] = {
        {"", "ends early"},
        {"{", "ends early"},
        {"{\"a\" 1}", "not followed by ':'"},
        {"{a: 1}", "key is not a string"},
        {"[1,]", "not a string, number"},
        {"[1 2]", "expected ','"},
        {"01", "text after"},
        {"1.", "after its decimal point"},
        {"1e", "in its exponent"},
        {"-", "no digits"},
        {"\"abc", "not closed"},
        {"\"a\x01\"", "control character"},
        {"\"\\x\"", "invalid escape"},
        {"\"\\u12\"", "four hex digits"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"\\ud800x\"", "not followed by a low surrogate"},
        {"{} {}", "text after"},
        {"tru", "not a string, number"},
        {"[}", "not a string, number"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pgsched_error e;
        if (pgsched_validate_json(bad[i].text, &e) != PGSCHED_ERR_JSON)
            fail_msg("accepted: %s", bad[i].text);
        if (!strstr(e.message, bad[i].why)) fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].text, e.message, bad[i].why);
    }
}

static void json_nesting_deeper_than_the_limit_is_refused_not_crashed(void **state)
{
    static char deep[5000];
    pgsched_error e;
    (void)state;
    memset(deep, '[', 2000);
    memset(deep + 2000, ']', 2000);
    assert_int_equal(pgsched_validate_json(deep, &e), PGSCHED_ERR_JSON);
    assert_non_null(strstr(e.message, "1000 levels"));
    memset(deep, 0, sizeof deep);
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    assert_int_equal(pgsched_validate_json(deep, &e), PGSCHED_OK);
}

static void invalid_utf8_is_its_own_error_in_names_keys_and_params(void **state)
{
    static const char *const bad[] = {"\xff", "a\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
    size_t i;
    pgsched_error e;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[32];
        assert_int_equal(pgsched_validate_name(bad[i], &e), PGSCHED_ERR_UTF8);
        assert_int_equal(pgsched_validate_key(bad[i], &e), PGSCHED_ERR_UTF8);
        snprintf(json, sizeof json, "\"%s\"", bad[i]);
        assert_int_equal(pgsched_validate_json(json, &e), PGSCHED_ERR_UTF8);
    }
    assert_int_equal(pgsched_validate_name("r\xc3\xa9sum\xc3\xa9 \xf0\x9f\x98\x80", &e), PGSCHED_OK);
}

static void names_and_keys_have_length_and_character_limits(void **state)
{
    char longer[300];
    pgsched_error e;
    (void)state;
    assert_int_equal(pgsched_validate_name(NULL, &e), PGSCHED_ERR_NAME);
    assert_int_equal(pgsched_validate_name("", &e), PGSCHED_ERR_NAME);
    assert_string_equal(e.message, "the job name is empty");
    assert_int_equal(pgsched_validate_key("", &e), PGSCHED_ERR_KEY);
    assert_int_equal(pgsched_validate_name("tab\there", &e), PGSCHED_ERR_NAME);
    assert_non_null(strstr(e.message, "0x09"));
    memset(longer, 'n', sizeof longer);
    longer[PGSCHED_NAME_MAX] = '\0';
    assert_int_equal(pgsched_validate_name(longer, &e), PGSCHED_OK);
    longer[PGSCHED_NAME_MAX] = 'n';
    longer[PGSCHED_NAME_MAX + 1] = '\0';
    assert_int_equal(pgsched_validate_name(longer, &e), PGSCHED_ERR_NAME);
    assert_string_equal(e.message, "the job name is 129 bytes long; the limit is 128");
    memset(longer, 'k', sizeof longer);
    longer[PGSCHED_KEY_MAX] = '\0';
    assert_int_equal(pgsched_validate_key(longer, &e), PGSCHED_OK);
    longer[PGSCHED_KEY_MAX] = 'k';
    longer[PGSCHED_KEY_MAX + 1] = '\0';
    assert_int_equal(pgsched_validate_key(longer, &e), PGSCHED_ERR_KEY);
}

static void identifiers_must_be_plain_sql_names(void **state)
{
    static const char *const bad[] = {"", "1abc", "a-b", "a b", "a\"b", "a;DROP TABLE x", "caf\xc3\xa9", "a.b"};
    size_t i;
    pgsched_error e;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pgsched_validate_identifier("schema", bad[i], 63, &e), PGSCHED_ERR_IDENTIFIER);
    assert_int_equal(pgsched_validate_identifier("prefix", "My_Prefix_2", 46, &e), PGSCHED_OK);
    assert_int_equal(pgsched_validate_identifier("prefix", "abcdefghij", 9, &e), PGSCHED_ERR_IDENTIFIER);
    assert_non_null(strstr(e.message, "prefix"));
}

static void job_lists_own_deep_copies_that_survive_growth(void **state)
{
    pgsched_job_list l;
    pgsched_job j;
    char key[32];
    int i;
    (void)state;
    pgsched_job_list_init(&l, NULL);
    for (i = 0; i < 100; i++) {
        memset(&j, 0, sizeof j);
        snprintf(key, sizeof key, "key-%d", i);
        j.name = "type";
        j.key = key;
        j.params = "{\"i\": 1}";
        j.attempt = i;
        assert_int_equal(pgsched_job_list_push(&l, &j), PGSCHED_OK);
        key[0] = 'X'; /* the list holds its own copy */
    }
    assert_int_equal(l.count, 100);
    for (i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_string_equal(l.items[i].key, key);
        assert_int_equal(l.items[i].attempt, i);
        assert_null(l.items[i].cron);
    }
    pgsched_job_list_clear(&l);
    assert_int_equal(l.count, 0);
    pgsched_job_list_free(&l);
}

static void *counting_malloc(size_t n, void *user)
{
    ++*(int *)user;
    return malloc(n);
}
static void *counting_realloc(void *p, size_t n, void *user)
{
    ++*(int *)user;
    return realloc(p, n);
}
static void counting_free(void *p, void *user)
{
    (void)user;
    free(p);
}

/* Memory from one allocator must never reach another's free: an allocator with only some of
   its functions is refused by every constructor that takes one, and a whole one is used. */
static void a_partly_filled_allocator_is_refused_by_every_constructor(void **state)
{
    int calls = 0, k;
    pgsched_allocator partial[3], whole;
    pgsched_error e;
    (void)state;
    memset(partial, 0, sizeof partial);
    partial[0].malloc_fn = counting_malloc;
    partial[1].malloc_fn = counting_malloc;
    partial[1].realloc_fn = counting_realloc;
    partial[2].free_fn = counting_free;
    for (k = 0; k < 3; k++) {
        pgsched_cron_options co;
        pgsched_memory_config mc;
        pgsched_config nc;
        pgsched_cron *cron = NULL;
        pgsched_store *store = NULL;
        pgsched_node *node = NULL;
        partial[k].user = &calls;
        memset(&co, 0, sizeof co);
        co.allocator = &partial[k];
        assert_int_equal(pgsched_cron_parse("* * * * *", &co, &cron, &e), PGSCHED_ERR_CONFIG);
        assert_null(cron);
        assert_non_null(strstr(e.message, "allocator"));
        memset(&mc, 0, sizeof mc);
        mc.allocator = &partial[k];
        assert_int_equal(pgsched_memory_store_create(&mc, &store, &e), PGSCHED_ERR_CONFIG);
        assert_null(store);
        assert_non_null(strstr(e.message, "allocator"));
#ifndef PGSCHED_NO_LIBPQ
        {
            pgsched_pg_config pc;
            memset(&pc, 0, sizeof pc);
            pc.conninfo = "dbname=none";
            pc.allocator = &partial[k];
            assert_int_equal(pgsched_pg_store_create(&pc, &store, &e), PGSCHED_ERR_CONFIG);
            assert_null(store);
            assert_non_null(strstr(e.message, "allocator"));
        }
#endif
        memset(&nc, 0, sizeof nc);
        nc.pg.conninfo = "dbname=none";
        nc.allocator = &partial[k];
        assert_int_equal(pgsched_create(&nc, &node, &e), PGSCHED_ERR_CONFIG);
        assert_null(node);
        assert_non_null(strstr(e.message, "allocator"));
    }
    assert_int_equal(calls, 0);
    whole.malloc_fn = counting_malloc;
    whole.realloc_fn = counting_realloc;
    whole.free_fn = counting_free;
    whole.user = &calls;
    {
        pgsched_cron_options co;
        pgsched_cron *cron = NULL;
        memset(&co, 0, sizeof co);
        co.allocator = &whole;
        assert_int_equal(pgsched_cron_parse("* * * * *", &co, &cron, &e), PGSCHED_OK);
        pgsched_cron_free(cron);
    }
    assert_true(calls > 0);
}

static void passwords_never_survive_conninfo_redaction(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        {"host=db password=s3cret user=app", "host=db password=******** user=app"},
        {"password='with space \\' quote' dbname=x", "password=******** dbname=x"},
        {"host = db password = hunter2", "host = db password = ********"},
        {"postgresql://app:s3cret@db:5432/x?sslmode=require", "postgresql://app:********@db:5432/x?sslmode=require"},
        {"postgres://db/x?user=a&password=p&x=1", "postgres://db/x?user=a&password=********&x=1"},
        {"postgresql://app@db/x", "postgresql://app@db/x"},
        {"host=db dbname=x", "host=db dbname=x"},
    };
    char buf[256];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pgsched_conninfo_redact(cases[i].in, buf, sizeof buf);
        assert_string_equal(buf, cases[i].out);
    }
    /* truncation keeps the buffer terminated and still hides the secret */
    pgsched_conninfo_redact("password=abcdefghijklmnop", buf, 12);
    assert_int_equal(strlen(buf), 11);
    assert_null(strstr(buf, "abc"));
}

/* Redacts `in` and checks the result against `out`, and (with libpq) that neither password
   libpq itself reads from `in` is left in the result. */
static void check_redaction(const char *in, const char *out)
{
    char buf[512];
    size_t n = pgsched_conninfo_redact(in, buf, sizeof buf);
    if (strcmp(buf, out) != 0) fail_msg("redacting [%s]\n  gave [%s]\n  want [%s]", in, buf, out);
    assert_int_equal(n, strlen(buf));
#ifndef PGSCHED_NO_LIBPQ
    {
        char *errmsg = NULL;
        PQconninfoOption *opts = PQconninfoParse(in, &errmsg), *o;
        PQfreemem(errmsg);
        for (o = opts; o && o->keyword; o++)
            if ((strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0) &&
                o->val && strlen(o->val) >= 4 && strstr(buf, o->val))
                fail_msg("redacting [%s] left libpq's %s [%s]", in, o->keyword, o->val);
        PQconninfoFree(opts);
    }
#endif
}

static void two_password_spans_that_overlap_are_redacted_as_one_inside_the_input(void **state)
{
    /* the URI's password holds "&password=": a query-parameter reading overlaps it */
    char small[20];
    (void)state;
    check_redaction("postgresql://app:s3cr&password=et@host/db",
                    "postgresql://app:********@host/db");
    check_redaction("postgresql://app:p@ss&password=word@host/db?password=x",
                    "postgresql://app:********@host/db?password=********");
    assert_int_equal(pgsched_conninfo_redact("postgresql://app:s3cr&password=et@host/db", small,
                                             sizeof small),
                     strlen("postgresql://app:********@host/db"));
    assert_string_equal(small, "postgresql://app:**");
}

static void sslpassword_is_redacted_like_password(void **state)
{
    (void)state;
    check_redaction("host=db sslpassword=k3yphrase user=app",
                    "host=db sslpassword=******** user=app");
    check_redaction("sslpassword = 'k3y phrase' password=pw12",
                    "sslpassword = ******** password=********");
    check_redaction("postgresql://db/x?sslpassword=k3yphrase&sslmode=require",
                    "postgresql://db/x?sslpassword=********&sslmode=require");
}

static void every_blank_libpq_knows_separates_conninfo_pairs_for_redaction(void **state)
{
    (void)state;
    check_redaction("host=db\rpassword=s3cret\ruser=app", "host=db\rpassword=********\ruser=app");
    check_redaction("host=db\vpassword=s3cret\vuser=app", "host=db\vpassword=********\vuser=app");
    check_redaction("host=db\fpassword=s3cret\fuser=app", "host=db\fpassword=********\fuser=app");
    check_redaction("host=db\tpassword\r=\vs3cret\nuser=app",
                    "host=db\tpassword\r=\v********\nuser=app");
}

static void a_backslash_escape_in_an_unquoted_password_is_part_of_it(void **state)
{
    (void)state;
    check_redaction("password=s3cr\\ et\\\\ user=app", "password=******** user=app");
    check_redaction("password=s3cr\\'et host=db", "password=******** host=db");
    check_redaction("password='s3cr\\'et' host=db", "password=******** host=db");
    /* right after a quoted value, with no blank between, the next pair starts */
    check_redaction("password='s3cret'host=db", "password=********host=db");
}

static void a_uri_password_with_an_unencoded_at_slash_or_question_mark_is_redacted_whole(void **state)
{
    (void)state;
    check_redaction("postgresql://app:pa/ssword@host/db", "postgresql://app:********@host/db");
    check_redaction("postgresql://app:pa@ssword@host/db", "postgresql://app:********@host/db");
    check_redaction("postgresql://app:pa@ss/word@host:5432/db?sslmode=require",
                    "postgresql://app:********@host:5432/db?sslmode=require");
    check_redaction("postgresql://app:pa?ssword@host/db", "postgresql://app:********@host/db");
    check_redaction("postgres://app:pass%40word@host/db", "postgres://app:********@host/db");
    /* an '@' in the query or host part is no password */
    check_redaction("postgresql://host:5432/db?user=me@corp&password=pw12",
                    "postgresql://host:5432/db?user=me@corp&password=********");
    check_redaction("postgresql://me@host:5432/db?application_name=a@b",
                    "postgresql://me@host:5432/db?application_name=a@b");
    /* a percent-encoded parameter name is still that parameter */
    check_redaction("postgresql://host/db?pass%77ord=s3cret", "postgresql://host/db?pass%77ord=********");
}

static void store_wrappers_refuse_null_pointers_with_a_sentence(void **state)
{
    pgsched_error e;
    pgsched_store *s;
    pgsched_job_list l;
    (void)state;
    assert_int_equal(pgsched_store_setup(NULL, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    assert_string_equal(e.message, "the store is missing (NULL)");
    assert_int_equal(pgsched_memory_store_create(NULL, &s, &e), PGSCHED_OK);
    assert_int_equal(pgsched_store_schedule(s, NULL, NULL, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    assert_int_equal(pgsched_store_get(s, "a", "b", NULL, &e), PGSCHED_ERR_INVALID_ARGUMENT);
    pgsched_job_list_init(&l, NULL);
    assert_int_equal(pgsched_store_get(s, "a", "b", &l, &e), PGSCHED_ERR_NOT_FOUND);
    assert_string_equal(e.message, "job a/b does not exist");
    pgsched_job_list_free(&l);
    pgsched_store_destroy(s);
}

/* A memory store whose method table is a modified copy of the real one (`edit` changes the
   copy). Put the real table back with restore_methods before destroying it. */
static pgsched_store *store_with_methods(pgsched_store_methods *copy,
                                         void (*edit)(pgsched_store_methods *))
{
    pgsched_store *s = NULL;
    pgsched_error e;
    assert_int_equal(pgsched_memory_store_create(NULL, &s, &e), PGSCHED_OK);
    *copy = *s->methods;
    edit(copy);
    return s;
}

static void drop_claim(pgsched_store_methods *m) { m->claim = NULL; }

static void drop_listening(pgsched_store_methods *m)
{
    m->listen_open = NULL;
    m->listen_wait = NULL;
    m->listen_wake = NULL;
    m->listen_close = NULL;
}

static void drop_listen_wake(pgsched_store_methods *m) { m->listen_wake = NULL; }

/* `rc` is UNSUPPORTED and the message names the missing method. */
static void expect_missing(const char *call, pgsched_result rc, const pgsched_error *e,
                           const char *method)
{
    if (rc != PGSCHED_ERR_UNSUPPORTED)
        fail_msg("%s with no %s method returned %d (%s)", call, method, (int)rc,
                 pgsched_result_string(rc));
    assert_int_equal(e->code, PGSCHED_ERR_UNSUPPORTED);
    if (!strstr(e->message, method))
        fail_msg("%s: the message does not name %s: %s", call, method, e->message);
}

static void a_store_lacking_a_required_method_is_refused_by_every_wrapper(void **state)
{
    static pgsched_store_methods copy;
    pgsched_store *s = store_with_methods(&copy, drop_claim);
    const pgsched_store_methods *real = s->methods;
    const char *names[1] = {"t"};
    pgsched_schedule_request sr;
    pgsched_schedule_info so;
    pgsched_claim_request cr;
    pgsched_claim_info info;
    pgsched_finish_request oc;
    pgsched_finish_info fr;
    pgsched_change_info co;
    pgsched_list_filter f;
    pgsched_node_record node;
    pgsched_cleanup_request cq;
    pgsched_cleanup_info cout;
    pgsched_listener *l = NULL;
    pgsched_job_list jl;
    pgsched_run_list rl;
    pgsched_time now, next;
    pgsched_error e;
    (void)state;
    pgsched_job_list_init(&jl, NULL);
    pgsched_run_list_init(&rl, NULL);
    memset(&sr, 0, sizeof sr);
    sr.name = "t";
    sr.key = "k";
    sr.kind = PGSCHED_SCHEDULE_ONCE;
    memset(&cr, 0, sizeof cr);
    cr.node_id = "n";
    cr.names = names;
    cr.name_count = 1;
    cr.max = 1;
    memset(&oc, 0, sizeof oc);
    oc.name = "t";
    oc.key = "k";
    oc.token = 1;
    oc.outcome = PGSCHED_OUTCOME_SUCCESS;
    oc.status = PGSCHED_STATUS_COMPLETED;
    oc.node_id = "n";
    memset(&f, 0, sizeof f);
    memset(&node, 0, sizeof node);
    node.id = "n";
    node.names = names;
    node.name_count = 1;
    memset(&cq, 0, sizeof cq);
    cq.node_id = "n";

    s->methods = &copy;
#define MISSING(call)                                                                          \
    do {                                                                                       \
        memset(&e, 0, sizeof e);                                                               \
        expect_missing(#call, (call), &e, "claim");                                           \
    } while (0)
    MISSING(pgsched_store_setup(s, &e));
    MISSING(pgsched_store_now(s, &now, &e));
    MISSING(pgsched_store_schedule(s, &sr, &so, &e));
    MISSING(pgsched_store_claim(s, &cr, &jl, &info, &e));
    MISSING(pgsched_store_heartbeat(s, "n", NULL, 0, 1, NULL, &now, &e));
    MISSING(pgsched_store_finish(s, &oc, 1, &fr, &e));
    MISSING(pgsched_store_take_back(s, "n", PGSCHED_SECOND, 1, &jl, NULL, &e));
    MISSING(pgsched_store_cancel(s, "t", "k", "n", &co, &e));
    MISSING(pgsched_store_trigger(s, "t", "k", "n", &co, &e));
    MISSING(pgsched_store_remove(s, "t", "k", "n", &co, &e));
    MISSING(pgsched_store_get(s, "t", "k", &jl, &e));
    MISSING(pgsched_store_list(s, &f, &jl, &e));
    MISSING(pgsched_store_history(s, NULL, NULL, 0, &rl, &e));
    MISSING(pgsched_store_next_due(s, names, 1, &next, &now, &e));
    MISSING(pgsched_store_node_register(s, &node, &e));
    MISSING(pgsched_store_node_unregister(s, "n", &e));
    MISSING(pgsched_store_cleanup(s, &cq, &cout, &e));
    MISSING(pgsched_store_listen_open(s, &l, &e));
#undef MISSING
    assert_null(l);
    assert_int_equal(jl.count, 0);
    /* nothing reached the store */
    s->methods = real;
    assert_int_equal(pgsched_store_get(s, "t", "k", &jl, &e), PGSCHED_ERR_NOT_FOUND);
    pgsched_job_list_free(&jl);
    pgsched_run_list_free(&rl);
    pgsched_store_destroy(s);
}

static void a_store_without_the_listen_methods_works_but_cannot_listen(void **state)
{
    static pgsched_store_methods copy;
    void (*const edits[2])(pgsched_store_methods *) = {drop_listening, drop_listen_wake};
    int k;
    (void)state;
    for (k = 0; k < 2; k++) {
        pgsched_store *s = store_with_methods(&copy, edits[k]);
        const pgsched_store_methods *real = s->methods;
        const char *names[1] = {"t"};
        pgsched_schedule_request sr;
        pgsched_schedule_info so;
        pgsched_claim_request cr;
        pgsched_claim_info info;
        pgsched_finish_request oc;
        pgsched_finish_info fr;
        pgsched_job_list jl;
        pgsched_listener *l = (pgsched_listener *)&copy; /* overwritten with NULL */
        pgsched_event ev[4];
        size_t count = 99;
        pgsched_error e;
        s->methods = &copy;
        pgsched_job_list_init(&jl, NULL);
        /* everything else works */
        assert_int_equal(pgsched_store_setup(s, &e), PGSCHED_OK);
        memset(&sr, 0, sizeof sr);
        sr.name = "t";
        sr.key = "k";
        sr.kind = PGSCHED_SCHEDULE_ONCE;
        assert_int_equal(pgsched_store_schedule(s, &sr, &so, &e), PGSCHED_OK);
        memset(&cr, 0, sizeof cr);
        cr.node_id = "n";
        cr.names = names;
        cr.name_count = 1;
        cr.max = 1;
        assert_int_equal(pgsched_store_claim(s, &cr, &jl, &info, &e), PGSCHED_OK);
        assert_int_equal(jl.count, 1);
        memset(&oc, 0, sizeof oc);
        oc.name = "t";
        oc.key = "k";
        oc.token = jl.items[0].lease;
        oc.outcome = PGSCHED_OUTCOME_SUCCESS;
        oc.status = PGSCHED_STATUS_COMPLETED;
        oc.node_id = "n";
        assert_int_equal(pgsched_store_finish(s, &oc, 1, &fr, &e), PGSCHED_OK);
        assert_int_equal(fr.code, PGSCHED_OK);
        pgsched_job_list_clear(&jl);
        assert_int_equal(pgsched_store_get(s, "t", "k", &jl, &e), PGSCHED_OK);
        assert_int_equal(jl.items[0].status, PGSCHED_STATUS_COMPLETED);
        /* listening is refused, the same way whether one or all listen methods are missing */
        memset(&e, 0, sizeof e);
        assert_int_equal(pgsched_store_listen_open(s, &l, &e), PGSCHED_ERR_UNSUPPORTED);
        assert_null(l);
        assert_non_null(strstr(e.message, "no notifications"));
        memset(&e, 0, sizeof e);
        l = (pgsched_listener *)&copy; /* any pointer: the store is never asked */
        assert_int_equal(pgsched_store_listen_wait(s, l, 0, ev, 4, &count, &e),
                         PGSCHED_ERR_UNSUPPORTED);
        assert_int_equal(count, 0);
        assert_int_equal(e.code, PGSCHED_ERR_UNSUPPORTED);
        pgsched_store_listen_wake(s, l);  /* no-ops */
        pgsched_store_listen_close(s, l);
        pgsched_job_list_free(&jl);
        s->methods = real;
        pgsched_store_destroy(s);
    }
}

#ifndef PGSCHED_NO_LIBPQ
static void pg_store_rejects_identifiers_that_are_not_plain_names(void **state)
{
    pgsched_pg_config pc;
    pgsched_store *s = NULL;
    pgsched_error e;
    char prefix[64];
    (void)state;
    memset(&pc, 0, sizeof pc);
    pc.conninfo = "host=/nonexistent";
    pc.schema = "x\"; DROP TABLE t; --";
    assert_int_equal(pgsched_pg_store_create(&pc, &s, &e), PGSCHED_ERR_IDENTIFIER);
    assert_null(s);
    assert_non_null(strstr(e.message, "schema"));
    pc.schema = NULL;
    memset(prefix, 'p', sizeof prefix);
    prefix[47] = '\0'; /* 47 + "schema_version" (14) fits 63, but the channel must fit too */
    pc.schema = NULL;
    pc.prefix = prefix;
    assert_int_equal(pgsched_pg_store_create(&pc, &s, &e), PGSCHED_OK);
    pgsched_store_destroy(s);
    prefix[50] = '\0';
    memset(prefix + 47, 'p', 3);
    assert_int_equal(pgsched_pg_store_create(&pc, &s, &e), PGSCHED_ERR_IDENTIFIER);
    prefix[47] = '\0';
    pc.prefix = prefix;
    pc.schema = "public_schema_name";
    /* schema.prefix + "events" exceeds 63 bytes: the channel name is derived from a hash */
    assert_int_equal(pgsched_pg_store_create(&pc, &s, &e), PGSCHED_OK);
    assert_true(strlen(((pgsched__pg *)s)->channel) <= 63);
    assert_int_equal(strncmp(((pgsched__pg *)s)->channel, "pgsched_", 8), 0);
    pgsched_store_destroy(s);
}
#endif

#include "test_filter.h"

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_result_code_has_its_own_sentence),
        cmocka_unit_test(json_validator_accepts_rfc8259_texts),
        cmocka_unit_test(json_validator_rejects_each_malformed_form_with_a_reason),
        cmocka_unit_test(json_nesting_deeper_than_the_limit_is_refused_not_crashed),
        cmocka_unit_test(invalid_utf8_is_its_own_error_in_names_keys_and_params),
        cmocka_unit_test(names_and_keys_have_length_and_character_limits),
        cmocka_unit_test(identifiers_must_be_plain_sql_names),
        cmocka_unit_test(job_lists_own_deep_copies_that_survive_growth),
        cmocka_unit_test(a_partly_filled_allocator_is_refused_by_every_constructor),
        cmocka_unit_test(passwords_never_survive_conninfo_redaction),
        cmocka_unit_test(two_password_spans_that_overlap_are_redacted_as_one_inside_the_input),
        cmocka_unit_test(sslpassword_is_redacted_like_password),
        cmocka_unit_test(every_blank_libpq_knows_separates_conninfo_pairs_for_redaction),
        cmocka_unit_test(a_backslash_escape_in_an_unquoted_password_is_part_of_it),
        cmocka_unit_test(a_uri_password_with_an_unencoded_at_slash_or_question_mark_is_redacted_whole),
        cmocka_unit_test(store_wrappers_refuse_null_pointers_with_a_sentence),
        cmocka_unit_test(a_store_lacking_a_required_method_is_refused_by_every_wrapper),
        cmocka_unit_test(a_store_without_the_listen_methods_works_but_cannot_listen),
#ifndef PGSCHED_NO_LIBPQ
        cmocka_unit_test(pg_store_rejects_identifiers_that_are_not_plain_names),
#endif
    };
    test_filter_from(argc, argv);
    return cmocka_run_group_tests_name("basics", tests, NULL, NULL);
}
