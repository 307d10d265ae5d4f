"""One botocore data loader per test process, so that each service model is parsed once.

Every ``boto3.Session`` gets a fresh botocore ``Loader`` (``botocore.session.Session._register_data_loader``
calls ``botocore.loaders.create_loader``), and a loader caches what it parses only for itself
(``botocore.loaders.instance_cache``). Lambda code builds its clients once per execution environment,
so on AWS that parse happens once per cold start; the tests import the handlers afresh and build
moto clients per test, and parsing the JSON of the service models, endpoints and rule sets took
62 of the 140 seconds of tests/functions (cProfile: ``json.decoder.raw_decode``, 5,701 calls).

Here sessions that ask for the same data path share one loader, as the clients of one session
already do: the parsed models are read-only to botocore (one session hands the same objects to every
client it builds). boto3 appends its resource-model folder to its session's loader on every
``boto3.Session`` (``boto3.session.Session._setup_loader``); the shared loader keeps each folder once.
"""

from __future__ import annotations

from typing import Any

import botocore.loaders
import botocore.session

_create_loader = botocore.loaders.create_loader
_loaders: dict[Any, botocore.loaders.Loader] = {}


class _FolderList(list[str]):
    """A loader's search path that ignores a folder it already has (boto3 appends one per session)."""

    def append(self, folder: str) -> None:
        if folder not in self:
            super().append(folder)


def _shared_loader(search_path_string: Any = None) -> botocore.loaders.Loader:
    loader = _loaders.get(search_path_string)
    if loader is None:
        loader = _create_loader(search_path_string)
        loader._search_paths = _FolderList(loader.search_paths)  # see _FolderList
        _loaders[search_path_string] = loader
    return loader


def share_data_loaders() -> None:
    """From now on, botocore sessions in this process share one loader per data path."""
    botocore.session.create_loader = _shared_loader
