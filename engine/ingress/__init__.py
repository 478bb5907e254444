"""A webhook coming in: body parsing (``parsing``), the per-source rate limit
(``ratelimit``), verification (generic schemes in ``schemes``, providers' in
``providers``, combined by ``verify``) and the ingest pipeline (``ingest``) that ends with
the event stored and handed to the broker.

May import ``engine.store``, ``engine.broker``, ``engine.settings``/``errors``/``runtime``
and ``rules``; never ``engine.run``, ``engine.work`` or an HTTP framework.
"""
