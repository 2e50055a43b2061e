"""Training jobs: the queue of trainer subprocesses, their progress, the hyperparameter grid.

``JobQueue`` (queue.py) runs jobs one at a time per device, each ``python -m lib_train_tools.train``
in its own run folder (``<version>/trains/<run_name>/``); ``grid.py`` expands several values of a
few options into one run per combination; ``run_config.py`` turns a version's settings into
trainer options. Modules are imported explicitly (``from lib_train_tools.jobs.queue import
JobQueue``); nothing here imports torch, gradio or the WebUI.
"""
