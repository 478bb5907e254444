"""Redis: the RQ queue and job wiring (``queue``, job names in ``jobs``), the inbox that
carries new event ids to workers (``inbox``), sync replies (``replies``), process
liveness (``liveness``), turns that could not be queued while Redis was away
(``deferred``) and the embedded Redis server (``embedded``).

May import ``engine.settings`` and ``engine.errors`` only: the broker moves ids and
plain dicts and knows nothing of rules, tables or steps.
"""
