"""Train Tools: train LoRA networks for Stable Diffusion from inside the WebUI or standalone.

Layers point one way: ui -> services (projects, datasets, jobs) -> trainer -> models, with
``contracts`` and ``atomic`` at the bottom (``tests/test_architecture.py`` lists the layers and
checks every import). Nothing in this package imports the WebUI's ``modules`` except the host
adapter (``host/webui_modules.py``).
"""

__version__ = "0.1.0"
