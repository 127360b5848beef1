"""A hand-made Visual Genome folder in the real public format, with every quirk.

attributes.json (v1.2/v1.4 layout) holds 14 images (13 current-format records, 1 v1.0):

- "car": red-pole synonyms in exactly 10 distinct images (1-10: "red", "reddish", "Red ",
  "red.", "  red  car-ish"...), green-pole in exactly 10 (1-10), so it qualifies for
  red/green at --min-images 10.
- "bus": white in 10 images (1-10), black in only 9 (1-9): qualifies for white/black at
  --min-images 9, not 10.
- "dog": white in 11 (with "whitish" on image 11), black in 10; image 12 carries both
  poles ("white", "black"): it is a positive in both directions, never a negative.
- quirks: an object without "attributes", one with "name" (string), a v1.0 record
  ("id", "object_names"), mixed case, doubled/surrounding spaces, trailing '.', empty
  strings, a duplicate attribute, a non-dict object, a record without an id.

image_data.json places images 2 and 4 in VG_100K_2.
"""

import json
from pathlib import Path


def _obj(i, names, attrs=None, *, key="names"):
    o = {"object_id": i, "x": 10, "y": 20, "w": 30, "h": 40, key: names}
    if attrs is not None:
        o["attributes"] = attrs
    return o


def vg_records() -> list:
    recs = []
    red = ["red", "reddish", "Red ", "red.", "RED", "red", "reddish", "red", "  red", "red"]
    for i in range(1, 14):
        objs = []
        if i <= 10:
            objs.append(_obj(i * 100 + 1, ["car"], [red[i - 1], "green" if i % 2 else "greenish", ""]))
            objs.append(_obj(i * 100 + 2, ["Bus"], ["white"] + (["black"] if i <= 9 else [])))
        if i <= 10 or i == 11:
            objs.append(_obj(i * 100 + 3, ["dog"], ["whitish" if i == 11 else "white  "]))
        if i <= 10:
            objs.append(_obj(i * 100 + 4, ["dog"], ["black", "black"]))  # duplicate attribute
        if i == 12:
            objs.append(_obj(1201, ["dog"], ["white", "black"]))
        if i == 13:
            objs.append(_obj(1301, ["tree"]))  # no attributes key
            objs.append(_obj(1302, "bench", ["Wooden."], key="name"))  # name as a string
            objs.append("not an object")
            objs.append(_obj(1303, [""], ["tall"]))  # no usable name
        recs.append({"image_id": i, "attributes": objs})
    recs.append({"id": 14, "attributes": [_obj(1401, ["Sky"], ["Blue", "clear"], key="object_names")]})  # v1.0 keys
    recs.append({"attributes": []})  # no image id: dropped
    return recs


def write_vg(folder: Path, *, image_data: bool = True, images: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attributes.json").write_text(json.dumps(vg_records()))
    if image_data:
        data = [{"image_id": i, "url": f"https://example.org/rak248/{'VG_100K_2' if i in (2, 4) else 'VG_100K'}/{i}.jpg", "width": 800, "height": 600} for i in range(1, 15)]
        (folder / "image_data.json").write_text(json.dumps(data))
    if images:
        from PIL import Image

        for i in range(1, 14):  # image 14 is missing on disk
            sub = folder / ("VG_100K_2" if i in (2, 4) else "VG_100K")
            sub.mkdir(exist_ok=True)
            Image.new("RGB", (24, 16), ((40 * i) % 256, (90 * i) % 256, (150 * i) % 256)).save(sub / f"{i}.jpg", format="JPEG")
    return folder
