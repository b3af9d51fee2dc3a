/* link_a.c - the translation unit with the implementation, for the two-unit link check in
   tests/compile_check.sh: linked with link_b.c (declarations only), as C or C++, it must give
   no duplicate or missing symbols. */
#define PGSCHED_IMPLEMENTATION
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

int main(void)
{
    const char *s = pgsched_result_string(PGSCHED_ERR_NOMEM);
    pgsched_time t = pgsched_now();
    if (s == NULL || s[0] == '\0' || t <= 0) {
        fprintf(stderr, "link_a: the implementation answered nonsense\n");
        return 1;
    }
    return link_b_check();
}
