"""``python -m mash``: the ``mash`` command."""

from mash.cli import main

raise SystemExit(main())
