/* pgsched-cron - prints the next run times of a cron expression, using pgsched's cron engine.

     pgsched-cron [-n N] [--from TIME] [--local] [--tzdir DIR] 'EXPR'

   Needs no database: it uses only the cron section of pgsched.h. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

static const char usage[] =
    "usage: pgsched-cron [-n N] [--from TIME] [--local] [--tzdir DIR] 'EXPR'\n"
    "\n"
    "Prints the next N run times of the cron expression EXPR strictly after TIME, one per\n"
    "line, as RFC 3339 UTC times (2026-03-08T07:00:00Z).\n"
    "\n"
    "  -n N          how many run times to print (default 5, at most 1000000)\n"
    "  --from TIME   start after this RFC 3339 time (default: now), e.g. 2026-03-08T00:00:00Z\n"
    "                or 2026-03-08T00:00:00-05:00\n"
    "  --local       print times on the expression's zone clock with their UTC offset\n"
    "                (2026-03-08T03:00:00-04:00); a UTC expression prints +00:00\n"
    "                (a run whose local date would pass 9999-12-31 is printed in UTC)\n"
    "  --tzdir DIR   read zone files from DIR (default: $TZDIR, else /usr/share/zoneinfo)\n"
    "  -h, --help    print this help and exit 0\n"
    "\n"
    "EXPR is [CRON_TZ=Zone ][sec ]min hour day-of-month month day-of-week, or a macro\n"
    "(@yearly @annually @monthly @weekly @daily @midnight @hourly, @every <duration>).\n"
    "Quote it, so that the shell leaves * alone.\n"
    "\n"
    "Exit status: 0 when the run times were printed. When the schedule has fewer than N runs\n"
    "left before year 10000, the ones there are are printed, a note goes to stderr, and the\n"
    "status is still 0. 2 for an invalid expression (the parser's message goes to stderr) and\n"
    "for bad usage: an unknown option, a bad -n or --from, a missing or extra argument.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fputs("pgsched-cron: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(see pgsched-cron --help)\n", stderr);
    return 2;
}

/* The value of an option given as "--opt VALUE" or "--opt=VALUE"; NULL when it is not this
   option. */
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
    const char *expr = NULL, *from_text = NULL, *count_text = NULL;
    int local = 0, i, args = 0, only_args = 0;
    long count = 5, k;
    pgsched_cron_options opts;
    pgsched_cron *cron;
    pgsched_error err;
    pgsched_time t;
    memset(&opts, 0, sizeof opts);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing;
        if (only_args || a[0] != '-' || a[1] == '\0') {
            /* "-" alone is not an option; neither is anything after "--". */
            expr = a;
            args++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--local") == 0) {
            local = 1;
        } else if (strncmp(a, "-n", 2) == 0 && a[2] != '\0') {
            count_text = a + 2;
        } else if (strcmp(a, "-n") == 0) {
            if (i + 1 >= argc) return usage_error("%s needs a number", a);
            count_text = argv[++i];
        } else if ((v = option_value("--from", argc, argv, &i, &missing)) != NULL || missing) {
            if (missing) return usage_error("%s needs a time, e.g. 2026-03-08T00:00:00Z", a);
            from_text = v;
        } else if ((v = option_value("--tzdir", argc, argv, &i, &missing)) != NULL || missing) {
            if (missing) return usage_error("%s needs a directory", a);
            opts.tzdir = v;
        } else if (a[1] >= '0' && a[1] <= '9' && args == 0 && !expr) {
            /* A field can't start with '-', but say so rather than "unknown option". */
            return usage_error("unknown option %s (a cron field cannot start with \"-\")", a);
        } else {
            return usage_error("unknown option %s", a);
        }
    }
    if (args == 0) return usage_error("%s", "missing the cron expression");
    if (args > 1) {
        fprintf(stderr,
                "pgsched-cron: expected one cron expression, got %d arguments; quote it, as in "
                "pgsched-cron '0 9 * * 1-5'\n(see pgsched-cron --help)\n",
                args);
        return 2;
    }
    if (count_text) {
        char *end;
        errno = 0;
        count = strtol(count_text, &end, 10);
        if (end == count_text || *end || errno || count < 1 || count > 1000000)
            return usage_error("-n needs a whole number from 1 to 1000000, got \"%s\"", count_text);
    }
    if (from_text) {
        if (pgsched_time_parse(from_text, &t, &err) != PGSCHED_OK)
            return usage_error("--from: %s", err.message);
    } else {
        t = pgsched_now();
    }
    if (pgsched_cron_parse(expr, &opts, &cron, &err) != PGSCHED_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    for (k = 0; k < count; k++) {
        char buf[PGSCHED_TIME_STRING_MAX];
        pgsched_result r = pgsched_cron_next(cron, t, &t);
        if (r != PGSCHED_OK) {
            fprintf(stderr,
                    "pgsched-cron: the schedule has no further run before year 10000 (%ld "
                    "of %ld printed)\n",
                    k, count);
            break;
        }
        /* A local time past 9999-12-31 cannot be written in RFC 3339: fall back to UTC. */
        if (!local || !pgsched_time_format(t, pgsched_cron_utc_offset(cron, t), 0, buf, sizeof buf))
            pgsched_time_format(t, 0, 1, buf, sizeof buf);
        puts(buf);
    }
    pgsched_cron_free(cron);
    if (fflush(stdout) != 0) return 1;
    return 0;
}
