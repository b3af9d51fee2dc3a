/* pgsched.h - v0.1.0 - distributed job scheduler for C on PostgreSQL - MIT licensed (see end)

   USAGE
     In exactly one C or C++ file:
         #define PGSCHED_IMPLEMENTATION
         #include "pgsched.h"
     Everywhere else just #include "pgsched.h". Link with -lpq -lpthread (or define
     PGSCHED_NO_LIBPQ and link with -lpthread only).

   COMPILE-TIME OPTIONS (define before including the header)
     PGSCHED_IMPLEMENTATION   compile the implementation into this translation unit.
     PGSCHED_STATIC           make every function static (private to one translation unit).
     PGSCHED_NO_LIBPQ         leave out the PostgreSQL store; only libc and pthreads are needed.
     PGSCHED_MALLOC(sz)       \
     PGSCHED_REALLOC(p,sz)     > the default allocator; define all three or none.
     PGSCHED_FREE(p)          /
     PGSCHED_ASSERT(x)        assertion macro used by the implementation (default: assert()).

   CONTENTS (search for the banner text)
     [pgsched: basics]         version, results, errors, times, allocator
     [pgsched: cron]           the cron parser and the other schedule calculators
     [pgsched: jobs]           job rows, lists, run history, events
     [pgsched: store vtable]   the storage interface and its validating wrappers
     [pgsched: stores]         the in-memory store and the PostgreSQL store
     [pgsched: engine]         nodes, job types, the run context
     Implementation sections follow in the same order, then the license.

   REVISION HISTORY
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

#define PGSCHED_VERSION_MAJOR 0
#define PGSCHED_VERSION_MINOR 1
#define PGSCHED_VERSION_PATCH 0
#define PGSCHED_VERSION_STRING "0.1.0"

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
    PGSCHED_ERR_TOO_LARGE = -29         /* a text exceeds its size limit */
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

/* A runtime allocator. Any field left NULL takes the compile-time default (PGSCHED_MALLOC...). */
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

/* Schedule kinds. Recurring = CRON, INTERVAL, CUSTOM. */
typedef enum pgsched_schedule_kind {
    PGSCHED_ONCE = 1,     /* one run, at `at` (0 = now) */
    PGSCHED_CRON = 2,     /* a cron expression; "@every <d>" is stored as an INTERVAL */
    PGSCHED_INTERVAL = 3, /* every `every`, measured from the end of the previous run */
    PGSCHED_CUSTOM = 4    /* the job type's next-run callback computes every run */
} pgsched_schedule_kind;

