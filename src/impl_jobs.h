/* ---- [pgsched: jobs] implementation -------------------------------------------------------- */

PGSCHED_DEF const char *pgsched_status_string(pgsched_status s)
{
    switch (s) {
    case PGSCHED_STATUS_NONE: return "none";
    case PGSCHED_PENDING: return "pending";
    case PGSCHED_RUNNING: return "running";
    case PGSCHED_COMPLETED: return "completed";
    case PGSCHED_FAILED: return "failed";
    case PGSCHED_CANCELLED: return "cancelled";
    }
    return "unknown";
}

PGSCHED_DEF const char *pgsched_outcome_string(pgsched_outcome_kind k)
{
    switch (k) {
    case PGSCHED_OUTCOME_SUCCESS: return "success";
    case PGSCHED_OUTCOME_FAILURE: return "failure";
    case PGSCHED_OUTCOME_CANCELLED: return "cancelled";
    case PGSCHED_OUTCOME_STALLED: return "stalled";
    case PGSCHED_OUTCOME_RELEASED: return "released";
    }
    return "unknown";
}

static int pgsched__is_recurring(pgsched_schedule_kind k)
{
    return k == PGSCHED_CRON || k == PGSCHED_INTERVAL || k == PGSCHED_CUSTOM;
}

/* ---- owned lists ----
   Each pushed row gets one block holding copies of all its strings, so a row's pointers stay
   valid when the items array grows, and freeing is one call per row. */

