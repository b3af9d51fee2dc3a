/* libFuzzer harness for password redaction (pgsched_conninfo_redact) and for scrubbing
   passwords out of libpq's messages.

     make build/fuzz/fuzz_conninfo     (clang -fsanitize=fuzzer,address,undefined)
     build/fuzz/fuzz_conninfo -max_total_time=60 -dict=tests/fuzz/fuzz_conninfo.dict \
         tests/fuzz/corpus_conninfo

   The input is a connection string, optionally followed by a NUL and a message to scrub.
   Besides crashes and sanitizer reports it checks that redaction reports the full length
   whatever the buffer, that a cut result is a prefix of the full one, and that a password
   libpq itself reads from the string (written there as it is, right after its '=', ':' or
   quote, 4 bytes or more) occurs fewer times in the redacted text than in the input: the
   place where it stood is hidden. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

static void check(int ok, const char *what, const char *conninfo, const char *out)
{
    if (ok) return;
    fprintf(stderr, "contract broken: %s\n  conninfo: [%s]\n  redacted: [%s]\n", what, conninfo,
            out ? out : "");
    abort();
}

static size_t occurrences(const char *hay, const char *needle)
{
    size_t n = 0;
    const char *p = hay;
    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in, *msg, *out, small[24];
    size_t n = 0, full, cut;
    char *errmsg = NULL;
    PQconninfoOption *opts, *o;
    if (size > 2048) return 0;
    while (n < size && data[n]) n++;
    in = (char *)malloc(n + 1);
    memcpy(in, data, n);
    in[n] = '\0';

    full = pgsched_conninfo_redact(in, NULL, 0);
    out = (char *)malloc(full + 1);
    check(pgsched_conninfo_redact(in, out, full + 1) == full, "the same length twice", in, NULL);
    check(strlen(out) == full, "the reported length is the text's", in, out);
    {
        /* a buffer much larger than the result, as a log line's */
        static char big[8192];
        check(pgsched_conninfo_redact(in, big, sizeof big) == full && strcmp(big, out) == 0,
              "a large buffer gets the same text", in, out);
    }
    for (cut = 1; cut <= sizeof small; cut += 7) {
        size_t got = pgsched_conninfo_redact(in, small, cut);
        check(got == full, "a cut result reports the full length", in, out);
        check(strlen(small) == (full < cut ? full : cut - 1) &&
                  strncmp(small, out, strlen(small)) == 0,
              "a cut result is a terminated prefix of the full one", in, out);
    }

    opts = PQconninfoParse(in, &errmsg);
    for (o = opts; o && o->keyword; o++) {
        size_t before;
        if (strcmp(o->keyword, "password") != 0 && strcmp(o->keyword, "sslpassword") != 0) continue;
        if (!o->val || strlen(o->val) < 4 || strchr(o->val, '*')) continue;
        {
            /* only a value written as it is, right after its '=', ':' or quote (one written
               encoded may still occur elsewhere: "sslpassword=sslpass%77or" holds
               "sslpasswor" in its keyword, which is no password) */
            size_t vl = strlen(o->val);
            char *pat = (char *)malloc(vl + 2);
            int raw = 0;
            const char *lead;
            for (lead = "=:'"; *lead && !raw; lead++) {
                pat[0] = *lead;
                memcpy(pat + 1, o->val, vl + 1);
                raw = strstr(in, pat) != NULL;
            }
            free(pat);
            if (!raw) continue;
        }
        before = occurrences(in, o->val);
        check(occurrences(out, o->val) < before, "libpq's password is hidden where it stood", in,
              out);
    }
    PQconninfoFree(opts);

    /* scrubbing: libpq's own complaint about the string, then the message of the input */
    if (errmsg) {
        char m[600];
        snprintf(m, sizeof m, "%s", errmsg);
        pgsched__conninfo_scrub(in, m, sizeof m);
        check(strlen(m) < sizeof m, "a scrubbed message stays terminated", in, m);
        PQfreemem(errmsg);
    }
    if (n < size) {
        size_t mlen = size - n - 1, cap = mlen + 1 < 64 ? 64 : mlen + 1;
        msg = (char *)malloc(cap);
        memcpy(msg, data + n + 1, mlen);
        msg[mlen] = '\0';
        pgsched__conninfo_scrub(in, msg, cap);
        check(strlen(msg) < cap, "a scrubbed message stays terminated", in, msg);
        msg[7] = '\0'; /* a message in a small buffer */
        pgsched__conninfo_scrub(in, msg, 8);
        check(strlen(msg) < 8, "a scrubbed message fits its buffer", in, msg);
        free(msg);
    }
    free(out);
    free(in);
    return 0;
}
