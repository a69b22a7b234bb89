"""Shell completion: ``serotiny -sc install=SHELL`` and the queries its scripts send."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SEROTINY, run_cli
from projects import widgets, write

BASH_HOOK = "complete -o nospace -o default -F hydra_bash_completion serotiny"


def query(line: str, cwd: Path, env: dict | None = None, shell: str = "bash") -> list[str]:
    """The candidates for ``line``, asked as Hydra's bash (or fish) script asks."""
    result = run_cli("-sc", f"query={shell}", cwd=cwd,
                     env={**(env or {}), "COMP_LINE": line, "COMP_POINT": str(len(line))})
    assert result.code == 0 and result.err == "", result.text
    return result.out.split()


@pytest.mark.parametrize(("shell", "expected"), [
    ("bash", BASH_HOOK), ("zsh", BASH_HOOK), ("fish", "complete -c serotiny -x -a '(hydra_fish_completion)'")])
def test_install_script_for_each_shell(tmp_path, shell, expected):
    result = run_cli("-sc", f"install={shell}", cwd=tmp_path)  # outside any project too
    assert result.code == 0, result.text
    assert expected in result.out


def test_unknown_shell_is_one_line(tmp_path):
    result = run_cli("-sc", "install=tcsh", cwd=tmp_path)
    assert result.code == 2 and "Traceback" not in result.text
    assert result.err.strip() == ("error: no shell completion for 'tcsh' (choose one of bash, zsh, fish, "
                                  "e.g. eval \"$(serotiny -sc install=bash)\")")
    bare = run_cli("-sc", cwd=tmp_path)
    assert bare.code == 2 and bare.err.startswith("error: -sc takes one of install=SHELL")


def test_queries_offer_subcommands_then_the_modes_options(project, site, site_env):
    widgets(site)
    assert query("serotiny ", project) == ["train", "test", "predict", "list-components",
                                           "show-component", "init", "check-plugin", "--help",
                                           "--version"]
    assert query("serotiny te", project) == ["test"]
    models = query("serotiny train model=", project, site_env)
    for option in ("default", "small_widget", "Widget", "Gadget", "TabularVAE", "tabular_vae"):
        assert f"model={option}" in models  # project, plugin file, plugin and built-in components
    assert {"data=default", "data=ManifestDatamodule"} <= set(query("serotiny train data=", project))
    callbacks = query("serotiny predict --debug trainer/callbacks=", project, site_env, shell="fish")
    assert {"trainer/callbacks=default", "trainer/callbacks=pings", "trainer/callbacks=Ping",
            "trainer/callbacks=EarlyStopping"} <= set(callbacks)
    assert {"trainer.max_epochs=", "trainer.callbacks."} <= set(query("serotiny train trainer.", project))
    assert query("serotiny show-component TabularV", project) == ["TabularVAE"]


def test_a_query_outside_a_project_answers_nothing(tmp_path):
    result = run_cli("-sc", "query=bash", cwd=tmp_path,
                     env={"COMP_LINE": "serotiny train model=", "COMP_POINT": "21"})
    assert (result.code, result.out, result.err) == (1, "", "")


def path_env() -> dict[str, str]:
    """The environment with this serotiny first on PATH, as the shell scripts call it by name."""
    return {**os.environ, "PATH": f"{Path(SEROTINY).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_completes_when_sourced(project):
    write(project / "proj" / "config" / "model" / "tiny.yaml", "_target_: TabularVAE\n")
    script = """
        eval "$(serotiny -sc install=bash)"
        complete -p serotiny
        for line in "serotiny pre" "serotiny train model=T" "serotiny test model=ti"; do
            COMP_LINE="$line" COMP_POINT=${#line}
            COMP_CWORD=$(( $(wc -w <<< "$line") - 1 ))
            hydra_bash_completion
            echo "${COMPREPLY[*]}"
        done
    """
    proc = subprocess.run(["bash", "-c", script], cwd=project, env=path_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["complete -o default -o nospace -F hydra_bash_completion serotiny",
                                        "predict", "model=TabularVAE", "model=tiny"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="needs fish")
def test_the_fish_script_completes_when_sourced(project):
    script = """
        serotiny -sc install=fish | source
        complete -C"serotiny pre"
        complete -C"serotiny train model=Tab"
        complete -C"serotiny train trainer/callbacks=Ea"
    """
    proc = subprocess.run(["fish", "-c", script], cwd=project, env=path_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["predict", "model=TabularVAE", "trainer/callbacks=EarlyStopping"]
