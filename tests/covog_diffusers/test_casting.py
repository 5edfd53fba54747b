"""``cast_to_dtype``: dtype casts without diffusers' "should be kept in float32: []" warning."""

import torch

from covog_diffusers.models import MultiHumanPoseEncoder
from covog_diffusers.models.casting import cast_to_dtype


def _encoder():
    return MultiHumanPoseEncoder(block_out_channels=(4, 8), out_channels=8)


def test_diffusers_warns_on_a_plain_cast(diffusers_log):
    """The upstream behaviour the helper exists for; when diffusers stops warning, drop the helper."""
    _encoder().to(torch.float64)
    assert any("should be kept in float32: []" in message for message in diffusers_log)


def test_cast_to_dtype_casts_silently(diffusers_log):
    encoder = _encoder()
    assert cast_to_dtype(encoder, torch.float64) is encoder
    assert {p.dtype for p in encoder.parameters()} == {torch.float64}
    assert cast_to_dtype(encoder, None) is encoder and encoder.dtype == torch.float64
    assert not diffusers_log


def test_models_declaring_float32_modules_keep_diffusers_path(monkeypatch, diffusers_log):
    encoder = _encoder()
    monkeypatch.setattr(type(encoder), "_keep_in_fp32_modules", ["conv_in"])
    cast_to_dtype(encoder, torch.float64)
    assert any("should be kept in float32: ['conv_in']" in message for message in diffusers_log)
