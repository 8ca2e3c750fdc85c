"""``python -m lakekit`` runs the command line (same as the ``lakekit`` script)."""

import sys

from lakekit.cli import main

sys.exit(main())
