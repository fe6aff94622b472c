"""The program that runs assert-style tests (HumanEval, MBPP) inside the sandbox.

The runner copies this file into the run's working folder and starts ``python3 -I harness.py`` there, with
a JSON config on stdin: ``{"nonce", "code", "setup", "tests", "entry_point", "stop_on_first_failure"}``. It
uses the standard library only (it runs under the sandbox's Python, not mirrorl's) and needs Python 3.10+.

The submission runs in this same interpreter, so each guard below raises the cost of cheating rather
than making it impossible:

1. **Result record.** The verdict comes from one record written to stdout after the last test and
   framed by a random nonce that only this program read (from stdin, then replaced by /dev/null). Exiting
   early (``sys.exit(0)``, ``os._exit(0)``, a signal) leaves no record and the run fails; a printed
   "all tests passed" line does not know the nonce.
2. **Plain data.** Test code calls submission functions through wrappers that copy return values into
   exact built-in types (int, float, str, list, dict, ...; iterators are wrapped item by item); anything
   else is refused. Every comparison and truth test in the test code is rewritten to compare such copies,
   so objects whose ``__eq__`` or ``__bool__`` always says yes never pass.
3. **Builtins.** This program and the test code look builtins up in private copies taken before the
   submission ran; a submission global that shadows a builtin (``def abs(x): return 0``) is invisible to
   the tests unless the request names it as ``entry_point`` (MBPP task 126 defines ``sum``).
4. **Tampering.** After the tests, the builtins module and the modules the tests import must still hold
   the same objects as before the submission ran, or the run fails.
5. **Introspection.** An audit hook refuses what would reach the nonce or this program's objects: frame
   and garbage-collector introspection (``sys._getframe``, ``tb_frame``, ``gc.get_referrers``), tracing,
   ``ctypes``, replacing a function's ``__code__``, reading ``/proc/*/mem`` and starting other programs.
   ``sys._getframe`` raises ValueError, which ``collections.namedtuple``, ``typing`` and ``logging``
   already tolerate.

Not covered: a submission that patches a module and restores it before the tests end; patches to
methods of classes (e.g. ``fractions.Fraction.__eq__``); arithmetic in test code on instances of
submission classes (only function results are copied); test code that hands its own functions to the
submission (their ``__globals__`` lead to the test namespace); ways into the interpreter that CPython's
audit hooks do not see.
"""

import builtins as _builtins_module

# Every function below is created after this line and looks builtins up in this private copy, so a
# submission that patches the builtins module cannot change what the harness does.
__builtins__ = dict(_builtins_module.__dict__)

import ast  # noqa: E402
import json  # noqa: E402
import operator  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

_write, _exit, _clock, _devnull, _fsdecode = os.write, os._exit, time.perf_counter, os.devnull, os.fsdecode
_SCALARS = (bool, int, float, complex, str, bytes, type(None))
_OPS = {"Eq": operator.eq, "NotEq": operator.ne, "Lt": operator.lt, "LtE": operator.le, "Gt": operator.gt,
        "GtE": operator.ge, "In": lambda a, b: a in b, "NotIn": lambda a, b: a not in b}
_MAX_DEPTH = 200
_MESSAGE_CHARS = 500


class UnsafeValue(Exception):
    """A value the tests cannot compare safely: not plain data."""


def plain(x, depth=0):
    """A copy of ``x`` made of exact built-in types only; raises UnsafeValue for anything else.

    Types are read with ``type()``, which an object cannot fake; subclasses of built-in types
    (``Counter``, ``namedtuple``, an ``int`` subclass) are read through the base type's own methods,
    never through methods the subclass could override.
    """
    kind = type(x)
    if kind in _SCALARS:
        return x
    if depth > _MAX_DEPTH:
        raise UnsafeValue("a value nested too deeply (or containing itself)")
    if issubclass(kind, int):
        return int.__int__(x)
    if issubclass(kind, float):
        return float.__float__(x)
    if issubclass(kind, str):
        return str.__str__(x)
    if issubclass(kind, bytes):
        return bytes.__bytes__(x)
    if issubclass(kind, list):
        return [plain(v, depth + 1) for v in list.__iter__(x)]
    if issubclass(kind, tuple):
        return tuple([plain(v, depth + 1) for v in tuple.__iter__(x)])
    if issubclass(kind, dict):
        return {plain(k, depth + 1): plain(v, depth + 1) for k, v in dict.items(x)}
    if issubclass(kind, frozenset):
        return frozenset([plain(v, depth + 1) for v in frozenset.__iter__(x)])
    if issubclass(kind, set):
        return {plain(v, depth + 1) for v in set.__iter__(x)}
    if issubclass(kind, complex):
        return complex.__complex__(x)
    raise UnsafeValue(f"a value of type {type.__getattribute__(kind, '__name__')}, not plain data")


