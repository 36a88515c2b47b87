"""Tracing: a lattice's body runs with electrons that record nodes instead of running.

While a :class:`Builder` is current (a context variable), calling an electron adds an
``electron`` node and returns an :class:`Output`, a placeholder for its future value.
Arguments become edges: outputs connect directly, lists/tuples/dicts holding outputs
become collection nodes, anything else becomes a ``:parameter:`` node. Operations on an
``Output`` (indexing, attributes, unpacking, arithmetic) become operation nodes. Using an
output where Python needs a real value now (``if out:``, ``range(out)``, ``for x in out``)
raises, since that control flow needs a sublattice.
"""

from __future__ import annotations

import contextvars
import dis
import functools
import inspect
import operator
import sys
import typing
from collections.abc import Callable, Iterator
from typing import Any

from covalent._errors import WorkflowError
from covalent._workflow import inherit, ops
from covalent._workflow.graph import Edge, Graph, Node, NodeKind

_current: contextvars.ContextVar[Builder | None] = contextvars.ContextVar(
    "covalent_builder", default=None
)

PARAMETER_NAME_LIMIT = 100
_PLAIN = (int, float, str, bool, bytes, type(None))
"""Types whose values are never an output nor hold one."""
CONTROL_FLOW_HINT = (
    "the value of an electron's output is only known when the workflow runs, so control "
    "flow on it (if, while, for, range, len) must happen inside an electron or a "
    "sublattice (ct.electron(some_lattice))"
)


def current_builder() -> Builder | None:
    """The builder of the lattice being traced, or None outside a build."""
    return _current.get()


