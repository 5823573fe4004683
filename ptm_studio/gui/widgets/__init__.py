"""Reusable widgets: live curves, the thumbnail grid, the large image viewer."""
