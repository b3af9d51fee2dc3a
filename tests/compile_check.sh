#!/usr/bin/env bash
# tests/compile_check.sh - pgsched.h compiles warning-free in every supported way.
#
# Full compiles (to objects, and linked and run where a variant is about linking) of a file
# that includes pgsched.h with PGSCHED_IMPLEMENTATION: gcc and clang as C99 and C11, g++ and
# clang++ as C++11 and C++17, all with -Wall -Wextra -Wpedantic -Werror; then the variants
# PGSCHED_NO_LIBPQ (no libpq header path, linked without -lpq, no libpq in the result),
# PGSCHED_STATIC, custom allocator macros (the program fails unless the library allocated and
# freed through them), a PGSCHED_ASSERT override (fails unless the library called it), the
# #error for an incomplete allocator set (must fail to compile), the two-translation-unit link
# of tests/link_a.c + tests/link_b.c as C, C++ and mixed, and `make install` into a scratch
# prefix followed by a program built only with `pkg-config --cflags --libs pgsched`.
# Last line: "N passed, N failed"; exit status 1 on any failure.
#
#   CC=... CXX=... CLANG=... CLANGXX=...   the compilers (defaults gcc, g++, clang, clang++)
#   JOBS=N                                 compiles at once (default: number of CPUs)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
GCC=${CC:-gcc}
GXX=${CXX:-g++}
CLANG=${CLANG:-clang}
CLANGXX=${CLANGXX:-clang++}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
pginc=$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
warn=(-Wall -Wextra -Wpedantic -Werror)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM HUP

# --- the sources ---------------------------------------------------------------------------
# The implementation. Its functions have external linkage, so the object holds all of them and
# the link needs libpq and pthreads for them even though main calls only two.
cat >"$tmp/impl.c" <<'EOF'
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"
#include <stdio.h>
int main(void)
{
    printf("pgsched %s: %s\n", PGSCHED_VERSION_STRING, pgsched_result_string(PGSCHED_OK));
    return pgsched_now() > 0 ? 0 : 1;
}
EOF
# Custom allocator: all three macros, calling counting wrappers defined after the include. main
# makes the library allocate and free (a cron expression, an in-memory store with one job) and
# fails unless both counts grew: a library that ignored the macros would not pass.
cat >"$tmp/alloc.c" <<'EOF'
#include <stddef.h>
static unsigned long my_allocs, my_frees;
static void *my_malloc(size_t n);
static void *my_realloc(void *p, size_t n);
static void my_free(void *p);
#define PGSCHED_MALLOC(sz) my_malloc(sz)
#define PGSCHED_REALLOC(p, sz) my_realloc(p, sz)
#define PGSCHED_FREE(p) my_free(p)
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void *my_malloc(size_t n) { my_allocs++; return malloc(n); }
static void *my_realloc(void *p, size_t n) { my_allocs++; return realloc(p, n); }
static void my_free(void *p) { if (p) my_frees++; free(p); }
int main(void)
{
    pgsched_cron *cron = NULL;
    pgsched_store *store = NULL;
    pgsched_schedule_request q;
    pgsched_schedule_info o;
    pgsched_error e;
    memset(&q, 0, sizeof q);
    memset(&o, 0, sizeof o);
    q.name = "check";
    q.key = "once";
    q.kind = PGSCHED_SCHEDULE_ONCE;
    if (pgsched_cron_parse("*/15 9-17 * * MON-FRI", NULL, &cron, &e) != PGSCHED_OK) return 1;
    pgsched_cron_free(cron);
    if (pgsched_memory_store_create(NULL, &store, &e) != PGSCHED_OK) return 1;
    if (pgsched_store_schedule(store, &q, &o, &e) != PGSCHED_OK) return 1;
    pgsched_store_destroy(store);
    printf("custom allocator: %lu allocations, %lu frees\n", my_allocs, my_frees);
    if (my_allocs == 0 || my_frees == 0) {
        printf("the library did not allocate or free through PGSCHED_MALLOC/REALLOC/FREE\n");
        return 1;
    }
    return 0;
}
EOF
# PGSCHED_ASSERT overridden by a function of this file that counts its calls. Scheduling a job
# in the in-memory store asserts (that its due-time heap has room), so the count must grow.
cat >"$tmp/assert.c" <<'EOF'
static unsigned long my_asserts;
static void my_assert(int ok, const char *what);
#define PGSCHED_ASSERT(x) my_assert((x) ? 1 : 0, #x)
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void my_assert(int ok, const char *what)
{
    my_asserts++;
    if (!ok) {
        fprintf(stderr, "PGSCHED_ASSERT failed: %s\n", what);
        abort();
    }
}
int main(void)
{
    pgsched_store *store = NULL;
    pgsched_schedule_request q;
    pgsched_schedule_info o;
    pgsched_error e;
    memset(&q, 0, sizeof q);
    memset(&o, 0, sizeof o);
    q.name = "check";
    q.key = "once";
    q.kind = PGSCHED_SCHEDULE_ONCE;
    if (pgsched_memory_store_create(NULL, &store, &e) != PGSCHED_OK) return 1;
    if (pgsched_store_schedule(store, &q, &o, &e) != PGSCHED_OK) return 1;
    pgsched_store_destroy(store);
    printf("PGSCHED_ASSERT override: called %lu times\n", my_asserts);
    if (my_asserts == 0) {
        printf("the library never called PGSCHED_ASSERT\n");
        return 1;
    }
    return 0;
}
EOF
# The installed header, found only through pkg-config.
sed 's|#include "pgsched.h"|#include <pgsched.h>|' "$tmp/impl.c" >"$tmp/app.c"
# Incomplete allocator sets: each must stop at the header's #error.
for set in MALLOC MALLOC_REALLOC FREE; do
    {
        echo '#include <stdlib.h>'
        case $set in
        MALLOC) echo '#define PGSCHED_MALLOC(sz) malloc(sz)' ;;
        MALLOC_REALLOC) printf '%s\n' '#define PGSCHED_MALLOC(sz) malloc(sz)' \
            '#define PGSCHED_REALLOC(p, sz) realloc(p, sz)' ;;
        FREE) echo '#define PGSCHED_FREE(p) free(p)' ;;
        esac
        echo '#define PGSCHED_IMPLEMENTATION'
        echo '#include "pgsched.h"'
        echo 'int main(void) { return 0; }'
    } >"$tmp/alloc_$set.c"
