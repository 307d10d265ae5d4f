"""Lambda functions of the dog breed pipeline: handlers are thin, logic lives in the modules here.

The training-code layer (``TRAINING_CODE_DIR``: /opt in Lambda, training/ locally) is made importable
here, once, so every module can ``from dogclf import contract``: the rule names, artifact names and
job-name patterns that training, the local cloud and the CLI share. Lambda itself puts only
/opt/python on sys.path, not /opt. Appended, so it never shadows the function's own modules.
"""

import os
import sys

_TRAINING_CODE_DIR = os.environ.get("TRAINING_CODE_DIR", "/opt")
if _TRAINING_CODE_DIR not in sys.path:
    sys.path.append(_TRAINING_CODE_DIR)
