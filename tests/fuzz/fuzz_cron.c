/* libFuzzer harness for the cron parser and next().

     make build/fuzz/fuzz_cron         (clang -fsanitize=fuzzer,address,undefined)
     build/fuzz/fuzz_cron -max_total_time=300 tests/fuzz/corpus_cron

   The input is a cron expression, optionally followed by a NUL and eight bytes choosing the
   start time. Besides crashes and sanitizer reports it checks the contract of next(): the
   result is strictly after the start, whole seconds (but for @every), in range, and it is
   the *first* match: asking again from any point between the start and the result gives
   the same result. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

static void check(int ok, const char *what, const char *expr, pgsched_time a, pgsched_time b)
{
    if (ok) return;
    fprintf(stderr, "contract broken: %s\n  expr: %s\n  %lld -> %lld\n", what, expr, (long long)a,
            (long long)b);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *expr;
    size_t n = 0;
    pgsched_cron *c = NULL;
    pgsched_error err;
    pgsched_time t, from;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    int i;
    if (size > 512) return 0;
    while (n < size && data[n]) n++;
    expr = (char *)malloc(n + 1);
    memcpy(expr, data, n);
    expr[n] = '\0';
    for (i = 0; n + 1 + (size_t)i < size && i < 8; i++) seed = seed * 131 + data[n + 1 + i];
    /* A start anywhere in the supported range, often near the present. */
    from =
        PGSCHED_TIME_MIN + (pgsched_time)(seed % (uint64_t)(PGSCHED_TIME_MAX - PGSCHED_TIME_MIN));
    if (seed & 1)
        from = 1767225600LL * PGSCHED_SECOND + (pgsched_time)(seed % (40ULL * 365 * 86400)) * 1000;

    memset(&err, 0, sizeof err);
    if (pgsched_cron_parse(expr, NULL, &c, &err) != PGSCHED_OK) {
        check(c == NULL && err.code != PGSCHED_OK && err.message[0] != '\0' &&
                  strlen(err.message) < sizeof err.message,
              "a failed parse leaves no object and says why", expr, 0, 0);
        free(expr);
        return 0;
    }
    t = from;
    for (i = 0; i < 8; i++) {
        pgsched_time nx = 0;
        pgsched_result r = pgsched_cron_next(c, t, &nx);
        if (r == PGSCHED_ERR_TIME_RANGE) break;
        check(r == PGSCHED_OK, "next returns OK or TIME_RANGE", expr, t, nx);
        check(nx > t && nx <= PGSCHED_TIME_MAX, "next is after and in range", expr, t, nx);
        if (!pgsched_cron_interval(c)) {
            pgsched_time mid = t + (nx - t) / 2, again = 0;
            check(nx % PGSCHED_SECOND == 0, "cron fires on whole seconds", expr, t, nx);
            check(pgsched_cron_next(c, nx - 1, &again) == PGSCHED_OK && again == nx,
                  "next(result - 1us) is the result", expr, nx - 1, again);
            check(pgsched_cron_next(c, mid, &again) == PGSCHED_OK && again == nx,
                  "nothing fires between the start and the result", expr, mid, again);
        }
        (void)pgsched_cron_utc_offset(c, nx);
        t = nx;
    }
    pgsched_cron_free(c);
    free(expr);
    return 0;
}
