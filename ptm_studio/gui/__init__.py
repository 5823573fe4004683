"""The PySide6 desktop app: panels over the Qt-free core (``gui → core``, never the reverse)."""
