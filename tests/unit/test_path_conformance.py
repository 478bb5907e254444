"""Conformance: Hookwise's compiled paths select exactly what jsonpath-ng's own
``jsonpath_ng.ext.parse(expr).find(doc)`` selects — the same values, in the same order —
and refuse what jsonpath-ng refuses (issue 13, "Done when", second bullet).

Hypothesis generates documents and selectors over awkward names (dots, dashes, spaces,
both quotes, backslashes, unicode, digits, ``$``/``@``/brackets/``*``, the reserved words
``where``/``wherenot`` and the words ``and``/``or``/``in``/``true``/``null``), indices,
negative indices, slices with and without steps, unions, wildcards, recursive descent and
filters (strings with escapes, integers, floats, booleans, null, existence, ``!``,
``&&``/``||``, ``=~`` regexes). Each selector is written two ways:

* as an author writes it: a name that is a *dotted name* (see ``rules.paths``) as
  ``.name``, others in ``['…']`` or ``["…"]`` with ``\\`` and the quote escaped;
* canonically: every name in ``['…']``, which jsonpath-ng's lexer always reads as a name.

Where Hookwise differs on purpose — it says so here, and nowhere else does it differ:

1. **Dotted names jsonpath-ng's lexer misreads are names.** jsonpath-ng refuses
   ``$.body.where`` (``where`` is its keyword), ``$.a.1-2`` (two numbers), ``$.ключ``
   (non-ASCII), ``$.a.1.5`` (a float), ``$.a.1x``, and reads ``$.a.01`` as the key
   ``"1"``. Hookwise reads each of these as the keys written; the oracle for such a
   selector is jsonpath-ng on its canonical (bracket-quoted) form.
2. **Regexes run on RE2** (``=~`` filters, ``sub()``): a pattern RE2 cannot compile
   (back-references, look-around) is refused when the path compiles; jsonpath-ng would
   run it on Python's backtracking ``re``. The generated patterns are ones both accept;
   ``test_re2_refuses_more_on_purpose`` pins the difference.
3. **What jsonpath-ng parses but cannot evaluate is refused**: ``$.a & $.b`` (its
   deprecated intersection) parses, and its ``find`` raises NotImplementedError;
   Hookwise refuses it when the path compiles, not when an event arrives.

Three generated tests: selectors over documents built from the same keys (half of them
filters over lists of records), name/index paths walked into a document (the paths
Hookwise walks itself, never reaching jsonpath-ng), and random path text (for refusals).
All derandomized (a fixed sequence of examples, no example database): about ten seconds
of CPU at the default 300 examples; ``HOOKWISE_PATH_EXAMPLES`` raises it.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonpath_ng.ext import parse as jsonpath_ng_parse

from rules.errors import PathError
from rules.paths import compile_path

# examples per generated test; HOOKWISE_PATH_EXAMPLES=20000 for a long hunt
EXAMPLES = int(os.environ.get("HOOKWISE_PATH_EXAMPLES", "300"))
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# what Hookwise writes as .name (rules.paths: word characters, -, @; not a leading -)
DOTTED = re.compile(r"(?:@(?=\w))?\w[\w@-]*")

AWKWARD_KEYS = [
    "a", "b", "id", "x_1", "where", "wherenot", "and", "or", "in", "not", "true", "false",
    "null", "this", "len", "a.b", "a-b", "a-", "-a", "a b", " ", "", "it's", 'say "hi"',
    "both'\"", "back\\slash", "\\", "\\'", "ключ", "名前", "é", "日本.語", "😀", "01", "1",
    "0", "-1", "1.5", "1-2", "1x", "$", "@", "@type", "a@b", "[0]", "*", "?", "a[b]", "(",
    ")", ",", ":", "`len`", "~", "|", "&&", "..", ".", "a..b", "\t", "%", "#",
]
KEYS = st.sampled_from(AWKWARD_KEYS) | st.text(
    alphabet=st.sampled_from(list("ab1_-. '\"\\$@[]*é字")), max_size=4
)
STRINGS = ["x.y", "a'b", 'q"r', "back\\slash", "where", "", "ключ", "1", "A"]
SCALARS = (
    st.integers(-3, 3)
    | st.sampled_from([1.5, -2.5, 0.0, 10, 100, 1e3])
    | st.booleans()
    | st.none()
    | st.sampled_from(STRINGS)
)


def docs(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=5)
        | st.lists(st.dictionaries(keys, SCALARS | children, max_size=4), max_size=4),
        max_leaves=20,
    )


DOCS = docs(KEYS)


# -- rendering --------------------------------------------------------------------------
def quoted(key: str, quote: str = "'") -> str:
    """A jsonpath-ng string literal for ``key`` (backslash escapes the next character)."""
    return quote + key.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def name_segment(key: str, style: str, canonical: bool) -> str:
    if canonical or style == "sq" or (style == "dot" and not DOTTED.fullmatch(key)):
        return f"[{quoted(key)}]"
    if style == "dq":
        return f"[{quoted(key, chr(34))}]"
    return f".{key}"


@st.composite
def relative(draw: Any, keys: st.SearchStrategy[str]) -> tuple[str, str]:
    """``@`` and one or two name/index steps, as (author form, canonical form)."""
    author, canon = "@", "@"
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        if draw(st.integers(0, 4)) == 0:
            i = draw(st.integers(-2, 2))
            author, canon = author + f"[{i}]", canon + f"[{i}]"
        else:
            key = draw(keys)
            style = draw(st.sampled_from(["dot", "dot", "sq", "dq"]))
            author += name_segment(key, style, False)
            canon += name_segment(key, style, True)
    return author, canon


LITERALS = (
    st.integers(-3, 3).map(str)
    | st.sampled_from(["1.5", "-2.5", "0.0", "10", "100", "1000.0", "true", "false", "null"])
    | st.builds(quoted, st.sampled_from(STRINGS + AWKWARD_KEYS), st.sampled_from("'\""))
    | st.sampled_from(["where", "and", "or", "in", "abc", "x.y", "1.5.5", "$", "@", "2.2"])
)  # the last line: bare words and malformed numbers (jsonpath-ng refuses some)
PATTERNS = st.sampled_from(["'^a'", "'b$'", "'x\\\\.y'", "'[0-9]+'", "'(?i)a'", "'^$'", "'.'"])


@st.composite
def filter_test(draw: Any, keys: st.SearchStrategy[str]) -> tuple[str, str]:
    target, canon = draw(relative(keys))
    kind = draw(st.integers(0, 5))
    if kind == 0:  # existence
        return target, canon
    if kind == 1:
        return f"!{target}", f"!{canon}"
    if kind == 2:
        pattern = draw(PATTERNS)
        return f"{target} =~ {pattern}", f"{canon} =~ {pattern}"
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    lit = draw(LITERALS)
    return f"{target} {op} {lit}", f"{canon} {op} {lit}"


@st.composite
def filter_segment(draw: Any, keys: st.SearchStrategy[str]) -> tuple[str, str]:
    a, ca = draw(filter_test(keys))
    if draw(st.booleans()):
        b, cb = draw(filter_test(keys))
        join = draw(st.sampled_from(["&&", "||"]))
        a, ca = f"{a} {join} {b}", f"{ca} {join} {cb}"
    if draw(st.booleans()):
        return f"[?({a})]", f"[?({ca})]"
    return f"[?{a}]", f"[?{ca}]"


@st.composite
def segment(draw: Any, keys: st.SearchStrategy[str]) -> tuple[str, str]:
    kind = draw(st.integers(0, 12))
    if kind <= 3:
        key = draw(keys)
        style = draw(st.sampled_from(["dot", "dot", "sq", "dq"]))
        return name_segment(key, style, False), name_segment(key, style, True)
    if kind == 4:
        names = draw(st.lists(keys, min_size=2, max_size=3))
        return f"[{','.join(map(quoted, names))}]", f"[{','.join(map(quoted, names))}]"
    if kind == 5:
        idx = draw(st.lists(st.integers(-4, 4), min_size=1, max_size=3))
        text = f"[{','.join(map(str, idx))}]"
        return text, text
    if kind == 6:
        parts = [draw(st.none() | st.integers(-4, 4)) for _ in range(2)]
        step = draw(st.none() | st.integers(-2, 3).filter(bool))
        text = ":".join("" if p is None else str(p) for p in parts)
        if step is not None:
            text += f":{step}"
        return f"[{text}]", f"[{text}]"
    if kind == 7:
        text = draw(st.sampled_from([".*", "[*]"]))
        return text, text
    if kind in (8, 9):  # recursive descent
        which = draw(st.integers(0, 3))
        if which == 0:
            return "..*", "..*"
        if which == 1:
            i = draw(st.integers(-2, 2))
            return f"..[{i}]", f"..[{i}]"
        key = draw(keys)
        if which == 2 and DOTTED.fullmatch(key):
            return f"..{key}", f"..[{quoted(key)}]"
        return f"..[{quoted(key)}]", f"..[{quoted(key)}]"
    return draw(filter_segment(keys))


@st.composite
def selectors(draw: Any, keys: st.SearchStrategy[str] = KEYS) -> tuple[str, str]:
    parts = draw(st.lists(segment(keys), min_size=1, max_size=4))
    return "$" + "".join(a for a, _ in parts), "$" + "".join(c for _, c in parts)


SLOTS = st.integers(0, 4)  # a document's keys are slots, named from the example's pool
SHAPES = docs(SLOTS)
RECORDS = st.lists(st.dictionaries(SLOTS, SCALARS, max_size=4), min_size=1, max_size=5)
RECORD_SHAPES = st.dictionaries(SLOTS, RECORDS | st.dictionaries(SLOTS, RECORDS), min_size=1)


def named(shape: Any, pool: list[str]) -> Any:
    if isinstance(shape, dict):
        return {pool[k % len(pool)]: named(v, pool) for k, v in shape.items()}
    if isinstance(shape, list):
        return [named(v, pool) for v in shape]
    return shape


@st.composite
def cases(draw: Any) -> tuple[Any, tuple[str, str]]:
    """A document and a selector over one small pool of keys, so selectors hit."""
    pool = draw(st.lists(KEYS, min_size=1, max_size=5, unique=True))
    keys = SLOTS.map(lambda i: pool[i % len(pool)])
    if draw(st.integers(0, 4)) == 0:
        keys = keys | KEYS
    if draw(st.booleans()):
        doc = named(draw(SHAPES), pool)
        return doc, draw(selectors(keys))
    # records under names: the shape filters are written for
    doc = named(draw(RECORD_SHAPES), pool)
    parts = [draw(segment(keys)), draw(filter_segment(keys))]
    parts += draw(st.lists(segment(keys), max_size=2))
    return doc, ("$" + "".join(a for a, _ in parts), "$" + "".join(c for _, c in parts))


# -- the two sides ----------------------------------------------------------------------
def theirs(expr: str, doc: Any) -> list[Any] | None:
    """What jsonpath-ng's own parse/find selects, or None when it refuses ``expr``
    (case 3 of the module docstring: also when it parses ``expr`` but cannot find)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation warnings (bare words, &)
        try:
            parsed = jsonpath_ng_parse(expr)
        except Exception:  # noqa: BLE001 - any refusal of jsonpath-ng counts as one
            return None
        try:
            return [m.value for m in parsed.find(doc)]
        except NotImplementedError:  # `$.a & $.b`: parsed, never implemented
            return None


