"""``python -m harness``: see :mod:`harness.cli`."""

import sys
from pathlib import Path

try:
    from harness.cli import main
except ImportError as exc:  # run with a Python that lacks the harness's dependencies
    root = Path(__file__).resolve().parents[1]
    print(f"error: {exc.name or exc} is not installed for {sys.executable}. Install the "
          f"harness with `make install` in {root} (then use .venv/bin/python), or "
          f"`pip install -e '{root}[onnx]'`", file=sys.stderr)
    sys.exit(2)

sys.exit(main())
