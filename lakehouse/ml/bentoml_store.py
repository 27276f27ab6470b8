"""The two private BentoML APIs the model registry needs, in one place.

BentoML's public `bentoml.models` calls use one process-wide model store, fixed from BENTOML_HOME at
first use; a data root is chosen at run time and tests use one per test, so the registry passes its
own `ModelStore` to every call, and `bentoml serve` (which fixes the default before it imports the
service) is re-pointed at the data root's store. Neither has a public API in BentoML 1.4:
tests/test_bentoml_store.py fails loudly when an upgrade moves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def model_store(folder: Path) -> Any:
    """A BentoML model store rooted at folder (bentoml._internal.models.ModelStore)."""
    from bentoml._internal.models import ModelStore

    return ModelStore(str(folder))


def set_default_store(home: Path, store: Any) -> None:
    """Make home and store BentoML's process-wide defaults (what BentoModel(tag) resolves in)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.bentoml_home.set(str(home))
    BentoMLContainer.model_store.set(store)
