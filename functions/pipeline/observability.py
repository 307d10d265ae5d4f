"""The one place Logger, Tracer and Metrics are created (service name from POWERTOOLS_SERVICE_NAME)."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
# The template sets POWERTOOLS_METRICS_NAMESPACE; the fallback keeps a bare import (tools, tests) working.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DogBreedPipeline"))
