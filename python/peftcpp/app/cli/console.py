"""What the `peftcpp` commands print, and where: the one policy every command
(and `make demo`) follows.

- Results (the files written, the answers of generate/test) go to standard
  output, always.
- Information and progress lines (`Loading ...`, `Iter N: Train loss ...`,
  tokens/s) go to standard output, unless --quiet.
- A progress bar is drawn on standard output, among those lines, only when it
  is a terminal and not --quiet: tqdm.write then keeps the bar below the
  lines. Into a file or a pipe go the lines only, never a bar's `\\r` frames.
- Warnings and errors go to standard error, always.
- Standard output is line-buffered while a command runs, so that
  `peftcpp ... > log 2>&1` keeps the order in which lines were printed.

--quiet also turns off huggingface_hub's download bars (drawn on standard
error, by huggingface_hub itself only when that is a terminal)."""
import contextlib
import sys

__all__ = ["add_quiet_option", "command_output", "is_quiet", "info", "bars", "tensor_progress", "warn"]

QUIET_HELP = ("no progress bars, progress or information lines; errors, warnings and the result (files written, "
              "answers) are still printed (default: off)")

_quiet = False


def add_quiet_option(p):
    """--quiet on a subcommand; also accepted before the command (`peftcpp --quiet train`), which the main parser
    handles: SUPPRESS keeps the subcommand from resetting it."""
    import argparse
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)


def is_quiet():
    return _quiet


def info(text=""):
    """An information or progress line: standard output, unless --quiet."""
    if not _quiet:
        print(text, flush=True)


def bars():
    """Whether a progress bar may be drawn now: not --quiet, and standard output is a terminal."""
    if _quiet:
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def tensor_progress(desc):
    """The ``progress`` argument of the GGUF writers: a bar on standard output, or False."""
    if not bars():
        return False
    from ...gguf.progress import TensorProgress
    return TensorProgress(desc, file=sys.stdout)


def warn(text):
    """A warning line on standard error; a bar on the same terminal is cleared first and redrawn below it."""
    if bars():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            tqdm.write(text, file=sys.stderr)
            return
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def command_output(quiet=False):
    """The policy for one command: --quiet or not, standard output line-buffered; restored afterwards (the CLI
    runs in-process in the demo and in tests)."""
    global _quiet
    saved, _quiet = _quiet, bool(quiet)
    stdout = sys.stdout
    relax = _line_buffer(stdout)
    enable_hub_bars = _hub_bars_off() if quiet else None
    try:
        yield
    finally:
        _quiet = saved
        if relax:
            _set_line_buffering(stdout, False)
        if enable_hub_bars is not None:
            enable_hub_bars()


def _line_buffer(stream):
    """Makes `stream` flush at each newline; True when it was not doing so before."""
    if getattr(stream, "line_buffering", True):
        return False
    return _set_line_buffering(stream, True)


def _set_line_buffering(stream, on):
    try:
        stream.reconfigure(line_buffering=on)  # flushes first
        return True
    except (AttributeError, ValueError, OSError):  # not a TextIOWrapper (io.StringIO), or closed
        return False


def _hub_bars_off():
    """Turns huggingface_hub's progress bars off; the function that turns them back on, or None."""
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    except ImportError:
        return None
    if are_progress_bars_disabled():
        return None
    disable_progress_bars()
    return enable_progress_bars
