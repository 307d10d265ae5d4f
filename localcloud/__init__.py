"""A local cloud for the pipeline: moto, the SageMaker emulator, and the template's Lambdas."""
