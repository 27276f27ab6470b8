"""Sensors: the landing sensor requests one run per new landing file, keyed by its content hash."""

import json

import dagster as dg

from assets.ingestion import bronze_key
from assets.resources import LakehouseResource
from lakehouse.domain import Domain
from lakehouse.ingestion import landing_files, manifest, rejected_files, sha256_file


def landing_job_name(domain: Domain, source: str) -> str:
    return f"{domain.name}_{source}_landing_job"


def landing_jobs(domain: Domain) -> list:
    """Per source: ingest a file and refresh everything downstream up to the online store."""
    serving = dg.AssetSelection.groups(*(f"{domain.name}_{g}" for g in
                                         ("ingestion", "validation", "silver", "features", "feature_store")))
    return [
        dg.define_asset_job(
            landing_job_name(domain, s.name),
            selection=dg.AssetSelection.assets(bronze_key(domain, s)).downstream() & serving,
            description=f"Ingest new {s.name} files and refresh silver, features and the online store.",
        )
        for s in domain.sources
    ]


def landing_sensor(domain: Domain, jobs: list) -> dg.SensorDefinition:
    """Watch data/landing/<source>/ and request one run per new file (run key = source + SHA-256)."""

    @dg.sensor(
        name=f"{domain.name}_landing_sensor",
        jobs=jobs,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One run per new landing file, deduplicated by content hash.",
    )
    def _sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
        paths = lakehouse.paths
        # The cursor caches hashes by (size, mtime) so unchanged files are not re-read every tick.
        seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
        requests, skipped = [], 0
        for source in domain.sources:
            known = {r["sha256"] for r in manifest(paths, source.name) + rejected_files(paths, source.name)}
            for path in landing_files(paths, source.name):
                stat = path.stat()
                cached = seen.get(str(path))
                if cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
                    sha = cached[2]
                else:
                    sha = sha256_file(path)
                    seen[str(path)] = [stat.st_size, stat.st_mtime_ns, sha]
                if sha in known:
                    skipped += 1
                    continue
                requests.append(dg.RunRequest(
                    run_key=f"{source.name}:{sha}",
                    job_name=landing_job_name(domain, source.name),
                    run_config={"ops": {bronze_key(domain, source).to_python_identifier():
                                        {"config": {"files": [str(path)]}}}},
                    tags={"lakehouse/source": source.name, "lakehouse/file": path.name, "lakehouse/sha256": sha},
                ))
        context.update_cursor(json.dumps(seen))
        if not requests:
            return dg.SkipReason(f"no new landing files ({skipped} already ingested or rejected)")
        return requests

    return _sensor
