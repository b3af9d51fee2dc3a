/* ---- [pgsched: stores] implementation: the PostgreSQL store --------------------------------- */

/* Works without libpq: a password must not reach a log whichever store is built in. */
PGSCHED_DEF size_t pgsched_conninfo_redact(const char *conninfo, char *buf, size_t size)
{
    const char *s = conninfo ? conninfo : "";
    size_t o = 0;
#define PGSCHED__PUT(c)                                                                           \
    do {                                                                                          \
        char c_ = (c); /* evaluated once, buffer full or not */                                   \
        if (o + 1 < size) buf[o] = c_;                                                            \
        o++;                                                                                      \
    } while (0)
#define PGSCHED__PUTS(str)                                                                        \
    do {                                                                                          \
        const char *q_ = (str);                                                                   \
        while (*q_) PGSCHED__PUT(*q_++);                                                          \
    } while (0)
    if (strncmp(s, "postgres://", 11) == 0 || strncmp(s, "postgresql://", 13) == 0) {
        /* URI: scheme://[user[:password]@]host...[?password=...&...] */
        const char *p = strstr(s, "://") + 3, *at = NULL, *q;
        for (q = p; *q && *q != '/' && *q != '?'; q++)
            if (*q == '@') at = q;
        for (q = s; q < p; q++) PGSCHED__PUT(*q);
        if (at) {
            const char *colon = NULL;
            for (q = p; q < at; q++)
                if (*q == ':') { colon = q; break; }
            for (q = p; q < (colon ? colon : at); q++) PGSCHED__PUT(*q);
            if (colon) PGSCHED__PUTS(":********");
            p = at;
        }
        while (*p) {
            if ((p[0] == '?' || p[0] == '&') && strncmp(p + 1, "password=", 9) == 0) {
                PGSCHED__PUT(p[0]);
                PGSCHED__PUTS("password=********");
                p += 10;
                while (*p && *p != '&') p++;
                continue;
            }
            PGSCHED__PUT(*p++);
        }
    } else {
        /* key = value pairs; values may be single-quoted with backslash escapes */
        while (*s) {
            const char *k = s, *ke;
            int redact;
            while (*s == ' ' || *s == '\t' || *s == '\n') PGSCHED__PUT(*s++);
            k = s;
            while (*s && *s != '=' && *s != ' ' && *s != '\t') s++;
            ke = s;
            redact = (size_t)(ke - k) == 8 && strncmp(k, "password", 8) == 0;
            for (; k < ke; k++) PGSCHED__PUT(*k);
            while (*s == ' ' || *s == '\t') PGSCHED__PUT(*s++);
            if (*s != '=') continue;
            PGSCHED__PUT(*s++);
            while (*s == ' ' || *s == '\t') PGSCHED__PUT(*s++);
            if (redact) PGSCHED__PUTS("********");
            if (*s == '\'') {
                if (!redact) PGSCHED__PUT(*s);
                s++;
                while (*s && *s != '\'') {
                    if (*s == '\\' && s[1]) {
                        if (!redact) PGSCHED__PUT(*s);
                        s++;
                    }
                    if (!redact) PGSCHED__PUT(*s);
                    s++;
                }
                if (*s == '\'') {
                    if (!redact) PGSCHED__PUT(*s);
                    s++;
                }
            } else {
                while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
                    if (!redact) PGSCHED__PUT(*s);
                    s++;
                }
            }
        }
    }
    if (size) buf[o < size ? o : size - 1] = '\0';
#undef PGSCHED__PUT
#undef PGSCHED__PUTS
    return o;
}

/* The longest suffix of an object name ("schema_version"); prefix + suffix <= 63 bytes.
   (PostgreSQL shortens the automatic constraint names such as "..._schema_version_pkey"
   itself, without error.) */
#define PGSCHED__PG_SUFFIX_MAX 14

#ifdef PGSCHED_NO_LIBPQ

PGSCHED_DEF pgsched_result pgsched_pg_store_create(const pgsched_pg_config *cfg,
                                                   pgsched_store **out, pgsched_error *err)
{
    PGSCHED__UNUSED(cfg);
    if (out) *out = NULL;
    return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                         "this build has no PostgreSQL store (PGSCHED_NO_LIBPQ)");
}

#else

#include <libpq-fe.h>
#include <poll.h>
#include <fcntl.h>

/* The schema version this library writes and reads. Migration n takes version n-1 to n. */
#define PGSCHED__PG_SCHEMA_VERSION 1

/* Statements. Each is generated once per store from a template in which {J} {R} {N} {Q} stand
   for the quoted, schema-qualified jobs, runs, nodes tables and sequence, and {NOTIFY...}
   parts are kept only when notifications are on. Every value is a $n parameter. */
enum {
    PGSCHED__Q_NOW,
    PGSCHED__Q_SCHEDULE,
    PGSCHED__Q_CLAIM,
    PGSCHED__Q_HEARTBEAT,
    PGSCHED__Q_FINISH,
    PGSCHED__Q_TAKE_BACK,
    PGSCHED__Q_CANCEL,
    PGSCHED__Q_TRIGGER,
    PGSCHED__Q_REMOVE,
    PGSCHED__Q_GET,
    PGSCHED__Q_LIST,
    PGSCHED__Q_HISTORY,
    PGSCHED__Q_NEXT_DUE,
    PGSCHED__Q_NODE_REGISTER,
    PGSCHED__Q_NODE_UNREGISTER,
    PGSCHED__Q_CLEAN_FINISHED,
    PGSCHED__Q_CLEAN_HISTORY,
    PGSCHED__Q_CLEAN_NODES,
    PGSCHED__Q_CLEAN_ORPHANS,
    PGSCHED__Q_COUNT
};

/* Times go into SQL as RFC 3339 text (exact to the microsecond; arithmetic on intervals would
   pass through a double and drift after year 2255) and come out as binary timestamptz.
   Notification payloads carry them as int8 microseconds since the epoch. */
#define PGSCHED__PG_US(x) "((extract(epoch from " x ") * 1000000)::int8)"

/* The columns of a job row, in the order pgsched__pg_job() reads them. */
#define PGSCHED__JOB_COLS(a)                                                                      \
    a "name, " a "key, " a "status, " a "kind, " a "cron, " a "every_us, " a "params::text, " a  \
      "max_retries, " a "attempt, " a "next_run, " a "owner, " a "lease, " a "heartbeat_at, " a   \
      "started_at, " a "finished_at, " a "cancel_requested, " a "remove_requested, (" a           \
      "ch_kind IS NOT NULL), " a "last_error, " a "runs, " a "failures, " a "version, " a         \
      "created_at, " a "updated_at"
#define PGSCHED__JOB_NCOLS 24

/* A notification payload: tab-separated, small by construction (names and keys are bounded);
   a row written by hand through SQL with a huge key still cannot make pg_notify fail the
   transaction, because anything near the 8000-byte limit is replaced by a resync marker. */
#define PGSCHED__NOTIFY(chan, expr)                                                               \
    "pg_notify(" chan ", CASE WHEN octet_length(p_.p) < 7000 THEN p_.p ELSE 'R' END) FROM "      \
    "(SELECT " expr " AS p) p_"

