"""Template memory bombs (issue 12, item 1): each builder is refused *before* it allocates.

The corpus is the review's payloads plus their family (star widths, nested format
fields, precisions, indent and tojson widths, batch fills, expandtabs, ~ doubling). Each
must end in a clear "template too large" error, fast and without building the value;
ordinary formatting keeps working.
"""

from __future__ import annotations

import resource
import time

import pytest

from rules.errors import TemplateError
from rules.templating import render_template

BOMBS = [
    "{{ ('%*d' % (100000000, 1))|length }}",
    "{{ ('%0*d' % (100000000, 1))|length }}",
    "{{ ('%-*s' % (100000000, 'x'))|length }}",
    "{{ ('%.*f' % (100000000, 1.5))|length }}",
    "{{ ('%.100000000d' % 1)|length }}",
    "{{ ('%(a)100000000s' % {'a': 1})|length }}",
    "{{ '{:{w}}'.format(1, w=100000000)|length }}",
    "{{ '{0:{1}}'.format(1, 100000000)|length }}",
    "{{ '{:{}}'.format(1, 100000000)|length }}",
    "{{ '{a:>{w}}'.format_map({'a': 1, 'w': 100000000})|length }}",
    "{{ '{:.100000000f}'.format(1.5)|length }}",
    "{{ '{:>100000000}'.format(1)|length }}",
    "{{ ('%*s'|format(100000000, 'x'))|length }}",
    "{{ '\t'.expandtabs(100000000)|length }}",
    "{{ ('\t' * 1000).expandtabs(10000)|length }}",
    "{{ ([[1]]|tojson(100000000))|length }}",
    "{{ ([[1]]|tojson(1000000000))|length }}",
    "{{ ('x\nx' * 300000)|indent(999)|length }}",
    "{{ ('x\nx' * 300000)|indent('          ')|length }}",
    "{{ 'x'|center(100000000)|length }}",
    "{{ ([1]|batch(10000000, 0)|list)|length }}",
    "{{ 'x'.zfill(100000000)|length }}",
    "{{ ('ab' * 400000)|replace('a', 'aaaaaaaaaa')|length }}",
    "{{ (('x' * 999999)|list)|join(',')|length }}",
    "{{ ('x' * 1000) * 10000 }}",
    "{{ (10 ** 100000)|string|length }}",
    "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}"
    "{% endmacro %}{{ d('xxxxxxxxxx', 27) }}",
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("text", BOMBS)
def test_bomb_is_refused_before_it_allocates(text: str) -> None:
    """Before (c430c7d…0fbcd19): most of these built 100-1,200 MB or took seconds."""
    before, start = _rss_mb(), time.monotonic()
    with pytest.raises(TemplateError, match="template too large"):
        render_template(text, {})
    assert time.monotonic() - start < 1.0
    assert _rss_mb() - before < 50  # peak RSS: the value was never built


@pytest.mark.parametrize(("text", "want"), [
    ("{{ '%5.2f' % 3.14159 }}", " 3.14"),
    ("{{ '%d cents' % 1500000000 }}", "1500000000 cents"),
    ("{{ '%*d' % (5, 42) }}", "   42"),
    ("{{ '%(n)s=%(v)03d' % {'n': 'a', 'v': 7} }}", "a=007"),
    ("{{ '{:>6}|{:,}'.format('x', 1234567) }}", "     x|1,234,567"),
    ("{{ '{0:{1}}|{name}'.format('ab', 4, name='n') }}", "ab  |n"),
    ("{{ '%s-%s'|format('a', 'b') }}", "a-b"),
    ("{{ {'a': [1]}|tojson(2) }}", '{\n  "a": [\n    1\n  ]\n}'),
    ("{{ 'a\nb'|indent(2) }}", "a\n  b"),
    ("{{ [1, 2, 3]|batch(2, 0)|list }}", [[1, 2], [3, 0]]),
    ("{{ 'a\tb'.expandtabs(4) }}", "a   b"),
])
def test_ordinary_formatting_still_works(text: str, want: object) -> None:
    assert render_template(text, {}) == want
