"""Reference fire times for the schedule tests, from croniter (PyPI) and zoneinfo.

Reads JSON from stdin: [{"expr": "...", "tz": "Europe/Berlin", "start": "2027-03-26T00:00:00Z",
"count": 5}, ...] and prints, for each, the next `count` fire times after `start` as UTC ISO
strings. croniter matches the expression against local wall-clock times (naive datetimes); wall
times are then turned into instants with Sixty's documented daylight-saving rules:

* a wall time that happens twice (clocks going back) counts once, at its first occurrence;
* wall times that never happen (clocks going forward) run once, at the first valid minute
  after the jump.
"""
import json
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter


def exists(naive, tz):
    aware = naive.replace(tzinfo=tz, fold=0)
    return aware.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == naive


def instant(naive, tz):
    t = naive
    while not exists(t, tz):
        t += timedelta(minutes=1)
    return t.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)


def fires(expr, tz_name, start_text, count):
    tz = ZoneInfo(tz_name)
    start = datetime.strptime(start_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    wall = start.astimezone(tz).replace(tzinfo=None)
    it = croniter(expr, wall - timedelta(hours=3))
    out = []
    guard = 0
    while len(out) < count and guard < 100000:
        guard += 1
        when = instant(it.get_next(datetime), tz)
        if when <= start or (out and when <= out[-1]):
            continue
        out.append(when)
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in out]


cases = json.load(sys.stdin)
json.dump([fires(c["expr"], c["tz"], c["start"], c["count"]) for c in cases], sys.stdout)
