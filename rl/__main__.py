"""``python -m rl`` (and ``torchrun -m rl``) runs the CLI."""

import sys

from rl.cli import main

sys.exit(main())