static const char *const pgsched__pg_templates[PGSCHED__Q_COUNT] = {
    /* NOW */
    "SELECT now()",

    /* SCHEDULE: $1 name $2 key $3 kind $4 cron $5 every_us $6 params $7 max_retries
       $8 next_run (NULL = now) $9 apply_after_run $10 node $11 channel */
    "WITH prev AS (SELECT status FROM {J} WHERE name = $1::text AND key = $2::text), "
    "nr AS (SELECT coalesce($8::timestamptz, now()) AS t), "
    "up AS (INSERT INTO {J} AS j (name, key, status, kind, cron, every_us, params, max_retries, "
    "attempt, next_run, version, created_at, updated_at) "
    "SELECT $1::text, $2::text, 'pending', $3::text, $4::text, $5::int8, $6::json, $7::int4, 0, "
    "nr.t, nextval('{Q}'), now(), now() FROM nr "
    "ON CONFLICT (name, key) DO UPDATE SET "
    "kind = CASE WHEN j.status = 'running' THEN j.kind ELSE EXCLUDED.kind END, "
    "cron = CASE WHEN j.status = 'running' THEN j.cron ELSE EXCLUDED.cron END, "
    "every_us = CASE WHEN j.status = 'running' THEN j.every_us ELSE EXCLUDED.every_us END, "
    "params = CASE WHEN j.status = 'running' THEN j.params ELSE EXCLUDED.params END, "
    "max_retries = CASE WHEN j.status = 'running' THEN j.max_retries "
    "ELSE EXCLUDED.max_retries END, "
    "attempt = CASE WHEN j.status = 'running' THEN j.attempt ELSE 0 END, "
    "next_run = CASE WHEN j.status = 'running' THEN j.next_run "
    "WHEN j.status = 'pending' THEN LEAST(j.next_run, EXCLUDED.next_run) "
    "ELSE EXCLUDED.next_run END, "
    "cancel_requested = CASE WHEN j.status = 'running' THEN j.cancel_requested ELSE false END, "
    "remove_requested = CASE WHEN j.status = 'running' THEN j.remove_requested ELSE false END, "
    "ch_kind = CASE WHEN j.status = 'running' THEN EXCLUDED.kind END, "
    "ch_cron = CASE WHEN j.status = 'running' THEN EXCLUDED.cron END, "
    "ch_every_us = CASE WHEN j.status = 'running' THEN EXCLUDED.every_us END, "
    "ch_params = CASE WHEN j.status = 'running' THEN EXCLUDED.params END, "
    "ch_max_retries = CASE WHEN j.status = 'running' THEN EXCLUDED.max_retries END, "
    "ch_next_run = CASE WHEN j.status = 'running' THEN EXCLUDED.next_run END, "
    "status = CASE WHEN j.status = 'running' THEN j.status ELSE 'pending' END, "
    /* nextval here, after the row lock, not in the proposed row: a version taken before
       waiting for a concurrent writer could be older than the one that writer stored */
    "version = nextval('{Q}'), updated_at = now() "
    "WHERE j.status <> 'running' OR $9::bool "
    "RETURNING j.status, j.next_run, j.version, (j.xmax = 0) AS created) "
    "SELECT up.status, up.next_run, up.version, up.created, prev.status"
    "{NOTIFY, (SELECT " PGSCHED__NOTIFY("$11::text",
                                        "concat_ws(E'\\t', 'C', $1::text, $2::text, "
                                        "coalesce(prev.status, 'none'), up.status, "
                                        "up.version::text, coalesce($10::text, ''), "
                                        "coalesce(" PGSCHED__PG_US("up.next_run") "::text, ''))") ")}"
    " FROM up LEFT JOIN prev ON true",

    /* CLAIM: $1 node $2 names[] $3 max $4 channel. One row always comes back (the info
       row); claimed rows fill the job columns. Each type is read through its own
       (name, next_run) index range, so neither a million future rows nor a backlog of due
       rows of any type makes a claim slower: it touches at most max rows per type. */
    "WITH c AS (SELECT s.name, s.key, nextval('{Q}') AS v FROM (SELECT l.name, l.key "
    "FROM (SELECT DISTINCT unnest($2::text[]) AS name) n CROSS JOIN LATERAL "
    "(SELECT x.name, x.key, x.next_run FROM {J} x WHERE x.name = n.name "
    "AND x.status = 'pending' AND x.next_run <= now() ORDER BY x.next_run "
    "LIMIT $3::int4 FOR UPDATE SKIP LOCKED) l ORDER BY l.next_run LIMIT $3::int4) s), "
    "u AS (UPDATE {J} j SET status = 'running', owner = $1::text, lease = c.v, version = c.v, "
    "attempt = j.attempt + 1, cancel_requested = false, started_at = now(), "
    "heartbeat_at = now(), updated_at = now() FROM c WHERE j.name = c.name AND j.key = c.key "
    "RETURNING j.*), "
    /* next_due: the earliest pending row this claim did not take (the statement's snapshot
       still shows the claimed rows as pending, hence the anti-join with c) */
    "info AS (SELECT now() AS now, (SELECT min(t.next_run) FROM (SELECT DISTINCT "
    "unnest($2::text[]) AS name) n CROSS JOIN LATERAL (SELECT x.next_run FROM {J} x "
    "WHERE x.name = n.name AND x.status = 'pending' AND NOT EXISTS (SELECT 1 FROM c "
    "WHERE c.name = x.name AND c.key = x.key) ORDER BY x.next_run LIMIT 1) t) AS next_due) "
    "SELECT info.now, info.next_due, " PGSCHED__JOB_COLS("u.")
    "{NOTIFY, CASE WHEN u.name IS NULL THEN NULL ELSE (SELECT " PGSCHED__NOTIFY(
        "$4::text", "concat_ws(E'\\t', 'C', u.name, u.key, 'pending', 'running', "
                    "u.version::text, $1::text, " PGSCHED__PG_US("u.next_run") "::text)") ") END}"
    " FROM info LEFT JOIN u ON true ORDER BY u.next_run",

    /* HEARTBEAT: $1 node $2 names[] $3 keys[] $4 tokens[] $5 renew. Returns the held leases.
       The owner condition lets it read only this node's running rows (the owner index). */
    "WITH l AS (SELECT * FROM unnest($2::text[], $3::text[], $4::int8[]) AS l(name, key, token)), "
    "h AS (UPDATE {J} j SET heartbeat_at = now() FROM l WHERE $5::bool AND j.name = l.name "
    "AND j.key = l.key AND j.lease = l.token AND j.status = 'running' AND j.owner = $1::text "
    "RETURNING j.name, j.key, j.cancel_requested), "
    "r AS (SELECT j.name, j.key, j.cancel_requested FROM {J} j JOIN l ON j.name = l.name "
    "AND j.key = l.key AND j.lease = l.token WHERE NOT $5::bool AND j.status = 'running' "
    "AND j.owner = $1::text), "
    "n AS (UPDATE {N} SET last_seen = now() WHERE id = $1::text RETURNING 1) "
    "SELECT now(), x.name, x.key, x.cancel_requested FROM (SELECT 1) one LEFT JOIN "
    "(SELECT * FROM h UNION ALL SELECT * FROM r) x ON true",

    /* FINISH: $1 names[] $2 keys[] $3 tokens[] $4 outcomes[] $5 statuses[] $6 next_runs[]
       $7 delay_us[] $8 rules[] $9 errors[] $10 nodes[] $11 channel.
       `cur` locks the rows whose lease still holds; everything else derives from it, so a
       stale token changes nothing, history included. */
    "WITH o AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], "
    "$5::text[], $6::timestamptz[], $7::int8[], $8::int4[], $9::text[], $10::text[]) WITH "
    "ORDINALITY AS o(name, key, token, outcome, status, next_at, delay_us, rule, error, node, idx)), "
    "cur AS (SELECT j.name, j.key, j.attempt, j.started_at, j.remove_requested, o.idx "
    "FROM {J} j JOIN o ON j.name = o.name AND j.key = o.key AND j.lease = o.token "
    "WHERE j.status = 'running' FOR UPDATE OF j), "
    "hist AS (INSERT INTO {R} (id, name, key, node, attempt, started_at, finished_at, outcome, "
    "error) SELECT nextval('{Q}'), cur.name, cur.key, o.node, cur.attempt, cur.started_at, "
    "now(), o.outcome, o.error FROM cur JOIN o ON o.idx = cur.idx), "
    "del AS (DELETE FROM {J} j USING cur WHERE j.name = cur.name AND j.key = cur.key "
    "AND cur.remove_requested RETURNING j.name, j.key, nextval('{Q}') AS version), "
    "upd AS (UPDATE {J} j SET "
    "status = CASE WHEN j.ch_kind IS NOT NULL THEN 'pending' ELSE o.status END, "
    "next_run = CASE WHEN j.ch_kind IS NOT NULL AND o.status = 'pending' THEN LEAST(j.ch_next_run, "
    "coalesce(o.next_at, now() + o.delay_us * interval '1 microsecond')) "
    "WHEN j.ch_kind IS NOT NULL THEN j.ch_next_run "
    "WHEN o.status = 'pending' THEN coalesce(o.next_at, now() + o.delay_us * interval "
    "'1 microsecond') ELSE NULL END, "
    "attempt = CASE WHEN j.ch_kind IS NOT NULL OR o.rule = 0 THEN 0 "
    "WHEN o.rule = 2 THEN greatest(j.attempt - 1, 0) ELSE j.attempt END, "
    "kind = coalesce(j.ch_kind, j.kind), "
    "cron = CASE WHEN j.ch_kind IS NOT NULL THEN j.ch_cron ELSE j.cron END, "
    "every_us = CASE WHEN j.ch_kind IS NOT NULL THEN j.ch_every_us ELSE j.every_us END, "
    "params = CASE WHEN j.ch_kind IS NOT NULL THEN j.ch_params ELSE j.params END, "
    "max_retries = CASE WHEN j.ch_kind IS NOT NULL THEN j.ch_max_retries ELSE j.max_retries END, "
    "ch_kind = NULL, ch_cron = NULL, ch_every_us = NULL, ch_params = NULL, "
    "ch_max_retries = NULL, ch_next_run = NULL, "
    "runs = j.runs + CASE WHEN o.outcome = 'released' THEN 0 ELSE 1 END, "
    "failures = j.failures + CASE WHEN o.outcome IN ('failure', 'stalled') THEN 1 ELSE 0 END, "
    "last_error = CASE WHEN o.outcome IN ('failure', 'stalled') AND o.error IS NOT NULL "
    "THEN o.error ELSE j.last_error END, "
    "finished_at = now(), owner = NULL, lease = NULL, heartbeat_at = NULL, "
    "cancel_requested = false, version = nextval('{Q}'), updated_at = now() "
    "FROM cur JOIN o ON o.idx = cur.idx WHERE j.name = cur.name AND j.key = cur.key "
    "AND NOT cur.remove_requested RETURNING o.idx, j.status, j.next_run, j.version) "
    "SELECT o.idx, coalesce(upd.status, CASE WHEN del.name IS NOT NULL THEN 'none' END), "
    "upd.next_run, coalesce(upd.version, del.version)"
    "{NOTIFY, CASE WHEN upd.status IS NULL AND del.name IS NULL THEN NULL ELSE (SELECT "
    PGSCHED__NOTIFY("$11::text", "concat_ws(E'\\t', 'C', o.name, o.key, 'running', "
                                 "coalesce(upd.status, 'none'), "
                                 "coalesce(upd.version, del.version)::text, o.node, "
                                 "coalesce(" PGSCHED__PG_US("upd.next_run") "::text, ''))") ") END}"
    " FROM o LEFT JOIN upd ON upd.idx = o.idx "
    "LEFT JOIN del ON del.name = o.name AND del.key = o.key ORDER BY o.idx",

    /* TAKE_BACK: $1 node $2 stall_us $3 max $4 channel */
    "WITH c AS (SELECT s.name, s.key, nextval('{Q}') AS v FROM (SELECT name, key FROM {J} "
    "WHERE status = 'running' AND heartbeat_at < now() - $2::int8 * interval '1 microsecond' "
    "ORDER BY heartbeat_at LIMIT $3::int4 FOR UPDATE SKIP LOCKED) s), "
    "u AS (UPDATE {J} j SET owner = $1::text, lease = c.v, version = c.v, heartbeat_at = now(), "
    "updated_at = now() FROM c WHERE j.name = c.name AND j.key = c.key RETURNING j.*) "
    "SELECT " PGSCHED__JOB_COLS("u.")
    "{NOTIFY, (SELECT " PGSCHED__NOTIFY("$4::text",
                                        "concat_ws(E'\\t', 'C', u.name, u.key, 'running', "
                                        "'running', u.version::text, $1::text, '')") ")}"
    " FROM u",

    /* CANCEL: $1 name $2 key $3 node $4 channel */
    "WITH cur AS (SELECT status, kind, version FROM {J} WHERE name = $1::text AND key = $2::text "
    "FOR UPDATE), "
    "u AS (UPDATE {J} j SET "
    "cancel_requested = CASE WHEN j.status = 'running' THEN true ELSE j.cancel_requested END, "
    "status = CASE WHEN j.status = 'running' THEN j.status ELSE 'cancelled' END, "
    "next_run = CASE WHEN j.status = 'running' THEN j.next_run END, "
    "version = nextval('{Q}'), updated_at = now() WHERE j.name = $1::text AND j.key = $2::text "
    "AND (j.status = 'running' OR (j.status = 'pending' AND j.kind = 'once')) "
    "RETURNING j.status, j.version, j.owner) "
    "SELECT cur.status, u.status, coalesce(u.version, cur.version), u.owner"
    "{NOTIFY, CASE WHEN u.status IS NULL THEN NULL ELSE (SELECT " PGSCHED__NOTIFY(
        "$4::text", "CASE WHEN u.status = 'running' THEN concat_ws(E'\\t', 'X', $1::text, "
                    "$2::text, u.version::text, coalesce($3::text, ''), u.owner) "
                    "ELSE concat_ws(E'\\t', 'C', $1::text, $2::text, 'pending', 'cancelled', "
                    "u.version::text, coalesce($3::text, ''), '') END") ") END}"
    " FROM cur LEFT JOIN u ON true",

    /* TRIGGER: $1 name $2 key $3 node $4 channel */
    "WITH cur AS (SELECT status FROM {J} WHERE name = $1::text AND key = $2::text FOR UPDATE), "
    "u AS (UPDATE {J} j SET next_run = now(), version = nextval('{Q}'), updated_at = now() "
    "WHERE j.name = $1::text AND j.key = $2::text AND j.status = 'pending' "
    "RETURNING j.next_run, j.version) "
    "SELECT cur.status, u.next_run, u.version"
    "{NOTIFY, CASE WHEN u.version IS NULL THEN NULL ELSE (SELECT " PGSCHED__NOTIFY(
        "$4::text", "concat_ws(E'\\t', 'C', $1::text, $2::text, 'pending', 'pending', "
                    "u.version::text, coalesce($3::text, ''), " PGSCHED__PG_US("u.next_run")
                    "::text)") ") END}"
    " FROM cur LEFT JOIN u ON true",

    /* REMOVE: $1 name $2 key $3 node $4 channel */
    "WITH cur AS (SELECT status FROM {J} WHERE name = $1::text AND key = $2::text FOR UPDATE), "
    "u AS (UPDATE {J} j SET cancel_requested = true, remove_requested = true, "
    "version = nextval('{Q}'), updated_at = now() WHERE j.name = $1::text AND j.key = $2::text "
    "AND j.status = 'running' RETURNING j.owner, j.version), "
    "d AS (DELETE FROM {J} j WHERE j.name = $1::text AND j.key = $2::text "
    "AND j.status <> 'running' RETURNING nextval('{Q}') AS version) "
    "SELECT cur.status, u.owner, coalesce(u.version, d.version), d.version IS NOT NULL"
    "{NOTIFY, CASE WHEN u.version IS NULL AND d.version IS NULL THEN NULL ELSE (SELECT "
    PGSCHED__NOTIFY("$4::text", "CASE WHEN u.version IS NOT NULL THEN concat_ws(E'\\t', 'X', "
                                "$1::text, $2::text, u.version::text, coalesce($3::text, ''), "
                                "u.owner) ELSE concat_ws(E'\\t', 'C', $1::text, $2::text, "
                                "cur.status, 'none', d.version::text, coalesce($3::text, ''), "
                                "'') END") ") END}"
    " FROM cur LEFT JOIN u ON true LEFT JOIN d ON true",

    /* GET: $1 name $2 key */
    "SELECT " PGSCHED__JOB_COLS("") " FROM {J} WHERE name = $1::text AND key = $2::text",

    /* LIST: $1 name|NULL $2 status|NULL $3 after_name|NULL $4 after_key $5 limit */
    "SELECT " PGSCHED__JOB_COLS("") " FROM {J} WHERE ($1::text IS NULL OR name = $1::text) "
    "AND ($2::text IS NULL OR status = $2::text) "
    "AND ($3::text IS NULL OR (name, key) > ($3::text COLLATE \"C\", $4::text COLLATE \"C\")) "
    "ORDER BY name, key LIMIT $5::int8",

    /* HISTORY: $1 name|NULL $2 key|NULL $3 limit */
    "SELECT id, name, key, node, attempt, started_at, finished_at, outcome, error FROM {R} "
    "WHERE ($1::text IS NULL OR (name = $1::text AND ($2::text IS NULL OR key = $2::text))) "
    "ORDER BY id DESC LIMIT $3::int8",

    /* NEXT_DUE: $1 names[] */
    "SELECT now(), (SELECT min(t.next_run) FROM unnest($1::text[]) AS n(name) CROSS JOIN LATERAL "
    "(SELECT x.next_run FROM {J} x WHERE x.name = n.name AND x.status = 'pending' "
    "ORDER BY x.next_run LIMIT 1) t)",

    /* NODE_REGISTER: $1 id $2 host $3 pid $4 names[] */
    "INSERT INTO {N} (id, host, pid, names, started_at, last_seen) "
    "VALUES ($1::text, $2::text, $3::int8, $4::text[], now(), now()) ON CONFLICT (id) DO UPDATE "
    "SET host = EXCLUDED.host, pid = EXCLUDED.pid, names = EXCLUDED.names, last_seen = now()",

    /* NODE_UNREGISTER: $1 id */
    "DELETE FROM {N} WHERE id = $1::text",

    /* CLEAN_FINISHED: $1 retention_us $2 limit */
    "DELETE FROM {J} j USING (SELECT name, key FROM {J} WHERE kind = 'once' "
    "AND status IN ('completed', 'failed', 'cancelled') "
    "AND updated_at < now() - $1::int8 * interval '1 microsecond' LIMIT $2::int8 "
    "FOR UPDATE SKIP LOCKED) d WHERE j.name = d.name AND j.key = d.key",

    /* CLEAN_HISTORY: $1 retention_us $2 limit */
    "DELETE FROM {R} WHERE id IN (SELECT id FROM {R} "
    "WHERE finished_at < now() - $1::int8 * interval '1 microsecond' LIMIT $2::int8)",

    /* CLEAN_NODES: $1 retention_us $2 node */
    "DELETE FROM {N} WHERE last_seen < now() - $1::int8 * interval '1 microsecond' "
    "AND id <> $2::text",

    /* CLEAN_ORPHANS: $1 orphan_us $2 stall_us $3 limit. The distinct names come from a skip
       scan of the primary key, so the cost follows the number of types, not of rows. */
    "WITH RECURSIVE names AS ((SELECT name FROM {J} ORDER BY name LIMIT 1) UNION ALL "
    "SELECT (SELECT name FROM {J} x WHERE x.name > names.name ORDER BY x.name LIMIT 1) "
    "FROM names WHERE names.name IS NOT NULL), "
    "dead AS (SELECT names.name FROM names WHERE names.name IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM {N} n WHERE n.last_seen >= now() - $2::int8 * interval '1 microsecond' "
    "AND names.name = ANY(n.names))), "
    "v AS (SELECT j.name, j.key FROM {J} j JOIN dead ON dead.name = j.name "
    "WHERE j.status <> 'running' AND j.updated_at < now() - $1::int8 * interval '1 microsecond' "
    "LIMIT $3::int8 FOR UPDATE OF j SKIP LOCKED) "
    "DELETE FROM {J} j USING v WHERE j.name = v.name AND j.key = v.key",
};

