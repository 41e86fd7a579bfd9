#!/bin/sh
# The test suite under each Python named (default: python3.12 python3.13), each in a
# virtual environment of its own (.venv-3.X), beside `make test`'s on `python3`.
# pyenv's versions are found even when its shims are not set up for them. An interpreter
# that is not here, or older than 3.11, is said and skipped; the run fails (status 1) if a
# suite failed, and (status 2) if no interpreter could be tested at all.
set -u

# The interpreter's own path (pyenv's shims resolved), or nothing.
where() {
    "$1" -c 'import sys; print(sys.executable)' 2>/dev/null && return
    command -v pyenv >/dev/null 2>&1 || return 0
    PYENV_VERSION=$(pyenv versions --bare | paste -sd: -) \
        "$1" -c 'import sys; print(sys.executable)' 2>/dev/null || true
}

status=0
tested=0
for name in "$@"; do
    python=$(where "$name")
    if [ -z "$python" ]; then
        echo "$name: not found here, skipped"
        continue
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "$name: $("$python" -V 2>&1) is older than 3.11, skipped"
        continue
    fi
    venv=".venv-$("$python" -c 'import sys; print("%d.%d%s" % (*sys.version_info[:2], sys.abiflags))')"
    stamp="$venv/.installed-test"
    if [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        rm -rf "$venv"
        if ! { "$python" -m venv "$venv" &&
               "$venv/bin/python" -m pip install --quiet --upgrade pip &&
               "$venv/bin/python" -m pip install --quiet -e '.[test]'; }; then
            echo "$name: could not set up $venv"
            rm -rf "$venv"
            status=1
            continue
        fi
        touch "$stamp"
    fi
    echo "== $("$venv/bin/python" -c 'import sys; print("Python", sys.version)')"
    tested=$((tested + 1))
    "$venv/bin/python" -m pytest -q || status=1
done
if [ "$tested" = 0 ]; then
    echo "no Python could be tested (name others with PYTHONS=\"python3.X ...\")"
    exit 2
fi
exit $status