def ours(expr: str, doc: Any) -> list[Any] | None:
    """What the compiled path selects, or None when compile_path refuses ``expr``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jsonpath-ng's, as above
        try:
            path = compile_path(expr)
        except PathError:
            return None
        return path.values(doc)


def same(a: list[Any] | None, b: list[Any] | None) -> bool:
    """Equal values in equal order, types included (1, 1.0 and True differ)."""
    return repr(a) == repr(b)


def misread_by_jsonpath_ng(author: str, canon: str) -> bool:
    """Case 1 of the module docstring: jsonpath-ng reads the author form differently from
    the same selector with its names bracket-quoted (refuses it, or parses another tree)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return jsonpath_ng_parse(author) != jsonpath_ng_parse(canon)
        except Exception:  # noqa: BLE001
            return True


@settings(SETTINGS, max_examples=EXAMPLES)
@given(cases())
def test_generated_selectors_select_what_jsonpath_ng_selects(
    case: tuple[Any, tuple[str, str]],
) -> None:
    doc, (author, canon) = case
    expected = theirs(canon, doc)
    # the canonical form: no dotted names, so no difference of any kind is allowed
    assert same(ours(canon, doc), expected), (canon, doc)
    # the author's form: jsonpath-ng's own reading of it, unless it misreads a dotted name
    oracle = expected if misread_by_jsonpath_ng(author, canon) else theirs(author, doc)
    assert same(ours(author, doc), oracle), (author, canon, doc)


