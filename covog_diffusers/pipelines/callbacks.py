"""``callback_on_step_end`` callbacks for :class:`~covog_diffusers.pipelines.CovOGPipeline`.

Which of diffusers' stock callbacks (``diffusers.callbacks``) apply to CovOG, a pipeline without text encoder:

* any :class:`~diffusers.callbacks.PipelineCallback` / :class:`~diffusers.callbacks.MultiPipelineCallbacks` whose
  ``tensor_inputs`` are among ``CovOGPipeline._callback_tensor_inputs`` (``latents``, ``noise_pred``,
  ``image_embeds``) and which reads the pipeline state diffusers pipelines expose (``num_timesteps``,
  ``guidance_scale``, ``do_classifier_free_guidance``, ``interrupt``);
* not ``SDCFGCutoffCallback`` / ``SDXLCFGCutoffCallback`` / ``SD3CFGCutoffCallback`` /
  ``SDXLControlnetCFGCutoffCallback``: they slice text-prompt embeddings (``prompt_embeds``, ...) that CovOG does
  not have; the pipeline rejects them up front, naming the tensors. :class:`CovOGCFGCutoffCallback` is their
  CovOG counterpart;
* not ``IPAdapterScaleCutoffCallback``: CovOG has no IP-Adapter (its reference attention is always on in the
  conditional branch).
"""

from __future__ import annotations

from typing import Any

from diffusers.callbacks import PipelineCallback


class CovOGCFGCutoffCallback(PipelineCallback):
    """Classifier-free guidance off after a step (``cutoff_step_index``, or ``int(num_timesteps *
    cutoff_step_ratio)``), as diffusers' ``SDCFGCutoffCallback`` does for Stable Diffusion: from the next step on
    the DenoisingNet runs the conditional branch only (half the compute).

    It sets ``pipeline._guidance_scale = 0.0`` and keeps the conditional CLIP image embeddings (the last half of
    ``image_embeds``, whose CFG layout is ``[unconditional; conditional]``). Long videos are generated window by
    window, each a full denoising run: the guidance scale is restored at every window and the cut-off applies
    to every window at the same step.
    """

    tensor_inputs = ["image_embeds"]

    def callback_fn(self, pipeline, step_index, timestep, callback_kwargs) -> dict[str, Any]:
        cutoff_step_ratio = self.config.cutoff_step_ratio
        cutoff_step_index = self.config.cutoff_step_index
        cutoff_step = (
            cutoff_step_index
            if cutoff_step_index is not None
            else int(pipeline.num_timesteps * cutoff_step_ratio)
        )
        if step_index == cutoff_step:
            if pipeline.do_classifier_free_guidance:
                embeds = callback_kwargs[self.tensor_inputs[0]]
                callback_kwargs[self.tensor_inputs[0]] = embeds[embeds.shape[0] // 2 :]
            pipeline._guidance_scale = 0.0
        return callback_kwargs
