"""Where a reopened project lands: the image the user was last on, else the first image not yet accepted.

The image the user was last on (selected, edited or accepted: in the app these are always the current image) is the
project's `meta` row `last_image` (`ProjectStore.remember_image`), one committed statement, so a crash keeps the
previous or the new value, never half of one. No row (a first open, a project made before this key or filled by
the CLI) or an image no longer in the folder: the first image not accepted, in the folder's order; the first image
when every one is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

LAST_IMAGE_KEY = "last_image"
"""The `meta` key holding the relative path of the image the user was last on."""


def resume_image(rel_paths: Iterable[str], statuses: Mapping[str, str], last_image: str | None) -> str | None:
    """The image to open: `last_image` when it is one of `rel_paths` (the folder's images, in list order), else
    the first whose status is not accepted, else the first; None when there are no images."""
    rels = list(rel_paths)
    if not rels:
        return None
    if last_image is not None and last_image in set(rels):
        return last_image
    return next((rel for rel in rels if str(statuses.get(rel, "new")) != "accepted"), rels[0])
