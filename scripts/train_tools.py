"""WebUI entry point of Train Tools (AUTOMATIC1111 v1.10 and Forge).

The WebUI runs every file in ``scripts/`` at start and on "Reload UI". This one only imports the
uniquely named package ``lib_train_tools`` (importable now, while the WebUI has the extension's
folder on ``sys.path``) and registers the extension's callbacks through the one module that
imports the WebUI's ``modules`` (``host/webui_modules.py``); nothing heavy happens here.
"""

from lib_train_tools.host.webui_modules import register_callbacks
from lib_train_tools.webui_extension import TrainToolsExtension

extension = TrainToolsExtension()
register_callbacks(extension)
