"""``python -m schedulerx`` is the ``schedulerx`` command."""

from schedulerx.cli.main import main

raise SystemExit(main())
