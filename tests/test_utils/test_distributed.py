"""The process group that ``tools/train.py`` and ``tools/test.py`` start
themselves on a machine without CUDA (``mmprockd/utils/distributed.py``)."""
import socket

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from mmprockd.utils.distributed import (setup_cpu_distributed,
                                        teardown_distributed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_other_launchers_are_left_to_mmengine():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert setup_cpu_distributed(cfg, 'none') is False
    assert setup_cpu_distributed(cfg, 'slurm') is False
    assert 'model_wrapper_cfg' not in cfg
    assert not dist.is_initialized()


@pytest.mark.skipif(
    torch.cuda.is_available(),
    reason='a CUDA machine '
    'leaves the group to mmengine')
def test_pytorch_launcher_starts_gloo_for_an_nccl_config(monkeypatch):
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(_free_port()))
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    cfg = Config(
        dict(
            env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60)),
            find_unused_parameters=True))
    assert not dist.is_initialized()
    try:
        assert setup_cpu_distributed(cfg, 'pytorch') is True
        assert dist.is_initialized()
        assert dist.get_backend() == 'gloo'
        assert dist.get_world_size() == 1
        # DDP without device_ids, the config's find_unused_parameters kept
        assert cfg.model_wrapper_cfg == dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=True,
            device_ids=None)
        # a group that exists already is not started again
        assert setup_cpu_distributed(cfg, 'pytorch') is False
    finally:
        teardown_distributed()
    assert not dist.is_initialized()
    # nothing to tear down: a no-op
    teardown_distributed()
    assert not dist.is_initialized()
