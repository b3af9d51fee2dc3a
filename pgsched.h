/* pgsched.h - v1.0.0 - distributed job scheduler for C on PostgreSQL - MIT licensed (see end)

   USAGE
     In exactly one C or C++ file:
         #define PGSCHED_IMPLEMENTATION
         #include "pgsched.h"
     Everywhere else just #include "pgsched.h". Link with -lpq -lpthread (or define
     PGSCHED_NO_LIBPQ and link with -lpthread only).

   QUICK START
     pgsched_config cfg = {0};  cfg.pg.conninfo = "dbname=app";    (zero = default, everywhere)
     pgsched_create(&cfg, &node, &err);
     type.name = "mail"; type.handler = send_mail;  pgsched_register(node, &type, &err);
     pgsched_start(node, &err);
     spec.name = "mail"; spec.key = "welcome-42"; spec.schedule.kind = PGSCHED_SCHEDULE_ONCE;
     pgsched_schedule_job(node, &spec, &err);        (any node of the cluster may run it)
     ...  pgsched_destroy(node);                    (graceful shutdown, then free)
   Every function returns a pgsched_result (0 = PGSCHED_OK) and fills an optional
   pgsched_error with a sentence. Handlers get a pgsched_run and return PGSCHED_RUN_SUCCESS or
   PGSCHED_RUN_FAILURE. README.md describes the model; examples/demo.c runs it.

   COMPILE-TIME OPTIONS (define before including the header)
     PGSCHED_IMPLEMENTATION   compile the implementation into this translation unit.
     PGSCHED_STATIC           make every function static (private to one translation unit).
     PGSCHED_NO_LIBPQ         leave out the PostgreSQL store; only libc and pthreads are needed.
     PGSCHED_MALLOC(sz)       \
     PGSCHED_REALLOC(p,sz)     > the default allocator; define all three or none.
     PGSCHED_FREE(p)          /
     PGSCHED_ASSERT(x)        assertion macro used by the implementation (default: assert()).
     PGSCHED_NO_MONOTONIC_COND  wait on realtime-clock condition variables (for systems without
                              pthread_condattr_setclock; defined automatically on macOS).

   CONTENTS (search for the banner text)
     The application API:
     [pgsched: basics]         version, results, errors, times, allocator
     [pgsched: cron]           the cron parser and the other schedule calculators
     [pgsched: jobs]           job rows, lists, run history, list filters, change effects
     [pgsched: stores]         creating and destroying the in-memory and PostgreSQL stores
     [pgsched: engine]         nodes, job types, the run context
     Only for writing or testing a store of your own (an application needs none of it):
     [pgsched: store author API]  the storage interface (vtable) and its contract, events,
                               the validating pgsched_store_* wrappers, validators
     The implementation follows ("[pgsched: cron] implementation", ...) in the order basics,
     cron, jobs, store author API (the wrappers), stores, engine; then the license.

   REVISION HISTORY
     1.0.0 (2026-12-03) API 1.0, the shape we keep: one pattern per enum (PGSCHED_STATUS_*,
                        PGSCHED_SCHEDULE_*, PGSCHED_CHANGE_*), outcome = a run's result,
                        *_request in and *_info out of store methods, remove (was
                        unschedule), pgsched_next_run (was pgsched_schedule_next), a zeroed
                        spec is one run due now, schedule.delay in the store's clock,
                        pgsched_get returns one job, cfg.pg nests the PostgreSQL config,
                        pgsched_get_config, an injectable engine clock, the store contract
                        as rules S1..S14 with a conformance harness. Schema version 3.
     0.1.0 (2026-11-26) first release: cron engine with time zones, stores, engine.
*/
#ifndef PGSCHED_H_INCLUDED
#define PGSCHED_H_INCLUDED

/* The implementation needs POSIX (clock_gettime, pthreads). Under -std=c99/c11 this only takes
   effect when pgsched.h is the first header the implementing file includes; otherwise define
   _POSIX_C_SOURCE=200809L (or _GNU_SOURCE) on the command line. */
#if defined(PGSCHED_IMPLEMENTATION) && !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE) && \
    !defined(_DEFAULT_SOURCE) && !defined(_XOPEN_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stddef.h>
#include <stdint.h>

#define PGSCHED_VERSION_MAJOR 1
#define PGSCHED_VERSION_MINOR 0
#define PGSCHED_VERSION_PATCH 0
#define PGSCHED_VERSION_STRING "1.0.0"

#ifndef PGSCHED_DEF
#ifdef PGSCHED_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define PGSCHED_DEF static __attribute__((unused))
#else
#define PGSCHED_DEF static
#endif
#else
#define PGSCHED_DEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================
   [pgsched: basics]
   ============================================================================================ */

/* Every fallible function returns one of these. 0 is success, failures are negative.
   pgsched_result_string() turns a code into a sentence; the pgsched_error a call fills in
   carries the detail (which field, which text, which column). */
typedef enum pgsched_result {
    PGSCHED_OK = 0,
    PGSCHED_ERR_INVALID_ARGUMENT = -1,  /* a NULL pointer or an impossible value */
    PGSCHED_ERR_NOMEM = -2,             /* an allocation failed */
    PGSCHED_ERR_CRON_SYNTAX = -3,       /* a cron expression is malformed */
    PGSCHED_ERR_CRON_NEVER = -4,        /* a cron expression can never match */
    PGSCHED_ERR_ZONE_UNKNOWN = -5,      /* a time zone name is not in the zone database */
    PGSCHED_ERR_ZONE_CORRUPT = -6,      /* a zone file is unreadable or corrupt */
    PGSCHED_ERR_TIME_RANGE = -7,        /* a time is outside years 1900..9999, or no run fits */
    PGSCHED_ERR_TIME_SYNTAX = -8,       /* a timestamp is not RFC 3339 */
    PGSCHED_ERR_DURATION = -9,          /* a duration is malformed, negative or out of range */
    PGSCHED_ERR_NO_NEXT = -10,          /* a schedule has no run after the given time */
    PGSCHED_ERR_IDENTIFIER = -11,       /* a schema or prefix is not a plain SQL name */
    PGSCHED_ERR_NAME = -12,             /* a job name is empty, too long or has control chars */
    PGSCHED_ERR_KEY = -13,              /* a job key is empty, too long or has control chars */
    PGSCHED_ERR_UTF8 = -14,             /* a text is not valid UTF-8 */
    PGSCHED_ERR_JSON = -15,             /* parameters are not one valid JSON text */
    PGSCHED_ERR_CONFIG = -16,           /* a configuration field is invalid */
    PGSCHED_ERR_NOT_REGISTERED = -17,   /* the job type is not registered on this node */
    PGSCHED_ERR_STATE = -18,            /* a call made in the wrong state of the node */
    PGSCHED_ERR_NOT_FOUND = -19,        /* no job instance with that name and key */
    PGSCHED_ERR_RUNNING = -20,          /* the instance is running, the change is refused */
    PGSCHED_ERR_NOT_PENDING = -21,      /* the instance is not pending (e.g. trigger) */
    PGSCHED_ERR_LEASE_LOST = -22,       /* the lease token is stale: another run owns the row */
    PGSCHED_ERR_CONNECTION = -23,       /* the database connection is down */
    PGSCHED_ERR_DATABASE = -24,         /* the database refused a statement */
    PGSCHED_ERR_SCHEMA_VERSION = -25,   /* the tables are missing, too old or too new */
    PGSCHED_ERR_TIMEOUT = -26,          /* a wait ran out of time */
    PGSCHED_ERR_UNSUPPORTED = -27,      /* not available in this build or this store */
    PGSCHED_ERR_SCHEDULE = -28,         /* a schedule is malformed (kind, interval, time) */
    PGSCHED_ERR_TOO_LARGE = -29,        /* a text exceeds its size limit */
    PGSCHED_ERR_BUSY = -30              /* the row is locked by another transaction: retry */
} pgsched_result;

#define PGSCHED_ERROR_MAX 512

/* Filled in by a failing call when the caller passes one (every `err` may be NULL). */
typedef struct pgsched_error {
    pgsched_result code;
    char message[PGSCHED_ERROR_MAX];
} pgsched_error;

/* One sentence for a code, e.g. "the job instance is running". Never NULL. */
PGSCHED_DEF const char *pgsched_result_string(pgsched_result code);

/* Times are microseconds since 1970-01-01T00:00:00Z; durations are microseconds. */
typedef int64_t pgsched_time;
typedef int64_t pgsched_duration;

#define PGSCHED_MICROSECOND ((pgsched_duration)1)
#define PGSCHED_MILLISECOND ((pgsched_duration)1000)
#define PGSCHED_SECOND ((pgsched_duration)1000000)
#define PGSCHED_MINUTE (60 * PGSCHED_SECOND)
#define PGSCHED_HOUR (60 * PGSCHED_MINUTE)
#define PGSCHED_DAY (24 * PGSCHED_HOUR)
/* A duration that means "never" / "disabled" where a field's comment allows it. */
#define PGSCHED_NEVER ((pgsched_duration)INT64_MAX)

/* The supported range of times: 1900-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z. */
#define PGSCHED_TIME_MIN ((pgsched_time)-2208988800LL * 1000000)
#define PGSCHED_TIME_MAX ((pgsched_time)253402300799LL * 1000000 + 999999)

/* This machine's wall clock. The engine compares times with the store's clock instead. */
PGSCHED_DEF pgsched_time pgsched_now(void);

/* Writes `t` as RFC 3339: "2026-03-08T07:00:00Z" when offset_seconds is 0 and utc_z is
   nonzero, else with the offset ("2026-03-08T02:00:00-05:00"). Fractional seconds are written
   only when nonzero (".250000"). Needs a buffer of PGSCHED_TIME_STRING_MAX bytes. Returns the
   length written, or 0 when `t` is out of range or the buffer is too small. */
#define PGSCHED_TIME_STRING_MAX 40
PGSCHED_DEF size_t pgsched_time_format(pgsched_time t, int offset_seconds, int utc_z, char *buf,
                                       size_t size);

/* Parses RFC 3339 ("2026-03-08T07:00:00Z", "2026-03-08T02:00:00.5-05:00"; 'T' or ' ' between
   date and time; 'z' accepted). PGSCHED_ERR_TIME_SYNTAX or PGSCHED_ERR_TIME_RANGE on failure. */
PGSCHED_DEF pgsched_result pgsched_time_parse(const char *text, pgsched_time *out,
                                              pgsched_error *err);

/* Parses a duration: a sequence of <number><unit>, units us, ms, s, m, h, d; decimals allowed
   ("1.5h"), e.g. "90s", "1h30m", "250ms". Must be positive and at most 100 years. */
PGSCHED_DEF pgsched_result pgsched_duration_parse(const char *text, pgsched_duration *out,
                                                  pgsched_error *err);

/* A runtime allocator: give all three functions, or pass none (NULL, or all three NULL) for the
   compile-time default (PGSCHED_MALLOC...). Memory from one allocator must never reach another's
   free, so a partly filled one is refused: PGSCHED_ERR_CONFIG from the constructors, an
   assertion in the list initialisers. */
typedef struct pgsched_allocator {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *ptr, size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} pgsched_allocator;

/* ============================================================================================
   [pgsched: cron]
   ============================================================================================
   Syntax (see README): [CRON_TZ=Zone |TZ=Zone ][sec ]min hour dom mon dow, or a macro
   (@yearly @annually @monthly @weekly @daily @midnight @hourly, @every <duration>).
   Fields match the zone's wall clock. Daylight-saving rules:
   - hour field `*`: the expression follows real time; wall times in a gap never occur and a
     repeated wall time fires in both occurrences.
   - otherwise a match inside a gap fires once at the first instant after the gap, and a match
     in a repeated stretch fires only in its first occurrence. */

typedef struct pgsched_cron pgsched_cron;

typedef struct pgsched_cron_options {
    const char *default_zone;           /* zone when the text has no CRON_TZ=; NULL = UTC */
    const char *tzdir;                  /* zone database; NULL = $TZDIR or /usr/share/zoneinfo */
    const pgsched_allocator *allocator; /* NULL = default */
} pgsched_cron_options;

/* Parses once; the result is immutable and may be used from many threads at once. Errors name
   the field, the text and its 1-based column: "hour: 24 is out of range 0-23 (column 3)". */
PGSCHED_DEF pgsched_result pgsched_cron_parse(const char *expr, const pgsched_cron_options *opts,
                                              pgsched_cron **out, pgsched_error *err);

/* The first matching instant strictly after `after`. Allocates nothing.
   PGSCHED_ERR_TIME_RANGE when `after` is out of range or no match exists before year 10000. */
PGSCHED_DEF pgsched_result pgsched_cron_next(const pgsched_cron *cron, pgsched_time after,
                                             pgsched_time *next);

/* The expression's zone offset from UTC at `t`, in seconds east (0 for UTC). */
PGSCHED_DEF int pgsched_cron_utc_offset(const pgsched_cron *cron, pgsched_time t);

/* The expression's zone name ("UTC" when none). */
PGSCHED_DEF const char *pgsched_cron_zone(const pgsched_cron *cron);

/* For "@every <d>": the interval; for every other expression: 0. */
PGSCHED_DEF pgsched_duration pgsched_cron_interval(const pgsched_cron *cron);

PGSCHED_DEF void pgsched_cron_free(pgsched_cron *cron);

/* Schedule kinds. Recurring = CRON, INTERVAL, CUSTOM. The zero value is ONCE, so a zeroed
   pgsched_schedule is one run, due now. */
typedef enum pgsched_schedule_kind {
    PGSCHED_SCHEDULE_ONCE = 0,     /* one run, at `at` (0 = now + delay) */
    PGSCHED_SCHEDULE_CRON = 1,     /* a cron expression; "@every <d>" is stored as an INTERVAL */
    PGSCHED_SCHEDULE_INTERVAL = 2, /* every `every`, measured from the end of the previous run */
    PGSCHED_SCHEDULE_CUSTOM = 3    /* the job type's next-run callback computes every run */
} pgsched_schedule_kind;

typedef struct pgsched_schedule {
    pgsched_schedule_kind kind; /* 0 = ONCE */
    const char *cron;       /* CRON: the expression (may start with CRON_TZ=Zone) */
    pgsched_duration every; /* INTERVAL: the period, positive */
    pgsched_time at;        /* ONCE: when (0 = now + delay). Recurring: the first run (0 =
                               computed, or now + delay when delay is set) */
    /* With at = 0: the first run is due this long after the store's now, read by the store
       when it writes the row (the database's clock; the caller never reads it). ONCE: the
       run. Recurring: the first run, later ones follow the schedule from there (it wins over
       run_immediately). 0 = no delay; at most 100 years; negative, or set together with
       `at`, is refused. */
    pgsched_duration delay;
} pgsched_schedule;

/* A custom schedule's calculator, supplied by the job type: the next run strictly after
   `after`, or PGSCHED_ERR_NO_NEXT when the schedule is over. */
typedef pgsched_result (*pgsched_next_fn)(void *user, const char *name, const char *key,
                                          const char *params, pgsched_time after,
                                          pgsched_time *next);

/* Calculators of the other kinds, usable on their own. */
PGSCHED_DEF pgsched_result pgsched_interval_next(pgsched_duration every, pgsched_time after,
                                                 pgsched_time *next);
/* `at` when after < at, else PGSCHED_ERR_NO_NEXT: a one-time schedule has a single run. */
PGSCHED_DEF pgsched_result pgsched_once_next(pgsched_time at, pgsched_time after,
                                             pgsched_time *next);
/* Any kind but CUSTOM (which needs its callback): parses s->cron on each call, so hold a
   pgsched_cron instead for repeated use. */
PGSCHED_DEF pgsched_result pgsched_next_run(const pgsched_schedule *s,
                                            const pgsched_cron_options *opts,
                                            pgsched_time after, pgsched_time *next,
                                            pgsched_error *err);

/* ============================================================================================
   [pgsched: jobs]
   ============================================================================================ */

#define PGSCHED_NAME_MAX 128      /* bytes of a job type name */
#define PGSCHED_KEY_MAX 256       /* bytes of a job key */
#define PGSCHED_NODE_ID_MAX 64    /* bytes of a node id */
#define PGSCHED_PARAMS_MAX 1048576 /* bytes of a parameters JSON text */
#define PGSCHED_ERROR_TEXT_MAX 4096 /* bytes of a stored error text (longer is truncated) */

typedef enum pgsched_status {
    PGSCHED_STATUS_NONE = 0, /* not a row: "did not exist" / "was removed" in events */
    PGSCHED_STATUS_PENDING = 1,
    PGSCHED_STATUS_RUNNING = 2,
    PGSCHED_STATUS_COMPLETED = 3,
    PGSCHED_STATUS_FAILED = 4,
    PGSCHED_STATUS_CANCELLED = 5
} pgsched_status;

/* "pending", "running", ...; "none" for PGSCHED_STATUS_NONE. */
PGSCHED_DEF const char *pgsched_status_string(pgsched_status s);

/* One job instance as a store holds it. Strings are owned by the list holding the row, or,
   for a job from pgsched_get, by the job's own allocation (pgsched_job_free). */
typedef struct pgsched_job {
    const char *name;
    const char *key;
    pgsched_status status;
    pgsched_schedule_kind kind;
    const char *cron;            /* CRON: the expression as scheduled; else NULL */
    pgsched_duration every;      /* INTERVAL: the period; else 0 */
    const char *params;          /* JSON text */
    int max_retries;             /* retries after a failed attempt, per budget */
    int attempt;                 /* attempts used of the current budget (the running one too) */
    pgsched_time next_run;       /* pending: due time; running: the due time of this run */
    const char *owner;           /* running: the node that holds the lease; else NULL */
    int64_t lease;               /* running: the lease token (changes on every claim); else 0 */
    pgsched_time heartbeat_at;   /* running: the last lease renewal */
    pgsched_time started_at;     /* start of the current or last run (0 = never ran) */
    pgsched_time finished_at;    /* end of the last run (0 = none) */
    int cancel_requested;        /* running: a cancel was requested */
    int remove_requested;        /* running: the row is deleted when the run ends */
    int change_pending;          /* running: a re-schedule applies when the run ends */
    const char *last_error;      /* error text of the last failed attempt, or NULL */
    int64_t runs;                /* finished runs (any outcome) */
    int64_t failures;            /* failed attempts, stall take-backs included */
    int64_t version;             /* increases on every change (store-wide sequence) */
    pgsched_time created_at;
    pgsched_time updated_at;
} pgsched_job;

/* A growable list of rows that owns their strings. Zero-initialise or use _init. */
typedef struct pgsched_job_list {
    pgsched_job *items;
    size_t count;
    /* private */
    size_t cap;
    void **blocks;
    pgsched_allocator alloc;
} pgsched_job_list;

PGSCHED_DEF void pgsched_job_list_init(pgsched_job_list *list, const pgsched_allocator *a);
/* Appends a deep copy of `job` (its strings are copied). */
PGSCHED_DEF pgsched_result pgsched_job_list_push(pgsched_job_list *list, const pgsched_job *job);
/* Empties the list and keeps its capacity. */
PGSCHED_DEF void pgsched_job_list_clear(pgsched_job_list *list);
PGSCHED_DEF void pgsched_job_list_free(pgsched_job_list *list);

/* How a finished attempt ended, as recorded in the run history. */
typedef enum pgsched_outcome {
    PGSCHED_OUTCOME_SUCCESS = 1,
    PGSCHED_OUTCOME_FAILURE = 2,   /* handler failed or timed out */
    PGSCHED_OUTCOME_CANCELLED = 3, /* stopped on a cancel request */
    PGSCHED_OUTCOME_STALLED = 4,   /* its node stopped renewing the lease; taken back */
    PGSCHED_OUTCOME_RELEASED = 5   /* given back at shutdown; the attempt is not counted */
} pgsched_outcome;

PGSCHED_DEF const char *pgsched_outcome_string(pgsched_outcome k);

/* One row of run history: a finished attempt. */
typedef struct pgsched_run_record {
    const char *name;
    const char *key;
    const char *node; /* the node that ran the attempt (for a stall too, not the one that
                         took the row back) */
    int attempt;
    pgsched_time started_at;
    pgsched_time finished_at;
    pgsched_outcome outcome;
    const char *error; /* or NULL */
    int64_t id;        /* increasing in the order records were written */
} pgsched_run_record;

typedef struct pgsched_run_list {
    pgsched_run_record *items;
    size_t count;
    /* private */
    size_t cap;
    void **blocks;
    pgsched_allocator alloc;
} pgsched_run_list;

PGSCHED_DEF void pgsched_run_list_init(pgsched_run_list *list, const pgsched_allocator *a);
PGSCHED_DEF pgsched_result pgsched_run_list_push(pgsched_run_list *list,
                                                 const pgsched_run_record *rec);
PGSCHED_DEF void pgsched_run_list_clear(pgsched_run_list *list);
PGSCHED_DEF void pgsched_run_list_free(pgsched_run_list *list);

/* What a cancel or a removal did. */
typedef enum pgsched_change_effect {
    PGSCHED_CHANGE_NONE = 0,             /* nothing to cancel: pending recurring, or finished */
    PGSCHED_CHANGE_CANCEL_REQUESTED = 1, /* running: its node is asked to stop the run */
    PGSCHED_CHANGE_CANCELLED = 2,        /* pending one-time: now cancelled without running */
    PGSCHED_CHANGE_REMOVED = 3,          /* the row is deleted */
    PGSCHED_CHANGE_REMOVE_DEFERRED = 4   /* running: cancel requested, deleted when its run
                                            ends */
} pgsched_change_effect;

typedef struct pgsched_list_filter {
    const char *name;       /* only this job type (NULL = all) */
    pgsched_status status;  /* only this status (NONE = all) */
    const char *after_name; /* paging: rows after (after_name, after_key) in (name, key) order */
    const char *after_key;
    size_t limit;           /* 0 = 1000 */
} pgsched_list_filter;

/* ============================================================================================
   [pgsched: stores]
   ============================================================================================
   A store holds the job rows; a node reaches it through pgsched_config.store, or creates a
   PostgreSQL store from pgsched_config.conninfo itself. A store you create is yours: destroy it
   after every node that uses it. Writing a store of your own: [pgsched: store author API]. */

typedef struct pgsched_store pgsched_store;

/* Frees a store you created (NULL is fine), after every node that uses it is destroyed. */
PGSCHED_DEF void pgsched_store_destroy(pgsched_store *s);
/* The store's clock (the database's for PostgreSQL): due times are compared with it. */
PGSCHED_DEF pgsched_result pgsched_store_now(pgsched_store *s, pgsched_time *now,
                                             pgsched_error *err);

/* The in-memory store: same semantics as PostgreSQL, shareable by many nodes in one process. */
typedef struct pgsched_memory_config {
    /* The store's clock; NULL = pgsched_now(). Tests inject one to move time by hand. */
    pgsched_time (*clock)(void *user);
    void *clock_user;
    const pgsched_allocator *allocator; /* NULL = default */
} pgsched_memory_config;

PGSCHED_DEF pgsched_result pgsched_memory_store_create(const pgsched_memory_config *cfg,
                                                       pgsched_store **out, pgsched_error *err);

/* The PostgreSQL store (absent under PGSCHED_NO_LIBPQ: then create returns UNSUPPORTED). */
/* Also a node's own store: pgsched_config.pg. Invalid fields give PGSCHED_ERR_CONFIG naming the
   field ("pg.pool_size" when given through a node's configuration). */
typedef struct pgsched_pg_config {
    const char *conninfo;        /* libpq connection string or URI (required) */
    const char *schema;          /* a plain SQL name, created if missing; NULL = "public" */
    const char *prefix;          /* table name prefix, at most 49 bytes; NULL = "pgsched_" */
    int no_create_schema;        /* nonzero: never create or migrate, only check the version */
    int no_notifications;        /* nonzero: send no NOTIFY */
    int pool_size;               /* connections for statements; 0 = 2; at most 64 (a bulk
                                    schedule writes up to pool_size - 1 batches at once) */
    pgsched_duration reconnect_min; /* backoff after a lost connection; 0 = 100 ms */
    pgsched_duration reconnect_max; /* 0 = 10 s (or reconnect_min if that is more); given
                                       both, at least reconnect_min */
    /* NULL = default. In a node's configuration: NULL = the node's allocator. */
    const pgsched_allocator *allocator;
    /* Where the store reports a row it quarantined (a PGSCHED_LOG_* level and a sentence);
       NULL = nowhere. In a node's configuration: NULL = the node's log, filtered by its
       log_level; given, every message goes there unfiltered. */
    void (*log)(void *user, int level, const char *message);
    void *log_user;
} pgsched_pg_config;

PGSCHED_DEF pgsched_result pgsched_pg_store_create(const pgsched_pg_config *cfg,
                                                   pgsched_store **out, pgsched_error *err);

/* The `conninfo` with any password replaced by "********", for logs. Returns the length. */
PGSCHED_DEF size_t pgsched_conninfo_redact(const char *conninfo, char *buf, size_t size);

/* ============================================================================================
   [pgsched: engine]
   ============================================================================================ */

typedef struct pgsched_node pgsched_node;
typedef struct pgsched_run pgsched_run;
struct pg_conn; /* libpq's PGconn */

typedef enum pgsched_log_level {
    PGSCHED_LOG_DEBUG = 1,
    PGSCHED_LOG_INFO = 2,
    PGSCHED_LOG_WARN = 3,
    PGSCHED_LOG_ERROR = 4,
    PGSCHED_LOG_OFF = 5
} pgsched_log_level;

/* A handler returns PGSCHED_RUN_SUCCESS or PGSCHED_RUN_FAILURE. Any other value is treated as a
   failure with an error text that says so. */
#define PGSCHED_RUN_SUCCESS 0
#define PGSCHED_RUN_FAILURE 1
typedef int (*pgsched_handler)(pgsched_run *run);

/* claim_ahead in a node's configuration: claim only as many rows as there are free workers. */
#define PGSCHED_NO_CLAIM_AHEAD (-1)

/* max_retries in a job type or a spec: 0 = default, PGSCHED_NO_RETRIES = none. */
#define PGSCHED_NO_RETRIES (-1)

typedef struct pgsched_job_type {
    const char *name;           /* required */
    pgsched_handler handler;    /* NULL: this node schedules the type but never runs it */
    void *user;                 /* handed to the handler as run->user */
    int max_retries;            /* default budget for specs that give none; 0 = 3 */
    pgsched_duration retry_base;/* backoff of this type; 0 = the node's */
    pgsched_duration retry_cap; /* 0 = the node's */
    pgsched_duration timeout;   /* a run longer than this is cancelled and fails; 0 = none */
    pgsched_next_fn next_run;   /* calculator of PGSCHED_SCHEDULE_CUSTOM schedules */
    void *next_run_user;
} pgsched_job_type;

/* Zeroed but for name and key, a spec is one run, due now, with the type's retry budget. */
typedef struct pgsched_job_spec {
    const char *name;           /* a registered job type */
    const char *key;            /* the instance (1..PGSCHED_KEY_MAX bytes) */
    pgsched_schedule schedule;  /* zero: ONCE, due now (see schedule.at, schedule.delay) */
    const char *params;         /* JSON text; NULL = "{}" */
    int max_retries;            /* 0 = the type's default; PGSCHED_NO_RETRIES = none */
    int apply_after_run;        /* if running: apply when its run ends instead of refusing */
} pgsched_job_spec;

/* A status change seen by this node. */
typedef struct pgsched_status_event {
    const char *name;
    const char *key;
    pgsched_status old_status;  /* NONE: created */
    pgsched_status new_status;  /* NONE: removed */
    pgsched_time next_run;      /* pending: its due time */
    int64_t version;
    const char *node;           /* the node that made the change */
    int remote;                 /* made by another node (seen through a notification) */
} pgsched_status_event;

typedef struct pgsched_config {
    pgsched_store *store;        /* a store you own; NULL = the node makes (and owns) a
                                    PostgreSQL store from `pg` */
    /* The PostgreSQL store the node makes when `store` is NULL (pg.conninfo is then
       required); ignored when `store` is given. Checked by pgsched_create as
       pgsched_pg_store_create checks it; errors name "pg.<field>". pg.allocator and pg.log
       left NULL are the node's own; no_notifications below also sets pg.no_notifications. */
    pgsched_pg_config pg;

    int max_concurrent;          /* workers = runs at once; 0 = 4; at most 1024 */
    int claim_ahead;             /* due rows claimed beyond the free workers and queued here
                                    until one is free (leases renewed, cancels honoured,
                                    given back at shutdown); 0 = 256; PGSCHED_NO_CLAIM_AHEAD =
                                    none; at most 10000. While 2 x (max_concurrent +
                                    claim_ahead) outcomes wait behind the batch being
                                    written, the node claims nothing. */
    pgsched_duration claim_ahead_wait; /* a queue in which no row reached a worker for this
                                    long (every worker busy with long runs) is given back, no
                                    attempt counted, so that idle nodes run its rows; then
                                    this node claims no more than its free workers for as
                                    long again; 0 = 1 s */
    pgsched_duration poll_interval;      /* 0 = 1 s; with both this and heartbeat_interval
                                            0, an idle node whose notifications arrive polls
                                            every 30 s only and heartbeats (holding no lease)
                                            every 30 s or orphan_timeout / 4 */
    pgsched_duration heartbeat_interval; /* 0 = stall_timeout / 6, at most 5 s; at most
                                            stall_timeout / 2 */
    pgsched_duration stall_timeout;      /* 0 = 30 s */
    pgsched_duration cancel_check_period;/* 0 = 1 s (the fallback without notifications) */
    pgsched_duration retry_base;         /* first retry delay; 0 = 1 s */
    pgsched_duration retry_cap;          /* 0 = 10 min */
    pgsched_duration shutdown_timeout;   /* 0 = 30 s */
    /* Drain mode: shutdown first lets runs finish for up to this long, then asks the rest to
       stop and waits up to shutdown_timeout. 0 = no drain: they are asked to stop at once. */
    pgsched_duration drain_timeout;
    pgsched_duration finished_retention; /* finished one-time rows; 0 = 7 days; NEVER = keep */
    pgsched_duration history_retention;  /* run history; 0 = 7 days; NEVER = keep */
    pgsched_duration orphan_timeout;     /* 0 = 7 days; NEVER = keep orphans */
    pgsched_duration stall_check_period; /* how late past a lease's expiry a crashed node's
                                            run may be taken back; 0 = 5 s. The look comes
                                            when the oldest lease seen could stall (or a
                                            stall timeout after none ran), up to a fifth of
                                            this later; every this long with a store that
                                            does not say (take_back info) */
    pgsched_duration cleanup_period;     /* retention and orphans; 0 = 1 min */
    int no_notifications;        /* nonzero: poll only (and pg.no_notifications) */
    int run_immediately;         /* recurring jobs scheduled here run once at once */
    const char *default_zone;    /* zone of cron expressions without CRON_TZ=; NULL = UTC */

    void (*log)(void *user, pgsched_log_level level, const char *message);
    void *log_user;
    pgsched_log_level log_level; /* 0 = WARN */

    /* Called from one callback thread, in order per instance, each change once; may call
       the node's API. With notifications on, changes come in the order the store committed
       them (this node's own changes wait for their notification, at most 2 s); without,
       this node's changes are delivered 50 ms late, in version order. */
    void (*on_status)(void *user, const pgsched_status_event *event);
    void *on_status_user;

    const pgsched_allocator *allocator; /* NULL = default */

    /* The clock of every timer of the node, in monotonic microseconds that never go back:
       heartbeats, polls, cancel and stall checks, cleanup, run timeouts, self-fencing,
       claim_ahead_wait, retry delays, the drain and shutdown deadlines, pgsched_run_sleep and
       the status callbacks' waits. NULL = CLOCK_MONOTONIC. For tests that move time by hand:
       after moving it, call pgsched_clock_moved(node), which returns once the node has done
       what fell due. A clock that moves by itself also works without that call: the node's
       threads read it again at least every 10 ms of real time while it is set. The store
       keeps its own clock (pgsched_memory_config.clock, the database's): a test that moves
       one moves the other by as much, or the node's idea of the store's time drifts off. */
    pgsched_time (*clock)(void *user);
    void *clock_user;
} pgsched_config;

/* A histogram of durations with fixed buckets: buckets[i] counts the observations above
   pgsched_histogram_bound(i - 1) and at most pgsched_histogram_bound(i); the last bucket those
   above every bound. The bounds are 1, 2.5, 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10,
   30 and 60 s. */
#define PGSCHED_HISTOGRAM_BUCKETS 16
typedef struct pgsched_histogram {
    int64_t count;
    pgsched_duration sum;
    int64_t buckets[PGSCHED_HISTOGRAM_BUCKETS];
} pgsched_histogram;

/* The upper bound of bucket i; PGSCHED_NEVER for the last one (and for i out of range). */
PGSCHED_DEF pgsched_duration pgsched_histogram_bound(size_t i);

typedef struct pgsched_counters {
    int64_t claimed;
    int64_t succeeded;
    int64_t failed;
    int64_t retried;            /* failures that were given another attempt */
    int64_t cancelled;
    int64_t stalled_taken_back;
    int64_t lease_lost;         /* runs stopped because another node took their row */
    int64_t running;            /* runs in progress now */
    int64_t polls;              /* claim statements issued */
    pgsched_duration claim_latency_last;  /* duration of the last claim statement */
    pgsched_duration claim_latency_max;
    pgsched_duration claim_latency_total; /* divide by polls for the mean */
    pgsched_duration start_delay_last;    /* due time to handler start, last run */
    pgsched_duration start_delay_max;
    pgsched_duration start_delay_total;   /* divide by claimed for the mean */
    int connected;              /* 1: the node's last claim or heartbeat reached the store; 0:
                                   it failed for want of a connection (or none was made yet) */
    int64_t connection_errors;  /* store calls that failed for want of a connection */
    pgsched_histogram claim_latency; /* every claim statement */
    pgsched_histogram start_delay;   /* due time to handler start, every run */
    int64_t status_events_dropped; /* changes not given to on_status: it fell 4096 behind */
} pgsched_counters;

/* Counters of one registered job type on this node. */
typedef struct pgsched_type_counters {
    const char *name;           /* the type's name, valid until pgsched_destroy */
    int64_t claimed;
    int64_t succeeded;
    int64_t failed;             /* failed attempts, retried ones included */
    int64_t retried;
    int64_t cancelled;
    int64_t lease_lost;
    int64_t running;            /* runs in progress now */
} pgsched_type_counters;

/* Checks the configuration (no I/O). Invalid fields give PGSCHED_ERR_CONFIG naming the field. */
PGSCHED_DEF pgsched_result pgsched_create(const pgsched_config *cfg, pgsched_node **out,
                                          pgsched_error *err);
/* The node's configuration as pgsched_create resolved it: given values unchanged, every default
   filled in (the durations, max_concurrent, claim_ahead, log_level; pg.schema "public",
   pg.prefix "pgsched_", pg.pool_size, pg.reconnect_min/max; allocator and pg.allocator the
   ones in use). Its strings and allocators belong to the node and stay valid until
   pgsched_destroy. Read back as given: store, the callbacks (log NULL: stderr; pg.log NULL: the
   node's log), default_zone (NULL: UTC, nothing written into cron text), and `pg` all zero
   when the node was given a store. Given to pgsched_create, it makes a node configured the
   same, except for the quieter idle polling, which needs poll_interval and heartbeat_interval
   both left 0. pg.conninfo is as given, password included (pgsched_conninfo_redact before
   logging it). PGSCHED_ERR_INVALID_ARGUMENT when node or out is NULL. */
PGSCHED_DEF pgsched_result pgsched_get_config(const pgsched_node *node, pgsched_config *out,
                                              pgsched_error *err);
/* Connects, sets up the schema, registers the node. pgsched_start calls it if you did not. */
PGSCHED_DEF pgsched_result pgsched_init(pgsched_node *node, pgsched_error *err);
/* Before start. The type struct is copied; its strings too. */
PGSCHED_DEF pgsched_result pgsched_register(pgsched_node *node, const pgsched_job_type *type,
                                            pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_start(pgsched_node *node, pgsched_error *err);

PGSCHED_DEF pgsched_result pgsched_schedule_job(pgsched_node *node, const pgsched_job_spec *spec,
                                                pgsched_error *err);
/* The same inside the caller's open transaction on its own libpq connection: the job exists if
   and only if that transaction commits. PostgreSQL store only. */
PGSCHED_DEF pgsched_result pgsched_schedule_job_tx(pgsched_node *node, struct pg_conn *conn,
                                                   const pgsched_job_spec *spec,
                                                   pgsched_error *err);
/* Many jobs at once, in one statement per batch of up to PGSCHED_SCHEDULE_BATCH_MAX.
   results[i] (required) is the code pgsched_schedule_job would give specs[i]: a spec that is
   invalid (name, key, params, schedule, type not registered) or refused (a running row without
   apply_after_run: PGSCHED_ERR_RUNNING) fails alone and writes nothing; every other one is
   written with the same semantics and status callbacks as one pgsched_schedule_job (and the
   same events, but while no node has on_status: then one per job type of each batch, with its
   earliest due time), and a spec repeating an earlier (name, key) applies after it. Returns PGSCHED_OK when every
   spec is OK, else the code of the first spec that failed, with `err` naming its index and why
   (and how many failed). A store error (connection, database) fails the specs it reached:
   with several batches, those of earlier batches may be written (their results say so). */
PGSCHED_DEF pgsched_result pgsched_schedule_jobs(pgsched_node *node, const pgsched_job_spec *specs,
                                                 size_t count, pgsched_result *results,
                                                 pgsched_error *err);
/* The same in the caller's open transaction on its own libpq connection: the jobs exist if and
   only if that transaction commits. Statements sent there are prepared once per connection
   (under a name starting "pgsched_"), fully schema-qualified, and leave the session's
   settings alone; a connection whose transaction has already failed is refused before
   anything is sent. Needs a store with schedule_many_tx (the PostgreSQL store has it). */
PGSCHED_DEF pgsched_result pgsched_schedule_jobs_tx(pgsched_node *node, struct pg_conn *conn,
                                                    const pgsched_job_spec *specs, size_t count,
                                                    pgsched_result *results, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_cancel(pgsched_node *node, const char *name, const char *key,
                                          pgsched_change_effect *effect, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_remove(pgsched_node *node, const char *name,
                                          const char *key, pgsched_change_effect *effect,
                                          pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_trigger(pgsched_node *node, const char *name, const char *key,
                                           pgsched_error *err);
/* The instance (name, key), in a single allocation (the job and its strings) made with the
   node's allocator: free it with pgsched_job_free. PGSCHED_ERR_NOT_FOUND when there is none;
   *out is NULL whenever the call fails. */
PGSCHED_DEF pgsched_result pgsched_get(pgsched_node *node, const char *name, const char *key,
                                       pgsched_job **out, pgsched_error *err);
/* Frees a job pgsched_get returned (NULL is fine), with the allocator that made it. */
PGSCHED_DEF void pgsched_job_free(pgsched_job *job);
PGSCHED_DEF pgsched_result pgsched_list(pgsched_node *node, const pgsched_list_filter *filter,
                                        pgsched_job_list *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_history(pgsched_node *node, const char *name, const char *key,
                                           size_t limit, pgsched_run_list *out,
                                           pgsched_error *err);
PGSCHED_DEF void pgsched_get_counters(pgsched_node *node, pgsched_counters *out);
/* The counters of each registered job type, in the order of registration: fills out[0..cap)
   and returns how many types there are (call with cap 0 to size the array). */
PGSCHED_DEF size_t pgsched_get_type_counters(pgsched_node *node, pgsched_type_counters *out,
                                             size_t cap);
/* The node's counters in the Prometheus text exposition format (version 0.0.4), for an HTTP
   handler to serve with Content-Type "text/plain; version=0.0.4": runs by job type and
   outcome, claims, retries, lease losses and running runs per type, the claim-latency and
   start-delay histograms, and whether the store is reachable. Writes at most size bytes,
   NUL-terminated, and returns the length of the whole text (without the NUL), as snprintf
   does: a result >= size means it was cut; call again with a buffer of result + 1 bytes. */
PGSCHED_DEF size_t pgsched_metrics_prometheus(pgsched_node *node, char *buf, size_t size);
PGSCHED_DEF const char *pgsched_node_id(const pgsched_node *node);
PGSCHED_DEF pgsched_store *pgsched_node_store(const pgsched_node *node);

/* Stops claiming and gives back the claimed rows that have not started; asks running
   handlers to stop (after drain_timeout, when set); waits up to shutdown_timeout, recording
   each outcome as it arrives (a handler that stopped without an outcome gives its row back
   uncounted). A handler still running at the timeout keeps its lease, renewed in the
   background, until it returns; then its outcome is recorded. No other node runs that
   instance meanwhile (status callbacks end when shutdown returns: theirs are not delivered).
   Returns PGSCHED_OK when every run is done, PGSCHED_ERR_TIMEOUT (the message names them;
   counters.running says how many) when some are still going.
   Idempotent (a later call says again what is still going); fine without start. Must not be
   called from a handler or a callback of the same node. */
PGSCHED_DEF pgsched_result pgsched_shutdown(pgsched_node *node, pgsched_error *err);
/* Tells the node that its clock (cfg.clock) moved. Wakes every wait of the node on it, then
   returns once the node has done what fell due by the new time (heartbeats, claims,
   cancel and stall checks, cleanup, run timeouts, self-fencing, drain and shutdown steps,
   outcome writes, each with its store calls), each run it handed to a worker has started,
   and it waits again, or has stopped; handlers in pgsched_run_sleep and the status callbacks
   are woken, not waited for. A test that moves time in steps shorter
   than the intervals it checks sees every heartbeat and check happen at its step. From the
   node's own threads (a handler, a callback, the log) the call only wakes. Harmless with the
   real clock. */
PGSCHED_DEF void pgsched_clock_moved(pgsched_node *node);
/* Shuts down if needed, then frees the node (and the store it made from cfg.pg). Waits
   for handlers still running after the shutdown timeout (their leases are renewed meanwhile
   and their outcomes recorded when they return). Called from the node's own handler or
   callback it does nothing (and logs an error). */
PGSCHED_DEF void pgsched_destroy(pgsched_node *node);

/* The run context a handler receives. Fields are read-only; valid during the run. */
struct pgsched_run {
    const char *name;
    const char *key;
    const char *params;       /* JSON text */
    int attempt;              /* 1 for the first attempt of a budget */
    int max_retries;
    pgsched_time scheduled_for; /* the due time of this run */
    pgsched_node *node;
    void *user;               /* the job type's user pointer */
};

/* Why a run is asked to stop. */
typedef enum pgsched_cancel_reason {
    PGSCHED_CANCEL_REASON_NONE = 0,       /* not asked to stop */
    PGSCHED_CANCEL_REASON_REQUEST = 1,    /* pgsched_cancel or pgsched_remove, any node */
    PGSCHED_CANCEL_REASON_TIMEOUT = 2,    /* the job type's timeout ran out: a failure */
    PGSCHED_CANCEL_REASON_LEASE_LOST = 3, /* another node took the row, or the lease could not
                                             be renewed: a failure is not recorded, a
                                             success only if no other node took the row
                                             meanwhile; the job may run elsewhere */
    PGSCHED_CANCEL_REASON_SHUTDOWN = 4    /* the node is shutting down: returning failure gives
                                             the row back without counting an attempt */
} pgsched_cancel_reason;

/* Nonzero once a cancel was requested (by a call, a timeout, a lost lease or shutdown). */
PGSCHED_DEF int pgsched_run_cancelled(const pgsched_run *run);
/* Why: the first reason stays, except that a lost lease replaces any other. */
PGSCHED_DEF pgsched_cancel_reason pgsched_run_cancel_reason(const pgsched_run *run);
/* Sleeps up to `d`; returns early with nonzero when the run is cancelled, else 0. */
PGSCHED_DEF int pgsched_run_sleep(pgsched_run *run, pgsched_duration d);
/* Sets the error text stored with a failed attempt (printf-style; truncated to 4 KiB). */
PGSCHED_DEF void pgsched_run_set_error(pgsched_run *run, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ============================================================================================
   [pgsched: store author API]
   ============================================================================================
   Only for writing or testing a store; an application needs nothing below (it creates,
   passes and destroys stores with [pgsched: stores]).
   The engine reaches storage only through this table, in the manner of SQLite's VFS. A store
   is a struct whose first member is `const pgsched_store_methods *methods`. Every method is
   thread-safe, takes the store first, returns a pgsched_result and writes outputs through
   pointers. Methods receive input already checked by the pgsched_store_* wrappers below, so a
   store need not validate names, keys, JSON or pointers. Every time comparison uses the
   store's own clock. To grow the table, append members and raise PGSCHED_STORE_VERSION; the
   engine checks `version` before calling a newer member.
   Version 1: setup .. listen_close, every member required. Version 2 appends schedule_many
   and schedule_many_tx, both optional (NULL); a table of version 1 keeps working: its batches
   are written one schedule call per request, and it cannot schedule in the caller's
   transaction.

   THE CONTRACT. What the engine relies on, whatever the store. The conformance harness
   (tests/store/harness.inc; README "Writing a store") checks each rule with the tests listed
   under its number there, on the in-memory store, the PostgreSQL store and
   examples/custom_store.c: a failing test's name finds its rule in that list.
   S1  Cancel wins. A cancel requested for a running row (cancel or remove) wins over a
       FAILURE, STALLED or RELEASED outcome whose request gives a cancelled_status: the store
       records CANCELLED with that status and due time and a fresh budget. It never turns a
       SUCCESS into a cancel, and the request ends with the run (the next run starts clear).
   S2  A re-schedule of a running row is refused with PGSCHED_ERR_RUNNING and changes nothing,
       unless apply_after_run: then it is kept (a later one replaces it, and it replaces an
       earlier remove) and applied when the run ends, by finish, after a take-back too. The
       applied change makes the row pending with a fresh budget, whatever the outcome.
   S3  A finish is a replay when it repeats an outcome already recorded for the same lease (a
       retry after a lost reply): OK, `replayed` set, nothing written. The same token after
       another claim of the row is LEASE_LOST; a batch naming one lease twice applies it once;
       each outcome of a batch succeeds or fails on its own.
   S4  The earlier due time wins. Scheduling a pending row keeps the earlier of its stored and
       its new due time (a deferred re-schedule too); a finished row takes the new one. The
       schedule, params and budget are the new ones (attempt 0).
   S5  Lease tokens fence. Every claim and take-back gives the row a new nonzero token, never
       one used before; finish and heartbeat act only when token (and node) still match:
       otherwise LEASE_LOST / `lost`, and nothing is written. No row is ever handed to two
       claims at once, whatever the threads and processes.
   S6  Events. Every change made through any handle of the store (schedule, claim, finish,
       take-back, cancel, trigger, remove) reaches every open listener as a CHANGE event, in
       version order per instance, with the node that made it; a cancel of a running row also
       raises CANCEL for its owner. A listener that cannot keep up gets RESYNC instead of
       losing events silently. Clean-up deletions raise none. A store may leave out the
       changes that only tell of a status (a claim, a take-back, a finish that does not make
       the row pending) while no registered, running node has status_events set
       (pgsched_node_record); the PostgreSQL store does, the in-memory store does not.
       Then too, the changes of a schedule_many or schedule_many_tx batch, and those of a
       finish batch that make rows pending again (retries, next runs), may go as one DUE event
       per job type of the batch, with the earliest due time of its rows left pending (the
       PostgreSQL store does so; a node learns the later due times from its claims).
   S7  Versions come from one store-wide increasing sequence: every change gives the row a
       higher version than any before it (a removed and re-created row included).
   S8  Claims take due pending rows of the given types only, in due order, at most `max`,
       making them running for the node with attempt + 1 and heartbeat_at = now (a store
       that honours `lead` also takes rows due within it, started_at = their due time). A finish
       applies what the engine decided (status, due time or now + retry_delay, attempt rule,
       error text), counts the run (and the failure) and writes one history record.
   S9  Stalls. take_back takes only running rows whose last renewal is older than (not equal
       to) the stall timeout, the longest silent first, at most `max`; the history row of the
       attempt names the node that ran it; a stall counts as a failed attempt. Its info, when
       given, is exact: no row left running stalls before next_stall.
   S10 Changes. cancel: running -> CANCEL_REQUESTED; pending one-time -> CANCELLED; pending
       recurring or finished -> NONE. trigger: pending -> due now; running -> RUNNING;
       finished -> NOT_PENDING. remove: deletes a row that is not running; a running row is
       deleted when its run ends (REMOVE_DEFERRED, cancel requested). Missing row: NOT_FOUND.
   S11 The store's clock is the only clock: due times, leases, retention and now() all read it;
       a due time of 0 means its now plus the request's delay, read when the row is written
       (in the caller's transaction: that transaction's now); times keep microseconds.
   S12 Same input, same answer. Bad input is refused by the wrappers before a method sees it,
       with the same code and message whatever the store; a call that fails writes nothing
       (finish: per outcome; batches: per request). Text is stored byte for byte (names,
       keys, params, cron, error text up to 4 KiB) and compared bytewise: keys that differ
       in case or normalisation are different rows.
   S13 Queries: get, list (in (name, key) byte order, filtered, paged), history (newest
       first), next_due, nodes and clean-up (retention, orphans, dead nodes, a limit per part)
       behave alike in every store; setup twice is harmless.
   S14 Batches (version 2): schedule_many gives each request what schedule would, in order for
       a row named twice; schedule_many_tx does the same in the caller's transaction, and its
       rows exist if and only if that transaction commits. A store without it refuses with
       PGSCHED_ERR_UNSUPPORTED. */

#define PGSCHED_STORE_VERSION 2

/* A notification from a store (fixed-size so that waiting allocates nothing). */
typedef enum pgsched_event_kind {
    PGSCHED_EVENT_CHANGE = 1,     /* a row changed: status, due time, or it was removed */
    PGSCHED_EVENT_CANCEL = 2,     /* a cancel was requested for a running row of `owner` */
    PGSCHED_EVENT_RESYNC = 3,     /* events may have been missed (reconnect, overflow): poll */
    PGSCHED_EVENT_DUE = 4         /* work of type `name` is due at next_run: a hint of new work
                                     that names no row (key, statuses and version unset) */
} pgsched_event_kind;

typedef struct pgsched_event {
    pgsched_event_kind kind;
    pgsched_status old_status;   /* CHANGE: before (NONE = created) */
    pgsched_status new_status;   /* CHANGE: after (NONE = removed) */
    pgsched_time next_run;       /* CHANGE to PENDING, DUE: the due time */
    int64_t version;             /* the row's version after the change */
    char name[PGSCHED_NAME_MAX + 1];
    char key[PGSCHED_KEY_MAX + 1];
    char node[PGSCHED_NODE_ID_MAX + 1];  /* the node that made the change ("" = unknown) */
    char owner[PGSCHED_NODE_ID_MAX + 1]; /* CANCEL: the node running the row */
} pgsched_event;

typedef struct pgsched_store_methods pgsched_store_methods;

struct pgsched_store {
    const pgsched_store_methods *methods;
};

/* Insert or update of (name, key). */
typedef struct pgsched_schedule_request {
    const char *name;
    const char *key;
    pgsched_schedule_kind kind;
    const char *cron;        /* CRON: the expression text to store */
    pgsched_duration every;  /* INTERVAL */
    const char *params;      /* JSON text (NULL = "{}") */
    int max_retries;         /* >= 0 */
    pgsched_time next_run;   /* the first run, store clock; 0 = the store's now + delay */
    int apply_after_run;     /* a running row: store the change for when its run ends */
    const char *node_id;     /* who makes the change (events); may be NULL */
    pgsched_duration delay;  /* with next_run 0: added to the store's now when the row is
                                written (any kind); >= 0, at most 100 years, 0 with next_run */
} pgsched_schedule_request;

typedef struct pgsched_schedule_info {
    int created;                /* a new row was inserted */
    int deferred;               /* the row is running; the change applies when the run ends */
    pgsched_status old_status;  /* NONE when created */
    pgsched_time next_run;      /* the row's due time now (earlier of stored and new) */
    int64_t version;
} pgsched_schedule_info;

typedef struct pgsched_claim_request {
    const char *node_id;
    const char *const *names;  /* the job types the node runs */
    size_t name_count;
    int max;                   /* at most this many rows */
    pgsched_duration lead;     /* also rows due within this much after the store's now (0 =
                                  due rows only; at most 1 s), whose runs wait for their due
                                  time: a claim sent just before the due time takes its row,
                                  so the run starts on time rather than a round trip and a
                                  commit late. A row claimed early gets started_at = its due
                                  time. A store may ignore it. */
} pgsched_claim_request;

typedef struct pgsched_claim_info {
    pgsched_time now;      /* the store's clock at the claim */
    pgsched_time next_due; /* earliest due time among the types' pending rows left; 0 = none */
} pgsched_claim_info;

/* What a take-back saw of the leases it left in place, so that the next look can wait until
   one of them could have stalled rather than come every period. */
typedef struct pgsched_take_back_info {
    pgsched_time now;        /* the store's clock when it looked; 0 = the store does not say
                                (the engine then looks every stall_check_period) */
    pgsched_time next_stall; /* when the running row silent the longest, of those left
                                running, stalls unless renewed first: its last heartbeat +
                                stall_timeout (at or before `now` when such a row is stalled
                                already but was locked or beyond max); 0 = no row running */
} pgsched_take_back_info;

/* One lease a node holds: the row and the token it was claimed with. */
typedef struct pgsched_lease {
    const char *name;
    const char *key;
    int64_t token;
} pgsched_lease;

/* Per lease, written by heartbeat. */
typedef struct pgsched_lease_state {
    int lost;             /* the row is gone or its token changed: stop the run */
    int cancel_requested; /* a cancel was requested for this run */
    int busy;             /* held, but another transaction had the row locked: not renewed
                             this time (a store without row locks never sets it) */
} pgsched_lease_state;

/* How a row continues after an attempt, decided by the engine (the store computes nothing). */
typedef enum pgsched_attempt_rule {
    PGSCHED_ATTEMPT_RESET = 0,   /* a fresh retry budget: attempt = 0 */
    PGSCHED_ATTEMPT_KEEP = 1,    /* a retry: the attempt stays counted */
    PGSCHED_ATTEMPT_UNCOUNT = 2  /* released: the attempt does not count */
} pgsched_attempt_rule;

typedef struct pgsched_finish_request {
    const char *name;
    const char *key;
    int64_t token;               /* the lease token: the write happens only if it still holds */
    pgsched_outcome outcome;
    pgsched_status status;       /* the row's next status: PENDING/COMPLETED/FAILED/CANCELLED */
    pgsched_time next_run;       /* PENDING: due time (store clock); 0 = now + retry_delay */
    pgsched_duration retry_delay;
    pgsched_attempt_rule attempt_rule;
    const char *error;           /* error text for FAILURE/STALLED (NULL = none) */
    const char *node_id;         /* the node writing the outcome */
    /* A cancel requested for the run wins over a FAILURE, STALLED or RELEASED outcome (the
       run's node may not have seen the request before the attempt ended): when the row's
       cancel_requested is set and this is not NONE, the store records CANCELLED with this
       status and due time (0 = now) and a fresh budget instead. */
    pgsched_status cancelled_status;
    pgsched_time cancelled_next_run;
    /* Nonzero: the attempt never started (a claimed row given back or cancelled while it
       waited in the node's queue): the row is written as for any outcome, but no history
       row, which records attempts that ran. */
    int not_started;
} pgsched_finish_request;

typedef struct pgsched_finish_info {
    pgsched_result code;        /* OK; LEASE_LOST: another run owns the row, nothing written;
                                   BUSY: another transaction has the row locked, try again */
    pgsched_outcome outcome; /* what was recorded (CANCELLED when the cancel won) */
    pgsched_status new_status;  /* what the row became (NONE: removed, as requested) */
    pgsched_time next_run;      /* PENDING: its due time */
    int64_t version;
    int replayed;               /* OK: this lease's outcome had been recorded already (a retry
                                   after a lost reply); nothing changed, the fields above are 0 */
} pgsched_finish_info;

typedef struct pgsched_change_info {
    pgsched_change_effect effect; /* cancel and remove: what they did; else NONE */
    pgsched_status old_status;
    pgsched_status new_status;  /* NONE when removed */
    pgsched_time next_run;      /* trigger: the new due time */
    int64_t version;
    char owner[PGSCHED_NODE_ID_MAX + 1]; /* running rows: the node running it */
} pgsched_change_info;

typedef struct pgsched_node_record {
    const char *id;
    const char *host;
    int64_t pid;
    const char *const *names;   /* job types the node has registered */
    size_t name_count;
    int status_events;          /* nonzero: the node wants every change of the cluster as an
                                   event (it has on_status); a store may then announce the
                                   changes that only tell of a status (claims, outcomes that
                                   end a run) only while some node wants them */
} pgsched_node_record;

/* What maintenance to do; a duration of PGSCHED_NEVER skips that part. */
typedef struct pgsched_cleanup_request {
    const char *node_id;
    pgsched_duration finished_retention; /* delete finished one-time rows older than this */
    pgsched_duration history_retention;  /* delete run history older than this, and records
                                            of nodes not seen for this (and orphan_timeout) */
    /* delete rows idle for this long whose type no node, running or stopped, registered
       within it: a type whose nodes are all down for a deploy loses nothing */
    pgsched_duration orphan_timeout;
    size_t limit;                        /* at most this many rows per part (0 = 10000) */
} pgsched_cleanup_request;

typedef struct pgsched_cleanup_info {
    size_t finished_deleted;
    size_t history_deleted;
    size_t orphans_deleted;
    size_t nodes_deleted;
} pgsched_cleanup_info;

typedef struct pgsched_listener pgsched_listener; /* a store's subscription to its events */

struct pgsched_store_methods {
    int version; /* PGSCHED_STORE_VERSION the table was written for */
    const char *name;

    /* ---- version 1: every member required ---- */

    /* Create or upgrade the schema (or check it when the store was told not to create). */
    pgsched_result (*setup)(pgsched_store *s, pgsched_error *err);
    void (*destroy)(pgsched_store *s);
    pgsched_result (*now)(pgsched_store *s, pgsched_time *now, pgsched_error *err);

    /* Insert or update. A running row: PGSCHED_ERR_RUNNING unless apply_after_run. Otherwise
       the row becomes pending with the new schedule, params and budget (attempt 0), and its
       due time is the earlier of the stored one (when it was pending) and the new one. A new
       due time of 0 is the store's own now + req->delay, read when the row is written.
       `external_conn` is always NULL since version 2 (the caller's transaction goes through
       schedule_many_tx); a store may refuse anything else with PGSCHED_ERR_UNSUPPORTED.
       Rules S2, S4, S7, S11, S12. */
    pgsched_result (*schedule)(pgsched_store *s, const pgsched_schedule_request *req,
                               void *external_conn, pgsched_schedule_info *out,
                               pgsched_error *err);

    /* Moves up to req->max due pending rows of the given types to running for the node, in
       due order, each with a fresh lease token and attempt + 1. Appends them to `out`.
       Rules S5, S8. */
    pgsched_result (*claim)(pgsched_store *s, const pgsched_claim_request *req,
                            pgsched_job_list *out, pgsched_claim_info *info,
                            pgsched_error *err);

    /* Renews (when `renew`) the node's leases in one operation and reports, per lease, whether
       it is lost, whether a cancel was requested, and whether it was busy (held, not renewed:
       another transaction had the row locked). Also marks the node as seen. Rule S5. */
    pgsched_result (*heartbeat)(pgsched_store *s, const char *node_id,
                                const pgsched_lease *leases, size_t count, int renew,
                                pgsched_lease_state *states, pgsched_time *now,
                                pgsched_error *err);

    /* Records outcomes, each conditional on its lease token; writes a history row for each
       outcome written (none when not_started); applies a
       pending re-schedule or a pending removal. results[i] says what happened to outcome i.
       A CANCELLED outcome (or one the cancel won over) acknowledges a cancel request.
       Rules S1, S2, S3, S5. */
    pgsched_result (*finish)(pgsched_store *s, const pgsched_finish_request *outcomes, size_t count,
                             pgsched_finish_info *results, pgsched_error *err);

    /* Moves up to `max` running rows whose lease was not renewed within stall_timeout to the
       node with fresh tokens (still running, attempt unchanged) and appends them to `out`; the
       engine then records each as a STALLED outcome. The history row of an attempt names the
       node that claimed it, not a node that took it back. Fills *info (zeroed by the
       wrapper; a store may leave it so). Rules S5, S9. */
    pgsched_result (*take_back)(pgsched_store *s, const char *node_id,
                                pgsched_duration stall_timeout, int max, pgsched_job_list *out,
                                pgsched_take_back_info *info, pgsched_error *err);

    /* Rule S10 (and S6: a cancel of a running row raises CANCEL for its owner). */
    pgsched_result (*cancel)(pgsched_store *s, const char *name, const char *key,
                             const char *node_id, pgsched_change_info *out,
                             pgsched_error *err);
    pgsched_result (*trigger)(pgsched_store *s, const char *name, const char *key,
                              const char *node_id, pgsched_change_info *out,
                              pgsched_error *err);
    pgsched_result (*remove)(pgsched_store *s, const char *name, const char *key,
                             const char *node_id, pgsched_change_info *out,
                             pgsched_error *err);

    pgsched_result (*get)(pgsched_store *s, const char *name, const char *key,
                          pgsched_job_list *out, pgsched_error *err);
    pgsched_result (*list)(pgsched_store *s, const pgsched_list_filter *filter,
                           pgsched_job_list *out, pgsched_error *err);
    /* Newest first; name/key NULL = all instances; limit 0 = 100. */
    pgsched_result (*history)(pgsched_store *s, const char *name, const char *key, size_t limit,
                              pgsched_run_list *out, pgsched_error *err);

    /* Earliest due time among pending rows of the types (0 = none). */
    pgsched_result (*next_due)(pgsched_store *s, const char *const *names, size_t count,
                               pgsched_time *next, pgsched_time *now, pgsched_error *err);

    /* Records the node (or renews its record) with the types it registers and marks it seen. */
    pgsched_result (*node_register)(pgsched_store *s, const pgsched_node_record *node,
                                    pgsched_error *err);
    /* Marks the node stopped. Its record, types included, stays until cleanup deletes it. */
    pgsched_result (*node_unregister)(pgsched_store *s, const char *node_id, pgsched_error *err);

    pgsched_result (*cleanup)(pgsched_store *s, const pgsched_cleanup_request *req,
                              pgsched_cleanup_info *out, pgsched_error *err);

    /* Events: every change made through any node sharing the store reaches every listener
       (deletions by cleanup excepted: retention and orphan clean-up raise no events). Rule
       S6, with its exceptions while no node wants status events: status-only changes, and a
       batch's due work (schedule_many, finish) as one DUE event per job type. */
    pgsched_result (*listen_open)(pgsched_store *s, pgsched_listener **out, pgsched_error *err);
    /* Waits up to `timeout` for events; writes at most `cap`, sets *count (0 on timeout). */
    pgsched_result (*listen_wait)(pgsched_store *s, pgsched_listener *l,
                                  pgsched_duration timeout, pgsched_event *events, size_t cap,
                                  size_t *count, pgsched_error *err);
    /* Makes a listen_wait in progress return at once (from any thread). */
    void (*listen_wake)(pgsched_store *s, pgsched_listener *l);
    void (*listen_close)(pgsched_store *s, pgsched_listener *l);

    /* ---- version 2: optional as a group and each on its own (NULL = not offered) ---- */

    /* Optional (NULL: the wrapper calls schedule once per request). `count` requests, each as
       schedule would take it, at most PGSCHED_SCHEDULE_BATCH_MAX, no (name, key) twice,
       written as one operation: results[i] and outs[i] are what schedule would have given
       request i (PGSCHED_ERR_RUNNING for a running row without apply_after_run). Returns
       PGSCHED_OK once every result is set, or an error when nothing was written. Rule S14. */
    pgsched_result (*schedule_many)(pgsched_store *s, const pgsched_schedule_request *reqs,
                                    size_t count, pgsched_schedule_info *outs,
                                    pgsched_result *results, pgsched_error *err);
    /* Optional (NULL: PGSCHED_ERR_UNSUPPORTED). The same inside the caller's open transaction
       on the caller's connection `conn` (a PGconn for a PostgreSQL store): the rows exist if
       and only if that transaction commits. It must not make the caller's transaction fail
       (beyond a failure of the write itself) nor change its session settings. */
    pgsched_result (*schedule_many_tx)(pgsched_store *s, void *conn,
                                       const pgsched_schedule_request *reqs, size_t count,
                                       pgsched_schedule_info *outs, pgsched_result *results,
                                       pgsched_error *err);
};

/* The wrappers: check every argument (names, keys, UTF-8, JSON, pointers, ids), give the
   same errors whatever the store, then call the method. Use these, not the table. */
PGSCHED_DEF pgsched_result pgsched_store_setup(pgsched_store *s, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_schedule(pgsched_store *s,
                                                  const pgsched_schedule_request *req,
                                                  pgsched_schedule_info *out,
                                                  pgsched_error *err);
/* Many requests at once (PGSCHED_STORE_VERSION 2). results[i] (and outs[i], which may be
   NULL) is what pgsched_store_schedule would give request i: a request that fails its checks
   fails alone and writes nothing; the others are written in batches of at most
   PGSCHED_SCHEDULE_BATCH_MAX (a request repeating an earlier (name, key) of the same call is
   written after it, as separate calls would). Returns PGSCHED_OK when every request is OK,
   else the code of the first request that failed, with `err` naming its index and why. */
#define PGSCHED_SCHEDULE_BATCH_MAX 5000
PGSCHED_DEF pgsched_result pgsched_store_schedule_many(pgsched_store *s,
                                                       const pgsched_schedule_request *reqs,
                                                       size_t count,
                                                       pgsched_schedule_info *outs,
                                                       pgsched_result *results,
                                                       pgsched_error *err);
/* The same in the caller's open transaction on `conn` (the store's schedule_many_tx;
   PGSCHED_ERR_UNSUPPORTED for every request when the store has none). */
PGSCHED_DEF pgsched_result pgsched_store_schedule_many_tx(pgsched_store *s, void *conn,
                                                          const pgsched_schedule_request *reqs,
                                                          size_t count,
                                                          pgsched_schedule_info *outs,
                                                          pgsched_result *results,
                                                          pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_claim(pgsched_store *s, const pgsched_claim_request *req,
                                               pgsched_job_list *out,
                                               pgsched_claim_info *info, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_heartbeat(pgsched_store *s, const char *node_id,
                                                   const pgsched_lease *leases, size_t count,
                                                   int renew, pgsched_lease_state *states,
                                                   pgsched_time *now, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_finish(pgsched_store *s, const pgsched_finish_request *outcomes,
                                                size_t count, pgsched_finish_info *results,
                                                pgsched_error *err);
/* info may be NULL. */
PGSCHED_DEF pgsched_result pgsched_store_take_back(pgsched_store *s, const char *node_id,
                                                   pgsched_duration stall_timeout, int max,
                                                   pgsched_job_list *out,
                                                   pgsched_take_back_info *info,
                                                   pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_cancel(pgsched_store *s, const char *name,
                                                const char *key, const char *node_id,
                                                pgsched_change_info *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_trigger(pgsched_store *s, const char *name,
                                                 const char *key, const char *node_id,
                                                 pgsched_change_info *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_remove(pgsched_store *s, const char *name,
                                                const char *key, const char *node_id,
                                                pgsched_change_info *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_get(pgsched_store *s, const char *name, const char *key,
                                             pgsched_job_list *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_list(pgsched_store *s, const pgsched_list_filter *filter,
                                              pgsched_job_list *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_history(pgsched_store *s, const char *name,
                                                 const char *key, size_t limit,
                                                 pgsched_run_list *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_next_due(pgsched_store *s, const char *const *names,
                                                  size_t count, pgsched_time *next,
                                                  pgsched_time *now, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_node_register(pgsched_store *s,
                                                       const pgsched_node_record *node,
                                                       pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_node_unregister(pgsched_store *s, const char *node_id,
                                                         pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_cleanup(pgsched_store *s,
                                                 const pgsched_cleanup_request *req,
                                                 pgsched_cleanup_info *out,
                                                 pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_listen_open(pgsched_store *s, pgsched_listener **out,
                                                     pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_listen_wait(pgsched_store *s, pgsched_listener *l,
                                                     pgsched_duration timeout,
                                                     pgsched_event *events, size_t cap,
                                                     size_t *count, pgsched_error *err);
PGSCHED_DEF void pgsched_store_listen_wake(pgsched_store *s, pgsched_listener *l);
PGSCHED_DEF void pgsched_store_listen_close(pgsched_store *s, pgsched_listener *l);

/* Validators the wrappers use, public for stores and tools. */
PGSCHED_DEF pgsched_result pgsched_validate_name(const char *name, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_validate_key(const char *key, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_validate_json(const char *json, pgsched_error *err);
/* A plain SQL name: ASCII letters, digits, '_', not starting with a digit, 1..max_len bytes. */
PGSCHED_DEF pgsched_result pgsched_validate_identifier(const char *what, const char *ident,
                                                       size_t max_len, pgsched_error *err);

#ifdef __cplusplus
}
#endif

#endif /* PGSCHED_H_INCLUDED */

/* ============================================================================================
   IMPLEMENTATION
   ============================================================================================ */
#ifdef PGSCHED_IMPLEMENTATION
#ifndef PGSCHED_IMPLEMENTATION_DONE
#define PGSCHED_IMPLEMENTATION_DONE

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/utsname.h>

/* Platforms: Linux with glibc or musl is tested; other POSIX.1-2001 systems should work. The
   implementation needs clock_gettime(CLOCK_MONOTONIC) and pthreads. When another header came
   first under -std=c99/c11, the POSIX level is the one that header's feature macros chose:
   nothing at all (then CLOCK_MONOTONIC is hidden: the #error below), or POSIX.1-1995, which
   `-pthread` selects on glibc. That level hides pthread_condattr_setclock, which the C library
   has all the same: it is declared here. macOS has no pthread_condattr_setclock: there, and
   wherever PGSCHED_NO_MONOTONIC_COND is defined, condition variables wait on the realtime
   clock and each monotonic deadline is converted when the wait starts. */
#if !defined(CLOCK_MONOTONIC)
#error "pgsched: POSIX is hidden: define _POSIX_C_SOURCE=200809L before any #include in the file that defines PGSCHED_IMPLEMENTATION (or compile with -D_POSIX_C_SOURCE=200809L)"
#endif
#if defined(__APPLE__) && !defined(PGSCHED_NO_MONOTONIC_COND)
#define PGSCHED_NO_MONOTONIC_COND
#endif
#if !defined(PGSCHED_NO_MONOTONIC_COND) && !defined(__cplusplus) && defined(_POSIX_C_SOURCE) && \
    _POSIX_C_SOURCE < 200112L && !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE) &&       \
    !defined(_BSD_SOURCE) && !(defined(_XOPEN_SOURCE) && _XOPEN_SOURCE >= 600)
extern int pthread_condattr_setclock(pthread_condattr_t *attr, clockid_t clock_id);
#endif

#if defined(PGSCHED_MALLOC) && defined(PGSCHED_REALLOC) && defined(PGSCHED_FREE)
/* all three given */
#elif !defined(PGSCHED_MALLOC) && !defined(PGSCHED_REALLOC) && !defined(PGSCHED_FREE)
#define PGSCHED_MALLOC(sz) malloc(sz)
#define PGSCHED_REALLOC(p, sz) realloc(p, sz)
#define PGSCHED_FREE(p) free(p)
#else
#error "pgsched: define all of PGSCHED_MALLOC, PGSCHED_REALLOC and PGSCHED_FREE, or none"
#endif

#ifndef PGSCHED_ASSERT
#include <assert.h>
#define PGSCHED_ASSERT(x) assert(x)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- [pgsched: basics] implementation ---------------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define PGSCHED__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PGSCHED__PRINTF(a, b)
#endif

#define PGSCHED__UNUSED(x) ((void)(x))

PGSCHED_DEF const char *pgsched_result_string(pgsched_result code)
{
    switch (code) {
    case PGSCHED_OK: return "success";
    case PGSCHED_ERR_INVALID_ARGUMENT: return "an argument is missing or impossible";
    case PGSCHED_ERR_NOMEM: return "out of memory";
    case PGSCHED_ERR_CRON_SYNTAX: return "the cron expression is malformed";
    case PGSCHED_ERR_CRON_NEVER: return "the cron expression can never match";
    case PGSCHED_ERR_ZONE_UNKNOWN: return "the time zone is not in the zone database";
    case PGSCHED_ERR_ZONE_CORRUPT: return "the zone file is unreadable or corrupt";
    case PGSCHED_ERR_TIME_RANGE: return "the time is outside the supported range";
    case PGSCHED_ERR_TIME_SYNTAX: return "the timestamp is not RFC 3339";
    case PGSCHED_ERR_DURATION: return "the duration is malformed or out of range";
    case PGSCHED_ERR_NO_NEXT: return "the schedule has no further run";
    case PGSCHED_ERR_IDENTIFIER: return "the identifier is not a plain SQL name";
    case PGSCHED_ERR_NAME: return "the job name is invalid";
    case PGSCHED_ERR_KEY: return "the job key is invalid";
    case PGSCHED_ERR_UTF8: return "the text is not valid UTF-8";
    case PGSCHED_ERR_JSON: return "the parameters are not valid JSON";
    case PGSCHED_ERR_CONFIG: return "the configuration is invalid";
    case PGSCHED_ERR_NOT_REGISTERED: return "the job type is not registered on this node";
    case PGSCHED_ERR_STATE: return "the call is not allowed in the node's current state";
    case PGSCHED_ERR_NOT_FOUND: return "no such job instance";
    case PGSCHED_ERR_RUNNING: return "the job instance is running";
    case PGSCHED_ERR_NOT_PENDING: return "the job instance is not pending";
    case PGSCHED_ERR_LEASE_LOST: return "the lease is no longer held";
    case PGSCHED_ERR_CONNECTION: return "the database connection is down";
    case PGSCHED_ERR_DATABASE: return "the database refused the statement";
    case PGSCHED_ERR_SCHEMA_VERSION: return "the schema version does not match this library";
    case PGSCHED_ERR_TIMEOUT: return "the operation timed out";
    case PGSCHED_ERR_UNSUPPORTED: return "not supported by this build or store";
    case PGSCHED_ERR_SCHEDULE: return "the schedule is invalid";
    case PGSCHED_ERR_TOO_LARGE: return "the text is too large";
    case PGSCHED_ERR_BUSY: return "the row is locked by another transaction; try again";
    }
    return "unknown result code";
}

/* Fills `err` (when given) and returns `code`, so failures read `return pgsched__fail(...)`. */
static pgsched_result pgsched__fail(pgsched_error *err, pgsched_result code, const char *fmt, ...)
    PGSCHED__PRINTF(3, 4);
static pgsched_result pgsched__fail(pgsched_error *err, pgsched_result code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

static pgsched_result pgsched__ok(pgsched_error *err)
{
    if (err) {
        err->code = PGSCHED_OK;
        err->message[0] = '\0';
    }
    return PGSCHED_OK;
}

/* ---- allocation ---- */

static void *pgsched__default_malloc(size_t size, void *user)
{
    PGSCHED__UNUSED(user);
    return PGSCHED_MALLOC(size);
}
static void *pgsched__default_realloc(void *ptr, size_t size, void *user)
{
    PGSCHED__UNUSED(user);
    return PGSCHED_REALLOC(ptr, size);
}
static void pgsched__default_free(void *ptr, void *user)
{
    PGSCHED__UNUSED(user);
    PGSCHED_FREE(ptr);
}

/* Nonzero when `a` gives some but not all of its three functions. */
static int pgsched__allocator_partial(const pgsched_allocator *a)
{
    int n = a ? !!a->malloc_fn + !!a->realloc_fn + !!a->free_fn : 0;
    return n != 0 && n != 3;
}

/* The given allocator, or the default when none is given (callers refuse partial ones). */
static pgsched_allocator pgsched__allocator(const pgsched_allocator *a)
{
    pgsched_allocator r;
    r.malloc_fn = pgsched__default_malloc;
    r.realloc_fn = pgsched__default_realloc;
    r.free_fn = pgsched__default_free;
    r.user = NULL;
    if (a && a->malloc_fn && a->realloc_fn && a->free_fn) r = *a;
    return r;
}

static const pgsched_allocator pgsched__default_allocator = {
    pgsched__default_malloc, pgsched__default_realloc, pgsched__default_free, NULL};

static pgsched_result pgsched__allocator_refused(pgsched_error *err)
{
    return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                         "allocator: give all of malloc_fn, realloc_fn and free_fn, or none");
}

static void *pgsched__malloc(const pgsched_allocator *a, size_t size)
{
    return a->malloc_fn(size ? size : 1, a->user);
}
static void *pgsched__calloc(const pgsched_allocator *a, size_t size)
{
    void *p = pgsched__malloc(a, size);
    if (p) memset(p, 0, size);
    return p;
}
static void *pgsched__realloc(const pgsched_allocator *a, void *p, size_t size)
{
    return a->realloc_fn(p, size ? size : 1, a->user);
}
static void pgsched__free(const pgsched_allocator *a, void *p)
{
    if (p) a->free_fn(p, a->user);
}
static char *pgsched__strdup(const pgsched_allocator *a, const char *s)
{
    size_t n;
    char *r;
    if (!s) return NULL;
    n = strlen(s);
    r = (char *)pgsched__malloc(a, n + 1);
    if (r) memcpy(r, s, n + 1);
    return r;
}

/* Copies at most size-1 bytes and always terminates, without cutting a UTF-8 sequence. */
static void pgsched__copy_text(char *dst, size_t size, const char *src)
{
    size_t n;
    if (size == 0) return;
    if (!src) src = "";
    n = strlen(src);
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

PGSCHED_DEF pgsched_time pgsched_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (pgsched_time)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static pgsched_time pgsched__monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (pgsched_time)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- [pgsched: cron] implementation ------------------------------------------------------

   Layout of this section:
     civil time        proleptic Gregorian conversions, RFC 3339 in and out, durations
     zones             a TZif reader (v1 and v2+ with the POSIX-TZ footer) and offset look-up
     cron parsing      fields to bitmasks, with an error sentence for every malformed form
     cron matching     the calendar search on the wall clock and the daylight-saving rules
     calculators       interval, once, and the schedule dispatcher

   Cron times are handled in whole seconds internally; the public API speaks microseconds.
   "Wall seconds" are seconds since 1970-01-01T00:00:00 read off a zone's wall clock, i.e.
   instant + offset; the calendar search works on them as if they were UTC. */

/* ---- civil time ---------------------------------------------------------------------------- */

#define PGSCHED__US 1000000
#define PGSCHED__SEC_MIN (-2208988800LL) /* 1900-01-01T00:00:00Z */
#define PGSCHED__SEC_MAX 253402300799LL  /* 9999-12-31T23:59:59Z */

/* ASCII only, whatever the locale. */
static int pgsched__is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static int pgsched__is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int pgsched__is_alnum(int c)
{
    return pgsched__is_digit(c) || pgsched__is_alpha(c);
}
static int pgsched__upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

/* A character as it can be quoted in a message without breaking it or its UTF-8. */
static const char *pgsched__char_desc(char c, char *buf)
{
    unsigned char u = (unsigned char)c;
    if (u > 32 && u < 127) {
        buf[0] = c;
        buf[1] = '\0';
    } else {
        snprintf(buf, 8, "\\x%02X", u);
    }
    return buf;
}

/* Index of the lowest set bit; x must not be 0. */
static int pgsched__ctz64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(x);
#else
    int n = 0;
    while (!(x & 1)) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

static int pgsched__ctz32(uint32_t x)
{
    return pgsched__ctz64(x);
}

static int64_t pgsched__floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static int pgsched__is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int pgsched__days_in_month(int64_t y, int m)
{
    static const unsigned char len[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && pgsched__is_leap(y) ? 29 : len[m];
}

/* Days since 1970-01-01. The year is counted from March so that the leap day ends it; then
   every 400-year era has exactly 146097 days and month lengths follow a 153-day pattern over
   five months. 719468 is the number of days from 0000-03-01 to 1970-01-01. */
static int64_t pgsched__days_from_civil(int64_t y, int m, int d)
{
    int64_t yy = y - (m <= 2 ? 1 : 0);
    int64_t era = pgsched__floor_div(yy, 400);
    int64_t yoe = yy - era * 400;
    int64_t mp = (m + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void pgsched__civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = pgsched__floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

/* 0 = Sunday. 1970-01-01 was a Thursday. */
static int pgsched__weekday(int64_t days)
{
    return (int)(days - pgsched__floor_div(days + 4, 7) * 7 + 4);
}

PGSCHED_DEF size_t pgsched_time_format(pgsched_time t, int offset_seconds, int utc_z, char *buf,
                                       size_t size)
{
    char tmp[PGSCHED_TIME_STRING_MAX + 8];
    int64_t secs, local, days, sod, y;
    int m, d, n, us;
    if (!buf || t < PGSCHED_TIME_MIN || t > PGSCHED_TIME_MAX) return 0;
    if (offset_seconds <= -86400 || offset_seconds >= 86400) return 0;
    secs = pgsched__floor_div(t, PGSCHED__US);
    us = (int)(t - secs * PGSCHED__US);
    local = secs + offset_seconds;
    days = pgsched__floor_div(local, 86400);
    sod = local - days * 86400;
    pgsched__civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) return 0;
    n = snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d", (int)y, m, d, (int)(sod / 3600),
                 (int)(sod / 60 % 60), (int)(sod % 60));
    if (us) n += snprintf(tmp + n, sizeof tmp - (size_t)n, ".%06d", us);
    if (offset_seconds == 0 && utc_z) {
        tmp[n++] = 'Z';
        tmp[n] = '\0';
    } else {
        int a = offset_seconds < 0 ? -offset_seconds : offset_seconds;
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, "%c%02d:%02d",
                      offset_seconds < 0 ? '-' : '+', a / 3600, a / 60 % 60);
        /* RFC 3339 has no seconds in offsets; local mean time offsets need them. */
        if (a % 60) n += snprintf(tmp + n, sizeof tmp - (size_t)n, ":%02d", a % 60);
    }
    if ((size_t)n + 1 > size) return 0;
    memcpy(buf, tmp, (size_t)n + 1);
    return (size_t)n;
}

/* Reads exactly `count` digits at *p; -1 when they are not all there. */
static int pgsched__digits(const char **p, int count)
{
    int v = 0, i;
    for (i = 0; i < count; i++) {
        unsigned char c = (unsigned char)(*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += count;
    return v;
}

#define PGSCHED__TIME_SYNTAX(what)                                                                 \
    pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX,                                                    \
                  "\"%.64s\" is not an RFC 3339 time (like 2026-03-08T07:00:00Z): " what           \
                  " at column %d",                                                                 \
                  text, (int)(p - text) + 1)

PGSCHED_DEF pgsched_result pgsched_time_parse(const char *text, pgsched_time *out,
                                              pgsched_error *err)
{
    const char *p = text;
    int y, mo, d, h, mi, s, frac = 0, scale = PGSCHED__US, off = 0;
    int64_t secs, t;
    if (!text || !out)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "the time text or output is NULL");
    if (!*text) return pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX, "the time text is empty");
    if ((y = pgsched__digits(&p, 4)) < 0) return PGSCHED__TIME_SYNTAX("expected a 4-digit year");
    if (*p != '-') return PGSCHED__TIME_SYNTAX("expected \"-\" after the year");
    p++;
    if ((mo = pgsched__digits(&p, 2)) < 0) return PGSCHED__TIME_SYNTAX("expected a 2-digit month");
    if (*p != '-') return PGSCHED__TIME_SYNTAX("expected \"-\" after the month");
    p++;
    if ((d = pgsched__digits(&p, 2)) < 0) return PGSCHED__TIME_SYNTAX("expected a 2-digit day");
    if (*p != 'T' && *p != 't' && *p != ' ')
        return PGSCHED__TIME_SYNTAX("expected \"T\" between the date and the time");
    p++;
    if ((h = pgsched__digits(&p, 2)) < 0) return PGSCHED__TIME_SYNTAX("expected a 2-digit hour");
    if (*p != ':') return PGSCHED__TIME_SYNTAX("expected \":\" after the hour");
    p++;
    if ((mi = pgsched__digits(&p, 2)) < 0) return PGSCHED__TIME_SYNTAX("expected 2-digit minutes");
    if (*p != ':') return PGSCHED__TIME_SYNTAX("expected \":\" after the minutes");
    p++;
    if ((s = pgsched__digits(&p, 2)) < 0) return PGSCHED__TIME_SYNTAX("expected 2-digit seconds");
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return PGSCHED__TIME_SYNTAX("expected digits after \".\"");
        /* Digits past microseconds are accepted and dropped. */
        while (*p >= '0' && *p <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om, os = 0;
        p++;
        if ((oh = pgsched__digits(&p, 2)) < 0)
            return PGSCHED__TIME_SYNTAX("expected 2-digit offset hours");
        if (*p != ':') return PGSCHED__TIME_SYNTAX("expected \":\" in the offset");
        p++;
        if ((om = pgsched__digits(&p, 2)) < 0)
            return PGSCHED__TIME_SYNTAX("expected 2-digit offset minutes");
        if (*p == ':') { /* the seconds pgsched_time_format writes for local mean time */
            p++;
            if ((os = pgsched__digits(&p, 2)) < 0)
                return PGSCHED__TIME_SYNTAX("expected 2-digit offset seconds");
        }
        if (oh > 23 || om > 59 || os > 59)
            return pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX,
                                 "\"%.64s\" is not a valid time: offset %02d:%02d is out of range "
                                 "00:00-23:59",
                                 text, oh, om);
        off = sign * (oh * 3600 + om * 60 + os);
    } else {
        return PGSCHED__TIME_SYNTAX("expected \"Z\" or an offset like +01:00");
    }
    if (*p) return PGSCHED__TIME_SYNTAX("unexpected text after the time");
    if (mo < 1 || mo > 12)
        return pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX,
                             "\"%.64s\" is not a valid time: month %d is out of range 1-12", text,
                             mo);
    if (d < 1 || d > pgsched__days_in_month(y, mo))
        return pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX,
                             "\"%.64s\" is not a valid time: day %d does not exist in %04d-%02d",
                             text, d, y, mo);
    if (h > 23)
        return pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX,
                             "\"%.64s\" is not a valid time: hour %d is out of range 0-23", text,
                             h);
    if (mi > 59)
        return pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX,
                             "\"%.64s\" is not a valid time: minute %d is out of range 0-59", text,
                             mi);
    if (s == 60)
        return pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX,
                             "\"%.64s\" is not a valid time: leap seconds (second 60) are not "
                             "supported",
                             text);
    if (s > 59)
        return pgsched__fail(err, PGSCHED_ERR_TIME_SYNTAX,
                             "\"%.64s\" is not a valid time: second %d is out of range 0-59", text,
                             s);
    secs = pgsched__days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off;
    t = secs * PGSCHED__US + frac;
    if (t < PGSCHED_TIME_MIN || t > PGSCHED_TIME_MAX)
        return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                             "\"%.64s\" is outside the supported range 1900-01-01T00:00:00Z to "
                             "9999-12-31T23:59:59.999999Z",
                             text);
    *out = t;
    return pgsched__ok(err);
}

#define PGSCHED__DURATION_LIMIT                                                                    \
    ((uint64_t)36525 * 86400 * PGSCHED__US) /* 100 years of 365.25 days */

/* Rewrites the bytes of a message that are not printable ASCII as \xNN, so that quoted input
   (a zone name, a macro, a duration) can neither break the message nor its UTF-8. */
static void pgsched__message_printable(pgsched_error *err)
{
    char out[PGSCHED_ERROR_MAX];
    const unsigned char *m;
    size_t o = 0;
    if (!err) return;
    for (m = (const unsigned char *)err->message; *m && o + 5 < sizeof out; m++) {
        if (*m >= 32 && *m < 127) out[o++] = (char)*m;
        else o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02X", *m);
    }
    out[o] = '\0';
    memcpy(err->message, out, o + 1);
}

/* The duration parser. `col0` > 0: the text starts at that column of a cron expression, and
   errors name columns of the expression, "(column N)"; 0: positions are counted in the
   text, "at column N". */
static pgsched_result pgsched__duration_parse_at(const char *text, int col0,
                                                 pgsched_duration *out, pgsched_error *err);

PGSCHED_DEF pgsched_result pgsched_duration_parse(const char *text, pgsched_duration *out,
                                                  pgsched_error *err)
{
    pgsched_result r = pgsched__duration_parse_at(text, 0, out, err);
    if (r != PGSCHED_OK) pgsched__message_printable(err);
    return r;
}

/* " (column N)" or " at column N" for the byte at p of text, as col0 says. */
static const char *pgsched__dur_col(char *buf, size_t n, const char *text, const char *p,
                                    int col0)
{
    if (col0 > 0) snprintf(buf, n, " (column %d)", col0 + (int)(p - text));
    else snprintf(buf, n, " at column %d", (int)(p - text) + 1);
    return buf;
}

static pgsched_result pgsched__duration_parse_at(const char *text, int col0,
                                                 pgsched_duration *out, pgsched_error *err)
{
    static const struct {
        const char *name;
        uint64_t us;
    } units[] = {{"us", 1},
                 {"ms", 1000},
                 {"s", 1000000},
                 {"m", 60000000},
                 {"h", (uint64_t)3600000000U},
                 {"d", (uint64_t)86400 * 1000000}};
    const char *p = text;
    uint64_t total = 0;
    if (!text || !out)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "the duration text or output is NULL");
    if (!*p) return pgsched__fail(err, PGSCHED_ERR_DURATION, "the duration is empty");
    if (*p == '-')
        return pgsched__fail(err, PGSCHED_ERR_DURATION,
                             "duration \"%.64s\" is negative; it must be positive", text);
    if (*p == '+') p++;
    do {
        uint64_t whole = 0, frac = 0, scale = 1, unit = 0;
        const char *num = p, *u;
        size_t ulen, i;
        int any = 0;
        while (*p >= '0' && *p <= '9') {
            /* Past 100 years the exact value no longer matters; saturate instead of wrapping. */
            if (whole < PGSCHED__DURATION_LIMIT) whole = whole * 10 + (uint64_t)(*p - '0');
            p++;
            any = 1;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                if (scale < (uint64_t)100000000000ULL) { /* 11 digits: below 1 us even in days */
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
                p++;
                any = 1;
            }
        }
        if (!any) {
            char col[32];
            return pgsched__fail(err, PGSCHED_ERR_DURATION,
                                 "duration \"%.64s\": expected a number%s, found \"%.16s\"",
                                 text, pgsched__dur_col(col, sizeof col, text, num, col0),
                                 *num ? num : "end");
        }
        u = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) p++;
        ulen = (size_t)(p - u);
        if (ulen == 0)
            return pgsched__fail(err, PGSCHED_ERR_DURATION,
                                 "duration \"%.64s\": missing unit after \"%.*s\" (use us, ms, s, "
                                 "m, h or d)",
                                 text, (int)(u - num), num);
        for (i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strlen(units[i].name) == ulen && memcmp(units[i].name, u, ulen) == 0)
                unit = units[i].us;
        if (!unit)
            return pgsched__fail(
                err, PGSCHED_ERR_DURATION,
                "duration \"%.64s\": unknown unit \"%.*s\" (use us, ms, s, m, h or "
                "d)",
                text, (int)(ulen > 16 ? 16 : ulen), u);
        if (whole > PGSCHED__DURATION_LIMIT / unit) {
            total = PGSCHED__DURATION_LIMIT + 1;
        } else {
            /* frac < scale <= 10^11 keeps both products below 2^63: a day is 8.64e10 us, so
               for units of a second and more divide through by 10^6 first. */
            uint64_t part;
            if (unit >= 1000000 && scale >= 1000000)
                part = frac * (unit / 1000000) / (scale / 1000000);
            else
                part = frac * unit / scale;
            total += whole * unit + part;
        }
        if (total > PGSCHED__DURATION_LIMIT)
            return pgsched__fail(err, PGSCHED_ERR_DURATION,
                                 "duration \"%.64s\" is longer than 100 years", text);
        if (*p && !(*p >= '0' && *p <= '9') && *p != '.') {
            char b[8], col[32];
            return pgsched__fail(err, PGSCHED_ERR_DURATION,
                                 "duration \"%.64s\": unexpected \"%s\"%s", text,
                                 *p == ' ' ? " " : pgsched__char_desc(*p, b),
                                 pgsched__dur_col(col, sizeof col, text, p, col0));
        }
    } while (*p);
    if (total == 0)
        return pgsched__fail(err, PGSCHED_ERR_DURATION,
                             "duration \"%.64s\" is zero; it must be positive", text);
    *out = (pgsched_duration)total;
    return pgsched__ok(err);
}

/* ---- zones --------------------------------------------------------------------------------- */

/* A date rule of a POSIX TZ string: 'J' Julian day 1..365 not counting Feb 29, 'N' zero-based
   day 0..365 counting it, 'M' month.week.weekday (week 5 = the last). */
typedef struct pgsched__tz_rule {
    char kind;
    int day, week, month;
    int32_t time; /* seconds after local midnight; may be negative or past 24h */
} pgsched__tz_rule;

typedef struct pgsched__tz {
    size_t count;    /* transitions in the table */
    int64_t *times;  /* strictly ascending instants, seconds */
    int32_t *offs;   /* offset (seconds east) in force from times[i] on */
    int32_t initial; /* before the first transition: time type 0 (RFC 8536 3.2) */
    int has_footer;  /* a POSIX TZ rule governs instants at and after the last transition */
    int has_dst;     /* the footer alternates between std_off and dst_off */
    int32_t std_off, dst_off;
    pgsched__tz_rule start, end;
    int32_t min_off, max_off; /* over everything above; bound the search for a wall time */
} pgsched__tz;

/* A stretch of constant offset [start, end), with the offset in force just before it.
   start is INT64_MIN (and prev_off == off) when nothing precedes; end is INT64_MAX when
   nothing follows. */
typedef struct pgsched__tz_seg {
    int64_t start, end;
    int32_t off, prev_off;
} pgsched__tz_seg;

#define PGSCHED__OFFSET_MAX 93599  /* 25:59:59, the RFC 8536 bound on a UT offset */
#define PGSCHED__OFFSET_MIN -89999 /* -24:59:59 */
#define PGSCHED__TZIF_MAX (1u << 20)

static void pgsched__tz_free(const pgsched_allocator *a, pgsched__tz *z)
{
    pgsched__free(a, z);
}

static uint32_t pgsched__be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t pgsched__be64(const unsigned char *p)
{
    uint64_t v = (uint64_t)pgsched__be32(p) << 32 | pgsched__be32(p + 4);
    /* Two's complement without relying on implementation-defined conversion. */
    if (v >> 63) return -(int64_t)(~v) - 1;
    return (int64_t)v;
}

static int32_t pgsched__be32s(const unsigned char *p)
{
    uint32_t v = pgsched__be32(p);
    if (v >> 31) return -(int32_t)(~v) - 1;
    return (int32_t)v;
}

/* [+-]h[h[h]][:mm[:ss]] of a TZ string; NULL when malformed. */
static const char *pgsched__tz_hms(const char *p, const char *end, int max_hours, int32_t *out)
{
    int32_t sign = 1, h = 0, m = 0, s = 0;
    int n = 0;
    if (p < end && (*p == '+' || *p == '-')) {
        if (*p == '-') sign = -1;
        p++;
    }
    while (p < end && *p >= '0' && *p <= '9' && n < 3) {
        h = h * 10 + (*p++ - '0');
        n++;
    }
    if (n == 0 || h > max_hours) return NULL;
    if (p < end && *p == ':') {
        p++;
        if (end - p < 2 || p[0] < '0' || p[0] > '5' || p[1] < '0' || p[1] > '9') return NULL;
        m = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (p < end && *p == ':') {
            p++;
            if (end - p < 2 || p[0] < '0' || p[0] > '5' || p[1] < '0' || p[1] > '9') return NULL;
            s = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
        }
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return p;
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits, + and -. */
static const char *pgsched__tz_abbr(const char *p, const char *end)
{
    const char *s;
    if (p < end && *p == '<') {
        s = ++p;
        while (p < end && (pgsched__is_alnum(*p) || *p == '+' || *p == '-')) p++;
        if (p >= end || *p != '>' || p - s < 3) return NULL;
        return p + 1;
    }
    s = p;
    while (p < end && pgsched__is_alpha(*p)) p++;
    return p - s >= 3 ? p : NULL;
}

static const char *pgsched__tz_number(const char *p, const char *end, int lo, int hi, int *out)
{
    int v = 0, n = 0;
    while (p < end && *p >= '0' && *p <= '9' && n < 4) {
        v = v * 10 + (*p++ - '0');
        n++;
    }
    if (n == 0 || v < lo || v > hi) return NULL;
    *out = v;
    return p;
}

static const char *pgsched__tz_date_rule(const char *p, const char *end, pgsched__tz_rule *r)
{
    r->time = 7200; /* 02:00, the POSIX default */
    r->week = r->month = r->day = 0;
    if (p < end && *p == 'J') {
        r->kind = 'J';
        p = pgsched__tz_number(p + 1, end, 1, 365, &r->day);
    } else if (p < end && *p == 'M') {
        r->kind = 'M';
        p = pgsched__tz_number(p + 1, end, 1, 12, &r->month);
        if (!p || p >= end || *p != '.') return NULL;
        p = pgsched__tz_number(p + 1, end, 1, 5, &r->week);
        if (!p || p >= end || *p != '.') return NULL;
        p = pgsched__tz_number(p + 1, end, 0, 6, &r->day);
    } else {
        r->kind = 'N';
        p = pgsched__tz_number(p, end, 0, 365, &r->day);
    }
    if (p && p < end && *p == '/') p = pgsched__tz_hms(p + 1, end, 167, &r->time);
    return p;
}

/* The POSIX TZ string of a TZif footer (RFC 8536 3.3, with the v3 extensions); 0 on success. */
static int pgsched__tz_footer(pgsched__tz *z, const char *p, const char *end)
{
    int32_t v;
    if (!(p = pgsched__tz_abbr(p, end))) return -1;
    if (!(p = pgsched__tz_hms(p, end, 24, &v))) return -1;
    z->std_off = -v; /* POSIX offsets count hours west */
    z->dst_off = z->std_off;
    z->has_dst = 0;
    z->has_footer = 1;
    if (p == end) return 0;
    if (!(p = pgsched__tz_abbr(p, end))) return -1;
    z->has_dst = 1;
    z->dst_off = z->std_off + 3600;
    if (p < end && *p != ',') {
        if (!(p = pgsched__tz_hms(p, end, 24, &v))) return -1;
        z->dst_off = -v;
    }
    if (p == end) {
        /* No rule given: POSIX leaves it to the implementation; use the US rule, as glibc does. */
        z->start.kind = z->end.kind = 'M';
        z->start.month = 3, z->start.week = 2, z->start.day = 0, z->start.time = 7200;
        z->end.month = 11, z->end.week = 1, z->end.day = 0, z->end.time = 7200;
        return 0;
    }
    if (*p != ',') return -1;
    if (!(p = pgsched__tz_date_rule(p + 1, end, &z->start))) return -1;
    if (p >= end || *p != ',') return -1;
    if (!(p = pgsched__tz_date_rule(p + 1, end, &z->end))) return -1;
    return p == end ? 0 : -1;
}

static void pgsched__tz_footer_segment(const pgsched__tz *z, int64_t t, pgsched__tz_seg *seg);

/* 2100-01-01T00:00:00Z: footer transitions up to here are precomputed into the table. */
#define PGSCHED__TZ_EXPAND_UNTIL 4102444800LL

/* The footer's transitions after `from` (but not before 1900) and before 2100, written to
   times/offs when given; returns their number. Precomputing them turns look-ups in the years
   that matter most into a binary search; later instants evaluate the rule each time. */
static uint64_t pgsched__tz_expand(const pgsched__tz *foot, int64_t from, int64_t *times,
                                   int32_t *offs)
{
    uint64_t n = 0;
    int64_t t = from < PGSCHED__SEC_MIN ? PGSCHED__SEC_MIN : from;
    pgsched__tz_seg seg;
    if (t >= PGSCHED__TZ_EXPAND_UNTIL) return 0;
    for (;;) {
        pgsched__tz_footer_segment(foot, t, &seg);
        if (seg.end >= PGSCHED__TZ_EXPAND_UNTIL) return n;
        t = seg.end;
        if (times) {
            pgsched__tz_footer_segment(foot, t, &seg);
            times[n] = t;
            offs[n] = seg.off;
        }
        n++;
    }
}

#define PGSCHED__TZ_CORRUPT(why)                                                                   \
    pgsched__fail(err, PGSCHED_ERR_ZONE_CORRUPT, "zone file for \"%s\" is corrupt: %s", name, why)

/* Parses TZif data (RFC 8536: version 1, or 2+ with 64-bit times and a footer) into one
   allocation owned by the caller. Data with leap-second records is refused: pgsched times
   are POSIX times. Also the entry point of tests/fuzz/fuzz_tzif.c. */
static pgsched_result pgsched__tz_parse(const unsigned char *data, size_t size, const char *name,
                                        const pgsched_allocator *a, pgsched__tz **out,
                                        pgsched_error *err)
{
    uint64_t isut, isstd, leap, timecnt, typecnt, charcnt, len, i;
    size_t pos = 0, tsize = 4, head;
    const unsigned char *times, *idx, *types;
    pgsched__tz *z, foot;
    int64_t last = 0;
    uint64_t extra = 0;
    int v2;
    *out = NULL;
    if (size < 44 || memcmp(data, "TZif", 4) != 0) return PGSCHED__TZ_CORRUPT("not a TZif file");
    if (data[4] != 0 && data[4] < '2') return PGSCHED__TZ_CORRUPT("unknown TZif version");
    v2 = data[4] >= '2';
    for (;;) {
        const unsigned char *h = data + pos;
        isut = pgsched__be32(h + 20);
        isstd = pgsched__be32(h + 24);
        leap = pgsched__be32(h + 28);
        timecnt = pgsched__be32(h + 32);
        typecnt = pgsched__be32(h + 36);
        charcnt = pgsched__be32(h + 40);
        len = timecnt * (tsize + 1) + typecnt * 6 + charcnt + leap * (tsize + 4) + isstd + isut;
        if (len > size - pos - 44) return PGSCHED__TZ_CORRUPT("truncated data block");
        if (!v2 || tsize == 8) break;
        /* Skip the version 1 block: the 64-bit block after it supersedes it. */
        pos += 44 + (size_t)len;
        tsize = 8;
        if (size - pos < 44 || memcmp(data + pos, "TZif", 4) != 0)
            return PGSCHED__TZ_CORRUPT("missing second header");
    }
    /* A "right/" zone counts leap seconds in its times: they are not POSIX times, and
       skipping its leap records would shift every transition by up to 27 s. */
    if (leap)
        return pgsched__fail(err, PGSCHED_ERR_ZONE_UNKNOWN,
                             "time zone \"%s\" counts leap seconds (a \"right/\" zone), which "
                             "pgsched's POSIX times do not: use the zone without \"right/\"",
                             name);
    if (typecnt == 0 || typecnt > 256) return PGSCHED__TZ_CORRUPT("bad number of time types");
    if (charcnt == 0) return PGSCHED__TZ_CORRUPT("no abbreviation characters");
    if ((isstd != 0 && isstd != typecnt) || (isut != 0 && isut != typecnt))
        return PGSCHED__TZ_CORRUPT("bad indicator counts");
    head = pos + 44;
    times = data + head;
    idx = times + timecnt * tsize;
    types = idx + timecnt;
    for (i = 0; i < typecnt; i++) {
        const unsigned char *t = types + i * 6;
        int32_t off = pgsched__be32s(t);
        if (off < PGSCHED__OFFSET_MIN || off > PGSCHED__OFFSET_MAX)
            return PGSCHED__TZ_CORRUPT("UT offset out of range");
        if (t[4] > 1) return PGSCHED__TZ_CORRUPT("bad daylight-saving flag");
        if (t[5] >= charcnt) return PGSCHED__TZ_CORRUPT("abbreviation index out of range");
    }
    memset(&foot, 0, sizeof foot);
    if (v2) {
        size_t f = head + (size_t)len, e;
        if (f < size) {
            if (data[f] != '\n') return PGSCHED__TZ_CORRUPT("bad footer");
            for (e = f + 1; e < size && data[e] != '\n'; e++) {}
            if (e >= size) return PGSCHED__TZ_CORRUPT("unterminated footer");
            if (e > f + 1 &&
                pgsched__tz_footer(&foot, (const char *)data + f + 1, (const char *)data + e) != 0)
                return PGSCHED__TZ_CORRUPT("bad TZ rule in the footer");
            if (foot.has_footer &&
                (foot.std_off < PGSCHED__OFFSET_MIN || foot.std_off > PGSCHED__OFFSET_MAX ||
                 foot.dst_off < PGSCHED__OFFSET_MIN || foot.dst_off > PGSCHED__OFFSET_MAX))
                return PGSCHED__TZ_CORRUPT("footer offset out of range");
        }
    }
    if (foot.has_dst && timecnt > 0) {
        const unsigned char *lp = times + (timecnt - 1) * tsize;
        last = tsize == 8 ? pgsched__be64(lp) : (int64_t)pgsched__be32s(lp);
        extra = pgsched__tz_expand(&foot, last, NULL, NULL);
    }
    z = (pgsched__tz *)pgsched__malloc(
        a, sizeof *z + (size_t)(timecnt + extra) * (sizeof(int64_t) + sizeof(int32_t)) + 8);
    if (!z) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory loading zone \"%s\"", name);
    *z = foot;
    z->count = (size_t)(timecnt + extra);
    /* One block: the struct, then the times (8-aligned), then the offsets. */
    z->times = (int64_t *)(void *)((char *)z + ((sizeof *z + 7) / 8) * 8);
    z->offs = (int32_t *)(void *)(z->times + timecnt + extra);
    z->initial = pgsched__be32s(types);
    for (i = 0; i < timecnt; i++) {
        int64_t t =
            tsize == 8 ? pgsched__be64(times + i * 8) : (int64_t)pgsched__be32s(times + i * 4);
        if (idx[i] >= typecnt) {
            pgsched__free(a, z);
            return PGSCHED__TZ_CORRUPT("time type index out of range");
        }
        if (i > 0 && t <= z->times[i - 1]) {
            pgsched__free(a, z);
            return PGSCHED__TZ_CORRUPT("transition times out of order");
        }
        z->times[i] = t;
        z->offs[i] = pgsched__be32s(types + idx[i] * 6);
    }
    {
        /* Only offsets in force within a few days of 1900-9999 matter. Dropping transitions
           outside that span keeps every sum of a time and an offset far from overflow, even
           for files with times like -2^63. */
        uint64_t lo = 0, hi = timecnt;
        while (lo < hi && z->times[lo] < PGSCHED__SEC_MIN - 4 * 86400) lo++;
        while (hi > lo && z->times[hi - 1] > PGSCHED__SEC_MAX + 4 * 86400) hi--;
        if (lo > 0) z->initial = z->offs[lo - 1];
        if (hi < timecnt) { /* the table outlasts year 9999: its footer is never reached */
            z->has_footer = z->has_dst = 0;
            extra = 0;
        }
        memmove(z->times, z->times + lo, (size_t)(hi - lo) * sizeof *z->times);
        memmove(z->offs, z->offs + lo, (size_t)(hi - lo) * sizeof *z->offs);
        timecnt = hi - lo;
        z->count = (size_t)(timecnt + extra);
    }
    if (extra) pgsched__tz_expand(&foot, last, z->times + timecnt, z->offs + timecnt);
    z->min_off = z->max_off = z->initial;
    for (i = 0; i < timecnt + extra; i++) {
        if (z->offs[i] < z->min_off) z->min_off = z->offs[i];
        if (z->offs[i] > z->max_off) z->max_off = z->offs[i];
    }
    if (z->has_footer) {
        if (z->std_off < z->min_off) z->min_off = z->std_off;
        if (z->dst_off < z->min_off) z->min_off = z->dst_off;
        if (z->std_off > z->max_off) z->max_off = z->std_off;
        if (z->dst_off > z->max_off) z->max_off = z->dst_off;
    }
    *out = z;
    return PGSCHED_OK;
}

/* Local wall seconds at which a footer rule fires in year y. */
static int64_t pgsched__tz_rule_wall(const pgsched__tz_rule *r, int64_t y)
{
    int64_t day;
    if (r->kind == 'J') {
        day = pgsched__days_from_civil(y, 1, 1) + r->day - 1;
        if (r->day >= 60 && pgsched__is_leap(y)) day++;
    } else if (r->kind == 'N') {
        day = pgsched__days_from_civil(y, 1, 1) + r->day;
    } else {
        int64_t first = pgsched__days_from_civil(y, r->month, 1);
        int n = pgsched__days_in_month(y, r->month);
        int d = 1 + (r->day - pgsched__weekday(first) + 7) % 7 + 7 * (r->week - 1);
        while (d > n) d -= 7;
        day = first + d - 1;
    }
    return day * 86400 + r->time;
}

/* The footer's stretch around t. Transitions of the years around t's year are listed; where
   two coincide only the later counts (a rule like "J365/25" that keeps DST all year ends it
   at the very instant it restarts), and a "transition" to the offset already in force is no
   transition. */
static void pgsched__tz_footer_segment(const pgsched__tz *z, int64_t t, pgsched__tz_seg *seg)
{
    int64_t at[8], y, ty;
    int32_t off[8], before;
    int n = 0, i, j, k;
    if (!z->has_dst) {
        seg->start = INT64_MIN;
        seg->end = INT64_MAX;
        seg->off = seg->prev_off = z->std_off;
        return;
    }
    {
        int mm, dd;
        pgsched__civil_from_days(pgsched__floor_div(t + z->std_off, 86400), &ty, &mm, &dd);
    }
    for (y = ty - 1; y <= ty + 2; y++) {
        at[n] = pgsched__tz_rule_wall(&z->start, y) - z->std_off;
        off[n++] = z->dst_off;
        at[n] = pgsched__tz_rule_wall(&z->end, y) - z->dst_off;
        off[n++] = z->std_off;
    }
    for (i = 1; i < n; i++) { /* stable insertion sort by instant */
        int64_t ka = at[i];
        int32_t ko = off[i];
        for (j = i - 1; j >= 0 && at[j] > ka; j--) {
            at[j + 1] = at[j];
            off[j + 1] = off[j];
        }
        at[j + 1] = ka;
        off[j + 1] = ko;
    }
    for (i = 0, k = 0; i < n; i++) {
        if (i + 1 < n && at[i + 1] == at[i]) continue;
        if (k > 0 && off[k - 1] == off[i]) continue;
        at[k] = at[i];
        off[k++] = off[i];
    }
    n = k;
    before = off[0] == z->dst_off ? z->std_off : z->dst_off;
    for (k = -1, i = 0; i < n && at[i] <= t; i++) k = i;
    if (k < 0) {
        seg->start = INT64_MIN;
        seg->end = at[0];
        seg->off = seg->prev_off = before;
    } else {
        seg->start = at[k];
        seg->end = k + 1 < n ? at[k + 1] : INT64_MAX;
        seg->off = off[k];
        seg->prev_off = k > 0 ? off[k - 1] : before;
    }
}

static void pgsched__tz_segment(const pgsched__tz *z, int64_t t, pgsched__tz_seg *seg)
{
    size_t n = z->count, lo, hi;
    if (n == 0 || t >= z->times[n - 1]) {
        if (z->has_footer) {
            pgsched__tz_footer_segment(z, t, seg);
            if (n > 0 && seg->start < z->times[n - 1]) {
                seg->start = z->times[n - 1];
                seg->prev_off = n > 1 ? z->offs[n - 2] : z->initial;
            }
        } else if (n == 0) {
            seg->start = INT64_MIN;
            seg->end = INT64_MAX;
            seg->off = seg->prev_off = z->initial;
        } else {
            seg->start = z->times[n - 1];
            seg->end = INT64_MAX;
            seg->off = z->offs[n - 1];
            seg->prev_off = n > 1 ? z->offs[n - 2] : z->initial;
        }
        return;
    }
    if (t < z->times[0]) {
        seg->start = INT64_MIN;
        seg->end = z->times[0];
        seg->off = seg->prev_off = z->initial;
        return;
    }
    lo = 0; /* times[lo] <= t < times[hi] */
    hi = n - 1;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    seg->start = z->times[lo];
    seg->end = z->times[hi];
    seg->off = z->offs[lo];
    seg->prev_off = lo > 0 ? z->offs[lo - 1] : z->initial;
}

/* A zone name is a relative path of plain components: it must not climb out of the zone
   directory or name anything outside it. */
static int pgsched__tz_name_ok(const char *name)
{
    const char *p = name, *comp = name;
    if (!*name || *name == '/' || strlen(name) > 255) return 0;
    for (;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - comp);
            if (n == 0 || (n == 1 && comp[0] == '.') ||
                (n == 2 && comp[0] == '.' && comp[1] == '.'))
                return 0;
            if (*p == '\0') return 1;
            comp = p + 1;
        } else if (!pgsched__is_alnum(*p) && *p != '_' && *p != '-' && *p != '+' && *p != '.') {
            return 0;
        }
    }
}

static int pgsched__tz_is_utc(const char *name)
{
    return strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0;
}

/* Loads a zone from the zone database; *out stays NULL for UTC, which needs no file. */
static pgsched_result pgsched__tz_load(const char *name, const char *tzdir,
                                       const pgsched_allocator *a, pgsched__tz **out,
                                       pgsched_error *err)
{
    char path[4096];
    unsigned char *buf;
    size_t len = 0, cap = 8192;
    FILE *f;
    pgsched_result r;
    *out = NULL;
    if (pgsched__tz_is_utc(name)) return PGSCHED_OK;
    if (!pgsched__tz_name_ok(name))
        return pgsched__fail(err, PGSCHED_ERR_ZONE_UNKNOWN,
                             "unknown time zone \"%.255s\": not a zone name (a zone name is a "
                             "relative path like Europe/London, without \".\" or \"..\")",
                             name);
    if (!tzdir || !*tzdir) tzdir = getenv("TZDIR");
    if (!tzdir || !*tzdir) tzdir = "/usr/share/zoneinfo";
    if (strlen(tzdir) + strlen(name) + 2 > sizeof path)
        return pgsched__fail(err, PGSCHED_ERR_ZONE_UNKNOWN,
                             "unknown time zone \"%.255s\": the path is too long", name);
    snprintf(path, sizeof path, "%s/%s", tzdir, name);
    f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG)
            return pgsched__fail(err, PGSCHED_ERR_ZONE_UNKNOWN,
                                 "unknown time zone \"%.255s\" (no zone file %.200s)", name, path);
        return pgsched__fail(err, PGSCHED_ERR_ZONE_CORRUPT,
                             "cannot open the zone file %.200s for \"%.255s\"", path, name);
    }
    buf = (unsigned char *)pgsched__malloc(a, cap);
    if (!buf) {
        fclose(f);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory loading zone \"%s\"", name);
    }
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
        if (len == cap) {
            unsigned char *nb;
            if (cap >= PGSCHED__TZIF_MAX) break;
            nb = (unsigned char *)pgsched__realloc(a, buf, cap * 2);
            if (!nb) {
                pgsched__free(a, buf);
                fclose(f);
                return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory loading zone \"%s\"",
                                     name);
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        int e = errno;
        pgsched__free(a, buf);
        fclose(f);
        if (e == EISDIR)
            return pgsched__fail(err, PGSCHED_ERR_ZONE_UNKNOWN,
                                 "unknown time zone \"%.255s\" (%.200s is a directory)", name,
                                 path);
        return pgsched__fail(err, PGSCHED_ERR_ZONE_CORRUPT, "cannot read the zone file %.200s",
                             path);
    }
    fclose(f);
    if (len >= PGSCHED__TZIF_MAX) {
        pgsched__free(a, buf);
        return pgsched__fail(err, PGSCHED_ERR_ZONE_CORRUPT,
                             "zone file for \"%.255s\" is corrupt: larger than 1 MiB", name);
    }
    r = pgsched__tz_parse(buf, len, name, a, out, err);
    pgsched__free(a, buf);
    return r;
}

/* ---- cron parsing -------------------------------------------------------------------------- */

struct pgsched_cron {
    pgsched_allocator alloc;
    uint64_t sec, min;        /* bit n: second / minute n */
    uint32_t hour;            /* bit n: hour n */
    uint32_t dom;             /* bit n: day n of the month, 1..31 */
    uint32_t dom_last;        /* bit k: L-k (bit 0 is L) */
    uint32_t dom_near;        /* bit n: nW */
    uint32_t dow_days[7];     /* days 1..31 that the plain weekdays give when day 1 is weekday i */
    uint16_t month;           /* bit n: month n, 1..12 */
    unsigned char dow;        /* bit d: weekday d, 0 = Sunday */
    unsigned char dow_last;   /* bit d: dL */
    unsigned char dow_nth[6]; /* dow_nth[k] bit d: d#k */
    unsigned char dom_lw;
    unsigned char dom_any, dow_any; /* the field is exactly * or ?: it does not restrict */
    unsigned char dom_ext, dow_ext; /* the slower extensions are present */
    unsigned char real_time;        /* hour field exactly *: follow real time across DST */
    pgsched_duration every;         /* "@every": the interval; 0 otherwise */
    pgsched__tz *tz;                /* NULL: UTC */
    char *zone;                     /* NULL: UTC */
};

enum {
    PGSCHED__F_SEC,
    PGSCHED__F_MIN,
    PGSCHED__F_HOUR,
    PGSCHED__F_DOM,
    PGSCHED__F_MON,
    PGSCHED__F_DOW
};

typedef struct pgsched__cron_field {
    const char *name;
    int lo, hi; /* accepted values */
    int top;    /* where * and N/S stop (day-of-week: 6, 7 being Sunday again) */
    int count;  /* the largest step */
} pgsched__cron_field;

static const pgsched__cron_field pgsched__cron_fields[6] = {
    {"second", 0, 59, 59, 60},       {"minute", 0, 59, 59, 60}, {"hour", 0, 23, 23, 24},
    {"day-of-month", 1, 31, 31, 31}, {"month", 1, 12, 12, 12},  {"day-of-week", 0, 7, 6, 7}};

static const char *const pgsched__month_names[12] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const pgsched__day_names[7] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

typedef struct pgsched__cron_ctx {
    const char *text; /* the whole expression: columns count from its first byte */
    pgsched_error *err;
    pgsched_cron *c;
    int field;
    uint64_t bits; /* the field's plain values */
} pgsched__cron_ctx;

#define PGSCHED__COL(ctx, p) ((int)((p) - (ctx)->text) + 1)
#define PGSCHED__TOKMAX 32 /* longest piece of text quoted back in a message */

static int pgsched__tok_len(const char *a, const char *b)
{
    return (int)(b - a > PGSCHED__TOKMAX ? PGSCHED__TOKMAX : b - a);
}

static int pgsched__word_eq(const char *a, const char *b, const char *word)
{
    for (; a < b && *word; a++, word++)
        if (pgsched__upper(*a) != *word) return 0;
    return a == b && !*word;
}

static const char *pgsched__alnum_end(const char *p, const char *end)
{
    while (p < end && pgsched__is_alnum(*p)) p++;
    return p;
}

static pgsched_result pgsched__cron_unexpected(pgsched__cron_ctx *x, const char *p,
                                               const char *after, const char *after_end)
{
    char b[8];
    const char *name = pgsched__cron_fields[x->field].name;
    if (after && after_end > after)
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             "%s: unexpected \"%s\" after \"%.*s\" (column %d)", name,
                             pgsched__char_desc(*p, b), pgsched__tok_len(after, after_end), after,
                             PGSCHED__COL(x, p));
    return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX, "%s: unexpected \"%s\" (column %d)", name,
                         pgsched__char_desc(*p, b), PGSCHED__COL(x, p));
}

/* A decimal number of at most 9 digits; larger ones become INT_MAX so they fail range checks. */
static int pgsched__small_number(const char *a, const char *b)
{
    int v = 0;
    if (b - a > 9) return INT_MAX;
    for (; a < b; a++) v = v * 10 + (*a - '0');
    return v;
}

static int pgsched__all_digits(const char *a, const char *b)
{
    if (a == b) return 0;
    for (; a < b; a++)
        if (!pgsched__is_digit(*a)) return 0;
    return 1;
}

static int pgsched__all_alpha(const char *a, const char *b)
{
    if (a == b) return 0;
    for (; a < b; a++)
        if (!pgsched__is_alpha(*a)) return 0;
    return 1;
}

/* The value of a plain token (a number, or a month or weekday name) of the current field. */
static pgsched_result pgsched__cron_value(pgsched__cron_ctx *x, const char *a, const char *b,
                                          int *out)
{
    const pgsched__cron_field *f = &pgsched__cron_fields[x->field];
    int i, n = pgsched__tok_len(a, b);
    if (pgsched__all_digits(a, b)) {
        int v = pgsched__small_number(a, b);
        if (v < f->lo || v > f->hi)
            return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                 "%s: %.*s is out of range %d-%d (column %d)", f->name, n, a, f->lo,
                                 f->hi, PGSCHED__COL(x, a));
        *out = v;
        return PGSCHED_OK;
    }
    if (x->field == PGSCHED__F_MON) {
        for (i = 0; i < 12; i++)
            if (pgsched__word_eq(a, b, pgsched__month_names[i])) {
                *out = i + 1;
                return PGSCHED_OK;
            }
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             pgsched__all_alpha(a, b)
                                 ? "month: \"%.*s\" is not a month name (column %d)"
                                 : "month: \"%.*s\" is not a month (1-12 or JAN-DEC) (column %d)",
                             n, a, PGSCHED__COL(x, a));
    }
    if (x->field == PGSCHED__F_DOW) {
        for (i = 0; i < 7; i++)
            if (pgsched__word_eq(a, b, pgsched__day_names[i])) {
                *out = i;
                return PGSCHED_OK;
            }
        if (pgsched__word_eq(a, b, "L"))
            return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                 "day-of-week: \"L\" needs a weekday before it, as in 5L or FRIL "
                                 "(column %d)",
                                 PGSCHED__COL(x, a));
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             pgsched__all_alpha(a, b)
                                 ? "day-of-week: \"%.*s\" is not a weekday name (column %d)"
                                 : "day-of-week: \"%.*s\" is not a weekday (0-7 or SUN-SAT) "
                                   "(column %d)",
                             n, a, PGSCHED__COL(x, a));
    }
    if (x->field == PGSCHED__F_DOM)
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             "day-of-month: \"%.*s\" is not a day (1-31, L, L-N, NW or LW) "
                             "(column %d)",
                             n, a, PGSCHED__COL(x, a));
    return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                         "%s: \"%.*s\" is not a number (column %d)", f->name, n, a,
                         PGSCHED__COL(x, a));
}

/* The step after a '/' at p; *end gets the first byte after it. */
static pgsched_result pgsched__cron_step(pgsched__cron_ctx *x, const char *p, const char *q,
                                         int *step, const char **end)
{
    const pgsched__cron_field *f = &pgsched__cron_fields[x->field];
    const char *s = p + 1, *e = pgsched__alnum_end(s, q);
    int v;
    if (e == s)
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             "%s: missing step after \"/\" (column %d)", f->name,
                             PGSCHED__COL(x, p));
    if (!pgsched__all_digits(s, e))
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             "%s: step \"%.*s\" is not a number (column %d)", f->name,
                             pgsched__tok_len(s, e), s, PGSCHED__COL(x, s));
    v = pgsched__small_number(s, e);
    if (v == 0)
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             "%s: step 0 is not allowed (column %d)", f->name, PGSCHED__COL(x, s));
    if (v > f->count)
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             "%s: step %.*s is out of range 1-%d (column %d)", f->name,
                             pgsched__tok_len(s, e), s, f->count, PGSCHED__COL(x, s));
    *step = v;
    *end = e;
    return PGSCHED_OK;
}

/* Whether a token is one of the day-field extensions, which cannot be part of a range. */
static int pgsched__cron_is_special(int field, const char *a, const char *b)
{
    if (field == PGSCHED__F_DOM)
        return pgsched__word_eq(a, b, "L") || pgsched__word_eq(a, b, "LW") ||
               (b - a >= 2 && pgsched__upper(b[-1]) == 'W' && pgsched__all_digits(a, b - 1));
    if (field == PGSCHED__F_DOW) return b - a >= 2 && pgsched__upper(b[-1]) == 'L';
    return 0;
}

/* The day-field extensions that stand alone as a list item: L, L-N, LW, NW, NL, N#K.
   Returns 1 when it handled the item (result in *r), 0 when the item is not one. */
static int pgsched__cron_special(pgsched__cron_ctx *x, const char *p, const char *e, const char *q,
                                 pgsched_result *r)
{
    pgsched_cron *c = x->c;
    int v;
    *r = PGSCHED_OK;
    if (x->field == PGSCHED__F_DOM) {
        if (pgsched__word_eq(p, e, "L")) {
            if (e < q && *e == '-') {
                const char *s = e + 1, *t = pgsched__alnum_end(s, q);
                if (t == s || !pgsched__all_digits(s, t)) {
                    *r = pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                       "day-of-month: expected a number of days after \"L-\", as "
                                       "in L-3 (column %d)",
                                       PGSCHED__COL(x, s));
                    return 1;
                }
                v = pgsched__small_number(s, t);
                if (v > 30) {
                    *r = pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                       "day-of-month: L-%.*s is out of range L-0 to L-30 (column "
                                       "%d)",
                                       pgsched__tok_len(s, t), s, PGSCHED__COL(x, p));
                    return 1;
                }
                if (t < q) {
                    *r = pgsched__cron_unexpected(x, t, p, t);
                    return 1;
                }
                c->dom_last |= (uint32_t)1 << v;
                return 1;
            }
            if (e < q)
                *r = pgsched__cron_unexpected(x, e, p, e);
            else
                c->dom_last |= 1;
            return 1;
        }
        if (pgsched__word_eq(p, e, "LW")) {
            if (e < q)
                *r = pgsched__cron_unexpected(x, e, p, e);
            else
                c->dom_lw = 1;
            return 1;
        }
        if (e - p >= 2 && pgsched__upper(e[-1]) == 'W' && pgsched__all_digits(p, e - 1)) {
            v = pgsched__small_number(p, e - 1);
            if (v < 1 || v > 31)
                *r = pgsched__fail(
                    x->err, PGSCHED_ERR_CRON_SYNTAX,
                    "day-of-month: %.*s in \"%.*s\" is out of range 1-31 (column %d)",
                    pgsched__tok_len(p, e - 1), p, pgsched__tok_len(p, e), p, PGSCHED__COL(x, p));
            else if (e < q)
                *r = pgsched__cron_unexpected(x, e, p, e);
            else
                c->dom_near |= (uint32_t)1 << v;
            return 1;
        }
        return 0;
    }
    if (x->field != PGSCHED__F_DOW) return 0;
    if (e - p >= 2 && pgsched__upper(e[-1]) == 'L') {
        if ((*r = pgsched__cron_value(x, p, e - 1, &v)) != PGSCHED_OK) return 1;
        if (e < q)
            *r = pgsched__cron_unexpected(x, e, p, e);
        else
            c->dow_last |= (unsigned char)(1u << (v % 7));
        return 1;
    }
    if (e < q && *e == '#') {
        const char *s = e + 1, *t = pgsched__alnum_end(s, q);
        int k;
        if ((*r = pgsched__cron_value(x, p, e, &v)) != PGSCHED_OK) return 1;
        if (t == s || !pgsched__all_digits(s, t)) {
            *r = pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                               "day-of-week: expected a week number 1-5 after \"#\", as in 5#3 "
                               "(column %d)",
                               PGSCHED__COL(x, s));
            return 1;
        }
        k = pgsched__small_number(s, t);
        if (k < 1 || k > 5) {
            *r = pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                               "day-of-week: week %.*s in \"%.*s\" is out of range 1-5 (column %d)",
                               pgsched__tok_len(s, t), s, pgsched__tok_len(p, t), p,
                               PGSCHED__COL(x, s));
            return 1;
        }
        if (t < q)
            *r = pgsched__cron_unexpected(x, t, p, t);
        else
            c->dow_nth[k] |= (unsigned char)(1u << (v % 7));
        return 1;
    }
    return 0;
}

/* One list item [p, q). */
static pgsched_result pgsched__cron_item(pgsched__cron_ctx *x, const char *p, const char *q)
{
    const pgsched__cron_field *f = &pgsched__cron_fields[x->field];
    int day_field = x->field == PGSCHED__F_DOM || x->field == PGSCHED__F_DOW;
    int lo, hi, step = 1, v;
    const char *e, *start = p;
    pgsched_result r;
    if (p == q)
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                             "%s: empty item in the list (column %d)", f->name, PGSCHED__COL(x, p));
    if (*p == '*' || *p == '?') {
        if (*p == '?' && !day_field)
            return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                 "%s: \"?\" is only allowed in day-of-month and day-of-week "
                                 "(column %d)",
                                 f->name, PGSCHED__COL(x, p));
        lo = f->lo;
        hi = f->top;
        e = p + 1;
        if (e < q && *e == '/') {
            if (*p == '?')
                return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                     "%s: \"?\" cannot take a step (column %d)", f->name,
                                     PGSCHED__COL(x, e));
            if ((r = pgsched__cron_step(x, e, q, &step, &e)) != PGSCHED_OK) return r;
        }
        if (e < q) return pgsched__cron_unexpected(x, e, start, e);
    } else {
        e = pgsched__alnum_end(p, q);
        if (e == p) return pgsched__cron_unexpected(x, p, NULL, NULL);
        if (pgsched__cron_special(x, p, e, q, &r)) return r;
        if ((r = pgsched__cron_value(x, p, e, &lo)) != PGSCHED_OK) return r;
        hi = lo;
        if (e < q && *e == '-') {
            const char *s = e + 1, *t = pgsched__alnum_end(s, q);
            if (t == s) {
                if (s < q) return pgsched__cron_unexpected(x, s, p, s);
                return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                     "%s: missing end of range after \"-\" (column %d)", f->name,
                                     PGSCHED__COL(x, e));
            }
            if (pgsched__cron_is_special(x->field, s, t))
                return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                     "%s: \"%.*s\" cannot end a range (column %d)", f->name,
                                     pgsched__tok_len(s, t), s, PGSCHED__COL(x, s));
            if ((r = pgsched__cron_value(x, s, t, &hi)) != PGSCHED_OK) return r;
            /* SUN ending a range that starts later in the week is the week's end, 7, as in
               MON-SUN; SUN-SUN and 0-SUN stay Sunday alone. */
            if (x->field == PGSCHED__F_DOW && hi == 0 && lo > 0 && pgsched__is_alpha(*s)) hi = 7;
            if (hi < lo)
                return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                     "%s: range %.*s is reversed (column %d)", f->name,
                                     pgsched__tok_len(p, t), p, PGSCHED__COL(x, p));
            e = t;
            if (e < q && *e == '/') {
                if ((r = pgsched__cron_step(x, e, q, &step, &e)) != PGSCHED_OK) return r;
            }
        } else if (e < q && *e == '/') {
            if ((r = pgsched__cron_step(x, e, q, &step, &e)) != PGSCHED_OK) return r;
            /* N/S runs to the top of the field; for weekdays 7 is Sunday, the bottom. */
            if (x->field == PGSCHED__F_DOW && lo == 7) lo = 0;
            hi = f->top;
        }
        if (e < q) return pgsched__cron_unexpected(x, e, start, e);
    }
    for (v = lo; v <= hi; v += step) x->bits |= (uint64_t)1 << v;
    return PGSCHED_OK;
}

static pgsched_result pgsched__cron_field_parse(pgsched__cron_ctx *x, const char *p, const char *q)
{
    pgsched_result r;
    x->bits = 0;
    for (;;) {
        const char *c = p;
        while (c < q && *c != ',') c++;
        if ((r = pgsched__cron_item(x, p, c)) != PGSCHED_OK) return r;
        if (c == q) return PGSCHED_OK;
        p = c + 1;
        if (p == q)
            return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                 "%s: empty item in the list (column %d)",
                                 pgsched__cron_fields[x->field].name, PGSCHED__COL(x, p));
    }
}

/* Days 1..n of a month of n days whose first day is weekday wd1 that the day fields allow. */
static uint32_t pgsched__cron_day_mask(const pgsched_cron *c, int n, int wd1)
{
    uint32_t valid = (uint32_t)((((uint64_t)1) << (n + 1)) - 2), dm = 0, wm = 0, bits;
    if (c->dom_any && c->dow_any) return valid;
    if (!c->dom_any) {
        dm = c->dom;
        if (c->dom_ext) {
            int wdn = (wd1 + n - 1) % 7, k, d;
            for (bits = c->dom_last; bits; bits &= bits - 1) {
                k = pgsched__ctz32(bits);
                if (n - k >= 1) dm |= (uint32_t)1 << (n - k);
            }
            for (bits = c->dom_near & valid; bits; bits &= bits - 1) {
                int wd;
                d = pgsched__ctz32(bits);
                wd = (wd1 + d - 1) % 7;
                /* The nearest weekday without leaving the month. */
                if (wd == 6)
                    d = d == 1 ? 3 : d - 1;
                else if (wd == 0)
                    d = d == n ? d - 2 : d + 1;
                dm |= (uint32_t)1 << d;
            }
            if (c->dom_lw) dm |= (uint32_t)1 << (wdn == 6 ? n - 1 : wdn == 0 ? n - 2 : n);
        }
    }
    if (!c->dow_any) {
        wm = c->dow_days[wd1];
        if (c->dow_ext) {
            int wdn = (wd1 + n - 1) % 7, w, k;
            for (bits = c->dow_last; bits; bits &= bits - 1) {
                w = pgsched__ctz32(bits);
                wm |= (uint32_t)1 << (n - (wdn - w + 7) % 7);
            }
            for (k = 1; k <= 5; k++) {
                for (bits = c->dow_nth[k]; bits; bits &= bits - 1) {
                    int d;
                    w = pgsched__ctz32(bits);
                    d = 1 + (w - wd1 + 7) % 7 + 7 * (k - 1);
                    if (d <= n) wm |= (uint32_t)1 << d;
                }
            }
        }
    }
    return (dm | wm) & valid;
}

static int pgsched__is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Parses "@..." at p (the expression's fields start there). */
static pgsched_result pgsched__cron_macro(pgsched__cron_ctx *x, const char *p, const char **body)
{
    static const struct {
        const char *name, *body;
    } macros[] = {{"YEARLY", "0 0 1 1 *"}, {"ANNUALLY", "0 0 1 1 *"}, {"MONTHLY", "0 0 1 * *"},
                  {"WEEKLY", "0 0 * * 0"}, {"DAILY", "0 0 * * *"},    {"MIDNIGHT", "0 0 * * *"},
                  {"HOURLY", "0 * * * *"}};
    const char *w = p + 1, *e = w, *rest;
    size_t i;
    while (*e && !pgsched__is_space(*e)) e++;
    rest = e;
    while (pgsched__is_space(*rest)) rest++;
    if (pgsched__word_eq(w, e, "EVERY")) {
        const char *d = rest, *de = d;
        char buf[64];
        pgsched_error derr;
        pgsched_duration every;
        while (*de && !pgsched__is_space(*de)) de++;
        if (d == de)
            return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                 "@every needs a duration, as in \"@every 90s\" (column %d)",
                                 PGSCHED__COL(x, d));
        e = de;
        while (pgsched__is_space(*e)) e++;
        if (*e)
            return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                 "@every takes one duration; unexpected \"%.*s\" after it (column "
                                 "%d)",
                                 pgsched__tok_len(e, e + strlen(e)), e, PGSCHED__COL(x, e));
        if ((size_t)(de - d) >= sizeof buf)
            return pgsched__fail(x->err, PGSCHED_ERR_DURATION,
                                 "@every: the duration is too long (column %d)",
                                 PGSCHED__COL(x, d));
        memcpy(buf, d, (size_t)(de - d));
        buf[de - d] = '\0';
        if (pgsched__duration_parse_at(buf, PGSCHED__COL(x, d), &every, &derr) != PGSCHED_OK) {
            /* a message naming no position is about the whole duration */
            if (strstr(derr.message, "(column "))
                return pgsched__fail(x->err, derr.code, "@every: %s", derr.message);
            return pgsched__fail(x->err, derr.code, "@every: %s (column %d)", derr.message,
                                 PGSCHED__COL(x, d));
        }
        x->c->every = every;
        *body = NULL;
        return PGSCHED_OK;
    }
    for (i = 0; i < sizeof macros / sizeof macros[0]; i++) {
        if (pgsched__word_eq(w, e, macros[i].name)) {
            if (*rest)
                return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                                     "%.*s takes no fields; unexpected \"%.*s\" (column %d)",
                                     (int)(e - p), p, pgsched__tok_len(rest, rest + strlen(rest)),
                                     rest, PGSCHED__COL(x, rest));
            *body = macros[i].body;
            return PGSCHED_OK;
        }
    }
    return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX,
                         "unknown macro \"%.*s\" (use @yearly, @annually, @monthly, @weekly, "
                         "@daily, @midnight, @hourly or @every <duration>) (column %d)",
                         pgsched__tok_len(p, e), p, PGSCHED__COL(x, p));
}

/* The five or six fields of text, whose columns are counted from x->text (a macro's body
   has no columns of its own but cannot be malformed). */
static pgsched_result pgsched__cron_fields_parse(pgsched__cron_ctx *x, const char *text)
{
    const char *fs[7], *fe[7], *p = text;
    int n = 0, i, first;
    pgsched_result r;
    pgsched_cron *c = x->c;
    for (;;) {
        while (pgsched__is_space(*p)) p++;
        if (!*p) break;
        if (n < 7) fs[n] = p;
        while (*p && !pgsched__is_space(*p)) p++;
        if (n < 7) fe[n] = p;
        n++;
    }
    if (n != 5 && n != 6)
        return pgsched__fail(x->err, PGSCHED_ERR_CRON_SYNTAX, "expected 5 or 6 fields, found %d",
                             n);
    first = n == 6 ? PGSCHED__F_SEC : PGSCHED__F_MIN;
    c->sec = 1; /* five fields: at second 0 */
    for (i = 0; i < n; i++) {
        const char *a = fs[i], *b = fe[i];
        x->field = first + i;
        if ((r = pgsched__cron_field_parse(x, a, b)) != PGSCHED_OK) return r;
        switch (x->field) {
        case PGSCHED__F_SEC: c->sec = x->bits; break;
        case PGSCHED__F_MIN: c->min = x->bits; break;
        case PGSCHED__F_HOUR:
            c->hour = (uint32_t)x->bits;
            c->real_time = b - a == 1 && *a == '*';
            break;
        case PGSCHED__F_DOM:
            c->dom = (uint32_t)x->bits;
            c->dom_any = b - a == 1 && (*a == '*' || *a == '?');
            break;
        case PGSCHED__F_MON: c->month = (uint16_t)x->bits; break;
        default:
            /* 7 is Sunday: fold bit 7 onto bit 0. */
            c->dow = (unsigned char)((x->bits | x->bits >> 7) & 0x7F);
            c->dow_any = b - a == 1 && (*a == '*' || *a == '?');
            break;
        }
    }
    c->dom_ext = (unsigned char)(c->dom_last || c->dom_near || c->dom_lw);
    c->dow_ext = (unsigned char)(c->dow_last != 0);
    for (i = 1; i <= 5; i++)
        if (c->dow_nth[i]) c->dow_ext = 1;
    for (i = 0; i < 7; i++) {
        int d;
        c->dow_days[i] = 0;
        for (d = 1; d <= 31; d++)
            if (c->dow >> ((i + d - 1) % 7) & 1) c->dow_days[i] |= (uint32_t)1 << d;
    }
    /* Whether a day can ever match depends only on the month, its length and the weekday of
       its first day, and every such combination (February with 28 and with 29 days
       included) occurs in every 400-year Gregorian cycle, so trying them all is a proof. */
    for (i = 1; i <= 12; i++) {
        int wd;
        if (!(c->month >> i & 1)) continue;
        for (wd = 0; wd < 7; wd++)
            if (pgsched__cron_day_mask(c, pgsched__days_in_month(2001, i), wd) ||
                (i == 2 && pgsched__cron_day_mask(c, 29, wd)))
                return PGSCHED_OK;
    }
    x->field = PGSCHED__F_DOM;
    i = n == 6 ? 3 : 2; /* the day-of-month field; the month field follows it */
    return pgsched__fail(x->err, PGSCHED_ERR_CRON_NEVER,
                         "the expression can never match: day-of-month \"%.*s\" (column %d) falls "
                         "in none of the months that month \"%.*s\" allows",
                         pgsched__tok_len(fs[i], fe[i]), fs[i], PGSCHED__COL(x, fs[i]),
                         pgsched__tok_len(fs[i + 1], fe[i + 1]), fs[i + 1]);
}

/* Length of a case-insensitive prefix `word` at p, or 0. */
static size_t pgsched__prefix_ci(const char *p, const char *word)
{
    size_t n = 0;
    for (; word[n]; n++)
        if (pgsched__upper(p[n]) != word[n]) return 0;
    return n;
}

static pgsched_result pgsched__cron_parse(const char *expr, const pgsched_cron_options *opts,
                                          pgsched_cron **out, pgsched_error *err);

PGSCHED_DEF pgsched_result pgsched_cron_parse(const char *expr, const pgsched_cron_options *opts,
                                              pgsched_cron **out, pgsched_error *err)
{
    pgsched_result r = pgsched__cron_parse(expr, opts, out, err);
    if (r != PGSCHED_OK) pgsched__message_printable(err);
    return r;
}

static pgsched_result pgsched__cron_parse(const char *expr, const pgsched_cron_options *opts,
                                          pgsched_cron **out, pgsched_error *err)
{
    pgsched_allocator a = pgsched__allocator(opts ? opts->allocator : NULL);
    pgsched__cron_ctx x;
    pgsched_cron *c;
    const char *p, *zone = NULL, *body = NULL;
    char zbuf[256];
    size_t pre;
    pgsched_result r;
    if (!out) return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "the output pointer is NULL");
    *out = NULL;
    if (opts && pgsched__allocator_partial(opts->allocator)) return pgsched__allocator_refused(err);
    if (!expr)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "the cron expression is NULL");
    p = expr;
    while (pgsched__is_space(*p)) p++;
    if (!*p) return pgsched__fail(err, PGSCHED_ERR_CRON_SYNTAX, "the cron expression is empty");
    if ((pre = pgsched__prefix_ci(p, "CRON_TZ=")) != 0 ||
        (pre = pgsched__prefix_ci(p, "TZ=")) != 0) {
        const char *key = p, *zs = p + pre, *ze = zs;
        while (*ze && !pgsched__is_space(*ze)) ze++;
        if (ze == zs)
            return pgsched__fail(err, PGSCHED_ERR_CRON_SYNTAX,
                                 "%.*s needs a zone name, as in %.*sEurope/London (column %d)",
                                 (int)pre, p, (int)pre, p, (int)(zs - expr) + 1);
        if ((size_t)(ze - zs) >= sizeof zbuf)
            return pgsched__fail(
                err, PGSCHED_ERR_ZONE_UNKNOWN,
                "unknown time zone \"%.32s...\": the name is longer than 255 bytes", zs);
        memcpy(zbuf, zs, (size_t)(ze - zs));
        zbuf[ze - zs] = '\0';
        zone = zbuf;
        p = ze;
        while (pgsched__is_space(*p)) p++;
        if (!*p)
            return pgsched__fail(err, PGSCHED_ERR_CRON_SYNTAX,
                                 "nothing follows %.*s%s: expected 5 or 6 fields or a macro",
                                 (int)pre, key, zbuf);
    } else if (opts && opts->default_zone && *opts->default_zone) {
        zone = opts->default_zone;
    }
    c = (pgsched_cron *)pgsched__calloc(&a, sizeof *c);
    if (!c) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory parsing a cron expression");
    c->alloc = a;
    x.text = expr;
    x.err = err;
    x.c = c;
    x.field = 0;
    x.bits = 0;
    if (*p == '@') {
        r = pgsched__cron_macro(&x, p, &body);
        if (r == PGSCHED_OK && body) r = pgsched__cron_fields_parse(&x, body);
    } else {
        r = pgsched__cron_fields_parse(&x, p);
    }
    if (r == PGSCHED_OK && zone) {
        r = pgsched__tz_load(zone, opts ? opts->tzdir : NULL, &c->alloc, &c->tz, err);
        if (r == PGSCHED_OK && !(c->zone = pgsched__strdup(&c->alloc, zone)))
            r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory parsing a cron expression");
    }
    if (r != PGSCHED_OK) {
        pgsched_cron_free(c);
        return r;
    }
    *out = c;
    return pgsched__ok(err);
}

PGSCHED_DEF void pgsched_cron_free(pgsched_cron *cron)
{
    pgsched_allocator a;
    if (!cron) return;
    a = cron->alloc;
    if (cron->tz) pgsched__tz_free(&a, cron->tz);
    pgsched__free(&a, cron->zone);
    pgsched__free(&a, cron);
}

PGSCHED_DEF const char *pgsched_cron_zone(const pgsched_cron *cron)
{
    return cron && cron->zone ? cron->zone : "UTC";
}

PGSCHED_DEF pgsched_duration pgsched_cron_interval(const pgsched_cron *cron)
{
    return cron ? cron->every : 0;
}

PGSCHED_DEF int pgsched_cron_utc_offset(const pgsched_cron *cron, pgsched_time t)
{
    pgsched__tz_seg seg;
    if (!cron || !cron->tz) return 0;
    if (t < PGSCHED_TIME_MIN) t = PGSCHED_TIME_MIN;
    if (t > PGSCHED_TIME_MAX) t = PGSCHED_TIME_MAX;
    pgsched__tz_segment(cron->tz, pgsched__floor_div(t, PGSCHED__US), &seg);
    return seg.off;
}

/* ---- cron matching ------------------------------------------------------------------------- */

/* The first wall second >= w that every field allows; -1 when none comes before wall year
   10001. Whole months, days, hours and minutes that cannot match are skipped with bit masks,
   so the cost is a few steps per field, not one per second. */
static int pgsched__cron_next_wall(const pgsched_cron *c, int64_t w, int64_t *out)
{
    int64_t days = pgsched__floor_div(w, 86400), sod = w - days * 86400, y, first;
    int m, d, h = (int)(sod / 3600), mi = (int)(sod / 60 % 60), s = (int)(sod % 60);
    pgsched__civil_from_days(days, &y, &m, &d);
    for (;;) {
        uint32_t dmask;
        int n;
        if (y > 10000) return -1;
        if (!(c->month >> m & 1)) {
            uint32_t later = (uint32_t)c->month & ~((2u << m) - 1);
            if (later) {
                m = pgsched__ctz32(later);
            } else {
                y++;
                m = pgsched__ctz32(c->month);
            }
            d = 1;
            h = mi = s = 0;
            continue;
        }
        n = pgsched__days_in_month(y, m);
        first = pgsched__days_from_civil(y, m, 1);
        dmask = pgsched__cron_day_mask(c, n, pgsched__weekday(first)) & (0xFFFFFFFFu << d);
        if (!dmask) {
            if (++m > 12) {
                m = 1;
                y++;
            }
            d = 1;
            h = mi = s = 0;
            continue;
        }
        if (pgsched__ctz32(dmask) != d) {
            d = pgsched__ctz32(dmask);
            h = mi = s = 0;
        }
        while (h < 24) {
            uint32_t hm = c->hour & (0xFFFFFFFFu << h);
            uint64_t mm, sm;
            if (!hm) break;
            if (pgsched__ctz32(hm) != h) {
                h = pgsched__ctz32(hm);
                mi = s = 0;
            }
            mm = c->min & (~(uint64_t)0 << mi);
            if (!mm) {
                h++;
                mi = s = 0;
                continue;
            }
            if (pgsched__ctz64(mm) != mi) {
                mi = pgsched__ctz64(mm);
                s = 0;
            }
            sm = c->sec & (~(uint64_t)0 << s);
            if (!sm) {
                s = 0;
                if (++mi == 60) {
                    mi = 0;
                    h++;
                }
                continue;
            }
            *out = (first + d - 1) * 86400 + h * 3600 + mi * 60 + pgsched__ctz64(sm);
            return 0;
        }
        h = mi = s = 0;
        if (++d > n) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
}

/* The instant a matching wall time w fires at under the wall-clock rules: its first
   occurrence, or, when a gap skips it, the instant the gap ends. Any instant showing w lies
   in [w - max_off, w - min_off], so the walk visits only the stretches there. */
static int64_t pgsched__tz_first_instant(const pgsched__tz *z, int64_t w)
{
    pgsched__tz_seg seg;
    pgsched__tz_segment(z, w - z->max_off, &seg);
    for (;;) {
        int64_t t = w - seg.off;
        if (t < seg.start) return seg.start; /* the earlier stretches ended below w: a gap */
        if (t < seg.end) return t;
        pgsched__tz_segment(z, seg.end, &seg);
    }
}

/* The next firing at or after instant a (seconds) in a zone with transitions. */
static pgsched_result pgsched__cron_next_zoned(const pgsched_cron *c, int64_t a, int64_t *out)
{
    const pgsched__tz *z = c->tz;
    pgsched__tz_seg seg;
    int64_t w, t;
    pgsched__tz_segment(z, a, &seg);
    if (c->real_time) {
        /* Within a stretch of constant offset the wall clock runs with real time; a match
           that falls past the stretch's end is not real, so look again in the next one (after
           a fall-back its wall times repeat and may match again). */
        for (;;) {
            if (pgsched__cron_next_wall(c, a + seg.off, &w) != 0) return PGSCHED_ERR_TIME_RANGE;
            t = w - seg.off;
            if (t < seg.end) break;
            a = seg.end;
            if (a > PGSCHED__SEC_MAX) return PGSCHED_ERR_TIME_RANGE;
            pgsched__tz_segment(z, a, &seg);
        }
        *out = t;
        return PGSCHED_OK;
    }
    /* Under the wall-clock rules the firing instant never decreases as the wall time grows,
       so find the least wall time that fires at or after a, then the first match from it. */
    w = a + seg.off;
    if (seg.start != INT64_MIN) {
        if (seg.prev_off > seg.off && a - seg.start < (int64_t)seg.prev_off - seg.off)
            w = seg.start + seg.prev_off; /* a repeats wall times that already had their turn */
        else if (seg.prev_off < seg.off && a == seg.start)
            w = seg.start + seg.prev_off; /* a gap ends at a: its matches fire now */
    }
    for (;;) {
        if (pgsched__cron_next_wall(c, w, &w) != 0) return PGSCHED_ERR_TIME_RANGE;
        t = pgsched__tz_first_instant(z, w);
        if (t >= a) break;
        w++; /* only zones whose transitions overlap each other get here */
    }
    *out = t;
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_cron_next(const pgsched_cron *cron, pgsched_time after,
                                             pgsched_time *next)
{
    int64_t a, t;
    if (!cron || !next) return PGSCHED_ERR_INVALID_ARGUMENT;
    if (after < PGSCHED_TIME_MIN || after > PGSCHED_TIME_MAX) return PGSCHED_ERR_TIME_RANGE;
    if (cron->every) {
        if (after > PGSCHED_TIME_MAX - cron->every) return PGSCHED_ERR_TIME_RANGE;
        *next = after + cron->every;
        return PGSCHED_OK;
    }
    /* Cron fires on whole seconds: the first candidate is the next whole second. */
    a = pgsched__floor_div(after, PGSCHED__US) + 1;
    if (!cron->tz) {
        if (pgsched__cron_next_wall(cron, a, &t) != 0) return PGSCHED_ERR_TIME_RANGE;
    } else {
        pgsched_result r = pgsched__cron_next_zoned(cron, a, &t);
        if (r != PGSCHED_OK) return r;
    }
    if (t > PGSCHED__SEC_MAX) return PGSCHED_ERR_TIME_RANGE;
    *next = t * PGSCHED__US;
    return PGSCHED_OK;
}

/* ---- calculators --------------------------------------------------------------------------- */

PGSCHED_DEF pgsched_result pgsched_interval_next(pgsched_duration every, pgsched_time after,
                                                 pgsched_time *next)
{
    if (!next) return PGSCHED_ERR_INVALID_ARGUMENT;
    if (every <= 0) return PGSCHED_ERR_SCHEDULE;
    if (after < PGSCHED_TIME_MIN || after > PGSCHED_TIME_MAX) return PGSCHED_ERR_TIME_RANGE;
    if (after > PGSCHED_TIME_MAX - every) return PGSCHED_ERR_TIME_RANGE;
    *next = after + every;
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_once_next(pgsched_time at, pgsched_time after,
                                             pgsched_time *next)
{
    if (!next) return PGSCHED_ERR_INVALID_ARGUMENT;
    /* at = 0 means "now", which only the engine (with its store's clock) can resolve. */
    if (at <= 0) return PGSCHED_ERR_SCHEDULE;
    if (at > PGSCHED_TIME_MAX) return PGSCHED_ERR_TIME_RANGE;
    if (after >= at) return PGSCHED_ERR_NO_NEXT;
    *next = at;
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_next_run(const pgsched_schedule *s,
                                            const pgsched_cron_options *opts,
                                            pgsched_time after, pgsched_time *next,
                                            pgsched_error *err)
{
    char ta[PGSCHED_TIME_STRING_MAX], tb[PGSCHED_TIME_STRING_MAX];
    pgsched_result r;
    if (!s || !next)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "the schedule or output is NULL");
    if (after < PGSCHED_TIME_MIN || after > PGSCHED_TIME_MAX)
        return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                             "the time %lld is outside years 1900-9999", (long long)after);
    pgsched_time_format(after, 0, 1, ta, sizeof ta);
    switch (s->kind) {
    case PGSCHED_SCHEDULE_ONCE:
        r = pgsched_once_next(s->at, after, next);
        if (r == PGSCHED_ERR_SCHEDULE)
            return pgsched__fail(err, r,
                                 "a one-time schedule needs a positive time (at = %lld); at = 0 "
                                 "means \"the store's now + delay\", which only the store can "
                                 "resolve",
                                 (long long)s->at);
        if (r == PGSCHED_ERR_TIME_RANGE)
            return pgsched__fail(err, r, "the one-time schedule's time %lld is after year 9999",
                                 (long long)s->at);
        if (r == PGSCHED_ERR_NO_NEXT) {
            if (!pgsched_time_format(s->at, 0, 1, tb, sizeof tb))
                pgsched__copy_text(tb, sizeof tb, "?");
            return pgsched__fail(err, r, "the one-time schedule at %s has no run after %s", tb, ta);
        }
        return pgsched__ok(err);
    case PGSCHED_SCHEDULE_CRON: {
        pgsched_cron *c;
        if (!s->cron)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "a cron schedule needs its expression");
        if ((r = pgsched_cron_parse(s->cron, opts, &c, err)) != PGSCHED_OK) return r;
        r = pgsched_cron_next(c, after, next);
        pgsched_cron_free(c);
        if (r != PGSCHED_OK)
            return pgsched__fail(err, r, "the cron schedule has no run between %s and year 10000",
                                 ta);
        return pgsched__ok(err);
    }
    case PGSCHED_SCHEDULE_INTERVAL:
        r = pgsched_interval_next(s->every, after, next);
        if (r == PGSCHED_ERR_SCHEDULE)
            return pgsched__fail(err, r,
                                 "an interval schedule needs a positive interval (every = %lld us)",
                                 (long long)s->every);
        if (r != PGSCHED_OK)
            return pgsched__fail(err, r,
                                 "the interval schedule has no run between %s and year "
                                 "10000",
                                 ta);
        return pgsched__ok(err);
    case PGSCHED_SCHEDULE_CUSTOM:
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                             "a custom schedule is computed by its job type's next-run callback, "
                             "which pgsched_next_run does not have");
    }
    return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "unknown schedule kind %d", (int)s->kind);
}

/* ---- [pgsched: jobs] implementation -------------------------------------------------------- */

PGSCHED_DEF const char *pgsched_status_string(pgsched_status s)
{
    switch (s) {
    case PGSCHED_STATUS_NONE: return "none";
    case PGSCHED_STATUS_PENDING: return "pending";
    case PGSCHED_STATUS_RUNNING: return "running";
    case PGSCHED_STATUS_COMPLETED: return "completed";
    case PGSCHED_STATUS_FAILED: return "failed";
    case PGSCHED_STATUS_CANCELLED: return "cancelled";
    }
    return "unknown";
}

PGSCHED_DEF const char *pgsched_outcome_string(pgsched_outcome k)
{
    switch (k) {
    case PGSCHED_OUTCOME_SUCCESS: return "success";
    case PGSCHED_OUTCOME_FAILURE: return "failure";
    case PGSCHED_OUTCOME_CANCELLED: return "cancelled";
    case PGSCHED_OUTCOME_STALLED: return "stalled";
    case PGSCHED_OUTCOME_RELEASED: return "released";
    }
    return "unknown";
}

static int pgsched__is_recurring(pgsched_schedule_kind k)
{
    return k == PGSCHED_SCHEDULE_CRON || k == PGSCHED_SCHEDULE_INTERVAL || k == PGSCHED_SCHEDULE_CUSTOM;
}

/* ---- owned lists ----
   Each pushed row gets one block holding copies of all its strings, so a row's pointers stay
   valid when the items array grows, and freeing is one call per row. */

static size_t pgsched__slen(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *pgsched__block_put(char **cursor, const char *s)
{
    size_t n;
    char *r;
    if (!s) return NULL;
    n = strlen(s) + 1;
    r = *cursor;
    memcpy(r, s, n);
    *cursor += n;
    return r;
}

/* Grows items (of item_size) and blocks to hold one more; returns 0 on failure. */
static int pgsched__list_grow(pgsched_allocator *a, void **items, void ***blocks, size_t count,
                              size_t *cap, size_t item_size)
{
    size_t ncap;
    void *ni;
    void **nb;
    if (count < *cap) return 1;
    ncap = *cap ? *cap * 2 : 8;
    ni = pgsched__realloc(a, *items, ncap * item_size);
    if (!ni) return 0;
    *items = ni;
    nb = (void **)pgsched__realloc(a, *blocks, ncap * sizeof(void *));
    if (!nb) return 0;
    *blocks = nb;
    *cap = ncap;
    return 1;
}

PGSCHED_DEF void pgsched_job_list_init(pgsched_job_list *list, const pgsched_allocator *a)
{
    PGSCHED_ASSERT(!pgsched__allocator_partial(a));
    memset(list, 0, sizeof *list);
    list->alloc = pgsched__allocator(a);
}

PGSCHED_DEF pgsched_result pgsched_job_list_push(pgsched_job_list *list, const pgsched_job *job)
{
    size_t total;
    char *block, *cur;
    pgsched_job *dst;
    if (!list || !job) return PGSCHED_ERR_INVALID_ARGUMENT;
    if (!list->alloc.malloc_fn) list->alloc = pgsched__allocator(NULL);
    if (!pgsched__list_grow(&list->alloc, (void **)&list->items, &list->blocks, list->count,
                            &list->cap, sizeof(pgsched_job)))
        return PGSCHED_ERR_NOMEM;
    total = pgsched__slen(job->name) + pgsched__slen(job->key) + pgsched__slen(job->cron) +
            pgsched__slen(job->params) + pgsched__slen(job->owner) +
            pgsched__slen(job->last_error);
    block = (char *)pgsched__malloc(&list->alloc, total);
    if (!block) return PGSCHED_ERR_NOMEM;
    cur = block;
    dst = &list->items[list->count];
    *dst = *job;
    dst->name = pgsched__block_put(&cur, job->name);
    dst->key = pgsched__block_put(&cur, job->key);
    dst->cron = pgsched__block_put(&cur, job->cron);
    dst->params = pgsched__block_put(&cur, job->params);
    dst->owner = pgsched__block_put(&cur, job->owner);
    dst->last_error = pgsched__block_put(&cur, job->last_error);
    list->blocks[list->count++] = block;
    return PGSCHED_OK;
}

/* A job of its own (pgsched_get): one allocation holding this header, the job, then its
   strings. The header remembers the allocator pgsched_job_free gives the block back to. */
typedef struct pgsched__job_block {
    pgsched_allocator alloc;
    pgsched_job job;
} pgsched__job_block;

/* A deep copy of `job` in one block of `a`; NULL when out of memory. */
static pgsched_job *pgsched__job_dup(const pgsched_allocator *a, const pgsched_job *job)
{
    size_t total = sizeof(pgsched__job_block) + pgsched__slen(job->name) +
                   pgsched__slen(job->key) + pgsched__slen(job->cron) +
                   pgsched__slen(job->params) + pgsched__slen(job->owner) +
                   pgsched__slen(job->last_error);
    pgsched__job_block *b = (pgsched__job_block *)pgsched__malloc(a, total);
    char *cur;
    if (!b) return NULL;
    b->alloc = *a;
    cur = (char *)(b + 1);
    b->job = *job;
    b->job.name = pgsched__block_put(&cur, job->name);
    b->job.key = pgsched__block_put(&cur, job->key);
    b->job.cron = pgsched__block_put(&cur, job->cron);
    b->job.params = pgsched__block_put(&cur, job->params);
    b->job.owner = pgsched__block_put(&cur, job->owner);
    b->job.last_error = pgsched__block_put(&cur, job->last_error);
    return &b->job;
}

PGSCHED_DEF void pgsched_job_free(pgsched_job *job)
{
    pgsched__job_block *b;
    pgsched_allocator a;
    if (!job) return;
    b = (pgsched__job_block *)(void *)((char *)job - offsetof(pgsched__job_block, job));
    a = b->alloc;
    pgsched__free(&a, b);
}

/* Both list types share these: free each row's block, then (free) the arrays. */
static void pgsched__list_clear(pgsched_allocator *a, void **blocks, size_t *count)
{
    size_t i;
    for (i = 0; i < *count; i++) pgsched__free(a, blocks[i]);
    *count = 0;
}

static void pgsched__list_free(pgsched_allocator *a, void **items, void ***blocks, size_t *count,
                               size_t *cap)
{
    pgsched__list_clear(a, *blocks, count);
    if (a->free_fn) {
        pgsched__free(a, *items);
        pgsched__free(a, *blocks);
    }
    *items = NULL;
    *blocks = NULL;
    *cap = 0;
}

PGSCHED_DEF void pgsched_job_list_clear(pgsched_job_list *list)
{
    if (list) pgsched__list_clear(&list->alloc, list->blocks, &list->count);
}

PGSCHED_DEF void pgsched_job_list_free(pgsched_job_list *list)
{
    void *items;
    if (!list) return;
    items = list->items;
    pgsched__list_free(&list->alloc, &items, &list->blocks, &list->count, &list->cap);
    list->items = NULL;
}

PGSCHED_DEF void pgsched_run_list_init(pgsched_run_list *list, const pgsched_allocator *a)
{
    PGSCHED_ASSERT(!pgsched__allocator_partial(a));
    memset(list, 0, sizeof *list);
    list->alloc = pgsched__allocator(a);
}

PGSCHED_DEF pgsched_result pgsched_run_list_push(pgsched_run_list *list,
                                                 const pgsched_run_record *rec)
{
    size_t total;
    char *block, *cur;
    pgsched_run_record *dst;
    if (!list || !rec) return PGSCHED_ERR_INVALID_ARGUMENT;
    if (!list->alloc.malloc_fn) list->alloc = pgsched__allocator(NULL);
    if (!pgsched__list_grow(&list->alloc, (void **)&list->items, &list->blocks, list->count,
                            &list->cap, sizeof(pgsched_run_record)))
        return PGSCHED_ERR_NOMEM;
    total = pgsched__slen(rec->name) + pgsched__slen(rec->key) + pgsched__slen(rec->node) +
            pgsched__slen(rec->error);
    block = (char *)pgsched__malloc(&list->alloc, total);
    if (!block) return PGSCHED_ERR_NOMEM;
    cur = block;
    dst = &list->items[list->count];
    *dst = *rec;
    dst->name = pgsched__block_put(&cur, rec->name);
    dst->key = pgsched__block_put(&cur, rec->key);
    dst->node = pgsched__block_put(&cur, rec->node);
    dst->error = pgsched__block_put(&cur, rec->error);
    list->blocks[list->count++] = block;
    return PGSCHED_OK;
}

PGSCHED_DEF void pgsched_run_list_clear(pgsched_run_list *list)
{
    if (list) pgsched__list_clear(&list->alloc, list->blocks, &list->count);
}

PGSCHED_DEF void pgsched_run_list_free(pgsched_run_list *list)
{
    void *items;
    if (!list) return;
    items = list->items;
    pgsched__list_free(&list->alloc, &items, &list->blocks, &list->count, &list->cap);
    list->items = NULL;
}

/* ---- validation ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one: overlong forms,
   surrogates and code points above U+10FFFF are invalid, as PostgreSQL's UTF8 check has it. */
static size_t pgsched__utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80) return 0;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Byte offset of the first invalid sequence, or (size_t)-1 when all of it is valid. */
static size_t pgsched__utf8_check(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = pgsched__utf8_seq((const unsigned char *)s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return (size_t)-1;
}

static pgsched_result pgsched__validate_label(const char *what, pgsched_result code,
                                              const char *s, size_t max, pgsched_error *err)
{
    size_t n, i, bad;
    if (!s) return pgsched__fail(err, code, "the job %s is missing (NULL)", what);
    n = strlen(s);
    if (n == 0) return pgsched__fail(err, code, "the job %s is empty", what);
    if (n > max)
        return pgsched__fail(err, code, "the job %s is %lu bytes long; the limit is %lu", what,
                             (unsigned long)n, (unsigned long)max);
    bad = pgsched__utf8_check(s, n);
    if (bad != (size_t)-1)
        return pgsched__fail(err, PGSCHED_ERR_UTF8,
                             "the job %s is not valid UTF-8 (byte %lu)", what,
                             (unsigned long)bad + 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return pgsched__fail(err, code,
                                 "the job %s contains the control character 0x%02X (byte %lu)",
                                 what, c, (unsigned long)i + 1);
    }
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_validate_name(const char *name, pgsched_error *err)
{
    return pgsched__validate_label("name", PGSCHED_ERR_NAME, name, PGSCHED_NAME_MAX, err);
}

PGSCHED_DEF pgsched_result pgsched_validate_key(const char *key, pgsched_error *err)
{
    return pgsched__validate_label("key", PGSCHED_ERR_KEY, key, PGSCHED_KEY_MAX, err);
}

PGSCHED_DEF pgsched_result pgsched_validate_identifier(const char *what, const char *ident,
                                                       size_t max_len, pgsched_error *err)
{
    size_t i, n;
    if (!ident) return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER, "%s is missing (NULL)", what);
    n = strlen(ident);
    if (n == 0) return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER, "%s is empty", what);
    if (n > max_len)
        return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER,
                             "%s \"%.80s\" is %lu bytes long; at most %lu fit", what, ident,
                             (unsigned long)n, (unsigned long)max_len);
    for (i = 0; i < n; i++) {
        char c = ident[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            if (i == 0 && c >= '0' && c <= '9')
                return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER,
                                     "%s \"%.80s\" starts with a digit", what, ident);
            return pgsched__fail(err, PGSCHED_ERR_IDENTIFIER,
                                 "%s \"%.80s\" has a character other than letters, digits and "
                                 "'_' at byte %lu",
                                 what, ident, (unsigned long)i + 1);
        }
    }
    return PGSCHED_OK;
}

static pgsched_result pgsched__validate_node_id(const char *id, pgsched_error *err)
{
    size_t i, n;
    if (!id)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "the node id is missing (NULL)");
    n = strlen(id);
    if (n == 0 || n > PGSCHED_NODE_ID_MAX)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "the node id must be 1 to %d bytes long", PGSCHED_NODE_ID_MAX);
    for (i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "the node id has a character other than letters, digits and "
                                 "_.:- at byte %lu",
                                 (unsigned long)i + 1);
    }
    return PGSCHED_OK;
}

/* ---- JSON ----
   An RFC 8259 validator without recursion (an explicit stack of open containers), so deep
   nesting cannot overflow the C stack. It accepts what PostgreSQL's json type accepts, except
   that it limits nesting depth and refuses \u escapes of unpaired surrogates (which no JSON
   reader can turn into text). */

#define PGSCHED__JSON_MAX_DEPTH 1000

static int pgsched__json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int pgsched__hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Scans a string starting at the opening quote; returns the index after the closing quote or
   0 with *why set. */
static size_t pgsched__json_string(const char *s, size_t i, const char **why)
{
    i++; /* the quote */
    for (;;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') return i + 1;
        if (c == '\0') { *why = "a string is not closed"; return 0; }
        if (c < 0x20) { *why = "a string contains an unescaped control character"; return 0; }
        if (c == '\\') {
            char e = s[i + 1];
            if (e == 'u') {
                unsigned cp, lo;
                if (!pgsched__hex4(s + i + 2, &cp)) {
                    *why = "a \\u escape needs four hex digits";
                    return 0;
                }
                i += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    *why = "a \\u escape is a lone low surrogate";
                    return 0;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (s[i] != '\\' || s[i + 1] != 'u' || !pgsched__hex4(s + i + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF) {
                        *why = "a \\u high surrogate is not followed by a low surrogate";
                        return 0;
                    }
                    i += 6;
                }
                continue;
            }
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                e == 'r' || e == 't') {
                i += 2;
                continue;
            }
            *why = "a string has an invalid escape";
            return 0;
        }
        i++;
    }
}

static size_t pgsched__json_number(const char *s, size_t i, const char **why)
{
    size_t start;
    if (s[i] == '-') i++;
    if (s[i] == '0') i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (s[i] >= '0' && s[i] <= '9') i++;
    else { *why = "a number has no digits"; return 0; }
    if (s[i] == '.') {
        i++;
        start = i;
        while (s[i] >= '0' && s[i] <= '9') i++;
        if (i == start) { *why = "a number has no digits after its decimal point"; return 0; }
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-') i++;
        start = i;
        while (s[i] >= '0' && s[i] <= '9') i++;
        if (i == start) { *why = "a number has no digits in its exponent"; return 0; }
    }
    return i;
}

PGSCHED_DEF pgsched_result pgsched_validate_json(const char *s, pgsched_error *err)
{
    /* stack[d] is '{' or '['; `expect` is what may come next. */
    enum { VALUE, VALUE_OR_CLOSE, KEY, KEY_OR_CLOSE, COLON, COMMA_OR_CLOSE, END } expect = VALUE;
    unsigned char *stack;
    size_t depth = 0, i = 0, n, bad;
    const char *why = NULL;
    pgsched_result r = PGSCHED_OK;
    pgsched_allocator a = pgsched__allocator(NULL);

    if (!s) return pgsched__fail(err, PGSCHED_ERR_JSON, "the parameters are missing (NULL)");
    n = strlen(s);
    if (n > PGSCHED_PARAMS_MAX)
        return pgsched__fail(err, PGSCHED_ERR_TOO_LARGE,
                             "the parameters are %lu bytes long; the limit is %lu",
                             (unsigned long)n, (unsigned long)PGSCHED_PARAMS_MAX);
    bad = pgsched__utf8_check(s, n);
    if (bad != (size_t)-1)
        return pgsched__fail(err, PGSCHED_ERR_UTF8,
                             "the parameters are not valid UTF-8 (byte %lu)",
                             (unsigned long)bad + 1);
    stack = (unsigned char *)pgsched__malloc(&a, PGSCHED__JSON_MAX_DEPTH);
    if (!stack) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory checking JSON");

    for (;;) {
        char c;
        while (pgsched__json_ws(s[i])) i++;
        c = s[i];
        if (expect == END) {
            if (c != '\0') why = "there is text after the JSON value";
            break;
        }
        if (c == '\0') { why = "the JSON text ends early"; break; }
        if (expect == COLON) {
            if (c != ':') { why = "an object key is not followed by ':'"; break; }
            i++;
            expect = VALUE;
            continue;
        }
        if (expect == COMMA_OR_CLOSE) {
            if (c == ',') {
                i++;
                expect = stack[depth - 1] == '{' ? KEY : VALUE;
                continue;
            }
            if ((c == '}' && stack[depth - 1] == '{') || (c == ']' && stack[depth - 1] == '[')) {
                i++;
                depth--;
                expect = depth ? COMMA_OR_CLOSE : END;
                continue;
            }
            why = "expected ',' or the end of the container";
            break;
        }
        if (expect == KEY || expect == KEY_OR_CLOSE) {
            if (c == '}' && expect == KEY_OR_CLOSE) {
                i++;
                depth--;
                expect = depth ? COMMA_OR_CLOSE : END;
                continue;
            }
            if (c != '"') { why = "an object key is not a string"; break; }
            {
                size_t j = pgsched__json_string(s, i, &why);
                if (!j) break;
                i = j;
            }
            expect = COLON;
            continue;
        }
        /* VALUE or VALUE_OR_CLOSE */
        if (c == ']' && expect == VALUE_OR_CLOSE) {
            i++;
            depth--;
            expect = depth ? COMMA_OR_CLOSE : END;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == PGSCHED__JSON_MAX_DEPTH) {
                why = "the JSON is nested more than 1000 levels deep";
                break;
            }
            stack[depth++] = (unsigned char)c;
            i++;
            expect = c == '{' ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
            continue;
        }
        {
            size_t j = 0;
            if (c == '"') j = pgsched__json_string(s, i, &why);
            else if (c == '-' || (c >= '0' && c <= '9')) j = pgsched__json_number(s, i, &why);
            else if (strncmp(s + i, "true", 4) == 0) j = i + 4;
            else if (strncmp(s + i, "false", 5) == 0) j = i + 5;
            else if (strncmp(s + i, "null", 4) == 0) j = i + 4;
            else why = "a value is not a string, number, object, array, true, false or null";
            if (why) break;
            i = j;
        }
        expect = depth ? COMMA_OR_CLOSE : END;
    }
    pgsched__free(&a, stack);
    if (why)
        r = pgsched__fail(err, PGSCHED_ERR_JSON, "the parameters are not valid JSON: %s (byte %lu)",
                          why, (unsigned long)i + 1);
    return r;
}

/* ---- [pgsched: store author API] implementation: the validating wrappers ------------------
   Every check lives here, once, so that every store gives the same code and sentence for the
   same bad input and a store method never sees a NULL it did not expect. */

#define PGSCHED__CRON_TEXT_MAX 1024
#define PGSCHED__MAX_RETRIES 1000000
#define PGSCHED__CLAIM_MAX 10000
/* The longest duration anything accepts: a century keeps every sum with a time in range. */
#define PGSCHED__DURATION_MAX ((pgsched_duration)100 * 366 * PGSCHED_DAY)

/* A store must fill every method but the four listen_* ones: a store without notifications
   leaves them NULL (one missing counts as none), and nodes on it poll. */
static pgsched_result pgsched__check_store(pgsched_store *s, pgsched_error *err)
{
    const pgsched_store_methods *m;
    const char *missing = NULL;
    if (!s || !s->methods)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "the store is missing (NULL)");
    m = s->methods;
    if (m->version < 1)
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                             "the store's method table has version %d; this library needs 1",
                             m->version);
#define PGSCHED__NEED(f) else if (!m->f) missing = #f;
    if (0) {}
    PGSCHED__NEED(setup) PGSCHED__NEED(destroy) PGSCHED__NEED(now) PGSCHED__NEED(schedule)
    PGSCHED__NEED(claim) PGSCHED__NEED(heartbeat) PGSCHED__NEED(finish) PGSCHED__NEED(take_back)
    PGSCHED__NEED(cancel) PGSCHED__NEED(trigger) PGSCHED__NEED(remove) PGSCHED__NEED(get)
    PGSCHED__NEED(list) PGSCHED__NEED(history) PGSCHED__NEED(next_due)
    PGSCHED__NEED(node_register) PGSCHED__NEED(node_unregister) PGSCHED__NEED(cleanup)
#undef PGSCHED__NEED
    if (missing)
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                             "the %s store's method table has no %s method",
                             m->name ? m->name : "(unnamed)", missing);
    return PGSCHED_OK;
}

/* Whether a store delivers events (its listen_* methods are all there). */
static int pgsched__store_listens(const pgsched_store *s)
{
    const pgsched_store_methods *m = s && s->methods ? s->methods : NULL;
    return m && m->listen_open && m->listen_wait && m->listen_wake && m->listen_close;
}

/* How long dead node records stay: the history retention, and at least the orphan timeout,
   since a type some node registered within it is not an orphan. */
static pgsched_duration pgsched__node_retention(const pgsched_cleanup_request *q)
{
    if (q->orphan_timeout != PGSCHED_NEVER && q->orphan_timeout > q->history_retention)
        return q->orphan_timeout;
    return q->history_retention;
}

static pgsched_result pgsched__null(pgsched_error *err, const char *what)
{
    return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "%s is missing (NULL)", what);
}

static pgsched_result pgsched__check_name_key(const char *name, const char *key,
                                              pgsched_error *err)
{
    pgsched_result r = pgsched_validate_name(name, err);
    if (r == PGSCHED_OK) r = pgsched_validate_key(key, err);
    return r;
}

static pgsched_result pgsched__check_opt_node(const char *node_id, pgsched_error *err)
{
    return node_id ? pgsched__validate_node_id(node_id, err) : PGSCHED_OK;
}

static pgsched_result pgsched__check_time(const char *what, pgsched_time t, pgsched_error *err)
{
    if (t != 0 && (t < PGSCHED_TIME_MIN || t > PGSCHED_TIME_MAX))
        return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                             "%s is outside years 1900..9999", what);
    return PGSCHED_OK;
}

static pgsched_result pgsched__check_duration(const char *what, pgsched_duration d,
                                              pgsched_error *err)
{
    if (d < 0)
        return pgsched__fail(err, PGSCHED_ERR_DURATION, "%s is negative", what);
    return PGSCHED_OK;
}

static pgsched_result pgsched__check_names(const char *const *names, size_t count,
                                           pgsched_error *err)
{
    size_t i;
    if (count && !names) return pgsched__null(err, "the list of job type names");
    for (i = 0; i < count; i++) {
        pgsched_result r = pgsched_validate_name(names[i], err);
        if (r != PGSCHED_OK) return r;
    }
    return PGSCHED_OK;
}

/* A delay from the store's now (schedule.delay, a request's delay): 0..100 years. */
static pgsched_result pgsched__check_delay(const char *what, pgsched_duration d,
                                           pgsched_error *err)
{
    if (d < 0)
        return pgsched__fail(err, PGSCHED_ERR_DURATION, "%s is negative (%lld us)", what,
                             (long long)d);
    if (d > PGSCHED__DURATION_MAX)
        return pgsched__fail(err, PGSCHED_ERR_DURATION,
                             "%s is longer than 100 years (%lld us)", what, (long long)d);
    return PGSCHED_OK;
}

static pgsched_result pgsched__check_schedule_request(const pgsched_schedule_request *req,
                                                      pgsched_error *err)
{
    pgsched_result r;
    if (!req) return pgsched__null(err, "the schedule request");
    if ((r = pgsched__check_name_key(req->name, req->key, err)) != PGSCHED_OK) return r;
    if (req->params && (r = pgsched_validate_json(req->params, err)) != PGSCHED_OK) return r;
    switch (req->kind) {
    case PGSCHED_SCHEDULE_CRON: {
        size_t n;
        if (!req->cron || !req->cron[0])
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "a cron schedule needs its expression");
        n = strlen(req->cron);
        if (n > PGSCHED__CRON_TEXT_MAX)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "the cron expression is %lu bytes long; the limit is %d",
                                 (unsigned long)n, PGSCHED__CRON_TEXT_MAX);
        if (pgsched__utf8_check(req->cron, n) != (size_t)-1)
            return pgsched__fail(err, PGSCHED_ERR_UTF8, "the cron expression is not valid UTF-8");
        break;
    }
    case PGSCHED_SCHEDULE_INTERVAL:
        if (req->every <= 0 || req->every > PGSCHED__DURATION_MAX)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "an interval schedule needs a positive interval of at most "
                                 "100 years");
        break;
    case PGSCHED_SCHEDULE_ONCE:
    case PGSCHED_SCHEDULE_CUSTOM: break;
    default:
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "the schedule kind %d is unknown",
                             (int)req->kind);
    }
    if (req->max_retries < 0 || req->max_retries > PGSCHED__MAX_RETRIES)
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                             "max_retries %d is outside 0..%d", req->max_retries,
                             PGSCHED__MAX_RETRIES);
    if (req->next_run < 0)
        return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE, "the first run time is negative");
    if ((r = pgsched__check_time("the first run time", req->next_run, err)) != PGSCHED_OK)
        return r;
    if ((r = pgsched__check_delay("the request's delay", req->delay, err)) != PGSCHED_OK)
        return r;
    if (req->delay && req->next_run)
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                             "the request sets both next_run and delay; a delay counts from "
                             "the store's now and needs next_run 0");
    return pgsched__check_opt_node(req->node_id, err);
}

PGSCHED_DEF pgsched_result pgsched_store_setup(pgsched_store *s, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    return s->methods->setup(s, err);
}

PGSCHED_DEF void pgsched_store_destroy(pgsched_store *s)
{
    if (s && s->methods && s->methods->destroy) s->methods->destroy(s);
}

PGSCHED_DEF pgsched_result pgsched_store_now(pgsched_store *s, pgsched_time *now,
                                             pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!now) return pgsched__null(err, "the output time");
    return s->methods->now(s, now, err);
}

static pgsched_result pgsched__store_schedule(pgsched_store *s,
                                              const pgsched_schedule_request *req, void *conn,
                                              pgsched_schedule_info *out, pgsched_error *err)
{
    pgsched_schedule_info local;
    pgsched_schedule_request copy;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__check_schedule_request(req, err)) != PGSCHED_OK) return r;
    copy = *req;
    if (!copy.params) copy.params = "{}";
    if (copy.kind != PGSCHED_SCHEDULE_CRON) copy.cron = NULL;
    if (copy.kind != PGSCHED_SCHEDULE_INTERVAL) copy.every = 0;
    memset(&local, 0, sizeof local);
    r = s->methods->schedule(s, &copy, conn, &local, err);
    if (out) *out = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_schedule(pgsched_store *s,
                                                  const pgsched_schedule_request *req,
                                                  pgsched_schedule_info *out,
                                                  pgsched_error *err)
{
    return pgsched__store_schedule(s, req, NULL, out, err);
}

static uint64_t pgsched__hash(const char *a, const char *b);
static pgsched_result pgsched__err_running(pgsched_error *err, const char *name, const char *key,
                                           const char *what);

/* What a call on many items reports: the first item that failed (index `first`, `count` when
   none did), its message, and how many failed. */
typedef struct pgsched__many_report {
    size_t first, failed;
    pgsched_error e;
} pgsched__many_report;

static void pgsched__many_note(pgsched__many_report *m, size_t i, pgsched_result code,
                               const pgsched_error *e)
{
    if (code == PGSCHED_OK) return;
    m->failed++;
    if (i >= m->first) return;
    m->first = i;
    if (e && e->code == code && e->message[0]) m->e = *e;
    else pgsched__fail(&m->e, code, "%s", pgsched_result_string(code));
}

/* The return value and `err` of a call on many items: OK, or the first failure's code and a
   sentence naming its index, why, and how many others failed. */
static pgsched_result pgsched__many_result(const pgsched__many_report *m, const char *item,
                                           size_t count, pgsched_error *err)
{
    if (m->failed == 0) return pgsched__ok(err);
    if (m->failed == 1)
        return pgsched__fail(err, m->e.code, "%s %lu of %lu: %s", item, (unsigned long)m->first,
                             (unsigned long)count, m->e.message);
    return pgsched__fail(err, m->e.code, "%s %lu of %lu: %s (%lu failed in all)", item,
                         (unsigned long)m->first, (unsigned long)count, m->e.message,
                         (unsigned long)m->failed);
}

/* Writes one duplicate-free batch through the store: its schedule_many, or (a store of
   version 1 or without one) one schedule call per request. */
static void pgsched__store_batch(pgsched_store *s, void *conn, int tx,
                                 const pgsched_schedule_request *reqs, const size_t *at, size_t n,
                                 pgsched_schedule_info *outs, pgsched_result *results,
                                 pgsched__many_report *m)
{
    const pgsched_store_methods *mt = s->methods;
    pgsched_error e;
    size_t k;
    memset(&e, 0, sizeof e);
    if (tx || (mt->version >= 2 && mt->schedule_many)) {
        pgsched_result r;
        if (tx && (mt->version < 2 || !mt->schedule_many_tx))
            r = pgsched__fail(&e, PGSCHED_ERR_UNSUPPORTED,
                              "the %s store cannot schedule in the caller's transaction",
                              mt->name ? mt->name : "custom");
        else if (tx)
            r = mt->schedule_many_tx(s, conn, reqs, n, outs, results, &e);
        else
            r = mt->schedule_many(s, reqs, n, outs, results, &e);
        for (k = 0; k < n; k++) {
            pgsched_error one;
            if (r != PGSCHED_OK) results[k] = r;
            if (results[k] == PGSCHED_OK || at[k] >= m->first) {
                pgsched__many_note(m, at[k], results[k], NULL);
                continue;
            }
            if (r != PGSCHED_OK) one = e;
            else if (results[k] == PGSCHED_ERR_RUNNING)
                pgsched__err_running(&one, reqs[k].name, reqs[k].key,
                                     "re-scheduling is refused unless it applies after the run");
            else
                pgsched__fail(&one, results[k], "job %s/%s: %s", reqs[k].name, reqs[k].key,
                              pgsched_result_string(results[k]));
            pgsched__many_note(m, at[k], results[k], &one);
        }
        return;
    }
    for (k = 0; k < n; k++) {
        memset(&e, 0, sizeof e);
        results[k] = mt->schedule(s, &reqs[k], NULL, &outs[k], &e);
        pgsched__many_note(m, at[k], results[k], &e);
    }
}

/* How many batches of one call may be written at once, each on a connection of its own: for
   the PostgreSQL store, one fewer than its pool's connections (at most PGSCHED__LANES_MAX), so
   that one is always left to the node's claims, heartbeats and outcomes: a batch may wait on
   row locks for as long as someone's transaction holds them. 1 for other stores. */
#define PGSCHED__LANES_MAX 4
static size_t pgsched__store_lanes(pgsched_store *s);

/* One of the batches written at once (pgsched__store_batches), with its own report. */
typedef struct pgsched__lane {
    pgsched_store *s;
    const pgsched_schedule_request *reqs;
    const size_t *at;
    size_t n;
    pgsched_schedule_info *outs;
    pgsched_result *results;
    pgsched__many_report m;
} pgsched__lane;

static void *pgsched__lane_main(void *arg)
{
    pgsched__lane *l = (pgsched__lane *)arg;
    pgsched__store_batch(l->s, NULL, 0, l->reqs, l->at, l->n, l->outs, l->results, &l->m);
    return NULL;
}

/* Writes n requests of one round in batches of up to PGSCHED_SCHEDULE_BATCH_MAX; outside a
   caller's transaction, up to pgsched__store_lanes of them at once (n holds that many at most), each batch in a thread
   and a transaction of its own (the calling thread writes the first). The requests of a round
   name each (name, key) once, so batches written at once touch no row in common; each writes
   its rows in (name, key) order, so they cannot deadlock with each other or with anyone who
   does the same. On 2 cores, with a pool of 3, a call of 20,000 jobs took 0.85 of its time
   one batch after the other (each statement 47 ms instead of 37: they share the table's pages
   and the cores).
   A thread that cannot be started leaves its batch to the calling thread. */
static void pgsched__store_batches(pgsched_store *s, void *conn, int tx,
                                   const pgsched_schedule_request *reqs, const size_t *at,
                                   size_t n, pgsched_schedule_info *outs,
                                   pgsched_result *results, pgsched__many_report *m)
{
    pgsched__lane lane[PGSCHED__LANES_MAX];
    pthread_t th[PGSCHED__LANES_MAX];
    int started[PGSCHED__LANES_MAX];
    size_t nb = (n + PGSCHED_SCHEDULE_BATCH_MAX - 1) / PGSCHED_SCHEDULE_BATCH_MAX, b;
    PGSCHED_ASSERT(nb <= PGSCHED__LANES_MAX); /* (the caller groups at most that many) */
    if (nb <= 1 || tx || conn) {
        pgsched__store_batch(s, conn, tx, reqs, at, n, outs, results, m);
        return;
    }
    for (b = 0; b < nb; b++) {
        size_t from = b * n / nb, to = (b + 1) * n / nb; /* even batches */
        lane[b].s = s;
        lane[b].reqs = reqs + from;
        lane[b].at = at + from;
        lane[b].n = to - from;
        lane[b].outs = outs + from;
        lane[b].results = results + from;
        memset(&lane[b].m, 0, sizeof lane[b].m);
        lane[b].m.first = m->first;
        started[b] = b > 0 && pthread_create(&th[b], NULL, pgsched__lane_main, &lane[b]) == 0;
    }
    for (b = 0; b < nb; b++) {
        if (started[b]) pthread_join(th[b], NULL);
        else pgsched__lane_main(&lane[b]);
    }
    for (b = 0; b < nb; b++) {
        m->failed += lane[b].m.failed;
        if (lane[b].m.first < m->first) {
            m->first = lane[b].m.first;
            m->e = lane[b].m.e;
        }
    }
}

/* Checks every request, then writes the valid ones in rounds (a request repeating an earlier
   (name, key) of the call goes in the round after it) of batches. */
static pgsched_result pgsched__store_schedule_many(pgsched_store *s, void *conn, int tx,
                                                   const pgsched_schedule_request *reqs,
                                                   size_t count, pgsched_schedule_info *outs,
                                                   pgsched_result *results,
                                                   pgsched__many_report *m, pgsched_error *err)
{
    pgsched_allocator a = pgsched__allocator(NULL);
    pgsched_schedule_request *norm = NULL, *breq = NULL;
    pgsched_schedule_info *bout = NULL;
    pgsched_result *bres = NULL;
    size_t *valid = NULL, *at = NULL, *slots = NULL, nvalid = 0, nslots = 1, i, k, group;
    unsigned *round = NULL, rounds = 0, rd;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (count && !reqs) return pgsched__null(err, "the schedule requests");
    if (count && !results) return pgsched__null(err, "the results array");
    if (count > (size_t)-1 / (4 * sizeof *norm))
        return pgsched__fail(err, PGSCHED_ERR_TOO_LARGE, "too many requests");
    while (nslots < 2 * count) nslots *= 2;
    norm = (pgsched_schedule_request *)pgsched__malloc(&a, count * sizeof *norm);
    valid = (size_t *)pgsched__malloc(&a, count * sizeof *valid);
    round = (unsigned *)pgsched__malloc(&a, count * sizeof *round);
    slots = (size_t *)pgsched__malloc(&a, nslots * sizeof *slots);
    /* the batches written at once, together */
    group = PGSCHED_SCHEDULE_BATCH_MAX * (tx || conn ? 1 : pgsched__store_lanes(s));
    k = count < group ? count : group;
    breq = (pgsched_schedule_request *)pgsched__malloc(&a, k * sizeof *breq);
    bout = (pgsched_schedule_info *)pgsched__malloc(&a, k * sizeof *bout);
    bres = (pgsched_result *)pgsched__malloc(&a, k * sizeof *bres);
    at = (size_t *)pgsched__malloc(&a, k * sizeof *at);
    if (!norm || !valid || !round || !slots || !breq || !bout || !bres || !at) {
        r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory scheduling %lu jobs",
                          (unsigned long)count);
        goto done;
    }
    for (i = 0; i < nslots; i++) slots[i] = (size_t)-1;
    for (i = 0; i < count; i++) {
        pgsched_error e;
        if (outs) memset(&outs[i], 0, sizeof outs[i]);
        memset(&e, 0, sizeof e);
        results[i] = pgsched__check_schedule_request(&reqs[i], &e);
        if (results[i] != PGSCHED_OK) {
            pgsched__many_note(m, i, results[i], &e);
            continue;
        }
        norm[i] = reqs[i];
        if (!norm[i].params) norm[i].params = "{}";
        if (norm[i].kind != PGSCHED_SCHEDULE_CRON) norm[i].cron = NULL;
        if (norm[i].kind != PGSCHED_SCHEDULE_INTERVAL) norm[i].every = 0;
        /* the round: one after the latest earlier request of the same (name, key) */
        round[i] = 0;
        for (k = (size_t)(pgsched__hash(reqs[i].name, reqs[i].key) & (nslots - 1));;
             k = (k + 1) & (nslots - 1)) {
            size_t j = slots[k];
            if (j == (size_t)-1) break;
            if (strcmp(reqs[j].name, reqs[i].name) == 0 && strcmp(reqs[j].key, reqs[i].key) == 0) {
                round[i] = round[j] + 1;
                break;
            }
        }
        slots[k] = i;
        if (round[i] + 1 > rounds) rounds = round[i] + 1;
        valid[nvalid++] = i;
    }
    for (rd = 0; rd < rounds; rd++) {
        size_t n = 0;
        for (i = 0; i <= nvalid; i++) {
            if (i < nvalid && round[valid[i]] == rd) {
                at[n] = valid[i];
                breq[n++] = norm[valid[i]];
            }
            if (n == 0 || (n < group && i < nvalid)) continue;
            memset(bout, 0, n * sizeof *bout);
            pgsched__store_batches(s, conn, tx, breq, at, n, bout, bres, m);
            for (k = 0; k < n; k++) {
                results[at[k]] = bres[k];
                if (outs && bres[k] == PGSCHED_OK) outs[at[k]] = bout[k];
            }
            n = 0;
        }
    }
    r = PGSCHED_OK;
done:
    pgsched__free(&a, norm);
    pgsched__free(&a, valid);
    pgsched__free(&a, round);
    pgsched__free(&a, slots);
    pgsched__free(&a, breq);
    pgsched__free(&a, bout);
    pgsched__free(&a, bres);
    pgsched__free(&a, at);
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_schedule_many(pgsched_store *s,
                                                       const pgsched_schedule_request *reqs,
                                                       size_t count,
                                                       pgsched_schedule_info *outs,
                                                       pgsched_result *results,
                                                       pgsched_error *err)
{
    pgsched__many_report m;
    pgsched_result r;
    memset(&m, 0, sizeof m);
    m.first = count;
    r = pgsched__store_schedule_many(s, NULL, 0, reqs, count, outs, results, &m, err);
    return r != PGSCHED_OK ? r : pgsched__many_result(&m, "request", count, err);
}

PGSCHED_DEF pgsched_result pgsched_store_schedule_many_tx(pgsched_store *s, void *conn,
                                                          const pgsched_schedule_request *reqs,
                                                          size_t count,
                                                          pgsched_schedule_info *outs,
                                                          pgsched_result *results,
                                                          pgsched_error *err)
{
    pgsched__many_report m;
    pgsched_result r;
    if (!conn) return pgsched__null(err, "the caller's connection");
    memset(&m, 0, sizeof m);
    m.first = count;
    r = pgsched__store_schedule_many(s, conn, 1, reqs, count, outs, results, &m, err);
    return r != PGSCHED_OK ? r : pgsched__many_result(&m, "request", count, err);
}

PGSCHED_DEF pgsched_result pgsched_store_claim(pgsched_store *s, const pgsched_claim_request *req,
                                               pgsched_job_list *out,
                                               pgsched_claim_info *info, pgsched_error *err)
{
    pgsched_claim_info local;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!req) return pgsched__null(err, "the claim request");
    if (!out) return pgsched__null(err, "the output list");
    if ((r = pgsched__validate_node_id(req->node_id, err)) != PGSCHED_OK) return r;
    if ((r = pgsched__check_names(req->names, req->name_count, err)) != PGSCHED_OK) return r;
    if (req->max < 1 || req->max > PGSCHED__CLAIM_MAX)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "a claim takes 1 to %d rows, not %d", PGSCHED__CLAIM_MAX, req->max);
    if (req->lead < 0 || req->lead > PGSCHED_SECOND)
        return pgsched__fail(err, PGSCHED_ERR_DURATION,
                             "a claim's lead is 0 to 1 s, not %lld us", (long long)req->lead);
    memset(&local, 0, sizeof local);
    if (req->name_count == 0) {
        r = s->methods->now(s, &local.now, err);
    } else {
        r = s->methods->claim(s, req, out, &local, err);
    }
    if (info) *info = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_heartbeat(pgsched_store *s, const char *node_id,
                                                   const pgsched_lease *leases, size_t count,
                                                   int renew, pgsched_lease_state *states,
                                                   pgsched_time *now, pgsched_error *err)
{
    size_t i;
    pgsched_time local = 0;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__validate_node_id(node_id, err)) != PGSCHED_OK) return r;
    if (count && !leases) return pgsched__null(err, "the lease array");
    if (count && !states) return pgsched__null(err, "the lease state array");
    for (i = 0; i < count; i++) {
        if ((r = pgsched__check_name_key(leases[i].name, leases[i].key, err)) != PGSCHED_OK)
            return r;
        states[i].lost = 0;
        states[i].cancel_requested = 0;
        states[i].busy = 0;
    }
    r = s->methods->heartbeat(s, node_id, leases, count, renew, states, &local, err);
    if (now) *now = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_finish(pgsched_store *s, const pgsched_finish_request *o,
                                                size_t count, pgsched_finish_info *results,
                                                pgsched_error *err)
{
    size_t i;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (count == 0) return pgsched__ok(err);
    if (!o) return pgsched__null(err, "the outcome array");
    if (!results) return pgsched__null(err, "the result array");
    for (i = 0; i < count; i++) {
        if ((r = pgsched__check_name_key(o[i].name, o[i].key, err)) != PGSCHED_OK) return r;
        if ((r = pgsched__validate_node_id(o[i].node_id, err)) != PGSCHED_OK) return r;
        if (o[i].outcome < PGSCHED_OUTCOME_SUCCESS || o[i].outcome > PGSCHED_OUTCOME_RELEASED)
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "outcome kind %d is unknown", (int)o[i].outcome);
        if (o[i].status < PGSCHED_STATUS_PENDING || o[i].status > PGSCHED_STATUS_CANCELLED ||
            o[i].status == PGSCHED_STATUS_RUNNING)
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "an outcome cannot leave a row %s",
                                 pgsched_status_string(o[i].status));
        if (o[i].attempt_rule < PGSCHED_ATTEMPT_RESET || o[i].attempt_rule > PGSCHED_ATTEMPT_UNCOUNT)
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "attempt rule %d is unknown", (int)o[i].attempt_rule);
        if ((r = pgsched__check_duration("the retry delay", o[i].retry_delay, err)) != PGSCHED_OK)
            return r;
        if (o[i].retry_delay > PGSCHED__DURATION_MAX)
            return pgsched__fail(err, PGSCHED_ERR_DURATION, "the retry delay exceeds 100 years");
        if (o[i].next_run < 0 ||
            (r = pgsched__check_time("the next run time", o[i].next_run, err)) != PGSCHED_OK)
            return r != PGSCHED_OK ? r
                                   : pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                                                   "the next run time is negative");
        if (o[i].error && pgsched__utf8_check(o[i].error, strlen(o[i].error)) != (size_t)-1)
            return pgsched__fail(err, PGSCHED_ERR_UTF8, "an error text is not valid UTF-8");
        if (o[i].cancelled_status != PGSCHED_STATUS_NONE &&
            (o[i].cancelled_status < PGSCHED_STATUS_PENDING || o[i].cancelled_status > PGSCHED_STATUS_CANCELLED ||
             o[i].cancelled_status == PGSCHED_STATUS_RUNNING))
            return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                                 "a cancel cannot leave a row %s",
                                 pgsched_status_string(o[i].cancelled_status));
        if (o[i].cancelled_next_run < 0 ||
            (r = pgsched__check_time("the next run time after a cancel",
                                     o[i].cancelled_next_run, err)) != PGSCHED_OK)
            return r != PGSCHED_OK ? r
                                   : pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                                                   "the next run time after a cancel is negative");
        memset(&results[i], 0, sizeof results[i]);
    }
    return s->methods->finish(s, o, count, results, err);
}

PGSCHED_DEF pgsched_result pgsched_store_take_back(pgsched_store *s, const char *node_id,
                                                   pgsched_duration stall_timeout, int max,
                                                   pgsched_job_list *out,
                                                   pgsched_take_back_info *info,
                                                   pgsched_error *err)
{
    pgsched_take_back_info ignored;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__validate_node_id(node_id, err)) != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output list");
    if (stall_timeout <= 0)
        return pgsched__fail(err, PGSCHED_ERR_DURATION, "the stall timeout must be positive");
    if (max < 1 || max > PGSCHED__CLAIM_MAX)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "a take-back takes 1 to %d rows, not %d", PGSCHED__CLAIM_MAX, max);
    if (!info) info = &ignored;
    memset(info, 0, sizeof *info);
    return s->methods->take_back(s, node_id, stall_timeout, max, out, info, err);
}

/* cancel, trigger and remove share their checks and their optional output. */
typedef pgsched_result (*pgsched__change_fn)(pgsched_store *, const char *, const char *,
                                             const char *, pgsched_change_info *,
                                             pgsched_error *);

static pgsched_result pgsched__store_change(pgsched_store *s, int which, const char *name,
                                            const char *key, const char *node_id,
                                            pgsched_change_info *out, pgsched_error *err)
{
    pgsched_change_info local;
    pgsched__change_fn fn;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__check_name_key(name, key, err)) != PGSCHED_OK) return r;
    if ((r = pgsched__check_opt_node(node_id, err)) != PGSCHED_OK) return r;
    fn = which == 0 ? s->methods->cancel : which == 1 ? s->methods->trigger : s->methods->remove;
    memset(&local, 0, sizeof local);
    r = fn(s, name, key, node_id, &local, err);
    if (out) *out = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_cancel(pgsched_store *s, const char *name,
                                                const char *key, const char *node_id,
                                                pgsched_change_info *out, pgsched_error *err)
{
    return pgsched__store_change(s, 0, name, key, node_id, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_trigger(pgsched_store *s, const char *name,
                                                 const char *key, const char *node_id,
                                                 pgsched_change_info *out, pgsched_error *err)
{
    return pgsched__store_change(s, 1, name, key, node_id, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_remove(pgsched_store *s, const char *name,
                                                const char *key, const char *node_id,
                                                pgsched_change_info *out, pgsched_error *err)
{
    return pgsched__store_change(s, 2, name, key, node_id, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_get(pgsched_store *s, const char *name, const char *key,
                                             pgsched_job_list *out, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__check_name_key(name, key, err)) != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output list");
    return s->methods->get(s, name, key, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_list(pgsched_store *s, const pgsched_list_filter *filter,
                                              pgsched_job_list *out, pgsched_error *err)
{
    pgsched_list_filter f;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output list");
    memset(&f, 0, sizeof f);
    if (filter) f = *filter;
    if (f.name && (r = pgsched_validate_name(f.name, err)) != PGSCHED_OK) return r;
    if (f.status < PGSCHED_STATUS_NONE || f.status > PGSCHED_STATUS_CANCELLED)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT, "status %d is unknown",
                             (int)f.status);
    if ((f.after_name == NULL) != (f.after_key == NULL))
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "paging needs both after_name and after_key, or neither");
    if (f.after_name && (r = pgsched__check_name_key(f.after_name, f.after_key, err)) != PGSCHED_OK)
        return r;
    if (f.limit == 0) f.limit = 1000;
    return s->methods->list(s, &f, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_history(pgsched_store *s, const char *name,
                                                 const char *key, size_t limit,
                                                 pgsched_run_list *out, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output list");
    if (name && (r = pgsched_validate_name(name, err)) != PGSCHED_OK) return r;
    if (key && (r = pgsched_validate_key(key, err)) != PGSCHED_OK) return r;
    if (key && !name)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "a history filter by key needs the name too");
    return s->methods->history(s, name, key, limit ? limit : 100, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_next_due(pgsched_store *s, const char *const *names,
                                                  size_t count, pgsched_time *next,
                                                  pgsched_time *now, pgsched_error *err)
{
    pgsched_time n = 0, t = 0;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!next) return pgsched__null(err, "the output time");
    if ((r = pgsched__check_names(names, count, err)) != PGSCHED_OK) return r;
    if (count == 0) r = s->methods->now(s, &t, err);
    else r = s->methods->next_due(s, names, count, &n, &t, err);
    *next = n;
    if (now) *now = t;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_node_register(pgsched_store *s,
                                                       const pgsched_node_record *node,
                                                       pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!node) return pgsched__null(err, "the node record");
    if ((r = pgsched__validate_node_id(node->id, err)) != PGSCHED_OK) return r;
    if (node->host && pgsched__utf8_check(node->host, strlen(node->host)) != (size_t)-1)
        return pgsched__fail(err, PGSCHED_ERR_UTF8, "the host name is not valid UTF-8");
    if ((r = pgsched__check_names(node->names, node->name_count, err)) != PGSCHED_OK) return r;
    return s->methods->node_register(s, node, err);
}

PGSCHED_DEF pgsched_result pgsched_store_node_unregister(pgsched_store *s, const char *node_id,
                                                         pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if ((r = pgsched__validate_node_id(node_id, err)) != PGSCHED_OK) return r;
    return s->methods->node_unregister(s, node_id, err);
}

PGSCHED_DEF pgsched_result pgsched_store_cleanup(pgsched_store *s,
                                                 const pgsched_cleanup_request *req,
                                                 pgsched_cleanup_info *out,
                                                 pgsched_error *err)
{
    pgsched_cleanup_request q;
    pgsched_cleanup_info local;
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!req) return pgsched__null(err, "the cleanup request");
    if ((r = pgsched__validate_node_id(req->node_id, err)) != PGSCHED_OK) return r;
    if ((r = pgsched__check_duration("finished_retention", req->finished_retention, err)) ||
        (r = pgsched__check_duration("history_retention", req->history_retention, err)) ||
        (r = pgsched__check_duration("orphan_timeout", req->orphan_timeout, err)))
        return r;
    q = *req;
    if (q.limit == 0) q.limit = 10000;
    memset(&local, 0, sizeof local);
    r = s->methods->cleanup(s, &q, &local, err);
    if (out) *out = local;
    return r;
}

PGSCHED_DEF pgsched_result pgsched_store_listen_open(pgsched_store *s, pgsched_listener **out,
                                                     pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!out) return pgsched__null(err, "the output listener");
    *out = NULL;
    if (!pgsched__store_listens(s))
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED, "the %s store has no notifications",
                             s->methods->name ? s->methods->name : "(unnamed)");
    return s->methods->listen_open(s, out, err);
}

PGSCHED_DEF pgsched_result pgsched_store_listen_wait(pgsched_store *s, pgsched_listener *l,
                                                     pgsched_duration timeout,
                                                     pgsched_event *events, size_t cap,
                                                     size_t *count, pgsched_error *err)
{
    pgsched_result r = pgsched__check_store(s, err);
    if (r != PGSCHED_OK) return r;
    if (!l) return pgsched__null(err, "the listener");
    if (!events || !cap) return pgsched__null(err, "the event array");
    if (!count) return pgsched__null(err, "the output count");
    *count = 0;
    if (timeout < 0) timeout = 0;
    if (!pgsched__store_listens(s))
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED, "the %s store has no notifications",
                             s->methods->name ? s->methods->name : "(unnamed)");
    return s->methods->listen_wait(s, l, timeout, events, cap, count, err);
}

PGSCHED_DEF void pgsched_store_listen_wake(pgsched_store *s, pgsched_listener *l)
{
    if (l && pgsched__store_listens(s)) s->methods->listen_wake(s, l);
}

PGSCHED_DEF void pgsched_store_listen_close(pgsched_store *s, pgsched_listener *l)
{
    if (l && pgsched__store_listens(s)) s->methods->listen_close(s, l);
}

/* Shared sentences for the errors a store reports, so both stores say the same. */
static pgsched_result pgsched__err_not_found(pgsched_error *err, const char *name,
                                             const char *key)
{
    return pgsched__fail(err, PGSCHED_ERR_NOT_FOUND, "job %s/%s does not exist", name, key);
}

static pgsched_result pgsched__err_running(pgsched_error *err, const char *name, const char *key,
                                           const char *what)
{
    return pgsched__fail(err, PGSCHED_ERR_RUNNING, "job %s/%s is running; %s", name, key, what);
}

static pgsched_result pgsched__err_not_pending(pgsched_error *err, const char *name,
                                               const char *key, pgsched_status st)
{
    return pgsched__fail(err, PGSCHED_ERR_NOT_PENDING,
                         "job %s/%s is %s; only a pending job can be triggered", name, key,
                         pgsched_status_string(st));
}

/* ---- [pgsched: stores] implementation: threads helpers -------------------------------------- */

/* Every condition variable of the library is made here, so all of them wait on the monotonic
   clock: a wall-clock step (NTP, an operator) neither wakes every sleeper nor makes one sleep
   for an hour, and pgsched__cond_wait_until's monotonic deadlines mean what they say (on a
   default, realtime condition variable they lie decades in the past and the waiter spins). */
static int pgsched__cond_init(pthread_cond_t *cv)
{
#ifdef PGSCHED_NO_MONOTONIC_COND
    return pthread_cond_init(cv, NULL);
#else
    pthread_condattr_t attr;
    int rc;
    if (pthread_condattr_init(&attr) != 0) return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
#endif
}

/* Waits until signalled or the monotonic deadline (microseconds) passes. Without monotonic
   condition variables the deadline becomes a realtime one when the wait starts: a wall-clock
   step during the wait then shortens or lengthens it, and every caller re-checks its own
   monotonic deadline after waking. */
static void pgsched__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, pgsched_time deadline)
{
    struct timespec ts;
    if (deadline == PGSCHED_NEVER) {
        pthread_cond_wait(cv, mu);
        return;
    }
#ifdef PGSCHED_NO_MONOTONIC_COND
    {
        pgsched_time left = deadline - pgsched__monotonic();
        if (left < 0) left = 0;
        if (left > PGSCHED_DAY) left = PGSCHED_DAY;
        deadline = pgsched_now() + left;
    }
#endif
    ts.tv_sec = (time_t)(deadline / 1000000);
    ts.tv_nsec = (long)(deadline % 1000000) * 1000;
    pthread_cond_timedwait(cv, mu, &ts);
}

/* A recursive lock (PTHREAD_MUTEX_RECURSIVE needs POSIX.1-2008 or XSI, which a build at the
   POSIX.1-1995 level does not declare): the owner may take it again. Comparing with
   pthread_self() is sound here: the owner is alive while it holds the lock. */
typedef struct pgsched__rlock {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t owner;
    int depth;
} pgsched__rlock;

static void pgsched__rlock_init(pgsched__rlock *l)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL); /* waited on without a deadline: any clock will do */
    l->depth = 0;
}

static void pgsched__rlock_lock(pgsched__rlock *l)
{
    pthread_t self = pthread_self();
    pthread_mutex_lock(&l->mu);
    if (l->depth > 0 && pthread_equal(l->owner, self)) {
        l->depth++;
    } else {
        while (l->depth > 0) pthread_cond_wait(&l->cv, &l->mu);
        l->owner = self;
        l->depth = 1;
    }
    pthread_mutex_unlock(&l->mu);
}

static void pgsched__rlock_unlock(pgsched__rlock *l)
{
    pthread_mutex_lock(&l->mu);
    if (--l->depth == 0) pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void pgsched__rlock_destroy(pgsched__rlock *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

/* deadline = monotonic now + d, saturating at PGSCHED_NEVER. */
static pgsched_time pgsched__deadline(pgsched_duration d)
{
    pgsched_time now = pgsched__monotonic();
    if (d >= PGSCHED_NEVER - now) return PGSCHED_NEVER;
    return now + d;
}

static uint64_t pgsched__hash(const char *a, const char *b)
{
    /* FNV-1a over a, a NUL, b: (name, key) pairs that differ anywhere hash apart. */
    uint64_t h = 14695981039346656037ULL;
    const unsigned char *p;
    for (p = (const unsigned char *)a; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0) * 1099511628211ULL;
    if (b)
        for (p = (const unsigned char *)b; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    return h;
}

/* ---- [pgsched: stores] implementation: the in-memory store -------------------------------- */

typedef struct pgsched__mrow pgsched__mrow;

/* Per job type: a min-heap of its pending rows by (next_run, version), so a claim or a
   next-due look-up touches only the rows of the types asked for. */
typedef struct pgsched__mtype {
    char *name;
    pgsched__mrow **heap;
    size_t heap_n, heap_cap; /* heap_cap >= rows, reserved when a row is created */
    size_t rows;
    int live; /* scratch for orphan clean-up */
    struct pgsched__mtype *next;
} pgsched__mtype;

struct pgsched__mrow {
    char *name, *key;
    pgsched__mtype *type;
    pgsched_status status;
    pgsched_schedule_kind kind;
    char *cron;
    pgsched_duration every;
    char *params;
    int max_retries, attempt;
    pgsched_time next_run;
    char owner[PGSCHED_NODE_ID_MAX + 1];
    /* the node that ran the current attempt: its history row names it, also when another
       node took the row back (and became its owner) and records the stall */
    char ran_by[PGSCHED_NODE_ID_MAX + 1];
    int64_t lease, last_lease; /* last_lease: the lease whose outcome was recorded last */
    pgsched_time heartbeat_at, started_at, finished_at;
    int cancel_requested, remove_requested;
    /* a re-schedule waiting for the current run to end */
    int has_change;
    pgsched_schedule_kind ch_kind;
    char *ch_cron;
    pgsched_duration ch_every;
    char *ch_params;
    int ch_max_retries;
    pgsched_time ch_next_run;
    char *last_error;
    int64_t runs, failures, version;
    pgsched_time created_at, updated_at;
    size_t heap_pos; /* index in type->heap, or (size_t)-1 when not pending */
    pgsched__mrow *hnext;
    pgsched__mrow *rprev, *rnext; /* the list of running rows */
};

typedef struct pgsched__mhist {
    pgsched_run_record rec; /* strings point into `block` */
    char *block;
} pgsched__mhist;

typedef struct pgsched__mnode {
    char id[PGSCHED_NODE_ID_MAX + 1];
    char *host;
    int64_t pid;
    char **names;
    size_t name_count;
    pgsched_time started_at, last_seen;
} pgsched__mnode;

typedef struct pgsched__mlistener {
    pgsched_event *q;
    size_t head, count, cap;
    int overflow, woken;
    pthread_cond_t cv;
    struct pgsched__mlistener *next;
} pgsched__mlistener;

#define PGSCHED__MTYPE_BUCKETS 64
#define PGSCHED__MLISTEN_START 64 /* events a listener's queue holds at first */
/* and at most: room for the events of the largest call (a schedule batch of
   PGSCHED_SCHEDULE_BATCH_MAX rows is written at once, under the store's lock, so a listener
   cannot read in between) and then some */
#define PGSCHED__MLISTEN_QUEUE 8192

typedef struct pgsched__mem {
    pgsched_store base;
    pgsched_allocator alloc;
    pgsched_time (*clock)(void *);
    void *clock_user;
    pthread_mutex_t mu;
    pgsched__mrow **buckets;
    size_t nbuckets, nrows;
    pgsched__mtype *types[PGSCHED__MTYPE_BUCKETS];
    pgsched__mrow *running;
    int64_t seq;
    pgsched__mhist *hist;
    size_t hist_n, hist_cap;
    int64_t hist_id;
    pgsched__mnode *nodes;
    size_t node_n, node_cap;
    pgsched__mlistener *listeners;
    int in_cleanup;
} pgsched__mem;

static pgsched_time pgsched__mem_now(pgsched__mem *m)
{
    return m->clock ? m->clock(m->clock_user) : pgsched_now();
}

/* ---- rows ---- */

static pgsched__mrow *pgsched__mem_find(pgsched__mem *m, const char *name, const char *key)
{
    pgsched__mrow *r = m->buckets[pgsched__hash(name, key) & (m->nbuckets - 1)];
    for (; r; r = r->hnext)
        if (strcmp(r->name, name) == 0 && strcmp(r->key, key) == 0) return r;
    return NULL;
}

static pgsched__mtype *pgsched__mem_type(pgsched__mem *m, const char *name, int create)
{
    size_t b = (size_t)(pgsched__hash(name, NULL) % PGSCHED__MTYPE_BUCKETS);
    pgsched__mtype *t;
    for (t = m->types[b]; t; t = t->next)
        if (strcmp(t->name, name) == 0) return t;
    if (!create) return NULL;
    t = (pgsched__mtype *)pgsched__calloc(&m->alloc, sizeof *t);
    if (!t) return NULL;
    t->name = pgsched__strdup(&m->alloc, name);
    if (!t->name) {
        pgsched__free(&m->alloc, t);
        return NULL;
    }
    t->next = m->types[b];
    m->types[b] = t;
    return t;
}

static int pgsched__heap_less(const pgsched__mrow *a, const pgsched__mrow *b)
{
    if (a->next_run != b->next_run) return a->next_run < b->next_run;
    return a->version < b->version;
}

static void pgsched__heap_set(pgsched__mtype *t, size_t i, pgsched__mrow *r)
{
    t->heap[i] = r;
    r->heap_pos = i;
}

static void pgsched__heap_up(pgsched__mtype *t, size_t i)
{
    pgsched__mrow *r = t->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pgsched__heap_less(r, t->heap[p])) break;
        pgsched__heap_set(t, i, t->heap[p]);
        i = p;
    }
    pgsched__heap_set(t, i, r);
}

static void pgsched__heap_down(pgsched__mtype *t, size_t i)
{
    pgsched__mrow *r = t->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->heap_n) break;
        if (c + 1 < t->heap_n && pgsched__heap_less(t->heap[c + 1], t->heap[c])) c++;
        if (!pgsched__heap_less(t->heap[c], r)) break;
        pgsched__heap_set(t, i, t->heap[c]);
        i = c;
    }
    pgsched__heap_set(t, i, r);
}

static void pgsched__heap_remove(pgsched__mrow *r)
{
    pgsched__mtype *t = r->type;
    size_t i = r->heap_pos;
    pgsched__mrow *last;
    if (i == (size_t)-1) return;
    r->heap_pos = (size_t)-1;
    last = t->heap[--t->heap_n];
    if (i == t->heap_n) return;
    pgsched__heap_set(t, i, last);
    pgsched__heap_up(t, i);
    pgsched__heap_down(t, last->heap_pos);
}

/* Reserves a heap slot for one more row of the type, so that moving a row to pending later
   can never fail half-way through a change. */
static int pgsched__heap_reserve(pgsched__mem *m, pgsched__mtype *t)
{
    if (t->rows + 1 > t->heap_cap) {
        size_t ncap = t->heap_cap ? t->heap_cap * 2 : 16;
        pgsched__mrow **nh =
            (pgsched__mrow **)pgsched__realloc(&m->alloc, t->heap, ncap * sizeof *nh);
        if (!nh) return 0;
        t->heap = nh;
        t->heap_cap = ncap;
    }
    t->rows++;
    return 1;
}

/* Puts a pending row in (or back into) its heap after next_run or version changed. */
static void pgsched__heap_update(pgsched__mrow *r)
{
    pgsched__mtype *t = r->type;
    if (r->heap_pos == (size_t)-1) {
        PGSCHED_ASSERT(t->heap_n < t->heap_cap);
        pgsched__heap_set(t, t->heap_n++, r);
    }
    pgsched__heap_up(t, r->heap_pos);
    pgsched__heap_down(t, r->heap_pos);
}

static void pgsched__running_unlink(pgsched__mem *m, pgsched__mrow *r)
{
    if (r->rprev) r->rprev->rnext = r->rnext;
    else if (m->running == r) m->running = r->rnext;
    if (r->rnext) r->rnext->rprev = r->rprev;
    r->rprev = r->rnext = NULL;
}

static void pgsched__running_link(pgsched__mem *m, pgsched__mrow *r)
{
    r->rprev = NULL;
    r->rnext = m->running;
    if (m->running) m->running->rprev = r;
    m->running = r;
}

/* Moves a row to `st`, keeping the heap and the running list in step. */
static void pgsched__mem_set_status(pgsched__mem *m, pgsched__mrow *r, pgsched_status st)
{
    if (st == PGSCHED_STATUS_PENDING) pgsched__heap_update(r);
    else pgsched__heap_remove(r);
    if (r->status == PGSCHED_STATUS_RUNNING && st != PGSCHED_STATUS_RUNNING) pgsched__running_unlink(m, r);
    if (r->status != PGSCHED_STATUS_RUNNING && st == PGSCHED_STATUS_RUNNING) pgsched__running_link(m, r);
    r->status = st;
}

static void pgsched__mem_row_free(pgsched__mem *m, pgsched__mrow *r)
{
    pgsched__free(&m->alloc, r->name);
    pgsched__free(&m->alloc, r->key);
    pgsched__free(&m->alloc, r->cron);
    pgsched__free(&m->alloc, r->params);
    pgsched__free(&m->alloc, r->ch_cron);
    pgsched__free(&m->alloc, r->ch_params);
    pgsched__free(&m->alloc, r->last_error);
    pgsched__free(&m->alloc, r);
}

static void pgsched__mem_rehash(pgsched__mem *m, size_t nb);

/* The store gives memory back as rows go (SPEC §11): a type's heap shrinks with its rows, a
   type without rows is freed, and the row table shrinks when it is mostly empty. */
static void pgsched__mem_type_shrink(pgsched__mem *m, pgsched__mtype *t)
{
    if (t->rows == 0) {
        size_t b = (size_t)(pgsched__hash(t->name, NULL) % PGSCHED__MTYPE_BUCKETS);
        pgsched__mtype **pp = &m->types[b];
        while (*pp && *pp != t) pp = &(*pp)->next;
        if (*pp) *pp = t->next;
        pgsched__free(&m->alloc, t->heap);
        pgsched__free(&m->alloc, t->name);
        pgsched__free(&m->alloc, t);
    } else if (t->heap_cap > 64 && t->rows < t->heap_cap / 4) {
        size_t ncap = t->heap_cap / 2;
        pgsched__mrow **nh =
            (pgsched__mrow **)pgsched__realloc(&m->alloc, t->heap, ncap * sizeof *nh);
        if (nh) {
            t->heap = nh;
            t->heap_cap = ncap;
        }
    }
}

static void pgsched__mem_delete(pgsched__mem *m, pgsched__mrow *r)
{
    pgsched__mrow **pp = &m->buckets[pgsched__hash(r->name, r->key) & (m->nbuckets - 1)];
    pgsched__mtype *t = r->type;
    while (*pp && *pp != r) pp = &(*pp)->hnext;
    if (*pp) *pp = r->hnext;
    pgsched__heap_remove(r);
    if (r->status == PGSCHED_STATUS_RUNNING) pgsched__running_unlink(m, r);
    t->rows--;
    m->nrows--;
    pgsched__mem_row_free(m, r);
    pgsched__mem_type_shrink(m, t);
    if (!m->in_cleanup && m->nbuckets > 64 && m->nrows < m->nbuckets / 4)
        pgsched__mem_rehash(m, m->nbuckets / 2);
}

static void pgsched__mem_rehash(pgsched__mem *m, size_t nb)
{
    size_t i;
    pgsched__mrow **b = (pgsched__mrow **)pgsched__calloc(&m->alloc, nb * sizeof *b);
    if (!b) return; /* keep the old table: longer chains, still correct */
    for (i = 0; i < m->nbuckets; i++) {
        pgsched__mrow *r = m->buckets[i];
        while (r) {
            pgsched__mrow *next = r->hnext;
            size_t h = (size_t)(pgsched__hash(r->name, r->key) & (nb - 1));
            r->hnext = b[h];
            b[h] = r;
            r = next;
        }
    }
    pgsched__free(&m->alloc, m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

/* Replaces *slot by a copy of s (NULL allowed). 0 on allocation failure, slot unchanged. */
static int pgsched__mem_setstr(pgsched__mem *m, char **slot, const char *s)
{
    char *c = NULL;
    if (s) {
        c = pgsched__strdup(&m->alloc, s);
        if (!c) return 0;
    }
    pgsched__free(&m->alloc, *slot);
    *slot = c;
    return 1;
}

static void pgsched__mem_to_job(const pgsched__mrow *r, pgsched_job *j)
{
    memset(j, 0, sizeof *j);
    j->name = r->name;
    j->key = r->key;
    j->status = r->status;
    j->kind = r->kind;
    j->cron = r->cron;
    j->every = r->every;
    j->params = r->params;
    j->max_retries = r->max_retries;
    j->attempt = r->attempt;
    j->next_run = r->next_run;
    j->owner = r->status == PGSCHED_STATUS_RUNNING ? r->owner : NULL;
    j->lease = r->lease;
    j->heartbeat_at = r->heartbeat_at;
    j->started_at = r->started_at;
    j->finished_at = r->finished_at;
    j->cancel_requested = r->cancel_requested;
    j->remove_requested = r->remove_requested;
    j->change_pending = r->has_change;
    j->last_error = r->last_error;
    j->runs = r->runs;
    j->failures = r->failures;
    j->version = r->version;
    j->created_at = r->created_at;
    j->updated_at = r->updated_at;
}

/* ---- events ---- */

static void pgsched__mem_push_event(pgsched__mem *m, const pgsched_event *ev)
{
    pgsched__mlistener *l;
    for (l = m->listeners; l; l = l->next) {
        if (l->count == l->cap && l->cap < PGSCHED__MLISTEN_QUEUE) {
            /* queues start small and grow while their listener lags */
            size_t ncap = l->cap * 2, i;
            pgsched_event *nq = (pgsched_event *)pgsched__malloc(&m->alloc, ncap * sizeof *nq);
            if (nq) {
                for (i = 0; i < l->count; i++) nq[i] = l->q[(l->head + i) % l->cap];
                pgsched__free(&m->alloc, l->q);
                l->q = nq;
                l->cap = ncap;
                l->head = 0;
            }
        }
        if (l->count == l->cap) {
            /* A listener that does not keep up loses events; it is told to resync. */
            l->overflow = 1;
            l->head = (l->head + 1) % l->cap;
            l->count--;
        }
        l->q[(l->head + l->count) % l->cap] = *ev;
        l->count++;
        pthread_cond_signal(&l->cv);
    }
}

static void pgsched__mem_emit(pgsched__mem *m, pgsched_event_kind kind, const pgsched__mrow *r,
                              pgsched_status old_status, pgsched_status new_status,
                              const char *node_id)
{
    pgsched_event ev;
    if (!m->listeners) return;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.old_status = old_status;
    ev.new_status = new_status;
    /* a claim carries the due time of the run it starts, as the PostgreSQL store's does */
    ev.next_run = new_status == PGSCHED_STATUS_PENDING ||
                          (old_status == PGSCHED_STATUS_PENDING && new_status == PGSCHED_STATUS_RUNNING)
                      ? r->next_run
                      : 0;
    ev.version = r->version;
    pgsched__copy_text(ev.name, sizeof ev.name, r->name);
    pgsched__copy_text(ev.key, sizeof ev.key, r->key);
    pgsched__copy_text(ev.node, sizeof ev.node, node_id);
    if (kind == PGSCHED_EVENT_CANCEL) pgsched__copy_text(ev.owner, sizeof ev.owner, r->owner);
    pgsched__mem_push_event(m, &ev);
}

static pgsched_result pgsched__mem_oom(pgsched__mem *m, pgsched_error *err)
{
    pthread_mutex_unlock(&m->mu);
    return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in the in-memory store");
}

/* ---- methods ---- */

static pgsched_result pgsched__mem_setup(pgsched_store *s, pgsched_error *err)
{
    PGSCHED__UNUSED(s);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_now_m(pgsched_store *s, pgsched_time *now, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pthread_mutex_lock(&m->mu);
    *now = pgsched__mem_now(m);
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_nomem(pgsched_error *err)
{
    return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in the in-memory store");
}

/* Schedule, in parts; each runs with m->mu held. */

/* A running row keeps its run: the request is stored as the change its end applies. */
static pgsched_result pgsched__mem_defer_change(pgsched__mem *m, pgsched__mrow *r,
                                                const pgsched_schedule_request *q,
                                                pgsched_time next, pgsched_time now,
                                                pgsched_schedule_info *out, pgsched_error *err)
{
    char *cron = NULL, *params = NULL;
    if (!q->apply_after_run)
        return pgsched__err_running(err, q->name, q->key,
                                    "re-scheduling is refused unless it applies after the run");
    if (!pgsched__mem_setstr(m, &cron, q->cron) || !pgsched__mem_setstr(m, &params, q->params)) {
        pgsched__free(&m->alloc, cron);
        return pgsched__mem_nomem(err);
    }
    pgsched__free(&m->alloc, r->ch_cron);
    pgsched__free(&m->alloc, r->ch_params);
    r->has_change = 1;
    r->ch_kind = q->kind;
    r->ch_cron = cron;
    r->ch_every = q->every;
    r->ch_params = params;
    r->ch_max_retries = q->max_retries;
    r->ch_next_run = next;
    r->remove_requested = 0; /* the re-schedule wins over an earlier remove */
    r->version = ++m->seq;
    r->updated_at = now;
    out->deferred = 1;
    out->old_status = PGSCHED_STATUS_RUNNING;
    out->next_run = r->next_run;
    out->version = r->version;
    pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_STATUS_RUNNING, PGSCHED_STATUS_RUNNING,
                      q->node_id);
    return pgsched__ok(err);
}

/* A new pending row, due at `next`, entered in the table and its type's heap. */
static pgsched_result pgsched__mem_insert(pgsched__mem *m, const pgsched_schedule_request *q,
                                          pgsched_time next, pgsched_time now,
                                          pgsched__mrow **row, pgsched_error *err)
{
    pgsched__mtype *t = pgsched__mem_type(m, q->name, 1);
    pgsched__mrow *r;
    size_t b;
    if (!t) return pgsched__mem_nomem(err);
    r = (pgsched__mrow *)pgsched__calloc(&m->alloc, sizeof *r);
    if (!r) return pgsched__mem_nomem(err);
    r->name = pgsched__strdup(&m->alloc, q->name);
    r->key = pgsched__strdup(&m->alloc, q->key);
    r->cron = q->cron ? pgsched__strdup(&m->alloc, q->cron) : NULL;
    r->params = pgsched__strdup(&m->alloc, q->params);
    if (!r->name || !r->key || !r->params || (q->cron && !r->cron)) {
        pgsched__mem_row_free(m, r);
        return pgsched__mem_nomem(err);
    }
    r->type = t;
    r->heap_pos = (size_t)-1;
    r->status = PGSCHED_STATUS_NONE;
    r->kind = q->kind;
    r->every = q->every;
    r->max_retries = q->max_retries;
    r->next_run = next;
    r->created_at = now;
    r->version = ++m->seq;
    if (!pgsched__heap_reserve(m, t)) {
        pgsched__mem_row_free(m, r);
        return pgsched__mem_nomem(err);
    }
    pgsched__mem_set_status(m, r, PGSCHED_STATUS_PENDING);
    r->updated_at = now;
    b = (size_t)(pgsched__hash(r->name, r->key) & (m->nbuckets - 1));
    r->hnext = m->buckets[b];
    m->buckets[b] = r;
    if (++m->nrows > m->nbuckets) pgsched__mem_rehash(m, m->nbuckets * 2);
    *row = r;
    return PGSCHED_OK;
}

/* A row that is not running takes the request whole, with a fresh budget; a pending one keeps
   the earlier of its due time and `next`. */
static pgsched_result pgsched__mem_replace(pgsched__mem *m, pgsched__mrow *r,
                                           const pgsched_schedule_request *q, pgsched_time next,
                                           pgsched_time now, pgsched_error *err)
{
    char *cron = NULL, *params = NULL;
    if (!pgsched__mem_setstr(m, &cron, q->cron) || !pgsched__mem_setstr(m, &params, q->params)) {
        pgsched__free(&m->alloc, cron);
        return pgsched__mem_nomem(err);
    }
    if (r->status == PGSCHED_STATUS_PENDING && r->next_run < next) next = r->next_run;
    pgsched__free(&m->alloc, r->cron);
    pgsched__free(&m->alloc, r->params);
    r->cron = cron;
    r->params = params;
    r->kind = q->kind;
    r->every = q->every;
    r->max_retries = q->max_retries;
    r->attempt = 0;
    r->next_run = next;
    r->cancel_requested = r->remove_requested = 0;
    r->version = ++m->seq;
    pgsched__mem_set_status(m, r, PGSCHED_STATUS_PENDING);
    r->updated_at = now;
    return PGSCHED_OK;
}

/* One schedule, with m->mu held: the due time in the store's clock (0: now + delay), then a
   deferred change, a new row or a replaced one. */
static pgsched_result pgsched__mem_schedule_locked(pgsched__mem *m,
                                                   const pgsched_schedule_request *q,
                                                   pgsched_schedule_info *out,
                                                   pgsched_error *err)
{
    pgsched_time now = pgsched__mem_now(m);
    pgsched_time next = q->next_run ? q->next_run : now + q->delay;
    pgsched__mrow *r = pgsched__mem_find(m, q->name, q->key);
    pgsched_status old = r ? r->status : PGSCHED_STATUS_NONE;
    int created = r == NULL;
    pgsched_result rc;
    if (old == PGSCHED_STATUS_RUNNING)
        return pgsched__mem_defer_change(m, r, q, next, now, out, err);
    rc = r ? pgsched__mem_replace(m, r, q, next, now, err)
           : pgsched__mem_insert(m, q, next, now, &r, err);
    if (rc != PGSCHED_OK) return rc;
    out->created = created;
    out->old_status = old;
    out->next_run = r->next_run;
    out->version = r->version;
    pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, out->old_status, PGSCHED_STATUS_PENDING,
                      q->node_id);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_schedule(pgsched_store *s, const pgsched_schedule_request *q,
                                            void *external_conn, pgsched_schedule_info *out,
                                            pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_result r;
    if (external_conn)
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                             "the in-memory store cannot join a PostgreSQL transaction");
    pthread_mutex_lock(&m->mu);
    r = pgsched__mem_schedule_locked(m, q, out, err);
    pthread_mutex_unlock(&m->mu);
    return r;
}

/* A batch under one hold of the lock: no other call sees half of it. */
static pgsched_result pgsched__mem_schedule_many(pgsched_store *s,
                                                 const pgsched_schedule_request *reqs,
                                                 size_t count, pgsched_schedule_info *outs,
                                                 pgsched_result *results, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    size_t i;
    pthread_mutex_lock(&m->mu);
    for (i = 0; i < count; i++)
        results[i] = pgsched__mem_schedule_locked(m, &reqs[i], &outs[i], NULL);
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_claim(pgsched_store *s, const pgsched_claim_request *q,
                                         pgsched_job_list *out, pgsched_claim_info *info,
                                         pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mtype *local[16];
    pgsched__mtype **types = local;
    size_t nt = 0, i;
    int claimed = 0;
    pgsched_time now;
    pgsched_result r = PGSCHED_OK;

    if (q->name_count > 16) {
        types = (pgsched__mtype **)pgsched__malloc(&m->alloc, q->name_count * sizeof *types);
        if (!types) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in a claim");
    }
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    for (i = 0; i < q->name_count; i++) {
        pgsched__mtype *t = pgsched__mem_type(m, q->names[i], 0);
        size_t k;
        if (!t) continue;
        for (k = 0; k < nt && types[k] != t; k++) {}
        if (k == nt) types[nt++] = t;
    }
    while (claimed < q->max) {
        pgsched__mtype *best = NULL;
        pgsched__mrow *row;
        pgsched_job job;
        for (i = 0; i < nt; i++)
            if (types[i]->heap_n && types[i]->heap[0]->next_run <= now + q->lead &&
                (!best || pgsched__heap_less(types[i]->heap[0], best->heap[0])))
                best = types[i];
        if (!best) break;
        row = best->heap[0];
        pgsched__mem_set_status(m, row, PGSCHED_STATUS_RUNNING);
        pgsched__copy_text(row->owner, sizeof row->owner, q->node_id);
        pgsched__copy_text(row->ran_by, sizeof row->ran_by, q->node_id);
        row->version = ++m->seq;
        row->lease = row->version;
        row->last_lease = 0; /* a new run: the last one's outcome can no longer be replayed */
        row->attempt++;
        row->cancel_requested = 0;
        row->started_at = row->next_run > now ? row->next_run : now; /* claimed early */
        row->heartbeat_at = now;
        row->updated_at = now;
        pgsched__mem_to_job(row, &job);
        if (pgsched_job_list_push(out, &job) != PGSCHED_OK) {
            /* Give the row back untouched but for its version: the claim did not happen. */
            row->attempt--;
            row->lease = 0;
            row->owner[0] = '\0';
            pgsched__mem_set_status(m, row, PGSCHED_STATUS_PENDING);
            r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory in a claim");
            break;
        }
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, row, PGSCHED_STATUS_PENDING, PGSCHED_STATUS_RUNNING,
                          q->node_id);
        claimed++;
    }
    info->now = now;
    info->next_due = 0;
    for (i = 0; i < nt; i++)
        if (types[i]->heap_n &&
            (!info->next_due || types[i]->heap[0]->next_run < info->next_due))
            info->next_due = types[i]->heap[0]->next_run;
    pthread_mutex_unlock(&m->mu);
    if (types != local) pgsched__free(&m->alloc, types);
    return r == PGSCHED_OK ? pgsched__ok(err) : r;
}

static pgsched__mnode *pgsched__mem_node(pgsched__mem *m, const char *id)
{
    size_t i;
    for (i = 0; i < m->node_n; i++)
        if (strcmp(m->nodes[i].id, id) == 0) return &m->nodes[i];
    return NULL;
}

static pgsched_result pgsched__mem_heartbeat(pgsched_store *s, const char *node_id,
                                             const pgsched_lease *leases, size_t count,
                                             int renew, pgsched_lease_state *states,
                                             pgsched_time *now_out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mnode *n;
    pgsched_time now;
    size_t i;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    for (i = 0; i < count; i++) {
        pgsched__mrow *r = pgsched__mem_find(m, leases[i].name, leases[i].key);
        if (!r || r->status != PGSCHED_STATUS_RUNNING || r->lease != leases[i].token ||
            strcmp(r->owner, node_id) != 0) {
            states[i].lost = 1;
            continue;
        }
        states[i].cancel_requested = r->cancel_requested;
        if (renew) r->heartbeat_at = now;
    }
    n = pgsched__mem_node(m, node_id);
    if (n) n->last_seen = now;
    *now_out = now;
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static void pgsched__mem_history(pgsched__mem *m, const pgsched__mrow *r, const pgsched_finish_request *o,
                                 pgsched_time now)
{
    pgsched__mhist *h;
    pgsched_run_record rec;
    size_t total;
    char *cur;
    if (m->hist_n == m->hist_cap) {
        size_t ncap = m->hist_cap ? m->hist_cap * 2 : 64;
        pgsched__mhist *nh =
            (pgsched__mhist *)pgsched__realloc(&m->alloc, m->hist, ncap * sizeof *nh);
        if (!nh) return; /* history is best effort under memory pressure; the row is not */
        m->hist = nh;
        m->hist_cap = ncap;
    }
    memset(&rec, 0, sizeof rec);
    rec.name = r->name;
    rec.key = r->key;
    rec.node = r->ran_by[0] ? r->ran_by : o->node_id;
    rec.attempt = r->attempt;
    rec.started_at = r->started_at;
    rec.finished_at = now;
    rec.outcome = o->outcome;
    rec.error = o->error;
    rec.id = ++m->hist_id;
    total = pgsched__slen(rec.name) + pgsched__slen(rec.key) + pgsched__slen(rec.node) +
            pgsched__slen(rec.error);
    h = &m->hist[m->hist_n];
    h->block = (char *)pgsched__malloc(&m->alloc, total);
    if (!h->block) return;
    cur = h->block;
    h->rec = rec;
    h->rec.name = pgsched__block_put(&cur, rec.name);
    h->rec.key = pgsched__block_put(&cur, rec.key);
    h->rec.node = pgsched__block_put(&cur, rec.node);
    h->rec.error = pgsched__block_put(&cur, rec.error);
    m->hist_n++;
}

static pgsched_result pgsched__mem_finish(pgsched_store *s, const pgsched_finish_request *o,
                                          size_t count, pgsched_finish_info *res,
                                          pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_time now;
    size_t i;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    for (i = 0; i < count; i++) {
        pgsched__mrow *r = pgsched__mem_find(m, o[i].name, o[i].key);
        pgsched_finish_request e = o[i]; /* what the outcome becomes */
        pgsched_status st;
        int failed;
        if (!r || r->status != PGSCHED_STATUS_RUNNING || r->lease != o[i].token) {
            size_t j;
            if (r && o[i].token > 0 && r->last_lease == o[i].token) res[i].replayed = 1;
            for (j = 0; j < i && !res[i].replayed; j++) /* named twice in this batch */
                if (res[j].code == PGSCHED_OK && !res[j].replayed && o[j].token == o[i].token &&
                    strcmp(o[j].name, o[i].name) == 0 && strcmp(o[j].key, o[i].key) == 0)
                    res[i].replayed = 1;
            res[i].code = res[i].replayed ? PGSCHED_OK : PGSCHED_ERR_LEASE_LOST;
            continue;
        }
        if (r->cancel_requested && e.cancelled_status != PGSCHED_STATUS_NONE &&
            (e.outcome == PGSCHED_OUTCOME_FAILURE || e.outcome == PGSCHED_OUTCOME_STALLED ||
             e.outcome == PGSCHED_OUTCOME_RELEASED)) {
            e.outcome = PGSCHED_OUTCOME_CANCELLED;
            e.status = e.cancelled_status;
            e.next_run = e.cancelled_next_run;
            e.retry_delay = 0;
            e.attempt_rule = PGSCHED_ATTEMPT_RESET;
        }
        st = e.status;
        failed = e.outcome == PGSCHED_OUTCOME_FAILURE || e.outcome == PGSCHED_OUTCOME_STALLED;
        if (failed && e.error && !pgsched__mem_setstr(m, &r->last_error, e.error)) {
            res[i].code = PGSCHED_ERR_NOMEM;
            continue;
        }
        if (!e.not_started) pgsched__mem_history(m, r, &e, now);
        if (e.outcome != PGSCHED_OUTCOME_RELEASED) r->runs++;
        if (failed) r->failures++;
        if (e.attempt_rule == PGSCHED_ATTEMPT_RESET) r->attempt = 0;
        else if (e.attempt_rule == PGSCHED_ATTEMPT_UNCOUNT && r->attempt > 0) r->attempt--;
        res[i].outcome = e.outcome;
        r->finished_at = now;
        r->owner[0] = '\0';
        r->last_lease = r->lease;
        r->lease = 0;
        r->heartbeat_at = 0;
        r->cancel_requested = 0;
        r->version = ++m->seq;
        r->updated_at = now;
        if (r->remove_requested) {
            pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_STATUS_RUNNING, PGSCHED_STATUS_NONE,
                              o[i].node_id);
            res[i].new_status = PGSCHED_STATUS_NONE;
            res[i].version = r->version;
            pgsched__mem_delete(m, r);
            res[i].code = PGSCHED_OK;
            continue;
        }
        if (st == PGSCHED_STATUS_PENDING)
            r->next_run = e.next_run ? e.next_run : now + e.retry_delay;
        else
            r->next_run = 0;
        if (r->has_change) {
            /* The re-schedule asked for while running takes effect now. */
            if (st != PGSCHED_STATUS_PENDING || r->ch_next_run < r->next_run) r->next_run = r->ch_next_run;
            pgsched__free(&m->alloc, r->cron);
            pgsched__free(&m->alloc, r->params);
            r->cron = r->ch_cron;
            r->params = r->ch_params;
            r->ch_cron = r->ch_params = NULL;
            r->kind = r->ch_kind;
            r->every = r->ch_every;
            r->max_retries = r->ch_max_retries;
            r->attempt = 0;
            r->has_change = 0;
            st = PGSCHED_STATUS_PENDING;
        }
        pgsched__mem_set_status(m, r, st);
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_STATUS_RUNNING, r->status, o[i].node_id);
        res[i].code = PGSCHED_OK;
        res[i].new_status = r->status;
        res[i].next_run = r->status == PGSCHED_STATUS_PENDING ? r->next_run : 0;
        res[i].version = r->version;
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static int pgsched__mem_heartbeat_cmp(const void *a, const void *b)
{
    const pgsched__mrow *x = *(const pgsched__mrow *const *)a;
    const pgsched__mrow *y = *(const pgsched__mrow *const *)b;
    return x->heartbeat_at < y->heartbeat_at ? -1 : x->heartbeat_at > y->heartbeat_at;
}

/* The take-back's info: the rows left running (those taken back carry a fresh heartbeat).
   Caller holds m->mu. */
static void pgsched__mem_take_back_info(pgsched__mem *m, pgsched_time now,
                                        pgsched_duration stall_timeout,
                                        pgsched_take_back_info *info)
{
    const pgsched__mrow *r;
    pgsched_time oldest = 0;
    int any = 0;
    for (r = m->running; r; r = r->rnext)
        if (!any || r->heartbeat_at < oldest) {
            oldest = r->heartbeat_at;
            any = 1;
        }
    info->now = now;
    /* a stall timeout longer than any age (up to PGSCHED_NEVER) means never: saturate */
    if (!any)
        info->next_stall = 0;
    else if (stall_timeout > PGSCHED_TIME_MAX - oldest)
        info->next_stall = PGSCHED_TIME_MAX;
    else
        info->next_stall = oldest + stall_timeout;
}

static pgsched_result pgsched__mem_take_back(pgsched_store *s, const char *node_id,
                                             pgsched_duration stall_timeout, int max,
                                             pgsched_job_list *out, pgsched_take_back_info *info,
                                             pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow *r, **stalled;
    pgsched_time now;
    size_t count = 0, k;
    int n = 0;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    for (r = m->running; r; r = r->rnext)
        if (r->heartbeat_at < now - stall_timeout) count++;
    if (!count) {
        pgsched__mem_take_back_info(m, now, stall_timeout, info);
        pthread_mutex_unlock(&m->mu);
        return pgsched__ok(err);
    }
    stalled = (pgsched__mrow **)pgsched__malloc(&m->alloc, count * sizeof *stalled);
    if (!stalled) return pgsched__mem_oom(m, err);
    count = 0;
    for (r = m->running; r; r = r->rnext)
        if (r->heartbeat_at < now - stall_timeout) stalled[count++] = r;
    /* the longest-silent first, as the PostgreSQL store takes them */
    qsort(stalled, count, sizeof *stalled, pgsched__mem_heartbeat_cmp);
    for (k = 0; k < count && n < max; k++) {
        pgsched_job job;
        r = stalled[k];
        pgsched__copy_text(r->owner, sizeof r->owner, node_id);
        r->version = ++m->seq;
        r->lease = r->version;
        r->last_lease = 0;
        r->heartbeat_at = now;
        r->updated_at = now;
        pgsched__mem_to_job(r, &job);
        if (pgsched_job_list_push(out, &job) != PGSCHED_OK) {
            /* The row now belongs to this node under a token nobody knows: it stalls again
               after stall_timeout and is taken back then. Nothing is lost. */
            pgsched__free(&m->alloc, stalled);
            pthread_mutex_unlock(&m->mu);
            return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory taking back rows");
        }
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_STATUS_RUNNING, PGSCHED_STATUS_RUNNING, node_id);
        n++;
    }
    pgsched__free(&m->alloc, stalled);
    pgsched__mem_take_back_info(m, now, stall_timeout, info);
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

/* Locks the store and finds (name, key): the row with the lock held, or NULL with the lock
   released and `err` saying the row does not exist. */
static pgsched__mrow *pgsched__mem_lock_row(pgsched__mem *m, const char *name, const char *key,
                                            pgsched_time *now, pgsched_error *err)
{
    pgsched__mrow *r;
    pthread_mutex_lock(&m->mu);
    if (now) *now = pgsched__mem_now(m);
    r = pgsched__mem_find(m, name, key);
    if (!r) {
        pthread_mutex_unlock(&m->mu);
        pgsched__err_not_found(err, name, key);
    }
    return r;
}

static pgsched_result pgsched__mem_cancel(pgsched_store *s, const char *name, const char *key,
                                          const char *node_id, pgsched_change_info *out,
                                          pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_time now;
    pgsched__mrow *r = pgsched__mem_lock_row(m, name, key, &now, err);
    if (!r) return PGSCHED_ERR_NOT_FOUND;
    out->old_status = out->new_status = r->status;
    if (r->status == PGSCHED_STATUS_RUNNING) {
        r->cancel_requested = 1;
        r->version = ++m->seq;
        r->updated_at = now;
        out->effect = PGSCHED_CHANGE_CANCEL_REQUESTED;
        pgsched__copy_text(out->owner, sizeof out->owner, r->owner);
        pgsched__mem_emit(m, PGSCHED_EVENT_CANCEL, r, PGSCHED_STATUS_RUNNING, PGSCHED_STATUS_RUNNING, node_id);
    } else if (r->status == PGSCHED_STATUS_PENDING && r->kind == PGSCHED_SCHEDULE_ONCE) {
        r->next_run = 0;
        r->version = ++m->seq;
        r->updated_at = now;
        pgsched__mem_set_status(m, r, PGSCHED_STATUS_CANCELLED);
        out->effect = PGSCHED_CHANGE_CANCELLED;
        out->new_status = PGSCHED_STATUS_CANCELLED;
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_STATUS_PENDING, PGSCHED_STATUS_CANCELLED, node_id);
    } else {
        out->effect = PGSCHED_CHANGE_NONE;
    }
    out->version = r->version;
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_trigger(pgsched_store *s, const char *name, const char *key,
                                           const char *node_id, pgsched_change_info *out,
                                           pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow *r;
    pgsched_time now;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    r = pgsched__mem_find(m, name, key);
    if (!r || r->status != PGSCHED_STATUS_PENDING) {
        pgsched_status st = r ? r->status : PGSCHED_STATUS_NONE;
        pthread_mutex_unlock(&m->mu);
        if (st == PGSCHED_STATUS_NONE) return pgsched__err_not_found(err, name, key);
        if (st == PGSCHED_STATUS_RUNNING)
            return pgsched__err_running(err, name, key, "it cannot be triggered");
        return pgsched__err_not_pending(err, name, key, st);
    }
    r->next_run = now;
    r->version = ++m->seq;
    r->updated_at = now;
    pgsched__heap_update(r);
    out->old_status = out->new_status = PGSCHED_STATUS_PENDING;
    out->next_run = now;
    out->version = r->version;
    pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, PGSCHED_STATUS_PENDING, PGSCHED_STATUS_PENDING, node_id);
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_remove(pgsched_store *s, const char *name, const char *key,
                                          const char *node_id, pgsched_change_info *out,
                                          pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_time now;
    pgsched__mrow *r = pgsched__mem_lock_row(m, name, key, &now, err);
    if (!r) return PGSCHED_ERR_NOT_FOUND;
    out->old_status = r->status;
    r->version = ++m->seq;
    out->version = r->version;
    if (r->status == PGSCHED_STATUS_RUNNING) {
        r->cancel_requested = 1;
        r->remove_requested = 1;
        r->updated_at = now;
        out->effect = PGSCHED_CHANGE_REMOVE_DEFERRED;
        out->new_status = PGSCHED_STATUS_RUNNING;
        pgsched__copy_text(out->owner, sizeof out->owner, r->owner);
        pgsched__mem_emit(m, PGSCHED_EVENT_CANCEL, r, PGSCHED_STATUS_RUNNING, PGSCHED_STATUS_RUNNING, node_id);
    } else {
        out->effect = PGSCHED_CHANGE_REMOVED;
        out->new_status = PGSCHED_STATUS_NONE;
        pgsched__mem_emit(m, PGSCHED_EVENT_CHANGE, r, r->status, PGSCHED_STATUS_NONE, node_id);
        pgsched__mem_delete(m, r);
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_get(pgsched_store *s, const char *name, const char *key,
                                       pgsched_job_list *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_job job;
    pgsched_result rc;
    pgsched__mrow *r = pgsched__mem_lock_row(m, name, key, NULL, err);
    if (!r) return PGSCHED_ERR_NOT_FOUND;
    pgsched__mem_to_job(r, &job);
    rc = pgsched_job_list_push(out, &job);
    pthread_mutex_unlock(&m->mu);
    if (rc != PGSCHED_OK) return pgsched__fail(err, rc, "out of memory copying a row");
    return pgsched__ok(err);
}

static int pgsched__mem_row_cmp(const void *a, const void *b)
{
    const pgsched__mrow *x = *(const pgsched__mrow *const *)a;
    const pgsched__mrow *y = *(const pgsched__mrow *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->key, y->key);
}

static pgsched_result pgsched__mem_list(pgsched_store *s, const pgsched_list_filter *f,
                                        pgsched_job_list *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mrow **rows;
    size_t n = 0, i, cap;
    pgsched_result rc = PGSCHED_OK;
    pthread_mutex_lock(&m->mu);
    cap = f->limit < m->nrows ? f->limit : m->nrows;
    rows = (pgsched__mrow **)pgsched__malloc(&m->alloc, (cap ? cap : 1) * sizeof *rows);
    if (!rows) return pgsched__mem_oom(m, err);
    /* One pass keeping the `cap` smallest rows after the cursor in a max-heap: a page costs
       a walk of the table, not a sort of it, and memory for one page. */
    for (i = 0; i < m->nbuckets && cap; i++) {
        pgsched__mrow *r;
        for (r = m->buckets[i]; r; r = r->hnext) {
            size_t k;
            if (f->name && strcmp(r->name, f->name) != 0) continue;
            if (f->status && r->status != f->status) continue;
            if (f->after_name) {
                int c = strcmp(r->name, f->after_name);
                if (c < 0 || (c == 0 && strcmp(r->key, f->after_key) <= 0)) continue;
            }
            if (n < cap) {
                for (k = n++; k > 0 && pgsched__mem_row_cmp(&rows[(k - 1) / 2], &r) < 0;
                     k = (k - 1) / 2)
                    rows[k] = rows[(k - 1) / 2];
                rows[k] = r;
            } else if (pgsched__mem_row_cmp(&r, &rows[0]) < 0) {
                for (k = 0;;) {
                    size_t c = 2 * k + 1;
                    if (c >= n) break;
                    if (c + 1 < n && pgsched__mem_row_cmp(&rows[c + 1], &rows[c]) > 0) c++;
                    if (pgsched__mem_row_cmp(&rows[c], &r) <= 0) break;
                    rows[k] = rows[c];
                    k = c;
                }
                rows[k] = r;
            }
        }
    }
    qsort(rows, n, sizeof *rows, pgsched__mem_row_cmp);
    for (i = 0; i < n; i++) {
        pgsched_job job;
        pgsched__mem_to_job(rows[i], &job);
        if ((rc = pgsched_job_list_push(out, &job)) != PGSCHED_OK) break;
    }
    pthread_mutex_unlock(&m->mu);
    pgsched__free(&m->alloc, rows);
    if (rc != PGSCHED_OK) return pgsched__fail(err, rc, "out of memory listing rows");
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_history_list(pgsched_store *s, const char *name,
                                                const char *key, size_t limit,
                                                pgsched_run_list *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    size_t i, taken = 0;
    pgsched_result rc = PGSCHED_OK;
    pthread_mutex_lock(&m->mu);
    for (i = m->hist_n; i > 0 && taken < limit; i--) {
        const pgsched_run_record *rec = &m->hist[i - 1].rec;
        if (name && strcmp(rec->name, name) != 0) continue;
        if (key && strcmp(rec->key, key) != 0) continue;
        if ((rc = pgsched_run_list_push(out, rec)) != PGSCHED_OK) break;
        taken++;
    }
    pthread_mutex_unlock(&m->mu);
    if (rc != PGSCHED_OK) return pgsched__fail(err, rc, "out of memory listing history");
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_next_due(pgsched_store *s, const char *const *names,
                                            size_t count, pgsched_time *next,
                                            pgsched_time *now, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    size_t i;
    pthread_mutex_lock(&m->mu);
    *now = pgsched__mem_now(m);
    *next = 0;
    for (i = 0; i < count; i++) {
        pgsched__mtype *t = pgsched__mem_type(m, names[i], 0);
        if (t && t->heap_n && (!*next || t->heap[0]->next_run < *next))
            *next = t->heap[0]->next_run;
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static void pgsched__mem_node_clear(pgsched__mem *m, pgsched__mnode *n)
{
    size_t i;
    for (i = 0; i < n->name_count; i++) pgsched__free(&m->alloc, n->names[i]);
    pgsched__free(&m->alloc, n->names);
    pgsched__free(&m->alloc, n->host);
    n->names = NULL;
    n->host = NULL;
    n->name_count = 0;
}

static pgsched_result pgsched__mem_node_register(pgsched_store *s, const pgsched_node_record *rec,
                                                 pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mnode fresh, *n;
    size_t i;
    pgsched_time now;
    memset(&fresh, 0, sizeof fresh);
    fresh.host = pgsched__strdup(&m->alloc, rec->host ? rec->host : "");
    fresh.names = (char **)pgsched__calloc(&m->alloc, (rec->name_count + 1) * sizeof(char *));
    if (!fresh.host || !fresh.names) goto oom;
    for (i = 0; i < rec->name_count; i++) {
        fresh.names[i] = pgsched__strdup(&m->alloc, rec->names[i]);
        fresh.name_count++;
        if (!fresh.names[i]) goto oom;
    }
    pgsched__copy_text(fresh.id, sizeof fresh.id, rec->id);
    fresh.pid = rec->pid;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    n = pgsched__mem_node(m, rec->id);
    if (n) {
        fresh.started_at = n->started_at;
        pgsched__mem_node_clear(m, n);
    } else {
        if (m->node_n == m->node_cap) {
            size_t ncap = m->node_cap ? m->node_cap * 2 : 8;
            pgsched__mnode *nn =
                (pgsched__mnode *)pgsched__realloc(&m->alloc, m->nodes, ncap * sizeof *nn);
            if (!nn) {
                pthread_mutex_unlock(&m->mu);
                goto oom;
            }
            m->nodes = nn;
            m->node_cap = ncap;
        }
        n = &m->nodes[m->node_n++];
        fresh.started_at = now;
    }
    fresh.last_seen = now;
    *n = fresh;
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
oom:
    pgsched__mem_node_clear(m, &fresh);
    return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory registering a node");
}

static pgsched_result pgsched__mem_node_unregister(pgsched_store *s, const char *node_id,
                                                   pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mnode *n;
    pthread_mutex_lock(&m->mu);
    n = pgsched__mem_node(m, node_id);
    if (n) {
        /* the record stays, with its types, until clean-up deletes it */
        n->last_seen = pgsched__mem_now(m);
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_cleanup(pgsched_store *s, const pgsched_cleanup_request *q,
                                           pgsched_cleanup_info *out, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_time now;
    size_t i, b;
    pthread_mutex_lock(&m->mu);
    now = pgsched__mem_now(m);
    if (q->history_retention != PGSCHED_NEVER) {
        size_t kept = 0;
        for (i = 0; i < m->hist_n; i++) {
            if (m->hist[i].rec.finished_at < now - q->history_retention &&
                out->history_deleted < q->limit) {
                pgsched__free(&m->alloc, m->hist[i].block);
                out->history_deleted++;
            } else {
                m->hist[kept++] = m->hist[i];
            }
        }
        m->hist_n = kept;
        if (m->hist_cap > 64 && m->hist_n < m->hist_cap / 4) {
            size_t ncap = m->hist_n * 2 > 64 ? m->hist_n * 2 : 64;
            pgsched__mhist *nh =
                (pgsched__mhist *)pgsched__realloc(&m->alloc, m->hist, ncap * sizeof *nh);
            if (nh) {
                m->hist = nh;
                m->hist_cap = ncap;
            }
        }
        pgsched_duration keep = pgsched__node_retention(q);
        for (i = 0; i < m->node_n;) {
            if (m->nodes[i].last_seen < now - keep && strcmp(m->nodes[i].id, q->node_id) != 0) {
                pgsched__mem_node_clear(m, &m->nodes[i]);
                m->nodes[i] = m->nodes[--m->node_n];
                out->nodes_deleted++;
            } else {
                i++;
            }
        }
    }
    if (q->orphan_timeout != PGSCHED_NEVER) {
        /* A type is live when a node, running or stopped, seen within the orphan timeout
           registers it. */
        for (b = 0; b < PGSCHED__MTYPE_BUCKETS; b++) {
            pgsched__mtype *t;
            for (t = m->types[b]; t; t = t->next) {
                t->live = 0;
                for (i = 0; i < m->node_n && !t->live; i++) {
                    size_t k;
                    if (m->nodes[i].last_seen < now - q->orphan_timeout) continue;
                    for (k = 0; k < m->nodes[i].name_count; k++)
                        if (strcmp(m->nodes[i].names[k], t->name) == 0) t->live = 1;
                }
            }
        }
    }
    m->in_cleanup = 1; /* the walk below must not see the table shrink under it */
    for (b = 0; b < m->nbuckets; b++) {
        pgsched__mrow *r = m->buckets[b];
        while (r) {
            pgsched__mrow *next = r->hnext;
            int finished = r->kind == PGSCHED_SCHEDULE_ONCE &&
                           (r->status == PGSCHED_STATUS_COMPLETED || r->status == PGSCHED_STATUS_FAILED ||
                            r->status == PGSCHED_STATUS_CANCELLED);
            if (finished && q->finished_retention != PGSCHED_NEVER &&
                r->updated_at < now - q->finished_retention && out->finished_deleted < q->limit) {
                pgsched__mem_delete(m, r);
                out->finished_deleted++;
            } else if (q->orphan_timeout != PGSCHED_NEVER && r->status != PGSCHED_STATUS_RUNNING &&
                       !r->type->live && r->updated_at < now - q->orphan_timeout &&
                       out->orphans_deleted < q->limit) {
                pgsched__mem_delete(m, r);
                out->orphans_deleted++;
            }
            r = next;
        }
    }
    m->in_cleanup = 0;
    while (m->nbuckets > 64 && m->nrows < m->nbuckets / 4) {
        size_t before = m->nbuckets;
        pgsched__mem_rehash(m, m->nbuckets / 2);
        if (m->nbuckets == before) break;
    }
    pthread_mutex_unlock(&m->mu);
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_listen_open(pgsched_store *s, pgsched_listener **out,
                                               pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mlistener *l = (pgsched__mlistener *)pgsched__calloc(&m->alloc, sizeof *l);
    if (!l) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory opening a listener");
    l->cap = PGSCHED__MLISTEN_START;
    l->q = (pgsched_event *)pgsched__malloc(&m->alloc, l->cap * sizeof *l->q);
    if (!l->q || pgsched__cond_init(&l->cv) != 0) {
        pgsched__free(&m->alloc, l->q);
        pgsched__free(&m->alloc, l);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory opening a listener");
    }
    pthread_mutex_lock(&m->mu);
    l->next = m->listeners;
    m->listeners = l;
    pthread_mutex_unlock(&m->mu);
    *out = (pgsched_listener *)(void *)l;
    return pgsched__ok(err);
}

static pgsched_result pgsched__mem_listen_wait(pgsched_store *s, pgsched_listener *lh,
                                               pgsched_duration timeout, pgsched_event *events,
                                               size_t cap, size_t *count, pgsched_error *err)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mlistener *l = (pgsched__mlistener *)(void *)lh;
    pgsched_time deadline = pgsched__deadline(timeout);
    size_t n = 0;
    pthread_mutex_lock(&m->mu);
    while (!l->count && !l->overflow && !l->woken && pgsched__monotonic() < deadline)
        pgsched__cond_wait_until(&l->cv, &m->mu, deadline);
    if (l->overflow) {
        memset(&events[0], 0, sizeof events[0]);
        events[0].kind = PGSCHED_EVENT_RESYNC;
        l->overflow = 0;
        n = 1;
    }
    while (n < cap && l->count) {
        events[n++] = l->q[l->head];
        l->head = (l->head + 1) % l->cap;
        l->count--;
    }
    if (!l->count && l->cap > PGSCHED__MLISTEN_START) {
        /* a queue grown by a burst goes back to its first size once drained */
        pgsched_event *small =
            (pgsched_event *)pgsched__malloc(&m->alloc, PGSCHED__MLISTEN_START * sizeof *small);
        if (small) {
            pgsched__free(&m->alloc, l->q);
            l->q = small;
            l->cap = PGSCHED__MLISTEN_START;
            l->head = 0;
        }
    }
    l->woken = 0;
    pthread_mutex_unlock(&m->mu);
    *count = n;
    return pgsched__ok(err);
}

static void pgsched__mem_listen_wake(pgsched_store *s, pgsched_listener *lh)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mlistener *l = (pgsched__mlistener *)(void *)lh;
    pthread_mutex_lock(&m->mu);
    l->woken = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&m->mu);
}

static void pgsched__mem_listener_free(pgsched__mem *m, pgsched__mlistener *l)
{
    pthread_cond_destroy(&l->cv);
    pgsched__free(&m->alloc, l->q);
    pgsched__free(&m->alloc, l);
}

static void pgsched__mem_listen_close(pgsched_store *s, pgsched_listener *lh)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched__mlistener *l = (pgsched__mlistener *)(void *)lh, **pp;
    pthread_mutex_lock(&m->mu);
    for (pp = &m->listeners; *pp && *pp != l; pp = &(*pp)->next) {}
    if (*pp) *pp = l->next;
    pthread_mutex_unlock(&m->mu);
    pgsched__mem_listener_free(m, l);
}

static void pgsched__mem_destroy(pgsched_store *s)
{
    pgsched__mem *m = (pgsched__mem *)s;
    pgsched_allocator a = m->alloc;
    size_t i;
    for (i = 0; i < m->nbuckets; i++) {
        pgsched__mrow *r = m->buckets[i];
        while (r) {
            pgsched__mrow *next = r->hnext;
            pgsched__mem_row_free(m, r);
            r = next;
        }
    }
    for (i = 0; i < PGSCHED__MTYPE_BUCKETS; i++) {
        pgsched__mtype *t = m->types[i];
        while (t) {
            pgsched__mtype *next = t->next;
            pgsched__free(&a, t->heap);
            pgsched__free(&a, t->name);
            pgsched__free(&a, t);
            t = next;
        }
    }
    for (i = 0; i < m->hist_n; i++) pgsched__free(&a, m->hist[i].block);
    for (i = 0; i < m->node_n; i++) pgsched__mem_node_clear(m, &m->nodes[i]);
    while (m->listeners) {
        pgsched__mlistener *l = m->listeners;
        m->listeners = l->next;
        pgsched__mem_listener_free(m, l);
    }
    pgsched__free(&a, m->hist);
    pgsched__free(&a, m->nodes);
    pgsched__free(&a, m->buckets);
    pthread_mutex_destroy(&m->mu);
    pgsched__free(&a, m);
}

static const pgsched_store_methods pgsched__mem_methods = {
    PGSCHED_STORE_VERSION,
    "memory",
    pgsched__mem_setup,
    pgsched__mem_destroy,
    pgsched__mem_now_m,
    pgsched__mem_schedule,
    pgsched__mem_claim,
    pgsched__mem_heartbeat,
    pgsched__mem_finish,
    pgsched__mem_take_back,
    pgsched__mem_cancel,
    pgsched__mem_trigger,
    pgsched__mem_remove,
    pgsched__mem_get,
    pgsched__mem_list,
    pgsched__mem_history_list,
    pgsched__mem_next_due,
    pgsched__mem_node_register,
    pgsched__mem_node_unregister,
    pgsched__mem_cleanup,
    pgsched__mem_listen_open,
    pgsched__mem_listen_wait,
    pgsched__mem_listen_wake,
    pgsched__mem_listen_close,
    pgsched__mem_schedule_many,
    NULL, /* no transaction to join */
};

PGSCHED_DEF pgsched_result pgsched_memory_store_create(const pgsched_memory_config *cfg,
                                                       pgsched_store **out, pgsched_error *err)
{
    pgsched_allocator a = pgsched__allocator(cfg ? cfg->allocator : NULL);
    pgsched__mem *m;
    if (!out) return pgsched__null(err, "the output store");
    *out = NULL;
    if (cfg && pgsched__allocator_partial(cfg->allocator)) return pgsched__allocator_refused(err);
    m = (pgsched__mem *)pgsched__calloc(&a, sizeof *m);
    if (!m) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a store");
    m->alloc = a;
    m->base.methods = &pgsched__mem_methods;
    if (cfg) {
        m->clock = cfg->clock;
        m->clock_user = cfg->clock_user;
    }
    m->nbuckets = 64;
    m->buckets = (pgsched__mrow **)pgsched__calloc(&a, m->nbuckets * sizeof *m->buckets);
    if (!m->buckets || pthread_mutex_init(&m->mu, NULL) != 0) {
        pgsched__free(&a, m->buckets);
        pgsched__free(&a, m);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a store");
    }
    *out = &m->base;
    return pgsched__ok(err);
}

/* ---- [pgsched: stores] implementation: the PostgreSQL store --------------------------------- */

/* The passwords a connection string carries, read the way libpq reads it: keyword/value pairs
   `password` and `sslpassword` (separated by any of libpq's blanks: space, \t, \n, \r, \v,
   \f; the value quoted or not, with backslash escapes), or a URI's user:password@ and
   ?password= / &sslpassword= parameters (percent-encoded, keywords included). */
typedef struct pgsched__secret {
    const char *at; /* the value's text in the connection string (inside its quotes) */
    size_t len;
    char enc;       /* how that text encodes the value: 'b' backslash escapes, '%' percent */
} pgsched__secret;

#define PGSCHED__SECRETS_MAX 16

static int pgsched__conninfo_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int pgsched__hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The value `at`/`len` encoded as `enc`, decoded into out (cut to size); returns its length. */
static size_t pgsched__secret_decode(const char *at, size_t len, char enc, char *out, size_t size)
{
    size_t i = 0, o = 0;
    while (i < len) {
        char c = at[i++];
        if (enc == 'b' && c == '\\' && i < len) c = at[i++];
        else if (enc == '%' && c == '%' && i + 1 < len && pgsched__hexval(at[i]) >= 0 &&
                 pgsched__hexval(at[i + 1]) >= 0) {
            c = (char)(pgsched__hexval(at[i]) * 16 + pgsched__hexval(at[i + 1]));
            i += 2;
        }
        if (o + 1 < size) out[o] = c;
        o++;
    }
    if (size) out[o < size ? o : size - 1] = '\0';
    return o;
}

static void pgsched__secret_add(pgsched__secret *sec, size_t cap, size_t *n, const char *at,
                                size_t len, char enc)
{
    if (*n < cap) {
        sec[*n].at = at;
        sec[*n].len = len;
        sec[*n].enc = enc;
    }
    (*n)++;
}

static int pgsched__conninfo_is_uri(const char *s)
{
    return strncmp(s, "postgres://", 11) == 0 || strncmp(s, "postgresql://", 13) == 0;
}

/* A URI whose password holds an unencoded '@' or '/': libpq reads part of the password as the
   host, port or database, and quotes that part in its error messages. Returns the span from
   the first ':' of the user information to the last '@' that can end it (before the query),
   or NULL when the URI reads the same either way. */
static const char *pgsched__uri_loose_password(const char *s, size_t *len)
{
    const char *rest = strstr(s, "://") + 3, *first_at = strchr(rest, '@'), *q, *end, *last = NULL;
    const char *colon;
    if (!first_at) return NULL;
    q = strchr(first_at, '/');
    end = q ? strchr(q, '?') : NULL;
    if (!end) end = rest + strlen(rest);
    for (q = rest; q < end; q++)
        if (*q == '@') last = q;
    for (colon = rest; colon < last && *colon != ':'; colon++) {}
    if (colon >= last) return NULL;
    for (q = colon + 1; q < last; q++)
        if (*q == '?') return NULL; /* a query with an '@' in it, not a password */
    for (q = colon + 1; q < last; q++)
        if (*q == '@' || *q == '/') break;
    if (q == last) return NULL; /* a well-formed password: libpq reads the same */
    *len = (size_t)(last - colon - 1);
    return colon + 1;
}

/* Stores the first `cap` secrets of `s`, in no particular order (spans may overlap); returns
   how many there are. */
static size_t pgsched__conninfo_secrets(const char *s, pgsched__secret *sec, size_t cap)
{
    size_t n = 0;
    if (pgsched__conninfo_is_uri(s)) {
        const char *rest = strstr(s, "://") + 3, *p = rest, *loose, *q = rest;
        size_t len;
        /* libpq: the user information ends at the first '@' before any '/' */
        while (*p && *p != '@' && *p != '/') p++;
        if (*p == '@') {
            const char *c = rest;
            while (c < p && *c != ':') c++;
            if (c < p) pgsched__secret_add(sec, cap, &n, c + 1, (size_t)(p - c - 1), '%');
            q = p + 1;
        }
        loose = pgsched__uri_loose_password(s, &len);
        if (loose) pgsched__secret_add(sec, cap, &n, loose, len, '%');
        /* parameters: the query starts at the first '?' after the user information */
        for (q = strchr(q, '?'); q && *q; q++) {
            char key[16];
            const char *k = q + 1, *eq;
            if (*q != '?' && *q != '&') continue;
            eq = k + strcspn(k, "=&");
            if (*eq != '=' || (size_t)(eq - k) >= 3 * sizeof key) continue;
            pgsched__secret_decode(k, (size_t)(eq - k), '%', key, sizeof key);
            if (strcmp(key, "password") == 0 || strcmp(key, "sslpassword") == 0)
                pgsched__secret_add(sec, cap, &n, eq + 1, strcspn(eq + 1, "&"), '%');
        }
        return n;
    }
    while (*s) {
        const char *k;
        size_t klen;
        while (pgsched__conninfo_blank(*s)) s++;
        if (!*s) break;
        k = s;
        while (*s && *s != '=' && !pgsched__conninfo_blank(*s)) s++;
        klen = (size_t)(s - k);
        while (pgsched__conninfo_blank(*s)) s++;
        if (*s != '=') continue; /* libpq refuses it, quoting only the keyword */
        s++;
        while (pgsched__conninfo_blank(*s)) s++;
        {
            int secret = (klen == 8 && strncmp(k, "password", 8) == 0) ||
                         (klen == 11 && strncmp(k, "sslpassword", 11) == 0);
            const char *v;
            if (*s == '\'') {
                v = ++s;
                while (*s && *s != '\'') s += (*s == '\\' && s[1]) ? 2 : 1;
                if (secret) pgsched__secret_add(sec, cap, &n, v, (size_t)(s - v), 'b');
                if (*s) s++;
            } else {
                v = s;
                while (*s && !pgsched__conninfo_blank(*s)) s += (*s == '\\' && s[1]) ? 2 : 1;
                if (secret) pgsched__secret_add(sec, cap, &n, v, (size_t)(s - v), 'b');
            }
        }
    }
    return n;
}

/* The secrets of `s` as disjoint spans in text order, a quoted value with its quotes. Returns
   how many spans it stored; *more is set when there were more secrets than `cap` (the caller
   then hides everything from the last span on). */
static size_t pgsched__conninfo_spans(const char *s, pgsched__secret *sec, size_t cap, int *more)
{
    size_t n = pgsched__conninfo_secrets(s, sec, cap), i, j, m = 0;
    size_t kept = n < cap ? n : cap;
    for (i = 0; i < kept; i++) {
        if (sec[i].at > s && sec[i].at[-1] == '\'' && !pgsched__conninfo_is_uri(s)) {
            sec[i].at--;
            sec[i].len++;
            if (sec[i].at[sec[i].len] == '\'') sec[i].len++;
        }
    }
    for (i = 1; i < kept; i++) /* insertion sort by start: a handful of spans */
        for (j = i; j > 0 && sec[j].at < sec[j - 1].at; j--) {
            pgsched__secret t = sec[j];
            sec[j] = sec[j - 1];
            sec[j - 1] = t;
        }
    for (i = 0; i < kept; i++) {
        if (m && sec[i].at <= sec[m - 1].at + sec[m - 1].len) {
            const char *end = sec[i].at + sec[i].len;
            if (end > sec[m - 1].at + sec[m - 1].len)
                sec[m - 1].len = (size_t)(end - sec[m - 1].at);
        } else {
            sec[m++] = sec[i];
        }
    }
    *more = n > cap;
    return m;
}

/* Works without libpq: a password must not reach a log whichever store is built in. */
PGSCHED_DEF size_t pgsched_conninfo_redact(const char *conninfo, char *buf, size_t size)
{
    const char *s = conninfo ? conninfo : "", *p = s;
    pgsched__secret sec[PGSCHED__SECRETS_MAX];
    int more;
    size_t n = pgsched__conninfo_spans(s, sec, PGSCHED__SECRETS_MAX, &more), i, o = 0;
#define PGSCHED__PUTN(str, k)                                                                     \
    do {                                                                                          \
        size_t k_ = (k), c_ = o + 1 < size ? size - o - 1 : 0;                                    \
        if (c_) memcpy(buf + o, (str), k_ < c_ ? k_ : c_);                                        \
        o += k_;                                                                                  \
    } while (0)
    for (i = 0; i < n; i++) {
        PGSCHED__PUTN(p, (size_t)(sec[i].at - p));
        PGSCHED__PUTN("********", 8);
        p = sec[i].at + sec[i].len;
    }
    if (more) PGSCHED__PUTN("********", 8); /* more than anyone writes: hide the rest */
    else PGSCHED__PUTN(p, strlen(p));
    if (size) buf[o < size ? o : size - 1] = '\0';
#undef PGSCHED__PUTN
    return o;
}

#ifndef PGSCHED_NO_LIBPQ
/* Replaces in `msg` every occurrence of `v` (len bytes) by "********". A value of fewer than 4
   bytes is replaced only where it follows ':', '=' or a quote, as it does where libpq quotes a
   connection string, so that a short one does not turn every such letter into stars. */
static void pgsched__scrub_one(char *msg, size_t size, const char *v, size_t len)
{
    char out[1024];
    const char *from = msg, *c;
    size_t o = 0;
    if (len == 0) return;
    for (c = msg; *c && o < sizeof out; c++) {
        if (strncmp(c, v, len) != 0) continue;
        if (len < 4 && (c == msg || (c[-1] != ':' && c[-1] != '=' && c[-1] != '"' &&
                                     c[-1] != '\'')))
            continue;
        o += (size_t)snprintf(out + o, sizeof out - o, "%.*s********", (int)(c - from), from);
        from = c + len;
        c = from - 1;
    }
    if (o < sizeof out) snprintf(out + o, sizeof out - o, "%s", from);
    out[sizeof out - 1] = '\0';
    pgsched__copy_text(msg, size, out);
}

/* Replaces the passwords of `conninfo` found in `msg` (as written there, and decoded) by
   "********": libpq quotes a malformed connection string (or a piece of it) back in its error
   messages. A URI whose password holds an unencoded '@' or '/' makes libpq quote pieces of it
   that cannot be told from other text: its message is replaced whole. */
static void pgsched__conninfo_scrub(const char *conninfo, char *msg, size_t size)
{
    pgsched__secret sec[PGSCHED__SECRETS_MAX];
    size_t n, i, len;
    if (!conninfo || !msg || !size) return;
    if (pgsched__conninfo_is_uri(conninfo) && pgsched__uri_loose_password(conninfo, &len)) {
        pgsched__copy_text(msg, size,
                           "the connection URI is malformed: a password holding '@' or '/' must "
                           "be percent-encoded (%40, %2F); libpq's message is not shown, as it "
                           "would quote part of the password");
        return;
    }
    n = pgsched__conninfo_secrets(conninfo, sec, PGSCHED__SECRETS_MAX);
    for (i = 0; i < n && i < PGSCHED__SECRETS_MAX; i++) {
        char plain[512];
        pgsched__scrub_one(msg, size, sec[i].at, sec[i].len);
        len = pgsched__secret_decode(sec[i].at, sec[i].len, sec[i].enc, plain, sizeof plain);
        if (len < sizeof plain && (len != sec[i].len || memcmp(plain, sec[i].at, len) != 0))
            pgsched__scrub_one(msg, size, plain, len);
    }
}
#endif

/* The longest suffix of an object name ("schema_version"); prefix + suffix <= 63 bytes.
   (PostgreSQL shortens the automatic constraint names such as "..._schema_version_pkey"
   itself, without error.) */
#define PGSCHED__PG_SUFFIX_MAX 14

/* A duration field of a configuration: not negative, at most 100 years, PGSCHED_NEVER only where
   `allow_never` (0 is left to the caller: it means the default). */
static pgsched_result pgsched__check_duration_field(const char *field, pgsched_duration v,
                                                    int allow_never, pgsched_error *err)
{
    if (v < 0)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "%s: a duration cannot be negative", field);
    if (v == PGSCHED_NEVER && !allow_never)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "%s: PGSCHED_NEVER is not allowed here",
                             field);
    if (v != PGSCHED_NEVER && v > PGSCHED__DURATION_MAX)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "%s: more than 100 years", field);
    return PGSCHED_OK;
}

/* The one place a PostgreSQL store's configuration is checked and its defaults applied, for
   pgsched_pg_store_create and for the store a node makes from its configuration's `pg`. No I/O,
   no allocation: `out` is `in` with every default filled in, its strings pointing into `in` or
   at literals. `field` prefixes each field name in an error ("pg." through a node). */
static pgsched_result pgsched__pg_config_resolve(const pgsched_pg_config *in, const char *field,
                                                 pgsched_pg_config *out, pgsched_error *err)
{
    char name[32];
    pgsched_result r;
    *out = *in;
    if (!out->conninfo)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "%sconninfo: the connection string is missing", field);
    out->schema = out->schema ? out->schema : "public";
    out->prefix = out->prefix ? out->prefix : "pgsched_";
    snprintf(name, sizeof name, "%sschema", field);
    if ((r = pgsched_validate_identifier(name, out->schema, 63, err)) != PGSCHED_OK) return r;
    snprintf(name, sizeof name, "%sprefix", field);
    if ((r = pgsched_validate_identifier(name, out->prefix, 63 - PGSCHED__PG_SUFFIX_MAX, err)) !=
        PGSCHED_OK)
        return r;
    if (out->pool_size < 0 || out->pool_size > 64)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "%spool_size: %d is outside 1..64 (0 means the default, 2)", field,
                             out->pool_size);
    out->pool_size = out->pool_size ? out->pool_size : 2;
    snprintf(name, sizeof name, "%sreconnect_min", field);
    if ((r = pgsched__check_duration_field(name, out->reconnect_min, 0, err)) != PGSCHED_OK)
        return r;
    snprintf(name, sizeof name, "%sreconnect_max", field);
    if ((r = pgsched__check_duration_field(name, out->reconnect_max, 0, err)) != PGSCHED_OK)
        return r;
    if (out->reconnect_min && out->reconnect_max && out->reconnect_max < out->reconnect_min)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "%sreconnect_max (%lld ms) must not be less than reconnect_min "
                             "(%lld ms)",
                             field, (long long)(out->reconnect_max / 1000),
                             (long long)(out->reconnect_min / 1000));
    out->reconnect_min = out->reconnect_min ? out->reconnect_min : 100 * PGSCHED_MILLISECOND;
    out->reconnect_max = out->reconnect_max ? out->reconnect_max : 10 * PGSCHED_SECOND;
    /* Only the defaulted maximum can be below a given minimum: the backoff stays at it. */
    if (out->reconnect_max < out->reconnect_min) out->reconnect_max = out->reconnect_min;
    if (pgsched__allocator_partial(out->allocator))
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "%sallocator: give all of malloc_fn, realloc_fn and free_fn, or none",
                             field);
    return PGSCHED_OK;
}

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
#define PGSCHED__PG_SCHEMA_VERSION 4

/* Statements. Each is generated once per store from a template in which {J} {R} {N} {Q} stand
   for the quoted, schema-qualified jobs, runs, nodes tables and sequence, and {NOTIFY...}
   parts are kept only when notifications are on. Every value is a $n parameter.

   Names and search_path (a role that may create objects in a schema on the search path, as
   anyone may in `public` up to PostgreSQL 14, could otherwise plant `public.nextval(text)`,
   which beats pg_catalog.nextval(regclass) for a text argument, and run it with the node's
   privileges). The convention, for every statement here and any added later:
   - Tables and the sequence are always qualified ({J} {R} {N} {Q} {V}).
   - The library's own connections (pool, listener, setup and migrations) pin
     `search_path = pg_catalog, pg_temp` as the first statement after connecting, every
     reconnect included (pgsched__pg_connect). On them functions and operators can only
     resolve in pg_catalog (pg_temp is never searched for those, and comes last for types),
     so statements that only ever run there may be written plainly: now(), x = y, ::text.
   - A statement that may be sent on a connection the library does not own (Q_SCHEDULE via
     pgsched_schedule_job_tx, and anything else sent on the caller's connection, prepared or
     not) resolves names through the caller's search_path, which the library must not
     change. There every name is qualified: functions pg_catalog.now(), pg_catalog.nextval(),
     operators OPERATOR(pg_catalog.=) (also where = hides: IN (...), CASE x WHEN, NULLIF,
     IS DISTINCT FROM, = ANY, row comparisons: write them with an explicit OPERATOR), types
     in casts ::pg_catalog.text, ::pg_catalog.int8, collations pg_catalog."C". Syntax that is
     no name look-up needs nothing: coalesce, CASE WHEN, LEAST/GREATEST, extract(... from ...),
     a typed literal interval '1 second', literals assigned to columns. The shared pieces
     (PGSCHED__NOTIFY, PGSCHED__NOTIFY_BATCH, PGSCHED__PG_US) are qualified, so they may be
     used anywhere.
   Why not qualify the pool-only statements too: with the pin, every name in them already
   resolves to pg_catalog and nothing else, and qualifying each operator would make the long
   statements much harder to read and review for no further protection.
   The store test pg_no_statement_calls_a_look_alike_planted_in_public runs every statement
   against look-alikes that an unprivileged role planted in public, and
   tests/test_search_path.sh runs the whole store suite in such a database. */
enum {
    PGSCHED__Q_NOW,
    PGSCHED__Q_SCHEDULE,
    PGSCHED__Q_SCHEDULE_NEW,
    PGSCHED__Q_SCHEDULE_TX,
    PGSCHED__Q_SCHEDULE_NEW_TX,
    PGSCHED__Q_SCHEDULE_ONE,
    PGSCHED__Q_CLAIM,
    PGSCHED__Q_HEARTBEAT,
    PGSCHED__Q_FINISH,
    PGSCHED__Q_TAKE_BACK,
    PGSCHED__Q_CANCEL,
    PGSCHED__Q_TRIGGER,
    PGSCHED__Q_REMOVE,
    PGSCHED__Q_GET,
    PGSCHED__Q_LIST,
    PGSCHED__Q_LIST_ALL,
    PGSCHED__Q_HISTORY,
    PGSCHED__Q_HISTORY_NAME,
    PGSCHED__Q_HISTORY_ALL,
    PGSCHED__Q_NEXT_DUE,
    PGSCHED__Q_NODE_REGISTER,
    PGSCHED__Q_NODE_UNREGISTER,
    PGSCHED__Q_CLEANUP,
    PGSCHED__Q_QUARANTINE,
    PGSCHED__Q_QUARANTINE_DUE,
    PGSCHED__Q_CONFIRM,
    PGSCHED__Q_WATCHED,
    PGSCHED__Q_COUNT
};

/* Times go into SQL as RFC 3339 text (exact to the microsecond; arithmetic on intervals would
   pass through a double and drift after year 2255) and come out as binary timestamptz.
   Notification payloads carry them as int8 microseconds since the epoch. */
#define PGSCHED__PG_US(x)                                                                         \
    "((extract(epoch from " x ") OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8)"

/* The columns of a job row, in the order pgsched__pg_job() reads them. */
#define PGSCHED__JOB_COLS(a)                                                                      \
    a "name, " a "key, " a "status, " a "kind, " a "cron, " a "every_us, " a "params::text, " a  \
      "max_retries, " a "attempt, " a "next_run, " a "owner, " a "lease, " a "heartbeat_at, " a   \
      "started_at, " a "finished_at, " a "cancel_requested, " a "remove_requested, (" a           \
      "ch_kind IS NOT NULL), " a "last_error, " a "runs, " a "failures, " a "version, " a         \
      "created_at, " a "updated_at"
#define PGSCHED__JOB_NCOLS 24

/* Notifications. An event is one line of tab-separated fields, small by construction (names
   and keys are bounded):
     C name key old_status new_status version node next_run_us   a change ('none': no row)
     X name key version node owner                                a cancel request for owner
     D name node next_run_us                 work of type name is due then (a hint, no row)
     R                                                            something was missed: poll
   A payload holds one line or several, separated by newlines (library versions before 3 and
   the SQL functions of migration 2 send one line each; the listener reads both).
   PGSCHED__NOTIFY sends the one event of a single-row statement; a row written by hand
   through SQL with a huge key still cannot make pg_notify fail the transaction, because
   anything near the 8000-byte limit is replaced by R. */
#define PGSCHED__NOTIFY(chan, expr)                                                               \
    "pg_catalog.pg_notify(" chan ", CASE WHEN pg_catalog.octet_length(p_.p) "                    \
    "OPERATOR(pg_catalog.<) 7000 THEN p_.p ELSE 'R' END) FROM (SELECT " expr " AS p) p_"

/* The events of a statement that changes many rows, as few notifications as the payload
   limit allows: `lines` is a query of (p: the event's line, o: its order, the row's version);
   a line of 1000 bytes or more (only a row written by hand) becomes R. Lines go into chunks
   by their running byte count, so a payload stays under 6900 + 1000 bytes, below the 8000
   that pg_notify accepts; the chunks are sent in version order. (OFFSET 0 keeps each line
   computed once: flattened, its expression would be evaluated for every use.) Its value, the number of
   notifications, is written as an uncorrelated scalar subquery in the statement's select list:
   an init plan, evaluated once, and only when the statement returns a row. It may run on the
   caller's connection (schedule), so every name in it is qualified. */
#define PGSCHED__NOTIFY_BATCH(chan, lines)                                                        \
    "(SELECT pg_catalog.count(pg_catalog.pg_notify(" chan ", b_.p)) FROM (SELECT "              \
    "pg_catalog.string_agg(c_.p, E'\\n' ORDER BY c_.o) AS p FROM (SELECT l_.p, l_.o, "         \
    "pg_catalog.sum(pg_catalog.octet_length(l_.p) OPERATOR(pg_catalog.+) 1) OVER (ORDER BY "    \
    "l_.o ROWS UNBOUNDED PRECEDING) OPERATOR(pg_catalog./) 6900 AS k FROM (SELECT CASE WHEN "   \
    "pg_catalog.octet_length(r_.p) OPERATOR(pg_catalog.<) 1000 THEN r_.p ELSE 'R' END AS p, "   \
    "r_.o FROM (" lines " OFFSET 0) r_) l_) c_ GROUP BY c_.k ORDER BY c_.k) b_)"

/* The events of a statement that writes many rows, each line short (under 1000 bytes: the
   rows' names and keys come from checked requests), as PGSCHED__NOTIFY_BATCH sends them, but
   cheaper: `lines` (p: the line, o: its order, the row's version) is kept once, and the lines of
   versions v0 + k*per .. v0 + (k+1)*per - 1 go in notification k, where v0 is the batch's
   lowest version and per the number of its longest line (+ 1 for the newline) that fit in
   6900 bytes. Versions are distinct, so no payload exceeds 6900 bytes; notifications go in
   version order, their lines too. A chunk number by arithmetic where PGSCHED__NOTIFY_BATCH
   sorts the lines for a running byte count halves the cost of the events (lines of a batch
   are alike in length, so payloads stay nearly as full; versions taken by others meanwhile
   only make some shorter). Written, like it, as an init plan, every name qualified. */
#define PGSCHED__NOTIFY_BY_VERSION(chan, lines)                                                   \
    "(WITH l_ AS MATERIALIZED (" lines ") SELECT pg_catalog.count(pg_catalog.pg_notify(" chan   \
    ", b_.p)) FROM (SELECT pg_catalog.string_agg(l_.p, E'\\n' ORDER BY l_.o) AS p FROM l_, "    \
    "(SELECT pg_catalog.min(x_.o) AS v0, 6900 OPERATOR(pg_catalog./) "                           \
    "(pg_catalog.max(pg_catalog.octet_length(x_.p)) OPERATOR(pg_catalog.+) 1) AS per FROM l_ x_) " \
    "m_ GROUP BY (l_.o OPERATOR(pg_catalog.-) m_.v0) OPERATOR(pg_catalog./) m_.per ORDER BY "    \
    "(l_.o OPERATOR(pg_catalog.-) m_.v0) OPERATOR(pg_catalog./) m_.per) b_)"

/* Whether a running node wants every change of the cluster announced (it has on_status; a
   record of a library before version 4 counts as one). Only then do a claim, a take-back and
   an outcome that ends a run announce their changes: those events tell of a status, not of
   due work, and no other node reads them. Without this, each job made three commits that
   NOTIFY, and PostgreSQL lets one such commit at a time through a database-wide lock held
   across its flush; every listener of the cluster also read every event. What announces due
   work (a schedule, a trigger, a retry or next run, a cancel request) is always sent. A node
   that crashed counts until its record is cleaned up (node retention): announcing too much
   only costs time. Evaluated once per statement (an uncorrelated sub-select); only in
   statements of the library's own connections. */
#define PGSCHED__PG_WATCHED                                                                       \
    "EXISTS (SELECT 1 FROM {N} w_ WHERE w_.status_events AND w_.stopped_at IS NULL)"

/* The test "the row is running" of the statements that may run on the caller's connection. */
#define PGSCHED__PG_J_RUNNING "j.status OPERATOR(pg_catalog.=) 'running'"

/* What is wrong with a row (columns prefixed `a`) that a statement could not process, naming
   the bad value; `other` when it is none of the values the schema lets through. */
#define PGSCHED__PG_DIAGNOSIS(a, other)                                                           \
    "coalesce(CASE WHEN " a "runs = 9223372036854775807 THEN 'runs is ' || " a "runs::text || "   \
    "', the largest bigint' WHEN " a "failures = 9223372036854775807 THEN 'failures is ' || " a  \
    "failures::text || ', the largest bigint' WHEN " a "attempt >= 2147483647 THEN "            \
    "'attempt is ' || " a "attempt::text || ', the largest integer' WHEN " a "ch_kind IS NOT "  \
    "NULL AND " a "ch_kind NOT IN ('once', 'cron', 'interval', 'custom') THEN 'the deferred "   \
    "change has the unknown kind ' || quote_literal(" a "ch_kind) WHEN " a "ch_kind IS NOT "    \
    "NULL AND " a "ch_params IS NULL THEN 'the deferred change has NULL params' WHEN " a         \
    "ch_kind IS NOT NULL AND " a "ch_max_retries IS NULL THEN 'the deferred change has NULL "   \
    "max_retries' WHEN NOT isfinite(" a "next_run) THEN 'next_run is ' || " a "next_run::text " \
    "WHEN NOT isfinite(" a "ch_next_run) THEN 'the deferred next_run is ' || " a                \
    "ch_next_run::text WHEN NOT isfinite(" a "heartbeat_at) THEN 'heartbeat_at is ' || " a      \
    "heartbeat_at::text END, " other ")"

/* What migration 2 makes the schema refuse: a deferred change that no outcome could apply,
   and the infinite times that no statement can turn into a number. */
#define PGSCHED__PG_DEFERRED_VALID                                                                \
    "(ch_kind IS NULL OR (ch_kind IN ('once', 'cron', 'interval', 'custom') AND ch_params IS "  \
    "NOT NULL AND ch_max_retries IS NOT NULL))"
#define PGSCHED__PG_TIMES_FINITE                                                                  \
    "(isfinite(next_run) AND isfinite(ch_next_run) AND isfinite(heartbeat_at))"

/* Since when a running row has been silent: its heartbeat, or forever without one. */
#define PGSCHED__PG_SILENT_SINCE "coalesce(heartbeat_at, '-infinity'::timestamptz)"

/* "status = 'running'" in a look-up by key, written so that the partial indexes of running
   rows (whose predicate it would otherwise imply) are not candidates: with statistics taken
   while few rows ran, the planner would read every running row through one of them for each
   key instead of the primary key. Status values are ASCII, so the C collation changes no
   result. */
#define PGSCHED__IS_RUNNING(x) x ".status COLLATE \"C\" = 'running' "

/* The rows a CTE `c` has just locked, found again for its UPDATE by their tuple ids: the
   join by key alone gets a hash join over the whole table once the planner's generic guess of
   a LIMIT $n batch (a tenth of the rows) exceeds what an index look-up per row would cost.
   (A row whose lock followed a concurrent update to a version newer than the statement's
   snapshot is not found again: it stays as it was, unclaimed, and the lock ends at commit.) */
#define PGSCHED__BY_TID(c)                                                                        \
    "WHERE j.ctid = ANY (ARRAY(SELECT " c "_.tid FROM " c " " c "_)) AND j.ctid = " c ".tid "    \
    "AND j.name = " c ".name AND j.key = " c ".key "

/* The same for a batch whose size the planner never sees (FINISH: it guesses a few rows, in
   custom and generic plans alike), so that it looks each row up by its tuple id in a nested
   loop. Without the array of PGSCHED__BY_TID: in a nested loop, that array would be searched
   through for every row, a cost that grows with the square of the batch. */
#define PGSCHED__BY_OWN_TID(c)                                                                    \
    "WHERE j.ctid = " c ".tid AND j.name = " c ".name AND j.key = " c ".key "

/* The upsert's conflict branch, shared by the batch (SCHEDULE) and one-row (SCHEDULE_ONE)
   statements, so that both write exactly the same thing: a running row keeps what it runs and
   takes the new schedule as its deferred change (ch_*, applied by its outcome); any other row
   takes the new schedule at once, a pending row keeping the earlier of its two due times. A
   re-schedule, deferred or not, wins over an earlier remove of the running row. The version
   is taken here, after the row lock, not in the proposed row: one taken before waiting for a
   concurrent writer could be older than the one that writer stored. Each statement follows
   it with its own WHERE (which rows may change: not a running one, unless apply_after_run). */
#define PGSCHED__PG_SCHEDULE_UPSERT                                                               \
    "ON CONFLICT (name, key) DO UPDATE SET "                                                      \
    "kind = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.kind ELSE EXCLUDED.kind END, "             \
    "cron = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.cron ELSE EXCLUDED.cron END, "             \
    "every_us = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.every_us ELSE EXCLUDED.every_us END, " \
    "params = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.params ELSE EXCLUDED.params END, "       \
    "max_retries = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.max_retries "                       \
    "ELSE EXCLUDED.max_retries END, "                                                             \
    "attempt = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.attempt ELSE 0 END, "                   \
    "next_run = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.next_run "                             \
    "WHEN j.status OPERATOR(pg_catalog.=) 'pending' THEN LEAST(j.next_run, EXCLUDED.next_run) "   \
    "ELSE EXCLUDED.next_run END, "                                                                \
    "cancel_requested = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.cancel_requested "             \
    "ELSE false END, "                                                                            \
    "remove_requested = false, "                                                                  \
    "ch_kind = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN EXCLUDED.kind END, "                      \
    "ch_cron = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN EXCLUDED.cron END, "                      \
    "ch_every_us = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN EXCLUDED.every_us END, "              \
    "ch_params = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN EXCLUDED.params END, "                  \
    "ch_max_retries = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN EXCLUDED.max_retries END, "        \
    "ch_next_run = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN EXCLUDED.next_run END, "              \
    "status = CASE WHEN " PGSCHED__PG_J_RUNNING " THEN j.status ELSE 'pending' END, "             \
    "prev_status = j.status, "                                                                    \
    "version = pg_catalog.nextval('{Q}'::pg_catalog.regclass), updated_at = pg_catalog.now() "

/* Rule S7 for a row created again: the version of an inserted row is computed before the
   insert looks for a conflicting row, so one computed before waiting for a concurrent remove
   of the (name, key) would be older than the remove's. So the schedule statements first lock
   the requests' existing rows FOR KEY SHARE (lk, through the function {P}lock_keys of
   migration 4: it waits for a pending DELETE, and a later DELETE waits for it; other
   schedules are not held up, and the FOR UPDATE SKIP LOCKED of claims, heartbeats, outcomes
   and take-backs skips such a row for the moment, as it skipped a row under the upsert's
   own lock before), and the rows to insert are computed from lk's result, which is only
   there once every lock is taken. (A row that the statement's snapshot cannot see yet,
   created and removed by two others meanwhile, is not covered.) The look-up is in a function
   because there it is planned without sequential scans, also on the caller's connection:
   written in the statement, a generic plan made while the table was small keeps scanning it
   for each request once it has grown (a scan of 100,000 rows per single call), and the
   upsert's arbiter cannot be used to lock without inserting. */
#define PGSCHED__PG_SCHEDULE_LOCK_KEYS                                                            \
    "WITH lk AS (SELECT {S}.{I:lock_keys}($1::pg_catalog.text[], $2::pg_catalog.text[]) AS n), "

/* SCHEDULE's and SCHEDULE_NEW's insert of the requests' rows (see SCHEDULE). */
#define PGSCHED__PG_SCHEDULE_ROWS                                                                  \
    PGSCHED__PG_SCHEDULE_LOCK_KEYS                                                                 \
    "up AS (INSERT INTO {J} AS j (name, key, status, kind, cron, every_us, params, "               \
    "max_retries, attempt, next_run, version, created_at, updated_at) "                            \
    "SELECT i.name, i.key, 'pending', i.kind, i.cron, i.every_us, i.params::pg_catalog.json, "     \
    "i.max_retries, 0, COALESCE(i.next_run, pg_catalog.now() OPERATOR(pg_catalog.+) "              \
    "(i.delay_us OPERATOR(pg_catalog.*) interval '1 microsecond')), "                              \
    "pg_catalog.nextval('{Q}'::pg_catalog.regclass), pg_catalog.now(), pg_catalog.now() "          \
    "FROM (SELECT pg_catalog.unnest($1::pg_catalog.text[]) AS name, "                              \
    "pg_catalog.unnest($2::pg_catalog.text[]) AS key, "                                            \
    "pg_catalog.unnest($3::pg_catalog.text[]) AS kind, "                                           \
    "pg_catalog.unnest($4::pg_catalog.text[]) AS cron, "                                           \
    "pg_catalog.unnest($5::pg_catalog.int8[]) AS every_us, "                                       \
    "pg_catalog.unnest($6::pg_catalog.text[]) AS params, "                                         \
    "pg_catalog.unnest($7::pg_catalog.int4[]) AS max_retries, "                                    \
    "pg_catalog.unnest($8::pg_catalog.timestamptz[]) AS next_run, "                                \
    "pg_catalog.unnest($12::pg_catalog.int8[]) AS delay_us) i, lk "

/* What SCHEDULE and SCHEDULE_NEW return: the rows written. */
#define PGSCHED__PG_SCHEDULE_RETURN                                                                \
    "RETURNING j.name, j.key, j.status, j.next_run, j.version, j.prev_status) "                    \
    "SELECT up.name, up.key, up.status, up.next_run, up.version, up.prev_status"

/* Their events, a change line for each row written. */
#define PGSCHED__PG_SCHEDULE_CHANGES                                                               \
    PGSCHED__NOTIFY_BY_VERSION(                                                                    \
    "$11::pg_catalog.text",                                                                        \
    "SELECT pg_catalog.concat_ws(E'\\t', 'C', up.name, up.key, "                                   \
    "COALESCE(up.prev_status, 'none'), up.status, up.version::pg_catalog.text, "                   \
    "COALESCE($10::pg_catalog.text, ''), COALESCE(" PGSCHED__PG_US("up.next_run")                  \
    "::pg_catalog.text, '')) AS p, up.version AS o FROM up")

/* The due lines (D, see PGSCHED__NOTIFY) of the rows of `r` (name, status, next_run,
   version) left pending: one per job type, with its earliest due time, `node` the node named
   (an expression). A row without a due time (only one written by hand) hints nothing: left
   out, as its NULL would drop the line's last field. As the `lines` of PGSCHED__NOTIFY_BATCH
   and PGSCHED__NOTIFY_BY_VERSION; every name qualified (it also runs on the caller's
   connection). Used by SCHEDULE and FINISH. */
#define PGSCHED__PG_DUE_LINES(r, node)                                                             \
    "SELECT pg_catalog.concat_ws(E'\\t', 'D', " r ".name, " node ", "                              \
    PGSCHED__PG_US("pg_catalog.min(" r ".next_run)") "::pg_catalog.text) AS p, "                   \
    "pg_catalog.min(" r ".version) AS o FROM " r " WHERE " r ".status OPERATOR(pg_catalog.=) "     \
    "'pending' AND " r ".next_run IS NOT NULL GROUP BY " r ".name"

/* Their events while no node wants status events (PGSCHED__PG_WATCHED): then nobody reads them
   but as hints of due work, so one due line per job type of the batch, with its earliest due
   time among the rows left pending (D, see PGSCHED__NOTIFY), stands for the rows' change
   lines. Every line is read by every listener of the cluster: a batch of 5,000 new jobs sent
   5,000 lines that each listening backend forwarded and each node parsed, over a quarter of a
   bulk schedule's time on 2 cores. */
#define PGSCHED__PG_SCHEDULE_DUE                                                                   \
    PGSCHED__NOTIFY_BY_VERSION("$11::pg_catalog.text",                                             \
                               PGSCHED__PG_DUE_LINES("up", "COALESCE($10::pg_catalog.text, '')"))

/* SCHEDULE's and SCHEDULE_NEW's (the store's own connections): the change lines while a node
   watches, else the due lines. (Both CASE branches are init plans; only the one taken runs.) */
#define PGSCHED__PG_SCHEDULE_BACK_OWN                                                              \
    PGSCHED__PG_SCHEDULE_RETURN "{NOTIFY, CASE WHEN " PGSCHED__PG_WATCHED " THEN "                 \
    PGSCHED__PG_SCHEDULE_CHANGES " ELSE " PGSCHED__PG_SCHEDULE_DUE " END}" " FROM up"

/* SCHEDULE_TX's and SCHEDULE_NEW_TX's (the caller's connection, whose role need not read the
   nodes table): the same, told by $13 whether a node watches (Q_WATCHED, asked on the store's
   own connection just before). Either way, a node that starts watching between that look and
   the caller's commit misses these rows' changes, as it would those of a statement that
   looked itself (its look sees only what was committed when it ran). */
#define PGSCHED__PG_SCHEDULE_BACK                                                                  \
    PGSCHED__PG_SCHEDULE_RETURN "{NOTIFY, CASE WHEN $13::pg_catalog.bool THEN "                    \
    PGSCHED__PG_SCHEDULE_CHANGES " ELSE " PGSCHED__PG_SCHEDULE_DUE " END}" " FROM up"

/* SCHEDULE's upsert, up to its events (see SCHEDULE). */
#define PGSCHED__PG_SCHEDULE_HEAD                                                                  \
    PGSCHED__PG_SCHEDULE_ROWS                                                                      \
    PGSCHED__PG_SCHEDULE_UPSERT                                                                    \
    "WHERE j.status OPERATOR(pg_catalog.<>) 'running' OR ROW(j.name, j.key) "                      \
    "OPERATOR(pg_catalog.=) ANY (SELECT a.name, a.key FROM (SELECT "                               \
    "pg_catalog.unnest($1::pg_catalog.text[]) AS name, "                                           \
    "pg_catalog.unnest($2::pg_catalog.text[]) AS key, "                                            \
    "pg_catalog.unnest($9::pg_catalog.bool[]) AS after_run) a WHERE a.after_run) "

static const char *const pgsched__pg_templates[PGSCHED__Q_COUNT] = {
    /* NOW */
    "SELECT now()",

    /* SCHEDULE: $1 names[] $2 keys[] $3 kinds[] $4 crons[] $5 every_us[] $6 params[]
       $7 max_retries[] $8 next_runs[] (NULL = now + delay) $9 apply_after_run[] $10 node
       $11 channel $12 delay_us[].
       A delay is added to now() here, in the statement: the due time follows the database's
       clock (in the caller's transaction, its start), which the caller never reads.
       One row per request written, in no particular order (a join back to the requests would
       be a nested loop in a generic plan, which estimates one row per array); a request
       without its row was refused: a running row, apply_after_run false. No (name, key)
       comes twice (the wrapper sees to it), so the caller matches rows by (name, key).
       - Its form for the caller's connection, SCHEDULE_TX (pgsched_schedule_jobs_tx), runs
         under the caller's search path: every name in it is qualified (see the convention
         above), in the part shared with SCHEDULE too.
       - The upsert's conflict check through the primary key is its only look-up of the
         table besides lk's (in {P}lock_keys, planned without scans: see
         PGSCHED__PG_SCHEDULE_LOCK_KEYS), so no plan, generic or custom, made when the table
         held nothing or millions of rows, can turn it into a scan. The status the row had
         comes out of the upsert itself (prev_status; NULL when inserted), read under the
         row lock.
       - Rows are inserted in (name, key) order: two batches that overlap lock their common
         rows in the same order and cannot deadlock. The caller sends the arrays sorted
         (pgsched__pg_schedule_rows) and the rows are inserted straight from the arrays,
         which yield them in array order (no join, no sort, no parallel plan for a statement
         that writes); an ORDER BY here cost 5 % of the statement's time.
       - The arrays are unnested side by side in a select list (a ProjectSet, in step), not
         by ROWS FROM, whose function scan first copies every element into a tuple store:
         10 % of the statement's time.
       - The apply_after_run flags are looked up by a hashed subplan of the arrays, only when a
         running row conflicts (the requests are not materialised for it: 4 % of the time).
       - Its events go by PGSCHED__NOTIFY_BY_VERSION, for half what PGSCHED__NOTIFY_BATCH
         costs (a fifth of the statement's time, with notifications on). */
    PGSCHED__PG_SCHEDULE_HEAD,
    /* ... continued (PGSCHED__PG_SCHEDULE_BACK_OWN) in pgsched__pg_template_tail */

    /* SCHEDULE_NEW: SCHEDULE as a plain INSERT, for a batch of rows that do not exist yet (its
       parameters are SCHEDULE's). pgsched__pg_schedule_rows sends it first on the store's own
       connections while no earlier batch met an existing row; a batch that does fails whole
       on the primary key (SQLSTATE 23505: nothing written, the statement being its own
       transaction) and is sent again as SCHEDULE. What an upsert adds per row, the arbiter
       index's look-up before the insert and the speculative insertion lock, is a fifth of
       SCHEDULE's server time; for rows that do not exist both write the same rows, versions,
       result rows and events. On the caller's connection it goes only in batches of
       PGSCHED__PG_EXT_NEW_MIN rows or more and, in a transaction block, under a savepoint
       (its failure would otherwise abort the caller's transaction). Its look-ups of the table
       are lk's and the unique check of the insert itself. */
    PGSCHED__PG_SCHEDULE_ROWS,
    /* ... continued (PGSCHED__PG_SCHEDULE_BACK_OWN) in pgsched__pg_template_tail */

    /* SCHEDULE_TX and SCHEDULE_NEW_TX: SCHEDULE and SCHEDULE_NEW as sent on the caller's
       connection (pgsched__pg_ext_prepare): the same but for how their events learn whether a
       node watches: from $13 (see PGSCHED__PG_SCHEDULE_BACK), as the caller's role need not
       read the nodes table. */
    PGSCHED__PG_SCHEDULE_HEAD,
    PGSCHED__PG_SCHEDULE_ROWS,
    /* ... each continued (PGSCHED__PG_SCHEDULE_BACK) in pgsched__pg_template_tail */

    /* SCHEDULE_ONE: the one-request form of SCHEDULE (pgsched_schedule_job and _job_tx):
       $1 name $2 key $3 kind $4 cron $5 every_us $6 params $7 max_retries $8 next_run
       (NULL = now + delay) $9 apply_after_run $10 node $11 channel $12 delay_us, scalars
       (types in pgsched__pg_schedule_one_types). Same upsert, same row back, the same event;
       without SCHEDULE's arrays, CTE and batched notification (SCHEDULE as version 1.0.0 had
       it took 0.081 ms of server time for one request, this 0.058: pg_stat_statements, in
       turns). Its look-ups of the table are lk's (see PGSCHED__PG_SCHEDULE_LOCK_KEYS) and the
       conflict check through the primary key (no plan can turn either into a scan), and every
       name is qualified: it is also sent on the caller's connection. */
    "WITH lk AS (SELECT {S}.{I:lock_keys}($1::pg_catalog.text, $2::pg_catalog.text) AS n) "
    "INSERT INTO {J} AS j (name, key, status, kind, cron, every_us, params, max_retries, "
    "attempt, next_run, version, created_at, updated_at) "
    "SELECT $1::pg_catalog.text, $2::pg_catalog.text, 'pending', $3::pg_catalog.text, "
    "$4::pg_catalog.text, $5::pg_catalog.int8, $6::pg_catalog.text::pg_catalog.json, "
    "$7::pg_catalog.int4, 0, COALESCE($8::pg_catalog.timestamptz, pg_catalog.now() "
    "OPERATOR(pg_catalog.+) ($12::pg_catalog.int8 OPERATOR(pg_catalog.*) "
    "interval '1 microsecond')), pg_catalog.nextval('{Q}'::pg_catalog.regclass), "
    "pg_catalog.now(), pg_catalog.now() FROM lk "
    PGSCHED__PG_SCHEDULE_UPSERT
    "WHERE j.status OPERATOR(pg_catalog.<>) 'running' OR $9::pg_catalog.bool "
    "RETURNING j.name, j.key, j.status, j.next_run, j.version, j.prev_status"
    /* (in RETURNING: evaluated for the row written, and only then) */
    "{NOTIFY, (SELECT " PGSCHED__NOTIFY(
        "$11::pg_catalog.text",
        "pg_catalog.concat_ws(E'\\t', 'C', j.name, j.key, "
        "COALESCE(j.prev_status, 'none'), j.status, j.version::pg_catalog.text, "
        "COALESCE($10::pg_catalog.text, ''), COALESCE(" PGSCHED__PG_US("j.next_run")
        "::pg_catalog.text, ''))") ")}",

    /* CLAIM: $1 node $2 names[] $3 max $4 channel $5 lead_us. One row always comes back (the
       info row); claimed rows fill the job columns. A row claimed before its due time (within
       the lead) starts at its due time. Each type is read through its own
       (name, next_run) index range, so neither a million future rows nor a backlog of due
       rows of any type makes a claim slower: it touches at most max rows per type. */
    "WITH c AS (SELECT s.name, s.key, s.tid, nextval('{Q}') AS v FROM (SELECT l.name, l.key, "
    "l.tid FROM (SELECT DISTINCT unnest($2::text[]) AS name) n CROSS JOIN LATERAL "
    "(SELECT x.name, x.key, x.next_run, x.ctid AS tid FROM {J} x WHERE x.name = n.name "
    "AND x.status = 'pending' AND x.next_run <= now() + $5::int8 * interval '1 microsecond' "
    "ORDER BY x.next_run "
    "LIMIT $3::int4 FOR UPDATE SKIP LOCKED) l ORDER BY l.next_run LIMIT $3::int4) s), "
    "u AS (UPDATE {J} j SET status = 'running', owner = $1::text, ran_by = $1::text, "
    "lease = c.v, version = c.v, last_lease = NULL, "
    "attempt = j.attempt + 1, cancel_requested = false, started_at = GREATEST(now(), "
    "j.next_run), "
    "heartbeat_at = now(), updated_at = now() FROM c " PGSCHED__BY_TID("c")
    "RETURNING j.*), "
    /* next_due: the earliest pending row this claim did not take (the statement's snapshot
       still shows the claimed rows as pending, hence the test against c). The claimed rows
       are the first ones the index scan meets, so NOT IN (a hashed subplan, one look-up per
       row; no column here is NULL) rather than NOT EXISTS, which the planner made a nested
       loop anti-join reading c for each of them: a cost growing with the square of the
       claim, 266 x 133 comparisons for a claim of 266 rows. */
    "info AS (SELECT now() AS now, (SELECT min(t.next_run) FROM (SELECT DISTINCT "
    "unnest($2::text[]) AS name) n CROSS JOIN LATERAL (SELECT x.next_run FROM {J} x "
    "WHERE x.name = n.name AND x.status = 'pending' AND (x.name, x.key) NOT IN (SELECT "
    "c.name, c.key FROM c) ORDER BY x.next_run LIMIT 1) t) AS next_due) "
    "SELECT info.now, info.next_due, " PGSCHED__JOB_COLS("u.")
    "{NOTIFY, " PGSCHED__NOTIFY_BATCH(
        "$4::text", "SELECT concat_ws(E'\\t', 'C', u.name, u.key, 'pending', 'running', "
                    "u.version::text, $1::text, " PGSCHED__PG_US("u.next_run") "::text) AS p, "
                    "u.version AS o FROM u WHERE " PGSCHED__PG_WATCHED) "}"
    " FROM info LEFT JOIN u ON true ORDER BY u.next_run",

    /* HEARTBEAT: $1 node $2 names[] $3 keys[] $4 tokens[] $5 renew. Returns the held leases,
       each with whether it was renewed. Each lease is looked up by primary key (a lateral
       subquery the planner cannot turn into a scan of every running row), so the cost follows
       the number of leases, not the running rows of other nodes. A row another transaction
       has locked (a caller scheduling inside its own open transaction, say) is skipped, not
       waited for: it is reported held but not renewed, and the other leases are renewed all
       the same. */
    "WITH l AS (SELECT * FROM unnest($2::text[], $3::text[], $4::int8[]) AS l(name, key, token)), "
    "k AS (SELECT j.name, j.key FROM l CROSS JOIN LATERAL (SELECT x.name, x.key FROM {J} x "
    "WHERE x.name = l.name AND x.key = l.key AND x.lease = l.token AND " PGSCHED__IS_RUNNING("x")
    "AND x.owner = $1::text AND $5::bool FOR UPDATE SKIP LOCKED) j), "
    "h AS (UPDATE {J} j SET heartbeat_at = now() FROM k WHERE j.name = k.name AND j.key = k.key "
    "RETURNING j.name, j.key, j.cancel_requested, j.lease, true AS renewed), "
    "r AS (SELECT j.name, j.key, j.cancel_requested, j.lease, false AS renewed FROM l "
    "CROSS JOIN LATERAL (SELECT x.name, x.key, x.cancel_requested, x.lease FROM {J} x "
    "WHERE x.name = l.name AND x.key = l.key AND x.lease = l.token AND " PGSCHED__IS_RUNNING("x")
    "AND x.owner = $1::text OFFSET 0) j "
    "WHERE NOT EXISTS (SELECT 1 FROM k WHERE k.name = j.name AND k.key = j.key)), "
    "n AS (UPDATE {N} SET last_seen = now() WHERE id = $1::text RETURNING 1) "
    "SELECT now(), x.name, x.key, x.cancel_requested, x.lease, x.renewed FROM (SELECT 1) one "
    "LEFT JOIN (SELECT * FROM h UNION ALL SELECT * FROM r) x ON true",

    /* FINISH: $1 names[] $2 keys[] $3 tokens[] $4 outcomes[] $5 statuses[] $6 next_runs[]
       $7 delay_us[] $8 rules[] $9 errors[] $10 nodes[] $11 cancelled_statuses[]
       $12 cancelled_next_runs[] $13 channel $14 not_started[] (no history row).
       `cur` locks the rows whose lease still holds, skipping rows another transaction has
       locked (reported busy, written by a later call); `e` is what each outcome becomes
       (a cancel requested for the run wins over a failure, a stall or a release);
       everything else derives from it, so a stale token changes nothing, history included.
       An outcome that finds its lease already finished (last_lease) was recorded by an
       earlier call whose reply was lost: it is reported replayed, not lost. */
    /* The arrays reach unnest through a subquery kept apart (OFFSET 0): a custom plan then
       guesses the batch as small as a generic plan does, instead of counting a large one and
       choosing to read the whole table for the UPDATE and DELETE below. */
    "WITH o AS (SELECT o.* FROM (SELECT $1::text[] a, $2::text[] b, $3::int8[] c, "
    "$4::text[] d, $5::text[] e, $6::timestamptz[] f, $7::int8[] g, $8::int4[] h, $9::text[] i, "
    "$10::text[] k, $11::text[] l, $12::timestamptz[] m, $14::bool[] n OFFSET 0) p "
    "CROSS JOIN LATERAL unnest(p.a, p.b, p.c, p.d, p.e, p.f, p.g, p.h, p.i, p.k, p.l, p.m, p.n) "
    "WITH ORDINALITY AS o(name, key, token, "
    "outcome, status, next_at, delay_us, rule, error, node, c_status, c_next_at, quiet, idx)), "
    /* a lease named twice in one batch: the first outcome applies, the others replay it */
    "o1 AS (SELECT DISTINCT ON (name, key, token) * FROM o ORDER BY name, key, token, idx), "
    /* one primary-key look-up per outcome (see HEARTBEAT) */
    "cur AS (SELECT j.name, j.key, j.tid, j.attempt, j.started_at, j.remove_requested, "
    "j.cancel_requested, j.ran_by, o1.idx FROM o1 CROSS JOIN LATERAL (SELECT x.name, x.key, "
    "x.ctid AS tid, x.attempt, x.started_at, x.remove_requested, x.cancel_requested, "
    "x.ran_by FROM {J} x WHERE x.name = o1.name "
    "AND x.key = o1.key AND x.lease = o1.token AND " PGSCHED__IS_RUNNING("x")
    "FOR UPDATE SKIP LOCKED) j), "
    "e AS (SELECT cur.name, cur.key, cur.tid, cur.attempt, cur.started_at, "
    "cur.remove_requested, cur.idx, coalesce(cur.ran_by, o.node) AS ran_by, "
    "o.token, o.error, o.node, o.quiet, "
    "CASE WHEN x.cx THEN 'cancelled' ELSE o.outcome END AS outcome, "
    "CASE WHEN x.cx THEN o.c_status ELSE o.status END AS status, "
    "CASE WHEN x.cx THEN o.c_next_at ELSE o.next_at END AS next_at, "
    "CASE WHEN x.cx THEN 0 ELSE o.delay_us END AS delay_us, "
    "CASE WHEN x.cx THEN 0 ELSE o.rule END AS rule "
    "FROM cur JOIN o ON o.idx = cur.idx CROSS JOIN LATERAL (SELECT cur.cancel_requested "
    "AND o.c_status IS NOT NULL AND o.outcome IN ('failure', 'stalled', 'released') AS cx) x), "
    "del AS (DELETE FROM {J} j USING e " PGSCHED__BY_OWN_TID("e")
    "AND e.remove_requested RETURNING e.idx, j.name, nextval('{Q}') AS version, e.outcome, "
    "j.key, e.node), ",
    /* ... continued in pgsched__pg_template_tail and _end (C99 caps a literal at 4095 bytes) */

    /* TAKE_BACK: $1 node $2 stall_us $3 max $4 channel. The stall index hands over the
       running rows oldest heartbeat first (a running row without a heartbeat time, written by
       hand, is as silent as can be: first), so the statement reads the rows it takes back
       (and those others hold locked), not every running row. One row always comes back (the
       info row: now and the silent-since time of the oldest running row left in place, read
       through the same index, the rows taken back skipped); taken rows fill the job columns. */
    "WITH c AS (SELECT s.name, s.key, s.tid, nextval('{Q}') AS v FROM (SELECT name, key, "
    "ctid AS tid FROM {J} WHERE status = 'running' AND " PGSCHED__PG_SILENT_SINCE
    " < now() - $2::int8 * interval '1 microsecond' ORDER BY " PGSCHED__PG_SILENT_SINCE
    " LIMIT $3::int4 FOR UPDATE SKIP LOCKED) s), "
    "u AS (UPDATE {J} j SET owner = $1::text, lease = c.v, version = c.v, heartbeat_at = now(), "
    "last_lease = NULL, "
    "updated_at = now() FROM c " PGSCHED__BY_TID("c") "RETURNING j.*), "
    "info AS (SELECT now() AS now, (SELECT " PGSCHED__PG_SILENT_SINCE " FROM {J} x WHERE "
    "x.status = 'running' AND NOT EXISTS (SELECT 1 FROM c WHERE c.name = x.name AND "
    "c.key = x.key) ORDER BY " PGSCHED__PG_SILENT_SINCE " LIMIT 1) AS oldest) "
    "SELECT info.now, info.oldest, " PGSCHED__JOB_COLS("u.")
    "{NOTIFY, " PGSCHED__NOTIFY_BATCH("$4::text",
                                      "SELECT concat_ws(E'\\t', 'C', u.name, u.key, 'running', "
                                      "'running', u.version::text, $1::text, '') AS p, "
                                      "u.version AS o FROM u WHERE " PGSCHED__PG_WATCHED) "}"
    " FROM info LEFT JOIN u ON true",

    /* CANCEL: $1 name $2 key $3 node $4 channel.
       cur locks the row and reads its latest version; the change decides on cur's values,
       not on j's as the statement's snapshot saw them: a row that a concurrent claim or
       outcome changed after the snapshot would otherwise be skipped without a word (the
       same holds for trigger and remove below). */
    "WITH cur AS (SELECT status, kind, version FROM {J} WHERE name = $1::text AND key = $2::text "
    "FOR UPDATE), "
    "u AS (UPDATE {J} j SET "
    "cancel_requested = CASE WHEN cur.status = 'running' THEN true ELSE j.cancel_requested END, "
    "status = CASE WHEN cur.status = 'running' THEN 'running' ELSE 'cancelled' END, "
    "next_run = CASE WHEN cur.status = 'running' THEN j.next_run END, "
    "version = nextval('{Q}'), updated_at = now() FROM cur "
    "WHERE j.name = $1::text AND j.key = $2::text "
    "AND (cur.status = 'running' OR (cur.status = 'pending' AND cur.kind = 'once')) "
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
    "FROM cur WHERE j.name = $1::text AND j.key = $2::text AND cur.status = 'pending' "
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
    "version = nextval('{Q}'), updated_at = now() FROM cur WHERE j.name = $1::text "
    "AND j.key = $2::text AND cur.status = 'running' RETURNING j.owner, j.version), "
    "d AS (DELETE FROM {J} j USING cur WHERE j.name = $1::text AND j.key = $2::text "
    "AND cur.status <> 'running' RETURNING nextval('{Q}') AS version) "
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

    /* LIST: $1 name $2 status|NULL $3 after_name $4 after_key ('' and '': from the start;
       after_name without after_key: from the next name) $5 limit. LIST_ALL: the same for
       every name ($1 unused). A statement for each shape of the filter, rather than one
       with "$1 IS NULL OR ...", so that each one's generic plan (the sessions force it, see
       pgsched__pg_connect) reads its index by the conditions given.
       In LIST the index scan starts at the cursor through the key bound: with name = $1 the
       row comparison alone only filters the name's index entries from its first one, so a
       page deep into a large type read every entry before it (424 buffers for 10 rows 75,000
       keys in; 6 since). The bound is '' from the start, NULL (nothing) for "from the next
       name"; a cursor past the name reads nothing. */
    "SELECT " PGSCHED__JOB_COLS("") " FROM {J} WHERE name = $1::text "
    "AND key >= (CASE WHEN $3::text = $1::text THEN $4::text ELSE '' END) COLLATE \"C\" "
    "AND $3::text COLLATE \"C\" <= $1::text COLLATE \"C\" "
    "AND (name, key) > ($3::text COLLATE \"C\", $4::text COLLATE \"C\") "
    "AND ($2::text IS NULL OR status = $2::text) ORDER BY name, key LIMIT $5::int8",
    "SELECT " PGSCHED__JOB_COLS("") " FROM {J} "
    "WHERE (name, key) > ($3::text COLLATE \"C\", $4::text COLLATE \"C\") "
    "AND ($2::text IS NULL OR status = $2::text) ORDER BY name, key LIMIT $5::int8",

    /* HISTORY: $1 name $2 key $3 limit; HISTORY_NAME: every key of name $1 ($2 unused);
       HISTORY_ALL: every run ($1, $2 unused). (One statement per shape: see LIST.) */
    "SELECT id, name, key, node, attempt, started_at, finished_at, outcome, error FROM {R} "
    "WHERE name = $1::text AND key = $2::text ORDER BY id DESC LIMIT $3::int8",
    "SELECT id, name, key, node, attempt, started_at, finished_at, outcome, error FROM {R} "
    "WHERE name = $1::text ORDER BY id DESC LIMIT $3::int8",
    "SELECT id, name, key, node, attempt, started_at, finished_at, outcome, error FROM {R} "
    "ORDER BY id DESC LIMIT $3::int8",

    /* NEXT_DUE: $1 names[] */
    "SELECT now(), (SELECT min(t.next_run) FROM unnest($1::text[]) AS n(name) CROSS JOIN LATERAL "
    "(SELECT x.next_run FROM {J} x WHERE x.name = n.name AND x.status = 'pending' "
    "ORDER BY x.next_run LIMIT 1) t)",

    /* NODE_REGISTER: $1 id $2 host $3 pid $4 names[] $5 status_events */
    "INSERT INTO {N} (id, host, pid, names, started_at, last_seen, status_events) "
    "VALUES ($1::text, $2::text, $3::int8, $4::text[], now(), now(), $5::bool) "
    "ON CONFLICT (id) DO UPDATE "
    "SET host = EXCLUDED.host, pid = EXCLUDED.pid, names = EXCLUDED.names, last_seen = now(), "
    "stopped_at = NULL, status_events = EXCLUDED.status_events",

    /* NODE_UNREGISTER: $1 id. The row stays (with its types) until CLEAN_NODES: a type that
       a node registered recently is not an orphan, however briefly no node is up. */
    "UPDATE {N} SET last_seen = now(), stopped_at = now() WHERE id = $1::text",

    /* CLEANUP: $1 finished_us $2 history_us $3 node_us $4 orphan_us (each NULL = skip that
       part) $5 limit $6 node. One statement (an idle node's clean-up is one round trip a
       minute, not four); its parts see one snapshot, as the separate statements they were
       would have seen nearly the same: finished one-time rows past their retention, history
       past its retention, records of nodes not seen for node_us (never this node's), and
       orphans. A type is dead when no node, live or stopped, registered it within the orphan
       timeout: a deploy that stops every node of a type for a while deletes nothing. The
       distinct names come from a skip scan of the primary key, so the cost follows the number
       of types, not of rows. A row both a finished and an orphan part pick is deleted once. */
    "WITH RECURSIVE f AS (DELETE FROM {J} j USING (SELECT name, key FROM {J} WHERE "
    "$1::int8 IS NOT NULL AND kind = 'once' AND status IN ('completed', 'failed', 'cancelled') "
    "AND updated_at < now() - $1::int8 * interval '1 microsecond' LIMIT $5::int8 "
    "FOR UPDATE SKIP LOCKED) d WHERE j.name = d.name AND j.key = d.key RETURNING 1), "
    "h AS (DELETE FROM {R} WHERE id IN (SELECT id FROM {R} WHERE $2::int8 IS NOT NULL AND "
    "finished_at < now() - $2::int8 * interval '1 microsecond' LIMIT $5::int8) RETURNING 1), "
    "nd AS (DELETE FROM {N} WHERE $3::int8 IS NOT NULL AND "
    "last_seen < now() - $3::int8 * interval '1 microsecond' AND id <> $6::text RETURNING 1), "
    "names AS ((SELECT name FROM {J} WHERE $4::int8 IS NOT NULL ORDER BY name LIMIT 1) "
    "UNION ALL SELECT (SELECT name FROM {J} x WHERE x.name > names.name ORDER BY x.name "
    "LIMIT 1) FROM names WHERE names.name IS NOT NULL), "
    "dead AS (SELECT names.name FROM names WHERE names.name IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM {N} n WHERE n.last_seen >= now() - $4::int8 * interval '1 microsecond' "
    "AND names.name = ANY(n.names))), "
    "v AS (SELECT j.name, j.key FROM {J} j JOIN dead ON dead.name = j.name "
    "WHERE j.status <> 'running' AND j.updated_at < now() - $4::int8 * interval '1 microsecond' "
    "LIMIT $5::int8 FOR UPDATE OF j SKIP LOCKED), "
    "o AS (DELETE FROM {J} j USING v WHERE j.name = v.name AND j.key = v.key RETURNING 1) "
    "SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM h), (SELECT count(*) FROM nd), "
    "(SELECT count(*) FROM o)",

    /* QUARANTINE: $1 name $2 key $3 token (NULL: a pending row) $4 why $5 node $6 channel.
       A row whose values the other statements cannot process (written by hand or by another
       tool) is taken out of circulation: failed, its lease and deferred change dropped,
       last_error naming the bad value. It touches no column that could be the bad one. */
    "WITH cur AS (SELECT status FROM {J} WHERE name = $1::text AND key = $2::text "
    "AND CASE WHEN $3::int8 IS NULL THEN status = 'pending' ELSE status = 'running' "
    "AND lease = $3::int8 END FOR UPDATE), "
    "u AS (UPDATE {J} j SET status = 'failed', owner = NULL, lease = NULL, "
    "last_lease = j.lease, heartbeat_at = NULL, next_run = NULL, finished_at = now(), "
    "cancel_requested = false, remove_requested = false, ch_kind = NULL, ch_cron = NULL, "
    "ch_every_us = NULL, ch_params = NULL, ch_max_retries = NULL, ch_next_run = NULL, "
    "last_error = 'quarantined: ' || " PGSCHED__PG_DIAGNOSIS("j.", "$4::text") ", "
    "version = nextval('{Q}'), updated_at = now() FROM cur "
    "WHERE j.name = $1::text AND j.key = $2::text RETURNING j.version, j.last_error) "
    "SELECT cur.status, u.version, u.last_error"
    "{NOTIFY, (SELECT " PGSCHED__NOTIFY("$6::text",
                                        "concat_ws(E'\\t', 'C', $1::text, $2::text, cur.status, "
                                        "'failed', u.version::text, $5::text, '')") ")}"
    " FROM cur JOIN u ON true",

    /* QUARANTINE_DUE: $1 names[] $2 limit. The due rows of the types that would make a
       claim fail (attempt would overflow, an infinite due time), by name and key, for
       QUARANTINE to take out one by one. */
    "SELECT x.name, x.key FROM (SELECT DISTINCT unnest($1::text[]) AS name) n CROSS JOIN "
    "LATERAL (SELECT x.name, x.key FROM {J} x WHERE x.name = n.name AND x.status = 'pending' "
    "AND x.next_run <= now() AND (x.attempt >= 2147483647 OR NOT isfinite(x.next_run)) "
    "LIMIT $2::int4) x",

    /* CONFIRM: $1 names[] $2 keys[]. The status and version of each row a batch of
       notifications names (read by the listener, on a pool connection): a notification only
       says where to look. */
    /* (parenthesized: clang takes a lone two-piece literal here for a missing comma) */
    ("SELECT l.i, j.status, j.version FROM unnest($1::text[], $2::text[]) WITH ORDINALITY "
     "AS l(name, key, i) LEFT JOIN {J} j ON j.name = l.name AND j.key = l.key"),

    /* WATCHED: whether a node wants status events, for a batch in the caller's transaction
       (see PGSCHED__PG_SCHEDULE_BACK) */
    "SELECT " PGSCHED__PG_WATCHED,
};

/* The second half of a statement too long for one C99 string literal. */
static const char *pgsched__pg_template_tail(int q)
{
    switch (q) {
    case PGSCHED__Q_SCHEDULE:
    case PGSCHED__Q_SCHEDULE_NEW: return PGSCHED__PG_SCHEDULE_BACK_OWN;
    case PGSCHED__Q_SCHEDULE_TX:
    case PGSCHED__Q_SCHEDULE_NEW_TX: return PGSCHED__PG_SCHEDULE_BACK;
    case PGSCHED__Q_FINISH:
        return
            "upd AS (UPDATE {J} j SET "
            "status = CASE WHEN j.ch_kind IS NOT NULL THEN 'pending' ELSE e.status END, "
            "next_run = CASE WHEN j.ch_kind IS NOT NULL AND e.status = 'pending' THEN "
            "LEAST(j.ch_next_run, "
            "coalesce(e.next_at, now() + e.delay_us * interval '1 microsecond')) "
            "WHEN j.ch_kind IS NOT NULL THEN j.ch_next_run "
            "WHEN e.status = 'pending' THEN coalesce(e.next_at, now() + e.delay_us * interval "
            "'1 microsecond') ELSE NULL END, "
            "attempt = CASE WHEN j.ch_kind IS NOT NULL OR e.rule = 0 THEN 0 "
            "WHEN e.rule = 2 THEN greatest(j.attempt - 1, 0) ELSE j.attempt END, "
            "kind = coalesce(j.ch_kind, j.kind), "
            "cron = CASE WHEN j.ch_kind IS NOT NULL THEN j.ch_cron ELSE j.cron END, "
            "every_us = CASE WHEN j.ch_kind IS NOT NULL THEN j.ch_every_us ELSE j.every_us END, "
            "params = CASE WHEN j.ch_kind IS NOT NULL THEN j.ch_params ELSE j.params END, "
            "max_retries = CASE WHEN j.ch_kind IS NOT NULL THEN j.ch_max_retries "
            "ELSE j.max_retries END, "
            "ch_kind = NULL, ch_cron = NULL, ch_every_us = NULL, ch_params = NULL, "
            "ch_max_retries = NULL, ch_next_run = NULL, "
            "runs = j.runs + CASE WHEN e.outcome = 'released' THEN 0 ELSE 1 END, "
            "failures = j.failures + CASE WHEN e.outcome IN ('failure', 'stalled') THEN 1 "
            "ELSE 0 END, "
            "last_error = CASE WHEN e.outcome IN ('failure', 'stalled') AND e.error IS NOT NULL "
            "THEN e.error ELSE j.last_error END, "
            "finished_at = now(), owner = NULL, lease = NULL, last_lease = e.token, "
            "heartbeat_at = NULL, "
            "cancel_requested = false, version = nextval('{Q}'), updated_at = now() "
            "FROM e " PGSCHED__BY_OWN_TID("e")
            "AND NOT e.remove_requested "
            "RETURNING e.idx, j.status, j.next_run, j.version, e.outcome, j.name, j.key, "
            "e.node), "
            /* History only for the outcomes written: a row locked after a concurrent update
               committed (a cancel request, a re-schedule) is the newer version, which the
               statement's snapshot cannot see, so the UPDATE or DELETE by tuple id leaves it
               alone; that outcome is busy, retried by a later statement, and must not leave a
               history row behind a row still running. */
            "w AS (SELECT idx FROM upd UNION ALL SELECT idx FROM del), "
            "hist AS (INSERT INTO {R} (id, name, key, node, attempt, started_at, finished_at, "
            "outcome, error) SELECT nextval('{Q}'), e.name, e.key, e.ran_by, e.attempt, "
            "e.started_at, now(), e.outcome, e.error FROM e WHERE e.idx IN (SELECT idx FROM w) "
            "AND NOT e.quiet) ";
    }
    return "";
}

/* The end of a statement whose tail would pass C99's 4095 bytes (see pgsched__pg_template_tail):
   FINISH's result and events. "" for every other statement. */
static const char *pgsched__pg_template_end(int q)
{
    switch (q) {
    case PGSCHED__Q_FINISH:
        return
            "SELECT o.idx, coalesce(upd.status, CASE WHEN del.name IS NOT NULL THEN 'none' END), "
            "upd.next_run, coalesce(upd.version, del.version), coalesce(upd.outcome, del.outcome), "
            "CASE WHEN upd.idx IS NULL AND del.name IS NULL THEN "
            "CASE WHEN now_.last_lease = o.token OR EXISTS (SELECT 1 FROM e JOIN w ON w.idx = e.idx "
            "WHERE e.name = o.name AND e.key = o.key AND e.token = o.token) THEN 'replayed' "
            "WHEN now_.lease = o.token AND now_.running THEN 'busy' END END"
            /* While a node watches, a change line for every row written; else only what
               tells of due work: a due line per job type for the rows pending again (retries,
               next runs of cron and interval jobs), with the earliest of their due times, as
               SCHEDULE sends them (PGSCHED__PG_DUE_LINES). (Both CASE branches are init plans;
               only the one taken runs.) */
            "{NOTIFY, CASE WHEN " PGSCHED__PG_WATCHED " THEN " PGSCHED__NOTIFY_BATCH(
                "$13::text", "SELECT concat_ws(E'\\t', 'C', x.name, x.key, 'running', x.status, "
                             "x.version::text, x.node, coalesce(" PGSCHED__PG_US("x.next_run")
                             "::text, '')) AS p, x.version AS o FROM (SELECT upd.name, upd.key, "
                             "upd.status, upd.version, upd.node, upd.next_run FROM upd UNION ALL "
                             "SELECT del.name, del.key, 'none', del.version, del.node, NULL "
                             "FROM del) x") " ELSE " PGSCHED__NOTIFY_BATCH(
                "$13::text", PGSCHED__PG_DUE_LINES("upd", "coalesce(pg_catalog.min(upd.node), '')")) " END}"
            " FROM o LEFT JOIN upd ON upd.idx = o.idx "
            "LEFT JOIN del ON del.idx = o.idx "
            /* what became of a row this call did not write: looked up by key, and only then */
            "LEFT JOIN LATERAL (SELECT x.last_lease, x.lease, " PGSCHED__IS_RUNNING("x")
            "AS running FROM {J} x WHERE upd.idx IS NULL AND del.name IS NULL "
            "AND x.name = o.name AND x.key = o.key OFFSET 0) now_ ON true ORDER BY o.idx";
    }
    return "";
}

static const char *const pgsched__pg_stmt_names[PGSCHED__Q_COUNT] = {
    "pgsched_now", "pgsched_schedule", "pgsched_schedule_new", "pgsched_schedule_tx",
    "pgsched_schedule_new_tx", "pgsched_schedule_one",
    "pgsched_claim",
    "pgsched_heartbeat", "pgsched_finish", "pgsched_take_back", "pgsched_cancel", "pgsched_trigger",
    "pgsched_remove", "pgsched_get", "pgsched_list", "pgsched_list_all", "pgsched_history",
    "pgsched_history_name", "pgsched_history_all",
    "pgsched_next_due", "pgsched_node_register", "pgsched_node_unregister",
    "pgsched_cleanup", "pgsched_quarantine", "pgsched_quarantine_due", "pgsched_confirm",
    "pgsched_watched",
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
    " last_lease bigint," /* the lease whose outcome was recorded last */
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
    " last_seen timestamptz NOT NULL,"
    " stopped_at timestamptz"
    ");";

/* Migration 2: the jobs table refuses what no statement can process. Rows already holding
   such values (written by hand, by other tools) are first quarantined as a node would at run
   time (status failed, lease and deferred change dropped, last_error naming the value), so
   the constraints are validated at once. NOT VALID constraints were the alternative, but they
   still apply to every later UPDATE of an old bad row, the quarantine included, which would
   then fail: repairing first leaves no row that no statement can touch. Counters and the
   attempt are not bounded here: a CHECK below the type's limit only moves the failure of the
   increment to the bound; such rows are quarantined at run time instead. */
static const char *const pgsched__pg_migration_2 =
    "UPDATE {J} j SET status = 'failed', owner = NULL, lease = NULL, last_lease = j.lease, "
    "heartbeat_at = NULL, next_run = NULL, finished_at = now(), cancel_requested = false, "
    "remove_requested = false, ch_kind = NULL, ch_cron = NULL, ch_every_us = NULL, "
    "ch_params = NULL, ch_max_retries = NULL, ch_next_run = NULL, "
    "last_error = 'quarantined by the upgrade to schema version 2: ' || "
    PGSCHED__PG_DIAGNOSIS("j.", "'a value the schema now refuses'") ", "
    "version = nextval('{Q}'), updated_at = now() "
    "WHERE " PGSCHED__PG_DEFERRED_VALID " IS FALSE OR " PGSCHED__PG_TIMES_FINITE " IS FALSE;"
    "ALTER TABLE {J} ADD CONSTRAINT {I:jobs_deferred} CHECK " PGSCHED__PG_DEFERRED_VALID ", "
    "ADD CONSTRAINT {I:jobs_finite} CHECK " PGSCHED__PG_TIMES_FINITE ";"
    /* the status a row had before a schedule's upsert, so that the upsert reports it without
       a second look-up of the row (see SCHEDULE); meaningless between schedules */
    "ALTER TABLE {J} ADD COLUMN IF NOT EXISTS prev_status text;"
    /* the node that ran the current attempt (set by a claim, kept by a take-back): the
       history row of a stall names it, not the node that took the row back */
    "ALTER TABLE {J} ADD COLUMN IF NOT EXISTS ran_by text;"
    /* Heartbeats and outcomes look their leases up by primary key, so the owner index of
       running rows goes; take-back reads running rows by heartbeat age instead of sorting
       all of them. (Heartbeat updates are no longer HOT; a row is heartbeaten only while its
       run lasts longer than a heartbeat interval.) */
    "DROP INDEX IF EXISTS {S}.{I:jobs_running};"
    "CREATE INDEX IF NOT EXISTS {I:jobs_stall} ON {J} (" PGSCHED__PG_SILENT_SINCE ") WHERE status = 'running';";

/* Migration 2 also creates the SQL functions {P}schedule, {P}trigger, {P}cancel and
   {P}unschedule (and their helpers) in the schema, so that psql or a program in any language
   can change jobs inside its own transaction (migration 3 renames {P}unschedule {P}remove). They write what the statements above write and
   send the same notifications (node ""), run as the caller (SECURITY INVOKER: no privilege
   beyond EXECUTE and the caller's rows), and pin search_path. EXECUTE is revoked from PUBLIC:
   grant it to the roles that schedule. Cron: the first run is computed in SQL
   ({P}cron_next), for the five-field grammar in UTC (numbers, names, *, ?, ranges, steps,
   lists, the day rule, the @ macros but @every); an expression it does not compute (CRON_TZ=,
   seconds, L, W, #) is refused with a message that says so, never stored unchecked: a node
   that read it later would compute a different first run, or fail the row. The text is kept
   in pieces (C99 caps a literal at 4095 bytes) and joined by pgsched__pg_migration_text. */
static const char *const pgsched__pg_functions[] = {
    "CREATE OR REPLACE FUNCTION {S}.{I:cron_value}(tok text, lo int, hi int, what text, names text[]) RETURNS int\n"
    "LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $f$\n"
    "DECLARE i int;\n"
    "BEGIN\n"
    "  IF tok ~ '^[0-9]{1,3}$' THEN\n"
    "    IF tok::int < lo OR tok::int > hi THEN\n"
    "      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: cron %s: %s is outside %s..%s', what, tok, lo, hi);\n"
    "    END IF;\n"
    "    RETURN tok::int;\n"
    "  END IF;\n"
    "  i := array_position(names, upper(tok));\n"
    "  IF i IS NOT NULL THEN RETURN i - 1 + lo; END IF;\n"
    "  IF tok ~ '[LW#]' THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = format('pgsched: cron %s: \"%s\" (L, W, #) is not computed by the SQL functions; schedule it with pgschedctl or the C API', what, tok);\n"
    "  END IF;\n"
    "  RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: cron %s: \"%s\" is not a number%s', what, tok, CASE WHEN names IS NULL THEN '' ELSE ' or a name' END);\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:cron_field}(f text, lo int, hi int, what text, names text[]) RETURNS int[]\n"
    "LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $f$\n"
    "DECLARE part text; r text; m text[]; step int; a int; b int; v int; vals int[] := '{}';\n"
    "  dow bool := what = 'day-of-week'; top int := CASE WHEN what = 'day-of-week' THEN 6 ELSE hi END;\n"
    "  nvals int := CASE WHEN what = 'day-of-week' THEN 7 ELSE hi - lo + 1 END;\n"
    "BEGIN\n"
    "  IF f = '' THEN RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: cron %s is empty', what); END IF;\n"
    "  FOREACH part IN ARRAY string_to_array(f, ',') LOOP\n"
    "    step := NULL;\n"
    "    r := part;\n"
    "    IF part LIKE '%/%' THEN\n"
    "      m := regexp_match(part, '^([^/]+)/([0-9]{1,3})$');\n"
    "      IF m IS NULL THEN\n"
    "        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: cron %s: \"%s\" has no valid step', what, part);\n"
    "      END IF;\n"
    "      r := m[1];\n"
    "      step := m[2]::int;\n"
    "      IF step < 1 OR step > nvals THEN\n"
    "        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: cron %s: the step of \"%s\" is outside 1..%s', what, part, nvals);\n"
    "      END IF;\n"
    "    END IF;\n"
    "    IF r = '*' OR (r = '?' AND what IN ('day-of-month', 'day-of-week')) THEN\n"
    "      a := lo; b := top;\n"
    "    ELSIF r ~ '^[^-]+-[^-]+$' THEN\n"
    "      a := {S}.{I:cron_value}(split_part(r, '-', 1), lo, hi, what, names);\n"
    "      b := {S}.{I:cron_value}(split_part(r, '-', 2), lo, hi, what, names);\n"
    "      IF dow AND b = 0 AND a > 0 THEN b := 7; END IF; /* FRI-SUN */\n"
    "      IF a > b THEN\n"
    "        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: cron %s: the range \"%s\" runs backwards', what, r);\n"
    "      END IF;\n"
    "    ELSE\n"
    "      a := {S}.{I:cron_value}(r, lo, hi, what, names);\n"
    "      IF dow AND a = 7 AND step IS NOT NULL THEN a := 0; END IF;\n"
    "      b := CASE WHEN step IS NULL THEN a ELSE top END;\n"
    "    END IF;\n"
    "    v := a;\n"
    "    WHILE v <= b LOOP\n"
    "      vals := vals || CASE WHEN dow AND v = 7 THEN 0 ELSE v END;\n"
    "      v := v + coalesce(step, 1);\n"
    "    END LOOP;\n"
    "  END LOOP;\n"
    "  RETURN ARRAY(SELECT DISTINCT x FROM unnest(vals) x ORDER BY x);\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:cron_next}(expr text, after timestamptz) RETURNS timestamptz\n"
    "LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $f$\n"
    "DECLARE e text := lower(btrim(expr, E' \\t')); f text[]; mins int[]; hrs int[]; doms int[];\n"
    "  mons int[]; dows int[]; dom_any bool; dow_any bool; t timestamp; d date; h int; mi int;\n"
    "  i int; day_ok bool;\n"
    "BEGIN\n"
    "  e := CASE e WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *'\n"
    "    WHEN '@monthly' THEN '0 0 1 * *' WHEN '@weekly' THEN '0 0 * * 0'\n"
    "    WHEN '@daily' THEN '0 0 * * *' WHEN '@midnight' THEN '0 0 * * *'\n"
    "    WHEN '@hourly' THEN '0 * * * *' ELSE btrim(expr, E' \\t') END;\n"
    "  IF e ~* '^cron_tz=' OR e ~ '^@' THEN\n",
    "    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = format('pgsched: cron \"%s\": CRON_TZ= and @every are not computed by the SQL functions (give every => instead of @every); schedule it with pgschedctl or the C API', expr);\n"
    "  END IF;\n"
    "  f := regexp_split_to_array(e, E'[ \\t]+');\n"
    "  IF array_length(f, 1) = 6 THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = format('pgsched: cron \"%s\": a seconds field is not computed by the SQL functions; schedule it with pgschedctl or the C API', expr);\n"
    "  END IF;\n"
    "  IF array_length(f, 1) <> 5 THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: cron \"%s\" has %s fields; it needs 5 (minute hour day-of-month month day-of-week)', expr, coalesce(array_length(f, 1), 0));\n"
    "  END IF;\n"
    "  mins := {S}.{I:cron_field}(f[1], 0, 59, 'minute', NULL);\n"
    "  hrs := {S}.{I:cron_field}(f[2], 0, 23, 'hour', NULL);\n"
    "  doms := {S}.{I:cron_field}(f[3], 1, 31, 'day-of-month', NULL);\n"
    "  mons := {S}.{I:cron_field}(f[4], 1, 12, 'month', ARRAY['JAN','FEB','MAR','APR','MAY','JUN','JUL','AUG','SEP','OCT','NOV','DEC']);\n"
    "  dows := {S}.{I:cron_field}(f[5], 0, 7, 'day-of-week', ARRAY['SUN','MON','TUE','WED','THU','FRI','SAT']);\n"
    "  dom_any := f[3] IN ('*', '?');\n"
    "  dow_any := f[5] IN ('*', '?');\n"
    "  t := date_trunc('minute', after AT TIME ZONE 'UTC') + interval '1 minute';\n"
    "  d := t::date;\n"
    "  /* 9 years cover every date a valid expression names (Feb 29 skips 2100) */\n"
    "  FOR i IN 0 .. 9 * 366 LOOP\n"
    "    IF extract(month FROM d)::int = ANY (mons) THEN\n"
    "      IF dom_any AND dow_any THEN day_ok := true;\n"
    "      ELSIF dom_any THEN day_ok := extract(dow FROM d)::int = ANY (dows);\n"
    "      ELSIF dow_any THEN day_ok := extract(day FROM d)::int = ANY (doms);\n"
    "      ELSE day_ok := extract(day FROM d)::int = ANY (doms) OR extract(dow FROM d)::int = ANY (dows);\n"
    "      END IF;\n"
    "      IF day_ok THEN\n"
    "        FOREACH h IN ARRAY hrs LOOP\n"
    "          IF d > t::date OR h >= extract(hour FROM t)::int THEN\n"
    "            FOREACH mi IN ARRAY mins LOOP\n"
    "              IF d > t::date OR h > extract(hour FROM t)::int OR mi >= extract(minute FROM t)::int THEN\n"
    "                RETURN (d + make_time(h, mi, 0)) AT TIME ZONE 'UTC';\n"
    "              END IF;\n"
    "            END LOOP;\n"
    "          END IF;\n"
    "        END LOOP;\n"
    "      END IF;\n"
    "    END IF;\n"
    "    d := d + 1;\n"
    "  END LOOP;\n"
    "  RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: cron \"%s\" can never match', expr);\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:check_job}(name text, key text) RETURNS void\n"
    "LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $f$\n"
    "BEGIN\n"
    "  IF name IS NULL OR octet_length(name) = 0 OR octet_length(name) > 128 THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: the job name must be 1 to 128 bytes, got %s', coalesce(octet_length(name)::text, 'NULL'));\n"
    "  END IF;\n"
    "  IF key IS NULL OR octet_length(key) = 0 OR octet_length(key) > 256 THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: the job key must be 1 to 256 bytes, got %s', coalesce(octet_length(key)::text, 'NULL'));\n"
    "  END IF;\n"
    "  IF name ~ '[\\x01-\\x1f\\x7f]' OR key ~ '[\\x01-\\x1f\\x7f]' THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: the job %s/%s contains a control character', name, key);\n"
    "  END IF;\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:schedule}(name text, key text, cron text DEFAULT NULL,\n"
    "  every interval DEFAULT NULL, run_at timestamptz DEFAULT NULL, params json DEFAULT NULL,\n"
    "  max_retries integer DEFAULT 3, after_run boolean DEFAULT false) RETURNS timestamptz\n"
    "LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $f$\n"
    "#variable_conflict use_column\n"
    "DECLARE v_kind text := 'once'; v_cron text; v_every int8; v_first timestamptz;\n"
    "  v_params json := coalesce($6, '{}'::json); r record;\n"
    "BEGIN\n"
    "  PERFORM {S}.{I:check_job}($1, $2);\n",
    "  IF $3 IS NOT NULL AND $4 IS NOT NULL THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'pgsched: give cron or every, not both';\n"
    "  END IF;\n"
    "  IF $5 IS NOT NULL AND (NOT isfinite($5) OR $5 < '1900-01-01T00:00:00Z' OR $5 >= '10000-01-01T00:00:00Z') THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: run_at %s is outside years 1900..9999', $5);\n"
    "  END IF;\n"
    "  IF $7 IS NULL OR $7 < 0 OR $7 > 1000000 THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: max_retries %s is outside 0..1000000', coalesce($7::text, 'NULL'));\n"
    "  END IF;\n"
    "  IF octet_length(v_params::text) > 1048576 THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'pgsched: the parameters exceed 1048576 bytes';\n"
    "  END IF;\n"
    "  IF $3 IS NOT NULL THEN\n"
    "    IF octet_length($3) > 1024 THEN\n"
    "      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'pgsched: the cron expression exceeds 1024 bytes';\n"
    "    END IF;\n"
    "    v_kind := 'cron';\n"
    "    v_cron := $3;\n"
    "    v_first := coalesce($5, {S}.{I:cron_next}($3, now()));\n"
    "  ELSIF $4 IS NOT NULL THEN\n"
    "    IF extract(year FROM $4) <> 0 OR extract(month FROM $4) <> 0 THEN\n"
    "      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: every %s has months or years, which are not a fixed duration; give days', $4);\n"
    "    END IF;\n"
    "    v_every := (extract(epoch FROM $4) * 1000000)::int8;\n"
    "    IF v_every <= 0 OR v_every > 3162240000000000 THEN\n"
    "      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('pgsched: every %s must be positive and at most 100 years', $4);\n"
    "    END IF;\n"
    "    v_kind := 'interval';\n"
    "    v_first := coalesce($5, now() + v_every * interval '1 microsecond');\n"
    "  ELSE\n"
    "    v_first := coalesce($5, now());\n"
    "  END IF;\n"
    "  WITH prev AS (SELECT status FROM {J} WHERE name = $1 AND key = $2),\n"
    "  up AS (INSERT INTO {J} AS j (name, key, status, kind, cron, every_us, params, max_retries,\n"
    "    attempt, next_run, version, created_at, updated_at)\n"
    "    VALUES ($1, $2, 'pending', v_kind, v_cron, v_every, v_params, $7, 0, v_first,\n"
    "      nextval('{Q}'), now(), now())\n"
    "    ON CONFLICT (name, key) DO UPDATE SET\n"
    "    kind = CASE WHEN j.status = 'running' THEN j.kind ELSE EXCLUDED.kind END,\n"
    "    cron = CASE WHEN j.status = 'running' THEN j.cron ELSE EXCLUDED.cron END,\n"
    "    every_us = CASE WHEN j.status = 'running' THEN j.every_us ELSE EXCLUDED.every_us END,\n"
    "    params = CASE WHEN j.status = 'running' THEN j.params ELSE EXCLUDED.params END,\n"
    "    max_retries = CASE WHEN j.status = 'running' THEN j.max_retries ELSE EXCLUDED.max_retries END,\n"
    "    attempt = CASE WHEN j.status = 'running' THEN j.attempt ELSE 0 END,\n"
    "    next_run = CASE WHEN j.status = 'running' THEN j.next_run\n"
    "      WHEN j.status = 'pending' THEN LEAST(j.next_run, EXCLUDED.next_run) ELSE EXCLUDED.next_run END,\n"
    "    cancel_requested = CASE WHEN j.status = 'running' THEN j.cancel_requested ELSE false END,\n"
    "    remove_requested = false,\n"
    "    ch_kind = CASE WHEN j.status = 'running' THEN EXCLUDED.kind END,\n"
    "    ch_cron = CASE WHEN j.status = 'running' THEN EXCLUDED.cron END,\n"
    "    ch_every_us = CASE WHEN j.status = 'running' THEN EXCLUDED.every_us END,\n"
    "    ch_params = CASE WHEN j.status = 'running' THEN EXCLUDED.params END,\n"
    "    ch_max_retries = CASE WHEN j.status = 'running' THEN EXCLUDED.max_retries END,\n"
    "    ch_next_run = CASE WHEN j.status = 'running' THEN EXCLUDED.next_run END,\n"
    "    status = CASE WHEN j.status = 'running' THEN j.status ELSE 'pending' END,\n"
    "    version = nextval('{Q}'), updated_at = now()\n"
    "    WHERE j.status <> 'running' OR $8\n"
    "    RETURNING j.status, j.next_run, j.version)\n"
    "  SELECT up.status, up.next_run, up.version, prev.status AS prev_status INTO r\n"
    "    FROM up LEFT JOIN prev ON true;\n"
    "  IF r.status IS NULL THEN\n",
    "    RAISE EXCEPTION USING ERRCODE = '55006', MESSAGE = format('pgsched: the job %s/%s is running; pass after_run => true to apply the change when its run ends', $1, $2);\n"
    "  END IF;\n"
    "  PERFORM pg_notify({C}, CASE WHEN octet_length(p) < 7000 THEN p ELSE 'R' END)\n"
    "    FROM (SELECT concat_ws(E'\\t', 'C', $1, $2, coalesce(r.prev_status, 'none'), r.status,\n"
    "      r.version::text, '', ((extract(epoch FROM r.next_run) * 1000000)::int8)::text) AS p) p_;\n"
    "  RETURN r.next_run;\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:trigger}(name text, key text) RETURNS timestamptz\n"
    "LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $f$\n"
    "#variable_conflict use_column\n"
    "DECLARE v_status text; v_next timestamptz; v_version int8;\n"
    "BEGIN\n"
    "  PERFORM {S}.{I:check_job}($1, $2);\n"
    "  SELECT status INTO v_status FROM {J} WHERE name = $1 AND key = $2 FOR UPDATE;\n"
    "  IF NOT FOUND THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('pgsched: job %s/%s does not exist', $1, $2);\n"
    "  END IF;\n"
    "  IF v_status <> 'pending' THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = format('pgsched: job %s/%s is %s, not pending', $1, $2, v_status);\n"
    "  END IF;\n"
    "  UPDATE {J} SET next_run = now(), version = nextval('{Q}'), updated_at = now()\n"
    "    WHERE name = $1 AND key = $2 RETURNING next_run, version INTO v_next, v_version;\n"
    "  PERFORM pg_notify({C}, CASE WHEN octet_length(p) < 7000 THEN p ELSE 'R' END)\n"
    "    FROM (SELECT concat_ws(E'\\t', 'C', $1, $2, 'pending', 'pending', v_version::text, '',\n"
    "      ((extract(epoch FROM v_next) * 1000000)::int8)::text) AS p) p_;\n"
    "  RETURN v_next;\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:cancel}(name text, key text) RETURNS text\n"
    "LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $f$\n"
    "#variable_conflict use_column\n"
    "DECLARE v_status text; v_kind text; v_version int8; v_owner text;\n"
    "BEGIN\n"
    "  PERFORM {S}.{I:check_job}($1, $2);\n"
    "  SELECT status, kind INTO v_status, v_kind FROM {J} WHERE name = $1 AND key = $2 FOR UPDATE;\n"
    "  IF NOT FOUND THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('pgsched: job %s/%s does not exist', $1, $2);\n"
    "  END IF;\n"
    "  IF v_status = 'running' THEN\n"
    "    UPDATE {J} SET cancel_requested = true, version = nextval('{Q}'), updated_at = now()\n"
    "      WHERE name = $1 AND key = $2 RETURNING version, owner INTO v_version, v_owner;\n"
    "    PERFORM pg_notify({C}, CASE WHEN octet_length(p) < 7000 THEN p ELSE 'R' END)\n"
    "      FROM (SELECT concat_ws(E'\\t', 'X', $1, $2, v_version::text, '', v_owner) AS p) p_;\n"
    "    RETURN 'requested';\n"
    "  ELSIF v_status = 'pending' AND v_kind = 'once' THEN\n"
    "    UPDATE {J} SET status = 'cancelled', next_run = NULL, version = nextval('{Q}'),\n"
    "      updated_at = now() WHERE name = $1 AND key = $2 RETURNING version INTO v_version;\n"
    "    PERFORM pg_notify({C}, CASE WHEN octet_length(p) < 7000 THEN p ELSE 'R' END)\n"
    "      FROM (SELECT concat_ws(E'\\t', 'C', $1, $2, 'pending', 'cancelled', v_version::text, '', '') AS p) p_;\n"
    "    RETURN 'cancelled';\n"
    "  END IF;\n"
    "  RETURN 'none';\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:unschedule}(name text, key text) RETURNS text\n"
    "LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $f$\n"
    "#variable_conflict use_column\n"
    "DECLARE v_status text; v_version int8; v_owner text;\n"
    "BEGIN\n"
    "  PERFORM {S}.{I:check_job}($1, $2);\n"
    "  SELECT status INTO v_status FROM {J} WHERE name = $1 AND key = $2 FOR UPDATE;\n"
    "  IF NOT FOUND THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('pgsched: job %s/%s does not exist', $1, $2);\n"
    "  END IF;\n"
    "  IF v_status = 'running' THEN\n"
    "    UPDATE {J} SET cancel_requested = true, remove_requested = true, version = nextval('{Q}'),\n"
    "      updated_at = now() WHERE name = $1 AND key = $2 RETURNING version, owner INTO v_version, v_owner;\n"
    "    PERFORM pg_notify({C}, CASE WHEN octet_length(p) < 7000 THEN p ELSE 'R' END)\n",
    "      FROM (SELECT concat_ws(E'\\t', 'X', $1, $2, v_version::text, '', v_owner) AS p) p_;\n"
    "    RETURN 'deferred';\n"
    "  END IF;\n"
    "  DELETE FROM {J} WHERE name = $1 AND key = $2;\n"
    "  v_version := nextval('{Q}');\n"
    "  PERFORM pg_notify({C}, CASE WHEN octet_length(p) < 7000 THEN p ELSE 'R' END)\n"
    "    FROM (SELECT concat_ws(E'\\t', 'C', $1, $2, v_status, 'none', v_version::text, '', '') AS p) p_;\n"
    "  RETURN 'removed';\n"
    "END $f$;\n"
    "REVOKE ALL ON FUNCTION {S}.{I:schedule}(text, text, text, interval, timestamptz, json, integer, boolean),\n"
    "  {S}.{I:trigger}(text, text), {S}.{I:cancel}(text, text), {S}.{I:unschedule}(text, text),\n"
    "  {S}.{I:cron_next}(text, timestamptz), {S}.{I:cron_field}(text, int, int, text, text[]),\n"
    "  {S}.{I:cron_value}(text, int, int, text, text[]), {S}.{I:check_job}(text, text) FROM PUBLIC;\n",
    NULL};

/* Migration 3 (every schema change after version 2 goes here).
   The SQL function {P}unschedule is {P}remove, the word the C API uses for the same change.
   Renamed rather than created again: its grants, its REVOKE from PUBLIC, SECURITY INVOKER
   and its pinned search_path stay as they were. */
static const char *const pgsched__pg_migration_3 =
    "ALTER FUNCTION {S}.{I:unschedule}(text, text) RENAME TO {I:remove};";

/* Migration 4 (every schema change after version 3 goes here).
   status_events: the node wants every change of the cluster announced (PGSCHED__PG_WATCHED).
   Records written before (nodes of earlier libraries, which cannot say) count as wanting
   them; the partial index keeps the look-up to the nodes that want them, however many
   stopped nodes' records the table holds.
   {P}lock_keys locks the existing rows of the given (name, key) pairs FOR KEY SHARE, in the
   order given, and returns how many it found: the first step of every schedule statement (see
   PGSCHED__PG_SCHEDULE_LOCK_KEYS), also on the caller's connection, so EXECUTE stays granted
   to PUBLIC (it locks only what the caller may lock: FOR KEY SHARE needs UPDATE on the table).
   Its one query is planned with sequential and bitmap scans off: one primary-key probe per
   pair whatever the table held when the plan was made. And planned once per connection: its
   custom plans, made for the one pair of a single call, would otherwise look cheaper than the
   generic one (planned for 10 pairs) forever, and the query would be planned again at every
   call (a single schedule took 0.1 ms longer). Its form for one pair (SCHEDULE_ONE's) is the
   index scan alone, without the arrays, the nested loop and the count around it. */
static const char *const pgsched__pg_migration_4 =
    "ALTER TABLE {N} ADD COLUMN IF NOT EXISTS status_events boolean NOT NULL DEFAULT true;"
    "CREATE INDEX IF NOT EXISTS {I:nodes_status} ON {N} (id) "
    "WHERE status_events AND stopped_at IS NULL;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:lock_keys}(names text[], keys text[]) RETURNS bigint\n"
    "LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp\n"
    "SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan\n"
    "AS $f$\n"
    "DECLARE n bigint;\n"
    "BEGIN\n"
    "  SELECT count(*) INTO n FROM (SELECT unnest(names) AS name, unnest(keys) AS key) a\n"
    "    CROSS JOIN LATERAL (SELECT 1 FROM {J} x WHERE x.name = a.name AND x.key = a.key\n"
    "    FOR KEY SHARE OF x) z;\n"
    "  RETURN n;\n"
    "END $f$;\n"
    "CREATE OR REPLACE FUNCTION {S}.{I:lock_keys}(name text, key text) RETURNS bigint\n"
    "LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp\n"
    "SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan\n"
    "AS $f$\n"
    "BEGIN\n"
    "  PERFORM FROM {J} x WHERE x.name = $1 AND x.key = $2 FOR KEY SHARE OF x;\n"
    "  RETURN CASE WHEN FOUND THEN 1 ELSE 0 END;\n"
    "END $f$;\n";

/* The SQL that takes the schema from version v-1 to v. */
static const char *pgsched__pg_migration(int v)
{
    switch (v) {
    case 1: return pgsched__pg_migration_1;
    case 2: return pgsched__pg_migration_2;
    case 3: return pgsched__pg_migration_3;
    case 4: return pgsched__pg_migration_4;
    }
    return NULL;
}

#define PGSCHED__PG_CHANNEL_SUFFIX "events"

typedef struct pgsched__pgc {
    PGconn *conn;
    uint32_t prepared; /* bit i: statement i is prepared on this connection */
    int busy;
} pgsched__pgc;

/* The statements sent on a caller's connection (pgsched__pg_ext_exec): the three schedule
   statements, and around a plain insert in a transaction block its savepoint's. */
enum {
    PGSCHED__PG_EXT_SCHEDULE,
    PGSCHED__PG_EXT_SCHEDULE_ONE,
    PGSCHED__PG_EXT_SCHEDULE_NEW,
    PGSCHED__PG_EXT_COUNT_SAVEPOINTS,
    PGSCHED__PG_EXT_SAVEPOINT,
    PGSCHED__PG_EXT_RELEASE,
    PGSCHED__PG_EXT_ROLLBACK,
    PGSCHED__PG_EXT_COUNT
};

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
    /* Callers' connections on which the schedule statements are prepared, newest first, with
       which ones (bit i: statement i of PGSCHED__PG_EXT_*, as ext_name[i]; each
       name hashes its text, so two stores or two versions never share a name). */
    struct {
        const void *conn;
        int pid;
        unsigned stmts;
    } ext[16];
    char ext_name[PGSCHED__PG_EXT_COUNT][48];
    char ext_sql[PGSCHED__PG_EXT_COUNT][400]; /* the savepoint statements' text (see ext) */
    int notify, no_create;
    void (*log)(void *user, int level, const char *message);
    void *log_user;
    pgsched_duration reconnect_min, reconnect_max;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pgsched__pgc *conns;
    int nconns;
    int batch_upsert;        /* a batch met existing rows: send SCHEDULE, not SCHEDULE_NEW (mu) */
    pgsched_time retry_at;   /* monotonic: no connection attempt before this */
    pgsched_duration backoff;
    char last_conn_error[256];
    long confirm_statements; /* CONFIRM statements run so far (under mu; the tests read it) */
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
   notifications are on; it may hold the other forms, but no brace of its own). */
static char *pgsched__pg_expand(pgsched__pg *p, const char *t)
{
    pgsched__buf b;
    int in_notify = 0; /* inside a kept {NOTIFY...}: its closing brace is dropped */
    memset(&b, 0, sizeof b);
    b.a = &p->alloc;
    while (*t) {
        if (*t != '{' && !(in_notify && *t == '}')) {
            size_t n = strcspn(t, in_notify ? "{}" : "{");
            pgsched__buf_add(&b, t, n);
            t += n;
            continue;
        }
        if (*t == '}') {
            in_notify = 0;
            t++;
        } else if (strncmp(t, "{NOTIFY", 7) == 0) {
            if (p->notify) {
                in_notify = 1;
                t += 7;
            } else { /* skip it, with the forms inside */
                int depth = 0;
                for (; *t; t++) {
                    if (*t == '{') depth++;
                    else if (*t == '}' && --depth == 0) break;
                }
                if (*t) t++;
            }
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
            case 'C': /* the NOTIFY channel as a literal (made of identifier characters) */
                pgsched__buf_puts(&b, "'");
                pgsched__buf_puts(&b, p->channel);
                pgsched__buf_puts(&b, "'");
                break;
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
    pgsched__buf_add(&b, "", 0); /* an empty template expands to "", not NULL */
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
    int64_t v;
    if (PQgetisnull(r, row, col)) return 0;
    v = pgsched__pg_be64(PQgetvalue(r, row, col));
    /* 'infinity' and '-infinity' (or anything else written by hand beyond our range) */
    if (v > PGSCHED_TIME_MAX - (pgsched_time)946684800 * 1000000) return PGSCHED_TIME_MAX;
    if (v < PGSCHED_TIME_MIN - (pgsched_time)946684800 * 1000000) return PGSCHED_TIME_MIN;
    return v + (pgsched_time)946684800 * 1000000;
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
    case PGSCHED_SCHEDULE_ONCE: return "once";
    case PGSCHED_SCHEDULE_CRON: return "cron";
    case PGSCHED_SCHEDULE_INTERVAL: return "interval";
    case PGSCHED_SCHEDULE_CUSTOM: return "custom";
    }
    return "unknown";
}

static pgsched_status pgsched__status_parse(const char *s)
{
    if (!s) return PGSCHED_STATUS_NONE;
    if (strcmp(s, "pending") == 0) return PGSCHED_STATUS_PENDING;
    if (strcmp(s, "running") == 0) return PGSCHED_STATUS_RUNNING;
    if (strcmp(s, "completed") == 0) return PGSCHED_STATUS_COMPLETED;
    if (strcmp(s, "failed") == 0) return PGSCHED_STATUS_FAILED;
    if (strcmp(s, "cancelled") == 0) return PGSCHED_STATUS_CANCELLED;
    return PGSCHED_STATUS_NONE;
}

static pgsched_schedule_kind pgsched__kind_parse(const char *s)
{
    if (s && strcmp(s, "cron") == 0) return PGSCHED_SCHEDULE_CRON;
    if (s && strcmp(s, "interval") == 0) return PGSCHED_SCHEDULE_INTERVAL;
    if (s && strcmp(s, "custom") == 0) return PGSCHED_SCHEDULE_CUSTOM;
    return PGSCHED_SCHEDULE_ONCE;
}

static pgsched_outcome pgsched__outcome_parse(const char *s)
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
        /* scrubbed whole, then cut: a cut through a password would leave its start */
        char full[1024];
        pgsched__copy_text(full, sizeof full, PQerrorMessage(c));
        pgsched__conninfo_scrub(p->conninfo, full, sizeof full);
        pgsched__pg_message(why, why_size, full);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pgsched__pg_quiet, NULL);
    /* First of all, before any statement that calls a function: the search path (see "Names
       and search_path" above the statement templates). It overrides whatever the server, the
       role, the database or the conninfo's `options` set; the rest of `options` still holds.
       A row lock held by someone else's open transaction (a caller scheduling inside its own
       transaction, say) must not stall a node's dispatcher: the hot statements skip locked
       rows, and any other statement gives up after a while and is tried again later.
       Every statement is written for READ COMMITTED (SKIP LOCKED claims, re-checked row
       locks); a database or role whose default is stricter must not change that.
       No JIT compilation (PostgreSQL 11 and later): the planner's guess of a large outcome
       batch can pass jit_above_cost, and compiling the statement then costs the server
       seconds of CPU (measured: 1.3 s and 11.6 s for one statement each) for a statement that
       runs in milliseconds.
       No sequential scan where an index serves (enable_seqscan = off only makes the planner
       take another path when there is one): a prepared statement keeps the generic plan it
       made while the table was nearly empty, where a scan looked cheapest, until the table is
       analysed again; a cancel, trigger, remove or get of one job then read every row
       (test_pg_plans). Every statement here is written for its indexes; the few with no
       index to use (clean-up of node records, a migration's repair) still scan.
       Generic plans only (PostgreSQL 12 and later): the claim's custom plan was cheaper than
       its generic one by the planner's reckoning (it knows the claim's LIMIT and the names'
       count), so every claim was planned anew, and half the outcome batches: in runs of
       20,000 jobs on 4 nodes, 190-290 ms of planning against 1.3 s of server CPU in all. No
       statement depends on a custom plan: each filter shape has a statement of its own
       (LIST, HISTORY). */
    {
#define PGSCHED__PG_SESSION                                                                  \
    "SET search_path = pg_catalog, pg_temp; SET lock_timeout = '5s'; "                         \
    "SET default_transaction_isolation = 'read committed'; SET enable_seqscan = off"
        int v = PQserverVersion(c);
        PGresult *r = PQexec(c, v >= 120000   ? PGSCHED__PG_SESSION "; SET jit = off; "
                                                "SET plan_cache_mode = force_generic_plan"
                                : v >= 110000 ? PGSCHED__PG_SESSION "; SET jit = off"
                                              : PGSCHED__PG_SESSION);
#undef PGSCHED__PG_SESSION
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
            char msg[300];
            size_t n;
            pgsched__copy_text(msg, sizeof msg, "cannot set up the session: ");
            n = strlen(msg);
            pgsched__pg_message(msg + n, sizeof msg - n, m ? m : PQerrorMessage(c));
            pgsched__copy_text(why, why_size, msg);
            PQclear(r);
            PQfinish(c);
            return NULL;
        }
        PQclear(r);
    }
    return c;
}

/* Whether an idle pool connection is still usable. Nothing is due on one: anything the
   server wrote to it since is its goodbye (a FATAL error, then the end of the stream, which
   may not have arrived yet) or, rarely, a notice or a reloaded setting. Either way it is
   replaced, which costs one connection, rather than read: its error can be read while its
   end is still on the way, and a statement sent then would be lost in flight. */
static int pgsched__pg_idle_alive(PGconn *c)
{
    struct pollfd f;
    if (PQstatus(c) != CONNECTION_OK) return 0;
    f.fd = PQsocket(c);
    f.events = POLLIN;
    f.revents = 0;
    return poll(&f, 1, 0) == 0;
}

/* Takes a free connection from the pool, connecting it if needed (with backoff). A free
   connected one is preferred, so one dead slot waiting out its backoff fails nothing while
   another works. A connection the server has closed while it sat idle (a restart, an
   idle_session_timeout) is noticed here, before a statement is sent on it: reading what
   the server sent meanwhile finds the end of the stream. */
static pgsched_result pgsched__pg_acquire(pgsched__pg *p, pgsched__pgc **out, pgsched_error *err)
{
    pgsched__pgc *c;
    int i;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int busy_live = 0;
        c = NULL;
        for (i = 0; i < p->nconns; i++) {
            pgsched__pgc *x = &p->conns[i];
            if (x->busy) {
                busy_live |= x->conn != NULL;
                continue;
            }
            if (x->conn && pgsched__pg_idle_alive(x->conn)) {
                x->busy = 1;
                pthread_mutex_unlock(&p->mu);
                *out = x;
                return PGSCHED_OK;
            }
            if (x->conn) {
                PQfinish(x->conn);
                x->conn = NULL;
                x->prepared = 0;
            }
            if (!c) c = x;
        }
        /* A free slot to connect, unless the last attempt failed moments ago: then a
           connection in use elsewhere is worth waiting for (until the next attempt is due)
           rather than failing now. */
        if (c && (pgsched__monotonic() >= p->retry_at || !busy_live)) break;
        if (c) pgsched__cond_wait_until(&p->cv, &p->mu, p->retry_at);
        else pthread_cond_wait(&p->cv, &p->mu);
    }
    c->busy = 1;
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

/* Closes the connections nobody is using (a node's shutdown: a later call connects again). */
static void pgsched__pg_close_idle(pgsched_store *s)
{
    pgsched__pg *p = (pgsched__pg *)s;
    int i;
    pthread_mutex_lock(&p->mu);
    for (i = 0; i < p->nconns; i++)
        if (!p->conns[i].busy && p->conns[i].conn) {
            PQfinish(p->conns[i].conn);
            p->conns[i].conn = NULL;
            p->conns[i].prepared = 0;
        }
    pthread_mutex_unlock(&p->mu);
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

/* Except the schedule statement's arrays: a bulk schedule's thousands of elements go in
   PostgreSQL's binary array format (pgsched__pgarr), declared with their array types, so the
   server neither parses them as text (array_in, and a time's text per element) nor does so
   twice (a custom plan would also read the text arrays while planning, to count them). Its
   scalars are text (node, channel) and, in the _TX forms only, $13 a bool (whether a node
   watches). */
static const Oid pgsched__pg_schedule_types[16] = {
    1009 /* text[] */, 1009, 1009, 1009, 1016 /* int8[] */, 1009, 1007 /* int4[] */,
    1185 /* timestamptz[] */, 1000 /* bool[] */, 25, 25, 1016, 16 /* bool */, 25, 25, 25};

/* SCHEDULE_ONE's: its numbers, time and flag go in binary (no text to print or parse), the
   rest as text. */
static const Oid pgsched__pg_schedule_one_types[16] = {
    25, 25, 25, 25, 20 /* int8 */, 25, 23 /* int4 */, 1184 /* timestamptz */, 16 /* bool */,
    25, 25, 20, 25, 25, 25, 25};

static const Oid *pgsched__pg_param_types(int q)
{
    return q == PGSCHED__Q_SCHEDULE || q == PGSCHED__Q_SCHEDULE_NEW ||
                   q == PGSCHED__Q_SCHEDULE_TX || q == PGSCHED__Q_SCHEDULE_NEW_TX
               ? pgsched__pg_schedule_types
           : q == PGSCHED__Q_SCHEDULE_ONE ? pgsched__pg_schedule_one_types
                                          : pgsched__pg_text_types;
}

/* A one-dimensional array in the binary format of array_recv: ndim, has-nulls flag, element
   type, then the length and lower bound of the dimension, then each element as a 4-byte length
   (-1: NULL) and its binary value. Integers are big-endian; a timestamptz is int8 microseconds
   since 2000-01-01 UTC. `count` elements must be put. */
typedef struct pgsched__pgarr {
    pgsched__buf b;
} pgsched__pgarr;

static void pgsched__put_be32(unsigned char *o, uint32_t v)
{
    o[0] = (unsigned char)(v >> 24);
    o[1] = (unsigned char)(v >> 16);
    o[2] = (unsigned char)(v >> 8);
    o[3] = (unsigned char)v;
}

static void pgsched__pgarr_start(pgsched__pgarr *a, pgsched_allocator *al, uint32_t elemtype,
                                 size_t count)
{
    unsigned char h[20];
    memset(&a->b, 0, sizeof a->b);
    a->b.a = al;
    pgsched__put_be32(h, 1);
    pgsched__put_be32(h + 4, 0); /* the has-nulls flag, set by the first NULL */
    pgsched__put_be32(h + 8, elemtype);
    pgsched__put_be32(h + 12, (uint32_t)count);
    pgsched__put_be32(h + 16, 1);
    pgsched__buf_add(&a->b, (const char *)h, sizeof h);
}

/* One element: len bytes at v, or NULL when v is NULL. */
static void pgsched__pgarr_put(pgsched__pgarr *a, const void *v, size_t len)
{
    unsigned char l[4];
    if (!v) {
        pgsched__put_be32(l, 0xFFFFFFFFu);
        pgsched__buf_add(&a->b, (const char *)l, 4);
        if (!a->b.oom) a->b.p[7] = 1;
        return;
    }
    pgsched__put_be32(l, (uint32_t)len);
    pgsched__buf_add(&a->b, (const char *)l, 4);
    if (len) pgsched__buf_add(&a->b, (const char *)v, len);
}

static void pgsched__pgarr_text(pgsched__pgarr *a, const char *s)
{
    pgsched__pgarr_put(a, s, s ? strlen(s) : 0);
}

static void pgsched__pgarr_int(pgsched__pgarr *a, int64_t v, size_t bytes)
{
    unsigned char o[8];
    size_t i;
    for (i = 0; i < bytes; i++) o[i] = (unsigned char)((uint64_t)v >> (8 * (bytes - 1 - i)));
    pgsched__pgarr_put(a, o, bytes);
}

/* A time (0: NULL) as timestamptz. */
static void pgsched__pgarr_time(pgsched__pgarr *a, pgsched_time t)
{
    if (!t) pgsched__pgarr_put(a, NULL, 0);
    else pgsched__pgarr_int(a, t - (pgsched_time)946684800 * PGSCHED_SECOND, 8);
}

/* Runs statement q on pool connection c (taken), preparing it there first if needed; binary
   results. A connection the server said goodbye on is closed (release then frees its slot). */
static pgsched_result pgsched__pg_exec_on(pgsched__pg *p, pgsched__pgc *c, int q, int nparams,
                                          const char *const *values, const int *lengths,
                                          const int *formats, PGresult **out, pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = PGSCHED_OK;
    *out = NULL;
    if (!(c->prepared & (1u << q))) {
        res = PQprepare(c->conn, pgsched__pg_stmt_names[q], p->sql[q], nparams,
                        pgsched__pg_param_types(q));
        r = pgsched__pg_check(c->conn, res, "preparing a statement", err);
        PQclear(res);
        if (r == PGSCHED_OK) c->prepared |= 1u << q;
    }
    if (r == PGSCHED_OK) {
        res = PQexecPrepared(c->conn, pgsched__pg_stmt_names[q], nparams, values, lengths,
                             formats, 1);
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
    return r;
}

/* Runs statement q with text parameters, binary results. A connection found dead before the
   statement is sent is replaced first (see acquire). One that dies with the statement in
   flight leaves its effect unknown: a statement that is safe to repeat is then sent once more
   on a fresh connection; any other is reported as a lost connection whose change may or may
   not have been made. */
static pgsched_result pgsched__pg_run_bin(pgsched__pg *p, int q, int nparams,
                                          const char *const *values, const int *lengths,
                                          const int *formats, int idempotent, PGresult **out,
                                          pgsched_error *err)
{
    int tries;
    pgsched_result r = PGSCHED_OK;
    *out = NULL;
    /* An idempotent statement may meet every pooled connection cut at once (a server restart,
       pg_terminate_backend): it tries each, then a fresh one. */
    for (tries = 0; tries <= p->nconns; tries++) {
        pgsched__pgc *c;
        r = pgsched__pg_acquire(p, &c, err);
        if (r != PGSCHED_OK) return r;
        r = pgsched__pg_exec_on(p, c, q, nparams, values, lengths, formats, out, err);
        pgsched__pg_release(p, c);
        if (r != PGSCHED_ERR_CONNECTION) break;
        if (!idempotent) {
            if (err) {
                size_t m = strlen(err->message);
                snprintf(err->message + m, sizeof err->message - m,
                         " (the change may or may not have been made)");
            }
            break;
        }
    }
    return r;
}

/* Runs statement q with text parameters (see pgsched__pg_run_bin). */
static pgsched_result pgsched__pg_run(pgsched__pg *p, int q, int nparams,
                                      const char *const *values, int idempotent, PGresult **out,
                                      pgsched_error *err)
{
    return pgsched__pg_run_bin(p, q, nparams, values, NULL, NULL, idempotent, out, err);
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

/* Migration 4 also replaces {P}schedule (rule S7): migration 2's function as it is but for
   one line, a lock of the job's row through {P}lock_keys right after its checks. The upsert
   that follows is a statement of its own, so its version and its `prev` status are read
   after any removal the lock waited for (before, a job created again while its removal
   waited got the older version, and was announced pending -> pending). Taken from migration
   2's text rather than written out a second time; CREATE OR REPLACE keeps its grants. */
static void pgsched__pg_schedule_function_v4(pgsched__buf *b)
{
    static const char head[] = "CREATE OR REPLACE FUNCTION {S}.{I:schedule}(";
    static const char check[] = "  PERFORM {S}.{I:check_job}($1, $2);\n";
    static const char end[] = "END $f$;\n";
    pgsched__buf all;
    const char *s, *c = NULL, *e = NULL;
    size_t i;
    memset(&all, 0, sizeof all);
    all.a = b->a;
    for (i = 0; pgsched__pg_functions[i]; i++) pgsched__buf_puts(&all, pgsched__pg_functions[i]);
    s = all.oom ? NULL : strstr(all.p, head);
    if (s) c = strstr(s, check);
    if (c) e = strstr(c, end);
    if (!e) {
        b->oom = 1; /* (cannot happen: migration 2's text is fixed) */
    } else {
        c += strlen(check);
        pgsched__buf_add(b, s, (size_t)(c - s));
        pgsched__buf_puts(b, "  PERFORM {S}.{I:lock_keys}($1, $2);\n");
        pgsched__buf_add(b, c, (size_t)(e + strlen(end) - c));
    }
    pgsched__free(b->a, all.p);
}

/* Migration v expanded for this store; NULL when out of memory. */
static char *pgsched__pg_migration_text(pgsched__pg *p, int v)
{
    pgsched__buf b;
    char *q;
    size_t i;
    if (v != 2 && v != 4) return pgsched__pg_expand(p, pgsched__pg_migration(v));
    memset(&b, 0, sizeof b);
    b.a = &p->alloc;
    pgsched__buf_puts(&b, pgsched__pg_migration(v));
    if (v == 4)
        pgsched__pg_schedule_function_v4(&b);
    else
        for (i = 0; pgsched__pg_functions[i]; i++) pgsched__buf_puts(&b, pgsched__pg_functions[i]);
    if (b.oom) {
        pgsched__free(&p->alloc, b.p);
        return NULL;
    }
    q = pgsched__pg_expand(p, b.p);
    pgsched__free(&p->alloc, b.p);
    return q;
}

/* The privileges a node's statements need, checked at setup so that a role missing one fails
   pgsched_start with a sentence naming it, instead of starting and failing every statement:
   USAGE on the schema; SELECT, INSERT, UPDATE, DELETE on jobs and nodes; SELECT, INSERT,
   DELETE on runs; SELECT on schema_version; USAGE (or UPDATE) on the sequence (nextval);
   EXECUTE on both forms of {P}lock_keys (every schedule statement calls one: PUBLIC has it
   unless a DBA revoked it). The README's security section lists the same grants. */
static pgsched_result pgsched__pg_check_privileges(pgsched__pg *p, PGconn *c, pgsched_error *err)
{
    static const char *const sql =
        "SELECT current_user, string_agg(k.priv || ' on ' || k.kind || ' ' || k.obj, ', ' "
        "ORDER BY k.n) FROM (VALUES (1, 'USAGE', 'schema', $1::text), "
        "(2, 'SELECT', 'table', $2::text), (3, 'INSERT', 'table', $2::text), "
        "(4, 'UPDATE', 'table', $2::text), (5, 'DELETE', 'table', $2::text), "
        "(6, 'SELECT', 'table', $3::text), (7, 'INSERT', 'table', $3::text), "
        "(8, 'DELETE', 'table', $3::text), "
        "(9, 'SELECT', 'table', $4::text), (10, 'INSERT', 'table', $4::text), "
        "(11, 'UPDATE', 'table', $4::text), (12, 'DELETE', 'table', $4::text), "
        "(13, 'SELECT', 'table', $5::text), (14, 'USAGE', 'sequence', $6::text), "
        "(15, 'EXECUTE', 'function', $7::text), (16, 'EXECUTE', 'function', $8::text)) "
        "AS k(n, priv, kind, obj) WHERE NOT CASE WHEN k.kind = 'schema' "
        "THEN has_schema_privilege(k.obj, k.priv) WHEN k.kind = 'table' "
        "THEN has_table_privilege(k.obj, k.priv) WHEN k.kind = 'function' "
        "THEN has_function_privilege(k.obj, k.priv) "
        "ELSE has_sequence_privilege(k.obj, 'USAGE, UPDATE') END";
    const char *vals[8];
    char lock_many[160], lock_one[160];
    PGresult *res;
    pgsched_result r;
    snprintf(lock_many, sizeof lock_many, "\"%s\".\"%slock_keys\"(text[], text[])", p->schema,
             p->prefix);
    snprintf(lock_one, sizeof lock_one, "\"%s\".\"%slock_keys\"(text, text)", p->schema,
             p->prefix);
    vals[0] = p->schema;
    vals[1] = p->names_sql[PGSCHED__PGN_JOBS];
    vals[2] = p->names_sql[PGSCHED__PGN_RUNS];
    vals[3] = p->names_sql[PGSCHED__PGN_NODES];
    vals[4] = p->names_sql[PGSCHED__PGN_VERSION];
    vals[5] = p->names_sql[PGSCHED__PGN_SEQ];
    vals[6] = lock_many;
    vals[7] = lock_one;
    res = PQexecParams(c, sql, 8, NULL, vals, NULL, NULL, 0);
    r = pgsched__pg_check(c, res, "checking the role's privileges", err);
    if (r == PGSCHED_OK && !PQgetisnull(res, 0, 1))
        r = pgsched__fail(err, PGSCHED_ERR_DATABASE,
                          "the role \"%s\" lacks privileges a node needs: %s (the README's "
                          "security section lists the grants)",
                          PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    PQclear(res);
    return r;
}

/* Names, keys and texts are UTF-8 (checked before they reach a store); a database in another
   encoding would refuse some of them, which the memory store accepts. */
static pgsched_result pgsched__pg_check_encoding(PGconn *conn, pgsched_error *err)
{
    const char *enc = PQparameterStatus(conn, "server_encoding");
    if (enc && strcmp(enc, "UTF8") != 0 && strcmp(enc, "SQL_ASCII") != 0)
        return pgsched__fail(err, PGSCHED_ERR_UNSUPPORTED,
                             "the database's encoding is %s; pgsched needs a UTF8 database", enc);
    return PGSCHED_OK;
}

/* The highest version recorded in the version table (0 when it is empty). */
static pgsched_result pgsched__pg_read_version(pgsched__pg *p, PGconn *conn, int *version,
                                               pgsched_error *err)
{
    char sql[512];
    PGresult *res;
    pgsched_result r;
    snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM %s",
             p->names_sql[PGSCHED__PGN_VERSION]);
    res = PQexec(conn, sql);
    r = pgsched__pg_check(conn, res, "reading the schema version", err);
    if (r == PGSCHED_OK) *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return r;
}

/* The version of the tables (*version), read without the migration lock, or -1 when they do
   not exist: a migration commits its tables and its version row together, so a version read
   here is one whose tables are all there. */
static pgsched_result pgsched__pg_existing_version(pgsched__pg *p, PGconn *conn, int *version,
                                                   pgsched_error *err)
{
    PGresult *res;
    pgsched_result r;
    int exists;
    const char *vals[1];
    *version = -1;
    vals[0] = p->names_sql[PGSCHED__PGN_VERSION];
    res = PQexecParams(conn, "SELECT pg_catalog.to_regclass($1::pg_catalog.text) IS NOT NULL", 1,
                       NULL, vals, NULL, NULL, 0);
    r = pgsched__pg_check(conn, res, "checking the schema", err);
    exists = r == PGSCHED_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (r != PGSCHED_OK || !exists) return r;
    return pgsched__pg_read_version(p, conn, version, err);
}

/* no_create_schema: only check that the tables exist at this library's version. A role with
   row privileges (and USAGE on the sequence) must be able to run a node. */
static pgsched_result pgsched__pg_check_version(pgsched__pg *p, PGconn *conn, pgsched_error *err)
{
    pgsched_result r;
    int version = 0;
    if ((r = pgsched__pg_existing_version(p, conn, &version, err)) != PGSCHED_OK) return r;
    if (version < 0)
        return pgsched__fail(err, PGSCHED_ERR_SCHEMA_VERSION,
                             "the pgsched tables do not exist in schema \"%s\" with prefix "
                             "\"%s\", and schema creation is off",
                             p->schema, p->prefix);
    if (version != PGSCHED__PG_SCHEMA_VERSION)
        return pgsched__fail(err, PGSCHED_ERR_SCHEMA_VERSION,
                             "the schema is at version %d; this library needs version %d%s",
                             version, PGSCHED__PG_SCHEMA_VERSION,
                             version < PGSCHED__PG_SCHEMA_VERSION
                                 ? " (start a node with schema creation on to upgrade it)"
                                 : " (a newer pgsched wrote it; upgrade this program)");
    return PGSCHED_OK;
}

/* Opens the migration's transaction and takes its lock. */
static pgsched_result pgsched__pg_migration_lock(pgsched__pg *p, PGconn *conn, pgsched_error *err)
{
    PGresult *res;
    pgsched_result r;
    const char *vals[1];
    r = pgsched__pg_exec_simple(conn, "BEGIN", "starting the migration", err);
    /* Waiting for the migration lock is not a stuck row: another node may take minutes to
       migrate a large table, and the others wait for it (up to a bound, so that a stuck one
       is reported rather than waited for forever). */
    if (r == PGSCHED_OK)
        r = pgsched__pg_exec_simple(conn, "SET LOCAL lock_timeout = '10min'",
                                    "starting the migration", err);
    if (r == PGSCHED_OK) {
        /* Many nodes may start at once: one migrates, the others wait and then see it done.
           The lock is per schema, not per prefix: tables of several prefixes created at once
           in a new schema would otherwise race to create the schema. */
        vals[0] = p->lock_key;
        res = PQexecParams(conn, "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
                           1, NULL, vals, NULL, NULL, 0);
        r = pgsched__pg_check(conn, res, "taking the migration lock", err);
        PQclear(res);
    }
    /* The migration's own statements wait on table locks as every statement does: a DDL
       statement left waiting would queue every node's queries behind it. */
    if (r == PGSCHED_OK)
        r = pgsched__pg_exec_simple(conn, "SET LOCAL lock_timeout = '5s'",
                                    "starting the migration", err);
    return r;
}

/* Expands a statement's {S}/{V}... placeholders and runs it. */
static pgsched_result pgsched__pg_exec_expanded(pgsched__pg *p, PGconn *conn, const char *tmpl,
                                                const char *what, pgsched_error *err)
{
    char *q = pgsched__pg_expand(p, tmpl);
    pgsched_result r = q ? pgsched__pg_exec_simple(conn, q, what, err)
                         : pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
    pgsched__free(&p->alloc, q);
    return r;
}

/* The schema (when missing) and the version table, under the migration lock. */
static pgsched_result pgsched__pg_create_version_table(pgsched__pg *p, PGconn *conn,
                                                       pgsched_error *err)
{
    PGresult *res;
    pgsched_result r;
    int exists;
    const char *vals[1];
    vals[0] = p->schema;
    res = PQexecParams(conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1::text", 1, NULL, vals,
                       NULL, NULL, 0);
    r = pgsched__pg_check(conn, res, "looking up the schema", err);
    exists = r == PGSCHED_OK && PQntuples(res) == 1;
    PQclear(res);
    if (r == PGSCHED_OK && !exists)
        r = pgsched__pg_exec_expanded(p, conn, "CREATE SCHEMA IF NOT EXISTS {S}",
                                      "creating the schema", err);
    if (r == PGSCHED_OK)
        r = pgsched__pg_exec_expanded(p, conn,
                                      "CREATE TABLE IF NOT EXISTS {V} (version integer PRIMARY "
                                      "KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                                      "creating the version table", err);
    return r;
}

/* Migrations version+1 .. PGSCHED__PG_SCHEMA_VERSION, each recorded in the version table. */
static pgsched_result pgsched__pg_apply_migrations(pgsched__pg *p, PGconn *conn, int version,
                                                   pgsched_error *err)
{
    pgsched_result r = PGSCHED_OK;
    while (r == PGSCHED_OK && version < PGSCHED__PG_SCHEMA_VERSION) {
        char *q = pgsched__pg_migration_text(p, version + 1);
        char what[64];
        snprintf(what, sizeof what, "migration %d", version + 1);
        r = q ? pgsched__pg_exec_simple(conn, q, what, err)
              : pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
        pgsched__free(&p->alloc, q);
        version++;
        if (r == PGSCHED_OK) {
            char v[16], sql[512];
            const char *vals[1];
            PGresult *res;
            snprintf(v, sizeof v, "%d", version);
            snprintf(sql, sizeof sql, "INSERT INTO %s (version) VALUES ($1::int4)",
                     p->names_sql[PGSCHED__PGN_VERSION]);
            vals[0] = v;
            res = PQexecParams(conn, sql, 1, NULL, vals, NULL, NULL, 0);
            r = pgsched__pg_check(conn, res, "recording the schema version", err);
            PQclear(res);
        }
    }
    return r;
}

/* Creates or migrates the tables in one transaction under the migration lock; tables already
   at this version are left alone without taking the lock (nodes starting together do not
   queue behind each other for it). */
static pgsched_result pgsched__pg_migrate(pgsched__pg *p, PGconn *conn, pgsched_error *err)
{
    pgsched_result r;
    int version = 0;
    r = pgsched__pg_existing_version(p, conn, &version, err);
    if (r == PGSCHED_OK && version == PGSCHED__PG_SCHEMA_VERSION) return PGSCHED_OK;
    /* (a look that failed is made again, and reported, under the lock) */
    r = pgsched__pg_migration_lock(p, conn, err);
    if (r == PGSCHED_OK) r = pgsched__pg_create_version_table(p, conn, err);
    if (r == PGSCHED_OK) r = pgsched__pg_read_version(p, conn, &version, err);
    if (r == PGSCHED_OK && version > PGSCHED__PG_SCHEMA_VERSION)
        r = pgsched__fail(err, PGSCHED_ERR_SCHEMA_VERSION,
                          "the schema is at version %d, newer than this library's %d: "
                          "upgrade this program",
                          version, PGSCHED__PG_SCHEMA_VERSION);
    if (r == PGSCHED_OK) r = pgsched__pg_apply_migrations(p, conn, version, err);
    if (r == PGSCHED_OK) r = pgsched__pg_exec_simple(conn, "COMMIT", "committing the migration", err);
    else if (PQstatus(conn) == CONNECTION_OK) PQclear(PQexec(conn, "ROLLBACK"));
    if (r != PGSCHED_OK && err && strstr(err->message, "(SQLSTATE 42501)")) {
        /* a role that may use the tables but not create or alter them */
        size_t m = strlen(err->message);
        snprintf(err->message + m, sizeof err->message - m,
                 "; a role without CREATE on the schema (one with row privileges only) must "
                 "run with no_create_schema set (pg.no_create_schema in a node's "
                 "configuration), which checks the schema instead of creating or migrating it");
    }
    return r;
}

/* Makes the tables ready: checks the database's encoding, then either only checks the schema
   version (no_create_schema) or creates and migrates, then checks this role's privileges. */
static pgsched_result pgsched__pg_setup(pgsched_store *s, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched__pgc *c;
    pgsched_result r = pgsched__pg_acquire(p, &c, err);
    if (r != PGSCHED_OK) return r;
    r = pgsched__pg_check_encoding(c->conn, err);
    if (r == PGSCHED_OK)
        r = p->no_create ? pgsched__pg_check_version(p, c->conn, err)
                         : pgsched__pg_migrate(p, c->conn, err);
    /* tables another role created, and this one may create beside but not use */
    if (r == PGSCHED_OK) r = pgsched__pg_check_privileges(p, c->conn, err);
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

/* Whether schedule statement `bit` (see ext) is prepared on the caller's connection c
   (backend pid): `forget` drops the connection from the list, `add` marks the statement and
   puts the connection first. */
static int pgsched__pg_ext_known(pgsched__pg *p, PGconn *c, int pid, unsigned bit, int forget,
                                 int add)
{
    size_t n = sizeof p->ext / sizeof p->ext[0], i, k;
    unsigned stmts = 0;
    int found = 0;
    pthread_mutex_lock(&p->mu);
    for (i = 0; i < n && !(p->ext[i].conn == c && p->ext[i].pid == pid); i++) {}
    found = i < n;
    if (found) stmts = p->ext[i].stmts;
    if (found && forget) {
        for (k = i; k + 1 < n; k++) p->ext[k] = p->ext[k + 1];
        p->ext[n - 1].conn = NULL;
        p->ext[n - 1].stmts = 0;
    } else if (add) {
        for (k = found ? i : n - 1; k > 0; k--) p->ext[k] = p->ext[k - 1];
        p->ext[0].conn = c;
        p->ext[0].pid = pid;
        p->ext[0].stmts = (found ? stmts : 0) | bit;
    }
    pthread_mutex_unlock(&p->mu);
    return found && (stmts & bit);
}

/* The smallest batch sent as a plain insert (SCHEDULE_NEW) on the caller's connection. In a
   transaction block it takes three more round trips (the count, the savepoint, its release)
   and a subtransaction: in one transaction 128-row batches ran no faster as plain inserts,
   5,000-row ones took a fifth less time; with a remote server's round trips a batch must be
   larger still to gain. */
#define PGSCHED__PG_EXT_NEW_MIN 1000
/* At most this many of those savepoints in one transaction of the caller's (see
   pgsched__pg_ext_savepoint_allowed); later batches in it go as the upsert. */
#define PGSCHED__PG_EXT_SAVEPOINTS 32

/* Whether the caller's connection may be sent a statement: open, not busy, not in pipeline
   mode, and not in a failed transaction (which is refused untouched). */
static pgsched_result pgsched__pg_ext_ready(PGconn *c, pgsched_error *err)
{
    if (PQstatus(c) != CONNECTION_OK)
        return pgsched__fail(err, PGSCHED_ERR_CONNECTION, "the caller's connection is not open");
    switch (PQtransactionStatus(c)) {
    case PQTRANS_IDLE:
    case PQTRANS_INTRANS: break;
    case PQTRANS_INERROR:
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "the caller's transaction has already failed (roll it back); "
                             "nothing was sent");
    default:
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "the caller's connection is busy with another command");
    }
#ifdef LIBPQ_HAS_PIPELINING
    if (PQpipelineStatus(c) != PQ_PIPELINE_OFF)
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "the caller's connection is in pipeline mode; leave it first");
#endif
    return PGSCHED_OK;
}

/* Prepares statement `which` (PGSCHED__PG_EXT_*) on the caller's connection, inside whatever
   transaction it has open, where an error aborts that transaction: it is prepared under its
   own name only after the catalogue says it is not (once per connection: a connection seen
   before is trusted to keep it; one whose statements the caller deallocated fails once, with
   SQLSTATE 26000, and is prepared again on the next call). No statement goes unnamed: the
   caller's unnamed statement is never replaced but by that first look-up. */
static pgsched_result pgsched__pg_ext_prepare(pgsched__pg *p, PGconn *c, int which, int nparams,
                                              pgsched_error *err)
{
    int pid = PQbackendPID(c), exists;
    unsigned bit = 1u << which;
    const char *name = p->ext_name[which];
    const char *sql = which == PGSCHED__PG_EXT_SCHEDULE       ? p->sql[PGSCHED__Q_SCHEDULE_TX]
                      : which == PGSCHED__PG_EXT_SCHEDULE_ONE ? p->sql[PGSCHED__Q_SCHEDULE_ONE]
                      : which == PGSCHED__PG_EXT_SCHEDULE_NEW ? p->sql[PGSCHED__Q_SCHEDULE_NEW_TX]
                                                              : p->ext_sql[which];
    const Oid *types = which == PGSCHED__PG_EXT_SCHEDULE_ONE
                           ? pgsched__pg_param_types(PGSCHED__Q_SCHEDULE_ONE)
                           : pgsched__pg_param_types(PGSCHED__Q_SCHEDULE);
    PGresult *res;
    pgsched_result r = PGSCHED_OK;
    if (!pgsched__pg_ext_known(p, c, pid, bit, 0, 0)) {
        const char *v[1];
        v[0] = name;
        res = PQexecParams(c,
                           "SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE name "
                           "OPERATOR(pg_catalog.=) $1::pg_catalog.text",
                           1, NULL, v, NULL, NULL, 0);
        r = pgsched__pg_check(c, res, "looking up the prepared schedule statement", err);
        exists = r == PGSCHED_OK && PQntuples(res) == 1;
        PQclear(res);
        if (r != PGSCHED_OK) return r;
        if (!exists) {
            res = PQprepare(c, name, sql, nparams, nparams ? types : NULL);
            r = pgsched__pg_check(c, res, "preparing the schedule statement", err);
            PQclear(res);
            if (r != PGSCHED_OK) return r;
        }
        pgsched__pg_ext_known(p, c, pid, bit, 0, 1);
    }
    return r;
}

/* Runs statement `which` (see pgsched__pg_ext_prepare); PGSCHED__PG_EXT_ROLLBACK only in a
   failed transaction, prepared beforehand (in a failed transaction nothing else can run). */
static pgsched_result pgsched__pg_ext_exec(pgsched__pg *p, PGconn *c, int which, int nparams,
                                           const char *const *vals, const int *lengths,
                                           const int *formats, PGresult **out,
                                           pgsched_error *err)
{
    int pid;
    unsigned bit = 1u << which;
    const char *name = p->ext_name[which], *what;
    PGresult *res;
    pgsched_result r;
    what = which <= PGSCHED__PG_EXT_SCHEDULE_NEW ? "schedule"
           : which == PGSCHED__PG_EXT_COUNT_SAVEPOINTS
               ? "counting the schedule's savepoints in the caller's transaction"
           : which == PGSCHED__PG_EXT_SAVEPOINT ? "opening the schedule's savepoint"
           : which == PGSCHED__PG_EXT_RELEASE   ? "releasing the schedule's savepoint"
                                                : "rolling back to the schedule's savepoint";
    *out = NULL;
    if (which != PGSCHED__PG_EXT_ROLLBACK) {
        r = pgsched__pg_ext_ready(c, err);
        if (r == PGSCHED_OK) r = pgsched__pg_ext_prepare(p, c, which, nparams, err);
        if (r != PGSCHED_OK) return r;
    }
    pid = PQbackendPID(c);
    res = PQexecPrepared(c, name, nparams, vals, lengths, formats, 1);
    r = pgsched__pg_check(c, res, what, err);
    if (r != PGSCHED_OK) {
        const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (code && strcmp(code, "26000") == 0) pgsched__pg_ext_known(p, c, pid, bit, 1, 0);
        PQclear(res);
        return r;
    }
    *out = res;
    return PGSCHED_OK;
}

/* A savepoint statement (PGSCHED__PG_EXT_SAVEPOINT, _RELEASE, _ROLLBACK) on the caller's
   connection. */
static pgsched_result pgsched__pg_ext_savepoint(pgsched__pg *p, PGconn *c, int which,
                                                pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = pgsched__pg_ext_exec(p, c, which, 0, NULL, NULL, NULL, &res, err);
    PQclear(res);
    return r;
}

/* Whether (*allowed) the caller's open transaction may take one more savepoint for a plain
   insert: at most PGSCHED__PG_EXT_SAVEPOINTS in one transaction, counted in a setting local to
   that transaction (so that every store on the connection counts, a savepoint of the caller's
   rolled back takes its count back with it, and the count ends with the transaction). The
   library thus never takes more than half of PostgreSQL's cache of 64 subtransactions per
   backend, beyond which every other session's snapshots cost more until the transaction
   ends. */
static pgsched_result pgsched__pg_ext_savepoint_allowed(pgsched__pg *p, PGconn *c, int *allowed,
                                                        pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = pgsched__pg_ext_exec(p, c, PGSCHED__PG_EXT_COUNT_SAVEPOINTS, 0, NULL, NULL,
                                            NULL, &res, err);
    *allowed = 0;
    if (r != PGSCHED_OK) return r;
    /* (text, in the binary format too) */
    *allowed = PQntuples(res) == 1 &&
               atoi(PQgetvalue(res, 0, 0)) <= PGSCHED__PG_EXT_SAVEPOINTS;
    PQclear(res);
    return PGSCHED_OK;
}

/* v as `bytes` big-endian bytes: an int8, int4 (or timestamptz, as int8) in binary format. */
static void pgsched__pg_be(unsigned char *o, int64_t v, size_t bytes)
{
    size_t i;
    for (i = 0; i < bytes; i++) o[i] = (unsigned char)((uint64_t)v >> (8 * (bytes - 1 - i)));
}

/* Whether a node watches (Q_WATCHED), for a batch in the caller's transaction (see
   PGSCHED__PG_SCHEDULE_BACK), asked on a pool connection that is free and connected now: 1
   (announce each row's change) when there is none or the question fails. It never waits for
   a connection: the caller's open transaction may hold the row locks that the statements
   holding them wait for. */
static int pgsched__pg_watched_now(pgsched__pg *p)
{
    pgsched__pgc *c = NULL;
    PGresult *w = NULL;
    int i, watched = 1;
    pthread_mutex_lock(&p->mu);
    for (i = 0; i < p->nconns && !c; i++)
        if (!p->conns[i].busy && p->conns[i].conn && pgsched__pg_idle_alive(p->conns[i].conn)) {
            c = &p->conns[i];
            c->busy = 1;
        }
    pthread_mutex_unlock(&p->mu);
    if (!c) return 1;
    if (pgsched__pg_exec_on(p, c, PGSCHED__Q_WATCHED, 0, NULL, NULL, NULL, &w, NULL) ==
            PGSCHED_OK &&
        PQntuples(w) == 1 && !PQgetisnull(w, 0, 0))
        watched = pgsched__pg_bool(w, 0, 0);
    PQclear(w);
    pgsched__pg_release(p, c);
    return watched;
}

/* Requests in (name, key) order; strcmp compares bytes as unsigned char, as COLLATE "C". */
static int pgsched__pg_request_cmp(const void *a, const void *b)
{
    const pgsched_schedule_request *x = *(const pgsched_schedule_request *const *)a;
    const pgsched_schedule_request *y = *(const pgsched_schedule_request *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->key, y->key);
}

/* Writes n requests in one statement, on the store's connection or (conn) the caller's. */
static pgsched_result pgsched__pg_schedule_rows(pgsched__pg *p, PGconn *conn,
                                                const pgsched_schedule_request *reqs, size_t n,
                                                pgsched_schedule_info *outs,
                                                pgsched_result *results, pgsched_error *err)
{
    /* the element types of $1..$9 and $12 (see pgsched__pg_schedule_types) */
    static const uint32_t elem[10] = {25, 25, 25, 25, 20, 25, 23, 1184, 16, 20};
    static const int param[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 11};
    pgsched__pgarr b[10];
    const char *vals[13];
    int lens[13], fmts[13];
    PGresult *res = NULL;
    pgsched_result r;
    size_t i, k, nslots, *slots;
    const pgsched_schedule_request **order;
    int row;
    if (n == 1) {
        /* one request: the lean statement (see SCHEDULE_ONE), in one round trip */
        const pgsched_schedule_request *q = &reqs[0];
        unsigned char every[8], retries[4], next[8], delay[8], flag;
        pgsched__pg_be(every, q->every, 8);
        pgsched__pg_be(retries, q->max_retries, 4);
        pgsched__pg_be(next, q->next_run - (pgsched_time)946684800 * PGSCHED_SECOND, 8);
        pgsched__pg_be(delay, q->delay, 8);
        flag = q->apply_after_run ? 1 : 0;
        vals[0] = q->name;
        vals[1] = q->key;
        vals[2] = pgsched__kind_string(q->kind);
        vals[3] = q->cron;
        vals[4] = q->kind == PGSCHED_SCHEDULE_INTERVAL ? (const char *)every : NULL;
        vals[5] = q->params;
        vals[6] = (const char *)retries;
        vals[7] = q->next_run ? (const char *)next : NULL; /* NULL: now + delay */
        vals[8] = (const char *)&flag;
        vals[9] = q->node_id;
        vals[10] = p->channel;
        vals[11] = (const char *)delay;
        for (k = 0; k < 12; k++) lens[k] = fmts[k] = 0;
        lens[4] = lens[7] = lens[11] = 8;
        lens[6] = 4;
        lens[8] = 1;
        fmts[4] = fmts[6] = fmts[7] = fmts[8] = fmts[11] = 1;
        if (conn)
            r = pgsched__pg_ext_exec(p, conn, PGSCHED__PG_EXT_SCHEDULE_ONE, 12, vals, lens,
                                     fmts, &res, err);
        /* not repeated after a lost reply: the row may have run and finished meanwhile */
        else
            r = pgsched__pg_run_bin(p, PGSCHED__Q_SCHEDULE_ONE, 12, vals, lens, fmts, 0, &res,
                                    err);
        if (r != PGSCHED_OK) return r;
    } else {
        /* in (name, key) order, bytewise as the C collation: two batches that overlap lock
           their common rows in the same order (see SCHEDULE) */
        order = (const pgsched_schedule_request **)pgsched__malloc(
            &p->alloc, (n ? n : 1) * sizeof *order);
        if (!order) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory scheduling");
        for (i = 0; i < n; i++) order[i] = &reqs[i];
        qsort(order, n, sizeof *order, pgsched__pg_request_cmp);
        for (k = 0; k < 10; k++) pgsched__pgarr_start(&b[k], &p->alloc, elem[k], n);
        for (k = 0; k < n; k++) {
            const pgsched_schedule_request *q = order[k];
            char flag = q->apply_after_run ? 1 : 0;
            pgsched__pgarr_text(&b[0], q->name);
            pgsched__pgarr_text(&b[1], q->key);
            pgsched__pgarr_text(&b[2], pgsched__kind_string(q->kind));
            pgsched__pgarr_text(&b[3], q->cron);
            if (q->kind == PGSCHED_SCHEDULE_INTERVAL) pgsched__pgarr_int(&b[4], q->every, 8);
            else pgsched__pgarr_put(&b[4], NULL, 0);
            pgsched__pgarr_text(&b[5], q->params);
            pgsched__pgarr_int(&b[6], q->max_retries, 4);
            pgsched__pgarr_time(&b[7], q->next_run);
            pgsched__pgarr_put(&b[8], &flag, 1);
            pgsched__pgarr_int(&b[9], q->delay, 8);
        }
        pgsched__free(&p->alloc, order);
        r = PGSCHED_OK;
        for (k = 0; k < 10; k++) {
            if (b[k].b.oom)
                r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory scheduling");
            vals[param[k]] = b[k].b.p;
            lens[param[k]] = (int)b[k].b.n;
            fmts[param[k]] = 1;
        }
        vals[9] = reqs[0].node_id;
        vals[10] = p->channel;
        vals[12] = "t"; /* (the _TX forms: announce each row's change, unless nobody watches) */
        lens[9] = lens[10] = lens[12] = 0;
        fmts[9] = fmts[10] = fmts[12] = 0;
        if (r == PGSCHED_OK && conn && p->notify && !pgsched__pg_watched_now(p)) vals[12] = "f";
        if (r == PGSCHED_OK) {
            /* As a plain insert while batches create rows (see SCHEDULE_NEW); after one met an
               existing row, as the upsert until a batch creates all its rows again. Neither is
               repeated after a lost reply: the rows may have run and finished meanwhile. On
               the caller's connection the plain insert goes only in batches of
               PGSCHED__PG_EXT_NEW_MIN rows or more, and, inside a transaction block, under a
               savepoint (at most PGSCHED__PG_EXT_SAVEPOINTS in one transaction) that is rolled
               back to if it meets an existing row, so that the caller's transaction goes on
               (any other error leaves that transaction failed, as the upsert's would). */
            int upsert, block = conn && PQtransactionStatus(conn) == PQTRANS_INTRANS;
            /* whether this batch may go as the plain insert, and so may set or clear the
               store's batch_upsert */
            int plain = !conn || n >= PGSCHED__PG_EXT_NEW_MIN;
            upsert = !plain;
            if (plain) {
                pthread_mutex_lock(&p->mu);
                upsert = p->batch_upsert;
                pthread_mutex_unlock(&p->mu);
            }
            if (!upsert && block) { /* (a savepoint more in the caller's transaction?) */
                int allowed = 0;
                r = pgsched__pg_ext_savepoint_allowed(p, conn, &allowed, err);
                plain = r == PGSCHED_OK && allowed;
                upsert = r == PGSCHED_OK && !allowed; /* (on an error, neither is sent) */
            }
            if (r == PGSCHED_OK && !upsert) {
                pgsched_error e;
                memset(&e, 0, sizeof e);
                /* (its roll-back prepared first: in the failed transaction nothing else can) */
                r = block ? pgsched__pg_ext_prepare(p, conn, PGSCHED__PG_EXT_ROLLBACK, 0, &e)
                          : PGSCHED_OK;
                if (r == PGSCHED_OK && block)
                    r = pgsched__pg_ext_savepoint(p, conn, PGSCHED__PG_EXT_SAVEPOINT, &e);
                if (r == PGSCHED_OK)
                    r = conn ? pgsched__pg_ext_exec(p, conn, PGSCHED__PG_EXT_SCHEDULE_NEW, 13,
                                                    vals, lens, fmts, &res, &e)
                             : pgsched__pg_run_bin(p, PGSCHED__Q_SCHEDULE_NEW, 12, vals, lens,
                                                   fmts, 0, &res, &e);
                /* (pgsched__pg_check names the SQLSTATE of a failure) */
                upsert = r == PGSCHED_ERR_DATABASE &&
                         strstr(e.message, "(SQLSTATE 23505)") != NULL;
                if (r == PGSCHED_OK && block) {
                    r = pgsched__pg_ext_savepoint(p, conn, PGSCHED__PG_EXT_RELEASE, &e);
                    if (r != PGSCHED_OK) {
                        PQclear(res);
                        res = NULL;
                    }
                }
                if (upsert && block) {
                    r = pgsched__pg_ext_savepoint(p, conn, PGSCHED__PG_EXT_ROLLBACK, &e);
                    if (r == PGSCHED_OK)
                        r = pgsched__pg_ext_savepoint(p, conn, PGSCHED__PG_EXT_RELEASE, &e);
                    if (r != PGSCHED_OK) upsert = 0;
                }
                if (r != PGSCHED_OK && !upsert && err) *err = e;
                if (upsert) {
                    pthread_mutex_lock(&p->mu);
                    p->batch_upsert = 1;
                    pthread_mutex_unlock(&p->mu);
                }
            }
            if (upsert) {
                r = conn ? pgsched__pg_ext_exec(p, conn, PGSCHED__PG_EXT_SCHEDULE, 13, vals, lens,
                                                fmts, &res, err)
                         : pgsched__pg_run_bin(p, PGSCHED__Q_SCHEDULE, 12, vals, lens, fmts, 0,
                                               &res, err);
                if (r == PGSCHED_OK && plain) {
                    int all_new = PQntuples(res) == (int)n;
                    for (row = 0; all_new && row < PQntuples(res); row++)
                        all_new = PQgetisnull(res, row, 5);
                    if (all_new) {
                        pthread_mutex_lock(&p->mu);
                        p->batch_upsert = 0;
                        pthread_mutex_unlock(&p->mu);
                    }
                }
            }
        }
        for (k = 0; k < 10; k++) pgsched__free(&p->alloc, b[k].b.p);
        if (r != PGSCHED_OK) return r;
    }
    /* the rows come back in no set order: find each one's request by (name, key) */
    for (nslots = 1; nslots < 2 * n; nslots *= 2) {}
    slots = (size_t *)pgsched__malloc(&p->alloc, nslots * sizeof *slots);
    if (!slots) {
        PQclear(res);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM,
                             "out of memory reading what schedule wrote (it was written)");
    }
    for (k = 0; k < nslots; k++) slots[k] = (size_t)-1;
    for (i = 0; i < n; i++) {
        for (k = (size_t)(pgsched__hash(reqs[i].name, reqs[i].key) & (nslots - 1));
             slots[k] != (size_t)-1; k = (k + 1) & (nslots - 1)) {}
        slots[k] = i;
        results[i] = PGSCHED_ERR_RUNNING; /* until its row is seen */
    }
    for (row = 0; row < PQntuples(res); row++) {
        const char *name = pgsched__pg_text(res, row, 0), *key = pgsched__pg_text(res, row, 1);
        const char *prev = pgsched__pg_text(res, row, 5);
        pgsched_schedule_info *o;
        if (!name || !key) continue;
        for (k = (size_t)(pgsched__hash(name, key) & (nslots - 1)); slots[k] != (size_t)-1;
             k = (k + 1) & (nslots - 1))
            if (strcmp(reqs[slots[k]].name, name) == 0 && strcmp(reqs[slots[k]].key, key) == 0)
                break;
        if (slots[k] == (size_t)-1) continue;
        i = slots[k];
        o = &outs[i];
        results[i] = PGSCHED_OK;
        o->deferred = pgsched__status_parse(pgsched__pg_text(res, row, 2)) == PGSCHED_STATUS_RUNNING;
        o->next_run = pgsched__pg_time(res, row, 3);
        o->version = pgsched__pg_int(res, row, 4);
        o->created = prev == NULL;
        o->old_status = o->deferred ? PGSCHED_STATUS_RUNNING : pgsched__status_parse(prev);
    }
    pgsched__free(&p->alloc, slots);
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_schedule(pgsched_store *s, const pgsched_schedule_request *q,
                                           void *external_conn, pgsched_schedule_info *out,
                                           pgsched_error *err)
{
    pgsched_result one, r = pgsched__pg_schedule_rows((pgsched__pg *)s, (PGconn *)external_conn,
                                                      q, 1, out, &one, err);
    if (r != PGSCHED_OK) return r;
    if (one == PGSCHED_ERR_RUNNING)
        return pgsched__err_running(err, q->name, q->key,
                                    "re-scheduling is refused unless it applies after the run");
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_schedule_many(pgsched_store *s,
                                                const pgsched_schedule_request *reqs,
                                                size_t count, pgsched_schedule_info *outs,
                                                pgsched_result *results, pgsched_error *err)
{
    return pgsched__pg_schedule_rows((pgsched__pg *)s, NULL, reqs, count, outs, results, err);
}

static pgsched_result pgsched__pg_schedule_many_tx(pgsched_store *s, void *conn,
                                                   const pgsched_schedule_request *reqs,
                                                   size_t count, pgsched_schedule_info *outs,
                                                   pgsched_result *results, pgsched_error *err)
{
    return pgsched__pg_schedule_rows((pgsched__pg *)s, (PGconn *)conn, reqs, count, outs,
                                     results, err);
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

/* Whether a statement was refused for the values of a row (SQLSTATE class 22, data exception;
   23, integrity constraint violation; 0A000, which PostgreSQL gives an infinite time turned
   into a number: pgsched__pg_check puts the code in the message) rather than for the state
   of the database; running it again would fail the same way. */
static int pgsched__pg_row_error(const pgsched_error *e)
{
    return e->code == PGSCHED_ERR_DATABASE &&
           (strstr(e->message, "(SQLSTATE 22") || strstr(e->message, "(SQLSTATE 23") ||
            strstr(e->message, "(SQLSTATE 0A000)"));
}

/* Quarantines the row (see QUARANTINE; `token` 0: a pending row) and logs it, once: the row
   leaves the state in which it was found. `*version` (optional) is its new version, 0 when
   it was no longer in that state. */
static pgsched_result pgsched__pg_quarantine(pgsched__pg *p, const char *name, const char *key,
                                             int64_t token, const char *why, const char *node,
                                             int64_t *version, pgsched_error *err)
{
    char tok[32];
    const char *vals[6];
    PGresult *res;
    pgsched_result r;
    if (version) *version = 0;
    pgsched__i64(tok, sizeof tok, token);
    vals[0] = name;
    vals[1] = key;
    vals[2] = token ? tok : NULL;
    vals[3] = why;
    vals[4] = node;
    vals[5] = p->channel;
    r = pgsched__pg_run(p, PGSCHED__Q_QUARANTINE, 6, vals, 0, &res, err);
    if (r != PGSCHED_OK) return r;
    if (PQntuples(res) == 1) {
        if (version) *version = pgsched__pg_int(res, 0, 1);
        if (p->log) {
            char msg[1024];
            snprintf(msg, sizeof msg, "job %.128s/%.200s%s cannot be processed and is "
                     "quarantined (status failed, its lease dropped): %s", name, key,
                     strlen(key) > 200 ? "..." : "", pgsched__pg_text(res, 0, 2));
            p->log(p->log_user, PGSCHED_LOG_ERROR, msg);
        }
    }
    PQclear(res);
    return pgsched__ok(err);
}

/* A claimed or taken-back row whose name or key this library would refuse (written by hand:
   too long, a control character) would fail every later call that names it, a heartbeat of
   all the node's leases included: it is quarantined instead of handed out. Returns 1 when
   the row may be handed out. */
static int pgsched__pg_row_usable(pgsched__pg *p, const pgsched_job *job, const char *node)
{
    pgsched_error ve;
    if (pgsched_validate_name(job->name, &ve) == PGSCHED_OK &&
        pgsched_validate_key(job->key, &ve) == PGSCHED_OK)
        return 1;
    /* if this fails, the row stalls and the next take-back tries again */
    pgsched__pg_quarantine(p, job->name, job->key, job->lease, ve.message, node, NULL, NULL);
    return 0;
}

/* Quarantines the due rows of the types that make every claim of them fail; returns how
   many. */
static int pgsched__pg_quarantine_due(pgsched__pg *p, const char *names, const char *node,
                                      const char *why)
{
    const char *vals[2];
    PGresult *res;
    int i, n, done = 0;
    vals[0] = names;
    vals[1] = "100";
    if (pgsched__pg_run(p, PGSCHED__Q_QUARANTINE_DUE, 2, vals, 1, &res, NULL) != PGSCHED_OK)
        return 0;
    n = PQntuples(res);
    for (i = 0; i < n; i++) {
        int64_t v = 0;
        if (pgsched__pg_quarantine(p, pgsched__pg_text(res, i, 0), pgsched__pg_text(res, i, 1), 0,
                                   why, node, &v, NULL) == PGSCHED_OK && v)
            done++;
    }
    PQclear(res);
    return done;
}

static pgsched_result pgsched__pg_claim(pgsched_store *s, const pgsched_claim_request *q,
                                        pgsched_job_list *out, pgsched_claim_info *info,
                                        pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    char max[16], lead[32];
    const char *vals[5];
    pgsched_error e;
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
    pgsched__i64(lead, sizeof lead, q->lead);
    vals[4] = lead;
    r = pgsched__pg_run(p, PGSCHED__Q_CLAIM, 5, vals, 0, &res, &e);
    if (r != PGSCHED_OK && pgsched__pg_row_error(&e)) {
        /* A due row whose values break the statement for every row of its types: take it
           out, then claim again. */
        char why[PGSCHED_ERROR_MAX + 32];
        snprintf(why, sizeof why, "claiming it failed: %s", e.message);
        if (pgsched__pg_quarantine_due(p, names, q->node_id, why) > 0)
            r = pgsched__pg_run(p, PGSCHED__Q_CLAIM, 5, vals, 0, &res, &e);
    }
    pgsched__free(&p->alloc, names);
    if (r != PGSCHED_OK) {
        if (err) *err = e;
        return r;
    }
    n = PQntuples(res);
    for (i = 0; i < n; i++) {
        pgsched_job job;
        if (i == 0) {
            info->now = pgsched__pg_time(res, 0, 0);
            info->next_due = pgsched__pg_time(res, 0, 1);
        }
        if (PQgetisnull(res, i, 2)) continue; /* the info row when nothing was claimed */
        pgsched__pg_job(res, i, 2, &job);
        if (!pgsched__pg_row_usable(p, &job, q->node_id)) continue;
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
        int64_t token = pgsched__pg_int(res, row, 4);
        if (!name) continue;
        /* by token too: a node may hold a stale lease and a fresh one on the same row */
        for (i = 0; i < count; i++)
            if (leases[i].token == token && strcmp(leases[i].name, name) == 0 &&
                strcmp(leases[i].key, key) == 0) {
                states[i].lost = 0;
                states[i].cancel_requested = pgsched__pg_bool(res, row, 3);
                states[i].busy = renew && !pgsched__pg_bool(res, row, 5);
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

static pgsched_result pgsched__pg_finish_batch(pgsched__pg *p, const pgsched_finish_request *o,
                                               size_t count, pgsched_finish_info *res_out,
                                               pgsched_error *err)
{
    pgsched__buf b[13]; /* the arrays $1..$12, then $14 */
    const char *vals[14];
    PGresult *res = NULL;
    pgsched_result r;
    size_t i;
    int k, row, n;
    memset(b, 0, sizeof b);
    for (k = 0; k < 13; k++) {
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
        pgsched__pg_array_add(&b[10],
                              o[i].cancelled_status ? pgsched_status_string(o[i].cancelled_status)
                                                    : NULL,
                              first);
        if (o[i].cancelled_status && o[i].cancelled_next_run) {
            char t[PGSCHED_TIME_STRING_MAX];
            pgsched_time_format(o[i].cancelled_next_run, 0, 1, t, sizeof t);
            pgsched__pg_array_add(&b[11], t, first);
        } else {
            pgsched__pg_array_add(&b[11], NULL, first);
        }
        pgsched__pg_array_add(&b[12], o[i].not_started ? "t" : "f", first);
        res_out[i].code = PGSCHED_ERR_LEASE_LOST;
    }
    r = PGSCHED_OK;
    for (k = 0; k < 13; k++) {
        pgsched__buf_add(&b[k], "}", 1);
        if (b[k].oom) r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory recording outcomes");
        vals[k < 12 ? k : 13] = b[k].p;
    }
    vals[12] = p->channel;
    /* Safe to send again after a lost reply: the lease token fences it, and an outcome
       already recorded comes back as replayed. */
    if (r == PGSCHED_OK) r = pgsched__pg_run(p, PGSCHED__Q_FINISH, 14, vals, 1, &res, err);
    for (k = 0; k < 13; k++) pgsched__free(&p->alloc, b[k].p);
    if (r != PGSCHED_OK) {
        for (i = 0; i < count; i++) res_out[i].code = r;
        return r;
    }
    n = PQntuples(res);
    for (row = 0; row < n; row++) {
        int64_t idx = pgsched__pg_int(res, row, 0) - 1;
        const char *st = pgsched__pg_text(res, row, 1), *flag = pgsched__pg_text(res, row, 5);
        if (idx < 0 || (size_t)idx >= count) continue;
        if (!st) {
            if (flag && strcmp(flag, "replayed") == 0) {
                res_out[idx].code = PGSCHED_OK;
                res_out[idx].replayed = 1;
            } else if (flag && strcmp(flag, "busy") == 0) {
                res_out[idx].code = PGSCHED_ERR_BUSY;
            }
            continue;
        }
        res_out[idx].code = PGSCHED_OK;
        res_out[idx].outcome = pgsched__outcome_parse(pgsched__pg_text(res, row, 4));
        res_out[idx].new_status = pgsched__status_parse(st);
        res_out[idx].next_run = pgsched__pg_time(res, row, 2);
        res_out[idx].version = pgsched__pg_int(res, row, 3);
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_finish(pgsched_store *s, const pgsched_finish_request *o, size_t count,
                                         pgsched_finish_info *res_out, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    pgsched_error e;
    char why[PGSCHED_ERROR_MAX + 40];
    int64_t version = 0;
    size_t i;
    pgsched_result r = pgsched__pg_finish_batch(p, o, count, res_out, &e);
    if (r == PGSCHED_OK || !pgsched__pg_row_error(&e)) {
        if (err) *err = e;
        return r;
    }
    if (count > 1) {
        /* One row's values broke the batch (a counter at its limit, a deferred change
           written by hand): each outcome alone, so that only that row's fails. Any other
           failure fails the batch, which is sent again: the outcomes written meanwhile then
           come back replayed. */
        for (i = 0; i < count; i++) {
            r = pgsched__pg_finish(s, &o[i], 1, &res_out[i], &e);
            if (r != PGSCHED_OK) break;
        }
        if (r != PGSCHED_OK) {
            for (i = 0; i < count; i++) res_out[i].code = r;
            if (err) *err = e;
            return r;
        }
        return pgsched__ok(err);
    }
    snprintf(why, sizeof why, "the outcome could not be written: %s", e.message);
    r = pgsched__pg_quarantine(p, o->name, o->key, o->token, why, o->node_id, &version, err);
    memset(res_out, 0, sizeof *res_out);
    res_out->code = r != PGSCHED_OK ? r : version ? PGSCHED_OK : PGSCHED_ERR_LEASE_LOST;
    if (version) {
        res_out->outcome = o->outcome;
        res_out->new_status = PGSCHED_STATUS_FAILED;
        res_out->version = version;
    }
    return r;
}

static pgsched_result pgsched__pg_take_back(pgsched_store *s, const char *node_id,
                                            pgsched_duration stall_timeout, int max,
                                            pgsched_job_list *out, pgsched_take_back_info *info,
                                            pgsched_error *err)
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
        if (i == 0) {
            pgsched_time oldest = pgsched__pg_time(res, 0, 1);
            info->now = pgsched__pg_time(res, 0, 0);
            /* a row without a heartbeat time reads as the earliest time there is */
            info->next_stall = PQgetisnull(res, 0, 1) ? 0 : oldest + stall_timeout;
        }
        if (PQgetisnull(res, i, 2)) continue; /* the info row when nothing was taken */
        pgsched__pg_job(res, i, 2, &job);
        if (!pgsched__pg_row_usable(p, &job, node_id)) continue;
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
    /* not repeated after a lost reply: a remove could delete a row created meanwhile, a
       trigger make a finished run due again, a cancel report the wrong effect */
    r = pgsched__pg_run(p, q, 4, vals, 0, res, err);
    if (r != PGSCHED_OK) return r;
    if (PQntuples(*res) == 0) {
        PQclear(*res);
        *res = NULL;
        return pgsched__err_not_found(err, name, key);
    }
    return PGSCHED_OK;
}

static pgsched_result pgsched__pg_cancel(pgsched_store *s, const char *name, const char *key,
                                         const char *node_id, pgsched_change_info *out,
                                         pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = pgsched__pg_change((pgsched__pg *)s, PGSCHED__Q_CANCEL, name, key, node_id,
                                          &res, err);
    if (r != PGSCHED_OK) return r;
    out->old_status = pgsched__status_parse(pgsched__pg_text(res, 0, 0));
    out->version = pgsched__pg_int(res, 0, 2);
    if (PQgetisnull(res, 0, 1)) {
        out->effect = PGSCHED_CHANGE_NONE;
        out->new_status = out->old_status;
    } else if (out->old_status == PGSCHED_STATUS_RUNNING) {
        out->effect = PGSCHED_CHANGE_CANCEL_REQUESTED;
        out->new_status = PGSCHED_STATUS_RUNNING;
        pgsched__copy_text(out->owner, sizeof out->owner, pgsched__pg_text(res, 0, 3));
    } else {
        out->effect = PGSCHED_CHANGE_CANCELLED;
        out->new_status = PGSCHED_STATUS_CANCELLED;
    }
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_trigger(pgsched_store *s, const char *name, const char *key,
                                          const char *node_id, pgsched_change_info *out,
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
        if (st == PGSCHED_STATUS_RUNNING) return pgsched__err_running(err, name, key, "it cannot be triggered");
        return pgsched__err_not_pending(err, name, key, st);
    }
    out->old_status = out->new_status = PGSCHED_STATUS_PENDING;
    out->next_run = pgsched__pg_time(res, 0, 1);
    out->version = pgsched__pg_int(res, 0, 2);
    PQclear(res);
    return pgsched__ok(err);
}

static pgsched_result pgsched__pg_remove(pgsched_store *s, const char *name, const char *key,
                                         const char *node_id, pgsched_change_info *out,
                                         pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = pgsched__pg_change((pgsched__pg *)s, PGSCHED__Q_REMOVE, name, key, node_id,
                                          &res, err);
    if (r != PGSCHED_OK) return r;
    out->old_status = pgsched__status_parse(pgsched__pg_text(res, 0, 0));
    out->version = pgsched__pg_int(res, 0, 2);
    if (pgsched__pg_bool(res, 0, 3)) {
        out->effect = PGSCHED_CHANGE_REMOVED;
        out->new_status = PGSCHED_STATUS_NONE;
    } else {
        out->effect = PGSCHED_CHANGE_REMOVE_DEFERRED;
        out->new_status = PGSCHED_STATUS_RUNNING;
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
    vals[2] = f->after_name ? f->after_name : ""; /* ('', ''): below every row */
    vals[3] = f->after_name ? f->after_key : "";
    vals[4] = limit;
    r = pgsched__pg_run(p, f->name ? PGSCHED__Q_LIST : PGSCHED__Q_LIST_ALL, 5, vals, 1, &res,
                        err);
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
    r = pgsched__pg_run(p,
                        !name ? PGSCHED__Q_HISTORY_ALL
                        : !key ? PGSCHED__Q_HISTORY_NAME
                               : PGSCHED__Q_HISTORY,
                        3, vals, 1, &res, err);
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

/* Runs a statement whose result rows are not needed (an idempotent one: retried once on a
   dead connection). */
static pgsched_result pgsched__pg_command(pgsched__pg *p, int q, int nparams,
                                          const char *const *vals, pgsched_error *err)
{
    PGresult *res;
    pgsched_result r = pgsched__pg_run(p, q, nparams, vals, 1, &res, err);
    if (r != PGSCHED_OK) return r;
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
    const char *vals[5];
    char pid[32];
    char *arr = pgsched__pg_names_array(p, rec->names, rec->name_count);
    pgsched_result r;
    if (!arr) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
    pgsched__i64(pid, sizeof pid, rec->pid);
    vals[0] = rec->id;
    vals[1] = rec->host ? rec->host : "";
    vals[2] = pid;
    vals[3] = arr;
    vals[4] = rec->status_events ? "true" : "false";
    r = pgsched__pg_command(p, PGSCHED__Q_NODE_REGISTER, 5, vals, err);
    pgsched__free(&p->alloc, arr);
    return r;
}

static pgsched_result pgsched__pg_node_unregister(pgsched_store *s, const char *node_id,
                                                  pgsched_error *err)
{
    const char *vals[1];
    vals[0] = node_id;
    return pgsched__pg_command((pgsched__pg *)s, PGSCHED__Q_NODE_UNREGISTER, 1, vals, err);
}

static pgsched_result pgsched__pg_cleanup(pgsched_store *s, const pgsched_cleanup_request *q,
                                          pgsched_cleanup_info *out, pgsched_error *err)
{
    pgsched__pg *p = (pgsched__pg *)s;
    const pgsched_duration cap = PGSCHED__DURATION_MAX;
    char f[32], h[32], nd[32], o[32], lim[32];
    const char *vals[6];
    PGresult *res;
    pgsched_result r;
    pgsched__i64(lim, sizeof lim, (int64_t)q->limit);
    memset(vals, 0, sizeof vals);
    if (q->finished_retention != PGSCHED_NEVER) {
        pgsched__i64(f, sizeof f, q->finished_retention > cap ? cap : q->finished_retention);
        vals[0] = f;
    }
    if (q->history_retention != PGSCHED_NEVER) {
        pgsched_duration keep = pgsched__node_retention(q);
        pgsched__i64(h, sizeof h, q->history_retention > cap ? cap : q->history_retention);
        pgsched__i64(nd, sizeof nd, keep > cap ? cap : keep);
        vals[1] = h;
        vals[2] = nd;
    }
    if (q->orphan_timeout != PGSCHED_NEVER) {
        pgsched__i64(o, sizeof o, q->orphan_timeout > cap ? cap : q->orphan_timeout);
        vals[3] = o;
    }
    vals[4] = lim;
    vals[5] = q->node_id;
    r = pgsched__pg_run(p, PGSCHED__Q_CLEANUP, 6, vals, 1, &res, err);
    if (r != PGSCHED_OK) return r;
    out->finished_deleted += (size_t)pgsched__pg_int(res, 0, 0);
    out->history_deleted += (size_t)pgsched__pg_int(res, 0, 1);
    out->nodes_deleted += (size_t)pgsched__pg_int(res, 0, 2);
    out->orphans_deleted += (size_t)pgsched__pg_int(res, 0, 3);
    PQclear(res);
    return pgsched__ok(err);
}

/* ---- listening ---- */

typedef struct pgsched__pglistener {
    PGconn *conn;
    PGnotify *pending; /* a payload whose events are not all handed out yet */
    size_t pos;        /* where its next line starts */
    int wake_fd[2]; /* a self-pipe: listen_wake writes a byte, poll() sees it */
    int need_resync;
    int hints_only; /* change events handed out unconfirmed (pgsched__pg_listen_hints_only) */
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
        l->backoff = l->backoff * 2 > p->reconnect_max ? p->reconnect_max : l->backoff * 2;
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
    fcntl(l->wake_fd[0], F_SETFD, FD_CLOEXEC);
    fcntl(l->wake_fd[1], F_SETFD, FD_CLOEXEC);
    l->backoff = p->reconnect_min;
    /* A first connection that fails is retried by listen_wait, which then reports a resync:
       the listener exists either way so the caller's set-up does not depend on timing. */
    if (pgsched__pg_listen_connect(p, l, NULL) != PGSCHED_OK) l->need_resync = 1;
    *out = (pgsched_listener *)(void *)l;
    return pgsched__ok(err);
}

/* Parses one line of a payload (len bytes at s) into an event; 0 when it is not ours or
   malformed (then: resync). */
static int pgsched__pg_parse_event(const char *s, size_t n, pgsched_event *ev)
{
    char buf[1200];
    char *f[10];
    int nf = 0;
    char *c;
    if (n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    c = buf;
    f[nf++] = c;
    while (*c && nf < 10) {
        if (*c == '\t') {
            *c = '\0';
            f[nf++] = c + 1;
        }
        c++;
    }
    memset(ev, 0, sizeof *ev);
    if (strcmp(f[0], "C") == 0 && nf == 8) {
        ev->kind = PGSCHED_EVENT_CHANGE;
        ev->old_status = pgsched__status_parse(f[3]);
        ev->new_status = pgsched__status_parse(f[4]);
        ev->version = strtoll(f[5], NULL, 10);
        pgsched__copy_text(ev->node, sizeof ev->node, f[6]);
        ev->next_run = f[7][0] ? strtoll(f[7], NULL, 10) : 0;
    } else if (strcmp(f[0], "D") == 0 && nf == 4) {
        if (strlen(f[1]) > PGSCHED_NAME_MAX || !f[3][0]) return 0;
        ev->kind = PGSCHED_EVENT_DUE;
        pgsched__copy_text(ev->name, sizeof ev->name, f[1]);
        pgsched__copy_text(ev->node, sizeof ev->node, f[2]);
        ev->next_run = strtoll(f[3], NULL, 10);
        return 1;
    } else if (strcmp(f[0], "X") == 0 && nf == 6) {
        ev->kind = PGSCHED_EVENT_CANCEL;
        ev->old_status = ev->new_status = PGSCHED_STATUS_RUNNING;
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

/* Hands out the events of the pending payload, one per line, into events[n..cap); returns
   the new n. A line that is not an event becomes a resync, and so do several in a row (one
   is enough). The payload is freed once every line is out. */
static size_t pgsched__pg_take_lines(pgsched__pglistener *l, pgsched_event *events, size_t n,
                                     size_t cap)
{
    while (l->pending && n < cap) {
        const char *s = l->pending->extra + l->pos;
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (!pgsched__pg_parse_event(s, len, &events[n])) {
            memset(&events[n], 0, sizeof events[n]);
            events[n].kind = PGSCHED_EVENT_RESYNC;
        }
        if (events[n].kind != PGSCHED_EVENT_RESYNC || n == 0 ||
            events[n - 1].kind != PGSCHED_EVENT_RESYNC)
            n++;
        if (e) {
            l->pos += len + 1;
        } else {
            PQfreemem(l->pending);
            l->pending = NULL;
            l->pos = 0;
        }
    }
    return n;
}

/* Keeps the changes of events[0..n) that the table confirms and drops the others; returns
   the new count. Anyone who can connect may NOTIFY on the channel, so a change event is only
   a hint of where to look. It is delivered when its row's version is at least the event's
   (the same version with the same status, or a later one: the row changed again since, as
   versions only grow) or, for a removal, when the row is gone. An event naming a future
   version, a status the row never had at that version, or a row that does not exist is
   dropped. (Not confirmed: the old status and due time of a change already overtaken, and
   the changes of a row removed before this read; the former cannot be told from history,
   the latter are given up.) A batch that cannot be read becomes one resync. */
static size_t pgsched__pg_confirm(pgsched__pg *p, pgsched_event *events, size_t n)
{
    pgsched__buf bn, bk;
    const char *vals[2];
    PGresult *res = NULL;
    size_t i, k = 0, want = 0;
    int row, rows, ok = 0;
    char *flags;
    for (i = 0; i < n; i++)
        if (events[i].kind == PGSCHED_EVENT_CHANGE) want++;
    if (!want) return n;
    flags = (char *)pgsched__calloc(&p->alloc, n);
    memset(&bn, 0, sizeof bn);
    bn.a = &p->alloc;
    bk = bn;
    pgsched__buf_add(&bn, "{", 1);
    pgsched__buf_add(&bk, "{", 1);
    for (i = 0; i < n; i++) {
        pgsched__pg_array_add(&bn, events[i].name, i == 0);
        pgsched__pg_array_add(&bk, events[i].key, i == 0);
    }
    pgsched__buf_add(&bn, "}", 1);
    pgsched__buf_add(&bk, "}", 1);
    if (flags && !bn.oom && !bk.oom) {
        vals[0] = bn.p;
        vals[1] = bk.p;
        pthread_mutex_lock(&p->mu);
        p->confirm_statements++;
        pthread_mutex_unlock(&p->mu);
        ok = pgsched__pg_run(p, PGSCHED__Q_CONFIRM, 2, vals, 1, &res, NULL) == PGSCHED_OK;
    }
    rows = ok ? PQntuples(res) : 0;
    for (row = 0; row < rows; row++) {
        int64_t idx = pgsched__pg_int(res, row, 0) - 1;
        const pgsched_event *v;
        if (idx < 0 || (size_t)idx >= n) continue;
        v = &events[idx];
        if (v->kind != PGSCHED_EVENT_CHANGE) continue;
        if (PQgetisnull(res, row, 2)) {
            flags[idx] = v->new_status == PGSCHED_STATUS_NONE;
        } else {
            int64_t version = pgsched__pg_int(res, row, 2);
            flags[idx] = version > v->version ||
                         (version == v->version &&
                          pgsched__status_parse(pgsched__pg_text(res, row, 1)) == v->new_status);
        }
    }
    PQclear(res);
    pgsched__free(&p->alloc, bn.p);
    pgsched__free(&p->alloc, bk.p);
    for (i = 0; i < n; i++)
        if (events[i].kind != PGSCHED_EVENT_CHANGE || (ok && flags[i])) events[k++] = events[i];
    if (!ok) {
        memset(&events[k], 0, sizeof events[k]);
        events[k++].kind = PGSCHED_EVENT_RESYNC;
    }
    pgsched__free(&p->alloc, flags);
    return k;
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
        if (l->conn && l->need_resync && n < cap) {
            /* Back after a gap: events may have been missed, the caller must poll. */
            memset(&events[n], 0, sizeof events[n]);
            events[n++].kind = PGSCHED_EVENT_RESYNC;
            l->need_resync = 0;
        }
        if (l->conn && n < cap) {
            /* The socket is read only once libpq's queue is drained: a flood of notifications
               waits in the server's queue, not in this process's memory. A payload carries
               one event or many (a line each); what does not fit in events waits in
               l->pending for the next call. */
            if (!l->pending) l->pending = PQnotifies(l->conn);
            if (!l->pending) {
                if (!PQconsumeInput(l->conn)) {
                    /* The connection is gone; reconnect now, then report a resync. */
                    PQfinish(l->conn);
                    l->conn = NULL;
                    l->need_resync = 1;
                    l->retry_at = 0;
                    continue;
                }
                l->pending = PQnotifies(l->conn);
            }
            if (l->pending) {
                do {
                    n = pgsched__pg_take_lines(l, events, n, cap);
                    if (!l->pending && n < cap) l->pending = PQnotifies(l->conn);
                } while (l->pending && n < cap);
                if (!l->hints_only) n = pgsched__pg_confirm(p, events, n);
                /* libpq's queue may hold more than one batch, where poll() cannot see them:
                   look there first (a wake and the deadline still end the wait) */
                if (n == 0) {
                    if (read(l->wake_fd[0], drain, sizeof drain) > 0) {
                        while (read(l->wake_fd[0], drain, sizeof drain) > 0) {}
                        break;
                    }
                    if (pgsched__monotonic() < deadline) continue;
                    break;
                }
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
    if (l->pending) PQfreemem(l->pending);
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
    pgsched__pg_schedule_many,
    pgsched__pg_schedule_many_tx,
};

/* For a node that reads change events only as hints (no on_status: a pending row's due time
   wakes its dispatcher, whose claim then reads the table): this store's listener hands them
   out without confirming them against the table. Each confirmation is a statement, and every
   node receives every change of the cluster, so with N nodes the cluster would run N of them
   per batch of changes, a cost per job that grows with the number of nodes. A forged hint
   costs a claim that finds nothing, as a forged one that survived confirmation would.
   Other stores' listeners are left as they are. */
static void pgsched__pg_listen_hints_only(pgsched_store *s, pgsched_listener *lh)
{
    if (s->methods == &pgsched__pg_methods) ((pgsched__pglistener *)(void *)lh)->hints_only = 1;
}

PGSCHED_DEF pgsched_result pgsched_pg_store_create(const pgsched_pg_config *cfg,
                                                   pgsched_store **out, pgsched_error *err)
{
    pgsched_allocator a;
    pgsched__pg *p;
    pgsched_pg_config c;
    const char *schema, *prefix;
    pgsched_result r;
    int i;
    if (!out) return pgsched__null(err, "the output store");
    *out = NULL;
    if (!cfg) return pgsched__null(err, "the PostgreSQL store configuration");
    if ((r = pgsched__pg_config_resolve(cfg, "", &c, err)) != PGSCHED_OK) return r;
    cfg = &c;
    schema = c.schema;
    prefix = c.prefix;
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
    snprintf(p->lock_key, sizeof p->lock_key, "pgsched migrate %s", schema);
    p->notify = !cfg->no_notifications;
    p->no_create = cfg->no_create_schema;
    p->log = cfg->log;
    p->log_user = cfg->log_user;
    p->reconnect_min = c.reconnect_min;
    p->reconnect_max = c.reconnect_max;
    p->backoff = p->reconnect_min;
    p->conninfo = pgsched__strdup(&a, c.conninfo);
    p->conns = (pgsched__pgc *)pgsched__calloc(&a, (size_t)c.pool_size * sizeof *p->conns);
    p->nconns = c.pool_size;
    r = p->conninfo && p->conns ? PGSCHED_OK : PGSCHED_ERR_NOMEM;
    for (i = 0; i < PGSCHED__Q_COUNT && r == PGSCHED_OK; i++) {
        char *head = pgsched__pg_expand(p, pgsched__pg_templates[i]);
        char *tail = pgsched__pg_expand(p, pgsched__pg_template_tail(i));
        char *end = pgsched__pg_expand(p, pgsched__pg_template_end(i));
        p->sql[i] = head && tail && end ? (char *)pgsched__malloc(&p->alloc, strlen(head) +
                                                                  strlen(tail) + strlen(end) + 1)
                                        : NULL;
        if (p->sql[i]) {
            memcpy(p->sql[i], head, strlen(head));
            memcpy(p->sql[i] + strlen(head), tail, strlen(tail));
            memcpy(p->sql[i] + strlen(head) + strlen(tail), end, strlen(end) + 1);
        }
        pgsched__free(&p->alloc, head);
        pgsched__free(&p->alloc, tail);
        pgsched__free(&p->alloc, end);
        if (!p->sql[i]) r = PGSCHED_ERR_NOMEM;
    }
    if (r != PGSCHED_OK || pthread_mutex_init(&p->mu, NULL) != 0) {
        for (i = 0; i < PGSCHED__Q_COUNT; i++) pgsched__free(&a, p->sql[i]);
        pgsched__free(&a, p->conns);
        pgsched__free(&a, p->conninfo);
        pgsched__free(&a, p);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a store");
    }
    snprintf(p->ext_name[0], sizeof p->ext_name[0], "pgsched_schedule_%016llx",
             (unsigned long long)pgsched__hash(p->sql[PGSCHED__Q_SCHEDULE_TX],
                                               "binary arrays, 13")); /* its parameters too */
    snprintf(p->ext_name[1], sizeof p->ext_name[1], "pgsched_schedule1_%016llx",
             (unsigned long long)pgsched__hash(p->sql[PGSCHED__Q_SCHEDULE_ONE], "binary"));
    snprintf(p->ext_name[2], sizeof p->ext_name[2], "pgsched_schedulen_%016llx",
             (unsigned long long)pgsched__hash(p->sql[PGSCHED__Q_SCHEDULE_NEW_TX],
                                               "binary arrays, 13"));
    {
        /* The savepoint's name is the store's own (no caller picks it, so a caller's ROLLBACK
           TO SAVEPOINT never lands on it), its statements are named like the others. */
        static const char *const kind[PGSCHED__PG_EXT_COUNT] = {"", "", "", "c", "s", "r", "b"};
        unsigned long long h = (unsigned long long)pgsched__hash(
            p->sql[PGSCHED__Q_SCHEDULE_NEW_TX], "savepoint");
        for (i = PGSCHED__PG_EXT_COUNT_SAVEPOINTS; i < PGSCHED__PG_EXT_COUNT; i++)
            snprintf(p->ext_name[i], sizeof p->ext_name[i], "pgsched_schedule%s_%016llx",
                     kind[i], h);
        snprintf(p->ext_sql[PGSCHED__PG_EXT_COUNT_SAVEPOINTS],
                 sizeof p->ext_sql[PGSCHED__PG_EXT_COUNT_SAVEPOINTS],
                 "SELECT pg_catalog.set_config('pgsched.schedule_savepoints', ((CASE WHEN "
                 "pg_catalog.current_setting('pgsched.schedule_savepoints', true) "
                 "OPERATOR(pg_catalog.<>) '' THEN "
                 "pg_catalog.current_setting('pgsched.schedule_savepoints', true) ELSE '0' "
                 "END)::pg_catalog.int4 OPERATOR(pg_catalog.+) 1)::pg_catalog.text, true)");
        snprintf(p->ext_sql[PGSCHED__PG_EXT_SAVEPOINT], sizeof p->ext_sql[0],
                 "SAVEPOINT pgsched_schedule_%016llx", h);
        snprintf(p->ext_sql[PGSCHED__PG_EXT_RELEASE], sizeof p->ext_sql[0],
                 "RELEASE SAVEPOINT pgsched_schedule_%016llx", h);
        snprintf(p->ext_sql[PGSCHED__PG_EXT_ROLLBACK], sizeof p->ext_sql[0],
                 "ROLLBACK TO SAVEPOINT pgsched_schedule_%016llx", h);
    }
    pgsched__cond_init(&p->cv);
    *out = &p->base;
    return pgsched__ok(err);
}

#endif /* PGSCHED_NO_LIBPQ */

static size_t pgsched__store_lanes(pgsched_store *s)
{
#ifndef PGSCHED_NO_LIBPQ
    if (s->methods == &pgsched__pg_methods) {
        size_t n = (size_t)((pgsched__pg *)s)->nconns;
        return n <= 2 ? 1 : n - 1 > PGSCHED__LANES_MAX ? PGSCHED__LANES_MAX : n - 1;
    }
#else
    PGSCHED__UNUSED(s);
#endif
    return 1;
}

/* ---- [pgsched: engine] implementation -------------------------------------------------------
   Threads of a node:
   - the dispatcher: claims, records outcomes, heartbeats, cancel checks, timeouts, stall
     take-back and clean-up; it alone calls those store methods, so they never overlap;
   - workers, one per run slot (max_concurrent): each waits for its slot to be filled, runs the
     handler, computes the outcome and queues it for the dispatcher;
   - a listener (notifications on): turns store events into wake-ups, cancels and callbacks;
   - a callback thread: calls on_status in order, one event at a time.
   One mutex (node->mu) guards the node's state; no store call is made while holding it.
   start_mu (taken before mu, never after) serialises init, start and the start of shutdown,
   which do store I/O. */

/* Values read without the node mutex (a run's cancel flag, the store clock offset). */
#if defined(__GNUC__) || defined(__clang__)
#define PGSCHED__LOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define PGSCHED__STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#else
#define PGSCHED__LOAD(p) (*(p))
#define PGSCHED__STORE(p, v) (*(p) = (v))
#endif

enum { PGSCHED__CREATED, PGSCHED__INITIALIZED, PGSCHED__STARTED, PGSCHED__STOPPING,
       PGSCHED__STOPPED };

/* Why a run was asked to stop (the values of pgsched_cancel_reason). */
enum { PGSCHED__CANCEL_NONE = PGSCHED_CANCEL_REASON_NONE,
       PGSCHED__CANCEL_REQUESTED = PGSCHED_CANCEL_REASON_REQUEST,
       PGSCHED__CANCEL_TIMEOUT = PGSCHED_CANCEL_REASON_TIMEOUT,
       PGSCHED__CANCEL_LEASE_LOST = PGSCHED_CANCEL_REASON_LEASE_LOST,
       PGSCHED__CANCEL_SHUTDOWN = PGSCHED_CANCEL_REASON_SHUTDOWN };

enum { PGSCHED__SLOT_FREE, PGSCHED__SLOT_READY, PGSCHED__SLOT_RUNNING };

#define PGSCHED__CRON_CACHE_MAX 1024
#define PGSCHED__EVENT_BATCH 64
#define PGSCHED__TAKE_BACK_BATCH 100
/* Cancel notifications only wake a read of the node's own leases; whoever floods the channel
   with them (any role that can connect) costs the database at most one such read per gap. */
#define PGSCHED__CANCEL_WAKE_GAP (10 * PGSCHED_MILLISECOND)
/* A claim's lead: at most this (a store takes up to 1 s), forgetting a slow claim by half
   over about 1.4 times PGSCHED__LEAD_MEMORY (see pgsched__claim). */
#define PGSCHED__LEAD_MAX (500 * PGSCHED_MILLISECOND)
#define PGSCHED__LEAD_MEMORY (60 * PGSCHED_SECOND)

/* Registered types form a list that only grows (until destroy), prepended with a release
   store: any thread may walk it without the lock, and a type's address never changes. */
typedef struct pgsched__type {
    pgsched_job_type t; /* t.name points to `name` */
    char *name;
    struct pgsched__type *next;
    pgsched_type_counters c; /* under the node's mu */
} pgsched__type;

/* Adds d to a counter of type t (reached through a const pointer: a type is never const
   itself), if there is such a type here. Callers hold the node's mu. */
#define PGSCHED__TC_ADD(t, field, d)                                                              \
    do {                                                                                          \
        if (t) ((pgsched__type *)(t))->c.field += (d);                                           \
    } while (0)

static const pgsched_duration pgsched__hist_bounds[PGSCHED_HISTOGRAM_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000};

static void pgsched__observe(pgsched_histogram *h, pgsched_duration d)
{
    size_t i = 0;
    while (i < PGSCHED_HISTOGRAM_BUCKETS - 1 && d > pgsched__hist_bounds[i]) i++;
    h->buckets[i]++;
    h->count++;
    h->sum += d;
}

/* One claimed row with its strings in one block it owns: a slot's run, a queued row. A row
   moves from the claim's list to the queue, to a slot, and on to its pending outcome without
   a copy, so that workers neither allocate nor free: with glibc, each thread that calls
   malloc or free gets a malloc arena of its own, whose memory stays with the process (about
   100 kB a worker, more as freed blocks drift between arenas). */
typedef struct pgsched__held {
    pgsched_job items[1]; /* items[0] while count is 1 */
    size_t count;
    void *block; /* the strings of items[0] */
} pgsched__held;

/* One run slot; the public run context comes first so a pgsched_run * is a slot pointer. */
typedef struct pgsched__slot {
    pgsched_run run;
    struct pgsched_node *node;
    int index;
    int state;
    int cancel;          /* PGSCHED__CANCEL_*; read by handlers without the lock */
    int lost_counted;    /* its lease was counted lost (heartbeat or self-fencing): once */
    pgsched__held job;
    const pgsched__type *type;
    pgsched_time deadline;      /* monotonic; PGSCHED_NEVER without a timeout */
    pgsched_time renewed;       /* monotonic: when a claim or heartbeat that renewed the lease
                                   was sent (its age can only be overstated: the safe side) */
    pgsched_time started_mono;
    char *error;                /* set by pgsched_run_set_error */
    pthread_cond_t cv;
    pthread_t thread;
    int thread_started;
} pgsched__slot;

/* An outcome waiting to be written (its lease still held in the store). */
typedef struct pgsched__pending {
    pgsched_finish_request o;
    char *name, *key, *error;
    void *block; /* non-NULL: name and key point into this block (the run's row), not copies */
    int counter;      /* which counter to bump when written */
    int lost_counted; /* its run was already counted as lease_lost (self-fencing) */
    pgsched_time not_before;     /* monotonic: its row was locked by another transaction */
    pgsched_duration busy_wait;  /* how long it waited last time its row was locked */
} pgsched__pending;

/* A row claimed ahead of a free worker. Its lease is renewed like a running one's. */
typedef struct pgsched__queued {
    pgsched__held one; /* the row */
    pgsched_time renewed; /* monotonic: when its lease was last known renewed */
    pgsched_time queued_at; /* monotonic */
} pgsched__queued;

enum { PGSCHED__COUNT_NONE, PGSCHED__COUNT_SUCCESS, PGSCHED__COUNT_FAILURE,
       PGSCHED__COUNT_RETRY, PGSCHED__COUNT_CANCELLED, PGSCHED__COUNT_STALLED };

typedef struct pgsched__cbev {
    pgsched_status_event ev;
    pgsched_time ready_at; /* monotonic: not delivered before (0 = at once) */
    char name[PGSCHED_NAME_MAX + 1];
    char key[PGSCHED_KEY_MAX + 1];
    char node[PGSCHED_NODE_ID_MAX + 1];
} pgsched__cbev;

/* A change of this node waiting for (or already matched with) its notification. */
typedef struct pgsched__own {
    int64_t version; /* 0: empty slot */
    int delivered;
    pgsched_time expires; /* monotonic */
    pgsched__cbev ev;
} pgsched__own;

typedef struct pgsched__otimer {
    int64_t version;
    pgsched_time at;
} pgsched__otimer;

/* A FIFO of timers that all have the same delay, so they expire in the order they were put:
   one for changes waiting for their notification, one for changes already delivered. */
typedef struct pgsched__ofifo {
    pgsched__otimer *q;
    size_t head, count, cap;
} pgsched__ofifo;

typedef struct pgsched__cron_entry {
    char *text;
    pgsched_cron *cron;
} pgsched__cron_entry;

struct pgsched_node {
    pgsched_allocator alloc;
    pgsched_config cfg; /* defaults applied; strings below are copies */
    pgsched_allocator pg_alloc; /* a copy of cfg.pg.allocator, when given */
    int claim_ahead; /* cfg.claim_ahead, PGSCHED_NO_CLAIM_AHEAD as 0 */
    char *conninfo, *schema, *prefix, *default_zone;
    char id[PGSCHED_NODE_ID_MAX + 1];
    char host[256];
    pgsched_store *store;
    int owns_store;
    int state;
    int notifications;

    pgsched__type *types; /* newest first; read with PGSCHED__LOAD */
    size_t ntypes;
    /* held across init and start (which do store I/O, so not under mu), so that concurrent
       calls neither start the node twice nor create two stores; shutdown waits for it */
    pgsched__rlock start_mu;
    int starting; /* start is past its checks: no more types */
    const char **run_names; /* types with a handler: what this node claims */
    size_t nrun;
    const char **all_names;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the dispatcher */
    pthread_cond_t done_cv; /* shutdown_done became 1 */
    pthread_cond_t listen_cv; /* the listener's wait after a failed listen: the state changed */
    pthread_cond_t writer_cv; /* wakes the outcome writer */
    int shutdown_done;
    pthread_t dispatcher, listener, callbacker, writer;
    int dispatcher_started, listener_started, callbacker_started;
    /* The outcome writer (started and joined by the dispatcher) writes outcomes on a
       connection of its own, so that outcomes and claims do not wait for each other's
       commits. Without it (its thread could not start) the dispatcher writes them. */
    int writer_started, writer_stop;
    int writer_hold; /* start no batch: the dispatcher renews leases or compares the store
                        with memory (see pgsched__writer_pause) */
    pgsched_listener *listen;

    pgsched__slot *slots;
    int nslots, free_slots;
    pgsched__pending *pending;
    size_t npending, pending_cap;
    /* the batch being written: taken out of `pending`, its leases still held */
    const pgsched__pending *flushing;
    size_t nflushing, flushing_cap;
    /* the array of the last batch written, kept to become `pending` again (no worker needs
       to grow a fresh one after each batch) */
    pgsched__pending *pending_spare;
    size_t spare_cap;
    /* claimed ahead, waiting for a free worker, oldest first */
    pgsched__queued *queue; /* entries queue[qhead .. qhead + nqueued - 1] */
    int qhead, nqueued, queue_cap;
    pgsched_time queue_moved;        /* monotonic: a queued row last went to a worker */
    pgsched_time ahead_paused_until; /* monotonic: claim only for free workers until then */

    /* dispatcher timing; monotonic microseconds */
    pgsched_time next_poll, next_heartbeat, next_cancel_check, next_stall, next_cleanup;
    pgsched_time outcome_retry_at, claim_retry_at, shutdown_deadline;
    pgsched_time stop_ask_at; /* shutdown: when running handlers are asked to stop */
    int stop_asked;
    /* Past the shutdown timeout with handlers still running: pgsched_shutdown has returned,
       the dispatcher goes on renewing their leases and records their outcomes, then stops
       (and destroy joins it). */
    int lingering;
    int dispatcher_done, dispatcher_joined;
    int detached; /* shutdown returned before the dispatcher ended: it unregisters the node */
    /* A claim or take-back whose reply may have been lost after it committed (or an outcome
       dropped): rows this node owns in the store but does not run are given back */
    int strays;
    pgsched_time strays_retry_at;
    pgsched_time outcome_ready_at; /* the earliest not_before of the pending outcomes */
    pgsched_time known_due;  /* store clock; 0 = unknown */
    int known_due_exact;     /* a claim with its lead left that row: claim at its time */
    pgsched_duration claim_lead; /* claims take rows due this soon (see pgsched__claim) */
    pgsched_time claim_lead_at;  /* when claim_lead was last brought up to date */
    pgsched_time hint_due;   /* earliest due time learned while a claim was in flight */
    pgsched_duration contended; /* re-claim delay while due rows are locked elsewhere */
    int resync, wake_cancel_check;
    int listen_ok; /* the listener's last wait succeeded: notifications arrive */
    int idle_defaults; /* poll and heartbeat intervals left to the library (see below) */
    pgsched_time cc_not_before; /* monotonic: no woken cancel check before (see the gap) */
    pgsched_duration offset; /* store clock minus monotonic clock */
    pgsched_duration offset_rtt; /* the round trip of the call offset came from (mu) */
    pgsched_time offset_at;      /* when that call returned, monotonic (mu) */
    /* pgsched_clock_moved: calls so far, and the last call the dispatcher has caught up with
       (done what was due at that time and waits again) */
    int64_t clock_gen, clock_seen;
    pgsched_time last_error_log;
    int lost_outcomes; /* allocation failures, logged outside the lock */

    uint64_t rng;
    pgsched_counters counters;

    pthread_mutex_t cron_mu;
    pgsched__cron_entry *crons;
    size_t ncrons, crons_cap;

    /* callbacks */
    pthread_mutex_t cb_mu;
    pthread_cond_t cb_cv;
    pthread_cond_t cb_room; /* the queue has room again (the listener waits for it) */
    pgsched__cbev *cbq;
    size_t cb_head, cb_count, cb_cap;
    int cb_stop;
    int cb_room_waiting;
    int cb_stuck;           /* on_status took nothing for a second, up to cb_delivered: */
    uint64_t cb_stuck_mark; /* the listener no longer waits until it takes one */
    uint64_t cb_delivered;  /* events given to on_status so far */
    int dropped_callbacks; /* allocation failures, logged outside the lock */
    size_t cb_overflow;    /* events dropped because the queue was full (see CBQ_MAX) */
    int cb_ordered; /* deliveries follow the listener (notifications on) */
    pgsched__own *own;
    size_t own_cap, own_count;
    pgsched__ofifo own_wait, own_keep;
};

/* ---- small helpers ---- */

/* One log line, whatever the names, keys and texts in it hold (rows written by hand may carry
   a line break that would forge a second line): control characters, C0, DEL and C1, become
   \n, \r, \t or \xNN (\u0085 for the C1 ones, which are two bytes in UTF-8). */
static void pgsched__log_escape(char *dst, size_t size, const char *src)
{
    size_t o = 0;
    const unsigned char *c = (const unsigned char *)src;
    for (; *c && o + 1 < size; c++) {
        char esc[8];
        const char *put = esc;
        size_t k;
        if (*c == '\n') put = "\\n";
        else if (*c == '\r') put = "\\r";
        else if (*c == '\t') put = "\\t";
        else if (*c < 0x20 || *c == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", (unsigned)*c);
        else if (*c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)c[1]);
            c++;
        } else {
            dst[o++] = (char)*c;
            continue;
        }
        k = strlen(put);
        if (o + k >= size) break;
        memcpy(dst + o, put, k);
        o += k;
    }
    dst[o] = '\0';
}

static void pgsched__log(pgsched_node *n, pgsched_log_level level, const char *fmt, ...)
    PGSCHED__PRINTF(3, 4);
static void pgsched__log(pgsched_node *n, pgsched_log_level level, const char *fmt, ...)
{
    char raw[1024], msg[1024];
    va_list ap;
    if (level < n->cfg.log_level) return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    pgsched__log_escape(msg, sizeof msg, raw);
    if (n->cfg.log) {
        n->cfg.log(n->cfg.log_user, level, msg);
    } else {
        static const char *const names[] = {"", "debug", "info", "warning", "error", ""};
        fprintf(stderr, "pgsched %.8s %s: %s\n", n->id, names[level], msg);
    }
}

static uint64_t pgsched__rand(pgsched_node *n)
{
    /* splitmix64: callers hold n->mu */
    uint64_t z = (n->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* d scaled by a random factor in [lo%, hi%]: spreads periodic work so nodes don't stampede. */
static pgsched_duration pgsched__jitter(pgsched_node *n, pgsched_duration d, int lo, int hi)
{
    uint64_t r = pgsched__rand(n) % (uint64_t)(hi - lo + 1);
    return d / 100 * (lo + (pgsched_duration)r);
}

/* The node's monotonic clock: cfg.clock when set (a test's hand-moved time), else
   CLOCK_MONOTONIC. Every timer of the engine reads this one. */
static pgsched_time pgsched__mono(const pgsched_node *n)
{
    return n->cfg.clock ? n->cfg.clock(n->cfg.clock_user) : pgsched__monotonic();
}

/* How long a node with its own clock waits at most, in real time, before it reads that
   clock again: a clock that moves by itself works without pgsched_clock_moved. */
#define PGSCHED__CLOCK_SLICE (10 * PGSCHED_MILLISECOND)

/* pgsched__cond_wait_until on the node's clock. With the real clock the deadline is the
   condition variable's; with cfg.clock it is not a point in real time, so the wait ends when
   pgsched_clock_moved signals or after a short real slice, and the caller's loop compares its
   deadline with the clock again. */
static void pgsched__wait_until(const pgsched_node *n, pthread_cond_t *cv, pthread_mutex_t *mu,
                                pgsched_time deadline)
{
    if (!n->cfg.clock || deadline == PGSCHED_NEVER) {
        pgsched__cond_wait_until(cv, mu, deadline);
        return;
    }
    if (deadline <= pgsched__mono(n)) return;
    pgsched__cond_wait_until(cv, mu, pgsched__deadline(PGSCHED__CLOCK_SLICE));
}

/* deadline = the node's clock + d, saturating at PGSCHED_NEVER. */
static pgsched_time pgsched__node_deadline(const pgsched_node *n, pgsched_duration d)
{
    pgsched_time now = pgsched__mono(n);
    if (d >= PGSCHED_NEVER - now) return PGSCHED_NEVER;
    return now + d;
}

static pgsched_time pgsched__db_now(pgsched_node *n)
{
    return pgsched__mono(n) + PGSCHED__LOAD(&n->offset);
}

/* The store clock maps to the monotonic clock at the midpoint of the call that read it, to
   within half its round trip. A call that committed a write waited for the commit (a disk
   flush with fsync on) after reading the clock, so its midpoint comes late and the node
   would think the store's clock behind by half a flush: due runs would start that late.
   So the sample of the quickest call is kept until a new one is as good, counting an old
   sample's error as growing by 100 us a second (a drift of 100 ppm, more than clocks
   kept by NTP drift). Caller holds mu. */
static void pgsched__clock_sample_locked(pgsched_node *n, pgsched_time before,
                                         pgsched_time after, pgsched_time store_now)
{
    pgsched_duration rtt = after > before ? after - before : 0;
    if (store_now <= 0) return;
    if (n->offset_at && rtt > n->offset_rtt + (after - n->offset_at) / 5000) return;
    PGSCHED__STORE(&n->offset, store_now - (before + rtt / 2));
    n->offset_rtt = rtt;
    n->offset_at = after;
}

static void pgsched__clock_sample(pgsched_node *n, pgsched_time before, pgsched_time store_now)
{
    pgsched_time after = pgsched__mono(n);
    pthread_mutex_lock(&n->mu);
    pgsched__clock_sample_locked(n, before, after, store_now);
    pthread_mutex_unlock(&n->mu);
}

static const pgsched__type *pgsched__find_type(const pgsched_node *n, const char *name)
{
    const pgsched__type *t;
    for (t = PGSCHED__LOAD(&n->types); t; t = t->next)
        if (strcmp(t->name, name) == 0) return t;
    return NULL;
}

/* Work of the node's types may be due at `t` (store clock): wake the dispatcher then.
   Caller holds n->mu. */
static void pgsched__hint_due(pgsched_node *n, pgsched_time t)
{
    if (!n->known_due || t < n->known_due) {
        n->known_due = t;
        n->known_due_exact = 0;
        pthread_cond_signal(&n->cv);
    }
    if (!n->hint_due || t < n->hint_due) n->hint_due = t;
}

/* Each of a node's threads carries the node in a thread-specific value, set first thing when
   it starts. Thread ids cannot tell: a joined thread's id is given to the next thread the
   application creates, and the value, unlike the id, dies with its thread. */
static pthread_once_t pgsched__self_once = PTHREAD_ONCE_INIT;
static pthread_key_t pgsched__self_key;
static int pgsched__self_ok;

static void pgsched__self_init(void)
{
    pgsched__self_ok = pthread_key_create(&pgsched__self_key, NULL) == 0;
}

/* Marks the calling thread as one of node n's. */
static void pgsched__self_mark(pgsched_node *n)
{
    pthread_once(&pgsched__self_once, pgsched__self_init);
    if (pgsched__self_ok) pthread_setspecific(pgsched__self_key, n);
}

/* Whether the caller is one of the node's own threads. Caller holds n->mu (the *_started
   flags change under it). */
static int pgsched__is_node_thread(pgsched_node *n)
{
    pthread_t self = pthread_self();
    int i;
    pthread_once(&pgsched__self_once, pgsched__self_init);
    if (pgsched__self_ok) return pthread_getspecific(pgsched__self_key) == (void *)n;
    /* no key to be had (the process ran out of them): the ids of threads not yet joined */
    if (n->dispatcher_started && !n->dispatcher_joined && pthread_equal(self, n->dispatcher))
        return 1;
    if (n->listener_started && pthread_equal(self, n->listener)) return 1;
    if (n->callbacker_started && pthread_equal(self, n->callbacker)) return 1;
    if (n->writer_started && pthread_equal(self, n->writer)) return 1;
    for (i = 0; i < n->nslots; i++)
        if (n->slots[i].thread_started && pthread_equal(self, n->slots[i].thread)) return 1;
    return 0;
}

/* Copies an error text into storage form: valid UTF-8 (bad bytes become '?'), at most
   PGSCHED_ERROR_TEXT_MAX bytes, cut on a character boundary. */
static char *pgsched__clean_error(const pgsched_allocator *a, const char *s)
{
    size_t n, i = 0, o = 0;
    char *r;
    if (!s) return NULL;
    n = strlen(s);
    if (n > PGSCHED_ERROR_TEXT_MAX) n = PGSCHED_ERROR_TEXT_MAX;
    r = (char *)pgsched__malloc(a, n + 1);
    if (!r) return NULL;
    while (i < n) {
        size_t k = pgsched__utf8_seq((const unsigned char *)s + i, n - i);
        if (!k) {
            r[o++] = '?';
            i++;
        } else {
            memcpy(r + o, s + i, k);
            o += k;
            i += k;
        }
    }
    r[o] = '\0';
    return r;
}

/* Whether cron text starts with a zone ("CRON_TZ=" or "TZ=", any case, as the parser reads). */
static int pgsched__has_zone_prefix(const char *text)
{
    static const char *const prefixes[] = {"CRON_TZ=", "TZ="};
    size_t p, i;
    while (*text == ' ' || *text == '\t') text++;
    for (p = 0; p < 2; p++) {
        const char *x = prefixes[p];
        for (i = 0; x[i]; i++) {
            char c = text[i];
            if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
            if (c != x[i]) break;
        }
        if (!x[i]) return 1;
    }
    return 0;
}

/* The log of a store the node created itself (it reports the rows it quarantines). */
static void pgsched__store_log(void *user, int level, const char *message)
{
    pgsched__log((pgsched_node *)user, (pgsched_log_level)level, "%s", message);
}

/* ---- cron cache: a parsed expression is immutable, so entries are shared freely ---- */

static pgsched_result pgsched__cron_get(pgsched_node *n, const char *text, pgsched_cron **out,
                                        int *owned, pgsched_error *err)
{
    pgsched_cron_options opts;
    pgsched_cron *c;
    pgsched_result r;
    size_t i;
    *owned = 0;
    pthread_mutex_lock(&n->cron_mu);
    for (i = 0; i < n->ncrons; i++)
        if (strcmp(n->crons[i].text, text) == 0) {
            *out = n->crons[i].cron;
            pthread_mutex_unlock(&n->cron_mu);
            return PGSCHED_OK;
        }
    pthread_mutex_unlock(&n->cron_mu);
    memset(&opts, 0, sizeof opts);
    opts.allocator = &n->alloc; /* no default zone: a row's text says its zone, or means UTC */
    r = pgsched_cron_parse(text, &opts, &c, err);
    if (r != PGSCHED_OK) return r;
    pthread_mutex_lock(&n->cron_mu);
    if (n->ncrons < PGSCHED__CRON_CACHE_MAX) {
        if (n->ncrons == n->crons_cap) {
            size_t ncap = n->crons_cap ? n->crons_cap * 2 : 16;
            pgsched__cron_entry *ne = (pgsched__cron_entry *)pgsched__realloc(
                &n->alloc, n->crons, ncap * sizeof *ne);
            if (ne) {
                n->crons = ne;
                n->crons_cap = ncap;
            }
        }
        if (n->ncrons < n->crons_cap) {
            char *t = pgsched__strdup(&n->alloc, text);
            if (t) {
                n->crons[n->ncrons].text = t;
                n->crons[n->ncrons].cron = c;
                n->ncrons++;
                pthread_mutex_unlock(&n->cron_mu);
                *out = c;
                return PGSCHED_OK;
            }
        }
    }
    pthread_mutex_unlock(&n->cron_mu);
    *out = c;
    *owned = 1; /* not cached: the caller frees it */
    return PGSCHED_OK;
}

/* The next run of a recurring row strictly after `after` (store clock). */
static pgsched_result pgsched__next_occurrence(pgsched_node *n, const pgsched_job *job,
                                               pgsched_time after, pgsched_time *next,
                                               pgsched_error *err)
{
    switch (job->kind) {
    case PGSCHED_SCHEDULE_CRON: {
        pgsched_cron *c;
        int owned;
        pgsched_result r;
        if (!job->cron) return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "the row has no cron text");
        r = pgsched__cron_get(n, job->cron, &c, &owned, err);
        if (r != PGSCHED_OK) return r;
        r = pgsched_cron_next(c, after, next);
        if (owned) pgsched_cron_free(c);
        if (r == PGSCHED_ERR_TIME_RANGE)
            return pgsched__fail(err, PGSCHED_ERR_NO_NEXT, "the cron schedule has no run left");
        return r;
    }
    case PGSCHED_SCHEDULE_INTERVAL: {
        pgsched_result r;
        if (job->every <= 0) return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "the row's interval is not positive");
        r = pgsched_interval_next(job->every, after, next);
        /* one rule for every recurring kind: a schedule with no run before year 10000 is
           over, as a cron schedule's is */
        if (r == PGSCHED_ERR_TIME_RANGE)
            return pgsched__fail(err, PGSCHED_ERR_NO_NEXT,
                                 "the interval schedule has no run left before year 10000");
        if (r != PGSCHED_OK)
            return pgsched__fail(err, r, "the interval schedule has no next run: %s",
                                 pgsched_result_string(r));
        return r;
    }
    case PGSCHED_SCHEDULE_CUSTOM: {
        const pgsched__type *t = pgsched__find_type(n, job->name);
        pgsched_result r;
        /* A type this node runs without a calculator would make the row due again after
           every run, here, forever: that is a configuration error, and the row fails. A type
           it does not run (a row taken back from a stalled node) is left to a node that does. */
        if (t && t->t.handler && !t->t.next_run)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "job type %s has a custom schedule, but its registration on "
                                 "this node has no next_run callback to compute the next run",
                                 job->name);
        if (!t || !t->t.next_run)
            return pgsched__fail(err, PGSCHED_ERR_NOT_REGISTERED,
                                 "job type %s has no next-run callback on this node", job->name);
        r = t->t.next_run(t->t.next_run_user, job->name, job->key, job->params, after, next);
        if (r == PGSCHED_OK && *next <= after)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "the next-run callback of %s returned a time not after its input",
                                 job->name);
        if (r == PGSCHED_OK && *next > PGSCHED_TIME_MAX)
            return pgsched__fail(err, PGSCHED_ERR_NO_NEXT,
                                 "the next-run callback of %s returned a time after year 9999",
                                 job->name); /* "never again": the schedule is over */
        if (r != PGSCHED_OK && r != PGSCHED_ERR_NO_NEXT)
            return pgsched__fail(err, r, "the next-run callback of %s failed: %s", job->name,
                                 pgsched_result_string(r));
        return r;
    }
    case PGSCHED_SCHEDULE_ONCE: break;
    }
    return pgsched__fail(err, PGSCHED_ERR_NO_NEXT, "a one-time job has no next run");
}

/* ---- status callbacks ----
   Events reach on_status in commit order. With notifications on, every change, this node's
   own included, comes back through the listener in the order the store committed it, so the
   listener is the one source of order: a change of this node waits (as an "own" entry, keyed
   by its store-wide unique version) until its notification arrives, and is delivered from
   there. Should the notification never come (the listener was disconnected, the payload was
   too large), the waiting copy is delivered after PGSCHED__OWN_WAIT. Entries delivered either
   way stay a while as "delivered", so that the other copy, arriving late, is dropped and no
   change is delivered twice. Without notifications, changes are delivered as they are made. */

#define PGSCHED__OWN_WAIT (2 * PGSCHED_SECOND)
#define PGSCHED__OWN_KEEP (10 * PGSCHED_SECOND)

/* Without notifications there is no ordered source of events: the changes this node makes
   from several threads (a schedule call, the dispatcher's claim) reach the queue in any
   order. They wait this long and are delivered in version order, which for one instance is
   the order the store committed them. */
#define PGSCHED__REORDER_WINDOW (50 * PGSCHED_MILLISECOND)

/* The most status events waiting for on_status (about 500 bytes each); the listener waits
   for room while on_status makes progress (pgsched__cbq_room). */
#define PGSCHED__CBQ_MAX 4096

/* Appends to the delivery queue, or with `hold` inserts in version order among the events
   not yet delivered and delays it by the reorder window. Caller holds cb_mu. */
static void pgsched__cbq_put(pgsched_node *n, const pgsched__cbev *ev, int hold)
{
    size_t pos;
    if (n->cb_count >= PGSCHED__CBQ_MAX) {
        /* on_status is that far behind (or a flood got through): the queue does not grow;
           the listener reports it and the node reads due work and cancels again */
        n->cb_overflow++;
        return;
    }
    if (n->cb_count == n->cb_cap) {
        size_t ncap = n->cb_cap ? n->cb_cap * 2 : 64, i;
        pgsched__cbev *nq = (pgsched__cbev *)pgsched__malloc(&n->alloc, ncap * sizeof *nq);
        if (!nq) {
            n->dropped_callbacks++; /* logged later, outside the lock */
            return;
        }
        for (i = 0; i < n->cb_count; i++) nq[i] = n->cbq[(n->cb_head + i) % n->cb_cap];
        pgsched__free(&n->alloc, n->cbq);
        n->cbq = nq;
        n->cb_cap = ncap;
        n->cb_head = 0;
    }
    pos = n->cb_count;
    if (hold)
        while (pos > 0 && n->cbq[(n->cb_head + pos - 1) % n->cb_cap].ev.version > ev->ev.version) {
            n->cbq[(n->cb_head + pos) % n->cb_cap] = n->cbq[(n->cb_head + pos - 1) % n->cb_cap];
            pos--;
        }
    n->cbq[(n->cb_head + pos) % n->cb_cap] = *ev;
    n->cbq[(n->cb_head + pos) % n->cb_cap].ready_at =
        hold ? pgsched__mono(n) + PGSCHED__REORDER_WINDOW : 0;
    n->cb_count++;
    pthread_cond_signal(&n->cb_cv);
}

/* The own entry of `version`, or the empty slot where it would go. Caller holds cb_mu and
   has made room (own_count < own_cap / 2). */
static pgsched__own *pgsched__own_slot(pgsched_node *n, int64_t version)
{
    size_t i = (size_t)((uint64_t)version * 0x9E3779B97F4A7C15ULL >> 20) & (n->own_cap - 1);
    while (n->own[i].version && n->own[i].version != version) i = (i + 1) & (n->own_cap - 1);
    return &n->own[i];
}

/* Removes an entry, shifting the probe chain back so that look-ups keep working. */
static void pgsched__own_remove(pgsched_node *n, pgsched__own *o)
{
    size_t i = (size_t)(o - n->own), j = i;
    n->own[i].version = 0;
    n->own_count--;
    for (;;) {
        size_t home;
        j = (j + 1) & (n->own_cap - 1);
        if (!n->own[j].version) return;
        home = (size_t)((uint64_t)n->own[j].version * 0x9E3779B97F4A7C15ULL >> 20) &
               (n->own_cap - 1);
        /* move j back to i when i lies cyclically in [home, j) */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            n->own[i] = n->own[j];
            n->own[j].version = 0;
            i = j;
        }
    }
}

static int pgsched__own_reserve(pgsched_node *n)
{
    size_t i, ncap;
    pgsched__own *old = n->own, *no;
    size_t old_cap = n->own_cap;
    if ((n->own_count + 1) * 2 <= n->own_cap) return 1;
    ncap = n->own_cap ? n->own_cap * 2 : 64;
    no = (pgsched__own *)pgsched__calloc(&n->alloc, ncap * sizeof *no);
    if (!no) return 0;
    n->own = no;
    n->own_cap = ncap;
    n->own_count = 0;
    for (i = 0; i < old_cap; i++)
        if (old[i].version) {
            *pgsched__own_slot(n, old[i].version) = old[i];
            n->own_count++;
        }
    pgsched__free(&n->alloc, old);
    return 1;
}

/* Remembers when to look at an own entry again. */
static void pgsched__own_timer(pgsched_node *n, pgsched__ofifo *f, int64_t version,
                               pgsched_time at)
{
    if (f->count == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 64, i;
        pgsched__otimer *nt = (pgsched__otimer *)pgsched__malloc(&n->alloc, ncap * sizeof *nt);
        if (!nt) return; /* the entry then waits for its notification only */
        for (i = 0; i < f->count; i++) nt[i] = f->q[(f->head + i) % f->cap];
        pgsched__free(&n->alloc, f->q);
        f->q = nt;
        f->cap = ncap;
        f->head = 0;
    }
    f->q[(f->head + f->count) % f->cap].version = version;
    f->q[(f->head + f->count) % f->cap].at = at;
    f->count++;
}

static void pgsched__cbev_fill(pgsched__cbev *e, const char *name, const char *key,
                               pgsched_status old_status, pgsched_status new_status,
                               pgsched_time next_run, int64_t version, const char *node,
                               int remote)
{
    memset(&e->ev, 0, sizeof e->ev);
    pgsched__copy_text(e->name, sizeof e->name, name);
    pgsched__copy_text(e->key, sizeof e->key, key);
    pgsched__copy_text(e->node, sizeof e->node, node);
    e->ev.old_status = old_status;
    e->ev.new_status = new_status;
    e->ev.next_run = new_status == PGSCHED_STATUS_PENDING ? next_run : 0;
    e->ev.version = version;
    e->ev.remote = remote;
}

/* A change made by this node. */
static void pgsched__cb_push(pgsched_node *n, const char *name, const char *key,
                             pgsched_status old_status, pgsched_status new_status,
                             pgsched_time next_run, int64_t version, const char *node, int remote)
{
    pgsched__cbev e;
    if (!n->cfg.on_status || old_status == new_status) return;
    pgsched__cbev_fill(&e, name, key, old_status, new_status, next_run, version, node, remote);
    pthread_mutex_lock(&n->cb_mu);
    if (n->cb_ordered && version > 0 && pgsched__own_reserve(n)) {
        pgsched__own *o = pgsched__own_slot(n, version);
        if (o->version) {
            pgsched__own_remove(n, o); /* its notification came first and was delivered */
        } else {
            o->version = version;
            o->delivered = 0;
            o->expires = pgsched__mono(n) + PGSCHED__OWN_WAIT;
            o->ev = e;
            n->own_count++;
            pgsched__own_timer(n, &n->own_wait, version, o->expires);
            pthread_cond_signal(&n->cb_cv);
        }
    } else {
        pgsched__cbq_put(n, &e, !n->cb_ordered);
    }
    pthread_mutex_unlock(&n->cb_mu);
}

/* Called by the listener only, with cb_mu held: while the queue is full and on_status keeps
   taking events, waits for room, so that a burst (one statement's events arrive together: a
   bulk schedule is 5000) reaches on_status whole while the rest waits in the store's queue.
   An on_status that takes nothing for a second has events dropped (cbq_put), without further
   waits until it takes one again. */
static void pgsched__cbq_room(pgsched_node *n)
{
    while (n->cb_count >= PGSCHED__CBQ_MAX && !n->cb_stop) {
        uint64_t before = n->cb_delivered;
        if (n->cb_stuck && n->cb_stuck_mark == before) return;
        n->cb_room_waiting++;
        pgsched__cond_wait_until(&n->cb_room, &n->cb_mu, pgsched__monotonic() + PGSCHED_SECOND);
        n->cb_room_waiting--;
        if (n->cb_delivered == before) {
            n->cb_stuck = 1;
            n->cb_stuck_mark = before;
            return;
        }
    }
}

/* A change seen by the listener (any node's, in commit order). */
static void pgsched__cb_notified(pgsched_node *n, const pgsched_event *v)
{
    pgsched__cbev e;
    int own = strcmp(v->node, n->id) == 0;
    if (!n->cfg.on_status || v->old_status == v->new_status) return;
    pgsched__cbev_fill(&e, v->name, v->key, v->old_status, v->new_status, v->next_run,
                       v->version, v->node, !own);
    pthread_mutex_lock(&n->cb_mu);
    pgsched__cbq_room(n);
    if (own && pgsched__own_reserve(n)) {
        pgsched__own *o = pgsched__own_slot(n, v->version);
        if (!o->version) {
            /* before the local copy: deliver now, drop that copy when it comes */
            o->version = v->version;
            o->delivered = 1;
            o->expires = pgsched__mono(n) + PGSCHED__OWN_KEEP;
            n->own_count++;
            pgsched__own_timer(n, &n->own_keep, v->version, o->expires);
            pgsched__cbq_put(n, &e, 0);
        } else if (!o->delivered) {
            pgsched__cbq_put(n, &e, 0);
            pgsched__own_remove(n, o);
        } else {
            pgsched__own_remove(n, o); /* delivered already by the fallback */
        }
    } else {
        pgsched__cbq_put(n, &e, 0);
    }
    pthread_mutex_unlock(&n->cb_mu);
}

/* Delivers own entries whose notification is overdue; forgets old delivered ones. Caller
   holds cb_mu. Returns the next time to look (PGSCHED_NEVER: nothing waits). `all` delivers
   every waiting entry (at shutdown, once the listener has stopped). */
static pgsched_time pgsched__own_expire(pgsched_node *n, int all)
{
    pgsched_time now = pgsched__mono(n), next = PGSCHED_NEVER;
    int w;
    for (w = 0; w < 2; w++) {
        pgsched__ofifo *f = w == 0 ? &n->own_wait : &n->own_keep;
        while (f->count) {
            pgsched__otimer t = f->q[f->head];
            pgsched__own *o;
            if (t.at > now && !(all && w == 0)) {
                if (t.at < next) next = t.at;
                break;
            }
            f->head = (f->head + 1) % f->cap;
            f->count--;
            o = pgsched__own_slot(n, t.version);
            if (!o->version || o->expires != t.at) continue; /* resolved meanwhile */
            if (o->delivered) {
                pgsched__own_remove(n, o);
            } else {
                /* its notification is overdue: deliver the local copy, and keep the entry a
                   while so that the notification, should it still come, is dropped */
                pgsched__cbq_put(n, &o->ev, 0);
                o->delivered = 1;
                o->expires = now + PGSCHED__OWN_KEEP;
                pgsched__own_timer(n, &n->own_keep, t.version, o->expires);
            }
        }
    }
    return next;
}

static void *pgsched__callback_main(void *arg)
{
    pgsched_node *n = (pgsched_node *)arg;
    pgsched__self_mark(n);
    pthread_mutex_lock(&n->cb_mu);
    for (;;) {
        pgsched__cbev e;
        pgsched_time next = pgsched__own_expire(n, n->cb_stop);
        if (!n->cb_count) {
            if (n->cb_stop) break;
            pgsched__wait_until(n, &n->cb_cv, &n->cb_mu, next);
            continue;
        }
        if (!n->cb_stop && n->cbq[n->cb_head].ready_at > pgsched__mono(n)) {
            pgsched_time at = n->cbq[n->cb_head].ready_at;
            pgsched__wait_until(n, &n->cb_cv, &n->cb_mu, at < next ? at : next);
            continue;
        }
        e = n->cbq[n->cb_head];
        n->cb_head = (n->cb_head + 1) % n->cb_cap;
        n->cb_count--;
        n->cb_delivered++;
        if (n->cb_room_waiting) pthread_cond_signal(&n->cb_room);
        pthread_mutex_unlock(&n->cb_mu);
        e.ev.name = e.name;
        e.ev.key = e.key;
        e.ev.node = e.node;
        n->cfg.on_status(n->cfg.on_status_user, &e.ev);
        pthread_mutex_lock(&n->cb_mu);
    }
    pthread_mutex_unlock(&n->cb_mu);
    return NULL;
}

/* ---- outcomes ---- */

static pgsched_duration pgsched__backoff(pgsched_node *n, const pgsched__type *t, int attempt)
{
    pgsched_duration base = t && t->t.retry_base ? t->t.retry_base : n->cfg.retry_base;
    pgsched_duration cap = t && t->t.retry_cap ? t->t.retry_cap : n->cfg.retry_cap;
    pgsched_duration d = base;
    int i;
    for (i = 1; i < attempt && d < cap; i++) d = d > cap / 2 ? cap : d * 2;
    if (d > cap) d = cap;
    /* "equal jitter": half fixed, half random, so retries of many jobs spread out while each
       still waits at least half its backoff */
    pthread_mutex_lock(&n->mu);
    d = d / 2 + (pgsched_duration)(pgsched__rand(n) % (uint64_t)(d / 2 + 1));
    pthread_mutex_unlock(&n->mu);
    return d;
}

static int pgsched__decide_kind(pgsched_node *n, const pgsched_job *job, const pgsched__type *t,
                                pgsched_outcome kind, pgsched_time end, int quiet,
                                pgsched_finish_request *o);

/* Fills `o` for a job whose attempt ended with `kind`. `end` is the store-clock time of the
   end of the run. Returns the counter to bump once written. An attempt that failed, stalled
   or was given back also carries what a cancel would make of it, for the store to apply
   when the row's cancel was requested (a request this node may not have seen yet). */
static int pgsched__decide(pgsched_node *n, const pgsched_job *job, const pgsched__type *t,
                           pgsched_outcome kind, pgsched_time end, pgsched_finish_request *o)
{
    int counter = pgsched__decide_kind(n, job, t, kind, end, 0, o);
    o->cancelled_status = PGSCHED_STATUS_NONE;
    o->cancelled_next_run = 0;
    if (kind == PGSCHED_OUTCOME_FAILURE || kind == PGSCHED_OUTCOME_STALLED ||
        kind == PGSCHED_OUTCOME_RELEASED) {
        pgsched_finish_request c;
        memset(&c, 0, sizeof c);
        /* quiet: a schedule that cannot be computed is logged once, by the real decision */
        pgsched__decide_kind(n, job, t, PGSCHED_OUTCOME_CANCELLED, end, 1, &c);
        o->cancelled_status = c.status;
        o->cancelled_next_run = c.next_run;
    }
    return counter;
}

static int pgsched__decide_kind(pgsched_node *n, const pgsched_job *job, const pgsched__type *t,
                                pgsched_outcome kind, pgsched_time end, int quiet,
                                pgsched_finish_request *o)
{
    pgsched_error e;
    pgsched_time next = 0;
    pgsched_result r = PGSCHED_OK;
    int recurring = pgsched__is_recurring(job->kind);
    memset(&e, 0, sizeof e);
    /* Never before the due time of the run that just ended, whatever the clock estimate says:
       the same occurrence must not run twice. */
    pgsched_time after = end > job->next_run ? end : job->next_run;

    o->outcome = kind;
    o->next_run = 0;
    o->retry_delay = 0;
    o->attempt_rule = PGSCHED_ATTEMPT_RESET;
    if (kind == PGSCHED_OUTCOME_RELEASED) {
        o->status = PGSCHED_STATUS_PENDING;
        o->attempt_rule = PGSCHED_ATTEMPT_UNCOUNT;
        return PGSCHED__COUNT_NONE;
    }
    if ((kind == PGSCHED_OUTCOME_FAILURE || kind == PGSCHED_OUTCOME_STALLED) &&
        job->attempt <= job->max_retries) {
        o->status = PGSCHED_STATUS_PENDING;
        o->retry_delay = pgsched__backoff(n, t, job->attempt);
        o->attempt_rule = PGSCHED_ATTEMPT_KEEP;
        return kind == PGSCHED_OUTCOME_STALLED ? PGSCHED__COUNT_STALLED : PGSCHED__COUNT_RETRY;
    }
    if (!recurring) {
        o->status = kind == PGSCHED_OUTCOME_SUCCESS     ? PGSCHED_STATUS_COMPLETED
                    : kind == PGSCHED_OUTCOME_CANCELLED ? PGSCHED_STATUS_CANCELLED
                                                        : PGSCHED_STATUS_FAILED;
        if (o->status == PGSCHED_STATUS_FAILED) o->attempt_rule = PGSCHED_ATTEMPT_KEEP;
    } else {
        r = pgsched__next_occurrence(n, job, after, &next, &e);
        if (r == PGSCHED_OK) {
            o->status = PGSCHED_STATUS_PENDING;
            o->next_run = next;
        } else if (r == PGSCHED_ERR_NO_NEXT) {
            o->status = PGSCHED_STATUS_COMPLETED; /* the schedule is over */
        } else if (r == PGSCHED_ERR_NOT_REGISTERED) {
            /* A custom schedule this node cannot compute (taken back from another node's
               type): make it due now; a node that registers the type runs it and computes
               the next run itself. */
            o->status = PGSCHED_STATUS_PENDING;
            if (!quiet)
                pgsched__log(n, PGSCHED_LOG_WARN, "%s/%s: %s; made due now", job->name,
                             job->key, e.message);
        } else {
            o->status = PGSCHED_STATUS_FAILED;
            if (!quiet)
                pgsched__log(n, PGSCHED_LOG_ERROR, "%s/%s: cannot compute the next run: %s",
                             job->name, job->key, e.message);
        }
    }
    switch (kind) {
    case PGSCHED_OUTCOME_SUCCESS: return PGSCHED__COUNT_SUCCESS;
    case PGSCHED_OUTCOME_CANCELLED: return PGSCHED__COUNT_CANCELLED;
    case PGSCHED_OUTCOME_STALLED: return PGSCHED__COUNT_STALLED;
    default: return PGSCHED__COUNT_FAILURE;
    }
}

/* A lease that could not be renewed for most of the stall timeout (the database is
   unreachable from here, or another transaction keeps its row locked) must be assumed about
   to be taken back by another node: its run is stopped and nothing is written for it, so a
   job never runs twice at once. The margin of a quarter of the timeout covers the time a
   cancelled handler needs to stop. */
#define PGSCHED__FENCE(n) ((n)->cfg.stall_timeout / 4 * 3)

static void pgsched__feed(pgsched_node *n);

/* ---- held rows (see pgsched__held) ---- */

/* Moves row i of a claim's list into h (empty), taking its block when the list allocates
   as the node does, copying it otherwise (a store of the caller's may fill the list with an
   allocator of its own). Returns 0 when out of memory. */
static int pgsched__held_take(pgsched_node *n, pgsched__held *h, pgsched_job_list *from,
                              size_t i)
{
    const pgsched_job *job = &from->items[i];
    char *cur;
    size_t total;
    h->items[0] = *job;
    if (from->alloc.malloc_fn == n->alloc.malloc_fn && from->alloc.free_fn == n->alloc.free_fn &&
        from->alloc.user == n->alloc.user) {
        h->block = from->blocks[i];
        from->blocks[i] = NULL; /* freeing NULL is a no-op when the list is freed */
        h->count = 1;
        return 1;
    }
    total = pgsched__slen(job->name) + pgsched__slen(job->key) + pgsched__slen(job->cron) +
            pgsched__slen(job->params) + pgsched__slen(job->owner) +
            pgsched__slen(job->last_error);
    h->block = pgsched__malloc(&n->alloc, total);
    if (!h->block) return 0;
    cur = (char *)h->block;
    h->items[0].name = pgsched__block_put(&cur, job->name);
    h->items[0].key = pgsched__block_put(&cur, job->key);
    h->items[0].cron = pgsched__block_put(&cur, job->cron);
    h->items[0].params = pgsched__block_put(&cur, job->params);
    h->items[0].owner = pgsched__block_put(&cur, job->owner);
    h->items[0].last_error = pgsched__block_put(&cur, job->last_error);
    h->count = 1;
    return 1;
}

static void pgsched__held_clear(pgsched_node *n, pgsched__held *h)
{
    pgsched__free(&n->alloc, h->block);
    h->block = NULL;
    h->count = 0;
}

/* Queues an outcome to be written (by the outcome writer, or the dispatcher without one);
   takes ownership of `error`, and of `block` (may be NULL: name and key are copied) when
   job's name and key point into it. The pending array has room for a batch's worth of
   outcomes (see pgsched__take_outcomes), so a worker grows it only when more pile up while
   a batch is written. Returns 0 when it was lost for want of memory (counted in
   lost_outcomes). Caller holds mu. */
static int pgsched__queue_outcome_owned(pgsched_node *n, const pgsched_job *job, void *block,
                                        const pgsched_finish_request *o, char *error,
                                        int counter)
{
    pgsched__pending *p;
    if (n->npending == n->pending_cap) {
        size_t ncap = n->pending_cap ? n->pending_cap * 2 : 16;
        pgsched__pending *np =
            (pgsched__pending *)pgsched__realloc(&n->alloc, n->pending, ncap * sizeof *np);
        if (!np) {
            /* The lease expires and the row is taken back: the run counts as stalled. */
            n->lost_outcomes++;
            pgsched__free(&n->alloc, error);
            pgsched__free(&n->alloc, block);
            return 0;
        }
        n->pending = np;
        n->pending_cap = ncap;
    }
    p = &n->pending[n->npending];
    p->o = *o;
    p->block = block;
    if (block) {
        p->name = (char *)job->name;
        p->key = (char *)job->key;
    } else {
        p->name = pgsched__strdup(&n->alloc, job->name);
        p->key = pgsched__strdup(&n->alloc, job->key);
    }
    p->error = error;
    p->counter = counter;
    p->lost_counted = 0;
    if (!p->name || !p->key) {
        if (!block) {
            pgsched__free(&n->alloc, p->name);
            pgsched__free(&n->alloc, p->key);
        }
        pgsched__free(&n->alloc, block);
        pgsched__free(&n->alloc, error);
        n->lost_outcomes++;
        return 0;
    }
    p->o.name = p->name;
    p->o.key = p->key;
    p->o.error = p->error;
    p->o.token = job->lease;
    p->o.node_id = n->id;
    p->not_before = 0;
    p->busy_wait = 0;
    n->outcome_ready_at = 0;
    n->npending++;
    if (n->writer_started) pthread_cond_signal(&n->writer_cv);
    else pthread_cond_signal(&n->cv);
    return 1;
}

static int pgsched__queue_outcome(pgsched_node *n, const pgsched_job *job,
                                  const pgsched_finish_request *o, char *error, int counter)
{
    return pgsched__queue_outcome_owned(n, job, NULL, o, error, counter);
}

/* The same for a held row, whose block goes with the outcome (h is left empty). */
static int pgsched__queue_outcome_held(pgsched_node *n, pgsched__held *h,
                                       const pgsched_finish_request *o, char *error,
                                       int counter)
{
    void *block = h->block;
    h->block = NULL;
    h->count = 0;
    return pgsched__queue_outcome_owned(n, &h->items[0], block, o, error, counter);
}

static void pgsched__pending_free(pgsched_node *n, pgsched__pending *p)
{
    if (p->block) {
        pgsched__free(&n->alloc, p->block);
    } else {
        pgsched__free(&n->alloc, p->name);
        pgsched__free(&n->alloc, p->key);
    }
    pgsched__free(&n->alloc, p->error);
}

/* ---- workers ---- */

static void *pgsched__worker_main(void *arg)
{
    pgsched__slot *s = (pgsched__slot *)arg;
    pgsched_node *n = s->node;
    pgsched__self_mark(n);
    pthread_mutex_lock(&n->mu);
    for (;;) {
        const pgsched_job *job;
        int rc, cancel, skip;
        char *error;
        pgsched_outcome kind;
        pgsched_finish_request o;
        int counter;
        pgsched_time start_db;
        while (s->state != PGSCHED__SLOT_READY && n->state != PGSCHED__STOPPED)
            pthread_cond_wait(&s->cv, &n->mu);
        if (s->state != PGSCHED__SLOT_READY) break;
        s->state = PGSCHED__SLOT_RUNNING;
        /* the dispatcher watches the deadlines of running slots only: tell it of this one */
        if (s->deadline != PGSCHED_NEVER) pthread_cond_signal(&n->cv);
        /* pgsched_clock_moved waits for handed-over runs to start */
        if (n->clock_gen) pthread_cond_broadcast(&n->done_cv);
        job = &s->job.items[0];
        /* A row claimed a little before its due time (the claim's lead, at most 1 s) starts
           at it, unless the node stops or the run is cancelled meanwhile. The node's estimate
           of the store's clock is off by at most half the round trip it came from (and the
           drift since): waiting that much longer, the run never starts early. */
        for (;;) {
            pgsched_time mono = pgsched__mono(n);
            pgsched_duration left = job->next_run - (mono + PGSCHED__LOAD(&n->offset)) +
                                    n->offset_rtt / 2 + (mono - n->offset_at) / 10000;
            if (left <= 0 || left > PGSCHED_SECOND || n->state >= PGSCHED__STOPPING ||
                s->cancel != PGSCHED__CANCEL_NONE)
                break;
            pgsched__wait_until(n, &s->cv, &n->mu, mono + left);
        }
        /* A run handed over just as the node began to shut down (or whose lease is already
           gone) does not start: its lease is given back instead. */
        skip = n->state >= PGSCHED__STOPPING || s->cancel == PGSCHED__CANCEL_LEASE_LOST;
        if (n->state >= PGSCHED__STOPPING && s->cancel != PGSCHED__CANCEL_LEASE_LOST)
            PGSCHED__STORE(&s->cancel, PGSCHED__CANCEL_SHUTDOWN);
        start_db = pgsched__db_now(n);
        if (!skip) {
            pgsched_duration d = start_db > job->next_run ? start_db - job->next_run : 0;
            n->counters.start_delay_last = d;
            if (d > n->counters.start_delay_max) n->counters.start_delay_max = d;
            n->counters.start_delay_total += d;
            pgsched__observe(&n->counters.start_delay, d);
        }
        pthread_mutex_unlock(&n->mu);

        rc = skip ? PGSCHED_RUN_FAILURE : s->type->t.handler(&s->run);

        pthread_mutex_lock(&n->mu);
        cancel = s->cancel;
        error = s->error;
        s->error = NULL;
        if (cancel == PGSCHED__CANCEL_TIMEOUT) {
            /* the run overran its timeout: a failure, whatever the handler said after */
            kind = PGSCHED_OUTCOME_FAILURE;
            if (!error) {
                char buf[120];
                snprintf(buf, sizeof buf, "timed out after %lld ms",
                         (long long)(s->type->t.timeout / 1000));
                error = pgsched__strdup(&n->alloc, buf);
            }
        } else if (rc == PGSCHED_RUN_SUCCESS) {
            kind = PGSCHED_OUTCOME_SUCCESS;
        } else if (cancel == PGSCHED__CANCEL_REQUESTED) {
            kind = PGSCHED_OUTCOME_CANCELLED;
        } else if (cancel == PGSCHED__CANCEL_SHUTDOWN) {
            kind = PGSCHED_OUTCOME_RELEASED; /* stopped by our shutdown: not its failure */
        } else {
            kind = PGSCHED_OUTCOME_FAILURE;
            if (rc != PGSCHED_RUN_FAILURE) {
                char buf[160];
                snprintf(buf, sizeof buf,
                         "the handler returned %d, which is neither PGSCHED_RUN_SUCCESS (0) nor "
                         "PGSCHED_RUN_FAILURE (1)",
                         rc);
                pgsched__free(&n->alloc, error);
                error = pgsched__strdup(&n->alloc, buf);
            }
        }
        if (cancel == PGSCHED__CANCEL_LEASE_LOST && kind != PGSCHED_OUTCOME_SUCCESS) {
            /* Another run owns the row now (or may soon): write nothing. */
            pgsched__free(&n->alloc, error);
        } else {
            /* A success is written even after the lease was given up for lost (self-fencing
               while the database was away): its token decides. It is recorded if no other
               node took the row meanwhile, refused (lease lost) if one did; written nothing,
               the row would be given back or taken back and the job run again. */
            pgsched_time end = pgsched__db_now(n);
            memset(&o, 0, sizeof o);
            pthread_mutex_unlock(&n->mu);
            counter = pgsched__decide(n, job, s->type, kind, end, &o);
            /* handed over as the node began to stop, never started: like a queued row given
               back, it leaves no history row (the history records attempts that ran) */
            o.not_started = skip;
            pthread_mutex_lock(&n->mu);
            if (pgsched__queue_outcome_held(n, &s->job, &o, error, counter) && s->lost_counted)
                n->pending[n->npending - 1].lost_counted = 1; /* counted when it was lost */
        }
        pgsched__held_clear(n, &s->job); /* empty already unless nothing was written */
        s->state = PGSCHED__SLOT_FREE;
        s->cancel = PGSCHED__CANCEL_NONE;
        n->free_slots++;
        n->counters.running--;
        PGSCHED__TC_ADD(s->type, running, -1);
        pgsched__feed(n);
        pthread_cond_signal(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* Sets a slot's cancel reason (first reason wins) and wakes a sleeping handler. */
static void pgsched__cancel_slot(pgsched__slot *s, int reason)
{
    if (s->state == PGSCHED__SLOT_FREE) return;
    if (s->cancel == PGSCHED__CANCEL_NONE || reason == PGSCHED__CANCEL_LEASE_LOST)
        PGSCHED__STORE(&s->cancel, reason);
    pthread_cond_broadcast(&s->cv);
}

/* The slot running (name, key) under lease `token`. A node can hold two runs of one row at
   once (a stale run it has not yet learned it lost, and a fresh claim), so the token, not
   the name, says which. Caller holds n->mu. */
static pgsched__slot *pgsched__find_slot(pgsched_node *n, const char *name, const char *key,
                                         int64_t token)
{
    int i;
    for (i = 0; i < n->nslots; i++) {
        pgsched__slot *s = &n->slots[i];
        if (s->state != PGSCHED__SLOT_FREE && s->job.count && s->job.items[0].lease == token &&
            strcmp(s->job.items[0].name, name) == 0 && strcmp(s->job.items[0].key, key) == 0)
            return s;
    }
    return NULL;
}

/* ---- the claim-ahead queue (caller holds n->mu) ---- */

#define PGSCHED__QUEUED(n, i) (&(n)->queue[(n)->qhead + (i)])

/* Appends row i of a claim's list (taken out of it); 0 when it cannot be held (out of
   memory). */
static int pgsched__queue_push(pgsched_node *n, pgsched_job_list *got, size_t i,
                               pgsched_time renewed)
{
    pgsched__queued *q;
    if (n->qhead + n->nqueued == n->queue_cap) {
        if (n->qhead > 0 && n->qhead >= n->queue_cap / 2) {
            memmove(n->queue, n->queue + n->qhead, (size_t)n->nqueued * sizeof *n->queue);
            n->qhead = 0;
        } else {
            int ncap = n->queue_cap ? n->queue_cap * 2 : 16;
            pgsched__queued *nq = (pgsched__queued *)pgsched__realloc(
                &n->alloc, n->queue, (size_t)ncap * sizeof *nq);
            if (!nq) return 0;
            n->queue = nq;
            n->queue_cap = ncap;
        }
    }
    q = &n->queue[n->qhead + n->nqueued];
    if (!pgsched__held_take(n, &q->one, got, i)) return 0;
    q->renewed = renewed;
    q->queued_at = pgsched__mono(n);
    n->nqueued++;
    return 1;
}

/* Forgets queued row i. */
static void pgsched__queue_drop(pgsched_node *n, int i)
{
    pgsched__held_clear(n, &PGSCHED__QUEUED(n, i)->one);
    if (i == 0) n->qhead++;
    else
        memmove(PGSCHED__QUEUED(n, i), PGSCHED__QUEUED(n, i + 1),
                (size_t)(n->nqueued - i - 1) * sizeof *n->queue);
    if (--n->nqueued == 0) n->qhead = 0;
}

/* Ends queued row i without running it: its outcome (cancelled, or given back) is written
   like a run's. */
static void pgsched__queue_end(pgsched_node *n, int i, pgsched_outcome kind)
{
    pgsched__held *h = &PGSCHED__QUEUED(n, i)->one;
    const pgsched_job *job = &h->items[0];
    pgsched_finish_request o;
    int counter;
    memset(&o, 0, sizeof o);
    counter = pgsched__decide(n, job, pgsched__find_type(n, job->name), kind, pgsched__db_now(n),
                              &o);
    o.not_started = 1; /* queued, never handed to a worker: no history row */
    pgsched__queue_outcome_held(n, h, &o, NULL,
                                kind == PGSCHED_OUTCOME_RELEASED ? PGSCHED__COUNT_NONE : counter);
    pgsched__queue_drop(n, i);
}

/* The queued row (name, key) under lease `token`, or -1. */
static int pgsched__queue_find(pgsched_node *n, const char *name, const char *key, int64_t token)
{
    int i;
    for (i = 0; i < n->nqueued; i++) {
        const pgsched_job *j = &PGSCHED__QUEUED(n, i)->one.items[0];
        if (j->lease == token && strcmp(j->name, name) == 0 && strcmp(j->key, key) == 0)
            return i;
    }
    return -1;
}

/* A cancel request for (name, key) reaches every run of it here, and a queued row of it ends
   as cancelled without starting. Caller holds n->mu. */
static void pgsched__cancel_matching(pgsched_node *n, const char *name, const char *key)
{
    int i;
    for (i = 0; i < n->nslots; i++) {
        pgsched__slot *s = &n->slots[i];
        if (s->state != PGSCHED__SLOT_FREE && s->job.count &&
            strcmp(s->job.items[0].name, name) == 0 && strcmp(s->job.items[0].key, key) == 0)
            pgsched__cancel_slot(s, PGSCHED__CANCEL_REQUESTED);
    }
    for (i = n->nqueued - 1; i >= 0; i--) {
        const pgsched_job *j = &PGSCHED__QUEUED(n, i)->one.items[0];
        if (strcmp(j->name, name) == 0 && strcmp(j->key, key) == 0)
            pgsched__queue_end(n, i, PGSCHED_OUTCOME_CANCELLED);
    }
}

/* ---- dispatcher steps (each called without n->mu held: the log callback may call the
   node's API, so nothing is logged while a node lock is held) ---- */

static void pgsched__store_trouble(pgsched_node *n, const char *what, const pgsched_error *e)
{
    pgsched_time now = pgsched__mono(n), last;
    /* one line per five seconds at most while a problem lasts (the database away, a
       statement failing over and over) */
    pthread_mutex_lock(&n->mu);
    last = n->last_error_log;
    if (now - last > 5 * PGSCHED_SECOND) n->last_error_log = now;
    if (e->code == PGSCHED_ERR_CONNECTION) {
        n->counters.connection_errors++;
        n->counters.connected = 0;
    }
    pthread_mutex_unlock(&n->mu);
    if (now - last > 5 * PGSCHED_SECOND)
        pgsched__log(n, e->code == PGSCHED_ERR_CONNECTION || e->code == PGSCHED_ERR_BUSY
                            ? PGSCHED_LOG_WARN
                            : PGSCHED_LOG_ERROR,
                     "%s: %s", what, e->message);
}

/* Logs what was counted under a lock (allocation failures) since the last call. */
static void pgsched__log_losses(pgsched_node *n)
{
    int outcomes, callbacks;
    pthread_mutex_lock(&n->mu);
    outcomes = n->lost_outcomes;
    n->lost_outcomes = 0;
    if (outcomes) n->strays = 1; /* their rows are given back once memory allows */
    pthread_mutex_unlock(&n->mu);
    pthread_mutex_lock(&n->cb_mu);
    callbacks = n->dropped_callbacks;
    n->dropped_callbacks = 0;
    pthread_mutex_unlock(&n->cb_mu);
    if (outcomes)
        pgsched__log(n, PGSCHED_LOG_ERROR,
                     "out of memory: %d outcomes were lost (their rows are given back)",
                     outcomes);
    if (callbacks)
        pgsched__log(n, PGSCHED_LOG_ERROR, "out of memory: %d status callbacks were dropped",
                     callbacks);
}

/* How soon a store call that failed with `r` is tried again: quickly after a lost
   connection (the pool reconnects with its own backoff), soon after anything else that may
   pass later (a lock or statement timeout, a serialisation failure), never a whole long
   poll interval later, which would leave due work waiting. */
static pgsched_duration pgsched__retry_delay(const pgsched_node *n, pgsched_result r)
{
    if (r == PGSCHED_ERR_CONNECTION) return 200 * PGSCHED_MILLISECOND;
    return n->cfg.poll_interval < PGSCHED_SECOND ? n->cfg.poll_interval : PGSCHED_SECOND;
}

/* Whether a failed write may succeed later (then the outcome is kept and written again). */
static int pgsched__retryable(pgsched_result r)
{
    return r == PGSCHED_ERR_CONNECTION || r == PGSCHED_ERR_DATABASE || r == PGSCHED_ERR_NOMEM ||
           r == PGSCHED_ERR_SCHEMA_VERSION;
}

static pgsched_time pgsched__min_time(pgsched_time a, pgsched_time b) { return a < b ? a : b; }

#define PGSCHED__KEEP ((pgsched_result)1) /* per outcome: not written yet, try again */
/* The longest wait before an outcome whose row was locked is written again. */
#define PGSCHED__BUSY_WAIT_MAX (100 * PGSCHED_MILLISECOND)

/* Takes the outcomes ready to be written out of the pending queue, as the batch being
   written (n->flushing); *count is its length. New outcomes start a fresh queue while it is
   written. Outcomes whose row was locked a moment ago stay queued until their short wait is
   over. NULL when there is nothing to write yet. Caller holds mu. */
static pgsched__pending *pgsched__take_outcomes(pgsched_node *n, pgsched_time now, size_t *count)
{
    pgsched__pending *batch, *w;
    size_t i, waiting = 0, batch_cap, want, w_cap;
    *count = n->npending;
    if (!*count || now < n->outcome_retry_at || now < n->outcome_ready_at || n->writer_hold)
        return NULL;
    batch = n->pending;
    batch_cap = n->pending_cap;
    /* The next outcomes go to the spare array: room for as many as this batch and one a
       worker, so that workers seldom grow it; a spare far larger than that (after a burst)
       is given back rather than kept. */
    want = *count + (size_t)n->nslots;
    if (want < 16) want = 16;
    if (n->pending_spare && n->spare_cap >= want && n->spare_cap <= 4 * want) {
        w = n->pending_spare;
        w_cap = n->spare_cap;
    } else {
        pgsched__free(&n->alloc, n->pending_spare);
        w = (pgsched__pending *)pgsched__malloc(&n->alloc, want * sizeof *w);
        w_cap = w ? want : 0;
    }
    n->pending_spare = NULL;
    n->spare_cap = 0;
    n->pending = w;
    n->pending_cap = w_cap;
    n->npending = 0;
    for (i = 0; i < *count; i++)
        if (batch[i].not_before > now) waiting++;
    if (waiting) {
        if (w) {
            size_t k = 0, m = 0;
            pgsched_time ready_at = PGSCHED_NEVER;
            for (i = 0; i < *count; i++) {
                if (batch[i].not_before > now) {
                    ready_at = pgsched__min_time(ready_at, batch[i].not_before);
                    w[k++] = batch[i];
                } else {
                    batch[m++] = batch[i];
                }
            }
            n->npending = waiting;
            n->outcome_ready_at = ready_at;
            *count = m;
        } /* else: written early, which is harmless */
    }
    if (!*count) {
        n->pending_spare = batch;
        n->spare_cap = batch_cap;
        return NULL;
    }
    n->flushing = batch;
    n->nflushing = *count;
    n->flushing_cap = batch_cap;
    return batch;
}

/* Writes a batch of outcomes in one statement. A batch refused for one bad outcome (a
   callback's time out of range, say) is written again one by one, so that only the bad one
   is dropped: its lease expires and the row is taken back, counting an attempt. rs[i].code
   is PGSCHED__KEEP for an outcome to write again later; the result is the batch's (with *e
   the last retryable failure). */
static pgsched_result pgsched__write_outcomes(pgsched_node *n, const pgsched__pending *batch,
                                              size_t count, pgsched_finish_request *os,
                                              pgsched_finish_info *rs, pgsched_error *e)
{
    pgsched_result r;
    size_t i;
    for (i = 0; i < count; i++) os[i] = batch[i].o;
    r = pgsched_store_finish(n->store, os, count, rs, e);
    if (r != PGSCHED_OK && !pgsched__retryable(r)) {
        for (i = 0; i < count; i++) {
            pgsched_error e1;
            pgsched_result r1 = pgsched_store_finish(n->store, &os[i], 1, &rs[i], &e1);
            if (r1 == PGSCHED_OK) continue;
            rs[i].code = pgsched__retryable(r1) ? PGSCHED__KEEP : r1;
            if (!pgsched__retryable(r1))
                pgsched__log(n, PGSCHED_LOG_ERROR, "%s/%s: the outcome was refused: %s",
                             batch[i].name, batch[i].key, e1.message);
            else
                *e = e1;
        }
        r = PGSCHED_OK;
    }
    if (r != PGSCHED_OK)
        for (i = 0; i < count; i++) rs[i].code = PGSCHED__KEEP;
    return r;
}

/* Outcomes whose row another transaction has locked: usually another node's claim, whose
   lock on a row it found already claimed lasts until its commit, a millisecond or so. Each
   is kept and written again shortly, the others are not held back; only a lock that lasts (a
   caller's open transaction) is worth a word: returns 1 then, with *e saying which row. */
static int pgsched__outcomes_busy(const pgsched_node *n, pgsched__pending *batch, size_t count,
                                  pgsched_finish_info *rs, pgsched_result r, pgsched_error *e)
{
    size_t i;
    int busy_long = 0;
    for (i = 0; i < count; i++) {
        if (rs[i].code != PGSCHED_ERR_BUSY) continue;
        batch[i].busy_wait = batch[i].busy_wait ? batch[i].busy_wait * 2 : 2 * PGSCHED_MILLISECOND;
        if (batch[i].busy_wait >= PGSCHED__BUSY_WAIT_MAX) {
            batch[i].busy_wait = PGSCHED__BUSY_WAIT_MAX;
            busy_long = 1;
        }
        batch[i].not_before = pgsched__mono(n) + batch[i].busy_wait;
        rs[i].code = PGSCHED__KEEP;
        if (r == PGSCHED_OK && busy_long)
            pgsched__fail(e, PGSCHED_ERR_BUSY, "%s/%s: the row is locked by another "
                          "transaction; the outcome is written later", batch[i].name,
                          batch[i].key);
    }
    return busy_long;
}

/* Counts a written outcome (a success, failure, ...) and learns what it says of the store:
   a retry's due time, a replay that leaves the row's state unknown here. Caller holds mu. */
static void pgsched__count_outcome(pgsched_node *n, pgsched__pending *p,
                                   const pgsched_finish_info *ri)
{
    const pgsched__type *tc = pgsched__find_type(n, p->name);
    if (ri->code == PGSCHED_ERR_LEASE_LOST) {
        if (!p->lost_counted) {
            n->counters.lease_lost++;
            PGSCHED__TC_ADD(tc, lease_lost, 1);
        }
        return;
    }
    if (ri->code != PGSCHED_OK) return;
    /* the store recorded a cancel that won over a failure, stall or release */
    if (ri->outcome == PGSCHED_OUTCOME_CANCELLED && p->o.outcome != ri->outcome)
        p->counter = PGSCHED__COUNT_CANCELLED;
    switch (p->counter) {
    case PGSCHED__COUNT_SUCCESS:
        n->counters.succeeded++;
        PGSCHED__TC_ADD(tc, succeeded, 1);
        break;
    case PGSCHED__COUNT_FAILURE:
        n->counters.failed++;
        PGSCHED__TC_ADD(tc, failed, 1);
        break;
    case PGSCHED__COUNT_RETRY:
        n->counters.failed++;
        n->counters.retried++;
        PGSCHED__TC_ADD(tc, failed, 1);
        PGSCHED__TC_ADD(tc, retried, 1);
        break;
    case PGSCHED__COUNT_CANCELLED:
        n->counters.cancelled++;
        PGSCHED__TC_ADD(tc, cancelled, 1);
        break;
    case PGSCHED__COUNT_STALLED: n->counters.stalled_taken_back++; break;
    default: break;
    }
    if (ri->new_status == PGSCHED_STATUS_PENDING && ri->next_run && tc && tc->t.handler)
        pgsched__hint_due(n, ri->next_run);
    if (ri->replayed) n->resync = 1; /* what it became is unknown here: look again */
}

/* Puts the `kept` outcomes of a batch (those marked PGSCHED__KEEP; all of them without rs)
   back in front of the newer ones, to be written again when their wait is over (or, after a
   failed statement, its retry delay). Caller holds mu. */
static void pgsched__keep_outcomes(pgsched_node *n, pgsched__pending *batch, size_t count,
                                   const pgsched_finish_info *rs, size_t kept, pgsched_result r)
{
    size_t total = kept + n->npending, k = 0, i, cap = total + (size_t)n->nslots;
    pgsched__pending *merged =
        (pgsched__pending *)pgsched__malloc(&n->alloc, cap * sizeof *merged);
    if (merged) {
        for (i = 0; i < count; i++)
            if (!rs || rs[i].code == PGSCHED__KEEP) {
                merged[k++] = batch[i];
                batch[i].name = batch[i].key = batch[i].error = NULL; /* moved */
                batch[i].block = NULL;
            }
        for (i = 0; i < n->npending; i++) merged[k++] = n->pending[i];
        pgsched__free(&n->alloc, n->pending);
        n->pending = merged;
        n->npending = total;
        n->pending_cap = cap;
        n->outcome_ready_at = PGSCHED_NEVER;
        for (i = 0; i < total; i++)
            n->outcome_ready_at = pgsched__min_time(n->outcome_ready_at, merged[i].not_before);
    } else {
        n->lost_outcomes += (int)kept;
    }
    if (r != PGSCHED_OK) n->outcome_retry_at = pgsched__mono(n) + pgsched__retry_delay(n, r);
}

/* Writes the outcomes that are ready (on the outcome writer, or on the dispatcher without
   one). Status callbacks hear of each only once it is committed. */
static void pgsched__flush_outcomes(pgsched_node *n)
{
    pgsched__pending *batch;
    pgsched_finish_request *os;
    pgsched_finish_info *rs;
    pgsched_error e;
    size_t count, i, kept = 0, batch_cap;
    pgsched_result r;
    int busy_long = 0;

    pthread_mutex_lock(&n->mu);
    batch = pgsched__take_outcomes(n, pgsched__mono(n), &count);
    batch_cap = n->flushing_cap;
    pthread_mutex_unlock(&n->mu);
    if (!batch) return;

    os = (pgsched_finish_request *)pgsched__malloc(&n->alloc, count * sizeof *os);
    rs = (pgsched_finish_info *)pgsched__calloc(&n->alloc, count * sizeof *rs);
    if (!os || !rs) {
        r = pgsched__fail(&e, PGSCHED_ERR_NOMEM, "out of memory writing outcomes");
        pgsched__free(&n->alloc, rs);
        rs = NULL; /* every outcome is kept */
    } else {
        r = pgsched__write_outcomes(n, batch, count, os, rs, &e);
        busy_long = pgsched__outcomes_busy(n, batch, count, rs, r, &e);
    }

    pthread_mutex_lock(&n->mu);
    for (i = 0; i < count; i++) {
        if (!rs || rs[i].code == PGSCHED__KEEP) kept++;
        else pgsched__count_outcome(n, &batch[i], &rs[i]);
    }
    if (kept) pgsched__keep_outcomes(n, batch, count, rs, kept, r);
    n->flushing = NULL;
    n->nflushing = 0;
    pthread_cond_signal(&n->cv); /* the dispatcher may wait for the batch to end */
    pthread_mutex_unlock(&n->mu);
    if (kept && (r != PGSCHED_OK || busy_long)) pgsched__store_trouble(n, "recording outcomes", &e);
    for (i = 0; rs && i < count; i++) {
        if (rs[i].code == PGSCHED_OK && !rs[i].replayed)
            pgsched__cb_push(n, batch[i].name, batch[i].key, PGSCHED_STATUS_RUNNING, rs[i].new_status,
                             rs[i].next_run, rs[i].version, n->id, 0);
        else if (rs[i].code == PGSCHED_ERR_LEASE_LOST)
            pgsched__log(n, PGSCHED_LOG_WARN,
                         "%s/%s: the lease was lost before the outcome was recorded (another "
                         "node took the row back)",
                         batch[i].name, batch[i].key);
    }
    for (i = 0; i < count; i++) pgsched__pending_free(n, &batch[i]);
    pthread_mutex_lock(&n->mu);
    if (!n->pending_spare) { /* the next batch's array (see pgsched__take_outcomes) */
        n->pending_spare = batch;
        n->spare_cap = batch_cap;
        batch = NULL;
    }
    pthread_mutex_unlock(&n->mu);
    pgsched__free(&n->alloc, batch);
    pgsched__free(&n->alloc, os);
    pgsched__free(&n->alloc, rs);
}

/* The leases this node holds: running slots, queued rows and outcomes not yet written. The
   batch being written is left out (see pgsched__heartbeat); its outcomes come back here if
   its write fails. Caller holds mu. */
static size_t pgsched__collect_leases(pgsched_node *n, pgsched_lease *ls, size_t cap)
{
    size_t k = 0, i;
    int s;
    for (s = 0; s < n->nslots && k < cap; s++) {
        pgsched__slot *sl = &n->slots[s];
        if (sl->state == PGSCHED__SLOT_FREE || !sl->job.count) continue;
        ls[k].name = sl->job.items[0].name;
        ls[k].key = sl->job.items[0].key;
        ls[k].token = sl->job.items[0].lease;
        k++;
    }
    for (s = 0; s < n->nqueued && k < cap; s++) {
        const pgsched_job *j = &PGSCHED__QUEUED(n, s)->one.items[0];
        ls[k].name = j->name;
        ls[k].key = j->key;
        ls[k].token = j->lease;
        k++;
    }
    for (i = 0; i < n->npending && k < cap; i++) {
        ls[k].name = n->pending[i].name;
        ls[k].key = n->pending[i].key;
        ls[k].token = n->pending[i].o.token;
        k++;
    }
    return k;
}

/* An idle node's statements. With notifications arriving, everything that makes a row due
   says so (a schedule, trigger, retry, give-back or take-back notifies, and the claim learns
   the next due time), so the poll is only a safety net and comes every 30 s; while the
   listener is down, or without notifications, every poll_interval. A node that holds no
   lease heartbeats only to be seen (its types are not orphans), every 30 s or a quarter of
   the orphan timeout. Both apply only while poll_interval and heartbeat_interval are left
   at 0: intervals a caller sets are kept as they are. */
#define PGSCHED__IDLE_PERIOD (30 * PGSCHED_SECOND)

static pgsched_duration pgsched__poll_period(const pgsched_node *n)
{
    return n->idle_defaults && n->listen_ok && n->cfg.poll_interval < PGSCHED__IDLE_PERIOD
               ? PGSCHED__IDLE_PERIOD
               : n->cfg.poll_interval;
}

static pgsched_duration pgsched__heartbeat_period(const pgsched_node *n)
{
    pgsched_duration d = PGSCHED__IDLE_PERIOD;
    if (!n->idle_defaults || n->nslots - n->free_slots > 0 || n->nqueued > 0 || n->npending > 0 ||
        n->nflushing > 0)
        return n->cfg.heartbeat_interval;
    if (n->cfg.orphan_timeout != PGSCHED_NEVER && n->cfg.orphan_timeout / 4 < d)
        d = n->cfg.orphan_timeout / 4;
    return d > n->cfg.heartbeat_interval ? d : n->cfg.heartbeat_interval;
}

/* A heartbeat that could not renew every lease (it failed, or a row was busy) is tried
   again well before the leases run out rather than a whole interval later. Caller holds mu. */
static void pgsched__heartbeat_soon(pgsched_node *n)
{
    pgsched_time again = pgsched__mono(n) + n->cfg.heartbeat_interval / 4;
    if (again < n->next_heartbeat) n->next_heartbeat = again;
}

/* Keeps the outcome writer from starting a batch until pgsched__writer_resume; with
   `drain`, also waits until the batch under way (if any) is written. Caller holds mu
   (released while waiting). */
static void pgsched__writer_pause(pgsched_node *n, int drain)
{
    n->writer_hold++;
    while (drain && n->nflushing) pthread_cond_wait(&n->cv, &n->mu);
}

static void pgsched__writer_resume(pgsched_node *n)
{
    if (--n->writer_hold == 0) pthread_cond_signal(&n->writer_cv);
}

/* Renews the leases this node holds (renew), or only reads their cancel requests. A renewal
   never touches a row an outcome write is writing: a finish that locks a row whose renewal
   committed after the finish's snapshot was taken finds the new row version invisible to its
   update (it records the run's history but leaves the row running, to be taken back and run
   again). So the batch under way is left out of the renewal (see pgsched__collect_leases),
   and no other batch starts until the renewal is done; neither waits for the other. */
static void pgsched__heartbeat(pgsched_node *n, int renew)
{
    pgsched_lease *ls;
    pgsched_lease_state *st;
    char **names, **keys;
    size_t cap, k, i;
    pgsched_time now = 0, before;
    pgsched_error e;
    pgsched_result r;

    pthread_mutex_lock(&n->mu);
    if (renew) pgsched__writer_pause(n, 0);
    cap = (size_t)n->nslots + (size_t)n->nqueued + n->npending;
    ls = (pgsched_lease *)pgsched__malloc(&n->alloc, (cap + 1) * sizeof *ls);
    st = (pgsched_lease_state *)pgsched__malloc(&n->alloc, (cap + 1) * sizeof *st);
    names = (char **)pgsched__calloc(&n->alloc, (cap + 1) * sizeof *names);
    keys = (char **)pgsched__calloc(&n->alloc, (cap + 1) * sizeof *keys);
    k = 0;
    if (ls && st && names && keys) {
        k = pgsched__collect_leases(n, ls, cap);
        /* copies: the rows may be freed by a worker while the statement runs */
        for (i = 0; i < k; i++) {
            names[i] = pgsched__strdup(&n->alloc, ls[i].name);
            keys[i] = pgsched__strdup(&n->alloc, ls[i].key);
            if (!names[i] || !keys[i]) {
                k = i;
                break;
            }
            ls[i].name = names[i];
            ls[i].key = keys[i];
        }
    }
    pthread_mutex_unlock(&n->mu);
    if (!ls || !st || !names || !keys) {
        pgsched__log(n, PGSCHED_LOG_ERROR, "out of memory in a heartbeat");
        goto done;
    }
    if (!renew && k == 0) goto done;
    before = pgsched__mono(n);
    r = pgsched_store_heartbeat(n->store, n->id, ls, k, renew, st, &now, &e);
    if (r != PGSCHED_OK) {
        if (renew) {
            pthread_mutex_lock(&n->mu);
            pgsched__heartbeat_soon(n);
            pthread_mutex_unlock(&n->mu);
        }
        pgsched__store_trouble(n, renew ? "heartbeat" : "checking for cancel requests", &e);
        goto done;
    }
    pgsched__clock_sample(n, before, now);
    pthread_mutex_lock(&n->mu);
    n->counters.connected = 1;
    for (i = 0; i < k; i++) {
        pgsched__slot *s = pgsched__find_slot(n, ls[i].name, ls[i].key, ls[i].token);
        int qi = s ? -1 : pgsched__queue_find(n, ls[i].name, ls[i].key, ls[i].token);
        if (qi >= 0) {
            /* a queued row: renewed, lost (never started, nothing to write) or cancelled */
            if (st[i].lost) {
                n->counters.lease_lost++;
                pgsched__queue_drop(n, qi);
            } else if (st[i].cancel_requested) {
                pgsched__queue_end(n, qi, PGSCHED_OUTCOME_CANCELLED);
            } else if (renew && !st[i].busy && before > PGSCHED__QUEUED(n, qi)->renewed) {
                PGSCHED__QUEUED(n, qi)->renewed = before;
            }
            if (renew && st[i].busy) pgsched__heartbeat_soon(n);
            st[i].lost = 0;
            continue;
        }
        /* The store renewed the lease at some instant after `before`: measuring its age
           from `before` can only overstate it, which is the safe side for self-fencing. A
           busy lease (its row locked by another transaction) was not renewed. */
        if (s && renew && !st[i].lost && !st[i].busy && before > s->renewed) s->renewed = before;
        if (renew && st[i].busy) pgsched__heartbeat_soon(n);
        if (st[i].lost) {
            if (s) {
                /* every heartbeat until the handler returns says so: one run, counted once */
                if (!s->lost_counted) {
                    s->lost_counted = 1;
                    n->counters.lease_lost++;
                    PGSCHED__TC_ADD(s->type, lease_lost, 1);
                }
                pgsched__cancel_slot(s, PGSCHED__CANCEL_LEASE_LOST);
            } else {
                /* an outcome waiting to be written: its write says whether it was lost or
                   had been recorded already (a lost reply), and is logged then */
                st[i].lost = 0;
            }
        } else if (st[i].cancel_requested && s) {
            pgsched__cancel_slot(s, PGSCHED__CANCEL_REQUESTED);
        }
    }
    pthread_mutex_unlock(&n->mu);
    for (i = 0; i < k; i++)
        if (st[i].lost)
            pgsched__log(n, PGSCHED_LOG_WARN,
                         "%s/%s: lease lost (the row was taken back); stopping the run",
                         ls[i].name, ls[i].key);
done:
    if (names)
        for (i = 0; i < k; i++) pgsched__free(&n->alloc, names[i]);
    if (keys)
        for (i = 0; i < k; i++) pgsched__free(&n->alloc, keys[i]);
    pgsched__free(&n->alloc, names);
    pgsched__free(&n->alloc, keys);
    pgsched__free(&n->alloc, ls);
    pgsched__free(&n->alloc, st);
    if (renew) {
        pthread_mutex_lock(&n->mu);
        pgsched__writer_resume(n);
        pthread_mutex_unlock(&n->mu);
    }
}

/* Hands a held row to a free slot (h is left empty, the row moved, not copied: a worker
   feeding itself from the queue allocates nothing). `leased_at` is when the claim was sent
   (monotonic). Returns 0 when there is no free slot (cannot happen: a claim never asks for
   more than the free slots, and the queue feeds free slots only). Caller holds mu. */
static int pgsched__assign(pgsched_node *n, pgsched__held *h, pgsched_time leased_at)
{
    int i;
    for (i = 0; i < n->nslots; i++) {
        pgsched__slot *s = &n->slots[i];
        if (s->state != PGSCHED__SLOT_FREE) continue;
        pgsched__held_clear(n, &s->job);
        s->job = *h;
        h->block = NULL;
        h->count = 0;
        s->type = pgsched__find_type(n, s->job.items[0].name);
        s->run.name = s->job.items[0].name;
        s->run.key = s->job.items[0].key;
        s->run.params = s->job.items[0].params ? s->job.items[0].params : "{}";
        s->run.attempt = s->job.items[0].attempt;
        s->run.max_retries = s->job.items[0].max_retries;
        s->run.scheduled_for = s->job.items[0].next_run;
        s->run.user = s->type ? s->type->t.user : NULL;
        s->cancel = s->job.items[0].cancel_requested ? PGSCHED__CANCEL_REQUESTED
                                                     : PGSCHED__CANCEL_NONE;
        s->lost_counted = 0;
        s->renewed = leased_at;
        s->started_mono = pgsched__mono(n);
        s->deadline = s->type && s->type->t.timeout > 0 && s->type->t.timeout != PGSCHED_NEVER
                          ? s->started_mono + s->type->t.timeout
                          : PGSCHED_NEVER;
        s->state = PGSCHED__SLOT_READY;
        n->free_slots--;
        n->counters.running++;
        n->counters.claimed++;
        PGSCHED__TC_ADD(s->type, running, 1);
        PGSCHED__TC_ADD(s->type, claimed, 1);
        pthread_cond_signal(&s->cv);
        return 1;
    }
    return 0;
}

/* Hands queued rows to free workers, oldest first. A row whose lease has not been renewed
   for as long as self-fencing allows is not started: another node may take it back. Caller
   holds mu. */
static void pgsched__feed(pgsched_node *n)
{
    pgsched_time now = pgsched__mono(n);
    while (n->free_slots > 0 && n->nqueued > 0 && n->state < PGSCHED__STOPPING) {
        pgsched__queued *q = PGSCHED__QUEUED(n, 0);
        if (now - q->renewed > PGSCHED__FENCE(n)) n->counters.lease_lost++;
        else if (!pgsched__assign(n, &q->one, q->renewed)) n->lost_outcomes++;
        pgsched__queue_drop(n, 0);
        n->queue_moved = now;
    }
}

/* When a queue with every worker busy gets stuck: claim_ahead_wait after the later of its
   oldest row's arrival and the last row it handed to a worker (0: no queue or a free worker).
   Caller holds mu. */
static pgsched_time pgsched__queue_stuck_at(const pgsched_node *n)
{
    pgsched_time since;
    if (!n->nqueued || n->free_slots > 0) return 0;
    since = n->queue[n->qhead].queued_at;
    if (n->queue_moved > since) since = n->queue_moved;
    return since + n->cfg.claim_ahead_wait;
}

/* Outcomes waiting to be written hold their leases: a node whose writes fall behind its
   runs (a slow disk, rows locked by others) claims no more while this many wait behind the
   batch being written, so that what it holds (the leases every heartbeat renews, the memory
   of the waiting outcomes, the size of the next batch) stays bounded by its configuration
   rather than growing with the backlog: twice the rows it may hold otherwise. The batch
   being written does not count, so claims go on while it is written (counting it, with
   fsync on under load, a node sat idle for a quarter of its time waiting for writes, and
   ran 10-30 % fewer jobs a second). Caller holds mu. */
static size_t pgsched__backlog_max(const pgsched_node *n)
{
    return 2 * ((size_t)n->nslots + (size_t)n->claim_ahead);
}

/* How many rows a claim may take now: the free workers plus the room in the queue, once the
   queue has run down to half (so that a busy node claims in batches, not a row at a time);
   only the free workers while claiming ahead is paused (see pgsched__queue_stuck). Caller
   holds mu. */
static int pgsched__claim_room(const pgsched_node *n)
{
    if (n->npending >= pgsched__backlog_max(n)) return 0;
    if (n->ahead_paused_until && pgsched__mono(n) < n->ahead_paused_until)
        return n->nqueued ? 0 : n->free_slots;
    if (n->nqueued > n->claim_ahead / 2) return 0;
    return n->free_slots + n->claim_ahead - n->nqueued;
}

static void pgsched__claim(pgsched_node *n)
{
    pgsched_claim_request q;
    pgsched_claim_info info;
    pgsched_job_list got;
    pgsched_error e;
    pgsched_result r;
    pgsched_time before, after, due;
    size_t i;
    int want, exact = 0;

    memset(&q, 0, sizeof q);
    pthread_mutex_lock(&n->mu);
    want = pgsched__claim_room(n);
    n->hint_due = 0; /* due times learned from now on survive this claim's result */
    /* Rows due within the lead are taken only for free workers, where they start at their
       due time: a node whose workers are busy does not pull rows due soon into its queue,
       where they would wait for its workers while other nodes are idle. So a claim with
       rows known due already takes due rows only (its queue's share), and a claim ahead of
       a known due time takes at most one row per free worker (a full one is followed by
       another claim at once, as for any full batch). */
    if (n->free_slots == 0 ||
        (n->known_due && n->known_due <= pgsched__db_now(n))) {
        q.lead = 0;
    } else {
        q.lead = n->claim_lead;
        if (want > n->free_slots) want = n->free_slots;
    }
    pthread_mutex_unlock(&n->mu);
    if (want <= 0 || !n->nrun) return;
    pgsched_job_list_init(&got, &n->alloc);
    q.node_id = n->id;
    q.names = n->run_names;
    q.name_count = n->nrun;
    q.max = want;
    before = pgsched__mono(n);
    r = pgsched_store_claim(n->store, &q, &got, &info, &e);
    after = pgsched__mono(n);
    /* Said before the rows go to workers and the queue, which take their strings (a row may
       have run and its outcome be written before this thread looks at it again). */
    for (i = 0; r == PGSCHED_OK && i < got.count; i++)
        pgsched__cb_push(n, got.items[i].name, got.items[i].key, PGSCHED_STATUS_PENDING,
                         PGSCHED_STATUS_RUNNING, 0, got.items[i].version, n->id, 0);
    pthread_mutex_lock(&n->mu);
    n->counters.polls++;
    n->counters.claim_latency_last = after - before;
    if (n->counters.claim_latency_last > n->counters.claim_latency_max)
        n->counters.claim_latency_max = n->counters.claim_latency_last;
    n->counters.claim_latency_total += n->counters.claim_latency_last;
    pgsched__observe(&n->counters.claim_latency, n->counters.claim_latency_last);
    /* The next claim goes out this long before a known due time and takes rows due within
       it, whose runs then wait for their time: twice the slowest recent claim (its round
       trip and its commit, a disk flush with fsync on), 1 to 500 ms. It rises at once after
       a slow claim and falls by half in about 80 s (by half at most between two claims,
       however far apart): a flush that is slow once (a checkpoint, a neighbour's writes) is
       slow again now and then for a while, and a lead that forgot it within a few claims
       left a cron job late by the flush at each slow one. */
    {
        pgsched_time t = pgsched__mono(n);
        pgsched_duration since = t - n->claim_lead_at;
        if (since > PGSCHED__LEAD_MEMORY || since < 0) since = PGSCHED__LEAD_MEMORY;
        n->claim_lead -= n->claim_lead * since / (2 * PGSCHED__LEAD_MEMORY);
        n->claim_lead_at = t;
    }
    if (n->claim_lead < 2 * n->counters.claim_latency_last)
        n->claim_lead = 2 * n->counters.claim_latency_last;
    if (n->claim_lead < PGSCHED_MILLISECOND) n->claim_lead = PGSCHED_MILLISECOND;
    if (n->claim_lead > PGSCHED__LEAD_MAX) n->claim_lead = PGSCHED__LEAD_MAX;
    n->counters.connected = r != PGSCHED_ERR_CONNECTION;
    if (r != PGSCHED_OK) {
        n->claim_retry_at = pgsched__mono(n) + pgsched__retry_delay(n, r);
        /* it may have committed before the connection was lost: those rows are ours in the
           store but will never run here */
        if (r == PGSCHED_ERR_CONNECTION) n->strays = 1;
        pthread_mutex_unlock(&n->mu);
        pgsched__store_trouble(n, "claiming", &e);
        pgsched_job_list_free(&got);
        return;
    }
    pgsched__clock_sample_locked(n, before, after, info.now);
    /* leases now held: an idle node's long heartbeat period ends here */
    if (got.count && n->next_heartbeat > before + n->cfg.heartbeat_interval)
        n->next_heartbeat = before + n->cfg.heartbeat_interval;
    for (i = 0; i < got.count; i++) {
        int held;
        if (n->free_slots > 0 && n->nqueued == 0) {
            pgsched__held h;
            held = pgsched__held_take(n, &h, &got, i);
            if (held && !pgsched__assign(n, &h, before)) {
                pgsched__held_clear(n, &h);
                held = 0;
            }
        } else {
            held = pgsched__queue_push(n, &got, i, before);
        }
        if (!held) n->lost_outcomes++;
    }
    pgsched__feed(n);
    /* A full batch may have left due rows behind: claim again as soon as a slot frees.
       A partial batch with due rows left means others hold those rows locked: other nodes'
       claims, briefly, or a caller's open transaction, for as long as it likes. Look again
       shortly, then less and less often while it lasts (its commit notifies anyway). */
    if ((int)got.count == want) {
        due = info.now;
        n->contended = 0;
    } else if (info.next_due && info.next_due <= info.now) {
        n->contended = n->contended ? n->contended * 2 : 20 * PGSCHED_MILLISECOND;
        if (n->contended > n->cfg.poll_interval) n->contended = n->cfg.poll_interval;
        due = info.now + n->contended;
    } else if (info.next_due && info.next_due <= info.now + q.lead) {
        /* due within the lead yet left (locked, or a store that ignores the lead): claim
           again at its very time, not a lead before it */
        due = info.next_due;
        exact = 1;
        n->contended = 0;
    } else {
        due = info.next_due;
        n->contended = 0;
    }
    /* A schedule or notification that arrived while the claim ran may know an earlier time
       than the claim's snapshot did. */
    if (n->hint_due && (!due || n->hint_due < due)) {
        due = n->hint_due;
        exact = 0;
    }
    n->known_due = due;
    n->known_due_exact = exact;
    pthread_mutex_unlock(&n->mu);
    pgsched_job_list_free(&got);
}

/* When to look for stalled runs again, after a take-back that saw the leases left in place
   (`info`, read by a statement that returned at monotonic time `after`). No lease can stall
   before the oldest one left does, and a lease taken after the look carries a heartbeat at
   least as recent as the look: so the next look comes when the oldest stalls, or one stall
   timeout later when nothing runs, then up to a fifth of stall_check_period later still (so
   that idle nodes do not all look at once). A lease that has stalled already but could not
   be taken (locked, or beyond the batch) keeps the period. An idle cluster costs about two
   looks a minute instead of twelve; a crashed node's runs are taken back no later than
   before. Returns 0 to keep the period. Caller holds n->mu. */
static pgsched_time pgsched__next_stall_check(pgsched_node *n, const pgsched_take_back_info *info,
                                              pgsched_time after)
{
    pgsched_duration wait;
    if (!info->now) return 0; /* the store does not say */
    if (!info->next_stall)
        wait = n->cfg.stall_timeout;
    else if (info->next_stall <= info->now)
        return 0;
    else
        wait = info->next_stall - info->now;
    if (wait > n->cfg.stall_timeout) wait = n->cfg.stall_timeout; /* a clock step, a hand edit */
    return after + wait + PGSCHED_MILLISECOND + pgsched__jitter(n, n->cfg.stall_check_period, 0, 20);
}

static void pgsched__take_back(pgsched_node *n)
{
    pgsched_job_list got;
    pgsched_take_back_info info;
    pgsched_error e;
    pgsched_result r;
    pgsched_time before;
    size_t i;
    pgsched_job_list_init(&got, &n->alloc);
    before = pgsched__mono(n);
    r = pgsched_store_take_back(n->store, n->id, n->cfg.stall_timeout, PGSCHED__TAKE_BACK_BATCH,
                                &got, &info, &e);
    if (r == PGSCHED_OK) {
        pgsched_time after = pgsched__mono(n), at;
        pthread_mutex_lock(&n->mu);
        pgsched__clock_sample_locked(n, before, after, info.now);
        at = pgsched__next_stall_check(n, &info, after);
        if (at) n->next_stall = at;
        pthread_mutex_unlock(&n->mu);
    }
    if (r != PGSCHED_OK) {
        if (r == PGSCHED_ERR_CONNECTION) {
            pthread_mutex_lock(&n->mu);
            n->strays = 1; /* as for a claim: it may have committed */
            pthread_mutex_unlock(&n->mu);
        }
        pgsched__store_trouble(n, "taking back stalled runs", &e);
    }
    for (i = 0; i < got.count; i++) {
        const pgsched_job *job = &got.items[i];
        pgsched_finish_request o;
        char msg[200];
        int counter;
        const pgsched__type *t = pgsched__find_type(n, job->name);
        memset(&o, 0, sizeof o);
        counter = pgsched__decide(n, job, t, PGSCHED_OUTCOME_STALLED, pgsched__db_now(n), &o);
        snprintf(msg, sizeof msg,
                 "stalled: the node running attempt %d stopped renewing its lease for more "
                 "than %lld ms",
                 job->attempt, (long long)(n->cfg.stall_timeout / 1000));
        pgsched__log(n, PGSCHED_LOG_WARN, "%s/%s: %s; taken back", job->name, job->key, msg);
        pthread_mutex_lock(&n->mu);
        pgsched__queue_outcome(n, job, &o, pgsched__strdup(&n->alloc, msg), counter);
        pthread_mutex_unlock(&n->mu);
    }
    pgsched_job_list_free(&got);
}

static pgsched_result pgsched__register_node(pgsched_node *n, pgsched_error *err)
{
    pgsched_node_record rec;
    pgsched_error e;
    pgsched_result r;
    memset(&rec, 0, sizeof rec);
    rec.id = n->id;
    rec.host = n->host;
    rec.pid = (int64_t)getpid();
    rec.names = n->all_names;
    rec.name_count = n->ntypes;
    rec.status_events = n->cfg.on_status && n->notifications;
    r = pgsched_store_node_register(n->store, &rec, &e);
    if (r != PGSCHED_OK) {
        pgsched__store_trouble(n, "registering the node", &e);
        if (err) *err = e;
    }
    return r;
}

static void pgsched__cleanup(pgsched_node *n)
{
    pgsched_cleanup_request q;
    pgsched_cleanup_info out;
    pgsched_error e;
    /* Re-registering keeps the node's row (and so its types) alive even if it was deleted
       while this node was cut off from the database. */
    pgsched__register_node(n, NULL);
    memset(&q, 0, sizeof q);
    q.node_id = n->id;
    q.finished_retention = n->cfg.finished_retention;
    q.history_retention = n->cfg.history_retention;
    q.orphan_timeout = n->cfg.orphan_timeout;
    if (pgsched_store_cleanup(n->store, &q, &out, &e) != PGSCHED_OK) {
        pgsched__store_trouble(n, "cleaning up", &e);
        return;
    }
    if (out.finished_deleted || out.history_deleted || out.orphans_deleted || out.nodes_deleted)
        pgsched__log(n, PGSCHED_LOG_INFO,
                     "clean-up deleted %lu finished rows, %lu history rows, %lu orphans, %lu "
                     "dead nodes",
                     (unsigned long)out.finished_deleted, (unsigned long)out.history_deleted,
                     (unsigned long)out.orphans_deleted, (unsigned long)out.nodes_deleted);
}

/* Whether this node holds the lease (name, key, token) in memory: a run (started or about to
   start), a row claimed ahead, or an outcome waiting to be written. Caller holds n->mu. */
static int pgsched__holds_lease(pgsched_node *n, const pgsched_job *j)
{
    size_t i;
    if (pgsched__find_slot(n, j->name, j->key, j->lease)) return 1;
    if (pgsched__queue_find(n, j->name, j->key, j->lease) >= 0) return 1;
    for (i = 0; i < n->npending; i++)
        if (n->pending[i].o.token == j->lease && strcmp(n->pending[i].name, j->name) == 0 &&
            strcmp(n->pending[i].key, j->key) == 0)
            return 1;
    for (i = 0; i < n->nflushing; i++)
        if (n->flushing[i].o.token == j->lease && strcmp(n->flushing[i].name, j->name) == 0 &&
            strcmp(n->flushing[i].key, j->key) == 0)
            return 1;
    return 0;
}

/* Gives back at once, without counting an attempt, every row the store says this node runs
   but that it does not run: a claim or take-back that committed but whose reply was lost
   with the connection, or an outcome lost for want of memory. Otherwise such rows would
   wait for the stall timeout and count an attempt. Dispatcher only (no claim is in flight,
   so every row this node claimed is in memory). The outcome writer starts no batch
   meanwhile: an outcome committed between the store's answer and the look in memory would
   be taken for a row held but not run. */
static void pgsched__give_back_strays(pgsched_node *n)
{
    pgsched_list_filter f;
    pgsched_job_list l;
    pgsched_error e;
    pgsched_result r = PGSCHED_OK;
    char after_name[PGSCHED_NAME_MAX + 1], after_key[PGSCHED_KEY_MAX + 1];
    char first[PGSCHED_NAME_MAX + PGSCHED_KEY_MAX + 2] = "";
    size_t i;
    int given = 0;
    pthread_mutex_lock(&n->mu);
    n->strays = 0;
    pgsched__writer_pause(n, 1);
    pthread_mutex_unlock(&n->mu);
    memset(&f, 0, sizeof f);
    f.status = PGSCHED_STATUS_RUNNING;
    f.limit = 500;
    pgsched_job_list_init(&l, &n->alloc);
    for (;;) {
        pgsched_job_list_clear(&l);
        r = pgsched_store_list(n->store, &f, &l, &e);
        if (r != PGSCHED_OK) break;
        pthread_mutex_lock(&n->mu);
        for (i = 0; i < l.count; i++) {
            const pgsched_job *j = &l.items[i];
            pgsched_finish_request o;
            if (!j->owner || strcmp(j->owner, n->id) != 0 || pgsched__holds_lease(n, j)) continue;
            memset(&o, 0, sizeof o);
            pgsched__decide(n, j, pgsched__find_type(n, j->name), PGSCHED_OUTCOME_RELEASED,
                            pgsched__db_now(n), &o);
            pgsched__queue_outcome(n, j, &o, NULL, PGSCHED__COUNT_NONE);
            if (!given++) snprintf(first, sizeof first, "%s/%s", j->name, j->key);
        }
        pthread_mutex_unlock(&n->mu);
        if (l.count < f.limit) break;
        snprintf(after_name, sizeof after_name, "%s", l.items[l.count - 1].name);
        snprintf(after_key, sizeof after_key, "%s", l.items[l.count - 1].key);
        f.after_name = after_name;
        f.after_key = after_key;
    }
    pgsched_job_list_free(&l);
    pthread_mutex_lock(&n->mu);
    pgsched__writer_resume(n);
    if (r != PGSCHED_OK) {
        n->strays = 1;
        n->strays_retry_at = pgsched__mono(n) + pgsched__retry_delay(n, r);
    }
    pthread_mutex_unlock(&n->mu);
    if (r != PGSCHED_OK) pgsched__store_trouble(n, "looking for rows held but not run", &e);
    if (given)
        pgsched__log(n, PGSCHED_LOG_WARN,
                     "%d row%s (%s%s) held by this node in the store but not run here (a reply "
                     "lost with the connection) given back, the attempt not counted",
                     given, given > 1 ? "s" : "", first, given > 1 ? ", ..." : "");
}

/* Asks every running handler to stop for the shutdown. Caller holds n->mu. */
static void pgsched__ask_stop(pgsched_node *n)
{
    int i;
    n->stop_asked = 1;
    for (i = 0; i < n->nslots; i++) pgsched__cancel_slot(&n->slots[i], PGSCHED__CANCEL_SHUTDOWN);
}

/* The runs still going: how many, and the first few by name into `buf`. Caller holds mu. */
static int pgsched__still_going(pgsched_node *n, char *buf, size_t size)
{
    int i, count = 0;
    size_t used = 0;
    if (size) buf[0] = '\0';
    for (i = 0; i < n->nslots; i++) {
        const pgsched__slot *s = &n->slots[i];
        if (s->state != PGSCHED__SLOT_RUNNING || !s->job.count) continue;
        if (count < 3 && used < size) {
            int w = snprintf(buf + used, size - used, "%s%s/%s", count ? ", " : "",
                             s->job.items[0].name, s->job.items[0].key);
            used = w < 0 ? size : used + (size_t)w;
        } else if (count == 3 && used < size) {
            int w = snprintf(buf + used, size - used, ", ...");
            used = w < 0 ? size : used + (size_t)w;
        }
        count++;
    }
    return count;
}


/* Whether a slot holds a lease that self-fencing watches. Caller holds n->mu. */
static int pgsched__slot_fenceable(const pgsched__slot *s)
{
    return s->state != PGSCHED__SLOT_FREE && !s->lost_counted;
}

/* Stops the runs whose lease is too old. Caller holds n->mu; returns how many. */
static int pgsched__self_fence(pgsched_node *n, pgsched_time now)
{
    int i, fenced = 0;
    for (i = 0; i < n->nslots; i++) {
        pgsched__slot *s = &n->slots[i];
        if (pgsched__slot_fenceable(s) && now - s->renewed > PGSCHED__FENCE(n)) {
            pgsched__cancel_slot(s, PGSCHED__CANCEL_LEASE_LOST);
            s->lost_counted = 1;
            n->counters.lease_lost++;
            PGSCHED__TC_ADD(s->type, lease_lost, 1);
            fenced++;
        }
    }
    return fenced;
}

/* When the next lease of a running slot reaches the self-fencing limit. Caller holds mu. */
static pgsched_time pgsched__next_fence(pgsched_node *n)
{
    pgsched_time t = PGSCHED_NEVER;
    int i;
    for (i = 0; i < n->nslots; i++) {
        const pgsched__slot *s = &n->slots[i];
        if (pgsched__slot_fenceable(s) && s->renewed + PGSCHED__FENCE(n) + 1 < t)
            t = s->renewed + PGSCHED__FENCE(n) + 1;
    }
    return t;
}

/* When the pending outcomes may be written: PGSCHED_NEVER without any. Caller holds mu. */
static pgsched_time pgsched__outcomes_due(const pgsched_node *n)
{
    if (!n->npending) return PGSCHED_NEVER;
    return n->outcome_retry_at > n->outcome_ready_at ? n->outcome_retry_at : n->outcome_ready_at;
}

/* The outcome writer: writes outcomes as they come, on a pool connection of its own, while
   the dispatcher claims and renews leases on another. Outcomes that come while a batch is
   written make the next batch, so under load the batches grow with the commit time. */
static void *pgsched__writer_main(void *arg)
{
    pgsched_node *n = (pgsched_node *)arg;
    pgsched__self_mark(n);
    pthread_mutex_lock(&n->mu);
    while (!n->writer_stop) {
        pgsched_time due = pgsched__outcomes_due(n);
        if (!n->writer_hold && due <= pgsched__mono(n)) {
            pthread_mutex_unlock(&n->mu);
            pgsched__flush_outcomes(n);
            pthread_mutex_lock(&n->mu);
            continue;
        }
        pgsched__wait_until(n, &n->writer_cv, &n->mu, n->writer_hold ? PGSCHED_NEVER : due);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* Starts the outcome writer; without it the dispatcher writes outcomes itself. */
static void pgsched__writer_start(pgsched_node *n)
{
    pthread_mutex_lock(&n->mu);
    n->writer_stop = 0;
    n->writer_started = pthread_create(&n->writer, NULL, pgsched__writer_main, n) == 0;
    pthread_mutex_unlock(&n->mu);
}

/* Stops the outcome writer once its batch under way is written. Caller holds mu (released
   while the writer ends). */
static void pgsched__writer_stop(pgsched_node *n)
{
    if (!n->writer_started) return;
    n->writer_stop = 1;
    pthread_cond_signal(&n->writer_cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->writer, NULL);
    pthread_mutex_lock(&n->mu);
    n->writer_started = 0;
}

/* How long before the known due time the claim goes out. None while every worker is busy:
   such a claim takes due rows only (see pgsched__claim), so one sent ahead came back empty,
   and the next went out at once while the row stayed within the lead (in a 20,000-job run
   on 4 nodes, 349 of 437 claims came back empty; 15 of 105 since). Caller holds mu. */
static pgsched_duration pgsched__due_lead(const pgsched_node *n)
{
    return n->known_due_exact || n->free_slots == 0 ? 0 : n->claim_lead;
}

static void *pgsched__dispatcher_main(void *arg)
{
    pgsched_node *n = (pgsched_node *)arg;
    pgsched_time give_up = 0;
    pgsched__self_mark(n);
    pgsched__writer_start(n);
    pthread_mutex_lock(&n->mu);
    for (;;) {
        int64_t gen = n->clock_gen; /* read under mu with now: the clock moved before it */
        pgsched_time now = pgsched__mono(n), wake;
        pgsched_time db_now = now + PGSCHED__LOAD(&n->offset);
        int stopping = n->state >= PGSCHED__STOPPING;
        int running = n->nslots - n->free_slots, i;
        int do_flush, do_hb, do_cc, do_claim, do_stall, do_clean, do_strays;

        if (stopping && n->nqueued) {
            /* queued rows never started: given back at once, no attempt counted */
            while (n->nqueued) pgsched__queue_end(n, n->nqueued - 1, PGSCHED_OUTCOME_RELEASED);
            continue;
        }
        if (!stopping && n->nqueued && now >= pgsched__queue_stuck_at(n) &&
            pgsched__queue_stuck_at(n)) {
            /* Every worker is busy with runs that outlast the wait, and other nodes may be
               idle: the queued rows go back for anyone (no attempt counted), and this node
               claims only for free workers for a while, so it does not take them again. */
            while (n->nqueued) pgsched__queue_end(n, n->nqueued - 1, PGSCHED_OUTCOME_RELEASED);
            n->ahead_paused_until = now + n->cfg.claim_ahead_wait;
            continue;
        }
        if (stopping && running == 0 && n->npending == 0 && n->nflushing == 0) break;
        if (stopping && !n->stop_asked && now >= n->stop_ask_at) {
            /* drain mode: the runs had their time to finish; now they are asked to stop */
            pgsched__ask_stop(n);
            continue;
        }
        if (stopping && !n->lingering && now >= n->shutdown_deadline) {
            /* pgsched_shutdown returns now; runs still going keep their leases, renewed
               below, until they return */
            n->lingering = 1;
            pthread_cond_broadcast(&n->done_cv);
        }
        if (n->lingering && running == 0) {
            /* Outcomes the database does not take within 2 s more are left: their leases
               expire and other nodes take the rows back. */
            if (!give_up) give_up = now + 2 * PGSCHED_SECOND;
            if (now >= give_up) break;
        }
        /* per-run timeouts */
        for (i = 0; i < n->nslots; i++) {
            pgsched__slot *s = &n->slots[i];
            if (s->state == PGSCHED__SLOT_RUNNING && now >= s->deadline &&
                s->cancel == PGSCHED__CANCEL_NONE)
                pgsched__cancel_slot(s, PGSCHED__CANCEL_TIMEOUT);
        }
        if (running && pgsched__self_fence(n, now)) {
            pthread_mutex_unlock(&n->mu);
            pgsched__log(n, PGSCHED_LOG_ERROR,
                         "leases could not be renewed for %lld ms; their runs are stopped so "
                         "that no job runs twice once other nodes take their rows back",
                         (long long)(PGSCHED__FENCE(n) / 1000));
            pthread_mutex_lock(&n->mu);
            continue;
        }
        if (n->lost_outcomes) {
            pthread_mutex_unlock(&n->mu);
            pgsched__log_losses(n);
            pthread_mutex_lock(&n->mu);
            continue;
        }
        do_flush = !n->writer_started && pgsched__outcomes_due(n) <= now;
        do_hb = now >= n->next_heartbeat;
        do_cc = !do_hb && (running > 0 || n->nqueued > 0) &&
                (now >= n->next_cancel_check ||
                 (n->wake_cancel_check && now >= n->cc_not_before));
        do_claim = !stopping && pgsched__claim_room(n) > 0 && n->nrun > 0 && now >= n->claim_retry_at &&
                   (n->resync || now >= n->next_poll ||
                    (n->known_due && n->known_due <= db_now + pgsched__due_lead(n)));
        do_stall = !stopping && now >= n->next_stall;
        do_clean = !stopping && now >= n->next_cleanup;
        do_strays = n->strays && now >= n->strays_retry_at;
        if (do_flush || do_hb || do_cc || do_claim || do_stall || do_clean || do_strays) {
            if (do_hb) n->next_heartbeat = now + pgsched__heartbeat_period(n);
            if (do_hb || do_cc) {
                n->next_cancel_check = now + n->cfg.cancel_check_period;
                n->wake_cancel_check = 0;
                n->cc_not_before = now + PGSCHED__CANCEL_WAKE_GAP;
            }
            if (do_claim) {
                n->next_poll = now + pgsched__jitter(n, pgsched__poll_period(n), 90, 110);
                n->resync = 0;
            }
            if (do_stall) n->next_stall = now + pgsched__jitter(n, n->cfg.stall_check_period, 80, 120);
            if (do_clean) n->next_cleanup = now + pgsched__jitter(n, n->cfg.cleanup_period, 80, 120);
            pthread_mutex_unlock(&n->mu);
            /* Outcomes first (without the outcome writer): they free capacity the claim then
               fills in the same pass. */
            if (do_flush) pgsched__flush_outcomes(n);
            if (do_strays) pgsched__give_back_strays(n);
            /* the claim before the heartbeat: a known due time's claim goes out a claim's
               lead ahead of it, not also behind a heartbeat's commit */
            if (do_claim) pgsched__claim(n);
            if (do_hb || do_cc) pgsched__heartbeat(n, do_hb);
            if (do_stall) pgsched__take_back(n);
            if (do_clean) pgsched__cleanup(n);
            pthread_mutex_lock(&n->mu);
            continue;
        }
        wake = n->next_heartbeat;
        if (!n->writer_started) wake = pgsched__min_time(wake, pgsched__outcomes_due(n));
        if (n->strays) wake = pgsched__min_time(wake, n->strays_retry_at);
        if (running) {
            wake = pgsched__min_time(wake, n->next_cancel_check);
            if (n->wake_cancel_check) wake = pgsched__min_time(wake, n->cc_not_before);
            wake = pgsched__min_time(wake, pgsched__next_fence(n));
        }
        if (stopping) {
            if (!n->stop_asked) wake = pgsched__min_time(wake, n->stop_ask_at);
            if (!n->lingering) wake = pgsched__min_time(wake, n->shutdown_deadline);
            if (give_up) wake = pgsched__min_time(wake, give_up);
        } else {
            wake = pgsched__min_time(wake, n->next_stall);
            wake = pgsched__min_time(wake, n->next_cleanup);
            if (pgsched__queue_stuck_at(n)) wake = pgsched__min_time(wake, pgsched__queue_stuck_at(n));
            if (n->ahead_paused_until > now && n->nrun > 0)
                wake = pgsched__min_time(wake, n->ahead_paused_until);
            if (pgsched__claim_room(n) > 0 && n->nrun > 0) {
                pgsched_time due = n->next_poll;
                if (n->known_due)
                    due = pgsched__min_time(due, n->known_due - pgsched__due_lead(n) -
                                                     PGSCHED__LOAD(&n->offset));
                wake = pgsched__min_time(wake, due > n->claim_retry_at ? due : n->claim_retry_at);
            }
        }
        for (i = 0; i < n->nslots; i++)
            if (n->slots[i].state == PGSCHED__SLOT_RUNNING && n->slots[i].cancel == PGSCHED__CANCEL_NONE)
                wake = pgsched__min_time(wake, n->slots[i].deadline);
        if (wake > now) {
            /* the outcome writer's part too: no batch under way, none due (its batch's end
               wakes this thread) */
            if (n->clock_seen != gen &&
                (!n->writer_started || (!n->nflushing && pgsched__outcomes_due(n) > now))) {
                /* everything due at the clock pgsched_clock_moved announced is done */
                n->clock_seen = gen;
                pthread_cond_broadcast(&n->done_cv);
            }
            pgsched__wait_until(n, &n->cv, &n->mu, wake);
        }
    }
    pgsched__writer_stop(n);
    n->dispatcher_done = 1;
    pthread_cond_broadcast(&n->done_cv);
    if (n->detached) {
        /* pgsched_shutdown returned before the last runs did: the node stops now */
        pgsched_error e;
        pthread_mutex_unlock(&n->mu);
        if (pgsched_store_node_unregister(n->store, n->id, &e) != PGSCHED_OK)
            pgsched__store_trouble(n, "unregistering the node", &e);
        pgsched__log(n, PGSCHED_LOG_INFO,
                     "the runs still going at the end of the shutdown timeout have returned; "
                     "node stopped");
        return NULL;
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- listener ---- */

static void *pgsched__listener_main(void *arg)
{
    pgsched_node *n = (pgsched_node *)arg;
    pgsched_event ev[PGSCHED__EVENT_BATCH];
    pgsched_duration backoff = 0;
    pgsched_time overflow_logged = 0; /* one line per 5 s while on_status lags */
    size_t overflow = 0;
    pgsched__self_mark(n);
    pthread_mutex_lock(&n->mu);
    n->listen_ok = 1; /* the store listens since init (listen_open) */
    pthread_mutex_unlock(&n->mu);
    for (;;) {
        size_t count = 0, i;
        pgsched_error e;
        pgsched_result r;
        pthread_mutex_lock(&n->mu);
        if (n->state >= PGSCHED__STOPPED) {
            pthread_mutex_unlock(&n->mu);
            break;
        }
        pthread_mutex_unlock(&n->mu);
        r = pgsched_store_listen_wait(n->store, n->listen, 5 * PGSCHED_SECOND, ev,
                                      PGSCHED__EVENT_BATCH, &count, &e);
        if (r != PGSCHED_OK) {
            /* A store whose listening fails is asked again later, not at once (that would
               spin); events missed meanwhile are made up for by a poll once it works. */
            pgsched_time until;
            pthread_mutex_lock(&n->mu);
            if (n->listen_ok) { /* poll every poll_interval until it works again */
                pgsched_time soon = pgsched__mono(n) + n->cfg.poll_interval;
                n->listen_ok = 0;
                if (n->next_poll > soon) n->next_poll = soon;
                pthread_cond_signal(&n->cv);
            }
            pthread_mutex_unlock(&n->mu);
            pgsched__store_trouble(n, "listening", &e);
            backoff = backoff ? backoff * 2 : 100 * PGSCHED_MILLISECOND;
            if (backoff > 5 * PGSCHED_SECOND) backoff = 5 * PGSCHED_SECOND;
            until = pgsched__mono(n) + backoff;
            pthread_mutex_lock(&n->mu);
            while (n->state < PGSCHED__STOPPED && pgsched__mono(n) < until)
                pgsched__wait_until(n, &n->listen_cv, &n->mu, until);
            pthread_mutex_unlock(&n->mu);
            continue;
        }
        pthread_mutex_lock(&n->mu);
        n->listen_ok = 1;
        if (backoff) {
            backoff = 0;
            n->resync = 1;
            n->wake_cancel_check = 1;
            pthread_cond_signal(&n->cv);
        }
        for (i = 0; i < count; i++) {
            const pgsched_event *v = &ev[i];
            if (v->kind == PGSCHED_EVENT_RESYNC) {
                /* Something may have been missed: poll for due work and cancels at once. */
                n->resync = 1;
                n->wake_cancel_check = 1;
                pthread_cond_signal(&n->cv);
            } else if (v->kind == PGSCHED_EVENT_CANCEL) {
                /* Only a hint: anyone who can connect may NOTIFY. The run stops once the
                   dispatcher has read the cancel request from the table (one read of this
                   node's leases, however many such events arrive). */
                if (strcmp(v->owner, n->id) == 0) {
                    n->wake_cancel_check = 1;
                    pthread_cond_signal(&n->cv);
                }
            } else if ((v->kind == PGSCHED_EVENT_CHANGE || v->kind == PGSCHED_EVENT_DUE) &&
                       strcmp(v->node, n->id) != 0) {
                const pgsched__type *t = pgsched__find_type(n, v->name);
                if ((v->kind == PGSCHED_EVENT_DUE || v->new_status == PGSCHED_STATUS_PENDING) &&
                    v->next_run && t && t->t.handler)
                    pgsched__hint_due(n, v->next_run);
            }
        }
        pthread_mutex_unlock(&n->mu);
        for (i = 0; i < count; i++)
            if (ev[i].kind == PGSCHED_EVENT_CHANGE) pgsched__cb_notified(n, &ev[i]);
        if (n->cfg.on_status) {
            size_t dropped;
            pthread_mutex_lock(&n->cb_mu);
            dropped = n->cb_overflow;
            n->cb_overflow = 0;
            pthread_mutex_unlock(&n->cb_mu);
            if (dropped) {
                /* whatever those events would have hinted at is read from the table */
                pthread_mutex_lock(&n->mu);
                n->resync = 1;
                n->wake_cancel_check = 1;
                n->counters.status_events_dropped += (int64_t)dropped;
                pthread_cond_signal(&n->cv);
                pthread_mutex_unlock(&n->mu);
                overflow += dropped;
            }
            if (overflow && pgsched__mono(n) - overflow_logged > 5 * PGSCHED_SECOND) {
                overflow_logged = pgsched__mono(n);
                pgsched__log(n, PGSCHED_LOG_WARN,
                             "on_status is %d events behind: %lu status changes were not "
                             "delivered; due work and cancels are read again from the table",
                             PGSCHED__CBQ_MAX, (unsigned long)overflow);
                overflow = 0;
            }
        }
    }
    return NULL;
}

/* ---- public API ---- */

/* A node id: 32 hex digits from the system's random source, fresh at every start. */
static void pgsched__make_id(pgsched_node *n)
{
    unsigned char b[16];
    int i, ok = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        ok = fread(b, 1, sizeof b, f) == sizeof b;
        fclose(f);
    }
    if (!ok) {
        /* no random source: time, pid and an address, mixed */
        uint64_t x = (uint64_t)pgsched_now() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)n;
        for (i = 0; i < 16; i++) {
            x = (x ^ (x >> 31)) * 0xBF58476D1CE4E5B9ULL + (uint64_t)i;
            b[i] = (unsigned char)(x >> 24);
        }
    }
    for (i = 0; i < 16; i++) snprintf(n->id + 2 * i, 3, "%02x", b[i]);
    n->rng = 0;
    for (i = 0; i < 16; i++) n->rng = (n->rng << 8 | (n->rng >> 56)) ^ b[i];
}

#define PGSCHED__DEF(v, d) ((v) ? (v) : (d))

/* The checks of a node's configuration that need no defaults: ranges and signs. */
static pgsched_result pgsched__config_check_fields(const pgsched_config *c, pgsched_error *err)
{
    pgsched_result r;
    if (!c->store && !c->pg.conninfo)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "store/pg.conninfo: give a store or a PostgreSQL connection string");
    if (pgsched__allocator_partial(c->allocator)) return pgsched__allocator_refused(err);
    if (c->max_concurrent < 0 || c->max_concurrent > 1024)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "max_concurrent: %d is outside 1..1024 (0 means the default, 4)",
                             c->max_concurrent);
    if (c->claim_ahead < PGSCHED_NO_CLAIM_AHEAD || c->claim_ahead > 10000)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "claim_ahead: %d is outside 1..10000 (0 means the default, 256; "
                             "PGSCHED_NO_CLAIM_AHEAD none)",
                             c->claim_ahead);
    if ((r = pgsched__check_duration_field("poll_interval", c->poll_interval, 0, err)) ||
        (r = pgsched__check_duration_field("heartbeat_interval", c->heartbeat_interval, 0, err)) ||
        (r = pgsched__check_duration_field("stall_timeout", c->stall_timeout, 0, err)) ||
        (r = pgsched__check_duration_field("cancel_check_period", c->cancel_check_period, 0,
                                           err)) ||
        (r = pgsched__check_duration_field("retry_base", c->retry_base, 0, err)) ||
        (r = pgsched__check_duration_field("retry_cap", c->retry_cap, 0, err)) ||
        (r = pgsched__check_duration_field("shutdown_timeout", c->shutdown_timeout, 0, err)) ||
        (r = pgsched__check_duration_field("drain_timeout", c->drain_timeout, 0, err)) ||
        (r = pgsched__check_duration_field("claim_ahead_wait", c->claim_ahead_wait, 0, err)) ||
        (r = pgsched__check_duration_field("finished_retention", c->finished_retention, 1,
                                           err)) ||
        (r = pgsched__check_duration_field("history_retention", c->history_retention, 1, err)) ||
        (r = pgsched__check_duration_field("orphan_timeout", c->orphan_timeout, 1, err)) ||
        (r = pgsched__check_duration_field("stall_check_period", c->stall_check_period, 0,
                                           err)) ||
        (r = pgsched__check_duration_field("cleanup_period", c->cleanup_period, 0, err)))
        return r;
    if (c->log_level && (c->log_level < PGSCHED_LOG_DEBUG || c->log_level > PGSCHED_LOG_OFF))
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "log_level: %d is not a level",
                             (int)c->log_level);
    return PGSCHED_OK;
}

/* Every zero field of a checked configuration replaced by its default (as documented beside
   the fields of pgsched_config). */
static void pgsched__config_defaults(pgsched_config *c)
{
    c->max_concurrent = PGSCHED__DEF(c->max_concurrent, 4);
    c->claim_ahead = PGSCHED__DEF(c->claim_ahead, 256);
    c->claim_ahead_wait = PGSCHED__DEF(c->claim_ahead_wait, PGSCHED_SECOND);
    c->poll_interval = PGSCHED__DEF(c->poll_interval, PGSCHED_SECOND);
    c->stall_timeout = PGSCHED__DEF(c->stall_timeout, 30 * PGSCHED_SECOND);
    c->heartbeat_interval = PGSCHED__DEF(c->heartbeat_interval,
                                         c->stall_timeout / 6 < 5 * PGSCHED_SECOND
                                             ? c->stall_timeout / 6
                                             : 5 * PGSCHED_SECOND);
    if (c->heartbeat_interval <= 0) c->heartbeat_interval = 1;
    c->cancel_check_period = PGSCHED__DEF(c->cancel_check_period, PGSCHED_SECOND);
    c->retry_base = PGSCHED__DEF(c->retry_base, PGSCHED_SECOND);
    c->retry_cap = PGSCHED__DEF(c->retry_cap, 10 * PGSCHED_MINUTE);
    c->shutdown_timeout = PGSCHED__DEF(c->shutdown_timeout, 30 * PGSCHED_SECOND);
    c->finished_retention = PGSCHED__DEF(c->finished_retention, 7 * PGSCHED_DAY);
    c->history_retention = PGSCHED__DEF(c->history_retention, 7 * PGSCHED_DAY);
    c->orphan_timeout = PGSCHED__DEF(c->orphan_timeout, 7 * PGSCHED_DAY);
    c->stall_check_period = PGSCHED__DEF(c->stall_check_period, 5 * PGSCHED_SECOND);
    c->cleanup_period = PGSCHED__DEF(c->cleanup_period, PGSCHED_MINUTE);
    c->log_level = c->log_level ? c->log_level : PGSCHED_LOG_WARN;
    if (!c->allocator || !c->allocator->malloc_fn) c->allocator = &pgsched__default_allocator;
}

/* The checks between fields, once their defaults are in. */
static pgsched_result pgsched__config_check_relations(const pgsched_config *c, pgsched_error *err)
{
    /* A run is stopped when its lease went unrenewed for 3/4 of the stall timeout (see
       self-fencing): a heartbeat at most every half of it leaves room for one to fail. */
    if (c->heartbeat_interval > c->stall_timeout / 2)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "heartbeat_interval (%lld ms) must be at most half of stall_timeout "
                             "(%lld ms), so that a failed heartbeat can be retried before runs "
                             "are stopped for want of a renewed lease",
                             (long long)(c->heartbeat_interval / 1000),
                             (long long)(c->stall_timeout / 1000));
    if (c->retry_base > c->retry_cap)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "retry_base (%lld ms) must not exceed retry_cap (%lld ms)",
                             (long long)(c->retry_base / 1000), (long long)(c->retry_cap / 1000));
    return PGSCHED_OK;
}

/* A node's configuration resolved: `out` is `in` checked, with every default filled in. Pure:
   no I/O, no allocation; `out`'s strings and allocators point into `in` or at constants.
   pgsched_create makes its node from it and pgsched_get_config reads it back. (default_zone
   is checked against the zone database by pgsched_create, which is I/O.) The result is a
   fixed point: resolving it again gives it back. */
static pgsched_result pgsched__config_resolve(const pgsched_config *in, pgsched_config *out,
                                              pgsched_error *err)
{
    pgsched_result r;
    *out = *in;
    if ((r = pgsched__config_check_fields(in, err)) != PGSCHED_OK) return r;
    pgsched__config_defaults(out);
    if ((r = pgsched__config_check_relations(out, err)) != PGSCHED_OK) return r;
    if (out->store) {
        memset(&out->pg, 0, sizeof out->pg); /* not used: reads back zero */
    } else {
        if ((r = pgsched__pg_config_resolve(&in->pg, "pg.", &out->pg, err)) != PGSCHED_OK)
            return r;
        out->pg.no_notifications = out->pg.no_notifications || out->no_notifications;
        if (!out->pg.allocator || !out->pg.allocator->malloc_fn) out->pg.allocator = out->allocator;
    }
    return PGSCHED_OK;
}

/* Checked now so that a typo fails at start-up, not at the first run. */
static pgsched_result pgsched__config_check_zone(const pgsched_config *c, pgsched_error *err)
{
    pgsched_cron_options o;
    pgsched_cron *probe;
    pgsched_error e;
    if (!c->default_zone) return PGSCHED_OK;
    memset(&o, 0, sizeof o);
    o.default_zone = c->default_zone;
    o.allocator = c->allocator;
    if (pgsched_cron_parse("0 0 * * *", &o, &probe, &e) != PGSCHED_OK)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG, "default_zone: %s", e.message);
    pgsched_cron_free(probe);
    return PGSCHED_OK;
}

/* A node holding its own copy of a resolved configuration: its strings, its allocators (so
   that n->cfg, which pgsched_get_config hands out, points only into the node), its slots.
   NULL when out of memory. */
static pgsched_node *pgsched__node_alloc(const pgsched_config *c)
{
    pgsched_allocator a = *c->allocator;
    pgsched_node *n = (pgsched_node *)pgsched__calloc(&a, sizeof *n);
    if (!n) return NULL;
    n->alloc = a;
    n->cfg = *c;
    n->conninfo = pgsched__strdup(&a, c->pg.conninfo);
    n->schema = pgsched__strdup(&a, c->pg.schema);
    n->prefix = pgsched__strdup(&a, c->pg.prefix);
    n->default_zone = pgsched__strdup(&a, c->default_zone);
    n->nslots = c->max_concurrent;
    n->slots = (pgsched__slot *)pgsched__calloc(&a, (size_t)n->nslots * sizeof *n->slots);
    if ((c->pg.conninfo && !n->conninfo) || (c->pg.schema && !n->schema) ||
        (c->pg.prefix && !n->prefix) || (c->default_zone && !n->default_zone) || !n->slots) {
        pgsched__free(&a, n->conninfo);
        pgsched__free(&a, n->schema);
        pgsched__free(&a, n->prefix);
        pgsched__free(&a, n->default_zone);
        pgsched__free(&a, n->slots);
        pgsched__free(&a, n);
        return NULL;
    }
    n->cfg.pg.conninfo = n->conninfo;
    n->cfg.pg.schema = n->schema;
    n->cfg.pg.prefix = n->prefix;
    n->cfg.default_zone = n->default_zone;
    n->cfg.allocator = &n->alloc;
    if (c->store || c->pg.allocator == c->allocator) {
        n->cfg.pg.allocator = c->store ? NULL : &n->alloc;
    } else {
        n->pg_alloc = *c->pg.allocator;
        n->cfg.pg.allocator = &n->pg_alloc;
    }
    return n;
}

/* The node's locks, condition variables, slots, id and host name. */
static void pgsched__node_wire(pgsched_node *n)
{
    int i;
    n->store = n->cfg.store;
    n->notifications = !n->cfg.no_notifications;
    n->claim_ahead = n->cfg.claim_ahead == PGSCHED_NO_CLAIM_AHEAD ? 0 : n->cfg.claim_ahead;
    pthread_mutex_init(&n->mu, NULL);
    pgsched__rlock_init(&n->start_mu);
    pgsched__cond_init(&n->cv);
    pgsched__cond_init(&n->done_cv);
    pgsched__cond_init(&n->listen_cv);
    pgsched__cond_init(&n->writer_cv);
    pthread_mutex_init(&n->cron_mu, NULL);
    pthread_mutex_init(&n->cb_mu, NULL);
    pgsched__cond_init(&n->cb_cv);
    pgsched__cond_init(&n->cb_room);
    for (i = 0; i < n->nslots; i++) {
        n->slots[i].node = n;
        n->slots[i].index = i;
        n->slots[i].run.node = n;
        pgsched__cond_init(&n->slots[i].cv);
    }
    n->free_slots = n->nslots;
    pgsched__make_id(n);
    {
        struct utsname u; /* uname: POSIX.1-1988, where gethostname needs POSIX.1-2001 */
        pgsched__copy_text(n->host, sizeof n->host, uname(&u) >= 0 ? u.nodename : "unknown");
    }
    if (pgsched__utf8_check(n->host, strlen(n->host)) != (size_t)-1)
        pgsched__copy_text(n->host, sizeof n->host, "unknown");
    n->state = PGSCHED__CREATED;
}

PGSCHED_DEF pgsched_result pgsched_create(const pgsched_config *cfg, pgsched_node **out,
                                          pgsched_error *err)
{
    pgsched_config c;
    pgsched_node *n;
    pgsched_result r;
    if (!out) return pgsched__null(err, "the output node");
    *out = NULL;
    if (!cfg) return pgsched__null(err, "the configuration");
    if ((r = pgsched__config_resolve(cfg, &c, err)) != PGSCHED_OK ||
        (r = pgsched__config_check_zone(&c, err)) != PGSCHED_OK)
        return r;
    n = pgsched__node_alloc(&c);
    if (!n) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory creating a node");
    /* both left to the library: an idle node may poll and heartbeat less (see below) */
    n->idle_defaults = cfg->poll_interval == 0 && cfg->heartbeat_interval == 0;
    pgsched__node_wire(n);
    *out = n;
    return pgsched__ok(err);
}

PGSCHED_DEF pgsched_result pgsched_get_config(const pgsched_node *node, pgsched_config *out,
                                              pgsched_error *err)
{
    if (!node || !out)
        return pgsched__fail(err, PGSCHED_ERR_INVALID_ARGUMENT,
                             "pgsched_get_config: the %s is NULL", !node ? "node" : "output");
    *out = node->cfg; /* immutable after pgsched_create; its pointers are the node's */
    return PGSCHED_OK;
}

/* Caller holds start_mu. */
static pgsched_result pgsched__init_locked(pgsched_node *n, pgsched_error *err)
{
    pgsched_result r;
    pgsched_time before, now = 0;
    pthread_mutex_lock(&n->mu);
    if (n->state != PGSCHED__CREATED) {
        int st = n->state;
        pthread_mutex_unlock(&n->mu);
        if (st == PGSCHED__INITIALIZED || st == PGSCHED__STARTED) return pgsched__ok(err);
        return pgsched__fail(err, PGSCHED_ERR_STATE, "the node is shut down");
    }
    pthread_mutex_unlock(&n->mu);
    if (!n->store) {
        pgsched_pg_config pc = n->cfg.pg; /* resolved and checked by pgsched_create */
        char safe[512];
        if (!pc.log) {
            pc.log = pgsched__store_log;
            pc.log_user = n;
        }
        r = pgsched_pg_store_create(&pc, &n->store, err);
        if (r != PGSCHED_OK) return r;
        n->owns_store = 1;
        pgsched_conninfo_redact(n->conninfo, safe, sizeof safe);
        pgsched__log(n, PGSCHED_LOG_INFO, "connecting to %s", safe);
    }
    r = pgsched_store_setup(n->store, err);
    if (r != PGSCHED_OK) return r;
    before = pgsched__mono(n);
    r = pgsched_store_now(n->store, &now, err);
    if (r != PGSCHED_OK) return r;
    pgsched__clock_sample(n, before, now);
    pthread_mutex_lock(&n->mu);
    if (n->state == PGSCHED__CREATED) n->state = PGSCHED__INITIALIZED;
    pthread_mutex_unlock(&n->mu);
    return pgsched__ok(err);
}

PGSCHED_DEF pgsched_result pgsched_init(pgsched_node *n, pgsched_error *err)
{
    pgsched_result r;
    if (!n) return pgsched__null(err, "the node");
    pgsched__rlock_lock(&n->start_mu);
    r = pgsched__init_locked(n, err);
    pgsched__rlock_unlock(&n->start_mu);
    return r;
}

PGSCHED_DEF pgsched_result pgsched_register(pgsched_node *n, const pgsched_job_type *type,
                                            pgsched_error *err)
{
    pgsched_result r;
    pgsched__type *t;
    if (!n) return pgsched__null(err, "the node");
    if (!type) return pgsched__null(err, "the job type");
    if ((r = pgsched_validate_name(type->name, err)) != PGSCHED_OK) return r;
    if (type->max_retries < PGSCHED_NO_RETRIES || type->max_retries > PGSCHED__MAX_RETRIES)
        return pgsched__fail(err, PGSCHED_ERR_CONFIG,
                             "job type %s: max_retries %d is outside -1..%d", type->name,
                             type->max_retries, PGSCHED__MAX_RETRIES);
    {
        pgsched_error e;
        if (pgsched__check_duration_field("retry_base", type->retry_base, 0, &e) ||
            pgsched__check_duration_field("retry_cap", type->retry_cap, 0, &e) ||
            pgsched__check_duration_field("timeout", type->timeout, 1, &e))
            return pgsched__fail(err, PGSCHED_ERR_CONFIG, "job type %s: %s", type->name,
                                 e.message);
    }
    t = (pgsched__type *)pgsched__calloc(&n->alloc, sizeof *t);
    if (t) t->name = pgsched__strdup(&n->alloc, type->name);
    if (!t || !t->name) {
        pgsched__free(&n->alloc, t);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory registering a type");
    }
    t->t = *type;
    t->t.name = t->name;
    t->c.name = t->name;
    pthread_mutex_lock(&n->mu);
    if (n->state >= PGSCHED__STARTED || n->starting) {
        pthread_mutex_unlock(&n->mu);
        pgsched__free(&n->alloc, t->name);
        pgsched__free(&n->alloc, t);
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "job types are registered before pgsched_start");
    }
    if (pgsched__find_type(n, type->name)) {
        pthread_mutex_unlock(&n->mu);
        pgsched__free(&n->alloc, t->name);
        pgsched__free(&n->alloc, t);
        return pgsched__fail(err, PGSCHED_ERR_STATE, "job type %s is already registered",
                             type->name);
    }
    t->next = n->types;
    PGSCHED__STORE(&n->types, t);
    n->ntypes++;
    pthread_mutex_unlock(&n->mu);
    return pgsched__ok(err);
}

/* The part of start before its threads exist; on failure the node stays startable. Caller
   holds start_mu and has set `starting`. */
static pgsched_result pgsched__start_prepare(pgsched_node *n, pgsched_error *err)
{
    pgsched_result r;
    const pgsched__type *t;
    size_t i;
    if ((r = pgsched__init_locked(n, err)) != PGSCHED_OK) return r;
    pgsched__free(&n->alloc, n->run_names);
    pgsched__free(&n->alloc, n->all_names);
    n->run_names = (const char **)pgsched__calloc(&n->alloc, (n->ntypes + 1) * sizeof(char *));
    n->all_names = (const char **)pgsched__calloc(&n->alloc, (n->ntypes + 1) * sizeof(char *));
    if (!n->run_names || !n->all_names)
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory starting the node");
    /* in the order of registration (the list is newest first) */
    n->nrun = 0;
    i = n->ntypes;
    for (t = n->types; t; t = t->next) n->all_names[--i] = t->name;
    for (i = 0; i < n->ntypes; i++)
        if (pgsched__find_type(n, n->all_names[i])->t.handler)
            n->run_names[n->nrun++] = n->all_names[i];
    if (n->notifications && !pgsched__store_listens(n->store)) {
        pgsched__log(n, PGSCHED_LOG_INFO,
                     "the %s store has no notifications: this node polls",
                     n->store->methods->name ? n->store->methods->name : "(unnamed)");
        n->notifications = 0;
    }
    if (n->notifications) {
        r = pgsched_store_listen_open(n->store, &n->listen, err);
        if (r != PGSCHED_OK) return r;
#ifndef PGSCHED_NO_LIBPQ
        if (!n->cfg.on_status) pgsched__pg_listen_hints_only(n->store, n->listen);
#endif
    }
    /* Listening first: once the record says this node wants status events, a change that
       announces them because of it (see pgsched_node_record) reaches its listener. A node
       with on_status that cannot say so would hear no other node's claims and outcomes (and
       its own only late, after PGSCHED__OWN_WAIT): its start fails instead. Other nodes
       start all the same and register again at their next clean-up. */
    {
        pgsched_error e;
        r = pgsched__register_node(n, &e);
        if (r != PGSCHED_OK && n->cfg.on_status && n->notifications) {
            if (n->listen) {
                pgsched_store_listen_close(n->store, n->listen);
                n->listen = NULL;
            }
            return pgsched__fail(err, r,
                                 "registering the node, which has on_status and needs its "
                                 "record to hear other nodes' changes: %s",
                                 e.message);
        }
    }
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_start(pgsched_node *n, pgsched_error *err)
{
    pgsched_result r;
    int k, ok;
    pgsched_time now;
    if (!n) return pgsched__null(err, "the node");
    pgsched__rlock_lock(&n->start_mu);
    pthread_mutex_lock(&n->mu);
    if (n->state >= PGSCHED__STARTED) {
        pthread_mutex_unlock(&n->mu);
        pgsched__rlock_unlock(&n->start_mu);
        return pgsched__fail(err, PGSCHED_ERR_STATE, n->state == PGSCHED__STARTED
                                                         ? "the node is already started"
                                                         : "the node is shut down");
    }
    if (n->starting) { /* called again from this thread while starting (a log callback) */
        pthread_mutex_unlock(&n->mu);
        pgsched__rlock_unlock(&n->start_mu);
        return pgsched__fail(err, PGSCHED_ERR_STATE, "the node is already starting");
    }
    n->starting = 1;
    pthread_mutex_unlock(&n->mu);
    r = pgsched__start_prepare(n, err);
    if (r != PGSCHED_OK) {
        pthread_mutex_lock(&n->mu);
        n->starting = 0;
        pthread_mutex_unlock(&n->mu);
        pgsched__rlock_unlock(&n->start_mu);
        return r;
    }

    pthread_mutex_lock(&n->mu);
    if (n->state >= PGSCHED__STOPPING) {
        /* shut down meanwhile, from this very thread (a log callback, say): undo what
           start_prepare did, which that shutdown did not know of */
        pgsched_error e;
        n->starting = 0;
        pthread_mutex_unlock(&n->mu);
        if (n->listen) {
            pgsched_store_listen_close(n->store, n->listen);
            n->listen = NULL;
        }
        pgsched_store_node_unregister(n->store, n->id, &e);
        pgsched__rlock_unlock(&n->start_mu);
        return pgsched__fail(err, PGSCHED_ERR_STATE, "the node was shut down while starting");
    }
    now = pgsched__mono(n);
    n->next_poll = now;
    n->next_heartbeat = now + n->cfg.heartbeat_interval;
    n->next_cancel_check = now + n->cfg.cancel_check_period;
    /* the first maintenance runs at a random point of its period: nodes started together
       spread out from the start */
    n->next_stall = now + pgsched__jitter(n, n->cfg.stall_check_period, 0, 100);
    n->next_cleanup = now + pgsched__jitter(n, n->cfg.cleanup_period, 0, 100);
    n->state = PGSCHED__STARTED;
    ok = 1;
    for (k = 0; k < n->nslots && ok; k++) {
        ok = pthread_create(&n->slots[k].thread, NULL, pgsched__worker_main, &n->slots[k]) == 0;
        n->slots[k].thread_started = ok;
    }
    if (ok) ok = n->dispatcher_started =
                 pthread_create(&n->dispatcher, NULL, pgsched__dispatcher_main, n) == 0;
    if (ok && n->cfg.on_status)
        ok = n->callbacker_started =
            pthread_create(&n->callbacker, NULL, pgsched__callback_main, n) == 0;
    if (ok && n->listen) {
        /* From now on changes of this node wait for their own notification (see the status
           callbacks section); set before the listener runs, so none is delivered twice. */
        pthread_mutex_lock(&n->cb_mu);
        n->cb_ordered = 1;
        pthread_mutex_unlock(&n->cb_mu);
        ok = n->listener_started =
            pthread_create(&n->listener, NULL, pgsched__listener_main, n) == 0;
    }
    n->starting = 0;
    pthread_mutex_unlock(&n->mu);
    pgsched__rlock_unlock(&n->start_mu);
    if (!ok) {
        /* The ordinary shutdown stops what did start; destroy then joins the workers. */
        pgsched_shutdown(n, NULL);
        return pgsched__fail(err, PGSCHED_ERR_NOMEM, "cannot start the node's threads");
    }
    pgsched__log(n, PGSCHED_LOG_INFO, "node started on %s with %d workers and %lu job types",
                 n->host, n->nslots, (unsigned long)n->ntypes);
    return pgsched__ok(err);
}

static pgsched_result pgsched__check_usable(pgsched_node *n, pgsched_error *err)
{
    int st;
    if (!n) return pgsched__null(err, "the node");
    pthread_mutex_lock(&n->mu);
    st = n->state;
    pthread_mutex_unlock(&n->mu);
    if (st == PGSCHED__CREATED)
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "the node is not initialised: call pgsched_init or pgsched_start first");
    if (st >= PGSCHED__STOPPING) return pgsched__fail(err, PGSCHED_ERR_STATE, "the node is shut down");
    return PGSCHED_OK;
}

/* Builds the store request for a spec: checks it against the registered type and computes
   the first run. `cron_text` receives an owned copy when the text needs the default zone. */
static pgsched_result pgsched__prepare(pgsched_node *n, const pgsched_job_spec *spec,
                                       pgsched_schedule_request *q, char **cron_text,
                                       pgsched_error *err)
{
    const pgsched__type *t;
    pgsched_result r;
    pgsched_time db_now = pgsched__db_now(n);
    const pgsched_schedule *s;
    *cron_text = NULL;
    if (!spec) return pgsched__null(err, "the job spec");
    if ((r = pgsched_validate_name(spec->name, err)) != PGSCHED_OK) return r;
    if ((r = pgsched_validate_key(spec->key, err)) != PGSCHED_OK) return r;
    t = pgsched__find_type(n, spec->name);
    if (!t)
        return pgsched__fail(err, PGSCHED_ERR_NOT_REGISTERED,
                             "job type %s is not registered on this node", spec->name);
    s = &spec->schedule;
    memset(q, 0, sizeof *q);
    q->name = spec->name;
    q->key = spec->key;
    q->params = spec->params;
    q->apply_after_run = spec->apply_after_run;
    q->node_id = n->id;
    if (spec->max_retries == 0)
        q->max_retries = t->t.max_retries == 0 ? 3 : t->t.max_retries < 0 ? 0 : t->t.max_retries;
    else if (spec->max_retries == PGSCHED_NO_RETRIES)
        q->max_retries = 0;
    else if (spec->max_retries < 0 || spec->max_retries > PGSCHED__MAX_RETRIES)
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                             "max_retries %d is outside -1..%d", spec->max_retries,
                             PGSCHED__MAX_RETRIES);
    else
        q->max_retries = spec->max_retries;
    if (s->at < 0 || (s->at && (s->at < PGSCHED_TIME_MIN || s->at > PGSCHED_TIME_MAX)))
        return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                             "schedule.at is outside years 1900..9999");
    if ((r = pgsched__check_delay("schedule.delay", s->delay, err)) != PGSCHED_OK) return r;
    if (s->delay && s->at)
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                             "schedule.at and schedule.delay are both set; give one: at is a "
                             "time, delay counts from the store's now");
    q->kind = s->kind;
    /* A delay makes the store compute the first run (next_run 0: its now + delay), whatever
       the kind: it wins over run_immediately and over the schedule's own first run. */
    q->delay = s->delay;
    switch (s->kind) {
    case PGSCHED_SCHEDULE_ONCE:
        q->next_run = s->at; /* 0: the store's now + delay */
        break;
    case PGSCHED_SCHEDULE_CRON: {
        pgsched_cron *c;
        int owned;
        pgsched_duration every;
        const char *text = s->cron;
        if (!text)
            return pgsched__fail(err, PGSCHED_ERR_CRON_SYNTAX,
                                 "the cron expression is missing (NULL)");
        /* The row carries its zone so that every node computes the same next run: the
           node's default zone is written into the text; text without a zone means UTC to
           every node that reads the row. */
        if (n->default_zone && !pgsched__has_zone_prefix(text)) {
            size_t len = strlen(n->default_zone) + strlen(text) + 10;
            *cron_text = (char *)pgsched__malloc(&n->alloc, len);
            if (!*cron_text) return pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory");
            snprintf(*cron_text, len, "CRON_TZ=%s %s", n->default_zone, text);
            text = *cron_text;
        }
        r = pgsched__cron_get(n, text, &c, &owned, err);
        if (r != PGSCHED_OK) return r;
        every = pgsched_cron_interval(c);
        if (every > 0) {
            q->kind = PGSCHED_SCHEDULE_INTERVAL; /* "@every" is a fixed interval */
            q->every = every;
            q->next_run = s->at                                ? s->at
                          : s->delay || n->cfg.run_immediately ? 0
                                                               : db_now + every;
        } else {
            q->cron = text;
            if (s->at) q->next_run = s->at;
            else if (s->delay || n->cfg.run_immediately) q->next_run = 0;
            else r = pgsched_cron_next(c, db_now, &q->next_run);
            if (r != PGSCHED_OK)
                r = pgsched__fail(err, PGSCHED_ERR_NO_NEXT, "the cron schedule has no run after now");
        }
        if (owned) pgsched_cron_free(c);
        return r;
    }
    case PGSCHED_SCHEDULE_INTERVAL:
        if (s->every <= 0 || s->every > PGSCHED__DURATION_MAX)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "an interval schedule needs a positive interval of at most "
                                 "100 years");
        q->every = s->every;
        q->next_run = s->at                                ? s->at
                      : s->delay || n->cfg.run_immediately ? 0
                                                           : db_now + s->every;
        break;
    case PGSCHED_SCHEDULE_CUSTOM:
        if (!t->t.next_run)
            return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                                 "job type %s has no next_run callback for a custom schedule",
                                 spec->name);
        if (s->at) q->next_run = s->at;
        else if (s->delay || n->cfg.run_immediately) q->next_run = 0;
        else {
            r = t->t.next_run(t->t.next_run_user, spec->name, spec->key,
                              spec->params ? spec->params : "{}", db_now, &q->next_run);
            if (r != PGSCHED_OK)
                return pgsched__fail(err, r == PGSCHED_ERR_NO_NEXT ? r : PGSCHED_ERR_SCHEDULE,
                                     "the next-run callback of %s gave no first run: %s",
                                     spec->name, pgsched_result_string(r));
            if (q->next_run < PGSCHED_TIME_MIN || q->next_run > PGSCHED_TIME_MAX)
                return pgsched__fail(err, PGSCHED_ERR_TIME_RANGE,
                                     "the next-run callback of %s returned a time outside "
                                     "years 1900..9999",
                                     spec->name);
        }
        break;
    default:
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "the schedule kind %d is unknown",
                             (int)s->kind);
    }
    return PGSCHED_OK;
}

/* After a change made through this node: wake the dispatcher if it makes work due sooner. */
static void pgsched__note_due(pgsched_node *n, const char *name, pgsched_time next_run)
{
    const pgsched__type *t = pgsched__find_type(n, name);
    if (!t || !t->t.handler) return;
    pthread_mutex_lock(&n->mu);
    pgsched__hint_due(n, next_run ? next_run : pgsched__db_now(n));
    pthread_mutex_unlock(&n->mu);
}

/* Schedules count specs through the store (conn: in the caller's transaction), noting each
   failure in m. Returns an error only when the call as a whole cannot be made. */
static pgsched_result pgsched__schedule_specs(pgsched_node *n, void *conn,
                                              const pgsched_job_spec *specs, size_t count,
                                              pgsched_result *results, pgsched__many_report *m,
                                              pgsched_error *err)
{
    pgsched_schedule_request *reqs;
    pgsched_schedule_info *outs;
    pgsched_result *res;
    char **crons;
    size_t *at, nv = 0, i, k;
    pgsched__many_report sm;
    pgsched_time due = 0;
    int any_due = 0;
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    if (count && !specs) return pgsched__null(err, "the job specs");
    if (count && !results) return pgsched__null(err, "the results array");
    if (count > (size_t)-1 / (2 * sizeof *reqs))
        return pgsched__fail(err, PGSCHED_ERR_TOO_LARGE, "too many job specs");
    reqs = (pgsched_schedule_request *)pgsched__malloc(&n->alloc, count * sizeof *reqs);
    outs = (pgsched_schedule_info *)pgsched__malloc(&n->alloc, count * sizeof *outs);
    res = (pgsched_result *)pgsched__malloc(&n->alloc, count * sizeof *res);
    crons = (char **)pgsched__calloc(&n->alloc, count * sizeof *crons);
    at = (size_t *)pgsched__malloc(&n->alloc, count * sizeof *at);
    if (!reqs || !outs || !res || !crons || !at) {
        r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory scheduling %lu jobs",
                          (unsigned long)count);
        goto done;
    }
    for (i = 0; i < count; i++) {
        pgsched_error e;
        memset(&e, 0, sizeof e);
        results[i] = pgsched__prepare(n, &specs[i], &reqs[nv], &crons[i], &e);
        if (results[i] != PGSCHED_OK) {
            pgsched__many_note(m, i, results[i], &e);
            continue;
        }
        /* In the caller's transaction: announced by the store's notification when it
           commits; without a node id, every node (this one too) sees it as news. */
        if (conn) reqs[nv].node_id = NULL;
        at[nv++] = i;
    }
    memset(&sm, 0, sizeof sm);
    sm.first = nv;
    r = pgsched__store_schedule_many(n->store, conn, conn != NULL, reqs, nv, outs, res, &sm, err);
    if (r != PGSCHED_OK) goto done;
    if (sm.failed) {
        m->failed += sm.failed - 1;
        pgsched__many_note(m, at[sm.first], sm.e.code, &sm.e);
    }
    for (k = 0; k < nv; k++) {
        const pgsched_schedule_info *o = &outs[k];
        const pgsched__type *t;
        results[at[k]] = res[k];
        if (res[k] != PGSCHED_OK || conn) continue;
        pgsched__cb_push(n, reqs[k].name, reqs[k].key, o->old_status,
                         o->deferred ? PGSCHED_STATUS_RUNNING : PGSCHED_STATUS_PENDING, o->next_run, o->version,
                         n->id, 0);
        t = o->deferred ? NULL : pgsched__find_type(n, reqs[k].name);
        if (t && t->t.handler && (!any_due || o->next_run < due)) {
            due = o->next_run;
            any_due = 1;
        }
    }
    /* after a change made through this node: wake the dispatcher if work is due sooner */
    if (any_due) {
        pthread_mutex_lock(&n->mu);
        pgsched__hint_due(n, due ? due : pgsched__db_now(n));
        pthread_mutex_unlock(&n->mu);
    }
done:
    if (crons)
        for (i = 0; i < count; i++) pgsched__free(&n->alloc, crons[i]);
    pgsched__free(&n->alloc, reqs);
    pgsched__free(&n->alloc, outs);
    pgsched__free(&n->alloc, res);
    pgsched__free(&n->alloc, crons);
    pgsched__free(&n->alloc, at);
    return r;
}

static pgsched_result pgsched__schedule_one(pgsched_node *n, void *conn,
                                            const pgsched_job_spec *spec, pgsched_error *err)
{
    pgsched__many_report m;
    pgsched_result one, r;
    memset(&m, 0, sizeof m);
    m.first = 1;
    if (!spec) return pgsched__null(err, "the job spec");
    r = pgsched__schedule_specs(n, conn, spec, 1, &one, &m, err);
    if (r != PGSCHED_OK || m.failed == 0) return r == PGSCHED_OK ? pgsched__ok(err) : r;
    if (err) *err = m.e;
    return m.e.code;
}

PGSCHED_DEF pgsched_result pgsched_schedule_job(pgsched_node *n, const pgsched_job_spec *spec,
                                                pgsched_error *err)
{
    return pgsched__schedule_one(n, NULL, spec, err);
}

PGSCHED_DEF pgsched_result pgsched_schedule_job_tx(pgsched_node *n, struct pg_conn *conn,
                                                   const pgsched_job_spec *spec,
                                                   pgsched_error *err)
{
    if (!conn) return pgsched__null(err, "the caller's connection");
    return pgsched__schedule_one(n, conn, spec, err);
}

static pgsched_result pgsched__schedule_many_api(pgsched_node *n, void *conn,
                                                 const pgsched_job_spec *specs, size_t count,
                                                 pgsched_result *results, pgsched_error *err)
{
    pgsched__many_report m;
    pgsched_result r;
    memset(&m, 0, sizeof m);
    m.first = count;
    r = pgsched__schedule_specs(n, conn, specs, count, results, &m, err);
    if (r != PGSCHED_OK) {
        size_t i;
        for (i = 0; results && i < count; i++) results[i] = r;
        return r;
    }
    return pgsched__many_result(&m, "spec", count, err);
}

PGSCHED_DEF pgsched_result pgsched_schedule_jobs(pgsched_node *n, const pgsched_job_spec *specs,
                                                 size_t count, pgsched_result *results,
                                                 pgsched_error *err)
{
    return pgsched__schedule_many_api(n, NULL, specs, count, results, err);
}

PGSCHED_DEF pgsched_result pgsched_schedule_jobs_tx(pgsched_node *n, struct pg_conn *conn,
                                                    const pgsched_job_spec *specs, size_t count,
                                                    pgsched_result *results, pgsched_error *err)
{
    if (!conn) return pgsched__null(err, "the caller's connection");
    return pgsched__schedule_many_api(n, conn, specs, count, results, err);
}

/* A cancel that reaches a run of this very node needs no notification round trip. */
static void pgsched__local_cancel(pgsched_node *n, const char *name, const char *key,
                                  const char *owner)
{
    if (strcmp(owner, n->id) != 0) return;
    pthread_mutex_lock(&n->mu);
    pgsched__cancel_matching(n, name, key);
    pthread_mutex_unlock(&n->mu);
}

PGSCHED_DEF pgsched_result pgsched_cancel(pgsched_node *n, const char *name, const char *key,
                                          pgsched_change_effect *effect, pgsched_error *err)
{
    pgsched_change_info o;
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    r = pgsched_store_cancel(n->store, name, key, n->id, &o, err);
    if (r != PGSCHED_OK) return r;
    if (effect) *effect = (pgsched_change_effect)o.effect;
    if (o.effect == PGSCHED_CHANGE_CANCEL_REQUESTED) pgsched__local_cancel(n, name, key, o.owner);
    pgsched__cb_push(n, name, key, o.old_status, o.new_status, 0, o.version, n->id, 0);
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_remove(pgsched_node *n, const char *name, const char *key,
                                          pgsched_change_effect *effect, pgsched_error *err)
{
    pgsched_change_info o;
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    r = pgsched_store_remove(n->store, name, key, n->id, &o, err);
    if (r != PGSCHED_OK) return r;
    if (effect) *effect = (pgsched_change_effect)o.effect;
    if (o.effect == PGSCHED_CHANGE_REMOVE_DEFERRED) pgsched__local_cancel(n, name, key, o.owner);
    pgsched__cb_push(n, name, key, o.old_status, o.new_status, 0, o.version, n->id, 0);
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_trigger(pgsched_node *n, const char *name, const char *key,
                                           pgsched_error *err)
{
    pgsched_change_info o;
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    r = pgsched_store_trigger(n->store, name, key, n->id, &o, err);
    if (r != PGSCHED_OK) return r;
    pgsched__note_due(n, name, o.next_run);
    return PGSCHED_OK;
}

PGSCHED_DEF pgsched_result pgsched_get(pgsched_node *n, const char *name, const char *key,
                                       pgsched_job **out, pgsched_error *err)
{
    pgsched_job_list rows;
    pgsched_result r;
    if (!out) return pgsched__null(err, "the output job");
    *out = NULL;
    if ((r = pgsched__check_usable(n, err)) != PGSCHED_OK) return r;
    pgsched_job_list_init(&rows, &n->alloc);
    r = pgsched_store_get(n->store, name, key, &rows, err);
    if (r == PGSCHED_OK && rows.count != 1)
        r = pgsched__err_not_found(err, name, key);
    if (r == PGSCHED_OK && !(*out = pgsched__job_dup(&n->alloc, &rows.items[0])))
        r = pgsched__fail(err, PGSCHED_ERR_NOMEM, "out of memory copying job %s/%s", name, key);
    pgsched_job_list_free(&rows);
    return r;
}

PGSCHED_DEF pgsched_result pgsched_list(pgsched_node *n, const pgsched_list_filter *filter,
                                        pgsched_job_list *out, pgsched_error *err)
{
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    return pgsched_store_list(n->store, filter, out, err);
}

PGSCHED_DEF pgsched_result pgsched_history(pgsched_node *n, const char *name, const char *key,
                                           size_t limit, pgsched_run_list *out,
                                           pgsched_error *err)
{
    pgsched_result r = pgsched__check_usable(n, err);
    if (r != PGSCHED_OK) return r;
    return pgsched_store_history(n->store, name, key, limit, out, err);
}

PGSCHED_DEF void pgsched_get_counters(pgsched_node *n, pgsched_counters *out)
{
    if (!n || !out) return;
    pthread_mutex_lock(&n->mu);
    *out = n->counters;
    pthread_mutex_unlock(&n->mu);
}

PGSCHED_DEF pgsched_duration pgsched_histogram_bound(size_t i)
{
    return i < PGSCHED_HISTOGRAM_BUCKETS - 1 ? pgsched__hist_bounds[i] : PGSCHED_NEVER;
}

PGSCHED_DEF size_t pgsched_get_type_counters(pgsched_node *n, pgsched_type_counters *out,
                                             size_t cap)
{
    const pgsched__type *t;
    size_t count, i;
    if (!n) return 0;
    pthread_mutex_lock(&n->mu);
    count = n->ntypes;
    /* the list is newest first: the oldest goes to out[count - 1] */
    i = count;
    for (t = n->types; t && i > 0; t = t->next) {
        i--;
        if (out && i < cap) out[i] = t->c;
    }
    pthread_mutex_unlock(&n->mu);
    return count;
}

/* snprintf into a buffer that may be too small; `len` counts what the whole text needs. */
typedef struct pgsched__out {
    char *buf;
    size_t size, len;
} pgsched__out;

static void pgsched__outf(pgsched__out *o, const char *fmt, ...) PGSCHED__PRINTF(2, 3);
static void pgsched__outf(pgsched__out *o, const char *fmt, ...)
{
    va_list ap;
    int k;
    va_start(ap, fmt);
    k = vsnprintf(o->len < o->size ? o->buf + o->len : NULL, o->len < o->size ? o->size - o->len : 0,
                  fmt, ap);
    va_end(ap);
    if (k > 0) o->len += (size_t)k;
}

/* A label value: backslash, double quote and newline escaped. */
static void pgsched__out_label(pgsched__out *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\') pgsched__outf(o, "\\\\");
        else if (*v == '"') pgsched__outf(o, "\\\"");
        else if (*v == '\n') pgsched__outf(o, "\\n");
        else pgsched__outf(o, "%c", *v);
    }
}

/* Microseconds as seconds, exactly and without the locale's decimal point ("0.0025", "1"). */
static void pgsched__out_seconds(pgsched__out *o, pgsched_duration us)
{
    char frac[8];
    int k;
    if (us < 0) {
        pgsched__outf(o, "-");
        us = -us;
    }
    snprintf(frac, sizeof frac, "%06lld", (long long)(us % PGSCHED_SECOND));
    for (k = 5; k >= 0 && frac[k] == '0'; k--) frac[k] = '\0';
    pgsched__outf(o, "%lld%s%s", (long long)(us / PGSCHED_SECOND), frac[0] ? "." : "", frac);
}

static void pgsched__out_head(pgsched__out *o, const char *name, const char *type,
                              const char *help)
{
    pgsched__outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void pgsched__out_hist(pgsched__out *o, const char *name, const char *help,
                              const pgsched_histogram *h)
{
    int64_t cum = 0;
    size_t i;
    pgsched__out_head(o, name, "histogram", help);
    for (i = 0; i < PGSCHED_HISTOGRAM_BUCKETS; i++) {
        cum += h->buckets[i];
        pgsched__outf(o, "%s_bucket{le=\"", name);
        if (i < PGSCHED_HISTOGRAM_BUCKETS - 1) pgsched__out_seconds(o, pgsched__hist_bounds[i]);
        else pgsched__outf(o, "+Inf");
        pgsched__outf(o, "\"} %lld\n", (long long)cum);
    }
    pgsched__outf(o, "%s_sum ", name);
    pgsched__out_seconds(o, h->sum);
    pgsched__outf(o, "\n%s_count %lld\n", name, (long long)h->count);
}

PGSCHED_DEF size_t pgsched_metrics_prometheus(pgsched_node *n, char *buf, size_t size)
{
    static const struct {
        const char *name, *type, *help;
    } per_type[] = {
        {"pgsched_claimed_total", "counter", "Runs this node claimed, by job type."},
        {"pgsched_runs_total", "counter",
         "Finished runs whose outcome this node recorded, by job type and outcome "
         "(failure counts retried attempts too)."},
        {"pgsched_retries_total", "counter",
         "Failed attempts that were given another attempt, by job type."},
        {"pgsched_lease_lost_total", "counter",
         "Runs stopped because another node took their row, by job type."},
        {"pgsched_running", "gauge", "Runs in progress on this node, by job type."},
    };
    pgsched__out o;
    pgsched_counters c;
    pgsched_type_counters *tc = NULL;
    size_t ntypes = 0, i, k;
    o.buf = buf;
    o.size = buf ? size : 0;
    o.len = 0;
    if (o.size) buf[0] = '\0';
    if (!n) return 0;
    pthread_mutex_lock(&n->mu);
    c = n->counters;
    /* one snapshot of both, taken under the lock (types only grow, so ntypes is enough) */
    if (n->ntypes) tc = (pgsched_type_counters *)pgsched__malloc(&n->alloc, n->ntypes * sizeof *tc);
    if (tc) {
        const pgsched__type *t;
        ntypes = n->ntypes;
        i = ntypes;
        for (t = n->types; t && i > 0; t = t->next) tc[--i] = t->c;
    }
    pthread_mutex_unlock(&n->mu);

    pgsched__out_head(&o, "pgsched_node_info", "gauge", "This node's id (always 1).");
    pgsched__outf(&o, "pgsched_node_info{node=\"");
    pgsched__out_label(&o, n->id);
    pgsched__outf(&o, "\"} 1\n");
    pgsched__out_head(&o, "pgsched_store_connected", "gauge",
                      "1 when the node's last claim or heartbeat reached the store, else 0.");
    pgsched__outf(&o, "pgsched_store_connected %d\n", c.connected ? 1 : 0);
    pgsched__out_head(&o, "pgsched_connection_errors_total", "counter",
                      "Store calls that failed for want of a connection.");
    pgsched__outf(&o, "pgsched_connection_errors_total %lld\n", (long long)c.connection_errors);
    pgsched__out_head(&o, "pgsched_claim_statements_total", "counter",
                      "Claim statements this node issued.");
    pgsched__outf(&o, "pgsched_claim_statements_total %lld\n", (long long)c.polls);
    pgsched__out_head(&o, "pgsched_stalled_taken_back_total", "counter",
                      "Runs of stalled nodes that this node took back.");
    pgsched__outf(&o, "pgsched_stalled_taken_back_total %lld\n", (long long)c.stalled_taken_back);
    pgsched__out_head(&o, "pgsched_status_events_dropped_total", "counter",
                      "Status changes not given to on_status because it fell too far behind.");
    pgsched__outf(&o, "pgsched_status_events_dropped_total %lld\n",
                  (long long)c.status_events_dropped);
    for (k = 0; k < sizeof per_type / sizeof per_type[0]; k++) {
        pgsched__out_head(&o, per_type[k].name, per_type[k].type, per_type[k].help);
        for (i = 0; i < ntypes; i++) {
            static const char *const outcomes[] = {"success", "failure", "cancelled"};
            const int64_t values[] = {tc[i].claimed,  tc[i].succeeded, tc[i].failed,
                                      tc[i].cancelled, tc[i].retried,  tc[i].lease_lost,
                                      tc[i].running};
            size_t j, first = k == 0 ? 0 : k == 1 ? 1 : k + 2, last = k == 1 ? 3 : first;
            for (j = first; j <= last; j++) {
                pgsched__outf(&o, "%s{job_type=\"", per_type[k].name);
                pgsched__out_label(&o, tc[i].name);
                if (k == 1) pgsched__outf(&o, "\",outcome=\"%s", outcomes[j - 1]);
                pgsched__outf(&o, "\"} %lld\n", (long long)values[j]);
            }
        }
    }
    pgsched__out_hist(&o, "pgsched_claim_duration_seconds",
                      "Duration of the claim statements this node issued.", &c.claim_latency);
    pgsched__out_hist(&o, "pgsched_start_delay_seconds",
                      "Time from a run's due time to its handler's start.", &c.start_delay);
    pgsched__free(&n->alloc, tc);
    return o.len;
}

PGSCHED_DEF const char *pgsched_node_id(const pgsched_node *n) { return n ? n->id : NULL; }

PGSCHED_DEF pgsched_store *pgsched_node_store(const pgsched_node *n) { return n ? n->store : NULL; }

/* What pgsched_shutdown returns once the node is shut down: whether runs are still going.
   Caller holds n->mu; the message is logged by the caller if `log` is set. */
static pgsched_result pgsched__shutdown_result(pgsched_node *n, pgsched_error *err, char *msg,
                                               size_t size)
{
    char names[200];
    int going = n->dispatcher_done ? 0 : pgsched__still_going(n, names, sizeof names);
    msg[0] = '\0';
    if (!going) return pgsched__ok(err);
    snprintf(msg, size,
             "%d run%s (%s) still going at the end of the shutdown timeout: %s asked to stop "
             "and keep%s %s lease%s, renewed, until %s return%s; %s outcome%s recorded then",
             going, going > 1 ? "s" : "", names, going > 1 ? "they were" : "it was",
             going > 1 ? "" : "s", going > 1 ? "their" : "its", going > 1 ? "s" : "",
             going > 1 ? "they" : "it", going > 1 ? "" : "s", going > 1 ? "their" : "its",
             going > 1 ? "s are" : " is");
    return pgsched__fail(err, PGSCHED_ERR_TIMEOUT, "%s", msg);
}

PGSCHED_DEF pgsched_result pgsched_shutdown(pgsched_node *n, pgsched_error *err)
{
    int i, was, lingering;
    pgsched_result r;
    char msg[PGSCHED_ERROR_MAX];
    if (!n) return pgsched__null(err, "the node");
    pthread_mutex_lock(&n->mu);
    if (pgsched__is_node_thread(n)) {
        pthread_mutex_unlock(&n->mu);
        return pgsched__fail(err, PGSCHED_ERR_STATE,
                             "pgsched_shutdown cannot be called from a handler or callback of the "
                             "same node");
    }
    pthread_mutex_unlock(&n->mu);
    /* A start in progress finishes first: it must not bring up threads after this. */
    pgsched__rlock_lock(&n->start_mu);
    pthread_mutex_lock(&n->mu);
    was = n->state;
    if (was >= PGSCHED__STOPPING) {
        /* idempotent; a call that overlaps another returns when that one is done, so that
           a destroy after it never frees a node still shutting down */
        pgsched__rlock_unlock(&n->start_mu);
        while (!n->shutdown_done) pthread_cond_wait(&n->done_cv, &n->mu);
        r = pgsched__shutdown_result(n, err, msg, sizeof msg);
        pthread_mutex_unlock(&n->mu);
        return r;
    }
    n->state = PGSCHED__STOPPING;
    n->stop_ask_at = pgsched__mono(n) + n->cfg.drain_timeout;
    n->shutdown_deadline = n->stop_ask_at + n->cfg.shutdown_timeout;
    if (!n->cfg.drain_timeout) pgsched__ask_stop(n);
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pgsched__rlock_unlock(&n->start_mu);

    /* The *_started flags stay set until destroy: a handler still running may call
       pgsched_shutdown and must be recognised as a node thread. The dispatcher ends when
       every run is done, or goes on past the timeout for the runs still going (lingering):
       then destroy joins it. */
    pthread_mutex_lock(&n->mu);
    while (n->dispatcher_started && !n->dispatcher_done && !n->lingering)
        pthread_cond_wait(&n->done_cv, &n->mu);
    lingering = n->dispatcher_started && !n->dispatcher_done;
    n->detached = lingering;
    pthread_mutex_unlock(&n->mu);
    if (n->dispatcher_started && !lingering) {
        pthread_join(n->dispatcher, NULL);
        pthread_mutex_lock(&n->mu);
        n->dispatcher_joined = 1;
        pthread_mutex_unlock(&n->mu);
    }
    pthread_mutex_lock(&n->mu);
    n->state = PGSCHED__STOPPED;
    for (i = 0; i < n->nslots; i++) pthread_cond_broadcast(&n->slots[i].cv);
    pthread_cond_broadcast(&n->listen_cv);
    pthread_mutex_unlock(&n->mu);
    if (n->listener_started) {
        pgsched_store_listen_wake(n->store, n->listen);
        pthread_join(n->listener, NULL);
        pthread_mutex_lock(&n->mu);
        n->listener_started = 0;
        pthread_mutex_unlock(&n->mu);
    }
    if (n->listen) {
        pgsched_store_listen_close(n->store, n->listen);
        n->listen = NULL;
    }
    if (n->callbacker_started) {
        pthread_mutex_lock(&n->cb_mu);
        n->cb_stop = 1;
        pthread_cond_signal(&n->cb_cv);
        pthread_mutex_unlock(&n->cb_mu);
        pthread_join(n->callbacker, NULL);
        pthread_mutex_lock(&n->mu);
        n->callbacker_started = 0;
        pthread_mutex_unlock(&n->mu);
    }
    /* A lingering dispatcher unregisters the node itself when its last run returns. */
    if (was == PGSCHED__STARTED && !lingering) {
        pgsched_error e;
        if (pgsched_store_node_unregister(n->store, n->id, &e) != PGSCHED_OK)
            pgsched__store_trouble(n, "unregistering the node", &e);
        pgsched__log(n, PGSCHED_LOG_INFO, "node stopped");
    }
#ifndef PGSCHED_NO_LIBPQ
    /* The connections of a store the node made itself close now (calls after shutdown are
       refused; one already under way reconnects); destroy frees the rest. */
    if (n->owns_store && !lingering) pgsched__pg_close_idle(n->store);
#endif
    pthread_mutex_lock(&n->mu);
    n->shutdown_done = 1;
    pthread_cond_broadcast(&n->done_cv);
    r = pgsched__shutdown_result(n, err, msg, sizeof msg);
    pthread_mutex_unlock(&n->mu);
    if (msg[0]) pgsched__log(n, PGSCHED_LOG_WARN, "%s", msg);
    return r;
}

PGSCHED_DEF void pgsched_destroy(pgsched_node *n)
{
    size_t i;
    int k, own;
    if (!n) return;
    pthread_mutex_lock(&n->mu);
    own = pgsched__is_node_thread(n);
    pthread_mutex_unlock(&n->mu);
    if (own) {
        /* freeing the node from one of its own threads would pull the floor from under it */
        pgsched__log(n, PGSCHED_LOG_ERROR,
                     "pgsched_destroy called from a handler or callback of the same node: "
                     "ignored");
        return;
    }
    pgsched_shutdown(n, NULL);
    /* Handlers still running after the shutdown timeout are waited for here (their memory
       lives in the node); the dispatcher renews their leases until they return and records
       their outcomes. */
    if (n->dispatcher_started && !n->dispatcher_joined) {
        pthread_join(n->dispatcher, NULL);
        pthread_mutex_lock(&n->mu);
        n->dispatcher_joined = 1;
        pthread_mutex_unlock(&n->mu);
    }
    for (k = 0; k < n->nslots; k++) {
        if (n->slots[k].thread_started) pthread_join(n->slots[k].thread, NULL);
        pgsched__held_clear(n, &n->slots[k].job);
        pgsched__free(&n->alloc, n->slots[k].error);
        pthread_cond_destroy(&n->slots[k].cv);
    }
    for (i = 0; i < n->npending; i++) pgsched__pending_free(n, &n->pending[i]);
    pgsched__free(&n->alloc, n->pending_spare);
    pgsched__free(&n->alloc, n->pending);
    for (k = 0; k < n->nqueued; k++) pgsched__held_clear(n, &PGSCHED__QUEUED(n, k)->one);
    pgsched__free(&n->alloc, n->queue);
    if (n->owns_store) pgsched_store_destroy(n->store);
    while (n->types) {
        pgsched__type *t = n->types;
        n->types = t->next;
        pgsched__free(&n->alloc, t->name);
        pgsched__free(&n->alloc, t);
    }
    for (i = 0; i < n->ncrons; i++) {
        pgsched__free(&n->alloc, n->crons[i].text);
        pgsched_cron_free(n->crons[i].cron);
    }
    pgsched__free(&n->alloc, n->own);
    pgsched__free(&n->alloc, n->own_wait.q);
    pgsched__free(&n->alloc, n->own_keep.q);
    pgsched__free(&n->alloc, n->crons);
    pgsched__free(&n->alloc, n->cbq);
    pgsched__free(&n->alloc, n->run_names);
    pgsched__free(&n->alloc, n->all_names);
    pgsched__free(&n->alloc, n->slots);
    pgsched__free(&n->alloc, n->conninfo);
    pgsched__free(&n->alloc, n->schema);
    pgsched__free(&n->alloc, n->prefix);
    pgsched__free(&n->alloc, n->default_zone);
    pthread_mutex_destroy(&n->mu);
    pgsched__rlock_destroy(&n->start_mu);
    pthread_cond_destroy(&n->cv);
    pthread_cond_destroy(&n->done_cv);
    pthread_cond_destroy(&n->listen_cv);
    pthread_cond_destroy(&n->writer_cv);
    pthread_mutex_destroy(&n->cron_mu);
    pthread_mutex_destroy(&n->cb_mu);
    pthread_cond_destroy(&n->cb_cv);
    pthread_cond_destroy(&n->cb_room);
    {
        pgsched_allocator a = n->alloc;
        pgsched__free(&a, n);
    }
}

/* ---- the run context ---- */

PGSCHED_DEF int pgsched_run_cancelled(const pgsched_run *run)
{
    const pgsched__slot *s = (const pgsched__slot *)(const void *)run;
    if (!run) return 0;
    return PGSCHED__LOAD(&s->cancel) != PGSCHED__CANCEL_NONE;
}

PGSCHED_DEF pgsched_cancel_reason pgsched_run_cancel_reason(const pgsched_run *run)
{
    const pgsched__slot *s = (const pgsched__slot *)(const void *)run;
    if (!run) return PGSCHED_CANCEL_REASON_NONE;
    return (pgsched_cancel_reason)PGSCHED__LOAD(&s->cancel);
}

/* Whether a run was handed to a worker that has not started it yet. Caller holds mu. */
static int pgsched__slots_handed_over(const pgsched_node *n)
{
    int i;
    for (i = 0; i < n->nslots; i++)
        if (n->slots[i].state == PGSCHED__SLOT_READY) return 1;
    return 0;
}

PGSCHED_DEF void pgsched_clock_moved(pgsched_node *node)
{
    pgsched_node *n = node;
    int64_t gen;
    int i;
    if (!n) return;
    pthread_mutex_lock(&n->mu);
    gen = ++n->clock_gen;
    pthread_cond_broadcast(&n->cv);
    pthread_cond_broadcast(&n->listen_cv);
    pthread_cond_broadcast(&n->writer_cv);
    for (i = 0; i < n->nslots; i++) pthread_cond_broadcast(&n->slots[i].cv);
    /* the node's own threads do not wait: the dispatcher may be the caller, or be waiting
       for it (a log line, a store call) */
    if (!pgsched__is_node_thread(n))
        while (n->dispatcher_started && !n->dispatcher_done &&
               (n->clock_seen - gen < 0 || pgsched__slots_handed_over(n)))
            pthread_cond_wait(&n->done_cv, &n->mu);
    pthread_mutex_unlock(&n->mu);
    pthread_mutex_lock(&n->cb_mu);
    pthread_cond_broadcast(&n->cb_cv);
    pthread_mutex_unlock(&n->cb_mu);
}

PGSCHED_DEF int pgsched_run_sleep(pgsched_run *run, pgsched_duration d)
{
    pgsched__slot *s = (pgsched__slot *)(void *)run;
    pgsched_node *n;
    pgsched_time deadline;
    int cancelled;
    if (!run) return 0;
    n = s->node;
    deadline = pgsched__node_deadline(n, d < 0 ? 0 : d);
    pthread_mutex_lock(&n->mu);
    while (s->cancel == PGSCHED__CANCEL_NONE && pgsched__mono(n) < deadline)
        pgsched__wait_until(n, &s->cv, &n->mu, deadline);
    cancelled = s->cancel != PGSCHED__CANCEL_NONE;
    pthread_mutex_unlock(&n->mu);
    return cancelled;
}

PGSCHED_DEF void pgsched_run_set_error(pgsched_run *run, const char *fmt, ...)
{
    pgsched__slot *s = (pgsched__slot *)(void *)run;
    pgsched_node *n;
    char *buf, *clean;
    va_list ap;
    if (!run || !fmt) return;
    n = s->node;
    buf = (char *)pgsched__malloc(&n->alloc, PGSCHED_ERROR_TEXT_MAX + 1);
    if (!buf) return;
    va_start(ap, fmt);
    vsnprintf(buf, PGSCHED_ERROR_TEXT_MAX + 1, fmt, ap);
    va_end(ap);
    clean = pgsched__clean_error(&n->alloc, buf);
    pgsched__free(&n->alloc, buf);
    pthread_mutex_lock(&n->mu);
    pgsched__free(&n->alloc, s->error);
    s->error = clean;
    pthread_mutex_unlock(&n->mu);
}


#ifdef __cplusplus
}
#endif

#endif /* PGSCHED_IMPLEMENTATION_DONE */
#endif /* PGSCHED_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
MIT License

Copyright (c) 2026 the pgsched authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
