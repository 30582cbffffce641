# Source me on the GPU machine: numba for the tracker's compiled frame step.
#
# The image may lack numba; its wheels (llvmlite alone is 60 MB) do not fit a call's 64 MB, so
# they travel unpacked and xz-packed (.dev_numba/numba312.tar.xz, about 42 MB), made here with
#   mkdir s && unzip -q numba-*.whl -d s && unzip -q llvmlite-*.whl -d s && tar -C s -cf - . | xz -7 > numba312.tar.xz
# and are unpacked into .dev_persist/site, which later calls on the same warm machine reuse,
# like the numba cache of the compiled kernels.
if ! python3 -c 'import numba' 2>/dev/null; then
    if [[ ! -d .dev_persist/site/numba && -f .dev_numba/numba312.tar.xz ]]; then
        mkdir -p .dev_persist/site && tar -xJf .dev_numba/numba312.tar.xz -C .dev_persist/site
    fi
    export PYTHONPATH="$PWD/.dev_persist/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export NUMBA_CACHE_DIR="$PWD/.dev_persist/numba_cache"
python3 -c 'import numba; print("numba", numba.__version__)' || echo "numba: not available (carry .dev_numba)"
