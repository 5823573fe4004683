"""Model export: every file reloads and answers as the app does, the parity check catches a
wrong model.json or a wrong graph, nothing half-written is ever left, and the CLI end to end."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import safetensors.torch
import torch
from PIL import Image
from training_helpers import train_and_record

from ptm_studio.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from ptm_studio.cli_use_arguments import EXPORT_FORMATS
from ptm_studio.core import export_files
from ptm_studio.core.checkpoints import read_meta, save_checkpoint
from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig
from ptm_studio.core.export import (
    FORMATS,
    ExportCancelled,
    ExportError,
    ExportResult,
    export_model,
    verify_export,
)
from ptm_studio.core.export_files import quiet_torch_deprecations
from ptm_studio.core.export_parity import END_TO_END_TOLERANCE
from ptm_studio.core.export_pictures import validation_pictures
from ptm_studio.core.inference import Predictor
from ptm_studio.core.models import build_classifier, get_backbone_spec

CLASS_NAMES = ["circle", "square", "stripe"]
TINY_TRAINING = ["--epochs", "2", "--image-size", "16", "--batch-size", "4", "--cpu-threads", "1"]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def trained_run(
    tmp_path_factory: pytest.TempPathFactory, image_folder_maker: Callable[..., Path]
) -> Path:
    """The small CNN trained for two epochs on the tiny dataset (16 px pictures)."""
    data = image_folder_maker(tmp_path_factory.mktemp("export_data"))
    config = RunConfig(
        data=DataConfig(data_dir=str(data), image_size=16, batch_size=4, validation_fraction=0.25),
        optim=OptimConfig(num_epochs=2, learning_rate=3e-3),
        device=DeviceConfig(device="cpu", cpu_threads=1),
        seed=7,
    ).validate()
    finished, _ = train_and_record(config, tmp_path_factory.mktemp("export_runs"))
    assert finished.run_dir is not None
    return finished.run_dir


@pytest.fixture(scope="module")
def resnet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ResNet-18 checkpoint with random weights (never downloaded), 32 px, calibrated."""
    torch.manual_seed(3)
    model = build_classifier("resnet18", len(CLASS_NAMES))
    spec = get_backbone_spec("resnet18")
    meta = {
        "backbone": "resnet18",
        "num_classes": len(CLASS_NAMES),
        "class_names": CLASS_NAMES,
        "image_size": 32,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "task": "finetune",
        "epoch": 1,
    }
    folder = save_checkpoint(tmp_path_factory.mktemp("resnet") / "best", model.state_dict(), meta)
    digest = read_meta(folder)["files"]["model.safetensors"]  # a temperature is for these weights
    (folder / "calibration.json").write_text(
        json.dumps({"temperature": 2.5, "model_sha256": digest})
    )
    return folder


