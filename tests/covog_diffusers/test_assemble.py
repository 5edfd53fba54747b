"""``covog assemble``: key mappings and a round trip through SMALL checkpoints in the original layouts.

The sources are tiny models (the tiny pipeline's configs) saved the way the real checkpoints are distributed:
the SD UNet as an LDM single file (``model.diffusion_model.*`` plus VAE / text-encoder keys), the motion module
in AnimateDiff's ``mm_sd_v15_v2.ckpt`` layout, AnimateAnyone's ``.pth`` files, and diffusers / transformers
folders for the VAE, CLIP and wav2vec2. The assembled pipeline must hold exactly those weights.
"""

import json

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNetMotionModel
from diffusers.loaders.single_file_utils import (
    convert_animatediff_checkpoint_to_diffusers,
    convert_ldm_unet_checkpoint,
)
from safetensors.torch import save_file
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    Wav2Vec2Config,
    Wav2Vec2ForCTC,
)

from covog_diffusers.assemble import (
    SD15_UNET_CONFIG,
    AssemblyError,
    assemble_pipeline,
    build_pipeline,
    load_sd_unet,
)
from covog_diffusers.checkpoint_mapping import (
    animatediff_motion_to_diffusers,
    diffusers_motion_to_animatediff,
    diffusers_unet_to_ldm,
    ldm_unet_key_map,
    ldm_unet_to_diffusers,
    motion_config_from_animatediff,
    pose_guider_config_from_state_dict,
)
from covog_diffusers.models import MultiHumanPoseEncoder
from covog_diffusers.pipelines import CovOGPipeline
from covog_diffusers.tiny import tiny_configs

CONFIGS = tiny_configs()
DENOISING = {
    k: CONFIGS["denoising_unet"][k]
    for k in ("audio_cross_attention_dim", "iad_num_heads", "iad_gate_hidden_dim")
}
DENOISING["motion_num_attention_heads"] = CONFIGS["denoising_unet"]["motion_num_attention_heads"]
POSE = {"block_out_channels": (8, 16, 16, 32)}
PROJECTION = {"intermediate_dim": 32, "num_tokens": 4}


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Distinct random values in every tensor (zero-initialised layers would make equality checks vacuous)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return module


def _tiny_unet(seed: int) -> UNet2DConditionModel:
    return _randomize(UNet2DConditionModel(**CONFIGS["reference_unet"]), seed)


