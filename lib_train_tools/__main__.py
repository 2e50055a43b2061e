"""``python -m lib_train_tools``: the standalone app (see ``app.py``)."""

import sys

from .app import main

sys.exit(main())