@st.composite
def walks(draw: Any) -> tuple[Any, tuple[str, str]]:
    """A document and a name/index path that walks into it (a miss now and then): the
    paths Hookwise walks itself, without jsonpath-ng (``CompiledPath.is_simple``)."""
    pool = draw(st.lists(KEYS, min_size=1, max_size=5, unique=True))
    doc = named(draw(SHAPES), pool)
    author, canon, cur = "$", "$", doc
    for _ in range(draw(st.integers(1, 5))):
        if isinstance(cur, dict) and cur and draw(st.integers(0, 5)):
            key = draw(st.sampled_from(sorted(cur)))
            cur = cur[key]
        elif isinstance(cur, list) and cur and draw(st.integers(0, 5)):
            i = draw(st.integers(-len(cur), len(cur) - 1))
            cur = cur[i]
            author, canon = author + f"[{i}]", canon + f"[{i}]"
            continue
        else:  # a miss: a name or an index where there is none
            key = draw(KEYS | st.integers(-3, 3))
            if isinstance(key, int):
                author, canon, cur = author + f"[{key}]", canon + f"[{key}]", None
                continue
            cur = None
        style = draw(st.sampled_from(["dot", "dot", "sq", "dq"]))
        author += name_segment(key, style, False)
        canon += name_segment(key, style, True)
    return doc, (author, canon)


