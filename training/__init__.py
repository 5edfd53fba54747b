"""CovOG training with accelerate: stage 1 (image level), stage 2 (clips), LoRA; ``covog train``.

>>> from training.config import load_config                                   # doctest: +SKIP
>>> from training.loop import train                                           # doctest: +SKIP
>>> summary = train(load_config("training/configs/tiny-stage1.yaml", ["data.dataset=mit-talking"]))  # doctest: +SKIP

Modules: :mod:`~training.config` (YAML -> dataclasses, paper defaults), :mod:`~training.components` (what each
stage trains), :mod:`~training.data` (the MIT training view, sharding), :mod:`~training.step` (batch -> model
inputs, with the pipeline's own conditioning code), :mod:`~training.losses` (noise, v-target, min-SNR),
:mod:`~training.network` (the trained modules as one ``nn.Module``), :mod:`~training.loop` (the accelerate loop),
:mod:`~training.checkpointing` (atomic ``save_state``, resume), :mod:`~training.lora`, :mod:`~training.export`
(pipeline / adapter + model card), :mod:`~training.validation`, :mod:`~training.cli`.
"""
