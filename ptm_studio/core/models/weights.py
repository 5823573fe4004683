"""Where starting weights come from: the ImageNet cache, a user's file, or an earlier run."""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.request
import urllib.response
from collections.abc import Callable
from pathlib import Path
from typing import IO

from torchvision.models import get_model_weights

from ptm_studio.core.atomic_io import atomic_writer
from ptm_studio.core.checkpoints import MODEL_FILE
from ptm_studio.core.config import ModelConfig
from ptm_studio.core.file_reading import MAX_WEIGHTS_FILE_BYTES, open_for_reading
from ptm_studio.core.models.catalogue import STATUS_AVAILABLE_OFFLINE as STATUS_AVAILABLE_OFFLINE
from ptm_studio.core.models.catalogue import STATUS_NEEDS_DOWNLOAD as STATUS_NEEDS_DOWNLOAD
from ptm_studio.core.models.catalogue import STATUS_NOT_AVAILABLE as STATUS_NOT_AVAILABLE
from ptm_studio.core.models.catalogue import imagenet_spec, imagenet_weights_path
from ptm_studio.core.models.catalogue import imagenet_status as imagenet_status
from ptm_studio.core.models.classifier import ImageClassifier
from ptm_studio.core.models.errors import ModelError, WeightsError
from ptm_studio.core.models.registry import BackboneSpec
from ptm_studio.core.models.safe_load import LoadReport, apply_state_dict, load_state_dict_file
from ptm_studio.core.run_models import NoSavedModel, UnusableCheckpoints, model_checkpoint
from ptm_studio.core.runs import resolve_run_folder

ProgressCallback = Callable[[int, int], None]

# Seconds a connection attempt or a single read may stall before the download gives up;
# urlopen's own timeout, so no process-wide socket default is changed.
DOWNLOAD_TIMEOUT_SECONDS = 30.0
_DOWNLOAD_CHUNK_BYTES = 1024 * 1024
# torch.hub's convention: the file name carries the start of its sha256 after a dash.
_HASH_IN_FILENAME = re.compile(r"-([a-f0-9]*)\.")


def imagenet_weights_url(name: str) -> str:
    """The torchvision download address of the default ImageNet weights for ``name``."""
    return get_model_weights(imagenet_spec(name).torchvision_name).DEFAULT.url


def load_imagenet_weights(
    model: ImageClassifier,
    *,
    allow_download: bool = False,
    progress: ProgressCallback | None = None,
) -> LoadReport:
    """Load the ImageNet backbone weights; the head keeps its fresh weights.

    Offline-first: without ``allow_download`` a missing file is a WeightsError, never a
    download. A cached file is checked against the hash in its name before use.
    """
    spec = imagenet_spec(model.backbone_name)
    path = imagenet_weights_path(spec.name)
    expected_hash = _expected_hash_prefix(path)
    if path.is_file():
        _verify_cached_hash(spec, path, expected_hash)
    elif allow_download:
        _download(spec, imagenet_weights_url(spec.name), path, expected_hash, progress)
    else:
        raise WeightsError(
            f"ImageNet weights for {spec.display_name} are not on this computer and PTM Studio "
            "is offline-first.",
            advice=(
                f"Tick 'Download' (needs internet{_size_text(spec)}) or choose 'random' or a file."
            ),
            path=path,
        )
    state_dict = load_state_dict_file(path)
    return apply_state_dict(model, state_dict, source=f"ImageNet weights for {spec.display_name}")


def load_run_weights(model: ImageClassifier, run_dir: Path) -> LoadReport:
    """Load the model an earlier run saved (its best checkpoint, else its last one)."""
    run_folder = Path(run_dir)
    try:
        folder = model_checkpoint(run_folder)
    except UnusableCheckpoints as error:
        # Say why (made with a newer PTM Studio, damaged…) rather than "no saved model".
        raise WeightsError(
            f"No usable saved model was found in the run folder '{run_folder}': {error}.",
            advice="Choose another run, or start from other weights.",
            path=run_folder,
        ) from error
    except NoSavedModel as error:
        raise WeightsError(
            f"No saved model was found in the run folder '{run_folder}'.",
            advice=(
                "Choose a run that finished at least one epoch (it has "
                "checkpoints/best/model.safetensors or checkpoints/last/model.safetensors)."
            ),
            path=run_folder,
        ) from error
    state_dict = load_state_dict_file(folder / MODEL_FILE)
    source = f"run '{run_folder.name}' ({folder.name} checkpoint)"
    return apply_state_dict(model, state_dict, source=source)