static size_t pgsched__slen(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *pgsched__block_put(char **cursor, const char *s)
{
    size_t n;
    char *r;
    if (!s) return NULL;
    n = strlen(s) + 1;
    r = *cursor;
    memcpy(r, s, n);
    *cursor += n;
    return r;
}

/* Grows items (of item_size) and blocks to hold one more; returns 0 on failure. */
static int pgsched__list_grow(pgsched_allocator *a, void **items, void ***blocks, size_t count,
                              size_t *cap, size_t item_size)
{
    size_t ncap;
    void *ni;
    void **nb;
    if (count < *cap) return 1;
    ncap = *cap ? *cap * 2 : 8;
    ni = pgsched__realloc(a, *items, ncap * item_size);
    if (!ni) return 0;
    *items = ni;
    nb = (void **)pgsched__realloc(a, *blocks, ncap * sizeof(void *));
    if (!nb) return 0;
    *blocks = nb;
    *cap = ncap;
    return 1;
}

PGSCHED_DEF void pgsched_job_list_init(pgsched_job_list *list, const pgsched_allocator *a)
{
    memset(list, 0, sizeof *list);
    list->alloc = pgsched__allocator(a);
}

PGSCHED_DEF pgsched_result pgsched_job_list_push(pgsched_job_list *list, const pgsched_job *job)
{
    size_t total;
    char *block, *cur;
    pgsched_job *dst;
    if (!list || !job) return PGSCHED_ERR_INVALID_ARGUMENT;
    if (!list->alloc.malloc_fn) list->alloc = pgsched__allocator(NULL);
    if (!pgsched__list_grow(&list->alloc, (void **)&list->items, &list->blocks, list->count,
                            &list->cap, sizeof(pgsched_job)))
        return PGSCHED_ERR_NOMEM;
    total = pgsched__slen(job->name) + pgsched__slen(job->key) + pgsched__slen(job->cron) +
            pgsched__slen(job->params) + pgsched__slen(job->owner) +
            pgsched__slen(job->last_error);
    block = (char *)pgsched__malloc(&list->alloc, total);
    if (!block) return PGSCHED_ERR_NOMEM;
    cur = block;
    dst = &list->items[list->count];
    *dst = *job;
    dst->name = pgsched__block_put(&cur, job->name);
    dst->key = pgsched__block_put(&cur, job->key);
    dst->cron = pgsched__block_put(&cur, job->cron);
    dst->params = pgsched__block_put(&cur, job->params);
    dst->owner = pgsched__block_put(&cur, job->owner);
    dst->last_error = pgsched__block_put(&cur, job->last_error);
    list->blocks[list->count++] = block;
    return PGSCHED_OK;
}

PGSCHED_DEF void pgsched_job_list_clear(pgsched_job_list *list)
{
    size_t i;
    if (!list) return;
    for (i = 0; i < list->count; i++) pgsched__free(&list->alloc, list->blocks[i]);
    list->count = 0;
}

PGSCHED_DEF void pgsched_job_list_free(pgsched_job_list *list)
{
    if (!list) return;
    pgsched_job_list_clear(list);
    if (list->alloc.free_fn) {
        pgsched__free(&list->alloc, list->items);
        pgsched__free(&list->alloc, list->blocks);
    }
    list->items = NULL;
    list->blocks = NULL;
    list->cap = 0;
}

PGSCHED_DEF void pgsched_run_list_init(pgsched_run_list *list, const pgsched_allocator *a)
{
    memset(list, 0, sizeof *list);
    list->alloc = pgsched__allocator(a);
}

PGSCHED_DEF pgsched_result pgsched_run_list_push(pgsched_run_list *list,
                                                 const pgsched_run_record *rec)
{
    size_t total;
    char *block, *cur;
    pgsched_run_record *dst;
    if (!list || !rec) return PGSCHED_ERR_INVALID_ARGUMENT;
    if (!list->alloc.malloc_fn) list->alloc = pgsched__allocator(NULL);
    if (!pgsched__list_grow(&list->alloc, (void **)&list->items, &list->blocks, list->count,
                            &list->cap, sizeof(pgsched_run_record)))
        return PGSCHED_ERR_NOMEM;
    total = pgsched__slen(rec->name) + pgsched__slen(rec->key) + pgsched__slen(rec->node) +
            pgsched__slen(rec->error);
    block = (char *)pgsched__malloc(&list->alloc, total);
    if (!block) return PGSCHED_ERR_NOMEM;
    cur = block;
    dst = &list->items[list->count];
    *dst = *rec;
    dst->name = pgsched__block_put(&cur, rec->name);
    dst->key = pgsched__block_put(&cur, rec->key);
    dst->node = pgsched__block_put(&cur, rec->node);
    dst->error = pgsched__block_put(&cur, rec->error);
    list->blocks[list->count++] = block;
    return PGSCHED_OK;
}

PGSCHED_DEF void pgsched_run_list_clear(pgsched_run_list *list)
{
    size_t i;
    if (!list) return;
    for (i = 0; i < list->count; i++) pgsched__free(&list->alloc, list->blocks[i]);
    list->count = 0;
}

PGSCHED_DEF void pgsched_run_list_free(pgsched_run_list *list)
{
    if (!list) return;
    pgsched_run_list_clear(list);
    if (list->alloc.free_fn) {
        pgsched__free(&list->alloc, list->items);
        pgsched__free(&list->alloc, list->blocks);
    }
    list->items = NULL;
    list->blocks = NULL;
    list->cap = 0;
}

/* ---- validation ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one: overlong forms,
   surrogates and code points above U+10FFFF are invalid, as PostgreSQL's UTF8 check has it. */
static size_t pgsched__utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80) return 0;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Byte offset of the first invalid sequence, or (size_t)-1 when all of it is valid. */
static size_t pgsched__utf8_check(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = pgsched__utf8_seq((const unsigned char *)s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return (size_t)-1;
}

static pgsched_result pgsched__validate_label(const char *what, pgsched_result code,
                                              const char *s, size_t max, pgsched_error *err)
{
    size_t n, i, bad;
    if (!s) return pgsched__fail(err, code, "the job %s is missing (NULL)", what);
    n = strlen(s);
    if (n == 0) return pgsched__fail(err, code, "the job %s is empty", what);
    if (n > max)
        return pgsched__fail(err, code, "the job %s is %lu bytes long; the limit is %lu", what,
                             (unsigned long)n, (unsigned long)max);
    bad = pgsched__utf8_check(s, n);
    if (bad != (size_t)-1)
        return pgsched__fail(err, PGSCHED_ERR_UTF8,
                             "the job %s is not valid UTF-8 (byte %lu)", what,
                             (unsigned long)bad + 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return pgsched__fail(err, code,
                                 "the job %s contains the control character 0x%02X (byte %lu)",
                                 what, c, (unsigned long)i + 1);
    }
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_validate_name(const char *name, pgsched_error *err)
{
    return pgsched__validate_label("name", PGSCHED_ERR_NAME, name, PGSCHED_NAME_MAX, err);
}

PGSCHED_DEF pgsched_result pgsched_validate_key(const char *key, pgsched_error *err)
{
    return pgsched__validate_label("key", PGSCHED_ERR_KEY, key, PGSCHED_KEY_MAX, err);
}

PGSCHED_DEF pgsched_result pgsched_validate_identifier(const char *what, const char *ident,
                                                       size_t max_len, pgsched_error *err)
{
    size_t i, n;
    if (!ident) return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER, "%s is missing (NULL)", what);
    n = strlen(ident);
    if (n == 0) return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER, "%s is empty", what);
    if (n > max_len)
        return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER,
                             "%s \"%.80s\" is %lu bytes long; at most %lu fit", what, ident,
                             (unsigned long)n, (unsigned long)max_len);
    for (i = 0; i < n; i++) {
        char c = ident[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            if (i == 0 && c >= '0' && c <= '9')
                return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER,
                                     "%s \"%.80s\" starts with a digit", what, ident);
            return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER,
                                 "%s \"%.80s\" has a character other than letters, digits and "
                                 "'_' at byte %lu",
                                 what, ident, (unsigned long)i + 1);
        }
    }
    return PGSCHED_OK;
}

