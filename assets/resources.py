"""Resources: where the lake lives and how to reach its Feast feature store."""

from pathlib import Path
from typing import Any

import dagster as dg

from lakehouse.paths import LakePaths


class LakehouseResource(dg.ConfigurableResource):
    """The lake's data root; empty means $LAKEHOUSE_DATA_ROOT or the repository's data/ folder."""

    data_root: str = ""

    @property
    def paths(self) -> LakePaths:
        return LakePaths(Path(self.data_root).resolve()) if self.data_root else LakePaths.from_env()

    def feature_store(self) -> Any:
        """Feast's FeatureStore for this data root."""
        from lakehouse.feature_store.feast_objects import feature_store

        return feature_store(self.paths)
