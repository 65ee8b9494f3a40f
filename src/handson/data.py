"""Real datasets, offline first, with one clear error when none can be found.

Every loader tries, in order:

1. a **local verified copy** in the data folder (SHA-256 checked against the
   folder's ``SHA256SUMS``);
2. the **real online source** that readers use (torchvision, Hugging Face
   ``datasets``, the authors' own download) -- skipped when offline;
3. otherwise it raises :class:`DataNotFoundError` saying what was tried and how
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
    """A local file does not match its SHA-256 in ``SHA256SUMS``."""


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
    sums_file = folder / "SHA256SUMS"
    if not sums_file.is_file():
        return {}
    sums = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest
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
          local_what: str, online_what: str):
    """Try ``local()`` then ``online()``; print and record the source; else one clear error."""
    result = local()
    if result is not None:
        source = f"local copy {local_what}"
        _record(name, source)
        return result
    tried = [f"local copy: {local_what} (not found in {data_dir()})"]
    if is_offline():
        tried.append(f"online: {online_what} (skipped: offline mode is on)")
    else:
        try:
            result = online()
            _record(name, f"online {online_what}")
            return result
        except Exception as exc:  # network errors come in many types
            tried.append(f"online: {online_what} ({type(exc).__name__}: {exc})")
    raise DataNotFoundError(
        f"Could not load {name}. Tried:\n  - " + "\n  - ".join(tried) +
        "\nFix: set HANDSON_DATA to the book's data folder (it holds SHA256SUMS), "
        "or connect to the internet and unset HF_HUB_OFFLINE/HF_DATASETS_OFFLINE/HANDSON_OFFLINE.")


def _record(name: str, source: str) -> None:
    SOURCES[name] = source
    print(f"[handson.data] {name}: {source}")


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
        "torchvision.datasets.CIFAR10(download=True)")
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageDataset(tensor, torch.from_numpy(labels), classes, transform, kind)


# --------------------------------------------------------------------------- text

def _text_dataset(sentences: list[str], labels: list[int], names: list[str]):
    import datasets
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

    return _load(f"SST-2 {split}", local, online, filename, 'datasets.load_dataset("glue", "sst2")')


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

    def online():
        target = cache_dir() / "rt-polaritydata.tar.gz"
        if not target.exists():
            urllib.request.urlretrieve(MR_URL, target)
        texts = {}
        with tarfile.open(target) as tar:
            for member in tar.getmembers():
                if member.name.endswith((".pos", ".neg")):
                    # the original release is Windows-1252, not latin-1
                    raw = tar.extractfile(member).read().decode("cp1252")
                    texts[member.name[-3:]] = raw.splitlines()
        return texts["pos"], texts["neg"]

    pos, neg = _load("MR (rt-polarity)", local, online, "rt-polarity/rt-polarity.{pos,neg}",
                     "Cornell rt-polaritydata.tar.gz")
    sentences = [s.strip() for s in neg] + [s.strip() for s in pos]
    labels = [0] * len(neg) + [1] * len(pos)
    import datasets
    full = _text_dataset(sentences, labels, MR_LABELS)
    names = ["train", "validation", "test"][: len(fractions)] if len(fractions) <= 3 else \
        [f"part{i}" for i in range(len(fractions))]
    parts = split_indices(np.asarray(labels), fractions, seed=seed)
    return datasets.DatasetDict({name: full.select(idx) for name, idx in zip(names, parts)})


def load_tiny_shakespeare() -> str:
    """Tiny Shakespeare (char-rnn), 1,115,394 characters, as one string."""
    relpath = "tinyshakespeare/input.txt"

    def local():
        path = local_file(relpath)
        return None if path is None else path.read_text(encoding="utf-8")

    def online():
        target = cache_dir() / "tinyshakespeare.txt"
        if not target.exists():
            urllib.request.urlretrieve(TINY_SHAKESPEARE_URL, target)
        return target.read_text(encoding="utf-8")

    return _load("Tiny Shakespeare", local, online, relpath, "karpathy/char-rnn on GitHub")