typedef struct pgsched_schedule {
    pgsched_schedule_kind kind;
    const char *cron;       /* CRON: the expression (may start with CRON_TZ=Zone) */
    pgsched_duration every; /* INTERVAL: the period, positive */
    pgsched_time at;        /* ONCE: when (0 = now). Recurring: the first run (0 = computed) */
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
PGSCHED_DEF pgsched_result pgsched_schedule_next(const pgsched_schedule *s,
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
    PGSCHED_PENDING = 1,
    PGSCHED_RUNNING = 2,
    PGSCHED_COMPLETED = 3,
    PGSCHED_FAILED = 4,
    PGSCHED_CANCELLED = 5
} pgsched_status;

/* "pending", "running", ...; "none" for PGSCHED_STATUS_NONE. */
PGSCHED_DEF const char *pgsched_status_string(pgsched_status s);

/* One job instance as a store holds it. Strings are owned by the list holding the row. */
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
typedef enum pgsched_outcome_kind {
    PGSCHED_OUTCOME_SUCCESS = 1,
    PGSCHED_OUTCOME_FAILURE = 2,   /* handler failed or timed out */
    PGSCHED_OUTCOME_CANCELLED = 3, /* stopped on a cancel request */
    PGSCHED_OUTCOME_STALLED = 4,   /* its node stopped renewing the lease; taken back */
    PGSCHED_OUTCOME_RELEASED = 5   /* given back at shutdown; the attempt is not counted */
} pgsched_outcome_kind;

PGSCHED_DEF const char *pgsched_outcome_string(pgsched_outcome_kind k);

/* One row of run history: a finished attempt. */
typedef struct pgsched_run_record {
    const char *name;
    const char *key;
    const char *node;
    int attempt;
    pgsched_time started_at;
    pgsched_time finished_at;
    pgsched_outcome_kind outcome;
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

/* A notification from a store (fixed-size so that waiting allocates nothing). */
typedef enum pgsched_event_kind {
    PGSCHED_EVENT_CHANGE = 1,     /* a row changed: status, due time, or it was removed */
    PGSCHED_EVENT_CANCEL = 2,     /* a cancel was requested for a running row of `owner` */
    PGSCHED_EVENT_RESYNC = 3      /* events may have been missed (reconnect, overflow): poll */
} pgsched_event_kind;

typedef struct pgsched_event {
    pgsched_event_kind kind;
    pgsched_status old_status;   /* CHANGE: before (NONE = created) */
    pgsched_status new_status;   /* CHANGE: after (NONE = removed) */
    pgsched_time next_run;       /* CHANGE to PENDING: the due time */
    int64_t version;             /* the row's version after the change */
    char name[PGSCHED_NAME_MAX + 1];
    char key[PGSCHED_KEY_MAX + 1];
    char node[PGSCHED_NODE_ID_MAX + 1];  /* the node that made the change ("" = unknown) */
    char owner[PGSCHED_NODE_ID_MAX + 1]; /* CANCEL: the node running the row */
} pgsched_event;

/* ============================================================================================
   [pgsched: store vtable]
   ============================================================================================
   The engine reaches storage only through this table, in the manner of SQLite's VFS. A store
   is a struct whose first member is `const pgsched_store_methods *methods`. Every method is
   thread-safe, takes the store first, returns a pgsched_result and writes outputs through
   pointers. Methods receive input already checked by the pgsched_store_* wrappers below, so a
   store need not validate names, keys, JSON or pointers. Every time comparison uses the
   store's own clock. To grow the table, append members and raise PGSCHED_STORE_VERSION; the
   engine checks `version` before calling a newer member. */

#define PGSCHED_STORE_VERSION 1

typedef struct pgsched_store pgsched_store;
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
    pgsched_time next_run;   /* the first run, store clock; 0 = the store's now */
    int apply_after_run;     /* a running row: store the change for when its run ends */
    const char *node_id;     /* who makes the change (events); may be NULL */
} pgsched_schedule_request;

typedef struct pgsched_schedule_outcome {
    int created;                /* a new row was inserted */
    int deferred;               /* the row is running; the change applies when the run ends */
    pgsched_status old_status;  /* NONE when created */
    pgsched_time next_run;      /* the row's due time now (earlier of stored and new) */
    int64_t version;
} pgsched_schedule_outcome;

typedef struct pgsched_claim_request {
    const char *node_id;
    const char *const *names;  /* the job types the node runs */
    size_t name_count;
    int max;                   /* at most this many rows */
} pgsched_claim_request;

typedef struct pgsched_claim_outcome {
    pgsched_time now;      /* the store's clock at the claim */
    pgsched_time next_due; /* earliest due time among the types' pending rows left; 0 = none */
} pgsched_claim_outcome;

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
} pgsched_lease_state;

/* How a row continues after an attempt, decided by the engine (the store computes nothing). */
typedef enum pgsched_attempt_rule {
    PGSCHED_ATTEMPT_RESET = 0,   /* a fresh retry budget: attempt = 0 */
    PGSCHED_ATTEMPT_KEEP = 1,    /* a retry: the attempt stays counted */
    PGSCHED_ATTEMPT_UNCOUNT = 2  /* released: the attempt does not count */
} pgsched_attempt_rule;

typedef struct pgsched_outcome {
    const char *name;
    const char *key;
    int64_t token;               /* the lease token: the write happens only if it still holds */
    pgsched_outcome_kind outcome;
    pgsched_status status;       /* the row's next status: PENDING/COMPLETED/FAILED/CANCELLED */
    pgsched_time next_run;       /* PENDING: due time (store clock); 0 = now + retry_delay */
    pgsched_duration retry_delay;
    pgsched_attempt_rule attempt_rule;
    const char *error;           /* error text for FAILURE/STALLED (NULL = none) */
    const char *node_id;         /* the node writing the outcome */
} pgsched_outcome;

typedef struct pgsched_finish_result {
    pgsched_result code;        /* PGSCHED_OK or PGSCHED_ERR_LEASE_LOST */
    pgsched_status new_status;  /* what the row became (NONE: removed, as requested) */
    pgsched_time next_run;      /* PENDING: its due time */
    int64_t version;
} pgsched_finish_result;

typedef enum pgsched_cancel_effect {
    PGSCHED_CANCEL_NONE = 0,      /* nothing to cancel: pending recurring, or finished */
    PGSCHED_CANCEL_REQUESTED = 1, /* running: its node is asked to stop the run */
    PGSCHED_CANCEL_DONE = 2       /* pending one-time: now cancelled without running */
} pgsched_cancel_effect;

