"""gentool plugin new: the skeleton installs through a real entry point and its own tests pass."""

import os
import subprocess
import sys

from .conftest import ROOT, one_error_line, run_cli


def test_generated_plugin_installs_and_passes_its_tests(tmp_path):
    r = run_cli("plugin", "new", "demo-flow", "--dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    project = tmp_path / "gentoolkit-demo-flow"
    assert (project / "pyproject.toml").is_file() and (project / "gentoolkit_demo_flow" / "plugin.py").is_file()
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(project)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "MPLBACKEND": "Agg"}
    listed = subprocess.run([sys.executable, "-m", "gentoolkit", "plugins", "--json"], capture_output=True,
                            text=True, env=env, cwd=ROOT)
    assert '"demo-flow"' in listed.stdout and '"demo-flow-gauss"' in listed.stdout
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project / "tests")],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "4 passed" in tests.stdout


def test_plugin_new_refuses_bad_names_and_existing_folders(tmp_path):
    assert "lowercase" in one_error_line(run_cli("plugin", "new", "My_Plugin", "--dir", str(tmp_path)))
    (tmp_path / "gentoolkit-taken").mkdir()
    assert "already exists" in one_error_line(run_cli("plugin", "new", "taken", "--dir", str(tmp_path)))
