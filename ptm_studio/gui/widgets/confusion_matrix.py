"""ConfusionMatrixView: true classes down, predicted across; a cell's shade is its share of the
row, and clicking a cell asks to see exactly those pictures."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ptm_studio.core.metrics import row_normalised
from ptm_studio.gui import theme
from ptm_studio.gui.plain_text import plain_tooltip

CELL_WIDTH = 64


def _shade(base: QColor, share: float) -> QColor:
    """``base`` at an opacity that grows with ``share`` (0 → none, 1 → full)."""
    colour = QColor(base)
    colour.setAlphaF(0.08 + 0.82 * share if share > 0 else 0.0)
    return colour


class ConfusionMatrixView(QTableWidget):
    cell_chosen = Signal(int, int)
    """(true class index, predicted class index) of a clicked cell with pictures in it."""

    def __init__(self, parent: QTableWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setMinimumSectionSize(CELL_WIDTH)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setToolTip(
            "Rows: the true class. Columns: what the model answered. The diagonal holds the "
            "correct answers. Click a cell to see those pictures."
        )
        self.matrix = np.zeros((0, 0), dtype=np.int64)
        self.class_names: tuple[str, ...] = ()
        self.cellClicked.connect(self._on_cell_clicked)

    def show_matrix(
        self, class_names: tuple[str, ...], matrix: np.ndarray, *, as_share: bool = False
    ) -> None:
        """Counts, or with ``as_share`` each row's share in percent (rows sum to 100 %)."""
        self.class_names, self.matrix = tuple(class_names), np.asarray(matrix)
        count = len(class_names)
        self.clear()
        self.setRowCount(count)
        self.setColumnCount(count)
        self.setHorizontalHeaderLabels([f"→ {name}" for name in class_names])
        self.setVerticalHeaderLabels(list(class_names))
        shares = row_normalised(self.matrix) if count else self.matrix
        for true in range(count):
            for predicted in range(count):
                self.setItem(true, predicted, self._cell(true, predicted, shares, as_share))

    def _cell(
        self, true: int, predicted: int, shares: np.ndarray, as_share: bool
    ) -> QTableWidgetItem:
        pictures, share = int(self.matrix[true, predicted]), float(shares[true, predicted])
        item = QTableWidgetItem(f"{100 * share:.0f} %" if as_share else str(pictures))
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        base = theme.CORRECT_COLOUR if true == predicted else theme.INCORRECT_COLOUR
        item.setBackground(_shade(base, share))
        truth, answer = self.class_names[true], self.class_names[predicted]
        if true == predicted:
            words = f"{pictures} '{truth}' pictures were recognised ({100 * share:.0f} % of them)."
        else:
            words = (
                f"{pictures} '{truth}' pictures were taken for '{answer}' "
                f"({100 * share:.0f} % of the '{truth}' pictures)."
            )
        item.setToolTip(plain_tooltip(words + ("\nClick to see them." if pictures else "")))
        return item

    @Slot(int, int)
    def _on_cell_clicked(self, row: int, column: int) -> None:
        if 0 <= row < self.matrix.shape[0] and self.matrix[row, column] > 0:
            self.cell_chosen.emit(row, column)
