"""EHR scale benchmark: medlearn's MIMIC-IV load + features vs a plain pandas implementation, 1× to 100×.

What is measured
----------------
1. Data. MIMIC-IV-shaped ``hosp/`` tables (patients, admissions, diagnoses_icd, procedures_icd,
   prescriptions, labevents, d_labitems; same columns, string formats and gzip CSV layout as the
   MIMIC-IV demo) are generated at each scale k into a temporary folder by a balanced bootstrap of the
   demo's own patients (``benchmarks/_synthetic_mimic4.py``: every demo patient cloned k times with new
   ids and a random whole-day time shift), so k× has exactly k times the demo's rows (1×: 100
   patients, 275 admissions, 107,727 lab rows; 100×: 10,000 / 27,500 / 10.8 M) and the demo's
   per-admission event patterns.
2. Work, the same in both implementations (the LOS task's default window: prediction at 24 h, 2 h
   bins): read every table, cohort of admissions still in hospital and alive at 24 h, events of the
   patient in ``[admit, admit + 24 h)`` binned every 2 h (labs with a numeric value; drugs by start
   time, NDC else drug name; procedures at the end of their chartdate; diagnoses at discharge),
   diagnosis history from earlier admissions, static features; then vocabularies and lab
   normalisation fitted on all units (top 50 labs, 200 codes, 100 history codes, seen in ≥ 3
   admissions; 1st–99th percentile clipping) and every unit turned into a ``(12, F)`` float32 array.

   - medlearn: ``LOSClassification().load(root)`` (``read_source`` → canonical event table + parquet
     cache, ``build_cohort``, ``extract_units``), then ``fit_featurize`` and a ``Featurize`` applied to
     every unit.
   - pandas: the obvious eager code a user writes (``pd.read_csv`` of every table with ``usecols`` and
     ``parse_dates``, merges, a time-window filter, ``groupby`` aggregation into dense numpy arrays).
     At the smallest scale both arrays are saved and compared (same units, same features), so the two
     really do the same work.
3. Each run is a FRESH Python process (``python benchmarks/ehr_scale.py _child ...``) with
   ``MEDLEARN_CACHE`` set to a new empty folder (cold medlearn cache, deleted after the run). Wall time
   is measured by the parent from spawn to exit (interpreter start and imports included); peak RSS is
   the child's own ``VmHWM`` (``/proc/self/status``, read as its last act). Not ``ru_maxrss``: Linux
   carries the spawning process's RSS high-water mark through fork + exec into the child's
   ``ru_maxrss`` (``os.wait4``, ``RUSAGE_CHILDREN`` and ``/usr/bin/time`` all see it), so every child
   of a parent that once held 1 GB would read ≥ 1 GB; generation and the output check run in their own
   processes for the same reason. The child also reports its import time and its data step
   (everything after the imports).
4. PyHealth is not run here (its 2.x releases need Python ≥ 3.12); its figures from the issue are
   printed as a reference measured elsewhere, beside a medlearn cold process on the real MIMIC-IV demo
   (``$MEDLEARN_DATA/ehr/mimic-iv-demo``, hosp + icu; median of ``--demo-repeats`` runs).

Caveats
-------
- The synthetic tables are copies of 100 real patients: the code vocabulary does not grow with k, and
  values are not perturbed. Row-count-driven costs (decompression, parsing, joins, sorts, per-unit
  Python) are realistic; costs driven by a long tail of rare codes are underestimated.
- Gzip level 1 (generation speed); the generated files are ~25% larger than level-6 ones.
- The input files were just written, so they are in the OS page cache for every run ("cold" means a
  cold process and an empty medlearn cache, not a cold disk); the same holds for both implementations.
- polars uses every core it sees (2 here), the pandas C parser one. On a quiet machine repeated runs
  vary by 10–20%; when other jobs hold the cores, medlearn's cold load (2 polars threads) can take up
  to twice as long. Use ``--repeats`` for medians and check ``uptime`` before trusting a run.
- A cold medlearn run also writes its parquet cache, which later runs on the same files reuse; warm
  runs are not measured here (they skip the CSV parsing and the data-quality pass).
- Wall minus (import + data step) is interpreter start-up, the child's bookkeeping and teardown
  (0.3–0.7 s). Medians are taken per column, so a row's figures may come from different runs.
- medlearn's 1× synthetic run has no ``icu/`` folder (the generator writes ``hosp/`` only); the real-demo
  run reads ``icu/`` too.

Run: ``python benchmarks/ehr_scale.py [--scales 1 10 100] [--keep DIR] [--repeats N]``. Prints figures,
never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
PREDICTION_HOURS, BIN_HOURS = 24.0, 2.0
MAX_LABS, MAX_CODES, MAX_HISTORY, MIN_COUNT = 50, 200, 100, 3
LOS_BIN_EDGES_DAYS = (1, 2, 3, 4, 5, 6, 7, 8, 14)

# Goals (issue 4, "Must show") and the PyHealth reference figures quoted there (not re-measured here).
GOAL_100X_SECONDS = 120.0
GOAL_100X_BYTES = 4e9  # "4 GB", read strictly as 4·10^9 bytes (3,815 MiB)
GOAL_SLOPE = 1.10  # near-linear: time ∝ size^slope between consecutive scales, slope ≤ 1.10
PYHEALTH = {"wall_s": 12.3, "rss_mib": 937.0, "load_s": 5.5, "task_s": 1.1, "import_s": 6.0}
PYHEALTH_DATA_S = PYHEALTH["load_s"] + PYHEALTH["task_s"]


# ----------------------------------------------------------------------------------------------------
# The two implementations (run inside a child process)
# ----------------------------------------------------------------------------------------------------


def run_medlearn(root: Path) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    from medlearn.ehr.features import Featurize, fit_featurize
    from medlearn.ehr.tasks import LOSClassification

    t1 = time.perf_counter()
    task = LOSClassification()
    table = task.load(root)
    t2 = time.perf_counter()
    featurize = Featurize(
        **fit_featurize(table.raw, task.window().n_bins, MAX_LABS, MAX_CODES, MAX_HISTORY, MIN_COUNT)
    )
    x = np.stack([featurize(unit) for unit in table.raw]) if table.raw else np.zeros((0, 0, 0), np.float32)
    t3 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "phase1_s": t2 - t1,
        "phase2_s": t3 - t2,
        "x": x,
        "ids": list(table.ids),
        "targets": np.asarray(table.targets),
    }


def run_pandas(root: Path) -> dict:
    """The plain eager pandas version of the same work, as a user would write it."""
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd

    t1 = time.perf_counter()
    hosp = Path(root) / "hosp"
    patients = pd.read_csv(
        hosp / "patients.csv.gz", usecols=["subject_id", "gender", "anchor_age", "anchor_year"]
    )
    adm = pd.read_csv(
        hosp / "admissions.csv.gz",
        usecols=["subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type"],
        parse_dates=["admittime", "dischtime", "deathtime"],
    )
    diag = pd.read_csv(
        hosp / "diagnoses_icd.csv.gz",
        usecols=["subject_id", "hadm_id", "icd_code", "icd_version"],
        dtype={"icd_code": str},
    )
    proc = pd.read_csv(
        hosp / "procedures_icd.csv.gz",
        usecols=["subject_id", "chartdate", "icd_code", "icd_version"],
        dtype={"icd_code": str},
        parse_dates=["chartdate"],
    )
    rx = pd.read_csv(
        hosp / "prescriptions.csv.gz",
        usecols=["subject_id", "starttime", "drug", "ndc"],
        dtype={"ndc": str},
        parse_dates=["starttime"],
    )
    labs = pd.read_csv(
        hosp / "labevents.csv.gz",
        usecols=["subject_id", "itemid", "charttime", "valuenum"],
        parse_dates=["charttime"],
    )
    lab_names = pd.read_csv(hosp / "d_labitems.csv.gz").set_index("itemid")["label"]
    t2 = time.perf_counter()

    # cohort: in hospital and alive at the cutoff
    adm = adm.merge(patients, on="subject_id", how="left")
    adm["age"] = (adm["anchor_age"] + adm["admittime"].dt.year - adm["anchor_year"]).clip(upper=90)
    adm["n_prior"] = adm.groupby("subject_id")["admittime"].rank(method="min") - 1
    adm["cutoff"] = adm["admittime"] + pd.Timedelta(hours=PREDICTION_HOURS)
    alive = adm["deathtime"].isna() | (adm["deathtime"] > adm["cutoff"])
    cohort = adm[(adm["dischtime"] > adm["cutoff"]) & alive].copy()
    cohort = cohort.sort_values(["subject_id", "admittime", "hadm_id"]).reset_index(drop=True)
    cohort["unit"] = np.arange(len(cohort))
    remaining = (cohort["dischtime"] - cohort["cutoff"]).dt.total_seconds() / 86400
    keys = cohort[["unit", "subject_id", "admittime", "cutoff"]]
    n, t = len(cohort), int(np.ceil(PREDICTION_HOURS / BIN_HOURS))

    def first_hours(events: pd.DataFrame) -> pd.DataFrame:
        """The patient's events in [admit, cutoff) of each cohort admission, with their 2 h bin."""
        ev = events.merge(keys, on="subject_id")
        ev = ev[(ev["time"] >= ev["admittime"]) & (ev["time"] < ev["cutoff"])].copy()
        ev["bin"] = ((ev["time"] - ev["admittime"]) // pd.Timedelta(hours=BIN_HOURS)).astype(int)
        return ev

    def top(counts: pd.Series, limit: int) -> list:
        counts = counts[counts >= MIN_COUNT].to_dict()  # most frequent first, ties by name
        return sorted(counts, key=lambda k: (-counts[k], str(k)))[:limit]

    # labs: clip to the 1st-99th percentile, mean per bin, z-score, forward fill, measured mask
    labs = labs.rename(columns={"charttime": "time"}).dropna(subset=["time", "valuenum"])
    lab_ev = first_hours(labs)
    lab_items = top(lab_ev.groupby("itemid")["unit"].nunique(), MAX_LABS)
    lab_ev = lab_ev[lab_ev["itemid"].isin(lab_items)]
    q = lab_ev.groupby("itemid")["valuenum"].quantile([0.01, 0.99]).unstack()
    lab_ev["v"] = lab_ev["valuenum"].clip(lab_ev["itemid"].map(q[0.01]), lab_ev["itemid"].map(q[0.99]))
    mean = lab_ev.groupby("itemid")["v"].mean().reindex(lab_items).to_numpy()
    std = lab_ev.groupby("itemid")["v"].std(ddof=0).reindex(lab_items).replace(0, 1.0).to_numpy()
    binned = lab_ev.groupby(["unit", "bin", "itemid"], as_index=False)["v"].mean()
    col = binned["itemid"].map({item: i for i, item in enumerate(lab_items)}).to_numpy()
    z = np.full((n, t, len(lab_items)), np.nan)
    z[binned["unit"].to_numpy(), binned["bin"].to_numpy(), col] = (binned["v"].to_numpy() - mean[col]) / std[
        col
    ]
    measured = ~np.isnan(z)
    for b in range(1, t):
        z[:, b] = np.where(np.isnan(z[:, b]), z[:, b - 1], z[:, b])
    z = np.nan_to_num(z, nan=0.0)
    _ = lab_names.reindex(lab_items)  # what a user prints next to the features

    # coded events: drugs (NDC else name) at start, procedures at the end of their day, diagnoses at discharge
    ndc = rx["ndc"].str.strip()
    has_ndc = ndc.notna() & (ndc != "") & (ndc != "0")
    rx["key"] = ("NDC//" + ndc).where(has_ndc, "DRUG//" + rx["drug"].str.strip())
    proc["time"] = proc["chartdate"] + pd.Timedelta(hours=23, minutes=59, seconds=59)
    proc["key"] = "ICD" + proc["icd_version"].astype(str) + "PCS//" + proc["icd_code"].str.strip()
    diag = diag.merge(adm[["hadm_id", "dischtime"]], on="hadm_id", how="left")
    diag = diag.rename(columns={"dischtime": "time"})
    diag["key"] = "ICD" + diag["icd_version"].astype(str) + "CM//" + diag["icd_code"].str.strip()
    coded = pd.concat(
        [
            rx.rename(columns={"starttime": "time"})[["subject_id", "time", "key"]],
            proc[["subject_id", "time", "key"]],
            diag[["subject_id", "time", "key"]],
        ]
    )
    code_ev = first_hours(coded.dropna(subset=["time"]))
    code_keys = top(code_ev.groupby("key")["unit"].nunique(), MAX_CODES)
    code_ev = code_ev[code_ev["key"].isin(code_keys)]
    codes = np.zeros((n, t, len(code_keys)))
    codes[
        code_ev["unit"].to_numpy(),
        code_ev["bin"].to_numpy(),
        code_ev["key"].map({k: i for i, k in enumerate(code_keys)}).to_numpy(),
    ] = 1.0

    # history: diagnoses of earlier admissions (discharged before this admission)
    hist = diag.dropna(subset=["time"]).merge(keys, on="subject_id")
    hist = hist[hist["time"] < hist["admittime"]].drop_duplicates(["unit", "key"])
    hist_keys = top(hist.groupby("key")["unit"].nunique(), MAX_HISTORY)
    hist = hist[hist["key"].isin(hist_keys)]

    # static: age, sex, earlier admissions, admission type, history
    types = sorted(cohort["admission_type"].astype(str).unique())
    static = np.zeros((n, 4 + len(types) + len(hist_keys)))
    age = cohort["age"].to_numpy(float)
    known = ~np.isnan(age)
    age_mean = age[known].mean() if known.any() else 0.0
    age_std = (age[known].std() if known.any() else 0.0) or 1.0
    static[:, 0] = np.where(known, (age - age_mean) / age_std, 0.0)
    static[:, 1] = cohort["gender"].eq("F").to_numpy()
    static[:, 2] = cohort["gender"].eq("M").to_numpy()
    static[:, 3] = np.log1p(cohort["n_prior"].to_numpy())
    type_col = cohort["admission_type"].astype(str).map({k: i for i, k in enumerate(types)}).to_numpy()
    static[np.arange(n), 4 + type_col] = 1
    static[
        hist["unit"].to_numpy(),
        4 + len(types) + hist["key"].map({k: i for i, k in enumerate(hist_keys)}).to_numpy(),
    ] = 1
    rel_time = np.broadcast_to((np.arange(t) / max(t - 1, 1))[None, :, None], (n, t, 1))
    x = np.concatenate([z, measured, codes, rel_time, np.repeat(static[:, None], t, axis=1)], axis=2)
    x = x.astype(np.float32)
    targets = np.digitize(remaining.to_numpy(), LOS_BIN_EDGES_DAYS)
    t3 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "phase1_s": t2 - t1,
        "phase2_s": t3 - t2,
        "x": x,
        "ids": [str(h) for h in cohort["hadm_id"]],
        "targets": targets,
    }


