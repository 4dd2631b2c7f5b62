"""A run's folder: the trials table, run.json and the lock that keeps two searches apart.

Everything here is written to a temporary name in the same folder and renamed into place, so a
crash or a full disk leaves the last good file intact, never a half-written one; `atomic_write`
is the one helper every result file of the package goes through.
"""
from __future__ import annotations

import errno
import json
import math
import os
import platform
import re
import secrets
import socket
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable

from .design.arch import FIELD_NAMES
from .userfile import FileRefused, load_file

if TYPE_CHECKING:  # pragma: no cover - pandas loads with the first table
    import pandas as pd

RESULTS_DIR = Path("results")
TABLE = "trials.parquet"
TABLE_CSV = "trials.csv"
RUN_JSON = "run.json"
LOCK = ".lock"
STUDY_FILE = "study.db"  # the Optuna study (SQLite)
STATUSES = ("completed", "stopped_early", "diverged", "error", "infeasible")
# The `error` text of a trial that was still training when the whole run stopped (its time
# budget, Ctrl-C, SIGTERM): a `stopped_early` row with the metrics of its last epoch, which a
# resume trains again (a trial that ASHA stopped has no such text and is kept).
CUT_SHORT = "cut short:"


def cut_short_note(reason: str, epochs: int, planned: int) -> str:
    return (f"{CUT_SHORT} the run stopped ({reason}) after epoch {epochs} of {planned}; a "
            "resume trains it again")


def is_cut_short(row: dict[str, Any]) -> bool:
    return row.get("status") == "stopped_early" and str(row.get("error") or "").startswith(
        CUT_SHORT)
METRIC_COLUMNS = ["trial_id", "order", "reference", "fitted", "flops", "params", "status",
                  "epochs", "top1", "top5", "loss", "wall_s", "images_per_s", "node_id",
                  "optuna_number", "proxy_width", "seed", "error"]
#: The measured speed of the full-size design (`training.speed.COLUMNS`): written in every
#: new table, NaN (and an empty device) where a trial measured none; a table written before
#: they existed still reads, as if every trial had measured none.
SPEED_COLUMNS = ["latency_ms", "latency_ms_spread", "throughput", "throughput_spread",
                 "speed_device"]
COLUMNS = [*FIELD_NAMES, *METRIC_COLUMNS]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_name(name: str) -> str:
    """A run name that stays inside the results folder: letters, digits, '.', '_', '-'."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise ValueError(f"run name {name!r} is not allowed: use 1-128 letters, digits, '.', "
                         "'_' or '-', starting with a letter or digit (no path separators)")
    return name


class NotReplaceable(OSError):
    """The target of a write is not a regular file (a link, a device, a FIFO, a folder)."""


_KINDS = ((stat.S_ISLNK, errno.ELOOP, "a symbolic link"), (stat.S_ISDIR, errno.EISDIR, "a folder"),
          (stat.S_ISCHR, errno.EINVAL, "a character device"),
          (stat.S_ISBLK, errno.EINVAL, "a block device"), (stat.S_ISFIFO, errno.EINVAL, "a FIFO"),
          (stat.S_ISSOCK, errno.EINVAL, "a socket"))


def check_replaceable(path: Path) -> os.stat_result | None:
    """The stat of `path` if it is a regular file, None if nothing is there; else NotReplaceable.

    Every result file is written to a temporary name and renamed over its target, and a rename
    replaces whatever the name points at: a device (`--out /dev/null` as root would destroy
    it), a FIFO, or a symbolic link, which would be replaced rather than written through. So
    only a regular file or a new name may be written. Links are refused rather than followed:
    a link planted in a shared run folder must not send a write elsewhere, and the message
    names the link's target so a user who meant it can pass that path instead.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError:  # e.g. a parent that is a file: the write itself will say so
        return None
    if stat.S_ISREG(st.st_mode):
        return st
    code, kind = next(((c, k) for test, c, k in _KINDS if test(st.st_mode)),
                      (errno.EINVAL, "not a regular file"))  # every file type is listed
    if kind == "a symbolic link":
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:
            target = ""
        reason = (f"it is a symbolic link{target}; nas-convnext does not write through links: "
                  "give the real path of the file")
    else:
        reason = (f"it is {kind}, not a regular file; nas-convnext only replaces regular "
                  "files or creates new ones: give another path")
    raise NotReplaceable(code, reason, str(path))


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file whole or not at all: `write(fh)` fills a temporary file renamed over `path`.

    The one way nas-convnext writes a result (tables, run.json, reports, `train --out`, the
    dataset cache), so its rules hold everywhere: only a regular file or a new name is replaced
    (`check_replaceable`); a new file gets the permissions the user's umask gives (the kernel
    applies it, so no process-wide umask is read or changed); a replaced file keeps its
    permissions (and owner, where allowed), as a shell's `>` would. A crash or a full disk
    leaves the old file intact and no temporary file behind. OSError names `path`.
    """
    path = Path(path)
    old = check_replaceable(path)
    tmp, fd = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:  # closes fd whatever happens next
            if old is not None:
                _keep_mode_and_owner(fh.fileno(), old)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        check_replaceable(path)  # once more: writing may take long
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename in (None, tmp):  # name the real file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def _create_temporary(path: Path) -> tuple[str, int]:
    """A new file next to `path`, mode 0666 less the umask (as open(2) gives any new file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name[:200]}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:  # a read-only folder fails here: name the file we meant to write
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    raise OSError(errno.EEXIST, "no free temporary name next to it", str(path))


