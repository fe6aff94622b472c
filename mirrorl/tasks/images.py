"""Images of vision prompts (report section 2.3.5): reading, checking and inlining them with Pillow.

A prompt's image is referenced by text, so problems stay plain JSON: either a file path (relative
paths are resolved against the folder of the jsonl file that names them) or an inline
``data:image/png;base64,...`` URI (the generated vision tasks use these, so a saved prompt set is
self-contained). Every image is decoded once at load time, so a bad one stops the run before any
training, with an error naming the file, the line and the field.

A vision row in a jsonl file looks like::

    {"image": "shapes/0001.png", "question": "How many red shapes?", "answer": "3", "id": "s1", "level": 2}

(`prompt` may stand for `question`; `id` and `level` are optional.)
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mirrorl.tasks.problem import DataError, Problem

DATA_URI_PREFIX = "data:image/"
MIN_SIDE = 8  # pixels: anything smaller holds nothing a question could ask about
MAX_PIXELS = 4096 * 4096  # larger pictures are a data error (processors resize to a few hundred pixels)


def to_data_uri(image: Image.Image) -> str:
    """A PNG data URI holding `image` (lossless; a 64x64 task image is about 0.3-1 kB)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def open_image(ref: str) -> Image.Image:
    """Decode the image a problem references (a path or a data URI) as RGB.

    Raises: DataError when the file is missing, the base64 is invalid or Pillow cannot decode the bytes.
    """
    try:
        if ref.startswith(DATA_URI_PREFIX):
            header, _, payload = ref.partition(",")
            if ";base64" not in header:
                raise DataError(f"data URI {header!r} is not base64-encoded")
            source = io.BytesIO(base64.b64decode(payload, validate=True))
        else:
            if not Path(ref).is_file():
                raise DataError(f"image file {ref} not found")
            source = ref
        with Image.open(source) as image:
            return image.convert("RGB")
    except binascii.Error as err:
        raise DataError(f"invalid base64 in data URI: {err}") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot decode image {_short(ref)}: {err}") from None


def checked_image_ref(value: object, where: str, base_dir: Path | None) -> str:
    """Validate the `image` field of a row and return its reference, paths made absolute.

    Args:
        value: the field's value (a path or a data URI).
        where: ``"{file} line {n}"`` for messages.
        base_dir: folder relative paths are resolved against (the jsonl file's folder).
    Raises: DataError naming `where`, the field 'image' and the cause: not a non-empty string, file
        missing, undecodable, or the wrong size (a side under `MIN_SIDE` or more than `MAX_PIXELS` pixels).
    """
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field 'image' must be a file path or a data:image/...;base64 URI, got {value!r:.80}")
    ref = value
    if not ref.startswith(DATA_URI_PREFIX) and base_dir is not None and not Path(ref).is_absolute():
        ref = str(base_dir / ref)
    try:
        image = open_image(ref)
    except DataError as err:
        raise DataError(f"{where}: field 'image': {err}") from None
    if min(image.size) < MIN_SIDE or image.width * image.height > MAX_PIXELS:
        raise DataError(f"{where}: field 'image': wrong size {image.width}x{image.height} pixels; sides must be at "
                        f"least {MIN_SIDE} and the area at most {MAX_PIXELS} pixels")
    return ref


def vision_problem(row: dict, where: str, id: str, base_dir: Path | None, level: int) -> Problem:
    """The Problem of a vision row: `image`, `question` (or `prompt`) and `answer` (math-verified).

    Raises: DataError naming `where` and the field when one is missing or bad (see `checked_image_ref`).
    """
    text_field = "question" if "question" in row else "prompt"
    for field in (text_field, "answer"):
        value = row.get(field)
        if type(value) is int:
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: field '{field}' must be a non-empty string, got {value!r:.80}")
    meta = row.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be a JSON object")
    return Problem(id=id, prompt=row[text_field], answer=str(row["answer"]), level=level, meta=meta,
                   image=checked_image_ref(row.get("image"), where, base_dir))


def _short(ref: str) -> str:
    return ref if len(ref) <= 60 else ref[:40] + "..." + ref[-10:]
