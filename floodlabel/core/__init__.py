"""Qt-free core: images, datasets, prompts, metrics, models, segmenters, caches, evaluation."""
