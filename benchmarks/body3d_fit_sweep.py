"""The keypoint fit's trade-off on VALIDATION people: projected-3D AP on real people against PA-MPJPE on SynthLR.

    python benchmarks/body3d_fit_sweep.py [--model3d rsc_move_c128] [--model2d lrmove_l_128] \
        [--pose-priors 0.01 0.1 0.3 1 3 10] [--people 100] [--threads 1]

For each ``pose_prior`` (the fit's other settings at their defaults), and for the network alone:
- real: OKS AP and PCK@0.2 of the projected 3D keypoints on LSPET-val (lspet_400[270:300], ground-truth boxes,
  people degraded to 64 and 32 px), through `predict`'s path (``benchmarks/kp2d_real.py --sets lspet_val``);
- synthetic: MPJPE / PA-MPJPE on the first ``--people`` of SynthLR-val (seed 4000) at 96 and 32 px
  (``benchmarks/body3d_fit.py``).
This is how the default ``pose_prior`` was chosen; the test sets are never read. Results go to
benchmarks/results/body3d_fit_sweep.json and the plot body3d_fit_sweep.png.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))


def _run(command: list[str]) -> str:
    done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model3d", default="rsc_move_c128")
    parser.add_argument("--model2d", default="lrmove_l_128")
    parser.add_argument("--pose-priors", nargs="+", type=float, default=[0.01, 0.1, 0.3, 1.0, 3.0, 10.0])
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    out = ROOT / "benchmarks/results/body3d_fit_sweep.json"
    rows = {}
    for prior in [None, *args.pose_priors]:
        label = "network alone" if prior is None else f"pose_prior={prior:g}"
        real_args = ["benchmarks/kp2d_real.py", "--models", args.model3d, "--heights", "64", "32", "--sets",
                     "lspet_val", "--threads", str(args.threads), "--tag", "fit_sweep_scratch"]
        if prior is not None:
            real_args += ["--fit-to", args.model2d, "--fit-pose-prior", str(prior)]
        real = {}
        for line in _run(real_args).splitlines():
            match = re.match(r"lspet_val@(\d+) (\{.*\})", line)
            if match:
                values = json.loads(match.group(2).replace("'", '"'))
                real[f"AP@{match.group(1)}"], real[f"pck@{match.group(1)}"] = values["AP"], values["pck@0.2"]
        synth_args = ["benchmarks/body3d_fit.py", "--model3d", args.model3d, "--model2d", args.model2d,
                      "--people", str(args.people), "--heights", "96", "32", "--threads", str(args.threads),
                      "--tag", "fit_sweep_scratch", "--pose-prior", str(prior if prior is not None else 1.0)]
        if prior is None:
            synth_args += ["--steps", "0"]
        _run(synth_args)
        results = json.loads((ROOT / "benchmarks/results/body3d_fit_fit_sweep_scratch.json").read_text())["runs"]
        metrics = list(results.values())[-1]["metrics"]
        label_key = "net" if prior is None else "fit"
        synth = {f"{name}@{h}": metrics[f"{label_key}/{name}_mm@{h}"] for name in ("mpjpe", "pa_mpjpe") for h in (96, 32)}
        synth["fit_ms_per_person"] = metrics["fit_ms_per_person"]
        rows[label] = {"pose_prior": prior, "real_lspet_val": real, "synthlr_val": synth}
        print(label, rows[label], flush=True)
    for scratch in (ROOT / "benchmarks/results").glob("*fit_sweep_scratch*"):
        scratch.unlink()
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores",
                               "command": "python benchmarks/body3d_fit_sweep.py " + " ".join(sys.argv[1:]),
                               "model3d": args.model3d, "model2d": args.model2d, "rows": rows}, indent=1))
    plot(rows, out.with_suffix(".png"), args.model3d, args.model2d)
    print("\n| fit | LSPET-val AP@64 | AP@32 | PCK@64 | SynthLR-val PA-MPJPE@96 | PA@32 | MPJPE@32 | ms/person |")
    print("|---|---|---|---|---|---|---|---|")
    for label, row in rows.items():
        r, s = row["real_lspet_val"], row["synthlr_val"]
        print(f"| {label} | {r['AP@64']:.3f} | {r['AP@32']:.3f} | {r['pck@64']:.2f} | {s['pa_mpjpe@96']:.1f} | "
              f"{s['pa_mpjpe@32']:.1f} | {s['mpjpe@32']:.1f} | {s['fit_ms_per_person']:.0f} |")


def plot(rows: dict, path: Path, model3d: str, model2d: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, row in rows.items():
        x, y = row["synthlr_val"]["pa_mpjpe@32"], row["real_lspet_val"]["AP@64"]
        ax.scatter(x, y, color="black" if row["pose_prior"] is None else "tab:blue")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("SynthLR-val PA-MPJPE at 32 px (mm, lower is better)")
    ax.set_ylabel("LSPET-val projected-3D AP at R=64 (higher is better)")
    ax.set_title(f"{model3d} fitted to {model2d}'s keypoints", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
