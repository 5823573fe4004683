"""Every pretraining objective by name: building one from the run's settings, the views it needs
and its description in plain words."""

from __future__ import annotations

from ptm_studio.core.objectives.self_supervised import (
    ContrastiveMarginObjective,
    NTXentObjective,
    PretrainObjective,
    ReconstructionObjective,
    RotationObjective,
)
from ptm_studio.core.objectives.small_batch import MoCoObjective, VICRegObjective

PRETRAIN_OBJECTIVES: dict[str, type[PretrainObjective]] = {
    objective.name: objective
    for objective in (
        NTXentObjective,
        ContrastiveMarginObjective,
        ReconstructionObjective,
        RotationObjective,
        MoCoObjective,
        VICRegObjective,
    )
}


def get_objective_class(name: str) -> type[PretrainObjective]:
    try:
        return PRETRAIN_OBJECTIVES[name]
    except KeyError:
        known = ", ".join(PRETRAIN_OBJECTIVES)
        raise ValueError(
            f"There is no pretraining objective called {name!r}. Known objectives: {known}."
        ) from None


def views_for_objective(name: str) -> tuple[int, str]:
    """(views per picture, transform strength) that the pretraining objective ``name`` needs."""
    objective_class = get_objective_class(name)
    return objective_class.views_per_image, objective_class.transform_strength


def build_pretrain_objective(
    name: str,
    feature_dim: int,
    image_size: int,
    *,
    margin: float = 1.0,
    temperature: float = 0.5,
    projection_dim: int = 128,
    memory_size: int = 1024,
) -> PretrainObjective:
    """The objective called ``name`` with fresh heads; settings it does not use are ignored."""
    objective_class = get_objective_class(name)
    return objective_class(
        feature_dim,
        image_size,
        margin=margin,
        temperature=temperature,
        projection_dim=projection_dim,
        memory_size=memory_size,
    )


def describe_objective(name: str) -> str:
    """A plain-language sentence or two for the GUI about what the objective learns from."""
    return get_objective_class(name).description
