"""``hookwise apply`` and ``hookwise export``: rules as YAML files under version control.

Apply validates every file before it writes anything: one broken file applies nothing,
and the error names the file, the rule, the field and the reason. Applying the same
files twice changes nothing; export writes files that apply back to the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path

from engine.store.catalog import Catalog, Change, parse_source
from engine.store.secrets import SecretStore
from rules.connection_models import ConnectionSpec
from rules.errors import FieldError, RuleValidationError
from rules.schema import (
    DestinationSpec,
    RuleFile,
    RuleSpec,
    SourceSpec,
    dump_rule,
    dump_source,
    load_rule_file,
    parse_rule_file,
)
from rules.step_models import child_lists
from rules.validation import dump_yaml, load_yaml

Loaded = tuple[list[SourceSpec], list[RuleSpec], list[DestinationSpec],
               list[ConnectionSpec]]

YAML_SUFFIXES = (".yaml", ".yml")


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, plus every rule file below folders named (sorted; see
    ``expand_folders``)."""
    return expand_folders(paths)[0]


def expand_folders(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``(files, skipped)``: the files named, plus every *.yaml / *.yml below folders
    named whose top level holds ``sources:``, ``rules:`` or ``destinations:``; ``skipped``
    says why each other file found in a folder was left out (hidden folders are not
    entered). A file named explicitly is never skipped; one that does not parse as YAML
    is not skipped either (its error is reported when it is loaded)."""
    out: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or not f.is_file():
                    continue
                if f.suffix not in YAML_SUFFIXES:
                    skipped.append((f, "not a YAML file"))
                    continue
                why = _not_a_rule_file(f)
                if why:
                    skipped.append((f, why))
                else:
                    out.append(f)
        elif p.exists():
            out.append(p)
        else:
            raise RuleValidationError([FieldError(loc="", message="no such file", file=str(p))])
    return out, skipped


RULE_FILE_KEYS = frozenset({"sources", "rules", "destinations", "connections"})


def _not_a_rule_file(f: Path) -> str | None:
    """Why ``f`` is not a rule file, or None if it is one (or cannot be told: broken)."""
    try:
        doc = load_yaml(f.read_text(), file=str(f))
    except (OSError, UnicodeError, RuleValidationError):
        return None  # reported as the file's error when it is loaded
    if doc is None:
        return "empty"
    if not isinstance(doc, dict) or not RULE_FILE_KEYS & set(doc):
        return "not a rule file (no sources:, rules: or destinations: at its top level)"
    return None


def load(paths: Iterable[str | Path]) -> Loaded:
    """Parse and validate files; raise RuleValidationError listing every problem."""
    return _merge((str(f), partial(load_rule_file, f)) for f in expand(paths))


def load_texts(files: Mapping[str, str]) -> Loaded:
    """``load`` for documents already read (``{file name: YAML text}``, e.g. an upload)."""
    return _merge((name, partial(_parse_text, name, text)) for name, text in files.items())


def _parse_text(name: str, text: str) -> RuleFile:
    return parse_rule_file(load_yaml(text, file=name), file=name)


def _merge(files: Iterable[tuple[str, Callable[[], RuleFile]]]) -> Loaded:
    sources: dict[str, tuple[SourceSpec, str]] = {}
    rules: dict[str, tuple[RuleSpec, str]] = {}
    destinations: dict[str, tuple[DestinationSpec, str]] = {}
    connections: dict[str, tuple[ConnectionSpec, str]] = {}
    errors: list[FieldError] = []
    for f, read in files:
        try:
            doc = read()
        except RuleValidationError as exc:
            errors.extend(exc.errors)
            continue
        for s in doc.sources:
            if s.slug in sources and sources[s.slug][1] != str(f):
                errors.append(FieldError("slug", f"source also defined in {sources[s.slug][1]}",
                                         str(f), f"source '{s.slug}'"))
            sources[s.slug] = (s, str(f))
        for r in doc.rules:
            if r.name in rules and rules[r.name][1] != str(f):
                errors.append(FieldError("name", f"rule also defined in {rules[r.name][1]}",
                                         str(f), f"rule '{r.name}'"))
            rules[r.name] = (r, str(f))
        for d in doc.destinations:
            if d.host in destinations and destinations[d.host][1] != str(f):
                errors.append(FieldError("host", "destination also defined in "
                                         f"{destinations[d.host][1]}", str(f),
                                         f"destination '{d.host}'"))
            destinations[d.host] = (d, str(f))
        for c in doc.connections:
            if c.name in connections and connections[c.name][1] != str(f):
                errors.append(FieldError("name", "connection also defined in "
                                         f"{connections[c.name][1]}", str(f),
                                         f"connection '{c.name}'"))
            connections[c.name] = (c, str(f))
    if errors:
        raise RuleValidationError(errors)
    return ([s for s, _ in sources.values()], [r for r, _ in rules.values()],
            [d for d, _ in destinations.values()], [c for c, _ in connections.values()])


def check_references(catalog: Catalog, sources: list[SourceSpec],
                     rules: list[RuleSpec]) -> None:
    """Every rule's source exists (in these sources or stored ones)."""
    known = {s.slug for s in sources} | {s.slug for s in catalog.list_sources()}
    errors = [
        FieldError("source", f"no source named {r.source!r} (define it under sources:)",
                   None, f"rule '{r.name}'", r.source)
        for r in rules
        if r.source != "*" and r.source not in known
    ]
    if errors:
        raise RuleValidationError(errors)


def apply_paths(catalog: Catalog, paths: Iterable[str | Path], *, actor: str | None = None,
                dry_run: bool = False) -> list[Change]:
    return apply_loaded(catalog, load(list(paths)), actor=actor, dry_run=dry_run)


def apply_loaded(catalog: Catalog, loaded: Loaded, *, actor: str | None = None,
                 dry_run: bool = False) -> list[Change]:
    """Check references and save; ``dry_run`` answers the plan (what each source, rule
    and destination would become: created / updated / unchanged) and writes nothing.
    ``hookwise apply [--dry-run]`` and the UI's import page both come here."""
    sources, rules, destinations, connections = loaded
    check_references(catalog, sources, rules)
    check_connections(catalog, connections, rules)
    return catalog.save(sources, rules, destinations, actor=actor, dry_run=dry_run,
                        connections=connections)


def check_connections(catalog: Catalog, connections: list[ConnectionSpec],
                      rules: list[RuleSpec]) -> None:
    """Every webhook step's ``connection`` exists (in these connections or stored ones)."""
    known = {c.name for c in connections} | {c.name for c in catalog.list_connections()}
    errors: list[FieldError] = []

    def walk(steps: list, where: str, rule: RuleSpec) -> None:
        for i, step in enumerate(steps):
            name = getattr(step, "connection", None) if step.type == "webhook" else None
            if name is not None and name not in known:
                errors.append(FieldError(f"{where}[{i}].connection",
                                         f"no connection named {name!r} (define it under "
                                         "connections:)", None, f"rule '{rule.name}'", name))
            for sub, children in child_lists(step):
                walk(children, f"{where}[{i}].{sub}", rule)

    for r in rules:
        walk(r.actions, "actions", r)
    if errors:
        raise RuleValidationError(errors)


def verify_warnings(catalog: Catalog, secrets: SecretStore,
                    slugs: Iterable[str] | None = None) -> list[str]:
    """One sentence per stored source (of ``slugs``, default all) whose verify secret is
    missing, empty or unreadable: every webhook it receives is answered 401 until the
    secret is set."""
    wanted = None if slugs is None else set(slugs)
    out = []
    for row in catalog.list_sources():
        src = parse_source(row.spec)
        name = src.verify.secret
        if src.verify.scheme == "none" or not name or (wanted is not None
                                                         and src.slug not in wanted):
            continue
        problem = secrets.problem(name)
        if problem is not None:
            out.append(f"source {src.slug}: its verify secret {name} {problem}; its webhooks "
                       f"are refused (401) until it is set (hookwise secrets set {name})")
    return out


def export_documents(catalog: Catalog, *, sources: Iterable[str] | None = None,
                     rules: Iterable[str] | None = None,
                     destinations: bool = True) -> dict[str, dict]:
    """``{relative file name: document}``: one sources file, one destinations file, one
    file per rule. ``sources``/``rules``: only those slugs/names (default: all)."""
    want_src = None if sources is None else set(sources)
    want_rule = None if rules is None else set(rules)
    docs: dict[str, dict] = {}
    srcs = [r.spec for r in catalog.list_sources() if want_src is None or r.slug in want_src]
    if srcs:
        docs["sources.yaml"] = {"sources": srcs}
    dests = [r.spec for r in catalog.list_destinations()] if destinations else []
    if dests:
        docs["destinations.yaml"] = {"destinations": dests}
    conns = [r.spec for r in catalog.list_connections()] if destinations else []
    if conns:
        docs["connections.yaml"] = {"connections": conns}
    for row in catalog.list_rules():
        if want_rule is None or row.name in want_rule:
            docs[f"rules/{row.name}.yaml"] = {"rules": [row.spec]}
    return docs


def merged_document(docs: Mapping[str, dict]) -> dict:
    """The documents of ``export_documents`` as one (``hookwise export`` to stdout)."""
    merged = {
        "sources": [s for d in docs.values() for s in d.get("sources", [])],
        "rules": [r for d in docs.values() for r in d.get("rules", [])],
    }
    dests = [x for d in docs.values() for x in d.get("destinations", [])]
    if dests:
        merged["destinations"] = dests
    conns = [x for d in docs.values() for x in d.get("connections", [])]
    if conns:
        merged["connections"] = conns
    return merged


def to_yaml(doc: dict) -> str:
    """YAML that reads back exactly, under YAML 1.2 and 1.1 alike (``rules.validation``)."""
    return dump_yaml(doc)


def export(catalog: Catalog, directory: str | Path | None) -> list[Path] | str:
    """Write every source and rule as YAML into ``directory``; without one, return a
    single YAML document with everything."""
    docs = export_documents(catalog)
    if directory is None:
        return to_yaml(merged_document(docs))
    base = Path(directory)
    written = []
    for name, doc in docs.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_yaml(doc))
        written.append(path)
    return written


__all__ = ["apply_paths", "dump_rule", "dump_source", "export", "load"]