typedef enum pgsched_remove_effect {
    PGSCHED_REMOVE_DONE = 1,     /* the row is deleted */
    PGSCHED_REMOVE_DEFERRED = 2  /* running: cancel requested, deleted when its run ends */
} pgsched_remove_effect;

typedef struct pgsched_change_outcome {
    int effect;                 /* a pgsched_cancel_effect or pgsched_remove_effect */
    pgsched_status old_status;
    pgsched_status new_status;  /* NONE when removed */
    pgsched_time next_run;      /* trigger: the new due time */
    int64_t version;
    char owner[PGSCHED_NODE_ID_MAX + 1]; /* running rows: the node running it */
} pgsched_change_outcome;

typedef struct pgsched_list_filter {
    const char *name;       /* only this job type (NULL = all) */
    pgsched_status status;  /* only this status (NONE = all) */
    const char *after_name; /* paging: rows after (after_name, after_key) in (name, key) order */
    const char *after_key;
    size_t limit;           /* 0 = 1000 */
} pgsched_list_filter;

typedef struct pgsched_node_record {
    const char *id;
    const char *host;
    int64_t pid;
    const char *const *names;   /* job types the node has registered */
    size_t name_count;
} pgsched_node_record;

/* What maintenance to do; a duration of PGSCHED_NEVER skips that part. */
typedef struct pgsched_cleanup_request {
    const char *node_id;
    pgsched_duration finished_retention; /* delete finished one-time rows older than this */
    pgsched_duration history_retention;  /* delete run history (and dead node rows) older */
    pgsched_duration orphan_timeout;     /* delete idle rows no live node registers */
    pgsched_duration stall_timeout;      /* a node is live when seen within this */
    size_t limit;                        /* at most this many rows per part (0 = 10000) */
} pgsched_cleanup_request;

typedef struct pgsched_cleanup_outcome {
    size_t finished_deleted;
    size_t history_deleted;
    size_t orphans_deleted;
    size_t nodes_deleted;
} pgsched_cleanup_outcome;

typedef struct pgsched_listener pgsched_listener; /* a store's subscription to its events */

struct pgsched_store_methods {
    int version; /* PGSCHED_STORE_VERSION the table was written for */
    const char *name;

    /* Create or upgrade the schema (or check it when the store was told not to create). */
    pgsched_result (*setup)(pgsched_store *s, pgsched_error *err);
    void (*destroy)(pgsched_store *s);
    pgsched_result (*now)(pgsched_store *s, pgsched_time *now, pgsched_error *err);

    /* Insert or update. A running row: PGSCHED_ERR_RUNNING unless apply_after_run. Otherwise
       the row becomes pending with the new schedule, params and budget (attempt 0), and its
       due time is the earlier of the stored one (when it was pending) and the new one. */
    pgsched_result (*schedule)(pgsched_store *s, const pgsched_schedule_request *req,
                               void *external_conn, pgsched_schedule_outcome *out,
                               pgsched_error *err);

    /* Moves up to req->max due pending rows of the given types to running for the node, in
       due order, each with a fresh lease token and attempt + 1. Appends them to `out`. */
    pgsched_result (*claim)(pgsched_store *s, const pgsched_claim_request *req,
                            pgsched_job_list *out, pgsched_claim_outcome *info,
                            pgsched_error *err);

    /* Renews (when `renew`) the node's leases in one operation and reports, per lease, whether
       it is lost and whether a cancel was requested. Also marks the node as seen. */
    pgsched_result (*heartbeat)(pgsched_store *s, const char *node_id,
                                const pgsched_lease *leases, size_t count, int renew,
                                pgsched_lease_state *states, pgsched_time *now,
                                pgsched_error *err);

    /* Records outcomes, each conditional on its lease token; writes history rows; applies a
       pending re-schedule or a pending removal. results[i] says what happened to outcome i. */
    pgsched_result (*finish)(pgsched_store *s, const pgsched_outcome *outcomes, size_t count,
                             pgsched_finish_result *results, pgsched_error *err);

    /* Moves up to `max` running rows whose lease was not renewed within stall_timeout to the
       node with fresh tokens (still running, attempt unchanged) and appends them to `out`; the
       engine then records each as a STALLED outcome. */
    pgsched_result (*take_back)(pgsched_store *s, const char *node_id,
                                pgsched_duration stall_timeout, int max, pgsched_job_list *out,
                                pgsched_error *err);

