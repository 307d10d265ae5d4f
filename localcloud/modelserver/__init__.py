"""The local endpoint's model server: AWS's own serving stack (TorchServe + sagemaker-inference).

``python -m localcloud.modelserver``, run by the base interpreter that plays the SageMaker PyTorch
inference image, starts it the way the image's entrypoint does; see ``launcher``.
"""
