#!/usr/bin/env bash
# tests/deps.sh [test|demo|fuzz|bench|cluster] - make sure what that purpose needs is installed.
#
# Checks by looking at the machine (commands, headers, runtime libraries), not at dpkg, so a
# toolchain installed another way counts. Silent and quick when nothing is missing. Otherwise:
# as root it runs apt-get update + apt-get install (Debian 12 package names) and says what it
# installs; as any other user it prints the exact command and exits 1.
# One exception: for `demo` the PostgreSQL server is optional (the demo falls back to the
# in-memory store). As root with apt-get it is installed like the rest; otherwise deps.sh
# prints a note with the command that would install it and goes on (exit 0 if nothing else
# is missing).
#
#   PGSCHED_DEPS_DRY_RUN=1   only report what is missing (exit 1 if anything required is),
#                            never install
#   SAN_CC=gcc               the sanitizer builds use gcc: check gcc's runtimes, not clang's
set -euo pipefail

purpose=${1:-test}
case $purpose in
test | demo | fuzz | bench | cluster) ;;
-h | --help)
    sed -n '2,15p' "$0"
    exit 0
    ;;
*)
    echo "usage: $0 [test|demo|fuzz|bench|cluster]" >&2
    exit 2
    ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=$(uname -m)

pkgs=()
why=()
need() { # need PACKAGE REASON
    local p
    for p in ${pkgs[@]+"${pkgs[@]}"}; do [ "$p" = "$1" ] && return 0; done
    pkgs+=("$1")
    why+=("$1 ($2)")
}
have() { command -v "$1" >/dev/null 2>&1; }

check_make() { have make || need make "make"; }
check_gcc() { have gcc || need gcc "gcc"; }
check_gxx() { have g++ || need g++ "g++, for the C++ compile checks"; }
check_pkgconfig() { have pkg-config || need pkgconf "pkg-config, for the installed pgsched.pc check"; }
check_musl() { have musl-gcc || need musl-tools "musl-gcc, for the musl build check"; }
# script(1) gives tests/test_pgschedctl.sh a pseudo-terminal for `pgschedctl top`.
check_script() { have script || need bsdutils "script, for tests/test_pgschedctl.sh"; }

# pg_config + libpq-fe.h + libpq.so, all from libpq-dev on Debian.
check_libpq() {
    local inc lib
    if ! have pg_config; then
        need libpq-dev "pg_config, libpq-fe.h"
        return
    fi
    inc=$(pg_config --includedir 2>/dev/null || true)
    lib=$(pg_config --libdir 2>/dev/null || true)
    if [ ! -f "$inc/libpq-fe.h" ] || [ ! -e "$lib/libpq.so" ]; then
        need libpq-dev "libpq-fe.h, libpq.so"
    fi
}

