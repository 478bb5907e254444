"""Calls going out: the egress guard that checks every address at connect time
(``egress``), the HTTP client built on it (``http``) and outgoing webhook signatures
(``signing``).

May import ``engine.settings`` and ``engine.errors`` only.
"""
