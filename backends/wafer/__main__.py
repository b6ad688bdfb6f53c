"""``python -m backends.wafer``: plan models on a simulated wafer without LoadGen."""

import sys

from backends.wafer.cli import main

sys.exit(main())
