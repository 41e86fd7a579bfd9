#!/bin/sh
# The test suite under each Python given (default: python3.12 python3.13), each in a
# virtual environment of its own (.venv-3.X), beside `make test`'s on `python3`.
# An interpreter that is not here is said and skipped; a failing suite stops the run.
set -u
status=0
for python in "$@"; do
    if ! version=$("$python" -c 'import sys; assert sys.version_info >= (3, 11)
print("%d.%d" % sys.version_info[:2])' 2>/dev/null); then
        echo "$python: not found here (or older than 3.11), skipped"
        if command -v pyenv >/dev/null 2>&1; then
            echo "  (pyenv: name the versions, e.g. PYENV_VERSION=\"\$(pyenv versions --bare | paste -sd:)\")"
        fi
        continue
    fi
    venv=".venv-$version"
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv" &&
            "$venv/bin/python" -m pip install --quiet --upgrade pip &&
            "$venv/bin/python" -m pip install --quiet -e '.[test]' || exit 1
    fi
    echo "== Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
    "$venv/bin/python" -m pytest -q || status=1
done
exit $status
