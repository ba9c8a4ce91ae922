"""The error tree of aisle, and the exit code each error maps to on the command line.

Every error aisle raises derives from :class:`AisleError`. Subclasses also extend the matching
built-in exception (scikit-learn's trick), so ``except ValueError`` keeps working for callers who
do not know aisle's tree::

    AisleError                                   exit 1
    ├── ConfigError          (ValueError)        exit 2  bad option, config or argument
    ├── DataError            (ValueError)        exit 3  input data that cannot be used
    │   ├── ValidationError                      exit 3  rows that break the schema (lists them)
    │   └── SchemaError                          exit 3  a missing or mistyped column
    ├── NotFoundError        (LookupError)       exit 4  a dataset, file, model or id that is absent
    │   ├── DatasetNotFoundError (FileNotFoundError)
    │   └── UnknownIdError   (KeyError)
    ├── StateError           (RuntimeError)      exit 5  an object used in the wrong state
    │   └── NotFittedError   (ValueError)
    ├── MissingDependencyError (ImportError)     exit 6  an optional extra is not installed
    └── ServiceError         (ConnectionError)   exit 7  a backing service cannot be reached

Warnings derive from :class:`AisleWarning` (``DataWarning`` for recoverable oddities in data).
The command line maps errors to exit codes in one place, :func:`exit_code_for`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AisleError",
    "AisleWarning",
    "ConfigError",
    "DataError",
    "DataWarning",
    "DatasetNotFoundError",
    "MissingDependencyError",
    "NotFittedError",
    "NotFoundError",
    "RowProblem",
    "SchemaError",
    "ServiceError",
    "StateError",
    "UnknownIdError",
    "ValidationError",
    "exit_code_for",
    "require",
]


class AisleError(Exception):
    """Root of every error raised by aisle."""

    exit_code: int = 1


class ConfigError(AisleError, ValueError):
    """An option, configuration value or argument is invalid."""

    exit_code = 2


class DataError(AisleError, ValueError):
    """Input data cannot be used as given."""

    exit_code = 3


class SchemaError(DataError):
    """A required column is missing or has a type that cannot be converted."""


@dataclass(frozen=True)
class RowProblem:
    """One bad row found during validation.

    Attributes:
        row: 1-based data row in the source (the header is not counted).
        column: the column that is wrong.
        value: the offending value, as text.
        reason: what is wrong with it.
        fix: what to do about it.
    """

    row: int
    column: str
    value: str
    reason: str
    fix: str

    def describe(self) -> str:
        return f"data row {self.row}, column '{self.column}': {self.reason} (got {self.value!r}); fix: {self.fix}"


class ValidationError(DataError):
    """Rows break the schema. ``problems`` lists every bad row found (not only the first)."""

    def __init__(self, source: str, problems: Sequence[RowProblem], *, n_rows: int, shown: int = 20):
        self.source = source
        self.problems = list(problems)
        self.n_rows = n_rows
        rows = sorted({p.row for p in self.problems})
        lines = [
            f"{source}: {len(rows)} of {n_rows} rows are invalid "
            f"(data rows {', '.join(map(str, rows[:shown]))}{', ...' if len(rows) > shown else ''})."
        ]
        lines += [f"  - {p.describe()}" for p in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"  ... and {len(self.problems) - shown} more problems")
        lines.append(
            "Fix the rows above, or load with on_error='quarantine' (CLI: --on-error quarantine) "
            "to set them aside in a quarantine file and load the rest."
        )
        super().__init__("\n".join(lines))


class NotFoundError(AisleError, LookupError):
    """Something that was asked for does not exist."""

    exit_code = 4


class DatasetNotFoundError(NotFoundError, FileNotFoundError):
    """A named dataset or a data file is not where aisle looked."""


class UnknownIdError(NotFoundError, KeyError):
    """A user or item id is not in the vocabulary, and the policy says to raise."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class StateError(AisleError, RuntimeError):
    """An object is used in a state that does not allow the call."""

    exit_code = 5


class NotFittedError(StateError, ValueError):
    """A model is used before ``fit`` was called."""


class MissingDependencyError(AisleError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    exit_code = 6


class ServiceError(AisleError, ConnectionError):
    """A backing service (Redis, PostgreSQL, ...) cannot be reached or answered with an error."""

    exit_code = 7


class AisleWarning(UserWarning):
    """Root of the warnings aisle emits."""


class DataWarning(AisleWarning):
    """A recoverable oddity in input data (converted, deduplicated, or ignored with notice)."""


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception: the one place where errors become exit codes."""
    if isinstance(exc, AisleError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


def require(module: str, extra: str) -> object:
    """Import an optional dependency, or fail with the extra that provides it.

    Args:
        module: the module to import, e.g. ``"torch"``.
        extra: the aisle extra that installs it, e.g. ``"torch"``.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"'{module}' is needed for this feature but is not installed; "
            f"install it with: pip install 'aisle[{extra}]'"
        ) from exc
