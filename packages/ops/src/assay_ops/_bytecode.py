"""References read out of bytecode: the globals, attributes and imports a function's code uses.

``scan`` reads a code object and the code nested in it (comprehensions, lambdas, inner
functions) instruction by instruction: the global names it loads with the attributes read
from them (``helpers.scale``), the imports in its body with the names taken from them, and
the globals it assigns with ``global``. ``code_parts`` writes out what a code object does
without positions: the fallback hashed when a function's source cannot be found.
"""

from __future__ import annotations

import dis
import sys
import types
from typing import Any

from ._caches import remember
from ._hashing import constant

_OPS = dis.opmap


def _op(name: str) -> int:
    code = _OPS.get(name, -1)
    return code if code < 256 else -1  # pseudo-instructions never appear in co_code


_CACHE = _op("CACHE") if sys.version_info >= (3, 11) else -1
_EXTENDED_ARG = _op("EXTENDED_ARG")
_LOAD_GLOBAL = _op("LOAD_GLOBAL")
_GLOBAL_SHIFT = 1 if sys.version_info >= (3, 11) else 0
_LOAD_ATTR = _op("LOAD_ATTR")
_ATTR_SHIFT = 1 if sys.version_info >= (3, 12) else 0
_LOAD_METHOD = _op("LOAD_METHOD")
_LOAD_NAME = _op("LOAD_NAME")
_STORE_NAME = _op("STORE_NAME")
_STORE_GLOBAL = _op("STORE_GLOBAL")
_IMPORT_NAME = _op("IMPORT_NAME")
_IMPORT_FROM = _op("IMPORT_FROM")
_LOAD_CONST = _op("LOAD_CONST")
_LOAD_SMALL_INT = _op("LOAD_SMALL_INT")
_STORES = {_op("STORE_FAST"): "fast", _op("STORE_DEREF"): "deref", _STORE_NAME: "name"}
_STORES.pop(-1, None)
_SHUFFLES = {_op(n) for n in ("SWAP", "POP_TOP", "ROT_TWO", "COPY")} - {-1}
# local loads: (slot family, whether two slots are packed in the argument)
_LOADS: dict[int, tuple[str, bool]] = {
    _op(name): (family, packed)
    for name, family, packed in (
        ("LOAD_FAST", "fast", False),
        ("LOAD_FAST_CHECK", "fast", False),
        ("LOAD_FAST_BORROW", "fast", False),
        ("LOAD_FAST_LOAD_FAST", "fast", True),
        ("LOAD_FAST_BORROW_LOAD_FAST_BORROW", "fast", True),
        ("LOAD_DEREF", "deref", False),
        ("LOAD_NAME", "name", False),
    )
    if _op(name) != -1
}

# A reference found in code: ("g", name, attribute chain) for a global, or
# ("i", level, module, path) for an import in the body (path None: a plain import whose
# uses are not followed; () the import alone).
Ref = tuple[Any, ...]
Scan = tuple[tuple[Ref, ...], frozenset[str]]
_Instructions = list[tuple[int, int]]
# A local slot that holds an imported module, (slot family, slot) ->
# [level, module, path, used, plain import]: the attributes read from it are references.
_Modules = dict[tuple[str, int], list[Any]]

SCANS: dict[int, tuple[types.CodeType, Scan]] = {}


def scan(code: types.CodeType) -> Scan:
    """Return the references of ``code`` and the code nested in it, and the globals it sets."""
    hit = SCANS.get(id(code))
    if hit is not None and hit[0] is code:
        return hit[1]
    refs: list[Ref] = []
    stores: set[str] = set()
    todo = [code]
    while todo:
        current = todo.pop()
        _scan_one(current, refs, stores)
        todo.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    result = (tuple(refs), frozenset(stores))
    remember(SCANS, id(code), (code, result))
    return result


def _instructions(code: types.CodeType) -> _Instructions:
    """Return the (opcode, argument) pairs of ``code``, extended arguments applied."""
    raw = code.co_code
    out = []
    extended = 0
    for op, arg in zip(raw[0::2], raw[1::2], strict=True):
        if op == _CACHE:
            continue
        if op == _EXTENDED_ARG:
            extended = (extended | arg) << 8
            continue
        out.append((op, extended | arg))
        extended = 0
    return out


