"""Dog-breed classifier training and serving code (SageMaker script mode).

``layout``, ``contract`` and ``debugger.hook_config`` are standard-library only (the Lambda functions
import them from the training-code layer); every other module needs torch/torchvision and runs in the
training/serving container. The sample-data generator lives outside the package (tools/sample_data.py).
"""
