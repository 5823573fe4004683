"""The Qt-free core: config, data, models, objectives, engine, metrics, runs, inference.

Nothing under ``ptm_studio.core`` may import Qt, pyqtgraph or ``ptm_studio.gui``
(tests/core/test_core_is_qt_free.py enforces it).
"""
