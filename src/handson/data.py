"""Real datasets, offline first, with one clear error when none can be found.

Every loader tries, in order:

1. a **local verified copy** in the data folder (SHA-256 checked against the
   folder's ``SHA256SUMS``);
2. an earlier **download in the cache** folder, used only if its SHA-256 matches
   :data:`KNOWN_SHA256` (a damaged one is an error that names the file to delete);
3. the **real online source** that readers use (torchvision, Hugging Face
   ``datasets``, the authors' own download) -- skipped when offline. Files this module
   downloads itself (Tiny Shakespeare, the MR archive) are checked against
   :data:`KNOWN_SHA256` *before* they are used or kept in the cache; torchvision and
   ``datasets`` downloads rely on those libraries' own verification (torchvision checks
   the CIFAR-10 archive's MD5);
4. otherwise it raises :class:`DataNotFoundError` saying what was tried and how
   to fix it.  It never makes up data.

It prints which source it used, and :data:`SOURCES` remembers it for the
provenance cell.

The data folder is ``$HANDSON_DATA`` if set, else ``../shared/data`` next to the
repository (or next to the local checkout it was cloned from), else a user cache
folder (``$HANDSON_CACHE`` or ``~/.cache/handson``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

#: repository root when the package is installed in editable mode from a clone
REPO_ROOT = Path(__file__).resolve().parents[2]

#: dataset name -> where it came from (filled in by the loaders)
SOURCES: dict[str, str] = {}

TINY_SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/"
                        "data/tinyshakespeare/input.txt")
MR_URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
SST2_LABELS = ["negative", "positive"]
MR_LABELS = ["negative", "positive"]


class DataNotFoundError(FileNotFoundError):
    """No local copy and no reachable online source."""


class ChecksumMismatchError(RuntimeError):
    """A local, cached or downloaded file does not match its known SHA-256."""


#: SHA-256 of the data the loaders fetch online (the same files as in the book's data
#: folder, whose SHA256SUMS lists them): a download or cached copy must match before use.
#: For the MR archive the check is on its two extracted files, decoded from Windows-1252
#: and encoded as UTF-8 exactly as the data folder stores them.
KNOWN_SHA256 = {
    "tinyshakespeare/input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    "rt-polarity/rt-polarity.pos": "4134882974a28d0c7b5151256f0e33a6169984ee7372c279e673f1114f475d58",
    "rt-polarity/rt-polarity.neg": "2d11cfbc790f1cd96d78339f41ce53ced1efa83cd22d37d6788fa3fe3d17e2fd",
}


# --------------------------------------------------------------------------- folders

_TRUTHY = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True when the Hugging Face / handson offline switches are set."""
    names = ("HANDSON_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(n, "").strip().lower() in _TRUTHY for n in names)


def cache_dir() -> Path:
    """Where online downloads go: ``$HANDSON_CACHE`` or ``~/.cache/handson``."""
    path = Path(os.environ.get("HANDSON_CACHE") or Path.home() / ".cache" / "handson")
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The folder holding the shipped datasets (see the module docstring)."""
    env = os.environ.get("HANDSON_DATA")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(
                f"HANDSON_DATA={env!r} is not a folder. Point it at the book's data folder "
                f"(the one with SHA256SUMS), or unset it to use ../shared/data or the cache.")
        return path
    for root in (REPO_ROOT, _local_origin()):
        if root is not None and (root.parent / "shared" / "data").is_dir():
            return root.parent / "shared" / "data"
    return cache_dir()


def _local_origin() -> Path | None:
    """For a clone of a local checkout (``git clone /path/to/book x``), that checkout's path."""
    config = REPO_ROOT / ".git" / "config"
    if not config.is_file():
        return None
    in_origin = False
    for line in config.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            in_origin = line == '[remote "origin"]'
        elif in_origin and line.startswith("url"):
            url = line.split("=", 1)[1].strip().removeprefix("file://")
            path = Path(url)
            return path if path.is_absolute() and path.is_dir() else None
    return None


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_sums(folder: Path) -> dict[str, str]:
    """``SHA256SUMS`` as ``{relative path: hex digest}`` (the ``sha256sum`` format).

    Paths may start with ``./`` or carry the binary marker ``*``; a line that is not
    ``<64 hex digits>  <path>`` is an error naming the file and the line.
    """
    sums_file = folder / "SHA256SUMS"
    if not sums_file.is_file():
        return {}
    sums = {}
    for number, line in enumerate(sums_file.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ChecksumMismatchError(
                f"{sums_file}, line {number}: {line.strip()[:80]!r} is not a checksum line; "
                f"expected '<64 hex digits>  <path>' as `sha256sum` writes it. Fix or remove "
                f"that line (or re-copy the data folder).")
        name = parts[1].strip().lstrip("*")
        while name.startswith("./"):
            name = name[2:]
        sums[name] = digest
    return sums


_VERIFIED: dict[tuple[str, float, int], str] = {}


def local_file(relpath: str, folder: Path | None = None) -> Path | None:
    """Path of a verified local copy of ``relpath``, or ``None`` if there is none.

    Raises :class:`ChecksumMismatchError` if the file exists but its SHA-256
    differs from (or is missing in) the folder's ``SHA256SUMS``.
    """
    folder = Path(folder) if folder is not None else data_dir()
    path = folder / relpath
    if not path.is_file():
        return None
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    sums = _read_sums(folder)
    expected = sums.get(relpath)
    if expected is None:
        raise ChecksumMismatchError(
            f"{path} exists but {folder / 'SHA256SUMS'} has no checksum for {relpath!r}, so it "
            f"cannot be verified. Restore the data folder's SHA256SUMS or remove the file.")
    actual = _VERIFIED.get(key) or sha256(path)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path} is corrupt or modified: SHA-256 {actual[:16]}... but SHA256SUMS says "
            f"{expected[:16]}... Re-copy the data folder (check with `sha256sum -c SHA256SUMS` "
            f"inside it), or delete the file so the online source is used.")
    _VERIFIED[key] = actual
    return path


