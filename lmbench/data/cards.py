"""Corpus cards: the standard corpora by name — files, checksums, licence, tokenizer, where to get them — and
the local copies they point at.

The cards ship inside the package (``lmbench/data/corpus_cards/*.toml``; the repository's ``corpora/*.toml``
link to them), so an installed lmbench finds them wherever it runs. A card's files are looked for in
``<data dir>/<card name>/``; the data dir is the first of: ``--data-dir`` or ``corpus.data_dir`` (relative to
the config file's folder), ``$LMBENCH_DATA``, ``../shared/corpora`` from the current directory where that
exists, else ``./data`` (where ``lmbench corpora fetch`` puts copies when nothing else is set).
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lmbench.data.corpus import Corpus
from lmbench.data.shared import shared_dir
from lmbench.errors import ConfigError, DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CARDS_DIR = Path(__file__).parent / "corpus_cards"  # package data (pyproject.toml: package-data)
DATA_ENV = "LMBENCH_DATA"
FETCH_DIR = Path("data")  # the data dir when none is given and ../shared/corpora does not exist


@dataclass
class CorpusCard:
    name: str
    description: str
    licence: str
    tokenizer: str
    url: str
    splits: dict[str, dict]  # split -> {"file", "sha256"[, "member", "lines"]}; "all": one file to split
    citation: str = ""
    external_tokenizer: str = (
        ""  # how raw outside text (pair files, prompts) is tokenized to match; "" = tokenizer
    )
    archive: dict = field(default_factory=dict)  # {"file", "bytes", "sha256", "md5"}: splits are its members
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    path: Path = field(default_factory=Path)

    @property
    def single_file(self) -> bool:
        return "all" in self.splits


def card_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CARDS_DIR.glob("*.toml"))}


def load_card(name: str) -> CorpusCard:
    files = card_files()
    if name not in files:
        raise ConfigError(
            f"corpus.name: unknown corpus {name!r}; expected 'synthetic' or one of {', '.join(files)}"
        )
    path = files[name]
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        return CorpusCard(path=path, **data)
    except TypeError as e:
        raise ConfigError(f"{path}: malformed corpus card ({e})") from None


def data_dir(explicit: str | Path | None = None) -> Path:
    """Where local copies of card corpora live: ``explicit`` (``--data-dir``, ``corpus.data_dir``), else
    ``$LMBENCH_DATA``, else ``../shared/corpora`` from the current directory if it exists, else ``./data``.

    Nothing here depends on where lmbench is installed, so a wheel install and a source checkout agree.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    root = shared_dir()
    if root is not None and (root / "corpora").is_dir():
        return root / "corpora"
    return FETCH_DIR


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class CardStatus:
    card: CorpusCard
    folder: Path
    present: bool
    verified: bool | None  # None: no checksum on the card to verify against
    problems: list[str]


def check_card(card: CorpusCard, directory: str | Path | None = None) -> CardStatus:
    """Is a local copy present, and do its files match the card's checksums?"""
    folder = data_dir(directory) / card.name
    problems: list[str] = []
    present = all((folder / s["file"]).is_file() for s in card.splits.values())
    verified: bool | None = None
    if present:
        expected = [s.get("sha256", "") for s in card.splits.values()]
        if all(expected):
            verified = True
            for split in card.splits.values():
                if sha256_file(folder / split["file"]) != split["sha256"]:
                    verified = False
                    problems.append(f"{folder / split['file']}: sha256 differs from the card")
    return CardStatus(card, folder, present, verified, problems)


def load_card_corpus(
    name: str, directory: str | Path | None = None, *, verify: bool = True
) -> tuple[Corpus, CorpusCard]:
    """The corpus a card names, read from its local copy (checked against the card's checksums)."""
    card = load_card(name)
    status = check_card(card, directory) if verify else None
    folder = data_dir(directory) / card.name
    if status is not None and not status.present:
        raise DataError(
            f"corpus {name!r}: no local copy found in {folder}; run "
            f"`lmbench corpora fetch {name}` or point --data-dir / ${DATA_ENV} at a folder holding {name}/"
        )
    if status is not None and status.verified is False:
        raise DataError(f"corpus {name!r}: {status.problems[0]}")
    if card.single_file:
        corpus = Corpus.from_single_file(
            folder / card.splits["all"]["file"],
            valid_fraction=card.valid_fraction,
            test_fraction=card.test_fraction,
            name=card.name,
        )
    else:
        corpus = Corpus.from_files(
            *(folder / card.splits[s]["file"] for s in ("train", "valid", "test")), name=card.name
        )
    return corpus, card


