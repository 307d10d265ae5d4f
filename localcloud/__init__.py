"""A local cloud for the pipeline: moto, the SageMaker emulator, and the template's Lambdas.

The emulator and the demo share names with training and the Lambda functions through
``dogclf.contract`` (standard library only), imported from the repository's training/ directory.
"""
