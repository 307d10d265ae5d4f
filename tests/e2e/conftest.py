import sys
from pathlib import Path

# localcloud/ and cli/ live at the repository root.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
# dogclf.contract (the names the checks use), as localcloud/__init__.py finds it.
if str(REPO_ROOT / "training") not in sys.path:
    sys.path.append(str(REPO_ROOT / "training"))
