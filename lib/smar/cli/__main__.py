"""`python -m smar.cli`: the same as the `smar` command."""

import sys

from smar.cli import main

sys.exit(main())
