"""What the app does around each training job: the host's own model, and the finishing touches.

Before a job the host frees its model (the WebUI's VRAM); after it, however it ended, the host
loads it back. A run that completed then gets, in this order and each independently of the
others' failures: older epoch files pruned (host setting ``keep_last_n_checkpoints``), its final
file published to the LoRA folder as ``<project>-<version>`` (host setting ``auto_publish``; the
activation tag becomes the card's activation text, the last sample image its picture), and the
epoch x weight preview grid (the version's ``preview_all_epochs`` setting). What they did and
what failed is recorded in the run folder (``results/outcomes.py``) for the Results panel; a
failure is also raised after the other steps ran, so the job queue writes it into the job's log.
The preview grid's settings come from the version's first sample prompt and the run's training
size (``preview_defaults``, which also fills the Results panel's preview form).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .contracts import Host
from .projects import Store, StoreError, load_settings

PREVIEW_FALLBACK_PROMPT = "a picture"


@dataclass
class RunHooks:
    host: Host
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
                _record(job.run_dir, "problem", step=name, message=str(exc))
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
        path = auto_publish(final, self.host.lora_dir(), job.project, job.version,
                            activation_text=settings.get("activation_tag") or "", notes=notes,
                            preview_image=samples[-1] if samples else None)
        _record(job.run_dir, "published", name=path.stem, path=path, checkpoint=final.name)
        self.host.lora_published(path)
        return path

    def _preview(self, job: Any, settings: dict):
        from .results.preview import PreviewRequest, render_preview
        from .results.runs import read_run

        run = read_run(job.run_dir)
        request = PreviewRequest(**preview_defaults(settings, run.settings, run.progress.architecture))
        renderer = self.host.preview_renderer()
        try:
            result = render_preview(job.run_dir, request, renderer)
        finally:
            renderer.close()  # the WebUI's staged LoRA copies
        _record(job.run_dir, "preview", folder=Path(result.folder).name)
        return result


def preview_defaults(settings: Mapping[str, Any], run_settings: Mapping[str, Any] | None = None,
                     architecture: str | None = None) -> dict[str, Any]:
    """``PreviewRequest`` fields from a version's settings and (optionally) a run's trainer options.

    The first sample prompt gives the prompt and its flags (negative prompt, size, seed, steps,
    CFG, sampler); missing ones come from the run (its training size and ``sample_sampler``), else
    the sampler's defaults. The prompt starts with the activation tag when it lacks it; no sample
    prompt: the activation tag is the prompt. No seed: random.
    """
    from .results.preview import RANDOM_SEED
    from .train.sample_prompts import SamplePrompt, parse_prompt_line
    from .train.sampling import resolve_sampler

    run_settings = run_settings or {}
    width, height = _training_size(run_settings.get("resolution"), architecture)
    base = SamplePrompt("", width=width, height=height)
    lines = [line.strip() for line in (settings.get("sample_prompt") or "").splitlines()
             if line.strip() and not line.strip().startswith("#")]
    first = parse_prompt_line(lines[0], base)[0] if lines else base
    sampler = first.sampler or run_settings.get("sample_sampler") or ""
    return {
        "prompt": with_activation_tag(first.prompt, settings.get("activation_tag")) or PREVIEW_FALLBACK_PROMPT,
        "negative_prompt": first.negative_prompt, "sampler": resolve_sampler(str(sampler))[0],
        "steps": first.steps, "cfg_scale": first.cfg_scale, "width": first.width, "height": first.height,
        "seeds": (first.seed if first.seed is not None else RANDOM_SEED,),
    }


def with_activation_tag(prompt: str, tag: Any) -> str:
    """``prompt`` led by the activation tag when it lacks it: the LoRA is previewed as it is used."""
    tag = str(tag or "").strip()
    if not tag:
        return prompt
    words = [part.strip() for part in prompt.split(",")]
    return prompt if tag in words else (f"{tag}, {prompt}" if prompt.strip() else tag)


def preview_prompt(settings: Mapping[str, Any]) -> str:
    """The first sample prompt without its sd-scripts flags, else the activation tag."""
    return preview_defaults(settings)["prompt"]


def _training_size(resolution: Any, architecture: str | None) -> tuple[int, int]:
    """The run's training size ("512" or "w,h"); unset or unreadable: 1024 for SDXL, else 512."""
    from .train.config_checks import parse_resolution

    try:
        return parse_resolution(str(resolution)) if resolution else _family_size(architecture)
    except ValueError:
        return _family_size(architecture)


def _family_size(architecture: str | None) -> tuple[int, int]:
    return (1024, 1024) if architecture == "sdxl" else (512, 512)


def _record(run_dir: Path, kind: str, **fields: Any) -> None:
    """Note a finishing step's outcome for the Results panel; a full disk must not hide the step's own result."""
    from .results.outcomes import record_outcome

    try:
        record_outcome(Path(run_dir), kind, auto=True, **fields)
    except OSError:
        pass


def _prune(run_dir: Path, output_name: str, keep: int) -> list[Path]:
    from .results.prune import prune_checkpoints

    return prune_checkpoints(run_dir, output_name, keep)