    pgsched_result (*cancel)(pgsched_store *s, const char *name, const char *key,
                             const char *node_id, pgsched_change_outcome *out,
                             pgsched_error *err);
    pgsched_result (*trigger)(pgsched_store *s, const char *name, const char *key,
                              const char *node_id, pgsched_change_outcome *out,
                              pgsched_error *err);
    pgsched_result (*remove)(pgsched_store *s, const char *name, const char *key,
                             const char *node_id, pgsched_change_outcome *out,
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

    pgsched_result (*node_register)(pgsched_store *s, const pgsched_node_record *node,
                                    pgsched_error *err);
    pgsched_result (*node_unregister)(pgsched_store *s, const char *node_id, pgsched_error *err);

    pgsched_result (*cleanup)(pgsched_store *s, const pgsched_cleanup_request *req,
                              pgsched_cleanup_outcome *out, pgsched_error *err);

    /* Events: every change made through any node sharing the store reaches every listener. */
    pgsched_result (*listen_open)(pgsched_store *s, pgsched_listener **out, pgsched_error *err);
    /* Waits up to `timeout` for events; writes at most `cap`, sets *count (0 on timeout). */
    pgsched_result (*listen_wait)(pgsched_store *s, pgsched_listener *l,
                                  pgsched_duration timeout, pgsched_event *events, size_t cap,
                                  size_t *count, pgsched_error *err);
    /* Makes a listen_wait in progress return at once (from any thread). */
    void (*listen_wake)(pgsched_store *s, pgsched_listener *l);
    void (*listen_close)(pgsched_store *s, pgsched_listener *l);
};

/* The wrappers: check every argument (names, keys, UTF-8, JSON, pointers, ids), give the
   same errors whatever the store, then call the method. Use these, not the table. */
PGSCHED_DEF pgsched_result pgsched_store_setup(pgsched_store *s, pgsched_error *err);
PGSCHED_DEF void pgsched_store_destroy(pgsched_store *s);
PGSCHED_DEF pgsched_result pgsched_store_now(pgsched_store *s, pgsched_time *now,
                                             pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_schedule(pgsched_store *s,
                                                  const pgsched_schedule_request *req,
                                                  pgsched_schedule_outcome *out,
                                                  pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_claim(pgsched_store *s, const pgsched_claim_request *req,
                                               pgsched_job_list *out,
                                               pgsched_claim_outcome *info, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_heartbeat(pgsched_store *s, const char *node_id,
                                                   const pgsched_lease *leases, size_t count,
                                                   int renew, pgsched_lease_state *states,
                                                   pgsched_time *now, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_finish(pgsched_store *s, const pgsched_outcome *outcomes,
                                                size_t count, pgsched_finish_result *results,
                                                pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_take_back(pgsched_store *s, const char *node_id,
                                                   pgsched_duration stall_timeout, int max,
                                                   pgsched_job_list *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_cancel(pgsched_store *s, const char *name,
                                                const char *key, const char *node_id,
                                                pgsched_change_outcome *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_trigger(pgsched_store *s, const char *name,
                                                 const char *key, const char *node_id,
                                                 pgsched_change_outcome *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_store_remove(pgsched_store *s, const char *name,
                                                const char *key, const char *node_id,
                                                pgsched_change_outcome *out, pgsched_error *err);
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
                                                 pgsched_cleanup_outcome *out,
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

/* ============================================================================================
   [pgsched: stores]
   ============================================================================================ */

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
typedef struct pgsched_pg_config {
    const char *conninfo;        /* libpq connection string or URI (required) */
    const char *schema;          /* NULL = "public" */
    const char *prefix;          /* table name prefix; NULL = "pgsched_" */
    int no_create_schema;        /* nonzero: never create or migrate, only check the version */
    int no_notifications;        /* nonzero: send no NOTIFY */
    int pool_size;               /* connections for statements; 0 = 2 */
    pgsched_duration reconnect_min; /* backoff after a lost connection; 0 = 100 ms */
    pgsched_duration reconnect_max; /* 0 = 10 s */
    const pgsched_allocator *allocator; /* NULL = default */
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
    pgsched_next_fn next_run;   /* calculator of PGSCHED_CUSTOM schedules */
    void *next_run_user;
} pgsched_job_type;

typedef struct pgsched_job_spec {
    const char *name;           /* a registered job type */
    const char *key;            /* the instance (1..PGSCHED_KEY_MAX bytes) */
    pgsched_schedule schedule;
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
    pgsched_store *store;        /* a store you own; NULL = a PostgreSQL store from conninfo */
    const char *conninfo;        /* used when store is NULL */
    const char *schema;          /* PostgreSQL store: NULL = "public" */
    const char *prefix;          /* PostgreSQL store: NULL = "pgsched_" */
    int no_create_schema;        /* PostgreSQL store: only check the schema version */

    int max_concurrent;          /* workers = runs at once; 0 = 4; at most 1024 */
    pgsched_duration poll_interval;      /* 0 = 1 s */
    pgsched_duration heartbeat_interval; /* 0 = 5 s; must be below stall_timeout */
    pgsched_duration stall_timeout;      /* 0 = 30 s */
    pgsched_duration cancel_check_period;/* 0 = 1 s (the fallback without notifications) */
    pgsched_duration retry_base;         /* first retry delay; 0 = 1 s */
    pgsched_duration retry_cap;          /* 0 = 10 min */
    pgsched_duration shutdown_timeout;   /* 0 = 30 s */
    pgsched_duration finished_retention; /* finished one-time rows; 0 = 7 days; NEVER = keep */
    pgsched_duration history_retention;  /* run history; 0 = 7 days; NEVER = keep */
    pgsched_duration orphan_timeout;     /* 0 = 7 days; NEVER = keep orphans */
    pgsched_duration stall_check_period; /* 0 = 5 s */
    pgsched_duration cleanup_period;     /* retention and orphans; 0 = 1 min */
    int no_notifications;        /* nonzero: poll only */
    int run_immediately;         /* recurring jobs scheduled here run once at once */
    const char *default_zone;    /* zone of cron expressions without CRON_TZ=; NULL = UTC */

    void (*log)(void *user, pgsched_log_level level, const char *message);
    void *log_user;
    pgsched_log_level log_level; /* 0 = WARN */

    /* Called from one callback thread, in order per instance; may call the node's API. */
    void (*on_status)(void *user, const pgsched_status_event *event);
    void *on_status_user;

    const pgsched_allocator *allocator; /* NULL = default */
} pgsched_config;

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
} pgsched_counters;

/* Checks the configuration (no I/O). Invalid fields give PGSCHED_ERR_CONFIG naming the field. */
PGSCHED_DEF pgsched_result pgsched_create(const pgsched_config *cfg, pgsched_node **out,
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
                                               const pgsched_job_spec *spec, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_cancel(pgsched_node *node, const char *name, const char *key,
                                          pgsched_cancel_effect *effect, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_unschedule(pgsched_node *node, const char *name,
                                              const char *key, pgsched_remove_effect *effect,
                                              pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_trigger(pgsched_node *node, const char *name, const char *key,
                                           pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_get(pgsched_node *node, const char *name, const char *key,
                                       pgsched_job_list *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_list(pgsched_node *node, const pgsched_list_filter *filter,
                                        pgsched_job_list *out, pgsched_error *err);
PGSCHED_DEF pgsched_result pgsched_history(pgsched_node *node, const char *name, const char *key,
                                           size_t limit, pgsched_run_list *out,
                                           pgsched_error *err);
PGSCHED_DEF void pgsched_get_counters(pgsched_node *node, pgsched_counters *out);
PGSCHED_DEF const char *pgsched_node_id(const pgsched_node *node);
PGSCHED_DEF pgsched_store *pgsched_node_store(const pgsched_node *node);

/* Stops claiming, asks running handlers to stop, waits up to shutdown_timeout, records the
   outcomes that arrive in time, gives back the leases of the rest, closes. Idempotent; fine
   without start. Must not be called from a handler or a callback of the same node. */
PGSCHED_DEF pgsched_result pgsched_shutdown(pgsched_node *node, pgsched_error *err);
/* Shuts down if needed, then frees the node (and the store it created from conninfo). */
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

/* Nonzero once a cancel was requested (by a call, a timeout, a lost lease or shutdown). */
PGSCHED_DEF int pgsched_run_cancelled(const pgsched_run *run);
/* Sleeps up to `d`; returns early with nonzero when the run is cancelled, else 0. */
PGSCHED_DEF int pgsched_run_sleep(pgsched_run *run, pgsched_duration d);
/* Sets the error text stored with a failed attempt (printf-style; truncated to 4 KiB). */
PGSCHED_DEF void pgsched_run_set_error(pgsched_run *run, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

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

#if !defined(CLOCK_MONOTONIC)
#error "pgsched: POSIX is hidden: define _POSIX_C_SOURCE=200809L before any #include in the file that defines PGSCHED_IMPLEMENTATION"
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

/* A complete allocator: the given one with every missing function defaulted. */
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

/* DEVELOPMENT: the sections below live in src/ while several people write them at once;
   they are inlined into this file before the first release. */
#include "src/impl_cron.h"
#include "src/impl_jobs.h"
#include "src/impl_store.h"
#include "src/impl_memory.h"
#include "src/impl_pg.h"
#include "src/impl_engine.h"

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