def child_main(kind: str, root: str, out: str, save: str | None) -> None:
    result = (run_medlearn if kind == "medlearn" else run_pandas)(Path(root))
    x = result.pop("x")
    ids, targets = result.pop("ids"), result.pop("targets")
    result.update(
        n_units=int(x.shape[0]),
        n_features=int(x.shape[2]) if x.ndim == 3 else 0,
        x_sum=float(x.sum(dtype="float64")),
    )  # buffered: no float64 copy of x (1 GB at 100×)
    if save:
        import numpy as np

        np.savez(save, x=x, ids=np.array(ids), targets=targets)
    result["hwm_bytes"] = _status_kib("self", "VmHWM") * 1024  # this process's own peak RSS
    Path(out).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------------
# The parent: generate, spawn, measure, report
# ----------------------------------------------------------------------------------------------------


def _status_kib(pid: int | str, field: str) -> int:
    """A ``/proc/PID/status`` memory field in KiB (0 when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(kind: str, root: Path, work: Path, save: Path | None, timeout: float, max_rss_gb: float) -> dict:
    """Run one implementation in a fresh process with an empty medlearn cache; wall, peak RSS, phases."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    out = work / f"result-{kind}-{os.getpid()}-{time.monotonic_ns()}.json"
    log = work / f"log-{kind}.txt"
    env = {**os.environ, "MEDLEARN_CACHE": str(cache)}
    cmd = [sys.executable, str(HERE), "_child", kind, str(root), str(out)]
    cmd += ["--save", str(save)] if save else []
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=work)
        killed = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.perf_counter() - t0
            if elapsed > timeout:
                killed = f"killed after {timeout:.0f} s"
            elif _status_kib(proc.pid, "VmRSS") > max_rss_gb * 1024**2:
                killed = f"killed above {max_rss_gb:g} GiB RSS"
            if killed:
                os.kill(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    shutil.rmtree(cache, ignore_errors=True)
    result = {"wall_s": wall, "rss_bytes": usage.ru_maxrss * 1024, "ok": False}
    if killed or proc.returncode != 0 or not out.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        result["error"] = killed or f"exit {proc.returncode}: {' | '.join(tail)}"
        return result
    result.update(json.loads(out.read_text()), ok=True)
    # VmHWM of the child's own address space. wait4's ru_maxrss is no per-run figure: Linux carries the
    # spawning process's RSS high-water mark into the child through fork + exec, so it never reads lower
    # than the parent's peak (kept as a cross-check only)
    result["wait4_maxrss_bytes"], result["rss_bytes"] = result["rss_bytes"], result.pop("hwm_bytes")
    result["data_s"] = result["phase1_s"] + result["phase2_s"]
    out.unlink()
    return result


def median_run(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["ok"]]
    if not ok:
        return runs[0]
    merged = dict(ok[0])
    for key in ("wall_s", "rss_bytes", "import_s", "phase1_s", "phase2_s", "data_s"):
        merged[key] = statistics.median(r[key] for r in ok)
    merged["n_runs"] = len(ok)
    return merged


def compare_outputs(a: Path, b: Path) -> str:
    import numpy as np

    ma, pa = np.load(a), np.load(b)
    if ma["x"].shape != pa["x"].shape:
        return f"DIFFER in shape: medlearn {ma['x'].shape}, pandas {pa['x'].shape}"
    order = {u: i for i, u in enumerate(pa["ids"].tolist())}
    if sorted(order) != sorted(ma["ids"].tolist()):
        return "DIFFER: not the same admissions in the cohort"
    idx = [order[u] for u in ma["ids"].tolist()]
    diff = np.abs(ma["x"] - pa["x"][idx])
    same_targets = bool((ma["targets"] == pa["targets"][idx]).all())
    n_bad = int((diff > 1e-4).sum())
    return (
        f"{'agree' if n_bad == 0 and same_targets else 'DIFFER'}: {ma['x'].shape[0]} units × "
        f"{ma['x'].shape[1]} bins × {ma['x'].shape[2]} features, max |diff| {diff.max():.2e}, "
        f"{n_bad} value(s) off by > 1e-4, targets {'equal' if same_targets else 'DIFFER'}"
    )


def fmt_s(v: float | None) -> str:
    return "—" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def fmt_mib(b: float | None) -> str:
    return "—" if b is None else f"{b / 2**20:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "MISS")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_compare":
        print(compare_outputs(Path(argv[1]), Path(argv[2])))
        return
    if argv and argv[0] == "_child":
        p = argparse.ArgumentParser()
        p.add_argument("kind", choices=["medlearn", "pandas"])
        p.add_argument("root")
        p.add_argument("out")
        p.add_argument("--save")
        a = p.parse_args(argv[1:])
        child_main(a.kind, a.root, a.out, a.save)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100], help="multiples of the demo size")
    p.add_argument(
        "--keep", type=Path, help="write the generated tables here and keep them (reused when already there)"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="cold processes per implementation and scale (the median is reported)",
    )
    p.add_argument(
        "--demo-repeats",
        type=int,
        default=3,
        help="medlearn cold processes on the real MIMIC-IV demo (0: skip)",
    )
    p.add_argument("--no-pandas", action="store_true", help="skip the pandas runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is killed")
    p.add_argument("--max-rss-gb", type=float, default=14.0, help="GiB of RSS above which a run is killed")
    args = p.parse_args(argv)

    started = time.perf_counter()
    shared = Path(os.environ.get("MEDLEARN_DATA", REPO.parent / "shared" / "data")).resolve()
    demo = shared / "ehr" / "mimic-iv-demo"
    if not (demo / "hosp" / "admissions.csv.gz").is_file():
        print(f"MIMIC-IV demo not found at {demo}: set MEDLEARN_DATA")
        return
    keep = args.keep.resolve() if args.keep else None
    if keep is not None and (keep.is_relative_to(shared) or keep.is_relative_to(REPO)):
        print(f"--keep {keep}: refusing to write generated data inside the repository or the shared data")
        return
    work = Path(tempfile.mkdtemp(prefix="medlearn-ehr-scale-"))
    data_parent = keep or work / "data"
    print(
        f"medlearn EHR scale benchmark · python {sys.version.split()[0]} · {os.cpu_count()} CPUs · "
        f"work dir {work}"
    )
    rows: dict[int, dict] = {}
    check_note = None
    try:
        for scale in sorted(set(args.scales)):
            root = data_parent / f"mimic4-x{scale}-seed{args.seed}"
            marker = root / "generated.json"
            t0 = time.perf_counter()
            if marker.is_file():
                counts, gen = json.loads(marker.read_text()), f"reused from {root}"
            else:
                shutil.rmtree(root, ignore_errors=True)
                # in its own process, like every measured step: this parent stays small (see measure())
                gen_cmd = [
                    sys.executable,
                    str(HERE.parent / "_synthetic_mimic4.py"),
                    str(demo),
                    str(root),
                    str(scale),
                    str(args.seed),
                ]
                made = subprocess.run(gen_cmd, check=True, capture_output=True, text=True)
                counts = json.loads(made.stdout)
                marker.write_text(json.dumps(counts))
                gen = f"generated in {time.perf_counter() - t0:.1f} s"
            size = sum(f.stat().st_size for f in (root / "hosp").iterdir())
            print(
                f"\n{scale}×: {counts['patients']:,} patients, {counts['admissions']:,} admissions, "
                f"{counts['labevents']:,} lab rows, {counts['prescriptions']:,} prescriptions "
                f"({size / 2**20:,.0f} MiB gz; {gen})",
                flush=True,
            )
            save = scale == min(args.scales)
            row = {"scale": scale, "counts": counts}
            for kind in ["medlearn"] + ([] if args.no_pandas else ["pandas"]):
                runs = []
                for i in range(args.repeats):
                    npz = work / f"{kind}-x{scale}.npz" if save and i == 0 else None
                    runs.append(measure(kind, root, work, npz, args.timeout, args.max_rss_gb))
                    r = runs[-1]
                    print(
                        f"  {kind:8s} run {i + 1}: "
                        + (
                            f"wall {r['wall_s']:.2f} s (import {r['import_s']:.2f} + data {r['data_s']:.2f}: "
                            f"{'load' if kind == 'medlearn' else 'read_csv'} {r['phase1_s']:.2f}, "
                            f"{'features' if kind == 'medlearn' else 'the rest'} {r['phase2_s']:.2f}), "
                            f"peak RSS {fmt_mib(r['rss_bytes'])} MiB, {r['n_units']:,} units × "
                            f"{r['n_features']} features"
                            if r["ok"]
                            else f"FAILED ({r['error']})"
                        ),
                        flush=True,
                    )
                row[kind] = median_run(runs)
            if save and not args.no_pandas and all(row[k]["ok"] for k in ("medlearn", "pandas")):
                cmp_cmd = [
                    sys.executable,
                    str(HERE),
                    "_compare",
                    str(work / f"medlearn-x{scale}.npz"),
                    str(work / f"pandas-x{scale}.npz"),
                ]
                compared = subprocess.run(cmp_cmd, capture_output=True, text=True)
                check_note = f"{scale}×: " + (compared.stdout.strip() or compared.stderr.strip()[-300:])
                print(f"  outputs {check_note}", flush=True)
            rows[scale] = row
        demo_runs = [
            measure("medlearn", demo, work, None, args.timeout, args.max_rss_gb)
            for _ in range(args.demo_repeats)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(rows, demo_runs, check_note, args, time.perf_counter() - started)


def report(rows: dict[int, dict], demo_runs: list[dict], check_note: str | None, args, total: float) -> None:
    def get(scale: int, kind: str, key: str) -> float | None:
        r = rows.get(scale, {}).get(kind)
        return r[key] if r and r.get("ok") else None

    kinds = ["medlearn"] + ([] if args.no_pandas else ["pandas"])
    print("\n" + "=" * 112)
    print(
        "Load + 24 h features of every admission (LOS task), fresh process, cold medlearn cache; "
        "wall includes start-up and imports"
    )
    head = f"{'scale':>5} {'admissions':>10} {'lab rows':>11} │"
    for kind in kinds:
        head += f" {kind + ' wall s':>15} {'data s':>7} {'peak MiB':>9} │"
    if len(kinds) == 2:
        head += f" {'pandas/medlearn time':>20} {'RSS':>6}"
    print(head)
    for scale, row in rows.items():
        line = f"{scale:>4}× {row['counts']['admissions']:>10,} {row['counts']['labevents']:>11,} │"
        for kind in kinds:
            r = row[kind]
            if r.get("ok"):
                line += f" {fmt_s(r['wall_s']):>15} {fmt_s(r['data_s']):>7} {fmt_mib(r['rss_bytes']):>9} │"
            else:
                line += f" {'FAILED':>15} {'':>7} {'':>9} │"
        if len(kinds) == 2:
            line += (
                f" {ratio(get(scale, 'pandas', 'wall_s'), get(scale, 'medlearn', 'wall_s')):>20} "
                f"{ratio(get(scale, 'pandas', 'rss_bytes'), get(scale, 'medlearn', 'rss_bytes')):>6}"
            )
        print(line)
    if len(kinds) == 2:
        print(
            "(time ratio on wall; data-step ratio: "
            + ", ".join(
                f"{s}× {ratio(get(s, 'pandas', 'data_s'), get(s, 'medlearn', 'data_s'))}" for s in rows
            )
            + ")"
        )
    if check_note:
        print(f"Same work check (arrays of both implementations, aligned by admission): {check_note}")

    scales = list(rows)
    steps = list(zip(scales, scales[1:]))
    slopes: list[float] = []
    if steps:
        print("\nScaling factor (time at the larger scale / time at the smaller; linear = the size ratio)")
        for kind in kinds:
            parts = []
            for a, b in steps:
                wa, wb = get(a, kind, "wall_s"), get(b, kind, "wall_s")
                da, db = get(a, kind, "data_s"), get(b, kind, "data_s")
                ra, rb = get(a, kind, "rss_bytes"), get(b, kind, "rss_bytes")
                parts.append(f"{b}×/{a}×: wall {ratio(wb, wa)}, data {ratio(db, da)}, RSS {ratio(rb, ra)}")
                if kind == "medlearn" and da and db:
                    import math

                    slopes.append(math.log(db / da) / math.log(b / a))
            print(f"  {kind:8s} " + " · ".join(parts))

    print("\nGoals (issue 4)")
    big = max(scales) if scales else None
    w100, r100 = get(100, "medlearn", "wall_s"), get(100, "medlearn", "rss_bytes")
    ok_time = None if w100 is None else w100 < GOAL_100X_SECONDS
    ok_rss = None if r100 is None else r100 < GOAL_100X_BYTES
    print(
        f"  [{verdict(ok_time)}] 100× (27.5k admissions, 10.8 M lab rows) in < 2 min: "
        f"medlearn {fmt_s(w100)} s wall"
    )
    print(
        f"  [{verdict(ok_rss)}] 100× under 4 GB peak RSS: medlearn {fmt_mib(r100)} MiB "
        f"({'—' if r100 is None else f'{r100 / 1e9:.2f} GB'})"
    )
    if slopes:
        last = f"{steps[-1][1]}×/{steps[-1][0]}×"
        print(
            f"  [{verdict(slopes[-1] <= GOAL_SLOPE)}] near-linear scaling: data-step time ∝ size^"
            f"{slopes[-1]:.2f} over {last} (goal exponent ≤ {GOAL_SLOPE:.2f}; all steps: "
            + ", ".join(f"{s:.2f}" for s in slopes)
            + ")"
        )
    else:
        print("  [n/a ] near-linear scaling: needs two scales")
    if big is not None and big != 100:
        print(f"  (largest scale run: {big}×; the 100× goals need --scales ... 100)")

    print(
        "\nPyHealth reference, measured elsewhere (not re-measured here): PyHealth 2.1.0 patched to run on "
        "Python 3.11,\n  same machine kind, MIMIC-IV demo LOS samples: "
        f"{PYHEALTH['wall_s']} s wall (median, cold process), {PYHEALTH['rss_mib']:.0f} MiB peak; "
        f"in the process load {PYHEALTH['load_s']} s + task {PYHEALTH['task_s']} s "
        f"= {PYHEALTH_DATA_S:.1f} s; "
        f"import alone ≈ {PYHEALTH['import_s']:.0f} s"
    )
    demo = median_run(demo_runs) if demo_runs else None
    if demo and demo.get("ok"):
        print(
            f"  medlearn, real MIMIC-IV demo (hosp + icu), median of {demo['n_runs']} cold process(es): "
            f"wall {demo['wall_s']:.2f} s, peak {fmt_mib(demo['rss_bytes'])} MiB, "
            f"import {demo['import_s']:.2f} s, data step {demo['data_s']:.2f} s "
            f"(load {demo['phase1_s']:.2f} + features {demo['phase2_s']:.2f}), {demo['n_units']} units"
        )
        goals = [
            (
                demo["wall_s"] <= PYHEALTH["wall_s"] / 5,
                f"end to end ≥ 5× faster: {PYHEALTH['wall_s'] / demo['wall_s']:.1f}× "
                f"({demo['wall_s']:.2f} s vs {PYHEALTH['wall_s']} s; goal ≤ {PYHEALTH['wall_s'] / 5:.2f} s)",
            ),
            (
                demo["rss_bytes"] / 2**20 <= PYHEALTH["rss_mib"] / 2,
                f"peak memory ≤ 1/2: {demo['rss_bytes'] / 2**20 / PYHEALTH['rss_mib']:.2f} of PyHealth's "
                f"({fmt_mib(demo['rss_bytes'])} vs {PYHEALTH['rss_mib']:.0f} MiB; "
                f"goal ≤ {PYHEALTH['rss_mib'] / 2:.0f} MiB)",
            ),
            (
                demo["data_s"] <= PYHEALTH_DATA_S / 10,
                f"data step after imports ≥ 10× faster: {PYHEALTH_DATA_S / demo['data_s']:.1f}× "
                f"({demo['data_s']:.2f} s incl. features vs {PYHEALTH_DATA_S:.1f} s; "
                f"goal ≤ {PYHEALTH_DATA_S / 10:.2f} s; load alone {demo['phase1_s']:.2f} s = "
                f"{PYHEALTH_DATA_S / demo['phase1_s']:.1f}×)",
            ),
        ]
        for ok, text in goals:
            print(f"  [{verdict(ok)}] {text}")
    elif demo_runs:
        print(f"  medlearn on the real demo FAILED: {demo_runs[0].get('error')}")
    n_timed = len(rows) * args.repeats * len(kinds)
    print(
        f"\nWhole benchmark: {total:.0f} s (generation + {n_timed} timed run(s) + "
        f"{len(demo_runs)} demo run(s))"
    )


if __name__ == "__main__":
    main()