static pgsched_result pgsched__validate_node_id(const char *id, pgsched_error *err)
{
    size_t i, n;
    if (!id)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "the node id is missing (NULL)");
    n = strlen(id);
    if (n == 0 || n > PGSCHED_NODE_ID_MAX)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "the node id must be 1 to %d bytes long", PGSCHED_NODE_ID_MAX);
    for (i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "the node id has a character other than letters, digits and "
                                 "_.:- at byte %lu",
                                 (unsigned long)i + 1);
    }
    return PGSCHED_OK;
}

/* ---- JSON ----
   An RFC 8259 validator without recursion (an explicit stack of open containers), so deep
   nesting cannot overflow the C stack. It accepts what PostgreSQL's json type accepts, except
   that it limits nesting depth and refuses \u escapes of unpaired surrogates (which no JSON
   reader can turn into text). */

#define PGSCHED__JSON_MAX_DEPTH 1000

static int pgsched__json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int pgsched__hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Scans a string starting at the opening quote; returns the index after the closing quote or
   0 with *why set. */
static size_t pgsched__json_string(const char *s, size_t i, const char **why)
{
    i++; /* the quote */
    for (;;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') return i + 1;
        if (c == '\0') { *why = "a string is not closed"; return 0; }
        if (c < 0x20) { *why = "a string contains an unescaped control character"; return 0; }
        if (c == '\\') {
            char e = s[i + 1];
            if (e == 'u') {
                unsigned cp, lo;
                if (!pgsched__hex4(s + i + 2, &cp)) {
                    *why = "a \\u escape needs four hex digits";
                    return 0;
                }
                i += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    *why = "a \\u escape is a lone low surrogate";
                    return 0;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (s[i] != '\\' || s[i + 1] != 'u' || !pgsched__hex4(s + i + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF) {
                        *why = "a \\u high surrogate is not followed by a low surrogate";
                        return 0;
                    }
                    i += 6;
                }
                continue;
            }
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                e == 'r' || e == 't') {
                i += 2;
                continue;
            }
            *why = "a string has an invalid escape";
            return 0;
        }
        i++;
    }
}

static size_t pgsched__json_number(const char *s, size_t i, const char **why)
{
    size_t start;
    if (s[i] == '-') i++;
    if (s[i] == '0') i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (s[i] >= '0' && s[i] <= '9') i++;
    else { *why = "a number has no digits"; return 0; }
    if (s[i] == '.') {
        i++;
        start = i;
        while (s[i] >= '0' && s[i] <= '9') i++;
        if (i == start) { *why = "a number has no digits after its decimal point"; return 0; }
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-') i++;
        start = i;
        while (s[i] >= '0' && s[i] <= '9') i++;
        if (i == start) { *why = "a number has no digits in its exponent"; return 0; }
    }
    return i;
}

