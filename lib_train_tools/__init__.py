"""Train Tools: train LoRA networks for Stable Diffusion from inside the WebUI or standalone.

Layers point one way: ui -> services (projects, datasets, jobs) -> trainer -> models.
Nothing in this package imports the WebUI's ``modules`` except the host adapter.
"""

__version__ = "0.1.0"
