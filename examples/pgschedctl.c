/* pgschedctl - see and steer the jobs of a pgsched cluster from the command line.

     pgschedctl [--dsn DSN] [--schema S] [--prefix P] COMMAND [ARGS] [--json]

   Changes go through the library's store API (the same validation and notifications as a
   node's calls); the views the API has no call for (nodes, stats, top) read the tables with
   plain libpq. `pgschedctl --help` lists the commands; `pgschedctl COMMAND --help` explains
   one. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Exit statuses. */
#define EX_OK 0
#define EX_REFUSED 1 /* not found, running, invalid input, nothing to do */
#define EX_USAGE 2   /* bad usage, or no connection */

static const char main_usage[] =
    "usage: pgschedctl [--dsn DSN] [--schema S] [--prefix P] COMMAND [ARGS] [--json]\n"
    "\n"
    "Shows and changes the jobs of a pgsched cluster in PostgreSQL.\n"
    "\n"
    "Commands:\n"
    "  list [--name NAME] [--status STATUS] [--limit N]    job instances, in (name, key) order\n"
    "  show NAME KEY                                       one job instance, every field\n"
    "  history [NAME [KEY]] [--limit N]                    finished runs, newest first\n"
    "  nodes                                               the nodes that registered\n"
    "  schedule NAME KEY (--cron EXPR | --every DUR | --at TIME | --now)\n"
    "           [--params JSON] [--max-retries N] [--after-run]\n"
    "                                                      create or replace a job instance\n"
    "  cancel NAME KEY                                     cancel a pending one-time job, or\n"
    "                                                      ask a running one to stop\n"
    "  trigger NAME KEY                                    make a pending job due now\n"
    "  remove NAME KEY                                     delete a job instance\n"
    "  migrate                                             create or upgrade the tables\n"
    "  stats                                               counts across the cluster\n"
    "  top [-n COUNT]                                      a view refreshed every second\n"
    "  help [COMMAND]                                      this text, or a command's\n"
    "\n"
    "Options (anywhere on the line):\n"
    "  --dsn DSN      libpq connection string or URI; default $PGSCHED_DSN, else libpq's own\n"
    "                 environment (PGHOST, PGDATABASE, ...)\n"
    "  --schema S     the schema of the tables (default public)\n"
    "  --prefix P     the prefix of the table names (default pgsched_)\n"
    "  --json         print JSON instead of a table (list, show, history, nodes, schedule,\n"
    "                 cancel, trigger, remove, stats)\n"
    "  -h, --help     print help and exit 0\n"
    "\n"
    "Exit status: 0 done; 1 refused (no such job, the job is running, invalid input, nothing to\n"
    "cancel or trigger, the tables are missing or of another version); 2 bad usage, or the\n"
    "database cannot be reached.\n";

typedef struct command command;
typedef struct opts {
    const char *dsn, *schema, *prefix;
    const char *name, *status, *limit, *cron, *every, *at, *params, *max_retries, *count;
    int json, now, after_run, help;
    const char *args[3];
    int nargs;
    const command *cmd;
} opts;

typedef int (*command_fn)(opts *o);

/* Options each command takes, beyond --dsn, --schema, --prefix and --help. */
enum { O_NAME = 1, O_STATUS = 2, O_LIMIT = 4, O_JSON = 8, O_SCHEDULE = 16, O_COUNT = 32 };

struct command {
    const char *name;
    command_fn fn;
    int min_args, max_args, options;
    const char *usage;
};

static int cmd_list(opts *o);
static int cmd_show(opts *o);
static int cmd_history(opts *o);
static int cmd_nodes(opts *o);
static int cmd_schedule(opts *o);
static int cmd_cancel(opts *o);
static int cmd_trigger(opts *o);
static int cmd_remove(opts *o);
static int cmd_migrate(opts *o);
static int cmd_stats(opts *o);
static int cmd_top(opts *o);

