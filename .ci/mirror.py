#!/usr/bin/env python3
"""Mirror a git checkout's tracked files into a fixed directory, by content.

Usage: mirror.py CHECKOUT MIRROR

Cargo fingerprints a workspace crate by its path and its files' modification times. A fresh
clone has a new path and every file is new, so CI rebuilt all of dlflow's crates and test
binaries (11 minutes on 2 cores) even when one file had changed. The mirror keeps one path, and a
file whose content is unchanged keeps its old time: cargo rebuilds only what changed. Files the
checkout no longer tracks are removed from the mirror; nothing else (no build output) lives there.
"""

import filecmp
import os
import shutil
import subprocess
import sys


def tracked_files(checkout):
    listing = subprocess.run(["git", "-C", checkout, "ls-files", "-z"], check=True, capture_output=True).stdout
    return {name for name in listing.decode().split("\0") if name}


def mirrored_files(mirror):
    found = set()
    for root, _dirs, files in os.walk(mirror):
        for name in files:
            found.add(os.path.relpath(os.path.join(root, name), mirror))
    return found


def main(checkout, mirror):
    wanted = tracked_files(checkout)
    os.makedirs(mirror, exist_ok=True)
    copied = 0
    for name in sorted(wanted):
        source, target = os.path.join(checkout, name), os.path.join(mirror, name)
        if os.path.islink(source) or not os.path.isfile(source):
            continue  # submodules and links: dlflow has none
        if os.path.isfile(target) and filecmp.cmp(source, target, shallow=False):
            if os.stat(source).st_mode != os.stat(target).st_mode:
                shutil.copymode(source, target)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)
        copied += 1
    removed = 0
    for name in mirrored_files(mirror) - wanted:
        os.remove(os.path.join(mirror, name))
        removed += 1
    # Folders left empty (a crate that was removed must not look like a workspace member).
    for root, dirs, files in os.walk(mirror, topdown=False):
        if root != mirror and not dirs and not files:
            os.rmdir(root)
    print(f"mirror {mirror}: {copied} file(s) changed, {removed} removed, {len(wanted)} tracked", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mirror.py CHECKOUT MIRROR")
    main(sys.argv[1], sys.argv[2])
