/* libFuzzer harness for the TZif reader (pgsched__tz_parse) and the zone look-ups behind
   next() and utc_offset().

     make build/fuzz/fuzz_tzif         (clang -fsanitize=fuzzer,address,undefined)
     build/fuzz/fuzz_tzif -max_total_time=300 tests/fuzz/corpus_tzif

   The input is a zone file. When it parses, it is attached to a wall-clock expression, a
   real-time expression and a daily one (the harness includes the implementation, so it may
   set the private `tz` member), and next() is driven through the years around the file's
   transitions and its footer rule. A malformed file may give odd offsets, but next() must
   still return an instant strictly after its argument, in range, without hanging. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const exprs[] = {"0 30 2 * * *", "0 */15 * * * *", "0 0 0 L * *",
                                    "0 0 0 29 2 *"};

static const pgsched_time starts[] = {-2208988800LL, -1000000000LL, 0,
                                      1000000000LL,  1767225600LL,  2145916800LL,
                                      4102444800LL,  7258118400LL,  253370764800LL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgsched_allocator a = pgsched__allocator(NULL);
    pgsched__tz *z = NULL;
    pgsched_error err;
    size_t e, s;
    if (pgsched__tz_parse(data, size, "fuzz", &a, &z, &err) != PGSCHED_OK) {
        /* corrupt, or a "right/" file with leap-second records (refused as such) */
        if (z || (err.code != PGSCHED_ERR_ZONE_CORRUPT && err.code != PGSCHED_ERR_ZONE_UNKNOWN))
            abort();
        return 0;
    }
    for (e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
        pgsched_cron *c = NULL;
        if (pgsched_cron_parse(exprs[e], NULL, &c, &err) != PGSCHED_OK) abort();
        c->tz = z;
        for (s = 0; s < sizeof starts / sizeof starts[0]; s++) {
            pgsched_time t = starts[s] * PGSCHED_SECOND;
            int k;
            for (k = 0; k < 6; k++) {
                pgsched_time nx = 0;
                pgsched_result r = pgsched_cron_next(c, t, &nx);
                if (r == PGSCHED_ERR_TIME_RANGE) break;
                if (r != PGSCHED_OK || nx <= t || nx > PGSCHED_TIME_MAX) abort();
                (void)pgsched_cron_utc_offset(c, nx);
                t = nx;
            }
        }
        c->tz = NULL; /* the zone is freed once, below */
        pgsched_cron_free(c);
    }
    pgsched__tz_free(&a, z);
    return 0;
}
