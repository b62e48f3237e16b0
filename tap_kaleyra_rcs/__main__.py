"""``python -m tap_kaleyra_rcs``: the same as the ``tap-kaleyra-rcs`` command."""

import sys

from tap_kaleyra_rcs.cli import main

sys.exit(main())
