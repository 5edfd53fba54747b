"""Reference attention (AnimateAnyone) through diffusers attention processors.

The ReferenceNet (a plain :class:`~diffusers.UNet2DConditionModel`) runs once per generation on the clean reference
latents at ``t = 0``; every spatial self-attention (``*.attentions.*.transformer_blocks.*.attn1``) stores its input
(the hidden states after ``norm1``) in a :class:`ReferenceBank` under its module name. The DenoisingNet's spatial
self-attention with the same name then uses ``cat([own, reference])`` as keys and values, the reference tokens
repeated for every frame. Token counts need not match, so the mechanism does not depend on the resolution.
Temporal (motion-module) attentions are left alone.

Per-sample dropping: ``bank.keep`` (one bool per denoising sample, i.e. per video in the batch) masks the
reference tokens out of the keys for samples with ``keep=False``, which is exactly the same as attending to
the own tokens only. Training uses it for the 10 % reference dropout; the pipeline uses it for the
classifier-free-guidance unconditional branch (see :class:`~covog_diffusers.pipelines.CovOGPipeline`).

Usage::

    with ReferenceAttentionControl(reference_unet, denoising_unet) as control:
        control.write(reference_latents, clip_embeds, pose_embedding=adaptor_out)   # once
        control.bank.set_guidance(True)      # optional: batch [unconditional (no reference); conditional]
        denoising_unet(...)                                                         # reads the bank

Leaving the context restores the previous attention processors and empties the bank.

The write/read processors *wrap* the processor installed on each layer when the control is installed (the
default ``AttnProcessor2_0``, ``AttnProcessor`` after ``set_default_attn_processor()``, ``SlicedAttnProcessor``
after ``enable_attention_slicing()``, xFormers, or any custom processor): the wrapper only banks the input or
widens the keys/values, and the installed processor computes the attention. Installing again (e.g. after a
``set_attn_processor`` call) wraps the new processors; a layer that already holds a reference wrapper is wrapped
by its inner processor, never twice.
"""

from __future__ import annotations

import contextlib
import inspect

import torch


def is_reference_attention(name: str) -> bool:
    """Spatial self-attention of a transformer block (not the motion modules' temporal attention)."""
    return ".attentions." in name and name.endswith("attn1.processor")


class ReferenceBank:
    """Reference tokens by attention name, written by the ReferenceNet and read by the DenoisingNet."""

    def __init__(self):
        self.features: dict[str, torch.Tensor] = {}
        self.writing = False
        #: ``(B,)`` bool per denoising sample (video); None keeps the reference for every sample.
        self.keep: torch.Tensor | None = None
        #: Whether the bank is laid out for a classifier-free-guidance batch (:meth:`set_guidance`).
        self.guidance = False

    def clear(self) -> None:
        self.features.clear()
        self.keep = None
        self.writing = False
        self.guidance = False

    def repeat_interleave(self, repeats: int) -> None:
        """Each written reference ``repeats`` times in a row (``num_videos_per_prompt`` samples per video)."""
        if repeats != 1:
            self.features = {
                name: value.repeat_interleave(repeats, dim=0) for name, value in self.features.items()
            }

    def set_guidance(self, enabled: bool) -> None:
        """Lay the bank out for the denoising batch ``[unconditional; conditional]`` (``enabled``: every reference
        twice, dropped for the first half through ``keep``, as :meth:`ReferenceAttentionControl.drop_reference` sets it) or for the conditional samples alone. Switching
        back and forth (a callback changing the guidance scale) keeps the written references."""
        if enabled == self.guidance:
            return
        if enabled:
            videos = next(iter(self.features.values())).shape[0] if self.features else 0
            self.features = {name: torch.cat([value, value]) for name, value in self.features.items()}
            # On the CPU: the read processors test it without a device sync.
            self.keep = torch.arange(2 * videos) >= videos
        else:
            self.features = {name: value[value.shape[0] // 2 :] for name, value in self.features.items()}
            self.keep = None
        self.guidance = enabled


class _WrappingProcessor:
    """Calls the wrapped processor ``inner`` with the arguments its ``__call__`` accepts, by keyword (processors
    differ: ``SlicedAttnProcessor`` takes no ``temb``, most take extra keyword arguments)."""

    def __init__(self, bank: ReferenceBank, name: str, inner):
        if isinstance(inner, _WrappingProcessor):
            inner = inner.inner
        self.bank, self.name, self.inner = bank, name, inner
        parameters = inspect.signature(inner.__call__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        self._accepts = None if takes_any else set(parameters)

    def _attend(self, attn, hidden_states, encoder_hidden_states, attention_mask, temb, kwargs):
        kwargs = {
            "encoder_hidden_states": encoder_hidden_states,
            "attention_mask": attention_mask,
            "temb": temb,
            **kwargs,
        }
        if self._accepts is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._accepts}
        return self.inner(attn, hidden_states, **kwargs)


class ReferenceWriteProcessor(_WrappingProcessor):
    """ReferenceNet side: bank the self-attention input (while writing), then let ``inner`` attend as usual."""

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ):
        if self.bank.writing:
            self.bank.features[self.name] = hidden_states
        return self._attend(attn, hidden_states, encoder_hidden_states, attention_mask, temb, kwargs)


class ReferenceReadProcessor(_WrappingProcessor):
    """DenoisingNet side: ``inner`` self-attention whose keys/values are ``cat([own, reference])``."""

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ):
        reference = self.bank.features.get(self.name)
        if reference is None or encoder_hidden_states is not None:
            return self._attend(attn, hidden_states, encoder_hidden_states, attention_mask, temb, kwargs)
        batch, own_tokens, _ = hidden_states.shape
        videos = reference.shape[0]
        if batch % videos:
            raise ValueError(f"denoising batch {batch} is not a multiple of the reference batch {videos}")
        frames = batch // videos
        keep = self.bank.keep
        if keep is not None and not bool(keep.any()):
            return self._attend(attn, hidden_states, None, attention_mask, temb, kwargs)
        reference = reference.to(hidden_states.dtype).repeat_interleave(frames, dim=0)
        context = torch.cat([hidden_states, reference], dim=1)
        if keep is not None and not bool(keep.all()):
            if keep.shape != (videos,):
                raise ValueError(f"bank.keep must have shape ({videos},), got {tuple(keep.shape)}")
            # Additive mask (batch, 1, keys): 0 for own tokens, dtype-min for dropped reference tokens (built
            # without boolean indexing, so no device sync).
            device, dtype = hidden_states.device, hidden_states.dtype
            dropped = (~keep).to(device).repeat_interleave(frames)
            is_reference = torch.arange(context.shape[1], device=device) >= own_tokens
            mask = (dropped[:, None, None] & is_reference[None, None, :]).to(dtype) * torch.finfo(dtype).min
            attention_mask = mask if attention_mask is None else attention_mask + mask
        return self._attend(attn, hidden_states, context, attention_mask, temb, kwargs)


