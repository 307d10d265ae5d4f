"""A SageMaker-style model server (GET /ping, POST /invocations) around an inference module.

Runs in the training interpreter (stdlib + what .venv-training has):
    python -m localcloud.modelserver --model-dir DIR --port N [--entry-point inference.py]
"""
