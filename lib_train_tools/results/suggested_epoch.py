"""The suggested epoch of a run: the saved epoch with the lowest validation loss.

The trainer measures the validation loss at the end of epochs (``validation`` progress events with
``epoch_end``) over the same fixed draws every time, so the numbers of different epochs compare
directly; the epoch that generalises best to the held-out images is ``argmin_e L_val(e)``. Only epochs
with a LoRA file can be suggested (the final file stands for the last epoch); on a tie the earlier
epoch wins (fewer steps, the same loss).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def lowest_loss_epoch(losses: Iterable[tuple[int, float]], epochs: Iterable[int] | None = None) -> int | None:
    """``argmin`` over the (epoch, validation loss) pairs, restricted to ``epochs`` when given; None when
    no finite loss is left. A later pair for the same epoch replaces an earlier one."""
    by_epoch = {int(epoch): float(loss) for epoch, loss in losses if loss is not None and math.isfinite(loss)}
    allowed = set(epochs) if epochs is not None else set(by_epoch)
    candidates = [(loss, epoch) for epoch, loss in by_epoch.items() if epoch in allowed]
    return min(candidates)[1] if candidates else None


def suggested_checkpoint(checkpoints: Iterable[Any], losses: Iterable[tuple[int, float]]) -> Any | None:
    """The checkpoint (``runs.CheckpointInfo``: epoch files and the final file) of the suggested epoch."""
    by_epoch: dict[int, Any] = {}
    for checkpoint in checkpoints:
        if checkpoint.kind in ("epoch", "final") and checkpoint.epoch is not None:
            by_epoch.setdefault(checkpoint.epoch, checkpoint)  # an epoch file before a final file of that epoch
    epoch = lowest_loss_epoch(losses, by_epoch)
    return by_epoch[epoch] if epoch is not None else None
