"""``python -m localcloud.demo``: the whole pipeline, locally (localcloud/demo/main.py)."""

import sys

from localcloud.demo.main import main

sys.exit(main())