def load_initial_weights(
    model: ImageClassifier,
    model_config: ModelConfig,
    *,
    progress: ProgressCallback | None = None,
) -> LoadReport | None:
    """Load the starting weights ``model_config.weights`` asks for; ``None`` for random."""
    source = model_config.weights
    if source == "random":
        return None
    if source == "imagenet":
        return load_imagenet_weights(
            model, allow_download=model_config.allow_download, progress=progress
        )
    if source in ("file", "run"):
        if not model_config.weights_path:
            raise WeightsError(
                f"Starting weights '{source}' need a path, but none was chosen.",
                advice="Choose a weights file or an earlier run folder.",
            )
        path = Path(model_config.weights_path).expanduser()
        if source == "run":
            return load_run_weights(model, resolve_run_folder(str(model_config.weights_path)))
        return apply_state_dict(model, load_state_dict_file(path), source=f"'{path.name}'")
    raise ModelError(f"Unknown weights source {source!r}: expected random, imagenet, file or run.")


def _size_text(spec: BackboneSpec) -> str:
    assert spec.torchvision_name is not None
    megabytes = get_model_weights(spec.torchvision_name).DEFAULT.meta.get("_file_size")
    return f", about {round(megabytes)} MB" if isinstance(megabytes, int | float) else ""


def _expected_hash_prefix(path: Path) -> str | None:
    match = _HASH_IN_FILENAME.search(path.name)
    return match.group(1) if match and match.group(1) else None


def _verify_cached_hash(spec: BackboneSpec, path: Path, expected_hash: str | None) -> None:
    # torch.hub checks the hash only while downloading; a file damaged later (disk error,
    # interrupted copy) would otherwise load silently or fail with an obscure error.
    if expected_hash is None:
        return
    digest = hashlib.sha256()
    with open_for_reading(path, max_bytes=MAX_WEIGHTS_FILE_BYTES) as handle:
        while chunk := handle.read(_DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
    if not digest.hexdigest().startswith(expected_hash):
        raise WeightsError(
            f"The cached ImageNet weights for {spec.display_name} are damaged (hash mismatch).",
            advice=f"Delete {path} and download again.",
            path=path,
        )


def _download(
    spec: BackboneSpec,
    url: str,
    path: Path,
    expected_hash: str | None,
    progress: ProgressCallback | None,
) -> None:
    """Stream ``url`` into ``path`` atomically, checking the hash before the file appears."""
    try:
        with (
            atomic_writer(path) as handle,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,
        ):
            digest = _copy_with_progress(response, handle, progress)
            if expected_hash is not None and not digest.startswith(expected_hash):
                # Raised inside the writer, so the temp file is removed and nothing replaced.
                raise WeightsError(
                    f"The download of ImageNet weights for {spec.display_name} arrived damaged "
                    "(hash mismatch).",
                    advice="Try again; if it keeps failing, the network may alter downloads.",
                    path=path,
                )
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise WeightsError(
            f"Could not download ImageNet weights for {spec.display_name} (no internet?): {error}.",
            advice="Check the internet connection and try again, or choose 'random' or a file.",
            path=path,
        ) from error


def _copy_with_progress(
    response: http.client.HTTPResponse | urllib.response.addinfourl,
    handle: IO[bytes],
    progress: ProgressCallback | None,
) -> str:
    total = int(response.headers.get("Content-Length") or 0)
    digest = hashlib.sha256()
    done = 0
    if progress is not None:
        progress(0, total)
    while chunk := response.read(_DOWNLOAD_CHUNK_BYTES):
        handle.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    return digest.hexdigest()