def _keep_mode_and_owner(fd: int, old: os.stat_result) -> None:
    if not hasattr(os, "fchown"):  # Windows: no POSIX modes or owners to keep
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o777)  # never carry set-id bits over
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except OSError:  # not ours to give away: the file becomes the writer's, as any new one
            pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def rows_to_frame(rows: Iterable[dict[str, Any]]) -> "pd.DataFrame":
    import pandas as pd

    df = pd.DataFrame(list(rows))
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = pd.Series(dtype="object")
    df = with_speed_columns(df)
    extra = [c for c in df.columns if c not in COLUMNS + SPEED_COLUMNS]
    df = df[COLUMNS + SPEED_COLUMNS + extra]
    for col in ("flops", "params", "epochs", "order", "width", "kernel"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("top1", "top5", "loss", "wall_s", "images_per_s", "expansion", "layer_scale"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("reference", "error", "node_id", "status", "trial_id"):
        df[col] = df[col].fillna("").astype(str)
    df["fitted"] = df["fitted"].fillna(False).astype(bool)
    return df


def with_speed_columns(df: "pd.DataFrame") -> "pd.DataFrame":
    """`df` with the speed columns, NaN (and '' for the device) where it has none."""
    import pandas as pd

    df = df.copy()
    for col in SPEED_COLUMNS[:-1]:
        values = df[col] if col in df.columns else pd.Series(float("nan"), index=df.index)
        df[col] = pd.to_numeric(values, errors="coerce").astype("float64")
    device = df["speed_device"] if "speed_device" in df.columns else pd.Series("", index=df.index)
    df["speed_device"] = device.fillna("").astype(str)
    return df


def write_table(run_dir: Path, rows: list[dict[str, Any]]) -> "pd.DataFrame":
    """Write trials.parquet and trials.csv (atomically), sorted by the order trials started."""
    df = rows_to_frame(rows)
    if len(df):
        df = df.sort_values("order", kind="stable").reset_index(drop=True)
    buf = df.to_parquet(index=False)
    atomic_write_bytes(run_dir / TABLE, buf)
    atomic_write_text(run_dir / TABLE_CSV, df.to_csv(index=False))
    return df


def unknown_columns_note(run_dir: Path, columns: Iterable[str]) -> str | None:
    """A one-line note for columns of a table that nas-convnext does not know, None if none.

    Such columns are kept (they may be a user's notes) but said out loud, since they may also
    mean a table from another tool or version, or an edit gone wrong.
    """
    extra = [c for c in columns if c not in COLUMNS + SPEED_COLUMNS]
    if not extra:
        return None
    return (f"nas-convnext: note: {Path(run_dir) / TABLE} has column(s) nas-convnext does not "
            f"know: {extra}; they are kept as they are and not analysed (remove them from the "
            f"table if they are not yours)")


def read_table(run_dir: Path) -> "pd.DataFrame":
    """The trials table, with an error naming the file when it is damaged."""
    import pandas as pd

    path = Path(run_dir) / TABLE
    if not path.is_file():
        raise ValueError(f"{path} does not exist: is {run_dir} a nas-convnext run folder?")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ValueError(f"{path} is damaged and cannot be read ({type(exc).__name__}); "
                         f"{Path(run_dir) / TABLE_CSV} may still hold the trials: restore "
                         "the file from a copy or start a new run") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}: it was not written by this "
                         "version of nas-convnext; use the version that wrote it or start a "
                         "new run")
    bad = sorted(set(df["status"]) - set(STATUSES))
    if bad:
        raise ValueError(f"{path} has unknown status value(s) {bad}: expected {list(STATUSES)}")
    return with_speed_columns(df)


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("nas-convnext", "torch", "torchvision", "timm", "optuna", "ray", "fvcore",
                 "pandas", "numpy", "pyarrow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                            "cpus": os.cpu_count(), "hostname": socket.gethostname()}
    try:
        import torch

        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - information only
        pass
    return info


def write_run_json(run_dir: Path, data: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / RUN_JSON, json.dumps(plain(data), indent=2) + "\n")


def read_run_json(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        raise ValueError(f"{path} is missing: without it the run's settings are unknown, so it "
                         "cannot be resumed: restore it from a copy or start a new run (its "
                         "tables can still be analysed)")
    try:
        data = load_file(path, "json")  # bounded and checked, as every file a user may hand us
    except FileRefused as exc:
        raise ValueError(f"{exc}: the file is damaged; restore it or start a new run") from None
    if not isinstance(data, dict) or "config" not in data:
        raise ValueError(f"{path} holds no 'config': it was not written by nas-convnext search")
    if not isinstance(data["config"], dict) or not data["config"]:
        raise ValueError(f"{path}: field 'config' is {short_repr(data['config'])}, not the run's "
                         "settings: restore the file from a copy or start a new run")
    for key, ok, expected in _RUN_FIELDS:
        if key in data and not ok(data[key]):
            raise ValueError(f"{path}: field {key!r} is {short_repr(data[key])}, expected "
                             f"{expected}: restore the file from a copy or start a new run")
    return data


# The fields of run.json besides 'config' that a resume reads: (key, check, what is expected).
_RUN_FIELDS = (
    ("kind", lambda v: v in ("search", "roadmap", "calibration", "ablation"),
     "'search', 'roadmap', 'calibration' or 'ablation'"),
    ("seeds", lambda v: isinstance(v, list) and bool(v) and len(set(v)) == len(v)
     and all(type(s) is int and 0 <= s < 2**32 for s in v),
     "a list of distinct seeds (integers from 0)"),
    ("ablation", lambda v: isinstance(v, dict) and isinstance(v.get("variants"), list)
     and isinstance(v.get("seeds"), list) and isinstance(v.get("base"), dict),
     "the ablation's plan (base, variants, seeds)"),
    ("elapsed_s", lambda v: type(v) in (int, float) and v >= 0, "seconds (a number >= 0)"),
    ("resumed", lambda v: type(v) is int and v >= 0, "a count (an integer >= 0)"),
    ("started", lambda v: isinstance(v, str), "a date and time as text"),
)


def one_line(message: object, limit: int | None = None) -> str:
    """A message on one line (every run of whitespace one space), cut to `limit` characters
    when given; an exception without text is named by its type. The CLI prints every error
    through it, and the report quotes other libraries' messages with it."""
    text = " ".join(str(message).split())
    if not text and isinstance(message, BaseException):
        text = type(message).__name__
    return text if limit is None else text[:limit]


def text_table(rows: list[list[Any]], header: list[str]) -> str:
    """Rows as an aligned plain-text table (numbers right-aligned) under `header`, for the
    terminal."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if _looks_numeric(c) else c.ljust(w)
                               for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _looks_numeric(s: str) -> bool:
    try:
        float(s.replace(",", "").replace("%", ""))
        return True
    except ValueError:
        return False


def short_repr(value: Any, limit: int = 60) -> str:
    """A value from a file as an error message shows it: its repr, shortened."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def folder_holds_a_run(run_dir: Path) -> bool:
    """Whether a folder holds anything of a run, so that a new run may not take its name.

    A search that was killed (SIGKILL) while it made its folder can leave the folder with only
    its lock file or a temporary file in it: that is nothing of a run, and a new run with that
    name may use the folder. Anything else (run.json, a table, study.db, a file of yours) is
    kept and the name refused.
    """
    try:
        names = [p.name for p in Path(run_dir).iterdir()]
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return True
    return any(n != LOCK and not (n.startswith(".") and n.endswith(".tmp")) for n in names)


def plain(x: Any) -> Any:
    """A value as JSON can hold it: dataclasses and mappings as objects (keys as text), lists
    and tuples as arrays, numpy scalars as numbers, NaN, infinities and pandas' NA as null,
    paths and anything else as text. Every JSON file of the package (run.json, `train --out`,
    the report's analysis.json and roadmap.json) is cleaned by it."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return plain(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "item") and type(x).__module__ == "numpy":  # a numpy scalar
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    pandas = sys.modules.get("pandas")  # pandas' NA exists only once pandas is loaded
    if pandas is not None and (x is pandas.NA or x is pandas.NaT):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


class RunLock:
    """An exclusive lock on a run folder, so two searches never write the same table.

    The lock is the kernel's (`flock`) on the file `.lock`, not the file's existence: it ends
    with its process however that process ends, so a killed search leaves no lock to clear
    by hand, and two searches that start together cannot both take it (a lock file written
    by pid would leave a moment when it exists but says nothing, and another moment when two
    processes both see a dead owner and both remove it). The file holds the owner's pid and
    host, for the message.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> "RunLock":
        import fcntl  # POSIX only, and only a search locks: analyze runs anywhere

        for _ in range(10):
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise ValueError(f"{self.path.parent} is in use by another search{owner}; "
                                 f"wait for it or choose another --name") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed the file between our open and our lock
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n{socket.gethostname()}\n".encode())
            except OSError:
                os.close(fd)
                raise
            self.fd = fd
            return self
        raise ValueError(f"could not lock {self.path.parent}: other searches keep taking it")

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # removed while still locked, then let go
            except OSError:  # the folder itself was removed or replaced: nothing to remove
                pass
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    try:
        pid, host = os.pread(fd, 200, 0).decode().split()[:2]
    except (OSError, ValueError, UnicodeDecodeError):
        return ""
    return f" (process {pid})" if host == socket.gethostname() else f" (process {pid} on {host})"


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


def write_failure(run_dir: Path, exc: OSError, gone: bool = False) -> ValueError:
    """The one-line error for a run whose table (or run.json) could not be written: what is
    kept and what to do, or that the folder itself is gone."""
    name = Path(exc.filename).name if getattr(exc, "filename", None) else "trials.parquet"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if gone or not run_dir.is_dir():  # removed, or replaced by a file, while the search ran
        return ValueError(f"could not write {run_dir / name}: {reason}: {run_dir} is no longer "
                          "a folder (it was removed or replaced while the search ran), so the "
                          "trials of this run are lost; start a new run")
    return ValueError(f"could not write {run_dir / name}: {reason}; the last good table is "
                      f"kept: free some space (or make the folder writable) and resume with "
                      f"--resume {run_dir}")

