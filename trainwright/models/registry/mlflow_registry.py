"""The model registry of an MLflow tracking server or store (the `mlflow` extra: mlflow-skinny is enough).

A push logs the files and model.json as the artifacts of one run (experiment ``trainwright-registry``), its
metrics as run metrics, and registers them as a new version of the registered model; MLflow numbers the
versions. A ``file:`` tracking URI (MLflow's file store) is accepted: MLFLOW_ALLOW_FILE_STORE is set for it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from trainwright.models.registry.local import CARD_NAME, ModelVersion, copy_version_files, verify_files
from trainwright.models.registry.names import check_name, sha256_of

__all__ = ["MLflowModelRegistry", "EXPERIMENT_NAME"]

EXPERIMENT_NAME = "trainwright-registry"
ARTIFACT_DIR = "model"
_HINT = "install the mlflow extra: pip install 'trainwright[mlflow]'"


class MLflowModelRegistry:
    """Model versions in the MLflow registry at `tracking_uri` (also used as the registry URI)."""

    def __init__(self, tracking_uri: str):
        try:
            from mlflow import MlflowClient
        except ImportError as err:
            raise ImportError(f"mlflow is not installed ({err}); {_HINT}") from None
        if tracking_uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses its file store otherwise
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def __repr__(self) -> str:
        return f"MLflowModelRegistry({self.tracking_uri!r})"

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(EXPERIMENT_NAME)
        return experiment.experiment_id if experiment else self.client.create_experiment(EXPERIMENT_NAME)

    def push(self, name: str, files: Mapping[str, str | os.PathLike] | list, card: Mapping,
             version: str | None = None) -> ModelVersion:
        """Log `files` and the card in a run and register them as the next version of `name`."""
        check_name("model name", name)
        if version is not None:
            raise ValueError(f"version {version!r}: MLflow numbers the versions itself; leave the version unset")
        files = files if isinstance(files, Mapping) else {Path(p).name: p for p in files}
        facts = {}
        for stored, source in files.items():
            check_name("file name", stored)
            if not Path(source).is_file():
                raise FileNotFoundError(f"file to store not found: {source}")
            facts[stored] = {"sha256": sha256_of(source), "bytes": Path(source).stat().st_size}
        run = self.client.create_run(self._experiment_id(), run_name=name, tags={"trainwright.model": name})
        run_id = run.info.run_id
        try:
            with tempfile.TemporaryDirectory() as staging:
                for stored, source in files.items():  # stored names may differ from the source file names
                    shutil.copyfile(source, Path(staging) / stored)
                    self.client.log_artifact(run_id, str(Path(staging) / stored), artifact_path=ARTIFACT_DIR)
            for metric, value in (card.get("metrics") or {}).items():
                if isinstance(value, (int, float)):
                    self.client.log_metric(run_id, _metric_key(metric), float(value))
            # The card goes in before the version is registered, so a registered version always has one; MLflow
            # numbers the version only at registration, so `show` fills the card's version from MLflow.
            full_card = {**dict(card), "name": name, "version": None, "files": facts}
            self.client.log_dict(run_id, full_card, f"{ARTIFACT_DIR}/{CARD_NAME}")
            if not self.client.search_registered_models(filter_string=f"name='{name}'"):
                self.client.create_registered_model(name)
            source_uri = f"{run.info.artifact_uri}/{ARTIFACT_DIR}"
            registered = self.client.create_model_version(name, source=source_uri, run_id=run_id)
            full_card["version"] = str(registered.version)
            self.client.set_terminated(run_id)
        except BaseException:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        return ModelVersion(name, str(registered.version), source_uri, full_card)

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Every registered version (of `name`), sorted by name then version number."""
        if name is not None:
            check_name("model name", name)
        found = self.client.search_model_versions(f"name='{name}'" if name is not None else "")
        versions = sorted(found, key=lambda v: (v.name, int(v.version)))
        return [ModelVersion(v.name, str(v.version), v.source, {}) for v in versions]

    def show(self, name: str, version: str | None = None) -> ModelVersion:
        """One version with its model card (the latest when `version` is None)."""
        versions = self.list(name)
        if version is not None:
            versions = [v for v in versions if v.version == str(version)]
        if not versions:
            what = f"model {name!r}" + (f" version {version!r}" if version is not None else "")
            raise FileNotFoundError(f"{what} is not in the MLflow registry {self.tracking_uri}")
        chosen = versions[-1]
        with tempfile.TemporaryDirectory() as tmp:
            card_path = self._download(f"{chosen.location}/{CARD_NAME}", tmp)
            chosen.card = {**json.loads(Path(card_path).read_text()), "version": chosen.version}
        return chosen

    def pull(self, name: str, version: str | None, destination: str | os.PathLike, overwrite: bool = False) -> Path:
        """Download a version's files and model.json into `destination`, checking every SHA-256 first."""
        chosen = self.show(name, version)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(self._download(chosen.location, tmp))
            verify_files(folder, chosen.card, f"{name} version {chosen.version}")
            return copy_version_files(folder, chosen.card, Path(destination), overwrite)

    def _download(self, artifact_uri: str, destination: str) -> str:
        import mlflow

        return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=destination,
                                                   tracking_uri=self.tracking_uri)


def _metric_key(name: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and spaces; '@' and ':' become '_'."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