def _load(name: str, local: Callable[[], object | None], online: Callable[[], object],
          local_what: str, online_what: str, cached: Callable[[], tuple | None] | None = None):
    """Try ``local()``, then ``cached()`` (a verified earlier download: ``(value, file name)``
    or None), then ``online()``; print and record the source; else one clear error.

    A :class:`ChecksumMismatchError` (damaged file) is raised as is: its message names the
    file to delete, which is the fix, not going online.
    """
    result = local()
    if result is not None:
        source = f"local copy {local_what}"
        _record(name, source)
        return result
    tried = [f"local copy: {local_what} (not found in {data_dir()})"]
    if cached is not None:
        hit = cached()
        if hit is not None:
            value, filename = hit
            _record(name, f"cached download {filename} of {online_what} (SHA-256 verified)")
            return value
        tried.append(f"cached download: none in {cache_dir()}")
    if is_offline():
        tried.append(f"online: {online_what} (skipped: offline mode is on)")
    else:
        try:
            result = online()
            _record(name, f"online {online_what}")
            return result
        except ChecksumMismatchError:
            raise
        except Exception as exc:  # network errors come in many types
            tried.append(f"online: {online_what} ({type(exc).__name__}: {exc})")
    raise DataNotFoundError(
        f"Could not load {name}. Tried:\n  - " + "\n  - ".join(tried) +
        "\nFix: set HANDSON_DATA to the book's data folder (it holds SHA256SUMS), "
        "or connect to the internet and unset HF_HUB_OFFLINE/HF_DATASETS_OFFLINE/HANDSON_OFFLINE.")


def _record(name: str, source: str) -> None:
    SOURCES[name] = source
    print(f"[handson.data] {name}: {source}")


# --------------------------------------------------------------------------- downloads

def _damaged_cache(path: Path, why: str) -> ChecksumMismatchError:
    return ChecksumMismatchError(
        f"The cached download {path} is damaged ({why}; an interrupted or truncated download?). "
        f"It was not used. Delete it so that the next call downloads it again: rm '{path}'")


def _check_digest(path: Path, key: str) -> str | None:
    """None if ``path`` has the known SHA-256 of ``key``, else a short description of the mismatch."""
    actual, expected = sha256(path), KNOWN_SHA256[key]
    if actual == expected:
        return None
    return (f"SHA-256 {actual[:16]}... but {key} is {expected[:16]}..., "
            f"{path.stat().st_size:,} bytes")


def _cached_file(filename: str, key: str) -> Path | None:
    """The cache's ``filename`` if present and verified against ``KNOWN_SHA256[key]``."""
    path = cache_dir() / filename
    if not path.is_file():
        return None
    problem = _check_digest(path, key)
    if problem:
        raise _damaged_cache(path, problem)
    return path


