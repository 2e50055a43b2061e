"""Host adapters: what Train Tools needs from the program it runs in, implemented for each one.

The contracts (``Host``, ``PreviewRenderer``, ``Tagger``, ...) live in ``lib_train_tools.contracts``;
this package holds only their implementations: ``standalone.py`` without the WebUI, ``webui*.py``
for the WebUI. ``webui_modules.py`` is the only module in the package that imports the WebUI's
``modules``; ``webui_requirements.py`` imports nothing but the standard library (``install.py``
runs it before the WebUI starts).
"""
