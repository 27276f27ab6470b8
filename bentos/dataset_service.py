"""Any dataset's champion behind HTTP: `bentoml serve bentos.dataset_service:DatasetService --arg dataset=NAME`.

`lakehouse serve NAME` runs exactly that. The dataset comes from the `dataset` bento argument (or
$LAKEHOUSE_DATASET); its declaration from datasets/NAME.yaml. The endpoints are in bentos/README.md.
"""

import os

import bentoml

from bentos.service import make_service
from lakehouse.domains import get_domain

DATASET = getattr(bentoml.use_arguments(), "dataset", None) or os.environ.get("LAKEHOUSE_DATASET")
if not DATASET:
    raise RuntimeError(
        "which dataset? start with `--arg dataset=NAME` (or set LAKEHOUSE_DATASET), e.g. `lakehouse serve NAME`"
    )

DatasetService = make_service(get_domain(DATASET), example_id=None, port=3002)
