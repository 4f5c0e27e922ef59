"""``python -m services.tools``: the ``mash`` command."""

from services.tools.cli import main

raise SystemExit(main())
