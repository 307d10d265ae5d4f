"""Developer tools that are not shipped with the training code (the sample-data generator)."""
