"""What the app does around each training job: the host's own model, and the finishing touches.

Before a job the host frees its model (the WebUI's VRAM); after it, however it ended, the host
loads it back. A run that completed then gets, in this order and each independently of the
others' failures: older epoch files pruned (host setting ``keep_last_n_checkpoints``), its final
file published to the LoRA folder as ``<project>-<version>`` (host setting ``auto_publish``; the
activation tag becomes the card's activation text, the last sample image its picture), and the
epoch x weight preview grid (the version's ``preview_all_epochs`` setting). A failure is raised
after the other steps ran, so the job queue writes it into the job's log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .projects import Store, StoreError, load_settings

PREVIEW_FALLBACK_PROMPT = "a picture"


@dataclass
class RunHooks:
    host: Any  # host.base.Host
    store: Store

    def before_job(self, job: Any) -> None:
        self.host.before_training()

    def after_job(self, job: Any, progress: Any) -> None:
        try:
            self.host.after_training()
        finally:
            if job.status == "completed":
                self.finish_completed(job, progress)

    def finish_completed(self, job: Any, progress: Any) -> None:
        settings = self._settings(job)
        final = Path(progress.final_path) if progress.final_path else None
        host_settings = self.host.settings()
        steps: list[tuple[str, Callable[[], Any]]] = []
        if final is not None and host_settings.keep_last_n_checkpoints > 0:
            steps.append(("prune", lambda: _prune(job.run_dir, final.stem, host_settings.keep_last_n_checkpoints)))
        if final is not None and final.is_file() and host_settings.auto_publish:
            steps.append(("publish", lambda: self._publish(job, progress, final, settings)))
        if settings.get("preview_all_epochs"):
            steps.append(("preview", lambda: self._preview(job, settings)))
        failures = []
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # one finishing step failing must not skip the others
                failures.append(f"{name}: {exc}")
        if failures:
            raise RuntimeError("after the run: " + "; ".join(failures))

    def _settings(self, job: Any) -> dict:
        try:
            return load_settings(self.store.version(job.project, job.version))
        except (StoreError, ValueError):
            return {}  # the version was renamed or deleted meanwhile: publish with defaults

    def _publish(self, job: Any, progress: Any, final: Path, settings: dict) -> Path:
        from .results.publish import auto_publish, default_notes

        samples = [Path(s.path) for s in progress.samples if s.path and Path(s.path).is_file()]
        notes = default_notes(job.project, job.version, job.run_name, epoch=progress.epoch, steps=progress.step)
        return auto_publish(final, self.host.lora_dir(), job.project, job.version,
                            activation_text=settings.get("activation_tag") or "", notes=notes,
                            preview_image=samples[-1] if samples else None)

    def _preview(self, job: Any, settings: dict):
        from .results.preview import PreviewRequest, render_preview

        request = PreviewRequest(prompt=preview_prompt(settings))
        return render_preview(job.run_dir, request, self.host.preview_renderer())


def preview_prompt(settings: dict) -> str:
    """The first sample prompt without its sd-scripts flags, else the activation tag."""
    first = (settings.get("sample_prompt") or "").strip().splitlines()
    prompt = first[0].split(" --")[0].strip() if first else ""
    return prompt or settings.get("activation_tag") or PREVIEW_FALLBACK_PROMPT


def _prune(run_dir: Path, output_name: str, keep: int) -> list[Path]:
    from .results.prune import prune_checkpoints

    return prune_checkpoints(run_dir, output_name, keep)
