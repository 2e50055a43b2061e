"""The Train Tools tab: gradio Blocks built by ``app.build_ui(services)``.

Runs on gradio 3.41 (AUTOMATIC1111) and 4.40 (Forge). Panels are split into layout/wiring
modules (``*_panel.py``, ``tag_editor.py``) that import gradio, and handler modules
(``*_actions.py``, ``train_form.py``, ``train_settings.py``, ``gallery.py``) that do not, so the
handlers are tested without a browser. ``compat.py`` holds the gradio 3/4 differences.
"""
