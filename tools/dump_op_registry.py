"""Regenerate the op-registry profiles of the TF Serving releases layertap knows.

A TF Serving release is built on one TensorFlow (the commit in its WORKSPACE); the ops and op attributes
that TensorFlow registers are what a SavedModel may use to load there. For each TensorFlow in
`layertap.config.servers.SERVER_RELEASES` this script installs the matching `tensorflow-cpu` wheel from
PyPI in a throwaway virtual environment, asks it for every registered op through the C API
(`TF_GetAllOpList()`, the serialized `OpList`), and writes the compact profile
src/layertap/config/op_registries/tensorflow-<version>.json.gz (ops, attrs, attr types, defaults, allowed
values, minimums, GraphDef versions). The venv is deleted afterwards; pip's cache keeps the shared
dependencies.

Usage:
  python tools/dump_op_registry.py                 # every TensorFlow without a profile yet
  python tools/dump_op_registry.py 2.16.1 2.17.0   # these TensorFlow versions (re-dumped)
  python tools/dump_op_registry.py --current       # the TensorFlow installed in this interpreter, no venv
  python tools/dump_op_registry.py --tf-text       # the ops of the TF Text releases the servers link
Options: --workdir DIR (where the throwaway venvs go; default a temporary directory), --keep (keep them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from layertap.config import opregistry, servers  # noqa: E402

# Runs inside the throwaway venv: write the serialized OpList of every registered op to the file argv[1],
# and print the GraphDef versions this TensorFlow produces and accepts.
_DUMP = """
import sys
import tensorflow as tf
from tensorflow.python.client import pywrap_tf_session
buffer = pywrap_tf_session.TF_GetAllOpList()
with open(sys.argv[1], "wb") as out:
    out.write(pywrap_tf_session.TF_GetBuffer(buffer))
print(tf.version.GRAPH_DEF_VERSION, tf.version.GRAPH_DEF_VERSION_MIN_CONSUMER)
"""


def dump_current() -> None:
    """Write the profile of the TensorFlow this interpreter imports."""
    profile = opregistry.live_profile()
    path = opregistry.write_profile(profile)
    print(f"{path}: {len(profile.ops)} ops from tensorflow {profile.tensorflow}")


def dump_in_venv(tensorflow: str, workdir: Path, *, keep: bool) -> None:
    """Install tensorflow-cpu==`tensorflow` in a fresh venv under `workdir` and write its profile."""
    venv = workdir / f"tf-{tensorflow}"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    try:
        subprocess.run(
            ["nice", "-n", "10", python, "-m", "pip", "install", "--quiet", f"tensorflow-cpu=={tensorflow}"],
            check=True,
        )
        raw = venv / "oplist.pb"
        graph_versions = subprocess.run(
            [python, "-c", _DUMP, str(raw)],
            check=True,
            capture_output=True,
            text=True,
            env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        ).stdout.split()
        installed = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('tensorflow-cpu'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        profile = opregistry.profile_from_oplist(
            raw.read_bytes(),
            tensorflow=installed,
            source=f"tensorflow-cpu=={installed} from PyPI, TF_GetAllOpList()",
            graph_def_version=int(graph_versions[-2]),
            min_consumer=int(graph_versions[-1]),
        )
        path = opregistry.write_profile(profile)
        print(f"{path}: {len(profile.ops)} ops from tensorflow-cpu {installed}")
    finally:
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)


# Runs inside the throwaway venv: the OpList before and after loading every op library of tensorflow_text
# (tf.load_op_library, as a model server links them; importing the Python package would need its optional
# dependencies), to argv[1].{0,1}.
_DUMP_TEXT = """
import glob, importlib.util, os, sys
import tensorflow as tf
from tensorflow.python.client import pywrap_tf_session as c
before = c.TF_GetBuffer(c.TF_GetAllOpList())
root = os.path.dirname(importlib.util.find_spec("tensorflow_text").origin)
for library in sorted(glob.glob(os.path.join(root, "**", "*.so"), recursive=True)):
    tf.load_op_library(library)
after = c.TF_GetBuffer(c.TF_GetAllOpList())
open(sys.argv[1] + ".0", "wb").write(before)
open(sys.argv[1] + ".1", "wb").write(after)
"""


def dump_text_in_venv(tf_text: str, workdir: Path, *, keep: bool) -> None:
    """Write the profile of the ops TF Text `tf_text` adds, loaded into its own TensorFlow release.

    tensorflow-text X.Y.Z is built against TensorFlow X.Y, whose tensorflow-cpu wheel it is paired with
    (installed without its `tensorflow` dependency, which is the same TensorFlow with GPU support).
    """
    venv = workdir / f"tf-text-{tf_text}"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = ["nice", "-n", "10", python, "-m", "pip", "install", "--quiet"]
    try:
        subprocess.run([*pip, f"tensorflow-cpu=={tf_text}"], check=True)
        subprocess.run([*pip, "--no-deps", f"tensorflow-text=={tf_text}"], check=True)
        raw = venv / "oplist.pb"
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
        subprocess.run([python, "-c", _DUMP_TEXT, str(raw)], check=True, env=env)
        source = f"tensorflow-text=={tf_text} (with tensorflow-cpu=={tf_text}) from PyPI, TF_GetAllOpList()"
        before, after = (
            opregistry.profile_from_oplist(
                Path(f"{raw}.{n}").read_bytes(),
                tensorflow=tf_text,
                source=source,
                graph_def_version=0,
                min_consumer=0,
            )
            for n in (0, 1)
        )
        added = {op: attrs for op, attrs in after.ops.items() if op not in before.ops}
        profile = opregistry.Profile(tf_text, source, 0, 0, added)
        path = opregistry.write_profile(profile, kind=opregistry.TF_TEXT, version=tf_text)
        print(f"{path}: {len(added)} TF Text ops from tensorflow-text {tf_text}")
    finally:
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("versions", nargs="*", help="TensorFlow versions to dump (default: the missing ones)")
    parser.add_argument("--current", action="store_true", help="dump the TensorFlow of this interpreter")
    parser.add_argument("--workdir", type=Path, help="directory for the throwaway venvs")
    parser.add_argument("--keep", action="store_true", help="keep the venvs")
    parser.add_argument(
        "--tf-text",
        action="store_true",
        help="dump the TF Text releases the servers link (VERSIONS: TF Text)",
    )
    args = parser.parse_args(argv)
    if args.current:
        dump_current()
        return 0
    if args.tf_text:
        linked = {release.tf_text for release in servers.SERVER_RELEASES.values() if release.tf_text}
        with tempfile.TemporaryDirectory(prefix="layertap-opregistry-") as scratch:
            for tf_text in args.versions or sorted(linked, key=servers.version_key):
                dump_text_in_venv(tf_text, args.workdir or Path(scratch), keep=args.keep)
        return 0
    wanted = args.versions or sorted(
        {release.tensorflow for release in servers.SERVER_RELEASES.values()}
        - set(opregistry.available_profiles()),
        key=servers.version_key,
    )
    with tempfile.TemporaryDirectory(prefix="layertap-opregistry-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        for tensorflow in wanted:
            dump_in_venv(tensorflow, workdir, keep=args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
