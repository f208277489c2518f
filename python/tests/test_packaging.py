"""The in-tree build backend: wheels, sdist, and pip installing offline."""
import base64
import hashlib
import importlib
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

import libtopic
from conftest import PYDIR, child_env, run_python


@pytest.fixture
def backend(monkeypatch):
    monkeypatch.syspath_prepend(str(PYDIR))
    monkeypatch.delenv("LIBTOPIC_BUNDLE", raising=False)
    import _build_backend
    return importlib.reload(_build_backend)


def check_record(zf):
    names = zf.namelist()
    record = [n for n in names if n.endswith(".dist-info/RECORD")]
    assert len(record) == 1
    rows = zf.read(record[0]).decode().splitlines()
    listed = {row.rsplit(",", 2)[0] for row in rows}
    assert listed == set(names)
    for row in rows:
        name, digest, size = row.rsplit(",", 2)
        if name == record[0]:
            assert digest == size == ""
            continue
        data = zf.read(name)
        algo, b64 = digest.split("=", 1)
        assert algo == "sha256"
        want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert b64 == want and int(size) == len(data), name


def test_build_wheel(backend, tmp_path):
    assert backend.get_requires_for_build_wheel() == []
    name = backend.build_wheel(str(tmp_path))
    assert name == "libtopic-%s-py3-none-any.whl" % libtopic.__version__
    with zipfile.ZipFile(tmp_path / name) as zf:
        names = zf.namelist()
        assert "libtopic/__init__.py" in names and "libtopic/topic.py" in names
        assert not any("__pycache__" in n or n.endswith(".so") for n in names)
        assert not any(n.startswith("tests/") for n in names)
        info = "libtopic-%s.dist-info/" % libtopic.__version__
        meta = zf.read(info + "METADATA").decode()
        assert "Name: libtopic" in meta and "Version: %s" % libtopic.__version__ in meta
        assert "Root-Is-Purelib: true" in zf.read(info + "WHEEL").decode()
        check_record(zf)


def test_build_bundled_wheel(backend, tmp_path):
    lib = os.environ["LIBTOPIC_PATH"]
    name = backend.build_wheel(str(tmp_path), {"bundle": lib})
    assert name.startswith("libtopic-") and not name.endswith("-any.whl")
    with zipfile.ZipFile(tmp_path / name) as zf:
        assert "libtopic/libtopic.so" in zf.namelist()
        check_record(zf)


def test_metadata_sdist_and_editable(backend, tmp_path):
    info = backend.prepare_metadata_for_build_wheel(str(tmp_path / "meta"))
    assert (tmp_path / "meta" / info / "METADATA").exists()
    sdist = backend.build_sdist(str(tmp_path))
    with tarfile.open(tmp_path / sdist) as tf:
        names = tf.getnames()
    base = sdist[:-len(".tar.gz")]
    for want in ("pyproject.toml", "_build_backend.py", "PKG-INFO",
                 "libtopic/__init__.py", "tests/conftest.py"):
        assert "%s/%s" % (base, want) in names
    editable = backend.build_editable(str(tmp_path / "ed"))
    with zipfile.ZipFile(tmp_path / "ed" / editable) as zf:
        pth = [n for n in zf.namelist() if n.endswith(".pth")]
        assert zf.read(pth[0]).decode().strip() == str(PYDIR)
        check_record(zf)


def test_pip_installs_offline(tmp_path):
    """pip builds the wheel with the in-tree backend, from no index at all."""
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                        "--no-build-isolation", "--no-deps", "--disable-pip-version-check",
                        "--target", str(tmp_path / "site"), str(PYDIR)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("pip is not installed")
    assert r.returncode == 0, r.stdout + r.stderr
    env = child_env()
    env["PYTHONPATH"] = str(tmp_path / "site")
    r = run_python("import libtopic; print(libtopic.__file__, libtopic.__version__)",
                   env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    file, version = r.stdout.split()
    assert file.startswith(str(tmp_path / "site")) and version == libtopic.__version__
    assert not (PYDIR / "build").exists()      # nothing left in the source tree