static const char *const pgsched__pg_stmt_names[PGSCHED__Q_COUNT] = {
    "pgsched_now", "pgsched_schedule", "pgsched_claim", "pgsched_heartbeat",
    "pgsched_finish", "pgsched_take_back", "pgsched_cancel", "pgsched_trigger",
    "pgsched_remove", "pgsched_get", "pgsched_list", "pgsched_history",
    "pgsched_next_due", "pgsched_node_register", "pgsched_node_unregister",
    "pgsched_clean_finished", "pgsched_clean_history", "pgsched_clean_nodes",
    "pgsched_clean_orphans",
};

/* Migration 1. {S} is the quoted schema, {P} the prefix inside quoted names. */
static const char *const pgsched__pg_migration_1 =
    "CREATE SEQUENCE {Q};"
    "CREATE TABLE {J} ("
    " name text COLLATE \"C\" NOT NULL,"
    " key text COLLATE \"C\" NOT NULL,"
    " status text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed',"
    " 'cancelled')),"
    " kind text NOT NULL CHECK (kind IN ('once', 'cron', 'interval', 'custom')),"
    " cron text,"
    " every_us bigint,"
    " params json NOT NULL,"
    " max_retries integer NOT NULL,"
    " attempt integer NOT NULL DEFAULT 0,"
    " next_run timestamptz,"
    " owner text,"
    " lease bigint,"
    " heartbeat_at timestamptz,"
    " started_at timestamptz,"
    " finished_at timestamptz,"
    " cancel_requested boolean NOT NULL DEFAULT false,"
    " remove_requested boolean NOT NULL DEFAULT false,"
    " ch_kind text, ch_cron text, ch_every_us bigint, ch_params json, ch_max_retries integer,"
    " ch_next_run timestamptz,"
    " last_error text,"
    " runs bigint NOT NULL DEFAULT 0,"
    " failures bigint NOT NULL DEFAULT 0,"
    " version bigint NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (name, key)"
    ") WITH (fillfactor = 85);"
    /* Claims and next-due look-ups walk each type's pending rows in due order. There is
       deliberately no index on next_run alone: given one, the planner scans it and filters
       by type, which with many rows of other types costs a full scan. */
    "CREATE INDEX {I:jobs_type_due} ON {J} (name, next_run) WHERE status = 'pending';"
    /* running rows for take-back; heartbeat_at is deliberately not indexed so that the
       heartbeat's update stays HOT */
    "CREATE INDEX {I:jobs_running} ON {J} (owner) WHERE status = 'running';"
    "CREATE INDEX {I:jobs_finished} ON {J} (updated_at) WHERE kind = 'once' AND "
    "status IN ('completed', 'failed', 'cancelled');"
    "CREATE TABLE {R} ("
    " id bigint PRIMARY KEY,"
    " name text COLLATE \"C\" NOT NULL,"
    " key text COLLATE \"C\" NOT NULL,"
    " node text NOT NULL,"
    " attempt integer NOT NULL,"
    " started_at timestamptz,"
    " finished_at timestamptz NOT NULL,"
    " outcome text NOT NULL CHECK (outcome IN ('success', 'failure', 'cancelled', 'stalled',"
    " 'released')),"
    " error text"
    ");"
    "CREATE INDEX {I:runs_job} ON {R} (name, key, id);"
    "CREATE INDEX {I:runs_finished} ON {R} (finished_at);"
    "CREATE TABLE {N} ("
    " id text PRIMARY KEY,"
    " host text NOT NULL,"
    " pid bigint NOT NULL,"
    " names text[] NOT NULL,"
    " started_at timestamptz NOT NULL,"
    " last_seen timestamptz NOT NULL"
    ");";

/* The SQL that takes the schema from version v-1 to v. */
static const char *pgsched__pg_migration(int v)
{
    switch (v) {
    case 1: return pgsched__pg_migration_1;
    }
    return NULL;
}

#define PGSCHED__PG_CHANNEL_SUFFIX "events"

typedef struct pgsched__pgc {
    PGconn *conn;
    uint32_t prepared; /* bit i: statement i is prepared on this connection */
    int busy;
} pgsched__pgc;

typedef struct pgsched__pg {
    pgsched_store base;
    pgsched_allocator alloc;
    char *conninfo;
    char schema[64];
    char prefix[64];
    char channel[160]; /* the NOTIFY channel, as a value */
    char listen_sql[200];
    char lock_key[160];
    char names_sql[5][160]; /* quoted names: jobs, runs, nodes, seq, version */
    char *sql[PGSCHED__Q_COUNT];
    int notify, no_create;
    pgsched_duration reconnect_min, reconnect_max;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pgsched__pgc *conns;
    int nconns;
    pgsched_time retry_at;   /* monotonic: no connection attempt before this */
    pgsched_duration backoff;
    char last_conn_error[256];
} pgsched__pg;

enum { PGSCHED__PGN_JOBS, PGSCHED__PGN_RUNS, PGSCHED__PGN_NODES, PGSCHED__PGN_SEQ,
       PGSCHED__PGN_VERSION };

/* ---- SQL text ---- */

typedef struct pgsched__buf {
    char *p;
    size_t n, cap;
    int oom;
    const pgsched_allocator *a;
} pgsched__buf;

