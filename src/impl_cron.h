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

PGSCHED_DEF pgsched_result pgsched_duration_parse(const char *text, pgsched_duration *out,
                                                  pgsched_error *err)
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
        if (!any)
            return pgsched__fail(err, PGSCHED_ERR_DURATION,
                                 "duration \"%.64s\": expected a number at column %d, found "
                                 "\"%.16s\"",
                                 text, (int)(num - text) + 1, *num ? num : "end");
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
            char b[8];
            return pgsched__fail(err, PGSCHED_ERR_DURATION,
                                 "duration \"%.64s\": unexpected \"%s\" at column %d", text,
                                 *p == ' ' ? " " : pgsched__char_desc(*p, b), (int)(p - text) + 1);
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
   allocation owned by the caller. Leap-second records are skipped: pgsched times are POSIX
   times. Also the entry point of tests/fuzz/fuzz_tzif.c. */
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
        if (pgsched_duration_parse(buf, &every, &derr) != PGSCHED_OK)
            return pgsched__fail(x->err, derr.code, "@every: %s (column %d)", derr.message,
                                 PGSCHED__COL(x, d));
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

PGSCHED_DEF pgsched_result pgsched_cron_parse(const char *expr, const pgsched_cron_options *opts,
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

PGSCHED_DEF pgsched_result pgsched_schedule_next(const pgsched_schedule *s,
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
    case PGSCHED_ONCE:
        r = pgsched_once_next(s->at, after, next);
        if (r == PGSCHED_ERR_SCHEDULE)
            return pgsched__fail(err, r,
                                 "a one-time schedule needs a positive time (at = %lld); at = 0 "
                                 "means \"now\", which only the engine can resolve",
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
    case PGSCHED_CRON: {
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
    case PGSCHED_INTERVAL:
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
    case PGSCHED_CUSTOM:
        return pgsched__fail(err, PGSCHED_ERR_SCHEDULE,
                             "a custom schedule is computed by its job type's next-run callback, "
                             "which pgsched_schedule_next does not have");
    }
    return pgsched__fail(err, PGSCHED_ERR_SCHEDULE, "unknown schedule kind %d", (int)s->kind);
}
