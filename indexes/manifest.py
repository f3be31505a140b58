"""An index's manifest: what it holds (format version, parts and their parameters, every file's size and
SHA-256), and the checks that refuse an index that is missing, broken or not what it claims, naming the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FORMAT_VERSION = 3  # 3: the BM25 part is bm25s' files; 2: BM25 tokens are NFKC-normalized and case-folded
READABLE_VERSIONS = (2, 3)  # 2's BM25 weights (bm25_weights.npz) are 3's numbers; 1 tokenized otherwise
MANIFEST = "manifest.json"
DOCS = "docs.jsonl"
TOKENIZER = "passage_tokenizer.json"  # the tokenizer passages are measured in, for the documents added later


class IndexStoreError(RuntimeError):
    """An index directory is missing, broken or does not match what is asked of it.

    ``str(e)`` names the path; `detail` is the same message without it, for a client that must not see the
    server's paths.
    """

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail or message




def sha256_file(path: Path) -> str:
    """The hex SHA-256 of the file at `path`, read 1 MiB at a time (index files can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rebuild_hint(path: Path) -> str:
    """The command that rebuilds the index at `path`, for the errors about a missing, broken or outdated index."""
    return f"rebuild it with: earlyrank index CORPUS_DIR --out {path}"


def read_manifest(path: str | Path) -> tuple[Path, dict]:
    """Resolve an index path and read its manifest, or raise a clear error naming the file at fault."""
    path = Path(path)
    if not path.exists():
        raise IndexStoreError(f"{path}: no index here; {rebuild_hint(path)}")
    root = path.resolve()
    if not root.is_dir():
        what = f"a link to the file {root}" if path.is_symlink() else "a file"
        raise IndexStoreError(f"{path}: not an index directory ({what}); {rebuild_hint(path)}")
    manifest_path = root / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except FileNotFoundError:
        raise IndexStoreError(f"{manifest_path}: missing; {rebuild_hint(path)}") from None
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, or nested past the parser's stack
        reason = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
        raise IndexStoreError(f"{manifest_path}: unreadable ({reason}); {rebuild_hint(path)}") from None
    except OSError as e:
        raise IndexStoreError(f"{manifest_path}: cannot be read ({e.strerror}); {rebuild_hint(path)}") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version not in READABLE_VERSIONS:
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise IndexStoreError(f"{manifest_path}: format version {version!r}, this earlyrank "
                              f"reads {readable}; {rebuild_hint(path)}")
    problem = manifest_problem(manifest)
    if problem:
        raise IndexStoreError(f"{manifest_path}: {problem}; {rebuild_hint(path)}")
    return root, manifest


def manifest_problem(manifest: dict) -> str | None:
    """What is wrong with the shape of a manifest (the fields loading reads), or None if nothing is."""
    for key in ("files", "parts", "fusion"):
        if not isinstance(manifest.get(key), dict):
            return f"{key!r} is missing or not an object"
    for name, entry in manifest["files"].items():
        if not name or Path(name).name != name or name in (".", ".."):
            return f"files: {name!r} is not a file name inside the index"
        if not (isinstance(entry, dict) and type(entry.get("bytes")) is int and isinstance(entry.get("sha256"), str)):
            return f"files[{name!r}] needs an integer 'bytes' and a string 'sha256'"
    if DOCS not in manifest["files"]:
        return f"files has no {DOCS!r}"
    for part, entry in manifest["parts"].items():
        if part not in ("bm25", "dense"):
            return f"parts: unknown part {part!r}"
        if not (isinstance(entry, dict) and isinstance(entry.get("params"), dict)):
            return f"parts[{part!r}] needs a 'params' object"
    model = manifest["parts"].get("dense", {}).get("model")
    if "dense" in manifest["parts"] and not (isinstance(model, dict) and isinstance(model.get("sha256"), str)):
        return "parts['dense'] needs a 'model' object with a string 'sha256'"
    return passages_problem(manifest)


def passages_problem(manifest: dict) -> str | None:
    """What is wrong with the manifest's "passages" (how documents are split; absent: kept whole), or None."""
    if "passages" not in manifest:
        return None
    entry = manifest["passages"]
    if not (isinstance(entry, dict) and isinstance(entry.get("params"), dict)
            and isinstance(entry.get("tokenizer"), dict)):
        return "'passages' needs a 'params' and a 'tokenizer' object"
    if TOKENIZER not in manifest["files"]:
        return f"'passages' is set but files has no {TOKENIZER!r}"
    return None


def verify_files(path: Path, root: Path, manifest: dict) -> None:
    """Every file the manifest lists must exist with its recorded size and checksum."""
    for name, expected in manifest["files"].items():
        file = root / name
        if not file.is_file():
            raise IndexStoreError(f"{file}: missing from the index; {rebuild_hint(path)}")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise IndexStoreError(f"{file}: {size} bytes, manifest says {expected['bytes']} (truncated or "
                              f"changed); {rebuild_hint(path)}")
        if sha256_file(file) != expected["sha256"]:
            raise IndexStoreError(f"{file}: checksum does not match the manifest; {rebuild_hint(path)}")
