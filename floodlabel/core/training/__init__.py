"""Fine-tuning SAM's mask decoder on cached image embeddings (no Qt; the GUI runs it in a worker).

    from floodlabel.core.training.examples import TrainingItem, items_from_dataset
    from floodlabel.core.training.finetune import FinetuneSettings, finetune

- examples.py:           TrainingItem (image, mask, recorded prompts) and the simulated prompts drawn per step.
- embeddings.py:         embeddings computed once through the EmbeddingCache, then read per batch (float16 at rest).
- losses.py:             BCE / focal + Dice over SAM's 256x256 low-res logits.
- batched_decoder.py:    SAM's mask decoder for a batch of images with one prompt each, differentiable, re-associated.
- finetune.py:           the loop: settings, progress events, cancel, NaN guard, best weights kept.
- decoder_checkpoint.py: the fine-tuned checkpoint format (decoder weights + base id and SHA-256) and loading.

Nothing is imported here so that `import floodlabel.core.sam.decoder_checkpoint` stays light.
"""
