"""Plays the door camera of the Johnny example: digit images shown at doors on a fixed schedule.

Each frame is one NDJSON record: the image's id in scikit-learn's digits, the door, the event time
and the image itself as PNG bytes (written here with zlib alone, no imaging library), base64-encoded
with the web-safe alphabet because JSON cannot carry raw bytes:

    {"id": 1234, "door": "front", "ts": "2026-01-01T08:00:12.000", "image": "iVBORw0KGgo..."}

The schedule (JSON) gives the start of event time and the frames in the order the camera sends
them, each at `t` seconds after the start: a frame listed after a later one arrives out of order.

    {"start": "2026-01-01T08:00:00",
     "frames": [{"t": 0, "door": "front", "digit": 3}, {"t": 12, "door": "front", "digit": 1, "image": 1234}]}

A frame shows `image` (a digits id) when given, else the next image of its `digit` not shown yet.
The camera waits `(t - previous t) / speed` seconds of wall time between frames.

    python camera.py --schedule schedule.json --digits "$DLFLOW_DATA/digits.parquet" --listen 127.0.0.1:0
        serves the frames on TCP: prints "listening on HOST:PORT", takes one connection, sends, closes
    python camera.py --schedule schedule.json --digits "$DLFLOW_DATA/digits.parquet" --dir DIR
        writes each frame as DIR/frame-NNNNNN.json, written aside and renamed in
"""
import argparse
import base64
import datetime
import json
import os
import socket
import struct
import sys
import time
import zlib

import pyarrow.parquet as pq


def png(pixels, width=8, height=8):
    """An 8-bit greyscale PNG of `pixels` (values in [0, 1], row by row)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    grey = bytes(round(max(0.0, min(1.0, p)) * 255) for p in pixels)
    # Each scanline starts with its filter type: 0, none.
    scanlines = b"".join(b"\x00" + grey[row * width:(row + 1) * width] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bits, greyscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines, 9)) + chunk(b"IEND", b"")


def frames(schedule, digits_path):
    """The schedule's frames as (seconds, record), images picked and encoded."""
    table = pq.read_table(digits_path, columns=["id", "pixels", "label"]).to_pydict()
    pixels = dict(zip(table["id"], table["pixels"]))
    by_digit = {}
    for image_id, label in zip(table["id"], table["label"]):
        by_digit.setdefault(label, []).append(image_id)
    shown = set(f["image"] for f in schedule["frames"] if "image" in f)
    start = datetime.datetime.fromisoformat(schedule["start"])
    out = []
    for frame in schedule["frames"]:
        image_id = frame.get("image")
        if image_id is None:
            image_id = next(i for i in by_digit[frame["digit"]] if i not in shown)
            shown.add(image_id)
        if image_id not in pixels:
            sys.exit(f"camera: no image {image_id} in {digits_path}")
        ts = start + datetime.timedelta(seconds=frame["t"])
        record = {"id": image_id, "door": frame["door"], "ts": ts.isoformat(timespec="milliseconds"),
                  "image": base64.urlsafe_b64encode(png(pixels[image_id])).decode("ascii")}
        out.append((frame["t"], record))
    return out


def play(frames, speed, send):
    previous = None
    for seconds, record in frames:
        if previous is not None and seconds > previous:
            time.sleep((seconds - previous) / speed)
        previous = seconds if previous is None else max(previous, seconds)
        send(json.dumps(record) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedule", required=True)
    parser.add_argument("--digits", required=True, help="digits.parquet (scripts/setup.sh exports it to $DLFLOW_DATA)")
    parser.add_argument("--speed", type=float, default=1.0, help="seconds of event time per second of wall time")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--listen", metavar="HOST:PORT")
    target.add_argument("--dir")
    args = parser.parse_args()
    if args.speed <= 0:
        sys.exit("camera: --speed must be positive")
    with open(args.schedule) as f:
        schedule = json.load(f)
    playlist = frames(schedule, args.digits)
    if args.listen:
        host, port = args.listen.rsplit(":", 1)
        with socket.create_server((host, int(port))) as server:
            print("listening on %s:%d" % server.getsockname()[:2], flush=True)
            connection, _ = server.accept()
            with connection:
                play(playlist, args.speed, lambda line: connection.sendall(line.encode()))
    else:
        os.makedirs(args.dir, exist_ok=True)
        count = [0]

        def write(line):
            count[0] += 1
            name = "frame-%06d.json" % count[0]
            staging = os.path.join(args.dir, "." + name)
            with open(staging, "w") as f:
                f.write(line)
            os.rename(staging, os.path.join(args.dir, name))

        play(playlist, args.speed, write)


if __name__ == "__main__":
    main()
