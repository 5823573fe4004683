"""Fit a state dict onto an ImageClassifier: all or nothing, with a plain-language report."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ptm_studio.core.models.classifier import ImageClassifier
from ptm_studio.core.models.errors import ModelError, WeightsError
from ptm_studio.core.models.registry import classifier_path, get_backbone_spec
from ptm_studio.core.models.state_dicts import check_finite, shorten_names, strip_wrapper_prefixes

BACKBONE_PREFIX = "backbone."
HEAD_PREFIX = "head."
_MAX_PROBLEMS_SHOWN = 10
# Old checkpoints lack this BatchNorm counter; PyTorch fills it in, so its absence is harmless.
_OPTIONAL_KEY_SUFFIX = "num_batches_tracked"

ShapeMismatch = tuple[str, tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class LoadReport:
    """What a successful load did. ``shape_mismatches`` items are (key, file shape, model shape).

    ``head_reinitialised`` is True when the head did not come from the file (the file has no
    head, or one for another number of classes): it keeps its fresh random weights.
    """

    source: str
    loaded_keys: int
    missing_keys: tuple[str, ...]
    unexpected_keys: tuple[str, ...]
    shape_mismatches: tuple[ShapeMismatch, ...]
    head_reinitialised: bool

    def summary(self) -> str:
        lines = [f"Loaded {self.loaded_keys} weight tensors from {self.source}."]
        if self.head_reinitialised:
            lines.append(self._head_sentence())
        if self.unexpected_keys:
            lines.append(
                f"Left out {len(self.unexpected_keys)} entries of the file that have no place in "
                f"this model: {shorten_names(list(self.unexpected_keys))}."
            )
        kept = [key for key in self.missing_keys if not key.startswith(HEAD_PREFIX)]
        if kept:
            lines.append(
                f"{len(kept)} entries are not in the file and keep their starting values: "
                f"{shorten_names(kept)}."
            )
        return "\n".join(lines)

    def _head_sentence(self) -> str:
        head_shapes = [item for item in self.shape_mismatches if item[0].startswith(HEAD_PREFIX)]
        weight_shapes = [item for item in head_shapes if item[0].endswith("weight")]
        if weight_shapes:
            _, file_shape, model_shape = weight_shapes[0]
            return (
                "The classifier head (the last layer, which picks the class) starts fresh: the "
                f"file's head was made for {file_shape[0]} classes, this model has "
                f"{model_shape[0]}."
            )
        return (
            "The classifier head (the last layer, which picks the class) starts fresh, because "
            "the file has none for these classes; training teaches it."
        )


@dataclass(frozen=True)
class _Plan:
    to_load: dict[str, torch.Tensor]
    missing_keys: tuple[str, ...]
    unexpected_keys: tuple[str, ...]
    shape_mismatches: tuple[ShapeMismatch, ...]
    head_reinitialised: bool


def apply_state_dict(
    model: ImageClassifier, state_dict: Mapping[str, torch.Tensor], *, source: str
) -> LoadReport:
    """Load ``state_dict`` into ``model`` only if its backbone fits exactly.

    Accepts an ImageClassifier state dict (``backbone.*``/``head.*``) or a bare backbone or
    torchvision one (keys without ``backbone.``; the torchvision classifier is dropped).
    A head for another class count is left out and the model keeps its own head. The
    weights go into a copy first, so a failure at any point leaves ``model`` untouched.
    """
    tensors = strip_wrapper_prefixes(
        {key: value for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
    )
    check_finite(tensors, source=source)
    model_state = model.state_dict()
    plan = _plan_load(model, _to_model_namespace(model, tensors, model_state), model_state, source)
    candidate = copy.deepcopy(model)
    try:
        candidate.load_state_dict(plan.to_load, strict=False)
    except RuntimeError as error:
        raise WeightsError(
            f"The weights in {source} could not be copied into the model ({error}).",
            advice="Pick the backbone the file was made for, or start from other weights.",
        ) from error
    # Same architecture as the candidate, so this copy cannot fail half-way.
    model.load_state_dict(candidate.state_dict())
    return LoadReport(
        source=source,
        loaded_keys=len(plan.to_load),
        missing_keys=plan.missing_keys,
        unexpected_keys=plan.unexpected_keys,
        shape_mismatches=plan.shape_mismatches,
        head_reinitialised=plan.head_reinitialised,
    )


def _to_model_namespace(
    model: ImageClassifier,
    tensors: dict[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    if any(key.startswith((BACKBONE_PREFIX, HEAD_PREFIX)) for key in tensors):
        return dict(tensors)
    dropped_path = _classifier_path_or_none(model.backbone_name)
    mapped = {}
    for key, value in tensors.items():
        new_key = BACKBONE_PREFIX + key
        is_dropped_classifier = dropped_path is not None and (
            key == dropped_path or key.startswith(dropped_path + ".")
        )
        # The torchvision classifier (ImageNet's 1000 classes) has no place in the backbone;
        # keep it under its own name so the report lists it as left out.
        mapped[key if is_dropped_classifier and new_key not in model_state else new_key] = value
    return mapped


def _classifier_path_or_none(backbone_name: str) -> str | None:
    try:
        return classifier_path(backbone_name)
    except ModelError:
        return None


def _plan_load(
    model: ImageClassifier,
    tensors: dict[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    source: str,
) -> _Plan:
    to_load, missing, problems = _match_backbone(tensors, model_state)
    unexpected = [key for key in tensors if key not in model_state]
    problems += [
        f"{_strip(key)}: in the file but not in this model"
        for key in unexpected
        if key.startswith(BACKBONE_PREFIX)
    ]
    if problems:
        _raise_architecture_mismatch(model, problems, source)
    head_keys = [key for key in model_state if key.startswith(HEAD_PREFIX)]
    head_mismatches = tuple(
        (key, tuple(tensors[key].shape), tuple(model_state[key].shape))
        for key in head_keys
        if key in tensors and tensors[key].shape != model_state[key].shape
    )
    head_fits = all(key in tensors for key in head_keys) and not head_mismatches
    if head_fits:
        to_load.update({key: tensors[key] for key in head_keys})
    else:
        missing += head_keys
    return _Plan(to_load, tuple(missing), tuple(unexpected), head_mismatches, not head_fits)


def _match_backbone(
    tensors: dict[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """The backbone tensors that fit, the harmless missing keys, and the real problems."""
    to_load: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    problems: list[str] = []
    for key, expected in model_state.items():
        if not key.startswith(BACKBONE_PREFIX):
            continue
        if key not in tensors:
            if key.endswith(_OPTIONAL_KEY_SUFFIX):
                missing.append(key)
            else:
                problems.append(f"{_strip(key)}: missing from the file")
        elif tensors[key].shape != expected.shape:
            problems.append(
                f"{_strip(key)}: the file has size {_shape_text(tensors[key].shape)}, "
                f"this model {_shape_text(expected.shape)}"
            )
        else:
            to_load[key] = tensors[key]
    return to_load, missing, problems


def _raise_architecture_mismatch(model: ImageClassifier, problems: list[str], source: str) -> None:
    display_name = _display_name(model.backbone_name)
    shown = problems[:_MAX_PROBLEMS_SHOWN]
    more = len(problems) - len(shown)
    listing = "\n".join(f"  - {problem}" for problem in shown)
    if more:
        listing += f"\n  … and {more} more"
    raise WeightsError(
        f"The weights in {source} do not fit the {display_name} backbone "
        f"({len(problems)} differences), so nothing was loaded. First differences:\n{listing}",
        advice=(
            "The file was probably made for another network: pick the backbone it was made "
            "for, or start from random or ImageNet weights."
        ),
        details=tuple(problems),
    )


def _display_name(backbone_name: str) -> str:
    try:
        return get_backbone_spec(backbone_name).display_name
    except ModelError:
        return backbone_name


def _strip(key: str) -> str:
    return key.removeprefix(BACKBONE_PREFIX)


def _shape_text(shape: torch.Size | tuple[int, ...]) -> str:
    return "×".join(str(size) for size in shape) or "a single number"
