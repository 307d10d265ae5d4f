"""Small adapters around the AWS calls (and the training-code layer) the pipeline makes."""
