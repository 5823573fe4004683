"""The core's rules for the task a folder needs (planning.choose_task) and whether a folder can
train at all (planning.why_it_cannot_train): a switch PTM Studio made is undone when its reason
goes away; a task the user chose is never changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ptm_studio.core.config import ObjectiveConfig, RunConfig, replace_field
from ptm_studio.core.data import scan_folder
from ptm_studio.core.planning import (
    TASK_RESTORED,
    TASK_SWITCH_KEPT,
    TASK_SWITCHED,
    TASK_UNCHANGED,
    as_the_user_chose,
    choose_task,
    why_it_cannot_train,
    with_task,
)


def _unlabelled(root: Path, make_image_folder: Callable[..., Path]) -> Path:
    make_image_folder(root / "tmp", images_per_class=2)
    root.mkdir(exist_ok=True)
    for index, path in enumerate(sorted((root / "tmp").rglob("*.png"))):
        path.rename(root / f"picture_{index}.png")
    for folder in sorted((root / "tmp").iterdir()):
        folder.rmdir()
    (root / "tmp").rmdir()
    return root


def test_a_switch_for_a_folder_without_classes_is_undone_by_a_folder_with_classes(
    tmp_path: Path, image_folder_maker: Callable[..., Path]
) -> None:
    flat = scan_folder(_unlabelled(tmp_path / "flat", image_folder_maker))
    labelled = scan_folder(image_folder_maker(tmp_path / "labelled", images_per_class=2))
    finetune = ObjectiveConfig()

    switched = choose_task(flat, finetune, None)
    assert (switched.task, switched.loss, switched.change) == ("pretrain", "nt_xent", TASK_SWITCHED)
    assert switched.replaced == ("finetune", "cross_entropy")

    pretrain = ObjectiveConfig(task="pretrain", loss="nt_xent")
    kept = choose_task(flat, pretrain, switched)  # another folder without classes
    assert kept.change == TASK_SWITCH_KEPT and kept.replaced == switched.replaced

    restored = choose_task(labelled, pretrain, kept)
    assert (restored.task, restored.loss, restored.change) == (
        "finetune",
        "cross_entropy",
        TASK_RESTORED,
    )
    assert not restored.is_automatic


def test_a_task_the_user_chose_is_never_changed(
    tmp_path: Path, image_folder_maker: Callable[..., Path]
) -> None:
    flat = scan_folder(_unlabelled(tmp_path / "flat", image_folder_maker))
    labelled = scan_folder(image_folder_maker(tmp_path / "labelled", images_per_class=2))
    pretrain = ObjectiveConfig(task="pretrain", loss="rotation")
    for scan in (flat, labelled, None):
        choice = choose_task(scan, pretrain, None)
        assert (choice.task, choice.loss, choice.change) == ("pretrain", "rotation", TASK_UNCHANGED)
    finetune = ObjectiveConfig()
    chosen = choose_task(flat, finetune, None, user_chose_task=True)
    assert (chosen.task, chosen.change) == ("finetune", TASK_UNCHANGED)
    # A switch the user overrode since (the settings no longer hold its task) is theirs now.
    switched = choose_task(flat, finetune, None)
    overridden = choose_task(labelled, ObjectiveConfig(task="finetune"), switched)
    assert overridden.change == TASK_UNCHANGED


def test_nothing_to_train_on_switches_nothing_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    scan = scan_folder(tmp_path / "empty")
    choice = choose_task(scan, ObjectiveConfig(), None)
    assert (choice.task, choice.change) == ("finetune", TASK_UNCHANGED)
    for task in ("finetune", "pretrain"):
        config = replace_field(RunConfig(), "objective.task", task)
        if task == "pretrain":
            config = replace_field(config, "objective.loss", "nt_xent")
        blocker = why_it_cannot_train(scan, config)
        assert blocker is not None and "No pictures were found" in blocker.message


def test_the_settings_remembered_hold_the_users_own_task(
    tmp_path: Path, image_folder_maker: Callable[..., Path]
) -> None:
    flat = scan_folder(_unlabelled(tmp_path / "flat", image_folder_maker))
    switched = choose_task(flat, ObjectiveConfig(), None)
    config = with_task(RunConfig(), switched)
    assert config.objective.task == "pretrain"
    remembered = as_the_user_chose(config, switched)
    assert (remembered.objective.task, remembered.objective.loss) == ("finetune", "cross_entropy")
    assert why_it_cannot_train(flat, config) is None  # it can pretrain
    assert why_it_cannot_train(flat, remembered) is not None  # not finetune: no classes
