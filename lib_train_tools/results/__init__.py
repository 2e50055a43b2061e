"""Results of training runs: listing runs and checkpoints, preview grids, publishing to the LoRA folder.

``runs`` reads run folders, ``lora_info`` reads LoRA headers, ``prune`` applies "keep last N
checkpoints", ``preview`` renders the epochs x weights grid through a ``PreviewRenderer``,
``own_renderer`` is the standalone app's renderer (our models and sampler), ``grid_image`` draws
the labelled grid and ``publish`` copies a checkpoint into the LoRA folder with its card files.
Submodules are imported explicitly; this package imports nothing itself (no torch on import).
"""
