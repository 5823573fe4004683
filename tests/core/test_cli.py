"""The headless commands, called in-process on tiny generated data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from ptm_studio.cli import EXIT_DATA, EXIT_OK, EXIT_USAGE, build_parser, config_from_arguments, main

TINY_TRAINING = ["--epochs", "2", "--image-size", "16", "--batch-size", "4", "--cpu-threads", "1"]


def test_every_config_field_has_a_flag_and_flags_override_a_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(
        json.dumps({"optim": {"learning_rate": 0.5, "num_epochs": 7}, "seed": 3})
    )
    arguments = build_parser().parse_args(
        [
            "train",
            "--config",
            str(config_file),
            "--learning-rate",
            "0.01",
            "--augmentations",
            "flip",
            "colour_changes",
            "--use-class-weights",
            "--backbone",
            "resnet18",
        ]
    )
    config = config_from_arguments(arguments)
    assert config.optim.learning_rate == 0.01  # the flag wins
    assert config.optim.num_epochs == 7 and config.seed == 3  # the file's values stay
    assert config.data.augmentations == ("flip", "colour_changes")
    assert config.objective.use_class_weights is True and config.model.backbone == "resnet18"


def test_help_lists_settings_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--help"]) == EXIT_OK
    text = capsys.readouterr().out
    for flag in (
        "--data",
        "--epochs",
        "--learning-rate",
        "--backbone",
        "--resume",
        "--label-smoothing",
    ):
        assert flag in text
    assert "Passes over the training images" in text


def test_an_invalid_setting_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--learning-rate", "-3"]) == EXIT_USAGE
    assert "optim.learning_rate" in capsys.readouterr().err


def test_train_then_predict(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "runs" / "my first run"
    code = main(["train", "--data", str(tiny_dataset), "--output", str(output), *TINY_TRAINING])
    printed = capsys.readouterr().out
    assert code == EXIT_OK
    assert "Best validation accuracy" in printed and "Run folder" in printed
    assert (output / "config.json").is_file() and (output / "metrics.jsonl").is_file()
    assert (output / "checkpoints" / "last" / "model.safetensors").is_file()
    assert (output / "predictions.csv").is_file()

    csv_path = tmp_path / "predictions.csv"
    code = main(
        [
            "predict",
            "--run",
            str(output),
            str(tiny_dataset / "square"),
            "--top-k",
            "2",
            "--threshold",
            "0",
            "--csv",
            str(csv_path),
        ]
    )
    assert code == EXIT_OK
    assert "square_000.png" in capsys.readouterr().out
    with open(csv_path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and {"class_1", "probability_1", "class_2"} <= set(rows[0])
    assert all(row["answer"] == row["class_1"] for row in rows)  # no threshold: always an answer

    results = tmp_path / "evaluation.json"
    assert main(["evaluate", "--run", str(output), "--json", str(results)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "Accuracy" in printed and "Confusion matrix" in printed
    assert "too few to calibrate" in printed  # 6 validation pictures: left as they are
    saved = json.loads(results.read_text(encoding="utf-8"))
    assert saved["pictures"] == sum(item["support"] for item in saved["per_class"]) > 0
    assert len(saved["confusion"]) == len(saved["class_names"])
    assert main(["report", "--run", str(output)]) == EXIT_OK
    assert "<svg" in (output / "report.html").read_text(encoding="utf-8")
    assert main(["report", "--run", str(tmp_path)]) == EXIT_USAGE  # not a run folder

    # A folder with a picture that cannot be read: every file keeps its row, that one flagged;
    # with a threshold no answer reaches, every readable picture is "not sure".
    folder = tmp_path / "to predict"
    shutil.copytree(tiny_dataset / "square", folder)
    (folder / "broken.png").write_bytes(b"not a picture")
    code = main(
        [
            "predict",
            "--run",
            str(output),
            str(folder),
            "--threshold",
            "100%",
            "--csv",
            str(csv_path),
        ]
    )
    assert code == EXIT_OK
    assert "not sure (best:" in capsys.readouterr().out
    with open(csv_path, encoding="utf-8") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert len(rows) == 9 and rows["broken.png"]["error"] and rows["broken.png"]["answer"] == ""
    assert {row["answer"] for name, row in rows.items() if name != "broken.png"} == {"not sure"}

    assert main(["runs", "--runs-root", str(tmp_path / "runs")]) == EXIT_OK
    assert "my first run" in capsys.readouterr().out


def test_output_folder_that_is_not_empty_is_refused(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "used" / "something").mkdir(parents=True)
    assert (
        main(["train", "--data", str(tiny_dataset), "--output", str(tmp_path / "used")])
        == EXIT_USAGE
    )
    assert "--resume" in capsys.readouterr().err


def test_unusable_data_exits_3_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "only_class").mkdir()
    assert (
        main(["train", "--data", str(tmp_path), "--runs-root", str(tmp_path / "runs")]) == EXIT_DATA
    )
    assert "error:" in capsys.readouterr().err


def test_scan_reports_classes_and_readiness(
    tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(tiny_dataset)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "circle" in out and "Ready for finetune" in out


def test_predict_without_a_trained_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--run", str(tmp_path), str(tmp_path)]) == EXIT_USAGE
    assert "not a PTM Studio run folder" in capsys.readouterr().err


def test_evaluate_without_a_run_and_bad_predict_flags_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--run", str(tmp_path)]) == EXIT_USAGE
    assert "not a PTM Studio run folder" in capsys.readouterr().err
    for flags in (["--top-k", "0"], ["--threshold", "150%"], ["--threshold", "most"]):
        assert main(["predict", "--run", str(tmp_path), str(tmp_path), *flags]) == EXIT_USAGE
        assert flags[0] in capsys.readouterr().err


def test_models_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "small_cnn" in out and "resnet18" in out and "vit_b_16" in out


def test_imagenet_weights_missing_offline_fail_with_advice(
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    code = main(
        [
            "train",
            "--data",
            str(tiny_dataset),
            "--backbone",
            "mobilenet_v3_small",
            "--weights",
            "imagenet",
            "--runs-root",
            str(tmp_path / "runs"),
            *TINY_TRAINING,
        ]
    )
    assert code == EXIT_USAGE  # the setting cannot be used here; the message says what to do
    error = capsys.readouterr().err
    assert "not on this computer" in error and "random" in error


def test_pretrain_then_finetune_from_it(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pretrained = tmp_path / "runs" / "pretrained"
    code = main(
        ["pretrain", "--data", str(tiny_dataset), "--output", str(pretrained), *TINY_TRAINING]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "k-NN acc" in out and "finetune --init-from" in out
    assert "probe acc" in out and "Best linear-probe accuracy" in out
    assert "Later runs start from" in out and "did best in the linear probe" in out
    assert json.loads((pretrained / "config.json").read_text())["objective"]["loss"] == "nt_xent"

    code = main(
        [
            "finetune",
            "--data",
            str(tiny_dataset),
            "--init-from",
            str(pretrained),
            "--runs-root",
            str(tmp_path / "runs"),
            "--label-fraction",
            "0.5",
            *TINY_TRAINING,
        ]
    )
    assert code == EXIT_OK
    assert "Best validation accuracy" in capsys.readouterr().out


def test_compare_finetunes_from_pretrained_and_from_random(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pretrained = tmp_path / "runs" / "pretrained"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(tiny_dataset),
                "--output",
                str(pretrained),
                "--loss",
                "rotation",
                *TINY_TRAINING,
            ]
        )
        == EXIT_OK
    )
    capsys.readouterr()
    code = main(
        [
            "compare",
            "--data",
            str(tiny_dataset),
            "--init-from",
            str(pretrained),
            "--seeds",
            "0",
            "1",
            "--runs-root",
            str(tmp_path / "runs"),
            "--quiet",
            *TINY_TRAINING,
        ]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "from pretrained" in out and "from random" in out and "mean" in out
    assert out.count("seed 0:") == 2 and out.count("seed 1:") == 2
    assert "Pretraining" in out  # the verdict sentence


def test_python_dash_m_dispatches_every_command_to_the_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ptm_studio.__main__ import main as module_main
    from ptm_studio.cli import COMMANDS

    assert module_main(["models"]) == EXIT_OK
    assert "small_cnn" in capsys.readouterr().out
    help_text = build_parser().format_help()
    assert all(command in help_text for command in COMMANDS)


def test_init_from_accepts_a_run_name(
    tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ptm_studio.core.locations import default_runs_root

    assert (
        main(
            [
                "pretrain",
                "--data",
                str(tiny_dataset),
                "--run-name",
                "my pretraining",
                "--loss",
                "rotation",
                *TINY_TRAINING,
            ]
        )
        == EXIT_OK
    )
    assert (default_runs_root() / "my pretraining").is_dir()
    capsys.readouterr()
    assert (
        main(
            [
                "finetune",
                "--data",
                str(tiny_dataset),
                "--init-from",
                "my pretraining",
                *TINY_TRAINING,
            ]
        )
        == EXIT_OK
    )
    assert "Best validation accuracy" in capsys.readouterr().out


def test_finetuning_from_pretraining_uses_the_transfer_recipe_and_says_so(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = ["--image-size", "16", "--batch-size", "4", "--cpu-threads", "1", "--epochs", "1"]
    pretrained = tmp_path / "pretrained"
    common = ["--data", str(tiny_dataset), *tiny]
    assert main(["pretrain", *common, "--loss", "rotation", "--output", str(pretrained)]) == 0
    capsys.readouterr()
    finetuned = tmp_path / "finetuned"
    arguments = ["finetune", *common, "--init-from", str(pretrained), "--output", str(finetuned)]
    assert main(arguments) == EXIT_OK
    printed = capsys.readouterr()
    assert "Transfer recipe: --training-mode probe_then_finetune" in printed.err
    assert "The last layer was fitted on the starting network's features" in printed.err
    assert "Frozen features alone:" in printed.out
    config = json.loads((finetuned / "config.json").read_text())
    assert config["model"]["training_mode"] == "probe_then_finetune"
    status = json.loads((finetuned / "run.json").read_text())
    assert set(status["frozen_features"]) == {"knn_accuracy", "probe_accuracy", "penalty"}
    # The user's own mode is kept, and nothing is said.
    chosen = tmp_path / "chosen"
    own = ["finetune", *common, "--init-from", str(pretrained), "--output", str(chosen)]
    assert main([*own, "--training-mode", "full_finetune"]) == EXIT_OK
    assert "Transfer recipe" not in capsys.readouterr().err
    assert json.loads((chosen / "config.json").read_text())["model"]["training_mode"] == (
        "full_finetune"
    )