def compare(ops, operands, lazy=False):
    """``operands[0] ops[0] operands[1] ...`` on plain copies; ``lazy`` operands are thunks (chains)."""
    left = operands[0]() if lazy else operands[0]
    for i, op in enumerate(ops):
        right = operands[i + 1]() if lazy else operands[i + 1]
        if op == "Is":
            ok = left is right
        elif op == "IsNot":
            ok = left is not right
        else:
            ok = _OPS[op](plain(left), plain(right))
        if not ok:
            return False
        left = right
    return True


def guard_value(value):
    """What test code gets back from a submission function: a plain copy or a guarded iterator."""
    try:
        return plain(value)
    except UnsafeValue:
        if hasattr(type(value), "__next__"):
            return (guard_value(item) for item in value)
        raise


def guard_callable(function):
    """``function`` as test code sees it: called as is, its result passed through `guard_value`."""
    def guarded(*args, **kwargs):
        return guard_value(function(*args, **kwargs))
    return guarded


class _Guard(ast.NodeTransformer):
    """Rewrites test code: comparisons and truth tests see plain copies; bare asserts carry their source."""

    def __init__(self, source):
        self.source = source

    @staticmethod
    def _call(name, *args):
        return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])

    def _truth(self, node):
        return self._call("_sandbox_plain", node)

    def visit_Compare(self, node):
        self.generic_visit(node)
        ops = ast.List(elts=[ast.Constant(type(op).__name__) for op in node.ops], ctx=ast.Load())
        operands = [node.left, *node.comparators]
        if len(node.ops) == 1:
            return ast.copy_location(self._call("_sandbox_compare", ops, ast.List(elts=operands, ctx=ast.Load())),
                                     node)
        no_args = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
        thunks = ast.List(elts=[ast.Lambda(args=no_args, body=e) for e in operands], ctx=ast.Load())
        return ast.copy_location(self._call("_sandbox_compare", ops, thunks, ast.Constant(True)), node)

    def visit_Assert(self, node):
        self.generic_visit(node)
        if node.msg is None:
            node.msg = ast.Constant(ast.get_source_segment(self.source, node) or "assert")
        node.test = self._truth(node.test)
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        node.values = [self._truth(v) for v in node.values]
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            node.operand = self._truth(node.operand)
        return node

    def _visit_test(self, node):
        self.generic_visit(node)
        node.test = self._truth(node.test)
        return node

    visit_If = visit_While = visit_IfExp = _visit_test


def compile_test(source, name):
    tree = _Guard(source).visit(ast.parse(source, name))
    return compile(ast.fix_missing_locations(tree), name, "exec")


def imported_modules(sources):
    """Names of the modules that test code imports (pre-imported and then watched for tampering)."""
    names = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return names


def snapshot(modules):
    """``(module name, attribute) -> object`` for every attribute of ``modules``, to find patches later."""
    return {(name, key): value for name, module in modules.items() for key, value in list(vars(module).items())}


def tampered(before, modules):
    """Why the submission left ``modules`` different from ``before``; "" when it did not."""
    for name, module in modules.items():
        if name != "builtins" and sys.modules.get(name) is not module:
            return f"the submission replaced the module {name}"
    for (name, key), value in before.items():
        if vars(modules[name]).get(key, before) is not value:
            return f"the submission changed {name}.{key}"
    return ""


_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_INTROSPECTION = frozenset({"sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace",
                            "sys.setprofile", "gc.get_objects", "gc.get_referrers", "gc.get_referents"})
