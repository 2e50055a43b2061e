"""The HTTP API of Train Tools: routes under ``/train-tools/v1/``, built from ``Services``.

Host-independent: the WebUI mounts it on its own FastAPI app in ``on_app_started`` (with the
WebUI's authentication), and the standalone app can mount it the same way. Works with the
FastAPI/pydantic pairs of both WebUIs (0.94 + pydantic 1 in A1111, 0.104 + pydantic 2 in Forge):
bodies are plain JSON objects, no ``Annotated``, no response models.

``mount.py`` assembles the routers; ``routes_*.py`` hold one resource each; ``auth.py`` the
credential check; ``errors.py`` how library errors become HTTP status codes; ``serialize.py`` how
results become JSON.
"""

API_PREFIX = "/train-tools/v1"