static const command commands[] = {
    {"list", cmd_list, 0, 0, O_NAME | O_STATUS | O_LIMIT | O_JSON,
     "usage: pgschedctl list [--name NAME] [--status STATUS] [--limit N] [--json]\n"
     "\n"
     "Lists job instances in (name, key) order: an aligned table with NAME, KEY, STATUS,\n"
     "SCHEDULE (cron text, 'every DUR' or 'once'), NEXT RUN (UTC), ATTEMPT, RUNS, FAILURES and\n"
     "OWNER (the node running it), or with --json an array of objects with every field.\n"
     "\n"
     "  --name NAME      only this job type\n"
     "  --status STATUS  only pending, running, completed, failed or cancelled\n"
     "  --limit N        at most N rows (default: all)\n"},
    {"show", cmd_show, 2, 2, O_JSON,
     "usage: pgschedctl show NAME KEY [--json]\n"
     "\n"
     "Prints every field of one job instance, one per line (or a JSON object).\n"
     "Exit status 1 when there is no such instance.\n"},
    {"history", cmd_history, 0, 2, O_LIMIT | O_JSON,
     "usage: pgschedctl history [NAME [KEY]] [--limit N] [--json]\n"
     "\n"
     "Prints finished runs, newest first: of every job, of job type NAME, or of one instance.\n"
     "Columns: ID, NAME, KEY, NODE, ATTEMPT, STARTED, SECONDS, OUTCOME (success, failure,\n"
     "cancelled, stalled, released) and ERROR.\n"
     "\n"
     "  --limit N   at most N runs (default 20)\n"},
    {"nodes", cmd_nodes, 0, 0, O_JSON,
     "usage: pgschedctl nodes [--json]\n"
     "\n"
     "Lists the nodes that registered, newest first: ID, HOST, PID, STATE (up: seen in the last\n"
     "minute; silent: not seen for a minute, not stopped; stopped: shut down), LAST SEEN,\n"
     "STARTED (UTC) and TYPES (the job types it registered). Stopped nodes stay listed until\n"
     "the nodes' cleanup removes them.\n"},
    {"schedule", cmd_schedule, 2, 2, O_SCHEDULE | O_JSON,
     "usage: pgschedctl schedule NAME KEY (--cron EXPR | --every DUR | --at TIME | --now)\n"
     "                           [--params JSON] [--max-retries N] [--after-run] [--json]\n"
     "\n"
     "Creates job instance (NAME, KEY), or replaces the schedule of an existing one. Any node\n"
     "that registered job type NAME may run it.\n"
     "\n"
     "  --cron EXPR        recurring on a cron expression, e.g. '0 7 * * MON-FRI' or\n"
     "                     'CRON_TZ=Europe/Paris 0 7 * * *' (without CRON_TZ= it is UTC);\n"
     "                     '@every DUR' is an interval (see pgsched-cron --help)\n"
     "  --every DUR        recurring, DUR after the end of each run (90s, 1h30m, 250ms)\n"
     "  --at TIME          once, at an RFC 3339 time (2026-03-08T07:00:00Z)\n"
     "  --now              once, now\n"
     "  --params JSON      the parameters handed to the handler (default {})\n"
     "  --max-retries N    retries after a failed attempt (default 3; 0 = none)\n"
     "  --after-run        if the instance is running, apply the change when its run ends\n"
     "                     (without it, a running instance is refused with exit status 1)\n"
     "\n"
     "Recurring jobs first run at their next due time after now; --at with --cron or --every\n"
     "sets the first run instead.\n"},
    {"cancel", cmd_cancel, 2, 2, O_JSON,
     "usage: pgschedctl cancel NAME KEY [--json]\n"
     "\n"
     "A pending one-time job becomes cancelled without running. A running job's node is asked\n"
     "to stop the run (its handler sees pgsched_run_cancelled). A pending recurring job or a\n"
     "finished one has nothing to cancel: exit status 1 (remove deletes it).\n"},
    {"trigger", cmd_trigger, 2, 2, O_JSON,
     "usage: pgschedctl trigger NAME KEY [--json]\n"
     "\n"
     "Makes a pending job due now. Exit status 1 when it is not pending (running or\n"
     "finished) or does not exist.\n"},
    {"remove", cmd_remove, 2, 2, O_JSON,
     "usage: pgschedctl remove NAME KEY [--json]\n"
     "\n"
     "Deletes a job instance. A running one is asked to stop and is deleted when its run\n"
     "ends. Exit status 1 when there is no such instance.\n"},
    {"migrate", cmd_migrate, 0, 0, 0,
     "usage: pgschedctl migrate\n"
     "\n"
     "Creates the schema and the tables, or upgrades them to this program's schema version\n"
     "(what a node started with schema creation on does). Needs CREATE privileges; safe to\n"
     "run while nodes are up, and twice. Every other command only checks the version.\n"},
    {"stats", cmd_stats, 0, 0, O_JSON,
     "usage: pgschedctl stats [--json]\n"
     "\n"
     "The cluster as the tables show it: job instances by status and by job type (DUE: pending\n"
     "and due now), finished runs and failures in the last minute and hour, and the nodes seen\n"
     "in the last minute.\n"},
    {"top", cmd_top, 0, 0, O_COUNT,
     "usage: pgschedctl top [-n COUNT]\n"
     "\n"
     "A view of the cluster refreshed every second until Ctrl-C: the nodes, the running jobs,\n"
     "the jobs due soonest, and the latest failed runs. When standard output is not a\n"
     "terminal it prints the view once, as plain text, and exits.\n"
     "\n"
     "  -n COUNT   stop after COUNT refreshes\n"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void complain(const opts *o, const char *fmt, va_list ap)
{
    fputs("pgschedctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (o && o->cmd)
        fprintf(stderr, "\n(see pgschedctl %s --help)\n", o->cmd->name);
    else
        fputs("\n(see pgschedctl --help)\n", stderr);
}

/* Bad usage: an unknown option, a missing argument, options that exclude each other. */
static int usage_error(const opts *o, const char *fmt, ...) PGSCHED__PRINTF(2, 3);
static int usage_error(const opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    complain(o, fmt, ap);
    va_end(ap);
    return EX_USAGE;
}

/* Invalid input: a value that the library's checks refuse (a name, a time, JSON, ...). */
static int invalid(const opts *o, const char *fmt, ...) PGSCHED__PRINTF(2, 3);
static int invalid(const opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    complain(o, fmt, ap);
    va_end(ap);
    return EX_REFUSED;
}

/* Prints the message of a failed library call; the exit status for it. */
static int failed(const char *what, const pgsched_error *e, pgsched_result r)
{
    fprintf(stderr, "pgschedctl: %s: %s\n", what,
            e->message[0] ? e->message : pgsched_result_string(r));
    return r == PGSCHED_ERR_CONNECTION ? EX_USAGE : EX_REFUSED;
}

/* ---- output helpers ---- */

/* Whole seconds in UTC ("2026-03-08T07:00:00Z"), "-" for 0. */
static const char *fmt_time(pgsched_time t, char *buf)
{
    if (t == 0) return "-";
    t -= ((t % PGSCHED_SECOND) + PGSCHED_SECOND) % PGSCHED_SECOND;
    if (!pgsched_time_format(t, 0, 1, buf, PGSCHED_TIME_STRING_MAX)) return "?";
    return buf;
}

/* A duration the way pgsched_duration_parse reads it ("1h30m", "250ms"). */
static const char *fmt_duration(pgsched_duration d, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        pgsched_duration us;
    } units[] = {{"d", PGSCHED_DAY}, {"h", PGSCHED_HOUR}, {"m", PGSCHED_MINUTE},
                 {"s", PGSCHED_SECOND}, {"ms", PGSCHED_MILLISECOND}, {"us", 1}};
    size_t n = 0, i;
    buf[0] = '\0';
    if (d <= 0) {
        snprintf(buf, size, "0s");
        return buf;
    }
    for (i = 0; i < sizeof units / sizeof units[0] && n < size; i++) {
        if (d >= units[i].us) {
            int w = snprintf(buf + n, size - n, "%lld%s", (long long)(d / units[i].us),
                             units[i].unit);
            if (w < 0) break;
            n += (size_t)w;
            d %= units[i].us;
        }
    }
    return buf;
}

static void json_string(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_time(FILE *f, pgsched_time t)
{
    char buf[PGSCHED_TIME_STRING_MAX];
    if (t == 0 || !pgsched_time_format(t, 0, 1, buf, sizeof buf)) fputs("null", f);
    else json_string(f, buf);
}

/* An aligned table: cells collected row by row, printed with each column as wide as its
   widest cell (the last column is not padded). Control characters print as '?'. */
typedef struct table {
    char **cells;
    size_t ncols, count, cap;
} table;

static void out_of_memory(void)
{
    fputs("pgschedctl: out of memory\n", stderr);
    exit(EX_REFUSED);
}

static void table_add(table *t, const char *s)
{
    size_t n;
    char *c;
    if (t->count == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        char **p = (char **)realloc(t->cells, cap * sizeof *p);
        if (!p) out_of_memory();
        t->cells = p;
        t->cap = cap;
    }
    if (!s) s = "-";
    n = strlen(s);
    c = (char *)malloc(n + 1);
    if (!c) out_of_memory();
    memcpy(c, s, n + 1);
    for (n = 0; c[n]; n++)
        if ((unsigned char)c[n] < 0x20 || c[n] == 0x7f) c[n] = '?';
    t->cells[t->count++] = c;
}

static void table_addf(table *t, const char *fmt, ...) PGSCHED__PRINTF(2, 3);
static void table_addf(table *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    table_add(t, buf);
}

/* Display width of UTF-8 text: one column per code point (good enough for names). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) w++;
    return w;
}

/* Prints the table; `max_width` > 0 cuts each line to that many columns (a terminal). */
static void table_print(table *t, FILE *f, size_t max_width)
{
    size_t *w = (size_t *)calloc(t->ncols, sizeof *w), i, c;
    if (!w) out_of_memory();
    for (i = 0; i < t->count; i++) {
        size_t k = text_width(t->cells[i]);
        if (k > w[i % t->ncols]) w[i % t->ncols] = k;
    }
    for (i = 0; i < t->count; i += t->ncols) {
        size_t col = 0;
        for (c = 0; c < t->ncols && i + c < t->count; c++) {
            const char *s = t->cells[i + c];
            size_t k = text_width(s), pad = c + 1 < t->ncols ? w[c] - k + 2 : 0;
            if (max_width) {
                /* code points while they fit */
                for (; *s && col < max_width; col++) {
                    do fputc(*s++, f);
                    while (((unsigned char)*s & 0xc0) == 0x80);
                }
                for (; pad && col < max_width; pad--, col++) fputc(' ', f);
            } else {
                fputs(s, f);
                for (; pad; pad--) fputc(' ', f);
            }
        }
        fputc('\n', f);
    }
    free(w);
}

static void table_free(table *t)
{
    size_t i;
    for (i = 0; i < t->count; i++) free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* ---- connecting ---- */

static char g_tables[3][160]; /* the quoted, qualified jobs, runs and nodes tables */

/* A store on the cluster; `create` allows creating and migrating the tables. */
static int open_store(const opts *o, int create, pgsched_store **out)
{
    pgsched_pg_config cfg;
    pgsched_error e;
    pgsched_result r;
    memset(&cfg, 0, sizeof cfg);
    cfg.conninfo = o->dsn;
    cfg.schema = o->schema;
    cfg.prefix = o->prefix;
    cfg.no_create_schema = !create;
    cfg.pool_size = 1;
    r = pgsched_pg_store_create(&cfg, out, &e);
    if (r != PGSCHED_OK) {
        failed("configuration", &e, r);
        return EX_USAGE;
    }
    r = pgsched_store_setup(*out, &e);
    if (r != PGSCHED_OK) {
        int ex = failed(create ? "migrating" : "opening the tables", &e, r);
        pgsched_store_destroy(*out);
        *out = NULL;
        return ex;
    }
    return EX_OK;
}

/* A plain libpq connection for the read-only views, once the store checked the schema. */
static int open_conn(const opts *o, PGconn **out)
{
    pgsched_store *s;
    char redacted[512];
    int ex = open_store(o, 0, &s);
    if (ex != EX_OK) return ex;
    pgsched_store_destroy(s);
    *out = PQconnectdb(o->dsn);
    if (PQstatus(*out) != CONNECTION_OK) {
        pgsched_conninfo_redact(o->dsn, redacted, sizeof redacted);
        fprintf(stderr, "pgschedctl: cannot connect to \"%s\": %s", redacted,
                PQerrorMessage(*out));
        PQfinish(*out);
        *out = NULL;
        return EX_USAGE;
    }
    return EX_OK;
}

/* Runs a read-only query; values as bound text parameters. NULL (and a message) on failure. */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *vals)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgschedctl: query failed: %s", PQerrorMessage(c));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* A query from a template in which {J}, {R} and {N} stand for the jobs, runs and nodes
   tables (validated identifiers, quoted). */
static PGresult *query_t(PGconn *c, const char *tmpl, int n, const char *const *vals)
{
    size_t len = 0, cap = strlen(tmpl) + 1;
    const char *t;
    char *sql, *p;
    PGresult *res;
    for (t = tmpl; *t; t++)
        if (t[0] == '{' && t[1] && t[2] == '}') cap += sizeof g_tables[0];
    sql = (char *)malloc(cap);
    if (!sql) out_of_memory();
    for (t = tmpl, p = sql; *t;) {
        const char *rep = NULL;
        if (t[0] == '{' && t[1] && t[2] == '}')
            rep = t[1] == 'J' ? g_tables[0] : t[1] == 'R' ? g_tables[1] : t[1] == 'N' ? g_tables[2] : NULL;
        if (rep) {
            len = strlen(rep);
            memcpy(p, rep, len);
            p += len;
            t += 3;
        } else {
            *p++ = *t++;
        }
    }
    *p = '\0';
    res = query(c, sql, n, vals);
    free(sql);
    return res;
}

static int64_t col_i64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static const char *col_s(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* Microseconds since the epoch of a timestamptz expression, as SQL. */
#define US(x) "((extract(epoch from " x ") * 1000000)::int8)"

/* ---- list, show, history ---- */

static const char *schedule_text(const pgsched_job *j, char *buf, size_t size)
{
    char d[64];
    switch (j->kind) {
    case PGSCHED_SCHEDULE_CRON: snprintf(buf, size, "%s", j->cron ? j->cron : "?"); break;
    case PGSCHED_SCHEDULE_INTERVAL:
        snprintf(buf, size, "every %s", fmt_duration(j->every, d, sizeof d));
        break;
    case PGSCHED_SCHEDULE_ONCE: snprintf(buf, size, "once"); break;
    case PGSCHED_SCHEDULE_CUSTOM: snprintf(buf, size, "custom"); break;
    default: snprintf(buf, size, "?"); break;
    }
    return buf;
}

static const char *kind_string(pgsched_schedule_kind k)
{
    switch (k) {
    case PGSCHED_SCHEDULE_ONCE: return "once";
    case PGSCHED_SCHEDULE_CRON: return "cron";
    case PGSCHED_SCHEDULE_INTERVAL: return "interval";
    case PGSCHED_SCHEDULE_CUSTOM: return "custom";
    }
    return "unknown";
}

static void job_json(FILE *f, const pgsched_job *j)
{
    fputs("{\"name\":", f);
    json_string(f, j->name);
    fputs(",\"key\":", f);
    json_string(f, j->key);
    fprintf(f, ",\"status\":\"%s\",\"kind\":\"%s\",\"cron\":", pgsched_status_string(j->status),
            kind_string(j->kind));
    json_string(f, j->cron);
    fputs(",\"every_us\":", f);
    if (j->kind == PGSCHED_SCHEDULE_INTERVAL) fprintf(f, "%lld", (long long)j->every);
    else fputs("null", f);
    /* params is JSON text the store validated: written as it is */
    fprintf(f, ",\"params\":%s,\"max_retries\":%d,\"attempt\":%d,\"next_run\":",
            j->params ? j->params : "{}", j->max_retries, j->attempt);
    json_time(f, j->next_run);
    fputs(",\"owner\":", f);
    json_string(f, j->owner);
    fputs(",\"heartbeat_at\":", f);
    json_time(f, j->heartbeat_at);
    fputs(",\"started_at\":", f);
    json_time(f, j->started_at);
    fputs(",\"finished_at\":", f);
    json_time(f, j->finished_at);
    fprintf(f, ",\"cancel_requested\":%s,\"remove_requested\":%s,\"change_pending\":%s",
            j->cancel_requested ? "true" : "false", j->remove_requested ? "true" : "false",
            j->change_pending ? "true" : "false");
    fputs(",\"last_error\":", f);
    json_string(f, j->last_error);
    fprintf(f, ",\"runs\":%lld,\"failures\":%lld,\"version\":%lld,\"created_at\":",
            (long long)j->runs, (long long)j->failures, (long long)j->version);
    json_time(f, j->created_at);
    fputs(",\"updated_at\":", f);
    json_time(f, j->updated_at);
    fputc('}', f);
}

static int parse_count(const opts *o, const char *what, const char *text, long max, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < 1 || v > max)
        return invalid(o, "%s needs a whole number from 1 to %ld, got \"%s\"", what, max,
                           text);
    *out = v;
    return EX_OK;
}

static int parse_status(const opts *o, const char *text, pgsched_status *out)
{
    int s;
    for (s = PGSCHED_STATUS_PENDING; s <= PGSCHED_STATUS_CANCELLED; s++)
        if (strcmp(text, pgsched_status_string((pgsched_status)s)) == 0) {
            *out = (pgsched_status)s;
            return EX_OK;
        }
    return invalid(o, "--status: \"%s\" is not one of pending, running, completed, failed, "
                          "cancelled",
                       text);
}

static int check_name_key(const opts *o, const char *name, const char *key)
{
    pgsched_error e;
    if (pgsched_validate_name(name, &e) != PGSCHED_OK) return invalid(o, "NAME: %s", e.message);
    if (key && pgsched_validate_key(key, &e) != PGSCHED_OK)
        return invalid(o, "KEY: %s", e.message);
    return EX_OK;
}

static int cmd_list(opts *o)
{
    pgsched_list_filter f;
    pgsched_job_list page;
    pgsched_store *s;
    pgsched_error e;
    pgsched_result r;
    table t;
    long limit = 0;
    size_t total = 0, i;
    char *after_name = NULL, *after_key = NULL;
    int ex, first = 1;
    memset(&f, 0, sizeof f);
    memset(&t, 0, sizeof t);
    t.ncols = 9;
    if (o->limit && (ex = parse_count(o, "--limit", o->limit, 1000000000L, &limit)) != EX_OK)
        return ex;
    if (o->status && (ex = parse_status(o, o->status, &f.status)) != EX_OK) return ex;
    if (o->name && pgsched_validate_name(o->name, &e) != PGSCHED_OK)
        return invalid(o, "--name: %s", e.message);
    if ((ex = open_store(o, 0, &s)) != EX_OK) return ex;
    f.name = o->name;
    pgsched_job_list_init(&page, NULL);
    if (o->json) {
        fputc('[', stdout);
    } else {
        const char *h[] = {"NAME", "KEY", "STATUS", "SCHEDULE", "NEXT RUN", "ATTEMPT", "RUNS",
                           "FAILURES", "OWNER"};
        for (i = 0; i < 9; i++) table_add(&t, h[i]);
    }
    /* pages in (name, key) order: a large table is never held whole */
    for (;;) {
        size_t want = 1000;
        if (limit && (size_t)limit - total < want) want = (size_t)limit - total;
        if (want == 0) break;
        f.limit = want;
        f.after_name = after_name;
        f.after_key = after_key;
        pgsched_job_list_clear(&page);
        r = pgsched_store_list(s, &f, &page, &e);
        if (r != PGSCHED_OK) {
            ex = failed("listing", &e, r);
            goto done;
        }
        for (i = 0; i < page.count; i++) {
            const pgsched_job *j = &page.items[i];
            char sched[1100], tb[PGSCHED_TIME_STRING_MAX];
            if (o->json) {
                fputs(first ? "\n" : ",\n", stdout);
                job_json(stdout, j);
                first = 0;
                continue;
            }
            table_add(&t, j->name);
            table_add(&t, j->key);
            table_add(&t, pgsched_status_string(j->status));
            table_add(&t, schedule_text(j, sched, sizeof sched));
            table_add(&t, j->status == PGSCHED_STATUS_PENDING || j->status == PGSCHED_STATUS_RUNNING
                              ? fmt_time(j->next_run, tb)
                              : "-");
            table_addf(&t, "%d", j->attempt);
            table_addf(&t, "%lld", (long long)j->runs);
            table_addf(&t, "%lld", (long long)j->failures);
            table_add(&t, j->owner);
        }
        total += page.count;
        if (page.count < want) break;
        free(after_name);
        free(after_key);
        after_name = strdup(page.items[page.count - 1].name);
        after_key = strdup(page.items[page.count - 1].key);
        if (!after_name || !after_key) out_of_memory();
    }
    if (o->json) fputs(first ? "]\n" : "\n]\n", stdout);
    else table_print(&t, stdout, 0);
    ex = EX_OK;
done:
    free(after_name);
    free(after_key);
    table_free(&t);
    pgsched_job_list_free(&page);
    pgsched_store_destroy(s);
    return ex;
}

static int cmd_show(opts *o)
{
    pgsched_job_list l;
    pgsched_store *s;
    pgsched_error e;
    pgsched_result r;
    int ex;
    if ((ex = check_name_key(o, o->args[0], o->args[1])) != EX_OK) return ex;
    if ((ex = open_store(o, 0, &s)) != EX_OK) return ex;
    pgsched_job_list_init(&l, NULL);
    r = pgsched_store_get(s, o->args[0], o->args[1], &l, &e);
    if (r != PGSCHED_OK) {
        ex = failed("reading the job", &e, r);
    } else if (l.count == 0) {
        fprintf(stderr, "pgschedctl: no job %s/%s\n", o->args[0], o->args[1]);
        ex = EX_REFUSED;
    } else if (o->json) {
        job_json(stdout, &l.items[0]);
        fputc('\n', stdout);
    } else {
        const pgsched_job *j = &l.items[0];
        char sched[1100], tb[PGSCHED_TIME_STRING_MAX];
        table t;
        memset(&t, 0, sizeof t);
        t.ncols = 2;
#define ROW(label, ...) (table_add(&t, label), table_addf(&t, __VA_ARGS__))
        ROW("name", "%s", j->name);
        ROW("key", "%s", j->key);
        ROW("status", "%s", pgsched_status_string(j->status));
        ROW("schedule", "%s", schedule_text(j, sched, sizeof sched));
        ROW("params", "%s", j->params ? j->params : "{}");
        ROW("max_retries", "%d", j->max_retries);
        ROW("attempt", "%d", j->attempt);
        ROW("next_run", "%s", fmt_time(j->next_run, tb));
        ROW("owner", "%s", j->owner ? j->owner : "-");
        ROW("heartbeat_at", "%s", fmt_time(j->heartbeat_at, tb));
        ROW("started_at", "%s", fmt_time(j->started_at, tb));
        ROW("finished_at", "%s", fmt_time(j->finished_at, tb));
        ROW("cancel_requested", "%s", j->cancel_requested ? "yes" : "no");
        ROW("remove_requested", "%s", j->remove_requested ? "yes" : "no");
        ROW("change_pending", "%s", j->change_pending ? "yes" : "no");
        ROW("last_error", "%s", j->last_error ? j->last_error : "-");
        ROW("runs", "%lld", (long long)j->runs);
        ROW("failures", "%lld", (long long)j->failures);
        ROW("version", "%lld", (long long)j->version);
        ROW("created_at", "%s", fmt_time(j->created_at, tb));
        ROW("updated_at", "%s", fmt_time(j->updated_at, tb));
#undef ROW
        table_print(&t, stdout, 0);
        table_free(&t);
    }
    pgsched_job_list_free(&l);
    pgsched_store_destroy(s);
    return ex;
}

static int cmd_history(opts *o)
{
    pgsched_run_list l;
    pgsched_store *s;
    pgsched_error e;
    pgsched_result r;
    long limit = 20;
    size_t i;
    int ex;
    const char *name = o->nargs > 0 ? o->args[0] : NULL, *key = o->nargs > 1 ? o->args[1] : NULL;
    if (o->limit && (ex = parse_count(o, "--limit", o->limit, 1000000000L, &limit)) != EX_OK)
        return ex;
    if (name && (ex = check_name_key(o, name, key)) != EX_OK) return ex;
    if ((ex = open_store(o, 0, &s)) != EX_OK) return ex;
    pgsched_run_list_init(&l, NULL);
    r = pgsched_store_history(s, name, key, (size_t)limit, &l, &e);
    if (r != PGSCHED_OK) {
        ex = failed("reading the history", &e, r);
    } else if (o->json) {
        fputc('[', stdout);
        for (i = 0; i < l.count; i++) {
            const pgsched_run_record *x = &l.items[i];
            fprintf(stdout, "%s\n{\"id\":%lld,\"name\":", i ? "," : "", (long long)x->id);
            json_string(stdout, x->name);
            fputs(",\"key\":", stdout);
            json_string(stdout, x->key);
            fputs(",\"node\":", stdout);
            json_string(stdout, x->node);
            fprintf(stdout, ",\"attempt\":%d,\"started_at\":", x->attempt);
            json_time(stdout, x->started_at);
            fputs(",\"finished_at\":", stdout);
            json_time(stdout, x->finished_at);
            fprintf(stdout, ",\"outcome\":\"%s\",\"error\":", pgsched_outcome_string(x->outcome));
            json_string(stdout, x->error);
            fputc('}', stdout);
        }
        fputs(l.count ? "\n]\n" : "]\n", stdout);
    } else {
        table t;
        const char *h[] = {"ID", "NAME", "KEY", "NODE", "ATTEMPT", "STARTED", "SECONDS",
                           "OUTCOME", "ERROR"};
        memset(&t, 0, sizeof t);
        t.ncols = 9;
        for (i = 0; i < 9; i++) table_add(&t, h[i]);
        for (i = 0; i < l.count; i++) {
            const pgsched_run_record *x = &l.items[i];
            char tb[PGSCHED_TIME_STRING_MAX];
            table_addf(&t, "%lld", (long long)x->id);
            table_add(&t, x->name);
            table_add(&t, x->key);
            table_add(&t, x->node);
            table_addf(&t, "%d", x->attempt);
            table_add(&t, fmt_time(x->started_at, tb));
            if (x->started_at)
                table_addf(&t, "%.3f", (double)(x->finished_at - x->started_at) / 1e6);
            else
                table_add(&t, "-");
            table_add(&t, pgsched_outcome_string(x->outcome));
            table_add(&t, x->error);
        }
        table_print(&t, stdout, 0);
        table_free(&t);
    }
    pgsched_run_list_free(&l);
    pgsched_store_destroy(s);
    return ex;
}

/* ---- nodes, stats, top: read from the tables ---- */

#define NODES_SQL                                                                                 \
    "SELECT id, host, pid, CASE WHEN stopped_at IS NOT NULL THEN 'stopped' "                      \
    "WHEN last_seen >= now() - interval '1 minute' THEN 'up' ELSE 'silent' END, "                 \
    "extract(epoch from now() - last_seen)::float8, " US("started_at") ", "                       \
    "array_to_string(names, ', '), array_to_json(names) FROM {N} "                                \
    "ORDER BY stopped_at IS NOT NULL, started_at DESC, id"

static void nodes_table(PGresult *res, table *t)
{
    int i;
    const char *h[] = {"ID", "HOST", "PID", "STATE", "LAST SEEN", "STARTED", "TYPES"};
    t->ncols = 7;
    for (i = 0; i < 7; i++) table_add(t, h[i]);
    for (i = 0; i < PQntuples(res); i++) {
        char tb[PGSCHED_TIME_STRING_MAX];
        table_add(t, col_s(res, i, 0));
        table_add(t, col_s(res, i, 1));
        table_add(t, col_s(res, i, 2));
        table_add(t, col_s(res, i, 3));
        table_addf(t, "%.1fs ago", atof(PQgetvalue(res, i, 4)));
        table_add(t, fmt_time(col_i64(res, i, 5), tb));
        table_add(t, col_s(res, i, 6));
    }
}

static int cmd_nodes(opts *o)
{
    PGconn *c;
    PGresult *res;
    int ex = open_conn(o, &c), i;
    if (ex != EX_OK) return ex;
    res = query_t(c, NODES_SQL, 0, NULL);
    if (!res) {
        PQfinish(c);
        return EX_REFUSED;
    }
    if (o->json) {
        fputc('[', stdout);
        for (i = 0; i < PQntuples(res); i++) {
            fprintf(stdout, "%s\n{\"id\":", i ? "," : "");
            json_string(stdout, col_s(res, i, 0));
            fputs(",\"host\":", stdout);
            json_string(stdout, col_s(res, i, 1));
            fprintf(stdout, ",\"pid\":%lld,\"state\":\"%s\",\"last_seen_seconds_ago\":%.3f,"
                            "\"started_at\":",
                    (long long)col_i64(res, i, 2), col_s(res, i, 3), atof(PQgetvalue(res, i, 4)));
            json_time(stdout, col_i64(res, i, 5));
            /* array_to_json wrote it: valid JSON */
            fprintf(stdout, ",\"types\":%s}", col_s(res, i, 7) ? col_s(res, i, 7) : "[]");
        }
        fputs(PQntuples(res) ? "\n]\n" : "]\n", stdout);
    } else {
        table t;
        memset(&t, 0, sizeof t);
        nodes_table(res, &t);
        table_print(&t, stdout, 0);
        table_free(&t);
    }
    PQclear(res);
    PQfinish(c);
    return EX_OK;
}

#define STATUS_SQL                                                                                \
    "count(*), "                                                                                  \
    "count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'running'), "   \
    "count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'), "  \
    "count(*) FILTER (WHERE status = 'cancelled'), "                                              \
    "count(*) FILTER (WHERE status = 'pending' AND next_run <= now()), "                          \
    "coalesce(extract(epoch from now() - min(next_run) FILTER (WHERE status = 'pending' "         \
    "AND next_run <= now())), 0)::float8"
#define STATS_TOTAL_SQL "SELECT " STATUS_SQL " FROM {J}"
#define STATS_TYPES_SQL "SELECT name, " STATUS_SQL " FROM {J} GROUP BY name ORDER BY name"
#define STATS_RUNS_SQL                                                                            \
    "SELECT count(*) FILTER (WHERE finished_at >= now() - interval '1 minute'), "                 \
    "count(*) FILTER (WHERE finished_at >= now() - interval '1 minute' "                          \
    "AND outcome IN ('failure', 'stalled')), count(*), "                                          \
    "count(*) FILTER (WHERE outcome IN ('failure', 'stalled')) "                                  \
    "FROM {R} WHERE finished_at >= now() - interval '1 hour'"
#define STATS_NODES_SQL                                                                           \
    "SELECT count(*) FILTER (WHERE stopped_at IS NULL "                                           \
    "AND last_seen >= now() - interval '1 minute'), count(*), " US("now()") " FROM {N}"

static const char *const status_names[] = {"total", "pending", "running", "completed", "failed",
                                           "cancelled", "due"};

/* The four stats queries; NULL in *res on failure (all cleared). */
static int stats_query(PGconn *c, PGresult *res[4])
{
    res[0] = query_t(c, STATS_TOTAL_SQL, 0, NULL);
    res[1] = res[0] ? query_t(c, STATS_TYPES_SQL, 0, NULL) : NULL;
    res[2] = res[1] ? query_t(c, STATS_RUNS_SQL, 0, NULL) : NULL;
    res[3] = res[2] ? query_t(c, STATS_NODES_SQL, 0, NULL) : NULL;
    if (res[3]) return 1;
    PQclear(res[0]);
    PQclear(res[1]);
    PQclear(res[2]);
    return 0;
}

static void stats_text(PGresult *res[4], FILE *f)
{
    table t;
    int i, k;
    fprintf(f, "jobs: %lld (due now: %lld, the oldest due for %.1fs)\n",
            (long long)col_i64(res[0], 0, 0), (long long)col_i64(res[0], 0, 6),
            atof(PQgetvalue(res[0], 0, 7)));
    fprintf(f, "runs: %lld in the last minute (%lld failed), %lld in the last hour (%lld failed)\n",
            (long long)col_i64(res[2], 0, 0), (long long)col_i64(res[2], 0, 1),
            (long long)col_i64(res[2], 0, 2), (long long)col_i64(res[2], 0, 3));
    fprintf(f, "nodes: %lld up (seen in the last minute), %lld known\n\n",
            (long long)col_i64(res[3], 0, 0), (long long)col_i64(res[3], 0, 1));
    memset(&t, 0, sizeof t);
    t.ncols = 8;
    table_add(&t, "TYPE");
    for (k = 0; k < 7; k++) {
        char h[16];
        for (i = 0; status_names[k][i]; i++) h[i] = (char)(status_names[k][i] - 'a' + 'A');
        h[i] = '\0';
        table_add(&t, h);
    }
    for (i = 0; i < PQntuples(res[1]); i++) {
        table_add(&t, col_s(res[1], i, 0));
        for (k = 0; k < 7; k++) table_add(&t, col_s(res[1], i, k + 1));
    }
    table_add(&t, "(all)");
    for (k = 0; k < 7; k++) table_add(&t, col_s(res[0], 0, k));
    table_print(&t, f, 0);
    table_free(&t);
}

static void stats_json_counts(PGresult *r, int row, int first_col)
{
    int k;
    for (k = 0; k < 7; k++)
        fprintf(stdout, "%s\"%s\":%lld", k ? "," : "", status_names[k],
                (long long)col_i64(r, row, first_col + k));
    fprintf(stdout, ",\"oldest_due_seconds\":%.3f", atof(PQgetvalue(r, row, first_col + 7)));
}

static int cmd_stats(opts *o)
{
    PGconn *c;
    PGresult *res[4];
    int ex = open_conn(o, &c), i;
    if (ex != EX_OK) return ex;
    if (!stats_query(c, res)) {
        PQfinish(c);
        return EX_REFUSED;
    }
    if (o->json) {
        fputs("{\"jobs\":{", stdout);
        stats_json_counts(res[0], 0, 0);
        fputs("},\"types\":{", stdout);
        for (i = 0; i < PQntuples(res[1]); i++) {
            if (i) fputc(',', stdout);
            json_string(stdout, col_s(res[1], i, 0));
            fputs(":{", stdout);
            stats_json_counts(res[1], i, 1);
            fputc('}', stdout);
        }
        fprintf(stdout, "},\"runs_last_minute\":%lld,\"failures_last_minute\":%lld,"
                        "\"runs_last_hour\":%lld,\"failures_last_hour\":%lld,"
                        "\"nodes_up\":%lld,\"nodes_known\":%lld}\n",
                (long long)col_i64(res[2], 0, 0), (long long)col_i64(res[2], 0, 1),
                (long long)col_i64(res[2], 0, 2), (long long)col_i64(res[2], 0, 3),
                (long long)col_i64(res[3], 0, 0), (long long)col_i64(res[3], 0, 1));
    } else {
        stats_text(res, stdout);
    }
    for (i = 0; i < 4; i++) PQclear(res[i]);
    PQfinish(c);
    return EX_OK;
}

/* ---- top ---- */

#define TOP_ROWS "10"
#define TOP_RUNNING_SQL                                                                           \
    "SELECT name, key, owner, attempt, extract(epoch from now() - started_at)::float8, "          \
    "cancel_requested FROM {J} WHERE status = 'running' ORDER BY started_at LIMIT " TOP_ROWS
#define TOP_DUE_SQL                                                                               \
    "SELECT name, key, " US("next_run") ", extract(epoch from next_run - now())::float8, "        \
    "attempt FROM {J} WHERE status = 'pending' ORDER BY next_run LIMIT " TOP_ROWS
#define TOP_FAILED_SQL                                                                            \
    "SELECT " US("finished_at") ", name, key, node, attempt, outcome, error FROM {R} "            \
    "WHERE outcome IN ('failure', 'stalled') ORDER BY id DESC LIMIT " TOP_ROWS
#define TOP_NODES_SQL NODES_SQL " LIMIT " TOP_ROWS

static volatile sig_atomic_t top_stop;

static void on_stop(int sig)
{
    (void)sig;
    top_stop = 1;
}

/* One frame of the view into `f`; lines cut to `width` columns when nonzero. */
static int top_frame(PGconn *c, FILE *f, size_t width)
{
    PGresult *st[4], *r;
    table t;
    int i;
    char tb[PGSCHED_TIME_STRING_MAX];
    if (PQstatus(c) != CONNECTION_OK) PQreset(c);
    if (!stats_query(c, st)) {
        fprintf(f, "pgschedctl top: the database cannot be read: %s(retrying every second)\n",
                PQerrorMessage(c));
        return 0;
    }
    fprintf(f, "pgschedctl top  %s  (Ctrl-C to quit)\n", fmt_time(col_i64(st[3], 0, 2), tb));
    fprintf(f, "jobs %lld: %lld pending (%lld due), %lld running, %lld completed, %lld failed, "
               "%lld cancelled\n",
            (long long)col_i64(st[0], 0, 0), (long long)col_i64(st[0], 0, 1),
            (long long)col_i64(st[0], 0, 6), (long long)col_i64(st[0], 0, 2),
            (long long)col_i64(st[0], 0, 3), (long long)col_i64(st[0], 0, 4),
            (long long)col_i64(st[0], 0, 5));
    fprintf(f, "runs: %lld in the last minute (%lld failed), %lld in the last hour (%lld failed)\n",
            (long long)col_i64(st[2], 0, 0), (long long)col_i64(st[2], 0, 1),
            (long long)col_i64(st[2], 0, 2), (long long)col_i64(st[2], 0, 3));
    for (i = 0; i < 4; i++) PQclear(st[i]);

    fputs("\nNODES\n", f);
    if ((r = query_t(c, TOP_NODES_SQL, 0, NULL)) != NULL) {
        memset(&t, 0, sizeof t);
        nodes_table(r, &t);
        table_print(&t, f, width);
        table_free(&t);
        PQclear(r);
    }

    fputs("\nRUNNING\n", f);
    if ((r = query_t(c, TOP_RUNNING_SQL, 0, NULL)) != NULL) {
        const char *h[] = {"NAME", "KEY", "NODE", "ATTEMPT", "FOR", "CANCEL"};
        memset(&t, 0, sizeof t);
        t.ncols = 6;
        for (i = 0; i < 6; i++) table_add(&t, h[i]);
        for (i = 0; i < PQntuples(r); i++) {
            table_add(&t, col_s(r, i, 0));
            table_add(&t, col_s(r, i, 1));
            table_add(&t, col_s(r, i, 2));
            table_add(&t, col_s(r, i, 3));
            table_addf(&t, "%.1fs", atof(PQgetvalue(r, i, 4)));
            table_add(&t, strcmp(PQgetvalue(r, i, 5), "t") == 0 ? "requested" : "-");
        }
        table_print(&t, f, width);
        table_free(&t);
        PQclear(r);
    }

    fputs("\nDUE SOON\n", f);
    if ((r = query_t(c, TOP_DUE_SQL, 0, NULL)) != NULL) {
        const char *h[] = {"NAME", "KEY", "NEXT RUN", "IN", "ATTEMPT"};
        memset(&t, 0, sizeof t);
        t.ncols = 5;
        for (i = 0; i < 5; i++) table_add(&t, h[i]);
        for (i = 0; i < PQntuples(r); i++) {
            double in = atof(PQgetvalue(r, i, 3));
            table_add(&t, col_s(r, i, 0));
            table_add(&t, col_s(r, i, 1));
            table_add(&t, fmt_time(col_i64(r, i, 2), tb));
            char d[64];
            pgsched_duration us = (pgsched_duration)((in < 0 ? -in : in) * 1e6);
            fmt_duration(us - us % PGSCHED_SECOND, d, sizeof d);
            table_addf(&t, "%s%s", in < 0 ? "overdue " : "", d);
            table_add(&t, col_s(r, i, 4));
        }
        table_print(&t, f, width);
        table_free(&t);
        PQclear(r);
    }

    fputs("\nRECENT FAILURES\n", f);
    if ((r = query_t(c, TOP_FAILED_SQL, 0, NULL)) != NULL) {
        const char *h[] = {"FINISHED", "NAME", "KEY", "NODE", "ATTEMPT", "OUTCOME", "ERROR"};
        memset(&t, 0, sizeof t);
        t.ncols = 7;
        for (i = 0; i < 7; i++) table_add(&t, h[i]);
        for (i = 0; i < PQntuples(r); i++) {
            int k;
            table_add(&t, fmt_time(col_i64(r, i, 0), tb));
            for (k = 1; k < 7; k++) table_add(&t, col_s(r, i, k));
        }
        table_print(&t, f, width);
        table_free(&t);
        PQclear(r);
    }
    return 1;
}

static int cmd_top(opts *o)
{
    PGconn *c;
    long count = 0, n;
    int ex, tty = isatty(STDOUT_FILENO);
    struct sigaction sa;
    if (o->count && (ex = parse_count(o, "-n", o->count, 1000000000L, &count)) != EX_OK) return ex;
    if ((ex = open_conn(o, &c)) != EX_OK) return ex;
    if (!tty) {
        /* not a terminal: one plain frame */
        ex = top_frame(c, stdout, 0) ? EX_OK : PQstatus(c) != CONNECTION_OK ? EX_USAGE : EX_REFUSED;
        PQfinish(c);
        return ex;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    fputs("\033[?1049h", stdout); /* the terminal's alternate screen, as top(1) uses */
    for (n = 0; !top_stop && (count == 0 || n < count); n++) {
        char *frame = NULL;
        size_t len = 0, width = 0;
        struct winsize ws;
        FILE *mf = open_memstream(&frame, &len);
        struct timespec ts;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width = ws.ws_col;
        if (!mf) break;
        top_frame(c, mf, width);
        fclose(mf);
        /* home, draw over the old frame, clear what is left below it */
        fputs("\033[H", stdout);
        {
            char *line = frame, *nl;
            while (line && *line) {
                nl = strchr(line, '\n');
                fwrite(line, 1, nl ? (size_t)(nl - line) : strlen(line), stdout);
                fputs("\033[K\n", stdout);
                line = nl ? nl + 1 : NULL;
            }
        }
        fputs("\033[J", stdout);
        fflush(stdout);
        free(frame);
        if (count && n + 1 >= count) break;
        ts.tv_sec = 1;
        ts.tv_nsec = 0;
        while (!top_stop && nanosleep(&ts, &ts) != 0) {
        }
    }
    fputs("\033[?1049l", stdout);
    fflush(stdout);
    PQfinish(c);
    return EX_OK;
}

/* ---- changes ---- */

static int cmd_schedule(opts *o)
{
    pgsched_schedule_request q;
    pgsched_schedule_info out;
    pgsched_store *s;
    pgsched_error e;
    pgsched_result r;
    pgsched_cron *cron = NULL;
    pgsched_time now, at = 0;
    char tb[PGSCHED_TIME_STRING_MAX];
    long retries = 3;
    int ex, kinds = (o->cron != NULL) + (o->every != NULL) + (o->now != 0);
    memset(&q, 0, sizeof q);
    if ((ex = check_name_key(o, o->args[0], o->args[1])) != EX_OK) return ex;
    if (kinds + (o->at && !o->cron && !o->every) != 1)
        return usage_error(o, "schedule needs exactly one of --cron, --every, --at, --now "
                              "(--at may go with --cron or --every to set the first run)");
    if (o->now && o->at) return usage_error(o, "--now and --at exclude each other");
    if (o->at && pgsched_time_parse(o->at, &at, &e) != PGSCHED_OK)
        return invalid(o, "--at: %s", e.message);
    if (o->every && pgsched_duration_parse(o->every, &q.every, &e) != PGSCHED_OK)
        return invalid(o, "--every: %s", e.message);
    if (o->cron && (r = pgsched_cron_parse(o->cron, NULL, &cron, &e)) != PGSCHED_OK) {
        fprintf(stderr, "pgschedctl: --cron: %s\n", e.message);
        return EX_REFUSED;
    }
    if (o->params && pgsched_validate_json(o->params, &e) != PGSCHED_OK) {
        pgsched_cron_free(cron);
        return invalid(o, "--params: %s", e.message);
    }
    if (o->max_retries) {
        char *end;
        errno = 0;
        retries = strtol(o->max_retries, &end, 10);
        if (end == o->max_retries || *end || errno || retries < 0 || retries > 1000000) {
            pgsched_cron_free(cron);
            return invalid(o, "--max-retries needs a whole number from 0 to 1000000, got "
                                  "\"%s\"", o->max_retries);
        }
    }
    if ((ex = open_store(o, 0, &s)) != EX_OK) {
        pgsched_cron_free(cron);
        return ex;
    }
    q.name = o->args[0];
    q.key = o->args[1];
    q.params = o->params;
    q.max_retries = (int)retries;
    q.apply_after_run = o->after_run;
    if (cron && pgsched_cron_interval(cron) > 0) {
        q.kind = PGSCHED_SCHEDULE_INTERVAL; /* "@every DUR" is an interval, as in the library */
        q.every = pgsched_cron_interval(cron);
    } else if (cron) {
        q.kind = PGSCHED_SCHEDULE_CRON;
        q.cron = o->cron;
    } else if (o->every) {
        q.kind = PGSCHED_SCHEDULE_INTERVAL;
    } else {
        q.kind = PGSCHED_SCHEDULE_ONCE;
    }
    /* The first run is on the database's clock, as a node computes it: the database adds a
       delay to its own now (--every: one interval; --now: none); only a cron expression's
       next occurrence needs that clock read here. */
    if (at) q.next_run = at;
    else if (q.kind == PGSCHED_SCHEDULE_INTERVAL) q.delay = q.every;
    else if (q.kind == PGSCHED_SCHEDULE_CRON) {
        r = pgsched_store_now(s, &now, &e);
        if (r != PGSCHED_OK) {
            ex = failed("reading the database clock", &e, r);
            goto done;
        }
        if (pgsched_cron_next(cron, now, &q.next_run) != PGSCHED_OK) {
            fprintf(stderr, "pgschedctl: --cron: the schedule has no run after now\n");
            ex = EX_REFUSED;
            goto done;
        }
    }
    memset(&out, 0, sizeof out);
    r = pgsched_store_schedule(s, &q, &out, &e);
    if (r != PGSCHED_OK) {
        if (r == PGSCHED_ERR_RUNNING)
            fprintf(stderr, "pgschedctl: %s/%s is running; --after-run applies the change when "
                            "its run ends\n", q.name, q.key);
        ex = r == PGSCHED_ERR_RUNNING ? EX_REFUSED : failed("scheduling", &e, r);
        goto done;
    }
    if (o->json) {
        fputs("{\"name\":", stdout);
        json_string(stdout, q.name);
        fputs(",\"key\":", stdout);
        json_string(stdout, q.key);
        fprintf(stdout, ",\"created\":%s,\"deferred\":%s,\"old_status\":\"%s\",\"next_run\":",
                out.created ? "true" : "false", out.deferred ? "true" : "false",
                pgsched_status_string(out.old_status));
        json_time(stdout, out.next_run);
        fprintf(stdout, ",\"version\":%lld}\n", (long long)out.version);
    } else if (out.deferred) {
        printf("%s/%s is running: the new schedule applies when its run ends\n", q.name, q.key);
    } else {
        printf("%s %s/%s, next run %s\n", out.created ? "created" : "rescheduled", q.name, q.key,
               fmt_time(out.next_run, tb));
    }
    ex = EX_OK;
done:
    pgsched_cron_free(cron);
    pgsched_store_destroy(s);
    return ex;
}

/* cancel, trigger, remove: one call on (NAME, KEY) that returns a change outcome. */
typedef pgsched_result (*change_fn)(pgsched_store *, const char *, const char *, const char *,
                                    pgsched_change_info *, pgsched_error *);

static int change(opts *o, change_fn fn, const char *what, pgsched_change_info *out)
{
    pgsched_store *s;
    pgsched_error e;
    pgsched_result r;
    int ex;
    char node[80];
    if ((ex = check_name_key(o, o->args[0], o->args[1])) != EX_OK) return ex;
    if ((ex = open_store(o, 0, &s)) != EX_OK) return ex;
    /* the change is announced as made by this program (nodes see it in status events) */
    snprintf(node, sizeof node, "pgschedctl-%ld", (long)getpid());
    memset(out, 0, sizeof *out);
    r = fn(s, o->args[0], o->args[1], node, out, &e);
    pgsched_store_destroy(s);
    if (r == PGSCHED_ERR_NOT_FOUND) {
        fprintf(stderr, "pgschedctl: no job %s/%s\n", o->args[0], o->args[1]);
        return EX_REFUSED;
    }
    if (r != PGSCHED_OK) return failed(what, &e, r);
    return EX_OK;
}

static void change_json(const opts *o, const char *effect, const pgsched_change_info *out)
{
    fputs("{\"name\":", stdout);
    json_string(stdout, o->args[0]);
    fputs(",\"key\":", stdout);
    json_string(stdout, o->args[1]);
    fprintf(stdout, ",\"effect\":\"%s\",\"old_status\":\"%s\",\"new_status\":\"%s\",\"owner\":",
            effect, pgsched_status_string(out->old_status), pgsched_status_string(out->new_status));
    json_string(stdout, out->owner[0] ? out->owner : NULL);
    fputs(",\"next_run\":", stdout);
    json_time(stdout, out->next_run);
    fprintf(stdout, ",\"version\":%lld}\n", (long long)out->version);
}

static int cmd_cancel(opts *o)
{
    pgsched_change_info out;
    int ex = change(o, pgsched_store_cancel, "cancelling", &out);
    const char *effect;
    if (ex != EX_OK) return ex;
    effect = out.effect == PGSCHED_CHANGE_CANCELLED        ? "cancelled"
             : out.effect == PGSCHED_CHANGE_CANCEL_REQUESTED ? "requested"
                                                      : "none";
    if (o->json) change_json(o, effect, &out);
    if (out.effect == PGSCHED_CHANGE_CANCELLED) {
        if (!o->json) printf("cancelled %s/%s (it will not run)\n", o->args[0], o->args[1]);
        return EX_OK;
    }
    if (out.effect == PGSCHED_CHANGE_CANCEL_REQUESTED) {
        if (!o->json)
            printf("asked node %s to stop the run of %s/%s\n", out.owner, o->args[0], o->args[1]);
        return EX_OK;
    }
    fprintf(stderr, "pgschedctl: %s/%s is %s%s: nothing to cancel (remove deletes it)\n",
            o->args[0], o->args[1], pgsched_status_string(out.old_status),
            out.old_status == PGSCHED_STATUS_PENDING ? " and recurring" : "");
    return EX_REFUSED;
}

static int cmd_trigger(opts *o)
{
    pgsched_change_info out;
    char tb[PGSCHED_TIME_STRING_MAX];
    int ex = change(o, pgsched_store_trigger, "triggering", &out);
    if (ex != EX_OK) return ex;
    if (o->json) change_json(o, "triggered", &out);
    else printf("%s/%s is due now (%s)\n", o->args[0], o->args[1], fmt_time(out.next_run, tb));
    return EX_OK;
}

static int cmd_remove(opts *o)
{
    pgsched_change_info out;
    int ex = change(o, pgsched_store_remove, "removing", &out);
    if (ex != EX_OK) return ex;
    if (o->json)
        change_json(o, out.effect == PGSCHED_CHANGE_REMOVE_DEFERRED ? "deferred" : "removed", &out);
    else if (out.effect == PGSCHED_CHANGE_REMOVE_DEFERRED)
        printf("%s/%s is running on node %s: asked it to stop; removed when the run ends\n",
               o->args[0], o->args[1], out.owner);
    else
        printf("removed %s/%s\n", o->args[0], o->args[1]);
    return EX_OK;
}

static int cmd_migrate(opts *o)
{
    pgsched_store *s;
    int ex = open_store(o, 1, &s);
    if (ex != EX_OK) return ex;
    pgsched_store_destroy(s);
    printf("the tables in schema \"%s\" with prefix \"%s\" are at schema version %d\n",
           o->schema ? o->schema : "public", o->prefix ? o->prefix : "pgsched_",
           PGSCHED__PG_SCHEMA_VERSION);
    return EX_OK;
}

/* ---- the command line ---- */

/* The value of "--opt VALUE" or "--opt=VALUE" at argv[*i]; NULL when argv[*i] is not --opt.
   Sets *missing when the value is missing. */
static const char *option_value(const char *opt, int argc, char **argv, int *i, int *missing)
{
    size_t n = strlen(opt);
    *missing = 0;
    if (strncmp(argv[*i], opt, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        size_t field;
        int needs; /* the O_ bit a command must have to take it; 0 = global */
    } valued[] = {
        {"--dsn", offsetof(opts, dsn), 0},
        {"--schema", offsetof(opts, schema), 0},
        {"--prefix", offsetof(opts, prefix), 0},
        {"--name", offsetof(opts, name), O_NAME},
        {"--status", offsetof(opts, status), O_STATUS},
        {"--limit", offsetof(opts, limit), O_LIMIT},
        {"--cron", offsetof(opts, cron), O_SCHEDULE},
        {"--every", offsetof(opts, every), O_SCHEDULE},
        {"--at", offsetof(opts, at), O_SCHEDULE},
        {"--params", offsetof(opts, params), O_SCHEDULE},
        {"--max-retries", offsetof(opts, max_retries), O_SCHEDULE},
        {"-n", offsetof(opts, count), O_COUNT},
    };
    opts o;
    int i, only_args = 0, positional = 0, used = 0, help_cmd = 0;
    size_t k;
    pgsched_error e;
    memset(&o, 0, sizeof o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int missing = 0, known = 0;
        if (only_args || a[0] != '-' || a[1] == '\0') {
            if (positional == 0) {
                if (strcmp(a, "help") == 0) {
                    help_cmd = 1;
                    positional = 0;
                    if (i + 1 < argc) {
                        a = argv[++i];
                    } else {
                        fputs(main_usage, stdout);
                        return EX_OK;
                    }
                }
                for (k = 0; k < NCOMMANDS; k++)
                    if (strcmp(a, commands[k].name) == 0) o.cmd = &commands[k];
                if (!o.cmd) return usage_error(NULL, "unknown command \"%s\"", a);
                if (help_cmd) o.help = 1;
            } else if (o.nargs < 3) {
                o.args[o.nargs++] = a;
            } else {
                o.nargs++;
            }
            positional++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o.help = 1;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            o.json = 1;
            used |= O_JSON;
            continue;
        }
        if (strcmp(a, "--now") == 0) {
            o.now = 1;
            used |= O_SCHEDULE;
            continue;
        }
        if (strcmp(a, "--after-run") == 0) {
            o.after_run = 1;
            used |= O_SCHEDULE;
            continue;
        }
        for (k = 0; k < sizeof valued / sizeof valued[0]; k++) {
            if (strcmp(valued[k].name, "-n") == 0 && strncmp(a, "-n", 2) == 0 && a[2] != '\0' &&
                a[2] != '=') {
                v = a + 2; /* -n5 */
            } else {
                v = option_value(valued[k].name, argc, argv, &i, &missing);
            }
            if (v || missing) {
                if (missing) return usage_error(o.cmd ? &o : NULL, "%s needs a value", a);
                *(const char **)((char *)&o + valued[k].field) = v;
                used |= valued[k].needs;
                known = 1;
                break;
            }
        }
        if (!known) return usage_error(o.cmd ? &o : NULL, "unknown option %s", a);
    }
    if (!o.cmd) {
        if (o.help) {
            fputs(main_usage, stdout);
            return EX_OK;
        }
        return usage_error(NULL, "missing the command");
    }
    if (o.help) {
        fputs(o.cmd->usage, stdout);
        return EX_OK;
    }
    if (used & ~o.cmd->options) {
        for (k = 0; k < sizeof valued / sizeof valued[0]; k++)
            if (valued[k].needs & used & ~o.cmd->options &&
                *(const char **)((char *)&o + valued[k].field))
                return usage_error(&o, "%s does not take %s", o.cmd->name, valued[k].name);
        if (o.json && !(o.cmd->options & O_JSON))
            return usage_error(&o, "%s does not take --json", o.cmd->name);
        return usage_error(&o, "%s does not take --now or --after-run", o.cmd->name);
    }
    if (o.nargs < o.cmd->min_args || o.nargs > o.cmd->max_args) {
        if (o.cmd->min_args == o.cmd->max_args && o.cmd->max_args == 2)
            return usage_error(&o, "%s needs NAME and KEY, got %d argument%s", o.cmd->name,
                               o.nargs, o.nargs == 1 ? "" : "s");
        return usage_error(&o, "%s takes %s%d argument%s, got %d", o.cmd->name,
                           o.cmd->min_args == o.cmd->max_args ? "" : "at most ", o.cmd->max_args,
                           o.cmd->max_args == 1 ? "" : "s", o.nargs);
    }
    if (!o.dsn) o.dsn = getenv("PGSCHED_DSN");
    if (!o.dsn) o.dsn = ""; /* libpq's environment: PGHOST, PGDATABASE, ... */
    if (o.schema && pgsched_validate_identifier("--schema", o.schema, 63, &e) != PGSCHED_OK)
        return invalid(&o, "%s", e.message);
    if (o.prefix && pgsched_validate_identifier("--prefix", o.prefix, 49, &e) != PGSCHED_OK)
        return invalid(&o, "%s", e.message);
    snprintf(g_tables[0], sizeof g_tables[0], "\"%s\".\"%sjobs\"", o.schema ? o.schema : "public",
             o.prefix ? o.prefix : "pgsched_");
    snprintf(g_tables[1], sizeof g_tables[1], "\"%s\".\"%sruns\"", o.schema ? o.schema : "public",
             o.prefix ? o.prefix : "pgsched_");
    snprintf(g_tables[2], sizeof g_tables[2], "\"%s\".\"%snodes\"", o.schema ? o.schema : "public",
             o.prefix ? o.prefix : "pgsched_");
    i = o.cmd->fn(&o);
    if (fflush(stdout) != 0 && i == EX_OK) i = EX_REFUSED;
    return i;
}
