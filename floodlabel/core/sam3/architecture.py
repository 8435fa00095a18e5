"""SAM 3's image model (Meta's `sam3` 0.1.4): its sizes, read from a checkpoint's tensor shapes, and the builder.

`build_sam3_model(arch)` assembles `sam3.model.sam3_image.Sam3Image` from the package's own classes exactly as
`sam3.model_builder.build_sam3_image_model(enable_inst_interactivity=True)` does, with the sizes as parameters:
`OFFICIAL` is Meta's configuration (about 0.85 B parameters with the interactive tracker; the test
tests/test_sam3_architecture.py checks that the two builders give the same tensors), and tests build a reduced one
(tests/tiny_sam3.py). Fixed by SAM 3's design and kept in every size: the 1008x1008 input frame, 14-pixel patches
(a 72x72 token grid) and so the 288 / 144 / 72 feature pyramid.

`sam3` is imported only here and in the backend, when a SAM 3 model is built or run; without it ModelError says how
to install it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from floodlabel.core.common.errors import ModelError

if TYPE_CHECKING:
    from sam3.model.sam3_image import Sam3Image

IMAGE_SIZE = 1008  # SAM 3's input frame: the image is resized (not padded) to 1008x1008
PATCH = 14  # 72x72 tokens
GRID = IMAGE_SIZE // PATCH
INSTALL_HINT = ("SAM 3 needs Meta's sam3 package: bash packaging/setup_env.sh, or .venv/bin/pip install --no-deps "
                "sam3==0.1.4 timm ftfy regex einops huggingface-hub open_clip_torch")


@dataclass(frozen=True)
class Sam3Architecture:
    """The sizes of one SAM 3 image model. Every field is read back from a checkpoint's tensors (`infer`)."""

    vit_dim: int = 1024  # ViT trunk width (16 heads of 64)
    vit_depth: int = 32
    vit_mlp: int = 4736  # ViT MLP hidden width (4.625 x 1024)
    text_width: int = 1024  # text transformer width (heads of 64)
    text_layers: int = 24
    d_model: int = 256  # every head after the trunk: neck, fusion encoder, decoder, segmentation, tracker
    ffn: int = 2048  # their feed-forward width
    encoder_layers: int = 6
    decoder_layers: int = 6
    num_queries: int = 200  # detector queries: at most this many instances per text prompt
    geometry_layers: int = 3
    tracker_mem_dim: int = 64

    @property
    def name(self) -> str:
        """'sam3' for Meta's configuration, 'sam3-custom' for any other (a reduced test model)."""
        return "sam3" if self == OFFICIAL else "sam3-custom"

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


OFFICIAL = Sam3Architecture()

# keys of the model's own state dict (Sam3Image with its interactive predictor) that infer() reads
_PATCH_KEY = "backbone.vision_backbone.trunk.patch_embed.proj.weight"  # (vit_dim, 3, 14, 14)
_VIT_MLP_KEY = "backbone.vision_backbone.trunk.blocks.0.mlp.fc1.weight"  # (vit_mlp, vit_dim)
_TEXT_KEY = "backbone.language_backbone.encoder.token_embedding.weight"  # (vocab, text_width)
_NECK_KEY = "backbone.vision_backbone.convs.2.conv_1x1.weight"  # (d_model, vit_dim, 1, 1)
_FFN_KEY = "transformer.encoder.layers.0.linear1.weight"  # (ffn, d_model)
_QUERY_KEY = "transformer.decoder.query_embed.weight"  # (num_queries, d_model)
_MEM_KEY = "inst_interactive_predictor.model.maskmem_backbone.out_proj.weight"  # (mem_dim, d_model, 1, 1)
REQUIRED_KEYS = (_PATCH_KEY, _VIT_MLP_KEY, _TEXT_KEY, _NECK_KEY, _FFN_KEY, _QUERY_KEY)