def _download(url: str, filename: str, check: Callable[[Path], str | None]) -> Path:
    """Download ``url`` into the cache as ``filename``, keeping it only if ``check(tmp)`` is None."""
    target = cache_dir() / filename
    partial = target.with_name(target.name + ".part")
    try:
        urllib.request.urlretrieve(url, partial)
        problem = check(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if problem:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"The download of {url} does not match the book's copy ({problem}), so it was neither "
            f"used nor kept. Try again later (an interrupted download?), or set HANDSON_DATA to "
            f"the book's data folder.")
    os.replace(partial, target)
    return target


# --------------------------------------------------------------------------- splits

def split_indices(n_or_labels, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                  stratify: bool | None = None) -> tuple[np.ndarray, ...]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into parts of the given fractions.

    Pass the labels instead of ``n`` to stratify (every part keeps the class
    proportions); ``stratify`` defaults to True exactly when labels are given.
    Parts are disjoint, cover every index, and are sorted within each part.
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) < 2 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be >= 2 non-negative numbers summing to 1, got {fractions}")
    if isinstance(n_or_labels, (int, np.integer)):
        n, labels = int(n_or_labels), None
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
    else:
        labels = np.asarray(n_or_labels)
        if labels.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
        n = len(labels)
    if stratify is None:
        stratify = labels is not None
    if stratify and labels is None:
        raise ValueError("stratify=True needs the labels, not just n")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratify else [np.arange(n)]
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for group in groups:
        group = rng.permutation(group)
        cuts = np.round(np.cumsum(fractions) * len(group)).astype(int)
        start = 0
        for i, stop in enumerate(cuts):
            parts[i].append(group[start:stop])
            start = stop
    return tuple(np.sort(np.concatenate(p)) for p in parts)


# --------------------------------------------------------------------------- images

