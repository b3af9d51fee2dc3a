#!/usr/bin/env python3
"""Brute-force reference implementation of SPEC section 3 (cron expressions), for tests.

It shares no code with pgsched.h and is written to be obviously right rather than fast:
fields become Python sets, a day is tested against the day rule by scanning the month,
and every matching wall-clock second of a matching day is mapped to real instants with
the standard library's zoneinfo (its own TZif reader). The daylight-saving rules of the
spec are then applied literally:

  * hour field exactly "*": every instant whose wall clock matches fires (real time);
  * otherwise each matching wall time fires once: at its first occurrence, or, when the
    zone skips it, at the first instant after the gap (several gap matches collapse into
    that one instant because they map to the same instant).

Usage:
  cron_oracle.py check VECTORS.json     compare with the reference vectors, exit 1 on a miss
  cron_oracle.py next EXPR FROM [N]      print the next N instants (default 5)
  cron_oracle.py generate CASES.in       write a C table of expected values to stdout
  cron_oracle.py zones                   check the synthetic test zones against glibc
  cron_oracle.py random CLI N [SEED]     compare N random cases with a pgsched-cron binary

CASES.in holds one case per line: FROM<TAB>EXPR (blank lines and # comments ignored).
Requires Python 3.9+ (zoneinfo) and the system zone database (or TZDIR).
"""
import calendar
import datetime as dt
import json
import os
import re
import sys
import zoneinfo
from zoneinfo import _zoneinfo as _pyzi

UTC = dt.timezone.utc

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


TEST_ZONES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "zoneinfo")


# CPython's POSIX TZ reader puts the zero-based day rule "n" one day early (its
# _DayOffset.year_to_epoch counts from the day before January 1 for both forms, which is
# right only for the one-based "Jn"). POSIX says day 0 is January 1, and glibc agrees. The
# synthetic zones are read with the pure-Python implementation, patched for that; the
# "zones" command checks the result against glibc hour by hour.
_orig_year_to_epoch = _pyzi._DayOffset.year_to_epoch


def _year_to_epoch_fixed(self, year):
    epoch = _orig_year_to_epoch(self, year)
    return epoch if self.julian else epoch + 86400


_pyzi._DayOffset.year_to_epoch = _year_to_epoch_fixed


def load_zone(name):
    """Zones from the snapshot in tests/data/zoneinfo (what tests/test_cron.c reads), the
    synthetic Test/... zones through the patched pure-Python reader; other zones from the
    system database."""
    path = os.path.join(TEST_ZONES, name)
    if name.startswith("Test/"):
        with open(path, "rb") as f:
            return _pyzi.ZoneInfo.from_file(f, key=name)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key=name)
    return zoneinfo.ZoneInfo(name)


def check_test_zones():
    """Offsets of the synthetic zones, every 15 minutes of 2020-2069, against glibc's."""
    import time

    bad = 0
    for name in sorted(os.listdir(os.path.join(TEST_ZONES, "Test"))):
        z = load_zone("Test/" + name)
        os.environ["TZ"] = ":" + os.path.join(TEST_ZONES, "Test", name)
        time.tzset()
        t, end, diffs = 1577836800, 3155760000, 0
        while t < end:
            ours = dt.datetime.fromtimestamp(t, UTC).astimezone(z).utcoffset().total_seconds()
            if time.localtime(t).tm_gmtoff != int(ours):
                diffs += 1
            t += 900
        # glibc reads "EST5EDT,0/0,J365/25" year by year and so leaves standard time in the
        # first hours of each UTC year; the tz documentation defines it as DST all year.
        known = name == "AllYearDst"
        print("%-12s %6d differences from glibc%s" % (name, diffs, " (known glibc limitation)" if known else ""))
        if diffs and not known:
            bad += 1
    return 1 if bad else 0


class Never(Exception):
    pass


