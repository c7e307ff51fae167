"""The API reference examples of hyperparameter 0.5 run unchanged against assay_scope.

Each block below is an example of the reference library's documentation, with ``param_scope``
and ``auto_param`` now imported from assay_scope; doctest compares the printed output exactly.
The private ``_HyperParameter`` examples of the reference are written with ``param_scope``,
the public class that users see.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from typing import Any

import assay_scope
import pytest
from assay_scope import auto_param, param_scope


def _repr_dict(d: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(d.items())


EXAMPLES = {
    "create and read": """
>>> ps = param_scope(a="a", b="b")           # create from call arguments
>>> ps = param_scope(**{"a": "a", "b": "b"}) # create from a dict
>>> ps.a() # read parameter
'a'
>>> ps.c("c")  # read parameter with default value if missing
'c'
>>> ps.c | "c" # another way for reading missing parameters
'c'
""",
    "context scope": """
>>> with param_scope(**{"a": "a"}) as ps:
...     print(ps.a())
a
""",
    "read in a function": """
>>> def foo():
...    with param_scope() as ps:
...        return ps.a()
>>> with param_scope(**{"a": "a", "b": "b"}) as ps:
...     foo() # foo should get param_scope using a with statement
'a'
""",
    "nested scopes": """
>>> with param_scope.empty(**{'a': 1, 'b': 2}) as ps:
...     _repr_dict(ps.storage().storage())
...     with param_scope(**{'b': 3}) as ps:
...         _repr_dict(ps.storage().storage())
...     with param_scope() as ps:
...         _repr_dict(ps.storage().storage())
[('a', 1), ('b', 2)]
[('a', 1), ('b', 3)]
[('a', 1), ('b', 2)]
""",
    "object-style keys": """
>>> with param_scope(**{"a.b.c": [1,2]}) as ps:
...     ps.a.b.c()
[1, 2]
""",
    "class-level access": """
>>> with param_scope(x=1):
...     param_scope.x(2) # read parameter
...     param_scope.y(2) # read a missing parameter with default value
...     param_scope.y | 2
...     param_scope.z = 3
...     param_scope.z | 0
1
2
2
3
""",
    "to dict": """
>>> ps = param_scope.empty(a=1, b=2)
>>> _repr_dict(dict(ps))
[('a', 1), ('b', 2)]
""",
    "__enter__": """
>>> with param_scope():
...     param_scope.p = "origin"
...     with param_scope(**{"p": "origin"}) as ps:
...         ps.storage().storage()      # outer scope
...         with param_scope() as ps:   # unmodified scope
...             ps.storage().storage()  # inner scope
...         with param_scope(**{"p": "modified"}) as ps: # modified scope
...             ps.storage().storage()  # inner scope with modified params
...         _ = param_scope(**{"p": "modified"}) # not used in with ctx
...         with param_scope() as ps:   # unmodified scope
...             ps.storage().storage()  # inner scope
{'p': 'origin'}
{'p': 'origin'}
{'p': 'modified'}
{'p': 'origin'}
""",
    "empty": """
>>> with param_scope(a="not empty") as ps: # start a new param_scope `a` = 'not empty'
...     param_scope.a("empty")             # read parameter `a`
...     with param_scope.empty() as ps2:   # parameter `a` is cleared in ps2
...         param_scope.a("empty")         # read parameter `a` = 'empty'
'not empty'
'empty'
""",
    "current": """
>>> with param_scope(a=1) as ps:
...     param_scope.current().a("empty") # read `a` from current `param_scope`
'1'

>>> with param_scope() as ps1:
...     with param_scope(a=1) as ps2:
...         param_scope.current().a = 2  # set parameter `a` = 2
...         param_scope.a("empty")       # read `a` in `ps2`
...     param_scope.a("empty")           # read `a` in `ps1`, where `a` is not set
'2'
'empty'
""",
    "auto_param": """
>>> @auto_param
... def foo(a, b=2, c='c', d=None):
...     print(a, b, c, d)

>>> foo(1)
1 2 c None

>>> with param_scope('foo.b=3'):
...     foo(2)
2 3 c None

classes are also supported:
>>> @auto_param
... class foo:
...     def __init__(self, a, b=2, c='c', d=None):
...         print(a, b, c, d)

>>> obj = foo(1)
1 2 c None

>>> with param_scope('foo.b=3'):
...     obj = foo(2)
2 3 c None

>>> @auto_param('myns.foo.params')
... def foo(a, b=2, c='c', d=None):
...     print(a, b, c, d)
>>> foo(1)
1 2 c None

>>> with param_scope('myns.foo.params.b=3'):
...     foo(2)
2 3 c None

>>> with param_scope('myns.foo.params.b=3'):
...     param_scope.myns.foo.params.b = 4
...     foo(2)
2 4 c None
""",
    "accessor": """
>>> hp = param_scope.empty()
>>> hp.param1(1)
1
>>> if not hp.param1:
...     print("hp.param1 is missing")
hp.param1 is missing
>>> hp.param1 | 1
1
""",
    "hyperparameter object": """
>>> hp = param_scope(param1=1, obj1={"prop1": "a"})
>>> hp.param1()
1
>>> hp.obj1.prop1()
'a'
>>> hp["param1"]
1
>>> hp["obj1.prop1"]
'a'
>>> hp["param1"] = 2
>>> hp["obj1.prop1"] = "b"
>>> hp["param1"]
2
>>> hp["obj1.prop1"]
'b'
>>> hp["param2"] = 2
>>> hp["obj2.prop2"] = "b"
>>> hp["param2"]
2
>>> hp["obj2.prop2"]
'b'
>>> hp = param_scope.empty()
>>> hp.param1 = 1
>>> hp.obj1.prop1 = 'a'
>>> _repr_dict(hp.storage().storage())
[('obj1.prop1', 'a'), ('param1', 1)]
""",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_reference_example_gives_identical_output(name: str) -> None:
    globs = {"param_scope": param_scope, "auto_param": auto_param, "_repr_dict": _repr_dict}
    test = doctest.DocTestParser().get_doctest(EXAMPLES[name], globs, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)
    assert runner.tries > 0


def _modules() -> list[str]:
    return sorted(f"assay_scope.{info.name}" for info in pkgutil.iter_modules(assay_scope.__path__))


@pytest.mark.parametrize("module", _modules())
def test_our_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
