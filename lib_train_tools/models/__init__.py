"""Our own Stable Diffusion model stack: U-Net, VAE, CLIP text encoders and checkpoint loading.

Parameter names reproduce the original LDM/SGM single-file checkpoints (and Hugging Face CLIP names
inside the text encoders), so loading is a prefix strip plus a strict ``load_state_dict``.
"""
