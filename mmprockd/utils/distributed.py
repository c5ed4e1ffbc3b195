"""Process groups for ``tools/train.py`` and ``tools/test.py`` launched
with ``--launcher pytorch`` (``tools/dist_train.sh``), where mmengine 0.10
alone needs CUDA and can leave a gloo group to die with the interpreter."""
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Let a ``pytorch``-launched run work on machines without CUDA.

    mmengine 0.10 calls ``torch.cuda.set_device`` when it starts a
    ``pytorch``-launched process group, and gives DDP the local rank as
    ``device_ids``; both fail without CUDA. On such a machine we start the
    group ourselves (mmengine then skips it) with the config's backend,
    ``gloo`` when it asks for ``nccl``, and give DDP ``device_ids=None``.

    Args:
        cfg (Config): The merged config; ``model_wrapper_cfg`` may be set.
        launcher (str): The ``--launcher`` value.

    Returns:
        bool: True if the process group was started here.
    """
    import torch
    import torch.distributed as dist
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if dist.is_initialized():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'gloo')
    if backend == 'nccl':
        backend = 'gloo'
    if 'timeout' in dist_cfg:
        import datetime
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    dist.init_process_group(backend=backend, **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    return True


def teardown_distributed() -> None:
    """Free what still holds the process group, wait for every rank, then
    destroy the group.

    A rank that exits with the gloo group still alive can be killed by
    ``terminate called without an active exception`` while its threads shut
    down (seen with torch 2.13), which fails the whole torchrun job. A DDP
    wrapper keeps a reference to the group and its pending work, so the
    caller drops its runner first and the garbage collector frees the
    wrapper (the runner and its loops refer to each other) while the
    interpreter is still whole, not during its finalisation.
    """
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
