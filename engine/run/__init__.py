"""Carrying out what matched.

    batch        match a batch of stored events, create executions (``executions``), hand
                 each chain to a submit function
    dispatch     a worker's delivery threads: many chains in flight, a fair share per
                 destination, chains parked while their destination's share is in use
    chain        the chain runner: one checkpointed step at a time (``outcomes``,
                 progress written by ``record``)
    steps        the one step evaluator shared with the dry run: skip reason, template
                 context, bounded rendering, what of a step is recorded
    admission    what a call passes first: breaker, slow-down, rate limit, share
    retry        the retry schedule; ``limits`` bounds rendering CPU time in any thread
    release      releasing a waiting caller when no reply will come
    dryrun       what a rule would do, with no side effects
    replay       replay, retry, backtest: what people do to runs

May import ``engine.actions``, ``engine.store``, ``engine.broker``, ``engine.outbound``,
``engine.runtime`` and ``rules``; never ``engine.work`` or ``engine.ingress``.
"""
