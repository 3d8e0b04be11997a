"""Handed-out checkpoints: pack the models a run used into one archive, load it on another machine.

An instructor runs the series once with ``$LAB_CHECKPOINT_LOG`` set (``make checkpoints``):
:func:`~labutils.training.get_or_train` appends every checkpoint it returns to that file
(:func:`log_checkpoint`), and :func:`pack_checkpoints` writes them into one uncompressed ``.tar``
(gzip saves ~8 % on a FastNet checkpoint) with a ``manifest.json``: per file its name, cache key,
meta, size in bytes, SHA-256 and accuracy.  A student runs :func:`load_checkpoints`
(``make checkpoints-load FILE=...``): every member is checked before anything is placed, then the
files go into the checkpoint cache and are listed in ``<checkpoints>/handed_out.json``, where
``get_or_train`` finds them, also for a student whose device trains in the other precision
(:func:`find_handed_out`).

    python -m labutils.training.archive pack --profile smoke --log used.txt --out checkpoints-smoke.tar
    python -m labutils.training.archive load checkpoints-smoke.tar
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pickle
import re
import sys
import tarfile
import time
import warnings
import zlib
from pathlib import Path

import torch

from .. import __version__, settings
from ..data import CACHE_VERSION
from ..files import atomic_write, atomic_write_text, error_summary
from .checkpoints import FORMAT, CheckpointCorruptError, checkpoint_dir, jsonable, run_key
from .checkpoints import load as load_checkpoint

__all__ = ["ArchiveError", "pack_checkpoints", "load_checkpoints", "log_checkpoint", "handed_out_index",
           "is_handed_out", "find_handed_out", "checkpoint_accuracy", "ARCHIVE_FORMAT"]

ARCHIVE_FORMAT = 1  # of the archive's layout and manifest
MANIFEST = "manifest.json"
INDEX = "handed_out.json"
_NAME = re.compile(r"^[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*-([0-9a-f]{12})\.pt$")  # <model>-<dataset>-<key>.pt
_ACCURACY_KEYS = ("test_acc", "check_clean_acc")  # held-out accuracy in fit's history, best first
_FIX = "Download the archive again (or ask for a new one)."


class ArchiveError(RuntimeError):
    """A checkpoint archive is corrupt, mismatched or cannot be made; the message says how to fix it."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_checkpoint(path: Path) -> None:
    """Append ``path`` (absolute) to ``$LAB_CHECKPOINT_LOG`` when it is set; else do nothing."""
    log = settings.checkpoint_log()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{Path(path).resolve()}\n")


def handed_out_index(folder: Path | None = None) -> dict:
    """``{file name: manifest entry}`` of the handed-out checkpoints in ``folder`` (the checkpoint cache)."""
    path = Path(folder or checkpoint_dir()) / INDEX
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError:  # written atomically, so only by hand: the checkpoints are still there, just not listed
        warnings.warn(f"Ignoring {path}: it is not JSON. Load the archive again to list its checkpoints.",
                      stacklevel=2)
        return {}


def is_handed_out(path: Path, entry: dict | None) -> bool:
    """Whether the file at ``path`` is, byte for byte, the one its ``handed_out.json`` ``entry`` lists
    (a file retrained locally after loading is not).  Reads the file once (SHA-256)."""
    if not entry or not path.exists():
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == entry.get("sha256")


def find_handed_out(meta: dict, path: Path) -> tuple[Path, dict] | None:
    """The handed-out checkpoint that serves a request, as ``(file, its manifest entry)``, or None.

    ``path``: the file :func:`~labutils.training.get_or_train` asked for, whose ``meta`` it holds.
    That file when it is there and is byte for byte the one handed out; else, when it is missing,
    a handed-out file whose meta equals ``meta`` except for ``precision`` (an fp32 model serves a
    bf16 request and vice versa).  A file trained locally is never used across precisions.
    """
    index = handed_out_index(path.parent)
    if path.exists():
        entry = index.get(path.name)
        return (path, entry) if is_handed_out(path, entry) else None
    wanted = {k: v for k, v in jsonable(meta).items() if k != "precision"}
    for name, entry in index.items():
        other = path.with_name(name)
        if {k: v for k, v in entry["meta"].items() if k != "precision"} == wanted and is_handed_out(other, entry):
            return other, entry
    return None


def _accuracy(history) -> tuple[float | None, str | None]:
    """The last epoch's held-out accuracy (fraction in [0, 1]) in ``fit``'s history, and its key."""
    last = history[-1] if isinstance(history, list) and history else {}
    key = next((k for k in _ACCURACY_KEYS if isinstance(last.get(k), (int, float))), None)
    return (float(last[key]), key) if key else (None, None)