@dataclass
class ImageDataset(torch.utils.data.Dataset):
    """Images held in memory as ``uint8`` ``(N, C, H, W)`` plus integer labels.

    ``dataset[i]`` returns ``(image, label)`` where image is ``transform(uint8 tensor)``
    if a transform is given, else a float tensor in ``[0, 1]``.
    """
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    transform: Callable | None = None
    source: str = ""
    _checked: bool = field(default=False, repr=False)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise ValueError(f"labels must be 1-D with one label per image: "
                             f"{tuple(self.labels.shape)} vs {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx):
        image = self.images[idx]
        image = self.transform(image) if self.transform else image.float() / 255
        return image, int(self.labels[idx])

    def subset(self, indices, transform: Callable | None | str = "same") -> "ImageDataset":
        """A new dataset with the chosen rows (optionally another transform)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageDataset(self.images[idx], self.labels[idx], self.classes,
                            self.transform if transform == "same" else transform, self.source)


_CIFAR_NPZ = "cifar10/cifar10-jpeg.npz"


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray, indices: np.ndarray) -> np.ndarray:
    from PIL import Image
    out = np.empty((len(indices), 32, 32, 3), dtype=np.uint8)
    for row, i in enumerate(indices):
        raw = blob[offsets[i]:offsets[i + 1]].tobytes()
        out[row] = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    return out


def _pick_rows(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """All rows, or a seeded class-balanced sample of ``limit`` rows (sorted)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    if limit <= 0:
        raise ValueError(f"limit must be positive or None, got {limit}")
    frac = limit / len(labels)
    chosen, rest = split_indices(labels, (frac, 1 - frac), seed=seed)
    # per-class rounding can miss the total by a few rows: trim or top up at random
    rng = np.random.default_rng(seed)
    if len(chosen) > limit:
        chosen = rng.choice(chosen, limit, replace=False)
    elif len(chosen) < limit:
        chosen = np.concatenate([chosen, rng.choice(rest, limit - len(chosen), replace=False)])
    return np.sort(chosen)


def load_cifar10(split: str = "train", limit: int | None = None, seed: int = 0,
                 transform: Callable | None = None) -> ImageDataset:
    """CIFAR-10 ``train`` (50,000) or ``test`` (10,000) images as an :class:`ImageDataset`.

    ``limit`` keeps a seeded, class-balanced sample (decoding only those images).
    Offline the shipped copy is used -- a JPEG re-encoding (quality 75) of
    CIFAR-10, ~30 dB PSNR from the canonical pixels; online readers get the
    canonical set through ``torchvision.datasets.CIFAR10(download=True)``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    def local():
        path = local_file(_CIFAR_NPZ)
        if path is None:
            return None
        with np.load(path) as npz:
            labels = npz[f"{split}_labels"].astype(np.int64)
            rows = _pick_rows(labels, limit, seed)
            images = _decode_jpegs(npz[f"{split}_jpeg"], npz[f"{split}_offsets"], rows)
            classes = [str(c) for c in npz["classes"]]
        return images, labels[rows], classes, "JPEG re-encoding (q75) of CIFAR-10"

    def online():
        from torchvision.datasets import CIFAR10
        ds = CIFAR10(root=str(cache_dir() / "torchvision"), train=(split == "train"), download=True)
        labels = np.asarray(ds.targets, dtype=np.int64)
        rows = _pick_rows(labels, limit, seed)
        return ds.data[rows], labels[rows], list(ds.classes), "canonical CIFAR-10 (torchvision)"

    images, labels, classes, kind = _load(
        "CIFAR-10", local, online, f"{_CIFAR_NPZ} (JPEG re-encoding of CIFAR-10, not canonical pixels)",
        "torchvision.datasets.CIFAR10(download=True), archive MD5 checked by torchvision")
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageDataset(tensor, torch.from_numpy(labels), classes, transform, kind)


# --------------------------------------------------------------------------- text

class Table:
    """A small column table with the part of ``datasets.Dataset``'s interface this book uses.

    Where the ``datasets`` library is not installed (e.g. a bare GPU image), :func:`load_sst2`
    returns one of these; :func:`handson.text.text_loaders`, ``tokenize_dataset``,
    ``sort_by_length`` and ``make_loader`` work on it unchanged: ``len``, ``column_names``,
    ``table["col"]`` (a list), ``table[i]`` (a row dict), ``select(indices)``,
    ``map(fn, batched=True, remove_columns=...)`` and ``rename_column``.
    """

    def __init__(self, columns: dict[str, list]):
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"all columns need the same length, got "
                             f"{ {k: len(v) for k, v in columns.items()} }")
        self._columns = {k: list(v) for k, v in columns.items()}
        self._n = lengths.pop() if lengths else 0

    @property
    def column_names(self) -> list[str]:
        return list(self._columns)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._columns[key]
        if isinstance(key, (int, np.integer)):
            return {k: v[int(key)] for k, v in self._columns.items()}
        raise TypeError(f"index a Table by a column name or a row number, got {key!r}")

    def __iter__(self):
        return (self[i] for i in range(self._n))

    def select(self, indices) -> "Table":
        idx = [int(i) for i in (indices.tolist() if hasattr(indices, "tolist") else indices)]
        return Table({k: [v[i] for i in idx] for k, v in self._columns.items()})

    def map(self, fn, batched: bool = False, remove_columns=None, batch_size: int = 1000,
            desc: str | None = None) -> "Table":
        if not batched:
            raise ValueError("Table.map supports batched=True only")
        drop = set(remove_columns or ())
        new: dict[str, list] = {}
        for start in range(0, self._n, batch_size):
            batch = {k: v[start:start + batch_size] for k, v in self._columns.items()}
            for k, v in dict(fn(batch)).items():
                new.setdefault(k, []).extend(list(v))
        kept = {k: v for k, v in self._columns.items() if k not in drop and k not in new}
        return Table({**kept, **new})

    def rename_column(self, old: str, new: str) -> "Table":
        return Table({(new if k == old else k): v for k, v in self._columns.items()})

    def __repr__(self) -> str:
        return f"Table(columns={self.column_names}, num_rows={self._n})"


def _text_dataset(sentences: list[str], labels: list[int], names: list[str]):
    """A ``datasets.Dataset`` (a :class:`Table` where the library is not installed)."""
    try:
        import datasets
    except ImportError:
        return Table({"sentence": sentences, "label": labels,
                      "idx": list(range(len(sentences)))})
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names),
                                  "idx": datasets.Value("int32")})
    return datasets.Dataset.from_dict(
        {"sentence": sentences, "label": labels, "idx": list(range(len(sentences)))},
        features=features)


def load_sst2(split: str = "train"):
    """SST-2 (GLUE) as a Hugging Face ``Dataset`` with columns ``sentence``, ``label``, ``idx``.

    ``split``: ``train`` (67,349), ``validation`` / ``dev`` (872) or ``test`` (1,821).
    The shipped ``test.tsv`` is labelled; GLUE's online test split is not (labels -1).
    """
    aliases = {"train": "train", "validation": "validation", "dev": "validation", "test": "test"}
    if split not in aliases:
        raise ValueError(f"split must be one of {sorted(aliases)}, got {split!r}")
    split = aliases[split]
    filename = {"train": "sst2/train.tsv", "validation": "sst2/dev.tsv", "test": "sst2/test.tsv"}[split]

    def local():
        path = local_file(filename)
        if path is None:
            return None
        sentences, labels = [], []
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader)
            if header != ["label", "sentence"]:
                raise ValueError(f"{path}: unexpected header {header}")
            for label, sentence in reader:
                labels.append(int(label))
                sentences.append(sentence)
        return _text_dataset(sentences, labels, SST2_LABELS)

    def online():
        import datasets
        return datasets.load_dataset("glue", "sst2", split=split)

    return _load(f"SST-2 {split}", local, online, filename,
                 'datasets.load_dataset("glue", "sst2") (verified by the datasets library)')


def load_mr(seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)):
    """MR sentence polarity v1.0 (Pang & Lee 2005): 5,331 + 5,331 snippets.

    MR has no official split, so this returns a seeded, stratified
    ``DatasetDict`` with ``train`` / ``validation`` / ``test`` parts.
    """
    def local():
        pos, neg = local_file("rt-polarity/rt-polarity.pos"), local_file("rt-polarity/rt-polarity.neg")
        if pos is None or neg is None:
            return None
        return (pos.read_text(encoding="utf-8").splitlines(),
                neg.read_text(encoding="utf-8").splitlines())

    archive = "rt-polaritydata.tar.gz"

    def cached():
        path = cache_dir() / archive
        if not path.is_file():
            return None
        texts, problem = _read_mr_archive(path)
        if problem:
            raise _damaged_cache(path, problem)
        return texts, archive

    def online():
        _download(MR_URL, archive, lambda part: _read_mr_archive(part)[1])
        return cached()[0]

    pos, neg = _load("MR (rt-polarity)", local, online, "rt-polarity/rt-polarity.{pos,neg}",
                     "Cornell rt-polaritydata.tar.gz", cached)
    sentences = [s.strip() for s in neg] + [s.strip() for s in pos]
    labels = [0] * len(neg) + [1] * len(pos)
    import datasets
    full = _text_dataset(sentences, labels, MR_LABELS)
    names = ["train", "validation", "test"][: len(fractions)] if len(fractions) <= 3 else \
        [f"part{i}" for i in range(len(fractions))]
    parts = split_indices(np.asarray(labels), fractions, seed=seed)
    return datasets.DatasetDict({name: full.select(idx) for name, idx in zip(names, parts)})


def _read_mr_archive(path: Path) -> tuple[tuple[list[str], list[str]] | None, str | None]:
    """``((pos lines, neg lines), None)`` from the MR archive, or ``(None, problem)``.

    Each file is decoded from Windows-1252 (the original release's encoding, not latin-1)
    and must match the known SHA-256 of the data folder's UTF-8 copy.
    """
    texts = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith((".pos", ".neg")):
                    texts[member.name[-3:]] = tar.extractfile(member).read().decode("cp1252")
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as exc:
        return None, f"not a readable .tar.gz archive: {type(exc).__name__}: {exc}"
    for kind in ("pos", "neg"):
        if kind not in texts:
            return None, f"the archive has no rt-polarity.{kind}"
        key = f"rt-polarity/rt-polarity.{kind}"
        actual = hashlib.sha256(texts[kind].encode("utf-8")).hexdigest()
        if actual != KNOWN_SHA256[key]:
            return None, (f"its rt-polarity.{kind} has SHA-256 {actual[:16]}... (as UTF-8) but "
                          f"the book's copy has {KNOWN_SHA256[key][:16]}...")
    return (texts["pos"].splitlines(), texts["neg"].splitlines()), None


def load_tiny_shakespeare() -> str:
    """Tiny Shakespeare (char-rnn), 1,115,394 characters, as one string."""
    relpath = "tinyshakespeare/input.txt"
    filename = "tinyshakespeare.txt"

    def local():
        path = local_file(relpath)
        return None if path is None else path.read_text(encoding="utf-8")

    def cached():
        path = _cached_file(filename, relpath)
        return None if path is None else (path.read_text(encoding="utf-8"), filename)

    def online():
        path = _download(TINY_SHAKESPEARE_URL, filename, lambda part: _check_digest(part, relpath))
        return path.read_text(encoding="utf-8")

    return _load("Tiny Shakespeare", local, online, relpath, "karpathy/char-rnn on GitHub", cached)
