"""Benchmarks of margin-async against a hand-written baseline and peer libraries.

Run them all with ``python -m benchmarks`` (``--quick`` for a run under two minutes).
Every network benchmark talks to :class:`~margin_async.testing.FakeKuCoin` running in a
separate process on loopback (see :mod:`benchmarks.server`), and every ratio compares
contenders measured in the same run, in interleaved rounds. See ``benchmarks/README.md``.
"""
