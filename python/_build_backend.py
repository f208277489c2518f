"""A PEP 517 / PEP 660 build backend for the libtopic binding, standard library
only, so that ``pip install ./python`` works offline (a setuptools backend
would need setuptools downloaded into an isolated build environment).

It builds:

- a pure wheel ``libtopic-VERSION-py3-none-any.whl`` of the package
  directory ``libtopic/`` (the C library is found at run time:
  LIBTOPIC_PATH, next to the package, or the system loader);
- with the environment variable ``LIBTOPIC_BUNDLE=/path/to/libtopic.so``
  (or ``--config-settings bundle=/path``), a platform wheel that carries
  that library as ``libtopic/libtopic.so``, found without LIBTOPIC_PATH;
- an sdist ``libtopic-VERSION.tar.gz``;
- an editable wheel (``pip install -e``) that puts this directory on sys.path.

The project's metadata is read from the [project] table of pyproject.toml.
"""

import base64
import hashlib
import io
import os
import re
import sysconfig
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "libtopic"
# Files of the source tree that go into an sdist, besides the package.
SDIST_FILES = ["pyproject.toml", "_build_backend.py", "README.md", "bench.py"]
SDIST_DIRS = [PACKAGE, "tests"]


# ---------------------------------------------------------------------------
# Metadata


def _read_project():
    """The [project] table of pyproject.toml: tomllib where it exists (3.11+),
    otherwise a reader of the simple `key = "string"` lines this file uses."""
    path = os.path.join(ROOT, "pyproject.toml")
    try:
        import tomllib
    except ImportError:
        tomllib = None
    if tomllib is not None:
        with open(path, "rb") as f:
            return tomllib.load(f).get("project", {})
    project, section = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            m = re.match(r"^\[(.+)\]$", line)
            if m:
                section = m.group(1).strip()
                continue
            m = re.match(r'^([A-Za-z0-9_-]+)\s*=\s*"(.*)"$', line)
            if section == "project" and m:
                project[m.group(1)] = m.group(2)
    return project


def _metadata():
    p = _read_project()
    name, version = p["name"], p["version"]
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % name,
        "Version: %s" % version,
    ]
    if p.get("description"):
        lines.append("Summary: %s" % p["description"])
    if p.get("requires-python"):
        lines.append("Requires-Python: %s" % p["requires-python"])
    lic = p.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append("License: %s" % lic["text"])
    elif isinstance(lic, str):
        lines.append("License: %s" % lic)
    for c in p.get("classifiers", []) or []:
        lines.append("Classifier: %s" % c)
    body = ""
    readme = os.path.join(ROOT, "README.md")
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    text = "\n".join(lines) + "\n\n" + body
    return name, version, text


def _dist_name(name):
    return re.sub(r"[-_.]+", "_", name).lower()


# ---------------------------------------------------------------------------
# Wheels


def _bundle_path(config_settings):
    path = (config_settings or {}).get("bundle") or os.environ.get("LIBTOPIC_BUNDLE")
    if not path:
        return None
    path = os.path.realpath(path)   # lib/libtopic.so is a symlink chain
    if not os.path.isfile(path):
        raise FileNotFoundError("libtopic build backend: LIBTOPIC_BUNDLE=%s is not a file"
                                % path)
    return path


def _tag(bundled):
    if not bundled:
        return "py3-none-any"
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "py3-none-%s" % plat


def _package_files():
    """(archive name, path) of every file of the package, sorted."""
    out = []
    base = os.path.join(ROOT, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".pyc", ".pyo")) or fn.startswith("libtopic.so"):
                continue   # a library is only shipped when asked (bundle)
            full = os.path.join(dirpath, fn)
            out.append((os.path.relpath(full, ROOT).replace(os.sep, "/"), full))
    return out


class _Wheel:
    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.records = []

    def add(self, arcname, data, mode=0o644):
        if isinstance(data, str):
            data = data.encode("utf-8")
        info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        self.records.append("%s,sha256=%s,%d" % (arcname, digest.decode("ascii"), len(data)))

    def close(self, record_name):
        self.records.append("%s,," % record_name)
        info = zipfile.ZipInfo(record_name, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        self.zip.writestr(info, "\n".join(self.records) + "\n")
        self.zip.close()


def _dist_info_files(name, version, tag, metadata):
    wheel = ("Wheel-Version: 1.0\nGenerator: libtopic _build_backend\n"
             "Root-Is-Purelib: %s\nTag: %s\n"
             % ("true" if tag.endswith("-any") else "false", tag))
    return {"METADATA": metadata, "WHEEL": wheel, "top_level.txt": PACKAGE + "\n"}


def _build(wheel_directory, config_settings, editable):
    name, version, metadata = _metadata()
    bundle = None if editable else _bundle_path(config_settings)
    tag = _tag(bundle is not None)
    dist = _dist_name(name)
    filename = "%s-%s-%s.whl" % (dist, version, tag)
    info_dir = "%s-%s.dist-info" % (dist, version)
    os.makedirs(wheel_directory, exist_ok=True)
    w = _Wheel(os.path.join(wheel_directory, filename))
    try:
        if editable:
            w.add("__editable__.%s.pth" % dist, ROOT + "\n")
        else:
            for arcname, full in _package_files():
                with open(full, "rb") as f:
                    w.add(arcname, f.read())
            if bundle is not None:
                with open(bundle, "rb") as f:
                    w.add("%s/libtopic.so" % PACKAGE, f.read(), 0o755)
        for fn, text in _dist_info_files(name, version, tag, metadata).items():
            w.add("%s/%s" % (info_dir, fn), text)
        w.close("%s/RECORD" % info_dir)
    except BaseException:
        w.zip.close()
        os.unlink(os.path.join(wheel_directory, filename))
        raise
    return filename


def _prepare_metadata(metadata_directory, config_settings, editable):
    name, version, metadata = _metadata()
    bundled = not editable and _bundle_path(config_settings) is not None
    info_dir = "%s-%s.dist-info" % (_dist_name(name), version)
    path = os.path.join(metadata_directory, info_dir)
    os.makedirs(path, exist_ok=True)
    for fn, text in _dist_info_files(name, version, _tag(bundled), metadata).items():
        with open(os.path.join(path, fn), "w", encoding="utf-8") as f:
            f.write(text)
    return info_dir


# ---------------------------------------------------------------------------
# PEP 517 hooks


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _prepare_metadata(metadata_directory, config_settings, False)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _prepare_metadata(metadata_directory, config_settings, True)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, config_settings, False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, config_settings, True)


def build_sdist(sdist_directory, config_settings=None):
    name, version, metadata = _metadata()
    base = "%s-%s" % (_dist_name(name), version)
    filename = base + ".tar.gz"
    os.makedirs(sdist_directory, exist_ok=True)
    mtime = int(time.time())

    def add_bytes(tar, arcname, data):
        info = tarfile.TarInfo(arcname)
        info.size = len(data)
        info.mtime = mtime
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    def keep(info):
        if "__pycache__" in info.name or info.name.endswith(".pyc") or \
                os.path.basename(info.name).startswith("libtopic.so"):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        for fn in SDIST_FILES:
            full = os.path.join(ROOT, fn)
            if os.path.exists(full):
                tar.add(full, arcname="%s/%s" % (base, fn), filter=keep)
        for d in SDIST_DIRS:
            full = os.path.join(ROOT, d)
            if os.path.isdir(full):
                tar.add(full, arcname="%s/%s" % (base, d), filter=keep)
        add_bytes(tar, "%s/PKG-INFO" % base, metadata.encode("utf-8"))
    return filename
