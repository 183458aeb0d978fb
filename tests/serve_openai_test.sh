#!/usr/bin/env bash
# serve_openai_test.sh: `repro serve` driven by the official `openai` Python package
# (tests/serve_openai_checks.py: models, chat, streaming with usage, completions with logprobs and echo, a 400
# as BadRequestError). The package is installed with pip into a venv under build/ (REPRO_OPENAI_VENV
# overrides it) the first time; when it cannot be installed or imported (no PyPI), the test says "skip:" with
# the reason. Skips as well when the model is not in the mirror.
set -u
. tests/serve_lib.sh
venv=${REPRO_OPENAI_VENV:-build/openai-venv}
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >/dev/null 2>&1 || { echo "skip: serve_openai_test cannot create a venv at $venv (python3-venv missing?)"; exit 0; }
  echo "installing the openai package into $venv ..."
  if ! "$venv/bin/pip" install -q --disable-pip-version-check --timeout 20 --retries 1 "openai>=1.40" >"$venv/install.log" 2>&1; then
    echo "skip: serve_openai_test: pip could not install openai (PyPI unreachable? see $venv/install.log)"; exit 0
  fi
  "$venv/bin/python" -c "import openai" 2>/dev/null || { echo "skip: serve_openai_test: openai installed but not importable"; exit 0; }
fi
serve_start --ctx 512 --max-tokens 16
"$venv/bin/python" tests/serve_openai_checks.py "$url"
