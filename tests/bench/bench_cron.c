/* bench_cron - median nanoseconds per pgsched_cron_next() for typical expressions.

   Each expression is timed in TRIALS trials; a trial walks a chain of `iterations`
   successive next() calls through 2026-2046 (so month lengths, leap years and DST changes
   all come round), and the median trial's time per call is printed; then, as "BENCH" lines
   for tests/bench/run.sh, the median and the largest of those medians.

     cc -std=c99 -O2 -I. -I/usr/include/postgresql tests/bench/bench_cron.c -o build/bench_cron \
         -lpq -lpthread
     build/bench_cron [iterations] */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#define TRIALS 15

static const char *const exprs[] = {
    "*/5 * * * *",
    "0 9 * * 1-5",
    "0 0 1 * *",
    "0 0 L * *",
    "0 12 ? * 5#3",
    "*/10 * * * * *",
    "0 0 29 2 *",
    "@every 90s",
    "CRON_TZ=America/New_York 30 2 * * *",
    "CRON_TZ=America/New_York */5 * * * *",
    "CRON_TZ=Europe/London 0 9 * * 1-5",
    "CRON_TZ=Australia/Lord_Howe 0 0 L * *",
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 200000;
    size_t i;
    volatile pgsched_time sink = 0;
    double all[sizeof exprs / sizeof exprs[0]];
    if (iterations < 1) iterations = 1;
    printf("%-44s %12s\n", "expression", "median ns");
    for (i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        pgsched_cron *c;
        pgsched_error err;
        double ns[TRIALS];
        int trial;
        if (pgsched_cron_parse(exprs[i], NULL, &c, &err) != PGSCHED_OK) {
            fprintf(stderr, "%s: %s\n", exprs[i], err.message);
            return 1;
        }
        for (trial = 0; trial < TRIALS; trial++) {
            /* Each trial starts at its own point of 2026-2036 and wraps back to it at 2046,
               so sparse expressions stay in the years schedules actually run in. */
            pgsched_time start =
                1767225600LL * PGSCHED_SECOND + (pgsched_time)trial * 251 * PGSCHED_DAY;
            pgsched_time end = 2398377600LL * PGSCHED_SECOND; /* 2046-01-01 */
            pgsched_time t = start, t0 = pgsched__monotonic();
            long k;
            for (k = 0; k < iterations; k++) {
                if (pgsched_cron_next(c, t, &t) != PGSCHED_OK || t > end) t = start;
            }
            ns[trial] = (double)(pgsched__monotonic() - t0) * 1000.0 / (double)iterations;
            sink += t;
        }
        qsort(ns, TRIALS, sizeof ns[0], cmp_double);
        printf("%-44s %12.1f\n", exprs[i], ns[TRIALS / 2]);
        all[i] = ns[TRIALS / 2];
        pgsched_cron_free(c);
    }
    (void)sink;
    /* for tests/bench/run.sh: the median and the slowest of the expressions' medians */
    qsort(all, sizeof all / sizeof all[0], sizeof all[0], cmp_double);
    printf("BENCH cron.next_ns.median %.1f\n", all[sizeof all / sizeof all[0] / 2]);
    printf("BENCH cron.next_ns.max %.1f\n", all[sizeof all / sizeof all[0] - 1]);
    return 0;
}
