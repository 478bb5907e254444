"""Worker processes: the RQ job entry points (``jobs``: the only callers of
``runtime.current()``), the inbox drain loop (``drain``), the RQ worker with its
scheduler (``worker``) and the sweeper that re-queues what a crash left open
(``sweeper``).

May import anything in ``engine``; nothing in ``engine`` imports ``work``.
"""