def checkpoint_accuracy(path: Path, n: int = 2000) -> float | None:
    """Top-1 accuracy in [0, 1] of the classifier stored at ``path`` on the first ``n`` test images of
    its training dataset, on the CPU in fp32; None for a model that does not output class logits
    (the autoencoder)."""
    from ..data import load
    from .checkpoints import load_model
    from .inference import predict_logits

    meta = load_checkpoint(path)["meta"]
    images, labels = load(meta["dataset"], "test")
    model = load_model(path)
    logits = predict_logits(model, images[:n], device="cpu")
    if logits.ndim != 2 or logits.shape[0] != len(labels[:n]):
        return None
    return float((logits.argmax(1) == labels[:n]).float().mean())


def pack_checkpoints(paths, archive_path, *, profile: str, accuracy: dict | None = None,
                     evaluate: bool = False) -> Path:
    """Write the checkpoints at ``paths`` and a manifest into the ``.tar`` at ``archive_path`` (atomically).

    Args:
        paths: checkpoint files written by :func:`~labutils.training.get_or_train` (duplicates dropped).
        profile: the run profile that used them (recorded in the manifest).
        accuracy: optional ``{file name: accuracy in [0, 1]}``, overriding the accuracy read from a
            file's history (the last epoch's ``test_acc``, else ``check_clean_acc``, else None).
        evaluate: measure each classifier's accuracy on 2000 test images instead (:func:`checkpoint_accuracy`;
            seconds per model on a CPU); what ``make checkpoints`` does.

    Raises:
        ArchiveError: no paths, a file that is missing or unreadable, not named by its meta's key,
            or two files with one name.
    """
    paths = list(dict.fromkeys(Path(p).resolve() for p in paths))
    if not paths:
        raise ArchiveError("No checkpoints to pack: run the series with LAB_CHECKPOINT_LOG set (make checkpoints).")
    if len({p.name for p in paths}) < len(paths):
        raise ArchiveError(f"Two checkpoints share a file name: {sorted(p.name for p in paths)}.")
    entries, blobs = [], []
    for path in paths:
        try:
            data = path.read_bytes()
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            meta = jsonable(ckpt["meta"])
        except Exception as exc:  # missing, unreadable or not a checkpoint: nothing to hand out
            raise ArchiveError(f"Cannot pack {path}: {error_summary(exc)}") from exc
        match = _NAME.match(path.name)
        if match is None or match.group(1) != run_key(meta):
            raise ArchiveError(f"{path} is not named by its meta's key ({run_key(meta)}): not a get_or_train file.")
        acc, source = _accuracy(ckpt.get("history"))
        if evaluate:
            acc, source = checkpoint_accuracy(path), "test set, first 2000 images"
        if accuracy and path.name in accuracy:
            acc, source = float(accuracy[path.name]), "given"
        entries.append({"name": path.name, "key": match.group(1), "meta": meta, "size": len(data),
                        "sha256": _sha256(data), "accuracy": acc, "accuracy_from": source})
        blobs.append(data)
    created = time.time()
    manifest = {"archive_format": ARCHIVE_FORMAT, "labutils": __version__, "torch": torch.__version__,
                "profile": profile, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                "data_version": CACHE_VERSION, "files": entries}

    def write(tmp):
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode())] + \
                              [(e["name"], b) for e, b in zip(entries, blobs)]:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), int(created), 0o644
                tar.addfile(info, io.BytesIO(data))

    return atomic_write(archive_path, write)


def _manifest(tar: tarfile.TarFile, archive: Path) -> tuple[dict, dict]:
    """The manifest and ``{name: member}`` of the checkpoint files, after checking names and versions."""
    members = {}
    for m in tar.getmembers():
        if not m.isfile() or m.name in members or (m.name != MANIFEST and not _NAME.match(m.name)):
            raise ArchiveError(f"{archive} holds an unexpected member {m.name!r} (a folder, a link, a path or a "
                               f"duplicate): refusing it. {_FIX}")
        members[m.name] = m
    if MANIFEST not in members:
        raise ArchiveError(f"{archive} has no {MANIFEST}: not a checkpoint archive. {_FIX}")
    try:
        manifest = json.loads(tar.extractfile(members.pop(MANIFEST)).read())
        if manifest.get("archive_format") != ARCHIVE_FORMAT:
            raise ArchiveError(f"{archive} has archive format {manifest.get('archive_format')}; this labutils "
                               f"({__version__}) reads format {ARCHIVE_FORMAT}: update labutils or ask for an "
                               "archive made with this version.")
        entries = {e["name"]: e for e in manifest["files"]}
        if len(entries) < len(manifest["files"]) or not all(
                isinstance(e["meta"], dict) and isinstance(e["size"], int) and isinstance(e["sha256"], str)
                for e in entries.values()):
            raise ValueError("file entries duplicated or incomplete")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArchiveError(f"{archive}: its {MANIFEST} cannot be read ({error_summary(exc)}). {_FIX}") from exc
    if set(entries) != set(members):
        raise ArchiveError(f"{archive}: its members {sorted(members)} are not the files of its manifest "
                           f"{sorted(entries)}. {_FIX}")
    for name, e in entries.items():
        meta = e["meta"]
        if meta.get("data_version") != CACHE_VERSION:
            raise ArchiveError(f"{archive}: {name} was made for data version {meta.get('data_version')}, this "
                               f"labutils uses data version {CACHE_VERSION}: ask for an archive made with this "
                               "version (or train the models: run the notebooks).")
        if meta.get("format") != FORMAT:
            raise ArchiveError(f"{archive}: {name} has checkpoint format {meta.get('format')}, this labutils "
                               f"writes format {FORMAT}: ask for an archive made with this version.")
        if not name.endswith(f"-{run_key(meta)}.pt"):
            raise ArchiveError(f"{archive}: {name} is not named by its meta's key {run_key(meta)}. {_FIX}")
    return manifest, members


