"""Attacks on the sandbox, one per guarantee: each gets the right verdict within its limit, nothing it started
survives, and the service keeps serving. Run with -s to print the table (case -> verdict -> seconds).

Most cases are written so that the test passes only if the attack worked (``assert f() == "connected"``):
a sandbox that stops the attack answers ``wrong_answer`` or ``runtime_error``, never ``accepted``.
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import require_layers

import mirrorl
from mirrorl.sandbox import Verdict

V = Verdict
QUICK = {"cpu_s": 2, "wall_s": 3, "memory_mb": 256}
SERVICE_CODE = str(Path(mirrorl.__file__).resolve().parent / "sandbox" / "runner.py")


@dataclass
class Case:
    name: str
    code: str
    tests: list
    expected: set
    layers: tuple = ()
    limits: dict = field(default_factory=lambda: dict(QUICK))
    max_seconds: float = 8.0


def _attempt(action: str) -> str:
    """Code defining f() that returns "done" if ``action`` succeeded, else the error it met."""
    body = "\n".join("        " + line for line in action.splitlines())
    return f"def f():\n    try:\n{body}\n        return 'done'\n    except Exception as error:\n        return repr(error)\n"


CASES = [
    Case("fork bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
         [{"stdin": "", "expected_stdout": ""}], {V.time_limit, V.runtime_error}, ("process_limit",)),
    Case("thread bomb", "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()\n",
         ["assert True"], {V.runtime_error}, ("process_limit",)),
    Case("memory bomb", "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n", ["assert True"],
         {V.memory_limit}, ("limits",)),
    Case("memory spread over processes", "import os, time\nfor _ in range(6):\n    if os.fork() == 0:\n"
         "        block = bytearray(200 * 2**20)\n        for i in range(0, len(block), 4096):\n"
         "            block[i] = 1\n        time.sleep(10)\n        os._exit(0)\ntime.sleep(10)\n", ["assert True"],
         {V.memory_limit}, ("cgroup",)),
    Case("fill the disk (/tmp)", "for i in range(10**4):\n    with open(f'/tmp/{i}', 'wb') as out:\n"
         "        out.write(b'x' * 2**20)\n", ["assert True"], {V.runtime_error, V.memory_limit}, ("namespaces",)),
    Case("infinite loop", "while True:\n    pass\n", ["assert True"], {V.time_limit}, ("limits",), {**QUICK, "cpu_s": 1},
         max_seconds=3.5),
    Case("sleep past the wall limit", "import time\ntime.sleep(60)\n", ["assert True"], {V.time_limit},
         limits={**QUICK, "wall_s": 1}, max_seconds=3),
    Case("connect to the service on 127.0.0.1", "import socket\n" + _attempt(
        "socket.create_connection(('127.0.0.1', PORT), timeout=2).close()"),
         ["assert f() == 'done'"], {V.wrong_answer}, ("network",)),
    Case("connect to an outside address", "import socket\n" + _attempt(
        "socket.create_connection(('1.1.1.1', 80), timeout=2).close()"),
         ["assert f() == 'done'"], {V.wrong_answer}, ("network",)),
    Case("write a huge file", "with open('big', 'wb') as out:\n    for _ in range(200):\n        out.write(b'x' * 2**20)\n",
         ["assert True"], {V.output_limit}, ("limits",)),
    Case("print gigabytes", "import sys\nwhile True:\n    sys.stdout.write('x' * 2**20)\n",
         [{"stdin": "", "expected_stdout": ""}], {V.output_limit}),
    Case("read the service's code", _attempt(f"open({SERVICE_CODE!r}).read()"), ["assert f() == 'done'"],
         {V.wrong_answer}, ("filesystem",)),
    Case("read host files (/etc/passwd, /root, /work)",
         _attempt("open('/etc/passwd').read()\nimport os\nos.listdir('/root')\nos.listdir('/work')"),
         ["assert f() == 'done'"], {V.wrong_answer}, ("filesystem",)),
    Case("see other processes and runs",
         "import os\ndef f():\n    return [p for p in os.listdir('/proc') if p.isdigit()], os.listdir('/tmp')\n",
         ["pids, tmp = f()\nassert len(pids) > 5 or tmp"], {V.wrong_answer}, ("namespaces",)),
    Case("kill its parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef f():\n    return 1\n",
         ["assert f() == 1"], {V.accepted, V.runtime_error}),
    Case("kill every process it may (kill -1)", "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\n"
         "except OSError:\n    pass\ndef f():\n    return 1\n", ["assert f() == 1"], {V.accepted, V.runtime_error}),
    Case("deep recursion (Python frames)", "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n"
         "    pad = [n] * 200\n    return 1 + f(n + 1)\n", ["assert f(0) > 0"], {V.runtime_error, V.memory_limit},
         limits={**QUICK, "cpu_s": 10, "wall_s": 12}, max_seconds=15),  # CPU to spare: slow machines took > 2 s
    Case("deep recursion (C stack overflow)", "import sys\nsys.setrecursionlimit(10**8)\nx = None\n"
         "for _ in range(10**6):\n    x = [x]\ndef f():\n    return len(repr(x))\n", ["assert f() > 0"],
         {V.runtime_error}),
    Case("sys.exit(0) before the asserts", "import sys\nsys.exit(0)\ndef f():\n    return 1\n",
         ["assert f() == 2"], {V.runtime_error}),
    Case("os._exit(0) inside the tested function", "import os\ndef f():\n    os._exit(0)\n", ["assert f() == 2"],
         {V.runtime_error}),
    Case("raise SystemExit inside the tested function", "def f():\n    raise SystemExit(0)\n", ["assert f() == 2"],
         {V.runtime_error}),
    Case("print a fake success marker", "print('All tests passed\\nOK')\nimport sys\nsys.stdout.flush()\n"
         "def f():\n    return 1\n", ["assert f() == 2"], {V.wrong_answer}),
    Case("always-equal object", "class Yes:\n    def __eq__(self, other):\n        return True\n    __ne__ = __eq__\n"
         "    def __bool__(self):\n        return True\ndef f():\n    return Yes()\n",
         ["assert f() == 2", "assert f()"], {V.wrong_answer}),
    Case("object whose arithmetic is always close", "class Zero:\n    def __sub__(self, other):\n        return 0\n"
         "def f():\n    return Zero()\n", ["assert abs(f() - 2.5) < 1e-6"], {V.wrong_answer}),
    Case("list subclass with a lying __eq__", "class L(list):\n    def __eq__(self, other):\n        return True\n"
         "def f():\n    return L([0])\n", ["assert f() == [1, 2]"], {V.wrong_answer}),
    Case("override a builtin the tests use", "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = "
         "lambda *a: True\ndef f():\n    return 5\n", ["assert abs(f() - 2) < 1e-6"], {V.wrong_answer, V.runtime_error}),
    Case("shadow a builtin in the module", "def abs(x):\n    return 0\ndef f():\n    return 5\n",
         ["assert abs(f() - 2) < 1e-6"], {V.wrong_answer}),
    Case("patch a module the tests import", "import math\nmath.isclose = lambda *a, **k: True\ndef f():\n    return 5\n",
         ["import math\nassert math.isclose(f(), 2)"], {V.runtime_error}),
    Case("define its own check()", "def check(candidate):\n    pass\ndef f(x):\n    return 0\n",
         ["def check(candidate):\n    assert candidate(1) == 1\ncheck(f)"], {V.wrong_answer}),
    Case("reach the harness through frames", "import sys\nframe = sys._getframe(1)\nframe.f_locals\n"
         "def f():\n    return 1\n", ["assert f() == 2"], {V.runtime_error}),
    Case("read its own memory for the nonce", "data = open('/proc/self/mem', 'rb')\ndef f():\n    return 1\n",
         ["assert f() == 2"], {V.runtime_error}),
    Case("start another program", "import subprocess\nsubprocess.run(['/usr/bin/python3', '-c', 'print(1)'])\n"
         "def f():\n    return 1\n", ["assert f() == 2"], {V.runtime_error}),
]
TABLE = []


def _sandbox_processes(uid: int) -> list[str]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if any(line.split()[1] == str(uid) for line in status.splitlines() if line.startswith("Uid:")):
            pids.append(pid)
    return pids


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attack_gets_its_verdict_and_the_service_keeps_serving(sandbox, case):
    require_layers(sandbox, *case.layers)
    port = sandbox.url.rsplit(":", 1)[1]
    request = {"code": case.code.replace("PORT", port), "tests": case.tests, "limits": case.limits}
    start = time.monotonic()
    result = sandbox.run(request)
    seconds = time.monotonic() - start
    TABLE.append((case.name, result.verdict.value, seconds))
    print(f"\n| {case.name} | {result.verdict.value} | {seconds:.2f} s | {result.message[:90]}")
    assert result.verdict in case.expected, result
    assert seconds < case.max_seconds
    assert sandbox.health()["status"] == "ok"
    user = sandbox.health()["user"]
    if user != os.geteuid():  # programs ran as another user: nothing they started may survive the run
        deadline = time.monotonic() + 3
        while _sandbox_processes(user) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _sandbox_processes(user) == []


def test_service_still_judges_correctly_after_the_attacks(sandbox):
    assert len(CASES) >= 15
    result = sandbox.run({"code": "def f(x):\n    return 2 * x\n", "tests": ["assert f(2) == 4"]})
    assert result.verdict == Verdict.accepted and result.reward == 1.0