@pytest.fixture(scope="module")
def honest_export(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_model(trained_run, tmp_path_factory.mktemp("exports") / "flowers")


def _pictures(folder: Path, size: int, count: int = 5) -> list[Path]:
    """Random pictures of exactly ``size`` px: the app's resize and crop leave them alone."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(1)
    paths = []
    for index in range(count):
        pixels = generator.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"picture_{index}.png")
        paths.append(folder / f"picture_{index}.png")
    return paths


def _edited_copy(export: ExportResult, tmp_path: Path, edit: Callable[[dict], Any]) -> Path:
    copy = shutil.copytree(export.folder, tmp_path / "edited")
    description = json.loads((copy / "model.json").read_text(encoding="utf-8"))
    edit(description)
    (copy / "model.json").write_text(json.dumps(description), encoding="utf-8")
    return copy


# ---------------------------------------------------------------------------- the files
@pytest.mark.parametrize("which", ["small_cnn", "resnet18"])
def test_every_file_reloads_and_matches_the_model_on_identical_tensors(
    which: str, trained_run: Path, resnet_checkpoint: Path, tmp_path: Path
) -> None:
    source = trained_run if which == "small_cnn" else resnet_checkpoint
    result = export_model(source, tmp_path / "export")
    assert result.is_ok, result.problems
    predictor = Predictor.from_run(source, device="cpu")
    size = 16 if which == "small_cnn" else 32
    batch = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.softmax(predictor.model(batch), dim=1).numpy()

    with quiet_torch_deprecations():
        scripted = torch.jit.load(str(result.files["torchscript"])).eval()
    session = onnxruntime.InferenceSession(
        str(result.files["onnx"]), providers=["CPUExecutionProvider"]
    )
    rebuilt = build_classifier(which, len(CLASS_NAMES)).eval()
    rebuilt.load_state_dict(safetensors.torch.load_file(str(result.files["safetensors"])))
    with torch.no_grad():
        outputs = {
            "torchscript": scripted(batch).numpy(),
            "onnx": session.run(None, {"pictures": batch.numpy()})[0],
            "safetensors": rebuilt(batch).numpy(),
        }
    for name, logits in outputs.items():
        probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        assert np.abs(probabilities - expected).max() < 1e-4, name
        assert (probabilities.argmax(axis=1) == expected.argmax(axis=1)).all(), name

    description = json.loads((tmp_path / "export" / "model.json").read_text(encoding="utf-8"))
    assert description["class_names"] == CLASS_NAMES and description["backbone"] == which
    assert description["preprocessing"]["image_size"] == size
    assert description["preprocessing"]["layout"] == "NCHW"
    assert description["preprocessing"]["channel_order"] == "RGB"
    assert description["preprocessing_baked_in"] is False
    assert description["calibration"]["temperature"] == (1.0 if which == "small_cnn" else 2.5)
    assert description["versions"]["onnx_opset"] == export_files.ONNX_OPSET
    assert description["source"]["checkpoint"] == str(predictor.checkpoint)


def test_the_parity_check_passes_on_an_honest_export_and_is_written_down(
    honest_export: ExportResult, trained_run: Path
) -> None:
    assert honest_export.is_ok and honest_export.problems == ()
    assert [report.format for report in honest_export.parity] == list(FORMATS)
    own = validation_pictures(trained_run)
    assert len(own) == 6 and {path.parent.name for path in own} == set(CLASS_NAMES)
    for report in honest_export.parity:
        assert report.pictures == len(own) + 3  # three made-up pictures of awkward shapes
        assert report.same_answers == report.pictures == report.same_input_answers
        assert report.largest_difference < END_TO_END_TOLERANCE
        assert report.same_input_difference < 1e-4
    parity = json.loads((honest_export.folder / "parity.json").read_text(encoding="utf-8"))
    assert parity["is_ok"] is True and len(parity["reports"]) == 3
    assert parity["pictures"][: len(own)] == [str(path) for path in own]
    readme = (honest_export.folder / "README.md").read_text(encoding="utf-8")
    assert "Parity check passed" in readme and "| `model.onnx` | 9 of 9 |" in readme
    assert sorted(path.name for path in honest_export.folder.iterdir()) == [
        "README.md",
        "model.json",
        "model.onnx",
        "model.safetensors",
        "model.torchscript.pt",
        "parity.json",
    ]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda p: p.update(mean=[0.45, 0.45, 0.45]), id="mean"),
        pytest.param(lambda p: (p["resize"].update(size=20), p["crop"].update(size=20)), id="size"),
        pytest.param(lambda p: p.update(channel_order="BGR"), id="channels"),
        pytest.param(lambda p: p["resize"].update(filter="lanczos"), id="filter"),
    ],
)
def test_a_model_json_describing_other_preprocessing_fails_loudly(
    edit: Callable[[dict], Any], honest_export: ExportResult, tmp_path: Path
) -> None:
    folder = _edited_copy(honest_export, tmp_path, lambda d: edit(d["preprocessing"]))
    reports = verify_export(folder)
    assert len(reports) == 3 and not any(report.is_ok for report in reports)
    for report in reports:
        assert report.same_input_difference < 1e-4  # the files themselves are fine
        assert "model.json says: do not use it" in report.problem() or (
            "does not take the pictures as model.json prepares them" in report.problem()
        )
        assert "the preprocessing model.json describes is not the app's" in report.problem()
        if not report.end_to_end_error:  # the ONNX graph refuses a wrong size outright
            assert report.largest_difference > END_TO_END_TOLERANCE
    assert re.match(
        r"The ONNX file \(model\.onnx\) (disagrees|gives|does not)", reports[2].problem()
    )


def test_a_wrong_temperature_in_model_json_is_caught_too(
    honest_export: ExportResult, tmp_path: Path
) -> None:
    folder = _edited_copy(honest_export, tmp_path, lambda d: d["calibration"].update(temperature=3))
    assert not any(report.is_ok for report in verify_export(folder))


def test_a_graph_that_computes_something_else_fails_even_on_the_same_input(
    honest_export: ExportResult, tmp_path: Path
) -> None:
    folder = shutil.copytree(honest_export.folder, tmp_path / "swapped")
    other = build_classifier("small_cnn", len(CLASS_NAMES)).eval()
    with quiet_torch_deprecations():
        torch.jit.save(
            torch.jit.trace(other, torch.zeros(1, 3, 16, 16)), folder / "model.torchscript.pt"
        )
    by_format = {report.format: report for report in verify_export(folder)}
    assert by_format["safetensors"].is_ok and by_format["onnx"].is_ok
    problem = by_format["torchscript"].problem()
    assert problem.startswith("The TorchScript file (model.torchscript.pt) disagrees with the app")
    assert "even on the app's own prepared input" in problem and "Do not use it" in problem


def test_a_writer_that_describes_the_preprocessing_wrongly_makes_the_export_fail(
    trained_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    honest = export_files.describe_preprocessing

    def off_by_a_little(meta: dict[str, Any]) -> dict[str, Any]:
        return {**honest(meta), "std": [0.55, 0.55, 0.55]}

    monkeypatch.setattr(export_files, "describe_preprocessing", off_by_a_little)
    code = main(["export", "--run", str(trained_run), "--to", str(tmp_path / "export")])
    assert code == EXIT_FAILED
    errors = capsys.readouterr().err
    assert "error: The ONNX file (model.onnx) " in errors and "do not use it" in errors
    assert "Traceback" not in errors
    readme = (tmp_path / "export" / "README.md").read_text(encoding="utf-8")
    assert "The parity check FAILED. Do not use these files" in readme
    assert json.loads((tmp_path / "export" / "parity.json").read_text())["is_ok"] is False


def test_baked_preprocessing_takes_pixels_and_gives_the_apps_calibrated_probabilities(
    resnet_checkpoint: Path, tmp_path: Path
) -> None:
    pictures = _pictures(tmp_path / "pictures", 32)
    result = export_model(
        resnet_checkpoint, tmp_path / "baked", bake_preprocessing=True, parity_pictures=pictures
    )
    assert result.is_ok, result.problems
    description = json.loads((result.folder / "model.json").read_text(encoding="utf-8"))
    assert description["preprocessing_baked_in"] is True
    assert description["files"]["onnx"]["input"]["dtype"] == "uint8"
    assert description["files"]["onnx"]["output"]["name"] == "probabilities"
    assert description["files"]["safetensors"]["output"]["name"] == "logits"

    predictor = Predictor.from_run(resnet_checkpoint, device="cpu")
    assert predictor.temperature == 2.5
    expected = predictor.probabilities(predictor.score_paths(pictures).logits)
    batch = np.stack([np.asarray(Image.open(path)).transpose(2, 0, 1) for path in pictures])
    with quiet_torch_deprecations():
        scripted = torch.jit.load(str(result.files["torchscript"])).eval()
    session = onnxruntime.InferenceSession(
        str(result.files["onnx"]), providers=["CPUExecutionProvider"]
    )
    with torch.no_grad():
        from_torchscript = scripted(torch.from_numpy(batch)).numpy()
    from_onnx = session.run(None, {"pictures": batch})[0]
    for probabilities in (from_torchscript, from_onnx):
        assert np.abs(probabilities - expected).max() < 1e-4
        assert (probabilities.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_the_readme_code_runs_and_gives_the_apps_answers(
    honest_export: ExportResult,
    trained_run: Path,
    resnet_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resnet_export = export_model(resnet_checkpoint, tmp_path / "resnet", formats=["safetensors"])
    for export, source in ((honest_export, trained_run), (resnet_export, resnet_checkpoint)):
        folder = shutil.copytree(export.folder, tmp_path / f"copy-{export.folder.name}")
        # A JPEG large enough to be decoded at a reduced scale, and not square.
        pixels = np.random.default_rng(5).integers(0, 256, (210, 330, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "picture.jpg", quality=90)
        predictor = Predictor.from_run(source, device="cpu")
        expected = predictor.probabilities(predictor.score_paths([folder / "picture.jpg"]).logits)
        readme = (folder / "README.md").read_text(encoding="utf-8")
        blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
        assert len(blocks) == 1 + len(export.files)  # the preparation, then one per file
        monkeypatch.chdir(folder)
        namespace: dict[str, Any] = {}
        exec(blocks[0], namespace)
        for block in blocks[1:]:
            with quiet_torch_deprecations():
                exec(block, namespace)
            assert np.abs(namespace["chances"] - expected).max() < 1e-4, block


# ---------------------------------------------------------------------------- the folder
def test_a_destination_that_is_not_empty_is_refused_and_an_empty_one_is_used(
    trained_run: Path, tmp_path: Path
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=re.escape(f"{used} already exists and is not empty")):
        export_model(trained_run, used)
    assert [path.name for path in used.iterdir()] == ["notes.txt"]
    with pytest.raises(ExportError, match="Unknown export format 'tflite'"):
        export_model(trained_run, tmp_path / "new", formats=["tflite"])

    empty = tmp_path / "empty"
    empty.mkdir()
    result = export_model(trained_run, empty, formats=["safetensors"])
    assert result.is_ok and (empty / "model.safetensors").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "used"]


@pytest.mark.parametrize("stop_after_step", [0, 1, 5])
def test_cancelling_leaves_no_folder(
    stop_after_step: int, trained_run: Path, tmp_path: Path
) -> None:
    steps: list[tuple[int, int]] = []
    with pytest.raises(ExportCancelled):
        export_model(
            trained_run,
            tmp_path / "cancelled",
            on_progress=lambda done, total: steps.append((done, total)),
            should_stop=lambda: len(steps) >= stop_after_step,  # 5: during the parity check
        )
    assert len(steps) == stop_after_step
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its hidden draft


def test_progress_goes_step_by_step_to_the_end(trained_run: Path, tmp_path: Path) -> None:
    steps: list[tuple[int, int]] = []
    result = export_model(
        trained_run,
        tmp_path / "export",
        on_progress=lambda *step: steps.append(step),
        should_stop=lambda: len(steps) == 8,  # a cancel after the last step comes too late
    )
    assert steps == [(done, 8) for done in range(1, 9)]
    assert result.is_ok and (tmp_path / "export" / "README.md").is_file()


def test_a_disk_error_leaves_no_half_folder(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ptm_studio.core.export as export_module

    def disk_full(*_arguments: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "write_torchscript", disk_full)
    with pytest.raises(ExportError, match=r"No space left on device.*Nothing was kept"):
        export_model(trained_run, tmp_path / "export")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- ONNX missing
@pytest.mark.parametrize("package", ["onnx", "onnxruntime"])
def test_without_the_onnx_packages_the_other_formats_are_written_and_the_fix_is_named(
    package: str,
    trained_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # `import onnx` now raises ImportError
    code = main(["export", "--run", str(trained_run), "--to", str(tmp_path / "export")])
    assert code == EXIT_FAILED
    errors = capsys.readouterr().err
    assert f"optional package {package}, which is not installed" in errors
    assert 'pip install "ptm-studio[export]"' in errors and "Traceback" not in errors
    written = sorted(path.name for path in (tmp_path / "export").iterdir())
    assert "model.onnx" not in written and "model.torchscript.pt" in written
    parity = json.loads((tmp_path / "export" / "parity.json").read_text(encoding="utf-8"))
    assert [report["format"] for report in parity["reports"]] == ["safetensors", "torchscript"]
    assert all(report["is_ok"] for report in parity["reports"]) and "onnx" in parity["not_written"]
    readme = (tmp_path / "export" / "README.md").read_text(encoding="utf-8")
    assert "> model.onnx was not written: ONNX needs the optional package" in readme


def test_an_exporter_failure_is_named_and_the_other_formats_kept(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*_arguments: Any, **_options: Any) -> None:
        raise RuntimeError("Unsupported operator aten::strange_thing")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    result = export_model(trained_run, tmp_path / "export", formats=["safetensors", "onnx"])
    assert result.problems == (
        "model.onnx could not be written: the exporter failed on this network (Unsupported "
        "operator aten::strange_thing). The other formats are not affected.",
    )
    assert list(result.files) == ["safetensors"] and result.parity[0].is_ok


# ---------------------------------------------------------------------------- the CLI
def test_the_cli_exports_a_tiny_trained_run(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "runs" / "tiny"
    assert main(["train", "--data", str(tiny_dataset), "--output", str(run), *TINY_TRAINING]) == 0
    capsys.readouterr()
    assert main(["export", "--run", str(run), "--to", str(tmp_path / "export")]) == EXIT_OK
    printed = capsys.readouterr().out
    assert f"Exported to {tmp_path / 'export'}" in printed
    assert "Parity check against the app, on 6 of the run's validation pictures" in printed
    for name in ("model.safetensors", "model.torchscript.pt", "model.onnx", "README.md"):
        assert name in printed
    assert printed.count(" ok ") + printed.count(" ok\n") == 3

    code = main(
        [
            "export",
            "--run",
            str(run),
            "--checkpoint",
            str(run / "checkpoints" / "last"),
            "--to",
            str(tmp_path / "baked"),
            "--format",
            "onnx",
            "--bake-preprocessing",
        ]
    )
    assert code == EXIT_OK
    description = json.loads((tmp_path / "baked" / "model.json").read_text(encoding="utf-8"))
    assert list(description["files"]) == ["onnx"] and description["preprocessing_baked_in"]
    assert description["source"]["checkpoint"] == str(run / "checkpoints" / "last")

    capsys.readouterr()
    assert main(["export", "--run", str(run), "--to", str(tmp_path / "export")]) == EXIT_USAGE
    assert "already exists and is not empty" in capsys.readouterr().err
    assert main(["export", "--run", str(tmp_path), "--to", str(tmp_path / "x")]) == EXIT_USAGE
    assert "not a PTM Studio run folder" in capsys.readouterr().err


def test_the_cli_offers_the_formats_the_core_writes() -> None:
    assert EXPORT_FORMATS == FORMATS
