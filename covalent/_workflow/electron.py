"""``@ct.electron``: a function that becomes one node of a workflow.

Called outside a lattice's build, an electron is the plain function. Called during a
build, it records a node and returns an :class:`~covalent._workflow.tracing.Output`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, overload

from covalent._errors import WorkflowError
from covalent._workflow import deps, transfer
from covalent._workflow.graph import NodeKind
from covalent._workflow.lattice import Lattice
from covalent._workflow.tracing import current_builder


class Electron:
    """A function plus where and how it runs (executor, retries, timeout, ...)."""

    def __init__(
        self,
        function: Callable[..., Any],
        executor: Any = None,
        *,
        files: list[Any] | None = None,
        deps_bash: Any = None,
        deps_pip: Any = None,
        call_before: list[Any] | None = None,
        call_after: list[Any] | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        timeout: float | None = None,
        cache: bool = False,
    ) -> None:
        if not callable(function):
            raise WorkflowError(f"ct.electron needs a function, got {function!r}.")
        self.function = function
        self.executor = executor
        self.metadata: dict[str, Any] = {
            "files": transfer.as_transfers(files, function, self.name),
            "deps_bash": deps.as_bash(deps_bash),
            "deps_pip": deps.as_pip(deps_pip),
            "call_before": deps.as_calls(call_before, "call_before"),
            "call_after": deps.as_calls(call_after, "call_after"),
            **deps.as_policy(retries, retry_delay, timeout, f"electron '{self.name}'"),
            "cache": bool(cache),
        }
        functools.update_wrapper(self, function, updated=())  # not a lattice's settings

    @property
    def name(self) -> str:
        return getattr(self.function, "__name__", type(self.function).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = current_builder()
        if builder is None:
            return self.function(*args, **kwargs)
        replacement = builder.replacements.get(self.name) if builder.replacements else None
        if replacement is not None:
            builder.replaced.add(self.name)
        if replacement is not None and replacement is not self:
            return replacement._record(builder, args, kwargs)
        return self._record(builder, args, kwargs)

    def _record(self, builder: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Add this electron's node to ``builder``'s graph.

        A sublattice node's function is its lattice with the node's inherited settings
        filled in, so that the lattice's electrons inherit them when it is built.
        """
        if isinstance(self.function, Lattice):
            settings = builder.inherited({"executor": self.executor, **self.metadata})
            lattice = self.function.inheriting(settings)
            name = f":sublattice:{self.function.name}"
            return builder.add_call(name, NodeKind.SUBLATTICE, lattice, args, kwargs)
        return builder.add_call(  # positional: one call per electron call of a build
            self.name, NodeKind.ELECTRON, self.function, args, kwargs, self.executor, self.metadata
        )

    def __repr__(self) -> str:
        return f"<electron {self.name}>"


@overload
def electron(_func: Callable[..., Any], **options: Any) -> Electron: ...
@overload
def electron(_func: None = None, **options: Any) -> Callable[[Callable[..., Any]], Electron]: ...


def electron(_func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make ``_func`` an electron: ``@ct.electron`` or ``@ct.electron(executor="local")``."""
    if _func is None:
        return lambda function: Electron(function, **options)
    return Electron(_func, **options)
