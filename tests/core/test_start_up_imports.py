"""What the quick commands load: `ptm-studio --help` and `--version` need neither torch nor
numpy, `ptm-studio models` no torch (issue 14, B5). Counted in a fresh interpreter, not timed:
benchmarks/start_up.py holds the seconds against their targets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "numpy")

RUN_AND_LIST = """
import json, runpy, sys
sys.argv = ["ptm-studio", *{arguments!r}]
try:
    runpy.run_module("ptm_studio", run_name="__main__")
except SystemExit:
    pass
sys.stdout.flush()
print("\\nLOADED " + json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def heavy_modules_loaded(arguments: list[str]) -> tuple[list[str], str]:
    script = RUN_AND_LIST.format(arguments=arguments, heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    output, _, loaded = result.stdout.rpartition("\nLOADED ")
    return json.loads(loaded), output


@pytest.mark.parametrize("arguments", [["--help"], ["--version"], ["train", "--help"]])
def test_help_and_version_load_neither_torch_nor_numpy(arguments: list[str]) -> None:
    loaded, output = heavy_modules_loaded(arguments)
    assert loaded == []
    assert "PTM Studio" in output or "usage" in output


def test_the_model_list_loads_no_torch() -> None:
    loaded, output = heavy_modules_loaded(["models"])
    assert "torch" not in loaded and "torchvision" not in loaded
    assert "resnet18" in output and "small_cnn" in output
