"""WebUI entry point of Train Tools (AUTOMATIC1111 v1.10 and Forge).

The WebUI runs every file in ``scripts/`` at start and on "Reload UI". This one only imports the
uniquely named package ``lib_train_tools`` (importable now, while the WebUI has the extension's
folder on ``sys.path``) and registers the extension's callbacks; nothing heavy happens here.
"""

from modules import script_callbacks

from lib_train_tools.webui_extension import TrainToolsExtension

extension = TrainToolsExtension()
script_callbacks.on_ui_settings(extension.on_ui_settings)
script_callbacks.on_ui_tabs(extension.on_ui_tabs)
script_callbacks.on_app_started(extension.on_app_started)
script_callbacks.on_script_unloaded(extension.on_script_unloaded)
