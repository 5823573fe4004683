"""Show user-supplied text (class and file names) literally, never as HTML (fault Q5,
docs/fault-catalogue.md).

Labels get ``Qt.TextFormat.PlainText``; tooltips have no such switch: Qt renders a tooltip as
HTML as soon as its first line holds something tag-like, so a class folder named ``<b>cat<i>``
would show as bold "cat". :func:`plain_tooltip` escapes such text first.
"""

from __future__ import annotations

from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


def plain_tooltip(text: str) -> str:
    """``text`` as a tooltip that shows exactly these characters (line breaks kept)."""
    if not QtGui.Qt.mightBeRichText(text):
        return text
    return QtGui.Qt.convertFromPlainText(text, Qt.WhiteSpaceMode.WhiteSpaceNormal)


def is_shown_literally(text: str, user_text: str) -> bool:
    """Whether a tooltip or AutoText label holding ``user_text`` shows it as typed (tests)."""
    return user_text not in text or not QtGui.Qt.mightBeRichText(text)


def plain_label(text: str = "", *, word_wrap: bool = True) -> QLabel:
    """A label that shows ``text`` as typed (never as HTML), wrapped by default."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(word_wrap)
    return label


class TallEnoughLabel(QLabel):
    """A wrapped label that asks for the height its lines need at its current width: a long
    text in a form inside a scroll area (Auto's list of choices) is otherwise squeezed and
    cut when the column around it grows."""

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        needed = self.heightForWidth(self.width())
        if needed > 0 and needed != self.minimumHeight():
            self.setMinimumHeight(needed)


def tall_enough_label() -> TallEnoughLabel:
    label = TallEnoughLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label
