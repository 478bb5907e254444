"""Sources and rules: the stored specs, and compiled views cached by rule-set version.

Every change to a source or rule bumps ``meta.ruleset_version`` in the same
transaction. Processes keep the compiled RuleSet and the source table in memory and
rebuild them only when that number moves, so no request or job parses a rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from engine.errors import Conflict, NotFound
from engine.ids import utcnow
from engine.store import connections as stored_connections
from engine.store.db import session_scope
from engine.store.models import (
    Connection,
    Destination,
    Execution,
    MatchTrace,
    Meta,
    Rule,
    RuleHistory,
    RuleHistoryAction,
    RuleRevision,
    Source,
)
from rules.compiled import CompiledRule, compile_rule
from rules.condition_models import stored_conditions
from rules.connection_models import ConnectionSpec
from rules.match import RuleSet
from rules.schema import (
    DestinationSpec,
    RuleSpec,
    SourceSpec,
    dump_destination,
    dump_rule,
    dump_source,
    parse_destination,
    parse_rule,
    parse_source,
)

VERSION_KEY = "ruleset_version"
SOURCE_CHECK_INTERVAL_S = 1.0  # ingest re-reads the version at most this often


@dataclass(frozen=True)
class Change:
    kind: str  # "source" | "rule" | "destination"
    name: str
    action: str  # "created" | "updated" | "unchanged" | "deleted"
    detail: str = ""  # for a rule: what changed ("disabled", "changed when, actions")


def bump_version(session: Session) -> None:
    res = session.execute(
        update(Meta).where(Meta.key == VERSION_KEY)  # type: ignore[arg-type]
        .values(value=Meta.value + 1)
    )
    if res.rowcount == 0:  # type: ignore[attr-defined]
        session.add(Meta(key=VERSION_KEY, value=1))


class Catalog:
    """Read/write access to sources and rules, with compiled caches."""

    def __init__(self, db: Engine):
        self.db = db
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._ruleset: RuleSet | None = None
        self._rule_versions: dict[str, int] = {}
        self._ruleset_checked = 0.0
        self._sources: dict[str, SourceSpec] = {}
        self._sources_version = -1
        self._sources_checked = 0.0
        self._destinations: dict[str, DestinationSpec] = {}
        self._destinations_version = -1
        self._destinations_checked = 0.0
        self._revisions: dict[tuple[str, int], CompiledRule] = {}

    # -- reading, cached ---------------------------------------------------------------
    def version(self) -> int:
        with self.db.connect() as conn:
            v = conn.execute(
                text("SELECT value FROM meta WHERE key = :k"), {"k": VERSION_KEY}
            ).scalar()
        return int(v or 0)

    def ruleset(self) -> tuple[RuleSet, dict[str, int]]:
        """The compiled rule set and each rule's stored version, from one snapshot;
        rebuilt only when the rule-set version changed. The version is read at most once
        per ``SOURCE_CHECK_INTERVAL_S`` (a change made elsewhere applies within that)."""
        now = time.monotonic()
        rs = self._ruleset
        if rs is not None and now - self._ruleset_checked < SOURCE_CHECK_INTERVAL_S:
            return rs, self._rule_versions
        v = self.version()
        self._ruleset_checked = now
        if rs is not None and rs.version == v:
            return rs, self._rule_versions
        with self._lock:
            if self._ruleset is None or self._ruleset.version != v:
                with Session(self.db) as s:
                    rows = s.exec(select(Rule)).all()
                with stored_conditions():  # saved before a never-matches check refused it
                    specs = [parse_rule(r.spec) for r in rows]
                self._rule_versions = {r.name: r.version for r in rows}
                self._ruleset = RuleSet(specs, version=v)
            return self._ruleset, self._rule_versions

    def source(self, slug: str) -> SourceSpec | None:
        """A source's spec from an in-memory table refreshed when the version moves."""
        if time.monotonic() - self._sources_checked >= SOURCE_CHECK_INTERVAL_S:
            with self._refresh_lock:  # one thread reads; the others wait, then find it done
                now = time.monotonic()
                if now - self._sources_checked >= SOURCE_CHECK_INTERVAL_S:
                    v = self.version()
                    if v != self._sources_version:
                        with Session(self.db) as s:
                            rows = s.exec(select(Source)).all()
                        self._sources = {r.slug: parse_source(r.spec) for r in rows}
                        self._sources_version = v
                    self._sources_checked = now
        return self._sources.get(slug)

    def destination(self, destination: str) -> DestinationSpec | None:
        """The limits configured for ``scheme://host:port``: an entry for exactly that,
        else one for its host name, else a known service's default (Telegram, Discord,
        Stripe: ``rules.connection_models.SERVICE_DESTINATIONS``); refreshed like
        sources."""
        if time.monotonic() - self._destinations_checked >= SOURCE_CHECK_INTERVAL_S:
            with self._refresh_lock:
                now = time.monotonic()
                if now - self._destinations_checked >= SOURCE_CHECK_INTERVAL_S:
                    v = self.version()
                    if v != self._destinations_version:
                        with Session(self.db) as s:
                            rows = s.exec(select(Destination)).all()
                        self._destinations = {r.host: parse_destination(r.spec)
                                              for r in rows}
                        self._destinations_version = v
                    self._destinations_checked = now
        if not self._destinations:
            return stored_connections.service_destination(destination)
        exact = self._destinations.get(destination)
        if exact is not None:
            return exact
        host = destination.split("://", 1)[-1].rsplit(":", 1)[0]
        return self._destinations.get(host) or stored_connections.service_destination(
            destination)

    def invalidate(self) -> None:
        self._destinations_checked = 0.0
        self._sources_checked = 0.0
        self._ruleset_checked = 0.0
        self._ruleset = None

    def compiled_revision(self, name: str, version: int) -> CompiledRule:
        """The exact rule version an execution was created with."""
        key = (name, version)
        hit = self._revisions.get(key)
        if hit is not None:
            return hit
        with Session(self.db) as s:
            row = s.exec(
                select(RuleRevision).where(
                    RuleRevision.rule_name == name, RuleRevision.version == version
                )
            ).first()
        if row is None:
            raise LookupError(f"rule {name!r} version {version} is not stored")
        with stored_conditions():
            compiled = compile_rule(parse_rule(row.spec))
        if len(self._revisions) > 4096:
            self._revisions.clear()
        self._revisions[key] = compiled
        return compiled

    # -- listing -----------------------------------------------------------------------
    def list_sources(self) -> list[Source]:
        with Session(self.db) as s:
            return list(s.exec(select(Source).order_by(Source.slug)))

    def list_rules(self) -> list[Rule]:
        with Session(self.db) as s:
            return list(s.exec(select(Rule).order_by(Rule.priority.desc(), Rule.name)))  # type: ignore[attr-defined]

    def list_destinations(self) -> list[Destination]:
        with Session(self.db) as s:
            return list(s.exec(select(Destination).order_by(Destination.host)))

    def get_rule(self, name: str) -> Rule | None:
        with Session(self.db) as s:
            return s.exec(select(Rule).where(Rule.name == name)).first()

    def get_source(self, slug: str) -> Source | None:
        with Session(self.db) as s:
            return s.exec(select(Source).where(Source.slug == slug)).first()

    def revisions(self, name: str) -> list[RuleRevision]:
        """Every stored version of a rule, newest first (kept after the rule is deleted)."""
        with Session(self.db) as s:
            return list(s.exec(
                select(RuleRevision).where(RuleRevision.rule_name == name)
                .order_by(RuleRevision.version.desc())  # type: ignore[attr-defined]
            ))

    # -- writing -------------------------------------------------------------------------
    def save(self, sources: list[SourceSpec], rules: list[RuleSpec],
             destinations: Sequence[DestinationSpec] = (), *, actor: str | None = None,
             dry_run: bool = False,
             connections: Sequence[ConnectionSpec] = ()) -> list[Change]:
        """Upsert sources, rules and destinations in one transaction; unchanged ones are
        left alone. A rule whose document changed gets a new version; one that was only
        switched on or off keeps its version (the switch is a history entry).
        ``dry_run``: answer the same changes and write nothing (``hookwise apply``'s and
        the import page's preview)."""
        changes: list[Change] = []
        with Session(self.db, expire_on_commit=False) as s:
            try:
                for src in sources:
                    changes.append(self._upsert_spec(s, Source, "source", src.slug,
                                                     dump_source(src)))
                for rule in rules:
                    changes.append(self._upsert_rule(s, rule, actor=actor))
                for dest in destinations:
                    changes.append(self._upsert_spec(s, Destination, "destination",
                                                     dest.host, dump_destination(dest)))
                for conn in connections:
                    changes.append(Change("connection", conn.name,
                                          stored_connections.upsert(s, conn)))
                if dry_run:
                    s.rollback()
                    return changes
                if any(c.action != "unchanged" for c in changes):
                    bump_version(s)
                s.commit()
            except BaseException:
                s.rollback()
                raise
        self.invalidate()
        return changes

    def rename_rule(self, old: str, spec: RuleSpec, *, actor: str | None = None) -> Change:
        """Rename rule ``old`` to ``spec.name`` (saving ``spec`` as its new version): the
        same row, with its versions, history, match traces and executions carried over
        to the new name. NotFound without ``old``; Conflict when the name is taken."""
        new = spec.name
        with session_scope(self.db) as s:
            row = s.exec(select(Rule).where(Rule.name == old)).first()
            if row is None:
                raise NotFound(f"rule {old!r}")
            if new == old:
                return self._upsert_rule(s, spec, actor=actor)
            if s.exec(select(Rule).where(Rule.name == new)).first() is not None:
                raise Conflict(f"a rule named {new!r} already exists")
            # a deleted rule of that name left versions behind: count on after them
            offset = _next_revision(s, new) - 1
            for table, name_col, version_col in (
                (RuleRevision, "rule_name", "version"), (RuleHistory, "rule_name", "version"),
                (Execution, "rule_name", "rule_version"),
                (MatchTrace, "rule_name", "rule_version"),
            ):
                name_attr, version_attr = getattr(table, name_col), getattr(table, version_col)
                s.execute(update(table).where(name_attr == old)
                          .values({name_col: new, version_col: version_attr + offset}))
            row.name = new
            row.version += offset
            s.add(row)
            s.flush()
            change = self._upsert_rule(s, spec, actor=actor, action=RuleHistoryAction.renamed,
                                       detail=f"renamed from {old}")
            bump_version(s)
        self.invalidate()
        return Change("rule", new, "updated", change.detail)

    def restore_revision(self, name: str, version: int, spec: RuleSpec, *,
                         actor: str | None = None) -> Change:
        """Save ``spec`` (an older version's document, under the rule's current name and
        switch) as a new version noting which one it restores."""
        with session_scope(self.db) as s:
            change = self._upsert_rule(s, spec, actor=actor, action=RuleHistoryAction.restored,
                                       detail=f"restored version {version}")
            if change.action != "unchanged":
                bump_version(s)
        self.invalidate()
        return change

    def revision(self, name: str, version: int) -> RuleRevision | None:
        with Session(self.db) as s:
            return s.exec(select(RuleRevision).where(
                RuleRevision.rule_name == name, RuleRevision.version == version)).first()

    def history(self, name: str) -> list[RuleHistory]:
        """Who changed the rule, what and when, newest first."""
        with Session(self.db) as s:
            return list(s.exec(
                select(RuleHistory).where(RuleHistory.rule_name == name)
                .order_by(RuleHistory.created_at.desc(), RuleHistory.id.desc())  # type: ignore[attr-defined,union-attr]
            ))

    def executions_of(self, names: Sequence[str]) -> dict[str, int]:
        """How many executions each rule has (they outlive the rule)."""
        if not names:
            return {}
        with Session(self.db) as s:
            rows = s.execute(select(Execution.rule_name, func.count())
                             .where(Execution.rule_name.in_(list(names)))  # type: ignore[attr-defined]
                             .group_by(Execution.rule_name)).all()
        return {str(n): int(c) for n, c in rows}

    def delete_rule(self, name: str, *, actor: str | None = None) -> bool:
        """Delete a rule; its versions, history and executions are kept."""
        with session_scope(self.db) as s:
            if not self._delete_rule(s, name, actor):
                return False
            bump_version(s)
        self.invalidate()
        return True

    def delete_source(self, slug: str, *, with_rules: bool = False,
                      actor: str | None = None) -> bool:
        """Delete a source (and, with ``with_rules``, the rules that use it, in the same
        transaction). Conflict while rules use it and ``with_rules`` is false."""
        with session_scope(self.db) as s:
            row = s.exec(select(Source).where(Source.slug == slug)).first()
            if row is None:
                return False
            users = sorted(r.name for r in s.exec(select(Rule).where(Rule.source == slug)))
            if users and not with_rules:
                raise Conflict(f"source {slug!r} is used by rule(s) {', '.join(users)}")
            for name in users:
                self._delete_rule(s, name, actor, detail=f"with its source {slug}")
            s.delete(row)
            bump_version(s)
        self.invalidate()
        return True

    @staticmethod
    def _delete_rule(s: Session, name: str, actor: str | None, detail: str | None = None
                     ) -> bool:
        row = s.exec(select(Rule).where(Rule.name == name)).first()
        if row is None:
            return False
        s.add(RuleHistory(rule_name=name, action=RuleHistoryAction.deleted,
                          version=row.version, actor=actor, detail=detail))
        s.delete(row)
        return True

    def list_connections(self) -> list[Connection]:
        return stored_connections.list_rows(self.db)

    def delete_connection(self, name: str) -> bool:
        return self._delete(select(Connection).where(Connection.name == name))

    def delete_destination(self, host: str) -> bool:
        return self._delete(select(Destination).where(Destination.host == host))

    def _delete(self, query: Any) -> bool:
        """Delete the row ``query`` finds (bumping the version); False if there is none."""
        with session_scope(self.db) as s:
            row = s.exec(query).first()
            if row is None:
                return False
            s.delete(row)
            bump_version(s)
        self.invalidate()
        return True

    @staticmethod
    def _upsert_spec(s: Session, table: Any, kind: str, key: str,
                     data: dict[str, Any]) -> Change:
        """Upsert a row that is a key and a spec document (``Source`` by slug,
        ``Destination`` by host)."""
        key_name = "slug" if table is Source else "host"
        row = s.exec(select(table).where(getattr(table, key_name) == key)).first()
        if row is None:
            s.add(table(**{key_name: key, "spec": data}))
            return Change(kind, key, "created")
        if row.spec == data:
            return Change(kind, key, "unchanged")
        row.spec = data
        row.updated_at = utcnow()
        s.add(row)
        return Change(kind, key, "updated")

    @staticmethod
    def _upsert_rule(s: Session, spec: RuleSpec, *, actor: str | None = None,
                     action: RuleHistoryAction | None = None,
                     detail: str | None = None) -> Change:
        data = dump_rule(spec)
        row = s.exec(select(Rule).where(Rule.name == spec.name)).first()
        if row is None:
            version = _next_revision(s, spec.name)
            if action is None and version > 1:
                detail = "created again after a delete"
            s.add(RuleHistory(rule_name=spec.name, action=action or RuleHistoryAction.created,
                              version=version, actor=actor, detail=detail))
            s.add(
                Rule(
                    name=spec.name,
                    source=spec.source,
                    enabled=spec.enabled,
                    priority=spec.priority,
                    version=version,
                    spec=data,
                )
            )
            s.add(RuleRevision(rule_name=spec.name, version=version, spec=data))
            return Change("rule", spec.name, "created", detail or "")
        if row.spec == data:
            return Change("rule", spec.name, "unchanged")
        changed = changed_fields(row.spec, data)
        row.spec = data
        row.enabled = spec.enabled
        row.updated_at = utcnow()
        if changed == ["enabled"]:
            # a switch, not a new version of what the rule does
            switch = RuleHistoryAction.enabled if spec.enabled else RuleHistoryAction.disabled
            s.add(row)
            s.add(RuleHistory(rule_name=spec.name, action=switch, version=row.version,
                              actor=actor))
            return Change("rule", spec.name, "updated", switch.value)
        row.version = _next_revision(s, spec.name)
        row.source = spec.source
        row.priority = spec.priority
        s.add(row)
        s.add(RuleRevision(rule_name=spec.name, version=row.version, spec=data))
        what = "changed " + ", ".join(changed)
        s.add(RuleHistory(rule_name=spec.name, action=action or RuleHistoryAction.updated,
                          version=row.version, actor=actor,
                          detail=f"{detail}; {what}" if detail else what))
        return Change("rule", spec.name, "updated", what)


def _next_revision(s: Session, name: str) -> int:
    """Versions keep counting across delete and re-create, so revisions stay unique."""
    last = s.exec(
        select(RuleRevision.version)
        .where(RuleRevision.rule_name == name)
        .order_by(RuleRevision.version.desc())  # type: ignore[attr-defined]
    ).first()
    return (last or 0) + 1


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The top-level fields of a rule document that differ, in document order."""
    keys = list(new) + [k for k in old if k not in new]
    return [k for k in keys if old.get(k) != new.get(k)]


def spec_from_row(row: Rule | Source) -> dict[str, Any]:
    return dict(row.spec)


__all__ = ["Catalog", "Change", "parse_rule", "parse_source"]