static void pgsched__buf_add(pgsched__buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        char *np;
        while (ncap < b->n + n + 1) ncap *= 2;
        np = (char *)pgsched__realloc(b->a, b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void pgsched__buf_puts(pgsched__buf *b, const char *s) { pgsched__buf_add(b, s, strlen(s)); }

/* Expands {J} {R} {N} {Q} {V} {S}, {I:suffix} (an index name) and {NOTIFY...} (kept only when
   notifications are on; may not nest braces). */
static char *pgsched__pg_expand(pgsched__pg *p, const char *t)
{
    pgsched__buf b;
    memset(&b, 0, sizeof b);
    b.a = &p->alloc;
    while (*t) {
        if (*t != '{') {
            const char *e = strchr(t, '{');
            size_t n = e ? (size_t)(e - t) : strlen(t);
            pgsched__buf_add(&b, t, n);
            t += n;
            continue;
        }
        if (strncmp(t, "{NOTIFY", 7) == 0) {
            const char *e = strchr(t, '}');
            if (p->notify) pgsched__buf_add(&b, t + 7, (size_t)(e - t - 7));
            t = e + 1;
        } else if (strncmp(t, "{I:", 3) == 0) {
            const char *e = strchr(t, '}');
            pgsched__buf_puts(&b, "\"");
            pgsched__buf_puts(&b, p->prefix);
            pgsched__buf_add(&b, t + 3, (size_t)(e - t - 3));
            pgsched__buf_puts(&b, "\"");
            t = e + 1;
        } else if (t[1] && t[2] == '}') {
            switch (t[1]) {
            case 'J': pgsched__buf_puts(&b, p->names_sql[PGSCHED__PGN_JOBS]); break;
            case 'R': pgsched__buf_puts(&b, p->names_sql[PGSCHED__PGN_RUNS]); break;
            case 'N': pgsched__buf_puts(&b, p->names_sql[PGSCHED__PGN_NODES]); break;
            case 'Q': pgsched__buf_puts(&b, p->names_sql[PGSCHED__PGN_SEQ]); break;
            case 'V': pgsched__buf_puts(&b, p->names_sql[PGSCHED__PGN_VERSION]); break;
            case 'S':
                pgsched__buf_puts(&b, "\"");
                pgsched__buf_puts(&b, p->schema);
                pgsched__buf_puts(&b, "\"");
                break;
            default: pgsched__buf_add(&b, t, 3); break;
            }
            t += 3;
        } else {
            pgsched__buf_add(&b, t, 1);
            t++;
        }
    }
    if (b.oom) {
        pgsched__free(&p->alloc, b.p);
        return NULL;
    }
    return b.p;
}

/* Text-format array literal of strings ({"a","b\"c"}, NULL elements unquoted). */
static void pgsched__pg_array_add(pgsched__buf *b, const char *s, int first)
{
    if (!first) pgsched__buf_add(b, ",", 1);
    if (!s) {
        pgsched__buf_puts(b, "NULL");
        return;
    }
    pgsched__buf_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') pgsched__buf_add(b, "\\", 1);
        pgsched__buf_add(b, s, 1);
    }
    pgsched__buf_add(b, "\"", 1);
}

static void pgsched__pg_array_int(pgsched__buf *b, int64_t v, int first)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%s%lld", first ? "" : ",", (long long)v);
    pgsched__buf_puts(b, tmp);
}

/* ---- binary results ---- */

static int64_t pgsched__pg_be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++) v = (v << 8) | u[i];
    return (int64_t)v;
}

static int32_t pgsched__pg_be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (int32_t)(((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) |
                     (uint32_t)u[3]);
}

static int64_t pgsched__pg_int(const PGresult *r, int row, int col)
{
    int len;
    if (PQgetisnull(r, row, col)) return 0;
    len = PQgetlength(r, row, col);
    if (len == 8) return pgsched__pg_be64(PQgetvalue(r, row, col));
    if (len == 4) return pgsched__pg_be32(PQgetvalue(r, row, col));
    if (len == 2) {
        const unsigned char *u = (const unsigned char *)PQgetvalue(r, row, col);
        return (int16_t)((u[0] << 8) | u[1]);
    }
    return 0;
}

/* timestamptz in binary: microseconds since 2000-01-01; 0 for NULL. */
static pgsched_time pgsched__pg_time(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return 0;
    return pgsched__pg_be64(PQgetvalue(r, row, col)) + (pgsched_time)946684800 * 1000000;
}

static int pgsched__pg_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] != 0;
}

static const char *pgsched__pg_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static const char *pgsched__kind_string(pgsched_schedule_kind k)
{
    switch (k) {
    case PGSCHED_ONCE: return "once";
    case PGSCHED_CRON: return "cron";
    case PGSCHED_INTERVAL: return "interval";
    case PGSCHED_CUSTOM: return "custom";
    }
    return "unknown";
}

static pgsched_status pgsched__status_parse(const char *s)
{
    if (!s) return PGSCHED_STATUS_NONE;
    if (strcmp(s, "pending") == 0) return PGSCHED_PENDING;
    if (strcmp(s, "running") == 0) return PGSCHED_RUNNING;
    if (strcmp(s, "completed") == 0) return PGSCHED_COMPLETED;
    if (strcmp(s, "failed") == 0) return PGSCHED_FAILED;
    if (strcmp(s, "cancelled") == 0) return PGSCHED_CANCELLED;
    return PGSCHED_STATUS_NONE;
}

static pgsched_schedule_kind pgsched__kind_parse(const char *s)
{
    if (s && strcmp(s, "cron") == 0) return PGSCHED_CRON;
    if (s && strcmp(s, "interval") == 0) return PGSCHED_INTERVAL;
    if (s && strcmp(s, "custom") == 0) return PGSCHED_CUSTOM;
    return PGSCHED_ONCE;
}

static pgsched_outcome_kind pgsched__outcome_parse(const char *s)
{
    if (s && strcmp(s, "failure") == 0) return PGSCHED_OUTCOME_FAILURE;
    if (s && strcmp(s, "cancelled") == 0) return PGSCHED_OUTCOME_CANCELLED;
    if (s && strcmp(s, "stalled") == 0) return PGSCHED_OUTCOME_STALLED;
    if (s && strcmp(s, "released") == 0) return PGSCHED_OUTCOME_RELEASED;
    return PGSCHED_OUTCOME_SUCCESS;
}

/* Reads the PGSCHED__JOB_COLS columns starting at column c. */
static void pgsched__pg_job(const PGresult *r, int row, int c, pgsched_job *j)
{
    memset(j, 0, sizeof *j);
    j->name = pgsched__pg_text(r, row, c + 0);
    j->key = pgsched__pg_text(r, row, c + 1);
    j->status = pgsched__status_parse(pgsched__pg_text(r, row, c + 2));
    j->kind = pgsched__kind_parse(pgsched__pg_text(r, row, c + 3));
    j->cron = pgsched__pg_text(r, row, c + 4);
    j->every = pgsched__pg_int(r, row, c + 5);
    j->params = pgsched__pg_text(r, row, c + 6);
    j->max_retries = (int)pgsched__pg_int(r, row, c + 7);
    j->attempt = (int)pgsched__pg_int(r, row, c + 8);
    j->next_run = pgsched__pg_time(r, row, c + 9);
    j->owner = pgsched__pg_text(r, row, c + 10);
    j->lease = pgsched__pg_int(r, row, c + 11);
    j->heartbeat_at = pgsched__pg_time(r, row, c + 12);
    j->started_at = pgsched__pg_time(r, row, c + 13);
    j->finished_at = pgsched__pg_time(r, row, c + 14);
    j->cancel_requested = pgsched__pg_bool(r, row, c + 15);
    j->remove_requested = pgsched__pg_bool(r, row, c + 16);
    j->change_pending = pgsched__pg_bool(r, row, c + 17);
    j->last_error = pgsched__pg_text(r, row, c + 18);
    j->runs = pgsched__pg_int(r, row, c + 19);
    j->failures = pgsched__pg_int(r, row, c + 20);
    j->version = pgsched__pg_int(r, row, c + 21);
    j->created_at = pgsched__pg_time(r, row, c + 22);
    j->updated_at = pgsched__pg_time(r, row, c + 23);
}

/* ---- connections ---- */

/* A failed statement is a connection problem when the connection is gone or the server says
   so (class 08, or the shutdown/crash codes 57P01..57P03): the caller may retry later. */
static int pgsched__pg_is_conn_error(PGconn *c, const PGresult *res)
{
    const char *st;
    if (!c || PQstatus(c) != CONNECTION_OK) return 1;
    if (!res) return 1;
    st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!st) return 0;
    return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
           strcmp(st, "57P03") == 0;
}

/* One line of the server's message: no trailing newline, no DETAIL block. */
static void pgsched__pg_message(char *dst, size_t size, const char *msg)
{
    size_t n;
    pgsched__copy_text(dst, size, msg ? msg : "unknown error");
    n = strlen(dst);
    while (n && (dst[n - 1] == '\n' || dst[n - 1] == ' ')) dst[--n] = '\0';
    {
        char *nl = strchr(dst, '\n');
        if (nl) *nl = '\0';
    }
}

/* Server notices ("relation already exists, skipping") are not the user's business. */
static void pgsched__pg_quiet(void *arg, const char *message)
{
    PGSCHED__UNUSED(arg);
    PGSCHED__UNUSED(message);
}

static PGconn *pgsched__pg_connect(pgsched__pg *p, char *why, size_t why_size)
{
    /* Our settings come first so that the user's conninfo may override them. */
    const char *keys[] = {"application_name", "client_encoding", "keepalives",
                          "keepalives_idle",  "keepalives_interval", "keepalives_count",
                          "connect_timeout",  "dbname", NULL};
    const char *vals[] = {"pgsched", "UTF8", "1", "30", "10", "3", "10", p->conninfo, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        pgsched__copy_text(why, why_size, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        pgsched__pg_message(why, why_size, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pgsched__pg_quiet, NULL);
    return c;
}

/* Takes a free connection from the pool, connecting it if needed (with backoff). */
static pgsched_result pgsched__pg_acquire(pgsched__pg *p, pgsched__pgc **out, pgsched_error *err)
{
    pgsched__pgc *c = NULL;
    int i;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (i = 0; i < p->nconns; i++)
            if (!p->conns[i].busy) {
                c = &p->conns[i];
                break;
            }
        if (c) break;
        pthread_cond_wait(&p->cv, &p->mu);
    }
    c->busy = 1;
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK) {
        pthread_mutex_unlock(&p->mu);
        *out = c;
        return PGSCHED_OK;
    }
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
        c->prepared = 0;
    }
    if (pgsched__monotonic() < p->retry_at) {
        char msg[256];
        long ms = (long)((p->retry_at - pgsched__monotonic()) / 1000);
        pgsched__copy_text(msg, sizeof msg, p->last_conn_error);
        c->busy = 0;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return pgsched__fail(err, PGSCHED_ERR_CONNECTION,
                             "the database connection is down; next attempt in %ld ms (%s)", ms,
                             msg);
    }
    pthread_mutex_unlock(&p->mu);
    {
        char why[256];
        PGconn *conn = pgsched__pg_connect(p, why, sizeof why);
        pthread_mutex_lock(&p->mu);
        if (!conn) {
            pgsched__copy_text(p->last_conn_error, sizeof p->last_conn_error, why);
            p->retry_at = pgsched__monotonic() + p->backoff;
            p->backoff = p->backoff * 2 > p->reconnect_max ? p->reconnect_max : p->backoff * 2;
            c->busy = 0;
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            return pgsched__fail(err, PGSCHED_ERR_CONNECTION,
                                 "cannot connect to the database: %s", why);
        }
        p->backoff = p->reconnect_min;
        p->retry_at = 0;
        c->conn = conn;
        c->prepared = 0;
        pthread_mutex_unlock(&p->mu);
    }
    *out = c;
    return PGSCHED_OK;
}

