"""Developer tooling: the ``mash`` command (replay, simulate, whatif, topics).

Entry point :func:`services.tools.cli.main`; also ``python -m services.tools``.
"""