def load_checkpoints(archive_path, *, into=None) -> list[Path]:
    """Verify the archive at ``archive_path`` and place its checkpoints in the cache; return their paths.

    Nothing is placed unless every member is a plain file named like a checkpoint, listed in the
    manifest, of the recorded size and SHA-256, a readable checkpoint holding the recorded meta, and
    made for this labutils' data version and checkpoint format.  Each file is then renamed into
    ``into`` (default: :func:`~labutils.training.checkpoints.checkpoint_dir`), replacing a file of the
    same name, and recorded in ``handed_out.json`` there.

    Raises:
        ArchiveError: naming the file, what was expected and found, and the fix.
    """
    archive = Path(archive_path)
    if not archive.is_file():
        raise ArchiveError(f"{archive.resolve()} does not exist: give the path of the downloaded archive "
                           "(a relative path starts from the working directory, the notebooks' folder in a notebook).")
    into = Path(into) if into is not None else checkpoint_dir()
    into.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            manifest, members = _manifest(tar, archive)
            for e in manifest["files"]:
                staged[e["name"]] = _stage(tar, members[e["name"]], e, into, archive)
        index = handed_out_index(into)
        try:  # everything checked: place the files and list each one placed, even if a later rename fails
            for e in manifest["files"]:
                os.replace(staged.pop(e["name"]), into / e["name"])
                index[e["name"]] = {**e, "archive": archive.name, "profile": manifest.get("profile")}
        finally:
            atomic_write_text(json.dumps(index, indent=1, sort_keys=True), into / INDEX)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"{archive} is not a readable tar archive ({error_summary(exc)}). {_FIX}") from exc
    finally:
        for tmp in staged.values():  # left over only when something failed
            tmp.unlink(missing_ok=True)
    return [into / e["name"] for e in manifest["files"]]


def _stage(tar: tarfile.TarFile, member: tarfile.TarInfo, entry: dict, into: Path, archive: Path) -> Path:
    """Copy ``member`` to a hidden temporary file in ``into`` and check it against its manifest ``entry``."""
    name = entry["name"]
    tmp = into / f".{name}.{os.getpid()}.tmp"
    digest = hashlib.sha256()
    try:
        with tar.extractfile(member) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
        found, size = digest.hexdigest(), tmp.stat().st_size
        if (found, size) != (entry["sha256"], entry["size"]):
            raise ArchiveError(f"{archive}: {name} is corrupt: expected SHA-256 {entry['sha256']} ({entry['size']} "
                               f"bytes), found {found} ({size} bytes). {_FIX}")
        try:
            meta = jsonable(load_checkpoint(tmp)["meta"])
        except (CheckpointCorruptError, pickle.UnpicklingError) as exc:
            raise ArchiveError(f"{archive}: {name} cannot be read as a checkpoint. {_FIX}") from exc
        if meta != entry["meta"]:
            raise ArchiveError(f"{archive}: {name} holds another meta than its manifest entry. {_FIX}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack", help="pack the checkpoints listed in a LAB_CHECKPOINT_LOG file")
    pack.add_argument("--profile", required=True, help="the profile of the run that used them")
    pack.add_argument("--log", type=Path, required=True, help="file with one checkpoint path a line")
    pack.add_argument("--out", type=Path, required=True, help="the archive to write (.tar)")
    pack.add_argument("--no-evaluate", action="store_true",
                      help="take accuracies from the training histories instead of 2000 test images")
    load = sub.add_parser("load", help="verify an archive and place its checkpoints in the cache")
    load.add_argument("file", type=Path)
    load.add_argument("--into", type=Path, default=None, help="folder (default: <data dir>/checkpoints)")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            if not args.log.exists():
                raise ArchiveError(f"{args.log} does not exist: run the series with LAB_CHECKPOINT_LOG={args.log}.")
            paths = {line.strip(): None for line in args.log.read_text(encoding="utf-8").splitlines() if line.strip()}
            out = pack_checkpoints(paths, args.out, profile=args.profile, evaluate=not args.no_evaluate)
            print(f"packed {len(paths)} checkpoint(s) into {out} ({out.stat().st_size / 1e6:.1f} MB)")
        else:
            placed = load_checkpoints(args.file, into=args.into)
            print(f"loaded {len(placed)} handed-out checkpoint(s) into {placed[0].parent if placed else args.into}")
    except (ArchiveError, OSError) as exc:  # OSError: a data directory that cannot be written, a full disk
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
