"""Datasets of a version: upload, duplicates, preprocessing, captions and tag curation, repeats.

Each module does one step; every operation returns a result object (accepted and refused files
with reasons, counts) for a UI to show, and takes an optional ``progress(done, total, name)``
callback where it walks images. Nothing here imports the WebUI or gradio.
"""
