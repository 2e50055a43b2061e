"""WebUI entry point: registers the Train Tools tab.

Imports only our uniquely named package; everything else lives in ``lib_train_tools``.
"""

from modules import script_callbacks

import lib_train_tools


def on_ui_tabs():
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as tab:
        gr.Markdown(f"**Train Tools {lib_train_tools.__version__}** — the model stack is installed; "
                    "the training tab is being built.")
    return [(tab, "Train Tools", "train_tools")]


script_callbacks.on_ui_tabs(on_ui_tabs)