def infer_architecture(state: dict[str, torch.Tensor], source: object = "checkpoint") -> Sam3Architecture:
    """The sizes from a model state dict's tensor shapes (keys as `Sam3Image.state_dict()` names them, i.e. after
    `checkpoint.model_state` mapped the official file's "detector." / "tracker." prefixes). ModelError when the
    tensors are not SAM 3's."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ModelError(f"{source} is not a SAM 3 checkpoint (no {missing[0]})")

    def count(prefix: str) -> int:
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        return len({int(m.group(1)) for k in state if (m := pattern.match(k))})

    mem = state.get(_MEM_KEY)
    return Sam3Architecture(
        vit_dim=int(state[_PATCH_KEY].shape[0]),
        vit_depth=count("backbone.vision_backbone.trunk.blocks."),
        vit_mlp=int(state[_VIT_MLP_KEY].shape[0]),
        text_width=int(state[_TEXT_KEY].shape[1]),
        text_layers=count("backbone.language_backbone.encoder.transformer.resblocks."),
        d_model=int(state[_NECK_KEY].shape[0]),
        ffn=int(state[_FFN_KEY].shape[0]),
        encoder_layers=count("transformer.encoder.layers."),
        decoder_layers=count("transformer.decoder.layers."),
        num_queries=int(state[_QUERY_KEY].shape[0]),
        geometry_layers=count("geometry_encoder.encode."),
        tracker_mem_dim=int(mem.shape[0]) if mem is not None else OFFICIAL.tracker_mem_dim,
    )


def build_sam3_model(arch: Sam3Architecture, bpe_path: str) -> "Sam3Image":
    """A randomly initialised SAM 3 image model of `arch` with its interactive (points / boxes) predictor: eval mode,
    float32, CPU. `bpe_path`: the tokenizer's vocabulary (core.sam3.vocabulary.bpe_path()). Nothing is downloaded.

    Mirrors sam3.model_builder.build_sam3_image_model(enable_inst_interactivity=True, load_from_HF=False) with the
    sizes of `arch` in place of its constants, and two changes that keep it off CUDA-only code paths and leave
    its tensors unchanged: no precomputed position encodings (`_position_encoding`) and no precomputed box-bias
    coordinates in the decoder (resolution / stride None: Meta's builder makes them on "cuda"; they are made on
    the first forward instead). sam3 0.1.4's own builder therefore cannot build on a machine without CUDA.
    """
    import warnings

    try:
        with warnings.catch_warnings():  # sam3's modules warn at import that CUDA autocast is off on a CPU
            warnings.simplefilter("ignore")
            import sam3.model_builder  # noqa: F401  (imports every module below once, quietly)
        from sam3.model.decoder import TransformerDecoder, TransformerDecoderLayer
        from sam3.model.encoder import TransformerEncoderFusion, TransformerEncoderLayer
        from sam3.model.geometry_encoders import SequenceGeometryEncoder
        from sam3.model.maskformer_segmentation import PixelDecoder, UniversalSegmentationHead
        from sam3.model.model_misc import MLP, DotProductScoring, TransformerWrapper
        from sam3.model.model_misc import MultiheadAttentionWrapper as MultiheadAttention
        from sam3.model.necks import Sam3DualViTDetNeck
        from sam3.model.sam1_task_predictor import SAM3InteractiveImagePredictor
        from sam3.model.sam3_image import Sam3Image
        from sam3.model.text_encoder_ve import VETextEncoder
        from sam3.model.tokenizer_ve import SimpleTokenizer
        from sam3.model.vitdet import ViT
        from sam3.model.vl_combiner import SAM3VLBackbone
    except ImportError as exc:
        raise ModelError(f"{INSTALL_HINT} ({exc})") from None

    # building on a CPU, sam3's tracker asks for a CUDA autocast and its modules call torch.jit.script: both warn on
    # every build (the CLI printed them); neither means anything to a user
    warnings.filterwarnings("ignore", message="CUDA is not available or torch_xla is imported", category=UserWarning)
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    a, d = arch, arch.d_model
    quarter = a.vit_depth // 4
    trunk = ViT(
        img_size=IMAGE_SIZE, pretrain_img_size=336, patch_size=PATCH, embed_dim=a.vit_dim, depth=a.vit_depth,
        num_heads=max(1, a.vit_dim // 64), mlp_ratio=a.vit_mlp / a.vit_dim, norm_layer="LayerNorm",
        drop_path_rate=0.1, qkv_bias=True, use_abs_pos=True, tile_abs_pos=True,
        global_att_blocks=tuple(sorted({max(0, i * quarter - 1) for i in (1, 2, 3)} | {a.vit_depth - 1})),
        rel_pos_blocks=(), use_rope=True, use_interp_rope=True, window_size=24, pretrain_use_cls_token=True,
        retain_cls_token=False, ln_pre=True, ln_post=False, return_interm_layers=False, bias_patch_embed=False,
        compile_mode=None,
    )
    neck = Sam3DualViTDetNeck(position_encoding=_position_encoding(d), d_model=d,
                              scale_factors=[4.0, 2.0, 1.0, 0.5], trunk=trunk, add_sam2_neck=True)
    text = VETextEncoder(tokenizer=SimpleTokenizer(bpe_path=bpe_path), d_model=d, width=a.text_width,
                         heads=max(1, a.text_width // 64), layers=a.text_layers)
    backbone = SAM3VLBackbone(visual=neck, text=text, scalp=1)

    def attention(batch_first: bool | None = None, dropout: float = 0.1) -> MultiheadAttention:
        kw = {} if batch_first is None else {"batch_first": batch_first}
        return MultiheadAttention(num_heads=8, dropout=dropout, embed_dim=d, **kw)

    encoder = TransformerEncoderFusion(
        layer=TransformerEncoderLayer(
            activation="relu", d_model=d, dim_feedforward=a.ffn, dropout=0.1, pos_enc_at_attn=True,
            pos_enc_at_cross_attn_keys=False, pos_enc_at_cross_attn_queries=False, pre_norm=True,
            self_attention=attention(True), cross_attention=attention(True)),
        num_layers=a.encoder_layers, d_model=d, num_feature_levels=1, frozen=False, use_act_checkpoint=True,
        add_pooled_text_to_img_feat=False, pool_text_with_mask=True,
    )
    decoder = TransformerDecoder(
        layer=TransformerDecoderLayer(activation="relu", d_model=d, dim_feedforward=a.ffn, dropout=0.1,
                                      cross_attention=attention(), n_heads=8, use_text_cross_attention=True),
        num_layers=a.decoder_layers, num_queries=a.num_queries, return_intermediate=True, box_refine=True,
        num_o2m_queries=0, dac=True, boxRPB="log", d_model=d, frozen=False, interaction_layer=None,
        dac_use_selfatt_ln=True, resolution=None, stride=None, use_act_checkpoint=True, presence_token=True,
    )
    scoring = DotProductScoring(d_model=d, d_proj=d, prompt_mlp=MLP(
        input_dim=d, hidden_dim=a.ffn, output_dim=d, num_layers=2, dropout=0.1, residual=True,
        out_norm=torch.nn.LayerNorm(d)))
    segmentation = UniversalSegmentationHead(
        hidden_dim=d, upsampling_stages=3, aux_masks=False, presence_head=False, dot_product_scorer=None,
        act_ckpt=True, cross_attend_prompt=attention(dropout=0),
        pixel_decoder=PixelDecoder(num_upsampling_stages=3, interpolation_mode="nearest", hidden_dim=d))
    geometry = SequenceGeometryEncoder(
        pos_enc=_position_encoding(d), encode_boxes_as_points=False, points_direct_project=True, points_pool=True,
        points_pos_enc=True, boxes_direct_project=True, boxes_pool=True, boxes_pos_enc=True, d_model=d,
        num_layers=a.geometry_layers,
        layer=TransformerEncoderLayer(
            activation="relu", d_model=d, dim_feedforward=a.ffn, dropout=0.1, pos_enc_at_attn=False,
            pre_norm=True, self_attention=attention(False), pos_enc_at_cross_attn_queries=False,
            pos_enc_at_cross_attn_keys=True, cross_attention=attention(False)),
        use_act_ckpt=True, add_cls=True, add_post_encode_proj=True,
    )
    predictor = SAM3InteractiveImagePredictor(_tracker(arch))
    model = Sam3Image(
        backbone=backbone, transformer=TransformerWrapper(encoder=encoder, decoder=decoder, d_model=d),
        input_geometry_encoder=geometry, segmentation_head=segmentation, num_feature_levels=1, o2m_mask_predict=True,
        dot_prod_scoring=scoring, use_instance_query=False, multimask_output=True,
        inst_interactive_predictor=predictor, matcher=None,
    )
    _init_empty_parameters(model)
    return model.eval()


def _init_empty_parameters(model: torch.nn.Module) -> None:
    """sam3 leaves three parameters as `torch.empty` (uninitialised memory: NaN or huge values in a model used
    with random weights) because a checkpoint always overwrites them: the text transformer's positional embedding
    and projection, and the fusion encoder's level embedding. Initialised as open_clip initialises the first two
    (normal, std 0.01 and width^-0.5) and with a normal for the third, from torch's seeded generator."""
    for name, p in model.named_parameters():
        if name.endswith("language_backbone.encoder.positional_embedding"):
            torch.nn.init.normal_(p, std=0.01)
        elif name.endswith("language_backbone.encoder.text_projection"):
            torch.nn.init.normal_(p, std=p.shape[0] ** -0.5)
        elif name.endswith("level_embed"):
            torch.nn.init.normal_(p)


