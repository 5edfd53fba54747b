"""CovOG components: shapes, zero-init identities, MPE invariances, IAD masking, reference attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from covog_diffusers.models import (
    AudioProjection,
    CovOGDenoisingNet,
    InteractiveAudioDriver,
    MultiHumanPoseEncoder,
    ReferenceAttentionControl,
    wav2vec2_frame_features,
    window_audio_features,
)
from covog_diffusers.tiny import tiny_configs


def randomize_(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * scale)


def tiny_mpe(**kwargs) -> MultiHumanPoseEncoder:
    torch.manual_seed(0)
    mpe = MultiHumanPoseEncoder(**{**tiny_configs()["pose_guider"], **kwargs}).eval()
    randomize_(mpe.conv_out)
    return mpe


def tiny_denoiser(**kwargs) -> CovOGDenoisingNet:
    torch.manual_seed(0)
    return CovOGDenoisingNet(**{**tiny_configs()["denoising_unet"], **kwargs}).eval()


def tiny_reference_unet() -> UNet2DConditionModel:
    torch.manual_seed(1)
    return UNet2DConditionModel(**tiny_configs()["reference_unet"]).eval()


# ---------------------------------------------------------------- MPE
def test_mpe_shape_and_zero_init():
    mpe = MultiHumanPoseEncoder(block_out_channels=(8, 16, 16, 32), out_channels=32)
    maps = torch.rand(2, 3, 3, 64, 48)
    out = mpe(maps)
    assert out.shape == (2, 32, 8, 6)
    assert mpe.downscale_factor == 8
    assert torch.count_nonzero(out) == 0  # zero-initialised output conv: adds nothing to a pretrained UNet


@torch.no_grad()
def test_mpe_is_a_sum_over_persons_and_permutation_invariant():
    mpe = tiny_mpe()
    maps = torch.rand(1, 4, 3, 32, 32)
    out = mpe(maps)
    singles = sum(mpe(maps[:, i : i + 1]) for i in range(4))
    torch.testing.assert_close(out, singles, atol=1e-5, rtol=1e-5)
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):
        torch.testing.assert_close(mpe(maps[:, perm]), out, atol=1e-5, rtol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("persons", [1, 2, 3, 4])
def test_mpe_padding_persons_changes_nothing(persons):
    """1..4 persons: padding to 4 slots with garbage maps masked out equals the unpadded sum."""
    mpe = tiny_mpe()
    maps = torch.rand(2, persons, 3, 32, 32)
    padded = torch.cat([maps, torch.rand(2, 4 - persons, 3, 32, 32)], dim=1)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[:, :persons] = True
    torch.testing.assert_close(mpe(padded, mask), mpe(maps), atol=1e-5, rtol=1e-5)
    # Per-sample person counts: sample 1 keeps only its first person.
    mask[1, 1:] = False
    out = mpe(padded, mask)
    torch.testing.assert_close(out[1], mpe(maps[1:, :1])[0], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_mpe_joint_ablation_encodes_one_composited_map():
    mpe = tiny_mpe(joint=True)
    maps = torch.zeros(1, 2, 3, 32, 32)
    maps[0, 0, :, :8] = 1.0
    maps[0, 1, :, -8:] = 1.0
    torch.testing.assert_close(mpe(maps), mpe.encode_single(maps.amax(1)))
    # One joint encoding of two people is not the sum of two encodings (that is what MPE changes).
    separate = tiny_mpe(joint=False)
    assert not torch.allclose(separate(maps), mpe(maps))


def test_mpe_rejects_bad_shapes():
    mpe = tiny_mpe()
    with pytest.raises(ValueError, match="pose_maps must be"):
        mpe(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="divisible by 8"):
        mpe(torch.rand(1, 1, 3, 30, 32))


# ---------------------------------------------------------------- audio
@torch.no_grad()
def test_audio_projection_shape():
    proj = AudioProjection(
        num_layers=2, feature_dim=8, window=2, intermediate_dim=16, num_tokens=4, cross_attention_dim=12
    )
    assert proj(torch.randn(2, 7, 5, 2, 8)).shape == (2, 7, 4, 12)
    with pytest.raises(ValueError, match=r"audio_features must be \(B, F, 5, 2, 8\)"):
        proj(torch.randn(2, 7, 2, 8))  # per-frame features without their neighbourhood


def tiny_wav2vec2():
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    return Wav2Vec2Model(Wav2Vec2Config(**tiny_configs()["audio_encoder"])).eval()


@torch.no_grad()
def test_window_audio_features_neighbourhood_at_video_rate_for_any_stride():
    """Frame ``i``'s neighbourhood is frames ``i - 2 .. i + 2`` of the wav2vec2 features of the whole span
    (window + context); a strided window picks the same neighbourhoods as a dense one over the same span."""
    from covog_diffusers.models.audio import audio_context_frames

    model, context = tiny_wav2vec2(), audio_context_frames(2)
    span = 7 + 2 * context  # 4 frames at stride 2 cover 7 frames
    samples = np.random.default_rng(0).standard_normal(span * 640).astype(np.float32)  # 640 samples/frame
    dense = window_audio_features(model, samples, 16_000, num_frames=7, stride=1, window=2)
    strided = window_audio_features(model, samples, 16_000, num_frames=4, stride=2, window=2)
    assert dense.shape == (7, 5, 2, 32) and strided.shape == (4, 5, 2, 32)
    torch.testing.assert_close(strided, dense[::2], rtol=0, atol=0)
    per_frame = wav2vec2_frame_features(model, samples, 16_000, num_frames=span)
    torch.testing.assert_close(dense[3], per_frame[context + 1 : context + 6], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"audio_context_frames=27"):
        window_audio_features(model, samples[: 7 * 640], 16_000, num_frames=7)  # the window without context


@torch.no_grad()
def test_wav2vec2_frame_features_align_to_frames():
    model = tiny_wav2vec2()
    audio = np.random.default_rng(0).standard_normal(16_000).astype(np.float32)  # 1 s
    features = wav2vec2_frame_features(model, audio, 16_000, num_frames=25)
    assert features.shape == (25, 2, 32)
    # Another sample rate is resampled first; slightly short audio is padded.
    features_8k = wav2vec2_frame_features(model, audio[::2], 8_000, num_frames=25)
    assert features_8k.shape == (25, 2, 32) and torch.isfinite(features_8k).all()
    assert wav2vec2_frame_features(model, audio[:15_000], 16_000, num_frames=25).shape == (25, 2, 32)
    with pytest.raises(ValueError, match="non-empty mono"):
        wav2vec2_frame_features(model, np.zeros(0, np.float32), 16_000, num_frames=25)


# ---------------------------------------------------------------- IAD
def iad_inputs(n=3, persons=3, h=6, w=10):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, 32, h, w, generator=generator)
    tokens = torch.randn(n, 4, 16, generator=generator)
    scores = torch.rand(n, persons, generator=generator) * 2 - 1
    masks = torch.zeros(n, persons, 24, 40)  # face masks at another resolution, another aspect ratio
    masks[:, 0, 0:12, 0:16] = 1
    masks[:, 1, 8:20, 20:32] = 1
    masks[:, 2, 12:24, 32:40] = 1
    return hidden, tokens, scores, masks


@torch.no_grad()
def test_fresh_iad_is_identity():
    iad = InteractiveAudioDriver(32, 16, num_heads=4, norm_num_groups=8)
    hidden, tokens, scores, masks = iad_inputs()
    torch.testing.assert_close(iad(hidden, tokens, scores, masks), hidden)


@torch.no_grad()
def test_iad_is_local_to_each_speakers_face_mask():
    """Changing speaker 2's gate (its speaking score) changes nothing outside speaker 2's mask."""
    torch.manual_seed(0)
    iad = InteractiveAudioDriver(32, 16, num_heads=4, norm_num_groups=8)
    randomize_(iad.to_out, scale=0.5)  # non-zero output
    hidden, tokens, scores, masks = iad_inputs()
    out = iad(hidden, tokens, scores, masks)
    assert not torch.allclose(out, hidden)
    changed_scores = scores.clone()
    changed_scores[:, 1] = -scores[:, 1] + 0.5
    changed = iad(hidden, tokens, changed_scores, masks)
    inside = (
        torch.nn.functional.interpolate(masks, size=(6, 10), mode="area")[:, 1:2] > 0
    )  # speaker 2's cells
    diff = (changed - out).abs()
    assert diff.masked_select(~inside.expand_as(diff)).max() == 0
    assert diff.masked_select(inside.expand_as(diff)).max() > 1e-4
    # A padded person contributes nothing, whatever its mask and score.
    person_mask = torch.tensor([[True, False, True]]).repeat(3, 1)
    without = iad(hidden, tokens, scores, masks, person_mask)
    torch.testing.assert_close(without, iad(hidden, tokens, scores[:, [0, 2]], masks[:, [0, 2]]))


@torch.no_grad()
def test_denoiser_iad_off_equals_fresh_iad():
    """The "without IAD" ablation and a freshly initialised IAD give the same output."""
    with_iad, without_iad = tiny_denoiser(use_iad=True), tiny_denoiser(use_iad=False)
    missing, unexpected = with_iad.load_state_dict(without_iad.state_dict(), strict=False)
    assert not unexpected and missing and all(name.startswith("audio_drivers.") for name in missing)
    assert len(with_iad.audio_drivers) == 2 + 1 + 2  # after every down, mid and up block
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 3, 8, 8, generator=generator)
    states = torch.randn(1, 1, 32, generator=generator)
    audio = {
        "audio_tokens": torch.randn(1, 3, 4, 32, generator=generator),
        "speaking_scores": torch.rand(1, 2, 3, generator=generator),
        "face_masks": torch.ones(1, 2, 3, 8, 8),
    }
    out_fresh = with_iad(sample, 10, states, **audio).sample
    out_off = without_iad(sample, 10, states, **audio).sample
    torch.testing.assert_close(out_fresh, out_off)
    for driver in with_iad.audio_drivers:
        randomize_(driver.to_out, scale=0.5)
    assert not torch.allclose(with_iad(sample, 10, states, **audio).sample, out_off)
    with pytest.raises(ValueError, match="max_speakers"):
        tiny_denoiser(max_speakers=1)(sample, 10, states, **audio)


@torch.no_grad()
def test_denoiser_pose_features_are_added():
    net = tiny_denoiser(use_iad=False)
    sample = torch.randn(1, 4, 2, 8, 8)
    states = torch.randn(1, 1, 32)
    base = net(sample, 10, states).sample
    torch.testing.assert_close(
        net(sample, 10, states, pose_features=torch.zeros(1, 32, 2, 8, 8)).sample, base
    )
    assert not torch.allclose(net(sample, 10, states, pose_features=torch.randn(1, 32, 2, 8, 8)).sample, base)


def test_from_unet2d_takes_covog_config():
    net = CovOGDenoisingNet.from_unet2d(tiny_reference_unet(), use_iad=False, max_speakers=3)
    assert net.audio_drivers is None and net.config.max_speakers == 3
    assert isinstance(net, CovOGDenoisingNet)


# ---------------------------------------------------------------- reference attention
@torch.no_grad()
def test_reference_attention_reads_the_reference():
    reference_unet, net = tiny_reference_unet(), tiny_denoiser(use_iad=False)
    original = dict(net.attn_processors)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 3, 8, 8, generator=generator)
    states = torch.randn(1, 1, 32, generator=generator)
    ref_a, ref_b = torch.randn(2, 1, 4, 8, 8, generator=generator)
    plain = net(sample, 10, states).sample
    with ReferenceAttentionControl(reference_unet, net) as control:
        control.write(ref_a, states)
        assert len(control.bank.features) == 4  # down, mid and 2 up spatial self-attentions
        out_a = net(sample, 10, states).sample
        control.write(ref_b, states)
        out_b = net(sample, 10, states).sample
        # Another resolution works too (keys are concatenated, no shape coupling).
        control.write(torch.randn(1, 4, 16, 8, generator=generator), states)
        assert net(sample, 10, states).sample.shape == sample.shape
        # Dropping the reference (training dropout / CFG unconditional) equals no reference at all.
        control.write(ref_a, states)
        control.bank.features = {k: v.repeat(2, 1, 1) for k, v in control.bank.features.items()}
        control.bank.keep = torch.tensor([False, True])
        both = net(torch.cat([sample, sample]), 10, torch.cat([states, states])).sample
    assert not torch.allclose(out_a, plain, atol=1e-4)
    assert not torch.allclose(out_a, out_b, atol=1e-4)
    torch.testing.assert_close(both[:1], plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[1:], out_a, atol=1e-5, rtol=1e-5)
    # Leaving the context restores the processors: the net is plain again.
    assert {k: type(v) for k, v in net.attn_processors.items()} == {k: type(v) for k, v in original.items()}
    torch.testing.assert_close(net(sample, 10, states).sample, plain)


@torch.no_grad()
def test_reference_pose_embedding_is_added_after_conv_in():
    reference_unet, net = tiny_reference_unet(), tiny_denoiser(use_iad=False)
    latents, states = torch.randn(1, 4, 8, 8), torch.randn(1, 1, 32)
    with ReferenceAttentionControl(reference_unet, net) as control:
        control.write(latents, states)
        plain = {k: v.clone() for k, v in control.bank.features.items()}
        control.write(latents, states, pose_embedding=torch.randn(1, 32, 8, 8))
        posed = control.bank.features
        assert all(not torch.allclose(plain[k], posed[k]) for k in plain)
    assert not reference_unet.conv_in._forward_hooks  # the hook is temporary
