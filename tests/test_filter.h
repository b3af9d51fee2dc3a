/* test_filter.h - the one way every test binary runs a subset of its tests:
       build/test_NAME 'glob'          or          PGSCHED_TEST_FILTER='glob' build/test_NAME
   (cmocka's '*' and '?' match against the test names; no argument runs everything). */
#ifndef PGSCHED_TEST_FILTER_H
#define PGSCHED_TEST_FILTER_H

#include <stdlib.h>

/* Sets cmocka's filter from argv[1], else from $PGSCHED_TEST_FILTER (or the engine suite's
   older $ENGINE_TEST_FILTER). Call before the first cmocka_run_group_tests. */
static void test_filter_from(int argc, char **argv)
{
    const char *f = argc > 1 ? argv[1] : getenv("PGSCHED_TEST_FILTER");
    if (!f || !f[0]) f = getenv("ENGINE_TEST_FILTER");
    if (f && f[0]) cmocka_set_test_filter(f);
}

#endif
