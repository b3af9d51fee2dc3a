#!/usr/bin/env bash
# tests/test_readme.sh - every C block of README.md compiles, links and (where it needs no
# database) runs, so the README cannot rot.
#
# Each ```c block must be a whole program. It is built with gcc as C99 with
# -Wall -Wextra -Wpedantic -Werror and libpq's flags from pkg-config (or pg_config). A block
# that needs no database (names no conninfo) is also run, and must exit 0; the in-memory
# example must also print what its comments promise (checked below by its job names).
# Prints one line per check and "N passed, N failed" at the end; exits 1 on a failure.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readme=$here/README.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() { echo "ok - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1"; failed=$((failed + 1)); }

if pkg-config --exists libpq 2>/dev/null; then
    read -r -a pqflags <<<"$(pkg-config --cflags --libs libpq)"
else
    pqflags=(-I"$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)" -lpq)
fi

# Split the README into block_N.c files, one per ```c fence, with the line each starts on.
awk -v dir="$tmp" '
    /^```c[[:space:]]*$/ { n++; inside = 1; file = sprintf("%s/block_%d.c", dir, n);
                           print NR > (dir "/block_" n ".line"); next }
    /^```/ && inside     { inside = 0; close(file); next }
    inside               { print > file }
' "$readme"

blocks=$(find "$tmp" -name 'block_*.c' | sort -V)
[ -n "$blocks" ] || fail "README.md has no C block"
for src in $blocks; do
    b=${src%.c}
    what="README.md line $(cat "$b.line") block"
    if ! gcc -std=c99 -pthread -Wall -Wextra -Wpedantic -Werror -I"$here" "$src" -o "$b" \
        "${pqflags[@]}" -lpthread >"$b.log" 2>&1; then
        fail "$what compiles and links"
        sed 's/^/    /' "$b.log" | head -20
        continue
    fi
    pass "$what compiles and links"
    if ! grep -q 'conninfo' "$src"; then
        if ! timeout 60 "$b" >"$b.out" 2>&1; then
            fail "$what runs and exits 0"
            sed 's/^/    /' "$b.out" | head -20
            continue
        fi
        pass "$what runs and exits 0"
        # The in-memory example: its one-time job ran once (and pgsched_get reads it back
        # completed), its every-second job at least twice.
        if grep -q '"every-second"' "$src"; then
            once=$(grep -c 'hello/once' "$b.out")
            every=$(grep -c 'hello/every-second' "$b.out")
            read_back=$(grep -c '^the one-time job is completed$' "$b.out")
            if [ "$once" = 1 ] && [ "$every" -ge 2 ] && [ "$read_back" = 1 ]; then
                pass "$what: the one-time job ran once and reads back completed, the cron job every second ($every runs)"
            else
                fail "$what: one-time runs $once (want 1), cron runs $every (want >= 2), read back completed $read_back (want 1)"
                sed 's/^/    /' "$b.out" | head -20
            fi
        fi
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
