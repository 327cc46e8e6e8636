"""Optional outputs of a run (drawings, plots, TensorBoard writes): a failure there never ends the run.

Each kind of output gets one `OptionalOutput`; code that writes it runs inside ``with output:``. An
exception (not Ctrl-C or SystemExit) is caught and logged as a warning the first time for that output, then
only at DEBUG level; the run goes on without it. The traceback is always logged at DEBUG level.
"""

from __future__ import annotations

import logging
from types import TracebackType

__all__ = ["OptionalOutput"]

logger = logging.getLogger("trainwright")


class OptionalOutput:
    """A guard for one kind of optional output: ``with OptionalOutput("curves.png"): draw()``.

    Args:
        kind: what the output is, as the user knows it (e.g. "validation drawings", "TensorBoard scalars");
            it names the output in the warning.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.failures = 0  # exceptions caught so far
        self.last_error: BaseException | None = None

    def __enter__(self) -> OptionalOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if error is None or not isinstance(error, Exception):
            return False  # KeyboardInterrupt and SystemExit go on
        self.failures += 1
        self.last_error = error
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        if self.failures == 1:
            logger.warning("could not write the %s (%s: %s); training goes on without it (further failures of "
                           "this output are not reported)", self.kind, type(error).__name__, first_line)
        logger.debug("failure %d of the %s", self.failures, self.kind, exc_info=(exc_type, error, traceback))
        return True

    def __repr__(self) -> str:
        return f"OptionalOutput({self.kind!r}, failures={self.failures})"