@settings(SETTINGS, max_examples=EXAMPLES * 2 // 3)
@given(walks())
def test_walked_paths_select_what_jsonpath_ng_selects(case: tuple[Any, tuple[str, str]]) -> None:
    doc, (author, canon) = case
    expected = theirs(canon, doc)
    for form in (author, canon):
        if "\\" not in form:  # a quoted name with an escape goes to jsonpath-ng
            assert compile_path(form).is_simple, form
    assert same(ours(canon, doc), expected), (canon, doc)
    oracle = expected if misread_by_jsonpath_ng(author, canon) else theirs(author, doc)
    assert same(ours(author, doc), oracle), (author, canon, doc)


PATH_CHARS = list("$.[]*?@()'\"\\:,-=!<>~&|` ab1_2é") + ["where", "..", "1.5", "&&", "||"]


@settings(SETTINGS, max_examples=EXAMPLES * 2 // 3)
@given(st.lists(st.sampled_from(PATH_CHARS), max_size=12), DOCS)
def test_random_text_is_refused_exactly_when_jsonpath_ng_refuses(
    chars: list[str], doc: Any
) -> None:
    """Arbitrary text: whatever jsonpath-ng accepts, Hookwise accepts and selects the same;
    whatever Hookwise refuses, jsonpath-ng refuses. (Hookwise accepts more only by case 1:
    then jsonpath-ng accepts the text with that dotted name quoted.)"""
    expr = "$" + "".join(chars)
    mine, their = ours(expr, doc), theirs(expr, doc)
    if mine is None:
        assert their is None, expr
    elif their is not None:
        # a dotted all-digit name with a leading zero or non-ASCII digits (case 1)
        if not re.search(r"\.\d*[^\x00-\x7f0-9]|\.0\d|\.\d+\.\d", expr):
            assert same(mine, their), (expr, doc)
    else:
        dotted = re.sub(r"(?<=\.)((?:@(?=\w))?\w[\w@-]*)", lambda m: f'"{m.group(1)}"', expr)
        assert theirs(dotted, doc) is not None or compile_path(expr).is_simple, expr


# -- fixed cases: the compliance corner cases, and the differences on purpose -----------
DOC = {
    "body": {
        "where": [{"t": "x.y", "v": 1}, {"t": "z", "v": 2.5}],
        "a": {"01": "zero-one", "1": "one", "1-2": "dash", "ключ": "key", "1x": "x"},
        "items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}, {"id": 3}],
    },
    "event": {"id": "evt_1"},
}


@pytest.mark.parametrize(
    ("author", "canonical"),
    [
        ("$.body.where[*].t", "$.body['where'][*].t"),
        ("$.body.where[?(@.t == 'x.y')].v", "$.body['where'][?(@.t == 'x.y')].v"),
        ("$.body.where[?(@.v > 1.5)].t", "$.body['where'][?(@.v > 1.5)].t"),
        ("$.body.a.01", "$.body.a['01']"),
        ("$.body.a.1-2", "$.body.a['1-2']"),
        ("$.body.a.ключ", "$.body.a['ключ']"),
        ("$.body.a.1x", "$.body.a['1x']"),
        ("$.body..where[0].t", "$.body..['where'][0].t"),
    ],
)
def test_dotted_names_jsonpath_ng_misreads_mean_the_key(author: str, canonical: str) -> None:
    expected = theirs(canonical, DOC)
    assert expected, canonical
    assert same(ours(author, DOC), expected)


def test_recursive_descent_from_the_root_sees_the_events_own_id() -> None:
    """Documented (README, the builder's hint): ``$..id`` also finds ``event.id``."""
    assert ours("$..id", DOC) == theirs("$..id", DOC) == [1, 2, 3, "evt_1"]
    assert ours("$.body..id", DOC) == [1, 2, 3]


def test_intersection_is_refused_at_compile() -> None:
    """Case 3: jsonpath-ng parses it and raises NotImplementedError in ``find``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = jsonpath_ng_parse("$.body & $.event")
        with pytest.raises(NotImplementedError):
            parsed.find(DOC)
        with pytest.raises(PathError, match="intersection"):
            compile_path("$.body & $.event")


@pytest.mark.parametrize(
    "expr",
    ['$.body.items[?(@.n =~ "(a)\\\\1")]', '$.body.items[?(@.n =~ "a(?=b)")]',
     "$.body.items[0].n.`sub(/(?<=a)b/, c)`"],
)
def test_re2_refuses_more_on_purpose(expr: str) -> None:
    """Case 2 of the module docstring: jsonpath-ng runs these on Python's re."""
    assert theirs(expr, DOC) is not None
    with pytest.raises(PathError, match="not allowed"):
        compile_path(expr)
