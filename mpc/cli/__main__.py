"""``python -m mpc.cli`` runs the command line."""

from mpc.cli import main

raise SystemExit(main())
