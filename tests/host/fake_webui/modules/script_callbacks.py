"""Fake of modules/script_callbacks.py: registration, and the WebUI's side that fires callbacks."""

callbacks = {"ui_tabs": [], "ui_settings": [], "app_started": [], "script_unloaded": []}


def on_ui_tabs(callback, *, name=None):
    callbacks["ui_tabs"].append(callback)


def on_ui_settings(callback, *, name=None):
    callbacks["ui_settings"].append(callback)


def on_app_started(callback, *, name=None):
    callbacks["app_started"].append(callback)


def on_script_unloaded(callback, *, name=None):
    callbacks["script_unloaded"].append(callback)


def ui_tabs_callback():
    tabs = []
    for callback in callbacks["ui_tabs"]:
        tabs += callback() or []
    return tabs


def ui_settings_callback():
    for callback in callbacks["ui_settings"]:
        callback()


def app_started_callback(demo, app):
    for callback in callbacks["app_started"]:
        callback(demo, app)


def script_unloaded_callback():
    for callback in reversed(callbacks["script_unloaded"]):
        callback()


def clear_callbacks():
    for registered in callbacks.values():
        registered.clear()
