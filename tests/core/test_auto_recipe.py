"""Auto's recipe (issue 12) on folders of each shape a user brings: grayscale thumbnails, tiny
pictures, a few hundred photos of two classes, thousands of photos of ten; on a processor and
on a graphics card; with and without ImageNet weights or a pretraining run on this computer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ptm_studio.core.auto_recipe import (
    Computer,
    PictureFacts,
    choose_recipe,
    picture_facts,
    with_tested_rate,
)
from ptm_studio.core.config import RunConfig
from ptm_studio.core.data import scan_folder

CPU, GPU = Computer("cpu", "CPU (2 cores)"), Computer("cuda", "NVIDIA H200")


def _offline(*names: str):  # type: ignore[no-untyped-def]
    return lambda name: name in names


def _recipe(facts: PictureFacts, computer: Computer = CPU, **options: object):  # type: ignore[no-untyped-def]
    recipe = choose_recipe(RunConfig(), facts, computer, **options)  # type: ignore[arg-type]
    assert all(choice.reason for choice in recipe.choices)  # every choice says why
    assert recipe.config.validate() == recipe.config
    return recipe


def test_grayscale_thumbnails_get_the_small_network_at_32_px_without_colour_changes() -> None:
    facts = PictureFacts(6000, (600,) * 10, typical_side=28, grey_share=1.0)
    recipe = _recipe(facts, imagenet_offline=_offline("mobilenet_v3_small"))
    config = recipe.config
    assert config.model.backbone == "small_cnn" and config.model.weights == "random"
    assert "about 28 px" in recipe.reason_for("model.backbone")  # too small for ImageNet nets
    assert config.data.image_size == 32 and "greyscale" in recipe.reason_for("data.image_size")
    assert "colour_changes" not in config.data.augmentations
    assert config.optim.num_epochs == 8


def test_tiny_pictures_of_few_classes_get_small_batches_and_more_epochs() -> None:
    recipe = _recipe(PictureFacts(60, (20, 20, 20), typical_side=16, grey_share=0.0))
    config = recipe.config
    assert (config.model.backbone, config.data.image_size) == ("small_cnn", 32)
    assert config.data.batch_size * 4 <= 60 and config.optim.num_epochs == 30
    assert config.data.augmentations == ("flip",)


def test_a_few_hundred_photos_on_a_processor_start_from_imagenet_and_freeze_first() -> None:
    facts = PictureFacts(300, (150, 150), typical_side=375, grey_share=0.0)
    recipe = _recipe(facts, imagenet_offline=_offline("mobilenet_v3_small"))
    config = recipe.config
    assert (config.model.backbone, config.model.weights) == ("mobilenet_v3_small", "imagenet")
    assert config.data.image_size == 128
    assert config.model.training_mode == "freeze_then_unfreeze"
    assert config.optim.learning_rate == pytest.approx(3e-4)


def test_thousands_of_photos_on_a_graphics_card_get_resnet_at_224_px() -> None:
    facts = PictureFacts(5000, (500,) * 10, typical_side=375, grey_share=0.0)
    recipe = _recipe(facts, GPU, imagenet_offline=_offline("resnet18"))
    config = recipe.config
    assert (config.model.backbone, config.data.image_size, config.data.batch_size) == (
        "resnet18",
        224,
        64,
    )
    assert config.model.training_mode == "full_finetune" and config.optim.num_epochs == 8
    assert "colour_changes" in config.data.augmentations


def test_without_imagenet_weights_nothing_is_downloaded_and_the_reason_says_so() -> None:
    recipe = _recipe(PictureFacts(300, (150, 150), typical_side=375, grey_share=0.0))
    assert recipe.config.model.weights == "random"
    assert "no ImageNet weights on this computer" in recipe.reason_for("model.backbone")
    assert not recipe.config.model.allow_download


def test_a_pretraining_run_on_the_same_pictures_is_the_start(tmp_path: Path) -> None:
    run = tmp_path / "pretrained"
    run.mkdir()
    (run / "config.json").write_text(
        RunConfig().to_json().replace('"small_cnn"', '"resnet18"'), encoding="utf-8"
    )
    facts = PictureFacts(300, (150, 150), typical_side=375, grey_share=0.0)
    recipe = _recipe(facts, pretraining_run=run)
    config = recipe.config
    assert (config.model.backbone, config.model.weights) == ("resnet18", "run")
    assert config.model.weights_path == str(run)
    # It finetunes with the transfer recipe, and says why.
    assert config.model.training_mode == "probe_then_finetune"
    assert config.model.backbone_learning_rate_factor == 0.1
    assert "fitted on its features first" in recipe.reason_for("model.training_mode")


def test_imbalanced_classes_are_weighed_or_drawn_evenly_and_many_classes_smoothed() -> None:
    moderate = _recipe(PictureFacts(1300, (500, 100, 100, 100), typical_side=64, grey_share=0.0))
    assert moderate.config.objective.use_class_weights
    assert not moderate.config.data.balanced_sampling
    assert "5.0 times" in moderate.reason_for("objective.use_class_weights")
    facts = PictureFacts(1300, (1000, 100, 100, 100), typical_side=64, grey_share=0.0)
    strong = _recipe(facts)
    assert strong.config.data.balanced_sampling  # never both: weights that large are noisy
    assert not strong.config.objective.use_class_weights
    assert "10.0 times" in strong.reason_for("data.balanced_sampling")
    even = _recipe(PictureFacts(400, (200, 200), typical_side=64, grey_share=0.0)).config
    assert not even.data.balanced_sampling and not even.objective.use_class_weights
    many = _recipe(PictureFacts(2400, (200,) * 12, typical_side=64, grey_share=0.0))
    assert many.config.objective.label_smoothing == pytest.approx(0.1)


def test_the_learning_rate_test_refines_the_rate_meeting_the_usual_one_halfway() -> None:
    recipe = _recipe(PictureFacts(300, (150, 150), typical_side=64, grey_share=0.0))
    usual = recipe.config.optim.learning_rate
    tested = with_tested_rate(recipe, usual / 100, "where the loss fell fastest")
    assert tested.config.optim.learning_rate == pytest.approx(usual / 10, rel=0.05)  # log-halfway
    reason = tested.reason_for("optim.learning_rate")
    assert reason.startswith(f"the test suggested {usual / 100:.2g} (where the loss fell fastest)")
    assert f"met halfway from the usual {usual:g}" in reason
    assert with_tested_rate(recipe, usual, "agrees").config.optim.learning_rate == usual
    assert with_tested_rate(recipe, None, "no fall") is recipe


def test_the_facts_come_from_the_folder(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    for name, count in (("zero", 12), ("one", 4)):
        (tmp_path / name).mkdir()
        for index in range(count):
            pixels = generator.integers(0, 255, size=(28, 28)).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp_path / name / f"{index}.png")
    facts = picture_facts(scan_folder(tmp_path))
    assert (facts.training_pictures, facts.typical_side, facts.is_grey) == (16, 28, True)
    assert sorted(facts.class_counts) == [4, 12] and facts.imbalance == 3.0


def test_train_auto_says_each_choice_and_the_flags_given_win(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ptm_studio.cli import EXIT_OK, main

    arguments = ["train", "--auto", "--data", str(tiny_dataset), "--epochs", "1"]
    arguments += ["--cpu-threads", "1", "--runs-root", str(tmp_path / "runs"), "--quiet"]
    assert main(arguments) == EXIT_OK
    err = capsys.readouterr().err
    assert "Auto chose" in err and "--backbone small_cnn: pictures of about 16 px" in err
    assert "--num-epochs: yours (1), not Auto's 30" in err
    assert "--learning-rate" in err and "the test suggested" in err
    (run,) = (tmp_path / "runs").iterdir()
    stored = RunConfig.load(run / "config.json")
    assert stored.optim.num_epochs == 1 and stored.data.image_size == 32


def test_from_scratch_on_a_processor_only_flips_and_no_warm_up_unless_few_per_class() -> None:
    flowers = PictureFacts(2784, (488, 711, 439, 536, 610), typical_side=240, grey_share=0.0)
    scratch = _recipe(flowers)
    assert scratch.config.data.augmentations == ("flip",)
    assert "557 pictures per class" in scratch.reason_for("data.augmentations")
    assert scratch.config.optim.warmup_epochs == 0.0
    few = _recipe(PictureFacts(400, (80,) * 5, typical_side=240, grey_share=0.0)).config
    assert few.data.augmentations == ("flip", "small_rotations", "colour_changes")
    on_gpu = _recipe(flowers, GPU).config
    assert "colour_changes" in on_gpu.data.augmentations
    pretrained = _recipe(flowers, imagenet_offline=_offline("mobilenet_v3_small")).config
    assert (
        pretrained.optim.warmup_epochs == 1.0 and "small_rotations" in pretrained.data.augmentations
    )
