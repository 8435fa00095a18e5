"""Fine-tuning SAM's (v1 or 2.1) mask decoder on cached image embeddings (no Qt; the GUI runs it in a worker).

    from floodlabel.core.training.examples import TrainingItem, items_from_dataset
    from floodlabel.core.training.finetune import FinetuneSettings, finetune

- examples.py:           TrainingItem (image, mask, recorded prompts) and the simulated prompts drawn per step.
- embeddings.py:         embeddings computed once through the EmbeddingCache, then read per batch (float16 at rest).
- losses.py:             BCE / focal + Dice over SAM's 256x256 low-res logits.
- batched_decoder.py:    SAM's mask decoder for a batch of images with one prompt each, differentiable, re-associated.
- families.py:           what the trainer asks a model family (DecoderFamily; family_of): its modules, feature batches,
                         prompt frame and tokens, batched decode; SAM v1's (SamFamily) is here.
- sam2_family.py:        SAM 2.1's (Sam2Family): stretched 1024 frame, three cached maps, high-res mask head.
- finetune.py:           the loop: split, epochs, cancel, NaN guard (re-exports the public names below).
- finetune_settings.py:  FinetuneSettings (stored in the checkpoint) and the precision they resolve to.
- finetune_progress.py:  TrainingProgress events, EpochMetrics, FinetuneResult.
- trainer.py:            Trainer: the trained modules, one optimiser step, validation.
- data_split.py:         the seeded train/validation split and the data record the checkpoint stores.
- best_checkpoint.py:    the best epoch's weights, saved atomically whenever validation improves.
- distributed.py:        the same run shared by several processes under torchrun (DDP).
- child_trainer.py:      one run in a low-priority child process (the window's Fine-tune panel), events by pipe.
- core/sam/decoder_checkpoint.py: the fine-tuned checkpoint format (decoder weights + base id and SHA-256).

Nothing is imported here so that `import floodlabel.core.sam.decoder_checkpoint` stays light.
"""
