"""Calls going out: the egress guard that checks every address at connect time
(``egress``), the HTTP client built on it (``http``), outgoing webhook signatures
(``signing``), what a destination is (``destinations``) and each destination's circuit
breaker, slow-down and rate limit, shared by every worker through Redis (``guard``),
and where this instance listens, so its own request inspector can be told apart
(``instance``).

May import ``engine.settings`` and ``engine.errors`` only (and take a Redis client).
"""
