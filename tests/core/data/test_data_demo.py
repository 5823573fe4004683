"""The shipped demo pictures: present, five classes, and every photo credited (CC BY 2.0)."""

from __future__ import annotations

from ptm_studio.core.data import demo_data_dir, preflight, scan_folder

CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


def test_demo_data_has_five_classes_in_train_and_val() -> None:
    scan = scan_folder(demo_data_dir(), verify_images=False)
    assert scan.layout == "split_folders"
    assert scan.class_names == CLASSES
    assert scan.count_by_class("train") == dict.fromkeys(CLASSES, 40)
    assert scan.count_by_class("val") == dict.fromkeys(CLASSES, 10)
    preflight(scan)
    total_bytes = sum(path.stat().st_size for path in demo_data_dir().rglob("*") if path.is_file())
    assert total_bytes < 1_500_000


def test_attribution_credits_exactly_the_shipped_photos() -> None:
    folder = demo_data_dir()
    shipped = {f"{path.parent.name}/{path.name}" for path in folder.glob("*/*/*.jpg")}
    lines = (folder / "ATTRIBUTION.txt").read_text(encoding="utf-8").splitlines()
    header, credit_lines = lines[:3], lines[3:]
    assert all("CC-BY" in line for line in credit_lines)
    credited = [line.split(" ", 1)[0] for line in credit_lines]
    assert len(credited) == len(set(credited)) == 250
    assert set(credited) == shipped
    assert "creativecommons.org/licenses/by/2.0" in header[0]
    assert "creativecommons.org/licenses/by/2.0" in (folder / "LICENSE.txt").read_text(
        encoding="utf-8"
    )