done
# The same files as C++ (the compilers pick the language from the suffix).
# A job run end to end on the in-memory store, with <stdio.h> included before pgsched.h (so the
# feature macros are whatever the compiler's flags chose, not pgsched.h's): the builds a user
# makes with `cc -std=c99 -pthread`, under musl, and with realtime condition variables.
cat >"$tmp/run.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"
static int handler(pgsched_run *run)
{
    (void)run;
    return PGSCHED_RUN_SUCCESS;
}
int main(void)
{
    pgsched_store *store = NULL;
    pgsched_node *node = NULL;
    pgsched_config cfg;
    pgsched_job_type type;
    pgsched_job_spec spec;
    pgsched_job *job;
    pgsched_error err;
    int i, done = 0;
    memset(&cfg, 0, sizeof cfg);
    memset(&type, 0, sizeof type);
    memset(&spec, 0, sizeof spec);
    if (pgsched_memory_store_create(NULL, &store, &err) != PGSCHED_OK) goto fail;
    cfg.store = store;
    if (pgsched_create(&cfg, &node, &err) != PGSCHED_OK) goto fail;
    type.name = "hello";
    type.handler = handler;
    if (pgsched_register(node, &type, &err) != PGSCHED_OK) goto fail;
    if (pgsched_start(node, &err) != PGSCHED_OK) goto fail;
    spec.name = "hello";
    spec.key = "once";
    spec.schedule.kind = PGSCHED_SCHEDULE_ONCE;
    if (pgsched_schedule_job(node, &spec, &err) != PGSCHED_OK) goto fail;
    for (i = 0; i < 1000 && !done; i++) { /* up to 10 s for the run to complete */
        if (pgsched_get(node, "hello", "once", &job, &err) != PGSCHED_OK) goto fail;
        done = job->status == PGSCHED_STATUS_COMPLETED;
        pgsched_job_free(job);
        if (!done) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    pgsched_destroy(node);
    pgsched_store_destroy(store);
    printf("%s\n", done ? "one job ran and completed" : "the job did not complete in 10 s");
    return done ? 0 : 1;
fail:
    printf("failed: %s\n", err.message);
    return 1;
}
EOF
for f in impl alloc assert run; do cp "$tmp/$f.c" "$tmp/$f.cpp"; done
cp "$tmp/alloc_FREE.c" "$tmp/alloc_FREE.cpp"

inc=(-I"$repo" -I"$pginc")
libs=(-lpq -lpthread)

# --- the steps a case is made of ---------------------------------------------------------------
# Each case runs in its own directory; its output goes to a log shown when it fails.
obj() { # COMPILER STD SOURCE [FLAGS...]: full compile to an object
    local cc=$1 std=$2 src=$3
    shift 3
    echo "+ $cc -std=$std ${warn[*]} $* -c $src"
    "$cc" -std="$std" "${warn[@]}" "${inc[@]}" "$@" -c "$src" -o "${src##*/}.o"
}
prog() { # COMPILER STD SOURCE LIBS... -- FLAGS...: compile, link and run a program
    local cc=$1 std=$2 src=$3 l=() f=()
    shift 3
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        l+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    f=("$@")
    echo "+ $cc -std=$std ${warn[*]} ${f[*]} $src ${l[*]}"
    "$cc" -std="$std" "${warn[@]}" "${f[@]}" "$src" -o prog "${l[@]}" && ./prog
}
# PGSCHED_NO_LIBPQ: no libpq header on the include path, no -lpq, and no libpq in the result.
nolibpq() { # COMPILER STD SOURCE
    local cc=$1 std=$2 src=$3
    echo "+ $cc -std=$std ${warn[*]} -DPGSCHED_NO_LIBPQ -I$repo $src -lpthread"
    "$cc" -std="$std" "${warn[@]}" -DPGSCHED_NO_LIBPQ -I"$repo" "$src" -o prog -lpthread || return 1
    ./prog || return 1
    if readelf -d prog 2>/dev/null | grep -q 'libpq'; then
        echo "the PGSCHED_NO_LIBPQ program still needs libpq"
        return 1
    fi
}
# Must fail, and because of the allocator #error, not for some other reason.
must_fail() { # COMPILER STD SOURCE
    local cc=$1 std=$2 src=$3
    echo "+ $cc -std=$std ${warn[*]} -c $src   (must fail)"
    if "$cc" -std="$std" "${warn[@]}" "${inc[@]}" -c "$src" -o x.o >out 2>&1; then
        cat out
        echo "it compiled, but an incomplete set of allocator macros must be an #error"
        return 1
    fi
    cat out
    grep -q 'define all of PGSCHED_MALLOC, PGSCHED_REALLOC and PGSCHED_FREE' out || {
        echo "it failed, but not with the allocator #error"
        return 1
    }
}
# `make install` into a scratch prefix (its own build dir: the repository's is left alone), the
# installed tools' --help, then a program that defines PGSCHED_IMPLEMENTATION, compiled and linked with nothing but what
# `pkg-config --cflags --libs pgsched` gives, and run.
pkgconfig() { # COMPILER STD SOURCE
    local cc=$1 std=$2 src=$3 pc
    echo "+ make install PREFIX=$PWD/prefix BUILD=$PWD/build"
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$repo" install \
        PREFIX="$PWD/prefix" BUILD="$PWD/build" || return 1
    [ -f prefix/include/pgsched.h ] || { echo "no prefix/include/pgsched.h"; return 1; }
    # the tools, with their manual (--help)
    for tool in pgsched-cron pgschedctl; do
        prefix/bin/$tool --help >help.txt || { echo "prefix/bin/$tool --help failed"; return 1; }
        grep -q "^usage: $tool" help.txt || { echo "prefix/bin/$tool --help: no usage line"; return 1; }
    done
    pc=$(PKG_CONFIG_PATH=$PWD/prefix/lib/pkgconfig pkg-config --cflags --libs pgsched) || return 1
    echo "pkg-config --cflags --libs pgsched: $pc"
    # Word splitting of $pc is wanted: it is a list of flags.
    # shellcheck disable=SC2086
    echo "+ $cc -std=$std ${warn[*]} $src $pc" &&
        "$cc" -std="$std" "${warn[@]}" "$src" -o prog $pc && ./prog
}
# Two units: A (implementation) and B (declarations), each compiled as C or C++.
link2() { # LINKER CC_A STD_A LANG_A CC_B STD_B LANG_B [FLAGS_B...]
    local ld=$1 ca=$2 sa=$3 la=$4 cb=$5 sb=$6 lb=$7
    shift 7
    echo "+ $ca -x $la -std=$sa link_a.c + $cb -x $lb -std=$sb $* link_b.c, linked by $ld"
    "$ca" -x "$la" -std="$sa" "${warn[@]}" "${inc[@]}" -c "$here/link_a.c" -o a.o &&
        "$cb" -x "$lb" -std="$sb" "${warn[@]}" "${inc[@]}" "$@" -c "$here/link_b.c" -o b.o &&
        "$ld" a.o b.o -o prog "${libs[@]}" &&
        ./prog
}

# --- the cases -------------------------------------------------------------------------------
names=()
cmds=()
add() { # NAME COMMAND...
    names+=("$1")
    shift
    cmds+=("$(printf '%q ' "$@")")
}

for cc in "$GCC" "$CLANG"; do
    for std in c99 c11; do
        add "$cc -std=$std: implementation" obj "$cc" "$std" "$tmp/impl.c"
    done
done
for cc in "$GXX" "$CLANGXX"; do
    for std in c++11 c++17; do
        add "$cc -std=$std: implementation" obj "$cc" "$std" "$tmp/impl.cpp"
    done
done
variants=("$GCC c99 c" "$CLANG c11 c" "$GXX c++11 cpp" "$CLANGXX c++17 cpp")
for v in "${variants[@]}"; do
    read -r cc std ext <<<"$v"
    add "$cc -std=$std: PGSCHED_NO_LIBPQ, linked without -lpq" nolibpq "$cc" "$std" "$tmp/impl.$ext"
    add "$cc -std=$std: PGSCHED_STATIC" prog "$cc" "$std" "$tmp/impl.$ext" "${libs[@]}" -- \
        -DPGSCHED_STATIC "${inc[@]}"
    add "$cc -std=$std: custom allocator macros" prog "$cc" "$std" "$tmp/alloc.$ext" "${libs[@]}" -- \
        "${inc[@]}"
    add "$cc -std=$std: PGSCHED_ASSERT override" prog "$cc" "$std" "$tmp/assert.$ext" "${libs[@]}" -- \
        "${inc[@]}"
done
# The way people build: another header first, -std=c99 -pthread, nothing else defined.
for v in "$GCC c99 c" "$CLANG c99 c" "$GXX c++11 cpp" "$CLANGXX c++17 cpp"; do
    read -r cc std ext <<<"$v"
    add "$cc -std=$std -pthread, <stdio.h> before pgsched.h: a job runs" \
        prog "$cc" "$std" "$tmp/run.$ext" "${libs[@]}" -- -pthread "${inc[@]}"
done
add "$GCC -std=c11: PGSCHED_NO_MONOTONIC_COND (the macOS path): a job runs" \
    prog "$GCC" c11 "$tmp/run.c" "${libs[@]}" -- -pthread -DPGSCHED_NO_MONOTONIC_COND "${inc[@]}"
if command -v musl-gcc >/dev/null 2>&1; then
    add "musl-gcc -std=c99 -pthread: PGSCHED_NO_LIBPQ, a job runs" \
        prog musl-gcc c99 "$tmp/run.c" -lpthread -- -pthread -DPGSCHED_NO_LIBPQ -I"$repo"
else
    add "musl-gcc: not installed (tests/deps.sh test installs musl-tools)" false
fi
add "$GCC -std=c99: only PGSCHED_MALLOC is an #error" must_fail "$GCC" c99 "$tmp/alloc_MALLOC.c"
add "$CLANG -std=c11: PGSCHED_MALLOC+REALLOC without FREE is an #error" \
    must_fail "$CLANG" c11 "$tmp/alloc_MALLOC_REALLOC.c"
add "$GXX -std=c++11: only PGSCHED_FREE is an #error" must_fail "$GXX" c++11 "$tmp/alloc_FREE.cpp"
add "link: link_a.c + link_b.c as C ($GCC)" link2 "$GCC" "$GCC" c99 c "$GCC" c99 c
add "link: link_a.c + link_b.c as C ($CLANG)" link2 "$CLANG" "$CLANG" c11 c "$CLANG" c11 c
add "link: link_a.c + link_b.c as C++ ($CLANGXX)" \
    link2 "$CLANGXX" "$CLANGXX" c++17 c++ "$CLANGXX" c++17 c++
add "link: link_a.c as C++ + link_b.c as C" link2 "$GXX" "$GXX" c++11 c++ "$GCC" c99 c
add "link: link_a.c as C + link_b.c as C++" link2 "$GXX" "$GCC" c11 c "$GXX" c++17 c++
add "link: link_a.c + link_b.c with its own PGSCHED_STATIC implementation" \
    link2 "$GCC" "$GCC" c99 c "$GCC" c99 c -DPGSCHED_STATIC -DPGSCHED_IMPLEMENTATION
add "make install + $GCC -std=c99 with only pkg-config --cflags --libs pgsched" \
    pkgconfig "$GCC" c99 "$tmp/app.c"

# --- run them, $jobs at a time -----------------------------------------------------------------
run_case() { # INDEX
    local d=$tmp/case$1
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        eval "${cmds[$1]}"
    ) >"$d/log" 2>&1
    echo $? >"$d/rc"
}

for i in "${!names[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    run_case "$i" &
done
wait

passed=0
failed=0
for i in "${!names[@]}"; do
    if [ "$(cat "$tmp/case$i/rc" 2>/dev/null)" = 0 ]; then
        passed=$((passed + 1))
        echo "ok - ${names[$i]}"
    else
        failed=$((failed + 1))
        echo "FAIL - ${names[$i]}"
        sed -n '1,40s/^/    /p' "$tmp/case$i/log"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
