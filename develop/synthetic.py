"""Procedurally drawn "product photos": one visual motif per class, random enough to need learning.

Used by ``make demo`` (the synthetic demo catalogue) and by tests that need real image files.
Every image is drawn from a seeded generator, so the same key always gives the same picture.
"""

from __future__ import annotations

import cv2
import numpy as np

# The 7 reduced classes, sorted; the demo uses them all.
CLASSES = (
    "Electronics_and_Appliances",
    "Fashion",
    "Household_Essentials",
    "accessories",
    "other",
    "sports_fitness",
    "stores",
)

# One hue (OpenCV's 0-179 scale) and one shape per class: distinct enough for a small model.
_STYLE = {
    0: (110, "rectangle"),
    1: (165, "triangle"),
    2: (60, "circle"),
    3: (25, "ring"),
    4: (140, "cross"),
    5: (0, "stripes"),
    6: (90, "diamond"),
}


def draw_product_image(class_index: int, seed: int, size: int = 128) -> np.ndarray:
    """Draw one BGR ``uint8`` image of ``size`` x ``size`` pixels for ``class_index``."""
    rng = np.random.default_rng(seed)
    hue, shape = _STYLE[class_index % len(_STYLE)]
    background = rng.integers(200, 256, size=3)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = background
    # numpy's stubs reject the float bounds and nested lists below, which numpy accepts (type: ignore)
    pixel = [(hue + rng.integers(-8, 9)) % 180, rng.integers(150, 256), rng.integers(120, 230)]
    hsv = np.uint8([[pixel]])  # type: ignore[arg-type,call-overload]
    color = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])  # type: ignore[arg-type,call-overload]
    cx, cy = (int(v) for v in rng.integers(size * 0.35, size * 0.65, size=2))  # type: ignore[arg-type,call-overload]
    r = int(rng.integers(size * 0.18, size * 0.32))  # type: ignore[arg-type,call-overload]
    if shape == "rectangle":
        cv2.rectangle(img, (cx - r, cy - int(r * 0.7)), (cx + r, cy + int(r * 0.7)), color, -1)
    elif shape == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], color)
    elif shape == "circle":
        cv2.circle(img, (cx, cy), r, color, -1)
    elif shape == "ring":
        cv2.circle(img, (cx, cy), r, color, max(2, r // 3))
    elif shape == "cross":
        w = max(2, r // 3)
        cv2.rectangle(img, (cx - r, cy - w), (cx + r, cy + w), color, -1)
        cv2.rectangle(img, (cx - w, cy - r), (cx + w, cy + r), color, -1)
    elif shape == "stripes":
        for k in range(-3, 4):
            x = cx + k * max(3, r // 2)
            cv2.line(img, (x - r // 2, cy - r), (x + r // 2, cy + r), color, max(2, r // 6))
    else:  # diamond
        pts = np.array([[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]], np.int32)
        cv2.fillPoly(img, [pts], color)
    noise = rng.normal(0, 8, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def encode_jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the image")
    return buf.tobytes()
