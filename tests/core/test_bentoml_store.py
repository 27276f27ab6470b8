"""BentoML's private store API, which lakehouse/ml/bentoml_store.py wraps, still does what the registry needs."""

from __future__ import annotations

from pathlib import Path

import bentoml

from lakehouse.ml import bentoml_store

UPGRADE_HINT = "BentoML changed its private model-store API: update lakehouse/ml/bentoml_store.py"


def test_a_model_store_of_our_own_holds_what_bentoml_models_saves_there(tmp_path):
    store = bentoml_store.model_store(tmp_path / "models")
    try:
        with bentoml.models.create(name="probe_model", _model_store=store) as model:
            Path(model.path_of("model.txt")).write_text("probe")
        listed = [str(m.tag) for m in bentoml.models.list(_model_store=store)]
    except TypeError as e:  # a removed _model_store keyword, or a changed ModelStore signature
        raise AssertionError(f"{UPGRADE_HINT}: {e}") from e
    assert listed == [str(model.tag)], UPGRADE_HINT
    assert (tmp_path / "models" / "probe_model").is_dir(), UPGRADE_HINT


def test_the_default_store_can_be_pointed_at_a_data_root(tmp_path):
    from bentoml._internal.configuration.containers import BentoMLContainer

    store = bentoml_store.model_store(tmp_path / "models")
    with bentoml.models.create(name="probe_model", _model_store=store) as model:
        pass
    before_home, before_store = BentoMLContainer.bentoml_home.get(), BentoMLContainer.model_store.get()
    try:
        bentoml_store.set_default_store(tmp_path, store)
        assert BentoMLContainer.bentoml_home.get() == str(tmp_path), UPGRADE_HINT
        # What BentoModel(tag) in a service resolves in: the public API, no store passed.
        assert bentoml.models.get(str(model.tag)).tag == model.tag, UPGRADE_HINT
    finally:
        BentoMLContainer.bentoml_home.set(before_home)
        BentoMLContainer.model_store.set(before_store)