def _motion_state(unet: UNet2DConditionModel, seed: int, max_seq_length: int = 24) -> dict:
    """Random motion-module weights of a UNetMotionModel built on ``unet`` (diffusers names)."""
    motion = UNetMotionModel.from_unet2d(unet, load_weights=False)
    motion.config["motion_max_seq_length"] = max_seq_length
    _randomize(motion, seed)
    return {
        k: v
        for k, v in motion.state_dict().items()
        if "motion_modules" in k and not k.endswith("pos_embed.pe")
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    unet = _tiny_unet(1)
    ldm = diffusers_unet_to_ldm(unet.state_dict(), unet)
    # a full SD checkpoint also holds the VAE and the text encoder: those keys are ignored
    ldm["first_stage_model.encoder.conv_in.weight"] = torch.zeros(2, 2)
    ldm["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = torch.zeros(2)
    save_file({k: v.contiguous() for k, v in ldm.items()}, root / "sd15-tiny.safetensors")
    torch.save({"state_dict": ldm, "global_step": 1}, root / "sd15-tiny.ckpt")

    motion = _motion_state(unet, seed=2)
    torch.save(diffusers_motion_to_animatediff(motion, max_seq_length=24), root / "mm_tiny_v2.ckpt")

    vae = _randomize(AutoencoderKL(**CONFIGS["vae"]), 3)
    vae.save_pretrained(root / "sd-vae-ft-mse")
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**CONFIGS["image_encoder"]))
    clip.save_pretrained(root / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "image_encoder"
    )
    w2v = Wav2Vec2ForCTC(Wav2Vec2Config(**CONFIGS["audio_encoder"], vocab_size=32))  # like wav2vec2-base-960h
    w2v.save_pretrained(root / "wav2vec2-base-960h")

    # AnimateAnyone: spatial keys with diffusers names + motion keys in AnimateDiff layout
    aa = root / "animate_anyone"
    aa.mkdir()
    aa_reference = _tiny_unet(10)
    torch.save(aa_reference.state_dict(), aa / "reference_unet.pth")
    aa_denoising = _tiny_unet(11)
    stage1_motion = _motion_state(aa_denoising, seed=12, max_seq_length=24)
    denoising_pth = {**aa_denoising.state_dict(), **diffusers_motion_to_animatediff(stage1_motion, 24)}
    denoising_pth["down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q.weight"] = torch.zeros(4, 4)
    torch.save(denoising_pth, aa / "denoising_unet.pth")
    stage2_motion = _motion_state(aa_denoising, seed=13, max_seq_length=24)
    torch.save(diffusers_motion_to_animatediff(stage2_motion, 24), aa / "motion_module.pth")
    guider = _randomize(MultiHumanPoseEncoder(block_out_channels=(8, 16, 24, 32), out_channels=32), 14)
    torch.save(guider.state_dict(), aa / "pose_guider.pth")
    return {
        "root": root,
        "unet": unet.state_dict(),
        "motion": motion,
        "vae": vae.state_dict(),
        "clip": clip.state_dict(),
        "aa_reference": aa_reference.state_dict(),
        "aa_denoising": aa_denoising.state_dict(),
        "aa_motion": stage2_motion,
        "aa_guider": guider.state_dict(),
        "w2v": {
            k.removeprefix("wav2vec2."): v for k, v in w2v.state_dict().items() if k.startswith("wav2vec2.")
        },
    }


def _args(sources, sd15="sd15-tiny.safetensors", **extra):
    root = sources["root"]
    return {
        "sd15": root / sd15,
        "vae": root / "sd-vae-ft-mse",
        "image_encoder": root / "image_encoder",
        "wav2vec2": root / "wav2vec2-base-960h",
        "motion_module": root / "mm_tiny_v2.ckpt",
        "unet_config": dict(CONFIGS["reference_unet"]),
        "denoising_config": DENOISING,
        "audio_projection_config": PROJECTION,
        "pose_config": POSE,
        **extra,
    }


def _assert_holds(model_state: dict, expected: dict, what: str):
    missing = [k for k in expected if k not in model_state]
    assert not missing, f"{what}: keys not in the model: {missing[:3]}"
    different = [k for k in expected if not torch.equal(model_state[k].float(), expected[k].float())]
    assert not different, f"{what}: {len(different)} tensors differ, e.g. {different[:3]}"


# ------------------------------------------------------------------------------------------------ mappings


