/* link_b.c - a translation unit with the declarations only (see link_a.c). */
#include "pgsched.h"

#include <stdio.h>

/* C linkage either way, so a C++ unit links with a C one. */
#ifdef __cplusplus
extern "C" {
#endif
int link_b_check(void);
#ifdef __cplusplus
}
#endif

int link_b_check(void)
{
    const char *ok = pgsched_result_string(PGSCHED_OK);
    pgsched_time before = pgsched_now(), after = pgsched_now();
    if (ok == NULL || ok[0] == '\0' || after < before) {
        fprintf(stderr, "link_b: the implementation answered nonsense\n");
        return 1;
    }
    return 0;
}