def _chain(ins: _Instructions, at: int, names: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
    """Return the attribute names loaded right after position ``at``, and the position after."""
    chain = []
    while at < len(ins):
        op, arg = ins[at]
        if op == _LOAD_ATTR:
            chain.append(names[arg >> _ATTR_SHIFT])
        elif op == _LOAD_METHOD:
            chain.append(names[arg])
        else:
            break
        at += 1
    return tuple(chain), at


def _constant_arg(code: types.CodeType, ins: tuple[int, int]) -> Any:
    op, arg = ins
    if op == _LOAD_CONST:
        return code.co_consts[arg]
    if op == _LOAD_SMALL_INT:
        return arg
    return None


def _scan_one(code: types.CodeType, refs: list[Ref], stores: set[str]) -> None:
    """Append the references of ``code`` alone to ``refs``, the globals it sets to ``stores``."""
    names = code.co_names
    if not names:
        return  # no global, attribute or import in this code
    ins = _instructions(code)
    class_locals = {names[arg] for op, arg in ins if op == _STORE_NAME}
    modules: _Modules = {}
    at, end = 0, len(ins)
    while at < end:
        op, arg = ins[at]
        if op == _LOAD_GLOBAL or (op == _LOAD_NAME and names[arg] not in class_locals):
            name = names[arg >> _GLOBAL_SHIFT] if op == _LOAD_GLOBAL else names[arg]
            chain, at = _chain(ins, at + 1, names)
            refs.append(("g", name, chain))
        elif op == _IMPORT_NAME:
            at = _scan_import(code, ins, at, refs, modules)
        elif modules and op in _LOADS:  # (no module in a local: nothing to read, the usual case)
            at = _scan_module_use(ins, at, names, refs, modules)
        else:
            if op == _STORE_GLOBAL:
                stores.add(names[arg])
            at += 1
    refs.extend(("i", e[0], e[1], None) for e in modules.values() if e[4] and not e[3])


def _scan_module_use(
    ins: _Instructions, at: int, names: tuple[str, ...], refs: list[Ref], modules: _Modules
) -> int:
    """Read the load of a local at ``at``: the attributes read from a module it holds."""
    op, arg = ins[at]
    family, packed = _LOADS[op]
    entry = modules.get((family, arg & 15 if packed else arg))
    if entry is None:
        return at + 1
    chain, at = _chain(ins, at + 1, names)
    if chain:
        refs.append(("i", entry[0], entry[1], entry[2] + chain))
        entry[3] = True
    return at


def _scan_import(
    code: types.CodeType, ins: _Instructions, at: int, refs: list[Ref], modules: _Modules
) -> int:
    """Read the import at ``at``; return the position after it."""
    module = code.co_names[ins[at][1]]
    level = _constant_arg(code, ins[at - 2]) if at >= 2 else 0
    fromlist = _constant_arg(code, ins[at - 1]) if at >= 1 else None
    level = level if isinstance(level, int) else 0
    refs.append(("i", level, module, ()))
    if not fromlist:  # import a.b (binds a) or import a.b as c (binds a.b)
        return _bind_module(ins, at + 1, level, module, modules)
    return _bind_names(code.co_names, ins, at + 1, level, module, refs, modules)


def _bind_module(ins: _Instructions, at: int, level: int, module: str, modules: _Modules) -> int:
    """Read where ``import module`` stores the module from ``at``; return the position after."""
    attributes = False
    while at < len(ins) and ins[at][0] not in _STORES:
        if ins[at][0] == _IMPORT_FROM:
            attributes = True
        elif ins[at][0] not in _SHUFFLES:
            return at
        at += 1
    if at < len(ins):
        op, arg = ins[at]
        bound = module if attributes else module.partition(".")[0]
        modules[(_STORES[op], arg)] = [level, bound, (), False, True]
        at += 1
    return at


def _bind_names(
    names: tuple[str, ...],
    ins: _Instructions,
    at: int,
    level: int,
    module: str,
    refs: list[Ref],
    modules: _Modules,
) -> int:
    """Read the names ``from module import ...`` takes from ``at``; return the position after."""
    while at < len(ins) and ins[at][0] == _IMPORT_FROM:
        name = names[ins[at][1]]
        refs.append(("i", level, module, (name,)))
        at += 1
        if at < len(ins) and ins[at][0] in _STORES:
            op, arg = ins[at]
            modules[(_STORES[op], arg)] = [level, module, (name,), True, False]
            at += 1
    return at


def code_parts(code: types.CodeType, out: list[str]) -> None:
    """Append what ``code`` does, without positions (the fallback without source)."""
    out.extend((code.co_name, code.co_code.hex(), repr(code.co_names), repr(code.co_varnames)))
    out.extend((repr(code.co_freevars), repr(code.co_cellvars), str(code.co_argcount)))
    out.extend((str(code.co_kwonlyargcount), str(code.co_posonlyargcount)))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out.append("<code>")
            code_parts(const, out)
        else:
            out.append(constant(const, exact=False) or type(const).__qualname__)
