"""Fake of modules/paths_internal.py: the folders (set by the test fixture)."""

script_path = "/webui"
data_path = "/webui"
models_path = "/webui/models"
default_output_dir = "/webui/outputs"