def value(tok, names, lo):
    tok = tok.upper()
    if names and tok in names:
        return names.index(tok) + lo
    return int(tok)


def simple_set(text, lo, hi, names=None, step_hi=None):
    """A field of plain items: *, N, N-M, */S, N/S, N-M/S, lists."""
    step_hi = hi if step_hi is None else step_hi
    out = set()
    for item in text.split(","):
        step = 1
        body = item
        if "/" in item:
            body, st = item.split("/")
            step = int(st)
            assert step >= 1
        if body in ("*", "?"):
            a, b = lo, step_hi
        elif "-" in body:
            x, y = body.split("-")
            a, b = value(x, names, lo), value(y, names, lo)
        else:
            a = value(body, names, lo)
            b = step_hi if "/" in item else a  # N/S runs to the top of the field
            if names is DAYS and a == 7 and "/" in item:
                a = 0  # 7/S: Sunday is also the bottom of the week
        assert lo <= a <= b <= hi, (text, a, b)
        out.update(range(a, b + 1, step))
    return out


def split_items_with(text, lo, hi, names, step_hi):
    """Plain items (as a set) and the raw special items of a day field."""
    plain, special = [], []
    for item in text.split(","):
        if re.fullmatch(r"[0-9A-Za-z]+([-][0-9A-Za-z]+)?(/[0-9]+)?|[*?](/[0-9]+)?", item) and not (
            re.fullmatch(r"L|LW|L-\d+|\d+W|[0-9A-Za-z]+L|[0-9A-Za-z]+#\d", item, re.I)
            and item.upper() not in DAYS
        ):
            plain.append(item)
        else:
            special.append(item)
    s = simple_set(",".join(plain), lo, hi, names, step_hi) if plain else set()
    return s, special


