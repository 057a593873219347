"""Loaded before Django settings (`-p tests.environment` in pytest.ini): every local data path
(files, broker folders, model cache, generated secret key) goes to a throwaway folder, so the
tests never touch a developer's var/. Worker processes the tests start inherit it."""

import atexit
import os
import shutil
import tempfile

_var = tempfile.mkdtemp(prefix="imageclass-test-")
os.environ["VAR_DIR"] = _var
atexit.register(shutil.rmtree, _var, ignore_errors=True)
