"""Recent folders in QSettings (redirected to a temp folder by conftest), the start-up folder, and the CLI's
`floodlabel DATA` / bare `floodlabel` routing to the gui command (its run() is replaced: no window opens)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from floodlabel import cli
from floodlabel.commands import gui_command
from floodlabel.gui.resources import sample_dataset_dir
from floodlabel.gui.window.recent import MAX_RECENT, RECENT_KEY, add_recent_folder, recent_folders, settings, startup_folder


def test_settings_are_redirected_to_the_test_folder(isolated_settings):
    assert Path(settings().fileName()).is_relative_to(isolated_settings)
    assert Path(QSettings().fileName()).is_relative_to(isolated_settings)


def test_recent_folders_most_recent_first_deduplicated_and_capped(tmp_path):
    assert recent_folders() == []
    folders = [tmp_path / f"d{i}" for i in range(MAX_RECENT + 2)]
    for f in folders:
        add_recent_folder(f)
    assert recent_folders() == [str(f) for f in reversed(folders)][:MAX_RECENT]
    add_recent_folder(folders[5])  # again: moves to the front, no duplicate
    got = recent_folders()
    assert got[0] == str(folders[5]) and got.count(str(folders[5])) == 1 and len(got) == MAX_RECENT
    add_recent_folder(tmp_path / "x" / ".." / "d9")  # same folder spelled differently
    assert recent_folders()[0] == str(folders[9]) and recent_folders().count(str(folders[9])) == 1


def test_a_single_recent_folder_survives_the_ini_round_trip(tmp_path):
    add_recent_folder(tmp_path)
    settings().sync()
    assert QSettings(settings().fileName(), QSettings.Format.IniFormat).value(RECENT_KEY) is not None
    assert recent_folders() == [str(tmp_path)]


def test_startup_folder_requested_else_last_existing_recent_else_sample(tmp_path):
    assert startup_folder(None) == sample_dataset_dir()
    assert (sample_dataset_dir() / "Image").is_dir() and (sample_dataset_dir() / "Mask").is_dir()
    older, newer = tmp_path / "older", tmp_path / "newer"
    older.mkdir()
    add_recent_folder(older)
    add_recent_folder(newer)  # not on disk (e.g. an unplugged drive): skipped
    assert startup_folder(None) == older
    assert startup_folder("~/asked") == Path.home() / "asked"  # asked for: taken as is, the window reports errors
    assert startup_folder(str(newer)) == newer


@pytest.fixture
def gui_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(gui_command, "run", lambda args: calls.append(args) or 0)
    return calls


def test_floodlabel_data_is_floodlabel_gui_data(gui_calls, tmp_path):
    assert cli.main([str(tmp_path), "--model", "classic"]) == 0
    assert cli.main(["gui", str(tmp_path)]) == 0
    assert cli.main([]) == 0
    assert [(a.command, a.data, a.model) for a in gui_calls] == [
        ("gui", str(tmp_path), "classic"), ("gui", str(tmp_path), None), ("gui", None, None)]


def test_a_command_name_or_a_missing_path_is_not_taken_as_data(gui_calls, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stats").mkdir()  # a folder named like a command: the command wins
    assert cli.with_default_command(["stats", "x"]) == ["stats", "x"]
    assert cli.with_default_command(["--version"]) == ["--version"]
    assert cli.with_default_command(["stats2"]) == ["stats2"]
    with pytest.raises(SystemExit) as exc:
        cli.main([str(tmp_path / "missing")])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert gui_calls == []