class Cron:
    def __init__(self, expr, default_zone=None):
        self.text = expr
        zone = default_zone
        m = re.match(r"^\s*(CRON_TZ|TZ)=(\S+)\s+", expr, re.I)
        if m:
            zone = m.group(2)
            expr = expr[m.end():]
        self.zone = zone
        self.tz = UTC if zone in (None, "UTC") else load_zone(zone)
        expr = expr.strip()
        self.every = None
        if expr.startswith("@"):
            parts = expr.split()
            key = parts[0].lower()
            if key == "@every":
                self.every = parse_duration(parts[1])
                return
            expr = MACROS[key]
        fields = expr.split()
        if len(fields) == 5:
            fields = ["0"] + fields
        assert len(fields) == 6, expr
        sec, mi, hr, dom, mon, dow = fields
        self.secs = sorted(simple_set(sec, 0, 59))
        self.mins = sorted(simple_set(mi, 0, 59))
        self.hours = sorted(simple_set(hr, 0, 23))
        self.months = simple_set(mon, 1, 12, MONTHS)
        self.real_time = hr == "*"
        self.dom_any = dom in ("*", "?")
        self.dow_any = dow in ("*", "?")
        self.dom_plain, dom_special = split_items_with(dom, 1, 31, None, 31)
        self.dom_last = set()  # L-k offsets
        self.dom_near = set()  # NW
        self.dom_lw = False
        for it in dom_special:
            u = it.upper()
            if u == "L":
                self.dom_last.add(0)
            elif u == "LW":
                self.dom_lw = True
            elif u.startswith("L-"):
                self.dom_last.add(int(u[2:]))
            elif u.endswith("W"):
                n = int(u[:-1])
                assert 1 <= n <= 31
                self.dom_near.add(n)
            else:
                raise ValueError("bad day-of-month item " + it)
        dplain, dow_special = split_items_with(dow, 0, 7, DAYS, 6)
        self.dow_plain = {d % 7 for d in dplain}
        self.dow_lastof = set()
        self.dow_nth = set()
        for it in dow_special:
            u = it.upper()
            if "#" in u:
                d, k = u.split("#")
                k = int(k)
                assert 1 <= k <= 5
                self.dow_nth.add((value(d, DAYS, 0) % 7, k))
            elif u.endswith("L"):
                self.dow_lastof.add(value(u[:-1], DAYS, 0) % 7)
            else:
                raise ValueError("bad day-of-week item " + it)

    # ---- the day rule, by scanning ------------------------------------------------------
    def dom_match(self, d):
        last = calendar.monthrange(d.year, d.month)[1]
        if d.day in self.dom_plain:
            return True
        if any(last - k == d.day for k in self.dom_last):
            return True
        for n in self.dom_near:
            if n <= last and nearest_weekday(d.year, d.month, n, last) == d.day:
                return True
        if self.dom_lw:
            x = last
            while dt.date(d.year, d.month, x).isoweekday() >= 6:
                x -= 1
            if x == d.day:
                return True
        return False

    def dow_match(self, d):
        wd = d.isoweekday() % 7
        if wd in self.dow_plain:
            return True
        last = calendar.monthrange(d.year, d.month)[1]
        if wd in self.dow_lastof and d.day + 7 > last:
            return True
        if (wd, (d.day - 1) // 7 + 1) in self.dow_nth:
            return True
        return False

    def day_match(self, d):
        if d.month not in self.months:
            return False
        if self.dom_any and self.dow_any:
            return True
        if self.dom_any:
            return self.dow_match(d)
        if self.dow_any:
            return self.dom_match(d)
        return self.dom_match(d) or self.dow_match(d)

    # ---- wall time to instants ------------------------------------------------------------
    def instants(self, w):
        """Firing instants (epoch seconds) contributed by wall time w."""
        if self.tz is UTC:
            return [int(w.replace(tzinfo=UTC).timestamp())]
        occ = set()
        for fold in (0, 1):
            u = w.replace(tzinfo=self.tz, fold=fold).astimezone(UTC)
            if u.astimezone(self.tz).replace(tzinfo=None) == w:
                occ.add(int(u.timestamp()))
        occ = sorted(occ)
        if self.real_time:
            return occ
        if occ:
            return occ[:1]
        # In a gap: the first instant whose wall clock is past w.
        lo = int(w.replace(tzinfo=self.tz, fold=1).astimezone(UTC).timestamp())
        hi = int(w.replace(tzinfo=self.tz, fold=0).astimezone(UTC).timestamp())
        lo, hi = min(lo, hi), max(lo, hi)
        while lo < hi:
            mid = (lo + hi) // 2
            wall = dt.datetime.fromtimestamp(mid, UTC).astimezone(self.tz).replace(tzinfo=None)
            if wall > w:
                hi = mid
            else:
                lo = mid + 1
        return [lo]

    def check_satisfiable(self):
        d = dt.date(2000, 1, 1)
        for _ in range(146097):  # one whole Gregorian cycle
            if self.day_match(d):
                return
            d += dt.timedelta(days=1)
        raise Never(self.text)

    def next_n(self, frm, n=5):
        """frm: epoch microseconds. Returns up to n epoch seconds strictly after frm."""
        if self.every is not None:
            return [(frm + self.every * (i + 1)) / 1e6 for i in range(n)]
        self.check_satisfiable()
        start = dt.datetime.fromtimestamp(frm // 1000000, UTC).astimezone(self.tz)
        day = start.date() - dt.timedelta(days=2)
        found = []
        limit = dt.date(9999, 12, 31)
        while True:
            if self.day_match(day):
                for h in self.hours:
                    for m in self.mins:
                        for s in self.secs:
                            w = dt.datetime(day.year, day.month, day.day, h, m, s)
                            for t in self.instants(w):
                                if t * 1000000 > frm and t <= 253402300799:
                                    found.append(t)
                            if len(found) >= n:
                                found = sorted(set(found))[:n]
                                # No zone is ahead of UTC by 15 hours, so no later wall
                                # time can fire before w - 15h.
                                lower = int(w.replace(tzinfo=UTC).timestamp()) - 15 * 3600
                                if len(found) >= n and lower > found[n - 1]:
                                    return found
            if day >= limit:
                return sorted(set(found))[:n]
            day += dt.timedelta(days=1)


def nearest_weekday(y, m, n, last):
    for dist in range(0, 4):
        for cand in (n - dist, n + dist):
            if 1 <= cand <= last and dt.date(y, m, cand).isoweekday() <= 5:
                return cand
    return None


UNITS = {"us": 1, "ms": 1000, "s": 10**6, "m": 60 * 10**6, "h": 3600 * 10**6, "d": 86400 * 10**6}


def parse_duration(text):
    total = 0
    for num, unit in re.findall(r"([0-9.]+)(us|ms|s|m|h|d)", text):
        total += int(float(num) * UNITS[unit])
    return total


EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(s):
    d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (d - EPOCH) // dt.timedelta(microseconds=1)


def fmt(t):
    return dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check(path):
    cases = json.load(open(path))["cases"]
    bad = 0
    for c in cases:
        cron = Cron(c["expr"])
        try:
            got = [fmt(t) for t in cron.next_n(parse_time(c["from"]))]
            if c.get("never") or got != c["next"]:
                bad += 1
                print("MISMATCH", c["expr"], c["from"], got, c.get("next"), file=sys.stderr)
        except Never:
            if not c.get("never"):
                bad += 1
                print("UNEXPECTED NEVER", c["expr"], file=sys.stderr)
    print("%d passed, %d failed" % (len(cases) - bad, bad))
    return 1 if bad else 0


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def generate(path):
    lines = []
    for raw in open(path):
        raw = raw.rstrip("\n")
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        frm, expr = raw.split("\t", 1)
        lines.append((frm, expr))
    out = []
    out.append("/* Generated by tests/tools/cron_oracle.py from tests/data/cron_cases.in:")
    out.append("     python3 tests/tools/cron_oracle.py generate tests/data/cron_cases.in \\")
    out.append("         > tests/data/cron_cases.h")
    out.append("   Expected instants come from the oracle's brute force over Python's zoneinfo")
    out.append("   (zone files from the snapshot in tests/data/zoneinfo; Test/ zones")
    out.append("   read by zoneinfo's pure-Python reader with its zero-based")
    out.append("   day rule fixed and checked against glibc: cron_oracle.py zones), never from")
    out.append("   pgsched.h. The oracle agrees with all 425 cases of cron-vectors.json")
    out.append("   (cron_oracle.py check). Do not edit: edit the .in file and regenerate. */")
    out.append("")
    out.append("typedef struct cron_case {")
    out.append("    const char *expr;")
    out.append("    const char *from;")
    out.append("    int never;")
    out.append("    const char *next[5];")
    out.append("} cron_case;")
    out.append("")
    out.append("static const cron_case cron_cases[] = {")
    for frm, expr in lines:
        cron = Cron(expr)
        try:
            got = [fmt(t) if isinstance(t, int) else fmt_us(t) for t in cron.next_n(parse_time(frm))]
            never = 0
        except Never:
            got, never = [], 1
        while len(got) < 5:
            got.append(None)
        nexts = ", ".join(c_string(g) if g else "NULL" for g in got)
        out.append("    {%s, %s, %d, {%s}}," % (c_string(expr), c_string(frm), never, nexts))
    out.append("};")
    print("\n".join(out))


def fmt_us(t):
    us = round(t * 1e6)
    base = dt.datetime.fromtimestamp(us // 1000000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = us % 1000000
    return base + ((".%06d" % frac) if frac else "") + "Z"


ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Australia/Sydney",
         "America/St_Johns", "Pacific/Chatham", "Asia/Kolkata", "America/Sao_Paulo",
         "Europe/Berlin", "Pacific/Apia", "America/Santiago", "Asia/Jerusalem"]


def random_field(rng, lo, hi, names=None):
    def val():
        v = rng.randint(lo, hi)
        if names and rng.random() < 0.3:
            return names[(v - (1 if names is MONTHS else 0)) % len(names)]
        return str(v)

    items = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        k = rng.random()
        if k < 0.25:
            items.append("*" if rng.random() < 0.5 else "*/%d" % rng.randint(1, min(hi - lo + 1, 60 if hi == 59 else hi)))
        elif k < 0.5:
            items.append(val())
        elif k < 0.75:
            a, b = sorted([rng.randint(lo, hi), rng.randint(lo, hi)])
            items.append("%d-%d" % (a, b) + ("/%d" % rng.randint(1, 7) if rng.random() < 0.3 else ""))
        else:
            items.append("%d/%d" % (rng.randint(lo, min(hi, 6) if names is DAYS else hi),
                                    rng.randint(1, min(10, 7 if names is DAYS else hi - lo + 1))))
    return ",".join(items)


def random_case(rng):
    dom = random_field(rng, 1, 31)
    r = rng.random()
    if r < 0.1:
        dom = rng.choice(["L", "LW", "L-%d" % rng.randint(0, 5), "%dW" % rng.randint(1, 31), "?"])
    dow = random_field(rng, 0, 7, DAYS)
    r = rng.random()
    if r < 0.1:
        dow = rng.choice(["%dL" % rng.randint(0, 7), "%d#%d" % (rng.randint(0, 7), rng.randint(1, 5)), "?"])
    elif r < 0.5:
        dow = "*"
    fields = [random_field(rng, 0, 59), random_field(rng, 0, 23) if rng.random() < 0.7 else "*",
              dom, random_field(rng, 1, 12, MONTHS) if rng.random() < 0.4 else "*", dow]
    if rng.random() < 0.3:
        fields.insert(0, random_field(rng, 0, 59))
    expr = " ".join(fields)
    if rng.random() < 0.7:
        expr = "CRON_TZ=%s %s" % (rng.choice(ZONES), expr)
    year = rng.choice([rng.randint(1970, 2060), 2026, 2040])
    start = dt.datetime(year, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=rng.randint(0, 366 * 86400))
    # Often start just before a DST change of the zone, where the rules matter.
    return expr, start.strftime("%Y-%m-%dT%H:%M:%SZ")


def random_check(cli, n, seed):
    import random
    import subprocess

    rng = random.Random(seed)
    bad = done = 0
    while done < n:
        expr, frm = random_case(rng)
        try:
            cron = Cron(expr)
            want = [fmt(t) for t in cron.next_n(parse_time(frm))]
        except Never:
            want = None
        except (AssertionError, ValueError):
            continue  # a random field the oracle's simple parser does not take
        done += 1
        p = subprocess.run([cli, "-n", "5", "--from", frm, expr], capture_output=True, text=True)
        got = p.stdout.split()
        if want is None:
            ok = p.returncode == 2 and "never match" in p.stderr
        else:
            ok = p.returncode == 0 and got == want
        if not ok:
            bad += 1
            print("MISMATCH %s from %s\n  oracle %s\n  cli    %s %s" % (expr, frm, want, got, p.stderr.strip()))
    print("%d passed, %d failed" % (n - bad, bad))
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "check":
        return check(argv[2])
    if len(argv) >= 4 and argv[1] == "next":
        n = int(argv[4]) if len(argv) > 4 else 5
        for t in Cron(argv[2]).next_n(parse_time(argv[3]), n):
            print(fmt(t) if isinstance(t, int) else fmt_us(t))
        return 0
    if len(argv) >= 4 and argv[1] == "random":
        return random_check(argv[2], int(argv[3]), int(argv[4]) if len(argv) > 4 else 1)
    if len(argv) >= 2 and argv[1] == "zones":
        return check_test_zones()
    if len(argv) >= 3 and argv[1] == "generate":
        generate(argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
