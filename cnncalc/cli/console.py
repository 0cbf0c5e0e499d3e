"""What every command shares at the terminal: consoles, problem listings, CI annotations,
user errors as exit codes, writing an output file."""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer

from cnncalc.errors import CnnError, Problem, did_you_mean


def console(stderr: bool = False):
    from rich.console import Console

    c = Console(stderr=stderr, highlight=False)
    if not c.is_terminal:  # piped: no colour codes (rich), never truncated, no trailing spaces
        c = Console(file=_Tidy(sys.stderr if stderr else sys.stdout), highlight=False, width=100_000,  # type: ignore[arg-type]
                    no_color=True, color_system=None)
    return c


class _Tidy:
    """A text stream that drops the spaces rich pads lines with before each newline."""

    def __init__(self, out: Any):
        self.out, self.tail = out, ""

    def write(self, text: str) -> int:
        lines = (self.tail + text).split("\n")
        self.tail = lines.pop()
        if lines:
            self.out.write("".join(line.rstrip() + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self.tail:
            self.out.write(self.tail.rstrip())
            self.tail = ""
        self.out.flush()

    def isatty(self) -> bool:
        return False


def show_torch_log(log: list[str]) -> None:
    """What torch itself logged, warned or printed (kept by backend.chatter / interop.quiet), on
    standard error, escaped: `-v` of import, export and verify."""
    if log:
        err = console(stderr=True)
        err.print(f"torch's own messages ({len(log)} lines):")
        for line in log:
            err.print(f"  {_escape(line)}")


def report_problems(problems: list[Problem]) -> None:
    err = console(stderr=True)
    for p in problems:
        style = "red" if p.severity == "error" else "yellow"
        where = f" [bold]{_escape(p.who())}[/bold]:" if p.layer else ""
        err.print(f"{_escape(p.location())}: [{style}]{p.severity}[/{style}]:{where} {_escape(p.message)}")


def _escape(s: str) -> str:
    from cnncalc.safe import markup

    return markup(s)


def annotation(value: object, prop: bool = False) -> str:
    """A GitHub workflow-command value: %, CR and LF escaped (and ':' and ',' in a property),
    other control characters made visible, so no text can end the command or start another."""
    from cnncalc.safe import visible

    text = visible(str(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


F = TypeVar("F", bound=Callable[..., Any])


def user_errors(command: F) -> F:
    """A CnnError is the user's mistake: its located problems go to stderr, exit status 1."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CnnError as exc:
            report_problems(exc.problems)
            raise typer.Exit(exc.exit_code) from None

    return run  # type: ignore[return-value]


def require_layer(report, name: str) -> None:
    """--layer must name a layer of the report (a located message with a suggestion otherwise)."""
    names = [r.name for r in report.layers]
    if name not in names:
        raise CnnError([Problem(f"--layer: no layer '{name}'{did_you_mean(name, names)}", report.file)])


def write_out(text: str, output: str | None) -> bool:
    """`text` to the file `output` (True), or to standard output when there is none (False); a
    file that cannot be written is a command-line mistake (exit 2)."""
    if output is None:
        sys.stdout.write(text)
        return False
    try:
        with open(output, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise CnnError.single(f"cannot write the file: {exc.strerror or exc}", exit_code=2, file=output) from None
    return True
