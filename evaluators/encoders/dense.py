r"""Dense patch features of an open_clip ViT in the joint embedding space.

CLIP's image embedding is the class token after the last block, ``ln_post`` and ``proj``.
Its patch tokens are not aligned with text: the last block's attention mixes every token
into every other. MaskCLIP (Zhou et al., ECCV 2022, "Extract Free Dense Labels from CLIP")
keeps the last attention's *value* path instead, so each patch token stays its own:

.. math:: v = W_o (W_v\, \mathrm{LN}_1(x) + b_v) + b_o,

then ``ln_post`` and ``proj`` as for the class token. ``variant``:

``maskclip``
    :math:`x + v`, then the block's MLP with its residual: the last block with its
    attention map replaced by the identity.
``clearclip``
    :math:`v` alone, no residual and no MLP (Lan et al., ECCV 2024, "ClearCLIP"), which
    they found cleaner.

Returns unit rows (B, gh, gw, d). Only open_clip's ``VisionTransformer`` towers are
supported (one line naming the tower otherwise).
"""

from __future__ import annotations

from vgrc.evaluators.errors import InvalidInputError

__all__ = ["DENSE_VARIANTS", "patch_features"]

DENSE_VARIANTS = ("maskclip", "clearclip")


def _value_path(block, x, variant: str):
    import torch.nn.functional as F

    attn = block.attn
    d = x.shape[-1]
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * d :], None if attn.in_proj_bias is None else attn.in_proj_bias[2 * d :])
    v = block.ls_1(attn.out_proj(v))
    if variant == "clearclip":
        return v
    x = x + v
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def patch_features(model, pixels, variant: str = "maskclip"):
    """Unit-norm patch features (B, gh, gw, d) of preprocessed ``pixels`` (B, 3, H, W)."""
    import torch

    visual = model.visual
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if type(visual).__name__ != "VisionTransformer" or blocks is None or not hasattr(blocks[-1], "attn"):
        raise InvalidInputError(f"--candidate-objects patches needs an open_clip ViT image tower; this model's is {type(visual).__name__}")
    if variant not in DENSE_VARIANTS:
        raise InvalidInputError(f"unknown --patch-features {variant!r}; valid: {', '.join(DENSE_VARIANTS)}")
    with torch.no_grad():
        x = visual._embeds(pixels.to(next(visual.parameters()).device, next(visual.parameters()).dtype))
        if not getattr(visual.transformer, "batch_first", True):
            raise InvalidInputError("--candidate-objects patches needs a batch-first open_clip transformer (open_clip ≥ 2.24)")
        for block in blocks[:-1]:
            x = block(x)
        x = _value_path(blocks[-1], x, variant)[:, 1:]  # patch tokens (the class token first)
        x = visual.ln_post(x)
        if visual.proj is not None:
            x = x @ visual.proj
        x = torch.nn.functional.normalize(x.float(), dim=-1)
    gh, gw = visual.grid_size
    return x.reshape(x.shape[0], gh, gw, -1).cpu().numpy()
