#!/usr/bin/env python3
"""CLIP preprocessing by Pillow and NumPy, as Hugging Face's CLIPImageProcessor does it for
llava-1.5, the independent reference for src/vision/preprocess.rs.

Usage: pil_preprocess.py   (from the repository root; needs pip install pillow==11.3.0 numpy)

Writes tests/fixtures/preprocess-input.png (a 45×30 image: gradients, stripes and a disc, so
resampling errors show) and tests/reference/preprocess-pil.json with the [3, 14, 14] tensor for
three settings. Steps, as CLIPImageProcessor runs them: optionally llava's expand2square (paste
centred on a square of the mean colour, int(m·255) per channel as LLaVA writes it), resize the
shortest edge to S with PIL BICUBIC and the other edge to int(S·long/short), centre-crop at
((h−S)//2, (w−S)//2), rescale by 1/255, normalise with mean and std.
"""
import json

import numpy as np
from PIL import Image

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
SIZE = 14


def fixture():
    w, h = 45, 30
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // (w - 1)).astype(np.uint8)
    g = ((y // 3) % 2 * 200 + 30).astype(np.uint8)
    b = np.where((x - 30) ** 2 + (y - 12) ** 2 < 64, 240, 20).astype(np.uint8)
    return Image.fromarray(np.stack([r, g, b], axis=-1))


def expand2square(image, fill):
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def preprocess(image, pad):
    if pad:
        image = expand2square(image, tuple(int(m * 255) for m in MEAN))
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(SIZE * long / short)
    size = (SIZE, new_long) if w <= h else (new_long, SIZE)
    image = image.resize(size, Image.BICUBIC)
    w, h = image.size
    top, left = (h - SIZE) // 2, (w - SIZE) // 2
    pixels = np.asarray(image, dtype=np.float64)[top:top + SIZE, left:left + SIZE] / 255.0
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)


def main():
    image = fixture()
    image.save("tests/fixtures/preprocess-input.png")
    cases = []
    for pad in (False, True):
        cases.append({"pad_to_square": pad, "tensor": [round(float(v), 6) for v in preprocess(image, pad).ravel()]})
    out = {"generator": f"tests/reference/pil_preprocess.py, Pillow {Image.__version__}", "image_size": SIZE,
           "mean": MEAN, "std": STD, "cases": cases}
    with open("tests/reference/preprocess-pil.json", "w") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main()
