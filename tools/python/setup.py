"""Building the package also builds the native library it calls (`swift build -c release --product paramsnap` in the
ParamSnap repository this folder belongs to) and ships it inside the package, so `pip install ./tools/python` is
enough. A library already in paramsnap/ (tools/python/install puts one there) or named by $PARAMSNAP_LIB is used
as is."""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def native_library():
    env = os.environ.get("PARAMSNAP_LIB")
    if env:
        return env
    local = os.path.join(HERE, "paramsnap", "libparamsnap.so")
    if os.path.exists(local):
        return local
    if not os.path.exists(os.path.join(REPO, "Package.swift")):
        raise SystemExit("paramsnap: the ParamSnap repository is not above tools/python; set PARAMSNAP_LIB to a built libparamsnap.so")
    subprocess.run(["swift", "build", "-c", "release", "--product", "paramsnap"], cwd=REPO, check=True)
    bin_path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
    return os.path.join(bin_path, "libparamsnap.so")


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dst = os.path.join(self.build_lib, "paramsnap", "libparamsnap.so")
        src = native_library()
        if os.path.abspath(src) != os.path.abspath(dst):
            shutil.copy(src, dst)


setup(cmdclass={"build_py": BuildWithLibrary})