def _position_encoding(d: int):
    """Meta's builder passes precompute_resolution=1008, which fills the encoding's cache on device "cuda" (and
    fails without one); left out, the same encodings are computed on the first forward, on the model's device."""
    from sam3.model.position_encoding import PositionEmbeddingSine

    return PositionEmbeddingSine(num_pos_feats=d, normalize=True, scale=None, temperature=10000)


def _tracker(arch: Sam3Architecture):
    """sam3.model_builder.build_tracker(apply_temporal_disambiguation=False) with `arch`'s widths: the SAM-style
    prompt encoder and mask decoder that serve points and boxes (its memory parts are built, as Meta's builder
    does, so the official checkpoint's tracker weights load, but never run in image mode)."""
    from sam3.model.decoder import TransformerDecoderLayerv2, TransformerEncoderCrossAttention
    from sam3.model.memory import CXBlock, SimpleFuser, SimpleMaskDownSampler, SimpleMaskEncoder
    from sam3.model.model_misc import TransformerWrapper
    from sam3.model.sam3_tracking_predictor import Sam3TrackerPredictor
    from sam3.sam.transformer import RoPEAttention

    d, mem = arch.d_model, arch.tracker_mem_dim
    maskmem = SimpleMaskEncoder(
        out_dim=mem, in_dim=d, position_encoding=_position_encoding(mem),
        mask_downsampler=SimpleMaskDownSampler(kernel_size=3, stride=2, padding=1, interpol_size=[1152, 1152]),
        fuser=SimpleFuser(layer=CXBlock(dim=d, kernel_size=7, padding=3, layer_scale_init_value=1.0e-06,
                                        use_dwconv=True), num_layers=2),
    )
    rope = dict(num_heads=1, downsample_rate=1, dropout=0.1, rope_theta=10000.0, feat_sizes=[GRID, GRID],
                use_fa3=False, use_rope_real=False)
    layer = TransformerDecoderLayerv2(
        cross_attention_first=False, activation="relu", dim_feedforward=arch.ffn, dropout=0.1,
        pos_enc_at_attn=False, pre_norm=True, self_attention=RoPEAttention(embedding_dim=d, **rope), d_model=d,
        pos_enc_at_cross_attn_keys=True, pos_enc_at_cross_attn_queries=False,
        cross_attention=RoPEAttention(embedding_dim=d, kv_in_dim=mem, rope_k_repeat=True, **rope),
    )
    transformer = TransformerWrapper(
        encoder=TransformerEncoderCrossAttention(
            remove_cross_attention_layers=[], batch_first=True, d_model=d, frozen=False, pos_enc_at_input=True,
            layer=layer, num_layers=4, use_act_checkpoint=False),
        decoder=None, d_model=d)
    tracker = Sam3TrackerPredictor(
        image_size=IMAGE_SIZE, num_maskmem=7, backbone=None, backbone_stride=PATCH, transformer=transformer,
        maskmem_backbone=maskmem, multimask_output_in_sam=True, forward_backbone_per_frame_for_eval=True,
        trim_past_non_cond_mem_for_eval=False, multimask_output_for_tracking=True, multimask_min_pt_num=0,
        multimask_max_pt_num=1, always_start_from_first_ann_frame=False, non_overlap_masks_for_mem_enc=False,
        non_overlap_masks_for_output=False, max_cond_frames_in_attn=4, offload_output_to_cpu_for_eval=False,
        sam_mask_decoder_extra_args={"dynamic_multimask_via_stability": True,
                                     "dynamic_multimask_stability_delta": 0.05,
                                     "dynamic_multimask_stability_thresh": 0.98},
        clear_non_cond_mem_around_input=True, fill_hole_area=0, use_memory_selection=False,
    )
    # its __init__ enters a CUDA bf16 autocast "for the entire model process" and never leaves it: on the building
    # thread that state outlived the build and changed later work there (a SAM 2.1 fine-tuning run in the same
    # process learned half as much). Left here; the segmenter's ComputeConfig decides precision.
    tracker.bf16_context.__exit__(None, None, None)
    return tracker
