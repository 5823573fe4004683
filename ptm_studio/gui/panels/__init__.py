"""One file per panel; each runs on its own with ``python -m ptm_studio.gui.panels.<name>``."""
