"""Carrying events out, in stages that follow the path of one event.

    settings.py   Settings: one frozen object from HOOKWISE_* variables
    errors.py     the engine's error tree (HookwiseError comes from rules.errors)
    runtime.py    Runtime: the process's database engine, Redis, queue, HTTP client, caches
    ingress/      a POST /hooks/<source>: parse, rate limit, verify, dedup, store, queue
    store/        tables, sessions, migrations, statements, event writer, read queries,
                  rule catalog and rule files, conversation state, secrets, accounts
    broker/       Redis: the RQ queue, the inbox, sync-reply wait/publish, liveness,
                  the embedded Redis server
    run/          matching a batch, the delivery threads, the chain runner, the step
                  evaluator shared with the dry run, admission per destination, retry
                  policy, limits, replay/retry/backtest
    actions/      one module per step type (webhook, email, db_write, reply, state)
    outbound/     the guarded HTTP client, the egress guard, outgoing signatures, the
                  per-destination breaker / slow-down / rate limit
    work/         RQ job entry points (the only callers of ``runtime.current()``), the
                  inbox drain loop, the worker, the sweeper

Imports point down this list's stages: ``work`` → ``run`` → ``actions`` → ``outbound`` /
``broker`` / ``store`` → ``settings``/``errors``, and ``ingress`` → ``broker``/``store``.
Nothing here imports ``flask``, ``web`` or ``cli``; ``tests/unit/test_architecture.py``
checks the directions and that no import circle exists.
"""
