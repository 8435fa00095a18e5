"""Bring a project's accepted masks back after its database was damaged, emptied, truncated or moved away.

`recover_project(DATA)` (the CLI's `floodlabel recover`):
1. opens the project for writing; when its database cannot be read, moves `project.sqlite` (and its `-wal`, `-shm`)
   aside as `project.sqlite.damaged-<time>` (never deletes it) and starts a new database;
2. rebuilds the row of every mask PNG in `masks/` that no row points to, from the sidecar written beside it at
   accept (the image's path and hash, prompts, model, metrics): the newest mask per image;
3. matches masks older than sidecars to the dataset's images by the stem in their name and their size.
Masks that cannot be matched, and damaged ones, are kept and listed. In-progress work (autosaves) that was only in
the lost database cannot be recovered: only accepted masks have sidecars. Neither can proposals (`floodlabel
propose`): their table was in the lost database and their PNGs have no sidecar, so the first writable open removes
them as strays (`proposals.remove_stray_files`). The report counts those this recovery's open removed and says that
`floodlabel propose` makes them again (a proposal is model output; one removed by an earlier open is not counted).
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from floodlabel.core.common.errors import DamagedProjectError, StoreError
from floodlabel.core.store.location import DB_NAME, MASKS_DIR_NAME, default_project_dir, find_project_dir
from floodlabel.core.store.orphan_masks import OrphanMask
from floodlabel.core.store.project_store import ProjectStore, Status
from floodlabel.core.store.proposals import PROPOSALS_DIR_NAME
from floodlabel.core.store.writer_lock import LOCK_NAME


@dataclass
class RecoveryReport:
    """What `recover_project` did. moved_aside: the damaged database files, renamed. restored: relative image paths
    whose accepted mask is back. kept: masks left as they are (no match, damaged). accepted: accepted images now.
    proposals_lost: proposal PNGs the lost database no longer named, removed by this recovery's open.
    propose_command: the command that makes them again."""

    project_dir: Path
    moved_aside: list[Path] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    kept: list[OrphanMask] = field(default_factory=list)
    accepted: int = 0
    proposals_lost: int = 0
    propose_command: str = "floodlabel propose DATA"

    def lines(self) -> list[str]:
        """The report as lines for a terminal or a message box."""
        out = [f"moved the damaged database aside: {p}" for p in self.moved_aside]
        out.append(f"restored {len(self.restored)} accepted mask(s); {self.accepted} image(s) are accepted now "
                   f"in {self.project_dir}")
        out += [f"kept, not restored: {o.png.name}: {o.reason}" for o in self.kept]
        if self.proposals_lost:
            out.append(f"{self.proposals_lost} proposal(s) were not recovered (they were listed only in the lost "
                       f"database); `{self.propose_command}` makes them again")
        return out


def recover_project(data_root: str | os.PathLike[str], project_dir: str | os.PathLike[str] | None = None,
                    image_rel_paths: Iterable[str] | None = None) -> RecoveryReport:
    """Recover the accepted masks of DATA's project (see the module docstring). image_rel_paths: the dataset's
    images relative to DATA, for masks without a sidecar (None: those stay unmatched).

    Raises StoreError when the project is read-only (another window has it open: close it first) or missing.
    """
    root = Path(data_root).expanduser().resolve()
    project = Path(project_dir).expanduser().resolve() if project_dir else (
        find_project_dir(root) or _project_with_masks(root) or default_project_dir(root))
    if not (project / MASKS_DIR_NAME).is_dir() and not (project / DB_NAME).exists():
        raise StoreError(f"no FloodLabel project at {project}: nothing to recover")
    report = RecoveryReport(project_dir=project)
    proposals = _proposal_files(project)  # before the open, which removes those no row names
    try:
        store = ProjectStore(root, project)
    except DamagedProjectError:
        report.moved_aside = _move_database_aside(project)
        store = ProjectStore(root, project)
    with store:
        if store.read_only:
            raise StoreError(f"cannot recover {project}: {store.read_only_reason}")
        report.restored = store.recover_orphans(image_rel_paths)
        report.kept = list(store.orphans)
        report.accepted = store.counts()[Status.ACCEPTED]
    report.proposals_lost = sum(not p.exists() for p in proposals)
    command = ["floodlabel", "propose", str(root)]
    report.propose_command = shlex.join(command if find_project_dir(root) == project else
                                        [*command, "--project", str(project)])
    return report


def _proposal_files(project: Path) -> list[Path]:
    """The proposal PNGs in the project's proposals/ folder."""
    try:
        return [p for p in (project / PROPOSALS_DIR_NAME).iterdir() if p.suffix == ".png" and p.is_file()]
    except OSError:
        return []


def _project_with_masks(root: Path) -> Path | None:
    """The default project folder when only its masks are left (its database was moved away)."""
    candidate = default_project_dir(root)
    return candidate if (candidate / MASKS_DIR_NAME).is_dir() else None


def _move_database_aside(project: Path) -> list[Path]:
    """Rename project.sqlite, -wal and -shm to `<name>.damaged-<time>`; returns the new paths."""
    from filelock import FileLock, Timeout

    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    try:
        with FileLock(project / LOCK_NAME, timeout=0):
            for suffix in ("", "-wal", "-shm"):
                path = project / f"{DB_NAME}{suffix}"
                if path.exists():
                    target = project / f"{DB_NAME}.damaged-{stamp}{suffix}"
                    os.replace(path, target)
                    moved.append(target)
    except Timeout:
        raise StoreError(f"cannot recover {project}: another FloodLabel window or command is using it; close it "
                         "first") from None
    except OSError as exc:
        raise StoreError(f"cannot move the damaged database of {project} aside: {exc.strerror or exc}") from exc
    return moved
