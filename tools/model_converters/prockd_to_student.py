"""Convert a ProtoDistiller checkpoint into a plain student checkpoint.

The result holds only the student's weights (no teacher, learner, augment
module or adapters) and loads strictly into the student model of plain
mmdet / mmseg / mmpretrain. With ``--config`` the student's own config is
written beside it (``student_config.py``), ready for their ``tools/test.py``
or for mmdeploy.

Usage::

    python tools/model_converters/prockd_to_student.py \
        work_dirs/prockd_retinanet_coco/epoch_36.pth \
        retinanet_r50_prockd.pth --config configs/prockd_retinanet_coco.py
"""
import argparse
import os.path as osp
import sys

import torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='ProtoDistiller checkpoint -> student-only checkpoint')
    parser.add_argument('checkpoint', help='ProtoDistiller checkpoint')
    parser.add_argument('out', help='where to write the student checkpoint')
    parser.add_argument(
        '--config',
        help='the ProtoDistiller config; writes student_config.py beside '
        'the output')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmprockd  # noqa: F401  (allow-lists mmengine checkpoint globals)
    from mmprockd.engine import export_student
    if not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint {args.checkpoint!r} does not exist')
    cfg = None
    if args.config is not None:
        if not osp.isfile(args.config):
            sys.exit(f'error: config {args.config!r} does not exist')
        from mmengine.config import Config
        cfg = Config.fromfile(args.config)
    from mmprockd.utils.checkpoint_io import checkpoint_error_reason
    try:
        # explicit: the allow-list of `import mmprockd` covers mmengine's
        # checkpoints; anything else pickled in the file is refused
        ckpt = torch.load(
            args.checkpoint, map_location='cpu', weights_only=True)
    except Exception as err:
        sys.exit(f'error: {args.checkpoint!r} is not a PyTorch/mmengine '
                 f'checkpoint: {checkpoint_error_reason(err)}')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        sys.exit(f'error: {args.checkpoint!r} holds no state dict')
    meta = dict(ckpt.get('meta', {}))
    meta['converted_from'] = osp.abspath(args.checkpoint)
    try:
        cfg_path = export_student(state, args.out, meta=meta, cfg=cfg)
    except (KeyError, ValueError) as err:
        sys.exit(f'error: {args.checkpoint!r}: {err}')
    n = len(
        torch.load(args.out, map_location='cpu',
                   weights_only=True)['state_dict'])
    print(f'wrote {args.out} ({n} tensors)' +
          (f' and {cfg_path}' if cfg_path else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
