"""Every option of every command, driven with hostile values (issue 14): exit code 2 with one ``error:``
line naming the problem, or 0 where the value is legitimately fine — never a traceback.

In-process (typer's CliRunner: one torch import for the whole suite). Each command has a base command line
that works; each case replaces one option (or argument) with a hostile value from an explicit list per
option. ``test_each_hostile_value`` runs every case once; ``test_hostile_combinations`` lets hypothesis
combine up to three hostile values of one command (derandomized, a fixed number of examples).

Values are tokens resolved per test: ``{MISSING}`` a path that does not exist, ``{DIR}`` a directory where a
file is expected, ``{BIN}`` random bytes, ``{UNDERFILE}`` a path under a regular file, ``{UNWRITABLE}`` a
read-only directory (not for root, who writes anywhere: those cases are left out), ``{NEW}`` a fresh output
path, ``{E}``/``{G}``/``{S}`` the EHR, generator and ECG bundles.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import invoke

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# -- hostile values per kind of option ------------------------------------------------------------------

INTS = ["0", "-1", "99999999999999999999", "nan", "1.5", "", "abc"]
FLOATS = ["0", "-1", "nan", "inf", "-inf", "1e999", "", "abc"]
TEXT = ["", "\x00\x01\xfe\xff", "x" * 5000]
DEVICES = ["", "cuda", "gpu", "CPU", "\x00"]
THREADS = ["0", "-1", "99999999999999999999", "100000", "abc", ""]
#: inputs (a file or folder to read)
READ = ["{MISSING}", "{DIR}", "{EMPTYDIR}", "{BIN}", "{EMPTY}", "{BINNAMED}", ""]
#: output folders
OUT_DIR = ["{UNDERFILE}", "{BIN}", "{DIR}", "{UNWRITABLE}/out"]
#: output files
OUT_FILE = ["{UNDERFILE}", "{BIN}", "{DIR}", "{UNWRITABLE}/out.csv", ""]
SETS = [
    "",
    "=",
    "train.epochs",
    "train.epochs=0",
    "train.epochs=nan",
    "train.epochs=1e99",
    "train.epochs=-1",
    "train.lr=.nan",
    "train.lr=-1",
    "train.batch_size=0",
    "train.bogus=1",
    "train=3",
    "train.epochs.deeper=1",
    "model.name=nope",
    "model.params.width=-3",
    "model.params=3",
    "model.params={a: 1, a: 2}",
    "data.root=",
    "data.root=/no/such/folder",
    "data.split.val_fraction=2",
    "data.options.bogus=1",
    "eval.n_bootstrap=-1",
    "task=nope",
    "train.epochs=[",
    "train.epochs=" + "[" * 3000,
    "\x00\x01\xfe\xff=1",
]
CONFIGS = [
    "",
    "{MISSING}.yaml",
    "{DIR}",
    "{BIN}",
    "{BINYAML}",
    "{DUPYAML}",
    "{EMPTYYAML}",
    "{LISTYAML}",
    "{DEEPYAML}",
]


@dataclass(frozen=True)
class Command:
    """A working command line (``args``) and the hostile values of each of its options; ``ARG<i>`` is the
    i-th positional argument."""

    name: str
    args: tuple[str, ...]
    hostile: dict[str, list[str]]


COMMANDS = [
    Command(
        "train",
        (
            "train",
            "ehr_los_mimic4_linear",
            "--data",
            "{M}",
            "--out",
            "{NEW}",
            "--set",
            "train.epochs=1",
            "--threads",
            "1",
            "--quiet",
        ),
        {
            "ARG1": CONFIGS,
            "--set": SETS,
            "--data": READ,
            "--out": OUT_DIR,
            "--resume": [*READ, "{M}", "{E}"],
            "--track": ["", "bogus", "MLFLOW"],
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(  # refused before any round: the base line itself runs in tests/federated
        "federate",
        (
            "federate",
            "ehr_los_mimic4_linear",
            "--data",
            "{M}",
            "--out",
            "{NEW}",
            "--set",
            "federated.rounds=1",
            "--threads",
            "1",
            "--quiet",
        ),
        {
            "ARG1": CONFIGS,
            "--set": [
                *[s for s in SETS if not s.startswith("data.root")],
                "federated.strategy=fedsgd",
                "federated.rounds=0",
                "federated.rounds=nan",
                "federated.hospitals.count=1",
                "federated.hospitals.count=100000",
                "federated.hospitals.alpha=-1",
                "federated.hospitals.source=regions",
                "federated.round_timeout_seconds=inf",
                "federated.min_hospitals=0",
                "federated=3",
            ],
            "--data": READ,
            "--out": OUT_DIR,
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(
        "evaluate",
        ("evaluate", "{E}", "--out", "{NEW}", "--threads", "1", "--quiet"),
        {
            "ARG1": [*READ, "{G}", "{BADJSON}", "{LISTJSON}"],
            "--data": READ,
            "--split": ["", "holdout", "TEST", "\x00"],
            "--require-signature": [*READ, "{KEY}", "{BINPEM}"],
            "--out": OUT_DIR,
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(
        "predict",
        ("predict", "{S}", "{R}", "--json", "--quiet"),
        {
            "ARG1": [*READ, "{BADJSON}", "{LISTJSON}"],
            "ARG2": READ,
            "--out": OUT_DIR,
            "--annotations": READ,
            "--reader": TEXT,
            "--nodule": ["", "1,2", "nan,nan,nan", "inf,0,0", "a,b,c", "1,2,3,4"],
            "--diameter": FLOATS,
            "--series": TEXT,
            "--fs": FLOATS,
            "--runtime": ["", "tensorflow", "ONNX", "\x00"],
            "--require-signature": [*READ, "{KEY}", "{BINPEM}"],
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(  # an ECG bundle and record, no checks (fast); every hostile value must be one line, exit 2
        "explain",
        ("explain", "{S}", "{R}", "--out", "{NEW}", "--no-checks", "--quiet"),
        {
            "ARG1": [*READ, "{BADJSON}", "{LISTJSON}"],
            "ARG2": READ,
            "--method": ["", "gradcam", "lime", "\x00"],
            "--target": ["", "nope", "99", "-1", "\x00"],
            "--out": OUT_DIR,
            "--shuffled-bundle": [*READ, "{E}", "{BADJSON}"],
            "--annotations": READ,
            "--reader": TEXT,
            "--nodule": ["", "1,2", "nan,nan,nan", "a,b,c"],
            "--diameter": FLOATS,
            "--series": TEXT,
            "--fs": FLOATS,
            "--require-signature": [*READ, "{KEY}", "{BINPEM}"],
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(
        "info",
        ("info", "{E}"),
        {
            "ARG1": [*READ, "{BADJSON}", "{LISTJSON}"],
            "--require-signature": [*READ, "{KEY}", "{BINPEM}"],
        },
    ),
    Command(
        "monitor",
        ("monitor", "--record", "{STREAM}", "--speed", "0", "--alarms", "{NEW}.jsonl", "--quiet"),
        {
            "+ARG1": [*READ, "{E}", "{G}"],
            "--record": READ,
            "--fs": FLOATS,
            "--speed": FLOATS,
            "--alarms": OUT_FILE,
            "--lead": ["-1", "1", "99999999999999999999", "nan", ""],
        },
    ),
    Command(
        "demo",
        ("demo", "ehr", "--out", "{NEW}", "--threads", "1", "--quiet"),
        {
            "ARG1": ["", "bogus", "EHR", "\x00"],
            "--out": OUT_DIR,
            "--patients": [*INTS, "7", "1000000"],
            "--epochs": [*INTS, "1000000"],
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(
        "mol-metrics",
        (
            "mol-metrics",
            "{SMI}",
            "--out",
            "{NEW}.json",
            "--train",
            "{SMI}",
            "--test",
            "{SMI}",
            "--test-scaffolds",
            "{SMI}",
            "--n-jobs",
            "1",
            "--quiet",
        ),
        {
            "ARG1": [*READ, "{BINCSV}", "{EMPTYCSV}"],
            "--out": OUT_FILE,
            "--train": [*READ, "{BINCSV}", "{EMPTYCSV}"],
            "--test": [*READ, "{BINCSV}", "{EMPTYCSV}"],
            "--test-scaffolds": [*READ, "{BINCSV}", "{EMPTYCSV}"],
            "--n-jobs": [*INTS, "100000"],
        },
    ),
    Command(
        "generate",
        ("generate", "{G}", "--out", "{NEW}.csv", "-n", "5", "--threads", "1", "--quiet"),
        {
            "ARG1": [*READ, "{E}", "{BADJSON}"],
            "--out": OUT_FILE,
            "-n": [*INTS, "1000000000000"],
            "--seed": ["-1", "99999999999999999999", "nan", "abc", ""],
            "--temperature": [*FLOATS, "0.001", "1e-300"],
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(
        "optimize",
        (
            "optimize",
            "{G}",
            "--out",
            "{NEW}",
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--top-k",
            "2",
            "--threads",
            "1",
            "--quiet",
        ),
        {
            "ARG1": [*READ, "{E}", "{BADJSON}"],
            "--out": OUT_DIR,
            "--logp": ["", "1", "3,1", "nan,1", "-inf,inf", "a,b", "1,2,3", "1,1"],
            "--max-sa": FLOATS,
            "--steps": [*INTS, "1000000000000"],
            "--batch-size": [*INTS, "1", "1000000000000"],
            "--sigma": FLOATS,
            "--seed": ["99999999999999999999", "nan", "abc", ""],
            "--top-k": [*INTS, "1000000000000"],
            "--threads": THREADS,
        },
    ),
    Command(
        "export",
        ("export", "{E}", "--out", "{NEW}.onnx", "--quiet"),
        {
            "ARG1": [*READ, "{G}", "{BADJSON}"],
            "--format": ["", "ONNX", "tflite", "\x00"],
            "--out": OUT_FILE,
            "--example": READ,
            "--data": READ,
        },
    ),
    Command("keygen", ("keygen", "--out", "{NEW}", "--quiet"), {"--out": OUT_DIR}),
    Command(
        "sign",
        ("sign", "{ECOPY}", "--key", "{KEY}", "--quiet"),
        {"ARG1": [*READ, "{BADJSON}"], "--key": [*READ, "{PUB}", "{BINPEM}"]},
    ),
    Command(
        "serve",
        ("serve", "{E}", "--port", "8000"),
        {
            "ARG1": [*READ, "{BADJSON}", "{LISTJSON}"],
            "--host": ["", "\x00", "999.999.999.999"],
            "--port": ["-1", "65536", "99999999999999999999", "nan", ""],
            "--api-key-file": [*READ, "{BINYAML}", "{DUPYAML}", "{LISTYAML}"],
            "--max-request-mb": FLOATS,
            "--rate-limit": ["", "abc", "0/min", "-1/s", "nan/min", "inf/s", "1/fortnight", "1e999/s"],
            "--audit-log": OUT_FILE,
            "--cors-origin": ["\x00"],
            "--ssl-certfile": READ,
            "--ssl-keyfile": READ,
            "--runtime": ["", "onnx", "tensorflow"],
            "--require-signature": [*READ, "{KEY}", "{BINPEM}"],
            "--device": DEVICES,
            "--threads": THREADS,
            "--workers": ["0", "-1", "99999999999999999999", "100000", "abc", ""],
            "--log-level": ["", "loud", "\x00"],
        },
    ),
    Command(  # the EHR bundle is refused before the PACS is reached (tests/imaging/test_pacs.py has one)
        "pacs",
        ("pacs", "{E}", "--url", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3", "--quiet"),
        {
            "ARG1": [*READ, "{G}", "{BADJSON}"],
            "--url": ["", "ftp://pacs", "http://", "http://[::1", "\x00", "x" * 5000],
            "--study": TEXT,
            "--annotations": READ,
            "--nodule": ["", "1,2", "nan,nan,nan", "a,b,c"],
            "--diameter": FLOATS,
            "--series": TEXT,
            "--out": OUT_DIR,
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(  # refused at the EHR bundle or before; the listener never starts (no_server)
        "pacs-listen",
        ("pacs-listen", "{E}", "--url", "http://127.0.0.1:9/dicom-web", "--port", "11112", "--quiet"),
        {
            "ARG1": [*READ, "{G}", "{BADJSON}"],
            "--url": ["", "ftp://pacs", "\x00"],
            "--port": ["0", "-1", "65536", "99999999999999999999", "nan", ""],
            "--host": ["", "\x00"],
            "--aet": ["", "x" * 17, "\x00"],
            "--settle": FLOATS,
            "--device": DEVICES,
            "--threads": THREADS,
        },
    ),
    Command(
        "deid",
        ("deid", "{SMI}", "--out", "{NEW}.csv", "--key-file", "{DEIDKEY}", "--quiet"),
        {
            # not "": typer turns it into ".", a folder deid may legitimately read
            "ARG1": [v for v in READ if v] + ["{BINCSV}", "{EMPTYCSV}"],
            "--out": OUT_FILE,
            "--key-file": [*READ, "{BINCSV}"],
        },
    ),
    Command(
        "serve-key",
        ("serve-key", "--id", "client-1"),
        {
            "--id": TEXT,
            "--model": TEXT,
            "--rate-limit": ["", "abc", "0/min", "-1/s", "nan/min", "inf/s", "1/fortnight"],
        },
    ),
]

#: Hostile-looking values a command legitimately accepts (exit 0): the option's meaning makes them fine.
FINE = {
    ("train", "--set", "data.root="): None,  # --data, given too, takes precedence over data.root
    ("train", "--set", "data.root=/no/such/folder"): None,
    ("monitor", "--speed", "0"): None,  # as fast as possible
    ("keygen", "--out", "{DIR}"): None,  # an existing folder without keys takes them
    ("serve", "--rate-limit", ""): None,  # no limit
    ("serve", "--audit-log", "{BIN}"): None,  # append-only: a line is appended to an existing file
    ("serve-key", "--id", "\x00\x01\xfe\xff"): None,  # printed JSON-escaped
    ("serve-key", "--id", "x" * 5000): None,
    ("serve-key", "--model", "\x00\x01\xfe\xff"): None,
    ("serve-key", "--model", "x" * 5000): None,
    ("monitor", "+ARG1", "{G}"): None,
    ("optimize", "--logp", "1,1"): None,  # a one-point window: the reward decays with the distance to it
    ("generate", "--seed", "-1"): None,  # any integer seeds
    ("serve", "--cors-origin", "\x00"): None,
    ("serve", "--host", "999.999.999.999"): None,  # uvicorn's to resolve (not run here)
    ("serve-key", "--rate-limit", ""): None,  # no limit
    ("predict", "--series", "x" * 5000): None,
}
#: Flags (no value), with no hostile value to give.
FLAGS = {
    "--quiet",
    "--force",
    "--json",
    "--allow-external",
    "--qed",
    "--no-pains",
    "--int8",
    "--stdin",
    "--explain",
    "--skip-burned-in",
    "--checks",
}


def cases() -> list[tuple[str, str, str]]:
    return [
        (c.name, option, value) for c in COMMANDS for option, values in c.hostile.items() for value in values
    ]


def case_id(case: tuple[str, str, str]) -> str:
    command, option, value = case
    shown = value if len(value) < 30 else value[:12] + f"…({len(value)})"
    return f"{command} {option}={shown!r}"


# -- the hostile files ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory, finished_run, generator_bundle, signals_run, mimic) -> dict[str, str]:
    """Token → path for the command lines."""
    import shutil

    from medlearn.engine.integrity import generate_keypair

    root = tmp_path_factory.mktemp("hostile")
    rng = random.Random(0)
    junk = bytes(rng.randrange(256) for _ in range(512))

    def write(name: str, data: bytes | str) -> str:
        path = root / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(path)

    full = root / "full"
    full.mkdir()
    (full / "junk.bin").write_bytes(junk)
    (root / "empty_dir").mkdir()
    bad_json, list_json = root / "bad_json", root / "list_json"
    for folder, text in ((bad_json, junk), (list_json, b"[1, 2, 3]")):
        folder.mkdir()
        (folder / "bundle.json").write_bytes(text)
    keys = root / "keys"
    private, public = generate_keypair(keys)
    tokens = {
        "{MISSING}": str(root / "no_such_file"),
        "{DIR}": str(full),
        "{EMPTYDIR}": str(root / "empty_dir"),
        "{BIN}": write("junk.bin", junk),
        "{BINNAMED}": write("junk.hea", junk),
        "{EMPTY}": write("empty.txt", b""),
        "{UNDERFILE}": str(root / "junk.bin" / "below"),
        "{BINYAML}": write("junk.yaml", junk),
        "{DUPYAML}": write("dup.yaml", "task: ehr_los\ntask: ehr_los\n"),
        "{EMPTYYAML}": write("empty.yaml", ""),
        "{LISTYAML}": write("list.yaml", "- 1\n- 2\n"),
        "{DEEPYAML}": write("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n"),
        "{BINCSV}": write("junk.csv", junk),
        "{EMPTYCSV}": write("empty.csv", ""),
        "{BINPEM}": write("junk.pem", junk),
        "{BADJSON}": str(bad_json),
        "{LISTJSON}": str(list_json),
        "{DEIDKEY}": write("deid.key", "00112233445566778899aabbccddeeff" * 2),
        "{SMI}": write("few.csv", "SMILES\nCCO\nc1ccccc1\nCC(=O)Oc1ccccc1C(=O)O\nCCN\nCCCC\n"),
        "{KEY}": str(private),
        "{PUB}": str(public),
        "{E}": str(finished_run / "bundle"),
        "{ECOPY}": str(shutil.copytree(finished_run / "bundle", root / "ehr_bundle_copy")),
        "{G}": str(generator_bundle),
        "{S}": str(signals_run / "bundle"),
        "{R}": str(signals_run / "data" / "S00000.hea"),
        "{STREAM}": str(signals_run / "data" / "stream"),
        "{M}": str(mimic),
        "{ROOT}": str(root),
    }
    if os.geteuid() != 0:  # root writes anywhere: no unwritable folder to offer
        locked = root / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        tokens["{UNWRITABLE}"] = str(locked)
    return tokens


_fresh = itertools.count()


def command_line(env: dict[str, str], command: Command, changes: dict[str, str]) -> list[str] | None:
    """The command's base line with ``changes`` (option → value) applied, tokens resolved; None when a
    value needs a token this machine does not offer ({UNWRITABLE} as root)."""
    args = list(command.args)
    for option, value in sorted(changes.items(), key=lambda ov: ov[0].startswith("+")):
        if option.startswith("+ARG"):  # an optional argument the base line leaves out
            args.insert(int(option[4:]), value)
        elif option.startswith("ARG"):
            args[int(option[3:])] = value
        elif option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    resolved = []
    for arg in args:
        if "{UNWRITABLE}" in arg and "{UNWRITABLE}" not in env:
            return None
        arg = arg.replace("{NEW}", str(Path(env["{ROOT}"]) / f"new{next(_fresh)}"))
        for token, path in env.items():
            arg = arg.replace(token, path)
        resolved.append(arg)
    return resolved


def check(result, case: str, fine: bool) -> None:
    """Exit 2 with one error line (0 allowed where the value is fine); never a traceback."""
    assert "Traceback" not in result.output, f"{case}: {result.output}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"{case}: {type(result.exception).__name__}: {result.exception}"
        ) from result.exception
    expected = {0, 2} if fine else {2}
    assert result.exit_code in expected, f"{case}: exit {result.exit_code}: {result.output[-2000:]}"
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and lines[-1] == errors[0], f"{case}: {result.stderr}"


@pytest.fixture
def no_server(monkeypatch):
    """``serve`` and ``pacs-listen`` check their options, load their bundles and would then listen: here
    uvicorn.run and StudyListener.serve_forever return at once."""
    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    try:
        from medlearn.imaging.listener import StudyListener
    except ImportError:
        return
    monkeypatch.setattr(StudyListener, "serve_forever", lambda self: None)


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_each_hostile_value(case, env, no_server):
    command_name, option, value = case
    command = next(c for c in COMMANDS if c.name == command_name)
    args = command_line(env, command, {option: value})
    if args is None:
        pytest.skip("no unwritable folder for root")
    check(invoke(*args), case_id(case), fine=case in FINE)


def test_the_base_command_lines_work(env, no_server):
    """The hostile cases only mean something if the line they change works."""
    for command in COMMANDS:
        if command.name in ("demo", "train", "federate", "pacs", "pacs-listen"):
            continue  # train runs in test_runs.py, federate in tests/federated, the demos in their own tests,
            # pacs needs a PACS
        result = invoke(*command_line(env, command, {}))
        assert result.exit_code == 0, (command.name, result.output)


def test_every_option_of_every_command_has_hostile_values():
    """A new command or option gets its hostile values here (or is a flag)."""
    import click
    import typer

    from medlearn.cli import app

    group = typer.main.get_command(app)
    known = {c.name: c for c in COMMANDS}
    missing = []
    for name, cmd in group.commands.items():
        if name not in known:
            missing.append(name)
            continue
        positional = 0
        for param in cmd.params:
            if isinstance(param, click.Argument):
                positional += 1
                if not {f"ARG{positional}", f"+ARG{positional}"} & set(known[name].hostile):
                    missing.append(f"{name} {param.name.upper()} (ARG{positional})")
            elif (
                not param.is_flag and param.opts[0] not in known[name].hostile and not set(param.opts) & FLAGS
            ):
                missing.append(f"{name} {param.opts[0]}")
    assert not missing, f"no hostile values for: {', '.join(missing)}"


#: per command, the hostile values that must be refused (FINE ones left out: they would run the command)
COMBINABLE = {
    c.name: [(o, v) for o, vs in c.hostile.items() for v in vs if (c.name, o, v) not in FINE]
    for c in COMMANDS
}


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_combinations(data, env, no_server):
    """Two or three hostile values at once: still one line and exit 2."""
    name = data.draw(st.sampled_from(sorted(COMBINABLE)), label="command")
    picked = data.draw(
        st.lists(st.sampled_from(COMBINABLE[name]), min_size=2, max_size=3, unique_by=lambda ov: ov[0]),
        label="options",
    )
    command = next(c for c in COMMANDS if c.name == name)
    args = command_line(env, command, dict(picked))
    if args is None:
        return
    check(invoke(*args), f"{name} {picked}", fine=False)
