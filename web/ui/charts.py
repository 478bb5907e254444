"""Chart geometry for server-rendered SVG: bars over time and stacked status bars.

Pure functions from numbers to shapes; ``templates/_charts.html`` draws them. No
JavaScript, so a chart is a picture the moment the page arrives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

WIDTH = 560
HEIGHT = 180
PAD_LEFT = 34
PAD_RIGHT = 12
PAD_TOP = 10
PAD_BOTTOM = 24


@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    value: int
    title: str


@dataclass
class Tick:
    pos: float
    label: str


@dataclass
class TimeChart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    bars: list[Bar]
    yticks: list[Tick]
    xticks: list[Tick]
    total: int
    peak: int
    tone: str
    unit: str


def nice_step(peak: float, ticks: int = 4) -> int:
    """An integer step of 1, 2 or 5 × 10ⁿ giving about ``ticks`` gridlines up to ``peak``."""
    if peak <= ticks:
        return 1
    raw = peak / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * magnitude:
            return int(m * magnitude)
    return int(10 * magnitude)


def _parse(label: str) -> datetime:
    ts = datetime.fromisoformat(label)
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)


def time_chart(labels: list[str], values: list[int], *, tone: str, unit: str,
               width: int = WIDTH, height: int = HEIGHT, every_hours: int = 6) -> TimeChart:
    """Bars for ``values`` per time bucket starting at ``labels`` (ISO 8601, UTC)."""
    n = max(len(values), 1)
    left, right = PAD_LEFT, width - PAD_RIGHT
    top, bottom = PAD_TOP, height - PAD_BOTTOM
    peak = max(values, default=0)
    step = nice_step(peak)
    ymax = max(step * math.ceil(peak / step), step) if peak else 4
    slot = (right - left) / n
    gap = min(2.0, slot * 0.2)
    starts = [_parse(x) for x in labels]
    width_s = (starts[1] - starts[0]) if len(starts) > 1 else None
    bars = []
    for i, v in enumerate(values):
        h = (bottom - top) * v / ymax
        start = starts[i] if i < len(starts) else None
        if start is not None and width_s is not None:
            end = start + width_s
            title = f"{start:%H:%M}–{end:%H:%M} UTC: {v} {unit}"
        else:
            title = f"{v} {unit}"
        bars.append(Bar(left + i * slot + gap / 2, bottom - h, max(slot - gap, 1), h, v, title))
    yticks = [Tick(bottom - (bottom - top) * t / ymax, str(t))
              for t in range(0, ymax + 1, step if peak else 1)]
    xticks = []
    if starts and width_s is not None:
        start, end = starts[0], starts[0] + width_s * n
        span = (end - start).total_seconds()
        hour = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        while hour < end:
            if hour.hour % every_hours == 0:
                pos = left + (right - left) * (hour - start).total_seconds() / span
                if right - pos > 48:  # keep clear of "now"
                    xticks.append(Tick(pos, f"{hour:%H:%M}"))
            hour += timedelta(hours=1)
    xticks.append(Tick(right, "now"))
    return TimeChart(width, height, left, right, top, bottom, bars, yticks, xticks,
                     sum(values), peak, tone, unit)


@dataclass
class Segment:
    status: str
    count: int
    start: float  # percent
    width: float  # percent


@dataclass
class StatusBar:
    total: int
    segments: list[Segment] = field(default_factory=list)


def status_bar(counts: dict[str, int], order: tuple[str, ...]) -> StatusBar:
    """A 100 % stacked bar of ``counts``, statuses in ``order`` (others after)."""
    keys = [k for k in order if counts.get(k)] + \
        sorted(k for k in counts if k not in order and counts[k])
    total = sum(counts[k] for k in keys)
    bar = StatusBar(total)
    pos = 0.0
    for k in keys:
        w = 100.0 * counts[k] / total
        bar.segments.append(Segment(k, counts[k], pos, w))
        pos += w
    return bar