PGSCHED_DEF pgsched_result pgsched_validate_json(const char *s, pgsched_error *err)
{
    /* stack[d] is '{' or '['; `expect` is what may come next. */
    enum { VALUE, VALUE_OR_CLOSE, KEY, KEY_OR_CLOSE, COLON, COMMA_OR_CLOSE, END } expect = VALUE;
    unsigned char *stack;
    size_t depth = 0, i = 0, n, bad;
    const char *why = NULL;
    pgsched_result r = PGSCHED_OK;
    pgsched_allocator a = pgsched__allocator(NULL);

    if (!s) return pgsched__fail(err, PGSCHED_ERR_JSON, "the parameters are missing (NULL)");
    n = strlen(s);
    if (n > PGSCHED_PARAMS_MAX)
        return pgsched__fail(err, PGSCHED_ERR_TOO_LARGE,
                             "the parameters are %lu bytes long; the limit is %lu",
                             (unsigned long)n, (unsigned long)PGSCHED_PARAMS_MAX);
    bad = pgsched__utf8_check(s, n);
    if (bad != (size_t)-1)
        return pgsched__fail(err, PGSCHED_ERR_UTF8,
                             "the parameters are not valid UTF-8 (byte %lu)",
                             (unsigned long)bad + 1);
    stack = (unsigned char *)pgsched__malloc(&a, PGSCHED__JSON_MAX_DEPTH);
    if (!stack) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory checking JSON");

    for (;;) {
        char c;
        while (pgsched__json_ws(s[i])) i++;
        c = s[i];
        if (expect == END) {
            if (c != '\0') why = "there is text after the JSON value";
            break;
        }
        if (c == '\0') { why = "the JSON text ends early"; break; }
        if (expect == COLON) {
            if (c != ':') { why = "an object key is not followed by ':'"; break; }
            i++;
            expect = VALUE;
            continue;
        }
        if (expect == COMMA_OR_CLOSE) {
            if (c == ',') {
                i++;
                expect = stack[depth - 1] == '{' ? KEY : VALUE;
                continue;
            }
            if ((c == '}' && stack[depth - 1] == '{') || (c == ']' && stack[depth - 1] == '[')) {
                i++;
                depth--;
                expect = depth ? COMMA_OR_CLOSE : END;
                continue;
            }
            why = "expected ',' or the end of the container";
            break;
        }
        if (expect == KEY || expect == KEY_OR_CLOSE) {
            if (c == '}' && expect == KEY_OR_CLOSE) {
                i++;
                depth--;
                expect = depth ? COMMA_OR_CLOSE : END;
                continue;
            }
            if (c != '"') { why = "an object key is not a string"; break; }
            {
                size_t j = pgsched__json_string(s, i, &why);
                if (!j) break;
                i = j;
            }
            expect = COLON;
            continue;
        }
        /* VALUE or VALUE_OR_CLOSE */
        if (c == ']' && expect == VALUE_OR_CLOSE) {
            i++;
            depth--;
            expect = depth ? COMMA_OR_CLOSE : END;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == PGSCHED__JSON_MAX_DEPTH) {
                why = "the JSON is nested more than 1000 levels deep";
                break;
            }
            stack[depth++] = (unsigned char)c;
            i++;
            expect = c == '{' ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
            continue;
        }
        {
            size_t j = 0;
            if (c == '"') j = pgsched__json_string(s, i, &why);
            else if (c == '-' || (c >= '0' && c <= '9')) j = pgsched__json_number(s, i, &why);
            else if (strncmp(s + i, "true", 4) == 0) j = i + 4;
            else if (strncmp(s + i, "false", 5) == 0) j = i + 5;
            else if (strncmp(s + i, "null", 4) == 0) j = i + 4;
            else why = "a value is not a string, number, object, array, true, false or null";
            if (why) break;
            i = j;
        }
        expect = depth ? COMMA_OR_CLOSE : END;
    }
    pgsched__free(&a, stack);
    if (why)
        r = pgsched__fail(err, PGSCHED_ERR_JSON, "the parameters are not valid JSON: %s (byte %lu)",
                          why, (unsigned long)i + 1);
    return r;
}