static void pgsched__pg_release(pgsched__pg *p, pgsched__pgc *c)
{
    pthread_mutex_lock(&p->mu);
    c->busy = 0;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Turns a failed result into an error; returns PGSCHED_OK when the result is good. */
static pgsched_result pgsched__pg_check(PGconn *conn, PGresult *res, const char *what,
                                        pgsched_error *err)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    char msg[400];
    const char *code;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return PGSCHED_OK;
    pgsched__pg_message(msg, sizeof msg,
                        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL);
    if (!res || !PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
        pgsched__pg_message(msg, sizeof msg, conn ? PQerrorMessage(conn) : NULL);
    if (pgsched__pg_is_conn_error(conn, res))
        return pgsched__fail(err, PGSCHED_ERR_CONNECTION,
                             "the database connection was lost during %s: %s", what, msg);
    code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (code && strcmp(code, "42P01") == 0)
        return pgsched__fail(err, PGSCHED_ERR_SCHEMA_VERSION,
                             "%s failed: %s (SQLSTATE 42P01): the tables are missing", what, msg);
    return pgsched__fail(err, PGSCHED_ERR_DATABASE, "%s failed: %s (SQLSTATE %s)", what, msg,
                         code ? code : "?????");
}

/* Every parameter is sent as text and cast in the SQL; declaring them all `text` also lets a
   statement leave one unused (the channel, when notifications are off). */
static const Oid pgsched__pg_text_types[16] = {25, 25, 25, 25, 25, 25, 25, 25,
                                               25, 25, 25, 25, 25, 25, 25, 25};

/* Runs statement q with text parameters, binary results. A statement that is safe to repeat
   is retried once on a fresh connection when the connection turned out to be dead (the usual
   case after a database restart: the first use of each pooled connection finds it closed). */
static pgsched_result pgsched__pg_run(pgsched__pg *p, int q, int nparams,
                                      const char *const *values, int idempotent, PGresult **out,
                                      pgsched_error *err)
{
    int tries;
    pgsched_result r = PGSCHED_OK;
    *out = NULL;
    for (tries = 0; tries < 2; tries++) {
        pgsched__pgc *c;
        PGresult *res;
        r = pgsched__pg_acquire(p, &c, err);
        if (r != PGSCHED_OK) return r;
        if (!(c->prepared & (1u << q))) {
            res = PQprepare(c->conn, pgsched__pg_stmt_names[q], p->sql[q], nparams,
                            pgsched__pg_text_types);
            r = pgsched__pg_check(c->conn, res, "preparing a statement", err);
            PQclear(res);
            if (r == PGSCHED_OK) c->prepared |= 1u << q;
        }
        if (r == PGSCHED_OK) {
            res = PQexecPrepared(c->conn, pgsched__pg_stmt_names[q], nparams, values, NULL, NULL,
                                 1);
            r = pgsched__pg_check(c->conn, res, pgsched__pg_stmt_names[q] + 8, err);
            if (r == PGSCHED_OK) *out = res;
            else PQclear(res);
        }
        if (r == PGSCHED_ERR_CONNECTION && c->conn && PQstatus(c->conn) == CONNECTION_OK) {
            /* The server said it is going away while the socket still looks fine. */
            PQfinish(c->conn);
            c->conn = NULL;
            c->prepared = 0;
        }
        pgsched__pg_release(p, c);
        if (r != PGSCHED_ERR_CONNECTION || !idempotent) break;
    }
    return r;
}

static void pgsched__i64(char *buf, size_t n, int64_t v) { snprintf(buf, n, "%lld", (long long)v); }

/* ---- methods ---- */

static pgsched_result pgsched__pg_exec_simple(PGconn *c, const char *sql, const char *what,
                                              pgsched_error *err)
{
    PGresult *res = PQexec(c, sql);
    pgsched_result r = pgsched__pg_check(c, res, what, err);
    PQclear(res);
    return r;
}

static pgsched_result pgsched__pg_setup(pgsched_store *s, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched__pgc *c;
    PGresult *res;
    pgsched_result r;
    int version = 0, exists;
    char sql[512];
    const char *vals[1];

    r = pgsched__pg_acquire(p, &c, err);
    if (r != PGSCHED_OK) return r;
    if (p->no_create) {
        /* Only check: a role with row privileges alone must be able to run a node. */
        vals[0] = p->names_sql[PGSCHED__PGN_VERSION];
        res = PQexecParams(c->conn, "SELECT to_regclass($1::text) IS NOT NULL", 1, NULL, vals,
                           NULL, NULL, 0);
        r = pgsched__pg_check(c->conn, res, "checking the schema", err);
        exists = r == PGSCHED_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (r == PGSCHED_OK && !exists)
            r = pgsched__fail(err, PGSCHED_ERR_SCHEMA_VERSION,
                              "the pgsched tables do not exist in schema \"%s\" with prefix "
                              "\"%s\", and schema creation is off",
                              p->schema, p->prefix);
        if (r == PGSCHED_OK) {
            snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM %s",
                     p->names_sql[PGSCHED__PGN_VERSION]);
            res = PQexec(c->conn, sql);
            r = pgsched__pg_check(c->conn, res, "reading the schema version", err);
            if (r == PGSCHED_OK) version = atoi(PQgetvalue(res, 0, 0));
            PQclear(res);
        }
        if (r == PGSCHED_OK && version != PGSCHED__PG_SCHEMA_VERSION)
            r = pgsched__fail(err, PGSCHED_ERR_SCHEMA_VERSION,
                              "the schema is at version %d; this library needs version %d%s",
                              version, PGSCHED__PG_SCHEMA_VERSION,
                              version < PGSCHED__PG_SCHEMA_VERSION
                                  ? " (start a node with schema creation on to upgrade it)"
                                  : " (a newer pgsched wrote it; upgrade this program)");
        pgsched__pg_release(p, c);
        return r == PGSCHED_OK ? pgsched__ok(err) : r;
    }

    r = pgsched__pg_exec_simple(c->conn, "BEGIN", "starting the migration", err);
    if (r == PGSCHED_OK) {
        /* Many nodes may start at once: one migrates, the others wait and then see it done. */
        vals[0] = p->lock_key;
        res = PQexecParams(c->conn, "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
                           1, NULL, vals, NULL, NULL, 0);
        r = pgsched__pg_check(c->conn, res, "taking the migration lock", err);
        PQclear(res);
    }
    if (r == PGSCHED_OK) {
        vals[0] = p->schema;
        res = PQexecParams(c->conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1::text", 1,
                           NULL, vals, NULL, NULL, 0);
        r = pgsched__pg_check(c->conn, res, "looking up the schema", err);
        exists = r == PGSCHED_OK && PQntuples(res) == 1;
        PQclear(res);
        if (r == PGSCHED_OK && !exists) {
            char *q = pgsched__pg_expand(p, "CREATE SCHEMA IF NOT EXISTS {S}");
            r = q ? pgsched__pg_exec_simple(c->conn, q, "creating the schema", err)
                  : pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
            pgsched__free(&p->alloc, q);
        }
    }
    if (r == PGSCHED_OK) {
        char *q = pgsched__pg_expand(p, "CREATE TABLE IF NOT EXISTS {V} (version integer PRIMARY "
                                        "KEY, applied_at timestamptz NOT NULL DEFAULT now())");
        r = q ? pgsched__pg_exec_simple(c->conn, q, "creating the version table", err)
              : pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
        pgsched__free(&p->alloc, q);
    }
    if (r == PGSCHED_OK) {
        snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM %s",
                 p->names_sql[PGSCHED__PGN_VERSION]);
        res = PQexec(c->conn, sql);
        r = pgsched__pg_check(c->conn, res, "reading the schema version", err);
        if (r == PGSCHED_OK) version = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
        if (r == PGSCHED_OK && version > PGSCHED__PG_SCHEMA_VERSION)
            r = pgsched__fail(err, PGSCHED_ERR_SCHEMA_VERSION,
                              "the schema is at version %d, newer than this library's %d: "
                              "upgrade this program",
                              version, PGSCHED__PG_SCHEMA_VERSION);
    }
    while (r == PGSCHED_OK && version < PGSCHED__PG_SCHEMA_VERSION) {
        char *q = pgsched__pg_expand(p, pgsched__pg_migration(version + 1));
        char what[64];
        snprintf(what, sizeof what, "migration %d", version + 1);
        r = q ? pgsched__pg_exec_simple(c->conn, q, what, err)
              : pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
        pgsched__free(&p->alloc, q);
        version++;
        if (r == PGSCHED_OK) {
            char v[16];
            snprintf(v, sizeof v, "%d", version);
            snprintf(sql, sizeof sql, "INSERT INTO %s (version) VALUES ($1::int4)",
                     p->names_sql[PGSCHED__PGN_VERSION]);
            vals[0] = v;
            res = PQexecParams(c->conn, sql, 1, NULL, vals, NULL, NULL, 0);
            r = pgsched__pg_check(c->conn, res, "recording the schema version", err);
            PQclear(res);
        }
    }
    if (r == PGSCHED_OK) r = pgsched__pg_exec_simple(c->conn, "COMMIT", "committing the migration", err);
    else if (PQstatus(c->conn) == CONNECTION_OK) PQclear(PQexec(c->conn, "ROLLBACK"));
    pgsched__pg_release(p, c);
    return r == PGSCHED_OK ? pgsched__ok(err) : r;
}

