#!/usr/bin/env bash
# tests/test_search_path.sh - the whole store conformance suite, and scheduling inside the
# caller's transaction, in a database where a role with no privilege but CREATE on `public`
# (everyone's right up to PostgreSQL 14) planted look-alikes of the functions and operators the
# library's statements use: each records its call in public.calls and then does what the
# original does. None may be called from a library connection, nor from the statement sent on
# the caller's connection. (store/pg.inc's pg_no_statement_calls_a_look_alike_planted_in_public
# covers every statement, and ties on a caller path that lists public first; this runs all.)
#
# Needs PGSCHED_TEST_DSN (a role that may create databases and roles), psql, and
# $PGSCHED_BUILD_DIR (default build) holding test_store and test_engine.
# Prints one line per failed check and "N passed, N failed" at the end; exits 1 on a failure.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PGSCHED_BUILD_DIR:-$here/build}
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() {
    echo "FAIL $1"
    failed=$((failed + 1))
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
}

psql=$(command -v psql 2>/dev/null)
[ -z "$psql" ] && [ -n "${PGSCHED_PG_BINDIR:-}" ] && psql=$PGSCHED_PG_BINDIR/psql
[ -z "$psql" ] && for d in /usr/lib/postgresql/*/bin; do [ -x "$d/psql" ] && psql=$d/psql; done
if [ -z "${PGSCHED_TEST_DSN:-}" ] || [ ! -x "${psql:-}" ]; then
    fail "needs PGSCHED_TEST_DSN and psql"
    finish
fi
for b in test_store test_engine; do
    if [ ! -x "$build/$b" ]; then
        fail "$build/$b is not built"
        finish
    fi
done

db=pgsched_sp_$$
role=pgsched_sp_$$_r
case $PGSCHED_TEST_DSN in
postgres://* | postgresql://*)
    case $PGSCHED_TEST_DSN in *\?*) dsn="$PGSCHED_TEST_DSN&dbname=$db" ;; *) dsn="$PGSCHED_TEST_DSN?dbname=$db" ;; esac ;;
*) dsn="$PGSCHED_TEST_DSN dbname=$db" ;;
esac
q() { PGAPPNAME=pgsched_test_admin "$psql" -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2" 2>&1; }
cleanup() {
    q "$PGSCHED_TEST_DSN" "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    q "$PGSCHED_TEST_DSN" "DROP ROLE IF EXISTS $role" >/dev/null
}
trap cleanup EXIT

if ! out=$(q "$PGSCHED_TEST_DSN" "CREATE DATABASE $db") ||
    ! out=$(q "$PGSCHED_TEST_DSN" "CREATE ROLE $role LOGIN"); then
    fail "setting up: $out"
    finish
fi
# planted by the role, which has CREATE on public and nothing else
plant="GRANT CREATE ON SCHEMA public TO PUBLIC;
SET ROLE $role;
CREATE TABLE public.calls (what text, app text, query text);
GRANT INSERT ON public.calls TO PUBLIC;
CREATE FUNCTION public.rec(w text) RETURNS bool LANGUAGE sql AS
  \$\$ INSERT INTO public.calls VALUES (w, pg_catalog.current_setting('application_name'),
       pg_catalog.current_query()) RETURNING true \$\$;
CREATE FUNCTION public.nextval(text) RETURNS bigint LANGUAGE sql AS
  \$\$ SELECT public.rec('nextval(text)'); SELECT pg_catalog.nextval(\$1::pg_catalog.regclass) \$\$;
CREATE FUNCTION public.concat_ws(text, VARIADIC text[]) RETURNS text LANGUAGE sql AS
  \$\$ SELECT public.rec('concat_ws(text, text[])'); SELECT pg_catalog.array_to_string(\$2, \$1) \$\$;
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE sql AS
  \$\$ SELECT public.rec('unnest(text[])'); SELECT pg_catalog.unnest(\$1) \$\$;
CREATE FUNCTION public.hashtextextended(text, integer) RETURNS bigint LANGUAGE sql AS
  \$\$ SELECT public.rec('hashtextextended(text, int)'); SELECT pg_catalog.hashtextextended(\$1, \$2) \$\$;
CREATE FUNCTION public.mul_bi(bigint, interval) RETURNS interval LANGUAGE sql AS
  \$\$ SELECT public.rec('*(bigint, interval)'); SELECT \$1::pg_catalog.float8 OPERATOR(pg_catalog.*) \$2 \$\$;
CREATE OPERATOR public.* (FUNCTION = public.mul_bi, LEFTARG = bigint, RIGHTARG = interval);
CREATE FUNCTION public.mul_ni(numeric, integer) RETURNS numeric LANGUAGE sql AS
  \$\$ SELECT public.rec('*(numeric, integer)'); SELECT \$1 OPERATOR(pg_catalog.*) \$2 \$\$;
CREATE OPERATOR public.* (FUNCTION = public.mul_ni, LEFTARG = numeric, RIGHTARG = integer);
RESET ROLE;"
if ! out=$(q "$dsn" "$plant"); then
    fail "planting the look-alikes: $out"
    finish
fi
# the bait works: an unqualified call on the default search path takes it
if [ "$(q "$dsn" "CREATE TEMP SEQUENCE bait; SELECT nextval('bait'); SELECT count(*) FROM public.calls" | tail -n 1)" = 1 ]; then
    pass
else
    fail "the planted nextval(text) is not called on the default search path"
fi
q "$dsn" "TRUNCATE public.calls" >/dev/null

# report WHERE: the planted functions called from the connections WHERE selects
report() {
    local n
    n=$(q "$dsn" "SELECT count(*) FROM public.calls WHERE $1")
    if [ "$n" = 0 ]; then
        pass
    else
        fail "$2: $n calls of planted functions:"
        q "$dsn" "SELECT what || ' from ' || app || ': ' || left(query, 120) FROM public.calls
                  WHERE $1 GROUP BY what, app, left(query, 120)" | head -n 20 | sed 's/^/    /'
    fi
}

# 1. the store suite; the tests' own SQL (their connections carry PGAPPNAME) does not count
if PGAPPNAME=pgsched_test_admin PGSCHED_TEST_DSN=$dsn "$build/test_store" >"${TMPDIR:-/tmp}/$db.log" 2>&1; then
    pass
else
    fail "test_store failed in the planted database (tail of its output below)"
    tail -n 20 "${TMPDIR:-/tmp}/$db.log" | sed 's/^/    /'
fi
rm -f "${TMPDIR:-/tmp}/$db.log"
report "app IS DISTINCT FROM 'pgsched_test_admin'" "the store suite"
q "$dsn" "TRUNCATE public.calls" >/dev/null

# 2. scheduling on the caller's connection (the test's own, default search path "$user", public)
if PGSCHED_TEST_DSN=$dsn "$build/test_engine" schedule_in_caller_transaction >/dev/null 2>&1; then
    pass
else
    fail "test_engine schedule_in_caller_transaction failed in the planted database"
fi
report "true" "scheduling in the caller's transaction"
finish
