"""Carrying out what matched: the batch matcher that claims events and creates their
executions (``batch``), the chain runner (``chain``), the one step evaluator that the
worker and the dry run share (``steps``), their template context (``context``), retry
policy (``retry``), rendering limits (``limits``), the release of a waiting caller when
no reply will come (``release``), dry runs (``dryrun``) and what people do to runs
(``replay``: replay, retry, backtest).

May import ``engine.actions``, ``engine.store``, ``engine.broker``, ``engine.outbound``,
``engine.runtime`` and ``rules``; never ``engine.work`` or ``engine.ingress``.
"""
