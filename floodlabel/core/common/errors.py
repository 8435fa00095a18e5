"""Error types the CLI and GUI turn into one readable line."""


class FloodLabelError(Exception):
    """Base class for expected, user-facing errors (bad input, missing model, ...)."""


class ImageReadError(FloodLabelError):
    """An image or mask file could not be read. Carries the path and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


class AmbiguousMaskError(ImageReadError):
    """A mask whose values do not say which pixels are water (e.g. {0, 1, 2} class indices)."""


class DatasetError(FloodLabelError):
    """A dataset folder cannot be opened (missing, empty, not a folder)."""


class ModelError(FloodLabelError):
    """A model name or checkpoint is unknown, missing, corrupt or not a SAM checkpoint."""


class DownloadError(FloodLabelError):
    """A checkpoint download failed (network, checksum, interrupted transfer)."""


class StoreError(FloodLabelError):
    """The project store cannot do what was asked (read-only, locked, newer or corrupt database, disk full, ...)."""


class ExportError(FloodLabelError):
    """An export cannot be written (folder outside the chosen one, files it did not write, name clashes, ...)."""


class DamagedProjectError(StoreError):
    """The project database cannot be read (damaged, not a FloodLabel database). Nothing was opened or changed;
    `floodlabel recover` moves it aside and rebuilds the project from the accepted masks and their sidecars.
    Carries the database's path and what SQLite said (`detail`, may be empty)."""

    def __init__(self, path: object, detail: str = "") -> None:
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.path} is damaged or is not a FloodLabel project database; it was left as it is and "
                         "nothing was changed (`floodlabel recover` moves it aside and rebuilds the project from the "
                         f"accepted masks in masks/){f' ({detail})' if detail else ''}")
