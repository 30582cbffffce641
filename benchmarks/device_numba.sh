# Source me on the GPU machine: numba for the tracker's compiled frame step.
#
# The image may lack numba; its wheels (llvmlite alone is 60 MB) do not fit a call's 64 MB, so
# they travel unpacked and xz-packed (.dev_numba/numba312.tar.xz, about 42 MB), made here with
#   mkdir s && unzip -q numba-*.whl -d s && unzip -q llvmlite-*.whl -d s && tar -C s -cf - . | xz -7 > numba312.tar.xz
# and are unpacked into .dev_persist/site, which later calls on the same warm machine reuse,
# like the numba cache of the compiled kernels.
# NUMBA_SITE: where an earlier call unpacked them (a path the repo's .gitignore ignores, e.g.
# build/persist/site, survives between calls on a warm machine; .git/info/exclude does not).
_numba_site="${NUMBA_SITE:-$PWD/.dev_persist/site}"
if ! python3 -c 'import numba' 2>/dev/null; then
    if [[ ! -d "$_numba_site/numba" && -f .dev_numba/numba312.tar.xz ]]; then
        mkdir -p "$_numba_site" && tar -xJf .dev_numba/numba312.tar.xz -C "$_numba_site"
    fi
    export PYTHONPATH="$_numba_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export NUMBA_CACHE_DIR="$PWD/.dev_persist/numba_cache"
python3 -c 'import numba; print("numba", numba.__version__)' || echo "numba: not available (carry .dev_numba)"
