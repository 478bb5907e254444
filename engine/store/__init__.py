"""The record: everything Hookwise keeps in its database.

Tables (``models``), engines and sessions (``db``, SQLite's write turns in
``sqlite_turns``) and migrations (``migrations/``), prebuilt statements for the hot
paths (``statements``), ingest's group commit (``event_writer``), read queries for the
API and UI (``queries``), the rule catalog and rule files (``catalog``, ``rule_files``),
per-conversation state (``conversations``), encrypted secrets (``secrets``) and users
and API tokens (``accounts``).

May import ``engine.settings``, ``engine.errors`` and ``rules``; no Redis, no HTTP.
"""
