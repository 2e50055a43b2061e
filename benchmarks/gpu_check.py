"""One-command GPU check (not a test): CUDA tests, then training speed and memory next to the U-Net floor.

    python benchmarks/gpu_check.py --out DIR            # on a CUDA machine, offline; meant to end within 8 minutes
    python benchmarks/gpu_check.py --dry-run --out DIR  # the same steps on the CPU with tiny models (~25 s)

Steps, each recorded in ``DIR/gpu_check.json`` (the summary table also in ``DIR/gpu_check.md``, the
children's output in ``DIR/logs/``):

1. Dependencies. What the trainer and pytest need beyond torch (``REQUIRED_MODULES``, and bitsandbytes
   for 8-bit AdamW on CUDA) is installed, where missing, from the wheels folder that
   ``benchmarks/gpu_wheels.py`` prepared (default ``benchmarks/wheels``) with ``pip install --no-index
   --no-deps --target WORK/site`` (without pip, by unzipping the fitting wheels there): nothing is
   downloaded and the environment's own packages, torch above all, are never touched; the children get
   that folder on ``PYTHONPATH``. A dry run installs nothing.
2. Checkpoints. Random SD1.5 and SDXL checkpoints in the released layout from ``checkpoint_factory``,
   real size in fp16 (~2 GB and ~7 GB; modules initialised on the GPU, the slow part on a CPU), tiny
   ones in a dry run, with the time each took to write.
3. Tests. ``pytest -m cuda`` on the test files that carry the ``cuda`` marker (only those are
   collected, so test-only references such as diffusers need not be installed); on a CPU all skip.
4. Training. Each case in ``CASES`` is trained by our trainer from an sd-scripts TOML on 4 generated
   images (latents cached), one process per case (``gpu_measure.train_case``): s/it in the steady
   state (median interval between step events after the first ``warmup`` steps), time to the first
   step, peak ``max_memory_allocated`` / ``max_memory_reserved`` of the whole run and peak RSS. The dry
   run trains in float32 (``DRY.precision``): bf16 is emulated on a CPU, and fp16 becomes float32 there.
5. Floor. The bare U-Net forward + backward at each case's shape and precision, in this process
   (``gpu_measure.unet_floor``); ``ratio_to_floor`` = s/it / floor.
6. kohya. When the sd-scripts harness (``../shared/harness``, ``$HARNESS_DATA``) has a CUDA torch and
   time is left, kohya's trainer runs the same TOML for ``KOHYA_CASES`` (s/it and the ratio); else the
   JSON says why it was skipped.

Exit code 0 when everything planned ran or was skipped for a stated reason, 1 when a test, a case or
a floor failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_measure import Case, kohya_case, kohya_python, run_child, train_case, unet_floor  # noqa: E402

DEFAULT_WHEELS = ROOT / "benchmarks" / "wheels"
# import name -> distribution in the wheels folder (gpu_wheels.WHEELS)
REQUIRED_MODULES = {
    "safetensors": "safetensors", "toml": "toml", "PIL": "pillow", "numpy": "numpy", "open_clip": "open_clip_torch",
    "ftfy": "ftfy", "wcwidth": "wcwidth", "regex": "regex", "lion_pytorch": "lion-pytorch",
    "packaging": "packaging", "pytest": "pytest", "iniconfig": "iniconfig", "pluggy": "pluggy", "pygments": "pygments",
}
PY310_MODULES = {"exceptiongroup": "exceptiongroup", "tomli": "tomli"}
CUDA_MODULES = {"bitsandbytes": "bitsandbytes"}
BUDGET_S = 480  # the whole check should end within 8 minutes

CASES = (
    Case("sd15_fp16", "sd1", 512, "fp16", "AdamW"),
    Case("sd15_bf16", "sd1", 512, "bf16", "AdamW"),
    Case("sdxl_adamw", "sdxl", 1024, "bf16", "AdamW", gradient_checkpointing=True, cache_text_encoder_outputs=True),
    Case("sdxl_adamw8bit", "sdxl", 1024, "bf16", "AdamW8bit", gradient_checkpointing=True,
         cache_text_encoder_outputs=True, needs="bitsandbytes"),
    Case("sdxl_adafactor", "sdxl", 1024, "bf16", "Adafactor", gradient_checkpointing=True,
         cache_text_encoder_outputs=True),
)
KOHYA_CASES = ("sd15_fp16", "sdxl_adamw")


@dataclass(frozen=True)
class Plan:
    """Sizes of one check: real on CUDA, tiny on the CPU (dry run)."""

    device: str
    size: str                    # checkpoint_factory size
    resolution: dict[str, int]   # family -> pixels; a family not listed trains at the case's resolution
    steps: dict[str, int]        # family -> max_train_steps
    warmup: dict[str, int]       # family -> steps left out of the s/it
    floor_iters: int
    floor_warmup: int
    timeout_s: int               # per child process
    precision: str | None = None  # every case's mixed_precision instead of its own


REAL = Plan("cuda", "real", {}, {"sd1": 40, "sdxl": 16}, {"sd1": 10, "sdxl": 4}, 10, 3, 240)
# bf16 on a CPU is emulated, ten times slower than float32 (fp16 becomes float32 there anyway)
DRY = Plan("cpu", "tiny", {"sd1": 64, "sdxl": 64}, {"sd1": 4, "sdxl": 4}, {"sd1": 1, "sdxl": 1}, 2, 1, 120,
           precision="no")


# ---------------------------------------------------------------- 1. dependencies

def missing_modules(modules: dict[str, str]) -> dict[str, str]:
    return {name: dist for name, dist in modules.items() if importlib.util.find_spec(name) is None}


def install_missing(wheels: Path, site: Path, dry_run: bool, cuda: bool) -> dict:
    """Install what is missing from ``wheels`` into ``site`` (added to sys.path and PYTHONPATH)."""
    wanted = dict(REQUIRED_MODULES, **(PY310_MODULES if sys.version_info < (3, 11) else {}))
    if cuda:
        wanted.update(CUDA_MODULES)
    missing = missing_modules(wanted)
    report: dict[str, Any] = {"wheels_dir": str(wheels), "target": str(site), "missing": sorted(missing.values()),
                              "installed": [], "seconds": 0.0}
    if not missing:
        return report
    if dry_run:
        report["note"] = "dry run: nothing installed"
        return report
    started = time.perf_counter()
    site.mkdir(parents=True, exist_ok=True)
    required = sorted({d for d in missing.values() if d not in CUDA_MODULES.values()})
    optional = sorted({d for d in missing.values() if d in CUDA_MODULES.values()})
    if importlib.util.find_spec("pip") is None:  # a venv made without pip (uv): a wheel is a zip of site-packages
        report.update(method="unzip", unzipped=unzip_wheels(wheels, required + optional, site))
    else:  # one pip call per group: a missing optional wheel must not stop the required ones
        report.update(method="pip", pip=[pip_install(wheels, site, group) for group in (required, optional) if group])
    report["seconds"] = time.perf_counter() - started
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    importlib.invalidate_caches()
    still = missing_modules(wanted)
    report["installed"] = sorted(set(missing.values()) - set(still.values()))
    report["missing"] = sorted(still.values())
    return report


def pip_install(wheels: Path, site: Path, dists: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pip", "--isolated", "install", "--no-index", "--no-deps", "--only-binary=:all:",
           "--find-links", str(wheels), "--target", str(site), "--disable-pip-version-check", "--no-warn-conflicts",
           *dists]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    result: dict[str, Any] = {"command": " ".join(cmd), "exit_code": done.returncode}
    if done.returncode:
        result["output_tail"] = (done.stdout + done.stderr)[-2000:]
    return result


def wheel_fits(filename: str) -> bool:
    """Whether a wheel (``name-version-python-abi-platform.whl``) installs on this CPython and machine."""
    python, abi, plat = filename[:-len(".whl")].split("-")[-3:]
    minor = sys.version_info[1]
    ours = f"cp3{minor}"
    py_ok = any(tag in (ours, "py3") or (abi == "abi3" and tag.startswith("cp3") and int(tag[3:]) <= minor)
                for tag in python.split("."))
    abi_ok = abi in (ours, "abi3", "none")
    plat_ok = plat == "any" or ("linux" in plat and platform.machine() in plat)
    return py_ok and abi_ok and plat_ok


def unzip_wheels(wheels: Path, dists: list[str], site: Path) -> list[str]:
    """Unpack the first fitting wheel of each distribution into ``site``; returns the files used."""
    used = []
    for dist in dists:
        prefix = re.sub(r"[-_.]+", "_", dist).lower() + "-"
        found = next((w for w in sorted(wheels.glob("*.whl"))
                      if w.name.lower().startswith(prefix) and wheel_fits(w.name)), None)
        if found is not None:
            with zipfile.ZipFile(found) as archive:
                archive.extractall(site)
            used.append(found.name)
    return used


# ---------------------------------------------------------------- 2. checkpoints

def write_checkpoints(work: Path, plan: Plan) -> dict:
    """Random SD1.5 and SDXL checkpoints (fp16 safetensors). On CUDA the modules are initialised on the
    GPU (minutes faster for SDXL); should that fail, on the CPU, and the JSON says why."""
    import torch

    from lib_train_tools.models.checkpoint_factory import write_checkpoint

    out = {}
    for family in ("sd1", "sdxl"):
        path = work / f"{plan.size}-{family}.safetensors"
        started = time.perf_counter()
        record: dict[str, Any] = {"path": str(path), "size": plan.size, "built_on": plan.device}
        try:
            with torch.device(plan.device):
                write_checkpoint(path, family=family, size=plan.size, seed=0, dtype=torch.float16)
        except Exception as exc:
            if plan.device == "cpu":
                raise
            record["built_on"] = f"cpu ({plan.device} failed: {type(exc).__name__}: {str(exc)[:200]})"
            write_checkpoint(path, family=family, size=plan.size, seed=0, dtype=torch.float16)
        if plan.device == "cuda":
            torch.cuda.empty_cache()
        out[family] = {**record, "bytes": path.stat().st_size, "write_s": time.perf_counter() - started}
    return out


# ---------------------------------------------------------------- 3. tests

def cuda_test_files() -> list[str]:
    """Test files that carry the ``cuda`` marker (collected alone: the others may need test-only packages)."""
    marker = re.compile(r"pytest\.mark\.cuda\b|pytestmark\s*=.*\bcuda\b")
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                  if marker.search(p.read_text(encoding="utf-8")))


def run_tests(out: Path, timeout: float) -> dict:
    files = cuda_test_files()
    if not files:
        return {"status": "skipped", "reason": "no test file carries the cuda marker", "summary": "",
                "exit_code": None}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "-rs", *files]
    lines: list[str] = []
    m = run_child(cmd, timeout, lines.append)
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / "pytest.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = {kind: 0 for kind in ("passed", "failed", "skipped", "errors")}
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed|skipped|error)", line)), "")
    for number, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary):
        key = "errors" if kind.startswith("error") else kind
        counts[key] = counts.get(key, 0) + int(number)
    return {"command": " ".join(cmd[1:]), "files": files, "exit_code": m["code"], "seconds": m["wall_s"],
            "summary": summary.strip("= "), **counts}


# ---------------------------------------------------------------- 4.-6. training, floors, kohya

def run_cases(plan: Plan, checkpoints: dict, work: Path, logs: Path, deadline: float) -> list[dict]:
    """Train every case; after each, the floor of its shape and precision (once per distinct one)."""
    results, floors = [], {}
    for case in CASES:
        resolution = plan.resolution.get(case.family, case.resolution)
        row: dict[str, Any] = {"name": case.name, **asdict(case), "resolution": resolution,
                               "run_precision": plan.precision or case.precision}
        row.pop("needs")
        why = case.skip_reason()
        if why:
            results.append({**row, "status": "skipped", "reason": why})
            continue
        if plan.precision:
            case = replace(case, precision=plan.precision)
        ckpt = checkpoints[case.family]["path"]
        print(f"[gpu_check] training {case.name} ...", flush=True)
        row.update(train_case(case, ckpt, plan.device, resolution, plan.steps[case.family],
                              plan.warmup[case.family], work, logs, child_timeout(plan, deadline)))
        key = case.floor_key(resolution)
        if key not in floors:
            print(f"[gpu_check] U-Net floor {case.family} {resolution}px {case.precision} ...", flush=True)
            floors[key] = measure_floor(case, ckpt, plan, resolution)
        floor = floors[key]
        row["floor"] = floor
        row["floor_s"] = floor.get("s_per_it")
        row["ratio_to_floor"] = row["s_per_it"] / row["floor_s"] if row.get("s_per_it") and row["floor_s"] else None
        results.append(row)
    return results


def measure_floor(case: Case, ckpt: str, plan: Plan, resolution: int) -> dict:
    try:
        return unet_floor(ckpt, plan.device, resolution, case.precision, case.gradient_checkpointing, case.batch,
                          plan.floor_iters, plan.floor_warmup)
    except Exception as exc:  # out of memory above all: the cases keep their own figures
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}


def child_timeout(plan: Plan, deadline: float) -> float:
    """A child may run for plan.timeout_s, but never far past the overall budget."""
    return max(60.0, min(plan.timeout_s, deadline - time.time() + 60))


def run_kohya(plan: Plan, cases: list[dict], work: Path, logs: Path, deadline: float) -> dict:
    if plan.device != "cuda":
        return {"status": "skipped", "reason": "dry run: kohya's trainer is compared on CUDA only"}
    python, why = kohya_python(deadline - time.time())
    if python is None:
        return {"status": "skipped", "reason": why}
    runs = {}
    for row in cases:
        if row["name"] not in KOHYA_CASES or row["status"] != "ok":
            continue
        if deadline - time.time() < 90:
            runs[row["name"]] = {"status": "skipped", "reason": "out of time"}
            continue
        case = next(c for c in CASES if c.name == row["name"])
        run = kohya_case(python, case, work, logs, child_timeout(plan, deadline))
        if run.get("s_per_it") and row.get("s_per_it"):
            run["ours_over_kohya"] = row["s_per_it"] / run["s_per_it"]
        runs[row["name"]] = run
    return {"status": "ok", "runs": runs}


# ---------------------------------------------------------------- report

def environment(plan: Plan) -> dict:
    import torch

    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "device": plan.device,
           "cpus": os.cpu_count(), "cuda": torch.version.cuda}
    if plan.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_mib=props.total_memory / 2**20, cudnn=torch.backends.cudnn.version())
    return env


TABLE_HEADER = ("| case | px | precision | optimizer | GC | s/it | U-Net floor s/it | ratio | peak alloc MiB "
                "| peak reserved MiB | peak RSS MiB | status |")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _precision(row: dict) -> str:
    ran = row["run_precision"]
    return row["precision"] if ran == row["precision"] else f"{row['precision']} (ran {ran})"


def _kohya_line(kohya: dict) -> str:
    if "runs" not in kohya:
        return f"{kohya['status']}: {kohya.get('reason', '')}"
    return "; ".join(f"{name} {_fmt(run.get('s_per_it'))} s/it, ours/kohya {_fmt(run.get('ours_over_kohya'), 2)}"
                     if run["status"] == "ok" else f"{name} {run['status']}: {run.get('reason', '')[:80]}"
                     for name, run in kohya["runs"].items()) or "no case ran"


def table(report: dict) -> str:
    """The summary table (Markdown)."""
    lines = [TABLE_HEADER, "|" + " --- |" * TABLE_HEADER.count(" | ")]
    for r in report["cases"]:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason', '')}".replace("\n", " ")
        lines.append("| " + " | ".join([
            r["name"], str(r["resolution"]), _precision(r), r["optimizer"], "yes" if r["gradient_checkpointing"]
            else "no", _fmt(r.get("s_per_it")), _fmt(r.get("floor_s")), _fmt(r.get("ratio_to_floor"), 2),
            _fmt(r.get("peak_allocated_mib"), 0), _fmt(r.get("peak_reserved_mib"), 0),
            _fmt(r.get("peak_rss_mib"), 0), status[:120]]) + " |")
    env, tests = report.get("environment", {}), report["tests"]
    ckpts = ", ".join(f"{k} {v['bytes'] / 2**20:.0f} MiB in {v['write_s']:.1f} s"
                      for k, v in report["checkpoints"].items())
    tests_line = tests["summary"] or tests.get("reason") or f"exit {tests['exit_code']}"
    lines += ["", (f"mode {report['mode']}; {env.get('gpu', env.get('device', '?'))}; torch {env.get('torch', '?')}, "
                   f"Python {env.get('python', '?')}; total {report['total_s']:.0f} s (budget {BUDGET_S} s)"),
              f"checkpoints ({report['checkpoint_size']}): {ckpts or '-'}",
              f"tests (pytest -m cuda): {tests_line}",
              f"kohya: {_kohya_line(report['kohya'])}"]
    if "error" in report:
        lines.append(f"STOPPED: {report['error']}")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="CUDA tests, training speed/memory and the U-Net floor, in one command")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or tempfile.gettempdir()) / "gpu_check",
                   help="where gpu_check.json, gpu_check.md and logs/ go (default: $OUT/gpu_check)")
    p.add_argument("--dry-run", action="store_true", help="tiny models on the CPU: the same steps, in seconds")
    p.add_argument("--wheels", type=Path, default=DEFAULT_WHEELS, help="folder of wheels (gpu_wheels.py)")
    p.add_argument("--work", type=Path, help="checkpoints and runs here (default: a temporary folder, removed)")
    p.add_argument("--skip-tests", action="store_true", help="leave out pytest -m cuda")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    deadline = started + BUDGET_S
    plan = DRY if args.dry_run else REAL
    if args.dry_run:  # tiny models: one CPU thread per process is faster, and steady on a busy machine
        os.environ["OMP_NUM_THREADS"] = "1"
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"version": 1, "mode": "dry-run" if args.dry_run else "cuda",
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                              "checkpoint_size": plan.size, "checkpoints": {}, "cases": [],
                              "tests": {"status": "not run", "summary": "", "exit_code": None},
                              "kohya": {"status": "not run", "reason": "not reached"}}
    try:
        run_steps(args, plan, report, work, deadline)
    except (Exception, SystemExit) as exc:  # whatever stopped the check, the JSON says it
        report["error"] = f"{type(exc).__name__}: {exc}"
        print(f"[gpu_check] stopped: {report['error']}", file=sys.stderr, flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report["total_s"] = time.time() - started
    report["within_budget"] = report["total_s"] <= BUDGET_S
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    summary = table(report)
    (args.out / "gpu_check.md").write_text(summary, encoding="utf-8")
    print(summary, flush=True)
    failed = [r["name"] for r in report["cases"]
              if r["status"] == "failed" or r.get("floor", {}).get("status") == "failed"]
    tests_failed = report["tests"].get("exit_code") not in (0, None)
    return 1 if failed or tests_failed or "error" in report else 0


def run_steps(args: argparse.Namespace, plan: Plan, report: dict, work: Path, deadline: float) -> None:
    """Steps 1-6 (module docstring), each filling its part of ``report``."""
    report["dependencies"] = deps = install_missing(args.wheels, work / "site", args.dry_run, cuda=not args.dry_run)
    lacking = sorted(set(deps["missing"]) - set(CUDA_MODULES.values()))
    if lacking and not args.dry_run:
        raise SystemExit(f"missing {', '.join(lacking)} and not in {args.wheels}: run benchmarks/gpu_wheels.py "
                         "on a machine with internet first")
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run for the CPU rehearsal")
    report["environment"] = environment(plan)
    print(f"[gpu_check] writing {plan.size} checkpoints ...", flush=True)
    report["checkpoints"] = write_checkpoints(work, plan)
    if args.skip_tests:
        report["tests"] = {"status": "skipped", "reason": "--skip-tests", "summary": "", "exit_code": None}
    else:
        print("[gpu_check] pytest -m cuda ...", flush=True)
        report["tests"] = run_tests(args.out, child_timeout(plan, deadline))
    report["cases"] = run_cases(plan, report["checkpoints"], work, args.out / "logs", deadline)
    report["kohya"] = run_kohya(plan, report["cases"], work, args.out / "logs", deadline)

if __name__ == "__main__":
    sys.exit(main())
