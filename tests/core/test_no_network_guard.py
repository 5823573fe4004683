"""The test suite's own guard: a connection beyond this machine fails before any packet leaves."""

from __future__ import annotations

import socket

import pytest


def test_connections_beyond_loopback_are_refused_by_the_guard() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe,
        pytest.raises(AssertionError, match="network"),
    ):
        probe.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed, and never tried here