class Builder:
    """Records the nodes and edges of one lattice build."""

    def __init__(
        self,
        lattice_name: str,
        defaults: dict[str, Any] | None = None,
        replacements: dict[str, Any] | None = None,
    ) -> None:
        """``defaults``: the lattice's settings that its electrons inherit."""
        self.graph = Graph(lattice_name=lattice_name)
        self.defaults = defaults or {}
        self.replacements = replacements or {}
        self.replaced: set[str] = set()
        """The names in ``replacements`` of electrons the body called."""
        self._settings: dict[tuple[int, int], tuple[Any, Any, Any, dict[str, Any]]] = {}
        """An electron's executor and metadata with inherited settings, by the ids of its
        own (the objects are kept, so the ids stay theirs): a fan-out resolves them once."""

    def __enter__(self) -> Builder:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)

    def add_call(
        self,
        name: str,
        kind: str,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        executor: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> Output:
        """Add a node that calls ``function`` with ``args``/``kwargs``; return its output.

        An electron's unset settings are the lattice's (covalent/_workflow/inherit.py).
        """
        if kind == NodeKind.ELECTRON:
            executor, metadata = self._electron_settings(executor, metadata)
        graph = self.graph
        node = graph.add_node(name, kind, function, None, executor, metadata)
        target, edges, node_for = node.id, graph.edges, self.node_for
        for index, value in enumerate(args):
            edges.append(Edge(node_for(value), target, index))
        for key, value in kwargs.items():
            edges.append(Edge(node_for(value), target, None, key))
        return Output(self, node)

    def _electron_settings(
        self, executor: Any, metadata: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        """The executor and the metadata, with inherited settings filled in, of an
        electron whose own are ``executor`` and ``metadata``. The calls of one electron
        share that metadata dict (nothing changes a node's metadata in place), so that
        the manifest also works it out once (covalent/_wire/manifest.py)."""
        key = (id(executor), id(metadata))
        found = self._settings.get(key)
        if found is None or found[0] is not executor or found[1] is not metadata:
            settings = self.inherited({"executor": executor, **(metadata or {})})
            inherited_executor = settings.pop("executor")
            found = (executor, metadata, inherited_executor, {**(metadata or {}), **settings})
            self._settings[key] = found
        return found[2], found[3]

    def inherited(self, own: dict[str, Any]) -> dict[str, Any]:
        """The inherited settings of an electron (or sublattice node) whose own are ``own``."""
        return inherit.resolve(own, self.defaults)

    def node_for(self, value: Any) -> int:
        """The id of the node whose output is ``value``, adding nodes as needed."""
        if type(value) in _PLAIN:  # most arguments of a wide lattice: a parameter
            return self._parameter(value)
        if isinstance(value, Output):
            if value._cv_builder is not self:
                raise WorkflowError(
                    f"The output of {value._cv_label} belongs to another lattice's build; "
                    "pass values between lattices as arguments."
                )
            return value._cv_node.id
        if holds_output(value):
            return self._collection(value)
        return self._parameter(value)

    def _parameter(self, value: Any) -> int:
        text = str(value)
        if len(text) > PARAMETER_NAME_LIMIT:
            text = text[: PARAMETER_NAME_LIMIT - 3] + "..."
        return self.graph.add_node(f":parameter:{text}", NodeKind.PARAMETER, None, value).id

    def _collection(self, value: Any) -> int:
        if isinstance(value, dict):
            if any(isinstance(key, Output) for key in value):
                raise WorkflowError(
                    "An electron's output is used as a dict key; keys must be known while "
                    "building, so build that dict inside an electron."
                )
            keys = tuple(value)
            function: Callable[..., Any] = functools.partial(ops.make_dict, keys)
            items: list[Any] = [value[k] for k in keys]
            name = ":electron_dict:"
            shape: dict[str, Any] | None = (
                {"type": "dict", "keys": list(keys)}
                if all(isinstance(k, str) for k in keys)
                else None
            )
        elif isinstance(value, tuple):
            function, items, name = ops.make_tuple, list(value), ":electron_tuple:"
            shape = {"type": "tuple"}
        elif isinstance(value, (set, frozenset)):
            function, items, name = ops.make_set, list(value), ":electron_set:"
            shape = {"type": "set"}
        else:
            function, items, name = ops.make_list, list(value), ":electron_list:"
            shape = {"type": "list"}
        metadata = {"collection": shape} if shape else None
        return self.add_call(
            name, NodeKind.COLLECTION, function, tuple(items), {}, metadata=metadata
        )._cv_node.id


def wait(child: Output, parents: Output | list[Output] | tuple[Output, ...]) -> Output:
    """``ct.wait(child, parents)``: run ``child`` only after ``parents``; returns ``child``."""
    if not isinstance(child, Output):
        raise WorkflowError(
            f"ct.wait needs the output of an electron called inside a lattice, got {child!r}."
        )
    return child.wait_for(parents)


def holds_output(value: Any) -> bool:
    """Whether ``value`` is, or is a list/tuple/dict/set that holds, an electron output."""
    if isinstance(value, Output):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(holds_output(v) for v in value)
    if isinstance(value, dict):
        return any(holds_output(v) for v in value.values()) or any(
            isinstance(k, Output) for k in value
        )
    return False


def _unpack_count(output: Output) -> int:
    """How many values ``a, b = out`` wants: from the return annotation, else the bytecode."""
    node = output._cv_target  # a pending output is no electron's: no annotation to read
    count = _annotated_length(node) if node is not None else None
    if count is not None:
        return count
    frame = sys._getframe(2)
    for instruction in dis.get_instructions(frame.f_code):
        if instruction.offset == frame.f_lasti:
            if instruction.opname == "UNPACK_SEQUENCE":
                return int(instruction.argval)
            break
    raise WorkflowError(
        f"The output of {output._cv_label} was iterated (a for loop, list(), tuple(), dict(), "
        f"set() or unpacking of unknown length) inside the lattice "
        f"'{output._cv_builder.graph.lattice_name}': {CONTROL_FLOW_HINT}. To unpack a fixed "
        "number of values, write `a, b = out` or annotate the electron's return type as "
        "tuple[...]."
    )


def _annotated_length(node: Node) -> int | None:
    function = node.function
    if node.kind != NodeKind.ELECTRON or function is None:
        return None
    try:
        annotation = typing.get_type_hints(function).get("return")
    except Exception:
        annotation = inspect.signature(function).return_annotation
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if args and Ellipsis not in args:
            return len(args)
    return None


def _binary(op: Callable[[Any, Any], Any], name: str, reflected: bool = False) -> Any:
    def method(self: Output, other: Any) -> Output:
        args = (other, self) if reflected else (self, other)
        return self._cv_builder.add_call(f":{name}:", NodeKind.OPERATION, op, args, {})

    method.__name__ = f"__{'r' if reflected else ''}{name}__"
    return method


def _unary(op: Callable[[Any], Any], name: str) -> Any:
    def method(self: Output) -> Output:
        return self._cv_builder.add_call(f":{name}:", NodeKind.OPERATION, op, (self,), {})

    method.__name__ = f"__{name}__"
    return method


def _refuse(what: str) -> Any:
    def method(self: Output, *args: Any) -> Any:
        raise WorkflowError(
            f"The output of {self._cv_label} was used {what} inside the lattice "
            f"'{self._cv_builder.graph.lattice_name}': {CONTROL_FLOW_HINT}."
        )

    return method


class Output:
    """The future output of a node, returned by an electron called during a build.

    Some outputs are *pending*: ``out.attr`` and the values a method call gives back
    (``out.keys()``) add their node only when first used, so that calling a method adds
    one node (``:method:keys``), not also one that fetches the bound method.
    """

    __slots__ = ("_cv_builder", "_cv_target", "_cv_make", "_cv_attribute", "_cv_text")
    _cv_builder: Builder
    _cv_target: Node | None
    _cv_make: Callable[[], Node] | None
    _cv_attribute: tuple[Output, str] | None
    _cv_text: str

    def __init__(
        self,
        builder: Builder,
        node: Node | None,
        make: Callable[[], Node] | None = None,
        attribute: tuple[Output, str] | None = None,
        text: str = "",
    ) -> None:
        # the slots' own setters (__setattr__ refuses): twice as fast as object.__setattr__
        _set_builder(self, builder)
        _set_target(self, node)
        _set_make(self, make)
        _set_attribute(self, attribute)
        _set_text(self, text)

    @property
    def _cv_node(self) -> Node:
        """The node whose output this is (added now if this output is pending)."""
        node = self._cv_target
        if node is None:
            assert self._cv_make is not None
            node = self._cv_make()
            self._cv_bind(node)
        return node

    def _cv_bind(self, node: Node | None, make: Callable[[], Node] | None = None) -> None:
        _set_target(self, node)
        _set_make(self, make)

    @property
    def _cv_label(self) -> str:
        """How errors name this output: ``make_dict(0)``, ``make_dict(0).keys()``."""
        node = self._cv_target
        return self._cv_text or (f"{node.name}({node.id})" if node is not None else "")

    @property
    def node_id(self) -> int:
        return self._cv_node.id

    def __repr__(self) -> str:
        return f"<output of {self._cv_label}>"

    def wait_for(self, parents: Output | list[Output] | tuple[Output, ...]) -> Output:
        """Run this node only after ``parents`` finish, without taking their outputs."""
        for parent in parents if isinstance(parents, (list, tuple)) else [parents]:
            if not isinstance(parent, Output) or parent._cv_builder is not self._cv_builder:
                raise WorkflowError(
                    f"{self._cv_label} can only wait for outputs of electrons in the same "
                    f"lattice, not {parent!r}."
                )
            self._cv_builder.graph.edges.append(Edge(parent._cv_node.id, self._cv_node.id))
        return self

    def __getitem__(self, key: Any) -> Output:
        function = functools.partial(ops.getitem, key)
        return self._cv_builder.add_call(":getitem:", NodeKind.OPERATION, function, (self,), {})

    def __getattr__(self, name: str) -> Output:
        if name.startswith("__"):
            raise AttributeError(name)
        builder = self._cv_builder
        function = functools.partial(ops.getattribute, name)

        def make() -> Node:
            return builder.add_call(":getattr:", NodeKind.OPERATION, function, (self,), {})._cv_node

        return Output(builder, None, make, (self, name), f"{self._cv_label}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Output:
        """``out.method(...)`` becomes a ``:method:<name>`` node that calls it at run time;
        later uses of ``out`` see the object as the method left it (``y.append(x)``).
        Calling an output that is itself callable becomes a ``:call:`` node."""
        builder = self._cv_builder
        if self._cv_attribute is None:
            return builder.add_call(":call:", NodeKind.OPERATION, ops.call, (self, *args), kwargs)
        receiver, name = self._cv_attribute
        function = functools.partial(ops.call_method, name)
        call = builder.add_call(
            f":method:{name}", NodeKind.OPERATION, function, (receiver, *args), kwargs
        )
        node = call._cv_node
        receiver._cv_bind(None, _picking(builder, node, 1))
        _set_attribute(receiver, None)
        _set_text(receiver, f"{self._cv_text}(...) (its receiver)")
        return Output(builder, None, _picking(builder, node, 0), text=f"{self._cv_text}(...)")

    def __setattr__(self, name: str, value: Any) -> None:
        raise WorkflowError(
            f"Cannot set attribute '{name}' on the output of {self._cv_label} while "
            "building; change it inside an electron."
        )

    def __iter__(self) -> Iterator[Output]:
        return iter([self[i] for i in range(_unpack_count(self))])

    def __reduce__(self) -> Any:
        raise WorkflowError(
            f"The output of {self._cv_label} is held inside an object covalent cannot "
            "look into; pass it to electrons directly or in a list, tuple or dict."
        )

    __hash__ = object.__hash__
    __bool__ = _refuse("as a boolean (in an if, while, and/or)")

    def __len__(self) -> int:
        count = _annotated_length(self._cv_node)
        if count is None:
            _refuse("with len()")(self)
        return count  # type: ignore[return-value]

    __index__ = _refuse("as an integer (as in range())")
    __int__ = _refuse("as an int (int())")
    __float__ = _refuse("as a float (float())")
    __complex__ = _refuse("as a complex number (complex())")
    __contains__ = _refuse("with `in`")

    __add__ = _binary(operator.add, "add")
    __radd__ = _binary(operator.add, "add", reflected=True)
    __sub__ = _binary(operator.sub, "sub")
    __rsub__ = _binary(operator.sub, "sub", reflected=True)
    __mul__ = _binary(operator.mul, "mul")
    __rmul__ = _binary(operator.mul, "mul", reflected=True)
    __truediv__ = _binary(operator.truediv, "truediv")
    __rtruediv__ = _binary(operator.truediv, "truediv", reflected=True)
    __floordiv__ = _binary(operator.floordiv, "floordiv")
    __rfloordiv__ = _binary(operator.floordiv, "floordiv", reflected=True)
    __mod__ = _binary(operator.mod, "mod")
    __rmod__ = _binary(operator.mod, "mod", reflected=True)
    __pow__ = _binary(operator.pow, "pow")
    __rpow__ = _binary(operator.pow, "pow", reflected=True)
    __matmul__ = _binary(operator.matmul, "matmul")
    __rmatmul__ = _binary(operator.matmul, "matmul", reflected=True)
    __and__ = _binary(operator.and_, "and")
    __rand__ = _binary(operator.and_, "and", reflected=True)
    __or__ = _binary(operator.or_, "or")
    __ror__ = _binary(operator.or_, "or", reflected=True)
    __xor__ = _binary(operator.xor, "xor")
    __rxor__ = _binary(operator.xor, "xor", reflected=True)
    __eq__ = _binary(operator.eq, "eq")
    __ne__ = _binary(operator.ne, "ne")
    __lt__ = _binary(operator.lt, "lt")
    __le__ = _binary(operator.le, "le")
    __gt__ = _binary(operator.gt, "gt")
    __ge__ = _binary(operator.ge, "ge")
    __neg__ = _unary(operator.neg, "neg")
    __pos__ = _unary(operator.pos, "pos")
    __abs__ = _unary(operator.abs, "abs")
    __invert__ = _unary(operator.invert, "invert")


_set_builder, _set_target, _set_make, _set_attribute, _set_text = (
    vars(Output)[name].__set__ for name in Output.__slots__
)


def _picking(builder: Builder, node: Node, index: int) -> Callable[[], Node]:
    """Adds, when first needed, the ``:getitem:`` node taking item ``index`` of ``node``'s
    output (a method node gives back its return value and its receiver)."""

    def make() -> Node:
        source = Output(builder, node)
        function = functools.partial(ops.getitem, index)
        return builder.add_call(":getitem:", NodeKind.OPERATION, function, (source,), {})._cv_node

    return make
