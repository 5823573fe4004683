"""WheelGuard: the mouse wheel scrolls a column of settings, it never changes a box by itself.

Over a combo box, spin box or slider Qt turns the wheel into a new value, so scrolling down a
long form of settings quietly changes whatever passes under the pointer. The guard watches a
container and every widget inside it, including those added later (``ChildAdded``): a wheel
over such a field scrolls the nearest scroll area around it instead, unless the field has the
keyboard focus (the user clicked it or tabbed to it: then the wheel is meant for it). Those
fields get ``Qt.StrongFocus`` too, since Qt gives a ``WheelFocus`` widget the focus on the
wheel event itself, before any filter can look at it.
"""

from __future__ import annotations

from typing import cast

from PySide6.QtCore import QChildEvent, QCoreApplication, QEvent, QObject, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QScrollBar,
    QWidget,
)

WHEEL_SENSITIVE = (QAbstractSpinBox, QComboBox, QAbstractSlider)
"""Widgets whose value the wheel changes (date and time edits are spin boxes; superqt's
sliders are QAbstractSliders)."""


def is_wheel_sensitive(widget: QObject) -> bool:
    """A field the wheel would change; a scroll bar only scrolls, it is left alone."""
    return isinstance(widget, WHEEL_SENSITIVE) and not isinstance(widget, QScrollBar)


class WheelGuard(QObject):
    """Install with :func:`guard_wheel`; lives as long as the container it watches."""

    def __init__(self, container: QWidget) -> None:
        super().__init__(container)
        self.container = container
        self.watch(container)

    def watch(self, widget: QWidget) -> None:
        """Watch ``widget`` and everything inside it."""
        for each in (widget, *widget.findChildren(QWidget)):
            each.installEventFilter(self)  # Qt keeps one copy: a widget moved in again is fine
            self._prefer_strong_focus(each)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.ChildAdded and isinstance(event, QChildEvent):
            child = event.child()
            if isinstance(child, QWidget):
                self.watch(child)
        elif kind == QEvent.Type.Polish:
            # A widget added while it was still being built is only now fully itself.
            self._prefer_strong_focus(watched)
        elif kind == QEvent.Type.Wheel and is_wheel_sensitive(watched):
            field = cast(QWidget, watched)
            if not field.hasFocus():
                self._scroll_around(field, cast(QWheelEvent, event))
                event.accept()  # handled: Qt must not hand it on to the field's parents
                return True  # the field's value stays as it is
        return super().eventFilter(watched, event)

    @staticmethod
    def _prefer_strong_focus(widget: QObject) -> None:
        if is_wheel_sensitive(widget):
            field = cast(QWidget, widget)
            if field.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    @staticmethod
    def _scroll_around(field: QWidget, event: QWheelEvent) -> None:
        """Hand the wheel to the scroll area the field sits in, as if the field were not there."""
        parent = field.parentWidget()
        while parent is not None and not isinstance(parent, QAbstractScrollArea):
            parent = parent.parentWidget()
        if parent is not None:
            # The scroll area's viewport passes it on to the right scroll bar, which only
            # reads the wheel's turn, not where the pointer is.
            QCoreApplication.sendEvent(parent.viewport(), event)


def guard_wheel(container: QWidget) -> WheelGuard:
    """Make the wheel scroll ``container`` (and every field in it, now and later) instead of
    changing the fields under the pointer."""
    return WheelGuard(container)
