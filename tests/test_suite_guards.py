"""The suite's own rules: no network in tests (conftest's no_network guard) and no Qt in floodlabel.core."""

from __future__ import annotations

import pkgutil
import socket
import subprocess
import sys

import pytest

import floodlabel.core


def test_a_connection_to_the_network_is_refused_and_recorded(no_network):
    with pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routed
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s, pytest.raises(OSError, match="network disabled"):
        s.connect_ex(("2001:db8::1", 80, 0, 0))
    assert [a[0] for a in no_network] == ["192.0.2.1", "2001:db8::1"]
    no_network.clear()  # blocked on purpose: do not fail this test


def test_loopback_is_allowed(no_network):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
        with socket.create_connection(("localhost", server.getsockname()[1]), timeout=5):
            pass
    assert no_network == []


def test_core_imports_no_qt():
    """Every floodlabel.core module, imported in a fresh interpreter, leaves PySide6 unloaded."""
    names = sorted(m.name for m in pkgutil.walk_packages(floodlabel.core.__path__, "floodlabel.core."))
    assert "floodlabel.core.models.session" in names and "floodlabel.core.training.finetune" in names
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names)
            + "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'PyQt', 'shiboken', 'pyqtgraph')))\n"
            + "assert not qt, qt\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
