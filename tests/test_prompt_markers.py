"""PromptMarkers: the point markers' symbols are rendered once per style, not once per click (issue 16.4)."""

from __future__ import annotations

import numpy as np

from floodlabel.gui.canvas.markers import PromptMarkers


def test_many_clicks_keep_the_symbol_atlas_at_one_entry_per_style(qtbot):
    markers = PromptMarkers()
    scatter = markers.items()[0]
    rng = np.random.default_rng(0)
    for n in range(1, 41):  # a click each: the prompt grows, both labels, pending and not
        points = rng.uniform(0, 500, (n % 6 + 1, 2))
        markers.set_prompt(points, rng.integers(0, 2, len(points)), None, pending=n % 10 == 0)
    # 2 labels x (pending, not); a new pen and brush per click re-rendered every symbol and grew the atlas by it
    # (setData renders the new styles into the atlas)
    assert 1 <= len(scatter.fragmentAtlas) <= 4
