"""TensorFlow's start-up log lines, held to `$TF_CPP_MIN_LOG_LEVEL` (the `keras-cnn` command sets 3).

TensorFlow 2.21 logs through absl, and the lines its shared libraries write while they load
(the oneDNN notice, "Could not find cuda drivers", `cpu_feature_guard`, absl's "All log messages
before absl::InitializeLog() is called are written to STDERR") come before it reads
`TF_CPP_MIN_LOG_LEVEL`, so the variable TensorFlow documents for silencing them does not. Here
the import of TensorFlow writes its stderr into a file, and the lines the variable allows are
written back. `keras_cnn/__init__` imports this module first, which does that (no keras_cnn
imports here).
"""

import os
import re
import sys
import tempfile

# An absl/glog line: severity letter, MMDD, time (TensorFlow's has the epoch seconds in place of
# the seconds: "I0000 00:00:1796408753.042969"), thread id, file:line.
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\] ")
# Python's own output (a warning, a traceback) is never an absl line's continuation.
_PYTHON_LINE = re.compile(r"^(Traceback|\s+File |\S+:\d+: \w*Warning|\w*(Error|Warning|Exception)\b)")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# What `keras-cnn` sets unless the user did: errors TensorFlow reports later (cuInit on a machine
# without a GPU) are silenced too; the command's own errors are Python's and still show.
CLI_LOG_LEVEL = "3"


def invoked_as_cli(argv=None, orig_argv=None):
    """Whether this process is the `keras-cnn` command (`keras-cnn ...` or `python -m keras_cnn.cli ...`).

    Args:
        argv: `sys.argv` (tests).
        orig_argv: `sys.orig_argv`, the interpreter's own arguments (tests).

    Returns:
        A bool.
    """
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if argv and os.path.basename(argv[0]) in ("keras-cnn", "keras-cnn.exe"):
        return True
    # While `python -m` imports the package, sys.argv[0] is still "-m": the module is in orig_argv.
    args = list(orig_argv[1:])
    for index, arg in enumerate(args):
        if arg == "-m":
            return args[index + 1:index + 2] == ["keras_cnn.cli"]
        if arg.startswith("-m"):
            return arg[2:] == "keras_cnn.cli"
        if not arg.startswith("-") or arg in ("-c", "-"):
            return False
    return False


def filter_startup_log(text, level):
    """The lines of `text` (TensorFlow's stderr while it loads) that log level `level` keeps.

    Args:
        text: What TensorFlow wrote to stderr.
        level: `TF_CPP_MIN_LOG_LEVEL` as an int: 1 drops INFO, 2 also WARNING, 3 also ERROR.

    Returns:
        The kept text; an absl line's continuation lines go with it.
    """
    kept, keep = [], True
    for line in text.splitlines(keepends=True):
        match = _ABSL_LINE.match(line)
        if match:
            keep = _SEVERITY[match.group(1)] >= level
        elif line.rstrip("\n") == _ABSL_BANNER:
            if level < 1:
                kept.append(line)
            continue
        elif not keep and (not line.strip() or _PYTHON_LINE.match(line)):
            keep = True  # the dropped line's continuation ended
        if keep:
            kept.append(line)
    return "".join(kept)


def _log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def import_tensorflow_quietly():
    """Imports TensorFlow with its load-time log lines held to `$TF_CPP_MIN_LOG_LEVEL`.

    The `keras-cnn` command first sets `TF_CPP_MIN_LOG_LEVEL=3` unless it is set. Nothing
    changes when TensorFlow is already imported or the level is 0 (TensorFlow's default).
    """
    if invoked_as_cli():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", CLI_LOG_LEVEL)
    level = _log_level()
    if "tensorflow" in sys.modules or level < 1:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no file descriptor 2 (an embedded interpreter)
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401  (the import whose log lines are held back)
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = filter_startup_log(captured.read().decode("utf-8", "replace"), level)
            if kept:
                os.write(2, kept.encode("utf-8"))


import_tensorflow_quietly()
