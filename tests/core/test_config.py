"""RunConfig: JSON round trip and validation messages that name the field."""

from __future__ import annotations

import json

import pytest

from ptm_studio.core.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    replace_field,
)


def test_default_config_is_valid_and_round_trips_through_json() -> None:
    config = RunConfig().validate()
    assert RunConfig.from_json(config.to_json()) == config


def test_custom_config_round_trips_including_tuples_and_none() -> None:
    config = RunConfig(
        data=DataConfig(
            data_dir="/data/Ünïcode folder", augmentations=("flip", "colour_changes"), image_size=96
        ),
        model=ModelConfig(backbone="resnet18", weights="file", weights_path="w.safetensors"),
        optim=OptimConfig(learning_rate=0.05, optimizer="sgd", num_epochs=3, warmup_epochs=0.5),
        seed=123,
        run_name="first try",
    ).validate()
    restored = RunConfig.from_json(config.to_json())
    assert restored == config
    assert restored.data.augmentations == ("flip", "colour_changes")
    assert isinstance(restored.optim.learning_rate, float)


def test_saved_json_has_a_format_version_and_sections() -> None:
    payload = json.loads(RunConfig().to_json())
    assert payload["format_version"] == 1
    assert set(payload) >= {"data", "model", "objective", "optim", "device", "seed"}


@pytest.mark.parametrize(
    ("field_path", "value", "expected_words"),
    [
        ("optim.learning_rate", -1.0, "between"),
        ("optim.optimizer", "rmsprop", "not one of: adamw, adam, sgd"),
        ("data.image_size", 4, "between 8 and 1024"),
        ("data.validation_fraction", 0.95, "between 0 and 0.9"),
        ("data.augmentations", ("flip", "mirror"), "'mirror' is not one of"),
        ("model.training_mode", "partial", "not one of"),
        ("objective.label_smoothing", 0.7, "between 0 and 0.5"),
        ("device.device", "tpu", "not one of"),
        ("optim.num_epochs", 0, "between 1"),
    ],
)
def test_validation_names_the_field_and_what_is_allowed(
    field_path: str, value: object, expected_words: str
) -> None:
    config = replace_field(RunConfig(), field_path, value)
    with pytest.raises(ConfigError) as caught:
        config.validate()
    assert caught.value.field_path == field_path
    assert expected_words in str(caught.value)


def test_weights_from_a_file_need_a_path() -> None:
    with pytest.raises(ConfigError, match=r"model\.weights_path"):
        replace_field(RunConfig(), "model.weights", "file").validate()


def test_warmup_must_be_shorter_than_training() -> None:
    with pytest.raises(ConfigError, match=r"optim\.warmup_epochs"):
        RunConfig(optim=OptimConfig(num_epochs=2, warmup_epochs=2)).validate()


@pytest.mark.parametrize(
    ("payload", "field_path", "words"),
    [
        ({"optim": {"learning_rat": 0.1}}, "optim.learning_rat", "unknown setting"),
        ({"optim": {"num_epochs": "ten"}}, "optim.num_epochs", "whole number"),
        ({"optim": {"num_epochs": 2.5}}, "optim.num_epochs", "whole number"),
        ({"data": {"augmentations": "flip"}}, "data.augmentations", "list"),
        (
            {"objective": {"use_class_weights": "yes"}},
            "objective.use_class_weights",
            "true or false",
        ),
        ({"format_version": 99}, "format_version", "newer PTM Studio"),
        ({"data": 5}, "data", "object"),
    ],
)
def test_loading_bad_json_names_the_field(payload: dict, field_path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(payload)
    assert caught.value.field_path == field_path
    assert words in caught.value.message


def test_not_json_at_all_is_reported() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{not json")


def test_configs_are_frozen() -> None:
    config = RunConfig()
    with pytest.raises(AttributeError):
        config.seed = 3  # type: ignore[misc]


def test_the_loss_must_fit_the_task() -> None:
    pretrain = replace_field(RunConfig(), "objective.task", "pretrain")
    with pytest.raises(ConfigError, match="nt_xent, contrastive_margin, reconstruction, rotation"):
        pretrain.validate()
    replace_field(pretrain, "objective.loss", "nt_xent").validate()
    with pytest.raises(ConfigError, match="cross_entropy"):
        replace_field(RunConfig(), "objective.loss", "rotation").validate()
