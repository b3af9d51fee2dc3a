#!/usr/bin/env python3
"""Writes the synthetic zone files under tests/data/zoneinfo/Test/.

They exercise corners of the TZif format and of POSIX TZ footer rules that no zone of the
real database uses today (Julian-day rules, zero-based day rules, rule times below 0 and past
24 hours, quoted abbreviations with half-hour DST, DST all year, a version 1 file without
a footer). Expected values for them come from the oracle, which reads the same files with
Python's zoneinfo. Run from anywhere:  python3 tests/tools/make_test_zones.py
"""
import datetime as dt
import os
import struct
import zoneinfo

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "zoneinfo", "Test")


def block(times, idxs, types, chars, wide):
    fmt = ">q" if wide else ">l"
    out = b"".join(struct.pack(fmt, t) for t in times)
    out += bytes(idxs)
    for off, isdst, desig in types:
        out += struct.pack(">lBB", off, isdst, desig)
    out += chars
    return out


def tzif(version, transitions, types, footer):
    """transitions: [(utc seconds, type index)]; types: [(utoff, isdst, abbr)]."""
    chars = b""
    desig = []
    for _, _, abbr in types:
        desig.append(len(chars))
        chars += abbr.encode() + b"\0"
    tt = [(off, dst, d) for (off, dst, _), d in zip(types, desig)]
    times = [t for t, _ in transitions]
    idxs = [i for _, i in transitions]

    def header(ver, n):
        return b"TZif" + ver + b"\0" * 15 + struct.pack(">6l", 0, 0, 0, n, len(tt), len(chars))

    if version == b"\0":
        return header(version, len(times)) + block(times, idxs, tt, chars, False)
    fit = [(t, i) for t, i in transitions if -2**31 <= t < 2**31]
    v1 = header(version, len(fit)) + block([t for t, _ in fit], [i for _, i in fit], tt, chars, False)
    v2 = header(version, len(times)) + block(times, idxs, tt, chars, True)
    return v1 + v2 + b"\n" + footer.encode() + b"\n"


def ts(y, m, d, h=0, mi=0):
    return int(dt.datetime(y, m, d, h, mi, tzinfo=dt.timezone.utc).timestamp())


def main():
    os.makedirs(OUT, exist_ok=True)
    one = [(ts(1970, 1, 1), 0)]
    zones = {
        # DST from Julian day 60 (March 1, Feb 29 never counted) to day 300, 02:00 and 03:00.
        "Julian": tzif(b"2", one, [(3600, 0, "AAA"), (7200, 1, "BBB")], "AAA-1BBB,J60,J300/3"),
        # Zero-based days: day 59 is Feb 29 in leap years and March 1 otherwise.
        "ZeroBased": tzif(b"2", one, [(3600, 0, "AAA"), (7200, 1, "BBB")], "AAA-1BBB,59,299"),
        # Quoted abbreviations, a 30-minute DST, rule times of -1:00 and 25:00 (version 3).
        "Quoted": tzif(b"3", one, [(10800, 0, "+03"), (12600, 1, "+0330")],
                       "<+03>-3<+0330>-3:30,M3.5.0/-1,M10.5.0/25"),
        # Daylight time all year (the version 3 idiom): never a transition.
        "AllYearDst": tzif(b"3", one, [(-14400, 1, "EDT")], "EST5EDT,0/0,J365/25"),
        # Southern hemisphere: DST spans the new year.
        "Southern": tzif(b"2", one, [(36000, 0, "AAA"), (39600, 1, "BBB")],
                         "AAA-10BBB,M10.1.0,M4.1.0/3"),
    }
    # Version 1, no footer: New York's transitions of 2020-2030, then EST for ever after.
    ny = zoneinfo.ZoneInfo("America/New_York")
    trans = []
    t = ts(2020, 1, 1)
    prev = None
    while t < ts(2031, 1, 1):
        off = dt.datetime.fromtimestamp(t, dt.timezone.utc).astimezone(ny).utcoffset()
        if prev is not None and off != prev:
            # find the exact second of the change inside this hour
            lo, hi = t - 3600, t
            while hi - lo > 1:
                mid = (lo + hi) // 2
                o = dt.datetime.fromtimestamp(mid, dt.timezone.utc).astimezone(ny).utcoffset()
                if o == prev:
                    lo = mid
                else:
                    hi = mid
            trans.append((hi, 1 if off == dt.timedelta(hours=-4) else 0))
        prev = off
        t += 3600
    zones["Version1"] = tzif(b"\0", trans, [(-18000, 0, "EST"), (-14400, 1, "EDT")], "")
    for name, data in zones.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote", ", ".join(sorted(zones)), "to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