def fetch_card(name: str, directory: str | Path | None = None, *, timeout: float = 20.0) -> tuple[Path, bool]:
    """Download a card's files into ``<data dir>/<name>/`` and verify them; one-line error without network.

    Returns the folder and whether anything was downloaded: a present copy that matches the card (or a card
    without checksums) is kept as it is. A failed download leaves no folder it created behind.
    """
    card = load_card(name)
    root = data_dir(directory)
    folder = root / card.name
    status = check_card(card, root)
    if status.present and status.verified is not False:
        return folder, False
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"corpus {name!r}: cannot create {folder} ({e.strerror})") from None
    try:
        if card.archive:  # one archive holds every split (WikiText-103): verify it, then extract
            _fetch_archive(card, folder, timeout)
        for split in [] if card.archive else card.splits.values():
            target = folder / split["file"]
            if target.is_file() and split.get("sha256") and sha256_file(target) == split["sha256"]:
                continue  # this file is already right; fetch only what is missing or differs
            url = card.url.rstrip("/") + "/" + split["file"]
            _download(name, url, target, split.get("sha256"), timeout, differs=target.is_file())
    except BaseException:
        for path in created:  # deepest first; only folders this call made, and only if still empty
            try:
                path.rmdir()
            except OSError:
                break
        raise
    return folder, True


def _download(
    name: str, url: str, target: Path, sha256: str | None, timeout: float, *, differs: bool
) -> None:
    """``url`` into ``target`` through a temporary file beside it (:func:`lmbench.io.atomic_path`: removed on
    any failure, Ctrl-C or SIGTERM), renamed into place only once its sha256 matches the card's."""
    from lmbench.io import atomic_path

    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                out.write(response.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            advice = (
                f"the {target} there does not match the card's sha256: replace it with the original file"
                if differs
                else f"without network, get {target.name} elsewhere and put it at {target}, or point --data-dir / "
                f"${DATA_ENV} at a folder that holds {name}/"
            )
            raise DataError(f"corpus {name!r}: could not download {url} ({reason}); {advice}") from None
        if sha256 and sha256_file(tmp) != sha256:
            raise DataError(f"corpus {name!r}: {url} does not match the card's sha256")


def file_digests(path: Path) -> dict[str, str]:
    """sha256 and md5 of a file, read once."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def verify_archive(card: CorpusCard, path: Path) -> None:
    """The downloaded archive must have the card's size and every checksum the card gives."""
    expected_bytes = card.archive.get("bytes")
    if expected_bytes and path.stat().st_size != expected_bytes:
        raise DataError(
            f"corpus {card.name!r}: {card.archive['file']} is {path.stat().st_size:,} bytes, the card says {expected_bytes:,}"
        )
    digests = file_digests(path)
    for kind in ("sha256", "md5"):
        if card.archive.get(kind) and digests[kind] != card.archive[kind]:
            raise DataError(f"corpus {card.name!r}: {card.archive['file']} does not match the card's {kind}")


def extract_splits(card: CorpusCard, archive: Path, folder: Path) -> None:
    """Write each split's archive member to its file (atomically), checking line counts the card gives."""
    import zipfile

    from lmbench.io import atomic_path

    try:
        with zipfile.ZipFile(archive) as zf:
            for split in card.splits.values():
                with (
                    atomic_path(folder / split["file"]) as tmp,
                    zf.open(split["member"]) as src,
                    open(tmp, "wb") as out,
                ):
                    lines = 0
                    for block in iter(lambda: src.read(1 << 20), b""):  # noqa: B023 - consumed at once
                        out.write(block)
                        lines += block.count(b"\n")
                    if split.get("lines") and lines != split["lines"]:
                        raise DataError(
                            f"corpus {card.name!r}: {split['member']} has {lines:,} lines, the card says {split['lines']:,}"
                        )
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"corpus {card.name!r}: {archive} is not the expected archive ({e})") from None


def _fetch_archive(card: CorpusCard, folder: Path, timeout: float) -> Path:
    """Download the card's archive (or use a copy already put in ``folder``), verify it, extract the splits."""
    archive = folder / card.archive["file"]
    if not archive.is_file():
        url = card.url.rstrip("/") + "/" + card.archive["file"]
        from lmbench.io import atomic_path

        with atomic_path(archive) as tmp:  # removed on any failure, Ctrl-C or SIGTERM; renamed once verified
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", e)
                raise DataError(
                    f"corpus {card.name!r}: could not download {url} ({reason}); no network here? put "
                    f"{card.archive['file']} (from another machine) in {folder} and run this again"
                ) from None
            verify_archive(card, tmp)
    else:
        verify_archive(card, archive)
    extract_splits(card, archive, folder)
    return folder


SYNTHETIC_LISTING = {"name": "synthetic", "tokenizer": "whitespace", "licence": "generated", "local copy": "built in",
                     "folder": ""}  # fmt: skip


def list_corpora(directory: str | Path | None = None) -> list[dict[str, str]]:
    """Every named corpus, one row each (name, tokenizer, licence, local copy, folder): the cards with the state
    of their local copy under ``directory`` (see :func:`data_dir`), then the built-in synthetic corpus."""
    rows = []
    for name in card_files():
        status = check_card(load_card(name), directory)
        if not status.present:
            state = "missing"
        else:
            state = {True: "verified", False: "CHECKSUM MISMATCH", None: "present (no checksum)"}[
                status.verified
            ]
        rows.append(
            {
                "name": name,
                "tokenizer": status.card.tokenizer,
                "licence": status.card.licence,
                "local copy": state,
                "folder": str(status.folder or ""),
            }
        )
    return [*rows, dict(SYNTHETIC_LISTING)]
