"""A local SageMaker emulator: control plane (JSON 1.1) and runtime (InvokeEndpoint) on 127.0.0.1."""
