#!/usr/bin/env bash
# `ansible-test sanity` on the collection as a user installs it: built from this
# checkout's working tree (galaxy.yml's build_ignore applies) and installed into
# a temporary folder, where ansible-test finds it as ansible_collections/xen_lab/dom0.
#
# ansible-test runs with the controller Python (this project's .venv, which it
# leaves alone) and makes one virtual environment per sanity test under
# ~/.ansible/test/venv/sanity.<test>/<python>/<hash of its pinned requirements>,
# from PyPI; the next run reuses them, so only the first run after a change of
# ansible-core's pins downloads anything. It bootstraps pip in those environments
# with a get-pip.py from ci-files.testing.ansible.com, which CI cannot reach, so
# tools/ansible-test-get-pip.py (the same, with Python's own pip wheel) is put in
# ansible-test's cache for it when the cache has none.
#
# Then the filter plugins' YAML docs go through ansible-test's validate-modules,
# which ansible-core 2.19 skips for filter and test plugins (several can share a
# file); see check_filter_docs below.
#
# Usage: tools/sanity.sh [ansible-test sanity options, e.g. --test pylint]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python_version=3.11
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$root/tools/install-collection.sh" "$work" >/dev/null
collection="$work/ansible_collections/xen_lab/dom0"

# The pip version ansible-test bootstraps (its cache file is named after it).
pip_version=$(python"$python_version" - "$python_version" <<'EOF'
import sys
import types

from ansible_test._internal.python_requirements import get_venv_packages

print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])
EOF
)
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$root/tools/ansible-test-get-pip.py" "$get_pip"
fi

cd "$collection"
ansible-test sanity --python "$python_version" --color no "$@"

# validate-modules' schema for plugin docs, on plugins/filter/*.yml. Two of its
# findings do not apply: `positional` (which ansible-doc reads for filters, as in
# ansible-core's own filter docs) is not in that schema, and a YAML file carries
# no GPL header. Its virtual environment is the one ansible-test used last.
check_filter_docs() {
  local venv ansible_lib ansible_test
  venv=$(find "$HOME/.ansible/test/venv/sanity.validate-modules/$python_version" -name marker.txt \
           -printf '%T@ %h\n' | sort -n | tail -n 1 | cut -d ' ' -f 2-)
  ansible_lib=$(python"$python_version" -c 'import ansible, os; print(os.path.dirname(ansible.__file__))')
  mkdir -p "$work/pythonpath"
  ansible_test=$(python"$python_version" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')
  # Only ansible-core on the path, as ansible-test runs it.
  ln -s "$ansible_lib" "$work/pythonpath/ansible"
  PYTHONPATH="$work/pythonpath" ANSIBLE_COLLECTIONS_PATH="$work" \
    "$venv/bin/python" "$ansible_test/_util/controller/sanity/validate-modules/validate.py" \
    --format json --arg-spec --collection ansible_collections/xen_lab/dom0 --plugin-type filter \
    plugins/filter/*.yml >"$work/filter-docs.json" || [ $? -eq 3 ]
  python"$python_version" - "$work/filter-docs.json" <<'EOF'
import json
import sys

NOT_FOR_YAML_DOCS = ("missing-gplv3-license",)
found = 0
for path, result in sorted(json.load(open(sys.argv[1])).items()):
    for problem in result["errors"] + result["warnings"]:
        if problem["code"] in NOT_FOR_YAML_DOCS or (
            problem["code"] == "invalid-documentation"
            and "extra keys not allowed @ data['positional']" in problem["msg"]
        ):
            continue
        print(f"ERROR: {path}: {problem['code']}: {problem['msg']}")
        found += 1
if found:
    sys.exit(f"Found {found} problem(s) in the filter plugins' docs.")
print("Filter plugin docs: validate-modules found nothing.")
EOF
}
if [ $# -eq 0 ]; then
  check_filter_docs
fi