_FORBIDDEN = frozenset({"sys.addaudithook", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.forkpty",
                        "subprocess.Popen", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata"})
_MEMORY_FILES = frozenset({"mem", "map_files", "pagemap"})


def audit(event, args):
    """Refuses operations that would let the submission reach the harness (see the module docstring)."""
    if event in _INTROSPECTION or (event == "object.__getattr__" and args[1] in _FRAME_ATTRS):
        raise ValueError(f"{event} is not available in the sandbox")
    if event in _FORBIDDEN or (event == "object.__setattr__" and args[1] == "__code__") or (
            event == "import" and args[0] in ("ctypes", "_ctypes")):
        raise PermissionError(f"{event} is not allowed in the sandbox")
    if event == "open" and isinstance(args[0], (str, bytes)):
        path = _fsdecode(args[0]).rstrip("/")
        if path.rsplit("/", 1)[-1] in _MEMORY_FILES or "/map_files/" in path:
            raise PermissionError("reading process memory is not allowed in the sandbox")


def describe(error):
    """``"Type: message"`` of an exception, as an exact str, without trusting its methods much."""
    try:
        detail = str(error)
        text = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = type.__getattribute__(type(error), "__name__")
    text = str.__str__(text)
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "..."


def status_of(error):
    if isinstance(error, (AssertionError, UnsafeValue)):
        return "failed"
    if isinstance(error, MemoryError):
        return "memory"
    if isinstance(error, OSError) and error.errno == 27:  # EFBIG: over the file-size limit
        return "output"
    return "error"


def main():
    config = json.loads(sys.stdin.buffer.read())
    null = os.open(_devnull, os.O_RDONLY)
    os.dup2(null, 0)  # stdin carried the nonce; the submission reads an empty stdin
    os.close(null)
    nonce = config.pop("nonce").encode()
    stdout = sys.stdout
    code, setup, tests = config["code"], config.get("setup") or "", config["tests"]
    stop_early, entry_point = config.get("stop_on_first_failure", True), config.get("entry_point")

    def finish(stage, message, results, problem=""):
        try:
            stdout.flush()
        except BaseException:  # noqa: BLE001
            pass
        record = repr((stage, str.__str__(message), results, problem))
        _write(1, b"\n" + nonce + b" " + record.encode("utf-8", "backslashreplace") + b"\n")
        _exit(0)

    try:
        compiled_tests = [compile_test(t, f"test_{i}.py") for i, t in enumerate(tests)]
        compiled_setup = compile_test(setup, "test_setup.py")
        imports = imported_modules([setup, *tests])
    except SyntaxError as error:
        finish("bad_test", describe(error), [])
    watched = {name: sys.modules[name] for name in sorted(imports - {"sys"}) if _try_import(name)}
    watched["builtins"] = _builtins_module
    before = snapshot(watched)
    test_builtins = dict(_builtins_module.__dict__)
    module = types.ModuleType("solution")  # its `if __name__ == "__main__":` block does not run
    module.__file__ = "solution.py"
    sys.modules["solution"] = sys.modules["__main__"] = module  # the harness's own module is out of reach
    sys.argv[:] = ["solution.py"]
    sys.addaudithook(audit)
    try:
        exec(compile(code, "solution.py", "exec"), module.__dict__)
    except BaseException as error:  # noqa: BLE001 - SystemExit included: exiting early is a failure
        finish(status_of(error), describe(error), [])
    namespace = {name: (value if issubclass(type(value), (type, types.ModuleType)) or not callable(value)
                        else guard_callable(value))
                 for name, value in list(module.__dict__.items())
                 if name == entry_point or name not in test_builtins}
    namespace.update(__builtins__=test_builtins, __name__="__main__", _sandbox_compare=compare,
                     _sandbox_plain=plain)
    try:
        exec(compiled_setup, namespace)
    except BaseException as error:  # noqa: BLE001
        finish(status_of(error), describe(error), [])
    results = []
    for compiled in compiled_tests:
        start = _clock()
        try:
            exec(compiled, namespace)
            outcome = ("passed", "")
        except BaseException as error:  # noqa: BLE001
            outcome = (status_of(error), describe(error))
        results.append((outcome[0], outcome[1], round(_clock() - start, 6)))
        if outcome[0] != "passed" and stop_early:
            break
    finish("ran", "", results, tampered(before, watched))


def _try_import(name):
    try:
        __import__(name)
        return True
    except BaseException:  # noqa: BLE001 - the test will report the failed import itself
        return False


if __name__ == "__main__":
    main()
