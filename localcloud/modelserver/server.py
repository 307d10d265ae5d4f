"""Serve one model the way the SageMaker PyTorch inference container does.

The inference module (``<model_dir>/code/<entry point>``) provides ``model_fn(model_dir)``, called
once, and optionally ``input_fn(body, content_type)``, ``predict_fn(data, model)`` and
``output_fn(prediction, accept)``; missing ones fall back to JSON/NPY defaults like the container's.
Bad input (the module's InvalidInputError / UnsupportedContentTypeError, or any ValueError) -> 4xx
with the message; anything else -> 500. Both keep the server up.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger("localcloud.modelserver")


class ModelHandlers:
    """The four handler functions, the module's own where it defines them."""

    def __init__(self, module: ModuleType, model_dir: Path) -> None:
        if not hasattr(module, "model_fn"):
            raise RuntimeError(f"{module.__file__} defines no model_fn(model_dir)")
        self.module = module
        self.model = module.model_fn(str(model_dir))
        # Serve requests one forward pass at a time only if the module asks for it.
        self.lock = threading.Lock() if getattr(module, "SERIALIZE_PREDICTIONS", False) else None

    def input_fn(self, body: bytes, content_type: str) -> Any:
        if hasattr(self.module, "input_fn"):
            return self.module.input_fn(body, content_type)
        import numpy as np
        import torch

        if content_type.startswith("application/json"):
            return torch.tensor(json.loads(body))
        if content_type.startswith("application/x-npy"):
            return torch.from_numpy(np.load(io.BytesIO(body), allow_pickle=False))
        raise DefaultUnsupportedContentTypeError(
            f"Content type {content_type} is not supported by the default input_fn"
        )

    def predict_fn(self, data: Any) -> Any:
        if hasattr(self.module, "predict_fn"):
            return self.module.predict_fn(data, self.model)
        import torch

        with torch.no_grad():
            return self.model(data)

    def output_fn(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        if hasattr(self.module, "output_fn"):
            result = self.module.output_fn(prediction, accept)
            content_type = accept if accept and accept != "*/*" else "application/json"
            if isinstance(result, tuple):  # (body, content_type), as some containers allow
                result, content_type = result
            return (result.encode() if isinstance(result, str) else bytes(result)), content_type
        if hasattr(prediction, "tolist"):
            prediction = prediction.tolist()
        return json.dumps(prediction).encode(), "application/json"

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        data = self.input_fn(body, content_type)
        if self.lock:
            with self.lock:
                prediction = self.predict_fn(data)
        else:
            prediction = self.predict_fn(data)
        return self.output_fn(prediction, accept)


class DefaultUnsupportedContentTypeError(ValueError):
    status = 415


def client_error_status(error: BaseException) -> int | None:
    """4xx for input errors: the module's own exception classes by name, or any ValueError."""
    name = type(error).__name__
    if name == "UnsupportedContentTypeError" or isinstance(error, DefaultUnsupportedContentTypeError):
        return 415
    if name == "InvalidInputError" or isinstance(error, ValueError):
        return 400
    return None


def load_module(code_dir: Path, entry_point: str) -> ModuleType:
    path = code_dir / entry_point
    if not path.exists():
        raise FileNotFoundError(f"inference entry point {path} not found in model.tar.gz's code/")
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(Path(entry_point).stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _Handler(BaseHTTPRequestHandler):
    server: ModelHTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, the client's delayed ACK adds ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, b"{}", "application/json")
        else:
            self._send(404, b'{"message": "not found"}', "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path != "/invocations":
            self._send(404, b'{"message": "not found"}', "application/json")
            return
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        accept = self.headers.get("Accept", "application/json")
        started = time.perf_counter()
        try:
            payload, response_type = self.server.handlers.invoke(body, content_type, accept)
        except Exception as error:
            status = client_error_status(error)
            if status is None:
                logger.error("prediction failed:\n%s", traceback.format_exc())
                status = 500
            message = json.dumps({"error": type(error).__name__, "message": str(error)}).encode()
            self._send(status, message, "application/json")
            return
        logger.debug("invocation took %.1f ms", (time.perf_counter() - started) * 1000)
        self._send(200, payload, response_type)


class ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handlers: ModelHandlers) -> None:
        super().__init__(address, _Handler)
        self.handlers = handlers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--entry-point", default="inference.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = load_module(args.model_dir / "code", args.entry_point)
    handlers = ModelHandlers(module, args.model_dir)
    server = ModelHTTPServer((args.host, args.port), handlers)
    logger.info("serving %s on %s:%d", args.model_dir, args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