class ReferenceAttentionControl(contextlib.AbstractContextManager):
    """Install write/read processors on a ReferenceNet / DenoisingNet pair (restored on exit)."""

    def __init__(self, reference_unet, denoising_unet, bank: ReferenceBank | None = None):
        self.reference_unet, self.denoising_unet = reference_unet, denoising_unet
        self.bank = bank or ReferenceBank()
        self._saved: list[tuple[object, dict]] = []

    def install(self) -> ReferenceAttentionControl:
        """Wrap the reference layers' current processors (see the module docstring). Calling it again while
        installed re-wraps whatever is installed now, and :meth:`uninstall` restores that. A control installed
        over another one (a pipeline call during training's validation) wraps the same attention processors
        and gives the other control's wrappers back on uninstall."""
        self._saved.clear()
        for unet, kind in (
            (self.reference_unet, ReferenceWriteProcessor),
            (self.denoising_unet, ReferenceReadProcessor),
        ):
            current = unet.attn_processors
            # Restored on uninstall: what was there before this control (another control's wrappers stay).
            self._saved.append(
                (unet, {name: self._unwrap(proc, own_only=True) for name, proc in current.items()})
            )
            unet.set_attn_processor(
                {
                    name: kind(self.bank, name.removesuffix(".processor"), self._unwrap(proc))
                    if is_reference_attention(name)
                    else proc
                    for name, proc in current.items()
                }
            )
        return self

    def _unwrap(self, processor, own_only: bool = False):
        """The attention processor under a reference wrapper (only under this control's with ``own_only``)."""
        if isinstance(processor, _WrappingProcessor) and (not own_only or processor.bank is self.bank):
            return processor.inner
        return processor

    def uninstall(self) -> None:
        for unet, processors in self._saved:
            unet.set_attn_processor(processors)
        self._saved.clear()
        self.bank.clear()

    def __enter__(self) -> ReferenceAttentionControl:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def drop_reference(self, encoder_hidden_states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The unconditional branch, per sample: where ``keep`` (``(B,)`` bool) is False, the CLIP embedding
        ``encoder_hidden_states`` ``(B, L, D)`` is zeroed and the DenoisingNet attends to its own tokens only.

        Returns the embeddings to give the DenoisingNet. Classifier-free guidance's unconditional half
        (:class:`~covog_diffusers.pipelines.CovOGPipeline`) and training's conditioning dropout both go through
        here, so the branch a model is trained to produce is the one it is asked for at inference.
        """
        keep = torch.as_tensor(keep, dtype=torch.bool).reshape(-1)
        if keep.shape[0] != encoder_hidden_states.shape[0]:
            raise ValueError(f"keep has {keep.shape[0]} entries for {encoder_hidden_states.shape[0]} samples")
        self.bank.keep = keep.cpu()  # read per layer: on the CPU, no device sync
        scale = keep.to(encoder_hidden_states.device, encoder_hidden_states.dtype)
        return encoder_hidden_states * scale[:, None, None]

    def write(
        self,
        reference_latents: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pose_embedding: torch.Tensor | None = None,
        timestep: int | torch.Tensor = 0,
    ) -> None:
        """Run the ReferenceNet once on clean latents ``(B, 4, h, w)`` and bank its self-attention inputs.

        ``pose_embedding`` ``(B, C0, h, w)`` (the pose adaptor's output) is added after the ReferenceNet's
        ``conv_in`` through a temporary forward hook, so the ReferenceNet stays a plain UNet2DConditionModel.
        """
        unet = self.reference_unet
        handle = None
        if pose_embedding is not None:
            handle = unet.conv_in.register_forward_hook(
                lambda module, args, output: output + pose_embedding.to(output.dtype)
            )
        self.bank.clear()
        self.bank.writing = True
        try:
            unet(reference_latents, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)
        finally:
            self.bank.writing = False
            if handle is not None:
                handle.remove()
        missing = {
            n.removesuffix(".processor")
            for n in self.denoising_unet.attn_processors
            if is_reference_attention(n)
        }
        missing -= set(self.bank.features)
        if missing:
            raise ValueError(
                f"the ReferenceNet has no self-attention matching DenoisingNet layers {sorted(missing)[:3]}...: "
                "the two UNets must share their block layout"
            )