def test_sd15_ldm_key_names():
    """The SD 1.5 UNet maps to the 686 LDM tensor names, with the known irregular places."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(SD15_UNET_CONFIG)
    mapping = ldm_unet_key_map(unet)
    assert len(mapping) == len(unet.state_dict()) == 686
    assert len(set(mapping.values())) == 686
    p = "model.diffusion_model."
    expected = {
        "conv_in.weight": "input_blocks.0.0.weight",
        "time_embedding.linear_2.bias": "time_embed.2.bias",
        "down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_q.weight": "input_blocks.2.1.transformer_blocks.0.attn1.to_q.weight",
        "down_blocks.1.resnets.0.conv_shortcut.weight": "input_blocks.4.0.skip_connection.weight",
        "down_blocks.2.downsamplers.0.conv.weight": "input_blocks.9.0.op.weight",
        "down_blocks.3.resnets.1.conv1.weight": "input_blocks.11.0.in_layers.2.weight",
        "mid_block.attentions.0.proj_in.weight": "middle_block.1.proj_in.weight",
        "mid_block.resnets.1.time_emb_proj.bias": "middle_block.2.emb_layers.1.bias",
        "up_blocks.0.upsamplers.0.conv.weight": "output_blocks.2.1.conv.weight",
        "up_blocks.1.upsamplers.0.conv.weight": "output_blocks.5.2.conv.weight",
        "up_blocks.2.resnets.2.norm2.weight": "output_blocks.8.0.out_layers.0.weight",
        "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight": "output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight",
        "up_blocks.3.resnets.2.conv2.bias": "output_blocks.11.0.out_layers.3.bias",
        "conv_norm_out.weight": "out.0.weight",
        "conv_out.bias": "out.2.bias",
    }
    for diffusers_key, ldm_key in expected.items():
        assert mapping[diffusers_key] == p + ldm_key


@pytest.mark.parametrize("layers_per_block", [1, 2])
def test_ldm_mapping_agrees_with_diffusers_converter(layers_per_block):
    config = {**CONFIGS["reference_unet"], "layers_per_block": layers_per_block}
    unet = _randomize(UNet2DConditionModel(**config), 0)
    state = unet.state_dict()
    ldm = diffusers_unet_to_ldm(state, unet)
    # diffusers' own single-file converter reads our LDM export back to the same weights
    converted = convert_ldm_unet_checkpoint(ldm, dict(unet.config))
    assert set(converted) == set(state)
    assert all(torch.equal(converted[k], state[k]) for k in state)
    ours = ldm_unet_to_diffusers(ldm, unet)
    assert not ours.unmatched and not ours.missing
    assert all(torch.equal(ours.state_dict[k], state[k]) for k in state)


def test_animatediff_mapping_agrees_with_diffusers_converter():
    unet = _tiny_unet(0)
    motion = _motion_state(unet, seed=1)
    original = diffusers_motion_to_animatediff(motion, max_seq_length=24)
    key = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight"
    assert key in original
    assert "up_blocks.1.motion_modules.1.temporal_transformer.transformer_blocks.0.ff_norm.weight" in original
    assert "mid_block.motion_modules.0.temporal_transformer.proj_out.bias" in original
    assert original[key.replace("to_q.weight", "pos_encoder.pe")].shape == (1, 24, 32)
    converted = convert_animatediff_checkpoint_to_diffusers(original)
    assert set(converted) == set(motion)
    ours = animatediff_motion_to_diffusers(original)
    assert set(ours.state_dict) == set(motion) and not ours.unmatched
    assert all(torch.equal(ours.state_dict[k], motion[k]) for k in motion)
    config = motion_config_from_animatediff(original)
    assert config == {
        "use_motion_mid_block": True,
        "motion_max_seq_length": 24,
        "temporal_transformer_layers_per_block": 1,
    }
    no_mid = {k: v for k, v in original.items() if not k.startswith("mid_block.")}
    assert motion_config_from_animatediff(no_mid)["use_motion_mid_block"] is False


def test_pose_guider_config_from_weights():
    guider = MultiHumanPoseEncoder(
        conditioning_channels=3, block_out_channels=(16, 32, 96, 256), out_channels=320
    )
    config = pose_guider_config_from_state_dict(guider.state_dict())
    assert config == {
        "conditioning_channels": 3,
        "block_out_channels": (16, 32, 96, 256),
        "out_channels": 320,
    }
    with pytest.raises(ValueError, match="not a PoseGuider"):
        pose_guider_config_from_state_dict({"weight": torch.zeros(1)})


# ------------------------------------------------------------------------------------------------ assembly


@pytest.mark.parametrize("sd15", ["sd15-tiny.safetensors", "sd15-tiny.ckpt"])
def test_load_sd_unet_single_file(sources, sd15):
    unet, report, _ = load_sd_unet(sources["root"] / sd15, dict(CONFIGS["reference_unet"]))
    assert not report.missing and not report.unexpected
    _assert_holds(unet.state_dict(), sources["unet"], "unet")


def test_load_sd_unet_diffusers_folder(sources, tmp_path):
    unet = _tiny_unet(1)
    unet.save_pretrained(tmp_path / "sd15" / "unet")
    loaded, report, where = load_sd_unet(tmp_path / "sd15")
    assert where.endswith("unet") and not report.missing
    _assert_holds(loaded.state_dict(), sources["unet"], "unet")


def test_assemble_round_trip(sources, tmp_path):
    out = tmp_path / "covog-full"
    report = assemble_pipeline(**_args(sources), out=out)
    assert out.is_dir() and (out / "model_index.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folder left behind"
    saved = json.loads((out / "assembly_report.json").read_text())
    assert {entry["component"] for entry in saved["loads"]} == {entry.component for entry in report.loads}
    for entry in report.loads:
        assert not entry.missing and not entry.unexpected, entry.summary()

    pipe = CovOGPipeline.from_pretrained(out)
    spatial = {k: v for k, v in sources["unet"].items()}
    _assert_holds(pipe.reference_unet.state_dict(), spatial, "reference_unet")
    _assert_holds(pipe.denoising_unet.state_dict(), spatial, "denoising_unet spatial")
    _assert_holds(pipe.denoising_unet.state_dict(), sources["motion"], "denoising_unet motion")
    _assert_holds(pipe.vae.state_dict(), sources["vae"], "vae")
    _assert_holds(pipe.image_encoder.state_dict(), sources["clip"], "image_encoder")
    _assert_holds(pipe.audio_encoder.state_dict(), sources["w2v"], "audio_encoder")
    config = pipe.denoising_unet.config
    assert config.motion_max_seq_length == 24 and config.use_motion_mid_block and config.use_iad
    assert pipe.audio_projection.config.num_layers == 2 and pipe.audio_projection.config.feature_dim == 32
    assert pipe.feature_extractor.crop_size == {"height": 32, "width": 32}
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    # fresh CovOG parts start as identities
    assert all(torch.count_nonzero(p) == 0 for p in pipe.pose_adaptor.conv_out.parameters())
    assert all(
        torch.count_nonzero(p) == 0 for d in pipe.denoising_unet.audio_drivers for p in d.to_out.parameters()
    )


def test_assembled_pipeline_generates(sources):
    pipe, _ = build_pipeline(**_args(sources, sd15="sd15-tiny.ckpt"))
    pipe.set_progress_bar_config(disable=True)
    rng = torch.Generator().manual_seed(0)
    poses = torch.rand(2, 4, 3, 64, 64, generator=rng)
    frames = pipe(
        reference_image=torch.rand(3, 64, 64, generator=rng),
        reference_poses=poses[:, 0],
        poses=poses,
        face_boxes=torch.tensor([[10.0, 10.0, 30.0, 30.0], [34.0, 10.0, 54.0, 30.0]])[:, None].repeat(
            1, 4, 1
        ),
        audio=torch.randn(16_000 * 4 // 25, generator=rng).numpy() * 0.1,
        speaking_scores=torch.tensor([[1.0] * 4, [-1.0] * 4]).numpy(),
        num_inference_steps=2,
        window_frames=4,
        overlap_frames=0,
        output_type="np",
        generator=rng,
    ).frames
    assert frames.shape == (1, 4, 64, 64, 3)


def test_assemble_with_animate_anyone(sources, tmp_path):
    root = sources["root"]
    pipe, report = build_pipeline(
        **_args(sources, sd15="sd15-tiny.ckpt", animate_anyone=root / "animate_anyone")
    )
    _assert_holds(pipe.reference_unet.state_dict(), sources["aa_reference"], "reference_unet (AnimateAnyone)")
    _assert_holds(
        pipe.denoising_unet.state_dict(), sources["aa_denoising"], "denoising spatial (AnimateAnyone)"
    )
    # motion_module.pth (stage 2) is applied after denoising_unet.pth's motion keys
    _assert_holds(pipe.denoising_unet.state_dict(), sources["aa_motion"], "motion (AnimateAnyone stage 2)")
    assert pipe.pose_guider.config.block_out_channels == (8, 16, 24, 32)
    _assert_holds(pipe.pose_guider.state_dict(), sources["aa_guider"], "pose_guider (AnimateAnyone)")
    by_name = {entry.component: entry for entry in report.loads}
    denoising = by_name["denoising_unet (AnimateAnyone)"]
    assert denoising.unexpected == ["down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q.weight"]
    assert "1 checkpoint keys unmatched" in denoising.summary()
    assert not denoising.missing  # the audio drivers are CovOG-only and not expected there
    assert report.sources["animate_anyone"].endswith("animate_anyone")


def test_assemble_errors(sources, tmp_path):
    root = sources["root"]
    with pytest.raises(AssemblyError, match="vae: .*does not exist"):
        build_pipeline(**_args(sources, vae=tmp_path / "nope"))
    with pytest.raises(AssemblyError, match="motion_module: .*no AnimateDiff motion-module keys"):
        build_pipeline(**_args(sources, motion_module=root / "animate_anyone" / "reference_unet.pth"))
    with pytest.raises(AssemblyError, match="wrong shape"):
        build_pipeline(
            **_args(sources, unet_config={**CONFIGS["reference_unet"], "block_out_channels": (32, 32)})
        )
    with pytest.raises(AssemblyError, match="animate_anyone: .*holds none of"):
        build_pipeline(**_args(sources, animate_anyone=tmp_path))
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(AssemblyError, match="sd15: .*torch.load"):
        build_pipeline(**_args(sources, sd15=bad.name and bad))
    (tmp_path / "taken").mkdir()
    with pytest.raises(AssemblyError, match="already exists"):
        assemble_pipeline(**_args(sources), out=tmp_path / "taken")


class Callback:  # what some training checkpoints pickle next to the weights
    pass


def test_weights_only_loading_refuses_pickled_objects(sources, tmp_path):
    path = tmp_path / "with-objects.ckpt"
    torch.save({"state_dict": {}, "callbacks": Callback()}, path)
    with pytest.raises(AssemblyError, match="weights_only=True"):
        build_pipeline(**_args(sources, sd15=path))


def test_cli_assemble(sources, tmp_path, capsys):
    from mit_talk.cli import covog as main

    root = sources["root"]
    (tmp_path / "unet_config.json").write_text(json.dumps(CONFIGS["reference_unet"]))
    (tmp_path / "parts.json").write_text(
        json.dumps({"denoising_unet": DENOISING, "audio_projection": PROJECTION, "pose_encoder": POSE})
    )
    argv = [
        "assemble",
        "--sd15",
        str(root / "sd15-tiny.ckpt"),
        "--vae",
        str(root / "sd-vae-ft-mse"),
        "--image-encoder",
        str(root / "image_encoder"),
        "--wav2vec2",
        str(root / "wav2vec2-base-960h"),
        "--motion-module",
        str(root / "mm_tiny_v2.ckpt"),
        "--animate-anyone",
        str(root / "animate_anyone"),
        "--unet-config",
        str(tmp_path / "unet_config.json"),
        "--component-config",
        str(tmp_path / "parts.json"),
        "--no-iad",
        "--out",
        str(tmp_path / "covog"),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "denoising_unet (AnimateAnyone): " in printed and "1 checkpoint keys unmatched" in printed
    pipe = CovOGPipeline.from_pretrained(tmp_path / "covog")
    assert pipe.denoising_unet.audio_drivers is None and not pipe.denoising_unet.config.use_iad
    _assert_holds(pipe.pose_guider.state_dict(), sources["aa_guider"], "pose_guider")
    assert main(argv) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"unet": {}}')
    assert (
        main([*argv[:-3], "--component-config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o2")])
        == 2
    )
    assert "--component-config" in capsys.readouterr().err


def test_assemble_half_precision(sources):
    pipe, _ = build_pipeline(**_args(sources), dtype=torch.float16)
    for name in ("vae", "image_encoder", "reference_unet", "denoising_unet", "pose_guider", "audio_encoder"):
        assert getattr(pipe, name).dtype == torch.float16, name
    half = {k: v.half() for k, v in sources["unet"].items()}
    _assert_holds(pipe.denoising_unet.state_dict(), half, "denoising_unet spatial (fp16)")
