"""Finish or discard the dlt load packages a killed run left behind, whatever step it died in.

A dlt package moves through folders of the pipeline's working dir, each move one rename:

| left behind by a kill in | on disk | what recovery does |
|---|---|---|
| extract | `normalize/<tmp>/new/<id>` (a half-written package) | deleted: its data was never committed and its state never saved |
| between extract and normalize | `normalize/extracted/<id>` | normalized, then loaded |
| normalize, before its rename | `normalize/extracted/<id>` + `load/new/<id>` | normalized again (dlt rewrites `load/new/<id>`) |
| normalize, after its rename | `normalize/extracted/<id>` + `load/normalized/<id>` | the extracted copy is deleted: the normalized one is complete |
| load | `load/normalized/<id>` (some jobs done) | loaded: dlt resumes the remaining jobs |

A package that cannot be normalized or loaded at all is aborted with dlt's `abort_packages`, which also
rewinds the pipeline's local state (an incremental cursor) to before that package, so its rows are
requested again by the run instead of being skipped for good. A full or read-only disk is not such a
failure: the package is kept for the next run and the error is raised for the command to report.

Only call this while holding the dataset's ingest lock: another process may be extracting otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    """What `recover_packages` found and did, for the command's summary."""

    orphan_extracts: list[str] = field(default_factory=list)
    duplicate_extracted: list[str] = field(default_factory=list)
    normalized: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def acted(self) -> bool:
        return bool(
            self.orphan_extracts or self.duplicate_extracted or self.normalized or self.loaded or self.aborted
        )

    def describe(self) -> str:
        parts = []
        if self.orphan_extracts:
            parts.append(f"{len(self.orphan_extracts)} half-extracted package(s) deleted")
        if self.duplicate_extracted:
            parts.append(f"{len(self.duplicate_extracted)} already-normalized package(s) cleaned")
        if self.normalized:
            parts.append(f"{len(self.normalized)} package(s) normalized")
        if self.loaded:
            parts.append(f"{len(self.loaded)} package(s) loaded")
        if self.aborted:
            parts.append(f"{len(self.aborted)} package(s) aborted and their state rewound")
        return ", ".join(parts) or "nothing to recover"


def _orphan_extract_dirs(pipeline: Any) -> list[str]:
    """Temporary extract folders (`normalize/<8 chars>/`) of runs that died inside extract."""
    storage = pipeline._get_normalize_storage()
    root = storage.storage.storage_path
    if not os.path.isdir(root):
        return []
    keep = {"extracted"}
    return sorted(
        os.path.join(root, name)
        for name in os.listdir(root)
        if name not in keep and os.path.isdir(os.path.join(root, name))
    )


def recover_packages(pipeline: Any) -> Recovery:
    """Bring every pending package of `pipeline` to an end: loaded, or aborted with its state rewound."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    report = Recovery()
    for folder in _orphan_extract_dirs(pipeline):
        shutil.rmtree(folder, ignore_errors=True)
        report.orphan_extracts.append(os.path.basename(folder))

    extracted = set(pipeline.list_extracted_load_packages())
    if extracted:
        load_storage = pipeline._get_load_storage()
        done: set[str] = set()
        if load_storage.is_storage_ready():
            done = set(load_storage.list_normalized_packages()) | set(load_storage.list_loaded_packages())
        normalize_storage = pipeline._get_normalize_storage()
        # normalize's commit is "rename load/new/<id> to load/normalized/<id>, then delete the extracted
        # package": a kill between the two leaves both; the renamed one is whole
        for load_id in sorted(extracted & done):
            normalize_storage.extracted_packages.delete_package(load_id)
            report.duplicate_extracted.append(load_id)
        pending = sorted(extracted - done)
        if pending:
            try:
                pipeline.normalize()
                report.normalized.extend(pending)
            except PipelineStepFailed as exc:
                _raise_storage_error(exc)
                report.errors.append(f"normalize: {exc.exception}")
                _abort(pipeline, report)

    if pipeline.list_normalized_load_packages():
        normalized = list(pipeline.list_normalized_load_packages())
        try:
            pipeline.load()
            report.loaded.extend(normalized)
        except PipelineStepFailed as exc:
            _raise_storage_error(exc)
            report.errors.append(f"load: {exc.exception}")
            _abort(pipeline, report)
    if report.acted:
        log.info("pipeline %s: %s", pipeline.pipeline_name, report.describe())
    return report


def _raise_storage_error(exc: BaseException) -> None:
    """A full or read-only disk is not the package's fault: keep it for the next run, stop this one."""
    from loaders.storage_errors import storage_error

    error = storage_error(exc)
    if error is not None:
        raise error from None


def _abort(pipeline: Any, report: Recovery) -> None:
    """Give up on every pending package through dlt, rewinding local state to before the oldest one."""
    pending = [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
    try:
        pipeline.abort_packages()
    except Exception as exc:  # the abort itself failed: drop the packages so the dataset is not wedged
        log.warning("aborting pending packages failed (%s); deleting them", exc)
        pipeline._delete_pending_packages()
    report.aborted.extend(pending)
