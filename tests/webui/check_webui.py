#!/usr/bin/env python3
"""End-to-end check of Train Tools inside a running WebUI (A1111 v1.10 or Forge), stdlib only.

    python tests/webui/check_webui.py --url http://127.0.0.1:7861 [--log WEBUI_LOG] [--lora-dir DIR]
        [--api-only] [--checkpoint TITLE] [--user U --password P] [--out DIR]

Start the WebUI with ``--api`` (``--ui`` for the tab check) and Train Tools installed as
``extensions/<name>`` (a clone, as "Install from URL" makes). Checks, in order:

  (a) the tab: /config lists a tab "Train Tools" with elem id ``tab_train_tools``, the page loads
      the extension's javascript and style.css, and the Settings page has the section's options
      (skipped with --api-only: the WebUI builds no tab then). With --user/--password, a request
      without credentials must be refused.
  (b) a tiny training job started through /train-tools/v1/: project and version, 3 generated
      images uploaded, preprocessed at --size px, 2 epochs of 3 steps on the base checkpoint;
      it must complete. With --reload-ui, "Reload UI" is pressed while it trains: the trainer must
      keep running and the reloaded extension must follow it to the end.
  (c) Publish: the run's final file goes into the WebUI's LoRA folder (listed by
      /sdapi/v1/loras after a refresh, on disk under --lora-dir when given), with its card
      (.json, preview) and kohya metadata (ss_tag_frequency, SD version keys).
  (d) /sdapi/v1/txt2img with <lora:NAME:1> gives other pixels than <lora:NAME:0>, and the part of
      the WebUI's log written during the check has no LoRA problem line and no traceback. (The
      harness checkpoint has random weights: for some prompts A1111 refuses the all-NaN image its
      attention overflow gives, with or without a LoRA; such prompts are skipped and reported,
      and their NansException tracebacks are counted, not failed.)
  (e) the preview grid (epoch files x weights 0 and 1) drawn by the WebUI's own txt2img on the
      run's base checkpoint; with --other-checkpoint selected before, it is selected again after
      and the next generation uses it; the staged LoRA copies are removed.

Exit status 0 only when every check passed. ``tests/webui/test_check_webui.py`` runs this under
pytest when TRAIN_TOOLS_WEBUI_URL is set, and skips otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import uuid
from pathlib import Path

try:  # as tests.webui.check_webui under pytest, or run as a script from its folder
    from .webui_client import API, CheckFailed, NaNImage, WebUI, answers, png_bytes, png_pixels, txt2img, wait_until
    from .webui_log import check_log, check_unload_messages
except ImportError:
    from webui_client import API, CheckFailed, NaNImage, WebUI, answers, png_bytes, png_pixels, txt2img, wait_until
    from webui_log import check_log, check_unload_messages

TRIGGER = "zqxtrigger"   # the captions' first tag and the version's activation tag


def training_images(size: int) -> list[tuple[str, bytes]]:
    """Three distinct patterned images with captions."""
    files = []
    patterns = [("red stripes", lambda x, y: (220, 40 + (y * 7) % 120, 40)),
                ("blue checks", lambda x, y: ((x // 8 + y // 8) % 2 * 200, 60, 230)),
                ("green circle", lambda x, y: (40, 210 if (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2
                                               else 60, 40))]
    for number, (caption, pixel) in enumerate(patterns, start=1):
        files.append((f"img{number}.png", png_bytes(size, size, pixel)))
        files.append((f"img{number}.txt", f"{TRIGGER}, {caption}".encode()))
    return files


# ----- the checks -----
def check_tab(webui: WebUI, extension_dir_name: str | None) -> list[str]:
    notes = []
    config = webui.json("GET", "/config")
    tabs = [c for c in config["components"] if c.get("type") == "tabitem"]
    ours = [t for t in tabs if t["props"].get("label") == "Train Tools"]
    if not ours:
        raise CheckFailed(f"no 'Train Tools' tab in /config (tabs: {[t['props'].get('label') for t in tabs][:12]}...)")
    if ours[0]["props"].get("elem_id") != "tab_train_tools":
        raise CheckFailed(f"tab elem_id is {ours[0]['props'].get('elem_id')!r}, expected 'tab_train_tools'")
    notes.append("tab 'Train Tools' (elem id tab_train_tools) is in /config")
    notices = [c["props"].get("value", "") for c in config["components"]
               if c["props"].get("elem_id") == "train_tools_notice"]
    if notices:
        notes.append(f"the tab shows a notice: {notices[0][:300]!r}")
    status, page = webui.call("GET", "/")
    html = page.decode("utf-8", "replace")
    for asset in ("javascript/train_tools.js", "style.css"):
        pattern = re.escape(f"{extension_dir_name}/{asset}") if extension_dir_name else re.escape(asset)
        if not re.search(pattern, html):
            raise CheckFailed(f"the page does not load the extension's {asset}")
    notes.append("the page loads the extension's javascript/train_tools.js and style.css")
    keys = ("train_tools_output_dir", "train_tools_unload_model", "train_tools_keep_last_n",
            "train_tools_publish_dir", "train_tools_auto_publish", "train_tools_taggers_dir")
    settings = {c["props"].get("elem_id"): c for c in config["components"]}
    missing = [k for k in keys if f"setting_{k}" not in settings]
    if missing:
        raise CheckFailed(f"the Settings page lacks {missing}")
    notes.append("the Settings page has the Train Tools section: " + "; ".join(
        f"{settings[f'setting_{k}']['props'].get('label')!r} = {settings[f'setting_{k}']['props'].get('value')!r}"
        for k in keys))
    return notes


def check_auth(webui: WebUI) -> str:
    status, _ = webui.call("GET", f"{API}/projects", auth=False)
    if status != 401:
        raise CheckFailed(f"a request without credentials got {status}, expected 401")
    webui.json("GET", f"{API}/projects")
    return "without credentials: 401; with them: 200"


def train(webui: WebUI, checkpoint: str, size: int, project: str) -> dict:
    webui.json("POST", f"{API}/projects", {"name": project})
    webui.json("POST", f"{API}/projects/{project}/versions", {"name": "v1"})
    base = f"{API}/projects/{urllib.parse.quote(project)}/versions/v1"
    uploaded = webui.upload(f"{base}/dataset", training_images(96))
    if len(uploaded["added"]) != 6 or uploaded["refused"]:
        raise CheckFailed(f"upload: {uploaded}")
    webui.json("POST", f"{base}/dataset/preprocess", {"width": size, "height": size, "mode": "crop", "repeats": 1})
    settings = {"base_model": checkpoint, "resolution": f"{size},{size}", "max_train_epochs": 2,
                "train_batch_size": 1, "network_dim": 4, "network_alpha": 4, "learning_rate": 0.002,
                "optimizer_type": "AdamW", "mixed_precision": "no", "save_precision": "float",
                "save_every_n_epochs": 1, "save_state": False, "seed": 1, "cache_latents": True,
                "max_data_loader_n_workers": 0, "activation_tag": TRIGGER,
                "sample_prompt": f"{TRIGGER}, red stripes --w {size} --h {size} --s 4 --d 7"}
    [job] = webui.json("POST", f"{API}/jobs", {"project": project, "version": "v1", "settings": settings})
    job["summary"] = f"job {job['id']} queued: run {job['run_name']} on {checkpoint} at {size} px"
    return job


def wait_for(webui: WebUI, job: dict, timeout: float) -> dict:
    deadline, last = time.monotonic() + timeout, ""
    while True:
        state = webui.json("GET", f"{API}/jobs/{job['id']}")
        progress = state.get("progress") or {}
        line = (f"  {state['status']}: step {progress.get('step')}/{progress.get('total_steps')} "
                f"loss {progress.get('loss')}")
        if line != last:
            print(line, flush=True)
            last = line
        if state["status"] not in ("queued", "running"):
            return state
        if time.monotonic() > deadline:
            raise CheckFailed(f"job {job['id']} still {state['status']} after {timeout:.0f} s")
        time.sleep(3)


def reload_ui_during(webui: WebUI, job: dict, timeout: float) -> list[str]:
    """Press "Reload UI" (the Settings button, through gradio's HTTP API) while the job trains; the
    trainer must keep running, be followed by the reloaded extension, and finish once."""
    deadline = time.monotonic() + timeout
    while True:
        state = webui.json("GET", f"{API}/jobs/{job['id']}")
        if state["status"] == "running" and (state.get("progress") or {}).get("step", 0) >= 1:
            break
        if state["status"] not in ("queued", "running") or time.monotonic() > deadline:
            raise CheckFailed(f"the job never got to its first step before the reload ({state['status']})")
        time.sleep(2)
    pid, step = state["pid"], state["progress"]["step"]
    config = webui.json("GET", "/config")
    ids = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    index = next(i for i, d in enumerate(config["dependencies"])
                 if any(ids.get(t[0] if isinstance(t, list) else t) == "settings_restart_gradio" for t in d["targets"]))
    webui.json("POST", "/run/predict", {"fn_index": index, "data": [], "session_hash": uuid.uuid4().hex[:10]})
    wait_until(lambda: not answers(webui), 60, "the WebUI did not close its server for the reload")
    wait_until(lambda: answers(webui), 300, "the WebUI did not come back after Reload UI")
    final = wait_for(webui, job, timeout)
    log = webui.json("GET", f"{API}/jobs/{job['id']}/log?lines=400")["text"]
    if final["status"] != "completed" or final["pid"] not in (pid, None):
        raise CheckFailed(f"after the reload the job is {final['status']} (pid {pid} -> {final['pid']})")
    return [f"Reload UI at step {step}: trainer pid {pid} kept running; job {final['status']} with "
            f"{final['progress'].get('step')} steps"] + [line for line in log.splitlines() if line.startswith("[jobs]")]


def check_published(webui: WebUI, name: str, lora_dir: Path | None, ui: bool) -> list[str]:
    notes = []
    webui.call("POST", "/sdapi/v1/refresh-loras")
    listed = {entry["name"]: entry for entry in webui.json("GET", "/sdapi/v1/loras")}
    if name not in listed:
        raise CheckFailed(f"{name} is not in /sdapi/v1/loras ({sorted(listed)})")
    entry = listed[name]
    metadata = entry.get("metadata") or {}
    missing = [k for k in ("ss_tag_frequency", "ss_base_model_version", "modelspec.architecture") if k not in metadata]
    if missing:
        raise CheckFailed(f"published LoRA metadata lacks {missing}")
    tags = metadata["ss_tag_frequency"]
    tags = json.loads(tags) if isinstance(tags, str) else tags
    notes.append(f"/sdapi/v1/loras lists {name} ({entry.get('path')}); SD version keys: "
                 f"{metadata['ss_base_model_version']}, {metadata['modelspec.architecture']}; tags {tags}")
    if lora_dir is not None:
        for suffix in (".safetensors", ".json", ".preview.png"):
            if not (lora_dir / f"{name}{suffix}").is_file():
                raise CheckFailed(f"{lora_dir / (name + suffix)} is missing")
        card = json.loads((lora_dir / f"{name}.json").read_text(encoding="utf-8"))
        notes.append(f"files in {lora_dir}: {name}.safetensors, .json {card}, .preview.png")
    if ui:
        status, body = webui.call("GET", "/sd_extra_networks/get-single-card?"
                                  + urllib.parse.urlencode({"page": "lora", "tabname": "txt2img", "name": name}))
        html = json.loads(body).get("html", "") if status == 200 else ""
        if f"{name}.preview.png" not in html or TRIGGER not in html:
            raise CheckFailed(f"the Lora card has no preview image or activation text: {html[:400]!r}")
        inserted = re.search(r"&lt;lora:([^:&]+):", html)
        notes.append(f"the Lora tab's card shows {name}.preview.png and the activation text {TRIGGER!r}; "
                     f"clicking it inserts <lora:{inserted.group(1) if inserted else '?'}:...>")
    return notes


# The harness checkpoint has random weights: for some prompts its attention overflows and A1111's
# NaN check refuses the image (seen with and without LoRAs, at weights like 0.1 and 0.3 but not 0.2).
# So a few prompts are tried; one that gives an image at weight 1 is enough.
PROMPTS = (f"{TRIGGER}, a photo", f"{TRIGGER}, red stripes", "a photo of a cat", TRIGGER, "blue checks")


def check_lora_effect(webui: WebUI, name: str) -> tuple[list[str], str]:
    skipped = []
    for prompt in PROMPTS:
        try:
            strong = txt2img(webui, f"{prompt} <lora:{name}:1>")
            none = txt2img(webui, f"{prompt} <lora:{name}:0>")
            plain = txt2img(webui, prompt)
        except NaNImage as exc:
            skipped.append(str(exc))
            continue
        diff = sum(abs(a - b) for a, b in zip(strong, none)) / max(1, len(strong))
        if diff == 0:
            raise CheckFailed(f"<lora:{name}:1> and <lora:{name}:0> gave identical pixels")
        notes = [f"{prompt!r}: <lora:{name}:1> vs <lora:{name}:0>: mean |pixel difference| {diff:.2f}/255; "
                 f"<lora:{name}:0> {'equals' if none == plain else 'DIFFERS FROM'} the prompt without the tag"]
        if skipped:
            notes.append(f"skipped first (random-weight checkpoint): {'; '.join(skipped)}")
        return notes, prompt
    raise CheckFailed(f"every prompt gave an all-NaN image: {'; '.join(skipped)}")


def check_preview(webui: WebUI, project: str, run: str, base_title: str, other: str | None,
                  lora_dir: Path | None, log: Path | None, prompt: str) -> list[str]:
    """The preview grid drawn by the WebUI's txt2img on the run's base checkpoint; with ``other``
    selected as the WebUI's model beforehand, it must be selected again afterwards."""
    try:
        return _preview(webui, project, run, base_title, other, lora_dir, log, prompt)
    finally:
        if other:
            webui.call("POST", "/sdapi/v1/options", {"sd_model_checkpoint": base_title})


def _preview(webui: WebUI, project: str, run: str, base_title: str, other: str | None,
             lora_dir: Path | None, log: Path | None, prompt: str) -> list[str]:
    notes = []
    if other:
        webui.json("POST", "/sdapi/v1/options", {"sd_model_checkpoint": other})
        txt2img(webui, "a photo")           # load it, so the preview has to switch
        notes.append(f"the WebUI's model was set to {other!r} before the preview")
    offset = log.stat().st_size if log and log.exists() else 0
    result, skipped = None, []
    # the settings of check (d), whose prompt gave an image; then other prompts and another seed; last,
    # the final file alone, which (d) showed to render: with the random-weight harness model, A1111's
    # own txt2img refuses some LoRA files as all-NaN for every prompt tried (seen with an epoch file)
    prompts = (prompt,) + tuple(p for p in PROMPTS if p != prompt)
    attempts = [(files, seed, p) for files in ([], [f"{run}.safetensors"]) for seed in (1234, 7) for p in prompts]
    for files, seed, candidate in attempts:
        status, body = webui.call("POST", f"{API}/previews", {
            "project": project, "version": "v1", "run": run, "prompt": candidate, "weights": [0, 1],
            "seeds": [seed], "steps": 2, "cfg_scale": 7, "width": 64, "height": 64, "sampler": "euler",
            "checkpoints": files})
        if status == 500 and b"NansException" in body:
            skipped.append(f"{candidate} (seed {seed}{', final file only' if files else ''})")
            continue
        if status != 201:
            raise CheckFailed(f"POST {API}/previews -> {status}: {body[:300].decode('utf-8', 'replace')}")
        result = json.loads(body)
        break
    if result is None:
        raise CheckFailed(f"every preview prompt had an all-NaN cell: {skipped}")
    if skipped:
        notes.append(f"prompts skipped for an all-NaN cell (random-weight checkpoint): {skipped}")
    cells = result["cells"]
    notes.append(f"grid {result['grid']} with {len(cells)} cells "
                 f"({sorted({Path(c['checkpoint']).name for c in cells})} x weights 0, 1)")
    if Path(result["grid"]).is_file():
        last = [c for c in cells if c["row"] == max(c["row"] for c in cells)]
        pixels = {c["weight"]: png_pixels(Path(c["path"]).read_bytes()) for c in last}
        diff = sum(abs(a - b) for a, b in zip(pixels[0], pixels[1])) / max(1, len(pixels[0]))
        if diff == 0:
            raise CheckFailed("the preview's weight 0 and weight 1 cells are identical")
        notes.append(f"final file: weight 1 vs 0 cells differ by {diff:.2f}/255")
    if lora_dir is not None:
        left = list((lora_dir / "train_tools_previews").glob("tt-preview-*"))
        if left:
            raise CheckFailed(f"staged preview LoRAs were not removed: {left}")
        notes.append("the staged LoRA copies in train_tools_previews/ are gone")
    if log is not None:
        text = log.read_bytes()[offset:].decode("utf-8", "replace")
        loads = [line.strip()[:160] for line in text.splitlines()
                 if base_title in line and ("Loading" in line or "loading" in line)]
        notes.append(f"log while previewing: {loads[:2] if loads else 'no checkpoint load of ' + base_title}")
    if other:
        selected = webui.json("GET", "/sdapi/v1/options").get("sd_model_checkpoint")
        if selected is not None and other not in str(selected):
            raise CheckFailed(f"after the preview the WebUI's model option is {selected!r}, not {other!r}")
        info = json.loads(webui.json("POST", "/sdapi/v1/txt2img", {
            "prompt": "a photo", "steps": 1, "width": 64, "height": 64, "seed": 1})["info"])
        model = info.get("sd_model_name")
        if model and Path(other).stem not in model:
            raise CheckFailed(f"the next generation used {model!r}, not {other!r}")
        notes.append(f"afterwards the option is {selected!r} and the next txt2img uses {model!r}")
    return notes


# ----- main -----
class Steps:
    """Runs named checks, prints PASS/FAIL lines with their timing, and counts failures."""

    def __init__(self):
        self.failures = 0

    def __call__(self, label: str, action):
        started = time.monotonic()
        try:
            result = action()
        except (CheckFailed, urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            self.failures += 1
            print(f"FAIL {label}: {exc}", flush=True)
            return None
        shown = result[0] if isinstance(result, tuple) else result
        if isinstance(result, dict):
            shown = result.get("summary") or json.dumps(result)[:300]
        for line in shown if isinstance(shown, list) else [shown]:
            print(f"PASS {label}: {line}", flush=True)
        print(f"     ({time.monotonic() - started:.1f} s)", flush=True)
        return result


def run(args: argparse.Namespace) -> int:
    webui, step = WebUI(args.url, args.user, args.password), Steps()
    log = Path(args.log) if args.log else None
    offset = log.stat().st_size if log and log.exists() else 0
    # the WebUI answers HTTP before its app-started callbacks mount extension routes (Forge: seconds later)
    with contextlib.suppress(CheckFailed):
        wait_until(lambda: answers(webui), 300, "")
    if step("api", lambda: str(webui.json("GET", f"{API}/"))) is None:
        return 1
    if args.user is not None:
        step("auth", lambda: check_auth(webui))
    if not args.api_only:
        step("(a) tab", lambda: check_tab(webui, args.extension_dir_name))
    checkpoints = webui.json("GET", f"{API}/checkpoints")
    candidates = [c["title"] for c in checkpoints
                  if not (args.other_checkpoint and args.other_checkpoint in c["title"])]  # (e) switches away
    checkpoint = args.checkpoint or next((t for t in candidates if "sd15" in t), candidates[0] if candidates else None)
    project = f"ttcheck-{time.strftime('%Y%m%d-%H%M%S')}"
    finished = train_step(step, webui, args, checkpoint, project, log, offset)
    published = use_step(step, webui, args, checkpoint, project, finished, log) if finished else None
    step("console", lambda: check_log(log, offset))
    print(f"{'ALL PASSED' if step.failures == 0 and published else 'FAILED'} ({step.failures} failed checks)")
    return 0 if step.failures == 0 and published else 1


def train_step(step: Steps, webui: WebUI, args: argparse.Namespace, checkpoint: str, project: str,
               log: Path | None, offset: int) -> dict | None:
    """(b): the job, with the unload setting and a Reload UI when asked; the finished job or None."""
    if args.unload:
        step("(b) unload setting", lambda: webui.json("POST", "/sdapi/v1/options", {"train_tools_unload_model": True})
             or "train_tools_unload_model set to true")
    job = step("(b) submit", lambda: train(webui, checkpoint, args.size, project))
    if job and args.reload_ui:
        step("(b) reload UI while training", lambda: reload_ui_during(webui, job, args.timeout))
    finished = step("(b) training", lambda: _completed(wait_for(webui, job, args.timeout), webui)) if job else None
    if args.unload:
        host = webui.json("GET", f"{API}/")["host"]
        step("(b) unload around the job", lambda: check_unload_messages(log, offset, host))
        webui.call("POST", "/sdapi/v1/options", {"train_tools_unload_model": False})
    return finished


def use_step(step: Steps, webui: WebUI, args: argparse.Namespace, checkpoint: str, project: str, finished: dict,
             log: Path | None) -> str | None:
    """(c) to (e): publish, find it, generate with it, preview; the published path or None."""
    name = f"ttcheck_{uuid.uuid4().hex[:8]}"
    lora_dir = Path(args.lora_dir) if args.lora_dir else None
    published = step("(c) publish", lambda: webui.json("POST", f"{API}/publish", {
        "project": project, "version": "v1", "run": finished["run_name"], "name": name})["path"])
    effect = None
    if published:
        step("(c) listed", lambda: check_published(webui, name, lora_dir, not args.api_only))
        effect = step("(d) txt2img", lambda: check_lora_effect(webui, name))
    if not args.skip_preview:
        prompt = effect[1] if effect else PROMPTS[0]
        step("(e) preview", lambda: check_preview(webui, project, finished["run_name"], checkpoint,
                                                  args.other_checkpoint, lora_dir, log, prompt))
    return published


def _completed(state: dict, webui: WebUI) -> dict:
    if state["status"] != "completed":
        log = webui.json("GET", f"{API}/jobs/{state['id']}/log?lines=30")["text"]
        raise CheckFailed(f"job ended {state['status']}: {state.get('message')}\n{log}")
    progress = state["progress"]
    state["summary"] = (f"job {state['id']} completed: {progress.get('step')} steps, "
                        f"final loss {progress.get('loss')}, file {progress.get('final_path')}")
    return state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("TRAIN_TOOLS_WEBUI_URL"))
    parser.add_argument("--log", default=os.environ.get("TRAIN_TOOLS_WEBUI_LOG"))
    parser.add_argument("--lora-dir", default=os.environ.get("TRAIN_TOOLS_WEBUI_LORA_DIR"))
    parser.add_argument("--api-only", action="store_true", default=bool(os.environ.get("TRAIN_TOOLS_WEBUI_API_ONLY")))
    parser.add_argument("--checkpoint", default=os.environ.get("TRAIN_TOOLS_WEBUI_CHECKPOINT"))
    parser.add_argument("--extension-dir-name", default=os.environ.get("TRAIN_TOOLS_WEBUI_EXTENSION", "train-tools"))
    parser.add_argument("--user", default=os.environ.get("TRAIN_TOOLS_WEBUI_USER"))
    parser.add_argument("--password", default=os.environ.get("TRAIN_TOOLS_WEBUI_PASSWORD"))
    parser.add_argument("--other-checkpoint", default=os.environ.get("TRAIN_TOOLS_WEBUI_OTHER_CHECKPOINT"),
                        help="a second checkpoint: selected before the preview, must be selected after it")
    parser.add_argument("--skip-preview", action="store_true")
    parser.add_argument("--unload", action="store_true",
                        help="turn the unload-model setting on for the job (and off after it)")
    parser.add_argument("--reload-ui", action="store_true",
                        help="press Reload UI while the job trains (UI mode only)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url (or TRAIN_TOOLS_WEBUI_URL) is required")
    return args


if __name__ == "__main__":
    sys.exit(run(parse_args()))
