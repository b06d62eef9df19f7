"""``python -m vlmref ...`` is the ``vlmref`` command, e.g. ``python -m vlmref list models``."""

from vlmref.cli.main import main

raise SystemExit(main())
