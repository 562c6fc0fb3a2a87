# setup.py - copies libsinkstream.so (built by CMake) into the package, so that
# `pip install ./tools/python` gives a package that finds its library.
# The library is looked for in $SINKSTREAM_BUILD_DIR, then ../../build (the
# repository's default build directory). Without it the package still
# installs and looks for the library at import time ($SINKSTREAM_LIB, the
# system's library path).
import os
import shutil

from setuptools import setup

here = os.path.dirname(os.path.abspath(__file__))
dirs = [os.environ.get("SINKSTREAM_BUILD_DIR", ""), os.path.join(here, "..", "..", "build")]
for d in dirs:
    lib = os.path.join(d, "libsinkstream.so")
    if d and os.path.isfile(lib):
        shutil.copyfile(lib, os.path.join(here, "sinkstream", "libsinkstream.so"))
        break

setup()
