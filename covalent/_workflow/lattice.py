"""``@ct.lattice``: a workflow, built by tracing its body.

Called directly, a lattice is its plain function. :meth:`Lattice.build_graph` calls the
body with a :class:`~covalent._workflow.tracing.Builder` current, so that electrons
record nodes; the lattice's return value tells where its result comes from.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any, overload

from covalent._errors import WorkflowError
from covalent._workflow import deps, inherit
from covalent._workflow.graph import Graph
from covalent._workflow.svg import preview_html
from covalent._workflow.tracing import Builder, Output, holds_output


class Lattice:
    """A workflow function plus its defaults for the electrons it calls."""

    def __init__(
        self,
        function: Callable[..., Any],
        executor: Any = None,
        workflow_executor: Any = None,
        *,
        deps_bash: Any = None,
        deps_pip: Any = None,
        call_before: list[Any] | None = None,
        call_after: list[Any] | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        timeout: float | None = None,
        triggers: Any = None,
    ) -> None:
        if not callable(function):
            raise WorkflowError(f"ct.lattice needs a function, got {function!r}.")
        self.workflow_function = function
        self.executor = executor
        self.workflow_executor = workflow_executor
        self.metadata: dict[str, Any] = {
            "deps_bash": deps.as_bash(deps_bash),
            "deps_pip": deps.as_pip(deps_pip),
            "call_before": deps.as_calls(call_before, "call_before"),
            "call_after": deps.as_calls(call_after, "call_after"),
            **deps.as_policy(retries, retry_delay, timeout, f"lattice '{self.name}'"),
            "triggers": triggers,
        }
        self._transport_graph: Graph | None = None
        self._load_graph: Callable[[], Graph] | None = None
        functools.update_wrapper(self, function)

    @property
    def name(self) -> str:
        return getattr(self.workflow_function, "__name__", "lattice")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.workflow_function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<lattice {self.name}>"

    def _repr_html_(self) -> str:
        """The graph as a picture in a notebook, before dispatch (see svg.py)."""
        return preview_html(self.name, self.transport_graph, self.build_graph)

    @property
    def transport_graph(self) -> Graph | None:
        """The graph of the last build (``build_graph``), or for ``result.lattice`` the
        graph of that dispatch as it ran (fetched from the server on first use)."""
        if self._transport_graph is None and self._load_graph is not None:
            self._transport_graph = self._load_graph()
        return self._transport_graph

    @transport_graph.setter
    def transport_graph(self, graph: Graph | None) -> None:
        self._transport_graph = graph

    def graph_from(self, load: Callable[[], Graph]) -> None:
        """Have ``transport_graph`` be ``load()``, called when first read."""
        self._transport_graph, self._load_graph = None, load

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_transport_graph": None, "_load_graph": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.setdefault("_transport_graph", state.pop("transport_graph", None))
        state.setdefault("_load_graph", None)
        self.__dict__.update(state)

    def settings(self) -> dict[str, Any]:
        """The settings its electrons inherit (see covalent/_workflow/inherit.py)."""
        return {"executor": self.executor, **self.metadata}

    def inheriting(self, settings: dict[str, Any]) -> Lattice:
        """A copy of this lattice whose unset settings are ``settings`` (those of the
        sublattice node that runs it)."""
        child = copy.copy(self)
        child.metadata = dict(self.metadata)
        resolved = inherit.resolve(self.settings(), settings)
        child.executor = resolved.pop("executor")
        child.metadata.update(resolved)
        child._transport_graph, child._load_graph = None, None
        return child

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise a WorkflowError if ``args``/``kwargs`` do not fit the lattice's signature."""
        try:
            inspect.signature(self.workflow_function).bind(*args, **kwargs)
        except TypeError as e:
            raise WorkflowError(
                f"The arguments do not fit lattice '{self.name}{self.signature}': {e}."
            ) from None

    @property
    def signature(self) -> str:
        try:
            return str(inspect.signature(self.workflow_function))
        except (TypeError, ValueError):
            return "(...)"

    def build_graph(self, *args: Any, **kwargs: Any) -> Graph:
        """Trace the body with these arguments and return (and keep) its graph."""
        return self.build_graph_replacing({}, args, kwargs)

    def build_graph_replacing(
        self, replacements: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Graph:
        """Trace the body, calling ``replacements[name]`` wherever the electron ``name``
        is called (``ct.redispatch(..., replace_electrons=...)``)."""
        self.check_arguments(args, kwargs)
        with Builder(self.name, defaults=self.settings(), replacements=replacements) as builder:
            try:
                returned = self.workflow_function(*args, **kwargs)
            except Exception as e:
                raise WorkflowError(
                    f"Building lattice '{self.name}' failed: {type(e).__name__}: {e}"
                ) from e
            graph = builder.graph
            try:
                self._record_result(builder, returned)
            except RecursionError:
                raise WorkflowError(
                    f"Lattice '{self.name}' returns a value nested too deeply to trace; build "
                    "it in an electron and return that electron's output."
                ) from None
        self._check_replaced(replacements, builder.replaced)
        self.transport_graph = graph
        return graph

    @staticmethod
    def _record_result(builder: Builder, returned: Any) -> None:
        """The graph's result: a node's output, a structure holding outputs, or a value."""
        graph = builder.graph
        if isinstance(returned, Output):
            graph.result_node = returned.node_id
        elif holds_output(returned):
            graph.result_node = builder.node_for(returned)
        else:
            graph.result_value = returned

    def _check_replaced(self, replacements: dict[str, Any], replaced: set[str]) -> None:
        """A WorkflowError for names in ``replacements`` that the body never called (a
        typo, or an electron of a sublattice), which would otherwise change nothing."""
        missed = sorted(set(replacements) - replaced)
        if missed:
            raise WorkflowError(
                f"replace_electrons names {', '.join(map(repr, missed))}, which lattice "
                f"'{self.name}' does not call with these inputs; use the names of the "
                "electrons its body calls (an electron of a sublattice cannot be replaced)."
            )

    def draw(self, *args: Any, **kwargs: Any) -> None:
        """Show the graph built with these arguments in the UI's preview page; print its URL."""
        from covalent._client.preview import draw  # drawing needs the client (a layer right)

        draw(self, args, kwargs)


@overload
def lattice(_func: Callable[..., Any], **options: Any) -> Lattice: ...
@overload
def lattice(_func: None = None, **options: Any) -> Callable[[Callable[..., Any]], Lattice]: ...


def lattice(_func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make ``_func`` a lattice: ``@ct.lattice`` or ``@ct.lattice(executor="local")``."""
    if _func is None:
        return lambda function: Lattice(function, **options)
    return Lattice(_func, **options)
