"""User CLI: python -m cli --help.

Job-name patterns and artifact names come from ``dogclf.contract`` (standard library only), in the
repository's training/ directory.
"""

import sys
from pathlib import Path

_TRAINING_DIR = str(Path(__file__).resolve().parent.parent / "training")
if _TRAINING_DIR not in sys.path:
    sys.path.append(_TRAINING_DIR)
