"""Generated vision tasks with graded difficulty and verifiable answers (report section 2.3.5).

Every image is `IMAGE_SIZE` x `IMAGE_SIZE` pixels: a 4 x 4 grid of 16-pixel cells, each empty or
holding one thing (a coloured shape or a character), so the tasks stay small enough for a CPU demo.
Three kinds, the two generated ones of the report's section 2.3.5 at small scale:

* ``count`` (synthetic visual reasoning): coloured squares and circles; "how many red shapes?".
  Level L shows L+1 shapes.
* ``compare`` (synthetic visual reasoning, spatial relations): a red and a blue shape, "which is higher,
  red or blue?" or "which is further left, ...?". Level L adds L-1 green distractors.
* ``read`` (text rendered as an image): an arithmetic chain of `mirrorl.tasks.arithmetic` written one
  character per cell, row by row, under the prompt ``=?``. Each comes with its text twin ``read_text``,
  the very same problem as the text prompt ``7+8-3=?`` (id ``arith-...``), so accuracy on the two
  measures how consistent answers are across the modalities. Level L has L+1 steps.

Answers end in ``\\boxed{}`` and go through the math verifier (counts as numbers, ``red``/``blue`` as
text). `vision_trace` writes the warm-up response: it first reads the picture out (the colours seen;
the positions; the transcribed chain), then reasons over what it read. Problems carry their picture
inline as a PNG data URI (`Problem.image`), and their task kind in ``meta["task"]``.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFont

from mirrorl.tasks.arithmetic import generate_arithmetic, short_trace
from mirrorl.tasks.images import to_data_uri
from mirrorl.tasks.problem import Problem

IMAGE_SIZE, CELL = 64, 16
GRID = IMAGE_SIZE // CELL
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220)}
TASKS = ("count", "compare", "read")
_FONT = ImageFont.load_default(size=14)


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "white")
    return image, ImageDraw.Draw(image)


def draw_shapes(shapes: list[tuple[int, str, str]]) -> Image.Image:
    """A picture of `(cell, colour, shape)` items: cell 0..15 in reading order, colour a key of
    `COLOURS`, shape ``"square"`` or ``"circle"``."""
    image, draw = _canvas()
    for cell, colour, shape in shapes:
        x, y = (cell % GRID) * CELL, (cell // GRID) * CELL
        box = (x + 3, y + 3, x + CELL - 4, y + CELL - 4)
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=COLOURS[colour])
    return image


def render_text(text: str) -> Image.Image:
    """`text` written one character per cell, row by row (at most 16 characters), black on white."""
    if len(text) > GRID * GRID:
        raise ValueError(f"{text!r}: more than {GRID * GRID} characters do not fit the picture")
    image, draw = _canvas()
    for i, char in enumerate(text):
        x, y = (i % GRID) * CELL + CELL / 2, (i // GRID) * CELL + CELL / 2
        draw.text((x, y), char, fill="black", font=_FONT, anchor="mm")
    return image


def _layout(rng: random.Random, colours: list[str]) -> list[tuple[int, str, str]]:
    cells = rng.sample(range(GRID * GRID), len(colours))
    return [(cell, colour, rng.choice(("square", "circle"))) for cell, colour in zip(cells, colours)]


def count_problem(rng: random.Random, level: int) -> Problem:
    """How many shapes of one colour a picture of level+1 shapes holds (the answer may be 0)."""
    shapes = sorted(_layout(rng, [rng.choice(list(COLOURS)) for _ in range(level + 1)]))
    colour = rng.choice(list(COLOURS))
    answer = sum(c == colour for _, c, _ in shapes)
    key = "".join(f"{cell}{c[0]}{s[0]}" for cell, c, s in shapes)
    return Problem(id=f"count-{colour}-{key}", prompt=f"how many {colour} shapes?\n", answer=str(answer),
                   level=level, meta={"task": "count", "shapes": [list(s) for s in shapes], "colour": colour},
                   image=to_data_uri(draw_shapes(shapes)))


def compare_problem(rng: random.Random, level: int) -> Problem:
    """Which of the red and the blue shape is higher (smaller row) or further left (smaller column);
    they never tie on the asked axis. Level L adds L-1 green distractors."""
    axis = rng.choice(("higher", "further left"))
    while True:
        shapes = _layout(rng, ["red", "blue"] + ["green"] * (level - 1))
        red, blue = shapes[0][0], shapes[1][0]
        coord = (lambda cell: cell // GRID) if axis == "higher" else (lambda cell: cell % GRID)
        if coord(red) != coord(blue):
            break
    answer = "red" if coord(red) < coord(blue) else "blue"
    shapes = sorted(shapes)
    key = "".join(f"{cell}{c[0]}{s[0]}" for cell, c, s in shapes)
    return Problem(id=f"compare-{axis[0]}-{key}", prompt=f"which is {axis}, red or blue?\n", answer=answer,
                   level=level, meta={"task": "compare", "shapes": [list(s) for s in shapes], "axis": axis},
                   image=to_data_uri(draw_shapes(shapes)))


def read_problems(arithmetic: Problem) -> tuple[Problem, Problem]:
    """The arithmetic problem as a picture of its text (task ``read``) and as text (task ``read_text``)."""
    chain = arithmetic.prompt.removesuffix("=?\n")
    meta = arithmetic.meta | {"chain": chain}
    image = Problem(id=f"read-{chain}", prompt="=?\n", answer=arithmetic.answer, level=arithmetic.level,
                    meta=meta | {"task": "read"}, image=to_data_uri(render_text(chain)))
    text = Problem(id=arithmetic.id, prompt=arithmetic.prompt, answer=arithmetic.answer, level=arithmetic.level,
                   meta=meta | {"task": "read_text"})
    return image, text


def generate_vision(n: int, seed: int, levels: tuple[int, ...], tasks: tuple[str, ...] = TASKS,
                    exclude: set[str] = frozenset()) -> list[Problem]:
    """About `n` distinct problems, round robin over `tasks` and `levels`; a ``read`` problem brings its
    text twin along (two problems, counted as two). No id is in `exclude`, and no text twin's either.

    Deterministic for a `seed`. Raises ValueError for an unknown task, or when a task and level cannot
    supply enough distinct problems.
    """
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown vision tasks {sorted(unknown)}; known: {TASKS}")
    rng = random.Random(seed)
    seen, out, i = set(exclude), [], 0
    while len(out) < n:
        task, level = tasks[i % len(tasks)], levels[(i // len(tasks)) % len(levels)]
        i += 1
        for _attempt in range(1000):
            if task == "read":
                start = rng.randint(0, 2**31)
                made = read_problems(generate_arithmetic(1, start, (level,))[0])
            else:
                made = ((count_problem if task == "count" else compare_problem)(rng, level),)
            if not any(p.id in seen for p in made):
                break
        else:
            raise ValueError(f"{task} level {level}: fewer than needed distinct problems left after exclusions")
        seen.update(p.id for p in made)
        out.extend(made)
    return out


def vision_trace(problem: Problem) -> str:
    """The warm-up response to a generated vision problem (or its text twin), ending in ``\\boxed{}``.

    ``count``: the colours seen in reading order, the count, the answer. ``compare``: row and column of
    the red and the blue shape, the answer. ``read``: the chain read off the picture, then one running
    total per line (``9+1=10``, ``10+4=14``), the answer; ``read_text``: the same without the reading
    line. (Shorter than the checked traces of `mirrorl.tasks.arithmetic.cot_trace`, so the CPU demo's
    rollouts stay short.)
    """
    task = problem.meta["task"]
    if task == "count":
        seen = " ".join(colour for _, colour, _ in problem.meta["shapes"])
        return f"seen: {seen}\n{problem.meta['colour']}: {problem.answer}\nanswer: \\boxed{{{problem.answer}}}"
    if task == "compare":
        where = {c: cell for cell, c, _ in problem.meta["shapes"] if c in ("red", "blue")}
        lines = [f"{c}: row {where[c] // GRID + 1} col {where[c] % GRID + 1}" for c in ("red", "blue")]
        return "\n".join(lines) + f"\nanswer: \\boxed{{{problem.answer}}}"
    trace = short_trace(problem)
    return f"{problem.meta['chain']}\n{trace}" if task == "read" else trace