static pgsched_result pgsched__pg_now(pgsched_store *s, pgsched_time *now, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    PGresult *res;
    pgsched_result r = pgsched__pg_run(p, PGSCHED__Q_NOW, 0, NULL, 1, &res, err);
    if (r != PGSCHED_OK) return r;
    *now = pgsched__pg_time(res, 0, 0);
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_schedule(pgsched_store *s, const pgsched_schedule_request *q,
                                           void *external_conn, pgsched_schedule_outcome *out,
                                           pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    char every[32], retries[16], next[PGSCHED_TIME_STRING_MAX];
    const char *vals[11];
    PGresult *res;
    pgsched_result r;
    pgsched__i64(every, sizeof every, q->every);
    pgsched__i64(retries, sizeof retries, q->max_retries);
    pgsched_time_format(q->next_run, 0, 1, next, sizeof next);
    vals[0] = q->name;
    vals[1] = q->key;
    vals[2] = pgsched__kind_string(q->kind);
    vals[3] = q->cron;
    vals[4] = q->kind == PGSCHED_INTERVAL ? every : NULL;
    vals[5] = q->params;
    vals[6] = retries;
    vals[7] = q->next_run ? next : NULL;
    vals[8] = q->apply_after_run ? "true" : "false";
    vals[9] = q->node_id;
    vals[10] = p->channel;
    if (external_conn) {
        /* The caller's connection and transaction: no prepared statement of ours lives there. */
        PGconn *c = (PGconn *)external_conn;
        res = PQexecParams(c, p->sql[PGSCHED__Q_SCHEDULE], 11, pgsched__pg_text_types, vals, NULL,
                           NULL, 1);
        r = pgsched__pg_check(c, res, "schedule", err);
        if (r != PGSCHED_OK) {
            PQclear(res);
            return r;
        }
    } else {
        r = pgsched__pg_run(p, PGSCHED__Q_SCHEDULE, 11, vals, 1, &res, err);
        if (r != PGSCHED_OK) return r;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return pgsched__err_running(err, q->name, q->key,
                                    "re-scheduling is refused unless it applies after the run");
    }
    out->deferred = pgsched__status_parse(pgsched__pg_text(res, 0, 0)) == PGSCHED_RUNNING;
    out->next_run = pgsched__pg_time(res, 0, 1);
    out->version = pgsched__pg_int(res, 0, 2);
    out->created = pgsched__pg_bool(res, 0, 3);
    out->old_status = out->created ? PGSCHED_STATUS_NONE
                                   : pgsched__status_parse(pgsched__pg_text(res, 0, 4));
    if (out->deferred) out->old_status = PGSCHED_RUNNING;
    PQclear(res);
    return pgsched__ok(err);
}

static char *pgsched__pg_names_array(pgsched__pg *p, const char *const *names, size_t n)
{
    pgsched__buf b;
    size_t i;
    memset(&b, 0, sizeof b);
    b.a = &p->alloc;
    pgsched__buf_add(&b, "{", 1);
    for (i = 0; i < n; i++) pgsched__pg_array_add(&b, names[i], i == 0);
    pgsched__buf_add(&b, "}", 1);
    if (b.oom) {
        pgsched__free(&p->alloc, b.p);
        return NULL;
    }
    return b.p;
}

static pgsched_result pgsched__pg_claim(pgsched_store *s, const pgsched_claim_request *q,
                                        pgsched_job_list *out, pgsched_claim_outcome *info,
                                        pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    char max[16];
    const char *vals[4];
    char *names = pgsched__pg_names_array(p, q->names, q->name_count);
    PGresult *res;
    pgsched_result r;
    int i, n;
    if (!names) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in a claim");
    snprintf(max, sizeof max, "%d", q->max);
    vals[0] = q->node_id;
    vals[1] = names;
    vals[2] = max;
    vals[3] = p->channel;
    r = pgsched__pg_run(p, PGSCHED__Q_CLAIM, 4, vals, 0, &res, err);
    pgsched__free(&p->alloc, names);
    if (r != PGSCHED_OK) return r;
    n = PQntuples(res);
    for (i = 0; i < n; i++) {
        pgsched_job job;
        if (i == 0) {
            info->now = pgsched__pg_time(res, 0, 0);
            info->next_due = pgsched__pg_time(res, 0, 1);
        }
        if (PQgetisnull(res, i, 2)) continue; /* the info row when nothing was claimed */
        pgsched__pg_job(res, i, 2, &job);
        if (pgsched_job_list_push(out, &job) != PGSCHED_OK) {
            /* The rows are ours in the database but we cannot hold them: they stall and are
               taken back after the stall timeout, each counting one attempt. */
            PQclear(res);
            return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in a claim");
        }
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_heartbeat(pgsched_store *s, const char *node_id,
                                            const pgsched_lease *leases, size_t count, int renew,
                                            pgsched_lease_state *states, pgsched_time *now,
                                            pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched__buf bn, bk, bt;
    const char *vals[5];
    PGresult *res;
    pgsched_result r;
    size_t i;
    int row, n;
    memset(&bn, 0, sizeof bn);
    bn.a = &p->alloc;
    bk = bt = bn;
    pgsched__buf_add(&bn, "{", 1);
    pgsched__buf_add(&bk, "{", 1);
    pgsched__buf_add(&bt, "{", 1);
    for (i = 0; i < count; i++) {
        pgsched__pg_array_add(&bn, leases[i].name, i == 0);
        pgsched__pg_array_add(&bk, leases[i].key, i == 0);
        pgsched__pg_array_int(&bt, leases[i].token, i == 0);
        states[i].lost = 1; /* until the database says it is held */
    }
    pgsched__buf_add(&bn, "}", 1);
    pgsched__buf_add(&bk, "}", 1);
    pgsched__buf_add(&bt, "}", 1);
    if (bn.oom || bk.oom || bt.oom) {
        r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in a heartbeat");
        goto done;
    }
    vals[0] = node_id;
    vals[1] = bn.p;
    vals[2] = bk.p;
    vals[3] = bt.p;
    vals[4] = renew ? "true" : "false";
    r = pgsched__pg_run(p, PGSCHED__Q_HEARTBEAT, 5, vals, 1, &res, err);
    if (r != PGSCHED_OK) {
        for (i = 0; i < count; i++) states[i].lost = 0; /* unknown is not lost */
        goto done;
    }
    n = PQntuples(res);
    *now = pgsched__pg_time(res, 0, 0);
    for (row = 0; row < n; row++) {
        const char *name = pgsched__pg_text(res, row, 1), *key = pgsched__pg_text(res, row, 2);
        if (!name) continue;
        for (i = 0; i < count; i++)
            if (strcmp(leases[i].name, name) == 0 && strcmp(leases[i].key, key) == 0) {
                states[i].lost = 0;
                states[i].cancel_requested = pgsched__pg_bool(res, row, 3);
            }
    }
    PQclear(res);
    r = pgsched__ok(err);
done:
    pgsched__free(&p->alloc, bn.p);
    pgsched__free(&p->alloc, bk.p);
    pgsched__free(&p->alloc, bt.p);
    return r;
}

static pgsched_result pgsched__pg_finish(pgsched_store *s, const pgsched_outcome *o, size_t count,
                                         pgsched_finish_result *res_out, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched__buf b[10];
    const char *vals[11];
    PGresult *res = NULL;
    pgsched_result r;
    size_t i;
    int k, row, n;
    memset(b, 0, sizeof b);
    for (k = 0; k < 10; k++) {
        b[k].a = &p->alloc;
        pgsched__buf_add(&b[k], "{", 1);
    }
    for (i = 0; i < count; i++) {
        int first = i == 0;
        pgsched__pg_array_add(&b[0], o[i].name, first);
        pgsched__pg_array_add(&b[1], o[i].key, first);
        pgsched__pg_array_int(&b[2], o[i].token, first);
        pgsched__pg_array_add(&b[3], pgsched_outcome_string(o[i].outcome), first);
        pgsched__pg_array_add(&b[4], pgsched_status_string(o[i].status), first);
        if (o[i].next_run) {
            char t[PGSCHED_TIME_STRING_MAX];
            pgsched_time_format(o[i].next_run, 0, 1, t, sizeof t);
            pgsched__pg_array_add(&b[5], t, first);
        } else {
            pgsched__pg_array_add(&b[5], NULL, first);
        }
        pgsched__pg_array_int(&b[6], o[i].retry_delay, first);
        pgsched__pg_array_int(&b[7], (int64_t)o[i].attempt_rule, first);
        pgsched__pg_array_add(&b[8], o[i].error, first);
        pgsched__pg_array_add(&b[9], o[i].node_id, first);
        res_out[i].code = PGSCHED_ERR_LEASE_LOST;
    }
    r = PGSCHED_OK;
    for (k = 0; k < 10; k++) {
        pgsched__buf_add(&b[k], "}", 1);
        if (b[k].oom) r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory recording outcomes");
        vals[k] = b[k].p;
    }
    vals[10] = p->channel;
    if (r == PGSCHED_OK) r = pgsched__pg_run(p, PGSCHED__Q_FINISH, 11, vals, 1, &res, err);
    for (k = 0; k < 10; k++) pgsched__free(&p->alloc, b[k].p);
    if (r != PGSCHED_OK) {
        for (i = 0; i < count; i++) res_out[i].code = r;
        return r;
    }
    n = PQntuples(res);
    for (row = 0; row < n; row++) {
        int64_t idx = pgsched__pg_int(res, row, 0) - 1;
        const char *st = pgsched__pg_text(res, row, 1);
        if (idx < 0 || (size_t)idx >= count || !st) continue;
        res_out[idx].code = PGSCHED_OK;
        res_out[idx].new_status = pgsched__status_parse(st);
        res_out[idx].next_run = pgsched__pg_time(res, row, 2);
        res_out[idx].version = pgsched__pg_int(res, row, 3);
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_take_back(pgsched_store *s, const char *node_id,
                                            pgsched_duration stall_timeout, int max,
                                            pgsched_job_list *out, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    char stall[32], mx[16];
    const char *vals[4];
    PGresult *res;
    pgsched_result r;
    int i, n;
    /* An interval holds about 290,000 years; a "never" timeout becomes a century. */
    if (stall_timeout > PGSCHED__DURATION_MAX) stall_timeout = PGSCHED__DURATION_MAX;
    pgsched__i64(stall, sizeof stall, stall_timeout);
    snprintf(mx, sizeof mx, "%d", max);
    vals[0] = node_id;
    vals[1] = stall;
    vals[2] = mx;
    vals[3] = p->channel;
    r = pgsched__pg_run(p, PGSCHED__Q_TAKE_BACK, 4, vals, 0, &res, err);
    if (r != PGSCHED_OK) return r;
    n = PQntuples(res);
    for (i = 0; i < n; i++) {
        pgsched_job job;
        pgsched__pg_job(res, i, 0, &job);
        if (pgsched_job_list_push(out, &job) != PGSCHED_OK) {
            PQclear(res);
            return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory taking back rows");
        }
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_change(pgsched__pg *p, int q, const char *name,
                                         const char *key, const char *node_id, PGresult **res,
                                         pgsched_error *err)
{
    const char *vals[4];
    pgsched_result r;
    vals[0] = name;
    vals[1] = key;
    vals[2] = node_id;
    vals[3] = p->channel;
    r = pgsched__pg_run(p, q, 4, vals, 1, res, err);
    if (r != PGSCHED_OK) return r;
    if (PQntuples(*res) == 0) {
        PQclear(*res);
        *res = NULL;
        return pgsched__err_not_found(err, name, key);
    }
    return PGSCHED_OK;
}

static pgsched_result pgsched__pg_cancel(pgsched_store *s, const char *name, const char *key,
                                         const char *node_id, pgsched_change_outcome *out,
                                         pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = pgsched__pg_change((pgsched__pg *)s, PGSCHED__Q_CANCEL, name, key, node_id,
                                          &res, err);
    if (r != PGSCHED_OK) return r;
    out->old_status = pgsched__status_parse(pgsched__pg_text(res, 0, 0));
    out->version = pgsched__pg_int(res, 0, 2);
    if (PQgetisnull(res, 0, 1)) {
        out->effect = PGSCHED_CANCEL_NONE;
        out->new_status = out->old_status;
    } else if (out->old_status == PGSCHED_RUNNING) {
        out->effect = PGSCHED_CANCEL_REQUESTED;
        out->new_status = PGSCHED_RUNNING;
        pgsched__copy_text(out->owner, sizeof out->owner, pgsched__pg_text(res, 0, 3));
    } else {
        out->effect = PGSCHED_CANCEL_DONE;
        out->new_status = PGSCHED_CANCELLED;
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_trigger(pgsched_store *s, const char *name, const char *key,
                                          const char *node_id, pgsched_change_outcome *out,
                                          pgsched_error *err)
{
    PGresult *res;
    pgsched_status st;
    pgsched_result r = pgsched__pg_change((pgsched__pg *)s, PGSCHED__Q_TRIGGER, name, key,
                                          node_id, &res, err);
    if (r != PGSCHED_OK) return r;
    st = pgsched__status_parse(pgsched__pg_text(res, 0, 0));
    if (PQgetisnull(res, 0, 2)) {
        PQclear(res);
        if (st == PGSCHED_RUNNING) return pgsched__err_running(err, name, key, "it cannot be triggered");
        return pgsched__err_not_pending(err, name, key, st);
    }
    out->old_status = out->new_status = PGSCHED_PENDING;
    out->next_run = pgsched__pg_time(res, 0, 1);
    out->version = pgsched__pg_int(res, 0, 2);
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_remove(pgsched_store *s, const char *name, const char *key,
                                         const char *node_id, pgsched_change_outcome *out,
                                         pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = pgsched__pg_change((pgsched__pg *)s, PGSCHED__Q_REMOVE, name, key, node_id,
                                          &res, err);
    if (r != PGSCHED_OK) return r;
    out->old_status = pgsched__status_parse(pgsched__pg_text(res, 0, 0));
    out->version = pgsched__pg_int(res, 0, 2);
    if (pgsched__pg_bool(res, 0, 3)) {
        out->effect = PGSCHED_REMOVE_DONE;
        out->new_status = PGSCHED_STATUS_NONE;
    } else {
        out->effect = PGSCHED_REMOVE_DEFERRED;
        out->new_status = PGSCHED_RUNNING;
        pgsched__copy_text(out->owner, sizeof out->owner, pgsched__pg_text(res, 0, 1));
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_jobs_out(PGresult *res, pgsched_job_list *out,
                                           pgsched_error *err)
{
    int i, n = PQntuples(res);
    for (i = 0; i < n; i++) {
        pgsched_job job;
        pgsched__pg_job(res, i, 0, &job);
        if (pgsched_job_list_push(out, &job) != PGSCHED_OK) {
            PQclear(res);
            return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory copying rows");
        }
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_get(pgsched_store *s, const char *name, const char *key,
                                      pgsched_job_list *out, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    const char *vals[2];
    PGresult *res;
    pgsched_result r;
    vals[0] = name;
    vals[1] = key;
    r = pgsched__pg_run(p, PGSCHED__Q_GET, 2, vals, 1, &res, err);
    if (r != PGSCHED_OK) return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return pgsched__err_not_found(err, name, key);
    }
    return pgsched__pg_jobs_out(res, out, err);
}

static pgsched_result pgsched__pg_list(pgsched_store *s, const pgsched_list_filter *f,
                                       pgsched_job_list *out, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    const char *vals[5];
    char limit[32];
    PGresult *res;
    pgsched_result r;
    pgsched__i64(limit, sizeof limit, (int64_t)(f->limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)f->limit));
    vals[0] = f->name;
    vals[1] = f->status ? pgsched_status_string(f->status) : NULL;
    vals[2] = f->after_name;
    vals[3] = f->after_key;
    vals[4] = limit;
    r = pgsched__pg_run(p, PGSCHED__Q_LIST, 5, vals, 1, &res, err);
    if (r != PGSCHED_OK) return r;
    return pgsched__pg_jobs_out(res, out, err);
}

static pgsched_result pgsched__pg_history(pgsched_store *s, const char *name, const char *key,
                                          size_t limit, pgsched_run_list *out,
                                          pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    const char *vals[3];
    char lim[32];
    PGresult *res;
    pgsched_result r;
    int i, n;
    pgsched__i64(lim, sizeof lim, (int64_t)(limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit));
    vals[0] = name;
    vals[1] = key;
    vals[2] = lim;
    r = pgsched__pg_run(p, PGSCHED__Q_HISTORY, 3, vals, 1, &res, err);
    if (r != PGSCHED_OK) return r;
    n = PQntuples(res);
    for (i = 0; i < n; i++) {
        pgsched_run_record rec;
        memset(&rec, 0, sizeof rec);
        rec.id = pgsched__pg_int(res, i, 0);
        rec.name = pgsched__pg_text(res, i, 1);
        rec.key = pgsched__pg_text(res, i, 2);
        rec.node = pgsched__pg_text(res, i, 3);
        rec.attempt = (int)pgsched__pg_int(res, i, 4);
        rec.started_at = pgsched__pg_time(res, i, 5);
        rec.finished_at = pgsched__pg_time(res, i, 6);
        rec.outcome = pgsched__outcome_parse(pgsched__pg_text(res, i, 7));
        rec.error = pgsched__pg_text(res, i, 8);
        if (pgsched_run_list_push(out, &rec) != PGSCHED_OK) {
            PQclear(res);
            return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory copying history");
        }
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_next_due(pgsched_store *s, const char *const *names,
                                           size_t count, pgsched_time *next, pgsched_time *now,
                                           pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    const char *vals[1];
    char *arr = pgsched__pg_names_array(p, names, count);
    PGresult *res;
    pgsched_result r;
    if (!arr) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
    vals[0] = arr;
    r = pgsched__pg_run(p, PGSCHED__Q_NEXT_DUE, 1, vals, 1, &res, err);
    pgsched__free(&p->alloc, arr);
    if (r != PGSCHED_OK) return r;
    *now = pgsched__pg_time(res, 0, 0);
    *next = pgsched__pg_time(res, 0, 1);
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_node_register(pgsched_store *s, const pgsched_node_record *rec,
                                                pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    const char *vals[4];
    char pid[32];
    char *arr = pgsched__pg_names_array(p, rec->names, rec->name_count);
    PGresult *res;
    pgsched_result r;
    if (!arr) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
    pgsched__i64(pid, sizeof pid, rec->pid);
    vals[0] = rec->id;
    vals[1] = rec->host ? rec->host : "";
    vals[2] = pid;
    vals[3] = arr;
    r = pgsched__pg_run(p, PGSCHED__Q_NODE_REGISTER, 4, vals, 1, &res, err);
    pgsched__free(&p->alloc, arr);
    if (r != PGSCHED_OK) return r;
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_node_unregister(pgsched_store *s, const char *node_id,
                                                  pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    const char *vals[1];
    PGresult *res;
    pgsched_result r;
    vals[0] = node_id;
    r = pgsched__pg_run(p, PGSCHED__Q_NODE_UNREGISTER, 1, vals, 1, &res, err);
    if (r != PGSCHED_OK) return r;
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_count(pgsched__pg *p, int q, int n, const char *const *vals,
                                        size_t *count, pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = pgsched__pg_run(p, q, n, vals, 1, &res, err);
    if (r != PGSCHED_OK) return r;
    *count += (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return PGSCHED_OK;
}

static pgsched_result pgsched__pg_cleanup(pgsched_store *s, const pgsched_cleanup_request *q,
                                          pgsched_cleanup_outcome *out, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    const pgsched_duration cap = PGSCHED__DURATION_MAX;
    char a[32], b[32], lim[32];
    const char *vals[3];
    pgsched_result r = PGSCHED_OK;
    pgsched__i64(lim, sizeof lim, (int64_t)q->limit);
    if (q->finished_retention != PGSCHED_NEVER) {
        pgsched__i64(a, sizeof a, q->finished_retention > cap ? cap : q->finished_retention);
        vals[0] = a;
        vals[1] = lim;
        r = pgsched__pg_count(p, PGSCHED__Q_CLEAN_FINISHED, 2, vals, &out->finished_deleted, err);
    }
    if (r == PGSCHED_OK && q->history_retention != PGSCHED_NEVER) {
        pgsched__i64(a, sizeof a, q->history_retention > cap ? cap : q->history_retention);
        vals[0] = a;
        vals[1] = lim;
        r = pgsched__pg_count(p, PGSCHED__Q_CLEAN_HISTORY, 2, vals, &out->history_deleted, err);
        if (r == PGSCHED_OK) {
            vals[1] = q->node_id;
            r = pgsched__pg_count(p, PGSCHED__Q_CLEAN_NODES, 2, vals, &out->nodes_deleted, err);
        }
    }
    if (r == PGSCHED_OK && q->orphan_timeout != PGSCHED_NEVER) {
        pgsched__i64(a, sizeof a, q->orphan_timeout > cap ? cap : q->orphan_timeout);
        pgsched__i64(b, sizeof b, q->stall_timeout > cap ? cap : q->stall_timeout);
        vals[0] = a;
        vals[1] = b;
        vals[2] = lim;
        r = pgsched__pg_count(p, PGSCHED__Q_CLEAN_ORPHANS, 3, vals, &out->orphans_deleted, err);
    }
    return r == PGSCHED_OK ? pgsched__ok(err) : r;
}

/* ---- listening ---- */

typedef struct pgsched__pglistener {
    PGconn *conn;
    int wake_fd[2]; /* a self-pipe: listen_wake writes a byte, poll() sees it */
    int need_resync;
    pgsched_time retry_at; /* monotonic */
    pgsched_duration backoff;
} pgsched__pglistener;

static pgsched_result pgsched__pg_listen_connect(pgsched__pg *p, pgsched__pglistener *l,
                                                 pgsched_error *err)
{
    char why[256];
    PGresult *res;
    pgsched_result r;
    PGconn *c = pgsched__pg_connect(p, why, sizeof why);
    if (!c) {
        l->retry_at = pgsched__monotonic() + l->backoff;
        l->backoff = l->backoff * 2 > p->reconnect_max ? p->reconnect_max : l->backoff * 2;
        return pgsched__fail(err, PGSCHED_ERR_CONNECTION,
                             "the listening connection cannot connect: %s", why);
    }
    res = PQexec(c, p->listen_sql);
    r = pgsched__pg_check(c, res, "LISTEN", err);
    PQclear(res);
    if (r != PGSCHED_OK) {
        PQfinish(c);
        l->retry_at = pgsched__monotonic() + l->backoff;
        return r;
    }
    l->conn = c;
    l->backoff = p->reconnect_min;
    return PGSCHED_OK;
}

static pgsched_result pgsched__pg_listen_open(pgsched_store *s, pgsched_listener **out,
                                              pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched__pglistener *l = (pgsched__pglistener *)pgsched__calloc(&p->alloc, sizeof *l);
    if (!l) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory opening a listener");
    if (pipe(l->wake_fd) != 0) {
        pgsched__free(&p->alloc, l);
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "cannot create a pipe: %s",
                             strerror(errno));
    }
    fcntl(l->wake_fd[0], F_SETFL, O_NONBLOCK);
    fcntl(l->wake_fd[1], F_SETFL, O_NONBLOCK);
    l->backoff = p->reconnect_min;
    /* A first connection that fails is retried by listen_wait, which then reports a resync:
       the listener exists either way so the caller's set-up does not depend on timing. */
    if (pgsched__pg_listen_connect(p, l, NULL) != PGSCHED_OK) l->need_resync = 1;
    *out = (pgsched_listener *)(void *)l;
    return pgsched__ok(err);
}

/* Parses one payload into an event; 0 when it is not ours or malformed (then: resync). */
static int pgsched__pg_parse_event(const char *payload, pgsched_event *ev)
{
    char buf[1200];
    char *f[10];
    int nf = 0;
    char *s;
    size_t n = strlen(payload);
    if (n >= sizeof buf) return 0;
    memcpy(buf, payload, n + 1);
    s = buf;
    f[nf++] = s;
    while (*s && nf < 10) {
        if (*s == '\t') {
            *s = '\0';
            f[nf++] = s + 1;
        }
        s++;
    }
    memset(ev, 0, sizeof *ev);
    if (strcmp(f[0], "C") == 0 && nf == 8) {
        ev->kind = PGSCHED_EVENT_CHANGE;
        ev->old_status = pgsched__status_parse(f[3]);
        ev->new_status = pgsched__status_parse(f[4]);
        ev->version = strtoll(f[5], NULL, 10);
        pgsched__copy_text(ev->node, sizeof ev->node, f[6]);
        ev->next_run = f[7][0] ? strtoll(f[7], NULL, 10) : 0;
    } else if (strcmp(f[0], "X") == 0 && nf == 6) {
        ev->kind = PGSCHED_EVENT_CANCEL;
        ev->old_status = ev->new_status = PGSCHED_RUNNING;
        ev->version = strtoll(f[3], NULL, 10);
        pgsched__copy_text(ev->node, sizeof ev->node, f[4]);
        pgsched__copy_text(ev->owner, sizeof ev->owner, f[5]);
    } else {
        return 0;
    }
    if (strlen(f[1]) > PGSCHED_NAME_MAX || strlen(f[2]) > PGSCHED_KEY_MAX) return 0;
    pgsched__copy_text(ev->name, sizeof ev->name, f[1]);
    pgsched__copy_text(ev->key, sizeof ev->key, f[2]);
    return 1;
}

static pgsched_result pgsched__pg_listen_wait(pgsched_store *s, pgsched_listener *lh,
                                              pgsched_duration timeout, pgsched_event *events,
                                              size_t cap, size_t *count, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched__pglistener *l = (pgsched__pglistener *)(void *)lh;
    pgsched_time deadline = pgsched__deadline(timeout);
    size_t n = 0;
    for (;;) {
        struct pollfd fds[2];
        pgsched_time now = pgsched__monotonic();
        int wait_ms, nfds = 1;
        char drain[64];
        if (!l->conn || PQstatus(l->conn) != CONNECTION_OK) {
            if (l->conn) {
                PQfinish(l->conn);
                l->conn = NULL;
                l->need_resync = 1;
            }
            if (now >= l->retry_at) pgsched__pg_listen_connect(p, l, NULL);
        }
        if (l->conn && l->need_resync) {
            /* Back after a gap: events may have been missed, the caller must poll. */
            memset(&events[n], 0, sizeof events[n]);
            events[n++].kind = PGSCHED_EVENT_RESYNC;
            l->need_resync = 0;
        }
        if (l->conn) {
            PGnotify *nt;
            if (!PQconsumeInput(l->conn)) {
                /* The connection is gone; reconnect now, then report a resync. */
                PQfinish(l->conn);
                l->conn = NULL;
                l->need_resync = 1;
                l->retry_at = 0;
                continue;
            }
            while (n < cap && (nt = PQnotifies(l->conn)) != NULL) {
                if (!pgsched__pg_parse_event(nt->extra, &events[n])) {
                    memset(&events[n], 0, sizeof events[n]);
                    events[n].kind = PGSCHED_EVENT_RESYNC;
                }
                n++;
                PQfreemem(nt);
            }
        }
        if (n > 0 || now >= deadline) break;
        fds[0].fd = l->wake_fd[0];
        fds[0].events = POLLIN;
        if (l->conn) {
            fds[1].fd = PQsocket(l->conn);
            fds[1].events = POLLIN;
            nfds = 2;
        }
        {
            pgsched_time until = deadline;
            if (!l->conn && l->retry_at < until) until = l->retry_at;
            wait_ms = until <= now ? 0 : (until - now) / 1000 > 60000 ? 60000
                                                                        : (int)((until - now + 999) / 1000);
        }
        if (poll(fds, (nfds_t)nfds, wait_ms) > 0 && (fds[0].revents & POLLIN)) {
            while (read(l->wake_fd[0], drain, sizeof drain) > 0) {}
            break;
        }
    }
    *count = n;
    return pgsched__ok(err);
}

static void pgsched__pg_listen_wake(pgsched_store *s, pgsched_listener *lh)
{
    pgsched__pglistener *l = (pgsched__pglistener *)(void *)lh;
    char b = 1;
    PGSCHED__UNUSED(s);
    if (write(l->wake_fd[1], &b, 1) < 0) { /* full pipe: a wake is already pending */ }
}

static void pgsched__pg_listen_close(pgsched_store *s, pgsched_listener *lh)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched__pglistener *l = (pgsched__pglistener *)(void *)lh;
    if (l->conn) PQfinish(l->conn);
    close(l->wake_fd[0]);
    close(l->wake_fd[1]);
    pgsched__free(&p->alloc, l);
}

static void pgsched__pg_destroy(pgsched_store *s)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched_allocator a = p->alloc;
    int i;
    for (i = 0; i < p->nconns; i++)
        if (p->conns[i].conn) PQfinish(p->conns[i].conn);
    for (i = 0; i < PGSCHED__Q_COUNT; i++) pgsched__free(&a, p->sql[i]);
    pgsched__free(&a, p->conns);
    pgsched__free(&a, p->conninfo);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pgsched__free(&a, p);
}

static const pgsched_store_methods pgsched__pg_methods = {
    PGSCHED_STORE_VERSION,
    "postgresql",
    pgsched__pg_setup,
    pgsched__pg_destroy,
    pgsched__pg_now,
    pgsched__pg_schedule,
    pgsched__pg_claim,
    pgsched__pg_heartbeat,
    pgsched__pg_finish,
    pgsched__pg_take_back,
    pgsched__pg_cancel,
    pgsched__pg_trigger,
    pgsched__pg_remove,
    pgsched__pg_get,
    pgsched__pg_list,
    pgsched__pg_history,
    pgsched__pg_next_due,
    pgsched__pg_node_register,
    pgsched__pg_node_unregister,
    pgsched__pg_cleanup,
    pgsched__pg_listen_open,
    pgsched__pg_listen_wait,
    pgsched__pg_listen_wake,
    pgsched__pg_listen_close,
};

PGSCHED_DEF pgsched_result pgsched_pg_store_create(const pgsched_pg_config *cfg,
                                                   pgsched_store **out, pgsched_error *err)
{
    pgsched_allocator a;
    pgsched__pg *p;
    const char *schema, *prefix;
    pgsched_result r;
    int i, pool;
    if (!out) return pgsched__null(err, "the output store");
    *out = NULL;
    if (!cfg) return pgsched__null(err, "the PostgreSQL store configuration");
    if (!cfg->conninfo)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "conninfo: the connection string is missing");
    schema = cfg->schema ? cfg->schema : "public";
    prefix = cfg->prefix ? cfg->prefix : "pgsched_";
    if ((r = pgsched_validate_identifier("schema", schema, 63, err)) != PGSCHED_OK) return r;
    if ((r = pgsched_validate_identifier("prefix", prefix, 63 - PGSCHED__PG_SUFFIX_MAX, err)) !=
        PGSCHED_OK)
        return r;
    if (cfg->pool_size < 0 || cfg->pool_size > 64)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "pool_size: %d is outside 0..64",
                             cfg->pool_size);
    if (cfg->reconnect_min < 0 || cfg->reconnect_max < 0)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "reconnect_min/max: a duration is negative");
    a = pgsched__allocator(cfg->allocator);
    p = (pgsched__pg *)pgsched__calloc(&a, sizeof *p);
    if (!p) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a store");
    p->alloc = a;
    p->base.methods = &pgsched__pg_methods;
    pgsched__copy_text(p->schema, sizeof p->schema, schema);
    pgsched__copy_text(p->prefix, sizeof p->prefix, prefix);
    snprintf(p->names_sql[PGSCHED__PGN_JOBS], sizeof p->names_sql[0], "\"%s\".\"%sjobs\"", schema, prefix);
    snprintf(p->names_sql[PGSCHED__PGN_RUNS], sizeof p->names_sql[0], "\"%s\".\"%sruns\"", schema, prefix);
    snprintf(p->names_sql[PGSCHED__PGN_NODES], sizeof p->names_sql[0], "\"%s\".\"%snodes\"", schema, prefix);
    snprintf(p->names_sql[PGSCHED__PGN_SEQ], sizeof p->names_sql[0], "\"%s\".\"%sseq\"", schema, prefix);
    snprintf(p->names_sql[PGSCHED__PGN_VERSION], sizeof p->names_sql[0], "\"%s\".\"%sschema_version\"",
             schema, prefix);
    snprintf(p->channel, sizeof p->channel, "%s.%s%s", schema, prefix, PGSCHED__PG_CHANNEL_SUFFIX);
    if (strlen(p->channel) > 63) {
        /* A channel name is an identifier (63 bytes): long schema+prefix pairs get a name
           derived from a hash of both, the same in every process. */
        snprintf(p->channel, sizeof p->channel, "pgsched_%016llx",
                 (unsigned long long)pgsched__hash(schema, prefix));
    }
    snprintf(p->listen_sql, sizeof p->listen_sql, "LISTEN \"%s\"", p->channel);
    snprintf(p->lock_key, sizeof p->lock_key, "pgsched migrate %s.%s", schema, prefix);
    p->notify = !cfg->no_notifications;
    p->no_create = cfg->no_create_schema;
    p->reconnect_min = cfg->reconnect_min ? cfg->reconnect_min : 100 * PGSCHED_MILLISECOND;
    p->reconnect_max = cfg->reconnect_max ? cfg->reconnect_max : 10 * PGSCHED_SECOND;
    if (p->reconnect_max < p->reconnect_min) p->reconnect_max = p->reconnect_min;
    p->backoff = p->reconnect_min;
    pool = cfg->pool_size ? cfg->pool_size : 2;
    p->conninfo = pgsched__strdup(&a, cfg->conninfo);
    p->conns = (pgsched__pgc *)pgsched__calloc(&a, (size_t)pool * sizeof *p->conns);
    p->nconns = pool;
    r = p->conninfo && p->conns ? PGSCHED_OK : PGSCHED_ERR_NOMEM;
    for (i = 0; i < PGSCHED__Q_COUNT && r == PGSCHED_OK; i++) {
        p->sql[i] = pgsched__pg_expand(p, pgsched__pg_templates[i]);
        if (!p->sql[i]) r = PGSCHED_ERR_NOMEM;
    }
    if (r != PGSCHED_OK || pthread_mutex_init(&p->mu, NULL) != 0) {
        for (i = 0; i < PGSCHED__Q_COUNT; i++) pgsched__free(&a, p->sql[i]);
        pgsched__free(&a, p->conns);
        pgsched__free(&a, p->conninfo);
        pgsched__free(&a, p);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a store");
    }
    pthread_cond_init(&p->cv, NULL);
    *out = &p->base;
    return pgsched__ok(err);
}

/* The caller's-transaction path for the engine. */
static pgsched_result pgsched__pg_schedule_external(pgsched_store *s,
                                                    const pgsched_schedule_request *req,
                                                    PGconn *conn, pgsched_schedule_outcome *out,
                                                    pgsched_error *err)
{
    if (!conn) return pgsched__null(err, "the caller's connection");
    if (s->methods != &pgsched__pg_methods)
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                             "scheduling in the caller's transaction needs the PostgreSQL store");
    return pgsched__store_schedule(s, req, conn, out, err);
}

#endif /* PGSCHED_NO_LIBPQ */
