"""Lambda functions of the dog breed pipeline: handlers are thin, logic lives in the modules here.

Every module imports the training code's shared definitions as ``from dogclf import contract``: the rule
names, artifact names and job-name patterns that training, the local cloud and the CLI share. In Lambda
the TrainingCodeLayer (ContentUri: training/) is extracted to /opt, so the package is /opt/dogclf, but a
Python runtime puts only /opt/python (and its site-packages) on the path, "Layer paths for each Lambda
runtime" in https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html. So this is the one
place that adds ``TRAINING_CODE_DIR`` (/opt) to sys.path: appended, so it never shadows the function's
own modules. Everywhere else (tests, the local cloud, tools) dogclf is installed editable from training/
(the Makefile's EDITABLE_PROJECTS) and the local cloud sets TRAINING_CODE_DIR to that same folder.
"""

import os
import sys

_TRAINING_CODE_DIR = os.environ.get("TRAINING_CODE_DIR", "/opt")
if _TRAINING_CODE_DIR not in sys.path:
    sys.path.append(_TRAINING_CODE_DIR)  # Lambda: the TrainingCodeLayer is at /opt, not /opt/python
