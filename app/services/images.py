"""Images at the HTTP boundary: PNG encoding, checked decoding of uploads, letterboxing, and
image files decoded no larger than a view shows them.

Uploads are checked by their magic bytes (not the client's content type), their byte size and
their pixel count before Pillow decodes them, and refused with the domain errors
:class:`~app.domain.TooLarge`, :class:`~app.domain.UnsupportedMedia` and
:class:`~app.domain.Undecodable` (413, 415 and 422 over HTTP).
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.domain import TooLarge, Undecodable, UnsupportedMedia
from app.settings import byte_size

MAX_UPLOAD_PIXELS = 4096 * 4096
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def _reason(exc: BaseException) -> str:
    """Pillow's message without the reprs it embeds (``<_io.BytesIO object at 0x7f...>``)."""
    message = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc)).strip()
    return message or type(exc).__name__


def sniff_format(data: bytes) -> str | None:
    """``"png"`` or ``"jpeg"`` from the first bytes of ``data``; None for anything else."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def decode_upload(data: bytes, *, max_bytes: int, max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """Decode an uploaded PNG or JPEG into uint8 [H, W, 3] RGB.

    Raises:
        TooLarge: over ``max_bytes`` or ``max_pixels``.
        UnsupportedMedia: not a PNG or JPEG by its magic bytes.
        Undecodable: a PNG/JPEG that does not decode (truncated, corrupt).
    """
    if len(data) > max_bytes:
        raise TooLarge(f"the image is {len(data)} bytes; at most {max_bytes} bytes ({byte_size(max_bytes)})")
    kind = sniff_format(data)
    if kind is None:
        raise UnsupportedMedia("only PNG and JPEG images are accepted (checked by the file's first bytes)")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG" if kind == "png" else "JPEG"]) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise TooLarge(f"the image is {width}x{height} px; at most {max_pixels} pixels")
            image.load()
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except TooLarge:
        raise
    except Image.DecompressionBombError:  # over Pillow's own bound (about 179 megapixels): too large, not broken
        raise TooLarge(f"the image has more than {max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise Undecodable(f"the {kind.upper()} image could not be decoded: {_reason(exc)}") from None
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 1:
        raise Undecodable(f"the image has no pixels ({width}x{height})")
    return rgb


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a ``size x size`` square: scaled by ``scale``, then shifted
    by ``(pad_x, pad_y)`` pixels; :meth:`unmap` takes boxes back to the original image."""

    size: int
    scale: float
    pad_x: int
    pad_y: int
    width: int
    height: int

    def unmap(self, boxes: np.ndarray) -> np.ndarray:
        """float32 [N, 4] ``xyxy`` in the square -> the original image, clipped to it."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = (boxes - [self.pad_x, self.pad_y, self.pad_x, self.pad_y]) / self.scale
        out = np.clip(out, 0.0, [self.width, self.height, self.width, self.height])
        return out.astype(np.float32)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Fit uint8 [H, W, 3] into a black ``size x size`` square keeping its aspect ratio.

    The image is scaled (bilinear, antialiased) so its longer side is ``size``, and centred;
    the border is black, like the near-black background of the MNIST-detection images.
    """
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = np.asarray(resized)
    # The effective scale per axis differs slightly after rounding; the longer side's is exact.
    return canvas, Letterbox(size=size, scale=scale, pad_x=pad_x, pad_y=pad_y, width=width, height=height)


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def data_url(image: np.ndarray, *, max_side: int = 640) -> str:
    """A ``data:image/png`` URL of ``image`` shrunk to at most ``max_side`` px (for figures)."""
    height, width = image.shape[:2]
    if max(height, width) > max_side:
        factor = max_side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")
