"""CovOG training with accelerate (stage 1, stage 2, LoRA). Not implemented yet: see the project issues."""
