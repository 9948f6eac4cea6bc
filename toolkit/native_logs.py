"""Quiet start-up: TensorFlow's known-harmless C++ lines are kept off the command line's stderr.

Importing TensorFlow writes, from C++, before any Python code can intervene:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see slightly different ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 ... cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU ...
    To enable the following instructions: AVX2 AVX512F ... rebuild TensorFlow with the appropriate compiler flags.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: ...
    E0000 ... util.cc:131] oneDNN supports DT_INT64 only on platforms with AVX-512. Falling back to ...

(the first group twice: `import tensorflow` loads `libtensorflow_framework.so.2`
and `python/profiler/internal/_pywrap_profiler_plugin.so`, and each carries its
own copy of the logging and of these start-up checks; plain
`python -c "import tensorflow"` prints them twice too). A first-time
user reads them as errors. They are not: the process runs on the CPU and the
run's log names its devices (`Pipeline.training_run`).

Why not `TF_CPP_MIN_LOG_LEVEL` alone: measured with TensorFlow 2.21, level 2
(or 3) does not hide the `I0000` lines of the first group, which are written
before TensorFlow reads the variable, and level 3 hides every C++ error, the
genuine ones with the `E0000 cuInit` line. So the command line (`cli.main`,
before anything imports TensorFlow) does two things, unless `ZLPR_VERBOSE=1`
or `--verbose` asks for everything:

- `TF_CPP_MIN_LOG_LEVEL=1` (C++ info lines off; warnings and errors stay)
  when the user has not set the variable; a value the user set is kept;
- file descriptor 2 goes through a filter that drops the lines matching
  `HARMLESS` (a short list: each names its source file and message) and
  passes every other byte on unchanged and at once: Python warnings, Keras
  messages, the toolkit's log, tracebacks, and every other C++ warning or
  error.

The filter is a separate, small process (`python -I -S native_logs.py`)
reading a pipe, not a thread: a thread dies with the process, so the last
words of a process that aborts (a C++ `CHECK` failure, a segmentation fault,
`os._exit`, SIGKILL) would be lost in the pipe; the filter process drains
the pipe until every writer has closed it, whatever became of them. It is in
its own session, so Ctrl-C reaches only the command, and it exits at end of
file. At the command's exit the pipe is closed and the filter waited for
(briefly), so that nothing is printed after the shell prompt. Lines are
passed on whole; a partial line (a prompt, a progress bar) is passed on as
soon as nothing more arrives for 50 ms.
"""

import contextlib
import os
import re
import select
import signal
import subprocess
import sys

__all__ = ["HARMLESS", "VERBOSE_VARIABLE", "filter_stream", "is_harmless", "quiet_native_logs"]

#: Set to 1 (or any value but 0 and empty) to see every line TensorFlow writes.
VERBOSE_VARIABLE = "ZLPR_VERBOSE"

#: The C++ lines dropped: known to say nothing the user can act on. Each pattern is searched in one line.
HARMLESS = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"^I\d{4} .* port\.cc:\d+\] oneDNN custom operations are on\. "),
    re.compile(r"^I\d{4} .* cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\."),
    re.compile(r"^I\d{4} .* cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU "),
    re.compile(r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"),
    re.compile(r"^E\d{4} .* cuda_(platform|executor|diagnostics)\.cc:\d+\] failed call to cuInit: "),
    re.compile(r"^E\d{4} .* util\.cc:\d+\] oneDNN supports DT_\w+ only on platforms with AVX-512\. "),
    re.compile(r"^E\d{4} .* cuda_(dnn|fft|blas)\.cc:\d+\] Unable to register cu(DNN|FFT|BLAS) factory: "),
)

# How long a partial line waits for the rest of it before it is passed on (seconds).
_PARTIAL_LINE_WAIT = 0.05
# How long the command waits at exit for the filter to pass the last lines on (seconds).
_EXIT_WAIT = 5.0


def is_harmless(line: str) -> bool:
    """Whether `line` (without its newline) is one of the `HARMLESS` lines.

    >>> is_harmless("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    True
    >>> is_harmless("E0000 00:00:1.5 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: 303")
    True
    >>> is_harmless("E0000 00:00:1.5 1 bfc_allocator.cc:291] Allocator ran out of memory")
    False
    """
    return any(pattern.search(line) for pattern in HARMLESS)


def filter_stream(source: int, target: int) -> None:
    """Copy file descriptor `source` to `target` until end of file, without the `HARMLESS` lines."""
    pending = b""
    while True:
        if pending:  # a partial line: wait a little for its end, else pass it on as it is
            ready, _, _ = select.select([source], [], [], _PARTIAL_LINE_WAIT)
            if not ready:
                _write(target, pending)
                pending = b""
                continue
        chunk = os.read(source, 65536)
        if not chunk:
            _write(target, pending)
            return
        *lines, pending = (pending + chunk).split(b"\n")
        kept = [line + b"\n" for line in lines if not is_harmless(line.decode("utf-8", "replace").rstrip("\r"))]
        _write(target, b"".join(kept))


def _write(target: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(target, data) :]
        except BrokenPipeError:  # nobody reads stderr any more: drop the rest
            return


def quiet_native_logs(environ=None) -> bool:
    """Hide TensorFlow's harmless start-up lines in this process (see the module docstring).

    Call it before TensorFlow is imported; only a program that owns its
    stderr should (`toolkit.cli` when run as the command). Returns whether
    the filter was installed: not with `ZLPR_VERBOSE` set, nor where it
    cannot be (no file descriptor 2, Windows).
    """
    environ = os.environ if environ is None else environ
    if environ.get(VERBOSE_VARIABLE, "") not in ("", "0"):
        return False
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if sys.platform == "win32":
        return False
    try:
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        real_stderr = os.dup(2)
    except OSError:
        return False
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=read_end,
            stdout=real_stderr,
            stderr=real_stderr,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        for descriptor in (read_end, write_end, real_stderr):
            os.close(descriptor)
        return False
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)

    def restore():
        """At exit: stderr back to the terminal, the pipe closed, the filter's last lines awaited."""
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(real_stderr, 2)
        os.close(real_stderr)
        # A child of the command that still holds the pipe keeps the filter going: it drains later.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_EXIT_WAIT)

    import atexit

    atexit.register(restore)
    return True


if __name__ == "__main__":  # the filter process: stdin is the pipe, stdout the real stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    filter_stream(0, 1)
