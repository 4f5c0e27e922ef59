"""Developer tooling: the ``mash`` command (replay, simulate, whatif, topics).

Entry point :func:`mash.cli.main`; also ``python -m mash``.
"""
