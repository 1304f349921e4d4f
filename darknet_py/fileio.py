"""Atomic writes: a file is written beside its destination, flushed and renamed, so an
interrupted save never leaves a corrupt weights file or checkpoint behind.

The temporary file is named `.tmp-<pid>-<random>-<name>`; one left by a process that died
mid-save (kill -9, power loss) is removed by the next save of the same file, once its
process is gone. The result gets the user's umask (mkstemp alone would give 0600). A write
that fails (disk full, read-only, no permission, a folder in the way) raises a
DarknetError naming the path and the reason; the previous file stays as it was.
"""
import io
import os
import tempfile

from .errors import WriteError

_PREFIX = ".tmp-"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: alive
        return True
    return True


def remove_stale_temporaries(path):
    """Delete `.tmp-<pid>-*-<name>` files beside `path` whose process no longer runs."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    suffix = "-" + os.path.basename(path)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(_PREFIX) and name.endswith(suffix)):
            continue
        pid_text = name[len(_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and \
                not _process_alive(int(pid_text)):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def _reason(err):
    return err.strerror or str(err)


def atomic_write_bytes(path, data):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise WriteError(f"{path}: cannot write: it is a folder")
    if not os.path.isdir(folder):
        raise WriteError(f"{path}: cannot write: the folder {folder} does not exist")
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-",
                                   suffix="-" + os.path.basename(path), dir=folder)
    except OSError as err:
        raise WriteError(f"{path}: cannot write: {_reason(err)}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise WriteError(f"{path}: cannot write: {_reason(err)} (the previous file, if "
                               "any, is unchanged)") from None
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path, write):
    """Atomically write what write(handle) puts into a binary file object (np.save,
    Image.save(handle, format=...), a chart): built in memory, then atomic_write_bytes, so
    a full disk or a killed process never leaves a truncated file in place of the old one."""
    buffer = io.BytesIO()
    write(buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def checked_write(path, write):
    """Run write(path) (np.save, Image.save ...) turning an OSError into a one-line error.
    Not atomic: a failure can leave a partial file; prefer atomic_write_with."""
    try:
        return write(path)
    except OSError as err:
        raise WriteError(f"{path}: cannot write: {_reason(err)}") from None
