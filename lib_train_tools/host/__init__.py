"""Hosts: what Train Tools needs from the program it runs in (the WebUI, or the standalone app).

``base.py`` states the contract; ``standalone.py`` implements it without the WebUI. The WebUI
adapter is the only module in the package that imports the WebUI's ``modules``.
"""
