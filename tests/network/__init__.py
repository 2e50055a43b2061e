"""Tests of the LoRA / LoCon network (lib_train_tools.network)."""
