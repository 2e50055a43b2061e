"""``python -m lib_train_tools.train``: see ``cli.py``."""

import sys

from .cli import main

sys.exit(main())
