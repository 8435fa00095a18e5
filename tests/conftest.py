"""Shared test set-up: offscreen Qt, isolated cache, data and settings folders, no network; the `window` factory."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# belt and braces for the per-test QSettings folders below: Qt's default settings folder is a temporary one too,
# set before any QSettings exists, so no test can write the user's ~/.config/FloodLabel
import tempfile  # noqa: E402

os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="floodlabel-test-config-")
# the window pre-encodes in its own thread in tests (apps started by tests inherit it): a child process per window
# would load torch and the model again for every test; tests/test_background_encoder.py covers the child process
os.environ["FLOODLABEL_PREFETCH"] = "thread"
# and fine-tunes in a thread (a child process per run would load torch again); tests/test_finetune_child.py covers
# the child process
os.environ["FLOODLABEL_TRAINING"] = "thread"

import pytest


_tests_since_full_collection = 0
FULL_COLLECTION_EVERY = 25
"""A full collection (all generations) costs 0.2-0.9 s in a suite process (half a million objects: torch, Qt, sam2,
sam3); doing two per test took half the suite's time. Objects a test made are all young (no collection runs during
it), so a young-generation collection after each test frees its cycles, and a full one every 25 tests the rest."""


@pytest.fixture(autouse=True)
def garbage_collected_in_the_main_thread():
    """Cyclic garbage is collected here, in the main thread, after each test, and never during one: a collection that
    a worker thread triggered destroyed an earlier test's Qt objects off the GUI thread and deadlocked against the
    main thread (test_compare_view_shows_two_models_on_the_same_prompts hung in ~QMenu). The app itself collects on
    a main-thread timer (gui.app.create_app)."""
    import gc

    global _tests_since_full_collection
    gc.disable()
    yield
    _tests_since_full_collection += 1
    if _tests_since_full_collection >= FULL_COLLECTION_EVERY:
        _tests_since_full_collection = 0
        gc.collect()
    else:
        gc.collect(1)
    # left disabled: between tests too, only this fixture collects (leftover worker threads never do)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own FLOODLABEL_CACHE_DIR so nothing touches the user's cache."""
    d = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own FLOODLABEL_DATA_DIR (projects of folders that cannot hold one, the recent list)."""
    d = tmp_path_factory.mktemp("userdata")
    monkeypatch.setenv("FLOODLABEL_DATA_DIR", str(d))
    return d


@pytest.fixture
def window(qtbot):
    """A factory of shown annotation windows, closed after the test: window(folder, session=None, model=None,
    project=None, size=(1280, 760)) -> AnnotationWindow (offscreen, exposed)."""
    from floodlabel.gui.window.annotation_window import AnnotationWindow

    made = []

    def make(folder, session=None, model=None, project=None, size=(1280, 760)):
        w = AnnotationWindow(folder, model=model, session=session, project=project)
        qtbot.addWidget(w)
        w.resize(*size)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """Every test gets its own QSettings folder (INI files), so nothing reads or writes the user's settings."""
    from PySide6.QtCore import QSettings

    d = tmp_path_factory.mktemp("settings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(d))
    return d


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test reaches the network: a socket connection to anything but loopback (127.0.0.0/8, ::1, localhost) or a
    Unix socket raises OSError where it is made and fails the test at teardown (even if the code caught the error).
    The fixture's value is the list of blocked addresses (a test of the guard itself may clear it)."""
    import errno
    import ipaddress
    import socket

    blocked: list[object] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address):
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return
        host = str(address[0])
        try:
            local = host == "localhost" or ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            local = False
        if not local:
            blocked.append(address)
            raise OSError(errno.ENETUNREACH, f"network disabled in tests: {address}")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield blocked
    if blocked:
        pytest.fail(f"the test tried to reach the network: {blocked}", pytrace=False)


# tests import helpers such as tiny_sam and synthetic_scenes from this folder
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


SLOW_FILES = {"test_store_kill.py", "test_window_kill.py", "test_cluster.py", "test_distributed_finetune.py",
              "test_real_window.py", "test_finetune.py", "test_finetune_panel.py", "test_sam_refinement.py",
              "test_eval_jobs_auto.py", "test_model_download.py", "test_suite_guards.py"}
"""Files of tests that take seconds each (SIGKILL loops, Ray, DDP, real X windows, training): marked `slow`, so
`pytest -m "not slow"` is the quick loop while editing (README, Development). CI runs everything."""

SLOW_TESTS = {"test_sigterm_closes_the_app_and_its_project_cleanly",
              "test_killed_app_with_damaged_wal_keeps_every_mask_and_recovers"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_FILES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