# The server: initdb/pg_ctl/postgres, psql and pg_isready beside them, and (as root) the
# postgres user the cluster runs as. Same search as tests/pgcluster.sh.
check_server() {
    local d found=
    if have pg_config; then
        d=$(pg_config --bindir 2>/dev/null || true)
        [ -n "$d" ] && [ -x "$d/initdb" ] && found=$d
    fi
    if [ -z "$found" ]; then
        for d in /usr/lib/postgresql/*/bin; do
            [ -x "$d/initdb" ] && found=$d
        done
    fi
    if [ -z "$found" ] || [ ! -x "$found/pg_ctl" ] || [ ! -x "$found/psql" ] ||
        [ ! -x "$found/pg_isready" ]; then
        need postgresql "the PostgreSQL server: initdb, pg_ctl, psql"
    elif [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        need postgresql "the postgres user"
    fi
}

check_cmocka() {
    local ma found=
    ma=$(gcc -print-multiarch 2>/dev/null || true)
    for f in "/usr/lib/$ma/libcmocka.so" /usr/lib/libcmocka.so /usr/lib64/libcmocka.so \
        /usr/local/lib/libcmocka.so; do
        [ -e "$f" ] && found=1
    done
    if [ -z "$found" ] || { [ ! -f /usr/include/cmocka.h ] && [ ! -f /usr/local/include/cmocka.h ]; }; then
        need libcmocka-dev "cmocka.h, libcmocka.so"
    fi
}

check_tzdata() {
    local zi=${TZDIR:-/usr/share/zoneinfo}
    if [ ! -f "$zi/UTC" ] || [ ! -f "$zi/America/New_York" ]; then
        need tzdata "the zone database in $zi"
    fi
}

# clang with its sanitizer and libFuzzer runtimes (libclang-rt-N-dev on Debian 12).
check_clang() { # check_clang RUNTIME...
    local ver dir rt
    if ! have clang || ! have clang++; then
        need clang "clang, clang++"
        need libclang-rt-14-dev "clang's sanitizer/fuzzer runtimes"
        return
    fi
    ver=$(clang -dumpversion 2>/dev/null || echo 14)
    ver=${ver%%.*}
    dir=$(clang -print-runtime-dir 2>/dev/null || true)
    for rt in "$@"; do
        [ -f "$dir/libclang_rt.$rt-$arch.a" ] || need "libclang-rt-$ver-dev" "libclang_rt.$rt"
    done
}

# gcc's sanitizer runtimes: libasan8, libubsan1, libtsan2 on Debian 12 (gcc-12 pulls them in
# through libgcc-12-dev, so this only fires on an odd install).
check_gcc_san() {
    have gcc || return 0 # check_gcc asks for gcc, which brings them
    local lib pkg
    for lib in asan:libasan8 ubsan:libubsan1 tsan:libtsan2; do
        pkg=${lib#*:}
        lib=${lib%%:*}
        [ -e "$(gcc -print-file-name="lib$lib.so")" ] || need "$pkg" "gcc's lib$lib"
    done
}

# python3 only when the test run itself calls it: a tests/test_*.sh script that mentions
# python. (The generators in tests/tools/ are run by hand; their output is committed.)
check_python() {
    local f
    if have python3; then return 0; fi
    for f in "$repo"/tests/test_*.sh; do
        [ -f "$f" ] || continue
        if grep -q 'python' "$f"; then
            need python3 "${f#"$repo"/}"
            return
        fi
    done
}

# make cluster-test: valgrind (memcheck of the demo and a node) and libfaketime (the nodes an
# hour ahead and behind; the multi-threaded variant, libfaketimeMT).
check_valgrind() { have valgrind || need valgrind "valgrind, for the memory checks"; }
check_faketime() {
    local f found=
    for f in /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1; do
        [ -f "$f" ] && found=1
    done
    [ -n "$found" ] || need libfaketime "libfaketimeMT.so.1, for the clock skew scenario"
}

check_make
case $purpose in
test)
    check_gcc
    check_gxx
    check_pkgconfig
    check_musl
    check_script
    check_libpq
    check_server
    check_cmocka
    check_tzdata
    if [ "${SAN_CC:-clang}" = gcc ]; then
        check_gcc_san
        have clang || need clang "clang, for the compile checks"
    else
        check_clang asan ubsan_standalone tsan
    fi
    check_python
    check_valgrind
    check_faketime
    ;;
cluster)
    check_gcc
    check_libpq
    check_server
    check_tzdata
    check_valgrind
    check_faketime
    ;;
demo)
    check_gcc
    check_libpq
    check_tzdata
    check_server # optional, see below
    ;;
fuzz)
    check_libpq
    check_tzdata
    check_clang fuzzer asan ubsan_standalone
    ;;
bench)
    check_gcc
    check_libpq
    check_server
    check_tzdata
    ;;
esac

# For the demo the server is optional where deps.sh cannot install it (not root, or no
# apt-get): it moves from pkgs to optional, and only a note is printed for it.
optional=()
optional_why=()
if [ "$purpose" = demo ] && { [ "$(id -u)" != 0 ] || ! have apt-get; }; then
    keep=()
    keep_why=()
    for i in ${pkgs[@]+"${!pkgs[@]}"}; do
        if [ "${pkgs[$i]}" = postgresql ]; then
            optional+=("${pkgs[$i]}")
            optional_why+=("${why[$i]}")
        else
            keep+=("${pkgs[$i]}")
            keep_why+=("${why[$i]}")
        fi
    done
    pkgs=(${keep[@]+"${keep[@]}"})
    why=(${keep_why[@]+"${keep_why[@]}"})
fi
all=(${pkgs[@]+"${pkgs[@]}"} ${optional[@]+"${optional[@]}"})

# The install command as root, and the same through sudo: sudo must run all of it, not only
# the apt-get update before the &&.
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${all[*]}"
how_to_install() {
    if have apt-get; then
        echo "  sudo sh -c '$cmd'" >&2
        echo "or, in a root shell:" >&2
        echo "  $cmd" >&2
    else
        echo "  by hand (there is no apt-get here; the Debian 12 packages: ${all[*]})" >&2
    fi
}

if [ ${#pkgs[@]} -eq 0 ]; then
    [ ${#optional[@]} -eq 0 ] && exit 0
    echo "deps.sh ($purpose): note: no PostgreSQL server here (package ${optional[*]}), and" \
        "deps.sh cannot install it ($(have apt-get && echo "not root" || echo "no apt-get"))," \
        "so the demo will use the in-memory store. For the PostgreSQL demo, install it:" >&2
    how_to_install
    exit 0
fi

echo "deps.sh ($purpose): missing:" >&2
printf '  %s\n' "${why[@]}" >&2
[ ${#optional[@]} -eq 0 ] ||
    printf '  %s, optional: without it the demo uses the in-memory store\n' "${optional_why[@]}" >&2

if [ -n "${PGSCHED_DEPS_DRY_RUN:-}" ]; then
    echo "deps.sh: would run: $cmd" >&2
    exit 1
fi
if ! have apt-get; then
    echo "deps.sh: no apt-get here; install the packages above by hand." >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: install them as root, for example with sudo:" >&2
    how_to_install
    exit 1
fi

echo "deps.sh: installing: ${pkgs[*]}" >&2
apt-get -q update >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2

# Check again: a package that installed but did not provide what was missing is an error
# worth seeing now rather than as a confusing build failure later.
if ! PGSCHED_DEPS_DRY_RUN=1 "$0" "$purpose"; then
    echo "deps.sh: still missing something after installing; see above." >&2
    exit 1
fi
echo "deps.sh: installed ${pkgs[*]}" >&2
