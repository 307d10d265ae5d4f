"""Dog-breed classifier training and serving code (SageMaker script mode).

``layout`` and ``sample_data`` are torch-free (the ingest Lambda and the demo import them); every
other module needs torch/torchvision and runs in the training/serving container.
"""
