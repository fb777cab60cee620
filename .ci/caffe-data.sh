#!/usr/bin/env bash
# Builds a second real Caffe, this one WITH its LMDB/LevelDB backends and OpenCV (so its Data and ImageData
# layers work), into its own virtualenv, so that nnbridge's Caffe data readers can be checked against it.
# The reference pycaffe in .venv-test (../shared/tools/reference-caffe/install.sh) stays untouched.
#
# Sources: the same PyPI sdist brocolli-caffe 9.0.2 + the shared build patch, plus .ci/caffe-data.patch, which
# only turns on USE_LMDB/USE_LEVELDB/USE_OPENCV and links Debian's liblmdb, libleveldb, libsnappy and OpenCV 4
# (no layer code changes).
#
# Usage:  bash .ci/caffe-data.sh            (from anywhere; works on the repository it lives in)
# Env:    NNBRIDGE_CAFFE_DATA_VENV (default .venv-caffe-data), CAFFE_JOBS (default 2),
#         NNBRIDGE_CAFFE_DATA_CACHE (default ~/.cache/nnbridge-caffe-data): built wheels, keyed by Python, numpy
#         major version and both patches, so a second run on the same machine takes seconds.
# Needs:  ../shared/tools/reference-caffe, root for apt-get (Debian 12). First build: several minutes on 2 cores.
# Result: $NNBRIDGE_CAFFE_DATA_VENV/bin/python imports caffe; exit status non-zero when anything failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
shared="$root/../shared/tools/reference-caffe"
ours="$root/.ci/caffe-data.patch"
VENV="${NNBRIDGE_CAFFE_DATA_VENV:-.venv-caffe-data}"
cache="${NNBRIDGE_CAFFE_DATA_CACHE:-$HOME/.cache/nnbridge-caffe-data}"
export CAFFE_JOBS="${CAFFE_JOBS:-2}"

log() { echo "caffe-data: $*"; }

if [ ! -f "$shared/brocolli-caffe-9.0.2.patch" ]; then
  log "$shared is absent; nothing to build"; exit 1
fi
case "$VENV" in /*) ;; *) VENV="$root/$VENV" ;; esac
PY="$VENV/bin/python"
key_src="$(cat "$shared/brocolli-caffe-9.0.2.patch" "$ours" | sha256sum | cut -c1-12)"
if [ -x "$PY" ] && [ -f "$VENV/.caffe-data-$key_src" ] \
   && GLOG_minloglevel=2 "$PY" -c "import caffe" >/dev/null 2>&1; then
  log "caffe with LMDB/LevelDB/OpenCV already in $VENV"; exit 0
fi

pkgs="libboost-python-dev libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-regex-dev
      libgoogle-glog-dev libgflags-dev libhdf5-dev libprotobuf-dev protobuf-compiler libopenblas-dev libgtest-dev
      cmake g++ make patch liblmdb-dev libleveldb-dev libsnappy-dev libopencv-dev"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  log "apt-get install$missing"
  (apt-get update -qq || true) >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x "$PY" ]; then
  pybin="$(command -v python3.11 || command -v python3)"
  log "creating $VENV with $pybin"
  "$pybin" -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
fi
# what the build and `import caffe` need (caffe.io imports skimage), plus lmdb to write test databases
"$PY" -m pip install -q "numpy>=2,<3" six protobuf wheel setuptools scikit-image scipy lmdb 2>&1 \
  | grep -v "^WARNING: Location" || true

key="$("$PY" -c 'import sys, numpy; print("cp%d%d-np%s" % (sys.version_info[0], sys.version_info[1], numpy.__version__.split(".")[0]))')-$key_src"
whl_dir="$cache/$key"
mkdir -p "$cache"
if ! ls "$whl_dir"/brocolli_caffe-*.whl >/dev/null 2>&1; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && "$PY" -m pip download -q --no-deps --no-binary :all: brocolli-caffe==9.0.2 -d . 2>"$cache/download.log" \
     && tar xzf brocolli-caffe-9.0.2.tar.gz \
     && cd brocolli-caffe-9.0.2 && patch -s -p1 < "$shared/brocolli-caffe-9.0.2.patch" && patch -s -p1 < "$ours") \
     || { log "could not download brocolli-caffe 9.0.2 ($cache/download.log) or apply the patches"; exit 1; }
  buildlog="$cache/build-$key.log"
  log "building Caffe with LMDB/LevelDB/OpenCV (several minutes; log: $buildlog)"
  start=$SECONDS
  mkdir -p "$whl_dir.tmp"
  if ! (cd "$work/brocolli-caffe-9.0.2" && "$PY" -m pip wheel -v --no-deps --no-build-isolation -w "$whl_dir.tmp" .) \
       > "$buildlog" 2>&1; then
    rm -rf "$whl_dir.tmp"
    log "build failed, see $buildlog"; tail -20 "$buildlog"; exit 1
  fi
  rm -rf "$whl_dir" && mv "$whl_dir.tmp" "$whl_dir"
  log "built in $((SECONDS - start)) s"
fi
"$PY" -m pip install -q --no-deps --force-reinstall "$whl_dir"/brocolli_caffe-*.whl
# the switches must really be on: pycaffe must link LMDB, LevelDB and OpenCV's image codecs
so="$("$PY" -c 'import caffe._caffe as m; print(m.__file__)' 2>/dev/null)" || { log "caffe does not import"; exit 1; }
for lib in liblmdb libleveldb libopencv_imgcodecs; do
  ldd "$so" | grep -q "$lib" || { log "$so does not link $lib: the build did not take .ci/caffe-data.patch"; exit 1; }
done
GLOG_minloglevel=2 "$PY" -c "import caffe; print('caffe-data: caffe', caffe.__version__, 'ready (LMDB, LevelDB, OpenCV)')"
touch "$VENV/.caffe-data-$key_src"
