"""Turn whatever a checkpoint holds into a plain ``{name: tensor}`` dict, or say why not."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ptm_studio.core.models.errors import WeightsError

# Keys under which training scripts commonly nest the weights, tried in this order.
STATE_DICT_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
# Lightning and DeepSpeed nest at most two levels; a little slack costs nothing.
_MAX_WRAPPER_DEPTH = 4
_DATA_PARALLEL_PREFIX = "module."
_COMPILED_COMPONENT = re.compile(r"(^|\.)_orig_mod\.")
_MAX_NAMES_SHOWN = 10
_STATE_DICT_ADVICE = (
    "Choose a file saved with torch.save(model.state_dict(), …) or a .safetensors file."
)


def clean_state_dict(raw: Any, *, source: str) -> dict[str, torch.Tensor]:
    """Unwrap, strip ``module.``/``_orig_mod.``, keep tensors only, refuse NaN/Inf."""
    state = unwrap_state_dict(raw, source=source)
    tensors = {key: value for key, value in state.items() if _is_named_tensor(key, value)}
    if not tensors:
        raise WeightsError(
            f"No weights were found in {source}.",
            advice=_STATE_DICT_ADVICE,
        )
    tensors = strip_wrapper_prefixes(tensors)
    check_finite(tensors, source=source)
    return tensors


def unwrap_state_dict(raw: Any, *, source: str) -> Mapping[Any, Any]:
    """Follow ``{"state_dict": …}``-style wrappers down to the mapping that holds tensors."""
    current = raw
    for _ in range(_MAX_WRAPPER_DEPTH):
        if not isinstance(current, Mapping):
            break
        if any(isinstance(value, torch.Tensor) for value in current.values()):
            return current
        inner = next(
            (
                current[key]
                for key in STATE_DICT_WRAPPER_KEYS
                if isinstance(current.get(key), Mapping)
            ),
            None,
        )
        if inner is None:
            break
        current = inner
    described = _describe_content(raw)
    raise WeightsError(
        f"No weights were found in {source}: it holds {described}.",
        advice=_STATE_DICT_ADVICE,
    )


def strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` (DataParallel / DDP) and ``_orig_mod.`` (torch.compile) from keys."""
    stripped = {_COMPILED_COMPONENT.sub(r"\1", key): value for key, value in state.items()}
    # DataParallel prefixes every key; only then is a leading "module." a wrapper and not
    # a real submodule that happens to be called "module".
    while stripped and all(key.startswith(_DATA_PARALLEL_PREFIX) for key in stripped):
        stripped = {key[len(_DATA_PARALLEL_PREFIX) :]: value for key, value in stripped.items()}
        stripped = {_COMPILED_COMPONENT.sub(r"\1", key): value for key, value in stripped.items()}
    return stripped


def check_finite(state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Raise WeightsError naming the tensors that contain NaN or infinity."""
    bad_names = [name for name, tensor in state.items() if not _is_finite(tensor)]
    if not bad_names:
        return
    raise WeightsError(
        f"{source} contains invalid numbers (NaN or infinity) in {len(bad_names)} tensor(s): "
        f"{shorten_names(bad_names)}. The training that made it probably went wrong.",
        advice="Use an earlier checkpoint of that training, or start from other weights.",
        details=tuple(bad_names),
    )


def shorten_names(names: list[str], limit: int = _MAX_NAMES_SHOWN) -> str:
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


def _is_finite(tensor: torch.Tensor) -> bool:
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return True
    # Any NaN or infinity makes the sum NaN or infinite, and a sum is many times faster than
    # an element-wise test; only a non-finite sum (or an overflow) needs the exact test.
    accumulate_as = torch.float32 if tensor.element_size() < 4 and not tensor.is_complex() else None
    if bool(torch.isfinite(tensor.sum(dtype=accumulate_as))):
        return True
    return bool(torch.isfinite(tensor).all())


def _is_named_tensor(key: Any, value: Any) -> bool:
    return isinstance(key, str) and isinstance(value, torch.Tensor)


def _describe_content(raw: Any) -> str:
    if isinstance(raw, Mapping):
        keys = [str(key) for key in list(raw)[:_MAX_NAMES_SHOWN]]
        return f"entries named {', '.join(keys)}" if keys else "an empty dictionary"
    return f"a {type(raw).__name__}"
